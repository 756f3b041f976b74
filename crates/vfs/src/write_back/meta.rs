//! Metadata write-back: create, mkdir, symlink, unlink, rmdir and setattr
//! acknowledged once validated against the VFS's caches, then carried out
//! on the remote in the background, in order (`meta_order.rs`).
//!
//! At 20 ms of round trip an untar or an `rm -rf` spends nearly all its
//! time waiting for the remote to answer one call after another. Here each
//! such call is answered at once from what the mount knows (the kernel has
//! checked permissions, with `default_permissions`; the VFS checks that a
//! name to create is known absent, a name to remove known present, a
//! directory to remove known empty) and recorded in the journal; a task
//! sends it once the operations it depends on have settled, so dependent
//! operations never reorder while independent ones are in flight together.
//! Anything the caches cannot vouch for takes the synchronous path.
//!
//! A file created here has no remote handle until its creation is carried
//! out: its `OpenFile` waits for it (`open_files.rs`). The creation holds
//! back until the file is released (or someone waits for it, or
//! `write_delay` passes): a file created, written and closed before its
//! creation was sent (an untar's) travels as one operation: create, write,
//! close.
//!
//! An operation the remote refuses is never dropped: the error is logged,
//! published as [`VfsEvent::MetadataFailed`], kept for the inode (reported
//! at its next flush or fsync) and for the next sync of the whole mount
//! ([`MetaWriteBack::sync_all`], at unmount too). What the mount said about
//! the names involved is forgotten, so the remote's answer shows next.
//! After a lost connection, an operation cut off is resolved on the next one
//! as its synchronous form would be (`RemoteCalls::call_acknowledged`),
//! and those after it wait for it: the order survives reconnections.

use crate::attr::{Fh, FileAttr, FileKind, Ino};
use crate::cache_policy::Change;
use crate::calls::RemoteCalls;
use crate::error::{display_path, Result, VfsError};
use crate::events::{Events, VfsEvent};
use crate::handle::OpenFile;
use crate::journal::{Entry, Journal, MetaOp, Seq};
use crate::meta_order::{wait_all, MetaOrder, Pending};
use crate::namespace::Namespace;
use crate::open_files::OpenFiles;
use crate::sync::lock;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use yonder_proto::{file_type, Attr, Errno, SetTime, Target, Timespec};
use yonder_remote::RemoteError;

/// Data written to a file before its creation was sent, sent with it.
#[derive(Default)]
pub(crate) struct Fused {
    /// (offset, data), in the order written.
    pub pieces: Vec<(u64, Bytes)>,
    /// The journal entries of that data.
    pub seqs: Vec<Seq>,
}

impl Fused {
    fn append(&mut self, mut more: Fused) {
        self.pieces.append(&mut more.pieces);
        self.seqs.append(&mut more.seqs);
    }
}

/// A creation acknowledged and not sent yet.
#[derive(Default)]
struct CreateState {
    /// Its task has begun sending it: nothing more joins it.
    sent: bool,
    /// The file was released: the creation closes its handle itself after
    /// sending `data`.
    released: bool,
    data: Option<Fused>,
}

#[derive(Default)]
struct Failures {
    /// The first error of each inode not taken yet, and whether a close
    /// reported it: each close reports it (the closing process may not be
    /// the one that made the change: a child forked elsewhere closes its
    /// copy of the descriptor at exec) until an fsync takes it, or the
    /// last descriptor open then is released.
    by_ino: HashMap<Ino, (VfsError, bool)>,
    /// Errors not reported by a sync of the whole mount yet.
    unsynced: Vec<VfsError>,
    /// Every failure since the mount began.
    total: u64,
}

/// The metadata write-back of a VFS.
pub(crate) struct MetaWriteBack {
    order: Arc<MetaOrder>,
    journal: Arc<dyn Journal>,
    calls: Arc<RemoteCalls>,
    ns: Arc<Namespace>,
    files: Arc<OpenFiles>,
    events: Events,
    runtime: tokio::runtime::Handle,
    /// How long a creation waits for its file's close to gather its data.
    hold: Duration,
    creates: Mutex<HashMap<Fh, Arc<Mutex<CreateState>>>>,
    failures: Mutex<Failures>,
    /// What the remote's file system makes of a new directory and a new
    /// symlink (size, blocks, block size), learnt from its answers:
    /// a node created ahead shows the same before the remote has it.
    shapes: Mutex<Shapes>,
    me: Weak<MetaWriteBack>,
}

