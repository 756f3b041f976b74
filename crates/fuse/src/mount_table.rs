//! The system's mount table (/proc/self/mountinfo) and `fusermount3`:
//! finding a mount, unmounting by path, and the per-mount readahead knob.
//! All three are Linux's: elsewhere the mount table cannot be read (an
//! error that says so), unmounting is the OS's `umount`, and the readahead
//! stays the kernel's.

use crate::FuseError;
use std::io;
use std::path::Path;

/// Unmounts a yonder (or any FUSE) mount by path, as `yonder unmount` does;
/// `lazy` detaches it even while busy.
pub fn unmount(mountpoint: &Path, lazy: bool) -> Result<(), FuseError> {
    // fusermount3 says nothing useful about this case.
    if is_mount_point(mountpoint) == Some(false) {
        return Err(FuseError::Unmount {
            path: mountpoint.to_path_buf(),
            reason: "not mounted".into(),
        });
    }
    fusermount_unmount(mountpoint, lazy)
}

/// What is mounted at a path: its file system type and source as the mount
/// table shows them (`fuse.yonder`, `user@host:/srv`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountedAt {
    pub fs_type: String,
    pub source: String,
}

/// The file system mounted at `path` (the topmost, if several are stacked
/// there), or `None` if nothing is or the mount table cannot be read.
pub fn mounted_at(path: &Path) -> Option<MountedAt> {
    let entry = mount_entry(path).ok()??;
    Some(MountedAt {
        fs_type: unescape(entry.field_after_separator(0)?),
        source: unescape(entry.field_after_separator(1)?),
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `fusermount3 -u` (`-z` if `lazy`), falling back to `fusermount`.
#[cfg(target_os = "linux")]
pub(crate) fn fusermount_unmount(mountpoint: &Path, lazy: bool) -> Result<(), FuseError> {
    let mut last = String::new();
    for tool in ["fusermount3", "fusermount"] {
        let mut cmd = std::process::Command::new(tool);
        // Not -q, which also silences why an unmount failed (busy).
        cmd.arg("-u");
        if lazy {
            cmd.arg("-z");
        }
        match cmd.arg("--").arg(mountpoint).output() {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => {
                last = String::from_utf8_lossy(&out.stderr).trim().to_string();
                if last.is_empty() {
                    last = format!("{tool} exited with {}", out.status);
                }
                break;
            }
            Err(e) => last = format!("{tool}: {e}"),
        }
    }
    Err(FuseError::Unmount {
        path: mountpoint.to_path_buf(),
        reason: last,
    })
}

/// Windows has no FUSE mounts to unmount.
#[cfg(windows)]
pub(crate) fn fusermount_unmount(mountpoint: &Path, _lazy: bool) -> Result<(), FuseError> {
    Err(FuseError::Unmount {
        path: mountpoint.to_path_buf(),
        reason: "FUSE mounts are not supported on windows".into(),
    })
}

/// The OS's `umount` (`-f` if `lazy`: macOS and the BSDs have no lazy
/// unmount), as macFUSE and FreeBSD's fusefs document; there is no
/// fusermount3 there.
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn fusermount_unmount(mountpoint: &Path, lazy: bool) -> Result<(), FuseError> {
    let mut cmd = std::process::Command::new("umount");
    if lazy {
        cmd.arg("-f");
    }
    let reason = match cmd.arg(mountpoint).output() {
        Ok(out) if out.status.success() => return Ok(()),
        Ok(out) => match String::from_utf8_lossy(&out.stderr).trim() {
            "" => format!("umount exited with {}", out.status),
            said => said.to_string(),
        },
        Err(e) => format!("umount: {e}"),
    };
    Err(FuseError::Unmount {
        path: mountpoint.to_path_buf(),
        reason,
    })
}

/// The mount table, in /proc/self/mountinfo's format.
#[cfg(target_os = "linux")]
fn mountinfo() -> io::Result<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
}

/// Other systems have getmntinfo(3) instead, not read here yet: callers
/// treat the table as unreadable.
#[cfg(not(target_os = "linux"))]
fn mountinfo() -> io::Result<String> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "reading the mount table (/proc/self/mountinfo) is not supported on {}",
            std::env::consts::OS
        ),
    ))
}

/// Whether `path` is a mount point (`None` if the mount table cannot be
/// read). Not by stat: a dead FUSE mount answers ENOTCONN.
pub(crate) fn is_mount_point(path: &Path) -> Option<bool> {
    mount_entry(path).ok().map(|entry| entry.is_some())
}

