//! Write-back: write coalescing, writes in flight, the journal of writes
//! not yet confirmed and their replay on a new connection.
//!
//! Applications (and the kernel without writeback caching) write in small
//! pieces; each piece sent alone costs a round trip. A handle's sequential
//! writes are gathered here and sent as one request. The buffer and the
//! writes in flight belong to the inode (an [`InodeIo`] kept here, keyed by
//! inode), not to one handle: writes reach the remote in the order
//! applications made them, across all descriptors and processes.
//!
//! The buffer is sent when a write does not continue it, when it is full,
//! before any read or attribute query of the same inode, on flush, fsync and
//! release, and `write_delay` after it started filling. An error from a send
//! nobody waits for is kept in `WriteState::errors` and reported by the next
//! write, flush or fsync of the handle: write errors are never dropped. A
//! flush (a close) reports it and keeps it, as any process that inherited
//! the descriptor may be the one closing; a write or fsync consumes it.
//!
//! Every write is recorded in the journal (`journal.rs`) before `write`
//! returns, and stays there until the agent confirms it: a write an
//! application was told succeeded is replayed on the next connection if
//! the one it was sent on is lost (`replay.rs`).
//!
//! Sends are asynchronous: a full buffer, or a write as large as the
//! buffer, becomes a batch sent by a task of its own (`batches.rs`) and
//! tracked in `WriteState::in_flight`; the `write` returns at once, so a
//! sequential writer keeps several requests on the wire instead of waiting
//! a round trip per megabyte. A batch waits for the batches of its inode it
//! overlaps (all of them, for an append) before it is sent: the agent runs
//! requests concurrently, so only disjoint writes may race. At most
//! [`MAX_WRITES_IN_FLIGHT`] are in flight per inode; a write beyond that
//! waits for the oldest (until its operation's deadline, then EIO: while
//! the connection is down, an inode holds at most that many batches plus
//! its buffer). Flush, fsync, release, and any read or attribute query of
//! the inode wait for all of them (flush and fsync answer EIO at the
//! deadline, the writes staying queued), and their errors land in the same
//! slot as before.

mod batches;
mod buffer;
pub(crate) mod meta;
pub(crate) mod recovery;
mod replay;

use crate::attr::{Fh, Ino};
use crate::cache_policy::Change;
use crate::calls::RemoteCalls;
use crate::connection::Generation;
use crate::error::{Result, VfsError};
use crate::events::Events;
use crate::handle::OpenFile;
use crate::journal::{Entry, Journal, Seq};
use crate::namespace::Namespace;
use crate::open_files::OpenFiles;
use crate::sync::lock;
use batches::{Batch, Batches};
use buffer::{InFlight, InodeIo, WriteState, Writer, MAX_WRITES_IN_FLIGHT};
use bytes::Bytes;
use meta::Fused;
use replay::Replay;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use yonder_proto::{open_flags as of, Errno};

/// An inode's write state, and how many open files of the inode use it.
struct Attached {
    io: Arc<InodeIo>,
    files: usize,
}

/// The write-back of a VFS.
pub(crate) struct WriteBack {
    /// Per-inode write state, while the inode has open files.
    inodes: Mutex<HashMap<Ino, Attached>>,
    /// Writes acknowledged and not yet confirmed by the agent, in order.
    journal: Arc<dyn Journal>,
    /// The batches those writes are sent in, until settled.
    batches: Arc<Batches>,
    /// Their replay on the newest connection.
    replay: Arc<Replay>,
    files: Arc<OpenFiles>,
    ns: Arc<Namespace>,
    calls: Arc<RemoteCalls>,
    /// Where sends run: some writes come from frontend threads outside
    /// the runtime.
    runtime: tokio::runtime::Handle,
    write_buffer: usize,
    write_delay: Duration,
    op_timeout: Duration,
    /// For tasks that outlive a call (delayed flushes, batches, replays).
    me: Weak<WriteBack>,
}

/// What a [`WriteBack`] is built from.
pub(crate) struct WriteBackParts {
    pub journal: Arc<dyn Journal>,
    pub files: Arc<OpenFiles>,
    pub ns: Arc<Namespace>,
    pub calls: Arc<RemoteCalls>,
    pub events: Events,
    pub runtime: tokio::runtime::Handle,
}

