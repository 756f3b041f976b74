//! Messages exchanged between client and agent.
//!
//! Paths are byte strings relative to the agent's root (`b""` or `b"."` is the
//! root itself); Unix file names need not be UTF-8. No operation moves a whole
//! file implicitly: data travels only through `Read` and `Write` on a handle.

use crate::errno::Errno;
use serde::{Deserialize, Serialize};

/// A path relative to the agent's root, as raw bytes.
pub type WirePath = serde_bytes::ByteBuf;

/// Agent-side handle of an open file, valid until `Close`.
///
/// On the wire it is the bare number (`serde(transparent)`), so this type
/// changes nothing of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Handle(pub u64);

impl std::fmt::Display for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// First frame sent by each side (id 0). Field order is frozen across
/// versions so that any version can decode a peer's `Hello` and report the
/// mismatch by number. No field may be added either: a body with bytes
/// after its message does not decode, so an older peer could not read a
/// longer `Hello`. New features are announced in `capabilities`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub capabilities: Vec<String>,
    /// Free text, e.g. "yonder 0.1.0 agent"; shown in diagnostics only.
    pub software: String,
}

/// A point in time with nanosecond precision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

/// File attributes as returned by `lstat`/`stat`.
///
/// `mode` carries the file type bits in their traditional octal values
/// (`0o100000` regular, `0o040000` directory, ...), which all Unix hosts
/// share. Device numbers travel split so that Linux and macOS `dev_t`
/// encodings never meet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    pub ino: u64,
    pub mode: u32,
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
    /// The file system the file lives on, as the remote numbers them: an
    /// inode number is only unique within one (a tree may span several).
    /// Opaque; compared for equality only.
    pub dev: u64,
    /// Birth time where the remote's file system records one. Inode numbers
    /// are reused once freed; `(dev, ino, btime)` tells the file that has a
    /// number now from the one that had it before.
    pub btime: Option<Timespec>,
}

pub mod file_type {
    pub const MASK: u32 = 0o170000;
    pub const SOCKET: u32 = 0o140000;
    pub const SYMLINK: u32 = 0o120000;
    pub const REGULAR: u32 = 0o100000;
    pub const BLOCK: u32 = 0o060000;
    pub const DIRECTORY: u32 = 0o040000;
    pub const CHAR: u32 = 0o020000;
    pub const FIFO: u32 = 0o010000;
}

impl Attr {
    pub fn file_type(&self) -> u32 {
        self.mode & file_type::MASK
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == file_type::DIRECTORY
    }
    pub fn is_file(&self) -> bool {
        self.file_type() == file_type::REGULAR
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type() == file_type::SYMLINK
    }
    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// Portable `open(2)` flags. Values are protocol constants, not host ones.
pub mod open_flags {
    pub const READ_ONLY: u32 = 0;
    pub const WRITE_ONLY: u32 = 1;
    pub const READ_WRITE: u32 = 2;
    pub const ACCESS_MASK: u32 = 3;
    pub const CREATE: u32 = 1 << 4;
    pub const EXCLUSIVE: u32 = 1 << 5;
    pub const TRUNCATE: u32 = 1 << 6;
    pub const APPEND: u32 = 1 << 7;
    pub const NOFOLLOW: u32 = 1 << 8;
    pub const DIRECTORY: u32 = 1 << 9;
    pub const SYNC: u32 = 1 << 10;
    pub const DSYNC: u32 = 1 << 11;
    pub const NONBLOCK: u32 = 1 << 12;
    pub const NOATIME: u32 = 1 << 13;

    /// The protocol bits beside the access mode, with the host's flag for
    /// each: the one table both sides map through.
    #[cfg(unix)]
    const HOST: [(u32, libc::c_int); 10] = [
        (CREATE, libc::O_CREAT),
        (EXCLUSIVE, libc::O_EXCL),
        (TRUNCATE, libc::O_TRUNC),
        (APPEND, libc::O_APPEND),
        (NOFOLLOW, libc::O_NOFOLLOW),
        (DIRECTORY, libc::O_DIRECTORY),
        (SYNC, libc::O_SYNC),
        (DSYNC, libc::O_DSYNC),
        (NONBLOCK, libc::O_NONBLOCK),
        (NOATIME, HOST_NOATIME),
    ];

