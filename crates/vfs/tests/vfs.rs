//! The VFS over the agent's own request handling, called in process
//! (`yonder_testkit::direct`), serving a temporary directory, wrapped in
//! `yonder_testkit::observe` wrappers that count and record its calls and
//! `yonder_testkit::faults` wrappers that fail or cut calls when a test
//! asks.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use yonder_proto::SeekWhence;
use yonder_testkit::direct::DirectAgent;
use yonder_testkit::faults::{Call, Disconnecting, Fault, Faulty, Intercepted, Interceptor, Op};
use yonder_testkit::observe::{Counted, Recorded, WithoutInodeNumbers};
use yonder_vfs::{
    open_flags as of, Caller, Errno, Exporter, FileHandle, FileKind, Ino, MemoryJournal, RenameFlags, Vfs,
    VfsOptions, ROOT_INO,
};

struct Fixture {
    dir: tempfile::TempDir,
    /// The agent itself, for the files it has open.
    agent: Arc<DirectAgent>,
    /// Around it, the data of the writes it received...
    writes: Arc<Recorded>,
    /// ...and the calls it received, by operation.
    calls: Arc<Counted>,
    /// Between the VFS and the remote: errors injected on demand...
    faults: Arc<Faulty>,
    /// ...and, outermost, a connection that can die.
    link: Arc<Disconnecting>,
    vfs: Arc<Vfs>,
}

async fn fixture_with(opts: VfsOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let agent = DirectAgent::new(dir.path());
    let writes = Recorded::new(agent.clone());
    let calls = Counted::new(writes.clone());
    let faults = Faulty::new(calls.clone());
    let link = Disconnecting::new(faults.clone());
    let vfs = Vfs::new(link.clone(), opts, Arc::new(MemoryJournal::default()))
        .await
        .unwrap();
    Fixture {
        dir,
        agent,
        writes,
        calls,
        faults,
        link,
        vfs,
    }
}

async fn fixture() -> Fixture {
    fixture_with(VfsOptions {
        write_delay: Duration::from_secs(3600),
        ..VfsOptions::default()
    })
    .await
}

fn me() -> Caller {
    Caller::current()
}

#[tokio::test]
async fn root_is_inode_one_and_a_directory() {
    let f = fixture().await;
    let attr = f.vfs.getattr(ROOT_INO, None).await.unwrap();
    assert_eq!(attr.ino, ROOT_INO);
    assert_eq!(attr.kind, FileKind::Directory);
}

#[tokio::test]
async fn small_sequential_writes_are_coalesced_and_read_back() {
    let f = fixture().await;
    let (fh, attr) = f
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::READ_WRITE)
        .await
        .unwrap();
    // The VFS numbers files itself; a lookup finds the same number.
    assert_ne!(attr.ino, ROOT_INO);
    assert_eq!(f.vfs.lookup(&me(), ROOT_INO, b"f").await.unwrap().ino, attr.ino);
    let mut expect = Vec::new();
    for i in 0..100u32 {
        let chunk = vec![i as u8; 1000];
        let n = f.vfs.write(fh, expect.len() as u64, &chunk).await.unwrap();
        assert_eq!(n, 1000);
        expect.extend_from_slice(&chunk);
    }
    assert_eq!(f.calls.of(Op::Write), 0);
    // A read of the same file sends the buffer first.
    let got = f.vfs.read(fh, 0, 200_000).await.unwrap();
    assert_eq!(got, expect);
    assert_eq!(f.calls.of(Op::Write), 1);
    f.vfs.flush(fh).await.unwrap();
    f.vfs.release(fh).await.unwrap();
    assert_eq!(std::fs::read(f.dir.path().join("f")).unwrap(), expect);
    // The remote close is not waited for; it follows shortly.
    for _ in 0..100 {
        if f.agent.open_files() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(f.agent.open_files(), 0);
}

