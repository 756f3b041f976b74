//! The namespace: the inode table (numbers, lookup counts, names, cached
//! attributes and listings; `inode.rs`) behind its lock, and the questions
//! every other part asks it: the path of an inode, the path of a name, what
//! to call an inode in a message, what a new node's owner is.

mod contents;
mod inode;

use crate::attr::{Caller, FileAttr, Ino};
use crate::cache_policy::{CachePolicy, Change};
use crate::error::{display_path, Result, VfsError};
use crate::sync::lock;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;
use yonder_proto::{Attr, Errno, Owner};

pub use inode::DirItem;
pub(crate) use inode::InodeTable;
pub(crate) use inode::ListingStamp;

/// The setgid bit of a directory: new nodes in it take its group.
const SETGID: u32 = 0o2000;

pub(crate) struct Namespace {
    table: Mutex<InodeTable>,
    /// A copy of the table's policy, for questions that need no lock.
    policy: CachePolicy,
    /// Whether nodes created here start without extended attributes.
    new_nodes_bare: bool,
}

/// An operation of this mount changing directories' names on the remote,
/// from before it is sent until its answer is in (see
/// [`Namespace::names_changing`]).
pub(crate) struct NamesChanging<'a> {
    ns: &'a Namespace,
    dirs: Vec<Ino>,
}

impl NamesChanging<'_> {
    /// The answer is in and `table` (held by the caller) now shows it.
    pub fn done(mut self, table: &mut InodeTable) {
        for dir in std::mem::take(&mut self.dirs) {
            table.names_changed(dir);
        }
    }
}

impl Drop for NamesChanging<'_> {
    /// Also when the operation is abandoned midway.
    fn drop(&mut self) {
        if self.dirs.is_empty() {
            return;
        }
        let mut table = self.ns.table();
        for dir in &self.dirs {
            table.names_changed(*dir);
        }
    }
}

impl Namespace {
    pub fn new(root: &Attr, policy: CachePolicy, new_nodes_bare: bool) -> Namespace {
        Namespace {
            table: Mutex::new(InodeTable::new(root, policy.clone())),
            policy,
            new_nodes_bare,
        }
    }

