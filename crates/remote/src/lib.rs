//! The local side of yonder's connection to a remote file system.
//!
//! [`Remote`] is the one interface every upper layer (the `yonder fs`
//! commands, the VFS behind every mount frontend) programs against. Its
//! implementations are transports: [`AgentClient`] speaks the yonder protocol
//! to a `yonder agent` reached over any byte stream; [`source`] turns a
//! user's SOURCE string into such a stream (a local child process, or one
//! started through the system `ssh`); [`Scoped`] shows one tree of a
//! remote that serves `/`, so one connection carries several mounts.

mod client;
mod error;
mod remote;
mod scoped;
pub mod source;

pub use bytes::Bytes;
pub use client::AgentClient;
pub use error::{RemoteError, Result};
pub use remote::Remote;
pub use scoped::Scoped;
pub use source::{connect, spawn, ConnectOptions, Source, SourceError, Spawned};
pub use yonder_proto as proto;
pub mod transfer;
