use yonder_proto::Errno;

pub type Result<T, E = RemoteError> = std::result::Result<T, E>;

/// An operation on the remote failed. Every variant names the operation and
/// the path (or handle) it was applied to.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// The remote system call failed; `errno` is faithful to the remote's.
    #[error("{op} {path}: {}", errno.description())]
    Os {
        op: &'static str,
        path: String,
        errno: Errno,
        detail: String,
    },
    /// The connection to the agent is gone; the operation's outcome is unknown.
    #[error("{op} {path}: connection to the agent lost: {reason}")]
    Disconnected {
        op: &'static str,
        path: String,
        reason: String,
    },
    /// The peer sent something this side cannot understand.
    #[error("{op} {path}: protocol error: {reason}")]
    Protocol {
        op: &'static str,
        path: String,
        reason: String,
    },
    /// Establishing the connection failed (spawn, ssh, handshake).
    #[error("connect {source_desc}: {reason}")]
    Connect { source_desc: String, reason: String },
}

impl RemoteError {
    /// The errno to report to a kernel or a script for this error.
    pub fn errno(&self) -> Errno {
        match self {
            RemoteError::Os { errno, .. } => *errno,
            RemoteError::Disconnected { .. } => Errno::ENOTCONN,
            RemoteError::Protocol { .. } => Errno::EPROTO,
            RemoteError::Connect { .. } => Errno::ENOTCONN,
        }
    }

    pub fn os(op: &'static str, path: impl Into<String>, errno: Errno) -> Self {
        RemoteError::Os {
            op,
            path: path.into(),
            errno,
            detail: String::new(),
        }
    }
}

/// Renders a wire path for messages: lossy UTF-8, `.` for the root.
pub(crate) fn display_path(path: &[u8]) -> String {
    if path.is_empty() {
        ".".to_string()
    } else {
        String::from_utf8_lossy(path).into_owned()
    }
}
