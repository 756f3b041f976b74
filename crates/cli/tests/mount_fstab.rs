//! Mounts that start outside a shell: an /etc/fstab line of type
//! `fuse.yonder`, mounted by mount(8) through mount.fuse3, which runs
//! `yonder SOURCE MOUNTPOINT -o OPTIONS`; and that helper form run directly.
//! As root: mount(8) with a private fstab, and mount namespaces.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::mount::{is_mounted, wait_timeout};
use support::yonder_bin;
use yonder_testkit::Sshd;

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the fstab tests run mount(8) and unshare(1): run them as root"
    );
}

/// A path as an fstab field: space, tab, newline and backslash in octal.
fn fstab_field(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012")
}

/// Runs `cmd` for at most `secs` seconds; returns what it did.
fn run_for(cmd: &mut Command, secs: u64) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = (
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = std::io::Read::read_to_end(&mut out, &mut s);
            s
        }),
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = std::io::Read::read_to_end(&mut err, &mut s);
            s
        }),
    );
    let status = wait_timeout(&mut child, Duration::from_secs(secs))
        .unwrap_or_else(|| panic!("{cmd:?} did not finish within {secs} s"));
    Output {
        status,
        stdout: readers.0.join().unwrap(),
        stderr: readers.1.join().unwrap(),
    }
}

/// Pids of the `yonder mount --foreground` processes serving `mountpoint`.
fn mount_processes(mountpoint: &Path) -> Vec<u32> {
    let mountpoint = mountpoint.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&&b"--foreground"[..]) && args.contains(&mountpoint) {
            pids.push(pid);
        }
    }
    pids
}