#[tokio::test]
async fn non_contiguous_write_sends_the_buffer_and_getattr_sees_the_size() {
    let f = fixture().await;
    let (fh, attr) = f
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.write(fh, 0, b"hello").await.unwrap();
    f.vfs.write(fh, 100, b"world").await.unwrap();
    // The first piece went out on its own (asynchronously); getattr waits
    // for it and sends the second.
    let attr = f.vfs.getattr(attr.ino, None).await.unwrap();
    assert_eq!(attr.size, 105);
    assert_eq!(f.calls.of(Op::Write), 2);
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn write_errors_surface_at_flush_and_fsync() {
    let f = fixture().await;
    let (fh, _) = f
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    let enospc = f.faults.fail(Op::Write, Errno::ENOSPC);
    f.vfs.write(fh, 0, b"buffered").await.unwrap();
    assert_eq!(f.vfs.flush(fh).await.unwrap_err().errno(), Errno::ENOSPC);
    // A close reports the error and keeps it (the closing process may not
    // be the writer): the writer's next write takes it.
    assert_eq!(
        f.vfs.write(fh, 8, b"again").await.unwrap_err().errno(),
        Errno::ENOSPC
    );
    f.vfs.write(fh, 8, b"again").await.unwrap();
    assert_eq!(f.vfs.fsync(fh, false).await.unwrap_err().errno(), Errno::ENOSPC);
    // A flush of another reader's read lands in the writer's error slot.
    let (fh2, attr) = f
        .vfs
        .create(&me(), ROOT_INO, b"g", 0o644, of::READ_WRITE)
        .await
        .unwrap();
    f.vfs.write(fh2, 0, b"x").await.unwrap();
    f.vfs.getattr(attr.ino, None).await.unwrap();
    assert_eq!(
        f.vfs.write(fh2, 1, b"y").await.unwrap_err().errno(),
        Errno::ENOSPC
    );
    f.faults.remove(enospc);
    f.vfs.release(fh).await.unwrap();
    f.vfs.release(fh2).await.unwrap();
}

#[tokio::test]
async fn a_write_the_remote_refuses_fails_the_flush_and_is_not_retried() {
    let f = fixture().await;
    let (fh, _) = f
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    // The remote refuses the next write, once.
    f.faults.inject(Fault::on(Op::Write, Errno::EIO).times(1));
    f.vfs.write(fh, 0, b"lost").await.unwrap();
    assert_eq!(f.faults.injected(), 0, "buffered: nothing sent yet");
    assert_eq!(f.vfs.flush(fh).await.unwrap_err().errno(), Errno::EIO);
    assert_eq!(f.faults.injected(), 1);
    assert_eq!(std::fs::read(f.dir.path().join("f")).unwrap(), b"");
    // Each close reports it until fsync takes it; the handle writes on.
    assert_eq!(f.vfs.flush(fh).await.unwrap_err().errno(), Errno::EIO);
    assert_eq!(f.vfs.fsync(fh, false).await.unwrap_err().errno(), Errno::EIO);
    f.vfs.flush(fh).await.unwrap();
    f.vfs.write(fh, 0, b"kept").await.unwrap();
    f.vfs.flush(fh).await.unwrap();
    assert_eq!(std::fs::read(f.dir.path().join("f")).unwrap(), b"kept");
    f.vfs.release(fh).await.unwrap();
}

/// A dead connection nobody replaces: calls wait for a new one until the
/// operation timeout, then fail with EIO; the write acknowledged before
/// stays queued (a new connection would replay it). Once the connection is
/// declared gone for good, calls fail at once and the queued write's error
/// reaches its writer.
#[tokio::test]
async fn a_dead_connection_fails_calls_with_eio_after_the_op_timeout() {
    let f = fixture_with(VfsOptions {
        write_delay: Duration::from_secs(3600),
        op_timeout: Duration::from_millis(300),
        ..VfsOptions::default()
    })
    .await;
    std::fs::write(f.dir.path().join("f"), b"data").unwrap();
    let ino = f.vfs.lookup(&me(), ROOT_INO, b"f").await.unwrap().ino;
    let (fh, _) = f.vfs.open(&me(), ino, of::READ_WRITE).await.unwrap();
    f.vfs.write(fh, 0, b"DATA").await.unwrap();
    f.link.disconnect();
    let started = std::time::Instant::now();
    assert_eq!(f.vfs.flush(fh).await.unwrap_err().errno(), Errno::EIO);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(f.vfs.unconfirmed_writes(), (1, 4), "kept for a new connection");
    let err = f.vfs.lookup(&me(), ROOT_INO, b"other").await.unwrap_err();
    assert_eq!(err.errno(), Errno::EIO);
    let err = f.vfs.mkdir(&me(), ROOT_INO, b"d", 0o755).await.unwrap_err();
    assert_eq!(err.errno(), Errno::EIO);
    assert_eq!(std::fs::read(f.dir.path().join("f")).unwrap(), b"data");

    f.vfs.connection_gone("test");
    let started = std::time::Instant::now();
    let err = f.vfs.lookup(&me(), ROOT_INO, b"other").await.unwrap_err();
    assert_eq!(err.errno(), Errno::EIO);
    assert_eq!(f.vfs.write(fh, 0, b"more").await.unwrap_err().errno(), Errno::EIO);
    assert_eq!(
        f.vfs.flush(fh).await.unwrap_err().errno(),
        Errno::EIO,
        "the lost write"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "at once");
    assert_eq!(f.vfs.unconfirmed_writes(), (0, 0));
    f.vfs.release(fh).await.unwrap_or_default();
}

#[tokio::test]
async fn delayed_flush_sends_idle_buffers() {
    let f = fixture_with(VfsOptions {
        write_delay: Duration::from_millis(50),
        ..VfsOptions::default()
    })
    .await;
    let (fh, _) = f
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.write(fh, 0, b"soon").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(std::fs::read(f.dir.path().join("f")).unwrap(), b"soon");
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn a_small_files_read_flush_and_release_need_no_wait_but_buffered_writes_do() {
    let f = fixture().await;
    std::fs::write(f.dir.path().join("small"), b"hello").unwrap();
    let attr = f.vfs.lookup(&me(), ROOT_INO, b"small").await.unwrap();
    let (fh, _) = f.vfs.open(&me(), attr.ino, of::READ_ONLY).await.unwrap();
    // The bytes that came with the open answer the reads.
    assert_eq!(&f.vfs.read_ready(fh, 0, 4096).unwrap().unwrap()[..], b"hello");
    assert!(f.vfs.read_ready(fh, 5, 4096).unwrap().unwrap().is_empty());
    assert!(f.vfs.flush_ready(fh).unwrap().is_ok());
    assert!(f.vfs.release_ready(fh));
    assert_eq!(
        f.vfs.read_ready(fh, 0, 1).unwrap().unwrap_err().errno(),
        Errno::EBADF
    );
    assert_eq!(f.vfs.flush_ready(fh).unwrap().unwrap_err().errno(), Errno::EBADF);
    assert!(!f.vfs.release_ready(fh));

    // Data gathered and not sent: the close must send it, and wait.
    let (fh, _) = f.vfs.open(&me(), attr.ino, of::READ_WRITE).await.unwrap();
    f.vfs.write(fh, 0, b"HE").await.unwrap();
    assert!(f.vfs.read_ready(fh, 0, 4096).is_none());
    assert!(f.vfs.flush_ready(fh).is_none());
    assert!(!f.vfs.release_ready(fh));
    assert_eq!(std::fs::read(f.dir.path().join("small")).unwrap(), b"hello");
    f.vfs.flush(fh).await.unwrap();
    assert_eq!(std::fs::read(f.dir.path().join("small")).unwrap(), b"HEllo");
    assert!(f.vfs.flush_ready(fh).unwrap().is_ok());
    assert!(f.vfs.release_ready(fh));
}

#[tokio::test]
async fn sequential_reads_are_served_by_pipelined_readahead() {
    let f = fixture().await;
    let data: Vec<u8> = (0..(5 << 20) + 12345).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(f.dir.path().join("big"), &data).unwrap();
    let attr = f.vfs.lookup(&me(), ROOT_INO, b"big").await.unwrap();
    let (fh, _) = f.vfs.open(&me(), attr.ino, of::READ_ONLY).await.unwrap();
    let mut got = Vec::new();
    loop {
        let piece = f.vfs.read(fh, got.len() as u64, 128 << 10).await.unwrap();
        if piece.is_empty() {
            break;
        }
        got.extend_from_slice(&piece);
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data);
    let reads = f.calls.of(Op::Read);
    // 1 MiB chunks: 6 with data, plus at most a window's worth past the end.
    assert!((6..=16).contains(&reads), "{reads} remote reads");
    // A random read goes straight to the remote.
    let piece = f.vfs.read(fh, 3_000_000, 10).await.unwrap();
    assert_eq!(piece, &data[3_000_000..3_000_010]);
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn renaming_a_directory_moves_open_files_beneath_it() {
    let f = fixture().await;
    let d = f.vfs.mkdir(&me(), ROOT_INO, b"d", 0o755).await.unwrap();
    let (fh, file) = f
        .vfs
        .create(&me(), d.ino, b"f", 0o644, of::READ_WRITE)
        .await
        .unwrap();
    f.vfs
        .rename(&me(), ROOT_INO, b"d", ROOT_INO, b"e", RenameFlags::default())
        .await
        .unwrap();
    f.vfs.write(fh, 0, b"moved").await.unwrap();
    f.vfs.flush(fh).await.unwrap();
    assert_eq!(std::fs::read(f.dir.path().join("e/f")).unwrap(), b"moved");
    // Path-based operations on the inode use the new path.
    f.vfs
        .setattr(
            &me(),
            file.ino,
            None,
            yonder_vfs::SetAttr {
                mode: Some(0o600),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::metadata(f.dir.path().join("e/f")).unwrap().mode() & 0o777,
        0o600
    );
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn unlinked_open_files_are_reached_through_their_handle() {
    let f = fixture().await;
    let (fh, file) = f
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::READ_WRITE)
        .await
        .unwrap();
    f.vfs.unlink(&me(), ROOT_INO, b"f").await.unwrap();
    f.vfs.flush_all().await.unwrap();
    assert!(!f.dir.path().join("f").exists());
    f.vfs.write(fh, 0, b"ghost").await.unwrap();
    let attr = f.vfs.getattr(file.ino, None).await.unwrap();
    assert_eq!((attr.size, attr.nlink), (5, 0));
    let attr = f
        .vfs
        .setattr(
            &me(),
            file.ino,
            None,
            yonder_vfs::SetAttr {
                size: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(attr.size, 2);
    assert_eq!(&f.vfs.read(fh, 0, 100).await.unwrap()[..], b"gh");
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn hard_links_share_the_inode() {
    let f = fixture().await;
    let (fh, a) = f
        .vfs
        .create(&me(), ROOT_INO, b"a", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.release(fh).await.unwrap();
    let b = f.vfs.link(&me(), a.ino, ROOT_INO, b"b").await.unwrap();
    assert_eq!(a.ino, b.ino);
    assert_eq!(b.nlink, 2);
    f.vfs.unlink(&me(), ROOT_INO, b"a").await.unwrap();
    // Still reachable by the remaining name.
    assert_eq!(f.vfs.getattr(a.ino, None).await.unwrap().nlink, 1);
}

#[tokio::test]
async fn renaming_a_name_onto_another_name_of_the_same_file_keeps_both() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    let (fh, a) = f
        .vfs
        .create(&me(), ROOT_INO, b"a", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.release(fh).await.unwrap();
    f.vfs.link(&me(), a.ino, ROOT_INO, b"c").await.unwrap();
    assert_eq!(list(&f.vfs, ROOT_INO).await, [".", "..", "a", "c"]);
    // rename(2) of two names of one file does nothing.
    f.vfs
        .rename(&me(), ROOT_INO, b"c", ROOT_INO, b"a", RenameFlags::default())
        .await
        .unwrap();
    assert!(f.dir.path().join("c").exists());
    for name in [&b"a"[..], b"c"] {
        let attr = f.vfs.lookup(&me(), ROOT_INO, name).await.unwrap();
        assert_eq!((attr.ino, attr.nlink), (a.ino, 2));
    }
}

#[tokio::test]
async fn a_stale_entry_does_not_make_a_rename_look_like_one_between_two_names_of_a_file() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    let (fh, b) = f
        .vfs
        .create(&me(), ROOT_INO, b"b", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.release(fh).await.unwrap();
    // Renamed on the remote, and reported: b's entry is stale.
    std::fs::rename(f.dir.path().join("b"), f.dir.path().join("c")).unwrap();
    f.vfs.invalidate_path(b"b");
    f.vfs.invalidate_path(b"c");
    assert_eq!(f.vfs.lookup(&me(), ROOT_INO, b"c").await.unwrap().ino, b.ino);
    f.vfs
        .rename(&me(), ROOT_INO, b"c", ROOT_INO, b"b", RenameFlags::default())
        .await
        .unwrap();
    let gone = f.vfs.lookup(&me(), ROOT_INO, b"c").await.unwrap_err();
    assert_eq!(gone.errno(), Errno::ENOENT);
    assert_eq!(f.vfs.lookup(&me(), ROOT_INO, b"b").await.unwrap().ino, b.ino);
}

/// Holds the answer of a rename the remote has made, once armed, until let
/// go: meanwhile the remote has the new names and the VFS has not heard.
#[derive(Default)]
struct HeldRename {
    armed: std::sync::atomic::AtomicBool,
    renamed: tokio::sync::Notify,
    go: tokio::sync::Notify,
}

impl Interceptor for HeldRename {
    async fn intercept<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        next: impl std::future::Future<Output = yonder_remote::Result<T>> + Send + 'a,
    ) -> yonder_remote::Result<T> {
        let answer = next.await;
        if call.op == Op::Rename && self.armed.swap(false, Ordering::SeqCst) {
            self.renamed.notify_one();
            self.go.notified().await;
        }
        answer
    }
}

/// An atomic save while a reader retries its open of the name: the
/// reader's lookup, answered between the remote's rename and the VFS
/// hearing of it, already finds the saved file under the name. That must
/// not pass for two names of one file (which rename(2) leaves alone): the
/// temporary name stayed, the kernel opened it for the next save with
/// O_TRUNC as that same file, truncating the saved one in place, and the
/// rename that followed was a no-op to the kernel, so readers saw the
/// file empty (or zeros) until the end of the saves.
#[tokio::test]
async fn a_lookup_answered_during_a_rename_does_not_make_the_old_name_stay() {
    let dir = tempfile::tempdir().unwrap();
    let remote = Intercepted::with(DirectAgent::new(dir.path()), HeldRename::default());
    let vfs = Vfs::new(
        remote.clone(),
        VfsOptions {
            dir_ttl: Duration::from_secs(60),
            attr_ttl: Duration::from_secs(60),
            ..VfsOptions::default()
        },
        Arc::new(MemoryJournal::default()),
    )
    .await
    .unwrap();
    let save = |data: &'static [u8]| {
        let vfs = vfs.clone();
        async move {
            let (fh, attr) = vfs
                .create(&me(), ROOT_INO, b".tmp", 0o644, of::WRITE_ONLY | of::TRUNCATE)
                .await
                .unwrap();
            vfs.write(fh, 0, data).await.unwrap();
            vfs.flush(fh).await.unwrap();
            vfs.release(fh).await.unwrap();
            attr.ino
        }
    };
    let (fh, first) = vfs
        .create(&me(), ROOT_INO, b"doc", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    vfs.release(fh).await.unwrap();
    save(b"two").await;
    vfs.rename(&me(), ROOT_INO, b".tmp", ROOT_INO, b"doc", RenameFlags::default())
        .await
        .unwrap();
    // A reader that found the first file under the name opens it: stale,
    // so the kernel will look the name up again.
    let stale = vfs.open(&me(), first.ino, of::READ_ONLY).await.unwrap_err();
    assert_eq!(stale.errno(), Errno::ESTALE);
    let third = save(b"three").await;
    remote.armed.store(true, Ordering::SeqCst);
    let renamed = remote.renamed.notified();
    let rename = tokio::spawn({
        let vfs = vfs.clone();
        async move {
            vfs.rename(&me(), ROOT_INO, b".tmp", ROOT_INO, b"doc", RenameFlags::default())
                .await
        }
    });
    renamed.await;
    // The reader's lookup, while the rename's answer is on its way.
    assert_eq!(vfs.lookup(&me(), ROOT_INO, b"doc").await.unwrap().ino, third);
    remote.go.notify_one();
    rename.await.unwrap().unwrap();
    let gone = vfs.lookup(&me(), ROOT_INO, b".tmp").await.unwrap_err();
    assert_eq!(gone.errno(), Errno::ENOENT, "the temporary name is gone");
    let doc = vfs.lookup(&me(), ROOT_INO, b"doc").await.unwrap();
    assert_eq!((doc.ino, doc.size), (third, 5));
}

#[tokio::test]
async fn renaming_a_name_never_looked_up_into_a_listed_directory_finds_it_there() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    // New directories are known empty for the TTL.
    let b = f.vfs.mkdir(&me(), ROOT_INO, b"b", 0o755).await.unwrap();
    let c = f.vfs.mkdir(&me(), ROOT_INO, b"c", 0o755).await.unwrap();
    let (fh, _) = f
        .vfs
        .create(&me(), c.ino, b"x", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.release(fh).await.unwrap();
    // Names the VFS has not looked up, as a stateless (NFS) frontend
    // renames them.
    std::fs::write(f.dir.path().join("a"), b"a").unwrap();
    std::fs::write(f.dir.path().join("y"), b"y").unwrap();
    f.vfs
        .rename(&me(), ROOT_INO, b"a", b.ino, b"a", RenameFlags::default())
        .await
        .unwrap();
    assert_eq!(f.vfs.lookup(&me(), b.ino, b"a").await.unwrap().size, 1);
    let exchange = RenameFlags {
        exchange: true,
        ..RenameFlags::default()
    };
    f.vfs
        .rename(&me(), c.ino, b"x", ROOT_INO, b"y", exchange)
        .await
        .unwrap();
    assert_eq!(f.vfs.lookup(&me(), c.ino, b"x").await.unwrap().size, 1);
    assert_eq!(f.vfs.lookup(&me(), ROOT_INO, b"y").await.unwrap().size, 0);
}

#[tokio::test]
async fn unlinking_a_name_not_known_for_sure_updates_the_link_count_of_the_others() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    std::fs::write(f.dir.path().join("a"), b"a").unwrap();
    std::fs::hard_link(f.dir.path().join("a"), f.dir.path().join("c")).unwrap();
    assert_eq!(f.vfs.lookup(&me(), ROOT_INO, b"a").await.unwrap().nlink, 2);
    // A stateless (NFS) frontend removes by name.
    f.vfs.unlink(&me(), ROOT_INO, b"c").await.unwrap();
    assert_eq!(f.vfs.lookup(&me(), ROOT_INO, b"a").await.unwrap().nlink, 1);

    // A name whose entry expired: x is saved over and linked as y on the
    // remote, and that reported; then x is removed through the VFS.
    std::fs::write(f.dir.path().join("x"), b"x").unwrap();
    f.vfs.lookup(&me(), ROOT_INO, b"x").await.unwrap();
    std::fs::write(f.dir.path().join("new"), b"new").unwrap();
    std::fs::rename(f.dir.path().join("new"), f.dir.path().join("x")).unwrap();
    std::fs::hard_link(f.dir.path().join("x"), f.dir.path().join("y")).unwrap();
    for name in [&b"x"[..], b"y"] {
        f.vfs.invalidate_path(name);
    }
    assert_eq!(f.vfs.lookup(&me(), ROOT_INO, b"y").await.unwrap().nlink, 2);
    f.vfs.unlink(&me(), ROOT_INO, b"x").await.unwrap();
    assert_eq!(f.vfs.lookup(&me(), ROOT_INO, b"y").await.unwrap().nlink, 1);
}

#[tokio::test]
async fn renaming_over_a_name_not_known_for_sure_updates_the_link_count_of_the_others() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    let b = f.vfs.mkdir(&me(), ROOT_INO, b"b", 0o755).await.unwrap();
    // b/c is created and linked as b/a on the remote, and that reported;
    // b/a is never looked up.
    std::fs::write(f.dir.path().join("b/c"), b"c").unwrap();
    f.vfs.invalidate_path(b"b/c");
    std::fs::hard_link(f.dir.path().join("b/c"), f.dir.path().join("b/a")).unwrap();
    for name in [&b"b/c"[..], b"b/a"] {
        f.vfs.invalidate_path(name);
    }
    assert_eq!(f.vfs.lookup(&me(), b.ino, b"c").await.unwrap().nlink, 2);
    let (fh, _) = f
        .vfs
        .create(&me(), ROOT_INO, b"a", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.release(fh).await.unwrap();
    // Renamed over b/a by name, as a stateless (NFS) frontend may: b/c
    // loses a link.
    f.vfs
        .rename(&me(), ROOT_INO, b"a", b.ino, b"a", RenameFlags::default())
        .await
        .unwrap();
    assert_eq!(f.vfs.lookup(&me(), b.ino, b"c").await.unwrap().nlink, 1);

    // A name whose entry expired: x is looked up, then saved over and
    // linked as y on the remote, and that reported; then z is renamed over
    // x through the VFS.
    std::fs::write(f.dir.path().join("x"), b"x").unwrap();
    f.vfs.lookup(&me(), ROOT_INO, b"x").await.unwrap();
    std::fs::write(f.dir.path().join("new"), b"new").unwrap();
    std::fs::rename(f.dir.path().join("new"), f.dir.path().join("x")).unwrap();
    std::fs::hard_link(f.dir.path().join("x"), f.dir.path().join("y")).unwrap();
    for name in [&b"x"[..], b"y"] {
        f.vfs.invalidate_path(name);
    }
    assert_eq!(f.vfs.lookup(&me(), ROOT_INO, b"y").await.unwrap().nlink, 2);
    std::fs::write(f.dir.path().join("z"), b"z").unwrap();
    f.vfs.lookup(&me(), ROOT_INO, b"z").await.unwrap();
    f.vfs
        .rename(&me(), ROOT_INO, b"z", ROOT_INO, b"x", RenameFlags::default())
        .await
        .unwrap();
    assert_eq!(f.vfs.lookup(&me(), ROOT_INO, b"y").await.unwrap().nlink, 1);
}

#[tokio::test]
async fn attributes_fetched_while_writes_were_buffered_are_dropped_once_they_are_sent() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        write_delay: Duration::from_secs(3600),
        ..VfsOptions::default()
    })
    .await;
    let (b, _) = f
        .vfs
        .create(&me(), ROOT_INO, b"b", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    let (a, _) = f
        .vfs
        .create(&me(), ROOT_INO, b"a", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    // b is renamed over a on the remote, and that reported.
    std::fs::rename(f.dir.path().join("b"), f.dir.path().join("a")).unwrap();
    f.vfs.invalidate_path(b"a");
    f.vfs.invalidate_path(b"b");
    f.vfs.write(b, 0, &[1; 16]).await.unwrap();
    // Renaming a onto itself looks a up (its entry expired): the remote's
    // size then lags behind the buffered write.
    f.vfs
        .rename(&me(), ROOT_INO, b"a", ROOT_INO, b"a", RenameFlags::default())
        .await
        .unwrap();
    f.vfs.release(b).await.unwrap();
    f.vfs.release(a).await.unwrap();
    assert_eq!(f.vfs.lookup(&me(), ROOT_INO, b"a").await.unwrap().size, 16);
}

#[tokio::test]
async fn renaming_a_name_whose_entry_expired_does_not_vouch_for_the_new_name() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    std::fs::write(f.dir.path().join("b"), b"old").unwrap();
    let old = f.vfs.lookup(&me(), ROOT_INO, b"b").await.unwrap();
    let (fh, _) = f.vfs.open(&me(), old.ino, of::WRITE_ONLY).await.unwrap();
    // An atomic save over b, reported by the notifier: b's entry is stale.
    std::fs::write(f.dir.path().join("new"), b"newer").unwrap();
    std::fs::rename(f.dir.path().join("new"), f.dir.path().join("b")).unwrap();
    f.vfs.invalidate_path(b"b");
    // Renaming b moves the new file; the VFS cannot know which file that is.
    f.vfs
        .rename(&me(), ROOT_INO, b"b", ROOT_INO, b"a", RenameFlags::default())
        .await
        .unwrap();
    // The old file's attributes are fresh again (fstat of its handle).
    assert_eq!(f.vfs.getattr(old.ino, Some(fh)).await.unwrap().nlink, 0);
    let a = f.vfs.lookup(&me(), ROOT_INO, b"a").await.unwrap();
    assert_ne!(a.ino, old.ino);
    assert_eq!((a.size, a.nlink), (5, 1));
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn a_file_opens_by_its_other_name_once_a_directory_of_one_is_forgotten() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::ZERO,
        attr_ttl: Duration::ZERO,
        ..VfsOptions::default()
    })
    .await;
    let b = f.vfs.mkdir(&me(), ROOT_INO, b"b", 0o755).await.unwrap();
    let (fh, x) = f
        .vfs
        .create(&me(), b.ino, b"a", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.link(&me(), x.ino, ROOT_INO, b"a").await.unwrap();
    // b/a is the name seen last; then the kernel lets go of b.
    f.vfs.lookup(&me(), b.ino, b"a").await.unwrap();
    f.vfs.forget(b.ino, 1);
    let (fh2, _) = f.vfs.open(&me(), x.ino, of::READ_ONLY).await.unwrap();
    f.vfs.release(fh2).await.unwrap();
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn readdir_pages_through_and_answers_negative_lookups() {
    let f = fixture_with(VfsOptions {
        readdir_page: 7,
        dir_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    for i in 0..50 {
        std::fs::write(f.dir.path().join(format!("n{i:02}")), b"").unwrap();
    }
    let dh = f.vfs.opendir(&me(), ROOT_INO).unwrap();
    let mut names = Vec::new();
    let mut offset = 0;
    loop {
        let items = f.vfs.readdir(dh, offset).await.unwrap();
        let Some(last) = items.last() else { break };
        offset = last.offset;
        names.extend(items.into_iter().map(|i| String::from_utf8(i.name).unwrap()));
    }
    f.vfs.releasedir(dh).unwrap();
    assert_eq!(names.len(), 52);
    assert_eq!(&names[..2], &[".", ".."]);
    // In the directory's own order, as the agent lists it: each name once.
    let mut listed = names[2..].to_vec();
    listed.sort();
    assert_eq!(listed, (0..50).map(|i| format!("n{i:02}")).collect::<Vec<_>>());
    let before = f.calls.of(Op::Lstat);
    assert_eq!(
        f.vfs
            .lookup(&me(), ROOT_INO, b"missing")
            .await
            .unwrap_err()
            .errno(),
        Errno::ENOENT
    );
    f.vfs.lookup(&me(), ROOT_INO, b"n07").await.unwrap();
    assert_eq!(f.calls.of(Op::Lstat), before);
}

#[tokio::test]
async fn created_nodes_belong_to_the_caller() {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let f = fixture().await;
    let caller = Caller {
        uid: 4321,
        gid: 4322,
        pid: 1,
        umask: 0o022,
    };
    let (fh, attr) = f
        .vfs
        .create(&caller, ROOT_INO, b"f", 0o666, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.release(fh).await.unwrap();
    assert_eq!((attr.uid, attr.gid, attr.perm), (4321, 4322, 0o644));
    let d = f.vfs.mkdir(&caller, ROOT_INO, b"d", 0o777).await.unwrap();
    assert_eq!((d.uid, d.perm), (4321, 0o755));
    let s = f.vfs.symlink(&caller, ROOT_INO, b"s", b"../x//y").await.unwrap();
    assert_eq!(s.uid, 4321);
    let m = std::fs::symlink_metadata(f.dir.path().join("s")).unwrap();
    assert_eq!((m.uid(), m.gid()), (4321, 4322));
    assert_eq!(f.vfs.readlink(s.ino).await.unwrap(), b"../x//y");
}

#[tokio::test]
async fn read_only_refuses_changes() {
    let f = fixture_with(VfsOptions {
        read_only: true,
        ..VfsOptions::default()
    })
    .await;
    let err = f.vfs.mkdir(&me(), ROOT_INO, b"d", 0o755).await.unwrap_err();
    assert_eq!(err.errno(), Errno::EROFS);
    std::fs::write(f.dir.path().join("f"), b"x").unwrap();
    let attr = f.vfs.lookup(&me(), ROOT_INO, b"f").await.unwrap();
    assert_eq!(
        f.vfs
            .open(&me(), attr.ino, of::WRITE_ONLY)
            .await
            .unwrap_err()
            .errno(),
        Errno::EROFS
    );
    let (fh, _) = f.vfs.open(&me(), attr.ino, of::READ_ONLY).await.unwrap();
    assert_eq!(&f.vfs.read(fh, 0, 10).await.unwrap()[..], b"x");
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn large_writes_go_out_in_parallel_yet_overlapping_ones_keep_their_order() {
    let f = fixture().await;
    let (fh, attr) = f
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    let mib = 1 << 20;
    // Sixteen 1 MiB writes: each returns without waiting for the remote.
    for i in 0..16u64 {
        f.vfs
            .write(fh, i * mib, &vec![i as u8; mib as usize])
            .await
            .unwrap();
    }
    // Overwrite across the boundary of two writes that may still be in flight.
    f.vfs.write(fh, mib / 2, &vec![0xee; mib as usize]).await.unwrap();
    f.vfs.fsync(fh, false).await.unwrap();
    let disk = std::fs::read(f.dir.path().join("f")).unwrap();
    assert_eq!(disk.len(), 16 * mib as usize);
    assert!(disk[..(mib / 2) as usize].iter().all(|b| *b == 0));
    assert!(disk[(mib / 2) as usize..(3 * mib / 2) as usize]
        .iter()
        .all(|b| *b == 0xee));
    assert!(disk[(3 * mib / 2) as usize..2 * mib as usize]
        .iter()
        .all(|b| *b == 1));
    assert!(disk[15 * mib as usize..].iter().all(|b| *b == 15));
    assert_eq!(f.vfs.getattr(attr.ino, None).await.unwrap().size, 16 * mib);
    f.vfs.release(fh).await.unwrap();
}

async fn list(vfs: &Vfs, dir: Ino) -> Vec<String> {
    let dh = vfs.opendir(&me(), dir).unwrap();
    let mut names = Vec::new();
    let mut offset = 0;
    loop {
        let items = vfs.readdir(dh, offset).await.unwrap();
        let Some(last) = items.last() else { break };
        offset = last.offset;
        names.extend(items.into_iter().map(|i| String::from_utf8(i.name).unwrap()));
    }
    vfs.releasedir(dh).unwrap();
    names.sort();
    names
}

/// Listing round trips: pages and rich listings.
fn listings(calls: &Counted) -> u64 {
    calls.of(Op::ReadDir) + calls.of(Op::ListTree)
}

/// Waits until the background listings have arrived (the remote's call
/// count stops moving).
async fn settle(calls: &Counted) {
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = listings(calls);
        if now == last {
            return;
        }
        last = now;
    }
}

#[tokio::test]
async fn a_walk_costs_one_listing_round_trip_and_a_change_discards_what_came_ahead() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    for d in ["a", "b", "c", "a/deep", "a/deep/er"] {
        std::fs::create_dir(f.dir.path().join(d)).unwrap();
        std::fs::write(f.dir.path().join(d).join("file"), b"x").unwrap();
    }
    let pages = || listings(&f.calls);
    let lstats = f.calls.of(Op::Lstat);

    // Listing the root brings the listings of every directory below it.
    assert_eq!(list(&f.vfs, ROOT_INO).await, [".", "..", "a", "b", "c"]);
    settle(&f.calls).await;
    assert_eq!(pages(), 1);
    let mut dirs = vec![ROOT_INO];
    while let Some(dir) = dirs.pop() {
        for name in list(&f.vfs, dir).await.iter().filter(|n| !n.starts_with('.')) {
            let attr = f.vfs.lookup(&me(), dir, name.as_bytes()).await.unwrap();
            if attr.kind == FileKind::Directory {
                dirs.push(attr.ino);
            }
        }
    }
    settle(&f.calls).await;
    assert_eq!(pages(), 1, "a walk of five directories cost one round trip");
    assert_eq!(f.calls.of(Op::Lstat), lstats, "and no lookup reached the remote");

    // A change through the VFS drops what it knew of c's names.
    let c = f.vfs.lookup(&me(), ROOT_INO, b"c").await.unwrap();
    let (fh, _) = f
        .vfs
        .create(&me(), c.ino, b"new", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.release(fh).await.unwrap();
    assert_eq!(list(&f.vfs, c.ino).await, [".", "..", "file", "new"]);

    // Listed again while its names are fresh: no round trip. A change on
    // the remote shows once the VFS is told of it.
    let b = f.vfs.lookup(&me(), ROOT_INO, b"b").await.unwrap();
    let again = pages();
    assert_eq!(list(&f.vfs, b.ino).await, [".", "..", "file"]);
    assert_eq!(pages(), again);
    std::fs::write(f.dir.path().join("b").join("later"), b"").unwrap();
    f.vfs.invalidate_path(b"b");
    assert_eq!(list(&f.vfs, b.ino).await, [".", "..", "file", "later"]);
    assert!(pages() > again);
}

#[tokio::test]
async fn entries_of_a_listed_directory_answer_absent_xattrs_without_a_round_trip() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    std::fs::create_dir(f.dir.path().join("d")).unwrap();
    for i in 0..50 {
        std::fs::write(f.dir.path().join(format!("d/f{i}")), b"").unwrap();
    }
    let d = f.vfs.lookup(&me(), ROOT_INO, b"d").await.unwrap();
    assert_eq!(list(&f.vfs, d.ino).await.len(), 52);
    let before = (
        f.calls.of(Op::GetXattr),
        f.calls.of(Op::ListXattr),
        f.calls.of(Op::Lstat),
    );
    for i in 0..50 {
        // What `ls -l` does for every file: lstat, then ask for labels and ACLs.
        let file = f
            .vfs
            .lookup(&me(), d.ino, format!("f{i}").as_bytes())
            .await
            .unwrap();
        for name in [&b"security.selinux"[..], b"system.posix_acl_access"] {
            assert!(f.vfs.xattr_known_absent(file.ino, name), "f{i}");
            let err = f.vfs.getxattr(file.ino, name).await.unwrap_err();
            assert_eq!(err.errno(), Errno::ENODATA);
        }
    }
    let after = (
        f.calls.of(Op::GetXattr),
        f.calls.of(Op::ListXattr),
        f.calls.of(Op::Lstat),
    );
    assert_eq!(
        after, before,
        "no getxattr, listxattr or lstat reached the remote"
    );
}

#[tokio::test]
async fn small_files_listed_are_read_with_no_data_round_trip_and_dropped_when_they_change() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        write_delay: Duration::from_secs(3600),
        ..VfsOptions::default()
    })
    .await;
    std::fs::create_dir(f.dir.path().join("src")).unwrap();
    for i in 0..20 {
        std::fs::write(f.dir.path().join(format!("src/f{i}.c")), format!("int f{i};\n")).unwrap();
    }
    std::fs::write(f.dir.path().join("src/big"), vec![7u8; 1 << 20]).unwrap();
    // Listing the root brings src's listing and its small files' contents.
    list(&f.vfs, ROOT_INO).await;
    let src = f.vfs.lookup(&me(), ROOT_INO, b"src").await.unwrap();
    // The open itself still reaches the agent (its descriptor pins the
    // file); the data does not travel again.
    let data_reads = || f.calls.of(Op::Read);
    let opens = || f.calls.of(Op::Open) + f.calls.of(Op::OpenRead) + f.calls.of(Op::Read);
    let before = data_reads();
    for i in 0..20 {
        let file = f
            .vfs
            .lookup(&me(), src.ino, format!("f{i}.c").as_bytes())
            .await
            .unwrap();
        let (fh, _) = f.vfs.open(&me(), file.ino, of::READ_ONLY).await.unwrap();
        let data = f.vfs.read(fh, 0, 4096).await.unwrap();
        assert_eq!(&data[..], format!("int f{i};\n").as_bytes());
        f.vfs.release(fh).await.unwrap();
    }
    assert_eq!(
        data_reads(),
        before,
        "twenty small files read with no data round trip"
    );
    // A large file did not come along.
    let big = f.vfs.lookup(&me(), src.ino, b"big").await.unwrap();
    let before = f.calls.of(Op::OpenRead);
    let (fh, _) = f.vfs.open(&me(), big.ino, of::READ_ONLY).await.unwrap();
    assert_eq!(f.vfs.read(fh, 0, 16).await.unwrap().len(), 16);
    f.vfs.release(fh).await.unwrap();
    assert!(f.calls.of(Op::OpenRead) > before, "its start came with its open");

    // Contents are handed out once: the next open reads the remote.
    let f0 = f.vfs.lookup(&me(), src.ino, b"f0.c").await.unwrap();
    let before = opens();
    let (fh, _) = f.vfs.open(&me(), f0.ino, of::READ_ONLY).await.unwrap();
    assert_eq!(&f.vfs.read(fh, 0, 4096).await.unwrap()[..], b"int f0;\n");
    f.vfs.release(fh).await.unwrap();
    assert!(opens() > before);

    // Written through the mount after they came: the new data is read.
    f.vfs.invalidate_path(b"src");
    list(&f.vfs, src.ino).await;
    let f1 = f.vfs.lookup(&me(), src.ino, b"f1.c").await.unwrap();
    let (fh, _) = f.vfs.open(&me(), f1.ino, of::WRITE_ONLY).await.unwrap();
    f.vfs.write(fh, 0, b"INT").await.unwrap();
    f.vfs.release(fh).await.unwrap();
    let (fh, _) = f.vfs.open(&me(), f1.ino, of::READ_ONLY).await.unwrap();
    assert_eq!(&f.vfs.read(fh, 0, 4096).await.unwrap()[..], b"INT f1;\n");
    f.vfs.release(fh).await.unwrap();

    // Changed on the remote, and the VFS told (as change notification
    // does): the new data is read, not what came with the listing.
    f.vfs.invalidate_path(b"src");
    list(&f.vfs, src.ino).await;
    std::fs::write(f.dir.path().join("src/f2.c"), b"changed on the remote").unwrap();
    f.vfs.invalidate_path(b"src/f2.c");
    let f2 = f.vfs.lookup(&me(), src.ino, b"f2.c").await.unwrap();
    let (fh, _) = f.vfs.open(&me(), f2.ino, of::READ_ONLY).await.unwrap();
    assert_eq!(
        &f.vfs.read(fh, 0, 4096).await.unwrap()[..],
        b"changed on the remote"
    );
    f.vfs.release(fh).await.unwrap();

    // A file opened with its listed contents keeps them, and its own
    // handle, when it is replaced on the remote while open.
    f.vfs.invalidate_path(b"src");
    list(&f.vfs, src.ino).await;
    let f3 = f.vfs.lookup(&me(), src.ino, b"f3.c").await.unwrap();
    let (fh, _) = f.vfs.open(&me(), f3.ino, of::READ_ONLY).await.unwrap();
    std::fs::write(f.dir.path().join("src/new"), b"replacement").unwrap();
    std::fs::rename(f.dir.path().join("src/new"), f.dir.path().join("src/f3.c")).unwrap();
    assert_eq!(f.vfs.getattr(f3.ino, Some(fh)).await.unwrap().size, 8);
    assert_eq!(&f.vfs.read(fh, 0, 4096).await.unwrap()[..], b"int f3;\n");
    f.vfs.release(fh).await.unwrap();
}

/// The sizes readdirplus hands out (through `remember`) for each entry.
async fn listed_sizes(vfs: &Vfs, dir: Ino) -> Vec<(String, u64)> {
    let dh = vfs.opendir(&me(), dir).unwrap();
    let items = vfs.readdir(dh, 0).await.unwrap();
    vfs.releasedir(dh).unwrap();
    let mut sizes = Vec::new();
    for item in items.iter().filter(|i| !i.is_dot_or_dotdot()) {
        let attr = vfs.remember(dir, item).await.unwrap();
        vfs.forget(attr.ino, 1);
        sizes.push((String::from_utf8(item.name.clone()).unwrap(), attr.size));
    }
    sizes.sort();
    sizes
}

#[tokio::test]
async fn two_names_of_a_file_with_buffered_writes_are_listed_with_its_new_size() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    // Two names of a file with buffered writes: the first entry's remember
    // sends them, and the second must not hand out the listing's size from
    // before.
    let (fh, file) = f
        .vfs
        .create(&me(), ROOT_INO, b"b", 0o644, of::READ_WRITE)
        .await
        .unwrap();
    f.vfs.link(&me(), file.ino, ROOT_INO, b"c").await.unwrap();
    f.vfs.write(fh, 0, b"x").await.unwrap();
    assert_eq!(
        listed_sizes(&f.vfs, ROOT_INO).await,
        [("b".to_string(), 1), ("c".to_string(), 1)]
    );
    assert_eq!(f.vfs.getattr(file.ino, None).await.unwrap().size, 1);
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn a_listing_fetched_ahead_of_a_write_through_the_mount_is_not_handed_out() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    // A listing fetched ahead, then a write through the mount: the listing
    // shows the size from before the write.
    for d in ["d", "e"] {
        std::fs::create_dir(f.dir.path().join(d)).unwrap();
        std::fs::write(f.dir.path().join(d).join("file"), b"x").unwrap();
    }
    list(&f.vfs, ROOT_INO).await;
    let d = f.vfs.lookup(&me(), ROOT_INO, b"d").await.unwrap();
    list(&f.vfs, d.ino).await;
    settle(&f.calls).await;
    let e = f.vfs.lookup(&me(), ROOT_INO, b"e").await.unwrap();
    let file = f.vfs.lookup(&me(), e.ino, b"file").await.unwrap();
    let (fh, _) = f.vfs.open(&me(), file.ino, of::WRITE_ONLY).await.unwrap();
    f.vfs.write(fh, 0, b"grown").await.unwrap();
    f.vfs.fsync(fh, false).await.unwrap();
    f.vfs.release(fh).await.unwrap();
    assert_eq!(listed_sizes(&f.vfs, e.ino).await, [("file".to_string(), 5)]);
    assert_eq!(f.vfs.getattr(file.ino, None).await.unwrap().size, 5);
}

#[tokio::test]
async fn a_listing_fetched_ahead_of_a_change_notification_is_not_handed_out() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    for d in ["p/d", "q"] {
        std::fs::create_dir_all(f.dir.path().join(d)).unwrap();
    }
    // A walk lists q after the root: p's listing (with d's attributes) is
    // fetched ahead.
    list(&f.vfs, ROOT_INO).await;
    let p = f.vfs.lookup(&me(), ROOT_INO, b"p").await.unwrap();
    let q = f.vfs.lookup(&me(), ROOT_INO, b"q").await.unwrap();
    list(&f.vfs, q.ino).await;
    settle(&f.calls).await;
    // Someone makes a directory in d, and the notifier reports it.
    std::fs::create_dir(f.dir.path().join("p/d/new")).unwrap();
    f.vfs.invalidate_path(b"p/d/new");
    let dh = f.vfs.opendir(&me(), p.ino).unwrap();
    let items = f.vfs.readdir(dh, 0).await.unwrap();
    f.vfs.releasedir(dh).unwrap();
    let d = items.iter().find(|i| i.name == b"d").unwrap();
    assert_eq!(f.vfs.remember(p.ino, d).await.unwrap().nlink, 3);
    assert_eq!(f.vfs.getattr(d.ino, None).await.unwrap().nlink, 3);
}

#[tokio::test]
async fn with_a_directory_ttl_of_zero_lookups_do_not_list_the_directory() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::ZERO,
        attr_ttl: Duration::ZERO,
        ..VfsOptions::default()
    })
    .await;
    for name in ["a", "b", "c"] {
        std::fs::write(f.dir.path().join(name), b"x").unwrap();
    }
    assert_eq!(list(&f.vfs, ROOT_INO).await, [".", "..", "a", "b", "c"]);
    let pages = listings(&f.calls);
    // A listing would expire as soon as it came: one lstat per lookup.
    for name in [&b"a"[..], b"b", b"c"] {
        f.vfs.lookup(&me(), ROOT_INO, name).await.unwrap();
    }
    assert_eq!(listings(&f.calls), pages);
}

