//! Listings: open directories, each a stream read page by page from the
//! remote as the reader advances, with stable offsets for the lifetime of
//! the stream; and listings fetched ahead of a reader (`prefetch.rs`).

mod prefetch;

use crate::attr::{Fh, FhSource, FileKind, Ino, ROOT_INO};
use crate::calls::RemoteCalls;
use crate::connection::Generation;
use crate::error::{Result, VfsError};
use crate::namespace::DirItem;
use crate::namespace::{ListingStamp, Namespace};
use crate::sync::lock;
use prefetch::Prefetch;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use yonder_proto::Errno;

/// An open directory.
pub(crate) struct OpenDir {
    pub ino: Ino,
    pub stream: tokio::sync::Mutex<DirStream>,
}

#[derive(Default)]
pub(crate) struct DirStream {
    pub items: Vec<DirItem>,
    pub cursor: Option<u64>,
    /// The connection whose agent keeps `cursor`'s listing open.
    pub cursor_on: Option<Generation>,
    /// The listing was started again on a new connection (the old cursor
    /// died with its connection): names already handed out are skipped.
    pub restarted: bool,
    pub started: bool,
    pub done: bool,
    /// The table's complete listing these items are, when they are all of
    /// it (listed from the table, or fetched with nothing changing).
    pub stamp: Option<ListingStamp>,
    /// The frontend was handed the end of the listing: it has all of it.
    pub handed_to_end: bool,
}

impl DirStream {
    pub fn reset(&mut self) {
        *self = DirStream::default();
    }
}

// ----- open directories and readdir paging -----

/// Entries handed out per readdir call at most.
const READDIR_BATCH: usize = 256;

/// Directories whose listing the frontend is known to hold, at most:
/// beyond this they are forgotten, and listed to it again.
const HANDED_OUT_MAX: usize = 16_384;

fn batch(st: &mut DirStream, offset: usize) -> Vec<DirItem> {
    let end = st.items.len().min(offset + READDIR_BATCH);
    let items = st
        .items
        .get(offset..end)
        .map(<[DirItem]>::to_vec)
        .unwrap_or_default();
    if items.is_empty() && st.done {
        st.handed_to_end = true;
    }
    items
}

/// The listings of a VFS: its open directories, and the listings fetched
/// ahead of them.
pub(crate) struct DirListings {
    dirs: Mutex<HashMap<Fh, Arc<OpenDir>>>,
    /// Handle numbers, shared with the open files.
    numbers: Arc<FhSource>,
    prefetch: Arc<Prefetch>,
    ns: Arc<Namespace>,
    calls: Arc<RemoteCalls>,
    readdir_page: u32,
    /// The complete listing each directory's last reader was handed to
    /// the end: what a frontend that caches listings (FUSE's
    /// FOPEN_CACHE_DIR) holds of it.
    handed_out: Mutex<HashMap<Ino, ListingStamp>>,
}

impl DirListings {
    pub fn new(
        numbers: Arc<FhSource>,
        ns: Arc<Namespace>,
        calls: Arc<RemoteCalls>,
        runtime: tokio::runtime::Handle,
        readdir_page: u32,
    ) -> DirListings {
        DirListings {
            dirs: Mutex::default(),
            numbers,
            prefetch: Prefetch::new(ns.clone(), calls.clone(), runtime, readdir_page),
            ns,
            calls,
            readdir_page,
            handed_out: Mutex::default(),
        }
    }

    /// Whether the frontend may keep the listing of `dir` it cached: the
    /// one it was last handed to the end is still the table's complete,
    /// fresh listing. When not, it is forgotten: the frontend drops what
    /// it holds and is handed a listing again.
    pub fn listing_kept(&self, dir: Ino) -> bool {
        let current = self.ns.table().listing_stamp(dir, Instant::now());
        let mut handed_out = lock(&self.handed_out);
        let kept = current.is_some() && handed_out.get(&dir) == current.as_ref();
        if !kept {
            handed_out.remove(&dir);
        }
        kept
    }

    /// When the names of a directory listed before have expired, the first
    /// lookup in it lists it again (see `prefetch.rs`); whether the listing
    /// was refreshed.
    pub async fn relist(&self, dir: Ino) -> bool {
        self.prefetch.relist(dir).await
    }

    /// A reader opened `file`, a small file whose contents are not kept:
    /// its siblings' are fetched ahead (see `prefetch.rs`).
    pub fn contents_around(&self, file: Ino) {
        self.prefetch.contents_around(file)
    }

    fn insert_dir(&self, dir: OpenDir) -> Fh {
        let fh = self.numbers.next();
        lock(&self.dirs).insert(fh, Arc::new(dir));
        fh
    }

    fn dir(&self, fh: Fh) -> Option<Arc<OpenDir>> {
        lock(&self.dirs).get(&fh).cloned()
    }

    fn remove_dir(&self, fh: Fh) -> Option<Arc<OpenDir>> {
        lock(&self.dirs).remove(&fh)
    }

    /// Opens a directory. No remote call (the listing is fetched by the
    /// first `readdir`), so it is synchronous and frontends answer inline.
    pub fn opendir(&self, ino: Ino) -> Result<Fh> {
        let kind = self.ns.table().get(ino).map(|n| n.kind);
        match kind {
            None => return Err(VfsError::new("opendir", format!("<inode {ino}>"), Errno::ESTALE)),
            Some(FileKind::Directory) => {}
            Some(_) => return Err(VfsError::new("opendir", self.ns.describe(ino), Errno::ENOTDIR)),
        }
        let fh = self.insert_dir(OpenDir {
            ino,
            stream: tokio::sync::Mutex::new(DirStream::default()),
        });
        self.ns.table().open_inc(ino);
        Ok(fh)
    }

