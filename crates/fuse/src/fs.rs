//! The `fuser::Filesystem` implementation: translates each kernel request to
//! a [`Vfs`] call run as its own task, so a slow remote operation never holds
//! up the requests behind it.

use crate::convert::{errno, file_type, fuse_attr, set_time};
use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno as FuseErrno, FileHandle, FopenFlags, Generation,
    INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, Notifier, OpenFlags, PollEvents, PollFlags,
    PollNotifier, RenameFlags as FuseRenameFlags, ReplyAttr, ReplyBmap, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLock, ReplyLseek, ReplyOpen,
    ReplyPoll, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::future::Future;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::runtime::Handle;
use yonder_proto::{open_flags, Errno, SeekWhence};
use yonder_vfs::{Caller, DirItem, Fh, FileAttr, Ino, RenameFlags, SetAttr, Vfs, VfsError, XattrMode};

/// Largest request the kernel may send or ask for, bounded by what the
/// kernel allows (`fs.fuse.max_pages_limit` pages, 1 MiB by default).
pub(crate) fn max_io_size() -> u32 {
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
    let pages = std::fs::read_to_string("/proc/sys/fs/fuse/max_pages_limit")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(256)
        .clamp(32, 4096);
    pages.saturating_mul(page).min(16 << 20)
}

pub(crate) struct FuseFs {
    pub vfs: Arc<Vfs>,
    pub rt: Handle,
    pub debug: bool,
    /// The kernel checks permissions (`default_permissions`), so it should
    /// also consult ACLs, which it only does with FUSE_POSIX_ACL.
    pub want_kernel_acls: bool,
    /// FUSE_POSIX_ACL was agreed at init: the kernel then drops its cached
    /// attributes itself when an ACL changes.
    pub kernel_acls: bool,
    /// Set once the session exists, before the first request.
    pub notifier: Arc<OnceLock<Notifier>>,
}

fn caller(req: &Request, umask: u32) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
        umask,
    }
}

fn bytes(name: &OsStr) -> Vec<u8> {
    name.as_bytes().to_vec()
}

impl FuseFs {
    /// Runs one kernel request as a task, under its deadline: a request
    /// that must wait for a lost connection is answered (EIO) at the
    /// latest `op_timeout` after it arrived (see `Vfs::operation`).
    ///
    /// FUSE_INTERRUPT cannot shorten that: fuser 0.18 answers the kernel's
    /// interrupt requests itself with ENOSYS, without telling the file
    /// system, and the kernel then stops sending them for the mount. A
    /// process waiting on a request sleeps killably until the request is
    /// read by this side, and after that until the answer comes; the
    /// deadline bounds that wait.
    fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.rt.spawn(self.vfs.operation(fut));
    }

    /// Logs a failed operation. Expected failures (a lookup of a missing
    /// name) are only interesting when debugging.
    fn fail(debug: bool, err: &VfsError) -> FuseErrno {
        let e = err.errno();
        let routine = matches!(
            e,
            yonder_vfs::Errno::ENOENT | yonder_vfs::Errno::ENODATA | yonder_vfs::Errno::EEXIST
        );
        if debug || !routine {
            tracing::debug!("{err}");
        }
        errno(err)
    }

    /// The kernel trusts what it caches as long as the VFS does: the
    /// mount's TTLs while the remote pushes its changes, short ones
    /// otherwise.
    fn entry_reply(&self) -> (Duration, Duration, bool) {
        let (attr_ttl, entry_ttl) = self.vfs.ttls();
        (attr_ttl, entry_ttl, self.debug)
    }

    fn attr_ttl(&self) -> Duration {
        self.vfs.ttls().0
    }

    /// What an xattr change must do to the kernel's cache once the remote
    /// has made it: an ACL change rewrites the mode (and ctime), and a
    /// kernel without FUSE_POSIX_ACL would keep showing the old mode for
    /// the attribute TTL (`cp -a` sets modes through ACLs).
    fn after_xattr_change(&self, name: &[u8]) -> Option<Notifier> {
        if self.kernel_acls || !name.starts_with(b"system.posix_acl_") {
            return None;
        }
        self.notifier.get().cloned()
    }
}

