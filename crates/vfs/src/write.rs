//! Write coalescing. Applications (and the kernel without writeback caching)
//! write in small pieces; each piece sent alone costs a round trip. A
//! handle's sequential writes are gathered here and sent as one request.
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

use crate::error::VfsError;
use std::collections::VecDeque;
use tokio::task::JoinHandle;

/// Remote writes one handle may have on the wire at once.
pub(crate) const MAX_WRITES_IN_FLIGHT: usize = 8;

/// A remote write on its way: the byte range it covers and its task.
pub(crate) struct InFlight {
    pub start: u64,
    pub end: u64,
    pub task: JoinHandle<Result<(), VfsError>>,
}

#[derive(Default)]
pub(crate) struct WriteBuffer {
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

    /// Whether `offset` continues the buffered data. Append-mode handles
    /// always continue: the remote writes them at the end regardless.
    pub fn continues(&self, offset: u64, append: bool) -> bool {
        self.data.is_empty() || append || offset == self.offset + self.data.len() as u64
    }

    pub fn push(&mut self, offset: u64, data: &[u8]) {
        if self.data.is_empty() {
            self.offset = offset;
        }
        self.data.extend_from_slice(data);
    }

    pub fn take(&mut self) -> Option<(u64, Vec<u8>)> {
        if self.data.is_empty() {
            return None;
        }
        self.generation += 1;
        Some((self.offset, std::mem::take(&mut self.data)))
    }
}

/// State of the write side of an open file, under one async lock that is
/// held across the remote write, so that nobody reads around data in flight.
#[derive(Default)]
pub(crate) struct FileIo {
    pub buf: WriteBuffer,
    /// First error of a send no caller was waiting for.
    pub error: Option<VfsError>,
    /// Writes sent and not yet answered, oldest first.
    pub in_flight: VecDeque<InFlight>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_coalesces_contiguous_writes_only() {
        let mut b = WriteBuffer::default();
        assert!(b.continues(100, false));
        b.push(100, b"abc");
        assert!(b.continues(103, false));
        assert!(!b.continues(50, false));
        assert!(b.continues(50, true));
        b.push(103, b"de");
        let g = b.generation();
        assert_eq!(b.take(), Some((100, b"abcde".to_vec())));
        assert_ne!(b.generation(), g);
        assert!(b.take().is_none());
    }
}
