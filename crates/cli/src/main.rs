//! The `yonder` binary: every role in one executable, so a remote machine
//! needs a single file. This crate only parses arguments and wires the
//! library crates together.

mod agent_cmd;
mod fs_cmd;
mod logging;
mod manager_cmd;
mod mount_cmd;

use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "yonder",
    version,
    about = "Mount a remote machine's file system locally"
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
    /// Connect to SOURCE's host through the manager; prints the
    /// connection's id. Mounts of that host reuse it.
    Connect(manager_cmd::ConnectCmdArgs),
    /// List the manager's connections and mounts.
    Status(manager_cmd::StatusArgs),
    /// Print every state change of connections and mounts as it happens.
    Events(manager_cmd::EventsArgs),
    /// Close a connection and unmount its mounts.
    Kill(manager_cmd::KillArgs),
    /// The manager daemon: start, stop, status, logs.
    Manager(manager_cmd::ManagerArgs),
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
    /// Path of `yonder` on the remote machine.
    #[arg(long, value_name = "PATH")]
    pub agent_path: Option<String>,
    /// Log debug detail to stderr.
    #[arg(long)]
    pub debug: bool,
}

impl ConnectArgs {
    pub fn options(&self) -> yonder_remote::ConnectOptions {
        yonder_remote::ConnectOptions {
            ssh_options: self.ssh_option.clone(),
            ssh_command: self.ssh_command.clone(),
            agent_path: self.agent_path.clone(),
            ..Default::default()
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(args) => agent_cmd::run(args),
        Command::Fs(args) => fs_cmd::run(args),
        Command::Mount(args) => mount_cmd::run(args),
        Command::Unmount(args) => manager_cmd::unmount(args),
        Command::Connect(args) => manager_cmd::connect(args),
        Command::Status(args) => manager_cmd::status(args),
        Command::Events(args) => manager_cmd::events(args),
        Command::Kill(args) => manager_cmd::kill(args),
        Command::Manager(args) => manager_cmd::manager_command(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("yonder: {err:#}");
            ExitCode::FAILURE
        }
    }
}
