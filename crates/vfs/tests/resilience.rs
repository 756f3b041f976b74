//! The VFS across lost connections: calls wait for the next connection,
//! acknowledged writes are replayed on it in order, calls that must not run
//! twice are resolved instead of re-sent, open files carry on (or answer
//! ESTALE when their file is gone), and caches are revalidated.
//!
//! Most tests cut a `Disconnecting` wrapper around the agent's request
//! handling called in process (`yonder_testkit::direct`) and put
//! a new connection in place with `Vfs::replace_remote`, so the moment of
//! the cut is exact; the last ones run the VFS behind a real
//! `yonder_remote::Link` over the fault proxy.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

use std::sync::Arc;
use std::time::{Duration, Instant};
use yonder_testkit::direct::DirectAgent;
use yonder_testkit::faults::{Disconnecting, Op};
use yonder_vfs::{
    open_flags as of, Caller, ConnectionState, Errno, Ino, MemoryJournal, RenameFlags, Vfs, VfsEvent,
    VfsOptions, ROOT_INO,
};

struct Setup {
    dir: tempfile::TempDir,
    vfs: Arc<Vfs>,
    conn: Arc<Disconnecting>,
}

fn options() -> VfsOptions {
    VfsOptions {
        write_delay: Duration::from_secs(3600),
        op_timeout: Duration::from_secs(10),
        ..VfsOptions::default()
    }
}

async fn setup_with(opts: VfsOptions) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let conn = Disconnecting::new(DirectAgent::new(dir.path()));
    let vfs = Vfs::new(conn.clone(), opts, Arc::new(MemoryJournal::default()))
        .await
        .unwrap();
    Setup { dir, vfs, conn }
}

async fn setup() -> Setup {
    setup_with(options()).await
}

