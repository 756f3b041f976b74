//! [`Link`]: a supervised connection to one agent, kept alive across
//! network failures.
//!
//! A link owns how to connect (a [`Connector`]: for a SOURCE, the same
//! transport every time, ssh again with the user's configuration), the
//! current [`Session`] (an [`crate::AgentClient`] today, whatever the
//! transport beneath it), and a [`watch`] of where it stands
//! ([`LinkStatus`]: its [`LinkState`] with the current connection's
//! generation and remote). Upper layers send requests to the current
//! remote and follow the watch; a VFS swaps each new connection in.
//!
//! Liveness. The link is dead at once when the agent's stream ends, a write
//! to it fails or the agent process exits ([`Session::closed`]). It is
//! also dead once the agent has been silent for `heartbeat ×
//! heartbeat_misses` (5 s × 3 by default): a `Ping` goes out every
//! `heartbeat`, and any frame from the agent (a ping's answer or any other
//! response) counts as a sign of life, so a link busy with a long transfer
//! is not mistaken for a dead one, while a black-holed network or a stopped
//! agent (SIGSTOP) is. A ping slower than the interval leaves that interval
//! silent: three such intervals in a row end the link.
//!
//! When dead: the old transport is killed (the ssh or agent process) and
//! every request still in flight on it fails at once
//! ([`Session::shutdown`]); then, unless reconnection is off, the link
//! reconnects with exponential backoff: the first attempt at once, then
//! after 0.5 s, doubling to at most 30 s between attempts, until
//! `reconnect_timeout` (unlimited by default) has passed since the link was
//! lost. Each attempt runs the whole transport and handshake again and is
//! itself bounded by `connect_timeout`. [`Link::reconnect_now`] ends the
//! wait (and a link that gave up starts again; a connected one is dropped
//! and made anew). [`Link::close`] ends the link for good.
//!
//! Every state a link enters is logged at info (target `yonder::link`,
//! field `state`: connected, reconnecting or disconnected; the first
//! connection at debug) and published
//! once on [`Link::transitions`] (a broadcast, for event streams that must
//! not miss one) as well as on [`Link::watch`] (the latest state, for
//! whoever only needs that).
//!
//! TCP keepalive: every transport today is a child process's stdio (ssh
//! sets its own keepalive, see `source.rs`). A transport that opens a TCP
//! connection itself sets [`crate::tcp::set_keepalive`] on its socket in its
//! [`Connector`].

use crate::changes::{ChangeFeed, RemoteChange};
use crate::session::{Connector, Session, Transport};
use crate::{connector_for, AgentOrigin, ConnectOptions, Remote, Result, Source};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How a link keeps its connection alive.
#[derive(Clone, Debug)]
pub struct LinkOptions {
    /// A heartbeat goes out this often.
    pub heartbeat: Duration,
    /// The link is dead once the agent has been silent for this many
    /// heartbeat intervals.
    pub heartbeat_misses: u32,
    /// Reconnect when the link dies; otherwise it goes to
    /// [`LinkState::Disconnected`] and stays there.
    pub reconnect: bool,
    /// Give up reconnecting after this long; `None`: never.
    pub reconnect_timeout: Option<Duration>,
    /// The wait after the first failed attempt; doubles after each.
    pub backoff_initial: Duration,
    /// The longest wait between attempts.
    pub backoff_max: Duration,
    /// One connection attempt (transport, authentication, handshake) that
    /// takes longer is abandoned.
    pub connect_timeout: Duration,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            heartbeat: Duration::from_secs(5),
            heartbeat_misses: 3,
            reconnect: true,
            reconnect_timeout: None,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl LinkOptions {
    /// How long the agent may be silent before the link counts as dead.
    pub fn dead_after(&self) -> Duration {
        self.heartbeat * self.heartbeat_misses.max(1)
    }
}

/// Where a link stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Connected; requests go to the current remote.
    Connected,
    /// The connection was lost (`reason`); attempt `attempt` (from 1) to
    /// make a new one is running or waiting its turn.
    Reconnecting { attempt: u32, reason: String },
    /// Not connected and not trying (reconnection is off, gave up, or the
    /// link was closed): calls fail at once. [`Link::reconnect_now`] tries
    /// again, except after [`Link::close`].
    Disconnected { reason: String },
}