    /// Entries of an open directory from `offset` (0, or an entry's
    /// `offset`). An empty result means the end. Offset 0 starts over with a
    /// fresh listing. No lookups are counted; see `Vfs::remember`.
    pub async fn readdir(&self, fh: Fh, offset: u64) -> Result<Vec<DirItem>> {
        let dir = self
            .dir(fh)
            .ok_or_else(|| VfsError::new("readdir", "", Errno::EBADF))?;
        let mut st = dir.stream.lock().await;
        let offset = offset as usize;
        self.start_listing(&dir, &mut st, offset);
        let deadline = self.calls.deadline();
        while !st.done && st.items.len() < offset + READDIR_BATCH {
            let path = self.ns.path("readdir", dir.ino)?;
            self.calls.settled("readdir", &path).await?;
            let (asked, mutations) = (Instant::now(), self.ns.table().mutations());
            let (remote, generation) = self
                .calls
                .ready(Some(deadline))
                .await
                .map_err(|why| self.calls.unavailable("readdir", &path, why))?;
            if st.cursor.is_some() && st.cursor_on != Some(generation) {
                // The agent's open listing died with its connection: list
                // again from the start, handing out only names not seen yet
                // (offsets already handed out stay valid).
                st.cursor = None;
                st.restarted = true;
            }
            let budget = prefetch::tree_budget(self.readdir_page);
            let page = match remote.list_tree(&path, st.cursor, budget).await {
                Ok(page) => page,
                Err(e) if e.is_connection_lost() => {
                    self.calls
                        .after(generation, Some(deadline))
                        .await
                        .map_err(|why| self.calls.unavailable("readdir", &path, why))?;
                    continue;
                }
                Err(e) => return Err(VfsError::remote("readdir", &path, e)),
            };
            st.cursor_on = Some(generation);
            let mut dirs = page.dirs.into_iter();
            let mut entries = dirs.next().map(|d| d.entries).unwrap_or_default();
            if st.restarted {
                let seen: HashSet<&[u8]> = st.items.iter().map(|i| &i.name[..]).collect();
                entries.retain(|e| !seen.contains(&e.entry.name[..]));
            }
            let now = Instant::now();
            let mut table = self.ns.table();
            let unchanged = table.mutations() == mutations;
            for mut item in table.enter_entries(dir.ino, entries, unchanged, asked, now) {
                item.offset = st.items.len() as u64 + 1;
                st.items.push(item);
            }
            st.cursor = page.next;
            if page.next.is_none() {
                st.done = true;
                let present: HashSet<Vec<u8>> = st.items[2..].iter().map(|i| i.name.clone()).collect();
                table.listing_complete(dir.ino, &present, now);
                st.stamp = table.listing_stamp_of(dir.ino, &st.items[2..], now);
                table.store_subtree(dirs.collect(), mutations, asked, now);
                drop(table);
                self.prefetch.around(dir.ino);
            }
        }
        Ok(batch(&mut st, offset))
    }

    /// [`Vfs::readdir`] when it can answer without waiting: the entries are
    /// already fetched (or were fetched ahead) and nobody else holds the
    /// stream. Frontends answer such calls inline.
    pub fn readdir_ready(&self, fh: Fh, offset: u64) -> Option<Vec<DirItem>> {
        let dir = self.dir(fh)?;
        let mut st = dir.stream.try_lock().ok()?;
        let offset = offset as usize;
        self.start_listing(&dir, &mut st, offset);
        (st.done || st.items.len() >= offset + READDIR_BATCH).then(|| batch(&mut st, offset))
    }

    /// Starts (or, from offset 0, restarts) a stream: `.` and `..`, then,
    /// while the table knows the directory's names complete and fresh (a
    /// listing fetched ahead, or one a moment ago), the listing from there.
    fn start_listing(&self, dir: &OpenDir, st: &mut DirStream, offset: usize) {
        if offset == 0 && st.started {
            st.reset();
        }
        if st.started {
            return;
        }
        st.started = true;
        let parent = self.ns.first_link(dir.ino).map_or(ROOT_INO, |(p, _)| p);
        for (name, ino) in [(&b"."[..], dir.ino), (&b".."[..], parent)] {
            let offset = st.items.len() as u64 + 1;
            st.items.push(DirItem {
                name: name.to_vec(),
                ino,
                kind: FileKind::Directory,
                offset,
                attr: None,
                remote: None,
                asked: Instant::now(),
            });
        }
        let fetched = {
            let now = Instant::now();
            let table = self.ns.table();
            table
                .listing_from_names(dir.ino, now)
                .map(|items| (items, table.listing_stamp(dir.ino, now)))
        };
        if let Some((items, stamp)) = fetched {
            st.stamp = stamp;
            for mut item in items {
                item.offset = st.items.len() as u64 + 1;
                st.items.push(item);
            }
            st.done = true;
            self.prefetch.around(dir.ino);
        }
    }

    pub fn releasedir(&self, fh: Fh) -> Result<()> {
        let dir = self
            .remove_dir(fh)
            .ok_or_else(|| VfsError::new("releasedir", "", Errno::EBADF))?;
        self.ns.table().open_dec(dir.ino);
        // Held by a readdir still running only if the frontend gave up on
        // it: then it was not handed the end either.
        if let Ok(st) = dir.stream.try_lock() {
            if let (true, Some(stamp)) = (st.handed_to_end, st.stamp) {
                let mut handed_out = lock(&self.handed_out);
                if handed_out.len() >= HANDED_OUT_MAX {
                    handed_out.clear();
                }
                handed_out.insert(dir.ino, stamp);
            }
        }
        Ok(())
    }
}