    /// The inode table, locked. Held for a handful of map operations,
    /// never across a wait.
    pub fn table(&self) -> MutexGuard<'_, InodeTable> {
        lock(&self.table)
    }

    pub fn policy(&self) -> &CachePolicy {
        &self.policy
    }

    /// Forgets what `change` of `ino` makes stale (see `cache_policy.rs`).
    pub fn changed(&self, ino: Ino, change: Change) {
        self.table().changed(ino, change);
    }

    /// Says, until the guard is dropped, that an operation of this mount
    /// is changing the names of `dirs` on the remote.
    pub fn names_changing(&self, dirs: [Ino; 2]) -> NamesChanging<'_> {
        let dirs = if dirs[0] == dirs[1] { &dirs[..1] } else { &dirs[..] };
        let mut table = self.table();
        for dir in dirs {
            table.names_changing(*dir);
        }
        NamesChanging {
            ns: self,
            dirs: dirs.to_vec(),
        }
    }

    /// Path of an inode for messages.
    pub fn describe(&self, ino: Ino) -> String {
        match self.table().path(ino) {
            Some(p) => display_path(&p),
            None => format!("<inode {ino}>"),
        }
    }

    /// The remote path of `ino`: ENOENT if it has no name left, ESTALE if
    /// it is not known at all.
    pub fn path(&self, op: &'static str, ino: Ino) -> Result<Vec<u8>> {
        let table = self.table();
        match table.path(ino) {
            Some(p) => Ok(p),
            None if table.get(ino).is_some() => {
                Err(VfsError::new(op, format!("<inode {ino}>"), Errno::ENOENT))
            }
            None => Err(VfsError::new(op, format!("<inode {ino}>"), Errno::ESTALE)),
        }
    }

    /// The remote path of `parent/name`, for a name that is a valid one.
    pub fn child_path(&self, op: &'static str, parent: Ino, name: &[u8]) -> Result<Vec<u8>> {
        if name.is_empty() {
            return Err(VfsError::new(op, "", Errno::ENOENT));
        }
        if name.contains(&b'/') || name == b"." || name == b".." {
            return Err(VfsError::new(op, display_path(name), Errno::EINVAL));
        }
        let table = self.table();
        match table.child_path(parent, name) {
            Some(p) => Ok(p),
            None => {
                let errno = if table.get(parent).is_some() {
                    Errno::ENOENT
                } else {
                    Errno::ESTALE
                };
                Err(VfsError::new(op, display_path(name), errno))
            }
        }
    }

    pub fn first_link(&self, ino: Ino) -> Option<(Ino, Vec<u8>)> {
        self.table().get(ino).and_then(|n| n.links.first().cloned())
    }

    /// Owner for a node created in `parent`: the caller, except that a
    /// setgid directory passes its group on, as it would locally.
    pub fn owner_for(&self, caller: &Caller, parent: Ino) -> Owner {
        let mut owner = caller.owner();
        // Even expired attributes tell the setgid bit, which rarely changes.
        if let Some(attr) = self.table().get(parent).and_then(|n| n.attr) {
            if attr.perm & SETGID != 0 {
                owner.gid = attr.gid;
            }
        }
        owner
    }

    /// Registers a node that an operation created (or linked) at
    /// `parent/name`, counting one lookup for the caller.
    pub fn entered(&self, parent: Ino, name: &[u8], attr: &Attr) -> FileAttr {
        let mut table = self.table();
        let fattr = table.upsert(parent, name, attr, Instant::now());
        table.changed(fattr.ino, Change::Created);
        table.inc_lookup(fattr.ino, 1);
        table.changed(parent, Change::Entries);
        fattr
    }

    /// Like [`Namespace::entered`] for a node this call created: in a tree
    /// whose new nodes start bare, it is known to have no extended
    /// attributes, so the kernel's `security.capability` probe before its
    /// first write costs no round trip.
    pub fn entered_new(&self, parent: Ino, name: &[u8], attr: &Attr) -> FileAttr {
        let fattr = self.entered(parent, name, attr);
        if self.new_nodes_bare {
            let now = Instant::now();
            let mut table = self.table();
            let inherits_acl = table
                .cached_xattr_names(parent, now)
                .is_some_and(|names| names.iter().any(|n| n == b"system.posix_acl_default"));
            if !inherits_acl {
                table.set_xattr_names(fattr.ino, Vec::new(), now);
            }
        }
        fattr
    }

    /// Whether a node created in `parent` now is known to come out as the
    /// mount would make it, with no extended attributes: the tree labels
    /// nothing and `parent` is known to hold no default ACL (whose entries
    /// the remote would apply to its mode). Only then is a creation
    /// acknowledged ahead of the remote.
    pub fn creates_plainly(&self, parent: Ino) -> bool {
        self.new_nodes_bare
            && self
                .table()
                .cached_xattr_names(parent, Instant::now())
                .is_some_and(|names| !names.iter().any(|n| n == b"system.posix_acl_default"))
    }

    /// Whether `parent` passes its group (and to directories its
    /// set-group-ID bit) on to what is created in it.
    pub fn is_setgid(&self, parent: Ino) -> bool {
        self.table()
            .get(parent)
            .and_then(|n| n.attr)
            .is_some_and(|a| a.perm & SETGID != 0)
    }

    /// `parent/name` was removed on the remote: its file loses the name
    /// (and is forgotten if that was its last, with nothing open).
    pub fn name_removed(&self, parent: Ino, name: &[u8]) {
        let mut table = self.table();
        if let Some(ino) = table.unlink(parent, name) {
            table.retire_if_gone(ino);
        }
        table.changed(parent, Change::Entries);
    }

    /// Forgets the name `ino` was reached by (the remote says it names
    /// something else now, or nothing), if another call has not already.
    pub fn forget_name_of(&self, ino: Ino) {
        let mut table = self.table();
        if let Some((parent, name)) = table.get(ino).and_then(|n| n.links.first().cloned()) {
            table.unlink(parent, &name);
            table.changed(parent, Change::NamesUnknown);
        }
    }
}