impl Setup {
    fn disk(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Waits until the current connection has been cut (by a call that
    /// triggered it).
    async fn cut(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.conn.is_disconnected() {
            assert!(Instant::now() < deadline, "the connection was not cut");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Puts a new connection in place, as a link does after reconnecting.
    fn reconnect(&mut self) {
        let next = Disconnecting::new(DirectAgent::new(self.dir.path()));
        self.vfs.replace_remote(next.clone());
        self.conn = next;
    }

    async fn ino(&self, name: &[u8]) -> Ino {
        self.vfs.lookup(&me(), ROOT_INO, name).await.unwrap().ino
    }
}

fn me() -> Caller {
    Caller::current()
}

/// Runs a call of `$vfs` on its own task (it waits for the connection).
macro_rules! bg {
    ($vfs:expr, |$v:ident| $call:expr) => {{
        let $v = $vfs.clone();
        tokio::spawn(async move { $call.await })
    }};
}

#[tokio::test]
async fn a_rename_that_took_effect_before_the_connection_was_lost_is_not_done_twice() {
    let mut s = setup().await;
    std::fs::write(s.disk("a"), b"original").unwrap();
    s.ino(b"a").await;
    s.conn.lose_answer_of(|c| c.op == Op::Rename);
    let rename = bg!(s.vfs, |vfs| vfs.rename(
        &me(),
        ROOT_INO,
        b"a",
        ROOT_INO,
        b"b",
        RenameFlags::default()
    ));
    s.cut().await;
    // Someone creates a new `a` meanwhile: sending the rename again would
    // move it over `b`.
    std::fs::write(s.disk("a"), b"someone else's").unwrap();
    s.reconnect();
    rename.await.unwrap().unwrap();
    assert_eq!(std::fs::read(s.disk("b")).unwrap(), b"original");
    assert_eq!(std::fs::read(s.disk("a")).unwrap(), b"someone else's");
}

#[tokio::test]
async fn a_rename_that_never_arrived_is_sent_again() {
    let mut s = setup().await;
    std::fs::write(s.disk("a"), b"original").unwrap();
    s.ino(b"a").await;
    s.conn.disconnect_when(|c| c.op == Op::Rename);
    let rename = bg!(s.vfs, |vfs| vfs.rename(
        &me(),
        ROOT_INO,
        b"a",
        ROOT_INO,
        b"b",
        RenameFlags::default()
    ));
    s.cut().await;
    s.reconnect();
    rename.await.unwrap().unwrap();
    assert_eq!(std::fs::read(s.disk("b")).unwrap(), b"original");
    assert!(!s.disk("a").exists());
}

#[tokio::test]
async fn removals_and_creations_that_took_effect_are_not_reported_failed() {
    let mut s = setup().await;
    std::fs::write(s.disk("f"), b"x").unwrap();
    s.ino(b"f").await;
    s.conn.lose_answer_of(|c| c.op == Op::Unlink);
    let unlink = bg!(s.vfs, |vfs| vfs.unlink(&me(), ROOT_INO, b"f"));
    s.cut().await;
    s.reconnect();
    unlink.await.unwrap().unwrap();
    assert!(!s.disk("f").exists());

    s.conn.lose_answer_of(|c| c.op == Op::Mkdir);
    let mkdir = bg!(s.vfs, |vfs| vfs.mkdir(&me(), ROOT_INO, b"d", 0o755));
    s.cut().await;
    s.reconnect();
    let attr = mkdir.await.unwrap().unwrap();
    assert!(s.disk("d").is_dir());
    assert_eq!(s.ino(b"d").await, attr.ino);

    s.conn.lose_answer_of(|c| c.op == Op::Symlink);
    let symlink = bg!(s.vfs, |vfs| vfs.symlink(&me(), ROOT_INO, b"l", b"target"));
    s.cut().await;
    s.reconnect();
    symlink.await.unwrap().unwrap();
    assert_eq!(std::fs::read_link(s.disk("l")).unwrap().as_os_str(), "target");

    s.conn.lose_answer_of(|c| c.op == Op::Rmdir);
    let rmdir = bg!(s.vfs, |vfs| vfs.rmdir(&me(), ROOT_INO, b"d"));
    s.cut().await;
    s.reconnect();
    rmdir.await.unwrap().unwrap();
    assert!(!s.disk("d").exists());
}

/// Where the agents record operations (`Once`, after `Fence`), a call
/// whose answer a cut hid is sent again to the next agent of the session,
/// which answers with the first outcome: exact, where the resolve steps
/// guess or give up.
#[tokio::test]
async fn calls_cut_off_are_answered_again_by_the_next_agent_of_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let agent = |generation| DirectAgent::in_session(dir.path(), runtime.path(), 0x5e55, generation);
    let mut conn = Disconnecting::new(agent(1).await);
    let vfs = Vfs::new(conn.clone(), options(), Arc::new(MemoryJournal::default()))
        .await
        .unwrap();
    let mut generation = 1;
    let mut cut_and_reconnect = |conn: &mut Arc<Disconnecting>| {
        let vfs = vfs.clone();
        generation += 1;
        let next = agent(generation);
        let previous = conn.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !previous.is_disconnected() {
                assert!(Instant::now() < deadline, "the connection was not cut");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let next = Disconnecting::new(next.await);
            vfs.replace_remote(next.clone());
            next
        }
    };

    // An exclusive create that landed: the file, open, not EIO.
    conn.lose_answer_of(|c| c.op == Op::Open);
    let create = bg!(vfs, |vfs| vfs.create(
        &me(),
        ROOT_INO,
        b"lock",
        0o644,
        of::WRITE_ONLY | of::EXCLUSIVE
    ));
    conn = cut_and_reconnect(&mut conn).await;
    let (fh, _) = create
        .await
        .unwrap()
        .expect("the create that landed is answered as done");
    vfs.write(fh, 0, b"mine").await.unwrap();
    vfs.flush(fh).await.unwrap();
    vfs.release(fh).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("lock")).unwrap(), b"mine");

    // A mkdir and an unlink that landed: done, once.
    conn.lose_answer_of(|c| c.op == Op::Mkdir);
    let mkdir = bg!(vfs, |vfs| vfs.mkdir(&me(), ROOT_INO, b"d", 0o755));
    conn = cut_and_reconnect(&mut conn).await;
    mkdir.await.unwrap().expect("mkdir that landed");
    conn.lose_answer_of(|c| c.op == Op::Unlink);
    let unlink = bg!(vfs, |vfs| vfs.unlink(&me(), ROOT_INO, b"lock"));
    conn = cut_and_reconnect(&mut conn).await;
    unlink.await.unwrap().expect("unlink that landed");
    assert!(!dir.path().join("lock").exists());

    // A create that failed for real fails the same way when asked again.
    std::fs::write(dir.path().join("taken"), b"theirs").unwrap();
    conn.lose_answer_of(|c| c.op == Op::Open);
    let create = bg!(vfs, |vfs| vfs.create(
        &me(),
        ROOT_INO,
        b"taken",
        0o644,
        of::WRITE_ONLY | of::EXCLUSIVE
    ));
    let _conn = cut_and_reconnect(&mut conn).await;
    assert_eq!(create.await.unwrap().unwrap_err().errno(), Errno::EEXIST);
    assert_eq!(std::fs::read(dir.path().join("taken")).unwrap(), b"theirs");
}

#[tokio::test]
async fn an_exclusive_create_whose_outcome_is_unknown_fails_with_eio_not_a_guess() {
    let mut s = setup().await;
    s.conn.lose_answer_of(|c| c.op == Op::Open);
    let create = bg!(s.vfs, |vfs| vfs.create(
        &me(),
        ROOT_INO,
        b"lock",
        0o644,
        of::WRITE_ONLY | of::EXCLUSIVE
    ));
    s.cut().await;
    s.reconnect();
    assert_eq!(create.await.unwrap().unwrap_err().errno(), Errno::EIO);
    assert!(s.disk("lock").exists(), "the create did land");

    // Without O_EXCL, creating again just opens the file made before.
    s.conn.lose_answer_of(|c| c.op == Op::Open);
    let create = bg!(s.vfs, |vfs| vfs.create(
        &me(),
        ROOT_INO,
        b"plain",
        0o644,
        of::WRITE_ONLY
    ));
    s.cut().await;
    s.reconnect();
    let (fh, _) = create.await.unwrap().unwrap();
    s.vfs.write(fh, 0, b"ok").await.unwrap();
    s.vfs.flush(fh).await.unwrap();
    s.vfs.release(fh).await.unwrap();
    assert_eq!(std::fs::read(s.disk("plain")).unwrap(), b"ok");

    // One that never arrived is simply sent again.
    s.conn.disconnect_when(|c| c.op == Op::Open);
    let create = bg!(s.vfs, |vfs| vfs.create(
        &me(),
        ROOT_INO,
        b"lock2",
        0o644,
        of::WRITE_ONLY | of::EXCLUSIVE
    ));
    s.cut().await;
    s.reconnect();
    let (fh, _) = create.await.unwrap().unwrap();
    s.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn an_append_whose_answer_was_lost_is_not_appended_twice() {
    let mut s = setup().await;
    std::fs::write(s.disk("log"), b"first\n").unwrap();
    let ino = s.ino(b"log").await;
    let (fh, _) = s.vfs.open(&me(), ino, of::WRITE_ONLY | of::APPEND).await.unwrap();
    s.vfs.write(fh, 6, b"second\n").await.unwrap();
    s.conn.lose_answer_of(|c| c.op == Op::Write);
    let flush = bg!(s.vfs, |vfs| vfs.flush(fh));
    s.cut().await;
    s.reconnect();
    flush.await.unwrap().unwrap();
    assert_eq!(std::fs::read(s.disk("log")).unwrap(), b"first\nsecond\n");

    // One that never arrived is appended on the new connection.
    s.vfs.write(fh, 13, b"third\n").await.unwrap();
    s.conn.disconnect_when(|c| c.op == Op::Write);
    let flush = bg!(s.vfs, |vfs| vfs.flush(fh));
    s.cut().await;
    s.reconnect();
    flush.await.unwrap().unwrap();
    assert_eq!(std::fs::read(s.disk("log")).unwrap(), b"first\nsecond\nthird\n");

    // One whose landing the file cannot tell (it changed meanwhile) is
    // not sent again: EIO for the writer.
    s.vfs.write(fh, 19, b"fourth\n").await.unwrap();
    s.conn.disconnect_when(|c| c.op == Op::Write);
    let flush = bg!(s.vfs, |vfs| vfs.flush(fh));
    s.cut().await;
    std::fs::write(s.disk("log"), b"rewritten by someone\n").unwrap();
    s.reconnect();
    assert_eq!(flush.await.unwrap().unwrap_err().errno(), Errno::EIO);
    assert_eq!(std::fs::read(s.disk("log")).unwrap(), b"rewritten by someone\n");
    s.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn writes_lost_in_flight_are_replayed_in_the_order_they_were_made() {
    let mut s = setup_with(VfsOptions {
        // Every write is its own remote write.
        write_buffer: 0,
        ..options()
    })
    .await;
    let (fh, attr) = s
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    s.conn.disconnect();
    // Acknowledged although nothing reaches the remote.
    s.vfs.write(fh, 0, b"aaaa").await.unwrap();
    s.vfs.write(fh, 0, b"bbbb").await.unwrap();
    s.vfs.write(fh, 2, b"cccc").await.unwrap();
    s.vfs.write(fh, 100, b"zz").await.unwrap();
    assert_eq!(s.vfs.unconfirmed_writes(), (4, 14));
    let mut events = s.vfs.events();
    s.reconnect();
    s.vfs.fsync(fh, false).await.unwrap();
    let mut expect = b"bbcccc".to_vec();
    expect.resize(100, 0);
    expect.extend_from_slice(b"zz");
    assert_eq!(std::fs::read(s.disk("f")).unwrap(), expect);
    assert_eq!(s.vfs.unconfirmed_writes(), (0, 0));
    assert_eq!(s.vfs.getattr(attr.ino, Some(fh)).await.unwrap().size, 102);
    s.vfs.release(fh).await.unwrap();
    let event = events.recv().await.unwrap();
    assert!(
        matches!(event, VfsEvent::Reconnected { generation: 1, .. }),
        "{event:?}"
    );
}

#[tokio::test]
async fn a_write_acknowledged_while_reconnecting_reaches_the_next_connection() {
    let mut s = setup().await;
    let (fh, _) = s
        .vfs
        .create(&me(), ROOT_INO, b"f", 0o644, of::WRITE_ONLY)
        .await
        .unwrap();
    s.vfs.write(fh, 0, b"before ").await.unwrap();
    s.vfs.flush(fh).await.unwrap();
    s.conn.disconnect();
    s.vfs.connection_lost();
    let mut state = s.vfs.connection_state();
    assert_eq!(*state.borrow_and_update(), ConnectionState::Reconnecting);
    s.vfs.write(fh, 7, b"during").await.unwrap();
    let flush = bg!(s.vfs, |vfs| vfs.flush(fh));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!flush.is_finished(), "the flush waits for the connection");
    s.reconnect();
    flush.await.unwrap().unwrap();
    assert_eq!(*state.borrow_and_update(), ConnectionState::Up);
    assert_eq!(std::fs::read(s.disk("f")).unwrap(), b"before during");
    s.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn calls_wait_for_the_connection_until_the_operation_deadline() {
    let s = setup_with(VfsOptions {
        attr_ttl: Duration::ZERO,
        dir_ttl: Duration::ZERO,
        op_timeout: Duration::from_millis(400),
        ..options()
    })
    .await;
    std::fs::write(s.disk("f"), b"x").unwrap();
    let ino = s.ino(b"f").await;
    let (fh, _) = s.vfs.open(&me(), ino, of::WRITE_ONLY).await.unwrap();
    s.vfs.connection_lost();
    // Two waits in one operation share its deadline.
    let started = Instant::now();
    let both = s
        .vfs
        .operation(async {
            let first = s.vfs.getattr(ino, None).await;
            let second = s.vfs.lookup(&me(), ROOT_INO, b"f").await;
            (first, second)
        })
        .await;
    let waited = started.elapsed();
    assert_eq!(both.0.unwrap_err().errno(), Errno::EIO);
    assert_eq!(both.1.unwrap_err().errno(), Errno::EIO);
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_millis(700),
        "{waited:?}"
    );
    // The outage is older than the op timeout: operations fail at once,
    // a flush of acknowledged writes too (they stay queued).
    let started = Instant::now();
    assert_eq!(s.vfs.getattr(ino, None).await.unwrap_err().errno(), Errno::EIO);
    s.vfs.write(fh, 0, b"queued").await.unwrap();
    assert_eq!(s.vfs.flush(fh).await.unwrap_err().errno(), Errno::EIO);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?} (the op timeout is 10 s)",
        started.elapsed()
    );
    assert_eq!(s.vfs.unconfirmed_writes(), (1, 6));
    // Gone for good: at once.
    s.vfs.connection_gone("no reconnection");
    let started = Instant::now();
    assert_eq!(s.vfs.getattr(ino, None).await.unwrap_err().errno(), Errno::EIO);
    assert!(started.elapsed() < Duration::from_secs(2), "at once");
    let _ = s.vfs.release(fh).await;
}

