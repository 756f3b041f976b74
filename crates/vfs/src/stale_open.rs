//! The retry after a stale open: opening a name whose file was replaced
//! under the kernel's feet.
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
//! Which name the kernel opened the inode by is not known here: an inode
//! may have several (hard links, or a name a late answer about the remote
//! gave it), and the one the VFS would try first may not be the one the
//! kernel walked. So the stale open earns its caller, not a name, the
//! retry: the kernel retries at once, on the thread whose open failed, and
//! the first file that thread looks up next is the one it is opening.
//! Directories it passes on its way there are looked up as usual.
//!
//! A handle opened ahead counts as an open of its inode, so that the
//! kernel letting go of the inode in between (it does, when the lookup's
//! answer replaces its cached entry) does not drop the inode.

use crate::attr::{Caller, FileAttr, Ino};
use crate::calls::RemoteCalls;
use crate::connection::Generation;
use crate::error::{display_path, Result, VfsError};
use crate::namespace::Namespace;
use crate::open_files::{OpenFiles, OPEN_PREFETCH};
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};
use yonder_proto::{open_flags as of, Attr, Errno, Handle};
use yonder_remote::Remote;

/// How long a stale open's name is looked up by opening it, and how long a
/// handle opened ahead waits for the open that follows.
pub(crate) const RETRY_WINDOW: Duration = Duration::from_secs(2);

/// A file opened by a lookup, for the open that follows it.
pub(crate) struct Preopened {
    /// Who looked it up, under which name: that caller's next lookup of
    /// the name answers this file, even if the name moved on meanwhile.
    pid: u32,
    parent: Ino,
    name: Vec<u8>,
    /// The remote's handle, and the connection it was opened on.
    pub remote_handle: (Handle, Generation),
    pub attr: Attr,
    pub head: Vec<u8>,
    at: Instant,
}

/// Several readers may retry the same name at once. The kernel retries on
/// the thread whose open failed, so everything here is the caller's own:
/// its stale open earns its next lookup of a file an open, and only its
/// own open takes that handle.
#[derive(Default)]
struct OpenedAhead {
    /// Callers (thread ids) whose open came back stale, and when.
    stale: HashMap<u32, Instant>,
    opened: HashMap<Ino, Vec<Preopened>>,
}

impl OpenedAhead {
    pub fn mark_stale(&mut self, pid: u32, now: Instant) {
        self.stale.retain(|_, at| now.duration_since(*at) < RETRY_WINDOW);
        self.stale.insert(pid, now);
    }

    pub fn is_stale(&self, pid: u32, now: Instant) -> bool {
        self.stale
            .get(&pid)
            .is_some_and(|at| now.duration_since(*at) < RETRY_WINDOW)
    }

    pub fn clear_stale(&mut self, pid: u32) {
        self.stale.remove(&pid);
    }

    /// Keeps a handle opened ahead for `ino`, which `pid` looked up as
    /// `parent/name`.
    pub fn keep(
        &mut self,
        ino: Ino,
        pid: u32,
        (parent, name): (Ino, &[u8]),
        opened: ((Handle, Generation), Attr, Vec<u8>),
        now: Instant,
    ) {
        let (remote_handle, attr, head) = opened;
        self.opened.entry(ino).or_default().push(Preopened {
            pid,
            parent,
            name: name.to_vec(),
            remote_handle,
            attr,
            head,
            at: now,
        });
    }

    /// The file `pid` has opened ahead under `parent/name`, if any, with
    /// its attributes as opened: the kernel looks a name up twice on its
    /// retry (once to revalidate, once afresh), and both answers must be
    /// the file opened for it, as its handle has it (not what a late
    /// answer about the file, from before it was written, made of it).
    pub fn looked_up_by(&self, pid: u32, parent: Ino, name: &[u8], now: Instant) -> Option<(Ino, Attr)> {
        self.opened.iter().find_map(|(ino, waiting)| {
            waiting
                .iter()
                .find(|p| {
                    p.pid == pid
                        && p.parent == parent
                        && p.name == name
                        && now.duration_since(p.at) < RETRY_WINDOW
                })
                .map(|p| (*ino, p.attr))
        })
    }

