//! Containers as a source: `docker://CONTAINER[/PATH]` and
//! `podman://CONTAINER[/PATH]` run the agent inside a running container
//! with `docker exec -i CONTAINER ...` (or `podman exec`, or the client
//! `--docker-command` names), its stdio the agent's stream, as ssh's is.
//!
//! A container without `yonder` gets this build the way an ssh host does
//! ([`crate::deploy`]'s script, run by `sh -c` in the container), except
//! that the binary goes in with `docker cp` rather than on the script's
//! stdin. Where no agent can run there, the container's own `sftp-server`
//! serves it ([`sftp_command`], chosen by `fallback.rs`). The tree is the
//! container's `/` unless PATH says otherwise.

use crate::deploy::{AgentOrigin, CopyIn};
use crate::session::{Connector, Session};
use crate::source::{
    agent_words, current_build, spawn_deploying, start_agent, ConnectOptions, Source, Spawned,
};
use crate::{RemoteError, Result};
use async_trait::async_trait;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;

/// Makes the connector of a container source.
pub fn connector(source: &Source, options: &ConnectOptions) -> Arc<dyn Connector> {
    Arc::new(ContainerConnector {
        source: source.clone(),
        options: options.clone(),
    })
}

/// Runs the agent in a container, the same way on every attempt.
pub struct ContainerConnector {
    source: Source,
    options: ConnectOptions,
}

impl ContainerConnector {
    fn failed(&self, reason: String) -> RemoteError {
        RemoteError::Connect {
            source_desc: self.source.describe(),
            reason,
        }
    }

    /// The client's argv (`docker`, `podman`, or `--docker-command`, split
    /// on whitespace), and the container and tree the source names.
    fn target(&self) -> Result<(Vec<String>, &str, &str)> {
        let Source::Url {
            scheme,
            address,
            path,
        } = &self.source
        else {
            return Err(self.failed("not a container source".into()));
        };
        let client: Vec<String> = match &self.options.docker_command {
            Some(command) => command.split_whitespace().map(str::to_string).collect(),
            None => vec![scheme.clone()],
        };
        if client.is_empty() {
            return Err(self.failed("empty --docker-command".into()));
        }
        let root = if path.is_empty() { "/" } else { path.as_str() };
        Ok((client, address, root))
    }

    /// `CLIENT exec -i CONTAINER`: the start of every command run there.
    fn exec(&self) -> Result<Vec<String>> {
        let (mut exec, container, _) = self.target()?;
        exec.extend(["exec".into(), "-i".into(), container.to_string()]);
        Ok(exec)
    }

    async fn spawn(&self) -> Result<Spawned> {
        let describe = self.source.describe();
        let (client, container, root) = self.target()?;
        let exec = self.exec()?;
        let deploying = match (&self.options.agent_path, self.options.no_deploy) {
            (None, false) => current_build(&describe).await,
            _ => None,
        };
        let Some(build) = deploying else {
            // No shell needed: the agent is run directly.
            let mut argv = exec;
            argv.push(self.options.agent_path.clone().unwrap_or_else(|| "yonder".into()));
            argv.extend(["agent".into(), "--stdio".into()]);
            argv.extend(self.options.agent_args.iter().cloned());
            argv.push(format!("--root={root}"));
            let origin = match self.options.agent_path {
                Some(_) => AgentOrigin::AgentPath,
                None => AgentOrigin::OnPath,
            };
            let (client, child) = start_agent(&argv, &describe, None).await?;
            return Ok(Spawned {
                client,
                child,
                origin,
            });
        };
        let run = |command: String| {
            let mut argv = exec.clone();
            argv.extend(["sh".into(), "-c".into(), command]);
            argv
        };
        let copier = DockerCp {
            client,
            container: container.to_string(),
        };
        spawn_deploying(
            &describe,
            &agent_words(root, &self.options),
            &build,
            run,
            Some(&copier),
        )
        .await
    }
}

#[async_trait]
impl Connector for ContainerConnector {
    async fn connect(&self) -> Result<Arc<dyn Session>> {
        let Spawned {
            client,
            child,
            origin,
        } = self.spawn().await?;
        client.attach_child(child);
        client.set_origin(origin);
        Ok(Arc::new(client))
    }

    fn describe(&self) -> String {
        self.source.describe()
    }
}

/// Where images keep OpenSSH's `sftp-server` (Debian and Ubuntu, Fedora
/// and RHEL, Alpine and Arch, others): a container runs no sshd, but many
/// images that have the OpenSSH client or server installed have it.
const SFTP_SERVERS: &[&str] = &[
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/lib/sftp-server",
];

/// `CLIENT exec -i CONTAINER sh -c ...`: runs the container's `sftp-server`
/// on the command's stdio, or says in one line on stderr that there is
/// none. What a container where no agent can run falls back to.
pub fn sftp_command(source: &Source, options: &ConnectOptions) -> Result<Vec<String>> {
    let connector = ContainerConnector {
        source: source.clone(),
        options: options.clone(),
    };
    let mut argv = connector.exec()?;
    let script = format!(
        "for p in {}; do [ -x \"$p\" ] && exec \"$p\"; done; \
         command -v sftp-server >/dev/null 2>&1 && exec sftp-server; \
         echo 'no sftp-server in the container (it looked in the PATH and in {})' >&2; exit 127",
        SFTP_SERVERS.join(" "),
        SFTP_SERVERS.join(", ")
    );
    argv.extend(["sh".into(), "-c".into(), script]);
    Ok(argv)
}

/// `docker cp LOCAL CONTAINER:PATH`: how the agent's binary gets into a
/// container.
struct DockerCp {
    client: Vec<String>,
    container: String,
}

/// How long one copy may take: a few MB through a local daemon.
const COPY_TIMEOUT: Duration = Duration::from_secs(120);

#[async_trait]
impl CopyIn for DockerCp {
    async fn copy_in(&self, local: &Path, remote: &str) -> std::result::Result<(), String> {
        let output = Command::new(&self.client[0])
            .args(&self.client[1..])
            .arg("cp")
            .arg(local)
            .arg(format!("{}:{remote}", self.container))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let output = match tokio::time::timeout(COPY_TIMEOUT, output).await {
            Ok(Ok(output)) => output,
            Ok(Err(err)) => return Err(format!("cannot run {}: {err}", self.client[0])),
            Err(_) => return Err(format!("{} cp took longer than {COPY_TIMEOUT:?}", self.client[0])),
        };
        if output.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&output.stderr);
        Err(match said.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(line) => line.trim().to_string(),
            None => format!("{} cp exited with {}", self.client[0], output.status),
        })
    }
}