#[tokio::test]
async fn cached_attributes_and_data_are_served_while_reconnecting_and_expire_after() {
    let mut s = setup_with(VfsOptions {
        attr_ttl: Duration::from_secs(3600),
        dir_ttl: Duration::from_secs(3600),
        op_timeout: Duration::from_millis(300),
        ..options()
    })
    .await;
    std::fs::write(s.disk("f"), b"cached").unwrap();
    let ino = s.ino(b"f").await;
    let (fh, _) = s.vfs.open(&me(), ino, of::READ_ONLY).await.unwrap();
    s.conn.disconnect();
    s.vfs.connection_lost();
    assert_eq!(s.vfs.getattr(ino, None).await.unwrap().size, 6);
    assert!(s.vfs.lookup_ready(&me(), ROOT_INO, b"f").is_some());
    assert_eq!(
        &s.vfs.read(fh, 0, 100).await.unwrap()[..],
        b"cached",
        "read with the open"
    );
    // Changed on the remote during the outage.
    std::fs::write(s.disk("f"), b"changed meanwhile").unwrap();
    s.reconnect();
    assert!(
        s.vfs.getattr_ready(ino).is_none(),
        "expired by the new connection"
    );
    assert_eq!(s.vfs.getattr(ino, None).await.unwrap().size, 17);
    assert_eq!(&s.vfs.read(fh, 0, 100).await.unwrap()[..], b"changed meanwhile");
    s.vfs.release(fh).await.unwrap();
}

