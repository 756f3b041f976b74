//! [`SftpChannel`]: SFTP packets over a pipe pair, pipelined.
//!
//! Callers encode their own packets and hand them to one writer task,
//! which gathers whatever is queued into one flush; one reader task routes
//! each reply to its caller by request id. Any number of requests may be
//! in flight (the server answers in order; the ids make that irrelevant).
//! [`SftpChannel::start`] registers and queues a request without waiting,
//! so a caller can put several on the wire before it awaits the first: a
//! large read is all its chunks in flight at once, and a change and the
//! `stat` that reports its result cost one round trip, not two (OpenSSH's
//! sftp-server carries out one request after the other, in order).
//!
//! For a supervisor the channel tells when it ended, when the server was
//! last heard from and can be shut down, failing every call in flight at
//! once, as [`crate::AgentClient`] does for the agent.

use super::wire::{self, Packet, Reader};
use crate::{RemoteError, Result};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

/// A reply: its type and its packet, whose body starts after the id.
pub struct Reply {
    pub kind: u8,
    packet: Vec<u8>,
}

impl Reply {
    /// The body after the type and id (not moved: a read's data stays
    /// where the reader put it).
    pub fn body(&self) -> &[u8] {
        &self.packet[5..]
    }
}

type Waiter = oneshot::Sender<std::result::Result<Reply, String>>;

#[derive(Default)]
struct Pending {
    waiters: HashMap<u32, Waiter>,
    /// Set once the connection is gone; later calls fail at once with it.
    closed: Option<String>,
}

struct Shared {
    pending: Mutex<Pending>,
    ended: watch::Sender<Option<String>>,
    heard: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn fail_all(&self, reason: String) {
        let mut pending = self.pending.lock().expect("pending lock");
        if pending.closed.is_none() {
            pending.closed = Some(reason.clone());
            self.ended.send_replace(Some(reason.clone()));
        }
        for (_, waiter) in pending.waiters.drain() {
            let _ = waiter.send(Err(reason.clone()));
        }
    }

    fn heard_now(&self) {
        let nanos = self.epoch.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        self.heard.store(nanos, Ordering::Relaxed);
    }
}

/// A packet on its way to the writer: encoded, and for a write the data
/// that follows it, sent from the caller's buffer.
struct Outgoing {
    packet: Vec<u8>,
    payload: Bytes,
}

/// What the server announced in its VERSION reply.
pub struct ServerInfo {
    /// `(name, data)` of each extension.
    pub extensions: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ServerInfo {
    pub fn has(&self, name: &str) -> bool {
        self.extensions.iter().any(|(n, _)| n == name.as_bytes())
    }
}

/// A request queued on the channel, its reply still to come.
pub struct InFlight {
    op: &'static str,
    rx: oneshot::Receiver<std::result::Result<Reply, String>>,
}

impl InFlight {
    /// The reply; `path` names the subject in errors.
    pub async fn reply(self, path: &(dyn Fn() -> String + Sync)) -> Result<Reply> {
        match self.rx.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(reason)) => Err(RemoteError::Disconnected {
                op: self.op,
                path: path(),
                reason,
            }),
            Err(_) => Err(RemoteError::Disconnected {
                op: self.op,
                path: path(),
                reason: "reader stopped".into(),
            }),
        }
    }
}

/// One SFTP session over a pipe pair (ssh's stdio).
pub struct SftpChannel {
    shared: Arc<Shared>,
    out: mpsc::UnboundedSender<Outgoing>,
    next_id: AtomicU32,
    io_tasks: Vec<AbortHandle>,
    kill_child: Mutex<Option<oneshot::Sender<()>>>,
    exited: watch::Sender<bool>,
}

