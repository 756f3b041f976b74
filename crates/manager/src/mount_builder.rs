//! [`MountBuilder`]: the one way a mount is put together, for the manager
//! and for `yonder mount --foreground` (which the fstab helper runs too):
//! the link's remote, scoped to the mount's tree → a [`Vfs`] → following
//! the link onto each new connection, and the changes the remote pushes →
//! the frontend the request names,
//! serving it at the mount point.
//!
//! A new frontend is one arm of [`frontend_for`]; the request names it in
//! [`MountSpec::frontend`].

use crate::protocol::{seconds, MountSpec};
use crate::ManagerError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use yonder_fuse::{FuseFrontend, MountConfig, UnmountGuard};
use yonder_nfs::{NfsConfig, NfsFrontend};
use yonder_remote::proto::Errno;
use yonder_remote::{Link, Remote, Scoped};
use yonder_vfs::frontend::{Frontend, FrontendError, MountHandle};
use yonder_vfs::{
    DiskJournal, DiskJournalError, Durability, Journal, MemoryJournal, Vfs, VfsError, VfsOptions,
};

/// How soon a record of the durable journal reaches the disk itself. Each
/// record is written (so it outlives the process) before its operation is
/// acknowledged; syncing each one too would cost a disk flush per
/// operation (measured: an untar of 2,000 files, see ARCHITECTURE.md), so
/// a crash of the whole host may take this much.
const JOURNAL_SYNC: Durability = Durability::Within(Duration::from_millis(100));

/// The frontend that serves a mount of `spec`, with its options, which
/// it refuses here if it does not take them.
pub fn frontend_for(
    spec: &MountSpec,
    unmount_guard: Option<Arc<UnmountGuard>>,
) -> Result<Box<dyn Frontend>, ManagerError> {
    let refused = |e: &dyn std::fmt::Display| ManagerError::Failed(e.to_string());
    Ok(match spec.frontend.as_str() {
        yonder_fuse::FRONTEND_NAME => {
            let config = MountConfig {
                unmount_guard,
                ..fuse_config(spec)
            };
            Box::new(FuseFrontend::new(config).map_err(|e| refused(&e))?)
        }
        yonder_nfs::FRONTEND_NAME => {
            if !yonder_nfs::nfs_mount_possible() {
                let error = yonder_nfs::NfsError::NoNfsClient {
                    mountpoint: spec.mountpoint.clone(),
                };
                return Err(refused(&error));
            }
            Box::new(NfsFrontend::new(NfsConfig::default()))
        }
        other => {
            return Err(ManagerError::Failed(format!(
                "mount {}: no frontend {other:?}",
                spec.connect.source
            )))
        }
    })
}

/// What the VFS of a mount of `spec` is told.
pub fn vfs_options(spec: &MountSpec) -> Result<VfsOptions, ManagerError> {
    Ok(VfsOptions {
        read_only: spec.read_only,
        attr_ttl: seconds("attr-ttl", spec.attr_ttl_secs)?,
        dir_ttl: seconds("dir-ttl", spec.dir_ttl_secs)?,
        op_timeout: seconds("op-timeout", spec.op_timeout_secs)?,
        write_back: spec.write_back,
        ..VfsOptions::default()
    })
}

/// The FUSE side of a mount of `spec`.
pub fn fuse_config(spec: &MountSpec) -> MountConfig {
    MountConfig {
        allow_other: spec.allow_other,
        default_permissions: spec.default_permissions,
        no_default_permissions: spec.no_default_permissions,
        fuse_options: spec.fuse_options.clone(),
        allow_non_empty: spec.allow_non_empty,
        debug: spec.debug,
        fs_name: Some(spec.connect.source.clone()),
        unmount_guard: None,
    }
}

/// What of the link's remote a mount shows.
#[derive(Clone, Debug)]
enum Tree {
    /// All of it: the agent was started on the mount's root.
    Whole,
    /// One tree of a remote that serves `/` (a connection mounts share):
    /// absolute, or relative to the agent's working directory.
    Under(Vec<u8>),
}

