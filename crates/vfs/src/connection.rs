//! The VFS's one way to the remote: a connection that a reconnecting
//! layer can replace under a running mount.
//!
//! Remote handles belong to the connection that opened them. Each open file
//! remembers the connection generation of its handle; the first use after
//! a replacement reopens the file by path on the new connection, checking
//! that the path still names the same file (see `Vfs::handle_of`).

use std::sync::{Arc, RwLock};
use yonder_remote::Remote;

/// Which connection a remote handle was opened on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generation(pub u64);

pub struct Connection {
    current: RwLock<(Arc<dyn Remote>, Generation)>,
}

impl Connection {
    pub fn new(remote: Arc<dyn Remote>) -> Connection {
        Connection {
            current: RwLock::new((remote, Generation(0))),
        }
    }

    /// The remote to send the next request to.
    pub fn remote(&self) -> Arc<dyn Remote> {
        self.get().0
    }

    pub fn get(&self) -> (Arc<dyn Remote>, Generation) {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        (current.0.clone(), current.1)
    }

    /// Puts `remote` in place of the current connection; handles opened on
    /// the old one are reopened as they are next used.
    pub fn replace(&self, remote: Arc<dyn Remote>) -> Generation {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let next = Generation(current.1 .0 + 1);
        *current = (remote, next);
        next
    }
}
