//! Real FUSE mounts made in this process through the crate's API
//! ([`Mounted`]), over the agent's own request handling called in process
//! (`yonder_testkit::direct`).
//!
//! Only what cannot be checked through the `yonder` binary lives here (the
//! behaviour suite, `crates/cli/tests/mount_behaviour.rs`, covers the
//! rest): the API itself (several mounts in one process, unmounting,
//! status, errors), and checks that count or delay the remote's calls,
//! which only an agent in this process (with `yonder_testkit::observe` and
//! `yonder_testkit::faults` wrappers) allows.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use yonder_fuse::{FuseError, MountConfig, MountStatus, Mounted};
use yonder_remote::Remote;
use yonder_testkit::direct::DirectAgent;
use yonder_testkit::faults::{Delayed, Op};
use yonder_testkit::observe::Counted;
use yonder_vfs::{MemoryJournal, Vfs, VfsOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Mounts `remote` at `mountpoint` on `rt`, as a daemon serving many
/// mounts would: a VFS, then a session.
fn start(
    rt: &tokio::runtime::Runtime,
    remote: Arc<dyn Remote>,
    mountpoint: &Path,
    config: &MountConfig,
) -> Result<Mounted, FuseError> {
    // Long TTLs, as a mount's whose remote pushes its changes (no change
    // feed is followed here, so they hold).
    let options = VfsOptions {
        attr_ttl: Duration::from_secs(10),
        dir_ttl: Duration::from_secs(10),
        ..VfsOptions::default()
    };
    let vfs = rt.block_on(Vfs::new(remote, options, Arc::new(MemoryJournal::default())))?;
    Mounted::start(vfs, rt.handle().clone(), mountpoint, config)
}

/// One mount of a temporary backing directory.
struct Fixture {
    mounted: Option<Mounted>,
    /// The calls that reached the agent, by operation.
    calls: Arc<Counted>,
    /// Between the mount and the remote: calls held up on demand.
    delays: Arc<Delayed>,
    backing: tempfile::TempDir,
    mnt: tempfile::TempDir,
    // Dropped last: it serves the mount.
    rt: tokio::runtime::Runtime,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(MountConfig::default())
    }

    fn with(config: MountConfig) -> Fixture {
        let rt = runtime();
        let backing = tempfile::tempdir().unwrap();
        let mnt = tempfile::tempdir().unwrap();
        let calls = Counted::new(DirectAgent::new(backing.path()));
        let delays = Delayed::new(calls.clone());
        let mounted = start(&rt, delays.clone(), mnt.path(), &config).unwrap();
        Fixture {
            mounted: Some(mounted),
            calls,
            delays,
            backing,
            mnt,
            rt,
        }
    }

    fn mounted(&self) -> &Mounted {
        self.mounted.as_ref().unwrap()
    }

    /// Path through the mount.
    fn m(&self, rel: &str) -> PathBuf {
        self.mnt.path().join(rel)
    }

    /// Path in the backing directory.
    fn b(&self, rel: &str) -> PathBuf {
        self.backing.path().join(rel)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(mounted) = self.mounted.take() {
            if !std::thread::panicking() {
                mounted.unmount(false).unwrap();
                mounted.wait().unwrap();
            }
        }
    }
}

/// Whether `mounted`'s session ends within `within`.
fn ended_within(rt: &tokio::runtime::Runtime, mounted: &Mounted, within: Duration) -> bool {
    let ended = mounted.ended();
    rt.block_on(async { tokio::time::timeout(within, ended).await })
        .is_ok()
}

fn is_busy(err: &FuseError) -> bool {
    let text = err.to_string();
    text.contains("busy") || text.contains("EBUSY")
}

