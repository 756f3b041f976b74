//! The client against scripted peers: version mismatch, undecodable
//! responses, out-of-order replies and a peer that disappears.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use yonder_proto::{
    encode_frame, parse_length, split_frame, Attr, Errno, Handle, Hello, Message, Request, Response,
};
use yonder_remote::{AgentClient, Bytes, Remote, RemoteError};

async fn read_message(stream: &mut DuplexStream) -> Option<(u64, Message)> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await.ok()?;
    let len = parse_length(prefix).unwrap();
    let mut frame = vec![0u8; len as usize];
    stream.read_exact(&mut frame).await.unwrap();
    let (id, body) = split_frame(&frame).unwrap();
    Some((id, yonder_proto::decode_body(body).unwrap()))
}

async fn send(stream: &mut DuplexStream, id: u64, message: Message) {
    stream
        .write_all(&encode_frame(id, &message).unwrap())
        .await
        .unwrap();
}

fn hello(version: u32) -> Message {
    Message::Hello(Hello {
        version,
        capabilities: vec![],
        software: "scripted peer".into(),
    })
}

/// A client connected to a peer that answered the handshake; returns the
/// peer's end of the stream.
async fn connected() -> (AgentClient, DuplexStream) {
    let (client_end, mut peer) = tokio::io::duplex(1 << 20);
    let (r, w) = tokio::io::split(client_end);
    let handshake = tokio::spawn(async move { AgentClient::handshake(r, w, "scripted").await });
    let (id, _) = read_message(&mut peer).await.unwrap();
    assert_eq!(id, 0);
    send(&mut peer, 0, hello(yonder_proto::PROTOCOL_VERSION)).await;
    (handshake.await.unwrap().unwrap(), peer)
}

#[tokio::test]
async fn version_mismatch_names_both_versions() {
    let (client_end, mut peer) = tokio::io::duplex(1 << 16);
    let (r, w) = tokio::io::split(client_end);
    let handshake = tokio::spawn(async move { AgentClient::handshake(r, w, "scripted").await });
    read_message(&mut peer).await.unwrap();
    send(&mut peer, 0, hello(99)).await;
    let err = handshake.await.unwrap().err().expect("mismatch must fail");
    let text = err.to_string();
    assert!(
        text.contains(&format!("client speaks v{}", yonder_proto::PROTOCOL_VERSION)),
        "{text}"
    );
    assert!(text.contains("agent speaks v99"), "{text}");
}

#[tokio::test]
async fn responses_are_matched_by_id_in_any_order() {
    let (client, mut peer) = connected().await;
    let client = std::sync::Arc::new(client);
    let mut calls = Vec::new();
    for i in 0..3u64 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client.lstat(format!("f{i}").as_bytes()).await
        }));
    }
    let mut requests = Vec::new();
    for _ in 0..3 {
        let (id, message) = read_message(&mut peer).await.unwrap();
        let Message::Request(Request::Lstat { path }) = message else {
            panic!("{message:?}")
        };
        requests.push((id, path));
    }
    // Answer in reverse order; each answer's size names the path it is for.
    for (id, path) in requests.iter().rev() {
        let n: u64 = std::str::from_utf8(&path[1..]).unwrap().parse().unwrap();
        send(
            &mut peer,
            *id,
            Message::Response(Response::Attr(Attr {
                size: n,
                ..Default::default()
            })),
        )
        .await;
    }
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap().size, i as u64);
    }
}

#[tokio::test]
async fn an_undecodable_response_fails_only_its_request() {
    let (client, mut peer) = connected().await;
    let client = std::sync::Arc::new(client);
    let c = client.clone();
    let call = tokio::spawn(async move { c.lstat(b"x").await });
    let (id, _) = read_message(&mut peer).await.unwrap();
    let mut garbage = vec![0, 0, 0, 11];
    garbage.extend_from_slice(&id.to_be_bytes());
    garbage.extend_from_slice(&[0xee, 0xee, 0xee]);
    peer.write_all(&garbage).await.unwrap();
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.errno(), Errno::EPROTO);
    assert!(err.to_string().contains("ee ee ee"), "{err}");
    // The connection still works.
    let c = client.clone();
    let call = tokio::spawn(async move { c.lstat(b"y").await });
    let (id, _) = read_message(&mut peer).await.unwrap();
    send(
        &mut peer,
        id,
        Message::Response(Response::Attr(Attr {
            size: 7,
            ..Default::default()
        })),
    )
    .await;
    assert_eq!(call.await.unwrap().unwrap().size, 7);
}

