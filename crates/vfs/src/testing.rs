//! Test support: [`LocalRemote`], a [`Remote`] that serves a local directory
//! in-process with plain system calls, so the VFS and its frontends can be
//! tested without an agent. It counts calls and can inject write errors.

use async_trait::async_trait;
use bytes::Bytes;
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timestamps, CWD};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use yonder_proto::{
    open_flags as of, Attr, DirEntry, DirPage, Errno, Handle, Owner, RenameFlags, SeekWhence, SetAttr,
    SetTime, StatFs, Target, Timespec, XattrMode,
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
    pub calls: CallCounts,
    /// When set, every `write` fails with this errno.
    pub fail_writes: Mutex<Option<Errno>>,
    /// When set, `lstat` of a path ending in the given name sleeps this long.
    pub slow_lstat: Mutex<Option<(Vec<u8>, Duration)>>,
    /// Every `write`'s data as received (the buffers themselves, not
    /// copies), to check what the VFS copies on the way.
    pub written: Mutex<Vec<Bytes>>,
}

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

fn chown_to(path: &Path, owner: Option<Owner>) -> io::Result<()> {
    match owner {
        Some(o) if is_root() => std::os::unix::fs::lchown(path, Some(o.uid), Some(o.gid)),
        _ => Ok(()),
    }
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
            calls: CallCounts::default(),
            fail_writes: Mutex::new(None),
            slow_lstat: Mutex::new(None),
            written: Mutex::new(Vec::new()),
        })
    }

    fn p(&self, path: &[u8]) -> PathBuf {
        if path.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(path))
        }
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
        let slow = self.slow_lstat.lock().unwrap().clone();
        if let Some((name, delay)) = slow {
            if path.ends_with(&name) {
                tokio::time::sleep(delay).await;
            }
        }
        std::fs::symlink_metadata(self.p(path))
            .map(|m| attr_of(&m))
            .map_err(|e| err("lstat", path, e))
    }

    async fn stat(&self, path: &[u8]) -> Result<Attr> {
        std::fs::metadata(self.p(path))
            .map(|m| attr_of(&m))
            .map_err(|e| err("stat", path, e))
    }

    async fn fstat(&self, handle: Handle) -> Result<Attr> {
        let file = self.file(handle)?;
        file.metadata()
            .map(|m| attr_of(&m))
            .map_err(|e| err("fstat", b"", e))
    }

    async fn read_dir_page(&self, path: &[u8], cursor: Option<u64>, max_entries: u32) -> Result<DirPage> {
        self.calls.read_dir_pages.fetch_add(1, Ordering::Relaxed);
        let dir = self.p(path);
        let mut names: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .map_err(|e| err("readdir", path, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().as_bytes().to_vec())
            .collect();
        names.sort();
        let start = cursor.unwrap_or(0) as usize;
        let end = (start + max_entries.max(1) as usize).min(names.len());
        let entries = names[start.min(end)..end]
            .iter()
            .map(|name| DirEntry {
                name: name.clone().into(),
                attr: std::fs::symlink_metadata(dir.join(OsStr::from_bytes(name)))
                    .ok()
                    .map(|m| attr_of(&m)),
                // Unknown: the VFS then asks getxattr as usual.
                xattrs: None,
            })
            .collect();
        Ok(DirPage {
            entries,
            next: (end < names.len()).then_some(end as u64),
        })
    }

    async fn open(&self, path: &[u8], flags: u32, mode: u32, owner: Option<Owner>) -> Result<(Handle, Attr)> {
        let p = self.p(path);
        let mut o = match flags & of::ACCESS_MASK {
            of::WRITE_ONLY => OFlags::WRONLY,
            of::READ_WRITE => OFlags::RDWR,
            _ => OFlags::RDONLY,
        } | OFlags::CLOEXEC;
        for (proto, host) in [
            (of::TRUNCATE, OFlags::TRUNC),
            (of::APPEND, OFlags::APPEND),
            (of::NOFOLLOW, OFlags::NOFOLLOW),
            (of::DIRECTORY, OFlags::DIRECTORY),
            (of::SYNC, OFlags::SYNC),
            (of::DSYNC, OFlags::DSYNC),
            (of::NONBLOCK, OFlags::NONBLOCK),
        ] {
            if flags & proto != 0 {
                o |= host;
            }
        }
        let perm = Mode::from_raw_mode(mode & 0o7777);
        let (fd, created) = if flags & of::CREATE == 0 {
            (rfs::open(&p, o, Mode::empty()), false)
        } else {
            match rfs::open(&p, o | OFlags::CREATE | OFlags::EXCL, perm) {
                Err(rustix::io::Errno::EXIST) if flags & of::EXCLUSIVE == 0 => {
                    (rfs::open(&p, o, Mode::empty()), false)
                }
                other => (other, true),
            }
        };
        let fd = fd.map_err(|e| rerr("open", path, e))?;
        if created {
            // Exactly the requested mode, whatever this process's umask.
            rfs::fchmod(&fd, perm).map_err(|e| rerr("open", path, e))?;
            chown_to(&p, owner).map_err(|e| err("open", path, e))?;
        }
        let file = File::from(fd);
        let attr = attr_of(&file.metadata().map_err(|e| err("open", path, e))?);
        let handle = self.next.fetch_add(1, Ordering::Relaxed);
        self.files.lock().unwrap().insert(handle, Arc::new(file));
        Ok((handle, attr))
    }

    async fn read(&self, handle: Handle, offset: u64, len: u32) -> Result<Vec<u8>> {
        self.calls.reads.fetch_add(1, Ordering::Relaxed);
        let file = self.file(handle)?;
        let mut buf = vec![0; len as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(err("read", b"", e)),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    async fn write(&self, handle: Handle, offset: u64, data: Bytes) -> Result<u32> {
        self.calls.writes.fetch_add(1, Ordering::Relaxed);
        self.written.lock().unwrap().push(data.clone());
        if let Some(errno) = *self.fail_writes.lock().unwrap() {
            return Err(RemoteError::os("write", handle.to_string(), errno));
        }
        let file = self.file(handle)?;
        // pwrite on an O_APPEND descriptor appends on Linux, as the protocol wants.
        file.write_all_at(&data, offset)
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
        let uid = attr.uid.map(rustix::fs::Uid::from_raw_unchecked);
        let gid = attr.gid.map(rustix::fs::Gid::from_raw_unchecked);
        match target {
            Target::Handle(h) => {
                let file = self.file(h)?;
                let e = |e| rerr("setattr", b"", e);
                if uid.is_some() || gid.is_some() {
                    rfs::fchown(&*file, uid, gid).map_err(e)?;
                }
                if let Some(mode) = attr.mode {
                    rfs::fchmod(&*file, Mode::from_raw_mode(mode & 0o7777)).map_err(e)?;
                }
                if let Some(size) = attr.size {
                    rfs::ftruncate(&*file, size).map_err(e)?;
                }
                if set_times {
                    rfs::futimens(&*file, &times).map_err(e)?;
                }
                self.fstat(h).await
            }
            Target::Path(path) => {
                let p = self.p(&path);
                let e = |e| rerr("setattr", &path, e);
                if uid.is_some() || gid.is_some() {
                    rfs::chownat(CWD, &p, uid, gid, AtFlags::SYMLINK_NOFOLLOW).map_err(e)?;
                }
                if let Some(mode) = attr.mode {
                    rfs::chmod(&p, Mode::from_raw_mode(mode & 0o7777)).map_err(e)?;
                }
                if let Some(size) = attr.size {
                    let f = rfs::open(&p, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()).map_err(e)?;
                    rfs::ftruncate(&f, size).map_err(e)?;
                }
                if set_times {
                    rfs::utimensat(CWD, &p, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(e)?;
                }
                self.lstat(&path).await
            }
        }
    }

    async fn mkdir(&self, path: &[u8], mode: u32, owner: Option<Owner>) -> Result<Attr> {
        let p = self.p(path);
        rfs::mkdir(&p, Mode::from_raw_mode(mode)).map_err(|e| rerr("mkdir", path, e))?;
        rfs::chmod(&p, Mode::from_raw_mode(mode & 0o7777)).map_err(|e| rerr("mkdir", path, e))?;
        chown_to(&p, owner).map_err(|e| err("mkdir", path, e))?;
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
        let p = self.p(path);
        let kind = rfs::FileType::from_raw_mode(mode);
        let perm = Mode::from_raw_mode(mode & 0o7777);
        rfs::mknodat(CWD, &p, kind, perm, rfs::makedev(rdev_major, rdev_minor))
            .map_err(|e| rerr("mknod", path, e))?;
        rfs::chmod(&p, perm).map_err(|e| rerr("mknod", path, e))?;
        chown_to(&p, owner).map_err(|e| err("mknod", path, e))?;
        self.lstat(path).await
    }

    async fn unlink(&self, path: &[u8]) -> Result<()> {
        std::fs::remove_file(self.p(path)).map_err(|e| err("unlink", path, e))
    }

    async fn rmdir(&self, path: &[u8]) -> Result<()> {
        std::fs::remove_dir(self.p(path)).map_err(|e| err("rmdir", path, e))
    }

    async fn rename(&self, from: &[u8], to: &[u8], flags: RenameFlags) -> Result<()> {
        let mut f = rfs::RenameFlags::empty();
        if flags.noreplace {
            f |= rfs::RenameFlags::NOREPLACE;
        }
        if flags.exchange {
            f |= rfs::RenameFlags::EXCHANGE;
        }
        rfs::renameat_with(CWD, self.p(from), CWD, self.p(to), f).map_err(|e| rerr("rename", from, e))
    }

    async fn symlink(&self, target: &[u8], path: &[u8], owner: Option<Owner>) -> Result<Attr> {
        let p = self.p(path);
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &p).map_err(|e| err("symlink", path, e))?;
        chown_to(&p, owner).map_err(|e| err("symlink", path, e))?;
        self.lstat(path).await
    }

    async fn readlink(&self, path: &[u8]) -> Result<Vec<u8>> {
        std::fs::read_link(self.p(path))
            .map(|t| t.as_os_str().as_bytes().to_vec())
            .map_err(|e| err("readlink", path, e))
    }

    async fn link(&self, from: &[u8], to: &[u8]) -> Result<Attr> {
        std::fs::hard_link(self.p(from), self.p(to)).map_err(|e| err("link", to, e))?;
        self.lstat(to).await
    }

    async fn statfs(&self, path: &[u8]) -> Result<StatFs> {
        let s = rfs::statvfs(self.p(path)).map_err(|e| rerr("statfs", path, e))?;
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
        let p = self.p(path);
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
        rfs::lsetxattr(self.p(path), OsStr::from_bytes(name), value, flags)
            .map_err(|e| rerr("setxattr", path, e))
    }

    async fn listxattr(&self, path: &[u8]) -> Result<Vec<Vec<u8>>> {
        let p = self.p(path);
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
        rfs::lremovexattr(self.p(path), OsStr::from_bytes(name)).map_err(|e| rerr("removexattr", path, e))
    }

    async fn access(&self, path: &[u8], mask: u32) -> Result<()> {
        let access = rfs::Access::from_bits_truncate(mask as _);
        rfs::accessat(CWD, self.p(path), access, AtFlags::empty()).map_err(|e| rerr("access", path, e))
    }
}
