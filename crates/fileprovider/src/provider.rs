//! [`Provider`]: the replicated extension's requests as VFS calls.

use crate::byte_range::ByteRange;
use crate::change_log::ChangeLog;
use crate::contents::{copy_in, copy_out, CopyError};
use crate::error::{ErrorStatus, ProviderError};
use crate::identifier::ItemIdentifier;
use crate::item::{Item, ItemChanges, ItemKind, ItemTemplate};
use crate::system::System;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use yonder_vfs::{
    open_flags as of, Caller, Errno, FileAttr, FileKind, RenameFlags, SetAttr, SetTime, Vfs, ROOT_INO,
};

/// Fetched contents, as the system is handed them: a local file (the
/// system's to move or clone and unlink), the item they are of, and the
/// range of the item's data in the file at its own offset.
#[derive(Debug)]
pub struct Fetched {
    pub path: PathBuf,
    pub item: Item,
    pub range: ByteRange,
}

/// The mapping of `NSFileProviderReplicatedExtension`'s requests onto a
/// [`Vfs`], free of Objective-C: the macOS side (`macos/`) calls these
/// from the system's requests and hands their answers to its completion
/// handlers, and the tests call them as the system would.
///
/// Items are named by path ([`ItemIdentifier`]); each request resolves its
/// identifiers through the VFS's lookups, which its caches answer while
/// fresh. Remote changes reach the system through the [`ChangeLog`], which
/// this provider sets as the VFS's frontend caches.
pub struct Provider {
    vfs: Arc<Vfs>,
    caller: Caller,
    changes: Arc<ChangeLog>,
}

impl Provider {
    /// Serves `vfs`, telling `system` of remote changes.
    pub fn new(vfs: Arc<Vfs>, system: Arc<dyn System>) -> Arc<Provider> {
        let changes = Arc::new(ChangeLog::new(&vfs, system));
        vfs.set_frontend_caches(changes.clone());
        Arc::new(Provider {
            vfs,
            // The system hands over files it already made with the user's
            // umask; what the extension creates gets the usual one.
            caller: Caller {
                umask: 0o022,
                ..Caller::current()
            },
            changes,
        })
    }

    pub fn vfs(&self) -> &Arc<Vfs> {
        &self.vfs
    }

    pub fn change_log(&self) -> &ChangeLog {
        &self.changes
    }

    /// The attributes of the item `id` names, each of its path's names
    /// looked up in turn.
    pub(crate) async fn resolve(
        &self,
        op: &'static str,
        id: &ItemIdentifier,
    ) -> Result<FileAttr, ProviderError> {
        let Some(path) = id.path() else {
            return Err(ProviderError::new(op, id, ErrorStatus::NoSuchItem));
        };
        let mut attr = self
            .vfs
            .getattr(ROOT_INO, None)
            .await
            .map_err(|e| ProviderError::reading(op, id, e))?;
        for name in path.split(|b| *b == b'/').filter(|n| !n.is_empty()) {
            if attr.kind != FileKind::Directory {
                return Err(ProviderError::new(op, id, ErrorStatus::NoSuchItem));
            }
            attr = self
                .vfs
                .lookup_uncounted(&self.caller, attr.ino, name)
                .await
                .map_err(|e| ProviderError::reading(op, id, e))?;
            // The system keeps what it was told of with no count of its
            // own, as an NFS client keeps file handles: an inode whose last
            // handle closes must not leave the table while its name may
            // still be asked for.
            self.vfs.keep_exported(attr.ino);
        }
        Ok(attr)
    }

    /// Opens the file `id` names. An open that finds the name given to
    /// another file meanwhile answers ESTALE, and the VFS expects the
    /// caller to look the path up again and retry once, as the kernel
    /// does.
    async fn open(
        &self,
        op: &'static str,
        id: &ItemIdentifier,
        flags: u32,
        reading: bool,
    ) -> Result<(yonder_vfs::Fh, FileAttr), ProviderError> {
        let fail = |e| match reading {
            true => ProviderError::reading(op, id, e),
            false => ProviderError::changing(op, id, e),
        };
        let mut retried = false;
        loop {
            let attr = self.resolve(op, id).await?;
            if attr.kind != FileKind::Regular {
                let errno = if attr.kind == FileKind::Directory {
                    Errno::EISDIR
                } else {
                    Errno::EINVAL
                };
                return Err(fail(yonder_vfs::VfsError::new(op, id.to_string(), errno)));
            }
            match self.vfs.open(&self.caller, attr.ino, flags).await {
                Err(e) if e.errno() == Errno::ESTALE && !retried => retried = true,
                opened => return opened.map_err(fail),
            }
        }
    }

