//! The root sandbox: turns wire paths into host paths below the served root.
//!
//! Resolution is lexical. The client already resolved `..` against its own
//! view of the tree, so a `..` that climbs above the root can only come from
//! a confused or hostile peer and is refused rather than clamped.

use crate::AgentError;
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Longest path the kernel takes in one system call, terminating NUL
/// included.
#[cfg(target_os = "linux")]
const PATH_MAX: usize = 4096;
/// How much of a long path one `openat` hop takes; well below PATH_MAX.
#[cfg(target_os = "linux")]
const HOP: usize = 2048;

/// A host path for one operation. Usually just the root joined with the
/// wire path; when that would exceed PATH_MAX (a client may legitimately
/// send a path just under PATH_MAX *relative to the root*), it is
/// `/proc/self/fd/N/rest`, where N is a directory opened hop by hop and
/// kept open for as long as this value lives. That detour needs Linux's
/// /proc: on other systems a path past their PATH_MAX is passed as it is and
/// the operation fails with the OS's ENAMETOOLONG, naming the path.
#[derive(Debug)]
pub(crate) struct HostPath {
    path: PathBuf,
    /// The root joined with the wire path, whatever its length: a stable
    /// name for the object, not for system calls.
    logical: PathBuf,
    _anchor: Option<OwnedFd>,
}

impl HostPath {
    pub(crate) fn logical(&self) -> &Path {
        &self.logical
    }
}

impl std::ops::Deref for HostPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for HostPath {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<OsStr> for HostPath {
    fn as_ref(&self) -> &OsStr {
        self.path.as_os_str()
    }
}

/// Why a wire path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathError {
    /// The path contains a NUL byte, which no system call can take.
    Nul,
    /// A `..` would leave the served root.
    Escapes,
    /// A directory on the way to a very long path could not be opened.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Walk(rustix::io::Errno),
}

/// The served directory, canonicalized once so that every resolved path is
/// absolute and independent of the agent's working directory.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    path: PathBuf,
}

impl Root {
    pub(crate) fn open(path: &Path) -> Result<Root, AgentError> {
        let canonical = std::fs::canonicalize(path).map_err(|source| AgentError::Root {
            path: path.to_path_buf(),
            source,
        })?;
        let meta = std::fs::metadata(&canonical).map_err(|source| AgentError::Root {
            path: path.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(AgentError::RootNotDirectory {
                path: path.to_path_buf(),
            });
        }
        Ok(Root { path: canonical })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Maps a wire path to a host path below the root. Empty, `.` and `/`
    /// all name the root itself.
    pub(crate) fn resolve(&self, wire: &[u8]) -> Result<HostPath, PathError> {
        if wire.contains(&0) {
            return Err(PathError::Nul);
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        for part in wire.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    parts.pop().ok_or(PathError::Escapes)?;
                }
                name => parts.push(name),
            }
        }
        let mut logical = self.path.clone();
        for part in &parts {
            logical.push(OsStr::from_bytes(part));
        }
        #[cfg(target_os = "linux")]
        if logical.as_os_str().len() >= PATH_MAX {
            let (path, anchor) = self.resolve_long(&parts)?;
            return Ok(HostPath {
                path,
                logical,
                _anchor: Some(anchor),
            });
        }
        Ok(HostPath {
            path: logical.clone(),
            logical,
            _anchor: None,
        })
    }

