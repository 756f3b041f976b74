//! A reference-model property test of the VFS (after mountpoint-s3's
//! `tests/reftests/`).
//!
//! Random sequences of file system operations run through the [`Vfs`] over
//! a real agent (in process, over a pipe, serving a temporary directory),
//! and through a small in-memory model of a POSIX tree: directories, files
//! with contents, modes, known mtimes, link counts and the handles open on
//! them. Each step's answer (success, data read, or errno) must be the
//! model's. After some steps (each with probability 0.3, so that buffered
//! writes and cached state live across several steps), at the end, and
//! once more after every handle is closed, the state is compared:
//!
//! 1. every path, and every absent name of the pool in each directory,
//!    looked up as the kernel walks a path (before anything is listed, so
//!    the VFS's name, negative and attribute caches answer): kind, mode,
//!    size, nlink, known mtime, or ENOENT;
//! 2. a readdir walk: names, `.` and `..`, readdirplus attributes
//!    (`remember`), lookup and getattr of each entry, every file's contents
//!    read through a fresh handle, and `fstat` of every open handle; no
//!    handle leaked;
//! 3. the backing directory: names, kinds, modes, nlink, contents;
//! 4. mtime and ctime of every path through the VFS against the backing
//!    directory's.
//!
//! Throughout, an inode number must never name two model files, and the
//! names of one model file (hard links) must share one.
//!
//! The harness drives the VFS as the kernel does: a path is walked one
//! lookup at a time (a component that is not a directory is ENOTDIR, as
//! the kernel decides), O_CREAT looks the name up first and creates only
//! what is absent (EEXIST for O_EXCL, EISDIR for a directory, as the
//! kernel decides), a read-only open of a directory is an opendir, close is
//! flush then release, and lookups are counted and forgotten in bulk (the
//! kernel dropping its caches), except one for each open file. With zero
//! TTLs a read is preceded by a getattr through its handle (FUSE's
//! auto_inval_data with expired attributes); within a TTL it is not.
//! Unlink, rmdir and rename name their last component without looking it
//! up first, as a stateless (NFS) frontend may (the kernel would look it
//! up, and answer ENOENT itself). Everything else (EEXIST, EISDIR,
//! ENOTDIR, ENOTEMPTY, EINVAL, EPERM...) is left to the VFS and the remote,
//! and must be what Linux answers.
//!
//! Sequences also change the backing directory directly, behind the VFS's
//! back (write in place, truncate, create, atomic save, unlink, mkdir,
//! rmdir, rename, link, chmod). The freshness rule each test encodes:
//!
//! - `zero_ttls`: with attribute and directory TTLs of 0, a change made on
//!   the remote shows in the VFS's next operation, provided it shows in the
//!   file's size or mtime: a remote data change here always gets an mtime
//!   of its own, as a real edit made after a reader's open does (the file
//!   system's coarse clock could otherwise give two quick writes one mtime,
//!   which no client can tell apart; neither can the kernel's page cache).
//! - `long_ttls_with_change_notification`: with TTLs of an hour, changes
//!   made through the mount show at once (every cache must be kept right by
//!   the VFS itself), and a change made on the remote shows at once after
//!   `Vfs::invalidate_path` of every path that named, or now names,
//!   something it changed: what a change notifier will report.
//!
//! Data a handle wrote may still be buffered in the VFS when another party
//! changes the remote file: who wins is then a matter of timing on any
//! network file system. So before each remote change the harness sends
//! every buffer (`Vfs::flush_all`, as `write_delay` passing would).
//!
//! A third run (`zero_ttls_with_connections_replaced`) also draws
//! `Reconnect` steps: the connection dies with whatever is in flight on it
//! (background write-back, mostly: its answers are lost, though the agent
//! carried the requests out), and a new connection to the same tree takes
//! its place, as after a network failure. Nothing of it may show: every
//! answer and the whole state stay the model's, the replayed writes
//! included.
//!
//! Cases: `YONDER_MODEL_CASES` (default 1,000) per test;
//! `YONDER_MODEL_SEED` repeats the cases of a failed run (it is printed);
//! `YONDER_MODEL_STATS=1` prints how often each kind of step had each
//! answer. A failure shrinks to a minimal sequence; the message shows the
//! setup and a trace of every step as it ran (paths and handles resolved,
//! with its answer), then the mismatch.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use yonder_remote::AgentClient;
use yonder_testkit::faults::Disconnecting;
use yonder_vfs::{
    open_flags as of, Caller, Errno, Fh, FileAttr, FileKind, Ino, MemoryJournal, RenameFlags, SetAttr,
    SetTime, Timespec, Vfs, VfsOptions, ROOT_INO,
};

// ----- the vocabulary of a sequence -----

const SLOTS: usize = 4;

/// A file name from a pool small enough that names collide often.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Name(u8);

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", (b'a' + self.0) as char)
    }
}

/// A path below the root, one to three names deep.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Path(Vec<Name>);

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

impl Path {
    fn display(&self) -> String {
        let names: Vec<String> = self.0.iter().map(|n| format!("{n:?}")).collect();
        names.join("/")
    }

    fn last(&self) -> Name {
        *self.0.last().expect("paths are never empty")
    }

    fn dirs(&self) -> &[Name] {
        &self.0[..self.0.len() - 1]
    }

    fn on_disk(&self, root: &FsPath) -> PathBuf {
        root.join(self.display())
    }
}

/// A slot for an open file handle, as an application's descriptor.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Slot(usize);

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "h{}", self.0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Mode(u32);

impl fmt::Debug for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#o}", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    R,
    W,
    RW,
}

impl Access {
    fn flags(self) -> u32 {
        match self {
            Access::R => of::READ_ONLY,
            Access::W => of::WRITE_ONLY,
            Access::RW => of::READ_WRITE,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RenameMode {
    Plain,
    NoReplace,
    Exchange,
}

/// One step. Writes fill their bytes with a letter of the step's own
/// (`A`, `B`, ... through the mount; `a`, `b`, ... on the remote), so a
/// trace shows which step wrote what.
#[derive(Clone, Debug)]
enum Op<P = Path, H = Slot> {
    /// `open(path, O_CREAT | O_RDWR [| O_EXCL], mode)` into a free slot.
    Create {
        path: P,
        slot: H,
        excl: bool,
        mode: Mode,
    },
    /// `open(path, flags)` into a free slot; `sync` is O_SYNC.
    Open {
        path: P,
        slot: H,
        access: Access,
        trunc: bool,
        append: bool,
        sync: bool,
    },
    /// `close`: flush, then release.
    Close {
        slot: H,
    },
    Write {
        slot: H,
        offset: u64,
        len: usize,
    },
    Read {
        slot: H,
        offset: u64,
        len: u32,
    },
    Fsync {
        slot: H,
    },
    Truncate {
        path: P,
        size: u64,
    },
    Ftruncate {
        slot: H,
        size: u64,
    },
    Chmod {
        path: P,
        mode: Mode,
    },
    /// `utimensat` of both times, with nanoseconds.
    Utimes {
        path: P,
        sec: i64,
    },
    /// `futimens` of both times.
    Futimes {
        slot: H,
        sec: i64,
    },
    Mkdir {
        path: P,
        mode: Mode,
    },
    Rmdir {
        path: P,
    },
    Unlink {
        path: P,
    },
    Rename {
        from: P,
        to: P,
        how: RenameMode,
    },
    Link {
        from: P,
        to: P,
    },
    /// The kernel lets go of every inode it does not hold open.
    Forget,
    /// The connection dies (requests in flight lose their answers) and a
    /// new one to the same tree takes its place: invisible to
    /// applications.
    Reconnect,
    // Changes made on the remote, behind the VFS's back.
    RemoteWrite {
        path: P,
        offset: u64,
        len: usize,
    },
    RemoteTruncate {
        path: P,
        size: u64,
    },
    RemoteCreate {
        path: P,
        len: usize,
    },
    /// An atomic save: a new file written elsewhere, renamed over `path`.
    RemoteReplace {
        path: P,
        len: usize,
    },
    RemoteUnlink {
        path: P,
    },
    RemoteMkdir {
        path: P,
    },
    RemoteRmdir {
        path: P,
    },
    RemoteRename {
        from: P,
        to: P,
    },
    RemoteLink {
        from: P,
        to: P,
    },
    RemoteChmod {
        path: P,
        mode: Mode,
    },
}

impl<P, H> Op<P, H> {
    fn is_remote(&self) -> bool {
        matches!(
            self,
            Op::RemoteWrite { .. }
                | Op::RemoteTruncate { .. }
                | Op::RemoteCreate { .. }
                | Op::RemoteReplace { .. }
                | Op::RemoteUnlink { .. }
                | Op::RemoteMkdir { .. }
                | Op::RemoteRmdir { .. }
                | Op::RemoteRename { .. }
                | Op::RemoteLink { .. }
                | Op::RemoteChmod { .. }
        )
    }

    /// The paths a remote change names.
    fn remote_paths(&self) -> Vec<&P> {
        match self {
            Op::RemoteRename { from, to } | Op::RemoteLink { from, to } => vec![from, to],
            Op::RemoteWrite { path, .. }
            | Op::RemoteTruncate { path, .. }
            | Op::RemoteCreate { path, .. }
            | Op::RemoteReplace { path, .. }
            | Op::RemoteUnlink { path }
            | Op::RemoteMkdir { path }
            | Op::RemoteRmdir { path }
            | Op::RemoteChmod { path, .. } => vec![path],
            _ => vec![],
        }
    }

    /// The same step on other paths and slots; `None` if a slot cannot be
    /// had.
    fn map<P2, H2>(
        &self,
        mut path: impl FnMut(&P) -> P2,
        mut slot: impl FnMut(&H, Need) -> Option<H2>,
    ) -> Option<Op<P2, H2>> {
        Some(match self {
            Op::Create {
                path: p,
                slot: h,
                excl,
                mode,
            } => Op::Create {
                path: path(p),
                slot: slot(h, Need::Free)?,
                excl: *excl,
                mode: *mode,
            },
            Op::Open {
                path: p,
                slot: h,
                access,
                trunc,
                append,
                sync,
            } => Op::Open {
                path: path(p),
                slot: slot(h, Need::Free)?,
                access: *access,
                trunc: *trunc,
                append: *append,
                sync: *sync,
            },
            Op::Close { slot: h } => Op::Close {
                slot: slot(h, Need::Open)?,
            },
            Op::Write { slot: h, offset, len } => Op::Write {
                slot: slot(h, Need::Writable)?,
                offset: *offset,
                len: *len,
            },
            Op::Read { slot: h, offset, len } => Op::Read {
                slot: slot(h, Need::Readable)?,
                offset: *offset,
                len: *len,
            },
            Op::Fsync { slot: h } => Op::Fsync {
                slot: slot(h, Need::Open)?,
            },
            Op::Truncate { path: p, size } => Op::Truncate {
                path: path(p),
                size: *size,
            },
            Op::Ftruncate { slot: h, size } => Op::Ftruncate {
                slot: slot(h, Need::Writable)?,
                size: *size,
            },
            Op::Chmod { path: p, mode } => Op::Chmod {
                path: path(p),
                mode: *mode,
            },
            Op::Utimes { path: p, sec } => Op::Utimes {
                path: path(p),
                sec: *sec,
            },
            Op::Futimes { slot: h, sec } => Op::Futimes {
                slot: slot(h, Need::Open)?,
                sec: *sec,
            },
            Op::Mkdir { path: p, mode } => Op::Mkdir {
                path: path(p),
                mode: *mode,
            },
            Op::Rmdir { path: p } => Op::Rmdir { path: path(p) },
            Op::Unlink { path: p } => Op::Unlink { path: path(p) },
            Op::Rename { from, to, how } => Op::Rename {
                from: path(from),
                to: path(to),
                how: *how,
            },
            Op::Link { from, to } => Op::Link {
                from: path(from),
                to: path(to),
            },
            Op::Forget => Op::Forget,
            Op::Reconnect => Op::Reconnect,
            Op::RemoteWrite { path: p, offset, len } => Op::RemoteWrite {
                path: path(p),
                offset: *offset,
                len: *len,
            },
            Op::RemoteTruncate { path: p, size } => Op::RemoteTruncate {
                path: path(p),
                size: *size,
            },
            Op::RemoteCreate { path: p, len } => Op::RemoteCreate {
                path: path(p),
                len: *len,
            },
            Op::RemoteReplace { path: p, len } => Op::RemoteReplace {
                path: path(p),
                len: *len,
            },
            Op::RemoteUnlink { path: p } => Op::RemoteUnlink { path: path(p) },
            Op::RemoteMkdir { path: p } => Op::RemoteMkdir { path: path(p) },
            Op::RemoteRmdir { path: p } => Op::RemoteRmdir { path: path(p) },
            Op::RemoteRename { from, to } => Op::RemoteRename {
                from: path(from),
                to: path(to),
            },
            Op::RemoteLink { from, to } => Op::RemoteLink {
                from: path(from),
                to: path(to),
            },
            Op::RemoteChmod { path: p, mode } => Op::RemoteChmod {
                path: path(p),
                mode: *mode,
            },
        })
    }
}

/// Where a generated step's path points, decided when it runs so that
/// most steps find something to act on.
#[derive(Clone)]
enum Pick {
    /// A path that exists then (one of them, by index), else `a`.
    Existing(prop::sample::Index),
    /// A name in a directory that exists then (by index): often new.
    In(prop::sample::Index, Name),
    /// This path, whatever is there.
    Literal(Path),
}

impl fmt::Debug for Pick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pick::Existing(_) => f.write_str("<existing>"),
            Pick::In(_, name) => write!(f, "<dir>/{name:?}"),
            Pick::Literal(path) => write!(f, "{path:?}"),
        }
    }
}

