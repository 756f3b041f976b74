//! The NFSv3 frontend: serves a yonder [`Vfs`](yonder_vfs::Vfs) over
//! NFSv3 and MOUNT on one TCP port bound to 127.0.0.1, so that an OS
//! without FUSE (macOS without its kernel extension, OpenBSD, NetBSD)
//! mounts it with the NFS client it ships.
//!
//! # The server crate
//!
//! The RPC and NFS layers are `nfs3_server` 0.11 (a maintained fork of
//! `nfsserve`), chosen over `nfsserve` 0.11 after reading both:
//! - `nfs3_server` has WRITE with a stability level and COMMIT, so writes
//!   go UNSTABLE through the VFS's write-back and COMMIT is an fsync;
//!   `nfsserve` has no COMMIT.
//! - It lets the file system choose its handle bytes (a [`FileHandle`]
//!   trait) and sets the generation in front of them, so handles carry the
//!   VFS's [`Exporter`](yonder_vfs::Exporter) handle and go stale after a
//!   restart; `nfsserve` handles are a bare 64-bit id.
//! - It has an authorization hook on AUTH_UNIX credentials
//!   (`NfsReadFileSystem::authorize`); `nfsserve` has none.
//! - Its READDIR honours the cookie; `nfsserve`'s plain READDIR ignores it.
//!
//! Neither has LINK or MKNOD, `nfs3_server`'s FSSTAT and PATHCONF answer
//! made-up numbers, and its MKDIR drops the mode; it has no hook for a
//! procedure of our own. So a small dispatcher (`dispatch.rs`) stands in
//! front of it on the public port: it reads each RPC record, answers LINK,
//! MKNOD, FSSTAT, PATHCONF and MKDIR itself (decoded and encoded with the crate's own XDR
//! types, `nfs3_types`), and passes every other record to the crate's
//! server on a private loopback port, unchanged.
//!
//! [`FileHandle`]: nfs3_server::vfs::FileHandle

mod access;
mod convert;
mod dir_cursors;
mod dispatch;
mod error;
mod frontend;
mod fs;
mod handle;
mod listing;
mod mount_command;
mod mounted;
mod server;

pub use access::Access;
pub use error::NfsError;
pub use frontend::NfsFrontend;
pub use mount_command::{
    command_from_template, mount_command, mount_command_override, nfs_client_available, nfs_mount_possible,
    unmount_command, Command, Os, MOUNT_COMMAND_ENV,
};
pub use mounted::NfsMount;
pub use server::{NfsConfig, NfsServer};

/// The name the mount builder and status output know this frontend by.
pub const FRONTEND_NAME: &str = "nfs";
