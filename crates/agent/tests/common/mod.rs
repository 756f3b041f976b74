//! A minimal client for driving the agent over an in-memory pipe.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use yonder_agent::{serve, AgentConfig, AgentError};
use yonder_proto::{
    decode_body, encode_frame, parse_length, split_frame, Errno, Hello, Message, Request, Response, WirePath,
    PROTOCOL_VERSION,
};

const PIPE_BUFFER: usize = 8 << 20;
const PATIENCE: Duration = Duration::from_secs(5);

pub struct Session {
    pub root: TempDir,
    stream: DuplexStream,
    next_id: u64,
    serve: JoinHandle<Result<(), AgentError>>,
}

/// Starts an agent on a fresh temporary root, without a handshake.
pub fn start() -> Session {
    let root = tempfile::tempdir().expect("temporary directory");
    let (client, agent) = tokio::io::duplex(PIPE_BUFFER);
    let (reader, writer) = tokio::io::split(agent);
    let config = AgentConfig {
        root: root.path().to_path_buf(),
    };
    let serve = tokio::spawn(serve(config, reader, writer));
    Session {
        root,
        stream: client,
        next_id: 1,
        serve,
    }
}

/// Starts an agent and completes the handshake.
pub async fn connect() -> Session {
    let mut session = start();
    let reply = session.hello(PROTOCOL_VERSION).await;
    assert!(
        matches!(
            reply,
            Message::Hello(Hello {
                version: PROTOCOL_VERSION,
                ..
            })
        ),
        "{reply:?}"
    );
    session
}

pub fn wire(path: &str) -> WirePath {
    WirePath::from(path.as_bytes().to_vec())
}

impl Session {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    pub async fn hello(&mut self, version: u32) -> Message {
        let hello = Hello {
            version,
            capabilities: vec![],
            software: "yonder test client".into(),
        };
        self.send(0, &Message::Hello(hello)).await;
        let (id, reply) = self.recv().await;
        assert_eq!(id, 0);
        reply
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("agent gone");
    }

    pub async fn send(&mut self, id: u64, message: &Message) {
        let frame = encode_frame(id, message).expect("encodable");
        self.send_raw(&frame).await;
    }

    /// Sends a request without waiting; returns its id.
    pub async fn submit(&mut self, request: Request) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(id, &Message::Request(request)).await;
        id
    }

    pub async fn recv(&mut self) -> (u64, Message) {
        tokio::time::timeout(PATIENCE, self.recv_frame())
            .await
            .expect("no response from the agent")
    }

    async fn recv_frame(&mut self) -> (u64, Message) {
        let mut prefix = [0; 4];
        self.stream.read_exact(&mut prefix).await.expect("frame prefix");
        let len = parse_length(prefix).expect("valid length") as usize;
        let mut frame = vec![0; len];
        self.stream.read_exact(&mut frame).await.expect("frame");
        let (id, body) = split_frame(&frame).expect("frame with id");
        (id, decode_body(body).expect("decodable message"))
    }

    pub async fn recv_response(&mut self) -> (u64, Response) {
        match self.recv().await {
            (id, Message::Response(response)) => (id, response),
            (id, other) => panic!("expected a response, got {other:?} for id {id}"),
        }
    }

    pub async fn call(&mut self, request: Request) -> Response {
        let id = self.submit(request).await;
        let (got, response) = self.recv_response().await;
        assert_eq!(got, id, "response to another request");
        response
    }

    /// Calls and expects success.
    pub async fn ok(&mut self, request: Request) -> Response {
        let debug = describe(&request);
        match self.call(request).await {
            Response::Error(err) => panic!("{debug} failed: {err:?}"),
            response => response,
        }
    }

    /// Calls and expects failure; returns the errno and message.
    pub async fn fail(&mut self, request: Request) -> (Errno, String) {
        let debug = describe(&request);
        match self.call(request).await {
            Response::Error(err) => (err.errno, err.message),
            response => panic!("{debug} succeeded: {response:?}"),
        }
    }

    pub async fn errno(&mut self, request: Request) -> Errno {
        self.fail(request).await.0
    }

    /// Closes the client's sending side and returns how `serve` ended.
    pub async fn finish(mut self) -> Result<(), AgentError> {
        let _ = self.stream.shutdown().await;
        self.outcome().await
    }

    /// Waits for `serve` to return on its own.
    pub async fn outcome(self) -> Result<(), AgentError> {
        tokio::time::timeout(PATIENCE, self.serve)
            .await
            .expect("serve did not return")
            .expect("serve panicked")
    }
}

/// A request for failure messages, cut short: payloads can be megabytes.
fn describe(request: &Request) -> String {
    let mut text = format!("{request:?}");
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}
