//! The states of connections and mounts, and every rule about how they
//! change: the one place to read (and, for reconnection, to extend).
//!
//! A connection is `connected`, `reconnecting` or `disconnected`. A mount
//! follows its connection (`active` while it is connected, `reconnecting`,
//! `disconnected`) until something ends it for good: `failed{reason}` is
//! terminal, the way out is to unmount and mount again.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    Connected,
    /// The link is being re-established (driven by the reconnecting link).
    Reconnecting {
        reason: String,
    },
    /// The link is gone: the agent exited, or stopped answering pings.
    Disconnected {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountState {
    Active,
    Reconnecting {
        reason: String,
    },
    Disconnected {
        reason: String,
    },
    /// Terminal: unmounted from outside, the FUSE session died.
    Failed {
        reason: String,
    },
}

impl ConnectionState {
    pub fn name(&self) -> &'static str {
        match self {
            ConnectionState::Connected => "connected",
            ConnectionState::Reconnecting { .. } => "reconnecting",
            ConnectionState::Disconnected { .. } => "disconnected",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            ConnectionState::Connected => None,
            ConnectionState::Reconnecting { reason } | ConnectionState::Disconnected { reason } => {
                Some(reason)
            }
        }
    }

    /// Whether a connection in this state may move to `next`. Any change
    /// between the three is allowed; staying put is not a change.
    pub fn can_become(&self, next: &ConnectionState) -> bool {
        self.name() != next.name()
    }
}

impl MountState {
    pub fn name(&self) -> &'static str {
        match self {
            MountState::Active => "active",
            MountState::Reconnecting { .. } => "reconnecting",
            MountState::Disconnected { .. } => "disconnected",
            MountState::Failed { .. } => "failed",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            MountState::Active => None,
            MountState::Reconnecting { reason }
            | MountState::Disconnected { reason }
            | MountState::Failed { reason } => Some(reason),
        }
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, MountState::Failed { .. })
    }

    /// What a mount in this state becomes when its connection enters
    /// `connection`: it follows, unless it has failed.
    pub fn following(&self, connection: &ConnectionState) -> MountState {
        if self.is_failed() {
            return self.clone();
        }
        match connection {
            ConnectionState::Connected => MountState::Active,
            ConnectionState::Reconnecting { reason } => MountState::Reconnecting {
                reason: reason.clone(),
            },
            ConnectionState::Disconnected { reason } => MountState::Disconnected {
                reason: reason.clone(),
            },
        }
    }

    /// Whether a mount in this state may move to `next`: `failed` is
    /// terminal; staying put is not a change.
    pub fn can_become(&self, next: &MountState) -> bool {
        !self.is_failed() && self.name() != next.name()
    }
}

/// How many failed mounts the manager keeps listed: the newest; older
/// ones are forgotten, so that neither the list nor the manager's memory
/// grows with use.
pub const KEPT_FAILED: usize = 8;

/// Of the failed mounts numbered `failed`, those beyond the newest
/// `keep` (the higher the number, the newer): the ones to forget.
pub fn failed_beyond(failed: impl IntoIterator<Item = u64>, keep: usize) -> Vec<u64> {
    let mut failed: Vec<u64> = failed.into_iter().collect();
    failed.sort_unstable_by(|a, b| b.cmp(a));
    failed.split_off(keep.min(failed.len()))
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) => write!(f, "{}: {reason}", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

impl fmt::Display for MountState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) => write!(f, "{}: {reason}", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_failed_mounts_are_kept() {
        assert_eq!(failed_beyond([3, 9, 1, 7], 2), [3, 1]);
        assert!(failed_beyond([3, 9], 2).is_empty());
        assert!(failed_beyond([], KEPT_FAILED).is_empty());
        assert_eq!(failed_beyond(1..=100, KEPT_FAILED).len(), 100 - KEPT_FAILED);
    }

    #[test]
    fn mounts_follow_their_connection_until_they_fail() {
        let lost = ConnectionState::Disconnected {
            reason: "agent exited".into(),
        };
        let m = MountState::Active.following(&lost);
        assert_eq!(m.name(), "disconnected");
        assert_eq!(m.reason(), Some("agent exited"));
        assert_eq!(m.following(&ConnectionState::Connected), MountState::Active);
        let failed = MountState::Failed {
            reason: "unmounted externally".into(),
        };
        assert_eq!(failed.following(&ConnectionState::Connected), failed);
        assert!(!failed.can_become(&MountState::Active));
        assert!(MountState::Active.can_become(&failed));
        assert!(!MountState::Active.can_become(&MountState::Active));
        assert_eq!(failed.to_string(), "failed: unmounted externally");
    }
}
