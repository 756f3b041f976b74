//! The VFS for frontends without opens or lookup counts: an NFSv3 server
//! is stateless. [`Exporter`] stands beside a [`Vfs`], using only its
//! public API, and belongs to such a frontend. Its clients hold file handles across server restarts and
//! send reads and writes addressed by handle alone, and lookups are never
//! forgotten. This module gives such a frontend:
//!
//! - [`FileHandle`]: a serializable handle (the mount's epoch and the
//!   inode). It resolves to the same file, renamed or not, for as long as
//!   the file exists, or to ESTALE: never to another file (inode numbers
//!   are not reused within a mount, and a handle from another mount has
//!   another epoch).
//! - Uncounted lookups ([`Vfs::lookup_uncounted`]).
//! - Reads, writes and commits by inode, through an internal cache of
//!   open handles that closes those left idle (as rclone's `serve nfs`
//!   keeps one).

use crate::attr::{Caller, Fh, Ino};
use crate::error::{Result, VfsError};
use crate::sync::lock;
use crate::vfs::Vfs;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use yonder_proto::{open_flags as of, Errno};

/// How long a handle the cache opened stays open unused, and how often
/// that is checked.
const IDLE: Duration = Duration::from_secs(5);
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// A file handle for a stateless frontend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileHandle {
    /// Which mount issued it: a handle from an earlier mount is stale.
    pub epoch: u64,
    pub ino: Ino,
}

impl FileHandle {
    pub const LEN: usize = 16;

    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[..8].copy_from_slice(&self.epoch.to_be_bytes());
        out[8..].copy_from_slice(&self.ino.0.to_be_bytes());
        out
    }

    /// `None` for bytes that are not a handle at all (wrong length).
    pub fn from_bytes(bytes: &[u8]) -> Option<FileHandle> {
        let bytes: &[u8; Self::LEN] = bytes.try_into().ok()?;
        Some(FileHandle {
            epoch: u64::from_be_bytes(bytes[..8].try_into().ok()?),
            ino: Ino(u64::from_be_bytes(bytes[8..].try_into().ok()?)),
        })
    }
}

/// Handles the cache holds open, by inode: the VFS handle, whether it was
/// opened for writing, and when it was last used.
#[derive(Default)]
struct OpenCache {
    open: HashMap<Ino, (Fh, bool, Instant)>,
    sweeping: bool,
}

/// A [`Vfs`] exported to a stateless frontend: serializable file handles,
/// and I/O by inode through a cache of open handles closed once idle.
pub struct Exporter {
    vfs: Arc<Vfs>,
    /// This export among all others: file handles carry it.
    epoch: u64,
    open_cache: Mutex<OpenCache>,
    /// For the task closing idle handles.
    me: Weak<Exporter>,
}

impl Exporter {
    pub fn new(vfs: Arc<Vfs>) -> Arc<Exporter> {
        Arc::new_cyclic(|me| Exporter {
            vfs,
            epoch: fresh_epoch(),
            open_cache: Mutex::default(),
            me: me.clone(),
        })
    }

    pub fn vfs(&self) -> &Arc<Vfs> {
        &self.vfs
    }

    /// The handle a stateless frontend gives out for `ino`; the inode is
    /// kept for as long as its file exists.
    pub fn file_handle(&self, ino: Ino) -> Result<FileHandle> {
        if !self.vfs.keep_exported(ino) {
            return Err(VfsError::new(
                "file handle",
                format!("<inode {ino}>"),
                Errno::ESTALE,
            ));
        }
        Ok(FileHandle {
            epoch: self.epoch,
            ino,
        })
    }

    /// The inode a handle names, or ESTALE: from another export, unknown,
    /// or its file deleted.
    pub fn resolve(&self, handle: &FileHandle) -> Result<Ino> {
        if handle.epoch != self.epoch || !self.vfs.is_reachable(handle.ino) {
            return Err(VfsError::new(
                "resolve",
                format!("<inode {}>", handle.ino),
                Errno::ESTALE,
            ));
        }
        Ok(handle.ino)
    }

