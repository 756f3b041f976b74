//! Sequential-read detection and pipelined readahead.
//!
//! A handle whose reads follow each other gets a window of chunk-sized
//! remote reads issued ahead of it, all in flight at once; the window doubles
//! with every sequential read up to a limit. Out-of-order arrival of the
//! kernel's own concurrent readahead requests still counts as sequential as
//! long as they stay within a chunk of the frontier. A read elsewhere drops
//! the window and is served directly.
//!
//! This is the data each open file holds; `reading.rs` serves reads with it.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use yonder_proto::{Errno, Timespec};
use yonder_remote::RemoteError;

pub(crate) type ChunkResult = Option<Result<Bytes, RemoteError>>;

pub(crate) struct Chunk {
    pub start: u64,
    len: u32,
    pub rx: watch::Receiver<ChunkResult>,
    task: JoinHandle<()>,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // Nobody will look at the result.
        self.task.abort();
    }
}

impl Chunk {
    /// Data of the chunk once fetched.
    pub async fn data(&self) -> Result<Bytes, RemoteError> {
        let mut rx = self.rx.clone();
        let aborted = || RemoteError::os("read", "", Errno::EIO);
        let result = match rx.wait_for(|r| r.is_some()).await {
            Ok(r) => r.clone().unwrap_or_else(|| Err(aborted())),
            // The task was aborted (handle released meanwhile).
            Err(_) => Err(aborted()),
        };
        result
    }

    /// Where the file ended, if this chunk came back short.
    pub(crate) fn eof_at(&self) -> Option<u64> {
        match &*self.rx.borrow() {
            Some(Ok(data)) if data.len() < self.len as usize => Some(self.start + data.len() as u64),
            _ => None,
        }
    }
}

pub(crate) enum Plan {
    /// Read straight from the remote.
    Direct,
    /// Serve from these chunks, in order.
    Chunks(Vec<Arc<Chunk>>),
}

#[derive(Default)]
pub(crate) struct Readahead {
    frontier: u64,
    streak: u32,
    chunks: BTreeMap<u64, Arc<Chunk>>,
    /// The file's first bytes, fetched with the open; `head_whole` when
    /// they are the whole file.
    head: Option<Bytes>,
    head_whole: bool,
    /// Size and mtime of the file when the data held here was fetched.
    seen: Option<(u64, Timespec)>,
    /// The inode's data version the data held here was fetched at (see
    /// `Inode::data_version`).
    version: u64,
}

