//! The behaviour suite: what users' tools rely on, through a real `yonder
//! mount`. Each behaviour is checked through the mount and directly on the
//! backing directory (the remote's disk), over every frontend (FUSE) and
//! transport (a local agent, real ssh): see `mount_suite!`.
//!
//! Some checks mount tmpfs file systems below the served root, so the suite
//! runs as root (CI does).

// Real mounts checked with Linux calls (statx, copy_file_range, Linux's
// xattr signatures and names): these run where CI runs, on Linux.
#![cfg(target_os = "linux")]

mod support;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use support::mount::{is_mounted, Mount};
use support::Variant;

fn errno(err: std::io::Error) -> i32 {
    err.raw_os_error().expect("an OS error")
}

fn open_flags_append_trunc_excl(v: Variant) {
    let m = Mount::start(v, &[]);
    fs::write(m.at("f"), b"one\n").unwrap();
    let mut f = OpenOptions::new().append(true).open(m.at("f")).unwrap();
    f.write_all(b"two\n").unwrap();
    // O_APPEND writes at the end even after a seek.
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(b"three\n").unwrap();
    drop(f);
    assert_eq!(fs::read(m.at("f")).unwrap(), b"one\ntwo\nthree\n");
    assert_eq!(fs::read(m.disk("f")).unwrap(), b"one\ntwo\nthree\n");
    assert_eq!(fs::metadata(m.at("f")).unwrap().len(), 14);

    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.at("f"))
        .unwrap();
    assert_eq!(f.metadata().unwrap().len(), 0);
    assert_eq!(fs::metadata(m.disk("f")).unwrap().len(), 0);
    f.write_all(b"x").unwrap();
    drop(f);
    assert_eq!(fs::read(m.disk("f")).unwrap(), b"x");
    assert_eq!(fs::read(m.at("f")).unwrap(), b"x");

    let err = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(m.at("f"))
        .unwrap_err();
    assert_eq!(errno(err), libc::EEXIST);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(m.at("g"))
        .unwrap();
    f.write_all(b"new").unwrap();
    drop(f);
    assert_eq!(fs::read(m.disk("g")).unwrap(), b"new");
    assert_eq!(
        fs::metadata(m.disk("g")).unwrap().mode() & 0o777,
        0o640 & !umask()
    );
}

fn umask() -> u32 {
    // SAFETY: umask(2) swaps the process mask and cannot fail; it is set
    // straight back.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old as u32
    }
}

fn truncate_and_ftruncate(v: Variant) {
    let m = Mount::start(v, &[]);
    fs::write(m.at("f"), b"0123456789").unwrap();
    let f = OpenOptions::new().read(true).write(true).open(m.at("f")).unwrap();
    f.set_len(4).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 4);
    assert_eq!(fs::read(m.disk("f")).unwrap(), b"0123");
    f.set_len(8).unwrap();
    assert_eq!(fs::read(m.at("f")).unwrap(), b"0123\0\0\0\0");
    f.set_len(4096).unwrap();
    assert_eq!(fs::metadata(m.disk("f")).unwrap().len(), 4096);
    f.set_len(8).unwrap();
    drop(f);
    assert_eq!(fs::read(m.disk("f")).unwrap(), b"0123\0\0\0\0");
    // truncate(2) by path.
    let path = std::ffi::CString::new(m.at("f").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; truncate touches no other memory.
    assert_eq!(unsafe { libc::truncate(path.as_ptr(), 2) }, 0);
    assert_eq!(fs::read(m.disk("f")).unwrap(), b"01");
    assert_eq!(fs::metadata(m.at("f")).unwrap().len(), 2);
}

fn chmod_chown_utimens_with_nanoseconds(v: Variant) {
    let m = Mount::start(v, &[]);
    fs::write(m.at("f"), b"x").unwrap();
    // setuid and the other special bits too.
    fs::set_permissions(m.at("f"), fs::Permissions::from_mode(0o4751)).unwrap();
    assert_eq!(fs::metadata(m.at("f")).unwrap().mode() & 0o7777, 0o4751);
    assert_eq!(fs::metadata(m.disk("f")).unwrap().mode() & 0o7777, 0o4751);
    fs::set_permissions(m.at("f"), fs::Permissions::from_mode(0o751)).unwrap();
    assert_eq!(fs::metadata(m.at("f")).unwrap().mode() & 0o7777, 0o751);
    assert_eq!(fs::metadata(m.disk("f")).unwrap().mode() & 0o7777, 0o751);
    if fs::metadata("/proc/self").unwrap().uid() == 0 {
        std::os::unix::fs::chown(m.at("f"), Some(65534), Some(65533)).unwrap();
        let (disk, through) = (
            fs::metadata(m.disk("f")).unwrap(),
            fs::metadata(m.at("f")).unwrap(),
        );
        assert_eq!((disk.uid(), disk.gid()), (65534, 65533));
        assert_eq!((through.uid(), through.gid()), (65534, 65533));
    }
    let stamp = std::time::UNIX_EPOCH + std::time::Duration::new(1_600_000_000, 123_456_789);
    let f = File::options().write(true).open(m.at("f")).unwrap();
    f.set_times(fs::FileTimes::new().set_modified(stamp).set_accessed(stamp))
        .unwrap();
    drop(f);
    let through = fs::metadata(m.at("f")).unwrap();
    let disk = fs::metadata(m.disk("f")).unwrap();
    assert_eq!(
        (through.mtime(), through.mtime_nsec()),
        (1_600_000_000, 123_456_789)
    );
    assert_eq!((disk.mtime(), disk.mtime_nsec()), (1_600_000_000, 123_456_789));
    assert_eq!((disk.atime(), disk.atime_nsec()), (1_600_000_000, 123_456_789));
    // ctime is the remote's real ctime, with nanoseconds.
    assert_eq!(
        (through.ctime(), through.ctime_nsec()),
        (disk.ctime(), disk.ctime_nsec())
    );

    // utimensat(2) by path: atime and mtime apart, UTIME_OMIT, UTIME_NOW.
    use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};
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
    rustix::fs::utimensat(CWD, m.at("f"), &times, AtFlags::empty()).unwrap();
    for meta in [
        fs::metadata(m.disk("f")).unwrap(),
        fs::metadata(m.at("f")).unwrap(),
    ] {
        assert_eq!((meta.atime(), meta.atime_nsec()), (1_000_000_000, 123_456_789));
        assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_500_000_000, 987_654_321));
    }
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
    };
    rustix::fs::utimensat(CWD, m.at("f"), &times, AtFlags::empty()).unwrap();
    let disk = fs::metadata(m.disk("f")).unwrap();
    assert_eq!((disk.atime(), disk.atime_nsec()), (1_000_000_000, 123_456_789));
    assert!(disk.mtime() > 1_600_000_000);
    let through = fs::metadata(m.at("f")).unwrap();
    assert_eq!(
        (through.mtime(), through.mtime_nsec()),
        (disk.mtime(), disk.mtime_nsec())
    );
    assert_eq!(
        (through.ctime(), through.ctime_nsec()),
        (disk.ctime(), disk.ctime_nsec())
    );
}

