//! The remote side of yonder: serves one directory tree over a byte stream.
//!
//! `yonder agent --stdio --root DIR` runs [`run_stdio`] on the remote
//! machine, usually under ssh. The client sends framed requests (see
//! `yonder_proto`); the agent runs each one concurrently on a blocking
//! thread pool and sends responses back as they complete, possibly out of
//! order, each tagged with its request's id.
//! [`Handler`] is the same request handling without the byte stream, for
//! a client in the same process.
//!
//! stdout carries the protocol, so this crate never prints: diagnostics are
//! `tracing` events, routed by the binary (to stderr or a log file).

// The agent proper is built on Unix system calls (rustix's `*at` calls,
// splice, inotify through notify, flock); on Windows a portable agent on
// std::fs alone serves a local tree (`portable_agent.rs`).
#[cfg(unix)]
mod attr;
#[cfg(unix)]
mod direct;
#[cfg(unix)]
mod dirs;
mod error;
#[cfg(unix)]
mod fence;
#[cfg(unix)]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(unix)]
mod handler;
#[cfg(unix)]
mod handles;
#[cfg(unix)]
mod inline;
#[cfg(unix)]
mod ops;
#[cfg(unix)]
mod paths;
// Built for the tests on every host too: its logic is tested on Linux.
#[cfg(any(windows, test))]
mod portable_agent;
#[cfg(unix)]
mod reply_cache;
#[cfg(unix)]
mod splice;
#[cfg(unix)]
mod stdio;
#[cfg(unix)]
mod tree;
#[cfg(unix)]
mod watch;
mod wire;

#[cfg(unix)]
pub use direct::serve_listener;
pub use error::AgentError;
#[cfg(unix)]
pub use handler::Handler;

#[cfg(unix)]
use handler::run;
#[cfg(unix)]
use ops::Agent;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use wire::{encode_response, kind, protocol_error, read_frame};
use yonder_proto::stream::{write_parts, FrameReader};
use yonder_proto::{Errno, Hello, Message, Response, WireError, PROTOCOL_VERSION};
#[cfg(unix)]
use yonder_proto::{Notice, CAPABILITIES};

/// What to serve.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Directory tree to serve; wire paths are relative to it.
    pub root: PathBuf,
}

const READ_BUFFER: usize = 64 * 1024;
/// Large enough that a burst of small responses leaves in one write.
const WRITE_BUFFER: usize = 256 * 1024;
/// Requests read but not yet answered. Past this the agent stops reading,
/// which bounds its memory (each may hold a 4 MiB read) when a client sends
/// faster than it takes responses.
const MAX_IN_FLIGHT: usize = 128;
/// After the client's end of stream, how long requests still running may
/// take to send their responses. A request stuck in a system call (opening a
/// FIFO nobody writes) must not keep the agent alive forever.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the protocol on `reader`/`writer` until the reader reaches EOF.
/// Returns Ok on clean EOF.
#[cfg(unix)]
pub async fn serve<R, W>(config: AgentConfig, reader: R, writer: W) -> Result<(), AgentError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    serve_with(config, reader, writer, None, true, None).await
}

/// [`serve`] on a direct connection (already authenticated, see
/// `direct.rs`): the same protocol, but it opens no listener of its own:
/// only the stream that started the agent hands out secrets. The streams
/// of one client share `agent` (its handles, fence and reply records), so
/// that any of them may carry a read of a file another opened. Boxed: a
/// direct connection is served from within `serve_with`'s own future.
#[cfg(unix)]
pub(crate) fn serve_direct<R, W>(
    config: AgentConfig,
    agent: Arc<Agent>,
    reader: R,
    writer: W,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), AgentError>> + Send>>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(serve_with(config, reader, writer, None, false, Some(agent)))
}

