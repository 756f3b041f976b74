//! A file's data between the VFS and the local files the system hands
//! over (new contents) or is handed (fetched contents).

use crate::byte_range::ByteRange;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use yonder_vfs::{Fh, Vfs, VfsError};

/// What one read asks the VFS for: its readahead sees a sequential reader
/// and fetches ahead of these.
pub const CHUNK: u32 = 1 << 20;

/// Where copying failed: the remote side or the local file.
#[derive(Debug)]
pub enum CopyError {
    Remote(VfsError),
    Local(std::io::Error),
}

/// Copies `range` of the open file `fh` into `local` at the same offsets
/// (the partial fetch contract: the data at its own offset, anything
/// around it ignored). Stops at the end of the remote file; returns the
/// bytes copied.
pub async fn copy_out(vfs: &Vfs, fh: Fh, range: ByteRange, mut local: &File) -> Result<u64, CopyError> {
    local
        .seek(SeekFrom::Start(range.offset))
        .map_err(CopyError::Local)?;
    let mut offset = range.offset;
    while offset < range.end() {
        let want = (range.end() - offset).min(u64::from(CHUNK)) as u32;
        let data = vfs.read(fh, offset, want).await.map_err(CopyError::Remote)?;
        if data.is_empty() {
            break;
        }
        // Local disk: short next to the remote read before it.
        local.write_all(&data).map_err(CopyError::Local)?;
        offset += data.len() as u64;
    }
    Ok(offset - range.offset)
}

/// Copies the whole of `local` into the open file `fh` from offset 0.
pub async fn copy_in(vfs: &Vfs, fh: Fh, mut local: File) -> Result<u64, CopyError> {
    let mut buffer = vec![0; CHUNK as usize];
    let mut offset = 0u64;
    loop {
        let n = local.read(&mut buffer).map_err(CopyError::Local)?;
        if n == 0 {
            return Ok(offset);
        }
        let mut written = 0;
        while written < n {
            let w = vfs
                .write(fh, offset + written as u64, &buffer[written..n])
                .await
                .map_err(CopyError::Remote)?;
            if w == 0 {
                return Err(CopyError::Remote(VfsError::new(
                    "write",
                    "<contents>",
                    yonder_vfs::Errno::EIO,
                )));
            }
            written += w as usize;
        }
        offset += n as u64;
    }
}
