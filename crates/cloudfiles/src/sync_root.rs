//! The engine of one sync root: answers the OS's callbacks through the
//! VFS and brings placeholders up to date with the remote's changes.

use crate::error::CloudFilesError;
use crate::hydrations::Hydrations;
use crate::item_path::ItemPath;
use crate::os::{CloudCallbacks, CloudOs, Placeholder, UpdateData, TRANSFER_ALIGNMENT};
use crate::own_removals::OwnRemovals;
use crate::placeholders::{Placeholders, Shown};
use crate::requests::{
    CancelFetchData, FetchData, FetchPlaceholders, FileClosed, NotifyDelete, NotifyRename,
};
use crate::send_failures::{SendFailure, SendFailures};
use crate::status::CloudStatus;
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};
use tokio::runtime::Handle;
use tracing::{debug, warn};
use yonder_proto::Timespec;
use yonder_vfs::frontend::{CacheDrop, FrontendCaches};
use yonder_vfs::{
    open_flags, Caller, Errno, Exporter, Fh, FileAttr, FileKind, Ino, RenameFlags, SetAttr, Vfs, ROOT_INO,
};

/// Each VFS read of a hydration: the VFS's readahead window grows behind
/// sequential reads of this size.
const READ_CHUNK: u64 = 1 << 20;

/// How far past the required range a hydration follows the OS's
/// optional range (the VFS's largest readahead window).
const OPTIONAL_MAX: u64 = 8 << 20;

type Result<T> = std::result::Result<T, CloudFilesError>;

/// One sync root's engine: the OS side's callbacks come here
/// ([`CloudCallbacks`]), and so do the VFS's remote changes
/// ([`FrontendCaches`]). Files are addressed by path below the sync root
/// and reach the VFS through an [`Exporter`], as a frontend without
/// opens or lookup counts.
pub struct SyncRoot {
    exporter: Arc<Exporter>,
    os: Arc<dyn CloudOs>,
    placeholders: Placeholders,
    failures: SendFailures,
    hydrations: Hydrations,
    own_removals: OwnRemovals,
    /// Whom remote calls are made as: the user running the provider.
    caller: Caller,
    runtime: Handle,
    /// For the tasks each callback starts.
    me: Weak<SyncRoot>,
}

impl SyncRoot {
    pub fn new(vfs: Arc<Vfs>, os: Arc<dyn CloudOs>, runtime: Handle) -> Arc<SyncRoot> {
        let root = Arc::new_cyclic(|me| SyncRoot {
            exporter: Exporter::new(vfs),
            os,
            placeholders: Placeholders::default(),
            failures: SendFailures::default(),
            hydrations: Hydrations::default(),
            own_removals: OwnRemovals::default(),
            caller: Caller {
                umask: 0o022,
                ..Caller::current()
            },
            runtime,
            me: me.clone(),
        });
        root.placeholders.show(
            ItemPath::root(),
            Shown {
                ino: ROOT_INO,
                directory: true,
                size: 0,
                mtime: Timespec::default(),
                populated: false,
            },
        );
        root
    }

    pub fn vfs(&self) -> &Arc<Vfs> {
        self.exporter.vfs()
    }

    pub fn os(&self) -> &Arc<dyn CloudOs> {
        &self.os
    }

    // ----- callbacks -----

    /// Lists a directory for the OS: every item the remote has there that
    /// Windows can show (regular files and directories with names it
    /// accepts), in one transfer.
    pub async fn serve_fetch_placeholders(&self, request: FetchPlaceholders) {
        let (placeholders, dir, status) = match self.list_dir(&request.dir).await {
            Ok((items, dir)) => (items, Some(dir), CloudStatus::Success),
            Err(e) => {
                warn!("{e}");
                (Vec::new(), None, e.status())
            }
        };
        let given: Vec<Placeholder> = placeholders.iter().map(|(p, _)| p.clone()).collect();
        match self.os.transfer_placeholders(request.ticket, &given, status) {
            Ok(()) if status.is_success() => {
                for (placeholder, shown) in placeholders {
                    self.placeholders.show(request.dir.join(&placeholder.name), shown);
                }
                // Known here now even if its own placeholder was given
                // before this engine started (a sync root outlives it).
                if let (None, Some(dir)) = (self.placeholders.get(&request.dir), dir) {
                    self.placeholders.show(request.dir.clone(), shown_of(&dir));
                }
                self.placeholders.set_populated(&request.dir);
            }
            Ok(()) => {}
            Err(e) => warn!("{e}"),
        }
    }

