//! `yonder mount --sftp` as a supervised session: the SFTP connection is
//! a `Session` under the link, so losing it is noticed at once and a new
//! one takes over under the open files. (The behaviour and permission
//! suites run over SFTP too: `fuse_sftp::*`.)

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
