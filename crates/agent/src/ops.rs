//! The file system operations: one request in, one response out.
//!
//! Everything here blocks in system calls and runs on tokio's blocking pool.

use crate::attr::{attr_from_stat, stat_at, stat_fd, statfs_from_statvfs};
use crate::dirs::{clamp_page_entries, DirCursors, DirStream};
use crate::error::OpError;
use crate::fence::{Fence, FenceError};
use crate::handles::{HandleTable, OpenFile};
use crate::paths::{display, HostPath, PathError, Root};
use crate::reply_cache::{ReplyCache, Verdict};
use crate::splice::{PipePool, Spliced};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, CWD};
use rustix::io::Errno as HostErrno;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use yonder_proto::{
    access_mask, file_type, open_flags, DirPage, Errno, Handle, Owner, RenameFlags, Request, Response,
    SeekWhence, SetAttr, SetTime, Target, TreeBudget, MAX_IO_SIZE,
};

/// Attempts at telling whether `O_CREAT` created the file before giving up
/// on knowing (see [`open_tracking_creation`]).
const CREATE_RACE_RETRIES: usize = 8;
#[cfg(not(target_os = "freebsd"))]
/// First buffer for xattr values and lists; most fit, larger ones cost one
/// size query and a second call.
const XATTR_FIRST_TRY: usize = 4096;
#[cfg(not(target_os = "freebsd"))]
/// Rounds of "too small, ask the size, try again" before giving up.
const XATTR_RETRIES: usize = 8;
const S_ISGID: u32 = 0o2000;

/// The state shared by all requests of one session.
pub(crate) struct Agent {
    root: Root,
    handles: HandleTable,
    dirs: DirCursors,
    pipes: PipePool,
    /// Only root can give a new node to another user; anyone else creates
    /// nodes that belong to the agent's user, as sshfs does.
    can_chown: bool,
    /// Refuses changes once a newer connection of the client took over.
    fence: Fence,
    /// What each `Once` operation of the session answered.
    replies: ReplyCache,
    /// Told of each directory a walk (`ListTree`) is about to read, so a
    /// client's watch covers it before its listing is taken.
    visits: std::sync::OnceLock<Visit>,
}

/// What `Agent::on_visit` is given.
pub(crate) type Visit = Box<dyn Fn(&[u8]) + Send + Sync>;

/// What a request acts on, for error messages: the operation and the path,
/// pair of paths or handle as the client named it.
struct Subject {
    op: &'static str,
    what: String,
}

impl Subject {
    fn path(op: &'static str, wire: &[u8]) -> Subject {
        Subject {
            op,
            what: display(wire),
        }
    }

    fn pair(op: &'static str, from: &[u8], to: &[u8]) -> Subject {
        Subject {
            op,
            what: format!("{} -> {}", display(from), display(to)),
        }
    }

    fn handle(op: &'static str, handle: Handle) -> Subject {
        Subject {
            op,
            what: format!("handle {handle}"),
        }
    }

    fn sys(&self, err: HostErrno) -> OpError {
        OpError::sys(self.op, &self.what, err)
    }

    fn io(&self, err: &std::io::Error) -> OpError {
        OpError::io(self.op, &self.what, err)
    }

    fn refused(&self, errno: Errno, why: &str) -> OpError {
        OpError::refused(self.op, &self.what, errno, why)
    }
}

type OpResult = Result<Response, OpError>;

fn superseded(op: &str) -> Response {
    Response::Error(yonder_proto::WireError {
        errno: Errno::EIO,
        message: format!("{op}: refused, a newer connection of this client took over from this agent"),
    })
}

impl Drop for Agent {
    /// The session's reply file goes with its last agent, once the client
    /// has settled everything in it.
    fn drop(&mut self) {
        let ours = !self.fence.superseded();
        if !ours {
            self.replies.retire();
        }
        self.replies.release(ours);
    }
}

impl Agent {
    /// The directory served, canonical.
    pub(crate) fn root(&self) -> &std::path::Path {
        self.root.path()
    }

    /// An agent whose fencing claims go to `dir` (a fuzzer's own), not to
    /// the user's runtime directory.
    pub(crate) fn with_fence_dir(root: Root, dir: std::path::PathBuf) -> Agent {
        let mut agent = Agent::new(root);
        agent.fence = Fence::in_dir(dir);
        agent
    }

    pub(crate) fn new(root: Root) -> Agent {
        Agent {
            root,
            handles: HandleTable::default(),
            dirs: DirCursors::default(),
            pipes: PipePool::default(),
            can_chown: rustix::process::geteuid().is_root(),
            fence: Fence::default(),
            replies: ReplyCache::default(),
            visits: std::sync::OnceLock::new(),
        }
    }

    /// Has `visit` told of every directory a walk is about to read (the
    /// session's watch, when the client asked for one).
    pub(crate) fn on_visit(&self, visit: Visit) {
        let _ = self.visits.set(visit);
    }

    fn visiting(&self, wire: &[u8]) {
        if let Some(visit) = self.visits.get() {
            visit(wire);
        }
    }

    /// Whether `request` may wait for another agent of the session to
    /// finish the same operation: not for the reader task to run.
    pub(crate) fn may_wait(&self, request: &Request) -> bool {
        matches!(request, Request::Once { id, request, .. } if request.changes_files() && self.replies.would_wait(*id))
    }

    /// Files open and not yet closed.
    pub(crate) fn open_files(&self) -> usize {
        self.handles.len()
    }

    pub(crate) fn handle(&self, request: Request) -> Response {
        if let Request::Once {
            id,
            settled_below,
            request,
        } = request
        {
            return self.once(id, settled_below, *request);
        }
        if request.changes_files() && self.fence.superseded() {
            return superseded(request.op());
        }
        self.dispatch(request)
            .unwrap_or_else(|err| Response::Error(err.into()))
    }

