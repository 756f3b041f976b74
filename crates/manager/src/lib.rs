//! The yonder manager: a daemon that owns connections and mounts, and the
//! client the CLI talks to it with.
//!
//! - [`protocol`]: the control protocol (JSON lines over a Unix socket),
//!   the status and event schemas.
//! - [`paths`]: where the socket, lock and log live; the checks that keep
//!   other users out.
//! - [`state`]: connection and mount states and their transition rules.
//! - [`connection`]: one connection (an agent serving `/`, reached over ssh
//!   or locally) under a supervised link: heartbeats, reconnection.
//! - [`mount_builder`]: the one way a mount is put together (link, VFS,
//!   frontend), for the manager and a foreground `yonder mount`.
//! - [`daemon`]: the manager itself: the registry of connections and mounts,
//!   the socket server, health checks, shutdown.
//! - [`client`]: the CLI's side: connecting, starting the manager on
//!   demand, requests.
//!
//! docs/manager.md describes all of it for users.

pub mod client;
pub mod connection;
mod control_socket;
pub mod daemon;
pub mod delivery;
mod events;
pub mod mount_builder;
pub mod paths;
pub mod protocol;
mod reap;
pub mod state;

use std::path::{Path, PathBuf};

pub use daemon::{run, Config};
pub use paths::Paths;

/// What went wrong, naming the operation and the path or id.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing to use {}: {reason}", path.display())]
    UnsafeDirectory { path: PathBuf, reason: String },
    #[error("a manager is already running (socket {})", socket.display())]
    AlreadyRunning { socket: PathBuf },
    #[error("no manager is running (socket {})", socket.display())]
    NotRunning { socket: PathBuf },
    #[error(
        "the running manager speaks control protocol {theirs} (yonder {version}), this yonder speaks {ours}: \
         stop it with 'yonder manager stop'"
    )]
    ProtocolMismatch { theirs: u32, version: String, ours: u32 },
    #[error("the manager at {} refused this connection: {reason}", socket.display())]
    Refused { socket: PathBuf, reason: String },
    #[error("control protocol on {}: {reason}", socket.display())]
    Protocol { socket: PathBuf, reason: String },
    /// The manager could not do what was asked; its message.
    #[error("{0}")]
    Failed(String),
}

impl ManagerError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> ManagerError {
        ManagerError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}
