//! Test support: [`LocalRemote`], a [`Remote`] that serves a local directory
//! in-process with plain system calls, so the VFS and its frontends can be
//! tested without an agent. It counts calls.
//!
//! It is held to the agent's behaviour by the `Remote` contract suite
//! (`yonder_testkit::contract`, run on it in tests/remote_contract.rs):
//! paths are confined to the root as the agent confines them, errors carry
//! the agent's errnos, listings carry xattr names and single-use cursors.
//! `open_read` is the trait's default (open, then read), so the suite holds
//! that to the agent's `OpenRead` too.
//! Errors, delays and disconnection are injected by wrapping it in
//! `yonder_testkit::faults`.

use async_trait::async_trait;
use bytes::Bytes;
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timestamps, CWD};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use yonder_proto::{
    access_mask, file_type, open_flags as of, Attr, DirEntry, DirPage, Errno, Handle, Owner, RenameFlags,
    SeekWhence, SetAttr, SetTime, StatFs, Target, Timespec, XattrMode, MAX_IO_SIZE,
};
use yonder_remote::{Remote, RemoteError, Result};

/// Calls a [`LocalRemote`] served, by kind.
#[derive(Debug, Default)]
pub struct CallCounts {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub lstats: AtomicU64,
    pub read_dir_pages: AtomicU64,
}

pub struct LocalRemote {
    root: PathBuf,
    files: Mutex<HashMap<Handle, Arc<File>>>,
    next: AtomicU64,
    /// Listings with more pages to come, by cursor (single use, as the
    /// agent's): the directory and the names not yet returned.
    listings: Mutex<Listings>,
    pub calls: CallCounts,
    /// When set, attributes carry no inode number, device or birth time,
    /// as from a remote that has none (SFTP).
    pub no_inode_numbers: std::sync::atomic::AtomicBool,
    /// Every `write`'s data as received (the buffers themselves, not
    /// copies), to check what the VFS copies on the way.
    pub written: Mutex<Vec<Bytes>>,
}

#[derive(Default)]
struct Listings {
    last: u64,
    open: BTreeMap<u64, (PathBuf, std::vec::IntoIter<Vec<u8>>)>,
}

/// Listings kept between pages, as many as the agent keeps streams.
const MAX_LISTINGS: usize = 256;

fn err(op: &'static str, path: &[u8], e: io::Error) -> RemoteError {
    RemoteError::os(op, String::from_utf8_lossy(path).into_owned(), Errno::from_io(&e))
}

fn rerr(op: &'static str, path: &[u8], e: rustix::io::Errno) -> RemoteError {
    err(op, path, e.into())
}

fn ts(sec: i64, nsec: i64) -> Timespec {
    Timespec {
        sec,
        nsec: nsec as u32,
    }
}