#[tokio::test]
async fn a_vanished_peer_fails_pending_and_later_calls_instead_of_hanging() {
    let (client, mut peer) = connected().await;
    let client = std::sync::Arc::new(client);
    let c = client.clone();
    let call = tokio::spawn(async move { c.lstat(b"x").await });
    read_message(&mut peer).await.unwrap();
    drop(peer);
    let err = call.await.unwrap().unwrap_err();
    assert!(matches!(err, RemoteError::Disconnected { .. }), "{err:?}");
    assert_eq!(err.errno(), Errno::ENOTCONN);
    let err = client.lstat(b"later").await.unwrap_err();
    assert!(matches!(err, RemoteError::NotConnected { .. }), "{err:?}");
    assert!(err.is_connection_lost() && !err.outcome_unknown());
    assert_eq!(err.errno(), Errno::ENOTCONN);
}

#[tokio::test]
async fn shutdown_fails_the_calls_waiting_on_a_silent_peer_at_once() {
    // The peer reads the request and never answers (a stopped agent).
    let (client, mut peer) = connected().await;
    let client = std::sync::Arc::new(client);
    let c = client.clone();
    let call = tokio::spawn(async move { c.lstat(b"x").await });
    read_message(&mut peer).await.unwrap();
    let heard = client.last_heard();
    assert!(!client.is_closed());
    let closed = client.closed();
    client.shutdown("no answer to 3 heartbeats");
    let err = tokio::time::timeout(std::time::Duration::from_secs(1), call)
        .await
        .expect("failed at once")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, RemoteError::Disconnected { .. }), "{err:?}");
    assert!(err.to_string().contains("no answer to 3 heartbeats"), "{err}");
    assert_eq!(closed.await, "no answer to 3 heartbeats");
    assert!(client.is_closed());
    assert_eq!(client.last_heard(), heard, "nothing was heard since");
    // The stream is closed: the peer sees its end.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), peer.read_to_end(&mut rest)).await;
    assert!(matches!(
        client.ping().await,
        Err(RemoteError::NotConnected { .. })
    ));
}

#[tokio::test]
async fn every_frame_from_the_agent_counts_as_a_sign_of_life() {
    let (client, mut peer) = connected().await;
    let client = std::sync::Arc::new(client);
    let before = client.last_heard();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let c = client.clone();
    let call = tokio::spawn(async move { c.lstat(b"x").await });
    let (id, _) = read_message(&mut peer).await.unwrap();
    send(&mut peer, id, Message::Response(Response::Attr(Attr::default()))).await;
    call.await.unwrap().unwrap();
    assert!(client.last_heard() > before);
}

#[tokio::test]
async fn agent_errors_carry_op_path_and_errno() {
    let (client, mut peer) = connected().await;
    let client = std::sync::Arc::new(client);
    let c = client.clone();
    let call = tokio::spawn(async move { c.rmdir(b"dir/sub").await });
    let (id, _) = read_message(&mut peer).await.unwrap();
    let error = yonder_proto::WireError {
        errno: Errno::ENOTEMPTY,
        message: "rmdir dir/sub: not empty".into(),
    };
    send(&mut peer, id, Message::Response(Response::Error(error))).await;
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.errno(), Errno::ENOTEMPTY);
    assert_eq!(err.to_string(), "rmdir dir/sub: Directory not empty");
}

/// A transport that notes the address of every buffer the client asks it
/// to write.
struct Recorder<W> {
    inner: W,
    seen: Arc<Mutex<Vec<usize>>>,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Recorder<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.seen.lock().unwrap().push(buf.as_ptr() as usize);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.seen
            .lock()
            .unwrap()
            .extend(bufs.iter().map(|b| b.as_ptr() as usize));
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn a_write_goes_out_from_the_callers_buffer_as_an_ordinary_write_frame() {
    let (client_end, mut peer) = tokio::io::duplex(8 << 20);
    let (r, w) = tokio::io::split(client_end);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let w = Recorder {
        inner: w,
        seen: seen.clone(),
    };
    let handshake = tokio::spawn(async move { AgentClient::handshake(r, w, "scripted").await });
    read_message(&mut peer).await.unwrap();
    send(&mut peer, 0, hello(yonder_proto::PROTOCOL_VERSION)).await;
    let client = Arc::new(handshake.await.unwrap().unwrap());
    // A megabyte (sent past the client's write buffer) and a few bytes
    // (gathered in it): the agent sees the frame `Request::Write` encodes.
    for (len, offset) in [(1 << 20, 1u64 << 33), (3, 5)] {
        let data = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let (c, d) = (client.clone(), data.clone());
        let call = tokio::spawn(async move { c.write(Handle(7), offset, d).await });
        let (id, message) = read_message(&mut peer).await.unwrap();
        let want = Request::Write {
            handle: Handle(7),
            offset,
            data: data.to_vec(),
        };
        assert_eq!(message, Message::Request(want));
        send(&mut peer, id, Message::Response(Response::Written(len as u32))).await;
        assert_eq!(call.await.unwrap().unwrap(), len as u32);
        if len == 1 << 20 {
            // Handed to the transport from the caller's `Bytes`: no copy on
            // the way.
            assert!(seen.lock().unwrap().contains(&(data.as_ptr() as usize)));
        }
    }
}