/// Why a mount could not be built. The VFS's and the frontend's errors
/// are shown as they are; the caller adds which mount it was.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The tree to mount cannot be served: missing, not a directory, or
    /// the remote's answer.
    #[error("{reason}")]
    Tree { reason: String },
    #[error(transparent)]
    Vfs(#[from] VfsError),
    #[error(transparent)]
    Journal(#[from] DiskJournalError),
    /// The connection went for good while replaying what a process that
    /// ended left in the journal; the journal stays for the next mount.
    #[error("replaying write-back journal {path}: {source}; it is kept for the next mount")]
    Replay {
        path: String,
        #[source]
        source: VfsError,
    },
    #[error(transparent)]
    Frontend(#[from] FrontendError),
}

/// A mount put together and served.
pub struct BuiltMount {
    pub handle: Box<dyn MountHandle>,
    /// The mount's root on the remote host, canonical, for a mount of one
    /// tree of a shared connection.
    pub root: Option<Vec<u8>>,
    /// What was replayed from a journal a process that ended left, said
    /// for the user (also logged).
    pub replayed: Option<String>,
}

/// Puts a mount together: see the module documentation. Made from the
/// request before anything connects (so that a request it cannot serve is
/// refused at once), then started over a link.
pub struct MountBuilder {
    tree: Tree,
    vfs: VfsOptions,
    /// Where the VFS keeps writes acknowledged and not yet confirmed:
    /// given, or else on disk in `journal_dir` with write-back, or else in
    /// memory.
    journal: Option<Arc<dyn Journal>>,
    journal_dir: Option<PathBuf>,
    /// With write-back the journal is on disk; without, a journal left
    /// on disk by a process that died is still replayed first.
    write_back: bool,
    /// The source as the user named it: with the mount point, it names
    /// the mount's journal.
    source: String,
    frontend: Box<dyn Frontend>,
}

impl MountBuilder {
    /// A mount of all of a link's remote, as `spec` asks; refuses what
    /// the VFS or the frontend does not take. A FUSE mount tells
    /// `unmount_guard` of itself.
    pub fn new(
        spec: &MountSpec,
        unmount_guard: Option<Arc<UnmountGuard>>,
    ) -> Result<MountBuilder, ManagerError> {
        let vfs = vfs_options(spec)?;
        Ok(Self::assemble(spec, vfs, frontend_for(spec, unmount_guard)?))
    }

    fn assemble(spec: &MountSpec, vfs: VfsOptions, frontend: Box<dyn Frontend>) -> MountBuilder {
        MountBuilder {
            tree: Tree::Whole,
            vfs,
            journal: None,
            journal_dir: spec.write_back_cache.clone().or_else(default_journal_dir),
            write_back: spec.write_back,
            source: spec.connect.source.clone(),
            frontend,
        }
    }

    /// Keeps the mount's unconfirmed writes in `journal` instead of in
    /// memory (a durable journal survives the process).
    pub fn journal(mut self, journal: Arc<dyn Journal>) -> MountBuilder {
        self.journal = Some(journal);
        self
    }

    /// A mount as `spec` asks, served by `frontend` whatever frontend the
    /// request names (`yonder serve-nfs`, which only serves).
    pub fn with_frontend(
        spec: &MountSpec,
        frontend: Box<dyn Frontend>,
    ) -> Result<MountBuilder, ManagerError> {
        Ok(Self::assemble(spec, vfs_options(spec)?, frontend))
    }

    /// Mounts only `tree` of a remote that serves `/`, through a
    /// [`Scoped`] view that follows the tree onto each new connection.
    pub fn under(mut self, tree: &[u8]) -> MountBuilder {
        self.tree = Tree::Under(tree.to_vec());
        self
    }

    /// Builds the VFS on `link`'s current connection, has it follow the
    /// link onto each new one, and starts the frontend at `mountpoint`.
    /// Returns once the mount is usable. Runs on a tokio runtime, which
    /// serves the mount from then on.
    pub async fn start(self, link: &Link, mountpoint: &Path) -> Result<BuiltMount, MountError> {
        let (generation, remote) = link.current();
        let (remote, root): (Arc<dyn Remote>, _) = match &self.tree {
            Tree::Whole => (remote, None),
            Tree::Under(tree) => {
                let scoped = Scoped::resolve(remote, tree).await.map_err(|e| {
                    let reason = match e.errno() {
                        Errno::ENOTDIR => "not a directory".to_string(),
                        Errno::ENOENT => {
                            format!("no directory {} on the remote", String::from_utf8_lossy(tree))
                        }
                        _ => e.to_string(),
                    };
                    MountError::Tree { reason }
                })?;
                let root = scoped.root_bytes();
                (Arc::new(scoped), Some(root))
            }
        };
        // Opened before anything is served: what a process that ended
        // left in it is replayed first.
        let (journal, durable, left): (Arc<dyn Journal>, _, _) = match (self.journal, &self.journal_dir) {
            (Some(journal), _) => (journal, None, Vec::new()),
            (None, Some(dir)) if self.write_back => {
                let (name, holder) = journal_name(&self.source, mountpoint);
                let (disk, left) = DiskJournal::open(dir, &name, JOURNAL_SYNC, &holder)?;
                let disk = Arc::new(disk);
                (disk.clone(), Some(disk), left)
            }
            (None, Some(dir)) => {
                // Write-back off now, on when the process died: its journal
                // is replayed all the same, then goes.
                let (name, holder) = journal_name(&self.source, mountpoint);
                let left_behind = dir.join(format!("{name}.journal"));
                let memory: Arc<dyn Journal> = Arc::new(MemoryJournal::default());
                if left_behind.exists() {
                    let (disk, left) = DiskJournal::open(dir, &name, JOURNAL_SYNC, &holder)?;
                    (memory, Some(Arc::new(disk)), left)
                } else {
                    (memory, None, Vec::new())
                }
            }
            (None, None) => (Arc::new(MemoryJournal::default()), None, Vec::new()),
        };
        let vfs = Vfs::new(remote, self.vfs, journal).await?;
        let watch = link.watch();
        // Changes the remote pushes keep the caches honest for long.
        match &root {
            None => vfs.follow_changes(link.changes()),
            Some(tree) => vfs.follow_changes(link.changes().under(tree)),
        };
        match root.clone() {
            None => vfs.follow(watch, generation, |remote| remote),
            // Each new connection through a new scoped view of the same tree.
            Some(tree) => vfs.follow(watch, generation, move |remote| {
                Arc::new(Scoped::new(remote, &tree))
            }),
        };
        let replayed = match durable {
            Some(disk) if !left.is_empty() => Some(replay(&vfs, &disk, left).await?),
            _ => None,
        };
        let runtime = tokio::runtime::Handle::current();
        let at = mountpoint.to_path_buf();
        let frontend = self.frontend;
        // Starting waits for the kernel (or the frontend's clients): off
        // the runtime's threads.
        let handle = tokio::task::spawn_blocking(move || frontend.start(vfs, runtime, &at))
            .await
            .map_err(FrontendError::new)??;
        Ok(BuiltMount {
            handle,
            root,
            replayed,
        })
    }
}

/// Replays what a process that ended left in `disk`, then drops it from
/// the journal; returns what to tell the user.
async fn replay(
    vfs: &Vfs,
    disk: &DiskJournal,
    left: Vec<(yonder_vfs::Seq, yonder_vfs::Entry)>,
) -> Result<String, MountError> {
    let path = disk.path().display().to_string();
    let count = left.len();
    tracing::info!("write-back journal {path}: replaying {count} operations a yonder process that ended left unconfirmed");
    let recovered = vfs
        .replay_journal(left)
        .await
        .map_err(|source| MountError::Replay {
            path: path.clone(),
            source,
        })?;
    disk.replayed();
    let mut said = format!(
        "replayed {} operations a yonder process that ended had acknowledged and not delivered (journal {path})",
        recovered.replayed
    );
    if !recovered.failed.is_empty() {
        said.push_str(&format!(
            "; {} refused by the remote: {}",
            recovered.failed.len(),
            recovered.failed.join("; ")
        ));
    }
    if recovered.orphaned > 0 {
        said.push_str(&format!(
            "; {} writes to files deleted before the crash had nowhere to go",
            recovered.orphaned
        ));
    }
    if recovered.failed.is_empty() {
        tracing::info!("{said}");
    } else {
        tracing::warn!("{said}");
    }
    Ok(said)
}

/// `${XDG_CACHE_HOME:-~/.cache}/yonder`.
fn default_journal_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("yonder"))
}

