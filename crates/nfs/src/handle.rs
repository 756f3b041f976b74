//! File handles on the wire: `nfs3_server` puts its generation (8 bytes,
//! little endian: milliseconds since the epoch when the server started) in
//! front of the bytes the file system chooses, which are the VFS
//! [`Exporter`](yonder_vfs::Exporter)'s handle (its epoch and the inode).
//! A handle from an earlier server is refused as stale by the generation,
//! and by the exporter's epoch should the clock have gone back.

use nfs3_server::nfs3_types::nfs3::{nfs_fh3, nfsstat3};
use nfs3_server::nfs3_types::xdr_codec::Opaque;
use nfs3_server::vfs::FileHandle as WireHandle;
use yonder_vfs::FileHandle;

/// The file system's part of an NFS file handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NfsHandle([u8; FileHandle::LEN]);

impl NfsHandle {
    pub fn new(handle: FileHandle) -> NfsHandle {
        NfsHandle(handle.to_bytes())
    }

    pub fn file_handle(&self) -> FileHandle {
        FileHandle::from_bytes(&self.0).expect("an NfsHandle holds a whole FileHandle")
    }
}

impl WireHandle for NfsHandle {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn from_bytes(bytes: &[u8]) -> Option<NfsHandle> {
        Some(NfsHandle(bytes.try_into().ok()?))
    }
}

/// Whole wire handles, for the procedures the dispatcher answers itself:
/// the same layout `nfs3_server` gives them.
#[derive(Clone, Copy, Debug)]
pub struct HandleCodec {
    pub generation: u64,
}

impl HandleCodec {
    pub fn encode(&self, handle: &NfsHandle) -> nfs_fh3 {
        let mut bytes = Vec::with_capacity(8 + FileHandle::LEN);
        bytes.extend_from_slice(&self.generation.to_le_bytes());
        bytes.extend_from_slice(handle.as_bytes());
        nfs_fh3 {
            data: Opaque::owned(bytes),
        }
    }

    /// As `nfs3_server` decides: another generation, or bytes of another
    /// shape, is stale (a server before this one gave them out) or bad.
    pub fn decode(&self, fh: &nfs_fh3) -> Result<NfsHandle, nfsstat3> {
        let bytes: &[u8] = fh.data.as_ref();
        if bytes.len() < 8 {
            return Err(nfsstat3::NFS3ERR_BADHANDLE);
        }
        let generation = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        if generation < self.generation {
            return Err(nfsstat3::NFS3ERR_STALE);
        }
        if generation != self.generation {
            return Err(nfsstat3::NFS3ERR_BADHANDLE);
        }
        NfsHandle::from_bytes(&bytes[8..]).ok_or(nfsstat3::NFS3ERR_BADHANDLE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yonder_vfs::Ino;

    #[test]
    fn handles_round_trip_and_earlier_generations_are_stale() {
        let handle = NfsHandle::new(FileHandle {
            epoch: 7,
            ino: Ino(42),
        });
        let codec = HandleCodec { generation: 1000 };
        let wire = codec.encode(&handle);
        assert_eq!(codec.decode(&wire), Ok(handle));
        assert_eq!(handle.file_handle().ino, Ino(42));
        let later = HandleCodec { generation: 2000 };
        assert_eq!(later.decode(&wire), Err(nfsstat3::NFS3ERR_STALE));
        let short = nfs_fh3 {
            data: Opaque::owned(vec![1, 2, 3]),
        };
        assert_eq!(codec.decode(&short), Err(nfsstat3::NFS3ERR_BADHANDLE));
    }
}
