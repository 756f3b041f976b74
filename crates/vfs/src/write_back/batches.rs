//! Batches: remote writes of acknowledged data, tracked until the agent
//! confirms them (their journal entries leave the journal) or their
//! failure is handed to the writer. See `replay.rs` for what happens to
//! those cut off by a lost connection.

use crate::attr::{Fh, Ino};
use crate::calls::RemoteCalls;
use crate::connection::{Generation, Unavailable};
use crate::error::{Result, VfsError};
use crate::events::{Events, VfsEvent};
use crate::handle::OpenFile;
use crate::journal::{Journal, Seq};
use crate::meta_order::{wait_all, Pending};
use crate::namespace::Namespace;
use crate::open_files::OpenFiles;
use crate::sync::lock;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use yonder_proto::{open_flags as of, Errno, Handle};
use yonder_remote::Remote;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BatchState {
    /// Not sent yet (waiting for the batches before it, or a connection).
    Waiting,
    /// On its way over the connection of that generation.
    Sending(Generation),
    Settled,
}

/// One remote write of acknowledged data.
pub(super) struct Batch {
    /// The journal entries it carries.
    pub seqs: Vec<Seq>,
    pub ino: Ino,
    /// The open file whose handle it is sent through (reopened by path on
    /// a new connection).
    pub file: Arc<OpenFile>,
    pub offset: u64,
    pub data: Bytes,
    pub append: bool,
    state: Mutex<BatchState>,
    settled: watch::Sender<Option<Result<()>>>,
}

impl Batch {
    pub fn new(seqs: Vec<Seq>, file: Arc<OpenFile>, offset: u64, data: Bytes, append: bool) -> Batch {
        Batch {
            seqs,
            ino: file.ino,
            file,
            offset,
            data,
            append,
            state: Mutex::new(BatchState::Waiting),
            settled: watch::Sender::new(None),
        }
    }

    /// The bytes it may touch: an append may touch any.
    pub fn range(&self) -> (u64, u64) {
        if self.append {
            (0, u64::MAX)
        } else {
            (self.offset, self.offset + self.data.len() as u64)
        }
    }

    fn first(&self) -> Seq {
        self.seqs.first().copied().unwrap_or(Seq(0))
    }

    fn state(&self) -> BatchState {
        *lock(&self.state)
    }

    fn set_state(&self, state: BatchState) {
        *lock(&self.state) = state;
    }

    /// Waits for the verdict: confirmed, or the error for the writer.
    pub async fn settled(&self) -> Result<()> {
        let mut rx = self.settled.subscribe();
        let verdict = match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        };
        verdict.unwrap_or_else(|| Err(VfsError::new("write", "<batch>", Errno::EIO)))
    }
}

/// The batches of a VFS not settled yet, by their first sequence number,
/// and their sending: each by a task of its own, after the batches of its
/// inode it overlaps.
pub(super) struct Batches {
    registry: Mutex<Registry>,
    /// Where the writes they carry are recorded; settled ones leave it.
    journal: Arc<dyn Journal>,
    files: Arc<OpenFiles>,
    ns: Arc<Namespace>,
    calls: Arc<RemoteCalls>,
    runtime: tokio::runtime::Handle,
    events: Events,
    /// Batches the remote refused since the mount began.
    refused: AtomicU64,
    /// For the batches' tasks: a dropped VFS stops them.
    me: Weak<Batches>,
}

#[derive(Default)]
struct Registry {
    /// The connection batches are sent on now: set by a replay as it
    /// starts, so a batch cannot be claimed for an older one afterwards.
    generation: Generation,
    batches: BTreeMap<Seq, Arc<Batch>>,
}

impl Batches {
    pub fn new(
        journal: Arc<dyn Journal>,
        files: Arc<OpenFiles>,
        ns: Arc<Namespace>,
        calls: Arc<RemoteCalls>,
        runtime: tokio::runtime::Handle,
        events: Events,
    ) -> Arc<Batches> {
        Arc::new_cyclic(|me| Batches {
            registry: Mutex::default(),
            journal,
            files,
            ns,
            calls,
            runtime,
            events,
            refused: AtomicU64::new(0),
            me: me.clone(),
        })
    }