    /// Opens the directories of a long path in hops of at most [`HOP`]
    /// bytes, until what is left fits behind `/proc/self/fd/N/`. The last
    /// component is never opened here, so the operation itself still sees
    /// it (a symlink, a missing name) as it would with the whole path.
    #[cfg(target_os = "linux")]
    fn resolve_long(&self, parts: &[&[u8]]) -> Result<(PathBuf, OwnedFd), PathError> {
        use rustix::fs::{openat, Mode, OFlags, CWD};
        use std::os::fd::AsRawFd;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut anchor = openat(CWD, &self.path, flags, Mode::empty()).map_err(PathError::Walk)?;
        let mut next = 0;
        let rest_len = |from: usize| parts[from..].iter().map(|p| p.len() + 1).sum::<usize>();
        // "/proc/self/fd/" plus a descriptor number plus the rest.
        while 32 + rest_len(next) >= PATH_MAX && next + 1 < parts.len() {
            let mut hop = PathBuf::new();
            let mut len = 0;
            while next + 1 < parts.len() && (len == 0 || len + parts[next].len() < HOP) {
                hop.push(OsStr::from_bytes(parts[next]));
                len += parts[next].len() + 1;
                next += 1;
            }
            anchor = openat(&anchor, &hop, flags, Mode::empty()).map_err(PathError::Walk)?;
        }
        let mut path = PathBuf::from(format!("/proc/self/fd/{}", anchor.as_raw_fd()));
        for part in &parts[next..] {
            path.push(OsStr::from_bytes(part));
        }
        Ok((path, anchor))
    }
}

/// Renders a wire path for messages: lossy UTF-8, `.` for the root.
pub(crate) fn display(wire: &[u8]) -> String {
    if wire.is_empty() {
        ".".to_string()
    } else {
        String::from_utf8_lossy(wire).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Root {
        Root {
            path: PathBuf::from("/srv/root"),
        }
    }

    #[test]
    fn root_aliases() {
        for wire in [&b""[..], b".", b"/", b"//", b"./.", b"a/.."] {
            assert_eq!(
                &*root().resolve(wire).unwrap(),
                Path::new("/srv/root"),
                "{wire:?}"
            );
        }
    }

    #[test]
    fn leading_slash_stays_inside() {
        assert_eq!(
            &*root().resolve(b"/etc/passwd").unwrap(),
            Path::new("/srv/root/etc/passwd")
        );
    }

    #[test]
    fn dot_dot_pops_lexically() {
        assert_eq!(
            &*root().resolve(b"a/./b/../c//d").unwrap(),
            Path::new("/srv/root/a/c/d")
        );
    }

    #[test]
    fn escapes_are_refused() {
        for wire in [&b".."[..], b"../x", b"a/../../x", b"/../x", b"a/b/../../.."] {
            assert_eq!(root().resolve(wire).unwrap_err(), PathError::Escapes, "{wire:?}");
        }
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(root().resolve(b"a\0b").unwrap_err(), PathError::Nul);
    }

    #[test]
    fn non_utf8_names_survive() {
        let path = root().resolve(b"caf\xe9").unwrap();
        assert_eq!(path.as_os_str().as_bytes(), b"/srv/root/caf\xe9");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod long_path_tests {
    use super::*;

    #[test]
    fn paths_longer_than_path_max_below_the_root_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        // 40 levels of 100-byte names: 4,040 bytes relative to the root.
        let name = "d".repeat(99);
        let mut rel = PathBuf::new();
        for _ in 0..40 {
            rel.push(&name);
        }
        std::fs::create_dir_all(dir.path().join(&rel)).unwrap_or_else(|_| {
            // The test directory itself may push the absolute path past
            // PATH_MAX; create it hop by hop through the resolver instead.
            let mut partial = PathBuf::new();
            for _ in 0..40 {
                partial.push(&name);
                let host = root.resolve(partial.as_os_str().as_bytes()).unwrap();
                std::fs::create_dir(&*host).unwrap();
            }
        });
        let wire = rel.join("file");
        let host = root.resolve(wire.as_os_str().as_bytes()).unwrap();
        assert!(host.as_os_str().len() < PATH_MAX, "{}", host.display());
        std::fs::write(&*host, b"deep").unwrap();
        let again = root.resolve(wire.as_os_str().as_bytes()).unwrap();
        assert_eq!(std::fs::read(&*again).unwrap(), b"deep");
    }
}
