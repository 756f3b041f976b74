//! The seam between the engine and the operating system: [`CloudOs`],
//! what the engine asks of the Cloud Files API, and [`CloudCallbacks`],
//! what the OS asks of the engine. Windows implements the first over
//! cldapi (`windows.rs`); the tests implement it with a fake that follows
//! the API's documented contract. Everything here is plain data, so the
//! engine builds and is tested on every OS.

use crate::item_path::ItemPath;
use crate::requests::{
    CancelFetchData, FetchData, FetchPlaceholders, FileClosed, NotifyDelete, NotifyRename, Ticket,
};
use crate::send_failures::SendFailure;
use crate::status::CloudStatus;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// The alignment of a data transfer: each `TRANSFER_DATA` starts on a
/// multiple of it and is a multiple of it long, unless it ends at the end
/// of the file (`CF_OPERATION_PARAMETERS.TransferData`).
pub const TRANSFER_ALIGNMENT: u64 = 4096;

/// What a sync root is registered with (`CfRegisterSyncRoot`'s
/// `CF_SYNC_REGISTRATION`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRootRegistration {
    /// The folder that becomes the sync root (the mount point).
    pub root: PathBuf,
    pub provider_name: String,
    pub provider_version: String,
    /// Tells this sync root from others of the provider (the SOURCE).
    pub identity: Vec<u8>,
}

/// One placeholder as the engine describes it (`CF_PLACEHOLDER_CREATE_INFO`
/// and the `CF_FS_METADATA` of an update).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placeholder {
    /// Its name in its directory.
    pub name: String,
    pub directory: bool,
    /// The logical size; 0 for a directory.
    pub size: u64,
    pub modified: SystemTime,
    /// Stored with the placeholder and handed back in every callback on
    /// it (at most 4 KiB, `CF_PLACEHOLDER_MAX_FILE_IDENTITY_LENGTH`).
    pub identity: Vec<u8>,
}

/// What the OS holds at a path, as far as the engine needs it
/// (`CfGetPlaceholderStateFromFileInfo` and the file's size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemState {
    /// A placeholder of this provider; `false` for a file made locally
    /// and not yet converted.
    pub placeholder: bool,
    /// The placeholder's contents are what the provider last gave it:
    /// the file system clears this when the file is written.
    pub in_sync: bool,
    pub directory: bool,
    /// The local file's size.
    pub size: u64,
}

/// How a placeholder is brought up to date (`CfUpdatePlaceholder`):
/// always marked in sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateData {
    /// Its data is the remote's: keep what is hydrated.
    Keep,
    /// Its data changed on the remote: drop what is hydrated
    /// (`CF_UPDATE_FLAG_DEHYDRATE`), so the next read fetches it anew.
    Dehydrate,
}

/// A call to the OS that failed, as the OS reported it.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {message}")]
pub struct OsError {
    pub op: &'static str,
    pub path: String,
    pub message: String,
}

impl OsError {
    pub fn new(op: &'static str, path: impl ToString, message: impl ToString) -> OsError {
        OsError {
            op,
            path: path.to_string(),
            message: message.to_string(),
        }
    }
}

/// What the engine asks of the OS. Answers to callbacks (the `ticket`
/// ones) are `CfExecute` operations, which may be sent from any thread
/// after the callback returned, as long as the request is still pending.
pub trait CloudOs: Send + Sync {
    /// Registers the sync root (`CfRegisterSyncRoot`).
    fn register(&self, registration: &SyncRootRegistration) -> Result<(), OsError>;

    /// Connects the callbacks to the registered root (`CfConnectSyncRoot`);
    /// the OS calls them from its own threads until [`CloudOs::disconnect`].
    fn connect(&self, callbacks: Arc<dyn CloudCallbacks>) -> Result<(), OsError>;

    /// `CfDisconnectSyncRoot`: no callback runs after it returns.
    fn disconnect(&self) -> Result<(), OsError>;

    /// `CfUnregisterSyncRoot`: the folder is no longer a sync root. What
    /// it holds stays in it.
    fn unregister(&self) -> Result<(), OsError>;

    /// Answers a [`FetchPlaceholders`] (`CF_OPERATION_TYPE_TRANSFER_PLACEHOLDERS`):
    /// the directory's items, all of them, and the directory then asks no
    /// more (`DISABLE_ON_DEMAND_POPULATION`). A failure `status` says why
    /// there are none.
    fn transfer_placeholders(
        &self,
        ticket: Ticket,
        placeholders: &[Placeholder],
        status: CloudStatus,
    ) -> Result<(), OsError>;

