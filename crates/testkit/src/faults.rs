//! Fault injection as [`Remote`] wrappers: each wraps any remote (an
//! in-process agent, a [`crate::direct::DirectAgent`], another wrapper) and
//! passes every call through an [`Interceptor`] that may fail it, hold it
//! up or cut it off. Interceptors that count, record or change answers
//! instead are in [`crate::observe`].
//!
//! - [`Faulty`] fails calls with an errno: per operation, after N calls,
//!   for a number of calls, or by predicate ([`Fault`]).
//! - [`Delayed`] holds calls up before they reach the remote, per operation
//!   or by predicate ([`Delays`]).
//! - [`Disconnecting`] behaves as a connection that dies ([`Connection`]):
//!   from a point on, every call, those in flight included, fails with
//!   [`RemoteError::Disconnected`] (errno ENOTCONN), as [`AgentClient`]'s
//!   calls do once the agent's stream has ended; or a chosen call takes
//!   effect and then its answer is lost with the connection
//!   ([`Connection::lose_answer_of`]).
//!
//! The wrappers nest: `Delayed::new(Faulty::new(remote))`. Each dereferences
//! to its interceptor, so `faulty.inject(...)` and `link.disconnect()` are
//! called on the wrapper itself, while tests run.
//!
//! [`AgentClient`]: yonder_remote::AgentClient

use async_trait::async_trait;
use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use yonder_proto::{
    Attr, DirPage, Errno, Handle, Owner, RenameFlags, SeekWhence, SetAttr, StatFs, Target, TreeBudget,
    TreePage, XattrMode,
};
use yonder_remote::{Bytes, Remote, RemoteError, Result};

/// The [`Remote`] methods, one per call an interceptor sees.
/// (`read_dir_all` is made of `ReadDir` calls.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Lstat,
    Stat,
    Fstat,
    ReadDir,
    Open,
    OpenRead,
    Read,
    Write,
    Fsync,
    Close,
    Setattr,
    Mkdir,
    Mknod,
    Unlink,
    Rmdir,
    Rename,
    Symlink,
    Readlink,
    Link,
    Statfs,
    GetXattr,
    SetXattr,
    ListXattr,
    RemoveXattr,
    Access,
    Fallocate,
    Lseek,
    Ping,
    Realpath,
    ListTree,
}

impl Op {
    /// The operation's name in errors, as [`yonder_proto::Request::op`]
    /// spells it.
    pub fn name(self) -> &'static str {
        match self {
            Op::Lstat => "lstat",
            Op::Stat => "stat",
            Op::Fstat => "fstat",
            Op::ReadDir => "readdir",
            Op::ListTree => "listtree",
            Op::Open | Op::OpenRead => "open",
            Op::Read => "read",
            Op::Write => "write",
            Op::Fsync => "fsync",
            Op::Close => "close",
            Op::Setattr => "setattr",
            Op::Mkdir => "mkdir",
            Op::Mknod => "mknod",
            Op::Unlink => "unlink",
            Op::Rmdir => "rmdir",
            Op::Rename => "rename",
            Op::Symlink => "symlink",
            Op::Readlink => "readlink",
            Op::Link => "link",
            Op::Statfs => "statfs",
            Op::GetXattr => "getxattr",
            Op::SetXattr => "setxattr",
            Op::ListXattr => "listxattr",
            Op::RemoveXattr => "removexattr",
            Op::Access => "access",
            Op::Fallocate => "fallocate",
            Op::Lseek => "lseek",
            Op::Ping => "ping",
            Op::Realpath => "realpath",
        }
    }
}

/// One call on its way to the remote, as an interceptor sees it.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    pub op: Op,
    /// The path the call acts on (for `rename` and `link`, the source; for
    /// `symlink`, the link being created).
    pub path: Option<&'a [u8]>,
    /// The second path of `rename` and `link`.
    pub to: Option<&'a [u8]>,
    /// The handle the call acts on.
    pub handle: Option<Handle>,
    /// The data a `write` carries, the caller's buffer itself.
    pub data: Option<&'a Bytes>,
    /// The bytes a `read` asks for, or an `open_read` asks to come with
    /// the handle.
    pub len: Option<u32>,
}