#[tokio::test]
async fn attributes_a_create_answered_are_not_replaced_by_an_older_listing() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    std::fs::create_dir_all(f.dir.path().join("q")).unwrap();
    std::fs::create_dir_all(f.dir.path().join("p")).unwrap();
    std::fs::write(f.dir.path().join("p/x"), b"").unwrap();
    // p's listing is fetched ahead (a walk lists q after the root).
    list(&f.vfs, ROOT_INO).await;
    let p = f.vfs.lookup(&me(), ROOT_INO, b"p").await.unwrap();
    let q = f.vfs.lookup(&me(), ROOT_INO, b"q").await.unwrap();
    list(&f.vfs, q.ino).await;
    settle(&f.calls).await;
    // x changes meanwhile (as when the agent gives a new node its owner
    // after a listing saw it), then an open with O_CREAT answers its
    // attributes as they are now.
    std::fs::set_permissions(f.dir.path().join("p/x"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let (fh, x) = f
        .vfs
        .create(&me(), p.ino, b"x", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.release(fh).await.unwrap();
    assert_eq!(x.perm, 0o600);
    let dh = f.vfs.opendir(&me(), p.ino).unwrap();
    let items = f.vfs.readdir(dh, 0).await.unwrap();
    f.vfs.releasedir(dh).unwrap();
    let item = items.iter().find(|i| i.name == b"x").unwrap();
    assert_eq!(f.vfs.remember(p.ino, item).await.unwrap().perm, 0o600);
    assert_eq!(f.vfs.getattr(x.ino, None).await.unwrap().perm, 0o600);
}

#[tokio::test]
async fn a_notification_below_a_directory_renamed_on_the_remote_is_not_lost() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    let a = f.vfs.mkdir(&me(), ROOT_INO, b"a", 0o755).await.unwrap();
    let aa = f.vfs.mkdir(&me(), a.ino, b"a", 0o755).await.unwrap();
    let (fh, old) = f
        .vfs
        .create(&me(), aa.ino, b"f", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.release(fh).await.unwrap();
    // What the mount acknowledged has reached the remote before anyone
    // else changes it.
    f.vfs.flush_all().await.unwrap();
    // The directory is renamed on the remote, and reported...
    std::fs::rename(f.dir.path().join("a"), f.dir.path().join("b")).unwrap();
    f.vfs.invalidate_path(b"a");
    f.vfs.invalidate_path(b"b");
    // ...then a file below it is saved over, and reported by its new path,
    // which the VFS has not seen yet.
    std::fs::write(f.dir.path().join("new"), b"newer").unwrap();
    std::fs::rename(f.dir.path().join("new"), f.dir.path().join("b/a/f")).unwrap();
    f.vfs.invalidate_path(b"b/a/f");
    let b = f.vfs.lookup(&me(), ROOT_INO, b"b").await.unwrap();
    let ba = f.vfs.lookup(&me(), b.ino, b"a").await.unwrap();
    let now = f.vfs.lookup(&me(), ba.ino, b"f").await.unwrap();
    assert_ne!(now.ino, old.ino);
    assert_eq!(now.size, 5);
}

#[tokio::test]
async fn a_notification_below_an_empty_directory_renamed_on_the_remote_is_not_lost() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_secs(60),
        attr_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    })
    .await;
    std::fs::create_dir(f.dir.path().join("a")).unwrap();
    let a = f.vfs.lookup(&me(), ROOT_INO, b"a").await.unwrap();
    // Made here, so known empty, and nothing named below it.
    let aa = f.vfs.mkdir(&me(), a.ino, b"a", 0o755).await.unwrap();
    // Its parent is renamed on the remote, and reported...
    std::fs::rename(f.dir.path().join("a"), f.dir.path().join("b")).unwrap();
    f.vfs.invalidate_path(b"a");
    f.vfs.invalidate_path(b"b");
    // ...then a file is created in it, and reported by its new path, which
    // the VFS has not seen yet.
    std::fs::write(f.dir.path().join("b/a/a"), b"new").unwrap();
    f.vfs.invalidate_path(b"b/a/a");
    let b = f.vfs.lookup(&me(), ROOT_INO, b"b").await.unwrap();
    let ba = f.vfs.lookup(&me(), b.ino, b"a").await.unwrap();
    assert_eq!(ba.ino, aa.ino);
    assert_eq!(f.vfs.lookup(&me(), ba.ino, b"a").await.unwrap().size, 3);
}

