//! `yonder SOURCE MOUNTPOINT [-o OPTIONS]`: the mount helper form.
//!
//! An `/etc/fstab` line of type `fuse.yonder` is mounted by mount(8), which
//! runs `mount.fuse3`, which runs `yonder SOURCE MOUNTPOINT -o OPTIONS`
//! (sshfs's argument form). By then mount(8) has dropped the options only it
//! understands (`noauto`, `x-systemd.*`, `comment=`, `defaults`), and
//! mount.fuse3 has dropped `_netdev`, `nofail`, `auto`, `user` and its
//! kin, and added `dev,suid` when run as root.
//!
//! Like sshfs, the command returns once the mount is usable, leaving it
//! served in the background: it starts this binary again as a detached
//! `yonder mount --foreground` (a session of its own, no terminal), waits
//! for the line that process prints when the mount is ready, and relays its
//! error and exit code if it fails instead.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

/// Set in the environment of the detached `yonder mount`: once the mount is
/// ready, it points its stdout and stderr at /dev/null, as nobody reads
/// them any more.
const DETACHED_ENV: &str = "YONDER_DETACHED";

/// Runs the helper form if `args` (the whole argv) is one: a first argument
/// that is not a subcommand or a flag and looks like a SOURCE (it has a `:`
/// or a `/`), then a MOUNTPOINT. Returns `None` to let the subcommands parse.
pub fn main_if_helper_form(cli: &clap::Command) -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if !is_helper_form(&args, cli) {
        return None;
    }
    Some(match run(&args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("yonder: {err:#}");
            ExitCode::FAILURE
        }
    })
}

fn is_helper_form(args: &[OsString], cli: &clap::Command) -> bool {
    let (Some(first), Some(second)) = (args.first(), args.get(1)) else {
        return false;
    };
    let first = first.as_bytes();
    let is_subcommand = cli
        .get_subcommands()
        .any(|c| c.get_name().as_bytes() == first || c.get_all_aliases().any(|a| a.as_bytes() == first))
        || first == b"help";
    !is_subcommand
        && !first.starts_with(b"-")
        && !second.as_bytes().starts_with(b"-")
        && first.iter().any(|&b| b == b':' || b == b'/')
}

/// What the helper form asks for.
#[derive(Debug, PartialEq, Eq)]
struct HelperArgs {
    source: OsString,
    mountpoint: OsString,
    /// `-f`: serve in this process instead of in the background.
    foreground: bool,
    /// The `yonder mount` arguments the options translate to.
    mount_args: Vec<OsString>,
}

fn parse(args: &[OsString]) -> anyhow::Result<HelperArgs> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut foreground = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if bytes == b"-o" {
            let value = args
                .next()
                .ok_or_else(|| anyhow::anyhow!("-o needs a value (OPTION[,OPTION...])"))?;
            options.push(utf8(value)?);
        } else if let Some(value) = bytes.strip_prefix(b"-o") {
            options.push(utf8(OsStr::from_bytes(value))?);
        } else if bytes == b"-f" {
            foreground = true;
        } else if bytes.starts_with(b"-") && bytes.len() > 1 {
            anyhow::bail!(
                "unknown flag {}; usage: yonder SOURCE MOUNTPOINT [-f] [-o OPTION[,OPTION...]]",
                arg.to_string_lossy()
            );
        } else {
            positional.push(arg.clone());
        }
    }
    let [source, mountpoint]: [OsString; 2] = positional.try_into().map_err(|p: Vec<OsString>| {
        anyhow::anyhow!(
            "expected SOURCE MOUNTPOINT, got {} arguments; usage: yonder SOURCE MOUNTPOINT [-o OPTION[,OPTION...]]",
            p.len()
        )
    })?;
    if mountpoint.as_bytes().starts_with(b"/dev/fd/") {
        anyhow::bail!(
            "mount point {}: mount.fuse3's drop_privileges is not supported; leave it out",
            mountpoint.to_string_lossy()
        );
    }
    // Checked here, to refuse at once rather than from the detached
    // process, and read again there, by the same parser.
    yonder_fuse::MountOptions::parse(&options)?;
    let mut mount_args = Vec::new();
    for option in options {
        mount_args.extend(["-o".into(), OsString::from(option)]);
    }
    Ok(HelperArgs {
        source,
        mountpoint,
        foreground,
        mount_args,
    })
}

fn utf8(value: &OsStr) -> anyhow::Result<&str> {
    value
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("options are not valid UTF-8: {}", value.to_string_lossy()))
}

