//! Codec properties: every message round-trips; broken frames fail with the
//! specified errors and never allocate from an untrusted length.

use proptest::prelude::*;
use yonder_proto::codec::{FRAME_HEADER_LEN, LEN_PREFIX, MAX_FRAME_LEN};
use yonder_proto::*;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..64)
}

fn wire_path() -> impl Strategy<Value = WirePath> {
    bytes().prop_map(WirePath::from)
}

fn timespec() -> impl Strategy<Value = Timespec> {
    (any::<i64>(), 0u32..1_000_000_000).prop_map(|(sec, nsec)| Timespec { sec, nsec })
}

prop_compose! {
    fn attr()(ino in any::<u64>(), mode in any::<u32>(), nlink in any::<u64>(), uid in any::<u32>(),
               gid in any::<u32>(), rdev_major in any::<u32>(), rdev_minor in any::<u32>(),
               size in any::<u64>(), blocks in any::<u64>(), blksize in any::<u32>(),
               atime in timespec(), mtime in timespec(), ctime in timespec(), dev in any::<u64>(),
               btime in prop::option::of(timespec())) -> Attr {
        Attr { ino, mode, nlink, uid, gid, rdev_major, rdev_minor, size, blocks, blksize, atime, mtime, ctime,
               dev, btime }
    }
}

fn owner() -> impl Strategy<Value = Option<Owner>> {
    prop::option::of((any::<u32>(), any::<u32>()).prop_map(|(uid, gid)| Owner { uid, gid }))
}

fn set_time() -> impl Strategy<Value = SetTime> {
    prop_oneof![
        Just(SetTime::Omit),
        Just(SetTime::Now),
        timespec().prop_map(SetTime::Set)
    ]
}

fn any_handle() -> impl Strategy<Value = Handle> {
    any::<u64>().prop_map(Handle)
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        wire_path().prop_map(Target::Path),
        any_handle().prop_map(Target::Handle)
    ]
}

fn set_attr() -> impl Strategy<Value = SetAttr> {
    (
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u64>()),
        set_time(),
        set_time(),
    )
        .prop_map(|(mode, uid, gid, size, atime, mtime)| SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        })
}

fn rename_flags() -> impl Strategy<Value = RenameFlags> {
    (any::<bool>(), any::<bool>()).prop_map(|(noreplace, exchange)| RenameFlags { noreplace, exchange })
}