    #[cfg(any(target_os = "linux", target_os = "android"))]
    const HOST_NOATIME: libc::c_int = libc::O_NOATIME;
    /// A hint only; hosts without it read as usual.
    #[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
    const HOST_NOATIME: libc::c_int = 0;

    /// Whether `flags` are all the protocol's, with a valid access mode:
    /// what a peer that maps them to no host flags (SFTP) still checks.
    pub fn known(flags: u32) -> bool {
        let known = [
            CREATE, EXCLUSIVE, TRUNCATE, APPEND, NOFOLLOW, DIRECTORY, SYNC, DSYNC, NONBLOCK, NOATIME,
        ]
        .iter()
        .fold(ACCESS_MASK, |acc, bit| acc | bit);
        flags & !known == 0 && matches!(flags & ACCESS_MASK, READ_ONLY | WRITE_ONLY | READ_WRITE)
    }

    /// The host's `O_*` flags for `flags`; `None` for bits the protocol
    /// does not know, so that a newer peer's flag is refused rather than
    /// ignored. Descriptor flags (`O_CLOEXEC`) are the caller's to add.
    #[cfg(unix)]
    pub fn to_host(flags: u32) -> Option<libc::c_int> {
        let known = HOST.iter().fold(ACCESS_MASK, |acc, (bit, _)| acc | bit);
        if flags & !known != 0 {
            return None;
        }
        let access = match flags & ACCESS_MASK {
            READ_ONLY => libc::O_RDONLY,
            WRITE_ONLY => libc::O_WRONLY,
            READ_WRITE => libc::O_RDWR,
            _ => return None,
        };
        Some(
            HOST.iter()
                .filter(|(bit, _)| flags & bit != 0)
                .fold(access, |acc, (_, host)| acc | host),
        )
    }

    /// The protocol's flags for host `O_*` flags. Flags without a protocol
    /// equivalent (O_CLOEXEC, O_NOCTTY, O_LARGEFILE, ...) concern only the
    /// local descriptor and are dropped.
    #[cfg(unix)]
    pub fn from_host(host: libc::c_int) -> u32 {
        let access = match host & libc::O_ACCMODE {
            libc::O_WRONLY => WRITE_ONLY,
            libc::O_RDWR => READ_WRITE,
            _ => READ_ONLY,
        };
        let mut flags = HOST
            .iter()
            .filter(|(_, bit)| *bit != 0 && host & bit == *bit)
            .fold(access, |acc, (wire, _)| acc | wire);
        // O_SYNC includes the O_DSYNC bit on Linux: SYNC says both.
        if flags & SYNC != 0 {
            flags &= !DSYNC;
        }
        flags
    }

    /// Whether an open with `flags` may write.
    pub fn writes(flags: u32) -> bool {
        matches!(flags & ACCESS_MASK, WRITE_ONLY | READ_WRITE)
    }

    /// Whether an open with `flags` only reads what exists: no write
    /// access, no creating, no truncating (what `OpenRead` accepts).
    pub fn only_reads(flags: u32) -> bool {
        flags & (ACCESS_MASK | CREATE | TRUNCATE) == READ_ONLY
    }

    #[cfg(all(test, target_os = "linux"))]
    mod tests {
        use super::*;

