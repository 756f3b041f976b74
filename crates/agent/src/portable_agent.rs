//! [`PortableAgent`]: the agent's request handling on a host without the
//! Unix system calls the full agent (`ops.rs`) is built on: Windows. It
//! serves a local tree through `std::fs` alone, for `yonder fs` of a local
//! path there, with the same protocol and the same client as everywhere.
//!
//! What std cannot say is answered as a file system without the feature
//! answers: no inode numbers (0, as over SFTP: the client keys identity by
//! path), modes made up from the file's kind and read-only bit, one link
//! each. What has no std call (xattrs, mknod, hard links, statfs, fencing)
//! is refused with EOPNOTSUPP naming the operation and the OS. Paths are
//! confined to the root lexically, as the Unix agent confines them.

use crate::error::OpError;
use std::collections::HashMap;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use yonder_proto::{
    file_type, open_flags, Attr, DirEntry, DirPage, Errno, Handle, Request, Response, SetAttr, SetTime,
    Target, Timespec, WireError,
};

/// Requests of a read or listing are clamped to what fits in a frame.
const MAX_READ: u32 = 4 << 20;
const MAX_PAGE: u32 = 4096;

/// One session's open files over a root.
pub(crate) struct PortableAgent {
    root: PathBuf,
    files: Mutex<HashMap<u64, Arc<Mutex<File>>>>,
    next_handle: AtomicU64,
}

impl PortableAgent {
    pub(crate) fn new(root: PathBuf) -> PortableAgent {
        PortableAgent {
            root,
            files: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
        }
    }

    pub(crate) fn handle(&self, request: Request) -> Response {
        match self.run(request) {
            Ok(response) => response,
            Err(err) => {
                tracing::debug!(errno = ?err.errno, message = %err.message, "request failed");
                Response::Error(WireError::from(err))
            }
        }
    }