    /// Hydrates a placeholder's range: the required range widened to the
    /// transfer alignment (and cut at the end of the file), and the
    /// optional range after it where it follows on, read in order through
    /// the VFS so its readahead runs ahead of the transfers. A failure
    /// fails what was not transferred, with the remote's reason.
    pub async fn serve_fetch_data(&self, request: FetchData) {
        let start = request.required_offset / TRANSFER_ALIGNMENT * TRANSFER_ALIGNMENT;
        let mut sent_to = start;
        let id = self.hydrations.start(&request.path, request.ticket);
        let hydrated = self.hydrate(&request, id, &mut sent_to).await;
        let cancelled = self.hydrations.is_cancelled(id);
        self.hydrations.finish(&request.path, request.ticket, id);
        if cancelled {
            debug!("{}: hydration cancelled at {sent_to}", request.path);
            return;
        }
        if let Err(e) = hydrated {
            warn!("{e}");
            let required_end = request.required_offset.saturating_add(request.required_length);
            // Once the required range is in, the program's read is
            // served: a failure in the optional range just stops there.
            if sent_to == start || sent_to < required_end.min(request.file_size) {
                let length = required_end.saturating_sub(sent_to).max(1);
                if let Err(e) = self.os.fail_data(request.ticket, sent_to, length, e.status()) {
                    warn!("{e}");
                }
            }
        }
    }

    async fn hydrate(&self, request: &FetchData, id: u64, sent_to: &mut u64) -> Result<()> {
        let path = &request.path;
        let size = request.file_size;
        if request.required_offset >= size {
            return Err(CloudFilesError::refused(
                "hydrate",
                path,
                CloudStatus::InvalidRequest,
                format!(
                    "range at {} starts past the end of the file ({size} bytes)",
                    request.required_offset
                ),
            ));
        }
        let required_end = request.required_offset.saturating_add(request.required_length);
        let required_end = required_end.div_ceil(TRANSFER_ALIGNMENT) * TRANSFER_ALIGNMENT;
        let mut end = required_end;
        let optional_end = request.optional_offset.saturating_add(request.optional_length);
        if request.optional_length > 0 && request.optional_offset <= end && optional_end > end {
            end = optional_end.min(end + OPTIONAL_MAX);
        }
        let end = end.min(size);
        let attr = self.resolve("hydrate", path).await?;
        if attr.kind != FileKind::Regular {
            return Err(CloudFilesError::refused(
                "hydrate",
                path,
                CloudStatus::InvalidRequest,
                "not a regular file",
            ));
        }
        let mut offset = *sent_to;
        while offset < end {
            if self.hydrations.is_cancelled(id)
                || (offset >= required_end && self.hydrations.superseded(path, id))
            {
                break;
            }
            let want = (end - offset).min(READ_CHUNK);
            let data = self
                .exporter
                .read_ino(&self.caller, attr.ino, offset, want as u32)
                .await
                .map_err(|e| CloudFilesError::vfs("hydrate", path, e))?;
            // Cancelled while the read was on its way: the API would
            // refuse the transfer.
            if self.hydrations.is_cancelled(id) {
                break;
            }
            if (data.len() as u64) < want {
                // The remote's file is shorter than the placeholder: it
                // changed, and its notice is on its way.
                let aligned = data.len() as u64 / TRANSFER_ALIGNMENT * TRANSFER_ALIGNMENT;
                if aligned > 0 {
                    self.os
                        .transfer_data(request.ticket, offset, &data[..aligned as usize])?;
                    *sent_to = offset + aligned;
                }
                return Err(CloudFilesError::refused(
                    "hydrate",
                    path,
                    CloudStatus::NotInSync,
                    format!(
                        "the remote file ends at {} bytes, the placeholder at {size}",
                        offset + data.len() as u64
                    ),
                ));
            }
            self.os.transfer_data(request.ticket, offset, &data)?;
            offset += want;
            *sent_to = offset;
        }
        Ok(())
    }

