//! The manager's commands: `yonder manager run|start|stop|status|logs`,
//! `yonder connect`, `status`, `events`, `kill`, `unmount`, and the
//! managed half of `yonder mount`. Thin: each builds a request, sends it
//! with `yonder_manager::client` and prints the answer.

use crate::{ConnectArgs, LinkArgs};
use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use yonder_manager::client::{ensure_running, Client};
use yonder_manager::protocol::{
    ConnectSpec, EventKind, LinkSpec, MountSpec, Request, Response, Status, Topic,
};
use yonder_manager::{ManagerError, Paths};

/// How long a request that connects or mounts may take.
const SLOW: Duration = Duration::from_secs(120);
const QUICK: Duration = Duration::from_secs(30);

#[derive(Args)]
pub struct ManagerArgs {
    #[command(subcommand)]
    command: ManagerCommand,
}

#[derive(Subcommand)]
enum ManagerCommand {
    /// Run the manager in the foreground (what `start` runs, detached).
    #[command(hide = true)]
    Run(RunArgs),
    /// Start the manager unless it runs (commands that need it start it too).
    Start(RunArgs),
    /// Flush and unmount everything, close every connection, and stop.
    Stop,
    /// Whether the manager runs: its pid, version, socket and log.
    Status,
    /// Print the manager's log.
    Logs {
        /// Keep printing what is appended.
        #[arg(short, long)]
        follow: bool,
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Seconds between health checks of every mount (connections check
    /// themselves: heartbeats).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    health_interval: f64,
    /// Log debug detail.
    #[arg(long)]
    debug: bool,
}

impl RunArgs {
    fn argv(&self) -> Vec<String> {
        let mut argv = vec![format!("--health-interval={}", self.health_interval)];
        if self.debug {
            argv.push("--debug".into());
        }
        argv
    }
}

#[derive(Args)]
pub struct ConnectCmdArgs {
    /// [user@]host:[path], ssh://[user@]host[:port][/path], or a local path.
    source: String,
    /// Options, comma-separated and repeatable: ssh options as
    /// `Key=value` (capitalised, as ssh spells them), and the connection
    /// settings of `yonder mount -o` (`port=`, `heartbeat=`...).
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    link: LinkArgs,
}

#[derive(Clone, Copy, Default, ValueEnum)]
enum StatusFormat {
    #[default]
    Table,
    Json,
}

#[derive(Clone, Copy, Default, ValueEnum)]
enum EventFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Copy, Default, ValueEnum)]
enum TopicArg {
    Connection,
    Mount,
    #[default]
    All,
}

#[derive(Args)]
pub struct StatusArgs {
    #[arg(long, value_enum, default_value_t)]
    format: StatusFormat,
}

#[derive(Args)]
pub struct EventsArgs {
    #[arg(long, value_enum, default_value_t)]
    topic: TopicArg,
    #[arg(long, value_enum, default_value_t)]
    format: EventFormat,
    /// First print the events (still kept) after this sequence number, as
    /// `status --format json` reports it in `last_event`: nothing is
    /// missed between the two.
    #[arg(long, value_name = "SEQ")]
    after: Option<u64>,
}

#[derive(Args)]
pub struct KillArgs {
    /// The connection's id (`c1`).
    id: String,
}

#[derive(Args)]
pub struct ReconnectArgs {
    /// The connection's id (`c1`), or a mount's (`m1`) for its connection.
    id: String,
}

#[derive(Args)]
pub struct UnmountArgs {
    /// A mount's id (`m1`) or its mount point.
    #[arg(required_unless_present = "all")]
    target: Option<String>,
    /// Unmount every mount of the manager.
    #[arg(long, conflicts_with = "target")]
    all: bool,
    /// Detach now even if busy; the mount goes once its files are closed.
    #[arg(short = 'z', long, alias = "lazy")]
    force: bool,
}

fn paths() -> Paths {
    Paths::from_env()
}

fn exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the yonder executable")
}

/// A client of the running manager, started if needed.
fn manager() -> anyhow::Result<Client> {
    Ok(ensure_running(&paths(), &exe()?, &[])?)
}

