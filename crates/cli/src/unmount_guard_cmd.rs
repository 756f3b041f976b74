//! `yonder unmount-guard` (hidden): the helper process that unmounts what a
//! killed mount process leaves behind (see [`yonder_fuse::UnmountGuard`]),
//! and how the manager and a foreground mount start it.

use std::path::Path;
use std::sync::Arc;
use yonder_fuse::UnmountGuard;

/// The helper's work: reads its mount process's messages on stdin until
/// that process ends, then settles each mount it left.
pub fn run() -> anyhow::Result<std::process::ExitCode> {
    yonder_fuse::unmount_guard::serve(std::io::stdin().lock())?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Starts the helper for this process's FUSE mounts; what it says goes to
/// `log` (appended), else to this process's stderr if that is a terminal.
/// Never to a pipe: whoever reads it (mount(8) running the fstab helper)
/// would wait for the helper's end. Without it (this binary cannot be run
/// again, say) mounts rely on fusermount3 alone.
pub fn spawn(log: Option<&Path>) -> Option<Arc<UnmountGuard>> {
    use std::io::IsTerminal as _;
    let started = (|| {
        let mut command = std::process::Command::new(std::env::current_exe()?);
        command.arg("unmount-guard");
        match log {
            Some(log) => {
                let file = std::fs::OpenOptions::new().append(true).open(log)?;
                command.stderr(file);
            }
            None if std::io::stderr().is_terminal() => {}
            None => {
                command.stderr(std::process::Stdio::null());
            }
        }
        UnmountGuard::spawn(command)
    })();
    match started {
        Ok(guard) => Some(Arc::new(guard)),
        Err(e) => {
            tracing::warn!("unmount guard not started ({e}): a mount left by a killed process may stay");
            None
        }
    }
}
