//! SOURCE strings and the transports they select ([`connector_for`]).
//!
//! * a local path, or `local:PATH`: spawns this binary as `yonder agent`;
//! * `[user@]host:[path]` (scp style) or `ssh://[user@]host[:port][/path]`:
//!   runs the system `ssh`, so `~/.ssh/config`, keys, the ssh agent and
//!   ProxyJump work unchanged, and deploys the agent where it is missing
//!   ([`crate::deploy`]);
//! * `SCHEME://ADDRESS[/PATH]` for a SCHEME in [`URL_TRANSPORTS`]: that
//!   transport's [`Connector`]. A new transport is its file (its
//!   `Connector`, and a [`crate::Session`] if it does not carry the agent's
//!   protocol) and one line in that table.

use crate::child::StdioChild;
use crate::deploy::{self, AgentOrigin, Build, CopyIn, DeployError};
use crate::session::{Connector, Session};
pub use crate::shell::shell_quote;
use crate::{AgentClient, RemoteError, Result};
use async_trait::async_trait;
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use tokio::process::{Child, Command};
use yonder_proto::Errno;

/// Where the directory tree to serve lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Local {
        root: PathBuf,
    },
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        path: String,
    },
    /// `SCHEME://ADDRESS[/PATH]`, reached by the transport [`URL_TRANSPORTS`]
    /// registers for SCHEME.
    Url {
        scheme: String,
        address: String,
        /// Empty, or from the `/` after the address on.
        path: String,
    },
}

/// Makes the [`Connector`] for a source of one transport.
pub type MakeConnector = fn(&Source, &ConnectOptions) -> Arc<dyn Connector>;

/// The transports reached as `SCHEME://ADDRESS[/PATH]`, one line each, e.g.
/// `("docker", docker::connector)`: where a new transport registers.
pub const URL_TRANSPORTS: &[(&str, MakeConnector)] = &[];

/// Schemes of the container transports (`container.rs`): parsed as
/// `SCHEME://ADDRESS[/PATH]` sources like those of [`URL_TRANSPORTS`], but
/// chosen above this module, in `transport.rs`, since they start the agent
/// with this module's machinery (no import cycles).
pub const CONTAINER_SCHEMES: &[&str] = &["docker", "podman"];

/// The scheme of a standalone agent listener (`tcp://HOST:PORT[/PATH]`,
/// `yonder agent --listen`): parsed here, its connector chosen in
/// `transport.rs` with the other direct connections'.
pub const LISTENER_SCHEME: &str = "tcp";

/// How a link reaches `source` through an agent: as a child process
/// (local, or through ssh), or the transport registered for its scheme.
/// ([`crate::connector_for`] also knows the SFTP transport, which uses this
/// module's ssh command line and so is chosen above it.)
pub fn connector_for(source: &Source, options: &ConnectOptions) -> Result<Arc<dyn Connector>> {
    connector_among(source, options, URL_TRANSPORTS)
}

fn connector_among(
    source: &Source,
    options: &ConnectOptions,
    transports: &[(&str, MakeConnector)],
) -> Result<Arc<dyn Connector>> {
    match source {
        Source::Local { .. } | Source::Ssh { .. } => Ok(Arc::new(SourceConnector {
            source: source.clone(),
            options: options.clone(),
        })),
        Source::Url { scheme, .. } => match transports.iter().find(|(name, _)| name == scheme) {
            Some((_, make)) => Ok(make(source, options)),
            None => Err(RemoteError::Connect {
                source_desc: source.describe(),
                reason: format!("no transport for {scheme}://"),
            }),
        },
    }
}

/// Runs the agent as a child process and speaks to it over its stdio:
/// the local agent, or one started through ssh (with the user's
/// configuration, re-read on every attempt).
pub struct SourceConnector {
    pub source: Source,
    pub options: ConnectOptions,
}

#[async_trait]
impl Connector for SourceConnector {
    async fn connect(&self) -> Result<Arc<dyn Session>> {
        let client = connect_agent(&self.source, &self.options).await?;
        Ok(Arc::new(client))
    }

