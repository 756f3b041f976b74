//! The handle table: open files, each tied to an inode and to the remote's
//! handle.

use crate::attr::{Fh, FhSource, Ino};
use crate::connection::Generation;
use crate::meta_order::Pending;
use crate::readahead::Readahead;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use yonder_proto::Handle;

/// The "connection" of a file whose creation was acknowledged and not yet
/// carried out: it has no remote handle yet (see `write_back/meta.rs`).
pub(crate) const NOT_YET_CREATED: Generation = Generation(u64::MAX);

/// The "connection" of a file opened for reading from its whole contents
/// kept here, while the remote pushes its changes: no remote handle until
/// a read needs one, when it is opened by path like a handle of a
/// connection since replaced (same-file check included).
pub(crate) const OPENED_HERE: Generation = Generation(u64::MAX - 1);

pub(crate) struct OpenFile {
    pub fh: Fh,
    pub ino: Ino,
    /// The remote's handle of the file, and the connection it was opened
    /// on (see `connection.rs`).
    pub remote_handle: Mutex<(Handle, Generation)>,
    /// The path the VFS knew the file by when it was opened. Reopening
    /// after a reconnection tries it when the VFS knows no path any more
    /// (a zero-TTL rename between two names of the file forgets the name
    /// kept), with the same identity check.
    pub opened_as: Option<Vec<u8>>,
    /// Protocol open flags.
    pub flags: u32,
    pub append: bool,
    pub readahead: Mutex<Readahead>,
    /// Could not be reopened on a new connection (deleted or replaced
    /// meanwhile): answers ESTALE from then on.
    pub lost: AtomicBool,
    /// For a file whose creation was acknowledged ahead: that operation,
    /// which gives it its remote handle.
    pub created: Option<Arc<Pending>>,
    /// For a file opened here ([`OPENED_HERE`]): the bytes it opened, what
    /// it reads once the file is gone from the remote.
    pub opened_bytes: Option<bytes::Bytes>,
}

impl OpenFile {
    pub fn remote_handle(&self) -> (Handle, Generation) {
        *lock(&self.remote_handle)
    }

    /// Opened here and not opened on the remote since ([`OPENED_HERE`]).
    pub fn only_here(&self) -> bool {
        self.remote_handle().1 == OPENED_HERE
    }
}

pub(crate) struct HandleTable {
    files: HashMap<Fh, Arc<OpenFile>>,
    by_ino: HashMap<Ino, Vec<Fh>>,
    /// Handle numbers, shared with open directories.
    numbers: Arc<FhSource>,
}

impl HandleTable {
    pub fn new(numbers: Arc<FhSource>) -> HandleTable {
        HandleTable {
            files: HashMap::new(),
            by_ino: HashMap::new(),
            numbers,
        }
    }

    /// Adds an open file; `make` gets its handle number.
    pub fn insert_file(&mut self, make: impl FnOnce(Fh) -> OpenFile) -> Arc<OpenFile> {
        let fh = self.numbers.next();
        let file = Arc::new(make(fh));
        self.by_ino.entry(file.ino).or_default().push(fh);
        self.files.insert(fh, file.clone());
        file
    }

    pub fn file(&self, fh: Fh) -> Option<Arc<OpenFile>> {
        self.files.get(&fh).cloned()
    }

    pub fn remove_file(&mut self, fh: Fh) -> Option<Arc<OpenFile>> {
        let file = self.files.remove(&fh)?;
        if let Some(list) = self.by_ino.get_mut(&file.ino) {
            list.retain(|f| *f != fh);
            if list.is_empty() {
                self.by_ino.remove(&file.ino);
            }
        }
        Some(file)
    }

    /// Open files of an inode.
    pub fn files_of(&self, ino: Ino) -> Vec<Arc<OpenFile>> {
        self.by_ino
            .get(&ino)
            .map(|fhs| fhs.iter().filter_map(|fh| self.files.get(fh).cloned()).collect())
            .unwrap_or_default()
    }

    pub fn all_files(&self) -> Vec<Arc<OpenFile>> {
        self.files.values().cloned().collect()
    }
}
