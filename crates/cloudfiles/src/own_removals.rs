//! Items the engine itself is removing from the sync root because the
//! remote no longer has them. Should the OS tell the provider of its own
//! delete (NOTIFY_DELETE), it must be agreed to without touching the
//! remote, where the name may by then be another file's.

use crate::item_path::ItemPath;
use std::collections::HashSet;
use std::sync::Mutex;

#[derive(Default)]
pub struct OwnRemovals {
    removing: Mutex<HashSet<ItemPath>>,
}

impl OwnRemovals {
    pub fn start(&self, path: &ItemPath) {
        self.lock().insert(path.clone());
    }

    pub fn end(&self, path: &ItemPath) {
        self.lock().remove(path);
    }

    /// Whether `path` is, or lies below, an item being removed.
    pub fn covers(&self, path: &ItemPath) -> bool {
        self.lock().iter().any(|removing| path.is_within(removing))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<ItemPath>> {
        self.removing.lock().unwrap_or_else(|p| p.into_inner())
    }
}
