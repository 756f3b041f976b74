//! Listing prefetch: a walker (`find`, `ls -R`, `du`, `rm -rf`, `git
//! status`) that lists a directory right after its parent will list its
//! subdirectories and siblings next; the listings its `ListTree` answers
//! did not bring are fetched ahead, several at once, and entered in the
//! namespace, where they are complete until the names TTL ends or anything
//! changes in them (a reader lists them from there).

use crate::attr::Ino;
use crate::calls::RemoteCalls;
use crate::namespace::Namespace;
use crate::sync::lock;
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use yonder_proto::TreeBudget;

/// What a listing asks to come with it (`ListTree`): a large directory in
/// pages of 2 MiB (some 15,000 entries with their attributes), then the
/// listings of the directories below it, and regular files of up to
/// 16 KiB with their contents, up to 1 MiB of them. A walk then costs a
/// round trip per few thousand entries, not one per directory and file.
pub(super) fn tree_budget(readdir_page: u32) -> TreeBudget {
    TreeBudget {
        max_bytes: 2 << 20,
        max_entries: readdir_page,
        max_depth: 64,
        file_max: 16 << 10,
        data_bytes: 1 << 20,
    }
}

/// What a directory's listing asks to come with it when a reader opens
/// one of its small files whose contents are not kept (`contents_around`):
/// that directory alone, with up to 1 MiB of its files of up to 64 KiB.
fn contents_budget(readdir_page: u32) -> TreeBudget {
    TreeBudget {
        max_bytes: 2 << 20,
        max_entries: readdir_page,
        max_depth: 0,
        file_max: CONTENTS_FILE_MAX as u32,
        data_bytes: 1 << 20,
    }
}

/// Largest file whose contents come with a listing asked for them.
const CONTENTS_FILE_MAX: u64 = 64 << 10;

/// How long a directory whose contents were fetched ahead is not asked for
/// them again: a directory with more than one answer's worth of small
/// files would otherwise be sent the same first megabyte on every open.
const CONTENTS_AGAIN_AFTER: Duration = Duration::from_secs(30);

/// Directory listings fetched ahead at once, and per walk step.
const PREFETCH_PARALLEL: usize = 8;

const PREFETCH_MAX: usize = 64;

/// Listings fetched ahead of a reader.
pub(super) struct Prefetch {
    /// Directory listings being fetched ahead of a reader.
    prefetching: Mutex<HashSet<Ino>>,
    /// Directories whose files' contents were fetched ahead, and when.
    contents_fetched: Mutex<HashMap<Ino, Instant>>,
    slots: Arc<tokio::sync::Semaphore>,
    ns: Arc<Namespace>,
    calls: Arc<RemoteCalls>,
    /// Where listings are fetched ahead: some calls come from frontend
    /// threads outside the runtime.
    runtime: tokio::runtime::Handle,
    readdir_page: u32,
    /// For the tasks fetching ahead.
    me: Weak<Prefetch>,
}