/// Which open handle a generated step uses: one of those that allow it,
/// by index; for an open, the first free slot.
#[derive(Clone)]
struct Held(prop::sample::Index);

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("h?")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Free,
    Open,
    Readable,
    Writable,
}

/// Tunables drawn per case: buffer, page and window sizes small enough
/// that short sequences cross their boundaries.
#[derive(Clone, Debug)]
struct Setup {
    write_buffer: usize,
    readdir_page: u32,
    readahead_max: usize,
    /// Metadata write-back on or off.
    write_back: bool,
}

/// The answer to a step.
#[derive(Clone, PartialEq, Eq)]
enum Outcome {
    Done,
    /// The step does not apply (no such handle; a descriptor not open for
    /// that; a slot in use): neither side runs it. The kernel refuses
    /// writes and ftruncate on descriptors not open for writing, and reads
    /// on those not open for reading, before a file system sees them.
    Skipped,
    Written(usize),
    Data(Vec<u8>),
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Done => f.write_str("ok"),
            Outcome::Skipped => f.write_str("skipped"),
            Outcome::Written(n) => write!(f, "wrote {n}"),
            Outcome::Data(data) => write!(f, "{}", render(data)),
        }
    }
}

type Answer = Result<Outcome, Errno>;

/// Bytes as runs of letters: `A×3 ·×2 b` (`·` for zeros).
fn render(data: &[u8]) -> String {
    if data.is_empty() {
        return "<empty>".into();
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        let run = data[i..].iter().take_while(|x| **x == b).count();
        let c = if b == 0 {
            '·'
        } else if b.is_ascii_graphic() {
            b as char
        } else {
            '?'
        };
        out.push(if run == 1 {
            c.to_string()
        } else {
            format!("{c}×{run}")
        });
        i += run;
    }
    format!("[{}]", out.join(" "))
}

/// What a step writes with: its letter, and the mtime a remote change of
/// that step gets.
#[derive(Clone, Copy)]
struct StepCtx {
    local_fill: u8,
    remote_fill: u8,
    stamp: Timespec,
}

impl StepCtx {
    fn new(step: usize) -> StepCtx {
        StepCtx {
            local_fill: b'A' + (step % 26) as u8,
            remote_fill: b'a' + (step % 26) as u8,
            stamp: Timespec {
                sec: 1_600_000_000 + step as i64,
                nsec: 1000 + step as u32,
            },
        }
    }
}

fn utimes_stamp(sec: i64) -> Timespec {
    Timespec {
        sec,
        nsec: 123_456_789,
    }
}

// ----- the model -----

type Id = u32;
const ROOT: Id = 0;

#[derive(Clone, Debug)]
enum Body {
    File(Vec<u8>),
    Dir(BTreeMap<Name, Id>),
}

#[derive(Clone, Debug)]
struct Node {
    body: Body,
    mode: u32,
    /// Names of a file (0 once unlinked; kept while open).
    links: u32,
    /// A directory's parent.
    parent: Id,
    /// Known only after it was set explicitly (or by a remote change of
    /// this harness); `None` once anything may have changed it.
    mtime: Option<Timespec>,
    /// The remote gave this file a name of its own (`RemoteLink`): the VFS
    /// may never have seen that name, and may know no path to it once the
    /// names it did see are gone.
    linked_remotely: bool,
}

#[derive(Clone, Copy, Debug)]
struct Handle {
    id: Id,
    read: bool,
    write: bool,
    append: bool,
}

#[derive(Clone)]
struct Model {
    nodes: HashMap<Id, Node>,
    next: Id,
    slots: [Option<Handle>; SLOTS],
    /// A remote change happened while a handle was open (since all were
    /// last closed): the VFS may not know an open file's path any more.
    /// So may a `Forget` while one was open: the harness forgets the
    /// directories above open files, which the kernel (whose open file
    /// pins its parents) never does.
    remote_while_open: bool,
}

fn set_range(data: &mut Vec<u8>, offset: usize, len: usize, fill: u8) {
    if len == 0 {
        return;
    }
    if data.len() < offset + len {
        data.resize(offset + len, 0);
    }
    data[offset..offset + len].fill(fill);
}

impl Model {
    fn new() -> Model {
        let root = Node {
            body: Body::Dir(BTreeMap::new()),
            mode: 0o755,
            links: 1,
            parent: ROOT,
            mtime: None,
            linked_remotely: false,
        };
        Model {
            nodes: [(ROOT, root)].into_iter().collect(),
            next: 1,
            slots: [None; SLOTS],
            remote_while_open: false,
        }
    }

    fn node(&self, id: Id) -> &Node {
        &self.nodes[&id]
    }

    fn node_mut(&mut self, id: Id) -> &mut Node {
        self.nodes.get_mut(&id).expect("model node")
    }

    fn is_dir(&self, id: Id) -> bool {
        matches!(self.node(id).body, Body::Dir(_))
    }

    fn children(&self, id: Id) -> &BTreeMap<Name, Id> {
        match &self.node(id).body {
            Body::Dir(children) => children,
            Body::File(_) => panic!("not a directory"),
        }
    }

    fn children_mut(&mut self, id: Id) -> &mut BTreeMap<Name, Id> {
        match &mut self.node_mut(id).body {
            Body::Dir(children) => children,
            Body::File(_) => panic!("not a directory"),
        }
    }

    fn data_mut(&mut self, id: Id) -> &mut Vec<u8> {
        match &mut self.node_mut(id).body {
            Body::File(data) => data,
            Body::Dir(_) => panic!("not a file"),
        }
    }

    fn child(&self, dir: Id, name: Name) -> Option<Id> {
        self.children(dir).get(&name).copied()
    }

