//! Which transport reaches a source: the SFTP server there for an ssh or
//! container source with [`ConnectOptions::sftp`]; for one that deploys its
//! agent, that agent (through ssh, or `docker exec` for a container,
//! [`container`]), or SFTP where none can run ([`FallbackConnector`]); else
//! an agent
//! ([`source::connector_for`]). Chosen here, above all of them,
//! because the SFTP transport starts ssh with the agent's command line
//! (`source.rs`).

use crate::container;
use crate::direct::{DirectConnector, KeyConnector, TransportChoice};
use crate::fallback::FallbackConnector;
use crate::session::Connector;
use crate::sftp::SftpConnector;
use crate::source::{self, ConnectOptions, Source, CONTAINER_SCHEMES, LISTENER_SCHEME};
use crate::{Remote, RemoteError, Result};
use std::sync::Arc;

/// How a link reaches `source`: its SFTP server (`--sftp`), the agent as a
/// child process (local, or through ssh, deployed where it is missing and
/// SFTP where it cannot be), in a container (`docker exec`), or the
/// transport registered for its scheme.
pub fn connector_for(source: &Source, options: &ConnectOptions) -> Result<Arc<dyn Connector>> {
    let agent = agent_connector_for(source, options)?;
    let direct = &options.direct;
    let wanted = match (direct.transport, source) {
        (_, Source::Url { scheme, .. }) if scheme == LISTENER_SCHEME => false,
        (TransportChoice::Ssh, _) => false,
        (TransportChoice::Direct, _) if options.sftp => {
            return Err(RemoteError::Connect {
                source_desc: source.describe(),
                reason: "--transport direct needs an agent, and --sftp runs none".into(),
            })
        }
        (TransportChoice::Direct, _) => true,
        // A local agent's pipe is faster than TLS, and a container's
        // network is its own.
        (TransportChoice::Auto, Source::Ssh { .. }) => !options.sftp,
        (TransportChoice::Auto, _) => false,
    };
    Ok(match wanted {
        true => Arc::new(DirectConnector::new(agent, direct.clone())),
        false => agent,
    })
}

/// [`connector_for`] without the direct path: what starts the agent (and
/// opens the direct path, where there is one).
fn agent_connector_for(source: &Source, options: &ConnectOptions) -> Result<Arc<dyn Connector>> {
    match source {
        Source::Url { scheme, path, .. }
            if scheme == LISTENER_SCHEME && !matches!(path.as_str(), "" | "/") =>
        {
            Err(RemoteError::Connect {
                source_desc: source.describe(),
                reason: "a tcp:// source serves its listener's --root; name no path after the port".into(),
            })
        }
        Source::Url { scheme, address, .. } if scheme == LISTENER_SCHEME => Ok(Arc::new(KeyConnector {
            address: address.clone(),
            key_file: options.direct.key_file.clone(),
        })),
        Source::Ssh { .. } if options.sftp => Ok(Arc::new(SftpConnector {
            source: source.clone(),
            options: options.clone(),
        })),
        Source::Url { scheme, .. } if options.sftp && CONTAINER_SCHEMES.contains(&scheme.as_str()) => {
            Ok(Arc::new(SftpConnector {
                source: source.clone(),
                options: options.clone(),
            }))
        }
        Source::Ssh { .. } if options.agent_path.is_none() && !options.no_deploy => {
            let agent = source::connector_for(source, options)?;
            Ok(Arc::new(FallbackConnector::new(
                source.clone(),
                options.clone(),
                agent,
            )))
        }
        Source::Url { scheme, .. } if CONTAINER_SCHEMES.contains(&scheme.as_str()) => {
            let agent = container::connector(source, options);
            if options.agent_path.is_some() || options.no_deploy {
                return Ok(agent);
            }
            Ok(Arc::new(FallbackConnector::new(
                source.clone(),
                options.clone(),
                agent,
            )))
        }
        _ => source::connector_for(source, options),
    }
}

/// Connects to `source` through its transport ([`connector_for`]) and
/// completes the handshake. What comes back is a `Remote`, whatever the
/// transport: callers (the VFS, `yonder fs`, a reconnecting layer) never
/// depend on how it is carried. The transport's process is killed when
/// the remote is dropped.
pub async fn connect(source: &Source, options: &ConnectOptions) -> Result<Arc<dyn Remote>> {
    let session = connector_for(source, options)?.connect().await?;
    Ok(session)
}
