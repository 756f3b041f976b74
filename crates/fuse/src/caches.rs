//! [`KernelCaches`]: FUSE's side of the VFS's `FrontendCaches`, which
//! drops what the kernel cached (entries, attributes, listings kept with
//! FOPEN_CACHE_DIR) once the remote says it changed.
//!
//! Each notification is a write to the FUSE device that the kernel may
//! hold until it gets a lock (a directory's, for an entry) that a request
//! being served can hold: sent from inside a request handler it could
//! deadlock, and even from a runtime task it would stall others. So they
//! are sent from a thread of this mount's own, in order; the thread ends
//! with the VFS (the last sender).

use fuser::{INodeNo, Notifier};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::mpsc;
use yonder_vfs::frontend::{CacheDrop, FrontendCaches};

pub(crate) struct KernelCaches {
    drops: std::sync::Mutex<mpsc::Sender<Vec<CacheDrop>>>,
}

impl KernelCaches {
    /// Starts the thread that notifies the kernel through `notifier`.
    pub fn start(notifier: Notifier) -> std::io::Result<KernelCaches> {
        let (drops, pending) = mpsc::channel::<Vec<CacheDrop>>();
        std::thread::Builder::new()
            .name("yonder-fuse-inval".into())
            .spawn(move || {
                for batch in pending {
                    for drop in batch {
                        notify(&notifier, &drop);
                    }
                }
            })?;
        Ok(KernelCaches {
            drops: std::sync::Mutex::new(drops),
        })
    }
}

/// Tells the kernel; an inode or name it no longer holds is no error.
fn notify(notifier: &Notifier, drop: &CacheDrop) {
    let result = match drop {
        CacheDrop::Entry { parent, name } => notifier.inval_entry(INodeNo(parent.0), OsStr::from_bytes(name)),
        // A negative offset: attributes only. The pages go too once the
        // refreshed attributes show another size or mtime
        // (FUSE_AUTO_INVAL_DATA).
        CacheDrop::Attributes { ino } => notifier.inval_inode(INodeNo(ino.0), -1, 0),
        // From offset 0, all of it: a directory's pages are its cached
        // listing.
        CacheDrop::Listing { ino } => notifier.inval_inode(INodeNo(ino.0), 0, 0),
    };
    if let Err(e) = result {
        if e.raw_os_error() != Some(libc::ENOENT) {
            tracing::debug!("dropping the kernel's cache ({drop:?}): {e}");
        }
    }
}

impl FrontendCaches for KernelCaches {
    fn drop_cached(&self, drops: Vec<CacheDrop>) {
        let sender = self.drops.lock().unwrap_or_else(|e| e.into_inner());
        // Fails only once the mount's thread is gone, with the mount.
        let _ = sender.send(drops);
    }
}
