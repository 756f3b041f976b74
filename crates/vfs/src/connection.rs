//! The VFS's one way to the remote: a connection that a reconnecting
//! layer replaces under a running mount, and the one place where calls
//! wait for it.
//!
//! Remote handles belong to the connection that opened them. Each open file
//! remembers the connection generation of its handle; the first use after
//! a replacement reopens the file by path on the new connection, checking
//! that the path still names the same file (see `OpenFiles::handle_on`).
//!
//! Every remote call of the VFS goes through `RemoteCalls` (`calls.rs`),
//! or for an open file's handle, `OpenFiles::call_handle`. A call that
//! fails because the connection was lost (not because of anything on the remote) waits
//! for the next connection and runs again there, or for a call that must
//! not run twice and may have reached the agent, runs its `resolve` step,
//! which finds out whether it took effect. Waits end at the operation's
//! deadline (`Vfs::operation`: `op_timeout` after a frontend request
//! started) with EIO; while the connection is gone for good (no
//! reconnection, or it gave up) calls fail at once with EIO. So no caller
//! waits without bound on a lost connection.
//!
//! A new connection is not used at once: first the writes the agent had
//! not confirmed are replayed on it in order (`write_back/replay.rs`), and
//! only then does it count as up for everything else.

use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;
use yonder_remote::Remote;

/// Which connection a remote handle was opened on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub u64);

/// Where the VFS's connection stands, for frontends and a manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Calls go to the remote.
    Up,
    /// The connection was lost, or a new one is replaying the writes the
    /// old one had not confirmed: calls wait (up to the op timeout).
    Reconnecting,
    /// No connection, and none coming: calls fail at once with EIO.
    Gone { reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Up,
    /// Lost; waiting for the next connection.
    Down,
    /// A new connection is in place and unconfirmed writes are being
    /// replayed on it; nothing else uses it yet.
    Replaying,
    Gone(String),
}

#[derive(Clone)]
pub(crate) struct Snapshot {
    pub remote: Arc<dyn Remote>,
    pub generation: Generation,
    pub status: Status,
    /// While not up: when the outage began.
    pub lost_at: Option<Instant>,
}

pub struct Connection {
    snapshot: watch::Sender<Snapshot>,
    state: watch::Sender<ConnectionState>,
    /// How long an outage makes operations wait at most (the op timeout):
    /// once it has lasted that long, they fail at once until the
    /// connection is back.
    outage_limit: std::time::Duration,
}

/// Why a call could not get a connection.
#[derive(Clone, Debug)]
pub(crate) enum Unavailable {
    /// None came before the operation's deadline.
    TimedOut,
    /// None is coming.
    Gone(String),
}

impl Connection {
    pub fn new(remote: Arc<dyn Remote>, outage_limit: std::time::Duration) -> Connection {
        Connection {
            snapshot: watch::Sender::new(Snapshot {
                remote,
                generation: Generation(0),
                status: Status::Up,
                lost_at: None,
            }),
            state: watch::Sender::new(ConnectionState::Up),
            outage_limit,
        }
    }

    /// The remote to send the next request to (whatever its state).
    pub fn remote(&self) -> Arc<dyn Remote> {
        self.get().0
    }

    pub fn get(&self) -> (Arc<dyn Remote>, Generation) {
        let snapshot = self.snapshot.borrow();
        (snapshot.remote.clone(), snapshot.generation)
    }

    /// The current connection if it is up: for calls that are only worth
    /// making now (prefetching, opening ahead), never waited for.
    pub(crate) fn if_up(&self) -> Option<(Arc<dyn Remote>, Generation)> {
        let snapshot = self.snapshot.borrow();
        (snapshot.status == Status::Up).then(|| (snapshot.remote.clone(), snapshot.generation))
    }

    /// While the connection is not up: when the outage will have lasted
    /// the outage limit (operations wait no longer).
    pub(crate) fn outage_end(&self) -> Option<Instant> {
        let snapshot = self.snapshot.borrow();
        match snapshot.status {
            Status::Up => None,
            _ => snapshot.lost_at.map(|lost_at| lost_at + self.outage_limit),
        }
    }

