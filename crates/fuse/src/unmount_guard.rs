//! [`UnmountGuard`]: a helper process that unmounts what a killed mount
//! process left behind, where `fusermount3`'s own auto-unmount gives up.
//!
//! `fusermount3 -o auto_unmount` waits for the mounting process's end of a
//! socket to close, then looks once: it unmounts only if opening the mount
//! point fails with ENOTCONN. A process killed with SIGKILL releases its
//! files in the reverse order of their descriptor numbers, and `fuser`'s
//! socket comes after the FUSE device: the socket closes first. On a
//! loaded machine `fusermount3` can look before the device is released,
//! when its open is still queued to the dead process and fails with
//! ECONNABORTED instead, and then leaves the mount in place, answering
//! ENOTCONN to everyone until someone unmounts it by hand.
//!
//! The guard is told each mount (its path and device) and each clean
//! unmount over a pipe. When the pipe closes (the mount process ended),
//! it watches every mount it was not told is gone until the mount has
//! left the mount table, has been replaced by another, or answers ENOTCONN
//! (its process is gone for good), and unmounts it in that last case
//! only. A mount that keeps answering is never touched.
//!
//! Architecture invariant: the guard unmounts nothing that answers
//! requests; it acts only on the device it was told of, at its path.

use crate::mount_table::{fusermount_unmount, mount_entry};
#[cfg(unix)]
use std::io::Write;
use std::io::{self, BufRead};
#[cfg(unix)]
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the guard watches a mount after its process ended: the FUSE
/// device is released within moments of the process's end, unless a
/// process it started still holds it.
const WATCH_FOR: Duration = Duration::from_secs(30);

/// The handle on a running guard process, shared by every mount of one
/// process. Dropping it ends the guard once its mounts are checked.
#[derive(Debug)]
pub struct UnmountGuard {
    pipe: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

impl UnmountGuard {
    /// Starts the guard: `command` must run [`serve`] with its standard
    /// input (the caller's own binary, typically). The guard gets a
    /// process group of its own, so that a Ctrl+C at the terminal, meant
    /// for the mount process, does not end it.
    pub fn spawn(mut command: Command) -> io::Result<UnmountGuard> {
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        // Windows's process group, out of the console's Ctrl+C.
        #[cfg(windows)]
        std::os::windows::process::CommandExt::creation_flags(&mut command, 0x0000_0200);
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::null()).spawn()?;
        let pipe = child.stdin.take();
        Ok(UnmountGuard {
            pipe: Mutex::new(pipe),
            child: Mutex::new(child),
        })
    }

    /// Tells the guard about a new mount of `device` (`major:minor`) at
    /// `mountpoint` (canonical).
    #[cfg(unix)]
    pub(crate) fn watch(&self, mountpoint: &Path, device: &str) {
        self.send(&format!("watch {device} {}\n", hex(mountpoint)));
    }

    /// Tells the guard that the mount at `mountpoint` was unmounted by its
    /// process: nothing to watch there.
    #[cfg(unix)]
    pub(crate) fn release(&self, mountpoint: &Path) {
        self.send(&format!("release {}\n", hex(mountpoint)));
    }

    #[cfg(unix)]
    fn send(&self, line: &str) {
        let mut pipe = self.pipe.lock().unwrap_or_else(|e| e.into_inner());
        let Some(writer) = pipe.as_mut() else { return };
        if let Err(e) = writer.write_all(line.as_bytes()) {
            tracing::debug!("unmount guard gone ({e}): a mount left by a killed process may stay");
            *pipe = None;
        }
    }
}

impl Drop for UnmountGuard {
    fn drop(&mut self) {
        // Closing the pipe is the guard's signal. Not waited for: it may
        // watch a mount still detaching for a while, and this process is
        // ending (it outlives nothing it guards).
        self.pipe.lock().unwrap_or_else(|e| e.into_inner()).take();
        let _ = self.child.lock().unwrap_or_else(|e| e.into_inner()).try_wait();
    }
}

