//! [`SftpRemote`]: a [`Remote`] and [`Session`] over an SFTP v3 server.
//!
//! Every method is a handful of pipelined SFTP requests. What v3 cannot say
//! is answered as a POSIX file system without the feature would answer
//! (docs/sftp.md has the table): no inode numbers (the VFS keys identity
//! by path), whole-second times, ctime = mtime, no xattrs, no FIFOs or
//! devices, no rename flags but "no replace". OpenSSH reports every errno
//! it has no status code for as `FAILURE`; the errno POSIX would give is
//! then found from what the remote shows (one `lstat` or two, only on
//! that error path).

use super::channel::{InFlight, Reply, ServerInfo, SftpChannel};
use super::wire::{self, pflags, status, FileAttrs, Packet, Reader};
use crate::error::display_path;
use crate::session::{BoxFuture, Session};
use crate::{Remote, RemoteError, Result};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use yonder_proto::{
    access_mask, file_type, open_flags as of, Attr, DirEntry, DirPage, Errno, Handle, Owner, RenameFlags,
    SeekWhence, SetAttr, SetTime, StatFs, Target, XattrMode,
};

/// The most a read or write request carries when the server does not say
/// (the `limits@openssh.com` extension): what every server accepts.
const DEFAULT_IO_LEN: u32 = 32 * 1024;
/// Open directory listings kept for their cursors; the oldest is closed
/// beyond this, and its cursor answers EINVAL.
const MAX_LISTINGS: usize = 64;
/// READDIRs of a listing's first round (OpenSSH answers up to 100 names
/// each).
const FIRST_READDIRS: usize = 8;

/// An open file: its SFTP handle (none for a directory opened as one) and
/// what POSIX checks on the descriptor.
struct OpenFile {
    sftp: Option<Vec<u8>>,
    /// The full remote path, for a directory's attributes.
    path: Vec<u8>,
    readable: bool,
    writable: bool,
}

/// A directory listing in progress: its SFTP handle and entries read and
/// not handed out yet.
struct Listing {
    path: Vec<u8>,
    sftp: Vec<u8>,
    buffered: VecDeque<DirEntry>,
    done: bool,
    /// READDIRs sent together in the next round: doubling while the
    /// directory goes on, so that a small one costs few requests past its
    /// end and a large one few round trips.
    burst: usize,
}

/// Which OpenSSH extensions the server announced.
struct Extensions {
    posix_rename: bool,
    hardlink: bool,
    fsync: bool,
    statvfs: bool,
    lsetstat: bool,
}

/// A connection to an SFTP server, serving the tree at `root` on it.
pub struct SftpRemote {
    channel: SftpChannel,
    /// Absolute and canonical, without a trailing `/` (except `/` itself).
    root: Vec<u8>,
    ext: Extensions,
    max_read: u32,
    max_write: u32,
    /// The server's user, learnt from the owner of its home directory:
    /// what `access` checks the mode bits against.
    uid: u32,
    /// Its primary group, likewise: a new node in another group got it
    /// from a set-group-id directory.
    gid: u32,
    files: Mutex<HashMap<u64, OpenFile>>,
    listings: Mutex<HashMap<u64, Listing>>,
    next_number: AtomicU64,
}

/// The request failed with a status other than OK.
struct Status {
    code: u32,
    message: String,
}

impl SftpRemote {
    /// Serves `root` (absolute, or relative to the server's working
    /// directory, the home under ssh; empty for the home) over `channel`.
    pub async fn start(
        channel: SftpChannel,
        info: ServerInfo,
        root: &[u8],
        describe: &str,
    ) -> Result<SftpRemote> {
        let ext = Extensions {
            posix_rename: info.has("posix-rename@openssh.com"),
            hardlink: info.has("hardlink@openssh.com"),
            fsync: info.has("fsync@openssh.com"),
            statvfs: info.has("statvfs@openssh.com"),
            lsetstat: info.has("lsetstat@openssh.com"),
        };
        let mut remote = SftpRemote {
            channel,
            root: b"/".to_vec(),
            ext,
            max_read: DEFAULT_IO_LEN,
            max_write: DEFAULT_IO_LEN,
            uid: 0,
            gid: 0,
            files: Mutex::new(HashMap::new()),
            listings: Mutex::new(HashMap::new()),
            next_number: AtomicU64::new(1),
        };
        let fail = |e: RemoteError| RemoteError::Connect {
            source_desc: describe.to_string(),
            reason: e.to_string(),
        };
        if info.has("limits@openssh.com") {
            let (read, write) = remote.limits().await.map_err(fail)?;
            remote.max_read = read;
            remote.max_write = write;
        }
        let home = remote.realpath_raw(b".").await.map_err(fail)?;
        if let Ok(home) = remote.stat_full(&home).await {
            (remote.uid, remote.gid) = (home.uid, home.gid);
        }
        let root = if root.is_empty() { b".".as_slice() } else { root };
        let canonical = remote.realpath_raw(root).await.map_err(fail)?;
        let attr = remote.stat_full(&canonical).await.map_err(fail)?;
        if !attr.is_dir() {
            return Err(fail(RemoteError::os("mount", display_path(root), Errno::ENOTDIR)));
        }
        remote.root = canonical;
        Ok(remote)
    }

    /// Hands the ssh process to the session: it ends when ssh exits, and
    /// ssh is killed by `shutdown` or when the remote is dropped.
    pub fn attach_child(&self, child: tokio::process::Child) {
        self.channel.attach_child(child)
    }

    /// The largest read and write the server takes in one request.
    pub fn io_limits(&self) -> (u32, u32) {
        (self.max_read, self.max_write)
    }

    /// `limits@openssh.com`: the read and write lengths, capped at what
    /// fits a packet (OpenSSH answers 255 KiB for both).
    async fn limits(&self) -> Result<(u32, u32)> {
        let reply = self.extended(b"limits@openssh.com", |p| p, "limits", b"").await?;
        if reply.kind != wire::EXTENDED_REPLY {
            return Err(protocol("limits", b"", "expected an extended reply"));
        }
        let mut r = Reader::new(reply.body());
        let mut parse = || -> std::result::Result<(u64, u64, u64), wire::Truncated> {
            let packet = r.u64()?;
            let read = r.u64()?;
            let write = r.u64()?;
            Ok((packet, read, write))
        };
        let (packet, read, write) = parse().map_err(|_| protocol("limits", b"", "short limits reply"))?;
        let cap = |v: u64| {
            let most =
                (wire::MAX_PACKET as u64 - 1024).min(packet.saturating_sub(1024).max(DEFAULT_IO_LEN as u64));
            if v == 0 {
                DEFAULT_IO_LEN
            } else {
                v.min(most) as u32
            }
        };
        Ok((cap(read), cap(write)))
    }

    // -----------------------------------------------------------------
    // Paths

