//! `yonder mount`: in the foreground (`--foreground`), or handed to the
//! manager (`manager_cmd`).
//!
//! `-o` takes comma-separated options, as sshfs does, for both layers: a key
//! that begins with an upper-case letter is an ssh option (`-o
//! IdentityFile=~/.ssh/k`, `-o ProxyJump=bastion`; ssh's option names are
//! all capitalised), anything else is a mount option (`-o noexec`,
//! `-o default_permissions`, `-o fsname=data`).

use crate::{ConnectArgs, LinkArgs};
use anyhow::Context as _;
use clap::Args;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio::runtime::Runtime;
#[cfg(unix)]
use tokio::signal::unix::{signal, Signal, SignalKind};
use yonder_manager::delivery::deliver_pending;
use yonder_manager::mount_builder::{fuse_config, MountBuilder};
use yonder_manager::protocol::{ConnectSpec, MountSpec};
use yonder_remote::{Link, LinkState, Source};
use yonder_vfs::frontend::MountHandle;

#[derive(Args)]
pub struct MountArgs {
    /// What to mount: a local path, [user@]host:[path] or ssh://[user@]host[:port][/path].
    source: String,
    /// Where to mount it; created if missing.
    mountpoint: PathBuf,
    /// Refuse every change.
    #[arg(long)]
    read_only: bool,
    /// Seconds the kernel and yonder trust file attributes while the
    /// remote pushes its changes (they show within a second regardless);
    /// at most 1 s when its watch fails, at most 20 s where nothing can
    /// push changes (--sftp, as sshfs). Changes made through
    /// this mount are seen at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    attr_ttl: f64,
    /// Seconds the kernel and yonder trust directory entries and listings
    /// while the remote pushes its changes; at most 1 s when its watch
    /// fails, 20 s with --sftp.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    dir_ttl: f64,
    /// Let other users (and root) use the mount, each with their own
    /// rights: the kernel checks permissions from modes and ACLs
    /// (default_permissions). Non-root mounters need `user_allow_other` in
    /// /etc/fuse.conf.
    #[arg(long)]
    allow_other: bool,
    /// With --allow-other, leave the kernel's permission checks off: every
    /// local user who can reach the mount then acts with the rights of the
    /// remote agent's user (as sshfs does without default_permissions).
    #[arg(long)]
    no_default_permissions: bool,
    /// Mount over a directory that is not empty, hiding its contents.
    #[arg(long)]
    allow_non_empty: bool,
    /// Options, comma-separated and repeatable: `KEY=VALUE` with a
    /// capitalised KEY goes to ssh, anything else is a mount option.
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,
    /// Mount in this process, which serves until it is unmounted or
    /// signalled (Ctrl+C), instead of handing the mount to the manager.
    #[arg(long)]
    foreground: bool,
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    link: LinkArgs,
    /// Seconds an operation waits for a lost connection to come back,
    /// counted from its start (and from the start of the outage), before
    /// failing with EIO.
    #[arg(long, value_name = "SECONDS", default_value_t = 20.0)]
    op_timeout: f64,
    /// Metadata write-back: creates, removals and attribute changes the
    /// mount's caches vouch for are acknowledged at once and carried out on
    /// the remote in order in the background (errors at close, fsync, in
    /// `yonder events` and the log), kept in a journal on local disk until
    /// delivered, so a crash loses none of it: the next mount of the same
    /// SOURCE at the same MOUNTPOINT delivers it first. `off`: each waits
    /// for the remote.
    #[arg(long, value_name = "on|off", default_value = "off", value_parser = ["on", "off"])]
    write_back: String,
    /// Directory of the write-back journal, where every operation
    /// acknowledged and not yet delivered is kept on disk (replayed when
    /// the mount comes back after a crash). Default:
    /// `${XDG_CACHE_HOME:-~/.cache}/yonder`.
    #[arg(long, value_name = "DIR")]
    write_back_cache: Option<PathBuf>,
    /// What serves the mount to programs: `fuse`, or `nfs` (a server on
    /// 127.0.0.1 mounted with the OS's NFS client, for systems without
    /// FUSE). Default: fuse where /dev/fuse exists, else nfs.
    #[arg(long, value_name = "fuse|nfs", value_parser = ["fuse", "nfs"])]
    backend: Option<String>,
}

/// FUSE where the kernel has it, NFS elsewhere.
fn default_backend() -> &'static str {
    if Path::new("/dev/fuse").exists() {
        yonder_fuse::FRONTEND_NAME
    } else {
        yonder_nfs::FRONTEND_NAME
    }
}

