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

use crate::attr::Fh;
use crate::error::VfsError;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::task::JoinHandle;
use yonder_proto::Handle;

/// Remote writes one inode may have on the wire at once.
pub(crate) const MAX_WRITES_IN_FLIGHT: usize = 8;

/// The open file a piece of written data came through: the remote handle
/// it is sent on, and the handle its error is reported to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Writer {
    pub fh: Fh,
    pub handle: Handle,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(fh: Fh, append: bool) -> Writer {
        Writer {
            fh,
            handle: fh,
            append,
        }
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