fn xattr_mode() -> impl Strategy<Value = XattrMode> {
    prop_oneof![
        Just(XattrMode::Either),
        Just(XattrMode::Create),
        Just(XattrMode::Replace)
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        wire_path().prop_map(|path| Request::Lstat { path }),
        wire_path().prop_map(|path| Request::Stat { path }),
        any_handle().prop_map(|handle| Request::Fstat { handle }),
        (wire_path(), prop::option::of(any::<u64>()), any::<u32>()).prop_map(
            |(path, cursor, max_entries)| Request::ReadDir {
                path,
                cursor,
                max_entries
            }
        ),
        (wire_path(), any::<u32>(), any::<u32>(), owner()).prop_map(|(path, flags, mode, owner)| {
            Request::Open {
                path,
                flags,
                mode,
                owner,
            }
        }),
        (wire_path(), any::<u32>(), any::<u32>()).prop_map(|(path, flags, prefetch)| Request::OpenRead {
            path,
            flags,
            prefetch
        }),
        (any_handle(), any::<u64>(), any::<u32>()).prop_map(|(handle, offset, len)| Request::Read {
            handle,
            offset,
            len
        }),
        (any_handle(), any::<u64>(), bytes()).prop_map(|(handle, offset, data)| Request::Write {
            handle,
            offset,
            data
        }),
        (any_handle(), any::<bool>()).prop_map(|(handle, datasync)| Request::Fsync { handle, datasync }),
        any_handle().prop_map(|handle| Request::Close { handle }),
        (target(), set_attr()).prop_map(|(target, attr)| Request::Setattr { target, attr }),
        (wire_path(), any::<u32>(), owner()).prop_map(|(path, mode, owner)| Request::Mkdir {
            path,
            mode,
            owner
        }),
        (wire_path(), any::<u32>(), any::<u32>(), any::<u32>(), owner()).prop_map(
            |(path, mode, rdev_major, rdev_minor, owner)| Request::Mknod {
                path,
                mode,
                rdev_major,
                rdev_minor,
                owner
            }
        ),
        wire_path().prop_map(|path| Request::Unlink { path }),
        wire_path().prop_map(|path| Request::Rmdir { path }),
        (wire_path(), wire_path(), rename_flags()).prop_map(|(from, to, flags)| Request::Rename {
            from,
            to,
            flags
        }),
        (wire_path(), wire_path(), owner()).prop_map(|(target, path, owner)| Request::Symlink {
            target,
            path,
            owner
        }),
        wire_path().prop_map(|path| Request::Readlink { path }),
        (wire_path(), wire_path()).prop_map(|(from, to)| Request::Link { from, to }),
        wire_path().prop_map(|path| Request::Statfs { path }),
        (wire_path(), wire_path()).prop_map(|(path, name)| Request::GetXattr { path, name }),
        (wire_path(), wire_path(), wire_path(), xattr_mode()).prop_map(|(path, name, value, mode)| {
            Request::SetXattr {
                path,
                name,
                value,
                mode,
            }
        }),
        wire_path().prop_map(|path| Request::ListXattr { path }),
        (wire_path(), wire_path()).prop_map(|(path, name)| Request::RemoveXattr { path, name }),
        (wire_path(), any::<u32>()).prop_map(|(path, mask)| Request::Access { path, mask }),
        (any_handle(), any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(handle, offset, len, mode)| {
            Request::Fallocate {
                handle,
                offset,
                len,
                mode,
            }
        }),
        (any_handle(), any::<u64>(), any::<bool>()).prop_map(|(handle, offset, data)| Request::Lseek {
            handle,
            offset,
            whence: if data { SeekWhence::Data } else { SeekWhence::Hole },
        }),
    ]
}

fn dir_page() -> impl Strategy<Value = DirPage> {
    (
        prop::collection::vec(
            (
                wire_path(),
                prop::option::of(attr()),
                prop::option::of(prop::collection::vec(wire_path(), 0..3)),
            )
                .prop_map(|(name, attr, xattrs)| DirEntry { name, attr, xattrs }),
            0..8,
        ),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(entries, next)| DirPage { entries, next })
}

