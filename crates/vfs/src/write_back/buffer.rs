//! An inode's write-back state: the buffer gathering its writes, and the
//! writes it has in flight.

use crate::attr::Fh;
use crate::error::{Result, VfsError};
use crate::handle::OpenFile;
use crate::journal::Seq;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::task::JoinHandle;

/// Remote writes one inode may have on the wire at once.
pub(super) const MAX_WRITES_IN_FLIGHT: usize = 8;

/// The open file a piece of written data came through: its remote handle
/// is what the data is sent on, and its error is reported to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Writer {
    pub fh: Fh,
    /// O_APPEND: the remote writes at its end of file, whatever the offset.
    pub append: bool,
}

impl Writer {
    pub fn of(file: &OpenFile) -> Writer {
        Writer {
            fh: file.fh,
            append: file.append,
        }
    }
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

    /// Whose data it gathers, if any.
    pub fn writer(&self) -> Option<Writer> {
        self.writer.filter(|_| !self.data.is_empty())
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

/// The write side of one inode, shared by all its open handles (kept by
/// [`super::WriteBack`], keyed by inode): one buffer and one queue of writes
/// in flight, so that the remote sees the writes of every descriptor and
/// process in the order they were made. (Per-handle buffers let one
/// descriptor's older data land after another's newer data, which a local
/// file system never does.)
#[derive(Default)]
pub(crate) struct InodeIo {
    pub state: tokio::sync::Mutex<WriteState>,
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
pub(crate) struct WriteState {
    pub buf: WriteBuffer,
    /// Writes sent and not yet answered, oldest first.
    pub in_flight: VecDeque<InFlight>,
    /// First error of a send no caller was waiting for, per handle that
    /// wrote the data: reported by that handle's next write, flush or
    /// fsync.
    pub errors: HashMap<Fh, KeptError>,
}

/// A write error kept for the handle that wrote the data.
pub(crate) struct KeptError {
    pub err: VfsError,
    /// A close (flush) reported it already. A flush does not consume it:
    /// any process holding the descriptor can close it (a child forked
    /// by another thread closes its copy at exec), and the writer's own
    /// fsync or close must still see the error.
    pub reported: bool,
}

impl WriteState {
    pub fn record_error(&mut self, fh: Fh, err: VfsError) {
        self.errors
            .entry(fh)
            .or_insert(KeptError { err, reported: false });
    }

    /// The handle's error, consumed: its writer has been told (write,
    /// fsync).
    pub fn take_error(&mut self, fh: Fh) -> Option<VfsError> {
        self.errors.remove(&fh).map(|kept| kept.err)
    }

    /// The handle's error for a close: reported, and kept for the next
    /// close, write or fsync.
    pub fn error_for_close(&mut self, fh: Fh) -> Option<VfsError> {
        let kept = self.errors.get_mut(&fh)?;
        kept.reported = true;
        Some(kept.err.clone())
    }

    /// The handle's error at its release, consumed, if no close reported
    /// it.
    pub fn take_unreported(&mut self, fh: Fh) -> Option<VfsError> {
        self.errors
            .remove(&fh)
            .filter(|kept| !kept.reported)
            .map(|kept| kept.err)
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
