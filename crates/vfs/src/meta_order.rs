//! The order of metadata operations acknowledged before the remote carried
//! them out (metadata write-back, `write_back/meta.rs`).
//!
//! The agent runs the requests of one connection concurrently, so two
//! requests on the wire at once may be carried out in either order. Order
//! is therefore kept here, on the client: every acknowledged operation is
//! registered under the remote path it acts on, and is sent only once every
//! earlier unsettled operation on that path, on one of its ancestors, or on
//! anything below it has settled. Operations on disjoint paths (the files
//! of an untar, the unlinks of an `rm -rf`) are independent and go out
//! together, many in flight. Every other remote call of the VFS on a path
//! waits the same way ([`MetaOrder::settled`], from `calls.rs` and the
//! listings), so nothing reads the remote before what was acknowledged
//! about that path has reached it.
//!
//! Paths are what the remote is called with: byte strings relative to the
//! root, `a/b/c`, the root being empty. The VFS builds them from its own
//! inode table, never through a symlink, so an operation's effect on the
//! tree is confined to its path and what is below it.

use crate::attr::Ino;
use crate::sync::lock;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// One acknowledged operation not settled yet.
pub(crate) struct Pending {
    id: u64,
    pub path: Vec<u8>,
    /// The inode it acts on: calls through the inode's handles wait for
    /// it too (its path may be gone, unlinked while open).
    ino: Ino,
    done: watch::Sender<bool>,
    /// Someone waits for this operation: one that holds back to gather
    /// more (a create waiting for its file's close) goes out at once.
    hurry: Notify,
    /// The operations this one waits for. Weak: a settled one is dropped
    /// from the index and need not live on.
    waits_for: Vec<Weak<Pending>>,
}

impl Pending {
    /// Waits until the operation is settled.
    pub async fn done(&self) {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    pub fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// Asks the operation, and every one it waits for, not to hold back
    /// any longer: a create held for its file's close, with a change of
    /// the file queued after it, would otherwise keep whoever waits for
    /// that change waiting until the close.
    pub fn hurry(&self) {
        self.hurry.notify_one();
        let mut seen = HashSet::new();
        let mut stack: Vec<Arc<Pending>> = self.waits_for.iter().filter_map(Weak::upgrade).collect();
        while let Some(p) = stack.pop() {
            // What a settled operation waited for is settled too.
            if p.is_done() || !seen.insert(p.id) {
                continue;
            }
            p.hurry.notify_one();
            stack.extend(p.waits_for.iter().filter_map(Weak::upgrade));
        }
    }

    /// Resolves once someone asked for the operation ([`Pending::hurry`]).
    pub async fn hurried(&self) {
        self.hurry.notified().await;
    }
}

#[derive(Default)]
struct Index {
    next: u64,
    /// The newest unsettled operation on each path: it waits for the ones
    /// before it on that path, so it stands for all of them.
    at: HashMap<Vec<u8>, Arc<Pending>>,
    /// Every unsettled operation below each directory path.
    below: HashMap<Vec<u8>, HashMap<u64, Arc<Pending>>>,
    all: HashMap<u64, Arc<Pending>>,
    by_ino: HashMap<Ino, HashMap<u64, Arc<Pending>>>,
}

impl Index {
    /// Unsettled operations an operation on `path` must come after.
    fn conflicts(&self, path: &[u8]) -> Vec<Arc<Pending>> {
        let mut found: Vec<Arc<Pending>> = ancestors(path)
            .chain(std::iter::once(path))
            .filter_map(|p| self.at.get(p).cloned())
            .collect();
        if let Some(under) = self.below.get(path) {
            found.extend(under.values().cloned());
        }
        found
    }
}

/// Every proper ancestor of `path`, the root (empty) first; none for the
/// root itself.
fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let root = (!path.is_empty()).then_some(&path[..0]);
    root.into_iter().chain(
        path.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(move |(i, _)| &path[..i]),
    )
}

/// The unsettled acknowledged operations, by path.
#[derive(Default)]
pub(crate) struct MetaOrder {
    index: Mutex<Index>,
}

impl MetaOrder {
    /// Registers an operation on `path`; returns it and the operations it
    /// must wait for.
    pub fn enqueue(&self, path: &[u8], ino: Ino) -> (Arc<Pending>, Vec<Arc<Pending>>) {
        let mut index = lock(&self.index);
        let mut before = index.conflicts(path);
        before.extend(
            index
                .by_ino
                .get(&ino)
                .into_iter()
                .flat_map(|m| m.values().cloned()),
        );
        before.sort_by_key(|p| p.id);
        before.dedup_by_key(|p| p.id);
        index.next += 1;
        let pending = Arc::new(Pending {
            id: index.next,
            path: path.to_vec(),
            ino,
            done: watch::Sender::new(false),
            hurry: Notify::new(),
            waits_for: before.iter().map(Arc::downgrade).collect(),
        });
        index.at.insert(path.to_vec(), pending.clone());
        for dir in ancestors(path) {
            index
                .below
                .entry(dir.to_vec())
                .or_default()
                .insert(pending.id, pending.clone());
        }
        index.all.insert(pending.id, pending.clone());
        index
            .by_ino
            .entry(ino)
            .or_default()
            .insert(pending.id, pending.clone());
        (pending, before)
    }