fn symlinks_hard_links_and_inode_numbers(v: Variant) {
    let m = Mount::start(v, &[]);
    fs::write(m.at("target"), b"data").unwrap();
    for target in [
        "target",
        "../../elsewhere/x",
        "/etc/hostname",
        "dir/./../target",
        "../no/such//place/",
    ] {
        let _ = fs::remove_file(m.at("link"));
        std::os::unix::fs::symlink(target, m.at("link")).unwrap();
        assert_eq!(
            fs::read_link(m.at("link")).unwrap().to_str().unwrap(),
            target,
            "stored as given"
        );
        assert_eq!(fs::read_link(m.disk("link")).unwrap().to_str().unwrap(), target);
        assert!(fs::symlink_metadata(m.at("link"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
    // Followed by the kernel, relative to the link.
    std::os::unix::fs::symlink("target", m.at("rel")).unwrap();
    assert_eq!(fs::read(m.at("rel")).unwrap(), b"data");
    fs::hard_link(m.at("target"), m.at("hard")).unwrap();
    let a = fs::metadata(m.at("target")).unwrap();
    let b = fs::metadata(m.at("hard")).unwrap();
    assert_eq!(a.nlink(), 2);
    assert_eq!(a.ino(), b.ino(), "hard links share an inode number");
    // yonder numbers files itself (the remote's numbers repeat across file
    // systems and get reused): stable while the file exists, unique.
    assert_eq!(a.ino(), fs::metadata(m.at("target")).unwrap().ino());
    assert_ne!(a.ino(), fs::symlink_metadata(m.at("link")).unwrap().ino());
    assert_eq!(fs::metadata(m.disk("target")).unwrap().nlink(), 2);
    fs::remove_file(m.at("hard")).unwrap();
    assert_eq!(fs::metadata(m.at("target")).unwrap().nlink(), 1);
    assert_eq!(fs::metadata(m.disk("target")).unwrap().nlink(), 1);
}

fn rename_noreplace_and_exchange(v: Variant) {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let m = Mount::start(v, &[]);
    fs::write(m.at("b"), b"B").unwrap();
    fs::write(m.at("c"), b"C").unwrap();
    let err = renameat_with(CWD, m.at("c"), CWD, m.at("b"), RenameFlags::NOREPLACE).unwrap_err();
    assert_eq!(err, rustix::io::Errno::EXIST);
    assert_eq!(fs::read(m.disk("b")).unwrap(), b"B");
    renameat_with(CWD, m.at("c"), CWD, m.at("b"), RenameFlags::EXCHANGE).unwrap();
    assert_eq!(fs::read(m.at("b")).unwrap(), b"C");
    assert_eq!(fs::read(m.at("c")).unwrap(), b"B");
    assert_eq!(fs::read(m.disk("b")).unwrap(), b"C");
    assert_eq!(fs::read(m.disk("c")).unwrap(), b"B");
    renameat_with(CWD, m.at("c"), CWD, m.at("d"), RenameFlags::NOREPLACE).unwrap();
    assert_eq!(fs::read(m.disk("d")).unwrap(), b"B");
    assert!(!m.at("c").exists() && !m.disk("c").exists());
}

fn rename_over_existing_for_atomic_save(v: Variant) {
    let m = Mount::start(v, &[]);
    fs::write(m.at("doc.txt"), b"old").unwrap();
    let old_ino = fs::metadata(m.at("doc.txt")).unwrap().ino();
    let mut tmp = File::create(m.at(".doc.txt.swp")).unwrap();
    tmp.write_all(b"new contents").unwrap();
    tmp.sync_all().unwrap();
    drop(tmp);
    fs::rename(m.at(".doc.txt.swp"), m.at("doc.txt")).unwrap();
    assert_eq!(fs::read(m.at("doc.txt")).unwrap(), b"new contents");
    assert_eq!(fs::read(m.disk("doc.txt")).unwrap(), b"new contents");
    assert!(!m.disk(".doc.txt.swp").exists());
    assert_ne!(fs::metadata(m.at("doc.txt")).unwrap().ino(), old_ino);
    let names: Vec<_> = fs::read_dir(m.at(""))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["doc.txt"]);
}

fn rename_directory_with_open_file_beneath(v: Variant) {
    let m = Mount::start(v, &[]);
    fs::create_dir_all(m.at("a/b")).unwrap();
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(m.at("a/b/file"))
        .unwrap();
    f.write_all(b"before ").unwrap();
    fs::rename(m.at("a"), m.at("z")).unwrap();
    f.write_all(b"after").unwrap();
    f.sync_all().unwrap();
    assert_eq!(fs::read(m.disk("z/b/file")).unwrap(), b"before after");
    assert_eq!(f.metadata().unwrap().len(), 12);
    // fchmod through the handle reaches the renamed file.
    f.set_permissions(fs::Permissions::from_mode(0o600)).unwrap();
    drop(f);
    assert_eq!(fs::metadata(m.disk("z/b/file")).unwrap().mode() & 0o777, 0o600);
    assert_eq!(fs::read(m.disk("z/b/file")).unwrap(), b"before after");
    assert_eq!(fs::read(m.at("z/b/file")).unwrap(), b"before after");
    assert!(!m.at("a").exists());
    // Paths below the renamed directory resolve afresh.
    fs::write(m.at("z/b/second"), b"2").unwrap();
    assert_eq!(fs::read(m.disk("z/b/second")).unwrap(), b"2");
}

fn unlinked_open_file_stays_usable(v: Variant) {
    let m = Mount::start(v, &[]);
    fs::write(m.at("tmp"), b"keep me").unwrap();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.at("tmp"))
        .unwrap();
    fs::remove_file(m.at("tmp")).unwrap();
    assert!(!m.disk("tmp").exists());
    assert!(!m.at("tmp").exists());
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "keep me");
    f.write_all(b", and more").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    s.clear();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "keep me, and more");
    let meta = f.metadata().unwrap();
    assert_eq!((meta.len(), meta.nlink()), (17, 0));
    f.set_len(4).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 4);
    drop(f);
    assert_eq!(fs::read_dir(m.at("")).unwrap().count(), 0, "nothing left behind");
    assert_eq!(fs::read_dir(m.disk("")).unwrap().count(), 0);
}