    /// Carries out operation `id` of the session unless it was already,
    /// in which case the recorded answer is given again. The start is
    /// recorded before the fence is checked: a newer agent then sees (and
    /// waits for) every operation this one carries out after its claim.
    fn once(&self, id: u64, settled_below: u64, request: Request) -> Response {
        if matches!(request, Request::Once { .. } | Request::Fence { .. }) {
            return Response::Error(yonder_proto::WireError {
                errno: Errno::EINVAL,
                message: format!(
                    "{}: cannot be carried out as an operation of its own",
                    request.op()
                ),
            });
        }
        if !request.changes_files() {
            // Harmless twice; what it carries is the client's floor.
            self.replies.settle(settled_below);
            self.replies.release(!self.fence.superseded());
            return self.handle(request);
        }
        match self.replies.begin(id, settled_below, &request) {
            Verdict::Refused(response) => response,
            Verdict::Answered { response, ours } => self.answer_again(request, response, ours),
            Verdict::Run => {
                if self.fence.superseded() {
                    self.replies.retire();
                    self.replies.drop_op(id);
                    return superseded(request.op());
                }
                let response = self
                    .dispatch(request.clone())
                    .unwrap_or_else(|err| Response::Error(err.into()));
                if self.fence.superseded() {
                    self.replies.retire();
                }
                self.replies.finish(id, &request, &response);
                response
            }
        }
    }

    /// A recorded answer, given again. An exclusive create's handle was
    /// another agent's: the file it created is opened again (never created
    /// or truncated), checked to be that file.
    fn answer_again(&self, request: Request, response: Response, ours: bool) -> Response {
        let (Response::Opened { attr: created, .. }, false, Request::Open { path, flags, .. }) =
            (&response, ours, &request)
        else {
            return response;
        };
        let reopen = flags & !(open_flags::CREATE | open_flags::EXCLUSIVE | open_flags::TRUNCATE);
        let s = Subject::path("open", path);
        match self.open("open", path, reopen, 0, None) {
            // Removed since: without O_EXCL, creating it again is what the
            // call asks for anyway.
            Err(err) if flags & open_flags::EXCLUSIVE == 0 && err.errno == Errno::ENOENT => self
                .dispatch(request)
                .unwrap_or_else(|err| Response::Error(err.into())),
            Ok(Response::Opened { handle, attr }) if (attr.dev, attr.ino) == (created.dev, created.ino) => {
                Response::Opened { handle, attr }
            }
            Ok(Response::Opened { handle, .. }) => {
                self.handles.remove(handle);
                Response::Error(
                    s.refused(
                        Errno::ESTALE,
                        "this client created the file, and another file has its name now",
                    )
                    .into(),
                )
            }
            Ok(other) => other,
            Err(err) => Response::Error(err.into()),
        }
    }