/// Reads the `-o` words (with the one parser every entry point uses)
/// into `args`, as the matching flags would set them; returns (ssh
/// options, the words for the kernel mount). Refuses a word yonder does
/// not take before anything connects.
fn fold_options(args: &mut MountArgs) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let o = yonder_fuse::MountOptions::parse(&args.options)?;
    args.read_only |= o.read_only;
    args.allow_other |= o.allow_other;
    args.no_default_permissions |= o.no_default_permissions;
    args.allow_non_empty |= o.allow_non_empty;
    args.connect.debug |= o.debug;
    args.link.no_reconnect |= o.no_reconnect;
    args.connect.sftp |= o.sftp;
    args.connect.no_deploy |= o.no_deploy;
    let set = |value: Option<f64>, flag: &mut f64| *flag = value.unwrap_or(*flag);
    set(o.attr_ttl, &mut args.attr_ttl);
    set(o.dir_ttl, &mut args.dir_ttl);
    set(o.op_timeout, &mut args.op_timeout);
    if let Some(on) = o.write_back {
        args.write_back = if on { "on" } else { "off" }.into();
    }
    if let Some(dir) = &o.write_back_cache {
        args.write_back_cache = Some(PathBuf::from(dir));
    }
    set(o.heartbeat, &mut args.link.heartbeat);
    args.link.heartbeat_misses = o.heartbeat_misses.unwrap_or(args.link.heartbeat_misses);
    args.link.reconnect_timeout = o.reconnect_timeout.or(args.link.reconnect_timeout);
    args.connect.ssh_command = o.ssh_command.clone().or(args.connect.ssh_command.take());
    args.connect.agent_path = o.agent_path.clone().or(args.connect.agent_path.take());
    args.connect.docker_command = o.docker_command.clone().or(args.connect.docker_command.take());
    if let Some(transport) = &o.transport {
        args.connect.transport = transport.parse().map_err(anyhow::Error::msg)?;
    }
    args.connect.direct_bind = o.direct_bind.clone().or(args.connect.direct_bind.take());
    args.connect.direct_connect = o.direct_connect.clone().or(args.connect.direct_connect.take());
    args.connect.key = o.key.as_ref().map(PathBuf::from).or(args.connect.key.take());
    args.connect.direct_streams = o.direct_streams.or(args.connect.direct_streams);
    let mut fuse_options = o.fuse_options();
    if o.default_permissions {
        fuse_options.push("default_permissions".into());
    }
    Ok((o.ssh_options, fuse_options))
}

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        value.is_finite() && value >= 0.0,
        "--{name} must be a number of seconds >= 0, not {value}"
    );
    Ok(Duration::from_secs_f64(value))
}

/// Creates a missing mount point; refuses a file, a live mount point or
/// (without `allow_non_empty`) a non-empty directory, before anything
/// connects. Returns the topmost directory it created, if any.
fn prepare_mountpoint(path: &Path, allow_non_empty: bool) -> anyhow::Result<Option<PathBuf>> {
    let mounted = yonder_fuse::mounted_at(path);
    if let (Some(what), false) = (&mounted, allow_non_empty) {
        anyhow::bail!(
            "{} is already a mount point ({} from {}); unmount it first",
            path.display(),
            what.fs_type,
            what.source
        );
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let top = path
                .ancestors()
                .take_while(|p| !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err())
                .last()
                .map(Path::to_path_buf);
            std::fs::create_dir_all(path)
                .with_context(|| format!("cannot create mount point {}", path.display()))?;
            Ok(top)
        }
        Err(e) => match mounted {
            Some(what) => Err(anyhow::anyhow!(
                "{} is a mount point that does not answer ({} from {}: {e}); `yonder unmount {}` removes it",
                path.display(),
                what.fs_type,
                what.source,
                path.display()
            )),
            None => Err(anyhow::anyhow!("mount point {}: {e}", path.display())),
        },
        Ok(meta) => {
            let meta = if meta.file_type().is_symlink() {
                std::fs::metadata(path).with_context(|| format!("mount point {}", path.display()))?
            } else {
                meta
            };
            anyhow::ensure!(meta.is_dir(), "mount point {} is not a directory", path.display());
            if !allow_non_empty {
                let mut entries =
                    std::fs::read_dir(path).with_context(|| format!("mount point {}", path.display()))?;
                anyhow::ensure!(
                    entries.next().is_none(),
                    "mount point {} is not empty (use --allow-non-empty to mount over it)",
                    path.display()
                );
            }
            Ok(None)
        }
    }
}