fn attr_of(m: &std::fs::Metadata) -> Attr {
    Attr {
        ino: m.ino(),
        mode: m.mode(),
        nlink: m.nlink(),
        uid: m.uid(),
        gid: m.gid(),
        rdev_major: rfs::major(m.rdev()),
        rdev_minor: rfs::minor(m.rdev()),
        size: m.size(),
        blocks: m.blocks(),
        blksize: m.blksize() as u32,
        atime: ts(m.atime(), m.atime_nsec()),
        mtime: ts(m.mtime(), m.mtime_nsec()),
        ctime: ts(m.ctime(), m.ctime_nsec()),
        dev: m.dev(),
        btime: m
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| Timespec {
                sec: d.as_secs() as i64,
                nsec: d.subsec_nanos(),
            }),
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

const S_ISGID: u32 = 0o2000;

/// Gives a node just created to `owner`, as the agent does: only when this
/// process may (root); the group of a set-group-id parent stays; set-id
/// bits the chown clears are put back. Failure is ignored (the node exists,
/// and belongs to this process's user, as without the privilege).
fn give_owner(path: &Path, owner: Option<Owner>) {
    let Some(owner) = owner else { return };
    if !is_root() {
        return;
    }
    let parent = path.parent().and_then(|p| std::fs::metadata(p).ok());
    let gid = match parent {
        Some(parent) if parent.mode() & S_ISGID != 0 => None,
        _ => Some(owner.gid),
    };
    let Ok(before) = std::fs::symlink_metadata(path) else {
        return;
    };
    if std::os::unix::fs::lchown(path, Some(owner.uid), gid).is_err() || before.file_type().is_symlink() {
        return;
    }
    if let Ok(after) = std::fs::symlink_metadata(path) {
        if after.mode() & 0o7777 != before.mode() & 0o7777 {
            let _ = rfs::chmod(path, Mode::from_raw_mode(before.mode() & 0o7777));
        }
    }
}

/// `truncate(2)`, which rustix lacks; opening the file to `ftruncate` it
/// would block on a FIFO.
fn truncate_path(path: &Path, size: u64) -> io::Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let size = libc::off_t::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call,
    // which only reads it.
    if unsafe { libc::truncate(c_path.as_ptr(), size) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The portable open flags on this host, or `None` for bits this side
/// does not know (refused, as the agent refuses them, rather than ignored).
fn host_open_flags(flags: u32) -> Option<OFlags> {
    let bits = [
        (of::CREATE, OFlags::CREATE),
        (of::EXCLUSIVE, OFlags::EXCL),
        (of::TRUNCATE, OFlags::TRUNC),
        (of::APPEND, OFlags::APPEND),
        (of::NOFOLLOW, OFlags::NOFOLLOW),
        (of::DIRECTORY, OFlags::DIRECTORY),
        (of::SYNC, OFlags::SYNC),
        (of::DSYNC, OFlags::DSYNC),
        (of::NONBLOCK, OFlags::NONBLOCK),
        (of::NOATIME, OFlags::NOATIME),
    ];
    let known = bits.iter().fold(of::ACCESS_MASK, |acc, (bit, _)| acc | bit);
    if flags & !known != 0 {
        return None;
    }
    let mut host = match flags & of::ACCESS_MASK {
        of::READ_ONLY => OFlags::RDONLY,
        of::WRITE_ONLY => OFlags::WRONLY,
        of::READ_WRITE => OFlags::RDWR,
        _ => return None,
    } | OFlags::CLOEXEC;
    for (bit, flag) in bits {
        if flags & bit != 0 {
            host |= flag;
        }
    }
    Some(host)
}

/// Extended attribute names of `path` (not following a symlink), `None`
/// if they cannot be listed.
fn xattr_names(path: &Path) -> Option<Vec<Vec<u8>>> {
    let len = rfs::llistxattr_query(path).ok()?;
    let mut buf = vec![0u8; len];
    let n = rfs::llistxattr(path, &mut buf[..]).ok()?;
    Some(
        buf[..n]
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

fn timespec(t: SetTime) -> rfs::Timespec {
    match t {
        SetTime::Omit => rfs::Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_OMIT,
        },
        SetTime::Now => rfs::Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_NOW,
        },
        SetTime::Set(t) => rfs::Timespec {
            tv_sec: t.sec,
            tv_nsec: t.nsec as _,
        },
    }
}

impl LocalRemote {
    pub fn new(root: impl Into<PathBuf>) -> Arc<LocalRemote> {
        Arc::new(LocalRemote {
            root: root.into(),
            files: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            listings: Mutex::new(Listings::default()),
            calls: CallCounts::default(),
            no_inode_numbers: Default::default(),
            written: Mutex::new(Vec::new()),
        })
    }

    fn shown(&self, attr: Attr) -> Attr {
        if self.no_inode_numbers.load(Ordering::Relaxed) {
            Attr {
                ino: 0,
                dev: 0,
                btime: None,
                ..attr
            }
        } else {
            attr
        }
    }

    /// The host path of a wire path, resolved as the agent resolves it:
    /// lexically, `.` and empty components skipped, a leading `/` meaning
    /// the root; a `..` that would leave the root is EACCES, a NUL EINVAL.
    fn resolve(&self, op: &'static str, path: &[u8]) -> Result<PathBuf> {
        let refuse = |errno| {
            Err(RemoteError::os(
                op,
                String::from_utf8_lossy(path).into_owned(),
                errno,
            ))
        };
        if path.contains(&0) {
            return refuse(Errno::EINVAL);
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        for part in path.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    if parts.pop().is_none() {
                        return refuse(Errno::EACCES);
                    }
                }
                name => parts.push(name),
            }
        }
        let mut host = self.root.clone();
        for part in parts {
            host.push(OsStr::from_bytes(part));
        }
        Ok(host)
    }

    /// [`Self::resolve`], for operations that would remove or replace the
    /// root: EBUSY, as the agent answers.
    fn resolve_not_root(&self, op: &'static str, path: &[u8]) -> Result<PathBuf> {
        let host = self.resolve(op, path)?;
        if host == self.root {
            return Err(RemoteError::os(
                op,
                String::from_utf8_lossy(path).into_owned(),
                Errno::EBUSY,
            ));
        }
        Ok(host)
    }

    fn file(&self, handle: Handle) -> Result<Arc<File>> {
        self.files
            .lock()
            .unwrap()
            .get(&handle)
            .cloned()
            .ok_or_else(|| RemoteError::os("handle", handle.to_string(), Errno::EBADF))
    }

    /// Open handles, to check that everything opened was closed.
    pub fn open_handles(&self) -> usize {
        self.files.lock().unwrap().len()
    }
}