    /// Registers `batch` and starts its task, which sends it once the
    /// batches of its inode it overlaps are settled; the task's output is
    /// the batch's verdict.
    pub fn send(&self, batch: Arc<Batch>) -> JoinHandle<Result<()>> {
        let before = self.add(batch.clone());
        // Metadata operations on the inode acknowledged before this data
        // (a futimens before a later write) land first.
        let acknowledged = self.calls.order().of_ino(batch.ino);
        self.runtime
            .spawn(Self::run(self.me.clone(), batch, before, acknowledged))
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    /// Registers `batch`; returns the unsettled batches of its inode that
    /// must be settled before it is sent (those whose bytes it may touch).
    fn add(&self, batch: Arc<Batch>) -> Vec<Arc<Batch>> {
        let (start, end) = batch.range();
        let mut registry = self.registry();
        let before = registry
            .batches
            .values()
            .filter(|b| b.ino == batch.ino && b.state() != BatchState::Settled)
            .filter(|b| {
                let (s, e) = b.range();
                s < end && start < e
            })
            .cloned()
            .collect();
        registry.batches.insert(batch.first(), batch);
        before
    }

    /// Claims `batch` for sending on `generation`: false if it is settled,
    /// or if that connection is no longer the one to send on.
    fn claim(&self, batch: &Batch, generation: Generation) -> bool {
        let registry = self.registry();
        if registry.generation != generation || batch.state() != BatchState::Waiting {
            return false;
        }
        batch.set_state(BatchState::Sending(generation));
        true
    }

    /// Settles `batch` with `verdict`, if it is still being sent on
    /// `generation` (`None`: whatever its state). Its entries leave the
    /// journal.
    pub fn settle(&self, batch: &Batch, on: Option<Generation>, verdict: Result<()>) -> bool {
        let mut registry = self.registry();
        match (batch.state(), on) {
            (BatchState::Settled, _) => return false,
            (BatchState::Sending(g), Some(on)) if g != on => return false,
            (BatchState::Waiting, Some(_)) => return false,
            _ => {}
        }
        batch.set_state(BatchState::Settled);
        registry.batches.remove(&batch.first());
        drop(registry);
        self.journal.confirm(&batch.seqs);
        batch.settled.send_replace(Some(verdict));
        true
    }

    /// A replay on `generation` starts: from now on batches are sent on it
    /// only. Returns the batches sent on older connections, oldest first,
    /// claimed for the replay.
    pub fn begin_replay(&self, generation: Generation) -> Vec<Arc<Batch>> {
        let mut registry = self.registry();
        registry.generation = generation;
        registry
            .batches
            .values()
            .filter(|b| matches!(b.state(), BatchState::Sending(g) if g < generation))
            .inspect(|b| b.set_state(BatchState::Sending(generation)))
            .cloned()
            .collect()
    }

    /// The connection is gone for good: every unsettled batch fails.
    pub fn abandon(&self, reason: &str) -> usize {
        let batches: Vec<Arc<Batch>> = self.registry().batches.values().cloned().collect();
        let mut count = 0;
        for batch in batches {
            if self.settle(&batch, None, Err(lost_for_good(&batch, reason))) {
                count += 1;
            }
        }
        count
    }

    /// The remote refused `batch` (ENOSPC, EDQUOT, EIO, ...): besides the
    /// writer, who gets the error at its next write, flush or fsync, the
    /// log and the event stream say so.
    fn refused_by_remote(&self, batch: &Batch, e: &VfsError) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let path = self.ns.describe(batch.ino);
        tracing::warn!(
            "write {path}: {} bytes at {} acknowledged, then refused by the remote: {e}; reported at the \
             writer's next write, flush or fsync",
            batch.data.len(),
            batch.range().0
        );
        self.events.emit(VfsEvent::WriteFailed {
            ino: batch.ino,
            path,
            error: e.to_string(),
        });
    }

    /// Batches the remote refused since the mount began.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Unsettled batches sent through `fh`.
    pub fn of_file(&self, fh: Fh) -> Vec<Arc<Batch>> {
        self.registry()
            .batches
            .values()
            .filter(|b| b.file.fh == fh)
            .cloned()
            .collect()
    }

    /// What a batch's task does: waits for the batches before it, sends it on
    /// the current connection, and returns its verdict (from the agent, or
    /// from the replay on a later connection if this one was lost).
    async fn run(
        batches: Weak<Batches>,
        batch: Arc<Batch>,
        before: Vec<Arc<Batch>>,
        acknowledged: Vec<Arc<Pending>>,
    ) -> Result<()> {
        for earlier in before {
            let _ = earlier.settled().await;
        }
        let _ = wait_all(acknowledged, None).await;
        loop {
            let Some(me) = batches.upgrade() else {
                break;
            };
            let (remote, generation) = match me.calls.ready(None).await {
                Ok(current) => current,
                Err(Unavailable::Gone(reason)) => {
                    let err = lost_for_good(&batch, &reason);
                    me.settle(&batch, None, Err(err));
                    break;
                }
                Err(Unavailable::TimedOut) => unreachable!("no deadline"),
            };
            if !me.claim(&batch, generation) {
                if batch.state() == BatchState::Waiting {
                    // The connection was replaced between `ready` and the
                    // claim: wait for the new one.
                    tokio::task::yield_now().await;
                    continue;
                }
                break;
            }
            match me.send_batch(&batch, &remote, generation, false).await {
                Err(e) if e.is_connection_lost() => {
                    // Maybe carried out, maybe not: the replay on the next
                    // connection decides.
                }
                verdict => {
                    me.settle(&batch, Some(generation), verdict);
                }
            }
            break;
        }
        batch.settled().await
    }

