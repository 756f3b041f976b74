//! Which requests the agent may run on its reader task instead of the
//! blocking pool.
//!
//! Handing a request to a pool thread and its answer back to the writer
//! costs two thread wake-ups, which on small virtual machines is as much as
//! the system call itself: an `lstat` round trip through a local agent drops
//! from about 85 µs to 60 µs when run inline. Metadata operations on a local
//! disk return in microseconds, so the reader runs them itself.
//!
//! The risk is a call that never returns: `lstat` on a hung NFS server or a
//! dead FUSE mount would then stall every request, not just its own. So a
//! request runs inline only when none of its paths lies on or below a mount
//! whose file system type is not known to be local, as listed in
//! `/proc/self/mountinfo` (re-read every few seconds, so later mounts are
//! seen). Anything that can block by design (opening a FIFO) or move much
//! data (reads, writes, listings, fsync) always goes to the pool.
//!
//! What this cannot see is a symlink inside the tree that leads onto such a
//! mount elsewhere; a request through it runs inline, as every request does
//! in a single-threaded SFTP server.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use yonder_proto::{Request, Target};

/// How long a reading of the mount table is trusted.
const RECHECK: Duration = Duration::from_secs(2);

/// File system types whose metadata calls finish promptly: local disks and
/// memory. Anything else (nfs, cifs, fuse.*, 9p, ceph, ...) is treated as
/// able to hang.
const LOCAL_TYPES: &[&str] = &[
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "btrfs",
    "f2fs",
    "zfs",
    "bcachefs",
    "jfs",
    "reiserfs",
    "nilfs2",
    "tmpfs",
    "ramfs",
    "devtmpfs",
    "overlay",
    "vfat",
    "msdos",
    "exfat",
    "ntfs3",
    "hfsplus",
    "squashfs",
    "erofs",
    "iso9660",
    "udf",
    "proc",
    "sysfs",
    "devpts",
    "cgroup2",
    "mqueue",
    "hugetlbfs",
    "tracefs",
    "debugfs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
];

pub(crate) struct InlinePolicy {
    root: PathBuf,
    mountinfo: PathBuf,
    /// Mounts below the root that may hang, as root-relative components.
    slow_below: Vec<Vec<Vec<u8>>>,
    /// The root itself sits on such a mount: nothing runs inline.
    root_slow: bool,
    checked: Option<Instant>,
}

impl InlinePolicy {
    pub(crate) fn new(root: &Path) -> InlinePolicy {
        InlinePolicy::with_mountinfo(root, Path::new("/proc/self/mountinfo"))
    }

    fn with_mountinfo(root: &Path, mountinfo: &Path) -> InlinePolicy {
        InlinePolicy {
            root: root.to_path_buf(),
            mountinfo: mountinfo.to_path_buf(),
            slow_below: Vec::new(),
            root_slow: true,
            checked: None,
        }
    }

    /// Whether `request` may run on the reader task.
    pub(crate) fn allows(&mut self, request: &Request) -> bool {
        let paths: [Option<&[u8]>; 2] = match request {
            // Touches nothing: answered even while every worker waits on a
            // slow file system, so a heartbeat measures the link alone.
            Request::Ping => return true,
            // Decided by what it carries; one that would wait for another
            // agent is kept off the reader by the caller.
            Request::Once { request, .. } => return self.allows(request),
            Request::Lstat { path }
            | Request::Stat { path }
            | Request::Readlink { path }
            | Request::Unlink { path }
            | Request::Rmdir { path }
            | Request::Mkdir { path, .. }
            | Request::Mknod { path, .. }
            | Request::Symlink { path, .. }
            | Request::Statfs { path }
            | Request::Access { path, .. }
            | Request::GetXattr { path, .. }
            | Request::SetXattr { path, .. }
            | Request::ListXattr { path }
            | Request::RemoveXattr { path, .. } => [Some(path), None],
            Request::Setattr {
                target: Target::Path(path),
                ..
            } => [Some(path), None],
            Request::Rename { from, to, .. } => [Some(from), Some(to)],
            Request::Link { from, to } => [Some(from), Some(to)],
            _ => return false,
        };
        self.refresh();
        !self.root_slow && paths.into_iter().flatten().all(|p| !self.is_below_slow_mount(p))
    }

    fn is_below_slow_mount(&self, wire: &[u8]) -> bool {
        self.slow_below.iter().any(|mount| {
            let mut parts = components(wire);
            mount.iter().all(|m| parts.next() == Some(m.as_slice()))
        })
    }

    fn refresh(&mut self) {
        if self.checked.is_some_and(|at| at.elapsed() < RECHECK) {
            return;
        }
        self.checked = Some(Instant::now());
        match std::fs::read(&self.mountinfo) {
            Ok(table) => {
                let (root_slow, slow_below) = classify(&table, &self.root);
                if root_slow != self.root_slow || slow_below != self.slow_below {
                    tracing::debug!(root_slow, mounts = slow_below.len(), "mounts that may hang");
                }
                self.root_slow = root_slow;
                self.slow_below = slow_below;
            }
            Err(err) => {
                // Without a mount table nothing is known to be local.
                tracing::debug!(%err, "cannot read the mount table; running every request on the pool");
                self.root_slow = true;
                self.slow_below.clear();
            }
        }
    }
}

