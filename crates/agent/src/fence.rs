//! Fencing: an agent a client has replaced makes no more changes.
//!
//! A client that loses an agent (a stopped process, a network cut) starts
//! another and sends again every write the old one never confirmed. The
//! old agent may still hold requests it read before it went quiet, or the
//! network may still deliver them once it heals; carried out after the
//! replay, and after newer writes, they would put old data back. So each
//! agent of a client's connection claims a file named after the
//! connection's session, holding the generation it serves (the client's
//! count of its connections). Before every change, an agent that claimed
//! it checks that the file is still the one it wrote; once a newer
//! generation has replaced it, the agent refuses every change (EIO).
//!
//! The file lives in `$XDG_RUNTIME_DIR/yonder`, else `/tmp/yonder-UID`, a
//! directory of the user's own (mode 0700): both agents run as the same
//! user on the same host, so they find the same one. The check costs one
//! `stat` per change. Fencing is a guard, not a lock: a change already
//! past its check when the claim lands still happens, and an agent that
//! cannot write the file serves unfenced (with a warning).

use rustix::fs::{Mode, OFlags};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Why a claim failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FenceError {
    #[error("connection generation {ours} is older than generation {theirs}, which holds {path}")]
    Superseded { ours: u64, theirs: u64, path: PathBuf },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing to use {}: {reason}", path.display())]
    Unsafe { path: PathBuf, reason: String },
}

/// The claim this agent holds, if any.
#[derive(Default)]
pub(crate) struct Fence {
    /// Where claims go; `None`: the user's runtime directory.
    dir: Option<PathBuf>,
    claim: Mutex<Option<Claim>>,
    /// Once replaced, for good: no more `stat`s.
    superseded: AtomicBool,
}

struct Claim {
    path: PathBuf,
    generation: u64,
    /// The file this agent wrote: replaced means another claim landed.
    identity: (u64, u64),
}

impl Fence {
    /// Claims go to `dir` rather than the user's runtime directory.
    pub(crate) fn in_dir(dir: PathBuf) -> Fence {
        Fence {
            dir: Some(dir),
            claim: Mutex::new(None),
            superseded: AtomicBool::new(false),
        }
    }

    /// Claims the place of connection `session` for `generation`; the
    /// directory the claim is in, where the session's other files go too.
    pub(crate) fn claim(&self, session: u64, generation: u64) -> Result<PathBuf, FenceError> {
        let dir = match &self.dir {
            Some(dir) => dir.clone(),
            None => runtime_dir()?,
        };
        self.claim_in(&dir, session, generation)?;
        Ok(dir)
    }