#[cfg(unix)]
/// [`serve`], with `splice_out` (a second descriptor of `writer`'s pipe or
/// socket) to send read data without copying it; `bootstrap`: whether this
/// stream may open direct listeners (`Request::DirectListen`); `shared`:
/// the agent state this stream shares with others of its client.
async fn serve_with<R, W>(
    config: AgentConfig,
    reader: R,
    writer: W,
    splice_out: Option<splice::SpliceOut>,
    bootstrap: bool,
    shared: Option<Arc<Agent>>,
) -> Result<(), AgentError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let root = match &shared {
        Some(agent) => agent.root().to_path_buf(),
        None => config.root.clone(),
    };
    let root = paths::Root::open(&root)?;
    // The client already applied the caller's umask; applying the agent's as
    // well would strip bits the caller asked for.
    rustix::process::umask(rustix::fs::Mode::empty());
    tracing::debug!(root = %root.path().display(), "serving");

    let mut reader = FrameReader::new(BufReader::with_capacity(READ_BUFFER, reader));
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, writer);
    let client_watches = handshake(&mut reader, &mut writer, CAPABILITIES).await?;

    let (tx, rx) = mpsc::unbounded_channel();
    let (watch, watch_tasks) = match client_watches.then(|| start_watching(root.path(), tx.clone())) {
        Some(Some((watching, tasks))) => (Some(watching), Some(tasks)),
        _ => (None, None),
    };
    let agent = shared.unwrap_or_else(|| Arc::new(Agent::new(root)));
    if let Some((watch, notices)) = &watch {
        let (watch, notices) = (watch.clone(), notices.clone());
        agent.on_visit(Box::new(move |path| watch.directory(path, &notices)));
    }
    let splicing = splice_out.is_some();
    // Dropped when this stream ends, and with it every direct listener and
    // connection it opened.
    let direct = bootstrap.then(|| (config.clone(), Arc::new(direct::DirectListeners::default())));
    let mut responses = tokio::spawn(write_responses(writer, rx, agent.clone(), splice_out));
    let read = tokio::select! {
        read = read_requests(&mut reader, agent, tx, splicing, watch, direct) => read,
        // Only an error ends the writer while the reader holds a sender.
        written = &mut responses => return Err(writer_failure(written)),
    };
    // Nothing is pushed once the client has gone, and the writer ends
    // only once every sender is gone.
    drop(watch_tasks);
    if let Err(err) = read {
        tracing::warn!(error = %error_chain(&err), "stopping");
        responses.abort();
        return Err(err);
    }
    match tokio::time::timeout(DRAIN_TIMEOUT, &mut responses).await {
        Ok(Ok(written)) => written,
        Ok(Err(join)) => Err(writer_failure(Err(join))),
        Err(_) => {
            tracing::warn!("client left; abandoning requests still running after {DRAIN_TIMEOUT:?}");
            responses.abort();
            Ok(())
        }
    }
}

#[cfg(unix)]
/// Convenience used by `yonder agent --stdio --root DIR`: builds a tokio
/// runtime and serves stdin/stdout.
pub fn run_stdio(config: AgentConfig) -> Result<(), AgentError> {
    raise_fd_limit();
    // One thread does all the protocol work (reading, quick metadata calls,
    // writing); everything that may block goes to the blocking pool. A
    // second worker only adds wake-ups between the two: lstat round trips
    // through a local agent measured 30-35k/s this way, 16-21k/s with two.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| AgentError::Runtime { source })?;
    let result = runtime.block_on(async {
        let io_err = |source| AgentError::Io {
            op: "setting up stdin/stdout",
            source,
        };
        let reader = stdio::stdin().map_err(io_err)?;
        let (writer, splice_out) = stdio::stdout().map_err(io_err)?;
        serve_with(config, reader, writer, splice_out, true, None).await
    });
    // Blocking threads stuck in a system call (or in a read of stdin after a
    // protocol error) must not delay the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// `yonder agent --listen ADDR --key FILE`: builds a runtime and serves
/// every connection that proves `key` ([`serve_listener`]) until killed.
#[cfg(unix)]
pub fn run_listener(config: AgentConfig, addr: &str, key: Vec<u8>) -> Result<(), AgentError> {
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| AgentError::Runtime { source })?;
    runtime.block_on(serve_listener(config, addr.to_string(), key))
}

#[cfg(unix)]
/// The agent's side of a client's watch: the directories watched and
/// where their notices go.
type Watching = (Arc<watch::Watch>, mpsc::UnboundedSender<Notice>);

#[cfg(unix)]
/// Stops the tasks that watch and send notices when dropped: with the
/// session, so that the writer (which they feed) can end.
struct WatchTasks(Vec<tokio::task::AbortHandle>);

#[cfg(unix)]
impl Drop for WatchTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

