//! yonder's virtual file system: the layer between a mount frontend (FUSE,
//! later others) and a [`yonder_remote::Remote`].
//!
//! The API mirrors the operating system's file API, addressed by inode and
//! handle numbers, and knows nothing of any frontend. [`Vfs`] orchestrates
//! parts that each own their state and their lock, in a module named for
//! what they do; a part knows only the parts below it:
//!
//! - `namespace/` (the inode table, `inode.rs`): inode numbers taken from
//!   the remote's (hard links share one; the root is 1), lookup counts, the
//!   names that turn an inode back into a remote path, and the cached
//!   attributes, names and listings, kept and forgotten as the one cache
//!   policy (`cache_policy.rs`) says;
//! - `calls.rs` (over `connection.rs`): every remote call, waiting for a
//!   connection replaced under a running mount ([`Vfs::follow`],
//!   [`Vfs::replace_remote`]) up to [`VfsOptions::op_timeout`];
//! - `open_files.rs`: open files (a remote handle each), reopened on a new
//!   connection;
//! - `reading.rs`: reads, with sequential-read detection and pipelined
//!   readahead (`readahead.rs`);
//! - `write_back/`: write coalescing ([`VfsOptions::write_buffer`]) with
//!   errors reported at write, flush or fsync, and the writes the agent had
//!   not confirmed ([`Journal`]), replayed in order on a new connection;
//! - `listings/`: directory streams, and listings fetched ahead;
//! - `stale_open.rs`: the retry after an open that found its name given to
//!   another file;
//! - `remote_changes.rs`: changes the remote pushes, applied to the caches
//!   (and through [`frontend::FrontendCaches`] to the frontend's).
//!
//! [`Exporter`] stands beside a [`Vfs`] for a stateless frontend (NFS).
//!
//! Locks are taken in this order, never the other way round. Outermost,
//! the two async locks, each held across remote calls: an inode's write
//! state (across its sends; under it the open-file table, the registry of
//! unconfirmed batches and the inode table are taken) and a directory
//! stream (across its page fetches; under it the inode table and the
//! set of listings being fetched ahead). Then the inode table, under which
//! the write-back's per-inode map may be asked; the registry of unconfirmed
//! batches before a batch's state. Every other lock (a file's remote handle
//! or readahead, the stale-open state, the open-directory table, the
//! journal) is taken alone, and no `std` lock is held across an await.

mod attr;
mod cache_policy;
mod calls;
mod connection;
mod disk_journal;
mod error;
mod events;
mod export;
pub mod frontend;
mod frontend_caches;
mod handle;
mod journal;
mod listings;
mod meta_order;
mod namespace;
mod open_files;
mod options;
mod readahead;
mod reading;
mod remote_changes;
mod stale_open;
mod sync;
mod vfs;
mod write_back;

pub use attr::{Caller, Fh, FileAttr, FileKind, Ino, ROOT_INO};
pub use connection::{Connection, ConnectionState, Generation};
pub use disk_journal::{DiskJournal, DiskJournalError, Durability};
pub use error::{Result, VfsError};
pub use events::VfsEvent;
pub use export::{fresh_epoch, Exporter, FileHandle};
pub use journal::{Entry, Journal, MemoryJournal, MetaOp, Seq};
pub use namespace::DirItem;
pub use options::VfsOptions;
pub use vfs::{Vfs, VfsStats};
pub use write_back::recovery::Recovered;
pub use yonder_proto::{
    access_mask, open_flags, Errno, RenameFlags, SetAttr, SetTime, StatFs, Timespec, XattrMode,
};
