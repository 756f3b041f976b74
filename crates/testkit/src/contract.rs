//! The contract of [`Remote`], written once and run against every
//! implementation: the agent in process over an in-memory pipe, the
//! agent's request handling called directly ([`crate::direct`]), a
//! `Scoped` view (crates/testkit/tests/remote_contract.rs), and the agent
//! as a child process and over ssh (crates/cli/tests/remote_contract.rs).
//!
//! Each check is an `async fn(Subject)`: a remote serving a fresh, empty
//! directory, and that directory's path on this machine, through which a
//! check prepares files and looks at what the remote did. The
//! [`remote_contract!`](crate::remote_contract) macro turns every check
//! into its own `#[tokio::test]` for one implementation:
//!
//! ```ignore
//! async fn subject() -> yonder_testkit::contract::Subject { ... }
//! yonder_testkit::remote_contract!(subject);
//! ```
//!
//! The checks assume a Linux host whose temporary directory supports user
//! xattrs and sparse files (ext4, tmpfs, xfs, btrfs). Some need root (device
//! nodes, owners, a tmpfs mounted below the root) and check less without it.

use std::any::Any;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yonder_proto::{
    access_mask, fallocate_mode, file_type, open_flags as of, Attr, Errno, Handle, Owner, RenameFlags,
    SeekWhence, SetAttr, SetTime, Target, Timespec, TreeBudget, XattrMode,
};
use yonder_remote::{Remote, RemoteError};

/// What a check runs against: a remote serving `root`, a fresh empty
/// directory on this machine.
pub struct Subject {
    pub remote: Arc<dyn Remote>,
    root: PathBuf,
    /// Checks this implementation is known to fail, each with the reason.
    gaps: &'static [Gap],
    // Dropped after the remote: a temporary directory, an sshd.
    _keep: Box<dyn Any + Send + Sync>,
}

impl Subject {
    /// `keep` lives as long as the subject and is dropped after the remote.
    pub fn new(remote: Arc<dyn Remote>, root: impl Into<PathBuf>, keep: impl Any + Send + Sync) -> Subject {
        Subject {
            remote,
            root: root.into(),
            gaps: &[],
            _keep: Box::new(keep),
        }
    }

    /// Declares the checks this implementation cannot pass, and why: each
    /// still runs, and must fail (a gap that closes is an error too, so
    /// the list stays true).
    pub fn with_gaps(mut self, gaps: &'static [Gap]) -> Subject {
        self.gaps = gaps;
        self
    }

    /// Why `check` is a declared gap of this subject, if it is one.
    pub fn gap(&self, check: &str) -> Option<&'static str> {
        self.gaps.iter().find(|g| g.check == check).map(|g| g.why)
    }

    /// A subject for the agent in this process (see [`crate::agent`]).
    pub async fn in_process_agent() -> Subject {
        let (client, root, keep) = crate::agent::InProcessAgent::start().await.into_parts();
        Subject::new(client, root, keep)
    }

    /// A subject for the agent's request handling called directly (see
    /// [`crate::direct`]).
    pub fn direct_agent() -> Subject {
        let dir = tempfile::Builder::new()
            .prefix("yonder-direct")
            .tempdir()
            .expect("temporary directory");
        let agent = crate::direct::DirectAgent::new(dir.path());
        let root = dir.path().to_path_buf();
        Subject::new(agent, root, dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path on disk behind a wire path.
    pub fn disk(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// Defines one `#[tokio::test]` per contract check, each running the check
/// against the [`Subject`] that `$subject` (an `async fn() -> Subject`)
/// makes. The calling crate needs `tokio` (with `macros` and
/// `rt-multi-thread`) among its dependencies.
#[macro_export]
macro_rules! remote_contract {
    ($subject:path) => {
        $crate::remote_contract!(@checks $subject;
            lstat_and_stat_report_the_disk_attributes,
            attributes_agree_between_calls,
            birth_time_and_device_identify_files,
            a_mount_below_the_root_has_its_own_device,
            fstat_works_after_unlink,
            missing_names_are_enoent,
            a_file_on_the_way_is_enotdir,
            directories_are_eisdir,
            existing_names_are_eexist,
            non_empty_directories_are_enotempty,
            escaping_the_root_is_eacces,
            paths_resolve_below_the_root,
            the_root_cannot_be_removed_or_replaced,
            nul_bytes_are_einval,
            closed_handles_are_ebadf,
            handles_read_and_write_as_opened,
            read_write_fsync_close,
            open_creates_truncates_and_appends,
            open_refuses_unknown_flags,
            open_read_returns_the_start_of_the_file,
            writes_past_the_end_leave_a_hole,
            streams_read_and_write_without_offsets,
            large_reads_and_writes_are_split_and_pipelined,
            sixty_four_requests_in_flight_around_a_slow_one,
            readdir_pages_with_attributes,
            readdir_entries_carry_xattr_names,
            readdir_refuses_foreign_cursors,
            list_tree_pages_a_large_directory_by_bytes,
            list_tree_carries_the_tree_below_and_small_files,
            list_tree_errors_are_those_of_readdir,
            rename_replaces_and_honours_flags,
            hard_links_share_the_inode,
            symlinks_are_stored_verbatim,
            setattr_by_path,
            setattr_by_handle_after_unlink,
            truncate_grows_and_shrinks,
            fallocate_allocates_and_punches,
            lseek_finds_data_and_holes,
            xattrs_set_get_list_remove,
            statfs_matches_the_disk,
            access_checks_the_agents_credentials,
            mkdir_rmdir_unlink,
            mknod_makes_fifos_devices_and_files,
            new_nodes_belong_to_the_owner_given,
            ping_answers_and_touches_nothing,
            realpath_resolves_absolute_paths_within_the_root,
        );
    };
    (@checks $subject:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let subject = $subject().await;
                match subject.gap(stringify!($check)) {
                    Some(why) => {
                        $crate::contract::expect_gap(stringify!($check), why, $crate::contract::$check(subject)).await
                    }
                    None => $crate::contract::$check(subject).await,
                }
            }
        )*
    };
}

/// A check an implementation declares it fails, and why (the transport
/// cannot express what it checks).
pub struct Gap {
    pub check: &'static str,
    pub why: &'static str,
}

/// Runs a check declared a gap: it must fail.
pub async fn expect_gap(check: &str, why: &str, run: impl std::future::Future<Output = ()> + Send + 'static) {
    match tokio::spawn(run).await {
        Err(err) if err.is_panic() => {}
        Err(err) => panic!("{check}: {err}"),
        Ok(()) => panic!("{check} is declared a gap ({why}) but passes: remove it from the gaps"),
    }
}

/// What SFTP v3 cannot express, check by check (docs/sftp.md has the
/// table of gaps these come from).
pub const SFTP_GAPS: &[Gap] = &[
    Gap {
        check: "lstat_and_stat_report_the_disk_attributes",
        why: "no inode numbers, nanoseconds, ctime, blocks or nlink",
    },
    Gap {
        check: "attributes_agree_between_calls",
        why: "no link count",
    },
    Gap {
        check: "birth_time_and_device_identify_files",
        why: "no device or birth time",
    },
    Gap {
        check: "a_mount_below_the_root_has_its_own_device",
        why: "no device",
    },
    Gap {
        check: "fstat_works_after_unlink",
        why: "no link count",
    },
    Gap {
        check: "hard_links_share_the_inode",
        why: "no inode numbers or link count",
    },
    Gap {
        check: "readdir_pages_with_attributes",
        why: "no inode numbers",
    },
    Gap {
        check: "list_tree_pages_a_large_directory_by_bytes",
        why: "no inode numbers",
    },
    Gap {
        check: "list_tree_carries_the_tree_below_and_small_files",
        why: "no tree listing: one READDIR page of the directory alone (`tree_from_page`)",
    },
    Gap {
        check: "setattr_by_handle_after_unlink",
        why: "no link count",
    },
    Gap {
        check: "setattr_by_path",
        why: "times in whole seconds",
    },
    Gap {
        check: "a_file_on_the_way_is_enotdir",
        why: "OpenSSH reports ENOTDIR as 'no such file'",
    },
    Gap {
        check: "xattrs_set_get_list_remove",
        why: "no extended attributes",
    },
    Gap {
        check: "readdir_entries_carry_xattr_names",
        why: "no extended attributes",
    },
    Gap {
        check: "existing_names_are_eexist",
        why: "no extended attributes",
    },
    Gap {
        check: "mknod_makes_fifos_devices_and_files",
        why: "no FIFOs or devices",
    },
    Gap {
        check: "open_read_returns_the_start_of_the_file",
        why: "no FIFOs",
    },
    Gap {
        check: "sixty_four_requests_in_flight_around_a_slow_one",
        why: "no FIFOs (the slow read)",
    },
    Gap {
        check: "streams_read_and_write_without_offsets",
        why: "no FIFOs",
    },
    Gap {
        check: "truncate_grows_and_shrinks",
        why: "no FIFOs",
    },
    Gap {
        check: "new_nodes_belong_to_the_owner_given",
        why: "no FIFOs",
    },
    Gap {
        check: "rename_replaces_and_honours_flags",
        why: "no RENAME_EXCHANGE",
    },
    Gap {
        check: "fallocate_allocates_and_punches",
        why: "no fallocate: sizes only",
    },
    Gap {
        check: "lseek_finds_data_and_holes",
        why: "no hole information",
    },
];

// ---------------------------------------------------------------------------
// Helpers

/// The errno of a call that must fail.
pub fn errno<T: std::fmt::Debug>(result: Result<T, RemoteError>) -> Errno {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.errno(),
    }
}