    fn run(&self, request: Request) -> Result<Response, OpError> {
        let op = request.op();
        match request {
            Request::Ping => Ok(Response::Done),
            Request::Lstat { path } => {
                let full = self.full(op, &path)?;
                let meta = std::fs::symlink_metadata(&full).map_err(|e| io_err(op, &path, &e))?;
                Ok(Response::Attr(attr_of(&meta)))
            }
            Request::Stat { path } => {
                let full = self.full(op, &path)?;
                let meta = std::fs::metadata(&full).map_err(|e| io_err(op, &path, &e))?;
                Ok(Response::Attr(attr_of(&meta)))
            }
            Request::Fstat { handle } => {
                let file = self.file(op, handle)?;
                let meta = lock(&file).metadata().map_err(|e| handle_err(op, handle, &e))?;
                Ok(Response::Attr(attr_of(&meta)))
            }
            Request::ReadDir {
                path,
                cursor,
                max_entries,
            } => self.read_dir(op, &path, cursor, max_entries),
            Request::Open {
                path, flags, mode, ..
            } => {
                let (handle, file) = self.open(op, &path, flags, mode)?;
                let meta = lock(&file).metadata().map_err(|e| io_err(op, &path, &e))?;
                Ok(Response::Opened {
                    handle,
                    attr: attr_of(&meta),
                })
            }
            Request::OpenRead {
                path,
                flags,
                prefetch,
            } => {
                let (handle, file) = self.open(op, &path, flags, 0)?;
                let mut file = lock(&file);
                let meta = file.metadata().map_err(|e| io_err(op, &path, &e))?;
                let mut data = Vec::new();
                if meta.is_file() {
                    (&mut *file)
                        .take(u64::from(prefetch.min(MAX_READ)))
                        .read_to_end(&mut data)
                        .map_err(|e| io_err(op, &path, &e))?;
                }
                Ok(Response::OpenedRead {
                    handle,
                    attr: attr_of(&meta),
                    data,
                })
            }
            Request::Read { handle, offset, len } => {
                let file = self.file(op, handle)?;
                let mut file = lock(&file);
                let mut data = Vec::new();
                file.seek(SeekFrom::Start(offset))
                    .and_then(|_| {
                        (&mut *file)
                            .take(u64::from(len.min(MAX_READ)))
                            .read_to_end(&mut data)
                    })
                    .map_err(|e| handle_err(op, handle, &e))?;
                Ok(Response::Data(data))
            }
            Request::Write { handle, offset, data } => {
                let file = self.file(op, handle)?;
                let mut file = lock(&file);
                file.seek(SeekFrom::Start(offset))
                    .and_then(|_| file.write_all(&data))
                    .map_err(|e| handle_err(op, handle, &e))?;
                Ok(Response::Written(data.len() as u32))
            }
            Request::Fsync { handle, datasync } => {
                let file = self.file(op, handle)?;
                let file = lock(&file);
                let synced = if datasync {
                    file.sync_data()
                } else {
                    file.sync_all()
                };
                synced.map_err(|e| handle_err(op, handle, &e))?;
                Ok(Response::Done)
            }
            Request::Close { handle } => match lock(&self.files).remove(&handle.0) {
                Some(_) => Ok(Response::Done),
                None => Err(OpError::new(op, &format!("handle {handle}"), Errno::EBADF)),
            },
            Request::Setattr { target, attr } => self.setattr(op, target, attr),
            Request::Mkdir { path, .. } => {
                let full = self.full(op, &path)?;
                std::fs::create_dir(&full).map_err(|e| io_err(op, &path, &e))?;
                let meta = std::fs::symlink_metadata(&full).map_err(|e| io_err(op, &path, &e))?;
                Ok(Response::Attr(attr_of(&meta)))
            }
            Request::Unlink { path } => {
                let full = self.full(op, &path)?;
                std::fs::remove_file(&full).map_err(|e| io_err(op, &path, &e))?;
                Ok(Response::Done)
            }
            Request::Rmdir { path } => {
                let full = self.full(op, &path)?;
                std::fs::remove_dir(&full).map_err(|e| io_err(op, &path, &e))?;
                Ok(Response::Done)
            }
            Request::Rename { from, to, flags } => {
                let subject = format!("{} -> {}", show(&from), show(&to));
                if flags.noreplace || flags.exchange {
                    return Err(OpError::refused(
                        op,
                        &subject,
                        Errno::EINVAL,
                        "rename's noreplace and exchange are not supported by the agent on windows",
                    ));
                }
                let (source, target) = (self.full(op, &from)?, self.full(op, &to)?);
                std::fs::rename(&source, &target)
                    .map_err(|e| OpError::new(op, &subject, Errno::from_io(&e)))?;
                Ok(Response::Done)
            }
            Request::Readlink { path } => {
                let full = self.full(op, &path)?;
                let target = std::fs::read_link(&full).map_err(|e| io_err(op, &path, &e))?;
                Ok(Response::Bytes(
                    target.to_string_lossy().replace('\\', "/").into_bytes(),
                ))
            }
            Request::Access { path, mask } => {
                let full = self.full(op, &path)?;
                let meta = std::fs::metadata(&full).map_err(|e| io_err(op, &path, &e))?;
                if mask & yonder_proto::access_mask::WRITE != 0 && meta.permissions().readonly() {
                    return Err(OpError::new(op, &show(&path), Errno::EACCES));
                }
                Ok(Response::Done)
            }
            Request::Once { request, .. } => self.run(*request),
            other => Err(OpError::refused(
                op,
                &subject_of(&other),
                Errno::EOPNOTSUPP,
                &format!("{op} is not supported by the agent on windows"),
            )),
        }
    }

