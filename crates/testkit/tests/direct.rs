//! The direct path's listener, live: an agent served in this process is
//! asked for a listener over its stream (as over ssh), and every
//! connection that is not the expected one is refused before the agent
//! reads a request: a proof without the secret, a wrong one, a spent one, plain TCP, a
//! client pinned to another certificate, a connection after the expected
//! ones, and one after the stream that asked ended. The standalone
//! listener refuses a wrong key.

#![cfg(unix)]

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use yonder_direct::{ClientTls, DirectError};
use yonder_remote::{AgentClient, DirectOffer, Remote, Session};

/// "At once", as opposed to a timeout.
const PROMPTLY: Duration = Duration::from_secs(3);

async fn offer(client: &AgentClient, connections: u32) -> DirectOffer {
    client
        .direct_listen(None, connections)
        .await
        .expect("direct-listen")
        .expect("the agent lists the direct capability")
}

fn addr(offer: &DirectOffer) -> String {
    format!("{}:{}", offer.address, offer.port)
}

async fn connect(offer: &DirectOffer, secret: &[u8]) -> Result<yonder_direct::ClientStream, DirectError> {
    let stream = TcpStream::connect(addr(offer)).await.expect("tcp connect");
    tokio::time::timeout(
        PROMPTLY,
        ClientTls::pinned(offer.fingerprint).connect(stream, secret),
    )
    .await
    .expect("refused at once, not by a timeout")
}

/// The agent's protocol over an authenticated connection: a `stat` of the
/// root answers.
async fn serves(tls: yonder_direct::ClientStream) {
    let (reader, writer) = tokio::io::split(tls);
    let client = AgentClient::handshake(reader, writer, "direct")
        .await
        .expect("handshake");
    client.lstat(b"").await.expect("lstat of the root");
}

fn refused(result: Result<yonder_direct::ClientStream, DirectError>) -> String {
    match result {
        Err(DirectError::Refused { reason, .. }) => reason,
        Err(other) => panic!("refused otherwise: {other}"),
        Ok(_) => panic!("accepted"),
    }
}

#[tokio::test]
async fn the_expected_connection_is_served_and_a_wrong_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _agent) = yonder_testkit::agent::connect(dir.path()).await.unwrap();
    let offer = offer(&client, 1).await;
    assert_eq!(offer.secrets.len(), 1);
    let wrong = refused(connect(&offer, &[7u8; 32]).await);
    assert!(wrong.contains("refused"), "{wrong}");
    // The wrong attempt spent nothing.
    serves(
        connect(&offer, &offer.secrets[0])
            .await
            .expect("the right secret"),
    )
    .await;
}

#[tokio::test]
async fn a_spent_secret_is_refused_and_the_listener_closes_after_the_expected_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _agent) = yonder_testkit::agent::connect(dir.path()).await.unwrap();
    let offer = offer(&client, 2).await;
    let first = connect(&offer, &offer.secrets[0]).await.expect("first secret");
    refused(connect(&offer, &offer.secrets[0]).await);
    let second = connect(&offer, &offer.secrets[1]).await.expect("second secret");
    serves(first).await;
    serves(second).await;
    // Both spent: no one is listening any more.
    let closed = async {
        loop {
            if TcpStream::connect(addr(&offer)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, closed)
        .await
        .expect("the listener still accepts after its connections were made");
}

#[tokio::test]
async fn plain_tcp_and_no_secret_are_refused_without_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _agent) = yonder_testkit::agent::connect(dir.path()).await.unwrap();
    let offer = offer(&client, 1).await;
    // The protocol's Hello, in the clear.
    let mut plain = TcpStream::connect(addr(&offer)).await.unwrap();
    let hello = yonder_proto::Message::Hello(yonder_proto::Hello {
        version: yonder_proto::PROTOCOL_VERSION,
        capabilities: vec![],
        software: "plain".into(),
    });
    plain
        .write_all(&yonder_proto::encode_frame(0, &hello).unwrap())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PROMPTLY, plain.read_to_end(&mut answer)).await;
    let answered = read.expect("closed at once");
    // rustls may answer a TLS alert record, never a protocol frame.
    assert!(
        answered.is_err() || answer.is_empty() || answer[0] == 0x15,
        "plain TCP got {answer:?}"
    );
    // TLS, then a proof made without the secret (of an empty key).
    let stream = TcpStream::connect(addr(&offer)).await.unwrap();
    let config = ClientTls::pinned(offer.fingerprint);
    let short = config.connect(stream, &[]).await;
    assert!(short.is_err(), "a connection without a secret was accepted");
    // The one secret is still unspent.
    serves(
        connect(&offer, &offer.secrets[0])
            .await
            .expect("the right secret"),
    )
    .await;
}

