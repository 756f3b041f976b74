//! `yonder completions SHELL`: shell completions, generated from the
//! command line's own definition.

use clap::Args;
use clap_complete::Shell;
use std::process::ExitCode;

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    shell: Shell,
}

pub fn run(args: CompletionsArgs, mut cli: clap::Command) -> anyhow::Result<ExitCode> {
    clap_complete::generate(args.shell, &mut cli, "yonder", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
