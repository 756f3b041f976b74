//! Where the manager's socket, lock and log live, and the checks that keep
//! other users out of them.
//!
//! - socket: `$XDG_RUNTIME_DIR/yonder/manager.sock`, or without
//!   `XDG_RUNTIME_DIR`, `/tmp/yonder-<uid>/manager.sock`. The directory is
//!   created with mode 0700 and refused when it belongs to another user, is
//!   a symlink, or is open to others (group or other bits set): whoever can
//!   write there could put their own socket in the manager's place. The
//!   socket itself is 0600, and the manager checks every peer's uid.
//! - lock: `manager.lock` beside the socket, held (flock) by the running
//!   manager: a socket file without a lock holder is stale.
//! - log: `$XDG_STATE_HOME/yonder/manager.log`, or
//!   `~/.local/state/yonder/manager.log`.
//!
//! `YONDER_MANAGER_SOCKET` names the socket directly (tests, debugging);
//! its directory is then taken as it is, unchecked.
//!
//! On Windows the socket is a named pipe, `\\.\pipe\yonder-manager-USER`
//! (see `control_socket.rs`), and the lock and log are in
//! `%LOCALAPPDATA%\yonder`, the user's own profile: no directory to check.

use crate::ManagerError;
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub socket: PathBuf,
    pub lock: PathBuf,
    pub log: PathBuf,
    /// The socket's directory is the user's own, checked before use.
    checked_dir: bool,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

impl Paths {
    /// The paths for this user, from the environment.
    #[cfg(unix)]
    pub fn from_env() -> Paths {
        let uid = rustix::process::getuid().as_raw();
        let (socket, checked_dir) = match env_path("YONDER_MANAGER_SOCKET") {
            Some(socket) => (socket, false),
            None => {
                let dir = match env_path("XDG_RUNTIME_DIR") {
                    Some(runtime) => runtime.join("yonder"),
                    None => PathBuf::from(format!("/tmp/yonder-{uid}")),
                };
                (dir.join("manager.sock"), true)
            }
        };
        let lock = socket.with_file_name("manager.lock");
        let state = env_path("XDG_STATE_HOME")
            .or_else(|| env_path("HOME").map(|home| home.join(".local/state")))
            .unwrap_or_else(|| PathBuf::from(format!("/tmp/yonder-{uid}")));
        Paths {
            socket,
            lock,
            log: state.join("yonder").join("manager.log"),
            checked_dir,
        }
    }

    /// The paths for this user, from the environment.
    #[cfg(windows)]
    pub fn from_env() -> Paths {
        let user = std::env::var("USERNAME").unwrap_or_default();
        let socket = env_path("YONDER_MANAGER_SOCKET")
            .unwrap_or_else(|| PathBuf::from(format!(r"\\.\pipe\yonder-manager-{user}")));
        let state = env_path("LOCALAPPDATA")
            .unwrap_or_else(std::env::temp_dir)
            .join("yonder");
        Paths {
            socket,
            lock: state.join("manager.lock"),
            log: state.join("manager.log"),
            checked_dir: false,
        }
    }

    /// Whether a manager listens (on Unix: whether its socket file is
    /// still there).
    pub fn manager_listening(&self) -> bool {
        crate::control_socket::exists(&self.socket)
    }

    /// The socket's directory.
    pub fn dir(&self) -> &Path {
        self.socket.parent().unwrap_or(Path::new("/"))
    }

    /// Creates the socket's directory (0700) if missing, and checks that it
    /// is this user's own and closed to others.
    pub fn prepare_dir(&self) -> Result<(), ManagerError> {
        // The pipe has no directory; the lock's is the user's profile's.
        #[cfg(windows)]
        if let Some(dir) = self.lock.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|source| ManagerError::io("create directory", dir, source))?;
        }
        if !self.checked_dir {
            return Ok(());
        }
        #[cfg(unix)]
        self.create_dir()?;
        self.check_dir()
    }

    #[cfg(unix)]
    fn create_dir(&self) -> Result<(), ManagerError> {
        let dir = self.dir();
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // $XDG_RUNTIME_DIR itself is missing: make it too, as 0700.
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .recursive(true)
                    .create(dir)
                    .map_err(|source| ManagerError::io("create directory", dir, source))?;
            }
            Err(source) => return Err(ManagerError::io("create directory", dir, source)),
        }
        Ok(())
    }

    /// Checks the socket's directory without creating it.
    pub fn check_dir(&self) -> Result<(), ManagerError> {
        if !self.checked_dir {
            return Ok(());
        }
        #[cfg(unix)]
        return self.check_owner_only();
        #[cfg(windows)]
        return Ok(());
    }

    /// The directory is this user's, and closed to others.
    #[cfg(unix)]
    fn check_owner_only(&self) -> Result<(), ManagerError> {
        let dir = self.dir();
        let meta = std::fs::symlink_metadata(dir)
            .map_err(|source| ManagerError::io("inspect directory", dir, source))?;
        let uid = rustix::process::getuid().as_raw();
        let unsafe_dir = |reason: String| ManagerError::UnsafeDirectory {
            path: dir.to_path_buf(),
            reason,
        };
        if meta.file_type().is_symlink() || !meta.is_dir() {
            return Err(unsafe_dir("not a directory (a symlink or a file)".into()));
        }
        if meta.uid() != uid {
            return Err(unsafe_dir(format!(
                "owned by uid {}, not by this user (uid {uid})",
                meta.uid()
            )));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(unsafe_dir(format!(
                "mode {mode:04o} lets other users in (it must be 0700)"
            )));
        }
        Ok(())
    }
}

// Unix modes and owners of the socket's directory.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn paths_in(dir: &Path) -> Paths {
        Paths {
            socket: dir.join("manager.sock"),
            lock: dir.join("manager.lock"),
            log: dir.join("manager.log"),
            checked_dir: true,
        }
    }

    #[test]
    fn the_socket_directory_is_created_private_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = paths_in(&tmp.path().join("run/yonder"));
        paths.prepare_dir().unwrap();
        let mode = std::fs::metadata(paths.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(paths.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = paths.prepare_dir().unwrap_err().to_string();
        assert!(err.contains("0755") && err.contains("must be 0700"), "{err}");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(paths.dir(), &link).unwrap();
        let err = paths_in(&link).check_dir().unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
    }
}