impl Readahead {
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.head = None;
    }

    /// Drops what is held once the file's size or mtime differ from when it
    /// was fetched: data held from before a change on the remote is stale,
    /// and an end of file seen then (a short chunk, a head that was the
    /// whole file) no longer is one.
    pub fn follow(&mut self, size: u64, mtime: Timespec) {
        if self.seen.is_some_and(|seen| seen != (size, mtime)) {
            self.clear();
        }
        self.seen = Some((size, mtime));
    }

    /// Drops what is held once the inode's data version moved on from the
    /// one it was fetched at: written here, truncated, notified changed,
    /// or a new connection since.
    pub fn follow_version(&mut self, version: u64) {
        if self.version != version {
            self.clear();
            self.version = version;
        }
    }

    /// Keeps the first bytes of the file that came with the open.
    pub fn set_head(&mut self, data: Bytes, whole: bool) {
        self.head = Some(data);
        self.head_whole = whole;
    }

    /// Serves a read from the prefetched head of the file, if it covers it.
    pub fn read_head(&mut self, offset: u64, size: u32) -> Option<Bytes> {
        let head = self.head.as_ref()?;
        let len = head.len() as u64;
        let end = offset.saturating_add(size as u64);
        if offset < len && (end <= len || self.head_whole) {
            self.frontier = self.frontier.max(end.min(len));
            return Some(head.slice(offset as usize..end.min(len) as usize));
        }
        if self.head_whole && offset >= len {
            return Some(Bytes::new());
        }
        None
    }

    pub fn forget_chunk(&mut self, start: u64) {
        self.chunks.remove(&start);
    }

    /// Decides how to serve a read at `offset` of `size` bytes, starting the
    /// remote reads of the window with `spawn(start, len)`.
    pub fn plan(
        &mut self,
        offset: u64,
        size: u32,
        chunk: u64,
        max_chunks: u64,
        mut spawn: impl FnMut(u64, u32) -> (watch::Receiver<ChunkResult>, JoinHandle<()>),
    ) -> Plan {
        let end = offset + size as u64;
        let sequential = offset.abs_diff(self.frontier) <= chunk;
        if !sequential {
            self.streak = 0;
            self.frontier = end;
            self.chunks.clear();
            return Plan::Direct;
        }
        self.streak = self.streak.saturating_add(1);
        self.frontier = self.frontier.max(end);
        let window = (1u64 << (self.streak - 1).min(20)).min(max_chunks.max(1));

        // Keep one chunk behind the read: concurrent kernel reads arrive out
        // of order.
        let keep_from = (offset / chunk).saturating_sub(1) * chunk;
        self.chunks = self.chunks.split_off(&keep_from);

        let first = offset / chunk * chunk;
        let last_needed = (end.max(offset + 1) - 1) / chunk * chunk;
        let ahead_end = last_needed + window * chunk;
        let eof = self.chunks.values().filter_map(|c| c.eof_at()).min();
        let mut start = first;
        while start <= ahead_end {
            if eof.is_some_and(|e| start >= e && start > first) {
                break;
            }
            if let std::collections::btree_map::Entry::Vacant(slot) = self.chunks.entry(start) {
                let (rx, task) = spawn(start, chunk as u32);
                slot.insert(Arc::new(Chunk {
                    start,
                    len: chunk as u32,
                    rx,
                    task,
                }));
            }
            start += chunk;
        }
        let covering = self
            .chunks
            .range(first..=last_needed)
            .map(|(_, c)| c.clone())
            .collect();
        Plan::Chunks(covering)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spawner(
        log: &mut Vec<u64>,
    ) -> impl FnMut(u64, u32) -> (watch::Receiver<ChunkResult>, JoinHandle<()>) + '_ {
        move |start, _len| {
            log.push(start);
            let (tx, rx) = watch::channel(None);
            let task = tokio::spawn(async move {
                let _ = tx.send(Some(Ok(Bytes::from(vec![0; 4]))));
            });
            (rx, task)
        }
    }

    #[tokio::test]
    async fn window_grows_for_sequential_reads_and_resets_on_seek() {
        let mut ra = Readahead::default();
        let mut log = Vec::new();
        assert!(matches!(ra.plan(0, 4, 4, 8, spawner(&mut log)), Plan::Chunks(c) if c.len() == 1));
        assert_eq!(log, vec![0, 4]);
        log.clear();
        ra.plan(4, 4, 4, 8, spawner(&mut log));
        assert_eq!(log, vec![8, 12]);
        log.clear();
        ra.plan(8, 4, 4, 8, spawner(&mut log));
        assert_eq!(log, vec![16, 20, 24]);
        log.clear();
        assert!(matches!(ra.plan(1000, 4, 4, 8, spawner(&mut log)), Plan::Direct));
        assert!(log.is_empty());
        assert!(ra.chunks.is_empty());
    }

    #[test]
    fn a_changed_file_drops_its_head_and_its_end_of_file() {
        let mut ra = Readahead::default();
        let t0 = Timespec { sec: 1, nsec: 0 };
        ra.follow(6, t0);
        ra.set_head(Bytes::from_static(b"line1\n"), true);
        assert_eq!(ra.read_head(6, 100), Some(Bytes::new()), "end of file");
        ra.follow(6, t0);
        assert!(ra.read_head(0, 6).is_some(), "unchanged: kept");
        ra.follow(12, Timespec { sec: 2, nsec: 0 });
        assert_eq!(ra.read_head(6, 100), None, "grown: ask the remote");
    }

    #[tokio::test]
    async fn window_is_capped() {
        let mut ra = Readahead::default();
        let mut log = Vec::new();
        for i in 0..20 {
            ra.plan(i * 4, 4, 4, 3, spawner(&mut log));
        }
        assert!(ra.chunks.len() <= 5, "{}", ra.chunks.len());
    }
}
