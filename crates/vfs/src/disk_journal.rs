//! [`DiskJournal`]: the journal of unconfirmed mutations on local disk, so
//! that what an application was told had succeeded outlives the process
//! that owns the mount (a crash, `kill -9`) and is replayed when the mount
//! comes back.
//!
//! One append-only log per mount, `NAME.journal`, beside `NAME.lock`,
//! which the owning process holds with `flock` for as long as it lives: a
//! journal whose lock can be taken was left by a process that ended, one
//! whose lock cannot is a live process's and is never touched.
//!
//! A record is `magic | length | crc32 | body`, the body a postcard header
//! followed by a write's data as it is (postcard would spend up to two
//! bytes per data byte). An entry's record is written (`write(2)`, into
//! the page cache: it survives the process at once) before
//! [`Journal::record`] returns, that is before the operation is
//! acknowledged; its confirmation is a record of its own. Reading stops at
//! the first record that is torn or fails its checksum: only the tail a
//! crash cut can be, and no entry after it was acknowledged.
//!
//! Why not an embedded database or a log crate: the access pattern is one
//! appender, one reader at start-up, and a truncation whenever everything
//! is confirmed; the agent's reply records use the same framing.
//!
//! Reaching the disk itself (`fdatasync`) is group commit on a thread of
//! its own ([`Durability`]): with [`Durability::EachRecord`] a record
//! waits for the sync that covers it (every caller waiting at the same
//! time shares one); with [`Durability::Within`] it does not wait, and the
//! log is synced at most that long after it was written, which bounds what
//! a crash of the whole host (not of the process) can take.
//!
//! Compaction: once nothing is unconfirmed the log is cut to nothing; a
//! long log mostly confirmed is rewritten aside with only what is live and
//! renamed over.

use crate::attr::{Fh, Ino};
use crate::journal::{Entry, Journal, MetaOp, Seq};
use crate::sync::lock;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

const MAGIC: u32 = 0x594a_5231; // "YJR1"
/// magic, length, crc32.
const FRAME_HEAD: usize = 12;
/// A log at least this long, with under a quarter of it live, is
/// rewritten; an empty one is cut at any length above `CUT_AT`.
const REWRITE_AT: u64 = 64 << 20;
const CUT_AT: u64 = 1 << 20;

/// When a record reaches the disk itself (not only the page cache, which
/// is enough to outlive the process).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `record` returns once an `fdatasync` covered the record.
    EachRecord,
    /// `record` returns once the record is written; the log is synced at
    /// most this long after.
    Within(Duration),
}

/// Why a journal could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DiskJournalError {
    #[error("write-back journal {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "write-back journal {path} is held by a running yonder process ({holder}); unmount that mount first"
    )]
    Held { path: String, holder: String },
}

/// A [`Journal`] in a file (see the module documentation).
pub struct DiskJournal {
    path: PathBuf,
    shared: Arc<Shared>,
    syncer: Option<std::thread::JoinHandle<()>>,
    /// The `flock` that tells this process is alive; released by the
    /// kernel when the process ends, however it ends.
    _lock: File,
}

struct Shared {
    state: Mutex<LogState>,
    /// Signalled when something new is written (for the syncer) and when a
    /// sync completes (for records that wait for it).
    changed: Condvar,
    durability: Durability,
}

struct LogState {
    file: Arc<File>,
    /// Bumped whenever the file is cut or replaced: offsets of an older
    /// file say nothing of the new one.
    epoch: u64,
    /// Length of the log written.
    written: u64,
    /// (epoch, length) known to be on disk.
    synced: (u64, u64),
    next: u64,
    entries: BTreeMap<Seq, Entry>,
    /// Bytes of data, and of records, of the unconfirmed entries.
    data_bytes: u64,
    live_bytes: u64,
    record_len: BTreeMap<Seq, u64>,
    /// The first failure to write the log, said once; the journal then
    /// keeps entries in memory only.
    failed: bool,
    stop: bool,
}