    /// The full remote path of `path` (relative to the root); `..` is
    /// resolved lexically and may not climb above the root (EACCES), as
    /// the agent does.
    fn full(&self, op: &'static str, path: &[u8]) -> Result<Vec<u8>> {
        if path.contains(&0) {
            return Err(RemoteError::os(op, display_path(path), Errno::EINVAL));
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        for part in path.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    if parts.pop().is_none() {
                        return Err(RemoteError::os(op, display_path(path), Errno::EACCES));
                    }
                }
                name => parts.push(name),
            }
        }
        // Linux's NAME_MAX and PATH_MAX: OpenSSH reports ENAMETOOLONG as
        // a bad message, and the server's path includes the root.
        if parts.iter().any(|p| p.len() > 255) {
            return Err(RemoteError::os(op, display_path(path), Errno::ENAMETOOLONG));
        }
        let mut full = self.root.clone();
        for part in parts {
            if full.last() != Some(&b'/') {
                full.push(b'/');
            }
            full.extend_from_slice(part);
        }
        if full.len() >= 4096 {
            return Err(RemoteError::os(op, display_path(path), Errno::ENAMETOOLONG));
        }
        Ok(full)
    }

    /// [`SftpRemote::full`] for an operation that would remove or replace
    /// the root itself: EBUSY, as for a mount point.
    fn full_not_root(&self, op: &'static str, path: &[u8]) -> Result<Vec<u8>> {
        let full = self.full(op, path)?;
        if full == self.root {
            return Err(RemoteError::os(op, display_path(path), Errno::EBUSY));
        }
        Ok(full)
    }

    // -----------------------------------------------------------------
    // Requests

    /// Queues one request built by `body` after its type and id.
    fn send(
        &self,
        op: &'static str,
        kind: u8,
        subject: &[u8],
        body: impl FnOnce(Packet) -> Packet,
    ) -> Result<InFlight> {
        let id = self.channel.id();
        let packet = body(Packet::new(kind, id)).finish(0);
        self.channel
            .start(op, id, packet, Bytes::new(), &|| display_path(subject))
    }

    /// One request and its reply.
    async fn ask(
        &self,
        op: &'static str,
        kind: u8,
        subject: &[u8],
        body: impl FnOnce(Packet) -> Packet,
    ) -> Result<Reply> {
        self.send(op, kind, subject, body)?
            .reply(&|| display_path(subject))
            .await
    }

    async fn extended(
        &self,
        name: &[u8],
        body: impl FnOnce(Packet) -> Packet,
        op: &'static str,
        subject: &[u8],
    ) -> Result<Reply> {
        self.ask(op, wire::EXTENDED, subject, |p| body(p.string(name)))
            .await
    }

    /// The status a reply carries, if it is one.
    fn status_of(reply: &Reply) -> Option<Status> {
        if reply.kind != wire::STATUS {
            return None;
        }
        let mut r = Reader::new(reply.body());
        let code = r.u32().unwrap_or(status::FAILURE);
        let message = r
            .string()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .unwrap_or_default();
        Some(Status { code, message })
    }

    /// `Ok` for an OK status, the failed status otherwise.
    fn expect_ok(op: &'static str, subject: &[u8], reply: Reply) -> Result<std::result::Result<(), Status>> {
        match Self::status_of(&reply) {
            Some(s) if s.code == status::OK => Ok(Ok(())),
            Some(s) => Ok(Err(s)),
            None => Err(protocol(op, subject, "expected a status")),
        }
    }

    fn expect_attrs(
        op: &'static str,
        subject: &[u8],
        reply: Reply,
    ) -> Result<std::result::Result<Attr, Status>> {
        if let Some(s) = Self::status_of(&reply) {
            return Ok(Err(s));
        }
        if reply.kind != wire::ATTRS {
            return Err(protocol(op, subject, "expected attributes"));
        }
        let attrs = Reader::new(reply.body())
            .attrs()
            .map_err(|_| protocol(op, subject, "short attributes"))?;
        Ok(Ok(attrs.to_attr()))
    }

    fn expect_handle(
        op: &'static str,
        subject: &[u8],
        reply: Reply,
    ) -> Result<std::result::Result<Vec<u8>, Status>> {
        if let Some(s) = Self::status_of(&reply) {
            return Ok(Err(s));
        }
        if reply.kind != wire::HANDLE {
            return Err(protocol(op, subject, "expected a handle"));
        }
        let handle = Reader::new(reply.body())
            .string()
            .map_err(|_| protocol(op, subject, "short handle"))?;
        Ok(Ok(handle.to_vec()))
    }

    /// The first name of a NAME reply (REALPATH, READLINK).
    fn expect_name(
        op: &'static str,
        subject: &[u8],
        reply: Reply,
    ) -> Result<std::result::Result<Vec<u8>, Status>> {
        if let Some(s) = Self::status_of(&reply) {
            return Ok(Err(s));
        }
        let mut r = Reader::new(reply.body());
        if reply.kind != wire::NAME || r.u32().unwrap_or(0) == 0 {
            return Err(protocol(op, subject, "expected a name"));
        }
        let name = r.string().map_err(|_| protocol(op, subject, "short name"))?;
        Ok(Ok(name.to_vec()))
    }

    /// The error for a failed status; `FAILURE` becomes `fallback`, the
    /// errno the caller found the remote to show.
    fn error(op: &'static str, path: &[u8], s: Status, errno: Errno) -> RemoteError {
        RemoteError::Os {
            op,
            path: display_path(path),
            errno,
            detail: s.message,
        }
    }

    /// The errno for a failed status; for `FAILURE`, the one `explain`
    /// finds from what the remote shows.
    async fn errno_for<F>(&self, s: &Status, explain: F) -> Errno
    where
        F: std::future::Future<Output = Errno>,
    {
        if s.code == status::FAILURE {
            explain.await
        } else {
            wire::status_errno(s.code)
        }
    }

    /// What the remote shows at `full`: its attributes, or why there are
    /// none. OpenSSH says `FAILURE` for ENOTDIR (and ELOOP, rarer here).
    async fn probe(&self, full: &[u8]) -> std::result::Result<Attr, Errno> {
        let reply = self
            .ask("lstat", wire::LSTAT, full, |p| p.string(full))
            .await
            .map_err(|e| e.errno())?;
        match Self::expect_attrs("lstat", full, reply) {
            Ok(Ok(attr)) => Ok(attr),
            Ok(Err(s)) if s.code == status::FAILURE => Err(Errno::ENOTDIR),
            Ok(Err(s)) => Err(wire::status_errno(s.code)),
            Err(e) => Err(e.errno()),
        }
    }

    /// The errno of a creation of `full` that failed with `FAILURE`.
    async fn explain_create(&self, full: &[u8]) -> Errno {
        match self.probe(full).await {
            Ok(_) => Errno::EEXIST,
            Err(Errno::ENOENT) => match self.probe(parent(full)).await {
                Ok(a) if !a.is_dir() => Errno::ENOTDIR,
                Ok(_) => Errno::EIO,
                Err(e) => e,
            },
            Err(e) => e,
        }
    }

    /// The errno of a lookup of `full` that failed with `FAILURE`: a
    /// non-directory on the way, or a symlink loop.
    async fn explain_lookup(&self, full: &[u8]) -> Errno {
        match self.probe(full).await {
            Ok(a) if a.is_symlink() => Errno::ELOOP,
            Ok(_) => Errno::EIO,
            Err(e) => e,
        }
    }

    /// The errno of a write that failed with `FAILURE`: ENOSPC when the
    /// file system has no block left for the server's user, else EIO.
    async fn explain_write(&self, full: &[u8]) -> Errno {
        if !self.ext.statvfs {
            return Errno::EIO;
        }
        let Ok(reply) = self
            .extended(b"statvfs@openssh.com", |p| p.string(full), "write", full)
            .await
        else {
            return Errno::EIO;
        };
        if reply.kind != wire::EXTENDED_REPLY {
            return Errno::EIO;
        }
        match Reader::new(reply.body()).statvfs() {
            Ok(fs) if fs.blocks_available == 0 => Errno::ENOSPC,
            _ => Errno::EIO,
        }
    }

    async fn stat_kind(&self, op: &'static str, kind: u8, path: &[u8], full: &[u8]) -> Result<Attr> {
        let reply = self.ask(op, kind, path, |p| p.string(full)).await?;
        match Self::expect_attrs(op, path, reply)? {
            Ok(attr) => Ok(attr),
            Err(s) => {
                let errno = self.errno_for(&s, self.explain_lookup(full)).await;
                Err(Self::error(op, path, s, errno))
            }
        }
    }

    async fn stat_full(&self, full: &[u8]) -> Result<Attr> {
        self.stat_kind("stat", wire::STAT, full, full).await
    }

    /// REALPATH as the server resolves it (a relative path against its
    /// working directory).
    async fn realpath_raw(&self, path: &[u8]) -> Result<Vec<u8>> {
        let reply = self
            .ask("realpath", wire::REALPATH, path, |p| p.string(path))
            .await?;
        match Self::expect_name("realpath", path, reply)? {
            Ok(name) => Ok(name),
            Err(s) => {
                let errno = wire::status_errno(s.code);
                Err(Self::error("realpath", path, s, errno))
            }
        }
    }

    /// Waits for a status reply that should be OK; `explain` names the
    /// errno of a `FAILURE`, and with `missing_too` of a "no such file"
    /// too (OpenSSH says that for ENOTDIR and ELOOP as well), where it
    /// finds more than EIO.
    async fn done<F>(
        &self,
        op: &'static str,
        path: &[u8],
        flight: InFlight,
        missing_too: bool,
        explain: impl FnOnce() -> F,
    ) -> Result<()>
    where
        F: std::future::Future<Output = Errno>,
    {
        let reply = flight.reply(&|| display_path(path)).await?;
        match Self::expect_ok(op, path, reply)? {
            Ok(()) => Ok(()),
            Err(s) if s.code == status::NO_SUCH_FILE && missing_too => {
                let errno = match explain().await {
                    Errno::EIO => Errno::ENOENT,
                    other => other,
                };
                Err(Self::error(op, path, s, errno))
            }
            Err(s) => {
                let errno = self.errno_for(&s, explain()).await;
                Err(Self::error(op, path, s, errno))
            }
        }
    }

    // -----------------------------------------------------------------
    // Handles

    fn number(&self) -> u64 {
        self.next_number.fetch_add(1, Ordering::Relaxed)
    }

    /// The SFTP handle of an open file, checked for `need` (read or write).
    fn file(&self, op: &'static str, handle: Handle, need: Need) -> Result<(Option<Vec<u8>>, Vec<u8>)> {
        let files = self.files.lock().expect("files lock");
        let bad = || RemoteError::os(op, handle.to_string(), Errno::EBADF);
        let file = files.get(&handle.0).ok_or_else(bad)?;
        let allowed = match need {
            Need::Any => true,
            Need::Read => file.readable,
            Need::Write => file.writable,
        };
        if !allowed {
            return Err(bad());
        }
        Ok((file.sftp.clone(), file.path.clone()))
    }

    /// An open file's SFTP handle; a directory opened as a file has none,
    /// and reads and writes as one would (EISDIR).
    fn sftp_handle(&self, op: &'static str, handle: Handle, need: Need) -> Result<Vec<u8>> {
        let (sftp, _) = self.file(op, handle, need)?;
        sftp.ok_or_else(|| RemoteError::os(op, handle.to_string(), Errno::EISDIR))
    }

    async fn fstat_sftp(&self, op: &'static str, shown: &[u8], sftp: &[u8]) -> Result<Attr> {
        let reply = self.ask(op, wire::FSTAT, shown, |p| p.string(sftp)).await?;
        match Self::expect_attrs(op, shown, reply)? {
            Ok(attr) => Ok(attr),
            Err(s) => {
                let errno = wire::status_errno(s.code);
                Err(Self::error(op, shown, s, errno))
            }
        }
    }

    /// Closes an SFTP handle nobody will use, without waiting.
    fn discard(&self, sftp: &[u8]) {
        let _ = self.send("close", wire::CLOSE, b"", |p| p.string(sftp));
    }

    /// Attributes by handle, or by path without following a symlink.
    async fn attrs_of(&self, op: &'static str, path: &[u8], target: &SettleTarget<'_>) -> Result<Attr> {
        let flight = match target {
            SettleTarget::Handle(h) => self.send(op, wire::FSTAT, path, |p| p.string(h))?,
            SettleTarget::Path(full) => self.send(op, wire::LSTAT, path, |p| p.string(full))?,
        };
        let reply = flight.reply(&|| display_path(path)).await?;
        match Self::expect_attrs(op, path, reply)? {
            Ok(attr) => Ok(attr),
            Err(s) => {
                let errno = wire::status_errno(s.code);
                Err(Self::error(op, path, s, errno))
            }
        }
    }

    /// Gives a node this side has just made what a local creation gives
    /// it: exactly the permission bits asked for (the server's umask
    /// applied to the request) and, as root, the owner asked for. chown
    /// goes first, since it clears set-user-id; a group inherited from a
    /// set-group-id directory stays. One round trip when nothing needs
    /// fixing, two otherwise. Returns the node's attributes.
    async fn settle_new(
        &self,
        op: &'static str,
        path: &[u8],
        target: &SettleTarget<'_>,
        mode: Option<u32>,
        owner: Option<Owner>,
    ) -> Result<Attr> {
        let attr = self.attrs_of(op, path, target).await?;
        self.settle_seen(op, path, target, attr, mode, owner).await
    }

    /// [`Self::settle_new`] of a node whose attributes `attr` were asked
    /// for right after it was made.
    async fn settle_seen(
        &self,
        op: &'static str,
        path: &[u8],
        target: &SettleTarget<'_>,
        attr: Attr,
        mode: Option<u32>,
        owner: Option<Owner>,
    ) -> Result<Attr> {
        let chown = owner.and_then(|o| {
            let gid = if attr.gid == self.gid { o.gid } else { attr.gid };
            ((attr.uid, attr.gid) != (o.uid, gid)).then_some((o.uid, gid))
        });
        let chmod = mode.filter(|_| !attr.is_symlink()).and_then(|m| {
            let want = if attr.is_dir() {
                // mkdir(2) takes no set-group-id from its mode, but a
                // directory inherits it from its parent.
                (m & 0o1777) | (attr.mode & 0o2000)
            } else {
                m & 0o7777
            };
            (chown.is_some() || attr.permissions() != want).then_some(want)
        });
        let by_path_nofollow = |attrs: FileAttrs| -> Result<Option<InFlight>> {
            Ok(Some(match target {
                SettleTarget::Handle(h) => {
                    self.send(op, wire::FSETSTAT, path, |p| p.string(h).attrs(&attrs))?
                }
                SettleTarget::Path(full) if self.ext.lsetstat => {
                    self.send(op, wire::EXTENDED, path, |p| {
                        p.string(b"lsetstat@openssh.com").string(full).attrs(&attrs)
                    })?
                }
                SettleTarget::Path(_) if attr.is_symlink() => return Ok(None),
                SettleTarget::Path(full) => {
                    self.send(op, wire::SETSTAT, path, |p| p.string(full).attrs(&attrs))?
                }
            }))
        };
        let mut sets = Vec::new();
        if let Some(ids) = chown {
            sets.extend(by_path_nofollow(FileAttrs {
                uid_gid: Some(ids),
                ..Default::default()
            })?);
        }
        if let Some(perm) = chmod {
            sets.extend(by_path_nofollow(FileAttrs {
                permissions: Some(perm),
                ..Default::default()
            })?);
        }
        if sets.is_empty() {
            return Ok(attr);
        }
        let stat = match target {
            SettleTarget::Handle(h) => self.send(op, wire::FSTAT, path, |p| p.string(h))?,
            SettleTarget::Path(full) => self.send(op, wire::LSTAT, path, |p| p.string(full))?,
        };
        for set in sets {
            // The owner is best effort: without the right to give a node
            // away, it stays the server user's, as with sshfs.
            let reply = set.reply(&|| display_path(path)).await?;
            if let Err(s) = Self::expect_ok(op, path, reply)? {
                tracing::debug!(path = %display_path(path), status = s.code, "cannot set a new node's attributes: {}", s.message);
            }
        }
        let reply = stat.reply(&|| display_path(path)).await?;
        match Self::expect_attrs(op, path, reply)? {
            Ok(attr) => Ok(attr),
            Err(s) => {
                let errno = wire::status_errno(s.code);
                Err(Self::error(op, path, s, errno))
            }
        }
    }

    /// Reads up to `len` bytes at `offset`, in requests of the server's
    /// largest read, all in flight at once.
    async fn read_sftp(&self, shown: &[u8], sftp: &[u8], offset: u64, len: u32) -> Result<Vec<u8>> {
        let chunk = self.max_read.max(1);
        let mut flights = Vec::new();
        let mut at = 0u32;
        while at < len {
            let n = chunk.min(len - at);
            let pos = offset + at as u64;
            flights.push((
                n,
                self.send("read", wire::READ, shown, |p| p.string(sftp).u64(pos).u32(n))?,
            ));
            at += n;
        }
        let mut data = Vec::with_capacity(len as usize);
        let mut short = false;
        for (asked, flight) in flights {
            let reply = flight.reply(&|| display_path(shown)).await?;
            if short {
                continue;
            }
            if let Some(s) = Self::status_of(&reply) {
                if s.code == status::EOF {
                    short = true;
                    continue;
                }
                let errno = match s.code {
                    status::FAILURE => Errno::EIO,
                    code => wire::status_errno(code),
                };
                return Err(Self::error("read", shown, s, errno));
            }
            if reply.kind != wire::DATA {
                return Err(protocol("read", shown, "expected data"));
            }
            let got = Reader::new(reply.body())
                .string()
                .map_err(|_| protocol("read", shown, "short data"))?;
            data.extend_from_slice(got);
            short = (got.len() as u32) < asked;
        }
        Ok(data)
    }

    async fn setattr_target(&self, target: &SettleTarget<'_>, shown: &[u8], attr: &SetAttr) -> Result<Attr> {
        let op = "setattr";
        let mut attrs = FileAttrs {
            size: attr.size,
            permissions: attr.mode.map(|m| m & 0o7777),
            ..Default::default()
        };
        let needs_current = attr.uid.is_some() != attr.gid.is_some()
            || matches!(
                (attr.atime, attr.mtime),
                (SetTime::Omit, SetTime::Now | SetTime::Set(_))
                    | (SetTime::Now | SetTime::Set(_), SetTime::Omit)
            );
        // The kernel resolves symlinks before it sets attributes: a path
        // names the node itself (lchown). OpenSSH's lsetstat sets no size.
        let nofollow = self.ext.lsetstat && attr.size.is_none();
        let current = if needs_current {
            Some(match target {
                SettleTarget::Handle(h) => self.fstat_sftp(op, shown, h).await?,
                SettleTarget::Path(full) if nofollow => self.stat_kind(op, wire::LSTAT, shown, full).await?,
                SettleTarget::Path(full) => self.stat_kind(op, wire::STAT, shown, full).await?,
            })
        } else {
            None
        };
        if attr.uid.is_some() || attr.gid.is_some() {
            let uid = attr.uid.or(current.map(|c| c.uid)).unwrap_or(0);
            let gid = attr.gid.or(current.map(|c| c.gid)).unwrap_or(0);
            attrs.uid_gid = Some((uid, gid));
        }
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as u32)
                .unwrap_or(0)
        };
        let pick = |t: SetTime, old: Option<i64>| match t {
            SetTime::Omit => old.map(|s| s as u32),
            SetTime::Now => Some(now()),
            SetTime::Set(ts) => Some(ts.sec.max(0) as u32),
        };
        if attr.atime != SetTime::Omit || attr.mtime != SetTime::Omit {
            let atime = pick(attr.atime, current.map(|c| c.atime.sec)).unwrap_or(0);
            let mtime = pick(attr.mtime, current.map(|c| c.mtime.sec)).unwrap_or(0);
            attrs.times = Some((atime, mtime));
        }
        if let (Some(_), SettleTarget::Path(full)) = (attr.size, target) {
            if let Ok(a) = self.probe(full).await {
                if a.is_dir() {
                    return Err(RemoteError::os(op, display_path(shown), Errno::EISDIR));
                }
            }
        }
        let set = match target {
            SettleTarget::Handle(h) => self.send(op, wire::FSETSTAT, shown, |p| p.string(h).attrs(&attrs))?,
            SettleTarget::Path(full) if nofollow => self.send(op, wire::EXTENDED, shown, |p| {
                p.string(b"lsetstat@openssh.com").string(full).attrs(&attrs)
            })?,
            SettleTarget::Path(full) => {
                self.send(op, wire::SETSTAT, shown, |p| p.string(full).attrs(&attrs))?
            }
        };
        let stat = match target {
            SettleTarget::Handle(h) => self.send(op, wire::FSTAT, shown, |p| p.string(h))?,
            SettleTarget::Path(full) if nofollow => self.send(op, wire::LSTAT, shown, |p| p.string(full))?,
            SettleTarget::Path(full) => self.send(op, wire::STAT, shown, |p| p.string(full))?,
        };
        let reply = set.reply(&|| display_path(shown)).await?;
        if let Err(s) = Self::expect_ok(op, shown, reply)? {
            let _ = stat.reply(&|| display_path(shown)).await;
            let errno = match s.code {
                // chown, chmod and utimes by someone else than the owner.
                status::PERMISSION_DENIED => Errno::EPERM,
                status::FAILURE => match target {
                    SettleTarget::Path(full) => self.explain_lookup(full).await,
                    SettleTarget::Handle(_) => Errno::EIO,
                },
                code => wire::status_errno(code),
            };
            return Err(Self::error(op, shown, s, errno));
        }
        let reply = stat.reply(&|| display_path(shown)).await?;
        match Self::expect_attrs(op, shown, reply)? {
            Ok(attr) => Ok(attr),
            Err(s) => {
                let errno = wire::status_errno(s.code);
                Err(Self::error(op, shown, s, errno))
            }
        }
    }

    /// Reads directory entries into `listing` until it holds `want` or the
    /// directory ends. READDIRs on one handle are answered in the order
    /// sent, each with the next batch (about 100 names from OpenSSH), so
    /// as many as the page needs go out at once, up to the listing's
    /// burst; those past the end answer EOF.
    async fn fill(&self, listing: &mut Listing, want: usize) -> Result<()> {
        const BATCH: usize = 100;
        const MAX_READDIRS: usize = 64;
        let shown = listing.path.clone();
        while listing.buffered.len() < want && !listing.done {
            let missing = want - listing.buffered.len();
            let count = missing.div_ceil(BATCH).clamp(1, listing.burst);
            listing.burst = (listing.burst * 2).min(MAX_READDIRS);
            let sftp = listing.sftp.clone();
            let mut flights = Vec::with_capacity(count);
            for _ in 0..count {
                flights.push(self.send("readdir", wire::READDIR, &shown, |p| p.string(&sftp))?);
            }
            for flight in flights {
                let reply = flight.reply(&|| display_path(&shown)).await?;
                if listing.done {
                    continue;
                }
                if let Some(s) = Self::status_of(&reply) {
                    if s.code == status::EOF {
                        listing.done = true;
                        continue;
                    }
                    let errno = wire::status_errno(s.code);
                    return Err(Self::error("readdir", &shown, s, errno));
                }
                if reply.kind != wire::NAME {
                    return Err(protocol("readdir", &shown, "expected names"));
                }
                let mut r = Reader::new(reply.body());
                let bad = |_| protocol("readdir", &shown, "short names");
                let names = r.u32().map_err(bad)?;
                for _ in 0..names {
                    let name = r.string().map_err(bad)?.to_vec();
                    let _long = r.string().map_err(bad)?;
                    let attrs = r.attrs().map_err(bad)?;
                    if name == b"." || name == b".." {
                        continue;
                    }
                    listing.buffered.push_back(DirEntry {
                        name: name.into(),
                        attr: Some(attrs.to_attr()),
                        // Not "none": the first probe must reach the
                        // remote's ENOSYS (see `getxattr`).
                        xattrs: None,
                    });
                }
            }
        }
        Ok(())
    }

    fn close_listing(&self, listing: &Listing) {
        self.discard(&listing.sftp);
    }
}

