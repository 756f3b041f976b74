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
//! nobody waits for is kept in `FileIo::error` and reported by the next
//! write, flush or fsync of the handle: write errors are never dropped.
//!
//! Sends are asynchronous (write-back): a full buffer, or a write as large
//! as the buffer, is handed to a task and tracked in `FileIo::in_flight`;
//! the `write` returns at once, so a sequential writer keeps several
//! requests on the wire instead of waiting a round trip per megabyte. At
//! most [`MAX_WRITES_IN_FLIGHT`] run per handle. Flush, fsync, release, and
//! any read or attribute query of the inode wait for all of them, and their
//! errors land in the same slot as before. Writes that overlap one in
//! flight, and appends, wait first: the agent runs requests concurrently,
//! so only disjoint writes may race.

use crate::attr::{Fh, Ino};
use crate::error::{Result, VfsError};
use crate::handle::OpenFile;
use crate::vfs::Vfs;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;
use yonder_proto::{open_flags as of, Errno};
use yonder_remote::Remote;

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

/// A remote write on its way: the byte range it may touch, its task, and
/// the handle its error belongs to.
pub(crate) struct InFlight {
    pub start: u64,
    pub end: u64,
    pub fh: Fh,
    pub task: JoinHandle<Result<(), VfsError>>,
}

#[derive(Default)]
pub(crate) struct WriteBuffer {
    writer: Option<Writer>,
    offset: u64,
    data: Vec<u8>,
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

    pub fn push(&mut self, writer: Writer, offset: u64, data: &[u8]) {
        if self.data.is_empty() {
            self.writer = Some(writer);
            self.offset = offset;
        }
        self.data.extend_from_slice(data);
    }

    pub fn take(&mut self) -> Option<(Writer, u64, Vec<u8>)> {
        if self.data.is_empty() {
            return None;
        }
        self.generation += 1;
        let writer = self.writer.take()?;
        Some((writer, self.offset, std::mem::take(&mut self.data)))
    }
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

    /// Whether a write of `start..end` must wait for those in flight: the
    /// agent runs requests concurrently, so only disjoint writes may race.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.in_flight.iter().any(|w| w.start < end && start < w.end)
    }
}

// ----- the write-back engine -----

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

impl Vfs {
    pub(crate) fn is_dirty(&self, ino: Ino) -> bool {
        self.handles().files_of(ino).first().is_some_and(|f| f.is_dirty())
    }

