//! Write coalescing. Applications (and the kernel without writeback caching)
//! write in small pieces; each piece sent alone costs a round trip. A
//! handle's sequential writes are gathered here and sent as one request.
//! The buffer and the writes in flight belong to the inode, not to one
//! handle: writes reach the remote in the order applications made them,
//! across all descriptors and processes.
//!
//! The buffer is sent when a write does not continue it, when it is full,
//! before any read or attribute query of the same inode, on flush, fsync and
//! release, and `write_delay` after it started filling. An error from a send
//! nobody waits for is kept in `WriteBack::errors` and reported by the next
//! write, flush or fsync of the handle: write errors are never dropped.
//!
//! Every write is recorded in the journal (`journal.rs`) before `write`
//! returns, and stays there until the agent confirms it: a write an
//! application was told succeeded is replayed on the next connection if
//! the one it was sent on is lost (`replay.rs`).
//!
//! Sends are asynchronous (write-back): a full buffer, or a write as large
//! as the buffer, becomes a batch sent by a task of its own
//! (`replay::run_batch`) and tracked in `WriteBack::in_flight`; the
//! `write` returns at once, so a sequential writer keeps several requests
//! on the wire instead of waiting a round trip per megabyte. A batch waits
//! for the batches of its inode it overlaps (all of them, for an append)
//! before it is sent: the agent runs requests concurrently, so only
//! disjoint writes may race. At most [`MAX_WRITES_IN_FLIGHT`] are in flight
//! per inode; a write beyond that waits for the oldest (until its
//! operation's deadline, then EIO: while the connection is down, an inode
//! holds at most that many batches plus its buffer). Flush, fsync,
//! release, and any read or attribute query of the inode wait for all of
//! them (flush and fsync answer EIO at the deadline, the writes staying
//! queued), and their errors land in the same slot as before.

use crate::attr::{Fh, Ino};
use crate::cache_policy::Change;
use crate::error::{Result, VfsError};
use crate::handle::OpenFile;
use crate::journal::{Entry, Seq};
use crate::replay::{run_batch, Batch};
use crate::vfs::Vfs;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use yonder_proto::{open_flags as of, Errno};

/// Remote writes one inode may have on the wire at once.
pub(crate) const MAX_WRITES_IN_FLIGHT: usize = 8;

/// The open file a piece of written data came through: its remote handle
/// is what the data is sent on, and its error is reported to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Writer {
    pub fh: Fh,
    /// O_APPEND: the remote writes at its end of file, whatever the offset.
    pub append: bool,
}

/// A remote write on its way: its task, and the handle its error belongs
/// to.
pub(crate) struct InFlight {
    pub fh: Fh,
    pub task: JoinHandle<Result<(), VfsError>>,
}

#[derive(Default)]
pub(crate) struct WriteBuffer {
    writer: Option<Writer>,
    offset: u64,
    data: Vec<u8>,
    /// The journal entries of the data gathered.
    seqs: Vec<Seq>,
    /// Bumped whenever the buffer is emptied, so a delayed flush can tell
    /// whether the data it was started for is still waiting.
    generation: u64,
}

impl WriteBuffer {
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a write by `writer` at `offset` continues the buffered data.
    /// Data from another handle never joins it: each piece goes out through
    /// the handle it was written with. Append-mode handles always continue:
    /// the remote writes them at the end regardless.
    pub fn continues(&self, writer: &Writer, offset: u64) -> bool {
        match &self.writer {
            _ if self.data.is_empty() => true,
            Some(w) if w == writer => writer.append || offset == self.offset + self.data.len() as u64,
            _ => false,
        }
    }

    pub fn push(&mut self, writer: Writer, offset: u64, data: &[u8], seq: Seq) {
        if self.data.is_empty() {
            self.writer = Some(writer);
            self.offset = offset;
        }
        self.data.extend_from_slice(data);
        self.seqs.push(seq);
    }

