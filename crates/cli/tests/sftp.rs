//! `yonder mount --sftp` as a supervised session: the SFTP connection is
//! a `Session` under the link, so losing it is noticed at once and a new
//! one takes over under the open files. (The behaviour and permission
//! suites run over SFTP too: `fuse_sftp::*`.)

// Real mounts checked with Linux calls (statx, copy_file_range, Linux's
// xattr signatures and names): these run where CI runs, on Linux.
#![cfg(target_os = "linux")]

mod support;

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};
use support::mount::{signal, Mount};
use support::{Frontend, Transport, Variant};

const SFTP: Variant = Variant {
    frontend: Frontend::Fuse,
    transport: Transport::Sftp,
};

/// The `ssh ... -s ... sftp` processes `yonder mount` (pid) runs.
fn sftp_sessions(mount_pid: u32) -> Vec<u32> {
    yonder_testkit::descendants(mount_pid)
        .into_iter()
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.first().is_some_and(|a| a.ends_with(b"ssh"))
                && args.contains(&&b"-s"[..])
                && args.last().is_some_and(|a| a.is_empty() || *a == b"sftp")
        })
        .collect()
}

#[test]
fn a_lost_sftp_session_is_replaced_under_an_open_file() {
    let m = Mount::start_logged(SFTP, &["--heartbeat", "1"]);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(m.disk("f"), &data).unwrap();
    let f = File::open(m.at("f")).unwrap();
    let mut head = vec![0; 1000];
    f.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, data[..1000]);

    let before = sftp_sessions(m.pid());
    assert_eq!(before.len(), 1, "one ssh running the sftp subsystem: {before:?}");
    signal(before[0], libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let now = sftp_sessions(m.pid());
        if now.len() == 1 && now != before {
            break now;
        }
        assert!(Instant::now() < deadline, "no new sftp session: {}", m.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("sftp session {before:?} replaced by {after:?}");

    let mut rest = vec![0; data.len() - 1000];
    f.read_exact_at(&mut rest, 1000).unwrap();
    assert!(
        rest == data[1000..],
        "the open file reads on after the new session"
    );
    fs::write(m.at("after"), b"written after").unwrap();
    assert_eq!(fs::read(m.disk("after")).unwrap(), b"written after");
    let log = m.log();
    assert!(log.contains("reconnecting"), "the loss is reported: {log}");
}

#[test]
fn a_missing_tree_fails_the_mount_with_the_servers_answer() {
    let backing = tempfile::tempdir().unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let missing = backing.path().join("no-such-dir");
    let said = Mount::refused(SFTP, &missing, &mnt.path().join("m"), &[]);
    assert!(said.contains("No such file or directory"), "{said}");
}

/// SFTP has no extended attributes: as on an sshfs mount, every xattr
/// call says EOPNOTSUPP (the kernel answers all but the first itself; an
/// ACL is absent), and files made afterwards still get the mode asked
/// for.
#[test]
fn extended_attributes_are_not_supported_and_creation_goes_on() {
    use rustix::fs::{getxattr, listxattr, removexattr, setxattr, XattrFlags};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let m = Mount::start(SFTP, &[]);
    fs::write(m.disk("f"), b"data").unwrap();
    let f = m.at("f");
    let mut buf = [0u8; 64];
    for _ in 0..2 {
        assert_eq!(
            getxattr(&f, "user.x", &mut buf[..]).unwrap_err(),
            rustix::io::Errno::OPNOTSUPP
        );
        // The kernel answers ACL names itself: no ACL.
        let acl = getxattr(&f, "system.posix_acl_access", &mut buf[..]).unwrap_err();
        assert!(
            [rustix::io::Errno::NODATA, rustix::io::Errno::OPNOTSUPP].contains(&acl),
            "{acl:?}"
        );
        assert_eq!(
            listxattr(&f, &mut buf[..]).unwrap_err(),
            rustix::io::Errno::OPNOTSUPP
        );
        assert_eq!(
            setxattr(&f, "user.x", b"v", XattrFlags::empty()).unwrap_err(),
            rustix::io::Errno::OPNOTSUPP
        );
        assert_eq!(
            removexattr(&f, "user.x").unwrap_err(),
            rustix::io::Errno::OPNOTSUPP
        );
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(m.at("new"))
        .unwrap();
    let mode = fs::metadata(m.disk("new")).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o640 & !umask());
    assert_eq!(fs::read(&f).unwrap(), b"data");
}

/// This process's umask (read, not set: other tests run beside).
fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}
