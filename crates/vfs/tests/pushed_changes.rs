//! The VFS following the changes an agent pushes, over a real link to an
//! agent served in process: what this mount does itself, echoed back by
//! the agent, leaves its caches as they were; what others do is seen.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

use std::sync::Arc;
use std::time::{Duration, Instant};
use yonder_remote::{Link, LinkOptions, Remote};
use yonder_testkit::agent::{TcpAgent, TcpConnector};
use yonder_testkit::faults::{Delayed, Op};
use yonder_testkit::observe::Counted;
use yonder_vfs::{open_flags, Caller, Errno, MemoryJournal, RenameFlags, Vfs, VfsOptions, ROOT_INO};

fn me() -> Caller {
    Caller {
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
        pid: std::process::id(),
        umask: 0o022,
    }
}

/// Waits (at most 5 s) until `check` holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(5), "{what}: not within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_of_this_mounts_changes_keep_the_caches_and_others_changes_show() {
    let dir = tempfile::tempdir().unwrap();
    let agent = TcpAgent::start(dir.path()).await.unwrap();
    let link = Link::start(
        Arc::new(TcpConnector { addr: agent.addr() }),
        LinkOptions::default(),
    )
    .await
    .unwrap();
    let options = VfsOptions {
        attr_ttl: Duration::from_secs(60),
        dir_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    };
    let vfs = Vfs::new(link.current().1, options, Arc::new(MemoryJournal::default()))
        .await
        .unwrap();
    vfs.follow(link.watch(), 1, |remote| remote);
    vfs.follow_changes(link.changes());
    eventually("changes pushed", || vfs.changes_pushed()).await;
    assert_eq!(vfs.ttls(), (Duration::from_secs(60), Duration::from_secs(60)));

    // The root listed: a name missing from it is known absent.
    let root = vfs.opendir(&me(), ROOT_INO).unwrap();
    vfs.readdir(root, 0).await.unwrap();
    // A directory made and filled here is known to hold only what was
    // put in it: an untar's lookups need no round trip.
    let d = vfs.mkdir(&me(), ROOT_INO, b"d", 0o755).await.unwrap();
    for name in [&b"a"[..], b"b", b"c"] {
        let (fh, _) = vfs
            .create(&me(), d.ino, name, 0o644, open_flags::WRITE_ONLY)
            .await
            .unwrap();
        vfs.write(fh, 0, b"data").await.unwrap();
        vfs.release(fh).await.unwrap();
    }
    // A change made by someone else, after the echoes of those: once it
    // shows, the echoes have been dealt with.
    std::fs::write(dir.path().join("marker"), b"m").unwrap();
    eventually("the marker", || {
        !matches!(vfs.lookup_ready(&me(), ROOT_INO, b"marker"), Some(Err(_)))
    })
    .await;
    let absent = vfs.lookup_ready(&me(), d.ino, b"never-made");
    assert!(
        matches!(&absent, Some(Err(e)) if e.errno() == Errno::ENOENT),
        "the echoes made the directory's names unknown: {absent:?}"
    );
    assert_eq!(vfs.lookup(&me(), d.ino, b"a").await.unwrap().size, 4);

    // Someone else adds a name there: it shows.
    std::fs::write(dir.path().join("d/new"), b"n").unwrap();
    eventually("the new name", || {
        !matches!(vfs.lookup_ready(&me(), d.ino, b"new"), Some(Err(_)))
    })
    .await;
    assert_eq!(vfs.lookup(&me(), d.ino, b"new").await.unwrap().size, 1);
    // ... or changes a file's content: its attributes are new.
    std::fs::write(dir.path().join("d/a"), b"longer data").unwrap();
    eventually("the new size", || {
        matches!(vfs.lookup_ready(&me(), d.ino, b"a"), Some(Ok(a)) if a.size == 11)
            || vfs.lookup_ready(&me(), d.ino, b"a").is_none()
    })
    .await;
    assert_eq!(vfs.lookup(&me(), d.ino, b"a").await.unwrap().size, 11);
    drop(agent);
}

/// A VFS over a TCP agent on a fresh directory, whose answers the
/// returned `Delayed` may hold back, following the changes the agent
/// pushes, with 60 s caches.
async fn delayed_mount() -> (tempfile::TempDir, TcpAgent, Arc<Delayed>, Arc<Vfs>) {
    let dir = tempfile::tempdir().unwrap();
    let (agent, remote, vfs) = mount_following_changes(dir.path(), Delayed::new).await;
    (dir, agent, remote, vfs)
}

