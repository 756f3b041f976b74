//! [`ItemIdentifier`]: how the system names an item, and how that maps to
//! a path below the mount's root.

use std::fmt;

/// What FileProvider calls `NSFileProviderItemIdentifier`: a string the
/// system keeps in its database for as long as the item exists, across
/// restarts of the extension (which the system ends and starts at will).
///
/// An item is named by its path below the mount's root. The VFS's inode
/// numbers would not do: they are handed out afresh by each process, so
/// an identifier the system kept from an earlier extension process would
/// name nothing (or another file). The cost of paths: a renamed item has a
/// new identifier (see docs/fileprovider.md).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemIdentifier {
    /// `NSFileProviderRootContainerItemIdentifier`: the mount's root.
    Root,
    /// `NSFileProviderWorkingSetContainerItemIdentifier`: the container
    /// whose change enumeration tells the system of remote changes.
    WorkingSet,
    /// `NSFileProviderTrashContainerItemIdentifier`: yonder has no trash;
    /// asked for it, the extension answers that no such item exists.
    Trash,
    /// A file or directory below the root, by its remote path (never empty,
    /// no leading `/`).
    Path(Vec<u8>),
}

/// The system's own identifiers, as the SDK's constants spell them.
pub const ROOT_CONTAINER: &str = "NSFileProviderRootContainerItemIdentifier";
pub const WORKING_SET: &str = "NSFileProviderWorkingSetContainerItemIdentifier";
pub const TRASH_CONTAINER: &str = "NSFileProviderTrashContainerItemIdentifier";

/// What the string form of a path item begins with, so that no path can
/// be read as one of the system's identifiers.
const PATH_PREFIX: &str = "p:";

impl ItemIdentifier {
    /// The item at `path` below the root (the root itself for an empty one).
    pub fn for_path(path: &[u8]) -> ItemIdentifier {
        if path.is_empty() {
            ItemIdentifier::Root
        } else {
            ItemIdentifier::Path(path.to_vec())
        }
    }

    /// The item named `name` in the directory this identifier names.
    pub fn child(&self, name: &[u8]) -> Option<ItemIdentifier> {
        let mut path = self.path()?.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        Some(ItemIdentifier::Path(path))
    }

    /// The remote path below the root: empty for the root, `None` for the
    /// working set and the trash, which are no place on the remote.
    pub fn path(&self) -> Option<&[u8]> {
        match self {
            ItemIdentifier::Root => Some(b""),
            ItemIdentifier::Path(path) => Some(path),
            ItemIdentifier::WorkingSet | ItemIdentifier::Trash => None,
        }
    }

    /// The directory holding this item (the root is its own parent, as
    /// FileProvider has it), and the item's name in it.
    pub fn parent_and_name(&self) -> Option<(ItemIdentifier, &[u8])> {
        match self {
            ItemIdentifier::Root => Some((ItemIdentifier::Root, b"")),
            ItemIdentifier::Path(path) => Some(match path.iter().rposition(|b| *b == b'/') {
                Some(slash) => (ItemIdentifier::for_path(&path[..slash]), &path[slash + 1..]),
                None => (ItemIdentifier::Root, &path[..]),
            }),
            ItemIdentifier::WorkingSet | ItemIdentifier::Trash => None,
        }
    }

    /// The string the system keeps. A path's UTF-8 is kept as it is, with
    /// `%` and bytes that are not UTF-8 escaped as `%XX`, so every path has
    /// exactly one string and back.
    pub fn to_system_string(&self) -> String {
        match self {
            ItemIdentifier::Root => ROOT_CONTAINER.to_string(),
            ItemIdentifier::WorkingSet => WORKING_SET.to_string(),
            ItemIdentifier::Trash => TRASH_CONTAINER.to_string(),
            ItemIdentifier::Path(path) => {
                let mut out = String::with_capacity(PATH_PREFIX.len() + path.len());
                out.push_str(PATH_PREFIX);
                for chunk in path.utf8_chunks() {
                    for c in chunk.valid().chars() {
                        if c == '%' {
                            out.push_str("%25");
                        } else {
                            out.push(c);
                        }
                    }
                    for b in chunk.invalid() {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
                out
            }
        }
    }

    /// Reads what [`ItemIdentifier::to_system_string`] wrote; `None` for a
    /// string this extension never handed out.
    pub fn from_system_string(s: &str) -> Option<ItemIdentifier> {
        match s {
            ROOT_CONTAINER => return Some(ItemIdentifier::Root),
            WORKING_SET => return Some(ItemIdentifier::WorkingSet),
            TRASH_CONTAINER => return Some(ItemIdentifier::Trash),
            _ => {}
        }
        let escaped = s.strip_prefix(PATH_PREFIX)?.as_bytes();
        let mut path = Vec::with_capacity(escaped.len());
        let mut i = 0;
        while i < escaped.len() {
            if escaped[i] == b'%' {
                let hex = std::str::from_utf8(escaped.get(i + 1..i + 3)?).ok()?;
                path.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                path.push(escaped[i]);
                i += 1;
            }
        }
        (!path.is_empty()).then_some(ItemIdentifier::Path(path))
    }
}

impl fmt::Display for ItemIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_system_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_identifier_reads_back_from_its_string() {
        for id in [
            ItemIdentifier::Root,
            ItemIdentifier::WorkingSet,
            ItemIdentifier::Trash,
            ItemIdentifier::Path(b"a/b c/d.txt".to_vec()),
            ItemIdentifier::Path(b"100%/x".to_vec()),
            ItemIdentifier::Path(b"not-utf8-\xff\xfe/\xc3".to_vec()),
            ItemIdentifier::Path(ROOT_CONTAINER.as_bytes().to_vec()),
        ] {
            let s = id.to_system_string();
            assert_eq!(ItemIdentifier::from_system_string(&s), Some(id.clone()), "{s}");
        }
        assert_eq!(ItemIdentifier::from_system_string("x"), None);
        assert_eq!(ItemIdentifier::from_system_string("p:%Z1"), None);
        assert_eq!(ItemIdentifier::from_system_string("p:"), None);
    }

    #[test]
    fn parents_and_children_are_paths() {
        let d = ItemIdentifier::Root.child(b"d").unwrap();
        let f = d.child(b"f").unwrap();
        assert_eq!(f, ItemIdentifier::Path(b"d/f".to_vec()));
        assert_eq!(f.parent_and_name(), Some((d.clone(), &b"f"[..])));
        assert_eq!(d.parent_and_name(), Some((ItemIdentifier::Root, &b"d"[..])));
        assert_eq!(ItemIdentifier::WorkingSet.child(b"x"), None);
    }
}
