//! A `yonder mount` process on a temporary backing directory, and the
//! macro that runs a mount suite over every frontend and transport.

use super::{source_for, yonder_bin, Transport, Variant};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use yonder_testkit::Sshd;

pub struct Mount {
    pub backing: tempfile::TempDir,
    pub mountpoint: PathBuf,
    _mount_parent: tempfile::TempDir,
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    _sshd: Option<Sshd>,
    frontend: super::Frontend,
}

/// Generates, for each `fn name(v: Variant)` listed, one `#[test]` per
/// frontend × transport: `fuse_local::name`, `fuse_ssh::name`,
/// `fuse_sftp::name`, `fuse_direct::name`. A new
/// frontend joins by adding its two lines here (and a [`Frontend`]
/// variant); a check that does not apply to it can look at `v.frontend`.
///
/// [`Frontend`]: super::Frontend
///
/// `mount_suite!(with_nfs: ...)` adds `nfs_local::name` and
/// `nfs_ssh::name`: the NFS frontend mounted by fuse-nfs.
#[macro_export]
macro_rules! mount_suite {
    (with_nfs: $($test:ident),* $(,)?) => {
        mount_suite!($($test),*);
        mount_suite!(@variant nfs_local, Nfs, Local; $($test),*);
        mount_suite!(@variant nfs_ssh, Nfs, Ssh; $($test),*);
    };
    ($($test:ident),* $(,)?) => {
        mount_suite!(@variant fuse_local, Fuse, Local; $($test),*);
        mount_suite!(@variant fuse_ssh, Fuse, Ssh; $($test),*);
        mount_suite!(@variant fuse_sftp, Fuse, Sftp; $($test),*);
        mount_suite!(@variant fuse_direct, Fuse, Direct; $($test),*);
    };
    (@variant $module:ident, $frontend:ident, $transport:ident; $($test:ident),*) => {
        mod $module {
            $(#[test]
            fn $test() {
                $crate::support::mount::run_variant(
                    $crate::support::Variant {
                        frontend: $crate::support::Frontend::$frontend,
                        transport: $crate::support::Transport::$transport,
                    },
                    stringify!($test),
                    super::$test,
                )
            })*
        }
    };
}

/// The mount checks SFTP cannot pass, and why (docs/sftp.md has the
/// table): each still runs, and must fail, so the list stays true.
pub const SFTP_GAPS: &[(&str, &str)] = &[
    ("chmod_chown_utimens_with_nanoseconds", "times in whole seconds"),
    ("directories_and_errno", "no link count (a directory's nlink)"),
    ("fifos_and_device_nodes", "no FIFOs or device nodes"),
    (
        "posix_fallocate_reaches_the_remote",
        "no fallocate: the size only",
    ),
    ("rename_noreplace_and_exchange", "no RENAME_EXCHANGE"),
    ("seek_data_and_seek_hole", "no hole information"),
    (
        "symlinks_hard_links_and_inode_numbers",
        "no inode numbers or link count",
    ),
    (
        "unlinked_open_file_stays_usable",
        "no link count (0 once unlinked)",
    ),
    ("xattrs_round_trip", "no extended attributes"),
    ("acl_mode_change_visible_at_once", "no ACLs (extended attributes)"),
    ("named_user_acl_grants_read", "no ACLs (extended attributes)"),
    (
        "acl_by_an_owner_outside_the_group_clears_set_group_id",
        "no ACLs (extended attributes)",
    ),
    (
        "umask_and_default_acls_as_on_a_local_disk",
        "no ACLs (extended attributes)",
    ),
    (
        "content_changed_on_the_remote_shows",
        "no change notification: changes show once the 1 s TTL ends, not pushed",
    ),
    (
        "names_changed_on_the_remote_show",
        "no change notification: changes show once the 1 s TTL ends, not pushed",
    ),
    (
        "two_mounts_see_each_others_renames_and_deletes",
        "no change notification: changes show once the 1 s TTL ends, not pushed",
    ),
];

