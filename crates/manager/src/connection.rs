//! One connection: an agent serving `/` on a destination, which every
//! mount of that destination shares through a [`Scoped`] view of its tree.
//!
//! [`Connection`] is the only place that knows how the link is carried: it
//! owns a [`Link`] (`yonder_remote::link`), which owns the agent's process
//! (the local agent, or `ssh`), learns at once when it ends, sends
//! heartbeats, reconnects with backoff and kills the process on
//! [`close`](Connection::close). Every state the link enters is reported
//! to the manager (`reconnecting`, `connected`, `disconnected`), which
//! moves the mounts along; each mount's VFS follows the link itself onto
//! every new connection, through a new scoped view of its tree.

use crate::protocol::ConnectSpec;
use crate::ManagerError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::broadcast;
use yonder_remote::{ConnectOptions, DirectOptions, Link, LinkOptions, LinkState, Remote, Source};

/// Where a connection goes: what tells two connections apart. A mount
/// reuses a connection to the same destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// An agent on this machine.
    Local,
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        ssh_options: Vec<String>,
        ssh_command: Option<String>,
        agent_path: Option<String>,
        /// Through the host's SFTP server, not an agent.
        sftp: bool,
        no_deploy: bool,
        direct: DirectOptions,
    },
    /// Through a transport of `yonder_remote::URL_TRANSPORTS`.
    Url {
        scheme: String,
        address: String,
        agent_path: Option<String>,
        docker_command: Option<String>,
        no_deploy: bool,
        direct: DirectOptions,
    },
}

impl Destination {
    /// The destination of `spec`, and the tree it names there: an absolute
    /// path, or for ssh a path relative to the remote home.
    pub fn parse(spec: &ConnectSpec) -> Result<(Destination, Vec<u8>), ManagerError> {
        let source = Source::parse(&spec.source).map_err(|e| ManagerError::Failed(e.to_string()))?;
        let direct = spec.direct_options().map_err(ManagerError::Failed)?;
        Ok(match source {
            Source::Local { root } => {
                if !root.is_absolute() {
                    return Err(ManagerError::Failed(format!(
                        "local source {} must be an absolute path",
                        root.display()
                    )));
                }
                (Destination::Local, root.into_os_string().into_encoded_bytes())
            }
            Source::Ssh {
                user,
                host,
                port,
                path,
            } => {
                let root = match path.as_str() {
                    "" | "~" => ".",
                    p => p.strip_prefix("~/").unwrap_or(p),
                };
                let destination = Destination::Ssh {
                    user,
                    host,
                    port,
                    ssh_options: spec.ssh_options.clone(),
                    ssh_command: spec.ssh_command.clone(),
                    agent_path: spec.agent_path.clone(),
                    sftp: spec.sftp,
                    no_deploy: spec.no_deploy,
                    direct,
                };
                (destination, root.as_bytes().to_vec())
            }
            Source::Url {
                scheme,
                address,
                path,
            } => {
                let root = if path.is_empty() { "." } else { path.as_str() };
                let destination = Destination::Url {
                    scheme,
                    address,
                    agent_path: spec.agent_path.clone(),
                    docker_command: spec.docker_command.clone(),
                    no_deploy: spec.no_deploy,
                    direct,
                };
                (destination, root.as_bytes().to_vec())
            }
        })
    }

    /// The SOURCE of an agent serving `/` there.
    fn source(&self) -> Source {
        match self {
            Destination::Local => Source::Local { root: "/".into() },
            Destination::Ssh { user, host, port, .. } => Source::Ssh {
                user: user.clone(),
                host: host.clone(),
                port: *port,
                path: "/".into(),
            },
            Destination::Url { scheme, address, .. } => Source::Url {
                scheme: scheme.clone(),
                address: address.clone(),
                path: "/".into(),
            },
        }
    }

    fn options(&self, local_agent: Option<PathBuf>) -> ConnectOptions {
        match self {
            Destination::Local => ConnectOptions {
                local_agent,
                ..Default::default()
            },
            Destination::Ssh {
                ssh_options,
                ssh_command,
                agent_path,
                sftp,
                no_deploy,
                direct,
                ..
            } => ConnectOptions {
                ssh_options: ssh_options.clone(),
                ssh_command: ssh_command.clone(),
                agent_path: agent_path.clone(),
                sftp: *sftp,
                no_deploy: *no_deploy,
                direct: direct.clone(),
                ..Default::default()
            },
            Destination::Url {
                agent_path,
                docker_command,
                no_deploy,
                direct,
                ..
            } => ConnectOptions {
                agent_path: agent_path.clone(),
                docker_command: docker_command.clone(),
                no_deploy: *no_deploy,
                direct: direct.clone(),
                ..Default::default()
            },
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Local => f.write_str("local"),
            Destination::Ssh {
                user,
                host,
                port,
                sftp,
                ..
            } => {
                yonder_remote::source::write_ssh_authority(f, user.as_deref(), host, *port)?;
                if *sftp {
                    f.write_str(" (sftp)")?;
                }
                Ok(())
            }
            Destination::Url { scheme, address, .. } => write!(f, "{scheme}://{address}"),
        }
    }
}