    /// The host path of wire path `path`: its components below the root,
    /// `.` dropped, a `..` that would leave the root refused with EACCES.
    fn full(&self, op: &str, path: &[u8]) -> Result<PathBuf, OpError> {
        let text = std::str::from_utf8(path)
            .map_err(|_| OpError::refused(op, &show(path), Errno::EILSEQ, "Windows names are Unicode"))?;
        let mut parts: Vec<&str> = Vec::new();
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(OpError::refused(
                            op,
                            &show(path),
                            Errno::EACCES,
                            "outside the served root",
                        ));
                    }
                }
                // A separator or drive of Windows's own would reach past
                // the component it is in.
                _ if part.contains(['\\', ':']) => {
                    return Err(OpError::refused(
                        op,
                        &show(path),
                        Errno::EINVAL,
                        "not a name on windows",
                    ))
                }
                _ => parts.push(part),
            }
        }
        Ok(parts.iter().fold(self.root.clone(), |full, part| full.join(part)))
    }

    fn file(&self, op: &str, handle: Handle) -> Result<Arc<Mutex<File>>, OpError> {
        lock(&self.files)
            .get(&handle.0)
            .cloned()
            .ok_or_else(|| OpError::new(op, &format!("handle {handle}"), Errno::EBADF))
    }

    fn open(
        &self,
        op: &str,
        path: &[u8],
        flags: u32,
        mode: u32,
    ) -> Result<(Handle, Arc<Mutex<File>>), OpError> {
        if !open_flags::known(flags) {
            return Err(OpError::new(op, &show(path), Errno::EINVAL));
        }
        let full = self.full(op, path)?;
        let access = flags & open_flags::ACCESS_MASK;
        let mut options = OpenOptions::new();
        options
            .read(access != open_flags::WRITE_ONLY)
            .write(access != open_flags::READ_ONLY)
            .append(flags & open_flags::APPEND != 0)
            .truncate(flags & open_flags::TRUNCATE != 0);
        if flags & open_flags::CREATE != 0 {
            if flags & open_flags::EXCLUSIVE != 0 {
                options.create_new(true);
            } else {
                options.create(true);
            }
        }
        let is_dir = std::fs::metadata(&full).is_ok_and(|m| m.is_dir());
        // As open(2) answers: a directory is opened for reading only, and
        // O_DIRECTORY opens nothing else.
        if is_dir && access != open_flags::READ_ONLY {
            return Err(OpError::new(op, &show(path), Errno::EISDIR));
        }
        if !is_dir && flags & open_flags::DIRECTORY != 0 && full.exists() {
            return Err(OpError::new(op, &show(path), Errno::ENOTDIR));
        }
        let file = if is_dir {
            // std opens a directory only for reading its attributes; its
            // listing goes by path (`ReadDir`).
            open_directory(&full)
        } else {
            options.open(&full)
        }
        .map_err(|e| io_err(op, path, &e))?;
        if flags & open_flags::CREATE != 0 && mode & 0o200 == 0 {
            // The one permission bit Windows keeps: read-only.
            let mut permissions = file.metadata().map_err(|e| io_err(op, path, &e))?.permissions();
            permissions.set_readonly(true);
            let _ = std::fs::set_permissions(&full, permissions);
        }
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let file = Arc::new(Mutex::new(file));
        lock(&self.files).insert(handle, file.clone());
        Ok((Handle(handle), file))
    }

    /// A page of the directory's entries, sorted by name, from entry
    /// number `cursor` on (std keeps no stream between calls).
    fn read_dir(&self, op: &str, path: &[u8], cursor: Option<u64>, max: u32) -> Result<Response, OpError> {
        let full = self.full(op, path)?;
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&full).map_err(|e| io_err(op, path, &e))? {
            let entry = entry.map_err(|e| io_err(op, path, &e))?;
            names.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.metadata().ok(),
            ));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let start = cursor.unwrap_or(0) as usize;
        let take = max.clamp(1, MAX_PAGE) as usize;
        let entries: Vec<DirEntry> = names
            .iter()
            .skip(start)
            .take(take)
            .map(|(name, meta)| DirEntry {
                name: serde_bytes::ByteBuf::from(name.as_bytes().to_vec()),
                attr: meta.as_ref().map(attr_of),
                xattrs: Some(Vec::new()),
            })
            .collect();
        let end = start + entries.len();
        Ok(Response::DirPage(DirPage {
            entries,
            next: (end < names.len()).then_some(end as u64),
        }))
    }

    fn setattr(&self, op: &str, target: Target, attr: SetAttr) -> Result<Response, OpError> {
        let (subject, file) = match &target {
            Target::Path(path) => {
                let full = self.full(op, path)?;
                let file = OpenOptions::new()
                    .write(attr.size.is_some())
                    .read(true)
                    .open(&full)
                    .or_else(|_| open_directory(&full))
                    .map_err(|e| io_err(op, path, &e))?;
                (show(path), Arc::new(Mutex::new(file)))
            }
            Target::Handle(handle) => (format!("handle {handle}"), self.file(op, *handle)?),
        };
        if attr.uid.is_some() || attr.gid.is_some() {
            return Err(OpError::refused(
                op,
                &subject,
                Errno::EOPNOTSUPP,
                "owners are not supported by the agent on windows",
            ));
        }
        let file = lock(&file);
        let failed = |e: std::io::Error| OpError::new(op, &subject, Errno::from_io(&e));
        if let Some(size) = attr.size {
            file.set_len(size).map_err(failed)?;
        }
        let mut times = std::fs::FileTimes::new();
        if let Some(time) = system_time(attr.atime) {
            times = times.set_accessed(time);
        }
        if let Some(time) = system_time(attr.mtime) {
            times = times.set_modified(time);
        }
        file.set_times(times).map_err(failed)?;
        if let Some(mode) = attr.mode {
            let mut permissions = file.metadata().map_err(failed)?.permissions();
            permissions.set_readonly(mode & 0o200 == 0);
            file.set_permissions(permissions).map_err(failed)?;
        }
        Ok(Response::Attr(attr_of(&file.metadata().map_err(failed)?)))
    }
}

