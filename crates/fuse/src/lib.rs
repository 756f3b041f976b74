//! FUSE frontend of yonder: mounts a [`yonder_vfs::Vfs`] over a
//! [`yonder_remote::Remote`] with the kernel's FUSE driver (through `fuser`,
//! mounting with `fusermount3`, no libfuse needed).
//!
//! Kernel requests are read by one session thread and each is run as a task
//! on the given tokio runtime, replying when the VFS call completes.
//!
//! Blocking functions here ([`mount`], [`MountSession::unmount`],
//! [`run_foreground`]) must not be called from a thread that drives the
//! runtime (e.g. inside `block_on`); call them from a plain thread.

mod convert;
mod fs;

use fuser::{MountOption, SessionACL, SessionUnmounter};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::runtime::Handle;
use yonder_remote::Remote;
use yonder_vfs::{Vfs, VfsError, VfsOptions};

/// How to mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    pub read_only: bool,
    /// How long the kernel (and the VFS) trust attributes.
    pub attr_ttl: Duration,
    /// How long the kernel (and the VFS) trust names.
    pub dir_ttl: Duration,
    /// Let users other than the mounting one use the mount (needs
    /// `user_allow_other` in /etc/fuse.conf for non-root mounters); the
    /// kernel then checks their permissions (see `default_permissions`).
    pub allow_other: bool,
    /// Let the kernel check permissions from file modes and ACLs; without
    /// it every user who may use the mount acts with the remote agent's
    /// rights. Implied by `allow_other` unless `no_default_permissions`.
    pub default_permissions: bool,
    /// With `allow_other`, leave the kernel's permission checks off: every
    /// local user then acts with the remote agent's rights.
    pub no_default_permissions: bool,
    /// Extra `-o` options, as for mount(8) (`noexec`, `nosuid`, `fsname=`...).
    pub fuse_options: Vec<String>,
    /// Mount over a non-empty directory, hiding its contents.
    pub allow_non_empty: bool,
    /// Log every request.
    pub debug: bool,
    /// Source shown in the mount table, e.g. `user@host:/path`.
    pub fs_name: Option<String>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            read_only: false,
            attr_ttl: Duration::from_secs(10),
            dir_ttl: Duration::from_secs(10),
            allow_other: false,
            default_permissions: false,
            no_default_permissions: false,
            fuse_options: Vec::new(),
            allow_non_empty: false,
            debug: false,
            fs_name: None,
        }
    }
}

impl MountOptions {
    fn has_fuse_option(&self, name: &str) -> bool {
        self.fuse_options
            .iter()
            .any(|o| o.split(',').any(|o| o.trim() == name))
    }

    /// Whether users other than the mounting one (and root) may use the mount.
    pub fn allows_other(&self) -> bool {
        self.allow_other || self.has_fuse_option("allow_other")
    }

    /// Whether the kernel checks each caller's permissions (mount option
    /// `default_permissions`). Without the checks the agent acts with its
    /// own rights for whoever asks, which is only right for a mount used by
    /// one user: a mount other users may use checks unless told not to.
    pub fn kernel_checks_permissions(&self) -> bool {
        self.default_permissions
            || self.has_fuse_option("default_permissions")
            || (self.allows_other() && !self.no_default_permissions)
    }

    /// VFS options matching these mount options.
    pub fn vfs_options(&self) -> VfsOptions {
        VfsOptions {
            read_only: self.read_only,
            attr_ttl: self.attr_ttl,
            dir_ttl: self.dir_ttl,
            ..VfsOptions::default()
        }
    }
}

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
pub(crate) fn block_on<T: Send + 'static>(rt: &Handle, fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .expect("runtime shut down while a mount operation was running")
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

fn parse_option(opt: &str) -> Option<MountOption> {
    Some(match opt {
        "" => return None,
        "ro" => MountOption::RO,
        "rw" => MountOption::RW,
        "dev" => MountOption::Dev,
        "nodev" => MountOption::NoDev,
        "suid" => MountOption::Suid,
        "nosuid" => MountOption::NoSuid,
        "exec" => MountOption::Exec,
        "noexec" => MountOption::NoExec,
        "atime" => MountOption::Atime,
        "noatime" => MountOption::NoAtime,
        "sync" => MountOption::Sync,
        "async" => MountOption::Async,
        "dirsync" => MountOption::DirSync,
        "default_permissions" => MountOption::DefaultPermissions,
        // Handled through the session ACL.
        "allow_other" | "allow_root" | "auto_unmount" => return None,
        o if o.starts_with("fsname=") => MountOption::FSName(o["fsname=".len()..].to_string()),
        o if o.starts_with("subtype=") => MountOption::Subtype(o["subtype=".len()..].to_string()),
        o => MountOption::CUSTOM(o.to_string()),
    })
}

