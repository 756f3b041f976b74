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
//! on the next one, as for the live mount.
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
use crate::calls::RemoteCalls;
use crate::error::{display_path, Result};
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

/// Replays `entries` (oldest first) on the remote `calls` reach. Fails
/// only when the connection is gone for good: the journal is then kept
/// for the next mount.
pub(crate) async fn replay_left(calls: &RemoteCalls, entries: Vec<(Seq, Entry)>) -> Result<Recovered> {
    let mut done = Recovered::default();
    let mut entries = entries.into_iter().map(|(_, e)| e).peekable();
    while let Some(entry) = entries.next() {
        // The operation, how many journal entries it stands for, and what
        // it did.
        let (what, count, outcome) = match entry {
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
                while let Some(Entry::Write { ino: of_ino, .. }) = entries.peek() {
                    if *of_ino != ino {
                        break;
                    }
                    if let Some(Entry::Write { offset, data, .. }) = entries.next() {
                        pieces.push((offset, data));
                    }
                }
                let outcome = create_with(calls, &path, mode, flags, owner, &pieces).await;
                (
                    format!("create {}", display_path(&path)),
                    1 + pieces.len(),
                    outcome,
                )
            }
            Entry::Meta { op, .. } => {
                let outcome = carry_out(calls, &op, true).await.map(|_| ());
                (format!("{} {}", op.name(), display_path(op.path())), 1, outcome)
            }
            Entry::Write { path: None, .. } => {
                done.orphaned += 1;
                continue;
            }
            Entry::Write {
                path: Some(path),
                offset,
                data,
                ..
            } => {
                let mut pieces = vec![(offset, data)];
                while let Some(Entry::Write { path: Some(next), .. }) = entries.peek() {
                    if *next != path {
                        break;
                    }
                    if let Some(Entry::Write { offset, data, .. }) = entries.next() {
                        pieces.push((offset, data));
                    }
                }
                let outcome = write_to(calls, &path, &pieces).await;
                (format!("write {}", display_path(&path)), pieces.len(), outcome)
            }
        };
        match outcome {
            Ok(()) => done.replayed += count,
            // Gone for good: the journal stays for the next mount.
            Err(e) if e.source.as_ref().is_some_and(RemoteError::is_connection_lost) => return Err(e),
            Err(e) => {
                tracing::warn!("replaying the journal: {what}: refused by the remote: {e}");
                done.failed.push(format!("{what}: {e}"));
            }
        }
    }
    Ok(done)
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