pub fn manager_command(args: ManagerArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ManagerCommand::Run(run) => run_daemon(run),
        ManagerCommand::Start(run) => {
            let paths = paths();
            let already = Client::connect(&paths).is_ok();
            let client = ensure_running(&paths, &exe()?, &run.argv())?;
            let pid = client.manager.pid.unwrap_or_default();
            if already {
                println!("the manager is already running (pid {pid})");
            } else {
                println!("manager started (pid {pid}); log: {}", paths.log.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ManagerCommand::Stop => stop(),
        ManagerCommand::Status => {
            let paths = paths();
            match Client::connect(&paths) {
                Ok(mut client) => {
                    let Response::Status(status) = client.request(&Request::Status, QUICK)? else {
                        anyhow::bail!("unexpected answer to status");
                    };
                    let m = status.manager;
                    println!(
                        "running: pid {}, yonder {}, control protocol {}\nsocket: {}\nlog: {}\n{} connections, {} mounts",
                        m.pid,
                        m.version,
                        m.protocol,
                        m.socket.display(),
                        m.log.display(),
                        status.connections.len(),
                        status.mounts.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(ManagerError::NotRunning { socket }) => {
                    println!("not running (socket {})", socket.display());
                    Ok(ExitCode::from(3))
                }
                Err(e) => Err(e.into()),
            }
        }
        ManagerCommand::Logs { follow } => logs(follow),
    }
}

fn run_daemon(args: RunArgs) -> anyhow::Result<ExitCode> {
    // Out of the caller's session and process group: a terminal's hangup
    // or Ctrl+C does not reach the manager. Fails harmlessly when already
    // a session leader (started by systemd).
    #[cfg(unix)]
    let _ = rustix::process::setsid();
    let paths = paths();
    if let Some(dir) = paths.log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create log directory {}", dir.display()))?;
    }
    if std::env::var_os("YONDER_LOG").is_none() {
        // Single-threaded still: nothing reads the environment meanwhile.
        std::env::set_var("YONDER_LOG", if args.debug { "debug" } else { "info" });
    }
    crate::logging::init(args.debug, Some(&paths.log))?;
    anyhow::ensure!(
        args.health_interval.is_finite() && args.health_interval > 0.0,
        "--health-interval must be a positive number of seconds"
    );
    let unmount_guard = crate::unmount_guard_cmd::spawn(Some(&paths.log));
    let config = yonder_manager::Config {
        paths,
        health_interval: Duration::from_secs_f64(args.health_interval),
        local_agent: None,
        unmount_guard,
    };
    match yonder_manager::run(config) {
        Ok(()) => {}
        // Two commands that start the manager at once: one wins, the
        // other uses it. Losing that race is normal, not an error.
        Err(e @ ManagerError::AlreadyRunning { .. }) => {
            tracing::info!("not starting: {e}");
            return Err(e.into());
        }
        Err(e) => {
            tracing::error!("{e}");
            return Err(e.into());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Says on stderr, until this process ends, what the manager reports
/// while mounts deliver what they acknowledged before they go
/// (`delivering` events: `yonder: m1: delivering 1,234 pending operations
/// to HOST…`).
fn show_delivery() {
    let Ok(mut client) = Client::connect(&paths()) else {
        return;
    };
    let subscribe = Request::Events {
        topic: Topic::Mount,
        after: None,
    };
    if !matches!(client.request(&subscribe, QUICK), Ok(Response::Subscribed)) {
        return;
    }
    std::thread::spawn(move || {
        while let Ok(Some(event)) = client.next_event() {
            if let (EventKind::Delivering, Some(reason)) = (event.event, &event.reason) {
                eprintln!("yonder: {}: {reason}", event.id);
            }
        }
    });
}

fn stop() -> anyhow::Result<ExitCode> {
    let paths = paths();
    match Client::connect(&paths) {
        Ok(mut client) => {
            show_delivery();
            client.request(&Request::Stop, QUICK)?;
            // Answered at once; the connection ends when the manager exits.
            client.wait_closed(SLOW)?;
        }
        Err(ManagerError::NotRunning { .. }) => {
            println!("no manager is running");
            return Ok(ExitCode::SUCCESS);
        }
        Err(ManagerError::ProtocolMismatch { .. }) => {
            // Another version: stopped by signal, as its hello names it.
            let hello = Client::hello_of(&paths)?;
            #[cfg(unix)]
            {
                let pid = hello
                    .pid
                    .and_then(|p| rustix::process::Pid::from_raw(p as i32))
                    .context("the running manager did not say its pid")?;
                rustix::process::kill_process(pid, rustix::process::Signal::TERM)
                    .with_context(|| format!("signal the manager (pid {})", pid.as_raw_pid()))?;
            }
            #[cfg(windows)]
            anyhow::bail!(
                "the running manager (pid {}) speaks another control protocol, and Windows has no \
                 SIGTERM to stop it with: end it with taskkill /PID {0}",
                hello
                    .pid
                    .map_or_else(|| "unknown".to_string(), |pid| pid.to_string())
            );
        }
        Err(e) => return Err(e.into()),
    }
    let deadline = Instant::now() + SLOW;
    while paths.manager_listening() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::ensure!(
        !paths.manager_listening(),
        "the manager did not stop within {SLOW:?}; see {}",
        paths.log.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn logs(follow: bool) -> anyhow::Result<ExitCode> {
    let path = paths().log;
    let mut file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => {
            eprintln!("yonder: no manager log yet ({})", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
    };
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        file.read_to_end(&mut buf)
            .with_context(|| format!("read {}", path.display()))?;
        out.write_all(&buf)?;
        out.flush()?;
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(250));
        // Truncated (a new log): start over.
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len < file.stream_position()? {
            file.seek(std::io::SeekFrom::Start(0))?;
        }
    }
}

/// `ssh options from -o`, as `yonder mount` splits them.
fn connect_spec(
    source: &str,
    options: &yonder_remote::ConnectOptions,
    link: LinkSpec,
) -> anyhow::Result<ConnectSpec> {
    Ok(ConnectSpec::new(absolute_source(source)?, options, link))
}

/// `source`, checked, with a local path made absolute: the manager takes
/// it from here, not from its own directory.
fn absolute_source(source: &str) -> anyhow::Result<String> {
    let parsed = yonder_remote::Source::parse(source)?;
    parsed.check_local_root(source)?;
    Ok(match parsed {
        yonder_remote::Source::Local { root } => {
            let root = std::path::absolute(&root).with_context(|| format!("source {}", root.display()))?;
            root.to_str()
                .with_context(|| format!("source {} is not valid UTF-8", root.display()))?
                .to_string()
        }
        _ => source.to_string(),
    })
}

/// Reads `yonder connect -o` with the parser every mount uses: ssh
/// options and a connection's settings are taken (returns the ssh
/// options), a mount's own are refused.
fn fold_connect_options(args: &mut ConnectCmdArgs) -> anyhow::Result<Vec<String>> {
    use yonder_fuse::options::OptionWord;
    let mut ssh = Vec::new();
    for word in args.options.iter().flat_map(|o| o.split(',')) {
        match OptionWord::parse(word)? {
            OptionWord::Ssh(option) => ssh.push(option),
            OptionWord::Port(port) => ssh.push(format!("Port={port}")),
            OptionWord::SshCommand(command) => args.connect.ssh_command = Some(command),
            OptionWord::AgentPath(path) => args.connect.agent_path = Some(path),
            OptionWord::DockerCommand(command) => args.connect.docker_command = Some(command),
            OptionWord::Heartbeat(s) => args.link.heartbeat = s,
            OptionWord::HeartbeatMisses(n) => args.link.heartbeat_misses = n,
            OptionWord::ReconnectTimeout(s) => args.link.reconnect_timeout = Some(s),
            OptionWord::NoReconnect => args.link.no_reconnect = true,
            OptionWord::Sftp => args.connect.sftp = true,
            OptionWord::NoDeploy => args.connect.no_deploy = true,
            OptionWord::Transport(value) => {
                args.connect.transport = value.parse().map_err(anyhow::Error::msg)?
            }
            OptionWord::DirectBind(value) => args.connect.direct_bind = Some(value),
            OptionWord::DirectConnect(value) => args.connect.direct_connect = Some(value),
            OptionWord::Key(value) => args.connect.key = Some(value.into()),
            OptionWord::DirectStreams(n) => args.connect.direct_streams = Some(n),
            OptionWord::Dropped => {}
            _ => anyhow::bail!(
                "option {}: a mount's, not a connection's (yonder connect takes ssh options as Key=value, \
                 port=, ssh_command=, agent_path=, docker_command=, heartbeat=, heartbeat_misses=, \
                 reconnect_timeout=, no_reconnect, sftp, no_deploy, transport=, direct_bind=, direct_connect=, \
                 direct_streams=, key=)",
                word.trim()
            ),
        }
    }
    Ok(ssh)
}

pub fn connect(mut args: ConnectCmdArgs) -> anyhow::Result<ExitCode> {
    let ssh_options = fold_connect_options(&mut args)?;
    let mut options = args.connect.options();
    options.ssh_options.extend(ssh_options);
    args.link.options()?;
    let spec = connect_spec(&args.source, &options, args.link.spec())?;
    let response = manager()?.request(&Request::Connect { connect: spec }, SLOW)?;
    let Response::Connected { id, notice, .. } = response else {
        anyhow::bail!("unexpected answer to connect: {response:?}");
    };
    if let Some(notice) = notice {
        eprintln!("yonder: {notice}");
    }
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// `yonder mount` without `--foreground`: the manager mounts; returns once
/// the mount is usable. `created` says whether the mount point was made
/// for this mount (removed again if the mount fails).
pub fn mount(mut spec: MountSpec, created: bool) -> anyhow::Result<ExitCode> {
    let absolute = std::path::absolute(&spec.mountpoint)
        .with_context(|| format!("mount point {}", spec.mountpoint.display()))?;
    spec.mountpoint = absolute.clone();
    spec.connect.source = absolute_source(&spec.connect.source)?;
    let result = manager().and_then(|mut m| Ok(m.request(&Request::Mount { mount: spec }, SLOW)?));
    match result {
        Ok(Response::Mounted {
            id,
            mountpoint,
            notice,
            replayed,
            ..
        }) => {
            if let Some(notice) = notice {
                eprintln!("yonder: {notice}");
            }
            if let Some(replayed) = replayed {
                eprintln!("yonder: {replayed}");
            }
            // Scripts wait for this line: the mount is usable once printed.
            println!("{id} {}", mountpoint.display());
            Ok(ExitCode::SUCCESS)
        }
        other => {
            if created {
                let _ = std::fs::remove_dir(&absolute);
            }
            match other {
                Ok(response) => anyhow::bail!("unexpected answer to mount: {response:?}"),
                Err(e) => Err(e),
            }
        }
    }
}

fn status_of(client: &mut Client) -> anyhow::Result<Status> {
    match client.request(&Request::Status, QUICK)? {
        Response::Status(status) => Ok(status),
        other => anyhow::bail!("unexpected answer to status: {other:?}"),
    }
}

pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let status = match Client::connect(&paths()) {
        Ok(mut client) => Some(status_of(&mut client)?),
        Err(ManagerError::NotRunning { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    match args.format {
        StatusFormat::Json => {
            let status = status.unwrap_or_default();
            println!("{}", serde_json::to_string_pretty(&status)?);
        }
        StatusFormat::Table => match status {
            None => println!("no connections, no mounts (the manager is not running)"),
            Some(status) if status.connections.is_empty() && status.mounts.is_empty() => {
                println!("no connections, no mounts")
            }
            Some(status) => print!("{}", table(&status)),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Columns padded to their widest cell.
fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn table(status: &Status) -> String {
    let state = |state: &str, reason: &Option<String>| match reason {
        Some(reason) if state != "connected" && state != "active" => format!("{state}: {reason}"),
        _ => state.to_string(),
    };
    let mut out = String::new();
    if !status.connections.is_empty() {
        let mut rows = vec![[
            "CONNECTION",
            "DESTINATION",
            "STATE",
            "TRANSPORT",
            "AGENT",
            "MOUNTS",
        ]
        .map(String::from)
        .to_vec()];
        for c in &status.connections {
            let mounts = if c.mounts.is_empty() {
                "-".into()
            } else {
                c.mounts.join(",")
            };
            rows.push(vec![
                c.id.clone(),
                c.destination.clone(),
                state(&c.state, &c.reason),
                match &c.fallback {
                    Some(_) => format!("{} (fallback)", c.transport),
                    None => c.transport.clone(),
                },
                c.agent.clone().unwrap_or_else(|| "-".into()),
                mounts,
            ]);
        }
        out.push_str(&columns(&rows));
    }
    if !status.mounts.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        let mut rows = vec![
            ["MOUNT", "BACKEND", "SOURCE", "MOUNT POINT", "CONNECTION", "STATE"]
                .map(String::from)
                .to_vec(),
        ];
        for m in &status.mounts {
            rows.push(vec![
                m.id.clone(),
                m.backend.clone(),
                m.source.clone(),
                m.mountpoint.display().to_string(),
                m.connection.clone(),
                match m.write_back_failures {
                    0 => state(&m.state, &m.reason),
                    n => format!(
                        "{} ({n} write-back operation{} refused by the remote: see yonder events and the log)",
                        state(&m.state, &m.reason),
                        if n == 1 { "" } else { "s" }
                    ),
                },
            ]);
        }
        out.push_str(&columns(&rows));
    }
    out
}

pub fn events(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let topic = match args.topic {
        TopicArg::Connection => Topic::Connection,
        TopicArg::Mount => Topic::Mount,
        TopicArg::All => Topic::All,
    };
    let mut client = manager()?;
    let response = client.request(
        &Request::Events {
            topic,
            after: args.after,
        },
        QUICK,
    )?;
    anyhow::ensure!(
        response == Response::Subscribed,
        "unexpected answer to events: {response:?}"
    );
    let mut out = std::io::stdout().lock();
    while let Some(event) = client.next_event()? {
        let line = match args.format {
            EventFormat::Json => serde_json::to_string(&event)?,
            EventFormat::Text => event.text(),
        };
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            // The reader went away (a closed pipe): done.
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The running manager, for a request about connection or mount `id`:
/// with none running, there is no such thing to act on.
fn manager_for(id: &str) -> anyhow::Result<Client> {
    match Client::connect(&paths()) {
        Err(ManagerError::NotRunning { .. }) => {
            anyhow::bail!("no connection {id} (no manager is running)")
        }
        other => Ok(other?),
    }
}

pub fn kill(args: KillArgs) -> anyhow::Result<ExitCode> {
    let mut client = manager_for(&args.id)?;
    let mountpoints: Vec<(String, PathBuf)> = status_of(&mut client)?
        .mounts
        .into_iter()
        .map(|m| (m.id, m.mountpoint))
        .collect();
    match client.request(&Request::Kill { id: args.id }, SLOW)? {
        Response::Killed { id, unmounted } => {
            println!("{id}: closed");
            for mount in unmounted {
                match mountpoints.iter().find(|(m, _)| *m == mount) {
                    Some((_, at)) => println!("{mount}: unmounted {}", at.display()),
                    None => println!("{mount}: unmounted"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        other => anyhow::bail!("unexpected answer to kill: {other:?}"),
    }
}

pub fn reconnect(args: ReconnectArgs) -> anyhow::Result<ExitCode> {
    let mut client = manager_for(&args.id)?;
    match client.request(&Request::Reconnect { id: args.id }, QUICK)? {
        Response::Reconnecting { id } => {
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        other => anyhow::bail!("unexpected answer to reconnect: {other:?}"),
    }
}

fn looks_like_id(target: &str) -> bool {
    target
        .strip_prefix('m')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

pub fn unmount(args: UnmountArgs) -> anyhow::Result<ExitCode> {
    let request = Request::Unmount {
        target: args.target.clone(),
        all: args.all,
        force: args.force,
    };
    let mut client = match Client::connect(&paths()) {
        Ok(client) => client,
        Err(e @ ManagerError::ProtocolMismatch { .. }) => return Err(e.into()),
        Err(e) => {
            // No manager to ask (none runs, or its directory is unusable):
            // a mount point is unmounted by path, as before the manager.
            return match &args.target {
                None if matches!(e, ManagerError::NotRunning { .. }) => Ok(ExitCode::SUCCESS),
                None => Err(e.into()),
                Some(id) if looks_like_id(id) && !Path::new(id).exists() => {
                    anyhow::bail!("no mount {id} ({e})")
                }
                Some(path) => unmount_path(Path::new(path), args.force),
            };
        }
    };
    // A mount point the manager does not know (a foreground mount, or one
    // whose process died) is unmounted by path, as before the manager.
    let request = match &args.target {
        Some(target) => match managed_target(&status_of(&mut client)?, target) {
            Some(known) => Request::Unmount {
                target: Some(known),
                all: false,
                force: args.force,
            },
            None if looks_like_id(target) => request,
            None => return unmount_path(Path::new(target), args.force),
        },
        None => request,
    };
    show_delivery();
    client.request(&request, SLOW)?;
    Ok(ExitCode::SUCCESS)
}

/// The manager's name for the mount `target` means: its id, or its mount
/// point as the manager knows it (absolute), for a mount point given
/// relative to this directory (`mnt/a`, `./a`). None if it knows no such
/// mount.
fn managed_target(status: &Status, target: &str) -> Option<String> {
    if status.mounts.iter().any(|m| m.id == target) {
        return Some(target.to_string());
    }
    let path = Path::new(target);
    // Without resolving symlinks as well: a dead mount point cannot be
    // resolved.
    let candidates = [path.canonicalize().ok(), std::path::absolute(path).ok()];
    status
        .mounts
        .iter()
        .find(|m| candidates.iter().flatten().any(|c| *c == m.mountpoint))
        .map(|m| m.mountpoint.display().to_string())
}

fn unmount_path(path: &Path, lazy: bool) -> anyhow::Result<ExitCode> {
    yonder_fuse::unmount(path, lazy)?;
    Ok(ExitCode::SUCCESS)
}
