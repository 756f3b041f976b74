//! The callbacks' requests, as plain data (`CF_CALLBACK_INFO` and the
//! callback's member of `CF_CALLBACK_PARAMETERS`, paths below the sync
//! root).

use crate::item_path::ItemPath;

/// The request a callback carries: given back with its answer
/// (`CF_CALLBACK_INFO`'s `ConnectionKey`, `TransferKey` and `RequestKey`,
/// which `CF_OPERATION_INFO` takes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket {
    pub connection: i64,
    pub transfer: i64,
    pub request: i64,
}

/// A directory's items are wanted (listing it the first time).
#[derive(Clone, Debug)]
pub struct FetchPlaceholders {
    pub ticket: Ticket,
    pub dir: ItemPath,
}

/// A placeholder's data is wanted: at least the required range, and the
/// optional one may come along (the OS's own read-ahead hint).
#[derive(Clone, Debug)]
pub struct FetchData {
    pub ticket: Ticket,
    pub path: ItemPath,
    /// The placeholder's logical size (`CF_CALLBACK_INFO.FileSize`).
    pub file_size: u64,
    pub required_offset: u64,
    pub required_length: u64,
    pub optional_offset: u64,
    pub optional_length: u64,
}

/// A [`FetchData`] is no longer wanted (the program's read was
/// cancelled, or its handle closed): its transfers may stop.
#[derive(Clone, Debug)]
pub struct CancelFetchData {
    pub ticket: Ticket,
    pub path: ItemPath,
}

/// An item is being renamed or moved; it happens only once acknowledged.
#[derive(Clone, Debug)]
pub struct NotifyRename {
    pub ticket: Ticket,
    pub path: ItemPath,
    pub directory: bool,
    /// `None`: moved out of the sync root.
    pub target: Option<ItemPath>,
}

/// An item is being deleted; it happens only once acknowledged.
#[derive(Clone, Debug)]
pub struct NotifyDelete {
    pub ticket: Ticket,
    pub path: ItemPath,
    pub directory: bool,
}

/// A file's last handle was closed.
#[derive(Clone, Debug)]
pub struct FileClosed {
    pub path: ItemPath,
    /// It was closed by deleting it.
    pub deleted: bool,
}
