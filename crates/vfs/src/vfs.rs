//! The VFS proper: an API shaped like the operating system's file API,
//! addressed by inode and handle numbers, implemented on a path-based
//! [`Remote`].

use crate::attr::{Caller, Fh, FhSource, FileAttr, FileKind, Ino, RemoteId, ROOT_INO};
use crate::cache_policy::{CachePolicy, Change};
use crate::calls::RemoteCalls;
use crate::connection::{ConnectionState, Generation};
use crate::error::{display_path, Result, VfsError};
use crate::events::{Events, VfsEvent};
use crate::journal::MetaOp;
use crate::journal::{Entry, Journal, Seq};
use crate::listings::DirListings;
use crate::meta_order::MetaOrder;
use crate::namespace::Namespace;
use crate::namespace::{DirItem, InodeTable};
use crate::open_files::{OpenFiles, OPEN_PREFETCH};
use crate::options::VfsOptions;
use crate::readahead::Readahead;
use crate::reading::Reading;
use crate::remote_changes::RemoteChanges;
use crate::stale_open::{RetryFor, StaleOpenRetry};
use crate::write_back::meta::{changed_attr, entries_attr, written_attr, MetaParts, MetaWriteBack};
use crate::write_back::recovery::{replay_left, Recovered};
use crate::write_back::{WriteBack, WriteBackParts};
use bytes::Bytes;
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::Instant;
use tokio::sync::{broadcast, watch};
use yonder_proto::open_flags::writes;
use yonder_proto::{
    file_type, open_flags as of, Attr, Errno, RenameFlags, SetAttr, StatFs, Target, XattrMode,
};
use yonder_remote::{ChangeFeed, LinkState, LinkStatus, Remote, RemoteError};

/// Counters describing the VFS's tables, for diagnostics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfsStats {
    pub inodes: usize,
    pub open_files: usize,
}

/// The VFS: it orchestrates its parts, each of which owns its state and
/// its lock (listed from the bottom up; a part knows only those above it
/// in this list):
pub struct Vfs {
    opts: VfsOptions,
    /// The inode table: numbers, names, paths, cached attributes.
    ns: Arc<Namespace>,
    /// The remote, through a connection that can be replaced: waiting,
    /// deadlines, retries.
    calls: Arc<RemoteCalls>,
    /// Open files, and reopening them on a new connection.
    files: Arc<OpenFiles>,
    /// Serving reads, with readahead.
    reading: Reading,
    /// Buffered and in-flight writes, the journal and its replay.
    writes: Arc<WriteBack>,
    /// Metadata operations acknowledged ahead of the remote.
    meta: Arc<MetaWriteBack>,
    /// Open directories and listings fetched ahead.
    listings: DirListings,
    /// Names whose open came back stale, and files opened ahead for them.
    stale_opens: Arc<StaleOpenRetry>,
    /// Changes the remote pushes, and whether it does.
    changes: RemoteChanges,
    events: Events,
    /// Where tasks following a link run: some calls come from frontend
    /// threads outside the runtime.
    runtime: tokio::runtime::Handle,
    /// The remote answered an xattr call ENOSYS (SFTP has none): every
    /// later one is answered so here, as the kernel does after passing on
    /// the first, so that a creation's check for default ACLs costs no
    /// round trip.
    no_xattrs: AtomicBool,
}

impl Vfs {
    /// Builds a VFS over `remote`, checking that its root is a directory.
    /// Writes acknowledged and not yet confirmed by the agent are kept in
    /// `journal` (a [`MemoryJournal`](crate::MemoryJournal), or a durable
    /// one) until the agent confirms them.
    pub async fn new(
        remote: Arc<dyn Remote>,
        opts: VfsOptions,
        journal: Arc<dyn Journal>,
    ) -> Result<Arc<Vfs>> {
        let root = remote
            .lstat(b"")
            .await
            .map_err(|e| VfsError::remote("lstat", b"", e))?;
        if !root.is_dir() {
            return Err(VfsError::new("mount", ".", Errno::ENOTDIR));
        }
        // New files start without extended attributes unless the remote
        // labels them (security.*) or a default ACL hands one down; the
        // root tells which kind of tree this is.
        let new_nodes_bare = match remote.listxattr(b"").await {
            Ok(names) => !names
                .iter()
                .any(|n| n.starts_with(b"security.") || n == b"system.posix_acl_default"),
            Err(_) => false,
        };
        let runtime = tokio::runtime::Handle::current();
        let events = Events::new();
        let calls = Arc::new(RemoteCalls::new(
            remote,
            opts.op_timeout,
            Arc::new(MetaOrder::default()),
        ));
        let ns = Arc::new(Namespace::new(&root, CachePolicy::new(&opts), new_nodes_bare));
        let numbers = Arc::new(FhSource::default());
        let listings = DirListings::new(
            numbers.clone(),
            ns.clone(),
            calls.clone(),
            runtime.clone(),
            opts.readdir_page,
        );
        let files = Arc::new(OpenFiles::new(
            numbers,
            ns.clone(),
            calls.clone(),
            events.clone(),
            runtime.clone(),
        ));
        let meta = MetaWriteBack::new(
            MetaParts {
                journal: journal.clone(),
                calls: calls.clone(),
                ns: ns.clone(),
                files: files.clone(),
                events: events.clone(),
                runtime: runtime.clone(),
            },
            opts.write_delay,
        );
        let writes = WriteBack::new(
            WriteBackParts {
                journal,
                files: files.clone(),
                ns: ns.clone(),
                calls: calls.clone(),
                events: events.clone(),
                runtime: runtime.clone(),
            },
            &opts,
        );
        let reading = Reading::new(files.clone(), ns.clone(), &opts);
        let stale_opens = StaleOpenRetry::new(ns.clone(), calls.clone(), files.clone(), runtime.clone());
        let changes = RemoteChanges::new(ns.clone(), calls.clone(), events.clone());
        Ok(Arc::new(Vfs {
            changes,
            calls,
            ns,
            files,
            listings,
            stale_opens,
            runtime,
            writes,
            meta,
            reading,
            events,
            opts,
            no_xattrs: AtomicBool::new(false),
        }))
    }

    pub fn options(&self) -> &VfsOptions {
        &self.opts
    }

    /// The remote the next request goes to.
    pub fn remote(&self) -> Arc<dyn Remote> {
        self.calls.current().0
    }

    /// Puts `remote` in place of the current connection (a reconnecting
    /// layer does, once it has a new one; see [`Vfs::follow`]). First the
    /// writes the old connection had not confirmed are replayed on it, in
    /// order; meanwhile calls wait. Open files carry on: each is reopened
    /// on the new connection as it is next used. What was read ahead or
    /// opened ahead on the old one is dropped, and every cached attribute,
    /// name and listing expires: what changed on the remote meanwhile is
    /// unknown (frontends drop their own caches on
    /// [`VfsEvent::Reconnected`]).
    pub fn replace_remote(&self, remote: Arc<dyn Remote>) -> Generation {
        let generation = self.calls.install(remote.clone());
        self.stale_opens.clear();
        self.inodes().expire_all();
        self.writes.start_replay(remote, generation);
        generation
    }

    /// Reconnections, open files lost with a connection, writes that could
    /// not be replayed: for a manager's event stream.
    pub fn events(&self) -> broadcast::Receiver<VfsEvent> {
        self.events.subscribe()
    }

    /// Every inode the VFS knows, and every (directory, name) it has
    /// cached: for a frontend that drops the kernel's caches after a new
    /// connection.
    pub fn known_inodes(&self) -> Vec<Ino> {
        self.inodes().known_inodes()
    }

    pub fn known_names(&self) -> Vec<(Ino, Vec<u8>)> {
        self.inodes().known_names()
    }

    pub fn stats(&self) -> VfsStats {
        VfsStats {
            inodes: self.inodes().len_nodes(),
            open_files: self.files.count(),
        }
    }

