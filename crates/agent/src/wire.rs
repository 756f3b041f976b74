//! Frames in and out of the byte stream.

use crate::AgentError;
use tokio::io::{AsyncRead, AsyncReadExt};
use yonder_proto::{
    codec::ID_LEN, decode_body, encode_frame, parse_length, DecodeError, Errno, FrameError, Message,
    Response, WireError, LEN_PREFIX,
};

/// One frame as read: the request id and the undecoded body.
pub(crate) struct Frame {
    pub id: u64,
    /// The whole frame after the length prefix; the body follows the id.
    bytes: Vec<u8>,
}

impl Frame {
    pub(crate) fn decode(&self) -> Result<Message, DecodeError> {
        decode_body(&self.bytes[ID_LEN..])
    }
}

/// Reads the next frame; `None` on end of stream at a frame boundary.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Frame>, AgentError> {
    const OP: &str = "reading a frame from the client";
    let io_err = |source| AgentError::Io { op: OP, source };
    let mut prefix = [0; LEN_PREFIX];
    match read_full(reader, &mut prefix).await.map_err(io_err)? {
        0 => return Ok(None),
        LEN_PREFIX => {}
        got => {
            let source = FrameError::Truncated {
                expected: LEN_PREFIX,
                got,
            };
            return Err(AgentError::Frame { op: OP, source });
        }
    }
    // Validated before the allocation it sizes.
    let len = parse_length(prefix).map_err(|source| AgentError::Frame { op: OP, source })? as usize;
    let mut bytes = vec![0; len];
    let got = read_full(reader, &mut bytes).await.map_err(io_err)?;
    if got < len {
        let source = FrameError::Truncated {
            expected: LEN_PREFIX + len,
            got: LEN_PREFIX + got,
        };
        return Err(AgentError::Frame { op: OP, source });
    }
    let (id, _) = yonder_proto::split_frame(&bytes).map_err(|source| AgentError::Frame { op: OP, source })?;
    Ok(Some(Frame { id, bytes }))
}

/// Like `read_exact`, but tells how much arrived before end of stream, to
/// tell a clean end from a frame cut short.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match reader.read(&mut buf[done..]).await {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Encodes a response frame. A response too large for a frame (which the
/// operations are built never to produce) becomes an error response, so the
/// client is answered either way.
///
/// Returns the frame and, for a read's data, the payload to send after it
/// unchanged: a megabyte of data is not copied into a frame buffer.
pub(crate) fn encode_response(id: u64, response: Response) -> (Vec<u8>, Vec<u8>) {
    if let Response::Data(payload) = response {
        return match yonder_proto::codec::encode_data_response_header(id, payload.len()) {
            Ok(header) => (header, payload),
            Err(err) => (too_large(id, err), Vec::new()),
        };
    }
    match encode_frame(id, &Message::Response(response)) {
        Ok(frame) => (frame, Vec::new()),
        Err(err) => (too_large(id, err), Vec::new()),
    }
}

/// The error response sent instead of a response that does not fit.
pub(crate) fn too_large_response(err: FrameError) -> Response {
    Response::Error(WireError {
        errno: Errno::EOVERFLOW,
        message: format!("response does not fit in a frame: {err}"),
    })
}

fn too_large(id: u64, err: FrameError) -> Vec<u8> {
    tracing::warn!(id, %err, "response does not fit in a frame");
    encode_frame(id, &Message::Response(too_large_response(err))).expect("a short error fits in a frame")
}

/// A protocol-level error response (EPROTO), for frames that are not a
/// request this agent can run.
pub(crate) fn protocol_error(message: String) -> Response {
    Response::Error(WireError {
        errno: Errno::EPROTO,
        message,
    })
}

pub(crate) fn kind(message: &Message) -> &'static str {
    match message {
        Message::Hello(_) => "Hello",
        Message::Request(_) => "Request",
        Message::Response(_) => "Response",
    }
}
