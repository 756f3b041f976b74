//! Pushed change notification: the agent watches the directories its
//! client has visited and tells it what changed there (`Notice`), so the
//! client may trust its caches for long.
//!
//! Which directories: each one the client listed (`ReadDir`), looked a
//! name up in or otherwise named a path in (the path's parent), or made
//! (`Mkdir`), not the whole tree up front. Watching a large tree up front
//! costs one inotify watch per directory before the first answer (and
//! `max_user_watches`, 8,192 on many hosts, is soon reached); a client's
//! caches only ever hold what it visited, and a visit is a request the
//! agent reads anyway, so watching costs no round trip. A directory is
//! watched before the request that visits it runs, so no change between
//! the answer and the watch is missed.
//!
//! Events from the watcher's thread are gathered for [`COALESCE`] (one
//! notice for a burst of changes, each path once) into a [`Coalescer`];
//! more distinct paths than [`max_batch`] become `Notice::Overflow`, as
//! does the watcher's own queue overflowing (inotify's `IN_Q_OVERFLOW`,
//! notify's rescan flag). A directory that cannot be watched (the host's
//! watch limit) is reported once, as `Notice::Unwatched`.

use notify::event::{ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher as _};
use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use yonder_proto::{ChangeKind, Notice, PathChange, Request, WirePath};

/// How long changes are gathered into one notice after the first.
pub(crate) const COALESCE: Duration = Duration::from_millis(5);
/// Distinct paths one notice carries at most; past that it says
/// `Overflow` (the client then forgets everything), which is cheaper to
/// send and to act on than a huge list.
const MAX_BATCH: usize = 4096;

