//! What a new user meets first: a failed mount that cleans up after
//! itself, a clear word about a mount point already in use, logs without
//! colour codes in files and pipes, and shell completions.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

mod support;

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::mount::{is_mounted, wait_timeout, Mount};
use support::{yonder_bin, Frontend, Transport, Variant};

const LOCAL: Variant = Variant {
    frontend: Frontend::Fuse,
    transport: Transport::Local,
};

/// A private manager environment (runtime and state directories) for
/// commands that may start the manager; the manager, if one started, is
/// stopped when this is dropped.
struct Manager(tempfile::TempDir);

impl Manager {
    fn new() -> Manager {
        let dir = tempfile::Builder::new()
            .prefix("yonder-manager")
            .tempdir()
            .unwrap();
        let run = dir.path().join("run");
        fs::create_dir(&run).unwrap();
        fs::set_permissions(&run, fs::Permissions::from_mode(0o700)).unwrap();
        Manager(dir)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(yonder_bin());
        cmd.env("XDG_RUNTIME_DIR", self.0.path().join("run"))
            .env("XDG_STATE_HOME", self.0.path().join("state"))
            .env_remove("YONDER_MANAGER_SOCKET");
        cmd
    }

    /// Runs `yonder ARGS` that must fail within 30 s; returns its stderr.
    fn fails(&self, args: &[&OsStr]) -> String {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("yonder hung");
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
        err
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self
            .command()
            .args(["manager", "stop"])
            .stdin(Stdio::null())
            .output();
    }
}

/// A mount that fails to connect removes the mount point it created (and
/// the parents it created for it), but never one that was there before:
/// through the manager and in the foreground.
#[test]
fn failed_mount_removes_the_mount_point_it_created() {
    let manager = Manager::new();
    for mode in [&["--foreground"][..], &[]] {
        let mount = |source: &OsStr, mountpoint: &OsStr, extra: &[&str]| {
            let mut args: Vec<&OsStr> = vec!["mount".as_ref()];
            args.extend(mode.iter().chain(extra).map(OsStr::new));
            args.extend([source, mountpoint]);
            manager.fails(&args)
        };
        let parent = tempfile::Builder::new().prefix("yonder-mnt").tempdir().unwrap();
        let created = parent.path().join("made");
        let mountpoint = created.join("by").join("yonder");
        let missing = parent.path().join("no such source");
        let err = mount(missing.as_os_str(), mountpoint.as_os_str(), &[]);
        assert!(err.contains("No such file or directory"), "{mode:?}: {err}");
        assert!(!created.exists(), "{mode:?}: {} left behind", created.display());
        assert!(parent.path().is_dir());

        // Over ssh: a host that cannot be reached.
        let err = mount(
            "root@127.0.0.1:/srv".as_ref(),
            mountpoint.as_os_str(),
            &["--ssh-command", "false"],
        );
        assert!(err.contains("connect ssh://root@127.0.0.1/"), "{mode:?}: {err}");
        assert!(err.contains("/srv"), "{mode:?}: names the path asked for: {err}");
        assert!(!created.exists(), "{mode:?}: {} left behind", created.display());

        // A mount point that existed stays.
        fs::create_dir(&created).unwrap();
        mount(missing.as_os_str(), created.as_os_str(), &[]);
        assert!(created.is_dir(), "{mode:?}");
    }
}

/// Mounting where something is mounted already names what is mounted
/// there, instead of calling the mount point "not empty".
#[test]
fn mounting_on_a_live_mount_point_says_what_is_mounted_there() {
    let manager = Manager::new();
    let m = Mount::start(LOCAL, &[]);
    let other = tempfile::tempdir().unwrap();
    let expect = format!(
        "yonder: {} is already a mount point (fuse.yonder from {}); unmount it first",
        m.mountpoint.display(),
        m.backing.path().display()
    );
    for mode in [&["--foreground"][..], &[]] {
        let mut args: Vec<&OsStr> = vec!["mount".as_ref()];
        args.extend(mode.iter().map(OsStr::new));
        args.extend([other.path().as_os_str(), m.mountpoint.as_os_str()]);
        let err = manager.fails(&args);
        assert_eq!(err.trim_end(), expect, "{mode:?}");
        assert!(is_mounted(&m.mountpoint));
        assert!(m.at("").read_dir().is_ok(), "the first mount still serves");
    }
}