#[tokio::test]
async fn a_file_deleted_while_disconnected_answers_estale_and_is_reported() {
    let mut s = setup().await;
    std::fs::write(s.disk("gone"), b"x").unwrap();
    std::fs::write(s.disk("kept"), b"kept").unwrap();
    let gone = s.ino(b"gone").await;
    let kept = s.ino(b"kept").await;
    let (fh_gone, _) = s.vfs.open(&me(), gone, of::READ_ONLY).await.unwrap();
    let (fh_kept, _) = s.vfs.open(&me(), kept, of::READ_ONLY).await.unwrap();
    let mut events = s.vfs.events();
    s.conn.disconnect();
    std::fs::remove_file(s.disk("gone")).unwrap();
    s.reconnect();
    assert_eq!(
        s.vfs.read(fh_gone, 0, 10).await.unwrap_err().errno(),
        Errno::ESTALE
    );
    assert_eq!(
        s.vfs.read(fh_gone, 0, 10).await.unwrap_err().errno(),
        Errno::ESTALE
    );
    assert_eq!(&s.vfs.read(fh_kept, 0, 10).await.unwrap()[..], b"kept");
    let mut lost = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let VfsEvent::HandleLost { path, .. } = event {
            lost.push(path);
        }
    }
    assert_eq!(lost, ["gone"], "reported once");
    s.vfs.release(fh_gone).await.unwrap();
    s.vfs.release(fh_kept).await.unwrap();
}

