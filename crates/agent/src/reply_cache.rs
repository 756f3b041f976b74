//! The reply cache: what each `Once` operation of a session answered, so
//! that the operation is carried out at most once however often the
//! client sends it.
//!
//! A client that loses its connection with a create, rename or unlink in
//! flight cannot tell from the remote whether it happened (the name may
//! exist because another process made it). So it sends the operation again
//! under the same number to the next agent of its session, which answers
//! with what the first answered. NFSv4.1 sessions do the same.
//!
//! The next agent is another process, so the records live in a file beside
//! the session's fence file (`once-SESSION`), appended to by every agent of
//! the session: `Begin` before an operation runs (before the fence check,
//! so an operation an older agent is still running is seen, and waited
//! for, by the newer one), then `Done` with its response, or `Dropped`
//! when it was refused without running. Each record is one `write` of
//! `MAGIC | length | crc32 | postcard body`: a torn record (an agent killed
//! mid-write) fails its checksum and the reader finds the next magic. The
//! file is bounded by the client's `settled_below`: records below it are
//! dropped from memory, and the file is rewritten aside and renamed over
//! once most of it is dead. Writers hold `flock` on the file and check it is
//! still the one at the path, so no record is appended to a file already
//! replaced. Not fsynced: the file must outlive an agent process, not the
//! host (the runtime directory is usually a tmpfs).
//!
//! The file goes with the last agent of its session once every operation in
//! it is settled (the client settles all when it closes its link); files
//! left by clients that vanished are swept after a day.

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno as HostErrno;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use yonder_proto::{Errno, Request, Response, WireError};

const MAGIC: u32 = 0x594f_4e43;
const HEADER: usize = 12;
/// How long a request waits for another agent to finish the same
/// operation: past the 10 s an agent drains its requests after its client
/// left.
const WAIT_FOR_OTHER: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(5);
/// A file of more records than this, four times as many as are live, is
/// rewritten with the live ones only.
const COMPACT_AFTER: usize = 1024;
/// Files of sessions no agent serves any more, untouched this long, go.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Record {
    Begin {
        id: u64,
        fingerprint: u32,
        instance: u64,
        pid: u32,
    },
    Done {
        id: u64,
        fingerprint: u32,
        instance: u64,
        response: Response,
    },
    Dropped {
        id: u64,
    },
}

#[derive(Clone, Debug)]
enum Entry {
    Running {
        fingerprint: u32,
        instance: u64,
        pid: u32,
    },
    Done {
        fingerprint: u32,
        instance: u64,
        response: Response,
    },
}

/// What to do with a `Once` request.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Not recorded: carry it out, then [`ReplyCache::finish`] or
    /// [`ReplyCache::drop_op`].
    Run,
    /// Carried out before: its response. `ours`: by this agent, so a handle
    /// in it is this agent's.
    Answered { response: Response, ours: bool },
    /// Refused, answered with this.
    Refused(Response),
}

pub(crate) struct ReplyCache {
    /// Tells this agent's records (and handles) from another's, also of
    /// an agent in the same process.
    instance: u64,
    state: Mutex<State>,
}

/// Whether a missing file is made again: by the session's current agent
/// only. A replaced one finishing an operation after the file went (the
/// client settled everything) must not leave a file nobody removes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    Create,
    Leave,
}

#[derive(Default)]
struct State {
    file: Option<CacheFile>,
    entries: HashMap<u64, Entry>,
    floor: u64,
    /// A newer agent of the session took over: this one neither makes
    /// the file again nor rewrites it.
    retired: bool,
}

struct CacheFile {
    path: PathBuf,
    file: std::fs::File,
    identity: (u64, u64),
    /// Bytes of the file parsed so far.
    read_to: u64,
    records: usize,
}

fn refused(op: &str, errno: Errno, why: String) -> Response {
    Response::Error(WireError {
        errno,
        message: format!("{op}: {why}"),
    })
}

impl Default for ReplyCache {
    fn default() -> ReplyCache {
        ReplyCache {
            instance: instance_number(),
            state: Mutex::new(State::default()),
        }
    }
}