    fn dispatch(&self, request: Request) -> OpResult {
        let op = request.op();
        match request {
            Request::Lstat { path } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve(&s, &path)?;
                Ok(Response::Attr(lstat(&abs).map_err(|e| s.sys(e))?))
            }
            Request::Stat { path } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve(&s, &path)?;
                Ok(Response::Attr(
                    stat_at(CWD, &*abs, AtFlags::empty()).map_err(|e| s.sys(e))?,
                ))
            }
            Request::Fstat { handle } => {
                let s = Subject::handle(op, handle);
                let file = self.file(&s, handle)?;
                Ok(Response::Attr(stat_fd(&file.file).map_err(|e| s.sys(e))?))
            }
            Request::ReadDir {
                path,
                cursor,
                max_entries,
            } => self.read_dir(op, &path, cursor, max_entries),
            Request::ListTree { path, cursor, budget } => self.list_tree(op, &path, cursor, budget),
            Request::Open {
                path,
                flags,
                mode,
                owner,
            } => self.open(op, &path, flags, mode, owner),
            Request::OpenRead {
                path,
                flags,
                prefetch,
            } => self.open_read(op, &path, flags, prefetch),
            Request::Read { handle, offset, len } => self.read(op, handle, offset, len),
            Request::Write { handle, offset, data } => self.write(op, handle, offset, &data),
            Request::Fallocate {
                handle,
                offset,
                len,
                mode,
            } => {
                let s = Subject::handle(op, handle);
                let file = self.file(&s, handle)?;
                let host = yonder_proto::fallocate_mode::to_host(mode).ok_or_else(|| {
                    s.refused(
                        Errno::EOPNOTSUPP,
                        &format!(
                            "fallocate mode {mode:#x} is not supported on {}",
                            std::env::consts::OS
                        ),
                    )
                })?;
                let flags = rustix::fs::FallocateFlags::from_bits_retain(host as _);
                rustix::fs::fallocate(&file.file, flags, offset, len).map_err(|e| s.sys(e))?;
                Ok(Response::Done)
            }
            Request::Ping => Ok(Response::Done),
            // Answered by the reader of the stream that started the agent
            // (`direct.rs`), which alone may hand out its secrets.
            Request::DirectListen { .. } => Err(Subject {
                op,
                what: "direct listener".into(),
            }
            .refused(
                Errno::EOPNOTSUPP,
                "only the connection that started the agent may open a direct listener",
            )),
            // `handle` takes these apart before dispatching.
            request @ Request::Once { .. } => Ok(self.handle(request)),
            Request::Fence { session, generation } => {
                let s = Subject {
                    op,
                    what: format!("session {session:016x} generation {generation}"),
                };
                match self.fence.claim(session, generation) {
                    // Claimed, but without records the next agent could
                    // not answer operations sent again: the client must
                    // not count on it (it only does after `Done`).
                    Ok(dir) => match self.replies.attach(&dir, session) {
                        Ok(()) => Ok(Response::Done),
                        Err(err) => Err(s.refused(
                            Errno::EIO,
                            &format!("{}: cannot keep reply records: {err}", dir.display()),
                        )),
                    },
                    Err(err @ FenceError::Superseded { .. }) => {
                        Err(s.refused(Errno::ESTALE, &err.to_string()))
                    }
                    Err(err) => Err(s.refused(Errno::EIO, &err.to_string())),
                }
            }
            Request::Realpath { path } => {
                let s = Subject::path(op, &path);
                self.realpath(&s, &path)
            }
            Request::Lseek {
                handle,
                offset,
                whence,
            } => {
                let s = Subject::handle(op, handle);
                let file = self.file(&s, handle)?;
                // This moves the descriptor's offset, which nothing else
                // uses: reads and writes give theirs (append handles and
                // streams write at the end, or have no offset to move).
                let pos = match whence {
                    SeekWhence::Data => rustix::fs::SeekFrom::Data(offset),
                    SeekWhence::Hole => rustix::fs::SeekFrom::Hole(offset),
                };
                let found = rustix::fs::seek(&file.file, pos).map_err(|e| s.sys(e))?;
                Ok(Response::Offset(found))
            }
            Request::Fsync { handle, datasync } => {
                let s = Subject::handle(op, handle);
                let file = self.file(&s, handle)?;
                let synced = if datasync {
                    file.file.sync_data()
                } else {
                    file.file.sync_all()
                };
                synced.map_err(|e| s.io(&e))?;
                Ok(Response::Done)
            }
            Request::Close { handle } => self.close(op, handle),
            Request::Setattr { target, attr } => self.setattr(op, target, &attr),
            Request::Mkdir { path, mode, owner } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve(&s, &path)?;
                rustix::fs::mkdirat(CWD, &*abs, permissions(mode)).map_err(|e| s.sys(e))?;
                self.give_owner(&s, &abs, Node::Path(&abs), owner);
                Ok(Response::Attr(lstat(&abs).map_err(|e| s.sys(e))?))
            }
            Request::Mknod {
                path,
                mode,
                rdev_major,
                rdev_minor,
                owner,
            } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve(&s, &path)?;
                mknod(&abs, mode, rdev_major, rdev_minor).map_err(|e| match e {
                    Some(e) => s.sys(e),
                    None => s.refused(
                        Errno::EINVAL,
                        &format!("cannot create file type {mode:#o} with mknod"),
                    ),
                })?;
                self.give_owner(&s, &abs, Node::Path(&abs), owner);
                Ok(Response::Attr(lstat(&abs).map_err(|e| s.sys(e))?))
            }
            Request::Unlink { path } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve_not_root(&s, &path)?;
                rustix::fs::unlinkat(CWD, &*abs, AtFlags::empty()).map_err(|e| s.sys(e))?;
                Ok(Response::Done)
            }
            Request::Rmdir { path } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve_not_root(&s, &path)?;
                rustix::fs::unlinkat(CWD, &*abs, AtFlags::REMOVEDIR).map_err(|e| s.sys(e))?;
                Ok(Response::Done)
            }
            Request::Rename { from, to, flags } => self.rename(op, &from, &to, flags),
            Request::Symlink { target, path, owner } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve(&s, &path)?;
                if target.contains(&0) {
                    return Err(s.refused(Errno::EINVAL, "symlink target contains a NUL byte"));
                }
                // The target is the link's content, interpreted by whoever
                // follows it; it is stored verbatim, not resolved or sandboxed.
                rustix::fs::symlinkat(OsStr::from_bytes(&target), CWD, &*abs).map_err(|e| s.sys(e))?;
                self.give_owner(&s, &abs, Node::Path(&abs), owner);
                Ok(Response::Attr(lstat(&abs).map_err(|e| s.sys(e))?))
            }
            Request::Readlink { path } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve(&s, &path)?;
                let target = rustix::fs::readlinkat(CWD, &*abs, Vec::new()).map_err(|e| s.sys(e))?;
                Ok(Response::Bytes(target.into_bytes()))
            }
            Request::Link { from, to } => {
                let s = Subject::pair(op, &from, &to);
                let abs_from = self.resolve(&s, &from)?;
                let abs_to = self.resolve(&s, &to)?;
                rustix::fs::linkat(CWD, &*abs_from, CWD, &*abs_to, AtFlags::empty()).map_err(|e| s.sys(e))?;
                Ok(Response::Attr(lstat(&abs_to).map_err(|e| s.sys(e))?))
            }
            Request::Statfs { path } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve(&s, &path)?;
                let st = rustix::fs::statvfs(&*abs).map_err(|e| s.sys(e))?;
                Ok(Response::StatFs(statfs_from_statvfs(&st)))
            }
            #[cfg(not(target_os = "freebsd"))]
            Request::GetXattr { path, name } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve(&s, &path)?;
                let name = xattr_name(&s, &name)?;
                let value = read_sized(
                    |buf| rustix::fs::lgetxattr(&*abs, name, buf),
                    || rustix::fs::lgetxattr_query(&*abs, name),
                )
                .map_err(|e| s.sys(e))?;
                Ok(Response::Bytes(value))
            }
            #[cfg(not(target_os = "freebsd"))]
            Request::SetXattr {
                path,
                name,
                value,
                mode,
            } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve(&s, &path)?;
                let name = xattr_name(&s, &name)?;
                let flags = match mode {
                    yonder_proto::XattrMode::Either => rustix::fs::XattrFlags::empty(),
                    yonder_proto::XattrMode::Create => rustix::fs::XattrFlags::CREATE,
                    yonder_proto::XattrMode::Replace => rustix::fs::XattrFlags::REPLACE,
                };
                rustix::fs::lsetxattr(&*abs, name, &value, flags).map_err(|e| s.sys(e))?;
                Ok(Response::Done)
            }
            #[cfg(not(target_os = "freebsd"))]
            Request::ListXattr { path } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve(&s, &path)?;
                let list = read_sized(
                    |buf| rustix::fs::llistxattr(&*abs, buf),
                    || rustix::fs::llistxattr_query(&*abs),
                )
                .map_err(|e| s.sys(e))?;
                let names = list
                    .split(|&b| b == 0)
                    .filter(|n| !n.is_empty())
                    .map(|n| n.to_vec().into())
                    .collect();
                Ok(Response::Names(names))
            }
            #[cfg(not(target_os = "freebsd"))]
            Request::RemoveXattr { path, name } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve(&s, &path)?;
                let name = xattr_name(&s, &name)?;
                rustix::fs::lremovexattr(&*abs, name).map_err(|e| s.sys(e))?;
                Ok(Response::Done)
            }
            // FreeBSD has extattr(2) with namespaces, not Linux's and macOS's
            // xattr calls (nor does rustix map them).
            #[cfg(target_os = "freebsd")]
            Request::GetXattr { path, .. }
            | Request::SetXattr { path, .. }
            | Request::ListXattr { path }
            | Request::RemoveXattr { path, .. } => Err(Subject::path(op, &path).refused(
                Errno::EOPNOTSUPP,
                "extended attributes are not supported by the agent on freebsd",
            )),
            Request::Access { path, mask } => {
                let s = Subject::path(op, &path);
                let abs = self.resolve(&s, &path)?;
                let access = host_access(mask)
                    .ok_or_else(|| s.refused(Errno::EINVAL, &format!("unknown access mask {mask:#o}")))?;
                rustix::fs::accessat(CWD, &*abs, access, AtFlags::empty()).map_err(|e| s.sys(e))?;
                Ok(Response::Done)
            }
        }
    }

    fn resolve(&self, s: &Subject, wire: &[u8]) -> Result<HostPath, OpError> {
        self.root.resolve(wire).map_err(|err| match err {
            PathError::Nul => s.refused(Errno::EINVAL, "path contains a NUL byte"),
            PathError::Escapes => s.refused(Errno::EACCES, "path escapes the served root"),
            PathError::Walk(errno) => s.sys(errno),
        })
    }

    /// `Realpath`: `wire` taken as a host path (a relative one against the
    /// working directory), resolved, and kept within the root.
    fn realpath(&self, s: &Subject, wire: &[u8]) -> OpResult {
        if wire.contains(&0) {
            return Err(s.refused(Errno::EINVAL, "path contains a NUL byte"));
        }
        let given = Path::new(OsStr::from_bytes(wire));
        let path = if given.is_absolute() {
            given.to_path_buf()
        } else {
            std::env::current_dir().map_err(|e| s.io(&e))?.join(given)
        };
        let canonical = std::fs::canonicalize(&path).map_err(|e| s.io(&e))?;
        if !canonical.starts_with(self.root.path()) {
            return Err(s.refused(Errno::EACCES, "path lies outside the served root"));
        }
        Ok(Response::Bytes(canonical.into_os_string().into_vec()))
    }

    /// For operations that would remove or replace the served root itself,
    /// which would leave the session serving nothing.
    fn resolve_not_root(&self, s: &Subject, wire: &[u8]) -> Result<HostPath, OpError> {
        let abs = self.resolve(s, wire)?;
        if *abs == *self.root.path() {
            return Err(s.refused(Errno::EBUSY, "the served root cannot be removed or replaced"));
        }
        Ok(abs)
    }

    fn file(&self, s: &Subject, handle: Handle) -> Result<Arc<OpenFile>, OpError> {
        self.handles
            .get(handle)
            .ok_or_else(|| s.refused(Errno::EBADF, "no such open handle"))
    }

    fn read_dir(&self, op: &'static str, wire: &[u8], cursor: Option<u64>, max_entries: u32) -> OpResult {
        let s = Subject::path(op, wire);
        let mut stream = self.dir_stream(&s, wire, cursor)?;
        let page = stream
            .read_page(clamp_page_entries(max_entries))
            .map_err(|e| s.sys(e))?;
        let next = page.more.then(|| self.dirs.park(stream));
        Ok(Response::DirPage(DirPage {
            entries: page.entries,
            next,
        }))
    }

    fn list_tree(&self, op: &'static str, wire: &[u8], cursor: Option<u64>, budget: TreeBudget) -> OpResult {
        let s = Subject::path(op, wire);
        let stream = self.dir_stream(&s, wire, cursor)?;
        let (mut page, rest) =
            crate::tree::list_tree(stream, wire, budget, &|dir| self.visiting(dir)).map_err(|e| s.sys(e))?;
        page.next = rest.map(|stream| self.dirs.park(stream));
        Ok(Response::Tree(page))
    }

    /// The listing of `wire`: a new one, or the one parked under `cursor`.
    fn dir_stream(&self, s: &Subject, wire: &[u8], cursor: Option<u64>) -> Result<DirStream, OpError> {
        let abs = self.resolve(s, wire)?;
        Ok(match cursor {
            None => DirStream::open(&abs, abs.logical()).map_err(|e| s.sys(e))?,
            Some(cursor) => {
                let stream = self
                    .dirs
                    .take(cursor)
                    .ok_or_else(|| s.refused(Errno::EINVAL, "stale directory cursor"))?;
                if stream.path() != abs.logical() {
                    return Err(s.refused(Errno::EINVAL, "directory cursor belongs to another directory"));
                }
                stream
            }
        })
    }

    fn open(&self, op: &'static str, wire: &[u8], flags: u32, mode: u32, owner: Option<Owner>) -> OpResult {
        let s = Subject::path(op, wire);
        let abs = self.resolve(&s, wire)?;
        let oflags = host_open_flags(flags)
            .ok_or_else(|| s.refused(Errno::EINVAL, &format!("unsupported open flags {flags:#x}")))?;
        let (fd, created) = open_tracking_creation(&abs, oflags, permissions(mode)).map_err(|e| s.sys(e))?;
        let file = File::from(fd);
        if created {
            self.give_owner(&s, &abs, Node::Fd(file.as_fd()), owner);
        }
        let attr = stat_fd(&file).map_err(|e| s.sys(e))?;
        let append = flags & open_flags::APPEND != 0;
        let handle = self.handles.insert(OpenFile { file, append });
        Ok(Response::Opened { handle, attr })
    }

    /// Open plus the first read, for readers of small files.
    fn open_read(&self, op: &'static str, wire: &[u8], flags: u32, prefetch: u32) -> OpResult {
        let s = Subject::path(op, wire);
        if !open_flags::only_reads(flags) {
            return Err(s.refused(Errno::EINVAL, "OpenRead is for reading existing files"));
        }
        let Response::Opened { handle, attr } = self.open(op, wire, flags, 0, None)? else {
            unreachable!("open answers Opened")
        };
        // Only regular files: a read of a FIFO or device could block or
        // consume data nobody asked for yet.
        if !attr.is_file() || prefetch == 0 {
            return Ok(Response::OpenedRead {
                handle,
                attr,
                data: Vec::new(),
            });
        }
        match self.read(op, handle, 0, prefetch) {
            Ok(Response::Data(data)) => Ok(Response::OpenedRead { handle, attr, data }),
            Ok(_) => unreachable!("read answers Data"),
            Err(err) => {
                self.handles.remove(handle);
                Err(err)
            }
        }
    }

    /// A read whose data is spliced into a pipe instead of copied; `None`
    /// when it must be done by [`Agent::handle`] instead.
    pub(crate) fn read_spliced(
        &self,
        handle: Handle,
        offset: u64,
        len: u32,
    ) -> Option<Result<Spliced, Response>> {
        let s = Subject::handle("read", handle);
        let file = match self.file(&s, handle) {
            Ok(file) => file,
            Err(err) => return Some(Err(Response::Error(err.into()))),
        };
        let len = len.min(MAX_IO_SIZE) as usize;
        match self.pipes.fill(&file.file, offset, len)? {
            Ok(spliced) => Some(Ok(spliced)),
            Err(errno) => Some(Err(Response::Error(s.sys(errno).into()))),
        }
    }

    pub(crate) fn pipes(&self) -> &PipePool {
        &self.pipes
    }

    fn read(&self, op: &'static str, handle: Handle, offset: u64, len: u32) -> OpResult {
        let s = Subject::handle(op, handle);
        let file = self.file(&s, handle)?;
        // Clamped before allocating: the client's number is not trusted.
        let len = len.min(MAX_IO_SIZE) as usize;
        // Read into spare capacity: zeroing a megabyte that pread is about
        // to overwrite costs as much as a copy.
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            let Some(at) = offset.checked_add(buf.len() as u64) else {
                return Err(s.refused(Errno::EINVAL, "offset overflows"));
            };
            let spare = rustix::buffer::spare_capacity(&mut buf);
            match rustix::io::pread(&file.file, spare, at) {
                Err(HostErrno::SPIPE) => {
                    buf.resize(len, 0);
                    return read_stream(&s, &file.file, buf);
                }
                Ok(0) => break,
                Ok(_) => {}
                Err(HostErrno::INTR) => {}
                // Like read(2), a short read stands and the error surfaces on
                // the next call.
                Err(_) if !buf.is_empty() => break,
                Err(e) => return Err(s.sys(e)),
            }
        }
        Ok(Response::Data(buf))
    }

    fn write(&self, op: &'static str, handle: Handle, offset: u64, data: &[u8]) -> OpResult {
        let s = Subject::handle(op, handle);
        let file = self.file(&s, handle)?;
        let written = if file.append {
            (&file.file).write_all(data)
        } else {
            match file.file.write_all_at(data, offset) {
                // Streams (FIFOs, sockets, terminals) have no offset to
                // write at; pwrite fails before writing anything.
                Err(e) if e.raw_os_error() == Some(libc::ESPIPE) => (&file.file).write_all(data),
                other => other,
            }
        };
        written.map_err(|e| s.io(&e))?;
        // A frame cannot carry more than u32::MAX bytes.
        Ok(Response::Written(data.len() as u32))
    }

    fn close(&self, op: &'static str, handle: Handle) -> OpResult {
        let s = Subject::handle(op, handle);
        let file = self
            .handles
            .remove(handle)
            .ok_or_else(|| s.refused(Errno::EBADF, "no such open handle"))?;
        // A request still in flight on this handle keeps the file open; it
        // is closed, silently, when that request finishes.
        if let Ok(file) = Arc::try_unwrap(file) {
            close_reporting(file.file).map_err(|e| s.io(&e))?;
        }
        Ok(Response::Done)
    }

    fn setattr(&self, op: &'static str, target: Target, attr: &SetAttr) -> OpResult {
        let (s, abs, file);
        let node = match &target {
            Target::Path(wire) => {
                s = Subject::path(op, wire);
                abs = self.resolve(&s, wire)?;
                Node::Path(&abs)
            }
            Target::Handle(handle) => {
                s = Subject::handle(op, *handle);
                file = self.file(&s, *handle)?;
                Node::Fd(file.file.as_fd())
            }
        };
        let times = timestamps(attr.atime, attr.mtime)
            .ok_or_else(|| s.refused(Errno::EINVAL, "nanoseconds out of range"))?;
        if let Some(size) = attr.size {
            node.truncate(size).map_err(|e| s.sys(e))?;
        }
        let (uid, gid) = (attr.uid.and_then(uid), attr.gid.and_then(gid));
        if uid.is_some() || gid.is_some() {
            node.chown(uid, gid).map_err(|e| s.sys(e))?;
        }
        // After chown, which clears the set-id bits this may set.
        if let Some(mode) = attr.mode {
            node.chmod(permissions(mode)).map_err(|e| s.sys(e))?;
        }
        if let Some(times) = times {
            node.set_times(&times).map_err(|e| s.sys(e))?;
        }
        Ok(Response::Attr(node.attr().map_err(|e| s.sys(e))?))
    }

    fn rename(&self, op: &'static str, from: &[u8], to: &[u8], flags: RenameFlags) -> OpResult {
        let s = Subject::pair(op, from, to);
        let abs_from = self.resolve_not_root(&s, from)?;
        let abs_to = self.resolve_not_root(&s, to)?;
        if !flags.noreplace && !flags.exchange {
            rustix::fs::renameat(CWD, &*abs_from, CWD, &*abs_to).map_err(|e| s.sys(e))?;
            return Ok(Response::Done);
        }
        #[cfg(not(target_os = "freebsd"))]
        {
            let mut host = rustix::fs::RenameFlags::empty();
            host.set(rustix::fs::RenameFlags::NOREPLACE, flags.noreplace);
            host.set(rustix::fs::RenameFlags::EXCHANGE, flags.exchange);
            rustix::fs::renameat_with(CWD, &*abs_from, CWD, &*abs_to, host).map_err(|e| s.sys(e))?;
            Ok(Response::Done)
        }
        // EINVAL, as renameat2 says of flags a file system does not take.
        #[cfg(target_os = "freebsd")]
        Err(s.refused(
            Errno::EINVAL,
            "rename without replacing or exchanging does not exist on freebsd",
        ))
    }

    /// Hands a node the request just created to `owner`, keeping the group
    /// inherited from a setgid parent. Failure is logged, not reported: the
    /// node exists, and belonging to the agent's user is what an agent
    /// without the privilege would have produced anyway.
    fn give_owner(&self, s: &Subject, abs: &Path, node: Node<'_>, owner: Option<Owner>) {
        let Some(owner) = owner else { return };
        if !self.can_chown {
            return;
        }
        let parent = abs.parent().unwrap_or(self.root.path());
        if let Err(err) = give_owner(parent, node, owner) {
            tracing::warn!(op = s.op, path = %s.what, uid = owner.uid, gid = owner.gid, %err,
                "cannot give the new node to its owner");
        }
    }
}

