//! Delivering what a mount acknowledged ahead of the remote before it is
//! unmounted (a signal to `yonder mount --foreground`, `yonder unmount`,
//! `yonder manager stop`), with progress shown while a large backlog
//! drains.
//!
//! A flush of the whole mount waits at most an operation timeout for each
//! of its phases; a backlog that takes longer over a slow link is not a
//! failure while it shrinks, so the flush is repeated as long as each
//! round delivers something.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use yonder_vfs::frontend::{FrontendError, MountHandle};

/// A backlog at least this large is announced at once; a smaller one only
/// if it takes longer than [`QUIET_FOR`] to deliver.
pub const LARGE_BACKLOG: usize = 100;
const QUIET_FOR: Duration = Duration::from_secs(1);
/// How often the count is said again while it drains.
const EVERY: Duration = Duration::from_secs(2);

/// Sends everything `mounted` acknowledged and the remote has not
/// confirmed to `to` (the source, for messages), telling `say` how many
/// operations are pending while a large backlog drains (`delivering 1,234
/// pending operations to HOST…`). Blocks; returns the first error the
/// remote gave, or the flush's own if the backlog stopped shrinking.
pub fn deliver_pending(
    mounted: &dyn MountHandle,
    to: &str,
    say: &(dyn Fn(&str) + Sync),
) -> Result<(), FrontendError> {
    let vfs = mounted.vfs().clone();
    let pending = || vfs.unconfirmed_writes().0;
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let progress = scope.spawn(|| {
            let start = Instant::now();
            let mut said = false;
            let mut next = if pending() >= LARGE_BACKLOG {
                start
            } else {
                start + QUIET_FOR
            };
            while !done.load(Ordering::Acquire) {
                if Instant::now() >= next {
                    let n = pending();
                    if n > 0 {
                        say(&format!(
                            "delivering {} pending operations to {to}…",
                            thousands(n)
                        ));
                        said = true;
                    }
                    next = Instant::now() + EVERY;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            said
        });
        let result = loop {
            let before = pending();
            match mounted.flush() {
                Ok(()) => break Ok(()),
                Err(e) => {
                    let after = pending();
                    if after == 0 || after >= before {
                        break Err(e);
                    }
                    // Still draining, only slower than one timeout; the
                    // error may also be a refusal, which is not lost: it
                    // was reported (writer, events, log), and is said here.
                    say(&format!("while delivering to {to}: {e}"));
                }
            }
        };
        done.store(true, Ordering::Release);
        if progress.join().unwrap_or(false) {
            match &result {
                Ok(()) => say(&format!("delivered everything to {to}")),
                Err(e) => say(&format!(
                    "{} operations not delivered to {to}: {e}",
                    thousands(pending())
                )),
            }
        }
        result
    })
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
