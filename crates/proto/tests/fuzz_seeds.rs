//! The seed corpora of the fuzz targets (`fuzz/seeds/`), made from real
//! messages. The committed files must equal what this test builds; after a
//! change to the messages, rewrite them with
//! `YONDER_WRITE_FUZZ_SEEDS=1 cargo test -p yonder-proto --test fuzz_seeds`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use yonder_proto::*;

fn path(p: &str) -> WirePath {
    WirePath::from(p.as_bytes().to_vec())
}

fn frame(id: u64, message: Message) -> Vec<u8> {
    encode_frame(id, &message).unwrap()
}

/// A `frame` target input: chunk sizes (each stored as size - 1), then the
/// stream.
fn chunked(sizes: &[u8], frames: &[Vec<u8>]) -> Vec<u8> {
    assert!(sizes.len() < 8);
    let mut input = vec![sizes.len() as u8];
    input.extend(sizes.iter().map(|s| s - 1));
    input.extend(frames.concat());
    input
}

fn attr() -> Attr {
    Attr {
        ino: 42,
        mode: file_type::REGULAR | 0o644,
        nlink: 1,
        size: 5,
        blocks: 8,
        blksize: 4096,
        mtime: Timespec {
            sec: 1_700_000_000,
            nsec: 5,
        },
        dev: 2049,
        btime: Some(Timespec {
            sec: 1_600_000_000,
            nsec: 0,
        }),
        ..Attr::default()
    }
}

fn hello(software: &str) -> Message {
    Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
        software: software.to_string(),
    })
}

fn frame_seeds() -> BTreeMap<&'static str, Vec<u8>> {
    let requests = [
        hello("yonder client"),
        Message::Request(Request::Lstat { path: path("a/b") }),
        Message::Request(Request::Open {
            path: path("f"),
            flags: open_flags::READ_WRITE | open_flags::CREATE,
            mode: 0o644,
            owner: Some(Owner { uid: 1000, gid: 1000 }),
        }),
        Message::Request(Request::Write {
            handle: Handle(1),
            offset: 0,
            data: b"hello".to_vec(),
        }),
        Message::Request(Request::Read {
            handle: Handle(1),
            offset: 0,
            len: 4096,
        }),
        Message::Request(Request::Setattr {
            target: Target::Handle(Handle(1)),
            attr: SetAttr {
                size: Some(0),
                mtime: SetTime::Now,
                ..SetAttr::default()
            },
        }),
        Message::Request(Request::DirectListen {
            bind: Some("192.0.2.1".into()),
            connections: 4,
        }),
    ];
    let responses = [
        hello("yonder agent"),
        Message::Response(Response::Attr(attr())),
        Message::Response(Response::Opened {
            handle: Handle(1),
            attr: attr(),
        }),
        Message::Response(Response::Data(b"hello".to_vec())),
        Message::Response(Response::DirPage(DirPage {
            entries: vec![DirEntry {
                name: path("f"),
                attr: Some(attr()),
                xattrs: Some(vec![path("user.a")]),
            }],
            next: Some(1),
        })),
        Message::Response(Response::Error(WireError {
            errno: Errno::ENOENT,
            message: "lstat a/b: No such file or directory".into(),
        })),
        Message::Response(Response::OpenedRead {
            handle: Handle(2),
            attr: attr(),
            data: b"hello".to_vec(),
        }),
        Message::Response(Response::Written(5)),
        Message::Response(Response::Offset(4096)),
        Message::Response(Response::Direct {
            address: "192.0.2.1".into(),
            port: 40000,
            fingerprint: vec![7; 32],
            secrets: vec![serde_bytes::ByteBuf::from(vec![9; 32])],
        }),
        Message::Notice(Notice::Changed(vec![
            PathChange {
                path: path("d/f"),
                kind: ChangeKind::Content,
            },
            PathChange {
                path: path("d/g"),
                kind: ChangeKind::Entry,
            },
        ])),
        Message::Notice(Notice::Overflow),
    ];
    let frames = |messages: &[Message]| -> Vec<Vec<u8>> {
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| frame(i as u64, m.clone()))
            .collect()
    };
    let mut data = frame(9, Message::Response(Response::Data(vec![0xab; 300])));
    let cut = frame(10, Message::Response(Response::Data(vec![1; 20])));
    data.extend_from_slice(&cut[..cut.len() - 7]);
    let mut too_large = frame(1, Message::Response(Response::Done));
    too_large.extend_from_slice(&(MAX_FRAME_LEN + 1).to_be_bytes());
    too_large.extend_from_slice(&[0; 16]);
    let mut too_short = frame(1, Message::Response(Response::Done));
    too_short.extend_from_slice(&7u32.to_be_bytes());
    too_short.extend_from_slice(&[0; 7]);
    BTreeMap::from([
        ("requests", chunked(&[], &frames(&requests))),
        ("responses-chunked", chunked(&[1, 3, 7], &frames(&responses))),
        ("data-then-cut", chunked(&[5, 64], &[data])),
        ("too-large", chunked(&[], &[too_large])),
        ("too-short", chunked(&[2], &[too_short])),
    ])
}