/// Removes the directories [`prepare_mountpoint`] created for a mount that
/// then failed, from `path` up to `top`, each only while it is empty.
fn remove_created_mountpoint(path: &Path, top: Option<&Path>) {
    let Some(top) = top else { return };
    for dir in path.ancestors() {
        let removed = match std::fs::remove_dir(dir) {
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            Ok(()) => true,
        };
        if !removed || dir == top {
            break;
        }
    }
}

pub fn run(mut args: MountArgs) -> anyhow::Result<ExitCode> {
    let (ssh_options, mount_options) = fold_options(&mut args)?;
    crate::logging::init(args.connect.debug, None)?;
    let source = Source::parse(&args.source)?;
    source.check_local_root(&args.source)?;
    anyhow::ensure!(
        !(args.no_default_permissions && mount_options.iter().any(|o| o == "default_permissions")),
        "--no-default-permissions conflicts with -o default_permissions"
    );
    let mut connect = args.connect.options();
    connect.ssh_options.extend(ssh_options);
    let link_options = args.link.options()?;
    let op_timeout = seconds("op-timeout", args.op_timeout)?;
    let spec = MountSpec {
        connect: ConnectSpec::new(args.source.clone(), &connect, args.link.spec()),
        mountpoint: args.mountpoint.clone(),
        read_only: args.read_only,
        attr_ttl_secs: seconds("attr-ttl", args.attr_ttl)?.as_secs_f64(),
        dir_ttl_secs: seconds("dir-ttl", args.dir_ttl)?.as_secs_f64(),
        allow_other: args.allow_other || mount_options.iter().any(|o| o == "allow_other"),
        default_permissions: mount_options.iter().any(|o| o == "default_permissions"),
        no_default_permissions: args.no_default_permissions,
        allow_non_empty: args.allow_non_empty,
        fuse_options: mount_options,
        debug: args.connect.debug,
        op_timeout_secs: op_timeout.as_secs_f64(),
        frontend: args.backend.clone().unwrap_or_else(|| default_backend().into()),
        write_back: args.write_back == "on",
        write_back_cache: args
            .write_back_cache
            .as_deref()
            .map(std::path::absolute)
            .transpose()
            .context("--write-back-cache")?,
    };
    // Only a foreground mount is made by this process (and guarded).
    let guard = args
        .foreground
        .then(|| crate::unmount_guard_cmd::spawn(None))
        .flatten();
    let builder = MountBuilder::new(&spec, guard)?;
    let config = fuse_config(&spec);
    if config.allows_other() && !config.kernel_checks_permissions() {
        eprintln!(
            "yonder: warning: --no-default-permissions: permissions are not checked; every user who can \
             reach {} acts with the rights of the remote agent's user",
            args.mountpoint.display()
        );
    }
    let created = prepare_mountpoint(&args.mountpoint, spec.allow_non_empty)?;
    if op_timeout < link_options.dead_after() {
        eprintln!(
            "yonder: warning: --op-timeout {:.0} s is shorter than the time a dead connection takes to \
             notice (--heartbeat x --heartbeat-misses = {:.0} s): operations may wait that long",
            op_timeout.as_secs_f64(),
            link_options.dead_after().as_secs_f64()
        );
    }
    if !args.foreground {
        let result = crate::manager_cmd::mount(spec, created.is_some());
        if result.is_err() {
            // The mount point itself is gone already; the parents made for it go too.
            remove_created_mountpoint(&args.mountpoint, created.as_deref());
        }
        return result;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("yonder")
        .build()?;
    // A signal while connecting (Ctrl+C at ssh's password prompt, say)
    // gives up: the connection attempt is dropped, which ends ssh, and the
    // mount point made for the mount goes. Once mounted, a signal unmounts.
    let mut signals = runtime.block_on(async { Signals::install() })?;
    #[cfg(unix)]
    crate::mount_helper::signals_caught();
    // The link reconnects by itself; the VFS takes each new connection.
    let started = runtime.block_on(async {
        let link = tokio::select! {
            link = Link::connect(&source, &connect, link_options) => link?,
            signal = signals.next() => return Ok(Err(signal)),
        };
        let built = builder.start(&link, &args.mountpoint).await?;
        if let Some(replayed) = &built.replayed {
            eprintln!("yonder: {replayed}");
        }
        anyhow::Ok(Ok((link, built.handle)))
    });
    let (link, mounted) = match started {
        Ok(Ok(started)) => started,
        Ok(Err(signal)) => {
            remove_created_mountpoint(&args.mountpoint, created.as_deref());
            eprintln!(
                "yonder: {signal} before {} was mounted; nothing mounted",
                args.mountpoint.display()
            );
            return Ok(ExitCode::from(130));
        }
        Err(err) => {
            remove_created_mountpoint(&args.mountpoint, created.as_deref());
            return Err(err);
        }
    };
    if let Some(notice) = yonder_remote::transport_notice(&link.transport(), &source) {
        eprintln!("yonder: {notice}");
    }
    // Scripts wait for this line: the mount is usable once it is printed.
    println!("{}", mounted.mountpoint().display());
    std::io::stdout().flush()?;
    #[cfg(unix)]
    crate::mount_helper::detach_stdio_once_ready();
    serve_until_signal(&runtime, mounted, &args.source, signals)?;
    link.close();
    // The link tells its agent all is settled before it ends it, so that
    // the agent's records of this session go with it.
    let mut status = link.watch();
    runtime.block_on(async {
        let closed =
            status.wait_for(|s| matches!(&s.state, LinkState::Disconnected { reason } if reason == "closed"));
        let _ = tokio::time::timeout(Duration::from_secs(3), closed).await;
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(ExitCode::SUCCESS)
}

/// SIGINT, SIGTERM and SIGHUP, as they arrive; on Windows, Ctrl+C.
struct Signals {
    #[cfg(unix)]
    int: Signal,
    #[cfg(unix)]
    term: Signal,
    #[cfg(unix)]
    hup: Signal,
    #[cfg(windows)]
    ctrl_c: tokio::signal::windows::CtrlC,
}

impl Signals {
    /// Installs the handlers; needs the runtime's context.
    #[cfg(unix)]
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    #[cfg(windows)]
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            ctrl_c: tokio::signal::windows::ctrl_c()?,
        })
    }

    /// The next signal's name (one that came while no one was waiting counts).
    #[cfg(unix)]
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }

    #[cfg(windows)]
    async fn next(&mut self) -> &'static str {
        self.ctrl_c.recv().await;
        "Ctrl+C"
    }
}