    pub fn take(&mut self) -> Option<Taken> {
        if self.data.is_empty() {
            return None;
        }
        self.generation += 1;
        let writer = self.writer.take()?;
        Some(Taken {
            writer,
            offset: self.offset,
            data: std::mem::take(&mut self.data),
            seqs: std::mem::take(&mut self.seqs),
        })
    }
}

/// The contents of a [`WriteBuffer`], on their way out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Taken {
    pub writer: Writer,
    pub offset: u64,
    pub data: Vec<u8>,
    pub seqs: Vec<Seq>,
}

/// The write side of one inode, shared by all its open handles: one buffer
/// and one queue of writes in flight, so that the remote sees the writes
/// of every descriptor and process in the order they were made. (Per-handle
/// buffers let one descriptor's older data land after another's newer
/// data, which a local file system never does.)
#[derive(Default)]
pub(crate) struct InodeIo {
    pub state: tokio::sync::Mutex<WriteBack>,
    /// Set while the inode has data buffered or in flight; lets readers of
    /// the inode skip taking the lock.
    dirty: AtomicBool,
}

impl InodeIo {
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    pub fn set_dirty(&self, dirty: bool) {
        self.dirty.store(dirty, Ordering::Release);
    }
}

/// State of an inode's write-back, under one async lock that is held
/// across sends, so that nobody reads around data in flight.
#[derive(Default)]
pub(crate) struct WriteBack {
    pub buf: WriteBuffer,
    /// Writes sent and not yet answered, oldest first.
    pub in_flight: VecDeque<InFlight>,
    /// First error of a send no caller was waiting for, per handle that
    /// wrote the data: reported by that handle's next write, flush or
    /// fsync.
    pub errors: HashMap<Fh, VfsError>,
}

impl WriteBack {
    pub fn record_error(&mut self, fh: Fh, err: VfsError) {
        self.errors.entry(fh).or_insert(err);
    }

    pub fn take_error(&mut self, fh: Fh) -> Option<VfsError> {
        self.errors.remove(&fh)
    }
}

// ----- the write-back engine -----

impl Vfs {
    pub(crate) fn is_dirty(&self, ino: Ino) -> bool {
        self.files.files_of(ino).first().is_some_and(|f| f.is_dirty())
    }

