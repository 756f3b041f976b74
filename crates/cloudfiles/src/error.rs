//! The crate's error: every one names the operation and the item.

use crate::item_path::ItemPath;
use crate::os::OsError;
use crate::status::CloudStatus;
use yonder_vfs::VfsError;

#[derive(Debug, thiserror::Error)]
pub enum CloudFilesError {
    /// The remote refused or failed (through the VFS).
    #[error("{op} {path}: {source}")]
    Vfs {
        op: &'static str,
        path: ItemPath,
        /// Boxed: it is large, and every result of the engine carries
        /// room for it.
        #[source]
        source: Box<VfsError>,
    },
    /// The OS refused or failed.
    #[error(transparent)]
    Os(#[from] OsError),
    /// The request itself cannot be answered as asked.
    #[error("{op} {path}: {reason}")]
    Refused {
        op: &'static str,
        path: ItemPath,
        status: CloudStatus,
        reason: String,
    },
}

impl CloudFilesError {
    pub fn vfs(op: &'static str, path: &ItemPath, source: VfsError) -> CloudFilesError {
        CloudFilesError::Vfs {
            op,
            path: path.clone(),
            source: Box::new(source),
        }
    }

    pub fn refused(
        op: &'static str,
        path: &ItemPath,
        status: CloudStatus,
        reason: impl Into<String>,
    ) -> CloudFilesError {
        CloudFilesError::Refused {
            op,
            path: path.clone(),
            status,
            reason: reason.into(),
        }
    }

    /// What the OS is told.
    pub fn status(&self) -> CloudStatus {
        match self {
            CloudFilesError::Vfs { source, .. } => CloudStatus::from_errno(source.errno()),
            CloudFilesError::Os(_) => CloudStatus::Unsuccessful,
            CloudFilesError::Refused { status, .. } => *status,
        }
    }
}
