//! [`Session`]: what a [`crate::Link`] needs from one live connection,
//! whatever carries it, and [`Connector`]: how a link makes one.
//!
//! A session is the [`Remote`] it serves plus what supervision asks of a
//! transport: when it ended, when the far end was last heard from, how to
//! end it at once, and (where the transport can) how to fence off the
//! connection it replaces. [`crate::AgentClient`] is one, over ssh, a local
//! child process or any byte stream; a transport that speaks another
//! protocol (SFTP, say) implements this trait for its client and returns it
//! from its [`Connector`]. The heartbeat is [`Remote::ping`].

use crate::exchange::{call, unexpected};
use crate::{AgentClient, AgentOrigin, Remote, RemoteError, Result};
use async_trait::async_trait;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::broadcast;
use yonder_proto::{Notice, Request, Response};

/// A boxed future that borrows nothing from the session it came from.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One live connection, as a [`crate::Link`] supervises it.
#[async_trait]
pub trait Session: Remote {
    /// Resolves once the connection has ended (its stream closed, a write
    /// failed, its process exited, or [`Session::shutdown`] was called),
    /// with the reason.
    fn closed(&self) -> BoxFuture<String>;

    /// Resolves once the transport's process, if it started one, has
    /// exited and been reaped (at once if there is none).
    fn exited(&self) -> BoxFuture<()>;

    /// When the far end was last heard from: any answer counts, so a
    /// connection busy with a long transfer is not taken for a dead one.
    fn last_heard(&self) -> Instant;

    /// Ends the connection now: every call in flight and every later one
    /// fails with `reason`, and the transport (its process too) is killed.
    fn shutdown(&self, reason: &str);

    /// Requests sent and not answered yet.
    fn in_flight(&self) -> usize;

    /// How the agent at the far end got there (`yonder status`), where
    /// this transport started one.
    fn agent_origin(&self) -> Option<AgentOrigin> {
        None
    }

    /// Makes this connection the one serving link `session` at
    /// `generation`, so that an older connection of the same link refuses
    /// changes from then on. `Ok(false)`: this transport (or this peer)
    /// cannot fence, and serves anyway.
    async fn fence(&self, session: u64, generation: u64) -> Result<bool> {
        let _ = (session, generation);
        Ok(false)
    }

    /// What the far end pushes of changes to its files, for a transport
    /// (and peer) that pushes them: `None` otherwise, and the client then
    /// keeps short cache lifetimes.
    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        None
    }

    /// Whether the connection has ended already.
    fn is_closed(&self) -> bool {
        false
    }

    /// Asks the far end to listen for `connections` direct connections
    /// (`Request::DirectListen`) on `bind` (its default: where the ssh
    /// connection arrived). `Ok(None)`: this transport or peer has none.
    async fn direct_listen(&self, bind: Option<String>, connections: u32) -> Result<Option<DirectOffer>> {
        let _ = (bind, connections);
        Ok(None)
    }
}

/// An agent's answer to `DirectListen`: where to connect, the certificate
/// to expect there, and a secret per connection.
#[derive(Clone)]
pub struct DirectOffer {
    pub address: String,
    pub port: u16,
    pub fingerprint: [u8; 32],
    pub secrets: Vec<Vec<u8>>,
}

/// How a link makes a connection: the same way each time (a reconnection
/// runs the whole transport and handshake again).
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Starts the transport and completes the handshake.
    async fn connect(&self) -> Result<Arc<dyn Session>>;
    /// Names the destination in logs.
    fn describe(&self) -> String;

    /// What carries the connections it makes (`yonder status`); for a
    /// connector that can change its mind (one that falls back to SFTP
    /// where no agent can run), the latest connection's.
    fn transport(&self) -> Transport {
        Transport::Agent
    }

    /// Lets go of what it keeps between connections (the direct path's
    /// ssh session): the link calls it when it closes, and before a
    /// reconnection the user asked for, which starts afresh.
    fn release(&self) {}
}

/// What carries a connection to its far end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// yonder's agent, through whatever byte stream.
    Agent,
    /// The host's own SFTP server: asked for (`--sftp`), or, with
    /// `fallback` (why), because no agent could be deployed there.
    Sftp { fallback: Option<String> },
    /// yonder's agent over direct TLS connections (`streams` of them, to
    /// `address`), opened through its ssh session or a standalone listener.
    Direct { address: String, streams: usize },
    /// yonder's agent over the stream that started it, because the direct
    /// path (`--transport auto`) could not be made: why.
    AgentNotDirect { reason: String },
}

impl Transport {
    /// `agent` or `sftp`, as `yonder status` shows it.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Agent | Transport::AgentNotDirect { .. } => "agent",
            Transport::Sftp { .. } => "sftp",
            Transport::Direct { .. } => "direct",
        }
    }

    /// Why a connection that wanted an agent is carried by SFTP instead.
    pub fn fallback(&self) -> Option<&str> {
        match self {
            Transport::Sftp { fallback } => fallback.as_deref(),
            Transport::AgentNotDirect { reason } => Some(reason),
            Transport::Agent | Transport::Direct { .. } => None,
        }
    }
}

/// The agent's client, over whatever stream it was given, supervised
/// through its own methods.
#[async_trait]
impl Session for AgentClient {
    fn closed(&self) -> BoxFuture<String> {
        Box::pin(AgentClient::closed(self))
    }

    fn exited(&self) -> BoxFuture<()> {
        Box::pin(AgentClient::exited(self))
    }

    fn last_heard(&self) -> Instant {
        AgentClient::last_heard(self)
    }

    fn shutdown(&self, reason: &str) {
        AgentClient::shutdown(self, reason)
    }

    fn in_flight(&self) -> usize {
        AgentClient::in_flight(self)
    }

    fn agent_origin(&self) -> Option<AgentOrigin> {
        AgentClient::origin(self)
    }

    async fn fence(&self, session: u64, generation: u64) -> Result<bool> {
        AgentClient::fence(self, session, generation).await
    }

    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        AgentClient::notices(self)
    }

    fn is_closed(&self) -> bool {
        AgentClient::is_closed(self)
    }

    async fn direct_listen(&self, bind: Option<String>, connections: u32) -> Result<Option<DirectOffer>> {
        if !self.peer().capabilities.iter().any(|c| c == "direct") {
            return Ok(None);
        }
        let describe = || "<direct listener>".to_string();
        let request = Request::DirectListen { bind, connections };
        match call(self, request, &describe).await? {
            Response::Direct {
                address,
                port,
                fingerprint,
                secrets,
            } => {
                let fingerprint = fingerprint
                    .try_into()
                    .map_err(|f: Vec<u8>| RemoteError::Protocol {
                        op: "direct-listen",
                        path: describe(),
                        reason: format!("a certificate fingerprint of {} bytes", f.len()),
                    })?;
                Ok(Some(DirectOffer {
                    address,
                    port,
                    fingerprint,
                    secrets: secrets.into_iter().map(|s| s.into_vec()).collect(),
                }))
            }
            other => Err(unexpected("direct-listen", describe(), other)),
        }
    }
}
