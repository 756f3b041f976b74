//! [`CloudFilesFrontend`], the crate's [`Frontend`]: a mount is a sync
//! root registered on the mount point, with the engine connected to it.

use crate::mount::CloudFilesMount;
use crate::os::{CloudOs, SyncRootRegistration};
use crate::sync_root::SyncRoot;
use std::path::Path;
use std::sync::Arc;
use tokio::runtime::Handle;
use yonder_vfs::frontend::{Frontend, FrontendError, MountHandle};
use yonder_vfs::Vfs;

type MakeOs = dyn Fn() -> Arc<dyn CloudOs> + Send + Sync;

/// Serves a VFS as a Cloud Files sync root. Each mount gets an OS side of
/// its own from `make_os` (on Windows, [`CloudFilesFrontend::windows`]).
pub struct CloudFilesFrontend {
    make_os: Box<MakeOs>,
}

impl CloudFilesFrontend {
    pub fn new(make_os: impl Fn() -> Arc<dyn CloudOs> + Send + Sync + 'static) -> CloudFilesFrontend {
        CloudFilesFrontend {
            make_os: Box::new(make_os),
        }
    }

    /// Over the real Cloud Files API.
    #[cfg(windows)]
    pub fn windows() -> CloudFilesFrontend {
        CloudFilesFrontend::new(|| Arc::new(crate::windows::WindowsCloudOs::new()))
    }
}

impl Frontend for CloudFilesFrontend {
    fn name(&self) -> &'static str {
        "cloudfiles"
    }

    /// Registers the sync root, connects the engine's callbacks and
    /// starts following remote changes; the root's items are listed when
    /// the OS first asks.
    fn start(
        &self,
        vfs: Arc<Vfs>,
        runtime: Handle,
        mountpoint: &Path,
    ) -> Result<Box<dyn MountHandle>, FrontendError> {
        let mountpoint = mountpoint.canonicalize().map_err(|e| {
            FrontendError::new(std::io::Error::new(
                e.kind(),
                format!("sync root {}: {e}", mountpoint.display()),
            ))
        })?;
        let os = (self.make_os)();
        os.register(&SyncRootRegistration {
            root: mountpoint.clone(),
            provider_name: "yonder".to_owned(),
            provider_version: env!("CARGO_PKG_VERSION").to_owned(),
            identity: mountpoint.to_string_lossy().as_bytes().to_vec(),
        })
        .map_err(FrontendError::new)?;
        let root = SyncRoot::new(vfs.clone(), os.clone(), runtime.clone());
        if let Err(e) = os.connect(root.clone()) {
            if let Err(undo) = os.unregister() {
                tracing::warn!("{undo}");
            }
            return Err(FrontendError::new(e));
        }
        vfs.set_frontend_caches(root.clone());
        Ok(Box::new(CloudFilesMount::new(root, mountpoint, runtime)))
    }
}