    /// The item `id` names with the attributes `attr` (a symbolic link's
    /// target read); a kind FileProvider cannot show is no such item.
    pub(crate) async fn item_with(
        &self,
        op: &'static str,
        id: ItemIdentifier,
        attr: &FileAttr,
    ) -> Result<Item, ProviderError> {
        let target = match attr.kind {
            FileKind::Symlink => Some(
                self.vfs
                    .readlink(attr.ino)
                    .await
                    .map_err(|e| ProviderError::reading(op, &id, e))?,
            ),
            _ => None,
        };
        Item::from_attr(id.clone(), attr, target)
            .ok_or_else(|| ProviderError::new(op, &id, ErrorStatus::NoSuchItem))
    }

    /// `itemForIdentifier`.
    pub async fn item(&self, id: &ItemIdentifier) -> Result<Item, ProviderError> {
        let attr = self.resolve("item", id).await?;
        self.item_with("item", id.clone(), &attr).await
    }

    /// The directory `dir`'s entries with their attributes, in name order
    /// (`.` and `..` left out).
    pub(crate) async fn list(
        &self,
        op: &'static str,
        dir: &ItemIdentifier,
    ) -> Result<Vec<(Vec<u8>, FileAttr)>, ProviderError> {
        let attr = self.resolve(op, dir).await?;
        if attr.kind != FileKind::Directory {
            return Err(ProviderError::reading(
                op,
                dir,
                yonder_vfs::VfsError::new(op, dir.to_string(), Errno::ENOTDIR),
            ));
        }
        let fh = self
            .vfs
            .opendir(&self.caller, attr.ino)
            .map_err(|e| ProviderError::reading(op, dir, e))?;
        let mut entries = Vec::new();
        let mut offset = 0;
        let listed = loop {
            match self.vfs.readdir(fh, offset).await {
                Ok(page) if page.is_empty() => break Ok(()),
                Ok(page) => {
                    for item in page {
                        offset = item.offset;
                        if let (false, Some(attr)) = (item.is_dot_or_dotdot(), item.attr) {
                            entries.push((item.name, attr));
                        }
                    }
                }
                Err(e) => break Err(ProviderError::reading(op, dir, e)),
            }
        };
        if let Err(e) = self.vfs.releasedir(fh) {
            tracing::debug!("{op} {dir}: closing the listing: {e}");
        }
        listed?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// `fetchContentsForItemWithIdentifier`: the whole file, into a new
    /// file in `into` (the system's temporary directory, on the volume of
    /// the domain).
    pub async fn fetch_contents(&self, id: &ItemIdentifier, into: &Path) -> Result<Fetched, ProviderError> {
        self.fetch("fetch contents", id, None, into).await
    }

    /// `fetchPartialContentsForItemWithIdentifier`: at least `requested`,
    /// aligned to `alignment`, at its own offset in a new file in `into`.
    /// A request that starts at or past the end of the file is answered
    /// with the whole file, which covers every byte there is.
    pub async fn fetch_partial_contents(
        &self,
        id: &ItemIdentifier,
        requested: ByteRange,
        alignment: u64,
        into: &Path,
    ) -> Result<Fetched, ProviderError> {
        self.fetch("fetch partial contents", id, Some((requested, alignment)), into)
            .await
    }

    async fn fetch(
        &self,
        op: &'static str,
        id: &ItemIdentifier,
        partial: Option<(ByteRange, u64)>,
        into: &Path,
    ) -> Result<Fetched, ProviderError> {
        let (fh, attr) = self.open(op, id, of::READ_ONLY, true).await?;
        let whole = ByteRange {
            offset: 0,
            len: attr.size,
        };
        let range = partial
            .and_then(|(requested, alignment)| requested.aligned_within(alignment, attr.size))
            .unwrap_or(whole);
        let copied = async {
            let local = tempfile::Builder::new()
                .prefix("yonder-fetch-")
                .tempfile_in(into)
                .map_err(|e| ProviderError::local(op, id, &e))?;
            let n = copy_out(&self.vfs, fh, range, local.as_file())
                .await
                .map_err(|e| copy_error(op, id, e, true))?;
            // The contract wants the file at least as long as the range's
            // end; writes at an offset leave a hole before them, and an
            // empty fetch writes nothing at all.
            local
                .as_file()
                .set_len(range.offset + n)
                .map_err(|e| ProviderError::local(op, id, &e))?;
            let (_, path) = local.keep().map_err(|e| ProviderError::local(op, id, &e.error))?;
            Ok::<_, ProviderError>((path, n))
        }
        .await;
        if let Err(e) = self.vfs.release(fh).await {
            tracing::debug!("{op} {id}: closing: {e}");
        }
        let (path, n) = copied?;
        // What was read is what the item is: a file that shrank on the
        // remote since its attributes were taken is reported as read.
        let mut attr = attr;
        if n < range.len {
            attr.size = range.offset + n;
        }
        let item = self.item_with(op, id.clone(), &attr).await?;
        let range = ByteRange {
            offset: range.offset,
            len: n,
        };
        let range = if range.is_whole(item.size) {
            ByteRange {
                offset: 0,
                len: item.size,
            }
        } else {
            range
        };
        Ok(Fetched { path, item, range })
    }

    /// `createItemBasedOnTemplate`: a directory, a symbolic link, or a file
    /// with the data of `contents` (none: empty).
    pub async fn create_item(
        &self,
        template: &ItemTemplate,
        contents: Option<&Path>,
    ) -> Result<Item, ProviderError> {
        const OP: &str = "create item";
        let Some(id) = template.parent.child(&template.filename) else {
            return Err(ProviderError::new(OP, &template.parent, ErrorStatus::NoSuchItem));
        };
        let parent = self.resolve(OP, &template.parent).await?;
        let mode = template.perm & 0o7777;
        let attr = match &template.kind {
            ItemKind::Directory => self
                .vfs
                .mkdir(&self.caller, parent.ino, &template.filename, mode)
                .await
                .map_err(|e| ProviderError::changing(OP, &id, e))?,
            ItemKind::Symlink(target) => self
                .vfs
                .symlink(&self.caller, parent.ino, &template.filename, target)
                .await
                .map_err(|e| ProviderError::changing(OP, &id, e))?,
            ItemKind::File => {
                let (fh, _) = self
                    .vfs
                    .create(
                        &self.caller,
                        parent.ino,
                        &template.filename,
                        mode,
                        of::WRITE_ONLY | of::EXCLUSIVE,
                    )
                    .await
                    .map_err(|e| ProviderError::changing(OP, &id, e))?;
                self.write_and_close(OP, &id, fh, contents).await?;
                self.resolve(OP, &id).await?
            }
        };
        self.item_with(OP, id, &attr).await
    }

    /// Copies `contents` (if any) into `fh`, then closes it: the close is
    /// where a write-back error is reported, so it is waited for.
    async fn write_and_close(
        &self,
        op: &'static str,
        id: &ItemIdentifier,
        fh: yonder_vfs::Fh,
        contents: Option<&Path>,
    ) -> Result<(), ProviderError> {
        let copied = match contents {
            Some(path) => match std::fs::File::open(path) {
                Ok(file) => copy_in(&self.vfs, fh, file)
                    .await
                    .map(drop)
                    .map_err(|e| copy_error(op, id, e, false)),
                Err(e) => Err(ProviderError::local(op, id, &e)),
            },
            None => Ok(()),
        };
        let flushed = self.vfs.flush(fh).await;
        let released = self.vfs.release(fh).await;
        copied?;
        flushed
            .and(released)
            .map_err(|e| ProviderError::changing(op, id, e))
    }

    /// `modifyItem`: a rename or move, new permission bits, new data,
    /// a new modification time, in that order. Answers the item as it is
    /// now, under its new identifier when it moved.
    pub async fn modify_item(
        &self,
        id: &ItemIdentifier,
        changes: &ItemChanges,
    ) -> Result<Item, ProviderError> {
        const OP: &str = "modify item";
        let Some((old_parent, old_name)) = id.parent_and_name() else {
            return Err(ProviderError::new(OP, id, ErrorStatus::NoSuchItem));
        };
        let mut current = id.clone();
        let new_parent = changes.parent.clone().unwrap_or_else(|| old_parent.clone());
        let new_name = changes.filename.clone().unwrap_or_else(|| old_name.to_vec());
        if (new_parent != old_parent || new_name != old_name) && *id != ItemIdentifier::Root {
            let Some(target) = new_parent.child(&new_name) else {
                return Err(ProviderError::new(OP, &new_parent, ErrorStatus::NoSuchItem));
            };
            let from = self.resolve(OP, &old_parent).await?;
            let to = self.resolve(OP, &new_parent).await?;
            self.vfs
                .rename(
                    &self.caller,
                    from.ino,
                    old_name,
                    to.ino,
                    &new_name,
                    // FileProvider resolves a collision itself once told.
                    RenameFlags {
                        noreplace: true,
                        exchange: false,
                    },
                )
                .await
                .map_err(|e| ProviderError::changing(OP, id, e))?;
            current = target;
        }
        let mut attr = self.resolve(OP, &current).await?;
        if let Some(perm) = changes.perm {
            let set = SetAttr {
                mode: Some(perm & 0o7777),
                ..SetAttr::default()
            };
            attr = self
                .vfs
                .setattr(&self.caller, attr.ino, None, set)
                .await
                .map_err(|e| ProviderError::changing(OP, &current, e))?;
        }
        if let Some(contents) = &changes.contents {
            let (fh, _) = self
                .open(OP, &current, of::WRITE_ONLY | of::TRUNCATE, false)
                .await?;
            self.write_and_close(OP, &current, fh, Some(contents)).await?;
        }
        if let Some(modified) = changes.modified {
            let set = SetAttr {
                mtime: SetTime::Set(modified),
                ..SetAttr::default()
            };
            self.vfs
                .setattr(&self.caller, attr.ino, None, set)
                .await
                .map_err(|e| ProviderError::changing(OP, &current, e))?;
        }
        let attr = self
            .vfs
            .getattr(attr.ino, None)
            .await
            .map_err(|e| ProviderError::changing(OP, &current, e))?;
        self.item_with(OP, current, &attr).await
    }

    /// `deleteItemWithIdentifier`: a directory only when empty unless
    /// `recursive` (`NSFileProviderDeleteItemOptions.recursive`).
    pub async fn delete_item(&self, id: &ItemIdentifier, recursive: bool) -> Result<(), ProviderError> {
        const OP: &str = "delete item";
        let Some((parent_id, name)) = id.parent_and_name() else {
            return Err(ProviderError::new(OP, id, ErrorStatus::NoSuchItem));
        };
        if *id == ItemIdentifier::Root {
            return Err(ProviderError::changing(
                OP,
                id,
                yonder_vfs::VfsError::new(OP, ".", Errno::EBUSY),
            ));
        }
        let attr = self.resolve(OP, id).await?;
        let parent = self.resolve(OP, &parent_id).await?;
        if attr.kind == FileKind::Directory {
            if recursive {
                for (child, _) in self.list(OP, id).await? {
                    let child = id.child(&child).expect("a path item has children");
                    Box::pin(self.delete_item(&child, true)).await?;
                }
            }
            self.vfs
                .rmdir(&self.caller, parent.ino, name)
                .await
                .map_err(|e| ProviderError::changing(OP, id, e))
        } else {
            self.vfs
                .unlink(&self.caller, parent.ino, name)
                .await
                .map_err(|e| ProviderError::changing(OP, id, e))
        }
    }
}

fn copy_error(op: &'static str, id: &ItemIdentifier, error: CopyError, reading: bool) -> ProviderError {
    match error {
        CopyError::Remote(e) if reading => ProviderError::reading(op, id, e),
        CopyError::Remote(e) => ProviderError::changing(op, id, e),
        CopyError::Local(e) => ProviderError::local(op, id, &e),
    }
}