fn statfs_shows_the_remote(v: Variant) {
    let m = Mount::start(v, &[]);
    let through = rustix::fs::statvfs(&m.mountpoint).unwrap();
    let disk = rustix::fs::statvfs(m.backing.path()).unwrap();
    assert_eq!(through.f_blocks * through.f_frsize, disk.f_blocks * disk.f_frsize);
    assert_eq!(
        (through.f_blocks, through.f_bsize, through.f_frsize),
        (disk.f_blocks, disk.f_bsize, disk.f_frsize)
    );
    assert_eq!(through.f_files, disk.f_files);
    assert_eq!(through.f_namemax, disk.f_namemax);
    assert!(through.f_bavail > 0);
}

fn posix_fallocate_reaches_the_remote(v: Variant) {
    let m = Mount::start(v, &[]);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(m.at("pre"))
        .unwrap();
    let before = fs::metadata(m.at("pre")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // SAFETY: posix_fallocate on a descriptor we own.
    assert_eq!(
        unsafe { libc::posix_fallocate(std::os::fd::AsRawFd::as_raw_fd(&f), 0, 3 << 20) },
        0
    );
    let disk = fs::metadata(m.disk("pre")).unwrap();
    assert_eq!(disk.len(), 3 << 20);
    assert!(
        disk.blocks() * 512 >= 3 << 20,
        "allocated on the remote, not emulated by writes"
    );
    let after = fs::metadata(m.at("pre")).unwrap();
    assert_eq!(after.len(), 3 << 20);
    assert!(
        (after.ctime(), after.ctime_nsec()) > (before.ctime(), before.ctime_nsec()),
        "ctime moves"
    );
}

fn fsync_reaches_the_remote_disk(v: Variant) {
    let m = Mount::start(v, &[]);
    let mut f = File::create(m.at("journal")).unwrap();
    for i in 0..100 {
        f.write_all(format!("record {i}\n").as_bytes()).unwrap();
    }
    f.sync_all().unwrap();
    // Still open: the data must already be on the remote.
    let disk = fs::read_to_string(m.disk("journal")).unwrap();
    assert_eq!(disk.lines().count(), 100);
    assert!(disk.ends_with("record 99\n"));
    f.write_all(b"tail").unwrap();
    f.sync_data().unwrap();
    assert!(fs::read_to_string(m.disk("journal")).unwrap().ends_with("tail"));
}

/// `lseek(2)` with SEEK_DATA (`data`) or SEEK_HOLE, as an errno on failure.
fn seek(file: &File, offset: u64, data: bool) -> Result<u64, i32> {
    let whence = if data {
        rustix::fs::SeekFrom::Data(offset)
    } else {
        rustix::fs::SeekFrom::Hole(offset)
    };
    rustix::fs::seek(file, whence).map_err(|e| e.raw_os_error())
}

fn seek_data_and_seek_hole(v: Variant) {
    // cp, tar and backup tools skip holes with these; a mount that calls
    // everything data makes them read (and write) 1.5 GiB of zeros.
    const DATA: u64 = 3 << 29;
    const DATA_LEN: u64 = 8192;
    let m = Mount::start(v, &[]);
    let disk = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(m.disk("sparse"))
        .unwrap();
    disk.set_len(DATA).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&disk, &[1; DATA_LEN as usize], DATA).unwrap();
    let size = DATA + DATA_LEN;
    let through = File::open(m.at("sparse")).unwrap();
    for (offset, data, expected) in [
        (0, true, Ok(DATA)),
        (0, false, Ok(0)),
        (DATA + 100, true, Ok(DATA + 100)),
        (DATA + 100, false, Ok(size)),
        (size, true, Err(libc::ENXIO)),
        (size + 4096, false, Err(libc::ENXIO)),
    ] {
        let what = format!("{} from {offset}", if data { "SEEK_DATA" } else { "SEEK_HOLE" });
        assert_eq!(seek(&disk, offset, data), expected, "{what} on the backing file");
        assert_eq!(seek(&through, offset, data), expected, "{what} through the mount");
    }
    // SEEK_SET and SEEK_END still work (the kernel answers those).
    let mut through = through;
    assert_eq!(through.seek(SeekFrom::End(0)).unwrap(), size);
    assert_eq!(through.seek(SeekFrom::Start(5)).unwrap(), 5);

    // Data written through the mount and still buffered there is data, as
    // seen from another descriptor of the file too.
    let writer = OpenOptions::new().write(true).open(m.at("sparse")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&writer, b"early", 1 << 29).unwrap();
    assert_eq!(seek(&through, 0, true), Ok(1 << 29), "through another descriptor");
    assert_eq!(seek(&writer, 0, true), Ok(1 << 29), "through the writer");
    assert_eq!(seek(&disk, 0, true), Ok(1 << 29), "on the backing file");
    assert_eq!(seek(&through, 1 << 29, false), seek(&disk, 1 << 29, false));
}