    /// The directory holding `path`'s last name, as the kernel's walk
    /// finds it.
    fn walk_parent(&self, path: &Path) -> Result<Id, Errno> {
        let mut cur = ROOT;
        for name in path.dirs() {
            cur = self.child(cur, *name).ok_or(Errno::ENOENT)?;
            if !self.is_dir(cur) {
                return Err(Errno::ENOTDIR);
            }
        }
        Ok(cur)
    }

    fn resolve(&self, path: &Path) -> Result<Id, Errno> {
        let dir = self.walk_parent(path)?;
        self.child(dir, path.last()).ok_or(Errno::ENOENT)
    }

    fn file_at(&self, path: &Path) -> Result<Id, Errno> {
        let id = self.resolve(path)?;
        if self.is_dir(id) {
            return Err(Errno::EISDIR);
        }
        Ok(id)
    }

    /// Whether directory `a` is `b` or one of its ancestors.
    fn ancestor_or_self(&self, a: Id, mut b: Id) -> bool {
        loop {
            if a == b {
                return true;
            }
            if b == ROOT {
                return false;
            }
            b = self.node(b).parent;
        }
    }

    fn nlink(&self, id: Id) -> u64 {
        match &self.node(id).body {
            Body::File(_) => self.node(id).links as u64,
            Body::Dir(children) => 2 + children.values().filter(|c| self.is_dir(**c)).count() as u64,
        }
    }

    fn add(&mut self, body: Body, mode: u32, parent: Id, mtime: Option<Timespec>) -> Id {
        let id = self.next;
        self.next += 1;
        self.nodes.insert(
            id,
            Node {
                body,
                mode,
                links: 1,
                parent,
                mtime,
                linked_remotely: false,
            },
        );
        id
    }

    fn touch_dir(&mut self, dir: Id) {
        self.node_mut(dir).mtime = None;
    }

    /// Removes the name `dir/name`, which holds `id`.
    fn remove_entry(&mut self, dir: Id, name: Name) {
        let id = self.children_mut(dir).remove(&name).expect("entry to remove");
        self.touch_dir(dir);
        let node = self.node_mut(id);
        node.links -= 1;
        if node.links == 0 {
            self.collect(id);
        }
    }

    /// Drops a node nothing names or holds open any more.
    fn collect(&mut self, id: Id) {
        let node = self.node(id);
        if node.links == 0 && !self.slots.iter().flatten().any(|h| h.id == id) {
            self.nodes.remove(&id);
        }
    }

    fn handle(&self, slot: Slot) -> Option<Handle> {
        self.slots[slot.0]
    }

    /// Every path naming `id` (several for hard links).
    fn paths_of(&self, id: Id) -> Vec<Path> {
        let mut out = Vec::new();
        let mut stack = vec![(ROOT, Vec::new())];
        while let Some((dir, prefix)) = stack.pop() {
            for (name, child) in self.children(dir) {
                let mut path = prefix.clone();
                path.push(*name);
                if *child == id {
                    out.push(Path(path.clone()));
                }
                if self.is_dir(*child) {
                    stack.push((*child, path));
                }
            }
        }
        out
    }

    fn step(&mut self, op: &Op, ctx: StepCtx) -> Answer {
        let open = self.slots.iter().any(Option::is_some);
        if !open {
            self.remote_while_open = false;
        } else if op.is_remote() || matches!(op, Op::Forget) {
            self.remote_while_open = true;
        }
        match op {
            Op::Create {
                path,
                slot,
                excl,
                mode,
            } => {
                if self.handle(*slot).is_some() {
                    return Ok(Outcome::Skipped);
                }
                let dir = self.walk_parent(path)?;
                let id = match self.child(dir, path.last()) {
                    Some(_) if *excl => return Err(Errno::EEXIST),
                    Some(id) if self.is_dir(id) => return Err(Errno::EISDIR),
                    Some(id) => id,
                    None => {
                        let id = self.add(Body::File(Vec::new()), mode.0, dir, None);
                        self.children_mut(dir).insert(path.last(), id);
                        self.touch_dir(dir);
                        id
                    }
                };
                self.slots[slot.0] = Some(Handle {
                    id,
                    read: true,
                    write: true,
                    append: false,
                });
                Ok(Outcome::Done)
            }
            Op::Open {
                path,
                slot,
                access,
                trunc,
                append,
                sync: _,
            } => {
                if self.handle(*slot).is_some() {
                    return Ok(Outcome::Skipped);
                }
                let id = self.resolve(path)?;
                if self.is_dir(id) {
                    // A read-only open of a directory is an opendir.
                    return match access {
                        Access::R => Ok(Outcome::Done),
                        _ => Err(Errno::EISDIR),
                    };
                }
                if *trunc {
                    self.data_mut(id).clear();
                    self.node_mut(id).mtime = None;
                }
                self.slots[slot.0] = Some(Handle {
                    id,
                    read: *access != Access::W,
                    write: *access != Access::R,
                    append: *append,
                });
                Ok(Outcome::Done)
            }
            Op::Close { slot } => {
                let Some(h) = self.handle(*slot) else {
                    return Ok(Outcome::Skipped);
                };
                self.slots[slot.0] = None;
                self.collect(h.id);
                Ok(Outcome::Done)
            }
            Op::Write { slot, offset, len } => {
                let Some(h) = self.handle(*slot).filter(|h| h.write) else {
                    return Ok(Outcome::Skipped);
                };
                if *len > 0 {
                    let data = self.data_mut(h.id);
                    let at = if h.append { data.len() } else { *offset as usize };
                    set_range(data, at, *len, ctx.local_fill);
                    self.node_mut(h.id).mtime = None;
                }
                Ok(Outcome::Written(*len))
            }
            Op::Read { slot, offset, len } => {
                let Some(h) = self.handle(*slot).filter(|h| h.read) else {
                    return Ok(Outcome::Skipped);
                };
                let Body::File(data) = &self.node(h.id).body else {
                    unreachable!("handles are on files")
                };
                let start = (*offset as usize).min(data.len());
                let end = (start + *len as usize).min(data.len());
                Ok(Outcome::Data(data[start..end].to_vec()))
            }
            Op::Fsync { slot } => match self.handle(*slot) {
                Some(_) => Ok(Outcome::Done),
                None => Ok(Outcome::Skipped),
            },
            Op::Truncate { path, size } | Op::RemoteTruncate { path, size } => {
                let id = self.file_at(path)?;
                self.data_mut(id).resize(*size as usize, 0);
                self.node_mut(id).mtime = op.is_remote().then_some(ctx.stamp);
                Ok(Outcome::Done)
            }
            Op::Ftruncate { slot, size } => {
                let Some(h) = self.handle(*slot).filter(|h| h.write) else {
                    return Ok(Outcome::Skipped);
                };
                self.data_mut(h.id).resize(*size as usize, 0);
                self.node_mut(h.id).mtime = None;
                Ok(Outcome::Done)
            }
            Op::Chmod { path, mode } | Op::RemoteChmod { path, mode } => {
                let id = self.resolve(path)?;
                self.node_mut(id).mode = if self.is_dir(id) { mode.0 | 0o700 } else { mode.0 };
                Ok(Outcome::Done)
            }
            Op::Utimes { path, sec } => {
                let id = self.resolve(path)?;
                self.node_mut(id).mtime = Some(utimes_stamp(*sec));
                Ok(Outcome::Done)
            }
            Op::Futimes { slot, sec } => {
                let Some(h) = self.handle(*slot) else {
                    return Ok(Outcome::Skipped);
                };
                self.node_mut(h.id).mtime = Some(utimes_stamp(*sec));
                Ok(Outcome::Done)
            }
            Op::Mkdir { path, mode } => self.mkdir(path, mode.0 | 0o700),
            Op::RemoteMkdir { path } => self.mkdir(path, 0o755),
            Op::Rmdir { path } | Op::RemoteRmdir { path } => {
                let dir = self.walk_parent(path)?;
                let id = self.child(dir, path.last()).ok_or(Errno::ENOENT)?;
                if !self.is_dir(id) {
                    return Err(Errno::ENOTDIR);
                }
                if !self.children(id).is_empty() {
                    return Err(Errno::ENOTEMPTY);
                }
                self.remove_entry(dir, path.last());
                Ok(Outcome::Done)
            }
            Op::Unlink { path } | Op::RemoteUnlink { path } => {
                let dir = self.walk_parent(path)?;
                let id = self.child(dir, path.last()).ok_or(Errno::ENOENT)?;
                if self.is_dir(id) {
                    // Linux says EISDIR where POSIX says EPERM.
                    return Err(Errno::EISDIR);
                }
                self.remove_entry(dir, path.last());
                Ok(Outcome::Done)
            }
            Op::Rename { from, to, how } => self.rename(from, to, *how),
            Op::RemoteRename { from, to } => self.rename(from, to, RenameMode::Plain),
            Op::Link { from, to } | Op::RemoteLink { from, to } => {
                let id = self.resolve(from)?;
                let dir = self.walk_parent(to)?;
                if self.child(dir, to.last()).is_some() {
                    return Err(Errno::EEXIST);
                }
                if self.is_dir(id) {
                    return Err(Errno::EPERM);
                }
                self.children_mut(dir).insert(to.last(), id);
                self.node_mut(id).links += 1;
                if matches!(op, Op::RemoteLink { .. }) {
                    self.node_mut(id).linked_remotely = true;
                }
                self.touch_dir(dir);
                Ok(Outcome::Done)
            }
            Op::Forget => Ok(Outcome::Done),
            // An open file the VFS cannot reopen by path on the new
            // connection (unlinked while open, moved or replaced on the
            // remote behind its back, or left only with a name the remote
            // gave it and the VFS never looked up) answers ESTALE from then
            // on, by design; the model knows nothing of connections or of
            // what the VFS has seen, so those cases are left out.
            Op::Reconnect => {
                let unreachable = self
                    .slots
                    .iter()
                    .flatten()
                    .any(|h| self.paths_of(h.id).is_empty() || self.node(h.id).linked_remotely);
                if open && (self.remote_while_open || unreachable) {
                    Ok(Outcome::Skipped)
                } else {
                    Ok(Outcome::Done)
                }
            }
            Op::RemoteWrite { path, offset, len } => {
                let id = self.file_at(path)?;
                set_range(self.data_mut(id), *offset as usize, *len, ctx.remote_fill);
                self.node_mut(id).mtime = Some(ctx.stamp);
                Ok(Outcome::Done)
            }
            Op::RemoteCreate { path, len } => {
                let dir = self.walk_parent(path)?;
                if self.child(dir, path.last()).is_some() {
                    return Err(Errno::EEXIST);
                }
                let id = self.add(
                    Body::File(vec![ctx.remote_fill; *len]),
                    0o644,
                    dir,
                    Some(ctx.stamp),
                );
                self.children_mut(dir).insert(path.last(), id);
                self.touch_dir(dir);
                Ok(Outcome::Done)
            }
            Op::RemoteReplace { path, len } => {
                let dir = self.walk_parent(path)?;
                match self.child(dir, path.last()) {
                    Some(old) if self.is_dir(old) => return Err(Errno::EISDIR),
                    Some(_) => self.remove_entry(dir, path.last()),
                    None => {}
                }
                let id = self.add(
                    Body::File(vec![ctx.remote_fill; *len]),
                    0o644,
                    dir,
                    Some(ctx.stamp),
                );
                self.children_mut(dir).insert(path.last(), id);
                self.touch_dir(dir);
                Ok(Outcome::Done)
            }
        }
    }

