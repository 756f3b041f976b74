//! A real `yonder mount` over ssh riding out network failures: ssh runs
//! through the fault proxy (`yonder_testkit::proxy`) to a private sshd, and
//! each test breaks the network (or the remote) in one way and checks what
//! applications see, and the exact sequence of connection states the mount
//! went through (its `yonder::link` log lines, `state=...`).
//!
//! Heartbeats every second, dead after 3 silent ones. Runs as root (FUSE),
//! with no stdin; every wait is bounded.

mod support;

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::mount::{is_mounted, signal, wait_timeout};
use support::yonder_bin;
use yonder_testkit::proxy::FaultProxy;
use yonder_testkit::Sshd;

const HEARTBEAT: Duration = Duration::from_secs(1);
const MISSES: u32 = 3;

struct Remote {
    /// Runs the proxy.
    rt: tokio::runtime::Runtime,
    sshd: Sshd,
    proxy: FaultProxy,
}

impl Remote {
    fn start() -> Remote {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sshd = Sshd::start().expect("start sshd");
        let target = format!("127.0.0.1:{}", sshd.port()).parse().unwrap();
        let proxy = rt.block_on(FaultProxy::start(target)).unwrap();
        Remote { rt, sshd, proxy }
    }

    /// The `yonder agent` processes the sshd runs (one per session).
    fn agents(&self) -> Vec<u32> {
        yonder_testkit::descendants(self.sshd.pid())
            .into_iter()
            .filter(|pid| {
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                args.len() > 1 && args[1] == b"agent" && args[0].ends_with(b"yonder")
            })
            .collect()
    }
}

