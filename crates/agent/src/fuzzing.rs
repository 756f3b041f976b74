//! Entry points for the fuzz targets in `fuzz/`. Not an API: hidden from the
//! docs, and free to change with the targets.

use crate::{ops, paths, wire, AgentError};
use std::path::Path;
use yonder_proto::{Handle, Request, Response};

/// One session's request handling over a root, without the byte stream
/// around it.
pub struct Dispatcher {
    agent: ops::Agent,
}

impl Dispatcher {
    /// Serves `root`. Sets the process umask to 0, as [`crate::serve`] does.
    pub fn new(root: &Path) -> Result<Dispatcher, AgentError> {
        let root = paths::Root::open(root)?;
        rustix::process::umask(rustix::fs::Mode::empty());
        // Fencing claims stay out of the user's runtime directory.
        let fence_dir = std::env::temp_dir().join(format!("yonder-fuzz-fence-{}", std::process::id()));
        std::fs::create_dir_all(&fence_dir).map_err(|source| AgentError::Io {
            op: "creating the fuzzer's fence directory",
            source,
        })?;
        Ok(Dispatcher {
            agent: ops::Agent::with_fence_dir(root, fence_dir),
        })
    }

    /// Runs one request as the reader task or a pool thread does, but
    /// without the guard that turns a panic into an EIO response: for a
    /// fuzzer, a panic is a finding.
    pub fn handle(&self, request: Request) -> Response {
        self.agent.handle(request)
    }

    /// A read as the agent makes it when its output can take a splice: into
    /// a pipe, then (as for an output that cannot) out of it. `None` when the
    /// agent would read with `pread` instead ([`Dispatcher::handle`]).
    pub fn read_spliced(&self, handle: Handle, offset: u64, len: u32) -> Option<Result<Vec<u8>, Response>> {
        Some(match self.agent.read_spliced(handle, offset, len)? {
            Ok(spliced) => spliced
                .into_bytes(self.agent.pipes())
                .map_err(|err| wire::protocol_error(err.to_string())),
            Err(response) => Err(response),
        })
    }
}
