//! The macOS FileProvider frontend: a replicated extension
//! (`NSFileProviderReplicatedExtension`) that shows a yonder
//! [`Vfs`](yonder_vfs::Vfs) in Finder, as iCloud Drive and Dropbox are
//! shown; the system keeps the files on disk and asks the extension for
//! listings, data and changes.
//!
//! Split in two:
//!
//! - The mapping, portable and free of Objective-C, built and tested on
//!   Linux: [`Provider`] (item lookup, fetchContents whole or by range,
//!   createItem, modifyItem, deleteItem, as VFS calls), [`Enumerator`]
//!   (a directory's items by [`Page`], changes from a [`SyncAnchor`]),
//!   [`ChangeLog`] (the VFS's pushed remote changes, numbered, the
//!   working set signalled through [`System`]), [`ItemIdentifier`] (an
//!   item by its path), [`ErrorStatus`] (the `NSError` each failure is
//!   reported as).
//! - `macos/` (`cfg(target_os = "macos")`): the Objective-C classes the
//!   system loads, over `objc2-file-provider`, each request handed to the
//!   mapping on a tokio runtime and its answer to the completion handler.
//!   Type-checked for aarch64-apple-darwin by `./x cross`; never run by
//!   yonder's tests (see docs/fileprovider.md).
//!
//! It is no [`Frontend`](yonder_vfs::frontend::Frontend): nothing is
//! mounted by yonder; the system starts the extension for a domain the
//! app registered, and the extension connects.

mod byte_range;
mod change_log;
mod contents;
mod enumerator;
mod error;
mod identifier;
mod item;
mod page;
mod provider;
mod sync_anchor;
mod system;

#[cfg(target_os = "macos")]
pub mod macos;

pub use byte_range::ByteRange;
pub use change_log::{ChangeLog, Changed, MAX_CHANGES};
pub use enumerator::{ChangeBatch, Enumerator, ItemPage};
pub use error::{ErrorDomain, ErrorStatus, ProviderError};
pub use identifier::{ItemIdentifier, ROOT_CONTAINER, TRASH_CONTAINER, WORKING_SET};
pub use item::{Item, ItemChanges, ItemKind, ItemTemplate, ItemVersion};
pub use page::Page;
pub use provider::{Fetched, Provider};
pub use sync_anchor::SyncAnchor;
pub use system::System;

/// The name status output and docs know this frontend by.
pub const FRONTEND_NAME: &str = "fileprovider";
