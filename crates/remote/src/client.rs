//! [`AgentClient`]: the yonder protocol over any byte stream, an
//! [`Exchange`] and so a [`Remote`](crate::Remote).
//!
//! Callers encode their own request frames (so encoding runs in parallel on
//! the callers' threads) and hand them to one writer task; one reader task
//! routes each response to its caller by request id. Any number of requests
//! can be in flight, and responses may come back in any order.
//!
//! Frames are read with `yonder_proto::stream::FrameReader`, the agent's
//! reader too. A write's data is not encoded: the caller's `Bytes` go to the
//! writer task beside an encoded header and out in one vectored write, so
//! between [`Remote::write`](crate::Remote::write) and the transport the payload is not copied
//! (a read's data likewise arrives in a buffer of its own).
//!
//! For a supervisor (`link.rs`) the client tells when the connection ended
//! ([`AgentClient::closed`]: end of stream, a failed write, the agent
//! process exiting), when the agent was last heard from
//! ([`AgentClient::last_heard`]: any frame counts), and can be shut down
//! ([`AgentClient::shutdown`]: the transport killed, every call in flight
//! failed at once), so that no caller waits on a dead or stopped agent.

use crate::deploy::AgentOrigin;
use crate::exchange::{call, unexpected, Describe, Exchange};
use crate::{RemoteError, Result};
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use yonder_proto::codec::encode_write_request_header;
use yonder_proto::stream::{write_parts, FrameReader};
use yonder_proto::{
    encode_frame, encode_frame_into, Handle, Hello, Message, Notice, Request, Response, PROTOCOL_VERSION,
};

type Reply = std::result::Result<Response, Failure>;

/// Notices kept for a subscriber that has not taken them yet; one that
/// falls further behind is told that it missed some.
const NOTICES_QUEUED: usize = 1024;

/// Why a request got no response from the agent.
enum Failure {
    Disconnected(String),
    /// The response arrived but could not be understood.
    Protocol(String),
}

struct Shared {
    pending: Mutex<Pending>,
    /// Why the connection ended, once it has (the same reason as
    /// `Pending::closed`), for [`AgentClient::closed`].
    ended: watch::Sender<Option<String>>,
    /// When the agent was last heard from (any frame), as nanoseconds
    /// since `epoch`.
    heard: AtomicU64,
    epoch: Instant,
    /// Change notices the agent pushed (frames of id 0).
    notices: broadcast::Sender<Notice>,
}

#[derive(Default)]
struct Pending {
    waiters: HashMap<u64, oneshot::Sender<Reply>>,
    /// Set once the connection is gone; later calls fail at once with it.
    closed: Option<String>,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            pending: Mutex::new(Pending::default()),
            ended: watch::Sender::new(None),
            heard: AtomicU64::new(0),
            epoch: Instant::now(),
            notices: broadcast::channel(NOTICES_QUEUED).0,
        }
    }

    /// Ends the connection: every call waiting fails with `reason`, and so
    /// does every later one. The first reason given is the one kept.
    fn fail_all(&self, reason: String) {
        let mut pending = self.pending.lock().expect("pending lock");
        if pending.closed.is_none() {
            pending.closed = Some(reason.clone());
            self.ended.send_replace(Some(reason.clone()));
        }
        for (_, waiter) in pending.waiters.drain() {
            let _ = waiter.send(Err(Failure::Disconnected(reason.clone())));
        }
    }

    fn heard_now(&self) {
        let nanos = self.epoch.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        self.heard.store(nanos, Ordering::Relaxed);
    }
}

/// A request on its way to the writer task: an encoded frame, or for a
/// write the frame's header and the caller's data, sent after it as is.
struct Outgoing {
    frame: Vec<u8>,
    payload: Bytes,
}

/// How a failed handshake with an agent of another protocol version
/// begins.
pub(crate) const VERSION_MISMATCH: &str = "protocol version mismatch";