    fn mkdir(&mut self, path: &Path, mode: u32) -> Answer {
        let dir = self.walk_parent(path)?;
        if self.child(dir, path.last()).is_some() {
            return Err(Errno::EEXIST);
        }
        let id = self.add(Body::Dir(BTreeMap::new()), mode, dir, None);
        self.children_mut(dir).insert(path.last(), id);
        self.touch_dir(dir);
        Ok(Outcome::Done)
    }

    /// `renameat2(2)` as Linux checks it (`do_renameat2`, `vfs_rename`).
    fn rename(&mut self, from: &Path, to: &Path, how: RenameMode) -> Answer {
        let from_dir = self.walk_parent(from)?;
        let to_dir = self.walk_parent(to)?;
        let old = self.child(from_dir, from.last()).ok_or(Errno::ENOENT)?;
        let new = self.child(to_dir, to.last());
        if how == RenameMode::NoReplace && new.is_some() {
            return Err(Errno::EEXIST);
        }
        if how == RenameMode::Exchange && new.is_none() {
            return Err(Errno::ENOENT);
        }
        if from_dir != to_dir {
            // lock_rename's trap: neither may be an ancestor of the other's
            // directory.
            if self.is_dir(old) && self.ancestor_or_self(old, to_dir) {
                return Err(Errno::EINVAL);
            }
            if new.is_some_and(|n| self.is_dir(n) && self.ancestor_or_self(n, from_dir)) {
                return Err(match how {
                    RenameMode::Exchange => Errno::EINVAL,
                    _ => Errno::ENOTEMPTY,
                });
            }
        }
        if Some(old) == new {
            // Two names of one file (or one name): nothing to do.
            return Ok(Outcome::Done);
        }
        if how == RenameMode::Exchange {
            let new = new.expect("checked above");
            self.children_mut(from_dir).insert(from.last(), new);
            self.children_mut(to_dir).insert(to.last(), old);
            for (id, dir) in [(old, to_dir), (new, from_dir)] {
                if self.is_dir(id) {
                    let node = self.node_mut(id);
                    node.parent = dir;
                    node.mtime = None;
                }
            }
            self.touch_dir(from_dir);
            self.touch_dir(to_dir);
            return Ok(Outcome::Done);
        }
        if let Some(new) = new {
            match (self.is_dir(old), self.is_dir(new)) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !self.children(new).is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
            self.remove_entry(to_dir, to.last());
        }
        self.children_mut(from_dir).remove(&from.last());
        self.children_mut(to_dir).insert(to.last(), old);
        if self.is_dir(old) {
            let node = self.node_mut(old);
            node.parent = to_dir;
            node.mtime = None;
        }
        self.touch_dir(from_dir);
        self.touch_dir(to_dir);
        Ok(Outcome::Done)
    }

    /// Ids a remote change of `op` touches: what its paths name, before or
    /// after it.
    fn touched_by(&self, op: &Op) -> Vec<Id> {
        op.remote_paths()
            .into_iter()
            .filter_map(|p| self.resolve(p).ok())
            .collect()
    }