/// A VFS over a real link to an agent serving `root`, through the remote
/// `wrap` puts in front of the link, following the changes the agent
/// pushes, with 60 s caches.
async fn mount_following_changes<R: Remote + 'static>(
    root: &std::path::Path,
    wrap: impl FnOnce(Arc<dyn Remote>) -> Arc<R>,
) -> (TcpAgent, Arc<R>, Arc<Vfs>) {
    let agent = TcpAgent::start(root).await.unwrap();
    let link = Link::start(
        Arc::new(TcpConnector { addr: agent.addr() }),
        LinkOptions::default(),
    )
    .await
    .unwrap();
    let remote = wrap(link.current().1);
    let options = VfsOptions {
        attr_ttl: Duration::from_secs(60),
        dir_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    };
    let vfs = Vfs::new(remote.clone(), options, Arc::new(MemoryJournal::default()))
        .await
        .unwrap();
    vfs.follow_changes(link.changes());
    eventually("changes pushed", || vfs.changes_pushed()).await;
    (agent, remote, vfs)
}

/// The agent pushes a notice of this mount's own rename, and it can come
/// in before the rename's answer: the moved directory keeps its place, and
/// names below it still resolve to the remote's paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_that_overtakes_this_mounts_rename_leaves_the_moved_directory_named() {
    let (dir, agent, remote, vfs) = delayed_mount().await;

    let a = vfs.mkdir(&me(), ROOT_INO, b"a", 0o755).await.unwrap();
    let b = vfs.mkdir(&me(), a.ino, b"b", 0o755).await.unwrap();
    let (fh, _) = vfs
        .create(&me(), b.ino, b"file", 0o644, open_flags::WRITE_ONLY)
        .await
        .unwrap();
    vfs.release(fh).await.unwrap();

    // Long enough for the notice of the move to be settled first.
    remote.answer_late(Op::Rename, Duration::from_millis(400));
    vfs.rename(&me(), ROOT_INO, b"a", ROOT_INO, b"z", RenameFlags::default())
        .await
        .unwrap();
    remote.clear();

    // As the kernel does, which moved its own entries: no lookup of the new
    // name first.
    let (fh, _) = vfs
        .create(&me(), b.ino, b"second", 0o644, open_flags::WRITE_ONLY)
        .await
        .expect("a name made below the moved directory");
    vfs.release(fh).await.unwrap();
    assert!(dir.path().join("z/b/second").exists());
    assert!(!dir.path().join("a").exists());
    assert_eq!(vfs.lookup(&me(), ROOT_INO, b"z").await.unwrap().ino, a.ino);
    drop(agent);
}

/// The notice of this mount's own creation can come in before the
/// creation's answer: it is not taken for someone else's new name, and the
/// directory this mount filled stays known (a lookup of a name never made
/// there needs no round trip).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_that_overtakes_this_mounts_creation_keeps_the_directory_known() {
    let (dir, agent, remote, vfs) = delayed_mount().await;
    let d = vfs.mkdir(&me(), ROOT_INO, b"d", 0o755).await.unwrap();

    // Long enough for the notices to be settled first.
    remote.answer_late(Op::Open, Duration::from_millis(400));
    let (fh, _) = vfs
        .create(&me(), d.ino, b"file", 0o644, open_flags::WRITE_ONLY)
        .await
        .unwrap();
    remote.clear();
    remote.answer_late(Op::Mkdir, Duration::from_millis(400));
    vfs.mkdir(&me(), d.ino, b"sub", 0o755).await.unwrap();
    remote.clear();
    vfs.release(fh).await.unwrap();

    // Someone else's change after those: once it shows, the notices of
    // this mount's creations have been dealt with.
    std::fs::write(dir.path().join("marker"), b"m").unwrap();
    eventually("the marker", || {
        !matches!(vfs.lookup_ready(&me(), ROOT_INO, b"marker"), Some(Err(_)))
    })
    .await;
    let absent = vfs.lookup_ready(&me(), d.ino, b"never-made");
    assert!(
        matches!(&absent, Some(Err(e)) if e.errno() == Errno::ENOENT),
        "the notices made the directory's names unknown: {absent:?}"
    );
    drop(agent);
}