/// Drops the kernel's cached attributes of `ino`. Sent before the reply,
/// so a `stat` right after the call that changed them cannot be answered
/// from the cache; with a negative offset only attributes are dropped,
/// which takes no lock the pending request could hold.
/// The protocol's rename flags for the kernel's; `None` for flags it does not
/// carry (RENAME_WHITEOUT is for overlay file systems).
#[cfg(target_os = "linux")]
fn rename_flags(flags: FuseRenameFlags) -> Option<RenameFlags> {
    let known = FuseRenameFlags::RENAME_NOREPLACE | FuseRenameFlags::RENAME_EXCHANGE;
    known.contains(flags).then(|| RenameFlags {
        noreplace: flags.contains(FuseRenameFlags::RENAME_NOREPLACE),
        exchange: flags.contains(FuseRenameFlags::RENAME_EXCHANGE),
    })
}

/// fuser names renameat2's flags on Linux only; a kernel elsewhere that
/// sends any gets EINVAL, as renameat2 answers flags it does not take.
#[cfg(not(target_os = "linux"))]
fn rename_flags(flags: FuseRenameFlags) -> Option<RenameFlags> {
    flags.is_empty().then(RenameFlags::default)
}

fn invalidate_kernel_attrs(notifier: Option<Notifier>, ino: INodeNo) {
    if let Some(notifier) = notifier {
        if let Err(e) = notifier.inval_inode(ino, -1, 0) {
            tracing::debug!("invalidating the kernel's attributes of inode {ino}: {e}");
        }
    }
}

fn keep_cache(keep: bool) -> FopenFlags {
    if keep {
        FopenFlags::FOPEN_KEEP_CACHE
    } else {
        FopenFlags::empty()
    }
}

macro_rules! trace_op {
    ($self:ident, $($arg:tt)*) => {
        if $self.debug {
            tracing::debug!($($arg)*);
        }
    };
}

