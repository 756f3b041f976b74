//! Metadata write-back through the VFS, over the agent's own request
//! handling called in process: operations the caches vouch for are
//! acknowledged while the remote is held back (a gate that lets no call
//! through), and reach it in an order that keeps every dependency; an
//! operation the remote refuses comes back at fsync, close, sync and in
//! the events.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use yonder_remote::Result as RemoteResult;
use yonder_testkit::direct::DirectAgent;
use yonder_testkit::faults::{Call, Fault, Faulty, Intercepted, Interceptor, Op};
use yonder_testkit::observe::Counted;
use yonder_vfs::{
    open_flags as of, Caller, Errno, Ino, MemoryJournal, SetAttr, SetTime, Timespec, Vfs, VfsEvent,
    VfsOptions, ROOT_INO,
};

/// Holds every call while closed; records each call as it passes, in the
/// order they reach the remote.
struct Gate {
    open: watch::Sender<bool>,
    passed: Mutex<Vec<String>>,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            open: watch::Sender::new(true),
            passed: Mutex::default(),
        }
    }
}

impl Gate {
    /// Holds calls from now on; what passed before is forgotten.
    fn close(&self) {
        self.open.send_replace(false);
        self.passed.lock().unwrap().clear();
    }

    fn open(&self) {
        self.open.send_replace(true);
    }

    fn passed(&self) -> Vec<String> {
        self.passed.lock().unwrap().clone()
    }

    fn position(&self, what: &str) -> usize {
        let passed = self.passed();
        passed
            .iter()
            .position(|p| p == what)
            .unwrap_or_else(|| panic!("{what} never reached the remote: {passed:?}"))
    }
}

impl Interceptor for Gate {
    fn intercept<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        next: impl Future<Output = RemoteResult<T>> + Send + 'a,
    ) -> impl Future<Output = RemoteResult<T>> + Send + 'a {
        let mut open = self.open.subscribe();
        async move {
            let _ = open.wait_for(|o| *o).await;
            let what = match (call.op, call.data) {
                (Op::Write, Some(data)) => format!("write {}", String::from_utf8_lossy(data)),
                _ => format!("{} {}", call.op.name(), call.describe()),
            };
            self.passed.lock().unwrap().push(what);
            next.await
        }
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    gate: Arc<Intercepted<Gate>>,
    calls: Arc<Counted>,
    faults: Arc<Faulty>,
    vfs: Arc<Vfs>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let agent = DirectAgent::new(dir.path());
    let calls = Counted::new(agent);
    let faults = Faulty::new(calls.clone());
    let gate = Intercepted::with(faults.clone(), Gate::default());
    let opts = VfsOptions {
        attr_ttl: Duration::from_secs(60),
        dir_ttl: Duration::from_secs(60),
        // Creations wait for their file's close, never for a timer.
        write_delay: Duration::from_secs(3600),
        write_back: true,
        ..VfsOptions::default()
    };
    let vfs = Vfs::new(gate.clone(), opts, Arc::new(MemoryJournal::default()))
        .await
        .unwrap();
    // What the caches must know for creations to be acknowledged ahead:
    // the root's names (all of them) and its extended attributes.
    list(&vfs, ROOT_INO).await;
    vfs.listxattr(ROOT_INO).await.unwrap();
    Fixture {
        dir,
        gate,
        calls,
        faults,
        vfs,
    }
}

fn me() -> Caller {
    Caller::current()
}

/// Lists `dir` through the mount, as `rm -rf` does first: its names,
/// with attributes, and that it holds no others.
async fn list(vfs: &Vfs, dir: Ino) {
    let fh = vfs.opendir(&me(), dir).unwrap();
    let mut offset = 0;
    loop {
        let items = vfs.readdir(fh, offset).await.unwrap();
        let Some(last) = items.last() else { break };
        offset = last.offset;
        for item in items.iter().filter(|i| !i.is_dot_or_dotdot()) {
            let attr = vfs.remember(dir, item).await.unwrap();
            vfs.forget(attr.ino, 1);
        }
    }
    vfs.releasedir(fh).unwrap();
}