#[tokio::test]
async fn lookups_after_the_listing_expired_list_the_directory_again_once() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_millis(300),
        attr_ttl: Duration::from_millis(300),
        ..VfsOptions::default()
    })
    .await;
    for i in 0..20 {
        std::fs::write(f.dir.path().join(format!("f{i}")), b"x").unwrap();
    }
    assert_eq!(list(&f.vfs, ROOT_INO).await.len(), 22);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Changed on the remote meanwhile: the new listing sees it.
    std::fs::write(f.dir.path().join("f3"), b"longer").unwrap();
    std::fs::remove_file(f.dir.path().join("f4")).unwrap();
    let (pages, lstats) = (listings(&f.calls), f.calls.of(Op::Lstat));
    let attr = f.vfs.lookup(&me(), ROOT_INO, b"f3").await.unwrap();
    assert_eq!(attr.size, 6);
    for i in 5..20 {
        f.vfs
            .lookup(&me(), ROOT_INO, format!("f{i}").as_bytes())
            .await
            .unwrap();
    }
    let gone = f.vfs.lookup(&me(), ROOT_INO, b"f4").await.unwrap_err();
    assert_eq!(gone.errno(), Errno::ENOENT);
    assert_eq!(listings(&f.calls), pages + 1);
    assert_eq!(f.calls.of(Op::Lstat), lstats);
}