    /// Every path in the tree, and every directory's (the root's empty),
    /// in a fixed order.
    fn all_paths(&self) -> (Vec<Path>, Vec<Path>) {
        let (mut all, mut dirs) = (Vec::new(), vec![Path(Vec::new())]);
        let mut stack = vec![(ROOT, Vec::new())];
        while let Some((dir, prefix)) = stack.pop() {
            for (name, child) in self.children(dir) {
                let mut path = prefix.clone();
                path.push(*name);
                all.push(Path(path.clone()));
                if self.is_dir(*child) {
                    dirs.push(Path(path.clone()));
                    stack.push((*child, path));
                }
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        dirs.sort_by(|a, b| a.0.cmp(&b.0));
        (all, dirs)
    }

    /// A generated step made concrete against the current tree and
    /// handles; `None` when it needs a handle there is none for.
    fn resolve_step(&self, op: &Op<Pick, Held>) -> Option<Op> {
        let (all, dirs) = self.all_paths();
        // Deep trees only make paths long.
        let shallow: Vec<&Path> = dirs.iter().filter(|d| d.0.len() < 3).collect();
        let path = |pick: &Pick| match pick {
            Pick::Existing(_) if all.is_empty() => Path(vec![Name(0)]),
            Pick::Existing(i) => i.get(&all).clone(),
            Pick::In(i, name) => {
                let mut path = i.get(&shallow).0.clone();
                path.push(*name);
                Path(path)
            }
            Pick::Literal(path) => path.clone(),
        };
        let slot = |held: &Held, need: Need| {
            let fits: Vec<usize> = (0..SLOTS)
                .filter(|s| match (need, self.slots[*s]) {
                    (Need::Free, slot) => slot.is_none(),
                    (_, None) => false,
                    (Need::Open, Some(_)) => true,
                    (Need::Readable, Some(h)) => h.read,
                    (Need::Writable, Some(h)) => h.write,
                })
                .collect();
            match need {
                Need::Free => fits.first().copied(),
                _ if fits.is_empty() => None,
                _ => Some(*held.0.get(&fits)),
            }
            .map(Slot)
        };
        op.map(path, slot)
    }
}

// ----- the system under test: the VFS over an in-process agent -----

/// An agent serving `root` in this process, over a pipe.
async fn in_process_agent(root: &FsPath) -> Arc<AgentClient> {
    let (client, agent) = tokio::io::duplex(1 << 20);
    let (agent_reader, agent_writer) = tokio::io::split(agent);
    let config = yonder_agent::AgentConfig {
        root: root.to_path_buf(),
    };
    tokio::spawn(yonder_agent::serve(config, agent_reader, agent_writer));
    let (reader, writer) = tokio::io::split(client);
    Arc::new(
        AgentClient::handshake(reader, writer, "in-process agent")
            .await
            .expect("handshake with the in-process agent"),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Freshness {
    /// TTLs of 0: remote changes show at the next operation.
    ZeroTtls,
    /// TTLs of an hour; remote changes are followed by `invalidate_path`.
    LongTtlsNotified,
}

struct Sut {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// The current connection, and the client under it.
    conn: Arc<Disconnecting>,
    client: Arc<AgentClient>,
    scratch: PathBuf,
    vfs: Arc<Vfs>,
    caller: Caller,
    slots: [Option<(Fh, Ino)>; SLOTS],
    /// Lookups counted for the "kernel", to forget.
    lookups: HashMap<Ino, u64>,
    freshness: Freshness,
    /// Metadata write-back: changes are answered before the remote has
    /// them, with times estimated here until they settle.
    write_back: bool,
}

fn errno(e: yonder_vfs::VfsError) -> Errno {
    e.errno()
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_io(&e)
}

fn system_time(t: Timespec) -> SystemTime {
    UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
}

impl Sut {
    async fn new(setup: &Setup, freshness: Freshness) -> Sut {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path().join("root");
        let scratch = dir.path().join("scratch");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&scratch).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ttl = match freshness {
            Freshness::ZeroTtls => Duration::ZERO,
            Freshness::LongTtlsNotified => Duration::from_secs(3600),
        };
        let opts = VfsOptions {
            read_only: false,
            attr_ttl: ttl,
            dir_ttl: ttl,
            // No change feed is followed here: the TTLs above hold.
            unwatched_ttl: ttl,
            feedless_ttl: ttl,
            write_buffer: setup.write_buffer,
            // Buffered data leaves when the VFS must send it, never on a
            // timer: runs are repeatable.
            write_delay: Duration::from_secs(3600),
            readahead_chunk: 4096,
            readahead_max: setup.readahead_max,
            readdir_page: setup.readdir_page,
            op_timeout: Duration::from_secs(20),
            write_back: setup.write_back,
        };
        let client = in_process_agent(&root).await;
        let conn = Disconnecting::new(client.clone());
        let vfs = Vfs::new(conn.clone(), opts, Arc::new(MemoryJournal::default()))
            .await
            .expect("VFS over the agent");
        Sut {
            _dir: dir,
            root,
            conn,
            client,
            write_back: setup.write_back,
            scratch,
            vfs,
            caller: Caller::current(),
            slots: [None; SLOTS],
            lookups: HashMap::new(),
            freshness,
        }
    }

    /// The connection dies: every call in flight loses its answer (the
    /// agent carries out what it had received; the harness waits for that,
    /// so nothing of the old connection lands late), and a new connection
    /// to the same tree is put in place.
    async fn reconnect(&mut self) {
        self.conn.disconnect();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.client.in_flight() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the old agent never answered"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.client = in_process_agent(&self.root).await;
        self.conn = Disconnecting::new(self.client.clone());
        self.vfs.replace_remote(self.conn.clone());
        // Open files are reopened and unconfirmed writes replayed before
        // the next step (a remote change racing that would lose an open
        // file, by design).
        let mut state = self.vfs.connection_state();
        let up = state.wait_for(|s| *s == yonder_vfs::ConnectionState::Up);
        tokio::time::timeout(Duration::from_secs(10), up)
            .await
            .expect("the new connection is up")
            .expect("the VFS is alive");
    }

    fn counted(&mut self, ino: Ino) {
        *self.lookups.entry(ino).or_default() += 1;
    }

    async fn lookup(&mut self, parent: Ino, name: Name) -> Result<FileAttr, Errno> {
        let attr = self
            .vfs
            .lookup(&self.caller, parent, &[b'a' + name.0])
            .await
            .map_err(errno)?;
        self.counted(attr.ino);
        Ok(attr)
    }

    /// The kernel's walk to the directory holding `path`'s last name.
    async fn walk_parent(&mut self, path: &Path) -> Result<Ino, Errno> {
        let mut ino = ROOT_INO;
        for name in path.dirs() {
            let attr = self.lookup(ino, *name).await?;
            if attr.kind != FileKind::Directory {
                return Err(Errno::ENOTDIR);
            }
            ino = attr.ino;
        }
        Ok(ino)
    }

    async fn resolve(&mut self, path: &Path) -> Result<FileAttr, Errno> {
        let dir = self.walk_parent(path).await?;
        self.lookup(dir, path.last()).await
    }

    fn name(path: &Path) -> Vec<u8> {
        vec![b'a' + path.last().0]
    }

    async fn setattr(&mut self, ino: Ino, fh: Option<Fh>, attr: SetAttr) -> Answer {
        self.vfs
            .setattr(&self.caller, ino, fh, attr)
            .await
            .map_err(errno)?;
        Ok(Outcome::Done)
    }

    async fn step(&mut self, op: &Op, ctx: StepCtx) -> Answer {
        if op.is_remote() {
            // What the mount wrote has reached the remote before anyone
            // else changes it (as `write_delay` passing would see to).
            if let Err(e) = self.vfs.flush_all().await {
                return Err(e.errno());
            }
            return self.remote_step(op, ctx);
        }
        match op {
            Op::Create {
                path,
                slot,
                excl,
                mode,
            } => {
                let dir = self.walk_parent(path).await?;
                let (fh, ino) = match self.lookup(dir, path.last()).await {
                    Ok(_) if *excl => return Err(Errno::EEXIST),
                    Ok(attr) if attr.kind == FileKind::Directory => return Err(Errno::EISDIR),
                    Ok(attr) => {
                        let (fh, _) = self
                            .vfs
                            .open(&self.caller, attr.ino, of::READ_WRITE)
                            .await
                            .map_err(errno)?;
                        (fh, attr.ino)
                    }
                    Err(Errno::ENOENT) => {
                        let flags = of::READ_WRITE | if *excl { of::EXCLUSIVE } else { 0 };
                        let (fh, attr) = self
                            .vfs
                            .create(&self.caller, dir, &Self::name(path), mode.0, flags)
                            .await
                            .map_err(errno)?;
                        self.counted(attr.ino);
                        (fh, attr.ino)
                    }
                    Err(e) => return Err(e),
                };
                self.slots[slot.0] = Some((fh, ino));
                Ok(Outcome::Done)
            }
            Op::Open {
                path,
                slot,
                access,
                trunc,
                append,
                sync,
            } => {
                let attr = self.resolve(path).await?;
                if attr.kind == FileKind::Directory && *access == Access::R {
                    let fh = self.vfs.opendir(&self.caller, attr.ino).map_err(errno)?;
                    self.vfs.releasedir(fh).map_err(errno)?;
                    return Ok(Outcome::Done);
                }
                let mut flags = access.flags();
                if *trunc {
                    flags |= of::TRUNCATE;
                }
                if *append {
                    flags |= of::APPEND;
                }
                if *sync {
                    flags |= of::SYNC;
                }
                let (fh, _) = self
                    .vfs
                    .open(&self.caller, attr.ino, flags)
                    .await
                    .map_err(errno)?;
                self.slots[slot.0] = Some((fh, attr.ino));
                Ok(Outcome::Done)
            }
            Op::Close { slot } => {
                let (fh, _) = self.slots[slot.0].take().expect("model says open");
                let flushed = self.vfs.flush(fh).await;
                self.vfs.release(fh).await.map_err(errno)?;
                flushed.map_err(errno)?;
                Ok(Outcome::Done)
            }
            Op::Write { slot, offset, len } => {
                let (fh, _) = self.slots[slot.0].expect("model says open");
                let data = vec![ctx.local_fill; *len];
                let n = self.vfs.write(fh, *offset, &data).await.map_err(errno)?;
                Ok(Outcome::Written(n as usize))
            }
            Op::Read { slot, offset, len } => {
                let (fh, ino) = self.slots[slot.0].expect("model says open");
                if self.freshness == Freshness::ZeroTtls {
                    // The kernel's attributes have expired: it asks before
                    // reading (auto_inval_data). Within a TTL it does not.
                    self.vfs.getattr(ino, Some(fh)).await.map_err(errno)?;
                }
                let data = self.vfs.read(fh, *offset, *len).await.map_err(errno)?;
                Ok(Outcome::Data(data.to_vec()))
            }
            Op::Fsync { slot } => {
                let (fh, _) = self.slots[slot.0].expect("model says open");
                self.vfs.fsync(fh, false).await.map_err(errno)?;
                Ok(Outcome::Done)
            }
            Op::Truncate { path, size } => {
                let attr = self.resolve(path).await?;
                let set = SetAttr {
                    size: Some(*size),
                    ..SetAttr::default()
                };
                self.setattr(attr.ino, None, set).await
            }
            Op::Ftruncate { slot, size } => {
                let (fh, ino) = self.slots[slot.0].expect("model says open");
                let set = SetAttr {
                    size: Some(*size),
                    ..SetAttr::default()
                };
                self.setattr(ino, Some(fh), set).await
            }
            Op::Chmod { path, mode } => {
                let attr = self.resolve(path).await?;
                let mode = if attr.kind == FileKind::Directory {
                    mode.0 | 0o700
                } else {
                    mode.0
                };
                let set = SetAttr {
                    mode: Some(mode),
                    ..SetAttr::default()
                };
                self.setattr(attr.ino, None, set).await
            }
            Op::Utimes { path, sec } => {
                let attr = self.resolve(path).await?;
                let t = SetTime::Set(utimes_stamp(*sec));
                let set = SetAttr {
                    atime: t,
                    mtime: t,
                    ..SetAttr::default()
                };
                self.setattr(attr.ino, None, set).await
            }
            Op::Futimes { slot, sec } => {
                let (fh, ino) = self.slots[slot.0].expect("model says open");
                let t = SetTime::Set(utimes_stamp(*sec));
                let set = SetAttr {
                    atime: t,
                    mtime: t,
                    ..SetAttr::default()
                };
                self.setattr(ino, Some(fh), set).await
            }
            Op::Mkdir { path, mode } => {
                let dir = self.walk_parent(path).await?;
                let attr = self
                    .vfs
                    .mkdir(&self.caller, dir, &Self::name(path), mode.0 | 0o700)
                    .await
                    .map_err(errno)?;
                self.counted(attr.ino);
                Ok(Outcome::Done)
            }
            Op::Rmdir { path } => {
                let dir = self.walk_parent(path).await?;
                self.vfs
                    .rmdir(&self.caller, dir, &Self::name(path))
                    .await
                    .map_err(errno)?;
                Ok(Outcome::Done)
            }
            Op::Unlink { path } => {
                let dir = self.walk_parent(path).await?;
                self.vfs
                    .unlink(&self.caller, dir, &Self::name(path))
                    .await
                    .map_err(errno)?;
                Ok(Outcome::Done)
            }
            Op::Rename { from, to, how } => {
                let from_dir = self.walk_parent(from).await?;
                let to_dir = self.walk_parent(to).await?;
                let flags = RenameFlags {
                    noreplace: *how == RenameMode::NoReplace,
                    exchange: *how == RenameMode::Exchange,
                };
                self.vfs
                    .rename(
                        &self.caller,
                        from_dir,
                        &Self::name(from),
                        to_dir,
                        &Self::name(to),
                        flags,
                    )
                    .await
                    .map_err(errno)?;
                Ok(Outcome::Done)
            }
            Op::Link { from, to } => {
                let source = self.resolve(from).await?;
                let dir = self.walk_parent(to).await?;
                let attr = self
                    .vfs
                    .link(&self.caller, source.ino, dir, &Self::name(to))
                    .await
                    .map_err(errno)?;
                self.counted(attr.ino);
                Ok(Outcome::Done)
            }
            Op::Reconnect => {
                self.reconnect().await;
                Ok(Outcome::Done)
            }
            Op::Forget => {
                let held: BTreeSet<Ino> = self.slots.iter().flatten().map(|(_, ino)| *ino).collect();
                for (ino, n) in std::mem::take(&mut self.lookups) {
                    let keep = u64::from(held.contains(&ino)).min(n);
                    self.vfs.forget(ino, n - keep);
                    if keep > 0 {
                        self.lookups.insert(ino, keep);
                    }
                }
                Ok(Outcome::Done)
            }
            _ => unreachable!("remote steps are run by remote_step"),
        }
    }

    /// A change made directly in the backing directory.
    fn remote_step(&mut self, op: &Op, ctx: StepCtx) -> Answer {
        let at = |p: &Path| p.on_disk(&self.root);
        let stamp = std::fs::FileTimes::new().set_modified(system_time(ctx.stamp));
        match op {
            Op::RemoteWrite { path, offset, len } => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(at(path))
                    .map_err(io_errno)?;
                file.write_all_at(&vec![ctx.remote_fill; *len], *offset)
                    .map_err(io_errno)?;
                file.set_times(stamp).map_err(io_errno)?;
            }
            Op::RemoteTruncate { path, size } => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(at(path))
                    .map_err(io_errno)?;
                file.set_len(*size).map_err(io_errno)?;
                file.set_times(stamp).map_err(io_errno)?;
            }
            Op::RemoteCreate { path, len } => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(at(path))
                    .map_err(io_errno)?;
                file.write_all_at(&vec![ctx.remote_fill; *len], 0)
                    .map_err(io_errno)?;
                file.set_times(stamp).map_err(io_errno)?;
            }
            Op::RemoteReplace { path, len } => {
                let temp = self.scratch.join("save");
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(&temp)
                    .map_err(io_errno)?;
                file.write_all_at(&vec![ctx.remote_fill; *len], 0)
                    .map_err(io_errno)?;
                file.set_times(stamp).map_err(io_errno)?;
                drop(file);
                if let Err(e) = std::fs::rename(&temp, at(path)) {
                    std::fs::remove_file(&temp).unwrap();
                    return Err(io_errno(e));
                }
            }
            Op::RemoteUnlink { path } => std::fs::remove_file(at(path)).map_err(io_errno)?,
            Op::RemoteMkdir { path } => std::fs::DirBuilder::new()
                .mode(0o755)
                .create(at(path))
                .map_err(io_errno)?,
            Op::RemoteRmdir { path } => std::fs::remove_dir(at(path)).map_err(io_errno)?,
            Op::RemoteRename { from, to } => std::fs::rename(at(from), at(to)).map_err(io_errno)?,
            Op::RemoteLink { from, to } => std::fs::hard_link(at(from), at(to)).map_err(io_errno)?,
            Op::RemoteChmod { path, mode } => {
                let is_dir = std::fs::symlink_metadata(at(path)).map_err(io_errno)?.is_dir();
                let mode = if is_dir { mode.0 | 0o700 } else { mode.0 };
                std::fs::set_permissions(at(path), std::fs::Permissions::from_mode(mode)).map_err(io_errno)?
            }
            _ => unreachable!("not a remote step"),
        }
        Ok(Outcome::Done)
    }

