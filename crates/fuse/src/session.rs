//! [`Mounted`]: one mounted file system and the thread serving it, from
//! mount to unmount. Holds no process-wide state, so one process may run
//! many mounts at once; signals and the like are the caller's business
//! (and so is the unmount guard, which each mount is told of).

use crate::config::{may_allow_other, MountConfig};
use crate::mount_table::{
    device_is_mounted, fusermount_unmount, is_mount_point, mount_entry, raise_readahead,
};
use crate::{fs, try_block_on, FuseError};
use fuser::MountOption;
use std::future::Future;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use tokio::runtime::Handle;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use yonder_vfs::frontend::{FrontendError, MountHandle, MountStatus};
use yonder_vfs::Vfs;

/// A mounted file system, served by a thread of its own until the kernel
/// lets go of it (after [`Mounted::unmount`], an unmount from outside such
/// as `yonder unmount`, or the end of the process).
///
/// Dropping a `Mounted` that is still mounted sends its buffered writes and
/// detaches it lazily, without waiting: files still open are served until
/// closed.
///
/// The blocking methods ([`start`](Mounted::start), [`flush`](Mounted::flush),
/// [`unmount`](Mounted::unmount), [`wait`](Mounted::wait), and dropping)
/// must not run on a thread that drives the runtime (inside a task or
/// `block_on`): call them from a plain thread or `spawn_blocking`.
pub struct Mounted {
    vfs: Arc<Vfs>,
    rt: Handle,
    mountpoint: PathBuf,
    /// The mount's device (`major:minor` in the mount table): tells this
    /// mount from another at the same path, and is gone from the table
    /// once it is unmounted, even lazily. Looked for at the mount point
    /// only: once unmounted, the number goes to the next FUSE mount.
    device: Option<String>,
    thread: Mutex<Option<JoinHandle<io::Result<()>>>>,
    /// Turns true when the session thread ends.
    ended: watch::Receiver<bool>,
    /// Unmounted through this handle.
    detached: AtomicBool,
    /// Drops the kernel's caches after each new connection.
    revalidate: tokio::task::JoinHandle<()>,
    /// Told of the mount, and of its unmount through this handle.
    guard: Option<Arc<crate::UnmountGuard>>,
}