/// Opens `dir`, reads `pages` readdir answers (all of them for `None`)
/// and releases it.
async fn read_listing(vfs: &Vfs, dir: Ino, pages: Option<usize>) {
    let dh = vfs.opendir(&me(), dir).unwrap();
    let mut offset = 0;
    for _ in 0..pages.unwrap_or(usize::MAX) {
        let items = vfs.readdir(dh, offset).await.unwrap();
        let Some(last) = items.last() else { break };
        offset = last.offset;
    }
    vfs.releasedir(dh).unwrap();
}

#[tokio::test]
async fn a_frontend_keeps_a_listing_it_was_handed_whole_until_it_changes_or_expires() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_millis(600),
        attr_ttl: Duration::from_millis(600),
        readdir_page: 300,
        ..VfsOptions::default()
    })
    .await;
    for i in 0..300 {
        std::fs::write(f.dir.path().join(format!("f{i:03}")), b"x").unwrap();
    }
    assert!(!f.vfs.listing_kept(ROOT_INO), "nothing handed out yet");
    // Fetched from the remote, then listed again from the table: both
    // are the listing the table holds.
    read_listing(&f.vfs, ROOT_INO, None).await;
    assert!(f.vfs.listing_kept(ROOT_INO));
    read_listing(&f.vfs, ROOT_INO, None).await;
    assert!(f.vfs.listing_kept(ROOT_INO));
    // An open that reads nothing (the frontend served it) changes nothing.
    read_listing(&f.vfs, ROOT_INO, Some(0)).await;
    assert!(f.vfs.listing_kept(ROOT_INO));

    // A name added through the VFS: the kept listing lacks it.
    let (fh, _) = f
        .vfs
        .create(&me(), ROOT_INO, b"new", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.release(fh).await.unwrap();
    assert!(!f.vfs.listing_kept(ROOT_INO));
    // Handed out in part only (one of two batches): not kept either.
    read_listing(&f.vfs, ROOT_INO, Some(1)).await;
    assert!(!f.vfs.listing_kept(ROOT_INO));
    read_listing(&f.vfs, ROOT_INO, None).await;
    assert!(f.vfs.listing_kept(ROOT_INO));

    // Past the names TTL the listing is no longer vouched for.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!f.vfs.listing_kept(ROOT_INO));
    std::fs::write(f.dir.path().join("remote-new"), b"x").unwrap();
    let names = list(&f.vfs, ROOT_INO).await;
    assert!(
        names.iter().any(|n| n == "remote-new"),
        "listed again: {}",
        names.len()
    );
    assert!(f.vfs.listing_kept(ROOT_INO));
}

