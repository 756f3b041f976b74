//! Portable errno numbering.
//!
//! Errno values differ between operating systems (ENOTEMPTY is 39 on Linux and
//! 66 on macOS), so the wire carries a fixed protocol numbering. The numbering
//! happens to equal Linux's for the values listed here, which keeps packet
//! dumps readable; it is nonetheless a protocol constant, and every host maps
//! to and from it through `libc` constants.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An error number in the protocol's fixed numbering.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Errno(pub u16);

/// The host's errno values, as `libc` names them. The BSDs and macOS say a
/// missing extended attribute with ENOATTR where Linux says ENODATA (Linux's
/// ENOATTR is ENODATA; FreeBSD has no ENODATA at all), so the protocol's
/// ENODATA is ENOATTR there.
mod host {
    pub use libc::*;
    #[cfg(any(target_os = "macos", target_os = "freebsd"))]
    pub const ENODATA: i32 = libc::ENOATTR;
    // Windows's C runtime numbers no stale handle and no quota: the
    // protocol's two are EIO there, which is what a Windows caller of
    // `to_host` can report of them (`from_host` never yields them).
    #[cfg(windows)]
    pub const ESTALE: i32 = libc::EIO;
    #[cfg(windows)]
    pub const EDQUOT: i32 = libc::EIO;
}

macro_rules! errnos {
    ($($name:ident = $wire:literal => $host:ident,)*) => {
        impl Errno {
            $(pub const $name: Errno = Errno($wire);)*

            /// Maps a host errno (as seen in `std::io::Error::raw_os_error`)
            /// to the protocol numbering. Unknown values become EIO.
            pub fn from_host(host: i32) -> Errno {
                $(if host == host::$host { return Errno::$name; })*
                Errno::EIO
            }

            /// Maps to the host's errno value.
            pub fn to_host(self) -> i32 {
                match self.0 {
                    $($wire => host::$host,)*
                    _ => libc::EIO,
                }
            }

            /// Symbolic name, e.g. `"ENOENT"`.
            pub fn name(self) -> &'static str {
                match self.0 {
                    $($wire => stringify!($name),)*
                    _ => "EUNKNOWN",
                }
            }

            /// Every errno the protocol knows.
            pub const ALL: &'static [Errno] = &[$(Errno::$name,)*];
        }
    };
}

errnos! {
    EPERM = 1 => EPERM,
    ENOENT = 2 => ENOENT,
    ESRCH = 3 => ESRCH,
    EINTR = 4 => EINTR,
    EIO = 5 => EIO,
    ENXIO = 6 => ENXIO,
    E2BIG = 7 => E2BIG,
    EBADF = 9 => EBADF,
    EAGAIN = 11 => EAGAIN,
    ENOMEM = 12 => ENOMEM,
    EACCES = 13 => EACCES,
    EFAULT = 14 => EFAULT,
    EBUSY = 16 => EBUSY,
    EEXIST = 17 => EEXIST,
    EXDEV = 18 => EXDEV,
    ENODEV = 19 => ENODEV,
    ENOTDIR = 20 => ENOTDIR,
    EISDIR = 21 => EISDIR,
    EINVAL = 22 => EINVAL,
    ENFILE = 23 => ENFILE,
    EMFILE = 24 => EMFILE,
    ENOTTY = 25 => ENOTTY,
    ETXTBSY = 26 => ETXTBSY,
    EFBIG = 27 => EFBIG,
    ENOSPC = 28 => ENOSPC,
    ESPIPE = 29 => ESPIPE,
    EROFS = 30 => EROFS,
    EMLINK = 31 => EMLINK,
    EPIPE = 32 => EPIPE,
    ERANGE = 34 => ERANGE,
    EDEADLK = 35 => EDEADLK,
    ENAMETOOLONG = 36 => ENAMETOOLONG,
    ENOLCK = 37 => ENOLCK,
    ENOSYS = 38 => ENOSYS,
    ENOTEMPTY = 39 => ENOTEMPTY,
    ELOOP = 40 => ELOOP,
    ENODATA = 61 => ENODATA,
    EOVERFLOW = 75 => EOVERFLOW,
    EPROTO = 71 => EPROTO,
    EILSEQ = 84 => EILSEQ,
    EOPNOTSUPP = 95 => EOPNOTSUPP,
    ECONNRESET = 104 => ECONNRESET,
    ENOTCONN = 107 => ENOTCONN,
    ETIMEDOUT = 110 => ETIMEDOUT,
    ESTALE = 116 => ESTALE,
    EDQUOT = 122 => EDQUOT,
    ECANCELED = 125 => ECANCELED,
}