/// `yonder mount --foreground ...` for `args`.
fn mount_command_args(args: &HelperArgs) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["mount".into(), "--foreground".into()];
    argv.extend(args.mount_args.iter().cloned());
    argv.push("--".into());
    argv.push(args.source.clone());
    argv.push(args.mountpoint.clone());
    argv
}

fn run(args: &[OsString]) -> anyhow::Result<ExitCode> {
    let args = parse(args)?;
    let exe =
        std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find the yonder executable: {e}"))?;
    let argv = mount_command_args(&args);
    if args.foreground {
        let err = Command::new(exe).args(&argv).exec();
        anyhow::bail!("cannot run yonder mount: {err}");
    }
    // stderr goes to an anonymous in-memory file rather than a pipe: the
    // mount's helpers (fusermount3) inherit it and outlive this process,
    // and must never write into a pipe nobody reads.
    let stderr = memfd("yonder-mount-stderr")?;
    let mut command = Command::new(exe);
    command
        .args(&argv)
        .env(DETACHED_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr.try_clone()?));
    // SAFETY: setsid(2) is async-signal-safe and touches no memory; it
    // detaches the mount from this terminal and session, so that closing
    // them (or Ctrl+C there) does not end it.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    catch_signals();
    let mut child = command
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run yonder mount: {e}"))?;
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    // A signal passed on before the mount process catches signals would
    // end it unheard: until it says it does, signals wait here.
    let mut read = stdout.read_line(&mut line);
    if line == SIGNALS_CAUGHT {
        forward_signals_to(child.id());
        line.clear();
        read = stdout.read_line(&mut line);
    }
    let ready = matches!(read, Ok(n) if n > 0 && line.ends_with('\n'));
    // Without the line the mount failed: its exit status and what it said.
    let status = if ready { None } else { Some(child.wait()?) };
    relay(stderr)?;
    match status.map(|s| s.code()) {
        None => Ok(ExitCode::SUCCESS),
        Some(Some(code)) if code != 0 => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
        Some(_) => anyhow::bail!(
            "yonder mount of {} ended before the mount was ready ({})",
            args.mountpoint.to_string_lossy(),
            status.expect("status")
        ),
    }
}

/// The detached mount process while this one waits for it, and the last
/// signal that came before it was started.
static CHILD: AtomicI32 = AtomicI32::new(0);
static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(signal: libc::c_int) {
    match CHILD.load(Ordering::SeqCst) {
        0 => PENDING.store(signal, Ordering::SeqCst),
        // SAFETY: kill(2) is async-signal-safe and touches no memory.
        pid => unsafe {
            libc::kill(pid, signal);
        },
    }
}

