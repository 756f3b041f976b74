//! Between the VFS's values and NFSv3's: attributes, times, errors.

use nfs3_server::nfs3_types::nfs3::{
    fattr3, ftype3, nfsstat3, nfstime3, sattr3, set_atime, set_mtime, specdata3, wcc_attr, Nfs3Option,
};
use yonder_vfs::{Errno, FileAttr, FileKind, SetAttr, SetTime, Timespec, VfsError};

/// The one file system an export is, as far as clients are told: the VFS
/// numbers inodes uniquely across the remote's file systems.
pub const FSID: u64 = 0x796f_6e64; // "yond"

pub fn fattr(attr: &FileAttr) -> fattr3 {
    fattr3 {
        type_: ftype(attr.kind),
        mode: attr.perm,
        nlink: u32::try_from(attr.nlink).unwrap_or(u32::MAX),
        uid: attr.uid,
        gid: attr.gid,
        size: attr.size,
        used: attr.blocks.saturating_mul(512),
        rdev: specdata3 {
            specdata1: attr.rdev_major,
            specdata2: attr.rdev_minor,
        },
        fsid: FSID,
        fileid: attr.ino.0,
        atime: nfstime(attr.atime),
        mtime: nfstime(attr.mtime),
        ctime: nfstime(attr.ctime),
    }
}

pub fn wcc(attr: &FileAttr) -> wcc_attr {
    wcc_attr {
        size: attr.size,
        mtime: nfstime(attr.mtime),
        ctime: nfstime(attr.ctime),
    }
}

fn ftype(kind: FileKind) -> ftype3 {
    match kind {
        FileKind::Regular => ftype3::NF3REG,
        FileKind::Directory => ftype3::NF3DIR,
        FileKind::Symlink => ftype3::NF3LNK,
        FileKind::Fifo => ftype3::NF3FIFO,
        FileKind::CharDevice => ftype3::NF3CHR,
        FileKind::BlockDevice => ftype3::NF3BLK,
        FileKind::Socket => ftype3::NF3SOCK,
    }
}

/// NFSv3 times are unsigned 32-bit seconds: times before 1970 show as
/// 1970, after 2106 as 2106.
pub fn nfstime(t: Timespec) -> nfstime3 {
    nfstime3 {
        seconds: u32::try_from(t.sec.max(0)).unwrap_or(u32::MAX),
        nseconds: t.nsec,
    }
}

pub fn timespec(t: nfstime3) -> Timespec {
    Timespec {
        sec: i64::from(t.seconds),
        nsec: t.nseconds.min(999_999_999),
    }
}

/// What SETATTR (and the attributes of CREATE, MKDIR, SYMLINK) ask for.
pub fn set_attr(attr: &sattr3) -> SetAttr {
    let some = |o: &Nfs3Option<u32>| match o {
        Nfs3Option::Some(v) => Some(*v),
        Nfs3Option::None => None,
    };
    SetAttr {
        mode: some(&attr.mode).map(|m| m & 0o7777),
        uid: some(&attr.uid),
        gid: some(&attr.gid),
        size: match attr.size {
            Nfs3Option::Some(size) => Some(size),
            Nfs3Option::None => None,
        },
        atime: match attr.atime {
            set_atime::DONT_CHANGE => SetTime::Omit,
            set_atime::SET_TO_SERVER_TIME => SetTime::Now,
            set_atime::SET_TO_CLIENT_TIME(t) => SetTime::Set(timespec(t)),
        },
        mtime: match attr.mtime {
            set_mtime::DONT_CHANGE => SetTime::Omit,
            set_mtime::SET_TO_SERVER_TIME => SetTime::Now,
            set_mtime::SET_TO_CLIENT_TIME(t) => SetTime::Set(timespec(t)),
        },
    }
}

/// The mode a CREATE, MKDIR or SYMLINK asks for, or the usual default.
pub fn creation_mode(attr: &sattr3, default: u32) -> u32 {
    match attr.mode {
        Nfs3Option::Some(mode) => mode & 0o7777,
        Nfs3Option::None => default,
    }
}

/// An error as NFSv3 says it; what it has no word for is an I/O error.
pub fn status(error: &VfsError) -> nfsstat3 {
    tracing::debug!("nfs: {error}");
    errno_status(error.errno())
}

pub fn errno_status(errno: Errno) -> nfsstat3 {
    match errno {
        Errno::EPERM => nfsstat3::NFS3ERR_PERM,
        Errno::ENOENT => nfsstat3::NFS3ERR_NOENT,
        Errno::ENXIO => nfsstat3::NFS3ERR_NXIO,
        Errno::EACCES => nfsstat3::NFS3ERR_ACCES,
        Errno::EEXIST => nfsstat3::NFS3ERR_EXIST,
        Errno::EXDEV => nfsstat3::NFS3ERR_XDEV,
        Errno::ENODEV => nfsstat3::NFS3ERR_NODEV,
        Errno::ENOTDIR => nfsstat3::NFS3ERR_NOTDIR,
        Errno::EISDIR => nfsstat3::NFS3ERR_ISDIR,
        Errno::EINVAL => nfsstat3::NFS3ERR_INVAL,
        Errno::EFBIG => nfsstat3::NFS3ERR_FBIG,
        Errno::ENOSPC => nfsstat3::NFS3ERR_NOSPC,
        Errno::EROFS => nfsstat3::NFS3ERR_ROFS,
        Errno::EMLINK => nfsstat3::NFS3ERR_MLINK,
        Errno::ENAMETOOLONG => nfsstat3::NFS3ERR_NAMETOOLONG,
        Errno::ENOTEMPTY => nfsstat3::NFS3ERR_NOTEMPTY,
        Errno::EDQUOT => nfsstat3::NFS3ERR_DQUOT,
        Errno::ESTALE => nfsstat3::NFS3ERR_STALE,
        Errno::ENOSYS | Errno::EOPNOTSUPP => nfsstat3::NFS3ERR_NOTSUPP,
        // The remote is away for now: the client retries.
        Errno::ETIMEDOUT | Errno::ENOTCONN | Errno::EAGAIN => nfsstat3::NFS3ERR_JUKEBOX,
        _ => nfsstat3::NFS3ERR_IO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_map_to_their_nfs_statuses() {
        assert_eq!(errno_status(Errno::ENOENT), nfsstat3::NFS3ERR_NOENT);
        assert_eq!(errno_status(Errno::ENOTEMPTY), nfsstat3::NFS3ERR_NOTEMPTY);
        assert_eq!(errno_status(Errno::ESTALE), nfsstat3::NFS3ERR_STALE);
        assert_eq!(errno_status(Errno::ELOOP), nfsstat3::NFS3ERR_IO);
    }

    #[test]
    fn times_before_1970_show_as_1970() {
        let t = nfstime(Timespec { sec: -5, nsec: 7 });
        assert_eq!((t.seconds, t.nseconds), (0, 7));
        let back = timespec(nfstime3 {
            seconds: 9,
            nseconds: 2_000_000_000,
        });
        assert_eq!((back.sec, back.nsec), (9, 999_999_999));
    }
}
