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
    /// The connection to the agent was lost while the request was on its
    /// way or being answered: the agent may or may not have carried it out.
    #[error("{op} {path}: connection to the agent lost: {reason}")]
    Disconnected {
        op: &'static str,
        path: String,
        reason: String,
    },
    /// The connection to the agent was already gone when the call was
    /// made: nothing was sent, so the remote is unchanged by it.
    #[error("{op} {path}: not connected to the agent: {reason}")]
    NotConnected {
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
    /// The host has no agent and none can be deployed there (a read-only
    /// or noexec cache directory, another platform, a binary that does not
    /// run there): a transport that needs no agent (SFTP) can take over.
    #[error(
        "connect {source_desc}: cannot deploy the agent there: {reason}; install yonder on its PATH or pass --agent-path"
    )]
    Undeployable { source_desc: String, reason: String },
}

impl RemoteError {
    /// The errno to report to a kernel or a script for this error.
    pub fn errno(&self) -> Errno {
        match self {
            RemoteError::Os { errno, .. } => *errno,
            RemoteError::Disconnected { .. } | RemoteError::NotConnected { .. } => Errno::ENOTCONN,
            RemoteError::Protocol { .. } => Errno::EPROTO,
            RemoteError::Connect { .. } | RemoteError::Undeployable { .. } => Errno::ENOTCONN,
        }
    }

    /// The call failed because the connection to the agent is gone, not
    /// because of anything on the remote: a caller may wait for a new
    /// connection and try again. (An `Os` error with errno ENOTCONN, say
    /// from a dead mount below the remote root, is not one of these.)
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            RemoteError::Disconnected { .. } | RemoteError::NotConnected { .. }
        )
    }

    /// The connection was lost after the request may have reached the
    /// agent: whether it took effect is unknown, so a call that is not
    /// idempotent must not simply be sent again.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, RemoteError::Disconnected { .. })
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