/// Logs carry colour codes only on a terminal, and never with NO_COLOR.
#[test]
fn logs_are_coloured_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), b"x").unwrap();
    let ls = format!("{} fs ls {}", yonder_bin().display(), dir.path().display());
    let run = |no_color: Option<&str>, terminal: bool| {
        let mut cmd = if terminal {
            // script(1) gives the command a pseudo-terminal.
            let mut cmd = Command::new("script");
            cmd.args(["-qec", &ls, "/dev/null"]);
            cmd
        } else {
            let mut cmd = Command::new(yonder_bin());
            cmd.args(["fs", "ls"]).arg(dir.path());
            cmd
        };
        cmd.env("YONDER_LOG", "debug").env_remove("NO_COLOR");
        if let Some(value) = no_color {
            cmd.env("NO_COLOR", value);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        // On the terminal, stdout and stderr are one stream.
        let logs = if terminal { out.stdout } else { out.stderr };
        assert!(
            String::from_utf8_lossy(&logs).contains("DEBUG"),
            "no log lines: {}",
            String::from_utf8_lossy(&logs)
        );
        logs.contains(&0x1b)
    };
    assert!(!run(None, false), "colour codes in a pipe");
    assert!(!run(Some("1"), false));
    assert!(run(None, true), "no colour on a terminal");
    assert!(run(Some(""), true), "an empty NO_COLOR does not count");
    assert!(!run(Some("1"), true), "colour codes despite NO_COLOR");
}

