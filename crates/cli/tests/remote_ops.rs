//! Every protocol operation, success and errno paths, through the client
//! library against a real agent: spawned locally, and through real ssh.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use support::{fixture, Transport};
use yonder_remote::proto::{
    access_mask, file_type, open_flags, Errno, RenameFlags, SetAttr, SetTime, Target, Timespec, XattrMode,
};
use yonder_remote::{Bytes, Remote, RemoteError};

fn errno<T: std::fmt::Debug>(result: Result<T, RemoteError>) -> Errno {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.errno(),
    }
}

async fn stat_and_lstat(t: Transport) {
    let f = fixture(t).await;
    std::fs::write(f.disk("file"), b"hello").unwrap();
    std::os::unix::fs::symlink("file", f.disk("link")).unwrap();
    let disk = std::fs::metadata(f.disk("file")).unwrap();
    let a = f.client.lstat(b"file").await.unwrap();
    assert_eq!(a.ino, disk.ino());
    assert_eq!(a.size, 5);
    assert_eq!(a.mode, disk.mode());
    assert_eq!(a.nlink, 1);
    assert_eq!(a.uid, disk.uid());
    assert_eq!(a.gid, disk.gid());
    assert_eq!(a.blocks, disk.blocks());
    assert_eq!(
        (a.mtime.sec, a.mtime.nsec as i64),
        (disk.mtime(), disk.mtime_nsec())
    );
    assert_eq!(
        (a.ctime.sec, a.ctime.nsec as i64),
        (disk.ctime(), disk.ctime_nsec())
    );
    assert_eq!(
        (a.atime.sec, a.atime.nsec as i64),
        (disk.atime(), disk.atime_nsec())
    );
    let l = f.client.lstat(b"link").await.unwrap();
    assert!(l.is_symlink());
    assert_eq!(f.client.stat(b"link").await.unwrap().ino, disk.ino());
    let root = f.client.lstat(b"").await.unwrap();
    assert!(root.is_dir());
    assert_eq!(errno(f.client.lstat(b"missing").await), Errno::ENOENT);
    assert_eq!(errno(f.client.lstat(b"file/below").await), Errno::ENOTDIR);
}

