//! The journal of unconfirmed mutations: what an application was told had
//! succeeded but the agent has not confirmed yet.
//!
//! Write-back acknowledges a `write` before the data reaches the remote
//! (it is buffered, or on its way). Each such write is recorded here,
//! under an increasing sequence number, before `write` returns, and stays
//! until the agent confirms it (or its failure is reported to the
//! application at its next write, flush or fsync). After a lost connection
//! the VFS replays what the old connection had not confirmed on the new
//! one, in sequence order (`write_back/replay.rs`), before anything else runs there.
//!
//! [`Journal`] is the storage; [`MemoryJournal`] keeps it in memory, so an
//! acknowledged write survives a disconnection but not the end of the
//! process. A durable journal on disk (write-back data and metadata
//! replayed after a crash as after a disconnection) implements the same
//! trait and reuses the same replay: after a crash, every unconfirmed
//! entry is replayed in order, by inode path and identity.

use crate::attr::{Fh, Ino};
use crate::sync::lock;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Mutex;
use yonder_proto::{Owner, SetAttr};

/// An entry's place in the journal: later mutations have larger numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(pub u64);

/// A mutation an application was told succeeded.
#[derive(Clone, Debug)]
pub enum Entry {
    /// `data` written at `offset` of `ino` through handle `fh`. With
    /// `append` (O_APPEND) the remote writes it at its end of file, which
    /// the kernel said was `offset`.
    /// `path`: the inode's remote path when it was written (none once
    /// unlinked), for a replay after a restart, which knows no inode
    /// numbers.
    Write {
        ino: Ino,
        fh: Fh,
        path: Option<Vec<u8>>,
        offset: u64,
        data: Bytes,
        append: bool,
    },
    /// A metadata operation on `ino`, acknowledged before the remote
    /// carried it out (metadata write-back); sent in order with the others
    /// (`meta_order.rs`).
    Meta { ino: Ino, op: MetaOp },
}

/// A metadata operation as the remote is asked for it: remote paths and
/// plain values only, no handles or in-memory references, so that a
/// durable journal can write it down and replay it after a restart.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MetaOp {
    /// Create (open with O_CREAT) the regular file `path`. The data
    /// written before it was sent travels with it (`Entry::Write`s of the
    /// same inode, in sequence order); with `close`, the file was closed
    /// before it was sent and the handle is closed after them.
    Create {
        path: Vec<u8>,
        mode: u32,
        flags: u32,
        owner: Option<Owner>,
    },
    Mkdir {
        path: Vec<u8>,
        mode: u32,
        owner: Option<Owner>,
    },
    Symlink {
        path: Vec<u8>,
        target: Vec<u8>,
        owner: Option<Owner>,
    },
    Unlink {
        path: Vec<u8>,
    },
    Rmdir {
        path: Vec<u8>,
    },
    /// A change of mode, owner or times by path (a truncation is never
    /// acknowledged ahead).
    Setattr {
        path: Vec<u8>,
        attr: SetAttr,
    },
}

impl MetaOp {
    /// The remote path it acts on.
    pub fn path(&self) -> &[u8] {
        match self {
            MetaOp::Create { path, .. }
            | MetaOp::Mkdir { path, .. }
            | MetaOp::Symlink { path, .. }
            | MetaOp::Unlink { path }
            | MetaOp::Rmdir { path }
            | MetaOp::Setattr { path, .. } => path,
        }
    }

    /// The name of the operation, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            MetaOp::Create { .. } => "create",
            MetaOp::Mkdir { .. } => "mkdir",
            MetaOp::Symlink { .. } => "symlink",
            MetaOp::Unlink { .. } => "unlink",
            MetaOp::Rmdir { .. } => "rmdir",
            MetaOp::Setattr { .. } => "setattr",
        }
    }
}

impl Entry {
    /// Bytes of data the entry carries.
    pub fn len(&self) -> usize {
        match self {
            Entry::Write { data, .. } => data.len(),
            Entry::Meta { .. } => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where unconfirmed mutations wait for the agent's confirmation.
pub trait Journal: Send + Sync + 'static {
    /// Records `entry` under the next sequence number. Called before the
    /// application is told the mutation succeeded.
    fn record(&self, entry: Entry) -> Seq;
    /// These entries are done (the agent confirmed them, or their failure
    /// was handed to the application): they leave the journal.
    fn confirm(&self, seqs: &[Seq]);
    /// Every entry not confirmed yet, oldest first: what a replay sends.
    fn unconfirmed(&self) -> Vec<(Seq, Entry)>;
    /// How many entries, and bytes of data, are unconfirmed.
    fn pending(&self) -> (usize, u64);
    /// The remote renamed `from` to `to` (carried out, not acknowledged
    /// ahead; with `exchange`, swapped them): entries recorded before it
    /// name the old paths, which a replay after a restart (by path) must
    /// read as the new ones, and writes to a file renamed over have no
    /// path left. The VFS's own replay goes by inode and needs nothing.
    fn renamed(&self, _from: &[u8], _to: &[u8], _exchange: bool) {}
}

/// A [`Journal`] in memory.
#[derive(Default)]
pub struct MemoryJournal {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    next: u64,
    entries: BTreeMap<Seq, Entry>,
    bytes: u64,
}

impl Journal for MemoryJournal {
    fn record(&self, entry: Entry) -> Seq {
        let mut inner = lock(&self.inner);
        inner.next += 1;
        let seq = Seq(inner.next);
        inner.bytes += entry.len() as u64;
        inner.entries.insert(seq, entry);
        seq
    }

    fn confirm(&self, seqs: &[Seq]) {
        let mut inner = lock(&self.inner);
        for seq in seqs {
            if let Some(entry) = inner.entries.remove(seq) {
                inner.bytes -= entry.len() as u64;
            }
        }
    }

    fn unconfirmed(&self) -> Vec<(Seq, Entry)> {
        let inner = lock(&self.inner);
        inner.entries.iter().map(|(s, e)| (*s, e.clone())).collect()
    }

    fn pending(&self) -> (usize, u64) {
        let inner = lock(&self.inner);
        (inner.entries.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(offset: u64, data: &'static [u8]) -> Entry {
        Entry::Write {
            ino: Ino(2),
            fh: Fh(1),
            path: Some(b"f".to_vec()),
            offset,
            data: Bytes::from_static(data),
            append: false,
        }
    }

    #[test]
    fn entries_stay_until_confirmed_and_come_back_in_order() {
        let journal = MemoryJournal::default();
        let a = journal.record(write(0, b"abc"));
        let b = journal.record(write(3, b"de"));
        let c = journal.record(write(5, b"f"));
        assert!(a < b && b < c);
        assert_eq!(journal.pending(), (3, 6));
        journal.confirm(&[b]);
        let left: Vec<Seq> = journal.unconfirmed().into_iter().map(|(s, _)| s).collect();
        assert_eq!(left, [a, c]);
        journal.confirm(&[a, c, a]);
        assert_eq!(journal.pending(), (0, 0));
        assert!(journal.record(write(0, b"x")) > c, "numbers are never reused");
    }
}
