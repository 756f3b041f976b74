//! The Cloud Files engine driven through a fake of the OS side
//! (`support/fake_os.rs`, which follows the API's documented contract),
//! over a real VFS on an agent serving a temporary directory, with the
//! agent's pushed changes followed: what a program does in the sync root
//! reaches the remote directory, and what changes in that directory
//! reaches the placeholders.

// On the test kit's fixtures (the Unix agent): Unix only, like the test
// kit itself; on Windows the engine is type-checked without them.
#![cfg(unix)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::fake_os::{Answer, FakeCloudOs};
use tokio::runtime::Handle;
use yonder_cloudfiles::{CloudFilesFrontend, CloudOs, CloudStatus, ItemPath};
use yonder_remote::{Link, LinkOptions};
use yonder_testkit::agent::{TcpAgent, TcpConnector};
use yonder_testkit::faults::{Delayed, Faulty, Op};
use yonder_vfs::frontend::{Frontend, MountHandle};
use yonder_vfs::{Errno, MemoryJournal, Vfs, VfsOptions};

struct Fixture {
    dir: tempfile::TempDir,
    mountpoint: tempfile::TempDir,
    os: Arc<FakeCloudOs>,
    faults: Arc<Faulty>,
    delays: Arc<Delayed>,
    mount: Option<Box<dyn MountHandle>>,
    link: Link,
    _agent: TcpAgent,
}

/// Waits (at most 5 s) until `check` holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(5), "{what}: not within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A sync root on the fake OS, served from a VFS over an agent on a
/// fresh directory that `fill` fills first.
async fn mounted(fill: impl FnOnce(&Path)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let agent = TcpAgent::start(dir.path()).await.unwrap();
    let link = Link::start(
        Arc::new(TcpConnector { addr: agent.addr() }),
        LinkOptions::default(),
    )
    .await
    .unwrap();
    let delays = Delayed::new(link.current().1);
    let faults = Faulty::new(delays.clone());
    let options = VfsOptions {
        attr_ttl: Duration::from_secs(60),
        dir_ttl: Duration::from_secs(60),
        ..VfsOptions::default()
    };
    let vfs = Vfs::new(faults.clone(), options, Arc::new(MemoryJournal::default()))
        .await
        .unwrap();
    vfs.follow_changes(link.changes());
    eventually("changes pushed", || vfs.changes_pushed()).await;

    let os = FakeCloudOs::new();
    let fake = os.clone();
    let frontend = CloudFilesFrontend::new(move || fake.clone() as Arc<dyn CloudOs>);
    let mountpoint = tempfile::tempdir().unwrap();
    let mount =
        tokio::task::block_in_place(|| frontend.start(vfs.clone(), Handle::current(), mountpoint.path()))
            .unwrap();
    Fixture {
        dir,
        mountpoint,
        os,
        faults,
        delays,
        mount: Some(mount),
        link,
        _agent: agent,
    }
}

impl Fixture {
    fn remote(&self, path: &str) -> std::path::PathBuf {
        self.dir.path().join(path)
    }

    /// Unmounts, and mounts the same folder again with a new VFS and
    /// engine, as a provider that ended and started again.
    async fn remount(&mut self) {
        let mount = self.mount.take().unwrap();
        tokio::task::block_in_place(|| mount.unmount(false).unwrap());
        drop(mount);
        let vfs = Vfs::new(
            self.link.current().1,
            VfsOptions::default(),
            Arc::new(MemoryJournal::default()),
        )
        .await
        .unwrap();
        vfs.follow_changes(self.link.changes());
        eventually("changes pushed", || vfs.changes_pushed()).await;
        let fake = self.os.clone();
        let frontend = CloudFilesFrontend::new(move || fake.clone() as Arc<dyn CloudOs>);
        let mount = tokio::task::block_in_place(|| {
            frontend.start(vfs.clone(), Handle::current(), self.mountpoint.path())
        })
        .unwrap();
        self.mount = Some(mount);
    }

