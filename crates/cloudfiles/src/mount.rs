//! [`CloudFilesMount`], one registered sync root from its start to its
//! end: the [`MountHandle`] of the Cloud Files frontend.

use crate::sync_root::SyncRoot;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::runtime::Handle;
use tokio::sync::watch;
use yonder_remote::BoxFuture;
use yonder_vfs::frontend::{FrontendError, MountHandle, MountStatus};
use yonder_vfs::Vfs;

pub struct CloudFilesMount {
    root: Arc<SyncRoot>,
    mountpoint: PathBuf,
    runtime: Handle,
    /// Whether the sync root is still registered (and connected); taken
    /// by the first unmount.
    registered: Mutex<bool>,
    ended: watch::Sender<bool>,
}

impl CloudFilesMount {
    pub fn new(root: Arc<SyncRoot>, mountpoint: PathBuf, runtime: Handle) -> CloudFilesMount {
        CloudFilesMount {
            root,
            mountpoint,
            runtime,
            registered: Mutex::new(true),
            ended: watch::channel(false).0,
        }
    }

    fn is_registered(&self) -> bool {
        *self.registered.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl MountHandle for CloudFilesMount {
    fn frontend(&self) -> &'static str {
        "cloudfiles"
    }

    fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    fn vfs(&self) -> &Arc<Vfs> {
        self.root.vfs()
    }

    fn flush(&self) -> Result<(), FrontendError> {
        self.runtime
            .block_on(self.root.vfs().flush_all())
            .map_err(FrontendError::new)
    }

    /// Disconnects the engine and unregisters the sync root. Never busy:
    /// a file open locally stays open on its local data (`lazy` changes
    /// nothing).
    fn unmount(&self, _lazy: bool) -> Result<(), FrontendError> {
        let mut registered = self.registered.lock().unwrap_or_else(|p| p.into_inner());
        if !*registered {
            return Ok(());
        }
        let os = self.root.os();
        let disconnected = os.disconnect();
        let unregistered = os.unregister();
        *registered = false;
        self.ended.send_replace(true);
        disconnected.map_err(FrontendError::new)?;
        unregistered.map_err(FrontendError::new)
    }

    fn status(&self) -> MountStatus {
        let registered = self.is_registered();
        MountStatus {
            serving: registered,
            in_mount_table: Some(registered),
        }
    }

    fn ended(&self) -> BoxFuture<()> {
        let mut ended = self.ended.subscribe();
        Box::pin(async move {
            let _ = ended.wait_for(|ended| *ended).await;
        })
    }

    fn wait(&self) -> Result<(), FrontendError> {
        self.runtime.block_on(self.ended());
        Ok(())
    }
}

impl Drop for CloudFilesMount {
    fn drop(&mut self) {
        if self.is_registered() {
            // On a runtime thread, blocking on the flush would panic: the
            // writes stay in the VFS's journal, and the sync root goes.
            if Handle::try_current().is_ok() {
                tracing::warn!(
                    "cloudfiles: {} dropped on a runtime thread: buffered writes not sent",
                    self.mountpoint.display()
                );
            } else if let Err(e) = self.flush() {
                tracing::warn!(
                    "cloudfiles: sending buffered writes of {}: {e}",
                    self.mountpoint.display()
                );
            }
            if let Err(e) = self.unmount(true) {
                tracing::warn!("cloudfiles: unmounting {}: {e}", self.mountpoint.display());
            }
        }
    }
}
