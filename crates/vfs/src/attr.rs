use yonder_proto::{file_type, Attr, Owner, Timespec};

/// Inode number as the VFS hands it to frontends. The VFS allocates them:
/// the root is always [`ROOT_INO`], every other file gets the next number
/// the first time it is seen, keyed by its [`RemoteId`], so hard links share
/// one and no number ever names two files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ino(pub u64);

/// Handle of an open file or directory, as the VFS hands it to frontends.
/// The VFS's own number: it maps to a remote handle (which a replaced
/// connection changes) and stays the same for the life of the open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fh(pub u64);

/// Where open file and directory handles get their numbers: unique among
/// both, and never 0 (some frontends treat it as "no handle").
#[derive(Default)]
pub(crate) struct FhSource(std::sync::atomic::AtomicU64);

impl FhSource {
    pub fn next(&self) -> Fh {
        Fh(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
    }
}

impl std::fmt::Display for Ino {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for Fh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

pub const ROOT_INO: Ino = Ino(1);

/// What tells two files apart on the remote. An inode number alone does
/// not: a tree may span several file systems, and a freed number is given
/// to the next new file. The birth time, where the remote has one, tells a
/// reused number from the file that had it before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RemoteId {
    pub dev: u64,
    pub ino: u64,
    pub btime: Option<Timespec>,
}

impl RemoteId {
    /// `None` for a remote without inode numbers (an SFTP server reports
    /// none): its files are known by path, and a rename through the VFS
    /// carries the identity along.
    pub fn of(attr: &Attr) -> Option<RemoteId> {
        (attr.ino != 0).then_some(RemoteId {
            dev: attr.dev,
            ino: attr.ino,
            btime: attr.btime,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

impl FileKind {
    /// Kind from the file type bits of a mode; unknown types count as regular
    /// files, which is the least surprising thing to show.
    pub fn from_mode(mode: u32) -> FileKind {
        match mode & file_type::MASK {
            file_type::DIRECTORY => FileKind::Directory,
            file_type::SYMLINK => FileKind::Symlink,
            file_type::FIFO => FileKind::Fifo,
            file_type::CHAR => FileKind::CharDevice,
            file_type::BLOCK => FileKind::BlockDevice,
            file_type::SOCKET => FileKind::Socket,
            _ => FileKind::Regular,
        }
    }

    /// The file type bits of a mode (protocol values, equal to Unix ones).
    pub fn mode_bits(self) -> u32 {
        match self {
            FileKind::Regular => file_type::REGULAR,
            FileKind::Directory => file_type::DIRECTORY,
            FileKind::Symlink => file_type::SYMLINK,
            FileKind::Fifo => file_type::FIFO,
            FileKind::CharDevice => file_type::CHAR,
            FileKind::BlockDevice => file_type::BLOCK,
            FileKind::Socket => file_type::SOCKET,
        }
    }
}

/// Attributes of a file as the VFS reports them: the remote's, with the inode
/// number mapped into the VFS's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileAttr {
    pub ino: Ino,
    pub kind: FileKind,
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub perm: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub size: u64,
    /// Allocated 512-byte blocks.
    pub blocks: u64,
    pub blksize: u32,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
}

impl FileAttr {
    /// The permission bits a regular file is left with once a caller
    /// without the privilege to keep them (CAP_FSETID) changed its
    /// content or owner, as the kernel's `should_remove_suid` decides:
    /// set-user-ID always goes; set-group-ID only with group execute, since
    /// without it the bit marks mandatory locking, not a privilege. `None`
    /// when nothing changes.
    pub fn perm_without_set_id(&self) -> Option<u32> {
        if self.kind != FileKind::Regular {
            return None;
        }
        let kept = if self.perm & 0o010 != 0 {
            self.perm & !0o6000
        } else {
            self.perm & !0o4000
        };
        (kept != self.perm).then_some(kept)
    }

    pub(crate) fn from_remote(ino: Ino, attr: &Attr) -> FileAttr {
        FileAttr {
            ino,
            kind: FileKind::from_mode(attr.mode),
            perm: attr.mode & 0o7777,
            nlink: attr.nlink,
            uid: attr.uid,
            gid: attr.gid,
            rdev_major: attr.rdev_major,
            rdev_minor: attr.rdev_minor,
            size: attr.size,
            blocks: attr.blocks,
            blksize: attr.blksize,
            atime: attr.atime,
            mtime: attr.mtime,
            ctime: attr.ctime,
        }
    }

    /// Full mode: file type bits and permission bits.
    pub fn mode(&self) -> u32 {
        self.kind.mode_bits() | self.perm
    }
}

/// Who asks: the credentials of the process behind a request. The VFS passes
/// them on where the remote needs them, e.g. as the owner of created nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    /// Applied to the mode of created nodes; 0 when the frontend (like the
    /// Linux kernel) already applied it.
    pub umask: u32,
}

impl Caller {
    /// The credentials of the current process, umask 0.
    #[cfg(unix)]
    pub fn current() -> Caller {
        // SAFETY: getuid, getgid and getpid cannot fail and touch no memory.
        let (uid, gid, pid) = unsafe { (libc::getuid(), libc::getgid(), libc::getpid()) };
        Caller {
            uid,
            gid,
            pid: pid as u32,
            umask: 0,
        }
    }

    /// Windows has no uid or gid: the caller is user 0 of group 0, as the
    /// portable agent reports every file's owner.
    #[cfg(windows)]
    pub fn current() -> Caller {
        Caller {
            uid: 0,
            gid: 0,
            pid: std::process::id(),
            umask: 0,
        }
    }

    pub fn owner(&self) -> Owner {
        Owner {
            uid: self.uid,
            gid: self.gid,
        }
    }

    /// Whether the kernel would let this caller keep a file's set-user-ID
    /// and set-group-ID bits through a change (CAP_FSETID): only root is
    /// taken to have it, as the request carries no capabilities.
    pub fn keeps_set_id(&self) -> bool {
        self.uid == 0
    }

    /// Whether `gid` is the caller's group or one of its supplementary
    /// groups (read from `/proc/PID/status`, as requests carry only the
    /// primary one). Root counts as in every group (CAP_FSETID). Groups
    /// that cannot be read count as not held: a set-group-ID bit is then
    /// cleared where a member would have kept it, never kept where it
    /// should go.
    pub fn in_group(&self, gid: u32) -> bool {
        if self.uid == 0 || self.gid == gid {
            return true;
        }
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .is_ok_and(|status| supplementary_groups(&status).any(|g| g == gid))
    }
}

/// The supplementary groups a `/proc/PID/status` lists.
fn supplementary_groups(status: &str) -> impl Iterator<Item = u32> + '_ {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .into_iter()
        .flat_map(|groups| groups.split_whitespace().filter_map(|g| g.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(kind: FileKind, perm: u32) -> FileAttr {
        FileAttr {
            ino: Ino(2),
            kind,
            perm,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev_major: 0,
            rdev_minor: 0,
            size: 0,
            blocks: 0,
            blksize: 4096,
            atime: Timespec::default(),
            mtime: Timespec::default(),
            ctime: Timespec::default(),
        }
    }

    #[test]
    fn set_id_bits_go_as_the_kernel_decides() {
        let kept = |kind, perm| with(kind, perm).perm_without_set_id();
        assert_eq!(kept(FileKind::Regular, 0o6775), Some(0o775));
        assert_eq!(kept(FileKind::Regular, 0o4755), Some(0o755));
        assert_eq!(kept(FileKind::Regular, 0o2775), Some(0o775));
        // Without group execute, set-group-ID marks mandatory locking.
        assert_eq!(kept(FileKind::Regular, 0o6765), Some(0o2765));
        assert_eq!(kept(FileKind::Regular, 0o2765), None);
        assert_eq!(kept(FileKind::Regular, 0o1777), None);
        assert_eq!(kept(FileKind::Directory, 0o2775), None);
    }

    #[test]
    fn only_root_keeps_set_id_bits_and_is_in_every_group() {
        let caller = |uid, gid| Caller {
            uid,
            gid,
            pid: std::process::id(),
            umask: 0,
        };
        assert!(caller(0, 0).keeps_set_id());
        assert!(!caller(1000, 1000).keeps_set_id());
        assert!(caller(0, 0).in_group(4242));
        assert!(caller(1000, 4242).in_group(4242));
        assert!(!caller(1000, 1000).in_group(4_000_000));
        let status = "Name:\tsh\nGid:\t100\t100\t100\t100\nGroups:\t24 27 4242 \nNStgid:\t7\n";
        assert_eq!(supplementary_groups(status).collect::<Vec<_>>(), [24, 27, 4242]);
        assert_eq!(supplementary_groups("Groups:\t\n").count(), 0);
    }
}
