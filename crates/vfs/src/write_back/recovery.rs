//! The replay of what a process that ended left in the durable journal
//! (`disk_journal.rs`): operations it acknowledged and the remote never
//! confirmed, carried out in their order before the new mount serves
//! anything.
//!
//! The new process knows none of the old one's inode numbers or handles,
//! so everything goes by remote path: each metadata operation as its
//! write-back sends it after a lost connection (`meta::carry_out`: an
//! operation the dead process may have carried out is resolved from what
//! the remote shows), a creation with the data written after it through
//! one handle, other writes through a handle opened on the file's path.
//! Every call goes through `RemoteCalls::call_acknowledged`, so a
//! connection lost during the replay is waited out and the call resolved
//! on the next one, as for the live mount. Steps are ordered as the live
//! write-back orders them (`MetaOrder`: same path, nested paths or same
//! file wait for the earlier step; the others are in flight together).
//!
//! Exactly once: the dead process's operations travelled as `Once` under
//! its link's session, whose reply records this process cannot name (its
//! link picks a new session, so its own operation numbers never meet the
//! dead process's records). What the replay cannot tell from the remote
//! is therefore decided as the resolve steps decide it, with one choice
//! made here: an exclusive creation is sent without `O_EXCL`, since the
//! name existing most likely means the dead process created it (the mount
//! had found the name absent when it acknowledged the creation); it is
//! logged when it does exist.

use super::meta::carry_out;
use crate::attr::Ino;
use crate::calls::RemoteCalls;
use crate::error::{display_path, Result, VfsError};
use crate::journal::{Entry, MetaOp, Seq};
use bytes::Bytes;
use std::sync::Arc;
use yonder_proto::{open_flags as of, Errno, Owner};
use yonder_remote::{Remote, RemoteError};

/// What a replay of a journal left behind did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Operations carried out (or found carried out).
    pub replayed: usize,
    /// Operations the remote refused, each described with its error.
    pub failed: Vec<String>,
    /// Writes to files unlinked before the crash (their data had nowhere
    /// to go).
    pub orphaned: usize,
}

/// A file's data to write: (offset, bytes) in the order written.
type Pieces = Vec<(u64, Bytes)>;

/// One step of the replay: journal entries carried out together.
enum Step {
    /// A creation and the data written after it.
    Create {
        path: Vec<u8>,
        mode: u32,
        flags: u32,
        owner: Option<Owner>,
        pieces: Pieces,
    },
    Meta(MetaOp),
    /// Writes to the existing file at `path`.
    Write {
        path: Vec<u8>,
        pieces: Pieces,
    },
}

impl Step {
    fn path(&self) -> &[u8] {
        match self {
            Step::Create { path, .. } | Step::Write { path, .. } => path,
            Step::Meta(op) => op.path(),
        }
    }

    fn describe(&self) -> String {
        let name = match self {
            Step::Create { .. } => "create",
            Step::Meta(op) => op.name(),
            Step::Write { .. } => "write",
        };
        format!("{name} {}", display_path(self.path()))
    }

    /// Journal entries it stands for.
    fn entries(&self) -> usize {
        match self {
            Step::Create { pieces, .. } => 1 + pieces.len(),
            Step::Meta(_) => 1,
            Step::Write { pieces, .. } => pieces.len(),
        }
    }

    async fn run(&self, calls: &RemoteCalls) -> Result<()> {
        match self {
            Step::Create {
                path,
                mode,
                flags,
                owner,
                pieces,
            } => create_with(calls, path, *mode, *flags, *owner, pieces).await,
            Step::Meta(op) => carry_out(calls, op, true).await.map(|_| ()),
            Step::Write { path, pieces } => write_to(calls, path, pieces).await,
        }
    }
}

/// Steps carried out at once, at most: the replay is pipelined as the
/// live write-back is, operations on disjoint paths of different files
/// overlapping and the others waiting for those before them
/// (`MetaOrder`), so that a long journal over a slow link takes a few
/// round trips, not a few per file.
const IN_FLIGHT: usize = 64;

