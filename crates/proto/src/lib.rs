//! The yonder wire protocol.
//!
//! This crate defines what travels between the local side (client) and the
//! remote `yonder agent`: the handshake, request and response messages, the
//! portable errno numbering, and the length-prefixed framing codec. It does no
//! I/O; transports feed it bytes and take bytes from it. The `tokio` feature
//! adds [`stream`]: the frame reader and writer the client and the agent
//! share, a thin driver of [`FrameDecoder`] over tokio's byte streams.
//!
//! A frame on the wire is
//!
//! ```text
//! +----------------+----------------+---------------------------+
//! | len: u32 (BE)  | id: u64 (BE)   | body: postcard(Message)   |
//! +----------------+----------------+---------------------------+
//!                  |<------------------ len bytes ------------->|
//! ```
//!
//! `id` sits outside the postcard body so that a peer can always answer a
//! request whose body it cannot decode with an error carrying the right id.

pub mod codec;
pub mod errno;
pub mod message;
#[cfg(feature = "tokio")]
pub mod stream;

pub use codec::{
    decode_body, encode_frame, encode_frame_into, hex_preview, parse_length, split_frame, DecodeError,
    FrameDecoder, FrameError, Payload, RawFrame, FRAME_HEADER_LEN, LEN_PREFIX, MAX_FRAME_LEN,
};
pub use errno::Errno;
pub use message::*;

/// Version of the protocol spoken by this build. Bumped on any incompatible
/// change to the message layout; both sides refuse to talk across versions.
pub const PROTOCOL_VERSION: u32 = 4;

/// Largest payload a single `Read` or `Write` may carry. Larger transfers are
/// split by the client and pipelined.
pub const MAX_IO_SIZE: u32 = 4 * 1024 * 1024;

/// Capabilities this build understands. Sent in the handshake so that later
/// features (change notification, batching) can be negotiated without a
/// version bump.
pub const CAPABILITIES: &[&str] = &[
    "readdir-plus",
    "rename-flags",
    "xattr",
    "owner-on-create",
    "fence",
    "once",
    "watch",
    "tree",
    "direct",
];
