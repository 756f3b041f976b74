//! One connection: an agent serving `/` on a destination, which every
//! mount of that destination shares through a [`Scoped`] view of its tree.
//!
//! [`Connection`] is the only place that knows how the link is carried:
//! it owns the agent's process (the local agent, or `ssh`), learns at once
//! when it ends (and reaps it), kills it on [`close`](Connection::close),
//! and answers health pings. Reconnection plugs in here: a reconnecting
//! link would report `reconnecting`/`connected` through the same callback
//! that reports the end of the process today, and hand its new remote to
//! [`Connection::replace_link`]; the manager then re-scopes every mount's
//! VFS onto it (`Vfs::replace_remote`).

use crate::protocol::ConnectSpec;
use crate::ManagerError;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use yonder_remote::{ConnectOptions, Remote, Source};

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
    },
}

impl Destination {
    /// The destination of `spec`, and the tree it names there: an absolute
    /// path, or for ssh a path relative to the remote home.
    pub fn parse(spec: &ConnectSpec) -> Result<(Destination, Vec<u8>), ManagerError> {
        let source = Source::parse(&spec.source).map_err(|e| ManagerError::Failed(e.to_string()))?;
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
                ..
            } => ConnectOptions {
                ssh_options: ssh_options.clone(),
                ssh_command: ssh_command.clone(),
                agent_path: agent_path.clone(),
                ..Default::default()
            },
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Local => f.write_str("local"),
            Destination::Ssh { user, host, port, .. } => {
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
        }
    }
}

/// A live connection. Its state lives in the manager's registry, which
/// alone changes it (see `daemon`); this type reports what happens to the
/// link.
pub struct Connection {
    pub id: String,
    pub destination: Destination,
    link: RwLock<Arc<dyn Remote>>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    /// Turns true once the agent's process has ended and been reaped.
    ended: watch::Receiver<bool>,
}

impl Connection {
    /// Starts an agent serving `/` on `destination` and completes the
    /// handshake. `on_end` is called once, with a reason, when the agent's
    /// process ends by itself (not after [`close`](Connection::close)).
    pub async fn open(
        id: String,
        destination: Destination,
        local_agent: Option<PathBuf>,
        on_end: impl FnOnce(String) + Send + 'static,
    ) -> Result<Arc<Connection>, ManagerError> {
        let source = destination.source();
        let options = destination.options(local_agent);
        let spawned = yonder_remote::spawn(&source, &options)
            .await
            .map_err(|e| ManagerError::Failed(e.to_string()))?;
        let mut child = spawned.child;
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let (ended_tx, ended) = watch::channel(false);
        let describe = destination.to_string();
        tokio::spawn(async move {
            let ended_by_itself = tokio::select! {
                status = child.wait() => Some(match status {
                    Ok(status) => format!("the agent's process ({describe}) exited: {status}"),
                    Err(e) => format!("waiting for the agent's process ({describe}): {e}"),
                }),
                _ = kill_rx => {
                    if let Err(e) = child.start_kill() {
                        tracing::debug!("kill agent of {describe}: {e}");
                    }
                    if let Err(e) = child.wait().await {
                        tracing::warn!("wait for agent of {describe}: {e}");
                    }
                    None
                }
            };
            ended_tx.send_replace(true);
            if let Some(reason) = ended_by_itself {
                on_end(reason);
            }
        });
        Ok(Arc::new(Connection {
            id,
            destination,
            link: RwLock::new(Arc::new(spawned.client)),
            kill: Mutex::new(Some(kill_tx)),
            ended,
        }))
    }

    /// The remote, serving `/`.
    pub fn remote(&self) -> Arc<dyn Remote> {
        self.link.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts a new link (serving `/` on the same destination) in place of
    /// the current one; the caller moves the mounts onto it.
    pub fn replace_link(&self, remote: Arc<dyn Remote>) {
        *self.link.write().unwrap_or_else(|e| e.into_inner()) = remote;
    }

    /// Kills the agent's process (ssh, or the local agent): every call in
    /// flight and every later one fails as disconnected.
    pub fn close(&self) {
        if let Some(kill) = self.kill.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = kill.send(());
        }
    }

    /// Resolves once the agent's process has ended and been reaped.
    pub async fn ended(&self) {
        let mut ended = self.ended.clone();
        let _ = ended.wait_for(|ended| *ended).await;
    }

    /// One ping, which must be answered within `deadline`.
    pub async fn ping(&self, deadline: Duration) -> Result<(), String> {
        let remote = self.remote();
        match tokio::time::timeout(deadline, remote.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("ping failed: {e}")),
            Err(_) => Err(format!("no answer to a ping within {deadline:?}")),
        }
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
}
