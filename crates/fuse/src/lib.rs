//! FUSE frontend of yonder: mounts a [`yonder_vfs::Vfs`] with the kernel's
//! FUSE driver (through `fuser`, mounting with `fusermount3`, no libfuse
//! needed).
//!
//! - [`MountConfig`]: how to mount (permissions, `-o` options), and
//!   its translation into `fuser`'s configuration. Pure.
//! - [`options`]: the one reading of `-o` words, for every entry point.
//! - [`Mounted`]: one mount's lifetime: [`Mounted::start`] mounts and serves
//!   it from a thread of its own, then [`flush`](Mounted::flush),
//!   [`unmount`](Mounted::unmount) (lazy or not), [`wait`](Mounted::wait) /
//!   [`ended`](Mounted::ended), [`status`](Mounted::status).
//! - [`unmount`]: unmount any FUSE mount by path (`yonder unmount`).
//! - [`UnmountGuard`]: a helper process, shared by a process's mounts,
//!   that unmounts what the process leaves behind if it is killed and
//!   `fusermount3` does not ([`unmount_guard::serve`] is its work).
//! - [`FuseFrontend`]: the crate as a [`yonder_vfs::frontend::Frontend`],
//!   which is how the mount builder starts it; [`Mounted`] is its
//!   [`yonder_vfs::frontend::MountHandle`].
//!
//! Kernel requests are read by each mount's session thread and each is run
//! as a task on the given tokio runtime, replying when the VFS call
//! completes. Nothing here is process-wide (no signal handlers, no
//! statics; the unmount guard is the caller's, passed in each
//! [`MountConfig`]): one process may run any number of mounts, and deciding
//! when to unmount (signals, a control socket) is the caller's business.

// The kernel side is fuser's, which has no Windows backend: there the
// crate keeps its options, configuration and frontend, whose mounts are
// refused (`frontend.rs`), and the modules that talk to the kernel are out.
#[cfg(unix)]
mod caches;
mod config;
#[cfg(unix)]
mod convert;
mod frontend;
#[cfg(unix)]
mod fs;
mod mount_table;
pub mod options;
#[cfg(unix)]
mod session;
pub mod unmount_guard;

pub use config::{may_allow_other, MountConfig};
pub use frontend::FuseFrontend;
pub use mount_table::{mounted_at, unmount, MountedAt};
pub use options::{MountOptions, OptionError};
#[cfg(unix)]
pub use session::Mounted;
pub use unmount_guard::UnmountGuard;
pub use yonder_vfs::frontend::MountStatus;

/// This frontend's name in status output.
pub const FRONTEND_NAME: &str = "fuse";

#[cfg(unix)]
use std::future::Future;
use std::io;
use std::path::PathBuf;
#[cfg(unix)]
use std::sync::mpsc;
#[cfg(unix)]
use tokio::runtime::Handle;
use yonder_vfs::VfsError;

#[derive(Debug, thiserror::Error)]
pub enum FuseError {
    #[error("mount point {}: {reason}", path.display())]
    MountPoint { path: PathBuf, reason: String },
    #[error("mount point {} is not empty (allow non-empty to mount over it)", path.display())]
    NotEmpty { path: PathBuf },
    #[error("remote: {0}")]
    Remote(#[from] VfsError),
    #[error("mounting {}: {source}", path.display())]
    Mount { path: PathBuf, source: io::Error },
    #[error("unmounting {}: {reason}", path.display())]
    Unmount { path: PathBuf, reason: String },
    #[error("FUSE session on {}: {source}", path.display())]
    Session { path: PathBuf, source: io::Error },
}

/// Runs `fut` on `rt` and waits for it from a plain (non-runtime) thread.
#[cfg(unix)]
pub(crate) fn block_on<T: Send + 'static>(rt: &Handle, fut: impl Future<Output = T> + Send + 'static) -> T {
    try_block_on(rt, fut).expect("runtime shut down while a mount operation was running")
}

/// [`block_on`], failing instead of panicking if the runtime has shut down.
#[cfg(unix)]
pub(crate) fn try_block_on<T: Send + 'static>(
    rt: &Handle,
    fut: impl Future<Output = T> + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| io::Error::other("the runtime serving the mount has shut down"))
}
