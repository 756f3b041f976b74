//! The VFS's one way to the remote: a connection that a reconnecting
//! layer replaces under a running mount, and the one place where calls
//! wait for it.
//!
//! Remote handles belong to the connection that opened them. Each open file
//! remembers the connection generation of its handle; the first use after
//! a replacement reopens the file by path on the new connection, checking
//! that the path still names the same file (see `Vfs::handle_on`).
//!
//! Every remote call of the VFS goes through [`Vfs::call`],
//! [`Vfs::call_once`] or [`Vfs::call_handle`]. A call that fails because
//! the connection was lost (not because of anything on the remote) waits
//! for the next connection and runs again there, or for a call that must
//! not run twice and may have reached the agent, runs its `resolve` step,
//! which finds out whether it took effect. Waits end at the operation's
//! deadline ([`Vfs::operation`]: `op_timeout` after a frontend request
//! started) with EIO; while the connection is gone for good (no
//! reconnection, or it gave up) calls fail at once with EIO. So no caller
//! waits without bound on a lost connection.
//!
//! A new connection is not used at once: first the writes the agent had
//! not confirmed are replayed on it in order (`replay.rs`), and only then
//! does it count as up for everything else.

use crate::error::{display_path, Result, VfsError};
use crate::handle::OpenFile;
use crate::vfs::Vfs;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;
use yonder_proto::{Errno, Handle};
use yonder_remote::{LinkState, LinkStatus, Remote, RemoteError};

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

tokio::task_local! {
    /// When the frontend request running on this task must be answered.
    static OP_DEADLINE: Instant;
}

/// What an operation's failure to reach the remote reports: EIO, the
/// errno every program handles. (ETIMEDOUT is in no file system call's
/// list of errors; NFS soft mounts answer EIO as well.)
pub(crate) fn unavailable(
    op: &'static str,
    path: &[u8],
    why: Unavailable,
    timeout: std::time::Duration,
) -> VfsError {
    let reason = match why {
        Unavailable::TimedOut => format!(
            "no connection to the remote within the operation timeout ({:.0} s)",
            timeout.as_secs_f64()
        ),
        Unavailable::Gone(reason) => format!("not connected to the remote ({reason})"),
    };
    tracing::debug!("{op} {}: {reason}", display_path(path));
    VfsError {
        op,
        path: display_path(path),
        errno: Errno::EIO,
        source: Some(RemoteError::NotConnected {
            op,
            path: display_path(path),
            reason,
        }),
    }
}

impl Vfs {
    /// Runs `request` (one frontend request) under its deadline: every wait
    /// for a connection inside it ends `op_timeout` after it started.
    /// Frontends wrap each kernel request in it; a call made outside one
    /// gets a deadline of its own from each wait.
    pub fn operation<F: Future>(&self, request: F) -> impl Future<Output = F::Output> {
        OP_DEADLINE.scope(Instant::now() + self.opts.op_timeout, request)
    }

    /// The current operation's deadline: `op_timeout` after it started,
    /// or earlier if the connection is down and the outage will have
    /// lasted that long by then (waits for write-back end then too).
    pub(crate) fn deadline(&self) -> Instant {
        let op = OP_DEADLINE
            .try_with(|d| *d)
            .unwrap_or_else(|_| Instant::now() + self.opts.op_timeout);
        match self.conn.outage_end() {
            Some(end) => op.min(end),
            None => op,
        }
    }

    pub(crate) fn unavailable(&self, op: &'static str, path: &[u8], why: Unavailable) -> VfsError {
        unavailable(op, path, why, self.opts.op_timeout)
    }

