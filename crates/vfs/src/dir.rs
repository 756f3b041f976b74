//! Directory streams: a listing read page by page from the remote as the
//! reader advances, with stable offsets for the lifetime of the stream.

use crate::attr::{FileAttr, FileKind, Ino};
use yonder_proto::Attr;

/// One entry of a directory stream.
#[derive(Clone, Debug)]
pub struct DirItem {
    pub name: Vec<u8>,
    pub ino: Ino,
    pub kind: FileKind,
    /// Offset of the entry after this one: pass it back to continue.
    pub offset: u64,
    /// Attributes from the listing; `None` for `.` and `..`.
    pub attr: Option<FileAttr>,
    /// The remote's attributes, to register the entry on a readdirplus.
    pub(crate) remote: Option<Attr>,
}

impl DirItem {
    pub fn is_dot_or_dotdot(&self) -> bool {
        self.name == b"." || self.name == b".."
    }
}

#[derive(Default)]
pub(crate) struct DirStream {
    pub items: Vec<DirItem>,
    pub cursor: Option<u64>,
    pub started: bool,
    pub done: bool,
}

impl DirStream {
    pub fn reset(&mut self) {
        *self = DirStream::default();
    }
}