    /// Carries a local rename to the remote first, and lets it happen
    /// locally only if the remote did it.
    pub async fn serve_rename(&self, request: NotifyRename) {
        let status = match self.rename(&request).await {
            Ok(()) => CloudStatus::Success,
            Err(e) => {
                warn!("{e}");
                e.status()
            }
        };
        if let Err(e) = self.os.ack_rename(request.ticket, status) {
            warn!("{e}");
        }
    }

    async fn rename(&self, request: &NotifyRename) -> Result<()> {
        let (from_dir, from_name) = self.split("rename", &request.path)?;
        let from_parent = self.resolve("rename", &from_dir).await?;
        let Some(target) = &request.target else {
            // Moved out of the sync root: gone from the remote's view, as
            // a delete.
            return self
                .remove_remote(&request.path, from_parent.ino, from_name, request.directory)
                .await;
        };
        let (to_dir, to_name) = self.split("rename", target)?;
        let to_parent = self.resolve("rename", &to_dir).await?;
        self.vfs()
            .rename(
                &self.caller,
                from_parent.ino,
                from_name.as_bytes(),
                to_parent.ino,
                to_name.as_bytes(),
                RenameFlags::default(),
            )
            .await
            .map_err(|e| CloudFilesError::vfs("rename", &request.path, e))?;
        self.placeholders.rename(&request.path, target);
        self.show_failures(self.failures.forget_within(&request.path));
        Ok(())
    }

    /// Carries a local delete to the remote first, and lets it happen
    /// locally only if the remote did it.
    pub async fn serve_delete(&self, request: NotifyDelete) {
        let status = if self.own_removals.covers(&request.path) {
            CloudStatus::Success
        } else {
            self.delete_remote(&request).await
        };
        if let Err(e) = self.os.ack_delete(request.ticket, status) {
            warn!("{e}");
        }
    }

    async fn delete_remote(&self, request: &NotifyDelete) -> CloudStatus {
        match self.delete(request).await {
            Ok(()) => CloudStatus::Success,
            Err(e) => {
                warn!("{e}");
                e.status()
            }
        }
    }

    async fn delete(&self, request: &NotifyDelete) -> Result<()> {
        let (dir, name) = self.split("delete", &request.path)?;
        let parent = self.resolve("delete", &dir).await?;
        self.remove_remote(&request.path, parent.ino, name, request.directory)
            .await
    }

    async fn remove_remote(&self, path: &ItemPath, parent: Ino, name: &str, directory: bool) -> Result<()> {
        let vfs = self.vfs();
        let done = if directory {
            vfs.rmdir(&self.caller, parent, name.as_bytes()).await
        } else {
            vfs.unlink(&self.caller, parent, name.as_bytes()).await
        };
        match done {
            Ok(()) => {}
            // Already gone there: the local delete may go ahead.
            Err(e) if e.errno() == Errno::ENOENT => {}
            Err(e) => return Err(CloudFilesError::vfs("delete", path, e)),
        }
        self.placeholders.remove(path);
        self.show_failures(self.failures.forget_within(path));
        Ok(())
    }

    /// Sends what a closed file holds to the remote when it was written
    /// (no longer in sync) or made here, then marks it in sync.
    pub async fn serve_close(&self, request: FileClosed) {
        if request.deleted {
            return;
        }
        let shown = match self.send_local_file(&request.path).await {
            Ok(()) => self.failures.sent(&request.path),
            Err(e) => {
                // The file stays not in sync (Explorer marks it so), and
                // the sync root's status says why until it is sent.
                warn!("{e}");
                Some(Some(self.failures.failed(SendFailure {
                    path: request.path.clone(),
                    status: e.status(),
                    message: e.to_string(),
                })))
            }
        };
        self.show_failures(shown);
    }

    fn show_failures(&self, shown: Option<Option<SendFailure>>) {
        if let Some(shown) = shown {
            if let Err(e) = self.os.report_sync_status(shown.as_ref()) {
                warn!("{e}");
            }
        }
    }

