//! The direct path through the binary: `--transport auto` over ssh with
//! the direct port unreachable stays on ssh and says so in one line;
//! `--transport direct` there fails naming why; a standalone listener
//! (`yonder agent --listen --key`) serves a `tcp://` mount with its key
//! and refuses another. (The behaviour suite runs over the direct path as
//! `mount_behaviour::fuse_direct`, its resilience in `resilience::direct`,
//! the listener's refusals in `yonder-testkit`'s `tests/direct.rs`.)

#![cfg(unix)]

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::mount::{is_mounted, signal, wait_timeout, Mount};
use support::{yonder_bin, Frontend, Transport, Variant};

const SSH: Variant = Variant {
    frontend: Frontend::Fuse,
    transport: Transport::Ssh,
};

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    yonder_testkit::free_port()
}

#[test]
fn an_unreachable_direct_port_leaves_auto_on_ssh_with_one_line() {
    let port = closed_port();
    let mount = Mount::start_logged(
        SSH,
        &[
            "--transport",
            "auto",
            "--direct-connect",
            &format!("127.0.0.1:{port}"),
        ],
    );
    std::fs::write(mount.at("f"), b"over ssh").unwrap();
    assert_eq!(std::fs::read(mount.disk("f")).unwrap(), b"over ssh");
    let log = mount.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("no direct connection"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("staying on ssh"), "{log}");
    assert!(lines[0].contains(&format!("127.0.0.1:{port}")), "{log}");
}

#[test]
fn transport_direct_with_an_unreachable_port_fails_saying_why() {
    let backing = tempfile::tempdir().unwrap();
    let parent = tempfile::tempdir().unwrap();
    let port = closed_port();
    let said = Mount::refused(
        SSH,
        backing.path(),
        &parent.path().join("mnt"),
        &[
            "--transport",
            "direct",
            "--direct-connect",
            &format!("127.0.0.1:{port}"),
        ],
    );
    assert!(said.contains("no direct connection"), "{said}");
}

struct Listener(Child);

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn listen(root: &Path, key: &Path, port: u16) -> Listener {
    let child = Command::new(yonder_bin())
        .args(["agent", "--listen", &format!("127.0.0.1:{port}"), "--key"])
        .arg(key)
        .arg(format!("--root={}", root.display()))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the listener did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Listener(child)
}

fn gen_key(path: &Path) {
    let status = Command::new(yonder_bin())
        .args(["agent", "--gen-key"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// `yonder mount --foreground SOURCE MNT ARGS`: the child once its mount
/// is ready, or what it said when it failed.
fn mount_tcp(source: &str, at: &Path, args: &[&str]) -> Result<Child, String> {
    let mut child = Command::new(yonder_bin())
        .args(["mount", "--foreground", source])
        .arg(at)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.trim_end() == at.to_str().unwrap() {
        return Ok(child);
    }
    wait_timeout(&mut child, Duration::from_secs(30)).expect("yonder mount hung");
    let mut said = String::new();
    child.stderr.take().unwrap().read_to_string(&mut said).unwrap();
    Err(said)
}

#[test]
fn a_standalone_listener_serves_its_key_and_refuses_another() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("hello"), b"hello\n").unwrap();
    let (key, other) = (work.path().join("key"), work.path().join("other"));
    gen_key(&key);
    gen_key(&other);
    let port = yonder_testkit::free_port();
    let _listener = listen(&root, &key, port);
    let source = format!("tcp://127.0.0.1:{port}");

    let at = work.path().join("mnt");
    std::fs::create_dir(&at).unwrap();
    let said =
        mount_tcp(&source, &at, &["--key", other.to_str().unwrap()]).expect_err("another key was taken");
    assert!(said.contains("refused"), "{said}");
    let said = mount_tcp(&source, &at, &[]).expect_err("no key was taken");
    assert!(said.contains("--key"), "{said}");

    let mut mounted = mount_tcp(&source, &at, &["--key", key.to_str().unwrap()]).expect("the listener's key");
    assert_eq!(std::fs::read(at.join("hello")).unwrap(), b"hello\n");
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(at.join("big"), &data).unwrap();
    assert!(std::fs::read(root.join("big")).unwrap() == data);
    signal(mounted.id(), libc::SIGTERM);
    wait_timeout(&mut mounted, Duration::from_secs(30)).expect("yonder mount did not end");
    assert!(!is_mounted(&at));
}

#[test]
fn auto_over_ssh_carries_the_requests_on_a_direct_connection() {
    let mount = Mount::start_logged(SSH, &[]);
    std::fs::write(mount.at("f"), b"direct").unwrap();
    assert_eq!(std::fs::read(mount.disk("f")).unwrap(), b"direct");
    // ssh is a process of its own: a TCP connection of `yonder mount`'s
    // is the direct one.
    let ss = Command::new("ss")
        .args(["-tnpH", "state", "established"])
        .output()
        .unwrap();
    let ss = String::from_utf8_lossy(&ss.stdout);
    let pid = format!("pid={},", mount.pid());
    assert!(
        ss.lines().any(|l| l.contains(&pid)),
        "no TCP connection of {pid}: {ss}"
    );
    assert!(!mount.log().contains("no direct connection"), "{}", mount.log());
}