impl<'a> Call<'a> {
    fn path(op: Op, path: &'a [u8]) -> Call<'a> {
        Call {
            op,
            path: Some(path),
            to: None,
            handle: None,
            data: None,
            len: None,
        }
    }

    fn pair(op: Op, from: &'a [u8], to: &'a [u8]) -> Call<'a> {
        Call {
            op,
            path: Some(from),
            to: Some(to),
            handle: None,
            data: None,
            len: None,
        }
    }

    fn bare(op: Op) -> Call<'a> {
        Call {
            op,
            path: None,
            to: None,
            handle: None,
            data: None,
            len: None,
        }
    }

    fn handle(op: Op, handle: Handle) -> Call<'a> {
        Call {
            op,
            path: None,
            to: None,
            handle: Some(handle),
            data: None,
            len: None,
        }
    }

    /// Whether the call names `path` (as its path or its second path).
    pub fn names(&self, path: &[u8]) -> bool {
        self.path == Some(path) || self.to == Some(path)
    }

    /// The subject as [`AgentClient`](yonder_remote::AgentClient) names it
    /// in errors: a path (`.` for the root), `from -> to`, or `<handle N>`.
    pub fn describe(&self) -> String {
        let show = |p: &[u8]| {
            if p.is_empty() {
                ".".to_string()
            } else {
                String::from_utf8_lossy(p).into_owned()
            }
        };
        match (self.path, self.to, self.handle) {
            (Some(from), Some(to), _) => format!("{} -> {}", show(from), show(to)),
            (Some(path), None, _) => show(path),
            (None, _, Some(handle)) => format!("<handle {handle}>"),
            (None, _, None) => String::new(),
        }
    }
}

/// Decides the fate of each call: runs `next` (the call on the wrapped
/// remote, not started until awaited), or not, or later, or races it.
pub trait Interceptor: Send + Sync + 'static {
    fn intercept<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        next: impl Future<Output = Result<T>> + Send + 'a,
    ) -> impl Future<Output = Result<T>> + Send + 'a;

    /// The attributes an answer carries, as the caller is shown them: as
    /// they are, unless the interceptor stands for a remote that knows
    /// less ([`crate::observe::NoInodeNumbers`]).
    fn shown_attr(&self, attr: Attr) -> Attr {
        attr
    }
}

/// A [`Remote`] that passes every call through an [`Interceptor`] to the
/// remote it wraps. Dereferences to the interceptor.
pub struct Intercepted<I> {
    inner: Arc<dyn Remote>,
    interceptor: I,
}

impl<I: Interceptor + Default> Intercepted<I> {
    /// Wraps `inner` with an interceptor that, until told otherwise, lets
    /// every call through unchanged.
    pub fn new(inner: Arc<dyn Remote>) -> Arc<Self> {
        Self::with(inner, I::default())
    }
}

impl<I: Interceptor> Intercepted<I> {
    pub fn with(inner: Arc<dyn Remote>, interceptor: I) -> Arc<Self> {
        Arc::new(Intercepted { inner, interceptor })
    }

    /// The wrapped remote.
    pub fn inner(&self) -> &Arc<dyn Remote> {
        &self.inner
    }

    fn shown(&self, attr: Attr) -> Attr {
        self.interceptor.shown_attr(attr)
    }
}

impl<I> Deref for Intercepted<I> {
    type Target = I;
    fn deref(&self) -> &I {
        &self.interceptor
    }
}

#[async_trait]
impl<I: Interceptor> Remote for Intercepted<I> {
    async fn lstat(&self, path: &[u8]) -> Result<Attr> {
        let call = Call::path(Op::Lstat, path);
        self.interceptor
            .intercept(call, self.inner.lstat(path))
            .await
            .map(|attr| self.shown(attr))
    }

    async fn stat(&self, path: &[u8]) -> Result<Attr> {
        let call = Call::path(Op::Stat, path);
        self.interceptor
            .intercept(call, self.inner.stat(path))
            .await
            .map(|attr| self.shown(attr))
    }

    async fn fstat(&self, handle: Handle) -> Result<Attr> {
        let call = Call::handle(Op::Fstat, handle);
        self.interceptor
            .intercept(call, self.inner.fstat(handle))
            .await
            .map(|attr| self.shown(attr))
    }

    async fn read_dir_page(&self, path: &[u8], cursor: Option<u64>, max_entries: u32) -> Result<DirPage> {
        let call = Call::path(Op::ReadDir, path);
        let next = self.inner.read_dir_page(path, cursor, max_entries);
        let mut page = self.interceptor.intercept(call, next).await?;
        for entry in &mut page.entries {
            entry.attr = entry.attr.map(|attr| self.shown(attr));
        }
        Ok(page)
    }

