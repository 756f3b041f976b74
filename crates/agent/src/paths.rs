//! The root sandbox: turns wire paths into host paths below the served root.
//!
//! Resolution is lexical. The client already resolved `..` against its own
//! view of the tree, so a `..` that climbs above the root can only come from
//! a confused or hostile peer and is refused rather than clamped.

use crate::AgentError;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why a wire path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathError {
    /// The path contains a NUL byte, which no system call can take.
    Nul,
    /// A `..` would leave the served root.
    Escapes,
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
    pub(crate) fn resolve(&self, wire: &[u8]) -> Result<PathBuf, PathError> {
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
        let mut path = self.path.clone();
        for part in parts {
            path.push(OsStr::from_bytes(part));
        }
        Ok(path)
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
            assert_eq!(root().resolve(wire).unwrap(), Path::new("/srv/root"), "{wire:?}");
        }
    }

    #[test]
    fn leading_slash_stays_inside() {
        assert_eq!(
            root().resolve(b"/etc/passwd").unwrap(),
            Path::new("/srv/root/etc/passwd")
        );
    }

    #[test]
    fn dot_dot_pops_lexically() {
        assert_eq!(
            root().resolve(b"a/./b/../c//d").unwrap(),
            Path::new("/srv/root/a/c/d")
        );
    }

    #[test]
    fn escapes_are_refused() {
        for wire in [&b".."[..], b"../x", b"a/../../x", b"/../x", b"a/b/../../.."] {
            assert_eq!(root().resolve(wire), Err(PathError::Escapes), "{wire:?}");
        }
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(root().resolve(b"a\0b"), Err(PathError::Nul));
    }

    #[test]
    fn non_utf8_names_survive() {
        let path = root().resolve(b"caf\xe9").unwrap();
        assert_eq!(path.as_os_str().as_bytes(), b"/srv/root/caf\xe9");
    }
}
