use tracing_subscriber::EnvFilter;

/// Logs go to stderr (or a file), never stdout: stdout may be the protocol
/// stream or a file's content. `YONDER_LOG` overrides the level. By default
/// warnings, and the connection's transitions (connected, lost,
/// reconnecting, reconnected) at info.
pub fn init(debug: bool, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let default = if debug { "debug" } else { "warn,yonder::link=info" };
    let filter = EnvFilter::try_from_env("YONDER_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("open log file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}