impl WriteBack {
    pub fn new(parts: WriteBackParts, opts: &crate::options::VfsOptions) -> Arc<WriteBack> {
        let batches = Batches::new(
            parts.journal.clone(),
            parts.files.clone(),
            parts.ns.clone(),
            parts.calls.clone(),
            parts.runtime.clone(),
            parts.events.clone(),
        );
        let replay = Replay::new(
            batches.clone(),
            parts.files.clone(),
            parts.ns.clone(),
            parts.calls.clone(),
            parts.events.clone(),
            parts.runtime.clone(),
        );
        Arc::new_cyclic(|me| WriteBack {
            inodes: Mutex::default(),
            journal: parts.journal,
            batches,
            replay,
            files: parts.files,
            ns: parts.ns,
            calls: parts.calls,
            runtime: parts.runtime,
            write_buffer: opts.write_buffer,
            write_delay: opts.write_delay,
            op_timeout: opts.op_timeout,
            me: me.clone(),
        })
    }

    // ----- per-inode state -----

    /// An open file of `ino` was registered: it shares the inode's write
    /// state with the inode's other open files.
    pub fn attach(&self, ino: Ino) {
        lock(&self.inodes)
            .entry(ino)
            .or_insert_with(|| Attached {
                io: Arc::default(),
                files: 0,
            })
            .files += 1;
    }

    /// An open file of `ino` was released (its buffered writes sent, or
    /// left to a delayed flush that holds the state).
    pub fn detach(&self, ino: Ino) {
        let mut inodes = lock(&self.inodes);
        if let Some(attached) = inodes.get_mut(&ino) {
            attached.files -= 1;
            if attached.files == 0 {
                inodes.remove(&ino);
            }
        }
    }

    fn io_of(&self, ino: Ino) -> Option<Arc<InodeIo>> {
        lock(&self.inodes).get(&ino).map(|a| a.io.clone())
    }

    /// Whether `ino` has writes buffered or in flight: the remote's size
    /// and data lag behind.
    pub fn is_dirty(&self, ino: Ino) -> bool {
        lock(&self.inodes).get(&ino).is_some_and(|a| a.io.is_dirty())
    }

