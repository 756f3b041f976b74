//! The `yonder` binary: every role in one executable, so a remote machine
//! needs a single file. This crate only parses arguments and wires the
//! library crates together.

mod agent_cmd;
mod completions_cmd;
mod fs_cmd;
mod logging;
mod mount_cmd;
mod mount_helper;

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
    /// Mount SOURCE at MOUNTPOINT (in the foreground; Ctrl+C unmounts).
    Mount(mount_cmd::MountArgs),
    /// Unmount a yonder mount, including one whose process has died.
    #[command(alias = "umount")]
    Unmount(mount_cmd::UnmountArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(completions_cmd::CompletionsArgs),
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
    if let Some(code) = mount_helper::main_if_helper_form(&Cli::command()) {
        return code;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(args) => agent_cmd::run(args),
        Command::Fs(args) => fs_cmd::run(args),
        Command::Mount(args) => mount_cmd::run(args),
        Command::Unmount(args) => mount_cmd::unmount(args),
        Command::Completions(args) => completions_cmd::run(args, Cli::command()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("yonder: {err:#}");
            ExitCode::FAILURE
        }
    }
}
