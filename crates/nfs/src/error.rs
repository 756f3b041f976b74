use std::path::PathBuf;

/// What went wrong serving or mounting over NFS; each names its operation
/// and the address or mount point.
#[derive(Debug, thiserror::Error)]
pub enum NfsError {
    #[error("serve nfs on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
    #[error(
        "mount {}: this kernel has no NFS client (no nfs in /proc/filesystems); mount with --backend fuse",
        mountpoint.display()
    )]
    NoNfsClient { mountpoint: PathBuf },
    #[error(
        "mount {}: NFS mounts are not supported on {os} (yonder knows no NFS mount command there); \
         `yonder serve-nfs` serves the tree to a client of your own",
        mountpoint.display()
    )]
    NoMountCommand { mountpoint: PathBuf, os: &'static str },
    #[error("mount {}: {program} failed: {detail}", mountpoint.display())]
    MountCommand {
        mountpoint: PathBuf,
        program: String,
        detail: String,
    },
    #[error("unmount {}: {program} failed: {detail}", mountpoint.display())]
    UnmountCommand {
        mountpoint: PathBuf,
        program: String,
        detail: String,
    },
}
