//! Read responses without copying: the file's pages go into a pipe with
//! splice(2), and from there into the agent's output pipe or socket.
//!
//! A read otherwise copies its data twice inside the agent (file to buffer
//! with `pread`, buffer to output pipe with `write`); on a local mount that
//! is two of the five copies between the disk cache and the reader. The
//! data is spliced into a private pipe first, which tells its exact length
//! before the response header is written, and the pipe is then spliced to
//! the output by the writer. Where splicing is not possible (not Linux, an
//! output that is neither pipe nor socket, a file system without splice
//! support, a read larger than the pipe) the plain path is used.
//!
//! Like any read that races a concurrent write, the bytes are those of the
//! page cache at some moment between the request and the response.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Bytes of a file held in a private pipe, ready to be sent.
pub(crate) struct Spliced {
    pipe: Pipe,
    pub len: usize,
}

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

const PAGE: usize = 4096;
/// Asked for per pipe; unprivileged agents get at most
/// `/proc/sys/fs/pipe-max-size` (1 MiB by default).
#[cfg(target_os = "linux")]
const WANTED_CAPACITY: usize = 4 << 20;
/// Pipes kept for reuse; reads in flight beyond this make new ones.
const POOL: usize = 16;

#[derive(Default)]
pub(crate) struct PipePool {
    idle: Mutex<Vec<Pipe>>,
}

impl PipePool {
    /// Splices `len` bytes of `file` at `offset` into a pipe. `None` when
    /// this read cannot be spliced and should be done with `pread`; a short
    /// result only at end of file.
    pub(crate) fn fill(&self, file: &File, offset: u64, len: usize) -> Option<rustix::io::Result<Spliced>> {
        let pipe = match self.take() {
            Ok(pipe) => pipe,
            Err(err) => {
                tracing::debug!(%err, "no pipe for splicing");
                return None;
            }
        };
        // Each page touched takes a whole pipe slot, however little of it is
        // read; a read that might not fit is not tried, since a pipe that
        // fills up halfway would make a short read that is not end of file.
        let pages = (offset as usize % PAGE + len).div_ceil(PAGE);
        if pages * PAGE > pipe.capacity {
            self.give_back(pipe);
            return None;
        }
        let mut at = offset;
        let mut done = 0;
        while done < len {
            match sys::splice(file.as_fd(), Some(&mut at), pipe.write.as_fd(), len - done) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => {}
                // Not spliceable here (the file system, O_DIRECT, ...): the
                // pipe is still empty, so pread can take over.
                Err(
                    rustix::io::Errno::INVAL
                    | rustix::io::Errno::NOSYS
                    | rustix::io::Errno::SPIPE
                    | rustix::io::Errno::OPNOTSUPP,
                ) if done == 0 => {
                    self.give_back(pipe);
                    return None;
                }
                // Like read(2), a short read stands and the error surfaces
                // on the next call.
                Err(_) if done > 0 => break,
                Err(err) => {
                    self.give_back(pipe);
                    return Some(Err(err));
                }
            }
        }
        Some(Ok(Spliced { pipe, len: done }))
    }

    /// Returns a drained pipe for reuse.
    pub(crate) fn recycle(&self, spliced: Spliced) {
        self.give_back(spliced.pipe);
    }

    fn take(&self) -> io::Result<Pipe> {
        if let Some(pipe) = self.lock().pop() {
            return Ok(pipe);
        }
        let (read, write, capacity) = sys::pipe()?;
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    fn give_back(&self, pipe: Pipe) {
        let mut idle = self.lock();
        if idle.len() < POOL {
            idle.push(pipe);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pipe>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Spliced {
    /// The bytes, read out of the pipe: for outputs that cannot take a
    /// splice.
    pub(crate) fn into_bytes(self, pool: &PipePool) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.len];
        let mut done = 0;
        while done < self.len {
            match rustix::io::read(&self.pipe.read, &mut buf[done..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "spliced pipe ran dry",
                    ))
                }
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(err) => return Err(err.into()),
            }
        }
        pool.recycle(self);
        Ok(buf)
    }
}

/// The agent's output (a pipe or a socket), as a splice destination. It is
/// a second descriptor for the output the response writer also holds: the
/// writer flushes its buffer before any splice, so bytes keep their order.
pub(crate) struct SpliceOut {
    fd: AsyncFd<OwnedFd>,
}