impl ReplyCache {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records go to the file of `session` in `dir` (the fence's
    /// directory) from now on; what it holds already is loaded.
    pub(crate) fn attach(&self, dir: &Path, session: u64) -> std::io::Result<()> {
        sweep(dir);
        let path = dir.join(format!("once-{session:016x}"));
        let mut state = self.state();
        if state.file.as_ref().is_some_and(|f| f.path == path) {
            return Ok(());
        }
        state.entries.clear();
        state.retired = false;
        state.file = Some(CacheFile::open(&path, Missing::Create)?);
        state.refresh();
        Ok(())
    }

    /// Whether `entry` is an operation another agent is carrying out.
    fn runs_elsewhere(&self, entry: Option<&Entry>) -> bool {
        matches!(entry, Some(Entry::Running { instance, .. }) if *instance != self.instance)
    }

    /// Whether a `Once` for `id` would wait for another agent now.
    pub(crate) fn would_wait(&self, id: u64) -> bool {
        let mut state = self.state();
        if !state.entries.contains_key(&id) {
            state.refresh();
        }
        matches!(state.entries.get(&id), Some(Entry::Running { instance, .. }) if *instance != self.instance)
    }

    /// Decides what to do with operation `id` of `request`, after dropping
    /// the records below `settled_below`. `Run` has recorded its start.
    pub(crate) fn begin(&self, id: u64, settled_below: u64, request: &Request) -> Verdict {
        let op = request.op();
        let fingerprint = fingerprint(request);
        let started = Instant::now();
        let mut state = self.state();
        state.settle(settled_below);
        loop {
            // Unknown, or another agent's still running: what was appended
            // since may tell.
            let entry = state.entries.get(&id);
            if entry.is_none() || self.runs_elsewhere(entry) {
                state.refresh();
            }
            match state.entries.get(&id).cloned() {
                None if id < state.floor => {
                    return Verdict::Refused(refused(
                        op,
                        Errno::EPROTO,
                        format!("operation {id} was settled already"),
                    ))
                }
                None => {
                    let pid = std::process::id();
                    let instance = self.instance;
                    state.append(&Record::Begin {
                        id,
                        fingerprint,
                        instance,
                        pid,
                    });
                    state.entries.insert(
                        id,
                        Entry::Running {
                            fingerprint,
                            instance,
                            pid,
                        },
                    );
                    return Verdict::Run;
                }
                Some(Entry::Done { fingerprint: f, .. } | Entry::Running { fingerprint: f, .. })
                    if f != fingerprint =>
                {
                    return Verdict::Refused(refused(
                        op,
                        Errno::EPROTO,
                        format!("operation {id} was recorded for another request"),
                    ))
                }
                Some(Entry::Done {
                    instance, response, ..
                }) => {
                    return Verdict::Answered {
                        response,
                        ours: instance == self.instance,
                    }
                }
                Some(Entry::Running { instance, .. }) if instance == self.instance => {
                    return Verdict::Refused(refused(
                        op,
                        Errno::EIO,
                        format!("operation {id} is already running in this agent"),
                    ))
                }
                Some(Entry::Running { pid, .. }) => {
                    // Another agent of the session read it before it was
                    // replaced and is still carrying it out: its answer is
                    // the one, so wait for it.
                    let alive = process_alive(pid);
                    if !alive || started.elapsed() > WAIT_FOR_OTHER {
                        state.refresh();
                        if matches!(state.entries.get(&id), Some(Entry::Running { .. })) {
                            let why = if alive {
                                format!("operation {id} is still running in agent process {pid}")
                            } else {
                                format!(
                                    "agent process {pid} ended while carrying out operation {id}; \
                                     whether it took effect is unknown"
                                )
                            };
                            return Verdict::Refused(refused(op, Errno::EIO, why));
                        }
                        continue;
                    }
                    drop(state);
                    std::thread::sleep(POLL);
                    state = self.state();
                }
            }
        }
    }

    /// Records the response of operation `id`, which ran here.
    pub(crate) fn finish(&self, id: u64, request: &Request, response: &Response) {
        let fingerprint = fingerprint(request);
        let instance = self.instance;
        let mut state = self.state();
        state.append(&Record::Done {
            id,
            fingerprint,
            instance,
            response: response.clone(),
        });
        state.entries.insert(
            id,
            Entry::Done {
                fingerprint,
                instance,
                response: response.clone(),
            },
        );
        state.compact_if_mostly_dead();
    }

    /// Forgets operation `id`, begun here and refused before it ran, so
    /// that an agent of the session may run it.
    pub(crate) fn drop_op(&self, id: u64) {
        let mut state = self.state();
        state.append(&Record::Dropped { id });
        state.entries.remove(&id);
    }

    /// A newer agent of the session took over from this one.
    pub(crate) fn retire(&self) {
        self.state().retired = true;
    }

    /// Drops the records below `settled_below`.
    pub(crate) fn settle(&self, settled_below: u64) {
        self.state().settle(settled_below);
    }

    /// Removes the file, when every operation in it is settled and
    /// `still_ours` (no newer agent of the session uses it): when the
    /// client says all is settled (at rest, and as it closes its link),
    /// and as the agent ends.
    pub(crate) fn release(&self, still_ours: bool) {
        let mut state = self.state();
        state.refresh();
        let floor = state.floor;
        state.entries.retain(|id, _| *id >= floor);
        if !still_ours || !state.entries.is_empty() {
            return;
        }
        // Kept open: a record appended later finds the path gone and
        // makes the file again.
        if let Some(file) = state.file.as_ref() {
            let _lock = file.lock();
            if file.current() {
                let _ = std::fs::remove_file(&file.path);
            }
        }
    }

    #[cfg(test)]
    fn records_in_file(&self) -> usize {
        self.state().file.as_ref().map_or(0, |f| f.records)
    }
}

impl State {
    fn settle(&mut self, settled_below: u64) {
        if settled_below > self.floor {
            self.floor = settled_below;
            self.entries.retain(|id, _| *id >= settled_below);
        }
    }

