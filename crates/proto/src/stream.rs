//! Frames over a tokio byte stream (feature `tokio`): the frame reader and
//! writer of both the client and the agent.
//!
//! Why this lives here, behind a feature: the framing rules (the length
//! checked before allocating, the id outside the body, payloads split off
//! undecoded) are [`FrameDecoder`]'s, which does no I/O and is what the
//! property tests and fuzz targets exercise. [`FrameReader`] only moves
//! bytes from an `AsyncRead` into the buffers the decoder names, so the
//! client and the agent run exactly the decoder that is tested, and no
//! second copy of the rules exists to drift. The feature keeps the crate
//! itself free of I/O for builds that want none (the fuzz targets).

use crate::codec::{FrameDecoder, FrameError, RawFrame, Space};
use std::io::IoSlice;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why no frame could be read. Either way the stream's frame boundaries are
/// lost, so the connection must end.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reads frames from `R` with a [`FrameDecoder`].
///
/// Reads go straight into the decoder's buffers: a frame's first bytes into
/// its small header array, the rest of a body (or a split-off payload) into
/// a vector allocated once for it after the length was checked, filled
/// without being zeroed first. Nothing past the current frame is read, so
/// wrap `R` in a `BufReader` to read small frames in bulk; a large body
/// still bypasses that buffer.
///
/// [`FrameReader::next_frame`] is cancel-safe: bytes read are recorded as
/// they arrive, so a dropped call loses nothing.
pub struct FrameReader<R> {
    reader: R,
    decoder: FrameDecoder,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(reader: R) -> Self {
        FrameReader {
            reader,
            decoder: FrameDecoder::new(),
        }
    }