/// Marks the session ended when the session thread finishes, panics included.
struct EndGuard(watch::Sender<bool>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl Mounted {
    /// Mounts `vfs` at `mountpoint` (an existing directory, empty unless
    /// `config.allow_non_empty`) and serves it from a new thread; each
    /// request runs as a task on `runtime`. Returns once the kernel has
    /// initialised the mount: it is usable at once.
    pub fn start(
        vfs: Arc<Vfs>,
        runtime: Handle,
        mountpoint: &Path,
        config: &MountConfig,
    ) -> Result<Mounted, FuseError> {
        check_mountpoint(mountpoint, config.allow_non_empty)?;
        let mountpoint = mountpoint.canonicalize().map_err(|e| FuseError::MountPoint {
            path: mountpoint.to_path_buf(),
            reason: e.to_string(),
        })?;
        let notifier = Arc::new(OnceLock::new());
        let options = vfs.options();
        let fs = fs::FuseFs {
            vfs: vfs.clone(),
            rt: runtime.clone(),
            debug: config.debug,
            want_kernel_acls: config.kernel_checks_permissions(),
            kernel_acls: false,
            notifier: notifier.clone(),
        };
        let fuser_config = config.fuser_config(options.read_only, may_allow_other());
        if !fuser_config.mount_options.contains(&MountOption::AutoUnmount) {
            tracing::info!("not unmounting automatically on exit: needs user_allow_other in /etc/fuse.conf");
        }
        tracing::debug!("mounting {} with {:?}", mountpoint.display(), fuser_config);
        let session =
            fuser::Session::new(fs, &mountpoint, &fuser_config).map_err(|source| FuseError::Mount {
                path: mountpoint.clone(),
                source,
            })?;
        // Set before the session thread serves its first request.
        let _ = notifier.set(session.notifier());
        match crate::caches::KernelCaches::start(session.notifier()) {
            Ok(caches) => vfs.set_frontend_caches(Arc::new(caches)),
            Err(source) => {
                return Err(FuseError::Session {
                    path: mountpoint.clone(),
                    source,
                })
            }
        }
        // Just mounted and initialised: the topmost mount there is this one.
        let device = match mount_entry(&mountpoint) {
            Ok(entry) => entry.and_then(|e| e.device().map(str::to_string)),
            Err(e) => {
                tracing::debug!("mount table: {e}");
                None
            }
        };
        let (ended_tx, ended) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("yonder-fuse".into())
            .spawn(move || {
                let _ended = EndGuard(ended_tx);
                session.run()
            })
            .map_err(|source| FuseError::Session {
                path: mountpoint.clone(),
                source,
            })?;
        if let Some(device) = &device {
            raise_readahead(device, fs::max_io_size() / 1024);
        }
        let guard = config.unmount_guard.clone();
        if let (Some(guard), Some(device)) = (&guard, &device) {
            guard.watch(&mountpoint, device);
        }
        let revalidate = runtime.spawn(revalidate_after_reconnecting(Arc::downgrade(&vfs), notifier));
        tracing::info!("mounted {}", mountpoint.display());
        Ok(Mounted {
            vfs,
            rt: runtime,
            mountpoint,
            device,
            thread: Mutex::new(Some(thread)),
            ended,
            detached: AtomicBool::new(false),
            revalidate,
            guard,
        })
    }

    /// The mount point, canonical.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    pub fn vfs(&self) -> &Arc<Vfs> {
        &self.vfs
    }

    /// Sends every buffered write to the remote, for files still open too.
    pub fn flush(&self) -> Result<(), FuseError> {
        let vfs = self.vfs.clone();
        try_block_on(&self.rt, async move { vfs.flush_all().await })
            .map_err(|source| FuseError::Session {
                path: self.mountpoint.clone(),
                source,
            })?
            .map_err(FuseError::Remote)
    }

    /// Unmounts. `lazy` detaches the mount at once even while files are
    /// open, and the session serves them until they are closed; otherwise a
    /// busy mount is refused (EBUSY) and stays. Does not flush (see
    /// [`flush`](Mounted::flush)) or wait for the session to end (see
    /// [`wait`](Mounted::wait), [`ended`](Mounted::ended)). A mount already
    /// gone from the mount table is not an error.
    pub fn unmount(&self, lazy: bool) -> Result<(), FuseError> {
        match self.in_mount_table() {
            Some(false) => {
                self.detached.store(true, Ordering::Relaxed);
                if let Some(guard) = &self.guard {
                    guard.release(&self.mountpoint);
                }
                return Ok(());
            }
            Some(true) => {
                // fusermount3 unmounts the topmost mount at the path.
                if let (Some(device), Ok(Some(top))) = (&self.device, mount_entry(&self.mountpoint)) {
                    if top.device() != Some(device.as_str()) {
                        return Err(FuseError::Unmount {
                            path: self.mountpoint.clone(),
                            reason: "another file system is mounted over it".into(),
                        });
                    }
                }
            }
            None => {}
        }
        fusermount_unmount(&self.mountpoint, lazy)?;
        self.detached.store(true, Ordering::Relaxed);
        if let Some(guard) = &self.guard {
            guard.release(&self.mountpoint);
        }
        tracing::debug!(
            "unmounted {}{}",
            self.mountpoint.display(),
            if lazy { " (lazily)" } else { "" }
        );
        Ok(())
    }

    /// Where the mount stands: still served, still in the mount table.
    pub fn status(&self) -> MountStatus {
        MountStatus {
            serving: !*self.ended.borrow(),
            in_mount_table: self.in_mount_table(),
        }
    }

    /// Resolves once the session has ended (the kernel let go of the
    /// mount). Independent of `self`: may be awaited anywhere, many times.
    pub fn ended(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut ended = self.ended.clone();
        async move {
            // An error means the sender is gone: ended as well.
            let _ = ended.wait_for(|ended| *ended).await;
        }
    }

    /// Waits until the session has ended, and returns how it ended.
    /// Returns at once if it was already waited for.
    pub fn wait(&self) -> Result<(), FuseError> {
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        let Some(handle) = thread.take() else {
            return Ok(());
        };
        match handle.join() {
            Ok(Ok(())) => Ok(()),
            // When the last user of a lazily unmounted file system lets go,
            // the kernel tears the connection down and the session's read
            // may report ECONNABORTED rather than ENODEV: the end of an
            // unmount all the same.
            Ok(Err(source))
                if source.raw_os_error() == Some(libc::ECONNABORTED)
                    && self.in_mount_table() == Some(false) =>
            {
                tracing::debug!(
                    "session on {} ended with the connection torn down",
                    self.mountpoint.display()
                );
                Ok(())
            }
            Ok(Err(source)) => Err(FuseError::Session {
                path: self.mountpoint.clone(),
                source,
            }),
            Err(_) => Err(FuseError::Session {
                path: self.mountpoint.clone(),
                source: io::Error::other("session thread panicked"),
            }),
        }
    }

    fn in_mount_table(&self) -> Option<bool> {
        match &self.device {
            Some(device) => device_is_mounted(device, &self.mountpoint),
            None => is_mount_point(&self.mountpoint),
        }
    }
}

