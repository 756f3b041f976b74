//! Host `stat`/`statvfs` results to their wire form.

use rustix::fd::AsFd;
use rustix::fs::{AtFlags, Stat, StatVfs};
use yonder_proto::{Attr, StatFs, Timespec};

/// Attributes of `path` relative to `dirfd`, with the device and, where the
/// file system records it, the birth time that identity needs.
#[cfg(target_os = "linux")]
pub(crate) fn stat_at<P: rustix::path::Arg>(
    dirfd: impl AsFd,
    path: P,
    flags: AtFlags,
) -> rustix::io::Result<Attr> {
    use rustix::fs::StatxFlags;
    let stx = rustix::fs::statx(dirfd, path, flags, StatxFlags::BASIC_STATS | StatxFlags::BTIME)?;
    Ok(attr_from_statx(&stx))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn stat_at<P: rustix::path::Arg>(
    dirfd: impl AsFd,
    path: P,
    flags: AtFlags,
) -> rustix::io::Result<Attr> {
    rustix::fs::statat(dirfd, path, flags).map(|st| attr_from_stat(&st))
}

/// Attributes of an open file.
pub(crate) fn stat_fd(fd: impl AsFd) -> rustix::io::Result<Attr> {
    #[cfg(target_os = "linux")]
    {
        stat_at(fd, "", AtFlags::EMPTY_PATH)
    }
    #[cfg(not(target_os = "linux"))]
    {
        rustix::fs::fstat(fd).map(|st| attr_from_stat(&st))
    }
}

#[cfg(target_os = "linux")]
fn attr_from_statx(st: &rustix::fs::Statx) -> Attr {
    use rustix::fs::StatxFlags;
    let ts = |t: &rustix::fs::StatxTimestamp| timespec(t.tv_sec, t.tv_nsec as i64);
    let btime = StatxFlags::from_bits_retain(st.stx_mask)
        .contains(StatxFlags::BTIME)
        .then(|| ts(&st.stx_btime));
    Attr {
        ino: st.stx_ino,
        mode: st.stx_mode as u32,
        nlink: st.stx_nlink as u64,
        uid: st.stx_uid,
        gid: st.stx_gid,
        rdev_major: st.stx_rdev_major,
        rdev_minor: st.stx_rdev_minor,
        size: st.stx_size,
        blocks: st.stx_blocks,
        blksize: st.stx_blksize,
        atime: ts(&st.stx_atime),
        mtime: ts(&st.stx_mtime),
        ctime: ts(&st.stx_ctime),
        dev: (u64::from(st.stx_dev_major) << 32) | u64::from(st.stx_dev_minor),
        btime,
    }
}

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
        dev: st.st_dev as u64,
        btime: None,
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
