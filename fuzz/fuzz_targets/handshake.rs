//! The direct path's handshake as the agent's listener runs it
//! (`yonder_direct::Acceptor`), on arbitrary bytes from a client: TLS 1.3,
//! then the proof of a secret. Whatever the bytes, it ends (no hang, no
//! panic) and never accepts: a stream no TLS client made, and no client
//! that knows the secret, proves nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use yonder_direct::{Acceptor, ServerIdentity};

/// A listener's acceptor, with one unspent secret (spending needs a proof
/// bound to a TLS session this input cannot complete).
static ACCEPTOR: LazyLock<Acceptor> = LazyLock::new(|| {
    let identity = ServerIdentity::generate().expect("a certificate");
    Acceptor::single_use(identity, vec![vec![0x5a; 32]])
});

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
}

/// The client's bytes, then end of stream; what the server sends is
/// dropped.
struct Client<'a> {
    input: &'a [u8],
}

impl AsyncRead for Client<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let n = self.input.len().min(buf.remaining());
        buf.put_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Client<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    let acceptor = &*ACCEPTOR;
    let accepted = RUNTIME.with(|rt| rt.block_on(acceptor.accept_stream(Client { input: data }, "fuzz")));
    assert!(accepted.is_err(), "arbitrary bytes were accepted as a proven connection");
    assert_eq!(acceptor.remaining(), 1, "a secret was spent");
});
