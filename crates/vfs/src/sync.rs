//! The one way the VFS's parts take their `std` mutexes.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`. A panic while holding one of the VFS's locks leaves
/// consistent-enough data: every critical section is a handful of map
/// operations.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