    /// The inode's write-back lock, waited for until `deadline`.
    pub(crate) async fn lock_io<'a>(
        &self,
        file: &'a OpenFile,
        op: &'static str,
        deadline: Instant,
    ) -> Result<tokio::sync::MutexGuard<'a, WriteBack>> {
        tokio::time::timeout_at(deadline, file.io.state.lock())
            .await
            .map_err(|_| self.not_confirmed(op, file.ino))
    }

    /// EIO for an operation whose writes were not confirmed by its
    /// deadline (they stay queued, and are sent once the connection is
    /// back).
    fn not_confirmed(&self, op: &'static str, ino: Ino) -> VfsError {
        let path = self.describe(ino);
        tracing::debug!(
            "{op} {path}: writes not confirmed within the operation timeout ({:.0} s); they stay queued",
            self.opts.op_timeout.as_secs_f64()
        );
        VfsError::new(op, path, Errno::EIO)
    }

    /// Sends the buffered writes of `ino` and waits for those in flight
    /// (until the operation's deadline). Errors stay with the handle that
    /// wrote, reported by its next write, flush or fsync.
    pub(crate) async fn flush_inode(&self, ino: Ino) {
        let Some(file) = self.files.files_of(ino).into_iter().next() else {
            return;
        };
        if !file.is_dirty() {
            return;
        }
        let deadline = self.calls.deadline();
        let Ok(mut io) = self.lock_io(&file, "flush", deadline).await else {
            return;
        };
        let _ = self.send_all(&file, &mut io, Some(deadline)).await;
        drop(io);
        // Attributes cached while the data was still buffered here (a
        // lookup or listing meanwhile) show the old size and times.
        self.ns.changed(ino, Change::Flushed);
    }

    /// Sends the inode's buffer and waits for every write of the inode in
    /// flight; returns (and clears) `file`'s first unreported write error.
    pub(crate) async fn send_buffer(
        &self,
        file: &Arc<OpenFile>,
        io: &mut WriteBack,
        op: &'static str,
    ) -> Result<()> {
        self.send_all(file, io, Some(self.calls.deadline()))
            .await
            .map_err(|_| self.not_confirmed(op, file.ino))?;
        match io.take_error(file.fh) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Sends the inode's buffer and waits for every write in flight (until
    /// `deadline`: `Err(())` if they are not all settled by then); errors
    /// stay with the handles that wrote.
    pub(crate) async fn send_all(
        &self,
        file: &Arc<OpenFile>,
        io: &mut WriteBack,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), ()> {
        self.queue_buffered(file, io);
        self.drain_writes(file, io, deadline).await
    }

    /// Starts a remote write of the inode's gathered data, if any, and
    /// empties the buffer.
    pub(crate) fn queue_buffered(&self, file: &Arc<OpenFile>, io: &mut WriteBack) {
        if let Some(taken) = io.buf.take() {
            self.queue_write(
                file,
                io,
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
    pub(crate) fn queue_write(
        &self,
        file: &Arc<OpenFile>,
        io: &mut WriteBack,
        writer: Writer,
        offset: u64,
        data: Bytes,
        seqs: Vec<Seq>,
    ) {
        file.io.set_dirty(true);
        // The writer's own handle: `file` itself, or another open file of
        // the inode (a writer's data is sent before it is released).
        let owner = if writer.fh == file.fh {
            file.clone()
        } else {
            self.files.get(writer.fh).unwrap_or_else(|| file.clone())
        };
        let batch = Arc::new(Batch::new(seqs, owner, offset, data, writer.append));
        let before = self.unconfirmed.add(batch.clone());
        let task = self.runtime.spawn(run_batch(self.me.clone(), batch, before));
        io.in_flight.push_back(InFlight { fh: writer.fh, task });
        // A readahead that raced the write may hold old data.
        self.drop_readahead(file.ino);
        self.ns.changed(file.ino, Change::DataSent);
    }

    /// Waits for every write of the inode in flight, until `deadline`.
    pub(crate) async fn drain_writes(
        &self,
        file: &OpenFile,
        io: &mut WriteBack,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), ()> {
        let had = !io.in_flight.is_empty();
        let mut result = Ok(());
        while let Some(oldest) = io.in_flight.front_mut() {
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
            let done = io.in_flight.pop_front().expect("in flight");
            Self::settle(io, done.fh, joined);
        }
        if io.buf.is_empty() && io.in_flight.is_empty() {
            file.io.set_dirty(false);
        }
        if had {
            self.drop_readahead(file.ino);
            // Attributes fetched while the data was on its way (a rename
            // or unlink looking a name up meanwhile) show the old size and
            // times; those cached before were dropped by the writes.
            self.ns.changed(file.ino, Change::WritesLanded);
        }
        result
    }

    /// Collects the writes in flight that are done, without waiting.
    pub(crate) fn reap_writes(&self, file: &OpenFile, io: &mut WriteBack) {
        let mut reaped = false;
        while io.in_flight.front().is_some_and(|w| w.task.is_finished()) {
            let done = io.in_flight.pop_front().expect("in flight");
            let joined = futures_now(done.task);
            Self::settle(io, done.fh, joined);
            reaped = true;
        }
        if reaped {
            // As in `drain_writes`: what was fetched meanwhile is older.
            self.drop_readahead(file.ino);
            self.ns.changed(file.ino, Change::WritesLanded);
        }
        if io.buf.is_empty() && io.in_flight.is_empty() {
            file.io.set_dirty(false);
        }
    }

    pub(crate) fn settle(
        io: &mut WriteBack,
        fh: Fh,
        joined: std::result::Result<Result<()>, tokio::task::JoinError>,
    ) {
        let result = joined.unwrap_or_else(|e| Err(VfsError::new("write", e.to_string(), Errno::EIO)));
        if let Err(err) = result {
            io.record_error(fh, err);
        }
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
    /// send, a flush). The data is copied from the caller's buffer into the
    /// journal and into the write buffer, without a task. `None` when
    /// [`Vfs::write_bytes`] must do it. Never waits: frontends call it
    /// inline.
    ///
    /// A write taken here may go ahead of an earlier one still waiting for
    /// the write-back lock: both were in flight at once, so the application
    /// cannot have ordered them (it had no answer to the first yet).
    pub fn write_ready(&self, fh: Fh, offset: u64, data: &[u8]) -> Option<Result<u32>> {
        let file = match self.files.file("write", fh) {
            Ok(file) => file,
            Err(err) => return Some(Err(err)),
        };
        if let Err(err) = self.check_writable("write", file.ino) {
            return Some(Err(err));
        }
        let max = self.opts.write_buffer;
        if file.flags & (of::SYNC | of::DSYNC) != 0 || data.len() >= max {
            return None;
        }
        // While the connection is gone, write_bytes answers (or waits).
        if self.calls.usable().is_err() {
            return None;
        }
        let me = file.writer();
        let mut io = file.io.state.try_lock().ok()?;
        if !io.buf.continues(&me, offset) || io.buf.len() + data.len() >= max {
            return None;
        }
        self.drop_readahead(file.ino);
        self.ns.changed(file.ino, Change::Written);
        if let Some(err) = io.take_error(file.fh) {
            return Some(Err(err));
        }
        // Journaled before the write is acknowledged, as in write_bytes:
        // the journal's copy is what a replay sends.
        let journaled = Bytes::copy_from_slice(data);
        let seq = self.journal.record(Entry::Write {
            ino: file.ino,
            fh: file.fh,
            offset,
            data: journaled,
            append: me.append,
        });
        let was_empty = io.buf.is_empty();
        io.buf.push(me, offset, data, seq);
        file.io.set_dirty(true);
        if was_empty {
            self.schedule_flush(file.clone(), io.buf.generation());
        }
        Some(Ok(data.len() as u32))
    }

    /// [`Vfs::write`] of data the caller already owns: a write too large
    /// to gather, or an O_SYNC one, is sent as it is, without a copy (a
    /// frontend that must copy the kernel's buffer anyway copies it once,
    /// into `data`).
    pub async fn write_bytes(&self, fh: Fh, offset: u64, data: Bytes) -> Result<u32> {
        let file = self.files.file("write", fh)?;
        self.check_writable("write", file.ino)?;
        if let Err(why) = self.calls.usable() {
            return Err(self
                .calls
                .unavailable("write", self.describe(file.ino).as_bytes(), why));
        }
        self.drop_readahead(file.ino);
        self.ns.changed(file.ino, Change::Written);
        let max = self.opts.write_buffer;
        let me = file.writer();
        let deadline = self.calls.deadline();
        let mut io = self.lock_io(&file, "write", deadline).await?;
        // Room for one more batch: while the connection is down, the
        // inode's writes stop being acknowledged here.
        while io.in_flight.len() >= MAX_WRITES_IN_FLIGHT {
            let oldest = io.in_flight.front_mut().expect("in flight");
            let joined = tokio::time::timeout_at(deadline, &mut oldest.task)
                .await
                .map_err(|_| self.not_confirmed("write", file.ino))?;
            let done = io.in_flight.pop_front().expect("in flight");
            Self::settle(&mut io, done.fh, joined);
        }
        if let Some(err) = io.take_error(file.fh) {
            return Err(err);
        }
        let len = data.len() as u32;
        let seq = self.journal.record(Entry::Write {
            ino: file.ino,
            fh: file.fh,
            offset,
            data: data.clone(),
            append: me.append,
        });
        let sync = file.flags & (of::SYNC | of::DSYNC) != 0;
        if sync {
            // O_SYNC/O_DSYNC: the data is on the remote when write returns.
            self.queue_buffered(&file, &mut io);
            self.queue_write(&file, &mut io, me, offset, data, vec![seq]);
            self.drain_writes(&file, &mut io, Some(deadline))
                .await
                .map_err(|_| self.not_confirmed("write", file.ino))?;
            return match io.take_error(file.fh) {
                Some(err) => Err(err),
                None => Ok(len),
            };
        }
        if !io.buf.continues(&me, offset) || io.buf.len() + data.len() > max {
            self.queue_buffered(&file, &mut io);
        }
        if max == 0 || (io.buf.is_empty() && data.len() >= max) {
            self.queue_write(&file, &mut io, me, offset, data, vec![seq]);
            return Ok(len);
        }
        let was_empty = io.buf.is_empty();
        io.buf.push(me, offset, &data, seq);
        file.io.set_dirty(true);
        if io.buf.len() >= max {
            self.queue_buffered(&file, &mut io);
        } else if was_empty {
            self.schedule_flush(file.clone(), io.buf.generation());
        }
        Ok(len)
    }

    /// Sends data still buffered `write_delay` after it started filling
    /// (without waiting for it: the lock is not held while the remote
    /// answers).
    pub(crate) fn schedule_flush(&self, file: Arc<OpenFile>, generation: u64) {
        let delay = self.opts.write_delay;
        let me = self.me.clone();
        // On the runtime, not the caller's: `write_ready` runs on a
        // frontend's own thread.
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(vfs) = me.upgrade() else { return };
            let mut io = file.io.state.lock().await;
            if io.buf.generation() == generation {
                vfs.queue_buffered(&file, &mut io);
            }
            vfs.reap_writes(&file, &mut io);
        });
    }

    /// Called on each close of a descriptor: sends buffered data and
    /// reports any write error not reported yet.
    pub async fn flush(&self, fh: Fh) -> Result<()> {
        let file = self.files.file("flush", fh)?;
        let mut io = self.lock_io(&file, "flush", self.calls.deadline()).await?;
        self.send_buffer(&file, &mut io, "flush").await
    }

    pub async fn fsync(&self, fh: Fh, datasync: bool) -> Result<()> {
        let file = self.files.file("fsync", fh)?;
        let mut io = self.lock_io(&file, "fsync", self.calls.deadline()).await?;
        // fsync covers the file's data written through every descriptor.
        self.send_buffer(&file, &mut io, "fsync").await?;
        self.files
            .call_handle(&file, "fsync", |remote, handle| async move {
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
            let deadline = self.calls.deadline();
            let mut io = match self.lock_io(&file, "flush", deadline).await {
                Ok(io) => io,
                Err(e) => {
                    first.get_or_insert(e);
                    continue;
                }
            };
            if self.send_all(&file, &mut io, Some(deadline)).await.is_err() {
                first.get_or_insert(self.not_confirmed("flush", file.ino));
            }
            if let Some(e) = io.errors.get(&file.fh) {
                first.get_or_insert(e.clone());
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Writes the agent has not confirmed (entries, bytes): what a lost
    /// connection would have the next one replay.
    pub fn unconfirmed_writes(&self) -> (usize, u64) {
        self.journal.pending()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(fh: u64, append: bool) -> Writer {
        Writer { fh: Fh(fh), append }
    }

    #[test]
    fn buffer_coalesces_contiguous_writes_of_one_handle_only() {
        let (a, b) = (writer(1, false), writer(2, false));
        let mut buf = WriteBuffer::default();
        assert!(buf.continues(&a, 100));
        buf.push(a, 100, b"abc", Seq(1));
        assert!(buf.continues(&a, 103));
        assert!(!buf.continues(&a, 50));
        assert!(!buf.continues(&b, 103), "another handle's data never joins");
        buf.push(a, 103, b"de", Seq(2));
        let g = buf.generation();
        assert_eq!(
            buf.take(),
            Some(Taken {
                writer: a,
                offset: 100,
                data: b"abcde".to_vec(),
                seqs: vec![Seq(1), Seq(2)]
            })
        );
        assert_ne!(buf.generation(), g);
        assert!(buf.take().is_none());
        let app = writer(3, true);
        buf.push(app, 0, b"x", Seq(3));
        assert!(buf.continues(&app, 50));
    }
}
