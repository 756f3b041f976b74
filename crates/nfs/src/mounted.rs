//! [`NfsMount`]: one NFS mount's lifetime, its server and the OS's mount
//! of it, as the manager and a foreground mount keep it.

use crate::error::NfsError;
use crate::mount_command::{unmount_command, Os};
use crate::server::NfsServer;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::watch;
use yonder_remote::BoxFuture;
use yonder_vfs::frontend::{FrontendError, MountHandle, MountStatus};
use yonder_vfs::Vfs;

pub struct NfsMount {
    server: NfsServer,
    runtime: Handle,
    /// The OS whose mount command mounted it; `None` when only served.
    os: Option<Os>,
    mountpoint: PathBuf,
}

impl NfsMount {
    pub fn new(server: NfsServer, runtime: Handle, os: Option<Os>, mountpoint: PathBuf) -> NfsMount {
        if os.is_some() {
            let stopped = server.stop_signal().subscribe();
            let stop_when_idle = server.stop_when_idle();
            let at = mountpoint.clone();
            runtime.spawn(async move {
                if left_the_mount_table(stopped, &at).await {
                    tracing::info!("nfs: {} was unmounted", at.display());
                    stop_when_idle.await;
                }
            });
        }
        NfsMount {
            server,
            runtime,
            os,
            mountpoint,
        }
    }

    fn in_mount_table(&self) -> Option<bool> {
        self.os?;
        listed_in_mount_table(&self.mountpoint)
    }

    fn run_unmount(&self, lazy: bool) -> Result<(), NfsError> {
        let Some(os) = self.os else { return Ok(()) };
        let command = unmount_command(os, &self.mountpoint, lazy);
        let failed = |detail: String| NfsError::UnmountCommand {
            mountpoint: self.mountpoint.clone(),
            program: command.program.clone(),
            detail,
        };
        let output = std::process::Command::new(&command.program)
            .args(&command.args)
            .output()
            .map_err(|e| failed(e.to_string()))?;
        if output.status.success() || self.in_mount_table() == Some(false) {
            return Ok(());
        }
        Err(failed(String::from_utf8_lossy(&output.stderr).trim().to_string()))
    }
}

impl MountHandle for NfsMount {
    fn frontend(&self) -> &'static str {
        crate::FRONTEND_NAME
    }

    fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    fn vfs(&self) -> &Arc<Vfs> {
        self.server.vfs()
    }

    fn flush(&self) -> Result<(), FrontendError> {
        let vfs = self.server.vfs().clone();
        self.runtime.block_on(vfs.flush_all()).map_err(FrontendError::new)
    }

    fn unmount(&self, lazy: bool) -> Result<(), FrontendError> {
        self.run_unmount(lazy).map_err(FrontendError::new)?;
        if lazy && self.os.is_some() {
            // Files still open under a detached mount are served until
            // the client lets go (closes its connection).
            self.runtime.spawn(self.server.stop_when_idle());
        } else {
            self.server.stop();
        }
        Ok(())
    }

    fn status(&self) -> MountStatus {
        MountStatus {
            serving: self.server.is_serving(),
            in_mount_table: self.in_mount_table(),
        }
    }

    fn ended(&self) -> BoxFuture<()> {
        Box::pin(self.server.stopped())
    }

    fn wait(&self) -> Result<(), FrontendError> {
        self.runtime.block_on(self.server.stopped());
        Ok(())
    }
}

impl Drop for NfsMount {
    fn drop(&mut self) {
        if self.server.is_serving() {
            let vfs = self.server.vfs().clone();
            if let Err(e) = self.runtime.block_on(vfs.flush_all()) {
                tracing::warn!(
                    "nfs: sending buffered writes of {}: {e}",
                    self.mountpoint.display()
                );
            }
            if let Err(e) = self.run_unmount(true) {
                tracing::warn!("{e}");
            }
        }
    }
}

/// Whether the mount table lists a mount at `mountpoint` (Linux); `None`
/// where it cannot be read.
fn listed_in_mount_table(mountpoint: &Path) -> Option<bool> {
    let table = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let wanted = mountpoint.to_str()?;
    Some(
        table
            .lines()
            .any(|line| line.split_whitespace().nth(1) == Some(wanted)),
    )
}

/// Resolves to true once the mount is gone from the mount table
/// (unmounted from outside, `umount MOUNTPOINT`), so that serving ends
/// with the mount as a FUSE session does; to false if serving ended first
/// or the table cannot be read. Started once the mount command returned,
/// so the mount was there.
async fn left_the_mount_table(mut stopped: watch::Receiver<bool>, mountpoint: &Path) -> bool {
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return false,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        match listed_in_mount_table(mountpoint) {
            None => return false,
            Some(true) => {}
            Some(false) => return true,
        }
    }
}
