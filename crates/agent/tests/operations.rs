//! Each operation's happy path and its errors, against a real temporary tree.

// The Unix agent's own system calls (Windows is served by the portable
// agent instead): these run on Unix only.
#![cfg(unix)]

mod common;

use common::{connect, wire, Session};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use yonder_proto::{
    access_mask, file_type, open_flags, Attr, DirPage, Errno, Handle, Owner, RenameFlags, Request, Response,
    SeekWhence, SetAttr, SetTime, Target, Timespec, WirePath, XattrMode, MAX_IO_SIZE,
};

fn as_attr(response: Response) -> Attr {
    match response {
        Response::Attr(attr) => attr,
        other => panic!("expected Attr, got {other:?}"),
    }
}

fn bytes(response: Response) -> Vec<u8> {
    match response {
        Response::Bytes(bytes) | Response::Data(bytes) => bytes,
        other => panic!("expected bytes, got {other:?}"),
    }
}

async fn open(session: &mut Session, path: &str, flags: u32, mode: u32) -> (Handle, Attr) {
    match session
        .ok(Request::Open {
            path: wire(path),
            flags,
            mode,
            owner: None,
        })
        .await
    {
        Response::Opened { handle, attr } => (handle, attr),
        other => panic!("expected Opened, got {other:?}"),
    }
}

fn raw(bytes: &[u8]) -> WirePath {
    WirePath::from(bytes.to_vec())
}

#[tokio::test]
async fn paths_cannot_escape_the_root() {
    let mut s = connect().await;
    std::fs::create_dir(s.path("a")).unwrap();
    std::fs::write(s.path("b"), b"bee").unwrap();
    for escaping in ["..", "../x", "a/../../x", "/../etc/passwd"] {
        let (errno, message) = s.fail(Request::Lstat { path: wire(escaping) }).await;
        assert_eq!(errno, Errno::EACCES, "{escaping}");
        assert!(message.starts_with(&format!("lstat {escaping}: ")), "{message}");
    }
    assert_eq!(
        as_attr(s.ok(Request::Lstat { path: wire("a/../b") }).await).size,
        3
    );
    // A leading slash means the root, not the host's.
    assert_eq!(as_attr(s.ok(Request::Lstat { path: wire("/b") }).await).size, 3);
    assert!(as_attr(s.ok(Request::Stat { path: wire("") }).await).is_dir());
    assert!(as_attr(s.ok(Request::Stat { path: wire(".") }).await).is_dir());
    assert_eq!(
        s.errno(Request::Lstat { path: raw(b"a\0b") }).await,
        Errno::EINVAL
    );
}

#[tokio::test]
async fn stat_lstat_and_fstat_report_full_attributes() {
    let mut s = connect().await;
    std::fs::write(s.path("file"), b"hello").unwrap();
    std::os::unix::fs::symlink("file", s.path("link")).unwrap();
    let mtime = Timespec {
        sec: 1_600_000_000,
        nsec: 123_456_789,
    };
    let set = SetAttr {
        mtime: SetTime::Set(mtime),
        ..Default::default()
    };
    s.ok(Request::Setattr {
        target: Target::Path(wire("file")),
        attr: set,
    })
    .await;

    let meta = std::fs::metadata(s.path("file")).unwrap();
    let stat = as_attr(s.ok(Request::Stat { path: wire("link") }).await);
    assert!(stat.is_file());
    assert_eq!(stat.ino, meta.ino());
    assert_eq!(stat.mode, meta.mode());
    assert_eq!((stat.uid, stat.gid, stat.nlink), (meta.uid(), meta.gid(), 1));
    assert_eq!(stat.size, 5);
    assert_eq!(stat.mtime, mtime);
    assert_eq!(stat.blksize as u64, meta.blksize());
    assert_eq!(stat.blocks, meta.blocks());
    assert_eq!(stat.ctime.sec, meta.ctime());

    let lstat = as_attr(s.ok(Request::Lstat { path: wire("link") }).await);
    assert!(lstat.is_symlink());
    assert_eq!(lstat.size, 4);

    let (handle, opened) = open(&mut s, "link", open_flags::READ_ONLY, 0).await;
    assert_eq!(opened, stat);
    assert_eq!(as_attr(s.ok(Request::Fstat { handle }).await), stat);

    assert_eq!(
        s.errno(Request::Stat {
            path: wire("missing")
        })
        .await,
        Errno::ENOENT
    );
    assert_eq!(
        s.errno(Request::Stat {
            path: wire("file/below")
        })
        .await,
        Errno::ENOTDIR
    );
    assert_eq!(
        s.errno(Request::Fstat { handle: Handle(999) }).await,
        Errno::EBADF
    );
}