    fn describe(&self) -> String {
        self.source.describe()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid source {source_text:?}: {reason}")]
pub struct SourceError {
    pub source_text: String,
    pub reason: String,
}

impl Source {
    pub fn parse(text: &str) -> std::result::Result<Source, SourceError> {
        Source::parse_among(text, URL_TRANSPORTS)
    }

    /// [`Source::parse`], with `transports` as the registered schemes.
    fn parse_among(
        text: &str,
        transports: &[(&str, MakeConnector)],
    ) -> std::result::Result<Source, SourceError> {
        let fail = |reason: &str| SourceError {
            source_text: text.to_string(),
            reason: reason.to_string(),
        };
        if text.is_empty() {
            return Err(fail("empty source"));
        }
        if let Some((scheme, rest)) = text.split_once("://") {
            if transports.iter().any(|(name, _)| *name == scheme)
                || CONTAINER_SCHEMES.contains(&scheme)
                || scheme == LISTENER_SCHEME
            {
                let (address, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                if address.is_empty() {
                    return Err(fail("missing address"));
                }
                // It goes on a command line (`docker exec -i ADDRESS`).
                if address.starts_with('-') {
                    return Err(fail("address may not begin with '-'"));
                }
                if path.contains('\0') || path.contains('\n') {
                    return Err(fail("path contains a NUL or newline"));
                }
                return Ok(Source::Url {
                    scheme: scheme.to_string(),
                    address: address.to_string(),
                    path: path.to_string(),
                });
            }
        }
        if let Some(path) = text.strip_prefix("local:") {
            if path.is_empty() {
                return Err(fail("empty local path"));
            }
            return Ok(Source::Local {
                root: PathBuf::from(path),
            });
        }
        if let Some(rest) = text.strip_prefix("ssh://") {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], rest[i..].to_string()),
                None => (rest, String::new()),
            };
            let (user, hostport) = split_user(authority);
            let (host, port) = split_port(hostport).map_err(|r| fail(&r))?;
            return Source::ssh(user, host, port, path).map_err(|r| fail(&r));
        }
        // scp style: a colon before any slash. Anything else is a local path
        // (write `./a:b` or `local:a:b` for a local name containing a colon).
        if let Some(colon) = find_scp_colon(text) {
            let (authority, path) = (&text[..colon], &text[colon + 1..]);
            let (user, host) = split_user(authority);
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            return Source::ssh(user, host, None, path.to_string()).map_err(|r| fail(&r));
        }
        Ok(Source::Local {
            root: PathBuf::from(text),
        })
    }

    fn ssh(
        user: Option<&str>,
        host: &str,
        port: Option<u16>,
        path: String,
    ) -> std::result::Result<Source, String> {
        // A host or user that begins with '-' would be parsed by ssh as an
        // option (the sshfs CVE); refuse it outright, and pass it after `--`.
        if host.is_empty() {
            return Err("missing host name".into());
        }
        check_ssh_word("host", host)?;
        if let Some(user) = user {
            if user.is_empty() {
                return Err("empty user name".into());
            }
            check_ssh_word("user", user)?;
        }
        if path.contains('\0') || path.contains('\n') {
            return Err("path contains a NUL or newline".into());
        }
        Ok(Source::Ssh {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            path,
        })
    }

    /// For a local source, refuses a root that is not an existing
    /// directory, before anything starts: a colon-less `me@host` is a
    /// local path, and a word that could name a host gets the hint to
    /// write `host:`. Other sources pass.
    pub fn check_local_root(&self, text: &str) -> Result<()> {
        let Source::Local { root } = self else {
            return Ok(());
        };
        let fail = |reason: String| RemoteError::Connect {
            source_desc: self.describe(),
            reason,
        };
        match std::fs::metadata(root) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(fail("not a directory".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && looks_like_host(text) => Err(fail(
                format!("no such directory here; for the host, write {text}: (its home) or {text}:/PATH"),
            )),
            Err(e) => Err(fail(Errno::from_io(&e).description())),
        }
    }

    /// Short human description, used in errors.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

/// Whether `text` reads as `[user@]host`: a word ssh could take as a
/// destination (no slash, host name characters).
fn looks_like_host(text: &str) -> bool {
    let (user, host) = split_user(text);
    let word = |w: &str| {
        !w.is_empty()
            && !w.starts_with('-')
            && w.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    word(host) && user.is_none_or(word)
}

fn check_ssh_word(what: &str, word: &str) -> std::result::Result<(), String> {
    if word.starts_with('-') {
        return Err(format!("{what} name may not begin with '-'"));
    }
    if word
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\'' || c == '"')
    {
        return Err(format!(
            "{what} name contains whitespace, quotes or control characters"
        ));
    }
    Ok(())
}

fn split_user(authority: &str) -> (Option<&str>, &str) {
    match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    }
}

fn split_port(hostport: &str) -> std::result::Result<(&str, Option<u16>), String> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed '[' in host")?;
        let host = &rest[..end];
        return match rest[end + 1..].strip_prefix(':') {
            Some(port) => Ok((host, Some(parse_port(port)?))),
            None if rest[end + 1..].is_empty() => Ok((host, None)),
            None => Err("unexpected text after ']'".into()),
        };
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) => Ok((host, Some(parse_port(port)?))),
        None => Ok((hostport, None)),
    }
}