async fn escaping_the_root_is_refused(t: Transport) {
    let f = fixture(t).await;
    std::fs::create_dir(f.disk("a")).unwrap();
    std::fs::write(f.disk("b"), b"x").unwrap();
    for bad in [&b"../etc/passwd"[..], b"a/../../x", b"..", b"a/../.."] {
        assert_eq!(
            errno(f.client.lstat(bad).await),
            Errno::EACCES,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        errno(f.client.mkdir(b"../outside", 0o755, None).await),
        Errno::EACCES
    );
    assert!(!f.root().parent().unwrap().join("outside").exists());
    assert_eq!(f.client.lstat(b"a/../b").await.unwrap().size, 1);
    assert_eq!(
        f.client.lstat(b"/b").await.unwrap().size,
        1,
        "a leading slash means the root"
    );
}

async fn read_write_fsync_close(t: Transport) {
    let f = fixture(t).await;
    let flags = open_flags::READ_WRITE | open_flags::CREATE | open_flags::EXCLUSIVE;
    let (h, attr) = f.client.open(b"new", flags, 0o640, None).await.unwrap();
    assert!(attr.is_file());
    assert_eq!(attr.permissions(), 0o640);
    assert_eq!(
        f.client
            .write(h, 0, Bytes::from_static(b"hello world"))
            .await
            .unwrap(),
        11
    );
    assert_eq!(
        f.client.write(h, 6, Bytes::from_static(b"WORLD")).await.unwrap(),
        5
    );
    f.client.fsync(h, false).await.unwrap();
    f.client.fsync(h, true).await.unwrap();
    assert_eq!(f.client.read(h, 0, 100).await.unwrap(), b"hello WORLD");
    assert_eq!(f.client.read(h, 6, 3).await.unwrap(), b"WOR");
    assert_eq!(f.client.read(h, 100, 10).await.unwrap(), b"");
    assert_eq!(f.client.fstat(h).await.unwrap().size, 11);
    f.client.close(h).await.unwrap();
    assert_eq!(std::fs::read(f.disk("new")).unwrap(), b"hello WORLD");
    assert_eq!(
        std::fs::metadata(f.disk("new")).unwrap().permissions().mode() & 0o7777,
        0o640
    );
    // The handle is gone after close.
    assert_eq!(errno(f.client.read(h, 0, 1).await), Errno::EBADF);
    // O_EXCL on an existing file, O_TRUNC, O_APPEND.
    assert_eq!(
        errno(f.client.open(b"new", flags, 0o640, None).await),
        Errno::EEXIST
    );
    let (h, _) = f
        .client
        .open(b"new", open_flags::WRITE_ONLY | open_flags::APPEND, 0, None)
        .await
        .unwrap();
    f.client.write(h, 0, Bytes::from_static(b"!")).await.unwrap();
    f.client.close(h).await.unwrap();
    assert_eq!(std::fs::read(f.disk("new")).unwrap(), b"hello WORLD!");
    let (h, a) = f
        .client
        .open(b"new", open_flags::WRITE_ONLY | open_flags::TRUNCATE, 0, None)
        .await
        .unwrap();
    assert_eq!(a.size, 0);
    f.client.close(h).await.unwrap();
    assert_eq!(std::fs::read(f.disk("new")).unwrap(), b"");
    assert_eq!(
        errno(f.client.open(b"missing", open_flags::READ_ONLY, 0, None).await),
        Errno::ENOENT
    );
    std::fs::create_dir(f.disk("dir")).unwrap();
    assert_eq!(
        errno(f.client.open(b"dir", open_flags::WRITE_ONLY, 0, None).await),
        Errno::EISDIR
    );
}

async fn open_read_returns_the_start_of_the_file(t: Transport) {
    let f = fixture(t).await;
    std::fs::write(f.disk("small"), b"tiny").unwrap();
    std::fs::write(f.disk("big"), vec![9u8; 300_000]).unwrap();
    let (h, attr, data) = f
        .client
        .open_read(b"small", open_flags::READ_ONLY, 65536)
        .await
        .unwrap();
    assert_eq!((attr.size, &data[..]), (4, &b"tiny"[..]));
    f.client.close(h).await.unwrap();
    let (h, _, data) = f
        .client
        .open_read(b"big", open_flags::READ_ONLY, 65536)
        .await
        .unwrap();
    assert_eq!(data.len(), 65536);
    assert_eq!(
        f.client.read(h, 65536, 10).await.unwrap(),
        vec![9u8; 10],
        "the handle reads on"
    );
    f.client.close(h).await.unwrap();
    // A FIFO is opened but not read: that would block or consume data.
    f.client
        .mknod(b"fifo", file_type::FIFO | 0o600, 0, 0, None)
        .await
        .unwrap();
    let (h, attr, data) = f
        .client
        .open_read(b"fifo", open_flags::READ_ONLY | open_flags::NONBLOCK, 4096)
        .await
        .unwrap();
    assert!(data.is_empty() && attr.file_type() == file_type::FIFO);
    f.client.close(h).await.unwrap();
    assert_eq!(
        errno(f.client.open_read(b"missing", open_flags::READ_ONLY, 10).await),
        Errno::ENOENT
    );
    assert_eq!(
        errno(f.client.open_read(b"small", open_flags::WRITE_ONLY, 10).await),
        Errno::EINVAL
    );
}

async fn fallocate_allocates_and_punches(t: Transport) {
    use yonder_remote::proto::fallocate_mode;
    let f = fixture(t).await;
    let (h, _) = f
        .client
        .open(b"f", open_flags::READ_WRITE | open_flags::CREATE, 0o644, None)
        .await
        .unwrap();
    f.client.fallocate(h, 0, 1 << 20, 0).await.unwrap();
    let disk = std::fs::metadata(f.disk("f")).unwrap();
    assert_eq!(disk.len(), 1 << 20);
    assert!(disk.blocks() * 512 >= 1 << 20, "space is allocated");
    f.client
        .fallocate(h, 1 << 20, 1 << 20, fallocate_mode::KEEP_SIZE)
        .await
        .unwrap();
    assert_eq!(
        f.client.fstat(h).await.unwrap().size,
        1 << 20,
        "KEEP_SIZE keeps the size"
    );
    f.client.write(h, 0, vec![7u8; 8192].into()).await.unwrap();
    f.client
        .fallocate(h, 0, 4096, fallocate_mode::KEEP_SIZE | fallocate_mode::PUNCH_HOLE)
        .await
        .unwrap();
    let data = f.client.read(h, 0, 8192).await.unwrap();
    assert!(data[..4096].iter().all(|b| *b == 0) && data[4096..].iter().all(|b| *b == 7));
    assert_eq!(
        errno(f.client.fallocate(h, 0, 1, 1 << 30).await),
        Errno::EOPNOTSUPP
    );
    f.client.close(h).await.unwrap();
}

async fn lseek_finds_data_and_holes(t: Transport) {
    use yonder_remote::proto::SeekWhence;
    const DATA: u64 = 3 << 29; // 1.5 GiB
    let f = fixture(t).await;
    let disk = std::fs::File::create(f.disk("sparse")).unwrap();
    disk.set_len(DATA).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&disk, &[5; 4096], DATA).unwrap();
    let size = DATA + 4096;
    let (h, _) = f
        .client
        .open(b"sparse", open_flags::READ_ONLY, 0, None)
        .await
        .unwrap();
    assert_eq!(f.client.lseek(h, 0, SeekWhence::Data).await.unwrap(), DATA);
    assert_eq!(f.client.lseek(h, 0, SeekWhence::Hole).await.unwrap(), 0);
    assert_eq!(f.client.lseek(h, DATA + 1, SeekWhence::Hole).await.unwrap(), size);
    assert_eq!(
        errno(f.client.lseek(h, size, SeekWhence::Data).await),
        Errno::ENXIO
    );
    f.client.close(h).await.unwrap();
    assert_eq!(errno(f.client.lseek(h, 0, SeekWhence::Data).await), Errno::EBADF);
}

