//! The completion statuses the engine answers the OS with.

use yonder_proto::Errno;

/// An operation's outcome as the OS is told it (`CompletionStatus`, an
/// NTSTATUS: the Windows side maps each to its `STATUS_*` value). What an
/// application sees when a read, rename or delete fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloudStatus {
    Success,
    /// `STATUS_CLOUD_FILE_ACCESS_DENIED`.
    AccessDenied,
    /// `STATUS_OBJECT_NAME_NOT_FOUND`.
    NotFound,
    /// `STATUS_OBJECT_NAME_COLLISION`.
    Exists,
    /// `STATUS_DIRECTORY_NOT_EMPTY`.
    DirectoryNotEmpty,
    /// `STATUS_CLOUD_FILE_NETWORK_UNAVAILABLE`: the remote cannot be
    /// reached.
    NetworkUnavailable,
    /// `STATUS_CLOUD_FILE_IN_USE`.
    InUse,
    /// `STATUS_CLOUD_FILE_NOT_IN_SYNC`: the remote's file is not the one
    /// the placeholder describes (it changed under it).
    NotInSync,
    /// `STATUS_CLOUD_FILE_INVALID_REQUEST`.
    InvalidRequest,
    /// `STATUS_CLOUD_FILE_UNSUCCESSFUL`: anything else.
    Unsuccessful,
}

impl CloudStatus {
    /// The status that tells an application what the remote said.
    pub fn from_errno(errno: Errno) -> CloudStatus {
        match errno {
            Errno::EACCES | Errno::EPERM | Errno::EROFS => CloudStatus::AccessDenied,
            Errno::ENOENT | Errno::ESTALE => CloudStatus::NotFound,
            Errno::EEXIST => CloudStatus::Exists,
            Errno::ENOTEMPTY => CloudStatus::DirectoryNotEmpty,
            Errno::ENOTCONN | Errno::ETIMEDOUT | Errno::ECONNRESET => CloudStatus::NetworkUnavailable,
            Errno::EBUSY | Errno::ETXTBSY => CloudStatus::InUse,
            Errno::EINVAL | Errno::ENAMETOOLONG => CloudStatus::InvalidRequest,
            _ => CloudStatus::Unsuccessful,
        }
    }

    pub fn is_success(self) -> bool {
        self == CloudStatus::Success
    }
}