impl fuser::Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let wanted = InitFlags::FUSE_ASYNC_READ
            | InitFlags::FUSE_BIG_WRITES
            | InitFlags::FUSE_MAX_PAGES
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_ATOMIC_O_TRUNC
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_ASYNC_DIO
            // Pages cached for an open file are dropped once refreshed
            // attributes show a new mtime, as well as a new size: an open
            // file follows changes made on the remote.
            | InitFlags::FUSE_AUTO_INVAL_DATA
            // The umask is applied by the VFS, which knows when a default
            // ACL replaces it (the kernel would apply it regardless).
            | InitFlags::FUSE_DONT_MASK;
        // Not FUSE_HANDLE_KILLPRIV(_V2): the kernel would then leave clearing
        // set-ID bits on truncation to FATTR_KILL_SUIDGID and
        // FUSE_OPEN_KILL_SUIDGID, which fuser 0.18 does not pass on. Without
        // it the kernel clears them itself (a mode setattr), except on an
        // atomic O_TRUNC, which `Vfs::open` covers.
        // The kernel consults ACLs only with this, and then always checks
        // permissions itself, so only where checks are wanted.
        let wanted = if self.want_kernel_acls {
            wanted | InitFlags::FUSE_POSIX_ACL
        } else {
            wanted
        };
        let supported = wanted & config.capabilities();
        if let Err(missing) = config.add_capabilities(supported) {
            tracing::debug!("kernel lacks FUSE capabilities {missing:?}");
        }
        let io = max_io_size();
        if let Err(max) = config.set_max_write(io) {
            let _ = config.set_max_write(max);
        }
        // The kernel only lets this be lowered from what it offered.
        if let Err(max) = config.set_max_readahead(io) {
            let _ = config.set_max_readahead(max);
        }
        // Room for many concurrent readahead and background requests.
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        self.kernel_acls = supported.contains(InitFlags::FUSE_POSIX_ACL);
        tracing::debug!("FUSE init: capabilities {supported:?}, max_write {io}");
        Ok(())
    }

    fn destroy(&mut self) {
        let vfs = self.vfs.clone();
        if let Err(e) = crate::block_on(&self.rt, async move { vfs.flush_all().await }) {
            tracing::warn!("flushing buffered writes at unmount: {e}");
        }
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        trace_op!(self, "lookup {parent} {name:?} pid {}", req.pid());
        let (vfs, caller, name) = (self.vfs.clone(), caller(req, 0), bytes(name));
        let (attr_ttl, entry_ttl, debug) = self.entry_reply();
        // Answered from the caches without a task hop when they can.
        match vfs.lookup_ready(&caller, Ino(parent.0), &name) {
            Some(Ok(a)) => {
                return reply.entry_with_ttls(&attr_ttl, &entry_ttl, &fuse_attr(&a), Generation(0))
            }
            Some(Err(e)) => return reply.error(Self::fail(debug, &e)),
            None => {}
        }
        self.spawn(async move {
            match vfs.lookup(&caller, Ino(parent.0), &name).await {
                Ok(a) => reply.entry_with_ttls(&attr_ttl, &entry_ttl, &fuse_attr(&a), Generation(0)),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.vfs.forget(Ino(ino.0), nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        trace_op!(self, "getattr {ino} {fh:?}");
        let (vfs, ttl, debug) = (self.vfs.clone(), self.attr_ttl(), self.debug);
        if fh.is_none() {
            if let Some(a) = vfs.getattr_ready(Ino(ino.0)) {
                return reply.attr(&ttl, &fuse_attr(&a));
            }
        }
        self.spawn(async move {
            match vfs.getattr(Ino(ino.0), fh.map(|f| Fh(f.0))).await {
                Ok(a) => reply.attr(&ttl, &fuse_attr(&a)),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        trace_op!(
            self,
            "setattr {ino} mode {mode:?} uid {uid:?} gid {gid:?} size {size:?} fh {fh:?}"
        );
        let attr = SetAttr {
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: set_time(atime),
            mtime: set_time(mtime),
        };
        let (vfs, caller, ttl, debug) = (self.vfs.clone(), caller(req, 0), self.attr_ttl(), self.debug);
        self.spawn(async move {
            match vfs.setattr(&caller, Ino(ino.0), fh.map(|f| Fh(f.0)), attr).await {
                Ok(a) => reply.attr(&ttl, &fuse_attr(&a)),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let (vfs, debug) = (self.vfs.clone(), self.debug);
        self.spawn(async move {
            match vfs.readlink(Ino(ino.0)).await {
                Ok(target) => reply.data(&target),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        trace_op!(self, "mknod {parent} {name:?} {mode:o} {rdev}");
        let (vfs, caller, name) = (self.vfs.clone(), caller(req, umask), bytes(name));
        let (attr_ttl, entry_ttl, debug) = self.entry_reply();
        // rustix's, which are u32 on every OS (libc's are i32 on FreeBSD).
        let (major, minor) = (rustix::fs::major(rdev as _), rustix::fs::minor(rdev as _));
        self.spawn(async move {
            match vfs.mknod(&caller, Ino(parent.0), &name, mode, major, minor).await {
                Ok(a) => reply.entry_with_ttls(&attr_ttl, &entry_ttl, &fuse_attr(&a), Generation(0)),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        trace_op!(self, "mkdir {parent} {name:?} {mode:o}");
        let (vfs, caller, name) = (self.vfs.clone(), caller(req, umask), bytes(name));
        let (attr_ttl, entry_ttl, debug) = self.entry_reply();
        self.spawn(async move {
            match vfs.mkdir(&caller, Ino(parent.0), &name, mode).await {
                Ok(a) => reply.entry_with_ttls(&attr_ttl, &entry_ttl, &fuse_attr(&a), Generation(0)),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        trace_op!(self, "unlink {parent} {name:?}");
        let (vfs, caller, name, debug) = (self.vfs.clone(), caller(req, 0), bytes(name), self.debug);
        self.spawn(async move {
            match vfs.unlink(&caller, Ino(parent.0), &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        trace_op!(self, "rmdir {parent} {name:?}");
        let (vfs, caller, name, debug) = (self.vfs.clone(), caller(req, 0), bytes(name), self.debug);
        self.spawn(async move {
            match vfs.rmdir(&caller, Ino(parent.0), &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        trace_op!(self, "symlink {parent} {link_name:?} -> {target:?}");
        let (vfs, caller, name) = (self.vfs.clone(), caller(req, 0), bytes(link_name));
        let target = target.as_os_str().as_bytes().to_vec();
        let (attr_ttl, entry_ttl, debug) = self.entry_reply();
        self.spawn(async move {
            match vfs.symlink(&caller, Ino(parent.0), &name, &target).await {
                Ok(a) => reply.entry_with_ttls(&attr_ttl, &entry_ttl, &fuse_attr(&a), Generation(0)),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: FuseRenameFlags,
        reply: ReplyEmpty,
    ) {
        trace_op!(
            self,
            "rename {parent} {name:?} -> {newparent} {newname:?} flags {flags}"
        );
        let Some(rflags) = rename_flags(flags) else {
            reply.error(FuseErrno::EINVAL);
            return;
        };
        let (vfs, caller, debug) = (self.vfs.clone(), caller(req, 0), self.debug);
        let (name, newname) = (bytes(name), bytes(newname));
        self.spawn(async move {
            match vfs
                .rename(&caller, Ino(parent.0), &name, Ino(newparent.0), &newname, rflags)
                .await
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        trace_op!(self, "link {ino} -> {newparent} {newname:?}");
        let (vfs, caller, name) = (self.vfs.clone(), caller(req, 0), bytes(newname));
        let (attr_ttl, entry_ttl, debug) = self.entry_reply();
        self.spawn(async move {
            match vfs.link(&caller, Ino(ino.0), Ino(newparent.0), &name).await {
                Ok(a) => reply.entry_with_ttls(&attr_ttl, &entry_ttl, &fuse_attr(&a), Generation(0)),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        trace_op!(self, "open {ino} {:#x} pid {}", flags.0, req.pid());
        let (vfs, caller, debug) = (self.vfs.clone(), caller(req, 0), self.debug);
        self.spawn(async move {
            match vfs
                .open(&caller, Ino(ino.0), open_flags::from_host(flags.0))
                .await
            {
                // Without FOPEN_KEEP_CACHE the page cache is dropped on open,
                // which gives close-to-open consistency with other remote
                // writers; with changes pushed, pages of a file unchanged
                // since they were cached are as good.
                Ok((fh, attr)) => reply.opened(FileHandle(fh.0), keep_cache(vfs.keep_cache(attr.ino, &attr))),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // The first bytes that came with the open answer a small file's
        // reads: at once, without a task hop.
        match self.vfs.read_ready(Fh(fh.0), offset, size) {
            Some(Ok(data)) => return reply.data(&data),
            Some(Err(e)) => return reply.error(Self::fail(self.debug, &e)),
            None => {}
        }
        let (vfs, debug) = (self.vfs.clone(), self.debug);
        self.spawn(async move {
            match vfs.read(Fh(fh.0), offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // A small write joins the inode's write buffer at once: its data is
        // copied from the kernel's buffer straight into that one.
        match self.vfs.write_ready(Fh(fh.0), offset, data) {
            Some(Ok(n)) => return reply.written(n),
            Some(Err(e)) => return reply.error(Self::fail(self.debug, &e)),
            None => {}
        }
        // Otherwise the kernel's buffer, only borrowed, is copied for the
        // task: a large or O_SYNC write is sent from this copy as it is.
        let (vfs, data, debug) = (self.vfs.clone(), bytes::Bytes::copy_from_slice(data), self.debug);
        self.spawn(async move {
            match vfs.write_bytes(Fh(fh.0), offset, data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing of the file buffered or in flight (a reader's close):
        // answered at once.
        match self.vfs.flush_ready(Fh(fh.0)) {
            Some(Ok(())) => return reply.ok(),
            Some(Err(e)) => return reply.error(Self::fail(self.debug, &e)),
            None => {}
        }
        let (vfs, debug) = (self.vfs.clone(), self.debug);
        self.spawn(async move {
            match vfs.flush(Fh(fh.0)).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if self.vfs.release_ready(Fh(fh.0)) {
            return reply.ok();
        }
        let vfs = self.vfs.clone();
        self.spawn(async move {
            // The kernel ignores release errors; flush reported any.
            if let Err(e) = vfs.release(Fh(fh.0)).await {
                tracing::debug!("{e}");
            }
            reply.ok();
        });
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let Some(wire) = yonder_proto::fallocate_mode::from_host(mode) else {
            reply.error(FuseErrno::EOPNOTSUPP);
            return;
        };
        let (vfs, debug) = (self.vfs.clone(), self.debug);
        self.spawn(async move {
            match vfs.fallocate(Fh(fh.0), offset, length, wire).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    /// Only `SEEK_DATA`/`SEEK_HOLE` get here: the kernel answers the other
    /// whences itself, and falls back to treating the whole file as data
    /// only after an ENOSYS, which would report holes as data.
    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let whence = match whence {
            libc::SEEK_DATA => SeekWhence::Data,
            libc::SEEK_HOLE => SeekWhence::Hole,
            _ => return reply.error(FuseErrno::EINVAL),
        };
        // As local file systems answer: nothing is found before the start.
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(FuseErrno::ENXIO);
        };
        let (vfs, debug) = (self.vfs.clone(), self.debug);
        self.spawn(async move {
            match vfs.lseek(Fh(fh.0), offset, whence).await {
                Ok(found) => match i64::try_from(found) {
                    Ok(found) => reply.offset(found),
                    Err(_) => reply.error(FuseErrno::EOVERFLOW),
                },
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    // fuser's defaults of the methods below log a warning per call (every
    // `isatty()` on a mounted file); these answer as the kernel expects,
    // without it.

    /// No ioctls are served: `isatty()` and friends on every file should
    /// hear "not a terminal", which is what the kernel makes of ENOSYS too.
    fn ioctl(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        trace_op!(self, "ioctl {ino} {cmd:#x}: not served");
        reply.error(FuseErrno::ENOTTY);
    }

    /// ENOSYS makes the kernel stop asking and report files always ready,
    /// as for a local file.
    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: PollNotifier,
        _events: PollEvents,
        _flags: PollFlags,
        reply: ReplyPoll,
    ) {
        reply.error(FuseErrno::ENOSYS);
    }

    /// ENOSYS makes the kernel stop asking and copy through reads and
    /// writes (`cp` tries copy_file_range first).
    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(FuseErrno::ENOSYS);
    }

    /// Not sent unless `init` asks for FUSE_POSIX_LOCKS, which it does not:
    /// the kernel locks locally. (Were it asked for, ENOSYS would reach
    /// applications.)
    fn getlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        reply.error(FuseErrno::ENOSYS);
    }

    /// See [`Self::getlk`].
    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        _sleep: bool,
        reply: ReplyEmpty,
    ) {
        reply.error(FuseErrno::ENOSYS);
    }

    /// Only block-device mounts (`fuseblk`) are asked; there are no blocks
    /// to map here.
    fn bmap(&self, _req: &Request, _ino: INodeNo, _blocksize: u32, _idx: u64, reply: ReplyBmap) {
        reply.error(FuseErrno::ENOSYS);
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let (vfs, debug) = (self.vfs.clone(), self.debug);
        self.spawn(async move {
            match vfs.fsync(Fh(fh.0), datasync).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        trace_op!(self, "opendir {ino}");
        // Nothing remote happens here: answer inline, without a task hop.
        match self.vfs.opendir(&caller(req, 0), Ino(ino.0)) {
            // The kernel keeps the listing itself: while the remote pushes
            // its changes, it is told when the listing changes
            // (`caches.rs`); otherwise it keeps it while it is the VFS's
            // listing, handed to it whole, unchanged and unexpired, and
            // drops it at the first open after that.
            Ok(fh) if self.vfs.changes_pushed() || self.vfs.listing_kept(Ino(ino.0)) => reply.opened(
                FileHandle(fh.0),
                FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Ok(fh) => reply.opened(FileHandle(fh.0), FopenFlags::FOPEN_CACHE_DIR),
            Err(e) => reply.error(Self::fail(self.debug, &e)),
        }
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        // The end of a listing, and listings fetched ahead, are at hand:
        // answer without a task hop.
        if let Some(items) = self.vfs.readdir_ready(Fh(fh.0), offset) {
            return reply_dir(reply, items);
        }
        let (vfs, debug) = (self.vfs.clone(), self.debug);
        self.spawn(async move {
            match vfs.readdir(Fh(fh.0), offset).await {
                Ok(items) => reply_dir(reply, items),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        // One TTL covers both the entry and its attributes here.
        let ttl = {
            let (attr_ttl, entry_ttl) = self.vfs.ttls();
            attr_ttl.min(entry_ttl)
        };
        if let Some(items) = self.vfs.readdir_ready(Fh(fh.0), offset) {
            if !self.vfs.any_dirty(&items) {
                let vfs = &self.vfs;
                let unsent =
                    reply_dir_plus(reply, ttl, &items, |_, item| vfs.remember_clean(Ino(ino.0), item));
                // Only the entry that did not fit was counted.
                if let Some(item) = unsent
                    .and_then(|i| items.get(i))
                    .filter(|i| !i.is_dot_or_dotdot())
                {
                    vfs.unremember(item.ino);
                }
                return;
            }
        }
        let (vfs, debug) = (self.vfs.clone(), self.debug);
        self.spawn(async move {
            let items = match vfs.readdir(Fh(fh.0), offset).await {
                Ok(items) => items,
                Err(e) => return reply.error(Self::fail(debug, &e)),
            };
            // Entries with buffered writes are flushed first (by `remember`),
            // so that the sizes handed to the kernel are current.
            let mut attrs = Vec::with_capacity(items.len());
            for item in &items {
                attrs.push(vfs.remember(Ino(ino.0), item).await);
            }
            if let Some(unsent) = reply_dir_plus(reply, ttl, &items, |i, _| attrs[i]) {
                for attr in attrs[unsent..].iter().flatten() {
                    vfs.unremember(attr.ino);
                }
            }
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let _ = self.vfs.releasedir(Fh(fh.0));
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // Directory operations are not buffered; the remote has them.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let (vfs, debug) = (self.vfs.clone(), self.debug);
        self.spawn(async move {
            match vfs.statfs(Ino(ino.0)).await {
                Ok(s) => reply.statfs(
                    s.blocks,
                    s.blocks_free,
                    s.blocks_available,
                    s.files,
                    s.files_free,
                    s.block_size as u32,
                    s.name_max as u32,
                    s.fragment_size as u32,
                ),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        trace_op!(self, "setxattr {ino} {name:?} flags {flags}");
        if position != 0 {
            reply.error(FuseErrno::EINVAL);
            return;
        }
        let mode = match flags {
            0 => XattrMode::Either,
            // FreeBSD's FUSE has no create/replace flags: it always sends 0.
            #[cfg(not(target_os = "freebsd"))]
            libc::XATTR_CREATE => XattrMode::Create,
            #[cfg(not(target_os = "freebsd"))]
            libc::XATTR_REPLACE => XattrMode::Replace,
            _ => return reply.error(FuseErrno::EINVAL),
        };
        let (vfs, name, value, debug) = (self.vfs.clone(), bytes(name), value.to_vec(), self.debug);
        let (caller, notifier) = (caller(req, 0), self.after_xattr_change(&name));
        self.spawn(async move {
            match vfs.setxattr(&caller, Ino(ino.0), &name, &value, mode).await {
                Ok(()) => {
                    invalidate_kernel_attrs(notifier, ino);
                    reply.ok()
                }
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // `ls -l` asks every file for ACLs it rarely has: answer from the
        // cached name list right here, without a task hop.
        if self.vfs.xattr_known_absent(Ino(ino.0), name.as_bytes()) {
            // ENOATTR on the BSDs and macOS, through the protocol's mapping.
            reply.error(FuseErrno::from_i32(Errno::ENODATA.to_host()));
            return;
        }
        let (vfs, name, debug) = (self.vfs.clone(), bytes(name), self.debug);
        self.spawn(async move {
            match vfs.getxattr(Ino(ino.0), &name).await {
                Ok(value) => reply_xattr(reply, &value, size),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let (vfs, debug) = (self.vfs.clone(), self.debug);
        self.spawn(async move {
            match vfs.listxattr(Ino(ino.0)).await {
                Ok(names) => {
                    let mut list = Vec::new();
                    for name in names {
                        list.extend_from_slice(&name);
                        list.push(0);
                    }
                    reply_xattr(reply, &list, size);
                }
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (vfs, name, debug) = (self.vfs.clone(), bytes(name), self.debug);
        let notifier = self.after_xattr_change(&name);
        self.spawn(async move {
            match vfs.removexattr(Ino(ino.0), &name).await {
                Ok(()) => {
                    invalidate_kernel_attrs(notifier, ino);
                    reply.ok()
                }
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let (vfs, caller, debug) = (self.vfs.clone(), caller(req, 0), self.debug);
        self.spawn(async move {
            match vfs.access(&caller, Ino(ino.0), mask.bits() as u32).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        trace_op!(self, "create {parent} {name:?} {mode:o} flags {flags:#x}");
        let (vfs, caller, name, debug) = (self.vfs.clone(), caller(req, umask), bytes(name), self.debug);
        // One TTL covers both the entry and its attributes here.
        let ttl = {
            let (attr_ttl, entry_ttl) = self.vfs.ttls();
            attr_ttl.min(entry_ttl)
        };
        self.spawn(async move {
            match vfs
                .create(&caller, Ino(parent.0), &name, mode, open_flags::from_host(flags))
                .await
            {
                Ok((fh, a)) => reply.created(
                    &ttl,
                    &fuse_attr(&a),
                    Generation(0),
                    FileHandle(fh.0),
                    keep_cache(vfs.keep_cache(a.ino, &a)),
                ),
                Err(e) => reply.error(Self::fail(debug, &e)),
            }
        });
    }
}

/// Answers a getxattr/listxattr: the size for a probe (`size` 0), ERANGE if
/// the caller's buffer is too small, else the data.
fn reply_xattr(reply: ReplyXattr, data: &[u8], size: u32) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() > size as usize {
        reply.error(FuseErrno::ERANGE);
    } else {
        reply.data(data);
    }
}

fn reply_dir(mut reply: ReplyDirectory, items: Vec<DirItem>) {
    for item in items {
        if reply.add(
            INodeNo(item.ino.0),
            item.offset,
            file_type(item.kind),
            OsStr::from_bytes(&item.name),
        ) {
            break;
        }
    }
    reply.ok();
}

/// Fills a readdirplus reply. `attr_of` gives an entry's attributes, its
/// lookup counted (`None` skips it); returns the index of the first entry
/// that did not fit, which the kernel will not count.
fn reply_dir_plus(
    mut reply: ReplyDirectoryPlus,
    ttl: Duration,
    items: &[DirItem],
    mut attr_of: impl FnMut(usize, &DirItem) -> Option<FileAttr>,
) -> Option<usize> {
    let mut unsent = None;
    for (i, item) in items.iter().enumerate() {
        let name = OsStr::from_bytes(&item.name);
        if item.is_dot_or_dotdot() {
            // The kernel neither counts nor caches these.
            let attr = crate::convert::placeholder_dir_attr(item.ino.0);
            if reply.add(INodeNo(item.ino.0), item.offset, name, &ttl, &attr, Generation(0)) {
                unsent = Some(i);
                break;
            }
            continue;
        }
        let Some(attr) = attr_of(i, item) else {
            continue;
        };
        if reply.add(
            INodeNo(attr.ino.0),
            item.offset,
            name,
            &ttl,
            &fuse_attr(&attr),
            Generation(0),
        ) {
            unsent = Some(i);
            break;
        }
    }
    reply.ok();
    unsent
}
