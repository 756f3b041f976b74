//! READDIR and READDIRPLUS cookies. NFS has no open directory: a client
//! lists a directory by cookies, each naming the place after an entry, and
//! may come back with one at any time. The VFS lists a directory through
//! an open stream whose offsets are stable for the life of the stream, so
//! a cookie carries the stream's number and the offset in it: each listing
//! (a client's first call, with cookie 0) gets a stream of its own, and
//! its later calls continue it, whatever other listings of the directory
//! run meanwhile. A stream left unused for a while, or the oldest when too
//! many are open, is closed; a cookie of a closed stream continues at its
//! offset in a fresh listing of the directory (the same entries, unless
//! the directory changed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use yonder_vfs::{Caller, Fh, Ino, Vfs, VfsError};

/// Bits of a cookie that hold the offset; the stream's number is above.
const OFFSET_BITS: u32 = 40;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;
/// Stream numbers fit in the remaining 24 bits, never 0 (cookie 0 means
/// "from the start").
const STREAM_MASK: u32 = (1 << (64 - OFFSET_BITS)) - 1;
const MAX_STREAMS: usize = 256;
const IDLE: Duration = Duration::from_secs(60);

/// Where a READDIR call reads: the stream, its number and the offset.
#[derive(Clone, Copy, Debug)]
pub struct Cursor {
    pub fh: Fh,
    pub stream: u32,
    pub offset: u64,
}

struct Stream {
    dir: Ino,
    fh: Fh,
    used: Instant,
}

#[derive(Default)]
struct Streams {
    open: HashMap<u32, Stream>,
    last: u32,
}

/// The directory streams that cookies name.
pub struct DirCursors {
    vfs: Arc<Vfs>,
    streams: Mutex<Streams>,
}

impl DirCursors {
    pub fn new(vfs: Arc<Vfs>) -> DirCursors {
        DirCursors {
            vfs,
            streams: Mutex::default(),
        }
    }

    /// Where a call with `cookie` on `dir` reads.
    pub fn cursor(&self, caller: &Caller, dir: Ino, cookie: u64) -> Result<Cursor, VfsError> {
        let now = Instant::now();
        let stream = (cookie >> OFFSET_BITS) as u32;
        let offset = cookie & OFFSET_MASK;
        let mut streams = self.lock();
        if cookie != 0 {
            if let Some(open) = streams.open.get_mut(&stream).filter(|s| s.dir == dir) {
                open.used = now;
                return Ok(Cursor {
                    fh: open.fh,
                    stream,
                    offset,
                });
            }
        }
        let fh = self.vfs.opendir(caller, dir)?;
        let stream = loop {
            streams.last = (streams.last + 1) & STREAM_MASK;
            if streams.last != 0 && !streams.open.contains_key(&streams.last) {
                break streams.last;
            }
        };
        streams.open.insert(stream, Stream { dir, fh, used: now });
        self.close_unused(&mut streams, now);
        Ok(Cursor { fh, stream, offset })
    }

    /// The cookie of the place before the entry at `offset` in `stream`.
    pub fn cookie(stream: u32, offset: u64) -> u64 {
        (u64::from(stream) << OFFSET_BITS) | (offset & OFFSET_MASK)
    }

    /// Closes streams unused for [`IDLE`], and the oldest beyond
    /// [`MAX_STREAMS`].
    fn close_unused(&self, streams: &mut Streams, now: Instant) {
        let mut closing: Vec<u32> = streams
            .open
            .iter()
            .filter(|(_, s)| now.duration_since(s.used) >= IDLE)
            .map(|(id, _)| *id)
            .collect();
        let left = streams.open.len() - closing.len();
        if left > MAX_STREAMS {
            let mut by_age: Vec<(Instant, u32)> = streams
                .open
                .iter()
                .filter(|(id, _)| !closing.contains(id))
                .map(|(id, s)| (s.used, *id))
                .collect();
            by_age.sort();
            closing.extend(by_age.iter().take(left - MAX_STREAMS).map(|(_, id)| *id));
        }
        for id in closing {
            if let Some(stream) = streams.open.remove(&id) {
                if let Err(e) = self.vfs.releasedir(stream.fh) {
                    tracing::debug!("closing a directory stream: {e}");
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_the_stream_and_the_offset() {
        let cookie = DirCursors::cookie(3, 10_001);
        assert_ne!(cookie, 0);
        assert_eq!(cookie >> OFFSET_BITS, 3);
        assert_eq!(cookie & OFFSET_MASK, 10_001);
    }
}
