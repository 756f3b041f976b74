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