    async fn list_tree(&self, path: &[u8], cursor: Option<u64>, budget: TreeBudget) -> Result<TreePage> {
        let call = Call::path(Op::ListTree, path);
        let next = self.inner.list_tree(path, cursor, budget);
        let mut tree = self.interceptor.intercept(call, next).await?;
        for entry in tree.dirs.iter_mut().flat_map(|d| d.entries.iter_mut()) {
            entry.entry.attr = entry.entry.attr.map(|attr| self.shown(attr));
        }
        Ok(tree)
    }

    async fn open(&self, path: &[u8], flags: u32, mode: u32, owner: Option<Owner>) -> Result<(Handle, Attr)> {
        let call = Call::path(Op::Open, path);
        let next = self.inner.open(path, flags, mode, owner);
        let (handle, attr) = self.interceptor.intercept(call, next).await?;
        Ok((handle, self.shown(attr)))
    }

    async fn open_read(&self, path: &[u8], flags: u32, prefetch: u32) -> Result<(Handle, Attr, Vec<u8>)> {
        let call = Call {
            len: Some(prefetch),
            ..Call::path(Op::OpenRead, path)
        };
        let next = self.inner.open_read(path, flags, prefetch);
        let (handle, attr, data) = self.interceptor.intercept(call, next).await?;
        Ok((handle, self.shown(attr), data))
    }

    async fn read(&self, handle: Handle, offset: u64, len: u32) -> Result<Vec<u8>> {
        let call = Call {
            len: Some(len),
            ..Call::handle(Op::Read, handle)
        };
        let next = self.inner.read(handle, offset, len);
        self.interceptor.intercept(call, next).await
    }

    async fn write(&self, handle: Handle, offset: u64, data: Bytes) -> Result<u32> {
        let call = Call {
            data: Some(&data),
            ..Call::handle(Op::Write, handle)
        };
        let next = self.inner.write(handle, offset, data.clone());
        self.interceptor.intercept(call, next).await
    }

    async fn fsync(&self, handle: Handle, datasync: bool) -> Result<()> {
        let call = Call::handle(Op::Fsync, handle);
        let next = self.inner.fsync(handle, datasync);
        self.interceptor.intercept(call, next).await
    }

    async fn close(&self, handle: Handle) -> Result<()> {
        let call = Call::handle(Op::Close, handle);
        self.interceptor.intercept(call, self.inner.close(handle)).await
    }

    async fn setattr(&self, target: Target, attr: SetAttr) -> Result<Attr> {
        let call = match &target {
            Target::Path(path) => Call::path(Op::Setattr, path),
            Target::Handle(handle) => Call::handle(Op::Setattr, *handle),
        };
        let next = self.inner.setattr(target.clone(), attr);
        self.interceptor
            .intercept(call, next)
            .await
            .map(|attr| self.shown(attr))
    }

    async fn mkdir(&self, path: &[u8], mode: u32, owner: Option<Owner>) -> Result<Attr> {
        let call = Call::path(Op::Mkdir, path);
        let next = self.inner.mkdir(path, mode, owner);
        self.interceptor
            .intercept(call, next)
            .await
            .map(|attr| self.shown(attr))
    }

    async fn mknod(
        &self,
        path: &[u8],
        mode: u32,
        rdev_major: u32,
        rdev_minor: u32,
        owner: Option<Owner>,
    ) -> Result<Attr> {
        let call = Call::path(Op::Mknod, path);
        let next = self.inner.mknod(path, mode, rdev_major, rdev_minor, owner);
        self.interceptor
            .intercept(call, next)
            .await
            .map(|attr| self.shown(attr))
    }

    async fn unlink(&self, path: &[u8]) -> Result<()> {
        let call = Call::path(Op::Unlink, path);
        self.interceptor.intercept(call, self.inner.unlink(path)).await
    }

    async fn rmdir(&self, path: &[u8]) -> Result<()> {
        let call = Call::path(Op::Rmdir, path);
        self.interceptor.intercept(call, self.inner.rmdir(path)).await
    }

    async fn rename(&self, from: &[u8], to: &[u8], flags: RenameFlags) -> Result<()> {
        let call = Call::pair(Op::Rename, from, to);
        let next = self.inner.rename(from, to, flags);
        self.interceptor.intercept(call, next).await
    }

