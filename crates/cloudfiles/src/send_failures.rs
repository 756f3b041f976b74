//! Files whose local changes could not be sent on close: a close has no
//! answer to carry the failure to the program, so the sync root's status
//! shows it instead (in Explorer), until the file is sent.

use crate::item_path::ItemPath;
use crate::status::CloudStatus;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One failure to show: the file, its status and what went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendFailure {
    pub path: ItemPath,
    pub status: CloudStatus,
    pub message: String,
}

/// The files not sent, by path; the sync root shows the first.
#[derive(Default)]
pub struct SendFailures {
    failed: Mutex<BTreeMap<ItemPath, SendFailure>>,
}

impl SendFailures {
    /// Records a failure; returns the one the sync root shows now.
    pub fn failed(&self, failure: SendFailure) -> SendFailure {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.insert(failure.path.clone(), failure);
        failed.values().next().cloned().expect("just inserted")
    }

    /// `path` was sent. `None`: it had not failed, nothing to change;
    /// `Some(None)`: nothing failed any more; `Some(Some(f))`: show `f`.
    pub fn sent(&self, path: &ItemPath) -> Option<Option<SendFailure>> {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.remove(path)?;
        Some(failed.values().next().cloned())
    }

    /// Forgets a file gone (deleted or renamed away) with the rest.
    pub fn forget_within(&self, path: &ItemPath) -> Option<Option<SendFailure>> {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        let before = failed.len();
        failed.retain(|p, _| !p.is_within(path));
        (failed.len() != before).then(|| failed.values().next().cloned())
    }
}