#[derive(Default)]
struct Shapes {
    dir: Option<(u64, u64, u32)>,
    /// Blocks and block size of a symlink, by whether its target is short.
    symlink: [Option<(u64, u32)>; 2],
}

/// Longest symlink target file systems keep in the inode (ext4: 59 bytes).
const SHORT_SYMLINK: u64 = 59;

/// What a [`MetaWriteBack`] is built from.
pub(crate) struct MetaParts {
    pub journal: Arc<dyn Journal>,
    pub calls: Arc<RemoteCalls>,
    pub ns: Arc<Namespace>,
    pub files: Arc<OpenFiles>,
    pub events: Events,
    pub runtime: tokio::runtime::Handle,
}

impl MetaWriteBack {
    pub fn new(parts: MetaParts, hold: Duration) -> Arc<MetaWriteBack> {
        Arc::new_cyclic(|me| MetaWriteBack {
            order: parts.calls.order().clone(),
            journal: parts.journal,
            calls: parts.calls,
            ns: parts.ns,
            files: parts.files,
            events: parts.events,
            runtime: parts.runtime,
            hold,
            creates: Mutex::default(),
            failures: Mutex::default(),
            shapes: Mutex::default(),
            me: me.clone(),
        })
    }

    /// Acknowledges `op` on `ino` (already validated and applied to the
    /// caches by the caller) and starts sending it in order.
    pub fn submit(&self, ino: Ino, op: MetaOp) {
        let (seq, pending, before) = self.acknowledge(ino, &op);
        self.start(ino, seq, op, pending, before, None);
    }

    /// Acknowledges the creation `op` of `ino` and registers its open file
    /// (opened with `flags`), which gets its remote handle once the
    /// creation is carried out.
    pub fn create(&self, ino: Ino, op: MetaOp, flags: u32) -> Arc<OpenFile> {
        let (seq, pending, before) = self.acknowledge(ino, &op);
        let file = self.files.register_created(ino, flags, pending.clone());
        let state = Arc::new(Mutex::new(CreateState::default()));
        lock(&self.creates).insert(file.fh, state.clone());
        self.start(ino, seq, op, pending, before, Some((file.clone(), state)));
        file
    }

    fn acknowledge(&self, ino: Ino, op: &MetaOp) -> (Seq, Arc<Pending>, Vec<Arc<Pending>>) {
        let seq = self.journal.record(Entry::Meta { ino, op: op.clone() });
        let (pending, before) = self.order.enqueue(op.path(), ino);
        (seq, pending, before)
    }

    fn start(
        &self,
        ino: Ino,
        seq: Seq,
        op: MetaOp,
        pending: Arc<Pending>,
        before: Vec<Arc<Pending>>,
        create: Option<(Arc<OpenFile>, Arc<Mutex<CreateState>>)>,
    ) {
        let me = self.me.clone();
        self.runtime.spawn(async move {
            for earlier in before {
                earlier.done().await;
            }
            let Some(meta) = me.upgrade() else { return };
            let mut seqs = vec![seq];
            let result = match create {
                Some((file, state)) => meta.send_create(&op, &file, &state, &pending, &mut seqs).await,
                None => meta.send(ino, &op).await,
            };
            let settled = result.is_ok();
            if let Err(err) = result {
                meta.failed(ino, &op, err);
            }
            // Before it counts as settled, so whoever waits for it asks
            // for the times the remote gave.
            if settled {
                meta.settled(ino, &op, &pending);
            }
            meta.journal.confirm(&seqs);
            meta.order.finish(&pending);
        });
    }