/// A connection to one `yonder agent`.
pub struct AgentClient {
    shared: Arc<Shared>,
    frames: mpsc::UnboundedSender<Outgoing>,
    next_id: AtomicU64,
    peer: Hello,
    /// The agent records `Once` operations for the session this client
    /// fenced (see [`crate::Operation`]).
    exactly_once: AtomicBool,
    /// The reader and writer tasks: aborted by `shutdown`, which closes
    /// the transport's stream.
    io_tasks: Vec<AbortHandle>,
    /// Kills the agent process, when this client started one (sending,
    /// or dropping the sender, kills it: on drop of the client too).
    kill_child: Mutex<Option<oneshot::Sender<()>>>,
    /// Turns true once the agent process (if any) has exited and been
    /// reaped.
    exited: watch::Sender<bool>,
    /// How the agent got there, when this client started it.
    origin: std::sync::OnceLock<AgentOrigin>,
}

impl AgentClient {
    /// Performs the handshake on `reader`/`writer` and starts the I/O tasks.
    /// `describe` names the peer in errors (e.g. the SOURCE string).
    pub async fn handshake<R, W>(reader: R, writer: W, describe: &str) -> Result<AgentClient>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let connect_err = |reason: String| RemoteError::Connect {
            source_desc: describe.to_string(),
            reason,
        };
        let mut reader = FrameReader::new(BufReader::with_capacity(256 * 1024, reader));
        let mut writer = BufWriter::with_capacity(256 * 1024, writer);

