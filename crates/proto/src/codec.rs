//! Length-prefixed framing and body encoding.
//!
//! [`FrameDecoder`] is the one frame reader: it validates a length prefix
//! with [`parse_length`] *before* allocating, reads the id outside the body
//! (so an undecodable request can still be answered), and splits a read's
//! or a write's payload off its frame undecoded ([`Payload`]). It does no
//! I/O: callers push chunks of bytes into it, or, through
//! `crate::stream::FrameReader` (feature `tokio`), the client and the
//! agent read from their byte streams straight into the buffers it names.
//!
//! On the way out, [`encode_frame`] encodes whole frames, and
//! [`encode_data_response_header`] / [`encode_write_request_header`] all of a
//! `Response::Data` / `Request::Write` frame but its payload, which the
//! writer sends from where it already is.

use crate::message::{Handle, Message, Request, Response};
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
///
/// The body must be exactly one `T`: bytes left over after a complete
/// value are refused, as a body that ends too soon is. Either means the
/// peer's idea of the message differs from ours, and a request or a
/// response taken from the front of such a body could be the wrong one.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let error = |reason: String| DecodeError {
        type_name: short_type_name::<T>(),
        frame_len: body.len() + ID_LEN,
        preview: hex_preview(body, 32),
        reason,
    };
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(error(format!(
            "{} trailing bytes after a complete message of {} bytes",
            rest.len(),
            body.len() - rest.len()
        ))),
        Err(err) => Err(error(err.to_string())),
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

// Variant indices of the messages whose payloads bypass the codec, as
// postcard writes them (a varint: one byte below 128): Message::Request,
// Message::Response, Request::Write, Response::Data. The tests check them
// against the encoder.
const TAG_REQUEST: u8 = 1;
const TAG_RESPONSE: u8 = 2;
const TAG_WRITE: u8 = 6;
const TAG_DATA: u8 = 3;

/// Longest varint postcard writes for a `u64` (or a `usize` length).
const VARINT_MAX: usize = 10;

/// Longest body prefix [`data_response_header`] needs to see.
pub const DATA_HEADER_MAX: usize = 2 + VARINT_MAX;

/// Longest body prefix [`write_request_header`] needs to see.
pub const WRITE_HEADER_MAX: usize = 2 + 3 * VARINT_MAX;

/// How much of a body [`FrameDecoder`] reads before allocating the rest:
/// enough to recognise every payload it splits off.
const PEEK: usize = if WRITE_HEADER_MAX > DATA_HEADER_MAX {
    WRITE_HEADER_MAX
} else {
    DATA_HEADER_MAX
};

/// Reads a postcard varint (`u64`) from the start of `bytes`: its value and
/// length. `None` if cut short or malformed; postcard's own checks, so that
/// what this accepts decodes to the same value.
fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(VARINT_MAX) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // The tenth byte may only carry bit 63.
            return (i < VARINT_MAX - 1 || byte <= 1).then_some((value, i + 1));
        }
    }
    None
}

fn write_varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `header_len + payload_len == body_len`, without overflowing on a
/// hostile varint.
fn fills_body(header_len: usize, payload_len: u64, body_len: usize) -> bool {
    (header_len as u64).checked_add(payload_len) == Some(body_len as u64)
}

/// If `prefix` (the first bytes of a frame body whose full length is
/// `body_len`) starts a `Message::Response(Response::Data(..))`, returns
/// the length of the header before the payload bytes.
///
/// This lets a reader put a read's payload straight into its own buffer
/// instead of decoding (copying) a megabyte per response; the layout is
/// postcard's: variant index, variant index, varint length, bytes.
pub fn data_response_header(prefix: &[u8], body_len: usize) -> Option<usize> {
    if prefix.len() < 3 || prefix[0] != TAG_RESPONSE || prefix[1] != TAG_DATA {
        return None;
    }
    let (len, used) = read_varint(&prefix[2..])?;
    let header = 2 + used;
    fills_body(header, len, body_len).then_some(header)
}

/// The fields of a `Request::Write` read from the start of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteHeader {
    pub handle: Handle,
    pub offset: u64,
    /// Bytes of the body before the payload.
    pub len: usize,
}