    /// Unmounts and checks that the engine kept to the OS's contract
    /// throughout.
    fn finish(mut self) {
        let mount = self.mount.take().unwrap();
        tokio::task::block_in_place(|| {
            mount.unmount(false).unwrap();
            drop(mount);
        });
        assert!(!self.os.connected(), "still connected after unmount");
        assert_eq!(self.os.registration(), None, "still registered after unmount");
        assert_eq!(self.os.breaches(), Vec::<String>::new());
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_registers_the_sync_root_and_fills_directories_when_listed() {
    let f = mounted(|d| {
        std::fs::write(d.join("a.txt"), b"hello").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/b.bin"), pattern(10)).unwrap();
        std::os::unix::fs::symlink("a.txt", d.join("link")).unwrap();
        std::fs::write(d.join("not:windows"), b"x").unwrap();
    })
    .await;
    let registration = f.os.registration().expect("registered");
    assert_eq!(registration.root, f.mountpoint.path().canonicalize().unwrap());
    assert!(f.os.connected());
    assert_eq!(f.mount.as_ref().unwrap().frontend(), "cloudfiles");

    // Nothing is listed before the OS asks.
    assert!(f.os.item("a.txt").is_none());
    // Regular files and directories whose names Windows takes; no
    // symlink, no name with a colon.
    assert_eq!(f.os.list("").await.unwrap(), ["a.txt", "sub"]);
    let a = f.os.item("a.txt").unwrap();
    assert!(a.placeholder && !a.directory && a.in_sync);
    assert_eq!(a.size, 5);
    assert!(a.hydrated.is_empty(), "listed, not hydrated");
    assert!(f.os.item("sub").unwrap().directory);
    // A subdirectory is filled only when it is listed in turn.
    assert!(f.os.item("sub/b.bin").is_none());
    assert_eq!(f.os.list("sub").await.unwrap(), ["b.bin"]);
    assert_eq!(f.os.item("sub/b.bin").unwrap().size, 10);
    assert_eq!(
        f.os.answers(),
        [
            Answer::Placeholders(CloudStatus::Success),
            Answer::Placeholders(CloudStatus::Success)
        ]
    );
    // Listed once: the directory asks no more.
    f.os.list("").await.unwrap();
    assert_eq!(f.os.answers().len(), 2);
    f.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_hydrate_aligned_ranges_cut_at_the_end_of_the_file() {
    let small = pattern(3 * 4096 + 100);
    let large = pattern(3 << 20);
    let (s, l) = (small.clone(), large.clone());
    let f = mounted(move |d| {
        std::fs::write(d.join("small"), &s).unwrap();
        std::fs::write(d.join("large"), &l).unwrap();
    })
    .await;
    f.os.list("").await.unwrap();

    // A range in the middle, not aligned: what is transferred starts on
    // the 4 KiB boundary below it, and the read gets its bytes.
    assert_eq!(f.os.read("small", 5000, 10).await.unwrap(), &small[5000..5010]);
    let first = f.os.transfers()[0].clone();
    assert_eq!(first.0, ItemPath::new("small"));
    assert_eq!(first.1, 4096, "aligned down");
    let item = f.os.item("small").unwrap();
    assert!(!item.is_hydrated(0, 4096), "the range before it stays dehydrated");
    // The rest of the file came along as the optional range, up to the
    // end, whose last transfer is not a multiple of 4 KiB.
    assert!(item.is_hydrated(4096, small.len() as u64));

    // A range past the end of the file: cut at the end.
    assert_eq!(
        f.os.read("small", 3 * 4096 + 50, 1000).await.unwrap(),
        &small[3 * 4096 + 50..]
    );

    // A large file read from the start: in several transfers, in order,
    // each read through the VFS (and its readahead).
    assert_eq!(f.os.read("large", 0, 1 << 20).await.unwrap(), &large[..1 << 20]);
    // The optional range (the rest of the file) follows.
    eventually("the rest of the large file", || {
        f.os.item("large").unwrap().is_hydrated(0, 3 << 20)
    })
    .await;
    let transfers: Vec<_> =
        f.os.transfers()
            .into_iter()
            .filter(|(p, _, _)| *p == ItemPath::new("large"))
            .collect();
    assert_eq!(transfers.len(), 3, "{transfers:?}");
    let mut at = 0;
    for (_, offset, length) in &transfers {
        assert_eq!(*offset, at, "in order: {transfers:?}");
        at += length;
    }
    assert_eq!(f.os.read("large", 0, 3 << 20).await.unwrap(), large);
    f.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_reaches_the_remote_before_it_is_acknowledged_and_a_refused_one_is_vetoed() {
    let f = mounted(|d| {
        std::fs::write(d.join("a.txt"), b"hello").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("out.txt"), b"bye").unwrap();
    })
    .await;
    f.os.list("").await.unwrap();
    f.os.list("sub").await.unwrap();

    f.os.rename("a.txt", Some("sub/c.txt")).await.unwrap();
    assert!(!f.remote("a.txt").exists());
    assert_eq!(std::fs::read(f.remote("sub/c.txt")).unwrap(), b"hello");
    assert!(f.os.item("sub/c.txt").is_some() && f.os.item("a.txt").is_none());
    // The moved placeholder still hydrates from its new name.
    assert_eq!(f.os.read("sub/c.txt", 0, 4096).await.unwrap(), b"hello");

    // The remote refuses (its directory is gone): the rename is vetoed
    // with the remote's reason and nothing moves.
    std::fs::remove_dir_all(f.remote("sub")).unwrap();
    assert_eq!(
        f.os.rename("out.txt", Some("sub/out.txt")).await,
        Err(CloudStatus::NotFound)
    );
    assert!(f.remote("out.txt").exists());
    assert!(f.os.item("out.txt").is_some());
    // (The removal of `sub`'s placeholder may be answered after it.)
    assert!(f.os.answers().contains(&Answer::Rename(CloudStatus::NotFound)));

    // Moved out of the sync root: gone from the remote, as a delete.
    f.os.rename("out.txt", None).await.unwrap();
    assert!(!f.remote("out.txt").exists());
    f.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_reaches_the_remote_and_one_it_refuses_is_vetoed() {
    let f = mounted(|d| {
        std::fs::write(d.join("a.txt"), b"hello").unwrap();
        std::fs::create_dir(d.join("empty")).unwrap();
        std::fs::create_dir(d.join("full")).unwrap();
    })
    .await;
    f.os.list("").await.unwrap();
    f.os.delete("a.txt").await.unwrap();
    assert!(!f.remote("a.txt").exists());
    f.os.delete("empty").await.unwrap();
    assert!(!f.remote("empty").exists());

    // Something was put in the directory on the remote, unseen here yet:
    // the remote refuses, and so does the delete.
    f.faults.fail(Op::Rmdir, Errno::ENOTEMPTY);
    assert_eq!(f.os.delete("full").await, Err(CloudStatus::DirectoryNotEmpty));
    assert!(f.remote("full").exists());
    assert!(f.os.item("full").is_some());
    assert!(f
        .os
        .answers()
        .contains(&Answer::Delete(CloudStatus::DirectoryNotEmpty)));
    f.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_changes_update_add_and_remove_placeholders() {
    let f = mounted(|d| {
        std::fs::write(d.join("a.txt"), b"hello").unwrap();
        std::fs::write(d.join("old.txt"), b"old").unwrap();
    })
    .await;
    f.os.list("").await.unwrap();
    assert_eq!(f.os.read("a.txt", 0, 4096).await.unwrap(), b"hello");
    assert!(f.os.item("a.txt").unwrap().is_hydrated(0, 5));

    // Changed in the remote directory itself, behind the mount's back.
    std::fs::write(f.remote("a.txt"), b"hello, changed").unwrap();
    std::fs::write(f.remote("new.txt"), b"new").unwrap();
    std::fs::remove_file(f.remote("old.txt")).unwrap();

    eventually("a.txt updated and dehydrated", || {
        f.os.item("a.txt")
            .is_some_and(|a| a.size == 14 && a.hydrated.is_empty() && a.in_sync)
    })
    .await;
    eventually("new.txt shown", || {
        f.os.item("new.txt").is_some_and(|n| n.size == 3)
    })
    .await;
    eventually("old.txt gone", || f.os.item("old.txt").is_none()).await;
    // The next read fetches the new data.
    assert_eq!(f.os.read("a.txt", 0, 4096).await.unwrap(), b"hello, changed");
    assert_eq!(f.os.read("new.txt", 0, 4096).await.unwrap(), b"new");
    f.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_the_remote_refuses_fails_with_access_denied() {
    // Larger than what a listing brings of a file's contents, so the
    // data is asked for when read.
    let secret = pattern(100 << 10);
    let s = secret.clone();
    let f = mounted(move |d| std::fs::write(d.join("secret"), &s).unwrap()).await;
    f.os.list("").await.unwrap();
    // Tests run as root, whom file modes do not stop: the remote's
    // refusal is injected at its open, as an agent serving a file its
    // user may not read answers.
    f.faults.fail(Op::Open, Errno::EACCES);
    f.faults.fail(Op::OpenRead, Errno::EACCES);
    assert_eq!(f.os.read("secret", 0, 4096).await, Err(CloudStatus::AccessDenied));
    assert_eq!(
        f.os.answers().last(),
        Some(&Answer::Data(CloudStatus::AccessDenied))
    );
    assert!(f.os.item("secret").unwrap().hydrated.is_empty());
    f.faults.clear();
    assert_eq!(f.os.read("secret", 0, 4096).await.unwrap(), &secret[..4096]);
    f.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_written_or_made_here_reach_the_remote_on_close() {
    let f = mounted(|d| std::fs::write(d.join("doc.txt"), b"version 1").unwrap()).await;
    f.os.list("").await.unwrap();
    f.os.read("doc.txt", 0, 4096).await.unwrap();

    // A placeholder edited in place: sent on close, then in sync.
    f.os.write_and_close("doc.txt", b"v2");
    eventually("doc.txt in sync", || f.os.item("doc.txt").unwrap().in_sync).await;
    assert_eq!(std::fs::read(f.remote("doc.txt")).unwrap(), b"v2");

    // A new file: created on the remote and made a placeholder.
    f.os.create_and_close("made-here.txt", b"local data");
    eventually("made-here.txt a placeholder", || {
        f.os.item("made-here.txt").unwrap().placeholder
    })
    .await;
    assert_eq!(std::fs::read(f.remote("made-here.txt")).unwrap(), b"local data");
    assert!(f.os.item("made-here.txt").unwrap().in_sync);
    f.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_on_both_sides_keeps_both_versions() {
    let f = mounted(|d| std::fs::write(d.join("doc.txt"), b"base").unwrap()).await;
    f.os.list("").await.unwrap();
    f.os.read("doc.txt", 0, 4096).await.unwrap();
    // The remote changes, and the local edit is closed before the
    // notice of it is applied.
    std::fs::write(f.remote("doc.txt"), b"remote edit, longer").unwrap();
    f.os.write_and_close("doc.txt", b"local edit");
    eventually("a conflict copy", || {
        std::fs::read_dir(f.dir.path())
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains("conflict"))
    })
    .await;
    let copy = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.contains("conflict"))
        .unwrap();
    assert!(
        copy.starts_with("doc (conflict ") && copy.ends_with(").txt"),
        "{copy}"
    );
    // Neither version is lost (the copy is made, then written).
    eventually("the copy written", || {
        std::fs::read(f.remote(&copy)).unwrap() == b"local edit"
    })
    .await;
    assert_eq!(
        std::fs::read(f.remote("doc.txt")).unwrap(),
        b"remote edit, longer"
    );
    eventually("doc.txt shows the remote's version", || {
        f.os.item("doc.txt").is_some_and(|d| d.in_sync && d.size == 19)
    })
    .await;
    assert_eq!(
        f.os.read("doc.txt", 0, 4096).await.unwrap(),
        b"remote edit, longer"
    );
    eventually("the copy shown", || f.os.item(&copy).is_some()).await;
    f.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_the_remote_refuses_stays_unsynced_and_shows_in_the_sync_roots_status() {
    let f = mounted(|d| std::fs::write(d.join("doc.txt"), b"version 1").unwrap()).await;
    f.os.list("").await.unwrap();
    f.os.read("doc.txt", 0, 4096).await.unwrap();

    f.faults.fail(Op::Write, Errno::EACCES);
    f.os.write_and_close("doc.txt", b"version 2");
    eventually("the failure shown", || f.os.sync_status().is_some()).await;
    let shown = f.os.sync_status().unwrap();
    assert_eq!(shown.path, ItemPath::new("doc.txt"));
    assert_eq!(shown.status, CloudStatus::AccessDenied);
    assert!(shown.message.contains("doc.txt"), "{}", shown.message);
    assert!(!f.os.item("doc.txt").unwrap().in_sync);
    assert_eq!(std::fs::read(f.remote("doc.txt")).unwrap(), b"version 1");

    // Saved again once the remote takes it: sent, and the status clears.
    f.faults.clear();
    f.os.write_and_close("doc.txt", b"version 3");
    eventually("doc.txt in sync", || f.os.item("doc.txt").unwrap().in_sync).await;
    assert_eq!(std::fs::read(f.remote("doc.txt")).unwrap(), b"version 3");
    eventually("the status cleared", || f.os.sync_status().is_none()).await;
    f.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_the_remote_gives_to_a_directory_replaces_its_file_without_touching_the_remote() {
    let f = mounted(|d| std::fs::write(d.join("x"), b"a file").unwrap()).await;
    f.os.list("").await.unwrap();
    assert!(!f.os.item("x").unwrap().directory);

    std::fs::remove_file(f.remote("x")).unwrap();
    std::fs::create_dir(f.remote("x")).unwrap();
    std::fs::write(f.remote("x/inner"), b"in").unwrap();
    eventually("x shown as a directory", || {
        f.os.item("x").is_some_and(|x| x.directory)
    })
    .await;
    // The placeholder's removal was agreed to, and left the remote's
    // new directory alone.
    assert!(f.os.answers().contains(&Answer::Delete(CloudStatus::Success)));
    assert_eq!(std::fs::read(f.remote("x/inner")).unwrap(), b"in");
    assert_eq!(f.os.list("x").await.unwrap(), ["inner"]);
    f.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholders_from_before_a_restart_hydrate_and_follow_remote_changes() {
    let mut f = mounted(|d| {
        std::fs::write(d.join("a.txt"), b"hello").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
    })
    .await;
    f.os.list("").await.unwrap();
    f.remount().await;

    // The root is populated from before: not listed again; its
    // placeholders hydrate by their paths.
    f.os.list("").await.unwrap();
    assert_eq!(f.os.read("a.txt", 0, 4096).await.unwrap(), b"hello");
    // A directory first listed by this engine follows the remote's
    // changes, though its placeholder was given by the one before.
    assert_eq!(f.os.list("sub").await.unwrap(), Vec::<String>::new());
    std::fs::write(f.remote("sub/new"), b"n").unwrap();
    eventually("sub/new shown", || f.os.item("sub/new").is_some()).await;
    let fetches =
        f.os.answers()
            .iter()
            .filter(|a| matches!(a, Answer::Placeholders(_)))
            .count();
    assert_eq!(fetches, 2, "the root once, sub once");
    f.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_hydration_stops_sending() {
    const SIZE: usize = 9 << 20;
    let data = pattern(SIZE);
    let d = data.clone();
    let f = mounted(move |dir| std::fs::write(dir.join("big"), &d).unwrap()).await;
    f.os.list("").await.unwrap();
    // Slow reads: the read-ahead (the rest of the file, as the optional
    // range) takes a while.
    f.delays.delay(Op::Read, Duration::from_millis(200));
    assert_eq!(f.os.read("big", 0, 4096).await.unwrap(), &data[..4096]);
    f.os.cancel_hydration("big");
    // Long beside the read on its way when it was cancelled (200 ms):
    // had the engine gone on, its transfer would be in by then.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let item = f.os.item("big").unwrap();
    assert!(
        !item.is_hydrated(0, SIZE as u64),
        "hydrated to the end after the cancellation"
    );
    // The cancellation came while the next read was on its way (each
    // takes 200 ms): its data is not sent.
    assert_eq!(f.os.late_transfers(), 0);
    f.finish();
}

/// A figure, not a check of speed: a 64 MiB file hydrated by a program
/// reading it in order, 1 MiB at a time, from an agent on this machine.
/// `cargo test -p yonder-cloudfiles --test cloudfiles -- --ignored --nocapture hydration_rate`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a figure for docs/cloudfiles.md, not a check"]
async fn hydration_rate() {
    const SIZE: usize = 64 << 20;
    let data = pattern(SIZE);
    let d = data.clone();
    let f = mounted(move |dir| std::fs::write(dir.join("big"), &d).unwrap()).await;
    f.os.list("").await.unwrap();
    let start = Instant::now();
    let mut read = Vec::with_capacity(SIZE);
    while read.len() < SIZE {
        read.extend(f.os.read("big", read.len() as u64, 1 << 20).await.unwrap());
    }
    let elapsed = start.elapsed();
    assert!(read == data, "the data read is not the file's");
    let requests =
        f.os.answers()
            .iter()
            .filter(|a| matches!(a, Answer::Data(_)))
            .count();
    let transfers = f.os.transfers();
    let transferred: u64 = transfers.iter().map(|(_, _, length)| length).sum();
    println!(
        "hydrated {} MiB in {:.2} s ({:.0} MiB/s), {requests} FETCH_DATA, {} transfers of {} MiB in all",
        SIZE >> 20,
        elapsed.as_secs_f64(),
        (SIZE >> 20) as f64 / elapsed.as_secs_f64(),
        transfers.len(),
        transferred >> 20
    );
    f.finish();
}