#[derive(Clone, Copy)]
enum Need {
    Any,
    Read,
    Write,
}

enum SettleTarget<'a> {
    Handle(&'a [u8]),
    Path(&'a [u8]),
}

fn protocol(op: &'static str, path: &[u8], reason: &str) -> RemoteError {
    RemoteError::Protocol {
        op,
        path: display_path(path),
        reason: reason.to_string(),
    }
}

fn parent(full: &[u8]) -> &[u8] {
    match full.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(i) => &full[..i],
        None => b".",
    }
}

#[async_trait]
impl Remote for SftpRemote {
    async fn lstat(&self, path: &[u8]) -> Result<Attr> {
        let full = self.full("lstat", path)?;
        self.stat_kind("lstat", wire::LSTAT, path, &full).await
    }

    async fn stat(&self, path: &[u8]) -> Result<Attr> {
        let full = self.full("stat", path)?;
        self.stat_kind("stat", wire::STAT, path, &full).await
    }

    async fn fstat(&self, handle: Handle) -> Result<Attr> {
        let (sftp, path) = self.file("fstat", handle, Need::Any)?;
        match sftp {
            Some(sftp) => {
                self.fstat_sftp("fstat", handle.to_string().as_bytes(), &sftp)
                    .await
            }
            None => self.stat_full(&path).await,
        }
    }

