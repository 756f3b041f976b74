//! The local side of yonder's connection to a remote file system.
//!
//! [`Remote`] is the one interface every upper layer (the `yonder fs`
//! commands, the VFS behind every mount frontend) programs against. Its
//! implementations are transports: a transport of the protocol's requests
//! ([`Exchange`]) is a `Remote` through one mapping of methods to requests;
//! [`AgentClient`] carries them to a `yonder agent` over any byte stream;
//! [`source`] turns a user's SOURCE string into such a stream (a local
//! child process, or one started through the system `ssh`, which [`deploy`]s
//! the agent to a host without one); [`Scoped`] shows one tree of a
//! remote that serves `/`, so one connection carries several mounts.
//! [`Link`] supervises one connection: heartbeats, and reconnection when it
//! dies. What it needs of a connection is a [`Session`]; a [`Connector`]
//! makes one, the same way each time, and [`connector_for`] picks the
//! connector for a [`Source`]: a new transport is a `Connector` (and, for a
//! protocol other than yonder's, a `Session`) and one line in
//! [`URL_TRANSPORTS`].

mod changes;
mod child;
mod client;
pub mod container;
pub mod deploy;
mod direct;
mod error;
mod exchange;
mod fallback;
pub mod link;
mod operation;
mod remote;
mod scoped;
mod session;
pub mod sftp;
mod shell;
pub mod source;
mod streams;
pub mod tcp;
mod transport;

pub use bytes::Bytes;
pub use changes::{ChangeFeed, RemoteChange};
pub use client::AgentClient;
pub use deploy::AgentOrigin;
pub use direct::{DirectConnector, DirectOptions, KeyConnector, TransportChoice, DEFAULT_STREAMS};
pub use error::{RemoteError, Result};
pub use exchange::{Describe, Exchange};
pub use fallback::{fallback_notice, transport_notice, FallbackConnector};
pub use link::{Link, LinkOptions, LinkState, LinkStatus};
pub use operation::Operation;
pub use remote::{tree_from_page, Remote};
pub use scoped::Scoped;
pub use session::{BoxFuture, Connector, DirectOffer, Session, Transport};
pub use source::{
    connect_agent, spawn, ConnectOptions, MakeConnector, Source, SourceConnector, SourceError, Spawned,
    CONTAINER_SCHEMES, URL_TRANSPORTS,
};
pub use streams::Streams;
pub use transport::{connect, connector_for};
pub use yonder_proto as proto;
pub mod transfer;