/// A directory opened for its attributes: Windows opens one only with
/// `FILE_FLAG_BACKUP_SEMANTICS`.
#[cfg(windows)]
fn open_directory(path: &Path) -> std::io::Result<File> {
    use std::os::windows::fs::OpenOptionsExt as _;
    /// `FILE_FLAG_BACKUP_SEMANTICS`, from the Win32 file flags.
    const BACKUP_SEMANTICS: u32 = 0x0200_0000;
    OpenOptions::new()
        .read(true)
        .custom_flags(BACKUP_SEMANTICS)
        .open(path)
}

/// Elsewhere (the tests of this file on Linux) a directory opens as a file.
#[cfg(not(windows))]
fn open_directory(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned table is still a table: each change to it is one map
    // operation.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn show(path: &[u8]) -> String {
    match path {
        [] => ".".to_string(),
        path => String::from_utf8_lossy(path).into_owned(),
    }
}

fn subject_of(request: &Request) -> String {
    match request {
        Request::Mknod { path, .. }
        | Request::Symlink { path, .. }
        | Request::Statfs { path }
        | Request::GetXattr { path, .. }
        | Request::SetXattr { path, .. }
        | Request::ListXattr { path }
        | Request::RemoveXattr { path, .. }
        | Request::Realpath { path }
        | Request::ListTree { path, .. } => show(path),
        Request::Link { from, to } => format!("{} -> {}", show(from), show(to)),
        Request::Fallocate { handle, .. } | Request::Lseek { handle, .. } => format!("handle {handle}"),
        _ => ".".to_string(),
    }
}

fn io_err(op: &str, path: &[u8], err: &std::io::Error) -> OpError {
    OpError::io(op, &show(path), err)
}

fn handle_err(op: &str, handle: Handle, err: &std::io::Error) -> OpError {
    OpError::io(op, &format!("handle {handle}"), err)
}

fn system_time(time: SetTime) -> Option<SystemTime> {
    match time {
        SetTime::Omit => None,
        SetTime::Now => Some(SystemTime::now()),
        SetTime::Set(Timespec { sec, nsec }) => {
            let since = std::time::Duration::new(sec.unsigned_abs(), nsec);
            if sec >= 0 {
                UNIX_EPOCH.checked_add(since)
            } else {
                UNIX_EPOCH.checked_sub(since)
            }
        }
    }
}

fn timespec(time: std::io::Result<SystemTime>) -> Timespec {
    match time.map(|t| t.duration_since(UNIX_EPOCH)) {
        Ok(Ok(since)) => Timespec {
            sec: since.as_secs() as i64,
            nsec: since.subsec_nanos(),
        },
        Ok(Err(before)) => {
            let before = before.duration();
            Timespec {
                sec: -(before.as_secs() as i64) - i64::from(before.subsec_nanos() > 0),
                nsec: (1_000_000_000 - before.subsec_nanos()) % 1_000_000_000,
            }
        }
        Err(_) => Timespec { sec: 0, nsec: 0 },
    }
}