    /// `op` was carried out: the times estimated here when it was
    /// acknowledged (a directory's mtime and ctime, a node's ctime) are
    /// close to the remote's but not equal, so once nothing more is pending
    /// on them they are asked again rather than kept for a whole TTL.
    fn settled(&self, ino: Ino, op: &MetaOp, own: &Arc<Pending>) {
        let path = op.path();
        let parent_path = match path.iter().rposition(|b| *b == b'/') {
            Some(i) => &path[..i],
            None => &b""[..],
        };
        let removed = matches!(op, MetaOp::Unlink { .. } | MetaOp::Rmdir { .. });
        if !removed && self.order.is_quiet_at_but(path, own) {
            self.ns.changed(ino, Change::Entries);
        }
        if !matches!(op, MetaOp::Setattr { .. }) && self.order.is_quiet_at_but(parent_path, own) {
            let parent = self.ns.table().resolve(parent_path);
            if let Some(parent) = parent {
                self.ns.changed(parent, Change::Entries);
            }
        }
    }

    /// Whether `fh` is a file whose creation has not been sent yet: its
    /// close need not wait for anything.
    /// Whether `fh` was opened by a creation acknowledged ahead of the
    /// remote (sent or not): its release goes through [`Self::released`].
    pub fn tracks_create(&self, fh: Fh) -> bool {
        lock(&self.creates).contains_key(&fh)
    }

    pub fn unsent_create(&self, fh: Fh) -> bool {
        lock(&self.creates)
            .get(&fh)
            .is_some_and(|state| !lock(state).sent)
    }

    /// The release of `file`: a creation not sent yet takes the file's
    /// buffered data (`take`) and closes the handle itself. Whether it
    /// does (the caller must not close the handle then).
    pub fn released(&self, file: &OpenFile, take: impl FnOnce() -> Option<Fused>) -> bool {
        let Some(state) = lock(&self.creates).remove(&file.fh) else {
            return false;
        };
        let mut state = lock(&state);
        if state.sent {
            return false;
        }
        match take() {
            Some(more) => {
                state.data.get_or_insert_with(Fused::default).append(more);
                state.released = true;
            }
            // Data on its way by itself: the handle stays for it, closed
            // once it has landed (`close_after_writes`).
            None => state.released = false,
        }
        let closes_itself = state.released;
        drop(state);
        if let Some(created) = &file.created {
            created.hurry();
        }
        closes_itself
    }

    /// Moves `file`'s buffered data (`take`) into its creation, if that has
    /// not been sent: an operation acknowledged after it (futimens, fchmod)
    /// then lands after the data too. False if it could not.
    pub fn fuse(&self, file: &OpenFile, take: impl FnOnce() -> Option<Fused>) -> bool {
        let Some(state) = lock(&self.creates).get(&file.fh).cloned() else {
            return false;
        };
        let mut state = lock(&state);
        if state.sent {
            return false;
        }
        match take() {
            Some(more) => {
                state.data.get_or_insert_with(Fused::default).append(more);
                true
            }
            None => false,
        }
    }

