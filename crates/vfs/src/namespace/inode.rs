//! The inode table: numbering, kernel lookup counts, the names each inode is
//! known by (the remote is path based, so every inode must be turned back
//! into a path), and the attribute and name caches hanging off each inode.
//!
//! An inode's path is not stored: it is computed from `(parent, name)` links
//! up to the root. Renaming a directory therefore moves everything beneath
//! it, open files included, by updating one link.

use super::contents::KeptContents;
use crate::attr::{FileAttr, FileKind, Ino, RemoteId, ROOT_INO};
use crate::cache_policy::{CachePolicy, Change};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use yonder_proto::{Attr, ListedDir, TreeEntry};

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
    /// The remote's attributes, to register the entry on a readdirplus;
    /// `None` for an entry the table listed from what it knows (its
    /// inode number and `attr` say what it is).
    pub(crate) remote: Option<Attr>,
    /// When the listing was asked for: a change to the entry made through
    /// the mount since makes `remote` stale.
    pub(crate) asked: Instant,
}

impl DirItem {
    pub fn is_dot_or_dotdot(&self) -> bool {
        self.name == b"." || self.name == b".."
    }
}

/// Deepest directory nesting a path is built for; deeper means a corrupt
/// table (a cycle), reported instead of looping.
const MAX_DEPTH: usize = 4096;

pub(crate) struct Inode {
    pub kind: FileKind,
    /// Lookups the kernel (or another frontend) holds; see `forget`.
    pub lookups: u64,
    /// Open file and directory handles on this inode.
    pub open: u32,
    /// Handed to a stateless frontend (NFS) as a file handle, which it may
    /// present at any time: kept while the file exists.
    pub exported: bool,
    /// Names this inode is known by, most recently confirmed first. Several
    /// for hard links; none once unlinked (then reachable through handles
    /// only).
    pub links: Vec<(Ino, Vec<u8>)>,
    pub attr: Option<FileAttr>,
    pub attr_until: Instant,
    /// When this mount last changed the file's attributes or was told they
    /// changed: a listing asked for before then shows older ones.
    pub changed: Option<Instant>,
    /// The extended attribute names and until when they are trusted (as
    /// long as its attributes).
    pub xattr_names: Option<(Instant, Box<[Vec<u8>]>)>,
    /// What only a directory has (boxed: most inodes are files, and every
    /// inode would pay for the fields).
    pub dir: Option<Box<DirState>>,
    /// Bumped whenever the file's data may have changed (written here,
    /// truncated, notified, a new connection): data read ahead at an older
    /// version is dropped by its reader.
    pub data_version: u64,
    /// What the file was when a frontend last opened it, and so when the
    /// kernel may have cached its data: see
    /// [`InodeTable::data_unchanged_since_opened`].
    pub opened_as: Option<DataStamp>,
}

/// A file's data version with the size and times the remote gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DataStamp {
    version: u64,
    size: u64,
    mtime: yonder_proto::Timespec,
    ctime: yonder_proto::Timespec,
}

impl Inode {
    /// A node just met: no lookups, nothing open, no names or caches yet.
    fn unseen(kind: FileKind, attr_until: Instant) -> Inode {
        Inode {
            kind,
            lookups: 0,
            open: 0,
            exported: false,
            links: Vec::new(),
            attr: None,
            attr_until,
            changed: None,
            xattr_names: None,
            dir: None,
            data_version: 0,
            opened_as: None,
        }
    }
}

/// Puts `link` first in `links`. The first link of an inode, nearly every
/// inode's only one, gets a list of exactly one: `insert` into an empty
/// `Vec` would allocate room for four, 100 bytes more per inode.
fn add_first(links: &mut Vec<(Ino, Vec<u8>)>, link: (Ino, Vec<u8>)) {
    if links.is_empty() {
        *links = vec![link];
    } else {
        links.insert(0, link);
    }
}

/// One complete listing of a directory, as the table held it: when its
/// names expire, and the directory's version then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListingStamp {
    until: Instant,
    version: u64,
}

/// A directory's listing state.
#[derive(Default)]
pub(crate) struct DirState {
    /// Until when the set of names in this directory known to the table is
    /// complete, so that a name missing from it does not exist.
    pub listing_until: Option<Instant>,
    /// Bumped whenever the set of names in this directory changes, so that
    /// a listing fetched meanwhile is not stored as current.
    pub version: u64,
}

impl Inode {
    fn listing_until(&self) -> Option<Instant> {
        self.dir.as_ref().and_then(|d| d.listing_until)
    }

    /// Forgets that the names are complete.
    fn forget_listing(&mut self) {
        if let Some(d) = self.dir.as_mut() {
            d.listing_until = None;
        }
    }

    fn dir_mut(&mut self) -> &mut DirState {
        self.dir.get_or_insert_with(Box::default)
    }
}

struct NameEntry {
    ino: Ino,
    until: Instant,
}

/// Directory entries, grouped by directory: a lookup borrows the name
/// instead of building a key, and a directory's entries are found without
/// scanning every other directory's (invalidation after each create or
/// unlink, pruning after each listing).
#[derive(Default)]
struct Names {
    by_dir: HashMap<Ino, HashMap<Box<[u8]>, NameEntry>>,
}

impl Names {
    fn get(&self, dir: Ino, name: &[u8]) -> Option<&NameEntry> {
        self.by_dir.get(&dir)?.get(name)
    }

    /// Returns whether the name is new in `dir`, or now names another inode.
    fn insert(&mut self, dir: Ino, name: &[u8], entry: NameEntry) -> bool {
        let entries = self.by_dir.entry(dir).or_default();
        match entries.get_mut(name) {
            Some(existing) => {
                let changed = existing.ino != entry.ino;
                *existing = entry;
                changed
            }
            None => {
                entries.insert(name.into(), entry);
                true
            }
        }
    }

    fn remove(&mut self, dir: Ino, name: &[u8]) -> Option<NameEntry> {
        let entries = self.by_dir.get_mut(&dir)?;
        let entry = entries.remove(name);
        if entries.is_empty() {
            self.by_dir.remove(&dir);
        }
        entry
    }

    fn children_mut(&mut self, dir: Ino) -> impl Iterator<Item = &mut NameEntry> {
        self.by_dir.get_mut(&dir).into_iter().flat_map(|m| m.values_mut())
    }

    fn child_names(&self, dir: Ino) -> impl Iterator<Item = &[u8]> {
        self.by_dir
            .get(&dir)
            .into_iter()
            .flat_map(|m| m.keys().map(|k| &**k))
    }
}

