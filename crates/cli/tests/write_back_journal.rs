//! The durable write-back journal through real mounts: what an
//! application was told had succeeded outlives a crash of the process
//! that owns the mount, and is delivered when the mount comes back.

// Real mounts checked with Linux calls (statx, copy_file_range, Linux's
// xattr signatures and names): these run where CI runs, on Linux.
#![cfg(target_os = "linux")]

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::mount::{signal, Mount};
use support::{Frontend, Transport, Variant};

const LOCAL: Variant = Variant {
    frontend: Frontend::Fuse,
    transport: Transport::Local,
};

/// 2,000 files in 40 directories, 0 to 48 KiB each (one `write` each:
/// the kernel hands yonder each file's data whole).
fn make_tree(root: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for d in 0..40 {
        fs::create_dir_all(root.join(format!("d{d:03}"))).unwrap();
        for f in 0..50 {
            let name = format!("d{d:03}/f{f:03}.txt");
            let len = (d * 50 + f) * 997 % (48 << 10);
            let line = format!("{name} ");
            let data: Vec<u8> = line.bytes().cycle().take(len).collect();
            fs::write(root.join(&name), data).unwrap();
            names.push(name);
        }
    }
    names
}

/// A write-back mount (`extra`) with a directory `d` ready, whose agent
/// stops answering, then `count` small files written into `d`: all
/// acknowledged without the remote. Returns the mount and the stopped
/// agent. A creation the mount cannot vouch for still asks the remote
/// (then waits for the link to give up on the stopped agent, 15 s), such
/// an attempt proves nothing and is made again, three times at most;
/// `settle_dir` makes that rare.
fn stopped_with_backlog(extra: &[&str], count: usize) -> (Mount, u32) {
    for attempt in 1..=3 {
        let m = Mount::start(LOCAL, extra);
        assert_eq!(fs::read_dir(m.at("")).unwrap().count(), 0);
        fs::create_dir(m.at("d")).unwrap();
        settle_dir(&m.at("d"));
        let agent = agent_of(m.pid());
        stop(agent);
        let mut waited = false;
        for i in 0..count {
            let started = Instant::now();
            fs::write(m.at(&format!("d/f{i}")), format!("file {i}\n")).unwrap();
            waited |= started.elapsed() > Duration::from_secs(3);
        }
        if !waited {
            return (m, agent);
        }
        eprintln!("attempt {attempt}: a write waited for the stopped remote; again");
        signal(agent, libc::SIGCONT);
    }
    panic!("every attempt had a write wait for the stopped remote");
}

/// Stops `pid` (SIGSTOP) and waits until it is stopped.
fn stop(pid: u32) {
    signal(pid, libc::SIGSTOP);
    let state = || {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    };
    assert!(
        wait_for("the agent stopped", Duration::from_secs(5), || state().as_deref()
            == Some("T")),
        "{pid} is {:?}",
        state()
    );
}

/// The `yonder agent` process the mount process `pid` started (over ssh:
/// the `ssh` running it).
fn agent_of(pid: u32) -> u32 {
    let mut children = String::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("children");
        children.push_str(&fs::read_to_string(path).unwrap_or_default());
        children.push(' ');
    }
    children
        .split_whitespace()
        .map(|c| c.parse::<u32>().unwrap())
        .find(|c| {
            fs::read(format!("/proc/{c}/cmdline"))
                .map(|cmd| String::from_utf8_lossy(&cmd).contains("agent"))
                .unwrap_or(false)
        })
        .expect("the mount's agent process")
}

#[derive(Default)]
struct Progress {
    /// Files whose close returned.
    closed: Vec<String>,
    /// Files whose fsync returned (before their close).
    fsynced: Vec<String>,
}

/// Writes `names` from `tree` into `into` as an untar does (mkdir, create
/// exclusively, write, close), fsyncing every 50th file of the first 300,
/// and records each file once its close (or fsync) returned. Stops at the
/// first error (the mount's process was killed).
fn untar_by_hand(tree: PathBuf, into: PathBuf, names: Vec<String>, progress: Arc<Mutex<Progress>>) {
    let mut made = BTreeSet::new();
    for (i, name) in names.iter().enumerate() {
        let dir = name.split('/').next().unwrap();
        if made.insert(dir.to_string()) && fs::create_dir(into.join(dir)).is_err() {
            return;
        }
        let data = fs::read(tree.join(name)).unwrap();
        let Ok(mut file) = fs::File::create_new(into.join(name)) else {
            return;
        };
        if file.write_all(&data).is_err() {
            return;
        }
        if i < 300 && i % 50 == 0 {
            if file.sync_all().is_err() {
                return;
            }
            progress.lock().unwrap().fsynced.push(name.clone());
        }
        // The close: flush reports an error the remote gave.
        let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
        // SAFETY: `fd` was just taken out of its `File` and is closed once.
        if unsafe { libc::close(fd) } != 0 {
            return;
        }
        progress.lock().unwrap().closed.push(name.clone());
    }
}