    /// Answers a [`FetchData`] with data (`CF_OPERATION_TYPE_TRANSFER_DATA`):
    /// `offset` aligned to [`TRANSFER_ALIGNMENT`], `data`'s length too
    /// unless it ends at the end of the file.
    fn transfer_data(&self, ticket: Ticket, offset: u64, data: &[u8]) -> Result<(), OsError>;

    /// Fails a [`FetchData`]'s range (`TRANSFER_DATA` with a failure
    /// `CompletionStatus`): the application's read fails with it.
    fn fail_data(&self, ticket: Ticket, offset: u64, length: u64, status: CloudStatus)
        -> Result<(), OsError>;

    /// Answers a [`NotifyRename`] (`CF_OPERATION_TYPE_ACK_RENAME`): a
    /// failure `status` vetoes the rename.
    fn ack_rename(&self, ticket: Ticket, status: CloudStatus) -> Result<(), OsError>;

    /// Answers a [`NotifyDelete`] (`CF_OPERATION_TYPE_ACK_DELETE`): a
    /// failure `status` vetoes the delete.
    fn ack_delete(&self, ticket: Ticket, status: CloudStatus) -> Result<(), OsError>;

    /// Adds placeholders to a directory unasked (`CfCreatePlaceholders`),
    /// for names the remote gained. A name already there is left as it
    /// is.
    fn create_placeholders(&self, dir: &ItemPath, placeholders: &[Placeholder]) -> Result<(), OsError>;

    /// Gives a placeholder new metadata and identity, marked in sync
    /// (`CfUpdatePlaceholder`).
    fn update_placeholder(
        &self,
        path: &ItemPath,
        placeholder: &Placeholder,
        data: UpdateData,
    ) -> Result<(), OsError>;

    /// Makes a file made locally a placeholder in sync
    /// (`CfConvertToPlaceholder` with `MARK_IN_SYNC`), once its data is on
    /// the remote.
    fn convert_to_placeholder(&self, path: &ItemPath, identity: &[u8]) -> Result<(), OsError>;

    /// Removes an item the remote no longer has (a directory with what is
    /// below it).
    fn remove_item(&self, path: &ItemPath) -> Result<(), OsError>;

    /// What is at `path`; `None` when nothing is.
    fn item_state(&self, path: &ItemPath) -> Result<Option<ItemState>, OsError>;

    /// Shows a failure to send a file in the sync root's status (what
    /// Explorer shows of the provider, `CfReportSyncStatus`); `None`
    /// clears it.
    fn report_sync_status(&self, failure: Option<&SendFailure>) -> Result<(), OsError>;

    /// Reads a hydrated or local file's data, to send it to the remote:
    /// fewer bytes than `length` only at the end of the file. Reading a
    /// placeholder's data never asks the provider for it (the engine
    /// reads only files whose data is all local).
    fn read_local(&self, path: &ItemPath, offset: u64, length: u64) -> Result<Vec<u8>, OsError>;
}

/// What the OS asks of the engine (`CF_CALLBACK_REGISTRATION`). Each
/// returns at once; the answer goes later through [`CloudOs`] with the
/// request's [`Ticket`].
pub trait CloudCallbacks: Send + Sync {
    /// `CF_CALLBACK_TYPE_FETCH_PLACEHOLDERS`.
    fn fetch_placeholders(&self, request: FetchPlaceholders);
    /// `CF_CALLBACK_TYPE_FETCH_DATA`.
    fn fetch_data(&self, request: FetchData);
    /// `CF_CALLBACK_TYPE_CANCEL_FETCH_DATA` (no answer).
    fn cancel_fetch_data(&self, request: CancelFetchData);
    /// `CF_CALLBACK_TYPE_NOTIFY_RENAME`.
    fn notify_rename(&self, request: NotifyRename);
    /// `CF_CALLBACK_TYPE_NOTIFY_DELETE`.
    fn notify_delete(&self, request: NotifyDelete);
    /// `CF_CALLBACK_TYPE_NOTIFY_FILE_CLOSE_COMPLETION` (no answer).
    fn file_closed(&self, request: FileClosed);
}
