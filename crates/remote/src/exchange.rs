//! [`Remote`] in terms of the protocol's requests, for every transport that
//! carries [`Request`]s to an agent and brings its [`Response`]s back
//! ([`Exchange`]): which request each method sends, which response it
//! expects, and the errors it makes of the rest. [`AgentClient`] carries
//! them over a byte stream; an agent in the same process takes them as
//! they are.
//!
//! [`AgentClient`]: crate::AgentClient

use crate::error::display_path;
use crate::{Remote, RemoteError, Result};
use async_trait::async_trait;
use bytes::Bytes;
use std::future::Future;
use yonder_proto::{
    Attr, DirPage, Handle, Owner, RenameFlags, Request, Response, SeekWhence, SetAttr, StatFs, Target,
    TreeBudget, TreePage, XattrMode,
};

/// Names what a call acts on in errors: a path (`.` for the root), a
/// handle, `from -> to`.
pub type Describe<'a> = &'a (dyn Fn() -> String + Sync);

/// A transport for the protocol's requests; a [`Remote`] through this
/// module.
pub trait Exchange: Send + Sync + 'static {
    /// Carries `request` to the agent and brings back its response, an
    /// error response included. Fails only when the transport does, with
    /// an error naming the request's operation and `subject()`.
    fn exchange(
        &self,
        request: Request,
        subject: Describe<'_>,
    ) -> impl Future<Output = Result<Response>> + Send;

    /// [`Exchange::exchange`] for a write of `data`, which a transport may
    /// send from the caller's buffer itself; by default, the
    /// `Request::Write` that holds it.
    fn exchange_write(
        &self,
        handle: Handle,
        offset: u64,
        data: Bytes,
        subject: Describe<'_>,
    ) -> impl Future<Output = Result<Response>> + Send {
        let data = Vec::from(data);
        self.exchange(Request::Write { handle, offset, data }, subject)
    }

    /// Whether the agent answers a `Request::Once` sent again with its
    /// first outcome (see [`Remote::exactly_once`]).
    fn exactly_once(&self) -> bool {
        false
    }

    /// Whether the agent announced `capability` in its handshake; a
    /// transport without one (an agent in the same process) has them all.
    fn peer_has(&self, capability: &str) -> bool {
        let _ = capability;
        true
    }
}

/// `request` as it travels: a changing request of an [`crate::Operation`]
/// as `Request::Once` where the agent records them, and a ping there as
/// one that carries only the client's settled floor.
fn as_sent<E: Exchange>(remote: &E, request: Request) -> Request {
    if !remote.exactly_once() {
        return request;
    }
    let id = match (&request, crate::operation::current()) {
        (Request::Ping, _) => 0,
        (request, Some(id)) if request.changes_files() => id,
        _ => return request,
    };
    Request::Once {
        id,
        settled_below: crate::operation::settled_below(),
        request: Box::new(request),
    }
}

/// Sends `request`; an error response becomes [`RemoteError::Os`] naming
/// the request's operation and `subject()`.
pub(crate) async fn call<E: Exchange>(
    remote: &E,
    request: Request,
    subject: Describe<'_>,
) -> Result<Response> {
    let op = request.op();
    let response = remote.exchange(as_sent(remote, request), subject).await;
    answer(op, subject, response)
}

fn answer(op: &'static str, subject: Describe<'_>, response: Result<Response>) -> Result<Response> {
    match response? {
        Response::Error(err) => Err(RemoteError::Os {
            op,
            path: subject(),
            errno: err.errno,
            detail: err.message,
        }),
        response => Ok(response),
    }
}

async fn call_path<E: Exchange>(remote: &E, request: Request, path: &[u8]) -> Result<Response> {
    call(remote, request, &|| display_path(path)).await
}

async fn call_handle<E: Exchange>(remote: &E, request: Request, handle: Handle) -> Result<Response> {
    call(remote, request, &|| format!("<handle {handle}>")).await
}

fn path_buf(p: &[u8]) -> yonder_proto::WirePath {
    yonder_proto::WirePath::from(p.to_vec())
}

pub(crate) fn unexpected(op: &'static str, path: String, response: Response) -> RemoteError {
    RemoteError::Protocol {
        op,
        path,
        reason: format!("unexpected response {response:?}"),
    }
}

macro_rules! expect {
    ($response:expr, $op:literal, $path:expr, $pattern:pat => $value:expr) => {
        match $response {
            $pattern => Ok($value),
            other => Err(unexpected($op, $path, other)),
        }
    };
}

#[async_trait]
impl<E: Exchange> Remote for E {
    async fn lstat(&self, path: &[u8]) -> Result<Attr> {
        let r = call_path(self, Request::Lstat { path: path_buf(path) }, path).await?;
        expect!(r, "lstat", display_path(path), Response::Attr(a) => a)
    }