/// Every call a mounted file is likely to see from ordinary tools that the
/// mount does not serve: answered as a local file would be, and silently.
fn ioctl_is_quiet_and_enotty(v: Variant) {
    use std::io::IsTerminal;
    use std::os::fd::AsRawFd;
    let m = Mount::start_logged(v, &[]);
    fs::write(m.at("plain"), b"not a terminal").unwrap();
    let f = File::open(m.at("plain")).unwrap();
    for _ in 0..100 {
        assert!(!f.is_terminal());
    }
    let mut termios = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: TCGETS writes at most one `termios`, and `termios` is one.
    let got = unsafe { libc::ioctl(f.as_raw_fd(), libc::TCGETS, termios.as_mut_ptr()) };
    assert_eq!(got, -1);
    assert_eq!(errno(std::io::Error::last_os_error()), libc::ENOTTY);
    assert!(!File::open(&m.mountpoint).unwrap().is_terminal());

    // poll(2) on a file: ready at once, as a local file is.
    let mut pfd = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 5000) }, 1);
    assert_ne!(pfd.revents & libc::POLLIN, 0);

    // copy_file_range(2), which cp tries first: the kernel copies by reading
    // and writing.
    let out = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(m.at("copy"))
        .unwrap();
    let (mut from, mut to) = (0u64, 0u64);
    let copied = rustix::fs::copy_file_range(&f, Some(&mut from), &out, Some(&mut to), 100).unwrap();
    assert_eq!(copied, 14);
    drop(out);
    assert_eq!(fs::read(m.disk("copy")).unwrap(), b"not a terminal");

    let log = m.log();
    assert!(
        !log.contains("Not Implemented") && !log.contains("ioctl"),
        "yonder mount logged:\n{log}"
    );
}

fn xattrs_round_trip(v: Variant) {
    let m = Mount::start(v, &[]);
    fs::write(m.at("f"), b"").unwrap();
    let path = m.at("f");
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let p = c(path.to_str().unwrap());
    let set = |name: &str, value: &[u8], flags: i32| {
        // SAFETY: valid C strings and a buffer of the given length.
        unsafe {
            libc::setxattr(
                p.as_ptr(),
                c(name).as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                flags,
            )
        }
    };
    assert_eq!(set("user.color", b"blue", libc::XATTR_CREATE), 0);
    assert_eq!(set("user.color", b"red", libc::XATTR_CREATE), -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EEXIST));
    let mut buf = [0u8; 64];
    // SAFETY: the buffer is 64 bytes long, as passed.
    let n = unsafe { libc::getxattr(p.as_ptr(), c("user.color").as_ptr(), buf.as_mut_ptr().cast(), 64) };
    assert_eq!(&buf[..n as usize], b"blue");
    // SAFETY: size 0 asks for the length only; no buffer is written.
    let n = unsafe { libc::getxattr(p.as_ptr(), c("user.color").as_ptr(), std::ptr::null_mut(), 0) };
    assert_eq!(n, 4);
    // SAFETY: a 2-byte buffer for a 4-byte value must fail with ERANGE.
    let n = unsafe { libc::getxattr(p.as_ptr(), c("user.color").as_ptr(), buf.as_mut_ptr().cast(), 2) };
    assert_eq!(
        (n, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::ERANGE))
    );
    // SAFETY: the buffer is 64 bytes long, as passed.
    let n = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), 64) };
    assert_eq!(&buf[..n as usize], b"user.color\0");
    // Visible on the remote disk.
    let d = c(m.disk("f").to_str().unwrap());
    // SAFETY: the buffer is 64 bytes long, as passed.
    let n = unsafe { libc::getxattr(d.as_ptr(), c("user.color").as_ptr(), buf.as_mut_ptr().cast(), 64) };
    assert_eq!(&buf[..n as usize], b"blue");
    // After a listing (which carries xattr names), a name the file lacks
    // is answered as absent and one it has still reads back.
    let _ = fs::read_dir(&m.mountpoint).unwrap().count();
    // SAFETY: the buffer is 64 bytes long, as passed.
    let n = unsafe { libc::getxattr(p.as_ptr(), c("user.none").as_ptr(), buf.as_mut_ptr().cast(), 64) };
    assert_eq!(
        (n, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::ENODATA))
    );
    // SAFETY: the buffer is 64 bytes long, as passed.
    let n = unsafe { libc::getxattr(p.as_ptr(), c("user.color").as_ptr(), buf.as_mut_ptr().cast(), 64) };
    assert_eq!(&buf[..n as usize], b"blue");
    // SAFETY: valid C strings.
    assert_eq!(
        unsafe { libc::removexattr(p.as_ptr(), c("user.color").as_ptr()) },
        0
    );
    // SAFETY: the buffer is 64 bytes long, as passed.
    let n = unsafe { libc::getxattr(p.as_ptr(), c("user.color").as_ptr(), buf.as_mut_ptr().cast(), 64) };
    assert_eq!(
        (n, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::ENODATA))
    );
    // SAFETY: the buffer is 64 bytes long, as passed.
    let n = unsafe { libc::getxattr(d.as_ptr(), c("user.color").as_ptr(), buf.as_mut_ptr().cast(), 64) };
    assert_eq!(
        (n, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::ENODATA)),
        "removed on the remote disk too"
    );

    // Replacing a missing name; an empty value; listing sizes.
    use rustix::fs::{getxattr, listxattr, listxattr_query, setxattr, XattrFlags};
    assert_eq!(
        setxattr(&path, "user.none", b"red", XattrFlags::REPLACE).unwrap_err(),
        rustix::io::Errno::NODATA
    );
    setxattr(&path, "user.a", b"1", XattrFlags::empty()).unwrap();
    setxattr(&path, "user.empty", b"", XattrFlags::empty()).unwrap();
    assert_eq!(getxattr(&path, "user.empty", &mut buf[..]).unwrap(), 0);
    assert_eq!(getxattr(m.disk("f"), "user.empty", &mut buf[..]).unwrap(), 0);
    let n = listxattr(&path, &mut buf[..]).unwrap();
    let mut names: Vec<&[u8]> = buf[..n].split(|b| *b == 0).filter(|s| !s.is_empty()).collect();
    names.sort();
    assert_eq!(names, [&b"user.a"[..], b"user.empty"]);
    assert_eq!(
        listxattr_query(&path).unwrap(),
        n,
        "the size probe matches the list"
    );
}

