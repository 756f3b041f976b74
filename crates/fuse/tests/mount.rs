//! Real FUSE mounts of a temporary directory through the in-process
//! `LocalRemote`. Every test checks through the mount and directly on the
//! backing directory.

use rustix::fs::{self as rfs, AtFlags, Mode, Timespec, Timestamps, XattrFlags, CWD};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use yonder_fuse::{MountOptions, MountSession};
use yonder_vfs::testing::LocalRemote;
use yonder_vfs::Errno;

struct Mounted {
    session: Option<MountSession>,
    remote: Arc<LocalRemote>,
    // Dropped after the session: the runtime serves it, the directories hold it.
    _rt: tokio::runtime::Runtime,
    backing: tempfile::TempDir,
    mnt: tempfile::TempDir,
}

impl Mounted {
    fn new() -> Mounted {
        Mounted::with(MountOptions::default())
    }

    fn with(opts: MountOptions) -> Mounted {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let backing = tempfile::tempdir().unwrap();
        let mnt = tempfile::tempdir().unwrap();
        let remote = LocalRemote::new(backing.path());
        let session = yonder_fuse::mount(remote.clone(), rt.handle().clone(), mnt.path(), &opts).unwrap();
        Mounted {
            session: Some(session),
            remote,
            _rt: rt,
            backing,
            mnt,
        }
    }

    /// Path through the mount.
    fn m(&self, rel: &str) -> PathBuf {
        self.mnt.path().join(rel)
    }