/// [`MAX_BATCH`], or `YONDER_WATCH_MAX_BATCH` from the environment (tests
/// force an overflow with a small one).
fn max_batch() -> usize {
    std::env::var("YONDER_WATCH_MAX_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(MAX_BATCH)
}

/// What the watcher's thread hands on.
#[derive(Debug)]
enum Raw {
    Change(PathChange),
    /// A directory moved from `from` to `to` (both below the root).
    Moved {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Overflow,
}

/// The agent's watches over its root.
pub(crate) struct Watch {
    root: PathBuf,
    state: Mutex<State>,
}

struct State {
    watcher: notify::RecommendedWatcher,
    /// Directories watched, as wire paths (`b""` is the root).
    watched: HashSet<Vec<u8>>,
    /// Whether a refused watch was reported already.
    refusal_told: bool,
    /// Largest number of watches, from `YONDER_WATCH_MAX_DIRS` (tests
    /// stand in for the host's limit with it); `None`: the host's.
    limit: Option<usize>,
}

impl Watch {
    /// Starts watching `root` itself, and sends notices to `notices`.
    /// `None` where the host cannot watch (logged): the client then keeps
    /// short TTLs.
    /// The task gathering events holds the watch: abort it to stop.
    pub(crate) fn start(
        root: &Path,
        notices: mpsc::UnboundedSender<Notice>,
    ) -> Option<(Arc<Watch>, tokio::task::AbortHandle)> {
        let (raw_tx, raw_rx) = mpsc::unbounded_channel();
        let event_root = root.to_path_buf();
        let watcher = notify::recommended_watcher(move |event: notify::Result<Event>| match event {
            Ok(event) => {
                for raw in translate(&event_root, &event) {
                    let _ = raw_tx.send(raw);
                }
            }
            Err(e) => tracing::debug!("watch: {e}"),
        });
        let watcher = match watcher {
            Ok(watcher) => watcher,
            Err(e) => {
                tracing::warn!("cannot watch {} for changes: {e}", root.display());
                return None;
            }
        };
        let limit = std::env::var("YONDER_WATCH_MAX_DIRS")
            .ok()
            .and_then(|v| v.parse().ok());
        let watch = Arc::new(Watch {
            root: root.to_path_buf(),
            state: Mutex::new(State {
                watcher,
                watched: HashSet::new(),
                refusal_told: false,
                limit,
            }),
        });
        watch.directory(b"", &notices);
        let task = tokio::spawn(forward(watch.clone(), raw_rx, notices));
        Some((watch, task.abort_handle()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it leaves a set that is at worst missing
        // a watch, which the next visit adds.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches the directories `request` visits, before it runs.
    pub(crate) fn before(&self, request: &Request, notices: &mpsc::UnboundedSender<Notice>) {
        match request {
            Request::Once { request, .. } => self.before(request, notices),
            // The directories below it are watched as the walk reaches
            // them (`Agent::visiting`), before each is read.
            Request::ReadDir { path, .. } | Request::ListTree { path, .. } => self.directory(path, notices),
            _ => {
                for path in paths_of(request) {
                    self.directory(parent(path), notices);
                }
            }
        }
    }

    /// Watches the directory `request` made, before it is answered.
    pub(crate) fn after(&self, request: &Request, notices: &mpsc::UnboundedSender<Notice>) {
        match request {
            Request::Mkdir { path, .. } => self.directory(path, notices),
            Request::Once { request, .. } => self.after(request, notices),
            _ => {}
        }
    }

    /// Whether `request` makes a directory, which `after` then watches.
    pub(crate) fn makes_directory(request: &Request) -> bool {
        match request {
            Request::Mkdir { .. } => true,
            Request::Once { request, .. } => Self::makes_directory(request),
            _ => false,
        }
    }

    /// Watches directory `path` (a wire path) unless it is already.
    pub(crate) fn directory(&self, path: &[u8], notices: &mpsc::UnboundedSender<Notice>) {
        let Some(key) = normalize(path) else { return };
        let mut state = self.lock();
        if state.watched.contains(&key) {
            return;
        }
        let full = self.root.join(std::ffi::OsStr::from_bytes(&key));
        let result = match state.limit {
            Some(limit) if state.watched.len() >= limit => {
                Err(notify::Error::new(notify::ErrorKind::MaxFilesWatch))
            }
            _ => state.watcher.watch(&full, RecursiveMode::NonRecursive),
        };
        match result {
            Ok(()) => {
                state.watched.insert(key);
            }
            Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                if !std::mem::replace(&mut state.refusal_told, true) {
                    let reason = format!("the host's limit of watches is reached ({e})");
                    tracing::warn!("cannot watch {} for changes: {reason}", full.display());
                    let _ = notices.send(Notice::Unwatched {
                        path: WirePath::from(key),
                        reason,
                    });
                }
            }
            // Not a directory, gone meanwhile, no permission: nothing of it
            // is cached as a listing either.
            Err(e) => tracing::debug!("not watching {}: {e}", full.display()),
        }
    }

    /// A name went away or moved: directories watched at or below it are
    /// watched again when the client visits them, or at their new place
    /// now, for a move whose destination is known. The watcher itself
    /// drops the watch of a directory that moved or went; only this set
    /// forgets it here (a visit racing this is watched again next time:
    /// watching twice is harmless, dropping a fresh watch would not be).
    /// Whether a watched directory moved.
    fn moved(&self, from: &[u8], to: Option<&[u8]>) -> bool {
        let mut state = self.lock();
        let below: Vec<Vec<u8>> = state
            .watched
            .iter()
            .filter(|w| is_at_or_below(w, from))
            .cloned()
            .collect();
        let any = !below.is_empty();
        for old in below {
            state.watched.remove(&old);
            // The directory's events would be named by a path that now
            // names something else, or nothing: it is watched by its new
            // one from now on.
            if let Some(to) = to {
                let mut new = to.to_vec();
                new.extend_from_slice(&old[from.len()..]);
                let new_path = self.root.join(std::ffi::OsStr::from_bytes(&new));
                if state
                    .watcher
                    .watch(&new_path, RecursiveMode::NonRecursive)
                    .is_ok()
                {
                    state.watched.insert(new);
                }
            }
        }
        any
    }
}

/// Gathers the watcher's events into notices.
async fn forward(
    watch: Arc<Watch>,
    mut raw: mpsc::UnboundedReceiver<Raw>,
    notices: mpsc::UnboundedSender<Notice>,
) {
    let max = max_batch();
    while let Some(first) = raw.recv().await {
        let mut events = vec![first];
        let until = tokio::time::Instant::now() + COALESCE;
        // A moved directory's watch went with the move: it is watched at
        // its new path at once, not after the gathering.
        let mut moved = HashSet::new();
        let mut rewatched = HashSet::new();
        loop {
            for event in &events {
                if let Raw::Moved { from, to } = event {
                    if moved.insert((from.clone(), to.clone())) && watch.moved(from, Some(to)) {
                        rewatched.insert(to.clone());
                    }
                }
            }
            match tokio::time::timeout_at(until, raw.recv()).await {
                Ok(Some(event)) => events.push(event),
                Ok(None) | Err(_) => break,
            }
        }
        if let Some(notice) = gather(&watch, events, &rewatched, max) {
            if notices.send(notice).is_err() {
                return;
            }
        }
    }
}

/// One notice for `events` (moved directories already followed). A move
/// is seen as its source going, its destination coming, and the pair:
/// only directories that went out of sight are forgotten.
/// `rewatched`: destinations of moves that took watched directories along.
fn gather(watch: &Watch, events: Vec<Raw>, rewatched: &HashSet<Vec<u8>>, max: usize) -> Option<Notice> {
    let mut batch = Coalescer::new(max);
    let mut moved = HashSet::new();
    for event in &events {
        if let Raw::Moved { from, to } = event {
            moved.insert(from.clone());
            moved.insert(to.clone());
        }
    }
    for event in events {
        match event {
            Raw::Change(change) => {
                if change.kind == ChangeKind::Entry && !moved.contains(&change.path[..]) {
                    let _ = watch.moved(&change.path, None);
                }
                batch.add(change);
            }
            Raw::Moved { from, to } => {
                batch.add(PathChange {
                    path: WirePath::from(from),
                    kind: ChangeKind::Entry,
                });
                // Changes in a watched directory between the move and its
                // new watch went unseen.
                let kind = if rewatched.contains(&to) {
                    ChangeKind::Tree
                } else {
                    ChangeKind::Entry
                };
                batch.add(PathChange {
                    path: WirePath::from(to),
                    kind,
                });
            }
            Raw::Overflow => batch.overflow(),
        }
    }
    batch.take()
}

/// Changes gathered for one notice: each path once, the stronger kind
/// kept; past `max` paths, an overflow.
#[derive(Debug)]
pub(crate) struct Coalescer {
    changes: Vec<PathChange>,
    index: HashMap<Vec<u8>, usize>,
    overflowed: bool,
    max: usize,
}

impl Coalescer {
    pub(crate) fn new(max: usize) -> Coalescer {
        Coalescer {
            changes: Vec::new(),
            index: HashMap::new(),
            overflowed: false,
            max,
        }
    }

    pub(crate) fn add(&mut self, change: PathChange) {
        if self.overflowed {
            return;
        }
        if let Some(&at) = self.index.get(change.path.as_slice()) {
            self.changes[at].kind = self.changes[at].kind.max(change.kind);
            return;
        }
        if self.changes.len() >= self.max {
            self.overflow();
            return;
        }
        self.index.insert(change.path.to_vec(), self.changes.len());
        self.changes.push(change);
    }

    pub(crate) fn overflow(&mut self) {
        self.overflowed = true;
        self.changes.clear();
        self.index.clear();
    }

    /// The notice for what was gathered, if anything, and starts afresh.
    pub(crate) fn take(&mut self) -> Option<Notice> {
        let notice = if std::mem::take(&mut self.overflowed) {
            Some(Notice::Overflow)
        } else if self.changes.is_empty() {
            None
        } else {
            Some(Notice::Changed(std::mem::take(&mut self.changes)))
        };
        self.changes.clear();
        self.index.clear();
        notice
    }
}

/// The watcher's event as wire changes.
fn translate(root: &Path, event: &Event) -> Vec<Raw> {
    if event.need_rescan() {
        return vec![Raw::Overflow];
    }
    let wire = |p: &PathBuf| -> Option<Vec<u8>> {
        let rel = p.strip_prefix(root).ok()?;
        Some(rel.as_os_str().as_bytes().to_vec())
    };
    let changes = |kind: ChangeKind| -> Vec<Raw> {
        event
            .paths
            .iter()
            .filter_map(wire)
            .map(|path| {
                Raw::Change(PathChange {
                    path: WirePath::from(path),
                    kind,
                })
            })
            .collect()
    };
    match &event.kind {
        EventKind::Access(_) => Vec::new(),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => match &event.paths[..] {
            [from, to] => match (wire(from), wire(to)) {
                (Some(from), Some(to)) => vec![Raw::Moved { from, to }],
                _ => changes(ChangeKind::Entry),
            },
            _ => changes(ChangeKind::Entry),
        },
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => {
            changes(ChangeKind::Entry)
        }
        EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Metadata(_)) => {
            changes(ChangeKind::Content)
        }
        // Anything else may have been either.
        _ => changes(ChangeKind::Entry),
    }
}

/// The paths a request names (the directories holding them are visited).
fn paths_of(request: &Request) -> Vec<&[u8]> {
    match request {
        Request::Lstat { path }
        | Request::Stat { path }
        | Request::ReadDir { path, .. }
        | Request::Open { path, .. }
        | Request::OpenRead { path, .. }
        | Request::Mkdir { path, .. }
        | Request::Mknod { path, .. }
        | Request::Unlink { path }
        | Request::Rmdir { path }
        | Request::Symlink { path, .. }
        | Request::Readlink { path }
        | Request::Statfs { path }
        | Request::GetXattr { path, .. }
        | Request::SetXattr { path, .. }
        | Request::ListXattr { path }
        | Request::RemoveXattr { path, .. }
        | Request::Access { path, .. } => vec![path],
        Request::Rename { from, to, .. } | Request::Link { from, to } => vec![from, to],
        Request::Setattr {
            target: yonder_proto::Target::Path(path),
            ..
        } => vec![path],
        _ => Vec::new(),
    }
}

/// `path` without `.` parts or empty ones; `None` with a `..` (such a
/// path is not watched).
fn normalize(path: &[u8]) -> Option<Vec<u8>> {
    let mut parts = Vec::new();
    for part in path.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return None,
            part => parts.push(part),
        }
    }
    Some(parts.join(&b'/'))
}

/// The directory holding `path`.
fn parent(path: &[u8]) -> &[u8] {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    match trimmed.iter().rposition(|b| *b == b'/') {
        Some(at) => &trimmed[..at],
        None => b"",
    }
}

fn is_at_or_below(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() || path == dir || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, kind: ChangeKind) -> PathChange {
        PathChange {
            path: WirePath::from(path.as_bytes().to_vec()),
            kind,
        }
    }

    #[test]
    fn each_path_once_with_the_stronger_kind() {
        let mut c = Coalescer::new(10);
        c.add(change("a", ChangeKind::Content));
        c.add(change("b", ChangeKind::Entry));
        c.add(change("a", ChangeKind::Content));
        c.add(change("a", ChangeKind::Entry));
        c.add(change("b", ChangeKind::Content));
        assert_eq!(
            c.take(),
            Some(Notice::Changed(vec![
                change("a", ChangeKind::Entry),
                change("b", ChangeKind::Entry)
            ]))
        );
        assert_eq!(c.take(), None, "taken once");
    }

    #[test]
    fn more_paths_than_a_notice_carries_overflow() {
        let mut c = Coalescer::new(3);
        for name in ["a", "b", "c", "a"] {
            c.add(change(name, ChangeKind::Content));
        }
        assert!(matches!(c.take(), Some(Notice::Changed(v)) if v.len() == 3));
        for name in ["a", "b", "c", "d", "e"] {
            c.add(change(name, ChangeKind::Content));
        }
        assert_eq!(c.take(), Some(Notice::Overflow));
        c.add(change("x", ChangeKind::Content));
        assert!(
            matches!(c.take(), Some(Notice::Changed(v)) if v.len() == 1),
            "starts afresh"
        );
    }

    #[test]
    fn an_overflow_swallows_the_batch() {
        let mut c = Coalescer::new(10);
        c.add(change("a", ChangeKind::Content));
        c.overflow();
        c.add(change("b", ChangeKind::Content));
        assert_eq!(c.take(), Some(Notice::Overflow));
    }

    #[test]
    fn paths_and_parents() {
        assert_eq!(normalize(b"./a//b/"), Some(b"a/b".to_vec()));
        assert_eq!(normalize(b"."), Some(Vec::new()));
        assert_eq!(normalize(b"a/../b"), None);
        assert_eq!(parent(b"a/b/c"), b"a/b");
        assert_eq!(parent(b"c"), b"");
        assert!(is_at_or_below(b"a/b", b"a"));
        assert!(is_at_or_below(b"a", b"a"));
        assert!(!is_at_or_below(b"ab", b"a"));
        assert!(is_at_or_below(b"x", b""));
    }

    #[test]
    fn renames_and_rescans_translate() {
        let root = Path::new("/r");
        let both = Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::Both)))
            .add_path("/r/a".into())
            .add_path("/r/d/b".into());
        assert!(
            matches!(&translate(root, &both)[..], [Raw::Moved { from, to }] if from == b"a" && to == b"d/b")
        );
        let data = Event::new(EventKind::Modify(ModifyKind::Data(
            notify::event::DataChange::Any,
        )))
        .add_path("/r/f".into());
        assert!(matches!(&translate(root, &data)[..], [Raw::Change(c)] if c.kind == ChangeKind::Content));
        let rescan = Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        assert!(matches!(&translate(root, &rescan)[..], [Raw::Overflow]));
        let outside =
            Event::new(EventKind::Create(notify::event::CreateKind::File)).add_path("/elsewhere".into());
        assert!(translate(root, &outside).is_empty());
    }
}