#[async_trait]
impl Remote for LocalRemote {
    async fn lstat(&self, path: &[u8]) -> Result<Attr> {
        self.calls.lstats.fetch_add(1, Ordering::Relaxed);
        std::fs::symlink_metadata(self.resolve("lstat", path)?)
            .map(|m| self.shown(attr_of(&m)))
            .map_err(|e| err("lstat", path, e))
    }

    async fn stat(&self, path: &[u8]) -> Result<Attr> {
        std::fs::metadata(self.resolve("stat", path)?)
            .map(|m| self.shown(attr_of(&m)))
            .map_err(|e| err("stat", path, e))
    }

    async fn fstat(&self, handle: Handle) -> Result<Attr> {
        let file = self.file(handle)?;
        file.metadata()
            .map(|m| self.shown(attr_of(&m)))
            .map_err(|e| err("fstat", b"", e))
    }

    async fn read_dir_page(&self, path: &[u8], cursor: Option<u64>, max_entries: u32) -> Result<DirPage> {
        self.calls.read_dir_pages.fetch_add(1, Ordering::Relaxed);
        let dir = self.resolve("readdir", path)?;
        let mut names = match cursor {
            None => {
                let mut names: Vec<Vec<u8>> = std::fs::read_dir(&dir)
                    .map_err(|e| err("readdir", path, e))?
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().as_bytes().to_vec())
                    .collect();
                names.sort();
                names.into_iter()
            }
            Some(cursor) => {
                let refused = || RemoteError::os("readdir", String::from_utf8_lossy(path), Errno::EINVAL);
                let (listed, names) = self
                    .listings
                    .lock()
                    .unwrap()
                    .open
                    .remove(&cursor)
                    .ok_or_else(refused)?;
                if listed != dir {
                    return Err(refused());
                }
                names
            }
        };
        let entries: Vec<DirEntry> = names
            .by_ref()
            .take(max_entries.clamp(1, 8192) as usize)
            .map(|name| {
                let entry = dir.join(OsStr::from_bytes(&name));
                let attr = std::fs::symlink_metadata(&entry)
                    .ok()
                    .map(|m| self.shown(attr_of(&m)));
                let xattrs = attr
                    .and_then(|_| xattr_names(&entry))
                    .map(|names| names.into_iter().map(Into::into).collect());
                DirEntry {
                    name: name.into(),
                    attr,
                    xattrs,
                }
            })
            .collect();
        let next = (!names.as_slice().is_empty()).then(|| {
            let mut listings = self.listings.lock().unwrap();
            listings.last += 1;
            let cursor = listings.last;
            listings.open.insert(cursor, (dir, names));
            if listings.open.len() > MAX_LISTINGS {
                listings.open.pop_first();
            }
            cursor
        });
        Ok(DirPage { entries, next })
    }

    async fn open(&self, path: &[u8], flags: u32, mode: u32, owner: Option<Owner>) -> Result<(Handle, Attr)> {
        let p = self.resolve("open", path)?;
        let o = host_open_flags(flags)
            .ok_or_else(|| RemoteError::os("open", String::from_utf8_lossy(path), Errno::EINVAL))?;
        let perm = Mode::from_raw_mode(mode & 0o7777);
        // Whether this call creates the file decides whether the owner
        // applies: open without O_CREAT first, then create exclusively.
        let (fd, created) = if !o.contains(OFlags::CREATE) || o.contains(OFlags::EXCL) {
            (rfs::open(&p, o, perm), o.contains(OFlags::CREATE))
        } else {
            match rfs::open(&p, o - OFlags::CREATE, Mode::empty()) {
                Err(rustix::io::Errno::NOENT) => match rfs::open(&p, o | OFlags::EXCL, perm) {
                    // Through a dangling symlink, which O_EXCL refuses:
                    // plain O_CREAT makes its target; not known to be new.
                    Err(rustix::io::Errno::EXIST) => (rfs::open(&p, o, perm), false),
                    other => (other, true),
                },
                other => (other, false),
            }
        };
        let fd = fd.map_err(|e| rerr("open", path, e))?;
        if created {
            // Exactly the requested mode, whatever this process's umask.
            rfs::fchmod(&fd, perm).map_err(|e| rerr("open", path, e))?;
            give_owner(&p, owner);
        }
        let file = File::from(fd);
        let attr = self.shown(attr_of(&file.metadata().map_err(|e| err("open", path, e))?));
        let handle = Handle(self.next.fetch_add(1, Ordering::Relaxed));
        self.files.lock().unwrap().insert(handle, Arc::new(file));
        Ok((handle, attr))
    }

    async fn read(&self, handle: Handle, offset: u64, len: u32) -> Result<Vec<u8>> {
        self.calls.reads.fetch_add(1, Ordering::Relaxed);
        let file = self.file(handle)?;
        let mut buf = vec![0; len.min(MAX_IO_SIZE) as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A stream (FIFO, socket, terminal): what one read(2)
                // yields, waited for off the runtime's threads.
                Err(e) if e.raw_os_error() == Some(libc::ESPIPE) && got == 0 => {
                    return tokio::task::spawn_blocking(move || {
                        let n = loop {
                            match io::Read::read(&mut &*file, &mut buf) {
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                other => break other,
                            }
                        };
                        n.map(|n| {
                            buf.truncate(n);
                            buf
                        })
                    })
                    .await
                    .expect("stream read")
                    .map_err(|e| err("read", b"", e));
                }
                Err(_) if got > 0 => break,
                Err(e) => return Err(err("read", b"", e)),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    async fn write(&self, handle: Handle, offset: u64, data: Bytes) -> Result<u32> {
        self.calls.writes.fetch_add(1, Ordering::Relaxed);
        self.written.lock().unwrap().push(data.clone());
        let file = self.file(handle)?;
        // pwrite on an O_APPEND descriptor appends on Linux, as the protocol
        // wants; streams have no offset to write at.
        match file.write_all_at(&data, offset) {
            Err(e) if e.raw_os_error() == Some(libc::ESPIPE) => io::Write::write_all(&mut &*file, &data),
            other => other,
        }
        .map_err(|e| err("write", b"", e))?;
        Ok(data.len() as u32)
    }

    async fn fsync(&self, handle: Handle, datasync: bool) -> Result<()> {
        let file = self.file(handle)?;
        if datasync {
            file.sync_data()
        } else {
            file.sync_all()
        }
        .map_err(|e| err("fsync", b"", e))
    }

    async fn fallocate(&self, handle: Handle, offset: u64, len: u64, mode: u32) -> Result<()> {
        let file = self.file(handle)?;
        let host = yonder_proto::fallocate_mode::to_host(mode)
            .ok_or_else(|| rerr("fallocate", b"", rustix::io::Errno::OPNOTSUPP))?;
        let flags = rfs::FallocateFlags::from_bits_retain(host as _);
        rfs::fallocate(&*file, flags, offset, len).map_err(|e| rerr("fallocate", b"", e))
    }

    async fn lseek(&self, handle: Handle, offset: u64, whence: SeekWhence) -> Result<u64> {
        let file = self.file(handle)?;
        let pos = match whence {
            SeekWhence::Data => rfs::SeekFrom::Data(offset),
            SeekWhence::Hole => rfs::SeekFrom::Hole(offset),
        };
        rfs::seek(&*file, pos).map_err(|e| rerr("lseek", b"", e))
    }

    async fn close(&self, handle: Handle) -> Result<()> {
        self.files
            .lock()
            .unwrap()
            .remove(&handle)
            .map(drop)
            .ok_or_else(|| RemoteError::os("close", handle.to_string(), Errno::EBADF))
    }

    async fn setattr(&self, target: Target, attr: SetAttr) -> Result<Attr> {
        let times = Timestamps {
            last_access: timespec(attr.atime),
            last_modification: timespec(attr.mtime),
        };
        let set_times = attr.atime != SetTime::Omit || attr.mtime != SetTime::Omit;
        // u32::MAX is chown's "leave as it is" (-1).
        let uid = attr
            .uid
            .filter(|id| *id != u32::MAX)
            .map(rustix::fs::Uid::from_raw);
        let gid = attr
            .gid
            .filter(|id| *id != u32::MAX)
            .map(rustix::fs::Gid::from_raw);
        // In the agent's order: size, owner, then mode (chown clears set-id
        // bits the mode may set), then times.
        match target {
            Target::Handle(h) => {
                let file = self.file(h)?;
                let e = |e| rerr("setattr", b"", e);
                if let Some(size) = attr.size {
                    rfs::ftruncate(&*file, size).map_err(e)?;
                }
                if uid.is_some() || gid.is_some() {
                    rfs::fchown(&*file, uid, gid).map_err(e)?;
                }
                if let Some(mode) = attr.mode {
                    rfs::fchmod(&*file, Mode::from_raw_mode(mode & 0o7777)).map_err(e)?;
                }
                if set_times {
                    rfs::futimens(&*file, &times).map_err(e)?;
                }
                self.fstat(h).await
            }
            Target::Path(path) => {
                let p = self.resolve("setattr", &path)?;
                let e = |e| rerr("setattr", &path, e);
                if let Some(size) = attr.size {
                    truncate_path(&p, size).map_err(|e| err("setattr", &path, e))?;
                }
                if uid.is_some() || gid.is_some() {
                    rfs::chownat(CWD, &p, uid, gid, AtFlags::SYMLINK_NOFOLLOW).map_err(e)?;
                }
                if let Some(mode) = attr.mode {
                    rfs::chmod(&p, Mode::from_raw_mode(mode & 0o7777)).map_err(e)?;
                }
                if set_times {
                    rfs::utimensat(CWD, &p, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(e)?;
                }
                self.lstat(&path).await
            }
        }
    }

    async fn mkdir(&self, path: &[u8], mode: u32, owner: Option<Owner>) -> Result<Attr> {
        let p = self.resolve("mkdir", path)?;
        rfs::mkdir(&p, Mode::from_raw_mode(mode & 0o7777)).map_err(|e| rerr("mkdir", path, e))?;
        // The permission and sticky bits asked for, whatever this process's
        // umask; set-group-id only as inherited from the parent, as mkdir(2)
        // gives it.
        let made = std::fs::symlink_metadata(&p).map_err(|e| err("mkdir", path, e))?;
        let perm = (mode & 0o1777) | (made.mode() & S_ISGID);
        rfs::chmod(&p, Mode::from_raw_mode(perm)).map_err(|e| rerr("mkdir", path, e))?;
        give_owner(&p, owner);
        self.lstat(path).await
    }

    async fn mknod(
        &self,
        path: &[u8],
        mode: u32,
        rdev_major: u32,
        rdev_minor: u32,
        owner: Option<Owner>,
    ) -> Result<Attr> {
        let p = self.resolve("mknod", path)?;
        let kind = match mode & file_type::MASK {
            0 | file_type::REGULAR => rfs::FileType::RegularFile,
            file_type::FIFO => rfs::FileType::Fifo,
            file_type::CHAR => rfs::FileType::CharacterDevice,
            file_type::BLOCK => rfs::FileType::BlockDevice,
            file_type::SOCKET => rfs::FileType::Socket,
            // Directories and symlinks have calls of their own.
            _ => {
                return Err(RemoteError::os(
                    "mknod",
                    String::from_utf8_lossy(path),
                    Errno::EINVAL,
                ))
            }
        };
        let perm = Mode::from_raw_mode(mode & 0o7777);
        rfs::mknodat(CWD, &p, kind, perm, rfs::makedev(rdev_major, rdev_minor))
            .map_err(|e| rerr("mknod", path, e))?;
        rfs::chmod(&p, perm).map_err(|e| rerr("mknod", path, e))?;
        give_owner(&p, owner);
        self.lstat(path).await
    }

    async fn unlink(&self, path: &[u8]) -> Result<()> {
        std::fs::remove_file(self.resolve_not_root("unlink", path)?).map_err(|e| err("unlink", path, e))
    }

    async fn rmdir(&self, path: &[u8]) -> Result<()> {
        std::fs::remove_dir(self.resolve_not_root("rmdir", path)?).map_err(|e| err("rmdir", path, e))
    }

    async fn rename(&self, from: &[u8], to: &[u8], flags: RenameFlags) -> Result<()> {
        let (host_from, host_to) = (
            self.resolve_not_root("rename", from)?,
            self.resolve_not_root("rename", to)?,
        );
        let mut f = rfs::RenameFlags::empty();
        if flags.noreplace {
            f |= rfs::RenameFlags::NOREPLACE;
        }
        if flags.exchange {
            f |= rfs::RenameFlags::EXCHANGE;
        }
        rfs::renameat_with(CWD, host_from, CWD, host_to, f).map_err(|e| rerr("rename", from, e))
    }

    async fn symlink(&self, target: &[u8], path: &[u8], owner: Option<Owner>) -> Result<Attr> {
        let p = self.resolve("symlink", path)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &p).map_err(|e| err("symlink", path, e))?;
        give_owner(&p, owner);
        self.lstat(path).await
    }

    async fn readlink(&self, path: &[u8]) -> Result<Vec<u8>> {
        std::fs::read_link(self.resolve("readlink", path)?)
            .map(|t| t.as_os_str().as_bytes().to_vec())
            .map_err(|e| err("readlink", path, e))
    }

    async fn realpath(&self, path: &[u8]) -> Result<Vec<u8>> {
        if path.contains(&0) {
            return Err(RemoteError::os(
                "realpath",
                String::from_utf8_lossy(path),
                Errno::EINVAL,
            ));
        }
        let root = std::fs::canonicalize(&self.root).map_err(|e| err("realpath", path, e))?;
        // Relative paths against the working directory, as the agent's.
        let canonical =
            std::fs::canonicalize(OsStr::from_bytes(path)).map_err(|e| err("realpath", path, e))?;
        if !canonical.starts_with(&root) {
            return Err(RemoteError::os(
                "realpath",
                String::from_utf8_lossy(path),
                Errno::EACCES,
            ));
        }
        Ok(canonical.into_os_string().into_vec())
    }

    async fn link(&self, from: &[u8], to: &[u8]) -> Result<Attr> {
        let (host_from, host_to) = (self.resolve("link", from)?, self.resolve("link", to)?);
        std::fs::hard_link(host_from, host_to).map_err(|e| err("link", to, e))?;
        self.lstat(to).await
    }

    async fn statfs(&self, path: &[u8]) -> Result<StatFs> {
        let s = rfs::statvfs(self.resolve("statfs", path)?).map_err(|e| rerr("statfs", path, e))?;
        Ok(StatFs {
            block_size: s.f_bsize,
            fragment_size: s.f_frsize,
            blocks: s.f_blocks,
            blocks_free: s.f_bfree,
            blocks_available: s.f_bavail,
            files: s.f_files,
            files_free: s.f_ffree,
            files_available: s.f_favail,
            name_max: s.f_namemax,
        })
    }

    async fn getxattr(&self, path: &[u8], name: &[u8]) -> Result<Vec<u8>> {
        let p = self.resolve("getxattr", path)?;
        let name = OsStr::from_bytes(name);
        let len = rfs::lgetxattr_query(&p, name).map_err(|e| rerr("getxattr", path, e))?;
        let mut buf = vec![0u8; len];
        let n = rfs::lgetxattr(&p, name, &mut buf[..]).map_err(|e| rerr("getxattr", path, e))?;
        buf.truncate(n);
        Ok(buf)
    }

    async fn setxattr(&self, path: &[u8], name: &[u8], value: &[u8], mode: XattrMode) -> Result<()> {
        let flags = match mode {
            XattrMode::Either => rfs::XattrFlags::empty(),
            XattrMode::Create => rfs::XattrFlags::CREATE,
            XattrMode::Replace => rfs::XattrFlags::REPLACE,
        };
        rfs::lsetxattr(
            self.resolve("setxattr", path)?,
            OsStr::from_bytes(name),
            value,
            flags,
        )
        .map_err(|e| rerr("setxattr", path, e))
    }

    async fn listxattr(&self, path: &[u8]) -> Result<Vec<Vec<u8>>> {
        let p = self.resolve("listxattr", path)?;
        let len = rfs::llistxattr_query(&p).map_err(|e| rerr("listxattr", path, e))?;
        let mut buf = vec![0u8; len];
        let n = rfs::llistxattr(&p, &mut buf[..]).map_err(|e| rerr("listxattr", path, e))?;
        Ok(buf[..n]
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(<[u8]>::to_vec)
            .collect())
    }

    async fn removexattr(&self, path: &[u8], name: &[u8]) -> Result<()> {
        rfs::lremovexattr(self.resolve("removexattr", path)?, OsStr::from_bytes(name))
            .map_err(|e| rerr("removexattr", path, e))
    }

    async fn access(&self, path: &[u8], mask: u32) -> Result<()> {
        let p = self.resolve("access", path)?;
        let all = access_mask::READ | access_mask::WRITE | access_mask::EXECUTE;
        if mask & !all != 0 {
            return Err(RemoteError::os(
                "access",
                String::from_utf8_lossy(path),
                Errno::EINVAL,
            ));
        }
        let access = rfs::Access::from_bits_truncate(mask as _);
        rfs::accessat(CWD, p, access, AtFlags::empty()).map_err(|e| rerr("access", path, e))
    }
}