/// The journal's name for a mount of `source` at `mountpoint` (the same
/// pair finds it again), and the line that says whose it is.
fn journal_name(source: &str, mountpoint: &Path) -> (String, String) {
    use sha2::Digest as _;
    let at = std::fs::canonicalize(mountpoint)
        .or_else(|_| std::path::absolute(mountpoint))
        .unwrap_or_else(|_| mountpoint.to_path_buf());
    let mut hash = sha2::Sha256::new();
    hash.update(source.as_bytes());
    hash.update([0]);
    hash.update(at.as_os_str().as_encoded_bytes());
    let hex: String = hash.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
    (format!("mount-{hex}"), format!("{source} at {}", at.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ConnectSpec;
    use std::time::Duration;

    fn spec(frontend: &str) -> MountSpec {
        MountSpec {
            connect: ConnectSpec {
                source: "me@host:/data".into(),
                ..Default::default()
            },
            mountpoint: "/mnt/data".into(),
            read_only: true,
            attr_ttl_secs: 2.5,
            dir_ttl_secs: 7.0,
            allow_other: true,
            default_permissions: false,
            no_default_permissions: true,
            allow_non_empty: true,
            fuse_options: vec!["noexec".into()],
            debug: false,
            op_timeout_secs: 3.0,
            frontend: frontend.into(),
            write_back: false,
            write_back_cache: None,
        }
    }

    #[test]
    fn the_vfs_gets_what_the_request_asks_without_the_frontend() {
        let options = vfs_options(&spec("fuse")).unwrap();
        assert!(options.read_only);
        assert_eq!(options.attr_ttl, Duration::from_millis(2500));
        assert_eq!(options.dir_ttl, Duration::from_secs(7));
        assert_eq!(options.op_timeout, Duration::from_secs(3));
        let mut bad = spec("fuse");
        bad.dir_ttl_secs = -1.0;
        let err = vfs_options(&bad).unwrap_err().to_string();
        assert!(err.contains("--dir-ttl"), "{err}");
    }

    #[test]
    fn the_request_names_its_frontend() {
        assert_eq!(frontend_for(&spec("fuse"), None).unwrap().name(), "fuse");
        let err = frontend_for(&spec("carrier-pigeon"), None)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(err, "mount me@host:/data: no frontend \"carrier-pigeon\"");
        let mut bad = spec("fuse");
        bad.fuse_options = vec!["reconnect".into()];
        let err = frontend_for(&bad, None).err().unwrap().to_string();
        assert!(err.starts_with("mount option reconnect:"), "{err}");
        let fuse = fuse_config(&spec("fuse"));
        assert!(fuse.allows_other() && !fuse.kernel_checks_permissions());
        assert_eq!(fuse.fs_name.as_deref(), Some("me@host:/data"));
    }

    #[test]
    fn an_nfs_request_is_refused_at_once_where_nothing_can_mount_it() {
        match frontend_for(&spec("nfs"), None) {
            Ok(frontend) => {
                assert!(yonder_nfs::nfs_mount_possible());
                assert_eq!(frontend.name(), "nfs");
            }
            Err(e) => {
                assert!(!yonder_nfs::nfs_mount_possible());
                let e = e.to_string();
                assert!(
                    e.contains("/mnt/data") && e.ends_with("mount with --backend fuse"),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn a_request_without_a_frontend_is_served_by_fuse() {
        let mut json = serde_json::to_value(spec("fuse")).unwrap();
        json.as_object_mut().unwrap().remove("frontend");
        let spec: MountSpec = serde_json::from_value(json).unwrap();
        assert_eq!(spec.frontend, "fuse");
    }
}
