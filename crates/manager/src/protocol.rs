//! The control protocol between the CLI and the manager: JSON, one object
//! per line, over the manager's Unix socket. docs/manager.md describes it
//! for people; this module is its definition.
//!
//! Each side's first line is a [`Hello`]. The manager sends its own at
//! once and drops a client whose `protocol` differs from its own; a client
//! that finds another `protocol` in the manager's hello says so and stops,
//! so two versions never misread each other. After the hellos the client
//! sends one [`Request`] per line and reads one [`Response`] per line,
//! except after [`Request::Events`], which turns the connection into a
//! stream of [`Event`] lines.

use crate::ManagerError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The control protocol spoken by this build. Bumped on any change that an
/// older peer would misread.
pub const PROTOCOL: u32 = 2;

/// The first line each side sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// The sender's yonder version.
    pub version: String,
    /// The manager's process id (the manager's hello only): how `yonder
    /// manager stop` stops a manager of another protocol, with SIGTERM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl Hello {
    pub fn this(protocol: u32, pid: Option<u32>) -> Hello {
        Hello {
            protocol,
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid,
        }
    }
}

/// How to reach an agent, as given on the command line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectSpec {
    /// A SOURCE (`host:path`, `ssh://...`, a local path made absolute).
    pub source: String,
    #[serde(default)]
    pub ssh_options: Vec<String>,
    #[serde(default)]
    pub ssh_command: Option<String>,
    #[serde(default)]
    pub agent_path: Option<String>,
    /// The container client for `docker://` and `podman://` sources
    /// (`--docker-command`).
    #[serde(default)]
    pub docker_command: Option<String>,
    /// Served by the host's SFTP server instead of an agent (`--sftp`).
    #[serde(default)]
    pub sftp: bool,
    /// Never send the agent to a host without one (`--no-deploy`).
    #[serde(default)]
    pub no_deploy: bool,
    /// What carries the agent's requests (`--transport`): `ssh`, `direct`
    /// or `auto` (the default).
    #[serde(default)]
    pub transport: Option<String>,
    /// Where the agent listens for the direct connection (`--direct-bind`).
    #[serde(default)]
    pub direct_bind: Option<String>,
    /// Where to connect the direct connection instead (`--direct-connect`).
    #[serde(default)]
    pub direct_connect: Option<String>,
    /// The key file of a `tcp://` source (`--key`).
    #[serde(default)]
    pub key_file: Option<std::path::PathBuf>,
    /// How many direct connections (`--direct-streams`; 0: the default).
    #[serde(default)]
    pub direct_streams: u32,
    /// How the connection rides out network failures (for a new
    /// connection; one that exists keeps its own).
    #[serde(default)]
    pub link: LinkSpec,
}

impl ConnectSpec {
    /// The request for `source` reached with `options`.
    pub fn new(source: String, options: &yonder_remote::ConnectOptions, link: LinkSpec) -> ConnectSpec {
        ConnectSpec {
            source,
            ssh_options: options.ssh_options.clone(),
            ssh_command: options.ssh_command.clone(),
            agent_path: options.agent_path.clone(),
            docker_command: options.docker_command.clone(),
            sftp: options.sftp,
            no_deploy: options.no_deploy,
            transport: Some(options.direct.transport.to_string()),
            direct_bind: options.direct.bind.clone(),
            direct_connect: options.direct.connect.clone(),
            key_file: options.direct.key_file.clone(),
            direct_streams: options.direct.streams,
            link,
        }
    }

    /// The direct path's settings it asks for.
    pub fn direct_options(&self) -> Result<yonder_remote::DirectOptions, String> {
        Ok(yonder_remote::DirectOptions {
            transport: match &self.transport {
                Some(text) => text.parse()?,
                None => Default::default(),
            },
            bind: self.direct_bind.clone(),
            connect: self.direct_connect.clone(),
            key_file: self.key_file.clone(),
            streams: self.direct_streams,
        })
    }
}

