//! Helpers shared by the fuzz targets.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, ReadBuf};

/// The system allocator, noting the largest single allocation: the frame
/// target checks with it that no length read from the wire sizes an
/// allocation before it has been checked against `MAX_FRAME_LEN`.
pub struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only addition is an atomic counter.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// The largest allocation since the last call.
pub fn take_largest_allocation() -> usize {
    LARGEST.swap(0, Ordering::Relaxed)
}

/// Cuts `data` into chunks whose sizes (1 to 256) cycle through `sizes`;
/// one chunk if `sizes` is empty.
pub fn chunks<'a>(mut data: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut next = 0;
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let size = chunk_size(sizes, &mut next).min(data.len());
        let (chunk, rest) = data.split_at(size);
        data = rest;
        Some(chunk)
    })
}

fn chunk_size(sizes: &[u8], next: &mut usize) -> usize {
    if sizes.is_empty() {
        return usize::MAX;
    }
    let size = usize::from(sizes[*next % sizes.len()]) + 1;
    *next += 1;
    size
}

/// A byte stream that hands out at most one chunk per read, as a pipe or
/// socket does; always ready.
pub struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    next: usize,
}

impl<'a> Chunked<'a> {
    pub fn new(data: &'a [u8], sizes: &'a [u8]) -> Self {
        Chunked { data, sizes, next: 0 }
    }
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let size = chunk_size(this.sizes, &mut this.next)
            .min(buf.remaining())
            .min(this.data.len());
        let (chunk, rest) = this.data.split_at(size);
        buf.put_slice(chunk);
        this.data = rest;
        Poll::Ready(Ok(()))
    }
}

/// Runs a future whose I/O is always ready (a [`Chunked`] reader) to
/// completion in one poll.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a future over an always-ready reader is pending"),
    }
}
