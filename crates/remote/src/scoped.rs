//! [`Scoped`]: one directory tree of a remote that serves a larger one.
//!
//! A connection whose agent serves `/` carries any number of mounts, each
//! seeing only its own tree: a `Scoped` prefixes every path with the
//! tree's root (absolute and canonical, found with [`Remote::realpath`])
//! and keeps the promises the agent keeps for its own root, so that a
//! mount cannot tell a scoped view from an agent rooted at its tree: a
//! `..` that would leave the tree is EACCES, the tree's root cannot be
//! removed or replaced (EBUSY), and errors name paths as the mount knows
//! them. Handles pass through unchanged: they belong to the agent.

use crate::error::display_path;
use crate::{Remote, RemoteError, Result};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use yonder_proto::{
    Attr, DirPage, Errno, Handle, Owner, RenameFlags, SeekWhence, SetAttr, StatFs, Target, TreeBudget,
    TreePage, WirePath, XattrMode,
};

/// `path` (relative to a remote that serves `/`) relative to the tree at
/// `prefix` (the same, without leading or trailing `/`), if it lies in it:
/// how a change the remote pushes is named in a scoped view.
pub(crate) fn below_prefix(prefix: &[u8], path: &[u8]) -> Option<Vec<u8>> {
    let path = path.strip_suffix(b"/").unwrap_or(path);
    if prefix.is_empty() {
        return Some(path.to_vec());
    }
    match path.strip_prefix(prefix)? {
        b"" => Some(Vec::new()),
        [b'/', rest @ ..] => Some(rest.to_vec()),
        _ => None,
    }
}

/// The tree below `root` of a remote that serves `/`.
pub struct Scoped {
    inner: Arc<dyn Remote>,
    /// The tree's root relative to the inner remote's, without leading or
    /// trailing `/`; empty for `/` itself.
    prefix: Vec<u8>,
}

impl Scoped {
    /// The tree below `root`, an absolute canonical path on the remote
    /// (what [`Remote::realpath`] answers), of `inner`, a remote serving `/`.
    pub fn new(inner: Arc<dyn Remote>, root: &[u8]) -> Scoped {
        let prefix = root
            .split(|&b| b == b'/')
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(&b'/');
        Scoped { inner, prefix }
    }

    /// Resolves `root` (absolute, or relative to the agent's working
    /// directory) on `inner` and checks that it is a directory.
    pub async fn resolve(inner: Arc<dyn Remote>, root: &[u8]) -> Result<Scoped> {
        let canonical = inner.realpath(root).await?;
        let attr = inner.stat(&canonical).await?;
        if !attr.is_dir() {
            return Err(RemoteError::os("mount", display_path(root), Errno::ENOTDIR));
        }
        Ok(Scoped::new(inner, &canonical))
    }

    /// The tree's root as an absolute path on the remote.
    pub fn root(&self) -> String {
        format!("/{}", String::from_utf8_lossy(&self.prefix))
    }

    /// The tree's root as an absolute path on the remote, as bytes.
    pub fn root_bytes(&self) -> Vec<u8> {
        let mut root = vec![b'/'];
        root.extend_from_slice(&self.prefix);
        root
    }

    /// The remote this view is a part of.
    pub fn inner(&self) -> &Arc<dyn Remote> {
        &self.inner
    }

    /// The inner remote's path for `path`; `..` is resolved lexically, as
    /// the agent does, and may not climb above the tree's root.
    fn map(&self, op: &'static str, path: &[u8]) -> Result<Vec<u8>> {
        let mut parts: Vec<&[u8]> = Vec::new();
        for part in path.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    if parts.pop().is_none() {
                        return Err(RemoteError::os(op, display_path(path), Errno::EACCES));
                    }
                }
                name => parts.push(name),
            }
        }
        let mut mapped = self.prefix.clone();
        for part in parts {
            if !mapped.is_empty() {
                mapped.push(b'/');
            }
            mapped.extend_from_slice(part);
        }
        Ok(mapped)
    }

    /// The path within this tree of `agent_path`, a path as the agent
    /// names it; `None` if it lies outside the tree.
    fn unmap(&self, agent_path: &[u8]) -> Option<Vec<u8>> {
        if self.prefix.is_empty() {
            return Some(agent_path.to_vec());
        }
        let rest = agent_path.strip_prefix(&self.prefix[..])?;
        match rest {
            [] => Some(Vec::new()),
            [b'/', inside @ ..] => Some(inside.to_vec()),
            _ => None,
        }
    }

    /// [`map`](Self::map), refusing the tree's root itself (EBUSY), for
    /// operations that would remove or replace it.
    fn map_not_root(&self, op: &'static str, path: &[u8]) -> Result<Vec<u8>> {
        let mapped = self.map(op, path)?;
        if mapped == self.prefix {
            return Err(RemoteError::os(op, display_path(path), Errno::EBUSY));
        }
        Ok(mapped)
    }
}

