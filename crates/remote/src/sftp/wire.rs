//! SFTP version 3 packets (draft-ietf-secsh-filexfer-02) and the OpenSSH
//! extensions yonder uses, with no I/O: what is encoded into a request and
//! decoded out of a reply.
//!
//! A packet is `u32 length | u8 type | body`; every request and reply but
//! INIT/VERSION carries a `u32` id right after the type. Strings are
//! `u32 length | bytes`, so paths are byte-exact.

use yonder_proto::{file_type, Attr, Errno, StatFs, Timespec};

pub const INIT: u8 = 1;
pub const VERSION: u8 = 2;
pub const OPEN: u8 = 3;
pub const CLOSE: u8 = 4;
pub const READ: u8 = 5;
pub const WRITE: u8 = 6;
pub const LSTAT: u8 = 7;
pub const FSTAT: u8 = 8;
pub const SETSTAT: u8 = 9;
pub const FSETSTAT: u8 = 10;
pub const OPENDIR: u8 = 11;
pub const READDIR: u8 = 12;
pub const REMOVE: u8 = 13;
pub const MKDIR: u8 = 14;
pub const RMDIR: u8 = 15;
pub const REALPATH: u8 = 16;
pub const STAT: u8 = 17;
pub const RENAME: u8 = 18;
pub const READLINK: u8 = 19;
pub const SYMLINK: u8 = 20;
pub const EXTENDED: u8 = 200;

pub const STATUS: u8 = 101;
pub const HANDLE: u8 = 102;
pub const DATA: u8 = 103;
pub const NAME: u8 = 104;
pub const ATTRS: u8 = 105;
pub const EXTENDED_REPLY: u8 = 201;

/// `SSH_FXF_*` open flags.
pub mod pflags {
    pub const READ: u32 = 0x01;
    pub const WRITE: u32 = 0x02;
    pub const APPEND: u32 = 0x04;
    pub const CREAT: u32 = 0x08;
    pub const TRUNC: u32 = 0x10;
    pub const EXCL: u32 = 0x20;
}

/// `SSH_FX_*` status codes.
pub mod status {
    pub const OK: u32 = 0;
    pub const EOF: u32 = 1;
    pub const NO_SUCH_FILE: u32 = 2;
    pub const PERMISSION_DENIED: u32 = 3;
    pub const FAILURE: u32 = 4;
    pub const BAD_MESSAGE: u32 = 5;
    pub const OP_UNSUPPORTED: u32 = 8;
}

const ATTR_SIZE: u32 = 0x1;
const ATTR_UIDGID: u32 = 0x2;
const ATTR_PERMISSIONS: u32 = 0x4;
const ATTR_ACMODTIME: u32 = 0x8;
const ATTR_EXTENDED: u32 = 0x8000_0000;

/// The largest packet a reply may be: OpenSSH's sftp-server sends at most
/// 256 KiB; a bigger length prefix means a corrupt stream.
pub const MAX_PACKET: usize = 1 << 20;

/// The attributes SFTP v3 carries: each field optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileAttrs {
    pub size: Option<u64>,
    pub uid_gid: Option<(u32, u32)>,
    pub permissions: Option<u32>,
    /// (atime, mtime) in whole seconds: v3 has no nanoseconds.
    pub times: Option<(u32, u32)>,
}

impl FileAttrs {
    /// As the protocol's attributes. What SFTP does not carry is filled
    /// in as a file system without it would: no inode number (the VFS
    /// then keys identity by path), no device, no birth time, ctime equal
    /// to mtime, one link, blocks from the size.
    pub fn to_attr(self) -> Attr {
        let (uid, gid) = self.uid_gid.unwrap_or((0, 0));
        let (atime, mtime) = self.times.unwrap_or((0, 0));
        let size = self.size.unwrap_or(0);
        let mode = self.permissions.unwrap_or(file_type::REGULAR | 0o644);
        let secs = |s: u32| Timespec {
            sec: s as i64,
            nsec: 0,
        };
        Attr {
            ino: 0,
            mode,
            nlink: 1,
            uid,
            gid,
            rdev_major: 0,
            rdev_minor: 0,
            size,
            blocks: size.div_ceil(512),
            blksize: 4096,
            atime: secs(atime),
            mtime: secs(mtime),
            ctime: secs(mtime),
            dev: 0,
            btime: None,
        }
    }
}

/// Builds one request packet.
pub struct Packet {
    buf: Vec<u8>,
}

