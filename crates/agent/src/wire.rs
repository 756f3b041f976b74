//! Frames in and out of the byte stream.

use crate::AgentError;
use tokio::io::AsyncRead;
use yonder_proto::stream::{FrameReader, ReadError};
use yonder_proto::{encode_frame, Errno, FrameError, Message, RawFrame, Response, WireError};

/// Reads the next frame with the frame reader the client uses too
/// (`yonder_proto::stream`); `None` on end of stream at a frame boundary.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
) -> Result<Option<RawFrame>, AgentError> {
    const OP: &str = "reading a frame from the client";
    reader.next_frame().await.map_err(|err| match err {
        ReadError::Io(source) => AgentError::Io { op: OP, source },
        ReadError::Frame(source) => AgentError::Frame { op: OP, source },
    })
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
        Message::Notice(_) => "Notice",
    }
}