/// Renaming one name of a file over another name of the same file changes
/// nothing (rename(2)), but with zero TTLs the VFS cannot be sure of that
/// and keeps the name renamed from only as untrusted. When the other name
/// is then replaced, the reopen finds the file by a name that still holds
/// it (the one renamed from, which is also the one it was opened by).
#[tokio::test]
async fn an_open_file_is_reopened_by_the_name_it_was_opened_by_when_no_other_is_known() {
    let mut s = setup_with(VfsOptions {
        attr_ttl: Duration::ZERO,
        dir_ttl: Duration::ZERO,
        ..options()
    })
    .await;
    std::fs::write(s.disk("c"), b"file c").unwrap();
    std::fs::write(s.disk("a"), b"file a").unwrap();
    let c = s.ino(b"c").await;
    let (fh, _) = s.vfs.open(&me(), c, of::READ_WRITE).await.unwrap();
    s.vfs.link(&me(), c, ROOT_INO, b"b").await.unwrap();
    let plain = RenameFlags::default();
    s.vfs
        .rename(&me(), ROOT_INO, b"c", ROOT_INO, b"b", plain)
        .await
        .unwrap();
    s.ino(b"a").await;
    s.vfs
        .rename(&me(), ROOT_INO, b"a", ROOT_INO, b"b", plain)
        .await
        .unwrap();
    assert_eq!(std::fs::read(s.disk("c")).unwrap(), b"file c");
    s.conn.disconnect();
    s.reconnect();
    assert_eq!(&s.vfs.read(fh, 0, 100).await.unwrap()[..], b"file c");
    s.vfs.write(fh, 0, b"FILE").await.unwrap();
    s.vfs.release(fh).await.unwrap();
    assert_eq!(std::fs::read(s.disk("c")).unwrap(), b"FILE c");
    assert_eq!(std::fs::read(s.disk("b")).unwrap(), b"file a");
}

