//! [`Item`]: what the extension tells the system of a file or directory
//! (an `NSFileProviderItem`), and what the system asks to create or change.

use crate::identifier::ItemIdentifier;
use yonder_vfs::{FileAttr, FileKind, Timespec};

/// The kinds of node FileProvider shows. FIFOs, sockets and devices have
/// no place in it: listings leave them out, and asked for by name they
/// are no such item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKind {
    File,
    Directory,
    /// With its target, as `symlinkTargetPath` gives it.
    Symlink(Vec<u8>),
}

/// `NSFileProviderItemVersion`: the system compares these to tell whether
/// its copy of an item's data or of its metadata is current. The data's
/// is the size and modification time; the metadata's adds the mode and
/// the change time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ItemVersion {
    pub content: Vec<u8>,
    pub metadata: Vec<u8>,
}

impl ItemVersion {
    pub fn of(attr: &FileAttr) -> ItemVersion {
        let mut content = Vec::with_capacity(20);
        content.extend_from_slice(&attr.size.to_be_bytes());
        push_time(&mut content, attr.mtime);
        let mut metadata = content.clone();
        metadata.extend_from_slice(&attr.mode().to_be_bytes());
        push_time(&mut metadata, attr.ctime);
        ItemVersion { content, metadata }
    }
}

fn push_time(out: &mut Vec<u8>, t: Timespec) {
    out.extend_from_slice(&t.sec.to_be_bytes());
    out.extend_from_slice(&t.nsec.to_be_bytes());
}

/// One item as the system is told of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub identifier: ItemIdentifier,
    pub parent: ItemIdentifier,
    /// The name in its directory, as the remote has it (the root's: empty).
    pub filename: Vec<u8>,
    pub kind: ItemKind,
    /// `documentSize`.
    pub size: u64,
    /// Permission bits (`fileSystemFlags` and `capabilities` come from them).
    pub perm: u32,
    pub modified: Timespec,
    pub version: ItemVersion,
}

impl Item {
    /// The item at `identifier` with the attributes `attr`. `None` for a
    /// kind FileProvider cannot show; `symlink_target` is the target of a
    /// symbolic link.
    pub fn from_attr(
        identifier: ItemIdentifier,
        attr: &FileAttr,
        symlink_target: Option<Vec<u8>>,
    ) -> Option<Item> {
        let kind = match attr.kind {
            FileKind::Regular => ItemKind::File,
            FileKind::Directory => ItemKind::Directory,
            FileKind::Symlink => ItemKind::Symlink(symlink_target.unwrap_or_default()),
            FileKind::Fifo | FileKind::CharDevice | FileKind::BlockDevice | FileKind::Socket => return None,
        };
        let (parent, filename) = identifier.parent_and_name()?;
        let filename = filename.to_vec();
        Some(Item {
            parent,
            filename,
            kind,
            size: attr.size,
            perm: attr.perm,
            modified: attr.mtime,
            version: ItemVersion::of(attr),
            identifier,
        })
    }

    pub fn is_directory(&self) -> bool {
        self.kind == ItemKind::Directory
    }
}

/// What the system asks to create (`createItemBasedOnTemplate`): the
/// template's parent, name and kind; a file's data comes as a local file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemTemplate {
    pub parent: ItemIdentifier,
    pub filename: Vec<u8>,
    pub kind: ItemKind,
    pub perm: u32,
}

/// What the system asks to change (`modifyItem`), by the fields it says
/// changed (`NSFileProviderItemFields`): each `Some` is one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemChanges {
    /// `filename` and `parentItemIdentifier`: a rename or a move.
    pub filename: Option<Vec<u8>>,
    pub parent: Option<ItemIdentifier>,
    /// `contents`: the file's new data, a local file to copy whole.
    pub contents: Option<std::path::PathBuf>,
    /// `fileSystemFlags`: new permission bits.
    pub perm: Option<u32>,
    /// `contentModificationDate`.
    pub modified: Option<Timespec>,
}