/// Replays `entries` (oldest first) on the remote `calls` reach. Fails
/// only when the connection is gone for good: the journal is then kept
/// for the next mount.
pub(crate) async fn replay_left(calls: &Arc<RemoteCalls>, entries: Vec<(Seq, Entry)>) -> Result<Recovered> {
    let mut done = Recovered::default();
    let mut steps = Vec::new();
    let mut entries = entries.into_iter().map(|(_, e)| e).peekable();
    while let Some(entry) = entries.next() {
        // Consecutive writes of one file go with it.
        let mut take_writes = |ino: Ino, path: Option<&[u8]>, pieces: &mut Pieces| {
            while let Some(Entry::Write {
                ino: next, path: at, ..
            }) = entries.peek()
            {
                let same = match path {
                    Some(path) => at.as_deref() == Some(path),
                    None => *next == ino,
                };
                if !same {
                    break;
                }
                if let Some(Entry::Write { offset, data, .. }) = entries.next() {
                    pieces.push((offset, data));
                }
            }
        };
        let (ino, step) = match entry {
            Entry::Meta {
                ino,
                op:
                    MetaOp::Create {
                        path,
                        mode,
                        flags,
                        owner,
                    },
            } => {
                let mut pieces = Pieces::new();
                take_writes(ino, None, &mut pieces);
                let step = Step::Create {
                    path,
                    mode,
                    flags,
                    owner,
                    pieces,
                };
                (ino, step)
            }
            Entry::Meta { ino, op } => (ino, Step::Meta(op)),
            Entry::Write { path: None, .. } => {
                done.orphaned += 1;
                continue;
            }
            Entry::Write {
                ino,
                path: Some(path),
                offset,
                data,
                ..
            } => {
                let mut pieces = vec![(offset, data)];
                take_writes(ino, Some(&path), &mut pieces);
                (ino, Step::Write { path, pieces })
            }
        };
        steps.push((ino, step));
    }
    let order = calls.order().clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut running = Vec::with_capacity(steps.len());
    for (ino, step) in steps {
        // The dead process's inode numbers: they tie a file's steps
        // together; nothing else is in the order before the mount serves.
        let (pending, before) = order.enqueue(step.path(), ino);
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let (calls, order) = (calls.clone(), order.clone());
        running.push(tokio::spawn(async move {
            for earlier in before {
                earlier.done().await;
            }
            let outcome = step.run(&calls).await;
            order.finish(&pending);
            drop(slot);
            (step.describe(), step.entries(), outcome)
        }));
    }
    let mut gone = None;
    for step in running {
        let (what, count, outcome) = step
            .await
            .map_err(|e| VfsError::new("replay", e.to_string(), Errno::EIO))?;
        match outcome {
            Ok(()) => done.replayed += count,
            // Gone for good: the journal stays for the next mount.
            Err(e) if e.source.as_ref().is_some_and(RemoteError::is_connection_lost) => {
                gone.get_or_insert(e);
            }
            Err(e) => {
                tracing::warn!("replaying the journal: {what}: refused by the remote: {e}");
                done.failed.push(format!("{what}: {e}"));
            }
        }
    }
    gone.map_or(Ok(done), Err)
}

/// Creates `path` and writes `pieces` to it through one handle.
async fn create_with(
    calls: &RemoteCalls,
    path: &[u8],
    mode: u32,
    flags: u32,
    owner: Option<Owner>,
    pieces: &Pieces,
) -> Result<()> {
    let exclusive = flags & of::EXCLUSIVE != 0;
    let mut flags = flags & !(of::EXCLUSIVE | of::APPEND);
    if flags & of::ACCESS_MASK == of::READ_ONLY {
        flags |= of::WRITE_ONLY;
    }
    if exclusive {
        if let Ok(attr) = calls.current().0.lstat(path).await {
            tracing::info!(
                "replaying the journal: create {}: it exists ({} bytes); taken as the one the ended \
                 process created, and written again",
                display_path(path),
                attr.size
            );
        }
    }
    let send = |r: Arc<dyn Remote>| async move {
        let (handle, _) = r.open(path, flags, mode, owner).await?;
        let written = write_pieces(&*r, handle, pieces).await;
        let closed = r.close(handle).await;
        written.and(closed)
    };
    calls
        .call_acknowledged("create", path, send, send)
        .await
        .map(|_| ())
}

/// Writes `pieces` to the existing file `path`.
async fn write_to(calls: &RemoteCalls, path: &[u8], pieces: &Pieces) -> Result<()> {
    let send = |r: Arc<dyn Remote>| async move {
        let (handle, _) = r.open(path, of::WRITE_ONLY, 0, None).await?;
        let written = write_pieces(&*r, handle, pieces).await;
        let closed = r.close(handle).await;
        written.and(closed)
    };
    calls
        .call_acknowledged("write", path, send, send)
        .await
        .map(|_| ())
}

/// Positioned writes: sent again after a lost answer, they land the same.
async fn write_pieces(
    remote: &dyn Remote,
    handle: yonder_proto::Handle,
    pieces: &Pieces,
) -> yonder_remote::Result<()> {
    for (offset, data) in pieces {
        let (mut offset, mut rest) = (*offset, data.clone());
        while !rest.is_empty() {
            let chunk = rest.slice(..rest.len().min(yonder_proto::MAX_IO_SIZE as usize));
            let sent = remote.write(handle, offset, chunk).await? as usize;
            if sent == 0 {
                return Err(RemoteError::os("write", "(replay)", Errno::EIO));
            }
            rest = rest.slice(sent.min(rest.len())..);
            offset += sent as u64;
        }
    }
    Ok(())
}