/// Renaming one name of a file over another of its names changes nothing
/// (rename(2)); with zero TTLs the VFS cannot be sure of that, but must
/// not lose the name renamed from: once the name the file was opened by is
/// unlinked, that name is the one left to reopen the file by.
#[tokio::test]
async fn an_open_file_is_reopened_by_a_name_renamed_over_another_of_its_names() {
    let mut s = setup_with(VfsOptions {
        attr_ttl: Duration::ZERO,
        dir_ttl: Duration::ZERO,
        ..options()
    })
    .await;
    let (fh, attr) = s
        .vfs
        .create(&me(), ROOT_INO, b"a", 0o644, of::READ_WRITE)
        .await
        .unwrap();
    s.vfs.link(&me(), attr.ino, ROOT_INO, b"b").await.unwrap();
    let plain = RenameFlags::default();
    s.vfs
        .rename(&me(), ROOT_INO, b"b", ROOT_INO, b"a", plain)
        .await
        .unwrap();
    s.vfs.unlink(&me(), ROOT_INO, b"a").await.unwrap();
    assert!(s.disk("b").exists(), "rename(2) left both names");
    s.conn.disconnect();
    s.reconnect();
    s.vfs.write(fh, 0, b"data").await.unwrap();
    s.vfs.flush(fh).await.unwrap();
    s.vfs.release(fh).await.unwrap();
    assert_eq!(std::fs::read(s.disk("b")).unwrap(), b"data");
}

#[tokio::test]
async fn a_listing_in_progress_carries_on_over_a_new_connection() {
    let mut s = setup_with(VfsOptions {
        readdir_page: 100,
        ..options()
    })
    .await;
    for i in 0..600 {
        std::fs::write(s.disk(&format!("n{i:03}")), b"").unwrap();
    }
    let dir = s.vfs.opendir(&me(), ROOT_INO).unwrap();
    let mut names = Vec::new();
    let mut offset = 0;
    let mut first = true;
    loop {
        let items = s.vfs.readdir(dir, offset).await.unwrap();
        let Some(last) = items.last() else { break };
        offset = last.offset;
        names.extend(
            items
                .iter()
                .filter(|i| !i.is_dot_or_dotdot())
                .map(|i| i.name.clone()),
        );
        if first {
            // The agent's cursor dies with its connection.
            s.reconnect();
            first = false;
        }
    }
    names.sort();
    let expect: Vec<Vec<u8>> = (0..600).map(|i| format!("n{i:03}").into_bytes()).collect();
    assert_eq!(names, expect);
    s.vfs.releasedir(dir).unwrap();
}

// ----- over a real link -----

mod link {
    use super::*;
    use yonder_remote::{Link, LinkOptions};
    use yonder_testkit::agent::{TcpAgent, TcpConnector};
    use yonder_testkit::proxy::FaultProxy;

    struct Linked {
        dir: tempfile::TempDir,
        _agent: TcpAgent,
        proxy: FaultProxy,
        link: Link,
        vfs: Arc<Vfs>,
    }

