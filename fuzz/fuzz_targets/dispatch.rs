//! The agent's request handling, on requests decoded from arbitrary bytes,
//! against a real directory tree.
//!
//! Input: one byte of flags (bit 0: serve the deep root, whose own path is
//! so long that wire paths of a few hundred bytes take the agent's
//! `/proc/self/fd/N/rest` route), then postcard-encoded `Request`s back to
//! back, as they travel in frame bodies, until one does not decode (at most
//! [`MAX_REQUESTS`]). Each input runs on a fresh `Dispatcher` over an empty
//! root, as a fresh session would.
//!
//! Checked: no panic (the agent turns a panic into an EIO response; here it
//! is a crash), every response survives encoding and decoding, a read's data
//! is no longer than asked, spliced and `pread` reads of a regular file
//! agree, the root is still a directory, and nothing outside the root
//! changed: the files and directories around it, a sentinel file beside it
//! included, are compared with a snapshot after every input.
//!
//! The few ways the requests are constrained, each because of a documented
//! behaviour rather than a bug, are in [`constrain`].

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use yonder_agent::fuzzing::Dispatcher;
use yonder_proto::{
    decode_body, encode_frame, file_type, open_flags, Handle, Message, Request, Response, TreeBudget,
    WirePath, MAX_IO_SIZE,
};

/// Requests run per input.
const MAX_REQUESTS: usize = 64;
/// Largest read (and `OpenRead` prefetch) run; see [`constrain`].
const MAX_READ: u32 = 256 * 1024;
/// Largest `Fallocate` length run; see [`constrain`].
const MAX_FALLOCATE: u64 = 1 << 20;
/// Character devices a `Mknod` may create: null, zero, full, urandom.
const SAFE_CHAR_DEVICES: [(u32, u32); 4] = [(1, 3), (1, 5), (1, 7), (1, 9)];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let world = world();
    let root = if flags & 1 == 0 {
        &world.shallow
    } else {
        &world.deep
    };
    reset(root);
    let dispatcher = Dispatcher::new(root).expect("serving the fuzz root");
    for _ in 0..MAX_REQUESTS {
        let Ok((request, after)) = postcard::take_from_bytes::<Request>(rest) else {
            break;
        };
        rest = after;
        if let Some(request) = constrain(request) {
            run(&dispatcher, request);
        }
    }
    drop(dispatcher);
    assert!(
        fs::symlink_metadata(root).expect("the root").is_dir(),
        "the root was replaced"
    );
    let now = snapshot(&world.watched);
    assert!(
        now == world.before,
        "something outside the root changed:\nbefore {:?}\nafter  {now:?}",
        world.before
    );
});

/// Adjusts a request that would do something the agent does by design but
/// a fuzzer must not: leave the sandbox through a symlink, block, or touch
/// hardware. `None` skips it.
fn constrain(request: Request) -> Option<Request> {
    Some(match request {
        // Symlinks inside the tree are followed, as the remote kernel
        // follows them (ARCHITECTURE.md: paths are confined lexically, as
        // with sshfs), so a link to `/` or `..` leads out by design. Targets
        // here keep to the link's own directory and below.
        Request::Symlink { target, path, owner } => Request::Symlink {
            target: confined_target(&target),
            path,
            owner,
        },
        // Opening a FIFO blocks until its other end is opened, and reading
        // or writing one blocks on an empty or full pipe, as locally: the
        // agent runs such requests on its blocking pool (never inline), so
        // one stuck request stalls only itself, and serve() stops waiting
        // for it 10 s after the client leaves. Here they would stall the
        // fuzzer, so every open is non-blocking.
        Request::Open {
            path,
            flags,
            mode,
            owner,
        } => Request::Open {
            path,
            flags: flags | open_flags::NONBLOCK,
            mode,
            owner,
        },
        Request::OpenRead {
            path,
            flags,
            prefetch,
        } => Request::OpenRead {
            path,
            flags: flags | open_flags::NONBLOCK,
            prefetch: prefetch.min(MAX_READ),
        },
        // As root the agent creates any device asked for, as mknod(1)
        // would: opening a disk, a watchdog or /dev/mem through it is not
        // something to do at random. Character devices become harmless
        // ones; block devices get number 0:0, which names no device.
        Request::Mknod {
            path,
            mode,
            rdev_major,
            rdev_minor,
            owner,
        } => {
            let (rdev_major, rdev_minor) = match mode & file_type::MASK {
                file_type::CHAR => {
                    SAFE_CHAR_DEVICES[(rdev_major ^ rdev_minor) as usize % SAFE_CHAR_DEVICES.len()]
                }
                _ => (0, 0),
            };
            Request::Mknod {
                path,
                mode,
                rdev_major,
                rdev_minor,
                owner,
            }
        }
        // The agent clamps reads to MAX_IO_SIZE itself (unit-tested); a
        // lower bound here keeps executions fast over sparse files and
        // /dev/zero.
        Request::Read { handle, offset, len } => Request::Read {
            handle,
            offset,
            len: len.min(MAX_READ),
        },
        // The fuzz root is on tmpfs where there is one: allocating would
        // take memory, and elsewhere disk, of the whole machine.
        Request::Fallocate {
            handle,
            offset,
            len,
            mode,
        } => Request::Fallocate {
            handle,
            offset,
            len: len.min(MAX_FALLOCATE),
            mode,
        },
        // What an operation carries is constrained as if sent alone.
        Request::Once {
            id,
            settled_below,
            request,
        } => Request::Once {
            id,
            settled_below,
            request: Box::new(constrain(*request)?),
        },
        other => other,
    })
}