fn parse_port(port: &str) -> std::result::Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port {port:?}")),
    }
}

fn find_scp_colon(text: &str) -> Option<usize> {
    if text.starts_with('/') || text.starts_with('.') {
        return None;
    }
    // Windows's scp reads a drive (`C:\data`, `C:/data`) as a local path,
    // and a backslash as a separator: so does yonder there.
    if cfg!(windows) && names_a_drive(text) {
        return None;
    }
    let mut in_brackets = false;
    for (i, c) in text.char_indices() {
        match c {
            '[' => in_brackets = true,
            ']' => in_brackets = false,
            '/' if !in_brackets => return None,
            '\\' if cfg!(windows) && !in_brackets => return None,
            ':' if !in_brackets => return Some(i),
            _ => {}
        }
    }
    None
}

/// Whether `text` begins with a Windows drive: a letter, a colon, then
/// the end or a separator.
fn names_a_drive(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 2
        && bytes[0].is_ascii_alphabetic()
        && bytes[1] == b':'
        && matches!(bytes.get(2), None | Some(b'\\' | b'/'))
}

/// `ssh://[user@]host[:port]`, an IPv6 host in brackets: how a SOURCE and
/// a manager's destination name an ssh host.
pub fn write_ssh_authority(
    f: &mut fmt::Formatter<'_>,
    user: Option<&str>,
    host: &str,
    port: Option<u16>,
) -> fmt::Result {
    f.write_str("ssh://")?;
    if let Some(user) = user {
        write!(f, "{user}@")?;
    }
    if host.contains(':') {
        write!(f, "[{host}]")?;
    } else {
        f.write_str(host)?;
    }
    if let Some(port) = port {
        write!(f, ":{port}")?;
    }
    Ok(())
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Local { root } => write!(f, "{}", root.display()),
            Source::Ssh {
                user,
                host,
                port,
                path,
            } => {
                write_ssh_authority(f, user.as_deref(), host, *port)?;
                if !path.is_empty() && !path.starts_with('/') {
                    f.write_str("/~/")?;
                }
                f.write_str(path)
            }
            Source::Url {
                scheme,
                address,
                path,
            } => write!(f, "{scheme}://{address}{path}"),
        }
    }
}

/// How to reach the agent for a [`Source`].
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// Extra `-o KEY=VALUE` options for ssh; they take precedence over
    /// yonder's defaults.
    pub ssh_options: Vec<String>,
    /// Replaces the `ssh` program, split on whitespace (e.g. `"ssh -F cfg"`).
    pub ssh_command: Option<String>,
    /// The remote `yonder` binary; by default `yonder` on the remote PATH,
    /// else this build, deployed (see [`crate::deploy`]).
    pub agent_path: Option<String>,
    /// The local binary to run as agent for local sources; this executable
    /// by default.
    pub local_agent: Option<PathBuf>,
    /// Extra arguments for the agent (e.g. `--log-file`).
    pub agent_args: Vec<String>,
    /// Never send the agent to an ssh host without one (`--no-deploy`):
    /// `yonder` must be on its PATH (or at `agent_path`).
    pub no_deploy: bool,
    /// The container client for `docker://` and `podman://` sources, split
    /// on whitespace (e.g. `"podman --remote"`); by default the scheme's.
    pub docker_command: Option<String>,
    /// Reach an ssh source through its SFTP server (`ssh -s HOST sftp`)
    /// instead of an agent: for hosts where none can run. No agent is
    /// started, so none is deployed either.
    pub sftp: bool,
    /// The direct data path: whether to use it, and how to reach it.
    pub direct: crate::direct::DirectOptions,
}

/// The argv that starts the agent for `source`, with yonder's ssh
/// keepalive options (see [`agent_command_with`]).
pub fn agent_command(source: &Source, options: &ConnectOptions) -> Result<Vec<String>> {
    agent_command_with(source, options, true)
}

/// The program and arguments that ssh runs as, before any option of ours.
fn ssh_program(source: &Source, options: &ConnectOptions) -> Result<Vec<String>> {
    let argv: Vec<String> = match &options.ssh_command {
        Some(cmd) => cmd.split_whitespace().map(str::to_string).collect(),
        None => vec!["ssh".into()],
    };
    if argv.is_empty() {
        return Err(RemoteError::Connect {
            source_desc: source.describe(),
            reason: "empty --ssh-command".into(),
        });
    }
    Ok(argv)
}

