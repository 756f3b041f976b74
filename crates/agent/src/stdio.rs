//! Non-blocking stdin/stdout for the agent.
//!
//! `tokio::io::stdin`/`stdout` run every read and write on the blocking
//! thread pool, through an extra buffer: one thread hop and one copy per
//! frame. The agent's stdio is almost always a pipe (local spawn, sshd) or a
//! socket, which tokio can drive directly with epoll, so use that and keep
//! the generic path only for terminals and files.

use crate::splice::SpliceOut;
use std::os::fd::{AsFd, OwnedFd};
use tokio::io::{AsyncRead, AsyncWrite};

pub(crate) type Reader = Box<dyn AsyncRead + Unpin + Send>;
pub(crate) type Writer = Box<dyn AsyncWrite + Unpin + Send>;

enum Kind {
    Pipe,
    Socket,
    Other,
}

fn kind(fd: &impl AsFd) -> Kind {
    match rustix::fs::fstat(fd) {
        Ok(st) => match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::Fifo => Kind::Pipe,
            rustix::fs::FileType::Socket => Kind::Socket,
            _ => Kind::Other,
        },
        Err(_) => Kind::Other,
    }
}

fn dup(fd: impl AsFd) -> std::io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 3)?)
}

/// stdin as an async reader. Must be called inside a tokio runtime.
pub(crate) fn stdin() -> std::io::Result<Reader> {
    let fd = std::io::stdin();
    Ok(match kind(&fd) {
        Kind::Pipe => {
            enlarge_pipe(&fd);
            Box::new(tokio::net::unix::pipe::Receiver::from_owned_fd(dup(fd)?)?)
        }
        Kind::Socket => Box::new(socket(dup(fd)?)?),
        Kind::Other => Box::new(tokio::io::stdin()),
    })
}

/// stdout as an async writer, and for a pipe or socket also as a splice
/// destination. Must be called inside a tokio runtime.
pub(crate) fn stdout() -> std::io::Result<(Writer, Option<SpliceOut>)> {
    let fd = std::io::stdout();
    let writer: Writer = match kind(&fd) {
        Kind::Pipe => {
            enlarge_pipe(&fd);
            Box::new(tokio::net::unix::pipe::Sender::from_owned_fd(dup(&fd)?)?)
        }
        Kind::Socket => Box::new(socket(dup(&fd)?)?),
        Kind::Other => return Ok((Box::new(tokio::io::stdout()), None)),
    };
    // After the writer made the output non-blocking, which the splice
    // destination relies on.
    let splice_out = SpliceOut::new(fd.as_fd())
        .inspect_err(|err| tracing::debug!(%err, "not splicing read data"))
        .ok();
    Ok((writer, splice_out))
}

fn socket(fd: OwnedFd) -> std::io::Result<tokio::net::UnixStream> {
    let stream = std::os::unix::net::UnixStream::from(fd);
    stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(stream)
}

/// Grows a pipe from the default 64 KiB to 1 MiB (the unprivileged
/// maximum): sshd hands the agent 64 KiB pipes, and a 1 MiB frame then takes
/// sixteen wakeups of each side to cross.
fn enlarge_pipe(pipe: &impl AsFd) {
    #[cfg(target_os = "linux")]
    if let Err(err) = rustix::pipe::fcntl_setpipe_size(pipe, 1 << 20) {
        tracing::debug!(%err, "cannot enlarge pipe");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = pipe;
}