    async fn send_local_file(&self, path: &ItemPath) -> Result<()> {
        let Some(state) = self.os.item_state(path)? else {
            return Ok(());
        };
        if state.directory || (state.placeholder && state.in_sync) {
            return Ok(());
        }
        let (dir, name) = self.split("send", path)?;
        let parent = self.resolve("send", &dir).await?;
        if !state.placeholder {
            let attr = self.upload_new_from(path, parent.ino, name, state.size).await?;
            self.os.convert_to_placeholder(path, &identity(attr.ino))?;
            self.placeholders.show(path.clone(), shown_of(&attr));
            return Ok(());
        }
        // The remote's version now, not the caches': a change whose
        // notice is still on its way must count as a conflict, or this
        // write would overwrite it. (A change between this check and the
        // write is still overwritten: the protocol has no conditional
        // write.)
        if let Some(shown) = self.placeholders.get(path) {
            self.vfs().invalidate_inode(shown.ino);
        }
        self.vfs().invalidate_path(path.as_str().as_bytes());
        let remote = self
            .vfs()
            .lookup_uncounted(&self.caller, parent.ino, name.as_bytes())
            .await
            .map_err(|e| CloudFilesError::vfs("send", path, e))?;
        let unchanged = self
            .placeholders
            .get(path)
            .is_some_and(|shown| same_version(&shown, &shown_of(&remote)));
        if !unchanged {
            return self
                .keep_both(path, &dir, parent.ino, name, &remote, state.size)
                .await;
        }
        let vfs = self.vfs();
        let (fh, _) = vfs
            .open(&self.caller, remote.ino, open_flags::WRITE_ONLY)
            .await
            .map_err(|e| CloudFilesError::vfs("send", path, e))?;
        let sent = self.upload(path, fh, state.size, Some(remote.ino)).await;
        let closed = vfs.release(fh).await;
        if let Err(e) = sent.and(closed.map_err(|e| CloudFilesError::vfs("send", path, e))) {
            // What reached the remote of this try moved its version: the
            // next try must not take that for someone else's change.
            vfs.invalidate_inode(remote.ino);
            if let Ok(attr) = vfs.getattr(remote.ino, None).await {
                self.placeholders.show(path.clone(), shown_of(&attr));
            }
            return Err(e);
        }
        let attr = vfs
            .getattr(remote.ino, None)
            .await
            .map_err(|e| CloudFilesError::vfs("send", path, e))?;
        self.os
            .update_placeholder(path, &placeholder_of(name, &attr), UpdateData::Keep)?;
        self.placeholders.show(path.clone(), shown_of(&attr));
        Ok(())
    }

    /// A placeholder written here whose remote file changed meanwhile
    /// (the conflict): the local version goes to the remote under a name
    /// of its own beside it, and the placeholder shows the remote's
    /// version again. Neither side's change is lost.
    async fn keep_both(
        &self,
        path: &ItemPath,
        dir: &ItemPath,
        parent: Ino,
        name: &str,
        remote: &FileAttr,
        size: u64,
    ) -> Result<()> {
        let copy_name = conflict_name(name);
        let copy_path = dir.join(&copy_name);
        // Read before the placeholder is dehydrated below.
        let copy = self.upload_new_from(path, parent, &copy_name, size).await?;
        warn!("{path}: changed here and on the remote; this version is kept as {copy_path}");
        self.os
            .update_placeholder(path, &placeholder_of(name, remote), UpdateData::Dehydrate)?;
        self.placeholders.show(path.clone(), shown_of(remote));
        self.os
            .create_placeholders(dir, &[placeholder_of(&copy_name, &copy)])?;
        self.placeholders.show(copy_path, shown_of(&copy));
        Ok(())
    }

    /// Creates `name` in `parent` on the remote with the local data of
    /// `path`.
    async fn upload_new_from(&self, path: &ItemPath, parent: Ino, name: &str, size: u64) -> Result<FileAttr> {
        let vfs = self.vfs();
        let (fh, attr) = vfs
            .create(
                &self.caller,
                parent,
                name.as_bytes(),
                0o666,
                open_flags::WRITE_ONLY | open_flags::EXCLUSIVE,
            )
            .await
            .map_err(|e| CloudFilesError::vfs("create", path, e))?;
        let sent = self.upload(path, fh, size, None).await;
        let closed = vfs.release(fh).await;
        sent?;
        closed.map_err(|e| CloudFilesError::vfs("create", path, e))?;
        vfs.getattr(attr.ino, None)
            .await
            .map_err(|e| CloudFilesError::vfs("create", path, e))
    }