/// A `dispatch` target input: flags (bit 0: the deep root), then requests.
fn requests(flags: u8, requests: &[Request]) -> Vec<u8> {
    let mut input = vec![flags];
    for request in requests {
        input.extend(postcard::to_allocvec(request).unwrap());
    }
    input
}

fn dispatch_seeds() -> BTreeMap<&'static str, Vec<u8>> {
    use Request::*;
    let rw_create = open_flags::READ_WRITE | open_flags::CREATE;
    let files = [
        Mkdir {
            path: path("a"),
            mode: 0o755,
            owner: None,
        },
        Open {
            path: path("a/f"),
            flags: rw_create,
            mode: 0o644,
            owner: Some(Owner { uid: 1, gid: 1 }),
        },
        Write {
            handle: Handle(1),
            offset: 0,
            data: b"hello, world".to_vec(),
        },
        Read {
            handle: Handle(1),
            offset: 0,
            len: 100,
        },
        Fstat { handle: Handle(1) },
        Lseek {
            handle: Handle(1),
            offset: 0,
            whence: SeekWhence::Hole,
        },
        Fallocate {
            handle: Handle(1),
            offset: 0,
            len: 8192,
            mode: fallocate_mode::KEEP_SIZE,
        },
        Setattr {
            target: Target::Handle(Handle(1)),
            attr: SetAttr {
                size: Some(5),
                ..SetAttr::default()
            },
        },
        Fsync {
            handle: Handle(1),
            datasync: true,
        },
        OpenRead {
            path: path("a/f"),
            flags: 0,
            prefetch: 4096,
        },
        Read {
            handle: Handle(2),
            offset: 2,
            len: 10,
        },
        Close { handle: Handle(1) },
        Close { handle: Handle(2) },
        ReadDir {
            path: path("a"),
            cursor: None,
            max_entries: 100,
        },
        Stat { path: path("a/f") },
    ];
    let names = [
        Fence {
            session: 7,
            generation: 1,
        },
        Mkdir {
            path: path("d"),
            mode: 0o700,
            owner: None,
        },
        Mknod {
            path: path("d/x"),
            mode: file_type::REGULAR | 0o600,
            rdev_major: 0,
            rdev_minor: 0,
            owner: None,
        },
        Symlink {
            target: path("x"),
            path: path("d/l"),
            owner: None,
        },
        Readlink { path: path("d/l") },
        Link {
            from: path("d/x"),
            to: path("d/y"),
        },
        Rename {
            from: path("d/y"),
            to: path("d/z"),
            flags: RenameFlags {
                noreplace: true,
                exchange: false,
            },
        },
        ReadDir {
            path: path("d"),
            cursor: None,
            max_entries: 1,
        },
        ReadDir {
            path: path("d"),
            cursor: Some(1),
            max_entries: 1,
        },
        Unlink { path: path("d/z") },
        Rmdir { path: path("d") },
        Access {
            path: path("d/x"),
            mask: access_mask::READ,
        },
        Statfs { path: path("") },
        Lstat {
            path: path("../outside"),
        },
    ];
    let xattrs = [
        Mknod {
            path: path("f"),
            mode: 0o644,
            rdev_major: 0,
            rdev_minor: 0,
            owner: None,
        },
        SetXattr {
            path: path("f"),
            name: path("user.a"),
            value: path("v"),
            mode: XattrMode::Create,
        },
        GetXattr {
            path: path("f"),
            name: path("user.a"),
        },
        ListXattr { path: path("f") },
        RemoveXattr {
            path: path("f"),
            name: path("user.a"),
        },
        Setattr {
            target: Target::Path(path("f")),
            attr: SetAttr {
                mode: Some(0o4755),
                uid: Some(2),
                gid: Some(u32::MAX),
                size: None,
                atime: SetTime::Set(Timespec { sec: 1, nsec: 2 }),
                mtime: SetTime::Now,
            },
        },
    ];
    let specials = [
        Mknod {
            path: path("p"),
            mode: file_type::FIFO | 0o644,
            rdev_major: 0,
            rdev_minor: 0,
            owner: None,
        },
        Open {
            path: path("p"),
            flags: open_flags::READ_WRITE,
            mode: 0,
            owner: None,
        },
        Write {
            handle: Handle(1),
            offset: 0,
            data: b"through the pipe".to_vec(),
        },
        Read {
            handle: Handle(1),
            offset: 0,
            len: 100,
        },
        Mknod {
            path: path("z"),
            mode: file_type::CHAR | 0o644,
            rdev_major: 1,
            rdev_minor: 5,
            owner: None,
        },
        OpenRead {
            path: path("z"),
            flags: 0,
            prefetch: 10,
        },
        Read {
            handle: Handle(2),
            offset: 0,
            len: 10,
        },
        Mknod {
            path: path("s"),
            mode: file_type::SOCKET | 0o644,
            rdev_major: 0,
            rdev_minor: 0,
            owner: None,
        },
        Open {
            path: path("s"),
            flags: open_flags::READ_ONLY,
            mode: 0,
            owner: None,
        },
        Symlink {
            target: path("/etc"),
            path: path("up"),
            owner: None,
        },
        Unlink { path: path("") },
        Rename {
            from: path("p"),
            to: path("."),
            flags: RenameFlags::default(),
        },
    ];
    let long = "n".repeat(200);
    let deep = [
        Mkdir {
            path: path(&long),
            mode: 0o755,
            owner: None,
        },
        Mkdir {
            path: path(&format!("{long}/{long}")),
            mode: 0o755,
            owner: None,
        },
        Open {
            path: path(&format!("{long}/{long}/{long}")),
            flags: rw_create,
            mode: 0o600,
            owner: None,
        },
        Lstat {
            path: path(&format!("{long}/{long}/{long}")),
        },
        Rename {
            from: path(&format!("{long}/{long}/{long}")),
            to: path(&format!("{long}/f")),
            flags: RenameFlags::default(),
        },
        ReadDir {
            path: path(&long),
            cursor: None,
            max_entries: 10,
        },
    ];
    // Operations sent again after a cut, answered from the reply records.
    let once = |id: u64, settled_below: u64, request: Request| Once {
        id,
        settled_below,
        request: Box::new(request),
    };
    let exclusive = Open {
        path: path("lock"),
        flags: open_flags::WRITE_ONLY | open_flags::CREATE | open_flags::EXCLUSIVE,
        mode: 0o600,
        owner: None,
    };
    let made = Mkdir {
        path: path("m"),
        mode: 0o755,
        owner: None,
    };
    let operations = [
        Fence {
            session: 9,
            generation: 1,
        },
        once(1, 1, made.clone()),
        once(1, 1, made.clone()),
        once(2, 1, exclusive.clone()),
        once(2, 1, exclusive),
        once(2, 1, made.clone()),
        once(3, 3, Rmdir { path: path("m") }),
        once(4, 4, once(5, 4, made)),
        once(0, 5, Ping),
    ];
    let budget = TreeBudget {
        max_bytes: 4096,
        max_entries: 100,
        max_depth: 8,
        file_max: 4096,
        data_bytes: 65536,
    };
    let tree = [
        Mkdir {
            path: path("t"),
            mode: 0o755,
            owner: None,
        },
        Mkdir {
            path: path("t/sub"),
            mode: 0o755,
            owner: None,
        },
        Open {
            path: path("t/sub/small"),
            flags: rw_create,
            mode: 0o644,
            owner: None,
        },
        Write {
            handle: Handle(1),
            offset: 0,
            data: b"contents".to_vec(),
        },
        Symlink {
            target: path("sub/small"),
            path: path("t/link"),
            owner: None,
        },
        Mknod {
            path: path("t/sub/fifo"),
            mode: file_type::FIFO | 0o644,
            rdev_major: 0,
            rdev_minor: 0,
            owner: None,
        },
        ListTree {
            path: path(""),
            cursor: None,
            budget,
        },
        ListTree {
            path: path("t"),
            cursor: None,
            budget: TreeBudget {
                max_bytes: 1,
                max_entries: 1,
                ..budget
            },
        },
        ListTree {
            path: path("t"),
            cursor: Some(1),
            budget,
        },
    ];
    BTreeMap::from([
        ("operations", requests(0, &operations)),
        ("files", requests(0, &files)),
        ("tree", requests(0, &tree)),
        ("names", requests(0, &names)),
        ("xattrs", requests(0, &xattrs)),
        ("specials", requests(0, &specials)),
        ("deep", requests(1, &deep)),
    ])
}

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
}

fn check(target: &str, seeds: BTreeMap<&'static str, Vec<u8>>) {
    let dir = seeds_dir(target);
    if std::env::var_os("YONDER_WRITE_FUZZ_SEEDS").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut committed = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.unwrap();
        committed.insert(
            entry.file_name().into_string().unwrap(),
            std::fs::read(entry.path()).unwrap(),
        );
    }
    let built: BTreeMap<String, Vec<u8>> = seeds.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert!(
        committed == built,
        "fuzz/seeds/{target} is out of date: rewrite it with YONDER_WRITE_FUZZ_SEEDS=1 (see this file)"
    );
}

#[test]
fn frame_seeds_are_current() {
    check("frame", frame_seeds());
}

#[test]
fn dispatch_seeds_are_current() {
    check("dispatch", dispatch_seeds());
}