    async fn symlink(&self, target: &[u8], path: &[u8], owner: Option<Owner>) -> Result<Attr> {
        let call = Call::path(Op::Symlink, path);
        let next = self.inner.symlink(target, path, owner);
        self.interceptor
            .intercept(call, next)
            .await
            .map(|attr| self.shown(attr))
    }

    async fn readlink(&self, path: &[u8]) -> Result<Vec<u8>> {
        let call = Call::path(Op::Readlink, path);
        self.interceptor.intercept(call, self.inner.readlink(path)).await
    }

    async fn link(&self, from: &[u8], to: &[u8]) -> Result<Attr> {
        let call = Call::pair(Op::Link, from, to);
        self.interceptor
            .intercept(call, self.inner.link(from, to))
            .await
            .map(|attr| self.shown(attr))
    }

    async fn statfs(&self, path: &[u8]) -> Result<StatFs> {
        let call = Call::path(Op::Statfs, path);
        self.interceptor.intercept(call, self.inner.statfs(path)).await
    }

    async fn getxattr(&self, path: &[u8], name: &[u8]) -> Result<Vec<u8>> {
        let call = Call::path(Op::GetXattr, path);
        let next = self.inner.getxattr(path, name);
        self.interceptor.intercept(call, next).await
    }

    async fn setxattr(&self, path: &[u8], name: &[u8], value: &[u8], mode: XattrMode) -> Result<()> {
        let call = Call::path(Op::SetXattr, path);
        let next = self.inner.setxattr(path, name, value, mode);
        self.interceptor.intercept(call, next).await
    }

    async fn listxattr(&self, path: &[u8]) -> Result<Vec<Vec<u8>>> {
        let call = Call::path(Op::ListXattr, path);
        self.interceptor.intercept(call, self.inner.listxattr(path)).await
    }

    async fn removexattr(&self, path: &[u8], name: &[u8]) -> Result<()> {
        let call = Call::path(Op::RemoveXattr, path);
        let next = self.inner.removexattr(path, name);
        self.interceptor.intercept(call, next).await
    }

    async fn access(&self, path: &[u8], mask: u32) -> Result<()> {
        let call = Call::path(Op::Access, path);
        self.interceptor
            .intercept(call, self.inner.access(path, mask))
            .await
    }

    async fn fallocate(&self, handle: Handle, offset: u64, len: u64, mode: u32) -> Result<()> {
        let call = Call::handle(Op::Fallocate, handle);
        let next = self.inner.fallocate(handle, offset, len, mode);
        self.interceptor.intercept(call, next).await
    }

    async fn lseek(&self, handle: Handle, offset: u64, whence: SeekWhence) -> Result<u64> {
        let call = Call::handle(Op::Lseek, handle);
        let next = self.inner.lseek(handle, offset, whence);
        self.interceptor.intercept(call, next).await
    }

    async fn ping(&self) -> Result<()> {
        let call = Call::bare(Op::Ping);
        self.interceptor.intercept(call, self.inner.ping()).await
    }

    fn exactly_once(&self) -> bool {
        self.inner.exactly_once()
    }

    async fn realpath(&self, path: &[u8]) -> Result<Vec<u8>> {
        let call = Call::path(Op::Realpath, path);
        self.interceptor.intercept(call, self.inner.realpath(path)).await
    }
}