/// From now on SIGINT, SIGTERM and SIGHUP go to the mount process (see
/// [`forward_signals_to`]) rather than end this one.
fn catch_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only uses atomics and kill(2), which are
        // async-signal-safe; glibc's signal() installs it with SA_RESTART,
        // so the reads it interrupts restart. A handler does not survive
        // exec: the mount process starts with the default dispositions.
        unsafe {
            libc::signal(signal, forward_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Passes SIGINT, SIGTERM and SIGHUP on to the mount process while this one
/// waits: the mount is in a session of its own, so Ctrl+C, or a timeout of
/// systemd's, would otherwise stop only the waiting and leave the mount to
/// come up later in the background. One that came during the start goes
/// to it now.
fn forward_signals_to(pid: u32) {
    CHILD.store(pid as i32, Ordering::SeqCst);
    let pending = PENDING.swap(0, Ordering::SeqCst);
    if pending != 0 {
        // SAFETY: kill(2) on the child just started; no memory is involved.
        unsafe {
            libc::kill(pid as i32, pending);
        }
    }
}

/// Copies what the mount process has written to its stderr so far to ours.
/// Reads by position: the file offset is shared with the processes still
/// writing there.
fn relay(stderr: OwnedFd) -> anyhow::Result<()> {
    use std::os::unix::fs::FileExt as _;
    let file = std::fs::File::from(stderr);
    let mut said = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match file.read_at(&mut chunk, said.len() as u64) {
            Ok(0) => break,
            Ok(n) => said.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut out = std::io::stderr().lock();
    out.write_all(&said)?;
    out.flush()?;
    Ok(())
}

#[cfg(not(target_os = "macos"))]
fn memfd(name: &str) -> anyhow::Result<OwnedFd> {
    use std::os::fd::FromRawFd as _;
    let name = std::ffi::CString::new(name).expect("no NUL in the name");
    // SAFETY: memfd_create(2) reads the NUL-terminated name and returns a
    // new descriptor (or -1), which is owned from here on.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        anyhow::bail!("memfd_create: {}", std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// macOS has no memfd_create(2); a file unlinked as soon as it is open
/// serves the same purpose.
#[cfg(target_os = "macos")]
fn memfd(name: &str) -> anyhow::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
    std::fs::remove_file(&path).map_err(|e| anyhow::anyhow!("removing {}: {e}", path.display()))?;
    Ok(file.into())
}

/// Called by `yonder mount` once the mount is ready and announced: a mount
/// started by the helper form has no one reading its stdout and stderr any
/// more, so they go to /dev/null (a write to a pipe nobody reads fails).
/// What the detached mount process prints first, once its signal handlers
/// are in place (see [`signals_caught`]).
const SIGNALS_CAUGHT: &str = "yonder: catching signals\n";

/// Tells the waiting helper, if this mount process was started by one,
/// that signals passed on to it from now on are handled.
pub fn signals_caught() {
    if std::env::var_os(DETACHED_ENV).is_none() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(SIGNALS_CAUGHT.as_bytes())
        .and_then(|()| out.flush());
}

pub fn detach_stdio_once_ready() {
    if std::env::var_os(DETACHED_ENV).is_none() {
        return;
    }
    let _ = std::io::stderr().flush();
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2(2) onto the standard descriptors, which this process
        // keeps open for its whole life; `null` stays valid for the call.
        unsafe {
            libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn cli() -> clap::Command {
        clap::Command::new("yonder")
            .subcommand(clap::Command::new("mount"))
            .subcommand(clap::Command::new("unmount").alias("umount"))
    }

    #[test]
    fn helper_form_is_told_from_subcommands() {
        let cli = cli();
        assert!(is_helper_form(&args(&["host:/srv", "/mnt/x", "-o", "ro"]), &cli));
        assert!(is_helper_form(&args(&["/srv/data", "/mnt/x"]), &cli));
        assert!(!is_helper_form(&args(&["mount", "host:/srv", "/mnt/x"]), &cli));
        assert!(!is_helper_form(&args(&["umount", "/mnt/x", "x"]), &cli));
        assert!(!is_helper_form(&args(&["help", "/mnt/x"]), &cli));
        assert!(!is_helper_form(&args(&["--help"]), &cli));
        assert!(!is_helper_form(&args(&["host:/srv"]), &cli));
        // A mistyped subcommand is left to clap, which says so.
        assert!(!is_helper_form(&args(&["moutn", "a"]), &cli));
        assert!(!is_helper_form(&args(&["host:/srv", "--help"]), &cli));
    }

    #[test]
    fn fstab_options_pass_to_mount_as_they_are() {
        let parsed = parse(&args(&[
            "root@127.0.0.1:/srv/data",
            "/mnt/x",
            "-o",
            "ro,allow_other,port=2222,IdentityFile=/k,default_permissions,dev,suid",
            "-onoexec,_netdev,x-systemd.automount,ssh_command=ssh -F cfg",
            "-o",
            "heartbeat=2,op_timeout=30,no_reconnect",
        ]))
        .unwrap();
        assert!(!parsed.foreground);
        let argv: Vec<String> = mount_command_args(&parsed)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            argv,
            [
                "mount",
                "--foreground",
                "-o",
                "ro,allow_other,port=2222,IdentityFile=/k,default_permissions,dev,suid",
                "-o",
                "noexec,_netdev,x-systemd.automount,ssh_command=ssh -F cfg",
                "-o",
                "heartbeat=2,op_timeout=30,no_reconnect",
                "--",
                "root@127.0.0.1:/srv/data",
                "/mnt/x",
            ]
        );
    }

    #[test]
    fn bad_input_is_refused_in_one_line() {
        let err = |list: &[&str]| parse(&args(list)).unwrap_err().to_string();
        for (list, expect) in [
            (
                &["h:/p", "/m", "-o", "reconnect"][..],
                "mount option reconnect: an sshfs option yonder does without",
            ),
            (
                &["h:/p", "/m", "-o", "frobnicate=1000"],
                "unknown mount option \"frobnicate=1000\"",
            ),
            (&["h:/p", "/m", "-o", "port=x"], "port=x: not a port number"),
            (&["h:/p", "/m", "-o", "port="], "port needs a value"),
            (&["h:/p", "/m", "-o"], "-o needs a value"),
            (&["h:/p", "/m", "-x"], "unknown flag -x"),
            (&["h:/p", "/m", "extra"], "expected SOURCE MOUNTPOINT, got 3"),
            (&["h:/p", "/dev/fd/3"], "drop_privileges is not supported"),
        ] {
            let said = err(list);
            assert!(said.contains(expect), "{list:?}: {said}");
            assert!(!said.contains('\n'), "{said}");
        }
    }
}