    /// Path in the backing directory.
    fn b(&self, rel: &str) -> PathBuf {
        self.backing.path().join(rel)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            session.unmount().unwrap();
        }
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

#[test]
fn create_write_read_append_truncate_exclusive() {
    let t = Mounted::new();
    fs::write(t.m("f"), b"hello").unwrap();
    assert_eq!(fs::read(t.b("f")).unwrap(), b"hello");
    assert_eq!(fs::read(t.m("f")).unwrap(), b"hello");

    let mut f = OpenOptions::new().append(true).open(t.m("f")).unwrap();
    f.write_all(b" world").unwrap();
    drop(f);
    assert_eq!(fs::read(t.b("f")).unwrap(), b"hello world");
    assert_eq!(fs::metadata(t.m("f")).unwrap().len(), 11);

    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(t.m("f"))
        .unwrap();
    f.write_all(b"x").unwrap();
    drop(f);
    assert_eq!(fs::read(t.b("f")).unwrap(), b"x");
    assert_eq!(fs::read(t.m("f")).unwrap(), b"x");

    let err = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(t.m("f"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(t.m("g"))
        .unwrap();
    assert!(t.b("g").exists());

    // ftruncate through the handle, growing and shrinking.
    let f = OpenOptions::new().write(true).open(t.m("g")).unwrap();
    f.set_len(4096).unwrap();
    assert_eq!(fs::metadata(t.b("g")).unwrap().len(), 4096);
    f.set_len(3).unwrap();
    drop(f);
    assert_eq!(fs::read(t.m("g")).unwrap(), vec![0; 3]);
}

#[test]
fn small_writes_are_coalesced_and_large_files_round_trip() {
    let t = Mounted::new();
    let mut f = File::create(t.m("small")).unwrap();
    for i in 0..1000u32 {
        f.write_all(&[(i % 256) as u8; 100]).unwrap();
    }
    drop(f);
    let writes = t.remote.calls.writes.load(Ordering::Relaxed);
    assert!(writes <= 4, "{writes} remote writes for 1000 small ones");
    let expect: Vec<u8> = (0..1000u32).flat_map(|i| [(i % 256) as u8; 100]).collect();
    assert_eq!(fs::read(t.b("small")).unwrap(), expect);

    let big: Vec<u8> = (0..(9 << 20))
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    fs::write(t.m("big"), &big).unwrap();
    assert!(fs::read(t.b("big")).unwrap() == big);
    let before = t.remote.calls.reads.load(Ordering::Relaxed);
    assert!(fs::read(t.m("big")).unwrap() == big);
    let reads = t.remote.calls.reads.load(Ordering::Relaxed) - before;
    assert!(reads <= 24, "{reads} remote reads for 9 MiB");
}

#[test]
fn rename_over_existing_and_rename_flags() {
    let t = Mounted::new();
    fs::write(t.m("a"), b"A").unwrap();
    fs::write(t.m("b"), b"B").unwrap();
    fs::rename(t.m("a"), t.m("b")).unwrap();
    assert!(!t.m("a").exists() && !t.b("a").exists());
    assert_eq!(fs::read(t.m("b")).unwrap(), b"A");
    assert_eq!(fs::read(t.b("b")).unwrap(), b"A");

    fs::write(t.m("c"), b"C").unwrap();
    let err = rfs::renameat_with(CWD, t.m("c"), CWD, t.m("b"), rfs::RenameFlags::NOREPLACE).unwrap_err();
    assert_eq!(err, rustix::io::Errno::EXIST);
    rfs::renameat_with(CWD, t.m("c"), CWD, t.m("b"), rfs::RenameFlags::EXCHANGE).unwrap();
    assert_eq!(fs::read(t.m("b")).unwrap(), b"C");
    assert_eq!(fs::read(t.m("c")).unwrap(), b"A");
    assert_eq!(fs::read(t.b("b")).unwrap(), b"C");
    assert_eq!(fs::read(t.b("c")).unwrap(), b"A");
}

#[test]
fn renaming_a_directory_keeps_open_files_beneath_it_working() {
    let t = Mounted::new();
    fs::create_dir_all(t.m("d/sub")).unwrap();
    let mut f = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(t.m("d/sub/f"))
        .unwrap();
    f.write_all(b"before ").unwrap();
    fs::rename(t.m("d"), t.m("e")).unwrap();
    f.write_all(b"after").unwrap();
    f.sync_all().unwrap();
    assert_eq!(fs::read(t.b("e/sub/f")).unwrap(), b"before after");
    assert_eq!(f.metadata().unwrap().len(), 12);
    f.set_permissions(fs::Permissions::from_mode(0o600)).unwrap();
    drop(f);
    assert_eq!(fs::metadata(t.b("e/sub/f")).unwrap().mode() & 0o777, 0o600);
    assert_eq!(fs::read(t.m("e/sub/f")).unwrap(), b"before after");
    assert!(!t.m("d").exists());
}

#[test]
fn unlinked_open_files_stay_usable_until_closed() {
    let t = Mounted::new();
    let mut f = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(t.m("f"))
        .unwrap();
    f.write_all(b"data").unwrap();
    fs::remove_file(t.m("f")).unwrap();
    assert!(!t.b("f").exists());
    assert!(!t.m("f").exists());
    f.write_all(b" more").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "data more");
    let meta = f.metadata().unwrap();
    assert_eq!((meta.len(), meta.nlink()), (9, 0));
    f.set_len(4).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 4);
    drop(f);
    assert_eq!(fs::read_dir(t.m("")).unwrap().count(), 0);
}

#[test]
fn hard_links_share_inode_and_count_links() {
    let t = Mounted::new();
    fs::write(t.m("a"), b"x").unwrap();
    fs::hard_link(t.m("a"), t.m("b")).unwrap();
    let (ma, mb) = (fs::metadata(t.m("a")).unwrap(), fs::metadata(t.m("b")).unwrap());
    assert_eq!(ma.ino(), mb.ino());
    assert_eq!(mb.nlink(), 2);
    let backing = fs::metadata(t.b("a")).unwrap();
    assert_eq!(backing.nlink(), 2);
    fs::remove_file(t.m("a")).unwrap();
    assert_eq!(fs::metadata(t.m("b")).unwrap().nlink(), 1);
    assert_eq!(fs::metadata(t.b("b")).unwrap().nlink(), 1);
}

#[test]
fn symlink_targets_are_stored_verbatim() {
    let t = Mounted::new();
    let target = "../no/such//place/";
    std::os::unix::fs::symlink(target, t.m("s")).unwrap();
    assert_eq!(fs::read_link(t.m("s")).unwrap(), Path::new(target));
    assert_eq!(fs::read_link(t.b("s")).unwrap(), Path::new(target));
    assert!(fs::symlink_metadata(t.m("s")).unwrap().file_type().is_symlink());
    fs::write(t.m("real"), b"r").unwrap();
    std::os::unix::fs::symlink("real", t.m("rel")).unwrap();
    assert_eq!(fs::read(t.m("rel")).unwrap(), b"r");
}

#[test]
fn chmod_chown_and_nanosecond_times() {
    let t = Mounted::new();
    fs::write(t.m("f"), b"x").unwrap();
    fs::set_permissions(t.m("f"), fs::Permissions::from_mode(0o4751)).unwrap();
    assert_eq!(fs::metadata(t.b("f")).unwrap().mode() & 0o7777, 0o4751);
    assert_eq!(fs::metadata(t.m("f")).unwrap().mode() & 0o7777, 0o4751);

    if is_root() {
        std::os::unix::fs::chown(t.m("f"), Some(1234), Some(5678)).unwrap();
        let b = fs::metadata(t.b("f")).unwrap();
        assert_eq!((b.uid(), b.gid()), (1234, 5678));
        let m = fs::metadata(t.m("f")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
    }

    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 123_456_789,
        },
        last_modification: Timespec {
            tv_sec: 1_500_000_000,
            tv_nsec: 987_654_321,
        },
    };
    rfs::utimensat(CWD, t.m("f"), &times, AtFlags::empty()).unwrap();
    for meta in [fs::metadata(t.b("f")).unwrap(), fs::metadata(t.m("f")).unwrap()] {
        assert_eq!((meta.atime(), meta.atime_nsec()), (1_000_000_000, 123_456_789));
        assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_500_000_000, 987_654_321));
    }
    // UTIME_OMIT keeps atime, UTIME_NOW sets mtime to now.
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_NOW,
        },
    };
    rfs::utimensat(CWD, t.m("f"), &times, AtFlags::empty()).unwrap();
    let b = fs::metadata(t.b("f")).unwrap();
    assert_eq!((b.atime(), b.atime_nsec()), (1_000_000_000, 123_456_789));
    assert!(b.mtime() > 1_600_000_000);
    let m = fs::metadata(t.m("f")).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (b.mtime(), b.mtime_nsec()));
    assert_eq!((m.ctime(), m.ctime_nsec()), (b.ctime(), b.ctime_nsec()));
}