        #[test]
        fn host_flags_map_both_ways() {
            assert_eq!(from_host(libc::O_RDONLY), READ_ONLY);
            assert_eq!(
                from_host(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC),
                WRITE_ONLY | CREATE | EXCLUSIVE
            );
            assert_eq!(from_host(libc::O_RDWR | libc::O_APPEND), READ_WRITE | APPEND);
            assert_eq!(from_host(libc::O_WRONLY | libc::O_SYNC), WRITE_ONLY | SYNC);
            assert_eq!(from_host(libc::O_WRONLY | libc::O_DSYNC), WRITE_ONLY | DSYNC);
            for flags in [
                READ_ONLY | NOFOLLOW | DIRECTORY,
                WRITE_ONLY | CREATE | EXCLUSIVE | NONBLOCK,
                READ_WRITE | TRUNCATE | APPEND | NOATIME,
                WRITE_ONLY | SYNC,
                WRITE_ONLY | DSYNC,
            ] {
                assert_eq!(from_host(to_host(flags).unwrap()), flags, "{flags:#x}");
            }
            assert_eq!(
                to_host(READ_WRITE | CREATE | EXCLUSIVE),
                Some(libc::O_RDWR | libc::O_CREAT | libc::O_EXCL)
            );
        }

        #[test]
        fn unknown_bits_and_access_modes_are_refused() {
            assert_eq!(to_host(1 << 30), None);
            assert_eq!(to_host(ACCESS_MASK), None);
        }

        #[test]
        fn writes_and_only_reads() {
            assert!(writes(READ_WRITE | APPEND));
            assert!(!writes(READ_ONLY | TRUNCATE));
            assert!(only_reads(READ_ONLY | NOFOLLOW));
            assert!(!only_reads(READ_ONLY | TRUNCATE));
            assert!(!only_reads(READ_ONLY | CREATE));
            assert!(!only_reads(WRITE_ONLY));
        }
    }
}

/// Owner to give a node the request creates. The agent applies it when it
/// may (typically when it runs as root), so that files created through a
/// mount by user U belong to U, as they would locally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// What a `Setattr` does to a timestamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetTime {
    /// Leave it as is (UTIME_OMIT).
    #[default]
    Omit,
    /// Set it to the agent's current time (UTIME_NOW).
    Now,
    Set(Timespec),
}

/// The object a `Setattr` or `Fstat`-like request acts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Path(WirePath),
    /// An open handle; works for unlinked-but-open files.
    Handle(Handle),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: SetTime,
    pub mtime: SetTime,
}

impl SetAttr {
    pub fn is_empty(&self) -> bool {
        self.mode.is_none()
            && self.uid.is_none()
            && self.gid.is_none()
            && self.size.is_none()
            && self.atime == SetTime::Omit
            && self.mtime == SetTime::Omit
    }
}

/// Flags of `Rename`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameFlags {
    /// Fail with EEXIST if the destination exists (RENAME_NOREPLACE).
    pub noreplace: bool,
    /// Atomically swap source and destination (RENAME_EXCHANGE).
    pub exchange: bool,
}

/// Flags of `SetXattr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum XattrMode {
    #[default]
    Either,
    /// Fail with EEXIST if the attribute exists (XATTR_CREATE).
    Create,
    /// Fail with ENODATA if it does not (XATTR_REPLACE).
    Replace,
}

/// One directory entry with its attributes (from `lstat`), so that listing a
/// directory costs one round trip per page, not one per entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: serde_bytes::ByteBuf,
    /// `None` if the entry vanished between listing and `lstat`.
    pub attr: Option<Attr>,
    /// Names of the entry's extended attributes (`llistxattr`), `None` when
    /// they could not be listed. `ls -l` asks every file for its ACL
    /// attributes; with this, a client answers "none" without a round trip.
    pub xattrs: Option<Vec<serde_bytes::ByteBuf>>,
}

/// What one `ListTree` answer may carry. The agent stops adding at the
/// first limit reached; every limit is clamped by the agent, so a client's
/// numbers cannot make it build an answer larger than a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeBudget {
    /// The answer's encoded size, about (names, attributes, xattr names,
    /// file contents).
    pub max_bytes: u32,
    /// Entries over all the directories of the answer.
    pub max_entries: u32,
    /// Levels of subdirectories whose listings come along: 0 is the
    /// directory asked for alone.
    pub max_depth: u32,
    /// Regular files of at most this size come with their contents; 0 for
    /// none.
    pub file_max: u32,
    /// Bytes of file contents over the whole answer.
    pub data_bytes: u32,
}

