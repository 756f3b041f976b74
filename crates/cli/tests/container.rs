//! Containers as a source, for real: `podman://CONTAINER[/PATH]` (and
//! `docker://` through `--docker-command podman`, the Docker client's
//! command line, as no Docker engine runs here) against a running podman
//! container whose image is busybox and the C libraries yonder needs, no
//! `yonder`: it gets the agent copied in once (`podman cp`), every later
//! connection finds it, files read and write through a mount, and a
//! container that does not exist fails in one line.
//!
//! Needs podman, runc and busybox-static (`./x setup` installs them), and
//! root (mounts through the manager). Containers run with runc and with
//! resource limits no higher than this process's: crun refuses a host with
//! hybrid cgroups, and raising a limit needs CAP_SYS_RESOURCE.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::mount::{is_mounted, wait_timeout};
use support::yonder_bin;

/// The image every test's container runs: busybox, the libraries the
/// yonder binary links to, OpenSSH's sftp-server, and no yonder.
const IMAGE: &str = "localhost/yonder-test-busybox:latest";

/// This machine's sftp-server (the test sshd's package has it).
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

fn podman(args: &[&str]) -> Output {
    let output = Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("podman {args:?}: {e} (./x setup installs podman)"));
    assert!(
        output.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Builds [`IMAGE`] once per test process (from a root tree imported as a
/// tar: no registry is needed).
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = tempfile::tempdir().unwrap();
        let at = |p: &str| root.path().join(p);
        for dir in ["bin", "tmp", "root", "etc", "data"] {
            std::fs::create_dir_all(at(dir)).unwrap();
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox (./x setup installs busybox-static)");
        std::fs::copy(busybox, at("bin/busybox")).unwrap();
        for tool in [
            "sh",
            "cat",
            "head",
            "gzip",
            "sha256sum",
            "mkdir",
            "chmod",
            "mv",
            "rm",
            "uname",
            "test",
            "wc",
            "printf",
            "sleep",
            "ls",
            "stat",
        ] {
            std::os::unix::fs::symlink("busybox", at(&format!("bin/{tool}"))).unwrap();
        }
        // OpenSSH's sftp-server (where Debian keeps it), what a container
        // where no agent can run falls back to.
        std::fs::create_dir_all(at("usr/lib/openssh")).unwrap();
        std::fs::copy(SFTP_SERVER, at("usr/lib/openssh/sftp-server")).expect(SFTP_SERVER);
        // The libraries `ldd` names, at the same paths.
        for program in [yonder_bin(), PathBuf::from(SFTP_SERVER)] {
            let ldd = Command::new("ldd").arg(program).output().unwrap();
            for word in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
                if word.starts_with('/') && Path::new(word).exists() {
                    let inside = at(word.trim_start_matches('/'));
                    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
                    std::fs::copy(word, &inside).unwrap();
                }
            }
        }
        std::fs::write(at("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        let tar = root.path().with_extension("tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(root.path())
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        podman(&["import", tar.to_str().unwrap(), IMAGE]);
        let _ = std::fs::remove_file(&tar);
    });
    IMAGE
}

/// A running container of [`IMAGE`], removed when dropped, and a manager
/// environment of its own.
struct Container {
    name: String,
    dir: tempfile::TempDir,
}

impl Container {
    fn start() -> Container {
        let image = image();
        let dir = tempfile::Builder::new()
            .prefix("yonder-container")
            .tempdir()
            .unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let name = format!(
            "yonder-test-{}-{}",
            std::process::id(),
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace(['.', '_'], "")
        );
        podman(&[
            "--runtime",
            "runc",
            "run",
            "-d",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1000:1000",
            "--name",
            &name,
            image,
            "/bin/sleep",
            "1000000",
        ]);
        let container = Container { name, dir };
        container.exec(&["sh", "-c", "echo hello > /data/hello"]);
        container
    }

    fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["exec", &self.name];
        all.extend_from_slice(args);
        String::from_utf8(podman(&all).stdout).unwrap()
    }

    fn source(&self, scheme: &str) -> String {
        format!("{scheme}://{}/data", self.name)
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
            std::fs::read_to_string(self.dir.path().join("state/yonder/manager.log")).unwrap_or_default()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// How the agent of the one connection got there.
    fn agent(&self) -> String {
        let status: Value = serde_json::from_str(&self.ok(&["status", "--format", "json"])).unwrap();
        let connections = status["connections"].as_array().unwrap();
        assert_eq!(connections.len(), 1, "{status}");
        connections[0]["agent"].as_str().unwrap_or("none").to_string()
    }

    fn mount(&self, name: &str, extra: &[&str]) -> PathBuf {
        let at = self.dir.path().join(name);
        let source = self.source("podman");
        let mut args = vec!["mount", &source, at.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.ok(&args);
        assert!(is_mounted(&at));
        at
    }

    fn unmount(&self, at: &Path) {
        self.ok(&["unmount", at.to_str().unwrap()]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status: Value = serde_json::from_str(&self.ok(&["status", "--format", "json"])).unwrap();
            if status["connections"].as_array().unwrap().is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "the connection stayed: {status}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The files of the one deployed agent's directory in the container.
    fn cached_agent(&self) -> Vec<String> {
        let listing = self.exec(&["sh", "-c", "ls -A /root/.cache/yonder/*/"]);
        listing.split_whitespace().map(str::to_string).collect()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.run(&["manager", "stop"]);
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let ours = self.dir.path().display().to_string();
        for line in info.lines() {
            if let Some(at) = line.split(' ').nth(4).filter(|at| at.starts_with(&ours)) {
                let _ = Command::new("umount").args(["-l", at]).status();
            }
        }
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn a_container_without_yonder_gets_it_copied_once_and_later_connections_reuse_it() {
    let c = Container::start();
    assert!(
        c.exec(&["sh", "-c", "command -v yonder || echo none"]).trim() == "none",
        "the image has no yonder"
    );
    let at = c.mount("m1", &[]);
    assert_eq!(c.agent(), "deployed-uploaded");
    assert_eq!(c.cached_agent(), ["sum", "yonder"], "no temporary file is left");
    assert_eq!(std::fs::read(at.join("hello")).unwrap(), b"hello\n");
    std::fs::write(at.join("new"), b"written through the mount\n").unwrap();
    assert_eq!(c.exec(&["cat", "/data/new"]), "written through the mount\n");
    std::fs::create_dir(at.join("dir")).unwrap();
    std::fs::rename(at.join("new"), at.join("dir/moved")).unwrap();
    assert_eq!(c.exec(&["cat", "/data/dir/moved"]), "written through the mount\n");

    // A reconnection finds it in the container's cache.
    c.ok(&["reconnect", "c1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status: Value = serde_json::from_str(&c.ok(&["status", "--format", "json"])).unwrap();
        let connection = &status["connections"][0];
        if connection["state"] == "connected" && connection["agent"] == "deployed-cached" {
            break;
        }
        assert!(Instant::now() < deadline, "not reconnected: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read(at.join("dir/moved")).unwrap(),
        b"written through the mount\n"
    );

    // So does a new connection: nothing is copied again.
    let stamp = |c: &Container| c.exec(&["sh", "-c", "stat -c '%i %y' /root/.cache/yonder/*/yonder"]);
    let before = stamp(&c);
    c.unmount(&at);
    let at = c.mount("m2", &[]);
    assert_eq!(c.agent(), "deployed-cached");
    assert_eq!(stamp(&c), before, "the copy in the container was not rewritten");
    assert_eq!(std::fs::read(at.join("hello")).unwrap(), b"hello\n");
    c.unmount(&at);
}

#[test]
fn a_damaged_copy_in_the_container_is_replaced() {
    let c = Container::start();
    let at = c.mount("m1", &[]);
    assert_eq!(c.agent(), "deployed-uploaded");
    c.unmount(&at);
    // Cut short, as by a full disk: the same size check fails.
    c.exec(&[
        "sh",
        "-c",
        "f=$(ls /root/.cache/yonder/*/yonder); head -c 4096 $f > $f.cut && mv $f.cut $f && chmod 755 $f",
    ]);
    let at = c.mount("m2", &[]);
    assert_eq!(c.agent(), "deployed-uploaded", "sent again");
    assert_eq!(c.cached_agent(), ["sum", "yonder"], "no temporary file is left");
    assert_eq!(std::fs::read(at.join("hello")).unwrap(), b"hello\n");
    c.unmount(&at);
    let at = c.mount("m3", &[]);
    assert_eq!(c.agent(), "deployed-cached", "the new copy is whole");
    c.unmount(&at);
}

#[test]
fn the_docker_client_command_line_reaches_a_container_too() {
    let c = Container::start();
    // No Docker engine runs here; podman takes the Docker client's command
    // line (`exec -i`, `cp`), so `docker://` is run through it.
    let source = c.source("docker");
    let out = c.ok(&["fs", "--docker-command", "podman", "cat", &source, "hello"]);
    assert_eq!(out, "hello\n");
    let out = c.ok(&["fs", "--docker-command", "podman", "ls", &source]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["hello"]);
    assert_eq!(c.cached_agent(), ["sum", "yonder"]);

    // With --no-deploy, a container without yonder is refused in one line.
    let other = Container::start();
    let source = other.source("docker");
    let out = other.run(&["fs", "--docker-command", "podman", "--no-deploy", "ls", &source]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("yonder: connect {source}: ")), "{err}");
}

#[test]
fn a_container_that_does_not_exist_fails_in_one_line() {
    let c = Container::start();
    let missing = format!("podman://{}-missing/data", c.name);
    let at = c.dir.path().join("m");
    for args in [
        vec!["fs", "ls", missing.as_str()],
        vec!["mount", missing.as_str(), at.to_str().unwrap()],
    ] {
        let started = Instant::now();
        let out = c.run(&args);
        let err = String::from_utf8(out.stderr).unwrap();
        eprintln!("yonder {args:?}: {err}");
        assert!(!out.status.success(), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&missing) && err.contains("no such container"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "at once, no hang");
    }
    // A client that is not installed says so, too.
    let out = c.run(&[
        "fs",
        "--docker-command",
        "no-such-client-xyz",
        "ls",
        &c.source("docker"),
    ]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot run no-such-client-xyz"), "{err}");
}

#[test]
fn a_copy_that_cannot_run_there_is_refused_in_one_line_and_not_kept() {
    let c = Container::start();
    // Without its dynamic loader the container runs busybox (static) but
    // neither this build nor sftp-server.
    c.exec(&["sh", "-c", "rm /lib64/ld-linux-x86-64.so.2"]);
    let out = c.run(&["fs", "ls", &c.source("podman")]);
    let err = String::from_utf8(out.stderr).unwrap();
    eprintln!("{err}");
    assert!(!out.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("cannot deploy the agent there (this build does not run there"),
        "{err}"
    );
    assert!(err.contains("and SFTP failed too: "), "{err}");
    let left = c.exec(&["sh", "-c", "ls -A /root/.cache/yonder/*/ 2>/dev/null; true"]);
    assert_eq!(left.trim(), "", "nothing is left in the cache");
}

#[test]
fn a_container_where_no_agent_can_run_is_served_by_its_sftp_server() {
    let c = Container::start();
    // The cache directory cannot be made: a file stands where it goes.
    c.exec(&["sh", "-c", "rm -rf /root/.cache && echo x > /root/.cache"]);
    let source = c.source("podman");
    let at = c.dir.path().join("m");
    let out = c.run(&["mount", &source, at.to_str().unwrap()]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "said once, in one line: {err}");
    assert!(
        err.starts_with(&format!(
            "yonder: cannot run an agent on podman://{}: cannot create /root/.cache/yonder/",
            c.name
        )),
        "{err}"
    );
    assert!(
        err.trim_end().ends_with("; using SFTP (see docs/sftp.md)"),
        "{err}"
    );
    let status: Value = serde_json::from_str(&c.ok(&["status", "--format", "json"])).unwrap();
    assert_eq!(status["connections"][0]["transport"], "sftp", "{status}");

    assert_eq!(std::fs::read(at.join("hello")).unwrap(), b"hello\n");
    std::fs::write(at.join("new"), b"written through sftp-server\n").unwrap();
    std::fs::create_dir(at.join("dir")).unwrap();
    std::fs::rename(at.join("new"), at.join("dir/moved")).unwrap();
    assert_eq!(
        c.exec(&["cat", "/data/dir/moved"]),
        "written through sftp-server\n"
    );
    let names: Vec<String> = std::fs::read_dir(&at)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // `--sftp` asks for it directly, with nothing said.
    let out = c.run(&["fs", "--sftp", "cat", &source, "dir/moved"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"written through sftp-server\n");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    c.unmount(&at);
}

#[test]
fn fstab_options_name_the_container_client() {
    let c = Container::start();
    // `docker://` run through podman, named as an fstab line would.
    let source = c.source("docker");
    let at = c.dir.path().join("m");
    std::fs::create_dir(&at).unwrap();
    c.ok(&[
        &source,
        at.to_str().unwrap(),
        "-o",
        "docker_command=podman,noatime",
    ]);
    assert!(is_mounted(&at));
    assert_eq!(std::fs::read(at.join("hello")).unwrap(), b"hello\n");
    let out = Command::new("umount").arg(&at).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