/// A reader that goes away (`yonder ... 2>&1 | head -1`) must not stop the
/// command: a failed log write used to panic the task that logged.
#[test]
fn logging_into_a_closed_pipe_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), b"x").unwrap();
    let mut child = Command::new(yonder_bin())
        .args(["fs", "ls"])
        .arg(dir.path())
        .env("YONDER_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("DEBUG"), "{first}");
    // The stderr pipe's read end is closed here.
    let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("yonder fs ls hung");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(out, "f\n");
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(yonder_bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("mount") && text.contains("unmount"),
            "{shell}: {text}"
        );
        if shell == "bash" {
            let script = tempfile::NamedTempFile::new().unwrap();
            fs::write(script.path(), &text).unwrap();
            let check = Command::new("bash")
                .arg("-n")
                .arg(script.path())
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "bash -n: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
    let out = Command::new(yonder_bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Every entry point reads `-o` with one parser, before connecting, and
/// answers in one line: an sshfs option yonder does without is named as
/// such, a kernel flag fusermount3 does not take is refused by name, and
/// one that changes nothing here is accepted instead of failing in
/// fusermount3.
#[test]
fn mount_options_are_read_alike_everywhere_before_connecting() {
    let manager = Manager::new();
    let parent = tempfile::Builder::new().prefix("yonder-mnt").tempdir().unwrap();
    let mountpoint = parent.path().join("m");
    let mountpoint = mountpoint.to_str().unwrap();
    // An ssh that cannot connect: an option error must come first.
    let unreachable = ["--ssh-command", "false", "root@127.0.0.1:/srv"];
    let forms: [&[&str]; 3] = [&["mount", "--foreground"], &["mount"], &[]];
    for form in forms {
        for (option, expect) in [
            (
                "reconnect",
                "mount option reconnect: an sshfs option yonder does without: yonder always reconnects",
            ),
            ("follow_symlinks", "mount option follow_symlinks: an sshfs option"),
            (
                "nosymfollow",
                "mount option nosymfollow: a kernel mount flag fusermount3 does not take",
            ),
        ] {
            let mut args: Vec<&str> = form.to_vec();
            if form.is_empty() {
                // The helper form (mount.fuse3's): SOURCE MOUNTPOINT -o ...
                args.extend([
                    unreachable[2],
                    mountpoint,
                    "-o",
                    option,
                    "-o",
                    "ssh_command=false",
                ]);
            } else {
                args.extend(["-o", option]);
                args.extend(unreachable);
                args.push(mountpoint);
            }
            let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
            let err = manager.fails(&args);
            assert!(err.contains(expect), "{form:?} -o {option}: {err}");
            assert!(!Path::new(mountpoint).exists(), "{form:?}: mount point left");
        }
    }

    // Access-time policies belong to the remote: accepted, not passed on.
    let backing = tempfile::tempdir().unwrap();
    fs::write(backing.path().join("f"), b"x").unwrap();
    let out = manager
        .command()
        .args(["mount", "-o", "nodiratime,relatime,noexec"])
        .arg(backing.path())
        .arg(mountpoint)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let flags = fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(mountpoint))
        .map(|l| l.split(' ').nth(3).unwrap().to_string())
        .expect("mounted");
    assert!(flags.split(',').any(|f| f == "noexec"), "{flags}");
    assert_eq!(fs::read(Path::new(mountpoint).join("f")).unwrap(), b"x");
    let out = manager
        .command()
        .args(["unmount", mountpoint])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `yonder connect me@host` (no colon) is a local path that does not
/// exist: refused in one line with the form that works, never a `local`
/// connection; and so for `mount` and `fs`.
#[test]
fn a_host_without_a_colon_is_refused_with_the_form_that_works() {
    let manager = Manager::new();
    let parent = tempfile::Builder::new().prefix("yonder-mnt").tempdir().unwrap();
    let mountpoint = parent.path().join("m");
    let mountpoint = mountpoint.to_str().unwrap();
    for host in ["me@nonexistent-host-xyz", "nonexistent-host-xyz"] {
        let hint = format!("write {host}: (its home) or {host}:/PATH");
        let forms: [&[&str]; 4] = [
            &["connect", host],
            &["mount", host, mountpoint],
            &["mount", "--foreground", host, mountpoint],
            &["fs", "ls", host],
        ];
        for args in forms {
            let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
            let err = manager.fails(&args);
            assert!(err.contains(&hint), "{args:?}: {err}");
            assert!(!Path::new(mountpoint).exists(), "{args:?}: mount point left");
        }
    }
    let err = manager.fails(&["connect".as_ref(), "/no/such/dir".as_ref()]);
    assert!(
        err.contains("connect /no/such/dir: No such file or directory"),
        "{err}"
    );
    let out = manager
        .command()
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    let status = String::from_utf8(out.stdout).unwrap();
    assert!(status.contains("\"connections\": []"), "{status}");
}

/// A managed mount is unmounted by its mount point given relative to the
/// current directory, in every spelling, with the same answer as by id
/// when it is busy.
#[test]
fn unmount_takes_a_relative_mount_point() {
    let manager = Manager::new();
    let backing = tempfile::tempdir().unwrap();
    fs::write(backing.path().join("f"), b"x").unwrap();
    let parent = tempfile::Builder::new().prefix("yonder-mnt").tempdir().unwrap();
    let mnt = parent.path().join("mnt");
    let run = |dir: &Path, args: &[&str]| {
        let out = manager
            .command()
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let mount = || {
        let (ok, err) = run(
            parent.path(),
            &["mount", backing.path().to_str().unwrap(), "mnt/a"],
        );
        assert!(ok, "{err}");
        assert!(is_mounted(&mnt.join("a")));
    };
    mount();
    let open = fs::File::open(mnt.join("a/f")).unwrap();
    let (ok, busy) = run(parent.path(), &["unmount", "mnt/a"]);
    assert!(!ok);
    assert!(busy.contains("is busy"), "{busy}");
    assert!(!busy.contains("no mount"), "{busy}");
    drop(open);
    for (dir, target) in [
        (parent.path(), "mnt/a"),
        (parent.path(), "./mnt/a"),
        (mnt.as_path(), "a"),
    ] {
        let (ok, err) = run(dir, &["unmount", target]);
        assert!(ok, "{target} from {}: {err}", dir.display());
        assert!(!is_mounted(&mnt.join("a")), "{target}");
        mount();
    }
    let (ok, err) = run(&mnt, &["unmount", "a"]);
    assert!(ok, "{err}");
}

/// Ctrl+C in a terminal signals the whole foreground process group: the
/// agent process (ssh, or the local agent) as well as `yonder mount`. It
/// is a shutdown, not a lost connection: nothing reports one or
/// reconnects, and files still open are served over the same connection
/// until they are closed.
#[test]
fn ctrl_c_is_a_shutdown_not_a_lost_connection() {
    use std::os::unix::process::CommandExt as _;
    for transport in [Transport::Local, Transport::Ssh] {
        let backing = tempfile::tempdir().unwrap();
        fs::write(backing.path().join("f"), b"still here").unwrap();
        let parent = tempfile::Builder::new().prefix("yonder-mnt").tempdir().unwrap();
        let mountpoint = parent.path().join("m");
        let sshd = (transport == Transport::Ssh).then(|| yonder_testkit::Sshd::start().unwrap());
        let (source, options) = support::source_for(transport, backing.path(), sshd.as_ref());
        let mut cmd = Command::new(yonder_bin());
        cmd.args(["mount", "--foreground"]);
        for option in &options.ssh_options {
            cmd.args(["-o", option]);
        }
        if let Some(agent) = &options.agent_path {
            cmd.args(["--agent-path", agent]);
        }
        // A process group of its own, as a shell gives a job: the
        // terminal's Ctrl+C goes to the whole group.
        let mut child = cmd
            .arg(&source)
            .arg(&mountpoint)
            .env("YONDER_LOG", "info")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim_end(), mountpoint.to_str().unwrap(), "{transport:?}");
        let mut open = fs::File::open(mountpoint.join("f")).unwrap();
        // SAFETY: kill(2) on the process group of the child just started.
        assert_eq!(unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) }, 0);
        // Detached at once; the open file is still served.
        let detached = (0..500).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !is_mounted(&mountpoint)
        });
        assert!(detached, "{transport:?}: still mounted");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut open, &mut text).unwrap();
        assert_eq!(text, "still here", "{transport:?}");
        drop(open);
        let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("yonder mount hung");
        let mut log = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
        assert!(status.success(), "{transport:?}: {status}: {log}");
        assert!(log.contains("SIGINT: unmounting"), "{transport:?}: {log}");
        for lost in ["connection lost", "reconnecting"] {
            assert!(!log.contains(lost), "{transport:?}: {lost}: {log}");
        }
    }
}

