//! [`FuseFrontend`]: FUSE as one [`Frontend`] among others, for the mount
//! builder, which knows frontends only through that trait.

#[cfg(unix)]
use crate::Mounted;
use crate::{MountConfig, OptionError};
use std::path::Path;
use std::sync::Arc;
use tokio::runtime::Handle;
use yonder_vfs::frontend::{Frontend, FrontendError, MountHandle};
use yonder_vfs::Vfs;

/// Mounts with the kernel's FUSE driver, as its [`MountConfig`] says.
pub struct FuseFrontend {
    config: MountConfig,
}

impl FuseFrontend {
    /// Refuses a `-o` word yonder does not take (see
    /// [`MountConfig::check`]): before anything connects.
    pub fn new(config: MountConfig) -> Result<FuseFrontend, OptionError> {
        config.check()?;
        Ok(FuseFrontend { config })
    }
}

impl Frontend for FuseFrontend {
    fn name(&self) -> &'static str {
        crate::FRONTEND_NAME
    }

    fn start(
        &self,
        vfs: Arc<Vfs>,
        runtime: Handle,
        mountpoint: &Path,
    ) -> Result<Box<dyn MountHandle>, FrontendError> {
        #[cfg(unix)]
        {
            let mounted =
                Mounted::start(vfs, runtime, mountpoint, &self.config).map_err(FrontendError::new)?;
            Ok(Box::new(mounted))
        }
        #[cfg(windows)]
        {
            let _ = (vfs, runtime, &self.config);
            Err(FrontendError::new(crate::FuseError::MountPoint {
                path: mountpoint.to_path_buf(),
                reason: "FUSE mounts are not supported on windows (no FUSE driver there)".to_string(),
            }))
        }
    }
}
