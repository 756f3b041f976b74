//! The part of the frontend seam that runs the other way: which of a
//! frontend's own caches a change on the remote made stale (re-exported
//! by `frontend.rs`; apart from it, since the VFS's parts use it and the
//! seam's other half uses the VFS).

use crate::attr::Ino;

/// A cache a frontend keeps beside the VFS's (FUSE: the kernel's
/// attributes, names, directory listings and pages) that a change on the
/// remote makes stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheDrop {
    /// `name` in directory `parent` may now name another file, or none.
    Entry { parent: Ino, name: Vec<u8> },
    /// The attributes of `ino`: asked again, its cached data kept unless
    /// they show another size or mtime.
    Attributes { ino: Ino },
    /// A directory's attributes and the listing cached of it.
    Listing { ino: Ino },
}

/// Where the VFS tells a frontend which of its caches to drop
/// ([`crate::Vfs::set_frontend_caches`]). Called from the VFS's tasks, never
/// from inside a request the frontend is serving; an implementation that
/// may block (FUSE's notifications wait for the kernel's locks) hands the
/// work to a thread of its own.
pub trait FrontendCaches: Send + Sync {
    fn drop_cached(&self, drops: Vec<CacheDrop>);
}
