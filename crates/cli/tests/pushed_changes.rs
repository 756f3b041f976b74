//! Pushed invalidation through real mounts: with caches trusted for 60 s,
//! what changes on the remote (directly on its disk, or through another
//! mount of the same tree) shows through a mount at once, because the
//! agent pushes the change; and when the agent's watch is degraded (its
//! queue overflowed, or a directory could not be watched) the mount falls
//! back to short TTLs, and says so once.
//!
//! "At once" is told from "after the TTL" with a generous bound (3 s
//! against 60 s); how fast it really is belongs to the benchmarks.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};
use support::mount::Mount;
use support::Variant;

const LONG_TTLS: &[&str] = &["--attr-ttl", "60", "--dir-ttl", "60"];
/// Far below the TTLs, well above what pushing a change takes.
const AT_ONCE: Duration = Duration::from_secs(3);

/// Waits (at most [`AT_ONCE`]) until `check` holds; panics with `what`
/// otherwise.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < AT_ONCE,
            "{what}: not seen within {AT_ONCE:?} (the TTLs are 60 s)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A mount with long TTLs, logging at info so that whether the remote
/// pushes its changes can be checked: a mount that fell back to short
/// TTLs would pass these tests too, without a change pushed.
fn watched(v: Variant) -> Mount {
    Mount::start_logged_with_env(v, LONG_TTLS, &[("YONDER_LOG", "info")])
}

fn assert_pushed_throughout(m: &Mount) {
    let log = m.log();
    assert!(log.contains("the remote pushes its changes"), "{log}");
    assert!(!log.contains("no longer pushes"), "{log}");
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

fn content_changed_on_the_remote_shows(v: Variant) {
    let m = watched(v);
    fs::create_dir(m.disk("d")).unwrap();
    fs::write(m.disk("d/f"), "old contents").unwrap();
    // Cached: entry, attributes, pages (kept across opens while pushed).
    assert_eq!(read(&m.at("d/f")).as_deref(), Some("old contents"));
    assert_eq!(read(&m.at("d/f")).as_deref(), Some("old contents"));
    // Same size, so only a pushed change can tell.
    fs::write(m.disk("d/f"), "new contents").unwrap();
    eventually("new contents", || {
        read(&m.at("d/f")).as_deref() == Some("new contents")
    });
    // A file kept open sees it too.
    let mut open = fs::File::open(m.at("d/f")).unwrap();
    fs::write(m.disk("d/f"), "longer, newer contents").unwrap();
    eventually("contents through an open file", || {
        use std::io::{Read, Seek};
        let mut text = String::new();
        open.rewind().unwrap();
        open.read_to_string(&mut text).unwrap();
        text == "longer, newer contents"
    });
    // Attributes alone.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(m.at("d/f")).unwrap().permissions().mode() & 0o777,
        0o644
    );
    fs::set_permissions(m.disk("d/f"), fs::Permissions::from_mode(0o600)).unwrap();
    eventually("new mode", || {
        fs::metadata(m.at("d/f")).unwrap().permissions().mode() & 0o777 == 0o600
    });
    assert_pushed_throughout(&m);
}

fn names_changed_on_the_remote_show(v: Variant) {
    let m = watched(v);
    fs::create_dir_all(m.disk("d/sub")).unwrap();
    fs::write(m.disk("d/sub/f"), "f").unwrap();
    fs::write(m.disk("d/gone"), "g").unwrap();
    assert_eq!(names(&m.at("d")), ["gone", "sub"]);
    assert_eq!(names(&m.at("d/sub")), ["f"]);
    // Known absent, and cached so.
    assert!(!m.at("d/new").exists());

    fs::write(m.disk("d/new"), "n").unwrap();
    eventually("a new file, listed", || {
        names(&m.at("d")) == ["gone", "new", "sub"]
    });
    assert_eq!(read(&m.at("d/new")).as_deref(), Some("n"));

    fs::remove_file(m.disk("d/gone")).unwrap();
    eventually("a deleted file", || !m.at("d/gone").exists());
    eventually("a deleted file, listed", || names(&m.at("d")) == ["new", "sub"]);

    fs::rename(m.disk("d/sub"), m.disk("d/moved")).unwrap();
    eventually("a renamed directory", || {
        !m.at("d/sub").exists() && read(&m.at("d/moved/f")).as_deref() == Some("f")
    });
    assert_eq!(names(&m.at("d")), ["moved", "new"]);
    // The directory is watched by its new name: what changes in it shows.
    fs::write(m.disk("d/moved/g"), "g").unwrap();
    eventually("a file made in the renamed directory", || {
        names(&m.at("d/moved")) == ["f", "g"]
    });
    fs::write(m.disk("d/moved/f"), "F").unwrap();
    eventually("a file changed in the renamed directory", || {
        read(&m.at("d/moved/f")).as_deref() == Some("F")
    });
    assert_pushed_throughout(&m);
}

