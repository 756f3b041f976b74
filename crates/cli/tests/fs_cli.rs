//! `yonder fs` end to end: the real binary, over a local source and over ssh.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use support::{yonder_bin, Transport};
use yonder_testkit::Sshd;

struct Cli {
    dir: tempfile::TempDir,
    source: String,
    ssh_args: Vec<String>,
    _sshd: Option<Sshd>,
}

impl Cli {
    fn new(t: Transport) -> Cli {
        let dir = tempfile::Builder::new().prefix("yonder-cli").tempdir().unwrap();
        let sshd = matches!(t, Transport::Ssh).then(|| Sshd::start().expect("start sshd"));
        let (source, options) = support::source_for(t, dir.path(), sshd.as_ref());
        let mut ssh_args = Vec::new();
        for o in options.ssh_options {
            ssh_args.push("-o".to_string());
            ssh_args.push(o);
        }
        if let Some(agent) = options.agent_path {
            ssh_args.push("--agent-path".into());
            ssh_args.push(agent);
        }
        Cli {
            dir,
            source,
            ssh_args,
            _sshd: sshd,
        }
    }

    fn disk(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let (cmd, rest) = args.split_first().unwrap();
        let mut child = Command::new(yonder_bin())
            .arg("fs")
            .args(&self.ssh_args)
            .arg(cmd)
            .arg(&self.source)
            .args(rest)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, b"")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "one-line error, got {err:?}");
        err
    }
}