#[tokio::test]
async fn a_lookup_of_a_file_with_buffered_writes_reports_their_size() {
    let f = fixture_with(VfsOptions {
        dir_ttl: Duration::from_millis(200),
        attr_ttl: Duration::from_millis(200),
        write_delay: Duration::from_secs(3600),
        ..VfsOptions::default()
    })
    .await;
    let (fh, attr) = f
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.write(fh, 0, &[7; 100]).await.unwrap();
    // The name expires; the remote still has an empty file.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let found = f.vfs.lookup(&me(), ROOT_INO, b"f").await.unwrap();
    assert_eq!(found.ino, attr.ino);
    assert_eq!(found.size, 100);
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn lseek_sees_writes_still_buffered_by_any_handle() {
    let f = fixture().await;
    let disk = std::fs::File::create(f.dir.path().join("sparse")).unwrap();
    disk.set_len(8 << 20).unwrap();
    drop(disk);
    let ino = f.vfs.lookup(&me(), ROOT_INO, b"sparse").await.unwrap().ino;
    let (writer, _) = f.vfs.open(&me(), ino, of::WRITE_ONLY).await.unwrap();
    let (reader, _) = f.vfs.open(&me(), ino, of::READ_ONLY).await.unwrap();
    assert_eq!(
        f.vfs
            .lseek(reader, 0, SeekWhence::Data)
            .await
            .unwrap_err()
            .errno(),
        Errno::ENXIO,
        "all hole"
    );
    f.vfs.write(writer, 2 << 20, &[7; 100]).await.unwrap();
    assert_eq!(f.calls.of(Op::Write), 0, "buffered");
    assert_eq!(f.vfs.lseek(reader, 0, SeekWhence::Data).await.unwrap(), 2 << 20);
    assert_eq!(f.calls.of(Op::Write), 1);
    let disk = std::fs::File::open(f.dir.path().join("sparse")).unwrap();
    let hole = rustix::fs::seek(&disk, rustix::fs::SeekFrom::Hole(2 << 20)).unwrap();
    assert!(hole > 2 << 20 && hole < 8 << 20, "{hole}");
    assert_eq!(
        f.vfs.lseek(reader, 2 << 20, SeekWhence::Hole).await.unwrap(),
        hole
    );
    let err = f.vfs.lseek(reader, 8 << 20, SeekWhence::Hole).await.unwrap_err();
    assert_eq!(err.errno(), Errno::ENXIO);
    assert_eq!(err.to_string(), "lseek sparse: No such device or address");
    f.vfs.release(writer).await.unwrap();
    f.vfs.release(reader).await.unwrap();
}

#[tokio::test]
async fn writes_through_two_handles_reach_the_remote_in_order() {
    let f = fixture().await;
    std::fs::write(f.dir.path().join("f"), b"xxxxxxxxxx").unwrap();
    let ino = f.vfs.lookup(&me(), ROOT_INO, b"f").await.unwrap().ino;
    let (a, _) = f.vfs.open(&me(), ino, of::WRITE_ONLY).await.unwrap();
    f.vfs.write(a, 0, b"AAAAAAAAAA").await.unwrap();
    let (b, _) = f.vfs.open(&me(), ino, of::WRITE_ONLY).await.unwrap();
    f.vfs.write(b, 0, b"BBBB").await.unwrap();
    f.vfs.flush(b).await.unwrap();
    f.vfs.release(b).await.unwrap();
    f.vfs.flush(a).await.unwrap();
    f.vfs.release(a).await.unwrap();
    assert_eq!(std::fs::read(f.dir.path().join("f")).unwrap(), b"BBBBAAAAAA");
}

#[tokio::test]
async fn a_write_error_is_reported_to_the_handle_that_wrote() {
    let f = fixture().await;
    std::fs::write(f.dir.path().join("f"), b"").unwrap();
    let ino = f.vfs.lookup(&me(), ROOT_INO, b"f").await.unwrap().ino;
    let (a, _) = f.vfs.open(&me(), ino, of::WRITE_ONLY).await.unwrap();
    let (b, _) = f.vfs.open(&me(), ino, of::WRITE_ONLY).await.unwrap();
    f.faults.fail(Op::Write, Errno::ENOSPC);
    f.vfs.write(a, 0, b"from a").await.unwrap();
    // b's write sends a's buffered data first; its failure belongs to a,
    // and b's own to b: each hears of its own, until its fsync takes it.
    f.vfs.write(b, 100, b"from b").await.unwrap();
    assert_eq!(f.vfs.flush(b).await.unwrap_err().errno(), Errno::ENOSPC);
    f.faults.clear();
    assert_eq!(f.vfs.fsync(b, false).await.unwrap_err().errno(), Errno::ENOSPC);
    f.vfs.flush(b).await.unwrap();
    assert_eq!(f.vfs.flush(a).await.unwrap_err().errno(), Errno::ENOSPC);
    assert_eq!(f.vfs.fsync(a, false).await.unwrap_err().errno(), Errno::ENOSPC);
    f.vfs.flush(a).await.unwrap();
    f.vfs.release(a).await.unwrap();
    f.vfs.release(b).await.unwrap();
}

#[tokio::test]
async fn an_open_of_a_replaced_name_is_stale_and_the_retry_opens_the_new_file() {
    let f = fixture().await;
    let doc = f.dir.path().join("doc");
    std::fs::write(&doc, b"old").unwrap();
    let old = f.vfs.lookup(&me(), ROOT_INO, b"doc").await.unwrap().ino;
    // An atomic save behind the mount's back.
    std::fs::write(f.dir.path().join(".tmp"), b"new!").unwrap();
    std::fs::rename(f.dir.path().join(".tmp"), &doc).unwrap();
    let err = f.vfs.open(&me(), old, of::READ_ONLY).await.unwrap_err();
    assert_eq!(err.errno(), Errno::ESTALE);
    // The kernel's retry: a lookup, which opens the file, then the open,
    // which takes that handle even if the name moved on once more.
    let new = f.vfs.lookup(&me(), ROOT_INO, b"doc").await.unwrap();
    assert_ne!(new.ino, old);
    assert_eq!(new.size, 4);
    std::fs::write(f.dir.path().join(".tmp"), b"newer").unwrap();
    std::fs::rename(f.dir.path().join(".tmp"), &doc).unwrap();
    assert_eq!(
        f.vfs.lookup(&me(), ROOT_INO, b"doc").await.unwrap().ino,
        new.ino,
        "the same caller's second lookup answers the file it opened"
    );
    let (fh, _) = f.vfs.open(&me(), new.ino, of::READ_ONLY).await.unwrap();
    assert_eq!(&f.vfs.read(fh, 0, 100).await.unwrap()[..], b"new!");
    f.vfs.release(fh).await.unwrap();
}

/// The kernel retries a stale open by walking the path again on the same
/// thread: the retry is the caller's, whichever of the file's names the
/// VFS tried the open by, and the directories on the way do not spend it.
#[tokio::test]
async fn a_stale_open_retried_through_another_name_still_opens_the_file_it_finds() {
    let f = fixture().await;
    let dir = f.dir.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    let save = |data: &[u8]| {
        std::fs::write(dir.join(".tmp"), data).unwrap();
        std::fs::rename(dir.join(".tmp"), dir.join("doc")).unwrap();
    };
    save(b"old");
    let d = f.vfs.lookup(&me(), ROOT_INO, b"d").await.unwrap().ino;
    let old = f.vfs.lookup(&me(), d, b"doc").await.unwrap().ino;
    // A second name of the file, met last: the one an open goes by.
    std::fs::hard_link(dir.join("doc"), dir.join("link")).unwrap();
    assert_eq!(f.vfs.lookup(&me(), d, b"link").await.unwrap().ino, old);
    // Behind the mount's back, that name goes and doc is saved over.
    std::fs::remove_file(dir.join("link")).unwrap();
    save(b"new!");
    // The kernel opens what it found under d/doc: stale...
    let err = f.vfs.open(&me(), old, of::READ_ONLY).await.unwrap_err();
    assert_eq!(err.errno(), Errno::ESTALE);
    // ...and walks the path again: d, then doc...
    assert_eq!(f.vfs.lookup(&me(), ROOT_INO, b"d").await.unwrap().ino, d);
    let new = f.vfs.lookup(&me(), d, b"doc").await.unwrap();
    assert_ne!(new.ino, old);
    assert_eq!(new.size, 4);
    // ...and opens the file it found, whole, even if doc is saved over
    // once more in between (which a second ESTALE would hand to the
    // application).
    save(b"newer");
    let (fh, _) = f.vfs.open(&me(), new.ino, of::READ_ONLY).await.unwrap();
    assert_eq!(&f.vfs.read(fh, 0, 100).await.unwrap()[..], b"new!");
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn a_remote_without_inode_numbers_is_served_by_path_and_renames_keep_identity() {
    let dir = tempfile::tempdir().unwrap();
    let remote = WithoutInodeNumbers::new(DirectAgent::new(dir.path()));
    let vfs = Vfs::new(
        remote.clone(),
        VfsOptions::default(),
        Arc::new(MemoryJournal::default()),
    )
    .await
    .unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    for name in ["d/a", "d/b", "c"] {
        std::fs::write(dir.path().join(name), name).unwrap();
    }
    let d = vfs.lookup(&me(), ROOT_INO, b"d").await.unwrap().ino;
    let a = vfs.lookup(&me(), d, b"a").await.unwrap().ino;
    let b = vfs.lookup(&me(), d, b"b").await.unwrap().ino;
    let c = vfs.lookup(&me(), ROOT_INO, b"c").await.unwrap().ino;
    let all = [ROOT_INO, d, a, b, c];
    let distinct: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "two files never share a number: {all:?}"
    );
    // A listing finds the same numbers.
    let fh = vfs.opendir(&me(), d).unwrap();
    let listed: Vec<(String, Ino)> = vfs
        .readdir(fh, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (String::from_utf8(i.name).unwrap(), i.ino))
        .collect();
    vfs.releasedir(fh).unwrap();
    assert!(
        listed.contains(&("a".into(), a)) && listed.contains(&("b".into(), b)),
        "{listed:?}"
    );
    // A rename through the VFS carries the identity along, below a
    // renamed directory too.
    vfs.rename(&me(), d, b"a", ROOT_INO, b"moved", RenameFlags::default())
        .await
        .unwrap();
    vfs.rename(&me(), ROOT_INO, b"d", ROOT_INO, b"e", RenameFlags::default())
        .await
        .unwrap();
    assert_eq!(vfs.lookup(&me(), ROOT_INO, b"moved").await.unwrap().ino, a);
    assert_eq!(vfs.lookup(&me(), ROOT_INO, b"e").await.unwrap().ino, d);
    assert_eq!(vfs.lookup(&me(), d, b"b").await.unwrap().ino, b);
    let (fh, _) = vfs.open(&me(), a, of::READ_ONLY).await.unwrap();
    assert_eq!(&vfs.read(fh, 0, 100).await.unwrap()[..], b"d/a");
    vfs.release(fh).await.unwrap();
    // A new file at an old name is a new number.
    std::fs::write(dir.path().join("a2"), b"x").unwrap();
    let a2 = vfs.lookup(&me(), ROOT_INO, b"a2").await.unwrap().ino;
    assert!(!all.contains(&a2));
}

/// Driven as an NFS server drives it: uncounted lookups, reads and writes
/// by inode with no open, handles that outlive renames and mounts.
#[tokio::test]
async fn a_stateless_frontend_reads_and_writes_by_handle() {
    let f = fixture().await;
    let export = Exporter::new(f.vfs.clone());
    std::fs::create_dir(f.dir.path().join("d")).unwrap();
    std::fs::write(f.dir.path().join("d/f"), b"hello").unwrap();
    let d = f.vfs.lookup_uncounted(&me(), ROOT_INO, b"d").await.unwrap().ino;
    let ino = f.vfs.lookup_uncounted(&me(), d, b"f").await.unwrap().ino;
    let handle = export.file_handle(ino).unwrap();
    let wire = handle.to_bytes();

    // No lookup is counted, yet the inode stays: it was handed out.
    f.vfs.forget(ino, 0);
    let ino = export.resolve(&FileHandle::from_bytes(&wire).unwrap()).unwrap();
    assert_eq!(&export.read_ino(&me(), ino, 0, 100).await.unwrap()[..], b"hello");
    assert_eq!(export.write_ino(&me(), ino, 5, b", world").await.unwrap(), 7);
    export.commit_ino(&me(), ino).await.unwrap();
    assert_eq!(std::fs::read(f.dir.path().join("d/f")).unwrap(), b"hello, world");
    assert_eq!(
        &export.read_ino(&me(), ino, 0, 100).await.unwrap()[..],
        b"hello, world"
    );

    // Renamed (and its directory too): the same handle, the same file.
    f.vfs
        .rename(&me(), d, b"f", d, b"g", RenameFlags::default())
        .await
        .unwrap();
    f.vfs
        .rename(&me(), ROOT_INO, b"d", ROOT_INO, b"e", RenameFlags::default())
        .await
        .unwrap();
    assert_eq!(export.resolve(&handle).unwrap(), ino);
    assert_eq!(&export.read_ino(&me(), ino, 0, 5).await.unwrap()[..], b"hello");

    // A handle from another mount of the same tree is stale.
    let other = Vfs::new(
        f.agent.clone(),
        VfsOptions::default(),
        Arc::new(MemoryJournal::default()),
    )
    .await
    .unwrap();
    assert_eq!(
        Exporter::new(other).resolve(&handle).unwrap_err().errno(),
        Errno::ESTALE
    );

    // Deleted: stale, never another file.
    f.vfs.unlink(&me(), d, b"g").await.unwrap();
    // The handle cache let go of it once idle; until then the file is
    // still open (as an NFS client's file would be on a local server).
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(export.resolve(&handle).unwrap_err().errno(), Errno::ESTALE);
    std::fs::write(f.dir.path().join("e/g"), b"new file").unwrap();
    let new = f.vfs.lookup_uncounted(&me(), d, b"g").await.unwrap().ino;
    assert_ne!(new, ino);
    assert_eq!(export.resolve(&handle).unwrap_err().errno(), Errno::ESTALE);
}

/// The seam a reconnecting layer plugs into: the connection is replaced
/// between two operations on one open file, which carries on (reopened on
/// the new connection by path); the old connection is not used again, and
/// no other file is touched.
#[tokio::test]
async fn an_open_file_carries_on_when_the_connection_is_replaced() {
    let f = fixture().await;
    std::fs::write(f.dir.path().join("other"), b"untouched").unwrap();
    let (fh, attr) = f
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::READ_WRITE)
        .await
        .unwrap();
    f.vfs.write(fh, 0, b"before ").await.unwrap();
    f.vfs.flush(fh).await.unwrap();

    let old_calls = |calls: &Counted| calls.of(Op::Write) + calls.of(Op::Read);
    let replacement = Counted::new(DirectAgent::new(f.dir.path()));
    f.vfs.replace_remote(replacement.clone());
    let old_before = old_calls(&f.calls);

    f.vfs.write(fh, 7, b"after").await.unwrap();
    f.vfs.fsync(fh, false).await.unwrap();
    assert_eq!(&f.vfs.read(fh, 0, 100).await.unwrap()[..], b"before after");
    assert_eq!(f.vfs.getattr(attr.ino, Some(fh)).await.unwrap().size, 12);
    f.vfs.release(fh).await.unwrap();
    assert_eq!(std::fs::read(f.dir.path().join("f")).unwrap(), b"before after");
    assert_eq!(std::fs::read(f.dir.path().join("other")).unwrap(), b"untouched");
    assert_eq!(old_calls(&f.calls), old_before, "the old connection is not used");
    assert!(old_calls(&replacement) >= 2);

    // A file replaced on the remote meanwhile is not reopened as this one.
    let (fh, _) = f.vfs.open(&me(), attr.ino, of::READ_ONLY).await.unwrap();
    std::fs::write(f.dir.path().join(".tmp"), b"another file").unwrap();
    std::fs::rename(f.dir.path().join(".tmp"), f.dir.path().join("f")).unwrap();
    f.vfs.replace_remote(DirectAgent::new(f.dir.path()));
    assert_eq!(f.vfs.read(fh, 20, 10).await.unwrap_err().errno(), Errno::ESTALE);
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn buffered_data_reaches_the_remote_as_slices_of_one_buffer_not_copies() {
    // A buffer larger than a request: sent as several requests, each a
    // view of the one buffer the writes were gathered in. (The ninth write
    // does not fit and starts the next buffer.)
    let max_io = yonder_proto::MAX_IO_SIZE as usize;
    let f = fixture_with(VfsOptions {
        write_buffer: 2 * max_io + 4096,
        write_delay: Duration::from_secs(3600),
        ..VfsOptions::default()
    })
    .await;
    let (fh, _) = f
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    let piece = 1 << 20;
    let mut expect = Vec::new();
    for i in 0..9u8 {
        let data = vec![i; piece];
        f.vfs.write(fh, expect.len() as u64, &data).await.unwrap();
        expect.extend_from_slice(&data);
    }
    f.vfs.fsync(fh, false).await.unwrap();
    // The requests run concurrently and may reach the agent in any order;
    // each write's bytes say where it belongs.
    let mut written = f.writes.written();
    written.sort_by_key(|data| data[0]);
    assert_eq!(
        written.iter().map(|b| b.len()).collect::<Vec<_>>(),
        [max_io, max_io, piece]
    );
    assert_eq!(
        written[1].as_ptr(),
        written[0].as_ptr().wrapping_add(max_io),
        "the second request's data is the buffer right after the first's"
    );
    assert_eq!(written.concat(), expect);
    assert_eq!(std::fs::read(f.dir.path().join("f")).unwrap(), expect);
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn small_writes_join_the_buffer_without_waiting_and_the_rest_are_left_to_write_bytes() {
    let f = fixture_with(VfsOptions {
        write_buffer: 64,
        write_delay: Duration::from_secs(3600),
        ..VfsOptions::default()
    })
    .await;
    let (fh, attr) = f
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    // Gathered at once: copied from the caller's buffer into the write
    // buffer, nothing sent.
    assert_eq!(f.vfs.write_ready(fh, 0, &[1; 30]).unwrap().unwrap(), 30);
    assert_eq!(f.vfs.write_ready(fh, 30, &[2; 30]).unwrap().unwrap(), 30);
    assert_eq!(f.calls.of(Op::Write), 0);
    // One that would fill the buffer, one that does not continue it, and
    // one as large as the buffer are sent, which takes a wait.
    assert!(f.vfs.write_ready(fh, 60, &[3; 4]).is_none());
    assert!(f.vfs.write_ready(fh, 100, &[3; 1]).is_none());
    assert!(f.vfs.write_ready(fh, 60, &[3; 64]).is_none());
    f.vfs.write(fh, 60, &[3; 4]).await.unwrap();
    f.vfs.flush(fh).await.unwrap();
    let mut expect = vec![1; 30];
    expect.extend([2; 30]);
    expect.extend([3; 4]);
    assert_eq!(std::fs::read(f.dir.path().join("f")).unwrap(), expect);
    assert_eq!(f.calls.of(Op::Write), 1, "one gathered write");

    // An error kept for the handle is reported by the next write, here too.
    f.faults.inject(Fault::on(Op::Write, Errno::EIO).times(1));
    f.vfs.write(fh, 64, &[4; 64]).await.unwrap();
    f.vfs.getattr(attr.ino, None).await.unwrap();
    let err = f.vfs.write_ready(fh, 128, &[5; 1]).unwrap().unwrap_err();
    assert_eq!(err.errno(), Errno::EIO);
    f.vfs.release(fh).await.unwrap();

    // O_SYNC: on the remote when write returns, so never gathered here.
    let (fh, _) = f
        .vfs
        .create(&me(), ROOT_INO, b"g", 0o644, of::WRITE_ONLY | of::SYNC)
        .await
        .unwrap();
    assert!(f.vfs.write_ready(fh, 0, &[1; 4]).is_none());
    f.vfs.release(fh).await.unwrap();
    let gone = f.vfs.write_ready(fh, 0, &[1; 4]).unwrap().unwrap_err();
    assert_eq!(gone.errno(), Errno::EBADF);
}

#[tokio::test]
async fn a_write_gathered_on_a_frontends_own_thread_is_sent_after_the_delay() {
    let f = fixture_with(VfsOptions {
        write_delay: Duration::from_millis(50),
        ..VfsOptions::default()
    })
    .await;
    let (fh, _) = f
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    // As the FUSE session thread calls it: outside the runtime.
    let vfs = f.vfs.clone();
    let done = std::thread::spawn(move || vfs.write_ready(fh, 0, b"soon"))
        .join()
        .unwrap();
    assert_eq!(done.unwrap().unwrap(), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(std::fs::read(f.dir.path().join("f")).unwrap(), b"soon");
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn a_large_write_reaches_the_remote_as_the_callers_own_buffer() {
    let f = fixture().await;
    let (fh, _) = f
        .vfs
        .create(&me(), ROOT_INO, b"big", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    // As large as the write buffer: sent as it is, no copy on the way.
    let data = bytes::Bytes::from(vec![7u8; VfsOptions::default().write_buffer]);
    f.vfs.write_bytes(fh, 0, data.clone()).await.unwrap();
    f.vfs.fsync(fh, false).await.unwrap();
    let written = f.writes.written();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].as_ptr(), data.as_ptr());
    f.vfs.release(fh).await.unwrap();
}

/// The data each `open_read` and `read` asked the remote for.
#[derive(Default)]
struct DataAsked {
    bytes: std::sync::atomic::AtomicU64,
}

impl Interceptor for DataAsked {
    async fn intercept<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        next: impl std::future::Future<Output = yonder_remote::Result<T>> + Send + 'a,
    ) -> yonder_remote::Result<T> {
        if let (Op::OpenRead | Op::Read, Some(len)) = (call.op, call.len) {
            self.bytes.fetch_add(len as u64, Ordering::SeqCst);
        }
        next.await
    }
}

/// Where a listing brings no contents (SFTP), a small file read whole is
/// opened again with no data asked for while its attributes are fresh and
/// the open shows it unchanged; changed, it is read again.
#[tokio::test]
async fn a_small_file_read_whole_is_reopened_with_no_data_asked_for_until_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"first").unwrap();
    let asked = Intercepted::<DataAsked>::new(DirectAgent::new(dir.path()));
    let opts = VfsOptions {
        attr_ttl: Duration::from_secs(60),
        dir_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    };
    let vfs = Vfs::new(asked.clone(), opts, Arc::new(MemoryJournal::default()))
        .await
        .unwrap();
    let bytes = || asked.bytes.load(Ordering::SeqCst);
    let read_whole = |ino| {
        let vfs = vfs.clone();
        async move {
            let (fh, _) = vfs.open(&me(), ino, of::READ_ONLY).await.unwrap();
            let data = vfs.read(fh, 0, 4096).await.unwrap();
            vfs.release(fh).await.unwrap();
            data
        }
    };
    let f = vfs.lookup(&me(), ROOT_INO, b"f").await.unwrap();
    assert_eq!(&read_whole(f.ino).await[..], b"first");
    let first = bytes();
    assert!(first > 0, "the first open brings the file's start");
    for _ in 0..3 {
        assert_eq!(&read_whole(f.ino).await[..], b"first");
    }
    assert_eq!(bytes(), first, "opened again with no data asked for");

    std::fs::write(dir.path().join("f"), b"second, longer").unwrap();
    vfs.invalidate_path(b"f");
    let f = vfs.lookup(&me(), ROOT_INO, b"f").await.unwrap();
    assert_eq!(&read_whole(f.ino).await[..], b"second, longer");
    assert!(bytes() > first, "a changed file is read again");
}