pub(crate) struct InodeTable {
    nodes: HashMap<Ino, Inode>,
    names: Names,
    /// The VFS's number of every remote file it knows (a node, or a name).
    by_id: HashMap<RemoteId, Ino>,
    ids: HashMap<Ino, RemoteId>,
    next_ino: Ino,
    policy: CachePolicy,
    sweep_at: usize,
    /// Small files' contents that came with listings.
    contents: KeptContents,
    /// Moves on with every change reported or made through this mount:
    /// what a listing brings for inodes it did not know when it was asked
    /// for is kept only if nothing changed while it was on its way.
    mutations: u64,
    /// Directories whose names an operation of this mount is changing on
    /// the remote now (a rename), and how many such operations: a notice of
    /// the change can arrive before its answer, and must not be taken for
    /// someone else's.
    renaming_in: HashMap<Ino, u32>,
}

impl InodeTable {
    pub fn new(root: &Attr, policy: CachePolicy) -> InodeTable {
        let mut table = InodeTable {
            nodes: HashMap::new(),
            names: Names::default(),
            by_id: RemoteId::of(root).map(|id| (id, ROOT_INO)).into_iter().collect(),
            ids: RemoteId::of(root).map(|id| (ROOT_INO, id)).into_iter().collect(),
            next_ino: Ino(ROOT_INO.0 + 1),
            policy,
            sweep_at: 4096,
            contents: KeptContents::default(),
            mutations: 0,
            renaming_in: HashMap::new(),
        };
        let now = Instant::now();
        table.nodes.insert(
            ROOT_INO,
            Inode {
                // The root is never forgotten.
                lookups: 1,
                attr: Some(FileAttr::from_remote(ROOT_INO, root)),
                ..Inode::unseen(FileKind::Directory, table.policy.attributes_until(now))
            },
        );
        table
    }

    /// The VFS's number for the remote file `attr` describes, found at
    /// `parent/name`; a file not seen before gets a new one.
    fn ino_for(&mut self, parent: Ino, name: &[u8], attr: &Attr) -> Ino {
        let Some(id) = RemoteId::of(attr) else {
            // Known by path only: the name's inode, unless the name now
            // holds another kind of file.
            let kind = FileKind::from_mode(attr.mode);
            if let Some(entry) = self.names.get(parent, name) {
                if self.nodes.get(&entry.ino).is_none_or(|n| n.kind == kind) {
                    return entry.ino;
                }
            }
            return self.allocate();
        };
        if let Some(ino) = self.by_id.get(&id) {
            return *ino;
        }
        let ino = self.allocate();
        self.by_id.insert(id, ino);
        self.ids.insert(ino, id);
        ino
    }

    fn allocate(&mut self) -> Ino {
        let ino = self.next_ino;
        self.next_ino.0 += 1;
        ino
    }

    /// Whether `attr` describes the file the VFS calls `ino`. A path may
    /// name another file by now (replaced by a rename, or deleted and its
    /// number reused).
    /// Without inode numbers, only a change of kind tells.
    pub fn same_file(&self, ino: Ino, attr: &Attr) -> bool {
        match (self.ids.get(&ino), RemoteId::of(attr)) {
            (Some(known), Some(id)) => *known == id,
            (None, None) => self
                .nodes
                .get(&ino)
                .is_none_or(|n| n.kind == FileKind::from_mode(attr.mode)),
            _ => false,
        }
    }

    /// `ino` was deleted through this mount (its last known name removed,
    /// nothing open): should its remote number come back, it is another
    /// file. Matters where the remote has no birth times to tell.
    pub fn retire_if_gone(&mut self, ino: Ino) {
        // Without the node, whether other names remain is unknown; `sweep`
        // drops the number once nothing refers to it.
        let Some(node) = self.nodes.get(&ino).filter(|_| ino != ROOT_INO) else {
            return;
        };
        let more_links = node
            .attr
            .is_some_and(|a| a.kind != FileKind::Directory && a.nlink > 1);
        if !node.links.is_empty() || node.open > 0 || more_links {
            return;
        }
        if let Some(id) = self.ids.get(&ino) {
            if self.by_id.get(id) == Some(&ino) {
                self.by_id.remove(id);
            }
        }
    }

    pub fn get(&self, ino: Ino) -> Option<&Inode> {
        self.nodes.get(&ino)
    }

    /// The remote path of an inode; `None` if it has no resolvable name
    /// (unlinked, or unknown).
    pub fn path(&self, ino: Ino) -> Option<Vec<u8>> {
        self.path_through(ino, |_| true)
    }

    /// The remote path of an inode, if every name on it is still trusted:
    /// a name a notice made unknown (the remote may have renamed the file
    /// or a directory above it) still leads the synchronous calls to the
    /// file, which find out, but must not vouch for a change acknowledged
    /// ahead and sent by that path later.
    pub fn fresh_path(&self, ino: Ino, now: Instant) -> Option<Vec<u8>> {
        self.path_through(ino, |entry| entry.until > now)
    }

    /// The path along the first link of each node whose parent is still
    /// known and whose entry `usable` accepts.
    fn path_through(&self, ino: Ino, usable: impl Fn(&NameEntry) -> bool) -> Option<Vec<u8>> {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut cur = ino;
        while cur != ROOT_INO {
            if parts.len() > MAX_DEPTH {
                return None;
            }
            let node = self.nodes.get(&cur)?;
            // The first link whose parent is still known; a stale one (parent
            // forgotten) is skipped.
            let (parent, name) = node.links.iter().find(|(p, n)| {
                (*p == ROOT_INO || self.nodes.contains_key(p))
                    && self.names.get(*p, n).is_some_and(|e| e.ino == cur && usable(e))
            })?;
            parts.push(name);
            cur = *parent;
        }
        let mut path = Vec::new();
        for part in parts.iter().rev() {
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(part);
        }
        Some(path)
    }

    pub fn child_path(&self, parent: Ino, name: &[u8]) -> Option<Vec<u8>> {
        let mut path = self.path(parent)?;
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        Some(path)
    }

