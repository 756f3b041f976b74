//! Serving reads: from the file's first bytes that came with its open,
//! from chunks read ahead for a sequential reader (`readahead.rs`), or
//! straight from the remote.
//!
//! Data held for a reader is dropped when the inode's data version (kept
//! in the inode table, moved on by every change of the file's data that the
//! VFS makes or learns of) differs from the one it was fetched at, or when
//! the file's size or mtime differ from when it was fetched.

use crate::error::Result;
use crate::handle::OpenFile;
use crate::namespace::Namespace;
use crate::open_files::OpenFiles;
use crate::options::VfsOptions;
use crate::readahead::Plan;
use crate::sync::lock;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::watch;
use yonder_proto::{Errno, Handle};
use yonder_remote::{Remote, RemoteError};

/// The read side of a VFS.
pub(crate) struct Reading {
    files: Arc<OpenFiles>,
    ns: Arc<Namespace>,
    readahead_chunk: usize,
    readahead_max: usize,
}

impl Reading {
    pub fn new(files: Arc<OpenFiles>, ns: Arc<Namespace>, opts: &VfsOptions) -> Reading {
        Reading {
            files,
            ns,
            readahead_chunk: opts.readahead_chunk,
            readahead_max: opts.readahead_max,
        }
    }

    /// [`Reading::read`] when the file's first bytes that came with its
    /// open answer it: no waiting, so frontends answer it inline.
    pub fn read_ready(&self, file: &OpenFile, offset: u64, size: u32) -> Option<Bytes> {
        if size == 0 {
            return Some(Bytes::new());
        }
        // Data changed since, or attributes refreshed since (the remote
        // file grew or changed), retire what was read ahead.
        let (version, seen) = self.ns.table().data_state(file.ino);
        let mut readahead = lock(&file.readahead);
        readahead.follow_version(version);
        if let Some(attr) = seen {
            readahead.follow(attr.size, attr.mtime);
        }
        readahead.read_head(offset, size)
    }

    /// Reads up to `size` bytes at `offset` of `file`, whose inode has no
    /// writes pending; fewer only at end of file. A read that one readahead
    /// chunk covers is a view of that chunk, not a copy.
    pub async fn read(&self, file: &OpenFile, offset: u64, size: u32) -> Result<Bytes> {
        if let Some(data) = self.read_ready(file, offset, size) {
            return Ok(data);
        }
        // Reads may run again: on a lost connection, wait for the next one
        // (until the operation's deadline) and read there, with nothing of
        // what was read ahead on the old one.
        let read = self
            .files
            .call_handle(file, "read", |remote, handle| async move {
                let read = self.read_on(file, &remote, handle, offset, size).await;
                if read.as_ref().is_err_and(|e| e.is_connection_lost()) {
                    lock(&file.readahead).clear();
                }
                read
            })
            .await;
        match (read, &file.opened_bytes) {
            // Opened here, and gone from the remote since: what it opened.
            (Err(e), Some(bytes)) if e.errno() == Errno::ESTALE => {
                let start = (offset as usize).min(bytes.len());
                let end = start.saturating_add(size as usize).min(bytes.len());
                Ok(bytes.slice(start..end))
            }
            (read, _) => read,
        }
    }

    /// One attempt at [`Reading::read`] through `handle` on `remote`.
    async fn read_on(
        &self,
        file: &OpenFile,
        remote: &Arc<dyn Remote>,
        handle: Handle,
        offset: u64,
        size: u32,
    ) -> Result<Bytes, RemoteError> {
        let chunk = self.readahead_chunk.max(4096) as u64;
        let max_chunks = (self.readahead_max as u64 / chunk).max(1);
        let plan = if self.readahead_max == 0 {
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
