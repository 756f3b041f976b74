//! Open files, and reopening them on a new connection.
//!
//! Each open file holds the remote's handle and the connection it was
//! opened on (see `connection.rs`). After a reconnection every open file
//! is reopened on the new connection before anything else runs there
//! ([`OpenFiles::reopen_all`], as part of the replay), and any one found
//! still on an old connection is reopened when next used
//! ([`OpenFiles::handle_on`]): by path, checking that the path still names
//! the same file.

use crate::attr::{Fh, FhSource, Ino};
use crate::calls::RemoteCalls;
use crate::connection::Generation;
use crate::error::{display_path, Result, VfsError};
use crate::events::{Events, VfsEvent};
use crate::handle::{HandleTable, OpenFile, NOT_YET_CREATED, OPENED_HERE};
use crate::meta_order::Pending;
use crate::namespace::Namespace;
use crate::readahead::Readahead;
use crate::sync::lock;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use yonder_proto::{open_flags as of, Errno, Handle};
use yonder_remote::Remote;

/// Bytes of a file fetched with a read-only open (the kernel's first read
/// of a file is usually this size or smaller).
pub(crate) const OPEN_PREFETCH: u32 = 128 * 1024;

/// The open files of a VFS.
pub(crate) struct OpenFiles {
    table: Mutex<HandleTable>,
    ns: Arc<Namespace>,
    calls: Arc<RemoteCalls>,
    events: Events,
    /// Where closes nobody waits for run: some calls come from frontend
    /// threads outside the runtime.
    runtime: tokio::runtime::Handle,
}

impl OpenFiles {
    pub fn new(
        numbers: Arc<FhSource>,
        ns: Arc<Namespace>,
        calls: Arc<RemoteCalls>,
        events: Events,
        runtime: tokio::runtime::Handle,
    ) -> OpenFiles {
        OpenFiles {
            table: Mutex::new(HandleTable::new(numbers)),
            ns,
            calls,
            events,
            runtime,
        }
    }