    fn inodes(&self) -> MutexGuard<'_, InodeTable> {
        self.ns.table()
    }

    fn check_writable(&self, op: &'static str, ino: Ino) -> Result<()> {
        if self.opts.read_only {
            return Err(VfsError::new(op, self.describe(ino), Errno::EROFS));
        }
        Ok(())
    }

    fn describe(&self, ino: Ino) -> String {
        self.ns.describe(ino)
    }

    fn path(&self, op: &'static str, ino: Ino) -> Result<Vec<u8>> {
        self.ns.path(op, ino)
    }

    fn child_path(&self, op: &'static str, parent: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.ns.child_path(op, parent, name)
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

    /// Runs `request` (one frontend request) under its deadline: every wait
    /// for a connection inside it ends `op_timeout` after it started.
    /// Frontends wrap each kernel request in it; a call made outside one
    /// gets a deadline of its own from each wait.
    pub fn operation<F: Future>(&self, request: F) -> impl Future<Output = F::Output> {
        self.calls.operation(request)
    }

    /// Follows a [`yonder_remote::Link`]'s status (its watch): each new
    /// connection is put in place ([`Vfs::replace_remote`], through `map`,
    /// e.g. to scope it to this mount's tree), a lost one makes calls wait,
    /// and a link that stopped reconnecting makes them fail at once.
    /// `generation` is the link generation of the remote the VFS was built
    /// on. Ends when the VFS or the link is dropped.
    pub fn follow(
        self: &Arc<Self>,
        mut link: watch::Receiver<LinkStatus>,
        mut generation: u64,
        map: impl Fn(Arc<dyn Remote>) -> Arc<dyn Remote> + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let vfs = Arc::downgrade(self);
        self.runtime.spawn(async move {
            loop {
                let status = link.borrow_and_update().clone();
                let Some(me) = vfs.upgrade() else { return };
                if status.generation != generation {
                    generation = status.generation;
                    me.replace_remote(map(status.remote.clone()));
                }
                match &status.state {
                    LinkState::Connected => {}
                    LinkState::Reconnecting { .. } => {
                        let at = status
                            .lost_at
                            .map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std);
                        me.connection_lost_since(at);
                    }
                    LinkState::Disconnected { reason } => me.connection_gone(reason),
                }
                drop(me);
                if link.changed().await.is_err() {
                    if let Some(me) = vfs.upgrade() {
                        me.connection_gone("the link was dropped");
                    }
                    return;
                }
            }
        })
    }

    /// Applies what the remote pushes of its changes (a
    /// [`yonder_remote::Link::changes`] feed, scoped to this mount's tree)
    /// to the caches, its own and (see [`Vfs::set_frontend_caches`]) the
    /// frontend's; while changes are pushed, the TTLs are those of the
    /// options, otherwise at most [`VfsOptions::unwatched_ttl`]. Without
    /// a feed followed, the TTLs are those of the options. Ends when the
    /// VFS or the link is dropped.
    pub fn follow_changes(self: &Arc<Self>, mut feed: ChangeFeed) -> tokio::task::JoinHandle<()> {
        let vfs = Arc::downgrade(self);
        self.runtime.spawn(async move {
            while let Some(change) = feed.recv().await {
                let Some(me) = vfs.upgrade() else { return };
                me.changes.apply(change).await;
            }
        })
    }

    /// Where the VFS tells the frontend serving it which of the frontend's
    /// own caches a change on the remote made stale.
    pub fn set_frontend_caches(&self, caches: Arc<dyn crate::frontend_caches::FrontendCaches>) {
        self.changes.set_frontend(caches);
    }

    /// Whether the remote pushes its changes now: a frontend may then keep
    /// cached listings and data until it is told to drop them.
    pub fn changes_pushed(&self) -> bool {
        self.changes.pushed()
    }

    /// How long attributes and names are trusted now: the options' TTLs,
    /// shortened while changes are not pushed. For a frontend's replies.
    pub fn ttls(&self) -> (std::time::Duration, std::time::Duration) {
        (self.ns.policy().attr_ttl(), self.ns.policy().dir_ttl())
    }

    /// Whether the kernel may keep the pages it cached of `ino` at an open
    /// that answered `attr`: changes are pushed, and the file is unchanged
    /// since it was last opened. Records the open.
    pub fn keep_cache(&self, ino: Ino, attr: &FileAttr) -> bool {
        let unchanged = self.inodes().data_unchanged_since_opened(ino, attr);
        unchanged && self.changes.pushed() && !self.writes.is_dirty(ino)
    }

    /// The connection was lost and a new one is expected: calls wait for
    /// it (up to the op timeout) instead of failing.
    pub fn connection_lost(&self) {
        self.calls.lost(tokio::time::Instant::now());
    }

    /// [`Vfs::connection_lost`], the outage having begun at `at` (the
    /// remote's last sign of life): operations wait at most the op timeout
    /// after it.
    pub fn connection_lost_since(&self, at: tokio::time::Instant) {
        self.calls.lost(at);
    }

    /// The connection was lost and none is coming: calls fail at once with
    /// EIO, and writes the agent had not confirmed are reported failed to
    /// the handles that wrote them. A later [`Vfs::replace_remote`] brings
    /// the mount back.
    pub fn connection_gone(&self, reason: &str) {
        self.calls.gone(reason);
        self.writes.connection_gone(reason);
    }

    /// Where the connection stands, as it changes.
    pub fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.calls.state()
    }

    // ----- names -----

    /// Looks `name` up in directory `parent`; counts one lookup on success,
    /// to be released with [`Vfs::forget`].
    pub async fn lookup(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Result<FileAttr> {
        if let Some(answer) = self.lookup_ready(caller, parent, name) {
            return answer;
        }
        if self.stale_opens.is_stale(caller.pid, Instant::now()) {
            if let Some(fattr) = self
                .stale_opens
                .lookup_by_opening(caller, parent, name, |ino| self.writes.is_dirty(ino))
                .await
            {
                return Ok(fattr);
            }
        }
        if self.listings.relist(parent).await {
            if let Some(answer) = self.lookup_ready(caller, parent, name) {
                return answer;
            }
        }
        let path = self.child_path("lookup", parent, name)?;
        let p = &path[..];
        let attr = match self
            .calls
            .call("lookup", p, |r| async move { r.lstat(p).await })
            .await
        {
            Ok(attr) => attr,
            Err(e) => {
                if e.errno() == Errno::ENOENT {
                    self.inodes().unlink(parent, name);
                }
                return Err(e);
            }
        };
        let mut fattr = self.inodes().upsert(parent, name, &attr, Instant::now());
        if self.writes.is_dirty(fattr.ino) {
            // The remote's size lags behind buffered writes.
            self.writes.flush_inode(fattr.ino).await;
            fattr = self.getattr(fattr.ino, None).await?;
        }
        self.inodes().inc_lookup(fattr.ino, 1);
        Ok(fattr)
    }

    /// [`Vfs::lookup`] when the caches answer it (a fresh entry, or a name
    /// known absent); `None` when the remote must be asked. Frontends call
    /// it inline.
    pub fn lookup_ready(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Option<Result<FileAttr>> {
        let now = Instant::now();
        match self.stale_opens.for_lookup(caller.pid, parent, name, now) {
            RetryFor::OpenedAhead(ino, attr) => {
                let mut table = self.inodes();
                table.get(ino)?;
                table.inc_lookup(ino, 1);
                return Some(Ok(FileAttr::from_remote(ino, &attr)));
            }
            // A directory on the way to the file being retried is looked
            // up as usual.
            RetryFor::Stale if !self.inodes().names_a_directory(parent, name) => return None,
            RetryFor::Stale | RetryFor::Nothing => {}
        }
        let mut table = self.inodes();
        if let Some(attr) = table.cached_lookup(parent, name, now) {
            // Buffered writes make the cached size stale.
            if self.writes.is_dirty(attr.ino) {
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
        (!self.writes.is_dirty(ino)).then_some(attr)
    }

    /// [`Vfs::lookup`] without counting a lookup, for a frontend that
    /// never forgets (see [`Exporter`](crate::Exporter)).
    pub async fn lookup_uncounted(&self, caller: &Caller, parent: Ino, name: &[u8]) -> Result<FileAttr> {
        let attr = self.lookup(caller, parent, name).await?;
        self.inodes().uncount(attr.ino, 1);
        Ok(attr)
    }

    /// Keeps `ino` for as long as its file exists, whatever lookups are
    /// counted: a stateless frontend handed it out. `false` if unknown.
    pub fn keep_exported(&self, ino: Ino) -> bool {
        self.inodes().export(ino)
    }

    /// The directory `ino` is named in (the first of its names, for a file
    /// with several), for a frontend asked for `..` by handle; the root is
    /// its own parent. `None` for a node with no name here.
    pub fn parent(&self, ino: Ino) -> Option<Ino> {
        if ino == ROOT_INO {
            return Some(ROOT_INO);
        }
        self.ns.first_link(ino).map(|(parent, _)| parent)
    }

    /// The remote path `ino` is known by (the first of its names), for a
    /// frontend that names files by path (FileProvider's item
    /// identifiers): what a cache drop's inode stands for. `None` for a
    /// node with no name here; the root's is empty.
    pub fn path_of(&self, ino: Ino) -> Option<Vec<u8>> {
        self.inodes().path(ino)
    }

    /// Whether `ino` is a file that still exists here: the root, or an
    /// inode with a name or an open handle.
    pub fn is_reachable(&self, ino: Ino) -> bool {
        let table = self.inodes();
        table
            .get(ino)
            .is_some_and(|node| ino == ROOT_INO || !node.links.is_empty() || node.open > 0)
    }

    /// Releases `n` lookups of `ino`.
    pub fn forget(&self, ino: Ino, n: u64) {
        self.inodes().forget(ino, n);
    }

    /// Takes back the lookup [`Vfs::remember`] counted for an entry the
    /// frontend could not hand out (the kernel's buffer was full). Unlike
    /// [`Vfs::forget`], the inode stays with what is cached about it (its
    /// xattr names from the listing, above all): the next readdir hands the
    /// same entry out first.
    pub fn unremember(&self, ino: Ino) {
        self.inodes().uncount(ino, 1);
    }

    // ----- attributes -----

    pub async fn getattr(&self, ino: Ino, fh: Option<Fh>) -> Result<FileAttr> {
        if self.writes.is_dirty(ino) {
            self.writes.flush_inode(ino).await;
        }
        // A file opened here has no remote handle to ask through: it is
        // asked by path, and once gone there it is what it was when last
        // seen, as a descriptor pinning a deleted file shows it.
        let only_here = fh
            .and_then(|fh| self.files.get(fh))
            .is_some_and(|f| f.ino == ino && f.only_here());
        let fh = fh.filter(|_| !only_here);
        if fh.is_none() {
            if let Some(attr) = self.inodes().fresh_attr(ino, Instant::now()) {
                return Ok(attr);
            }
        }
        match self.fetch_attr(ino, fh).await {
            Err(e) if only_here && matches!(e.errno(), Errno::ESTALE | Errno::ENOENT) => {
                self.inodes().get(ino).and_then(|n| n.attr).ok_or(e)
            }
            Ok(attr) => Ok(self.inodes().set_attr(ino, &attr, Instant::now())),
            // A file deleted or replaced, with nothing open on it any more
            // (the last handle may have closed while it was asked), is
            // what it was when last seen: a kernel still holding it gets
            // that, not an error, as a local file system's inode would.
            Err(e) if e.errno() == Errno::ESTALE && !self.files.lost_handle(fh) => self
                .inodes()
                .get(ino)
                .filter(|n| n.links.is_empty())
                .and_then(|n| n.attr)
                .ok_or(e),
            Err(e) => Err(e),
        }
    }

    async fn fetch_attr(&self, ino: Ino, fh: Option<Fh>) -> Result<Attr> {
        if let Some(file) = fh.and_then(|fh| self.files.get(fh)).filter(|f| f.ino == ino) {
            return self
                .files
                .call_handle(&file, "fstat", |remote, handle| async move {
                    remote.fstat(handle).await
                })
                .await;
        }
        let path = self.inodes().path(ino);
        if let Some(path) = path {
            let p = &path[..];
            match self
                .calls
                .call("lstat", p, |r| async move { r.lstat(p).await })
                .await
            {
                Ok(attr) if self.inodes().same_file(ino, &attr) => return Ok(attr),
                Ok(_) => {
                    // The name now belongs to another file.
                    if let Some((parent, name)) = self.ns.first_link(ino) {
                        self.inodes().unlink(parent, &name);
                    }
                }
                Err(e) if e.errno() != Errno::ENOENT => return Err(e),
                Err(_) => {}
            }
        }
        // No name leads to it: through a handle still open on it. One that
        // is closed meanwhile (released while this was asked) answers
        // EBADF: then the next, if any.
        let mut tried = Vec::new();
        while let Some(file) = self.files.any_handle_except(ino, &tried) {
            match self
                .files
                .call_handle(&file, "fstat", |remote, handle| async move {
                    remote.fstat(handle).await
                })
                .await
            {
                Err(e) if e.errno() == Errno::EBADF => tried.push(file.fh),
                other => return other,
            }
        }
        Err(VfsError::new("getattr", format!("<inode {ino}>"), Errno::ESTALE))
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
        if let Some(done) = self.setattr_ahead(ino, fh, &attr) {
            return Ok(done);
        }
        if self.writes.is_dirty(ino) {
            // Buffered and in-flight data must land before the change: before
            // a truncation, not after it, and before new times, which a
            // later write would overwrite.
            self.writes.flush_inode(ino).await;
        }
        // Listings asked for until now show the attributes from before (and
        // data read ahead, a truncation's old contents).
        self.ns.changed(
            ino,
            Change::Attributes {
                resized: attr.size.is_some(),
            },
        );
        let by_handle = fh.and_then(|fh| self.files.get(fh)).filter(|f| f.ino == ino);
        let path = self.inodes().path(ino);
        let through = match (by_handle, path) {
            (Some(file), _) => Some(file),
            (None, Some(_)) => None,
            (None, None) => match self.files.any_handle(ino, None) {
                Some(file) => Some(file),
                None => return Err(VfsError::new("setattr", format!("<inode {ino}>"), Errno::ESTALE)),
            },
        };
        // Setting absolute values: may be sent again after a lost
        // connection.
        let new = match through {
            Some(file) => {
                self.files
                    .call_handle(&file, "setattr", |remote, handle| {
                        let attr = attr.clone();
                        async move { remote.setattr(Target::Handle(handle), attr).await }
                    })
                    .await?
            }
            None => {
                let path = self.inodes().path(ino).unwrap_or_default();
                let p = &path[..];
                self.calls
                    .call("setattr", p, |remote| {
                        let attr = attr.clone();
                        async move { remote.setattr(Target::Path(p.to_vec().into()), attr).await }
                    })
                    .await?
            }
        };
        Ok(self.inodes().set_attr(ino, &new, Instant::now()))
    }

    /// [`Vfs::setattr`] acknowledged ahead of the remote (metadata
    /// write-back): a change of mode, owner or times (by path, or through
    /// a handle of a file that has one), of a node with one name, that
    /// name and those above it trusted, whose attributes are cached and
    /// which has no writes waiting.
    fn setattr_ahead(&self, ino: Ino, fh: Option<Fh>, change: &SetAttr) -> Option<FileAttr> {
        if !self.opts.write_back || change.size.is_some() {
            return None;
        }
        if self.writes.is_dirty(ino) {
            // Data still here goes first: into the file's creation, if that
            // has not gone out (tar's futimens after its writes).
            let fused = self
                .files
                .files_of(ino)
                .iter()
                .any(|file| self.meta.fuse(file, || self.writes.take_unsent(file)));
            if !fused || self.writes.is_dirty(ino) {
                return None;
            }
        }
        // Through a handle (fchmod, fchown, futimens) it is the file the
        // path names: the handle is checked to be on this inode, and the
        // path's names must be trusted, not just the attributes (an fstat
        // freshens those whatever became of the names).
        if fh.is_some_and(|fh| self.files.get(fh).is_none_or(|f| f.ino != ino)) {
            return None;
        }
        let now = Instant::now();
        let (path, new) = {
            let mut table = self.inodes();
            let path = table.fresh_path(ino, now)?;
            let old = table.fresh_attr(ino, now)?;
            if old.kind != FileKind::Directory && old.nlink != 1 {
                // Another name of the file would ask the remote for its
                // attributes without waiting for this change.
                return None;
            }
            let new = changed_attr(old, change);
            table.changed(ino, Change::Attributes { resized: false });
            table.set_local_attr(ino, new, now);
            (path, new)
        };
        self.meta.submit(
            ino,
            MetaOp::Setattr {
                path,
                attr: change.clone(),
            },
        );
        Some(new)
    }

    /// Runs `change` (names in `parent` added or removed ahead of the
    /// remote, `subdirs` of them directories) and keeps `parent`'s
    /// attributes as the remote will make them, if they were fresh: a
    /// directory being filled or emptied is not asked for again (a later
    /// `utimensat` or `rmdir` of it stays ahead too).
    fn entries_ahead<T>(&self, parent: Ino, subdirs: i64, change: impl FnOnce() -> T) -> T {
        let before = self.inodes().fresh_attr(parent, Instant::now());
        let done = change();
        if let Some(before) = before {
            self.inodes()
                .set_local_attr(parent, entries_attr(before, subdirs), Instant::now());
        }
        done
    }

    /// A name to create in `parent` that the mount may acknowledge ahead
    /// of the remote: write-back is on, `parent` fully listed without
    /// `name`, and what is created there known to come out as made here.
    fn may_create_ahead(&self, parent: Ino, name: &[u8]) -> bool {
        self.opts.write_back
            && !self.opts.read_only
            && name.len() <= NAME_MAX
            && self.inodes().known_absent(parent, name, Instant::now())
            && self.ns.creates_plainly(parent)
    }

    pub async fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        let path = self.path("readlink", ino)?;
        let p = &path[..];
        self.calls
            .call("readlink", p, |r| async move { r.readlink(p).await })
            .await
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
        let owner = self.ns.owner_for(caller, parent);
        let p = &path[..];
        // Until the answer is in, a notice of this creation (which may
        // overtake it) must not be taken for another's.
        let _changing = self.ns.names_changing([parent, parent]);
        let attr = self
            .calls
            .call_once(
                "mknod",
                p,
                |r| async move { r.mknod(p, mode, rdev_major, rdev_minor, Some(owner)).await },
                // Made by the call that was cut off if the name is now a
                // node of the same type.
                |r| async move {
                    match r.mknod(p, mode, rdev_major, rdev_minor, Some(owner)).await {
                        Err(e) if e.errno() == Errno::EEXIST => match r.lstat(p).await {
                            Ok(attr) if attr.mode & file_type::MASK == mode & file_type::MASK => Ok(attr),
                            _ => Err(e),
                        },
                        other => other,
                    }
                },
            )
            .await?;
        Ok(self.ns.entered_new(parent, name, &attr))
    }

    pub async fn mkdir(&self, caller: &Caller, parent: Ino, name: &[u8], mode: u32) -> Result<FileAttr> {
        self.check_writable("mkdir", parent)?;
        let path = self.child_path("mkdir", parent, name)?;
        let owner = self.ns.owner_for(caller, parent);
        let mode = self.creation_mode(caller, parent, mode).await;
        if self.may_create_ahead(parent, name) {
            let mode = mode | if self.ns.is_setgid(parent) { 0o2000 } else { 0 };
            let attr = self.meta.new_node_attr(file_type::DIRECTORY | mode, owner, 4096);
            let fattr = self.entries_ahead(parent, 1, || self.ns.entered_new(parent, name, &attr));
            self.inodes()
                .listing_complete(fattr.ino, &HashSet::new(), Instant::now());
            self.meta.submit(
                fattr.ino,
                MetaOp::Mkdir {
                    path,
                    mode,
                    owner: Some(owner),
                },
            );
            return Ok(fattr);
        }
        let p = &path[..];
        let _changing = self.ns.names_changing([parent, parent]);
        let attr = self
            .calls
            .call_once(
                "mkdir",
                p,
                |r| async move { r.mkdir(p, mode, Some(owner)).await },
                // Made by the call that was cut off if the name is now a
                // directory.
                |r| async move {
                    match r.mkdir(p, mode, Some(owner)).await {
                        Err(e) if e.errno() == Errno::EEXIST => match r.lstat(p).await {
                            Ok(attr) if attr.is_dir() => Ok(attr),
                            _ => Err(e),
                        },
                        other => other,
                    }
                },
            )
            .await?;
        let fattr = self.ns.entered_new(parent, name, &attr);
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
        let owner = self.ns.owner_for(caller, parent);
        if self.may_create_ahead(parent, name) {
            let attr = self
                .meta
                .new_node_attr(file_type::SYMLINK | 0o777, owner, target.len() as u64);
            let fattr = self.entries_ahead(parent, 0, || self.ns.entered_new(parent, name, &attr));
            self.meta.submit(
                fattr.ino,
                MetaOp::Symlink {
                    path,
                    target: target.to_vec(),
                    owner: Some(owner),
                },
            );
            return Ok(fattr);
        }
        let p = &path[..];
        let _changing = self.ns.names_changing([parent, parent]);
        let attr = self
            .calls
            .call_once(
                "symlink",
                p,
                |r| async move { r.symlink(target, p, Some(owner)).await },
                // Made by the call that was cut off if the name is now a
                // symlink to the same target.
                |r| async move {
                    match r.symlink(target, p, Some(owner)).await {
                        Err(e) if e.errno() == Errno::EEXIST => match r.readlink(p).await {
                            Ok(content) if content == target => r.lstat(p).await,
                            _ => Err(e),
                        },
                        other => other,
                    }
                },
            )
            .await?;
        Ok(self.ns.entered_new(parent, name, &attr))
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
        // The remote must hold what was acknowledged about the file linked.
        self.calls.settled("link", &from).await?;
        // nlink changes: listings asked for until now show the old one.
        self.ns.changed(ino, Change::Attributes { resized: false });
        let (f, t) = (&from[..], &to[..]);
        let _changing = self.ns.names_changing([new_parent, new_parent]);
        let attr = self
            .calls
            .call_once(
                "link",
                t,
                |r| async move { r.link(f, t).await },
                // Made by the call that was cut off if the new name is now
                // the same file as the old one.
                |r| async move {
                    match r.link(f, t).await {
                        Err(e) if e.errno() == Errno::EEXIST => match (r.lstat(f).await, r.lstat(t).await) {
                            (Ok(a), Ok(b))
                                if RemoteId::of(&a).is_some() && RemoteId::of(&a) == RemoteId::of(&b) =>
                            {
                                Ok(b)
                            }
                            _ => Err(e),
                        },
                        other => other,
                    }
                },
            )
            .await?;
        Ok(self.ns.entered(new_parent, new_name, &attr))
    }

    pub async fn unlink(&self, _caller: &Caller, parent: Ino, name: &[u8]) -> Result<()> {
        self.check_writable("unlink", parent)?;
        let path = self.child_path("unlink", parent, name)?;
        if self.opts.write_back {
            // A name known to be there, not a directory, its file's only
            // name (another name's link count would be asked of the remote
            // by that name, which the unlink does not hold back), and
            // nothing being written to it: gone at once, here, and in order
            // on the remote.
            let known = {
                let table = self.inodes();
                table
                    .cached_lookup(parent, name, Instant::now())
                    .filter(|a| a.kind != FileKind::Directory && a.nlink == 1)
            };
            if let Some(attr) = known.filter(|a| !self.writes.is_dirty(a.ino)) {
                self.entries_ahead(parent, 0, || self.ns.name_removed(parent, name));
                self.meta.submit(attr.ino, MetaOp::Unlink { path });
                return Ok(());
            }
        }
        let unsure =
            self.ns.policy().caches_attributes() && !self.inodes().name_fresh(parent, name, Instant::now());
        if unsure {
            // A name never looked up, or whose entry expired (a stateless
            // frontend removes by name; the kernel looks it up first):
            // which file it is now tells whose other names lose a link.
            let p = &path[..];
            if let Ok(attr) = self
                .calls
                .call("lstat", p, |r| async move { r.lstat(p).await })
                .await
            {
                self.inodes().upsert(parent, name, &attr, Instant::now());
            }
        }
        let p = &path[..];
        self.calls
            .call_once(
                "unlink",
                p,
                |r| async move { r.unlink(p).await },
                // Gone is what was asked for.
                |r| async move { gone_is_done(r.unlink(p).await) },
            )
            .await?;
        self.ns.name_removed(parent, name);
        Ok(())
    }

    pub async fn rmdir(&self, _caller: &Caller, parent: Ino, name: &[u8]) -> Result<()> {
        self.check_writable("rmdir", parent)?;
        let path = self.child_path("rmdir", parent, name)?;
        if self.opts.write_back {
            // A directory known to be there and known empty.
            let known = {
                let table = self.inodes();
                let now = Instant::now();
                table
                    .cached_lookup(parent, name, now)
                    .filter(|a| a.kind == FileKind::Directory && table.known_empty(a.ino, now))
            };
            if let Some(attr) = known {
                self.entries_ahead(parent, -1, || self.ns.name_removed(parent, name));
                self.meta.submit(attr.ino, MetaOp::Rmdir { path });
                return Ok(());
            }
        }
        let p = &path[..];
        self.calls
            .call_once(
                "rmdir",
                p,
                |r| async move { r.rmdir(p).await },
                |r| async move { gone_is_done(r.rmdir(p).await) },
            )
            .await?;
        self.ns.name_removed(parent, name);
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
        // The remote must hold what was acknowledged about both names (the
        // source's own path is waited for by the call).
        self.calls.settled("rename", &to).await?;
        let unsure = !flags.noreplace
            && self.ns.policy().caches_attributes()
            && !self.inodes().name_fresh(new_parent, new_name, Instant::now());
        if unsure {
            // A name renamed over that was never looked up, or whose entry
            // expired (a stateless frontend renames by name; the kernel
            // looks it up first): which file it is now tells whose other
            // names lose a link, as for unlink.
            let t = &to[..];
            if let Ok(attr) = self
                .calls
                .call("lstat", t, |r| async move { r.lstat(t).await })
                .await
            {
                self.inodes().upsert(new_parent, new_name, &attr, Instant::now());
            }
        }
        // Which files the two names hold is taken from before the remote
        // renames: a lookup answered while the rename is under way (a
        // reader retrying its open of the name saved over) may find the
        // moved file under the new name already, and the two names would
        // then look like two names of one file, which rename(2) leaves
        // alone. The old name stayed: the kernel opened it for the next
        // save as the saved file, with O_TRUNC.
        // `moved_id`: what the source is, to tell after a lost connection
        // whether the rename was carried out.
        let (moved_before, target_before, sure, moved_id) = {
            let table = self.inodes();
            let now = Instant::now();
            let moved_before = table.ino_of(parent, name);
            (
                moved_before,
                table.ino_of(new_parent, new_name),
                table.name_fresh(parent, name, now) && table.name_fresh(new_parent, new_name, now),
                moved_before.and_then(|ino| table.remote_id(ino)),
            )
        };
        let (f, t) = (&from[..], &to[..]);
        // Until the answer is in, a notice of this rename (which may
        // overtake it) must not be taken for another's: the moved node
        // would lose its name here before the rename gives it the new one.
        let changing = self.ns.names_changing([parent, new_parent]);
        let renamed = self
            .calls
            .call_once(
                "rename",
                f,
                |r| async move { r.rename(f, t, flags).await },
                |r| async move { resolve_rename(&*r, f, t, flags, moved_id).await },
            )
            .await;
        if renamed.is_ok() {
            self.writes.renamed(f, t, flags.exchange);
        }
        let mut table = self.inodes();
        // Released with the table held: a notice settled next sees the
        // rename's names.
        changing.done(&mut table);
        renamed?;
        let moved = table.ino_of(parent, name);
        let target = table.ino_of(new_parent, new_name);
        let same_before = moved_before.is_some() && moved_before == target_before;
        let now = Instant::now();
        if same_before
            && sure
            && (moved, target) == (moved_before, target_before)
            && table.name_fresh(parent, name, now)
            && table.name_fresh(new_parent, new_name, now)
        {
            // Two names of one file (or one name): rename(2) leaves both.
            return Ok(());
        }
        let same = same_before || (moved.is_some() && moved == target);
        // The file replaced is the one the new name held before.
        let replaced = target_before.or(target).filter(|_| !flags.exchange);
        table.rename(parent, name, new_parent, new_name, flags.exchange);
        // A name this mount never looked up (a stateless frontend renames
        // by name) moved in, or the names looked like two names of one
        // file (entries that had expired, or a lookup during the rename;
        // both stay if they still are): what they hold now is not known
        // here, and a listing must not say a name is absent.
        if moved.is_none() || same {
            table.changed(new_parent, Change::NamesUnknown);
        }
        if (flags.exchange && target.is_none()) || same {
            table.changed(parent, Change::NamesUnknown);
        }
        table.changed(parent, Change::Entries);
        table.changed(new_parent, Change::Entries);
        if let Some(ino) = moved {
            // ctime changed.
            table.changed(ino, Change::Attributes { resized: false });
        }
        if let Some(ino) = replaced.filter(|r| Some(*r) != moved) {
            // nlink and ctime changed; deleted, unless open or linked.
            table.changed(ino, Change::Attributes { resized: false });
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
            self.writes.flush_inode(ino).await;
            self.ns.changed(ino, Change::Written);
        }
        let reading = flags & (of::ACCESS_MASK | of::TRUNCATE) == of::READ_ONLY;
        let opened_ahead = if reading {
            self.stale_opens.take(ino, caller.pid, Instant::now())
        } else {
            None
        };
        if let Some(ahead) = opened_ahead {
            let opened =
                self.opened_for_reading(ino, flags, ahead.remote_handle, ahead.attr, Some(ahead.head));
            // The handle's own open count replaces the one kept for it.
            self.inodes().open_dec(ino);
            return Ok(opened);
        }
        let kept = if reading && !self.writes.is_dirty(ino) {
            self.inodes().take_contents(ino, Instant::now())
        } else {
            None
        };
        // Whole contents kept here, while the remote pushes its changes,
        // spare the open too: a change there reaches this mount within
        // the notice's delay, as it would reach a kernel-cached page. The
        // descriptor then pins the bytes it opened (a file replaced or
        // deleted there afterwards reads as it was, as POSIX has it); the
        // file is opened there only if a read needs more than these bytes.
        let kept = match kept {
            Some((attr, data)) if self.changes.pushed() && self.inodes().path(ino).is_some() => {
                return Ok(self.opened_here(ino, flags, attr, data));
            }
            kept => kept,
        };
        if reading && kept.is_none() && self.changes.pushed() {
            self.listings.contents_around(ino);
        }
        // Otherwise contents spare the data, not the open: a descriptor
        // must pin the file it opened, which only the agent's own
        // descriptor does.
        let path = self.stale_opens.openable_path(ino, caller.pid)?;
        let p = &path[..];
        if reading {
            // A reader gets the file's start with the handle: a small file
            // is then read in one round trip, not two.
            let prefetch = if kept.is_some() { 0 } else { OPEN_PREFETCH };
            let ((handle, attr, head), remote, generation) = self
                .calls
                .call_on(
                    "open",
                    p,
                    |r| async move { r.open_read(p, flags, prefetch).await },
                )
                .await
                .map_err(|e| self.stale_opens.open_failed(ino, caller.pid, &path, e))?;
            let head = match kept {
                None => Some(head),
                // Still the file the listing read them from, or nothing
                // known of its data.
                Some((listed, data)) => ((attr.size, attr.mtime, attr.ctime)
                    == (listed.size, listed.mtime, listed.ctime))
                    .then(|| data.to_vec()),
            };
            self.stale_opens
                .check_opened(ino, caller.pid, &path, &remote, handle, &attr)?;
            return Ok(self.opened_for_reading(ino, flags, (handle, generation), attr, head));
        }
        // Opening again after a lost connection is harmless, O_TRUNC
        // included: the application has no descriptor to write with yet.
        let ((handle, attr), remote, generation) = self
            .calls
            .call_on("open", p, |r| async move { r.open(p, flags, 0, None).await })
            .await
            .map_err(|e| self.stale_opens.open_failed(ino, caller.pid, &path, e))?;
        self.stale_opens
            .check_opened(ino, caller.pid, &path, &remote, handle, &attr)?;
        let fattr = self.inodes().set_attr(ino, &attr, Instant::now());
        let fh = self.files.register_file(ino, (handle, generation), flags);
        self.writes.attach(ino);
        if flags & of::TRUNCATE != 0 {
            // The kernel leaves an atomic O_TRUNC to the file system, and
            // with it the clearing of set-ID bits a truncation owes.
            return Ok((fh, self.kill_set_id(caller, fh, fattr).await));
        }
        Ok((fh, fattr))
    }

    /// Clears `attr`'s set-user-ID and set-group-ID bits as the kernel
    /// does when a caller without CAP_FSETID changes a file's content
    /// ([`FileAttr::perm_without_set_id`]); returns the attributes after.
    /// A remote that refuses (an agent that does not own the file) leaves
    /// them, said in the log: the open it follows has succeeded.
    async fn kill_set_id(&self, caller: &Caller, fh: Fh, attr: FileAttr) -> FileAttr {
        let Some(perm) = attr.perm_without_set_id().filter(|_| !caller.keeps_set_id()) else {
            return attr;
        };
        let change = SetAttr {
            mode: Some(perm),
            ..SetAttr::default()
        };
        match self.setattr(caller, attr.ino, Some(fh), change).await {
            Ok(after) => after,
            Err(e) => {
                tracing::warn!("clearing set-ID bits after a truncating open: {e}");
                attr
            }
        }
    }

    /// Registers a handle opened for reading from `data`, the whole file
    /// as of `attr`, with no remote handle yet (see
    /// [`crate::handle::OPENED_HERE`]).
    fn opened_here(&self, ino: Ino, flags: u32, attr: FileAttr, data: Bytes) -> (Fh, FileAttr) {
        let version = {
            let mut table = self.inodes();
            // Kept again for the next open, as a read of the whole file keeps it.
            table.keep_contents(ino, &attr, data.clone());
            table.data_state(ino).0
        };
        let mut readahead = Readahead::default();
        readahead.follow_version(version);
        readahead.follow(attr.size, attr.mtime);
        readahead.set_head(data.clone(), true);
        let fh = self.files.register_opened_here(ino, flags, readahead, data);
        self.writes.attach(ino);
        (fh, attr)
    }

    /// Registers a handle opened for reading, with the file's first bytes
    /// that came with it.
    fn opened_for_reading(
        &self,
        ino: Ino,
        flags: u32,
        remote_handle: (yonder_proto::Handle, Generation),
        attr: Attr,
        head: Option<Vec<u8>>,
    ) -> (Fh, FileAttr) {
        let (fattr, version) = {
            let mut table = self.inodes();
            let fattr = table.set_attr(ino, &attr, Instant::now());
            (fattr, table.data_state(ino).0)
        };
        let mut readahead = Readahead::default();
        readahead.follow_version(version);
        readahead.follow(attr.size, attr.mtime);
        if let (true, false, Some(head)) = (attr.is_file(), self.writes.is_dirty(ino), head) {
            let whole = head.len() < OPEN_PREFETCH as usize;
            let head = Bytes::from(head);
            if whole {
                // A small file read whole is opened again (a second `grep
                // -r`, a build) with no data asked for, its open telling
                // whether these bytes still are the file: where a listing
                // brings no contents (SFTP), one round trip, not two.
                self.inodes().keep_contents(ino, &fattr, head.clone());
            }
            readahead.set_head(head, whole);
        }
        let fh = self
            .files
            .register_file_with(ino, remote_handle, flags, readahead);
        self.writes.attach(ino);
        (fh, fattr)
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
        let owner = self.ns.owner_for(caller, parent);
        let mode = self.creation_mode(caller, parent, mode).await;
        if self.may_create_ahead(parent, name) {
            let attr = self.meta.new_node_attr(file_type::REGULAR | mode, owner, 0);
            let fattr = self.entries_ahead(parent, 0, || self.ns.entered_new(parent, name, &attr));
            let open_flags = flags & !(of::CREATE | of::EXCLUSIVE);
            let op = MetaOp::Create {
                path,
                mode,
                flags,
                owner: Some(owner),
            };
            let file = self.meta.create(fattr.ino, op, open_flags);
            self.writes.attach(fattr.ino);
            return Ok((file.fh, fattr));
        }
        let p = &path[..];
        let exclusive = flags & of::EXCLUSIVE != 0;
        let _changing = self.ns.names_changing([parent, parent]);
        let ((handle, attr), _, generation) = self
            .calls
            .call_once_on(
                "create",
                p,
                |r| async move { r.open(p, flags, mode, Some(owner)).await },
                // Without O_EXCL, creating again opens what the call that
                // was cut off created. With it, a file now at the name may
                // be that one or another's: EIO, not a guess (EEXIST would
                // tell an application holding a lock file that someone
                // else holds it; success might hand it another's).
                |r| async move {
                    match r.open(p, flags, mode, Some(owner)).await {
                        Err(e) if exclusive && e.errno() == Errno::EEXIST => {
                            tracing::warn!(
                                "create {}: the connection was lost with an exclusive create in flight and \
                                 the name exists now; whether this mount created it is unknown (EIO)",
                                display_path(p)
                            );
                            Err(RemoteError::os("create", display_path(p), Errno::EIO))
                        }
                        other => other,
                    }
                },
            )
            .await?;
        let fattr = self.ns.entered_new(parent, name, &attr);
        let flags = flags & !(of::CREATE | of::EXCLUSIVE);
        let fh = self.files.register_file(fattr.ino, (handle, generation), flags);
        self.writes.attach(fattr.ino);
        Ok((fh, fattr))
    }

    /// `fallocate(2)`: pending writes land first, so a hole punched or a
    /// range zeroed is not overwritten by older data afterwards.
    pub async fn fallocate(&self, fh: Fh, offset: u64, len: u64, mode: u32) -> Result<()> {
        let file = self.files.file("fallocate", fh)?;
        self.check_writable("fallocate", file.ino)?;
        self.writes.send_pending(&file, "fallocate").await?;
        self.ns.changed(file.ino, Change::DataSent);
        // Allocating, punching or zeroing a range again is harmless.
        self.files
            .call_handle(&file, "fallocate", |remote, handle| async move {
                remote.fallocate(handle, offset, len, mode).await
            })
            .await?;
        self.ns.changed(file.ino, Change::Attributes { resized: false });
        Ok(())
    }

    /// `lseek(2)` with `SEEK_DATA`/`SEEK_HOLE`, answered by the remote.
    /// Writes still buffered here (through any handle of the inode) are
    /// holes to the remote, so they are sent first. A failure to send them
    /// stays with its handle, as for a read.
    pub async fn lseek(&self, fh: Fh, offset: u64, whence: yonder_proto::SeekWhence) -> Result<u64> {
        let file = self.files.file("lseek", fh)?;
        if self.writes.is_dirty(file.ino) {
            self.writes.flush_inode(file.ino).await;
        }
        self.files
            .call_handle(&file, "lseek", |remote, handle| async move {
                remote.lseek(handle, offset, whence).await
            })
            .await
    }

    /// [`Vfs::release`] when it has nothing to wait for: no creation or
    /// write of the file still on its way. Frontends answer it inline;
    /// whether it was done (if not, [`Vfs::release`] must do it).
    pub fn release_ready(&self, fh: Fh) -> bool {
        let Some(file) = self.files.get(fh) else {
            return false;
        };
        if file.created.is_some() || self.meta.tracks_create(fh) || self.writes.unsettled_through(fh) {
            return false;
        }
        if !self.writes.release_ready(&file) {
            return false;
        }
        self.files.remove(fh);
        self.inodes().open_dec(file.ino);
        if self.files.files_of(file.ino).is_empty() {
            self.meta.closed_for_good(file.ino);
        }
        // Nobody waits for the remote close.
        self.files.close_released(&file);
        true
    }

    /// Closes a handle. Buffered data is sent first; its error, if any,
    /// can only be logged here (frontends flush before releasing).
    pub async fn release(&self, fh: Fh) -> Result<()> {
        let Some(file) = self.files.remove(fh) else {
            return Err(VfsError::new("release", format!("<handle {fh}>"), Errno::EBADF));
        };
        // A file whose creation has not gone out yet takes its data with it,
        // and the creation closes the handle.
        let creation_closes = self.meta.released(&file, || self.writes.take_unsent(&file));
        self.writes.release(&file).await;
        self.inodes().open_dec(file.ino);
        if self.files.files_of(file.ino).is_empty() {
            self.meta.closed_for_good(file.ino);
        }
        if creation_closes {
            return Ok(());
        }
        if self.writes.unsettled_through(fh) {
            // Writes through it are still waiting for a connection: its
            // remote handle is closed once they are settled.
            self.writes.close_after_writes(file);
            return Ok(());
        }
        if let Some(created) = file.created.clone() {
            // A creation that went out while the file was open writes the
            // data gathered by then through this handle: closed after it
            // (closing now would fail those writes with EBADF), and only
            // once the handle exists.
            let files = self.files.clone();
            self.runtime.spawn(async move {
                created.done().await;
                files.close_released(&file);
            });
            return Ok(());
        }
        // Nobody waits for the remote close.
        self.files.close_released(&file);
        Ok(())
    }

    // ----- reading and writing -----

    /// Reads up to `size` bytes at `offset`; fewer only at end of file.
    /// Writes still pending on the inode land first.
    pub async fn read(&self, fh: Fh, offset: u64, size: u32) -> Result<Bytes> {
        let file = self.files.file("read", fh)?;
        if self.writes.is_dirty(file.ino) {
            self.writes.flush_inode(file.ino).await;
        }
        self.reading.read(&file, offset, size).await
    }

    /// [`Vfs::read`] when it needs no wait: the file's first bytes that
    /// came with its open answer it, and no write of the inode is pending.
    /// Frontends answer it inline; `None` when [`Vfs::read`] must do it.
    pub fn read_ready(&self, fh: Fh, offset: u64, size: u32) -> Option<Result<Bytes>> {
        let file = match self.files.file("read", fh) {
            Ok(file) => file,
            Err(e) => return Some(Err(e)),
        };
        if self.writes.is_dirty(file.ino) {
            return None;
        }
        self.reading.read_ready(&file, offset, size).map(Ok)
    }

    /// Writes `data` at `offset` (at the end for append handles). The data
    /// may be buffered; a failure to send it surfaces at a later write, at
    /// [`Vfs::flush`] or at [`Vfs::fsync`].
    pub async fn write(&self, fh: Fh, offset: u64, data: &[u8]) -> Result<u32> {
        if let Some(done) = self.write_ready(fh, offset, data) {
            return done;
        }
        self.write_bytes(fh, offset, Bytes::copy_from_slice(data)).await
    }

    /// [`Vfs::write`] when it needs no wait: `data` continues the inode's
    /// write buffer and does not fill it, the handle is not O_SYNC, the
    /// connection is not gone, and nobody holds the inode's write-back (a
    /// send, a flush). `None` when [`Vfs::write_bytes`] must do it. Never
    /// waits: frontends call it inline.
    pub fn write_ready(&self, fh: Fh, offset: u64, data: &[u8]) -> Option<Result<u32>> {
        let file = match self.files.file("write", fh) {
            Ok(file) => file,
            Err(err) => return Some(Err(err)),
        };
        if let Err(err) = self.check_writable("write", file.ino) {
            return Some(Err(err));
        }
        let done = self.writes.write_ready(&file, offset, data)?;
        if let Ok(n) = &done {
            self.wrote_ahead(&file, offset + u64::from(*n));
        }
        Some(done)
    }

    /// A file whose creation has not reached the remote is known only
    /// here: its size and times follow its writes, so that its close,
    /// and a stat after, need not ask the remote.
    fn wrote_ahead(&self, file: &crate::handle::OpenFile, end: u64) {
        if file.created.as_ref().is_none_or(|c| c.is_done()) || file.append {
            return;
        }
        let mut table = self.inodes();
        if let Some(attr) = table.get(file.ino).and_then(|n| n.attr) {
            table.set_local_attr(file.ino, written_attr(attr, end), Instant::now());
        }
    }

    /// [`Vfs::write`] of data the caller already owns: a write too large
    /// to gather, or an O_SYNC one, is sent as it is, without a copy (a
    /// frontend that must copy the kernel's buffer anyway copies it once,
    /// into `data`).
    pub async fn write_bytes(&self, fh: Fh, offset: u64, data: Bytes) -> Result<u32> {
        let file = self.files.file("write", fh)?;
        self.check_writable("write", file.ino)?;
        let n = self.writes.write_bytes(&file, offset, data).await?;
        self.wrote_ahead(&file, offset + u64::from(n));
        Ok(n)
    }

    /// [`Vfs::flush`] when it needs no wait: nothing of the file gathered
    /// or in flight. Frontends answer it inline; `None` when [`Vfs::flush`]
    /// must do it.
    pub fn flush_ready(&self, fh: Fh) -> Option<Result<()>> {
        let file = match self.files.file("flush", fh) {
            Ok(file) => file,
            Err(e) => return Some(Err(e)),
        };
        if let Some(err) = self.meta.error_for_close(file.ino) {
            return Some(Err(err));
        }
        if self.meta.unsent_create(fh) {
            return Some(Ok(()));
        }
        self.writes.close_ready(&file)
    }

    /// Called on each close of a descriptor: sends buffered data and
    /// reports any write error not reported yet.
    pub async fn flush(&self, fh: Fh) -> Result<()> {
        let file = self.files.file("flush", fh)?;
        if let Some(err) = self.meta.error_for_close(file.ino) {
            return Err(err);
        }
        if self.meta.unsent_create(fh) {
            // Its data goes out with its creation, and its close waits for
            // neither (an error comes back at fsync, or the next close).
            return Ok(());
        }
        self.writes.send_at_close(&file).await
    }

    /// fsync(2): covers the file's data written through every descriptor.
    pub async fn fsync(&self, fh: Fh, datasync: bool) -> Result<()> {
        let file = self.files.file("fsync", fh)?;
        // What was acknowledged about the file and the directories above
        // it goes first.
        let path = self.inodes().path(file.ino);
        if let Some(path) = path {
            self.calls.settled("fsync", &path).await?;
        }
        if let Some(err) = self.meta.take_error(file.ino) {
            return Err(err);
        }
        self.writes.fsync(&file, datasync).await
    }

    /// Sends every handle's buffered writes (before unmounting). Returns the
    /// first error; all errors also stay with their handles.
    /// Metadata operations acknowledged ahead of the remote go first, and
    /// are all settled when it returns (or its deadline passed: EIO).
    pub async fn flush_all(&self) -> Result<()> {
        let ahead = self.meta.sync_all("flush", Some(self.calls.deadline())).await;
        let written = self.writes.flush_all().await;
        let after = self.meta.sync_all("flush", Some(self.calls.deadline())).await;
        ahead.and(written).and(after)
    }

    /// Replays, in order, what a process that ended left unconfirmed in
    /// its durable journal ([`crate::DiskJournal::open`]), by remote path;
    /// call it before the mount serves anything. Fails only when the
    /// connection is gone for good (keep the journal then).
    pub async fn replay_journal(&self, entries: Vec<(Seq, Entry)>) -> Result<Recovered> {
        replay_left(&self.calls, entries).await
    }

    /// Operations acknowledged ahead of the remote that it refused since
    /// the mount began (metadata operations and writes), and metadata
    /// operations not settled yet.
    pub fn write_back_counts(&self) -> (u64, usize) {
        let (failed, pending) = self.meta.counts();
        (failed + self.writes.refused(), pending)
    }

    /// Writes the agent has not confirmed (entries, bytes): what a lost
    /// connection would have the next one replay.
    pub fn unconfirmed_writes(&self) -> (usize, u64) {
        self.writes.unconfirmed_writes()
    }

    // ----- directories -----

    /// Opens a directory. No remote call (the listing is fetched by the
    /// first `readdir`), so it is synchronous and frontends answer inline.
    pub fn opendir(&self, _caller: &Caller, ino: Ino) -> Result<Fh> {
        self.listings.opendir(ino)
    }

    /// Entries of an open directory from `offset` (0, or an entry's
    /// `offset`). An empty result means the end. Offset 0 starts over with a
    /// fresh listing. No lookups are counted; see [`Vfs::remember`].
    pub async fn readdir(&self, fh: Fh, offset: u64) -> Result<Vec<DirItem>> {
        self.listings.readdir(fh, offset).await
    }

    /// [`Vfs::readdir`] when it can answer without waiting: the entries are
    /// already fetched (or were fetched ahead) and nobody else holds the
    /// stream. Frontends answer such calls inline.
    pub fn readdir_ready(&self, fh: Fh, offset: u64) -> Option<Vec<DirItem>> {
        self.listings.readdir_ready(fh, offset)
    }

    pub fn releasedir(&self, fh: Fh) -> Result<()> {
        self.listings.releasedir(fh)
    }

    /// Whether a frontend that keeps listings (FUSE's FOPEN_CACHE_DIR) may
    /// keep, at an open of `dir`, the one it was last handed to the end:
    /// it is still this VFS's complete listing of `dir`, unchanged and
    /// within the names TTL. Where changes are pushed, the frontend is told
    /// when to drop it instead (`FrontendCaches`).
    pub fn listing_kept(&self, dir: Ino) -> bool {
        self.listings.listing_kept(dir)
    }

    /// Counts a lookup for an entry handed out with its attributes (as by
    /// readdirplus) and returns current attributes for it. `None` for `.`
    /// and `..`, which frontends pass without counting.
    pub async fn remember(&self, parent: Ino, item: &DirItem) -> Option<FileAttr> {
        if !self.writes.is_dirty(item.ino) && !self.inodes().changed_since(item.ino, item.asked) {
            return self.remember_clean(parent, item);
        }
        // The listing's size lags behind buffered writes, or the file
        // changed through the mount since it was listed (another name of
        // it sent its writes, a listing fetched ahead): send what is
        // buffered, then ask again.
        let listed = match item.remote.as_ref() {
            Some(remote) => self.inodes().upsert(parent, &item.name, remote, Instant::now()),
            None => {
                let mut table = self.inodes();
                let listed = table.remember_listed(parent, &item.name, item.attr?)?;
                // Counted again below, once current.
                table.uncount(listed.ino, 1);
                listed
            }
        };
        self.writes.flush_inode(listed.ino).await;
        self.ns.changed(listed.ino, Change::Flushed);
        let fattr = self.getattr(listed.ino, None).await.unwrap_or(listed);
        self.inodes().inc_lookup(fattr.ino, 1);
        Some(fattr)
    }

    /// [`Vfs::remember`] for entries with no buffered writes and no change
    /// since they were listed (see [`Vfs::any_dirty`]), which needs no
    /// waiting.
    pub fn remember_clean(&self, parent: Ino, item: &DirItem) -> Option<FileAttr> {
        let mut table = self.inodes();
        let Some(remote) = item.remote.as_ref() else {
            return table.remember_listed(parent, &item.name, item.attr?);
        };
        let fattr = table.upsert(parent, &item.name, remote, Instant::now());
        table.inc_lookup(fattr.ino, 1);
        Some(fattr)
    }

    /// Whether any of `items` has writes not yet sent, or changed through
    /// the mount since it was listed: attributes (size, mtime, nlink) the
    /// listing does not reflect.
    pub fn any_dirty(&self, items: &[DirItem]) -> bool {
        items.iter().any(|i| {
            !i.is_dot_or_dotdot()
                && (self.writes.is_dirty(i.ino) || self.inodes().changed_since(i.ino, i.asked))
        })
    }

    // ----- the rest -----

    pub async fn statfs(&self, ino: Ino) -> Result<StatFs> {
        let path = self.inodes().path(ino).unwrap_or_default();
        let p = &path[..];
        self.calls
            .call("statfs", p, |r| async move { r.statfs(p).await })
            .await
    }

    /// Whether a fresh cached name list says `ino` has no attribute `name`:
    /// answerable without waiting, so frontends may call it inline.
    pub fn xattr_known_absent(&self, ino: Ino, name: &[u8]) -> bool {
        self.inodes()
            .cached_xattr_names(ino, Instant::now())
            .is_some_and(|names| !names.iter().any(|n| n == name))
    }

    /// ENOSYS for `op` if the remote has no xattrs at all.
    fn check_xattrs(&self, op: &'static str, path: &[u8]) -> Result<()> {
        if self.no_xattrs.load(Ordering::Relaxed) {
            return Err(VfsError::new(op, String::from_utf8_lossy(path), Errno::ENOSYS));
        }
        Ok(())
    }

    /// Remembers an ENOSYS answer to an xattr call (see `no_xattrs`).
    fn note_xattrs<T>(&self, result: Result<T>) -> Result<T> {
        if result.as_ref().is_err_and(|e| e.errno() == Errno::ENOSYS) {
            self.no_xattrs.store(true, Ordering::Relaxed);
        }
        result
    }

    pub async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        let path = self.path("getxattr", ino)?;
        self.check_xattrs("getxattr", &path)?;
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
        self.check_xattrs("getxattr", &path)?;
        let p = &path[..];
        let got = self
            .calls
            .call("getxattr", p, |r| async move { r.getxattr(p, name).await })
            .await;
        self.note_xattrs(got)
    }

    pub async fn setxattr(
        &self,
        caller: &Caller,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
    ) -> Result<()> {
        self.check_writable("setxattr", ino)?;
        let path = self.path("setxattr", ino)?;
        self.check_xattrs("setxattr", &path)?;
        let p = &path[..];
        let set = self
            .calls
            .call_once(
                "setxattr",
                p,
                |r| async move { r.setxattr(p, name, value, mode).await },
                // Setting the value again is harmless, except that a create
                // then finds the one the call that was cut off set.
                |r| async move {
                    match r.setxattr(p, name, value, mode).await {
                        Err(e) if e.errno() == Errno::EEXIST => match r.getxattr(p, name).await {
                            Ok(found) if found == value => Ok(()),
                            _ => Err(e),
                        },
                        other => other,
                    }
                },
            )
            .await;
        self.note_xattrs(set)?;
        self.ns.changed(ino, Change::Xattrs);
        if name == b"system.posix_acl_access" {
            if let Err(e) = self.kill_set_group_id_after_acl(caller, ino).await {
                // The ACL is set; a remote that refuses the mode change
                // (an agent that does not own the file) keeps the bit.
                tracing::warn!("clearing set-group-ID after an ACL change: {e}");
            }
        }
        Ok(())
    }

    /// An access ACL set by someone outside the file's group (and without
    /// CAP_FSETID) clears its set-group-ID bit, as chmod would
    /// (`posix_acl_update_mode`). The remote cannot do it: it sets the ACL
    /// with the agent's rights. The kernel would pass the rule on only
    /// through FUSE_SETXATTR_EXT, which fuser 0.18 cannot read.
    async fn kill_set_group_id_after_acl(&self, caller: &Caller, ino: Ino) -> Result<()> {
        let attr = self.getattr(ino, None).await?;
        if attr.perm & 0o2000 == 0 || caller.in_group(attr.gid) {
            return Ok(());
        }
        let change = SetAttr {
            mode: Some(attr.perm & !0o2000),
            ..SetAttr::default()
        };
        self.setattr(caller, ino, None, change).await.map(drop)
    }

    pub async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        let path = self.path("listxattr", ino)?;
        if let Some(names) = self.inodes().cached_xattr_names(ino, Instant::now()) {
            return Ok(names.to_vec());
        }
        self.check_xattrs("listxattr", &path)?;
        let p = &path[..];
        let asked = Instant::now();
        let listed = self
            .calls
            .call("listxattr", p, |r| async move { r.listxattr(p).await })
            .await;
        let names = self.note_xattrs(listed)?;
        // An answer from before a change made here since (a `setfacl`)
        // would say an ACL is absent for a whole TTL.
        let mut table = self.inodes();
        if !table.changed_since(ino, asked) {
            table.set_xattr_names(ino, names.clone(), Instant::now());
        }
        Ok(names)
    }

    pub async fn removexattr(&self, ino: Ino, name: &[u8]) -> Result<()> {
        self.check_writable("removexattr", ino)?;
        let path = self.path("removexattr", ino)?;
        self.check_xattrs("removexattr", &path)?;
        let p = &path[..];
        let removed = self
            .calls
            .call_once(
                "removexattr",
                p,
                |r| async move { r.removexattr(p, name).await },
                |r| async move {
                    match r.removexattr(p, name).await {
                        Err(e) if e.errno() == Errno::ENODATA => Ok(()),
                        other => other,
                    }
                },
            )
            .await;
        self.note_xattrs(removed)?;
        self.ns.changed(ino, Change::Xattrs);
        Ok(())
    }

    /// Checks access with the remote's credentials; `mask` is
    /// [`yonder_proto::access_mask`] bits.
    pub async fn access(&self, _caller: &Caller, ino: Ino, mask: u32) -> Result<()> {
        if self.opts.read_only && mask & yonder_proto::access_mask::WRITE != 0 {
            return Err(VfsError::new("access", self.describe(ino), Errno::EROFS));
        }
        let path = self.path("access", ino)?;
        let p = &path[..];
        self.calls
            .call("access", p, |r| async move { r.access(p, mask).await })
            .await
    }

    // ----- invalidation (remote change notifications) -----

    /// Something changed at remote `path`: forget what is cached about it
    /// and about the names in its directory, and for a directory (which may
    /// have moved, and what is below it be reported by paths not known
    /// here) about every name below it. Returns the inode of `path` if
    /// known, so a frontend can invalidate its own caches too.
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
            self.ns.changed(parent, Change::NamesUnknown);
        }
        if let Some(ino) = ino {
            self.invalidate_inode(ino);
            self.ns.changed(ino, Change::NotifiedTree);
        }
        ino
    }

    /// Forgets cached attributes, listing and readahead data of `ino`.
    pub fn invalidate_inode(&self, ino: Ino) {
        self.ns.changed(ino, Change::Notified);
    }
}