    /// Sends `batch` on `remote` through its file's handle there. On a
    /// replay (`replaying`), an append whose outcome is unknown is checked
    /// first (see the module documentation).
    pub(super) async fn send_batch(
        &self,
        batch: &Batch,
        remote: &Arc<dyn Remote>,
        generation: Generation,
        replaying: bool,
    ) -> Result<()> {
        let handle = self.files.handle_on(&batch.file, remote, generation).await?;
        let path = self.ns.describe(batch.ino);
        if replaying && batch.append {
            return self.replay_append(batch, remote, handle, &path).await;
        }
        let written = write_all(remote, handle, &path, batch.offset, batch.data.clone()).await;
        match &written {
            // A replay reports its own failures (`WriteLost`).
            Err(e) if !replaying && !e.is_connection_lost() => self.refused_by_remote(batch, e),
            _ => {}
        }
        written
    }

    async fn replay_append(
        &self,
        batch: &Batch,
        remote: &Arc<dyn Remote>,
        handle: Handle,
        path: &str,
    ) -> Result<()> {
        let failed = |e| VfsError::remote("write", path.as_bytes(), e);
        let size = remote.fstat(handle).await.map_err(failed)?.size;
        let end = batch.offset + batch.data.len() as u64;
        if size >= end && self.holds(remote, batch).await.map_err(failed)? {
            tracing::info!("{path}: an append cut off by the lost connection had landed; not sent again");
            return Ok(());
        }
        if size == batch.offset {
            return write_all(remote, handle, path, batch.offset, batch.data.clone()).await;
        }
        tracing::warn!(
            "{path}: an O_APPEND write of {} bytes at {} was in flight when the connection was lost, and the \
             file (now {size} bytes) does not tell whether it landed: not sent again (EIO)",
            batch.data.len(),
            batch.offset
        );
        Err(VfsError::new("write", path, Errno::EIO))
    }

    /// Whether the remote file holds `batch`'s bytes at its offset (read
    /// through a handle of its own: the writer's may be write-only).
    async fn holds(&self, remote: &Arc<dyn Remote>, batch: &Batch) -> yonder_remote::Result<bool> {
        let Some(path) = self.ns.table().path(batch.ino) else {
            return Ok(false);
        };
        let (handle, attr) = match remote.open(&path, of::READ_ONLY | of::NOFOLLOW, 0, None).await {
            Ok(opened) => opened,
            Err(e) if e.is_connection_lost() => return Err(e),
            Err(_) => return Ok(false),
        };
        let mut same = self.ns.table().same_file(batch.ino, &attr);
        let mut offset = batch.offset;
        let mut rest = &batch.data[..];
        while same && !rest.is_empty() {
            let len = rest.len().min(yonder_proto::MAX_IO_SIZE as usize);
            let got = match remote.read(handle, offset, len as u32).await {
                Ok(got) => got,
                Err(e) => {
                    let _ = remote.close(handle).await;
                    return Err(e);
                }
            };
            same = !got.is_empty() && got[..] == rest[..got.len().min(len)];
            offset += got.len() as u64;
            rest = &rest[got.len().min(rest.len())..];
        }
        let _ = remote.close(handle).await;
        Ok(same)
    }
}

/// The error of a batch the remote never confirmed, the connection being
/// gone for good.
fn lost_for_good(batch: &Batch, reason: &str) -> VfsError {
    tracing::debug!(
        "write of {} bytes at {} of inode {}: not confirmed before the connection was lost for good ({reason})",
        batch.data.len(),
        batch.offset,
        batch.ino
    );
    VfsError::new("write", format!("<inode {}>", batch.ino), Errno::EIO)
}

/// Writes all of `data` at `offset`, in as many requests as the remote
/// accepts. Each request carries a slice of `data`, not a copy.
async fn write_all(
    remote: &Arc<dyn Remote>,
    handle: Handle,
    path: &str,
    mut offset: u64,
    data: Bytes,
) -> Result<()> {
    let mut rest = data;
    while !rest.is_empty() {
        let chunk = rest.len().min(yonder_proto::MAX_IO_SIZE as usize);
        let sent = remote
            .write(handle, offset, rest.slice(..chunk))
            .await
            .map_err(|e| VfsError::remote("write", path.as_bytes(), e))? as usize;
        if sent == 0 {
            return Err(VfsError::new("write", path, Errno::EIO));
        }
        rest = rest.slice(sent.min(rest.len())..);
        offset += sent as u64;
    }
    Ok(())
}
