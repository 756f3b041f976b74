//! The CLI's side of the control protocol: plain blocking I/O, no runtime.
//!
//! [`Client::connect`] reaches a running manager (hellos exchanged, the
//! protocol checked); [`ensure_running`] starts one first when there is
//! none: `yonder manager run` detached (its own session, working
//! directory `/`, stdio on /dev/null), then waits for its socket.

use crate::control_socket::{self, set_read_timeout, ClientStream};
use crate::paths::Paths;
use crate::protocol::{Event, Hello, Request, Response, PROTOCOL};
use crate::ManagerError;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started manager may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The protocol this client announces: [`PROTOCOL`], unless
/// `YONDER_CONTROL_PROTOCOL` says otherwise (tests of the mismatch path).
pub fn client_protocol() -> u32 {
    std::env::var("YONDER_CONTROL_PROTOCOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PROTOCOL)
}

/// A connection to the manager, hellos exchanged.
pub struct Client {
    reader: BufReader<ClientStream>,
    writer: ClientStream,
    socket: std::path::PathBuf,
    /// The manager's hello.
    pub manager: Hello,
}

impl Client {
    /// Connects to a running manager. [`ManagerError::NotRunning`] when
    /// nothing listens; [`ManagerError::ProtocolMismatch`] when it speaks
    /// another protocol (`manager` tells its pid: see [`Client::hello_of`]).
    pub fn connect(paths: &Paths) -> Result<Client, ManagerError> {
        Self::connect_as(paths, client_protocol())
    }

    /// The hello of whatever manager runs, whatever its protocol.
    pub fn hello_of(paths: &Paths) -> Result<Hello, ManagerError> {
        Self::open(paths).map(|(_, _, hello)| hello)
    }

    fn open(paths: &Paths) -> Result<(BufReader<ClientStream>, ClientStream, Hello), ManagerError> {
        if paths.dir().exists() {
            paths.check_dir()?;
        }
        let (stream, writer) = match control_socket::connect(&paths.socket) {
            Ok(ends) => ends,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(ManagerError::NotRunning {
                    socket: paths.socket.clone(),
                })
            }
            Err(e) => return Err(ManagerError::io("connect to", &paths.socket, e)),
        };
        set_read_timeout(&stream, Some(Duration::from_secs(10)));
        let mut reader = BufReader::new(stream);
        let line = read_line(&mut reader, &paths.socket)?.ok_or_else(|| ManagerError::Protocol {
            socket: paths.socket.clone(),
            reason: "the manager closed the connection at once".into(),
        })?;
        if let Ok(hello) = serde_json::from_str::<Hello>(&line) {
            return Ok((reader, writer, hello));
        }
        match serde_json::from_str::<Response>(&line) {
            Ok(Response::Error { message }) => Err(ManagerError::Refused {
                socket: paths.socket.clone(),
                reason: message,
            }),
            _ => Err(ManagerError::Protocol {
                socket: paths.socket.clone(),
                reason: format!("unexpected greeting {line:?}"),
            }),
        }
    }

    fn connect_as(paths: &Paths, protocol: u32) -> Result<Client, ManagerError> {
        let (reader, writer, manager) = Self::open(paths)?;
        if manager.protocol != protocol {
            return Err(ManagerError::ProtocolMismatch {
                theirs: manager.protocol,
                version: manager.version,
                ours: protocol,
            });
        }
        let mut client = Client {
            reader,
            writer,
            socket: paths.socket.clone(),
            manager,
        };
        client.send(&Hello::this(protocol, None))?;
        Ok(client)
    }

    fn send<T: serde::Serialize>(&mut self, message: &T) -> Result<(), ManagerError> {
        let mut line = serde_json::to_vec(message).map_err(|e| ManagerError::Protocol {
            socket: self.socket.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|e| ManagerError::io("write to", &self.socket, e))
    }

    /// Sends `request` and waits (at most `timeout`) for the response;
    /// an error response becomes [`ManagerError::Failed`].
    pub fn request(&mut self, request: &Request, timeout: Duration) -> Result<Response, ManagerError> {
        self.send(request)?;
        set_read_timeout(self.reader.get_ref(), Some(timeout));
        let line = read_line(&mut self.reader, &self.socket)?.ok_or_else(|| ManagerError::Protocol {
            socket: self.socket.clone(),
            reason: "the manager closed the connection without answering".into(),
        })?;
        match serde_json::from_str::<Response>(&line) {
            Ok(Response::Error { message }) => Err(ManagerError::Failed(message)),
            Ok(response) => Ok(response),
            Err(e) => Err(ManagerError::Protocol {
                socket: self.socket.clone(),
                reason: format!("cannot read response {line:?}: {e}"),
            }),
        }
    }

    /// After `Events` was answered: the next event, or None once the
    /// manager has gone.
    pub fn next_event(&mut self) -> Result<Option<Event>, ManagerError> {
        set_read_timeout(self.reader.get_ref(), None);
        let Some(line) = read_line(&mut self.reader, &self.socket)? else {
            return Ok(None);
        };
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| ManagerError::Protocol {
                socket: self.socket.clone(),
                reason: format!("cannot read event {line:?}: {e}"),
            })
    }

    /// Waits until the manager closes the connection (after `Stop`: its exit).
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<(), ManagerError> {
        set_read_timeout(self.reader.get_ref(), Some(timeout));
        while read_line(&mut self.reader, &self.socket)?.is_some() {}
        Ok(())
    }
}

fn read_line(reader: &mut BufReader<ClientStream>, socket: &Path) -> Result<Option<String>, ManagerError> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => Ok(None),
        Ok(_) => Ok(Some(line)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(None),
        Err(e) => Err(ManagerError::io("read from", socket, e)),
    }
}

/// Connects to the manager, starting it first if none runs: `exe manager
/// run ARGS...` in a session of its own, stdio on /dev/null.
pub fn ensure_running(paths: &Paths, exe: &Path, args: &[String]) -> Result<Client, ManagerError> {
    match Client::connect(paths) {
        Err(ManagerError::NotRunning { .. }) => {}
        other => return other,
    }
    paths.prepare_dir()?;
    let mut command = Command::new(exe);
    command
        .args(["manager", "run"])
        .args(args)
        // Not the caller's directory, which the manager would keep busy
        // (one inside a mount could then never be unmounted).
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Windows's session of its own: no console (DETACHED_PROCESS), out of
    // the caller's Ctrl+C (CREATE_NEW_PROCESS_GROUP).
    #[cfg(windows)]
    std::os::windows::process::CommandExt::creation_flags(&mut command, 0x0000_0008 | 0x0000_0200);
    let mut child = command
        .spawn()
        .map_err(|e| ManagerError::io("start the manager", exe, e))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match Client::connect(paths) {
            Err(ManagerError::NotRunning { .. }) => {}
            other => {
                // Reaped by init once this process exits; nothing to wait for.
                drop(child);
                return other;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Lost a race with another manager starting: use that one.
            match Client::connect(paths) {
                Err(ManagerError::NotRunning { .. }) => {}
                other => return other,
            }
            return Err(ManagerError::Failed(format!(
                "the manager exited at start ({status}); see its log, {}",
                paths.log.display()
            )));
        }
        if Instant::now() > deadline {
            return Err(ManagerError::Failed(format!(
                "the manager did not listen on {} within {START_TIMEOUT:?}; see its log, {}",
                paths.socket.display(),
                paths.log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