    /// The handle `pid` opened ahead for `ino`, if one is waiting. Only
    /// its own: another reader's open of the same file goes by path, and
    /// must not take the handle this one's retry depends on.
    pub fn take(&mut self, ino: Ino, pid: u32, now: Instant) -> Option<Preopened> {
        let waiting = self.opened.get_mut(&ino)?;
        let pos = waiting
            .iter()
            .position(|p| p.pid == pid && now.duration_since(p.at) < RETRY_WINDOW)?;
        let opened = waiting.remove(pos);
        if waiting.is_empty() {
            self.opened.remove(&ino);
        }
        Some(opened)
    }

    /// Forgets every handle opened ahead (their connection was replaced)
    /// and every retry due.
    /// Returns the inodes of the handles dropped.
    pub fn clear(&mut self) -> Vec<Ino> {
        self.stale.clear();
        self.opened
            .drain()
            .flat_map(|(ino, waiting)| std::iter::repeat_n(ino, waiting.len()))
            .collect()
    }

    /// Handles nobody came for in time, to be closed, with their inodes.
    pub fn expired(&mut self, now: Instant) -> Vec<(Ino, (Handle, Generation))> {
        let mut expired = Vec::new();
        self.opened.retain(|ino, waiting| {
            waiting.retain(|p| {
                let old = now.duration_since(p.at) >= RETRY_WINDOW;
                if old {
                    expired.push((*ino, p.remote_handle));
                }
                !old
            });
            !waiting.is_empty()
        });
        expired
    }
}

/// What the retry has for a lookup of `parent/name` by a caller.
pub(crate) enum RetryFor {
    /// The caller opened the name ahead: its lookup answers that file.
    OpenedAhead(Ino, Attr),
    /// The caller's open came back stale: its lookup of a file opens it.
    Stale,
    Nothing,
}

/// The retry after a stale open: callers whose open came back stale, and
/// files opened ahead for the open that follows.
pub(crate) struct StaleOpenRetry {
    state: Mutex<OpenedAhead>,
    ns: Arc<Namespace>,
    calls: Arc<RemoteCalls>,
    files: Arc<OpenFiles>,
    runtime: tokio::runtime::Handle,
    /// For the task closing files opened ahead that nobody came for.
    me: Weak<StaleOpenRetry>,
}

