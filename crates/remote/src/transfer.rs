//! Pipelined whole-stream transfers over a [`Remote`] handle.
//!
//! A single `read` waits one round trip; streaming a file one chunk at a time
//! would be bounded by latency, not bandwidth. These helpers keep `depth`
//! requests in flight and deliver data in order.

use crate::{Remote, Result};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use yonder_proto::Handle;

/// Chunk size and number of requests in flight.
#[derive(Clone, Copy, Debug)]
pub struct Pipeline {
    pub chunk: u32,
    pub depth: usize,
}

impl Default for Pipeline {
    fn default() -> Self {
        // Few large requests: each costs a frame, a wakeup on both sides
        // and a task; 16 MiB in flight covers a 100 ms round trip at
        // 160 MB/s.
        Pipeline {
            chunk: yonder_proto::MAX_IO_SIZE,
            depth: 4,
        }
    }
}

/// Error of a transfer: either side may fail.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Remote(#[from] crate::RemoteError),
    #[error("{0}")]
    Local(#[from] std::io::Error),
}

/// Reads `handle` from `offset` to end of file into `sink`; returns the
/// number of bytes copied.
pub async fn read_to<R: Remote + ?Sized, W: AsyncWrite + Unpin>(
    remote: Arc<R>,
    handle: Handle,
    offset: u64,
    pipeline: Pipeline,
    sink: &mut W,
) -> std::result::Result<u64, TransferError> {
    let mut in_flight: VecDeque<JoinHandle<Result<Vec<u8>>>> = VecDeque::new();
    let mut next_offset = offset;
    let mut copied = 0u64;
    let mut eof = false;
    loop {
        while !eof && in_flight.len() < pipeline.depth {
            let remote = remote.clone();
            let at = next_offset;
            in_flight.push_back(tokio::spawn(async move {
                remote.read(handle, at, pipeline.chunk).await
            }));
            next_offset += pipeline.chunk as u64;
        }
        let Some(next) = in_flight.pop_front() else { break };
        let data = next.await.expect("read task panicked")?;
        sink.write_all(&data).await?;
        copied += data.len() as u64;
        if data.len() < pipeline.chunk as usize {
            // A short read is end of file; reads already issued past it
            // return nothing, so drop them.
            eof = true;
            in_flight.clear();
        }
    }
    sink.flush().await?;
    Ok(copied)
}

/// Writes everything from `source` to `handle` starting at `offset`;
/// returns the number of bytes written. Every write's result is checked.
pub async fn write_from<R: Remote + ?Sized, S: AsyncRead + Unpin>(
    remote: Arc<R>,
    handle: Handle,
    offset: u64,
    pipeline: Pipeline,
    source: &mut S,
) -> std::result::Result<u64, TransferError> {
    let mut in_flight: VecDeque<JoinHandle<Result<u32>>> = VecDeque::new();
    let mut at = offset;
    let mut done = false;
    while !done || !in_flight.is_empty() {
        while !done && in_flight.len() < pipeline.depth {
            let mut chunk = Vec::with_capacity(pipeline.chunk as usize);
            let n = (&mut *source)
                .take(pipeline.chunk as u64)
                .read_to_end(&mut chunk)
                .await?;
            if n == 0 {
                done = true;
                break;
            }
            let remote = remote.clone();
            let write_at = at;
            at += n as u64;
            in_flight.push_back(tokio::spawn(async move {
                remote.write(handle, write_at, chunk.into()).await
            }));
        }
        if let Some(next) = in_flight.pop_front() {
            next.await.expect("write task panicked")?;
        }
    }
    Ok(at - offset)
}