    async fn read_dir_page(&self, path: &[u8], cursor: Option<u64>, max_entries: u32) -> Result<DirPage> {
        let op = "readdir";
        let full = self.full(op, path)?;
        let want = max_entries.max(1) as usize;
        let (number, mut listing) = match cursor {
            Some(number) => {
                let listing = self.listings.lock().expect("listings lock").remove(&number);
                match listing {
                    Some(l) if l.path == full => (number, l),
                    Some(l) => {
                        self.listings.lock().expect("listings lock").insert(number, l);
                        return Err(RemoteError::os(op, display_path(path), Errno::EINVAL));
                    }
                    None => return Err(RemoteError::os(op, display_path(path), Errno::EINVAL)),
                }
            }
            None => {
                let reply = self.ask(op, wire::OPENDIR, path, |p| p.string(&full)).await?;
                let sftp = match Self::expect_handle(op, path, reply)? {
                    Ok(h) => h,
                    Err(s) => {
                        let not_a_directory = async {
                            match self.probe(&full).await {
                                Ok(a) if !a.is_dir() => Errno::ENOTDIR,
                                Ok(_) => Errno::EIO,
                                Err(e) => e,
                            }
                        };
                        let errno = match s.code {
                            status::NO_SUCH_FILE | status::FAILURE => not_a_directory.await,
                            code => wire::status_errno(code),
                        };
                        return Err(Self::error(op, path, s, errno));
                    }
                };
                let listing = Listing {
                    path: full.clone(),
                    sftp,
                    buffered: VecDeque::new(),
                    done: false,
                    burst: FIRST_READDIRS,
                };
                (self.number(), listing)
            }
        };
        if let Err(e) = self.fill(&mut listing, want + 1).await {
            self.close_listing(&listing);
            return Err(e);
        }
        let take = want.min(listing.buffered.len());
        let entries: Vec<DirEntry> = listing.buffered.drain(..take).collect();
        if listing.buffered.is_empty() && listing.done {
            self.close_listing(&listing);
            return Ok(DirPage { entries, next: None });
        }
        let evicted = {
            let mut listings = self.listings.lock().expect("listings lock");
            listings.insert(number, listing);
            if listings.len() > MAX_LISTINGS {
                let oldest = *listings.keys().min().expect("not empty");
                listings.remove(&oldest)
            } else {
                None
            }
        };
        if let Some(old) = evicted {
            self.close_listing(&old);
        }
        Ok(DirPage {
            entries,
            next: Some(number),
        })
    }

