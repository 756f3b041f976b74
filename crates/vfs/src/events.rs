//! What happened to a mount's connection and files, for a manager's
//! event stream: the parts that notice report here.

use crate::attr::Ino;
use tokio::sync::broadcast;

/// What happened to a mount's connection and files that a manager may
/// report (`Vfs::events`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VfsEvent {
    /// A new connection is up; the writes the old one had not confirmed
    /// were replayed on it first (`failed` of them could not be).
    Reconnected {
        generation: u64,
        replayed: usize,
        failed: usize,
    },
    /// An open file could not be reopened on a new connection: it was
    /// deleted meanwhile (or unlinked while open), or its name now names
    /// another file. Its descriptors answer ESTALE; nothing else is
    /// affected.
    HandleLost { ino: Ino, path: String },
    /// A write the agent had not confirmed could not be replayed; the
    /// writer gets the error at its next write, flush or fsync.
    WriteLost { ino: Ino, path: String, error: String },
    /// A metadata operation acknowledged ahead of the remote (create,
    /// mkdir, symlink, unlink, rmdir, setattr) was refused by it; the
    /// error is also reported at the file's next close or fsync and at the
    /// next sync of the mount.
    MetadataFailed {
        ino: Ino,
        op: &'static str,
        path: String,
        error: String,
    },
    /// Written data acknowledged ahead of the remote (buffered, or sent
    /// without waiting) was refused by it (a full disk, a quota); the
    /// writer gets the error at its next write, flush (close) or fsync.
    WriteFailed { ino: Ino, path: String, error: String },
    /// Whether the remote pushes its changes from now on (then what is
    /// cached is trusted for the TTLs as configured; otherwise for at most
    /// `VfsOptions::unwatched_ttl`), and why. Sent when it changes.
    ChangesPushed { active: bool, reason: String },
}

/// Where the parts report [`VfsEvent`]s; each subscriber gets them all.
#[derive(Clone)]
pub(crate) struct Events {
    sender: broadcast::Sender<VfsEvent>,
}

impl Events {
    pub fn new() -> Events {
        Events {
            sender: broadcast::channel(64).0,
        }
    }

    pub fn emit(&self, event: VfsEvent) {
        // Nobody listening is fine.
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<VfsEvent> {
        self.sender.subscribe()
    }
}