fn commands_work_end_to_end(t: Transport) {
    let cli = Cli::new(t);
    let out = cli.run_with_input(&["put", "notes.txt"], b"first line\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(cli.disk("notes.txt")).unwrap(), b"first line\n");
    assert_eq!(cli.ok(&["cat", "notes.txt"]), "first line\n");

    cli.ok(&["mkdir", "-p", "a/b/c"]);
    assert!(cli.disk("a/b/c").is_dir());
    cli.ok(&["mkdir", "-p", "a/b"]);
    let local = cli.dir.path().join("local-copy");
    std::fs::write(&local, vec![7u8; 3_000_000]).unwrap();
    cli.ok(&["put", "a/b/big", local.to_str().unwrap()]);
    assert_eq!(std::fs::read(cli.disk("a/b/big")).unwrap(), vec![7u8; 3_000_000]);
    let fetched = cli.dir.path().join("fetched");
    cli.ok(&["get", "a/b/big", fetched.to_str().unwrap()]);
    assert_eq!(std::fs::read(&fetched).unwrap(), vec![7u8; 3_000_000]);

    assert_eq!(cli.ok(&["ls", "a"]), "b\n");
    let listing = cli.ok(&["ls", "-l", "a/b"]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rw") && l.contains("3000000") && l.ends_with(" big")),
        "{listing}"
    );
    assert!(
        listing.lines().any(|l| l.starts_with("d") && l.ends_with(" c")),
        "{listing}"
    );

    cli.ok(&["ln", "-s", "../notes.txt", "a/link"]);
    assert_eq!(
        std::fs::read_link(cli.disk("a/link")).unwrap().to_str().unwrap(),
        "../notes.txt"
    );
    assert!(cli.ok(&["ls", "-l", "a"]).contains("link -> ../notes.txt"));

    let json: serde_json::Value = serde_json::from_str(&cli.ok(&["ls", "--format", "json", "a"])).unwrap();
    let entries = json.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["name"], "link");
    assert_eq!(entries[1]["type"], "symlink");

    cli.ok(&["chmod", "600", "notes.txt"]);
    assert_eq!(
        std::fs::metadata(cli.disk("notes.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o600
    );
    let stat: serde_json::Value =
        serde_json::from_str(&cli.ok(&["stat", "--format", "json", "notes.txt"])).unwrap();
    assert_eq!(stat["mode"], "0600");
    assert_eq!(stat["size"], 11);
    assert_eq!(stat["type"], "file");
    assert!(stat["mtime"]["nsec"].is_u64());
    assert!(cli.ok(&["stat", "notes.txt"]).contains("Size: 11"));

    cli.ok(&["mv", "notes.txt", "a/moved.txt"]);
    assert!(!cli.disk("notes.txt").exists());
    assert_eq!(std::fs::read(cli.disk("a/moved.txt")).unwrap(), b"first line\n");

    cli.ok(&["rm", "a/moved.txt"]);
    assert!(!cli.disk("a/moved.txt").exists());
    cli.ok(&["rm", "-r", "a"]);
    assert!(!cli.disk("a").exists());
    cli.ok(&["rm", "-f", "never-existed"]);
}

fn errors_are_one_line_with_op_path_and_strerror(t: Transport) {
    let cli = Cli::new(t);
    std::fs::create_dir(cli.disk("d")).unwrap();
    std::fs::write(cli.disk("d/f"), b"").unwrap();
    assert_eq!(
        cli.fails(&["cat", "missing"]),
        "yonder: open missing: No such file or directory\n"
    );
    assert_eq!(
        cli.fails(&["stat", "nope/x"]),
        "yonder: lstat nope/x: No such file or directory\n"
    );
    assert_eq!(cli.fails(&["mkdir", "d"]), "yonder: mkdir d: File exists\n");
    assert_eq!(cli.fails(&["rm", "d"]), "yonder: rm d: Is a directory\n");
    assert!(cli.fails(&["rm", "../x"]).contains("Permission denied"));
    assert!(cli.fails(&["chmod", "9z", "d"]).contains("invalid mode"));
    assert!(cli.disk("d/f").exists());
}

#[test]
fn local_commands_work_end_to_end() {
    commands_work_end_to_end(Transport::Local)
}

#[test]
fn ssh_commands_work_end_to_end() {
    commands_work_end_to_end(Transport::Ssh)
}

#[test]
fn local_errors_are_one_line() {
    errors_are_one_line_with_op_path_and_strerror(Transport::Local)
}

#[test]
fn ssh_errors_are_one_line() {
    errors_are_one_line_with_op_path_and_strerror(Transport::Ssh)
}

#[test]
fn bad_sources_fail_with_one_line_before_connecting() {
    let run = |args: &[&str]| {
        let out = Command::new(yonder_bin())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    for hostile in [
        "-oProxyCommand=true:/srv",
        "ssh://-oProxyCommand=true/srv",
        "-lroot@host:/",
    ] {
        let err = run(&["fs", "ls", "--", hostile]);
        assert!(err.contains("may not begin with '-'"), "{hostile}: {err}");
    }
    let err = run(&["fs", "ls", "/definitely/not/here"]);
    assert_eq!(
        err,
        "yonder: connect /definitely/not/here: No such file or directory\n"
    );
    let err = run(&[
        "fs",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=2",
        "ls",
        "nosuchhost.invalid:/",
    ]);
    assert!(
        err.starts_with("yonder: connect ssh://nosuchhost.invalid/"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `yonder fs ls` of `root` over ssh to a fresh sshd, expected to fail
/// before connecting: returns the SOURCE and the one-line error.
fn failed_ssh_ls(root: &std::path::Path, agent_path: Option<&str>) -> (String, String) {
    let sshd = Sshd::start().expect("start sshd");
    let (source, options) = support::source_for(Transport::Ssh, root, Some(&sshd));
    let mut cmd = Command::new(yonder_bin());
    cmd.arg("fs");
    for o in options.ssh_options {
        cmd.args(["-o", &o]);
    }
    let agent = agent_path.map(str::to_string).or(options.agent_path).unwrap();
    let out = cmd
        .args(["--agent-path", &agent, "ls", &source])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("yonder: connect {source}: ")), "{err}");
    (source, err)
}

#[test]
fn ssh_missing_remote_path_fails_naming_it() {
    let missing = std::path::Path::new("/nonexistent/yonder-test-root");
    let (_, err) = failed_ssh_ls(missing, None);
    assert!(
        err.contains("/nonexistent/yonder-test-root") && err.contains("No such file or directory"),
        "{err}"
    );
}

#[test]
fn ssh_without_yonder_on_the_remote_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, err) = failed_ssh_ls(dir.path(), Some("/nonexistent/bin/yonder"));
    assert!(
        err.contains("not installed") && err.contains("--agent-path"),
        "{err}"
    );
}

/// `ls -l` as ls prints it: owner and group names where they resolve on
/// this machine (numbers where not), `Nov 29 17:05` for the last six
/// months and `Jan  2  2020` for older or future times, in columns.
#[test]
fn ls_long_reads_like_ls() {
    assert!(
        rustix::process::geteuid().is_root(),
        "ls_long_reads_like_ls gives a file to an unnamed user: run it as root"
    );
    let dir = tempfile::Builder::new().prefix("yonder-cli").tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let files = [
        ("recent", now - 3600, "%b %e %H:%M"),
        ("oldone", 1_577_966_400, "%b %e  %Y"),
        ("future", now + 30 * 86400, "%b %e  %Y"),
        ("nobody", now - 60, "%b %e %H:%M"),
    ];
    for (name, mtime, _) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, b"12345").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let touched = Command::new("touch")
            .arg("-d")
            .arg(format!("@{mtime}"))
            .arg(&path)
            .status()
            .unwrap();
        assert!(touched.success());
    }
    std::os::unix::fs::chown(dir.path().join("nobody"), Some(54321), Some(54321)).unwrap();
    let out = Command::new(yonder_bin())
        .args(["fs", "ls", "-l"])
        .arg(dir.path())
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8(out.stdout).unwrap();
    let root = "root  root ";
    for (name, mtime, format) in files {
        let date = Command::new("date")
            .args(["-u", "-d", &format!("@{mtime}"), &format!("+{format}")])
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        let date = String::from_utf8(date.stdout).unwrap();
        let owner = if name == "nobody" { "54321 54321" } else { root };
        let expect = format!("-rw-r--r-- 1 {owner} 5 {} {name}", date.trim_end());
        assert!(
            listing.lines().any(|l| l == expect),
            "no line {expect:?} in\n{listing}"
        );
    }
}