/// A record's header, as stored.
#[derive(Serialize, Deserialize)]
enum Stored {
    Write {
        seq: u64,
        ino: u64,
        fh: u64,
        path: Option<Vec<u8>>,
        offset: u64,
        append: bool,
    },
    Meta {
        seq: u64,
        ino: u64,
        op: MetaOp,
    },
    Confirmed {
        seqs: Vec<u64>,
    },
    /// Paths at or below `from` in earlier entries are at `to` now (and
    /// those at `to` at `from` with `exchange`, else gone).
    Renamed {
        from: Vec<u8>,
        to: Vec<u8>,
        exchange: bool,
    },
}

impl DiskJournal {
    /// Opens (creating it if missing) the journal `name` in `dir`, taking
    /// its lock. Returns it with the entries a process that ended left
    /// unconfirmed, oldest first; they stay in the log until
    /// [`DiskJournal::replayed`]. `holder` is written into the lock file,
    /// for the message another process gets.
    pub fn open(
        dir: &Path,
        name: &str,
        durability: Durability,
        holder: &str,
    ) -> Result<(DiskJournal, Vec<(Seq, Entry)>), DiskJournalError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| DiskJournalError::Io { path, source }
        };
        let mut dir_builder = std::fs::DirBuilder::new();
        dir_builder.recursive(true);
        #[cfg(unix)]
        dir_builder.mode(0o700);
        dir_builder.create(dir).map_err(io(dir))?;
        let lock_path = dir.join(format!("{name}.lock"));
        let path = dir.join(format!("{name}.journal"));
        #[cfg(unix)]
        let mut lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        // Windows locks a file by opening it unshared: a second holder
        // cannot open it at all, so who holds it cannot be read either.
        #[cfg(windows)]
        let mut lock_file = {
            use std::os::windows::fs::OpenOptionsExt as _;
            /// `ERROR_SHARING_VIOLATION`, the Win32 error of an open that
            /// another handle's share mode refuses.
            const SHARING_VIOLATION: i32 = 32;
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .share_mode(0)
                .open(&lock_path)
            {
                Ok(file) => file,
                Err(e) if e.raw_os_error() == Some(SHARING_VIOLATION) => {
                    return Err(DiskJournalError::Held {
                        path: path.display().to_string(),
                        holder: "another process (Windows does not say which)".to_string(),
                    })
                }
                Err(e) => return Err(io(&lock_path)(e)),
            }
        };
        #[cfg(unix)]
        if let Err(e) = rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let mut who = String::new();
                let _ = lock_file.read_to_string(&mut who);
                return Err(DiskJournalError::Held {
                    path: path.display().to_string(),
                    holder: who.trim().replace('\n', ", "),
                });
            }
            return Err(io(&lock_path)(e.into()));
        }
        lock_file.set_len(0).map_err(io(&lock_path))?;
        writeln!(lock_file, "pid {}\n{holder}", std::process::id()).map_err(io(&lock_path))?;
        let file = open_log(&path).map_err(io(&path))?;
        let mut bytes = Vec::new();
        (&file).read_to_end(&mut bytes).map_err(io(&path))?;
        let (left, next, valid) = parse(&bytes);
        if valid < bytes.len() {
            tracing::warn!(
                "write-back journal {}: {} bytes at its end were torn by the crash and are ignored \
                 (nothing in them was acknowledged)",
                path.display(),
                bytes.len() - valid
            );
            file.set_len(valid as u64).map_err(io(&path))?;
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(LogState {
                file: Arc::new(file),
                epoch: 0,
                written: valid as u64,
                synced: (0, valid as u64),
                next,
                entries: BTreeMap::new(),
                data_bytes: 0,
                live_bytes: 0,
                record_len: BTreeMap::new(),
                failed: false,
                stop: false,
            }),
            changed: Condvar::new(),
            durability,
        });
        let syncer = {
            let shared = shared.clone();
            let path = path.clone();
            std::thread::Builder::new()
                .name("yonder-journal".into())
                .spawn(move || shared.sync_loop(&path))
                .map_err(io(dir))?
        };
        let journal = DiskJournal {
            path,
            shared,
            syncer: Some(syncer),
            _lock: lock_file,
        };
        Ok((journal, left))
    }

    /// The log's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries [`DiskJournal::open`] returned were replayed (or their
    /// failure reported): the log keeps only what was recorded since.
    pub fn replayed(&self) {
        let mut state = self.shared.lock();
        if let Err(e) = state.rewrite(&self.path) {
            state.fail(&self.path, "rewriting", &e);
        }
    }
}