    async fn stat(&self, path: &[u8]) -> Result<Attr> {
        let r = call_path(self, Request::Stat { path: path_buf(path) }, path).await?;
        expect!(r, "stat", display_path(path), Response::Attr(a) => a)
    }

    async fn fstat(&self, handle: Handle) -> Result<Attr> {
        let r = call_handle(self, Request::Fstat { handle }, handle).await?;
        expect!(r, "fstat", format!("<handle {handle}>"), Response::Attr(a) => a)
    }

    async fn read_dir_page(&self, path: &[u8], cursor: Option<u64>, max_entries: u32) -> Result<DirPage> {
        let r = call_path(
            self,
            Request::ReadDir {
                path: path_buf(path),
                cursor,
                max_entries,
            },
            path,
        )
        .await?;
        expect!(r, "readdir", display_path(path), Response::DirPage(p) => p)
    }

    async fn list_tree(&self, path: &[u8], cursor: Option<u64>, budget: TreeBudget) -> Result<TreePage> {
        if !self.peer_has("tree") {
            return crate::remote::tree_from_page(self, path, cursor, budget).await;
        }
        let r = call_path(
            self,
            Request::ListTree {
                path: path_buf(path),
                cursor,
                budget,
            },
            path,
        )
        .await?;
        expect!(r, "listtree", display_path(path), Response::Tree(t) => t)
    }

    async fn open(&self, path: &[u8], flags: u32, mode: u32, owner: Option<Owner>) -> Result<(Handle, Attr)> {
        let r = call_path(
            self,
            Request::Open {
                path: path_buf(path),
                flags,
                mode,
                owner,
            },
            path,
        )
        .await?;
        expect!(r, "open", display_path(path), Response::Opened { handle, attr } => (handle, attr))
    }

    async fn open_read(&self, path: &[u8], flags: u32, prefetch: u32) -> Result<(Handle, Attr, Vec<u8>)> {
        let r = call_path(
            self,
            Request::OpenRead {
                path: path_buf(path),
                flags,
                prefetch,
            },
            path,
        )
        .await?;
        expect!(r, "open", display_path(path), Response::OpenedRead { handle, attr, data } => (handle, attr, data))
    }

    async fn read(&self, handle: Handle, offset: u64, len: u32) -> Result<Vec<u8>> {
        let r = call_handle(self, Request::Read { handle, offset, len }, handle).await?;
        expect!(r, "read", format!("<handle {handle}>"), Response::Data(d) => d)
    }

    async fn write(&self, handle: Handle, offset: u64, data: Bytes) -> Result<u32> {
        let describe = || format!("<handle {handle}>");
        let r = self.exchange_write(handle, offset, data, &describe).await;
        let r = answer("write", &describe, r)?;
        expect!(r, "write", describe(), Response::Written(n) => n)
    }

    async fn fsync(&self, handle: Handle, datasync: bool) -> Result<()> {
        let r = call_handle(self, Request::Fsync { handle, datasync }, handle).await?;
        expect!(r, "fsync", format!("<handle {handle}>"), Response::Done => ())
    }

    async fn close(&self, handle: Handle) -> Result<()> {
        let r = call_handle(self, Request::Close { handle }, handle).await?;
        expect!(r, "close", format!("<handle {handle}>"), Response::Done => ())
    }

    async fn setattr(&self, target: Target, attr: SetAttr) -> Result<Attr> {
        let describe = match &target {
            Target::Path(p) => display_path(p),
            Target::Handle(h) => format!("<handle {h}>"),
        };
        let r = call(self, Request::Setattr { target, attr }, &|| describe.clone()).await?;
        expect!(r, "setattr", describe, Response::Attr(a) => a)
    }

    async fn mkdir(&self, path: &[u8], mode: u32, owner: Option<Owner>) -> Result<Attr> {
        let r = call_path(
            self,
            Request::Mkdir {
                path: path_buf(path),
                mode,
                owner,
            },
            path,
        )
        .await?;
        expect!(r, "mkdir", display_path(path), Response::Attr(a) => a)
    }

    async fn mknod(
        &self,
        path: &[u8],
        mode: u32,
        rdev_major: u32,
        rdev_minor: u32,
        owner: Option<Owner>,
    ) -> Result<Attr> {
        let request = Request::Mknod {
            path: path_buf(path),
            mode,
            rdev_major,
            rdev_minor,
            owner,
        };
        let r = call_path(self, request, path).await?;
        expect!(r, "mknod", display_path(path), Response::Attr(a) => a)
    }

    async fn unlink(&self, path: &[u8]) -> Result<()> {
        let r = call_path(self, Request::Unlink { path: path_buf(path) }, path).await?;
        expect!(r, "unlink", display_path(path), Response::Done => ())
    }