    /// What a change notifier reports after a remote change: `paths`.
    fn notify(&self, paths: &[Path]) {
        if self.freshness == Freshness::LongTtlsNotified {
            for path in paths {
                self.vfs.invalidate_path(path.display().as_bytes());
            }
        }
    }

    /// Closes every handle, as a process exiting does.
    async fn close_all(&mut self) -> Result<(), String> {
        for slot in 0..SLOTS {
            if let Some((fh, _)) = self.slots[slot].take() {
                self.vfs
                    .flush(fh)
                    .await
                    .map_err(|e| format!("flush h{slot}: {e}"))?;
                self.vfs
                    .release(fh)
                    .await
                    .map_err(|e| format!("release h{slot}: {e}"))?;
            }
        }
        Ok(())
    }
}

// ----- comparing what the mount shows, and what the disk holds -----

/// Which model file each VFS inode number has named during the run: an
/// inode number must never name two files.
#[derive(Default)]
struct Identity {
    owner: HashMap<Ino, Id>,
}

impl Identity {
    fn see(&mut self, ino: Ino, id: Id, snapshot: &mut HashMap<Id, Ino>, what: &str) -> Result<(), String> {
        match self.owner.insert(ino, id) {
            Some(before) if before != id => {
                return Err(format!(
                    "{what}: inode {ino} names model file #{id}, but named #{before} before"
                ))
            }
            _ => {}
        }
        match snapshot.insert(id, ino) {
            Some(other) if other != ino => Err(format!(
                "{what}: model file #{id} is inode {ino} here and inode {other} under another name"
            )),
            _ => Ok(()),
        }
    }
}

fn compare_attr(model: &Model, id: Id, attr: &FileAttr, what: &str) -> Result<(), String> {
    let node = model.node(id);
    let mut wrong = Vec::new();
    let kind = if model.is_dir(id) {
        FileKind::Directory
    } else {
        FileKind::Regular
    };
    if attr.kind != kind {
        wrong.push(format!("kind {:?}, model {kind:?}", attr.kind));
    }
    if attr.perm != node.mode {
        wrong.push(format!("mode {:#o}, model {:#o}", attr.perm, node.mode));
    }
    if attr.nlink != model.nlink(id) {
        wrong.push(format!("nlink {}, model {}", attr.nlink, model.nlink(id)));
    }
    if let Body::File(data) = &node.body {
        if attr.size != data.len() as u64 {
            wrong.push(format!("size {}, model {}", attr.size, data.len()));
        }
    }
    if let Some(mtime) = node.mtime {
        if attr.mtime != mtime {
            wrong.push(format!("mtime {:?}, model {mtime:?}", attr.mtime));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}: {}", wrong.join("; ")))
    }
}

const READ_SIZE: u32 = 5000;

impl Sut {
    /// Everything a reader of the mount sees, against the model.
    async fn check(&mut self, model: &Model, identity: &mut Identity) -> Result<(), String> {
        // With write-back, the steps' own answers are what the mount says
        // at once; the state compared here (the disk, and times exact to
        // the nanosecond) is the one once everything acknowledged settled.
        if self.write_back {
            self.vfs
                .flush_all()
                .await
                .map_err(|e| format!("sync before the check: {e}"))?;
        }
        let mut snapshot = HashMap::new();
        self.check_lookups(model, identity, &mut snapshot).await?;
        self.check_listings(model, identity, &mut snapshot).await?;
        self.check_disk(model)?;
        // Times of what was changed ahead of the remote are the mount's
        // estimate until they are asked again (ARCHITECTURE.md, "Metadata
        // write-back"): exact only without write-back.
        if self.write_back {
            return Ok(());
        }
        self.check_times(model).await
    }

    /// Every path, and every name of the pool that is absent from a
    /// directory, looked up as the kernel walks a path, before anything is
    /// listed: what the VFS's name and attribute caches answer.
    async fn check_lookups(
        &mut self,
        model: &Model,
        identity: &mut Identity,
        snapshot: &mut HashMap<Id, Ino>,
    ) -> Result<(), String> {
        let (all, dirs) = model.all_paths();
        for path in &all {
            let id = model.resolve(path).expect("listed by the model");
            let attr = self
                .resolve(path)
                .await
                .map_err(|e| format!("lookup {path:?}: {e:?}"))?;
            compare_attr(model, id, &attr, &format!("lookup {path:?}"))?;
            identity.see(attr.ino, id, snapshot, &format!("lookup {path:?}"))?;
        }
        for dir in &dirs {
            let id = if dir.0.is_empty() {
                ROOT
            } else {
                model.resolve(dir).expect("listed")
            };
            for name in (0..3).map(Name).filter(|n| model.child(id, *n).is_none()) {
                let mut path = dir.0.clone();
                path.push(name);
                let path = Path(path);
                match self.resolve(&path).await {
                    Err(Errno::ENOENT) => {}
                    other => return Err(format!("lookup {path:?}: {other:?}, model ENOENT")),
                }
            }
        }
        Ok(())
    }

    /// mtime and ctime of every path as the VFS reports them (asked as the
    /// kernel would: walk, then getattr) against the backing directory's:
    /// changes made through the mount show at once.
    async fn check_times(&mut self, model: &Model) -> Result<(), String> {
        let (all, _) = model.all_paths();
        for path in &all {
            let attr = self
                .resolve(path)
                .await
                .map_err(|e| format!("lookup {path:?}: {e:?}"))?;
            let attr = self
                .vfs
                .getattr(attr.ino, None)
                .await
                .map_err(|e| format!("getattr {path:?}: {e}"))?;
            let meta = std::fs::symlink_metadata(path.on_disk(&self.root))
                .map_err(|e| format!("disk: {path:?}: {e}"))?;
            let disk = |sec: i64, nsec: i64| Timespec {
                sec,
                nsec: nsec as u32,
            };
            let (mtime, ctime) = (
                disk(meta.mtime(), meta.mtime_nsec()),
                disk(meta.ctime(), meta.ctime_nsec()),
            );
            if attr.mtime != mtime || attr.ctime != ctime {
                return Err(format!(
                    "getattr {path:?}: mtime {:?} ctime {:?}, on disk {mtime:?} {ctime:?}",
                    attr.mtime, attr.ctime
                ));
            }
        }
        Ok(())
    }

