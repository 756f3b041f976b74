use crate::Result;
use async_trait::async_trait;
use bytes::Bytes;
use yonder_proto::{
    Attr, DirEntry, DirPage, Handle, ListedDir, Owner, RenameFlags, SeekWhence, SetAttr, StatFs, Target,
    TreeBudget, TreeEntry, TreePage, XattrMode,
};

/// A remote directory tree, addressed by paths relative to its root.
///
/// Paths are raw bytes without a leading `/`; the empty path is the root.
/// Every method is one round trip and may be called concurrently: an
/// implementation pipelines them over its transport.
#[async_trait]
pub trait Remote: Send + Sync + 'static {
    /// Attributes, not following a final symlink.
    async fn lstat(&self, path: &[u8]) -> Result<Attr>;
    /// Attributes, following symlinks.
    async fn stat(&self, path: &[u8]) -> Result<Attr>;
    /// Attributes of an open file (works after it is unlinked).
    async fn fstat(&self, handle: Handle) -> Result<Attr>;
    /// One page of a directory listing with each entry's attributes.
    async fn read_dir_page(&self, path: &[u8], cursor: Option<u64>, max_entries: u32) -> Result<DirPage>;
    /// A rich listing (`ListTree`): a page of `path` sized by
    /// `budget.max_bytes`, then, once it is complete, listings of the
    /// directories below it and small files' contents, within `budget`.
    /// The first directory of the answer is always `path`. Transports
    /// without such a call (and agents without the `tree` capability)
    /// answer one `ReadDir` page of `path` alone.
    async fn list_tree(&self, path: &[u8], cursor: Option<u64>, budget: TreeBudget) -> Result<TreePage> {
        tree_from_page(self, path, cursor, budget).await
    }
    /// Opens (and with `CREATE`, creates) a file; `flags` are
    /// [`yonder_proto::open_flags`] values.
    async fn open(&self, path: &[u8], flags: u32, mode: u32, owner: Option<Owner>) -> Result<(Handle, Attr)>;
    /// Opens an existing file for reading and returns up to `prefetch`
    /// bytes from its start in the same round trip; fewer bytes than asked
    /// for means the whole file. Flags that would write, create or truncate
    /// are EINVAL. Only regular files are read. Transports without such a
    /// call open, then read.
    async fn open_read(&self, path: &[u8], flags: u32, prefetch: u32) -> Result<(Handle, Attr, Vec<u8>)> {
        if !yonder_proto::open_flags::only_reads(flags) {
            return Err(crate::RemoteError::os(
                "open",
                crate::error::display_path(path),
                yonder_proto::Errno::EINVAL,
            ));
        }
        let (handle, attr) = self.open(path, flags, 0, None).await?;
        if !attr.is_file() || prefetch == 0 {
            return Ok((handle, attr, Vec::new()));
        }
        match self.read(handle, 0, prefetch).await {
            Ok(data) => Ok((handle, attr, data)),
            Err(err) => {
                let _ = self.close(handle).await;
                Err(err)
            }
        }
    }
    /// Reads up to `len` bytes; fewer means end of file.
    async fn read(&self, handle: Handle, offset: u64, len: u32) -> Result<Vec<u8>>;
    /// Writes `data` at `offset` (ignored for append-mode handles), at
    /// most [`yonder_proto::MAX_IO_SIZE`] bytes. `Bytes`, so a caller can
    /// hand on (a slice of) its buffer and the transport send it from there:
    /// [`crate::AgentClient`] copies it nowhere before the kernel.
    async fn write(&self, handle: Handle, offset: u64, data: Bytes) -> Result<u32>;
    async fn fsync(&self, handle: Handle, datasync: bool) -> Result<()>;
    async fn close(&self, handle: Handle) -> Result<()>;
    /// Changes mode, owner, size and times; returns the new attributes.
    async fn setattr(&self, target: Target, attr: SetAttr) -> Result<Attr>;
    async fn mkdir(&self, path: &[u8], mode: u32, owner: Option<Owner>) -> Result<Attr>;
    /// `mode` includes the file type bits.
    async fn mknod(
        &self,
        path: &[u8],
        mode: u32,
        rdev_major: u32,
        rdev_minor: u32,
        owner: Option<Owner>,
    ) -> Result<Attr>;
    async fn unlink(&self, path: &[u8]) -> Result<()>;
    async fn rmdir(&self, path: &[u8]) -> Result<()>;
    async fn rename(&self, from: &[u8], to: &[u8], flags: RenameFlags) -> Result<()>;
    /// Creates `path` as a symlink containing `target`, stored as given.
    async fn symlink(&self, target: &[u8], path: &[u8], owner: Option<Owner>) -> Result<Attr>;
    async fn readlink(&self, path: &[u8]) -> Result<Vec<u8>>;
    /// Creates `to` as a hard link to `from`; returns the link's attributes.
    async fn link(&self, from: &[u8], to: &[u8]) -> Result<Attr>;
    async fn statfs(&self, path: &[u8]) -> Result<StatFs>;
    async fn getxattr(&self, path: &[u8], name: &[u8]) -> Result<Vec<u8>>;
    async fn setxattr(&self, path: &[u8], name: &[u8], value: &[u8], mode: XattrMode) -> Result<()>;
    async fn listxattr(&self, path: &[u8]) -> Result<Vec<Vec<u8>>>;
    async fn removexattr(&self, path: &[u8], name: &[u8]) -> Result<()>;
    /// `mask` is [`yonder_proto::access_mask`] bits, checked with the
    /// agent's credentials.
    async fn access(&self, path: &[u8], mask: u32) -> Result<()>;
    /// `fallocate(2)` on an open file; `mode` is
    /// [`yonder_proto::fallocate_mode`] bits.
    async fn fallocate(&self, handle: Handle, offset: u64, len: u64, mode: u32) -> Result<()>;
    /// `lseek(2)` with `SEEK_DATA`/`SEEK_HOLE` on an open file: the offset
    /// of the next data or hole at or after `offset`; ENXIO if none.
    async fn lseek(&self, handle: Handle, offset: u64, whence: SeekWhence) -> Result<u64>;

    /// Whether a call sent again as the same [`crate::Operation`] after a
    /// lost connection is answered with its first outcome rather than
    /// carried out again (an agent with the `once` capability whose
    /// `Fence` this connection's link claimed). Where not, a caller finds
    /// out from the remote's state what a lost call did.
    fn exactly_once(&self) -> bool {
        false
    }

    /// One round trip that touches no file: proves the link and the
    /// agent alive (heartbeats, health checks). Transports without such a
    /// call stat the root.
    async fn ping(&self) -> Result<()> {
        self.lstat(b"").await.map(|_| ())
    }

    /// The canonical absolute path on the remote host (symlinks resolved)
    /// of `path`, which, unlike every other path here, is not relative to
    /// the root: an absolute one is taken as it is, a relative one against
    /// the agent's working directory (the home directory under ssh). The
    /// result lies within the root (EACCES otherwise). How a connection
    /// serving `/` finds the tree a SOURCE names ([`crate::Scoped`]).
    async fn realpath(&self, path: &[u8]) -> Result<Vec<u8>>;

    /// The whole listing of a directory, page by page.
    async fn read_dir_all(&self, path: &[u8]) -> Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.read_dir_page(path, cursor, 4096).await?;
            entries.extend(page.entries);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(entries),
            }
        }
    }
}

/// [`Remote::list_tree`] from one `ReadDir` page: what a remote without
/// rich listings answers.
pub async fn tree_from_page<R: Remote + ?Sized>(
    remote: &R,
    path: &[u8],
    cursor: Option<u64>,
    budget: TreeBudget,
) -> Result<TreePage> {
    // An entry with attributes takes some 100 bytes on the wire.
    let max_entries = (budget.max_bytes / 100)
        .clamp(1, 8192)
        .min(budget.max_entries.max(1));
    let page = remote.read_dir_page(path, cursor, max_entries).await?;
    Ok(TreePage {
        dirs: vec![ListedDir {
            path: path.to_vec().into(),
            entries: page
                .entries
                .into_iter()
                .map(|entry| TreeEntry { entry, data: None })
                .collect(),
        }],
        next: page.next,
    })
}