    /// `pending` is settled: operations waiting for it may go.
    pub fn finish(&self, pending: &Pending) {
        let mut index = lock(&self.index);
        index.all.remove(&pending.id);
        if let Some(of_ino) = index.by_ino.get_mut(&pending.ino) {
            of_ino.remove(&pending.id);
            if of_ino.is_empty() {
                index.by_ino.remove(&pending.ino);
            }
        }
        if index.at.get(&pending.path).is_some_and(|p| p.id == pending.id) {
            index.at.remove(&pending.path);
        }
        for dir in ancestors(&pending.path) {
            if let Some(under) = index.below.get_mut(dir) {
                under.remove(&pending.id);
                if under.is_empty() {
                    index.below.remove(dir);
                }
            }
        }
        drop(index);
        pending.done.send_replace(true);
    }

    /// Unsettled operations a call on `path` must wait for.
    pub fn conflicts(&self, path: &[u8]) -> Vec<Arc<Pending>> {
        lock(&self.index).conflicts(path)
    }

    /// Unsettled operations on `ino`, whatever its path.
    pub fn of_ino(&self, ino: Ino) -> Vec<Arc<Pending>> {
        lock(&self.index)
            .by_ino
            .get(&ino)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether nothing acknowledged about `path` (or below it) waits.
    pub fn is_quiet(&self, path: &[u8]) -> bool {
        self.conflicts(path).is_empty()
    }

    /// Whether nothing but `own` is unsettled on `path` or below it (what
    /// could still change the attributes of what `path` names; an
    /// operation on a directory above does not).
    pub fn is_quiet_at_but(&self, path: &[u8], own: &Arc<Pending>) -> bool {
        let index = lock(&self.index);
        let at = index.at.get(path).is_none_or(|p| Arc::ptr_eq(p, own));
        at && index
            .below
            .get(path)
            .is_none_or(|under| under.values().all(|p| Arc::ptr_eq(p, own)))
    }

    /// Every unsettled operation.
    pub fn all(&self) -> Vec<Arc<Pending>> {
        lock(&self.index).all.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        lock(&self.index).all.len()
    }

    /// Waits until every operation acknowledged on `path`, its ancestors
    /// or below it has settled (until `deadline`: `Err(())` past it).
    pub async fn settled(&self, path: &[u8], deadline: Option<Instant>) -> std::result::Result<(), ()> {
        wait_all(self.conflicts(path), deadline).await
    }
}

/// Waits for each of `pending` to settle, hurrying them on.
pub(crate) async fn wait_all(
    pending: Vec<Arc<Pending>>,
    deadline: Option<Instant>,
) -> std::result::Result<(), ()> {
    for p in &pending {
        p.hurry();
    }
    for p in pending {
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, p.done())
                .await
                .map_err(|_| ())?,
            None => p.done().await,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ids(found: &[Arc<Pending>]) -> Vec<u64> {
        let mut ids: Vec<u64> = found.iter().map(|p| p.id).collect();
        ids.sort();
        ids
    }

    /// A create held for its file's close, a change of the file queued
    /// after it: whoever waits for the change hurries the create too.
    #[tokio::test]
    async fn waiting_for_an_operation_hurries_those_it_waits_for() {
        let order = MetaOrder::default();
        let (create, _) = order.enqueue(b"f", Ino(2));
        let (utimes, before) = order.enqueue(b"f", Ino(2));
        assert_eq!(ids(&before), [create.id]);
        let held = create.clone();
        let sent = tokio::spawn(async move {
            // As the write-back holds a create until its file is closed.
            tokio::time::timeout(Duration::from_secs(3600), held.hurried())
                .await
                .is_ok()
        });
        tokio::task::yield_now().await;
        let waiter = tokio::spawn({
            let utimes = utimes.clone();
            async move { wait_all(vec![utimes], None).await }
        });
        assert!(
            tokio::time::timeout(Duration::from_secs(5), sent)
                .await
                .unwrap()
                .unwrap(),
            "the create was hurried"
        );
        order.finish(&create);
        order.finish(&utimes);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[test]
    fn ancestors_run_from_the_root_down() {
        let found: Vec<&[u8]> = ancestors(b"a/b/c").collect();
        assert_eq!(found, [&b""[..], b"a", b"a/b"]);
        assert_eq!(ancestors(b"").count(), 0);
    }

    #[test]
    fn an_operation_waits_for_its_path_its_ancestors_and_what_is_below_it() {
        let order = MetaOrder::default();
        let (mkdir, before) = order.enqueue(b"d", Ino(2));
        assert!(before.is_empty());
        let (create, before) = order.enqueue(b"d/f", Ino(3));
        assert_eq!(
            ids(&before),
            [mkdir.id],
            "a create in a new directory waits for the mkdir"
        );
        let (sibling, before) = order.enqueue(b"d/g", Ino(4));
        assert_eq!(ids(&before), [mkdir.id], "siblings do not wait for each other");
        let (other, before) = order.enqueue(b"e", Ino(5));
        assert!(before.is_empty(), "another tree is independent");
        let (rmdir, before) = order.enqueue(b"d", Ino(2));
        assert_eq!(ids(&before), [mkdir.id, create.id, sibling.id]);
        order.finish(&mkdir);
        order.finish(&create);
        assert_eq!(
            ids(&order.conflicts(b"d/f")),
            [rmdir.id],
            "the newest on a path stands for it"
        );
        order.finish(&sibling);
        order.finish(&rmdir);
        assert!(order.is_quiet(b"d") && !order.is_quiet(b"e") && !order.is_quiet(b""));
        order.finish(&other);
        assert_eq!(order.len(), 0);
        assert!(other.is_done());
    }
}
