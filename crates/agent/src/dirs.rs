//! Paged directory listings and the table of streams between pages.
//!
//! A listing keeps one open directory stream across pages, so a directory of
//! a million entries is never held in memory and entries are neither skipped
//! nor repeated while the client pages through it.

use rustix::fs::{AtFlags, Dir, Mode, OFlags, CWD};
use std::collections::BTreeMap;
#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use yonder_proto::DirEntry;

/// Open streams kept between pages. Each holds a file descriptor, and a
/// client that abandons listings must not exhaust the agent's descriptors.
pub(crate) const MAX_STREAMS: usize = 256;
const MIN_PAGE_ENTRIES: u32 = 1;
const MAX_PAGE_ENTRIES: u32 = 8192;
/// Budget for one page's encoded size, well below the frame limit.
const PAGE_BYTES: usize = 1 << 20;
/// Upper bound of an entry's encoding besides its name (an `Attr` of
/// varints, the option tag and the name's length).
pub(crate) const ENTRY_OVERHEAD: usize = 128;

pub(crate) fn clamp_page_entries(requested: u32) -> usize {
    requested.clamp(MIN_PAGE_ENTRIES, MAX_PAGE_ENTRIES) as usize
}

pub(crate) struct DirStream {
    dir: Dir,
    /// The directory this stream lists, to reject a cursor sent along with
    /// a different path.
    path: PathBuf,
    /// An entry read past the end of the previous page: reading ahead is how
    /// a page knows whether another one follows.
    pending: Option<Vec<u8>>,
}

/// One page of entries; `more` is false when the directory is exhausted.
pub(crate) struct Page {
    pub entries: Vec<DirEntry>,
    pub more: bool,
}