impl Drop for DiskJournal {
    /// The syncer ends; a log with nothing unconfirmed goes with its lock
    /// file (a clean end leaves nothing to replay).
    fn drop(&mut self) {
        let empty = {
            let mut state = self.shared.lock();
            state.stop = true;
            state.entries.is_empty() && !state.failed
        };
        self.shared.changed.notify_all();
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
        if empty {
            let _ = std::fs::remove_file(&self.path);
            let _ = std::fs::remove_file(self.path.with_extension("lock"));
        }
    }
}

impl Journal for DiskJournal {
    fn record(&self, entry: Entry) -> Seq {
        let mut state = self.shared.lock();
        state.next += 1;
        let seq = Seq(state.next);
        let frame = encode_entry(seq, &entry);
        let len = frame.len() as u64;
        if !state.failed {
            if let Err(e) = (&*state.file).write_all(&frame) {
                state.fail(&self.path, "appending to", &e);
            }
        }
        state.written += len;
        state.live_bytes += len;
        state.data_bytes += entry.len() as u64;
        state.record_len.insert(seq, len);
        state.entries.insert(seq, entry);
        let wanted = (state.epoch, state.written);
        self.shared.changed.notify_all();
        if self.shared.durability == Durability::EachRecord {
            while !state.failed && !state.stop && !covers(state.synced, wanted) {
                state = self.shared.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
        seq
    }

    fn confirm(&self, seqs: &[Seq]) {
        let mut state = self.shared.lock();
        let mut done = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(entry) = state.entries.remove(seq) {
                state.data_bytes -= entry.len() as u64;
                state.live_bytes -= state.record_len.remove(seq).unwrap_or(0);
                done.push(seq.0);
            }
        }
        if done.is_empty() || state.failed {
            return;
        }
        if state.entries.is_empty() && state.written >= CUT_AT {
            // Nothing to replay: the log starts again from nothing.
            if let Err(e) = state.file.set_len(0) {
                state.fail(&self.path, "cutting", &e);
            }
            state.epoch += 1;
            state.written = 0;
            state.synced = (state.epoch, 0);
            return;
        }
        if state.written >= REWRITE_AT && state.live_bytes * 4 < state.written {
            if let Err(e) = state.rewrite(&self.path) {
                state.fail(&self.path, "rewriting", &e);
            }
            return;
        }
        // Not synced for its own sake: a confirmation lost to a crash of
        // the host makes the replay send the operation again, which its
        // resolve step answers.
        let frame = encode(&Stored::Confirmed { seqs: done }, &[]);
        if let Err(e) = (&*state.file).write_all(&frame) {
            state.fail(&self.path, "appending to", &e);
        }
        state.written += frame.len() as u64;
    }

    fn unconfirmed(&self) -> Vec<(Seq, Entry)> {
        let state = self.shared.lock();
        state.entries.iter().map(|(s, e)| (*s, e.clone())).collect()
    }

    fn pending(&self) -> (usize, u64) {
        let state = self.shared.lock();
        (state.entries.len(), state.data_bytes)
    }

    fn renamed(&self, from: &[u8], to: &[u8], exchange: bool) {
        let mut state = self.shared.lock();
        let touched = state.entries.values().any(|e| match e {
            Entry::Write { path: Some(p), .. } => under(p, from).is_some() || under(p, to).is_some(),
            _ => false,
        });
        if !touched || state.failed {
            return;
        }
        // Entries are rewritten in memory too, so a compaction writes the
        // new paths.
        for entry in state.entries.values_mut() {
            rename_in(entry, from, to, exchange);
        }
        let frame = encode(
            &Stored::Renamed {
                from: from.to_vec(),
                to: to.to_vec(),
                exchange,
            },
            &[],
        );
        if let Err(e) = (&*state.file).write_all(&frame) {
            state.fail(&self.path, "appending to", &e);
        }
        state.written += frame.len() as u64;
        self.shared.changed.notify_all();
    }
}

/// What follows `dir` in `path`, if `path` is `dir` or below it.
fn under<'a>(path: &'a [u8], dir: &[u8]) -> Option<&'a [u8]> {
    let rest = path.strip_prefix(dir)?;
    (rest.is_empty() || rest[0] == b'/').then_some(rest)
}