/// If `prefix` (the first bytes of a frame body whose full length is
/// `body_len`) starts a `Message::Request(Request::Write { .. })`, returns
/// its handle and offset and the length of the header before the payload:
/// the agent reads a write's data straight into its own buffer. The layout
/// is postcard's: variant index, variant index, varint handle, varint
/// offset, varint length, bytes.
pub fn write_request_header(prefix: &[u8], body_len: usize) -> Option<WriteHeader> {
    if prefix.len() < 2 || prefix[0] != TAG_REQUEST || prefix[1] != TAG_WRITE {
        return None;
    }
    let mut at = 2;
    let (handle, used) = read_varint(&prefix[at..])?;
    at += used;
    let (offset, used) = read_varint(&prefix[at..])?;
    at += used;
    let (len, used) = read_varint(&prefix[at..])?;
    at += used;
    fills_body(at, len, body_len).then_some(WriteHeader {
        handle: Handle(handle),
        offset,
        len: at,
    })
}

/// Everything of a frame but its payload: length prefix, id, `fields`
/// (tags and leading fields), the payload's varint length.
fn payload_frame_header(id: u64, fields: &[u8], payload_len: usize) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + fields.len() + VARINT_MAX);
    out.extend_from_slice(&[0; LEN_PREFIX]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(fields);
    write_varint(payload_len as u64, &mut out);
    let len = (out.len() - LEN_PREFIX).saturating_add(payload_len);
    if len > MAX_FRAME_LEN as usize {
        return Err(FrameError::TooLarge {
            len: len.min(u32::MAX as usize) as u32,
            max: MAX_FRAME_LEN,
        });
    }
    out[..LEN_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Encodes everything of a `Response::Data` frame but the payload itself,
/// so a writer can send the payload from the buffer it was read into.
/// `header ++ payload` equals `encode_frame(id, Response::Data(payload))`.
pub fn encode_data_response_header(id: u64, payload_len: usize) -> Result<Vec<u8>, FrameError> {
    payload_frame_header(id, &[TAG_RESPONSE, TAG_DATA], payload_len)
}

/// Encodes everything of a `Request::Write` frame but the payload itself,
/// so a client can send a write's data from the buffer it is in, with no
/// copy into a frame. `header ++ payload` equals
/// `encode_frame(id, Request::Write { handle, offset, data: payload })`.
pub fn encode_write_request_header(
    id: u64,
    handle: Handle,
    offset: u64,
    payload_len: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut fields = Vec::with_capacity(2 + 2 * VARINT_MAX);
    fields.extend_from_slice(&[TAG_REQUEST, TAG_WRITE]);
    write_varint(handle.0, &mut fields);
    write_varint(offset, &mut fields);
    payload_frame_header(id, &fields, payload_len)
}

/// A read's or a write's data, split off its frame without decoding: read
/// straight into a buffer of its own and handed on as it is, so a megabyte
/// is not copied out of a frame buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// `Message::Response(Response::Data(data))`.
    Data(Vec<u8>),
    /// `Message::Request(Request::Write { handle, offset, data })`.
    Write {
        handle: Handle,
        offset: u64,
        data: Vec<u8>,
    },
}

impl Payload {
    pub fn into_message(self) -> Message {
        match self {
            Payload::Data(data) => Message::Response(Response::Data(data)),
            Payload::Write { handle, offset, data } => {
                Message::Request(Request::Write { handle, offset, data })
            }
        }
    }
}

/// A payload recognised from the start of a body, before its bytes arrive.
#[derive(Clone, Copy)]
enum Split {
    Data,
    Write { handle: Handle, offset: u64 },
}

/// The header length and kind of a payload that `prefix` starts, if any.
fn payload_split(prefix: &[u8], body_len: usize) -> Option<(usize, Split)> {
    if let Some(header) = data_response_header(prefix, body_len) {
        return Some((header, Split::Data));
    }
    let write = write_request_header(prefix, body_len)?;
    Some((
        write.len,
        Split::Write {
            handle: write.handle,
            offset: write.offset,
        },
    ))
}

/// A frame as read: its id, and its body undecoded or its payload split off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub id: u64,
    /// The body, undecoded; empty when `payload` is set.
    pub body: Vec<u8>,
    /// A `Response::Data` or `Request::Write`, recognised by its first bytes
    /// and read without decoding.
    pub payload: Option<Payload>,
}

