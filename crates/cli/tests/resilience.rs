//! A real `yonder mount` over ssh riding out network failures: ssh runs
//! through the fault proxy (`yonder_testkit::proxy`) to a private sshd, and
//! each test breaks the network (or the remote) in one way and checks what
//! applications see, and the exact sequence of connection states the mount
//! went through. Each runs twice: `foreground::*` (`yonder mount
//! --foreground`, states from its `yonder::link` log lines, `state=...`,
//! the first connection's at debug)
//! and `managed::*` (the mount handed to a private manager, states from
//! `yonder events --format json`, the mount's states as well).
//!
//! Heartbeats every second, dead after 3 silent ones. Runs as root (FUSE),
//! with no stdin; every wait is bounded.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

mod support;

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, Seek, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
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
    /// Runs the proxies.
    rt: tokio::runtime::Runtime,
    sshd: Sshd,
    proxy: FaultProxy,
    /// In front of the agent's direct listener, on the port it is told to
    /// bind (`--direct-bind`), for a mount over `Route::Direct`.
    direct: FaultProxy,
    direct_port: u16,
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
        let direct_port = yonder_testkit::free_port();
        let direct_target = format!("127.0.0.1:{direct_port}").parse().unwrap();
        let direct = rt.block_on(FaultProxy::start(direct_target)).unwrap();
        Remote {
            rt,
            sshd,
            proxy,
            direct,
            direct_port,
        }
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

/// What carries the mount's requests; the network between is the proxy's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// The ssh session (`--transport ssh`).
    Ssh,
    /// A direct connection (`--transport direct`) through a proxy of its
    /// own, opened through the ssh session (through the other proxy).
    Direct,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `yonder mount --foreground`.
    Foreground,
    /// `yonder mount`, served by a manager of the test's own.
    Managed,
}

/// Generates `foreground::NAME` and `managed::NAME` for each `fn NAME(Mode)`.
macro_rules! both_modes {
    ($($test:ident),* $(,)?) => {
        mod foreground {
            $(#[test]
            fn $test() {
                super::$test(super::Mode::Foreground)
            })*
        }
        mod managed {
            $(#[test]
            fn $test() {
                super::$test(super::Mode::Managed)
            })*
        }
    };
}

both_modes!(
    a_black_holed_link_is_declared_dead_and_the_same_descriptor_reads_on,
    twenty_cuts_during_a_64_mib_dd_lose_nothing,
    stat_fails_with_eio_within_the_op_timeout_while_the_link_is_down,
    the_mount_comes_back_after_the_remote_sshd_is_killed_and_restarted,
    without_reconnection_operations_fail_fast,
    a_stopped_agent_is_detected_and_replaced,
    a_write_delivered_late_to_a_replaced_agent_changes_nothing,
);

/// The same over the direct path: its connection cut alone (and opened
/// again through the ssh session that stays), and the whole network
/// black-holed.
mod direct {
    use super::{Mode, Route};

    #[test]
    fn foreground_twenty_cuts_of_the_direct_connection_during_a_64_mib_dd_lose_nothing() {
        super::twenty_cuts_via(Mode::Foreground, Route::Direct)
    }

    #[test]
    fn managed_twenty_cuts_of_the_direct_connection_during_a_64_mib_dd_lose_nothing() {
        super::twenty_cuts_via(Mode::Managed, Route::Direct)
    }

    #[test]
    fn foreground_a_black_holed_network_is_declared_dead_and_the_same_descriptor_reads_on() {
        super::black_hole_via(Mode::Foreground, Route::Direct)
    }

    #[test]
    fn managed_a_black_holed_network_is_declared_dead_and_the_same_descriptor_reads_on() {
        super::black_hole_via(Mode::Managed, Route::Direct)
    }
}

/// Repeated `YONDER_CUT_REPEATS` times each (once by default: two rounds
/// in all, one per mode).
mod exactly_once {
    #[test]
    fn foreground_untar_and_rm_rf_of_2000_files_ride_out_a_cut_every_1_5_s() {
        super::an_untar_and_rm_rf_of_2000_files_ride_out_a_cut_every_1_5_s(super::Mode::Foreground)
    }

    #[test]
    fn managed_untar_and_rm_rf_of_2000_files_ride_out_a_cut_every_1_5_s() {
        super::an_untar_and_rm_rf_of_2000_files_ride_out_a_cut_every_1_5_s(super::Mode::Managed)
    }
}