    /// Records that `parent/name` is the remote file `attr`; returns its
    /// attributes in VFS numbering. Does not count a lookup.
    pub fn upsert(&mut self, parent: Ino, name: &[u8], attr: &Attr, now: Instant) -> FileAttr {
        let ino = self.ino_for(parent, name, attr);
        let fattr = FileAttr::from_remote(ino, attr);
        if let Some(old) = self.names.get(parent, name) {
            if old.ino != ino {
                // The name now refers to another file.
                let old_ino = old.ino;
                self.drop_link(old_ino, parent, name);
            }
        }
        let added = self.names.insert(
            parent,
            name,
            NameEntry {
                ino,
                until: self.policy.names_until(now),
            },
        );
        if added {
            self.dir_changed(parent);
        }
        let attr_until = self.policy.attributes_until(now);
        let node = self
            .nodes
            .entry(ino)
            .or_insert_with(|| Inode::unseen(fattr.kind, attr_until));
        node.kind = fattr.kind;
        node.attr = Some(fattr);
        node.attr_until = attr_until;
        if ino != ROOT_INO {
            if let Some(pos) = node.links.iter().position(|(p, n)| *p == parent && n == name) {
                if pos != 0 {
                    let link = node.links.remove(pos);
                    node.links.insert(0, link);
                }
            } else {
                add_first(&mut node.links, (parent, name.to_vec()));
            }
        }
        if self.nodes.len() >= self.sweep_at {
            self.sweep(now);
        }
        fattr
    }

    /// The remote now holds `ino`, which this mount created ahead of it
    /// (metadata write-back) with attributes of its own: `attr`, the
    /// remote's, gives it its identity, so later answers about the file
    /// are known to be about it. The attributes kept are this mount's
    /// (writes may have changed them since).
    pub fn identify(&mut self, ino: Ino, attr: &Attr) {
        let Some(id) = RemoteId::of(attr) else { return };
        if !self.nodes.contains_key(&ino) || self.ids.contains_key(&ino) {
            return;
        }
        self.by_id.insert(id, ino);
        self.ids.insert(ino, id);
        // The remote decides who owns what it creates (an agent not
        // running as root cannot give it away).
        if let Some(mine) = self.nodes.get_mut(&ino).and_then(|n| n.attr.as_mut()) {
            mine.uid = attr.uid;
            mine.gid = attr.gid;
            mine.blksize = attr.blksize;
            if mine.kind != FileKind::Regular {
                // Sizes and blocks of directories and symlinks are the
                // remote file system's to decide.
                mine.size = attr.size;
                mine.blocks = attr.blocks;
            }
        }
    }

