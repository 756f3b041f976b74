use yonder_proto::Errno;
use yonder_remote::RemoteError;

pub type Result<T, E = VfsError> = std::result::Result<T, E>;

/// A VFS operation failed. Carries the errno a frontend reports to its
/// caller, plus the operation and path for logs.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op} {path}: {}", errno.description())]
pub struct VfsError {
    pub op: &'static str,
    /// Display form of the path (or handle) the operation applied to.
    pub path: String,
    pub errno: Errno,
    #[source]
    pub source: Option<RemoteError>,
}

impl VfsError {
    pub fn new(op: &'static str, path: impl Into<String>, errno: Errno) -> Self {
        VfsError {
            op,
            path: path.into(),
            errno,
            source: None,
        }
    }

    pub(crate) fn remote(op: &'static str, path: &[u8], err: RemoteError) -> Self {
        VfsError {
            op,
            path: display_path(path),
            errno: err.errno(),
            source: Some(err),
        }
    }

    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// The remote call failed because the connection was lost (its remote
    /// error says so), not because of anything on the remote.
    pub fn is_connection_lost(&self) -> bool {
        self.source.as_ref().is_some_and(RemoteError::is_connection_lost) && self.errno == Errno::ENOTCONN
    }
}

/// Renders a remote path for messages: lossy UTF-8, `.` for the root.
pub(crate) fn display_path(path: &[u8]) -> String {
    if path.is_empty() {
        ".".to_string()
    } else {
        String::from_utf8_lossy(path).into_owned()
    }
}