/// `target` without leading slashes and `..` components.
fn confined_target(target: &[u8]) -> WirePath {
    let parts: Vec<&[u8]> = target
        .split(|&b| b == b'/')
        .filter(|part| !part.is_empty() && *part != b"..")
        .collect();
    WirePath::from(parts.join(&b'/'))
}

fn run(dispatcher: &Dispatcher, request: Request) {
    let response = match request {
        Request::Read { handle, offset, len } => read(dispatcher, handle, offset, len),
        Request::ListTree { path, cursor, budget } => list_tree(dispatcher, path, cursor, budget),
        request => dispatcher.handle(request),
    };
    // Whatever the agent answers goes through the codec intact.
    let frame = encode_frame(7, &Message::Response(response.clone())).expect("a response fits in a frame");
    let decoded = decode_body::<Message>(&frame[12..]).expect("a response decodes");
    assert_eq!(decoded, Message::Response(response));
}

/// A rich listing, checked: the directory asked for first, every other
/// one below it; contents only of regular files, as long as the file's
/// size and within the budget; no directory twice.
fn list_tree(dispatcher: &Dispatcher, path: WirePath, cursor: Option<u64>, budget: TreeBudget) -> Response {
    let response = dispatcher.handle(Request::ListTree {
        path: path.clone(),
        cursor,
        budget,
    });
    if let Response::Tree(tree) = &response {
        let top = tree.dirs.first().expect("the directory asked for comes first");
        assert_eq!(top.path, path);
        let mut seen = std::collections::HashSet::new();
        let mut data = 0;
        for dir in &tree.dirs {
            assert!(seen.insert(dir.path.clone()), "{:?} twice", dir.path);
            for entry in &dir.entries {
                let Some(contents) = &entry.data else { continue };
                let attr = entry.entry.attr.expect("contents come with attributes");
                assert!(attr.is_file(), "contents of a non-regular file");
                assert_eq!(contents.len() as u64, attr.size);
                data += contents.len();
            }
        }
        assert!(data <= budget.data_bytes as usize, "{data} bytes of contents");
        if tree.dirs.len() > 1 {
            let prefix = if path.is_empty() || &path[..] == b"." {
                Vec::new()
            } else {
                [&path[..], b"/"].concat()
            };
            for dir in &tree.dirs[1..] {
                assert!(dir.path.starts_with(&prefix), "{:?} outside {:?}", dir.path, path);
            }
        }
    }
    response
}

/// A read as the agent makes it when its output is a pipe (spliced where it
/// can be), checked against the `pread` it falls back to.
fn read(dispatcher: &Dispatcher, handle: Handle, offset: u64, len: u32) -> Response {
    let pread = Request::Read { handle, offset, len };
    let regular = matches!(dispatcher.handle(Request::Fstat { handle }), Response::Attr(a) if a.is_file());
    let response = match dispatcher.read_spliced(handle, offset, len) {
        None => dispatcher.handle(pread),
        Some(Ok(data)) => {
            if regular {
                let read = dispatcher.handle(pread);
                assert!(
                    matches!(&read, Response::Data(d) if *d == data),
                    "spliced {} bytes, pread answers {read:?}",
                    data.len()
                );
            }
            Response::Data(data)
        }
        Some(Err(response)) => {
            if regular {
                let read = dispatcher.handle(pread);
                assert!(
                    matches!(&read, Response::Error(_)),
                    "splicing fails with {response:?}, pread answers {read:?}"
                );
            }
            response
        }
    };
    if let Response::Data(data) = &response {
        assert!(
            data.len() <= len.min(MAX_IO_SIZE) as usize,
            "{} bytes for a read of {len}",
            data.len()
        );
    }
    response
}