    /// Puts `attr`, worked out here for a change acknowledged ahead of the
    /// remote, in place of `ino`'s attributes, trusted as long as fetched
    /// ones.
    pub fn set_local_attr(&mut self, ino: Ino, attr: FileAttr, now: Instant) {
        let until = self.policy.attributes_until(now);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.attr = Some(attr);
            node.attr_until = until;
        }
    }

    /// Whether `dir` is known to be empty: its listing is complete and
    /// fresh and holds no name.
    pub fn known_empty(&self, dir: Ino, now: Instant) -> bool {
        self.listing_fresh(dir, now) && self.names.child_names(dir).next().is_none()
    }

    /// Refreshes the attributes of a known inode (e.g. after `fstat`).
    pub fn set_attr(&mut self, ino: Ino, attr: &Attr, now: Instant) -> FileAttr {
        let fattr = FileAttr::from_remote(ino, attr);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.attr = Some(fattr);
            node.attr_until = self.policy.attributes_until(now);
        }
        fattr
    }

    /// A still-valid cached answer to "what is `parent/name`".
    pub fn cached_lookup(&self, parent: Ino, name: &[u8], now: Instant) -> Option<FileAttr> {
        let entry = self.names.get(parent, name)?;
        if entry.until <= now {
            return None;
        }
        self.fresh_attr(entry.ino, now)
    }

    /// Whether `parent/name` is known not to exist.
    pub fn known_absent(&self, parent: Ino, name: &[u8], now: Instant) -> bool {
        self.listing_fresh(parent, now) && self.names.get(parent, name).is_none()
    }

    /// `ino`'s attributes, if cached and still fresh.
    pub fn fresh_attr(&self, ino: Ino, now: Instant) -> Option<FileAttr> {
        let node = self.nodes.get(&ino)?;
        node.attr.filter(|_| node.attr_until > now)
    }

    pub fn ino_of(&self, parent: Ino, name: &[u8]) -> Option<Ino> {
        self.names.get(parent, name).map(|e| e.ino)
    }

    /// Whether `parent/name` is known as a directory (its entry may have
    /// expired: a directory's number never names another kind of file).
    pub fn names_a_directory(&self, parent: Ino, name: &[u8]) -> bool {
        self.ino_of(parent, name)
            .and_then(|ino| self.nodes.get(&ino))
            .is_some_and(|n| n.kind == FileKind::Directory)
    }

    /// Whether `parent/name` is known and its entry has not expired.
    pub fn name_fresh(&self, parent: Ino, name: &[u8], now: Instant) -> bool {
        self.names.get(parent, name).is_some_and(|e| e.until > now)
    }

    pub fn inc_lookup(&mut self, ino: Ino, n: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups += n;
        }
    }

    /// Drops `n` lookups; an inode nobody references any more leaves the
    /// table.
    pub fn forget(&mut self, ino: Ino, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups == 0 && node.open == 0 && !node.exported {
            self.remove(ino);
        }
    }

    /// Takes back `n` lookups counted by a lookup whose caller does not
    /// count them (a stateless frontend); never drops the inode.
    pub fn uncount(&mut self, ino: Ino, n: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(n);
        }
    }

    /// Keeps `ino` for as long as its file exists; `false` if unknown.
    pub fn export(&mut self, ino: Ino) -> bool {
        self.nodes.get_mut(&ino).map(|n| n.exported = true).is_some()
    }

    pub fn open_inc(&mut self, ino: Ino) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.open += 1;
        }
    }

    pub fn open_dec(&mut self, ino: Ino) {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.open = node.open.saturating_sub(1);
        let unused = node.open == 0 && node.lookups == 0 && !node.exported;
        if node.open == 0 {
            // The last close of a file deleted while open.
            self.retire_if_gone(ino);
        }
        if unused && ino != ROOT_INO {
            self.remove(ino);
        }
    }

    /// Forgets an inode nobody references. Its names stay: they still say
    /// what the remote directory holds (a directory listed in full must not
    /// start answering "no such file" for an entry the kernel let go of);
    /// a later lookup or listing brings the inode back. `sweep` drops the
    /// names once they expire.
    fn remove(&mut self, ino: Ino) {
        self.nodes.remove(&ino);
        self.contents.drop_file(ino);
    }

    fn drop_link(&mut self, ino: Ino, parent: Ino, name: &[u8]) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.links.retain(|(p, n)| !(*p == parent && n == name));
            // nlink and ctime changed.
            let now = Instant::now();
            node.attr_until = now;
            node.changed = Some(now);
        }
    }

    /// `parent/name` was removed; returns the inode it named, if known.
    pub fn unlink(&mut self, parent: Ino, name: &[u8]) -> Option<Ino> {
        let entry = self.names.remove(parent, name)?;
        self.dir_changed(parent);
        self.drop_link(entry.ino, parent, name);
        Some(entry.ino)
    }

    /// Mirrors a successful remote rename. A moved name is as sure as the
    /// entry it came from: one that had expired (a notification said the
    /// name changed) does not vouch for the file now under the new name.
    pub fn rename(&mut self, parent: Ino, name: &[u8], new_parent: Ino, new_name: &[u8], exchange: bool) {
        self.mutations += 1;
        let src = self.names.remove(parent, name);
        let dst = self.names.remove(new_parent, new_name);
        self.dir_changed(parent);
        self.dir_changed(new_parent);
        // Two names of one file: rename(2) leaves both, or (a lookup
        // answered during the rename found the moved file under the new
        // name already) the old one is gone. Which, the table cannot tell:
        // the old name stays, untrusted, as the last way to the file
        // (reopening by it checks the file's identity).
        let one_file = match (&src, &dst) {
            (Some(src), Some(dst)) if !exchange && src.ino == dst.ino => Some(src.ino),
            _ => None,
        };
        if let Some(dst) = &dst {
            self.drop_link(dst.ino, new_parent, new_name);
        }
        if let Some(src) = src {
            self.drop_link(src.ino, parent, name);
            self.add_link(src.ino, new_parent, new_name, src.until);
        }
        if let Some(ino) = one_file {
            let now = Instant::now();
            self.names.insert(parent, name, NameEntry { ino, until: now });
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.links.push((parent, name.to_vec()));
            }
        }
        if exchange {
            if let Some(dst) = dst {
                self.add_link(dst.ino, parent, name, dst.until);
            }
        }
    }

    fn add_link(&mut self, ino: Ino, parent: Ino, name: &[u8], until: Instant) {
        self.dir_changed(parent);
        self.names.insert(parent, name, NameEntry { ino, until });
        if let Some(node) = self.nodes.get_mut(&ino) {
            add_first(&mut node.links, (parent, name.to_vec()));
        }
    }

    /// The remote identity of `ino`, where the remote has one.
    pub fn remote_id(&self, ino: Ino) -> Option<RemoteId> {
        self.ids.get(&ino).copied()
    }

    /// Expires everything cached (attributes, names, listings, extended
    /// attribute names): after a new connection, what changed on the remote
    /// meanwhile is unknown. Links stay: paths are built from them.
    pub fn expire_all(&mut self) {
        let now = Instant::now();
        self.mutations += 1;
        self.contents.clear();
        let inos: Vec<Ino> = self.nodes.keys().copied().collect();
        for ino in inos {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.attr_until = now;
                node.changed = Some(now);
                node.forget_listing();
                node.xattr_names = None;
                node.data_version = node.data_version.wrapping_add(1);
                if node.kind == FileKind::Directory {
                    self.dir_changed(ino);
                }
            }
        }
        for entries in self.names.by_dir.values_mut() {
            for entry in entries.values_mut() {
                entry.until = now;
            }
        }
    }

    /// Every (directory, name) the table knows, for a frontend that drops
    /// its own cached entries after a new connection.
    pub fn known_names(&self) -> Vec<(Ino, Vec<u8>)> {
        self.names
            .by_dir
            .iter()
            .flat_map(|(dir, entries)| entries.keys().map(move |name| (*dir, name.to_vec())))
            .collect()
    }

    /// Every (directory, name) the table knows at or below directory
    /// `dir`, for a frontend that drops its own entries of a tree.
    pub fn names_below(&self, dir: Ino) -> Vec<(Ino, Vec<u8>)> {
        let mut found = Vec::new();
        let mut stack = vec![dir];
        let mut seen = HashSet::new();
        while let Some(dir) = stack.pop() {
            if !seen.insert(dir) {
                continue;
            }
            if let Some(entries) = self.names.by_dir.get(&dir) {
                for (name, entry) in entries {
                    found.push((dir, name.to_vec()));
                    stack.push(entry.ino);
                }
            }
        }
        found
    }

    /// Every inode number the table knows.
    pub fn known_inodes(&self) -> Vec<Ino> {
        self.nodes.keys().copied().collect()
    }

    /// Forgets what the cache policy says `change` of `ino` makes stale.
    pub fn changed(&mut self, ino: Ino, change: Change) {
        let is_dir = self
            .nodes
            .get(&ino)
            .is_some_and(|n| n.kind == FileKind::Directory);
        let forget = self.policy.forget(change, is_dir);
        self.mutations += 1;
        if forget.attributes {
            self.invalidate_attr(ino);
        }
        if forget.mark_changed {
            self.changed_here(ino);
        }
        if forget.xattrs {
            self.invalidate_xattrs(ino);
        }
        if forget.data {
            self.contents.drop_file(ino);
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.data_version = node.data_version.wrapping_add(1);
            }
        }
        if forget.names {
            self.invalidate_dir(ino);
        }
        if forget.tree {
            self.invalidate_tree(ino);
        }
    }

    /// Whether `ino`'s data is what it was when it was last opened (by
    /// `attr`, the attributes the open answered with: same size, mtime and
    /// ctime, and nothing changed or was told of in between), so that a
    /// kernel may keep the pages it cached then. Records this open.
    pub fn data_unchanged_since_opened(&mut self, ino: Ino, attr: &FileAttr) -> bool {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return false;
        };
        let stamp = DataStamp {
            version: node.data_version,
            size: attr.size,
            mtime: attr.mtime,
            ctime: attr.ctime,
        };
        node.opened_as.replace(stamp) == Some(stamp)
    }

    /// Where `ino`'s data stands (see [`Inode::data_version`]), with its
    /// attributes as cached, fresh or not.
    pub fn data_state(&self, ino: Ino) -> (u64, Option<FileAttr>) {
        self.nodes
            .get(&ino)
            .map_or((0, None), |n| (n.data_version, n.attr))
    }

    fn invalidate_attr(&mut self, ino: Ino) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            let now = Instant::now();
            node.attr_until = now;
            node.changed = Some(now);
        }
    }

    /// `ino` was just created, linked or opened with O_CREAT through this
    /// mount, and its attributes came with the answer: a listing asked
    /// for before shows older ones (one that raced the creation saw the
    /// new node before the agent gave it its owner).
    fn changed_here(&mut self, ino: Ino) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.changed = Some(Instant::now());
        }
    }

    /// An operation of this mount starts changing `dir`'s names on the
    /// remote.
    pub fn names_changing(&mut self, dir: Ino) {
        *self.renaming_in.entry(dir).or_default() += 1;
    }

    /// The operation [`Self::names_changing`] announced is over: its
    /// answer (or failure) is in.
    pub fn names_changed(&mut self, dir: Ino) {
        if let Some(count) = self.renaming_in.get_mut(&dir) {
            *count -= 1;
            if *count == 0 {
                self.renaming_in.remove(&dir);
            }
        }
        self.changed_here(dir);
    }

    /// Whether an operation of this mount is changing the names of `dir`
    /// or of a directory above it on the remote now: what the remote holds
    /// there may be its doing, not yet known here.
    /// A rename moves what is below its names too, so a path anywhere
    /// below such a directory may be one the rename is changing.
    pub fn names_changing_at_or_above(&self, dir: Ino) -> bool {
        if self.renaming_in.is_empty() {
            return false;
        }
        let mut at = dir;
        // Bounded: a table whose links loop (it never should) ends here.
        for _ in 0..4096 {
            if self.renaming_in.contains_key(&at) {
                return true;
            }
            match self.nodes.get(&at).and_then(|n| n.links.first()) {
                Some((parent, _)) if *parent != at => at = *parent,
                _ => return false,
            }
        }
        false
    }

    /// Whether `ino`'s attributes changed (through this mount, or as a
    /// notification said) after `asked`: a listing asked for then shows
    /// older ones.
    pub fn changed_since(&self, ino: Ino, asked: Instant) -> bool {
        self.nodes
            .get(&ino)
            .and_then(|n| n.changed)
            .is_some_and(|changed| changed > asked)
    }

    /// Forgets the extended attribute names of `ino`. Separate from
    /// attributes: a write changes size and times but no xattr, and the
    /// kernel asks for `security.capability` before every write.
    fn invalidate_xattrs(&mut self, ino: Ino) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.xattr_names = None;
        }
    }

    /// Remembers `ino`'s extended attribute names for the attribute TTL.
    pub fn set_xattr_names(&mut self, ino: Ino, names: Vec<Vec<u8>>, now: Instant) {
        let until = self.policy.attributes_until(now);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.xattr_names = Some((until, names.into_boxed_slice()));
        }
    }

    /// Still-valid extended attribute names of `ino`.
    pub fn cached_xattr_names(&self, ino: Ino, now: Instant) -> Option<&[Vec<u8>]> {
        match &self.nodes.get(&ino)?.xattr_names {
            Some((until, names)) if *until > now => Some(names),
            _ => None,
        }
    }

    /// Forgets what is cached about the names in directory `ino` (a change
    /// happened in it): its attributes (mtime, nlink), listing completeness
    /// and name validity. Links stay: they are how paths are built.
    fn invalidate_dir(&mut self, ino: Ino) {
        let now = Instant::now();
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.attr_until = now;
            node.changed = Some(now);
            node.forget_listing();
        }
        self.dir_changed(ino);
        for entry in self.names.children_mut(ino) {
            entry.until = now;
        }
    }

    /// [`InodeTable::invalidate_dir`] of `dir` and of every directory
    /// named below it: a directory may have moved, and what is below it is
    /// then reported by paths the table does not know. Empty ones too: a
    /// directory known empty (made here, or listed empty) answers lookups
    /// in it from that alone.
    fn invalidate_tree(&mut self, dir: Ino) {
        let mut stack = vec![dir];
        let mut seen = HashSet::new();
        while let Some(dir) = stack.pop() {
            if !seen.insert(dir) {
                continue;
            }
            self.invalidate_dir(dir);
            if let Some(entries) = self.names.by_dir.get(&dir) {
                stack.extend(entries.values().map(|e| e.ino).filter(|ino| {
                    self.names.by_dir.contains_key(ino)
                        || self.nodes.get(ino).is_some_and(|n| n.kind == FileKind::Directory)
                }));
            }
        }
    }

    /// A complete listing of `dir` was just loaded: names not in `present`
    /// are gone, and the set is complete until the TTL ends.
    pub fn listing_complete(&mut self, dir: Ino, present: &HashSet<Vec<u8>>, now: Instant) {
        let stale: Vec<Vec<u8>> = self
            .names
            .child_names(dir)
            .filter(|n| !present.contains(*n))
            .map(<[u8]>::to_vec)
            .collect();
        for name in stale {
            self.unlink(dir, &name);
        }
        if let Some(node) = self.nodes.get_mut(&dir) {
            node.dir_mut().listing_until = Some(self.policy.names_until(now));
        }
    }

    /// The set of names in `dir` changed: a listing fetched ahead is stale.
    fn dir_changed(&mut self, dir: Ino) {
        if let Some(node) = self.nodes.get_mut(&dir) {
            let dir = node.dir_mut();
            dir.version = dir.version.wrapping_add(1);
        }
    }

    pub fn dir_version(&self, dir: Ino) -> Option<u64> {
        self.nodes
            .get(&dir)
            .map(|n| n.dir.as_ref().map_or(0, |d| d.version))
    }

    /// Which complete listing of `dir` the table holds, while it is fresh:
    /// equal stamps mean the same set of names, none added, removed or
    /// given to another file in between.
    pub fn listing_stamp(&self, dir: Ino, now: Instant) -> Option<ListingStamp> {
        let state = self.nodes.get(&dir)?.dir.as_ref()?;
        let until = state.listing_until.filter(|until| *until > now)?;
        Some(ListingStamp {
            until,
            version: state.version,
        })
    }

    /// [`InodeTable::listing_stamp`] of `dir` if its names are exactly
    /// `items` (name and inode of each; `.` and `..` left out), so that a
    /// listing handed out from `items` is the table's.
    pub fn listing_stamp_of(&self, dir: Ino, items: &[DirItem], now: Instant) -> Option<ListingStamp> {
        let stamp = self.listing_stamp(dir, now)?;
        let count = self.names.by_dir.get(&dir).map_or(0, HashMap::len);
        let same = count == items.len()
            && items
                .iter()
                .all(|item| self.names.get(dir, &item.name).is_some_and(|e| e.ino == item.ino));
        same.then_some(stamp)
    }

    /// Whether a complete listing of `dir` is known and fresh.
    pub fn listing_fresh(&self, dir: Ino, now: Instant) -> bool {
        self.nodes
            .get(&dir)
            .and_then(Inode::listing_until)
            .is_some_and(|until| until > now)
    }

    /// Enters a complete listing of `dir` fetched ahead of a reader
    /// (asked for at `asked`), as a reader's listing would be: the reader
    /// lists it from the table (`listing_from_names`). Dropped if the
    /// directory changed since `version` was read.
    pub fn store_listing(
        &mut self,
        dir: Ino,
        version: u64,
        entries: Vec<TreeEntry>,
        keep_contents: bool,
        asked: Instant,
        now: Instant,
    ) {
        if self.dir_version(dir) != Some(version) {
            return;
        }
        let mut present = HashSet::with_capacity(entries.len());
        for entry in entries {
            if let Some((name, _, _)) = self.enter_entry(dir, entry, keep_contents, asked, now) {
                present.insert(name);
            }
        }
        self.listing_complete(dir, &present, now);
    }

    /// How many changes this mount made or was told of so far (see
    /// `mutations`): passed back to [`InodeTable::store_subtree`].
    pub fn mutations(&self) -> u64 {
        self.mutations
    }

    /// Enters the listings of directories below one just listed (the rest
    /// of a `ListTree` answer, asked for at `asked` when the table stood
    /// at `mutations`), each complete until the names TTL ends, with their
    /// small files' contents. Each names its directory by path, below one listed
    /// before it in the same answer. Nothing is kept if anything changed
    /// through the mount while the answer was on its way: a directory it
    /// names may have been renamed, or a file written, meanwhile.
    pub fn store_subtree(&mut self, dirs: Vec<ListedDir>, mutations: u64, asked: Instant, now: Instant) {
        if self.mutations != mutations {
            return;
        }
        for dir in dirs {
            let Some(ino) = self.resolve(&dir.path) else {
                continue;
            };
            if !self
                .nodes
                .get(&ino)
                .is_some_and(|n| n.kind == FileKind::Directory)
            {
                continue;
            }
            // Entered, not kept as items: a reader lists it from the
            // table (`listing_from_names`), and a walk's answers may
            // name a hundred thousand entries.
            let mut present = HashSet::with_capacity(dir.entries.len());
            for entry in dir.entries {
                if let Some((name, _, _)) = self.enter_entry(ino, entry, true, asked, now) {
                    present.insert(name);
                }
            }
            self.listing_complete(ino, &present, now);
        }
    }

    /// Enters a page of `dir`'s listing (names, attributes, xattr names),
    /// asked for at `asked`, and returns its entries as listing items, with
    /// offset 0. Entries without attributes vanished between the listing
    /// and their `lstat`. With `keep_contents`, the small files' contents
    /// that came with them are kept for their next open.
    pub fn enter_entries(
        &mut self,
        dir: Ino,
        entries: Vec<TreeEntry>,
        keep_contents: bool,
        asked: Instant,
        now: Instant,
    ) -> Vec<DirItem> {
        let mut items = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Some((name, fattr, attr)) = self.enter_entry(dir, entry, keep_contents, asked, now) {
                items.push(DirItem {
                    name,
                    ino: fattr.ino,
                    kind: fattr.kind,
                    offset: 0,
                    attr: Some(fattr),
                    remote: Some(attr),
                    asked,
                });
            }
        }
        items
    }

    /// [`InodeTable::enter_entries`] of one entry: its name and attributes,
    /// `None` if it vanished before its `lstat`.
    fn enter_entry(
        &mut self,
        dir: Ino,
        TreeEntry { entry, data }: TreeEntry,
        keep_contents: bool,
        asked: Instant,
        now: Instant,
    ) -> Option<(Vec<u8>, FileAttr, Attr)> {
        let attr = entry.attr?;
        let fattr = self.upsert(dir, &entry.name, &attr, now);
        let changed = self.changed_since(fattr.ino, asked);
        if changed {
            // Changed while the listing was on its way: its attributes
            // may be from before.
            if let Some(node) = self.nodes.get_mut(&fattr.ino) {
                node.attr_until = now;
            }
        }
        // Names from before a change (a `setfacl` through the mount while
        // the listing was on its way) would answer an ACL probe "absent".
        if let (Some(names), false) = (entry.xattrs, changed) {
            self.set_xattr_names(fattr.ino, names.into_iter().map(|n| n.into_vec()).collect(), now);
        }
        if let (Some(data), true, false) = (data, keep_contents, changed) {
            let version = self.nodes.get(&fattr.ino).map_or(0, |n| n.data_version);
            self.contents
                .keep(fattr.ino, &fattr, version, Bytes::from(data.into_vec()));
        }
        Some((entry.name.into_vec(), fattr, attr))
    }

    /// Keeps `data`, the whole contents of `ino` as read with `attr` (its
    /// attributes as just set) at its current data version, to be handed
    /// out as a listing's are.
    pub fn keep_contents(&mut self, ino: Ino, attr: &FileAttr, data: Bytes) {
        let version = self.nodes.get(&ino).map_or(0, |n| n.data_version);
        self.contents.keep(ino, attr, version, data);
    }

    /// The contents of `ino` that came with a listing, handed out once,
    /// if its fresh attributes still show the file they were read from.
    /// A regular file whose fresh attributes say it is empty is read as
    /// such: its contents as of those attributes are known.
    pub fn take_contents(&mut self, ino: Ino, now: Instant) -> Option<(FileAttr, Bytes)> {
        if !self.contents.holds(ino) {
            let attr = self.fresh_attr(ino, now)?;
            return (attr.kind == FileKind::Regular && attr.size == 0).then(|| (attr, Bytes::new()));
        }
        let attr = self.fresh_attr(ino, now);
        let version = self.nodes.get(&ino).map_or(0, |n| n.data_version);
        let data = self.contents.take(ino, attr.as_ref(), version)?;
        Some((attr?, data))
    }

    /// A listing of `dir` from the table alone, while its names are
    /// complete and fresh and every entry's attributes are: a directory
    /// listed a moment ago is listed again with no round trip. `None`
    /// when something is missing or expired.
    pub fn listing_from_names(&self, dir: Ino, now: Instant) -> Option<Vec<DirItem>> {
        if !self.listing_fresh(dir, now) {
            return None;
        }
        let Some(entries) = self.names.by_dir.get(&dir) else {
            return Some(Vec::new());
        };
        let mut items = Vec::with_capacity(entries.len());
        for (name, entry) in entries {
            if entry.until <= now {
                return None;
            }
            let attr = self.fresh_attr(entry.ino, now)?;
            items.push(DirItem {
                name: name.to_vec(),
                ino: entry.ino,
                kind: attr.kind,
                offset: 0,
                attr: Some(attr),
                remote: None,
                asked: now,
            });
        }
        Some(items)
    }

    /// Registers `parent/name`, listed from the table as `attr` (see
    /// [`InodeTable::listing_from_names`]), as handed to a frontend with
    /// its attributes: its inode as it is now, brought back if it was let
    /// go since it was listed. `None` if the name holds another file by
    /// now (the frontend then leaves the entry out).
    pub fn remember_listed(&mut self, parent: Ino, name: &[u8], attr: FileAttr) -> Option<FileAttr> {
        if self.names.get(parent, name)?.ino != attr.ino {
            return None;
        }
        let node = self.nodes.entry(attr.ino).or_insert_with(|| Inode {
            attr: Some(attr),
            links: vec![(parent, name.to_vec())],
            ..Inode::unseen(attr.kind, Instant::now())
        });
        node.lookups += 1;
        Some(node.attr.unwrap_or(attr))
    }

    /// Whether `dir` was listed completely before, with at most `max`
    /// entries, and that listing has expired: worth listing again rather
    /// than asking the remote about one name at a time.
    pub fn relist_worthwhile(&self, dir: Ino, max: usize, now: Instant) -> bool {
        let expired = self
            .nodes
            .get(&dir)
            .and_then(Inode::listing_until)
            .is_some_and(|until| until <= now);
        expired && self.names.by_dir.get(&dir).map_or(0, |m| m.len()) <= max
    }

    /// Directories named in `dir`, by inode, with no fresh listing.
    /// How many regular files of `dir` of 1 to `file_max` bytes, by
    /// their fresh attributes, have no contents kept here.
    pub fn small_files_without_contents(&self, dir: Ino, file_max: u64, now: Instant) -> usize {
        let Some(entries) = self.names.by_dir.get(&dir) else {
            return 0;
        };
        entries
            .values()
            .filter(|e| {
                self.fresh_attr(e.ino, now)
                    .is_some_and(|a| a.kind == FileKind::Regular && (1..=file_max).contains(&a.size))
                    && !self.contents.holds(e.ino)
            })
            .count()
    }

    pub fn unlisted_subdirs(&self, dir: Ino, now: Instant) -> Vec<Ino> {
        let Some(entries) = self.names.by_dir.get(&dir) else {
            return Vec::new();
        };
        entries
            .values()
            .filter(|e| {
                self.nodes
                    .get(&e.ino)
                    .is_some_and(|n| n.kind == FileKind::Directory)
                    && !self.listing_fresh(e.ino, now)
            })
            .map(|e| e.ino)
            .collect()
    }

    /// Resolves a remote path through the names known to the table.
    pub fn resolve(&self, path: &[u8]) -> Option<Ino> {
        let mut ino = ROOT_INO;
        for part in path.split(|b| *b == b'/').filter(|p| !p.is_empty() && *p != b".") {
            ino = self.names.get(ino, part)?.ino;
        }
        Some(ino)
    }

    /// Evicts inodes that are only cache (no lookups, nothing open), whose
    /// attributes expired, and that no other inode hangs below.
    fn sweep(&mut self, now: Instant) {
        let parents: HashSet<Ino> = self
            .nodes
            .values()
            .flat_map(|n| n.links.iter().map(|(p, _)| *p))
            .collect();
        let victims: Vec<Ino> = self
            .nodes
            .iter()
            .filter(|(ino, n)| {
                **ino != ROOT_INO
                    && n.lookups == 0
                    && n.open == 0
                    && !n.exported
                    && n.attr_until <= now
                    && !parents.contains(ino)
            })
            .map(|(ino, _)| *ino)
            .collect();
        for ino in victims {
            self.remove(ino);
        }
        // Expired names of forgotten inodes. A directory losing one no
        // longer has a complete name set.
        let nodes = &self.nodes;
        let mut incomplete = Vec::new();
        self.names.by_dir.retain(|dir, entries| {
            let before = entries.len();
            entries.retain(|_, e| e.until > now || nodes.contains_key(&e.ino));
            if entries.len() != before {
                incomplete.push(*dir);
            }
            !entries.is_empty()
        });
        for dir in incomplete {
            if let Some(node) = self.nodes.get_mut(&dir) {
                node.forget_listing();
            }
        }
        // Numbers of files neither a node nor a name refers to any more.
        let named: HashSet<Ino> = self
            .names
            .by_dir
            .values()
            .flat_map(|m| m.values().map(|e| e.ino))
            .collect();
        let (nodes, by_id) = (&self.nodes, &mut self.by_id);
        self.ids.retain(|ino, id| {
            let keep = nodes.contains_key(ino) || named.contains(ino);
            if !keep && by_id.get(id) == Some(ino) {
                by_id.remove(id);
            }
            keep
        });
        self.sweep_at = (self.nodes.len() * 2).max(4096);
    }

    pub fn len_nodes(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn attr(ino: u64, mode: u32) -> Attr {
        Attr {
            ino,
            mode,
            nlink: 1,
            ..Attr::default()
        }
    }

    fn table() -> InodeTable {
        table_with_root(&attr(500, 0o40755))
    }

    fn table_with_root(root: &Attr) -> InodeTable {
        let opts = crate::options::VfsOptions {
            attr_ttl: Duration::from_secs(60),
            dir_ttl: Duration::from_secs(60),
            ..Default::default()
        };
        InodeTable::new(root, CachePolicy::new(&opts))
    }

    #[test]
    fn numbers_are_keyed_by_device_inode_and_birth_time() {
        let mut t = table();
        let now = Instant::now();
        assert_eq!(t.ino_for(ROOT_INO, b"", &attr(500, 0o40755)), ROOT_INO);
        let on_dev = |dev: u64, ino: u64, birth: i64| Attr {
            dev,
            btime: Some(yonder_proto::Timespec { sec: birth, nsec: 0 }),
            ..attr(ino, 0o100644)
        };
        // The same inode number on two file systems: two files.
        let a = t.upsert(ROOT_INO, b"a", &on_dev(1, 7, 100), now).ino;
        let b = t.upsert(ROOT_INO, b"b", &on_dev(2, 7, 100), now).ino;
        assert_ne!(a, b);
        assert_eq!(t.path(a).unwrap(), b"a");
        assert_eq!(t.path(b).unwrap(), b"b");
        // The remote's inode 1 is not the root.
        assert_ne!(t.upsert(ROOT_INO, b"one", &on_dev(1, 1, 5), now).ino, ROOT_INO);
        // A reused number with another birth time is another file.
        t.unlink(ROOT_INO, b"a");
        let reused = t.upsert(ROOT_INO, b"c", &on_dev(1, 7, 200), now).ino;
        assert_ne!(reused, a);
        assert!(t.same_file(reused, &on_dev(1, 7, 200)));
        assert!(!t.same_file(a, &on_dev(1, 7, 200)));
    }

    #[test]
    fn without_inode_numbers_files_are_known_by_path_and_renames_carry_them() {
        let mut t = table_with_root(&attr(0, 0o40755));
        let now = Instant::now();
        let a = t.upsert(ROOT_INO, b"a", &attr(0, 0o100644), now).ino;
        let b = t.upsert(ROOT_INO, b"b", &attr(0, 0o100644), now).ino;
        assert_ne!(a, b, "two files, two numbers");
        assert_ne!(a, ROOT_INO);
        assert_eq!(
            t.upsert(ROOT_INO, b"a", &attr(0, 0o100644), now).ino,
            a,
            "seen again"
        );
        t.rename(ROOT_INO, b"a", ROOT_INO, b"z", false);
        assert_eq!(
            t.upsert(ROOT_INO, b"z", &attr(0, 0o100644), now).ino,
            a,
            "renamed"
        );
        assert!(t.same_file(a, &attr(0, 0o100644)));
        // The name now holds a directory: another file.
        let d = t.upsert(ROOT_INO, b"z", &attr(0, 0o40755), now).ino;
        assert_ne!(d, a);
        assert!(!t.same_file(a, &attr(0, 0o40755)));
    }

    #[test]
    fn a_file_deleted_here_gives_up_its_number_without_birth_times() {
        let mut t = table();
        let now = Instant::now();
        let old = t.upsert(ROOT_INO, b"doc", &attr(60, 0o100644), now).ino;
        t.unlink(ROOT_INO, b"doc");
        t.retire_if_gone(old);
        let new = t.upsert(ROOT_INO, b"doc", &attr(60, 0o100644), now).ino;
        assert_ne!(new, old, "the remote reused the number for a new file");
        // A file with another link left keeps its number.
        let linked = Attr {
            nlink: 2,
            ..attr(61, 0o100644)
        };
        let x = t.upsert(ROOT_INO, b"x", &linked, now).ino;
        t.unlink(ROOT_INO, b"x");
        t.retire_if_gone(x);
        assert_eq!(t.upsert(ROOT_INO, b"y", &linked, now).ino, x);
    }

    #[test]
    fn paths_follow_directory_renames() {
        let mut t = table();
        let now = Instant::now();
        let a = t.upsert(ROOT_INO, b"a", &attr(10, 0o40755), now).ino;
        let b = t.upsert(a, b"b", &attr(11, 0o40755), now).ino;
        let f = t.upsert(b, b"f", &attr(12, 0o100644), now).ino;
        assert_eq!(t.path(f).unwrap(), b"a/b/f");
        t.rename(ROOT_INO, b"a", ROOT_INO, b"z", false);
        assert_eq!(t.path(f).unwrap(), b"z/b/f");
        assert_eq!(t.resolve(b"z/b/f"), Some(f));
        assert_eq!(t.resolve(b"a/b/f"), None);
    }

    #[test]
    fn a_path_through_a_name_made_unknown_is_not_fresh() {
        let mut t = table();
        let now = Instant::now();
        let d = t.upsert(ROOT_INO, b"d", &attr(60, 0o40755), now).ino;
        let f = t.upsert(d, b"f", &attr(61, 0o100644), now).ino;
        assert_eq!(t.fresh_path(f, now).unwrap(), b"d/f");
        t.changed(ROOT_INO, Change::NamesUnknown);
        let later = now + Duration::from_millis(1);
        assert_eq!(t.path(f).unwrap(), b"d/f", "still the way to try");
        assert_eq!(t.fresh_path(f, later), None, "a name above it is unknown");
        assert_eq!(t.fresh_path(ROOT_INO, later).unwrap(), b"");
    }

    #[test]
    fn hard_links_share_an_inode_and_survive_unlink_of_one_name() {
        let mut t = table();
        let now = Instant::now();
        let a = t.upsert(ROOT_INO, b"x", &attr(20, 0o100644), now);
        let b = t.upsert(ROOT_INO, b"y", &attr(20, 0o100644), now);
        assert_eq!(a.ino, b.ino);
        t.unlink(ROOT_INO, b"y");
        assert_eq!(t.path(a.ino).unwrap(), b"x");
        t.unlink(ROOT_INO, b"x");
        assert_eq!(t.path(a.ino), None);
    }

    #[test]
    fn rename_over_existing_unlinks_target_and_exchange_swaps() {
        let mut t = table();
        let now = Instant::now();
        let x = t.upsert(ROOT_INO, b"a", &attr(30, 0o100644), now).ino;
        let y = t.upsert(ROOT_INO, b"b", &attr(31, 0o100644), now).ino;
        t.rename(ROOT_INO, b"a", ROOT_INO, b"b", true);
        assert_eq!(t.path(x).unwrap(), b"b");
        assert_eq!(t.path(y).unwrap(), b"a");
        t.rename(ROOT_INO, b"a", ROOT_INO, b"b", false);
        assert_eq!(t.path(y).unwrap(), b"b");
        assert_eq!(t.path(x), None);
    }

    #[test]
    fn forget_removes_unreferenced_inodes_but_not_open_ones() {
        let mut t = table();
        let now = Instant::now();
        let a = t.upsert(ROOT_INO, b"a", &attr(40, 0o100644), now).ino;
        t.inc_lookup(a, 2);
        t.open_inc(a);
        t.forget(a, 2);
        assert!(t.get(a).is_some());
        t.open_dec(a);
        assert!(t.get(a).is_none());
        assert_eq!(t.len_nodes(), 1);
        // The name is still known to exist: only the inode was let go.
        let present: HashSet<Vec<u8>> = [b"a".to_vec()].into_iter().collect();
        t.listing_complete(ROOT_INO, &present, now);
        assert!(!t.known_absent(ROOT_INO, b"a", now));
        assert!(
            t.cached_lookup(ROOT_INO, b"a", now).is_none(),
            "attributes went with the inode"
        );
    }

    #[test]
    fn complete_listing_answers_negative_lookups_and_drops_vanished_names() {
        let mut t = table();
        let now = Instant::now();
        t.upsert(ROOT_INO, b"keep", &attr(50, 0o100644), now);
        t.upsert(ROOT_INO, b"gone", &attr(51, 0o100644), now);
        let present: HashSet<Vec<u8>> = [b"keep".to_vec()].into_iter().collect();
        t.listing_complete(ROOT_INO, &present, now);
        assert!(t.known_absent(ROOT_INO, b"gone", now));
        assert!(t.known_absent(ROOT_INO, b"other", now));
        assert!(!t.known_absent(ROOT_INO, b"keep", now));
        t.changed(ROOT_INO, Change::NamesUnknown);
        assert!(!t.known_absent(ROOT_INO, b"other", now + Duration::from_millis(1)));
    }
}