/// ssh's keepalive, which yonder asks for unless the user's configuration
/// sets its own: a probe every 5 s through the encrypted channel, the
/// session ended after 3 unanswered (a dead link is noticed within about
/// 15 s instead of the kernel's TCP timeout of many minutes).
pub const SSH_KEEPALIVE: [&str; 2] = ["ServerAliveInterval=5", "ServerAliveCountMax=3"];

/// The argv that starts the agent for `source`; `keepalive` adds
/// [`SSH_KEEPALIVE`] to an ssh command line.
pub fn agent_command_with(source: &Source, options: &ConnectOptions, keepalive: bool) -> Result<Vec<String>> {
    match source {
        Source::Local { root } => {
            let program = match &options.local_agent {
                Some(p) => p.clone(),
                None => std::env::current_exe().map_err(|e| RemoteError::Connect {
                    source_desc: source.describe(),
                    reason: format!("cannot find the yonder executable: {e}"),
                })?,
            };
            let mut argv = vec![
                program.to_string_lossy().into_owned(),
                "agent".into(),
                "--stdio".into(),
            ];
            argv.extend(options.agent_args.iter().cloned());
            // `--root=` keeps a path that begins with '-' from reading as a flag.
            argv.push(format!("--root={}", root.to_string_lossy()));
            Ok(argv)
        }
        Source::Url { scheme, .. } => Err(RemoteError::Connect {
            source_desc: source.describe(),
            reason: format!("{scheme}:// starts no agent process of yonder's"),
        }),
        Source::Ssh { path, .. } => {
            let mut argv = ssh_destination(source, options)?;
            let host = argv.pop().expect("destination");
            let dashdash = argv.pop().expect("--");
            // ssh keeps the first value it sees for an option, so these
            // come after the user's `-o` (and `connect` leaves them out when
            // the user's ssh configuration sets a keepalive of its own:
            // command-line options would override it).
            if keepalive {
                for default in SSH_KEEPALIVE {
                    argv.push("-o".into());
                    argv.push(default.into());
                }
            }
            // No tty (the stream must be 8-bit clean), no X11 forwarding.
            argv.extend(["-T".into(), "-x".into()]);
            argv.push(dashdash);
            argv.push(host);
            let agent = options.agent_path.as_deref().unwrap_or("yonder");
            argv.push(format!(
                "exec {} {}",
                shell_quote(agent),
                agent_words(path, options)
            ));
            Ok(argv)
        }
    }
}

/// `agent --stdio [ARG]... --root=ROOT`, quoted for the remote shell: the
/// agent's arguments for the tree `path` names on an ssh host.
pub(crate) fn agent_words(path: &str, options: &ConnectOptions) -> String {
    let root = match path {
        "" | "~" => ".",
        p => p.strip_prefix("~/").unwrap_or(p),
    };
    let mut words = String::from("agent --stdio");
    for arg in &options.agent_args {
        words.push(' ');
        words.push_str(&shell_quote(arg));
    }
    words.push(' ');
    words.push_str(&shell_quote(&format!("--root={root}")));
    words
}

/// Whether connecting to `source` deploys the agent when the remote lacks
/// it (over ssh, unless `--agent-path` names one or `--no-deploy`): then
/// the remote path of the tree it serves.
fn deployed_path<'a>(source: &'a Source, options: &ConnectOptions) -> Option<&'a str> {
    match source {
        Source::Ssh { path, .. } if options.agent_path.is_none() && !options.no_deploy => Some(path),
        _ => None,
    }
}

/// How the agent of a connection that does not deploy got there.
fn origin_without_deploy(source: &Source, options: &ConnectOptions) -> AgentOrigin {
    match source {
        Source::Local { .. } => AgentOrigin::Local,
        _ if options.agent_path.is_some() => AgentOrigin::AgentPath,
        _ => AgentOrigin::OnPath,
    }
}

/// `ssh [-o OPTION]... [-p PORT] [-l USER] -- HOST`: the ssh command line
/// up to the destination, for the agent and for `ssh -G`.
pub(crate) fn ssh_destination(source: &Source, options: &ConnectOptions) -> Result<Vec<String>> {
    let Source::Ssh { user, host, port, .. } = source else {
        return Err(RemoteError::Connect {
            source_desc: source.describe(),
            reason: "not an ssh source".into(),
        });
    };
    let mut argv = ssh_program(source, options)?;
    for option in &options.ssh_options {
        argv.push("-o".into());
        argv.push(option.clone());
    }
    if let Some(port) = port {
        argv.extend(["-p".into(), port.to_string()]);
    }
    if let Some(user) = user {
        argv.extend(["-l".into(), user.clone()]);
    }
    argv.push("--".into());
    argv.push(host.clone());
    Ok(argv)
}

