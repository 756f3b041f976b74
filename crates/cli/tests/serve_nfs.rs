//! `yonder serve-nfs` and `yonder mount --backend nfs` through the binary.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;

use support::mount::{signal, wait_timeout};
use support::yonder_bin;

#[test]
fn serve_nfs_prints_the_port_and_the_mount_command_and_serves_until_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hi\n").unwrap();
    let mut child = Command::new(yonder_bin())
        .arg("serve-nfs")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut serving, mut mount) = (String::new(), String::new());
    stdout.read_line(&mut serving).unwrap();
    stdout.read_line(&mut mount).unwrap();
    let port: u16 = serving
        .trim_end()
        .rsplit_once("127.0.0.1:")
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {serving:?}"));
    assert_eq!(
        mount.trim_end(),
        format!(
            "mount it with: mount -t nfs -o nfsvers=3,tcp,nolock,port={port},mountport={port} 127.0.0.1:/ MOUNTPOINT"
        )
    );
    let url = format!("nfs://127.0.0.1/?nfsport={port}&mountport={port}");
    let listed = Command::new("nfs-ls").arg(&url).output().unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("hello.txt"));

    signal(child.id(), libc::SIGTERM);
    let status = wait_timeout(&mut child, Duration::from_secs(10)).expect("serve-nfs did not stop");
    assert!(status.success(), "{status}");
    // Nothing is served any more.
    let after = Command::new("nfs-ls").arg(&url).output().unwrap();
    assert!(!after.status.success());
}

#[test]
fn mounting_over_nfs_without_a_kernel_client_names_the_fuse_backend() {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("nfs"))
    {
        eprintln!("this kernel has an NFS client: nothing to check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let parent = tempfile::tempdir().unwrap();
    let mountpoint = parent.path().join("mnt");
    for foreground in [true, false] {
        let mut cmd = Command::new(yonder_bin());
        cmd.args(["mount", "--backend", "nfs"]);
        if foreground {
            cmd.arg("--foreground");
        }
        let out = cmd.arg(dir.path()).arg(&mountpoint).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("--backend fuse"), "{stderr}");
        assert!(!mountpoint.exists(), "the mount point was left behind");
    }
}