    /// Sends the buffered writes of `ino` and waits for those in flight.
    /// Errors stay with the handle that wrote, reported by its next write,
    /// flush or fsync.
    pub(crate) async fn flush_inode(&self, ino: Ino) {
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

    /// Sends the inode's buffer and waits for every write of the inode in
    /// flight; returns (and clears) `file`'s first unreported write error.
    pub(crate) async fn send_buffer(&self, file: &OpenFile, io: &mut WriteBack) -> Result<()> {
        self.send_all(file, io).await;
        match io.take_error(file.fh) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Sends the inode's buffer and waits for every write in flight; errors
    /// stay with the handles that wrote.
    pub(crate) async fn send_all(&self, file: &OpenFile, io: &mut WriteBack) {
        if let Some((writer, offset, data)) = io.buf.take() {
            self.queue_write(file, io, writer, offset, Bytes::from(data))
                .await;
        }
        self.drain_writes(file, io).await;
    }

    /// Starts a remote write of `writer`'s data without waiting for it. Its
    /// error, like that of any write in flight, is kept for `writer`.
    pub(crate) async fn queue_write(
        &self,
        file: &OpenFile,
        io: &mut WriteBack,
        writer: Writer,
        offset: u64,
        data: Bytes,
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
        // The writer's own handle: `file` itself, or another open file of
        // the inode (a writer's data is sent before it is released).
        let other = (writer.fh != file.fh).then(|| self.handles().file(writer.fh));
        let owner = match &other {
            None => Some(file),
            Some(other) => other.as_deref(),
        };
        let sent_through = match owner {
            Some(owner) => self.handle_of(owner).await,
            None => Err(VfsError::new("write", self.describe(file.ino), Errno::EBADF)),
        };
        let (remote, handle) = match sent_through {
            Ok(through) => through,
            Err(err) => {
                io.record_error(writer.fh, err);
                return;
            }
        };
        let path = self.describe(file.ino);
        // Frozen, not copied: the chunks sent are slices of this buffer.
        let task = tokio::spawn(write_all(remote, handle, path, offset, data));
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
    pub(crate) async fn drain_writes(&self, file: &OpenFile, io: &mut WriteBack) {
        let had = !io.in_flight.is_empty();
        while let Some(write) = io.in_flight.pop_front() {
            Self::settle(io, write.fh, write.task.await);
        }
        if io.buf.is_empty() {
            file.io.set_dirty(false);
        }
        if had {
            self.drop_readahead(file.ino);
            // Attributes fetched while the data was on its way (a rename
            // or unlink looking a name up meanwhile) show the old size and
            // times; those cached before were dropped by the writes.
            self.inodes().invalidate_attr(file.ino);
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
    /// write buffer and does not fill it, the handle is not O_SYNC, and
    /// nobody holds the inode's write-back (a send, a flush). The data is
    /// copied straight from the caller's buffer into the write buffer, so
    /// a small write is copied once on its way to the remote, not twice.
    /// `None` when [`Vfs::write_bytes`] must do it. Never waits: frontends
    /// call it inline.
    ///
    /// A write taken here may go ahead of an earlier one still waiting for
    /// the write-back lock: both were in flight at once, so the application
    /// cannot have ordered them (it had no answer to the first yet).
    pub fn write_ready(&self, fh: Fh, offset: u64, data: &[u8]) -> Option<Result<u32>> {
        let file = match self.file("write", fh) {
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
        let me = file.writer();
        let mut io = file.io.state.try_lock().ok()?;
        if !io.buf.continues(&me, offset) || io.buf.len() + data.len() >= max {
            return None;
        }
        self.drop_readahead(file.ino);
        self.inodes().invalidate_attr(file.ino);
        if let Some(err) = io.take_error(file.fh) {
            return Some(Err(err));
        }
        let was_empty = io.buf.is_empty();
        io.buf.push(me, offset, data);
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
                self.queue_write(&file, &mut io, writer, at, Bytes::from(buffered))
                    .await;
            }
            let len = data.len() as u32;
            self.queue_write(&file, &mut io, me, offset, data).await;
            self.drain_writes(&file, &mut io).await;
            return match io.take_error(file.fh) {
                Some(err) => Err(err),
                None => Ok(len),
            };
        }
        if !io.buf.continues(&me, offset) || io.buf.len() + data.len() > max {
            if let Some((writer, at, buffered)) = io.buf.take() {
                self.queue_write(&file, &mut io, writer, at, Bytes::from(buffered))
                    .await;
            }
        }
        if max == 0 || (io.buf.is_empty() && data.len() >= max) {
            let len = data.len() as u32;
            self.queue_write(&file, &mut io, me, offset, data).await;
            return Ok(len);
        }
        let was_empty = io.buf.is_empty();
        io.buf.push(me, offset, &data);
        file.io.set_dirty(true);
        if io.buf.len() >= max {
            if let Some((writer, at, buffered)) = io.buf.take() {
                self.queue_write(&file, &mut io, writer, at, Bytes::from(buffered))
                    .await;
            }
        } else if was_empty {
            self.schedule_flush(file.clone(), io.buf.generation());
        }
        Ok(data.len() as u32)
    }

    /// Sends data still buffered `write_delay` after it started filling.
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
                vfs.send_all(&file, &mut io).await;
            }
        });
    }

    /// Called on each close of a descriptor: sends buffered data and
    /// reports any write error not reported yet.
    pub async fn flush(&self, fh: Fh) -> Result<()> {
        let file = self.file("flush", fh)?;
        let mut io = file.io.state.lock().await;
        self.send_buffer(&file, &mut io).await
    }

    pub async fn fsync(&self, fh: Fh, datasync: bool) -> Result<()> {
        let file = self.file("fsync", fh)?;
        let mut io = file.io.state.lock().await;
        // fsync covers the file's data written through every descriptor.
        self.send_buffer(&file, &mut io).await?;
        let (remote, handle) = self.handle_of(&file).await?;
        remote
            .fsync(handle, datasync)
            .await
            .map_err(|e| VfsError::remote("fsync", self.describe(file.ino).as_bytes(), e))
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
        buf.push(a, 100, b"abc");
        assert!(buf.continues(&a, 103));
        assert!(!buf.continues(&a, 50));
        assert!(!buf.continues(&b, 103), "another handle's data never joins");
        buf.push(a, 103, b"de");
        let g = buf.generation();
        assert_eq!(buf.take(), Some((a, 100, b"abcde".to_vec())));
        assert_ne!(buf.generation(), g);
        assert!(buf.take().is_none());
        let app = writer(3, true);
        buf.push(app, 0, b"x");
        assert!(buf.continues(&app, 50));
    }
}
