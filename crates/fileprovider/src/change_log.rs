//! [`ChangeLog`]: the remote changes the VFS pushes, numbered, for change
//! enumeration from a sync anchor.

use crate::identifier::ItemIdentifier;
use crate::sync_anchor::SyncAnchor;
use crate::system::System;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use yonder_vfs::frontend::{CacheDrop, FrontendCaches};
use yonder_vfs::Vfs;

/// How many changes the log keeps; anchors older than what it holds are
/// expired, and the system enumerates everything again, which costs less
/// than holding a burst of changes (an untar on the remote) forever.
pub const MAX_CHANGES: usize = 10_000;

/// What a change says is stale.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Changed {
    /// The item at this path: changed, new, or gone.
    Item(Vec<u8>),
    /// The names in the directory at this path: some may be new or gone.
    Children(Vec<u8>),
}

struct LogState {
    /// The number of the latest change; 0 before any.
    latest: u64,
    /// Changes numbered `latest - changes.len() + 1 ..= latest`.
    changes: VecDeque<Changed>,
}

/// The FileProvider frontend's side of the VFS's
/// [`FrontendCaches`]: every cache drop the VFS sends after a remote
/// change is kept under a number, and the working set's enumerator is
/// signalled, so the system asks for the changes since its anchor.
pub struct ChangeLog {
    /// Weak: the VFS holds this log (as its frontend's caches).
    vfs: Weak<Vfs>,
    system: Arc<dyn System>,
    epoch: u64,
    state: Mutex<LogState>,
}

impl ChangeLog {
    pub fn new(vfs: &Arc<Vfs>, system: Arc<dyn System>) -> ChangeLog {
        ChangeLog {
            vfs: Arc::downgrade(vfs),
            system,
            // Anchors of an earlier process of the extension must not be taken
            // for this one's.
            epoch: yonder_vfs::fresh_epoch(),
            state: Mutex::new(LogState {
                latest: 0,
                changes: VecDeque::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The anchor of now: enumerating from it yields what changes after.
    pub fn current(&self) -> SyncAnchor {
        SyncAnchor {
            epoch: self.epoch,
            seq: self.state().latest,
        }
    }

    /// The changes after `anchor` (each once, in order of path), and the
    /// anchor they bring the system to; `None` if the anchor is expired:
    /// from another process, from the future, or older than the log.
    pub fn since(&self, anchor: SyncAnchor) -> Option<(Vec<Changed>, SyncAnchor)> {
        let state = self.state();
        let oldest_kept = state.latest - state.changes.len() as u64;
        if anchor.epoch != self.epoch || anchor.seq > state.latest || anchor.seq < oldest_kept {
            return None;
        }
        let skip = (anchor.seq - oldest_kept) as usize;
        let mut changes: Vec<Changed> = state.changes.iter().skip(skip).cloned().collect();
        changes.sort();
        changes.dedup();
        Some((
            changes,
            SyncAnchor {
                epoch: self.epoch,
                seq: state.latest,
            },
        ))
    }

    /// Numbers `changes` and tells the system.
    pub fn record(&self, changes: Vec<Changed>) {
        if changes.is_empty() {
            return;
        }
        {
            let mut state = self.state();
            for change in changes {
                state.latest += 1;
                state.changes.push_back(change);
            }
            let excess = state.changes.len().saturating_sub(MAX_CHANGES);
            state.changes.drain(..excess);
        }
        self.system.signal_enumerator(&ItemIdentifier::WorkingSet);
    }
}

impl FrontendCaches for ChangeLog {
    fn drop_cached(&self, drops: Vec<CacheDrop>) {
        let Some(vfs) = self.vfs.upgrade() else { return };
        let changes = drops
            .into_iter()
            .filter_map(|drop| match drop {
                CacheDrop::Entry { parent, name } => {
                    let mut path = vfs.path_of(parent)?;
                    if !path.is_empty() {
                        path.push(b'/');
                    }
                    path.extend_from_slice(&name);
                    Some(Changed::Item(path))
                }
                CacheDrop::Attributes { ino } => vfs.path_of(ino).map(Changed::Item),
                CacheDrop::Listing { ino } => vfs.path_of(ino).map(Changed::Children),
            })
            .collect();
        self.record(changes);
    }
}