impl LinkState {
    /// `connected`, `reconnecting` or `disconnected`: the state's name in
    /// status output and events.
    pub fn name(&self) -> &'static str {
        match self {
            LinkState::Connected => "connected",
            LinkState::Reconnecting { .. } => "reconnecting",
            LinkState::Disconnected { .. } => "disconnected",
        }
    }
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkState::Connected => f.write_str("connected"),
            LinkState::Reconnecting { attempt, reason } => {
                write!(f, "reconnecting (attempt {attempt}): {reason}")
            }
            LinkState::Disconnected { reason } => write!(f, "disconnected: {reason}"),
        }
    }
}

/// A link's state with its current connection, published together so a
/// follower never sees one without the other.
#[derive(Clone)]
pub struct LinkStatus {
    pub state: LinkState,
    /// Bumped by each new connection (the first is 1).
    pub generation: u64,
    /// The current (or, while not connected, the last) connection's remote.
    pub remote: Arc<dyn Remote>,
    /// How the current (or last) connection's agent got there, where its
    /// transport knows.
    pub agent: Option<AgentOrigin>,
    /// What carries the current (or last) connection, and, where SFTP
    /// stands in for an agent that cannot run there, why.
    pub transport: Transport,
    /// While not connected: when the outage began (the agent's last sign
    /// of life, or the moment its stream ended).
    pub lost_at: Option<std::time::Instant>,
}

impl fmt::Debug for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkStatus")
            .field("state", &self.state)
            .field("generation", &self.generation)
            .finish()
    }
}

/// A supervised connection; see the module documentation. Cloning gives
/// another handle on the same link; the link is closed when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Link {
    inner: Arc<Inner>,
}

struct Inner {
    status: watch::Sender<LinkStatus>,
    changes: broadcast::Sender<RemoteChange>,
    watching: watch::Sender<RemoteChange>,
    transitions: broadcast::Sender<LinkState>,
    reconnect_now: Arc<Notify>,
    close: Arc<Notify>,
    describe: String,
    options: LinkOptions,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.supervisor.lock().unwrap_or_else(|e| e.into_inner()).take() {
            // Dropping the supervisor's future drops the client, which
            // kills the transport.
            task.abort();
        }
    }
}

/// Changes kept for a subscriber that has not taken them yet.
const CHANGES_QUEUED: usize = 1024;

/// The target of every transition log line.
const LOG_TARGET: &str = "yonder::link";

impl Link {
    /// Connects to `source` (through its transport, see [`connector_for`])
    /// and supervises the connection. The first
    /// connection must succeed: its error is returned as is (an unreachable
    /// host, a missing remote path), nothing is retried.
    pub async fn connect(source: &Source, options: &ConnectOptions, link: LinkOptions) -> Result<Link> {
        Link::start(connector_for(source, options)?, link).await
    }

    /// [`Link::connect`] with any [`Connector`].
    pub async fn start(connector: Arc<dyn Connector>, options: LinkOptions) -> Result<Link> {
        let session = new_session();
        let describe = connector.describe();
        let client = connector.connect().await?;
        fence(&*client, session, 1, &describe).await?;
        let (transitions, _) = broadcast::channel(256);
        let status = watch::Sender::new(LinkStatus {
            state: LinkState::Connected,
            generation: 1,
            agent: client.agent_origin(),
            transport: connector.transport(),
            remote: client.clone(),
            lost_at: None,
        });
        let (changes, _) = broadcast::channel(CHANGES_QUEUED);
        let watching = watch::Sender::new(RemoteChange::Watching {
            active: false,
            feed: true,
            reason: "connecting".into(),
        });
        let inner = Arc::new(Inner {
            status: status.clone(),
            changes: changes.clone(),
            watching: watching.clone(),
            transitions: transitions.clone(),
            reconnect_now: Arc::new(Notify::new()),
            close: Arc::new(Notify::new()),
            describe: describe.clone(),
            options: options.clone(),
            supervisor: Mutex::new(None),
        });
        // The first connection is no news (a mount that starts says
        // nothing): at debug. Every change after it is at info.
        tracing::debug!(target: LOG_TARGET, state = %"connected", "{describe}: connected");
        let mut supervisor = Supervisor {
            changes,
            watching,
            notices: None,
            connector,
            options,
            describe,
            status,
            transitions,
            reconnect_now: inner.reconnect_now.clone(),
            close: inner.close.clone(),
            session,
            generation: 1,
            lost_at: None,
        };
        supervisor.follow_notices(&client, false);
        let task = tokio::spawn(supervisor.run(client));
        *inner.supervisor.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(Link { inner })
    }