    /// Writes the local file's data through `fh`, then cuts the remote
    /// file (`truncate`, its inode) to that size.
    async fn upload(&self, path: &ItemPath, fh: Fh, size: u64, truncate: Option<Ino>) -> Result<()> {
        let vfs = self.vfs();
        let mut offset = 0;
        while offset < size {
            let data = self.os.read_local(path, offset, READ_CHUNK.min(size - offset))?;
            if data.is_empty() {
                break;
            }
            vfs.write(fh, offset, &data)
                .await
                .map_err(|e| CloudFilesError::vfs("write", path, e))?;
            offset += data.len() as u64;
        }
        if let Some(ino) = truncate {
            vfs.setattr(
                &self.caller,
                ino,
                Some(fh),
                SetAttr {
                    size: Some(offset),
                    ..SetAttr::default()
                },
            )
            .await
            .map_err(|e| CloudFilesError::vfs("truncate", path, e))?;
        }
        vfs.flush(fh)
            .await
            .map_err(|e| CloudFilesError::vfs("write", path, e))
    }

    // ----- remote changes -----

    /// Brings the placeholders a remote change touched up to date: a name
    /// added shows up in a populated directory, a name gone goes, a file
    /// changed gets the remote's metadata and loses its hydrated data
    /// (unless it was written here and not yet sent: that is left to its
    /// close, which keeps both versions).
    pub async fn apply_remote_changes(&self, drops: Vec<CacheDrop>) {
        // A directory listed again brings every name and file in it up to
        // date: the drops about its entries (after a reconnection, one
        // for every name known) need nothing more.
        let mut listed: HashSet<ItemPath> = HashSet::new();
        for drop in &drops {
            let CacheDrop::Listing { ino } = drop else {
                continue;
            };
            for dir in self.placeholders.paths_of(*ino) {
                if self.placeholders.is_populated(&dir) && listed.insert(dir.clone()) {
                    if let Err(e) = self.refresh_dir(&dir).await {
                        warn!("{e}");
                    }
                }
            }
        }
        let in_listed = |path: &ItemPath| path.split_last().is_some_and(|(dir, _)| listed.contains(&dir));
        for drop in drops {
            let paths: Vec<ItemPath> = match drop {
                CacheDrop::Listing { .. } => continue,
                CacheDrop::Attributes { ino } => self.placeholders.paths_of(ino),
                CacheDrop::Entry { parent, name } => match ItemPath::windows_name(&name) {
                    Some(name) => self
                        .placeholders
                        .paths_of(parent)
                        .into_iter()
                        .filter(|dir| self.placeholders.is_populated(dir))
                        .map(|dir| dir.join(name))
                        .collect(),
                    None => Vec::new(),
                },
            };
            for path in paths.iter().filter(|p| !in_listed(p)) {
                if let Err(e) = self.refresh_item(path).await {
                    warn!("{e}");
                }
            }
        }
    }

    async fn refresh_item(&self, path: &ItemPath) -> Result<()> {
        let Some((dir, name)) = path.split_last() else {
            return Ok(());
        };
        let Some(dir_shown) = self.placeholders.get(&dir) else {
            return Ok(());
        };
        match self
            .vfs()
            .lookup_uncounted(&self.caller, dir_shown.ino, name.as_bytes())
            .await
        {
            Ok(attr) if matches!(attr.kind, FileKind::Regular | FileKind::Directory) => {
                self.keep(&attr);
                self.show_remote(&dir, &placeholder_of(name, &attr), shown_of(&attr))
            }
            Ok(_) => self.remove_local(path),
            Err(e) if e.errno() == Errno::ENOENT => self.remove_local(path),
            Err(e) => Err(CloudFilesError::vfs("refresh", path, e)),
        }
    }

    async fn refresh_dir(&self, dir: &ItemPath) -> Result<()> {
        let (items, _) = self.list_dir(dir).await?;
        let names: HashSet<String> = items.iter().map(|(p, _)| p.name.clone()).collect();
        for (placeholder, shown) in items {
            self.show_remote(dir, &placeholder, shown)?;
        }
        for gone in self.placeholders.children(dir) {
            if !names.contains(&gone) {
                self.remove_local(&dir.join(&gone))?;
            }
        }
        Ok(())
    }