/// What the manager and a foreground mount keep of a FUSE mount.
impl MountHandle for Mounted {
    fn frontend(&self) -> &'static str {
        crate::FRONTEND_NAME
    }

    fn mountpoint(&self) -> &Path {
        Mounted::mountpoint(self)
    }

    fn vfs(&self) -> &Arc<Vfs> {
        Mounted::vfs(self)
    }

    fn flush(&self) -> Result<(), FrontendError> {
        Mounted::flush(self).map_err(FrontendError::new)
    }

    fn unmount(&self, lazy: bool) -> Result<(), FrontendError> {
        Mounted::unmount(self, lazy).map_err(FrontendError::new)
    }

    fn status(&self) -> MountStatus {
        Mounted::status(self)
    }

    fn ended(&self) -> yonder_remote::BoxFuture<()> {
        Box::pin(Mounted::ended(self))
    }

    fn wait(&self) -> Result<(), FrontendError> {
        Mounted::wait(self).map_err(FrontendError::new)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.revalidate.abort();
        if self.detached.load(Ordering::Relaxed) {
            return;
        }
        if !*self.ended.borrow() {
            if let Err(e) = self.flush() {
                tracing::warn!("before unmounting: {e}");
            }
        }
        if self.in_mount_table() != Some(false) {
            if let Err(e) = self.unmount(true) {
                tracing::warn!("{e}");
            }
        }
    }
}

/// After each new connection (the VFS has expired its own caches), asks
/// the kernel to drop the attributes and names it cached: what changed on
/// the remote while the link was down shows at once, not after the TTLs.
/// Pages of open files go with them once the refreshed attributes show
/// another size or mtime (AUTO_INVAL_DATA).
async fn revalidate_after_reconnecting(vfs: std::sync::Weak<Vfs>, notifier: Arc<OnceLock<fuser::Notifier>>) {
    let Some(mut events) = vfs.upgrade().map(|v| v.events()) else {
        return;
    };
    loop {
        match events.recv().await {
            Ok(yonder_vfs::VfsEvent::Reconnected { .. }) | Err(RecvError::Lagged(_)) => {}
            Ok(_) => continue,
            Err(RecvError::Closed) => return,
        }
        let (Some(vfs), Some(notifier)) = (vfs.upgrade(), notifier.get().cloned()) else {
            return;
        };
        let (inodes, names) = (vfs.known_inodes(), vfs.known_names());
        drop(vfs);
        // Each notification is a write to the FUSE device that may wait for
        // a directory's lock: off the runtime's threads.
        let done = tokio::task::spawn_blocking(move || {
            for ino in inodes {
                let _ = notifier.inval_inode(fuser::INodeNo(ino.0), -1, 0);
            }
            for (parent, name) in names {
                let _ = notifier.inval_entry(fuser::INodeNo(parent.0), std::ffi::OsStr::from_bytes(&name));
            }
        });
        let _ = done.await;
    }
}

fn check_mountpoint(path: &Path, allow_non_empty: bool) -> Result<(), FuseError> {
    let meta = std::fs::metadata(path).map_err(|e| FuseError::MountPoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(FuseError::MountPoint {
            path: path.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    if !allow_non_empty {
        let mut entries = std::fs::read_dir(path).map_err(|e| FuseError::MountPoint {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if entries.next().is_some() {
            return Err(FuseError::NotEmpty {
                path: path.to_path_buf(),
            });
        }
    }
    Ok(())
}
