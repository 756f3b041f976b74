//! `Link` supervises any `Session`, not only the agent's client: a session
//! made here (the agent's request handling in process, ended on demand,
//! unable to fence) is watched, shut down and replaced when it ends, and
//! each replacement's remote is published with its generation.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use yonder_proto::{Request, Response};
use yonder_remote::{
    BoxFuture, Connector, Describe, Exchange, Link, LinkOptions, LinkState, RemoteError, Result, Session,
};
use yonder_testkit::direct::DirectAgent;

/// A transport that is not the agent's client: requests go to the agent's
/// handler in this process until the session is ended.
struct InProcessSession {
    agent: Arc<DirectAgent>,
    /// Why the session ended, once it has.
    ended: watch::Sender<Option<String>>,
}

impl InProcessSession {
    /// Ends the session from the transport's side, as a dropped stream
    /// would; the first reason is kept.
    fn end(&self, reason: &str) {
        self.ended.send_if_modified(|ended| {
            let first = ended.is_none();
            if first {
                *ended = Some(reason.to_string());
            }
            first
        });
    }

    fn ended(&self) -> Option<String> {
        self.ended.borrow().clone()
    }
}

impl Exchange for InProcessSession {
    async fn exchange(&self, request: Request, subject: Describe<'_>) -> Result<Response> {
        if let Some(reason) = self.ended() {
            return Err(RemoteError::NotConnected {
                op: request.op(),
                path: subject(),
                reason,
            });
        }
        self.agent.exchange(request, subject).await
    }
}

/// Always heard from (the handler answers in process), never fences: the
/// trait's default.
impl Session for InProcessSession {
    fn closed(&self) -> BoxFuture<String> {
        let mut ended = self.ended.subscribe();
        Box::pin(async move {
            match ended.wait_for(Option::is_some).await {
                Ok(reason) => reason.clone().unwrap_or_default(),
                Err(_) => "session dropped".to_string(),
            }
        })
    }

    fn exited(&self) -> BoxFuture<()> {
        Box::pin(async {})
    }

    fn last_heard(&self) -> Instant {
        Instant::now()
    }

    fn shutdown(&self, reason: &str) {
        self.end(reason);
    }

    fn in_flight(&self) -> usize {
        0
    }
}

/// Makes a new in-process session on each connection, and keeps them all
/// for the test to end and inspect.
struct InProcessConnector {
    root: PathBuf,
    made: Mutex<Vec<Arc<InProcessSession>>>,
}

impl InProcessConnector {
    fn session(&self, n: usize) -> Arc<InProcessSession> {
        self.made.lock().unwrap()[n].clone()
    }

    fn sessions(&self) -> usize {
        self.made.lock().unwrap().len()
    }
}

#[async_trait::async_trait]
impl Connector for InProcessConnector {
    async fn connect(&self) -> Result<Arc<dyn Session>> {
        let session = Arc::new(InProcessSession {
            agent: DirectAgent::new(&self.root),
            ended: watch::Sender::new(None),
        });
        self.made.lock().unwrap().push(session.clone());
        Ok(session)
    }

    fn describe(&self) -> String {
        format!("in-process:{}", self.root.display())
    }
}

async fn wait_generation(link: &Link, generation: u64) {
    let mut watch = link.watch();
    tokio::time::timeout(
        Duration::from_secs(10),
        watch.wait_for(|s| s.generation == generation && s.state == LinkState::Connected),
    )
    .await
    .unwrap_or_else(|_| panic!("no connected generation {generation}: {}", link.state()))
    .unwrap();
}

#[tokio::test]
async fn a_link_supervises_and_replaces_a_session_of_another_transport() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), b"hello").unwrap();
    let connector = Arc::new(InProcessConnector {
        root: dir.path().to_path_buf(),
        made: Mutex::new(Vec::new()),
    });
    let options = LinkOptions {
        heartbeat: Duration::from_millis(100),
        backoff_initial: Duration::from_millis(50),
        ..LinkOptions::default()
    };
    let link = Link::start(connector.clone(), options).await.unwrap();
    let mut states = link.transitions();
    let (generation, first) = link.current();
    assert_eq!(generation, 1);
    assert_eq!(first.lstat(b"file").await.unwrap().size, 5);
    // Heartbeats go through the session's remote, and a session that
    // cannot fence serves all the same.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!((link.state(), connector.sessions()), (LinkState::Connected, 1));

    connector.session(0).end("transport lost");
    wait_generation(&link, 2).await;
    assert_eq!(connector.sessions(), 2);
    let mut seen = Vec::new();
    while let Ok(state) = states.try_recv() {
        seen.push(state.name());
    }
    assert_eq!(seen, ["reconnecting", "connected"]);
    let (_, second) = link.current();
    assert_eq!(second.lstat(b"file").await.unwrap().size, 5);
    let err = first.lstat(b"file").await.unwrap_err();
    assert!(
        matches!(err, RemoteError::NotConnected { .. }),
        "the first session was shut down: {err}"
    );

    link.close();
    let mut watch = link.watch();
    tokio::time::timeout(
        Duration::from_secs(5),
        watch.wait_for(|s| matches!(s.state, LinkState::Disconnected { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(connector.session(1).ended().as_deref(), Some("link closed"));
    assert_eq!(connector.sessions(), 2, "a closed link makes no new session");
}