#[cfg(unix)]
/// Starts watching the served tree for a client that asked for notices,
/// each sent to the writer as a frame of id 0.
fn start_watching(
    root: &std::path::Path,
    tx: mpsc::UnboundedSender<Outgoing>,
) -> Option<(Watching, WatchTasks)> {
    let (notices, mut pushed) = mpsc::unbounded_channel::<Notice>();
    let (watch, gathering) = watch::Watch::start(root, notices.clone())?;
    let sending = tokio::spawn(async move {
        while let Some(notice) = pushed.recv().await {
            let frame = match yonder_proto::encode_frame(0, &Message::Notice(notice)) {
                Ok(frame) => frame,
                // A list of paths too long for a frame says as much as
                // an overflow.
                Err(_) => yonder_proto::encode_frame(0, &Message::Notice(Notice::Overflow))
                    .expect("an overflow fits in a frame"),
            };
            let out = Outgoing {
                frame,
                payload: Payload::Bytes(Vec::new()),
                _slot: None,
            };
            if tx.send(out).is_err() {
                return;
            }
        }
    });
    Some((
        (watch, notices),
        WatchTasks(vec![gathering, sending.abort_handle()]),
    ))
}

/// Answers the client's `Hello`, announcing `capabilities`; whether the
/// client asked for pushed change notices (both sides list `watch`).
async fn handshake<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut W,
    capabilities: &[&str],
) -> Result<bool, AgentError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let no_hello = || AgentError::Handshake {
        detail: "the client closed the connection before sending Hello".to_string(),
    };
    let frame = read_frame(reader).await?.ok_or_else(no_hello)?;
    let refusal = match frame.into_message() {
        Ok(Message::Hello(client)) if client.version == PROTOCOL_VERSION => {
            tracing::debug!(client = %client.software, capabilities = ?client.capabilities, "handshake");
            let hello = Hello {
                version: PROTOCOL_VERSION,
                capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
                software: format!("yonder {} agent", env!("CARGO_PKG_VERSION")),
            };
            let watches = [&hello.capabilities, &client.capabilities]
                .iter()
                .all(|caps| caps.iter().any(|c| c == "watch"));
            send(writer, Message::Hello(hello)).await?;
            return Ok(watches);
        }
        Ok(Message::Hello(hello)) => AgentError::VersionMismatch {
            client: hello.version,
            agent: PROTOCOL_VERSION,
        },
        Ok(other) => AgentError::Handshake {
            detail: format!("expected Hello as the first message, got a {}", kind(&other)),
        },
        Err(err) => AgentError::Handshake {
            detail: err.to_string(),
        },
    };
    tracing::warn!(error = %refusal, "refusing the client");
    let error = WireError {
        errno: Errno::EPROTO,
        message: refusal.to_string(),
    };
    send(writer, Message::Response(Response::Error(error))).await?;
    Err(refusal)
}

/// Sends a handshake frame (id 0) and flushes it.
async fn send<W: AsyncWrite + Unpin>(writer: &mut W, message: Message) -> Result<(), AgentError> {
    let frame = yonder_proto::encode_frame(0, &message).expect("a handshake message fits in a frame");
    let io_err = |source| AgentError::Io {
        op: "answering the client's Hello",
        source,
    };
    writer.write_all(&frame).await.map_err(io_err)?;
    writer.flush().await.map_err(io_err)
}

#[cfg(unix)]
/// An encoded response (or notice) on its way to the writer. A response
/// holds its request's in-flight slot until written, so that unsent
/// responses count against [`MAX_IN_FLIGHT`] too.
struct Outgoing {
    frame: Vec<u8>,
    payload: Payload,
    _slot: Option<OwnedSemaphorePermit>,
}

#[cfg(unix)]
/// A read's data, sent after the frame header.
enum Payload {
    /// In the buffer it was read into.
    Bytes(Vec<u8>),
    /// Still in the pipe it was spliced into.
    Spliced(splice::Spliced),
}

#[cfg(unix)]
impl Outgoing {
    fn new(id: u64, response: Response, slot: OwnedSemaphorePermit) -> Outgoing {
        let (frame, payload) = encode_response(id, response);
        Outgoing {
            frame,
            payload: Payload::Bytes(payload),
            _slot: Some(slot),
        }
    }

    fn spliced(id: u64, data: splice::Spliced, slot: OwnedSemaphorePermit) -> Outgoing {
        match yonder_proto::codec::encode_data_response_header(id, data.len) {
            Ok(frame) => Outgoing {
                frame,
                payload: Payload::Spliced(data),
                _slot: Some(slot),
            },
            Err(err) => Outgoing::new(id, wire::too_large_response(err), slot),
        }
    }
}

