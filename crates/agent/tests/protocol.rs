//! Handshake, framing, decode failures and concurrency.

// The Unix agent's own system calls (Windows is served by the portable
// agent instead): these run on Unix only.
#![cfg(unix)]

mod common;

use common::{connect, start, wire};
use std::collections::HashSet;
use std::time::Duration;
use yonder_agent::AgentError;
use yonder_proto::{
    encode_frame, open_flags, Errno, FrameError, Hello, Message, Request, Response, CAPABILITIES,
    PROTOCOL_VERSION,
};

#[tokio::test]
async fn handshake_announces_version_and_capabilities() {
    let mut session = start();
    match session.hello(PROTOCOL_VERSION).await {
        Message::Hello(Hello {
            version,
            capabilities,
            software,
        }) => {
            assert_eq!(version, PROTOCOL_VERSION);
            assert_eq!(capabilities, CAPABILITIES);
            assert!(
                software.starts_with("yonder ") && software.ends_with(" agent"),
                "{software}"
            );
        }
        other => panic!("expected Hello, got {other:?}"),
    }
    assert!(session.finish().await.is_ok());
}

#[tokio::test]
async fn version_mismatch_is_answered_and_ends_the_session() {
    let mut session = start();
    let other = PROTOCOL_VERSION + 41;
    match session.hello(other).await {
        Message::Response(Response::Error(err)) => {
            assert_eq!(err.errno, Errno::EPROTO);
            let expected = format!(
                "protocol version mismatch: client speaks v{other}, agent speaks v{PROTOCOL_VERSION}"
            );
            assert_eq!(err.message, expected);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(
        matches!(session.outcome().await, Err(AgentError::VersionMismatch { client, .. }) if client == other)
    );
}

#[tokio::test]
async fn first_frame_must_be_hello() {
    let mut session = start();
    session
        .send(0, &Message::Request(Request::Stat { path: wire("") }))
        .await;
    match session.recv().await {
        (0, Message::Response(Response::Error(err))) => {
            assert_eq!(err.errno, Errno::EPROTO);
            assert!(err.message.contains("expected Hello"), "{}", err.message);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(matches!(
        session.outcome().await,
        Err(AgentError::Handshake { .. })
    ));
}

#[tokio::test]
async fn eof_before_hello_is_an_error() {
    let session = start();
    assert!(matches!(
        session.finish().await,
        Err(AgentError::Handshake { .. })
    ));
}

#[tokio::test]
async fn clean_eof_after_handshake_is_ok() {
    let session = connect().await;
    assert!(session.finish().await.is_ok());
}

#[tokio::test]
async fn garbage_body_gets_an_error_for_its_id_and_the_session_continues() {
    let mut session = connect().await;
    let body = [0xff, 0xfe, 0xfd, 0xfc, 0xfb];
    let mut frame = Vec::new();
    frame.extend_from_slice(&(8 + body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&77u64.to_be_bytes());
    frame.extend_from_slice(&body);
    session.send_raw(&frame).await;
    match session.recv_response().await {
        (77, Response::Error(err)) => {
            assert_eq!(err.errno, Errno::EPROTO);
            // The decode error names the type, frame length and a preview.
            assert!(err.message.contains("Message"), "{}", err.message);
            assert!(err.message.contains("13-byte"), "{}", err.message);
            assert!(err.message.contains("ff fe fd fc fb"), "{}", err.message);
        }
        other => panic!("expected an error for id 77, got {other:?}"),
    }
    assert!(matches!(session.call(Request::Stat { path: wire("") }).await, Response::Attr(a) if a.is_dir()));
    assert!(session.finish().await.is_ok());
}

#[tokio::test]
async fn hello_after_handshake_is_a_protocol_error() {
    let mut session = connect().await;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        capabilities: vec![],
        software: "again".into(),
    };
    session.send(5, &Message::Hello(hello)).await;
    match session.recv_response().await {
        (5, Response::Error(err)) => assert_eq!(err.errno, Errno::EPROTO),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        session.call(Request::Lstat { path: wire(".") }).await,
        Response::Attr(_)
    ));
}

#[tokio::test]
async fn oversized_length_prefix_stops_the_session() {
    let mut session = connect().await;
    session
        .send_raw(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1])
        .await;
    match session.outcome().await {
        Err(AgentError::Frame {
            source: FrameError::TooLarge { len: u32::MAX, .. },
            ..
        }) => {}
        other => panic!("expected a framing error, got {other:?}"),
    }
}

#[tokio::test]
async fn undersized_length_prefix_stops_the_session() {
    let mut session = connect().await;
    session.send_raw(&[0, 0, 0, 3, 1, 2, 3]).await;
    assert!(matches!(
        session.outcome().await,
        Err(AgentError::Frame {
            source: FrameError::TooShort { len: 3 },
            ..
        })
    ));
}

#[tokio::test]
async fn frame_cut_short_is_an_error() {
    let mut session = connect().await;
    let frame = encode_frame(9, &Message::Request(Request::Stat { path: wire("") })).unwrap();
    session.send_raw(&frame[..frame.len() - 1]).await;
    assert!(matches!(
        session.finish().await,
        Err(AgentError::Frame {
            source: FrameError::Truncated { .. },
            ..
        })
    ));
}

#[tokio::test]
async fn pipelined_requests_all_get_their_own_answer() {
    let mut session = connect().await;
    for i in 0..16 {
        std::fs::write(session.path(&format!("f{i}")), vec![0; i]).unwrap();
    }
    let mut expected = std::collections::HashMap::new();
    for i in 0..64 {
        let name = format!("f{}", i % 16);
        let id = session.submit(Request::Lstat { path: wire(&name) }).await;
        expected.insert(id, (i % 16) as u64);
    }
    let mut seen = HashSet::new();
    for _ in 0..64 {
        let (id, response) = session.recv_response().await;
        assert!(seen.insert(id), "two responses for id {id}");
        match response {
            Response::Attr(attr) => assert_eq!(attr.size, expected[&id], "id {id}"),
            other => panic!("id {id}: {other:?}"),
        }
    }
    assert_eq!(seen.len(), 64);
}

/// An open of a FIFO without a writer blocks in the kernel; a stat sent after
/// it must still be answered first.
#[tokio::test]
async fn blocked_request_does_not_stall_others() {
    let mut session = connect().await;
    let fifo = session.path("fifo");
    // mkfifo, not rustix's mkfifoat, which Apple's systems lack.
    let fifo_c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o600) }, 0);
    let open = Request::Open {
        path: wire("fifo"),
        flags: open_flags::READ_ONLY,
        mode: 0,
        owner: None,
    };
    let open_id = session.submit(open).await;
    let stat_id = session.submit(Request::Stat { path: wire("fifo") }).await;
    let (id, response) = session.recv_response().await;
    assert_eq!(id, stat_id, "the stat waited for the blocked open");
    assert!(matches!(response, Response::Attr(_)));

    // Unblock the open by opening the write end.
    let writer =
        tokio::task::spawn_blocking(move || std::fs::OpenOptions::new().write(true).open(fifo).unwrap());
    let (id, response) = session.recv_response().await;
    assert_eq!(id, open_id);
    let Response::Opened { handle, .. } = response else {
        panic!("{response:?}")
    };
    let mut writer = tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .unwrap()
        .unwrap();
    std::io::Write::write_all(&mut writer, b"through the pipe").unwrap();
    // FIFOs have no offsets; the agent reads them as streams.
    let response = session
        .ok(Request::Read {
            handle,
            offset: 0,
            len: 100,
        })
        .await;
    assert_eq!(response, Response::Data(b"through the pipe".to_vec()));
}
