//! The VFS proper: an API shaped like the operating system's file API,
//! addressed by inode and handle numbers, implemented on a path-based
//! [`Remote`].

use crate::attr::{Caller, Fh, FileAttr, FileKind, Ino, ROOT_INO};
use crate::dir::{DirItem, DirStream};
use crate::error::{display_path, Result, VfsError};
use crate::flags::writes;
use crate::handle::{HandleTable, OpenDir, OpenFile};
use crate::inode::InodeTable;
use crate::options::VfsOptions;
use crate::readahead::{Plan, Readahead};
use crate::reopen::{ReopenAhead, REOPEN_WINDOW};
use crate::write::{InFlight, WriteBack, Writer, MAX_WRITES_IN_FLIGHT};
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;
use tokio::sync::watch;
use yonder_proto::{
    file_type, open_flags as of, Attr, Errno, Owner, RenameFlags, SetAttr, StatFs, Target, XattrMode,
};
use yonder_remote::Remote;

/// Counters describing the VFS's tables, for diagnostics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfsStats {
    pub inodes: usize,
    pub open_files: usize,
}

pub struct Vfs {
    remote: Arc<dyn Remote>,
    opts: VfsOptions,
    inodes: Mutex<InodeTable>,
    handles: Mutex<HandleTable>,
    /// Whether nodes created here start without extended attributes.
    new_nodes_bare: bool,
    /// For tasks that outlive a call (delayed write flushes).
    me: Weak<Vfs>,
    /// Directory listings being fetched ahead of a reader.
    prefetching: Mutex<HashSet<Ino>>,
    prefetch_slots: Arc<tokio::sync::Semaphore>,
    /// Names whose open came back stale, and files opened ahead for them.
    reopen: Mutex<ReopenAhead>,
    /// Where background fetches run: some calls come from frontend threads
    /// outside the runtime.
    runtime: tokio::runtime::Handle,
}

/// Directory listings fetched ahead at once, and per walk step.
const PREFETCH_PARALLEL: usize = 8;
const PREFETCH_MAX: usize = 64;

const SETGID: u32 = 0o2000;

impl Vfs {
    /// Builds a VFS over `remote`, checking that its root is a directory.
    pub async fn new(remote: Arc<dyn Remote>, opts: VfsOptions) -> Result<Arc<Vfs>> {
        let root = remote
            .lstat(b"")
            .await
            .map_err(|e| VfsError::remote("lstat", b"", e))?;
        if !root.is_dir() {
            return Err(VfsError::new("mount", ".", Errno::ENOTDIR));
        }
        let inodes = InodeTable::new(&root, opts.attr_ttl, opts.dir_ttl);
        // New files start without extended attributes unless the remote
        // labels them (security.*) or a default ACL hands one down; the
        // root tells which kind of tree this is.
        let new_nodes_bare = match remote.listxattr(b"").await {
            Ok(names) => !names
                .iter()
                .any(|n| n.starts_with(b"security.") || n == b"system.posix_acl_default"),
            Err(_) => false,
        };
        Ok(Arc::new_cyclic(|me| Vfs {
            remote,
            opts,
            new_nodes_bare,
            inodes: Mutex::new(inodes),
            handles: Mutex::new(HandleTable::default()),
            me: me.clone(),
            prefetching: Mutex::new(HashSet::new()),
            prefetch_slots: Arc::new(tokio::sync::Semaphore::new(PREFETCH_PARALLEL)),
            reopen: Mutex::new(ReopenAhead::default()),
            runtime: tokio::runtime::Handle::current(),
        }))
    }

    pub fn options(&self) -> &VfsOptions {
        &self.opts
    }

    pub fn remote(&self) -> &Arc<dyn Remote> {
        &self.remote
    }

    pub fn stats(&self) -> VfsStats {
        VfsStats {
            inodes: self.inodes().len_nodes(),
            open_files: self.handles().all_files().len(),
        }
    }