#[tokio::test]
async fn a_client_pinned_to_another_certificate_refuses_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _agent) = yonder_testkit::agent::connect(dir.path()).await.unwrap();
    let offer = offer(&client, 1).await;
    let stream = TcpStream::connect(addr(&offer)).await.unwrap();
    let mut other = offer.fingerprint;
    other[0] ^= 1;
    match ClientTls::pinned(other).connect(stream, &offer.secrets[0]).await {
        Err(DirectError::Tls { source, .. }) => {
            assert!(
                source.to_string().contains("not the one it announced"),
                "{source}"
            )
        }
        Err(other) => panic!("failed otherwise: {other}"),
        Ok(_) => panic!("a certificate that is not the pinned one was taken"),
    }
    // The secret never left the client.
    serves(
        connect(&offer, &offer.secrets[0])
            .await
            .expect("the right secret"),
    )
    .await;
}

#[tokio::test]
async fn the_listener_and_its_connections_end_with_the_stream_that_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (client, agent) = yonder_testkit::agent::connect(dir.path()).await.unwrap();
    let offer = offer(&client, 2).await;
    let tls = connect(&offer, &offer.secrets[0]).await.expect("first secret");
    let (reader, writer) = tokio::io::split(tls);
    let direct = AgentClient::handshake(reader, writer, "direct").await.unwrap();
    direct.lstat(b"").await.unwrap();
    // The ssh session ends.
    drop(client);
    tokio::time::timeout(PROMPTLY, agent)
        .await
        .expect("the agent ends")
        .unwrap()
        .unwrap();
    tokio::time::timeout(PROMPTLY, Session::closed(&direct))
        .await
        .expect("the direct connection ends with it");
    let stream = tokio::time::timeout(PROMPTLY, TcpStream::connect(addr(&offer)))
        .await
        .unwrap();
    assert!(stream.is_err(), "the listener outlived its stream");
}

#[tokio::test]
async fn only_the_stream_that_started_the_agent_opens_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _agent) = yonder_testkit::agent::connect(dir.path()).await.unwrap();
    let offer = offer(&client, 1).await;
    let tls = connect(&offer, &offer.secrets[0]).await.unwrap();
    let (reader, writer) = tokio::io::split(tls);
    let direct = Arc::new(AgentClient::handshake(reader, writer, "direct").await.unwrap());
    let err = direct.direct_listen(None, 1).await.err().expect("refused");
    assert_eq!(err.errno(), yonder_proto::Errno::EOPNOTSUPP, "{err}");
}

#[tokio::test]
async fn the_standalone_listener_serves_its_key_and_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let port = yonder_testkit::free_port();
    let address = format!("127.0.0.1:{port}");
    let config = yonder_agent::AgentConfig {
        root: dir.path().to_path_buf(),
    };
    let key = vec![3u8; 32];
    let listener = tokio::spawn(yonder_agent::serve_listener(config, address.clone(), key.clone()));
    let stream = loop {
        match TcpStream::connect(&address).await {
            Ok(stream) => break stream,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    serves(ClientTls::by_key().connect(stream, &key).await.expect("the key")).await;
    let stream = TcpStream::connect(&address).await.unwrap();
    let wrong = ClientTls::by_key().connect(stream, &[4u8; 32]).await;
    refused(wrong);
    // The key is not spent.
    let stream = TcpStream::connect(&address).await.unwrap();
    serves(
        ClientTls::by_key()
            .connect(stream, &key)
            .await
            .expect("the key again"),
    )
    .await;
    listener.abort();
}

#[tokio::test]
async fn the_streams_of_one_listener_share_handles_and_a_fence() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"0123456789").unwrap();
    let (client, _agent) = yonder_testkit::agent::connect(dir.path()).await.unwrap();
    let offer = offer(&client, 3).await;
    let mut streams = Vec::new();
    for secret in &offer.secrets {
        let tls = connect(&offer, secret).await.unwrap();
        let (reader, writer) = tokio::io::split(tls);
        streams.push(Arc::new(
            AgentClient::handshake(reader, writer, "direct").await.unwrap(),
        ));
    }
    // A handle opened on one stream reads and writes on the others.
    let flags = yonder_proto::open_flags::READ_WRITE;
    let (handle, _) = streams[0].open(b"f", flags, 0, None).await.unwrap();
    assert_eq!(streams[2].read(handle, 2, 3).await.unwrap(), b"234");
    streams[1]
        .write(handle, 0, yonder_remote::Bytes::from_static(b"ab"))
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"ab23456789");
    // One fence for all: a newer generation fenced through another
    // connection of the session refuses changes on every stream.
    let together = yonder_remote::Streams::new(streams.clone(), None);
    let session = 0x5eed_0000_0000_0001;
    assert!(Session::fence(&together, session, 1).await.unwrap());
    let (newer, _agent2) = yonder_testkit::agent::connect(dir.path()).await.unwrap();
    assert!(newer.fence(session, 2).await.unwrap());
    let refused = streams[2]
        .write(handle, 0, yonder_remote::Bytes::from_static(b"zz"))
        .await;
    assert!(refused.is_err(), "a fenced-off stream wrote");
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"ab23456789");
}