    async fn linked(opts: VfsOptions) -> Linked {
        let dir = tempfile::tempdir().unwrap();
        let agent = TcpAgent::start(dir.path()).await.unwrap();
        let proxy = FaultProxy::start(agent.addr()).await.unwrap();
        let link = Link::start(
            Arc::new(TcpConnector { addr: proxy.addr() }),
            LinkOptions {
                heartbeat: Duration::from_millis(200),
                heartbeat_misses: 3,
                backoff_initial: Duration::from_millis(50),
                backoff_max: Duration::from_millis(200),
                ..LinkOptions::default()
            },
        )
        .await
        .unwrap();
        let (generation, remote) = link.current();
        let vfs = Vfs::new(remote, opts, Arc::new(MemoryJournal::default()))
            .await
            .unwrap();
        vfs.follow(link.watch(), generation, |remote| remote);
        Linked {
            dir,
            _agent: agent,
            proxy,
            link,
            vfs,
        }
    }

    #[tokio::test]
    async fn a_writer_survives_repeated_cuts_and_every_byte_lands() {
        let l = linked(options()).await;
        let (fh, _) = l
            .vfs
            .create(&me(), ROOT_INO, b"big", 0o644, of::WRITE_ONLY)
            .await
            .unwrap();
        let piece = 64 * 1024;
        let total = 24 << 20;
        let mut expect = Vec::with_capacity(total);
        let mut cuts = 0;
        while expect.len() < total {
            let data: Vec<u8> = (0..piece).map(|i| ((expect.len() + i) * 7 % 251) as u8).collect();
            let n = l
                .vfs
                .write_bytes(fh, expect.len() as u64, bytes::Bytes::from(data.clone()))
                .await
                .unwrap();
            assert_eq!(n as usize, piece);
            expect.extend_from_slice(&data);
            if expect.len() % (4 << 20) == 0 {
                l.proxy.drop_all();
                cuts += 1;
            }
        }
        l.vfs.fsync(fh, false).await.unwrap();
        l.vfs.release(fh).await.unwrap();
        assert!(cuts >= 5);
        assert!(l.link.current().0 > 1, "reconnected");
        let written = std::fs::read(l.dir.path().join("big")).unwrap();
        assert!(written == expect, "the remote file differs");
        assert_eq!(l.vfs.unconfirmed_writes(), (0, 0));
    }

