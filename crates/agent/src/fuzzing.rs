//! Entry points for the fuzz targets in `fuzz/`. Not an API: hidden from the
//! docs, and free to change with the targets.

use crate::{ops, paths, wire, AgentError};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;
use yonder_proto::{Handle, Request, Response};

/// One session's request handling over a root, without the byte stream
/// around it.
pub struct Dispatcher {
    agent: Option<ops::Agent>,
    fence_dir: std::path::PathBuf,
}

impl Drop for Dispatcher {
    /// The agent removes its fencing claim as it goes; then the directory
    /// goes too, with reply records the input left unsettled, so that
    /// fuzzing leaves nothing behind and each input starts afresh.
    fn drop(&mut self) {
        drop(self.agent.take());
        let _ = std::fs::remove_dir_all(&self.fence_dir);
    }
}

impl Dispatcher {
    /// Serves `root`. Sets the process umask to 0, as [`crate::serve`] does.
    pub fn new(root: &Path) -> Result<Dispatcher, AgentError> {
        let root = paths::Root::open(root)?;
        rustix::process::umask(rustix::fs::Mode::empty());
        // Fencing claims stay out of the user's runtime directory.
        let fence_dir = std::env::temp_dir().join(format!("yonder-fuzz-fence-{}", std::process::id()));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&fence_dir)
            .map_err(|source| AgentError::Io {
                op: "creating the fuzzer's fence directory",
                source,
            })?;
        Ok(Dispatcher {
            agent: Some(ops::Agent::with_fence_dir(root, fence_dir.clone())),
            fence_dir,
        })
    }

    /// Runs one request as the reader task or a pool thread does, but
    /// without the guard that turns a panic into an EIO response: for a
    /// fuzzer, a panic is a finding.
    pub fn handle(&self, request: Request) -> Response {
        self.agent().handle(request)
    }

    fn agent(&self) -> &ops::Agent {
        self.agent
            .as_ref()
            .expect("the agent lives as long as the dispatcher")
    }

    /// A read as the agent makes it when its output can take a splice: into
    /// a pipe, then (as for an output that cannot) out of it. `None` when the
    /// agent would read with `pread` instead ([`Dispatcher::handle`]).
    pub fn read_spliced(&self, handle: Handle, offset: u64, len: u32) -> Option<Result<Vec<u8>, Response>> {
        Some(match self.agent().read_spliced(handle, offset, len)? {
            Ok(spliced) => spliced
                .into_bytes(self.agent().pipes())
                .map_err(|err| wire::protocol_error(err.to_string())),
            Err(response) => Err(response),
        })
    }
}