    /// The state and the current connection, as they change.
    pub fn watch(&self) -> watch::Receiver<LinkStatus> {
        self.inner.status.subscribe()
    }

    /// The changes the remote pushes, on this connection and every later
    /// one (see [`ChangeFeed`]).
    pub fn changes(&self) -> ChangeFeed {
        ChangeFeed::new(self.inner.changes.subscribe(), &self.inner.watching)
    }

    /// Every state the link enters from now on, each once, in order.
    pub fn transitions(&self) -> broadcast::Receiver<LinkState> {
        self.inner.transitions.subscribe()
    }

    /// The current state.
    pub fn state(&self) -> LinkState {
        self.inner.status.borrow().state.clone()
    }

    /// The current (or last) connection and its generation.
    pub fn current(&self) -> (u64, Arc<dyn Remote>) {
        let status = self.inner.status.borrow();
        (status.generation, status.remote.clone())
    }

    /// How the current (or last) connection's agent got there.
    pub fn agent_origin(&self) -> Option<AgentOrigin> {
        self.inner.status.borrow().agent
    }

    /// What carries the current (or last) connection.
    pub fn transport(&self) -> Transport {
        self.inner.status.borrow().transport.clone()
    }

    pub fn options(&self) -> &LinkOptions {
        &self.inner.options
    }

    /// The destination, as logs name it.
    pub fn describe(&self) -> &str {
        &self.inner.describe
    }

    /// Reconnects now: a waiting reconnection tries at once, a link that
    /// gave up (or never reconnects) tries again, and a connected link
    /// drops its connection and makes a new one (`yonder reconnect`).
    pub fn reconnect_now(&self) {
        self.inner.reconnect_now.notify_one();
    }

    /// Ends the link for good: the transport is killed, calls fail, and
    /// the state is `Disconnected { reason: "closed" }`.
    pub fn close(&self) {
        self.inner.close.notify_one();
    }
}

struct Supervisor {
    changes: broadcast::Sender<RemoteChange>,
    /// Whether the current connection pushes changes.
    watching: watch::Sender<RemoteChange>,
    /// The task passing the current connection's notices on.
    notices: Option<tokio::task::AbortHandle>,
    connector: Arc<dyn Connector>,
    options: LinkOptions,
    describe: String,
    status: watch::Sender<LinkStatus>,
    transitions: broadcast::Sender<LinkState>,
    reconnect_now: Arc<Notify>,
    close: Arc<Notify>,
    /// Names this link's connections to their agents (see [`fence`]).
    session: u64,
    generation: u64,
    lost_at: Option<std::time::Instant>,
}

/// Why a connection ended.
enum End {
    /// Lost, and since when (the agent's last sign of life, or now).
    Lost(String, std::time::Instant),
    Requested,
    Closed,
}