/// Heartbeats and reconnection of a connection (`--heartbeat`,
/// `--heartbeat-misses`, `--reconnect-timeout`, `--no-reconnect`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkSpec {
    pub heartbeat_secs: f64,
    pub heartbeat_misses: u32,
    /// Give up reconnecting after this long; none: never.
    #[serde(default)]
    pub reconnect_timeout_secs: Option<f64>,
    #[serde(default)]
    pub no_reconnect: bool,
}

impl LinkSpec {
    /// How a link with these settings keeps its connection alive: what
    /// the manager gives a new connection, and `yonder mount --foreground`
    /// its own.
    pub fn options(&self) -> Result<yonder_remote::LinkOptions, ManagerError> {
        let heartbeat = seconds("heartbeat", self.heartbeat_secs)?;
        if heartbeat.is_zero() {
            return Err(ManagerError::Failed(
                "--heartbeat must be more than 0 seconds".into(),
            ));
        }
        if self.heartbeat_misses == 0 {
            return Err(ManagerError::Failed(
                "--heartbeat-misses must be at least 1".into(),
            ));
        }
        Ok(yonder_remote::LinkOptions {
            heartbeat,
            heartbeat_misses: self.heartbeat_misses,
            reconnect: !self.no_reconnect,
            reconnect_timeout: self
                .reconnect_timeout_secs
                .map(|t| seconds("reconnect-timeout", t))
                .transpose()?,
            ..yonder_remote::LinkOptions::default()
        })
    }
}

/// A number of seconds from a request.
pub(crate) fn seconds(name: &str, value: f64) -> Result<std::time::Duration, ManagerError> {
    if value.is_finite() && value >= 0.0 {
        Ok(std::time::Duration::from_secs_f64(value))
    } else {
        Err(ManagerError::Failed(format!(
            "--{name} must be a number of seconds >= 0, not {value}"
        )))
    }
}

impl Default for LinkSpec {
    fn default() -> Self {
        LinkSpec {
            heartbeat_secs: 5.0,
            heartbeat_misses: 3,
            reconnect_timeout_secs: None,
            no_reconnect: false,
        }
    }
}

fn default_op_timeout() -> f64 {
    20.0
}

fn default_write_back() -> bool {
    false
}

fn default_frontend() -> String {
    yonder_fuse::FRONTEND_NAME.into()
}

/// A mount as `yonder mount` asks for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MountSpec {
    pub connect: ConnectSpec,
    /// Absolute; prepared (created, checked empty) by the client.
    pub mountpoint: PathBuf,
    pub read_only: bool,
    pub attr_ttl_secs: f64,
    pub dir_ttl_secs: f64,
    pub allow_other: bool,
    pub default_permissions: bool,
    pub no_default_permissions: bool,
    pub allow_non_empty: bool,
    /// `-o` options for the mount (ssh's already split off into `connect`).
    pub fuse_options: Vec<String>,
    pub debug: bool,
    /// How long an operation waits for a lost connection (`--op-timeout`).
    #[serde(default = "default_op_timeout")]
    pub op_timeout_secs: f64,
    /// The frontend that serves the mount (`fuse`).
    #[serde(default = "default_frontend")]
    pub frontend: String,
    /// Metadata write-back (`--write-back`).
    #[serde(default = "default_write_back")]
    pub write_back: bool,
    /// Where the write-back journal lives (`--write-back-cache`); the
    /// user's cache directory when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back_cache: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topic {
    Connection,
    Mount,
    #[default]
    All,
}

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Connections and mounts.
    Status,
    /// A connection to the destination of `connect` (an existing one if
    /// there is one); kept until killed.
    Connect {
        connect: ConnectSpec,
    },
    Mount {
        mount: MountSpec,
    },
    /// By id (`m1`) or mount point; `all` for every mount. `force`
    /// detaches a busy mount lazily.
    Unmount {
        #[serde(default)]
        target: Option<String>,
        #[serde(default)]
        all: bool,
        #[serde(default)]
        force: bool,
    },
    /// Closes a connection (`c1`) and unmounts its mounts.
    Kill {
        id: String,
    },
    /// Reconnects a connection (`c1`, or a mount's: `m1`) now: a waiting
    /// reconnection tries at once, a disconnected connection tries again,
    /// a connected one is made anew.
    Reconnect {
        id: String,
    },
    /// Streams events from now on; with `after`, first those still kept
    /// whose `seq` is greater.
    Events {
        #[serde(default)]
        topic: Topic,
        #[serde(default)]
        after: Option<u64>,
    },
    /// Unmounts everything, closes every connection and exits.
    Stop,
}

