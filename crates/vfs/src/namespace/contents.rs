//! Small files' contents that came with a listing (`ListTree`), or whole
//! with a read-only open (where listings bring none, as over SFTP), kept
//! until the file is opened for reading, so that a walk reading many small
//! files (`grep -r`, `cat`, a build) costs no data round trip per file.
//!
//! Contents belong to the attributes they were read with: they are handed
//! out only while the inode's cached attributes are fresh and still show
//! the same size, mtime and ctime, and its data version has not moved
//! (anything the VFS learns or does to the file's data moves it).

use crate::attr::{FileAttr, Ino};
use bytes::Bytes;
use std::collections::HashMap;
use yonder_proto::Timespec;

/// Bytes of contents kept at most; past that, new ones are not kept.
const MAX_KEPT: usize = 64 << 20;

struct Kept {
    data_version: u64,
    size: u64,
    mtime: Timespec,
    ctime: Timespec,
    data: Bytes,
}

#[derive(Default)]
pub(crate) struct KeptContents {
    files: HashMap<Ino, Kept>,
    bytes: usize,
}

impl KeptContents {
    /// Keeps `data`, the whole contents of `ino` when it had `attr`, at
    /// data version `data_version`.
    pub fn keep(&mut self, ino: Ino, attr: &FileAttr, data_version: u64, data: Bytes) {
        self.drop_file(ino);
        // An empty file's contents are its attributes' (see
        // `InodeTable::take_contents`): nothing to keep, and a walk of a
        // tree of them would otherwise cost 90 bytes a file.
        if data.is_empty() || self.bytes + data.len() > MAX_KEPT {
            return;
        }
        self.bytes += data.len();
        self.files.insert(
            ino,
            Kept {
                data_version,
                size: attr.size,
                mtime: attr.mtime,
                ctime: attr.ctime,
                data,
            },
        );
    }

    /// The contents of `ino`, handed out once, if they belong to `current`
    /// (its fresh cached attributes) and `data_version`.
    pub fn take(&mut self, ino: Ino, current: Option<&FileAttr>, data_version: u64) -> Option<Bytes> {
        let kept = self.files.remove(&ino)?;
        self.bytes -= kept.data.len();
        let current = current?;
        let same = kept.data_version == data_version
            && (kept.size, kept.mtime, kept.ctime) == (current.size, current.mtime, current.ctime);
        same.then_some(kept.data)
    }

    pub fn drop_file(&mut self, ino: Ino) {
        if let Some(kept) = self.files.remove(&ino) {
            self.bytes -= kept.data.len();
        }
    }

    pub fn clear(&mut self) {
        self.files.clear();
        self.bytes = 0;
    }

    pub fn holds(&self, ino: Ino) -> bool {
        self.files.contains_key(&ino)
    }
}