/// Whether yonder should add its keepalive ([`SSH_KEEPALIVE`]) for
/// `source`: asks `ssh -G` (the configuration ssh would use, the user's
/// files and `-o` options included) and adds it only where
/// `serveraliveinterval` is 0, ssh's default. A configured keepalive (or
/// one the user turned off on purpose with a `-o`) is left alone; if ssh
/// cannot say (a `--ssh-command` without `-G`), yonder's is added. (ssh
/// reports 300 s for a `BatchMode` session without a keepalive of its own,
/// and that is kept; the link's heartbeat notices a dead link either way.)
pub async fn ssh_needs_keepalive(source: &Source, options: &ConnectOptions) -> bool {
    let Ok(mut argv) = ssh_destination(source, options) else {
        return false;
    };
    let host = argv.pop().expect("destination");
    let dashdash = argv.pop().expect("--");
    argv.extend(["-G".to_string(), dashdash, host]);
    let output = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(std::time::Duration::from_secs(10), output).await {
        Ok(Ok(out)) if out.status.success() => keepalive_unset(&String::from_utf8_lossy(&out.stdout)),
        _ => true,
    }
}

/// From `ssh -G` output: whether no keepalive interval is configured.
fn keepalive_unset(config: &str) -> bool {
    config
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            key.eq_ignore_ascii_case("serveraliveinterval")
                .then(|| value.trim() == "0")
        })
        .unwrap_or(true)
}

/// [`crate::connect`], returning the client itself, which owns the agent process:
/// what a supervisor (see [`crate::Link`]) needs to watch the connection
/// and end it.
pub async fn connect_agent(source: &Source, options: &ConnectOptions) -> Result<AgentClient> {
    let Spawned {
        client,
        child,
        origin,
    } = spawn(source, options).await?;
    client.attach_child(child);
    client.set_origin(origin);
    Ok(client)
}

/// An agent started by [`spawn`]: the client, and the process it talks to
/// (the local agent, or `ssh`), which the caller owns: waits for (a daemon
/// learns at once that it ended, and reaps it) and kills.
pub struct Spawned {
    pub client: AgentClient,
    /// Killed when dropped.
    pub child: Child,
    /// How the agent got there.
    pub origin: AgentOrigin,
}

/// [`crate::connect`], leaving the agent process to the caller.
pub async fn spawn(source: &Source, options: &ConnectOptions) -> Result<Spawned> {
    let describe = source.describe();
    let connect_err = |reason: String| RemoteError::Connect {
        source_desc: describe.clone(),
        reason,
    };
    if let Source::Local { root } = source {
        match std::fs::metadata(root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(connect_err("not a directory".into())),
            Err(e) => return Err(connect_err(Errno::from_io(&e).description())),
        }
    }
    let keepalive = match source {
        Source::Ssh { .. } => ssh_needs_keepalive(source, options).await,
        Source::Local { .. } | Source::Url { .. } => false,
    };
    let deploying = match deployed_path(source, options) {
        Some(path) => current_build(&describe).await.map(|build| (path, build)),
        None => None,
    };
    let Some((path, build)) = deploying else {
        let argv = agent_command_with(source, options, keepalive)?;
        let origin = origin_without_deploy(source, options);
        return start_agent(&argv, &describe, None)
            .await
            .map(|(client, child)| Spawned {
                client,
                child,
                origin,
            });
    };
    let ssh = agent_command_with(source, options, keepalive)?;
    let run = |command: String| {
        let mut argv = ssh.clone();
        argv.pop();
        argv.push(command);
        argv
    };
    spawn_deploying(&describe, &agent_words(path, options), &build, run, None).await
}

/// The running build, to deploy: `None` (and a warning) if it cannot be
/// read, and the agent is then started without deployment.
pub(crate) async fn current_build(describe: &str) -> Option<Arc<Build>> {
    let hashed = tokio::task::spawn_blocking(Build::current).await;
    match hashed
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        Ok(build) => Some(build),
        Err(err) => {
            tracing::warn!("{describe}: cannot deploy the agent: {err}");
            None
        }
    }
}