/// A write's path after `from` was renamed to `to` (or swapped with it).
fn rename_in(entry: &mut Entry, from: &[u8], to: &[u8], exchange: bool) {
    let Entry::Write { path, .. } = entry else {
        return;
    };
    let Some(p) = path.as_ref() else { return };
    let moved = |rest: &[u8], to: &[u8]| [to, rest].concat();
    if let Some(rest) = under(p, from) {
        *path = Some(moved(rest, to));
    } else if let Some(rest) = under(p, to) {
        // Renamed over: the file that had these writes has no name now.
        *path = exchange.then(|| moved(rest, from));
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        lock(&self.state)
    }

    /// Syncs what was written, as the durability says, until the journal
    /// is dropped.
    fn sync_loop(&self, path: &Path) {
        loop {
            let (file, target) = {
                let mut state = self.lock();
                while !state.stop && covers(state.synced, (state.epoch, state.written)) {
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                if state.stop {
                    return;
                }
                (state.file.clone(), (state.epoch, state.written))
            };
            // macOS has no fdatasync, and its fsync leaves the data in the
            // drive's cache; F_FULLFSYNC is what reaches the medium.
            #[cfg(all(unix, not(target_os = "macos")))]
            let synced = rustix::fs::fdatasync(&*file).map_err(std::io::Error::from);
            // FlushFileBuffers: Windows's one way to the medium.
            #[cfg(windows)]
            let synced = file.sync_data();
            #[cfg(target_os = "macos")]
            let synced = rustix::fs::fcntl_fullfsync(&*file).map_err(std::io::Error::from);
            {
                let mut state = self.lock();
                match synced {
                    Ok(()) if state.epoch == target.0 && !covers(state.synced, target) => {
                        state.synced = target;
                    }
                    Ok(()) => {}
                    Err(e) => state.fail(path, "syncing", &e),
                }
            }
            self.changed.notify_all();
            if let Durability::Within(interval) = self.durability {
                std::thread::sleep(interval);
            }
        }
    }
}

impl LogState {
    /// Writes the live entries to a new log beside the old one, syncs it
    /// and renames it over.
    fn rewrite(&mut self, path: &Path) -> std::io::Result<()> {
        let aside = path.with_extension("journal.new");
        let _ = std::fs::remove_file(&aside);
        let file = open_log(&aside)?;
        let mut out = std::io::BufWriter::new(&file);
        let mut written = 0u64;
        for (seq, entry) in &self.entries {
            let frame = encode_entry(*seq, entry);
            out.write_all(&frame)?;
            written += frame.len() as u64;
        }
        out.flush()?;
        drop(out);
        file.sync_data()?;
        std::fs::rename(&aside, path)?;
        self.file = Arc::new(file);
        self.epoch += 1;
        self.written = written;
        self.synced = (self.epoch, written);
        self.live_bytes = written;
        Ok(())
    }

    /// The log cannot be written: said once, and the journal keeps its
    /// entries in memory only from then on (the mount goes on, without
    /// surviving a crash).
    fn fail(&mut self, path: &Path, doing: &str, e: &std::io::Error) {
        if !self.failed {
            tracing::error!(
                "write-back journal {}: {doing} failed: {e}; operations acknowledged from now on \
                 would not survive a crash of this process",
                path.display()
            );
        }
        self.failed = true;
    }
}

/// Whether `synced` (epoch, length) covers `wanted`.
fn covers(synced: (u64, u64), wanted: (u64, u64)) -> bool {
    synced.0 > wanted.0 || (synced.0 == wanted.0 && synced.1 >= wanted.1)
}

fn open_log(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    // Only the owner's: on Windows a new file inherits its directory's
    // ACL, the user's own profile.
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)
}