    async fn open(&self, path: &[u8], flags: u32, mode: u32, owner: Option<Owner>) -> Result<(Handle, Attr)> {
        let op = "open";
        if !of::known(flags) {
            return Err(RemoteError::os(op, display_path(path), Errno::EINVAL));
        }
        let full = self.full(op, path)?;
        let access = flags & of::ACCESS_MASK;
        let readable = access != of::WRITE_ONLY;
        let writable = access != of::READ_ONLY;
        if flags & (of::NOFOLLOW | of::DIRECTORY) != 0 {
            let follow = flags & of::DIRECTORY != 0 && flags & of::NOFOLLOW == 0;
            let seen = if follow {
                self.stat_kind(op, wire::STAT, path, &full).await
            } else {
                self.lstat(path).await
            };
            match seen {
                Ok(a) if flags & of::NOFOLLOW != 0 && a.is_symlink() => {
                    return Err(RemoteError::os(op, display_path(path), Errno::ELOOP))
                }
                Ok(a) if flags & of::DIRECTORY != 0 && !a.is_dir() => {
                    return Err(RemoteError::os(op, display_path(path), Errno::ENOTDIR))
                }
                Ok(a) if flags & of::DIRECTORY != 0 => {
                    if writable {
                        return Err(RemoteError::os(op, display_path(path), Errno::EISDIR));
                    }
                    let number = self.number();
                    let file = OpenFile {
                        sftp: None,
                        path: full,
                        readable,
                        writable,
                    };
                    self.files.lock().expect("files lock").insert(number, file);
                    return Ok((Handle(number), a));
                }
                Err(e) if flags & of::CREATE == 0 || e.errno() != Errno::ENOENT => return Err(e),
                _ => {}
            }
        }
        let mut base = match access {
            of::WRITE_ONLY => pflags::WRITE,
            of::READ_WRITE => pflags::READ | pflags::WRITE,
            _ => pflags::READ,
        };
        if flags & of::APPEND != 0 {
            base |= pflags::APPEND;
        }
        if flags & of::TRUNCATE != 0 {
            base |= pflags::TRUNC;
        }
        // A creation goes exclusive first, so that this side knows it made
        // the file and sets exactly the mode asked (the server's umask
        // applies to OPEN) and the owner; an existing file is then opened
        // as it is.
        let create_attrs = FileAttrs {
            permissions: Some(mode & 0o7777),
            ..Default::default()
        };
        let mut created = false;
        let mut sftp = None;
        let mut stat_with_open = None;
        if flags & of::CREATE != 0 {
            let pf = base | pflags::CREAT | pflags::EXCL;
            let open = self.send(op, wire::OPEN, path, |p| {
                p.string(&full).u32(pf).attrs(&create_attrs)
            })?;
            // As below: what the OPEN made, in the same round trip.
            let stat = self.send(op, wire::LSTAT, path, |p| p.string(&full))?;
            let reply = open.reply(&|| display_path(path)).await?;
            match Self::expect_handle(op, path, reply)? {
                Ok(h) => {
                    created = true;
                    sftp = Some(h);
                    stat_with_open = Some(stat);
                }
                Err(s) => {
                    let errno = self.errno_for(&s, self.explain_create(&full)).await;
                    if errno != Errno::EEXIST || flags & of::EXCLUSIVE != 0 {
                        return Err(Self::error(op, path, s, errno));
                    }
                }
            }
        }
        let sftp = match sftp {
            Some(h) => h,
            None => {
                let pf = if flags & of::CREATE != 0 {
                    base | pflags::CREAT
                } else {
                    base
                };
                let open = self.send(op, wire::OPEN, path, |p| {
                    p.string(&full).u32(pf).attrs(&create_attrs)
                })?;
                // The server carries requests out in order: a STAT sent
                // with the OPEN (following symlinks, as it does) reports
                // the file just opened, truncated if asked, in the same
                // round trip, where an FSTAT would need the handle first.
                let stat = self.send(op, wire::STAT, path, |p| p.string(&full))?;
                let reply = open.reply(&|| display_path(path)).await?;
                match Self::expect_handle(op, path, reply)? {
                    Ok(h) => {
                        stat_with_open = Some(stat);
                        h
                    }
                    Err(s) => {
                        let errno = self
                            .errno_for(&s, async {
                                match self.probe(&full).await {
                                    Ok(a) if a.is_dir() && writable => Errno::EISDIR,
                                    Ok(_) => Errno::EIO,
                                    Err(e) => e,
                                }
                            })
                            .await;
                        return Err(Self::error(op, path, s, errno));
                    }
                }
            }
        };
        // A STAT that failed (the file gone since the open) leaves it to
        // the handle.
        let stated = match stat_with_open {
            Some(stat) => Self::expect_attrs(op, path, stat.reply(&|| display_path(path)).await?)?.ok(),
            None => None,
        };
        let target = SettleTarget::Handle(&sftp);
        let settled = match (created, stated) {
            (true, Some(attr)) if attr.is_file() => {
                self.settle_seen(op, path, &target, attr, Some(mode), owner).await
            }
            (true, _) => self.settle_new(op, path, &target, Some(mode), owner).await,
            (false, Some(attr)) => Ok(attr),
            (false, None) => self.attrs_of(op, path, &target).await,
        };
        let attr = match settled {
            Ok(attr) => attr,
            Err(e) => {
                self.discard(&sftp);
                return Err(e);
            }
        };
        let number = self.number();
        let file = OpenFile {
            sftp: Some(sftp),
            path: full,
            readable,
            writable,
        };
        self.files.lock().expect("files lock").insert(number, file);
        Ok((Handle(number), attr))
    }

