//! yonder's virtual file system: the layer between a mount frontend (FUSE,
//! later others) and a [`yonder_remote::Remote`].
//!
//! The API mirrors the operating system's file API, addressed by inode and
//! handle numbers, and knows nothing of any frontend. Modelled on rclone's
//! `vfs/`, one module per concept:
//!
//! - [`inode`](crate::Vfs::lookup): inode numbers taken from the remote's
//!   (hard links share one; the root is 1), lookup counts, and the names that
//!   turn an inode back into a remote path;
//! - handles: open files (a remote handle each) and directory streams;
//! - caches: attributes (`attr_ttl`) and names (`dir_ttl`), with
//!   [`Vfs::invalidate_path`] / [`Vfs::invalidate_inode`] for change
//!   notifications;
//! - write coalescing ([`VfsOptions::write_buffer`]) with errors reported at
//!   write, flush or fsync;
//! - sequential-read detection with pipelined readahead;
//! - the connection, replaced under a running mount after a network
//!   failure ([`Vfs::follow`], [`Vfs::replace_remote`]): calls wait for the
//!   next one up to [`VfsOptions::op_timeout`], and writes the agent had
//!   not confirmed ([`Journal`]) are replayed on it in order.

mod attr;
mod connection;
mod dir;
mod error;
mod export;
pub mod flags;
pub mod frontend;
mod handle;
mod inode;
mod journal;
mod options;
mod prefetch;
mod readahead;
mod reopen;
mod replay;
mod vfs;
mod write;

#[cfg(feature = "testing")]
pub mod testing;

pub use attr::{Caller, Fh, FileAttr, FileKind, Ino, ROOT_INO};
pub use connection::{Connection, ConnectionState, Generation};
pub use dir::DirItem;
pub use error::{Result, VfsError};
pub use export::FileHandle;
pub use journal::{Entry, Journal, MemoryJournal, Seq};
pub use options::VfsOptions;
pub use vfs::{Vfs, VfsEvent, VfsStats};
pub use yonder_proto::{
    access_mask, open_flags, Errno, RenameFlags, SetAttr, SetTime, StatFs, Timespec, XattrMode,
};