impl Packet {
    /// A request of `kind` with request id `id`.
    pub fn new(kind: u8, id: u32) -> Packet {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; 4]);
        buf.push(kind);
        buf.extend_from_slice(&id.to_be_bytes());
        Packet { buf }
    }

    /// The INIT packet, which has no id.
    pub fn init() -> Vec<u8> {
        let mut buf = vec![0, 0, 0, 5, INIT];
        buf.extend_from_slice(&3u32.to_be_bytes());
        buf
    }

    pub fn u32(mut self, v: u32) -> Packet {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(mut self, v: u64) -> Packet {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn string(mut self, s: &[u8]) -> Packet {
        self.buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(s);
        self
    }

    pub fn attrs(mut self, a: &FileAttrs) -> Packet {
        let mut flags = 0;
        if a.size.is_some() {
            flags |= ATTR_SIZE;
        }
        if a.uid_gid.is_some() {
            flags |= ATTR_UIDGID;
        }
        if a.permissions.is_some() {
            flags |= ATTR_PERMISSIONS;
        }
        if a.times.is_some() {
            flags |= ATTR_ACMODTIME;
        }
        self = self.u32(flags);
        if let Some(size) = a.size {
            self = self.u64(size);
        }
        if let Some((uid, gid)) = a.uid_gid {
            self = self.u32(uid).u32(gid);
        }
        if let Some(perm) = a.permissions {
            self = self.u32(perm);
        }
        if let Some((atime, mtime)) = a.times {
            self = self.u32(atime).u32(mtime);
        }
        self
    }

    /// The finished packet, its length prefix set. `trailing` bytes follow
    /// it on the wire (a write's data, sent from the caller's buffer).
    pub fn finish(mut self, trailing: usize) -> Vec<u8> {
        let len = (self.buf.len() - 4 + trailing) as u32;
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }
}

/// A reply's body, read field by field; every read checks the length.
pub struct Reader<'a> {
    data: &'a [u8],
}

/// The reply was shorter than its fields.
#[derive(Debug)]
pub struct Truncated;

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        if self.data.len() < n {
            return Err(Truncated);
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, Truncated> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub fn string(&mut self) -> Result<&'a [u8], Truncated> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn attrs(&mut self) -> Result<FileAttrs, Truncated> {
        let flags = self.u32()?;
        let mut a = FileAttrs::default();
        if flags & ATTR_SIZE != 0 {
            a.size = Some(self.u64()?);
        }
        if flags & ATTR_UIDGID != 0 {
            a.uid_gid = Some((self.u32()?, self.u32()?));
        }
        if flags & ATTR_PERMISSIONS != 0 {
            a.permissions = Some(self.u32()?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            a.times = Some((self.u32()?, self.u32()?));
        }
        if flags & ATTR_EXTENDED != 0 {
            for _ in 0..self.u32()? {
                self.string()?;
                self.string()?;
            }
        }
        Ok(a)
    }

    /// The reply of `statvfs@openssh.com`.
    pub fn statvfs(&mut self) -> Result<StatFs, Truncated> {
        let block_size = self.u64()?;
        let fragment_size = self.u64()?;
        let blocks = self.u64()?;
        let blocks_free = self.u64()?;
        let blocks_available = self.u64()?;
        let files = self.u64()?;
        let files_free = self.u64()?;
        let files_available = self.u64()?;
        let _fsid = self.u64()?;
        let _flag = self.u64()?;
        let name_max = self.u64()?;
        Ok(StatFs {
            block_size,
            fragment_size,
            blocks,
            blocks_free,
            blocks_available,
            files,
            files_free,
            files_available,
            name_max,
        })
    }
}

/// The errno a status code stands for where it says enough by itself.
/// `FAILURE` is OpenSSH's answer for every errno it has no code for
/// (EEXIST, ENOTEMPTY, ENOTDIR, EISDIR, ...): the caller finds out which
/// from what the remote shows.
pub fn status_errno(code: u32) -> Errno {
    match code {
        status::NO_SUCH_FILE => Errno::ENOENT,
        status::PERMISSION_DENIED => Errno::EACCES,
        status::BAD_MESSAGE => Errno::EINVAL,
        status::OP_UNSUPPORTED => Errno::EOPNOTSUPP,
        _ => Errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_and_fill_what_v3_lacks() {
        let a = FileAttrs {
            size: Some(1000),
            uid_gid: Some((1, 2)),
            permissions: Some(file_type::DIRECTORY | 0o755),
            times: Some((10, 20)),
        };
        let packet = Packet::new(SETSTAT, 7).string(b"x").attrs(&a).finish(0);
        assert_eq!(
            u32::from_be_bytes(packet[..4].try_into().unwrap()) as usize,
            packet.len() - 4
        );
        let mut r = Reader::new(&packet[4..]);
        assert_eq!((r.u8().unwrap(), r.u32().unwrap()), (SETSTAT, 7));
        assert_eq!(r.string().unwrap(), b"x");
        assert_eq!(r.attrs().unwrap(), a);
        assert!(r.is_empty());
        let attr = a.to_attr();
        assert_eq!((attr.ino, attr.dev, attr.btime), (0, 0, None));
        assert_eq!((attr.blocks, attr.ctime, attr.mtime.sec), (2, attr.mtime, 20));
        assert!(attr.is_dir());
        assert!(Reader::new(&[0, 0, 0, 0]).attrs().is_ok());
        assert!(Reader::new(&[0, 0, 0, 1, 0]).attrs().is_err(), "truncated size");
    }
}
