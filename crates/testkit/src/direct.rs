//! The agent's own request handling, called directly: [`DirectAgent`] is a
//! [`Remote`](yonder_remote::Remote) whose requests reach
//! [`yonder_agent::Handler`] as values, with no encoding, framing or byte
//! stream in between, and whose answers become results and errors through
//! the mapping [`AgentClient`](yonder_remote::AgentClient) uses
//! ([`Exchange`]). The VFS and frontend tests run on it; faults, counts and
//! changed answers come from wrapping it in the interceptors of
//! [`crate::faults`] and [`crate::observe`].
//!
//! Like [`crate::agent`], it sets the process's umask to 0.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use yonder_agent::Handler;
use yonder_proto::{Request, Response};
use yonder_remote::{Describe, Exchange, Result};

pub struct DirectAgent {
    handler: Handler,
    root: PathBuf,
    /// Fenced into a session: operations are recorded (`Once`).
    in_session: bool,
}

impl DirectAgent {
    /// Serves `root`. Panics if the agent cannot: a fixture that fails is a
    /// broken test, not a skipped one.
    pub fn new(root: &Path) -> Arc<DirectAgent> {
        let handler = Handler::new(root).unwrap_or_else(|err| panic!("agent on {}: {err}", root.display()));
        Arc::new(DirectAgent {
            handler,
            root: root.to_path_buf(),
            in_session: false,
        })
    }

    /// Serves `root` as the agent of connection `generation` of link
    /// `session`, its fence file and reply records in `runtime` (as a
    /// link's agent after `Fence`): it answers an operation a previous
    /// agent of the session carried out with that agent's outcome.
    pub async fn in_session(root: &Path, runtime: &Path, session: u64, generation: u64) -> Arc<DirectAgent> {
        let handler = Handler::with_fence_dir(root, runtime)
            .unwrap_or_else(|err| panic!("agent on {}: {err}", root.display()));
        let fenced = handler.handle(Request::Fence { session, generation }).await;
        assert_eq!(fenced, Response::Done, "fence of session {session:x}");
        Arc::new(DirectAgent {
            handler,
            root: root.to_path_buf(),
            in_session: true,
        })
    }

    /// The directory served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Files opened through this agent and not yet closed, to check that
    /// everything opened was closed.
    pub fn open_files(&self) -> usize {
        self.handler.open_files()
    }
}

impl Exchange for DirectAgent {
    async fn exchange(&self, request: Request, _: Describe<'_>) -> Result<Response> {
        Ok(self.handler.handle(request).await)
    }

    fn exactly_once(&self) -> bool {
        self.in_session
    }
}