/// What the manager answers (one per request, except `Events`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Status(Status),
    Connected {
        id: String,
        created: bool,
        /// For a connection made by this request that is served through
        /// SFTP because no agent can run there: the line saying so, for
        /// the user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notice: Option<String>,
    },
    Mounted {
        id: String,
        mountpoint: PathBuf,
        connection: String,
        /// As for `Connected`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notice: Option<String>,
        /// What mounting replayed from a journal a process that ended left
        /// (for the user's terminal).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replayed: Option<String>,
    },
    Unmounted {
        ids: Vec<String>,
    },
    Killed {
        id: String,
        unmounted: Vec<String>,
    },
    /// The connection's reconnection was started.
    Reconnecting {
        id: String,
    },
    /// `Events` accepted: event lines follow.
    Subscribed,
    Stopping,
    Error {
        message: String,
    },
}

/// `yonder status --format json`: stable, documented in docs/manager.md.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The manager's own version and process.
    pub manager: ManagerInfo,
    pub connections: Vec<ConnectionInfo>,
    pub mounts: Vec<MountInfo>,
    /// The `seq` of the last event published (0: none yet); `yonder events
    /// --after` it misses nothing that happens after this status.
    pub last_event: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerInfo {
    pub version: String,
    pub protocol: u32,
    pub pid: u32,
    pub socket: PathBuf,
    pub log: PathBuf,
}

fn agent_transport() -> String {
    "agent".into()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub id: String,
    /// `local`, or `ssh://[user@]host[:port]`.
    pub destination: String,
    /// `connected`, `reconnecting` or `disconnected`.
    pub state: String,
    /// Why the connection left `connected`, while it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How its agent got there: `local`, `on-path`, `agent-path`,
    /// `deployed-uploaded` or `deployed-cached` (the current connection's,
    /// or the last one's while reconnecting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// What carries it: `agent`, `direct` (the agent over a TLS connection
    /// of its own), or `sftp` (the host's SFTP server, asked for with
    /// `--sftp` or standing in for an agent that cannot run there).
    #[serde(default = "agent_transport")]
    pub transport: String,
    /// Why it is served through SFTP when an agent was wanted (the
    /// remote's cache is read-only or noexec, another platform, ...), or
    /// over ssh when a direct connection was (`--transport auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Made by `yonder connect`: kept when its last mount goes.
    pub pinned: bool,
    /// The ids of its mounts.
    pub mounts: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountInfo {
    pub id: String,
    /// Always `fuse` for now.
    pub backend: String,
    /// The SOURCE as given.
    pub source: String,
    /// The served tree: an absolute path on the remote.
    pub root: String,
    pub mountpoint: PathBuf,
    pub connection: String,
    /// `active`, `reconnecting`, `disconnected` or `failed`.
    pub state: String,
    /// Why a mount is `failed` (or not `active`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub read_only: bool,
    /// Metadata operations acknowledged ahead of the remote (write-back)
    /// that it refused since the mount began: each was also a
    /// `write_back_failed` event.
    #[serde(default)]
    pub write_back_failures: u64,
    /// Metadata operations acknowledged and not yet carried out.
    #[serde(default)]
    pub write_back_pending: u64,
}

/// One state change, as `yonder events --format json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// 1, 2, 3... in the order of the changes, per manager.
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    /// `connection`, `mount`, or `events` for a [`EventKind::Missed`] marker.
    pub topic: String,
    /// `c1`, `m1` (empty for a marker).
    pub id: String,
    pub event: EventKind,
    /// The state after the change; absent for `closed`, `unmounted` and
    /// `missed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Connections: their destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// `file_lost`: the path, in the mount, of the open file that could not
    /// be reopened; `write_back_failed`: the path the refused operation
    /// acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Mounts: their SOURCE, mount point and connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// `missed`: how many events this subscriber lost (it read too slowly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A connection was established.
    Connected,
    /// A connection was closed (killed, its last mount gone, shutdown).
    Closed,
    Mounted,
    Unmounted,
    /// A connection or mount changed state.
    State,
    /// Events were lost to this subscriber.
    Missed,
    /// A mount's open file could not be reopened after a reconnection (it
    /// was deleted or replaced meanwhile): its descriptors answer ESTALE.
    #[serde(rename = "file_lost")]
    FileLost,
    /// A metadata operation the mount acknowledged ahead of the remote
    /// (write-back) was refused by it: `path` names it, `reason` the
    /// operation and the error.
    #[serde(rename = "write_back_failed")]
    WriteBackFailed,
    /// A mount being unmounted (or the manager stopping) still has
    /// operations to deliver to the remote: `reason` says how many, again
    /// every few seconds while a large backlog drains, then that all were.
    Delivering,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Connected => "connected",
            EventKind::Closed => "closed",
            EventKind::Mounted => "mounted",
            EventKind::Unmounted => "unmounted",
            EventKind::State => "state",
            EventKind::Missed => "missed",
            EventKind::FileLost => "file_lost",
            EventKind::WriteBackFailed => "write_back_failed",
            EventKind::Delivering => "delivering",
        }
    }
}

