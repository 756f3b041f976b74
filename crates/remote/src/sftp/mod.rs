//! The SFTP transport: a host's own SFTP server (`ssh -s HOST sftp`, the
//! ssh command line the agent uses, so the user's configuration, keys,
//! agent and ProxyJump work) serves the tree, where no agent can run; in
//! a container, its `sftp-server` run with `docker exec`.
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

use crate::child::StdioChild;
use crate::container;
use crate::session::{Connector, Session, Transport};
use crate::source::{
    ssh_destination, ssh_needs_keepalive, ConnectOptions, Source, CONTAINER_SCHEMES, SSH_KEEPALIVE,
};
use crate::{RemoteError, Result};
use async_trait::async_trait;
use std::sync::Arc;

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

    fn transport(&self) -> Transport {
        Transport::Sftp { fallback: None }
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

/// Connects to the SFTP server of `source` and serves the tree its path
/// names: an ssh host's (the home for no path), or a container's
/// `sftp-server`, run with `docker exec` (its `/` for no path). What agent
/// deployment falls back to where no agent can run.
pub async fn connect_sftp(source: &Source, options: &ConnectOptions) -> Result<SftpRemote> {
    let describe = source.describe();
    let (argv, root) = match source {
        Source::Ssh { path, .. } => {
            let options = &cipher::with_fast_cipher(source, options).await;
            let keepalive = ssh_needs_keepalive(source, options).await;
            let root = match path.as_str() {
                "" | "~" => "",
                p => p.strip_prefix("~/").unwrap_or(p),
            };
            (sftp_command(source, options, keepalive)?, root.to_string())
        }
        Source::Url { scheme, path, .. } if CONTAINER_SCHEMES.contains(&scheme.as_str()) => {
            let root = if path.is_empty() { "/" } else { path.as_str() };
            (container::sftp_command(source, options)?, root.to_string())
        }
        _ => {
            return Err(RemoteError::Connect {
                source_desc: describe,
                reason: "SFTP needs an ssh or a container source".into(),
            })
        }
    };
    tracing::debug!(?argv, "starting sftp");
    let (mut child, stdin, stdout) = StdioChild::spawn(&argv, &describe)?;
    let started = async {
        let (channel, info) = SftpChannel::handshake(stdout, stdin, &describe).await?;
        SftpRemote::start(channel, info, root.as_bytes(), &describe).await
    };
    match started.await {
        Ok(remote) => {
            remote.attach_child(child.into_child());
            Ok(remote)
        }
        Err(err) => Err(match child.last_words().await {
            (Some(line), _) => RemoteError::Connect {
                source_desc: describe,
                reason: line,
            },
            (None, _) => err,
        }),
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
