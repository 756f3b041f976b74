//! The Windows Cloud Files frontend: a mount is a sync root (the mount
//! point's folder), its directories filled with placeholders when first
//! listed, its files hydrated in ranges when first read, as OneDrive's
//! are. Local renames, deletes and writes go to the remote; the remote's
//! changes come back as updated, dehydrated or removed placeholders.
//!
//! # Parts
//!
//! - `os.rs`: the seam to the OS. [`CloudOs`] is what the engine asks of
//!   the Cloud Files API (register, connect, the `CfExecute` answers,
//!   create, update and convert placeholders), [`CloudCallbacks`] what the
//!   API asks of the engine. Plain data only, so everything above it
//!   builds and is tested on Linux, against a fake of the OS side
//!   (`tests/support/fake_os.rs`) that follows the documented contract.
//! - `sync_root.rs`: [`SyncRoot`], the engine. Callbacks are resolved by
//!   path and served through the VFS's [`Exporter`](yonder_vfs::Exporter)
//!   (as a frontend without opens or lookup counts): listings become
//!   placeholders, a hydration reads in order through the VFS so its
//!   readahead runs ahead of the transfers, a rename or delete is done on
//!   the remote before it is acknowledged (a refusal vetoes it), and a
//!   file written locally is sent back on close. It is the VFS's
//!   [`FrontendCaches`](yonder_vfs::frontend::FrontendCaches): each remote
//!   change updates, dehydrates or removes placeholders.
//! - `placeholders.rs`: which inode and remote version each placeholder
//!   shows, and which directories are populated.
//! - `hydrations.rs`: the hydrations running: the newest of each file,
//!   so that a request's read-ahead stops where a newer one took over,
//!   and those the OS cancelled, which stop.
//! - `own_removals.rs`: items the engine is removing itself, whose
//!   NOTIFY_DELETE (should the OS send one) leaves the remote alone.
//! - `send_failures.rs`: files whose changes could not be sent on close,
//!   shown in the sync root's status until they are.
//! - `frontend.rs`, `mount.rs`: the [`Frontend`](yonder_vfs::frontend::Frontend)
//!   and [`MountHandle`](yonder_vfs::frontend::MountHandle).
//! - `windows.rs` (Windows only): [`CloudOs`] over cldapi; the values it
//!   converts without Windows types (paths, times) in `api_values.rs`,
//!   tested everywhere.
//!
//! # The bindings
//!
//! The OS side is on the `windows` crate's `Win32_Storage_CloudFilters`
//! bindings (0.62), not on `cloud-filter` 0.0.6. `cloud-filter` is a
//! safe wrapper, but pre-1.0 with rare releases, pinned to `windows` 0.58
//! (a second copy of the `windows` crates beside the 0.61/0.62 ones the
//! workspace's other dependencies bring), and it registers sync roots
//! through WinRT's `StorageProviderSyncRootManager`, which pulls in COM
//! and WinRT. It would also put its own model of requests and tickets
//! between ours and the API: two mappings to keep right instead of one.
//! The engine needs nine functions of the API (`CfExecute` in four of
//! its operations); the `windows` bindings are
//! Microsoft's own, generated from the SDK's metadata, and kept current.
//! The unsafe code that costs (the callback table and the unions of
//! `CfExecute`) is in one file, each block with its reason.
//!
//! Nothing of the Windows side runs on the machines that build yonder:
//! it is type-checked for `x86_64-pc-windows-gnu` only (Wine has no
//! Cloud Files API, see docs/cloudfiles.md).

// Used by the Windows side only; built and tested everywhere.
#[cfg_attr(not(windows), allow(dead_code))]
mod api_values;
mod error;
mod frontend;
mod hydrations;
mod item_path;
mod mount;
mod os;
mod own_removals;
mod placeholders;
mod requests;
mod send_failures;
mod status;
mod sync_root;
#[cfg(windows)]
mod windows;

pub use error::CloudFilesError;
pub use frontend::CloudFilesFrontend;
pub use item_path::ItemPath;
pub use mount::CloudFilesMount;
pub use os::{
    CloudCallbacks, CloudOs, ItemState, OsError, Placeholder, SyncRootRegistration, UpdateData,
    TRANSFER_ALIGNMENT,
};
pub use requests::{
    CancelFetchData, FetchData, FetchPlaceholders, FileClosed, NotifyDelete, NotifyRename, Ticket,
};
pub use send_failures::SendFailure;
pub use status::CloudStatus;
pub use sync_root::SyncRoot;
#[cfg(windows)]
pub use windows::WindowsCloudOs;