    /// Reads what other agents appended (the whole file again if it was
    /// replaced).
    fn refresh(&mut self) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        if !file.current() {
            match CacheFile::open(&file.path, Missing::Leave) {
                Ok(reopened) => *file = reopened,
                // Removed: everything in it was settled.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
                Err(err) => {
                    tracing::warn!(
                        "{}: {err}; replies recorded by other agents are not seen",
                        file.path.display()
                    );
                    return;
                }
            }
        }
        let records = file.read_new();
        for record in records {
            apply(&mut self.entries, self.floor, record);
        }
    }

    fn append(&mut self, record: &Record) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let frame = encode(record);
        let missing = if self.retired {
            Missing::Leave
        } else {
            Missing::Create
        };
        loop {
            let lock = file.lock();
            if !file.current() {
                drop(lock);
                match CacheFile::open(&file.path, missing) {
                    Ok(reopened) => {
                        *file = reopened;
                        let records = file.read_new();
                        for r in records {
                            apply(&mut self.entries, self.floor, r);
                        }
                        continue;
                    }
                    Err(err) if missing == Missing::Leave && err.kind() == std::io::ErrorKind::NotFound => {
                        return
                    }
                    Err(err) => {
                        tracing::warn!(
                            "{}: {err}; this reply is kept in memory only",
                            file.path.display()
                        );
                        return;
                    }
                }
            }
            if let Err(err) = (&file.file).write_all(&frame) {
                tracing::warn!(
                    "{}: appending: {err}; this reply is kept in memory only",
                    file.path.display()
                );
            }
            file.records += 1;
            return;
        }
    }

    /// Rewrites the file with the live records once most of it is dead.
    fn compact_if_mostly_dead(&mut self) {
        let live = self.entries.len();
        if self.retired {
            return;
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        if file.records <= COMPACT_AFTER || file.records <= 4 * live {
            return;
        }
        let lock = file.lock();
        if !file.current() {
            return;
        }
        // Under the lock nobody appends: what was appended since the last
        // read is all there is to add.
        for record in file.read_new() {
            apply(&mut self.entries, self.floor, record);
        }
        let aside = file.path.with_extension(format!("{}", std::process::id()));
        let mut bytes = Vec::new();
        let mut count = 0;
        for (&id, entry) in &self.entries {
            let record = match entry.clone() {
                Entry::Running {
                    fingerprint,
                    instance,
                    pid,
                } => Record::Begin {
                    id,
                    fingerprint,
                    instance,
                    pid,
                },
                Entry::Done {
                    fingerprint,
                    instance,
                    response,
                } => Record::Done {
                    id,
                    fingerprint,
                    instance,
                    response,
                },
            };
            bytes.extend_from_slice(&encode(&record));
            count += 1;
        }
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&aside)
            .and_then(|mut f| f.write_all(&bytes))
            .and_then(|()| std::fs::rename(&aside, &file.path));
        drop(lock);
        match written.and_then(|()| CacheFile::open(&file.path, Missing::Create)) {
            Ok(mut fresh) => {
                fresh.read_new();
                debug_assert_eq!(fresh.records, count);
                *file = fresh;
            }
            Err(err) => {
                let _ = std::fs::remove_file(&aside);
                tracing::warn!("{}: rewriting: {err}", file.path.display());
            }
        }
    }
}