    async fn read(&self, handle: Handle, offset: u64, len: u32) -> Result<Vec<u8>> {
        let sftp = self.sftp_handle("read", handle, Need::Read)?;
        self.read_sftp(handle.to_string().as_bytes(), &sftp, offset, len)
            .await
    }

    async fn write(&self, handle: Handle, offset: u64, data: Bytes) -> Result<u32> {
        let (sftp, path) = self.file("write", handle, Need::Write)?;
        let sftp = sftp.ok_or_else(|| RemoteError::os("write", handle.to_string(), Errno::EISDIR))?;
        let shown = handle.to_string();
        let chunk = self.max_write.max(1) as usize;
        let mut flights = Vec::new();
        let mut at = 0usize;
        while at < data.len() || (at == 0 && data.is_empty()) {
            let piece = data.slice(at..(at + chunk).min(data.len()));
            let id = self.channel.id();
            let packet = Packet::new(wire::WRITE, id)
                .string(&sftp)
                .u64(offset + at as u64)
                .u32(piece.len() as u32)
                .finish(piece.len());
            at += piece.len();
            flights.push(
                self.channel
                    .start("write", id, packet, piece, &|| shown.clone())?,
            );
            if data.is_empty() {
                break;
            }
        }
        for flight in flights {
            let reply = flight.reply(&|| shown.clone()).await?;
            if let Err(s) = Self::expect_ok("write", shown.as_bytes(), reply)? {
                let errno = match s.code {
                    status::FAILURE => self.explain_write(&path).await,
                    code => wire::status_errno(code),
                };
                return Err(Self::error("write", shown.as_bytes(), s, errno));
            }
        }
        Ok(data.len() as u32)
    }

    async fn fsync(&self, handle: Handle, _datasync: bool) -> Result<()> {
        let sftp = match self.file("fsync", handle, Need::Any)? {
            (Some(sftp), _) => sftp,
            (None, _) => return Ok(()),
        };
        if !self.ext.fsync {
            // Nothing to ask: the server writes through on close.
            return Ok(());
        }
        let shown = handle.to_string();
        let flight = self.send("fsync", wire::EXTENDED, shown.as_bytes(), |p| {
            p.string(b"fsync@openssh.com").string(&sftp)
        })?;
        self.done("fsync", shown.as_bytes(), flight, false, || async { Errno::EIO })
            .await
    }

    async fn close(&self, handle: Handle) -> Result<()> {
        let file = self.files.lock().expect("files lock").remove(&handle.0);
        let Some(file) = file else {
            return Err(RemoteError::os("close", handle.to_string(), Errno::EBADF));
        };
        let Some(sftp) = file.sftp else { return Ok(()) };
        let shown = handle.to_string();
        let flight = self.send("close", wire::CLOSE, shown.as_bytes(), |p| p.string(&sftp))?;
        self.done("close", shown.as_bytes(), flight, false, || async { Errno::EIO })
            .await
    }

    async fn setattr(&self, target: Target, attr: SetAttr) -> Result<Attr> {
        match target {
            Target::Path(path) => {
                let full = self.full("setattr", &path)?;
                self.setattr_target(&SettleTarget::Path(&full), &path, &attr)
                    .await
            }
            Target::Handle(handle) => {
                let (sftp, path) = self.file("setattr", handle, Need::Any)?;
                let shown = handle.to_string();
                match sftp {
                    Some(sftp) => {
                        if attr.size.is_some() && self.file("setattr", handle, Need::Write).is_err() {
                            return Err(RemoteError::os("setattr", shown, Errno::EINVAL));
                        }
                        self.setattr_target(&SettleTarget::Handle(&sftp), shown.as_bytes(), &attr)
                            .await
                    }
                    None => {
                        self.setattr_target(&SettleTarget::Path(&path), shown.as_bytes(), &attr)
                            .await
                    }
                }
            }
        }
    }

