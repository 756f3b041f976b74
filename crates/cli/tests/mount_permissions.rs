//! Who may do what through a mount: with `--allow-other` the kernel checks
//! each caller's rights (ACLs included) instead of letting every local user
//! act as the agent's user; ACL changes show in the mode at once; what a
//! user creates is theirs. Checked through a real `yonder mount` over every
//! frontend and transport, as the behaviour suite is (`mount_suite!`).
//!
//! These tests act as `nobody`, so they must run as root (CI does); run as
//! another user they fail rather than pass without checking anything.

// Real mounts checked with Linux calls (statx, copy_file_range, Linux's
// xattr signatures and names): these run where CI runs, on Linux.
#![cfg(target_os = "linux")]

mod support;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use support::mount::Mount;
use support::Variant;

const SECRET: &[u8] = b"root's secret\n";
const MINE: &[u8] = b"root's file in a shared directory\n";

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the permission tests switch to the user nobody and must run as root"
    );
}

/// uid and gid of `nobody`, from the password database.
fn nobody() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"nobody"))
        .map(|f| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        .expect("no user nobody in /etc/passwd")
}

/// Runs `program args` as nobody (no supplementary groups).
fn as_nobody<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Output {
    let (uid, gid) = nobody();
    // std drops the supplementary groups when it changes the uid.
    Command::new(program)
        .args(args)
        .uid(uid)
        .gid(gid)
        .current_dir("/")
        .output()
        .unwrap_or_else(|e| panic!("run {program} as nobody: {e}"))
}

/// Runs `sh -c script path` as nobody (the script sees the path as `$0`).
fn sh_as_nobody(script: &str, path: &Path) -> Output {
    as_nobody("sh", &[OsStr::new("-c"), OsStr::new(script), path.as_os_str()])
}

fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that a command run as nobody was refused with EACCES or EPERM.
fn assert_refused(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && (stderr.contains("Permission denied") || stderr.contains("Operation not permitted")),
        "{what} as nobody should be refused with EACCES or EPERM; status {}, stderr: {stderr}",
        out.status
    );
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} as nobody should succeed; status {}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asks only for `fields`, as `stat -c %a` and `ls -l` do, which lets the
/// kernel answer from its attribute cache (std's metadata asks for the
/// birth time too, which a FUSE mount always fetches afresh).
fn statx(path: &Path, fields: rustix::fs::StatxFlags) -> rustix::fs::Statx {
    use rustix::fs::{AtFlags, CWD};
    rustix::fs::statx(CWD, path, AtFlags::empty(), fields)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    u32::from(statx(path, rustix::fs::StatxFlags::MODE).stx_mode) & 0o7777
}