impl CacheFile {
    fn open(path: &Path, missing: Missing) -> std::io::Result<CacheFile> {
        let create = match missing {
            Missing::Create => OFlags::CREATE,
            Missing::Leave => OFlags::empty(),
        };
        let fd = rustix::fs::open(
            path,
            create | OFlags::RDWR | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let file = std::fs::File::from(fd);
        let meta = file.metadata()?;
        Ok(CacheFile {
            path: path.to_path_buf(),
            file,
            identity: (meta.dev(), meta.ino()),
            read_to: 0,
            records: 0,
        })
    }

    /// Whether the path still names this file (not rewritten or removed).
    fn current(&self) -> bool {
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity)
    }

    /// Held while appending or rewriting. Through a second descriptor of
    /// the same open file, so that the lock does not borrow `self`.
    fn lock(&self) -> Option<FileLock> {
        let locked = self.file.try_clone().ok()?;
        rustix::fs::flock(&locked, FlockOperation::LockExclusive).ok()?;
        Some(FileLock(locked))
    }

    /// The whole records appended since the last read.
    fn read_new(&mut self) -> Vec<Record> {
        let mut bytes = Vec::new();
        let read = (&self.file)
            .seek(SeekFrom::Start(self.read_to))
            .and_then(|_| (&self.file).read_to_end(&mut bytes));
        if let Err(err) = read {
            tracing::warn!("{}: reading: {err}", self.path.display());
            return Vec::new();
        }
        let (records, used) = decode_all(&bytes);
        self.read_to += used as u64;
        self.records += records.len();
        records
    }
}

struct FileLock(std::fs::File);

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.0, FlockOperation::Unlock);
    }
}

fn apply(entries: &mut HashMap<u64, Entry>, floor: u64, record: Record) {
    match record {
        Record::Begin {
            id,
            fingerprint,
            instance,
            pid,
        } if id >= floor => {
            entries.entry(id).or_insert(Entry::Running {
                fingerprint,
                instance,
                pid,
            });
        }
        Record::Done {
            id,
            fingerprint,
            instance,
            response,
        } if id >= floor => {
            entries.insert(
                id,
                Entry::Done {
                    fingerprint,
                    instance,
                    response,
                },
            );
        }
        Record::Dropped { id } => {
            if matches!(entries.get(&id), Some(Entry::Running { .. })) {
                entries.remove(&id);
            }
        }
        _ => {}
    }
}

