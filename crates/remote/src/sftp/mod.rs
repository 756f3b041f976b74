//! The SFTP transport: a host's own SFTP server (`ssh -s HOST sftp`, the
//! ssh command line the agent uses, so the user's configuration, keys,
//! agent and ProxyJump work) serves the tree, where no agent can run.
//!
//! - `wire.rs`: SFTP v3 packets and the OpenSSH extensions, no I/O;
//! - `cipher.rs`: AES-GCM first in ssh's cipher list where nobody chose;
//! - `channel.rs`: [`SftpChannel`], packets pipelined over a pipe pair,
//!   with what a `Link` supervises (end, last heard, shutdown);
//! - `remote.rs`: [`SftpRemote`], the [`crate::Remote`] and
//!   [`crate::Session`] on it.
//!
//! A hand-written client, not `openssh-sftp-client`: that crate's
//! high-level `File` reads and writes at a cursor through `&mut self` and
//! opens with no attributes (a new file gets the server's umask, then
//! needs a second request), and its low-level layer leaves the reply
//! routing to the caller, which is what `channel.rs` is. v3 is a small
//! protocol; owning its 20 packets keeps paths as bytes, data as `Bytes`
//! from the VFS's buffer to the pipe, and every request pipelined.

mod channel;
mod cipher;
mod remote;
mod wire;

pub use channel::SftpChannel;
pub use remote::SftpRemote;

use crate::session::{Connector, Session};
use crate::source::{
    enlarge_pipe, forward_stderr, leave_terminal_signals_to_us, ssh_destination, ssh_needs_keepalive,
    ConnectOptions, Source, SSH_KEEPALIVE,
};
use crate::{RemoteError, Result};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::process::Command;

/// Reaches an ssh source through its SFTP server, the same way on every
/// attempt.
pub struct SftpConnector {
    pub source: Source,
    pub options: ConnectOptions,
}

#[async_trait]
impl Connector for SftpConnector {
    async fn connect(&self) -> Result<Arc<dyn Session>> {
        Ok(Arc::new(connect_sftp(&self.source, &self.options).await?))
    }

    fn describe(&self) -> String {
        format!("{} (sftp)", self.source.describe())
    }
}

/// `ssh [OPTIONS] -T -x -s -- HOST sftp`: the agent's ssh command line,
/// asking for the sftp subsystem.
pub fn sftp_command(source: &Source, options: &ConnectOptions, keepalive: bool) -> Result<Vec<String>> {
    let mut argv = ssh_destination(source, options)?;
    let host = argv.pop().expect("destination");
    let dashdash = argv.pop().expect("--");
    if keepalive {
        for default in SSH_KEEPALIVE {
            argv.push("-o".into());
            argv.push(default.into());
        }
    }
    argv.extend([
        "-T".into(),
        "-x".into(),
        "-s".into(),
        dashdash,
        host,
        "sftp".into(),
    ]);
    Ok(argv)
}

/// Connects to the SFTP server of an ssh `source` and serves the tree its
/// path names (the home for none). What agent deployment falls back to
/// when no agent can run on the host.
pub async fn connect_sftp(source: &Source, options: &ConnectOptions) -> Result<SftpRemote> {
    let describe = source.describe();
    let Source::Ssh { path, .. } = source else {
        return Err(RemoteError::Connect {
            source_desc: describe,
            reason: "SFTP needs an ssh source".into(),
        });
    };
    let options = &cipher::with_fast_cipher(source, options).await;
    let keepalive = ssh_needs_keepalive(source, options).await;
    let argv = sftp_command(source, options, keepalive)?;
    tracing::debug!(?argv, "starting sftp");
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    leave_terminal_signals_to_us(&mut command);
    let mut child = command.spawn().map_err(|e| RemoteError::Connect {
        source_desc: describe.clone(),
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
    let root = match path.as_str() {
        "" | "~" => "",
        p => p.strip_prefix("~/").unwrap_or(p),
    };
    let started = async {
        let (channel, info) = SftpChannel::handshake(stdout, stdin, &describe).await?;
        SftpRemote::start(channel, info, root.as_bytes(), &describe).await
    };
    match started.await {
        Ok(remote) => {
            remote.attach_child(child);
            Ok(remote)
        }
        Err(err) => {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), child.wait()).await;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let said = stderr_tail
                .lock()
                .expect("stderr lock")
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .cloned();
            Err(match said {
                Some(line) => RemoteError::Connect {
                    source_desc: describe,
                    reason: line.trim().to_string(),
                },
                None => err,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sftp_command_asks_for_the_subsystem_after_the_host() {
        let source = Source::parse("ssh://me@host:2222/srv").unwrap();
        let options = ConnectOptions {
            ssh_options: vec!["BatchMode=yes".into()],
            ..Default::default()
        };
        let argv = sftp_command(&source, &options, false).unwrap();
        assert_eq!(
            argv,
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "-p",
                "2222",
                "-l",
                "me",
                "-T",
                "-x",
                "-s",
                "--",
                "host",
                "sftp"
            ]
        );
    }
}