async fn large_reads_and_writes_are_split_and_pipelined(t: Transport) {
    let f = fixture(t).await;
    let data: Vec<u8> = (0..9_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let flags = open_flags::WRITE_ONLY | open_flags::CREATE | open_flags::TRUNCATE;
    let (h, _) = f.client.open(b"big", flags, 0o644, None).await.unwrap();
    let pipeline = yonder_remote::transfer::Pipeline {
        chunk: 1 << 20,
        depth: 8,
    };
    let written = yonder_remote::transfer::write_from(f.client.clone(), h, 0, pipeline, &mut &data[..])
        .await
        .unwrap();
    assert_eq!(written, data.len() as u64);
    f.client.close(h).await.unwrap();
    assert!(std::fs::read(f.disk("big")).unwrap() == data);
    let (h, _) = f
        .client
        .open(b"big", open_flags::READ_ONLY, 0, None)
        .await
        .unwrap();
    let mut out = Vec::new();
    let read = yonder_remote::transfer::read_to(f.client.clone(), h, 0, pipeline, &mut out)
        .await
        .unwrap();
    assert_eq!(read, data.len() as u64);
    assert!(out == data);
}

async fn setattr_changes_mode_owner_size_and_times(t: Transport) {
    let f = fixture(t).await;
    std::fs::write(f.disk("f"), b"0123456789").unwrap();
    let path = || Target::Path(b"f".to_vec().into());
    let a = f
        .client
        .setattr(
            path(),
            SetAttr {
                mode: Some(0o600),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.permissions(), 0o600);
    let a = f
        .client
        .setattr(
            path(),
            SetAttr {
                size: Some(4),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.size, 4);
    assert_eq!(std::fs::read(f.disk("f")).unwrap(), b"0123");
    let before = std::fs::metadata(f.disk("f")).unwrap();
    let stamp = Timespec {
        sec: 1_000_000_000,
        nsec: 123_456_789,
    };
    let a = f
        .client
        .setattr(
            path(),
            SetAttr {
                mtime: SetTime::Set(stamp),
                atime: SetTime::Omit,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.mtime, stamp);
    let disk = std::fs::metadata(f.disk("f")).unwrap();
    assert_eq!((disk.mtime(), disk.mtime_nsec()), (1_000_000_000, 123_456_789));
    assert_eq!(
        (disk.atime(), disk.atime_nsec()),
        (before.atime(), before.atime_nsec()),
        "atime omitted"
    );
    let a = f
        .client
        .setattr(
            path(),
            SetAttr {
                atime: SetTime::Now,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(a.atime.sec >= before.atime() - 1 && a.atime.sec > 1_000_000_000);
    assert_eq!(a.mtime, stamp, "mtime omitted");
    // Changing the owner needs root; as non-root, setting it to ourselves works.
    let a = f
        .client
        .setattr(
            path(),
            SetAttr {
                uid: Some(disk.uid()),
                gid: Some(1),
                ..Default::default()
            },
        )
        .await;
    if rustix_is_root() {
        let a = a.unwrap();
        assert_eq!(a.gid, 1);
        assert_eq!(std::fs::metadata(f.disk("f")).unwrap().gid(), 1);
    } else {
        assert_eq!(errno(a), Errno::EPERM);
    }
    // ftruncate through a handle, after the file is unlinked.
    let (h, _) = f
        .client
        .open(b"f", open_flags::READ_WRITE, 0, None)
        .await
        .unwrap();
    f.client.unlink(b"f").await.unwrap();
    let a = f
        .client
        .setattr(
            Target::Handle(h),
            SetAttr {
                size: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.size, 2);
    assert_eq!(a.nlink, 0);
    assert_eq!(f.client.read(h, 0, 10).await.unwrap(), b"01");
    f.client.close(h).await.unwrap();
    assert_eq!(
        errno(
            f.client
                .setattr(
                    path(),
                    SetAttr {
                        size: Some(1),
                        ..Default::default()
                    }
                )
                .await
        ),
        Errno::ENOENT
    );
}

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

async fn namespace_operations(t: Transport) {
    let f = fixture(t).await;
    let a = f.client.mkdir(b"d", 0o750, None).await.unwrap();
    assert!(a.is_dir());
    assert_eq!(a.permissions(), 0o750);
    assert!(f.disk("d").is_dir());
    assert_eq!(errno(f.client.mkdir(b"d", 0o750, None).await), Errno::EEXIST);
    assert_eq!(errno(f.client.mkdir(b"nope/d", 0o750, None).await), Errno::ENOENT);
    std::fs::write(f.disk("d/inner"), b"x").unwrap();
    assert_eq!(errno(f.client.rmdir(b"d").await), Errno::ENOTEMPTY);
    assert_eq!(errno(f.client.unlink(b"d").await), Errno::EISDIR);
    assert_eq!(errno(f.client.rmdir(b"d/inner").await), Errno::ENOTDIR);
    f.client.unlink(b"d/inner").await.unwrap();
    assert_eq!(errno(f.client.unlink(b"d/inner").await), Errno::ENOENT);
    f.client.rmdir(b"d").await.unwrap();
    assert!(!f.disk("d").exists());

    // mknod: a FIFO and a regular file.
    let a = f
        .client
        .mknod(b"fifo", file_type::FIFO | 0o600, 0, 0, None)
        .await
        .unwrap();
    assert_eq!(a.file_type(), file_type::FIFO);
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &std::fs::symlink_metadata(f.disk("fifo")).unwrap().file_type()
    ));
    let a = f
        .client
        .mknod(b"plain", file_type::REGULAR | 0o644, 0, 0, None)
        .await
        .unwrap();
    assert!(a.is_file());
    assert_eq!(
        errno(
            f.client
                .mknod(b"plain", file_type::FIFO | 0o600, 0, 0, None)
                .await
        ),
        Errno::EEXIST
    );

    // symlink targets are stored verbatim, even dangling or absolute ones.
    for target in [&b"../../somewhere/else"[..], b"/etc/passwd", b"plain"] {
        f.client.unlink(b"sl").await.ok();
        let a = f.client.symlink(target, b"sl", None).await.unwrap();
        assert!(a.is_symlink());
        assert_eq!(f.client.readlink(b"sl").await.unwrap(), target);
        assert_eq!(
            std::fs::read_link(f.disk("sl")).unwrap().as_os_str().len(),
            target.len()
        );
    }
    assert_eq!(errno(f.client.readlink(b"plain").await), Errno::EINVAL);
    assert_eq!(errno(f.client.symlink(b"x", b"plain", None).await), Errno::EEXIST);

    // hard links share the inode and count.
    let a = f.client.link(b"plain", b"hard").await.unwrap();
    assert_eq!(a.nlink, 2);
    assert_eq!(a.ino, f.client.lstat(b"plain").await.unwrap().ino);
    assert_eq!(std::fs::metadata(f.disk("plain")).unwrap().nlink(), 2);
    assert_eq!(errno(f.client.link(b"plain", b"hard").await), Errno::EEXIST);
    assert_eq!(errno(f.client.link(b"missing", b"x").await), Errno::ENOENT);
}

async fn rename_with_flags(t: Transport) {
    let f = fixture(t).await;
    std::fs::write(f.disk("a"), b"A").unwrap();
    std::fs::write(f.disk("b"), b"B").unwrap();
    let noreplace = RenameFlags {
        noreplace: true,
        exchange: false,
    };
    let exchange = RenameFlags {
        noreplace: false,
        exchange: true,
    };
    assert_eq!(errno(f.client.rename(b"a", b"b", noreplace).await), Errno::EEXIST);
    f.client.rename(b"a", b"b", exchange).await.unwrap();
    assert_eq!(std::fs::read(f.disk("a")).unwrap(), b"B");
    assert_eq!(std::fs::read(f.disk("b")).unwrap(), b"A");
    // Plain rename replaces, as editors' atomic save needs.
    f.client.rename(b"a", b"b", RenameFlags::default()).await.unwrap();
    assert_eq!(std::fs::read(f.disk("b")).unwrap(), b"B");
    assert!(!f.disk("a").exists());
    f.client.rename(b"b", b"c", noreplace).await.unwrap();
    assert_eq!(
        errno(f.client.rename(b"missing", b"x", RenameFlags::default()).await),
        Errno::ENOENT
    );
    std::fs::create_dir(f.disk("dir")).unwrap();
    std::fs::create_dir(f.disk("full")).unwrap();
    std::fs::write(f.disk("full/x"), b"").unwrap();
    assert_eq!(
        errno(f.client.rename(b"c", b"dir", RenameFlags::default()).await),
        Errno::EISDIR
    );
    assert_eq!(
        errno(f.client.rename(b"dir", b"c", RenameFlags::default()).await),
        Errno::ENOTDIR
    );
    assert_eq!(
        errno(f.client.rename(b"dir", b"full", RenameFlags::default()).await),
        Errno::ENOTEMPTY
    );
    assert_eq!(
        errno(f.client.rename(b"c", b"../c", RenameFlags::default()).await),
        Errno::EACCES
    );
}

async fn readdir_pages_with_attributes(t: Transport) {
    let f = fixture(t).await;
    std::fs::create_dir(f.disk("many")).unwrap();
    for i in 0..2500 {
        std::fs::write(f.disk(&format!("many/f{i:05}")), vec![b'x'; i % 7]).unwrap();
    }
    let mut cursor = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = f.client.read_dir_page(b"many", cursor, 100).await.unwrap();
        assert!(page.entries.len() <= 100);
        pages += 1;
        for e in page.entries {
            let name = String::from_utf8(e.name.into_vec()).unwrap();
            let i: usize = name[1..].parse().unwrap();
            let attr = e.attr.expect("attributes come with the entry");
            assert_eq!(attr.size, (i % 7) as u64, "{name}");
            seen.push(i);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(pages >= 25, "{pages} pages");
    seen.sort();
    assert_eq!(
        seen,
        (0..2500).collect::<Vec<_>>(),
        "every entry exactly once, no . or .."
    );
    let all = f.client.read_dir_all(b"").await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        errno(f.client.read_dir_page(b"missing", None, 10).await),
        Errno::ENOENT
    );
    std::fs::write(f.disk("file"), b"").unwrap();
    assert_eq!(
        errno(f.client.read_dir_page(b"file", None, 10).await),
        Errno::ENOTDIR
    );
}

async fn statfs_xattr_access(t: Transport) {
    let f = fixture(t).await;
    let s = f.client.statfs(b"").await.unwrap();
    let disk = rustix::fs::statvfs(f.root()).unwrap();
    assert_eq!(s.blocks, disk.f_blocks);
    assert_eq!(s.block_size, disk.f_bsize);
    assert_eq!(s.files, disk.f_files);
    assert!(s.name_max >= 255);

    std::fs::write(f.disk("f"), b"").unwrap();
    f.client
        .setxattr(b"f", b"user.color", b"blue", XattrMode::Create)
        .await
        .unwrap();
    assert_eq!(
        errno(
            f.client
                .setxattr(b"f", b"user.color", b"red", XattrMode::Create)
                .await
        ),
        Errno::EEXIST
    );
    assert_eq!(
        errno(
            f.client
                .setxattr(b"f", b"user.none", b"x", XattrMode::Replace)
                .await
        ),
        Errno::ENODATA
    );
    f.client
        .setxattr(b"f", b"user.color", b"green", XattrMode::Replace)
        .await
        .unwrap();
    f.client
        .setxattr(b"f", b"user.empty", b"", XattrMode::Either)
        .await
        .unwrap();
    assert_eq!(f.client.getxattr(b"f", b"user.color").await.unwrap(), b"green");
    assert_eq!(f.client.getxattr(b"f", b"user.empty").await.unwrap(), b"");
    let big = vec![b'v'; 3000];
    f.client
        .setxattr(b"f", b"user.big", &big, XattrMode::Either)
        .await
        .unwrap();
    assert_eq!(f.client.getxattr(b"f", b"user.big").await.unwrap(), big);
    let mut names = f.client.listxattr(b"f").await.unwrap();
    names.sort();
    assert_eq!(
        names,
        vec![
            b"user.big".to_vec(),
            b"user.color".to_vec(),
            b"user.empty".to_vec()
        ]
    );
    f.client.removexattr(b"f", b"user.color").await.unwrap();
    assert_eq!(
        errno(f.client.getxattr(b"f", b"user.color").await),
        Errno::ENODATA
    );
    assert_eq!(
        errno(f.client.removexattr(b"f", b"user.color").await),
        Errno::ENODATA
    );
    assert_eq!(
        errno(f.client.getxattr(b"missing", b"user.x").await),
        Errno::ENOENT
    );

    // Listings carry each entry's xattr names, so clients can answer
    // "no such attribute" without asking.
    std::fs::write(f.disk("plain"), b"").unwrap();
    let listing = f.client.read_dir_all(b"").await.unwrap();
    let xattrs_of = |name: &[u8]| {
        let entry = listing.iter().find(|e| &e.name[..] == name).unwrap();
        let mut names: Vec<Vec<u8>> = entry
            .xattrs
            .clone()
            .unwrap()
            .into_iter()
            .map(|n| n.into_vec())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        xattrs_of(b"f"),
        vec![b"user.big".to_vec(), b"user.empty".to_vec()]
    );
    assert!(xattrs_of(b"plain").is_empty());

    f.client.access(b"f", access_mask::EXISTS).await.unwrap();
    f.client
        .access(b"f", access_mask::READ | access_mask::WRITE)
        .await
        .unwrap();
    assert_eq!(
        errno(f.client.access(b"missing", access_mask::EXISTS).await),
        Errno::ENOENT
    );
    if !rustix_is_root() {
        assert_eq!(
            errno(f.client.access(b"f", access_mask::EXECUTE).await),
            Errno::EACCES
        );
    }
}

async fn sixty_four_requests_in_flight(t: Transport) {
    let f = fixture(t).await;
    for i in 0..64 {
        std::fs::write(f.disk(&format!("f{i}")), vec![0u8; i]).unwrap();
    }
    // Hold a slow request (a read on a FIFO nobody writes) while the rest run:
    // responses must come back out of order, matched by id.
    f.client
        .mknod(b"fifo", file_type::FIFO | 0o600, 0, 0, None)
        .await
        .unwrap();
    let (fifo, _) = f
        .client
        .open(b"fifo", open_flags::READ_WRITE, 0, None)
        .await
        .unwrap();
    let client = f.client.clone();
    let slow = tokio::spawn(async move { client.read(fifo, 0, 5).await });
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64usize {
        let client = f.client.clone();
        tasks.spawn(async move { (i, client.lstat(format!("f{i}").as_bytes()).await) });
    }
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, attr) = joined.unwrap();
        assert_eq!(attr.unwrap().size, i as u64);
        done += 1;
    }
    assert_eq!(done, 64);
    assert!(
        !slow.is_finished(),
        "the FIFO read is still pending while 64 stats completed: {:?}",
        if slow.is_finished() {
            Some(slow.await)
        } else {
            None
        }
    );
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(f.disk("fifo"))
        .unwrap();
    std::io::Write::write_all(&mut writer, b"ready").unwrap();
    assert_eq!(slow.await.unwrap().unwrap(), b"ready");
}

macro_rules! over_every_transport {
    ($($test:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Transport::Local).await })*
        }
        mod ssh {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Transport::Ssh).await })*
        }
    };
}

over_every_transport!(
    stat_and_lstat,
    escaping_the_root_is_refused,
    read_write_fsync_close,
    large_reads_and_writes_are_split_and_pipelined,
    fallocate_allocates_and_punches,
    lseek_finds_data_and_holes,
    open_read_returns_the_start_of_the_file,
    setattr_changes_mode_owner_size_and_times,
    namespace_operations,
    rename_with_flags,
    readdir_pages_with_attributes,
    statfs_xattr_access,
    sixty_four_requests_in_flight,
);
