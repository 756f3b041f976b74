//! The control socket's transport, one abstraction over each OS's local
//! channel, so that the daemon (`daemon.rs`) and the CLI's client
//! (`client.rs`) speak the same lines of JSON over either:
//!
//! - Unix: a Unix socket at [`crate::Paths::socket`] (mode 0600, in a
//!   directory only its user may enter), each peer's uid checked against
//!   the manager's (SO_PEERCRED and the like).
//! - Windows: a named pipe, `\\.\pipe\yonder-manager-USER` by default,
//!   remote clients rejected. Its first instance is created with
//!   `FILE_FLAG_FIRST_PIPE_INSTANCE`, so that no other process can own the
//!   name first and answer in the manager's place; the default security
//!   of a pipe lets only its creator, SYSTEM and administrators write to
//!   it (other users may open it for reading, and then see the hello only,
//!   since every request must be written).
//!
//! Architecture invariant: the daemon and the client reach each other only
//! through this file's types; what differs between the OSes (the socket's
//! kind, the peer check, read timeouts) is decided here.

use std::io;
use std::path::Path;
use std::time::Duration;

/// The daemon's end of a client's connection, read as lines.
#[cfg(unix)]
pub(crate) type ControlReader = tokio::net::unix::OwnedReadHalf;
/// The daemon's end of a client's connection, written as lines.
#[cfg(unix)]
pub(crate) type ControlWriter = tokio::net::unix::OwnedWriteHalf;
#[cfg(windows)]
pub(crate) type ControlReader = tokio::io::ReadHalf<tokio::net::windows::named_pipe::NamedPipeServer>;
#[cfg(windows)]
pub(crate) type ControlWriter = tokio::io::WriteHalf<tokio::net::windows::named_pipe::NamedPipeServer>;

/// The client's end of the connection: blocking I/O, no runtime.
#[cfg(unix)]
pub(crate) type ClientStream = std::os::unix::net::UnixStream;
/// A pipe's client end is a file handle.
#[cfg(windows)]
pub(crate) type ClientStream = std::fs::File;

/// Where the daemon accepts clients.
pub(crate) struct ControlListener {
    #[cfg(unix)]
    listener: tokio::net::UnixListener,
    /// The pipe's name, for its next instances.
    #[cfg(windows)]
    name: std::ffi::OsString,
    /// The instance the next client connects to: a pipe instance serves
    /// one client, so each accepted one is replaced by a new one.
    #[cfg(windows)]
    next: tokio::net::windows::named_pipe::NamedPipeServer,
}

/// A client, accepted: who it is, then its two directions.
pub(crate) struct ControlStream {
    #[cfg(unix)]
    stream: tokio::net::UnixStream,
    #[cfg(windows)]
    pipe: tokio::net::windows::named_pipe::NamedPipeServer,
}

impl ControlListener {
    /// Listens at `socket`, only this user allowed in (see the module's
    /// comment). On Unix the caller removed a stale socket file first.
    #[cfg(unix)]
    pub(crate) fn bind(socket: &Path) -> io::Result<ControlListener> {
        use std::os::unix::fs::PermissionsExt;
        let listener = tokio::net::UnixListener::bind(socket)?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
        Ok(ControlListener { listener })
    }

    /// Listens on the pipe `socket` names; fails if it exists already
    /// (another manager, or a process squatting on the name).
    #[cfg(windows)]
    pub(crate) fn bind(socket: &Path) -> io::Result<ControlListener> {
        use tokio::net::windows::named_pipe::ServerOptions;
        let name = socket.as_os_str().to_owned();
        let next = ServerOptions::new()
            .first_pipe_instance(true)
            .reject_remote_clients(true)
            .create(&name)?;
        Ok(ControlListener { name, next })
    }

    /// The next client.
    pub(crate) async fn accept(&mut self) -> io::Result<ControlStream> {
        #[cfg(unix)]
        {
            let (stream, _) = self.listener.accept().await?;
            Ok(ControlStream { stream })
        }
        #[cfg(windows)]
        {
            use tokio::net::windows::named_pipe::ServerOptions;
            self.next.connect().await?;
            let following = ServerOptions::new()
                .reject_remote_clients(true)
                .create(&self.name)?;
            let pipe = std::mem::replace(&mut self.next, following);
            Ok(ControlStream { pipe })
        }
    }
}

impl ControlStream {
    /// Whether the peer is the user `me` names, as the OS recorded it at
    /// connect (not what the client says): `Err` names who it is instead.
    #[cfg(unix)]
    pub(crate) fn check_peer(&self) -> Result<(), String> {
        let me = rustix::process::getuid().as_raw();
        match self.stream.peer_cred() {
            Ok(cred) if cred.uid() == me => Ok(()),
            Ok(cred) => Err(format!("uid {}", cred.uid())),
            Err(e) => Err(format!("an unknown user ({e})")),
        }
    }

    /// The pipe's security already kept other users from writing to it
    /// (see the module's comment).
    #[cfg(windows)]
    pub(crate) fn check_peer(&self) -> Result<(), String> {
        Ok(())
    }

    /// The user the manager serves, for refusals.
    pub(crate) fn served_user() -> String {
        #[cfg(unix)]
        return format!("uid {}", rustix::process::getuid().as_raw());
        #[cfg(windows)]
        return std::env::var("USERNAME").unwrap_or_else(|_| "this user".to_string());
    }

    pub(crate) fn into_split(self) -> (ControlReader, ControlWriter) {
        #[cfg(unix)]
        return self.stream.into_split();
        #[cfg(windows)]
        return tokio::io::split(self.pipe);
    }
}

/// The client's connection to the manager at `socket`: a reader and a
/// writer. `NotFound` or `ConnectionRefused` when no manager listens.
pub(crate) fn connect(socket: &Path) -> io::Result<(ClientStream, ClientStream)> {
    #[cfg(unix)]
    let stream = ClientStream::connect(socket)?;
    #[cfg(windows)]
    let stream = open_pipe(socket)?;
    let writer = stream.try_clone()?;
    Ok((stream, writer))
}

/// Opens the client end of the pipe, waiting a moment while every
/// instance is taken (the manager makes the next one as it accepts).
#[cfg(windows)]
fn open_pipe(socket: &Path) -> io::Result<std::fs::File> {
    /// `ERROR_PIPE_BUSY`: all instances of the pipe are connected.
    const PIPE_BUSY: i32 = 231;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match std::fs::OpenOptions::new().read(true).write(true).open(socket) {
            Err(e) if e.raw_os_error() == Some(PIPE_BUSY) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            opened => return opened,
        }
    }
}

/// Bounds how long a read of the client waits (`None`: for ever). A pipe
/// opened as a file has no read timeout on Windows: there a hung manager
/// holds the client until it is interrupted.
pub(crate) fn set_read_timeout(stream: &ClientStream, timeout: Option<Duration>) {
    #[cfg(unix)]
    let _ = stream.set_read_timeout(timeout);
    #[cfg(windows)]
    let _ = (stream, timeout);
}

/// Whether a manager listens at `socket` (or its socket file, on Unix,
/// is still there).
pub(crate) fn exists(socket: &Path) -> bool {
    #[cfg(unix)]
    return socket.exists();
    // Opening a pipe to look would connect to it: connect and hang up.
    #[cfg(windows)]
    return open_pipe(socket).is_ok();
}