    fn inodes(&self) -> MutexGuard<'_, InodeTable> {
        lock(&self.inodes)
    }

    fn handles(&self) -> MutexGuard<'_, HandleTable> {
        lock(&self.handles)
    }

    fn check_writable(&self, op: &'static str, ino: Ino) -> Result<()> {
        if self.opts.read_only {
            return Err(VfsError::new(op, self.describe(ino), Errno::EROFS));
        }
        Ok(())
    }

    /// Path of an inode for messages.
    fn describe(&self, ino: Ino) -> String {
        match self.inodes().path(ino) {
            Some(p) => display_path(&p),
            None => format!("<inode {ino}>"),
        }
    }

    fn path(&self, op: &'static str, ino: Ino) -> Result<Vec<u8>> {
        let table = self.inodes();
        match table.path(ino) {
            Some(p) => Ok(p),
            None if table.get(ino).is_some() => {
                Err(VfsError::new(op, format!("<inode {ino}>"), Errno::ENOENT))
            }
            None => Err(VfsError::new(op, format!("<inode {ino}>"), Errno::ESTALE)),
        }
    }

    fn child_path(&self, op: &'static str, parent: Ino, name: &[u8]) -> Result<Vec<u8>> {
        if name.is_empty() {
            return Err(VfsError::new(op, "", Errno::ENOENT));
        }
        if name.contains(&b'/') || name == b"." || name == b".." {
            return Err(VfsError::new(op, display_path(name), Errno::EINVAL));
        }
        let table = self.inodes();
        match table.child_path(parent, name) {
            Some(p) => Ok(p),
            None => {
                let errno = if table.get(parent).is_some() {
                    Errno::ENOENT
                } else {
                    Errno::ESTALE
                };
                Err(VfsError::new(op, display_path(name), errno))
            }
        }
    }

    fn file(&self, op: &'static str, fh: Fh) -> Result<Arc<OpenFile>> {
        self.handles()
            .file(fh)
            .ok_or_else(|| VfsError::new(op, format!("<handle {fh}>"), Errno::EBADF))
    }

    /// Owner for a node created in `parent`: the caller, except that a
    /// setgid directory passes its group on, as it would locally.
    fn owner_for(&self, caller: &Caller, parent: Ino) -> Owner {
        let mut owner = caller.owner();
        // Even expired attributes tell the setgid bit, which rarely changes.
        if let Some(attr) = self.inodes().get(parent).and_then(|n| n.attr) {
            if attr.perm & SETGID != 0 {
                owner.gid = attr.gid;
            }
        }
        owner
    }

    /// The permission bits to create a node in `parent` with, as a local
    /// file system decides them: the caller's umask applies unless
    /// `parent` has a default ACL, whose entries (applied by the remote
    /// kernel) take its place.
    async fn creation_mode(&self, caller: &Caller, parent: Ino, mode: u32) -> u32 {
        let mode = mode & 0o7777;
        if mode & caller.umask == 0 {
            return mode;
        }
        match self.listxattr(parent).await {
            Ok(names) if names.iter().any(|n| n == b"system.posix_acl_default") => mode,
            _ => mode & !caller.umask,
        }
    }

    /// Registers a node that an operation created (or linked) at
    /// `parent/name`, counting one lookup for the caller.
    /// Like [`Vfs::entered`] for a node this call created: in a tree whose
    /// new nodes start bare, it is known to have no extended attributes,
    /// so the kernel's `security.capability` probe before its first write
    /// costs no round trip.
    fn entered_new(&self, parent: Ino, name: &[u8], attr: &Attr) -> FileAttr {
        let fattr = self.entered(parent, name, attr);
        if self.new_nodes_bare {
            let now = Instant::now();
            let mut table = self.inodes();
            let inherits_acl = table
                .cached_xattr_names(parent, now)
                .is_some_and(|names| names.iter().any(|n| n == b"system.posix_acl_default"));
            if !inherits_acl {
                table.set_xattr_names(fattr.ino, Vec::new(), now);
            }
        }
        fattr
    }

    fn entered(&self, parent: Ino, name: &[u8], attr: &Attr) -> FileAttr {
        let mut table = self.inodes();
        let fattr = table.upsert(parent, name, attr, Instant::now());
        table.inc_lookup(fattr.ino, 1);
        // The parent's mtime, ctime (and nlink for directories) changed.
        table.invalidate_attr(parent);
        fattr
    }

    // ----- names -----

    /// Looks `name` up in directory `parent`; counts one lookup on success,
    /// to be released with [`Vfs::forget`].
    pub async fn lookup(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Result<FileAttr> {
        if let Some(answer) = self.lookup_ready(caller, parent, name) {
            return answer;
        }
        if lock(&self.reopen).is_stale(parent, name, Instant::now()) {
            if let Some(fattr) = self.lookup_by_opening(caller, parent, name).await {
                return Ok(fattr);
            }
        }
        if self.relist(parent).await {
            if let Some(answer) = self.lookup_ready(caller, parent, name) {
                return answer;
            }
        }
        let path = self.child_path("lookup", parent, name)?;
        let attr = match self.remote.lstat(&path).await {
            Ok(attr) => attr,
            Err(e) => {
                if e.errno() == Errno::ENOENT {
                    self.inodes().unlink(parent, name);
                }
                return Err(VfsError::remote("lookup", &path, e));
            }
        };
        let mut fattr = self.inodes().upsert(parent, name, &attr, Instant::now());
        if self.is_dirty(fattr.ino) {
            // The remote's size lags behind buffered writes.
            self.flush_inode(fattr.ino).await;
            fattr = self.getattr(fattr.ino, None).await?;
        }
        self.inodes().inc_lookup(fattr.ino, 1);
        Ok(fattr)
    }

    /// The kernel's lookup after a stale open (see `reopen.rs`): opens the
    /// name and keeps the handle for the open that follows, so that both
    /// see the same file. `None` if it cannot be opened for reading (then
    /// an ordinary lookup answers).
    async fn lookup_by_opening(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Option<FileAttr> {
        lock(&self.reopen).clear_stale(parent, name);
        let path = self.child_path("lookup", parent, name).ok()?;
        // Never follow a symlink (a lookup describes the link), never wait
        // on a FIFO.
        let flags = of::READ_ONLY | of::NOFOLLOW | of::NONBLOCK;
        let (handle, attr, head) = self.remote.open_read(&path, flags, OPEN_PREFETCH).await.ok()?;
        let fattr = {
            let mut table = self.inodes();
            let fattr = table.upsert(parent, name, &attr, Instant::now());
            table.inc_lookup(fattr.ino, 1);
            fattr
        };
        if attr.is_file() && !self.is_dirty(fattr.ino) {
            self.inodes().open_inc(fattr.ino);
            lock(&self.reopen).keep(
                fattr.ino,
                caller.pid,
                (parent, name),
                (handle, attr, head),
                Instant::now(),
            );
        } else {
            self.close_remote(handle);
        }
        self.close_unclaimed_later();
        Some(fattr)
    }

    /// Closes, once their window has passed, files opened ahead that no
    /// open came for.
    fn close_unclaimed_later(&self) {
        let me = self.me.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(REOPEN_WINDOW).await;
            let Some(vfs) = me.upgrade() else { return };
            let expired = lock(&vfs.reopen).expired(Instant::now());
            for (ino, handle) in expired {
                vfs.inodes().open_dec(ino);
                vfs.close_remote(handle);
            }
        });
    }

    /// Closes a remote handle nobody holds, without waiting.
    fn close_remote(&self, handle: yonder_proto::Handle) {
        let remote = self.remote.clone();
        self.runtime.spawn(async move {
            if let Err(e) = remote.close(handle).await {
                tracing::debug!("close of an unused handle: {e}");
            }
        });
    }

    /// [`Vfs::lookup`] when the caches answer it (a fresh entry, or a name
    /// known absent); `None` when the remote must be asked. Frontends call
    /// it inline.
    pub fn lookup_ready(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Option<Result<FileAttr>> {
        let now = Instant::now();
        {
            let reopen = lock(&self.reopen);
            if let Some(ino) = reopen.looked_up_by(caller.pid, parent, name, now) {
                drop(reopen);
                let mut table = self.inodes();
                let attr = table.get(ino).and_then(|n| n.attr)?;
                table.inc_lookup(ino, 1);
                return Some(Ok(attr));
            }
            if reopen.is_stale(parent, name, now) {
                return None;
            }
        }
        let mut table = self.inodes();
        if let Some(attr) = table.cached_lookup(parent, name, now) {
            // Buffered writes make the cached size stale.
            if self.is_dirty(attr.ino) {
                return None;
            }
            table.inc_lookup(attr.ino, 1);
            return Some(Ok(attr));
        }
        // An over-long name is left to the remote, whose answer is
        // ENAMETOOLONG, not ENOENT.
        if name.len() <= NAME_MAX && table.known_absent(parent, name, now) {
            return Some(Err(VfsError::new("lookup", display_path(name), Errno::ENOENT)));
        }
        None
    }

    /// [`Vfs::getattr`] without a handle, when fresh cached attributes
    /// answer it; frontends call it inline.
    pub fn getattr_ready(&self, ino: Ino) -> Option<FileAttr> {
        let attr = self.inodes().fresh_attr(ino, Instant::now())?;
        (!self.is_dirty(ino)).then_some(attr)
    }

    /// Releases `n` lookups of `ino`.
    pub fn forget(&self, ino: Ino, n: u64) {
        self.inodes().forget(ino, n);
    }

    // ----- attributes -----

    pub async fn getattr(&self, ino: Ino, fh: Option<Fh>) -> Result<FileAttr> {
        if self.is_dirty(ino) {
            self.flush_inode(ino).await;
        }
        if fh.is_none() {
            if let Some(attr) = self.inodes().fresh_attr(ino, Instant::now()) {
                return Ok(attr);
            }
        }
        match self.fetch_attr(ino, fh).await {
            Ok(attr) => Ok(self.inodes().set_attr(ino, &attr, Instant::now())),
            // A file deleted or replaced, with nothing open on it any more
            // (the last handle may have closed while it was asked), is
            // what it was when last seen: a kernel still holding it gets
            // that, not an error, as a local file system's inode would.
            Err(e) if e.errno() == Errno::ESTALE => self
                .inodes()
                .get(ino)
                .filter(|n| n.links.is_empty())
                .and_then(|n| n.attr)
                .ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// Handle to stat or change an inode through when its path is gone.
    fn any_handle(&self, ino: Ino, fh: Option<Fh>) -> Option<Arc<OpenFile>> {
        let handles = self.handles();
        if let Some(file) = fh.and_then(|fh| handles.file(fh)).filter(|f| f.ino == ino) {
            return Some(file);
        }
        handles.files_of(ino).into_iter().next()
    }

    async fn fetch_attr(&self, ino: Ino, fh: Option<Fh>) -> Result<Attr> {
        if let Some(file) = fh.and_then(|fh| self.handles().file(fh)).filter(|f| f.ino == ino) {
            return self
                .remote
                .fstat(file.remote)
                .await
                .map_err(|e| VfsError::remote("fstat", b"", e));
        }
        let path = self.inodes().path(ino);
        if let Some(path) = path {
            match self.remote.lstat(&path).await {
                Ok(attr) if self.inodes().same_file(ino, &attr) => return Ok(attr),
                Ok(_) => {
                    // The name now belongs to another file.
                    if let Some((parent, name)) = self.first_link(ino) {
                        self.inodes().unlink(parent, &name);
                    }
                }
                Err(e) if e.errno() != Errno::ENOENT => return Err(VfsError::remote("lstat", &path, e)),
                Err(_) => {}
            }
        }
        // No name leads to it: through a handle still open on it. One that
        // is closed meanwhile (released while this was asked) answers
        // EBADF: then the next, if any.
        let mut tried = Vec::new();
        while let Some(file) = self.any_handle_except(ino, &tried) {
            match self.remote.fstat(file.remote).await {
                Err(e) if e.errno() == Errno::EBADF => tried.push(file.fh),
                other => return other.map_err(|e| VfsError::remote("fstat", b"", e)),
            }
        }
        Err(VfsError::new("getattr", format!("<inode {ino}>"), Errno::ESTALE))
    }

    /// An open handle of `ino` other than those in `tried`.
    fn any_handle_except(&self, ino: Ino, tried: &[Fh]) -> Option<Arc<OpenFile>> {
        self.handles()
            .files_of(ino)
            .into_iter()
            .find(|f| !tried.contains(&f.fh))
    }

    fn first_link(&self, ino: Ino) -> Option<(Ino, Vec<u8>)> {
        self.inodes().get(ino).and_then(|n| n.links.first().cloned())
    }

    /// Changes attributes. `fh` (ftruncate, futimens) or, for a file whose
    /// last name is gone, any open handle is used instead of the path.
    pub async fn setattr(
        &self,
        _caller: &Caller,
        ino: Ino,
        fh: Option<Fh>,
        attr: SetAttr,
    ) -> Result<FileAttr> {
        self.check_writable("setattr", ino)?;
        if attr.is_empty() {
            return self.getattr(ino, fh).await;
        }
        if self.is_dirty(ino) {
            // Buffered and in-flight data must land before the change: before
            // a truncation, not after it, and before new times, which a
            // later write would overwrite.
            self.flush_inode(ino).await;
        }
        if attr.size.is_some() {
            self.drop_readahead(ino);
        }
        let by_handle = fh.and_then(|fh| self.handles().file(fh)).filter(|f| f.ino == ino);
        let path = self.inodes().path(ino);
        let (target, shown) = match (by_handle, path) {
            (Some(file), _) => (Target::Handle(file.remote), Vec::new()),
            (None, Some(path)) => (Target::Path(path.clone().into()), path),
            (None, None) => match self.any_handle(ino, None) {
                Some(file) => (Target::Handle(file.remote), Vec::new()),
                None => return Err(VfsError::new("setattr", format!("<inode {ino}>"), Errno::ESTALE)),
            },
        };
        let new = self
            .remote
            .setattr(target, attr)
            .await
            .map_err(|e| VfsError::remote("setattr", &shown, e))?;
        Ok(self.inodes().set_attr(ino, &new, Instant::now()))
    }

    pub async fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        let path = self.path("readlink", ino)?;
        self.remote
            .readlink(&path)
            .await
            .map_err(|e| VfsError::remote("readlink", &path, e))
    }

    // ----- creating and removing names -----

    /// Creates a node; `mode` carries the file type bits (regular, FIFO,
    /// socket, character or block device).
    pub async fn mknod(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &[u8],
        mode: u32,
        rdev_major: u32,
        rdev_minor: u32,
    ) -> Result<FileAttr> {
        self.check_writable("mknod", parent)?;
        let path = self.child_path("mknod", parent, name)?;
        let mode = (mode & file_type::MASK) | self.creation_mode(caller, parent, mode).await;
        let owner = self.owner_for(caller, parent);
        let attr = self
            .remote
            .mknod(&path, mode, rdev_major, rdev_minor, Some(owner))
            .await
            .map_err(|e| VfsError::remote("mknod", &path, e))?;
        Ok(self.entered_new(parent, name, &attr))
    }

    pub async fn mkdir(&self, caller: &Caller, parent: Ino, name: &[u8], mode: u32) -> Result<FileAttr> {
        self.check_writable("mkdir", parent)?;
        let path = self.child_path("mkdir", parent, name)?;
        let owner = self.owner_for(caller, parent);
        let mode = self.creation_mode(caller, parent, mode).await;
        let attr = self
            .remote
            .mkdir(&path, mode, Some(owner))
            .await
            .map_err(|e| VfsError::remote("mkdir", &path, e))?;
        let fattr = self.entered_new(parent, name, &attr);
        // A new directory is empty: lookups in it (an untar creating its
        // files) need not ask the remote whether a name exists.
        self.inodes()
            .listing_complete(fattr.ino, &HashSet::new(), Instant::now());
        Ok(fattr)
    }

    /// Creates `parent/name` as a symlink whose content is `target`, verbatim.
    pub async fn symlink(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> Result<FileAttr> {
        self.check_writable("symlink", parent)?;
        let path = self.child_path("symlink", parent, name)?;
        let owner = self.owner_for(caller, parent);
        let attr = self
            .remote
            .symlink(target, &path, Some(owner))
            .await
            .map_err(|e| VfsError::remote("symlink", &path, e))?;
        Ok(self.entered_new(parent, name, &attr))
    }

    /// Creates `new_parent/new_name` as a hard link to `ino`.
    pub async fn link(
        &self,
        _caller: &Caller,
        ino: Ino,
        new_parent: Ino,
        new_name: &[u8],
    ) -> Result<FileAttr> {
        self.check_writable("link", new_parent)?;
        let from = self.path("link", ino)?;
        let to = self.child_path("link", new_parent, new_name)?;
        let attr = self
            .remote
            .link(&from, &to)
            .await
            .map_err(|e| VfsError::remote("link", &to, e))?;
        Ok(self.entered(new_parent, new_name, &attr))
    }

    pub async fn unlink(&self, _caller: &Caller, parent: Ino, name: &[u8]) -> Result<()> {
        self.check_writable("unlink", parent)?;
        let path = self.child_path("unlink", parent, name)?;
        self.remote
            .unlink(&path)
            .await
            .map_err(|e| VfsError::remote("unlink", &path, e))?;
        let mut table = self.inodes();
        if let Some(ino) = table.unlink(parent, name) {
            table.retire_if_gone(ino);
        }
        table.invalidate_attr(parent);
        Ok(())
    }

    pub async fn rmdir(&self, _caller: &Caller, parent: Ino, name: &[u8]) -> Result<()> {
        self.check_writable("rmdir", parent)?;
        let path = self.child_path("rmdir", parent, name)?;
        self.remote
            .rmdir(&path)
            .await
            .map_err(|e| VfsError::remote("rmdir", &path, e))?;
        let mut table = self.inodes();
        if let Some(ino) = table.unlink(parent, name) {
            table.retire_if_gone(ino);
        }
        table.invalidate_attr(parent);
        Ok(())
    }

    /// Renames `parent/name` to `new_parent/new_name`. Open files and
    /// everything below a renamed directory follow.
    pub async fn rename(
        &self,
        _caller: &Caller,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<()> {
        self.check_writable("rename", parent)?;
        let from = self.child_path("rename", parent, name)?;
        let to = self.child_path("rename", new_parent, new_name)?;
        self.remote
            .rename(&from, &to, flags)
            .await
            .map_err(|e| VfsError::remote("rename", &from, e))?;
        let mut table = self.inodes();
        let moved = table.ino_of(parent, name);
        let replaced = table.ino_of(new_parent, new_name).filter(|_| !flags.exchange);
        table.rename(parent, name, new_parent, new_name, flags.exchange);
        table.invalidate_attr(parent);
        table.invalidate_attr(new_parent);
        if let Some(ino) = moved {
            // ctime changed.
            table.invalidate_attr(ino);
        }
        if let Some(ino) = replaced.filter(|r| Some(*r) != moved) {
            // nlink and ctime changed; deleted, unless open or linked.
            table.invalidate_attr(ino);
            table.retire_if_gone(ino);
        }
        Ok(())
    }

    // ----- files -----

    /// Opens `ino`; `flags` are [`yonder_proto::open_flags`] values.
    pub async fn open(&self, caller: &Caller, ino: Ino, flags: u32) -> Result<(Fh, FileAttr)> {
        if writes(flags) || flags & of::TRUNCATE != 0 {
            self.check_writable("open", ino)?;
        }
        let flags = flags & !(of::CREATE | of::EXCLUSIVE);
        if flags & of::TRUNCATE != 0 {
            self.flush_inode(ino).await;
            self.drop_readahead(ino);
        }
        let reading = flags & (of::ACCESS_MASK | of::TRUNCATE) == of::READ_ONLY;
        let opened_ahead = if reading {
            lock(&self.reopen).take(ino, caller.pid, Instant::now())
        } else {
            None
        };
        if let Some(ahead) = opened_ahead {
            let opened = self.opened_for_reading(ino, flags, ahead.handle, ahead.attr, ahead.head);
            // The handle's own open count replaces the one kept for it.
            self.inodes().open_dec(ino);
            return Ok(opened);
        }
        let path = self.openable_path(ino)?;
        if reading {
            // A reader gets the file's start with the handle: a small file
            // is then read in one round trip, not two.
            let (handle, attr, head) = self
                .remote
                .open_read(&path, flags, OPEN_PREFETCH)
                .await
                .map_err(|e| self.open_failed(ino, &path, e))?;
            self.check_opened(ino, &path, handle, &attr)?;
            return Ok(self.opened_for_reading(ino, flags, handle, attr, head));
        }
        let (handle, attr) = self
            .remote
            .open(&path, flags, 0, None)
            .await
            .map_err(|e| self.open_failed(ino, &path, e))?;
        self.check_opened(ino, &path, handle, &attr)?;
        let fattr = self.inodes().set_attr(ino, &attr, Instant::now());
        let fh = self.register_file(ino, handle, flags);
        Ok((fh, fattr))
    }

    /// Registers a handle opened for reading, with the file's first bytes
    /// that came with it.
    fn opened_for_reading(
        &self,
        ino: Ino,
        flags: u32,
        handle: yonder_proto::Handle,
        attr: Attr,
        head: Vec<u8>,
    ) -> (Fh, FileAttr) {
        let fattr = self.inodes().set_attr(ino, &attr, Instant::now());
        let mut readahead = Readahead::default();
        readahead.follow(attr.size, attr.mtime);
        if attr.is_file() && !self.is_dirty(ino) {
            let whole = head.len() < OPEN_PREFETCH as usize;
            readahead.set_head(Bytes::from(head), whole);
        }
        let fh = self.register_file_with(ino, handle, flags, readahead);
        (fh, fattr)
    }

    /// The path to open `ino` by. An inode with no name left (replaced by
    /// a rename, or deleted) cannot be opened by path: ESTALE, on which
    /// the kernel looks the name up afresh and opens what it names now, as
    /// a local open racing a rename would.
    fn openable_path(&self, ino: Ino) -> Result<Vec<u8>> {
        let former = {
            let table = self.inodes();
            if let Some(path) = table.path(ino) {
                return Ok(path);
            }
            table.get(ino).and_then(|n| n.former.clone())
        };
        if let Some((parent, name)) = former {
            lock(&self.reopen).mark_stale(parent, &name, Instant::now());
        }
        Err(VfsError::new("open", format!("<inode {ino}>"), Errno::ESTALE))
    }

    /// A failed remote open: a name that is gone on the remote is forgotten
    /// and reported stale, so the kernel looks it up again.
    fn open_failed(&self, ino: Ino, path: &[u8], err: yonder_remote::RemoteError) -> VfsError {
        let err = VfsError::remote("open", path, err);
        if err.errno() != Errno::ENOENT {
            return err;
        }
        self.forget_name_of(ino);
        VfsError::new("open", display_path(path), Errno::ESTALE)
    }

    /// Checks that a path opened for `ino` still named that file; if
    /// another file has the name by now, the handle is closed, the name
    /// forgotten, and the open fails with ESTALE (the kernel then looks the
    /// name up again): reading another file's data as this inode's would
    /// mix two files.
    fn check_opened(&self, ino: Ino, path: &[u8], handle: yonder_proto::Handle, attr: &Attr) -> Result<()> {
        if self.inodes().same_file(ino, attr) {
            return Ok(());
        }
        self.forget_name_of(ino);
        self.close_remote(handle);
        Err(VfsError::new("open", display_path(path), Errno::ESTALE))
    }

    /// Forgets the name `ino` was reached by: the remote says it names
    /// something else now, or nothing.
    /// Its next lookup opens it (see `reopen.rs`).
    /// Another open that raced this one may have forgotten the name
    /// already: the name it had still earns its caller a retry.
    fn forget_name_of(&self, ino: Ino) {
        let name = {
            let mut table = self.inodes();
            match first_link_in(&table, ino) {
                Some((parent, name)) => {
                    table.unlink(parent, &name);
                    table.invalidate_dir(parent);
                    Some((parent, name))
                }
                None => table.get(ino).and_then(|n| n.former.clone()),
            }
        };
        if let Some((parent, name)) = name {
            lock(&self.reopen).mark_stale(parent, &name, Instant::now());
        }
    }

    /// Creates (or with `flags` lacking EXCLUSIVE, maybe opens) and opens
    /// `parent/name`; counts one lookup like [`Vfs::lookup`].
    pub async fn create(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &[u8],
        mode: u32,
        flags: u32,
    ) -> Result<(Fh, FileAttr)> {
        self.check_writable("create", parent)?;
        let path = self.child_path("create", parent, name)?;
        let flags = flags | of::CREATE;
        let owner = self.owner_for(caller, parent);
        let mode = self.creation_mode(caller, parent, mode).await;
        let (handle, attr) = self
            .remote
            .open(&path, flags, mode, Some(owner))
            .await
            .map_err(|e| VfsError::remote("create", &path, e))?;
        let fattr = self.entered_new(parent, name, &attr);
        let fh = self.register_file(fattr.ino, handle, flags & !(of::CREATE | of::EXCLUSIVE));
        Ok((fh, fattr))
    }

    fn register_file(&self, ino: Ino, handle: yonder_proto::Handle, flags: u32) -> Fh {
        self.register_file_with(ino, handle, flags, Readahead::default())
    }

    fn register_file_with(
        &self,
        ino: Ino,
        handle: yonder_proto::Handle,
        flags: u32,
        readahead: Readahead,
    ) -> Fh {
        let file = self.handles().insert_file(ino, |fh, io| OpenFile {
            fh,
            ino,
            remote: handle,
            flags,
            append: flags & of::APPEND != 0,
            io,
            readahead: Mutex::new(readahead),
        });
        self.inodes().open_inc(ino);
        file.fh
    }

    fn is_dirty(&self, ino: Ino) -> bool {
        self.handles().files_of(ino).first().is_some_and(|f| f.is_dirty())
    }

    /// Sends the buffered writes of `ino` and waits for those in flight.
    /// Errors stay with the handle that wrote, reported by its next write,
    /// flush or fsync.
    async fn flush_inode(&self, ino: Ino) {
        let Some(file) = self.handles().files_of(ino).into_iter().next() else {
            return;
        };
        if !file.is_dirty() {
            return;
        }
        let mut io = file.io.state.lock().await;
        self.send_all(&file, &mut io).await;
        drop(io);
        // Attributes cached while the data was still buffered here (a
        // lookup or listing meanwhile) show the old size and times.
        self.inodes().invalidate_attr(ino);
    }

    fn drop_readahead(&self, ino: Ino) {
        for file in self.handles().files_of(ino) {
            lock(&file.readahead).clear();
        }
    }

    /// Sends the inode's buffer and waits for every write of the inode in
    /// flight; returns (and clears) `file`'s first unreported write error.
    async fn send_buffer(&self, file: &OpenFile, io: &mut WriteBack) -> Result<()> {
        self.send_all(file, io).await;
        match io.take_error(file.fh) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Sends the inode's buffer and waits for every write in flight; errors
    /// stay with the handles that wrote.
    async fn send_all(&self, file: &OpenFile, io: &mut WriteBack) {
        if let Some((writer, offset, data)) = io.buf.take() {
            self.queue_write(file, io, writer, offset, data).await;
        }
        self.drain_writes(file, io).await;
    }

    /// Starts a remote write of `writer`'s data without waiting for it. Its
    /// error, like that of any write in flight, is kept for `writer`.
    async fn queue_write(
        &self,
        file: &OpenFile,
        io: &mut WriteBack,
        writer: Writer,
        offset: u64,
        data: Vec<u8>,
    ) {
        // Where an append lands is the remote's end of file: it may touch
        // any byte.
        let (start, end) = if writer.append {
            (0, u64::MAX)
        } else {
            (offset, offset + data.len() as u64)
        };
        if io.overlaps(start, end) {
            self.drain_writes(file, io).await;
        }
        while io.in_flight.len() >= MAX_WRITES_IN_FLIGHT {
            let oldest = io.in_flight.pop_front().expect("in flight");
            Self::settle(io, oldest.fh, oldest.task.await);
        }
        file.io.set_dirty(true);
        let remote = self.remote.clone();
        let path = self.describe(file.ino);
        // Frozen, not copied: the chunks sent are slices of this buffer.
        let task = tokio::spawn(write_all(remote, writer.handle, path, offset, Bytes::from(data)));
        io.in_flight.push_back(InFlight {
            start,
            end,
            fh: writer.fh,
            task,
        });
        // A readahead that raced the write may hold old data.
        self.drop_readahead(file.ino);
    }

    /// Waits for every write of the inode in flight.
    async fn drain_writes(&self, file: &OpenFile, io: &mut WriteBack) {
        let had = !io.in_flight.is_empty();
        while let Some(write) = io.in_flight.pop_front() {
            Self::settle(io, write.fh, write.task.await);
        }
        if io.buf.is_empty() {
            file.io.set_dirty(false);
        }
        if had {
            self.drop_readahead(file.ino);
        }
    }

    fn settle(io: &mut WriteBack, fh: Fh, joined: std::result::Result<Result<()>, tokio::task::JoinError>) {
        let result = joined.unwrap_or_else(|e| Err(VfsError::new("write", e.to_string(), Errno::EIO)));
        if let Err(err) = result {
            io.record_error(fh, err);
        }
    }

    /// Writes `data` at `offset` (at the end for append handles). The data
    /// may be buffered; a failure to send it surfaces at a later write, at
    /// [`Vfs::flush`] or at [`Vfs::fsync`].
    pub async fn write(&self, fh: Fh, offset: u64, data: &[u8]) -> Result<u32> {
        let file = self.file("write", fh)?;
        self.check_writable("write", file.ino)?;
        self.drop_readahead(file.ino);
        self.inodes().invalidate_attr(file.ino);
        let max = self.opts.write_buffer;
        let me = file.writer();
        let mut io = file.io.state.lock().await;
        if let Some(err) = io.take_error(file.fh) {
            return Err(err);
        }
        let sync = file.flags & (of::SYNC | of::DSYNC) != 0;
        if sync {
            // O_SYNC/O_DSYNC: the data is on the remote when write returns.
            if let Some((writer, at, buffered)) = io.buf.take() {
                self.queue_write(&file, &mut io, writer, at, buffered).await;
            }
            self.queue_write(&file, &mut io, me, offset, data.to_vec()).await;
            self.drain_writes(&file, &mut io).await;
            return match io.take_error(file.fh) {
                Some(err) => Err(err),
                None => Ok(data.len() as u32),
            };
        }
        if !io.buf.continues(&me, offset) || io.buf.len() + data.len() > max {
            if let Some((writer, at, buffered)) = io.buf.take() {
                self.queue_write(&file, &mut io, writer, at, buffered).await;
            }
        }
        if max == 0 || (io.buf.is_empty() && data.len() >= max) {
            self.queue_write(&file, &mut io, me, offset, data.to_vec()).await;
            return Ok(data.len() as u32);
        }
        let was_empty = io.buf.is_empty();
        io.buf.push(me, offset, data);
        file.io.set_dirty(true);
        if io.buf.len() >= max {
            if let Some((writer, at, buffered)) = io.buf.take() {
                self.queue_write(&file, &mut io, writer, at, buffered).await;
            }
        } else if was_empty {
            self.schedule_flush(file.clone(), io.buf.generation());
        }
        Ok(data.len() as u32)
    }

    /// Sends data still buffered `write_delay` after it started filling.
    fn schedule_flush(&self, file: Arc<OpenFile>, generation: u64) {
        let delay = self.opts.write_delay;
        let me = self.me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(vfs) = me.upgrade() else { return };
            let mut io = file.io.state.lock().await;
            if io.buf.generation() == generation {
                vfs.send_all(&file, &mut io).await;
            }
        });
    }

    /// Reads up to `size` bytes at `offset`; fewer only at end of file.
    /// Reads up to `size` bytes. A read that one readahead chunk covers is
    /// a view of that chunk, not a copy.
    pub async fn read(&self, fh: Fh, offset: u64, size: u32) -> Result<Bytes> {
        let file = self.file("read", fh)?;
        if self.is_dirty(file.ino) {
            self.flush_inode(file.ino).await;
        }
        if size == 0 {
            return Ok(Bytes::new());
        }
        // Attributes refreshed since (the remote file grew or changed)
        // retire what was read ahead.
        let seen = self.inodes().get(file.ino).and_then(|n| n.attr);
        if let Some(attr) = seen {
            lock(&file.readahead).follow(attr.size, attr.mtime);
        }
        let head = lock(&file.readahead).read_head(offset, size);
        if let Some(data) = head {
            return Ok(data);
        }
        let chunk = self.opts.readahead_chunk.max(4096) as u64;
        let max_chunks = (self.opts.readahead_max as u64 / chunk).max(1);
        let plan = if self.opts.readahead_max == 0 {
            Plan::Direct
        } else {
            let remote = self.remote.clone();
            let handle = file.remote;
            lock(&file.readahead).plan(offset, size, chunk, max_chunks, |start, len| {
                let (tx, rx) = watch::channel(None);
                let remote = remote.clone();
                let task = tokio::spawn(async move {
                    let result = remote
                        .read(handle, start, len)
                        .await
                        .map(Bytes::from)
                        .map_err(|e| e.errno());
                    let _ = tx.send(Some(result));
                });
                (rx, task)
            })
        };
        let chunks = match plan {
            Plan::Direct => {
                return self
                    .remote
                    .read(file.remote, offset, size)
                    .await
                    .map(Bytes::from)
                    .map_err(|e| VfsError::remote("read", self.describe(file.ino).as_bytes(), e));
            }
            Plan::Chunks(chunks) => chunks,
        };
        let end = offset + size as u64;
        let mut out = Vec::with_capacity(size as usize);
        for c in chunks {
            let pos = offset + out.len() as u64;
            if c.start > pos {
                break;
            }
            let data = match c.data().await {
                Ok(data) => data,
                Err(errno) => {
                    lock(&file.readahead).forget_chunk(c.start);
                    return Err(VfsError::new("read", self.describe(file.ino), errno));
                }
            };
            let rel = (pos - c.start) as usize;
            if rel >= data.len() {
                break;
            }
            let take = (data.len() - rel).min((end - pos) as usize);
            let short = data.len() < chunk as usize;
            if out.is_empty() && (take == size as usize || short) {
                return Ok(data.slice(rel..rel + take));
            }
            out.extend_from_slice(&data[rel..rel + take]);
            if short || out.len() == size as usize {
                break;
            }
        }
        Ok(Bytes::from(out))
    }

    /// Called on each close of a descriptor: sends buffered data and
    /// reports any write error not reported yet.
    pub async fn flush(&self, fh: Fh) -> Result<()> {
        let file = self.file("flush", fh)?;
        let mut io = file.io.state.lock().await;
        self.send_buffer(&file, &mut io).await
    }

    /// `fallocate(2)`: pending writes land first, so a hole punched or a
    /// range zeroed is not overwritten by older data afterwards.
    pub async fn fallocate(&self, fh: Fh, offset: u64, len: u64, mode: u32) -> Result<()> {
        let file = self.file("fallocate", fh)?;
        self.check_writable("fallocate", file.ino)?;
        {
            let mut io = file.io.state.lock().await;
            self.send_buffer(&file, &mut io).await?;
        }
        self.drop_readahead(file.ino);
        self.remote
            .fallocate(file.remote, offset, len, mode)
            .await
            .map_err(|e| VfsError::remote("fallocate", self.describe(file.ino).as_bytes(), e))?;
        self.inodes().invalidate_attr(file.ino);
        Ok(())
    }

    /// `lseek(2)` with `SEEK_DATA`/`SEEK_HOLE`, answered by the remote.
    /// Writes still buffered here (through any handle of the inode) are
    /// holes to the remote, so they are sent first. A failure to send them
    /// stays with its handle, as for a read.
    pub async fn lseek(&self, fh: Fh, offset: u64, whence: yonder_proto::SeekWhence) -> Result<u64> {
        let file = self.file("lseek", fh)?;
        if self.is_dirty(file.ino) {
            self.flush_inode(file.ino).await;
        }
        self.remote
            .lseek(file.remote, offset, whence)
            .await
            .map_err(|e| VfsError::remote("lseek", self.describe(file.ino).as_bytes(), e))
    }

    pub async fn fsync(&self, fh: Fh, datasync: bool) -> Result<()> {
        let file = self.file("fsync", fh)?;
        let mut io = file.io.state.lock().await;
        // fsync covers the file's data written through every descriptor.
        self.send_buffer(&file, &mut io).await?;
        self.remote
            .fsync(file.remote, datasync)
            .await
            .map_err(|e| VfsError::remote("fsync", self.describe(file.ino).as_bytes(), e))
    }

    /// Closes a handle. Buffered data is sent first; its error, if any,
    /// can only be logged here (frontends flush before releasing).
    pub async fn release(&self, fh: Fh) -> Result<()> {
        let Some(file) = self.handles().remove_file(fh) else {
            return Err(VfsError::new("release", format!("<handle {fh}>"), Errno::EBADF));
        };
        {
            let mut io = file.io.state.lock().await;
            if let Err(err) = self.send_buffer(&file, &mut io).await {
                tracing::warn!("write error lost at release: {err}");
            }
        }
        lock(&file.readahead).clear();
        self.inodes().open_dec(file.ino);
        // Nobody waits for the remote close: the data went out above (and
        // the agent writes synchronously, so its errors were reported at
        // write, flush or fsync). Not waiting saves a round trip per file
        // for `cat`, `cp` and untar.
        let remote = self.remote.clone();
        let (handle, path) = (file.remote, self.describe(file.ino));
        tokio::spawn(async move {
            if let Err(e) = remote.close(handle).await {
                tracing::debug!("close {path}: {e}");
            }
        });
        Ok(())
    }

    /// Sends every handle's buffered writes (before unmounting). Returns the
    /// first error; all errors also stay with their handles.
    pub async fn flush_all(&self) -> Result<()> {
        let files = self.handles().all_files();
        let mut first = None;
        for file in files {
            let mut io = file.io.state.lock().await;
            self.send_all(&file, &mut io).await;
            if let Some(e) = io.errors.get(&file.fh) {
                first.get_or_insert(e.clone());
            }
        }
        first.map_or(Ok(()), Err)
    }

    // ----- directories -----

    /// Opens a directory. No remote call (the listing is fetched by the
    /// first `readdir`), so it is synchronous and frontends answer inline.
    pub fn opendir(&self, _caller: &Caller, ino: Ino) -> Result<Fh> {
        let kind = self.inodes().get(ino).map(|n| n.kind);
        match kind {
            None => return Err(VfsError::new("opendir", format!("<inode {ino}>"), Errno::ESTALE)),
            Some(FileKind::Directory) => {}
            Some(_) => return Err(VfsError::new("opendir", self.describe(ino), Errno::ENOTDIR)),
        }
        let fh = self.handles().insert_dir(OpenDir {
            ino,
            stream: tokio::sync::Mutex::new(DirStream::default()),
        });
        self.inodes().open_inc(ino);
        Ok(fh)
    }

    /// Entries of an open directory from `offset` (0, or an entry's
    /// `offset`). An empty result means the end. Offset 0 starts over with a
    /// fresh listing. No lookups are counted; see [`Vfs::remember`].
    pub async fn readdir(&self, fh: Fh, offset: u64) -> Result<Vec<DirItem>> {
        let dir = self
            .handles()
            .dir(fh)
            .ok_or_else(|| VfsError::new("readdir", "", Errno::EBADF))?;
        let mut st = dir.stream.lock().await;
        let offset = offset as usize;
        self.start_listing(&dir, &mut st, offset);
        while !st.done && st.items.len() < offset + READDIR_BATCH {
            let path = self.path("readdir", dir.ino)?;
            let page = self
                .remote
                .read_dir_page(&path, st.cursor, self.opts.readdir_page)
                .await
                .map_err(|e| VfsError::remote("readdir", &path, e))?;
            let now = Instant::now();
            let mut table = self.inodes();
            for mut item in table.enter_entries(dir.ino, page.entries, now) {
                item.offset = st.items.len() as u64 + 1;
                st.items.push(item);
            }
            st.cursor = page.next;
            if page.next.is_none() {
                st.done = true;
                let present: HashSet<Vec<u8>> = st.items[2..].iter().map(|i| i.name.clone()).collect();
                table.listing_complete(dir.ino, &present, now);
                drop(table);
                self.prefetch_around(dir.ino);
            }
        }
        Ok(batch(&st, offset))
    }

    /// [`Vfs::readdir`] when it can answer without waiting: the entries are
    /// already fetched (or were fetched ahead) and nobody else holds the
    /// stream. Frontends answer such calls inline.
    pub fn readdir_ready(&self, fh: Fh, offset: u64) -> Option<Vec<DirItem>> {
        let dir = self.handles().dir(fh)?;
        let mut st = dir.stream.try_lock().ok()?;
        let offset = offset as usize;
        self.start_listing(&dir, &mut st, offset);
        (st.done || st.items.len() >= offset + READDIR_BATCH).then(|| batch(&st, offset))
    }

    /// Starts (or, from offset 0, restarts) a stream: `.` and `..`, then a
    /// listing fetched ahead if there is a fresh one.
    fn start_listing(&self, dir: &OpenDir, st: &mut DirStream, offset: usize) {
        if offset == 0 && st.started {
            st.reset();
        }
        if st.started {
            return;
        }
        st.started = true;
        let parent = self.first_link(dir.ino).map_or(ROOT_INO, |(p, _)| p);
        for (name, ino) in [(&b"."[..], dir.ino), (&b".."[..], parent)] {
            let offset = st.items.len() as u64 + 1;
            st.items.push(DirItem {
                name: name.to_vec(),
                ino,
                kind: FileKind::Directory,
                offset,
                attr: None,
                remote: None,
            });
        }
        let fetched = self.inodes().take_listing(dir.ino, Instant::now());
        if let Some(items) = fetched {
            for mut item in items {
                item.offset = st.items.len() as u64 + 1;
                st.items.push(item);
            }
            st.done = true;
            self.prefetch_around(dir.ino);
        }
    }

    /// A walker that lists a directory whose parent it listed just before
    /// (`find`, `ls -R`, `du`, `rm -rf`, `git status`) will list its
    /// subdirectories and its siblings next. Fetching those listings now,
    /// several at once, turns one round trip per directory into a few for
    /// the whole walk. A one-off `ls` (parent not listed) fetches nothing.
    fn prefetch_around(&self, dir: Ino) {
        let Some(vfs) = self.me.upgrade() else { return };
        let now = Instant::now();
        let candidates = {
            let table = self.inodes();
            let Some(parent) = table.get(dir).and_then(|n| n.links.first()).map(|(p, _)| *p) else {
                return;
            };
            if !table.listing_fresh(parent, now) {
                return;
            }
            let mut dirs = table.unlisted_subdirs(dir, now);
            dirs.extend(
                table
                    .unlisted_subdirs(parent, now)
                    .into_iter()
                    .filter(|d| *d != dir),
            );
            dirs
        };
        let mut started = 0;
        for ino in candidates {
            if started == PREFETCH_MAX {
                break;
            }
            if !lock(&self.prefetching).insert(ino) {
                continue;
            }
            started += 1;
            let vfs = vfs.clone();
            self.runtime.spawn(async move {
                vfs.prefetch_listing(ino).await;
                lock(&vfs.prefetching).remove(&ino);
            });
        }
    }

    async fn prefetch_listing(&self, ino: Ino) {
        let Ok(_slot) = self.prefetch_slots.clone().acquire_owned().await else {
            return;
        };
        if self.inodes().listing_fresh(ino, Instant::now()) {
            return;
        }
        self.fetch_listing(ino).await;
    }

    /// When the names of a directory listed before have expired, the first
    /// lookup in it lists it again: one round trip refreshes every entry,
    /// where a reader going through its files (`cat *`, `git status`, a
    /// build) would otherwise pay one per file. Returns whether the listing
    /// was refreshed.
    async fn relist(&self, dir: Ino) -> bool {
        let worthwhile =
            self.inodes()
                .relist_worthwhile(dir, self.opts.readdir_page as usize, Instant::now());
        // Lookups arriving meanwhile ask for their own name.
        if !worthwhile || !lock(&self.prefetching).insert(dir) {
            return false;
        }
        self.fetch_listing(dir).await;
        lock(&self.prefetching).remove(&dir);
        self.inodes().listing_fresh(dir, Instant::now())
    }

    /// Lists `dir` and keeps the listing, if it fits one page (a huge
    /// directory is paged by its reader as usual) and the directory did not
    /// change meanwhile.
    async fn fetch_listing(&self, dir: Ino) {
        let (path, version) = {
            let table = self.inodes();
            match (table.path(dir), table.dir_version(dir)) {
                (Some(path), Some(version)) => (path, version),
                _ => return,
            }
        };
        match self
            .remote
            .read_dir_page(&path, None, self.opts.readdir_page)
            .await
        {
            Ok(page) if page.next.is_none() => {
                self.inodes()
                    .store_listing(dir, version, page.entries, Instant::now());
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(path = %String::from_utf8_lossy(&path), %e, "listing failed"),
        }
    }

    /// Counts a lookup for an entry handed out with its attributes (as by
    /// readdirplus) and returns current attributes for it. `None` for `.`
    /// and `..`, which frontends pass without counting.
    pub async fn remember(&self, parent: Ino, item: &DirItem) -> Option<FileAttr> {
        if !self.is_dirty(item.ino) {
            return self.remember_clean(parent, item);
        }
        // The listing's size lags behind buffered writes: send them, then
        // ask again.
        let remote = item.remote.as_ref()?;
        let listed = self.inodes().upsert(parent, &item.name, remote, Instant::now());
        self.flush_inode(listed.ino).await;
        let fattr = self.getattr(listed.ino, None).await.unwrap_or(listed);
        self.inodes().inc_lookup(fattr.ino, 1);
        Some(fattr)
    }

    /// [`Vfs::remember`] for entries with no buffered writes (see
    /// [`Vfs::any_dirty`]), which needs no waiting.
    pub fn remember_clean(&self, parent: Ino, item: &DirItem) -> Option<FileAttr> {
        let remote = item.remote.as_ref()?;
        let mut table = self.inodes();
        let fattr = table.upsert(parent, &item.name, remote, Instant::now());
        table.inc_lookup(fattr.ino, 1);
        Some(fattr)
    }

    /// Whether any of `items` has writes not yet sent, whose attributes
    /// (size, mtime) the listing does not reflect.
    pub fn any_dirty(&self, items: &[DirItem]) -> bool {
        items.iter().any(|i| i.remote.is_some() && self.is_dirty(i.ino))
    }

    pub fn releasedir(&self, fh: Fh) -> Result<()> {
        let dir = self
            .handles()
            .remove_dir(fh)
            .ok_or_else(|| VfsError::new("releasedir", "", Errno::EBADF))?;
        self.inodes().open_dec(dir.ino);
        Ok(())
    }

    // ----- the rest -----

    pub async fn statfs(&self, ino: Ino) -> Result<StatFs> {
        let path = self.inodes().path(ino).unwrap_or_default();
        self.remote
            .statfs(&path)
            .await
            .map_err(|e| VfsError::remote("statfs", &path, e))
    }

    /// Whether a fresh cached name list says `ino` has no attribute `name`:
    /// answerable without waiting, so frontends may call it inline.
    pub fn xattr_known_absent(&self, ino: Ino, name: &[u8]) -> bool {
        self.inodes()
            .cached_xattr_names(ino, Instant::now())
            .is_some_and(|names| !names.iter().any(|n| n == name))
    }

    pub async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        let path = self.path("getxattr", ino)?;
        // Tools ask files for attributes they rarely have (`ls -l` for ACLs,
        // the kernel for `security.capability` before every write). One
        // listing per attribute TTL answers all of those "none"s locally.
        let listed = self.inodes().cached_xattr_names(ino, Instant::now()).is_some()
            || self.listxattr(ino).await.is_ok();
        if listed && self.xattr_known_absent(ino, name) {
            return Err(VfsError::new(
                "getxattr",
                String::from_utf8_lossy(&path),
                Errno::ENODATA,
            ));
        }
        self.remote
            .getxattr(&path, name)
            .await
            .map_err(|e| VfsError::remote("getxattr", &path, e))
    }

    pub async fn setxattr(&self, ino: Ino, name: &[u8], value: &[u8], mode: XattrMode) -> Result<()> {
        self.check_writable("setxattr", ino)?;
        let path = self.path("setxattr", ino)?;
        self.remote
            .setxattr(&path, name, value, mode)
            .await
            .map_err(|e| VfsError::remote("setxattr", &path, e))?;
        let mut table = self.inodes();
        table.invalidate_attr(ino);
        table.invalidate_xattrs(ino);
        Ok(())
    }

    pub async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        let path = self.path("listxattr", ino)?;
        if let Some(names) = self.inodes().cached_xattr_names(ino, Instant::now()) {
            return Ok(names.to_vec());
        }
        let names = self
            .remote
            .listxattr(&path)
            .await
            .map_err(|e| VfsError::remote("listxattr", &path, e))?;
        self.inodes().set_xattr_names(ino, names.clone(), Instant::now());
        Ok(names)
    }

    pub async fn removexattr(&self, ino: Ino, name: &[u8]) -> Result<()> {
        self.check_writable("removexattr", ino)?;
        let path = self.path("removexattr", ino)?;
        self.remote
            .removexattr(&path, name)
            .await
            .map_err(|e| VfsError::remote("removexattr", &path, e))?;
        let mut table = self.inodes();
        table.invalidate_attr(ino);
        table.invalidate_xattrs(ino);
        Ok(())
    }

    /// Checks access with the remote's credentials; `mask` is
    /// [`yonder_proto::access_mask`] bits.
    pub async fn access(&self, _caller: &Caller, ino: Ino, mask: u32) -> Result<()> {
        if self.opts.read_only && mask & yonder_proto::access_mask::WRITE != 0 {
            return Err(VfsError::new("access", self.describe(ino), Errno::EROFS));
        }
        let path = self.path("access", ino)?;
        self.remote
            .access(&path, mask)
            .await
            .map_err(|e| VfsError::remote("access", &path, e))
    }

    // ----- invalidation (remote change notifications) -----

    /// Something changed at remote `path`: forget what is cached about it
    /// and about the names in its directory. Returns the inode of `path`
    /// if known, so a frontend can invalidate its own caches too.
    pub fn invalidate_path(&self, path: &[u8]) -> Option<Ino> {
        let parent_path = match path.iter().rposition(|b| *b == b'/') {
            Some(i) => &path[..i],
            None => &b""[..],
        };
        let (ino, parent) = {
            let table = self.inodes();
            (table.resolve(path), table.resolve(parent_path))
        };
        if let Some(parent) = parent {
            self.inodes().invalidate_dir(parent);
        }
        if let Some(ino) = ino {
            self.invalidate_inode(ino);
        }
        ino
    }

    /// Forgets cached attributes, listing and readahead data of `ino`.
    pub fn invalidate_inode(&self, ino: Ino) {
        {
            let mut table = self.inodes();
            table.invalidate_attr(ino);
            table.invalidate_xattrs(ino);
            if table.get(ino).is_some_and(|n| n.kind == FileKind::Directory) {
                table.invalidate_dir(ino);
            }
        }
        self.drop_readahead(ino);
    }
}

/// Bytes of a file fetched with a read-only open (the kernel's first read
/// of a file is usually this size or smaller).
const OPEN_PREFETCH: u32 = 128 * 1024;

/// Longest file name the negative cache answers for; longer ones go to the
/// remote for its own error.
const NAME_MAX: usize = 255;

/// Writes all of `data` at `offset`, in as many requests as the remote
/// accepts; runs as its own task so the caller need not wait. Each request
/// carries a slice of `data`, not a copy.
async fn write_all(
    remote: Arc<dyn Remote>,
    handle: yonder_proto::Handle,
    path: String,
    mut offset: u64,
    data: Bytes,
) -> Result<()> {
    let mut rest = data;
    while !rest.is_empty() {
        let chunk = rest.len().min(yonder_proto::MAX_IO_SIZE as usize);
        let sent = remote
            .write(handle, offset, rest.slice(..chunk))
            .await
            .map_err(|e| {
                let err = VfsError::remote("write", path.as_bytes(), e);
                tracing::warn!("{err}");
                err
            })? as usize;
        if sent == 0 {
            return Err(VfsError::new("write", path, Errno::EIO));
        }
        rest = rest.slice(sent.min(rest.len())..);
        offset += sent as u64;
    }
    Ok(())
}

fn first_link_in(table: &InodeTable, ino: Ino) -> Option<(Ino, Vec<u8>)> {
    table.get(ino).and_then(|n| n.links.first().cloned())
}

/// Entries handed out per readdir call at most.
const READDIR_BATCH: usize = 256;

fn batch(st: &DirStream, offset: usize) -> Vec<DirItem> {
    let end = st.items.len().min(offset + READDIR_BATCH);
    st.items
        .get(offset..end)
        .map(<[DirItem]>::to_vec)
        .unwrap_or_default()
}

/// Locks `mutex`. A panic while holding one of the VFS's locks leaves
/// consistent-enough data: every critical section is a handful of map
/// operations.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