    async fn mkdir(&self, path: &[u8], mode: u32, owner: Option<Owner>) -> Result<Attr> {
        let op = "mkdir";
        let full = self.full(op, path)?;
        let attrs = FileAttrs {
            permissions: Some(mode & 0o1777),
            ..Default::default()
        };
        let flight = self.send(op, wire::MKDIR, path, |p| p.string(&full).attrs(&attrs))?;
        self.done(op, path, flight, false, || self.explain_create(&full))
            .await?;
        self.settle_new(op, path, &SettleTarget::Path(&full), Some(mode), owner)
            .await
    }

    async fn mknod(
        &self,
        path: &[u8],
        mode: u32,
        _major: u32,
        _minor: u32,
        owner: Option<Owner>,
    ) -> Result<Attr> {
        let op = "mknod";
        let full = self.full(op, path)?;
        if mode & file_type::MASK != file_type::REGULAR && mode & file_type::MASK != 0 {
            // SFTP makes no FIFOs, sockets or devices. An existing name
            // still says EEXIST, a missing directory ENOENT.
            return Err(match self.probe(&full).await {
                Ok(_) => RemoteError::os(op, display_path(path), Errno::EEXIST),
                Err(Errno::ENOENT) => match self.probe(parent(&full)).await {
                    Ok(a) if a.is_dir() => RemoteError::os(op, display_path(path), Errno::EPERM),
                    Ok(_) => RemoteError::os(op, display_path(path), Errno::ENOTDIR),
                    Err(e) => RemoteError::os(op, display_path(path), e),
                },
                Err(e) => RemoteError::os(op, display_path(path), e),
            });
        }
        let flags = of::WRITE_ONLY | of::CREATE | of::EXCLUSIVE;
        let (handle, _) = self.open(path, flags, mode & 0o7777, owner).await?;
        self.close(handle).await?;
        self.lstat(path).await
    }

    async fn unlink(&self, path: &[u8]) -> Result<()> {
        let op = "unlink";
        let full = self.full_not_root(op, path)?;
        let flight = self.send(op, wire::REMOVE, path, |p| p.string(&full))?;
        self.done(op, path, flight, false, || async {
            match self.probe(&full).await {
                Ok(a) if a.is_dir() => Errno::EISDIR,
                Ok(_) => Errno::EIO,
                Err(e) => e,
            }
        })
        .await
    }

    async fn rmdir(&self, path: &[u8]) -> Result<()> {
        let op = "rmdir";
        let full = self.full_not_root(op, path)?;
        let flight = self.send(op, wire::RMDIR, path, |p| p.string(&full))?;
        self.done(op, path, flight, true, || async {
            match self.probe(&full).await {
                Ok(a) if !a.is_dir() => Errno::ENOTDIR,
                Ok(_) => Errno::ENOTEMPTY,
                Err(e) => e,
            }
        })
        .await
    }

    async fn rename(&self, from: &[u8], to: &[u8], flags: RenameFlags) -> Result<()> {
        let op = "rename";
        let shown = [from, b" -> ", to].concat();
        if flags.noreplace && flags.exchange {
            return Err(RemoteError::os(op, display_path(&shown), Errno::EINVAL));
        }
        let full_from = self.full_not_root(op, from)?;
        let full_to = self.full_not_root(op, to)?;
        if flags.exchange {
            // No atomic swap in SFTP: refused as a file system without
            // RENAME_EXCHANGE refuses it, after the names are checked.
            for full in [&full_from, &full_to] {
                if let Err(e) = self.probe(full).await {
                    return Err(RemoteError::os(op, display_path(&shown), e));
                }
            }
            return Err(RemoteError::os(op, display_path(&shown), Errno::EINVAL));
        }
        // SSH_FXP_RENAME refuses an existing destination (OpenSSH links and
        // unlinks): "no replace". posix-rename replaces, as rename(2).
        let flight = if flags.noreplace || !self.ext.posix_rename {
            self.send(op, wire::RENAME, &shown, |p| {
                p.string(&full_from).string(&full_to)
            })?
        } else {
            self.send(op, wire::EXTENDED, &shown, |p| {
                p.string(b"posix-rename@openssh.com")
                    .string(&full_from)
                    .string(&full_to)
            })?
        };
        self.done(op, &shown, flight, true, || async {
            let source = match self.probe(&full_from).await {
                Ok(a) => a,
                Err(e) => return e,
            };
            match self.probe(&full_to).await {
                Ok(_) if flags.noreplace => Errno::EEXIST,
                Ok(target) if source.is_dir() && !target.is_dir() => Errno::ENOTDIR,
                Ok(target) if !source.is_dir() && target.is_dir() => Errno::EISDIR,
                Ok(target) if target.is_dir() => Errno::ENOTEMPTY,
                Ok(_) => Errno::EIO,
                Err(Errno::ENOENT) => match self.probe(parent(&full_to)).await {
                    Ok(a) if !a.is_dir() => Errno::ENOTDIR,
                    Ok(_) if full_to.starts_with(&[&full_from[..], b"/"].concat()) => Errno::EINVAL,
                    Ok(_) => Errno::EIO,
                    Err(e) => e,
                },
                Err(e) => e,
            }
        })
        .await
    }

    async fn symlink(&self, target: &[u8], path: &[u8], owner: Option<Owner>) -> Result<Attr> {
        let op = "symlink";
        if target.contains(&0) {
            return Err(RemoteError::os(op, display_path(path), Errno::EINVAL));
        }
        let full = self.full(op, path)?;
        // OpenSSH takes the target first, against the draft's order.
        let flight = self.send(op, wire::SYMLINK, path, |p| p.string(target).string(&full))?;
        self.done(op, path, flight, false, || self.explain_create(&full))
            .await?;
        self.settle_new(op, path, &SettleTarget::Path(&full), None, owner)
            .await
    }

    async fn readlink(&self, path: &[u8]) -> Result<Vec<u8>> {
        let op = "readlink";
        let full = self.full(op, path)?;
        let reply = self.ask(op, wire::READLINK, path, |p| p.string(&full)).await?;
        match Self::expect_name(op, path, reply)? {
            Ok(target) => Ok(target),
            Err(s) => {
                let errno = self
                    .errno_for(&s, async {
                        match self.probe(&full).await {
                            Ok(a) if !a.is_symlink() => Errno::EINVAL,
                            Ok(_) => Errno::EIO,
                            Err(e) => e,
                        }
                    })
                    .await;
                Err(Self::error(op, path, s, errno))
            }
        }
    }

    async fn link(&self, from: &[u8], to: &[u8]) -> Result<Attr> {
        let op = "link";
        let shown = [from, b" -> ", to].concat();
        let full_from = self.full(op, from)?;
        let full_to = self.full(op, to)?;
        if !self.ext.hardlink {
            return Err(RemoteError::os(op, display_path(&shown), Errno::EPERM));
        }
        let flight = self.send(op, wire::EXTENDED, &shown, |p| {
            p.string(b"hardlink@openssh.com")
                .string(&full_from)
                .string(&full_to)
        })?;
        self.done(op, &shown, flight, false, || async {
            match self.probe(&full_from).await {
                Err(e) => e,
                Ok(a) if a.is_dir() => Errno::EPERM,
                Ok(_) => self.explain_create(&full_to).await,
            }
        })
        .await?;
        self.attrs_of(op, to, &SettleTarget::Path(&full_to)).await
    }

