//! Sequential-read detection and pipelined readahead.
//!
//! A handle whose reads follow each other gets a window of chunk-sized
//! remote reads issued ahead of it, all in flight at once; the window doubles
//! with every sequential read up to a limit. Out-of-order arrival of the
//! kernel's own concurrent readahead requests still counts as sequential as
//! long as they stay within a chunk of the frontier. A read elsewhere drops
//! the window and is served directly.

use crate::attr::{Fh, Ino};
use crate::error::Result;
use crate::handle::OpenFile;
use crate::sync::lock;
use crate::vfs::Vfs;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use yonder_proto::{Errno, Handle, Timespec};
use yonder_remote::{Remote, RemoteError};

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

// ----- serving reads -----

impl Vfs {
    pub(crate) fn drop_readahead(&self, ino: Ino) {
        for file in self.files.files_of(ino) {
            lock(&file.readahead).clear();
        }
    }

    /// Reads up to `size` bytes at `offset`; fewer only at end of file. A
    /// read that one readahead chunk covers is a view of that chunk, not a
    /// copy.
    pub async fn read(&self, fh: Fh, offset: u64, size: u32) -> Result<Bytes> {
        let file = self.files.file("read", fh)?;
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
        // Reads may run again: on a lost connection, wait for the next one
        // (until the operation's deadline) and read there, with nothing of
        // what was read ahead on the old one.
        let file = &*file;
        self.files
            .call_handle(file, "read", |remote, handle| async move {
                let read = self.read_on(file, &remote, handle, offset, size).await;
                if read.as_ref().is_err_and(|e| e.is_connection_lost()) {
                    lock(&file.readahead).clear();
                }
                read
            })
            .await
    }

    /// One attempt at [`Vfs::read`] through `handle` on `remote`.
    async fn read_on(
        &self,
        file: &OpenFile,
        remote: &Arc<dyn Remote>,
        handle: Handle,
        offset: u64,
        size: u32,
    ) -> Result<Bytes, RemoteError> {
        let chunk = self.opts.readahead_chunk.max(4096) as u64;
        let max_chunks = (self.opts.readahead_max as u64 / chunk).max(1);
        let plan = if self.opts.readahead_max == 0 {
            Plan::Direct
        } else {
            let remote = remote.clone();
            lock(&file.readahead).plan(offset, size, chunk, max_chunks, |start, len| {
                let (tx, rx) = watch::channel(None);
                let remote = remote.clone();
                let task = tokio::spawn(async move {
                    let result = remote.read(handle, start, len).await.map(Bytes::from);
                    let _ = tx.send(Some(result));
                });
                (rx, task)
            })
        };
        let chunks = match plan {
            Plan::Direct => return remote.read(handle, offset, size).await.map(Bytes::from),
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
                Err(e) => {
                    lock(&file.readahead).forget_chunk(c.start);
                    return Err(e);
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