fn encode(record: &Record) -> Vec<u8> {
    let body = postcard::to_stdvec(record).expect("a record encodes");
    let mut frame = Vec::with_capacity(HEADER + body.len());
    frame.extend_from_slice(&MAGIC.to_le_bytes());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// The records in `bytes`, and how many bytes they took: up to an
/// incomplete record at the end (perhaps still being written), skipping
/// torn ones.
fn decode_all(bytes: &[u8]) -> (Vec<Record>, usize) {
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"));
    let mut records = Vec::new();
    let mut at = 0;
    while at + HEADER <= bytes.len() {
        if word(at) != MAGIC {
            at += 1;
            continue;
        }
        let len = word(at + 4) as usize;
        let end = at + HEADER + len;
        if end > bytes.len() {
            // Incomplete: being written, or torn with nothing after it yet.
            // A later reader sees it complete, or finds it torn once more
            // follows.
            break;
        }
        let body = &bytes[at + HEADER..end];
        match (crc32fast::hash(body) == word(at + 8))
            .then(|| postcard::from_bytes::<Record>(body).ok())
            .flatten()
        {
            Some(record) => {
                records.push(record);
                at = end;
            }
            None => at += 1,
        }
    }
    (records, at)
}

fn fingerprint(request: &Request) -> u32 {
    crc32fast::hash(&postcard::to_stdvec(request).unwrap_or_default())
}

fn process_alive(pid: u32) -> bool {
    match rustix::process::Pid::from_raw(pid as i32) {
        Some(pid) => !matches!(rustix::process::test_kill_process(pid), Err(HostErrno::SRCH)),
        None => false,
    }
}

/// A number unlikely to be any other agent's (process id, time and the
/// system's randomness).
fn instance_number() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.finish()
}

