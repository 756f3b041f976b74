//! The manager: the registry of connections and mounts, the control
//! socket, health checks and shutdown.
//!
//! The registry is one table behind one mutex (never held across an
//! `.await` or a blocking call). Every state change goes through
//! `Registry::set_connection_state` / `set_mount_state` or the insert and
//! remove functions, which change the table and publish the event in the
//! same critical section: each transition is published exactly once, in
//! the order it happened. Slow work (connecting, mounting, flushing,
//! unmounting) runs outside the lock; a mount being unmounted is marked
//! `closing` first, so that neither a health check nor a second request
//! acts on it meanwhile.

use crate::connection::{Connection, Destination};
use crate::control_socket::{ControlListener, ControlStream, ControlWriter};
use crate::events::{connection_event, missed, mount_event, EventBus};
use crate::mount_builder::{BuiltMount, MountBuilder, MountError};
use crate::paths::Paths;
use crate::protocol::{
    ConnectSpec, ConnectionInfo, EventKind, Hello, LinkSpec, ManagerInfo, MountInfo, MountSpec, Request,
    Response, Status, Topic, PROTOCOL,
};
use crate::reap::Reaper;
use crate::state::{failed_beyond, ConnectionState, MountState, KEPT_FAILED};
use crate::ManagerError;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, watch};
use yonder_remote::LinkState;
use yonder_vfs::frontend::MountHandle;

/// How the manager runs.
#[derive(Clone, Debug)]
pub struct Config {
    pub paths: Paths,
    /// How often every mount and connection is checked.
    pub health_interval: Duration,
    /// The `yonder` binary to run as local agent (this executable if None).
    pub local_agent: Option<PathBuf>,
    /// Told of every FUSE mount: unmounts what a killed manager leaves.
    pub unmount_guard: Option<Arc<yonder_fuse::UnmountGuard>>,
}

/// How long `kill` lets each mount's buffered writes take.
const KILL_FLUSH: Duration = Duration::from_millis(500);
/// How long a client may take to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

struct ConnEntry {
    conn: Arc<Connection>,
    /// The heartbeat and reconnection settings it was opened with: a
    /// request asking for others gets a connection of its own.
    link: LinkSpec,
    state: ConnectionState,
    /// Made or claimed by `yonder connect`: stays when its last mount goes.
    pinned: bool,
}

struct MountEntry {
    mount: Arc<ManagedMount>,
    state: MountState,
    /// Being unmounted or killed: health checks and requests leave it be.
    closing: bool,
}

/// One mount the manager serves.
struct ManagedMount {
    id: String,
    source: String,
    root: String,
    connection: String,
    read_only: bool,
    mounted: Box<dyn MountHandle>,
}

#[derive(Default)]
struct Registry {
    next_connection: u64,
    next_mount: u64,
    connections: BTreeMap<u64, ConnEntry>,
    mounts: BTreeMap<u64, MountEntry>,
    stopping: bool,
}

fn number(id: &str, prefix: char) -> Option<u64> {
    id.strip_prefix(prefix)?.parse().ok()
}

impl Registry {
    fn connection(&self, id: &str) -> Option<&ConnEntry> {
        self.connections.get(&number(id, 'c')?)
    }

    fn mount(&self, id: &str) -> Option<&MountEntry> {
        self.mounts.get(&number(id, 'm')?)
    }

    fn mount_mut(&mut self, id: &str) -> Option<&mut MountEntry> {
        self.mounts.get_mut(&number(id, 'm')?)
    }

    fn mounts_on(&self, connection: &str) -> Vec<String> {
        self.mounts
            .values()
            .filter(|m| m.mount.connection == connection)
            .map(|m| m.mount.id.clone())
            .collect()
    }

    fn add_connection(&mut self, events: &EventBus, conn: Arc<Connection>, link: LinkSpec, pinned: bool) {
        let Some(n) = number(&conn.id, 'c') else { return };
        let mut event = connection_event(&conn.id, EventKind::Connected);
        event.state = Some(ConnectionState::Connected.name().into());
        event.destination = Some(conn.destination.to_string());
        self.connections.insert(
            n,
            ConnEntry {
                conn,
                link,
                state: ConnectionState::Connected,
                pinned,
            },
        );
        events.publish(event);
    }

    fn remove_connection(&mut self, events: &EventBus, id: &str) -> Option<Arc<Connection>> {
        let entry = self.connections.remove(&number(id, 'c')?)?;
        let mut event = connection_event(id, EventKind::Closed);
        event.destination = Some(entry.conn.destination.to_string());
        events.publish(event);
        Some(entry.conn)
    }