        let hello = Hello {
            version: PROTOCOL_VERSION,
            capabilities: yonder_proto::CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            software: format!("yonder {} client", env!("CARGO_PKG_VERSION")),
        };
        let frame = encode_frame(0, &Message::Hello(hello)).expect("hello fits in a frame");
        let sent = async {
            writer.write_all(&frame).await?;
            writer.flush().await
        };
        if let Err(err) = sent.await {
            return Err(connect_err(format!("cannot send handshake: {err}")));
        }
        let frame = match reader.next_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                return Err(connect_err(
                    "agent closed the connection during the handshake".into(),
                ))
            }
            Err(err) => return Err(connect_err(format!("handshake: {err}"))),
        };
        if frame.payload.is_some() {
            return Err(connect_err("agent answered the handshake with data".into()));
        }
        let id = frame.id;
        let message = frame
            .into_message()
            .map_err(|err| connect_err(format!("handshake: {err}")))?;
        let peer = match (id, message) {
            (0, Message::Hello(peer)) if peer.version == PROTOCOL_VERSION => peer,
            (0, Message::Hello(peer)) => {
                return Err(connect_err(format!(
                    "{VERSION_MISMATCH}: client speaks v{PROTOCOL_VERSION}, agent speaks v{}",
                    peer.version
                )))
            }
            (_, Message::Response(Response::Error(err))) => return Err(connect_err(err.message)),
            (_, other) => return Err(connect_err(format!("unexpected handshake reply: {other:?}"))),
        };

        let shared = Arc::new(Shared::new());
        shared.heard_now();
        let (frames, outgoing) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(writer, outgoing, shared.clone()));
        let reader = tokio::spawn(read_loop(reader, shared.clone()));
        Ok(AgentClient {
            shared,
            frames,
            next_id: AtomicU64::new(1),
            peer,
            exactly_once: AtomicBool::new(false),
            io_tasks: vec![writer.abort_handle(), reader.abort_handle()],
            kill_child: Mutex::new(None),
            exited: watch::Sender::new(true),
            origin: std::sync::OnceLock::new(),
        })
    }

    /// Records how the agent got there (set once, by whoever started it).
    pub(crate) fn set_origin(&self, origin: AgentOrigin) {
        let _ = self.origin.set(origin);
    }

    /// How the agent got there (`None`: a stream this client did not
    /// start, such as an in-process agent).
    pub fn origin(&self) -> Option<AgentOrigin> {
        self.origin.get().copied()
    }

    /// Hands the agent process to the client: the connection counts as
    /// ended as soon as it exits, and it is killed by
    /// [`AgentClient::shutdown`] or when the client is dropped.
    pub(crate) fn attach_child(&self, mut child: tokio::process::Child) {
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
                Ok(status) => format!("agent process exited ({status})"),
                Err(err) => format!("agent process lost: {err}"),
            };
            shared.fail_all(reason);
            exited.send_replace(true);
        });
    }

    /// Resolves once the agent process this client started has exited and
    /// been reaped (at once if it started none).
    pub fn exited(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut exited = self.exited.subscribe();
        async move {
            let _ = exited.wait_for(|e| *e).await;
        }
    }

    /// Resolves once the connection has ended (the agent's stream closed,
    /// a write to it failed, its process exited, or [`shutdown`] was
    /// called), with the reason. Independent of `self`.
    ///
    /// [`shutdown`]: AgentClient::shutdown
    pub fn closed(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut ended = self.shared.ended.subscribe();
        async move {
            match ended.wait_for(Option::is_some).await {
                Ok(reason) => reason.clone().unwrap_or_default(),
                Err(_) => "client dropped".to_string(),
            }
        }
    }

    /// Requests sent and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.shared.pending.lock().expect("pending lock").waiters.len()
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.ended.borrow().is_some()
    }

    /// When the agent was last heard from: any frame it sent (a heartbeat's
    /// answer or any other response), or the handshake.
    pub fn last_heard(&self) -> Instant {
        self.shared.epoch + Duration::from_nanos(self.shared.heard.load(Ordering::Relaxed))
    }

    /// Ends the connection now: every call in flight and every later one
    /// fails with `reason` ([`RemoteError::Disconnected`] or
    /// [`RemoteError::NotConnected`]), the stream is closed and the agent
    /// process (if this client started one) is killed. For a supervisor
    /// that has found the agent dead or hung.
    pub fn shutdown(&self, reason: &str) {
        self.shared.fail_all(reason.to_string());
        for task in &self.io_tasks {
            task.abort();
        }
        if let Some(kill) = self.kill_child.lock().expect("child lock").take() {
            let _ = kill.send(());
        }
    }

    /// The change notices the agent pushes, when it and this client both
    /// list the `watch` capability.
    pub fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        let ours = yonder_proto::CAPABILITIES.contains(&"watch");
        let theirs = self.peer.capabilities.iter().any(|c| c == "watch");
        (ours && theirs).then(|| self.shared.notices.subscribe())
    }

    /// The agent's handshake: version, capabilities, software.
    pub fn peer(&self) -> &Hello {
        &self.peer
    }

    /// Makes this agent the one serving connection `session` at
    /// `generation`: an older agent of the session refuses changes from
    /// then on (see `Request::Fence`). Whether the agent could claim its
    /// place: `Ok(false)` for an agent without the `fence` capability.
    pub async fn fence(&self, session: u64, generation: u64) -> Result<bool> {
        if !self.peer.capabilities.iter().any(|c| c == "fence") {
            return Ok(false);
        }
        let describe = || format!("<session {session:016x} generation {generation}>");
        let r = call(self, Request::Fence { session, generation }, &describe).await?;
        match r {
            Response::Done => {
                // Its records are the session's: only a fenced agent keeps
                // them for the next one.
                let once = self.peer.capabilities.iter().any(|c| c == "once");
                self.exactly_once.store(once, Ordering::Relaxed);
                Ok(true)
            }
            other => Err(unexpected("fence", describe(), other)),
        }
    }

    /// Encodes one request and waits for its response.
    async fn send_request(&self, request: Request, path: Describe<'_>) -> Result<Response> {
        let op = request.op();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = Vec::new();
        encode_frame_into(id, &Message::Request(request), &mut frame).map_err(|err| {
            RemoteError::Protocol {
                op,
                path: path(),
                reason: err.to_string(),
            }
        })?;
        let payload = Bytes::new();
        self.send_frame(op, path, id, Outgoing { frame, payload }).await
    }

    /// Hands request `id`, encoded, to the writer and waits for its
    /// response (an error response included).
    async fn send_frame(
        &self,
        op: &'static str,
        path: Describe<'_>,
        id: u64,
        frame: Outgoing,
    ) -> Result<Response> {
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
        if self.frames.send(frame).is_err() {
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
        match rx.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(Failure::Disconnected(reason))) => Err(RemoteError::Disconnected {
                op,
                path: path(),
                reason,
            }),
            Ok(Err(Failure::Protocol(reason))) => Err(RemoteError::Protocol {
                op,
                path: path(),
                reason,
            }),
            Err(_) => Err(RemoteError::Disconnected {
                op,
                path: path(),
                reason: "reader stopped".into(),
            }),
        }
    }
}