type Predicate = Box<dyn Fn(&Call<'_>) -> bool + Send + Sync>;

// ---------------------------------------------------------------------------
// Errors

/// One rule of a [`Faulty`] remote: which calls fail, with what errno.
pub struct Fault {
    matches: Predicate,
    errno: Errno,
    /// Matching calls let through before the first failure.
    skip: u64,
    /// How many matching calls fail (after `skip`); `None`: all.
    limit: Option<u64>,
    seen: AtomicU64,
}

impl Fault {
    /// Fails every call of `op`.
    pub fn on(op: Op, errno: Errno) -> Fault {
        Fault::when(move |call| call.op == op, errno)
    }

    /// Fails every call, whatever its operation.
    pub fn on_every_call(errno: Errno) -> Fault {
        Fault::when(|_| true, errno)
    }

    /// Fails the calls `matches` picks.
    pub fn when(matches: impl Fn(&Call<'_>) -> bool + Send + Sync + 'static, errno: Errno) -> Fault {
        Fault {
            matches: Box::new(matches),
            errno,
            skip: 0,
            limit: None,
            seen: AtomicU64::new(0),
        }
    }

    /// Lets the first `n` matching calls through, failing from the next.
    pub fn after(mut self, n: u64) -> Fault {
        self.skip = n;
        self
    }

    /// Fails only `n` matching calls, then lets them through again.
    pub fn times(mut self, n: u64) -> Fault {
        self.limit = Some(n);
        self
    }

    /// Counts a matching call; whether it fails.
    fn fires(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        n >= self.skip && self.limit.is_none_or(|limit| n - self.skip < limit)
    }
}

/// Identifies an injected [`Fault`], to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultId(u64);

/// The interceptor of [`Faulty`]: a list of [`Fault`]s, tried in the order
/// they were injected; the first that fires fails the call before it
/// reaches the remote (which is left unchanged), as
/// [`RemoteError::Os`] with the fault's errno.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<(FaultId, Arc<Fault>)>>,
    next_id: AtomicU64,
    injected: AtomicU64,
}

impl Faults {
    pub fn inject(&self, fault: Fault) -> FaultId {
        let id = FaultId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.rules.lock().unwrap().push((id, Arc::new(fault)));
        id
    }

    /// Every call of `op` fails with `errno` from now on.
    pub fn fail(&self, op: Op, errno: Errno) -> FaultId {
        self.inject(Fault::on(op, errno))
    }

    pub fn remove(&self, id: FaultId) {
        self.rules.lock().unwrap().retain(|(rule, _)| *rule != id);
    }

    /// Removes every fault: calls pass again.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// How many calls have been failed so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    fn check(&self, call: &Call<'_>) -> Option<Errno> {
        let rules = self.rules.lock().unwrap();
        let errno = rules
            .iter()
            .find(|(_, fault)| (fault.matches)(call) && fault.fires())
            .map(|(_, fault)| fault.errno)?;
        self.injected.fetch_add(1, Ordering::Relaxed);
        Some(errno)
    }
}

impl Interceptor for Faults {
    fn intercept<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        next: impl Future<Output = Result<T>> + Send + 'a,
    ) -> impl Future<Output = Result<T>> + Send + 'a {
        let injected = self.check(&call).map(|errno| RemoteError::Os {
            op: call.op.name(),
            path: call.describe(),
            errno,
            detail: "injected by a test".into(),
        });
        async move {
            match injected {
                Some(err) => Err(err),
                None => next.await,
            }
        }
    }
}

/// A remote whose calls fail on demand; see [`Faults`] and [`Fault`].
pub type Faulty = Intercepted<Faults>;

// ---------------------------------------------------------------------------
// Delays

/// The interceptor of [`Delayed`]: holds each call up by the delay of the
/// first rule that matches it, before it reaches the remote (the remote
/// changes late, as behind a slow link). Calls not matched go at once, so
/// a delayed call is overtaken by later ones.
#[derive(Default)]
pub struct Delays {
    rules: Mutex<Vec<(Arc<Predicate>, Duration)>>,
    /// Calls carried out at once whose answers are held up (the remote
    /// changed; the answer is still on its way back).
    late_answers: Mutex<Vec<(Arc<Predicate>, Duration)>>,
    delayed: AtomicU64,
}

impl Delays {
    /// Holds every call of `op` up by `delay`.
    pub fn delay(&self, op: Op, delay: Duration) {
        self.delay_when(move |call| call.op == op, delay);
    }

    /// Holds every call up by `delay`: a link's latency.
    pub fn delay_every_call(&self, delay: Duration) {
        self.delay_when(|_| true, delay);
    }

