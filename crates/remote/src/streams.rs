//! [`Streams`]: several direct connections to one agent, as one
//! [`Session`]. The agent serves them from one state (handles, fence,
//! reply records: `serve_direct` in the agent), so any of them may carry
//! a read or write of a handle another opened. Reads and writes, the bulk
//! of the bytes, go round the streams, so that no one TCP window or one
//! core's cipher is the ceiling; everything else goes on the first, which
//! carries the fence and the pushed notices; a heartbeat goes on every
//! one, so that a stream that stalls is a connection that stalls. With one
//! stream it only keeps the session that opened it alive beside it.

use crate::exchange::{Describe, Exchange};
use crate::session::{BoxFuture, Session};
use crate::{AgentClient, AgentOrigin, Result};
use async_trait::async_trait;
use bytes::Bytes;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;
use tokio::sync::broadcast;
use yonder_proto::{Handle, Notice, Request, Response};

/// Connections to one agent's shared state; the first carries all but
/// the data.
pub struct Streams {
    streams: Vec<Arc<AgentClient>>,
    next: AtomicUsize,
    /// The session that opened them, kept open as long as they are: the
    /// agent serving them ends with it.
    _opener: Option<Arc<dyn Session>>,
}

impl Streams {
    /// `streams`, at least one; the first is the one the link fences.
    /// `opener`: the session to keep open beside them.
    pub fn new(streams: Vec<Arc<AgentClient>>, opener: Option<Arc<dyn Session>>) -> Streams {
        assert!(!streams.is_empty(), "no streams");
        Streams {
            streams,
            next: AtomicUsize::new(0),
            _opener: opener,
        }
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    fn first(&self) -> &Arc<AgentClient> {
        &self.streams[0]
    }

    /// The next stream for a read or write, round the streams.
    fn bulk(&self) -> &Arc<AgentClient> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.streams[n % self.streams.len()]
    }

    fn is_ping(request: &Request) -> bool {
        match request {
            Request::Ping => true,
            Request::Once { request, .. } => matches!(**request, Request::Ping),
            _ => false,
        }
    }
}

impl Exchange for Streams {
    async fn exchange(&self, request: Request, subject: Describe<'_>) -> Result<Response> {
        match &request {
            Request::Read { .. } => self.bulk().exchange(request, subject).await,
            request if Streams::is_ping(request) => {
                let others: Vec<_> = self.streams[1..]
                    .iter()
                    .map(|stream| {
                        let stream = stream.clone();
                        tokio::spawn(
                            async move { stream.exchange(Request::Ping, &|| "<ping>".to_string()).await },
                        )
                    })
                    .collect();
                let answer = self.first().exchange(request.clone(), subject).await;
                for other in others {
                    match other.await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return Err(err),
                        Err(join) => std::panic::resume_unwind(join.into_panic()),
                    }
                }
                answer
            }
            _ => self.first().exchange(request, subject).await,
        }
    }

    fn exchange_write(
        &self,
        handle: Handle,
        offset: u64,
        data: Bytes,
        subject: Describe<'_>,
    ) -> impl Future<Output = Result<Response>> + Send {
        self.bulk().exchange_write(handle, offset, data, subject)
    }

    fn exactly_once(&self) -> bool {
        self.first().exactly_once()
    }

    fn peer_has(&self, capability: &str) -> bool {
        self.first().peer_has(capability)
    }
}

#[async_trait]
impl Session for Streams {
    /// The first stream to end ends them all (the link then shuts them
    /// down and reconnects).
    fn closed(&self) -> BoxFuture<String> {
        let mut closing: Vec<BoxFuture<String>> = self
            .streams
            .iter()
            .map(|s| Box::pin(AgentClient::closed(s)) as BoxFuture<String>)
            .collect();
        Box::pin(std::future::poll_fn(move |cx| {
            for stream in closing.iter_mut() {
                if let Poll::Ready(reason) = stream.as_mut().poll(cx) {
                    return Poll::Ready(reason);
                }
            }
            Poll::Pending
        }))
    }

    fn exited(&self) -> BoxFuture<()> {
        let exits: Vec<_> = self.streams.iter().map(|s| AgentClient::exited(s)).collect();
        Box::pin(async move {
            for exit in exits {
                exit.await;
            }
        })
    }

    /// The stream heard from longest ago: each answers every heartbeat.
    fn last_heard(&self) -> Instant {
        self.streams
            .iter()
            .map(|s| s.last_heard())
            .min()
            .expect("at least one stream")
    }

    fn shutdown(&self, reason: &str) {
        for stream in &self.streams {
            stream.shutdown(reason);
        }
    }

    fn in_flight(&self) -> usize {
        self.streams.iter().map(|s| s.in_flight()).sum()
    }

    fn agent_origin(&self) -> Option<AgentOrigin> {
        self.first().origin()
    }

    async fn fence(&self, session: u64, generation: u64) -> Result<bool> {
        self.first().fence(session, generation).await
    }

    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        self.first().notices()
    }

    fn is_closed(&self) -> bool {
        self.streams.iter().any(|s| s.is_closed())
    }
}