/// Attributes from what std knows of a file: a Unix mode made up from its
/// kind and read-only bit.
fn attr_of(meta: &Metadata) -> Attr {
    let kind = if meta.is_symlink() {
        file_type::SYMLINK
    } else if meta.is_dir() {
        file_type::DIRECTORY
    } else {
        file_type::REGULAR
    };
    let permissions = match (kind, meta.permissions().readonly()) {
        (file_type::SYMLINK, _) => 0o777,
        (file_type::DIRECTORY, false) => 0o755,
        (file_type::DIRECTORY, true) => 0o555,
        (_, false) => 0o644,
        (_, true) => 0o444,
    };
    let modified = timespec(meta.modified());
    Attr {
        ino: 0,
        mode: kind | permissions,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev_major: 0,
        rdev_minor: 0,
        size: meta.len(),
        blocks: meta.len().div_ceil(512),
        blksize: 4096,
        atime: timespec(meta.accessed()),
        mtime: modified,
        ctime: modified,
        dev: 0,
        btime: meta.created().ok().map(|t| timespec(Ok(t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yonder_proto::RenameFlags;

    fn agent() -> (tempfile::TempDir, PortableAgent) {
        let dir = tempfile::tempdir().unwrap();
        let agent = PortableAgent::new(dir.path().to_path_buf());
        (dir, agent)
    }

    fn path(p: &str) -> serde_bytes::ByteBuf {
        serde_bytes::ByteBuf::from(p.as_bytes().to_vec())
    }

    fn errno(response: Response) -> Errno {
        match response {
            Response::Error(err) => err.errno,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn lists_a_directory_in_pages_sorted_with_each_entrys_kind() {
        let (dir, agent) = agent();
        for name in ["c", "a", "b"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let page = |cursor| match agent.handle(Request::ReadDir {
            path: path(""),
            cursor,
            max_entries: 3,
        }) {
            Response::DirPage(page) => page,
            other => panic!("{other:?}"),
        };
        let first = page(None);
        let names: Vec<_> = first.entries.iter().map(|e| e.name.to_vec()).collect();
        assert_eq!(names, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(first.entries[0].attr.unwrap().size, 1);
        let rest = page(first.next);
        assert_eq!(rest.entries.len(), 1);
        assert_eq!(rest.entries[0].name.as_slice(), b"d");
        assert!(rest.entries[0].attr.unwrap().is_dir());
        assert_eq!(rest.next, None);
    }

    #[test]
    fn a_file_is_created_written_read_and_closed_through_its_handle() {
        let (dir, agent) = agent();
        let Response::Opened { handle, .. } = agent.handle(Request::Open {
            path: path("f"),
            flags: open_flags::READ_WRITE | open_flags::CREATE | open_flags::EXCLUSIVE,
            mode: 0o644,
            owner: None,
        }) else {
            panic!("create failed")
        };
        let written = agent.handle(Request::Write {
            handle,
            offset: 2,
            data: b"llo".to_vec(),
        });
        assert_eq!(written, Response::Written(3));
        let read = agent.handle(Request::Read {
            handle,
            offset: 1,
            len: 10,
        });
        assert_eq!(read, Response::Data(b"\0llo".to_vec()));
        assert!(matches!(agent.handle(Request::Fstat { handle }), Response::Attr(a) if a.size == 5));
        assert_eq!(agent.handle(Request::Close { handle }), Response::Done);
        assert_eq!(errno(agent.handle(Request::Close { handle })), Errno::EBADF);
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"\0\0llo");
        let again = agent.handle(Request::Open {
            path: path("f"),
            flags: open_flags::WRITE_ONLY | open_flags::CREATE | open_flags::EXCLUSIVE,
            mode: 0o644,
            owner: None,
        });
        assert_eq!(errno(again), Errno::EEXIST);
    }

    #[test]
    fn a_directory_opens_for_reading_only_and_o_directory_opens_nothing_else() {
        let (dir, agent) = agent();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let open = |p: &str, flags| {
            agent.handle(Request::Open {
                path: path(p),
                flags,
                mode: 0,
                owner: None,
            })
        };
        let Response::Opened { handle, attr } = open("d", open_flags::READ_ONLY | open_flags::DIRECTORY)
        else {
            panic!("opening the directory failed")
        };
        assert!(attr.is_dir());
        assert_eq!(agent.handle(Request::Close { handle }), Response::Done);
        assert_eq!(errno(open("d", open_flags::WRITE_ONLY)), Errno::EISDIR);
        assert_eq!(
            errno(open("f", open_flags::READ_ONLY | open_flags::DIRECTORY)),
            Errno::ENOTDIR
        );
    }

    #[test]
    fn open_read_brings_the_start_of_the_file() {
        let (dir, agent) = agent();
        std::fs::write(dir.path().join("f"), b"0123456789").unwrap();
        let Response::OpenedRead { attr, data, .. } = agent.handle(Request::OpenRead {
            path: path("f"),
            flags: open_flags::READ_ONLY,
            prefetch: 4,
        }) else {
            panic!("open_read failed")
        };
        assert_eq!((attr.size, data.as_slice()), (10, &b"0123"[..]));
    }

    #[test]
    fn paths_stay_below_the_root() {
        let (dir, agent) = agent();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let lstat = |p: &str| agent.handle(Request::Lstat { path: path(p) });
        assert!(matches!(lstat("d/../d/."), Response::Attr(a) if a.is_dir()));
        assert_eq!(errno(lstat("d/../..")), Errno::EACCES);
        assert_eq!(errno(lstat("../etc")), Errno::EACCES);
        // Windows's own separators and drives would reach past a component.
        assert_eq!(errno(lstat(r"d\..\..")), Errno::EINVAL);
        assert_eq!(errno(lstat("C:")), Errno::EINVAL);
        assert_eq!(errno(lstat("missing")), Errno::ENOENT);
    }

    #[test]
    fn names_change_as_asked_and_what_windows_cannot_do_is_refused() {
        let (dir, agent) = agent();
        assert!(matches!(
            agent.handle(Request::Mkdir {
                path: path("d"),
                mode: 0o755,
                owner: None
            }),
            Response::Attr(a) if a.is_dir()
        ));
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let rename = |flags| Request::Rename {
            from: path("f"),
            to: path("d/g"),
            flags,
        };
        let noreplace = RenameFlags {
            noreplace: true,
            exchange: false,
        };
        assert_eq!(errno(agent.handle(rename(noreplace))), Errno::EINVAL);
        assert_eq!(agent.handle(rename(RenameFlags::default())), Response::Done);
        assert!(dir.path().join("d/g").exists());
        assert_eq!(
            errno(agent.handle(Request::Rmdir { path: path("d") })),
            Errno::ENOTEMPTY
        );
        assert_eq!(
            agent.handle(Request::Unlink { path: path("d/g") }),
            Response::Done
        );
        assert_eq!(agent.handle(Request::Rmdir { path: path("d") }), Response::Done);
        let Response::Error(refused) = agent.handle(Request::Symlink {
            target: path("f"),
            path: path("l"),
            owner: None,
        }) else {
            panic!("symlink answered")
        };
        assert_eq!(refused.errno, Errno::EOPNOTSUPP);
        assert!(
            refused
                .message
                .contains("symlink is not supported by the agent on windows"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn setattr_truncates_and_sets_times() {
        let (dir, agent) = agent();
        std::fs::write(dir.path().join("f"), b"0123456789").unwrap();
        let set = SetAttr {
            size: Some(4),
            mtime: SetTime::Set(Timespec {
                sec: 1_000_000,
                nsec: 0,
            }),
            ..SetAttr::default()
        };
        let Response::Attr(attr) = agent.handle(Request::Setattr {
            target: Target::Path(path("f")),
            attr: set,
        }) else {
            panic!("setattr failed")
        };
        assert_eq!((attr.size, attr.mtime.sec), (4, 1_000_000));
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"0123");
    }
}