struct Mounted {
    remote: Remote,
    backing: tempfile::TempDir,
    _parent: tempfile::TempDir,
    mountpoint: PathBuf,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Mounted {
    /// Mounts a fresh backing directory over ssh through the proxy, with
    /// `extra` arguments.
    fn start(extra: &[&str]) -> Mounted {
        let remote = Remote::start();
        let backing = tempfile::Builder::new()
            .prefix("yonder-backing")
            .tempdir()
            .unwrap();
        let parent = tempfile::Builder::new().prefix("yonder-mnt").tempdir().unwrap();
        let mountpoint = parent.path().join("mnt");
        let source = format!(
            "ssh://{}@127.0.0.1:{}{}",
            remote.sshd.user(),
            remote.proxy.port(),
            backing.path().display()
        );
        let mut cmd = Command::new(yonder_bin());
        cmd.arg("mount")
            .arg(&source)
            .arg(&mountpoint)
            .arg("--foreground")
            .args(["--heartbeat", &HEARTBEAT.as_secs_f64().to_string()])
            .args(["--heartbeat-misses", &MISSES.to_string()])
            .args(["--agent-path", &yonder_bin().display().to_string()])
            .args(extra)
            .env("YONDER_LOG", "warn,yonder::link=info")
            .env("NO_COLOR", "1");
        for option in remote.sshd.ssh_options() {
            cmd.args(["-o", &option]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (pipe, kept) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("yonder mount printed nothing within 30 s");
        assert_eq!(line.trim_end(), mountpoint.display().to_string());
        Mounted {
            remote,
            backing,
            _parent: parent,
            mountpoint,
            child: Some(child),
            log,
        }
    }

    fn at(&self, rel: &str) -> PathBuf {
        self.mountpoint.join(rel)
    }

    fn disk(&self, rel: &str) -> PathBuf {
        self.backing.path().join(rel)
    }

    fn proxy(&self) -> &FaultProxy {
        &self.remote.proxy
    }

    /// The connection states the mount logged, in order.
    fn states(&self) -> Vec<String> {
        states_in(&self.log.lock().unwrap())
    }

    /// Waits until the mount has logged `count` states, the last being
    /// `name`; returns how long that took.
    fn wait_states(&self, count: usize, name: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let states = self.states();
            if states.len() >= count && states[count - 1] == name {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "no state {count} = {name} within {limit:?}: {states:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), libc::SIGTERM);
            if wait_timeout(&mut child, Duration::from_secs(30)).is_none() && is_mounted(&self.mountpoint) {
                let _ = Command::new("fusermount3")
                    .args(["-uz"])
                    .arg(&self.mountpoint)
                    .status();
            }
        }
        // The sshd and everything it runs, stopped agents included.
        self.remote.sshd.kill();
        let _ = &self.remote.rt;
    }
}

/// The `state=...` fields of `yonder::link` log lines.
fn states_in(log: &str) -> Vec<String> {
    plain(log)
        .lines()
        .filter(|l| l.contains("yonder::link"))
        .filter_map(|l| {
            let at = l.find("state=")?;
            let rest = &l[at + "state=".len()..];
            Some(rest.split_whitespace().next()?.to_string())
        })
        .collect()
}

/// `text` without ANSI colour sequences.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn dead_window() -> Duration {
    HEARTBEAT * MISSES + Duration::from_secs(1)
}

fn errno(err: &std::io::Error) -> i32 {
    err.raw_os_error().expect("an OS error")
}

/// (a) A black-holed link is declared dead within heartbeat × misses + 1 s;
/// once restored the mount comes back, and a descriptor opened before reads
/// the right data.
#[test]
fn a_black_holed_link_is_declared_dead_and_the_same_descriptor_reads_on() {
    let m = Mounted::start(&[]);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(m.disk("f"), &data).unwrap();
    let f = File::open(m.at("f")).unwrap();
    let mut head = vec![0; 1000];
    f.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, data[..1000]);
    m.wait_states(1, "connected", Duration::from_secs(5));

    m.proxy().blackhole();
    let detected = m.wait_states(2, "reconnecting", Duration::from_secs(15));
    eprintln!("declared dead {detected:?} after the black hole");
    assert!(detected <= dead_window(), "{detected:?} > {:?}", dead_window());
    std::thread::sleep(Duration::from_secs(1));
    m.proxy().restore();
    let back = m.wait_states(3, "connected", Duration::from_secs(40));
    eprintln!("connected again {back:?} after the restore");

    let mut rest = vec![0; data.len() - 1000];
    f.read_exact_at(&mut rest, 1000).unwrap();
    assert_eq!(rest, data[1000..]);
    assert_eq!(fs::read(m.at("f")).unwrap(), data);
    assert_eq!(m.states(), ["connected", "reconnecting", "connected"]);
}

/// (b) 20 cuts during a 64 MiB `dd ... conv=fsync` on one descriptor: dd
/// succeeds and the remote file is the same bytes.
#[test]
fn twenty_cuts_during_a_64_mib_dd_lose_nothing() {
    let m = Mounted::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let fifo = work.path().join("in");
    let fifo_c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string path.
    assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o600) }, 0);
    let total: usize = 64 << 20;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let source: Vec<u8> = (0..total)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    // dd reads from a FIFO the test feeds, so the cuts are spread over the
    // whole transfer, whatever the machine's speed.
    let mut dd = Command::new("dd")
        .arg(format!("if={}", fifo.display()))
        .arg(format!("of={}", m.at("big").display()))
        .args(["bs=1M", "iflag=fullblock", "conv=fsync", "status=none"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut feed = OpenOptions::new().write(true).open(&fifo).unwrap();
    let cuts = 20;
    let step = total / (cuts + 1);
    let mut cut = 0;
    let mut sent = 0;
    while sent < total {
        let end = (sent + (1 << 20)).min(total);
        feed.write_all(&source[sent..end]).unwrap();
        sent = end;
        if cut < cuts && sent >= (cut + 1) * step {
            if cut > 0 {
                // The previous cut's reconnection is done: this one cuts a
                // live connection.
                m.wait_states(1 + 2 * cut, "connected", Duration::from_secs(60));
            }
            m.proxy().drop_all();
            cut += 1;
        }
    }
    drop(feed);
    let status = wait_timeout(&mut dd, Duration::from_secs(300)).expect("dd hung");
    assert!(status.success(), "dd failed: {status}");
    m.wait_states(1 + 2 * cuts, "connected", Duration::from_secs(60));
    let written = fs::read(m.disk("big")).unwrap();
    assert_eq!(written.len(), total);
    assert!(written == source, "the remote file differs from what dd wrote");
    let mut expect = vec!["connected".to_string()];
    for _ in 0..cuts {
        expect.extend(["reconnecting".to_string(), "connected".to_string()]);
    }
    assert_eq!(m.states(), expect);
}

/// (c) With the link down beyond --op-timeout, `stat` fails with EIO
/// within op-timeout + 1 s, not later; once the outage has lasted that
/// long, operations fail at once until the link is back.
#[test]
fn stat_fails_with_eio_within_the_op_timeout_while_the_link_is_down() {
    let op_timeout = Duration::from_secs(5);
    let m = Mounted::start(&[
        "--op-timeout",
        &op_timeout.as_secs().to_string(),
        "--attr-ttl",
        "0",
        "--dir-ttl",
        "0",
    ]);
    fs::write(m.disk("f"), b"x").unwrap();
    fs::metadata(m.at("f")).unwrap();
    m.proxy().blackhole();
    // Sent on the link as it goes dead: answered once the link is found
    // dead and the op timeout has passed.
    let first = Instant::now();
    let err = fs::metadata(m.at("f")).unwrap_err();
    let took = first.elapsed();
    eprintln!("stat on the dying link: {err} after {took:?}");
    assert_eq!(errno(&err), libc::EIO);
    assert!(took <= op_timeout + Duration::from_secs(1), "{took:?}");
    assert_eq!(m.states(), ["connected", "reconnecting"]);
    // The outage is older than the op timeout: at once.
    let second = Instant::now();
    let err = fs::metadata(m.at("f")).unwrap_err();
    let took = second.elapsed();
    eprintln!("stat later in the outage: {err} after {took:?}");
    assert_eq!(errno(&err), libc::EIO);
    assert!(took < Duration::from_millis(500), "{took:?}");
    m.proxy().restore();
    m.wait_states(3, "connected", Duration::from_secs(40));
    assert_eq!(fs::read(m.at("f")).unwrap(), b"x");
    assert_eq!(m.states(), ["connected", "reconnecting", "connected"]);
}

/// (d) The remote's sshd dies (its sessions with it) and comes back later:
/// the mount reconnects by itself.
#[test]
fn the_mount_comes_back_after_the_remote_sshd_is_killed_and_restarted() {
    let mut m = Mounted::start(&[]);
    fs::write(m.at("before"), b"before").unwrap();
    m.remote.sshd.kill();
    m.wait_states(2, "reconnecting", Duration::from_secs(10));
    // Attempts fail while nothing listens.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(m.states(), ["connected", "reconnecting"]);
    m.remote.sshd.restart().unwrap();
    let back = m.wait_states(3, "connected", Duration::from_secs(40));
    eprintln!("reconnected {back:?} after sshd came back");
    assert_eq!(fs::read(m.at("before")).unwrap(), b"before");
    fs::write(m.at("after"), b"after").unwrap();
    assert_eq!(fs::read(m.disk("after")).unwrap(), b"after");
    assert_eq!(m.states(), ["connected", "reconnecting", "connected"]);
}

/// (e) With --no-reconnect a lost link stays lost: the state goes to
/// disconnected and operations fail at once.
#[test]
fn without_reconnection_operations_fail_fast() {
    let m = Mounted::start(&["--no-reconnect", "--attr-ttl", "0", "--dir-ttl", "0"]);
    fs::write(m.disk("f"), b"x").unwrap();
    fs::metadata(m.at("f")).unwrap();
    m.proxy().drop_all();
    m.wait_states(2, "disconnected", Duration::from_secs(10));
    for _ in 0..3 {
        let started = Instant::now();
        let err = fs::metadata(m.at("f")).unwrap_err();
        assert_eq!(errno(&err), libc::EIO);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    assert_eq!(errno(&fs::write(m.at("g"), b"y").unwrap_err()), libc::EIO);
    assert!(started.elapsed() < Duration::from_millis(500));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(m.states(), ["connected", "disconnected"]);
    assert_eq!(m.proxy().accepted(), 1, "no reconnection attempt");
    assert!(is_mounted(&m.mountpoint), "still mounted");
}

/// (f) The remote agent is stopped (SIGSTOP) with the link up: the
/// heartbeat finds it dead, a new session takes over, and an operation
/// waiting meanwhile completes rather than hanging.
#[test]
fn a_stopped_agent_is_detected_and_replaced() {
    let m = Mounted::start(&["--attr-ttl", "0", "--dir-ttl", "0", "--op-timeout", "20"]);
    fs::write(m.disk("f"), b"still here").unwrap();
    assert_eq!(fs::read(m.at("f")).unwrap(), b"still here");
    let agents = m.remote.agents();
    assert_eq!(agents.len(), 1, "{agents:?}");
    signal(agents[0], libc::SIGSTOP);
    let stopped = Instant::now();
    let read = {
        let path = m.at("f");
        std::thread::spawn(move || {
            let started = Instant::now();
            (fs::read(path), started.elapsed())
        })
    };
    let detected = m.wait_states(2, "reconnecting", Duration::from_secs(15));
    eprintln!("stopped agent declared dead {detected:?} after SIGSTOP");
    assert!(detected <= dead_window(), "{detected:?}");
    m.wait_states(3, "connected", Duration::from_secs(40));
    let (result, took) = read.join().unwrap();
    eprintln!(
        "read during the stop: {:?} after {took:?}",
        result.as_ref().map(|d| d.len())
    );
    assert_eq!(result.unwrap(), b"still here", "completed on the new session");
    assert!(took < Duration::from_secs(20));
    assert!(stopped.elapsed() < Duration::from_secs(30));
    assert_eq!(m.states(), ["connected", "reconnecting", "connected"]);
    // A new agent serves the mount (the stopped one, if still there, is
    // removed by the sshd's kill at the end).
    assert!(m.remote.agents().iter().any(|pid| *pid != agents[0]));
}

#[test]
fn transitions_are_read_from_the_log() {
    let log = "2026 INFO yonder::link: ssh://h: connected state=connected\n\
               2026 INFO yonder::agent: something state=bogus\n\
               2026 INFO yonder::link: ssh://h: reconnection attempt 1 failed: refused\n\
               2026 INFO yonder::link: ssh://h: connection lost (x); reconnecting \x1b[3mstate\x1b[0m\x1b[2m=\x1b[0mreconnecting\n";
    assert_eq!(states_in(log), ["connected", "reconnecting"]);
}
