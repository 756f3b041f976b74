//! What the VFS caches, for how long, and what each change forgets.
//!
//! Every time-to-live and every invalidation of the VFS is decided here:
//! the inode table (`namespace/inode.rs`) asks [`CachePolicy`] until
//! when an attribute, a name or a listing is trusted, and the parts report
//! each [`Change`] they make or learn of, which the policy turns into the
//! [`Forget`] the table carries out. A different cache policy is a
//! different body for these methods.

use crate::options::VfsOptions;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Something that happened to an inode (or a directory's names) that may
/// make what is cached about it stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Data was written (or truncated) here: size and times change, and
    /// data read ahead is older.
    Written,
    /// A write is on its way to the remote, or a range is being allocated
    /// or punched: data read ahead may predate it.
    DataSent,
    /// Writes in flight landed: attributes fetched meanwhile show the old
    /// size and times, data read ahead meanwhile the old bytes.
    WritesLanded,
    /// Buffered writes were sent: attributes cached while they waited are
    /// older.
    Flushed,
    /// Attributes were changed here (setattr, nlink by link or rename,
    /// ctime by rename). `resized`: a truncation, which data read ahead
    /// predates.
    Attributes { resized: bool },
    /// Extended attributes were set or removed here: ctime and the name
    /// list change.
    Xattrs,
    /// The node was created or linked here, its attributes fresh from the
    /// answer: a listing asked for before shows older ones.
    Created,
    /// A name in this directory was added or removed here: its mtime,
    /// ctime (and nlink) change.
    Entries,
    /// What the names in this directory hold is no longer known (a rename
    /// the table could not follow, a name found to hold another file, a
    /// notification).
    NamesUnknown,
    /// The remote says the node changed.
    Notified,
    /// The remote says the node's data or attributes changed: its
    /// attributes are asked again, and its data is dropped only once they
    /// show another size or mtime (a change this mount made itself echoes
    /// back as one of these).
    NotifiedContent,
    /// The remote says a directory changed, with what is below it (it may
    /// have moved).
    NotifiedTree,
}

/// What a [`Change`] forgets of one inode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Forget {
    /// Its attributes (and marks them changed, for listings asked before).
    pub attributes: bool,
    /// Only marks its attributes changed (they stay trusted).
    pub mark_changed: bool,
    /// Its extended attribute names.
    pub xattrs: bool,
    /// Its data read ahead: the inode's data version moves on.
    pub data: bool,
    /// Its names and listing, as a directory.
    pub names: bool,
    /// The names and listings of every directory below it too.
    pub tree: bool,
}

/// Whether the remote pushes its changes, which decides how long what is
/// cached is trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Nobody said (no change feed is followed): the TTLs as configured.
    Unasked = 0,
    /// The remote pushes every change: the TTLs as configured.
    Yes = 1,
    /// It does not, or its watch is degraded: at most `unwatched_ttl`.
    No = 2,
    /// The connection cannot push changes at all (an SFTP server): at
    /// most `feedless_ttl`.
    Never = 3,
}

/// The VFS's cache policy: time-to-live of attributes and names, and what
/// each change forgets. Clones share whether changes are pushed.
#[derive(Clone, Debug)]
pub(crate) struct CachePolicy {
    attr_ttl: Duration,
    dir_ttl: Duration,
    unwatched_ttl: Duration,
    feedless_ttl: Duration,
    pushed: Arc<AtomicU8>,
}

impl CachePolicy {
    pub fn new(opts: &VfsOptions) -> CachePolicy {
        CachePolicy {
            attr_ttl: opts.attr_ttl,
            dir_ttl: opts.dir_ttl,
            unwatched_ttl: opts.unwatched_ttl,
            feedless_ttl: opts.feedless_ttl,
            pushed: Arc::new(AtomicU8::new(Pushed::Unasked as u8)),
        }
    }

    pub fn pushed(&self) -> Pushed {
        match self.pushed.load(Ordering::Relaxed) {
            1 => Pushed::Yes,
            2 => Pushed::No,
            3 => Pushed::Never,
            _ => Pushed::Unasked,
        }
    }