impl StaleOpenRetry {
    pub fn new(
        ns: Arc<Namespace>,
        calls: Arc<RemoteCalls>,
        files: Arc<OpenFiles>,
        runtime: tokio::runtime::Handle,
    ) -> Arc<StaleOpenRetry> {
        Arc::new_cyclic(|me| StaleOpenRetry {
            state: Mutex::default(),
            ns,
            calls,
            files,
            runtime,
            me: me.clone(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, OpenedAhead> {
        lock(&self.state)
    }

    /// What a lookup of `parent/name` by `pid` is to answer. The common
    /// case, nothing pending, costs one lock and no allocation.
    pub fn for_lookup(&self, pid: u32, parent: Ino, name: &[u8], now: Instant) -> RetryFor {
        let state = self.state();
        if let Some((ino, attr)) = state.looked_up_by(pid, parent, name, now) {
            return RetryFor::OpenedAhead(ino, attr);
        }
        if state.is_stale(pid, now) {
            return RetryFor::Stale;
        }
        RetryFor::Nothing
    }

    /// Whether an open by `pid` came back stale just now.
    pub fn is_stale(&self, pid: u32, now: Instant) -> bool {
        self.state().is_stale(pid, now)
    }

    /// The handle `pid` opened ahead for `ino`, if one is waiting (it
    /// counts as an open of the inode, which the handle's own replaces).
    pub fn take(&self, ino: Ino, pid: u32, now: Instant) -> Option<Preopened> {
        self.state().take(ino, pid, now)
    }

    /// A new connection: handles opened ahead on the old one are gone, and
    /// with them the retries due. Their inodes' open counts are released.
    pub fn clear(&self) {
        let dropped = self.state().clear();
        let mut table = self.ns.table();
        for ino in dropped {
            table.open_dec(ino);
        }
    }

    /// The kernel's lookup after a stale open (see the module documentation): opens the
    /// name and keeps the handle for the open that follows, so that both
    /// see the same file. `None` if it cannot be opened for reading (then
    /// an ordinary lookup answers).
    ///
    /// The retry is spent once a name that is not a directory or a
    /// symlink is looked up: those the kernel's walk passes through on
    /// its way to the file it opens.
    pub async fn lookup_by_opening(
        &self,
        caller: &Caller,
        parent: Ino,
        name: &[u8],
        is_dirty: impl Fn(Ino) -> bool,
    ) -> Option<FileAttr> {
        if self.ns.table().names_a_directory(parent, name) {
            return None;
        }
        let opened = self.open_for_lookup(parent, name).await;
        let spent = match &opened {
            Ok((_, attr, _)) => !attr.is_dir(),
            Err(errno) => *errno != Errno::ELOOP,
        };
        if spent {
            self.state().clear_stale(caller.pid);
        }
        let ((remote, handle, generation), attr, head) = opened.ok()?;
        let fattr = {
            let mut table = self.ns.table();
            let fattr = table.upsert(parent, name, &attr, Instant::now());
            table.inc_lookup(fattr.ino, 1);
            fattr
        };
        if attr.is_file() && !is_dirty(fattr.ino) {
            self.ns.table().open_inc(fattr.ino);
            self.state().keep(
                fattr.ino,
                caller.pid,
                (parent, name),
                ((handle, generation), attr, head),
                Instant::now(),
            );
        } else {
            self.files.close_remote(remote, handle);
        }
        self.close_unclaimed_later();
        Some(fattr)
    }

    /// Opens `parent/name` for reading, for [`Self::lookup_by_opening`]:
    /// the handle and the connection it is on, the file's attributes and
    /// first bytes. An errno of `EAGAIN` stands for "not now" (no
    /// connection, or changes of the name on their way to the remote).
    async fn open_for_lookup(
        &self,
        parent: Ino,
        name: &[u8],
    ) -> std::result::Result<((Arc<dyn Remote>, Handle, Generation), Attr, Vec<u8>), Errno> {
        let path = self
            .ns
            .child_path("lookup", parent, name)
            .map_err(|e| e.errno())?;
        // Never follow a symlink (a lookup describes the link), never wait
        // on a FIFO.
        let flags = of::READ_ONLY | of::NOFOLLOW | of::NONBLOCK;
        // Only worth it now: a lookup waits for the connection itself.
        let (remote, generation) = self.calls.if_up().ok_or(Errno::EAGAIN)?;
        if !self.calls.order().is_quiet(&path) {
            // Acknowledged changes of the name have not reached the remote.
            return Err(Errno::EAGAIN);
        }
        let (handle, attr, head) = remote
            .open_read(&path, flags, OPEN_PREFETCH)
            .await
            .map_err(|e| e.errno())?;
        Ok(((remote, handle, generation), attr, head))
    }

    /// Closes, once their window has passed, files opened ahead that no
    /// open came for.
    fn close_unclaimed_later(&self) {
        let me = self.me.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(RETRY_WINDOW).await;
            let Some(retry) = me.upgrade() else { return };
            let expired = retry.state().expired(Instant::now());
            let (remote, current) = retry.calls.current();
            for (ino, (handle, opened_on)) in expired {
                retry.ns.table().open_dec(ino);
                if opened_on == current {
                    retry.files.close_remote(remote.clone(), handle);
                }
            }
        });
    }

    /// The path to open `ino` by. An inode with no name left (replaced by
    /// a rename, or deleted) cannot be opened by path: ESTALE, on which
    /// the kernel looks the name up afresh and opens what it names now, as
    /// a local open racing a rename would.
    pub fn openable_path(&self, ino: Ino, pid: u32) -> Result<Vec<u8>> {
        if let Some(path) = self.ns.table().path(ino) {
            return Ok(path);
        }
        self.state().mark_stale(pid, Instant::now());
        Err(VfsError::new("open", format!("<inode {ino}>"), Errno::ESTALE))
    }

    /// A failed remote open: a name that is gone on the remote is forgotten
    /// and reported stale, so the kernel looks it up again.
    pub fn open_failed(&self, ino: Ino, pid: u32, path: &[u8], err: VfsError) -> VfsError {
        if err.errno() != Errno::ENOENT {
            return err;
        }
        self.forget_name_of(ino, pid);
        VfsError::new("open", display_path(path), Errno::ESTALE)
    }

    /// Checks that a path opened for `ino` still named that file; if
    /// another file has the name by now, the handle is closed, the name
    /// forgotten, and the open fails with ESTALE (the kernel then looks the
    /// name up again): reading another file's data as this inode's would
    /// mix two files.
    pub fn check_opened(
        &self,
        ino: Ino,
        pid: u32,
        path: &[u8],
        remote: &Arc<dyn Remote>,
        remote_handle: yonder_proto::Handle,
        attr: &Attr,
    ) -> Result<()> {
        if self.ns.table().same_file(ino, attr) {
            return Ok(());
        }
        self.forget_name_of(ino, pid);
        self.files.close_remote(remote.clone(), remote_handle);
        Err(VfsError::new("open", display_path(path), Errno::ESTALE))
    }

    /// Forgets the name `ino` was opened by: the remote says it names
    /// something else now, or nothing. The caller's next lookup of a file
    /// opens it (see the module documentation), whichever name it is: the
    /// kernel may have reached `ino` by another of its names, or another
    /// open that raced this one may have forgotten the name already.
    pub fn forget_name_of(&self, ino: Ino, pid: u32) {
        self.ns.forget_name_of(ino);
        self.state().mark_stale(pid, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_callers_and_handles_opened_ahead_expire() {
        const P: Ino = Ino(1);
        const F: Ino = Ino(7);
        const G: Ino = Ino(8);
        let mut r = OpenedAhead::default();
        let t0 = Instant::now();
        assert!(!r.is_stale(100, t0));
        r.mark_stale(100, t0);
        r.mark_stale(200, t0);
        assert!(r.is_stale(100, t0));
        assert!(!r.is_stale(300, t0));
        assert!(!r.is_stale(100, t0 + RETRY_WINDOW));
        r.clear_stale(100);
        assert!(!r.is_stale(100, t0));
        assert!(r.is_stale(200, t0), "each reader its own retry");

        let opened = |h| ((Handle(h), Generation(0)), Attr::default(), Vec::new());
        r.keep(F, 100, (P, b"doc"), opened(70), t0);
        r.keep(F, 200, (P, b"doc"), opened(71), t0);
        assert_eq!(r.looked_up_by(200, P, b"doc", t0).map(|(ino, _)| ino), Some(F));
        assert_eq!(r.looked_up_by(300, P, b"doc", t0), None);
        assert_eq!(
            r.take(F, 200, t0).map(|p| p.remote_handle.0),
            Some(Handle(71)),
            "the caller's own"
        );
        assert!(r.take(F, 200, t0).is_none(), "never another's");
        assert_eq!(r.take(F, 100, t0).map(|p| p.remote_handle.0), Some(Handle(70)));
        r.keep(G, 100, (P, b"x"), opened(80), t0);
        assert!(r.take(G, 100, t0 + RETRY_WINDOW).is_none());
        assert_eq!(
            r.expired(t0 + RETRY_WINDOW),
            vec![(G, (Handle(80), Generation(0)))]
        );
    }
}