/// Whether fusermount3 will accept `allow_other` from this user.
fn may_allow_other() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    root || std::fs::read_to_string("/etc/fuse.conf")
        .map(|s| s.lines().any(|l| l.trim() == "user_allow_other"))
        .unwrap_or(false)
}

fn fuser_config(opts: &MountOptions) -> fuser::Config {
    let mut mount_options = vec![
        MountOption::FSName(opts.fs_name.clone().unwrap_or_else(|| "yonder".to_string())),
        MountOption::Subtype("yonder".to_string()),
    ];
    if opts.read_only {
        mount_options.push(MountOption::RO);
    }
    if opts.kernel_checks_permissions() {
        mount_options.push(MountOption::DefaultPermissions);
    }
    for opt in opts.fuse_options.iter().flat_map(|o| o.split(',')) {
        if let Some(o) = parse_option(opt.trim()) {
            if !mount_options.contains(&o) {
                mount_options.push(o);
            }
        }
    }
    let allow_other = opts.allows_other();
    let mut config = fuser::Config::default();
    // fusermount3 only unmounts automatically (when this process dies) with
    // allow_other or allow_root; allow_root is enforced by fuser itself.
    config.acl = if allow_other {
        SessionACL::All
    } else if may_allow_other() {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    if config.acl != SessionACL::Owner {
        mount_options.push(MountOption::AutoUnmount);
    } else {
        tracing::info!("not unmounting automatically on exit: needs user_allow_other in /etc/fuse.conf");
    }
    config.mount_options = mount_options;
    config
}

/// A mounted file system, served by a background thread until unmounted.
/// Dropping it unmounts.
pub struct MountSession {
    vfs: Arc<Vfs>,
    rt: Handle,
    mountpoint: PathBuf,
    unmounter: Option<SessionUnmounter>,
    thread: Option<JoinHandle<io::Result<()>>>,
    wake_tx: mpsc::Sender<Wake>,
    wake_rx: mpsc::Receiver<Wake>,
}

enum Wake {
    Ended,
    Signal(&'static str),
}

/// Mounts `remote` at `mountpoint`. Requests are served on `runtime`.
pub fn mount(
    remote: Arc<dyn Remote>,
    runtime: Handle,
    mountpoint: &Path,
    opts: &MountOptions,
) -> Result<MountSession, FuseError> {
    let vfs_opts = opts.vfs_options();
    let vfs = block_on(&runtime, async move { Vfs::new(remote, vfs_opts).await })?;
    mount_vfs(vfs, runtime, mountpoint, opts)
}

/// Mounts an existing VFS (e.g. one built with non-default [`VfsOptions`]).
pub fn mount_vfs(
    vfs: Arc<Vfs>,
    runtime: Handle,
    mountpoint: &Path,
    opts: &MountOptions,
) -> Result<MountSession, FuseError> {
    check_mountpoint(mountpoint, opts.allow_non_empty)?;
    let mountpoint = mountpoint.canonicalize().map_err(|e| FuseError::MountPoint {
        path: mountpoint.to_path_buf(),
        reason: e.to_string(),
    })?;
    let notifier = Arc::new(OnceLock::new());
    let fs = fs::FuseFs {
        vfs: vfs.clone(),
        rt: runtime.clone(),
        attr_ttl: opts.attr_ttl,
        entry_ttl: opts.dir_ttl,
        debug: opts.debug,
        want_kernel_acls: opts.kernel_checks_permissions(),
        kernel_acls: false,
        notifier: notifier.clone(),
    };
    let config = fuser_config(opts);
    tracing::debug!("mounting {} with {:?}", mountpoint.display(), config);
    let mut session = fuser::Session::new(fs, &mountpoint, &config).map_err(|source| FuseError::Mount {
        path: mountpoint.clone(),
        source,
    })?;
    // Set before the session thread serves its first request.
    let _ = notifier.set(session.notifier());
    let unmounter = session.unmount_callable();
    let (wake_tx, wake_rx) = mpsc::channel();
    let ended = wake_tx.clone();
    let thread = std::thread::Builder::new()
        .name("yonder-fuse".into())
        .spawn(move || {
            let result = session.run();
            let _ = ended.send(Wake::Ended);
            result
        })
        .map_err(|source| FuseError::Session {
            path: mountpoint.clone(),
            source,
        })?;
    raise_readahead(&mountpoint, fs::max_io_size() / 1024);
    tracing::info!("mounted {}", mountpoint.display());
    Ok(MountSession {
        vfs,
        rt: runtime,
        mountpoint,
        unmounter: Some(unmounter),
        thread: Some(thread),
        wake_tx,
        wake_rx,
    })
}

impl MountSession {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    pub fn vfs(&self) -> &Arc<Vfs> {
        &self.vfs
    }

    /// Sends buffered writes, unmounts and waits for the session to end.
    /// Files still open keep working until closed (the unmount is lazy).
    pub fn unmount(mut self) -> Result<(), FuseError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), FuseError> {
        let (detached, thread) = self.detach();
        let joined = match thread {
            Some(thread) => self.join_thread(thread),
            None => Ok(()),
        };
        detached.and(joined)
    }

    /// Sends buffered writes and detaches the mount (lazily, so files still
    /// open keep working until closed). Returns the session thread, which
    /// ends once the kernel lets go of the mount.
    fn detach(&mut self) -> (Result<(), FuseError>, Option<JoinHandle<io::Result<()>>>) {
        let Some(thread) = self.thread.take() else {
            return (Ok(()), None);
        };
        let vfs = self.vfs.clone();
        if let Err(e) = block_on(&self.rt, async move { vfs.flush_all().await }) {
            tracing::warn!("before unmounting: {e}");
        }
        let mut result = Ok(());
        if !thread.is_finished() {
            // Unmount explicitly: fusermount3's auto-unmount watcher only acts
            // once this process stops serving, not when its socket closes.
            result = unmount(&self.mountpoint, true);
        }
        // Releases fuser's handle on the mount (and the watcher's socket).
        drop(self.unmounter.take());
        (result, Some(thread))
    }

    fn join_thread(&self, thread: JoinHandle<io::Result<()>>) -> Result<(), FuseError> {
        match thread.join() {
            Ok(Ok(())) => Ok(()),
            // When the last user of a lazily unmounted file system lets go,
            // the kernel tears the connection down and the session's read
            // may report ECONNABORTED rather than ENODEV: the end of an
            // unmount all the same.
            Ok(Err(source))
                if source.raw_os_error() == Some(libc::ECONNABORTED)
                    && is_mount_point(&self.mountpoint) == Some(false) =>
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

    /// Waits until the file system is unmounted from outside
    /// (`yonder unmount`, `fusermount3 -u`).
    pub fn join(mut self) -> Result<(), FuseError> {
        match self.thread.take() {
            Some(thread) => self.join_thread(thread),
            None => Ok(()),
        }
    }

    /// Serves until unmounted from outside, or until SIGINT, SIGTERM or
    /// SIGHUP, which flush buffered writes and unmount.
    pub fn run_until_signal(mut self) -> Result<(), FuseError> {
        let tx = self.wake_tx.clone();
        let watcher = self.rt.spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                tracing::warn!("cannot watch for signals");
                return;
            };
            loop {
                let name = tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                    _ = hup.recv() => "SIGHUP",
                };
                if tx.send(Wake::Signal(name)).is_err() {
                    return;
                }
            }
        });
        let result = self.serve_until_signal();
        watcher.abort();
        result
    }

    fn serve_until_signal(&mut self) -> Result<(), FuseError> {
        match self.wake_rx.recv() {
            Ok(Wake::Signal(name)) => {
                tracing::info!("{name}: unmounting {}", self.mountpoint.display());
                let (detached, thread) = self.detach();
                let Some(thread) = thread else { return detached };
                if !thread.is_finished() {
                    tracing::warn!(
                        "files under {} are still open; serving them until they are closed \
                         (send {name} again to stop now)",
                        self.mountpoint.display()
                    );
                }
                // The session ends when the last open file is closed; a
                // second signal stops waiting, so no one is held forever.
                loop {
                    if thread.is_finished() {
                        return detached.and(self.join_thread(thread));
                    }
                    match self.wake_rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(Wake::Signal(again)) => {
                            tracing::warn!("{again}: stopping with files still open under the mount");
                            return detached;
                        }
                        Ok(Wake::Ended) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return detached,
                    }
                }
            }
            Ok(Wake::Ended) | Err(_) => {
                tracing::info!("{} was unmounted", self.mountpoint.display());
                match self.thread.take() {
                    Some(thread) => self.join_thread(thread),
                    None => Ok(()),
                }
            }
        }
    }
}

