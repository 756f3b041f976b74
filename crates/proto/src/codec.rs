//! Length-prefixed framing and body encoding.
//!
//! Transports read [`FRAME_HEADER_LEN`] bytes, validate them with
//! [`parse_length`] *before* allocating, read the rest of the frame, and hand
//! it to [`split_frame`] / [`decode_body`]. [`FrameDecoder`] does the same for
//! callers that receive bytes in arbitrary chunks.

use crate::message::Message;
use serde::de::DeserializeOwned;
use std::fmt::Write as _;

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 4;
/// Size of the request id that starts every frame body.
pub const ID_LEN: usize = 8;
/// Length prefix plus id.
pub const FRAME_HEADER_LEN: usize = LEN_PREFIX + ID_LEN;
/// Largest frame (id plus body) either side accepts: the biggest I/O payload
/// plus generous room for the envelope.
pub const MAX_FRAME_LEN: u32 = crate::MAX_IO_SIZE + 64 * 1024;

/// A framing violation. After one of these the byte stream cannot be trusted
/// (the frame boundary is lost), so the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {len} exceeds the maximum of {max} bytes")]
    TooLarge { len: u32, max: u32 },
    #[error("frame length {len} is shorter than the {ID_LEN}-byte request id")]
    TooShort { len: u32 },
    #[error("stream ended inside a frame: expected {expected} bytes, got {got}")]
    Truncated { expected: usize, got: usize },
}

/// A frame whose boundary is intact but whose body does not decode. The peer
/// can still be answered, since the id was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {type_name} from a {frame_len}-byte frame: {reason} (first bytes: {preview})")]
pub struct DecodeError {
    pub type_name: &'static str,
    pub frame_len: usize,
    pub preview: String,
    pub reason: String,
}

/// Validates a length prefix without trusting it for allocation.
pub fn parse_length(prefix: [u8; LEN_PREFIX]) -> Result<u32, FrameError> {
    let len = u32::from_be_bytes(prefix);
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    if (len as usize) < ID_LEN {
        return Err(FrameError::TooShort { len });
    }
    Ok(len)
}

/// Splits a frame (everything after the length prefix) into id and body.
pub fn split_frame(frame: &[u8]) -> Result<(u64, &[u8]), FrameError> {
    if frame.len() < ID_LEN {
        return Err(FrameError::TooShort {
            len: frame.len() as u32,
        });
    }
    let (id, body) = frame.split_at(ID_LEN);
    Ok((u64::from_be_bytes(id.try_into().expect("split at ID_LEN")), body))
}

/// Encodes a complete frame, length prefix included, appending it to `out`.
///
/// Fails only if the message is larger than [`MAX_FRAME_LEN`]; callers split
/// I/O into chunks of at most [`crate::MAX_IO_SIZE`] so that never happens.
pub fn encode_frame_into(id: u64, message: &Message, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_PREFIX]);
    out.extend_from_slice(&id.to_be_bytes());
    let encoded = postcard::to_extend(message, std::mem::take(out)).expect("encoding into a Vec cannot fail");
    *out = encoded;
    let len = out.len() - start - LEN_PREFIX;
    if len > MAX_FRAME_LEN as usize {
        out.truncate(start);
        return Err(FrameError::TooLarge {
            len: len.min(u32::MAX as usize) as u32,
            max: MAX_FRAME_LEN,
        });
    }
    out[start..start + LEN_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Encodes a complete frame, length prefix included.
pub fn encode_frame(id: u64, message: &Message) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_frame_into(id, message, &mut out)?;
    Ok(out)
}

