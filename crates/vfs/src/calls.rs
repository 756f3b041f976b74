//! Remote calls: every call of the VFS to the remote goes through
//! [`RemoteCalls`], which waits for a connection, retries a call cut off by
//! a lost one, resolves the outcome of one that must not run twice, and
//! ends every wait at the operation's deadline (see `connection.rs`).

use crate::connection::{Connection, ConnectionState, Generation, Unavailable};
use crate::error::{display_path, Result, VfsError};
use crate::meta_order::MetaOrder;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use yonder_proto::Errno;
use yonder_remote::{Operation, Remote, RemoteError};

/// The connection and the rules by which calls wait for it.
pub(crate) struct RemoteCalls {
    conn: Connection,
    /// Metadata operations acknowledged and not yet carried out: a call on
    /// a path waits for those on it, above it and below it.
    order: Arc<MetaOrder>,
    /// How long an operation waits for a lost connection.
    op_timeout: Duration,
}

tokio::task_local! {
    /// When the frontend request running on this task must be answered.
    static OP_DEADLINE: Instant;
}

/// What an operation's failure to reach the remote reports: EIO, the
/// errno every program handles. (ETIMEDOUT is in no file system call's
/// list of errors; NFS soft mounts answer EIO as well.)
fn unavailable(op: &'static str, path: &[u8], why: Unavailable, timeout: std::time::Duration) -> VfsError {
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

impl RemoteCalls {
    pub fn new(remote: Arc<dyn Remote>, op_timeout: Duration, order: Arc<MetaOrder>) -> RemoteCalls {
        RemoteCalls {
            conn: Connection::new(remote, op_timeout),
            order,
            op_timeout,
        }
    }

    /// The remote the next request goes to, and its generation.
    pub fn current(&self) -> (Arc<dyn Remote>, Generation) {
        self.conn.get()
    }

    /// The current connection if it is up, for calls only worth making
    /// now (prefetching, opening ahead), never waited for.
    pub fn if_up(&self) -> Option<(Arc<dyn Remote>, Generation)> {
        self.conn.if_up()
    }

    /// Err while the connection is gone for good.
    pub fn usable(&self) -> std::result::Result<(), Unavailable> {
        self.conn.usable()
    }

    /// The connection once it is up (until `deadline`).
    pub async fn ready(
        &self,
        deadline: Option<Instant>,
    ) -> std::result::Result<(Arc<dyn Remote>, Generation), Unavailable> {
        self.conn.ready(deadline).await
    }

    /// The connection after `generation`, once up (until `deadline`).
    pub async fn after(
        &self,
        generation: Generation,
        deadline: Option<Instant>,
    ) -> std::result::Result<(Arc<dyn Remote>, Generation), Unavailable> {
        self.conn.after(generation, deadline).await
    }

    /// Puts `remote` in place as the next connection, not up until
    /// [`RemoteCalls::mark_up`].
    pub fn install(&self, remote: Arc<dyn Remote>) -> Generation {
        self.conn.install(remote)
    }

    pub fn mark_up(&self, generation: Generation) -> bool {
        self.conn.mark_up(generation)
    }

    pub fn lost(&self, at: Instant) {
        self.conn.lost(at);
    }

    pub fn gone(&self, reason: &str) {
        self.conn.gone(reason);
    }

    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.conn.state()
    }

    /// Runs `request` (one frontend request) under its deadline: every wait
    /// for a connection inside it ends `op_timeout` after it started.
    /// Frontends wrap each kernel request in it; a call made outside one
    /// gets a deadline of its own from each wait.
    pub fn operation<F: Future>(&self, request: F) -> impl Future<Output = F::Output> {
        OP_DEADLINE.scope(Instant::now() + self.op_timeout, request)
    }

    /// The current operation's deadline: `op_timeout` after it started,
    /// or earlier if the connection is down and the outage will have
    /// lasted that long by then (waits for write-back end then too).
    pub fn deadline(&self) -> Instant {
        let op = OP_DEADLINE
            .try_with(|d| *d)
            .unwrap_or_else(|_| Instant::now() + self.op_timeout);
        match self.conn.outage_end() {
            Some(end) => op.min(end),
            None => op,
        }
    }

    pub fn unavailable(&self, op: &'static str, path: &[u8], why: Unavailable) -> VfsError {
        unavailable(op, path, why, self.op_timeout)
    }

    /// Runs `call` on the current connection; if the connection is lost
    /// under it, waits for the next one and runs it again there. For calls
    /// that may run twice: queries, and changes that set an absolute value.
    pub async fn call<T, F, Fut>(&self, op: &'static str, path: &[u8], call: F) -> Result<T>
    where
        F: FnMut(Arc<dyn Remote>) -> Fut,
        Fut: Future<Output = yonder_remote::Result<T>>,
    {
        self.call_on(op, path, call).await.map(|(value, _, _)| value)
    }

    /// [`RemoteCalls::call`], also returning the connection that answered (a
    /// handle it opened belongs to it).
    pub async fn call_on<T, F, Fut>(
        &self,
        op: &'static str,
        path: &[u8],
        call: F,
    ) -> Result<(T, Arc<dyn Remote>, Generation)>
    where
        F: FnMut(Arc<dyn Remote>) -> Fut,
        Fut: Future<Output = yonder_remote::Result<T>>,
    {
        self.until_answered(op, path, call, None::<fn(Arc<dyn Remote>) -> Fut>, false)
            .await
    }

    /// [`RemoteCalls::call`] for a call that must not simply run twice (create
    /// with O_EXCL, mkdir, rename, unlink, ...): its attempts are one
    /// [`Operation`]. Once the connection was lost after the request may
    /// have reached the agent, it is sent again where every agent it may
    /// have reached records operations ([`Remote::exactly_once`]), and
    /// answered with its first outcome; elsewhere `resolve` runs on the
    /// next connection instead. It finds out whether the call took
    /// effect and completes it if it did not; it may itself run more than
    /// once. A call that was never sent (the connection was already known
    /// lost) simply runs again. `call` sends one changing request.
    pub async fn call_once<T, F, Fut, R, RFut>(
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

    /// [`RemoteCalls::call_once`], also returning the connection that answered.
    pub async fn call_once_on<T, F, Fut, R, RFut>(
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
        self.until_answered(op, path, call, Some(resolve), false).await
    }

    /// [`RemoteCalls::call_once`] for an operation acknowledged before it
    /// was carried out (metadata write-back), which keeps its own order:
    /// it waits for no other operation, and for a lost connection without
    /// a deadline (the application was told it succeeded; it is given up
    /// only when the connection is gone for good).
    pub async fn call_acknowledged<T, F, Fut, R, RFut>(
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
        self.until_answered(op, path, call, Some(resolve), true).await
    }

    /// Waits until what was acknowledged about `path` (on it, above it,
    /// below it) has reached the remote, until the operation's deadline.
    pub async fn settled(&self, op: &'static str, path: &[u8]) -> Result<()> {
        self.order
            .settled(path, Some(self.deadline()))
            .await
            .map_err(|()| {
                tracing::debug!(
                    "{op} {}: operations acknowledged on this path were not carried out within the operation \
                     timeout ({:.0} s)",
                    display_path(path),
                    self.op_timeout.as_secs_f64()
                );
                VfsError::new(op, display_path(path), Errno::EIO)
            })
    }

    pub fn order(&self) -> &Arc<MetaOrder> {
        &self.order
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
        acknowledged: bool,
    ) -> Result<(T, Arc<dyn Remote>, Generation)>
    where
        F: FnMut(Arc<dyn Remote>) -> Fut,
        Fut: Future<Output = yonder_remote::Result<T>>,
        R: FnMut(Arc<dyn Remote>) -> RFut,
        RFut: Future<Output = yonder_remote::Result<T>>,
    {
        let deadline = (!acknowledged).then(|| self.deadline());
        if !acknowledged {
            self.settled(op, path).await?;
        }
        let (mut remote, mut generation) = self
            .conn
            .ready(deadline)
            .await
            .map_err(|why| self.unavailable(op, path, why))?;
        // A call that must not run twice is one operation across its
        // attempts: an agent that records operations answers an attempt
        // sent again with the first one's outcome.
        let operation = resolve.is_some().then(Operation::begin);
        let mut unsure = false;
        // Every attempt that may have taken effect went to an agent that
        // records operations: sending it again is exact, no resolve step.
        let mut recorded = true;
        loop {
            let exact = remote.exactly_once();
            let result = match resolve.as_mut().filter(|_| unsure && !(recorded && exact)) {
                Some(resolve) => resolve(remote.clone()).await,
                None => match &operation {
                    Some(operation) => operation.scope(call(remote.clone())).await,
                    None => call(remote.clone()).await,
                },
            };
            match result {
                Err(e) if e.is_connection_lost() => {
                    if resolve.is_some() && e.outcome_unknown() && !unsure {
                        let next = if exact {
                            "the next agent answers it again"
                        } else {
                            "its outcome is checked on the next connection"
                        };
                        tracing::info!(
                            "{op} {}: connection lost with the call in flight; {next}",
                            display_path(path)
                        );
                    }
                    unsure |= e.outcome_unknown();
                    recorded &= exact || !e.outcome_unknown();
                    (remote, generation) = self
                        .conn
                        .after(generation, deadline)
                        .await
                        .map_err(|why| self.unavailable(op, path, why))?;
                }
                Ok(value) => return Ok((value, remote, generation)),
                Err(e) => return Err(VfsError::remote(op, path, e)),
            }
        }
    }
}