/// For a removal whose first attempt may have been carried out: the name
/// being gone is what was asked for.
fn gone_is_done(result: yonder_remote::Result<()>) -> yonder_remote::Result<()> {
    match result {
        Err(e) if e.errno() == Errno::ENOENT => Ok(()),
        other => other,
    }
}

/// After a rename was cut off by a lost connection: done if the target now
/// is the source's file (`moved`, its identity when known); sent again if
/// the source is still there and is that file; otherwise unknown (EIO),
/// never a second rename of whatever the name holds now.
async fn resolve_rename(
    r: &dyn Remote,
    from: &[u8],
    to: &[u8],
    flags: RenameFlags,
    moved: Option<RemoteId>,
) -> yonder_remote::Result<()> {
    let unknown = || {
        tracing::warn!(
            "rename {} -> {}: the connection was lost with the rename in flight and the names do not tell \
             whether it was carried out (EIO)",
            display_path(from),
            display_path(to)
        );
        Err(RemoteError::os("rename", display_path(from), Errno::EIO))
    };
    let target = r.lstat(to).await;
    if let (Ok(attr), Some(id)) = (&target, moved) {
        if RemoteId::of(attr) == Some(id) {
            return Ok(());
        }
    }
    match r.lstat(from).await {
        Ok(attr) if moved.is_none() || RemoteId::of(&attr) == moved => r.rename(from, to, flags).await,
        Ok(_) => unknown(),
        // The source is gone and the target exists: carried out, as far as
        // names without identities can tell.
        Err(e) if e.errno() == Errno::ENOENT && moved.is_none() && target.is_ok() => Ok(()),
        Err(e) if e.is_connection_lost() => Err(e),
        Err(_) => unknown(),
    }
}

/// Longest file name the negative cache answers for; longer ones go to the
/// remote for its own error.
pub(crate) const NAME_MAX: usize = 255;
