//! `ListTree`: a page of a directory sized by bytes, then the listings of
//! the directories below it, depth first, and small files' contents, all
//! within the client's budget. A walk (`find`, `ls -R`, `du`, `grep -r`)
//! then costs a few round trips rather than one per directory and file.

use crate::dirs::{encoded_size, DirStream};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use yonder_proto::{DirEntry, ListedDir, TreeBudget, TreeEntry, TreePage};

/// Largest listing part of an answer (names, attributes, xattr names).
const MAX_LISTING_BYTES: u32 = 2 << 20;
/// Largest contents part of an answer: with the listings, well below a
/// frame's 4 MiB.
const MAX_DATA_BYTES: u32 = 1 << 20;
const MAX_FILE: u32 = 64 << 10;
const MAX_ENTRIES: u32 = 1 << 16;
/// Deepest level listed; each level holds one directory descriptor open
/// while its subdirectories are listed.
const MAX_DEPTH: u32 = 64;

struct Left {
    bytes: usize,
    entries: usize,
    data: usize,
    file_max: u64,
    max_depth: u32,
}

impl Left {
    fn clamped(budget: TreeBudget) -> Left {
        Left {
            bytes: budget.max_bytes.clamp(4096, MAX_LISTING_BYTES) as usize,
            entries: budget.max_entries.clamp(1, MAX_ENTRIES) as usize,
            data: budget.data_bytes.min(MAX_DATA_BYTES) as usize,
            file_max: budget.file_max.min(MAX_FILE) as u64,
            max_depth: budget.max_depth.min(MAX_DEPTH),
        }
    }

    /// Charges a listing of `entries`; false if it does not fit.
    fn charge(&mut self, entries: &[DirEntry]) -> bool {
        let bytes: usize = entries.iter().map(encoded_size).sum();
        if bytes > self.bytes || entries.len() > self.entries {
            return false;
        }
        self.bytes -= bytes;
        self.entries -= entries.len();
        true
    }
}

/// Lists `first` (the directory asked for, `wire` its path from the root)
/// from where its stream stands; returns the answer and, when entries of
/// `first` remain, its stream to park under the answer's cursor.
pub(crate) fn list_tree(
    mut first: DirStream,
    wire: &[u8],
    budget: TreeBudget,
    visiting: &dyn Fn(&[u8]),
) -> rustix::io::Result<(TreePage, Option<DirStream>)> {
    let mut left = Left::clamped(budget);
    let page = first.read_page_within(left.entries, left.bytes)?;
    left.charge(&page.entries);
    let subdirs = subdir_names(&page.entries);
    let entries = with_contents(&first, page.entries, &mut left);
    let mut dirs = vec![ListedDir {
        path: wire.to_vec().into(),
        entries,
    }];
    if page.more {
        return Ok((TreePage { dirs, next: None }, Some(first)));
    }
    if left.max_depth > 0 {
        walk(&first, wire, subdirs, 1, &mut left, &mut dirs, visiting);
    }
    Ok((TreePage { dirs, next: None }, None))
}

/// Lists the subdirectories `names` of `parent` (at `parent_wire`), each
/// followed by what is below it, until the budget runs out; false once it
/// has (depth first: nothing after the first listing that did not fit).
fn walk(
    parent: &DirStream,
    parent_wire: &[u8],
    names: Vec<Vec<u8>>,
    depth: u32,
    left: &mut Left,
    out: &mut Vec<ListedDir>,
    visiting: &dyn Fn(&[u8]),
) -> bool {
    for name in names {
        let wire = child_wire(parent_wire, &name);
        // Before it is read, so no change after its listing goes unseen.
        visiting(&wire);
        let key = parent.path().join(OsStr::from_bytes(&name));
        // Gone or replaced since it was listed: the client lists it itself.
        let Ok(mut child) = parent.open_child(&name, &key) else {
            continue;
        };
        let Ok(page) = child.read_page_within(left.entries, left.bytes) else {
            continue;
        };
        if page.more || !left.charge(&page.entries) {
            return false;
        }
        let subdirs = subdir_names(&page.entries);
        let entries = with_contents(&child, page.entries, left);
        out.push(ListedDir {
            path: wire.clone().into(),
            entries,
        });
        if depth < left.max_depth && !walk(&child, &wire, subdirs, depth + 1, left, out, visiting) {
            return false;
        }
    }
    true
}

fn subdir_names(entries: &[DirEntry]) -> Vec<Vec<u8>> {
    entries
        .iter()
        .filter(|e| e.attr.is_some_and(|a| a.is_dir()))
        .map(|e| e.name.to_vec())
        .collect()
}

fn child_wire(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut wire = parent.to_vec();
    if !wire.is_empty() && wire != b"." {
        wire.push(b'/');
    } else {
        wire.clear();
    }
    wire.extend_from_slice(name);
    wire
}

/// `entries` with the contents of their small regular files, as far as the
/// data budget goes. An empty file needs no read.
fn with_contents(dir: &DirStream, entries: Vec<DirEntry>, left: &mut Left) -> Vec<TreeEntry> {
    entries
        .into_iter()
        .map(|entry| {
            let data = match entry.attr {
                Some(attr) if attr.is_file() && attr.size == 0 => Some(Vec::new()),
                Some(attr)
                    if attr.is_file() && attr.size <= left.file_max && attr.size as usize <= left.data =>
                {
                    dir.file_contents(&entry.name, &attr)
                }
                _ => None,
            };
            if let Some(data) = &data {
                left.data -= data.len();
            }
            TreeEntry {
                entry,
                data: data.map(Into::into),
            }
        })
        .collect()
}