#[tokio::test]
async fn device_numbers_travel_split() {
    let mut s = connect().await;
    let request = Request::Mknod {
        path: wire("null"),
        mode: file_type::CHAR | 0o600,
        rdev_major: 1,
        rdev_minor: 3,
        owner: None,
    };
    match s.call(request).await {
        Response::Attr(attr) => {
            assert_eq!(attr.file_type(), file_type::CHAR);
            assert_eq!((attr.rdev_major, attr.rdev_minor), (1, 3));
        }
        // Containers without CAP_MKNOD.
        Response::Error(err) if err.errno == Errno::EPERM => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn readdir_pages_through_a_large_directory_exactly_once() {
    let mut s = connect().await;
    std::fs::create_dir(s.path("big")).unwrap();
    // Hard links: creating inodes is an order of magnitude slower on some
    // file systems, and the listing does not care.
    std::fs::File::create(s.path("big/entry-00000")).unwrap();
    for i in 1..10_000 {
        std::fs::hard_link(s.path("big/entry-00000"), s.path(&format!("big/entry-{i:05}"))).unwrap();
    }
    let mut names = HashSet::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let request = Request::ReadDir {
            path: wire("big"),
            cursor,
            max_entries: 100,
        };
        let Response::DirPage(page) = s.ok(request).await else {
            panic!("expected a page")
        };
        pages += 1;
        assert!(page.entries.len() <= 100);
        for entry in page.entries {
            let attr = entry.attr.expect("attributes of a present entry");
            assert!(attr.is_file());
            let name = String::from_utf8(entry.name.into_vec()).unwrap();
            assert!(names.insert(name.clone()), "{name} listed twice");
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(names.len(), 10_000);
    assert_eq!(
        pages, 100,
        "the last full page must already say there is no next one"
    );
    assert!(!names.contains(".") && !names.contains(".."));
}

async fn list(s: &mut Session, path: &str, cursor: Option<u64>, max_entries: u32) -> DirPage {
    match s
        .ok(Request::ReadDir {
            path: wire(path),
            cursor,
            max_entries,
        })
        .await
    {
        Response::DirPage(page) => page,
        other => panic!("expected a page, got {other:?}"),
    }
}

async fn list_errno(s: &mut Session, path: &str, cursor: Option<u64>) -> (Errno, String) {
    s.fail(Request::ReadDir {
        path: wire(path),
        cursor,
        max_entries: 10,
    })
    .await
}

#[tokio::test]
async fn readdir_small_cases_and_errors() {
    let mut s = connect().await;
    std::fs::create_dir(s.path("empty")).unwrap();
    std::fs::create_dir(s.path("d")).unwrap();
    std::fs::write(s.path("d/caf\u{e9}"), b"").unwrap();
    std::fs::write(s.path("d").join(OsStr::from_bytes(b"raw\xff")), b"").unwrap();
    std::os::unix::fs::symlink("nowhere", s.path("d/dangling")).unwrap();

    let page = list(&mut s, "empty", None, 10).await;
    assert!(page.entries.is_empty() && page.next.is_none());

    let page = list(&mut s, "d", None, 8).await;
    assert!(page.next.is_none());
    let names: HashSet<Vec<u8>> = page.entries.iter().map(|e| e.name.to_vec()).collect();
    let expected: HashSet<Vec<u8>> = ["café".as_bytes(), b"raw\xff", b"dangling"]
        .iter()
        .map(|n| n.to_vec())
        .collect();
    assert_eq!(names, expected, "non-UTF-8 names survive; . and .. are left out");
    let dangling = page
        .entries
        .iter()
        .find(|e| e.name.as_slice() == b"dangling")
        .unwrap();
    assert!(dangling.attr.unwrap().is_symlink(), "entries are lstat'ed");

    // max_entries 0 is clamped to 1.
    let first = list(&mut s, "d", None, 0).await;
    assert_eq!(first.entries.len(), 1);
    let cursor = first.next.expect("more entries follow");
    // A cursor continues its own directory only...
    let (errno, message) = list_errno(&mut s, "empty", Some(cursor)).await;
    assert_eq!(errno, Errno::EINVAL, "{message}");
    // ...and is good for one page: the failed attempt above consumed it.
    let (errno, message) = list_errno(&mut s, "d", Some(cursor)).await;
    assert_eq!(errno, Errno::EINVAL);
    assert!(message.contains("stale directory cursor"), "{message}");

    assert_eq!(list_errno(&mut s, "nope", None).await.0, Errno::ENOENT);
    assert_eq!(list_errno(&mut s, "d/dangling", None).await.0, Errno::ENOENT);
    std::fs::write(s.path("plain"), b"").unwrap();
    assert_eq!(list_errno(&mut s, "plain", None).await.0, Errno::ENOTDIR);
}

#[tokio::test]
async fn open_read_write_close() {
    let mut s = connect().await;
    let create = open_flags::READ_WRITE | open_flags::CREATE | open_flags::EXCLUSIVE;
    let (handle, attr) = open(&mut s, "new", create, 0o640).await;
    assert!(attr.is_file());
    assert_eq!(attr.permissions(), 0o640, "modes are applied exactly (umask 0)");
    assert_eq!(
        s.errno(Request::Open {
            path: wire("new"),
            flags: create,
            mode: 0o600,
            owner: None
        })
        .await,
        Errno::EEXIST
    );

    let written = s
        .ok(Request::Write {
            handle,
            offset: 3,
            data: b"world".to_vec(),
        })
        .await;
    assert_eq!(written, Response::Written(5));
    s.ok(Request::Write {
        handle,
        offset: 0,
        data: b"hi ".to_vec(),
    })
    .await;
    s.ok(Request::Fsync {
        handle,
        datasync: false,
    })
    .await;
    s.ok(Request::Fsync {
        handle,
        datasync: true,
    })
    .await;
    assert_eq!(std::fs::read(s.path("new")).unwrap(), b"hi world");

    assert_eq!(
        bytes(
            s.ok(Request::Read {
                handle,
                offset: 3,
                len: 3
            })
            .await
        ),
        b"wor"
    );
    // Past the end and huge lengths: what is there, nothing more.
    assert_eq!(
        bytes(
            s.ok(Request::Read {
                handle,
                offset: 6,
                len: u32::MAX
            })
            .await
        ),
        b"ld"
    );
    assert_eq!(
        bytes(
            s.ok(Request::Read {
                handle,
                offset: 100,
                len: 10
            })
            .await
        ),
        b""
    );

    assert_eq!(s.ok(Request::Close { handle }).await, Response::Done);
    assert_eq!(
        s.errno(Request::Read {
            handle,
            offset: 0,
            len: 1
        })
        .await,
        Errno::EBADF
    );
    assert_eq!(s.errno(Request::Close { handle }).await, Errno::EBADF);

    // O_TRUNC, and a write-only handle cannot be read.
    let (handle, attr) = open(&mut s, "new", open_flags::WRITE_ONLY | open_flags::TRUNCATE, 0).await;
    assert_eq!(attr.size, 0);
    assert_eq!(
        s.errno(Request::Read {
            handle,
            offset: 0,
            len: 1
        })
        .await,
        Errno::EBADF
    );

    assert_eq!(
        s.errno(Request::Open {
            path: wire("absent"),
            flags: 0,
            mode: 0,
            owner: None
        })
        .await,
        Errno::ENOENT
    );
    assert_eq!(
        s.errno(Request::Open {
            path: wire("x"),
            flags: 1 << 31,
            mode: 0,
            owner: None
        })
        .await,
        Errno::EINVAL
    );
}

#[tokio::test]
async fn large_reads_are_capped_at_the_io_size() {
    let mut s = connect().await;
    let data: Vec<u8> = (0..MAX_IO_SIZE as usize + 100).map(|i| (i % 251) as u8).collect();
    std::fs::write(s.path("big"), &data).unwrap();
    let (handle, _) = open(&mut s, "big", open_flags::READ_ONLY, 0).await;
    let got = bytes(
        s.ok(Request::Read {
            handle,
            offset: 0,
            len: u32::MAX,
        })
        .await,
    );
    assert_eq!(got.len(), MAX_IO_SIZE as usize);
    assert!(got == data[..MAX_IO_SIZE as usize]);

    // The largest write fits in a frame too.
    let (handle, _) = open(&mut s, "copy", open_flags::WRITE_ONLY | open_flags::CREATE, 0o600).await;
    let chunk = data[..MAX_IO_SIZE as usize].to_vec();
    let written = s
        .ok(Request::Write {
            handle,
            offset: 0,
            data: chunk,
        })
        .await;
    assert_eq!(written, Response::Written(MAX_IO_SIZE));
    assert!(std::fs::read(s.path("copy")).unwrap() == data[..MAX_IO_SIZE as usize]);
}

#[tokio::test]
async fn append_handles_write_at_the_end() {
    let mut s = connect().await;
    std::fs::write(s.path("log"), b"one\n").unwrap();
    let (handle, _) = open(&mut s, "log", open_flags::WRITE_ONLY | open_flags::APPEND, 0).await;
    s.ok(Request::Write {
        handle,
        offset: 0,
        data: b"two\n".to_vec(),
    })
    .await;
    assert_eq!(std::fs::read(s.path("log")).unwrap(), b"one\ntwo\n");
}

#[tokio::test]
async fn lseek_finds_data_and_holes() {
    const DATA: u64 = 1 << 20;
    const DATA_END: u64 = DATA + 8192;
    const SIZE: u64 = 4 << 20;
    let mut s = connect().await;
    let file = std::fs::File::create(s.path("sparse")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[9; (DATA_END - DATA) as usize], DATA).unwrap();
    file.set_len(SIZE).unwrap();
    drop(file);
    let (handle, _) = open(&mut s, "sparse", open_flags::READ_ONLY, 0).await;
    let lseek = |offset, whence| Request::Lseek {
        handle,
        offset,
        whence,
    };
    for (offset, whence, found) in [
        (0, SeekWhence::Data, DATA),
        (0, SeekWhence::Hole, 0),
        (DATA + 1, SeekWhence::Data, DATA + 1),
        (DATA, SeekWhence::Hole, DATA_END),
        (DATA_END, SeekWhence::Hole, DATA_END),
    ] {
        assert_eq!(
            s.ok(lseek(offset, whence)).await,
            Response::Offset(found),
            "{whence:?} from {offset}"
        );
    }
    // No data after the last, and nothing at or past the end: ENXIO, which
    // callers (cp, tar) take as "done", not as a failure.
    for (offset, whence) in [
        (DATA_END, SeekWhence::Data),
        (SIZE, SeekWhence::Data),
        (SIZE, SeekWhence::Hole),
    ] {
        let (errno, message) = s.fail(lseek(offset, whence)).await;
        assert_eq!(errno, Errno::ENXIO, "{whence:?} from {offset}");
        assert!(
            message.starts_with(&format!("lseek handle {handle}: ")),
            "{message}"
        );
    }
    s.ok(Request::Close { handle }).await;
    assert_eq!(s.errno(lseek(0, SeekWhence::Data)).await, Errno::EBADF);
}

#[tokio::test]
async fn directories_open_but_do_not_read() {
    let mut s = connect().await;
    std::fs::create_dir(s.path("dir")).unwrap();
    let (handle, attr) = open(&mut s, "dir", open_flags::READ_ONLY, 0).await;
    assert!(attr.is_dir());
    assert_eq!(
        s.errno(Request::Read {
            handle,
            offset: 0,
            len: 10
        })
        .await,
        Errno::EISDIR
    );
    assert_eq!(
        s.errno(Request::Open {
            path: wire("dir"),
            flags: open_flags::WRITE_ONLY,
            mode: 0,
            owner: None
        })
        .await,
        Errno::EISDIR
    );
    std::fs::write(s.path("file"), b"").unwrap();
    let flags = open_flags::READ_ONLY | open_flags::DIRECTORY;
    assert_eq!(
        s.errno(Request::Open {
            path: wire("file"),
            flags,
            mode: 0,
            owner: None
        })
        .await,
        Errno::ENOTDIR
    );
}

#[tokio::test]
async fn setattr_by_path_and_handle() {
    let mut s = connect().await;
    std::fs::write(s.path("f"), b"0123456789").unwrap();
    let before = as_attr(s.ok(Request::Lstat { path: wire("f") }).await);

    let atime = Timespec {
        sec: 1_000_000_000,
        nsec: 5,
    };
    let change = SetAttr {
        size: Some(4),
        mode: Some(0o4750),
        ..Default::default()
    };
    let after = as_attr(
        s.ok(Request::Setattr {
            target: Target::Path(wire("f")),
            attr: change,
        })
        .await,
    );
    assert_eq!(after.size, 4);
    assert_eq!(after.permissions(), 0o4750);
    let change = SetAttr {
        atime: SetTime::Set(atime),
        mtime: SetTime::Omit,
        ..Default::default()
    };
    let timed = as_attr(
        s.ok(Request::Setattr {
            target: Target::Path(wire("f")),
            attr: change,
        })
        .await,
    );
    assert_eq!(timed.atime, atime);
    assert_eq!(timed.mtime, after.mtime, "Omit leaves the time alone");
    assert_ne!(after.mtime, before.mtime, "truncating moves mtime");

    let (handle, _) = open(&mut s, "f", open_flags::READ_WRITE, 0).await;
    let now = SetAttr {
        mtime: SetTime::Now,
        size: Some(0),
        ..Default::default()
    };
    let after = as_attr(
        s.ok(Request::Setattr {
            target: Target::Handle(handle),
            attr: now,
        })
        .await,
    );
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (after.mtime.sec - wall).abs() <= 2,
        "mtime {:?} vs now {wall}",
        after.mtime
    );
    assert_eq!(after.atime, atime);
    assert_eq!(after.size, 0);

    // Ownership: uid alone leaves gid, gid alone leaves uid.
    let uid_only = SetAttr {
        uid: Some(after.uid),
        ..Default::default()
    };
    let same = as_attr(
        s.ok(Request::Setattr {
            target: Target::Handle(handle),
            attr: uid_only,
        })
        .await,
    );
    assert_eq!((same.uid, same.gid), (after.uid, after.gid));

    let bad = SetAttr {
        mtime: SetTime::Set(Timespec {
            sec: 0,
            nsec: 2_000_000_000,
        }),
        ..Default::default()
    };
    assert_eq!(
        s.errno(Request::Setattr {
            target: Target::Path(wire("f")),
            attr: bad
        })
        .await,
        Errno::EINVAL
    );
    let missing = SetAttr {
        mode: Some(0o600),
        ..Default::default()
    };
    assert_eq!(
        s.errno(Request::Setattr {
            target: Target::Path(wire("no")),
            attr: missing.clone()
        })
        .await,
        Errno::ENOENT
    );
    assert_eq!(
        s.errno(Request::Setattr {
            target: Target::Handle(Handle(12345)),
            attr: missing
        })
        .await,
        Errno::EBADF
    );
}

#[tokio::test]
async fn setattr_times_on_a_symlink_do_not_follow_it() {
    let mut s = connect().await;
    std::fs::write(s.path("target"), b"").unwrap();
    std::os::unix::fs::symlink("target", s.path("link")).unwrap();
    let target_before = as_attr(s.ok(Request::Lstat { path: wire("target") }).await);
    let when = Timespec {
        sec: 1_234_567_890,
        nsec: 0,
    };
    let change = SetAttr {
        mtime: SetTime::Set(when),
        ..Default::default()
    };
    let link = as_attr(
        s.ok(Request::Setattr {
            target: Target::Path(wire("link")),
            attr: change,
        })
        .await,
    );
    assert!(link.is_symlink());
    assert_eq!(link.mtime, when);
    assert_eq!(
        as_attr(s.ok(Request::Lstat { path: wire("target") }).await).mtime,
        target_before.mtime
    );
}

#[tokio::test]
async fn mkdir_rmdir_unlink() {
    let mut s = connect().await;
    let dir = as_attr(
        s.ok(Request::Mkdir {
            path: wire("d"),
            mode: 0o751,
            owner: None,
        })
        .await,
    );
    assert!(dir.is_dir());
    assert_eq!(dir.permissions(), 0o751);
    assert_eq!(
        s.errno(Request::Mkdir {
            path: wire("d"),
            mode: 0o755,
            owner: None
        })
        .await,
        Errno::EEXIST
    );
    assert_eq!(
        s.errno(Request::Mkdir {
            path: wire("x/y"),
            mode: 0o755,
            owner: None
        })
        .await,
        Errno::ENOENT
    );
    std::fs::write(s.path("d/f"), b"").unwrap();
    assert_eq!(
        s.errno(Request::Rmdir { path: wire("d") }).await,
        Errno::ENOTEMPTY
    );
    assert_eq!(
        s.errno(Request::Rmdir { path: wire("d/f") }).await,
        Errno::ENOTDIR
    );
    assert_eq!(s.errno(Request::Unlink { path: wire("d") }).await, Errno::EISDIR);
    assert_eq!(s.ok(Request::Unlink { path: wire("d/f") }).await, Response::Done);
    assert_eq!(
        s.errno(Request::Unlink { path: wire("d/f") }).await,
        Errno::ENOENT
    );
    assert_eq!(s.ok(Request::Rmdir { path: wire("d") }).await, Response::Done);
    assert!(!s.path("d").exists());
    // The root itself is not removable through the agent.
    assert_eq!(s.errno(Request::Rmdir { path: wire("") }).await, Errno::EBUSY);
}

#[tokio::test]
async fn mknod_makes_fifos_sockets_and_files() {
    let mut s = connect().await;
    let cases = [
        ("fifo", file_type::FIFO),
        ("sock", file_type::SOCKET),
        ("reg", file_type::REGULAR),
        ("plain", 0),
    ];
    for (name, kind) in cases {
        let request = Request::Mknod {
            path: wire(name),
            mode: kind | 0o640,
            rdev_major: 0,
            rdev_minor: 0,
            owner: None,
        };
        let attr = as_attr(s.ok(request).await);
        let expected = if kind == 0 { file_type::REGULAR } else { kind };
        assert_eq!(attr.file_type(), expected, "{name}");
        assert_eq!(attr.permissions(), 0o640, "{name}");
    }
    let dir = Request::Mknod {
        path: wire("dir"),
        mode: file_type::DIRECTORY | 0o755,
        rdev_major: 0,
        rdev_minor: 0,
        owner: None,
    };
    assert_eq!(s.errno(dir).await, Errno::EINVAL);
    let again = Request::Mknod {
        path: wire("fifo"),
        mode: file_type::FIFO | 0o600,
        rdev_major: 0,
        rdev_minor: 0,
        owner: None,
    };
    assert_eq!(s.errno(again).await, Errno::EEXIST);
}

#[tokio::test]
async fn rename_plain_noreplace_and_exchange() {
    let mut s = connect().await;
    std::fs::write(s.path("a"), b"A").unwrap();
    std::fs::write(s.path("b"), b"B").unwrap();
    let rename = |from: &str, to: &str, flags| Request::Rename {
        from: wire(from),
        to: wire(to),
        flags,
    };

    let noreplace = RenameFlags {
        noreplace: true,
        exchange: false,
    };
    let (errno, message) = s.fail(rename("a", "b", noreplace)).await;
    assert_eq!(errno, Errno::EEXIST);
    assert!(message.starts_with("rename a -> b: "), "{message}");

    let exchange = RenameFlags {
        noreplace: false,
        exchange: true,
    };
    s.ok(rename("a", "b", exchange)).await;
    assert_eq!(std::fs::read(s.path("a")).unwrap(), b"B");
    assert_eq!(std::fs::read(s.path("b")).unwrap(), b"A");

    s.ok(rename("a", "c", noreplace)).await;
    s.ok(rename("c", "b", RenameFlags::default())).await;
    assert!(!s.path("a").exists() && !s.path("c").exists());
    assert_eq!(std::fs::read(s.path("b")).unwrap(), b"B");

    assert_eq!(
        s.errno(rename("missing", "z", RenameFlags::default())).await,
        Errno::ENOENT
    );
    assert_eq!(
        s.errno(rename("b", "../outside", RenameFlags::default())).await,
        Errno::EACCES
    );
    std::fs::create_dir(s.path("d")).unwrap();
    std::fs::write(s.path("d/x"), b"").unwrap();
    std::fs::create_dir(s.path("e")).unwrap();
    std::fs::write(s.path("e/y"), b"").unwrap();
    assert_eq!(
        s.errno(rename("e", "d", RenameFlags::default())).await,
        Errno::ENOTEMPTY
    );
    assert_eq!(
        s.errno(rename("b", "d", RenameFlags::default())).await,
        Errno::EISDIR
    );
}

#[tokio::test]
async fn symlink_readlink_link() {
    let mut s = connect().await;
    // The target is content, stored verbatim even if it points outside.
    let target = "../../../etc/passwd";
    let request = Request::Symlink {
        target: wire(target),
        path: wire("ln"),
        owner: None,
    };
    let link = as_attr(s.ok(request).await);
    assert!(link.is_symlink());
    assert_eq!(link.size, target.len() as u64);
    assert_eq!(
        bytes(s.ok(Request::Readlink { path: wire("ln") }).await),
        target.as_bytes()
    );
    let raw_target = raw(b"caf\xe9");
    s.ok(Request::Symlink {
        target: raw_target,
        path: wire("ln2"),
        owner: None,
    })
    .await;
    assert_eq!(
        bytes(s.ok(Request::Readlink { path: wire("ln2") }).await),
        b"caf\xe9"
    );
    assert_eq!(
        s.errno(Request::Symlink {
            target: wire("x"),
            path: wire("ln"),
            owner: None
        })
        .await,
        Errno::EEXIST
    );

    std::fs::write(s.path("file"), b"data").unwrap();
    assert_eq!(
        s.errno(Request::Readlink { path: wire("file") }).await,
        Errno::EINVAL
    );
    assert_eq!(
        s.errno(Request::Readlink {
            path: wire("nothing")
        })
        .await,
        Errno::ENOENT
    );

    let linked = as_attr(
        s.ok(Request::Link {
            from: wire("file"),
            to: wire("hard"),
        })
        .await,
    );
    assert_eq!(linked.nlink, 2);
    assert_eq!(linked.ino, std::fs::metadata(s.path("file")).unwrap().ino());
    assert_eq!(
        s.errno(Request::Link {
            from: wire("file"),
            to: wire("hard")
        })
        .await,
        Errno::EEXIST
    );
    assert_eq!(
        s.errno(Request::Link {
            from: wire("none"),
            to: wire("h2")
        })
        .await,
        Errno::ENOENT
    );
}

#[tokio::test]
async fn statfs_and_access() {
    let mut s = connect().await;
    let Response::StatFs(fs) = s.ok(Request::Statfs { path: wire("") }).await else {
        panic!()
    };
    assert!(fs.blocks > 0 && fs.block_size > 0 && fs.name_max >= 255, "{fs:?}");
    assert_eq!(
        s.errno(Request::Statfs { path: wire("nope") }).await,
        Errno::ENOENT
    );

    std::fs::write(s.path("f"), b"").unwrap();
    std::fs::set_permissions(s.path("f"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        s.ok(Request::Access {
            path: wire("f"),
            mask: access_mask::EXISTS
        })
        .await,
        Response::Done
    );
    let rw = access_mask::READ | access_mask::WRITE;
    assert_eq!(
        s.ok(Request::Access {
            path: wire("f"),
            mask: rw
        })
        .await,
        Response::Done
    );
    // Nobody, root included, may execute a file without any x bit.
    assert_eq!(
        s.errno(Request::Access {
            path: wire("f"),
            mask: access_mask::EXECUTE
        })
        .await,
        Errno::EACCES
    );
    assert_eq!(
        s.errno(Request::Access {
            path: wire("g"),
            mask: access_mask::EXISTS
        })
        .await,
        Errno::ENOENT
    );
    assert_eq!(
        s.errno(Request::Access {
            path: wire("f"),
            mask: 0o10
        })
        .await,
        Errno::EINVAL
    );
}

#[tokio::test]
async fn extended_attributes() {
    let mut s = connect().await;
    std::fs::write(s.path("f"), b"").unwrap();
    let set = |name: &str, value: &[u8], mode| Request::SetXattr {
        path: wire("f"),
        name: wire(name),
        value: raw(value),
        mode,
    };
    match s.call(set("user.color", b"blue", XattrMode::Either)).await {
        Response::Done => {}
        Response::Error(err) if err.errno == Errno::EOPNOTSUPP => return, // file system without xattrs
        other => panic!("{other:?}"),
    }
    let get = |name: &str| Request::GetXattr {
        path: wire("f"),
        name: wire(name),
    };
    assert_eq!(bytes(s.ok(get("user.color")).await), b"blue");
    assert_eq!(
        s.errno(set("user.color", b"red", XattrMode::Create)).await,
        Errno::EEXIST
    );
    assert_eq!(
        s.errno(set("user.size", b"x", XattrMode::Replace)).await,
        Errno::ENODATA
    );

    // ext4 keeps a value within one block, so this stays below the agent's
    // first buffer; the retry on ERANGE has a unit test.
    let big = vec![b'z'; 3000];
    s.ok(set("user.big", &big, XattrMode::Create)).await;
    assert_eq!(bytes(s.ok(get("user.big")).await), big);

    let Response::Names(names) = s.ok(Request::ListXattr { path: wire("f") }).await else {
        panic!()
    };
    let names: HashSet<Vec<u8>> = names.into_iter().map(|n| n.into_vec()).collect();
    assert!(
        names.contains(&b"user.color"[..]) && names.contains(&b"user.big"[..]),
        "{names:?}"
    );

    s.ok(Request::RemoveXattr {
        path: wire("f"),
        name: wire("user.color"),
    })
    .await;
    assert_eq!(s.errno(get("user.color")).await, Errno::ENODATA);
    assert_eq!(
        s.errno(Request::RemoveXattr {
            path: wire("f"),
            name: wire("user.color")
        })
        .await,
        Errno::ENODATA
    );
    assert_eq!(
        s.errno(Request::GetXattr {
            path: wire("f"),
            name: raw(b"user.\0")
        })
        .await,
        Errno::EINVAL
    );
}

#[tokio::test]
async fn error_messages_name_operation_and_path() {
    let mut s = connect().await;
    let (errno, message) = s
        .fail(Request::Lstat {
            path: wire("no/such"),
        })
        .await;
    assert_eq!(errno, Errno::ENOENT);
    assert_eq!(message, "lstat no/such: No such file or directory");
    let (_, message) = s
        .fail(Request::Read {
            handle: Handle(31),
            offset: 0,
            len: 1,
        })
        .await;
    assert!(
        message.starts_with("read handle 31: Bad file descriptor"),
        "{message}"
    );
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[tokio::test]
async fn created_nodes_go_to_the_requested_owner_when_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut s = connect().await;
    let owner = Some(Owner { uid: 1234, gid: 5678 });
    let flags = open_flags::READ_WRITE | open_flags::CREATE;
    let Response::Opened { attr, .. } = s
        .ok(Request::Open {
            path: wire("f"),
            flags,
            mode: 0o6755,
            owner,
        })
        .await
    else {
        panic!()
    };
    assert_eq!((attr.uid, attr.gid), (1234, 5678));
    // chown would have cleared the set-id bits; the agent restores them.
    assert_eq!(attr.permissions(), 0o6755);

    let dir = as_attr(
        s.ok(Request::Mkdir {
            path: wire("d"),
            mode: 0o755,
            owner,
        })
        .await,
    );
    assert_eq!((dir.uid, dir.gid), (1234, 5678));
    let node = Request::Mknod {
        path: wire("p"),
        mode: file_type::FIFO | 0o600,
        rdev_major: 0,
        rdev_minor: 0,
        owner,
    };
    assert_eq!(as_attr(s.ok(node).await).uid, 1234);
    let link = as_attr(
        s.ok(Request::Symlink {
            target: wire("f"),
            path: wire("l"),
            owner,
        })
        .await,
    );
    assert_eq!((link.uid, link.gid), (1234, 5678));
    assert_eq!(
        std::fs::metadata(s.path("f")).unwrap().uid(),
        1234,
        "the link's target is untouched"
    );

    // An existing file opened with CREATE keeps its owner.
    std::fs::write(s.path("mine"), b"").unwrap();
    let other = Some(Owner { uid: 4321, gid: 4321 });
    let Response::Opened { attr, .. } = s
        .ok(Request::Open {
            path: wire("mine"),
            flags,
            mode: 0o644,
            owner: other,
        })
        .await
    else {
        panic!()
    };
    assert_eq!(attr.uid, 0);
}

#[tokio::test]
async fn setgid_directories_keep_their_group() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut s = connect().await;
    std::fs::create_dir(s.path("shared")).unwrap();
    std::os::unix::fs::chown(s.path("shared"), None, Some(999)).unwrap();
    std::fs::set_permissions(s.path("shared"), std::fs::Permissions::from_mode(0o2775)).unwrap();
    let owner = Some(Owner { uid: 1234, gid: 5678 });

    let flags = open_flags::WRITE_ONLY | open_flags::CREATE | open_flags::EXCLUSIVE;
    let Response::Opened { attr, .. } = s
        .ok(Request::Open {
            path: wire("shared/f"),
            flags,
            mode: 0o644,
            owner,
        })
        .await
    else {
        panic!()
    };
    assert_eq!((attr.uid, attr.gid), (1234, 999));

    let sub = as_attr(
        s.ok(Request::Mkdir {
            path: wire("shared/sub"),
            mode: 0o755,
            owner,
        })
        .await,
    );
    assert_eq!((sub.uid, sub.gid), (1234, 999));
    assert_eq!(
        sub.permissions() & 0o2000,
        0o2000,
        "subdirectories inherit setgid"
    );
}