/// Ctrl+C while ssh is still connecting (at its password prompt, say)
/// gives up at once: ssh ends, and the mount point `yonder mount` made
/// goes, as for a mount that failed.
#[test]
fn ctrl_c_while_connecting_leaves_nothing_behind() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    let parent = tempfile::Builder::new().prefix("yonder-mnt").tempdir().unwrap();
    let created = parent.path().join("made");
    let mountpoint = created.join("m");
    // An ssh that never answers, as one waiting at a prompt does.
    let pid_file = parent.path().join("ssh.pid");
    let ssh = parent.path().join("slow-ssh");
    fs::write(
        &ssh,
        format!("#!/bin/sh\necho $$ > '{}'\nexec sleep 60\n", pid_file.display()),
    )
    .unwrap();
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = Command::new(yonder_bin())
        .args(["mount", "--foreground", "--ssh-command"])
        .arg(&ssh)
        .arg("root@127.0.0.1:/srv")
        .arg(&mountpoint)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))
    });
    assert!(started, "the ssh command never ran");
    let ssh_pid: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(created.is_dir(), "the mount point is made before connecting");
    // SAFETY: kill(2) on the process group of the child just started.
    assert_eq!(unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) }, 0);
    let status = wait_timeout(&mut child, Duration::from_secs(10)).expect("yonder mount hung at Ctrl+C");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(log.contains("SIGINT before"), "{log}");
    assert!(!created.exists(), "{} left behind: {log}", created.display());
    // The ssh ends with the attempt (a zombie until reaped counts as ended).
    let ended = (0..250).any(|_| {
        let state = fs::read_to_string(format!("/proc/{ssh_pid}/stat")).unwrap_or_default();
        let ended = state.is_empty() || state.rsplit(") ").next().is_some_and(|s| s.starts_with('Z'));
        ended || {
            std::thread::sleep(Duration::from_millis(20));
            false
        }
    });
    assert!(ended, "the ssh command outlived the attempt");
}

/// `yonder connect -o` is read by the same parser as a mount's options:
/// sshfs's and a mount's own words are refused in one line, a
/// connection's settings are taken.
#[test]
fn connect_reads_options_as_mount_does() {
    let manager = Manager::new();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    for (option, expect) in [
        (
            "reconnect",
            "mount option reconnect: an sshfs option yonder does without",
        ),
        ("ro", "option ro: a mount's, not a connection's"),
        ("noexec", "option noexec: a mount's, not a connection's"),
    ] {
        let err = manager.fails(&["connect".as_ref(), "-o".as_ref(), option.as_ref(), dir.as_ref()]);
        assert!(err.contains(expect), "{option}: {err}");
    }
    let out = manager
        .command()
        .args(["connect", "-o", "heartbeat=2,IdentityFile=/k,_netdev", dir])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "c1\n");
}