/// Every write of the suite goes through here (one place to adapt when the
/// payload type changes).
async fn put(remote: &dyn Remote, handle: Handle, offset: u64, data: &[u8]) -> Result<u32, RemoteError> {
    remote
        .write(handle, offset, yonder_remote::Bytes::copy_from_slice(data))
        .await
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn ts(sec: i64, nsec: i64) -> Timespec {
    Timespec {
        sec,
        nsec: nsec as u32,
    }
}

fn system_time(t: std::time::SystemTime) -> Timespec {
    let d = t.duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    Timespec {
        sec: d.as_secs() as i64,
        nsec: d.subsec_nanos(),
    }
}

fn path_target(path: &str) -> Target {
    Target::Path(path.as_bytes().to_vec().into())
}

const NO_FLAGS: RenameFlags = RenameFlags {
    noreplace: false,
    exchange: false,
};
const NOREPLACE: RenameFlags = RenameFlags {
    noreplace: true,
    exchange: false,
};
const EXCHANGE: RenameFlags = RenameFlags {
    noreplace: false,
    exchange: true,
};

async fn create(remote: &dyn Remote, path: &[u8], data: &[u8]) -> Attr {
    let flags = of::WRITE_ONLY | of::CREATE | of::TRUNCATE;
    let (h, _) = remote.open(path, flags, 0o644, None).await.unwrap();
    put(remote, h, 0, data).await.unwrap();
    let attr = remote.fstat(h).await.unwrap();
    remote.close(h).await.unwrap();
    attr
}

/// The kernel's attributes of a disk file, in wire form except `dev`
/// (whose encoding is the remote's own).
fn assert_matches_disk(a: &Attr, disk: &std::fs::Metadata, what: &str) {
    assert_eq!(a.ino, disk.ino(), "{what}: ino");
    assert_eq!(a.mode, disk.mode(), "{what}: mode");
    assert_eq!(a.nlink, disk.nlink(), "{what}: nlink");
    assert_eq!((a.uid, a.gid), (disk.uid(), disk.gid()), "{what}: owner");
    assert_eq!(a.size, disk.size(), "{what}: size");
    assert_eq!(a.blocks, disk.blocks(), "{what}: blocks");
    assert_eq!(a.blksize as u64, disk.blksize(), "{what}: blksize");
    assert_eq!(
        (a.rdev_major, a.rdev_minor),
        // st_rdev is a u64 in std, a dev_t (i32 on Apple's systems) in rustix.
        (
            rustix::fs::major(disk.rdev() as _),
            rustix::fs::minor(disk.rdev() as _)
        ),
        "{what}: rdev"
    );
    assert_eq!(a.mtime, ts(disk.mtime(), disk.mtime_nsec()), "{what}: mtime");
    assert_eq!(a.ctime, ts(disk.ctime(), disk.ctime_nsec()), "{what}: ctime");
    assert_eq!(a.atime, ts(disk.atime(), disk.atime_nsec()), "{what}: atime");
    assert_eq!(a.btime, disk.created().ok().map(system_time), "{what}: btime");
}

// ---------------------------------------------------------------------------
// Attributes

/// lstat and stat report what the kernel reports for the file on disk;
/// lstat does not follow a final symlink, stat does.
pub async fn lstat_and_stat_report_the_disk_attributes(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("file"), b"hello").unwrap();
    std::fs::create_dir(s.disk("dir")).unwrap();
    std::os::unix::fs::symlink("file", s.disk("link")).unwrap();
    std::os::unix::fs::symlink("nowhere", s.disk("dangling")).unwrap();
    for name in ["file", "dir", "link", "dangling"] {
        let disk = std::fs::symlink_metadata(s.disk(name)).unwrap();
        assert_matches_disk(&r.lstat(name.as_bytes()).await.unwrap(), &disk, name);
    }
    let disk = std::fs::metadata(s.disk("link")).unwrap();
    let followed = r.stat(b"link").await.unwrap();
    assert_matches_disk(&followed, &disk, "stat link");
    assert!(followed.is_file());
    assert!(r.lstat(b"link").await.unwrap().is_symlink());
    assert_eq!(
        r.lstat(b"link").await.unwrap().size,
        4,
        "a symlink's size is its target's length"
    );
    assert_eq!(errno(r.stat(b"dangling").await), Errno::ENOENT);
    let root = r.lstat(b"").await.unwrap();
    assert!(root.is_dir());
    assert_matches_disk(&root, &std::fs::metadata(s.root()).unwrap(), "root");
}

/// A file's attributes are the same whichever call reports them: lstat,
/// stat, fstat, open, the link's attributes, a listing entry.
pub async fn attributes_agree_between_calls(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("f"), b"0123456789").unwrap();
    let lstat = r.lstat(b"f").await.unwrap();
    assert_eq!(r.stat(b"f").await.unwrap(), lstat);
    let (h, opened) = r.open(b"f", of::READ_ONLY, 0, None).await.unwrap();
    assert_eq!(opened, lstat, "open");
    assert_eq!(r.fstat(h).await.unwrap(), lstat, "fstat");
    r.close(h).await.unwrap();
    let listed = r.read_dir_all(b"").await.unwrap();
    let entry = listed.iter().find(|e| &e.name[..] == b"f").unwrap();
    assert_eq!(entry.attr, Some(lstat), "listing");
    let linked = r.link(b"f", b"g").await.unwrap();
    assert_eq!(
        (linked.ino, linked.dev, linked.btime),
        (lstat.ino, lstat.dev, lstat.btime)
    );
    assert_eq!(linked.nlink, 2);
    let created = create(r, b"new", b"x").await;
    assert_eq!(r.lstat(b"new").await.unwrap(), created);
    let dir = r.mkdir(b"d", 0o755, None).await.unwrap();
    assert_eq!(r.lstat(b"d").await.unwrap(), dir);
    let sl = r.symlink(b"f", b"sl", None).await.unwrap();
    assert_eq!(r.lstat(b"sl").await.unwrap(), sl);
}

/// Every file carries its file system's device (the same for all files of
/// one file system) and, where the file system records it, its birth time:
/// ext4 and tmpfs do.
pub async fn birth_time_and_device_identify_files(s: Subject) {
    let r = &*s.remote;
    let root = r.lstat(b"").await.unwrap();
    let first = create(r, b"first", b"").await;
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = create(r, b"second", b"").await;
    let dir = r.mkdir(b"dir", 0o755, None).await.unwrap();
    assert_eq!(first.dev, root.dev);
    assert_eq!(second.dev, root.dev);
    assert_eq!(dir.dev, root.dev);
    assert_ne!(first.ino, second.ino);
    let disk = std::fs::metadata(s.disk("first")).unwrap();
    match disk.created() {
        Ok(born) => {
            assert_eq!(first.btime, Some(system_time(born)));
            assert!(second.btime.unwrap() > first.btime.unwrap(), "born later");
        }
        Err(_) => {
            eprintln!("the temporary directory's file system records no birth times");
            assert_eq!(first.btime, None);
        }
    }
    // A file replaced by another under the same name: a new identity.
    r.unlink(b"first").await.unwrap();
    let again = create(r, b"first", b"").await;
    if again.ino == first.ino && first.btime.is_some() {
        assert_ne!(
            again.btime, first.btime,
            "a reused inode number is told apart by its birth time"
        );
    }
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A file system mounted below the root has its own device, so that equal
/// inode numbers on the two tell different files. Needs root (to mount a
/// tmpfs); without it, or where mounting is not allowed, it checks nothing.
pub async fn a_mount_below_the_root_has_its_own_device(s: Subject) {
    let r = &*s.remote;
    std::fs::create_dir(s.disk("mnt")).unwrap();
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "yonder-contract"])
        .arg(s.disk("mnt"))
        .status();
    if !matches!(mounted, Ok(status) if status.success()) {
        eprintln!("skipped: cannot mount a tmpfs: {mounted:?}");
        return;
    }
    let _unmount = Unmount(s.disk("mnt"));
    let root = r.lstat(b"").await.unwrap();
    let mnt = r.lstat(b"mnt").await.unwrap();
    assert_ne!(
        mnt.dev, root.dev,
        "a mount point has the mounted file system's device"
    );
    let inside = create(r, b"mnt/f", b"tmpfs").await;
    assert_eq!(inside.dev, mnt.dev);
    assert!(inside.btime.is_some(), "tmpfs records birth times");
    let outside = create(r, b"f", b"").await;
    assert_ne!(outside.dev, inside.dev);
    let listed = r.read_dir_all(b"mnt").await.unwrap();
    assert_eq!(listed[0].attr.unwrap().dev, mnt.dev);
    let statfs = r.statfs(b"mnt").await.unwrap();
    let disk = rustix::fs::statvfs(s.disk("mnt")).unwrap();
    assert_eq!(
        statfs.blocks, disk.f_blocks,
        "statfs asks the mounted file system"
    );
}

/// An open file keeps answering fstat after its name is gone.
pub async fn fstat_works_after_unlink(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("f"), b"abc").unwrap();
    let (h, opened) = r.open(b"f", of::READ_WRITE, 0, None).await.unwrap();
    r.unlink(b"f").await.unwrap();
    put(r, h, 3, b"def").await.unwrap();
    let a = r.fstat(h).await.unwrap();
    assert_eq!((a.ino, a.nlink, a.size), (opened.ino, 0, 6));
    assert_eq!(r.read(h, 0, 10).await.unwrap(), b"abcdef");
    r.close(h).await.unwrap();
}

// ---------------------------------------------------------------------------
// Errors

/// Every operation on a missing name fails with ENOENT, and so does a
/// creation in a missing directory.
pub async fn missing_names_are_enoent(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("file"), b"").unwrap();
    let m = b"missing";
    assert_eq!(errno(r.lstat(m).await), Errno::ENOENT);
    assert_eq!(errno(r.stat(m).await), Errno::ENOENT);
    assert_eq!(errno(r.read_dir_page(m, None, 10).await), Errno::ENOENT);
    assert_eq!(errno(r.open(m, of::READ_ONLY, 0, None).await), Errno::ENOENT);
    assert_eq!(errno(r.open_read(m, of::READ_ONLY, 10).await), Errno::ENOENT);
    assert_eq!(errno(r.readlink(m).await), Errno::ENOENT);
    assert_eq!(errno(r.unlink(m).await), Errno::ENOENT);
    assert_eq!(errno(r.rmdir(m).await), Errno::ENOENT);
    assert_eq!(errno(r.rename(m, b"x", NO_FLAGS).await), Errno::ENOENT);
    assert_eq!(errno(r.rename(b"file", m, EXCHANGE).await), Errno::ENOENT);
    assert_eq!(errno(r.link(m, b"x").await), Errno::ENOENT);
    assert_eq!(errno(r.statfs(m).await), Errno::ENOENT);
    assert_eq!(errno(r.getxattr(m, b"user.x").await), Errno::ENOENT);
    assert_eq!(
        errno(r.setxattr(m, b"user.x", b"v", XattrMode::Either).await),
        Errno::ENOENT
    );
    assert_eq!(errno(r.listxattr(m).await), Errno::ENOENT);
    assert_eq!(errno(r.removexattr(m, b"user.x").await), Errno::ENOENT);
    assert_eq!(errno(r.access(m, access_mask::EXISTS).await), Errno::ENOENT);
    let chmod = SetAttr {
        mode: Some(0o600),
        ..Default::default()
    };
    assert_eq!(
        errno(r.setattr(path_target("missing"), chmod).await),
        Errno::ENOENT
    );
    // Creations in a missing directory.
    let flags = of::WRITE_ONLY | of::CREATE;
    assert_eq!(
        errno(r.open(b"missing/f", flags, 0o644, None).await),
        Errno::ENOENT
    );
    assert_eq!(errno(r.mkdir(b"missing/d", 0o755, None).await), Errno::ENOENT);
    assert_eq!(
        errno(r.mknod(b"missing/p", file_type::FIFO | 0o644, 0, 0, None).await),
        Errno::ENOENT
    );
    assert_eq!(errno(r.symlink(b"t", b"missing/l", None).await), Errno::ENOENT);
    assert_eq!(errno(r.link(b"file", b"missing/l").await), Errno::ENOENT);
    assert_eq!(
        errno(r.rename(b"file", b"missing/f", NO_FLAGS).await),
        Errno::ENOENT
    );
    assert!(s.disk("file").exists());
}