fn times(sec: i64) -> SetAttr {
    let t = SetTime::Set(Timespec { sec, nsec: 0 });
    SetAttr {
        atime: t,
        mtime: t,
        ..Default::default()
    }
}

/// Within a bound no remote wait could meet: the gate holds every call.
async fn at_once<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(3), f)
        .await
        .unwrap_or_else(|_| panic!("{what} waited for the remote"))
}

/// Creates `parent/name` with `data`, sets its times and closes it, as
/// tar does.
async fn extract(vfs: &Vfs, parent: Ino, name: &str, data: &str) -> Ino {
    let (fh, attr) = vfs
        .create(
            &me(),
            parent,
            name.as_bytes(),
            0o640,
            of::WRITE_ONLY | of::EXCLUSIVE,
        )
        .await
        .unwrap();
    vfs.write(fh, 0, data.as_bytes()).await.unwrap();
    vfs.setattr(&me(), attr.ino, Some(fh), times(1_000_000))
        .await
        .unwrap();
    vfs.flush(fh).await.unwrap();
    vfs.release(fh).await.unwrap();
    attr.ino
}

#[tokio::test]
async fn an_untar_is_acknowledged_without_the_remote_and_arrives_in_order() {
    let f = fixture().await;
    let lstats = f.calls.of(Op::Lstat);
    f.gate.close();
    let vfs = f.vfs.clone();
    at_once("the untar", async {
        let d = vfs.mkdir(&me(), ROOT_INO, b"d", 0o750).await.unwrap();
        let e = vfs.mkdir(&me(), d.ino, b"e", 0o750).await.unwrap();
        for i in 0..10 {
            extract(&vfs, e.ino, &format!("f{i}"), &format!("data of f{i}")).await;
        }
        let link = vfs.symlink(&me(), d.ino, b"l", b"e/f0").await.unwrap();
        assert_eq!(link.size, 4);
        vfs.setattr(&me(), e.ino, None, times(2_000_000)).await.unwrap();
        // What the mount shows is what was asked, before the remote has it.
        let f0 = vfs.lookup(&me(), e.ino, b"f0").await.unwrap();
        assert_eq!((f0.size, f0.perm, f0.mtime.sec), (10, 0o640, 1_000_000));
    })
    .await;
    assert!(
        f.gate.passed().is_empty(),
        "nothing reached the remote: {:?}",
        f.gate.passed()
    );
    assert!(!f.dir.path().join("d").exists());
    assert!(
        f.vfs.unconfirmed_writes().0 > 0,
        "kept in the journal until confirmed"
    );
    assert_eq!(f.vfs.write_back_counts(), (0, 2 + 2 * 10 + 2));

    f.gate.open();
    f.vfs.flush_all().await.unwrap();
    assert_eq!(f.vfs.unconfirmed_writes(), (0, 0));
    assert_eq!(f.vfs.write_back_counts(), (0, 0));
    let e = f.dir.path().join("d/e");
    for i in 0..10 {
        let path = e.join(format!("f{i}"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("data of f{i}"));
        let meta = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(
            (meta.permissions().mode() & 0o7777, meta.mtime()),
            (0o640, 1_000_000)
        );
        // Each file went out as one operation: create, its data, its times.
        let create = f.gate.position(&format!("open d/e/f{i}"));
        let write = f.gate.position(&format!("write data of f{i}"));
        let setattr = f.gate.position(&format!("setattr d/e/f{i}"));
        assert!(f.gate.position("mkdir d") < f.gate.position("mkdir d/e"));
        assert!(f.gate.position("mkdir d/e") < create);
        assert!(create < write && write < setattr, "{:?}", f.gate.passed());
        assert!(
            setattr < f.gate.position("setattr d/e"),
            "a directory's times after its contents"
        );
    }
    assert_eq!(
        std::fs::read_link(f.dir.path().join("d/l")).unwrap().to_str(),
        Some("e/f0")
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&e).unwrap().mtime(), 2_000_000);
    // Pipelined: one create and one write per file, and no lookups.
    assert_eq!(f.calls.of(Op::Open), 10);
    assert_eq!(f.calls.of(Op::Write), 10);
    assert_eq!(f.calls.of(Op::Lstat), lstats);
}

