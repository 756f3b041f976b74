//! The seam between the VFS and whatever serves it to programs: a
//! [`Frontend`] starts serving a [`Vfs`] at a mount point and hands back a
//! [`MountHandle`], which is all a caller (the manager, a foreground mount)
//! keeps of the mount. FUSE (`yonder-fuse`) is one frontend; each new one
//! implements these two traits in its own crate and is chosen in one match
//! arm of the mount builder (`yonder_manager::mount_builder::frontend_for`).
//!
//! A frontend carries its own options (FUSE: its `MountConfig`); what the
//! VFS itself is told ([`crate::VfsOptions`]) is given to [`Vfs::new`]
//! before the frontend starts, and a frontend that needs it reads
//! [`Vfs::options`].
//!
//! Changes the remote pushes go the other way: the VFS tells the frontend
//! which of its own caches they make stale ([`FrontendCaches`]).

pub use crate::frontend_caches::{CacheDrop, FrontendCaches};
use crate::Vfs;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use tokio::runtime::Handle;
use yonder_remote::BoxFuture;

/// Starts serving a VFS at a mount point.
pub trait Frontend: Send + Sync {
    /// Names the frontend in status output (`fuse`).
    fn name(&self) -> &'static str;

    /// Serves `vfs` at `mountpoint` (an existing directory), each request
    /// running on `runtime`. Returns once the mount is usable. Blocks: call
    /// it from a plain thread or `spawn_blocking`, not from a task.
    fn start(
        &self,
        vfs: Arc<Vfs>,
        runtime: Handle,
        mountpoint: &Path,
    ) -> Result<Box<dyn MountHandle>, FrontendError>;
}

/// One served mount, from its start to its end. Dropping a handle whose
/// mount is still in place sends its buffered writes and detaches it
/// lazily.
///
/// The blocking methods ([`flush`](MountHandle::flush),
/// [`unmount`](MountHandle::unmount), [`wait`](MountHandle::wait), and
/// dropping) must not run on a thread that drives the runtime: call them
/// from a plain thread or `spawn_blocking`.
pub trait MountHandle: Send + Sync {
    /// The frontend serving it, as [`Frontend::name`] says.
    fn frontend(&self) -> &'static str;

    /// The mount point, canonical.
    fn mountpoint(&self) -> &Path;

    /// The VFS it serves.
    fn vfs(&self) -> &Arc<Vfs>;

    /// Sends every buffered write to the remote, for files still open too.
    fn flush(&self) -> Result<(), FrontendError>;

    /// Unmounts. `lazy` detaches the mount at once even while files are
    /// open, which are served until closed; otherwise a busy mount is
    /// refused and stays. Does not flush or wait for the end. A mount
    /// already gone is not an error.
    fn unmount(&self, lazy: bool) -> Result<(), FrontendError>;

    /// Where the mount stands: still served, still in the mount table.
    fn status(&self) -> MountStatus;

    /// Resolves once the mount is no longer served (unmounted, from here
    /// or from outside). May be awaited anywhere, many times.
    fn ended(&self) -> BoxFuture<()>;

    /// Waits until the mount is no longer served and returns how it ended;
    /// at once if it was already waited for.
    fn wait(&self) -> Result<(), FrontendError>;
}

/// Where a mount stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountStatus {
    /// The frontend still serves requests. After a lazy unmount it does
    /// so until the last open file is closed.
    pub serving: bool,
    /// The mount is still in the mount table (`None`: the table could not
    /// be read). Serving but not in the table: lazily detached, files still
    /// open. In the table but not serving: a dead mount that
    /// [`MountHandle::unmount`] removes.
    pub in_mount_table: Option<bool>,
}

/// A frontend's error, as it reported it (each names its operation and
/// mount point): callers show it, they do not take it apart.
pub struct FrontendError(Box<dyn std::error::Error + Send + Sync>);

impl FrontendError {
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> FrontendError {
        FrontendError(Box::new(error))
    }
}

impl fmt::Debug for FrontendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for FrontendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The frontend's error stands in its place: its source is the inner
/// error's, so a chain is not printed twice.
impl std::error::Error for FrontendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