#[cfg(unix)]
async fn read_requests<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    agent: Arc<Agent>,
    tx: mpsc::UnboundedSender<Outgoing>,
    splicing: bool,
    watch: Option<Watching>,
    direct: Option<(AgentConfig, Arc<direct::DirectListeners>)>,
) -> Result<(), AgentError> {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut inline = inline::InlinePolicy::new(agent.root());
    while let Some(frame) = read_frame(reader).await? {
        let slot = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let id = frame.id;
        // A write's data arrives split off its frame and is moved into the
        // request, not decoded out of a frame buffer.
        let message = frame.into_message();
        if let (Some((watch, notices)), Ok(Message::Request(request))) = (&watch, &message) {
            watch.before(request, notices);
        }
        let response = match message {
            Ok(Message::Request(yonder_proto::Request::DirectListen { bind, connections }))
                if direct.is_some() =>
            {
                let (config, listeners) = direct.as_ref().expect("checked");
                tracing::debug!(id, op = "direct-listen", "request");
                listeners.listen(config, bind, connections).await
            }
            // A quick metadata call costs less than the two thread hand-offs
            // the pool would add (see `inline`).
            Ok(Message::Request(request)) if inline.allows(&request) && !agent.may_wait(&request) => {
                tracing::debug!(id, op = request.op(), "request, inline");
                match &watch {
                    Some((watch, notices)) if watch::Watch::makes_directory(&request) => {
                        let made = request.clone();
                        let response = run(&agent, id, request);
                        watch.after(&made, notices);
                        response
                    }
                    _ => run(&agent, id, request),
                }
            }
            Ok(Message::Request(yonder_proto::Request::Read { handle, offset, len })) if splicing => {
                tracing::debug!(id, op = "read", "request, spliced");
                let (agent, tx) = (agent.clone(), tx.clone());
                tokio::task::spawn_blocking(move || {
                    // Unwind safety as in `run`: a panic leaves the tables
                    // as consistent as one map operation does.
                    let spliced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        agent.read_spliced(handle, offset, len)
                    }));
                    let outgoing = match spliced {
                        Err(_) => Outgoing::new(id, handler::panicked(id, "read"), slot),
                        Ok(Some(Ok(data))) => Outgoing::spliced(id, data, slot),
                        Ok(Some(Err(response))) => Outgoing::new(id, response, slot),
                        Ok(None) => {
                            let request = yonder_proto::Request::Read { handle, offset, len };
                            Outgoing::new(id, run(&agent, id, request), slot)
                        }
                    };
                    let _ = tx.send(outgoing);
                });
                continue;
            }
            Ok(Message::Request(request)) => {
                tracing::debug!(id, op = request.op(), "request");
                let (agent, tx) = (agent.clone(), tx.clone());
                let made = match &watch {
                    Some((watch, notices)) if watch::Watch::makes_directory(&request) => {
                        Some((watch.clone(), notices.clone(), request.clone()))
                    }
                    _ => None,
                };
                tokio::task::spawn_blocking(move || {
                    let response = run(&agent, id, request);
                    if let Some((watch, notices, request)) = made {
                        watch.after(&request, &notices);
                    }
                    // Fails only when the writer is gone, and then serve is
                    // returning anyway.
                    let _ = tx.send(Outgoing::new(id, response, slot));
                });
                continue;
            }
            Ok(other) => {
                tracing::warn!(id, kind = kind(&other), "unexpected message after the handshake");
                protocol_error(format!("unexpected {} message after the handshake", kind(&other)))
            }
            Err(err) => {
                tracing::warn!(id, error = %err, "undecodable request");
                protocol_error(err.to_string())
            }
        };
        let _ = tx.send(Outgoing::new(id, response, slot));
    }
    tracing::debug!("client closed the connection");
    Ok(())
}

#[cfg(unix)]
/// Owns the writer. Responses that completed while the previous write was
/// in progress share one flush; a lone response is flushed immediately.
async fn write_responses<W: AsyncWrite + Unpin>(
    mut writer: BufWriter<W>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    agent: Arc<Agent>,
    splice_out: Option<splice::SpliceOut>,
) -> Result<(), AgentError> {
    let io_err = |source| AgentError::Io {
        op: "writing responses to the client",
        source,
    };
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(out) = next {
            match out.payload {
                // Header and data in one vectored write, not joined first.
                Payload::Bytes(bytes) => write_parts(&mut writer, &out.frame, &bytes)
                    .await
                    .map_err(io_err)?,
                Payload::Spliced(data) => match &splice_out {
                    Some(output) => {
                        // The header (and everything before it) goes out
                        // first, through the writer's own descriptor.
                        writer.write_all(&out.frame).await.map_err(io_err)?;
                        writer.flush().await.map_err(io_err)?;
                        output.send(data, agent.pipes()).await.map_err(io_err)?;
                    }
                    None => {
                        let bytes = data.into_bytes(agent.pipes()).map_err(io_err)?;
                        write_parts(&mut writer, &out.frame, &bytes)
                            .await
                            .map_err(io_err)?;
                    }
                },
            }
            next = rx.try_recv().ok();
        }
        writer.flush().await.map_err(io_err)?;
    }
    writer.shutdown().await.map_err(io_err)
}

