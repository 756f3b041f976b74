//! [`Handler`]: the agent's request handling without the byte stream
//! around it, for a client in the same process. Requests and responses
//! pass as values; each request runs as [`crate::serve`] runs one it has
//! read: on the blocking pool, a panic answered as an error.

use crate::ops::Agent;
use crate::{paths, AgentError};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use yonder_proto::{Errno, Request, Response, WireError};

/// One session's request handling over a root: the agent's own, without
/// framing, handshake or splicing.
pub struct Handler {
    agent: Arc<Agent>,
    /// Numbers requests for the logs, as a connection's ids do.
    next_id: AtomicU64,
}

impl Handler {
    /// Serves `root`. Sets the process's umask to 0, as [`crate::serve`]
    /// does: the client already applied the caller's.
    pub fn new(root: &Path) -> Result<Handler, AgentError> {
        let root = paths::Root::open(root)?;
        rustix::process::umask(rustix::fs::Mode::empty());
        Ok(Handler {
            agent: Arc::new(Agent::new(root)),
            next_id: AtomicU64::new(1),
        })
    }

    /// [`Handler::new`], with the session's fencing claims and reply
    /// records in `dir` rather than the user's runtime directory.
    pub fn with_fence_dir(root: &Path, dir: &Path) -> Result<Handler, AgentError> {
        let root = paths::Root::open(root)?;
        rustix::process::umask(rustix::fs::Mode::empty());
        Ok(Handler {
            agent: Arc::new(Agent::with_fence_dir(root, dir.to_path_buf())),
            next_id: AtomicU64::new(1),
        })
    }

    /// Carries out `request` on a blocking thread and answers it.
    pub async fn handle(&self, request: Request) -> Response {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let op = request.op();
        let agent = self.agent.clone();
        tokio::task::spawn_blocking(move || run(&agent, id, request))
            .await
            .unwrap_or_else(|_| {
                // Only a runtime shutting down cancels a blocking task.
                Response::Error(WireError {
                    errno: Errno::EIO,
                    message: format!("{op}: the agent's runtime is shutting down"),
                })
            })
    }

    /// Files opened through this handler and not yet closed.
    pub fn open_files(&self) -> usize {
        self.agent.open_files()
    }
}

/// Runs one request, turning a panic into an error response so that the
/// client is never left waiting for an answer.
/// The answer to a request whose handling panicked: the client gets EIO
/// instead of waiting for an answer that never comes.
pub(crate) fn panicked(id: u64, op: &'static str) -> Response {
    tracing::warn!(id, op, "request handler panicked");
    Response::Error(WireError {
        errno: Errno::EIO,
        message: format!("{op}: internal error in the agent"),
    })
}

pub(crate) fn run(agent: &Agent, id: u64, request: Request) -> Response {
    let op = request.op();
    // Unwind safety: the agent's shared state is tables behind mutexes whose
    // every critical section is a single map operation.
    let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| agent.handle(request)))
        .unwrap_or_else(|_| panicked(id, op));
    if let Response::Error(err) = &response {
        tracing::debug!(id, errno = ?err.errno, message = %err.message, "request failed");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use yonder_proto::open_flags;

    #[tokio::test]
    async fn answers_requests_and_keeps_their_handles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"hello").unwrap();
        let handler = Handler::new(dir.path()).unwrap();
        let open = Request::Open {
            path: b"f".to_vec().into(),
            flags: open_flags::READ_ONLY,
            mode: 0,
            owner: None,
        };
        let Response::Opened { handle, attr } = handler.handle(open).await else {
            panic!("open failed")
        };
        assert_eq!(attr.size, 5);
        assert_eq!(handler.open_files(), 1);
        let read = Request::Read {
            handle,
            offset: 1,
            len: 10,
        };
        assert!(matches!(handler.handle(read).await, Response::Data(d) if d == b"ello"));
        assert!(matches!(
            handler.handle(Request::Close { handle }).await,
            Response::Done
        ));
        assert_eq!(handler.open_files(), 0);
        let closed = handler.handle(Request::Close { handle }).await;
        assert!(matches!(closed, Response::Error(err) if err.errno == Errno::EBADF));
        let missing = Request::Lstat {
            path: b"missing".to_vec().into(),
        };
        assert!(matches!(handler.handle(missing).await, Response::Error(err) if err.errno == Errno::ENOENT));
    }
}