    /// A readdir walk: names, `.` and `..`, readdirplus attributes,
    /// lookups, getattrs and every file's contents.
    async fn check_listings(
        &mut self,
        model: &Model,
        identity: &mut Identity,
        snapshot: &mut HashMap<Id, Ino>,
    ) -> Result<(), String> {
        let attr = self
            .vfs
            .getattr(ROOT_INO, None)
            .await
            .map_err(|e| format!("getattr of the root: {e}"))?;
        compare_attr(model, ROOT, &attr, "getattr .")?;
        let mut stack = vec![(ROOT_INO, ROOT_INO, ROOT, String::new())];
        while let Some((ino, parent_ino, id, path)) = stack.pop() {
            let shown = if path.is_empty() {
                ".".to_string()
            } else {
                path.clone()
            };
            let fh = self
                .vfs
                .opendir(&self.caller, ino)
                .map_err(|e| format!("opendir {shown}: {e}"))?;
            let mut items = Vec::new();
            let mut offset = 0;
            loop {
                let page = match self.vfs.readdir(fh, offset).await {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = self.vfs.releasedir(fh);
                        return Err(format!("readdir {shown}: {e}"));
                    }
                };
                let Some(last) = page.last() else { break };
                offset = last.offset;
                items.extend(page);
            }
            self.vfs
                .releasedir(fh)
                .map_err(|e| format!("releasedir {shown}: {e}"))?;
            let mut names = Vec::new();
            for item in &items {
                match &item.name[..] {
                    b"." if item.ino == ino => continue,
                    b".." if item.ino == parent_ino => continue,
                    b"." | b".." => {
                        return Err(format!(
                            "readdir {shown}: {:?} is inode {}, expected {}",
                            String::from_utf8_lossy(&item.name),
                            item.ino,
                            if item.name == b"." { ino } else { parent_ino }
                        ))
                    }
                    _ => names.push(String::from_utf8_lossy(&item.name).into_owned()),
                }
            }
            let expected: Vec<String> = model.children(id).keys().map(|n| format!("{n:?}")).collect();
            let mut sorted = names.clone();
            sorted.sort();
            if sorted != expected {
                return Err(format!("readdir {shown}: {names:?}, model {expected:?}"));
            }
            for item in items.iter().filter(|i| !i.is_dot_or_dotdot()) {
                let name = Name(item.name[0] - b'a');
                let child = model.child(id, name).expect("compared above");
                let child_path = if path.is_empty() {
                    format!("{name:?}")
                } else {
                    format!("{path}/{name:?}")
                };
                // readdirplus: the entry's attributes, with a lookup counted.
                let listed = self
                    .vfs
                    .remember(ino, item)
                    .await
                    .ok_or_else(|| format!("readdir {child_path}: no attributes"))?;
                self.counted(listed.ino);
                compare_attr(model, child, &listed, &format!("readdir {child_path}"))?;
                identity.see(listed.ino, child, snapshot, &format!("readdir {child_path}"))?;
                let looked = self
                    .lookup(ino, name)
                    .await
                    .map_err(|e| format!("lookup {child_path}: {e:?}"))?;
                compare_attr(model, child, &looked, &format!("lookup {child_path}"))?;
                identity.see(looked.ino, child, snapshot, &format!("lookup {child_path}"))?;
                let got = self
                    .vfs
                    .getattr(looked.ino, None)
                    .await
                    .map_err(|e| format!("getattr {child_path}: {e}"))?;
                compare_attr(model, child, &got, &format!("getattr {child_path}"))?;
                match &model.node(child).body {
                    Body::Dir(_) => stack.push((looked.ino, ino, child, child_path)),
                    Body::File(data) => {
                        let contents = self.read_whole(looked.ino, &child_path).await?;
                        if &contents != data {
                            return Err(format!(
                                "contents of {child_path}: {}, model {}",
                                render(&contents),
                                render(data)
                            ));
                        }
                    }
                }
            }
        }
        for (slot, handle) in self.slots.iter().enumerate() {
            let Some((fh, ino)) = *handle else { continue };
            let id = model.slots[slot].expect("slots agree").id;
            let attr = self
                .vfs
                .getattr(ino, Some(fh))
                .await
                .map_err(|e| format!("fstat h{slot}: {e}"))?;
            compare_attr(model, id, &attr, &format!("fstat h{slot}"))?;
            identity.see(ino, id, snapshot, &format!("h{slot}"))?;
        }
        let open = self.vfs.stats().open_files;
        let held = self.slots.iter().flatten().count();
        if open != held {
            return Err(format!("{open} files open in the VFS, {held} held"));
        }
        Ok(())
    }

    /// Opens, reads to the end as the kernel does (a short read is the
    /// end), flushes and releases.
    async fn read_whole(&mut self, ino: Ino, path: &str) -> Result<Vec<u8>, String> {
        let (fh, _) = self
            .vfs
            .open(&self.caller, ino, of::READ_ONLY)
            .await
            .map_err(|e| format!("open {path}: {e}"))?;
        let mut contents = Vec::new();
        let result = loop {
            match self.vfs.read(fh, contents.len() as u64, READ_SIZE).await {
                Ok(piece) => {
                    contents.extend_from_slice(&piece);
                    if piece.len() < READ_SIZE as usize {
                        break Ok(contents);
                    }
                }
                Err(e) => break Err(format!("read {path}: {e}")),
            }
        };
        let flushed = self.vfs.flush(fh).await;
        self.vfs
            .release(fh)
            .await
            .map_err(|e| format!("release {path}: {e}"))?;
        flushed.map_err(|e| format!("flush {path}: {e}"))?;
        result
    }

    /// The backing directory against the model: after the walk above read
    /// every file (which sends what was buffered), it holds everything.
    fn check_disk(&self, model: &Model) -> Result<(), String> {
        let mut inodes: HashMap<Id, u64> = HashMap::new();
        let mut owners: HashMap<u64, Id> = HashMap::new();
        let mut stack = vec![(self.root.clone(), ROOT, String::new())];
        while let Some((dir, id, path)) = stack.pop() {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .map_err(|e| format!("disk: read_dir {path}: {e}"))?
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            let expected: Vec<String> = model.children(id).keys().map(|n| format!("{n:?}")).collect();
            if names != expected {
                return Err(format!("disk: {path}/ holds {names:?}, model {expected:?}"));
            }
            for (name, child) in model.children(id) {
                let child_path = format!("{path}/{name:?}");
                let on_disk = dir.join(format!("{name:?}"));
                let meta =
                    std::fs::symlink_metadata(&on_disk).map_err(|e| format!("disk: {child_path}: {e}"))?;
                let node = model.node(*child);
                let mut wrong = Vec::new();
                if meta.mode() & 0o7777 != node.mode {
                    wrong.push(format!(
                        "mode {:#o}, model {:#o}",
                        meta.mode() & 0o7777,
                        node.mode
                    ));
                }
                if meta.nlink() != model.nlink(*child) {
                    wrong.push(format!("nlink {}, model {}", meta.nlink(), model.nlink(*child)));
                }
                if let Some(mtime) = node.mtime {
                    let disk = Timespec {
                        sec: meta.mtime(),
                        nsec: meta.mtime_nsec() as u32,
                    };
                    if disk != mtime {
                        wrong.push(format!("mtime {disk:?}, model {mtime:?}"));
                    }
                }
                match &node.body {
                    Body::Dir(_) if meta.is_dir() => stack.push((on_disk, *child, child_path.clone())),
                    Body::File(data) if meta.is_file() => {
                        let contents =
                            std::fs::read(&on_disk).map_err(|e| format!("disk: {child_path}: {e}"))?;
                        if &contents != data {
                            wrong.push(format!("contents {}, model {}", render(&contents), render(data)));
                        }
                    }
                    _ => wrong.push("another kind".into()),
                }
                if !wrong.is_empty() {
                    return Err(format!("disk: {child_path}: {}", wrong.join("; ")));
                }
                if let Some(other) = inodes.insert(*child, meta.ino()) {
                    if other != meta.ino() {
                        return Err(format!(
                            "disk: {child_path}: links of one model file are two inodes"
                        ));
                    }
                }
                if let Some(other) = owners.insert(meta.ino(), *child) {
                    if other != *child {
                        return Err(format!("disk: {child_path}: two model files are one inode"));
                    }
                }
            }
        }
        Ok(())
    }
}

// ----- running a case -----

const STEP_PATIENCE: Duration = Duration::from_secs(30);

/// Runs `steps`, each with whether to compare the state after it. Between
/// comparisons writes stay buffered and caches stay as the steps left
/// them; the state is always compared at the end, and again once every
/// handle is closed.
async fn run_case(
    setup: &Setup,
    steps: &[(Op<Pick, Held>, bool)],
    freshness: Freshness,
) -> Result<(), String> {
    let mut sut = Sut::new(setup, freshness).await;
    let mut model = Model::new();
    let mut identity = Identity::default();
    let mut trace = Vec::new();
    let fail = |trace: &[String], why: String| {
        let failure = format!("{freshness:?}, {setup:?}\n{}\n  => {why}", trace.join("\n"));
        // Shrinking a case that hangs takes a step's patience per try: the
        // first failure, shown at once, tells what to look at meanwhile.
        if std::env::var_os("YONDER_MODEL_SHOW_FAILURES").is_some() {
            eprintln!("failed case (before shrinking):\n{failure}\n");
        }
        Err(failure)
    };
    for (i, (step, compare)) in steps.iter().enumerate() {
        let compare = *compare || i + 1 == steps.len();
        let Some(op) = model.resolve_step(step) else {
            trace.push(format!("  #{i} skipped, no handle for it: {step:?}"));
            continue;
        };
        // An O_APPEND write comes with the file's size as its offset, as
        // the kernel sends it (what the offset says does not matter to the
        // remote, but the replay of an append checks it).
        let op = match op {
            Op::Write { slot, len, .. } if model.handle(slot).is_some_and(|h| h.append) => {
                let id = model.handle(slot).expect("handle").id;
                let size = match &model.node(id).body {
                    Body::File(data) => data.len() as u64,
                    Body::Dir(_) => 0,
                };
                Op::Write {
                    slot,
                    offset: size,
                    len,
                }
            }
            op => op,
        };
        let ctx = StepCtx::new(i);
        let before = model.clone();
        let expected = model.step(&op, ctx);
        let actual = if expected == Ok(Outcome::Skipped) {
            Ok(Outcome::Skipped)
        } else {
            match tokio::time::timeout(STEP_PATIENCE, sut.step(&op, ctx)).await {
                Ok(answer) => answer,
                Err(_) => return fail(&trace, format!("#{i} {op:?} hung")),
            }
        };
        stats::count(&op, &actual);
        let letter = if op.is_remote() {
            ctx.remote_fill
        } else {
            ctx.local_fill
        } as char;
        trace.push(format!("  #{i} ({letter}) {op:?} -> {actual:?}"));
        if actual != expected {
            return fail(&trace, format!("expected {expected:?}"));
        }
        if op.is_remote() && actual.is_ok() {
            // What the change touched, by every name it had and has.
            let mut paths: Vec<Path> = op.remote_paths().into_iter().cloned().collect();
            for id in before.touched_by(&op).into_iter().chain(model.touched_by(&op)) {
                for m in [&before, &model] {
                    if m.nodes.contains_key(&id) {
                        paths.extend(m.paths_of(id));
                    }
                }
            }
            sut.notify(&paths);
        }
        if compare {
            match tokio::time::timeout(STEP_PATIENCE, sut.check(&model, &mut identity)).await {
                Ok(Ok(())) => trace.push("     state compared".into()),
                Ok(Err(why)) => return fail(&trace, why),
                Err(_) => return fail(&trace, "the check hung".into()),
            }
        }
    }
    // Every process exits.
    match tokio::time::timeout(STEP_PATIENCE, sut.close_all()).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return fail(&trace, why),
        Err(_) => return fail(&trace, "closing every handle hung".into()),
    }
    for slot in 0..SLOTS {
        if let Some(h) = model.slots[slot].take() {
            model.collect(h.id);
        }
    }
    trace.push("  all handles closed".into());
    match tokio::time::timeout(STEP_PATIENCE, sut.check(&model, &mut identity)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => fail(&trace, why),
        Err(_) => fail(&trace, "the check hung".into()),
    }
}