impl DirStream {
    /// Opens `path`; `key` is the directory's stable name (the one a
    /// follow-up page must ask for).
    pub(crate) fn open(path: &Path, key: &Path) -> rustix::io::Result<DirStream> {
        let fd = rustix::fs::openat(
            CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(DirStream {
            dir: Dir::new(fd)?,
            path: key.to_path_buf(),
            pending: None,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the subdirectory `name` of this stream's directory, not
    /// following a symlink put in its place since it was listed; `key` is
    /// its stable name.
    pub(crate) fn open_child(&self, name: &[u8], key: &Path) -> rustix::io::Result<DirStream> {
        let fd = rustix::fs::openat(
            self.dir.fd()?,
            std::ffi::OsStr::from_bytes(name),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(DirStream {
            dir: Dir::new(fd)?,
            path: key.to_path_buf(),
            pending: None,
        })
    }

    pub(crate) fn read_page(&mut self, max_entries: usize) -> rustix::io::Result<Page> {
        self.read_page_within(max_entries, PAGE_BYTES)
    }

    /// A page of at most `max_entries` entries and about `max_bytes`
    /// encoded bytes (at least one entry, so that a page always advances).
    pub(crate) fn read_page_within(
        &mut self,
        max_entries: usize,
        max_bytes: usize,
    ) -> rustix::io::Result<Page> {
        let mut entries = Vec::new();
        let mut bytes = 0;
        while let Some(name) = self.next_name()? {
            if entries.len() >= max_entries || (bytes >= max_bytes && !entries.is_empty()) {
                self.pending = Some(name);
                return Ok(Page { entries, more: true });
            }
            let entry = self.entry(name);
            bytes += encoded_size(&entry);
            entries.push(entry);
        }
        Ok(Page { entries, more: false })
    }

    /// `name` with its attributes and xattr names.
    fn entry(&self, name: Vec<u8>) -> DirEntry {
        let attr = self.lstat(&name);
        let xattrs = attr.as_ref().and_then(|_| self.xattr_names(&name));
        DirEntry {
            name: name.into(),
            attr,
            xattrs,
        }
    }

    /// The contents of the regular file `name`, which `attr` describes,
    /// if it is that file still and did not change while it was read: the
    /// contents then belong to `attr` (what the client keeps them by).
    /// Opened without following a symlink and without blocking, so a FIFO
    /// or device put in its place is never read.
    pub(crate) fn file_contents(&self, name: &[u8], attr: &yonder_proto::Attr) -> Option<Vec<u8>> {
        if !attr.is_file() {
            return None;
        }
        let fd = rustix::fs::openat(
            self.dir.fd().ok()?,
            std::ffi::OsStr::from_bytes(name),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let unchanged = |now: &yonder_proto::Attr| {
            now.is_file()
                && (now.dev, now.ino, now.size, now.mtime, now.ctime)
                    == (attr.dev, attr.ino, attr.size, attr.mtime, attr.ctime)
        };
        if !unchanged(&crate::attr::stat_fd(&fd).ok()?) {
            return None;
        }
        let mut file = std::fs::File::from(fd);
        let mut data = Vec::with_capacity(attr.size as usize);
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, attr.size + 1), &mut data).ok()?;
        (data.len() as u64 == attr.size && unchanged(&crate::attr::stat_fd(&file).ok()?)).then_some(data)
    }

    fn next_name(&mut self) -> rustix::io::Result<Option<Vec<u8>>> {
        if let Some(name) = self.pending.take() {
            return Ok(Some(name));
        }
        loop {
            match self.dir.read() {
                None => return Ok(None),
                Some(Err(err)) => return Err(err),
                Some(Ok(entry)) => {
                    let name = entry.file_name().to_bytes();
                    if name != b"." && name != b".." {
                        return Ok(Some(name.to_vec()));
                    }
                }
            }
        }
    }

    /// The entry's extended attribute names; `None` on any error.
    fn xattr_names(&self, name: &[u8]) -> Option<Vec<serde_bytes::ByteBuf>> {
        let fd = self.dir.fd().ok()?;
        let mut buf = vec![0u8; 1024];
        let len = loop {
            match list_xattrs_at(fd, name, &mut buf) {
                Ok(len) => break len,
                Err(rustix::io::Errno::RANGE) if buf.len() < (1 << 16) => buf.resize(buf.len() * 8, 0),
                Err(_) => return None,
            }
        };
        Some(
            buf[..len]
                .split(|b| *b == 0)
                .filter(|n| !n.is_empty())
                .map(|n| n.to_vec().into())
                .collect(),
        )
    }

    /// `None` when the entry cannot be examined, typically because it was
    /// removed since it was listed; one such entry must not fail the page.
    fn lstat(&self, name: &[u8]) -> Option<yonder_proto::Attr> {
        let fd = self.dir.fd().ok()?;
        match crate::attr::stat_at(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(attr) => Some(attr),
            Err(err) => {
                tracing::debug!(
                    dir = %self.path.display(),
                    name = %String::from_utf8_lossy(name),
                    %err,
                    "lstat of a listed entry failed"
                );
                None
            }
        }
    }
}

/// About how many bytes `entry` takes in a frame.
pub(crate) fn encoded_size(entry: &DirEntry) -> usize {
    let xattrs: usize = entry.xattrs.iter().flatten().map(|n| n.len() + 2).sum();
    entry.name.len() + ENTRY_OVERHEAD + xattrs
}

/// `llistxattr` of `name` inside the directory `dir`.
///
/// Listings ask this of every entry, so it matters that it is cheap: Linux
/// 6.13 added `listxattrat`, which resolves one name under a descriptor. On
/// older kernels (or where a sandbox refuses the call) the name is reached
/// through `/proc/self/fd/N/`, which costs a walk through procfs each time.
fn list_xattrs_at(dir: BorrowedFd<'_>, name: &[u8], buf: &mut [u8]) -> rustix::io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        if !NO_LISTXATTRAT.load(Ordering::Relaxed) {
            match listxattrat(dir, name, buf) {
                Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
                    NO_LISTXATTRAT.store(true, Ordering::Relaxed)
                }
                result => return result,
            }
        }
        list_xattrs_through_proc(dir, name, buf)
    }
    // Without /proc there is no cheap way from a descriptor and a name to
    // the attributes: listings carry none, and clients ask per file.
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (dir, name, buf);
        Err(rustix::io::Errno::NOSYS)
    }
}

#[cfg(target_os = "linux")]
fn list_xattrs_through_proc(dir: BorrowedFd<'_>, name: &[u8], buf: &mut [u8]) -> rustix::io::Result<usize> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    rustix::fs::llistxattr(std::ffi::OsStr::from_bytes(&path), buf)
}

#[cfg(target_os = "linux")]
static NO_LISTXATTRAT: AtomicBool = AtomicBool::new(false);