/// A regular file where a directory is needed: ENOTDIR.
pub async fn a_file_on_the_way_is_enotdir(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("file"), b"").unwrap();
    std::fs::create_dir(s.disk("dir")).unwrap();
    assert_eq!(errno(r.lstat(b"file/below").await), Errno::ENOTDIR);
    assert_eq!(errno(r.stat(b"file/below").await), Errno::ENOTDIR);
    assert_eq!(errno(r.mkdir(b"file/d", 0o755, None).await), Errno::ENOTDIR);
    assert_eq!(
        errno(r.open(b"file/f", of::WRITE_ONLY | of::CREATE, 0o644, None).await),
        Errno::ENOTDIR
    );
    assert_eq!(errno(r.read_dir_page(b"file", None, 10).await), Errno::ENOTDIR);
    assert_eq!(errno(r.rmdir(b"file").await), Errno::ENOTDIR);
    assert_eq!(errno(r.rename(b"dir", b"file", NO_FLAGS).await), Errno::ENOTDIR);
    assert_eq!(
        errno(r.open(b"file", of::READ_ONLY | of::DIRECTORY, 0, None).await),
        Errno::ENOTDIR
    );
}

/// A directory where a non-directory is needed: EISDIR.
pub async fn directories_are_eisdir(s: Subject) {
    let r = &*s.remote;
    std::fs::create_dir(s.disk("dir")).unwrap();
    std::fs::write(s.disk("file"), b"").unwrap();
    assert_eq!(
        errno(r.open(b"dir", of::WRITE_ONLY, 0, None).await),
        Errno::EISDIR
    );
    assert_eq!(
        errno(r.open(b"dir", of::READ_WRITE, 0, None).await),
        Errno::EISDIR
    );
    assert_eq!(errno(r.unlink(b"dir").await), Errno::EISDIR);
    assert_eq!(errno(r.rename(b"file", b"dir", NO_FLAGS).await), Errno::EISDIR);
    let truncate = SetAttr {
        size: Some(0),
        ..Default::default()
    };
    assert_eq!(
        errno(r.setattr(path_target("dir"), truncate).await),
        Errno::EISDIR
    );
    // A directory opens for reading, but does not read as a file.
    let (h, attr) = r
        .open(b"dir", of::READ_ONLY | of::DIRECTORY, 0, None)
        .await
        .unwrap();
    assert!(attr.is_dir());
    assert_eq!(errno(r.read(h, 0, 10).await), Errno::EISDIR);
    r.close(h).await.unwrap();
}

/// Creating over an existing name: EEXIST, whatever the creation.
pub async fn existing_names_are_eexist(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("file"), b"keep").unwrap();
    std::fs::create_dir(s.disk("dir")).unwrap();
    let excl = of::WRITE_ONLY | of::CREATE | of::EXCLUSIVE;
    for name in [&b"file"[..], b"dir"] {
        assert_eq!(errno(r.mkdir(name, 0o755, None).await), Errno::EEXIST);
        assert_eq!(errno(r.open(name, excl, 0o644, None).await), Errno::EEXIST);
        assert_eq!(
            errno(r.mknod(name, file_type::FIFO | 0o644, 0, 0, None).await),
            Errno::EEXIST
        );
        assert_eq!(errno(r.symlink(b"x", name, None).await), Errno::EEXIST);
        assert_eq!(errno(r.link(b"file", name).await), Errno::EEXIST);
    }
    std::fs::write(s.disk("other"), b"").unwrap();
    assert_eq!(errno(r.rename(b"other", b"file", NOREPLACE).await), Errno::EEXIST);
    r.setxattr(b"file", b"user.a", b"1", XattrMode::Create)
        .await
        .unwrap();
    assert_eq!(
        errno(r.setxattr(b"file", b"user.a", b"2", XattrMode::Create).await),
        Errno::EEXIST
    );
    assert_eq!(std::fs::read(s.disk("file")).unwrap(), b"keep");
}

/// A directory with entries can be neither removed nor replaced.
pub async fn non_empty_directories_are_enotempty(s: Subject) {
    let r = &*s.remote;
    std::fs::create_dir_all(s.disk("full/sub")).unwrap();
    std::fs::create_dir(s.disk("empty")).unwrap();
    assert_eq!(errno(r.rmdir(b"full").await), Errno::ENOTEMPTY);
    assert_eq!(
        errno(r.rename(b"empty", b"full", NO_FLAGS).await),
        Errno::ENOTEMPTY
    );
    r.rename(b"full/sub", b"empty", NO_FLAGS).await.unwrap();
    r.rmdir(b"full").await.unwrap();
}

/// A path whose `..` climbs above the root is refused with EACCES by every
/// operation, and nothing outside the root is touched.
pub async fn escaping_the_root_is_eacces(s: Subject) {
    let r = &*s.remote;
    std::fs::create_dir(s.disk("a")).unwrap();
    std::fs::write(s.disk("f"), b"x").unwrap();
    let outside = s.root().parent().unwrap().join(format!(
        "{}-outside",
        s.root().file_name().unwrap().to_string_lossy()
    ));
    let out = format!("../{}", outside.file_name().unwrap().to_string_lossy());
    let out = out.as_bytes();
    for bad in [
        &b"../etc/passwd"[..],
        b"a/../../x",
        b"..",
        b"a/../..",
        b"/../x",
        out,
    ] {
        let show = String::from_utf8_lossy(bad).into_owned();
        assert_eq!(errno(r.lstat(bad).await), Errno::EACCES, "lstat {show}");
        assert_eq!(errno(r.stat(bad).await), Errno::EACCES, "stat {show}");
        assert_eq!(
            errno(r.read_dir_page(bad, None, 10).await),
            Errno::EACCES,
            "readdir {show}"
        );
        assert_eq!(errno(r.readlink(bad).await), Errno::EACCES, "readlink {show}");
        assert_eq!(errno(r.statfs(bad).await), Errno::EACCES, "statfs {show}");
        assert_eq!(errno(r.access(bad, 0).await), Errno::EACCES, "access {show}");
        assert_eq!(errno(r.listxattr(bad).await), Errno::EACCES, "listxattr {show}");
        assert_eq!(
            errno(r.getxattr(bad, b"user.x").await),
            Errno::EACCES,
            "getxattr {show}"
        );
    }
    let create = of::READ_WRITE | of::CREATE;
    assert_eq!(errno(r.open(out, create, 0o644, None).await), Errno::EACCES);
    assert_eq!(
        errno(r.open_read(b"../x", of::READ_ONLY, 10).await),
        Errno::EACCES
    );
    assert_eq!(errno(r.mkdir(out, 0o755, None).await), Errno::EACCES);
    assert_eq!(
        errno(r.mknod(out, file_type::FIFO | 0o644, 0, 0, None).await),
        Errno::EACCES
    );
    assert_eq!(errno(r.symlink(b"f", out, None).await), Errno::EACCES);
    assert_eq!(errno(r.link(b"f", out).await), Errno::EACCES);
    assert_eq!(errno(r.rename(b"f", out, NO_FLAGS).await), Errno::EACCES);
    assert!(!outside.exists(), "nothing was created outside the root");
    // Existing files outside: the parent of the root exists.
    assert_eq!(errno(r.unlink(b"../x").await), Errno::EACCES);
    assert_eq!(errno(r.rmdir(b"a/../..").await), Errno::EACCES);
    assert_eq!(errno(r.link(b"../x", b"y").await), Errno::EACCES);
    assert_eq!(errno(r.rename(b"../x", b"y", NO_FLAGS).await), Errno::EACCES);
    assert_eq!(
        errno(r.setxattr(b"..", b"user.x", b"v", XattrMode::Either).await),
        Errno::EACCES
    );
    assert_eq!(errno(r.removexattr(b"..", b"user.x").await), Errno::EACCES);
    let chmod = SetAttr {
        mode: Some(0o777),
        ..Default::default()
    };
    assert_eq!(errno(r.setattr(path_target(".."), chmod).await), Errno::EACCES);
    assert!(s.disk("f").exists() && s.disk("a").is_dir());
}

/// `.`, empty components, a leading `/` and a `..` that stays inside all
/// resolve below the root. Symlink targets are not sandboxed: they are
/// content, followed as the remote kernel follows them.
pub async fn paths_resolve_below_the_root(s: Subject) {
    let r = &*s.remote;
    std::fs::create_dir(s.disk("a")).unwrap();
    std::fs::write(s.disk("b"), b"x").unwrap();
    let root = r.lstat(b"").await.unwrap().ino;
    for same in [&b"."[..], b"/", b"a/..", b"./a/../"] {
        assert_eq!(
            r.lstat(same).await.unwrap().ino,
            root,
            "{}",
            String::from_utf8_lossy(same)
        );
    }
    for b in [&b"a/../b"[..], b"/b", b"./b", b"a//../b", b"//b"] {
        assert_eq!(
            r.lstat(b).await.unwrap().size,
            1,
            "{}",
            String::from_utf8_lossy(b)
        );
    }
    let (h, _) = r
        .open(b"/a/../new", of::WRITE_ONLY | of::CREATE, 0o644, None)
        .await
        .unwrap();
    r.close(h).await.unwrap();
    assert!(s.disk("new").exists());
    r.symlink(b"../../../etc", b"a/up", None).await.unwrap();
    assert_eq!(r.readlink(b"a/up").await.unwrap(), b"../../../etc");
}

/// The root itself cannot be removed or renamed, or replaced by a rename:
/// EBUSY, as for a mount point.
pub async fn the_root_cannot_be_removed_or_replaced(s: Subject) {
    let r = &*s.remote;
    std::fs::create_dir(s.disk("d")).unwrap();
    for root in [&b""[..], b".", b"/", b"d/.."] {
        let show = String::from_utf8_lossy(root).into_owned();
        assert_eq!(errno(r.rmdir(root).await), Errno::EBUSY, "rmdir {show:?}");
        assert_eq!(errno(r.unlink(root).await), Errno::EBUSY, "unlink {show:?}");
        assert_eq!(
            errno(r.rename(root, b"x", NO_FLAGS).await),
            Errno::EBUSY,
            "rename {show:?}"
        );
        assert_eq!(
            errno(r.rename(b"d", root, NO_FLAGS).await),
            Errno::EBUSY,
            "rename onto {show:?}"
        );
    }
    assert!(s.root().is_dir() && s.disk("d").is_dir());
}

