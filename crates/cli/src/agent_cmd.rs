use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["stdio", "listen", "gen_key"])))]
pub struct AgentArgs {
    /// Serve the protocol on stdin/stdout (what ssh and a local mount run).
    #[arg(long)]
    stdio: bool,
    /// Serve every client that proves the key (--key) on this TCP address
    /// (`HOST:PORT`), over TLS 1.3, until killed; mount it as
    /// `tcp://HOST:PORT/PATH --key FILE`.
    #[arg(long, value_name = "ADDR", requires = "key")]
    listen: Option<String>,
    /// The key file shared with the clients of --listen (at least 32
    /// random bytes, mode 0600: `yonder agent --gen-key FILE`).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Write a new random key to FILE (mode 0600) and exit.
    #[arg(long, value_name = "FILE")]
    gen_key: Option<PathBuf>,
    /// Directory tree to serve; paths on the wire are relative to it.
    #[arg(long, value_name = "DIR", required_unless_present = "gen_key")]
    root: Option<PathBuf>,
    /// Write logs to this file instead of stderr.
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Log debug detail.
    #[arg(long)]
    debug: bool,
}

pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.debug, args.log_file.as_deref())?;
    if let Some(path) = &args.gen_key {
        yonder_direct::write_key_file(path)?;
        return Ok(ExitCode::SUCCESS);
    }
    let root = args.root.expect("clap requires --root");
    let config = yonder_agent::AgentConfig { root };
    match (&args.listen, &args.key) {
        (Some(addr), Some(key)) => {
            let key = yonder_direct::read_key_file(key)?;
            #[cfg(unix)]
            yonder_agent::run_listener(config, addr, key)?;
            // The listener serves the Unix agent; Windows has only the
            // portable one, on stdio.
            #[cfg(not(unix))]
            anyhow::bail!(
                "yonder agent --listen {addr}: not supported on {} ({} bytes of key read)",
                std::env::consts::OS,
                key.len()
            );
        }
        _ => yonder_agent::run_stdio(config)?,
    }
    Ok(ExitCode::SUCCESS)
}