    /// Err while the connection is gone for good: operations that need
    /// no remote call yet (a buffered write) fail then too.
    pub(crate) fn usable(&self) -> std::result::Result<(), Unavailable> {
        match &self.snapshot.borrow().status {
            Status::Gone(reason) => Err(Unavailable::Gone(reason.clone())),
            _ => Ok(()),
        }
    }

    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }

    fn set_status(&self, status: Status) {
        let public = match &status {
            Status::Up => ConnectionState::Up,
            Status::Down | Status::Replaying => ConnectionState::Reconnecting,
            Status::Gone(reason) => ConnectionState::Gone {
                reason: reason.clone(),
            },
        };
        self.snapshot.send_modify(|s| {
            if status == Status::Up {
                s.lost_at = None;
            }
            s.status = status;
        });
        self.state.send_if_modified(|s| {
            let changed = *s != public;
            *s = public;
            changed
        });
    }

    /// Puts `remote` in place as the next generation, not yet up (see
    /// [`Connection::mark_up`]).
    pub(crate) fn install(&self, remote: Arc<dyn Remote>) -> Generation {
        let mut next = Generation(0);
        self.snapshot.send_modify(|s| {
            next = Generation(s.generation.0 + 1);
            s.remote = remote;
            s.generation = next;
        });
        self.set_status(Status::Replaying);
        next
    }

    /// `generation`'s replay is done: it is up, unless it was lost or
    /// replaced meanwhile.
    pub(crate) fn mark_up(&self, generation: Generation) -> bool {
        let current = self.snapshot.borrow().clone();
        if current.generation != generation || current.status != Status::Replaying {
            return false;
        }
        self.set_status(Status::Up);
        true
    }

    /// The connection was lost (at `at`); a new one is expected.
    pub(crate) fn lost(&self, at: Instant) {
        self.snapshot.send_modify(|s| {
            s.lost_at = Some(s.lost_at.map_or(at, |known| known.min(at)));
        });
        if !matches!(self.snapshot.borrow().status, Status::Down) {
            self.set_status(Status::Down);
        }
    }

    /// The connection was lost and no new one is coming.
    pub(crate) fn gone(&self, reason: &str) {
        self.set_status(Status::Gone(reason.to_string()));
    }

    /// The connection once it is up: at once if it is, waiting while it is
    /// being replaced (until `deadline`; `None` waits as long as it takes).
    pub(crate) async fn ready(
        &self,
        deadline: Option<Instant>,
    ) -> std::result::Result<(Arc<dyn Remote>, Generation), Unavailable> {
        self.wait(deadline, |_| true).await
    }

    /// After a call on `generation` found its connection lost: the next
    /// connection, once up.
    pub(crate) async fn after(
        &self,
        generation: Generation,
        deadline: Option<Instant>,
    ) -> std::result::Result<(Arc<dyn Remote>, Generation), Unavailable> {
        self.wait(deadline, |s| s.generation > generation).await
    }

    /// An operation (with a `deadline`) waits until its deadline, and no
    /// longer than the outage limit after the connection was lost: an
    /// outage that has lasted that long fails operations at once, so one
    /// that is retried (the kernel looks a name up again after a failed
    /// revalidation) or a shell loop does not wait the whole op timeout
    /// again and again.
    async fn wait(
        &self,
        deadline: Option<Instant>,
        newer: impl Fn(&Snapshot) -> bool,
    ) -> std::result::Result<(Arc<dyn Remote>, Generation), Unavailable> {
        let mut rx = self.snapshot.subscribe();
        loop {
            let snapshot = rx.borrow_and_update().clone();
            match &snapshot.status {
                Status::Gone(reason) => return Err(Unavailable::Gone(reason.clone())),
                Status::Up if newer(&snapshot) => return Ok((snapshot.remote, snapshot.generation)),
                _ => {}
            }
            let until = deadline.map(|deadline| match snapshot.lost_at {
                Some(lost_at) if snapshot.status != Status::Up => deadline.min(lost_at + self.outage_limit),
                _ => deadline,
            });
            let dropped = |_| Unavailable::Gone("connection dropped".into());
            match until {
                Some(until) => tokio::select! {
                    changed = rx.changed() => changed.map_err(dropped)?,
                    _ = tokio::time::sleep_until(until) => return Err(Unavailable::TimedOut),
                },
                None => rx.changed().await.map_err(dropped)?,
            }
        }
    }
}