/// Starts the agent (`words`: its arguments, quoted for sh) with
/// [`deploy::remote_command`], which `run` turns into the argv that has
/// the remote run it in a shell (ssh's, `docker exec`'s), deploying
/// `build` where the remote lacks yonder: sent on the script's stdin, or
/// by `copier`. A `yonder` on the PATH of another protocol version is
/// passed over for the deployed one.
pub(crate) async fn spawn_deploying(
    describe: &str,
    words: &str,
    build: &Arc<Build>,
    run: impl Fn(String) -> Vec<String>,
    copier: Option<&dyn CopyIn>,
) -> Result<Spawned> {
    let mut try_path = true;
    loop {
        let argv = run(deploy::remote_command(words, build, try_path));
        let mut origin = AgentOrigin::OnPath;
        match start_agent(&argv, describe, Some((build, &mut origin, copier))).await {
            Ok((client, child)) => {
                return Ok(Spawned {
                    client,
                    child,
                    origin,
                })
            }
            Err(err) if try_path && origin == AgentOrigin::OnPath && is_version_mismatch(&err) => {
                tracing::info!("{describe}: the yonder on the remote PATH speaks another protocol ({err}); deploying this one");
                try_path = false;
            }
            Err(err) => return Err(err),
        }
    }
}

fn is_version_mismatch(err: &RemoteError) -> bool {
    matches!(err, RemoteError::Connect { reason, .. } if reason.starts_with(crate::client::VERSION_MISMATCH))
}

/// Runs `argv`, whose output is the agent's stream, and completes the
/// handshake. With `deploy`, the command is [`deploy::remote_command`]'s:
/// its report is read first (and the binary sent if asked for, by the
/// copier if there is one), and the origin it names written to the second
/// part of `deploy`.
pub(crate) async fn start_agent(
    argv: &[String],
    describe: &str,
    deploy: Option<(&Arc<Build>, &mut AgentOrigin, Option<&dyn CopyIn>)>,
) -> Result<(AgentClient, Child)> {
    let connect_err = |reason: String| RemoteError::Connect {
        source_desc: describe.to_string(),
        reason,
    };
    tracing::debug!(?argv, "starting agent");
    let (mut child, mut stdin, mut stdout) = StdioChild::spawn(argv, describe)?;
    if let Some((build, origin, copier)) = deploy {
        match deploy::negotiate(&mut stdout, &mut stdin, build, copier).await {
            Ok(found) => *origin = found,
            // ssh failed before the remote shell ran: its stderr says why.
            Err(DeployError::Ended) => {
                let err = connect_err("the connection closed before the agent started".into());
                return Err(explain_failure(err, &mut child, describe).await);
            }
            // The agentless (SFTP) transport takes over from here, above
            // this module (`fallback.rs`).
            Err(DeployError::Impossible { reason }) => {
                return Err(RemoteError::Undeployable {
                    source_desc: describe.to_string(),
                    reason,
                })
            }
            Err(err) => return Err(connect_err(err.to_string())),
        }
    }
    match AgentClient::handshake(stdout, stdin, describe).await {
        Ok(client) => Ok((client, child.into_child())),
        Err(err) => Err(explain_failure(err, &mut child, describe).await),
    }
}