fn ctime(path: &Path) -> (i64, u32) {
    let st = statx(path, rustix::fs::StatxFlags::CTIME);
    (st.stx_ctime.tv_sec, st.stx_ctime.tv_nsec)
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Mounts a backing directory holding root's 0600 `secret` and a 1777
/// `pub` with root's 0644 `pub/mine`, with every directory on the way to
/// the mount traversable by nobody (temporary directories start 0700).
fn mount_shared(v: Variant, extra: &[&str]) -> Mount {
    let m = Mount::start_on(v, shared_backing(), extra);
    chmod(m.mountpoint.parent().unwrap(), 0o755);
    // The setup works: nobody reaches the mount and reads what is public.
    assert_ok(&as_nobody("cat", &[m.at("pub/mine")]), "reading a 0644 file");
    m
}

/// A backing directory with root's 0600 `secret` and 0644 `pub/mine`.
fn shared_backing() -> tempfile::TempDir {
    require_root();
    let backing = tempfile::Builder::new()
        .prefix("yonder-backing")
        .tempdir()
        .unwrap();
    chmod(backing.path(), 0o755);
    fs::write(backing.path().join("secret"), SECRET).unwrap();
    chmod(&backing.path().join("secret"), 0o600);
    fs::create_dir(backing.path().join("pub")).unwrap();
    chmod(&backing.path().join("pub"), 0o1777);
    fs::write(backing.path().join("pub/mine"), MINE).unwrap();
    chmod(&backing.path().join("pub/mine"), 0o644);
    backing
}

/// A mount without --allow-other shows `allow_other` in the mount table
/// where fusermount3 allows it (its `auto_unmount`, which removes the
/// mount when yonder dies, needs it), yet only its owner and root may use
/// it: yonder refuses every other user's requests itself.
fn a_mount_of_ones_own_refuses_other_users(v: Variant) {
    let m = Mount::start_on(v, shared_backing(), &[]);
    chmod(m.mountpoint.parent().unwrap(), 0o755);
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let at = m.mountpoint.to_str().unwrap();
    let line = mounts.lines().find(|l| l.split(' ').nth(1) == Some(at)).unwrap();
    assert!(line.contains("allow_other"), "{line}");
    assert_refused(&as_nobody("cat", &[m.at("pub/mine")]), "reading a 0644 file");
    assert_refused(&as_nobody("ls", &[&m.mountpoint]), "listing the mount");
    assert_refused(
        &sh_as_nobody("printf x > \"$0\"", &m.at("pub/new")),
        "creating a file in a 1777 directory",
    );
    assert_untouched(&m);
    assert_eq!(fs::read(m.at("pub/mine")).unwrap(), MINE, "the owner may");
}

fn assert_untouched(m: &Mount) {
    assert_eq!(
        fs::read(m.disk("secret")).unwrap(),
        SECRET,
        "secret's content changed"
    );
    assert_eq!(mode(&m.disk("secret")), 0o600, "secret's mode changed");
    assert_eq!(
        fs::read(m.disk("pub/mine")).unwrap(),
        MINE,
        "pub/mine changed or went"
    );
}

fn allow_other_enforces_permissions(v: Variant) {
    for extra in [&["--allow-other"][..], &["-o", "allow_other"]] {
        let m = mount_shared(v, extra);
        let secret = m.at("secret");
        assert_refused(&as_nobody("cat", &[&secret]), "reading root's 0600 file");
        assert_refused(
            &sh_as_nobody("printf x >> \"$0\"", &secret),
            "appending to root's 0600 file",
        );
        assert_refused(
            &sh_as_nobody("printf x > \"$0\"", &secret),
            "truncating root's 0600 file",
        );
        assert_refused(
            &as_nobody("chmod", &["666".as_ref(), secret.as_os_str()]),
            "chmod of root's file",
        );
        assert_refused(
            &as_nobody("rm", &["-f".as_ref(), m.at("pub/mine").as_os_str()]),
            "unlinking root's file in a sticky directory",
        );
        assert_untouched(&m);
        // Root still may.
        assert_eq!(fs::read(&secret).unwrap(), SECRET);
    }
}

fn no_default_permissions_option_warns(v: Variant) {
    let m = mount_shared(v, &["--allow-other", "--no-default-permissions"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !m.stderr().contains("warning") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let stderr = m.stderr();
    let warnings: Vec<_> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "one warning line expected; stderr: {stderr}");
    assert!(
        warnings[0].contains("--no-default-permissions"),
        "the warning should name the option: {}",
        warnings[0]
    );
    // As documented: every user acts with the agent's rights.
    let out = as_nobody("cat", &[m.at("secret")]);
    assert_ok(&out, "reading root's 0600 file without default permissions");
    assert_eq!(out.stdout, SECRET);
}

fn acl_mode_change_visible_at_once(v: Variant) {
    require_root();
    for extra in [&[][..], &["--allow-other"]] {
        let m = Mount::start(v, extra);
        let f = m.at("f");
        fs::write(&f, b"data").unwrap();
        chmod(&f, 0o600);
        assert_eq!(mode(&f), 0o600);
        run("setfacl", &["-m".as_ref(), "o::r".as_ref(), f.as_os_str()]);
        assert_eq!(mode(&m.disk("f")), 0o604, "the remote's mode ({extra:?})");
        assert_eq!(
            mode(&f),
            0o604,
            "mode through the mount right after setfacl ({extra:?})"
        );
        // A named entry makes the group bits the ACL mask.
        run("setfacl", &["-m".as_ref(), "u:nobody:rw".as_ref(), f.as_os_str()]);
        assert_eq!(
            mode(&f),
            mode(&m.disk("f")),
            "after adding a named user ({extra:?})"
        );
        assert_eq!(mode(&f), 0o664);
        // Removing the ACL xattr keeps the mode but changes ctime.
        run(
            "setfattr",
            &["-x".as_ref(), "system.posix_acl_access".as_ref(), f.as_os_str()],
        );
        assert_eq!(mode(&f), 0o664, "mode after removing the ACL ({extra:?})");
        assert_eq!(
            ctime(&f),
            ctime(&m.disk("f")),
            "ctime after removing the ACL ({extra:?})"
        );

        // cp -a sets the copy's mode through its ACL.
        let src_dir = tempfile::tempdir().unwrap();
        let src = src_dir.path().join("with-acl");
        fs::write(&src, b"copied").unwrap();
        chmod(&src, 0o640);
        run(
            "setfacl",
            &["-m".as_ref(), "u:nobody:rw".as_ref(), src.as_os_str()],
        );
        let want = mode(&src);
        assert_eq!(want, 0o660);
        run("cp", &["-a".as_ref(), src.as_os_str(), m.at("copy").as_os_str()]);
        assert_eq!(mode(&m.disk("copy")), want, "the remote copy's mode ({extra:?})");
        assert_eq!(
            mode(&m.at("copy")),
            want,
            "the copy's mode through the mount ({extra:?})"
        );
    }
}

fn named_user_acl_grants_read(v: Variant) {
    let m = mount_shared(v, &["--allow-other"]);
    let secret = m.at("secret");
    assert_refused(
        &as_nobody("cat", &[&secret]),
        "reading root's 0600 file before the ACL",
    );
    run(
        "setfacl",
        &["-m".as_ref(), "u:nobody:r".as_ref(), secret.as_os_str()],
    );
    let out = as_nobody("cat", &[&secret]);
    assert_ok(&out, "reading a file whose ACL grants nobody read");
    assert_eq!(out.stdout, SECRET);
    assert_refused(
        &sh_as_nobody("printf x >> \"$0\"", &secret),
        "appending to a file nobody may only read",
    );
    assert_refused(
        &sh_as_nobody("printf x > \"$0\"", &secret),
        "truncating a file nobody may only read",
    );
    assert_eq!(fs::read(m.disk("secret")).unwrap(), SECRET);
    // Taking the entry away takes the right away.
    run(
        "setfacl",
        &["-x".as_ref(), "u:nobody".as_ref(), secret.as_os_str()],
    );
    assert_refused(
        &as_nobody("cat", &[&secret]),
        "reading after the ACL entry is removed",
    );
}

/// What a user creates through a mount others may use belongs to that user
/// (an agent running as root gives it their uid and gid), with the user's
/// umask applied.
fn files_created_by_a_user_belong_to_that_user(v: Variant) {
    require_root();
    let (uid, gid) = nobody();
    let m = Mount::start(v, &["--allow-other"]);
    chmod(m.mountpoint.parent().unwrap(), 0o755);
    // Through the mount: the kernel checks permissions (allow_other), from
    // the root's attributes it cached at mount time.
    chmod(&m.mountpoint, 0o777);
    let out = sh_as_nobody(
        "cd \"$0\" && umask 022 && echo hi > mine && mkdir dir",
        &m.mountpoint,
    );
    assert_ok(&out, "creating a file and a directory");
    for path in [m.disk("mine"), m.at("mine")] {
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (uid, gid, 0o644),
            "{}",
            path.display()
        );
    }
    for path in [m.disk("dir"), m.at("dir")] {
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (uid, gid, 0o755),
            "{}",
            path.display()
        );
    }
}

