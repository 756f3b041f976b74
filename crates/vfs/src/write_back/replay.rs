//! Writes the agent has not confirmed, and their replay on a new
//! connection.
//!
//! Write-back sends an inode's acknowledged writes as batches (one remote
//! write of gathered data, `mod.rs`, sent by `batches.rs`). Each batch
//! carries the journal entries it is made of (`journal.rs`) and is tracked
//! until it is settled: confirmed by the agent (its entries leave the journal), or
//! failed with an error the writer is told of. A batch is sent by a task
//! of its own, once the batches of the same inode it overlaps (any, for an
//! append) are settled, so an inode's writes reach the remote in the order
//! they were made.
//!
//! When a connection is lost with batches on it, nobody can tell whether
//! the agent carried them out. The batch's task does not send it again:
//! the next connection replays every batch sent on an older one, in
//! sequence order, before anything else runs on it (the connection counts
//! as up only afterwards, `connection.rs`), so a replayed write never lands
//! after a newer one. A positioned write sent twice is harmless: same
//! offset, same bytes. An O_APPEND write is not: it is re-sent only if the
//! file ends where the write should begin; if the file already holds the
//! write's bytes there it landed and counts as confirmed; otherwise the
//! writer gets EIO, as a duplicate append would corrupt the file.
//!
//! A batch is claimed for one connection at a time (`Sending(generation)`,
//! under the registry's lock), so the replay and the batch's own task
//! never both send it: a task that finds its batch claimed by a replay
//! waits for the replay's verdict.

use super::batches::Batches;
use crate::calls::RemoteCalls;
use crate::connection::Generation;
use crate::events::{Events, VfsEvent};
use crate::namespace::Namespace;
use crate::open_files::OpenFiles;
use crate::sync::lock;
use std::sync::{Arc, Mutex, Weak};
use tokio::task::JoinHandle;
use yonder_remote::Remote;

/// The replay of unconfirmed writes on the newest connection.
pub(super) struct Replay {
    /// The replay running, if any.
    task: Mutex<Option<JoinHandle<()>>>,
    batches: Arc<Batches>,
    files: Arc<OpenFiles>,
    ns: Arc<Namespace>,
    calls: Arc<RemoteCalls>,
    events: Events,
    runtime: tokio::runtime::Handle,
    /// For the replay's task: a dropped VFS stops it.
    me: Weak<Replay>,
}

impl Replay {
    pub fn new(
        batches: Arc<Batches>,
        files: Arc<OpenFiles>,
        ns: Arc<Namespace>,
        calls: Arc<RemoteCalls>,
        events: Events,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Replay> {
        Arc::new_cyclic(|me| Replay {
            task: Mutex::new(None),
            batches,
            files,
            ns,
            calls,
            events,
            runtime,
            me: me.clone(),
        })
    }

    /// Starts the replay on `generation`, just put in place with `remote`
    /// (an earlier one still running is stopped: its connection is gone).
    pub fn start(&self, remote: Arc<dyn Remote>, generation: Generation) {
        let me = self.me.clone();
        let replay = self.runtime.spawn(async move {
            if let Some(replay) = me.upgrade() {
                replay.run(remote, generation).await;
            }
        });
        if let Some(previous) = lock(&self.task).replace(replay) {
            previous.abort();
        }
    }

    /// Replays on `generation` (just put in place) the batches sent on
    /// older connections, oldest first, then lets everything else use it.
    /// First every open file is reopened there (by path, identity
    /// checked): a file that is still where it was keeps working even if
    /// its name is removed right after, and one that is gone is known lost
    /// at once.
    async fn run(&self, remote: Arc<dyn Remote>, generation: Generation) {
        if !self.files.reopen_all(&remote, generation).await {
            return;
        }
        let batches = self.batches.begin_replay(generation);
        let (mut replayed, mut failed) = (0usize, 0usize);
        let bytes: usize = batches.iter().map(|b| b.data.len()).sum();
        for batch in batches {
            if self.calls.current().1 != generation {
                return;
            }
            match self.batches.send_batch(&batch, &remote, generation, true).await {
                Err(e) if e.is_connection_lost() => {
                    tracing::info!("replay of unconfirmed writes interrupted: {e}");
                    return;
                }
                Ok(()) => {
                    replayed += 1;
                    self.batches.settle(&batch, Some(generation), Ok(()));
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!("unconfirmed write not replayed: {e}");
                    self.events.emit(VfsEvent::WriteLost {
                        ino: batch.ino,
                        path: self.ns.describe(batch.ino),
                        error: e.to_string(),
                    });
                    self.batches.settle(&batch, Some(generation), Err(e));
                }
            }
        }
        if replayed + failed > 0 {
            tracing::info!("replayed {replayed} unconfirmed writes ({bytes} bytes) on the new connection, {failed} failed");
        }
        if self.calls.mark_up(generation) {
            self.events.emit(VfsEvent::Reconnected {
                generation: generation.0,
                replayed,
                failed,
            });
        }
    }
}