/// Replaces a bare "connection closed" with what the agent or ssh said on
/// stderr before it died: that is the message the user needs.
async fn explain_failure(err: RemoteError, child: &mut StdioChild, describe: &str) -> RemoteError {
    let (said, status) = child.last_words().await;
    let not_found = status.is_some_and(|status| status.code() == Some(127));
    match (said, status) {
        // The remote shell's "command not found".
        (Some(line), _) if not_found => RemoteError::Connect {
            source_desc: describe.to_string(),
            reason: format!(
                "{line}: the yonder agent is not installed there (or not on the PATH of a non-interactive shell); \
                 install yonder on the remote or pass --agent-path"
            ),
        },
        (Some(line), _) => {
            // The remote agent's own errors start with "yonder: " already.
            let reason = line.strip_prefix("yonder: ").unwrap_or(&line).to_string();
            RemoteError::Connect {
                source_desc: describe.to_string(),
                reason,
            }
        }
        (None, Some(status)) if !status.success() => RemoteError::Connect {
            source_desc: describe.to_string(),
            reason: format!("agent exited with {status} during the handshake"),
        },
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drive_is_told_from_a_one_letter_host() {
        assert!(names_a_drive(r"C:\data"));
        assert!(names_a_drive("c:/data"));
        assert!(names_a_drive("D:"));
        assert!(
            !names_a_drive("C:data"),
            "host C, its home's data, as scp reads it"
        );
        assert!(!names_a_drive("host:/srv"));
        assert!(!names_a_drive("1:/x"));
    }

    /// A transport registered for the tests: it only names itself.
    struct Named(String);

    #[async_trait]
    impl Connector for Named {
        async fn connect(&self) -> Result<Arc<dyn Session>> {
            Err(RemoteError::Connect {
                source_desc: self.0.clone(),
                reason: "a test transport connects nowhere".into(),
            })
        }

        fn describe(&self) -> String {
            self.0.clone()
        }
    }

    fn named(source: &Source, _: &ConnectOptions) -> Arc<dyn Connector> {
        Arc::new(Named(format!("named {source}")))
    }

    const TEST_TRANSPORTS: &[(&str, MakeConnector)] = &[("box", named)];

    #[test]
    fn a_registered_scheme_selects_its_transport() {
        let source = Source::parse_among("box://shelf-3/srv/data", TEST_TRANSPORTS).unwrap();
        assert_eq!(
            source,
            Source::Url {
                scheme: "box".into(),
                address: "shelf-3".into(),
                path: "/srv/data".into(),
            }
        );
        assert_eq!(source.to_string(), "box://shelf-3/srv/data");
        let connector = connector_among(&source, &ConnectOptions::default(), TEST_TRANSPORTS).unwrap();
        assert_eq!(connector.describe(), "named box://shelf-3/srv/data");
        let bare = Source::parse_among("box://shelf-3", TEST_TRANSPORTS).unwrap();
        assert_eq!(bare.to_string(), "box://shelf-3");
        assert!(Source::parse_among("box:///srv", TEST_TRANSPORTS).is_err());

        // Unregistered, the same text reads as it always did (scp style),
        // and a Url source of no known transport cannot connect.
        assert_eq!(
            Source::parse_among("box://shelf-3/srv", &[]).unwrap(),
            ssh(None, "box", None, "//shelf-3/srv")
        );
        let err = connector_among(&source, &ConnectOptions::default(), &[])
            .err()
            .unwrap();
        assert!(err.to_string().contains("no transport for box://"), "{err}");
        // The agent's own transports need no registration.
        let local = Source::parse_among("/srv", &[]).unwrap();
        let connector = connector_among(&local, &ConnectOptions::default(), &[]).unwrap();
        assert_eq!(connector.describe(), "/srv");
    }

    #[test]
    fn container_sources_parse_as_urls_and_refuse_option_like_names() {
        assert_eq!(
            Source::parse("docker://web-1/srv/app").unwrap(),
            Source::Url {
                scheme: "docker".into(),
                address: "web-1".into(),
                path: "/srv/app".into(),
            }
        );
        assert_eq!(Source::parse("podman://db").unwrap().to_string(), "podman://db");
        let err = Source::parse("docker://-v/x").unwrap_err();
        assert!(err.reason.contains("may not begin with '-'"), "{err}");
        assert!(Source::parse("podman:///x").is_err());
        let connector = crate::connector_for(
            &Source::parse("podman://db/x").unwrap(),
            &ConnectOptions::default(),
        )
        .unwrap();
        assert_eq!(connector.describe(), "podman://db/x");
    }

    fn ssh(user: Option<&str>, host: &str, port: Option<u16>, path: &str) -> Source {
        Source::Ssh {
            user: user.map(str::to_string),
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    #[test]
    fn parses_every_source_form() {
        assert_eq!(
            Source::parse("/srv/data").unwrap(),
            Source::Local {
                root: "/srv/data".into()
            }
        );
        assert_eq!(
            Source::parse("data").unwrap(),
            Source::Local { root: "data".into() }
        );
        assert_eq!(
            Source::parse("./a:b").unwrap(),
            Source::Local { root: "./a:b".into() }
        );
        assert_eq!(
            Source::parse("local:a:b").unwrap(),
            Source::Local { root: "a:b".into() }
        );
        assert_eq!(Source::parse("host:").unwrap(), ssh(None, "host", None, ""));
        assert_eq!(
            Source::parse("me@host:/srv").unwrap(),
            ssh(Some("me"), "host", None, "/srv")
        );
        assert_eq!(
            Source::parse("host:rel/dir").unwrap(),
            ssh(None, "host", None, "rel/dir")
        );
        assert_eq!(Source::parse("[::1]:/x").unwrap(), ssh(None, "::1", None, "/x"));
        assert_eq!(Source::parse("ssh://host").unwrap(), ssh(None, "host", None, ""));
        assert_eq!(
            Source::parse("ssh://me@host:2222/srv/d").unwrap(),
            ssh(Some("me"), "host", Some(2222), "/srv/d")
        );
        assert_eq!(
            Source::parse("ssh://[::1]:22/").unwrap(),
            ssh(None, "::1", Some(22), "/")
        );
    }

    #[test]
    fn a_missing_local_root_is_refused_with_a_hint_for_hosts() {
        let check = |text: &str| Source::parse(text).unwrap().check_local_root(text);
        for host in ["me@host", "nonexistent-host-xyz", "build.example.org"] {
            let err = check(host).unwrap_err().to_string();
            assert!(err.contains(&format!("write {host}: (its home)")), "{err}");
        }
        let err = check("/no/such/dir").unwrap_err().to_string();
        assert_eq!(err, "connect /no/such/dir: No such file or directory");
        assert!(check("/").is_ok());
        assert!(check("host:").is_ok(), "not local");
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        let err = check(path).unwrap_err().to_string();
        assert!(err.ends_with(": not a directory"), "{err}");
    }

    #[test]
    fn refuses_hosts_and_users_that_look_like_options() {
        for bad in [
            "-oProxyCommand=true:/x",
            "ssh://-oProxyCommand=x/",
            "-l:x",
            "me@-host:/",
            "-u@host:/",
        ] {
            let err = Source::parse(bad).unwrap_err();
            assert!(err.reason.contains("may not begin with '-'"), "{bad}: {err}");
        }
        assert!(Source::parse("ssh://host:0/").is_err());
        assert!(Source::parse("ssh://host:http/").is_err());
        assert!(Source::parse("ssh:///x").is_err());
        assert!(Source::parse("").is_err());
    }

    #[test]
    fn ssh_argv_puts_host_after_double_dash_and_quotes_the_remote_command() {
        let source = ssh(Some("me"), "host", Some(2222), "/srv/my data");
        let options = ConnectOptions {
            ssh_options: vec!["StrictHostKeyChecking=no".into()],
            agent_path: Some("/opt/yonder".into()),
            ..Default::default()
        };
        let argv = agent_command(&source, &options).unwrap();
        assert_eq!(
            argv,
            [
                "ssh",
                "-o",
                "StrictHostKeyChecking=no",
                "-p",
                "2222",
                "-l",
                "me",
                "-o",
                "ServerAliveInterval=5",
                "-o",
                "ServerAliveCountMax=3",
                "-T",
                "-x",
                "--",
                "host",
                "exec /opt/yonder agent --stdio '--root=/srv/my data'"
            ]
        );
    }

    #[test]
    fn keepalive_is_added_only_where_ssh_has_none() {
        let source = ssh(None, "host", None, "");
        let argv = agent_command_with(&source, &ConnectOptions::default(), false).unwrap();
        assert!(!argv.iter().any(|a| a.starts_with("ServerAlive")), "{argv:?}");
        assert!(keepalive_unset(
            "user me\nserveraliveinterval 0\nserveralivecountmax 3\n"
        ));
        assert!(!keepalive_unset(
            "serveraliveinterval 30\nserveralivecountmax 3\n"
        ));
        assert!(keepalive_unset("user me\n"), "not said: ssh's default");
    }

    #[tokio::test]
    async fn ssh_dash_g_tells_whether_a_keepalive_is_configured() {
        if std::process::Command::new("ssh").arg("-V").output().is_err() {
            return;
        }
        let source = ssh(None, "example.invalid", Some(2222), "");
        // (Not BatchMode: ssh then reports an interval of 300 s itself.)
        let mut options = ConnectOptions {
            // `-F /dev/null`: no user or system configuration.
            ssh_command: Some("ssh -F /dev/null".into()),
            ..Default::default()
        };
        assert!(ssh_needs_keepalive(&source, &options).await);
        options.ssh_options.push("ServerAliveInterval=7".into());
        assert!(!ssh_needs_keepalive(&source, &options).await, "set with -o");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "Host example.invalid\n  ServerAliveInterval 11\n").unwrap();
        options.ssh_options.pop();
        options.ssh_command = Some(format!("ssh -F {}", config.display()));
        assert!(
            !ssh_needs_keepalive(&source, &options).await,
            "set in the config file"
        );
    }

    #[test]
    fn remote_paths_relative_to_home() {
        let argv = agent_command(&ssh(None, "h", None, "~/x"), &ConnectOptions::default()).unwrap();
        assert!(argv.last().unwrap().ends_with("--root=x"), "{argv:?}");
        let argv = agent_command(&ssh(None, "h", None, ""), &ConnectOptions::default()).unwrap();
        assert!(argv.last().unwrap().ends_with("--root=."), "{argv:?}");
    }

    #[test]
    fn shell_quote_handles_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("~/bin/yonder"), "~/bin/yonder");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