struct Mounted {
    mode: Mode,
    route: Route,
    remote: Remote,
    backing: tempfile::TempDir,
    _parent: tempfile::TempDir,
    mountpoint: PathBuf,
    /// `yonder mount --foreground`, or `yonder events` of the manager.
    child: Option<Child>,
    /// Foreground: the mount's stderr. Managed: the event lines.
    log: Arc<Mutex<String>>,
    /// The manager's runtime and state directories (managed).
    manager: Option<tempfile::TempDir>,
}

/// Collects `pipe`'s lines into `log` (and the test's stderr).
fn collect(pipe: impl std::io::Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let mut kept = log.lock().unwrap();
            kept.push_str(&line);
            kept.push('\n');
        }
    });
}

/// The first line of `pipe`, within 30 s.
fn first_line(pipe: impl std::io::Read + Send + 'static, what: &str) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(pipe).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what} printed nothing within 30 s"))
}

impl Mounted {
    /// Mounts a fresh backing directory over ssh through the proxy, with
    /// `extra` arguments.
    fn start(mode: Mode, extra: &[&str]) -> Mounted {
        Mounted::start_via(mode, Route::Ssh, extra)
    }

    /// [`Mounted::start`], the requests carried by `route`.
    fn start_via(mode: Mode, route: Route, extra: &[&str]) -> Mounted {
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
        let manager = (mode == Mode::Managed).then(|| {
            let dir = tempfile::Builder::new()
                .prefix("yonder-manager")
                .tempdir()
                .unwrap();
            std::fs::create_dir(dir.path().join("run")).unwrap();
            std::fs::set_permissions(dir.path().join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
            dir
        });
        let yonder = |args: &[&str]| {
            let mut cmd = Command::new(yonder_bin());
            cmd.args(args).stdin(Stdio::null()).env("NO_COLOR", "1");
            if let Some(dir) = &manager {
                cmd.env("XDG_RUNTIME_DIR", dir.path().join("run"))
                    .env("XDG_STATE_HOME", dir.path().join("state"))
                    .env_remove("YONDER_MANAGER_SOCKET")
                    .env_remove("YONDER_CONTROL_PROTOCOL");
            }
            cmd
        };
        let log = Arc::new(Mutex::new(String::new()));
        let mut events = None;
        if mode == Mode::Managed {
            let started = yonder(&["manager", "start"]).output().unwrap();
            assert!(started.status.success(), "{started:?}");
            // Subscribed before the mount: every event of it is seen.
            let mut child = yonder(&["events", "--format", "json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            collect(child.stdout.take().unwrap(), log.clone());
            events = Some(child);
        }
        let agent = yonder_bin().display().to_string();
        let mut args = vec![
            "mount".to_string(),
            source,
            mountpoint.display().to_string(),
            "--heartbeat".into(),
            HEARTBEAT.as_secs_f64().to_string(),
            "--heartbeat-misses".into(),
            MISSES.to_string(),
            "--agent-path".into(),
            agent,
        ];
        if mode == Mode::Foreground {
            args.push("--foreground".into());
        }
        match route {
            Route::Ssh => args.extend(["--transport".into(), "ssh".into()]),
            Route::Direct => args.extend([
                "--transport".into(),
                "direct".into(),
                "--direct-bind".into(),
                format!("127.0.0.1:{}", remote.direct_port),
                "--direct-connect".into(),
                format!("127.0.0.1:{}", remote.direct.port()),
            ]),
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        for option in remote.sshd.ssh_options() {
            args.extend(["-o".to_string(), option]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = yonder(&args);
        cmd.env("YONDER_LOG", "warn,yonder::link=debug,yonder_vfs::calls=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let line = first_line(child.stdout.take().unwrap(), "yonder mount");
        let child = match mode {
            Mode::Foreground => {
                collect(child.stderr.take().unwrap(), log.clone());
                assert_eq!(line.trim_end(), mountpoint.display().to_string());
                Some(child)
            }
            Mode::Managed => {
                // `ID MOUNTPOINT`, and `yonder mount` is done.
                assert_eq!(
                    line.split_once(' ').map(|(_, at)| at.trim_end()),
                    mountpoint.to_str()
                );
                let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("yonder mount hung");
                assert!(status.success());
                events
            }
        };
        Mounted {
            mode,
            route,
            remote,
            backing,
            _parent: parent,
            mountpoint,
            child,
            log,
            manager,
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

    /// Cuts the connection that carries the requests: ssh's, or the
    /// direct one alone (the ssh session stays).
    fn cut(&self) {
        match self.route {
            Route::Ssh => self.remote.proxy.drop_all(),
            Route::Direct => self.remote.direct.drop_all(),
        }
    }

    /// The one connection's `transport` in `yonder status` (managed).
    fn status_transport(&self) -> Option<String> {
        let dir = self.manager.as_ref()?;
        let out = Command::new(yonder_bin())
            .args(["status", "--format", "json"])
            .env("XDG_RUNTIME_DIR", dir.path().join("run"))
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        Some(
            status["connections"][0]["transport"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    }

    /// Black-holes the whole network between mount and remote.
    fn blackhole(&self) {
        self.remote.proxy.blackhole();
        self.remote.direct.blackhole();
    }

    fn restore(&self) {
        self.remote.proxy.restore();
        self.remote.direct.restore();
    }

    /// The connection states the mount logged (or the manager published),
    /// in order.
    fn states(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        match self.mode {
            Mode::Foreground => states_in(&log),
            Mode::Managed => event_states(&log, "connection"),
        }
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

    /// Checks the exact sequence of connection states, and (managed) that
    /// the mount followed it: `active` for `connected`.
    fn assert_states(&self, expect: &[&str]) {
        assert_eq!(self.states(), expect);
        if self.mode == Mode::Managed {
            // The mount's events follow the connection's in the stream.
            let deadline = Instant::now() + Duration::from_secs(5);
            let follows: Vec<&str> = expect
                .iter()
                .map(|s| if *s == "connected" { "active" } else { s })
                .collect();
            while event_states(&self.log.lock().unwrap(), "mount").len() < follows.len()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(event_states(&self.log.lock().unwrap(), "mount"), follows);
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        match self.mode {
            Mode::Foreground => {
                if let Some(mut child) = self.child.take() {
                    signal(child.id(), libc::SIGTERM);
                    let _ = wait_timeout(&mut child, Duration::from_secs(30));
                }
            }
            Mode::Managed => {
                if let Some(dir) = &self.manager {
                    let mut stop = Command::new(yonder_bin());
                    stop.args(["manager", "stop"])
                        .env("XDG_RUNTIME_DIR", dir.path().join("run"))
                        .env("XDG_STATE_HOME", dir.path().join("state"))
                        .stdin(Stdio::null())
                        .stdout(Stdio::null());
                    if let Ok(mut stopping) = stop.spawn() {
                        let _ = wait_timeout(&mut stopping, Duration::from_secs(30));
                    }
                }
                if let Some(mut events) = self.child.take() {
                    let _ = events.kill();
                    let _ = events.wait();
                }
            }
        }
        if is_mounted(&self.mountpoint) {
            let _ = Command::new("fusermount3")
                .args(["-uz"])
                .arg(&self.mountpoint)
                .status();
        }
        // The sshd and everything it runs, stopped agents included.
        self.remote.sshd.kill();
        let _ = &self.remote.rt;
    }
}

/// From `yonder events --format json` lines: the states of the first
/// connection (`c1`) or mount (`m1`), in order.
fn event_states(log: &str, topic: &str) -> Vec<String> {
    let id = if topic == "connection" { "c1" } else { "m1" };
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|e| e["topic"] == topic && e["id"] == id)
        .filter(|e| matches!(e["event"].as_str(), Some("connected" | "mounted" | "state")))
        .filter_map(|e| e["state"].as_str().map(str::to_string))
        .collect()
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
fn a_black_holed_link_is_declared_dead_and_the_same_descriptor_reads_on(mode: Mode) {
    black_hole_via(mode, Route::Ssh)
}

fn black_hole_via(mode: Mode, route: Route) {
    let m = Mounted::start_via(mode, route, &[]);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(m.disk("f"), &data).unwrap();
    let f = File::open(m.at("f")).unwrap();
    let mut head = vec![0; 1000];
    f.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, data[..1000]);
    m.wait_states(1, "connected", Duration::from_secs(5));

    m.blackhole();
    let detected = m.wait_states(2, "reconnecting", Duration::from_secs(15));
    eprintln!("declared dead {detected:?} after the black hole");
    assert!(detected <= dead_window(), "{detected:?} > {:?}", dead_window());
    std::thread::sleep(Duration::from_secs(1));
    m.restore();
    let back = m.wait_states(3, "connected", Duration::from_secs(40));
    eprintln!("connected again {back:?} after the restore");

    let mut rest = vec![0; data.len() - 1000];
    f.read_exact_at(&mut rest, 1000).unwrap();
    assert_eq!(rest, data[1000..]);
    assert_eq!(fs::read(m.at("f")).unwrap(), data);
    m.assert_states(&["connected", "reconnecting", "connected"]);
}

/// (b) 20 cuts during a 64 MiB `dd ... conv=fsync` on one descriptor: dd
/// succeeds and the remote file is the same bytes.
fn twenty_cuts_during_a_64_mib_dd_lose_nothing(mode: Mode) {
    twenty_cuts_via(mode, Route::Ssh)
}

/// [`twenty_cuts_during_a_64_mib_dd_lose_nothing`] over `route`; over the
/// direct path, each cut is of the direct connection alone, reopened
/// through the one ssh session (one agent throughout).
fn twenty_cuts_via(mode: Mode, route: Route) {
    let m = Mounted::start_via(mode, route, &[]);
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
            m.cut();
            cut += 1;
        }
    }
    drop(feed);
    let status = wait_timeout(&mut dd, Duration::from_secs(300)).expect("dd hung");
    assert!(status.success(), "dd failed: {status}");
    m.wait_states(1 + 2 * cuts, "connected", Duration::from_secs(60));
    if route == Route::Direct {
        if let Some(transport) = m.status_transport() {
            assert_eq!(transport, "direct", "yonder status");
        }
        assert_eq!(
            m.remote.agents().len(),
            1,
            "the direct connection was not reopened through the ssh session"
        );
        assert!(
            m.remote.direct.accepted() > cuts as u64,
            "not carried by the direct connection"
        );
    }
    let written = fs::read(m.disk("big")).unwrap();
    assert_eq!(written.len(), total);
    assert!(written == source, "the remote file differs from what dd wrote");
    let mut expect = vec!["connected"];
    for _ in 0..cuts {
        expect.extend(["reconnecting", "connected"]);
    }
    m.assert_states(&expect);
}

/// (h) An untar of 2,000 files, then an `rm -rf` of them, through a mount
/// whose link is cut every 1.5 s: both succeed without a word on stderr,
/// the remote tree equals the tar's (`diff -r`), then it is gone. Every
/// create, mkdir and unlink cut off in flight is sent again to the next
/// agent, which answers it from the session's reply records: none fails
/// with EEXIST or EIO, none runs twice. Repeated
/// `YONDER_CUT_REPEATS` times (once by default) on one mount.
fn an_untar_and_rm_rf_of_2000_files_ride_out_a_cut_every_1_5_s(mode: Mode) {
    let repeats: usize = std::env::var("YONDER_CUT_REPEATS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("tree");
    for d in 0..100 {
        let dir = source.join(format!("d{d:03}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..20 {
            let body = format!("{d} {f}\n").repeat(1 + (d * 20 + f) % 97);
            fs::write(dir.join(format!("f{f:03}.txt")), body).unwrap();
        }
    }
    let tar = work.path().join("tree.tar");
    let made = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(work.path())
        .arg("tree")
        .status()
        .unwrap();
    assert!(made.success());
    let m = Mounted::start(mode, &[]);
    for round in 0..repeats {
        let cuts_before = m.proxy().drops();
        let untar = cut_every_1_5_s(&m, || {
            Command::new("tar")
                .arg("-xf")
                .arg(&tar)
                .arg("-C")
                .arg(&m.mountpoint)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        });
        assert!(
            untar.status.success() && untar.stderr.is_empty(),
            "round {round}: tar: {untar:?}"
        );
        let diff = Command::new("diff")
            .arg("-r")
            .arg(&source)
            .arg(m.disk("tree"))
            .output()
            .unwrap();
        assert!(
            diff.status.success(),
            "round {round}: the remote tree differs: {diff:?}"
        );
        let removed = cut_every_1_5_s(&m, || {
            Command::new("rm")
                .arg("-rf")
                .arg(m.at("tree"))
                .stdin(Stdio::null())
                .output()
                .unwrap()
        });
        assert!(
            removed.status.success() && removed.stderr.is_empty(),
            "round {round}: rm -rf: {removed:?}"
        );
        assert!(
            !m.disk("tree").exists(),
            "round {round}: the remote tree is still there"
        );
        assert!(
            m.proxy().drops() > cuts_before,
            "round {round}: the link was never cut (the work took under 1.5 s)"
        );
    }
    // The mount's own log (foreground) tells how often a cut hid an answer.
    let log = m.log.lock().unwrap();
    eprintln!(
        "{mode:?}: {} cuts; {} calls cut off in flight sent again to the next agent, {} resolved by looking",
        m.proxy().drops(),
        log.matches("the next agent answers it again").count(),
        log.matches("its outcome is checked on the next connection")
            .count()
    );
}

/// Runs `work` while a thread cuts the link every 1.5 s: every
/// connection through the proxy is dropped 1.5 s after the previous cut,
/// or as soon as the link is connected again if reconnecting took longer
/// (a cut during ssh's handshake cuts no link, and on a loaded machine
/// the handshake alone may take longer than 1.5 s).
fn cut_every_1_5_s<T>(m: &Mounted, work: impl FnOnce() -> T) -> T {
    let done = std::sync::atomic::AtomicBool::new(false);
    let connections = || m.states().iter().filter(|s| *s == "connected").count();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut next = Instant::now() + Duration::from_millis(1500);
            let mut connected = connections();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if Instant::now() >= next && connections() >= connected {
                    m.proxy().drop_all();
                    connected += 1;
                    next = Instant::now() + Duration::from_millis(1500);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let result = work();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    })
}

/// (c) With the link down beyond --op-timeout, `stat` fails with EIO
/// within op-timeout + 1 s, not later; once the outage has lasted that
/// long, operations fail at once until the link is back.
fn stat_fails_with_eio_within_the_op_timeout_while_the_link_is_down(mode: Mode) {
    let op_timeout = Duration::from_secs(5);
    let m = Mounted::start(
        mode,
        &[
            "--op-timeout",
            &op_timeout.as_secs().to_string(),
            "--attr-ttl",
            "0",
            "--dir-ttl",
            "0",
        ],
    );
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
    m.assert_states(&["connected", "reconnecting"]);
    // The outage is older than the op timeout: at once.
    let second = Instant::now();
    let err = fs::metadata(m.at("f")).unwrap_err();
    let took = second.elapsed();
    eprintln!("stat later in the outage: {err} after {took:?}");
    assert_eq!(errno(&err), libc::EIO);
    assert!(took < Duration::from_secs(2), "{took:?} (the op timeout is 5 s)");
    m.proxy().restore();
    m.wait_states(3, "connected", Duration::from_secs(40));
    assert_eq!(fs::read(m.at("f")).unwrap(), b"x");
    m.assert_states(&["connected", "reconnecting", "connected"]);
}

/// (d) The remote's sshd dies (its sessions with it) and comes back later:
/// the mount reconnects by itself.
fn the_mount_comes_back_after_the_remote_sshd_is_killed_and_restarted(mode: Mode) {
    let mut m = Mounted::start(mode, &[]);
    fs::write(m.at("before"), b"before").unwrap();
    m.remote.sshd.kill();
    m.wait_states(2, "reconnecting", Duration::from_secs(10));
    // Attempts fail while nothing listens.
    std::thread::sleep(Duration::from_secs(3));
    m.assert_states(&["connected", "reconnecting"]);
    m.remote.sshd.restart().unwrap();
    let back = m.wait_states(3, "connected", Duration::from_secs(40));
    eprintln!("reconnected {back:?} after sshd came back");
    assert_eq!(fs::read(m.at("before")).unwrap(), b"before");
    fs::write(m.at("after"), b"after").unwrap();
    assert_eq!(fs::read(m.disk("after")).unwrap(), b"after");
    m.assert_states(&["connected", "reconnecting", "connected"]);
}

/// (e) With --no-reconnect a lost link stays lost: the state goes to
/// disconnected and operations fail at once.
fn without_reconnection_operations_fail_fast(mode: Mode) {
    let m = Mounted::start(mode, &["--no-reconnect", "--attr-ttl", "0", "--dir-ttl", "0"]);
    fs::write(m.disk("f"), b"x").unwrap();
    fs::metadata(m.at("f")).unwrap();
    m.proxy().drop_all();
    m.wait_states(2, "disconnected", Duration::from_secs(10));
    for _ in 0..3 {
        let started = Instant::now();
        let err = fs::metadata(m.at("f")).unwrap_err();
        assert_eq!(errno(&err), libc::EIO);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    assert_eq!(errno(&fs::write(m.at("g"), b"y").unwrap_err()), libc::EIO);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the op timeout is 20 s"
    );
    std::thread::sleep(Duration::from_secs(2));
    m.assert_states(&["connected", "disconnected"]);
    assert_eq!(m.proxy().accepted(), 1, "no reconnection attempt");
    assert!(is_mounted(&m.mountpoint), "still mounted");
}

/// (f) The remote agent is stopped (SIGSTOP) with the link up: the
/// heartbeat finds it dead, a new session takes over, and an operation
/// waiting meanwhile completes rather than hanging.
fn a_stopped_agent_is_detected_and_replaced(mode: Mode) {
    let m = Mounted::start(mode, &["--attr-ttl", "0", "--dir-ttl", "0", "--op-timeout", "20"]);
    fs::write(m.disk("f"), b"still here").unwrap();
    assert_eq!(fs::read(m.at("f")).unwrap(), b"still here");
    let agents = m.remote.agents();
    assert_eq!(agents.len(), 1, "{agents:?}");
    signal(agents[0], libc::SIGSTOP);
    // A stopped process ignores the sshd's SIGTERM at the end: it is
    // killed here, whatever the outcome.
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            signal(self.0, libc::SIGKILL);
        }
    }
    let _stopped_agent = KillOnDrop(agents[0]);
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
    m.assert_states(&["connected", "reconnecting", "connected"]);
    // A new agent serves the mount.
    assert!(m.remote.agents().iter().any(|pid| *pid != agents[0]));
}

/// (g) The old connection is cut off, not closed, while a write is on its
/// way (held by the network, as TCP holds what it will retransmit); the
/// link replaces it and replays the write on the new agent, and the file is
/// written again after that. When the network delivers the old
/// connection's data at last, the old agent (still running, its sshd
/// unaware of anything) must not carry out the old write over the newer
/// data: the new agent fenced it off.
fn a_write_delivered_late_to_a_replaced_agent_changes_nothing(mode: Mode) {
    let m = Mounted::start(mode, &["--attr-ttl", "60", "--op-timeout", "30"]);
    fs::write(m.at("f"), b"first").unwrap();
    assert_eq!(fs::read(m.disk("f")).unwrap(), b"first");
    // Opened and written once first, so that only the write itself goes
    // the old way (not the open, nor the kernel's check for privileges to
    // drop on a write, answered from the cached attributes afterwards).
    let mut file = OpenOptions::new().write(true).open(m.at("f")).unwrap();
    file.write_all(b"F").unwrap();
    file.sync_all().unwrap();
    assert_eq!(fs::read(m.disk("f")).unwrap(), b"First");
    file.seek(std::io::SeekFrom::Start(0)).unwrap();
    m.proxy().hold_existing();
    // Written and synced (so sent) into the held connection; the fsync
    // returns once the write is replayed on a new agent.
    let writer = std::thread::spawn(move || {
        file.write_all(b"stale")?;
        file.sync_all()
    });
    m.wait_states(3, "connected", Duration::from_secs(40));
    writer.join().unwrap().expect("the write reached the new agent");
    assert_eq!(fs::read(m.disk("f")).unwrap(), b"stale");
    fs::write(m.at("f"), b"newer").unwrap();
    assert_eq!(fs::read(m.disk("f")).unwrap(), b"newer");
    assert_eq!(m.remote.agents().len(), 2, "the old agent still runs");
    // The network delivers the old connection's data, then its end.
    m.proxy().release_held();
    let old_gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        m.remote.agents().len() == 1
    });
    assert!(old_gone, "the old agent saw its connection end");
    assert_eq!(
        fs::read(m.disk("f")).unwrap(),
        b"newer",
        "the replaced agent carried out the old write after the newer one"
    );
    assert_eq!(fs::read(m.at("f")).unwrap(), b"newer");
    m.assert_states(&["connected", "reconnecting", "connected"]);
}

#[test]
fn transitions_are_read_from_the_log() {
    let log = "2026 INFO yonder::link: ssh://h: connected state=connected\n\
               2026 INFO yonder::agent: something state=bogus\n\
               2026 INFO yonder::link: ssh://h: reconnection attempt 1 failed: refused\n\
               2026 INFO yonder::link: ssh://h: connection lost (x); reconnecting \x1b[3mstate\x1b[0m\x1b[2m=\x1b[0mreconnecting\n";
    assert_eq!(states_in(log), ["connected", "reconnecting"]);
}

// ----- the soak (conformance/soak-reconnect) -----

/// A deterministic byte stream (xorshift), for file contents and choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// The content of soak file `n`: `size` bytes from its own stream.
fn soak_content(n: u64, size: usize) -> Vec<u8> {
    let mut data = vec![0; size];
    Rng::new(n + 1_000_003).fill(&mut data);
    data
}

/// A file the writer finished: its close (or its last fsync, with every
/// write before it) succeeded, so its content must be on the remote.
#[derive(Clone)]
struct Done {
    name: String,
    n: u64,
    size: usize,
}

/// `close(2)` of `file`, reporting its error (dropping a `File` ignores it).
fn close(file: File) -> std::io::Result<()> {
    use std::os::fd::IntoRawFd;
    let fd = file.into_raw_fd();
    // SAFETY: `fd` is an open descriptor this function owns.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Writes file `n` through the mount: positioned or O_APPEND writes in
/// random pieces, fsyncs here and there, and sometimes an atomic save
/// (written under a temporary name, renamed into place). `Ok` once closed
/// (and renamed) without an error.
fn soak_write(dir: &std::path::Path, n: u64, rng: &mut Rng) -> std::io::Result<Done> {
    let size = (4096 + rng.below(6 << 20)) as usize;
    let data = soak_content(n, size);
    let name = format!("f{n:05}");
    let atomic = rng.below(4) == 0;
    let append = !atomic && rng.below(4) == 0;
    let target = if atomic {
        format!(".tmp{n:05}")
    } else {
        name.clone()
    };
    let mut options = OpenOptions::new();
    options.create(true).write(true);
    if append {
        options.append(true);
    } else {
        options.truncate(true);
    }
    let mut file = options.open(dir.join(&target))?;
    let mut at = 0;
    while at < size {
        let piece = (1 + rng.below(1 << 20) as usize).min(size - at);
        file.write_all(&data[at..at + piece])?;
        at += piece;
        if rng.below(8) == 0 {
            file.sync_data()?;
        }
    }
    if atomic || rng.below(2) == 0 {
        file.sync_all()?;
    }
    close(file)?;
    if atomic {
        fs::rename(dir.join(&target), dir.join(&name))?;
    }
    Ok(Done { name, n, size })
}

/// `conformance/soak-reconnect`: a writer and a reader work through a
/// mount while the link is cut at random every 5-30 s (closed, or
/// black-holed for 1-10 s), for `YONDER_SOAK_SECS` (600). At the end every
/// file the writer finished is on the remote with the right content, and
/// no read through the mount returned wrong data. Prints the figures.
#[test]
#[ignore = "runs for minutes: conformance/soak-reconnect"]
fn soak() {
    let secs: u64 = std::env::var("YONDER_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let seed: u64 = std::env::var("YONDER_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mode = match std::env::var("YONDER_SOAK_MODE").as_deref() {
        Ok("managed") => Mode::Managed,
        _ => Mode::Foreground,
    };
    let m = Mounted::start(mode, &[]);
    let dir = m.mountpoint.clone();
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let done: Arc<Mutex<Vec<Done>>> = Arc::default();
    let stats: Arc<Mutex<SoakStats>> = Arc::default();
    let backing = m.backing.path().to_path_buf();

    let writer = {
        let (dir, done, stats) = (dir.clone(), done.clone(), stats.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(seed);
            let mut n = 0;
            while Instant::now() < until {
                n += 1;
                match soak_write(&dir, n, &mut rng) {
                    Ok(file) => {
                        let mut s = stats.lock().unwrap();
                        s.files += 1;
                        s.bytes += file.size as u64;
                        drop(s);
                        let retired = {
                            let mut done = done.lock().unwrap();
                            done.push(file);
                            (done.len() > SOAK_KEEP).then(|| done.remove(0))
                        };
                        // The disk stays small: the oldest finished file is
                        // checked on the remote, then deleted through the
                        // mount.
                        if let Some(old) = retired {
                            let mut s = stats.lock().unwrap();
                            match fs::read(backing.join(&old.name)) {
                                Ok(data) if data == soak_content(old.n, old.size) => s.verified += 1,
                                Ok(data) => {
                                    s.missing
                                        .push(format!("{}: {} bytes, wrong", old.name, data.len()))
                                }
                                Err(e) => s.missing.push(format!("{}: {e}", old.name)),
                            }
                            drop(s);
                            if let Err(e) = fs::remove_file(dir.join(&old.name)) {
                                eprintln!("soak: removing {} failed: {e}", old.name);
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("soak: writing f{n:05} failed (not counted): {e}");
                        stats.lock().unwrap().write_errors += 1;
                    }
                }
            }
        })
    };
    let reader = {
        let (dir, done, stats) = (dir.clone(), done.clone(), stats.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(seed ^ 0x5555);
            while Instant::now() < until {
                let pick = {
                    let done = done.lock().unwrap();
                    (!done.is_empty()).then(|| done[rng.below(done.len() as u64) as usize].clone())
                };
                let Some(file) = pick else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                match fs::read(dir.join(&file.name)) {
                    Ok(data) if data == soak_content(file.n, file.size) => {
                        stats.lock().unwrap().reads += 1;
                    }
                    // Retired by the writer meanwhile.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Ok(data) => {
                        eprintln!("soak: {} read back wrong ({} bytes)", file.name, data.len());
                        stats.lock().unwrap().wrong_reads += 1;
                    }
                    Err(e) => {
                        eprintln!("soak: reading {} failed: {e}", file.name);
                        stats.lock().unwrap().read_errors += 1;
                    }
                }
            }
        })
    };
    // The cuts.
    let mut rng = Rng::new(seed ^ 0xaaaa);
    let (mut drops, mut holes) = (0, 0);
    loop {
        let wait = Duration::from_millis(5_000 + rng.below(25_000));
        if Instant::now() + wait >= until {
            break;
        }
        std::thread::sleep(wait);
        if rng.below(3) == 0 {
            let hold = Duration::from_millis(1_000 + rng.below(9_000));
            m.proxy().blackhole();
            std::thread::sleep(hold);
            m.proxy().restore();
            holes += 1;
            eprintln!("soak: black hole {holes} ({hold:?}) at {:?}", started.elapsed());
        } else {
            m.proxy().drop_all();
            drops += 1;
            eprintln!("soak: cut {drops} at {:?}", started.elapsed());
        }
    }
    writer.join().unwrap();
    reader.join().unwrap();
    // The link is back, and nothing is left to send.
    let states = m.states();
    assert_eq!(states.last().map(String::as_str), Some("connected"), "{states:?}");
    let done = done.lock().unwrap().clone();
    let mut s = stats.lock().unwrap();
    for file in &done {
        match fs::read(m.disk(&file.name)) {
            Ok(data) if data == soak_content(file.n, file.size) => s.verified += 1,
            Ok(data) => s
                .missing
                .push(format!("{}: {} bytes, wrong content", file.name, data.len())),
            Err(e) => s.missing.push(format!("{}: {e}", file.name)),
        }
    }
    let reconnections = states.iter().filter(|s| *s == "reconnecting").count();
    println!(
        "soak: {:.0} s, {} cuts ({drops} closed, {holes} black-holed), {reconnections} reconnections; \
         writer: {} files, {} bytes ({:.1} MiB) finished, {} failed; reader: {} files verified, {} wrong, \
         {} errors; remote: {} of {} finished files right",
        started.elapsed().as_secs_f64(),
        drops + holes,
        s.files,
        s.bytes,
        s.bytes as f64 / (1 << 20) as f64,
        s.write_errors,
        s.reads,
        s.wrong_reads,
        s.read_errors,
        s.verified,
        s.files
    );
    assert!(
        s.missing.is_empty(),
        "finished files not on the remote as written: {:?}",
        s.missing
    );
    assert_eq!(s.verified, s.files, "every finished file was checked");
    assert_eq!(s.wrong_reads, 0, "reads through the mount returned wrong data");
    assert!(drops + holes > 0 || secs < 30, "no cut");
}

/// Finished files kept on the remote; older ones are checked and deleted.
const SOAK_KEEP: usize = 48;

#[derive(Default)]
struct SoakStats {
    /// Finished files checked on the remote, right.
    verified: u64,
    /// Finished files not on the remote as written.
    missing: Vec<String>,
    files: u64,
    bytes: u64,
    write_errors: u64,
    reads: u64,
    wrong_reads: u64,
    read_errors: u64,
}
