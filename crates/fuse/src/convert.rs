//! Conversions between VFS values and fuser's.

use fuser::{FileType, INodeNo, TimeOrNow};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use yonder_vfs::{FileAttr, FileKind, SetTime, Timespec, VfsError};

pub(crate) fn errno(err: &VfsError) -> fuser::Errno {
    fuser::Errno::from_i32(err.errno().to_host())
}

pub(crate) fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::Regular => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
        FileKind::Socket => FileType::Socket,
    }
}

pub(crate) fn system_time(t: Timespec) -> SystemTime {
    let nanos = Duration::from_nanos(t.nsec.min(999_999_999) as u64);
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.sec as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs()) + nanos
    }
}

pub(crate) fn timespec(t: SystemTime) -> Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timespec {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        },
        Err(before) => {
            let d = before.duration();
            if d.subsec_nanos() == 0 {
                Timespec {
                    sec: -(d.as_secs() as i64),
                    nsec: 0,
                }
            } else {
                Timespec {
                    sec: -(d.as_secs() as i64) - 1,
                    nsec: 1_000_000_000 - d.subsec_nanos(),
                }
            }
        }
    }
}

pub(crate) fn set_time(t: Option<TimeOrNow>) -> SetTime {
    match t {
        None => SetTime::Omit,
        Some(TimeOrNow::Now) => SetTime::Now,
        Some(TimeOrNow::SpecificTime(t)) => SetTime::Set(timespec(t)),
    }
}

pub(crate) fn fuse_attr(a: &FileAttr) -> fuser::FileAttr {
    fuser::FileAttr {
        ino: INodeNo(a.ino.0),
        size: a.size,
        blocks: a.blocks,
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: UNIX_EPOCH,
        kind: file_type(a.kind),
        perm: (a.perm & 0o7777) as u16,
        nlink: a.nlink.min(u32::MAX as u64) as u32,
        uid: a.uid,
        gid: a.gid,
        // The kernel decodes FUSE's 32-bit rdev as the host's libc encodes
        // small device numbers (rustix's takes u32 parts on every OS).
        rdev: rustix::fs::makedev(a.rdev_major, a.rdev_minor) as u32,
        blksize: a.blksize,
        flags: 0,
    }
}

/// Attributes for `.` and `..` in readdirplus, which the kernel ignores.
pub(crate) fn placeholder_dir_attr(ino: u64) -> fuser::FileAttr {
    fuser::FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::Directory,
        perm: 0o755,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_with_nanoseconds_including_before_the_epoch() {
        for t in [
            Timespec {
                sec: 1_700_000_000,
                nsec: 123_456_789,
            },
            Timespec { sec: 0, nsec: 0 },
            Timespec {
                sec: -5,
                nsec: 250_000_000,
            },
        ] {
            assert_eq!(timespec(system_time(t)), t);
        }
    }

    #[test]
    fn device_numbers_survive_encoding() {
        let dev = libc::makedev(259, 70000) as u32 as libc::dev_t;
        assert_eq!((libc::major(dev), libc::minor(dev)), (259, 70000));
    }
}