/// Waits (at most 10 s) until no `yonder mount` serves `mountpoint`.
fn wait_for_mount_process_to_end(mountpoint: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mount_processes(mountpoint).is_empty() {
        assert!(
            Instant::now() < deadline,
            "yonder mount of {} still running after the unmount",
            mountpoint.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ends whatever a failed test left mounted or running at these points.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for at in &self.0 {
            if is_mounted(at) {
                let _ = Command::new("umount").arg("-l").arg(at).output();
            }
            for pid in mount_processes(at) {
                support::mount::signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// `mount` and `umount` of fstab lines of type fuse.yonder over ssh to the
/// private test sshd, with the options an fstab line for a network mount
/// has: by mount point (a `noauto` line, as with x-systemd.automount) and
/// with `mount -a`. mount(8) runs the helper with an environment of its
/// own, without PATH, so mount.fuse3's shell finds `yonder` only in the
/// default search path: the test runs in a private mount namespace where
/// /usr/local/sbin and /usr/local/bin, first in that path, hold only a
/// `yonder` that is this build (not one installed there).
#[test]
fn fstab_line_mounts_with_mount_and_unmounts_with_umount() {
    require_root();
    let sshd = Sshd::start().expect("start sshd");
    let backing = tempfile::Builder::new()
        .prefix("yonder-backing")
        .tempdir()
        .unwrap();
    fs::write(backing.path().join("hello"), b"from the remote\n").unwrap();
    let dir = tempfile::Builder::new().prefix("yonder fstab").tempdir().unwrap();
    let bin = dir.path().join("sbin");
    fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(yonder_bin(), bin.join("yonder")).unwrap();
    let by_point = dir.path().join("by point");
    let by_all = dir.path().join("by all");
    fs::create_dir(&by_point).unwrap();
    fs::create_dir(&by_all).unwrap();
    let _cleanup = Cleanup(vec![by_point.clone(), by_all.clone()]);

    let source = format!("{}@127.0.0.1:{}", sshd.user(), fstab_field(backing.path()));
    let common = format!(
        "allow_other,ro,port={},IdentityFile={},{},agent_path={}",
        sshd.port(),
        fstab_field(&sshd.client_key()),
        "IdentitiesOnly=yes,UserKnownHostsFile=/dev/null,StrictHostKeyChecking=no,BatchMode=yes,LogLevel=ERROR",
        fstab_field(&yonder_bin()),
    );
    let fstab = dir.path().join("fstab");
    fs::write(
        &fstab,
        format!(
            "# a private fstab\n\
             {source} {} fuse.yonder _netdev,noauto,x-systemd.automount,{common} 0 0\n\
             {source} {} fuse.yonder _netdev,nofail,users,{common} 0 0\n",
            fstab_field(&by_point),
            fstab_field(&by_all),
        ),
    )
    .unwrap();

    let script = r#"
        set -u
        trap 'umount -l "$BY_POINT" "$BY_ALL" 2>/dev/null' EXIT
        mount --bind "$BIN" /usr/local/sbin || exit 10
        mount --bind "$BIN" /usr/local/bin || exit 10
        mount -T "$FSTAB" "$BY_POINT" || exit 11
        cat "$BY_POINT/hello" || exit 12
        findmnt -n -o FSTYPE,SOURCE,OPTIONS "$BY_POINT" || exit 13
        if touch "$BY_POINT/new" 2>/dev/null; then echo "written through ro"; fi
        mount -a -T "$FSTAB" || exit 14
        cat "$BY_ALL/hello" || exit 15
        umount "$BY_POINT" || exit 16
        umount "$BY_ALL" || exit 17
        if findmnt "$BY_POINT" >/dev/null || findmnt "$BY_ALL" >/dev/null; then exit 18; fi
        echo unmounted
    "#;
    let out = run_for(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script])
            .env("BIN", &bin)
            .env("FSTAB", &fstab)
            .env("BY_POINT", &by_point)
            .env("BY_ALL", &by_all),
        60,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{stderr}\nsshd log: {}",
        out.status,
        sshd.log()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "from the remote", "{stdout}");
    let fields: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(fields[0], "fuse.yonder", "{stdout}");
    assert!(
        fields[1].ends_with(&backing.path().display().to_string()),
        "{stdout}"
    );
    assert!(fields[2].split(',').any(|o| o == "ro"), "{stdout}");
    assert!(fields[2].split(',').any(|o| o == "allow_other"), "{stdout}");
    // yonder keeps nodev,nosuid though mount.fuse3 asks root's mounts for dev,suid.
    assert!(fields[2].split(',').any(|o| o == "nosuid"), "{stdout}");
    assert!(fields[2].split(',').any(|o| o == "nodev"), "{stdout}");
    assert_eq!(&lines[2..], ["from the remote", "unmounted"], "{stdout}");
    assert!(stderr.trim().is_empty(), "mount and umount said: {stderr}");
    wait_for_mount_process_to_end(&by_point);
    wait_for_mount_process_to_end(&by_all);
    assert!(!backing.path().join("new").exists());
}

/// `yonder SOURCE MOUNTPOINT -o ...` returns once the mount is usable and
/// serves it from a process in a session of its own; `umount` ends that
/// process.
#[test]
fn helper_form_returns_once_mounted_and_serves_in_the_background() {
    require_root();
    let backing = tempfile::Builder::new()
        .prefix("yonder-backing")
        .tempdir()
        .unwrap();
    fs::write(backing.path().join("file"), b"data").unwrap();
    let parent = tempfile::Builder::new().prefix("yonder-mnt").tempdir().unwrap();
    let mountpoint = parent.path().join("mnt");
    fs::create_dir(&mountpoint).unwrap();
    let _cleanup = Cleanup(vec![mountpoint.clone()]);
    let out = run_for(
        Command::new(yonder_bin())
            .arg(backing.path())
            .arg(&mountpoint)
            .args(["-o", "ro,dev,suid,_netdev", "-o", "noexec,attr_ttl=1"]),
        30,
    );
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    // Usable at once.
    assert_eq!(fs::read(mountpoint.join("file")).unwrap(), b"data");
    let err = fs::write(mountpoint.join("new"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let pids = mount_processes(&mountpoint);
    assert_eq!(pids.len(), 1, "one yonder mount process: {pids:?}");
    let stat = fs::read_to_string(format!("/proc/{}/stat", pids[0])).unwrap();
    let session = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap();
    assert_eq!(session, pids[0].to_string(), "leads a session of its own: {stat}");
    let fd2 = fs::read_link(format!("/proc/{}/fd/2", pids[0])).unwrap();
    assert_eq!(fd2, Path::new("/dev/null"), "nobody reads its stderr any more");

    let status = Command::new("umount").arg(&mountpoint).status().unwrap();
    assert!(status.success());
    wait_for_mount_process_to_end(&mountpoint);
    assert!(!is_mounted(&mountpoint));
}

/// A helper-form mount that fails says why in one line and exits non-zero,
/// as `yonder mount` would; an existing mount point stays.
#[test]
fn helper_form_relays_the_mount_error_and_exit_code() {
    let parent = tempfile::Builder::new().prefix("yonder-mnt").tempdir().unwrap();
    let mountpoint = parent.path().join("mnt");
    fs::create_dir(&mountpoint).unwrap();
    let _cleanup = Cleanup(vec![mountpoint.clone()]);
    for (options, expect) in [
        ("ssh_command=false,port=2222", "connect ssh://root@127.0.0.1/srv"),
        (
            "ro,reconnect",
            "mount option reconnect: an sshfs option yonder does without",
        ),
    ] {
        let out = run_for(
            Command::new(yonder_bin())
                .arg("root@127.0.0.1:/srv")
                .arg(&mountpoint)
                .args(["-o", options]),
            30,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{options}: {err}");
        assert!(out.stdout.is_empty(), "{options}");
        assert_eq!(err.lines().count(), 1, "{options}: one line, got {err:?}");
        assert!(
            err.starts_with("yonder: ") && err.contains(expect),
            "{options}: {err}"
        );
        assert!(mountpoint.is_dir(), "{options}: the mount point stays");
        assert!(!is_mounted(&mountpoint));
        assert!(mount_processes(&mountpoint).is_empty());
    }
}

/// Ctrl+C (or systemd's timeout) while the helper form waits stops the
/// mount it started too, instead of leaving it to come up in the
/// background: here a connection that never answers.
#[test]
fn signal_while_waiting_stops_the_mount() {
    let dir = tempfile::Builder::new().prefix("yonder-hang").tempdir().unwrap();
    let hang = dir.path().join("hang");
    fs::write(&hang, "#!/bin/sh\nexec sleep 20\n").unwrap();
    fs::set_permissions(&hang, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mountpoint = dir.path().join("mnt");
    fs::create_dir(&mountpoint).unwrap();
    let _cleanup = Cleanup(vec![mountpoint.clone()]);
    let mut helper = Command::new(yonder_bin())
        .arg("root@127.0.0.1:/srv")
        .arg(&mountpoint)
        .arg("-o")
        .arg(format!("ssh_command={}", hang.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while mount_processes(&mountpoint).is_empty() {
        assert!(Instant::now() < deadline, "no yonder mount process started");
        std::thread::sleep(Duration::from_millis(20));
    }
    support::mount::signal(helper.id(), libc::SIGINT);
    let status = wait_timeout(&mut helper, Duration::from_secs(10)).expect("the helper kept waiting");
    let out = helper.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // The mount gives up on the signal the helper passes on, says so in
    // one line, and the helper relays it with its exit status.
    assert_eq!(status.code(), Some(130), "{status}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("SIGINT before") && err.contains("nothing mounted"),
        "{err}"
    );
    wait_for_mount_process_to_end(&mountpoint);
    assert!(!is_mounted(&mountpoint));
}