    fn add_mount(&mut self, events: &EventBus, mount: Arc<ManagedMount>, state: MountState) {
        let Some(n) = number(&mount.id, 'm') else { return };
        let mut event = mount_event(&mount.id, EventKind::Mounted);
        event.state = Some(state.name().into());
        event.reason = state.reason().map(str::to_string);
        event.source = Some(mount.source.clone());
        event.mountpoint = Some(mount.mounted.mountpoint().to_path_buf());
        event.connection = Some(mount.connection.clone());
        self.mounts.insert(
            n,
            MountEntry {
                mount,
                state,
                closing: false,
            },
        );
        events.publish(event);
    }

    /// Removes mount `id`; `reason` says why when it was not asked for.
    fn remove_mount(
        &mut self,
        events: &EventBus,
        id: &str,
        reason: Option<&str>,
    ) -> Option<Arc<ManagedMount>> {
        let entry = self.mounts.remove(&number(id, 'm')?)?;
        let mut event = mount_event(id, EventKind::Unmounted);
        event.reason = reason.map(str::to_string);
        event.source = Some(entry.mount.source.clone());
        event.mountpoint = Some(entry.mount.mounted.mountpoint().to_path_buf());
        event.connection = Some(entry.mount.connection.clone());
        events.publish(event);
        Some(entry.mount)
    }

    /// Moves connection `id` to `next`, and its mounts along (see
    /// [`MountState::following`]); publishes each change.
    fn set_connection_state(&mut self, events: &EventBus, id: &str, next: ConnectionState) {
        let Some(entry) = number(id, 'c').and_then(|n| self.connections.get_mut(&n)) else {
            return;
        };
        if !entry.state.can_become(&next) {
            return;
        }
        entry.state = next.clone();
        let mut event = connection_event(id, EventKind::State);
        event.state = Some(next.name().into());
        event.reason = next.reason().map(str::to_string);
        events.publish(event);
        for mount in self.mounts_on(id) {
            let follows = match self.mount(&mount) {
                Some(m) if !m.closing => m.state.following(&next),
                _ => continue,
            };
            self.set_mount_state(events, &mount, follows);
        }
    }

    /// Moves mount `id` to `next` if allowed (`failed` is terminal);
    /// publishes the change.
    fn set_mount_state(&mut self, events: &EventBus, id: &str, next: MountState) {
        let Some(entry) = self.mount_mut(id) else { return };
        if !entry.state.can_become(&next) {
            return;
        }
        entry.state = next.clone();
        let mut event = mount_event(id, EventKind::State);
        event.state = Some(next.name().into());
        event.reason = next.reason().map(str::to_string);
        events.publish(event);
    }
}

/// The manager: shared by the socket server's tasks, the health loop and
/// the tasks that watch connections and mounts.
pub struct Manager {
    config: Config,
    registry: Mutex<Registry>,
    events: EventBus,
    /// One connection attempt per destination at a time, so that two
    /// mounts asking at once share one connection.
    connecting: tokio::sync::Mutex<HashMap<Destination, Arc<tokio::sync::Mutex<()>>>>,
    stop: watch::Sender<bool>,
}

/// Runs the manager until it is stopped (`yonder manager stop`, SIGTERM,
/// SIGINT); blocks. Refuses to start when another manager runs.
pub fn run(config: Config) -> Result<(), ManagerError> {
    let paths = config.paths.clone();
    paths.prepare_dir()?;
    let _lock = take_lock(&paths)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("yonder-manager")
        .build()
        .map_err(|e| ManagerError::io("start runtime for", &paths.socket, e))?;
    let result = runtime.block_on(serve(config));
    // Sessions of lazily detached mounts may still serve open files; the
    // process's end takes them along.
    runtime.shutdown_timeout(Duration::from_secs(2));
    let _ = std::fs::remove_file(&paths.socket);
    tracing::info!("manager stopped");
    result
}

/// Takes the manager's lock (flock on `manager.lock`), held until the
/// returned file is closed (the process's end included).
fn take_lock(paths: &Paths) -> Result<std::fs::File, ManagerError> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.lock)
        .map_err(|e| ManagerError::io("open lock file", &paths.lock, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = lock.set_permissions(std::fs::Permissions::from_mode(0o600));
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(lock),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(ManagerError::AlreadyRunning {
                socket: paths.socket.clone(),
            }),
            Err(e) => Err(ManagerError::io("lock", &paths.lock, e.into())),
        }
    }
    // The pipe's first instance is the lock on Windows (see
    // `control_socket.rs`): the file only records where the log is.
    #[cfg(windows)]
    Ok(lock)
}

