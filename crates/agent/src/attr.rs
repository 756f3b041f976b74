//! Host `stat`/`statvfs` results to their wire form.

use rustix::fs::{Stat, StatVfs};
use yonder_proto::{Attr, StatFs, Timespec};

// Field widths and signedness of `struct stat` differ between targets
// (`nlink_t` is 32-bit on aarch64, `blksize_t` signed on x86_64, ...), so
// the casts are needed on some targets and no-ops on others.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn attr_from_stat(st: &Stat) -> Attr {
    let rdev = st.st_rdev as rustix::fs::Dev;
    Attr {
        ino: st.st_ino as u64,
        // The type bits are the traditional octal values on every Unix host,
        // which is what the protocol specifies, so the mode passes through.
        mode: st.st_mode as u32,
        nlink: st.st_nlink as u64,
        uid: st.st_uid as u32,
        gid: st.st_gid as u32,
        rdev_major: rustix::fs::major(rdev),
        rdev_minor: rustix::fs::minor(rdev),
        size: st.st_size.max(0) as u64,
        blocks: st.st_blocks.max(0) as u64,
        blksize: st.st_blksize.max(0) as u32,
        atime: timespec(st.st_atime as i64, st.st_atime_nsec as i64),
        mtime: timespec(st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime: timespec(st.st_ctime as i64, st.st_ctime_nsec as i64),
    }
}

fn timespec(sec: i64, nsec: i64) -> Timespec {
    Timespec {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    }
}

#[allow(clippy::unnecessary_cast)]
pub(crate) fn statfs_from_statvfs(st: &StatVfs) -> StatFs {
    StatFs {
        block_size: st.f_bsize as u64,
        fragment_size: st.f_frsize as u64,
        blocks: st.f_blocks as u64,
        blocks_free: st.f_bfree as u64,
        blocks_available: st.f_bavail as u64,
        files: st.f_files as u64,
        files_free: st.f_ffree as u64,
        files_available: st.f_favail as u64,
        name_max: st.f_namemax as u64,
    }
}
