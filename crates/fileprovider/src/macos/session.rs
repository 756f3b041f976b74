//! [`ExtensionSession`]: one domain served by the extension process, its
//! runtime, its connection and its provider.

use super::domain_signal::DomainSignal;
use crate::{ErrorStatus, ItemIdentifier, Provider, ProviderError};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;
use yonder_remote::{ConnectOptions, Link, LinkOptions, Source};
use yonder_vfs::{MemoryJournal, Vfs, VfsOptions};

/// The domain's identifier is the SOURCE it shows (what `yonder mount`
/// takes: `host:path`, a local path, `docker://...`); the app that adds
/// the domain chooses it so (see docs/fileprovider.md).
pub struct ExtensionSession {
    runtime: tokio::runtime::Runtime,
    source: String,
    display_name: String,
    /// Where fetched contents are written: the system's temporary
    /// directory for the domain, on the domain's volume.
    temporary: PathBuf,
    /// Connected on the first request, not in `initWithDomain:`, which
    /// must not wait for ssh; a failed attempt is made again by the next
    /// request (the link reconnects by itself once it is up).
    connected: Mutex<Option<Connected>>,
}

/// A domain's connection and what serves it.
struct Connected {
    provider: Arc<Provider>,
    /// Kept for its supervision: reconnections, heartbeats, changes.
    _link: Link,
}

impl ExtensionSession {
    pub fn new(
        source: String,
        display_name: String,
        temporary: PathBuf,
    ) -> std::io::Result<Arc<ExtensionSession>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("yonder-fileprovider")
            .enable_all()
            .build()?;
        Ok(Arc::new(ExtensionSession {
            runtime,
            source,
            display_name,
            temporary,
            connected: Mutex::new(None),
        }))
    }

    pub fn temporary(&self) -> &Path {
        &self.temporary
    }

    /// Runs one request on the runtime.
    pub fn spawn(&self, request: impl Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(request);
    }

    /// Runs `request` to its end on the calling thread (for the few
    /// requests the system wants answered before it returns).
    pub fn block_on<T>(&self, request: impl Future<Output = T>) -> T {
        self.runtime.block_on(request)
    }

    /// The provider, once the connection is made; while it cannot be,
    /// requests are answered as the server unreachable.
    pub async fn provider(
        &self,
        op: &'static str,
        item: &ItemIdentifier,
    ) -> Result<Arc<Provider>, ProviderError> {
        let mut connected = self.connected.lock().await;
        if let Some(connected) = connected.as_ref() {
            return Ok(connected.provider.clone());
        }
        match self.connect().await {
            Ok(made) => {
                let provider = made.provider.clone();
                *connected = Some(made);
                Ok(provider)
            }
            Err(reason) => {
                tracing::warn!("{op} {item}: {reason}");
                Err(ProviderError::new(op, item, ErrorStatus::ServerUnreachable))
            }
        }
    }

    async fn connect(&self) -> Result<Connected, String> {
        let source = Source::parse(&self.source).map_err(|e| format!("source {}: {e}", self.source))?;
        let connector = yonder_remote::connector_for(&source, &ConnectOptions::default())
            .map_err(|e| format!("connecting to {}: {e}", self.source))?;
        let link = Link::start(connector, LinkOptions::default())
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.source))?;
        let (generation, remote) = link.current();
        let vfs = Vfs::new(remote, VfsOptions::default(), Arc::new(MemoryJournal::default()))
            .await
            .map_err(|e| format!("serving {}: {e}", self.source))?;
        vfs.follow_changes(link.changes());
        vfs.follow(link.watch(), generation, |remote| remote);
        let system = Arc::new(DomainSignal {
            identifier: self.source.clone(),
            display_name: self.display_name.clone(),
        });
        Ok(Connected {
            provider: Provider::new(vfs, system),
            _link: link,
        })
    }
}
