//! Errors: [`AgentError`] ends the session, [`OpError`] fails one request.

use std::path::PathBuf;
use yonder_proto::{Errno, FrameError, WireError};

/// Why [`crate::serve`] stopped. Each variant says what the agent was doing
/// and on which path; the underlying cause is the error's `source()`.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot serve {}", path.display())]
    Root { path: PathBuf, source: std::io::Error },
    #[error("cannot serve {}: not a directory", path.display())]
    RootNotDirectory { path: PathBuf },
    /// Reading from or writing to the client failed.
    #[error("{op}")]
    Io {
        op: &'static str,
        source: std::io::Error,
    },
    /// The byte stream no longer splits into frames.
    #[error("{op}")]
    Frame { op: &'static str, source: FrameError },
    #[error("protocol version mismatch: client speaks v{client}, agent speaks v{agent}")]
    VersionMismatch { client: u32, agent: u32 },
    #[error("handshake failed: {detail}")]
    Handshake { detail: String },
    #[error("cannot start the async runtime")]
    Runtime { source: std::io::Error },
}

/// A failed request, already phrased as `"<op> <path>: <strerror>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpError {
    pub errno: Errno,
    pub message: String,
}

impl OpError {
    /// `subject` is the displayed path, `a -> b` pair or `handle N`.
    pub(crate) fn new(op: &str, subject: &str, errno: Errno) -> OpError {
        OpError {
            errno,
            message: format!("{op} {subject}: {}", errno.description()),
        }
    }

    /// Like [`OpError::new`] with a note on why the agent itself refused.
    pub(crate) fn refused(op: &str, subject: &str, errno: Errno, why: &str) -> OpError {
        OpError {
            errno,
            message: format!("{op} {subject}: {} ({why})", errno.description()),
        }
    }

    #[cfg(unix)]
    pub(crate) fn sys(op: &str, subject: &str, err: rustix::io::Errno) -> OpError {
        OpError::new(op, subject, Errno::from_host(err.raw_os_error()))
    }

    pub(crate) fn io(op: &str, subject: &str, err: &std::io::Error) -> OpError {
        OpError::new(op, subject, Errno::from_io(err))
    }
}

impl From<OpError> for WireError {
    fn from(err: OpError) -> WireError {
        WireError {
            errno: err.errno,
            message: err.message,
        }
    }
}