/// Removes reply files whose session has no fence file (no agent serves
/// it) and that nobody touched for a day: left by clients that vanished.
fn sweep(dir: &Path) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in listing.flatten() {
        let name = entry.file_name();
        let Some(session) = name.to_str().and_then(|n| n.strip_prefix("once-")) else {
            continue;
        };
        if dir.join(format!("fence-{session}")).exists() {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_AFTER));
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkdir(path: &[u8]) -> Request {
        Request::Mkdir {
            path: path.to_vec().into(),
            mode: 0o755,
            owner: None,
        }
    }

    fn done() -> Response {
        Response::Done
    }

    #[test]
    fn a_replay_is_answered_from_the_cache() {
        let cache = ReplyCache::default();
        let request = mkdir(b"d");
        assert!(matches!(cache.begin(1, 1, &request), Verdict::Run));
        cache.finish(1, &request, &done());
        match cache.begin(1, 1, &request) {
            Verdict::Answered { response, ours } => {
                assert_eq!(response, Response::Done);
                assert!(ours);
            }
            other => panic!("{other:?}"),
        }
        // The same number for another request is the client's mistake.
        assert!(
            matches!(cache.begin(1, 1, &mkdir(b"e")), Verdict::Refused(Response::Error(e)) if e.errno == Errno::EPROTO)
        );
    }

    #[test]
    fn an_entry_survives_its_agent_and_a_newer_one_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let request = mkdir(b"d");
        let recorded = Response::Error(WireError {
            errno: Errno::EEXIST,
            message: "mkdir d: exists".into(),
        });
        {
            let old = ReplyCache::default();
            old.attach(dir.path(), 7).unwrap();
            assert!(matches!(old.begin(5, 1, &request), Verdict::Run));
            old.finish(5, &request, &recorded);
            // Not settled: the file stays when its agent goes.
            old.release(true);
        }
        let new = ReplyCache::default();
        new.attach(dir.path(), 7).unwrap();
        match new.begin(5, 1, &request) {
            Verdict::Answered { response, ours } => {
                assert_eq!(response, recorded);
                assert!(!ours, "recorded by another agent");
            }
            other => panic!("{other:?}"),
        }
        // Another session knows nothing of it.
        let other = ReplyCache::default();
        other.attach(dir.path(), 8).unwrap();
        assert!(matches!(other.begin(5, 1, &request), Verdict::Run));
    }

    #[test]
    fn an_operation_another_agent_is_running_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let request = mkdir(b"d");
        let old = ReplyCache::default();
        old.attach(dir.path(), 7).unwrap();
        let new = ReplyCache::default();
        new.attach(dir.path(), 7).unwrap();
        assert!(matches!(old.begin(3, 1, &request), Verdict::Run));
        assert!(new.would_wait(3));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| new.begin(3, 1, &request));
            std::thread::sleep(Duration::from_millis(50));
            old.finish(3, &request, &Response::Done);
            assert!(matches!(
                waiter.join().unwrap(),
                Verdict::Answered {
                    response: Response::Done,
                    ours: false
                }
            ));
        });
        // One refused before it ran is the next agent's to run.
        assert!(matches!(old.begin(4, 1, &request), Verdict::Run));
        old.drop_op(4);
        assert!(matches!(new.begin(4, 1, &request), Verdict::Run));
    }

    #[test]
    fn settled_entries_go_and_the_file_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ReplyCache::default();
        cache.attach(dir.path(), 7).unwrap();
        let request = mkdir(b"d");
        for id in 1..=5000u64 {
            // The client has seen every answer before the one in flight.
            assert!(matches!(cache.begin(id, id, &request), Verdict::Run));
            cache.finish(id, &request, &done());
        }
        assert!(
            cache.records_in_file() <= 2 * COMPACT_AFTER + 2,
            "{}",
            cache.records_in_file()
        );
        assert!(
            matches!(cache.begin(10, 5000, &request), Verdict::Refused(Response::Error(e)) if e.errno == Errno::EPROTO),
            "a settled operation is never answered again"
        );
        // A newer agent loads only what is live.
        let newer = ReplyCache::default();
        newer.attach(dir.path(), 7).unwrap();
        assert!(matches!(
            newer.begin(5000, 5000, &request),
            Verdict::Answered { .. }
        ));
    }

    #[test]
    fn a_torn_record_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("once-{:016x}", 7));
        let record = |id| Record::Done {
            id,
            fingerprint: fingerprint(&mkdir(b"d")),
            instance: 1,
            response: Response::Done,
        };
        let mut bytes = encode(&record(1));
        let torn = encode(&record(2));
        bytes.extend_from_slice(&torn[..torn.len() - 3]);
        bytes.extend_from_slice(&encode(&record(3)));
        std::fs::write(&path, &bytes).unwrap();
        let cache = ReplyCache::default();
        cache.attach(dir.path(), 7).unwrap();
        let request = mkdir(b"d");
        assert!(matches!(cache.begin(1, 1, &request), Verdict::Answered { .. }));
        assert!(
            matches!(cache.begin(2, 1, &request), Verdict::Run),
            "torn: never recorded"
        );
        assert!(matches!(cache.begin(3, 1, &request), Verdict::Answered { .. }));
    }

    #[test]
    fn the_file_goes_once_everything_is_settled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("once-{:016x}", 7));
        let request = mkdir(b"d");
        let cache = ReplyCache::default();
        cache.attach(dir.path(), 7).unwrap();
        assert!(matches!(cache.begin(1, 1, &request), Verdict::Run));
        cache.finish(1, &request, &done());
        cache.settle(2);
        cache.release(false);
        assert!(path.exists(), "a newer agent of the session may still need it");
        cache.release(true);
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left aside"
        );
        // The session goes on: the next operation's record makes it again.
        assert!(matches!(cache.begin(2, 2, &request), Verdict::Run));
        cache.finish(2, &request, &done());
        assert!(path.exists());
        let newer = ReplyCache::default();
        newer.attach(dir.path(), 7).unwrap();
        assert!(matches!(newer.begin(2, 2, &request), Verdict::Answered { .. }));
        // An agent replaced meanwhile, finishing an operation after the
        // file went, leaves no file behind; nor does reading it again.
        assert!(matches!(cache.begin(3, 2, &request), Verdict::Run));
        newer.settle(4);
        newer.release(true);
        assert!(!path.exists());
        cache.retire();
        cache.finish(3, &request, &done());
        cache.release(false);
        assert!(!newer.would_wait(9));
        assert!(!path.exists(), "made again by a replaced agent");
    }
}