/// What a new user meets: `fs` takes its options after the subcommand
/// too, `--help` says what SOURCE and PATH are, reading a directory names
/// the path, and `stat` prints dates as stat(1) does.
#[test]
fn ssh_options_after_the_subcommand_help_paths_and_dates() {
    let cli = Cli::new(Transport::Ssh);
    std::fs::create_dir(cli.disk("dir")).unwrap();
    std::fs::write(cli.disk("notes.txt"), b"x").unwrap();
    let out = Command::new(yonder_bin())
        .args(["fs", "ls"])
        .args(&cli.ssh_args)
        .arg(&cli.source)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "dir\nnotes.txt\n");

    let help = Command::new(yonder_bin())
        .args(["fs", "ls", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for arg in ["<SOURCE>", "[PATH]"] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(arg))
            .unwrap_or("");
        assert!(line.len() > arg.len() + 4, "{arg} undescribed:\n{help}");
    }

    let err = cli.fails(&["get", "dir"]);
    assert_eq!(err, "yonder: read /dir: Is a directory\n");

    let stat = cli.ok(&["stat", "notes.txt"]);
    let modify = stat.lines().find_map(|l| l.strip_prefix("Modify: ")).unwrap();
    let expect = Command::new("stat")
        .args(["-c", "%y"])
        .arg(cli.disk("notes.txt"))
        .output()
        .unwrap();
    assert_eq!(modify, String::from_utf8(expect.stdout).unwrap().trim_end());
}
