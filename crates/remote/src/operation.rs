//! Operation numbers: what makes a call that must not run twice safe to
//! send again after a lost connection.
//!
//! A caller that sends a non-idempotent call (an exclusive create, mkdir,
//! rename, unlink, ...) and may send it again on the next connection
//! begins an [`Operation`] and runs every attempt of the call in its
//! [`Operation::scope`]. An agent that can (the `once` capability, after
//! it accepted the link's `Fence`) then receives the call as
//! `Request::Once` under the operation's number, the same on every
//! attempt, and answers an attempt after the first with the first's
//! recorded outcome, whichever agent of the session carried it out
//! ([`crate::Remote::exactly_once`] tells whether a remote does this).
//!
//! Numbers are unique in the process, hence within every link's session.
//! The agent's record of an operation may go once the client has seen its
//! answer and will not send it again: each `Once` carries the lowest
//! number still outstanding ([`settled_below`]).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Mutex;

tokio::task_local! {
    static CURRENT: u64;
}

/// One operation that must take effect at most once; outstanding until
/// dropped.
#[derive(Debug)]
pub struct Operation {
    id: u64,
}

/// The numbers of operations begun and not yet dropped.
struct Outstanding {
    next: u64,
    open: BTreeSet<u64>,
}

static OUTSTANDING: Mutex<Outstanding> = Mutex::new(Outstanding {
    next: 1,
    open: BTreeSet::new(),
});

fn outstanding() -> std::sync::MutexGuard<'static, Outstanding> {
    OUTSTANDING.lock().unwrap_or_else(|e| e.into_inner())
}

impl Operation {
    /// A new operation, with a number no other operation of this process
    /// has.
    pub fn begin() -> Operation {
        let mut outstanding = outstanding();
        let id = outstanding.next;
        outstanding.next += 1;
        outstanding.open.insert(id);
        Operation { id }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Runs `attempt` (one attempt of the call) as this operation: the
    /// changing request it sends travels as `Request::Once` under this
    /// operation's number where the remote can carry it so. One changing
    /// request per operation.
    pub fn scope<F: Future>(&self, attempt: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self.id, attempt)
    }
}

impl Drop for Operation {
    /// Answered or given up on: its record may go.
    fn drop(&mut self) {
        outstanding().open.remove(&self.id);
    }
}

/// The operation the running task's call belongs to, if any.
pub(crate) fn current() -> Option<u64> {
    CURRENT.try_with(|id| *id).ok()
}

/// Every operation numbered below this one was answered or given up on,
/// and none will be sent again.
pub(crate) fn settled_below() -> u64 {
    let outstanding = outstanding();
    outstanding.open.first().copied().unwrap_or(outstanding.next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn numbers_are_settled_once_no_older_operation_is_outstanding() {
        let first = Operation::begin();
        let second = Operation::begin();
        assert!(second.id() > first.id());
        assert!(settled_below() <= first.id());
        assert_eq!(first.scope(async { current() }).await, Some(first.id()));
        assert_eq!(current(), None);
        // No other test of this crate begins operations.
        drop(first);
        assert_eq!(
            settled_below(),
            second.id(),
            "the older one settled, this one not"
        );
        let id = second.id();
        drop(second);
        assert!(settled_below() > id);
    }
}