/// Decodes a frame body (the bytes after the id) as `T`.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    match postcard::from_bytes::<T>(body) {
        Ok(value) => Ok(value),
        Err(err) => Err(DecodeError {
            type_name: short_type_name::<T>(),
            frame_len: body.len() + ID_LEN,
            preview: hex_preview(body, 32),
            reason: err.to_string(),
        }),
    }
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Hex dump of at most `max` leading bytes, with an ellipsis if cut.
pub fn hex_preview(bytes: &[u8], max: usize) -> String {
    let mut s = String::with_capacity(max * 3);
    for (i, b) in bytes.iter().take(max).enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    if bytes.len() > max {
        s.push_str(" ...");
    }
    if s.is_empty() {
        s.push_str("<empty>");
    }
    s
}

/// Longest body prefix [`data_response_header`] needs to see.
pub const DATA_HEADER_MAX: usize = 2 + 10;

/// If `prefix` (the first bytes of a frame body whose full length is
/// `body_len`) starts a `Message::Response(Response::Data(..))`, returns
/// the length of the header before the payload bytes.
///
/// This lets a reader put a read's payload straight into its own buffer
/// instead of decoding (copying) a megabyte per response; the layout is
/// postcard's: variant index, variant index, varint length, bytes.
pub fn data_response_header(prefix: &[u8], body_len: usize) -> Option<usize> {
    // Variant indices of Message::Response and Response::Data.
    const RESPONSE: u8 = 2;
    const DATA: u8 = 3;
    if prefix.len() < 3 || prefix[0] != RESPONSE || prefix[1] != DATA {
        return None;
    }
    let mut len: u64 = 0;
    for (i, byte) in prefix[2..].iter().enumerate().take(10) {
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let header = 2 + i + 1;
            return (header as u64 + len == body_len as u64).then_some(header);
        }
    }
    None
}

/// Encodes everything of a `Response::Data` frame but the payload itself,
/// so a writer can send the payload from the buffer it was read into.
/// `header ++ payload` equals `encode_frame(id, Response::Data(payload))`.
pub fn encode_data_response_header(id: u64, payload_len: usize) -> Result<Vec<u8>, FrameError> {
    let mut varint = [0u8; 10];
    let mut n = payload_len as u64;
    let mut used = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        varint[used] = if n == 0 { byte } else { byte | 0x80 };
        used += 1;
        if n == 0 {
            break;
        }
    }
    let len = ID_LEN + 2 + used + payload_len;
    if len > MAX_FRAME_LEN as usize {
        return Err(FrameError::TooLarge {
            len: len.min(u32::MAX as usize) as u32,
            max: MAX_FRAME_LEN,
        });
    }
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + 2 + used);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[2, 3]);
    out.extend_from_slice(&varint[..used]);
    Ok(out)
}

/// A decoded frame: its id and undecoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub id: u64,
    pub body: Vec<u8>,
}

impl RawFrame {
    pub fn decode(&self) -> Result<Message, DecodeError> {
        decode_body(&self.body)
    }
}

/// Incremental frame splitter for bytes that arrive in arbitrary chunks.
#[derive(Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Returns the next complete frame, `Ok(None)` if more bytes are needed.
    /// The length is validated before any frame-sized allocation.
    pub fn next_frame(&mut self) -> Result<Option<RawFrame>, FrameError> {
        if self.buf.len() < LEN_PREFIX {
            return Ok(None);
        }
        let len = parse_length(self.buf[..LEN_PREFIX].try_into().expect("4 bytes"))? as usize;
        if self.buf.len() < LEN_PREFIX + len {
            return Ok(None);
        }
        let frame: Vec<u8> = self.buf.drain(..LEN_PREFIX + len).skip(LEN_PREFIX).collect();
        let (id, body) = split_frame(&frame)?;
        Ok(Some(RawFrame {
            id,
            body: body.to_vec(),
        }))
    }

    /// Call at end of stream: reports a frame cut short.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let expected = if self.buf.len() >= LEN_PREFIX {
            LEN_PREFIX + u32::from_be_bytes(self.buf[..LEN_PREFIX].try_into().expect("4 bytes")) as usize
        } else {
            LEN_PREFIX
        };
        Err(FrameError::Truncated {
            expected,
            got: self.buf.len(),
        })
    }
}