    async fn statfs(&self, path: &[u8]) -> Result<StatFs> {
        let op = "statfs";
        let full = self.full(op, path)?;
        if !self.ext.statvfs {
            self.lstat(path).await?;
            return Ok(StatFs {
                name_max: 255,
                ..Default::default()
            });
        }
        let reply = self
            .extended(b"statvfs@openssh.com", |p| p.string(&full), op, path)
            .await?;
        if let Some(s) = Self::status_of(&reply) {
            let errno = self.errno_for(&s, self.explain_lookup(&full)).await;
            return Err(Self::error(op, path, s, errno));
        }
        if reply.kind != wire::EXTENDED_REPLY {
            return Err(protocol(op, path, "expected an extended reply"));
        }
        Reader::new(reply.body())
            .statvfs()
            .map_err(|_| protocol(op, path, "short statvfs reply"))
    }

    // SFTP has no extended attributes: each call answers ENOSYS (once
    // the path is known to exist), "not implemented", which a FUSE mount
    // passes on so that the kernel stops asking for the rest of the mount
    // and answers EOPNOTSUPP itself, as sshfs's mounts do. `ls -l` asks
    // every file for its ACLs; each of those would otherwise cross FUSE.

    async fn getxattr(&self, path: &[u8], name: &[u8]) -> Result<Vec<u8>> {
        let op = "getxattr";
        if name.contains(&0) {
            return Err(RemoteError::os(op, display_path(path), Errno::EINVAL));
        }
        self.lstat(path).await?;
        Err(RemoteError::os(op, display_path(path), Errno::ENOSYS))
    }

    async fn setxattr(&self, path: &[u8], name: &[u8], _value: &[u8], _mode: XattrMode) -> Result<()> {
        let op = "setxattr";
        if name.contains(&0) {
            return Err(RemoteError::os(op, display_path(path), Errno::EINVAL));
        }
        self.lstat(path).await?;
        Err(RemoteError::os(op, display_path(path), Errno::ENOSYS))
    }

    async fn listxattr(&self, path: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.lstat(path).await?;
        Err(RemoteError::os("listxattr", display_path(path), Errno::ENOSYS))
    }

    async fn removexattr(&self, path: &[u8], _name: &[u8]) -> Result<()> {
        self.lstat(path).await?;
        Err(RemoteError::os("removexattr", display_path(path), Errno::ENOSYS))
    }

    async fn access(&self, path: &[u8], mask: u32) -> Result<()> {
        let all = access_mask::READ | access_mask::WRITE | access_mask::EXECUTE;
        if mask & !all != 0 {
            return Err(RemoteError::os("access", display_path(path), Errno::EINVAL));
        }
        let attr = self.stat(path).await?;
        if mask == access_mask::EXISTS {
            return Ok(());
        }
        let perm = attr.permissions();
        let bits = if self.uid == 0 {
            // Root reads and writes anything; executes what anyone may.
            let x = if perm & 0o111 != 0 || attr.is_dir() {
                access_mask::EXECUTE
            } else {
                0
            };
            access_mask::READ | access_mask::WRITE | x
        } else if attr.uid == self.uid {
            (perm >> 6) & 7
        } else {
            // Group membership on the server is unknown: the group's and
            // others' bits both count, the server refuses what it must.
            ((perm >> 3) | perm) & 7
        };
        if mask & !bits != 0 {
            return Err(RemoteError::os("access", display_path(path), Errno::EACCES));
        }
        Ok(())
    }

    async fn fallocate(&self, handle: Handle, offset: u64, len: u64, mode: u32) -> Result<()> {
        let op = "fallocate";
        let sftp = self.sftp_handle(op, handle, Need::Write)?;
        let shown = handle.to_string();
        if mode != 0 {
            return Err(RemoteError::os(op, shown, Errno::EOPNOTSUPP));
        }
        // Only the size can be made: the blocks are the server's to allocate.
        let attr = self.fstat_sftp(op, shown.as_bytes(), &sftp).await?;
        let end = offset.saturating_add(len);
        if end > attr.size {
            let grow = FileAttrs {
                size: Some(end),
                ..Default::default()
            };
            let flight = self.send(op, wire::FSETSTAT, shown.as_bytes(), |p| {
                p.string(&sftp).attrs(&grow)
            })?;
            self.done(op, shown.as_bytes(), flight, false, || async { Errno::EIO })
                .await?;
        }
        Ok(())
    }

    async fn lseek(&self, handle: Handle, offset: u64, whence: SeekWhence) -> Result<u64> {
        let op = "lseek";
        let sftp = self.sftp_handle(op, handle, Need::Any)?;
        let shown = handle.to_string();
        let size = self.fstat_sftp(op, shown.as_bytes(), &sftp).await?.size;
        // Without hole information a file is all data, as on a file
        // system without holes: lseek(2) allows that answer.
        if offset >= size {
            return Err(RemoteError::os(op, shown, Errno::ENXIO));
        }
        Ok(match whence {
            SeekWhence::Data => offset,
            SeekWhence::Hole => size,
        })
    }

    async fn open_read(&self, path: &[u8], flags: u32, prefetch: u32) -> Result<(Handle, Attr, Vec<u8>)> {
        if !of::only_reads(flags) {
            return Err(RemoteError::os("open", display_path(path), Errno::EINVAL));
        }
        let (handle, attr) = self.open(path, flags, 0, None).await?;
        if !attr.is_file() || prefetch == 0 {
            return Ok((handle, attr, Vec::new()));
        }
        match self.read(handle, 0, prefetch).await {
            Ok(data) => Ok((handle, attr, data)),
            Err(err) => {
                let _ = self.close(handle).await;
                Err(err)
            }
        }
    }

    async fn realpath(&self, path: &[u8]) -> Result<Vec<u8>> {
        if path.contains(&0) {
            return Err(RemoteError::os("realpath", display_path(path), Errno::EINVAL));
        }
        let canonical = self.realpath_raw(path).await?;
        // OpenSSH resolves a missing final name too: it must exist.
        self.stat_full(&canonical).await?;
        let inside = self.root == b"/"
            || canonical == self.root
            || canonical.starts_with(&[&self.root[..], b"/"].concat());
        if !inside {
            return Err(RemoteError::os("realpath", display_path(path), Errno::EACCES));
        }
        Ok(canonical)
    }
}

#[async_trait]
impl Session for SftpRemote {
    fn closed(&self) -> BoxFuture<String> {
        Box::pin(self.channel.closed())
    }

    fn exited(&self) -> BoxFuture<()> {
        Box::pin(self.channel.exited())
    }

    fn last_heard(&self) -> Instant {
        self.channel.last_heard()
    }

    fn shutdown(&self, reason: &str) {
        self.channel.shutdown(reason)
    }

    fn in_flight(&self) -> usize {
        self.channel.in_flight()
    }
}

#[cfg(test)]
mod tests {
    use super::parent;

    #[test]
    fn parents_of_full_paths() {
        assert_eq!(parent(b"/a/b"), b"/a");
        assert_eq!(parent(b"/a"), b"/");
        assert_eq!(parent(b"a"), b".");
    }
}