#[test]
fn two_mounts_run_in_one_process() {
    let rt = runtime();
    let (backing_a, backing_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mnt_a, mnt_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fs::write(backing_a.path().join("only-a"), b"a").unwrap();
    fs::write(backing_b.path().join("only-b"), b"b").unwrap();
    let config = MountConfig::default();
    let a = start(&rt, DirectAgent::new(backing_a.path()), mnt_a.path(), &config).unwrap();
    let b = start(&rt, DirectAgent::new(backing_b.path()), mnt_b.path(), &config).unwrap();
    let both = MountStatus {
        serving: true,
        in_mount_table: Some(true),
    };
    assert_eq!((a.status(), b.status()), (both, both));

    // Both in use at once, each showing its own tree.
    let writers: Vec<_> = [mnt_a.path().to_path_buf(), mnt_b.path().to_path_buf()]
        .into_iter()
        .map(|mnt| {
            std::thread::spawn(move || {
                for i in 0..50 {
                    fs::write(mnt.join(format!("f{i}")), format!("{}:{i}", mnt.display())).unwrap();
                }
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    for (mnt, backing) in [(&mnt_a, &backing_a), (&mnt_b, &backing_b)] {
        for i in 0..50 {
            let want = format!("{}:{i}", mnt.path().display());
            assert_eq!(
                fs::read_to_string(backing.path().join(format!("f{i}"))).unwrap(),
                want
            );
            assert_eq!(
                fs::read_to_string(mnt.path().join(format!("f{i}"))).unwrap(),
                want
            );
        }
    }
    assert_eq!(fs::read(mnt_a.path().join("only-a")).unwrap(), b"a");
    assert!(!mnt_a.path().join("only-b").exists());
    assert_eq!(fs::read(mnt_b.path().join("only-b")).unwrap(), b"b");
    assert!(!mnt_b.path().join("only-a").exists());

    // A file held open on b while a goes.
    let mut held = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(mnt_b.path().join("held"))
        .unwrap();
    held.write_all(b"before").unwrap();

    a.unmount(false).unwrap();
    a.wait().unwrap();
    assert_eq!(
        a.status(),
        MountStatus {
            serving: false,
            in_mount_table: Some(false)
        }
    );
    assert!(
        fs::read_dir(mnt_a.path()).unwrap().next().is_none(),
        "a's mount point is a plain empty directory again"
    );
    assert_eq!(
        fs::read_dir(backing_a.path()).unwrap().count(),
        51,
        "a's files stay on its remote"
    );

    // b goes on as before.
    assert_eq!(b.status(), both);
    held.write_all(b" after").unwrap();
    held.seek(SeekFrom::Start(0)).unwrap();
    let mut text = String::new();
    held.read_to_string(&mut text).unwrap();
    assert_eq!(text, "before after");
    drop(held);
    assert_eq!(fs::read(backing_b.path().join("held")).unwrap(), b"before after");
    fs::write(mnt_b.path().join("later"), b"still served").unwrap();
    assert_eq!(fs::read(backing_b.path().join("later")).unwrap(), b"still served");
    assert_eq!(fs::read_dir(mnt_b.path()).unwrap().count(), 53);

    // The same mount point again, while b still runs.
    let a2 = start(&rt, DirectAgent::new(backing_a.path()), mnt_a.path(), &config).unwrap();
    assert_eq!(fs::read(mnt_a.path().join("only-a")).unwrap(), b"a");
    for m in [a2, b] {
        m.unmount(false).unwrap();
        m.wait().unwrap();
    }
}

#[test]
fn lazy_unmount_serves_open_files_until_they_are_closed() {
    let t = Fixture::new();
    let m = t.mounted();
    let mut f = File::create(t.m("open")).unwrap();
    f.write_all(b"buffered").unwrap();
    // Busy: a plain unmount is refused and changes nothing.
    let err = m.unmount(false).unwrap_err();
    assert!(is_busy(&err), "{err}");
    assert_eq!(m.status().in_mount_table, Some(true));
    // flush sends what is buffered for a file still open.
    m.flush().unwrap();
    assert_eq!(fs::read(t.b("open")).unwrap(), b"buffered");

    m.unmount(true).unwrap();
    assert_eq!(
        m.status(),
        MountStatus {
            serving: true,
            in_mount_table: Some(false)
        },
        "detached, and still serving the open file"
    );
    assert!(
        !t.m("open").exists(),
        "the mount point no longer leads into the mount"
    );
    assert!(!ended_within(&t.rt, m, Duration::from_millis(300)));
    f.write_all(b", then more").unwrap();
    drop(f);
    assert!(
        ended_within(&t.rt, m, Duration::from_secs(10)),
        "the last close ends the session"
    );
    m.wait().unwrap();
    assert_eq!(fs::read(t.b("open")).unwrap(), b"buffered, then more");
    assert_eq!(
        m.status(),
        MountStatus {
            serving: false,
            in_mount_table: Some(false)
        }
    );
    // Unmounting what is gone is no error.
    m.unmount(false).unwrap();
    m.wait().unwrap();
}

#[test]
fn an_unmount_from_outside_ends_the_session() {
    let t = Fixture::new();
    fs::write(t.m("f"), b"x").unwrap();
    yonder_fuse::unmount(t.mnt.path(), false).unwrap();
    assert!(ended_within(&t.rt, t.mounted(), Duration::from_secs(10)));
    t.mounted().wait().unwrap();
    assert_eq!(t.mounted().status().in_mount_table, Some(false));
    assert_eq!(fs::read(t.b("f")).unwrap(), b"x");
}

#[test]
fn dropping_a_mount_flushes_and_detaches_it() {
    let mut t = Fixture::new();
    let mut f = File::create(t.m("f")).unwrap();
    f.write_all(b"unflushed").unwrap();
    let mounted = t.mounted.take().unwrap();
    let ended = mounted.ended();
    drop(mounted);
    assert_eq!(fs::read(t.b("f")).unwrap(), b"unflushed");
    assert!(
        yonder_fuse::unmount(t.mnt.path(), false).is_err(),
        "no longer mounted"
    );
    f.write_all(b", served until closed").unwrap();
    drop(f);
    t.rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), ended).await })
        .expect("the session ends once the file is closed");
    assert_eq!(fs::read(t.b("f")).unwrap(), b"unflushed, served until closed");
}

#[test]
fn mounting_over_a_non_empty_directory_needs_consent() {
    let rt = runtime();
    let backing = tempfile::tempdir().unwrap();
    let mnt = tempfile::tempdir().unwrap();
    fs::write(mnt.path().join("hidden"), b"h").unwrap();
    let remote = DirectAgent::new(backing.path());
    let err = start(&rt, remote.clone(), mnt.path(), &MountConfig::default())
        .err()
        .unwrap();
    assert!(matches!(err, FuseError::NotEmpty { .. }), "{err}");
    let config = MountConfig {
        allow_non_empty: true,
        ..MountConfig::default()
    };
    let mounted = start(&rt, remote, mnt.path(), &config).unwrap();
    assert!(!mnt.path().join("hidden").exists());
    mounted.unmount(false).unwrap();
    mounted.wait().unwrap();
    assert!(mnt.path().join("hidden").exists());
    let file = mnt.path().join("hidden");
    let err = start(&rt, DirectAgent::new(backing.path()), &file, &config)
        .err()
        .unwrap();
    assert!(matches!(err, FuseError::MountPoint { .. }), "{err}");
}

/// Counts the remote's calls: only an agent in this process can.
#[test]
fn small_writes_are_coalesced_and_reads_pipelined() {
    let t = Fixture::new();
    let mut f = File::create(t.m("small")).unwrap();
    for i in 0..1000u32 {
        f.write_all(&[(i % 256) as u8; 100]).unwrap();
    }
    drop(f);
    let writes = t.calls.of(Op::Write);
    assert!(writes <= 4, "{writes} remote writes for 1000 small ones");
    let expect: Vec<u8> = (0..1000u32).flat_map(|i| [(i % 256) as u8; 100]).collect();
    assert_eq!(fs::read(t.b("small")).unwrap(), expect);

    let big: Vec<u8> = (0..(9 << 20))
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    fs::write(t.m("big"), &big).unwrap();
    assert!(fs::read(t.b("big")).unwrap() == big);
    let before = t.calls.of(Op::Read);
    assert!(fs::read(t.m("big")).unwrap() == big);
    let reads = t.calls.of(Op::Read) - before;
    // The kernel's own 128 KiB requests would be 72 reads. How far each
    // readahead window grows before the next starts depends on timing
    // (a loaded machine saw 26): the bound tells windows from requests.
    assert!(reads <= 36, "{reads} remote reads for 9 MiB");
}

/// Delays one remote call (testkit's `Delayed` wrapper).
#[test]
fn a_slow_request_does_not_hold_up_others() {
    let t = Fixture::new();
    fs::write(t.b("slow"), b"s").unwrap();
    fs::write(t.b("fast"), b"f").unwrap();
    t.delays.delay_when(
        |call| call.op == Op::Lstat && call.path.is_some_and(|p| p.ends_with(b"slow")),
        Duration::from_secs(5),
    );
    let slow_path = t.m("slow");
    let slow = std::thread::spawn(move || fs::metadata(slow_path).map(|m| m.len()));
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    assert_eq!(fs::read(t.m("fast")).unwrap(), b"f");
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    assert!(!slow.is_finished(), "the slow stat is still held up");
    assert_eq!(slow.join().unwrap().unwrap(), 1);
}

/// `ls -l` of a large directory: the listing comes in a few round trips,
/// and the labels and ACLs `ls` asks every file for are answered from the
/// xattr names that came with it, for every entry (also those the kernel's
/// readdir buffer had no room for the first time), with no call reaching
/// the remote. A walk with `grep -r` lists the tree in one round trip and
/// reads the small files' data with none (each open still makes one).
#[test]
fn ls_l_and_a_walk_cost_a_few_round_trips() {
    let t = Fixture::new();
    fs::create_dir(t.b("big")).unwrap();
    for i in 0..5000 {
        fs::write(t.b(&format!("big/f{i:05}")), b"").unwrap();
    }
    let before = |op| t.calls.of(op);
    let (xattrs, lstats) = (before(Op::GetXattr) + before(Op::ListXattr), before(Op::Lstat));
    let listings = before(Op::ListTree) + before(Op::ReadDir);
    let out = std::process::Command::new("ls")
        .arg("-l")
        .arg(t.m("big"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5001);
    // The directory itself, found by a lookup rather than a listing, is
    // asked once; none of its 5,000 entries is.
    let probes = t.calls.of(Op::GetXattr) + t.calls.of(Op::ListXattr) - xattrs;
    assert!(probes <= 1, "{probes} xattr probes reached the remote");
    assert!(t.calls.of(Op::Lstat) - lstats <= 1, "lookups reached the remote");
    let listed = t.calls.of(Op::ListTree) + t.calls.of(Op::ReadDir) - listings;
    assert!(listed <= 2, "{listed} listing round trips for 5,000 entries");

    for d in 0..20 {
        fs::create_dir_all(t.b(&format!("src/d{d}/sub"))).unwrap();
        for f in 0..10 {
            fs::write(
                t.b(&format!("src/d{d}/sub/f{f}.txt")),
                format!("needle {d} {f}\n"),
            )
            .unwrap();
        }
    }
    let calls = |t: &Fixture| {
        [Op::ListTree, Op::ReadDir, Op::Lstat, Op::Read]
            .iter()
            .map(|op| t.calls.of(*op))
            .sum::<u64>()
    };
    let before = calls(&t);
    let opens = t.calls.of(Op::OpenRead) + t.calls.of(Op::Open);
    let out = std::process::Command::new("grep")
        .args(["-rc", "needle"])
        .arg(t.m("src"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 200);
    let walked = calls(&t) - before;
    assert!(
        walked <= 3,
        "{walked} listing, lookup and read round trips for 40 directories and 200 files"
    );
    let opened = t.calls.of(Op::OpenRead) + t.calls.of(Op::Open) - opens;
    assert!(opened >= 200, "each open reaches the agent: {opened}");
}