fn give_owner(parent: &Path, node: Node<'_>, owner: Owner) -> rustix::io::Result<()> {
    let parent = attr_from_stat(&rustix::fs::statat(CWD, parent, AtFlags::empty())?);
    let gid = if parent.mode & S_ISGID != 0 {
        None
    } else {
        gid(owner.gid)
    };
    let before = attr_from_stat(&node.lstat()?);
    node.chown(uid(owner.uid), gid)?;
    if before.is_symlink() {
        return Ok(());
    }
    // chown clears setuid/setgid on regular files; the creator asked for
    // them (or the kernel set them), so they are put back.
    let after = attr_from_stat(&node.lstat()?);
    if after.permissions() != before.permissions() {
        node.chmod(permissions(before.permissions()))?;
    }
    Ok(())
}

/// A node addressed by path (symlinks not followed where the call allows)
/// or by an open descriptor.
#[derive(Clone, Copy)]
enum Node<'a> {
    Path(&'a Path),
    Fd(BorrowedFd<'a>),
}

impl Node<'_> {
    fn lstat(self) -> rustix::io::Result<rustix::fs::Stat> {
        match self {
            Node::Path(path) => rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW),
            Node::Fd(fd) => rustix::fs::fstat(fd),
        }
    }

    /// Wire attributes, identity included.
    fn attr(self) -> rustix::io::Result<yonder_proto::Attr> {
        match self {
            Node::Path(path) => lstat(path),
            Node::Fd(fd) => stat_fd(fd),
        }
    }

    fn chown(self, uid: Option<rustix::fs::Uid>, gid: Option<rustix::fs::Gid>) -> rustix::io::Result<()> {
        match self {
            Node::Path(path) => rustix::fs::chownat(CWD, path, uid, gid, AtFlags::SYMLINK_NOFOLLOW),
            Node::Fd(fd) => rustix::fs::fchown(fd, uid, gid),
        }
    }

    /// Follows symlinks for paths: Linux cannot change a link's own mode.
    fn chmod(self, mode: Mode) -> rustix::io::Result<()> {
        match self {
            Node::Path(path) => rustix::fs::chmodat(CWD, path, mode, AtFlags::empty()),
            Node::Fd(fd) => rustix::fs::fchmod(fd, mode),
        }
    }

    fn truncate(self, size: u64) -> rustix::io::Result<()> {
        match self {
            Node::Path(path) => truncate_path(path, size),
            Node::Fd(fd) => rustix::fs::ftruncate(fd, size),
        }
    }

    fn set_times(self, times: &Timestamps) -> rustix::io::Result<()> {
        match self {
            Node::Path(path) => rustix::fs::utimensat(CWD, path, times, AtFlags::SYMLINK_NOFOLLOW),
            Node::Fd(fd) => rustix::fs::futimens(fd, times),
        }
    }
}