fn two_mounts_see_each_others_renames_and_deletes(v: Variant) {
    let a = watched(v);
    let b = Mount::beside(v, &a, LONG_TTLS, &[("YONDER_LOG", "info")]);
    fs::create_dir(a.at("d")).unwrap();
    fs::write(a.at("d/f"), "f").unwrap();
    fs::write(a.at("x"), "x").unwrap();
    eventually("b sees what a made", || {
        read(&b.at("d/f")).as_deref() == Some("f")
    });
    assert_eq!(names(&b.at("")), ["d", "x"]);

    // a moves the file out of the directory; b follows.
    fs::rename(a.at("d/f"), a.at("f")).unwrap();
    eventually("b sees the file moved out", || {
        !b.at("d/f").exists() && read(&b.at("f")).as_deref() == Some("f")
    });
    assert!(names(&b.at("d")).is_empty());
    // ... and back in: b, which knew it absent there, finds it again.
    fs::rename(a.at("f"), a.at("d/f")).unwrap();
    eventually("b sees the file moved back", || {
        read(&b.at("d/f")).as_deref() == Some("f") && !b.at("f").exists()
    });
    // b moves, a follows.
    fs::rename(b.at("d"), b.at("e")).unwrap();
    eventually("a sees the directory renamed", || {
        !a.at("d").exists() && read(&a.at("e/f")).as_deref() == Some("f")
    });
    // Deletes, both ways.
    fs::remove_file(b.at("x")).unwrap();
    eventually("a sees b's delete", || !a.at("x").exists());
    fs::remove_file(a.at("e/f")).unwrap();
    eventually("b sees a's delete", || {
        !b.at("e/f").exists() && names(&b.at("e")).is_empty()
    });
    assert_pushed_throughout(&a);
    assert_pushed_throughout(&b);
}

mount_suite!(
    content_changed_on_the_remote_shows,
    names_changed_on_the_remote_show,
    two_mounts_see_each_others_renames_and_deletes,
);

/// The agent's watch queue overflowing (forced: a notice may carry only
/// a few paths) makes the mount fall back to short TTLs, said once; what
/// changed meanwhile is not served stale.
#[test]
fn an_overflow_falls_back_to_short_ttls() {
    let v = Variant {
        frontend: support::Frontend::Fuse,
        transport: support::Transport::Local,
    };
    let m = Mount::start_logged_with_env(v, LONG_TTLS, &[("YONDER_WATCH_MAX_BATCH", "4")]);
    fs::write(m.disk("f"), "old").unwrap();
    assert_eq!(read(&m.at("f")).as_deref(), Some("old"));
    assert!(!m.log().contains("no longer pushes"), "{}", m.log());
    // More changes at once than a notice carries.
    for i in 0..20 {
        fs::write(m.disk(&format!("n{i}")), "n").unwrap();
    }
    fs::write(m.disk("f"), "new").unwrap();
    eventually("the change made with the overflow", || {
        read(&m.at("f")).as_deref() == Some("new")
    });
    eventually("the fallback, logged", || {
        m.log().contains("no longer pushes every change")
    });
    assert_eq!(names(&m.at("")).len(), 21);
    // Said once, however many overflows follow.
    for i in 0..20 {
        fs::remove_file(m.disk(&format!("n{i}"))).unwrap();
    }
    eventually("the deletes", || names(&m.at("")) == ["f"]);
    assert_eq!(
        m.log().matches("no longer pushes every change").count(),
        1,
        "{}",
        m.log()
    );
}

/// A directory that cannot be watched (the host's watch limit, forced
/// down to one: the root) makes the mount fall back to short TTLs: a
/// change in it, never pushed, still shows once they end.
#[test]
fn a_watch_limit_falls_back_to_short_ttls() {
    let v = Variant {
        frontend: support::Frontend::Fuse,
        transport: support::Transport::Local,
    };
    let m = Mount::start_logged_with_env(v, LONG_TTLS, &[("YONDER_WATCH_MAX_DIRS", "1")]);
    fs::create_dir(m.disk("d")).unwrap();
    fs::write(m.disk("d/f"), "old").unwrap();
    assert_eq!(read(&m.at("d/f")).as_deref(), Some("old"));
    eventually("the fallback, logged", || {
        m.log().contains("no longer pushes every change")
    });
    assert!(m.log().contains("limit of watches"), "{}", m.log());
    fs::write(m.disk("d/f"), "new").unwrap();
    eventually("a change in the unwatched directory", || {
        read(&m.at("d/f")).as_deref() == Some("new")
    });
}
