//! The client against scripted peers: version mismatch, undecodable
//! responses, out-of-order replies and a peer that disappears.

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use yonder_proto::{encode_frame, parse_length, split_frame, Attr, Errno, Hello, Message, Request, Response};
use yonder_remote::{AgentClient, Remote, RemoteError};

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
    assert!(matches!(err, RemoteError::Disconnected { .. }), "{err:?}");
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