/// One entry of a `ListTree` answer: a [`DirEntry`] and, for a small
/// regular file, its contents as of `attr` (the agent checked that the
/// file did not change while it read them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    pub entry: DirEntry,
    pub data: Option<serde_bytes::ByteBuf>,
}

/// One directory's entries in a `ListTree` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedDir {
    /// Relative to the agent's root, as every path.
    pub path: WirePath,
    pub entries: Vec<TreeEntry>,
}

/// The answer to `ListTree`: first the directory asked for (its entries
/// from the cursor on, as many as the budget allows), then, once that
/// listing is complete, the complete listings of directories below it,
/// depth first, as long as each fits whole in what is left of the budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreePage {
    pub dirs: Vec<ListedDir>,
    /// Pass back as `cursor` for the rest of the directory asked for;
    /// `None` when its listing is complete.
    pub next: Option<u64>,
}

/// One page of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirPage {
    pub entries: Vec<DirEntry>,
    /// Pass back as `cursor` to get the next page; `None` at the end.
    pub next: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatFs {
    pub block_size: u64,
    pub fragment_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
    pub files_available: u64,
    pub name_max: u64,
}

/// Bits of `Access::mask`, equal to POSIX `R_OK`/`W_OK`/`X_OK` (the same on
/// every Unix host); 0 is `F_OK`.
pub mod access_mask {
    pub const EXISTS: u32 = 0;
    pub const EXECUTE: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const READ: u32 = 4;
}