/// A live connection. Its state lives in the manager's registry, which
/// alone changes it (see `daemon`); this type reports what happens to the
/// link.
pub struct Connection {
    pub id: String,
    pub destination: Destination,
    link: Link,
    /// Forwards the link's transitions to the manager.
    watcher: tokio::task::JoinHandle<()>,
}

impl Connection {
    /// Starts an agent serving `/` on `destination` and completes the
    /// handshake, under a [`Link`] that keeps it alive (heartbeats,
    /// reconnection as `link` says). `on_state` is called with every state
    /// the link enters after that, in order: `reconnecting` when the agent
    /// is lost, `connected` once a new one is in place, `disconnected` when
    /// the link gives up or never reconnects (not after
    /// [`close`](Connection::close)).
    pub async fn open(
        id: String,
        destination: Destination,
        local_agent: Option<PathBuf>,
        link: LinkOptions,
        on_state: impl Fn(LinkState) + Send + Sync + 'static,
    ) -> Result<Arc<Connection>, ManagerError> {
        let source = destination.source();
        let options = destination.options(local_agent);
        let link = Link::connect(&source, &options, link)
            .await
            .map_err(|e| ManagerError::Failed(without_terminal(e.to_string())))?;
        let mut transitions = link.transitions();
        let current = link.clone();
        let watcher = tokio::spawn(async move {
            loop {
                match transitions.recv().await {
                    Ok(LinkState::Disconnected { reason }) if reason == "closed" => return,
                    Ok(state) => on_state(state),
                    // Too slow to see each one: the latest will do.
                    Err(broadcast::error::RecvError::Lagged(_)) => on_state(current.state()),
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Arc::new(Connection {
            id,
            destination,
            link,
            watcher,
        }))
    }

    /// The remote, serving `/` (the current connection's).
    pub fn remote(&self) -> Arc<dyn Remote> {
        self.link.current().1
    }

    /// The link, which mounts' VFSs follow onto each new connection.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// How the current (or last) agent got there.
    pub fn agent_origin(&self) -> Option<yonder_remote::AgentOrigin> {
        self.link.agent_origin()
    }

    /// What carries the current (or last) connection.
    pub fn transport(&self) -> yonder_remote::Transport {
        self.link.transport()
    }

    /// The line telling the user that this connection is served through
    /// SFTP because no agent can run there, if it is.
    pub fn fallback_notice(&self) -> Option<String> {
        yonder_remote::transport_notice(&self.transport(), &self.destination.source())
    }

    /// Reconnects now (`yonder reconnect`).
    pub fn reconnect(&self) {
        self.link.reconnect_now();
    }

    /// Ends the link for good, killing the agent's process (ssh, or the
    /// local agent): every call in flight and every later one fails as
    /// disconnected.
    pub fn close(&self) {
        self.link.close();
    }

    /// Resolves once the link is closed and the agent's process has ended
    /// and been reaped.
    pub async fn ended(&self) {
        let mut status = self.link.watch();
        let _ = status
            .wait_for(|s| matches!(&s.state, LinkState::Disconnected { reason } if reason == "closed"))
            .await;
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// `reason` for a connection that failed, with a hint when ssh was
/// refused: the manager runs ssh without a terminal (it is a daemon), so
/// ssh could not ask for a password or a passphrase, which a user who
/// just typed one for `ssh` does not expect.
fn without_terminal(reason: String) -> String {
    if reason.contains("Permission denied (") {
        format!(
            "{reason} (the manager runs ssh without a terminal, so ssh cannot ask for a password or \
             passphrase: add the key to your ssh agent with ssh-add, or mount with --foreground)"
        )
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(source: &str) -> ConnectSpec {
        ConnectSpec {
            source: source.into(),
            ..Default::default()
        }
    }

    #[test]
    fn destinations_and_trees() {
        let (d, root) = Destination::parse(&spec("me@host:dir/x")).unwrap();
        assert_eq!(d.to_string(), "ssh://me@host");
        assert_eq!(root, b"dir/x");
        let (d2, root) = Destination::parse(&spec("ssh://me@host/srv")).unwrap();
        assert_eq!(d, d2);
        assert_eq!(root, b"/srv");
        let (_, root) = Destination::parse(&spec("host:")).unwrap();
        assert_eq!(root, b".");
        let (_, root) = Destination::parse(&spec("host:~/a")).unwrap();
        assert_eq!(root, b"a");
        let (d3, _) = Destination::parse(&spec("ssh://me@host:2222/srv")).unwrap();
        assert_ne!(d, d3);
        assert_eq!(d3.to_string(), "ssh://me@host:2222");
        let (l, root) = Destination::parse(&spec("/srv/data")).unwrap();
        assert_eq!((l, root.as_slice()), (Destination::Local, &b"/srv/data"[..]));
        assert!(Destination::parse(&spec("relative")).is_err());
    }

    #[test]
    fn a_refused_ssh_gets_the_hint_that_the_manager_has_no_terminal() {
        let refused = without_terminal("connect ssh://h/: me@h: Permission denied (publickey).".into());
        assert!(refused.contains("add the key to your ssh agent"), "{refused}");
        assert!(!refused.contains('\n'));
        let other = "connect ssh://h/: Connection refused";
        assert_eq!(without_terminal(other.into()), other);
    }
}
