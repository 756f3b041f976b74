//! The engine's record of the placeholders it gave the OS: which inode
//! each path shows, the remote version it was given (size and mtime),
//! and which directories are populated. Remote changes arrive by inode
//! (`CacheDrop`); this turns them back into paths.

use crate::item_path::ItemPath;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use yonder_proto::Timespec;
use yonder_vfs::Ino;

/// One placeholder as last given to the OS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shown {
    pub ino: Ino,
    pub directory: bool,
    /// The remote's size and mtime the placeholder shows: a remote change
    /// is one that moves them.
    pub size: u64,
    pub mtime: Timespec,
    /// A directory whose items were all given (populated).
    pub populated: bool,
}

#[derive(Default)]
struct Table {
    by_path: BTreeMap<ItemPath, Shown>,
    paths_of: HashMap<Ino, Vec<ItemPath>>,
}

/// The record, behind its own lock (taken alone, never across an await).
#[derive(Default)]
pub struct Placeholders {
    table: Mutex<Table>,
}

impl Placeholders {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, path: &ItemPath) -> Option<Shown> {
        self.lock().by_path.get(path).copied()
    }

    /// The paths that show `ino`.
    pub fn paths_of(&self, ino: Ino) -> Vec<ItemPath> {
        self.lock().paths_of.get(&ino).cloned().unwrap_or_default()
    }

    pub fn is_populated(&self, dir: &ItemPath) -> bool {
        self.lock().by_path.get(dir).is_some_and(|s| s.populated)
    }

    /// Records what `path` shows (replacing what it showed).
    pub fn show(&self, path: ItemPath, shown: Shown) {
        let mut table = self.lock();
        if let Some(old) = table.by_path.insert(path.clone(), shown) {
            forget_path(&mut table.paths_of, old.ino, &path);
        }
        table.paths_of.entry(shown.ino).or_default().push(path);
    }

    pub fn set_populated(&self, dir: &ItemPath) {
        if let Some(shown) = self.lock().by_path.get_mut(dir) {
            shown.populated = true;
        }
    }

    /// The names directly in `dir` that show something.
    pub fn children(&self, dir: &ItemPath) -> Vec<String> {
        let table = self.lock();
        table
            .by_path
            .keys()
            .filter_map(|p| {
                let (parent, name) = p.split_last()?;
                (parent == *dir).then(|| name.to_owned())
            })
            .collect()
    }

    /// Forgets `path` and everything below it.
    pub fn remove(&self, path: &ItemPath) {
        let mut table = self.lock();
        let gone: Vec<ItemPath> = table
            .by_path
            .keys()
            .filter(|p| p.is_within(path) && !p.is_root())
            .cloned()
            .collect();
        for p in gone {
            if let Some(shown) = table.by_path.remove(&p) {
                forget_path(&mut table.paths_of, shown.ino, &p);
            }
        }
    }

    /// Moves `from` and everything below it to `to` (what was at `to`
    /// is replaced).
    pub fn rename(&self, from: &ItemPath, to: &ItemPath) {
        self.remove(to);
        let mut table = self.lock();
        let moved: Vec<ItemPath> = table
            .by_path
            .keys()
            .filter(|p| p.is_within(from) && !p.is_root())
            .cloned()
            .collect();
        for old in moved {
            let Some(shown) = table.by_path.remove(&old) else {
                continue;
            };
            forget_path(&mut table.paths_of, shown.ino, &old);
            let new = old.rebase(from, to);
            table.paths_of.entry(shown.ino).or_default().push(new.clone());
            table.by_path.insert(new, shown);
        }
    }
}

fn forget_path(paths_of: &mut HashMap<Ino, Vec<ItemPath>>, ino: Ino, path: &ItemPath) {
    if let Some(paths) = paths_of.get_mut(&ino) {
        paths.retain(|p| p != path);
        if paths.is_empty() {
            paths_of.remove(&ino);
        }
    }
}