/// A request from client to agent.
///
/// A variant's position is its tag on the wire: new variants go at the end
/// (and the codec's fast paths hard-code the tags of `Response::Data`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Attributes without following a final symlink.
    Lstat {
        path: WirePath,
    },
    /// Attributes following symlinks.
    Stat {
        path: WirePath,
    },
    /// Attributes of an open handle.
    Fstat {
        handle: Handle,
    },
    /// One page of a directory listing with attributes. `cursor` is `None`
    /// for the first page and the previous page's `next` after that.
    ReadDir {
        path: WirePath,
        cursor: Option<u64>,
        max_entries: u32,
    },
    Open {
        path: WirePath,
        flags: u32,
        mode: u32,
        owner: Option<Owner>,
    },
    Read {
        handle: Handle,
        offset: u64,
        len: u32,
    },
    Write {
        handle: Handle,
        offset: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Fsync {
        handle: Handle,
        datasync: bool,
    },
    Close {
        handle: Handle,
    },
    Setattr {
        target: Target,
        attr: SetAttr,
    },
    Mkdir {
        path: WirePath,
        mode: u32,
        owner: Option<Owner>,
    },
    /// `mode` includes the file type bits (FIFO, CHAR, BLOCK, SOCKET, REGULAR).
    Mknod {
        path: WirePath,
        mode: u32,
        rdev_major: u32,
        rdev_minor: u32,
        owner: Option<Owner>,
    },
    Unlink {
        path: WirePath,
    },
    Rmdir {
        path: WirePath,
    },
    Rename {
        from: WirePath,
        to: WirePath,
        flags: RenameFlags,
    },
    /// Creates `path` as a symlink whose content is `target`, stored as is.
    Symlink {
        target: WirePath,
        path: WirePath,
        owner: Option<Owner>,
    },
    Readlink {
        path: WirePath,
    },
    /// Creates `to` as a hard link to `from`.
    Link {
        from: WirePath,
        to: WirePath,
    },
    Statfs {
        path: WirePath,
    },
    GetXattr {
        path: WirePath,
        name: WirePath,
    },
    SetXattr {
        path: WirePath,
        name: WirePath,
        value: WirePath,
        mode: XattrMode,
    },
    ListXattr {
        path: WirePath,
    },
    RemoveXattr {
        path: WirePath,
        name: WirePath,
    },
    Access {
        path: WirePath,
        mask: u32,
    },
    /// Allocates (or with flags, punches) space of an open file:
    /// `fallocate(2)`. `mode` is [`fallocate_mode`] bits.
    Fallocate {
        handle: Handle,
        offset: u64,
        len: u64,
        mode: u32,
    },
    /// Opens an existing file for reading and returns its first `prefetch`
    /// bytes with the handle: reading a small file costs one round trip.
    OpenRead {
        path: WirePath,
        flags: u32,
        prefetch: u32,
    },
    /// Finds the next data or hole at or after `offset` of an open file:
    /// `lseek(2)` with `SEEK_DATA`/`SEEK_HOLE`. ENXIO when there is none
    /// (`offset` at or past the end, or no data after it).
    Lseek {
        handle: Handle,
        offset: u64,
        whence: SeekWhence,
    },
    /// Answered with `Done` and nothing else: liveness probes (a
    /// heartbeat, a health check) that must not touch the file system, so
    /// that a slow disk is not taken for a dead link.
    Ping,
    /// The canonical absolute path (symlinks resolved, as `realpath(3)`)
    /// of `path` on the agent's host, answered with `Bytes`. Unlike every
    /// other request, `path` is not relative to the served root: an
    /// absolute path is taken as it is, a relative one against the agent's
    /// working directory (the home directory under ssh). The result must
    /// lie within the served root (EACCES otherwise). What a client serving
    /// several trees over one agent rooted at `/` resolves each tree's root
    /// with (`host:dir` names a directory relative to the remote home).
    Realpath {
        path: WirePath,
    },
    /// Claims the agent's place for the client's connection `session` (a
    /// number the client picks for the life of one mount or connection)
    /// at `generation` (its count of connections made): an agent of the
    /// same session and an older generation refuses every change from then
    /// on (EIO), so requests a replaced agent still holds cannot land after
    /// the client has sent them again to this one. `Done`; ESTALE when a
    /// newer generation holds the place already. Sent only to an agent
    /// that lists the `fence` capability.
    Fence {
        session: u64,
        generation: u64,
    },
    /// Carries out `request` at most once for the fenced session, as
    /// operation `id` (a number the client picks, unique within the
    /// session and the same each time it sends the operation again). The
    /// agent records each such operation's response beside the session's
    /// fence file, so that this agent, or the next agent of the session
    /// after a lost connection, answers a request sent again with the
    /// recorded response instead of carrying it out twice (a recorded
    /// `Opened` is answered with a new handle to the file the operation
    /// created). The answer is the inner request's own. `settled_below`:
    /// every operation of the session numbered below it has been answered
    /// and will never be sent again, so its record may go. EINVAL for an
    /// inner `Once` or `Fence`; EPROTO when `id` was recorded for another
    /// request. Sent only to an agent that lists the `once` capability,
    /// after a `Fence` it accepted.
    Once {
        id: u64,
        settled_below: u64,
        request: Box<Request>,
    },
    /// A rich listing: one page of `path` sized by bytes rather than
    /// entries, each entry with its attributes, xattr names and (small
    /// files) contents, followed by listings of the directories below it,
    /// all within `budget`. What a walk needs in a few round trips rather
    /// than one per directory and file. `cursor` as for `ReadDir` (the
    /// cursors are shared). Sent only to an agent that lists the `tree`
    /// capability.
    ListTree {
        path: WirePath,
        cursor: Option<u64>,
        budget: TreeBudget,
    },
    /// Asks the agent to listen for `connections` direct connections (TLS
    /// on TCP, see the `yonder-direct` crate) on an ephemeral port of
    /// `bind` (by default the address the ssh connection arrived at, from
    /// `SSH_CONNECTION`, else loopback). Answered by `Response::Direct`.
    /// Sent only over the stream that started the agent (ssh's), and only
    /// to an agent that lists the `direct` capability: what it answers is
    /// secret, and only that stream is already authenticated.
    DirectListen {
        bind: Option<String>,
        connections: u32,
    },
}

/// What `Lseek` looks for. Only these two travel: a kernel answers
/// `SEEK_SET`/`SEEK_CUR`/`SEEK_END` from the size it knows, and the host
/// values of `SEEK_DATA`/`SEEK_HOLE` differ between systems.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeekWhence {
    /// The start of the first data at or after the offset (SEEK_DATA).
    Data,
    /// The start of the first hole at or after the offset (SEEK_HOLE); the
    /// end of the file counts as a hole.
    Hole,
}

