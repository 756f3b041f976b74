//! Conversions from host `open(2)` flags to the protocol's portable ones.

use yonder_proto::open_flags as of;

/// Maps host `O_*` flags to [`yonder_proto::open_flags`]. Flags without a
/// protocol equivalent (O_CLOEXEC, O_NOCTTY, O_LARGEFILE, ...) concern only
/// the local descriptor and are dropped.
pub fn open_flags_from_host(flags: i32) -> u32 {
    let mut out = match flags & libc::O_ACCMODE {
        libc::O_WRONLY => of::WRITE_ONLY,
        libc::O_RDWR => of::READ_WRITE,
        _ => of::READ_ONLY,
    };
    let map = [
        (libc::O_CREAT, of::CREATE),
        (libc::O_EXCL, of::EXCLUSIVE),
        (libc::O_TRUNC, of::TRUNCATE),
        (libc::O_APPEND, of::APPEND),
        (libc::O_NOFOLLOW, of::NOFOLLOW),
        (libc::O_DIRECTORY, of::DIRECTORY),
        (libc::O_DSYNC, of::DSYNC),
        (libc::O_NONBLOCK, of::NONBLOCK),
        (libc::O_NOATIME, of::NOATIME),
    ];
    for (host, proto) in map {
        if flags & host != 0 {
            out |= proto;
        }
    }
    // O_SYNC includes the O_DSYNC bit on Linux.
    if flags & libc::O_SYNC == libc::O_SYNC {
        out |= of::SYNC;
        out &= !of::DSYNC;
    }
    out
}

/// Whether protocol flags allow writing.
pub fn writes(flags: u32) -> bool {
    matches!(flags & of::ACCESS_MASK, of::WRITE_ONLY | of::READ_WRITE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_access_mode_and_flags() {
        assert_eq!(open_flags_from_host(libc::O_RDONLY), of::READ_ONLY);
        assert_eq!(
            open_flags_from_host(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC),
            of::WRITE_ONLY | of::CREATE | of::EXCLUSIVE
        );
        assert_eq!(
            open_flags_from_host(libc::O_RDWR | libc::O_APPEND),
            of::READ_WRITE | of::APPEND
        );
        assert_eq!(
            open_flags_from_host(libc::O_WRONLY | libc::O_SYNC),
            of::WRITE_ONLY | of::SYNC
        );
        assert_eq!(
            open_flags_from_host(libc::O_WRONLY | libc::O_DSYNC),
            of::WRITE_ONLY | of::DSYNC
        );
        assert!(writes(of::READ_WRITE | of::APPEND));
        assert!(!writes(of::READ_ONLY | of::TRUNCATE));
    }
}
