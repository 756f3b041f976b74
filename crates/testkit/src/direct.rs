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
}

impl DirectAgent {
    /// Serves `root`. Panics if the agent cannot: a fixture that fails is a
    /// broken test, not a skipped one.
    pub fn new(root: &Path) -> Arc<DirectAgent> {
        let handler = Handler::new(root).unwrap_or_else(|err| panic!("agent on {}: {err}", root.display()));
        Arc::new(DirectAgent {
            handler,
            root: root.to_path_buf(),
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
}
