//! Opening a name whose file was replaced under the kernel's feet.
//!
//! The kernel resolves a name to an inode, then opens the inode; the remote
//! is path based, so yonder opens the inode by its name. When the name was
//! given to another file in between (an atomic save: a temp file renamed
//! over it), the open fails with ESTALE and the kernel looks the name up
//! once more, then opens again. That second lookup and open are two remote
//! calls; a save landing between them would fail the open again, and this
//! time the application sees ESTALE. So the lookup that follows a stale
//! open opens the file itself, and the open that follows takes that handle:
//! lookup and open see one and the same file, old or new, whole.
//!
//! A handle opened ahead counts as an open of its inode, so that the
//! kernel letting go of the inode in between (it does, when the lookup's
//! answer replaces its cached entry) does not drop the inode.

use crate::attr::Ino;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use yonder_proto::{Attr, Handle};

/// How long a stale open's name is looked up by opening it, and how long a
/// handle opened ahead waits for the open that follows.
pub(crate) const REOPEN_WINDOW: Duration = Duration::from_secs(2);

/// A file opened by a lookup, for the open that follows it.
pub(crate) struct Preopened {
    /// Who looked it up, under which name: that caller's next lookup of
    /// the name answers this file, even if the name moved on meanwhile.
    pid: u32,
    parent: Ino,
    name: Vec<u8>,
    pub handle: Handle,
    pub attr: Attr,
    pub head: Vec<u8>,
    at: Instant,
}

/// Several readers may retry the same name at once: each stale open is
/// counted, each one earns its own lookup by opening, and each open that
/// follows takes one handle.
#[derive(Default)]
pub(crate) struct ReopenAhead {
    /// Names whose opens came back stale: how many retries are due, and
    /// when the last was marked.
    stale: HashMap<(Ino, Vec<u8>), (u32, Instant)>,
    opened: HashMap<Ino, Vec<Preopened>>,
}

impl ReopenAhead {
    pub fn mark_stale(&mut self, parent: Ino, name: &[u8], now: Instant) {
        self.stale
            .retain(|_, (_, at)| now.duration_since(*at) < REOPEN_WINDOW);
        let due = self.stale.entry((parent, name.to_vec())).or_insert((0, now));
        *due = (due.0 + 1, now);
    }

    pub fn is_stale(&self, parent: Ino, name: &[u8], now: Instant) -> bool {
        // The common case, nothing stale, costs no allocation.
        !self.stale.is_empty()
            && self
                .stale
                .get(&(parent, name.to_vec()))
                .is_some_and(|(_, at)| now.duration_since(*at) < REOPEN_WINDOW)
    }

    /// Counts off one retry of `parent/name`.
    pub fn clear_stale(&mut self, parent: Ino, name: &[u8]) {
        let key = (parent, name.to_vec());
        if let Some((due, _)) = self.stale.get_mut(&key) {
            *due -= 1;
            if *due == 0 {
                self.stale.remove(&key);
            }
        }
    }

    /// Keeps a handle opened ahead for `ino`, which `pid` looked up as
    /// `parent/name`.
    pub fn keep(
        &mut self,
        ino: Ino,
        pid: u32,
        (parent, name): (Ino, &[u8]),
        opened: (Handle, Attr, Vec<u8>),
        now: Instant,
    ) {
        let (handle, attr, head) = opened;
        self.opened.entry(ino).or_default().push(Preopened {
            pid,
            parent,
            name: name.to_vec(),
            handle,
            attr,
            head,
            at: now,
        });
    }

    /// The file `pid` has opened ahead under `parent/name`, if any: the
    /// kernel looks a name up twice on its retry (once to revalidate,
    /// once afresh), and both answers must be the file opened for it.
    pub fn looked_up_by(&self, pid: u32, parent: Ino, name: &[u8], now: Instant) -> Option<Ino> {
        self.opened.iter().find_map(|(ino, waiting)| {
            waiting
                .iter()
                .any(|p| {
                    p.pid == pid
                        && p.parent == parent
                        && p.name == name
                        && now.duration_since(p.at) < REOPEN_WINDOW
                })
                .then_some(*ino)
        })
    }

    /// The handle `pid` opened ahead for `ino`, if one is waiting. Only
    /// its own: another reader's open of the same file goes by path, and
    /// must not take the handle this one's retry depends on.
    pub fn take(&mut self, ino: Ino, pid: u32, now: Instant) -> Option<Preopened> {
        let waiting = self.opened.get_mut(&ino)?;
        let pos = waiting
            .iter()
            .position(|p| p.pid == pid && now.duration_since(p.at) < REOPEN_WINDOW)?;
        let opened = waiting.remove(pos);
        if waiting.is_empty() {
            self.opened.remove(&ino);
        }
        Some(opened)
    }

    /// Handles nobody came for in time, to be closed, with their inodes.
    pub fn expired(&mut self, now: Instant) -> Vec<(Ino, Handle)> {
        let mut expired = Vec::new();
        self.opened.retain(|ino, waiting| {
            waiting.retain(|p| {
                let old = now.duration_since(p.at) >= REOPEN_WINDOW;
                if old {
                    expired.push((*ino, p.handle));
                }
                !old
            });
            !waiting.is_empty()
        });
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_names_and_handles_opened_ahead_expire() {
        let mut r = ReopenAhead::default();
        let t0 = Instant::now();
        assert!(!r.is_stale(1, b"doc", t0));
        r.mark_stale(1, b"doc", t0);
        r.mark_stale(1, b"doc", t0);
        assert!(r.is_stale(1, b"doc", t0));
        assert!(!r.is_stale(1, b"other", t0));
        assert!(!r.is_stale(1, b"doc", t0 + REOPEN_WINDOW));
        r.clear_stale(1, b"doc");
        assert!(r.is_stale(1, b"doc", t0), "two readers, two retries");
        r.clear_stale(1, b"doc");
        assert!(!r.is_stale(1, b"doc", t0));

        let opened = |h| (h, Attr::default(), Vec::new());
        r.keep(7, 100, (1, b"doc"), opened(70), t0);
        r.keep(7, 200, (1, b"doc"), opened(71), t0);
        assert_eq!(r.looked_up_by(200, 1, b"doc", t0), Some(7));
        assert_eq!(r.looked_up_by(300, 1, b"doc", t0), None);
        assert_eq!(r.take(7, 200, t0).map(|p| p.handle), Some(71), "the caller's own");
        assert!(r.take(7, 200, t0).is_none(), "never another's");
        assert_eq!(r.take(7, 100, t0).map(|p| p.handle), Some(70));
        r.keep(8, 100, (1, b"x"), opened(80), t0);
        assert!(r.take(8, 100, t0 + REOPEN_WINDOW).is_none());
        assert_eq!(r.expired(t0 + REOPEN_WINDOW), vec![(8, 80)]);
    }
}