/// Reads from a stream, which has no offset to read at. Returns what one
/// read(2) yields: waiting to fill the buffer could wait forever.
fn read_stream(s: &Subject, file: &File, mut buf: Vec<u8>) -> OpResult {
    loop {
        match (&*file).read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Response::Data(buf));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(s.io(&e)),
        }
    }
}

fn lstat(path: &Path) -> rustix::io::Result<yonder_proto::Attr> {
    stat_at(CWD, path, AtFlags::SYMLINK_NOFOLLOW)
}

/// `truncate(2)`, which rustix lacks. Opening the file and calling
/// `ftruncate` instead would block on FIFOs and have side effects on devices.
fn truncate_path(path: &Path, size: u64) -> rustix::io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| HostErrno::INVAL)?;
    let size = libc::off_t::try_from(size).map_err(|_| HostErrno::FBIG)?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the
    // call, and truncate(2) only reads it.
    let rc = unsafe { libc::truncate(c_path.as_ptr(), size) };
    if rc == 0 {
        Ok(())
    } else {
        Err(HostErrno::from_raw_os_error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ))
    }
}

/// `close(2)` with its error reported, which dropping a `File` discards; a
/// failing close can be the first sign of lost writes (NFS, quotas).
fn close_reporting(file: File) -> std::io::Result<()> {
    let fd = file.into_raw_fd();
    // SAFETY: `into_raw_fd` transferred ownership of `fd` to this function;
    // nothing else refers to it, and it is closed exactly once, here.
    let rc = unsafe { libc::close(fd) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Opens `path` and tells whether this call created the file, which decides
/// whether the requested owner applies. `O_CREAT` alone cannot tell, so the
/// file is first opened without it and created with `O_EXCL` only if absent.
fn open_tracking_creation(path: &Path, flags: OFlags, mode: Mode) -> rustix::io::Result<(OwnedFd, bool)> {
    if !flags.contains(OFlags::CREATE) || flags.contains(OFlags::EXCL) {
        let created = flags.contains(OFlags::CREATE);
        return rustix::fs::openat(CWD, path, flags, mode).map(|fd| (fd, created));
    }
    for _ in 0..CREATE_RACE_RETRIES {
        match rustix::fs::openat(CWD, path, flags - OFlags::CREATE, mode) {
            Err(HostErrno::NOENT) => {}
            other => return other.map(|fd| (fd, false)),
        }
        match rustix::fs::openat(CWD, path, flags | OFlags::EXCL, mode) {
            // Created by someone else in between; the next plain open sees it.
            Err(HostErrno::EXIST) => {}
            other => return other.map(|fd| (fd, true)),
        }
    }
    // Persistent ENOENT/EEXIST means a dangling symlink: O_EXCL refuses to
    // create through it. Plain O_CREAT creates the link's target, but whether
    // that file is new cannot be known without a race, so no owner is given.
    rustix::fs::openat(CWD, path, flags, mode).map(|fd| (fd, false))
}

/// The host's flags for portable open flags, through the protocol's table;
/// `None` for bits this build does not know, so that a newer client's flag
/// is refused rather than ignored.
fn host_open_flags(flags: u32) -> Option<OFlags> {
    // Descriptors must not leak into anything the agent might spawn.
    open_flags::to_host(flags).map(|host| OFlags::from_bits_retain((host | libc::O_CLOEXEC) as _))
}

fn host_access(mask: u32) -> Option<rustix::fs::Access> {
    use rustix::fs::Access;
    let all = access_mask::READ | access_mask::WRITE | access_mask::EXECUTE;
    if mask & !all != 0 {
        return None;
    }
    let mut access = Access::EXISTS;
    access.set(Access::READ_OK, mask & access_mask::READ != 0);
    access.set(Access::WRITE_OK, mask & access_mask::WRITE != 0);
    access.set(Access::EXEC_OK, mask & access_mask::EXECUTE != 0);
    Some(access)
}

/// Creates a non-directory node. `Err(None)` for a file type mknod cannot
/// make (directories, symlinks, unknown bits).
fn mknod(path: &Path, mode: u32, major: u32, minor: u32) -> Result<(), Option<HostErrno>> {
    let perms = permissions(mode);
    let kind = match mode & file_type::MASK {
        0 | file_type::REGULAR => FileType::RegularFile,
        #[cfg(not(target_os = "macos"))]
        file_type::FIFO => return rustix::fs::mkfifoat(CWD, path, perms).map_err(Some),
        #[cfg(target_os = "macos")]
        file_type::FIFO => return apple::mkfifo(path, perms).map_err(Some),
        file_type::CHAR => FileType::CharacterDevice,
        file_type::BLOCK => FileType::BlockDevice,
        file_type::SOCKET => FileType::Socket,
        _ => return Err(None),
    };
    #[cfg(not(target_os = "macos"))]
    return rustix::fs::mknodat(CWD, path, kind, perms, rustix::fs::makedev(major, minor)).map_err(Some);
    #[cfg(target_os = "macos")]
    return apple::mknod(path, kind, perms, rustix::fs::makedev(major, minor)).map_err(Some);
}

/// rustix has no mknodat or mkfifoat for Apple's systems (they came with
/// macOS 13); the path-based POSIX calls do the same with an absolute path.
#[cfg(target_os = "macos")]
mod apple {
    use rustix::fs::{Dev, FileType, Mode};
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    fn c_path(path: &Path) -> rustix::io::Result<CString> {
        CString::new(path.as_os_str().as_bytes()).map_err(|_| rustix::io::Errno::INVAL)
    }

    fn check(ret: libc::c_int) -> rustix::io::Result<()> {
        if ret == 0 {
            Ok(())
        } else {
            Err(rustix::io::Errno::from_raw_os_error(
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO),
            ))
        }
    }

    pub(super) fn mkfifo(path: &Path, perms: Mode) -> rustix::io::Result<()> {
        let path = c_path(path)?;
        // SAFETY: `path` is a NUL-terminated string that outlives the call;
        // mkfifo only reads it.
        check(unsafe { libc::mkfifo(path.as_ptr(), perms.bits() as libc::mode_t) })
    }

    pub(super) fn mknod(path: &Path, kind: FileType, perms: Mode, dev: Dev) -> rustix::io::Result<()> {
        let path = c_path(path)?;
        let mode = kind.as_raw_mode() as libc::mode_t | perms.bits() as libc::mode_t;
        // SAFETY: `path` is a NUL-terminated string that outlives the call;
        // mknod only reads it.
        check(unsafe { libc::mknod(path.as_ptr(), mode, dev) })
    }
}

fn permissions(mode: u32) -> Mode {
    Mode::from_raw_mode((mode & 0o7777) as _)
}

/// `u32::MAX` is chown's "leave unchanged" (-1), never a real id.
fn uid(raw: u32) -> Option<rustix::fs::Uid> {
    (raw != u32::MAX).then(|| rustix::fs::Uid::from_raw(raw))
}

fn gid(raw: u32) -> Option<rustix::fs::Gid> {
    (raw != u32::MAX).then(|| rustix::fs::Gid::from_raw(raw))
}

/// `Ok(None)` when both are omitted, `None` for nanoseconds that would alias
/// UTIME_NOW/UTIME_OMIT or be rejected by the kernel.
fn timestamps(atime: SetTime, mtime: SetTime) -> Option<Option<Timestamps>> {
    if atime == SetTime::Omit && mtime == SetTime::Omit {
        return Some(None);
    }
    let convert = |t: SetTime| -> Option<rustix::fs::Timespec> {
        Some(match t {
            SetTime::Omit => rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
            SetTime::Now => rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_NOW,
            },
            SetTime::Set(ts) if ts.nsec < 1_000_000_000 => rustix::fs::Timespec {
                tv_sec: ts.sec,
                tv_nsec: ts.nsec as _,
            },
            SetTime::Set(_) => return None,
        })
    };
    Some(Some(Timestamps {
        last_access: convert(atime)?,
        last_modification: convert(mtime)?,
    }))
}