fn statfs() -> impl Strategy<Value = StatFs> {
    prop::array::uniform9(any::<u64>()).prop_map(|v| StatFs {
        block_size: v[0],
        fragment_size: v[1],
        blocks: v[2],
        blocks_free: v[3],
        blocks_available: v[4],
        files: v[5],
        files_free: v[6],
        files_available: v[7],
        name_max: v[8],
    })
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        Just(Response::Done),
        attr().prop_map(Response::Attr),
        (any_handle(), attr()).prop_map(|(handle, attr)| Response::Opened { handle, attr }),
        (any_handle(), attr(), bytes()).prop_map(|(handle, attr, data)| Response::OpenedRead {
            handle,
            attr,
            data
        }),
        bytes().prop_map(Response::Data),
        any::<u32>().prop_map(Response::Written),
        dir_page().prop_map(Response::DirPage),
        bytes().prop_map(Response::Bytes),
        prop::collection::vec(wire_path(), 0..8).prop_map(Response::Names),
        statfs().prop_map(Response::StatFs),
        any::<u64>().prop_map(Response::Offset),
        (any::<u16>(), ".{0,40}").prop_map(|(e, message)| Response::Error(WireError {
            errno: Errno(e),
            message
        })),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u32>(), prop::collection::vec(".{0,12}", 0..4), ".{0,20}").prop_map(
            |(version, capabilities, software)| Message::Hello(Hello {
                version,
                capabilities,
                software
            })
        ),
        request().prop_map(Message::Request),
        response().prop_map(Message::Response),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_round_trips(id in any::<u64>(), msg in message()) {
        let frame = encode_frame(id, &msg).unwrap();
        let len = parse_length(frame[..LEN_PREFIX].try_into().unwrap()).unwrap() as usize;
        prop_assert_eq!(len, frame.len() - LEN_PREFIX);
        let (got_id, body) = split_frame(&frame[LEN_PREFIX..]).unwrap();
        prop_assert_eq!(got_id, id);
        prop_assert_eq!(decode_body::<Message>(body).unwrap(), msg);
    }

    #[test]
    fn a_message_followed_by_anything_is_refused(msg in message(),
                                                 extra in prop::collection::vec(any::<u8>(), 1..16)) {
        let frame = encode_frame(1, &msg).unwrap();
        let mut body = frame[FRAME_HEADER_LEN..].to_vec();
        let complete = body.len();
        body.extend_from_slice(&extra);
        let err = decode_body::<Message>(&body).unwrap_err();
        prop_assert_eq!(
            err.reason,
            format!("{} trailing bytes after a complete message of {complete} bytes", extra.len())
        );
        prop_assert_eq!(err.frame_len, body.len() + 8);
    }

    #[test]
    fn frames_split_at_any_chunk_boundary(msgs in prop::collection::vec(message(), 1..6), chunk in 1usize..64) {
        let mut stream = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            encode_frame_into(i as u64, m, &mut stream).unwrap();
        }
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            decoder.push(piece);
            while let Some(frame) = decoder.next_frame().unwrap() {
                let message = frame.decode().unwrap();
                // Reads' and writes' data come split off, undecoded.
                let split = matches!(
                    message,
                    Message::Response(Response::Data(_)) | Message::Request(Request::Write { .. })
                );
                prop_assert_eq!(frame.payload.is_some(), split);
                prop_assert_eq!(frame.clone().into_message().unwrap(), message.clone());
                got.push((frame.id, message));
            }
        }
        decoder.finish().unwrap();
        let want: Vec<_> = msgs.into_iter().enumerate().map(|(i, m)| (i as u64, m)).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn truncated_frames_are_reported(msg in message(), cut in 1usize..1000) {
        let frame = encode_frame(9, &msg).unwrap();
        let keep = frame.len().saturating_sub(cut).max(1).min(frame.len() - 1);
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame[..keep]);
        prop_assert!(decoder.next_frame().unwrap().is_none());
        let err = decoder.finish().unwrap_err();
        let truncated = matches!(err, FrameError::Truncated { got, .. } if got == keep);
        prop_assert!(truncated, "{:?}", err);
    }

    #[test]
    fn data_response_payload_is_found_without_decoding(data in prop::collection::vec(any::<u8>(), 0..20_000), other in message()) {
        let frame = encode_frame(5, &Message::Response(Response::Data(data.clone()))).unwrap();
        let body = &frame[12..];
        let header = yonder_proto::codec::data_response_header(body, body.len()).unwrap();
        prop_assert_eq!(&body[header..], &data[..]);
        let mut split = yonder_proto::codec::encode_data_response_header(5, data.len()).unwrap();
        split.extend_from_slice(&data);
        prop_assert_eq!(&split, &frame, "header ++ payload is the same frame");
        let frame = encode_frame(5, &other).unwrap();
        let body = &frame[12..];
        if let Some(header) = yonder_proto::codec::data_response_header(body, body.len()) {
            // Only a Data response may match, and then at the same place.
            let decoded = decode_body::<Message>(body).unwrap();
            let matches = matches!(&decoded, Message::Response(Response::Data(d)) if d[..] == body[header..]);
            prop_assert!(matches, "{:?}", decoded);
        }
    }

    #[test]
    fn write_request_payload_is_found_without_decoding(handle in any_handle(), offset in any::<u64>(),
                                                       data in prop::collection::vec(any::<u8>(), 0..20_000),
                                                       other in message()) {
        let write = Message::Request(Request::Write { handle, offset, data: data.clone() });
        let frame = encode_frame(5, &write).unwrap();
        let body = &frame[12..];
        let header = yonder_proto::codec::write_request_header(body, body.len()).unwrap();
        prop_assert_eq!((header.handle, header.offset), (handle, offset));
        prop_assert_eq!(&body[header.len..], &data[..]);
        let mut split = yonder_proto::codec::encode_write_request_header(5, handle, offset, data.len()).unwrap();
        split.extend_from_slice(&data);
        prop_assert_eq!(&split, &frame, "header ++ payload is the same frame");
        let frame = encode_frame(5, &other).unwrap();
        let body = &frame[12..];
        if let Some(header) = yonder_proto::codec::write_request_header(body, body.len()) {
            // Only a Write request may match, and then with its own fields.
            let decoded = decode_body::<Message>(body).unwrap();
            let matches = matches!(&decoded, Message::Request(Request::Write { handle, offset, data })
                if (*handle, *offset) == (header.handle, header.offset) && data[..] == body[header.len..]);
            prop_assert!(matches, "{:?}", decoded);
        }
    }

    #[test]
    fn garbage_streams_never_panic(stream in prop::collection::vec(any::<u8>(), 0..512), chunk in 1usize..40,
                                   tags in any::<bool>()) {
        // Often a Data response's or a Write request's tags, so the
        // payload paths see hostile lengths and varints too.
        let mut stream = stream;
        if tags && stream.len() >= 14 {
            stream[12] = if stream[13] % 2 == 0 { 1 } else { 2 };
            stream[13] = if stream[12] == 1 { 6 } else { 3 };
        }
        let mut decoder = FrameDecoder::new();
        for piece in stream.chunks(chunk) {
            decoder.push(piece);
            while let Ok(Some(frame)) = decoder.next_frame() {
                let _ = frame.into_message();
            }
        }
        let _ = decoder.finish();
    }

    #[test]
    fn garbage_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(err) = decode_body::<Message>(&body) {
            prop_assert_eq!(err.type_name, "Message");
            prop_assert_eq!(err.frame_len, body.len() + 8);
        }
    }
}