/// Makes the directory `dir` (just created through the mount) one whose
/// creations the mount acknowledges without asking the remote, whatever
/// the remote does next: a file created in it and synced (so the
/// directory's creation has been carried out), then its listing and
/// attributes asked while the remote answers (a creation carried out has
/// its directory's times asked again at the next need).
fn settle_dir(dir: &Path) {
    fs::File::create(dir.join("first")).unwrap().sync_all().unwrap();
    assert_eq!(fs::read_dir(dir).unwrap().count(), 1);
    fs::metadata(dir).unwrap();
    // What the kernel and the mount do after those calls returned (the
    // file's close, a listing it reads ahead) is done by then; a remote
    // that stops answering in the middle of it stalls the next creation
    // until the link gives up on it (15 s), and the test proves nothing.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fs::read_dir(dir).unwrap().count(), 1);
    fs::metadata(dir).unwrap();
    // The remote's notice of the file's creation there makes the mount
    // ask the directory's extended attributes again (whether it hands a
    // default ACL down decides whether a creation in it may be
    // acknowledged ahead).
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path and a null buffer of size 0 (the call
    // only returns the size the names need).
    let listed = unsafe { libc::listxattr(path.as_ptr(), std::ptr::null_mut(), 0) };
    assert!(listed >= 0, "listxattr {}", dir.display());
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            eprintln!("{what}: not within {timeout:?}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// kill -9 of the process that owns the mount in the middle of an untar
/// of 2,000 files, then mount again: the journal's replay delivers every
/// file whose close returned, whole, and every file an fsync confirmed;
/// nothing is half-written; untarring again gives a tree equal to the tar.
#[test]
fn a_crash_in_the_middle_of_an_untar_loses_nothing_acknowledged() {
    crash_in_the_middle_of_an_untar(LOCAL);
}

/// The same over ssh to the test's sshd (the ssh client is what stops
/// answering).
#[test]
fn a_crash_in_the_middle_of_an_untar_over_ssh_loses_nothing_acknowledged() {
    crash_in_the_middle_of_an_untar(Variant {
        frontend: Frontend::Fuse,
        transport: Transport::Ssh,
    });
}

fn crash_in_the_middle_of_an_untar(v: Variant) {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let names = make_tree(&tree);
    let archive = work.path().join("tree.tar");
    let tarred = Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&tree)
        .arg(".")
        .status()
        .unwrap();
    assert!(tarred.success());
    let cache = work.path().join("journal");
    let cache_arg = cache.display().to_string();
    let args = ["--write-back", "on", "--write-back-cache", &cache_arg];
    let mut m = Mount::start(v, &args);
    let into = m.at("");
    // Listed, as an untar's first look finds it: names to create in it
    // are then known absent without asking the remote.
    assert_eq!(fs::read_dir(&into).unwrap().count(), 0);
    let progress = Arc::new(Mutex::new(Progress::default()));
    let writer = {
        let (tree, into, names, progress) = (tree.clone(), into.clone(), names.clone(), progress.clone());
        std::thread::spawn(move || untar_by_hand(tree, into, names, progress))
    };
    let closed = || progress.lock().unwrap().closed.len();
    // In the middle of a directory (50 files each): a directory whose
    // creation the remote has just carried out has its attributes asked
    // again, which would wait for the stopped remote.
    assert!(wait_for("425 files closed", Duration::from_secs(60), || closed() >= 425));
    // The agent stops answering: from here on what the mount acknowledges
    // is only in its journal (the link would give up on the agent after
    // 15 s; the crash comes well before).
    let agent = agent_of(m.pid());
    stop(agent);
    let stopped_at = closed();
    wait_for("1,200 files closed", Duration::from_secs(5), || closed() >= 1200);
    eprintln!("{stopped_at} files closed when the remote stopped answering");
    m.kill();
    signal(agent, libc::SIGKILL);
    writer.join().unwrap();
    let Progress { closed, fsynced } = std::mem::take(&mut *progress.lock().unwrap());
    eprintln!(
        "{} files closed and {} fsynced before the crash",
        closed.len(),
        fsynced.len()
    );
    assert!(closed.len() >= 425 && fsynced.len() == 6);
    let backing = m.backing.path().to_path_buf();
    let whole = |name: &str| fs::read(backing.join(name)).ok() == Some(fs::read(tree.join(name)).unwrap());
    let missing_before = closed.iter().filter(|n| !whole(n)).count();
    assert!(
        missing_before > 0,
        "every closed file ({}) reached the remote before the crash: the test proves nothing",
        closed.len()
    );

    m.restart(v, &args);
    // Said before the mount point is printed, read by another thread.
    wait_for("the replay's report", Duration::from_secs(5), || {
        m.stderr().contains("yonder: replayed ")
    });
    let said = m.stderr();
    let replayed = said
        .lines()
        .find_map(|l| l.strip_prefix("yonder: replayed "))
        .unwrap_or_else(|| panic!("the replay is reported on stderr: {said}"));
    let count: usize = replayed.split(' ').next().unwrap().parse().unwrap();
    assert!(
        !replayed.contains("refused"),
        "the replay is refused nothing: {replayed}"
    );
    assert!(
        count >= missing_before,
        "{count} operations replayed, {missing_before} files missing"
    );
    for name in &closed {
        assert!(
            whole(name),
            "{name} was closed before the crash and is not whole on the remote"
        );
    }
    for name in &fsynced {
        assert!(whole(name), "{name} was fsynced and is not on the remote");
    }
    // A file not closed before the crash is absent, or a part of what was
    // being written: at most the one in the writer's hands.
    let closed_set: BTreeSet<&String> = closed.iter().collect();
    let partial: Vec<&String> = names
        .iter()
        .filter(|n| !closed_set.contains(n) && backing.join(n).exists() && !whole(n))
        .collect();
    assert!(partial.len() <= 1, "half-written files: {partial:?}");
    for name in partial {
        let expected = fs::read(tree.join(name)).unwrap();
        let got = fs::read(backing.join(name)).unwrap();
        assert!(expected.starts_with(&got), "{name} holds what was never written");
    }

    // The untar again, with tar, through the mount.
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(m.at(""))
        .output()
        .unwrap();
    assert!(
        untar.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&untar.stderr)
    );
    assert_eq!(m.terminate(), Some(0));
    let diff = Command::new("diff")
        .arg("-r")
        .arg(&tree)
        .arg(m.backing.path())
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "the remote differs from the tar: {}",
        String::from_utf8_lossy(&diff.stdout)
    );
}

