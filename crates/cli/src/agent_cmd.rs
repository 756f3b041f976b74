use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct AgentArgs {
    /// Serve the protocol on stdin/stdout (the only transport so far).
    #[arg(long, required = true)]
    stdio: bool,
    /// Directory tree to serve; paths on the wire are relative to it.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// Write logs to this file instead of stderr.
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Log debug detail.
    #[arg(long)]
    debug: bool,
}

pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    debug_assert!(args.stdio);
    crate::logging::init(args.debug, args.log_file.as_deref())?;
    yonder_agent::run_stdio(yonder_agent::AgentConfig { root: args.root })?;
    Ok(ExitCode::SUCCESS)
}