/// One line of /proc/self/mountinfo.
#[derive(Clone, Debug)]
pub(crate) struct MountEntry {
    line: String,
}

impl MountEntry {
    /// The mounted file system's device, `major:minor`: what tells two
    /// mounts at one path apart.
    pub(crate) fn device(&self) -> Option<&str> {
        self.line.split(' ').nth(2)
    }

    /// The `n`th field after the ` - ` that ends the optional fields: file
    /// system type (0), source (1), super block options (2).
    fn field_after_separator(&self, n: usize) -> Option<&str> {
        let (_, rest) = self.line.split_once(" - ")?;
        rest.split(' ').nth(n)
    }
}

/// The mount at `path` (the topmost, if several are stacked there).
pub(crate) fn mount_entry(path: &Path) -> io::Result<Option<MountEntry>> {
    let info = mountinfo()?;
    // The path as given (made absolute) and with its directory resolved, as
    // fusermount3 would; mountinfo escapes space, tab, newline, backslash.
    let absolute = std::path::absolute(path)?;
    let resolved = match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => dir
            .canonicalize()
            .map(|d| d.join(name))
            .unwrap_or_else(|_| absolute.clone()),
        _ => absolute.clone(),
    };
    let candidates = [escape(&absolute), escape(&resolved)];
    Ok(info
        .lines()
        .rev()
        .find(|line| {
            line.split(' ')
                .nth(4)
                .is_some_and(|mount_point| candidates.iter().any(|c| c == mount_point))
        })
        .map(|line| MountEntry {
            line: line.to_string(),
        }))
}

/// Whether a file system of device `device` (`major:minor`) is mounted
/// at `path`, a canonical path (`None` if the mount table cannot be read).
/// Both, because the kernel hands a FUSE mount's device number to the
/// next FUSE mount as soon as the first is unmounted: the device alone
/// may name another process's new mount elsewhere.
#[cfg(unix)]
pub(crate) fn device_is_mounted(device: &str, path: &Path) -> Option<bool> {
    let info = mountinfo().ok()?;
    let path = escape(path);
    Some(info.lines().any(|line| {
        let mut fields = line.split(' ');
        fields.nth(2) == Some(device) && fields.nth(1) == Some(path.as_str())
    }))
}

/// A path as mountinfo writes it: space, tab, newline and backslash escaped.
fn escape(p: &Path) -> String {
    p.to_string_lossy()
        .replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012")
}

/// The kernel offers FUSE mounts a 128 KiB readahead window and lets the
/// file system only lower it at init; sequential reads then arrive as
/// 128 KiB requests. Root may widen the window through sysfs afterwards, to
/// the largest request size (wider windows measured slower).
#[cfg(target_os = "linux")]
pub(crate) fn raise_readahead(device: &str, kib: u32) {
    let knob = format!("/sys/class/bdi/{device}/read_ahead_kb");
    if let Err(e) = std::fs::write(&knob, kib.to_string()) {
        tracing::debug!("readahead stays at the kernel's default ({knob}: {e})");
    }
}

/// Linux's sysfs knob has no counterpart elsewhere.
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) fn raise_readahead(_device: &str, _kib: u32) {
    tracing::debug!(
        "readahead stays at the kernel's default (no read_ahead_kb knob on {})",
        std::env::consts::OS
    );
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_found_in_the_mount_table() {
        assert_eq!(is_mount_point(Path::new("/proc")), Some(true));
        assert_eq!(is_mount_point(Path::new("/proc/../proc")), Some(true));
        let proc = mount_entry(Path::new("/proc")).unwrap().unwrap();
        assert_eq!(
            device_is_mounted(proc.device().unwrap(), Path::new("/proc")),
            Some(true)
        );
        assert_eq!(
            device_is_mounted(proc.device().unwrap(), Path::new("/tmp")),
            Some(false)
        );
        assert_eq!(device_is_mounted("4095:1048575", Path::new("/proc")), Some(false));
        let what = mounted_at(Path::new("/proc")).unwrap();
        assert_eq!((what.fs_type.as_str(), what.source.as_str()), ("proc", "proc"));
        assert_eq!(unescape(r"a\040b\\c\134"), r"a b\\c\");
        let dir = tempfile::tempdir().unwrap();
        let spaced = dir.path().join("a b");
        std::fs::create_dir(&spaced).unwrap();
        assert_eq!(is_mount_point(&spaced), Some(false));
        assert_eq!(mounted_at(&spaced), None);
        let err = unmount(&spaced, false).unwrap_err();
        assert!(err.to_string().contains("not mounted"), "{err}");
    }
}
