//! Agent deployment through the real binary, over ssh to a private sshd
//! whose PATH has no `yonder`: the binary is sent once, found in the
//! remote's cache on every later connection (reconnections too), sent
//! again when the cached copy is damaged, and a host where it cannot be
//! stored or run is served through its SFTP server instead, with one line
//! saying why (and reconnections keep to SFTP). Each remote "home" is a cache
//! directory of the test's own (`XDG_CACHE_HOME`, passed with ssh's
//! `SetEnv`); this side's cache of the prepared binary is shared by the
//! tests (one per build). Mounts through the manager, so runs as root.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

mod support;

use serde_json::Value;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::mount::{is_mounted, wait_timeout};
use support::yonder_bin;
use yonder_testkit::Sshd;

/// A manager environment of its own, an sshd, a tree to serve on it, and
/// the remote cache directory.
struct Env {
    dir: tempfile::TempDir,
    sshd: Sshd,
    remote_cache: PathBuf,
}

impl Env {
    fn new() -> Env {
        Env::with_sshd_config("")
    }

    /// With more `sshd_config` lines.
    fn with_sshd_config(extra: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("yonder-deploy")
            .tempdir()
            .unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::create_dir(dir.path().join("tree")).unwrap();
        std::fs::write(dir.path().join("tree/hello"), b"hello\n").unwrap();
        let remote_cache = dir.path().join("remote-cache");
        std::fs::create_dir(&remote_cache).unwrap();
        Env {
            dir,
            sshd: Sshd::start_with(extra).expect("start sshd"),
            remote_cache,
        }
    }

    fn source(&self) -> String {
        self.sshd.source(&self.dir.path().join("tree"))
    }

    /// `-o` words for ssh: the sshd's key, and the remote cache.
    fn ssh_options(&self) -> Vec<String> {
        let mut options = self.sshd.ssh_options();
        options.push(format!("SetEnv=XDG_CACHE_HOME={}", self.remote_cache.display()));
        options.into_iter().flat_map(|o| ["-o".to_string(), o]).collect()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(yonder_bin());
        cmd.args(args)
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            // This side's prepared binary, kept across tests (keyed by build).
            .env(
                "XDG_CACHE_HOME",
                std::env::temp_dir().join("yonder-deploy-tests-cache"),
            )
            .env_remove("YONDER_MANAGER_SOCKET")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_timeout(&mut child, Duration::from_secs(120)).unwrap_or_else(|| panic!("yonder {args:?} hung"));
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "yonder {args:?}: {}\nmanager log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("state/yonder/manager.log")).unwrap_or_default()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--format", "json"])).unwrap()
    }

    /// How the agent of the one connection got there.
    fn agent(&self) -> String {
        let status = self.status();
        let connections = status["connections"].as_array().unwrap();
        assert_eq!(connections.len(), 1, "{status}");
        connections[0]["agent"].as_str().unwrap_or("none").to_string()
    }

    /// Mounts the tree through the manager at a fresh mount point.
    fn mount(&self, name: &str) -> PathBuf {
        let at = self.dir.path().join(name);
        let source = self.source();
        let options = self.ssh_options();
        let mut args = vec!["mount", &source, at.to_str().unwrap()];
        args.extend(options.iter().map(String::as_str));
        self.ok(&args);
        assert!(is_mounted(&at));
        assert_eq!(std::fs::read(at.join("hello")).unwrap(), b"hello\n");
        at
    }

    fn unmount(&self, at: &Path) {
        self.ok(&["unmount", at.to_str().unwrap()]);
        // Its connection closes with its last mount.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.status()["connections"].as_array().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the connection stayed");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The one agent binary in the remote cache.
    fn cached_agent(&self) -> PathBuf {
        let dirs: Vec<PathBuf> = std::fs::read_dir(self.remote_cache.join("yonder"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        let name = dirs[0].file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with(&format!("{}-", env!("CARGO_PKG_VERSION"))),
            "VERSION-HASH: {name}"
        );
        let mut files: Vec<_> = std::fs::read_dir(&dirs[0])
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        files.sort();
        assert_eq!(files, ["sum", "yonder"], "no temporary file is left");
        dirs[0].join("yonder")
    }

    /// `yonder fs ls` of the tree with `extra` arguments, which must fail
    /// in one line; returns it.
    fn ls_fails(&self, extra: &[&str]) -> String {
        let source = self.source();
        let options = self.ssh_options();
        let mut args = vec!["fs"];
        args.extend(options.iter().map(String::as_str));
        args.extend_from_slice(extra);
        args.extend(["ls", &source]);
        let out = self.run(&args);
        let err = String::from_utf8(out.stderr).unwrap();
        eprintln!("yonder {args:?}:\n{err}");
        assert!(!out.status.success(), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with(&format!("yonder: connect {source}: ")), "{err}");
        err
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.run(&["manager", "stop"]);
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let ours = self.dir.path().display().to_string();
        for line in info.lines() {
            if let Some(at) = line.split(' ').nth(4).filter(|at| at.starts_with(&ours)) {
                let _ = Command::new("umount").args(["-l", at]).status();
            }
        }
    }
}

fn identity(path: &Path) -> (u64, i64, i64) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.ino(), meta.mtime(), meta.mtime_nsec())
}