/// Names `shown` instead of the inner remote's path in an error.
fn renamed(err: RemoteError, shown: impl FnOnce() -> String) -> RemoteError {
    match err {
        RemoteError::Os {
            op, errno, detail, ..
        } => RemoteError::Os {
            op,
            path: shown(),
            errno,
            detail,
        },
        RemoteError::Disconnected { op, reason, .. } => RemoteError::Disconnected {
            op,
            path: shown(),
            reason,
        },
        RemoteError::Protocol { op, reason, .. } => RemoteError::Protocol {
            op,
            path: shown(),
            reason,
        },
        other => other,
    }
}

fn pair(from: &[u8], to: &[u8]) -> String {
    format!("{} -> {}", display_path(from), display_path(to))
}

#[async_trait]
impl Remote for Scoped {
    async fn lstat(&self, path: &[u8]) -> Result<Attr> {
        let p = self.map("lstat", path)?;
        self.inner
            .lstat(&p)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn stat(&self, path: &[u8]) -> Result<Attr> {
        let p = self.map("stat", path)?;
        self.inner
            .stat(&p)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn fstat(&self, handle: Handle) -> Result<Attr> {
        self.inner.fstat(handle).await
    }

    async fn read_dir_page(&self, path: &[u8], cursor: Option<u64>, max_entries: u32) -> Result<DirPage> {
        let p = self.map("readdir", path)?;
        self.inner
            .read_dir_page(&p, cursor, max_entries)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn list_tree(&self, path: &[u8], cursor: Option<u64>, budget: TreeBudget) -> Result<TreePage> {
        let p = self.map("listtree", path)?;
        let mut tree = self
            .inner
            .list_tree(&p, cursor, budget)
            .await
            .map_err(|e| renamed(e, || display_path(path)))?;
        // The answer names directories as the agent does; this tree's
        // callers know them relative to its root. One outside it (none
        // should be) is dropped rather than misnamed.
        tree.dirs.retain_mut(|dir| match self.unmap(&dir.path) {
            Some(inside) => {
                dir.path = inside.into();
                true
            }
            None => false,
        });
        Ok(tree)
    }

    async fn open(&self, path: &[u8], flags: u32, mode: u32, owner: Option<Owner>) -> Result<(Handle, Attr)> {
        let p = self.map("open", path)?;
        self.inner
            .open(&p, flags, mode, owner)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn open_read(&self, path: &[u8], flags: u32, prefetch: u32) -> Result<(Handle, Attr, Vec<u8>)> {
        let p = self.map("open", path)?;
        self.inner
            .open_read(&p, flags, prefetch)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn read(&self, handle: Handle, offset: u64, len: u32) -> Result<Vec<u8>> {
        self.inner.read(handle, offset, len).await
    }

    async fn write(&self, handle: Handle, offset: u64, data: Bytes) -> Result<u32> {
        self.inner.write(handle, offset, data).await
    }

    async fn fsync(&self, handle: Handle, datasync: bool) -> Result<()> {
        self.inner.fsync(handle, datasync).await
    }

    async fn close(&self, handle: Handle) -> Result<()> {
        self.inner.close(handle).await
    }

    async fn setattr(&self, target: Target, attr: SetAttr) -> Result<Attr> {
        match target {
            Target::Handle(handle) => self.inner.setattr(Target::Handle(handle), attr).await,
            Target::Path(path) => {
                let p = self.map("setattr", &path)?;
                self.inner
                    .setattr(Target::Path(WirePath::from(p)), attr)
                    .await
                    .map_err(|e| renamed(e, || display_path(&path)))
            }
        }
    }

    async fn mkdir(&self, path: &[u8], mode: u32, owner: Option<Owner>) -> Result<Attr> {
        let p = self.map("mkdir", path)?;
        self.inner
            .mkdir(&p, mode, owner)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn mknod(
        &self,
        path: &[u8],
        mode: u32,
        rdev_major: u32,
        rdev_minor: u32,
        owner: Option<Owner>,
    ) -> Result<Attr> {
        let p = self.map("mknod", path)?;
        self.inner
            .mknod(&p, mode, rdev_major, rdev_minor, owner)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn unlink(&self, path: &[u8]) -> Result<()> {
        let p = self.map_not_root("unlink", path)?;
        self.inner
            .unlink(&p)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn rmdir(&self, path: &[u8]) -> Result<()> {
        let p = self.map_not_root("rmdir", path)?;
        self.inner
            .rmdir(&p)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn rename(&self, from: &[u8], to: &[u8], flags: RenameFlags) -> Result<()> {
        let f = self.map_not_root("rename", from)?;
        let t = self.map_not_root("rename", to)?;
        self.inner
            .rename(&f, &t, flags)
            .await
            .map_err(|e| renamed(e, || pair(from, to)))
    }

    async fn symlink(&self, target: &[u8], path: &[u8], owner: Option<Owner>) -> Result<Attr> {
        // The target is stored as given, never mapped.
        let p = self.map("symlink", path)?;
        self.inner
            .symlink(target, &p, owner)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn readlink(&self, path: &[u8]) -> Result<Vec<u8>> {
        let p = self.map("readlink", path)?;
        self.inner
            .readlink(&p)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn link(&self, from: &[u8], to: &[u8]) -> Result<Attr> {
        let f = self.map("link", from)?;
        let t = self.map("link", to)?;
        self.inner
            .link(&f, &t)
            .await
            .map_err(|e| renamed(e, || pair(from, to)))
    }

    async fn statfs(&self, path: &[u8]) -> Result<StatFs> {
        let p = self.map("statfs", path)?;
        self.inner
            .statfs(&p)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn getxattr(&self, path: &[u8], name: &[u8]) -> Result<Vec<u8>> {
        let p = self.map("getxattr", path)?;
        self.inner
            .getxattr(&p, name)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn setxattr(&self, path: &[u8], name: &[u8], value: &[u8], mode: XattrMode) -> Result<()> {
        let p = self.map("setxattr", path)?;
        self.inner
            .setxattr(&p, name, value, mode)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn listxattr(&self, path: &[u8]) -> Result<Vec<Vec<u8>>> {
        let p = self.map("listxattr", path)?;
        self.inner
            .listxattr(&p)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn removexattr(&self, path: &[u8], name: &[u8]) -> Result<()> {
        let p = self.map("removexattr", path)?;
        self.inner
            .removexattr(&p, name)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn access(&self, path: &[u8], mask: u32) -> Result<()> {
        let p = self.map("access", path)?;
        self.inner
            .access(&p, mask)
            .await
            .map_err(|e| renamed(e, || display_path(path)))
    }

    async fn fallocate(&self, handle: Handle, offset: u64, len: u64, mode: u32) -> Result<()> {
        self.inner.fallocate(handle, offset, len, mode).await
    }

    async fn lseek(&self, handle: Handle, offset: u64, whence: SeekWhence) -> Result<u64> {
        self.inner.lseek(handle, offset, whence).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    fn exactly_once(&self) -> bool {
        self.inner.exactly_once()
    }

    async fn realpath(&self, path: &[u8]) -> Result<Vec<u8>> {
        let canonical = self.inner.realpath(path).await?;
        // Within this tree: its root, or below it.
        let inside = match canonical.strip_prefix(&b"/"[..]) {
            Some(rel) => {
                self.prefix.is_empty()
                    || rel == self.prefix.as_slice()
                    || (rel.starts_with(&self.prefix) && rel.get(self.prefix.len()) == Some(&b'/'))
            }
            None => false,
        };
        if !inside {
            return Err(RemoteError::os("realpath", display_path(path), Errno::EACCES));
        }
        Ok(canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    #[async_trait]
    impl Remote for Nothing {
        async fn lstat(&self, _: &[u8]) -> Result<Attr> {
            unimplemented!()
        }
        async fn stat(&self, _: &[u8]) -> Result<Attr> {
            unimplemented!()
        }
        async fn fstat(&self, _: Handle) -> Result<Attr> {
            unimplemented!()
        }
        async fn read_dir_page(&self, _: &[u8], _: Option<u64>, _: u32) -> Result<DirPage> {
            unimplemented!()
        }
        async fn open(&self, _: &[u8], _: u32, _: u32, _: Option<Owner>) -> Result<(Handle, Attr)> {
            unimplemented!()
        }
        async fn read(&self, _: Handle, _: u64, _: u32) -> Result<Vec<u8>> {
            unimplemented!()
        }
        async fn write(&self, _: Handle, _: u64, _: Bytes) -> Result<u32> {
            unimplemented!()
        }
        async fn fsync(&self, _: Handle, _: bool) -> Result<()> {
            unimplemented!()
        }
        async fn close(&self, _: Handle) -> Result<()> {
            unimplemented!()
        }
        async fn setattr(&self, _: Target, _: SetAttr) -> Result<Attr> {
            unimplemented!()
        }
        async fn mkdir(&self, _: &[u8], _: u32, _: Option<Owner>) -> Result<Attr> {
            unimplemented!()
        }
        async fn mknod(&self, _: &[u8], _: u32, _: u32, _: u32, _: Option<Owner>) -> Result<Attr> {
            unimplemented!()
        }
        async fn unlink(&self, _: &[u8]) -> Result<()> {
            unimplemented!()
        }
        async fn rmdir(&self, _: &[u8]) -> Result<()> {
            unimplemented!()
        }
        async fn rename(&self, _: &[u8], _: &[u8], _: RenameFlags) -> Result<()> {
            unimplemented!()
        }
        async fn symlink(&self, _: &[u8], _: &[u8], _: Option<Owner>) -> Result<Attr> {
            unimplemented!()
        }
        async fn readlink(&self, _: &[u8]) -> Result<Vec<u8>> {
            unimplemented!()
        }
        async fn link(&self, _: &[u8], _: &[u8]) -> Result<Attr> {
            unimplemented!()
        }
        async fn statfs(&self, _: &[u8]) -> Result<StatFs> {
            unimplemented!()
        }
        async fn getxattr(&self, _: &[u8], _: &[u8]) -> Result<Vec<u8>> {
            unimplemented!()
        }
        async fn setxattr(&self, _: &[u8], _: &[u8], _: &[u8], _: XattrMode) -> Result<()> {
            unimplemented!()
        }
        async fn listxattr(&self, _: &[u8]) -> Result<Vec<Vec<u8>>> {
            unimplemented!()
        }
        async fn removexattr(&self, _: &[u8], _: &[u8]) -> Result<()> {
            unimplemented!()
        }
        async fn access(&self, _: &[u8], _: u32) -> Result<()> {
            unimplemented!()
        }
        async fn fallocate(&self, _: Handle, _: u64, _: u64, _: u32) -> Result<()> {
            unimplemented!()
        }
        async fn lseek(&self, _: Handle, _: u64, _: SeekWhence) -> Result<u64> {
            unimplemented!()
        }
        async fn realpath(&self, _: &[u8]) -> Result<Vec<u8>> {
            unimplemented!()
        }
    }

    #[test]
    fn paths_are_prefixed_and_confined() {
        let s = Scoped::new(Arc::new(Nothing), b"/srv//data/");
        assert_eq!(s.root(), "/srv/data");
        assert_eq!(s.map("x", b"").unwrap(), b"srv/data");
        assert_eq!(s.map("x", b"/a/./b/../c").unwrap(), b"srv/data/a/c");
        assert_eq!(s.map("x", b"a/..").unwrap(), b"srv/data");
        for bad in [&b".."[..], b"../data/x", b"a/../../x", b"/../x"] {
            let err = s.map("x", bad).unwrap_err();
            assert_eq!(err.errno(), Errno::EACCES, "{bad:?}");
        }
        assert_eq!(
            s.map_not_root("rmdir", b"a/..").unwrap_err().errno(),
            Errno::EBUSY
        );
        let whole = Scoped::new(Arc::new(Nothing), b"/");
        assert_eq!(whole.map("x", b"").unwrap(), b"");
        assert_eq!(whole.map("x", b"etc/passwd").unwrap(), b"etc/passwd");
        assert_eq!(whole.root(), "/");
    }
}