impl Prefetch {
    pub fn new(
        ns: Arc<Namespace>,
        calls: Arc<RemoteCalls>,
        runtime: tokio::runtime::Handle,
        readdir_page: u32,
    ) -> Arc<Prefetch> {
        Arc::new_cyclic(|me| Prefetch {
            prefetching: Mutex::default(),
            contents_fetched: Mutex::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(PREFETCH_PARALLEL)),
            ns,
            calls,
            runtime,
            readdir_page,
            me: me.clone(),
        })
    }

    /// A walker that lists a directory whose parent it listed just before
    /// (`find`, `ls -R`, `du`, `rm -rf`, `git status`) will list its
    /// subdirectories and its siblings next. Fetching those listings now,
    /// several at once, turns one round trip per directory into a few for
    /// the whole walk. A one-off `ls` (parent not listed) fetches nothing.
    pub fn around(&self, dir: Ino) {
        let Some(prefetch) = self.me.upgrade() else { return };
        let now = Instant::now();
        let candidates = {
            let table = self.ns.table();
            let Some(parent) = table.get(dir).and_then(|n| n.links.first()).map(|(p, _)| *p) else {
                return;
            };
            if !table.listing_fresh(parent, now) {
                return;
            }
            let mut dirs = table.unlisted_subdirs(dir, now);
            dirs.extend(
                table
                    .unlisted_subdirs(parent, now)
                    .into_iter()
                    .filter(|d| *d != dir),
            );
            dirs
        };
        let mut started = 0;
        for ino in candidates {
            if started == PREFETCH_MAX {
                break;
            }
            if !lock(&self.prefetching).insert(ino) {
                continue;
            }
            started += 1;
            let prefetch = prefetch.clone();
            self.runtime.spawn(async move {
                prefetch.prefetch_listing(ino).await;
                lock(&prefetch.prefetching).remove(&ino);
            });
        }
    }

    /// A reader that opens a small file whose contents are not kept here
    /// (`cat *`, `grep -r`, a build, after a `find` or an `ls` whose
    /// listing brought only some) will open its siblings next: their
    /// contents, fetched now in one round trip with their directory's
    /// listing, spare an open round trip each (see `Vfs::open`). Once per
    /// directory every [`CONTENTS_AGAIN_AFTER`], and only where two or more
    /// small files lack theirs.
    pub fn contents_around(&self, file: Ino) {
        let Some(prefetch) = self.me.upgrade() else { return };
        let now = Instant::now();
        let dir = {
            let table = self.ns.table();
            let Some(dir) = table.get(file).and_then(|n| n.links.first()).map(|(p, _)| *p) else {
                return;
            };
            if table.small_files_without_contents(dir, CONTENTS_FILE_MAX, now) < 2 {
                return;
            }
            dir
        };
        {
            let mut fetched = lock(&self.contents_fetched);
            if fetched
                .get(&dir)
                .is_some_and(|at| now < *at + CONTENTS_AGAIN_AFTER)
            {
                return;
            }
            if fetched.len() >= 4096 {
                fetched.retain(|_, at| now < *at + CONTENTS_AGAIN_AFTER);
            }
            fetched.insert(dir, now);
        }
        self.runtime.spawn(async move {
            let Ok(_slot) = prefetch.slots.clone().acquire_owned().await else {
                return;
            };
            prefetch
                .fetch_with(dir, contents_budget(prefetch.readdir_page))
                .await;
        });
    }

    pub(super) async fn prefetch_listing(&self, ino: Ino) {
        let Ok(_slot) = self.slots.clone().acquire_owned().await else {
            return;
        };
        if self.ns.table().listing_fresh(ino, Instant::now()) {
            return;
        }
        self.fetch_listing(ino).await;
    }

    /// When the names of a directory listed before have expired, the first
    /// lookup in it lists it again: one round trip refreshes every entry,
    /// where a reader going through its files (`cat *`, `git status`, a
    /// build) would otherwise pay one per file. Returns whether the listing
    /// was refreshed.
    pub async fn relist(&self, dir: Ino) -> bool {
        if !self.ns.policy().caches_names() {
            // The listing would expire as it arrives, and the name be
            // asked for anyway.
            return false;
        }
        let worthwhile = self
            .ns
            .table()
            .relist_worthwhile(dir, self.readdir_page as usize, Instant::now());
        // Lookups arriving meanwhile ask for their own name.
        if !worthwhile || !lock(&self.prefetching).insert(dir) {
            return false;
        }
        self.fetch_listing(dir).await;
        lock(&self.prefetching).remove(&dir);
        self.ns.table().listing_fresh(dir, Instant::now())
    }

    /// Lists `dir` and keeps the listing, if it fits one page (a huge
    /// directory is paged by its reader as usual) and the directory did not
    /// change meanwhile.
    pub(super) async fn fetch_listing(&self, dir: Ino) {
        self.fetch_with(dir, tree_budget(self.readdir_page)).await
    }

    /// [`Prefetch::fetch_listing`] with `budget`.
    async fn fetch_with(&self, dir: Ino, budget: TreeBudget) {
        let (path, version) = {
            let table = self.ns.table();
            match (table.path(dir), table.dir_version(dir)) {
                (Some(path), Some(version)) => (path, version),
                _ => return,
            }
        };
        let (asked, mutations) = (Instant::now(), self.ns.table().mutations());
        // Only worth it while the connection is up.
        let Some((remote, _)) = self.calls.if_up() else {
            return;
        };
        // The remote lags behind names acknowledged here: not worth waiting
        // for, ahead of a reader.
        if !self.calls.order().is_quiet(&path) {
            return;
        }
        match remote.list_tree(&path, None, budget).await {
            Ok(tree) if tree.next.is_none() => {
                let mut dirs = tree.dirs.into_iter();
                let top = dirs.next().map(|d| d.entries).unwrap_or_default();
                let now = Instant::now();
                let mut table = self.ns.table();
                let unchanged = table.mutations() == mutations;
                table.store_listing(dir, version, top, unchanged, asked, now);
                table.store_subtree(dirs.collect(), mutations, asked, now);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(path = %String::from_utf8_lossy(&path), %e, "listing failed"),
        }
    }
}