#[test]
fn a_host_without_yonder_gets_the_agent_once_and_every_later_connection_reuses_it() {
    let env = Env::new();
    let at = env.mount("m1");
    assert_eq!(env.agent(), "deployed-uploaded");
    let cached = env.cached_agent();
    let meta = std::fs::metadata(&cached).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o755);
    let sent = identity(&cached);

    // A reconnection finds it in the cache.
    env.ok(&["reconnect", "c1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = env.status();
        let connection = &status["connections"][0];
        if connection["state"] == "connected" && connection["agent"] == "deployed-cached" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not reconnected to the cached agent: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read(at.join("hello")).unwrap(), b"hello\n");

    // So does a new connection: nothing is sent again.
    env.unmount(&at);
    let at = env.mount("m2");
    assert_eq!(env.agent(), "deployed-cached");
    assert_eq!(
        identity(&env.cached_agent()),
        sent,
        "the cached copy was not rewritten"
    );
    env.unmount(&at);
}

/// Replaces the file at `path` with `bytes`, by a rename: the agent that
/// ran from it may still be exiting (writing to it in place would fail with
/// ETXTBSY).
fn replace(path: &Path, bytes: &[u8]) {
    let part = path.with_extension("test-part");
    std::fs::write(&part, bytes).unwrap();
    std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&part, path).unwrap();
}

#[test]
fn a_damaged_or_truncated_cached_agent_is_replaced() {
    let env = Env::new();
    let at = env.mount("m1");
    env.unmount(&at);
    let cached = env.cached_agent();
    let good = std::fs::read(&cached).unwrap();

    // One byte changed, the size the same.
    let mut damaged = good.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    replace(&cached, &damaged);
    let at = env.mount("m2");
    assert_eq!(env.agent(), "deployed-uploaded");
    assert!(
        std::fs::read(env.cached_agent()).unwrap() == good,
        "replaced by the good copy"
    );
    env.unmount(&at);

    // Cut short, as by a full disk or an interrupted copy.
    replace(&cached, &good[..good.len() / 3]);
    let at = env.mount("m3");
    assert_eq!(env.agent(), "deployed-uploaded");
    assert!(
        std::fs::read(env.cached_agent()).unwrap() == good,
        "replaced by the good copy"
    );
    env.unmount(&at);
}

#[test]
fn no_deploy_keeps_the_one_line_hint_to_install_yonder() {
    let env = Env::new();
    let err = env.ls_fails(&["--no-deploy"]);
    assert!(
        err.contains("not installed") && err.contains("--agent-path"),
        "{err}"
    );
    assert!(!env.remote_cache.join("yonder").exists(), "nothing was sent");
}

/// Mounts a tmpfs with `options` over the remote cache directory.
fn tmpfs_over(dir: &Path, options: &str) {
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs -o {options} (needs root)");
}