/// A journal a live process holds is never replayed: a second mount of
/// the same source at the same place is refused, naming the holder.
#[test]
fn a_journal_a_live_mount_holds_is_left_alone() {
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().display().to_string();
    let args = ["--write-back", "on", "--write-back-cache", &cache_arg];
    let m = Mount::start(LOCAL, &args);
    fs::write(m.at("kept"), b"data").unwrap();
    let mut again = args.to_vec();
    again.push("--allow-non-empty");
    let said = Mount::refused(LOCAL, m.backing.path(), &m.mountpoint, &again);
    assert!(
        said.contains("is held by a running yonder process") && said.contains(&format!("pid {}", m.pid())),
        "{said}"
    );
    assert_eq!(fs::read(m.at("kept")).unwrap(), b"data");
}

/// Unmounting delivers everything first, and says how much is pending
/// while a large backlog drains.
#[test]
fn unmounting_delivers_a_backlog_and_shows_its_progress() {
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().display().to_string();
    // The remote stops answering: what is written is acknowledged and waits.
    let (mut m, agent) = stopped_with_backlog(&["--write-back", "on", "--write-back-cache", &cache_arg], 300);
    signal(m.pid(), libc::SIGTERM);
    assert!(wait_for("the progress line", Duration::from_secs(10), || {
        m.stderr().contains("yonder: delivering ")
    }));
    signal(agent, libc::SIGCONT);
    assert_eq!(m.wait_exit(), Some(0));
    assert_eq!(
        fs::read_dir(cache.path()).unwrap().count(),
        0,
        "a clean end leaves no journal"
    );
    let said = m.stderr();
    let line = said
        .lines()
        .find(|l| l.starts_with("yonder: delivering "))
        .unwrap();
    let count: usize = line["yonder: delivering ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    assert!(count >= 300, "{line}");
    assert!(
        line.ends_with(&format!("pending operations to {}…", m.backing.path().display())),
        "{line}"
    );
    assert!(said.contains("yonder: delivered everything to "), "{said}");
    for i in 0..300 {
        assert_eq!(
            fs::read_to_string(m.disk(&format!("d/f{i}"))).unwrap(),
            format!("file {i}\n")
        );
    }
}

/// A journal a crash left is replayed even when the mount comes back with
/// write-back off, and then goes.
#[test]
fn a_journal_left_behind_is_replayed_by_a_mount_without_write_back() {
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().display().to_string();
    let (mut m, agent) = stopped_with_backlog(&["--write-back", "on", "--write-back-cache", &cache_arg], 20);
    m.kill();
    signal(agent, libc::SIGKILL);
    let delivered: Vec<usize> = (0..20).filter(|i| m.disk(&format!("d/f{i}")).exists()).collect();
    assert!(
        delivered.is_empty(),
        "written while the agent was stopped, yet on the remote: {delivered:?}"
    );
    m.restart(LOCAL, &["--write-back", "off", "--write-back-cache", &cache_arg]);
    assert!(wait_for("the replay's report", Duration::from_secs(5), || {
        m.stderr().contains("yonder: replayed ")
    }));
    for i in 0..20 {
        assert_eq!(
            fs::read_to_string(m.disk(&format!("d/f{i}"))).unwrap(),
            format!("file {i}\n")
        );
    }
    assert_eq!(fs::read_dir(cache.path()).unwrap().count(), 0, "the journal went");
}