impl Drop for MountSession {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("{e}");
        }
    }
}

/// Mounts and serves in the foreground until unmounted or signalled: the
/// whole of `yonder mount` after connecting.
pub fn run_foreground(
    remote: Arc<dyn Remote>,
    runtime: Handle,
    mountpoint: &Path,
    opts: &MountOptions,
) -> Result<(), FuseError> {
    mount(remote, runtime, mountpoint, opts)?.run_until_signal()
}

/// Unmounts a yonder (or any FUSE) mount by path, as `yonder unmount` does;
/// `lazy` detaches it even while busy.
pub fn unmount(mountpoint: &Path, lazy: bool) -> Result<(), FuseError> {
    // fusermount3 says nothing useful about this case (and -q silences it).
    if is_mount_point(mountpoint) == Some(false) {
        return Err(FuseError::Unmount {
            path: mountpoint.to_path_buf(),
            reason: "not mounted".into(),
        });
    }
    let mut last = String::new();
    for tool in ["fusermount3", "fusermount"] {
        let mut cmd = std::process::Command::new(tool);
        cmd.arg("-u").arg("-q");
        if lazy {
            cmd.arg("-z");
        }
        match cmd.arg("--").arg(mountpoint).output() {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => {
                last = String::from_utf8_lossy(&out.stderr).trim().to_string();
                if last.is_empty() {
                    last = format!("{tool} exited with {}", out.status);
                }
                break;
            }
            Err(e) => last = format!("{tool}: {e}"),
        }
    }
    Err(FuseError::Unmount {
        path: mountpoint.to_path_buf(),
        reason: last,
    })
}

