use tracing_subscriber::EnvFilter;

/// Logs go to stderr (or a file), never stdout: stdout may be the protocol
/// stream or a file's content. `YONDER_LOG` overrides the level. By default
/// warnings, and the connection's transitions (connected, lost,
/// reconnecting, reconnected) at info. Colour only on a terminal (see
/// [`colour_on_stderr`]).
pub fn init(debug: bool, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let default = if debug { "debug" } else { "warn,yonder::link=info" };
    let filter = EnvFilter::try_from_env("YONDER_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            // Logs name the user's files and hosts: theirs alone to read
            // (on Windows, the profile directory's ACL keeps it theirs).
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options
                .open(path)
                .map_err(|e| anyhow::anyhow!("open log file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => builder
            .with_ansi(colour_on_stderr())
            .with_writer(|| Stderr)
            .init(),
    }
    Ok(())
}

/// Colour only for a person at a terminal: not in a file or a pipe, and not
/// when `NO_COLOR` is set to anything but the empty string (no-color.org).
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal as _;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// stderr for logs, where a failed write is dropped: tracing-subscriber
/// reports a failed write with `eprintln!`, which panics when stderr is a
/// closed pipe (`yonder ... 2>&1 | head`), taking down whichever task
/// logged: a log line must never end the program.
struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}