#[tokio::test]
async fn an_rm_rf_is_acknowledged_without_the_remote_and_the_directory_goes_last() {
    let f = fixture().await;
    let d = f.vfs.mkdir(&me(), ROOT_INO, b"d", 0o755).await.unwrap();
    for i in 0..5 {
        extract(&f.vfs, d.ino, &format!("f{i}"), "x").await;
    }
    f.vfs.flush_all().await.unwrap();
    assert!(f.dir.path().join("d/f4").exists());
    list(&f.vfs, d.ino).await;
    f.gate.close();
    at_once("the rm -rf", async {
        for i in 0..5 {
            f.vfs
                .unlink(&me(), d.ino, format!("f{i}").as_bytes())
                .await
                .unwrap();
        }
        f.vfs.rmdir(&me(), ROOT_INO, b"d").await.unwrap();
    })
    .await;
    assert!(f.dir.path().join("d/f4").exists());
    let err = f.vfs.lookup(&me(), ROOT_INO, b"d").await.unwrap_err();
    assert_eq!(err.errno(), Errno::ENOENT, "gone through the mount at once");
    f.gate.open();
    f.vfs.flush_all().await.unwrap();
    assert!(!f.dir.path().join("d").exists());
    let rmdir = f.gate.position("rmdir d");
    for i in 0..5 {
        assert!(f.gate.position(&format!("unlink d/f{i}")) < rmdir);
    }
}

#[tokio::test]
async fn unlink_then_create_of_one_name_keep_their_order() {
    let f = fixture().await;
    extract(&f.vfs, ROOT_INO, "x", "old").await;
    f.vfs.flush_all().await.unwrap();
    list(&f.vfs, ROOT_INO).await;
    f.gate.close();
    at_once("unlink and create", async {
        f.vfs.unlink(&me(), ROOT_INO, b"x").await.unwrap();
        extract(&f.vfs, ROOT_INO, "x", "new").await;
    })
    .await;
    f.gate.open();
    f.vfs.flush_all().await.unwrap();
    assert_eq!(std::fs::read_to_string(f.dir.path().join("x")).unwrap(), "new");
    assert!(f.gate.position("unlink x") < f.gate.position("write new"));
}

