//! [`NfsServer`]: the NFS and MOUNT service of one VFS on one loopback
//! port, from its start to its end.

use crate::access::Access;
use crate::dispatch::{self, Front};
use crate::error::NfsError;
use crate::fs::YonderFs;
use crate::handle::HandleCodec;
use nfs3_server::tcp::{NFSTcp, NFSTcpListener};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use yonder_vfs::Vfs;

/// How a server is started.
#[derive(Clone, Copy, Debug)]
pub struct NfsConfig {
    /// The port on 127.0.0.1; `None` takes a free one.
    pub port: Option<u16>,
    /// Whose calls are answered.
    pub access: Access,
}

impl Default for NfsConfig {
    fn default() -> NfsConfig {
        NfsConfig {
            port: None,
            access: Access::current_user(),
        }
    }
}

/// A running server. Dropping it stops it.
pub struct NfsServer {
    port: u16,
    vfs: Arc<Vfs>,
    tasks: Vec<JoinHandle<()>>,
    stopped: watch::Sender<bool>,
    connections: Arc<watch::Sender<usize>>,
}

impl NfsServer {
    /// Binds 127.0.0.1 and serves `vfs` there, on the current runtime.
    pub async fn start(vfs: Arc<Vfs>, config: NfsConfig) -> Result<NfsServer, NfsError> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port.unwrap_or(0)));
        let bind_error = |source| NfsError::Bind {
            address: address.to_string(),
            source,
        };
        let public = TcpListener::bind(address).await.map_err(bind_error)?;
        let port = public.local_addr().map_err(bind_error)?.port();
        let fs = YonderFs::new(vfs.clone(), config.access);
        // Later than any earlier server's on this machine: their handles
        // are refused as stale.
        let generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        let private = "127.0.0.1:0";
        let backend = NFSTcpListener::bind_with_generation(private, fs.clone(), generation)
            .await
            .map_err(|source| NfsError::Bind {
                address: private.to_string(),
                source,
            })?;
        let backend_address = SocketAddr::new(backend.get_listen_ip(), backend.get_listen_port());
        let (stopped, stopped_rx) = watch::channel(false);
        let connections = Arc::new(watch::channel(0).0);
        let front = Front {
            connections: connections.clone(),
            fs: Arc::new(fs),
            codec: HandleCodec { generation },
            backend: backend_address,
            stopped: stopped_rx,
        };
        let mut backend_stopped = front.stopped.clone();
        let backend_task = tokio::spawn(async move {
            tokio::select! {
                served = backend.handle_forever() => if let Err(e) = served {
                    tracing::error!("nfs: the server behind the dispatcher stopped: {e}");
                },
                _ = backend_stopped.wait_for(|s| *s) => {}
            }
        });
        let front_task = tokio::spawn(dispatch::accept_loop(public, front));
        tracing::info!("nfs: serving on 127.0.0.1:{port}");
        Ok(NfsServer {
            port,
            vfs,
            tasks: vec![backend_task, front_task],
            stopped,
            connections,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn vfs(&self) -> &Arc<Vfs> {
        &self.vfs
    }

    /// Stops serving: the port is closed and connections open now are
    /// cut, as when the process ends.
    pub fn stop(&self) {
        self.stopped.send_replace(true);
    }

    /// Stops serving once no client is connected: after a lazy unmount,
    /// the client keeps its connection while files under the mount are
    /// open, and they are served until then.
    pub fn stop_when_idle(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut connections = self.connections.subscribe();
        let stop = self.stopped.clone();
        async move {
            let _ = connections.wait_for(|n| *n == 0).await;
            stop.send_replace(true);
        }
    }

    /// What stops the server when set to true, for a watcher that
    /// outlives a borrow of it.
    pub fn stop_signal(&self) -> watch::Sender<bool> {
        self.stopped.clone()
    }

    /// Stops serving and returns once the port is free again.
    pub async fn shutdown(mut self) {
        self.stop();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    pub fn is_serving(&self) -> bool {
        !*self.stopped.borrow()
    }

    /// Resolves once [`NfsServer::stop`] was called.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopped = self.stopped.subscribe();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    }
}

impl Drop for NfsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