async fn serve(config: Config) -> Result<(), ManagerError> {
    let paths = config.paths.clone();
    // Holding the lock, any socket file left is a dead manager's.
    #[cfg(unix)]
    match std::fs::remove_file(&paths.socket) {
        Ok(()) => tracing::info!("removed stale socket {}", paths.socket.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ManagerError::io("remove stale socket", &paths.socket, e)),
    }
    let mut listener = match ControlListener::bind(&paths.socket) {
        Ok(listener) => listener,
        // Another manager's pipe (Windows: the name is the lock).
        #[cfg(windows)]
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(ManagerError::AlreadyRunning {
                socket: paths.socket.clone(),
            })
        }
        Err(e) => return Err(ManagerError::io("listen on", &paths.socket, e)),
    };
    let (stop, mut stopped) = watch::channel(false);
    let manager = Arc::new(Manager {
        config,
        registry: Mutex::new(Registry::default()),
        events: EventBus::new(),
        connecting: tokio::sync::Mutex::new(HashMap::new()),
        stop,
    });
    tracing::info!(
        "manager {} (pid {}) listening on {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        paths.socket.display()
    );
    tokio::spawn(health_loop(Arc::downgrade(&manager)));
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| ManagerError::io("signal", &paths.socket, e))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| ManagerError::io("signal", &paths.socket, e))?;
        let mut hup =
            signal(SignalKind::hangup()).map_err(|e| ManagerError::io("signal", &paths.socket, e))?;
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(stream) => {
                        tokio::spawn(client_session(manager.clone(), stream));
                    }
                    Err(e) => tracing::warn!("accept on {}: {e}", paths.socket.display()),
                },
                _ = term.recv() => {
                    tracing::info!("SIGTERM: stopping");
                    break;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: stopping");
                    break;
                }
                _ = hup.recv() => tracing::info!("SIGHUP ignored"),
                _ = stopped.wait_for(|s| *s) => break,
            }
        }
    }
    // Windows has Ctrl+C (and Ctrl+Break) for a console process, no
    // SIGTERM or SIGHUP.
    #[cfg(windows)]
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    tokio::spawn(client_session(manager.clone(), stream));
                }
                Err(e) => tracing::warn!("accept on {}: {e}", paths.socket.display()),
            },
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("Ctrl+C: stopping");
                break;
            }
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
    // No new clients from here; those connected see their requests refused.
    drop(listener);
    #[cfg(unix)]
    let _ = std::fs::remove_file(&paths.socket);
    manager.shutdown().await;
    Ok(())
}