    #[tokio::test]
    async fn an_open_file_reads_on_after_a_black_hole_and_states_follow_the_link() {
        let l = linked(VfsOptions {
            attr_ttl: Duration::ZERO,
            ..options()
        })
        .await;
        std::fs::write(l.dir.path().join("f"), b"same data").unwrap();
        let ino = l.vfs.lookup(&me(), ROOT_INO, b"f").await.unwrap().ino;
        let (fh, _) = l.vfs.open(&me(), ino, of::READ_ONLY).await.unwrap();
        let mut states = l.vfs.connection_state();
        states.borrow_and_update();
        l.proxy.blackhole();
        let started = Instant::now();
        let stat = bg!(l.vfs, |vfs| vfs.getattr(ino, None));
        states.changed().await.unwrap();
        assert_eq!(*states.borrow_and_update(), ConnectionState::Reconnecting);
        let detected = started.elapsed();
        assert!(detected < Duration::from_millis(600 + 1000), "{detected:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        l.proxy.restore();
        assert_eq!(stat.await.unwrap().unwrap().size, 9, "waited, then answered");
        assert_eq!(*states.borrow_and_update(), ConnectionState::Up);
        assert_eq!(&l.vfs.read(fh, 5, 100).await.unwrap()[..], b"data");
        l.vfs.release(fh).await.unwrap();
    }
}

/// What a process that died left in its durable journal, replayed on a new
/// VFS by path: the order holds, operations the dead process may have
/// carried out are resolved, and a connection lost in the middle of the
/// replay (the answer of a write lost) is waited out and the rest carried
/// out on the next one.
#[tokio::test]
async fn a_journal_left_by_a_dead_process_is_replayed_across_a_lost_connection() {
    use yonder_vfs::{DiskJournal, Durability, Entry, Journal, MetaOp, Seq};
    let journal_dir = tempfile::tempdir().unwrap();
    let left: Vec<(Seq, Entry)> = {
        let (dead, _) = DiskJournal::open(journal_dir.path(), "m", Durability::EachRecord, "dead").unwrap();
        let meta = |ino: u64, op: MetaOp| Entry::Meta { ino: Ino(ino), op };
        let write = |ino: u64, path: &[u8], offset: u64, data: &'static [u8]| Entry::Write {
            ino: Ino(ino),
            fh: yonder_vfs::Fh(1),
            path: Some(path.to_vec()),
            offset,
            data: bytes::Bytes::from_static(data),
            append: false,
        };
        let mkdir = |path: &[u8]| MetaOp::Mkdir {
            path: path.to_vec(),
            mode: 0o40755,
            owner: None,
        };
        let create = |path: &[u8]| MetaOp::Create {
            path: path.to_vec(),
            mode: 0o100644,
            flags: of::WRITE_ONLY | of::CREATE | of::EXCLUSIVE,
            owner: None,
        };
        dead.record(meta(2, mkdir(b"d")));
        dead.record(meta(3, create(b"d/f")));
        dead.record(write(3, b"d/f", 0, b"hello "));
        dead.record(write(3, b"d/f", 6, b"world"));
        dead.record(meta(4, create(b"d/gone")));
        dead.record(meta(
            4,
            MetaOp::Unlink {
                path: b"d/gone".to_vec(),
            },
        ));
        dead.record(write(5, b"existing", 0, b"NEW"));
        dead.record(meta(6, mkdir(b"e")));
        dead.record(meta(6, MetaOp::Rmdir { path: b"e".to_vec() }));
        let left = dead.unconfirmed();
        // The process dies with its journal open.
        std::mem::forget(dead);
        left
    };
    let mut s = setup().await;
    // The dead process had carried out the first two before it died.
    std::fs::create_dir(s.disk("d")).unwrap();
    std::fs::write(s.disk("d/f"), b"hello ").unwrap();
    std::fs::write(s.disk("existing"), b"old contents").unwrap();
    s.conn.lose_answer_of(|c| c.op == Op::Write);
    let replay = bg!(s.vfs, |vfs| vfs.replay_journal(left));
    s.cut().await;
    s.reconnect();
    let recovered = replay.await.unwrap().unwrap();
    assert_eq!(recovered.failed, Vec::<String>::new());
    assert_eq!(recovered.replayed, 9);
    assert_eq!(std::fs::read(s.disk("d/f")).unwrap(), b"hello world");
    assert!(!s.disk("d/gone").exists() && !s.disk("e").exists());
    assert_eq!(std::fs::read(s.disk("existing")).unwrap(), b"NEW contents");
}

/// A replayed mkdir finds the directory there (the dead process made it)
/// and asks what it is; the connection is cut on that question. The
/// question is asked again on the next connection, not taken for "it is
/// something else": the replay succeeds.
#[tokio::test]
async fn a_replayed_mkdir_whose_check_is_cut_off_asks_again() {
    use yonder_vfs::{DiskJournal, Durability, Entry, Journal, MetaOp};
    let journal_dir = tempfile::tempdir().unwrap();
    let left = {
        let (dead, _) = DiskJournal::open(journal_dir.path(), "m", Durability::EachRecord, "dead").unwrap();
        dead.record(Entry::Meta {
            ino: Ino(2),
            op: MetaOp::Mkdir {
                path: b"d".to_vec(),
                mode: 0o40755,
                owner: None,
            },
        });
        let left = dead.unconfirmed();
        std::mem::forget(dead);
        left
    };
    let mut s = setup().await;
    std::fs::create_dir(s.disk("d")).unwrap();
    s.conn.disconnect_when(|c| c.op == Op::Lstat && c.names(b"d"));
    let replay = bg!(s.vfs, |vfs| vfs.replay_journal(left));
    s.cut().await;
    s.reconnect();
    let recovered = replay.await.unwrap().unwrap();
    assert_eq!(recovered.failed, Vec::<String>::new());
    assert_eq!(recovered.replayed, 1);
    assert!(s.disk("d").is_dir());
}
