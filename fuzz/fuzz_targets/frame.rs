//! Frame decoding as both peers do it, on arbitrary bytes fed in arbitrary
//! chunks.
//!
//! Input: byte 0's low 3 bits give a count n of chunk sizes, bytes 1..=n
//! the sizes (each 1 to 256, cycled), and the rest is the byte stream. The
//! stream goes through
//!
//! - a one-shot reference split with `parse_length`/`split_frame`,
//! - `FrameDecoder`, pushed chunk by chunk,
//! - `stream::FrameReader`, the reader of both the client and the agent,
//!   over a stream that yields one chunk per read, bare and behind a
//!   `BufReader` as the peers use it,
//!
//! and all must agree on every frame and on how the stream ends. A payload
//! the readers split off undecoded (`Response::Data`, `Request::Write`)
//! must be what the full decoder reads from the same body. Every frame
//! whose body decodes must re-encode and decode to the same message. No
//! single allocation may exceed `MAX_FRAME_LEN`: a length from the wire is
//! checked before it sizes anything.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tokio::io::BufReader;
use yonder_fuzz::{block_on, chunks, take_largest_allocation, Chunked, Tracking};
use yonder_proto::codec::{
    data_response_header, encode_data_response_header, encode_write_request_header, write_request_header,
    DATA_HEADER_MAX, WRITE_HEADER_MAX,
};
use yonder_proto::stream::{FrameReader, ReadError};
use yonder_proto::{
    decode_body, encode_frame, parse_length, split_frame, FrameDecoder, FrameError, Message, RawFrame,
    Request, Response, LEN_PREFIX, MAX_FRAME_LEN,
};

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(first & 7).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    take_largest_allocation();
    check(stream, sizes);
    let largest = take_largest_allocation();
    assert!(
        largest <= MAX_FRAME_LEN as usize,
        "an allocation of {largest} bytes, above MAX_FRAME_LEN"
    );
});

fn check(stream: &[u8], sizes: &[u8]) {
    let (frames, end) = reference(stream);
    for &(id, body) in &frames {
        round_trip(id, body);
    }
    frame_decoder(stream, sizes, &frames, &end);
    let bare = read_all(FrameReader::new(Chunked::new(stream, sizes)));
    agrees(bare, &frames, &end);
    let buffered = FrameReader::new(BufReader::with_capacity(64 * 1024, Chunked::new(stream, sizes)));
    agrees(read_all(buffered), &frames, &end);
}

/// How a stream ends: between frames, or with a framing error.
type End = Result<(), FrameError>;

/// The stream split in one go, the way the codec's documentation describes.
fn reference(stream: &[u8]) -> (Vec<(u64, &[u8])>, End) {
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        if rest.is_empty() {
            return (frames, Ok(()));
        }
        let Some((prefix, after)) = rest.split_first_chunk::<LEN_PREFIX>() else {
            let got = rest.len();
            return (
                frames,
                Err(FrameError::Truncated {
                    expected: LEN_PREFIX,
                    got,
                }),
            );
        };
        let raw = u32::from_be_bytes(*prefix);
        let len = match parse_length(*prefix) {
            Ok(len) => {
                assert_eq!(len, raw);
                assert!((8..=MAX_FRAME_LEN).contains(&len), "parse_length accepted {len}");
                len as usize
            }
            Err(err) => {
                assert!(
                    raw > MAX_FRAME_LEN || raw < 8,
                    "parse_length refused {raw}: {err}"
                );
                return (frames, Err(err));
            }
        };
        if after.len() < len {
            let (expected, got) = (LEN_PREFIX + len, rest.len());
            return (frames, Err(FrameError::Truncated { expected, got }));
        }
        let (frame, after) = after.split_at(len);
        frames.push(split_frame(frame).expect("a checked length holds the id"));
        rest = after;
    }
}