/// With `YONDER_MODEL_STATS` set, how often each kind of step had each
/// answer, printed at the end: to see what the generated cases exercise.
mod stats {
    use super::{Answer, Op, Outcome};
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    static COUNTS: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

    pub fn enabled() -> bool {
        std::env::var_os("YONDER_MODEL_STATS").is_some()
    }

    pub fn count(op: &Op, answer: &Answer) {
        if !enabled() {
            return;
        }
        let debug = format!("{op:?}");
        let kind = debug.split([' ', '{']).next().unwrap_or_default();
        let answer = match answer {
            Ok(Outcome::Skipped) => "skipped".to_string(),
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{e:?}"),
        };
        *COUNTS
            .lock()
            .unwrap()
            .entry(format!("{kind} {answer}"))
            .or_default() += 1;
    }

    pub fn print() {
        if enabled() {
            for (what, n) in COUNTS.lock().unwrap().iter() {
                eprintln!("{n:>8}  {what}");
            }
        }
    }
}

// ----- generating cases -----

fn name() -> impl Strategy<Value = Name> {
    (0u8..3).prop_map(Name)
}

fn path() -> impl Strategy<Value = Path> {
    prop_oneof![
        3 => prop::collection::vec(name(), 1..=1),
        2 => prop::collection::vec(name(), 2..=2),
        1 => prop::collection::vec(name(), 3..=3),
    ]
    .prop_map(Path)
}

fn held() -> impl Strategy<Value = Held> {
    any::<prop::sample::Index>().prop_map(Held)
}

/// A path that is mostly there when the step runs.
fn present() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => any::<prop::sample::Index>().prop_map(Pick::Existing),
        1 => (any::<prop::sample::Index>(), name()).prop_map(|(i, n)| Pick::In(i, n)),
        1 => path().prop_map(Pick::Literal),
    ]
}

/// A path that is mostly not there yet when the step runs.
fn fresh() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => (any::<prop::sample::Index>(), name()).prop_map(|(i, n)| Pick::In(i, n)),
        1 => any::<prop::sample::Index>().prop_map(Pick::Existing),
        1 => path().prop_map(Pick::Literal),
    ]
}

fn file_mode() -> impl Strategy<Value = Mode> {
    prop::sample::select(vec![0o644, 0o600, 0o640, 0o664, 0o755]).prop_map(Mode)
}

fn dir_mode() -> impl Strategy<Value = Mode> {
    prop::sample::select(vec![0o755, 0o700, 0o750, 0o775]).prop_map(Mode)
}

/// Offsets and sizes around the edges that matter: small, around the
/// 4 KiB readahead chunk, and up to a few chunks.
fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..64, 4090u64..4100, 0u64..12_000]
}

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..16, 16usize..300, 4000usize..4200]
}

fn read_len() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..64, 4000u32..9000]
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![Just(Access::R), Just(Access::W), Just(Access::RW)]
}

fn op() -> impl Strategy<Value = Op<Pick, Held>> {
    prop_oneof![
        4 => (fresh(), held(), any::<bool>(), file_mode())
            .prop_map(|(path, slot, excl, mode)| Op::Create { path, slot, excl, mode }),
        4 => (
            present(),
            held(),
            access(),
            any::<bool>(),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.15),
        )
            .prop_map(|(path, slot, access, trunc, append, sync)| Op::Open {
                path,
                slot,
                access,
                // O_TRUNC and O_SYNC only where they are meant: with write
                // access.
                trunc: trunc && access != Access::R && !append,
                append,
                sync: sync && access != Access::R,
            }),
        3 => held().prop_map(|slot| Op::Close { slot }),
        8 => (held(), offset(), len()).prop_map(|(slot, offset, len)| Op::Write { slot, offset, len }),
        5 => (held(), offset(), read_len()).prop_map(|(slot, offset, len)| Op::Read { slot, offset, len }),
        1 => held().prop_map(|slot| Op::Fsync { slot }),
        1 => (present(), offset()).prop_map(|(path, size)| Op::Truncate { path, size }),
        2 => (held(), offset()).prop_map(|(slot, size)| Op::Ftruncate { slot, size }),
        1 => (present(), file_mode()).prop_map(|(path, mode)| Op::Chmod { path, mode }),
        1 => (present(), 1i64..1_000_000).prop_map(|(path, sec)| Op::Utimes { path, sec }),
        1 => (held(), 1i64..1_000_000).prop_map(|(slot, sec)| Op::Futimes { slot, sec }),
        3 => (fresh(), dir_mode()).prop_map(|(path, mode)| Op::Mkdir { path, mode }),
        1 => present().prop_map(|path| Op::Rmdir { path }),
        2 => present().prop_map(|path| Op::Unlink { path }),
        3 => (present(), prop_oneof![fresh(), present()], prop_oneof![
                4 => Just(RenameMode::Plain),
                1 => Just(RenameMode::NoReplace),
                1 => Just(RenameMode::Exchange),
            ])
            .prop_map(|(from, to, how)| Op::Rename { from, to, how }),
        2 => (present(), fresh()).prop_map(|(from, to)| Op::Link { from, to }),
        1 => Just(Op::Forget),
        2 => (present(), offset(), len()).prop_map(|(path, offset, len)| Op::RemoteWrite { path, offset, len }),
        1 => (present(), offset()).prop_map(|(path, size)| Op::RemoteTruncate { path, size }),
        1 => (fresh(), len()).prop_map(|(path, len)| Op::RemoteCreate { path, len }),
        1 => (present(), len()).prop_map(|(path, len)| Op::RemoteReplace { path, len }),
        1 => present().prop_map(|path| Op::RemoteUnlink { path }),
        1 => fresh().prop_map(|path| Op::RemoteMkdir { path }),
        1 => present().prop_map(|path| Op::RemoteRmdir { path }),
        1 => (present(), prop_oneof![fresh(), present()]).prop_map(|(from, to)| Op::RemoteRename { from, to }),
        1 => (present(), fresh()).prop_map(|(from, to)| Op::RemoteLink { from, to }),
        1 => (present(), file_mode()).prop_map(|(path, mode)| Op::RemoteChmod { path, mode }),
    ]
}

/// [`op`], with `Reconnect` steps when `reconnects`.
fn step(reconnects: bool) -> BoxedStrategy<Op<Pick, Held>> {
    if reconnects {
        prop_oneof![12 => op(), 1 => Just(Op::Reconnect)].boxed()
    } else {
        op().boxed()
    }
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop::sample::select(vec![64usize, 0, 16, 1 << 20]),
        prop::sample::select(vec![1024u32, 1, 2]),
        prop::sample::select(vec![16384usize, 0, 4096]),
        any::<bool>(),
    )
        .prop_map(|(write_buffer, readdir_page, readahead_max, write_back)| Setup {
            write_buffer,
            readdir_page,
            readahead_max,
            write_back,
        })
}

fn cases() -> u32 {
    match std::env::var("YONDER_MODEL_CASES") {
        Ok(n) => n.parse().expect("YONDER_MODEL_CASES: a number of cases"),
        Err(_) => 1000,
    }
}

/// `YONDER_MODEL_SEED`, or a fresh one: printed with a failure, so that
/// the same cases can be run again (timing may still differ).
fn seed() -> u64 {
    match std::env::var("YONDER_MODEL_SEED") {
        Ok(seed) => seed.parse().expect("YONDER_MODEL_SEED: a number"),
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        }
    }
}

fn run(freshness: Freshness, reconnects: bool) {
    let seed = seed();
    let config = Config {
        cases: cases(),
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        // Failures are shrunk and printed; a file of them next to the
        // sources would only grow.
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (
        setup(),
        prop::collection::vec((step(reconnects), prop::bool::weighted(0.3)), 1..40),
    );
    let result = runner.run(&strategy, |(setup, ops)| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(run_case(&setup, &ops, freshness))
            .map_err(TestCaseError::fail)
    });
    stats::print();
    if let Err(err) = result {
        panic!("{err}\n(YONDER_MODEL_SEED={seed} runs these cases again)");
    }
}

#[test]
fn zero_ttls() {
    run(Freshness::ZeroTtls, false);
}

#[test]
fn zero_ttls_with_connections_replaced() {
    run(Freshness::ZeroTtls, true);
}

#[test]
fn long_ttls_with_change_notification() {
    run(Freshness::LongTtlsNotified, false);
}