    pub fn delay_when(&self, matches: impl Fn(&Call<'_>) -> bool + Send + Sync + 'static, delay: Duration) {
        self.rules
            .lock()
            .unwrap()
            .push((Arc::new(Box::new(matches)), delay));
    }

    /// Carries every call of `op` out at once but holds its answer up by
    /// `delay`: what the remote pushes of the change arrives first.
    pub fn answer_late(&self, op: Op, delay: Duration) {
        self.late_answers
            .lock()
            .unwrap()
            .push((Arc::new(Box::new(move |call: &Call<'_>| call.op == op)), delay));
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
        self.late_answers.lock().unwrap().clear();
    }

    /// How many calls have been held up so far.
    pub fn delayed(&self) -> u64 {
        self.delayed.load(Ordering::Relaxed)
    }

    fn delay_of(&self, call: &Call<'_>) -> Option<Duration> {
        Self::matching(&self.rules, call, &self.delayed)
    }

    fn answer_delay_of(&self, call: &Call<'_>) -> Option<Duration> {
        Self::matching(&self.late_answers, call, &self.delayed)
    }

    fn matching(
        rules: &Mutex<Vec<(Arc<Predicate>, Duration)>>,
        call: &Call<'_>,
        delayed: &AtomicU64,
    ) -> Option<Duration> {
        let rules = rules.lock().unwrap();
        let delay = rules
            .iter()
            .find(|(matches, _)| matches(call))
            .map(|(_, delay)| *delay)?;
        delayed.fetch_add(1, Ordering::Relaxed);
        Some(delay)
    }
}

impl Interceptor for Delays {
    fn intercept<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        next: impl Future<Output = Result<T>> + Send + 'a,
    ) -> impl Future<Output = Result<T>> + Send + 'a {
        let delay = self.delay_of(&call);
        let answer_delay = self.answer_delay_of(&call);
        async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            let answer = next.await;
            if let Some(delay) = answer_delay {
                tokio::time::sleep(delay).await;
            }
            answer
        }
    }
}

/// A remote whose calls are held up on demand; see [`Delays`].
pub type Delayed = Intercepted<Delays>;

// ---------------------------------------------------------------------------
// Disconnection

/// Why calls fail once the connection is cut: what `AgentClient` says when
/// the agent's stream ends.
pub const DISCONNECT_REASON: &str = "agent closed the connection";

/// The interceptor of [`Disconnecting`]: a connection that works until it
/// is cut, and from then on fails every call, those in flight included, with
/// [`RemoteError::Disconnected`] (errno ENOTCONN), as `AgentClient` does once
/// the agent's stream ends. A call cut in flight may or may not have taken
/// effect on the remote, as with a real connection. There is no reconnecting.
pub struct Connection {
    cut: watch::Sender<bool>,
    calls: AtomicU64,
    /// The number of the call (counted from the first) that cuts.
    cut_at: AtomicU64,
    trigger: Mutex<Option<Predicate>>,
    /// Picks the call whose answer is lost: it runs on the remote, then
    /// the connection is cut.
    after: Mutex<Option<Predicate>>,
}

impl Default for Connection {
    fn default() -> Connection {
        Connection {
            cut: watch::Sender::new(false),
            calls: AtomicU64::new(0),
            cut_at: AtomicU64::new(u64::MAX),
            trigger: Mutex::new(None),
            after: Mutex::new(None),
        }
    }
}

impl Connection {
    /// Cuts the connection now: calls in flight fail, and every later one.
    pub fn disconnect(&self) {
        self.cut.send_replace(true);
    }

    /// Lets `n` more calls through; the next one cuts the connection (and
    /// fails without reaching the remote).
    pub fn disconnect_after(&self, n: u64) {
        let now = self.calls.load(Ordering::SeqCst);
        self.cut_at.store(now.saturating_add(n), Ordering::SeqCst);
    }

    /// The first call `matches` picks cuts the connection (and fails
    /// without reaching the remote).
    pub fn disconnect_when(&self, matches: impl Fn(&Call<'_>) -> bool + Send + Sync + 'static) {
        *self.trigger.lock().unwrap() = Some(Box::new(matches));
    }

    /// The first call `matches` picks runs on the remote, and then the
    /// connection is cut before its answer arrives: the call fails with
    /// [`RemoteError::Disconnected`] although it took effect, the case a
    /// caller cannot tell from a call that never arrived.
    pub fn lose_answer_of(&self, matches: impl Fn(&Call<'_>) -> bool + Send + Sync + 'static) {
        *self.after.lock().unwrap() = Some(Box::new(matches));
    }

    pub fn is_disconnected(&self) -> bool {
        *self.cut.borrow()
    }

    /// Counts the call; whether it finds (or makes) the connection cut.
    fn cut_by(&self, call: &Call<'_>) -> bool {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let triggered = n >= self.cut_at.load(Ordering::SeqCst)
            || self
                .trigger
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|matches| matches(call));
        if triggered {
            self.disconnect();
        }
        self.is_disconnected()
    }
}

impl Interceptor for Connection {
    fn intercept<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        next: impl Future<Output = Result<T>> + Send + 'a,
    ) -> impl Future<Output = Result<T>> + Send + 'a {
        let disconnected = move || RemoteError::Disconnected {
            op: call.op.name(),
            path: call.describe(),
            reason: DISCONNECT_REASON.into(),
        };
        let cut = self.cut_by(&call);
        let lose_answer = !cut && {
            let mut after = self.after.lock().unwrap();
            let picked = after.as_ref().is_some_and(|matches| matches(&call));
            if picked {
                *after = None;
            }
            picked
        };
        let mut watch = self.cut.subscribe();
        async move {
            // A call made before the cut but first run after it must not
            // reach the remote: a dead connection sends nothing, and a test
            // that waits for the old agent to fall idle relies on that.
            if cut || self.is_disconnected() {
                return Err(disconnected());
            }
            if lose_answer {
                let _ = next.await;
                self.disconnect();
                return Err(disconnected());
            }
            tokio::select! {
                biased;
                result = next => result,
                _ = watch.wait_for(|cut| *cut) => Err(disconnected()),
            }
        }
    }
}

/// A remote whose connection can be cut; see [`Connection`].
pub type Disconnecting = Intercepted<Connection>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::InProcessAgent;
    use std::time::Instant;

