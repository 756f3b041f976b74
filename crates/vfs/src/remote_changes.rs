//! [`RemoteChanges`]: what the remote pushes of its changes, applied to
//! the VFS's caches and passed on to the frontend's, and whether it
//! pushes them at all, which decides how long the caches are trusted (see
//! `cache_policy.rs`).
//!
//! A path whose content changed has its attributes asked again; its data
//! is dropped only once they differ (so a change this mount made, echoed
//! back, costs one `lstat`, not the pages). A name added, removed or moved
//! makes its directory's names unknown, and a directory's what is below it.
//! When changes stop being pushed (the remote cannot, its watch ran into a
//! limit or its queue overflowed), everything cached is expired and the
//! TTLs are shortened, said once in the log and as a [`VfsEvent`].

use crate::attr::FileKind;
use crate::cache_policy::{Change, Pushed};
use crate::events::{Events, VfsEvent};
use crate::frontend::{CacheDrop, FrontendCaches};
use crate::namespace::Namespace;
use std::sync::{Arc, OnceLock};
use yonder_proto::{ChangeKind, PathChange};
use yonder_remote::RemoteChange;

pub(crate) struct RemoteChanges {
    ns: Arc<Namespace>,
    events: Events,
    /// Set once by the frontend that serves the VFS.
    frontend: OnceLock<Arc<dyn FrontendCaches>>,
}

impl RemoteChanges {
    pub fn new(ns: Arc<Namespace>, events: Events) -> RemoteChanges {
        RemoteChanges {
            ns,
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

    pub fn apply(&self, change: RemoteChange) {
        let drops = match change {
            RemoteChange::Changed(changes) => {
                let mut drops = Vec::new();
                for change in &changes {
                    self.path_changed(change, &mut drops);
                }
                drops
            }
            RemoteChange::Unknown { reason } => {
                tracing::debug!("forgetting every cached attribute and name: {reason}");
                self.everything()
            }
            RemoteChange::Watching { active, reason } => self.watching(active, reason),
        };
        if let (false, Some(frontend)) = (drops.is_empty(), self.frontend.get()) {
            frontend.drop_cached(drops);
        }
    }

    fn path_changed(&self, change: &PathChange, drops: &mut Vec<CacheDrop>) {
        let path = &change.path[..];
        let (parent_path, name) = match path.iter().rposition(|b| *b == b'/') {
            Some(at) => (&path[..at], &path[at + 1..]),
            None => (&b""[..], path),
        };
        let (ino, parent) = {
            let table = self.ns.table();
            let parent = (!path.is_empty()).then(|| table.resolve(parent_path)).flatten();
            (table.resolve(path), parent)
        };
        match change.kind {
            ChangeKind::Content => {
                if let Some(ino) = ino {
                    self.ns.changed(ino, Change::NotifiedContent);
                    drops.push(CacheDrop::Attributes { ino });
                }
            }
            ChangeKind::Entry => {
                if let Some(parent) = parent {
                    self.ns.changed(parent, Change::NamesUnknown);
                    drops.push(CacheDrop::Entry {
                        parent,
                        name: name.to_vec(),
                    });
                    drops.push(CacheDrop::Listing { ino: parent });
                }
                if let Some(ino) = ino {
                    self.ns.changed(ino, Change::Notified);
                    self.ns.changed(ino, Change::NotifiedTree);
                    drops.push(CacheDrop::Attributes { ino });
                }
            }
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

    fn watching(&self, active: bool, reason: String) -> Vec<CacheDrop> {
        let now = if active { Pushed::Yes } else { Pushed::No };
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