/// The guard process's work: reads what the mount process says from
/// `input` until it closes, then watches each mount left, in parallel, and
/// returns once each is settled (gone, replaced, or unmounted here).
pub fn serve(input: impl BufRead) -> io::Result<()> {
    let watchers: Vec<_> = mounts_left(input)?
        .into_iter()
        .map(|(path, device)| std::thread::spawn(move || settle(&path, &device)))
        .collect();
    for watcher in watchers {
        let _ = watcher.join();
    }
    Ok(())
}

/// The mounts (path, device) that `input` announced and did not release
/// by the time it closed.
fn mounts_left(input: impl BufRead) -> io::Result<Vec<(PathBuf, String)>> {
    let mut mounts: Vec<(PathBuf, String)> = Vec::new();
    for line in input.split(b'\n') {
        let line = line?;
        let line = String::from_utf8_lossy(&line);
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("watch"), Some(device), Some(path)) => {
                if let Some(path) = unhex(path) {
                    mounts.retain(|(p, _)| *p != path);
                    mounts.push((path, device.to_string()));
                }
            }
            (Some("release"), Some(path), None) => {
                if let Some(path) = unhex(path) {
                    mounts.retain(|(p, _)| *p != path);
                }
            }
            _ => tracing::debug!("unmount guard: ignored {line:?}"),
        }
    }
    Ok(mounts)
}

/// Watches the mount of `device` at `path` until it is gone, replaced, or
/// dead (then unmounts it).
fn settle(path: &Path, device: &str) {
    let until = Instant::now() + WATCH_FOR;
    while Instant::now() < until {
        match mount_entry(path) {
            Ok(Some(top)) if top.device() == Some(device) => {}
            // Unmounted (by fusermount3, most often), or another mount is
            // on top now: not this guard's business.
            _ => return,
        }
        if answers_enotconn(path) {
            match fusermount_unmount(path, true) {
                Ok(()) => eprintln!(
                    "yonder: unmounted {}: the process serving it ended without unmounting it",
                    path.display()
                ),
                Err(e) => eprintln!("yonder: {e}"),
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the mount at `path` has lost its process for good: the kernel
/// answers ENOTCONN (ECONNABORTED for a request caught in the teardown).
/// A stat that waits (the device still open somewhere) is not an answer:
/// it runs on a thread of its own and is looked at for a moment only.
fn answers_enotconn(path: &Path) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::metadata(&path).err().and_then(|e| e.raw_os_error()));
    });
    matches!(
        rx.recv_timeout(Duration::from_millis(500)),
        Ok(Some(libc::ENOTCONN | libc::ECONNABORTED))
    )
}

// Only a FUSE session (Unix) tells the guard of mounts.
#[cfg(unix)]
fn hex(path: &Path) -> String {
    path.as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unhex(text: &str) -> Option<PathBuf> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let decoded = bytes
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    #[cfg(unix)]
    return Some(PathBuf::from(std::ffi::OsString::from_vec(decoded)));
    // Windows paths are UTF-16: their UTF-8 form would travel.
    #[cfg(windows)]
    return String::from_utf8(decoded).ok().map(PathBuf::from);
}

// What a FUSE session tells the guard: Unix only.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn paths_cross_the_pipe_byte_for_byte() {
        let odd = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/a b\n\xff/\\c"));
        assert_eq!(unhex(&hex(odd)).as_deref(), Some(odd));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn the_guard_watches_what_was_mounted_and_not_released() {
        let (a, b) = (Path::new("/mnt/a"), Path::new("/mnt/b"));
        let input = format!(
            "watch 0:41 {a}\nwatch 0:42 {b}\nrelease {a}\nnonsense\nwatch 0:43 {b}\n",
            a = hex(a),
            b = hex(b)
        );
        let left = mounts_left(io::Cursor::new(input)).unwrap();
        assert_eq!(left, vec![(b.to_path_buf(), "0:43".to_string())]);
    }

    #[test]
    fn a_mount_of_another_device_is_left_alone() {
        // /proc is mounted, but not as this device: settled at once,
        // without an unmount.
        settle(Path::new("/proc"), "4095:1048575");
        assert!(mount_entry(Path::new("/proc")).unwrap().is_some());
    }
}