    async fn rmdir(&self, path: &[u8]) -> Result<()> {
        let r = call_path(self, Request::Rmdir { path: path_buf(path) }, path).await?;
        expect!(r, "rmdir", display_path(path), Response::Done => ())
    }

    async fn rename(&self, from: &[u8], to: &[u8], flags: RenameFlags) -> Result<()> {
        let request = Request::Rename {
            from: path_buf(from),
            to: path_buf(to),
            flags,
        };
        let describe = || format!("{} -> {}", display_path(from), display_path(to));
        let r = call(self, request, &describe).await?;
        expect!(r, "rename", describe(), Response::Done => ())
    }

    async fn symlink(&self, target: &[u8], path: &[u8], owner: Option<Owner>) -> Result<Attr> {
        let request = Request::Symlink {
            target: path_buf(target),
            path: path_buf(path),
            owner,
        };
        let r = call_path(self, request, path).await?;
        expect!(r, "symlink", display_path(path), Response::Attr(a) => a)
    }

    async fn readlink(&self, path: &[u8]) -> Result<Vec<u8>> {
        let r = call_path(self, Request::Readlink { path: path_buf(path) }, path).await?;
        expect!(r, "readlink", display_path(path), Response::Bytes(b) => b)
    }

    async fn link(&self, from: &[u8], to: &[u8]) -> Result<Attr> {
        let request = Request::Link {
            from: path_buf(from),
            to: path_buf(to),
        };
        let describe = || format!("{} -> {}", display_path(from), display_path(to));
        let r = call(self, request, &describe).await?;
        expect!(r, "link", describe(), Response::Attr(a) => a)
    }

    async fn statfs(&self, path: &[u8]) -> Result<StatFs> {
        let r = call_path(self, Request::Statfs { path: path_buf(path) }, path).await?;
        expect!(r, "statfs", display_path(path), Response::StatFs(s) => s)
    }

    async fn getxattr(&self, path: &[u8], name: &[u8]) -> Result<Vec<u8>> {
        let r = call_path(
            self,
            Request::GetXattr {
                path: path_buf(path),
                name: path_buf(name),
            },
            path,
        )
        .await?;
        expect!(r, "getxattr", display_path(path), Response::Bytes(b) => b)
    }

    async fn setxattr(&self, path: &[u8], name: &[u8], value: &[u8], mode: XattrMode) -> Result<()> {
        let request = Request::SetXattr {
            path: path_buf(path),
            name: path_buf(name),
            value: path_buf(value),
            mode,
        };
        let r = call_path(self, request, path).await?;
        expect!(r, "setxattr", display_path(path), Response::Done => ())
    }

    async fn listxattr(&self, path: &[u8]) -> Result<Vec<Vec<u8>>> {
        let r = call_path(self, Request::ListXattr { path: path_buf(path) }, path).await?;
        expect!(r, "listxattr", display_path(path), Response::Names(n) => n.into_iter().map(|b| b.into_vec()).collect())
    }

    async fn removexattr(&self, path: &[u8], name: &[u8]) -> Result<()> {
        let request = Request::RemoveXattr {
            path: path_buf(path),
            name: path_buf(name),
        };
        let r = call_path(self, request, path).await?;
        expect!(r, "removexattr", display_path(path), Response::Done => ())
    }

    async fn fallocate(&self, handle: Handle, offset: u64, len: u64, mode: u32) -> Result<()> {
        let r = call_handle(
            self,
            Request::Fallocate {
                handle,
                offset,
                len,
                mode,
            },
            handle,
        )
        .await?;
        expect!(r, "fallocate", format!("<handle {handle}>"), Response::Done => ())
    }

    async fn lseek(&self, handle: Handle, offset: u64, whence: SeekWhence) -> Result<u64> {
        let r = call_handle(
            self,
            Request::Lseek {
                handle,
                offset,
                whence,
            },
            handle,
        )
        .await?;
        expect!(r, "lseek", format!("<handle {handle}>"), Response::Offset(o) => o)
    }

    async fn ping(&self) -> Result<()> {
        let r = call(self, Request::Ping, &|| "<ping>".to_string()).await?;
        expect!(r, "ping", "<ping>".to_string(), Response::Done => ())
    }

    async fn realpath(&self, path: &[u8]) -> Result<Vec<u8>> {
        let r = call_path(self, Request::Realpath { path: path_buf(path) }, path).await?;
        expect!(r, "realpath", display_path(path), Response::Bytes(b) => b)
    }

    fn exactly_once(&self) -> bool {
        Exchange::exactly_once(self)
    }

    async fn access(&self, path: &[u8], mask: u32) -> Result<()> {
        let r = call_path(
            self,
            Request::Access {
                path: path_buf(path),
                mask,
            },
            path,
        )
        .await?;
        expect!(r, "access", display_path(path), Response::Done => ())
    }
}