#[test]
fn statfs_passes_through() {
    let t = Mounted::new();
    let (m, b) = (
        rfs::statvfs(t.mnt.path()).unwrap(),
        rfs::statvfs(t.backing.path()).unwrap(),
    );
    assert_eq!(m.f_blocks, b.f_blocks);
    assert_eq!(m.f_bsize, b.f_bsize);
    assert_eq!(m.f_frsize, b.f_frsize);
    assert_eq!(m.f_files, b.f_files);
    assert_eq!(m.f_namemax, b.f_namemax);
}

#[test]
fn extended_attributes() {
    let t = Mounted::new();
    fs::write(t.m("f"), b"x").unwrap();
    rfs::setxattr(t.m("f"), "user.color", b"blue", XattrFlags::CREATE).unwrap();
    let mut buf = [0u8; 16];
    let n = rfs::getxattr(t.b("f"), "user.color", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"blue");
    // Size probe, then a buffer too small.
    assert_eq!(rfs::getxattr_query(t.m("f"), "user.color").unwrap(), 4);
    let mut small = [0u8; 2];
    assert_eq!(
        rfs::getxattr(t.m("f"), "user.color", &mut small[..]).unwrap_err(),
        rustix::io::Errno::RANGE
    );
    let n = rfs::getxattr(t.m("f"), "user.color", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"blue");
    assert_eq!(
        rfs::setxattr(t.m("f"), "user.color", b"red", XattrFlags::CREATE).unwrap_err(),
        rustix::io::Errno::EXIST
    );
    assert_eq!(
        rfs::setxattr(t.m("f"), "user.none", b"red", XattrFlags::REPLACE).unwrap_err(),
        rustix::io::Errno::NODATA
    );
    rfs::setxattr(t.m("f"), "user.size", b"", XattrFlags::empty()).unwrap();
    let mut list = [0u8; 64];
    let n = rfs::listxattr(t.m("f"), &mut list[..]).unwrap();
    let names: Vec<&[u8]> = list[..n].split(|b| *b == 0).filter(|s| !s.is_empty()).collect();
    assert!(
        names.contains(&&b"user.color"[..]) && names.contains(&&b"user.size"[..]),
        "{names:?}"
    );
    assert_eq!(rfs::listxattr_query(t.m("f")).unwrap(), n);
    rfs::removexattr(t.m("f"), "user.color").unwrap();
    assert_eq!(
        rfs::getxattr(t.b("f"), "user.color", &mut buf[..]).unwrap_err(),
        rustix::io::Errno::NODATA
    );
    assert_eq!(
        rfs::getxattr(t.m("f"), "user.color", &mut buf[..]).unwrap_err(),
        rustix::io::Errno::NODATA
    );
}