/// A NUL byte cannot reach a system call: EINVAL.
pub async fn nul_bytes_are_einval(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("f"), b"").unwrap();
    assert_eq!(errno(r.lstat(b"f\0x").await), Errno::EINVAL);
    assert_eq!(errno(r.mkdir(b"d\0x", 0o755, None).await), Errno::EINVAL);
    assert_eq!(errno(r.symlink(b"t\0x", b"l", None).await), Errno::EINVAL);
    assert_eq!(errno(r.getxattr(b"f", b"user.\0x").await), Errno::EINVAL);
    assert_eq!(
        errno(r.setxattr(b"f", b"user.\0x", b"v", XattrMode::Either).await),
        Errno::EINVAL
    );
    assert!(!s.disk("l").exists());
}

/// A closed handle (and one never given out) fails every handle call
/// with EBADF; handles are not reused.
pub async fn closed_handles_are_ebadf(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("f"), b"data").unwrap();
    let (h, _) = r.open(b"f", of::READ_WRITE, 0, None).await.unwrap();
    r.close(h).await.unwrap();
    let (other, _) = r.open(b"f", of::READ_WRITE, 0, None).await.unwrap();
    assert_ne!(other, h, "a handle is not reused");
    for bad in [h, Handle(999_999_999)] {
        assert_eq!(errno(r.read(bad, 0, 1).await), Errno::EBADF);
        assert_eq!(errno(put(r, bad, 0, b"x").await), Errno::EBADF);
        assert_eq!(errno(r.fsync(bad, false).await), Errno::EBADF);
        assert_eq!(errno(r.fstat(bad).await), Errno::EBADF);
        let truncate = SetAttr {
            size: Some(0),
            ..Default::default()
        };
        assert_eq!(
            errno(r.setattr(Target::Handle(bad), truncate).await),
            Errno::EBADF
        );
        assert_eq!(errno(r.fallocate(bad, 0, 10, 0).await), Errno::EBADF);
        assert_eq!(errno(r.lseek(bad, 0, SeekWhence::Data).await), Errno::EBADF);
        assert_eq!(errno(r.close(bad).await), Errno::EBADF);
    }
    r.close(other).await.unwrap();
    assert_eq!(std::fs::read(s.disk("f")).unwrap(), b"data");
}

/// A read-only handle does not write and a write-only one does not read
/// (EBADF), as the kernel's descriptors.
pub async fn handles_read_and_write_as_opened(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("f"), b"data").unwrap();
    let (ro, _) = r.open(b"f", of::READ_ONLY, 0, None).await.unwrap();
    assert_eq!(errno(put(r, ro, 0, b"x").await), Errno::EBADF);
    assert_eq!(r.read(ro, 0, 10).await.unwrap(), b"data");
    let (wo, _) = r.open(b"f", of::WRITE_ONLY, 0, None).await.unwrap();
    assert_eq!(errno(r.read(wo, 0, 10).await), Errno::EBADF);
    assert_eq!(put(r, wo, 0, b"DA").await.unwrap(), 2);
    r.close(ro).await.unwrap();
    r.close(wo).await.unwrap();
    assert_eq!(std::fs::read(s.disk("f")).unwrap(), b"DAta");
}

// ---------------------------------------------------------------------------
// Opening, reading, writing

/// Writes at offsets, reads back (short at the end, empty past it), syncs.
pub async fn read_write_fsync_close(s: Subject) {
    let r = &*s.remote;
    let flags = of::READ_WRITE | of::CREATE | of::EXCLUSIVE;
    let (h, attr) = r.open(b"new", flags, 0o640, None).await.unwrap();
    assert!(attr.is_file());
    assert_eq!((attr.permissions(), attr.size), (0o640, 0));
    assert_eq!(put(r, h, 0, b"hello world").await.unwrap(), 11);
    assert_eq!(put(r, h, 6, b"WORLD").await.unwrap(), 5);
    r.fsync(h, false).await.unwrap();
    r.fsync(h, true).await.unwrap();
    assert_eq!(r.read(h, 0, 100).await.unwrap(), b"hello WORLD");
    assert_eq!(r.read(h, 6, 3).await.unwrap(), b"WOR");
    assert_eq!(r.read(h, 9, 100).await.unwrap(), b"LD");
    assert_eq!(r.read(h, 11, 10).await.unwrap(), b"");
    assert_eq!(r.read(h, 100, 10).await.unwrap(), b"");
    assert_eq!(r.read(h, 0, 0).await.unwrap(), b"");
    assert_eq!(r.fstat(h).await.unwrap().size, 11);
    r.close(h).await.unwrap();
    assert_eq!(std::fs::read(s.disk("new")).unwrap(), b"hello WORLD");
    let disk = std::fs::metadata(s.disk("new")).unwrap();
    assert_eq!(disk.permissions().mode() & 0o7777, 0o640);
}

/// `CREATE` makes a file with exactly the mode asked (no umask), or opens
/// the existing one as it is; `EXCLUSIVE` insists on making it;
/// `TRUNCATE` empties; `APPEND` writes at the end whatever the offset;
/// `NOFOLLOW` refuses a final symlink (ELOOP).
pub async fn open_creates_truncates_and_appends(s: Subject) {
    let r = &*s.remote;
    let create = of::WRITE_ONLY | of::CREATE;
    for (name, mode) in [(&b"a"[..], 0o777), (b"b", 0o600), (b"c", 0o4755), (b"d", 0o000)] {
        let (h, attr) = r.open(name, create, mode, None).await.unwrap();
        assert_eq!(attr.permissions(), mode, "{}", String::from_utf8_lossy(name));
        r.close(h).await.unwrap();
        let disk = std::fs::metadata(s.disk(std::str::from_utf8(name).unwrap())).unwrap();
        assert_eq!(disk.permissions().mode() & 0o7777, mode);
    }
    std::fs::write(s.disk("f"), b"existing").unwrap();
    std::fs::set_permissions(s.disk("f"), std::fs::Permissions::from_mode(0o640)).unwrap();
    let (h, attr) = r.open(b"f", create, 0o777, None).await.unwrap();
    assert_eq!(
        (attr.size, attr.permissions()),
        (8, 0o640),
        "an existing file is opened as it is"
    );
    r.close(h).await.unwrap();
    let (h, _) = r.open(b"f", of::WRITE_ONLY | of::APPEND, 0, None).await.unwrap();
    assert_eq!(put(r, h, 0, b"!").await.unwrap(), 1);
    assert_eq!(put(r, h, 3, b"?").await.unwrap(), 1);
    r.close(h).await.unwrap();
    assert_eq!(std::fs::read(s.disk("f")).unwrap(), b"existing!?");
    let (h, a) = r
        .open(b"f", of::READ_WRITE | of::TRUNCATE, 0, None)
        .await
        .unwrap();
    assert_eq!(a.size, 0);
    assert_eq!(r.read(h, 0, 10).await.unwrap(), b"");
    r.close(h).await.unwrap();
    assert_eq!(std::fs::read(s.disk("f")).unwrap(), b"");
    std::os::unix::fs::symlink("f", s.disk("link")).unwrap();
    assert_eq!(
        errno(r.open(b"link", of::READ_ONLY | of::NOFOLLOW, 0, None).await),
        Errno::ELOOP
    );
    let (h, a) = r.open(b"link", of::READ_ONLY, 0, None).await.unwrap();
    assert!(a.is_file(), "open follows a symlink");
    r.close(h).await.unwrap();
    // Created through a dangling symlink: the target appears.
    std::os::unix::fs::symlink("target", s.disk("dangling")).unwrap();
    let (h, _) = r.open(b"dangling", create, 0o644, None).await.unwrap();
    r.close(h).await.unwrap();
    assert!(s.disk("target").is_file());
    // Sync flags and NOATIME are accepted.
    let flags = of::READ_WRITE | of::SYNC | of::DSYNC | of::NOATIME;
    let (h, _) = r.open(b"f", flags, 0, None).await.unwrap();
    put(r, h, 0, b"synced").await.unwrap();
    r.close(h).await.unwrap();
}

/// Flags this side does not know are refused (EINVAL), not ignored: a newer
/// client's flag must not silently do nothing.
pub async fn open_refuses_unknown_flags(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("f"), b"").unwrap();
    assert_eq!(
        errno(r.open(b"f", of::READ_ONLY | 1 << 20, 0, None).await),
        Errno::EINVAL
    );
    assert_eq!(errno(r.open(b"f", of::ACCESS_MASK, 0, None).await), Errno::EINVAL);
    assert_eq!(
        errno(
            r.open(b"g", of::WRITE_ONLY | of::CREATE | 1 << 31, 0o644, None)
                .await
        ),
        Errno::EINVAL
    );
    assert!(!s.disk("g").exists());
}

/// `open_read` opens an existing file for reading and returns its start;
/// fewer bytes than asked for means the whole file. It does not read a
/// FIFO, and refuses flags that would write or create (EINVAL).
pub async fn open_read_returns_the_start_of_the_file(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("small"), b"tiny").unwrap();
    std::fs::write(s.disk("big"), vec![9u8; 300_000]).unwrap();
    let (h, attr, data) = r.open_read(b"small", of::READ_ONLY, 65536).await.unwrap();
    assert_eq!((attr.size, &data[..]), (4, &b"tiny"[..]));
    let lstat = r.lstat(b"small").await.unwrap();
    assert_eq!(
        (attr.ino, attr.mtime, attr.mode),
        (lstat.ino, lstat.mtime, lstat.mode)
    );
    r.close(h).await.unwrap();
    let (h, _, data) = r.open_read(b"big", of::READ_ONLY, 65536).await.unwrap();
    assert_eq!(data.len(), 65536);
    assert_eq!(
        r.read(h, 65536, 10).await.unwrap(),
        vec![9u8; 10],
        "the handle reads on"
    );
    r.close(h).await.unwrap();
    let (h, _, data) = r.open_read(b"big", of::READ_ONLY, 0).await.unwrap();
    assert!(data.is_empty());
    r.close(h).await.unwrap();
    r.mknod(b"fifo", file_type::FIFO | 0o600, 0, 0, None)
        .await
        .unwrap();
    let (h, attr, data) = r
        .open_read(b"fifo", of::READ_ONLY | of::NONBLOCK, 4096)
        .await
        .unwrap();
    assert!(data.is_empty() && attr.file_type() == file_type::FIFO);
    r.close(h).await.unwrap();
    for flags in [
        of::WRITE_ONLY,
        of::READ_WRITE,
        of::READ_ONLY | of::CREATE,
        of::READ_ONLY | of::TRUNCATE,
    ] {
        assert_eq!(
            errno(r.open_read(b"small", flags, 10).await),
            Errno::EINVAL,
            "{flags:#x}"
        );
    }
    assert_eq!(std::fs::read(s.disk("small")).unwrap(), b"tiny");
}

