//! Directory streams: a listing read page by page from the remote as the
//! reader advances, with stable offsets for the lifetime of the stream.

use crate::attr::{Caller, Fh, FileAttr, FileKind, Ino, ROOT_INO};
use crate::cache_policy::Change;
use crate::connection::Generation;
use crate::error::{Result, VfsError};
use crate::handle::OpenDir;
use crate::inode::DirItem;
use crate::vfs::Vfs;
use std::collections::HashSet;
use std::time::Instant;
use yonder_proto::Errno;

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
}

impl DirStream {
    pub fn reset(&mut self) {
        *self = DirStream::default();
    }
}

// ----- open directories and readdir paging -----

/// Entries handed out per readdir call at most.
const READDIR_BATCH: usize = 256;

fn batch(st: &DirStream, offset: usize) -> Vec<DirItem> {
    let end = st.items.len().min(offset + READDIR_BATCH);
    st.items
        .get(offset..end)
        .map(<[DirItem]>::to_vec)
        .unwrap_or_default()
}

impl Vfs {
    /// Opens a directory. No remote call (the listing is fetched by the
    /// first `readdir`), so it is synchronous and frontends answer inline.
    pub fn opendir(&self, _caller: &Caller, ino: Ino) -> Result<Fh> {
        let kind = self.inodes().get(ino).map(|n| n.kind);
        match kind {
            None => return Err(VfsError::new("opendir", format!("<inode {ino}>"), Errno::ESTALE)),
            Some(FileKind::Directory) => {}
            Some(_) => return Err(VfsError::new("opendir", self.describe(ino), Errno::ENOTDIR)),
        }
        let fh = self.files.insert_dir(OpenDir {
            ino,
            stream: tokio::sync::Mutex::new(DirStream::default()),
        });
        self.inodes().open_inc(ino);
        Ok(fh)
    }

    /// Entries of an open directory from `offset` (0, or an entry's
    /// `offset`). An empty result means the end. Offset 0 starts over with a
    /// fresh listing. No lookups are counted; see [`Vfs::remember`].
    pub async fn readdir(&self, fh: Fh, offset: u64) -> Result<Vec<DirItem>> {
        let dir = self
            .files
            .dir(fh)
            .ok_or_else(|| VfsError::new("readdir", "", Errno::EBADF))?;
        let mut st = dir.stream.lock().await;
        let offset = offset as usize;
        self.start_listing(&dir, &mut st, offset);
        let deadline = self.calls.deadline();
        while !st.done && st.items.len() < offset + READDIR_BATCH {
            let path = self.path("readdir", dir.ino)?;
            let asked = Instant::now();
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
            let page = match remote
                .read_dir_page(&path, st.cursor, self.opts.readdir_page)
                .await
            {
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
            let mut entries = page.entries;
            if st.restarted {
                let seen: HashSet<&[u8]> = st.items.iter().map(|i| &i.name[..]).collect();
                entries.retain(|e| !seen.contains(&e.name[..]));
            }
            let now = Instant::now();
            let mut table = self.inodes();
            for mut item in table.enter_entries(dir.ino, entries, asked, now) {
                item.offset = st.items.len() as u64 + 1;
                st.items.push(item);
            }
            st.cursor = page.next;
            if page.next.is_none() {
                st.done = true;
                let present: HashSet<Vec<u8>> = st.items[2..].iter().map(|i| i.name.clone()).collect();
                table.listing_complete(dir.ino, &present, now);
                drop(table);
                self.prefetch_around(dir.ino);
            }
        }
        Ok(batch(&st, offset))
    }

    /// [`Vfs::readdir`] when it can answer without waiting: the entries are
    /// already fetched (or were fetched ahead) and nobody else holds the
    /// stream. Frontends answer such calls inline.
    pub fn readdir_ready(&self, fh: Fh, offset: u64) -> Option<Vec<DirItem>> {
        let dir = self.files.dir(fh)?;
        let mut st = dir.stream.try_lock().ok()?;
        let offset = offset as usize;
        self.start_listing(&dir, &mut st, offset);
        (st.done || st.items.len() >= offset + READDIR_BATCH).then(|| batch(&st, offset))
    }

    /// Starts (or, from offset 0, restarts) a stream: `.` and `..`, then a
    /// listing fetched ahead if there is a fresh one.
    pub(crate) fn start_listing(&self, dir: &OpenDir, st: &mut DirStream, offset: usize) {
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
        let fetched = self.inodes().take_listing(dir.ino, Instant::now());
        if let Some(items) = fetched {
            for mut item in items {
                item.offset = st.items.len() as u64 + 1;
                st.items.push(item);
            }
            st.done = true;
            self.prefetch_around(dir.ino);
        }
    }

    /// Counts a lookup for an entry handed out with its attributes (as by
    /// readdirplus) and returns current attributes for it. `None` for `.`
    /// and `..`, which frontends pass without counting.
    pub async fn remember(&self, parent: Ino, item: &DirItem) -> Option<FileAttr> {
        if !self.writes.is_dirty(item.ino) && !self.inodes().changed_since(item.ino, item.asked) {
            return self.remember_clean(parent, item);
        }
        // The listing's size lags behind buffered writes, or the file
        // changed through the mount since it was listed (another name of
        // it sent its writes, a listing fetched ahead): send what is
        // buffered, then ask again.
        let remote = item.remote.as_ref()?;
        let listed = self.inodes().upsert(parent, &item.name, remote, Instant::now());
        self.writes.flush_inode(listed.ino).await;
        self.ns.changed(listed.ino, Change::Flushed);
        let fattr = self.getattr(listed.ino, None).await.unwrap_or(listed);
        self.inodes().inc_lookup(fattr.ino, 1);
        Some(fattr)
    }

    /// [`Vfs::remember`] for entries with no buffered writes and no change
    /// since they were listed (see [`Vfs::any_dirty`]), which needs no
    /// waiting.
    pub fn remember_clean(&self, parent: Ino, item: &DirItem) -> Option<FileAttr> {
        let remote = item.remote.as_ref()?;
        let mut table = self.inodes();
        let fattr = table.upsert(parent, &item.name, remote, Instant::now());
        table.inc_lookup(fattr.ino, 1);
        Some(fattr)
    }

    /// Whether any of `items` has writes not yet sent, or changed through
    /// the mount since it was listed: attributes (size, mtime, nlink) the
    /// listing does not reflect.
    pub fn any_dirty(&self, items: &[DirItem]) -> bool {
        items.iter().any(|i| {
            i.remote.is_some() && (self.writes.is_dirty(i.ino) || self.inodes().changed_since(i.ino, i.asked))
        })
    }

    pub fn releasedir(&self, fh: Fh) -> Result<()> {
        let dir = self
            .files
            .remove_dir(fh)
            .ok_or_else(|| VfsError::new("releasedir", "", Errno::EBADF))?;
        self.inodes().open_dec(dir.ino);
        Ok(())
    }
}