#[cfg(target_os = "linux")]
fn listxattrat(dir: BorrowedFd<'_>, name: &[u8], buf: &mut [u8]) -> rustix::io::Result<usize> {
    // The same number on every architecture (the unified table from 5.1 on).
    const SYS_LISTXATTRAT: libc::c_long = 465;
    let name = std::ffi::CString::new(name).map_err(|_| rustix::io::Errno::INVAL)?;
    // SAFETY: `name` is a NUL-terminated string and `buf` a writable buffer
    // of `buf.len()` bytes, both alive for the duration of the call; the
    // kernel writes at most `buf.len()` bytes into `buf` and retains neither
    // pointer. `dir` is an open descriptor borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            SYS_LISTXATTRAT,
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW as libc::c_uint,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if ret < 0 {
        Err(rustix::io::Errno::from_raw_os_error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ))
    } else {
        Ok(ret as usize)
    }
}

/// Streams between pages, keyed by cursor. Every page gets a fresh cursor,
/// so the smallest key is always the least recently used stream, and a
/// replayed cursor is reported stale rather than yielding a wrong page.
#[derive(Default)]
pub(crate) struct DirCursors {
    inner: Mutex<CursorTable>,
}

#[derive(Default)]
struct CursorTable {
    last: u64,
    streams: BTreeMap<u64, DirStream>,
}

impl DirCursors {
    /// Removes the stream from the table while a page is read from it.
    pub(crate) fn take(&self, cursor: u64) -> Option<DirStream> {
        self.lock().streams.remove(&cursor)
    }

    /// Stores a stream that has more entries and returns its new cursor.
    pub(crate) fn park(&self, stream: DirStream) -> u64 {
        let evicted;
        let cursor;
        {
            let mut table = self.lock();
            table.last += 1;
            cursor = table.last;
            table.streams.insert(cursor, stream);
            evicted = if table.streams.len() > MAX_STREAMS {
                table.streams.pop_first()
            } else {
                None
            };
        }
        if let Some((old, stream)) = evicted {
            tracing::debug!(cursor = old, dir = %stream.path.display(), "evicted idle directory stream");
        }
        cursor
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().streams.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CursorTable> {
        // Each critical section is one map operation, so a poisoned table is
        // still consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_clamped() {
        assert_eq!(clamp_page_entries(0), 1);
        assert_eq!(clamp_page_entries(100), 100);
        assert_eq!(clamp_page_entries(u32::MAX), 8192);
    }

    #[test]
    fn table_evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cursors = DirCursors::default();
        let first = cursors.park(DirStream::open(dir.path(), dir.path()).unwrap());
        let mut newest = 0;
        for _ in 0..MAX_STREAMS {
            newest = cursors.park(DirStream::open(dir.path(), dir.path()).unwrap());
        }
        assert_eq!(cursors.len(), MAX_STREAMS);
        assert!(cursors.take(first).is_none());
        assert!(cursors.take(newest).is_some());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn xattr_names_agree_with_and_without_listxattrat() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("link")).unwrap();
        if rustix::fs::setxattr(&file, "user.yonder", b"1", rustix::fs::XattrFlags::empty()).is_err() {
            // tmpfs before 6.6 has no user xattrs; the empty lists still compare.
        }
        let stream = DirStream::open(dir.path(), dir.path()).unwrap();
        let fd = stream.dir.fd().unwrap();
        for name in [&b"f"[..], b"link", b"missing"] {
            let (mut a, mut b) = (vec![0u8; 1024], vec![0u8; 1024]);
            let direct = list_xattrs_at(fd, name, &mut a).map(|n| a[..n].to_vec());
            let through_proc = list_xattrs_through_proc(fd, name, &mut b).map(|n| b[..n].to_vec());
            assert_eq!(direct, through_proc, "{}", String::from_utf8_lossy(name));
        }
        // Not followed: the link itself is asked, not its target.
        let mut buf = vec![0u8; 1024];
        let target = list_xattrs_at(fd, b"f", &mut buf).unwrap();
        let link = list_xattrs_at(fd, b"link", &mut buf).unwrap();
        if target > 0 {
            assert_ne!(target, link);
        }
    }

    #[test]
    fn page_reads_ahead_to_detect_the_end() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b", "c"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let mut stream = DirStream::open(dir.path(), dir.path()).unwrap();
        let page = stream.read_page(2).unwrap();
        assert_eq!((page.entries.len(), page.more), (2, true));
        let page = stream.read_page(2).unwrap();
        assert_eq!((page.entries.len(), page.more), (1, false));

        let mut stream = DirStream::open(dir.path(), dir.path()).unwrap();
        let page = stream.read_page(3).unwrap();
        assert_eq!((page.entries.len(), page.more), (3, false));
    }
}