/// Bits of `Fallocate::mode`. Protocol constants; 0 allocates and extends.
pub mod fallocate_mode {
    /// Do not change the file size (FALLOC_FL_KEEP_SIZE).
    pub const KEEP_SIZE: u32 = 1;
    /// Deallocate the range; needs KEEP_SIZE (FALLOC_FL_PUNCH_HOLE).
    pub const PUNCH_HOLE: u32 = 2;
    /// Zero the range (FALLOC_FL_ZERO_RANGE).
    pub const ZERO_RANGE: u32 = 4;

    #[cfg(target_os = "linux")]
    const HOST: &[(u32, i32)] = &[
        (KEEP_SIZE, libc::FALLOC_FL_KEEP_SIZE),
        (PUNCH_HOLE, libc::FALLOC_FL_PUNCH_HOLE),
        (ZERO_RANGE, libc::FALLOC_FL_ZERO_RANGE),
    ];
    /// Only Linux's fallocate takes mode bits; elsewhere only mode 0 (plain
    /// allocation: posix_fallocate, or F_PREALLOCATE on macOS) maps.
    #[cfg(not(target_os = "linux"))]
    const HOST: &[(u32, i32)] = &[];

    /// The host's `FALLOC_FL_*` flags for `mode`; `None` if it has bits
    /// the protocol does not know or the host cannot do.
    pub fn to_host(mode: u32) -> Option<i32> {
        let known = HOST.iter().fold(0, |acc, (wire, _)| acc | wire);
        (mode & !known == 0).then(|| {
            HOST.iter()
                .filter(|(wire, _)| mode & wire != 0)
                .fold(0, |acc, (_, h)| acc | h)
        })
    }

    /// The protocol's mode for host `FALLOC_FL_*` flags; `None` if some are
    /// not carried by the protocol.
    pub fn from_host(host: i32) -> Option<u32> {
        let known = HOST.iter().fold(0, |acc, (_, h)| acc | h);
        (host & !known == 0).then(|| {
            HOST.iter()
                .filter(|(_, h)| host & h != 0)
                .fold(0, |acc, (wire, _)| acc | wire)
        })
    }
}

impl Request {
    /// Operation name, as used in error messages and logs.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Lstat { .. } => "lstat",
            Request::Stat { .. } => "stat",
            Request::Fstat { .. } => "fstat",
            Request::ReadDir { .. } => "readdir",
            Request::Open { .. } => "open",
            Request::OpenRead { .. } => "open",
            Request::Read { .. } => "read",
            Request::Write { .. } => "write",
            Request::Fsync { .. } => "fsync",
            Request::Close { .. } => "close",
            Request::Setattr { .. } => "setattr",
            Request::Mkdir { .. } => "mkdir",
            Request::Mknod { .. } => "mknod",
            Request::Unlink { .. } => "unlink",
            Request::Rmdir { .. } => "rmdir",
            Request::Rename { .. } => "rename",
            Request::Symlink { .. } => "symlink",
            Request::Readlink { .. } => "readlink",
            Request::Link { .. } => "link",
            Request::Statfs { .. } => "statfs",
            Request::GetXattr { .. } => "getxattr",
            Request::SetXattr { .. } => "setxattr",
            Request::ListXattr { .. } => "listxattr",
            Request::RemoveXattr { .. } => "removexattr",
            Request::Access { .. } => "access",
            Request::Fallocate { .. } => "fallocate",
            Request::Lseek { .. } => "lseek",
            Request::Ping => "ping",
            Request::Realpath { .. } => "realpath",
            Request::Fence { .. } => "fence",
            Request::Once { request, .. } => request.op(),
            Request::ListTree { .. } => "listtree",
            Request::DirectListen { .. } => "direct-listen",
        }
    }

    /// Whether carrying the request out may change the file system: what a
    /// fenced agent refuses.
    pub fn changes_files(&self) -> bool {
        match self {
            Request::Open { flags, .. } => flags & (open_flags::CREATE | open_flags::TRUNCATE) != 0,
            Request::Once { request, .. } => request.changes_files(),
            Request::Write { .. }
            | Request::Setattr { .. }
            | Request::Mkdir { .. }
            | Request::Mknod { .. }
            | Request::Unlink { .. }
            | Request::Rmdir { .. }
            | Request::Rename { .. }
            | Request::Symlink { .. }
            | Request::Link { .. }
            | Request::SetXattr { .. }
            | Request::RemoveXattr { .. }
            | Request::Fallocate { .. } => true,
            Request::Lstat { .. }
            | Request::Stat { .. }
            | Request::Fstat { .. }
            | Request::ReadDir { .. }
            | Request::OpenRead { .. }
            | Request::Read { .. }
            | Request::Fsync { .. }
            | Request::Close { .. }
            | Request::Readlink { .. }
            | Request::Statfs { .. }
            | Request::GetXattr { .. }
            | Request::ListXattr { .. }
            | Request::Access { .. }
            | Request::Lseek { .. }
            | Request::Ping
            | Request::Realpath { .. }
            | Request::Fence { .. }
            | Request::ListTree { .. }
            | Request::DirectListen { .. } => false,
        }
    }
}

