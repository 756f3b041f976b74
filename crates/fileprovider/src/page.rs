//! [`Page`]: where an item enumeration goes on from.

/// What FileProvider calls `NSFileProviderPage`: opaque bytes (at most
/// 500) the extension hands out with a full page of items, and the system
/// hands back for the next.
///
/// A page names the last name delivered, listings being enumerated in
/// name order: a directory changed between two pages loses no entry that
/// stayed, and repeats none (a listing offset would shift).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Page {
    /// The system's initial page (`NSFileProviderInitialPageSortedByName`
    /// or `...ByDate`; yonder sorts by name either way).
    Initial,
    /// The items named after this one.
    After(Vec<u8>),
}

/// Tags the bytes of a page after a name, so no name reads as the
/// system's initial pages.
const AFTER_TAG: u8 = b'n';

impl Page {
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Page::Initial => Vec::new(),
            Page::After(name) => {
                let mut out = Vec::with_capacity(name.len() + 1);
                out.push(AFTER_TAG);
                out.extend_from_slice(name);
                out
            }
        }
    }

    /// `None` for bytes this extension never made (the system's expired
    /// page error answers them).
    pub fn from_bytes(bytes: &[u8]) -> Option<Page> {
        match bytes.split_first() {
            None => Some(Page::Initial),
            Some((&AFTER_TAG, name)) if !name.is_empty() => Some(Page::After(name.to_vec())),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_round_trip_through_bytes() {
        for page in [Page::Initial, Page::After(b"a name".to_vec())] {
            assert_eq!(Page::from_bytes(&page.to_bytes()), Some(page));
        }
        assert_eq!(Page::from_bytes(b"x"), None);
        assert_eq!(Page::from_bytes(b"n"), None);
    }
}