#[test]
fn fifos_and_device_nodes() {
    let t = Mounted::new();
    rfs::mkfifoat(CWD, t.m("fifo"), Mode::from_raw_mode(0o640)).unwrap();
    assert!(fs::metadata(t.b("fifo")).unwrap().file_type().is_fifo());
    let m = fs::symlink_metadata(t.m("fifo")).unwrap();
    assert!(m.file_type().is_fifo());
    assert_eq!(m.mode() & 0o777, 0o640 & !current_umask());
    if is_root() {
        let dev = rfs::makedev(1, 3);
        rfs::mknodat(
            CWD,
            t.m("null"),
            rfs::FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            dev,
        )
        .unwrap();
        assert_eq!(fs::metadata(t.b("null")).unwrap().rdev(), dev);
        let m = fs::symlink_metadata(t.m("null")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), dev);
    }
}

fn current_umask() -> u32 {
    // The umask can only be read by setting it; put it straight back.
    let old = rustix::process::umask(Mode::from_raw_mode(0o022));
    rustix::process::umask(old);
    old.bits()
}

#[test]
fn fsync_and_write_errors_reach_the_application() {
    let t = Mounted::new();
    let mut f = File::create(t.m("f")).unwrap();
    f.write_all(b"synced").unwrap();
    f.sync_all().unwrap();
    assert_eq!(fs::read(t.b("f")).unwrap(), b"synced");

    *t.remote.fail_writes.lock().unwrap() = Some(Errno::ENOSPC);
    f.write_all(b" lost").unwrap();
    let err = f.sync_all().unwrap_err();
    assert_eq!(errno_of(&err), libc::ENOSPC);
    f.write_all(b" lost again").unwrap();
    // close(2) reports it too.
    let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
    // SAFETY: `fd` came from `into_raw_fd`, so this is its only owner.
    let rc = unsafe { libc::close(fd) };
    assert_eq!(rc, -1);
    assert_eq!(errno_of(&std::io::Error::last_os_error()), libc::ENOSPC);
    *t.remote.fail_writes.lock().unwrap() = None;
}