/// With the changes pushed, a small file whose whole contents this mount
/// keeps is opened and read with no round trip; a change made on the
/// remote shows at the next open; a descriptor open when the file is
/// deleted there reads what it opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_contents_open_with_no_round_trip_while_changes_are_pushed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small"), b"first version\n").unwrap();
    let (_agent, calls, vfs) = mount_following_changes(dir.path(), Counted::new).await;
    let opens = || calls.of(Op::Open) + calls.of(Op::OpenRead);
    let read_whole = |fh| {
        let vfs = vfs.clone();
        async move { vfs.read(fh, 0, 4096).await.unwrap().to_vec() }
    };

    let ino = vfs.lookup(&me(), ROOT_INO, b"small").await.unwrap().ino;
    let (fh, _) = vfs.open(&me(), ino, open_flags::READ_ONLY).await.unwrap();
    assert_eq!(read_whole(fh).await, b"first version\n");
    vfs.release(fh).await.unwrap();
    let before = (opens(), calls.of(Op::Read));
    for _ in 0..3 {
        let (fh, attr) = vfs.open(&me(), ino, open_flags::READ_ONLY).await.unwrap();
        assert_eq!(attr.size, 14);
        assert_eq!(read_whole(fh).await, b"first version\n");
        vfs.release(fh).await.unwrap();
    }
    assert_eq!(
        (opens(), calls.of(Op::Read)),
        before,
        "opened and read from what is kept"
    );

    // Changed on the remote: the next open shows it, within the notice's delay.
    std::fs::write(dir.path().join("small"), b"second, longer version\n").unwrap();
    let start = Instant::now();
    loop {
        let (fh, _) = vfs.open(&me(), ino, open_flags::READ_ONLY).await.unwrap();
        let data = read_whole(fh).await;
        vfs.release(fh).await.unwrap();
        if data == b"second, longer version\n" {
            break;
        }
        assert_eq!(data, b"first version\n", "one version or the other, whole");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the change did not show"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Deleted there while open here: the descriptor reads what it opened.
    let (fh, _) = vfs.open(&me(), ino, open_flags::READ_ONLY).await.unwrap();
    std::fs::remove_file(dir.path().join("small")).unwrap();
    let start = Instant::now();
    while !matches!(vfs.lookup(&me(), ROOT_INO, b"small").await, Err(e) if e.errno() == Errno::ENOENT) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the deletion did not show"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(vfs.getattr(ino, Some(fh)).await.unwrap().size, 23);
    assert_eq!(read_whole(fh).await, b"second, longer version\n");
    vfs.release(fh).await.unwrap();

    // Replaced there (an atomic save) while open here: the same.
    std::fs::write(dir.path().join("doc"), b"old\n").unwrap();
    let ino = vfs.lookup(&me(), ROOT_INO, b"doc").await.unwrap().ino;
    let (fh, _) = vfs.open(&me(), ino, open_flags::READ_ONLY).await.unwrap();
    assert_eq!(read_whole(fh).await, b"old\n");
    vfs.release(fh).await.unwrap();
    let (fh, _) = vfs.open(&me(), ino, open_flags::READ_ONLY).await.unwrap();
    std::fs::write(dir.path().join(".doc.tmp"), b"the new one\n").unwrap();
    std::fs::rename(dir.path().join(".doc.tmp"), dir.path().join("doc")).unwrap();
    let start = Instant::now();
    while vfs.lookup(&me(), ROOT_INO, b"doc").await.unwrap().ino == ino {
        assert!(start.elapsed() < Duration::from_secs(5), "the save did not show");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(vfs.getattr(ino, Some(fh)).await.unwrap().size, 4);
    assert_eq!(read_whole(fh).await, b"old\n");
    vfs.release(fh).await.unwrap();
}

/// With the changes pushed, opening a small file whose contents did not
/// come with its directory's listing fetches its siblings' with one more
/// listing: a reader going through them (`cat *`) opens the rest with no
/// round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_one_small_file_fetches_its_siblings_contents() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    // Larger than what a walk's listing brings (16 KiB), smaller than what
    // the siblings' listing does (64 KiB).
    let body = |i: usize| format!("{i:05}").repeat(4000).into_bytes();
    for i in 0..20 {
        std::fs::write(dir.path().join(format!("d/f{i:02}")), body(i)).unwrap();
    }
    let (_agent, calls, vfs) = mount_following_changes(dir.path(), Counted::new).await;
    let opens = || calls.of(Op::Open) + calls.of(Op::OpenRead);
    let read_whole = |fh| {
        let vfs = vfs.clone();
        async move {
            let mut data = Vec::new();
            loop {
                let chunk = vfs.read(fh, data.len() as u64, 1 << 16).await.unwrap();
                if chunk.is_empty() {
                    return data;
                }
                data.extend_from_slice(&chunk);
            }
        }
    };

    let d = vfs.lookup(&me(), ROOT_INO, b"d").await.unwrap().ino;
    let listing = vfs.opendir(&me(), d).unwrap();
    vfs.readdir(listing, 0).await.unwrap();
    let mut inos = Vec::new();
    for i in 0..20 {
        inos.push(
            vfs.lookup(&me(), d, format!("f{i:02}").as_bytes())
                .await
                .unwrap()
                .ino,
        );
    }
    let listings = calls.of(Op::ListTree);
    let (fh, _) = vfs.open(&me(), inos[0], open_flags::READ_ONLY).await.unwrap();
    assert_eq!(read_whole(fh).await, body(0));
    vfs.release(fh).await.unwrap();
    eventually("the siblings' listing", || calls.of(Op::ListTree) > listings).await;
    // Landed in the table just after its answer.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let before = opens();
    for (i, ino) in inos.iter().enumerate().skip(1) {
        let (fh, _) = vfs.open(&me(), *ino, open_flags::READ_ONLY).await.unwrap();
        assert_eq!(read_whole(fh).await, body(i), "f{i:02}");
        vfs.release(fh).await.unwrap();
    }
    assert_eq!(opens(), before, "the siblings opened with no round trip");
    assert_eq!(calls.of(Op::ListTree), listings + 1, "one listing fetched them");
}