impl Supervisor {
    /// Passes `client`'s change notices on to the link's subscribers,
    /// having said whether it pushes any (and, after a reconnection, that
    /// anything may have changed while the link was down).
    fn follow_notices(&mut self, client: &Arc<dyn Session>, reconnected: bool) {
        if let Some(previous) = self.notices.take() {
            previous.abort();
        }
        if reconnected {
            let _ = self.changes.send(RemoteChange::Unknown {
                reason: "reconnected: changes made while the link was down were not seen".into(),
            });
        }
        let notices = client.notices();
        let watching = RemoteChange::Watching {
            active: notices.is_some(),
            feed: notices.is_some(),
            reason: match notices {
                Some(_) => "the remote pushes changes".into(),
                None => "the remote does not push changes".into(),
            },
        };
        self.watching.send_replace(watching.clone());
        let _ = self.changes.send(watching);
        let Some(mut notices) = notices else { return };
        let (changes, watching) = (self.changes.clone(), self.watching.clone());
        let task = tokio::spawn(async move {
            loop {
                let pushed = match notices.recv().await {
                    Ok(notice) => RemoteChange::from_notice(notice),
                    Err(broadcast::error::RecvError::Lagged(missed)) => vec![RemoteChange::Unknown {
                        reason: format!("{missed} change notices were missed"),
                    }],
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                for change in pushed {
                    if let RemoteChange::Watching { .. } = change {
                        watching.send_replace(change.clone());
                    }
                    let _ = changes.send(change);
                }
            }
        });
        self.notices = Some(task.abort_handle());
    }

    fn publish(&self, state: LinkState, session: Option<&Arc<dyn Session>>) {
        let agent = session.and_then(|s| s.agent_origin());
        let transport = self.connector.transport();
        let remote = session.cloned().map(|s| -> Arc<dyn Remote> { s });
        let generation = self.generation;
        let lost_at = match state {
            LinkState::Connected => None,
            _ => self.lost_at,
        };
        self.status.send_modify(|status| {
            status.state = state.clone();
            status.generation = generation;
            status.lost_at = lost_at;
            if let Some(remote) = remote {
                status.remote = remote;
                status.agent = agent;
                status.transport = transport;
            }
        });
        let _ = self.transitions.send(state);
    }

    async fn run(mut self, first: Arc<dyn Session>) {
        let mut client = first;
        loop {
            let end = self.supervise(&client).await;
            let reason = match end {
                End::Closed => {
                    // Tells the agent every operation is settled, so that
                    // the session's reply records go with it.
                    let _ = tokio::time::timeout(Duration::from_secs(1), client.ping()).await;
                    client.shutdown("link closed");
                    self.connector.release();
                    // The agent process is gone (and reaped) before the
                    // link says it is closed.
                    let _ = tokio::time::timeout(Duration::from_secs(2), client.exited()).await;
                    tracing::info!(target: LOG_TARGET, state = %"disconnected", "{}: closed", self.describe);
                    self.publish(
                        LinkState::Disconnected {
                            reason: "closed".into(),
                        },
                        None,
                    );
                    return;
                }
                End::Requested => {
                    self.lost_at = Some(std::time::Instant::now());
                    self.connector.release();
                    "reconnection requested".to_string()
                }
                End::Lost(reason, at) => {
                    self.lost_at = Some(at);
                    reason
                }
            };
            client.shutdown(&format!("connection lost: {reason}"));
            let next = if self.options.reconnect {
                tracing::info!(
                    target: LOG_TARGET,
                    state = %"reconnecting",
                    "{}: connection lost ({reason}); reconnecting",
                    self.describe
                );
                self.reconnect(&reason).await
            } else {
                tracing::info!(
                    target: LOG_TARGET,
                    state = %"disconnected",
                    "{}: connection lost ({reason}); not reconnecting (--no-reconnect)",
                    self.describe
                );
                self.publish(
                    LinkState::Disconnected {
                        reason: format!("connection lost ({reason}); not reconnecting"),
                    },
                    None,
                );
                self.wait_while_disconnected().await
            };
            match next {
                Some(new) => {
                    self.follow_notices(&new, true);
                    client = new;
                }
                None => return,
            }
            // A request made while the connection was being made is done.
            let _ = tokio::time::timeout(Duration::ZERO, self.reconnect_now.notified()).await;
        }
    }

    /// Watches a live connection until it ends.
    async fn supervise(&self, client: &Arc<dyn Session>) -> End {
        let dead_after = self.options.dead_after();
        let mut ticker =
            tokio::time::interval_at(Instant::now() + self.options.heartbeat, self.options.heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let closed = client.closed();
        tokio::pin!(closed);
        loop {
            let silent_until = Instant::from_std(client.last_heard()) + dead_after;
            tokio::select! {
                reason = &mut closed => return End::Lost(reason, std::time::Instant::now()),
                _ = ticker.tick() => {
                    // Fire and forget: the answer shows in `last_heard`,
                    // a failure in `closed`.
                    let pinging = client.clone();
                    tokio::spawn(async move {
                        let _ = pinging.ping().await;
                    });
                }
                _ = tokio::time::sleep_until(silent_until) => {
                    let heard = Instant::from_std(client.last_heard());
                    if heard + dead_after <= Instant::now() {
                        let reason = format!(
                            "no answer to {} heartbeats in {:.1} s",
                            self.options.heartbeat_misses,
                            dead_after.as_secs_f64()
                        );
                        return End::Lost(reason, heard.into_std());
                    }
                }
                _ = self.reconnect_now.notified() => return End::Requested,
                _ = self.close.notified() => return End::Closed,
            }
        }
    }

    /// Makes a new connection, with backoff; `None` if the link gave up
    /// and was then closed, or was closed meanwhile.
    async fn reconnect(&mut self, lost: &str) -> Option<Arc<dyn Session>> {
        let started = Instant::now();
        let mut delay = self.options.backoff_initial;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.publish(
                LinkState::Reconnecting {
                    attempt,
                    reason: lost.to_string(),
                },
                None,
            );
            let next = self.generation + 1;
            let connecting = tokio::time::timeout(self.options.connect_timeout, async {
                let client = self.connector.connect().await?;
                fence(&*client, self.session, next, &self.describe).await?;
                Ok::<_, crate::RemoteError>(client)
            });
            let error = tokio::select! {
                result = connecting => match result {
                    Ok(Ok(client)) => {
                        self.generation = next;
                        tracing::info!(
                            target: LOG_TARGET,
                            state = %"connected",
                            "{}: reconnected (attempt {attempt}, after {:.1} s)",
                            self.describe,
                            started.elapsed().as_secs_f64()
                        );
                        self.publish(LinkState::Connected, Some(&client));
                        return Some(client);
                    }
                    Ok(Err(err)) => err.to_string(),
                    Err(_) => format!(
                        "no connection within {:.0} s",
                        self.options.connect_timeout.as_secs_f64()
                    ),
                },
                _ = self.close.notified() => return self.closed_while_down(),
            };
            tracing::info!(
                target: LOG_TARGET,
                "{}: reconnection attempt {attempt} failed: {error}",
                self.describe
            );
            let mut wait = delay;
            if let Some(limit) = self.options.reconnect_timeout {
                let left = limit.saturating_sub(started.elapsed());
                if left.is_zero() {
                    let reason = format!(
                        "connection lost ({lost}); gave up reconnecting after {:.0} s and {attempt} attempts \
                         (last: {error})",
                        started.elapsed().as_secs_f64()
                    );
                    tracing::info!(
                        target: LOG_TARGET,
                        state = %"disconnected",
                        "{}: {reason}",
                        self.describe
                    );
                    self.publish(LinkState::Disconnected { reason }, None);
                    return self.wait_while_disconnected().await;
                }
                wait = wait.min(left);
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => delay = (delay * 2).min(self.options.backoff_max),
                _ = self.reconnect_now.notified() => delay = self.options.backoff_initial,
                _ = self.close.notified() => return self.closed_while_down(),
            }
        }
    }

    /// Disconnected: waits for [`Link::reconnect_now`] (then reconnects)
    /// or [`Link::close`].
    async fn wait_while_disconnected(&mut self) -> Option<Arc<dyn Session>> {
        tokio::select! {
            _ = self.reconnect_now.notified() => {
                tracing::info!(
                    target: LOG_TARGET,
                    state = %"reconnecting",
                    "{}: reconnecting on request",
                    self.describe
                );
                Box::pin(self.reconnect("reconnection requested")).await
            }
            _ = self.close.notified() => self.closed_while_down(),
        }
    }

    fn closed_while_down(&self) -> Option<Arc<dyn Session>> {
        tracing::info!(target: LOG_TARGET, state = %"disconnected", "{}: closed", self.describe);
        self.publish(
            LinkState::Disconnected {
                reason: "closed".into(),
            },
            None,
        );
        None
    }
}

/// A number for one link's connections, unlikely to be any other link's
/// on the same remote: agents of one session fence each other off.
fn new_session() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    // RandomState is seeded from the system's randomness once per process
    // and varied per instance; the process id and time tell processes apart.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.finish()
}

/// Claims a new agent's place before anything is sent to it: the agent it
/// replaces, should it still hold requests it read before going quiet,
/// refuses to carry out any change from then on, so nothing of the old
/// connection lands after the replay. Best effort: an agent without the
/// capability (or a transport that cannot fence), or that cannot write its
/// claim, serves anyway.
async fn fence(client: &dyn Session, session: u64, generation: u64, describe: &str) -> Result<()> {
    match client.fence(session, generation).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::debug!(target: LOG_TARGET, "{describe}: the agent cannot fence off the ones it replaces");
            Ok(())
        }
        Err(e) if e.is_connection_lost() => Err(e),
        Err(e) => {
            tracing::warn!(
                target: LOG_TARGET,
                "{describe}: {e}; an agent this connection replaces is not fenced off"
            );
            Ok(())
        }
    }
}