/// A decoded message re-encodes, and decodes again to the same message;
/// the payload fast paths take exactly the bodies of their messages.
fn round_trip(id: u64, body: &[u8]) {
    let decoded = decode_body::<Message>(body);
    let data = data_response_header(&body[..body.len().min(DATA_HEADER_MAX)], body.len());
    let write = write_request_header(&body[..body.len().min(WRITE_HEADER_MAX)], body.len());
    if let Some(header) = data {
        let want = Message::Response(Response::Data(body[header..].to_vec()));
        assert_eq!(
            decoded.as_ref(),
            Ok(&want),
            "the Data fast path disagrees with decoding"
        );
    }
    if let Some(w) = write {
        let want = Message::Request(Request::Write {
            handle: w.handle,
            offset: w.offset,
            data: body[w.len..].to_vec(),
        });
        assert_eq!(
            decoded.as_ref(),
            Ok(&want),
            "the Write fast path disagrees with decoding"
        );
    }
    let message = match decoded {
        Ok(message) => message,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    // Re-encoding is never longer than the body: postcard's own encoding is
    // the shortest, and a decoded body may have had longer varints (a
    // decoded body never has bytes after its message).
    let encoded = encode_frame(id, &message).expect("a decoded message fits in a frame");
    assert!(encoded.len() <= LEN_PREFIX + 8 + body.len());
    let (again, end) = reference(&encoded);
    assert_eq!(end, Ok(()));
    assert_eq!(again.len(), 1);
    let (again_id, again_body) = again[0];
    assert_eq!(again_id, id);
    assert_eq!(decode_body::<Message>(again_body).as_ref(), Ok(&message));
    let data = data_response_header(
        &again_body[..again_body.len().min(DATA_HEADER_MAX)],
        again_body.len(),
    );
    let write = write_request_header(
        &again_body[..again_body.len().min(WRITE_HEADER_MAX)],
        again_body.len(),
    );
    match &message {
        Message::Response(Response::Data(payload)) => {
            let header = data.expect("the fast path takes every encoded Data response");
            assert_eq!(&again_body[header..], &payload[..]);
            let mut split = encode_data_response_header(id, payload.len()).expect("fits");
            split.extend_from_slice(payload);
            assert_eq!(split, encoded, "header ++ payload is the encoded frame");
        }
        Message::Request(Request::Write {
            handle,
            offset,
            data: payload,
        }) => {
            let w = write.expect("the fast path takes every encoded Write request");
            assert_eq!(
                (w.handle, w.offset, &again_body[w.len..]),
                (*handle, *offset, &payload[..])
            );
            let mut split = encode_write_request_header(id, *handle, *offset, payload.len()).expect("fits");
            split.extend_from_slice(payload);
            assert_eq!(split, encoded, "header ++ payload is the encoded frame");
        }
        _ => assert_eq!((data, write), (None, None), "a fast path takes {message:?}"),
    }
}

/// A frame as a reader returned it is the reference's frame: the same id,
/// and the same body, or a payload split off that the decoder reads from
/// that body.
fn same_frame(frame: &RawFrame, id: u64, body: &[u8]) {
    assert_eq!(frame.id, id);
    match &frame.payload {
        Some(payload) => {
            assert!(frame.body.is_empty());
            let want = payload.clone().into_message();
            assert_eq!(
                decode_body::<Message>(body),
                Ok(want),
                "a split payload the decoder reads otherwise"
            );
        }
        None => assert_eq!(&frame.body[..], body),
    }
}

fn frame_decoder(stream: &[u8], sizes: &[u8], frames: &[(u64, &[u8])], end: &End) {
    let mut decoder = FrameDecoder::new();
    let mut got = Vec::new();
    let mut failed = None;
    'feed: for chunk in chunks(stream, sizes) {
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => got.push(frame),
                Ok(None) => break,
                Err(err) => {
                    failed = Some(err);
                    break 'feed;
                }
            }
        }
    }
    let got_end = match failed {
        Some(err) => Err(err),
        None => decoder.finish(),
    };
    assert_eq!(&got_end, end);
    assert_eq!(got.len(), frames.len());
    for (frame, &(id, body)) in got.iter().zip(frames) {
        same_frame(frame, id, body);
    }
}

/// Every frame a reader returns, and how its stream ended.
fn read_all<R: tokio::io::AsyncRead + Unpin>(mut reader: FrameReader<R>) -> (Vec<RawFrame>, End) {
    let mut frames = Vec::new();
    loop {
        match block_on(reader.next_frame()) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, Ok(())),
            Err(ReadError::Frame(err)) => return (frames, Err(err)),
            Err(ReadError::Io(err)) => panic!("a stream that never fails fails: {err}"),
        }
    }
}

fn agrees((got, got_end): (Vec<RawFrame>, End), frames: &[(u64, &[u8])], end: &End) {
    assert_eq!(&got_end, end);
    assert_eq!(got.len(), frames.len());
    for (frame, &(id, body)) in got.iter().zip(frames) {
        same_frame(frame, id, body);
    }
}