    /// The next frame; `Ok(None)` at end of stream between frames, and
    /// [`FrameError::Truncated`] at end of stream inside one.
    pub async fn next_frame(&mut self) -> Result<Option<RawFrame>, ReadError> {
        if let Some(err) = self.decoder.failed() {
            return Err(err.clone().into());
        }
        loop {
            let read = match self.decoder.space() {
                Space::Header(buf) => self.reader.read(buf).await,
                // `take` keeps the read inside this frame; `read_buf` fills
                // the reserved capacity without zeroing it (a megabyte of
                // memset per read is measurable at these rates).
                Space::Body(buf, limit) => (&mut self.reader).take(limit as u64).read_buf(buf).await,
            };
            match read {
                Ok(0) => {
                    self.decoder.finish()?;
                    return Ok(None);
                }
                Ok(n) => {
                    if let Some(frame) = self.decoder.advance(n)? {
                        return Ok(Some(frame));
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
}

/// Writes a frame's `header` and then its `payload` without joining them
/// into one buffer first: one vectored write where the writer supports it
/// (a `BufWriter` passes a large payload to its inner writer directly).
pub async fn write_parts<W: AsyncWrite + Unpin>(
    writer: &mut W,
    header: &[u8],
    payload: &[u8],
) -> std::io::Result<()> {
    let total = header.len() + payload.len();
    let mut done = 0;
    while done < total {
        let n = if done < header.len() {
            let parts = [IoSlice::new(&header[done..]), IoSlice::new(payload)];
            writer.write_vectored(&parts).await?
        } else {
            writer.write(&payload[done - header.len()..]).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        done += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode_data_response_header, encode_frame, encode_write_request_header, Payload};
    use crate::{Handle, Message, Request, Response, MAX_FRAME_LEN};
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;

    /// Serves `data` at most `chunk` bytes per read, with a `Pending`
    /// before every other read, as a slow pipe would.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
        stall: bool,
    }

    impl Trickle {
        fn new(data: Vec<u8>, chunk: usize) -> Self {
            Trickle {
                data,
                pos: 0,
                chunk,
                stall: false,
            }
        }
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.stall = !self.stall;
            if self.stall {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = self.chunk.min(buf.remaining()).min(self.data.len() - self.pos);
            let pos = self.pos;
            buf.put_slice(&self.data[pos..pos + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    fn messages() -> Vec<(u64, Message)> {
        vec![
            (
                0,
                Message::Request(Request::Lstat {
                    path: b"a/b".to_vec().into(),
                }),
            ),
            (1, Message::Response(Response::Data(vec![7; 100_000]))),
            (
                2,
                Message::Request(Request::Write {
                    handle: Handle(3),
                    offset: 1 << 40,
                    data: (0..70_000u32).map(|i| i as u8).collect(),
                }),
            ),
            (3, Message::Response(Response::Data(Vec::new()))),
            (4, Message::Response(Response::Written(9))),
            (
                u64::MAX,
                Message::Request(Request::Write {
                    handle: Handle(u64::MAX),
                    offset: u64::MAX,
                    data: vec![1],
                }),
            ),
        ]
    }

    fn stream_of(messages: &[(u64, Message)]) -> Vec<u8> {
        let mut stream = Vec::new();
        for (id, message) in messages {
            stream.extend(encode_frame(*id, message).unwrap());
        }
        stream
    }

    async fn read_all<R: AsyncRead + Unpin>(reader: R) -> Result<Vec<RawFrame>, ReadError> {
        let mut reader = FrameReader::new(reader);
        let mut frames = Vec::new();
        while let Some(frame) = reader.next_frame().await? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[tokio::test]
    async fn frames_arrive_whole_from_reads_of_any_size() {
        let want = messages();
        let stream = stream_of(&want);
        for chunk in [1, 3, 4, 5, 12, 13, 44, 1000, 1 << 20] {
            let frames = read_all(Trickle::new(stream.clone(), chunk)).await.unwrap();
            let got: Vec<_> = frames
                .into_iter()
                .map(|f| (f.id, f.into_message().unwrap()))
                .collect();
            assert_eq!(got, want, "reads of {chunk} bytes");
        }
    }

    #[tokio::test]
    async fn read_and_write_payloads_are_split_off_undecoded() {
        let frames = read_all(&stream_of(&messages())[..]).await.unwrap();
        assert!(matches!(&frames[1].payload, Some(Payload::Data(d)) if d.len() == 100_000));
        assert!(frames[1].body.is_empty());
        assert!(matches!(
            &frames[2].payload,
            Some(Payload::Write { handle: Handle(3), offset, data }) if *offset == 1 << 40 && data.len() == 70_000
        ));
        assert!(matches!(&frames[3].payload, Some(Payload::Data(d)) if d.is_empty()));
        assert!(frames[0].payload.is_none() && frames[4].payload.is_none());
    }

    #[tokio::test]
    async fn end_of_stream_between_frames_is_clean_and_inside_one_is_truncation() {
        assert!(read_all(&b""[..]).await.unwrap().is_empty());
        let stream = stream_of(&messages()[..2]);
        let first = encode_frame(0, &messages()[0].1).unwrap().len();
        for cut in [first + 1, first + 4, first + 12, first + 20, stream.len() - 1] {
            let mut reader = FrameReader::new(Trickle::new(stream[..cut].to_vec(), 7));
            assert!(reader.next_frame().await.unwrap().is_some());
            match reader.next_frame().await {
                Err(ReadError::Frame(FrameError::Truncated { expected, got })) => {
                    // The length is known once its 4 bytes are in.
                    let whole = if cut - first < 4 { 4 } else { stream.len() - first };
                    assert_eq!((expected, got), (whole, cut - first));
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn an_oversized_length_fails_before_the_body_is_read() {
        let mut stream = (MAX_FRAME_LEN + 1).to_be_bytes().to_vec();
        stream.extend_from_slice(&[0; 64]);
        let mut source = &stream[..];
        let mut reader = FrameReader::new(&mut source);
        match reader.next_frame().await {
            Err(ReadError::Frame(FrameError::TooLarge { len, max })) => {
                assert_eq!((len, max), (MAX_FRAME_LEN + 1, MAX_FRAME_LEN));
            }
            other => panic!("{other:?}"),
        }
        // The error is final.
        assert!(matches!(
            reader.next_frame().await,
            Err(ReadError::Frame(FrameError::TooLarge { .. }))
        ));
        drop(reader);
        // Only the length prefix was taken from the stream.
        assert_eq!(source.len(), 64);
    }

    #[tokio::test]
    async fn an_undecodable_body_still_gives_its_id_and_a_describable_error() {
        // What the agent answers with EPROTO: the id, the type, the frame
        // length and a hex preview.
        let body = [0xff, 0xfe, 0xfd, 0xfc, 0xfb];
        let mut stream = (8 + body.len() as u32).to_be_bytes().to_vec();
        stream.extend_from_slice(&77u64.to_be_bytes());
        stream.extend_from_slice(&body);
        stream.extend(encode_frame(78, &Message::Response(Response::Done)).unwrap());
        let frames = read_all(Trickle::new(stream, 2)).await.unwrap();
        assert_eq!(frames[0].id, 77);
        let err = frames[0].clone().into_message().unwrap_err();
        assert_eq!((err.type_name, err.frame_len), ("Message", 13));
        assert_eq!(err.preview, "ff fe fd fc fb");
        // The stream goes on.
        assert_eq!(
            (frames[1].id, frames[1].decode().unwrap()),
            (78, Message::Response(Response::Done))
        );
    }

    /// Records the address of every buffer it is asked to write.
    struct Recorder {
        out: Vec<u8>,
        seen: Vec<*const u8>,
        /// Bytes taken per call, to force partial writes.
        max: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.seen.push(buf.as_ptr());
            let n = buf.len().min(self.max);
            self.out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut n = 0;
            for buf in bufs {
                self.seen.push(buf.as_ptr());
                let take = buf.len().min(self.max - n);
                self.out.extend_from_slice(&buf[..take]);
                n += take;
            }
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn header_and_payload_go_out_as_one_frame_from_where_they_are() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let write = Message::Request(Request::Write {
            handle: Handle(5),
            offset: 99,
            data: data.clone(),
        });
        let cases = [
            (
                encode_write_request_header(1, Handle(5), 99, data.len()).unwrap(),
                encode_frame(1, &write).unwrap(),
            ),
            (
                encode_data_response_header(2, data.len()).unwrap(),
                encode_frame(2, &Message::Response(Response::Data(data.clone()))).unwrap(),
            ),
        ];
        for (header, frame) in cases {
            for max in [1, 3, 4096, usize::MAX] {
                let mut out = Recorder {
                    out: Vec::new(),
                    seen: Vec::new(),
                    max,
                };
                write_parts(&mut out, &header, &data).await.unwrap();
                assert_eq!(out.out, frame, "writes of at most {max} bytes");
                assert!(
                    out.seen.contains(&data.as_ptr()),
                    "the payload is written from its own buffer"
                );
            }
        }
    }
}