    /// The inode's write-back lock, waited for until `deadline`.
    async fn lock_io<'a>(
        &self,
        io: &'a InodeIo,
        ino: Ino,
        op: &'static str,
        deadline: Instant,
    ) -> Result<tokio::sync::MutexGuard<'a, WriteState>> {
        tokio::time::timeout_at(deadline, io.state.lock())
            .await
            .map_err(|_| self.not_confirmed(op, ino))
    }

    /// The write state of `file`'s inode; EBADF once the file is released.
    fn io_of_file(&self, op: &'static str, file: &OpenFile) -> Result<Arc<InodeIo>> {
        self.io_of(file.ino)
            .ok_or_else(|| VfsError::new(op, format!("<handle {}>", file.fh), Errno::EBADF))
    }

    /// EIO for an operation whose writes were not confirmed by its
    /// deadline (they stay queued, and are sent once the connection is
    /// back).
    fn not_confirmed(&self, op: &'static str, ino: Ino) -> VfsError {
        let path = self.ns.describe(ino);
        tracing::debug!(
            "{op} {path}: writes not confirmed within the operation timeout ({:.0} s); they stay queued",
            self.op_timeout.as_secs_f64()
        );
        VfsError::new(op, path, Errno::EIO)
    }

    // ----- sending -----

    /// Sends the buffered writes of `ino` and waits for those in flight
    /// (until the operation's deadline). Errors stay with the handle that
    /// wrote, reported by its next write, flush or fsync.
    pub async fn flush_inode(&self, ino: Ino) {
        let Some(io) = self.io_of(ino) else { return };
        if !io.is_dirty() {
            return;
        }
        // The handle data goes out through when its writer's is gone.
        let Some(file) = self.files.files_of(ino).into_iter().next() else {
            return;
        };
        let deadline = self.calls.deadline();
        let Ok(mut st) = self.lock_io(&io, ino, "flush", deadline).await else {
            return;
        };
        let _ = self.send_all(&file, &io, &mut st, Some(deadline)).await;
        drop(st);
        // Attributes cached while the data was still buffered here (a
        // lookup or listing meanwhile) show the old size and times.
        self.ns.changed(ino, Change::Flushed);
    }

    /// Sends the inode's buffer and waits for every write of the inode in
    /// flight; returns (and clears) `file`'s first unreported write error.
    /// `op` names the operation for its errors.
    pub async fn send_pending(&self, file: &Arc<OpenFile>, op: &'static str) -> Result<()> {
        let io = self.io_of_file(op, file)?;
        let mut st = self.lock_io(&io, file.ino, op, self.calls.deadline()).await?;
        self.send_buffer(file, &io, &mut st, op, Report::Consume).await
    }

    /// [`WriteBack::send_at_close`] when it has nothing to wait for: the
    /// inode's write-back is free, with nothing gathered and nothing in
    /// flight. `None` when it must wait.
    pub fn close_ready(&self, file: &Arc<OpenFile>) -> Option<Result<()>> {
        let io = match self.io_of_file("flush", file) {
            Ok(io) => io,
            Err(e) => return Some(Err(e)),
        };
        let mut st = io.state.try_lock().ok()?;
        if !st.buf.is_empty() || !st.in_flight.is_empty() {
            return None;
        }
        Some(st.error_for_close(file.fh).map_or(Ok(()), Err))
    }

    /// [`WriteBack::release`] when it has nothing to wait for (as
    /// [`WriteBack::close_ready`]); whether it was done.
    pub fn release_ready(&self, file: &Arc<OpenFile>) -> bool {
        if let Some(io) = self.io_of(file.ino) {
            let Ok(mut st) = io.state.try_lock() else {
                return false;
            };
            if !st.buf.is_empty() || !st.in_flight.is_empty() {
                return false;
            }
            if let Some(err) = st.take_unreported(file.fh) {
                tracing::warn!("write error lost at release: {err}");
            }
        }
        self.detach(file.ino);
        true
    }

    /// [`WriteBack::send_pending`] for a close of one of `file`'s
    /// descriptors: its error is reported and kept.
    pub async fn send_at_close(&self, file: &Arc<OpenFile>) -> Result<()> {
        let io = self.io_of_file("flush", file)?;
        let mut st = self
            .lock_io(&io, file.ino, "flush", self.calls.deadline())
            .await?;
        self.send_buffer(file, &io, &mut st, "flush", Report::AtClose)
            .await
    }

    async fn send_buffer(
        &self,
        file: &Arc<OpenFile>,
        io: &InodeIo,
        st: &mut WriteState,
        op: &'static str,
        report: Report,
    ) -> Result<()> {
        self.send_all(file, io, st, Some(self.calls.deadline()))
            .await
            .map_err(|_| self.not_confirmed(op, file.ino))?;
        let kept = match report {
            Report::Consume => st.take_error(file.fh),
            Report::AtClose => st.error_for_close(file.fh),
            Report::AtRelease => st.take_unreported(file.fh),
        };
        kept.map_or(Ok(()), Err)
    }

    /// Sends the inode's buffer and waits for every write in flight (until
    /// `deadline`: `Err(())` if they are not all settled by then); errors
    /// stay with the handles that wrote.
    async fn send_all(
        &self,
        file: &Arc<OpenFile>,
        io: &InodeIo,
        st: &mut WriteState,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), ()> {
        self.queue_buffered(file, io, st);
        self.drain_writes(file.ino, io, st, deadline).await
    }

    /// Starts a remote write of the inode's gathered data, if any, and
    /// empties the buffer.
    fn queue_buffered(&self, file: &Arc<OpenFile>, io: &InodeIo, st: &mut WriteState) {
        if let Some(taken) = st.buf.take() {
            self.queue_write(
                file,
                io,
                st,
                taken.writer,
                taken.offset,
                Bytes::from(taken.data),
                taken.seqs,
            );
        }
    }

    /// Starts a remote write of `writer`'s data (journal entries `seqs`)
    /// without waiting for it. Its error, like that of any write in
    /// flight, is kept for `writer`.
    #[allow(clippy::too_many_arguments)]
    fn queue_write(
        &self,
        file: &Arc<OpenFile>,
        io: &InodeIo,
        st: &mut WriteState,
        writer: Writer,
        offset: u64,
        data: Bytes,
        seqs: Vec<Seq>,
    ) {
        io.set_dirty(true);
        // The writer's own handle: `file` itself, or another open file of
        // the inode (a writer's data is sent before it is released).
        let owner = if writer.fh == file.fh {
            file.clone()
        } else {
            self.files.get(writer.fh).unwrap_or_else(|| file.clone())
        };
        let batch = Arc::new(Batch::new(seqs, owner, offset, data, writer.append));
        let task = self.batches.send(batch);
        st.in_flight.push_back(InFlight { fh: writer.fh, task });
        // A readahead that raced the write may hold old data.
        self.ns.changed(file.ino, Change::DataSent);
    }

    /// Waits for every write of the inode in flight, until `deadline`.
    async fn drain_writes(
        &self,
        ino: Ino,
        io: &InodeIo,
        st: &mut WriteState,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), ()> {
        let had = !st.in_flight.is_empty();
        let mut result = Ok(());
        while let Some(oldest) = st.in_flight.front_mut() {
            let joined = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, &mut oldest.task).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        result = Err(());
                        break;
                    }
                },
                None => (&mut oldest.task).await,
            };
            let done = st.in_flight.pop_front().expect("in flight");
            settle(st, done.fh, joined);
        }
        if st.buf.is_empty() && st.in_flight.is_empty() {
            io.set_dirty(false);
        }
        if had {
            // Attributes fetched while the data was on its way (a rename
            // or unlink looking a name up meanwhile) show the old size and
            // times; those cached before were dropped by the writes. Data
            // read ahead meanwhile is older too.
            self.ns.changed(ino, Change::WritesLanded);
        }
        result
    }

    /// Collects the writes in flight that are done, without waiting.
    fn reap_writes(&self, ino: Ino, io: &InodeIo, st: &mut WriteState) {
        let mut reaped = false;
        while st.in_flight.front().is_some_and(|w| w.task.is_finished()) {
            let done = st.in_flight.pop_front().expect("in flight");
            let joined = futures_now(done.task);
            settle(st, done.fh, joined);
            reaped = true;
        }
        if reaped {
            // As in `drain_writes`: what was fetched meanwhile is older.
            self.ns.changed(ino, Change::WritesLanded);
        }
        if st.buf.is_empty() && st.in_flight.is_empty() {
            io.set_dirty(false);
        }
    }

    // ----- writing -----

    /// [`crate::Vfs::write`] when it needs no wait: `data` continues the
    /// inode's write buffer and does not fill it, the handle is not
    /// O_SYNC, the connection is not gone, and nobody holds the inode's
    /// write-back (a send, a flush). The data is copied from the caller's
    /// buffer into the journal and into the write buffer, without a task.
    /// `None` when [`WriteBack::write_bytes`] must do it. Never waits.
    ///
    /// A write taken here may go ahead of an earlier one still waiting for
    /// the write-back lock: both were in flight at once, so the application
    /// cannot have ordered them (it had no answer to the first yet).
    pub fn write_ready(&self, file: &Arc<OpenFile>, offset: u64, data: &[u8]) -> Option<Result<u32>> {
        let max = self.write_buffer;
        if file.flags & (of::SYNC | of::DSYNC) != 0 || data.len() >= max {
            return None;
        }
        // While the connection is gone, write_bytes answers (or waits).
        if self.calls.usable().is_err() {
            return None;
        }
        let me = Writer::of(file);
        let io = self.io_of(file.ino)?;
        let mut st = io.state.try_lock().ok()?;
        if !st.buf.continues(&me, offset) || st.buf.len() + data.len() >= max {
            return None;
        }
        self.ns.changed(file.ino, Change::Written);
        if let Some(err) = st.take_error(file.fh) {
            return Some(Err(err));
        }
        // Journaled before the write is acknowledged, as in write_bytes:
        // the journal's copy is what a replay sends.
        let journaled = Bytes::copy_from_slice(data);
        let seq = self.journal.record(Entry::Write {
            ino: file.ino,
            fh: file.fh,
            path: self.ns.table().path(file.ino),
            offset,
            data: journaled,
            append: me.append,
        });
        let was_empty = st.buf.is_empty();
        st.buf.push(me, offset, data, seq);
        io.set_dirty(true);
        if was_empty {
            self.schedule_flush(file.clone(), io.clone(), st.buf.generation());
        }
        Some(Ok(data.len() as u32))
    }

    /// [`crate::Vfs::write`] of data the caller already owns: a write too
    /// large to gather, or an O_SYNC one, is sent as it is, without a copy.
    pub async fn write_bytes(&self, file: &Arc<OpenFile>, offset: u64, data: Bytes) -> Result<u32> {
        if let Err(why) = self.calls.usable() {
            return Err(self
                .calls
                .unavailable("write", self.ns.describe(file.ino).as_bytes(), why));
        }
        let io = self.io_of_file("write", file)?;
        self.ns.changed(file.ino, Change::Written);
        let max = self.write_buffer;
        let me = Writer::of(file);
        let deadline = self.calls.deadline();
        let mut st = self.lock_io(&io, file.ino, "write", deadline).await?;
        // Room for one more batch: while the connection is down, the
        // inode's writes stop being acknowledged here.
        while st.in_flight.len() >= MAX_WRITES_IN_FLIGHT {
            let oldest = st.in_flight.front_mut().expect("in flight");
            let joined = tokio::time::timeout_at(deadline, &mut oldest.task)
                .await
                .map_err(|_| self.not_confirmed("write", file.ino))?;
            let done = st.in_flight.pop_front().expect("in flight");
            settle(&mut st, done.fh, joined);
        }
        if let Some(err) = st.take_error(file.fh) {
            return Err(err);
        }
        let len = data.len() as u32;
        let seq = self.journal.record(Entry::Write {
            ino: file.ino,
            fh: file.fh,
            path: self.ns.table().path(file.ino),
            offset,
            data: data.clone(),
            append: me.append,
        });
        let sync = file.flags & (of::SYNC | of::DSYNC) != 0;
        if sync {
            // O_SYNC/O_DSYNC: the data is on the remote when write returns.
            self.queue_buffered(file, &io, &mut st);
            self.queue_write(file, &io, &mut st, me, offset, data, vec![seq]);
            self.drain_writes(file.ino, &io, &mut st, Some(deadline))
                .await
                .map_err(|_| self.not_confirmed("write", file.ino))?;
            return match st.take_error(file.fh) {
                Some(err) => Err(err),
                None => Ok(len),
            };
        }
        if !st.buf.continues(&me, offset) || st.buf.len() + data.len() > max {
            self.queue_buffered(file, &io, &mut st);
        }
        if max == 0 || (st.buf.is_empty() && data.len() >= max) {
            self.queue_write(file, &io, &mut st, me, offset, data, vec![seq]);
            return Ok(len);
        }
        let was_empty = st.buf.is_empty();
        st.buf.push(me, offset, &data, seq);
        io.set_dirty(true);
        if st.buf.len() >= max {
            self.queue_buffered(file, &io, &mut st);
        } else if was_empty {
            self.schedule_flush(file.clone(), io.clone(), st.buf.generation());
        }
        Ok(len)
    }

    /// Sends data still buffered `write_delay` after it started filling
    /// (without waiting for it: the lock is not held while the remote
    /// answers).
    fn schedule_flush(&self, file: Arc<OpenFile>, io: Arc<InodeIo>, generation: u64) {
        let delay = self.write_delay;
        let me = self.me.clone();
        // On the runtime, not the caller's: `write_ready` runs on a
        // frontend's own thread.
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(writes) = me.upgrade() else { return };
            let mut st = io.state.lock().await;
            if st.buf.generation() == generation {
                writes.queue_buffered(&file, &io, &mut st);
            }
            writes.reap_writes(file.ino, &io, &mut st);
        });
    }

    /// fsync(2) of `file`: the inode's writes through every descriptor
    /// are sent, then the remote syncs the file.
    pub async fn fsync(&self, file: &Arc<OpenFile>, datasync: bool) -> Result<()> {
        let io = self.io_of_file("fsync", file)?;
        let mut st = self
            .lock_io(&io, file.ino, "fsync", self.calls.deadline())
            .await?;
        self.send_buffer(file, &io, &mut st, "fsync", Report::Consume)
            .await?;
        self.files
            .call_handle(file, "fsync", |remote, handle| async move {
                remote.fsync(handle, datasync).await
            })
            .await
    }

    /// Sends every handle's buffered writes (before unmounting). Returns the
    /// first error; all errors also stay with their handles.
    pub async fn flush_all(&self) -> Result<()> {
        let files = self.files.all();
        let mut first = None;
        for file in files {
            let Some(io) = self.io_of(file.ino) else { continue };
            let deadline = self.calls.deadline();
            let mut st = match self.lock_io(&io, file.ino, "flush", deadline).await {
                Ok(st) => st,
                Err(e) => {
                    first.get_or_insert(e);
                    continue;
                }
            };
            if self.send_all(&file, &io, &mut st, Some(deadline)).await.is_err() {
                first.get_or_insert(self.not_confirmed("flush", file.ino));
            }
            if let Some(kept) = st.errors.get(&file.fh) {
                first.get_or_insert(kept.err.clone());
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The release of `file` (already out of the open files): its buffered
    /// data is sent first; an error can only be logged here (frontends
    /// flush before releasing). Then it leaves its inode's write state.
    pub async fn release(&self, file: &Arc<OpenFile>) {
        if let Some(io) = self.io_of(file.ino) {
            match self
                .lock_io(&io, file.ino, "release", self.calls.deadline())
                .await
            {
                Ok(mut st) => {
                    if let Err(err) = self
                        .send_buffer(file, &io, &mut st, "release", Report::AtRelease)
                        .await
                    {
                        tracing::warn!("write error lost at release: {err}");
                    }
                }
                Err(err) => tracing::warn!("{err}: buffered writes are sent later"),
            }
        }
        self.detach(file.ino);
    }

    /// The data of `file`'s inode gathered and not sent, taken out to go
    /// with the file's creation (see `meta.rs`): `None` unless every byte
    /// of it is buffered (nothing in flight), by `file`, and nobody holds
    /// the write-back now.
    pub fn take_unsent(&self, file: &OpenFile) -> Option<Fused> {
        let io = self.io_of(file.ino)?;
        let mut st = io.state.try_lock().ok()?;
        if !st.in_flight.is_empty() || st.buf.writer().is_some_and(|w| w.fh != file.fh) {
            return None;
        }
        let fused = match st.buf.take() {
            Some(taken) => Fused {
                pieces: vec![(taken.offset, Bytes::from(taken.data))],
                seqs: taken.seqs,
            },
            None => Fused::default(),
        };
        io.set_dirty(false);
        Some(fused)
    }

    /// Whether writes sent through `fh` are still waiting for a connection.
    pub fn unsettled_through(&self, fh: Fh) -> bool {
        !self.batches.of_file(fh).is_empty()
    }

    /// Closes `file`'s remote handle once the writes sent through it are
    /// settled (they may wait for a connection longer than its release).
    pub fn close_after_writes(&self, file: Arc<OpenFile>) {
        let me = self.me.clone();
        self.runtime.spawn(async move {
            let batches = match me.upgrade() {
                Some(writes) => writes.batches.of_file(file.fh),
                None => return,
            };
            for batch in batches {
                let _ = batch.settled().await;
            }
            let Some(writes) = me.upgrade() else { return };
            writes.files.close_released(&file);
        });
    }

    /// Starts the replay on `generation`, just put in place with `remote`:
    /// every open file is reopened there, then the writes older
    /// connections had not confirmed are sent again, in order, and only
    /// then is the connection up for everything else.
    pub fn start_replay(&self, remote: Arc<dyn yonder_remote::Remote>, generation: Generation) {
        self.replay.start(remote, generation);
    }

    /// Writes the remote refused since the mount began.
    pub fn refused(&self) -> u64 {
        self.batches.refused()
    }

    /// Writes the agent has not confirmed (entries, bytes): what a lost
    /// connection would have the next one replay.
    pub fn unconfirmed_writes(&self) -> (usize, u64) {
        self.journal.pending()
    }

    /// The remote renamed (or swapped) `from` and `to`: the journal's
    /// entries by path follow.
    pub fn renamed(&self, from: &[u8], to: &[u8], exchange: bool) {
        self.journal.renamed(from, to, exchange);
    }

    /// The connection is gone for good: writes the agent had not confirmed
    /// are reported failed to the handles that wrote them.
    pub fn connection_gone(&self, reason: &str) {
        let abandoned = self.batches.abandon(reason);
        if abandoned > 0 {
            tracing::warn!(
                "{abandoned} writes the remote had not confirmed are lost: {reason}; \
                 their error is reported at the writers' next write, flush or fsync"
            );
        }
    }
}

/// Records the outcome of a write in flight for the handle that wrote it.
/// What a caller does with the write error kept for its handle.
#[derive(Clone, Copy)]
enum Report {
    /// Reports it to the writer, who now knows (write, fsync).
    Consume,
    /// Reports it and keeps it (a close: maybe of a copy of the
    /// descriptor in another process).
    AtClose,
    /// The handle goes away: consumed, and logged if no close reported it.
    AtRelease,
}

fn settle(st: &mut WriteState, fh: Fh, joined: std::result::Result<Result<()>, tokio::task::JoinError>) {
    let result = joined.unwrap_or_else(|e| Err(VfsError::new("write", e.to_string(), Errno::EIO)));
    if let Err(err) = result {
        st.record_error(fh, err);
    }
}

/// The output of a task known to be finished.
fn futures_now<T>(task: JoinHandle<T>) -> std::result::Result<T, tokio::task::JoinError> {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut task = std::pin::pin!(task);
    match task.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the task is finished"),
    }
}