/// A write past the end leaves a hole that reads as zeros.
pub async fn writes_past_the_end_leave_a_hole(s: Subject) {
    let r = &*s.remote;
    let (h, _) = r
        .open(b"f", of::READ_WRITE | of::CREATE, 0o644, None)
        .await
        .unwrap();
    put(r, h, 1 << 20, b"end").await.unwrap();
    assert_eq!(r.fstat(h).await.unwrap().size, (1 << 20) + 3);
    let data = r.read(h, (1 << 20) - 2, 10).await.unwrap();
    assert_eq!(data, b"\0\0end");
    r.close(h).await.unwrap();
}

/// FIFOs have no offsets: a write goes in and a read takes what is there,
/// whatever offsets they name.
pub async fn streams_read_and_write_without_offsets(s: Subject) {
    let r = &*s.remote;
    r.mknod(b"fifo", file_type::FIFO | 0o600, 0, 0, None)
        .await
        .unwrap();
    let (h, _) = r.open(b"fifo", of::READ_WRITE, 0, None).await.unwrap();
    assert_eq!(put(r, h, 77, b"abc").await.unwrap(), 3);
    assert_eq!(r.read(h, 1234, 100).await.unwrap(), b"abc");
    r.close(h).await.unwrap();
}

/// Files larger than one call moves, through `transfer`'s pipelines.
pub async fn large_reads_and_writes_are_split_and_pipelined(s: Subject) {
    let data: Vec<u8> = (0..9_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let flags = of::WRITE_ONLY | of::CREATE | of::TRUNCATE;
    let (h, _) = s.remote.open(b"big", flags, 0o644, None).await.unwrap();
    let pipeline = yonder_remote::transfer::Pipeline {
        chunk: 1 << 20,
        depth: 8,
    };
    let written = yonder_remote::transfer::write_from(s.remote.clone(), h, 0, pipeline, &mut &data[..])
        .await
        .unwrap();
    assert_eq!(written, data.len() as u64);
    s.remote.close(h).await.unwrap();
    assert!(std::fs::read(s.disk("big")).unwrap() == data);
    let (h, _) = s.remote.open(b"big", of::READ_ONLY, 0, None).await.unwrap();
    let mut out = Vec::new();
    let read = yonder_remote::transfer::read_to(s.remote.clone(), h, 0, pipeline, &mut out)
        .await
        .unwrap();
    assert_eq!(read, data.len() as u64);
    assert!(out == data);
    s.remote.close(h).await.unwrap();
}

/// Calls run concurrently: a read waiting on a FIFO holds up none of 64
/// others.
pub async fn sixty_four_requests_in_flight_around_a_slow_one(s: Subject) {
    for i in 0..64 {
        std::fs::write(s.disk(&format!("f{i}")), vec![0u8; i]).unwrap();
    }
    let r = &s.remote;
    r.mknod(b"fifo", file_type::FIFO | 0o600, 0, 0, None)
        .await
        .unwrap();
    let (fifo, _) = r.open(b"fifo", of::READ_WRITE, 0, None).await.unwrap();
    let remote = r.clone();
    let slow = tokio::spawn(async move { remote.read(fifo, 0, 5).await });
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64usize {
        let remote = r.clone();
        tasks.spawn(async move { (i, remote.lstat(format!("f{i}").as_bytes()).await) });
    }
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, attr) = joined.unwrap();
        assert_eq!(attr.unwrap().size, i as u64);
        done += 1;
    }
    assert_eq!(done, 64);
    assert!(
        !slow.is_finished(),
        "the FIFO read is still waiting after 64 lstats"
    );
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(s.disk("fifo"))
        .unwrap();
    std::io::Write::write_all(&mut writer, b"ready").unwrap();
    assert_eq!(slow.await.unwrap().unwrap(), b"ready");
    r.close(fifo).await.unwrap();
}

// ---------------------------------------------------------------------------
// Listings

fn tree_budget(max_bytes: u32, max_depth: u32) -> TreeBudget {
    TreeBudget {
        max_bytes,
        max_entries: 1 << 16,
        max_depth,
        file_max: 16 << 10,
        data_bytes: 1 << 20,
    }
}

