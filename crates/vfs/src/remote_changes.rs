//! [`RemoteChanges`]: what the remote pushes of its changes, applied to
//! the VFS's caches and passed on to the frontend's, and whether it
//! pushes them at all, which decides how long the caches are trusted (see
//! `cache_policy.rs`).
//!
//! Each changed path is asked again (one `lstat` each, all at once) and
//! compared with what the caches hold: the same node with the same size,
//! times, mode and link count is left alone (a change this mount made,
//! echoed back, costs that `lstat` and nothing more: a directory this
//! mount filled stays known); the same node changed gets the new
//! attributes, its data dropped only once they show another size or
//! mtime; another node, a new name or a name gone makes its directory's
//! names unknown, and a directory's what is below it.
//! When changes stop being pushed (the remote cannot, its watch ran into a
//! limit or its queue overflowed), everything cached is expired and the
//! TTLs are shortened, said once in the log and as a [`VfsEvent`].

use crate::attr::{FileKind, Ino};
use crate::cache_policy::{Change, Pushed};
use crate::calls::RemoteCalls;
use crate::error::{display_path, Result};
use crate::events::{Events, VfsEvent};
use crate::frontend_caches::{CacheDrop, FrontendCaches};
use crate::namespace::Namespace;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use yonder_proto::{Attr, ChangeKind, Errno, PathChange};
use yonder_remote::RemoteChange;

/// How many times a changed path is asked about before the worst is
/// assumed, and how long apart.
const RECHECKS: u32 = 3;
const RECHECK_AGAIN: std::time::Duration = std::time::Duration::from_millis(20);
/// How many more times, while an operation of this mount is changing the
/// names there (its answer is what settles the question): 10 s.
const RECHECKS_WHILE_MOVING: u32 = 500;

/// How often a changed path was asked about: the tries that count
/// towards [`RECHECKS`], and those made while an operation of this mount
/// was changing the names there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tries {
    counted: u32,
    while_moving: u32,
}

/// What a changed path's answer settled.
enum Settled {
    Yes,
    /// Not yet: ask again (an answer may be on its way).
    AskAgain,
    /// Not yet, and an operation of this mount is changing the names
    /// there: ask again, without counting it among the tries.
    AskWhileMoving,
}

pub(crate) struct RemoteChanges {
    ns: Arc<Namespace>,
    calls: Arc<RemoteCalls>,
    events: Events,
    /// Set once by the frontend that serves the VFS.
    frontend: OnceLock<Arc<dyn FrontendCaches>>,
}

impl RemoteChanges {
    pub fn new(ns: Arc<Namespace>, calls: Arc<RemoteCalls>, events: Events) -> RemoteChanges {
        RemoteChanges {
            ns,
            calls,
            events,
            frontend: OnceLock::new(),
        }
    }

    pub fn set_frontend(&self, caches: Arc<dyn FrontendCaches>) {
        if self.frontend.set(caches).is_err() {
            tracing::debug!("a frontend's caches were already registered");
        }
    }

    /// Whether the remote pushes its changes now.
    pub fn pushed(&self) -> bool {
        self.ns.policy().pushed() == Pushed::Yes
    }

    pub async fn apply(&self, change: RemoteChange) {
        let drops = match change {
            RemoteChange::Changed(changes) => self.recheck(changes).await,
            RemoteChange::Unknown { reason } => {
                tracing::debug!("forgetting every cached attribute and name: {reason}");
                self.everything()
            }
            RemoteChange::Watching { active, feed, reason } => self.watching(active, feed, reason),
        };
        if let (false, Some(frontend)) = (drops.is_empty(), self.frontend.get()) {
            frontend.drop_cached(drops);
        }
    }