impl RawFrame {
    /// The frame's message; a split payload is moved into it, not copied.
    /// A body that does not decode gives a [`DecodeError`] naming the type,
    /// the frame length and a hex preview, for an `EPROTO` answer to `id`.
    pub fn into_message(self) -> Result<Message, DecodeError> {
        match self.payload {
            Some(payload) => Ok(payload.into_message()),
            None => decode_body(&self.body),
        }
    }

    /// Like [`RawFrame::into_message`], on a copy.
    pub fn decode(&self) -> Result<Message, DecodeError> {
        match &self.payload {
            Some(payload) => Ok(payload.clone().into_message()),
            None => decode_body(&self.body),
        }
    }
}

/// Where the next bytes of the stream go (see [`FrameDecoder::space`]).
pub(crate) enum Space<'a> {
    /// Fill a prefix of this slice: length prefix, id, the body's first bytes.
    Header(&'a mut [u8]),
    /// Append at most `limit` bytes to this vector, whose capacity is
    /// already reserved: the rest of the body or the payload.
    Body(&'a mut Vec<u8>, usize),
}

/// The body (or payload) of the frame in progress.
struct Body {
    id: u64,
    split: Option<Split>,
    buf: Vec<u8>,
    /// Length `buf` grows to.
    want: usize,
    /// Bytes of the frame before `buf`'s: length prefix, id, a split head.
    before: usize,
}

/// The frame reader: a state machine that takes a byte stream in pieces of
/// any size and returns whole frames.
///
/// - The length prefix is validated ([`parse_length`]) before anything is
///   allocated for the frame; a framing error is final.
/// - The id is read apart from the body, so a frame whose body does not
///   decode still names the request to answer.
/// - The first bytes of the body are read before the rest; a
///   `Response::Data` or a `Request::Write` then goes into a buffer of its
///   own as a [`Payload`], with no decode copy.
///
/// [`FrameDecoder::push`] / [`FrameDecoder::next_frame`] feed it chunks
/// (tests, fuzzing); `stream::FrameReader` (feature `tokio`) drives the
/// same machine from an `AsyncRead`, reading straight into the buffers it
/// names.
pub struct FrameDecoder {
    /// Pushed bytes not yet consumed ([`FrameDecoder::push`] only).
    input: Vec<u8>,
    /// Length prefix, id and up to [`PEEK`] body bytes of the frame in progress.
    header: [u8; FRAME_HEADER_LEN + PEEK],
    /// Bytes of `header` filled, while `body` is `None`.
    filled: usize,
    /// The frame's length (after the prefix), once the prefix is in.
    len: usize,
    body: Option<Body>,
    /// After a framing error the stream has no boundaries left to trust.
    failed: Option<FrameError>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            input: Vec::new(),
            header: [0; FRAME_HEADER_LEN + PEEK],
            filled: 0,
            len: 0,
            body: None,
            failed: None,
        }
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// Returns the next complete frame, `Ok(None)` if more bytes are needed.
    /// The length is validated before any frame-sized allocation.
    pub fn next_frame(&mut self) -> Result<Option<RawFrame>, FrameError> {
        if let Some(err) = self.failed() {
            return Err(err.clone());
        }
        let input = std::mem::take(&mut self.input);
        let mut used = 0;
        let result = loop {
            let rest = &input[used..];
            if rest.is_empty() {
                break Ok(None);
            }
            let n = match self.space() {
                Space::Header(buf) => {
                    let n = buf.len().min(rest.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    n
                }
                Space::Body(buf, limit) => {
                    let n = limit.min(rest.len());
                    buf.extend_from_slice(&rest[..n]);
                    n
                }
            };
            used += n;
            match self.advance(n) {
                Ok(None) => {}
                done => break done,
            }
        };
        self.input = input;
        self.input.drain(..used);
        result
    }

    /// Call at end of stream: reports a frame cut short.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(err) = self.failed() {
            return Err(err.clone());
        }
        let seen = match &self.body {
            Some(body) => body.before + body.buf.len(),
            None => self.filled,
        };
        let got = seen + self.input.len();
        if got == 0 {
            return Ok(());
        }
        let expected = if self.body.is_some() || self.filled >= LEN_PREFIX {
            LEN_PREFIX + self.len
        } else {
            // The prefix is not in yet (or still in the pushed input).
            let mut prefix = self.header[..self.filled].to_vec();
            prefix.extend(self.input.iter().take(LEN_PREFIX - self.filled));
            match <[u8; LEN_PREFIX]>::try_from(&prefix[..]) {
                Ok(prefix) => LEN_PREFIX + u32::from_be_bytes(prefix) as usize,
                Err(_) => LEN_PREFIX,
            }
        };
        Err(FrameError::Truncated { expected, got })
    }

    /// The framing error that ended the stream, if one did.
    pub(crate) fn failed(&self) -> Option<&FrameError> {
        self.failed.as_ref()
    }

    /// Where the next bytes of the stream go. A reader fills (part of) it
    /// and reports how much with [`FrameDecoder::advance`]; never more than
    /// the current frame needs, so nothing of the next frame is read ahead.
    pub(crate) fn space(&mut self) -> Space<'_> {
        let end = self.header_end();
        match &mut self.body {
            Some(body) => {
                let limit = body.want - body.buf.len();
                Space::Body(&mut body.buf, limit)
            }
            None => Space::Header(&mut self.header[self.filled..end]),
        }
    }

    /// Records `n` bytes put where [`FrameDecoder::space`] said; returns the
    /// frame they complete, if any.
    pub(crate) fn advance(&mut self, n: usize) -> Result<Option<RawFrame>, FrameError> {
        if let Some(err) = self.failed() {
            return Err(err.clone());
        }
        if let Some(body) = &self.body {
            debug_assert!(body.buf.len() <= body.want, "a reader overfilled the body");
            if body.buf.len() < body.want {
                return Ok(None);
            }
            let body = self.body.take().expect("checked above");
            return Ok(Some(Self::complete(body)));
        }
        let end = self.header_end();
        self.filled += n;
        debug_assert!(self.filled <= end, "a reader overfilled the header");
        if self.filled == LEN_PREFIX {
            // Validated before the allocation it sizes.
            let prefix = self.header[..LEN_PREFIX].try_into().expect("4 bytes");
            match parse_length(prefix) {
                Ok(len) => self.len = len as usize,
                Err(err) => {
                    self.failed = Some(err.clone());
                    return Err(err);
                }
            }
        }
        if self.filled > LEN_PREFIX && self.filled == self.header_end() {
            return Ok(self.start_body());
        }
        Ok(None)
    }

    /// How far `header` is filled before the body starts: the prefix, then
    /// the id and the body's first bytes.
    fn header_end(&self) -> usize {
        if self.filled < LEN_PREFIX {
            LEN_PREFIX
        } else {
            FRAME_HEADER_LEN + self.len.saturating_sub(ID_LEN).min(PEEK)
        }
    }

    /// The header and the body's first bytes are in: allocate the body (or
    /// the payload), now of a validated length.
    fn start_body(&mut self) -> Option<RawFrame> {
        let id = u64::from_be_bytes(
            self.header[LEN_PREFIX..FRAME_HEADER_LEN]
                .try_into()
                .expect("8 bytes"),
        );
        let body_len = self.len - ID_LEN;
        let peek = &self.header[FRAME_HEADER_LEN..self.filled];
        let (head, split) = match payload_split(peek, body_len) {
            Some((head, split)) => (head, Some(split)),
            None => (0, None),
        };
        let want = body_len - head;
        let mut buf = Vec::with_capacity(want);
        buf.extend_from_slice(&peek[head..]);
        self.filled = 0;
        let body = Body {
            id,
            split,
            buf,
            want,
            before: FRAME_HEADER_LEN + head,
        };
        if body.buf.len() == body.want {
            return Some(Self::complete(body));
        }
        self.body = Some(body);
        None
    }

    fn complete(body: Body) -> RawFrame {
        let (body_bytes, payload) = match body.split {
            None => (body.buf, None),
            Some(Split::Data) => (Vec::new(), Some(Payload::Data(body.buf))),
            Some(Split::Write { handle, offset }) => (
                Vec::new(),
                Some(Payload::Write {
                    handle,
                    offset,
                    data: body.buf,
                }),
            ),
        };
        RawFrame {
            id: body.id,
            body: body_bytes,
            payload,
        }
    }
}