/// New files and directories get the modes a local file system gives: the
/// umask applies, except below a directory with a default ACL, whose
/// entries apply instead.
fn umask_and_default_acls_as_on_a_local_disk(v: Variant) {
    require_root();
    for extra in [&[][..], &["--allow-other"]] {
        let m = Mount::start(v, extra);
        let reference = tempfile::tempdir().unwrap();
        let create = |dir: &Path| {
            fs::create_dir(dir.join("plain")).unwrap();
            fs::create_dir(dir.join("inherit")).unwrap();
            run(
                "setfacl",
                &[
                    "-d".as_ref(),
                    "-m".as_ref(),
                    "u::rwx,g::rwx,o::rwx".as_ref(),
                    dir.join("inherit").as_os_str(),
                ],
            );
            run(
                "sh",
                &[
                    OsStr::new("-c"),
                    OsStr::new(
                        "umask 027 && cd \"$0\" && for d in plain inherit; do \
                         : > $d/file && mkdir $d/dir && mkfifo $d/fifo; done",
                    ),
                    dir.as_os_str(),
                ],
            );
        };
        create(reference.path());
        create(&m.mountpoint);
        for name in [
            "plain/file",
            "plain/dir",
            "plain/fifo",
            "inherit/file",
            "inherit/dir",
            "inherit/fifo",
        ] {
            let want = mode(&reference.path().join(name));
            assert_eq!(mode(&m.disk(name)), want, "{name} on the remote ({extra:?})");
            assert_eq!(mode(&m.at(name)), want, "{name} through the mount ({extra:?})");
        }
    }
}

/// The steps by which a user changes a file's content, each as a shell
/// command given the file as `$0`.
const CONTENT_CHANGES: &[(&str, &str)] = &[
    ("write", "printf x >> \"$0\""),
    ("ftruncate", "truncate -s 1 \"$0\""),
    ("open O_TRUNC", ": > \"$0\""),
    ("fallocate", "fallocate -l 8192 \"$0\""),
];

/// Who changes the file: (who, the file's owner, run as nobody or root).
const CHANGERS: &[(&str, bool, bool)] = &[
    ("nobody, not the owner", false, true),
    ("nobody, the owner", true, true),
    ("root, not the owner", true, false),
];

/// fsync(2) through the mount: what write-back acknowledged about the
/// file reaches the remote first.
fn settle(path: &Path) {
    fs::File::open(path).unwrap().sync_all().unwrap();
}

