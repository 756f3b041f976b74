//! [`ProviderError`]: a failed request, with the status the system is
//! given for it ([`ErrorStatus`]).

use crate::identifier::ItemIdentifier;
use yonder_vfs::{Errno, VfsError};

/// Which `NSError` domain a status belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorDomain {
    /// `NSFileProviderErrorDomain`.
    FileProvider,
    /// `NSCocoaErrorDomain`.
    Cocoa,
    /// `NSPOSIXErrorDomain`: the system takes these as transient and
    /// retries.
    Posix,
}

/// The error the system is given, as the replicated extension's contract
/// tells the extension to report each case (see the SDK's documentation
/// of `fetchContentsForItemWithIdentifier`, `createItemBasedOnTemplate`,
/// `modifyItem`, `deleteItemWithIdentifier` and
/// `NSFileProviderEnumerationObserver`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorStatus {
    /// `NSFileProviderErrorNoSuchItem` (-1005): the item is gone; the
    /// system removes it.
    NoSuchItem,
    /// `NSFileProviderErrorFilenameCollision` (-1001).
    FilenameCollision,
    /// `NSFileProviderErrorDirectoryNotEmpty` (-1007): a deletion without
    /// the recursive option of a directory that is not empty.
    DirectoryNotEmpty,
    /// `NSFileProviderErrorSyncAnchorExpired` (-1002), also
    /// `NSFileProviderErrorPageExpired`: enumerate again from scratch.
    SyncAnchorExpired,
    /// `NSFileProviderErrorServerUnreachable` (-1004): the connection is
    /// down; the system backs off until signalled.
    ServerUnreachable,
    /// `NSFileProviderErrorInsufficientQuota` (-1003).
    InsufficientQuota,
    /// `NSFileReadNoPermissionError` (257, Cocoa): shown to the user.
    ReadNoPermission,
    /// `NSFileWriteNoPermissionError` (513, Cocoa).
    WriteNoPermission,
    /// Any other failure, by this host's errno: the system takes it as
    /// transient and retries.
    Posix(i32),
}

impl ErrorStatus {
    pub fn domain(self) -> ErrorDomain {
        match self {
            ErrorStatus::ReadNoPermission | ErrorStatus::WriteNoPermission => ErrorDomain::Cocoa,
            ErrorStatus::Posix(_) => ErrorDomain::Posix,
            _ => ErrorDomain::FileProvider,
        }
    }

    /// The `NSError` code in [`ErrorStatus::domain`].
    pub fn code(self) -> i64 {
        match self {
            ErrorStatus::NoSuchItem => -1005,
            ErrorStatus::FilenameCollision => -1001,
            ErrorStatus::DirectoryNotEmpty => -1007,
            ErrorStatus::SyncAnchorExpired => -1002,
            ErrorStatus::ServerUnreachable => -1004,
            ErrorStatus::InsufficientQuota => -1003,
            ErrorStatus::ReadNoPermission => 257,
            ErrorStatus::WriteNoPermission => 513,
            ErrorStatus::Posix(errno) => i64::from(errno),
        }
    }

    /// The status of a VFS failure in a request that reads (`reading`) or
    /// changes the remote.
    pub fn of_vfs(error: &VfsError, reading: bool) -> ErrorStatus {
        let errno = error.errno();
        if error.is_connection_lost() {
            return ErrorStatus::ServerUnreachable;
        }
        match errno {
            Errno::ENOENT => ErrorStatus::NoSuchItem,
            Errno::EEXIST => ErrorStatus::FilenameCollision,
            Errno::ENOTEMPTY => ErrorStatus::DirectoryNotEmpty,
            Errno::ENOSPC | Errno::EDQUOT => ErrorStatus::InsufficientQuota,
            Errno::ENOTCONN | Errno::ETIMEDOUT => ErrorStatus::ServerUnreachable,
            Errno::EACCES | Errno::EPERM if reading => ErrorStatus::ReadNoPermission,
            Errno::EACCES | Errno::EPERM | Errno::EROFS => ErrorStatus::WriteNoPermission,
            // The protocol's numbering is Linux's; the system is given
            // this host's.
            other => ErrorStatus::Posix(other.to_host()),
        }
    }
}

/// A request of the system's that failed: which, on which item, and what
/// the system is told.
#[derive(Debug, thiserror::Error)]
#[error("{op} {item}: {status:?}{}", source.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
pub struct ProviderError {
    pub op: &'static str,
    pub item: ItemIdentifier,
    pub status: ErrorStatus,
    /// Boxed: errors travel in every result, most of them `Ok`.
    #[source]
    pub source: Option<Box<VfsError>>,
}

impl ProviderError {
    pub fn new(op: &'static str, item: &ItemIdentifier, status: ErrorStatus) -> ProviderError {
        ProviderError {
            op,
            item: item.clone(),
            status,
            source: None,
        }
    }

    /// A VFS call of a request that only reads.
    pub fn reading(op: &'static str, item: &ItemIdentifier, error: VfsError) -> ProviderError {
        ProviderError {
            op,
            item: item.clone(),
            status: ErrorStatus::of_vfs(&error, true),
            source: Some(Box::new(error)),
        }
    }

    /// A VFS call of a request that changes the remote.
    pub fn changing(op: &'static str, item: &ItemIdentifier, error: VfsError) -> ProviderError {
        ProviderError {
            op,
            item: item.clone(),
            status: ErrorStatus::of_vfs(&error, false),
            source: Some(Box::new(error)),
        }
    }

    /// Writing or reading a local file the system handed over or is handed.
    pub fn local(op: &'static str, item: &ItemIdentifier, error: &std::io::Error) -> ProviderError {
        let errno = Errno::from_io(error);
        ProviderError {
            op,
            item: item.clone(),
            status: ErrorStatus::Posix(errno.to_host()),
            source: Some(Box::new(VfsError::new(op, format!("local file: {error}"), errno))),
        }
    }
}