#[test]
fn a_4_gib_length_prefix_is_an_error_not_an_allocation() {
    let err = parse_length([0xff, 0xff, 0xff, 0xff]).unwrap_err();
    assert_eq!(
        err,
        FrameError::TooLarge {
            len: u32::MAX,
            max: MAX_FRAME_LEN
        }
    );
    assert_eq!(
        err.to_string(),
        format!("frame length 4294967295 exceeds the maximum of {MAX_FRAME_LEN} bytes")
    );
    let mut decoder = FrameDecoder::new();
    decoder.push(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    assert_eq!(decoder.next_frame().unwrap_err(), err);
}

#[test]
fn lengths_just_past_the_maximum_and_below_the_id_fail() {
    assert!(parse_length((MAX_FRAME_LEN).to_be_bytes()).is_ok());
    assert_eq!(
        parse_length((MAX_FRAME_LEN + 1).to_be_bytes()).unwrap_err(),
        FrameError::TooLarge {
            len: MAX_FRAME_LEN + 1,
            max: MAX_FRAME_LEN
        }
    );
    assert_eq!(
        parse_length(7u32.to_be_bytes()).unwrap_err(),
        FrameError::TooShort { len: 7 }
    );
    assert_eq!(
        parse_length(0u32.to_be_bytes()).unwrap_err(),
        FrameError::TooShort { len: 0 }
    );
}

#[test]
fn oversized_messages_are_refused_at_encoding() {
    let msg = Message::Request(Request::Write {
        handle: Handle(1),
        offset: 0,
        data: vec![0; MAX_FRAME_LEN as usize],
    });
    assert!(matches!(encode_frame(1, &msg), Err(FrameError::TooLarge { .. })));
    let mut out = b"keep".to_vec();
    assert!(encode_frame_into(1, &msg, &mut out).is_err());
    assert_eq!(out, b"keep", "a refused frame leaves the buffer as it was");
}

#[test]
fn trailing_bytes_after_a_message_are_a_decode_error() {
    let frame = encode_frame(7, &Message::Request(Request::Close { handle: Handle(3) })).unwrap();
    let mut body = frame[FRAME_HEADER_LEN..].to_vec();
    assert_eq!(body, [1, 8, 3], "Request, Close, handle 3");
    body.extend_from_slice(&[0xde, 0xad]);
    let err = decode_body::<Message>(&body).unwrap_err();
    assert_eq!(err.type_name, "Message");
    assert_eq!(err.frame_len, 13);
    assert_eq!(err.preview, "01 08 03 de ad");
    assert_eq!(
        err.to_string(),
        "cannot decode Message from a 13-byte frame: 2 trailing bytes after a complete message \
         of 3 bytes (first bytes: 01 08 03 de ad)"
    );
    // The frame decoder hands such a body on undecoded; turning it into a
    // message refuses it the same way.
    let mut framed = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&7u64.to_be_bytes());
    framed.extend_from_slice(&body);
    let mut decoder = FrameDecoder::new();
    decoder.push(&framed);
    let raw = decoder.next_frame().unwrap().expect("a whole frame");
    assert_eq!(raw.id, 7);
    assert_eq!(raw.into_message().unwrap_err(), err);
}