    fn show_remote(&self, dir: &ItemPath, placeholder: &Placeholder, shown: Shown) -> Result<()> {
        let path = dir.join(&placeholder.name);
        let Some(old) = self.placeholders.get(&path) else {
            self.os
                .create_placeholders(dir, std::slice::from_ref(placeholder))?;
            self.placeholders.show(path, shown);
            return Ok(());
        };
        if same_version(&old, &shown) {
            return Ok(());
        }
        if old.directory != shown.directory {
            self.remove_local(&path)?;
            self.os
                .create_placeholders(dir, std::slice::from_ref(placeholder))?;
            self.placeholders.show(path, shown);
            return Ok(());
        }
        if !shown.directory {
            if let Some(state) = self.os.item_state(&path)? {
                if !state.in_sync {
                    debug!("{path}: changed on the remote while written here; its close keeps both");
                    return Ok(());
                }
            }
        }
        let data = if shown.directory {
            UpdateData::Keep
        } else {
            UpdateData::Dehydrate
        };
        self.os.update_placeholder(&path, placeholder, data)?;
        self.placeholders.show(
            path,
            Shown {
                populated: old.populated && old.ino == shown.ino,
                ..shown
            },
        );
        Ok(())
    }

    fn remove_local(&self, path: &ItemPath) -> Result<()> {
        if self.placeholders.get(path).is_none() {
            return Ok(());
        }
        if let Some(state) = self.os.item_state(path)? {
            if state.placeholder && !state.in_sync && !state.directory {
                // Written here: the close sends it back under its name.
                debug!("{path}: gone from the remote while written here; kept");
                return Ok(());
            }
            self.own_removals.start(path);
            // The OS may ask this provider whether it may delete (and
            // wait for the answer, which another task gives): this
            // thread must not hold the runtime's other tasks meanwhile.
            let multi_thread = Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            let removed = if multi_thread {
                tokio::task::block_in_place(|| self.os.remove_item(path))
            } else {
                self.os.remove_item(path)
            };
            self.own_removals.end(path);
            removed?;
        }
        self.placeholders.remove(path);
        Ok(())
    }

    // ----- paths -----

    /// The remote file `path` names, looked up from the root.
    async fn resolve(&self, op: &'static str, path: &ItemPath) -> Result<FileAttr> {
        let vfs = self.vfs();
        let mut attr = vfs
            .getattr(ROOT_INO, None)
            .await
            .map_err(|e| CloudFilesError::vfs(op, path, e))?;
        for name in path.names() {
            attr = vfs
                .lookup_uncounted(&self.caller, attr.ino, name.as_bytes())
                .await
                .map_err(|e| CloudFilesError::vfs(op, path, e))?;
            self.keep(&attr);
        }
        Ok(attr)
    }

    /// Keeps an inode the OS may name again for as long as its file
    /// exists (placeholders outlive any lookup).
    fn keep(&self, attr: &FileAttr) {
        let _ = self.exporter.file_handle(attr.ino);
    }

    fn split<'p>(&self, op: &'static str, path: &'p ItemPath) -> Result<(ItemPath, &'p str)> {
        path.split_last().ok_or_else(|| {
            CloudFilesError::refused(op, path, CloudStatus::AccessDenied, "the sync root itself")
        })
    }

    /// A directory's items as placeholders, and the directory itself.
    async fn list_dir(&self, dir: &ItemPath) -> Result<(Vec<(Placeholder, Shown)>, FileAttr)> {
        let attr = self.resolve("list", dir).await?;
        if attr.kind != FileKind::Directory {
            return Err(CloudFilesError::refused(
                "list",
                dir,
                CloudStatus::InvalidRequest,
                "not a directory",
            ));
        }
        let vfs = self.vfs();
        let fh = vfs
            .opendir(&self.caller, attr.ino)
            .map_err(|e| CloudFilesError::vfs("list", dir, e))?;
        let listed = self.read_dir(dir, attr.ino, fh).await;
        if let Err(e) = vfs.releasedir(fh) {
            debug!("{e}");
        }
        Ok((listed?, attr))
    }

    async fn read_dir(&self, dir: &ItemPath, ino: Ino, fh: Fh) -> Result<Vec<(Placeholder, Shown)>> {
        let vfs = self.vfs();
        let mut items = Vec::new();
        let mut offset = 0;
        loop {
            let batch = vfs
                .readdir(fh, offset)
                .await
                .map_err(|e| CloudFilesError::vfs("list", dir, e))?;
            let Some(last) = batch.last() else {
                return Ok(items);
            };
            offset = last.offset;
            for item in batch {
                if item.is_dot_or_dotdot() {
                    continue;
                }
                let Some(attr) = vfs.remember(ino, &item).await else {
                    continue;
                };
                self.keep(&attr);
                vfs.unremember(attr.ino);
                if !matches!(attr.kind, FileKind::Regular | FileKind::Directory) {
                    debug!("{dir}: {:?} is a {:?}, not shown", item.name, attr.kind);
                    continue;
                }
                let Some(name) = ItemPath::windows_name(&item.name) else {
                    debug!("{dir}: {:?} is not a Windows name, not shown", item.name);
                    continue;
                };
                items.push((placeholder_of(name, &attr), shown_of(&attr)));
            }
        }
    }
}