    /// Runs `call` on the current connection; if the connection is lost
    /// under it, waits for the next one and runs it again there. For calls
    /// that may run twice: queries, and changes that set an absolute value.
    pub(crate) async fn call<T, F, Fut>(&self, op: &'static str, path: &[u8], call: F) -> Result<T>
    where
        F: FnMut(Arc<dyn Remote>) -> Fut,
        Fut: Future<Output = yonder_remote::Result<T>>,
    {
        self.call_on(op, path, call).await.map(|(value, _, _)| value)
    }

    /// [`Vfs::call`], also returning the connection that answered (a
    /// handle it opened belongs to it).
    pub(crate) async fn call_on<T, F, Fut>(
        &self,
        op: &'static str,
        path: &[u8],
        call: F,
    ) -> Result<(T, Arc<dyn Remote>, Generation)>
    where
        F: FnMut(Arc<dyn Remote>) -> Fut,
        Fut: Future<Output = yonder_remote::Result<T>>,
    {
        self.until_answered(op, path, call, None::<fn(Arc<dyn Remote>) -> Fut>)
            .await
    }

    /// [`Vfs::call`] for a call that must not simply run twice (create
    /// with O_EXCL, mkdir, rename, unlink, ...): once the connection was
    /// lost after the request may have reached the agent, `resolve` runs on
    /// the next connection instead. It finds out whether the call took
    /// effect and completes it if it did not; it may itself run more than
    /// once. A call that was never sent (the connection was already known
    /// lost) simply runs again.
    pub(crate) async fn call_once<T, F, Fut, R, RFut>(
        &self,
        op: &'static str,
        path: &[u8],
        call: F,
        resolve: R,
    ) -> Result<T>
    where
        F: FnMut(Arc<dyn Remote>) -> Fut,
        Fut: Future<Output = yonder_remote::Result<T>>,
        R: FnMut(Arc<dyn Remote>) -> RFut,
        RFut: Future<Output = yonder_remote::Result<T>>,
    {
        self.call_once_on(op, path, call, resolve)
            .await
            .map(|(value, _, _)| value)
    }

    /// [`Vfs::call_once`], also returning the connection that answered.
    pub(crate) async fn call_once_on<T, F, Fut, R, RFut>(
        &self,
        op: &'static str,
        path: &[u8],
        call: F,
        resolve: R,
    ) -> Result<(T, Arc<dyn Remote>, Generation)>
    where
        F: FnMut(Arc<dyn Remote>) -> Fut,
        Fut: Future<Output = yonder_remote::Result<T>>,
        R: FnMut(Arc<dyn Remote>) -> RFut,
        RFut: Future<Output = yonder_remote::Result<T>>,
    {
        self.until_answered(op, path, call, Some(resolve)).await
    }

    /// Runs `call` on the connection until one answers (or the operation's
    /// deadline passes). After a loss with the outcome unknown, `resolve`
    /// runs in its place when there is one; without, the call is one that
    /// may simply run again.
    async fn until_answered<T, F, Fut, R, RFut>(
        &self,
        op: &'static str,
        path: &[u8],
        mut call: F,
        mut resolve: Option<R>,
    ) -> Result<(T, Arc<dyn Remote>, Generation)>
    where
        F: FnMut(Arc<dyn Remote>) -> Fut,
        Fut: Future<Output = yonder_remote::Result<T>>,
        R: FnMut(Arc<dyn Remote>) -> RFut,
        RFut: Future<Output = yonder_remote::Result<T>>,
    {
        let deadline = self.deadline();
        let (mut remote, mut generation) = self
            .conn
            .ready(Some(deadline))
            .await
            .map_err(|why| self.unavailable(op, path, why))?;
        let mut unsure = false;
        loop {
            let result = match resolve.as_mut().filter(|_| unsure) {
                Some(resolve) => resolve(remote.clone()).await,
                None => call(remote.clone()).await,
            };
            match result {
                Err(e) if e.is_connection_lost() => {
                    if resolve.is_some() && e.outcome_unknown() && !unsure {
                        tracing::info!(
                            "{op} {}: connection lost with the call in flight; its outcome is checked on \
                             the next connection",
                            display_path(path)
                        );
                    }
                    unsure |= e.outcome_unknown();
                    (remote, generation) = self
                        .conn
                        .after(generation, Some(deadline))
                        .await
                        .map_err(|why| self.unavailable(op, path, why))?;
                }
                Ok(value) => return Ok((value, remote, generation)),
                Err(e) => return Err(VfsError::remote(op, path, e)),
            }
        }
    }

    /// [`Vfs::call`] through an open file's remote handle, reopened (by
    /// path, identity checked) on each new connection.
    pub(crate) async fn call_handle<T, F, Fut>(
        &self,
        file: &OpenFile,
        op: &'static str,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut(Arc<dyn Remote>, Handle) -> Fut,
        Fut: Future<Output = yonder_remote::Result<T>>,
    {
        let deadline = self.deadline();
        let path = || self.describe(file.ino);
        let (mut remote, mut generation) = self
            .conn
            .ready(Some(deadline))
            .await
            .map_err(|why| self.unavailable(op, path().as_bytes(), why))?;
        loop {
            let lost = match self.handle_on(file, &remote, generation).await {
                Ok(handle) => match call(remote.clone(), handle).await {
                    Err(e) if e.is_connection_lost() => true,
                    other => return other.map_err(|e| VfsError::remote(op, path().as_bytes(), e)),
                },
                Err(e) if e.is_connection_lost() => true,
                Err(e) => return Err(e),
            };
            debug_assert!(lost);
            (remote, generation) = self
                .conn
                .after(generation, Some(deadline))
                .await
                .map_err(|why| self.unavailable(op, path().as_bytes(), why))?;
        }
    }

    /// Follows a [`yonder_remote::Link`]'s status (its watch): each new
    /// connection is put in place ([`Vfs::replace_remote`], through `map`,
    /// e.g. to scope it to this mount's tree), a lost one makes calls wait,
    /// and a link that stopped reconnecting makes them fail at once.
    /// `generation` is the link generation of the remote the VFS was built
    /// on. Ends when the VFS or the link is dropped.
    pub fn follow(
        self: &Arc<Self>,
        mut link: watch::Receiver<LinkStatus>,
        mut generation: u64,
        map: impl Fn(Arc<dyn Remote>) -> Arc<dyn Remote> + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let vfs = Arc::downgrade(self);
        self.runtime.spawn(async move {
            loop {
                let status = link.borrow_and_update().clone();
                let Some(me) = vfs.upgrade() else { return };
                if status.generation != generation {
                    generation = status.generation;
                    me.replace_remote(map(status.remote.clone()));
                }
                match &status.state {
                    LinkState::Connected => {}
                    LinkState::Reconnecting { .. } => {
                        let at = status.lost_at.map_or_else(Instant::now, Instant::from_std);
                        me.connection_lost_since(at);
                    }
                    LinkState::Disconnected { reason } => me.connection_gone(reason),
                }
                drop(me);
                if link.changed().await.is_err() {
                    if let Some(me) = vfs.upgrade() {
                        me.connection_gone("the link was dropped");
                    }
                    return;
                }
            }
        })
    }

    /// The connection was lost and a new one is expected: calls wait for
    /// it (up to the op timeout) instead of failing.
    pub fn connection_lost(&self) {
        self.conn.lost(Instant::now());
    }

    /// [`Vfs::connection_lost`], the outage having begun at `at` (the
    /// remote's last sign of life): operations wait at most the op timeout
    /// after it.
    pub fn connection_lost_since(&self, at: Instant) {
        self.conn.lost(at);
    }

    /// The connection was lost and none is coming: calls fail at once with
    /// EIO, and writes the agent had not confirmed are reported failed to
    /// the handles that wrote them. A later [`Vfs::replace_remote`] brings
    /// the mount back.
    pub fn connection_gone(&self, reason: &str) {
        self.conn.gone(reason);
        let abandoned = self.unconfirmed.abandon(reason, &*self.journal);
        if abandoned > 0 {
            tracing::warn!(
                "{abandoned} writes the remote had not confirmed are lost: {reason}; \
                 their error is reported at the writers' next write, flush or fsync"
            );
        }
    }

    /// Where the connection stands, as it changes.
    pub fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.conn.state()
    }
}