#[cfg(unix)]
fn writer_failure(joined: Result<Result<(), AgentError>, tokio::task::JoinError>) -> AgentError {
    match joined {
        Ok(Err(err)) => err,
        Ok(Ok(())) => AgentError::Io {
            op: "writing responses to the client",
            source: std::io::Error::other("the response writer stopped early"),
        },
        Err(join) => AgentError::Io {
            op: "writing responses to the client",
            source: std::io::Error::other(join),
        },
    }
}

/// The error and its causes on one line, for logs.
#[cfg(unix)]
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(unix)]
/// Every open file and directory listing holds a descriptor; the default
/// soft limit (often 1024) is low for a busy mount, the hard limit rarely is.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    // `None` is unlimited; a soft limit of "unlimited" cannot be set anyway.
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum) {
        if current < maximum {
            let raised = rustix::process::Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            };
            if let Err(err) = setrlimit(Resource::Nofile, raised) {
                tracing::debug!(%err, "cannot raise the open file limit");
            }
        }
    }
}

/// Serves the protocol on `reader`/`writer` until the reader reaches EOF,
/// with the portable agent (`portable_agent.rs`): each request on the
/// blocking pool, answered as it finishes. It announces no capability, so
/// the client pushes no `Once`, `Fence` or `ListTree` and expects no
/// notices.
#[cfg(windows)]
pub async fn serve<R, W>(config: AgentConfig, reader: R, writer: W) -> Result<(), AgentError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let root = std::path::absolute(&config.root).map_err(|source| AgentError::Root {
        path: config.root.clone(),
        source,
    })?;
    match std::fs::metadata(&root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(AgentError::RootNotDirectory { path: root }),
        Err(source) => return Err(AgentError::Root { path: root, source }),
    }
    tracing::debug!(root = %root.display(), "serving");
    let mut reader = FrameReader::new(BufReader::with_capacity(READ_BUFFER, reader));
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, writer);
    handshake(&mut reader, &mut writer, &[]).await?;
    let agent = Arc::new(portable_agent::PortableAgent::new(root));
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Response, OwnedSemaphorePermit)>();
    let mut responses = tokio::spawn(async move {
        let io_err = |source| AgentError::Io {
            op: "writing responses to the client",
            source,
        };
        while let Some((id, response, _slot)) = rx.recv().await {
            let (frame, payload) = encode_response(id, response);
            write_parts(&mut writer, &frame, &payload).await.map_err(io_err)?;
            if rx.is_empty() {
                writer.flush().await.map_err(io_err)?;
            }
        }
        writer.shutdown().await.map_err(io_err)
    });
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(frame) = read_frame(&mut reader).await? {
        let slot = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let id = frame.id;
        let response = match frame.into_message() {
            Ok(Message::Request(request)) => {
                let (agent, tx) = (agent.clone(), tx.clone());
                tokio::task::spawn_blocking(move || {
                    let op = request.op();
                    // Unwind safety: the agent's one table changes by single
                    // map operations.
                    let response =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| agent.handle(request)))
                            .unwrap_or_else(|_| {
                                Response::Error(WireError {
                                    errno: Errno::EIO,
                                    message: format!("{op}: internal error in the agent"),
                                })
                            });
                    let _ = tx.send((id, response, slot));
                });
                continue;
            }
            Ok(other) => protocol_error(format!("unexpected {} message after the handshake", kind(&other))),
            Err(err) => protocol_error(err.to_string()),
        };
        let _ = tx.send((id, response, slot));
    }
    drop(tx);
    match tokio::time::timeout(DRAIN_TIMEOUT, &mut responses).await {
        Ok(Ok(written)) => written,
        Ok(Err(join)) => Err(AgentError::Io {
            op: "writing responses to the client",
            source: std::io::Error::other(join),
        }),
        Err(_) => {
            responses.abort();
            Ok(())
        }
    }
}

/// `yonder agent --stdio --root DIR` on Windows: [`serve`] on stdin and
/// stdout.
#[cfg(windows)]
pub fn run_stdio(config: AgentConfig) -> Result<(), AgentError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| AgentError::Runtime { source })?;
    let result = runtime.block_on(serve(config, tokio::io::stdin(), tokio::io::stdout()));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}
