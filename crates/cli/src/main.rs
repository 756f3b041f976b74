//! The `yonder` binary: every role in one executable, so a remote machine
//! needs a single file. This crate only parses arguments and wires the
//! library crates together.

mod agent_cmd;
mod completions_cmd;
mod fs_cmd;
mod logging;
mod manager_cmd;
mod mount_cmd;
// The form mount(8) runs for an /etc/fstab line: Unix's alone.
#[cfg(unix)]
mod mount_helper;
mod serve_nfs_cmd;
mod unmount_guard_cmd;

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "yonder",
    version,
    about = "Mount a remote machine's file system locally",
    after_help = "yonder SOURCE MOUNTPOINT [-o OPTIONS] (as mount.fuse3 runs it for an /etc/fstab line of type \
                  fuse.yonder) mounts in the background and returns once the mount is usable."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a directory tree over stdin/stdout (run on the remote by yonder itself).
    Agent(agent_cmd::AgentArgs),
    /// Scripting commands on a SOURCE without mounting it.
    Fs(fs_cmd::FsArgs),
    /// Mount SOURCE at MOUNTPOINT: through the manager (returns once
    /// mounted), or with --foreground in this process (Ctrl+C unmounts).
    Mount(mount_cmd::MountArgs),
    /// Unmount a mount by id or mount point (flushing buffered writes
    /// first), every mount (--all), or any yonder mount point, including
    /// one whose process has died.
    #[command(alias = "umount")]
    Unmount(manager_cmd::UnmountArgs),
    /// Serve SOURCE over NFSv3 on 127.0.0.1 without mounting it; prints
    /// the port and the command that mounts it. Serves until Ctrl+C.
    ServeNfs(serve_nfs_cmd::ServeNfsArgs),
    /// Connect to SOURCE's host through the manager; prints the
    /// connection's id. Mounts of that host reuse it.
    Connect(manager_cmd::ConnectCmdArgs),
    /// List the manager's connections and mounts.
    Status(manager_cmd::StatusArgs),
    /// Print every state change of connections and mounts as it happens.
    Events(manager_cmd::EventsArgs),
    /// Close a connection and unmount its mounts.
    Kill(manager_cmd::KillArgs),
    /// Reconnect a connection (by its id, or a mount's) now, without
    /// waiting for the next attempt; a disconnected one tries again.
    Reconnect(manager_cmd::ReconnectArgs),
    /// The manager daemon: start, stop, status, logs.
    Manager(manager_cmd::ManagerArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(completions_cmd::CompletionsArgs),
    /// Unmounts what a killed mount process leaves behind (started by
    /// yonder itself).
    #[command(hide = true)]
    UnmountGuard,
}

/// How to reach the agent; shared by every command that takes a SOURCE.
#[derive(Args, Clone, Debug, Default)]
pub struct ConnectArgs {
    /// Options for ssh (`KEY=VALUE`); each command decides how `-o` fills it.
    #[arg(skip)]
    pub ssh_option: Vec<String>,
    /// Program (and arguments) to run instead of `ssh`.
    #[arg(long, value_name = "COMMAND")]
    pub ssh_command: Option<String>,
    /// Path of `yonder` on the remote machine (nothing is deployed).
    #[arg(long, value_name = "PATH")]
    pub agent_path: Option<String>,
    /// Serve an ssh source with the host's own SFTP server, no agent:
    /// for hosts where none can run. Some things SFTP cannot express
    /// (docs/sftp.md); attributes and names are trusted at most 20 s, as
    /// sshfs does, since nothing reports changes. Nothing is deployed.
    #[arg(long)]
    pub sftp: bool,
    /// Never copy yonder to a host that lacks it (by default it is sent
    /// over the ssh connection, once, to ~/.cache/yonder on the remote,
    /// when the host's OS and architecture match this binary's; where it
    /// cannot run, the host's SFTP server serves the tree instead, as with
    /// --sftp). With this, a host without yonder is refused.
    #[arg(long)]
    pub no_deploy: bool,
    /// The container client for docker:// and podman:// sources (default:
    /// `docker`, `podman`), e.g. "podman --remote".
    #[arg(long, value_name = "COMMAND")]
    pub docker_command: Option<String>,
    /// What carries the agent's requests: `ssh` (the ssh session that
    /// started it), `direct` (a TCP connection of its own inside TLS 1.3,
    /// opened through the ssh session: past one ssh channel's
    /// throughput), or `auto`: direct where it can be reached from here,
    /// else ssh, said once.
    #[arg(long, value_name = "ssh|direct|auto", default_value_t = yonder_remote::TransportChoice::Auto)]
    pub transport: yonder_remote::TransportChoice,
    /// Where the agent listens for the direct connection (an address of
    /// the remote host; default: the one the ssh connection arrived at).
    #[arg(long, value_name = "ADDR")]
    pub direct_bind: Option<String>,
    /// Connect the direct connection to HOST:PORT instead of where the
    /// agent listens (`HOST:` keeps the listener's port): for a relay or a
    /// proxy in between, as tests and benchmarks use.
    #[arg(long, value_name = "HOST:PORT", hide = true)]
    pub direct_connect: Option<String>,
    /// How many direct connections carry reads and writes (default 4).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub direct_streams: Option<u32>,
    /// The key file of a `tcp://HOST:PORT/PATH` source (the one its
    /// `yonder agent --listen` was given).
    #[arg(long, value_name = "FILE")]
    pub key: Option<std::path::PathBuf>,
    /// Log debug detail to stderr.
    #[arg(long)]
    pub debug: bool,
}