fn encode_entry(seq: Seq, entry: &Entry) -> Vec<u8> {
    match entry {
        Entry::Write {
            ino,
            fh,
            path,
            offset,
            data,
            append,
        } => encode(
            &Stored::Write {
                seq: seq.0,
                ino: ino.0,
                fh: fh.0,
                path: path.clone(),
                offset: *offset,
                append: *append,
            },
            data,
        ),
        Entry::Meta { ino, op } => encode(
            &Stored::Meta {
                seq: seq.0,
                ino: ino.0,
                op: op.clone(),
            },
            &[],
        ),
    }
}

fn encode(header: &Stored, data: &[u8]) -> Vec<u8> {
    let header = postcard::to_allocvec(header).expect("a journal record always encodes");
    let len = header.len() + data.len();
    let mut frame = Vec::with_capacity(FRAME_HEAD + len);
    frame.extend_from_slice(&MAGIC.to_le_bytes());
    frame.extend_from_slice(&(len as u32).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    crc.update(data);
    frame.extend_from_slice(&crc.finalize().to_le_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(data);
    frame
}

/// The unconfirmed entries of a log, oldest first, the highest sequence
/// number seen, and how many bytes of it are whole records.
fn parse(bytes: &[u8]) -> (Vec<(Seq, Entry)>, u64, usize) {
    let mut entries = BTreeMap::new();
    let mut next = 0;
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + FRAME_HEAD) {
        let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
        let (magic, len, crc) = (word(0), word(4) as usize, word(8));
        let Some(body) = bytes.get(at + FRAME_HEAD..at + FRAME_HEAD + len) else {
            break;
        };
        if magic != MAGIC || crc32fast::hash(body) != crc {
            break;
        }
        let Ok((header, data)) = postcard::take_from_bytes::<Stored>(body) else {
            break;
        };
        match header {
            Stored::Write {
                seq,
                ino,
                fh,
                path,
                offset,
                append,
            } => {
                next = next.max(seq);
                let entry = Entry::Write {
                    ino: Ino(ino),
                    fh: Fh(fh),
                    path,
                    offset,
                    data: Bytes::copy_from_slice(data),
                    append,
                };
                entries.insert(Seq(seq), entry);
            }
            Stored::Meta { seq, ino, op } => {
                next = next.max(seq);
                entries.insert(Seq(seq), Entry::Meta { ino: Ino(ino), op });
            }
            Stored::Confirmed { seqs } => {
                for seq in seqs {
                    entries.remove(&Seq(seq));
                }
            }
            Stored::Renamed { from, to, exchange } => {
                for entry in entries.values_mut() {
                    rename_in(entry, &from, &to, exchange);
                }
            }
        }
        at += FRAME_HEAD + len;
    }
    (entries.into_iter().collect(), next, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(offset: u64, data: &'static [u8]) -> Entry {
        Entry::Write {
            ino: Ino(7),
            fh: Fh(3),
            path: Some(b"d/f".to_vec()),
            offset,
            data: Bytes::from_static(data),
            append: false,
        }
    }

    fn mkdir(path: &[u8]) -> Entry {
        Entry::Meta {
            ino: Ino(9),
            op: MetaOp::Mkdir {
                path: path.to_vec(),
                mode: 0o40755,
                owner: None,
            },
        }
    }

    fn seqs(entries: &[(Seq, Entry)]) -> Vec<u64> {
        entries.iter().map(|(s, _)| s.0).collect()
    }

    #[test]
    fn what_a_process_left_unconfirmed_is_found_again_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, left) = DiskJournal::open(dir.path(), "m", Durability::EachRecord, "test").unwrap();
        assert!(left.is_empty());
        let a = journal.record(mkdir(b"d"));
        let b = journal.record(write(0, b"hello "));
        let c = journal.record(write(6, b"world"));
        journal.confirm(&[a]);
        // A crash: the process ends without dropping its journal.
        std::mem::forget(journal);
        let (journal, left) = reopen_after_crash(dir.path());
        assert_eq!(seqs(&left), [b.0, c.0]);
        match &left[1].1 {
            Entry::Write {
                path, offset, data, ..
            } => {
                assert_eq!(path.as_deref(), Some(&b"d/f"[..]));
                assert_eq!((*offset, &data[..]), (6, &b"world"[..]));
            }
            other => panic!("a write, not {other:?}"),
        }
        let d = journal.record(mkdir(b"e"));
        assert!(d > c, "numbers go on after the dead process's");
        journal.replayed();
        std::mem::forget(journal);
        let (_journal, left) = reopen_after_crash(dir.path());
        assert_eq!(seqs(&left), [d.0], "replayed entries are gone, later ones kept");
    }

    /// Opens `m` in `dir` as a new process would once the old one died:
    /// the dead process's lock is released by closing every descriptor of
    /// it, which a test process cannot do; so the lock file is replaced.
    fn reopen_after_crash(dir: &Path) -> (DiskJournal, Vec<(Seq, Entry)>) {
        std::fs::remove_file(dir.join("m.lock")).unwrap();
        DiskJournal::open(dir, "m", Durability::Within(Duration::from_millis(5)), "test").unwrap()
    }

    #[test]
    fn a_live_journal_is_refused_and_a_clean_end_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) =
            DiskJournal::open(dir.path(), "m", Durability::EachRecord, "source at mnt").unwrap();
        let err = DiskJournal::open(dir.path(), "m", Durability::EachRecord, "other")
            .err()
            .expect("held")
            .to_string();
        assert!(
            err.contains("held by a running yonder process") && err.contains("source at mnt"),
            "{err}"
        );
        let a = journal.record(write(0, b"x"));
        journal.confirm(&[a]);
        drop(journal);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left");
    }

    #[test]
    fn a_rename_carried_out_moves_the_paths_of_earlier_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = DiskJournal::open(dir.path(), "m", Durability::EachRecord, "t").unwrap();
        let at = |path: &[u8]| Entry::Write {
            ino: Ino(2),
            fh: Fh(1),
            path: Some(path.to_vec()),
            offset: 0,
            data: Bytes::from_static(b"x"),
            append: false,
        };
        journal.record(at(b"d/f"));
        journal.record(at(b"old"));
        journal.record(at(b"a"));
        journal.record(at(b"b"));
        journal.renamed(b"d", b"e/d2", false);
        journal.renamed(b"dx", b"nothing", false);
        journal.renamed(b"new", b"old", false);
        journal.renamed(b"a", b"b", true);
        journal.record(at(b"d/f"));
        std::mem::forget(journal);
        let (_journal, left) = reopen_after_crash(dir.path());
        let paths: Vec<Option<Vec<u8>>> = left
            .iter()
            .map(|(_, e)| match e {
                Entry::Write { path, .. } => path.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        let expected: [Option<&[u8]>; 5] = [Some(b"e/d2/f"), None, Some(b"b"), Some(b"a"), Some(b"d/f")];
        assert_eq!(paths, expected.map(|p| p.map(<[u8]>::to_vec)));
    }

    #[test]
    fn a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = DiskJournal::open(dir.path(), "m", Durability::EachRecord, "t").unwrap();
        let a = journal.record(write(0, b"whole"));
        journal.record(write(5, b"torn by the crash"));
        std::mem::forget(journal);
        let log = dir.path().join("m.journal");
        let len = std::fs::metadata(&log).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(len - 4)
            .unwrap();
        let (_journal, left) = reopen_after_crash(dir.path());
        assert_eq!(seqs(&left), [a.0]);
    }

    #[test]
    fn a_confirmed_log_is_cut_and_a_mostly_dead_one_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) =
            DiskJournal::open(dir.path(), "m", Durability::Within(Duration::from_millis(1)), "t").unwrap();
        let log = dir.path().join("m.journal");
        let big = Bytes::from(vec![7u8; 1 << 20]);
        let keep = journal.record(mkdir(b"kept"));
        let mut done = Vec::new();
        for i in 0..70u64 {
            done.push(journal.record(Entry::Write {
                ino: Ino(2),
                fh: Fh(1),
                path: Some(b"f".to_vec()),
                offset: i << 20,
                data: big.clone(),
                append: false,
            }));
        }
        journal.confirm(&done);
        assert!(
            std::fs::metadata(&log).unwrap().len() < 4096,
            "rewritten with only what is live"
        );
        assert_eq!(journal.pending(), (1, 0));
        journal.confirm(&[keep]);
        std::mem::forget(journal);
        let (_journal, left) = reopen_after_crash(dir.path());
        assert!(left.is_empty());
    }
}