/// Mount checks SFTP fails only when a race goes one way, and why: each
/// runs, and its outcome is reported, not asserted.
pub const SFTP_RACES: &[(&str, &str)] = &[(
    "atomic_saves_are_seen_whole",
    "no inode numbers: a reader of the replaced file may get the new file's size (path-keyed identity)",
)];

/// The mount checks the NFS frontend cannot pass as fuse-nfs mounts it,
/// and why: what NFSv3 cannot say, or what the client (fuse-nfs on
/// libnfs, through libfuse 2's path-based API) does; none is the
/// server's. Each still runs, and must fail.
pub const NFS_GAPS: &[(&str, &str)] = &[
    (
        "chmod_chown_utimens_with_nanoseconds",
        "client: fuse-nfs implements utime(2), whole seconds, not utimens",
    ),
    (
        "mounting_over_a_non_empty_directory_needs_consent",
        "client: fuse-nfs (libfuse 2) refuses a non-empty mount point",
    ),
    (
        "read_only_refuses_changes",
        "client: fuse-nfs's mkdir answers its follow-up chmod's ENOENT, not MKDIR's EROFS",
    ),
    ("rename_noreplace_and_exchange", "NFSv3: RENAME has no flags"),
    ("seek_data_and_seek_hole", "NFSv3: no SEEK"),
    (
        "statfs_shows_the_remote",
        "client: libnfs reports a name length limit of 256 whatever the server says",
    ),
    (
        "symlinks_hard_links_and_inode_numbers",
        "client: fuse-nfs shows libfuse's node numbers, not the server's file ids",
    ),
    (
        "write_errors_reach_the_application",
        "client: fuse-nfs sends no COMMIT at close, where the server reports a failed UNSTABLE write",
    ),
    ("xattrs_round_trip", "NFSv3: no extended attributes"),
    (
        "remote_name_shows_once_the_listing_expires",
        "client: fuse-nfs trusts its listing while the directory's mtime is unchanged",
    ),
];

/// NFS checks that fail only when a race goes one way, and why.
pub const NFS_RACES: &[(&str, &str)] = &[
    (
        "atomic_saves_are_seen_whole",
        "client: libfuse's path-based API first renames an open target to .fuse_hidden*, so the name is briefly absent",
    ),
    (
        "unlinked_open_file_stays_usable",
        "client: libfuse's path-based API renames an open file to .fuse_hidden* and removes it after the close returned",
    ),
];

