//! [`NfsFrontend`]: NFS as one [`Frontend`] among others, for the mount
//! builder: a server on loopback, mounted by the OS's own NFS client.

use crate::error::NfsError;
use crate::mount_command::{
    command_from_template, mount_command, mount_command_override, nfs_client_available, Os,
};
use crate::mounted::NfsMount;
use crate::server::{NfsConfig, NfsServer};
use std::path::Path;
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::sync::watch;
use yonder_vfs::frontend::{Frontend, FrontendError, MountHandle};
use yonder_vfs::Vfs;

/// Serves a mount over NFSv3 on 127.0.0.1 and mounts it with the OS's
/// NFS client, or only serves it (`yonder serve-nfs`), for the user to
/// mount.
pub struct NfsFrontend {
    config: NfsConfig,
    serve_only: bool,
    port: watch::Sender<Option<u16>>,
}

impl NfsFrontend {
    pub fn new(config: NfsConfig) -> NfsFrontend {
        NfsFrontend {
            config,
            serve_only: false,
            port: watch::channel(None).0,
        }
    }

    /// Serves without mounting: the mount point given to
    /// [`Frontend::start`] only names the mount.
    pub fn serve_only(config: NfsConfig) -> NfsFrontend {
        NfsFrontend {
            serve_only: true,
            ..NfsFrontend::new(config)
        }
    }

    /// The port served on, once the server is up.
    pub fn port(&self) -> watch::Receiver<Option<u16>> {
        self.port.subscribe()
    }
}

impl Frontend for NfsFrontend {
    fn name(&self) -> &'static str {
        crate::FRONTEND_NAME
    }

    fn start(
        &self,
        vfs: Arc<Vfs>,
        runtime: Handle,
        mountpoint: &Path,
    ) -> Result<Box<dyn MountHandle>, FrontendError> {
        let no_client = || {
            FrontendError::new(NfsError::NoNfsClient {
                mountpoint: mountpoint.to_path_buf(),
            })
        };
        if self.serve_only {
            let server = runtime
                .block_on(NfsServer::start(vfs, self.config))
                .map_err(FrontendError::new)?;
            self.port.send_replace(Some(server.port()));
            return Ok(Box::new(NfsMount::new(
                server,
                runtime,
                None,
                mountpoint.to_path_buf(),
            )));
        }
        // Checked before anything is served: the one line the user needs.
        let custom = mount_command_override();
        let os = match Os::current() {
            Some(os) if custom.is_some() || nfs_client_available(os) => os,
            Some(_) => return Err(no_client()),
            None => {
                return Err(FrontendError::new(NfsError::NoMountCommand {
                    mountpoint: mountpoint.to_path_buf(),
                    os: std::env::consts::OS,
                }))
            }
        };
        let mountpoint = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
        let server = runtime
            .block_on(NfsServer::start(vfs, self.config))
            .map_err(FrontendError::new)?;
        self.port.send_replace(Some(server.port()));
        let command = custom
            .and_then(|template| command_from_template(&template, server.port(), &mountpoint))
            .unwrap_or_else(|| mount_command(os, server.port(), &mountpoint));
        tracing::info!("nfs: {command}");
        let output = std::process::Command::new(&command.program)
            .args(&command.args)
            .output()
            .map_err(|e| {
                FrontendError::new(NfsError::MountCommand {
                    mountpoint: mountpoint.clone(),
                    program: command.program.clone(),
                    detail: e.to_string(),
                })
            })?;
        if !output.status.success() {
            return Err(FrontendError::new(NfsError::MountCommand {
                mountpoint,
                program: command.program,
                detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            }));
        }
        Ok(Box::new(NfsMount::new(server, runtime, Some(os), mountpoint)))
    }
}