#[test]
fn large_directories_list_with_attributes() {
    let t = Mounted::new();
    fs::create_dir(t.m("d")).unwrap();
    for i in 0..300 {
        fs::write(t.m(&format!("d/file-{i:03}")), format!("{i}")).unwrap();
    }
    let mut names: Vec<String> = fs::read_dir(t.m("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 300);
    assert_eq!(names[42], "file-042");
    for e in fs::read_dir(t.m("d")).unwrap() {
        let e = e.unwrap();
        let via_mount = e.metadata().unwrap();
        let backing = fs::metadata(t.b("d").join(e.file_name())).unwrap();
        // Inode numbers are the VFS's own: the listing's agree with a lookup's.
        let listed = std::os::unix::fs::DirEntryExt::ino(&e);
        assert_eq!((listed, via_mount.len()), (via_mount.ino(), backing.len()));
    }
    assert_eq!(
        fs::metadata(t.m("d")).unwrap().nlink(),
        fs::metadata(t.b("d")).unwrap().nlink()
    );
    fs::remove_file(t.m("d/file-000")).unwrap();
    assert_eq!(fs::read_dir(t.m("d")).unwrap().count(), 299);
    let err = fs::remove_dir(t.m("d")).unwrap_err();
    assert_eq!(errno_of(&err), libc::ENOTEMPTY);
}

#[test]
fn files_created_by_a_user_belong_to_that_user() {
    if !is_root() {
        return;
    }
    let t = Mounted::with(MountOptions {
        allow_other: true,
        ..MountOptions::default()
    });
    // Through the mount: allow_other makes the kernel check permissions,
    // from the root's attributes it cached at mount time.
    fs::set_permissions(t.m(""), fs::Permissions::from_mode(0o777)).unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 022 && echo hi > '{}' && mkdir '{}'",
            t.m("mine").display(),
            t.m("dir").display()
        ))
        .uid(65534)
        .gid(65534)
        .status()
        .unwrap();
    assert!(status.success());
    for path in [t.b("mine"), t.m("mine")] {
        let m = fs::metadata(path).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (65534, 65534, 0o644));
    }
    let m = fs::metadata(t.b("dir")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (65534, 0o755));
}

use std::os::unix::process::CommandExt;

#[test]
fn a_slow_request_does_not_hold_up_others() {
    let t = Mounted::new();
    fs::write(t.b("slow"), b"s").unwrap();
    fs::write(t.b("fast"), b"f").unwrap();
    *t.remote.slow_lstat.lock().unwrap() = Some((b"slow".to_vec(), Duration::from_secs(2)));
    let slow_path = t.m("slow");
    let slow = std::thread::spawn(move || fs::metadata(slow_path).map(|m| m.len()));
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    assert_eq!(fs::read(t.m("fast")).unwrap(), b"f");
    assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
    assert_eq!(slow.join().unwrap().unwrap(), 1);
}

#[test]
fn read_only_mounts_refuse_writes() {
    let t = Mounted::with(MountOptions {
        read_only: true,
        ..MountOptions::default()
    });
    fs::write(t.b("f"), b"x").unwrap();
    assert_eq!(fs::read(t.m("f")).unwrap(), b"x");
    let err = fs::write(t.m("g"), b"y").unwrap_err();
    assert_eq!(errno_of(&err), libc::EROFS);
    assert!(!t.b("g").exists());
}

#[test]
fn mounting_over_a_non_empty_directory_needs_consent() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let backing = tempfile::tempdir().unwrap();
    let mnt = tempfile::tempdir().unwrap();
    fs::write(mnt.path().join("hidden"), b"h").unwrap();
    let remote = LocalRemote::new(backing.path());
    let err = yonder_fuse::mount(
        remote.clone(),
        rt.handle().clone(),
        mnt.path(),
        &MountOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, yonder_fuse::FuseError::NotEmpty { .. }), "{err}");
    let opts = MountOptions {
        allow_non_empty: true,
        ..MountOptions::default()
    };
    let session = yonder_fuse::mount(remote, rt.handle().clone(), mnt.path(), &opts).unwrap();
    assert!(!mnt.path().join("hidden").exists());
    session.unmount().unwrap();
    assert!(mnt.path().join("hidden").exists());
}
