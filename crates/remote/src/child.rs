//! [`StdioChild`]: a transport's process (ssh, the local agent), whose
//! stdin and stdout carry the protocol and whose stderr is the user's
//! explanation when it fails. Every transport that runs a command starts
//! it here, the same way.

use crate::{RemoteError, Result};
use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The stderr lines kept for [`StdioChild::last_words`].
const STDERR_KEPT: usize = 20;

/// A started transport process, its stderr logged and its last lines kept.
pub(crate) struct StdioChild {
    child: Child,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl StdioChild {
    /// Starts `argv` with piped stdio (enlarged pipes), killed when
    /// dropped, its stderr forwarded to the log; see
    /// [`leave_terminal_signals_to_us`] for its signals.
    pub(crate) fn spawn(argv: &[String], describe: &str) -> Result<(StdioChild, ChildStdin, ChildStdout)> {
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        leave_terminal_signals_to_us(&mut command);
        let mut child = command.spawn().map_err(|e| RemoteError::Connect {
            source_desc: describe.to_string(),
            reason: format!("cannot run {}: {e}", argv[0]),
        })?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        enlarge_pipe(&stdin);
        enlarge_pipe(&stdout);
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward_stderr(stderr, stderr_tail.clone()));
        }
        Ok((StdioChild { child, stderr_tail }, stdin, stdout))
    }

    /// The process, for the caller that supervises it from now on.
    pub(crate) fn into_child(self) -> Child {
        self.child
    }

    /// After a failed start: the last line the process said on stderr
    /// (trimmed, not empty), and how it exited, once it has (waited for
    /// at most 2 s).
    pub(crate) async fn last_words(&mut self) -> (Option<String>, Option<ExitStatus>) {
        let status = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
        // Give the stderr forwarder a moment to drain the last lines.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let said = self
            .stderr_tail
            .lock()
            .expect("stderr lock")
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_string());
        (said, status.ok().and_then(|s| s.ok()))
    }
}

/// Makes the agent process (ssh, or the local agent) leave the terminal's
/// SIGINT and SIGHUP to this process, and end with it.
///
/// It runs in this process's group, in the terminal's foreground, so that
/// ssh can ask for a password or passphrase on the terminal. But then a
/// Ctrl+C (or the terminal's hangup) reaches it too: ssh would exit, and
/// what is a shutdown would look like a lost connection, reported and
/// reconnected while this process unmounts. Ignored, the signals are ours
/// alone, and this process ends the connection itself (`kill_on_drop`).
/// The disposition is inherited across exec and by ssh's own children (a
/// ProxyJump's ssh); OpenSSH keeps an ignored SIGINT ignored, and its
/// password prompt still restores the terminal on Ctrl+C.
///
/// Should this process die without ending it (a Ctrl+C before its own
/// handlers are installed, a SIGKILL), the kernel sends the agent process
/// SIGTERM (`PR_SET_PDEATHSIG`; FreeBSD: `PROC_PDEATHSIG_CTL`), so that no
/// ssh is left prompting on the terminal (macOS has no such signal). The
/// signal follows the thread that spawned the process: this runs only in
/// async code, on a runtime's worker thread or its
/// `block_on` thread, which live as long as the runtime (yonder never
/// uses `block_in_place`, which would retire a worker thread early).
#[cfg(unix)]
fn leave_terminal_signals_to_us(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: signal(2) (setting a
    // disposition), prctl(2), procctl(2) and getppid(2) are, and nothing
    // allocates or takes a lock; procctl only reads `signal`, which lives
    // on this stack for the call.
    unsafe {
        command.pre_exec(move || {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            #[cfg(target_os = "linux")]
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // FreeBSD's equivalent; macOS has none, so there a SIGKILLed
            // yonder leaves the agent's ssh running.
            #[cfg(target_os = "freebsd")]
            {
                let mut signal = libc::SIGTERM;
                let arg = (&mut signal as *mut libc::c_int).cast::<libc::c_void>();
                if libc::procctl(libc::P_PID, 0, libc::PROC_PDEATHSIG_CTL, arg) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // The parent died before the death signal was armed.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("yonder exited while starting the agent"));
            }
            Ok(())
        });
    }
}

/// Windows delivers Ctrl+C to every process of the console's group: a
/// process group of its own keeps the child out of it, as ignoring
/// SIGINT does on Unix. Windows has no parent-death signal; a killed
/// yonder leaves the child to end when its stdin closes.
#[cfg(windows)]
fn leave_terminal_signals_to_us(command: &mut Command) {
    /// `CREATE_NEW_PROCESS_GROUP`, from the Win32 process creation flags.
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    command.creation_flags(CREATE_NEW_PROCESS_GROUP);
}

/// Grows a pipe from the default 64 KiB to 1 MiB (the unprivileged
/// maximum), so a 1 MiB read response crosses in one wakeup instead of 16.
#[cfg(unix)]
fn enlarge_pipe(pipe: &impl std::os::fd::AsFd) {
    #[cfg(target_os = "linux")]
    if let Err(err) = rustix::pipe::fcntl_setpipe_size(pipe, 1 << 20) {
        tracing::debug!(%err, "cannot enlarge pipe");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = pipe;
}

/// Windows's anonymous pipes take their size at creation, in the
/// standard library: nothing to grow.
#[cfg(windows)]
fn enlarge_pipe<P>(_pipe: &P) {}

async fn forward_stderr(stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "yonder::agent", "{line}");
        let mut tail = tail.lock().expect("stderr lock");
        if tail.len() == STDERR_KEPT {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}