/// A file `name` in `dir` of group nogroup, so nobody may write it through
/// the group bits, owned by nobody if `nobody_owns`, else by root; with
/// `mode`.
fn set_id_file(dir: &Path, name: &str, mode: u32, nobody_owns: bool) -> std::path::PathBuf {
    let (uid, gid) = nobody();
    let path = dir.join(name);
    fs::write(&path, b"content").unwrap();
    let owner = if nobody_owns { uid } else { 0 };
    std::os::unix::fs::chown(&path, Some(owner), Some(gid)).unwrap();
    chmod(&path, mode);
    assert_eq!(self::mode(&path), mode, "{} set up", path.display());
    path
}

/// A write, truncate or fallocate by a user without CAP_FSETID, owner of
/// the file or not, clears its set-user-ID bit, and its set-group-ID bit
/// where the group may execute; root's keep them. As the kernel does on a
/// local file system: measured on a local directory beside the mount,
/// with write-back on and off.
fn content_changes_clear_set_id_bits_as_locally(v: Variant) {
    require_root();
    let mut wrong = vec![];
    let mut cleared_locally = 0;
    for write_back in ["off", "on"] {
        let m = Mount::start(v, &["--allow-other", "--write-back", write_back]);
        chmod(m.mountpoint.parent().unwrap(), 0o755);
        chmod(&m.mountpoint, 0o755);
        let reference = tempfile::tempdir().unwrap();
        chmod(reference.path(), 0o755);
        for (n, (who, nobody_owns, as_nobody)) in CHANGERS.iter().enumerate() {
            for (step, script) in CONTENT_CHANGES {
                for set_mode in [0o6775, 0o2775, 0o4775, 0o2765] {
                    let name = format!("{n}-{}-{set_mode:o}", step.replace(' ', "_"));
                    let change = |path: &Path| {
                        let out = if *as_nobody {
                            sh_as_nobody(script, path)
                        } else {
                            Command::new("sh")
                                .args([OsStr::new("-c"), OsStr::new(script), path.as_os_str()])
                                .output()
                                .unwrap()
                        };
                        assert_ok(&out, step);
                    };
                    let local = set_id_file(reference.path(), &name, set_mode, *nobody_owns);
                    change(&local);
                    let want = mode(&local);
                    cleared_locally += usize::from(want != set_mode);
                    let mounted = set_id_file(&m.mountpoint, &name, set_mode, *nobody_owns);
                    change(&mounted);
                    let seen = mode(&mounted);
                    settle(&mounted);
                    let remote = mode(&m.disk(&name));
                    if (seen, remote) != (want, want) {
                        wrong.push(format!(
                            "{step} by {who} on a {set_mode:o} file, write-back {write_back}: \
                             {want:o} locally, {seen:o} through the mount, {remote:o} on the remote"
                        ));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        cleared_locally > 0,
        "no step cleared a bit on the local file system"
    );
}

/// An ACL set by the owner of a set-group-ID file who is not in the file's
/// group clears the bit, as `chmod` by such an owner would.
fn acl_by_an_owner_outside_the_group_clears_set_group_id(v: Variant) {
    require_root();
    let (uid, _) = nobody();
    for write_back in ["off", "on"] {
        let m = Mount::start(v, &["--allow-other", "--write-back", write_back]);
        chmod(m.mountpoint.parent().unwrap(), 0o755);
        chmod(&m.mountpoint, 0o755);
        let reference = tempfile::tempdir().unwrap();
        chmod(reference.path(), 0o755);
        let mut modes = vec![];
        for dir in [reference.path(), &m.mountpoint] {
            let f = dir.join("acl");
            fs::write(&f, b"content").unwrap();
            std::os::unix::fs::chown(&f, Some(uid), Some(0)).unwrap();
            chmod(&f, 0o2775);
            assert_ok(
                &as_nobody("setfacl", &["-m".as_ref(), "u:nobody:r".as_ref(), f.as_os_str()]),
                "setfacl on one's own file",
            );
            modes.push(mode(&f));
        }
        let what = format!("setfacl by the owner outside the group, write-back {write_back}");
        assert_eq!(modes[1], modes[0], "{what}: the mode through the mount");
        settle(&m.at("acl"));
        assert_eq!(mode(&m.disk("acl")), modes[0], "{what}: the remote's mode");
    }
}

mount_suite!(
    a_mount_of_ones_own_refuses_other_users,
    allow_other_enforces_permissions,
    no_default_permissions_option_warns,
    acl_mode_change_visible_at_once,
    named_user_acl_grants_read,
    umask_and_default_acls_as_on_a_local_disk,
    files_created_by_a_user_belong_to_that_user,
    content_changes_clear_set_id_bits_as_locally,
    acl_by_an_owner_outside_the_group_clears_set_group_id,
);