    /// Asks the remote what each changed path holds now, all at once, and
    /// forgets what that shows stale. Meanwhile the caches answer as
    /// before.
    async fn recheck(&self, changes: Vec<PathChange>) -> Vec<CacheDrop> {
        let mut checks = tokio::task::JoinSet::new();
        let ask = |checks: &mut tokio::task::JoinSet<_>, change: PathChange, tries: Tries| {
            let calls = self.calls.clone();
            checks.spawn(async move {
                if tries != Tries::default() {
                    tokio::time::sleep(RECHECK_AGAIN).await;
                }
                let p = &change.path[..];
                let asked = Instant::now();
                let found = calls.call("lstat", p, |r| async move { r.lstat(p).await }).await;
                (change, tries, asked, found)
            });
        };
        let mut trees = Vec::new();
        for change in changes {
            if change.kind == ChangeKind::Tree {
                trees.push(change.path.to_vec());
            }
            let (parent, ino) = self.known(&change.path);
            // Nothing cached about it or its directory: nothing to forget.
            if parent.is_some() || ino.is_some() {
                ask(&mut checks, change, Tries::default());
            }
        }
        let mut drops = Vec::new();
        for path in trees {
            self.forget_below(&path, &mut drops);
        }
        while let Some(checked) = checks.join_next().await {
            match checked {
                Ok((change, tries, asked, found)) => {
                    let last = tries.counted + 1 >= RECHECKS;
                    let wait_more = tries.while_moving < RECHECKS_WHILE_MOVING;
                    match self.settle(&change, asked, found, last, wait_more, &mut drops) {
                        Settled::Yes => {}
                        Settled::AskAgain => ask(
                            &mut checks,
                            change,
                            Tries {
                                counted: tries.counted + 1,
                                ..tries
                            },
                        ),
                        Settled::AskWhileMoving => ask(
                            &mut checks,
                            change,
                            Tries {
                                while_moving: tries.while_moving + 1,
                                ..tries
                            },
                        ),
                    }
                }
                Err(e) => tracing::debug!("re-checking a changed path: {e}"),
            }
        }
        drops
    }

    /// Forgets what is cached at and below `path` (a directory that moved
    /// there, changes in which may have gone unseen), the frontend's
    /// entries too.
    fn forget_below(&self, path: &[u8], drops: &mut Vec<CacheDrop>) {
        let mut table = self.ns.table();
        let Some(ino) = table.resolve(path) else { return };
        for (parent, name) in table.names_below(ino) {
            drops.push(CacheDrop::Entry { parent, name });
        }
        table.changed(ino, Change::Notified);
        table.changed(ino, Change::NotifiedTree);
        drops.push(CacheDrop::Listing { ino });
    }

    /// The inodes of `path`'s directory and of `path`, where known.
    fn known(&self, path: &[u8]) -> (Option<Ino>, Option<Ino>) {
        let parent_path = match path.iter().rposition(|b| *b == b'/') {
            Some(at) => &path[..at],
            None => &b""[..],
        };
        let table = self.ns.table();
        let parent = (!path.is_empty()).then(|| table.resolve(parent_path)).flatten();
        (parent, table.resolve(path))
    }

    /// What the remote held at a changed path when `asked` (`found`)
    /// against what the caches say. Not settled when it cannot tell yet
    /// (the name is not known here as the remote has it, and its directory
    /// changed here since: an answer that the notice overtook may be on its
    /// way), unless this is the `last` try, which assumes the worst; while
    /// an operation of this mount is changing the directory's names, and
    /// `wait_more`, the tries are not counted.
    fn settle(
        &self,
        change: &PathChange,
        asked: Instant,
        found: Result<Attr>,
        last: bool,
        wait_more: bool,
        drops: &mut Vec<CacheDrop>,
    ) -> Settled {
        let path = &change.path[..];
        let name = match path.iter().rposition(|b| *b == b'/') {
            Some(at) => &path[at + 1..],
            None => path,
        };
        let (parent, ino) = self.known(path);
        // A node this mount created ahead of the remote, not carried out
        // yet: whatever the remote says now is from before its creation
        // (or its echo, overtaking the answer that identifies it).
        let created_here_pending = ino.is_some_and(|ino| {
            self.ns.table().remote_id(ino).is_none() && !self.calls.order().of_ino(ino).is_empty()
        });
        let mut table = self.ns.table();
        // Whether the directory's names are being changed by this mount, or
        // were since the remote was asked: a name the answer shows and the
        // table does not may be this mount's, its answer on its way.
        let names_moving = |table: &crate::namespace::InodeTable, p: Ino| {
            table.changed_since(p, asked) || table.names_changing_at_or_above(p)
        };
        match (&found, ino) {
            // The same node is there: at most its attributes moved. They
            // are asked again when next needed, not taken from this answer,
            // which a change made here since may have overtaken; one made
            // here since it was asked is newer than it anyway.
            (Ok(attr), Some(ino)) if table.same_file(ino, attr) => {
                let known = table.get(ino).and_then(|n| n.attr);
                let remote = (attr.size, attr.mtime, attr.ctime, attr.mode & 0o7777, attr.nlink);
                let differs = known.map(|k| (k.size, k.mtime, k.ctime, k.perm, k.nlink)) != Some(remote);
                if differs && !table.changed_since(ino, asked) {
                    table.changed(ino, Change::NotifiedContent);
                    drops.push(CacheDrop::Attributes { ino });
                }
            }
            (_, Some(_)) if created_here_pending => {}
            // Gone, and not known here either.
            (Err(e), None) if e.errno() == Errno::ENOENT => {}
            // A name this mount does not know, and no creation of this
            // mount may explain it: the directory's names are asked again.
            // Entering names one by one as their answers come in would let
            // a listing served from the table meanwhile show a burst of new
            // names only in part.
            (Ok(_), None) if parent.is_some_and(|p| !names_moving(&table, p)) => {
                let parent = parent.expect("matched");
                table.changed(parent, Change::NamesUnknown);
                table.changed(parent, Change::Entries);
                drops.push(CacheDrop::Entry {
                    parent,
                    name: name.to_vec(),
                });
                drops.push(CacheDrop::Listing { ino: parent });
            }
            // A name the remote no longer has, in a directory unchanged
            // here since: that one name is put right, the directory's
            // other names stay known.
            (Err(e), Some(ino))
                if e.errno() == Errno::ENOENT && parent.is_some_and(|p| !names_moving(&table, p)) =>
            {
                let parent = parent.expect("matched");
                table.unlink(parent, name);
                table.changed(parent, Change::Entries);
                table.changed(ino, Change::Notified);
                table.changed(ino, Change::NotifiedTree);
                drops.push(CacheDrop::Entry {
                    parent,
                    name: name.to_vec(),
                });
                drops.push(CacheDrop::Listing { ino: parent });
                drops.push(CacheDrop::Attributes { ino });
            }
            (Ok(_), None) | (Err(_), Some(_))
                if parent.is_some()
                    && (found.is_ok() || found.as_ref().is_err_and(|e| e.errno() == Errno::ENOENT)) =>
            {
                let parent = parent.expect("matched");
                if wait_more && table.names_changing_at_or_above(parent) {
                    return Settled::AskWhileMoving;
                }
                if !last {
                    return Settled::AskAgain;
                }
                self.assume_the_worst(&mut table, path, name, Some(parent), ino, change, drops);
            }
            // Another node, or no answer: what the directory holds is
            // asked again.
            _ => self.assume_the_worst(&mut table, path, name, parent, ino, change, drops),
        }
        Settled::Yes
    }

