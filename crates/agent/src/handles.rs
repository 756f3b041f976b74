//! Open files, addressed by the handles given to the client.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex};
use yonder_proto::Handle;

pub(crate) struct OpenFile {
    pub file: File,
    /// Opened with O_APPEND: writes go through `write(2)` so they land at the
    /// end on every host, not just on Linux where `pwrite` appends anyway.
    pub append: bool,
}

/// Handles are never reused within a session, so a late request on a closed
/// handle fails with EBADF instead of reaching a newer file.
#[derive(Default)]
pub(crate) struct HandleTable {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    last: u64,
    files: HashMap<Handle, Arc<OpenFile>>,
}

impl HandleTable {
    pub(crate) fn insert(&self, file: OpenFile) -> Handle {
        let mut inner = self.lock();
        inner.last += 1;
        let handle = Handle(inner.last);
        inner.files.insert(handle, Arc::new(file));
        handle
    }

    /// The file stays open while the returned `Arc` lives, even if a
    /// concurrent `Close` removes the handle.
    pub(crate) fn get(&self, handle: Handle) -> Option<Arc<OpenFile>> {
        self.lock().files.get(&handle).cloned()
    }

    pub(crate) fn remove(&self, handle: Handle) -> Option<Arc<OpenFile>> {
        self.lock().files.remove(&handle)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().files.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every critical section is a single map operation).
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