/// Mounts the tree through the manager with `extra` arguments; returns
/// the mount point and what `yonder mount` said on stderr.
fn mount_saying(env: &Env, name: &str, extra: &[&str]) -> (PathBuf, String) {
    let at = env.dir.path().join(name);
    let source = env.source();
    let options = env.ssh_options();
    let mut args = vec!["mount", &source, at.to_str().unwrap()];
    args.extend(options.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let out = env.run(&args);
    let said = String::from_utf8(out.stderr).unwrap();
    assert!(
        out.status.success(),
        "yonder {args:?}: {said}\nmanager log:\n{}",
        env.log()
    );
    assert!(is_mounted(&at));
    (at, said)
}

/// The one line saying that `env`'s host is served through SFTP because
/// no agent can run there; returns the reason it gives.
fn fallback_line(env: &Env, said: &str) -> String {
    assert_eq!(said.lines().count(), 1, "exactly one line: {said}");
    let line = said.trim_end();
    eprintln!("{line}");
    let host = format!("{}@127.0.0.1", env.sshd.user());
    let reason = line
        .strip_prefix(&format!("yonder: cannot run an agent on {host}: "))
        .and_then(|rest| rest.strip_suffix("; using SFTP (see docs/sftp.md)"))
        .unwrap_or_else(|| panic!("the fallback line: {line}"));
    reason.to_string()
}

/// Files read and write through a mount at `at` of `env`'s tree.
fn reads_and_writes(env: &Env, at: &Path, name: &str) {
    assert_eq!(std::fs::read(at.join("hello")).unwrap(), b"hello\n");
    std::fs::write(at.join(name), b"written through the mount\n").unwrap();
    assert_eq!(
        std::fs::read(env.dir.path().join("tree").join(name)).unwrap(),
        b"written through the mount\n"
    );
    assert_eq!(
        std::fs::read(at.join(name)).unwrap(),
        b"written through the mount\n"
    );
}

/// The one connection's transport and fallback reason, as `yonder status`
/// gives them.
fn transport(env: &Env) -> (String, Option<String>) {
    let status = env.status();
    let connection = &status["connections"][0];
    (
        connection["transport"].as_str().unwrap().to_string(),
        connection["fallback"].as_str().map(str::to_string),
    )
}

#[test]
fn a_read_only_cache_falls_back_to_sftp_saying_why_once_and_reconnections_keep_it() {
    let env = Env::new();
    tmpfs_over(&env.remote_cache, "ro");
    let (at, said) = mount_saying(&env, "m1", &[]);
    let reason = fallback_line(&env, &said);
    assert!(
        reason.starts_with(&format!("cannot create {}/yonder/", env.remote_cache.display()))
            && reason.ends_with(": Read-only file system"),
        "{reason}"
    );
    assert_eq!(transport(&env), ("sftp".to_string(), Some(reason.clone())));
    assert_eq!(env.agent(), "none", "no agent runs there");
    reads_and_writes(&env, &at, "new-file");

    // A reconnection goes straight to SFTP: deployment is not tried again
    // (the manager's log says why once, at the first connection).
    env.ok(&["reconnect", "c1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !env.log().contains(": reconnected (attempt") {
        assert!(Instant::now() < deadline, "not reconnected: {}", env.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(transport(&env), ("sftp".to_string(), Some(reason.clone())));
    reads_and_writes(&env, &at, "after-reconnect");
    assert_eq!(
        env.log().matches("cannot run an agent on").count(),
        1,
        "said once: {}",
        env.log()
    );

    // A second mount of the same host shares the connection, and says nothing.
    let (second, said) = mount_saying(&env, "m2", &[]);
    assert_eq!(said, "", "the connection was made before");
    reads_and_writes(&env, &second, "second");
    env.ok(&["unmount", second.to_str().unwrap()]);
    env.unmount(&at);

    // `--no-deploy` (`-o no_deploy`, as in fstab) keeps the hint to install
    // yonder, and falls back to nothing.
    let err = env.ls_fails(&["--no-deploy"]);
    assert!(err.contains("not installed"), "{err}");
    let at = env.dir.path().join("m3");
    let source = env.source();
    let options = env.ssh_options();
    let mut args = vec!["mount", &source, at.to_str().unwrap(), "-o", "no_deploy"];
    args.extend(options.iter().map(String::as_str));
    let out = env.run(&args);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not installed") && !err.contains("SFTP"), "{err}");
}

#[test]
fn a_noexec_cache_falls_back_to_sftp_saying_why_once() {
    let env = Env::new();
    tmpfs_over(&env.remote_cache, "noexec");
    let (at, said) = mount_saying(&env, "m1", &[]);
    let reason = fallback_line(&env, &said);
    assert!(
        reason.starts_with("cannot run programs from") && reason.contains("noexec"),
        "{reason}"
    );
    assert_eq!(transport(&env), ("sftp".to_string(), Some(reason)));
    reads_and_writes(&env, &at, "new-file");
    env.unmount(&at);
    assert!(
        std::fs::read_dir(&env.remote_cache).unwrap().all(|e| {
            let dir = e.unwrap().path();
            walk_files(&dir).is_empty()
        }),
        "nothing is left in the cache"
    );

    // `yonder fs` says it the same way, once, and serves through SFTP.
    let source = env.source();
    let options = env.ssh_options();
    let mut args = vec!["fs"];
    args.extend(options.iter().map(String::as_str));
    args.extend(["cat", &source, "hello"]);
    let out = env.run(&args);
    let said = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{said}");
    fallback_line(&env, &said);
    assert_eq!(out.stdout, b"hello\n");
}

#[test]
fn a_foreground_mount_says_it_once_too() {
    use std::io::BufRead;
    let env = Env::new();
    tmpfs_over(&env.remote_cache, "noexec");
    let at = env.dir.path().join("fg");
    let stderr_path = env.dir.path().join("stderr");
    let source = env.source();
    let options = env.ssh_options();
    let mut args = vec!["mount", "--foreground", &source, at.to_str().unwrap()];
    args.extend(options.iter().map(String::as_str));
    let mut child = env
        .cmd(&args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim_end(), at.to_str().unwrap(), "mounted");
    reads_and_writes(&env, &at, "new-file");
    support::mount::signal(child.id(), libc::SIGTERM);
    wait_timeout(&mut child, Duration::from_secs(20)).expect("unmounted on SIGTERM");
    let said = std::fs::read_to_string(&stderr_path).unwrap();
    let lines: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("cannot run an agent"))
        .collect();
    assert_eq!(lines.len(), 1, "{said}");
    fallback_line(&env, lines[0]);
}

/// Every file below `dir`.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            files.extend(walk_files(&entry.unwrap().path()));
        }
    } else {
        files.push(dir.to_path_buf());
    }
    files
}

/// An sshd whose sessions' PATH starts with `bin` (made by `fill`).
fn env_with_path(fill: impl FnOnce(&Path)) -> (Env, tempfile::TempDir) {
    let bin = tempfile::Builder::new()
        .prefix("yonder-deploy-bin")
        .tempdir()
        .unwrap();
    fill(bin.path());
    let env = Env::with_sshd_config(&format!("SetEnv PATH={}:/usr/bin:/bin", bin.path().display()));
    (env, bin)
}

#[test]
fn yonder_on_the_path_is_used_and_one_of_another_protocol_is_passed_over() {
    let (env, _bin) =
        env_with_path(|bin| std::os::unix::fs::symlink(yonder_bin(), bin.join("yonder")).unwrap());
    let at = env.mount("m1");
    assert_eq!(env.agent(), "on-path");
    assert!(!env.remote_cache.join("yonder").exists(), "nothing was sent");
    env.unmount(&at);

    // A `yonder` that answers the handshake with another protocol version.
    use yonder_remote::proto::{encode_frame, Hello, Message, PROTOCOL_VERSION};
    let (env, _bin) = env_with_path(|bin| {
        let hello = Message::Hello(Hello {
            version: PROTOCOL_VERSION + 1,
            capabilities: Vec::new(),
            software: "yonder 9.9.9 agent".into(),
        });
        std::fs::write(bin.join("hello"), encode_frame(0, &hello).unwrap()).unwrap();
        let script = format!("#!/bin/sh\ncat {}\nsleep 10\n", bin.join("hello").display());
        std::fs::write(bin.join("yonder"), script).unwrap();
        std::fs::set_permissions(bin.join("yonder"), std::fs::Permissions::from_mode(0o755)).unwrap();
    });
    let at = env.mount("m1");
    assert_eq!(env.agent(), "deployed-uploaded");
    env.unmount(&at);
    let at = env.mount("m2");
    assert_eq!(env.agent(), "deployed-cached");
    env.unmount(&at);
}