impl SftpChannel {
    /// Sends INIT, reads VERSION, and starts the I/O tasks.
    pub async fn handshake<R, W>(reader: R, writer: W, describe: &str) -> Result<(SftpChannel, ServerInfo)>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let fail = |reason: String| RemoteError::Connect {
            source_desc: describe.to_string(),
            reason,
        };
        let mut reader = BufReader::with_capacity(256 * 1024, reader);
        // Smaller than a write request's data, so that its data goes to the
        // pipe from the caller's buffer (one vectored write) while small
        // requests are still gathered into one.
        let mut writer = BufWriter::with_capacity(64 * 1024, writer);
        let sent = async {
            writer.write_all(&Packet::init()).await?;
            writer.flush().await
        };
        sent.await
            .map_err(|e| fail(format!("cannot start the SFTP session: {e}")))?;
        let packet = match read_packet(&mut reader).await {
            Ok(Some(packet)) => packet,
            Ok(None) => {
                return Err(fail(
                    "the SFTP server closed the connection during the handshake".into(),
                ))
            }
            Err(e) => return Err(fail(format!("SFTP handshake: {e}"))),
        };
        let mut r = Reader::new(&packet);
        let bad = |_| fail("malformed SFTP VERSION reply".into());
        if r.u8().map_err(bad)? != wire::VERSION {
            return Err(fail("the server did not answer the SFTP handshake".into()));
        }
        let version = r.u32().map_err(bad)?;
        if version != 3 {
            return Err(fail(format!("the server speaks SFTP version {version}, not 3")));
        }
        let mut extensions = Vec::new();
        while !r.is_empty() {
            let name = r.string().map_err(bad)?.to_vec();
            let data = r.string().map_err(bad)?.to_vec();
            extensions.push((name, data));
        }
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            ended: watch::Sender::new(None),
            heard: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        shared.heard_now();
        let (out, outgoing) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(writer, outgoing, shared.clone()));
        let reader = tokio::spawn(read_loop(reader, shared.clone()));
        let channel = SftpChannel {
            shared,
            out,
            next_id: AtomicU32::new(1),
            io_tasks: vec![writer.abort_handle(), reader.abort_handle()],
            kill_child: Mutex::new(None),
            exited: watch::Sender::new(true),
        };
        Ok((channel, ServerInfo { extensions }))
    }

    /// A fresh request id.
    pub fn id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues request `id` (encoded in `packet`, `payload` after it) and
    /// returns at once; the reply is awaited through the result.
    pub fn start(
        &self,
        op: &'static str,
        id: u32,
        packet: Vec<u8>,
        payload: Bytes,
        path: &(dyn Fn() -> String + Sync),
    ) -> Result<InFlight> {
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.shared.pending.lock().expect("pending lock");
            if let Some(reason) = &pending.closed {
                return Err(RemoteError::NotConnected {
                    op,
                    path: path(),
                    reason: reason.clone(),
                });
            }
            pending.waiters.insert(id, tx);
        }
        if self.out.send(Outgoing { packet, payload }).is_err() {
            self.shared
                .pending
                .lock()
                .expect("pending lock")
                .waiters
                .remove(&id);
            return Err(RemoteError::NotConnected {
                op,
                path: path(),
                reason: "writer stopped".into(),
            });
        }
        Ok(InFlight { op, rx })
    }

    /// Hands the ssh process to the channel: the session ends when it
    /// exits, and it is killed by [`SftpChannel::shutdown`] or on drop.
    pub fn attach_child(&self, mut child: tokio::process::Child) {
        let (kill, killed) = oneshot::channel::<()>();
        *self.kill_child.lock().expect("child lock") = Some(kill);
        let shared = self.shared.clone();
        self.exited.send_replace(false);
        let exited = self.exited.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = killed => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let reason = match status {
                Ok(status) => format!("ssh exited ({status})"),
                Err(err) => format!("ssh lost: {err}"),
            };
            shared.fail_all(reason);
            exited.send_replace(true);
        });
    }

    pub fn exited(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut exited = self.exited.subscribe();
        async move {
            let _ = exited.wait_for(|e| *e).await;
        }
    }

    pub fn closed(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut ended = self.shared.ended.subscribe();
        async move {
            match ended.wait_for(Option::is_some).await {
                Ok(reason) => reason.clone().unwrap_or_default(),
                Err(_) => "client dropped".to_string(),
            }
        }
    }

    pub fn in_flight(&self) -> usize {
        self.shared.pending.lock().expect("pending lock").waiters.len()
    }

    pub fn last_heard(&self) -> Instant {
        self.shared.epoch + Duration::from_nanos(self.shared.heard.load(Ordering::Relaxed))
    }

    pub fn shutdown(&self, reason: &str) {
        self.shared.fail_all(reason.to_string());
        for task in &self.io_tasks {
            task.abort();
        }
        if let Some(kill) = self.kill_child.lock().expect("child lock").take() {
            let _ = kill.send(());
        }
    }
}

impl Drop for SftpChannel {
    fn drop(&mut self) {
        self.shutdown("client dropped");
    }
}

/// One packet's body (type onwards), `None` at a clean end of stream.
async fn read_packet<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > wire::MAX_PACKET {
        return Err(std::io::Error::other(format!("SFTP packet of {len} bytes")));
    }
    // Read into the spare capacity: a 255 KiB read reply is not zeroed
    // first.
    let mut body = Vec::with_capacity(len);
    while body.len() < len {
        let want = (len - body.len()) as u64;
        if (&mut *reader).take(want).read_buf(&mut body).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(Some(body))
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: BufWriter<W>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
) {
    while let Some(out) = outgoing.recv().await {
        let mut result = send(&mut writer, &out).await;
        // Gather whatever else is queued into the same flush.
        while result.is_ok() {
            match outgoing.try_recv() {
                Ok(out) => result = send(&mut writer, &out).await,
                Err(_) => break,
            }
        }
        if result.is_ok() {
            result = writer.flush().await;
        }
        if let Err(err) = result {
            shared.fail_all(format!("write to the SFTP server failed: {err}"));
            return;
        }
    }
    let _ = writer.shutdown().await;
}

async fn send<W: AsyncWrite + Unpin>(writer: &mut BufWriter<W>, out: &Outgoing) -> std::io::Result<()> {
    if out.payload.is_empty() {
        writer.write_all(&out.packet).await
    } else {
        yonder_proto::stream::write_parts(writer, &out.packet, &out.payload).await
    }
}

async fn read_loop<R: AsyncRead + Unpin>(mut reader: BufReader<R>, shared: Arc<Shared>) {
    let reason = loop {
        let body = match read_packet(&mut reader).await {
            Ok(Some(body)) => body,
            Ok(None) => break "the SFTP server closed the connection".to_string(),
            Err(err) => break format!("read from the SFTP server failed: {err}"),
        };
        shared.heard_now();
        if body.len() < 5 {
            break "SFTP reply without an id".to_string();
        }
        let kind = body[0];
        let id = u32::from_be_bytes(body[1..5].try_into().expect("4 bytes"));
        let waiter = shared.pending.lock().expect("pending lock").waiters.remove(&id);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(Ok(Reply { kind, packet: body }));
            }
            None => tracing::warn!(id, "SFTP reply for an unknown request id"),
        }
    };
    tracing::debug!(%reason, "SFTP connection ended");
    shared.fail_all(reason);
}