struct World {
    /// A root with a short path.
    shallow: PathBuf,
    /// A root whose own path is close to PATH_MAX.
    deep: PathBuf,
    /// Everything around the roots.
    watched: Vec<PathBuf>,
    before: Vec<Seen>,
}

/// What a path outside the roots looks like; times only for paths whose
/// directory listing does not change when a root is reset.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    path: PathBuf,
    meta: Option<(u64, u32, u32, u32, u64, u64)>,
    times: Option<(i64, i64, i64, i64)>,
    listing: Vec<Vec<u8>>,
    content: Option<Vec<u8>>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let parent = std::env::var_os("YONDER_FUZZ_TMPDIR")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        remove_stale(&parent);
        let base = parent.join(format!("{PREFIX}{}", std::process::id()));
        let outside = base.join("outside");
        fs::create_dir_all(&outside).expect("creating the fuzz directory");
        let sentinel = outside.join("sentinel");
        fs::write(&sentinel, b"nothing outside the root may change\n").expect("writing the sentinel");
        let shallow = base.join("root");
        // Components of 250 bytes up to about 3,500 bytes in all.
        let mut deep_parent = base.join("deep");
        while deep_parent.as_os_str().len() < 3300 {
            deep_parent.push("d".repeat(250));
        }
        fs::create_dir_all(&deep_parent).expect("creating the deep root's parent");
        let deep = deep_parent.join("root");
        for root in [&shallow, &deep] {
            fs::create_dir(root).expect("creating a fuzz root");
        }
        // The deep root's ancestors between it and the base only change
        // through a change to one of these.
        let watched = vec![base.clone(), outside, sentinel, deep_parent];
        let before = snapshot(&watched);
        BASE.set(base).expect("set once");
        // libFuzzer ends with exit() after -runs or -max_total_time; after a
        // crash, the next run's remove_stale clears up.
        // SAFETY: registers a function that takes no arguments and does not
        // unwind (remove_dir_all reports errors, it does not panic).
        unsafe { libc::atexit(remove_base) };
        World {
            shallow,
            deep,
            watched,
            before,
        }
    })
}

const PREFIX: &str = "yonder-fuzz-dispatch-";

/// This process's directory, with the roots and the sentinel.
static BASE: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_base() {
    if let Some(base) = BASE.get() {
        let _ = fs::remove_dir_all(base);
    }
}

/// Removes the directories of fuzzing processes that are gone.
fn remove_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn snapshot(paths: &[PathBuf]) -> Vec<Seen> {
    paths
        .iter()
        .map(|path| {
            let meta = fs::symlink_metadata(path).ok();
            let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
            let mut listing: Vec<Vec<u8>> = match is_dir {
                true => fs::read_dir(path)
                    .map(|entries| {
                        entries
                            .flatten()
                            .map(|e| e.file_name().as_bytes().to_vec())
                            .collect()
                    })
                    .unwrap_or_default(),
                false => Vec::new(),
            };
            listing.sort();
            // Resetting a root changes the times of its parent.
            let holds_root = listing.iter().any(|name| name == b"root");
            Seen {
                path: path.clone(),
                meta: meta
                    .as_ref()
                    .map(|m| (m.ino(), m.mode(), m.uid(), m.gid(), m.nlink(), m.size())),
                times: meta
                    .as_ref()
                    .filter(|_| !holds_root)
                    .map(|m| (m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec())),
                listing,
                content: if is_dir { None } else { fs::read(path).ok() },
            }
        })
        .collect()
}

/// Empties a root for the next input.
fn reset(root: &Path) {
    if let Err(err) = fs::remove_dir_all(root) {
        if err.kind() != std::io::ErrorKind::NotFound {
            // Not root: a directory the input made unreadable.
            make_writable(root);
            fs::remove_dir_all(root).expect("emptying the fuzz root");
        }
    }
    fs::create_dir(root).expect("recreating the fuzz root");
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&entry.path());
            }
        }
    }
}