/// One client: peer check, hellos, then requests until it hangs up.
async fn client_session(manager: Arc<Manager>, stream: ControlStream) {
    // The peer as the OS recorded it at connect (SO_PEERCRED): who the
    // client is, whatever it says.
    let peer = stream.check_peer();
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    if let Err(who) = peer {
        tracing::warn!("refused a connection from {who}");
        let me = ControlStream::served_user();
        let refusal = Response::Error {
            message: format!("connections from {who} are refused: this manager serves {me} only"),
        };
        let _ = send(&mut writer, &refusal).await;
        return;
    }
    if send(&mut writer, &Hello::this(PROTOCOL, Some(std::process::id())))
        .await
        .is_err()
    {
        return;
    }
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(line))) => serde_json::from_str::<Hello>(&line).ok(),
        _ => None,
    };
    match hello {
        Some(hello) if hello.protocol == PROTOCOL => {}
        Some(hello) => {
            tracing::info!(
                "client of control protocol {} (yonder {}) turned away",
                hello.protocol,
                hello.version
            );
            return;
        }
        None => return,
    }
    while let Ok(Some(line)) = lines.next_line().await {
        let request = match serde_json::from_str::<Request>(&line) {
            Ok(request) => request,
            Err(e) => {
                let error = Response::Error {
                    message: format!("cannot read request {line:?}: {e}"),
                };
                if send(&mut writer, &error).await.is_err() {
                    return;
                }
                continue;
            }
        };
        tracing::debug!(?request, "request");
        match request {
            Request::Events { topic, after } => {
                stream_events(&manager, writer, topic, after).await;
                return;
            }
            Request::Stop => {
                let _ = send(&mut writer, &Response::Stopping).await;
                manager.stop.send_replace(true);
                // The client waits for the end of this stream, which
                // comes with the process's exit, after the shutdown.
                std::future::pending::<()>().await;
            }
            request => {
                let response = manager.clone().handle(request).await;
                if send(&mut writer, &response).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn send<T: serde::Serialize>(writer: &mut ControlWriter, message: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    writer.write_all(&line).await?;
    writer.flush().await
}

async fn stream_events(manager: &Manager, mut writer: ControlWriter, topic: Topic, after: Option<u64>) {
    let (backlog, mut rx) = manager.events.subscribe(after);
    if send(&mut writer, &Response::Subscribed).await.is_err() {
        return;
    }
    for event in backlog.iter().filter(|e| e.matches(topic)) {
        if send(&mut writer, event).await.is_err() {
            return;
        }
    }
    loop {
        // Until the client hangs up, or the process ends (the events of
        // the shutdown are sent too).
        let event = match rx.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(n)) => missed(n),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if event.matches(topic) && send(&mut writer, &event).await.is_err() {
            return;
        }
    }
}

fn failed(message: impl Into<String>) -> Response {
    Response::Error {
        message: message.into(),
    }
}

impl Manager {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn handle(self: Arc<Self>, request: Request) -> Response {
        if self.registry().stopping {
            return failed("the manager is stopping");
        }
        let result = match request {
            Request::Status => Ok(Response::Status(self.status())),
            Request::Connect { connect } => self.connect(&connect).await,
            Request::Mount { mount } => self.clone().mount(mount).await,
            Request::Unmount { target, all, force } => self.unmount(target, all, force).await,
            Request::Kill { id } => self.kill(&id).await,
            Request::Reconnect { id } => self.reconnect(&id),
            Request::Events { .. } | Request::Stop => Err(ManagerError::Failed("not here".into())),
        };
        result.unwrap_or_else(|e| failed(e.to_string()))
    }

    fn status(&self) -> Status {
        let reg = self.registry();
        let paths = &self.config.paths;
        Status {
            manager: ManagerInfo {
                version: env!("CARGO_PKG_VERSION").into(),
                protocol: PROTOCOL,
                pid: std::process::id(),
                socket: paths.socket.clone(),
                log: paths.log.clone(),
            },
            connections: reg
                .connections
                .values()
                .map(|c| ConnectionInfo {
                    id: c.conn.id.clone(),
                    destination: c.conn.destination.to_string(),
                    state: c.state.name().into(),
                    reason: c.state.reason().map(str::to_string),
                    agent: c.conn.agent_origin().map(|o| o.name().to_string()),
                    transport: c.conn.transport().name().into(),
                    fallback: c.conn.transport().fallback().map(str::to_string),
                    pinned: c.pinned,
                    mounts: reg.mounts_on(&c.conn.id),
                })
                .collect(),
            mounts: reg
                .mounts
                .values()
                .map(|m| MountInfo {
                    id: m.mount.id.clone(),
                    backend: m.mount.mounted.frontend().into(),
                    source: m.mount.source.clone(),
                    root: m.mount.root.clone(),
                    mountpoint: m.mount.mounted.mountpoint().to_path_buf(),
                    connection: m.mount.connection.clone(),
                    state: m.state.name().into(),
                    reason: m.state.reason().map(str::to_string),
                    read_only: m.mount.read_only,
                    write_back_failures: m.mount.mounted.vfs().write_back_counts().0,
                    write_back_pending: m.mount.mounted.vfs().write_back_counts().1 as u64,
                })
                .collect(),
            last_event: self.events.last(),
        }
    }

    async fn connect(self: Arc<Self>, spec: &ConnectSpec) -> Result<Response, ManagerError> {
        let (destination, _) = Destination::parse(spec)?;
        let (conn, created) = self.connection_for(&destination, &spec.link, true).await?;
        Ok(Response::Connected {
            id: conn.id.clone(),
            created,
            notice: conn.fallback_notice().filter(|_| created),
        })
    }

    /// The connection to `destination` with the `link` settings: one that
    /// is connected (or reconnecting) if there is one, else a new one.
    /// `pin` marks it as asked for by `yonder connect`.
    async fn connection_for(
        self: &Arc<Self>,
        destination: &Destination,
        link: &LinkSpec,
        pin: bool,
    ) -> Result<(Arc<Connection>, bool), ManagerError> {
        let gate = self
            .connecting
            .lock()
            .await
            .entry(destination.clone())
            .or_default()
            .clone();
        let _one_at_a_time = gate.lock().await;
        let id = {
            let mut reg = self.registry();
            let existing = reg.connections.values_mut().find(|c| {
                &c.conn.destination == destination
                    && &c.link == link
                    && !matches!(c.state, ConnectionState::Disconnected { .. })
            });
            if let Some(entry) = existing {
                entry.pinned |= pin;
                return Ok((entry.conn.clone(), false));
            }
            reg.next_connection += 1;
            format!("c{}", reg.next_connection)
        };
        let weak = Arc::downgrade(self);
        let watched = id.clone();
        let conn = Connection::open(
            id,
            destination.clone(),
            self.config.local_agent.clone(),
            link.options()?,
            move |state| {
                if let Some(manager) = weak.upgrade() {
                    manager.link_state(&watched, state);
                }
            },
        )
        .await?;
        let mut reg = self.registry();
        if reg.stopping {
            conn.close();
            return Err(ManagerError::Failed("the manager is stopping".into()));
        }
        reg.add_connection(&self.events, conn.clone(), link.clone(), pin);
        tracing::info!("{} connected to {}", conn.id, conn.destination);
        Ok((conn, true))
    }

    /// Connection `id`'s link entered `state`: the connection (and its
    /// mounts) follow. (Each mount's VFS follows the link by itself onto a
    /// new connection, see `mount_builder`.)
    fn link_state(&self, id: &str, state: LinkState) {
        let next = match state {
            LinkState::Connected => ConnectionState::Connected,
            LinkState::Reconnecting { reason, .. } => ConnectionState::Reconnecting { reason },
            LinkState::Disconnected { reason } => {
                tracing::warn!("{id}: {reason}");
                ConnectionState::Disconnected { reason }
            }
        };
        self.registry().set_connection_state(&self.events, id, next);
    }

    /// `yonder reconnect ID`: connection `id` (or mount `id`'s) reconnects
    /// now.
    fn reconnect(&self, id: &str) -> Result<Response, ManagerError> {
        let reg = self.registry();
        let connection = match reg.mount(id) {
            Some(m) => m.mount.connection.clone(),
            None => id.to_string(),
        };
        let Some(entry) = reg.connection(&connection) else {
            return Err(ManagerError::Failed(format!("no connection or mount {id}")));
        };
        entry.conn.reconnect();
        tracing::info!("{connection}: reconnecting on request");
        Ok(Response::Reconnecting { id: connection })
    }

    /// An open file of mount `id` was lost with a connection: an event.
    fn file_lost(&self, id: &str, path: String) {
        if self.registry().mount(id).is_none() {
            return;
        }
        let mut event = mount_event(id, EventKind::FileLost);
        event.path = Some(path);
        event.reason =
            Some("deleted or replaced while the connection was down; its descriptors answer ESTALE".into());
        self.events.publish(event);
    }

    /// Mount `id` is delivering what it acknowledged before it goes.
    fn delivering(&self, id: &str, line: String) {
        tracing::info!("{id}: {line}");
        let mut event = mount_event(id, EventKind::Delivering);
        event.reason = Some(line);
        self.events.publish(event);
    }

    fn write_back_failed(&self, id: &str, op: &str, path: String, error: String) {
        if self.registry().mount(id).is_none() {
            return;
        }
        let mut event = mount_event(id, EventKind::WriteBackFailed);
        event.path = Some(path);
        event.reason = Some(format!(
            "{op} acknowledged ahead of the remote, then refused: {error}"
        ));
        self.events.publish(event);
    }

    /// Closes connection `id` if nothing needs it: not pinned, no mounts.
    /// The connection closed, if it was.
    fn release_if_unused(&self, id: &str) -> Option<Arc<Connection>> {
        let conn = {
            let mut reg = self.registry();
            match reg.connection(id) {
                Some(entry) if !entry.pinned && reg.mounts_on(id).is_empty() => {
                    reg.remove_connection(&self.events, id)
                }
                _ => None,
            }
        };
        if let Some(conn) = &conn {
            tracing::info!("{id}: closed (no mounts left)");
            conn.close();
        }
        conn
    }

    async fn mount(self: Arc<Self>, spec: MountSpec) -> Result<Response, ManagerError> {
        let (destination, root) = Destination::parse(&spec.connect)?;
        // Options yonder does not take are refused before connecting.
        let builder = MountBuilder::new(&spec, self.config.unmount_guard.clone())?.under(&root);
        if !spec.mountpoint.is_absolute() {
            return Err(ManagerError::Failed(format!(
                "mount point {} must be an absolute path",
                spec.mountpoint.display()
            )));
        }
        let mountpoint = spec
            .mountpoint
            .canonicalize()
            .map_err(|e| ManagerError::io("mount point", &spec.mountpoint, e))?;
        if let Some(m) = self
            .registry()
            .mounts
            .values()
            .find(|m| m.mount.mounted.mountpoint() == mountpoint && !m.state.is_failed())
        {
            return Err(ManagerError::Failed(format!(
                "{} is already mounted ({}, {})",
                mountpoint.display(),
                m.mount.id,
                m.mount.source
            )));
        }
        let (conn, created) = self
            .connection_for(&destination, &spec.connect.link, false)
            .await
            .map_err(|e| ManagerError::Failed(format!("mount {}: {e}", spec.connect.source)))?;
        let started = self.start_mount(&conn, &spec, builder, &mountpoint).await;
        let (mounted, scoped_root, replayed) = match started {
            Ok(started) => started,
            Err(e) => {
                if created {
                    let _ = self.release_if_unused(&conn.id);
                }
                return Err(e);
            }
        };
        let mut reg = self.registry();
        reg.next_mount += 1;
        let id = format!("m{}", reg.next_mount);
        let ended = mounted.ended();
        let mount = Arc::new(ManagedMount {
            id: id.clone(),
            source: spec.connect.source.clone(),
            root: String::from_utf8_lossy(&scoped_root).into_owned(),
            connection: conn.id.clone(),
            read_only: spec.read_only,
            mounted,
        });
        // The connection may have been lost (or killed) meanwhile.
        let state = match reg.connection(&conn.id) {
            Some(entry) => MountState::Active.following(&entry.state),
            None => MountState::Disconnected {
                reason: format!("connection {} was closed", conn.id),
            },
        };
        reg.add_mount(&self.events, mount.clone(), state);
        drop(reg);
        tracing::info!(
            "{id}: {} mounted on {} over {}",
            mount.source,
            mount.mounted.mountpoint().display(),
            conn.id
        );
        // A session that ends without being unmounted here: checked at once.
        let weak = Arc::downgrade(&self);
        let watched = id.clone();
        tokio::spawn(async move {
            ended.await;
            if let Some(manager) = weak.upgrade() {
                manager.check_mount(&watched);
            }
        });
        // Open files lost with a connection, and write-back refused: events.
        let mut vfs_events = mount.mounted.vfs().events();
        let weak = Arc::downgrade(&self);
        let watched = id.clone();
        tokio::spawn(async move {
            loop {
                match vfs_events.recv().await {
                    Ok(yonder_vfs::VfsEvent::HandleLost { path, .. }) => match weak.upgrade() {
                        Some(manager) => manager.file_lost(&watched, path),
                        None => return,
                    },
                    Ok(yonder_vfs::VfsEvent::MetadataFailed { op, path, error, .. }) => {
                        match weak.upgrade() {
                            Some(manager) => manager.write_back_failed(&watched, op, path, error),
                            None => return,
                        }
                    }
                    Ok(
                        yonder_vfs::VfsEvent::WriteFailed { path, error, .. }
                        | yonder_vfs::VfsEvent::WriteLost { path, error, .. },
                    ) => match weak.upgrade() {
                        Some(manager) => manager.write_back_failed(&watched, "write", path, error),
                        None => return,
                    },
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::Mounted {
            id,
            mountpoint: mount.mounted.mountpoint().to_path_buf(),
            connection: conn.id.clone(),
            notice: conn.fallback_notice().filter(|_| created),
            replayed,
        })
    }

    /// Mounts its tree of the connection's remote, as `builder` says.
    async fn start_mount(
        &self,
        conn: &Connection,
        spec: &MountSpec,
        builder: MountBuilder,
        mountpoint: &Path,
    ) -> Result<(Box<dyn MountHandle>, Vec<u8>, Option<String>), ManagerError> {
        let source = &spec.connect.source;
        let built = builder
            .start(conn.link(), mountpoint)
            .await
            .map_err(|e| match e {
                MountError::Frontend(e) => ManagerError::Failed(e.to_string()),
                e => ManagerError::Failed(format!("mount {source}: {e}")),
            })?;
        let BuiltMount {
            handle,
            root,
            replayed,
        } = built;
        Ok((handle, root.unwrap_or_default(), replayed))
    }

    /// Health of one mount: its session serves and it is in the mount
    /// table. One unmounted from outside (`umount`) is gone: removed, as
    /// if unmounted here. One whose session ended while still mounted has
    /// failed (a dead mount point, until unmounted); only the newest
    /// [`KEPT_FAILED`] of those are kept.
    fn check_mount(&self, id: &str) {
        let mount = match self.registry().mount(id) {
            Some(entry) if !entry.closing && !entry.state.is_failed() => entry.mount.clone(),
            _ => return,
        };
        let status = mount.mounted.status();
        let reason = match (status.serving, status.in_mount_table) {
            (_, Some(false)) => {
                self.unmounted_externally(id);
                return;
            }
            (false, _) => "the FUSE session ended",
            _ => return,
        };
        let forget = {
            let mut reg = self.registry();
            if reg.mount(id).is_none_or(|m| m.closing) {
                return;
            }
            tracing::warn!("{id} on {}: {reason}", mount.mounted.mountpoint().display());
            reg.set_mount_state(
                &self.events,
                id,
                MountState::Failed {
                    reason: reason.into(),
                },
            );
            let failed = reg
                .mounts
                .iter()
                .filter(|(_, m)| m.state.is_failed() && !m.closing);
            let old = failed_beyond(failed.map(|(n, _)| *n), KEPT_FAILED);
            let mut forgotten = Vec::new();
            for n in old {
                let id = format!("m{n}");
                let reason = format!("forgotten: only the newest {KEPT_FAILED} failed mounts are kept");
                forgotten.extend(reg.remove_mount(&self.events, &id, Some(&reason)));
            }
            forgotten
        };
        for mount in forget {
            // Nothing serves a failed mount: its dead mount point goes too.
            tracing::info!("{}: forgotten (too many failed mounts)", mount.id);
            let _ = self.release_if_unused(&mount.connection);
            self.drop_when_ended(mount, true);
        }
    }

    /// Mount `id` was unmounted from outside: removed from the registry
    /// (its event says why), its connection released if unused.
    fn unmounted_externally(&self, id: &str) {
        let removed = {
            let mut reg = self.registry();
            if reg.mount(id).is_none_or(|m| m.closing) {
                return;
            }
            reg.remove_mount(&self.events, id, Some("unmounted externally"))
        };
        let Some(mount) = removed else { return };
        tracing::info!(
            "{id}: {} was unmounted externally",
            mount.mounted.mountpoint().display()
        );
        let _ = self.release_if_unused(&mount.connection);
        self.drop_when_ended(mount, false);
    }

    /// Drops a mount removed from the registry once its session has ended
    /// (after a lazy unmount, once its last file is closed), off the
    /// runtime's threads; `detach` unmounts it lazily first.
    fn drop_when_ended(&self, mount: Arc<ManagedMount>, detach: bool) {
        tokio::spawn(async move {
            if detach {
                let detaching = mount.clone();
                let _ = tokio::task::spawn_blocking(move || detaching.mounted.unmount(true)).await;
            }
            mount.mounted.ended().await;
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = mount.mounted.wait() {
                    tracing::debug!("{e}");
                }
                drop(mount);
            })
            .await;
        });
    }

    /// Marks the mounts `target` names (or all) as closing and returns them.
    fn claim(&self, target: Option<&str>, all: bool) -> Result<Vec<Arc<ManagedMount>>, ManagerError> {
        let mut reg = self.registry();
        let ids: Vec<String> = if all {
            reg.mounts.values().map(|m| m.mount.id.clone()).collect()
        } else {
            let target = target
                .ok_or_else(|| ManagerError::Failed("unmount what? give an id or a mount point".into()))?;
            let by_path = Path::new(target).canonicalize().ok();
            let found = reg.mounts.values().find(|m| {
                m.mount.id == target
                    || by_path.as_deref() == Some(m.mount.mounted.mountpoint())
                    || Path::new(target) == m.mount.mounted.mountpoint()
            });
            match found {
                Some(m) => vec![m.mount.id.clone()],
                None => return Err(ManagerError::Failed(format!("no mount {target}"))),
            }
        };
        let mut claimed = Vec::new();
        for id in ids {
            let Some(entry) = reg.mount_mut(&id) else { continue };
            if entry.closing {
                if !all {
                    return Err(ManagerError::Failed(format!("{id} is already being unmounted")));
                }
                continue;
            }
            entry.closing = true;
            claimed.push(entry.mount.clone());
        }
        Ok(claimed)
    }

    fn unclaim(&self, id: &str) {
        if let Some(entry) = self.registry().mount_mut(id) {
            entry.closing = false;
        }
    }

    async fn unmount(
        self: Arc<Self>,
        target: Option<String>,
        all: bool,
        force: bool,
    ) -> Result<Response, ManagerError> {
        let claimed = self.claim(target.as_deref(), all)?;
        let mut done = Vec::new();
        let mut errors = Vec::new();
        for mount in claimed {
            match self.unmount_one(&mount, force, None).await {
                Ok(()) => done.push(mount.id.clone()),
                Err(e) => {
                    self.unclaim(&mount.id);
                    errors.push(e.to_string());
                }
            }
        }
        if errors.is_empty() {
            Ok(Response::Unmounted { ids: done })
        } else {
            Err(ManagerError::Failed(errors.join("\n")))
        }
    }

    /// Flushes (within `flush_limit`, if given), unmounts (lazily if
    /// `lazy`), removes from the registry and releases the connection if
    /// unused. The mount must be claimed.
    async fn unmount_one(
        &self,
        mount: &Arc<ManagedMount>,
        lazy: bool,
        flush_limit: Option<Duration>,
    ) -> Result<(), ManagerError> {
        let id = mount.id.clone();
        let mountpoint = mount.mounted.mountpoint().to_path_buf();
        let healthy = self
            .registry()
            .mount(&id)
            .is_some_and(|m| m.state == MountState::Active);
        let serving = mount.mounted.status().serving;
        if serving {
            let flushing = mount.clone();
            // Progress lines come back from the blocking delivery and go
            // out as events, for `yonder unmount` and `manager stop`.
            let (tx, mut progress) = tokio::sync::mpsc::unbounded_channel::<String>();
            let flush = tokio::task::spawn_blocking(move || {
                crate::delivery::deliver_pending(&*flushing.mounted, &flushing.source, &|line| {
                    let _ = tx.send(line.to_string());
                })
            });
            let flush = async {
                match flush_limit {
                    Some(limit) => match tokio::time::timeout(limit, flush).await {
                        Ok(joined) => joined
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.map_err(|e| e.to_string())),
                        Err(_) => Err(format!("buffered writes not sent within {limit:?}")),
                    },
                    None => flush
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string())),
                }
            };
            let mut flush = std::pin::pin!(flush);
            let flushed = loop {
                tokio::select! {
                    flushed = &mut flush => break flushed,
                    Some(line) = progress.recv() => self.delivering(&id, line),
                }
            };
            while let Ok(line) = progress.try_recv() {
                self.delivering(&id, line);
            }
            if let Err(e) = flushed {
                // A healthy mount keeps its data: refuse, unless forced.
                if healthy && !lazy {
                    return Err(ManagerError::Failed(format!(
                        "{id} ({}): sending buffered writes failed: {e}; 'yonder unmount --force {id}' unmounts anyway",
                        mountpoint.display()
                    )));
                }
                tracing::warn!("{id}: before unmounting: {e}");
            }
        }
        let unmounting = mount.clone();
        let unmounted = tokio::task::spawn_blocking(move || unmounting.mounted.unmount(lazy))
            .await
            .map_err(|e| ManagerError::Failed(format!("unmount {id}: {e}")))?;
        if let Err(e) = unmounted {
            let text = e.to_string();
            if text.contains("busy") {
                return Err(ManagerError::Failed(format!(
                    "{id} ({}) is busy: files are open or a process works in it; \
                     'yonder unmount --force {id}' detaches it now and it goes once they are closed",
                    mountpoint.display()
                )));
            }
            return Err(ManagerError::Failed(format!("unmount {id}: {text}")));
        }
        let connection = mount.connection.clone();
        self.registry().remove_mount(&self.events, &id, None);
        tracing::info!(
            "{id}: unmounted {}{}",
            mountpoint.display(),
            if lazy { " (lazily)" } else { "" }
        );
        // The session ends once the kernel lets go (after a lazy unmount,
        // once the last file is closed); the mount is dropped then, off
        // the runtime's threads.
        self.drop_when_ended(mount.clone(), false);
        if let Some(conn) = self.release_if_unused(&connection) {
            // Its link's last words (the agent may drop its records of the
            // session) are said before a stopping manager exits.
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.ended()).await;
        }
        Ok(())
    }

    async fn kill(self: Arc<Self>, id: &str) -> Result<Response, ManagerError> {
        let mounts = {
            let mut reg = self.registry();
            if reg.connection(id).is_none() {
                return Err(ManagerError::Failed(format!("no connection {id}")));
            }
            // Pinned no more: closed below whatever happens to the mounts.
            let mut claimed = Vec::new();
            for mid in reg.mounts_on(id) {
                if let Some(entry) = reg.mount_mut(&mid) {
                    if !entry.closing {
                        entry.closing = true;
                        claimed.push(entry.mount.clone());
                    }
                }
            }
            claimed
        };
        let mut unmounted = Vec::new();
        for mount in mounts {
            match self.unmount_one(&mount, true, Some(KILL_FLUSH)).await {
                Ok(()) => unmounted.push(mount.id.clone()),
                Err(e) => {
                    tracing::warn!("kill {id}: {e}");
                    self.unclaim(&mount.id);
                }
            }
        }
        let conn = self.registry().remove_connection(&self.events, id);
        if let Some(conn) = conn {
            conn.close();
            tracing::info!("{id}: killed");
        }
        Ok(Response::Killed {
            id: id.to_string(),
            unmounted,
        })
    }

    /// Flushes and unmounts everything, closes every connection.
    async fn shutdown(&self) {
        let mounts = {
            let mut reg = self.registry();
            reg.stopping = true;
            let mut claimed = Vec::new();
            for entry in reg.mounts.values_mut() {
                if !entry.closing {
                    entry.closing = true;
                    claimed.push(entry.mount.clone());
                }
            }
            claimed
        };
        for mount in mounts {
            if let Err(e) = self.unmount_one(&mount, false, None).await {
                tracing::warn!("{e}; detaching it lazily");
                if let Err(e) = self.unmount_one(&mount, true, Some(Duration::from_secs(1))).await {
                    tracing::warn!("{e}");
                }
            }
        }
        let conns: Vec<Arc<Connection>> = {
            let mut reg = self.registry();
            let ids: Vec<String> = reg.connections.values().map(|c| c.conn.id.clone()).collect();
            ids.iter()
                .filter_map(|id| reg.remove_connection(&self.events, id))
                .collect()
        };
        for conn in &conns {
            conn.close();
        }
        for conn in &conns {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.ended()).await;
        }
    }

    async fn check_health(&self, reaper: &mut Reaper) {
        let ids: Vec<String> = self
            .registry()
            .mounts
            .values()
            .map(|m| m.mount.id.clone())
            .collect();
        for id in ids {
            self.check_mount(&id);
        }
        // Connections need no check here: each link pings its agent
        // (heartbeats) and reports what it finds (`link_state`).
        reaper.reap();
    }
}

async fn health_loop(manager: Weak<Manager>) {
    let mut reaper = Reaper::default();
    loop {
        let interval = match manager.upgrade() {
            Some(m) => m.config.health_interval,
            None => return,
        };
        tokio::time::sleep(interval).await;
        let Some(manager) = manager.upgrade() else { return };
        if manager.registry().stopping {
            return;
        }
        manager.check_health(&mut reaper).await;
    }
}