fn fifos_and_device_nodes(v: Variant) {
    let m = Mount::start(v, &[]);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        m.at("fifo"),
        rustix::fs::FileType::Fifo,
        0o640.into(),
        0,
    )
    .unwrap();
    assert!(fs::symlink_metadata(m.disk("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let fifo = fs::symlink_metadata(m.at("fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o777, 0o640 & !umask());
    assert_eq!(
        fs::symlink_metadata(m.disk("fifo")).unwrap().mode() & 0o777,
        0o640 & !umask()
    );
    if fs::metadata("/proc/self").unwrap().uid() == 0 {
        let dev = rustix::fs::makedev(1, 3);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            m.at("null"),
            rustix::fs::FileType::CharacterDevice,
            0o600.into(),
            dev,
        )
        .unwrap();
        let meta = fs::symlink_metadata(m.disk("null")).unwrap();
        assert!(meta.file_type().is_char_device());
        assert_eq!(meta.rdev(), dev);
        assert_eq!(fs::symlink_metadata(m.at("null")).unwrap().rdev(), dev);
    }
}

fn directories_and_errno(v: Variant) {
    let m = Mount::start(v, &[]);
    fs::create_dir(m.at("d")).unwrap();
    fs::write(m.at("d/f"), b"").unwrap();
    assert!(m.disk("d/f").is_file());
    assert_eq!(errno(fs::remove_dir(m.at("d")).unwrap_err()), libc::ENOTEMPTY);
    assert_eq!(errno(fs::create_dir(m.at("d")).unwrap_err()), libc::EEXIST);
    assert_eq!(errno(fs::read(m.at("missing")).unwrap_err()), libc::ENOENT);
    assert_eq!(errno(fs::read_dir(m.at("d/f")).unwrap_err()), libc::ENOTDIR);
    assert_eq!(errno(fs::remove_file(m.at("d")).unwrap_err()), libc::EISDIR);
    let mut names: Vec<_> = (0..300).map(|i| format!("n{i:03}")).collect();
    for n in &names {
        fs::write(m.disk(&format!("d/{n}")), n.as_bytes()).unwrap();
    }
    names.push("f".into());
    names.sort();
    // The remote's notices (or, where it pushes none, the directory TTL)
    // bring them: within a second, and a loaded machine may take longer.
    let started = std::time::Instant::now();
    loop {
        let mut listed: Vec<_> = fs::read_dir(m.at("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        listed.sort();
        if listed == names {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "entries made on the remote did not show up: {listed:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for e in fs::read_dir(m.at("d")).unwrap() {
        let e = e.unwrap();
        let through = e.metadata().unwrap();
        let disk = fs::metadata(m.disk("d").join(e.file_name())).unwrap();
        assert_eq!(
            (through.len(), through.mode(), through.mtime()),
            (disk.len(), disk.mode(), disk.mtime())
        );
    }
    fs::create_dir(m.at("d/sub")).unwrap();
    assert_eq!(
        fs::metadata(m.at("d")).unwrap().nlink(),
        fs::metadata(m.disk("d")).unwrap().nlink()
    );
    fs::remove_file(m.at("d/n000")).unwrap();
    assert_eq!(fs::read_dir(m.at("d")).unwrap().count(), 301);
    fs::remove_dir_all(m.at("d")).unwrap();
    assert!(!m.disk("d").exists());
}

fn large_files_round_trip(v: Variant) {
    let m = Mount::start(v, &[]);
    let data: Vec<u8> = (0..20_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    fs::write(m.at("big"), &data).unwrap();
    assert!(fs::read(m.disk("big")).unwrap() == data);
    assert!(fs::read(m.at("big")).unwrap() == data);
    // Random-access reads and writes in the middle.
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.at("big"))
        .unwrap();
    f.seek(SeekFrom::Start(12_345_678)).unwrap();
    f.write_all(b"PATCH").unwrap();
    f.seek(SeekFrom::Start(12_345_676)).unwrap();
    let mut buf = [0u8; 9];
    f.read_exact(&mut buf).unwrap();
    assert_eq!(&buf[2..7], b"PATCH");
    drop(f);
    assert_eq!(
        &fs::read(m.disk("big")).unwrap()[12_345_678..12_345_683],
        b"PATCH"
    );
}

fn sigterm_flushes_and_unmounts(v: Variant) {
    let mut m = Mount::start(v, &[]);
    let mut f = File::create(m.at("pending")).unwrap();
    f.write_all(&vec![b'z'; 100_000]).unwrap();
    // No close, no fsync: SIGTERM must still deliver the bytes, then keep
    // serving the open file until it is closed.
    support::mount::signal(m.pid(), libc::SIGTERM);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while fs::metadata(m.disk("pending")).map(|m| m.len()).unwrap_or(0) < 100_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "buffered writes were not flushed on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f.write_all(b"after").unwrap();
    drop(f);
    assert_eq!(
        m.wait_exit(),
        Some(0),
        "yonder mount exits 0 after a clean unmount"
    );
    assert_eq!(fs::read(m.disk("pending")).unwrap().len(), 100_005);
    assert!(!is_mounted(&m.mountpoint));
}

fn second_sigterm_stops_waiting_for_open_files(v: Variant) {
    let mut m = Mount::start(v, &[]);
    let mut f = File::create(m.at("held")).unwrap();
    f.write_all(b"held open").unwrap();
    support::mount::signal(m.pid(), libc::SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(fs::read(m.disk("held")).unwrap(), b"held open");
    support::mount::signal(m.pid(), libc::SIGTERM);
    assert!(
        m.wait_exit().is_some(),
        "a second SIGTERM ends yonder mount even with files open"
    );
    assert!(!is_mounted(&m.mountpoint));
    drop(f);
}

/// SIGINT (Ctrl+C) and SIGHUP (the terminal going away) unmount as
/// SIGTERM does.
fn sigint_and_sighup_unmount_too(v: Variant) {
    for signal in [libc::SIGINT, libc::SIGHUP] {
        let mut m = Mount::start(v, &[]);
        let mut f = File::create(m.at("f")).unwrap();
        f.write_all(b"unflushed").unwrap();
        support::mount::signal(m.pid(), signal);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while fs::read(m.disk("f")).unwrap_or_default() != b"unflushed" {
            assert!(
                std::time::Instant::now() < deadline,
                "not flushed on signal {signal}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        drop(f);
        assert_eq!(m.wait_exit(), Some(0), "signal {signal}");
        assert!(!is_mounted(&m.mountpoint));
    }
}

/// `yonder unmount` (or any unmount from outside) ends `yonder mount`.
fn yonder_unmount_ends_the_mount(v: Variant) {
    let mut m = Mount::start(v, &[]);
    fs::write(m.at("f"), b"x").unwrap();
    let status = std::process::Command::new(support::yonder_bin())
        .arg("unmount")
        .arg(&m.mountpoint)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(m.wait_exit(), Some(0), "yonder mount exits 0 once unmounted");
    assert!(!is_mounted(&m.mountpoint));
    assert_eq!(fs::read(m.disk("f")).unwrap(), b"x");
    let out = std::process::Command::new(support::yonder_bin())
        .arg("unmount")
        .arg(&m.mountpoint)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not mounted"));
}

fn killed_mount_is_cleaned_up(v: Variant) {
    let mut m = Mount::start(v, &[]);
    assert!(is_mounted(&m.mountpoint));
    m.kill();
    // AutoUnmount removes the mount when the process dies; `yonder
    // unmount` must also succeed (or report it is not mounted) on what is left.
    // Each try races the automatic unmount, so "not mounted" or a failed
    // fusermount3 is expected: what they said is shown only if the mount stays.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut said = Vec::new();
    while is_mounted(&m.mountpoint) && std::time::Instant::now() < deadline {
        if let Ok(out) = std::process::Command::new(support::yonder_bin())
            .arg("unmount")
            .arg(&m.mountpoint)
            .output()
        {
            said.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !is_mounted(&m.mountpoint),
        "still mounted; yonder unmount said: {said:?}"
    );
    assert!(
        fs::read_dir(&m.mountpoint).unwrap().next().is_none(),
        "a plain empty directory again"
    );
}

fn read_only_refuses_changes(v: Variant) {
    let backing = tempfile::Builder::new()
        .prefix("yonder-backing")
        .tempdir()
        .unwrap();
    fs::write(backing.path().join("f"), b"ro").unwrap();
    let m = Mount::start_on(v, backing, &["--read-only"]);
    assert_eq!(fs::read(m.at("f")).unwrap(), b"ro");
    assert_eq!(errno(fs::write(m.at("f"), b"x").unwrap_err()), libc::EROFS);
    assert_eq!(errno(fs::write(m.at("g"), b"y").unwrap_err()), libc::EROFS);
    assert_eq!(errno(fs::create_dir(m.at("d")).unwrap_err()), libc::EROFS);
    assert_eq!(fs::read(m.disk("f")).unwrap(), b"ro");
    assert!(!m.disk("g").exists() && !m.disk("d").exists());
}

fn large_directories_list_and_remove_completely(v: Variant) {
    // More entries than one readdirplus reply holds: the kernel lets go of
    // some it was handed, and every name must stay reachable all the same.
    let m = Mount::start(v, &[]);
    fs::create_dir(m.disk("big")).unwrap();
    for i in 0..1500 {
        fs::write(
            m.disk(&format!("big/file-with-a-longish-name-{i:05}")),
            i.to_string(),
        )
        .unwrap();
    }
    let mut names: Vec<String> = fs::read_dir(m.at("big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 1500);
    for name in &names {
        let i: usize = name.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(
            fs::read_to_string(m.at(&format!("big/{name}"))).unwrap(),
            i.to_string()
        );
    }
    for name in &names {
        fs::remove_file(m.at(&format!("big/{name}"))).unwrap_or_else(|e| panic!("unlink {name}: {e}"));
    }
    assert_eq!(fs::read_dir(m.at("big")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(m.disk("big")).unwrap().count(), 0);
    fs::remove_dir(m.at("big")).unwrap();
    assert!(!m.disk("big").exists());
}

/// The issue's reproduction: `a`'s older buffered write must not land after
/// `b`'s newer one. Local result: `BBBB` then the rest of `a`'s data.
fn writes_through_two_descriptors_land_in_order(v: Variant) {
    let m = Mount::start(v, &[]);
    let p = m.at("f");
    for size in [10usize, 100_000] {
        let expect: Vec<u8> = [vec![b'B'; 4], vec![b'A'; size - 4]].concat();
        for round in 0..100 {
            for rdwr in [false, true] {
                fs::write(&p, vec![b'x'; size]).unwrap();
                let mut a = OpenOptions::new().read(rdwr).write(true).open(&p).unwrap();
                a.write_all(&vec![b'A'; size]).unwrap();
                let mut b = OpenOptions::new().read(rdwr).write(true).open(&p).unwrap();
                b.write_all(b"BBBB").unwrap();
                drop(b);
                drop(a);
                let got = fs::read(&p).unwrap();
                assert!(
                    got == expect,
                    "size {size} round {round} rdwr {rdwr}: got {:?}...",
                    String::from_utf8_lossy(&got[..got.len().min(16)])
                );
                assert_eq!(fs::read(m.disk("f")).unwrap(), expect);
            }
        }
        // The second descriptor in another process.
        for round in 0..20 {
            fs::write(&p, vec![b'x'; size]).unwrap();
            let mut a = OpenOptions::new().write(true).open(&p).unwrap();
            a.write_all(&vec![b'A'; size]).unwrap();
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg("printf BBBB 1<>\"$1\"")
                .arg("sh")
                .arg(&p)
                .status()
                .unwrap();
            assert!(status.success());
            drop(a);
            assert!(fs::read(&p).unwrap() == expect, "size {size} child round {round}");
        }
    }
}

/// Two file systems below the root, each with a file of the same inode
/// number: two files, never one. Needs root to mount the tmpfs.
fn files_on_two_file_systems_stay_apart(v: Variant) {
    require_root("files_on_two_file_systems_stay_apart");
    let backing = tempfile::Builder::new()
        .prefix("yonder-backing")
        .tempdir()
        .unwrap();
    let tmpfs = Tmpfs::pair(backing.path());
    for (dir, text) in [("t1", "one\n"), ("t2", "two\n")] {
        fs::write(backing.path().join(dir).join("f1"), text).unwrap();
        fs::write(backing.path().join(dir).join("f2"), text).unwrap();
    }
    assert_eq!(
        fs::metadata(backing.path().join("t1/f1")).unwrap().ino(),
        fs::metadata(backing.path().join("t2/f1")).unwrap().ino(),
        "fresh tmpfs number their first files alike"
    );
    let m = Mount::start_on(v, backing, &[]);
    assert_eq!(fs::read_to_string(m.at("t1/f1")).unwrap(), "one\n");
    assert_eq!(fs::read_to_string(m.at("t2/f1")).unwrap(), "two\n");
    assert_eq!(fs::read_to_string(m.at("t1/f1")).unwrap(), "one\n");
    assert_ne!(
        fs::metadata(m.at("t1")).unwrap().ino(),
        fs::metadata(m.at("t2")).unwrap().ino()
    );
    assert_ne!(
        fs::metadata(m.at("t1/f1")).unwrap().ino(),
        fs::metadata(m.at("t2/f1")).unwrap().ino()
    );
    fs::write(m.at("t1/f1"), "x\n").unwrap();
    assert_eq!(fs::read_to_string(m.disk("t1/f1")).unwrap(), "x\n");
    assert_eq!(fs::read_to_string(m.disk("t2/f1")).unwrap(), "two\n");
    fs::remove_file(m.at("t1/f2")).unwrap();
    assert!(!m.disk("t1/f2").exists());
    assert!(m.disk("t2/f2").exists());
    let mut seen = Vec::new();
    for dir in ["t1", "t2"] {
        for e in fs::read_dir(m.at(dir)).unwrap() {
            seen.push(format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()));
        }
    }
    seen.sort();
    assert_eq!(seen, ["t1/f1", "t2/f1", "t2/f2"]);
    drop(m);
    drop(tmpfs);
}

/// tmpfs file systems mounted at directories it creates, unmounted on drop.
struct Tmpfs(Vec<std::path::PathBuf>);

impl Tmpfs {
    /// Two tmpfs at `root/t1` and `root/t2`.
    fn pair(root: &std::path::Path) -> Tmpfs {
        let mut mounted = Tmpfs(Vec::new());
        for dir in ["t1", "t2"] {
            mounted.add(&root.join(dir), "8m");
        }
        mounted
    }

    fn add(&mut self, at: &std::path::Path, size: &str) {
        fs::create_dir(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "yonder-test"])
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs at {}", at.display());
        self.0.push(at.to_path_buf());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        for at in &self.0 {
            let _ = std::process::Command::new("umount").arg("-l").arg(at).output();
        }
    }
}

fn require_root(what: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "{what} mounts tmpfs file systems below the served root: run it as root"
    );
}

/// A remote write that fails (here: the remote's disk is full) reaches the
/// application that wrote, at fsync and at close, though the write itself
/// was only buffered.
fn write_errors_reach_the_application(v: Variant) {
    require_root("write_errors_reach_the_application");
    let backing = tempfile::Builder::new()
        .prefix("yonder-backing")
        .tempdir()
        .unwrap();
    let mut tmpfs = Tmpfs(Vec::new());
    tmpfs.add(&backing.path().join("small"), "1m");
    let m = Mount::start_on(v, backing, &[]);
    let mut f = File::create(m.at("small/f")).unwrap();
    f.write_all(b"synced").unwrap();
    f.sync_all().unwrap();
    assert_eq!(fs::read(m.disk("small/f")).unwrap(), b"synced");

    // Fill the disk behind the mount's back.
    let mut filler = File::create(m.disk("small/filler")).unwrap();
    let full = loop {
        if let Err(e) = filler.write_all(&[0; 64 << 10]) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC));
    drop(filler);

    f.write_all(&[b'x'; 64 << 10]).unwrap();
    assert_eq!(errno(f.sync_all().unwrap_err()), libc::ENOSPC, "fsync reports it");
    f.write_all(&[b'y'; 64 << 10]).unwrap();
    // close(2) reports it too.
    let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
    // SAFETY: `fd` came from `into_raw_fd`, so this is its only owner.
    let rc = unsafe { libc::close(fd) };
    assert_eq!(rc, -1, "close reports it");
    assert_eq!(errno(std::io::Error::last_os_error()), libc::ENOSPC);
    drop(m);
    drop(tmpfs);
}

/// `yonder mount` refuses a non-empty mount point unless told to mount
/// over it; the hidden files are back after the unmount.
fn mounting_over_a_non_empty_directory_needs_consent(v: Variant) {
    let backing = tempfile::Builder::new()
        .prefix("yonder-backing")
        .tempdir()
        .unwrap();
    fs::write(backing.path().join("remote"), b"r").unwrap();
    let parent = tempfile::Builder::new().prefix("yonder-mnt").tempdir().unwrap();
    let mountpoint = parent.path().join("mnt");
    fs::create_dir(&mountpoint).unwrap();
    fs::write(mountpoint.join("hidden"), b"h").unwrap();
    let said = Mount::refused(v, backing.path(), &mountpoint, &[]);
    assert!(said.contains("not empty"), "{said}");
    assert!(!is_mounted(&mountpoint));
    for extra in [&["--allow-non-empty"][..], &["-o", "nonempty"]] {
        let parent = tempfile::Builder::new().prefix("yonder-mnt").tempdir().unwrap();
        let mountpoint = parent.path().join("mnt");
        fs::create_dir(&mountpoint).unwrap();
        fs::write(mountpoint.join("hidden"), b"h").unwrap();
        let backing = tempfile::Builder::new()
            .prefix("yonder-backing")
            .tempdir()
            .unwrap();
        fs::write(backing.path().join("remote"), b"r").unwrap();
        let mut m = Mount::start_at(v, backing, parent, extra);
        assert!(!m.at("hidden").exists(), "hidden by the mount ({extra:?})");
        assert_eq!(fs::read(m.at("remote")).unwrap(), b"r");
        assert_eq!(m.terminate(), Some(0));
        assert_eq!(fs::read(m.at("hidden")).unwrap(), b"h", "back after the unmount");
        assert!(!m.at("remote").exists());
    }
}

/// An editor's atomic save (write a temp file, rename it over the name)
/// while others read the name: every read is the old or the new version,
/// whole; never a missing name, an empty read or a cut one. Saved through
/// the mount, and on the remote behind the mount's back.
fn atomic_saves_are_seen_whole(v: Variant) {
    let m = Mount::start(v, &[]);
    for through_mount in [true, false] {
        let dir = if through_mount { m.at("") } else { m.disk("") };
        fs::write(dir.join("doc"), version(0)).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Several readers at once, each retrying on its own.
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (doc, done) = (m.at("doc"), done.clone());
                std::thread::spawn(move || {
                    let (mut reads, mut bad) = (0, Vec::new());
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        reads += 1;
                        match fs::read(&doc) {
                            Ok(data) if is_version(&data) => {}
                            Ok(data) => bad.push(format!("{} bytes: {:?}", data.len(), tail(&data))),
                            Err(e) => bad.push(e.to_string()),
                        }
                    }
                    (reads, bad)
                })
            })
            .collect();
        for i in 1..=500 {
            fs::write(dir.join(".tmp"), version(i)).unwrap();
            fs::rename(dir.join(".tmp"), dir.join("doc")).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            let (reads, bad) = r.join().unwrap();
            assert!(reads > 0);
            assert!(
                bad.is_empty(),
                "through mount {through_mount}: {} bad of {reads} reads, first: {:?}",
                bad.len(),
                &bad[..bad.len().min(5)]
            );
        }
    }

    fn version(i: usize) -> String {
        (1..=i + 100).map(|n| format!("{n}\n")).collect()
    }

    /// A whole version: `1..=n`, one number per line.
    fn is_version(data: &[u8]) -> bool {
        let text = String::from_utf8_lossy(data);
        let lines: Vec<&str> = text.lines().collect();
        !lines.is_empty() && text.ends_with('\n') && lines.last() == Some(&lines.len().to_string().as_str())
    }

    fn tail(data: &[u8]) -> String {
        String::from_utf8_lossy(&data[data.len().saturating_sub(12)..]).into_owned()
    }
}

/// A file kept open sees data appended on the remote once its attributes
/// are refreshed (the head that came with the open is not the whole file
/// any more).
fn open_file_sees_remote_growth(v: Variant) {
    let m = Mount::start(v, &["--attr-ttl", "1"]);
    fs::write(m.disk("log"), b"line1\n").unwrap();
    let mut f = File::open(m.at("log")).unwrap();
    let mut got = String::new();
    f.read_to_string(&mut got).unwrap();
    assert_eq!(got, "line1\n");
    OpenOptions::new()
        .append(true)
        .open(m.disk("log"))
        .unwrap()
        .write_all(b"line2\n")
        .unwrap();
    // Within the attribute TTL plus a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let len = f.metadata().unwrap().len();
        let mut more = String::new();
        f.read_to_string(&mut more).unwrap();
        got.push_str(&more);
        if got == "line1\nline2\n" {
            assert_eq!(len, 12);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after the TTL: fstat says {len} bytes, read gave {got:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A listing the kernel keeps goes once the names TTL ends, even when the
/// directory's mtime does not tell (SFTP's whole seconds, a change in the
/// same second): a name made on the remote shows within the TTL.
fn remote_name_shows_once_the_listing_expires(v: Variant) {
    let m = Mount::start(v, &["--attr-ttl", "1", "--dir-ttl", "1"]);
    fs::create_dir(m.disk("d")).unwrap();
    fs::write(m.disk("d/a"), b"").unwrap();
    let names = || -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(m.at("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    // Listed twice: the second open may keep what the first read.
    assert_eq!(names(), ["a"]);
    assert_eq!(names(), ["a"]);
    let mtime = fs::metadata(m.disk("d")).unwrap().modified().unwrap();
    fs::write(m.disk("d/b"), b"").unwrap();
    File::open(m.disk("d")).unwrap().set_modified(mtime).unwrap();
    // The TTL, and as much again for the mount to be slow.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let now = names();
        if now == ["a", "b"] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "3 s after a name was made on the remote the listing is {now:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

mount_suite!(
    with_nfs:
    open_flags_append_trunc_excl,
    truncate_and_ftruncate,
    chmod_chown_utimens_with_nanoseconds,
    symlinks_hard_links_and_inode_numbers,
    rename_over_existing_for_atomic_save,
    rename_noreplace_and_exchange,
    rename_directory_with_open_file_beneath,
    unlinked_open_file_stays_usable,
    statfs_shows_the_remote,
    fsync_reaches_the_remote_disk,
    write_errors_reach_the_application,
    posix_fallocate_reaches_the_remote,
    seek_data_and_seek_hole,
    ioctl_is_quiet_and_enotty,
    xattrs_round_trip,
    fifos_and_device_nodes,
    directories_and_errno,
    large_files_round_trip,
    sigterm_flushes_and_unmounts,
    second_sigterm_stops_waiting_for_open_files,
    sigint_and_sighup_unmount_too,
    yonder_unmount_ends_the_mount,
    killed_mount_is_cleaned_up,
    read_only_refuses_changes,
    mounting_over_a_non_empty_directory_needs_consent,
    large_directories_list_and_remove_completely,
    writes_through_two_descriptors_land_in_order,
    files_on_two_file_systems_stay_apart,
    atomic_saves_are_seen_whole,
    open_file_sees_remote_growth,
    remote_name_shows_once_the_listing_expires,
);