/// A rich listing (`ListTree`) pages a large directory by bytes, not by a
/// fixed count: 5,000 entries in a few round trips, each exactly once, with
/// attributes and xattr names, continued through the cursor.
pub async fn list_tree_pages_a_large_directory_by_bytes(s: Subject) {
    let r = &*s.remote;
    std::fs::create_dir(s.disk("big")).unwrap();
    for i in 0..5000 {
        std::fs::write(s.disk(&format!("big/f{i:05}")), b"").unwrap();
    }
    let (mut cursor, mut seen, mut pages) = (None, Vec::new(), 0);
    loop {
        let tree = r
            .list_tree(b"big", cursor, tree_budget(256 << 10, 0))
            .await
            .unwrap();
        pages += 1;
        assert_eq!(tree.dirs.len(), 1, "depth 0: the directory alone");
        assert_eq!(&tree.dirs[0].path[..], b"big");
        for e in &tree.dirs[0].entries {
            let name = String::from_utf8(e.entry.name.to_vec()).unwrap();
            let attr = e.entry.attr.expect("attributes come with the entry");
            let disk = std::fs::symlink_metadata(s.disk(&format!("big/{name}"))).unwrap();
            assert_eq!((attr.ino, attr.size), (disk.ino(), disk.size()), "{name}");
            assert!(
                e.entry.xattrs.is_some(),
                "{name}: xattr names come with the entry"
            );
            seen.push(name);
        }
        match tree.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(
        (2..=4).contains(&pages),
        "{pages} pages of 256 KiB for 5,000 entries"
    );
    seen.sort();
    let expected: Vec<String> = (0..5000).map(|i| format!("f{i:05}")).collect();
    assert_eq!(seen, expected, "every entry exactly once");
}

/// Once the directory asked for is complete, the answer carries the
/// complete listings of the directories below it (named by their paths
/// from the root, depth first, each after its parent) as deep and as far
/// as the budget goes, and the contents of small regular files: never a
/// large file's, a FIFO's, or anything through a symlink.
pub async fn list_tree_carries_the_tree_below_and_small_files(s: Subject) {
    let r = &*s.remote;
    for d in ["t", "t/a", "t/a/b", "t/a/b/c", "t/z"] {
        std::fs::create_dir(s.disk(d)).unwrap();
    }
    std::fs::write(s.disk("t/a/small"), b"hello").unwrap();
    std::fs::write(s.disk("t/a/empty"), b"").unwrap();
    std::fs::write(s.disk("t/a/b/c/deep"), b"deep down").unwrap();
    std::fs::write(s.disk("t/z/large"), vec![1u8; 64 << 10]).unwrap();
    std::os::unix::fs::symlink("../a/small", s.disk("t/z/link")).unwrap();
    std::os::unix::fs::symlink("../../", s.disk("t/z/up")).unwrap();
    // mkfifo, not rustix's mkfifoat, which Apple's systems lack.
    let fifo = std::ffi::CString::new(s.disk("t/z/fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

    let tree = r.list_tree(b"t", None, tree_budget(1 << 20, 64)).await.unwrap();
    assert_eq!(tree.next, None);
    let paths: Vec<String> = tree
        .dirs
        .iter()
        .map(|d| String::from_utf8(d.path.to_vec()).unwrap())
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(sorted, ["t", "t/a", "t/a/b", "t/a/b/c", "t/z"]);
    assert_eq!(paths[0], "t", "the directory asked for comes first");
    for (i, p) in paths.iter().enumerate().skip(1) {
        let parent = &p[..p.rfind('/').unwrap()];
        assert!(paths[..i].iter().any(|q| q == parent), "{p} after its parent");
    }
    let data_of = |dir: &str, name: &[u8]| {
        let d = tree.dirs.iter().find(|d| &d.path[..] == dir.as_bytes()).unwrap();
        let e = d.entries.iter().find(|e| &e.entry.name[..] == name).unwrap();
        e.data.as_ref().map(|d| d.to_vec())
    };
    assert_eq!(data_of("t/a", b"small").as_deref(), Some(&b"hello"[..]));
    assert_eq!(data_of("t/a", b"empty").as_deref(), Some(&b""[..]));
    assert_eq!(data_of("t/a/b/c", b"deep").as_deref(), Some(&b"deep down"[..]));
    assert_eq!(data_of("t/z", b"large"), None, "larger than file_max");
    assert_eq!(data_of("t/z", b"link"), None, "symlinks are not followed");
    assert_eq!(data_of("t/z", b"fifo"), None, "only regular files are read");
    assert_eq!(data_of("t/a", b"b"), None);
    let z = tree.dirs.iter().find(|d| &d.path[..] == b"t/z").unwrap();
    assert_eq!(
        z.entries.len(),
        4,
        "every entry of a directory, or the directory not at all"
    );

    // Depth 1: the directories right below, not theirs.
    let tree = r.list_tree(b"t", None, tree_budget(1 << 20, 1)).await.unwrap();
    let mut paths: Vec<&[u8]> = tree.dirs.iter().map(|d| &d.path[..]).collect();
    paths.sort();
    assert_eq!(paths, [&b"t"[..], b"t/a", b"t/z"]);

    // No contents asked for: none come.
    let budget = TreeBudget {
        file_max: 0,
        ..tree_budget(1 << 20, 64)
    };
    let tree = r.list_tree(b"t", None, budget).await.unwrap();
    assert!(tree
        .dirs
        .iter()
        .flat_map(|d| &d.entries)
        .all(|e| e.data.is_none() || e.entry.attr.is_some_and(|a| a.size == 0)));

    // A budget too small for the directories below: they are left out
    // rather than sent in part.
    for i in 0..200 {
        std::fs::write(s.disk(&format!("t/a/many{i:03}")), b"").unwrap();
    }
    let tree = r.list_tree(b"t", None, tree_budget(4096, 64)).await.unwrap();
    for d in &tree.dirs {
        let path = String::from_utf8(d.path.to_vec()).unwrap();
        let on_disk = std::fs::read_dir(s.disk(&path)).unwrap().count();
        assert_eq!(d.entries.len(), on_disk, "{path} is complete");
    }
    assert!(!tree.dirs.iter().any(|d| &d.path[..] == b"t/a"));

    // The root's subdirectories are named without a leading slash.
    let tree = r.list_tree(b"", None, tree_budget(1 << 20, 1)).await.unwrap();
    assert_eq!(&tree.dirs[0].path[..], b"");
    assert!(tree.dirs.iter().any(|d| &d.path[..] == b"t"));
}

/// `ListTree` fails as `ReadDir` does, and refuses a cursor of another
/// directory.
pub async fn list_tree_errors_are_those_of_readdir(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("file"), b"x").unwrap();
    std::fs::create_dir(s.disk("a")).unwrap();
    std::fs::create_dir(s.disk("b")).unwrap();
    for i in 0..100 {
        std::fs::write(s.disk(&format!("a/f{i}")), b"").unwrap();
    }
    let budget = tree_budget(4096, 0);
    assert_eq!(errno(r.list_tree(b"missing", None, budget).await), Errno::ENOENT);
    assert_eq!(errno(r.list_tree(b"file", None, budget).await), Errno::ENOTDIR);
    assert_eq!(errno(r.list_tree(b"../x", None, budget).await), Errno::EACCES);
    let tree = r.list_tree(b"a", None, budget).await.unwrap();
    let cursor = tree.next.expect("100 entries do not fit in 4 KiB");
    assert_eq!(
        errno(r.list_tree(b"b", Some(cursor), budget).await),
        Errno::EINVAL
    );
}

/// A listing comes in pages of at most the entries asked for, each entry
/// with its lstat attributes; every entry exactly once, `.` and `..` never.
pub async fn readdir_pages_with_attributes(s: Subject) {
    let r = &*s.remote;
    std::fs::create_dir(s.disk("many")).unwrap();
    for i in 0..2500 {
        std::fs::write(s.disk(&format!("many/f{i:05}")), vec![b'x'; i % 7]).unwrap();
    }
    std::fs::create_dir(s.disk("many/sub")).unwrap();
    std::os::unix::fs::symlink("f00001", s.disk("many/sl")).unwrap();
    let mut cursor = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = r.read_dir_page(b"many", cursor, 100).await.unwrap();
        assert!(page.entries.len() <= 100);
        pages += 1;
        for e in page.entries {
            let name = String::from_utf8(e.name.into_vec()).unwrap();
            let attr = e.attr.expect("attributes come with the entry");
            let disk = std::fs::symlink_metadata(s.disk(&format!("many/{name}"))).unwrap();
            assert_eq!(
                (attr.ino, attr.mode, attr.size),
                (disk.ino(), disk.mode(), disk.size()),
                "{name}"
            );
            seen.push(name);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(pages >= 25, "{pages} pages");
    seen.sort();
    let mut expected: Vec<String> = (0..2500).map(|i| format!("f{i:05}")).collect();
    expected.extend(["sl".to_string(), "sub".to_string()]);
    expected.sort();
    assert_eq!(seen, expected, "every entry exactly once, no . or ..");
    let all = r.read_dir_all(b"").await.unwrap();
    assert_eq!(all.len(), 1);
    std::fs::create_dir(s.disk("empty")).unwrap();
    let page = r.read_dir_page(b"empty", None, 10).await.unwrap();
    assert!(page.entries.is_empty() && page.next.is_none());
    assert!(r.lstat(b"many/sl").await.unwrap().is_symlink());
}

/// Listing entries carry their xattr names (an empty list for none), so a
/// client answers "no such attribute" without asking.
pub async fn readdir_entries_carry_xattr_names(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("f"), b"").unwrap();
    std::fs::write(s.disk("plain"), b"").unwrap();
    std::fs::create_dir(s.disk("d")).unwrap();
    r.setxattr(b"f", b"user.one", b"1", XattrMode::Either)
        .await
        .unwrap();
    r.setxattr(b"f", b"user.two", b"", XattrMode::Either)
        .await
        .unwrap();
    r.setxattr(b"d", b"user.dir", b"x", XattrMode::Either)
        .await
        .unwrap();
    let listing = r.read_dir_all(b"").await.unwrap();
    let xattrs_of = |name: &[u8]| {
        let entry = listing.iter().find(|e| &e.name[..] == name).unwrap();
        let mut names: Vec<Vec<u8>> = entry
            .xattrs
            .clone()
            .expect("xattr names come with the entry")
            .into_iter()
            .map(|n| n.into_vec())
            .collect();
        names.sort();
        names
    };
    assert_eq!(xattrs_of(b"f"), vec![b"user.one".to_vec(), b"user.two".to_vec()]);
    assert!(xattrs_of(b"plain").is_empty());
    assert_eq!(xattrs_of(b"d"), vec![b"user.dir".to_vec()]);
    let mut listed = r.listxattr(b"f").await.unwrap();
    listed.sort();
    assert_eq!(listed, xattrs_of(b"f"));
}

/// A cursor belongs to the listing that returned it: made up, or sent
/// with another directory, it is refused with EINVAL.
pub async fn readdir_refuses_foreign_cursors(s: Subject) {
    let r = &*s.remote;
    for dir in ["a", "b"] {
        std::fs::create_dir(s.disk(dir)).unwrap();
        for i in 0..5 {
            std::fs::write(s.disk(&format!("{dir}/{i}")), b"").unwrap();
        }
    }
    let page = r.read_dir_page(b"a", None, 2).await.unwrap();
    let cursor = page.next.expect("more entries follow");
    assert_eq!(errno(r.read_dir_page(b"b", Some(cursor), 2).await), Errno::EINVAL);
    assert_eq!(
        errno(r.read_dir_page(b"a", Some(123_456_789), 2).await),
        Errno::EINVAL
    );
    let page = r.read_dir_page(b"a", None, 2).await.unwrap();
    let mut names: Vec<_> = page.entries.iter().map(|e| e.name.to_vec()).collect();
    let rest = r.read_dir_page(b"a", page.next, 100).await.unwrap();
    assert!(rest.next.is_none());
    names.extend(rest.entries.iter().map(|e| e.name.to_vec()));
    names.sort();
    assert_eq!(names, ["0", "1", "2", "3", "4"].map(|n| n.as_bytes().to_vec()));
}

// ---------------------------------------------------------------------------
// Names

/// A plain rename replaces its destination (editors' atomic save);
/// `noreplace` refuses to (EEXIST); `exchange` swaps two names, which must
/// both exist (ENOENT); the two flags together are EINVAL.
pub async fn rename_replaces_and_honours_flags(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("a"), b"A").unwrap();
    std::fs::write(s.disk("b"), b"B").unwrap();
    assert_eq!(errno(r.rename(b"a", b"b", NOREPLACE).await), Errno::EEXIST);
    r.rename(b"a", b"b", EXCHANGE).await.unwrap();
    assert_eq!(std::fs::read(s.disk("a")).unwrap(), b"B");
    assert_eq!(std::fs::read(s.disk("b")).unwrap(), b"A");
    r.rename(b"a", b"b", NO_FLAGS).await.unwrap();
    assert_eq!(std::fs::read(s.disk("b")).unwrap(), b"B");
    assert!(!s.disk("a").exists());
    r.rename(b"b", b"c", NOREPLACE).await.unwrap();
    assert_eq!(errno(r.rename(b"c", b"missing", EXCHANGE).await), Errno::ENOENT);
    let both = RenameFlags {
        noreplace: true,
        exchange: true,
    };
    std::fs::write(s.disk("d"), b"D").unwrap();
    assert_eq!(errno(r.rename(b"c", b"d", both).await), Errno::EINVAL);
    // A file and a directory swap.
    std::fs::create_dir(s.disk("dir")).unwrap();
    r.rename(b"c", b"dir", EXCHANGE).await.unwrap();
    assert!(s.disk("c").is_dir() && s.disk("dir").is_file());
    // Into its own subdirectory: EINVAL.
    std::fs::create_dir(s.disk("c/sub")).unwrap();
    assert_eq!(errno(r.rename(b"c", b"c/sub/c", NO_FLAGS).await), Errno::EINVAL);
    // Across directories, keeping the inode.
    let ino = r.lstat(b"d").await.unwrap().ino;
    r.rename(b"d", b"c/sub/d", NO_FLAGS).await.unwrap();
    assert_eq!(r.lstat(b"c/sub/d").await.unwrap().ino, ino);
    // A rename onto itself does nothing.
    r.rename(b"c/sub/d", b"c/sub/d", NO_FLAGS).await.unwrap();
    assert!(s.disk("c/sub/d").exists());
}

/// A hard link shares its source's inode and raises its link count; a
/// directory cannot be linked (EPERM); a symlink is linked, not followed.
pub async fn hard_links_share_the_inode(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("plain"), b"x").unwrap();
    let a = r.link(b"plain", b"hard").await.unwrap();
    assert_eq!(a.nlink, 2);
    assert_eq!(a.ino, r.lstat(b"plain").await.unwrap().ino);
    assert_eq!(std::fs::metadata(s.disk("plain")).unwrap().nlink(), 2);
    std::fs::create_dir(s.disk("dir")).unwrap();
    assert_eq!(errno(r.link(b"dir", b"dir2").await), Errno::EPERM);
    std::os::unix::fs::symlink("plain", s.disk("sl")).unwrap();
    let a = r.link(b"sl", b"sl2").await.unwrap();
    assert!(a.is_symlink(), "the link itself is linked");
    r.unlink(b"plain").await.unwrap();
    assert_eq!(r.lstat(b"hard").await.unwrap().nlink, 1);
}

/// Symlink targets are stored verbatim (dangling, absolute, climbing out
/// of the root); readlink returns them; readlink of anything else is
/// EINVAL.
pub async fn symlinks_are_stored_verbatim(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("plain"), b"x").unwrap();
    for target in [
        &b"../../somewhere/else"[..],
        b"/etc/passwd",
        b"plain",
        b"a//b/./c/",
        b"\xff\xfe",
    ] {
        let _ = std::fs::remove_file(s.disk("sl"));
        let a = r.symlink(target, b"sl", None).await.unwrap();
        assert!(a.is_symlink());
        assert_eq!(a.size, target.len() as u64);
        assert_eq!(r.readlink(b"sl").await.unwrap(), target);
        assert_eq!(
            std::os::unix::ffi::OsStrExt::as_bytes(std::fs::read_link(s.disk("sl")).unwrap().as_os_str()),
            target
        );
    }
    assert_eq!(errno(r.readlink(b"plain").await), Errno::EINVAL);
    assert_eq!(errno(r.readlink(b"").await), Errno::EINVAL);
}

// ---------------------------------------------------------------------------
// Changing attributes