/// Whether `path` is a mount point (`None` if the mount table cannot be
/// read). Not by stat: a dead FUSE mount answers ENOTCONN.
fn is_mount_point(path: &Path) -> Option<bool> {
    mount_entry(path).ok().map(|entry| entry.is_some())
}

/// The /proc/self/mountinfo line of the mount at `path` (the topmost, if
/// several are stacked there).
fn mount_entry(path: &Path) -> io::Result<Option<String>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    // The path as given (made absolute) and with its directory resolved, as
    // fusermount3 would; mountinfo escapes space, tab, newline, backslash.
    let absolute = std::path::absolute(path)?;
    let resolved = match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => dir
            .canonicalize()
            .map(|d| d.join(name))
            .unwrap_or_else(|_| absolute.clone()),
        _ => absolute.clone(),
    };
    let escape = |p: &Path| {
        p.to_string_lossy()
            .replace('\\', "\\134")
            .replace(' ', "\\040")
            .replace('\t', "\\011")
            .replace('\n', "\\012")
    };
    let candidates = [escape(&absolute), escape(&resolved)];
    Ok(info
        .lines()
        .rev()
        .find(|line| {
            line.split(' ')
                .nth(4)
                .is_some_and(|mount_point| candidates.iter().any(|c| c == mount_point))
        })
        .map(str::to_string))
}

/// The kernel offers FUSE mounts a 128 KiB readahead window and lets the
/// file system only lower it at init; sequential reads then arrive as
/// 128 KiB requests. Root may widen the window through sysfs afterwards, to
/// the largest request size (wider windows measured slower). Found through
/// /proc/self/mountinfo, not stat, which would ask this very mount before
/// it serves.
fn raise_readahead(mountpoint: &Path, kib: u32) {
    let Ok(Some(entry)) = mount_entry(mountpoint) else {
        return;
    };
    let Some(dev) = entry.split(' ').nth(2) else {
        return;
    };
    let knob = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    if let Err(e) = std::fs::write(&knob, kib.to_string()) {
        tracing::debug!("readahead stays at the kernel's default ({knob}: {e})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_users_get_permission_checks_unless_told_not_to() {
        let opts = |allow_other, fuse_options: &[&str], no_default_permissions| MountOptions {
            allow_other,
            no_default_permissions,
            fuse_options: fuse_options.iter().map(|o| o.to_string()).collect(),
            ..MountOptions::default()
        };
        let checks = |o: &MountOptions| {
            let config = fuser_config(o);
            let on = config.mount_options.contains(&MountOption::DefaultPermissions);
            assert_eq!(on, o.kernel_checks_permissions());
            on
        };
        assert!(
            !checks(&opts(false, &[], false)),
            "a single-user mount leaves checks to the remote"
        );
        assert!(checks(&opts(true, &[], false)));
        assert!(checks(&opts(false, &["noexec,allow_other"], false)));
        assert!(!checks(&opts(true, &[], true)));
        assert!(!checks(&opts(false, &["allow_other"], true)));
        assert!(checks(&opts(false, &["default_permissions"], false)));
    }

    #[test]
    fn mount_points_are_found_in_the_mount_table() {
        assert_eq!(is_mount_point(Path::new("/proc")), Some(true));
        assert_eq!(is_mount_point(Path::new("/proc/../proc")), Some(true));
        let dir = tempfile::tempdir().unwrap();
        let spaced = dir.path().join("a b");
        std::fs::create_dir(&spaced).unwrap();
        assert_eq!(is_mount_point(&spaced), Some(false));
        let err = unmount(&spaced, false).unwrap_err();
        assert!(err.to_string().contains("not mounted"), "{err}");
    }
}