impl Event {
    /// Whether a subscriber to `topic` gets this event (markers go to all).
    pub fn matches(&self, topic: Topic) -> bool {
        match topic {
            Topic::All => true,
            Topic::Connection => self.topic != "mount",
            Topic::Mount => self.topic != "connection",
        }
    }

    /// One line for people: time, topic, id, what happened.
    pub fn text(&self) -> String {
        let mut line = format!("{} {} {} {}", self.time, self.topic, self.id, self.event.name());
        if self.event == EventKind::Missed {
            return format!(
                "{} missed {} events (read too slowly)",
                self.time,
                self.missed.unwrap_or(0)
            );
        }
        if let Some(state) = &self.state {
            if self.event == EventKind::State {
                line = format!("{line} {state}");
            }
        }
        if let Some(path) = &self.path {
            line = format!("{line} {path}");
        }
        // A removal names what went first, then why.
        let why_gone = self.event == EventKind::Unmounted;
        if let Some(reason) = self.reason.as_ref().filter(|_| !why_gone) {
            line = format!("{line}: {reason}");
        }
        if let Some(d) = &self.destination {
            line = format!("{line} {d}");
        }
        if let (Some(source), Some(mp)) = (&self.source, &self.mountpoint) {
            line = format!("{line} {source} on {}", mp.display());
        }
        if let Some(c) = &self.connection {
            if self.event == EventKind::Mounted {
                line = format!("{line} ({c})");
            }
        }
        if let Some(reason) = self.reason.as_ref().filter(|_| why_gone) {
            line = format!("{line} ({reason})");
        }
        line
    }
}

/// Formats a time as RFC 3339 in UTC, with milliseconds.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    let since = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(rfc3339(t), "2099-12-31T23:59:59.000Z");
    }

    #[test]
    fn requests_and_responses_are_tagged_json() {
        let r = Request::Unmount {
            target: Some("m1".into()),
            all: false,
            force: true,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"request":"unmount","target":"m1","all":false,"force":true}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        let line = r#"{"request":"events"}"#;
        assert_eq!(
            serde_json::from_str::<Request>(line).unwrap(),
            Request::Events {
                topic: Topic::All,
                after: None
            }
        );
        let e = Response::Error {
            message: "no mount m9".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"response":"error","message":"no mount m9"}"#
        );
    }
}