    /// What the directory holds, and the node, are asked again.
    #[allow(clippy::too_many_arguments)]
    fn assume_the_worst(
        &self,
        table: &mut crate::namespace::InodeTable,
        path: &[u8],
        name: &[u8],
        parent: Option<Ino>,
        ino: Option<Ino>,
        change: &PathChange,
        drops: &mut Vec<CacheDrop>,
    ) {
        tracing::trace!("{} changed on the remote ({:?})", display_path(path), change.kind);
        if let Some(parent) = parent {
            table.changed(parent, Change::NamesUnknown);
            drops.push(CacheDrop::Entry {
                parent,
                name: name.to_vec(),
            });
            drops.push(CacheDrop::Listing { ino: parent });
        }
        if let Some(ino) = ino {
            table.changed(ino, Change::Notified);
            table.changed(ino, Change::NotifiedTree);
            drops.push(CacheDrop::Attributes { ino });
        }
    }

    /// Expires everything cached, and says what the frontend drops.
    fn everything(&self) -> Vec<CacheDrop> {
        let mut table = self.ns.table();
        table.expire_all();
        let mut drops: Vec<CacheDrop> = table
            .known_inodes()
            .into_iter()
            .map(|ino| match table.get(ino).map(|n| n.kind) {
                Some(FileKind::Directory) => CacheDrop::Listing { ino },
                _ => CacheDrop::Attributes { ino },
            })
            .collect();
        drops.extend(
            table
                .known_names()
                .into_iter()
                .map(|(parent, name)| CacheDrop::Entry { parent, name }),
        );
        drops
    }

    fn watching(&self, active: bool, feed: bool, reason: String) -> Vec<CacheDrop> {
        let now = match (active, feed) {
            (true, _) => Pushed::Yes,
            (false, true) => Pushed::No,
            (false, false) => Pushed::Never,
        };
        let before = self.ns.policy().set_pushed(now);
        if before == now {
            return Vec::new();
        }
        let ttl = self.ns.policy().attr_ttl().max(self.ns.policy().dir_ttl());
        if active {
            tracing::info!(
                "the remote pushes its changes ({reason}): caches trusted for {:.0} s",
                ttl.as_secs_f64()
            );
        } else if before == Pushed::Yes {
            tracing::warn!(
                "the remote no longer pushes every change ({reason}): caches trusted for at most {:.0} s",
                ttl.as_secs_f64()
            );
        } else {
            tracing::info!("{reason}: caches trusted for at most {:.0} s", ttl.as_secs_f64());
        }
        self.events.emit(VfsEvent::ChangesPushed { active, reason });
        // What was cached for longer than the shortened TTLs expires now.
        if active {
            Vec::new()
        } else {
            self.everything()
        }
    }
}