#[test]
fn malformed_body_error_names_type_length_and_preview() {
    // Variant index 200 of Message does not exist.
    let body = [200u8, 1, 2, 3, 0xab];
    let err = decode_body::<Message>(&body).unwrap_err();
    assert_eq!(err.type_name, "Message");
    assert_eq!(err.frame_len, 13);
    assert_eq!(err.preview, "c8 01 02 03 ab");
    let text = err.to_string();
    assert!(
        text.contains("cannot decode Message from a 13-byte frame"),
        "{text}"
    );
    assert!(text.contains("c8 01 02 03 ab"), "{text}");
    // Truncated body of a valid message.
    let frame = encode_frame(
        1,
        &Message::Request(Request::Lstat {
            path: b"abcdef".to_vec().into(),
        }),
    )
    .unwrap();
    let body = &frame[12..frame.len() - 2];
    assert!(decode_body::<Message>(body).is_err());
}

#[test]
fn hex_preview_is_bounded() {
    assert_eq!(hex_preview(&[], 4), "<empty>");
    assert_eq!(hex_preview(&[1, 2, 3, 4, 5], 4), "01 02 03 04 ...");
}

#[test]
fn hostile_payload_lengths_are_not_split_and_do_not_overflow() {
    use yonder_proto::codec::{data_response_header, write_request_header};
    // A ten-byte varint of 2^64 - 1: header + length overflows a u64.
    let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    let mut data = vec![2, 3];
    data.extend_from_slice(&huge);
    assert_eq!(data_response_header(&data, 100), None);
    let mut write = vec![1, 6, 0, 0];
    write.extend_from_slice(&huge);
    assert_eq!(write_request_header(&write, 100), None);
    // A tenth byte above 1 is malformed, as postcard says.
    let mut bad = vec![2, 3];
    bad.extend_from_slice(&[0x80; 9]);
    bad.push(0x02);
    assert_eq!(data_response_header(&bad, 100), None);
    // A length that does not fill the body exactly is left to the decoder.
    assert_eq!(data_response_header(&[2, 3, 5, 0, 0, 0, 0, 0], 8), Some(3));
    assert_eq!(data_response_header(&[2, 3, 5, 0, 0, 0, 0, 0], 9), None);
}

#[test]
fn a_frame_arriving_byte_by_byte_allocates_its_body_once_its_length_is_checked() {
    let data = vec![9u8; 5000];
    let frame = encode_frame(3, &Message::Response(Response::Data(data.clone()))).unwrap();
    let mut decoder = FrameDecoder::new();
    for (i, byte) in frame.iter().enumerate() {
        decoder.push(&[*byte]);
        let got = decoder.next_frame().unwrap();
        if i + 1 < frame.len() {
            assert!(got.is_none());
            assert!(decoder.finish().is_err(), "mid-frame end of stream at {i}");
        } else {
            let got = got.unwrap();
            assert_eq!(got.id, 3);
            assert_eq!(got.payload, Some(Payload::Data(data.clone())));
        }
    }
    decoder.finish().unwrap();
}