/// From a mountinfo table: whether the root lies on a mount that may hang,
/// and which such mounts lie strictly below it (root-relative components).
fn classify(table: &[u8], root: &Path) -> (bool, Vec<Vec<Vec<u8>>>) {
    use std::os::unix::ffi::OsStrExt;
    let root: Vec<&[u8]> = components(root.as_os_str().as_bytes()).collect();
    // The mount containing the root is the last listed one that is a prefix
    // of it: later mounts stack over earlier ones.
    let mut root_mount: Option<(usize, bool)> = None;
    let mut slow_below = Vec::new();
    for line in table.split(|b| *b == b'\n') {
        let Some((mount_point, fs_type)) = parse_line(line) else {
            continue;
        };
        let mount: Vec<Vec<u8>> = components(&mount_point).map(<[u8]>::to_vec).collect();
        let local = is_local(fs_type);
        if mount.len() <= root.len() && mount.iter().zip(&root).all(|(m, r)| m == r) {
            if root_mount.is_none_or(|(len, _)| mount.len() >= len) {
                root_mount = Some((mount.len(), local));
            }
        } else if !local && mount.len() > root.len() && mount.iter().zip(&root).all(|(m, r)| m == r) {
            slow_below.push(mount[root.len()..].to_vec());
        }
    }
    let root_slow = root_mount.is_none_or(|(_, local)| !local);
    (root_slow, slow_below)
}

/// The mount point (unescaped) and file system type of one mountinfo line:
/// `id parent major:minor root mount-point options [optional...] - type source super-options`.
fn parse_line(line: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    let mount_point = unescape(fields.get(4)?);
    let dash = fields.iter().position(|f| *f == b"-")?;
    let fs_type = fields.get(dash + 1)?;
    Some((mount_point, fs_type))
}

fn is_local(fs_type: &[u8]) -> bool {
    LOCAL_TYPES.iter().any(|t| t.as_bytes() == fs_type)
}

/// Undoes mountinfo's octal escapes (`\040` for a space and so on).
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|b| *b == b'/').filter(|c| !c.is_empty() && *c != b".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use yonder_proto::{Handle, WirePath};

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /srv rw - ext4 /dev/sdb1 rw
31 30 0:41 / /srv/data/nfs\\040share rw - nfs4 server:/x rw
32 30 0:42 / /srv/data/scratch rw - tmpfs tmpfs rw
33 22 0:43 / /mnt/remote rw - fuse.sshfs host: rw
";

    fn policy(root: &str) -> InlinePolicy {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mountinfo");
        std::fs::write(&file, TABLE).unwrap();
        let mut policy = InlinePolicy::with_mountinfo(Path::new(root), &file);
        policy.refresh();
        policy
    }

    fn lstat(path: &str) -> Request {
        Request::Lstat {
            path: WirePath::from(path.as_bytes().to_vec()),
        }
    }

    #[test]
    fn local_paths_run_inline_and_paths_onto_a_network_mount_do_not() {
        let mut p = policy("/srv/data");
        assert!(p.allows(&lstat("a/b")));
        assert!(p.allows(&lstat("scratch/x")), "tmpfs is local");
        assert!(!p.allows(&lstat("nfs share")), "the mount point itself");
        assert!(!p.allows(&lstat("/nfs share/deep/file")));
        assert!(p.allows(&lstat("nfs share2")), "a sibling with a longer name");
        let rename = Request::Rename {
            from: WirePath::from(b"a".to_vec()),
            to: WirePath::from(b"nfs share/a".to_vec()),
            flags: Default::default(),
        };
        assert!(!p.allows(&rename), "either path counts");
    }

    #[test]
    fn a_root_on_a_network_mount_runs_nothing_inline() {
        assert!(!policy("/mnt/remote/x").allows(&lstat("a")));
        assert!(!policy("/srv/data/nfs share").allows(&lstat("a")));
        assert!(policy("/srv/data/scratch").allows(&lstat("a")));
    }

    #[test]
    fn data_and_blocking_operations_always_use_the_pool() {
        let mut p = policy("/srv/data");
        let open = Request::Open {
            path: WirePath::from(b"fifo".to_vec()),
            flags: 0,
            mode: 0,
            owner: None,
        };
        assert!(!p.allows(&open));
        let read = Request::Read {
            handle: Handle(1),
            offset: 0,
            len: 1,
        };
        assert!(!p.allows(&read));
    }

    #[test]
    fn without_a_mount_table_nothing_runs_inline() {
        let mut p = InlinePolicy::with_mountinfo(Path::new("/srv"), Path::new("/nonexistent/mountinfo"));
        assert!(!p.allows(&lstat("a")));
    }

    #[test]
    fn the_real_mount_table_parses() {
        let table = std::fs::read("/proc/self/mountinfo").unwrap();
        assert!(table
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .all(|l| parse_line(l).is_some()));
        assert_eq!(unescape(b"a\\040b\\134c"), b"a b\\c");
    }
}