impl Errno {
    /// The host's description of this error, e.g. "No such file or directory".
    #[cfg(unix)]
    pub fn description(self) -> String {
        std::io::Error::from_raw_os_error(self.to_host())
            .to_string()
            .split(" (os error")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// The description of this error: Windows's `std::io::Error` speaks
    /// Win32 error codes, not the C runtime's errno, so the host has no
    /// message for these numbers. The words are glibc's, whose numbering
    /// the protocol's is.
    #[cfg(windows)]
    pub fn description(self) -> String {
        let words = match self {
            Errno::EPERM => "Operation not permitted",
            Errno::ENOENT => "No such file or directory",
            Errno::ESRCH => "No such process",
            Errno::EINTR => "Interrupted system call",
            Errno::EIO => "Input/output error",
            Errno::ENXIO => "No such device or address",
            Errno::E2BIG => "Argument list too long",
            Errno::EBADF => "Bad file descriptor",
            Errno::EAGAIN => "Resource temporarily unavailable",
            Errno::ENOMEM => "Cannot allocate memory",
            Errno::EACCES => "Permission denied",
            Errno::EFAULT => "Bad address",
            Errno::EBUSY => "Device or resource busy",
            Errno::EEXIST => "File exists",
            Errno::EXDEV => "Invalid cross-device link",
            Errno::ENODEV => "No such device",
            Errno::ENOTDIR => "Not a directory",
            Errno::EISDIR => "Is a directory",
            Errno::EINVAL => "Invalid argument",
            Errno::ENFILE => "Too many open files in system",
            Errno::EMFILE => "Too many open files",
            Errno::ENOTTY => "Inappropriate ioctl for device",
            Errno::ETXTBSY => "Text file busy",
            Errno::EFBIG => "File too large",
            Errno::ENOSPC => "No space left on device",
            Errno::ESPIPE => "Illegal seek",
            Errno::EROFS => "Read-only file system",
            Errno::EMLINK => "Too many links",
            Errno::EPIPE => "Broken pipe",
            Errno::ERANGE => "Numerical result out of range",
            Errno::EDEADLK => "Resource deadlock avoided",
            Errno::ENAMETOOLONG => "File name too long",
            Errno::ENOLCK => "No locks available",
            Errno::ENOSYS => "Function not implemented",
            Errno::ENOTEMPTY => "Directory not empty",
            Errno::ELOOP => "Too many levels of symbolic links",
            Errno::ENODATA => "No data available",
            Errno::EOVERFLOW => "Value too large for defined data type",
            Errno::EPROTO => "Protocol error",
            Errno::EILSEQ => "Invalid or incomplete multibyte or wide character",
            Errno::EOPNOTSUPP => "Operation not supported",
            Errno::ECONNRESET => "Connection reset by peer",
            Errno::ENOTCONN => "Transport endpoint is not connected",
            Errno::ETIMEDOUT => "Connection timed out",
            Errno::ESTALE => "Stale file handle",
            Errno::EDQUOT => "Disk quota exceeded",
            Errno::ECANCELED => "Operation canceled",
            _ => return format!("Unknown error {}", self.0),
        };
        words.to_string()
    }

    /// Errno of an I/O error, EIO when it carries none.
    pub fn from_io(err: &std::io::Error) -> Errno {
        #[cfg(unix)]
        if let Some(code) = err.raw_os_error() {
            return Errno::from_host(code);
        }
        use std::io::ErrorKind as K;
        match err.kind() {
            K::NotFound => Errno::ENOENT,
            K::PermissionDenied => Errno::EACCES,
            K::AlreadyExists => Errno::EEXIST,
            K::InvalidInput => Errno::EINVAL,
            K::TimedOut => Errno::ETIMEDOUT,
            K::Unsupported => Errno::EOPNOTSUPP,
            #[cfg(windows)]
            kind => Errno::from_kind(kind),
            #[cfg(not(windows))]
            _ => Errno::EIO,
        }
    }

    /// On Windows the raw code of an I/O error is a Win32 error, not an
    /// errno: only the kind std derives from it says what happened.
    #[cfg(windows)]
    fn from_kind(kind: std::io::ErrorKind) -> Errno {
        use std::io::ErrorKind as K;
        match kind {
            K::NotFound => Errno::ENOENT,
            K::PermissionDenied => Errno::EACCES,
            K::AlreadyExists => Errno::EEXIST,
            K::InvalidInput => Errno::EINVAL,
            K::TimedOut => Errno::ETIMEDOUT,
            K::Unsupported => Errno::EOPNOTSUPP,
            K::DirectoryNotEmpty => Errno::ENOTEMPTY,
            K::NotADirectory => Errno::ENOTDIR,
            K::IsADirectory => Errno::EISDIR,
            K::ReadOnlyFilesystem => Errno::EROFS,
            K::StorageFull => Errno::ENOSPC,
            K::QuotaExceeded => Errno::EDQUOT,
            K::FileTooLarge => Errno::EFBIG,
            K::ResourceBusy => Errno::EBUSY,
            K::ExecutableFileBusy => Errno::ETXTBSY,
            K::CrossesDevices => Errno::EXDEV,
            K::TooManyLinks => Errno::EMLINK,
            K::InvalidFilename => Errno::ENAMETOOLONG,
            K::StaleNetworkFileHandle => Errno::ESTALE,
            K::NotSeekable => Errno::ESPIPE,
            K::Interrupted => Errno::EINTR,
            K::WouldBlock => Errno::EAGAIN,
            K::BrokenPipe => Errno::EPIPE,
            K::ConnectionReset => Errno::ECONNRESET,
            K::NotConnected => Errno::ENOTCONN,
            K::OutOfMemory => Errno::ENOMEM,
            K::Deadlock => Errno::EDEADLK,
            _ => Errno::EIO,
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_mapping_round_trips_every_known_errno() {
        for &e in Errno::ALL {
            // Windows's C runtime has no ESTALE or EDQUOT (see `host`).
            #[cfg(windows)]
            if e == Errno::ESTALE || e == Errno::EDQUOT {
                continue;
            }
            assert_eq!(Errno::from_host(e.to_host()), e, "{e:?}");
        }
    }

    #[test]
    fn unknown_values_become_eio() {
        assert_eq!(Errno::from_host(100_000), Errno::EIO);
        assert_eq!(Errno(9999).to_host(), libc::EIO);
    }

    #[test]
    #[cfg(unix)]
    fn description_is_strerror() {
        assert_eq!(Errno::ENOENT.description(), "No such file or directory");
    }
}
