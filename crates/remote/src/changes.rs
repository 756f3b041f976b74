//! Changes the remote pushes ([`RemoteChange`]), and [`ChangeFeed`], one
//! subscriber's stream of them, which a [`crate::Link`] keeps delivering
//! across reconnections.
//!
//! A transport that can push changes hands its [`Notice`]s out through
//! [`crate::Session::notices`]; the link turns each connection's notices
//! into [`RemoteChange`]s for every subscriber, says whether changes are
//! pushed at all on the current connection ([`RemoteChange::Watching`]),
//! and after a reconnection says that anything may have changed (changes
//! made while the link was down were never seen). A feed of one tree of a
//! remote that serves `/` ([`ChangeFeed::under`]) maps paths as
//! [`crate::Scoped`] does.

use crate::scoped::below_prefix;
use tokio::sync::{broadcast, watch};
use yonder_proto::{ChangeKind, Notice, PathChange, WirePath};

/// What a subscriber learns of changes on the remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteChange {
    /// These paths changed (relative to the remote's root, or to the
    /// tree of a feed [`under`](ChangeFeed::under) one).
    Changed(Vec<PathChange>),
    /// Changes were lost: anything may have changed.
    Unknown { reason: String },
    /// Whether changes are pushed from now on: on each new connection,
    /// and `false` once the remote's watch is degraded (a watch limit, a
    /// queue overflow), until the next connection. `feed` says whether
    /// the connection can push changes at all: an SFTP server cannot, and
    /// a user of it expects sshfs's caching, not a degraded agent's.
    Watching {
        active: bool,
        feed: bool,
        reason: String,
    },
}

impl RemoteChange {
    /// The change that the agent's `notice` stands for, and whether it
    /// degrades the watch.
    pub(crate) fn from_notice(notice: Notice) -> Vec<RemoteChange> {
        match notice {
            Notice::Changed(changes) => vec![RemoteChange::Changed(changes)],
            Notice::Overflow => {
                let reason = "the remote's change queue overflowed".to_string();
                vec![
                    RemoteChange::Unknown {
                        reason: reason.clone(),
                    },
                    RemoteChange::Watching {
                        active: false,
                        feed: true,
                        reason,
                    },
                ]
            }
            Notice::Unwatched { path, reason } => vec![RemoteChange::Watching {
                active: false,
                feed: true,
                reason: format!(
                    "cannot watch {} on the remote: {reason}",
                    crate::error::display_path(&path)
                ),
            }],
        }
    }
}

/// One subscriber's changes, as they happen, starting with where the
/// watch stands.
pub struct ChangeFeed {
    changes: broadcast::Receiver<RemoteChange>,
    /// Where the watch stands, given first.
    watching: Option<RemoteChange>,
    /// A tree's root relative to the remote's, without leading or trailing
    /// `/`: paths are shown relative to it, others dropped.
    prefix: Option<Vec<u8>>,
}

impl ChangeFeed {
    pub(crate) fn new(
        changes: broadcast::Receiver<RemoteChange>,
        watching: &watch::Sender<RemoteChange>,
    ) -> ChangeFeed {
        ChangeFeed {
            changes,
            watching: Some(watching.borrow().clone()),
            prefix: None,
        }
    }

    /// The changes of the tree below `root` (an absolute path on a remote
    /// that serves `/`), with paths relative to it.
    pub fn under(mut self, root: &[u8]) -> ChangeFeed {
        let prefix = root
            .split(|&b| b == b'/')
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(&b'/');
        self.prefix = Some(prefix);
        self
    }

    /// The next change; `None` once the link is gone. A subscriber that
    /// fell behind is told that anything may have changed.
    pub async fn recv(&mut self) -> Option<RemoteChange> {
        if let Some(first) = self.watching.take() {
            return Some(first);
        }
        loop {
            let change = match self.changes.recv().await {
                Ok(change) => change,
                Err(broadcast::error::RecvError::Lagged(missed)) => RemoteChange::Unknown {
                    reason: format!("{missed} change notices were missed"),
                },
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if let Some(change) = self.scope(change) {
                return Some(change);
            }
        }
    }

    /// `change` as this feed's tree sees it; `None` if it lies outside.
    fn scope(&self, change: RemoteChange) -> Option<RemoteChange> {
        let Some(prefix) = &self.prefix else {
            return Some(change);
        };
        let RemoteChange::Changed(changes) = change else {
            return Some(change);
        };
        let mut inside = Vec::new();
        for change in changes {
            match below_prefix(prefix, &change.path) {
                Some(path) => inside.push(PathChange {
                    path: WirePath::from(path),
                    kind: change.kind,
                }),
                // The tree itself (or a directory above it) moved or went.
                None if change.kind == ChangeKind::Entry && below_prefix(&change.path, prefix).is_some() => {
                    return Some(RemoteChange::Unknown {
                        reason: format!(
                            "{} changed on the remote",
                            crate::error::display_path(&change.path)
                        ),
                    })
                }
                None => {}
            }
        }
        (!inside.is_empty()).then_some(RemoteChange::Changed(inside))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(paths: &[(&str, ChangeKind)]) -> RemoteChange {
        RemoteChange::Changed(
            paths
                .iter()
                .map(|(p, kind)| PathChange {
                    path: WirePath::from(p.as_bytes().to_vec()),
                    kind: *kind,
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn a_feed_under_a_tree_maps_its_paths_and_drops_others() {
        let (tx, rx) = broadcast::channel(16);
        let watching = watch::Sender::new(RemoteChange::Watching {
            active: true,
            feed: true,
            reason: String::new(),
        });
        let mut feed = ChangeFeed::new(rx, &watching).under(b"/srv/a/");
        tx.send(changed(&[
            ("srv/a/x", ChangeKind::Content),
            ("srv/ab", ChangeKind::Entry),
            ("srv/a", ChangeKind::Content),
            ("etc/f", ChangeKind::Entry),
        ]))
        .unwrap();
        tx.send(changed(&[("etc/g", ChangeKind::Entry)])).unwrap();
        tx.send(changed(&[("srv", ChangeKind::Entry)])).unwrap();
        assert!(matches!(
            feed.recv().await,
            Some(RemoteChange::Watching { active: true, .. })
        ));
        assert_eq!(
            feed.recv().await,
            Some(changed(&[("x", ChangeKind::Content), ("", ChangeKind::Content)]))
        );
        assert!(
            matches!(feed.recv().await, Some(RemoteChange::Unknown { .. })),
            "the tree moved"
        );
        drop(tx);
        assert_eq!(feed.recv().await, None);
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_anything_may_have_changed() {
        let (tx, rx) = broadcast::channel(2);
        let watching = watch::Sender::new(RemoteChange::Watching {
            active: true,
            feed: true,
            reason: String::new(),
        });
        let mut feed = ChangeFeed::new(rx, &watching);
        feed.recv().await;
        for _ in 0..5 {
            tx.send(changed(&[("x", ChangeKind::Content)])).unwrap();
        }
        assert!(matches!(feed.recv().await, Some(RemoteChange::Unknown { .. })));
    }
}