impl CloudCallbacks for SyncRoot {
    fn fetch_placeholders(&self, request: FetchPlaceholders) {
        if let Some(me) = self.me.upgrade() {
            self.runtime
                .spawn(async move { me.serve_fetch_placeholders(request).await });
        }
    }

    fn fetch_data(&self, request: FetchData) {
        if let Some(me) = self.me.upgrade() {
            self.runtime
                .spawn(async move { me.serve_fetch_data(request).await });
        }
    }

    /// At once, not in a task: the hydration checks before each read.
    fn cancel_fetch_data(&self, request: CancelFetchData) {
        self.hydrations.cancel(request.ticket);
    }

    fn notify_rename(&self, request: NotifyRename) {
        if let Some(me) = self.me.upgrade() {
            self.runtime.spawn(async move { me.serve_rename(request).await });
        }
    }

    fn notify_delete(&self, request: NotifyDelete) {
        if let Some(me) = self.me.upgrade() {
            self.runtime.spawn(async move { me.serve_delete(request).await });
        }
    }

    fn file_closed(&self, request: FileClosed) {
        if let Some(me) = self.me.upgrade() {
            self.runtime.spawn(async move { me.serve_close(request).await });
        }
    }
}

/// The VFS's tasks call this: the work goes to a task of its own, since
/// it asks the remote and the OS.
impl FrontendCaches for SyncRoot {
    fn drop_cached(&self, drops: Vec<CacheDrop>) {
        if let Some(me) = self.me.upgrade() {
            self.runtime
                .spawn(async move { me.apply_remote_changes(drops).await });
        }
    }
}

/// What a placeholder stores to name its file: the inode number, for the
/// logs (callbacks are resolved by path, which stays right across the
/// provider's restarts, when inode numbers do not).
fn identity(ino: Ino) -> Vec<u8> {
    ino.0.to_be_bytes().to_vec()
}

fn placeholder_of(name: &str, attr: &FileAttr) -> Placeholder {
    let directory = attr.kind == FileKind::Directory;
    Placeholder {
        name: name.to_owned(),
        directory,
        size: if directory { 0 } else { attr.size },
        modified: system_time(attr.mtime),
        identity: identity(attr.ino),
    }
}

fn shown_of(attr: &FileAttr) -> Shown {
    let directory = attr.kind == FileKind::Directory;
    Shown {
        ino: attr.ino,
        directory,
        size: if directory { 0 } else { attr.size },
        mtime: attr.mtime,
        populated: false,
    }
}

/// The same file at the same version (a directory's mtime moves with its
/// names, which the placeholders follow by name: it does not count).
fn same_version(a: &Shown, b: &Shown) -> bool {
    a.ino == b.ino && a.directory == b.directory && (a.directory || (a.size == b.size && a.mtime == b.mtime))
}

fn system_time(t: Timespec) -> SystemTime {
    let since = Duration::new(t.sec.unsigned_abs(), t.nsec);
    if t.sec >= 0 {
        SystemTime::UNIX_EPOCH + since
    } else {
        SystemTime::UNIX_EPOCH - since
    }
}

/// The name a local version that conflicts with the remote's is kept
/// under: `report (conflict 1700000000).txt` beside `report.txt`.
fn conflict_name(name: &str) -> String {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem} (conflict {stamp}).{ext}"),
        _ => format!("{name} (conflict {stamp})"),
    }
}
