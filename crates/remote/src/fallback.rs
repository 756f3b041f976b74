//! [`FallbackConnector`]: an ssh or container source's agent, deployed
//! where it is missing, and the SFTP server there where no agent can run (a
//! read-only or noexec cache directory, another platform, a build that
//! does not run there). The fallback is decided once: every later connection of the
//! same connector (reconnections) goes straight to SFTP, without trying
//! the deployment again, and the reason is said once.

use crate::session::{Connector, Session, Transport};
use crate::sftp::connect_sftp;
use crate::source::{ConnectOptions, Source};
use crate::{RemoteError, Result};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};

/// Connects through the agent until its deployment proves impossible,
/// then through SFTP for good.
pub struct FallbackConnector {
    source: Source,
    options: ConnectOptions,
    /// How the agent is started (and deployed) there.
    agent: Arc<dyn Connector>,
    /// Why no agent can run there, once that is known.
    fallback: Mutex<Option<String>>,
}

impl FallbackConnector {
    pub fn new(source: Source, options: ConnectOptions, agent: Arc<dyn Connector>) -> FallbackConnector {
        FallbackConnector {
            source,
            options,
            agent,
            fallback: Mutex::new(None),
        }
    }

    fn fallen_back(&self) -> Option<String> {
        self.fallback.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records why the agent cannot run there; true the first time.
    fn fall_back(&self, reason: &str) -> bool {
        let mut fallback = self.fallback.lock().unwrap_or_else(|e| e.into_inner());
        let first = fallback.is_none();
        fallback.get_or_insert_with(|| reason.to_string());
        first
    }

    async fn connect_sftp(&self, reason: &str) -> Result<Arc<dyn Session>> {
        match connect_sftp(&self.source, &self.options).await {
            Ok(remote) => Ok(Arc::new(remote)),
            // Neither way in: both reasons, in the one line.
            Err(err) => Err(RemoteError::Connect {
                source_desc: self.source.describe(),
                reason: format!("cannot deploy the agent there ({reason}), and SFTP failed too: {err}"),
            }),
        }
    }
}

#[async_trait]
impl Connector for FallbackConnector {
    async fn connect(&self) -> Result<Arc<dyn Session>> {
        if let Some(reason) = self.fallen_back() {
            return self.connect_sftp(&reason).await;
        }
        match self.agent.connect().await {
            Ok(session) => Ok(session),
            Err(RemoteError::Undeployable { reason, .. }) => {
                // The binary prints the notice to the user (this may be the
                // manager, whose log is no terminal).
                if self.fall_back(&reason) {
                    tracing::info!("{}", fallback_notice(&self.source, &reason));
                }
                self.connect_sftp(&reason).await
            }
            Err(err) => Err(err),
        }
    }

    fn describe(&self) -> String {
        self.source.describe()
    }

    fn transport(&self) -> Transport {
        match self.fallen_back() {
            Some(reason) => Transport::Sftp {
                fallback: Some(reason),
            },
            None => Transport::Agent,
        }
    }
}

/// The one line telling the user that `source` is not served the way it
/// was asked to be, and why (without the `yonder: ` prefix): through SFTP
/// where no agent can run, or over ssh where no direct connection could
/// be made.
pub fn transport_notice(transport: &Transport, source: &Source) -> Option<String> {
    match transport {
        Transport::Sftp {
            fallback: Some(reason),
        } => Some(fallback_notice(source, reason)),
        Transport::AgentNotDirect { reason } => Some(format!(
            "no direct connection to {}: {reason}; staying on ssh",
            source.describe()
        )),
        _ => None,
    }
}

/// The one line that tells the user a `source` is served through SFTP
/// because no agent can run there (`reason`), without the `yonder: `
/// every message of the binary begins with.
pub fn fallback_notice(source: &Source, reason: &str) -> String {
    let host = match source {
        Source::Ssh { user, host, .. } => match user {
            Some(user) => format!("{user}@{host}"),
            None => host.clone(),
        },
        // A container: its name, without the path.
        Source::Url { scheme, address, .. } => format!("{scheme}://{address}"),
        other => other.describe(),
    };
    format!("cannot run an agent on {host}: {reason}; using SFTP (see docs/sftp.md)")
}
