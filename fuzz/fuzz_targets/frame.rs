//! Frame decoding as both peers do it, on arbitrary bytes fed in arbitrary
//! chunks.
//!
//! Input: byte 0's low 3 bits give a count n of chunk sizes, bytes 1..=n
//! the sizes (each 1 to 256, cycled), and the rest is the byte stream. The
//! stream goes through
//!
//! - a one-shot reference split with `parse_length`/`split_frame`,
//! - `FrameDecoder`, fed chunk by chunk,
//! - the agent's frame reader (`yonder_agent::fuzzing::read_frame`),
//! - the client's frame reader, with its fast path for read payloads
//!   (`yonder_remote::fuzzing::read_frame_as_client`),
//!
//! and all four must agree on every frame and on how the stream ends.
//! Every frame whose body decodes must re-encode and decode to the same
//! message, and the client's fast path must only ever take what the full
//! decoder reads as a `Response::Data` with the same payload. No single
//! allocation may exceed `MAX_FRAME_LEN`: a length from the wire is checked
//! before it sizes anything.

#![no_main]

use libfuzzer_sys::fuzz_target;
use yonder_agent::AgentError;
use yonder_fuzz::{block_on, chunks, take_largest_allocation, Chunked, Tracking};
use yonder_proto::codec::{data_response_header, encode_data_response_header, DATA_HEADER_MAX};
use yonder_proto::{
    decode_body, encode_frame, parse_length, split_frame, FrameDecoder, FrameError, Message, Response,
    LEN_PREFIX, MAX_FRAME_LEN,
};
use yonder_remote::fuzzing::{read_frame_as_client, Taken};

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
    agent(stream, sizes, &frames, &end);
    client(stream, sizes, &frames, &end);
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

/// A decoded message re-encodes, and decodes again to the same message.
fn round_trip(id: u64, body: &[u8]) {
    // What every reader's preview of a frame sees.
    let fast = data_response_header(&body[..body.len().min(DATA_HEADER_MAX)], body.len());
    let message = match decode_body::<Message>(body) {
        Ok(message) => message,
        Err(err) => {
            assert!(
                fast.is_none(),
                "the fast path takes a body that does not decode: {err}"
            );
            let _ = err.to_string();
            return;
        }
    };
    if let Some(header) = fast {
        assert!(
            matches!(&message, Message::Response(Response::Data(d)) if d[..] == body[header..]),
            "the fast path takes {:?} bytes of payload from {message:?}",
            body.len() - header
        );
    }
    // Re-encoding is never longer than the body: postcard's own encoding is
    // the shortest, and a decoded body may have had trailing bytes.
    let encoded = encode_frame(id, &message).expect("a decoded message fits in a frame");
    assert!(encoded.len() <= LEN_PREFIX + 8 + body.len());
    let (again, end) = reference(&encoded);
    assert_eq!(end, Ok(()));
    assert_eq!(again.len(), 1);
    let (again_id, again_body) = again[0];
    assert_eq!(again_id, id);
    assert_eq!(decode_body::<Message>(again_body).as_ref(), Ok(&message));
    let fast = data_response_header(
        &again_body[..again_body.len().min(DATA_HEADER_MAX)],
        again_body.len(),
    );
    match &message {
        Message::Response(Response::Data(data)) => {
            let header = fast.expect("the fast path takes every encoded Data response");
            assert_eq!(&again_body[header..], &data[..]);
            let mut split = encode_data_response_header(id, data.len()).expect("fits");
            split.extend_from_slice(data);
            assert_eq!(split, encoded, "header ++ payload is the encoded frame");
        }
        _ => assert_eq!(fast, None, "the fast path takes {message:?}"),
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
        assert_eq!((frame.id, &frame.body[..]), (id, body));
    }
}

fn agent(stream: &[u8], sizes: &[u8], frames: &[(u64, &[u8])], end: &End) {
    let mut reader = Chunked::new(stream, sizes);
    let mut expected = frames.iter();
    let got_end = loop {
        match block_on(yonder_agent::fuzzing::read_frame(&mut reader)) {
            Ok(Some((id, decoded))) => {
                let &(want_id, body) = expected.next().expect("the agent reads a frame too many");
                assert_eq!(id, want_id);
                assert_eq!(decoded, decode_body::<Message>(body));
            }
            Ok(None) => break Ok(()),
            Err(AgentError::Frame { source, .. }) => break Err(source),
            Err(err) => panic!("the agent's reader fails with {err}"),
        }
    };
    assert!(expected.next().is_none(), "the agent reads fewer frames");
    assert_eq!(&got_end, end);
}

fn client(stream: &[u8], sizes: &[u8], frames: &[(u64, &[u8])], end: &End) {
    let mut reader = Chunked::new(stream, sizes);
    let mut expected = frames.iter();
    loop {
        match block_on(read_frame_as_client(&mut reader)) {
            Ok(Some((id, taken))) => {
                let &(want_id, body) = expected.next().expect("the client reads a frame too many");
                assert_eq!(id, want_id);
                let full = decode_body::<Message>(body);
                if let Taken::Data(data) = &taken {
                    let expected = Message::Response(Response::Data(data.clone()));
                    assert_eq!(
                        full.as_ref(),
                        Ok(&expected),
                        "the fast path disagrees with decoding"
                    );
                }
                assert_eq!(taken.message(), full);
            }
            Ok(None) => {
                // The client takes a stream that ends inside a length
                // prefix for a closed connection, like one between frames.
                let clean = matches!(
                    end,
                    Ok(())
                        | Err(FrameError::Truncated {
                            expected: LEN_PREFIX,
                            ..
                        })
                );
                assert!(
                    clean,
                    "the client ends cleanly where the stream ends with {end:?}"
                );
                break;
            }
            Err(err) => {
                let kind = match end {
                    Err(FrameError::TooLarge { .. } | FrameError::TooShort { .. }) => {
                        std::io::ErrorKind::InvalidData
                    }
                    Err(FrameError::Truncated { .. }) => std::io::ErrorKind::UnexpectedEof,
                    Ok(()) => panic!("the client fails with {err} on a clean stream"),
                };
                assert_eq!(err.kind(), kind, "{err}");
                break;
            }
        }
    }
    assert!(expected.next().is_none(), "the client reads fewer frames");
}