    pub(crate) fn claim_in(&self, dir: &Path, session: u64, generation: u64) -> Result<(), FenceError> {
        let path = dir.join(format!("fence-{session:016x}"));
        if let Some(theirs) = read_generation(&path)? {
            if theirs > generation {
                return Err(FenceError::Superseded {
                    ours: generation,
                    theirs,
                    path,
                });
            }
        }
        // Written aside and renamed over, so that a reader never sees half a
        // number and the file's identity changes with each claim.
        let temporary = dir.join(format!(".fence-{session:016x}-{}", std::process::id()));
        let io = |op, source| FenceError::Io {
            op,
            path: temporary.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(|e| io("create", e))?;
        file.write_all(generation.to_string().as_bytes())
            .map_err(|e| io("write", e))?;
        let meta = file.metadata().map_err(|e| io("stat", e))?;
        std::fs::rename(&temporary, &path).map_err(|e| io("rename", e))?;
        let previous = self
            .claim
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(Claim {
                path: path.clone(),
                generation,
                identity: (meta.dev(), meta.ino()),
            });
        // A second claim (another session) leaves no file of the first.
        if let Some(previous) = previous.filter(|p| p.path != path) {
            previous.release();
        }
        self.superseded.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Whether a newer connection of the same session has claimed the
    /// place since this agent did. An agent that never claimed is never
    /// superseded.
    pub(crate) fn superseded(&self) -> bool {
        if self.superseded.load(Ordering::Relaxed) {
            return true;
        }
        let claim = self.claim.lock().unwrap_or_else(|e| e.into_inner());
        let Some(claim) = claim.as_ref() else {
            return false;
        };
        let Ok(meta) = std::fs::metadata(&claim.path) else {
            // Removed (a cleaned /tmp): nobody newer claimed it.
            return false;
        };
        if (meta.dev(), meta.ino()) == claim.identity {
            return false;
        }
        let newer = matches!(read_generation(&claim.path), Ok(Some(theirs)) if theirs > claim.generation);
        if newer {
            tracing::warn!(
                "{}: a newer connection of this client took over; refusing every change from now on",
                claim.path.display()
            );
            self.superseded.store(true, Ordering::Relaxed);
        }
        newer
    }
}

impl Claim {
    /// Removes the claim's file, unless another claim took it over.
    fn release(self) {
        let ours = std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for Fence {
    /// The claim's file goes with its agent.
    fn drop(&mut self) {
        let claim = self.claim.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(claim) = claim.take() {
            claim.release();
        }
    }
}

/// The generation recorded in `path`; `None` if there is no such file.
fn read_generation(path: &Path) -> Result<Option<u64>, FenceError> {
    let mut text = String::new();
    match std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text)) {
        Ok(_) => Ok(text.trim().parse().ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FenceError::Io {
            op: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `$XDG_RUNTIME_DIR/yonder`, else `/tmp/yonder-UID`: made 0700 if
/// missing, and refused unless it is a directory of this user's that
/// nobody else may write to.
fn runtime_dir() -> Result<PathBuf, FenceError> {
    let uid = rustix::process::geteuid().as_raw();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("yonder"),
        None => PathBuf::from(format!("/tmp/yonder-{uid}")),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(FenceError::Io {
                op: "create",
                path: dir,
                source,
            })
        }
    }
    // Not followed: a symlink planted at the name is refused.
    let fd = rustix::fs::open(
        &dir,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FenceError::Unsafe {
        path: dir.clone(),
        reason: format!("not a directory of its own ({e})"),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| FenceError::Io {
        op: "stat",
        path: dir.clone(),
        source: e.into(),
    })?;
    if st.st_uid != uid {
        return Err(FenceError::Unsafe {
            path: dir,
            reason: format!("owned by uid {}, not {uid}", st.st_uid),
        });
    }
    if st.st_mode & 0o022 != 0 {
        return Err(FenceError::Unsafe {
            path: dir,
            reason: format!("others may write to it (mode {:o})", st.st_mode & 0o777),
        });
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_claim_supersedes_and_an_older_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (Fence::default(), Fence::default());
        assert!(!old.superseded(), "nothing claimed, nothing to check");
        old.claim_in(dir.path(), 7, 1).unwrap();
        assert!(!old.superseded());
        new.claim_in(dir.path(), 7, 2).unwrap();
        assert!(old.superseded());
        assert!(!new.superseded());
        // Another session is another file.
        let other = Fence::default();
        other.claim_in(dir.path(), 8, 1).unwrap();
        assert!(!other.superseded() && !new.superseded());
        // A late claim of an older generation does not take the place back.
        let late = Fence::default();
        let err = late.claim_in(dir.path(), 7, 1).unwrap_err();
        assert!(
            matches!(
                err,
                FenceError::Superseded {
                    ours: 1,
                    theirs: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!new.superseded());
    }

    #[test]
    fn the_file_goes_with_the_agent_that_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("fence-{:016x}", 7));
        let old = Fence::default();
        old.claim_in(dir.path(), 7, 1).unwrap();
        let new = Fence::default();
        new.claim_in(dir.path(), 7, 2).unwrap();
        drop(old);
        assert!(path.exists(), "the old agent leaves the newer claim alone");
        drop(new);
        assert!(!path.exists());
        // An agent that claims two sessions leaves neither file behind.
        let both = Fence::default();
        both.claim_in(dir.path(), 1, 1).unwrap();
        both.claim_in(dir.path(), 2, 1).unwrap();
        drop(both);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no temporary left"
        );
    }
}
