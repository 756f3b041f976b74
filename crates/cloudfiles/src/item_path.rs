//! Where an item sits in the sync root, as the engine and the OS side
//! name it to each other.

use std::fmt;

/// A path below the sync root: names joined by `/`, the root itself
/// empty. The OS side turns it into the OS's form (`\`-separated, below
/// the sync root's folder) and back; the engine never sees a drive letter
/// or the sync root's own path.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemPath(String);

/// Characters Windows refuses in a file name
/// (<https://learn.microsoft.com/en-us/windows/win32/fileio/naming-a-file>).
const REFUSED_BY_WINDOWS: &[char] = &['\\', '/', ':', '*', '?', '"', '<', '>', '|'];

impl ItemPath {
    /// The sync root itself.
    pub fn root() -> ItemPath {
        ItemPath(String::new())
    }

    /// From names joined by `/` (leading, trailing and doubled
    /// separators are dropped).
    pub fn new(path: &str) -> ItemPath {
        let names: Vec<&str> = path.split('/').filter(|n| !n.is_empty()).collect();
        ItemPath(names.join("/"))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The names from the root down.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|n| !n.is_empty())
    }

    /// `name` inside this directory.
    pub fn join(&self, name: &str) -> ItemPath {
        if self.is_root() {
            ItemPath(name.to_owned())
        } else {
            ItemPath(format!("{}/{name}", self.0))
        }
    }

    /// The directory holding it and its name; `None` for the root.
    pub fn split_last(&self) -> Option<(ItemPath, &str)> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rsplit_once('/') {
            Some((parent, name)) => (ItemPath(parent.to_owned()), name),
            None => (ItemPath::root(), &self.0[..]),
        })
    }

    /// Whether `self` is `other` or lies below it.
    pub fn is_within(&self, other: &ItemPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    /// `self` with its leading `from` replaced by `to`; `self` must be
    /// within `from`.
    pub fn rebase(&self, from: &ItemPath, to: &ItemPath) -> ItemPath {
        let rest = if from.is_root() {
            &self.0[..]
        } else {
            self.0[from.0.len()..].trim_start_matches('/')
        };
        ItemPath::new(&format!("{}/{rest}", to.0))
    }

    /// Whether a remote name can be shown as a Windows file name: UTF-8
    /// (Windows names are UTF-16), none of the refused characters, not
    /// ending in a dot or a space (Windows trims those, so the name would
    /// come back as another).
    pub fn windows_name(name: &[u8]) -> Option<&str> {
        let name = std::str::from_utf8(name).ok()?;
        let refused = name.is_empty()
            || name.contains(REFUSED_BY_WINDOWS)
            || name.chars().any(|c| (c as u32) < 0x20)
            || name.ends_with('.')
            || name.ends_with(' ');
        (!refused).then_some(name)
    }
}

impl fmt::Display for ItemPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            f.write_str("<sync root>")
        } else {
            f.write_str(&self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ItemPath;

    #[test]
    fn joins_splits_and_rebases() {
        let p = ItemPath::root().join("a").join("b");
        assert_eq!(p.as_str(), "a/b");
        let (parent, name) = p.split_last().unwrap();
        assert_eq!((parent.as_str(), name), ("a", "b"));
        assert!(p.is_within(&ItemPath::new("a")));
        assert!(!ItemPath::new("ab").is_within(&ItemPath::new("a")));
        assert_eq!(
            p.rebase(&ItemPath::new("a"), &ItemPath::new("x/y")).as_str(),
            "x/y/b"
        );
        assert_eq!(ItemPath::new("/a//b/").as_str(), "a/b");
    }

    #[test]
    fn names_windows_cannot_show_are_refused() {
        assert_eq!(ItemPath::windows_name(b"ok.txt"), Some("ok.txt"));
        for bad in [&b"a:b"[..], b"a?", b"trailing.", b"trailing ", b"\xff", b"a\\b"] {
            assert_eq!(ItemPath::windows_name(bad), None, "{bad:?}");
        }
    }
}