/// Runs one check of a mount suite for `v`; a declared gap of its
/// frontend or transport must fail, a declared race may.
pub fn run_variant(v: Variant, name: &str, check: fn(Variant)) {
    let (gaps, races, what) = match (v.frontend, v.transport) {
        (super::Frontend::Nfs, _) => (NFS_GAPS, NFS_RACES, "NFS"),
        (super::Frontend::Fuse, Transport::Sftp) => (SFTP_GAPS, SFTP_RACES, "SFTP"),
        (super::Frontend::Fuse, Transport::Local | Transport::Ssh | Transport::Direct) => {
            (&[][..], &[][..], "")
        }
    };
    let find = |list: &[(&str, &'static str)]| list.iter().find(|(n, _)| *n == name).map(|(_, why)| *why);
    if let Some(why) = find(gaps) {
        let outcome = std::panic::catch_unwind(|| check(v));
        assert!(
            outcome.is_err(),
            "{name} is declared an {what} gap ({why}) but passes: remove it"
        );
    } else if let Some(why) = find(races) {
        let outcome = std::panic::catch_unwind(|| check(v));
        let seen = if outcome.is_ok() {
            "passed this time"
        } else {
            "failed, as declared"
        };
        eprintln!("{name}: a declared {what} race ({why}): {seen}");
    } else {
        check(v);
    }
}

impl Mount {
    /// Mounts a fresh backing directory as `v` says with `extra` CLI
    /// arguments; returns once `yonder mount` reports the mount usable.
    pub fn start(v: Variant, extra: &[&str]) -> Mount {
        Self::start_on(v, backing_dir(), extra)
    }

    pub fn start_on(v: Variant, backing: tempfile::TempDir, extra: &[&str]) -> Mount {
        // `yonder mount` creates the missing mount point.
        let parent = mount_parent();
        Self::spawn(v, backing, parent, extra, false)
    }

    /// Mounts at `parent/mnt`, as the caller has prepared it.
    pub fn start_at(
        v: Variant,
        backing: tempfile::TempDir,
        parent: tempfile::TempDir,
        extra: &[&str],
    ) -> Mount {
        Self::spawn(v, backing, parent, extra, false)
    }

    /// Like [`Mount::start`], with `yonder mount` logging at the default
    /// level whatever the test's environment asks for, so that
    /// [`Mount::log`] shows what a user would see.
    pub fn start_logged(v: Variant, extra: &[&str]) -> Mount {
        // `yonder mount` creates the missing mount point.
        let parent = mount_parent();
        Self::spawn(v, backing_dir(), parent, extra, true)
    }

    /// A second mount of `other`'s backing directory (its own mount point
    /// and `yonder mount`), with `env` set for it (and so for a local
    /// agent it starts).
    pub fn beside(v: Variant, other: &Mount, extra: &[&str], env: &[(&str, &str)]) -> Mount {
        Self::spawn_with(
            v,
            backing_dir(),
            Some(other.backing.path()),
            mount_parent(),
            extra,
            env,
            false,
        )
    }

    /// Like [`Mount::start_logged`], with `env` set for `yonder mount`
    /// (and so for a local agent it starts).
    pub fn start_logged_with_env(v: Variant, extra: &[&str], env: &[(&str, &str)]) -> Mount {
        Self::spawn_with(v, backing_dir(), None, mount_parent(), extra, env, true)
    }

    /// Runs a `yonder mount` of `backing` at `mountpoint` that must fail;
    /// returns what it said.
    pub fn refused(v: Variant, backing: &Path, mountpoint: &Path, extra: &[&str]) -> String {
        let sshd = v
            .transport
            .needs_sshd()
            .then(|| Sshd::start().expect("start sshd"));
        let mut cmd = mount_command(v, backing, mountpoint, extra, sshd.as_ref());
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_timeout(&mut child, Duration::from_secs(30)).expect("yonder mount hung");
        let mut stdout = String::new();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(
            !status.success() && stdout.is_empty(),
            "yonder mount should have failed: {status}, stdout {stdout:?}, stderr {stderr:?}"
        );
        stderr
    }

    /// What `yonder mount` has written to stderr so far.
    pub fn log(&self) -> String {
        self.stderr()
    }

    fn spawn(
        v: Variant,
        backing: tempfile::TempDir,
        parent: tempfile::TempDir,
        extra: &[&str],
        logged: bool,
    ) -> Mount {
        Self::spawn_with(v, backing, None, parent, extra, &[], logged)
    }

    /// `source`: the directory to mount when it is not `backing`.
    fn spawn_with(
        v: Variant,
        backing: tempfile::TempDir,
        source: Option<&Path>,
        parent: tempfile::TempDir,
        extra: &[&str],
        env: &[(&str, &str)],
        logged: bool,
    ) -> Mount {
        let sshd = v
            .transport
            .needs_sshd()
            .then(|| Sshd::start().expect("start sshd"));
        let mountpoint = parent.path().join("mnt");
        let source = source.unwrap_or(backing.path());
        let mut cmd = mount_command(v, source, &mountpoint, extra, sshd.as_ref());
        if logged {
            cmd.env_remove("YONDER_LOG");
        }
        cmd.envs(env.iter().copied());
        let (child, stderr) = launch(cmd, &mountpoint);
        Mount {
            backing,
            mountpoint,
            _mount_parent: parent,
            child: Some(child),
            stderr,
            _sshd: sshd,
            frontend: v.frontend,
        }
    }

    /// A path inside the mount.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.mountpoint.join(rel)
    }

    /// The same path on the backing directory (the "remote" disk).
    pub fn disk(&self, rel: &str) -> PathBuf {
        self.backing.path().join(rel)
    }

    /// What `yonder mount` has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits for `yonder mount` to exit; returns its status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        signal(child.id(), libc::SIGTERM);
        let status = wait_timeout(&mut child, Duration::from_secs(30));
        status.and_then(|s| s.code())
    }

    /// Waits (at most 30 s) for `yonder mount` to exit; returns its status code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        wait_timeout(&mut child, Duration::from_secs(30)).and_then(|s| s.code())
    }

    /// After [`Mount::kill`]: removes the dead mount and mounts the same
    /// backing directory at the same mount point again, with `extra`.
    pub fn restart(&mut self, v: Variant, extra: &[&str]) {
        let _ = Command::new("fusermount3")
            .args(["-uz"])
            .arg(&self.mountpoint)
            .output();
        let cmd = mount_command(
            v,
            self.backing.path(),
            &self.mountpoint,
            extra,
            self._sshd.as_ref(),
        );
        let (child, stderr) = launch(cmd, &self.mountpoint);
        self.child = Some(child);
        self.stderr = stderr;
    }

    /// Kills `yonder mount` with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `cmd` (a `yonder mount --foreground` at `mountpoint`) and waits