    /// Records whether the remote pushes its changes; returns what it was.
    pub fn set_pushed(&self, pushed: Pushed) -> Pushed {
        match self.pushed.swap(pushed as u8, Ordering::Relaxed) {
            1 => Pushed::Yes,
            2 => Pushed::No,
            3 => Pushed::Never,
            _ => Pushed::Unasked,
        }
    }

    /// A configured TTL, shortened to `unwatched_ttl` while changes are
    /// not pushed, and to `feedless_ttl` where they never are.
    fn effective(&self, ttl: Duration) -> Duration {
        match self.pushed() {
            Pushed::No => ttl.min(self.unwatched_ttl),
            Pushed::Never => ttl.min(self.feedless_ttl),
            Pushed::Yes | Pushed::Unasked => ttl,
        }
    }

    /// How long attributes are trusted now (a frontend's kernel caches
    /// follow this too).
    pub fn attr_ttl(&self) -> Duration {
        self.effective(self.attr_ttl)
    }

    /// How long names and listings are trusted now.
    pub fn dir_ttl(&self) -> Duration {
        self.effective(self.dir_ttl)
    }

    /// Until when attributes (and extended attribute names) fetched `now`
    /// are trusted.
    pub fn attributes_until(&self, now: Instant) -> Instant {
        now + self.attr_ttl()
    }

    /// Until when a name, or a directory's complete listing, fetched `now`
    /// is trusted.
    pub fn names_until(&self, now: Instant) -> Instant {
        now + self.dir_ttl()
    }

    /// Whether attributes are cached at all: only then does a name never
    /// looked up (or expired) need asking before it is removed or renamed
    /// over, to tell whose other names lose a link.
    pub fn caches_attributes(&self) -> bool {
        !self.attr_ttl().is_zero()
    }

    /// Whether names are cached at all: without, a listing expires as it
    /// arrives, and relisting a directory for a lookup gains nothing.
    pub fn caches_names(&self) -> bool {
        !self.dir_ttl().is_zero()
    }

    /// What `change` forgets of an inode (`is_dir`: a directory).
    pub fn forget(&self, change: Change, is_dir: bool) -> Forget {
        let none = Forget::default();
        match change {
            Change::Written | Change::WritesLanded => Forget {
                attributes: true,
                data: true,
                ..none
            },
            Change::DataSent => Forget { data: true, ..none },
            Change::Flushed | Change::Entries => Forget {
                attributes: true,
                ..none
            },
            Change::Attributes { resized } => Forget {
                attributes: true,
                data: resized,
                ..none
            },
            Change::Xattrs => Forget {
                attributes: true,
                xattrs: true,
                ..none
            },
            Change::Created => Forget {
                mark_changed: true,
                ..none
            },
            Change::NamesUnknown => Forget { names: true, ..none },
            Change::Notified => Forget {
                attributes: true,
                xattrs: true,
                data: true,
                names: is_dir,
                ..none
            },
            Change::NotifiedContent => Forget {
                attributes: true,
                xattrs: true,
                ..none
            },
            Change::NotifiedTree => Forget { tree: true, ..none },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_that_cannot_push_caches_as_sshfs_and_a_degraded_watch_briefly() {
        let policy = CachePolicy::new(&VfsOptions {
            attr_ttl: Duration::from_secs(60),
            dir_ttl: Duration::from_secs(5),
            ..VfsOptions::default()
        });
        policy.set_pushed(Pushed::Yes);
        assert_eq!(
            (policy.attr_ttl(), policy.dir_ttl()),
            (Duration::from_secs(60), Duration::from_secs(5))
        );
        policy.set_pushed(Pushed::Never);
        assert_eq!(
            (policy.attr_ttl(), policy.dir_ttl()),
            (Duration::from_secs(20), Duration::from_secs(5))
        );
        policy.set_pushed(Pushed::No);
        assert_eq!(
            (policy.attr_ttl(), policy.dir_ttl()),
            (Duration::from_secs(1), Duration::from_secs(1))
        );
    }
}
