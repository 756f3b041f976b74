//! Reaps the `fusermount3` helpers that `fuser` leaves behind.
//!
//! A mount with AutoUnmount is made by a `fusermount3` that stays running
//! until the mount's session ends, and `fuser` never waits for it: each
//! mount would leave a zombie in a long-lived manager. Only those are
//! reaped, by pid, and only once seen as zombies twice in a row (a health
//! interval apart): a `fusermount3 -u` that the manager runs itself is
//! waited for at once by its caller, whose status must not be taken.

use std::collections::HashSet;

#[derive(Default)]
pub(crate) struct Reaper {
    seen: HashSet<i32>,
}

impl Reaper {
    /// Reaps the helpers that were zombies at the last call and still are.
    pub(crate) fn reap(&mut self) {
        let zombies = fusermount_zombies();
        // No fusermount, and no zombies, off Unix.
        #[cfg(unix)]
        for pid in zombies.intersection(&self.seen) {
            if let Some(pid) = rustix::process::Pid::from_raw(*pid) {
                match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG) {
                    Ok(_) => tracing::debug!("reaped fusermount helper {pid:?}"),
                    Err(e) => tracing::debug!("waitpid {pid:?}: {e}"),
                }
            }
        }
        self.seen = zombies;
    }
}

/// This process's children that are zombies named `fusermount*`.
fn fusermount_zombies() -> HashSet<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // pid (comm) state ppid ...: comm may hold spaces and parentheses.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                return false;
            };
            let comm = &stat[open + 1..close];
            let mut rest = stat[close + 1..].split_whitespace();
            let state = rest.next();
            let ppid = rest.next().and_then(|p| p.parse::<i32>().ok());
            comm.starts_with("fusermount") && state == Some("Z") && ppid == Some(me)
        })
        .collect()
}