/// for it to report the mount usable; its stderr is passed on as it comes
/// (a failing test shows it) and kept for tests that check what was said.
fn launch(mut cmd: Command, mountpoint: &Path) -> (Child, Arc<Mutex<String>>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let (pipe, kept) = (child.stderr.take().unwrap(), stderr.clone());
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let mut kept = kept.lock().unwrap();
            kept.push_str(&line);
            kept.push('\n');
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("yonder mount printed nothing within 30 s");
    assert_eq!(
        line.trim_end(),
        mountpoint.display().to_string(),
        "yonder mount should print the mount point"
    );
    (child, stderr)
}

fn backing_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("yonder-backing")
        .tempdir()
        .unwrap()
}

fn mount_parent() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("yonder-mnt").tempdir().unwrap()
}

/// `yonder mount` of `backing` at `mountpoint` as `v` says.
fn mount_command(
    v: Variant,
    backing: &Path,
    mountpoint: &Path,
    extra: &[&str],
    sshd: Option<&Sshd>,
) -> Command {
    let (source, options) = source_for(v.transport, backing, sshd);
    let mut cmd = Command::new(yonder_bin());
    // The suites watch the `yonder mount` process itself (its output, its
    // exit on unmount or signal): the foreground form.
    cmd.arg("mount")
        .arg("--foreground")
        .arg(&source)
        .arg(mountpoint)
        .args(v.frontend.mount_args())
        .args(extra)
        .envs(v.frontend.mount_env());
    for o in &options.ssh_options {
        cmd.args(["-o", o]);
    }
    if let Some(agent) = &options.agent_path {
        cmd.args(["--agent-path", agent]);
    }
    if options.sftp {
        cmd.arg("--sftp");
    }
    if options.direct.transport != yonder_remote::TransportChoice::Auto {
        cmd.args(["--transport", &options.direct.transport.to_string()]);
    }
    cmd
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.terminate().is_none() && is_mounted(&self.mountpoint) {
            // Cleanup after a test: what fusermount3 says is no one's concern.
            let _ = Command::new("fusermount3")
                .args(["-uz"])
                .arg(&self.mountpoint)
                .output();
        }
        if self.frontend == super::Frontend::Nfs {
            // fuse-nfs outlives a server that stopped under open files,
            // retrying forever: the test started it, the test ends it.
            for pid in fuse_nfs_processes(&self.mountpoint) {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// The fuse-nfs processes serving `mountpoint`, by their command lines.
fn fuse_nfs_processes(mountpoint: &Path) -> Vec<u32> {
    let binary = super::fuse_nfs_binary().as_os_str().as_encoded_bytes().to_vec();
    let mountpoint = mountpoint.as_os_str().as_encoded_bytes().to_vec();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let ours = args.first() == Some(&binary.as_slice())
                && args
                    .windows(2)
                    .any(|w| w[0] == b"-m" && w[1] == mountpoint.as_slice());
            ours.then_some(pid)
        })
        .collect()
}

pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a child pid we own; no memory is involved.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().ok().filter(|_| false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `path` is a mount point now, from /proc/self/mountinfo.
pub fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let path = path.display().to_string();
    info.lines().any(|l| l.split(' ').nth(4) == Some(path.as_str()))
}