/// How a connection rides out network failures; for every command that
/// makes one (`mount`, `connect`).
#[derive(Args, Clone, Debug)]
pub struct LinkArgs {
    /// Seconds between heartbeats to the remote agent.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub heartbeat: f64,
    /// The connection counts as dead once the agent has been silent for
    /// this many heartbeats; yonder then reconnects.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub heartbeat_misses: u32,
    /// Stop reconnecting after this many seconds without a connection
    /// (default: keep trying; waits between attempts grow from 0.5 s to
    /// 30 s).
    #[arg(long, value_name = "SECONDS")]
    pub reconnect_timeout: Option<f64>,
    /// Never reconnect: once the connection is lost, every operation fails
    /// at once with EIO (until `yonder reconnect`, or unmounting).
    #[arg(long)]
    pub no_reconnect: bool,
}

impl LinkArgs {
    pub fn options(&self) -> anyhow::Result<yonder_remote::LinkOptions> {
        Ok(self.spec().options()?)
    }

    /// The settings as a request to the manager carries them.
    pub fn spec(&self) -> yonder_manager::protocol::LinkSpec {
        yonder_manager::protocol::LinkSpec {
            heartbeat_secs: self.heartbeat,
            heartbeat_misses: self.heartbeat_misses,
            reconnect_timeout_secs: self.reconnect_timeout,
            no_reconnect: self.no_reconnect,
        }
    }
}

impl ConnectArgs {
    pub fn options(&self) -> yonder_remote::ConnectOptions {
        yonder_remote::ConnectOptions {
            ssh_options: self.ssh_option.clone(),
            ssh_command: self.ssh_command.clone(),
            agent_path: self.agent_path.clone(),
            sftp: self.sftp,
            no_deploy: self.no_deploy,
            docker_command: self.docker_command.clone(),
            direct: yonder_remote::DirectOptions {
                transport: self.transport,
                bind: self.direct_bind.clone(),
                connect: self.direct_connect.clone(),
                key_file: self.key.clone(),
                streams: self.direct_streams.unwrap_or(0),
            },
            ..Default::default()
        }
    }
}

fn main() -> ExitCode {
    #[cfg(unix)]
    if let Some(code) = mount_helper::main_if_helper_form(&Cli::command()) {
        return code;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(args) => agent_cmd::run(args),
        Command::Fs(args) => fs_cmd::run(args),
        Command::Mount(args) => mount_cmd::run(args),
        Command::Unmount(args) => manager_cmd::unmount(args),
        Command::ServeNfs(args) => serve_nfs_cmd::run(args),
        Command::Connect(args) => manager_cmd::connect(args),
        Command::Status(args) => manager_cmd::status(args),
        Command::Events(args) => manager_cmd::events(args),
        Command::Kill(args) => manager_cmd::kill(args),
        Command::Reconnect(args) => manager_cmd::reconnect(args),
        Command::Manager(args) => manager_cmd::manager_command(args),
        Command::Completions(args) => completions_cmd::run(args, Cli::command()),
        Command::UnmountGuard => unmount_guard_cmd::run(),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("yonder: {err:#}");
            ExitCode::FAILURE
        }
    }
}