    fn errno<T: std::fmt::Debug>(result: Result<T>) -> Errno {
        result.expect_err("the call should fail").errno()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn faulty_fails_the_chosen_operation_before_it_reaches_the_remote() {
        let agent = InProcessAgent::start().await;
        let remote = Faulty::new(agent.remote());
        let fault = remote.fail(Op::Mkdir, Errno::EROFS);
        let err = remote.mkdir(b"d", 0o755, None).await.unwrap_err();
        assert_eq!(err.errno(), Errno::EROFS);
        assert_eq!(err.to_string(), "mkdir d: Read-only file system");
        assert!(!agent.disk("d").exists(), "the remote never saw the call");
        remote.lstat(b"").await.unwrap();
        assert_eq!(remote.injected(), 1);
        remote.remove(fault);
        remote.mkdir(b"d", 0o755, None).await.unwrap();
        assert!(agent.disk("d").is_dir());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn faulty_counts_calls_after_and_times() {
        let agent = InProcessAgent::start().await;
        let remote = Faulty::new(agent.remote());
        // The third and fourth lstat fail; the rest pass.
        remote.inject(Fault::on(Op::Lstat, Errno::EIO).after(2).times(2));
        let mut outcomes = Vec::new();
        for _ in 0..6 {
            outcomes.push(remote.lstat(b"").await.is_ok());
            remote.stat(b"").await.unwrap();
        }
        assert_eq!(outcomes, [true, true, false, false, true, true]);
        assert_eq!(remote.injected(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn faulty_picks_calls_by_predicate() {
        let agent = InProcessAgent::start().await;
        std::fs::write(agent.disk("secret"), b"s").unwrap();
        std::fs::write(agent.disk("a"), b"a").unwrap();
        let remote = Faulty::new(agent.remote());
        remote.inject(Fault::when(|call| call.names(b"secret"), Errno::EACCES));
        assert_eq!(errno(remote.lstat(b"secret").await), Errno::EACCES);
        assert_eq!(
            errno(remote.rename(b"a", b"secret", RenameFlags::default()).await),
            Errno::EACCES
        );
        assert_eq!(remote.lstat(b"a").await.unwrap().size, 1);
        // One handle's writes fail, another's pass.
        let (bad, _) = remote.open(b"a", 1, 0, None).await.unwrap();
        let (good, _) = remote.open(b"a", 1, 0, None).await.unwrap();
        remote.inject(Fault::when(move |call| call.handle == Some(bad), Errno::ENOSPC));
        assert_eq!(
            errno(
                remote
                    .write(bad, 0, yonder_remote::Bytes::from_static(b"x"))
                    .await
            ),
            Errno::ENOSPC
        );
        assert_eq!(
            remote
                .write(good, 0, yonder_remote::Bytes::from_static(b"y"))
                .await
                .unwrap(),
            1
        );
        remote.clear();
        remote.close(bad).await.unwrap();
        remote.close(good).await.unwrap();
        assert_eq!(std::fs::read(agent.disk("a")).unwrap(), b"y");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delayed_holds_calls_up_and_later_ones_overtake_them() {
        let agent = InProcessAgent::start().await;
        std::fs::write(agent.disk("slow"), b"s").unwrap();
        std::fs::write(agent.disk("fast"), b"f").unwrap();
        let remote = Delayed::new(agent.remote());
        let delay = Duration::from_secs(2);
        remote.delay_when(|call| call.names(b"slow"), delay);
        let start = Instant::now();
        let slow = tokio::spawn({
            let remote = remote.clone();
            async move {
                remote.lstat(b"slow").await.unwrap();
                start.elapsed()
            }
        });
        remote.lstat(b"fast").await.unwrap();
        assert!(start.elapsed() < delay, "the fast call was not held up");
        assert!(!slow.is_finished());
        assert!(slow.await.unwrap() >= delay);
        assert_eq!(remote.delayed(), 1);
        // Latency on every call.
        remote.clear();
        remote.delay_every_call(Duration::from_millis(50));
        let start = Instant::now();
        remote.lstat(b"fast").await.unwrap();
        remote.statfs(b"").await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn disconnecting_after_n_calls_fails_every_later_call_with_enotconn() {
        let agent = InProcessAgent::start().await;
        let remote = Disconnecting::new(agent.remote());
        remote.disconnect_after(2);
        remote.lstat(b"").await.unwrap();
        remote.mkdir(b"one", 0o755, None).await.unwrap();
        assert!(!remote.is_disconnected());
        let err = remote.mkdir(b"two", 0o755, None).await.unwrap_err();
        assert!(matches!(err, RemoteError::Disconnected { .. }), "{err:?}");
        assert_eq!(err.errno(), Errno::ENOTCONN);
        assert!(remote.is_disconnected());
        assert!(agent.disk("one").is_dir() && !agent.disk("two").exists());
        for _ in 0..3 {
            assert_eq!(errno(remote.lstat(b"").await), Errno::ENOTCONN);
        }
        assert_eq!(errno(remote.close(Handle(1)).await), Errno::ENOTCONN);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn disconnecting_fails_calls_in_flight_and_by_predicate() {
        let agent = InProcessAgent::start().await;
        // A call stuck behind a slow link is cut when the connection dies.
        let slow = Delayed::new(agent.remote());
        slow.delay(Op::Lstat, Duration::from_secs(30));
        let remote = Disconnecting::new(slow);
        let pending = tokio::spawn({
            let remote = remote.clone();
            async move { remote.lstat(b"").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        remote.disconnect();
        assert_eq!(errno(pending.await.unwrap()), Errno::ENOTCONN);
        assert!(start.elapsed() < Duration::from_secs(5));
        // The first call a predicate picks cuts the connection.
        let remote = Disconnecting::new(agent.remote());
        remote.disconnect_when(|call| call.op == Op::Write);
        let (h, _) = remote.open(b"f", 1 | 1 << 4, 0o644, None).await.unwrap();
        assert_eq!(
            errno(remote.write(h, 0, yonder_remote::Bytes::from_static(b"x")).await),
            Errno::ENOTCONN
        );
        assert_eq!(errno(remote.statfs(b"").await), Errno::ENOTCONN);
        assert_eq!(std::fs::read(agent.disk("f")).unwrap(), b"");
    }

    /// The wrapper's failures are a real client's after its agent died.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cut_connection_fails_as_a_dead_agent_does() {
        let dead = InProcessAgent::start().await;
        dead.client().lstat(b"").await.unwrap();
        dead.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        let real = loop {
            match dead.client().lstat(b"f").await {
                Err(err) => break err,
                Ok(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
                Ok(_) => panic!("the killed agent still answers"),
            }
        };
        let live = InProcessAgent::start().await;
        let cut = Disconnecting::new(live.remote());
        cut.disconnect();
        let injected = cut.lstat(b"f").await.unwrap_err();
        assert_eq!(injected.errno(), real.errno());
        // Whether the real client had already seen its agent go (NotConnected)
        // or sent the call into the dying connection (Disconnected) is a race;
        // the wrapper always claims the second, the one a caller must treat
        // with more care. Either way the operation and path are named alike.
        let named = |err: &RemoteError| match err {
            RemoteError::Disconnected { op, path, .. } | RemoteError::NotConnected { op, path, .. } => {
                Some((*op, path.clone()))
            }
            _ => None,
        };
        assert!(
            matches!(injected, RemoteError::Disconnected { .. }),
            "{injected:?}"
        );
        match (named(&injected), named(&real)) {
            (Some(injected_names), Some(real_names)) => assert_eq!(injected_names, real_names),
            _ => panic!("{injected:?} / {real:?}"),
        }
    }
}