impl Exchange for AgentClient {
    fn exchange(
        &self,
        request: Request,
        subject: Describe<'_>,
    ) -> impl Future<Output = Result<Response>> + Send {
        self.send_request(request, subject)
    }

    fn exactly_once(&self) -> bool {
        self.exactly_once.load(Ordering::Relaxed)
    }

    fn peer_has(&self, capability: &str) -> bool {
        self.peer.capabilities.iter().any(|c| c == capability)
    }

    /// The same frame as `Request::Write { handle, offset, data }`, but only
    /// its header is encoded: the data is sent from `data` itself.
    async fn exchange_write(
        &self,
        handle: Handle,
        offset: u64,
        data: Bytes,
        subject: Describe<'_>,
    ) -> Result<Response> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_write_request_header(id, handle, offset, data.len()).map_err(|err| {
            RemoteError::Protocol {
                op: "write",
                path: subject(),
                reason: err.to_string(),
            }
        })?;
        let out = Outgoing { frame, payload: data };
        self.send_frame("write", subject, id, out).await
    }
}

impl Drop for AgentClient {
    fn drop(&mut self) {
        self.shared.fail_all("client dropped".into());
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: BufWriter<W>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
) {
    while let Some(out) = outgoing.recv().await {
        let mut result = send(&mut writer, &out).await;
        // Batch whatever else is already queued into the same flush, so 64
        // pipelined requests cost a handful of write syscalls, not 64.
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
            shared.fail_all(format!("write to agent failed: {err}"));
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Writes one request. A write's data goes out from the caller's buffer
/// behind its header (one vectored write; the `BufWriter` passes a payload
/// of its capacity or more straight through, and gathers smaller ones).
async fn send<W: AsyncWrite + Unpin>(writer: &mut BufWriter<W>, out: &Outgoing) -> std::io::Result<()> {
    if out.payload.is_empty() {
        writer.write_all(&out.frame).await
    } else {
        write_parts(writer, &out.frame, &out.payload).await
    }
}

async fn read_loop<R: AsyncRead + Unpin>(mut reader: FrameReader<BufReader<R>>, shared: Arc<Shared>) {
    let reason = loop {
        let frame = match reader.next_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => break "agent closed the connection".to_string(),
            Err(err) => break format!("read from agent failed: {err}"),
        };
        shared.heard_now();
        let id = frame.id;
        // Requests are numbered from 1: id 0 is what the agent says unasked.
        if id == 0 {
            match frame.into_message() {
                Ok(Message::Notice(notice)) => {
                    let _ = shared.notices.send(notice);
                }
                Ok(_) => tracing::warn!("unexpected unsolicited message from the agent"),
                Err(err) => tracing::warn!("undecodable notice from the agent: {err}"),
            }
            continue;
        }
        let waiter = shared.pending.lock().expect("pending lock").waiters.remove(&id);
        let Some(waiter) = waiter else {
            tracing::warn!(id, "response for an unknown request id");
            continue;
        };
        // A read's data arrives split off its frame and is moved into the
        // response, not decoded out of a frame buffer.
        let reply = match frame.into_message() {
            Ok(Message::Response(response)) => Ok(response),
            Ok(Message::Hello(_)) => Err(Failure::Protocol("expected a response, got a Hello".into())),
            Ok(Message::Notice(_)) => Err(Failure::Protocol("expected a response, got a notice".into())),
            Ok(Message::Request(request)) => Err(Failure::Protocol(format!(
                "expected a response, got a {} request",
                request.op()
            ))),
            Err(err) => Err(Failure::Protocol(err.to_string())),
        };
        let _ = waiter.send(reply);
    };
    tracing::debug!(%reason, "agent connection ended");
    shared.fail_all(reason);
}