/// An error reported by the agent for one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub errno: Errno,
    /// Human-readable detail, e.g. the failing syscall and path.
    pub message: String,
}

/// The agent's answer to one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Success without a payload.
    Done,
    Attr(Attr),
    Opened {
        handle: Handle,
        attr: Attr,
    },
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    Written(u32),
    DirPage(DirPage),
    /// Symlink target or xattr value.
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    Names(Vec<serde_bytes::ByteBuf>),
    StatFs(StatFs),
    Error(WireError),
    /// Answer to `OpenRead`: fewer than `prefetch` bytes of data means the
    /// whole file.
    OpenedRead {
        handle: Handle,
        attr: Attr,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// A file offset: the answer to `Lseek`.
    Offset(u64),
    /// The answer to `ListTree`.
    Tree(TreePage),
    /// The answer to `DirectListen`: where the agent listens, the SHA-256
    /// of the certificate it made for this listener (the client pins it),
    /// and one single-use secret per expected connection (32 bytes each),
    /// which a connection proves it knows before anything is served.
    Direct {
        address: String,
        port: u16,
        #[serde(with = "serde_bytes")]
        fingerprint: Vec<u8>,
        secrets: Vec<serde_bytes::ByteBuf>,
    },
}

/// What happened at a path an agent reports changed, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ChangeKind {
    /// The node's data or attributes changed; its name still holds it.
    Content,
    /// The name was added, removed or moved (to or from): the directory
    /// holding it lists other names, and the name may hold another node or
    /// none. A directory moved away takes what is below it along.
    Entry,
    /// As `Entry`, and anything below the path may have changed unseen: a
    /// directory moved here, whose watch the move interrupted.
    Tree,
}

/// One path that changed on the agent's side, relative to its root.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PathChange {
    pub path: WirePath,
    pub kind: ChangeKind,
}

/// What an agent pushes unasked (frame id 0), to a client whose `Hello`
/// and its own both list the `watch` capability. The agent watches each
/// directory the client has visited (listed, looked up in, made).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// These paths changed, changes a few milliseconds apart gathered.
    Changed(Vec<PathChange>),
    /// Changes were lost (the watch queue overflowed, or more changed at
    /// once than one notice carries): anything may have changed. The watch
    /// goes on.
    Overflow,
    /// A directory could not be watched (the host's watch limit): changes
    /// in it are not reported. Said once per connection.
    Unwatched { path: WirePath, reason: String },
}

/// Every frame body is one of these.
///
/// A variant's position is its tag on the wire: new variants go at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Hello(Hello),
    Request(Request),
    Response(Response),
    /// Agent to client only, and only with the `watch` capability.
    Notice(Notice),
}
