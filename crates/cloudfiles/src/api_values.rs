//! The engine's values in the Cloud Files API's terms and back, where
//! no Windows type is involved: portable, so they are tested everywhere
//! (the Windows side that uses them only type-checks here).

use crate::item_path::ItemPath;
use std::time::SystemTime;

/// The sync root's folder, as the API's paths are compared with it.
///
/// The API names items by their path from the volume's root
/// (`CF_CALLBACK_INFO.NormalizedPath`: `\Users\me\Remote\a\b.txt`), or in
/// full with the drive (`C:\Users\...`) when asked to; NTFS compares
/// names without regard to case. The root's names are compared that way;
/// the item's own names keep their case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootPath {
    /// The root's names from the volume's root, in lower case.
    names: Vec<String>,
}

/// The names of a path from its volume's root: without a `\\?\` prefix
/// or a drive, split at `\` and `/`.
fn volume_names(path: &str) -> impl Iterator<Item = &str> {
    let path = path.strip_prefix(r"\\?\").unwrap_or(path);
    let path = match path.as_bytes() {
        [drive, b':', ..] if drive.is_ascii_alphabetic() => &path[2..],
        _ => path,
    };
    path.split(['\\', '/']).filter(|name| !name.is_empty())
}

impl RootPath {
    pub fn new(root: &str) -> RootPath {
        RootPath {
            names: volume_names(root).map(str::to_lowercase).collect(),
        }
    }

    /// The item an API path names below the root; `None` outside it.
    pub fn item(&self, path: &str) -> Option<ItemPath> {
        let mut names = volume_names(path);
        for root_name in &self.names {
            if names.next()?.to_lowercase() != *root_name {
                return None;
            }
        }
        let rest: Vec<&str> = names.collect();
        Some(ItemPath::new(&rest.join("/")))
    }
}

/// A time as a FILETIME: 100-nanosecond ticks since 1601-01-01.
pub fn file_time(time: SystemTime) -> i64 {
    const UNIX_EPOCH_AS_FILETIME: i64 = 116_444_736_000_000_000;
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => UNIX_EPOCH_AS_FILETIME + (since.as_nanos() / 100) as i64,
        Err(before) => UNIX_EPOCH_AS_FILETIME - (before.duration().as_nanos() / 100) as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::{file_time, RootPath};
    use std::time::{Duration, SystemTime};

    #[test]
    fn api_paths_below_the_root_become_items_keeping_their_case() {
        let root = RootPath::new(r"\\?\C:\Users\Me\Remote");
        // NormalizedPath: from the volume's root, the root's case as the
        // user typed it or not.
        assert_eq!(
            root.item(r"\users\me\REMOTE\Dir\File.TXT").unwrap().as_str(),
            "Dir/File.TXT"
        );
        // A full path, with the drive.
        assert_eq!(root.item(r"C:\Users\Me\Remote\a").unwrap().as_str(), "a");
        assert!(root.item(r"\Users\Me\Remote").unwrap().is_root());
        assert!(root.item(r"\Users\Me\Remote\").unwrap().is_root());
        // Outside: a sibling whose name starts alike, a parent.
        assert_eq!(root.item(r"\Users\Me\RemoteOther\a"), None);
        assert_eq!(root.item(r"\Users\Me"), None);
        // Names whose lower case is longer in bytes compare by name.
        let root = RootPath::new(r"C:\Ⱥ");
        assert_eq!(root.item(r"\ⱥ\x").unwrap().as_str(), "x");
    }

    #[test]
    fn file_times_count_from_1601_in_100_ns() {
        assert_eq!(file_time(SystemTime::UNIX_EPOCH), 116_444_736_000_000_000);
        assert_eq!(
            file_time(SystemTime::UNIX_EPOCH + Duration::new(1, 500)),
            116_444_736_000_000_000 + 10_000_005
        );
        assert_eq!(
            file_time(SystemTime::UNIX_EPOCH - Duration::from_secs(1)),
            116_444_736_000_000_000 - 10_000_000
        );
    }
}