enum Event {
    Signal(&'static str),
    Ended,
}

/// Serves until unmounted from outside (`yonder unmount`), or until a
/// signal: the first sends buffered writes and detaches the mount lazily,
/// serving files still open until they are closed; a second stops at once.
fn serve_until_signal(
    runtime: &Runtime,
    mounted: Box<dyn MountHandle>,
    source: &str,
    mut signals: Signals,
) -> anyhow::Result<()> {
    // The next event, or None if `timeout` passes first.
    let mut next = |timeout: Option<Duration>| {
        let ended = mounted.ended();
        runtime.block_on(async {
            let event = async {
                tokio::select! {
                    name = signals.next() => Event::Signal(name),
                    () = ended => Event::Ended,
                }
            };
            match timeout {
                Some(timeout) => tokio::time::timeout(timeout, event).await.ok(),
                None => Some(event.await),
            }
        })
    };
    let mountpoint = mounted.mountpoint().display().to_string();
    let name = match next(None) {
        Some(Event::Signal(name)) => name,
        _ => {
            tracing::info!("{mountpoint} was unmounted");
            mounted.wait()?;
            return Ok(());
        }
    };
    tracing::info!("{name}: unmounting {mountpoint}");
    let delivered = deliver_pending(&*mounted, source, &|line| eprintln!("yonder: {line}"));
    if let Err(e) = delivered {
        tracing::warn!("before unmounting: {e}");
    }
    let detached = mounted.unmount(true);
    // Without open files the session ends as soon as the kernel lets go.
    let mut event = next(Some(Duration::from_millis(200)));
    if event.is_none() {
        tracing::warn!(
            "files under {mountpoint} are still open; serving them until they are closed \
             (send {name} again to stop now)"
        );
        event = next(None);
    }
    match event {
        Some(Event::Signal(again)) => {
            // The session thread is left serving; the process's end takes
            // the mount's connection with it.
            tracing::warn!("{again}: stopping with files still open under the mount");
            detached?;
        }
        _ => {
            detached?;
            mounted.wait()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_fold_into_the_flags() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            mount: MountArgs,
        }
        let mut args = Cli::parse_from([
            "yonder",
            "-o",
            "IdentityFile=/k,default_permissions",
            "-o",
            "noexec,port=2222,attr_ttl=3,ro,agent_path=/opt/yonder,relatime",
            "--dir-ttl",
            "4",
            "src",
            "mnt",
        ])
        .mount;
        let (ssh, mount) = fold_options(&mut args).unwrap();
        assert_eq!(ssh, ["IdentityFile=/k", "Port=2222"]);
        assert_eq!(mount, ["noexec", "default_permissions"]);
        assert!(args.read_only);
        assert_eq!((args.attr_ttl, args.dir_ttl), (3.0, 4.0));
        assert_eq!(args.connect.agent_path.as_deref(), Some("/opt/yonder"));
    }
}