    /// Reads `ino` without an open of the caller's.
    pub async fn read_ino(&self, caller: &Caller, ino: Ino, offset: u64, size: u32) -> Result<Bytes> {
        let fh = self.cached_handle(caller, ino, false).await?;
        self.vfs.read(fh, offset, size).await
    }

    /// Writes `ino` without an open of the caller's. Buffered like any
    /// write; [`Exporter::commit_ino`] makes it durable.
    pub async fn write_ino(&self, caller: &Caller, ino: Ino, offset: u64, data: &[u8]) -> Result<u32> {
        let fh = self.cached_handle(caller, ino, true).await?;
        self.vfs.write(fh, offset, data).await
    }

    /// Sends `ino`'s buffered writes and syncs them on the remote (NFS
    /// COMMIT); reports a write error of the cached handle.
    pub async fn commit_ino(&self, caller: &Caller, ino: Ino) -> Result<()> {
        let fh = self.cached_handle(caller, ino, true).await?;
        self.vfs.fsync(fh, false).await
    }

    /// An open handle of `ino` from the cache, opened if need be (for
    /// writing when `write`; a read-only one is reopened for writing).
    async fn cached_handle(&self, caller: &Caller, ino: Ino, write: bool) -> Result<Fh> {
        let now = Instant::now();
        let replaced = {
            let mut cache = lock(&self.open_cache);
            match cache.open.get_mut(&ino) {
                Some((fh, writable, used)) if *writable || !write => {
                    *used = now;
                    return Ok(*fh);
                }
                Some(_) => cache.open.remove(&ino).map(|(fh, _, _)| fh),
                None => None,
            }
        };
        if let Some(fh) = replaced {
            self.vfs.release(fh).await?;
        }
        let flags = if write { of::READ_WRITE } else { of::READ_ONLY };
        let (fh, _) = self.vfs.open(caller, ino, flags).await?;
        let (old, sweep) = {
            let mut cache = lock(&self.open_cache);
            let old = cache.open.insert(ino, (fh, write, now)).map(|(fh, _, _)| fh);
            let sweep = !std::mem::replace(&mut cache.sweeping, true);
            (old, sweep)
        };
        if let Some(old) = old {
            // Another call opened one meanwhile.
            self.vfs.release(old).await?;
        }
        if sweep {
            self.close_idle_later();
        }
        Ok(fh)
    }

    /// Closes cached handles left idle, until none is left.
    fn close_idle_later(&self) {
        let me = self.me.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(IDLE_CHECK).await;
                let Some(exporter) = me.upgrade() else { return };
                let now = Instant::now();
                let (idle, done) = {
                    let mut cache = lock(&exporter.open_cache);
                    let idle: Vec<_> = cache
                        .open
                        .iter()
                        .filter(|(_, (_, _, used))| now.duration_since(*used) >= IDLE)
                        .map(|(ino, (fh, _, _))| (*ino, *fh))
                        .collect();
                    for (ino, _) in &idle {
                        cache.open.remove(ino);
                    }
                    cache.sweeping = !cache.open.is_empty();
                    (idle, !cache.sweeping)
                };
                for (_, fh) in idle {
                    if let Err(e) = exporter.vfs.release(fh).await {
                        tracing::warn!("closing an idle handle: {e}");
                    }
                }
                if done {
                    return;
                }
            }
        });
    }
}

/// A number no other process (or export) is likely to have drawn: file
/// handles from an earlier mount must not resolve in this one, nor a
/// frontend's tokens from an earlier process in the next.
pub fn fresh_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_through_bytes() {
        let h = FileHandle {
            epoch: 0xdead_beef,
            ino: Ino(42),
        };
        assert_eq!(FileHandle::from_bytes(&h.to_bytes()), Some(h));
        assert_eq!(FileHandle::from_bytes(&[0; 15]), None);
    }
}