    fn table(&self) -> MutexGuard<'_, HandleTable> {
        lock(&self.table)
    }

    /// The open file `fh`, or EBADF for `op`.
    pub fn file(&self, op: &'static str, fh: Fh) -> Result<Arc<OpenFile>> {
        self.get(fh)
            .ok_or_else(|| VfsError::new(op, format!("<handle {fh}>"), Errno::EBADF))
    }

    pub fn get(&self, fh: Fh) -> Option<Arc<OpenFile>> {
        self.table().file(fh)
    }

    /// Open files of an inode.
    pub fn files_of(&self, ino: Ino) -> Vec<Arc<OpenFile>> {
        self.table().files_of(ino)
    }

    pub fn all(&self) -> Vec<Arc<OpenFile>> {
        self.table().all_files()
    }

    pub fn count(&self) -> usize {
        self.table().all_files().len()
    }

    /// Takes `fh` out of the table (its release), with what it read ahead.
    pub fn remove(&self, fh: Fh) -> Option<Arc<OpenFile>> {
        let file = self.table().remove_file(fh)?;
        lock(&file.readahead).clear();
        Some(file)
    }

    /// Closes a released file's remote handle, without waiting: the data
    /// went out before (and the agent writes synchronously, so its errors
    /// were reported at write, flush or fsync). Not waiting saves a round
    /// trip per file for `cat`, `cp` and untar.
    pub fn close_released(&self, file: &OpenFile) {
        let (remote, generation) = self.calls.current();
        let (handle, opened_on) = file.remote_handle();
        if opened_on != generation {
            // Its connection is gone, and the handle with it.
            return;
        }
        let path = self.ns.describe(file.ino);
        self.runtime.spawn(async move {
            if let Err(e) = remote.close(handle).await {
                tracing::debug!("close {path}: {e}");
            }
        });
    }

    pub fn register_file(&self, ino: Ino, remote_handle: (Handle, Generation), flags: u32) -> Fh {
        self.register_file_with(ino, remote_handle, flags, Readahead::default())
    }

    pub fn register_file_with(
        &self,
        ino: Ino,
        remote_handle: (Handle, Generation),
        flags: u32,
        readahead: Readahead,
    ) -> Fh {
        self.register(ino, remote_handle, flags, readahead, None, None).fh
    }

    /// Registers a file opened for reading from `bytes`, its whole
    /// contents kept here, with no remote handle until a read needs one
    /// ([`OPENED_HERE`]).
    pub fn register_opened_here(
        &self,
        ino: Ino,
        flags: u32,
        readahead: Readahead,
        bytes: bytes::Bytes,
    ) -> Fh {
        self.register(ino, (Handle(0), OPENED_HERE), flags, readahead, None, Some(bytes))
            .fh
    }

    /// Registers a file whose creation (`created`) was acknowledged and
    /// not carried out yet: it gets its remote handle when it is.
    pub fn register_created(&self, ino: Ino, flags: u32, created: Arc<Pending>) -> Arc<OpenFile> {
        self.register(
            ino,
            (Handle(0), NOT_YET_CREATED),
            flags,
            Readahead::default(),
            Some(created),
            None,
        )
    }

    /// The remote handle the creation of `file` opened, on `generation`.
    pub fn install_handle(&self, file: &OpenFile, handle: Handle, generation: Generation) {
        let mut slot = lock(&file.remote_handle);
        if slot.1 == NOT_YET_CREATED {
            *slot = (handle, generation);
        }
    }

    fn register(
        &self,
        ino: Ino,
        remote_handle: (Handle, Generation),
        flags: u32,
        readahead: Readahead,
        created: Option<Arc<Pending>>,
        opened_bytes: Option<bytes::Bytes>,
    ) -> Arc<OpenFile> {
        let opened_as = self.ns.table().path(ino);
        let file = self.table().insert_file(|fh| OpenFile {
            fh,
            ino,
            remote_handle: Mutex::new(remote_handle),
            opened_as,
            flags,
            append: flags & of::APPEND != 0,
            readahead: Mutex::new(readahead),
            lost: std::sync::atomic::AtomicBool::new(false),
            created,
            opened_bytes,
        });
        self.ns.table().open_inc(ino);
        file
    }

    /// Handle to stat or change an inode through when its path is gone.
    pub fn any_handle(&self, ino: Ino, fh: Option<Fh>) -> Option<Arc<OpenFile>> {
        let handles = self.table();
        if let Some(file) = fh.and_then(|fh| handles.file(fh)).filter(|f| f.ino == ino) {
            return Some(file);
        }
        handles.files_of(ino).into_iter().next()
    }

    /// An open handle of `ino` other than those in `tried`.
    pub fn any_handle_except(&self, ino: Ino, tried: &[Fh]) -> Option<Arc<OpenFile>> {
        self.table()
            .files_of(ino)
            .into_iter()
            .find(|f| !tried.contains(&f.fh))
    }

    /// Closes a remote handle nobody holds (opened on `remote`), without
    /// waiting.
    pub fn close_remote(&self, remote: Arc<dyn Remote>, handle: Handle) {
        self.runtime.spawn(async move {
            if let Err(e) = remote.close(handle).await {
                tracing::debug!("close of an unused handle: {e}");
            }
        });
    }

    /// `file`'s handle on `remote` (the connection of `generation`). A
    /// handle opened on a connection since replaced is reopened there, by
    /// path (the one the VFS knows, else the one it was opened by) and
    /// with its open flags (less create and truncate), provided the path
    /// still names the same file: otherwise ESTALE, for good (the
    /// file was deleted or replaced meanwhile, or unlinked while open),
    /// logged and reported as [`VfsEvent::HandleLost`].
    pub async fn handle_on(
        &self,
        file: &OpenFile,
        remote: &Arc<dyn Remote>,
        generation: Generation,
    ) -> Result<Handle> {
        let (mut handle, mut opened_on) = file.remote_handle();
        if opened_on == NOT_YET_CREATED {
            if let Some(created) = &file.created {
                created.hurry();
                created.done().await;
            }
            (handle, opened_on) = file.remote_handle();
            if opened_on == NOT_YET_CREATED {
                // Its creation failed (reported where it did), or it was
                // closed with it.
                return Err(VfsError::new("open", self.ns.describe(file.ino), Errno::EIO));
            }
        }
        if opened_on == generation {
            return Ok(handle);
        }
        if file.lost.load(Ordering::Relaxed) {
            return Err(VfsError::new("reopen", self.ns.describe(file.ino), Errno::ESTALE));
        }
        let known = self.ns.table().path(file.ino);
        let fallback = file.opened_as.clone().filter(|p| Some(p) != known.as_ref());
        let flags = file.flags & !(of::CREATE | of::EXCLUSIVE | of::TRUNCATE);
        let mut tried = None;
        let mut found = None;
        let candidates = known
            .map(|p| (p, true))
            .into_iter()
            .chain(fallback.map(|p| (p, false)));
        for (path, is_known) in candidates {
            let attempt = remote.open(&path, flags, 0, None).await;
            tried = Some(display_path(&path));
            match attempt {
                Ok((reopened, attr)) => {
                    if self.ns.table().same_file(file.ino, &attr) {
                        found = Some(reopened);
                        break;
                    }
                    self.close_remote(remote.clone(), reopened);
                }
                Err(e) if e.is_connection_lost() => return Err(VfsError::remote("reopen", &path, e)),
                // The name the VFS knows failing otherwise (EACCES, EIO) is
                // this file's answer; the old name failing only says it
                // holds something else now.
                Err(e) if e.errno() != Errno::ENOENT && is_known => {
                    return Err(VfsError::remote("reopen", &path, e));
                }
                Err(_) => {}
            }
        }
        let Some(reopened) = found else {
            let path = tried.unwrap_or_else(|| format!("<inode {}>", file.ino));
            if opened_on == OPENED_HERE {
                // Gone there since it was opened here: not a handle lost,
                // as the bytes it opened are still what it reads.
                return Err(VfsError::new("open", path, Errno::ESTALE));
            }
            return Err(self.handle_lost(file, path));
        };
        let mut slot = lock(&file.remote_handle);
        if slot.1 == generation {
            // Another call reopened it meanwhile.
            let theirs = slot.0;
            drop(slot);
            self.close_remote(remote.clone(), reopened);
            return Ok(theirs);
        }
        *slot = (reopened, generation);
        Ok(reopened)
    }

    pub fn handle_lost(&self, file: &OpenFile, path: String) -> VfsError {
        if !file.lost.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{path}: an open file could not be reopened on the new connection (deleted or replaced \
                 meanwhile); its descriptor answers ESTALE"
            );
            self.events.emit(VfsEvent::HandleLost {
                ino: file.ino,
                path: path.clone(),
            });
        }
        VfsError::new("reopen", path, Errno::ESTALE)
    }

    /// Whether `fh` is an open file lost with a connection (its file could
    /// not be reopened): asked through it, the answer is ESTALE, not what
    /// the file was when last seen.
    pub fn lost_handle(&self, fh: Option<Fh>) -> bool {
        fh.and_then(|fh| self.table().file(fh))
            .is_some_and(|f| f.lost.load(Ordering::Relaxed))
    }

    /// [`RemoteCalls::call`] through an open file's remote handle, reopened (by
    /// path, identity checked) on each new connection.
    pub async fn call_handle<T, F, Fut>(&self, file: &OpenFile, op: &'static str, call: F) -> Result<T>
    where
        F: FnMut(Arc<dyn Remote>, Handle) -> Fut,
        Fut: Future<Output = yonder_remote::Result<T>>,
    {
        // What was acknowledged about the file (by a path it may no longer
        // have) reaches the remote first.
        crate::meta_order::wait_all(self.calls.order().of_ino(file.ino), Some(self.calls.deadline()))
            .await
            .map_err(|()| VfsError::new(op, self.ns.describe(file.ino), Errno::EIO))?;
        self.call_handle_in_order(file, op, call).await
    }

    /// [`OpenFiles::call_handle`] for a call that is itself part of an
    /// acknowledged operation (the data of a file's creation), which keeps
    /// its own order.
    pub async fn call_handle_in_order<T, F, Fut>(
        &self,
        file: &OpenFile,
        op: &'static str,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut(Arc<dyn Remote>, Handle) -> Fut,
        Fut: Future<Output = yonder_remote::Result<T>>,
    {
        let deadline = self.calls.deadline();
        let path = || self.ns.describe(file.ino);
        let (mut remote, mut generation) = self
            .calls
            .ready(Some(deadline))
            .await
            .map_err(|why| self.calls.unavailable(op, path().as_bytes(), why))?;
        loop {
            let lost = match self.handle_on(file, &remote, generation).await {
                Ok(handle) => match call(remote.clone(), handle).await {
                    Err(e) if e.is_connection_lost() => true,
                    other => return other.map_err(|e| VfsError::remote(op, path().as_bytes(), e)),
                },
                Err(e) if e.is_connection_lost() => true,
                Err(e) => return Err(e),
            };
            debug_assert!(lost);
            (remote, generation) = self
                .calls
                .after(generation, Some(deadline))
                .await
                .map_err(|why| self.calls.unavailable(op, path().as_bytes(), why))?;
        }
    }

    /// Reopens every open file on `remote` (just put in place, `generation`), 16 at a time; false if the
    /// connection was lost (or replaced) meanwhile.
    pub async fn reopen_all(self: &Arc<Self>, remote: &Arc<dyn Remote>, generation: Generation) -> bool {
        // A file still being created gets its handle from its creation,
        // which waits for this connection to be up; one opened here gets
        // one when a read needs it.
        let open: Vec<Arc<OpenFile>> = self
            .all()
            .into_iter()
            .filter(|f| ![NOT_YET_CREATED, OPENED_HERE].contains(&f.remote_handle().1))
            .collect();
        for chunk in open.chunks(16) {
            let mut reopening = tokio::task::JoinSet::new();
            for file in chunk {
                let (files, file, remote) = (self.clone(), file.clone(), remote.clone());
                reopening.spawn(async move { files.handle_on(&file, &remote, generation).await });
            }
            while let Some(done) = reopening.join_next().await {
                if matches!(done, Ok(Err(e)) if e.is_connection_lost()) {
                    tracing::info!("reopening files on the new connection interrupted: connection lost");
                    return false;
                }
            }
            if self.calls.current().1 != generation {
                return false;
            }
        }
        true
    }
}