    async fn send_create(
        &self,
        op: &MetaOp,
        file: &Arc<OpenFile>,
        state: &Mutex<CreateState>,
        pending: &Pending,
        seqs: &mut Vec<Seq>,
    ) -> Result<()> {
        let MetaOp::Create {
            path,
            mode,
            flags,
            owner,
        } = op
        else {
            unreachable!("a create")
        };
        if !lock(state).released {
            // Gather the file's data and close, unless someone needs it now.
            let _ = tokio::time::timeout(self.hold, pending.hurried()).await;
        }
        let (released, fused) = {
            let mut state = lock(state);
            state.sent = true;
            (state.released, state.data.take())
        };
        lock(&self.creates).remove(&file.fh);
        let p = &path[..];
        let (flags, mode, owner) = (*flags, *mode, *owner);
        let exclusive = flags & yonder_proto::open_flags::EXCLUSIVE != 0;
        let ((handle, attr), _, generation) = self
            .calls
            .call_acknowledged(
                "create",
                p,
                |r| async move { r.open(p, flags, mode, owner).await },
                |r| async move {
                    match r.open(p, flags, mode, owner).await {
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
        self.ns.table().identify(file.ino, &attr);
        self.files.install_handle(file, handle, generation);
        let fused = match fused {
            Some(fused) if released => fused,
            // Data fused while the file stayed open: written through the
            // handle the file keeps.
            Some(fused) => {
                seqs.extend(&fused.seqs);
                for (offset, data) in fused.pieces {
                    self.write_through(file, p, offset, data).await?;
                }
                return Ok(());
            }
            None => return Ok(()),
        };
        seqs.extend(&fused.seqs);
        let mut sent = Ok(());
        for (offset, data) in fused.pieces {
            sent = self.write_through(file, p, offset, data).await;
            if sent.is_err() {
                break;
            }
        }
        self.files.close_released(file);
        sent
    }

    /// Writes `data` at `offset` through `file`'s handle, reopened on the
    /// next connection if this one is lost (a positioned write may land
    /// twice).
    async fn write_through(
        &self,
        file: &OpenFile,
        path: &[u8],
        mut offset: u64,
        mut rest: Bytes,
    ) -> Result<()> {
        while !rest.is_empty() {
            let chunk = rest.slice(..rest.len().min(yonder_proto::MAX_IO_SIZE as usize));
            let sent = self
                .files
                .call_handle_in_order(file, "write", |remote, handle| {
                    let chunk = chunk.clone();
                    async move { remote.write(handle, offset, chunk).await }
                })
                .await? as usize;
            if sent == 0 {
                return Err(VfsError::new("write", display_path(path), Errno::EIO));
            }
            rest = rest.slice(sent.min(rest.len())..);
            offset += sent as u64;
        }
        Ok(())
    }

    /// Carries out `op` (not a creation of a regular file).
    async fn send(&self, ino: Ino, op: &MetaOp) -> Result<()> {
        let Some(attr) = carry_out(&self.calls, op, false).await? else {
            return Ok(());
        };
        match op {
            MetaOp::Mkdir { .. } => {
                lock(&self.shapes).dir = Some((attr.size, attr.blocks, attr.blksize));
            }
            MetaOp::Symlink { .. } => {
                lock(&self.shapes).symlink[usize::from(attr.size <= SHORT_SYMLINK)] =
                    Some((attr.blocks, attr.blksize));
            }
            _ => {}
        }
        self.ns.table().identify(ino, &attr);
        Ok(())
    }

    /// `op` on `ino` was acknowledged and the remote refused it.
    fn failed(&self, ino: Ino, op: &MetaOp, err: VfsError) {
        let path = display_path(op.path());
        tracing::warn!(
            "{} {path}: acknowledged, then refused by the remote: {err}; reported at the file's next close \
             or fsync and at the next sync",
            op.name()
        );
        self.events.emit(VfsEvent::MetadataFailed {
            ino,
            op: op.name(),
            path,
            error: err.to_string(),
        });
        {
            let mut failures = lock(&self.failures);
            failures.by_ino.entry(ino).or_insert_with(|| (err.clone(), false));
            failures.unsynced.push(err);
            failures.total += 1;
        }
        // What the mount said about the names involved is not what the
        // remote holds.
        let parent_path = match op.path().iter().rposition(|b| *b == b'/') {
            Some(i) => &op.path()[..i],
            None => &b""[..],
        };
        let parent = self.ns.table().resolve(parent_path);
        if let Some(parent) = parent {
            self.ns.changed(parent, Change::NamesUnknown);
            self.ns.changed(parent, Change::Notified);
        }
        self.ns.changed(ino, Change::Notified);
    }

    /// The first error of an operation on `ino` not taken yet, taken
    /// (fsync).
    pub fn take_error(&self, ino: Ino) -> Option<VfsError> {
        lock(&self.failures).by_ino.remove(&ino).map(|(err, _)| err)
    }

    /// The first error of an operation on `ino` not taken yet, for a
    /// close: reported, and kept.
    pub fn error_for_close(&self, ino: Ino) -> Option<VfsError> {
        let mut failures = lock(&self.failures);
        let (err, reported) = failures.by_ino.get_mut(&ino)?;
        *reported = true;
        Some(err.clone())
    }

    /// The last descriptor of `ino` open was released: an error a close
    /// reported is done with (one not reported yet waits for the next).
    pub fn closed_for_good(&self, ino: Ino) {
        let mut failures = lock(&self.failures);
        if failures.by_ino.get(&ino).is_some_and(|(_, reported)| *reported) {
            failures.by_ino.remove(&ino);
        }
    }

    /// Failures since the mount began, and operations not settled yet.
    pub fn counts(&self) -> (u64, usize) {
        (lock(&self.failures).total, self.order.len())
    }

    /// Waits for every operation acknowledged so far (until `deadline`:
    /// EIO past it, the operations staying queued), then returns the first
    /// failure not reported by a sync yet.
    pub async fn sync_all(&self, op: &'static str, deadline: Option<Instant>) -> Result<()> {
        wait_all(self.order.all(), deadline).await.map_err(|()| {
            VfsError::new(
                op,
                format!("{} metadata operations not confirmed in time", self.order.len()),
                Errno::EIO,
            )
        })?;
        let mut failures = lock(&self.failures);
        let first = failures.unsynced.drain(..).next();
        first.map_or(Ok(()), Err)
    }
}

/// Carries out `op` (not a creation of a regular file) on the remote,
/// resolved as its synchronous form would be after a lost connection.
/// `sent_before`: an earlier process may have carried it out already (a
/// replay after a restart), so its first attempt is resolved too. The
/// node's attributes, for a node it makes.
pub(crate) async fn carry_out(calls: &RemoteCalls, op: &MetaOp, sent_before: bool) -> Result<Option<Attr>> {
    let name = op.name();
    let p = op.path();
    match op {
        MetaOp::Create { .. } => unreachable!("a creation is sent with its data"),
        MetaOp::Mkdir { mode, owner, .. } => {
            let (mode, owner) = (*mode, *owner);
            let (attr, _, _) = calls
                .call_acknowledged(
                    name,
                    p,
                    |r| mkdir(r, p, mode, owner, sent_before),
                    |r| mkdir(r, p, mode, owner, true),
                )
                .await?;
            Ok(Some(attr))
        }
        MetaOp::Symlink { target, owner, .. } => {
            let (target, owner) = (&target[..], *owner);
            let (attr, _, _) = calls
                .call_acknowledged(
                    name,
                    p,
                    |r| symlink(r, target, p, owner, sent_before),
                    |r| symlink(r, target, p, owner, true),
                )
                .await?;
            Ok(Some(attr))
        }
        MetaOp::Unlink { .. } => {
            calls
                .call_acknowledged(
                    name,
                    p,
                    |r| async move { gone_is_done(r.unlink(p).await, sent_before) },
                    |r| async move { gone_is_done(r.unlink(p).await, true) },
                )
                .await?;
            Ok(None)
        }
        MetaOp::Rmdir { .. } => {
            calls
                .call_acknowledged(
                    name,
                    p,
                    |r| async move { gone_is_done(r.rmdir(p).await, sent_before) },
                    |r| async move { gone_is_done(r.rmdir(p).await, true) },
                )
                .await?;
            Ok(None)
        }
        MetaOp::Setattr { attr, .. } => {
            // Absolute values: setting them again is harmless.
            let call = |r: Arc<dyn yonder_remote::Remote>| {
                let attr = attr.clone();
                async move { r.setattr(Target::Path(p.to_vec().into()), attr).await }
            };
            calls.call_acknowledged(name, p, call, call).await?;
            Ok(None)
        }
    }
}

/// mkdir; with `exists_ok` (it may have been carried out), a directory
/// already there is what was asked for.
async fn mkdir(
    r: Arc<dyn yonder_remote::Remote>,
    p: &[u8],
    mode: u32,
    owner: Option<yonder_proto::Owner>,
    exists_ok: bool,
) -> yonder_remote::Result<Attr> {
    match r.mkdir(p, mode, owner).await {
        Err(e) if exists_ok && e.errno() == Errno::EEXIST => match r.lstat(p).await {
            Ok(attr) if attr.is_dir() => Ok(attr),
            // The question is asked again on the next connection, not
            // taken for the answer.
            Err(lost) if lost.is_connection_lost() => Err(lost),
            _ => Err(e),
        },
        other => other,
    }
}

/// symlink; with `exists_ok`, a symlink already there with the same
/// target is what was asked for.
async fn symlink(
    r: Arc<dyn yonder_remote::Remote>,
    target: &[u8],
    p: &[u8],
    owner: Option<yonder_proto::Owner>,
    exists_ok: bool,
) -> yonder_remote::Result<Attr> {
    match r.symlink(target, p, owner).await {
        Err(e) if exists_ok && e.errno() == Errno::EEXIST => match r.readlink(p).await {
            Ok(content) if content == target => r.lstat(p).await,
            Err(lost) if lost.is_connection_lost() => Err(lost),
            _ => Err(e),
        },
        other => other,
    }
}

/// For a removal that may have been carried out (`maybe_done`): the name
/// being gone is what was asked for.
fn gone_is_done(result: yonder_remote::Result<()>, maybe_done: bool) -> yonder_remote::Result<()> {
    match result {
        Err(e) if maybe_done && e.errno() == Errno::ENOENT => Ok(()),
        other => other,
    }
}

impl MetaWriteBack {
    /// Attributes of a node created here ahead of the remote: what the
    /// remote will give it, as far as the mount can tell (its number is the
    /// VFS's own until the remote's is known). `size`: a symlink's target
    /// length.
    pub fn new_node_attr(&self, mode: u32, owner: yonder_proto::Owner, size: u64) -> Attr {
        let mut attr = new_node_attr(mode, owner, size);
        let shapes = lock(&self.shapes);
        match mode & file_type::MASK {
            file_type::DIRECTORY => {
                if let Some((size, blocks, blksize)) = shapes.dir {
                    (attr.size, attr.blocks, attr.blksize) = (size, blocks, blksize);
                }
            }
            file_type::SYMLINK => {
                if let Some((blocks, blksize)) = shapes.symlink[usize::from(size <= SHORT_SYMLINK)] {
                    (attr.blocks, attr.blksize) = (blocks, blksize);
                }
            }
            _ => {}
        }
        attr
    }
}

fn new_node_attr(mode: u32, owner: yonder_proto::Owner, size: u64) -> Attr {
    let now = now();
    let is_dir = mode & file_type::MASK == file_type::DIRECTORY;
    Attr {
        ino: 0,
        mode,
        nlink: if is_dir { 2 } else { 1 },
        uid: owner.uid,
        gid: owner.gid,
        rdev_major: 0,
        rdev_minor: 0,
        size,
        blocks: 0,
        blksize: 4096,
        atime: now,
        mtime: now,
        ctime: now,
        dev: 0,
        btime: None,
    }
}

/// `attr` after `change` (no truncation), as the remote will make it.
pub(crate) fn changed_attr(mut attr: FileAttr, change: &yonder_proto::SetAttr) -> FileAttr {
    let now = now();
    if let Some(mode) = change.mode {
        attr.perm = mode & 0o7777;
    }
    if let Some(uid) = change.uid {
        attr.uid = uid;
    }
    if let Some(gid) = change.gid {
        attr.gid = gid;
    }
    let set = |time: SetTime, old: Timespec| match time {
        SetTime::Omit => old,
        SetTime::Now => now,
        SetTime::Set(t) => t,
    };
    attr.atime = set(change.atime, attr.atime);
    attr.mtime = set(change.mtime, attr.mtime);
    attr.ctime = now;
    if change.mode.is_none()
        && attr.kind != FileKind::Directory
        && (change.uid.is_some() || change.gid.is_some())
    {
        // chown clears set-user-ID, and set-group-ID of a group-executable
        // file, as the remote kernel will.
        attr.perm &= if attr.perm & 0o010 != 0 { !0o6000 } else { !0o4000 };
    }
    attr
}

/// `attr` of a directory after a name in it was added or removed
/// (`subdirs`: directories added, or removed if negative).
pub(crate) fn entries_attr(mut attr: FileAttr, subdirs: i64) -> FileAttr {
    let now = now();
    attr.mtime = now;
    attr.ctime = now;
    attr.nlink = attr.nlink.saturating_add_signed(subdirs);
    attr
}

/// `attr` of a regular file after a write ending at `end`.
pub(crate) fn written_attr(mut attr: FileAttr, end: u64) -> FileAttr {
    let now = now();
    attr.size = attr.size.max(end);
    attr.blocks = attr.size.div_ceil(512);
    attr.mtime = now;
    attr.ctime = now;
    attr
}

fn now() -> Timespec {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timespec {
        sec: since.as_secs() as i64,
        nsec: since.subsec_nanos(),
    }
}