#[cfg(not(target_os = "freebsd"))]
fn xattr_name<'a>(s: &Subject, name: &'a [u8]) -> Result<&'a OsStr, OpError> {
    if name.contains(&0) {
        return Err(s.refused(Errno::EINVAL, "attribute name contains a NUL byte"));
    }
    Ok(OsStr::from_bytes(name))
}

#[cfg(not(target_os = "freebsd"))]
/// Reads a value whose size is only known to the kernel (xattr values and
/// lists), retrying when it grows between the size query and the read.
fn read_sized(
    mut read: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
    mut query: impl FnMut() -> rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<u8>> {
    let mut buf = vec![0; XATTR_FIRST_TRY];
    for _ in 0..XATTR_RETRIES {
        match read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(HostErrno::RANGE) => {
                let size = query()?;
                // The response must fit in a frame.
                if size > MAX_IO_SIZE as usize {
                    return Err(HostErrno::TOOBIG);
                }
                buf.resize(size.max(buf.len() * 2).min(MAX_IO_SIZE as usize), 0);
            }
            Err(err) => return Err(err),
        }
    }
    // Still growing faster than it can be read.
    Err(HostErrno::RANGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn once(id: u64, request: Request) -> Request {
        Request::Once {
            id,
            settled_below: 1,
            request: Box::new(request),
        }
    }

    fn fence(session: u64, generation: u64) -> Request {
        Request::Fence { session, generation }
    }

    #[test]
    fn operations_cut_off_are_answered_again_by_the_next_agent_of_the_session() {
        let tree = tempfile::tempdir().unwrap();
        let runtime = tempfile::tempdir().unwrap();
        let agent = |generation| {
            let agent = Agent::with_fence_dir(Root::open(tree.path()).unwrap(), runtime.path().to_path_buf());
            assert_eq!(agent.handle(fence(9, generation)), Response::Done);
            agent
        };
        let create = Request::Open {
            path: b"lock".to_vec().into(),
            flags: open_flags::WRITE_ONLY | open_flags::CREATE | open_flags::EXCLUSIVE,
            mode: 0o644,
            owner: None,
        };
        let mkdir = Request::Mkdir {
            path: b"d".to_vec().into(),
            mode: 0o755,
            owner: None,
        };
        let old = agent(1);
        let Response::Opened { attr: created, .. } = old.handle(once(1, create.clone())) else {
            panic!("create failed")
        };
        assert!(matches!(old.handle(once(2, mkdir.clone())), Response::Attr(_)));
        // Sent again under the same numbers after a cut, to the next agent:
        // neither EEXIST nor a second effect.
        let new = agent(2);
        match new.handle(once(1, create.clone())) {
            Response::Opened { handle, attr } => {
                assert_eq!((attr.dev, attr.ino), (created.dev, created.ino));
                let write = Request::Write {
                    handle,
                    offset: 0,
                    data: b"mine".to_vec(),
                };
                assert_eq!(
                    new.handle(write),
                    Response::Written(4),
                    "a handle of this agent's"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(new.handle(once(2, mkdir.clone())), Response::Attr(_)));
        assert_eq!(std::fs::read(tree.path().join("lock")).unwrap(), b"mine");
        // A new operation runs: the name exists now.
        assert!(matches!(new.handle(once(3, mkdir)), Response::Error(e) if e.errno == Errno::EEXIST));
        // The replaced agent refuses what it had not run, and records
        // nothing of the refusal: the next agent may run it.
        let unlink = Request::Unlink {
            path: b"lock".to_vec().into(),
        };
        assert!(matches!(old.handle(once(4, unlink.clone())), Response::Error(e) if e.errno == Errno::EIO));
        assert_eq!(new.handle(once(4, unlink)), Response::Done);
        // Without O_EXCL, a file removed since is created again.
        let plain = Request::Open {
            path: b"plain".to_vec().into(),
            flags: open_flags::WRITE_ONLY | open_flags::CREATE,
            mode: 0o644,
            owner: None,
        };
        assert!(matches!(
            new.handle(once(5, plain.clone())),
            Response::Opened { .. }
        ));
        std::fs::remove_file(tree.path().join("plain")).unwrap();
        let newest = agent(3);
        assert!(matches!(newest.handle(once(5, plain)), Response::Opened { .. }));
        assert!(tree.path().join("plain").exists());
        drop(newest);
        // Settled and closed: the records go with the last agent.
        drop(old);
        let settle = Request::Once {
            id: 0,
            settled_below: 6,
            request: Box::new(Request::Ping),
        };
        assert_eq!(new.handle(settle), Response::Done);
        drop(new);
        assert_eq!(std::fs::read_dir(runtime.path()).unwrap().count(), 0);
    }

    #[test]
    fn open_flags_map_and_reject_unknown_bits() {
        let flags =
            host_open_flags(open_flags::READ_WRITE | open_flags::CREATE | open_flags::EXCLUSIVE).unwrap();
        assert!(flags.contains(OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC));
        assert!(host_open_flags(1 << 30).is_none());
        assert!(host_open_flags(open_flags::ACCESS_MASK).is_none());
    }

    #[test]
    fn access_mask_maps() {
        assert_eq!(host_access(0), Some(rustix::fs::Access::EXISTS));
        assert!(host_access(8).is_none());
    }

    #[cfg(not(target_os = "freebsd"))]
    #[test]
    fn sized_reads_retry_when_the_buffer_is_too_small() {
        let value = vec![7u8; 10_000];
        let read = |buf: &mut [u8]| {
            if buf.len() < value.len() {
                return Err(HostErrno::RANGE);
            }
            buf[..value.len()].copy_from_slice(&value);
            Ok(value.len())
        };
        assert_eq!(read_sized(read, || Ok(value.len())).unwrap(), value);
        // A value that keeps growing ends in ERANGE rather than a loop.
        assert_eq!(
            read_sized(|_| Err(HostErrno::RANGE), || Ok(1)),
            Err(HostErrno::RANGE)
        );
        assert_eq!(
            read_sized(|_| Err(HostErrno::RANGE), || Ok(usize::MAX)),
            Err(HostErrno::TOOBIG)
        );
    }

    #[test]
    fn timestamps_refuse_aliasing_nanoseconds() {
        let bad = SetTime::Set(yonder_proto::Timespec {
            sec: 0,
            nsec: 1_000_000_000,
        });
        assert!(timestamps(bad, SetTime::Omit).is_none());
        assert!(matches!(timestamps(SetTime::Omit, SetTime::Omit), Some(None)));
    }
}