/// setattr by path changes mode, size, times and owner, and returns the
/// new attributes (lstat's). Times are not followed through a symlink;
/// modes are (Linux has no mode of its own for a link).
pub async fn setattr_by_path(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("f"), b"0123456789").unwrap();
    let set = |attr: SetAttr| r.setattr(path_target("f"), attr);
    let a = set(SetAttr {
        mode: Some(0o600),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(a.permissions(), 0o600);
    assert_eq!(a, r.lstat(b"f").await.unwrap());
    let a = set(SetAttr {
        mode: Some(0o4711),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(a.permissions(), 0o4711);
    let a = set(SetAttr::default()).await.unwrap();
    assert_eq!(
        a,
        r.lstat(b"f").await.unwrap(),
        "an empty setattr changes nothing"
    );
    let before = std::fs::metadata(s.disk("f")).unwrap();
    let stamp = Timespec {
        sec: 1_000_000_000,
        nsec: 123_456_789,
    };
    let a = set(SetAttr {
        mtime: SetTime::Set(stamp),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(a.mtime, stamp);
    let disk = std::fs::metadata(s.disk("f")).unwrap();
    assert_eq!((disk.mtime(), disk.mtime_nsec()), (1_000_000_000, 123_456_789));
    assert_eq!(
        (disk.atime(), disk.atime_nsec()),
        (before.atime(), before.atime_nsec()),
        "atime omitted"
    );
    let a = set(SetAttr {
        atime: SetTime::Now,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(a.atime.sec > 1_000_000_000);
    assert_eq!(a.mtime, stamp, "mtime omitted");
    let bad = Timespec {
        sec: 1,
        nsec: 1_000_000_000,
    };
    let refused = set(SetAttr {
        mtime: SetTime::Set(bad),
        ..Default::default()
    })
    .await;
    assert_eq!(errno(refused), Errno::EINVAL, "nanoseconds out of range");
    // Owner: root may give the file away; anyone may set their own ids.
    let owner = if is_root() {
        (1234, 5678)
    } else {
        (disk.uid(), disk.gid())
    };
    let a = set(SetAttr {
        uid: Some(owner.0),
        gid: Some(owner.1),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!((a.uid, a.gid), owner);
    let a = set(SetAttr {
        uid: Some(u32::MAX),
        gid: Some(u32::MAX),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!((a.uid, a.gid), owner, "-1 leaves an id as it is");
    // Through a symlink: times are the link's own, the mode the target's.
    std::os::unix::fs::symlink("f", s.disk("sl")).unwrap();
    let a = r
        .setattr(
            path_target("sl"),
            SetAttr {
                mtime: SetTime::Set(Timespec {
                    sec: 2_000_000,
                    nsec: 0,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(a.is_symlink() && a.mtime.sec == 2_000_000);
    assert_eq!(std::fs::metadata(s.disk("f")).unwrap().mtime(), 1_000_000_000);
    let a = r
        .setattr(
            path_target("sl"),
            SetAttr {
                mode: Some(0o640),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(a.is_symlink(), "the link's attributes come back");
    assert_eq!(std::fs::metadata(s.disk("f")).unwrap().mode() & 0o7777, 0o640);
}

/// setattr by handle works on a file whose name is gone.
pub async fn setattr_by_handle_after_unlink(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("f"), b"0123456789").unwrap();
    let (h, _) = r.open(b"f", of::READ_WRITE, 0, None).await.unwrap();
    r.unlink(b"f").await.unwrap();
    let stamp = Timespec { sec: 7, nsec: 8 };
    let a = r
        .setattr(
            Target::Handle(h),
            SetAttr {
                size: Some(2),
                mode: Some(0o604),
                mtime: SetTime::Set(stamp),
                atime: SetTime::Set(stamp),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((a.size, a.nlink, a.permissions()), (2, 0, 0o604));
    assert_eq!((a.mtime, a.atime), (stamp, stamp));
    assert_eq!(a, r.fstat(h).await.unwrap());
    assert_eq!(r.read(h, 0, 10).await.unwrap(), b"01");
    if is_root() {
        let a = r
            .setattr(
                Target::Handle(h),
                SetAttr {
                    uid: Some(4321),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(a.uid, 4321);
    }
    r.close(h).await.unwrap();
}

/// A size change grows with zeros or cuts, by path or by handle; a FIFO
/// has no size to set (EINVAL) and setting one does not block.
pub async fn truncate_grows_and_shrinks(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("f"), b"abcdef").unwrap();
    let size = |n| SetAttr {
        size: Some(n),
        ..Default::default()
    };
    assert_eq!(r.setattr(path_target("f"), size(3)).await.unwrap().size, 3);
    assert_eq!(std::fs::read(s.disk("f")).unwrap(), b"abc");
    assert_eq!(r.setattr(path_target("f"), size(5)).await.unwrap().size, 5);
    assert_eq!(std::fs::read(s.disk("f")).unwrap(), b"abc\0\0");
    let (h, _) = r.open(b"f", of::WRITE_ONLY, 0, None).await.unwrap();
    assert_eq!(
        r.setattr(Target::Handle(h), size(1 << 30)).await.unwrap().size,
        1 << 30
    );
    assert_eq!(r.setattr(Target::Handle(h), size(0)).await.unwrap().size, 0);
    r.close(h).await.unwrap();
    let (h, _) = r.open(b"f", of::READ_ONLY, 0, None).await.unwrap();
    assert_eq!(errno(r.setattr(Target::Handle(h), size(1)).await), Errno::EINVAL);
    r.close(h).await.unwrap();
    r.mknod(b"fifo", file_type::FIFO | 0o600, 0, 0, None)
        .await
        .unwrap();
    assert_eq!(
        errno(r.setattr(path_target("fifo"), size(0)).await),
        Errno::EINVAL
    );
}

/// fallocate allocates (growing the file unless KEEP_SIZE), punches holes
/// and zeroes ranges; a mode this side does not know is EOPNOTSUPP.
pub async fn fallocate_allocates_and_punches(s: Subject) {
    let r = &*s.remote;
    let (h, _) = r
        .open(b"f", of::READ_WRITE | of::CREATE, 0o644, None)
        .await
        .unwrap();
    r.fallocate(h, 0, 1 << 20, 0).await.unwrap();
    let disk = std::fs::metadata(s.disk("f")).unwrap();
    assert_eq!(disk.len(), 1 << 20);
    assert!(disk.blocks() * 512 >= 1 << 20, "space is allocated");
    r.fallocate(h, 1 << 20, 1 << 20, fallocate_mode::KEEP_SIZE)
        .await
        .unwrap();
    assert_eq!(
        r.fstat(h).await.unwrap().size,
        1 << 20,
        "KEEP_SIZE keeps the size"
    );
    put(r, h, 0, &[7u8; 12288]).await.unwrap();
    r.fallocate(h, 0, 4096, fallocate_mode::KEEP_SIZE | fallocate_mode::PUNCH_HOLE)
        .await
        .unwrap();
    // tmpfs has no ZERO_RANGE; ext4, xfs and btrfs do.
    let zeroed = match r.fallocate(h, 8192, 4096, fallocate_mode::ZERO_RANGE).await {
        Ok(()) => true,
        Err(err) if err.errno() == Errno::EOPNOTSUPP => false,
        Err(err) => panic!("ZERO_RANGE: {err}"),
    };
    let data = r.read(h, 0, 12288).await.unwrap();
    assert!(data[..4096].iter().all(|b| *b == 0), "punched");
    assert!(data[4096..8192].iter().all(|b| *b == 7));
    assert!(data[8192..].iter().all(|b| *b == if zeroed { 0 } else { 7 }));
    assert_eq!(errno(r.fallocate(h, 0, 1, 1 << 30).await), Errno::EOPNOTSUPP);
    assert_eq!(
        errno(r.fallocate(h, 0, 1, fallocate_mode::PUNCH_HOLE).await),
        Errno::EOPNOTSUPP,
        "a hole is punched only with KEEP_SIZE"
    );
    r.close(h).await.unwrap();
}

/// SEEK_DATA and SEEK_HOLE find data and holes; past the end, ENXIO.
pub async fn lseek_finds_data_and_holes(s: Subject) {
    const DATA: u64 = 3 << 29; // 1.5 GiB
    let r = &*s.remote;
    let disk = std::fs::File::create(s.disk("sparse")).unwrap();
    disk.set_len(DATA).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&disk, &[5; 4096], DATA).unwrap();
    let size = DATA + 4096;
    let (h, _) = r.open(b"sparse", of::READ_ONLY, 0, None).await.unwrap();
    assert_eq!(r.lseek(h, 0, SeekWhence::Data).await.unwrap(), DATA);
    assert_eq!(r.lseek(h, 0, SeekWhence::Hole).await.unwrap(), 0);
    assert_eq!(r.lseek(h, DATA + 1, SeekWhence::Data).await.unwrap(), DATA + 1);
    assert_eq!(r.lseek(h, DATA + 1, SeekWhence::Hole).await.unwrap(), size);
    assert_eq!(errno(r.lseek(h, size, SeekWhence::Data).await), Errno::ENXIO);
    assert_eq!(errno(r.lseek(h, size, SeekWhence::Hole).await), Errno::ENXIO);
    // The seeks leave reads at their offsets.
    assert_eq!(r.read(h, DATA, 2).await.unwrap(), [5, 5]);
    assert_eq!(r.read(h, 0, 2).await.unwrap(), [0, 0]);
    r.close(h).await.unwrap();
}

/// `realpath` takes a host path (not one relative to the root), resolves
/// symlinks and `..`, and answers the canonical absolute path, which must
/// lie within the root: EACCES for anything outside, ENOENT for a missing
/// name, EINVAL for a NUL byte.
pub async fn realpath_resolves_absolute_paths_within_the_root(s: Subject) {
    use std::os::unix::ffi::OsStrExt;
    let r = &*s.remote;
    let root = s.root().canonicalize().unwrap();
    let host = |p: &Path| p.as_os_str().as_bytes().to_vec();
    std::fs::create_dir(s.disk("d")).unwrap();
    std::fs::write(s.disk("d/f"), b"x").unwrap();
    std::os::unix::fs::symlink("d", s.disk("link")).unwrap();
    std::os::unix::fs::symlink("/", s.disk("out")).unwrap();
    assert_eq!(r.realpath(&host(&root)).await.unwrap(), host(&root));
    assert_eq!(
        r.realpath(&host(&root.join("d/../d/"))).await.unwrap(),
        host(&root.join("d"))
    );
    assert_eq!(
        r.realpath(&host(&root.join("link/f"))).await.unwrap(),
        host(&root.join("d/f"))
    );
    assert_eq!(
        errno(r.realpath(&host(&root.join("missing"))).await),
        Errno::ENOENT
    );
    if root != Path::new("/") {
        assert_eq!(errno(r.realpath(&host(&root.join(".."))).await), Errno::EACCES);
        assert_eq!(errno(r.realpath(&host(&root.join("out"))).await), Errno::EACCES);
    }
    assert_eq!(errno(r.realpath(b"/a\0b").await), Errno::EINVAL);
}

/// A ping answers, many at once, alongside other calls, and changes
/// nothing on disk.
pub async fn ping_answers_and_touches_nothing(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("f"), b"x").unwrap();
    let before = r.lstat(b"f").await.unwrap();
    for _ in 0..8 {
        let (a, b, c) = tokio::join!(r.ping(), r.lstat(b"f"), r.ping());
        a.unwrap();
        b.unwrap();
        c.unwrap();
    }
    let after = r.lstat(b"f").await.unwrap();
    assert_eq!(before, after);
    assert_eq!(std::fs::read_dir(&s.root).unwrap().count(), 1);
}

/// Extended attributes: create, replace, either; empty and large values;
/// list and remove; ENODATA for absent ones. Not followed through a
/// symlink.
pub async fn xattrs_set_get_list_remove(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("f"), b"").unwrap();
    assert!(r.listxattr(b"f").await.unwrap().is_empty());
    r.setxattr(b"f", b"user.color", b"blue", XattrMode::Create)
        .await
        .unwrap();
    assert_eq!(
        errno(r.setxattr(b"f", b"user.color", b"red", XattrMode::Create).await),
        Errno::EEXIST
    );
    assert_eq!(
        errno(r.setxattr(b"f", b"user.none", b"x", XattrMode::Replace).await),
        Errno::ENODATA
    );
    r.setxattr(b"f", b"user.color", b"green", XattrMode::Replace)
        .await
        .unwrap();
    r.setxattr(b"f", b"user.empty", b"", XattrMode::Either)
        .await
        .unwrap();
    assert_eq!(r.getxattr(b"f", b"user.color").await.unwrap(), b"green");
    assert_eq!(r.getxattr(b"f", b"user.empty").await.unwrap(), b"");
    let big: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    r.setxattr(b"f", b"user.big", &big, XattrMode::Either)
        .await
        .unwrap();
    assert_eq!(r.getxattr(b"f", b"user.big").await.unwrap(), big);
    let mut names = r.listxattr(b"f").await.unwrap();
    names.sort();
    assert_eq!(
        names,
        vec![
            b"user.big".to_vec(),
            b"user.color".to_vec(),
            b"user.empty".to_vec()
        ]
    );
    r.removexattr(b"f", b"user.color").await.unwrap();
    assert_eq!(errno(r.getxattr(b"f", b"user.color").await), Errno::ENODATA);
    assert_eq!(errno(r.removexattr(b"f", b"user.color").await), Errno::ENODATA);
    // On the link itself: Linux refuses user attributes on symlinks.
    std::os::unix::fs::symlink("f", s.disk("sl")).unwrap();
    assert_eq!(errno(r.getxattr(b"sl", b"user.big").await), Errno::ENODATA);
    assert_eq!(
        errno(r.setxattr(b"sl", b"user.x", b"v", XattrMode::Either).await),
        Errno::EPERM
    );
    assert!(r.listxattr(b"sl").await.unwrap().is_empty());
    // A name outside the known namespaces.
    assert_eq!(
        errno(r.setxattr(b"f", b"bogus.x", b"v", XattrMode::Either).await),
        Errno::EOPNOTSUPP
    );
}

/// statfs reports the file system's figures.
pub async fn statfs_matches_the_disk(s: Subject) {
    let r = &*s.remote;
    std::fs::create_dir(s.disk("d")).unwrap();
    let disk = rustix::fs::statvfs(s.root()).unwrap();
    for path in [&b""[..], b"d"] {
        let st = r.statfs(path).await.unwrap();
        assert_eq!(st.blocks, disk.f_blocks);
        assert_eq!(st.block_size, disk.f_bsize);
        assert_eq!(st.fragment_size, disk.f_frsize);
        assert_eq!(st.files, disk.f_files);
        assert_eq!(st.name_max, disk.f_namemax);
        assert!(st.blocks_free >= st.blocks_available);
    }
}

/// access checks with the serving side's credentials (as access(2) does);
/// mask bits it does not know are EINVAL.
pub async fn access_checks_the_agents_credentials(s: Subject) {
    let r = &*s.remote;
    std::fs::write(s.disk("f"), b"").unwrap();
    std::fs::set_permissions(s.disk("f"), std::fs::Permissions::from_mode(0o644)).unwrap();
    r.access(b"f", access_mask::EXISTS).await.unwrap();
    r.access(b"f", access_mask::READ | access_mask::WRITE)
        .await
        .unwrap();
    // Nobody, not even root, may execute a file without an x bit.
    assert_eq!(errno(r.access(b"f", access_mask::EXECUTE).await), Errno::EACCES);
    std::fs::set_permissions(s.disk("f"), std::fs::Permissions::from_mode(0o744)).unwrap();
    r.access(b"f", access_mask::EXECUTE).await.unwrap();
    std::fs::set_permissions(s.disk("f"), std::fs::Permissions::from_mode(0o000)).unwrap();
    if is_root() {
        r.access(b"f", access_mask::READ | access_mask::WRITE)
            .await
            .unwrap();
    } else {
        assert_eq!(errno(r.access(b"f", access_mask::READ).await), Errno::EACCES);
    }
    assert_eq!(errno(r.access(b"f", 8).await), Errno::EINVAL);
    r.access(b"", access_mask::EXECUTE).await.unwrap();
}

// ---------------------------------------------------------------------------
// Creating and removing

/// mkdir gives exactly the permission and sticky bits asked for (no
/// umask); set-group-id comes from the parent, not the request. rmdir
/// removes an empty directory, unlink a non-directory.
pub async fn mkdir_rmdir_unlink(s: Subject) {
    let r = &*s.remote;
    let a = r.mkdir(b"d", 0o750, None).await.unwrap();
    assert!(a.is_dir());
    assert_eq!(a.permissions(), 0o750);
    assert!(s.disk("d").is_dir());
    assert_eq!(r.mkdir(b"open", 0o777, None).await.unwrap().permissions(), 0o777);
    assert_eq!(r.mkdir(b"tmp", 0o1777, None).await.unwrap().permissions(), 0o1777);
    let a = r.mkdir(b"g", 0o2755, None).await.unwrap();
    assert_eq!(a.permissions(), 0o755, "mkdir does not set set-group-id itself");
    std::fs::set_permissions(s.disk("g"), std::fs::Permissions::from_mode(0o2755)).unwrap();
    let a = r.mkdir(b"g/inherits", 0o755, None).await.unwrap();
    assert_eq!(a.permissions(), 0o2755, "a set-group-id parent passes it on");
    std::fs::write(s.disk("d/inner"), b"x").unwrap();
    assert_eq!(errno(r.rmdir(b"d/inner").await), Errno::ENOTDIR);
    r.unlink(b"d/inner").await.unwrap();
    assert_eq!(errno(r.unlink(b"d/inner").await), Errno::ENOENT);
    r.rmdir(b"d").await.unwrap();
    assert!(!s.disk("d").exists());
    std::os::unix::fs::symlink("open", s.disk("sl")).unwrap();
    r.unlink(b"sl").await.unwrap();
    assert!(s.disk("open").is_dir(), "unlink removes the link, not its target");
}

/// mknod makes FIFOs, regular files and (as root) device nodes with their
/// numbers; directories and symlinks are not its business (EINVAL).
pub async fn mknod_makes_fifos_devices_and_files(s: Subject) {
    let r = &*s.remote;
    let a = r
        .mknod(b"fifo", file_type::FIFO | 0o640, 0, 0, None)
        .await
        .unwrap();
    assert_eq!((a.file_type(), a.permissions()), (file_type::FIFO, 0o640));
    assert!(std::fs::symlink_metadata(s.disk("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let a = r
        .mknod(b"plain", file_type::REGULAR | 0o604, 0, 0, None)
        .await
        .unwrap();
    assert!(a.is_file() && a.permissions() == 0o604 && a.size == 0);
    let a = r.mknod(b"untyped", 0o600, 0, 0, None).await.unwrap();
    assert!(a.is_file(), "no type bits: a regular file");
    if is_root() {
        let a = r
            .mknod(b"null", file_type::CHAR | 0o666, 1, 3, None)
            .await
            .unwrap();
        assert_eq!(a.file_type(), file_type::CHAR);
        assert_eq!((a.rdev_major, a.rdev_minor), (1, 3));
        let disk = std::fs::symlink_metadata(s.disk("null")).unwrap();
        assert!(disk.file_type().is_char_device());
        assert_eq!(disk.rdev() as rustix::fs::Dev, rustix::fs::makedev(1, 3));
        let a = r.lstat(b"null").await.unwrap();
        assert_eq!((a.rdev_major, a.rdev_minor), (1, 3));
    }
    for kind in [file_type::DIRECTORY, file_type::SYMLINK] {
        assert_eq!(
            errno(r.mknod(b"x", kind | 0o755, 0, 0, None).await),
            Errno::EINVAL
        );
    }
    assert!(!s.disk("x").exists());
}

/// A node a call creates goes to the owner the call names, when the serving
/// side may give files away (root); the group of a set-group-id directory
/// wins over the one asked for, and set-id bits survive. An existing file
/// opened with CREATE keeps its owner. Without root, owners are ignored.
pub async fn new_nodes_belong_to_the_owner_given(s: Subject) {
    let r = &*s.remote;
    let owner = Some(Owner { uid: 4242, gid: 4343 });
    let me = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let expect = if is_root() { (4242, 4343) } else { me };
    let (h, a) = r
        .open(b"f", of::WRITE_ONLY | of::CREATE, 0o4755, owner)
        .await
        .unwrap();
    r.close(h).await.unwrap();
    assert_eq!((a.uid, a.gid), expect, "open");
    if is_root() {
        assert_eq!(a.permissions(), 0o4755, "set-user-id survives the chown");
    }
    let a = r.mkdir(b"d", 0o755, owner).await.unwrap();
    assert_eq!((a.uid, a.gid), expect, "mkdir");
    let a = r.mknod(b"p", file_type::FIFO | 0o644, 0, 0, owner).await.unwrap();
    assert_eq!((a.uid, a.gid), expect, "mknod");
    let a = r.symlink(b"f", b"sl", owner).await.unwrap();
    assert_eq!((a.uid, a.gid), expect, "symlink");
    let disk = std::fs::symlink_metadata(s.disk("sl")).unwrap();
    assert_eq!((disk.uid(), disk.gid()), expect);
    std::fs::write(s.disk("mine"), b"").unwrap();
    let (h, a) = r
        .open(b"mine", of::WRITE_ONLY | of::CREATE, 0o644, owner)
        .await
        .unwrap();
    r.close(h).await.unwrap();
    assert_eq!((a.uid, a.gid), me, "an existing file keeps its owner");
    if is_root() {
        std::fs::create_dir(s.disk("sgid")).unwrap();
        std::os::unix::fs::chown(s.disk("sgid"), Some(0), Some(777)).unwrap();
        std::fs::set_permissions(s.disk("sgid"), std::fs::Permissions::from_mode(0o2777)).unwrap();
        let (h, a) = r
            .open(b"sgid/f", of::WRITE_ONLY | of::CREATE, 0o644, owner)
            .await
            .unwrap();
        r.close(h).await.unwrap();
        assert_eq!((a.uid, a.gid), (4242, 777), "the set-group-id directory's group");
        let a = r.mkdir(b"sgid/d", 0o755, owner).await.unwrap();
        assert_eq!((a.uid, a.gid, a.permissions()), (4242, 777, 0o2755));
    }
}