impl SpliceOut {
    /// Must be called inside a tokio runtime; `output` must already be in
    /// non-blocking mode (the writer's pipe or socket sets it).
    pub(crate) fn new(output: BorrowedFd<'_>) -> io::Result<SpliceOut> {
        sys::available()?;
        let fd = rustix::io::fcntl_dupfd_cloexec(output, 3)?;
        // SAFETY: `fd` is an open descriptor that the `OwnedFd` moved into
        // the `AsyncFd` owns: nothing else can close it, and its `as_raw_fd`
        // returns the same number for as long as the `AsyncFd` lives.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::WRITABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(SpliceOut { fd })
    }

    /// Moves all of `spliced` to the output, then recycles its pipe.
    pub(crate) async fn send(&self, spliced: Spliced, pool: &PipePool) -> io::Result<()> {
        let mut left = spliced.len;
        while left > 0 {
            let mut ready = self.fd.writable().await?;
            let moved = ready.try_io(|fd| {
                sys::splice(spliced.pipe.read.as_fd(), None, fd.get_ref().as_fd(), left)
                    .map_err(io::Error::from)
            });
            match moved {
                Ok(Ok(0)) => return Err(io::Error::new(io::ErrorKind::WriteZero, "output closed")),
                Ok(Ok(n)) => left -= n,
                Ok(Err(err)) if err.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(err)) => return Err(err),
                Err(_would_block) => {}
            }
        }
        pool.recycle(spliced);
        Ok(())
    }
}

/// splice(2) and sized pipes are Linux's alone.
#[cfg(target_os = "linux")]
mod sys {
    use super::WANTED_CAPACITY;
    use std::io;
    use std::os::fd::{BorrowedFd, OwnedFd};

    pub(super) fn available() -> io::Result<()> {
        Ok(())
    }

    /// A non-blocking pipe, as large as the agent may make it, and its size.
    pub(super) fn pipe() -> io::Result<(OwnedFd, OwnedFd, usize)> {
        let (read, write) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK)?;
        let _ = rustix::pipe::fcntl_setpipe_size(&write, WANTED_CAPACITY)
            .or_else(|_| rustix::pipe::fcntl_setpipe_size(&write, 1 << 20));
        let capacity = rustix::pipe::fcntl_getpipe_size(&write)?;
        Ok((read, write, capacity))
    }

    pub(super) fn splice(
        from: BorrowedFd<'_>,
        offset: Option<&mut u64>,
        to: BorrowedFd<'_>,
        len: usize,
    ) -> rustix::io::Result<usize> {
        let flags = rustix::pipe::SpliceFlags::MOVE | rustix::pipe::SpliceFlags::NONBLOCK;
        rustix::pipe::splice(from, offset, to, None, len, flags)
    }
}

/// Elsewhere no pipe is made and the output is no splice destination, so
/// every read takes the pread path.
#[cfg(not(target_os = "linux"))]
mod sys {
    use std::io;
    use std::os::fd::{BorrowedFd, OwnedFd};

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!("splice(2) does not exist on {}", std::env::consts::OS),
        )
    }

    pub(super) fn available() -> io::Result<()> {
        Err(unsupported())
    }

    pub(super) fn pipe() -> io::Result<(OwnedFd, OwnedFd, usize)> {
        Err(unsupported())
    }

    pub(super) fn splice(
        _from: BorrowedFd<'_>,
        _offset: Option<&mut u64>,
        _to: BorrowedFd<'_>,
        _len: usize,
    ) -> rustix::io::Result<usize> {
        Err(rustix::io::Errno::NOSYS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn splices_exact_ranges_and_stops_at_end_of_file() {
        use std::io::Write;
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        let pool = PipePool::default();
        for (offset, len) in [(0usize, 4096usize), (1, 10_000), (4095, 65_536), (90_000, 20_000)] {
            let spliced = pool.fill(&file, offset as u64, len).unwrap().unwrap();
            let end = (offset + len).min(data.len());
            assert_eq!(spliced.into_bytes(&pool).unwrap(), &data[offset..end]);
        }
        // Recycled pipes come back empty and are reused.
        assert!(!pool.lock().is_empty());
        let past_end = pool.fill(&file, 200_000, 100).unwrap().unwrap();
        assert_eq!(past_end.len, 0);
    }

    #[test]
    fn a_read_larger_than_the_pipe_is_left_to_pread() {
        let file = tempfile::tempfile().unwrap();
        let pool = PipePool::default();
        assert!(pool.fill(&file, 0, 64 << 20).is_none());
    }
}