#[tokio::test]
async fn rename_then_unlink_of_the_old_name_keep_their_order() {
    let f = fixture().await;
    f.gate.close();
    let vfs = f.vfs.clone();
    // The rename waits for the creation it moves, which the gate holds:
    // it runs beside the opening of the gate.
    let renamed = tokio::spawn(async move {
        extract(&vfs, ROOT_INO, "a", "first").await;
        vfs.rename(&me(), ROOT_INO, b"a", ROOT_INO, b"b", Default::default())
            .await
            .unwrap();
        extract(&vfs, ROOT_INO, "a", "second").await;
        vfs.unlink(&me(), ROOT_INO, b"a").await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    f.gate.open();
    renamed.await.unwrap();
    f.vfs.flush_all().await.unwrap();
    assert_eq!(std::fs::read_to_string(f.dir.path().join("b")).unwrap(), "first");
    assert!(!f.dir.path().join("a").exists());
    let rename = f.gate.position("rename a -> b");
    assert!(f.gate.position("write first") < rename);
    assert!(rename < f.gate.position("unlink a"));
}

#[tokio::test]
async fn a_refused_creation_comes_back_at_fsync_in_the_events_and_at_sync() {
    let f = fixture().await;
    let mut events = f.vfs.events();
    f.faults.inject(Fault::when(
        |call| call.op == Op::Open && call.names(b"full"),
        Errno::ENOSPC,
    ));
    let (fh, _) = f
        .vfs
        .create(&me(), ROOT_INO, b"full", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    f.vfs.write(fh, 0, b"data").await.unwrap();
    let err = f.vfs.fsync(fh, false).await.unwrap_err();
    assert_eq!(err.errno(), Errno::ENOSPC, "{err}");
    f.vfs.release(fh).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(3), events.recv())
        .await
        .unwrap()
        .unwrap();
    match event {
        VfsEvent::MetadataFailed { op, path, error, .. } => {
            assert_eq!((op, path.as_str()), ("create", "full"));
            assert!(error.contains("space"), "{error}");
        }
        other => panic!("unexpected event {other:?}"),
    }
    // Reported once more to the sync of the whole mount, and counted.
    let err = f.vfs.flush_all().await.unwrap_err();
    assert_eq!(err.errno(), Errno::ENOSPC);
    f.vfs.flush_all().await.unwrap();
    assert_eq!(f.vfs.write_back_counts(), (1, 0));
    // The mount no longer claims the file exists.
    let err = f.vfs.lookup(&me(), ROOT_INO, b"full").await.unwrap_err();
    assert_eq!(err.errno(), Errno::ENOENT);
}

#[tokio::test]
async fn a_refused_change_comes_back_at_the_next_close_of_the_file() {
    let f = fixture().await;
    extract(&f.vfs, ROOT_INO, "f", "data").await;
    f.vfs.flush_all().await.unwrap();
    let mut events = f.vfs.events();
    f.faults.fail(Op::Setattr, Errno::EACCES);
    let attr = f.vfs.lookup(&me(), ROOT_INO, b"f").await.unwrap();
    let (fh, _) = f.vfs.open(&me(), attr.ino, of::READ_ONLY).await.unwrap();
    let chmod = SetAttr {
        mode: Some(0o600),
        ..Default::default()
    };
    let changed = at_once("the chmod", f.vfs.setattr(&me(), attr.ino, None, chmod))
        .await
        .unwrap();
    assert_eq!(changed.perm, 0o600);
    let event = tokio::time::timeout(Duration::from_secs(3), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(event, VfsEvent::MetadataFailed { op: "setattr", .. }),
        "{event:?}"
    );
    // Each close reports it while the file is open (the closing process
    // may not be the one that made the change)...
    for _ in 0..2 {
        let err = f.vfs.flush(fh).await.unwrap_err();
        assert_eq!(err.errno(), Errno::EACCES);
    }
    // ... and it is done with once the last descriptor is released.
    f.vfs.release(fh).await.unwrap();
    let (fh, _) = f.vfs.open(&me(), attr.ino, of::READ_ONLY).await.unwrap();
    f.vfs.flush(fh).await.unwrap();
    f.vfs.release(fh).await.unwrap();
    let attr = f.vfs.getattr(attr.ino, None).await.unwrap();
    assert_eq!(attr.perm, 0o640, "the remote's answer shows again");
}

/// A write error is reported by every close of the handle until its
/// writer's fsync takes it: a copy of the descriptor closed elsewhere (a
/// child forked by another thread closes its copy at exec) does not hide
/// it from the writer.
#[tokio::test]
async fn a_refused_write_is_reported_by_each_close_until_fsync_takes_it() {
    let f = fixture().await;
    extract(&f.vfs, ROOT_INO, "f", "").await;
    f.vfs.flush_all().await.unwrap();
    let attr = f.vfs.lookup(&me(), ROOT_INO, b"f").await.unwrap();
    let (fh, _) = f.vfs.open(&me(), attr.ino, of::WRITE_ONLY).await.unwrap();
    f.faults.fail(Op::Write, Errno::ENOSPC);
    // As large as the write buffer: sent at once, refused in the background.
    f.vfs.write(fh, 0, &vec![1u8; 2 << 20]).await.unwrap();
    for close in ["a close elsewhere", "the writer's close"] {
        let err = f.vfs.flush(fh).await.expect_err(close);
        assert_eq!(err.errno(), Errno::ENOSPC, "{close}: {err}");
    }
    let err = f.vfs.fsync(fh, false).await.unwrap_err();
    assert_eq!(err.errno(), Errno::ENOSPC, "{err}");
    f.vfs.fsync(fh, false).await.unwrap();
    f.vfs.flush(fh).await.unwrap();
    f.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn with_write_back_off_every_change_waits_for_the_remote() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Intercepted::with(DirectAgent::new(dir.path()), Gate::default());
    let opts = VfsOptions {
        write_back: false,
        ..VfsOptions::default()
    };
    let vfs = Vfs::new(gate.clone(), opts, Arc::new(MemoryJournal::default()))
        .await
        .unwrap();
    gate.close();
    let caller = me();
    let mkdir = vfs.mkdir(&caller, ROOT_INO, b"d", 0o755);
    assert!(tokio::time::timeout(Duration::from_millis(300), mkdir)
        .await
        .is_err());
}

#[tokio::test]
async fn operations_cut_off_by_a_lost_connection_are_carried_out_in_order_on_the_next() {
    use yonder_testkit::faults::Disconnecting;
    let dir = tempfile::tempdir().unwrap();
    let first = Disconnecting::new(DirectAgent::new(dir.path()));
    let gate = Intercepted::with(first.clone(), Gate::default());
    let opts = VfsOptions {
        attr_ttl: Duration::from_secs(60),
        dir_ttl: Duration::from_secs(60),
        write_delay: Duration::from_secs(3600),
        write_back: true,
        ..VfsOptions::default()
    };
    let vfs = Vfs::new(gate.clone(), opts, Arc::new(MemoryJournal::default()))
        .await
        .unwrap();
    list(&vfs, ROOT_INO).await;
    vfs.listxattr(ROOT_INO).await.unwrap();
    // Acknowledged while the remote holds everything back; then the
    // connection dies with all of it in flight.
    gate.close();
    let d = vfs.mkdir(&me(), ROOT_INO, b"d", 0o755).await.unwrap();
    for i in 0..5 {
        extract(&vfs, d.ino, &format!("f{i}"), &format!("data {i}")).await;
    }
    vfs.unlink(&me(), d.ino, b"f0").await.unwrap();
    assert!(vfs.unconfirmed_writes().0 > 0);
    first.disconnect();
    vfs.connection_lost();
    gate.open();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !dir.path().join("d").exists(),
        "nothing reached the dead connection's remote"
    );
    vfs.replace_remote(DirectAgent::new(dir.path()));
    tokio::time::timeout(Duration::from_secs(10), vfs.flush_all())
        .await
        .expect("carried out on the next connection")
        .unwrap();
    assert_eq!(vfs.unconfirmed_writes(), (0, 0));
    assert!(
        !dir.path().join("d/f0").exists(),
        "the unlink came after the create"
    );
    for i in 1..5 {
        let data = std::fs::read_to_string(dir.path().join(format!("d/f{i}"))).unwrap();
        assert_eq!(data, format!("data {i}"));
    }
}

/// A file renamed on the remote while open here keeps its handle; the
/// notifier makes its old name unknown. An fstat through the handle then
/// freshens its attributes, but not its name: a change through the handle
/// is the renamed file's, and must not be acknowledged ahead and sent by
/// the old name (ENOENT later, at sync).
#[tokio::test]
async fn a_change_through_a_handle_after_a_remote_rename_reaches_the_renamed_file() {
    let f = fixture().await;
    let (fh, attr) = f
        .vfs
        .create(&me(), ROOT_INO, b"b", 0o644, of::READ_WRITE)
        .await
        .unwrap();
    f.vfs.mkdir(&me(), ROOT_INO, b"a", 0o755).await.unwrap();
    f.vfs.flush_all().await.unwrap();
    std::fs::rename(f.dir.path().join("b"), f.dir.path().join("a/a")).unwrap();
    f.vfs.invalidate_path(b"b");
    f.vfs.invalidate_path(b"a/a");
    f.vfs.getattr(attr.ino, Some(fh)).await.unwrap();
    let changed = f.vfs.setattr(&me(), attr.ino, Some(fh), times(1)).await.unwrap();
    assert_eq!(changed.mtime.sec, 1);
    f.vfs.flush_all().await.unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(f.dir.path().join("a/a")).unwrap().mtime(), 1);
    f.vfs.flush(fh).await.unwrap();
    f.vfs.release(fh).await.unwrap();
}
