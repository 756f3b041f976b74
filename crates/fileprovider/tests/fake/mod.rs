//! A fake of the macOS side of a FileProvider replicated extension: it
//! calls the extension's mapping ([`Provider`], [`Enumerator`]) as the
//! system calls an `NSFileProviderReplicatedExtension`, keeps what the
//! system would keep (the items it was told of, its sync anchor), and
//! records the error status each failed call would hand the system.
//!
//! It follows the documented contracts, and checks the extension keeps
//! its side of them:
//!
//! - `NSFileProviderEnumerator`
//!   (<https://developer.apple.com/documentation/fileprovider/nsfileproviderenumerator>,
//!   and the SDK header's `currentSyncAnchorWithCompletionHandler:`): the
//!   system asks for the current sync anchor first, then enumerates items
//!   from the initial page, each time from the page the previous one
//!   returned, until the next page is nil; later it enumerates changes
//!   from the latest anchor while `moreComing` is set, and on
//!   `NSFileProviderErrorSyncAnchorExpired` drops what it knows and
//!   enumerates again.
//! - `NSFileProviderEnumerationObserver`
//!   (<https://developer.apple.com/documentation/fileprovider/nsfileproviderenumerationobserver>):
//!   at most `suggestedPageSize` items a page.
//! - `NSFileProviderChangeObserver`
//!   (<https://developer.apple.com/documentation/fileprovider/nsfileproviderchangeobserver>):
//!   the anchor a batch finishes with differs from the one it started at
//!   unless there were no changes, and is at most 500 bytes.
//! - `NSFileProviderManager.signalEnumerator(for:)`
//!   (<https://developer.apple.com/documentation/fileprovider/nsfileprovidermanager/signalenumerator(for:completionhandler:)>):
//!   a signal makes the system enumerate that container's changes; a
//!   replicated extension on macOS signals the working set
//!   (`NSFileProviderWorkingSetContainerItemIdentifier`).
//! - `NSFileProviderReplicatedExtension.fetchContents(for:version:request:completionHandler:)`
//!   (<https://developer.apple.com/documentation/fileprovider/nsfileproviderreplicatedextension/fetchcontents(for:version:request:completionhandler:)>):
//!   the contents are a regular file the system takes over (it clones
//!   and unlinks it), in the temporary directory it gave
//!   (`NSFileProviderManager.temporaryDirectoryURL()`), of the item's
//!   `documentSize`.
//! - `NSFileProviderPartialContentFetching.fetchPartialContents(for:version:request:minimalRange:aligningTo:options:completionHandler:)`
//!   (<https://developer.apple.com/documentation/fileprovider/nsfileproviderpartialcontentfetching>):
//!   the fetched range covers the requested one, its start and length
//!   multiples of the alignment except where it ends at the item's
//!   `documentSize`, or is `<0, file size>`; the data is at its own offset
//!   in the file, which is at least as long as the range's end.
//! - Errors: `NSFileProviderErrorDomain` codes, and `NSCocoaErrorDomain`'s
//!   `NSFileReadNoPermissionError` for content the user may not read
//!   (<https://developer.apple.com/documentation/fileprovider/nsfileprovidererror>).
//!   Each completion handler is called once, with an item or an error:
//!   the fake records every error it is handed, as the system would
//!   present or act on it.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use yonder_fileprovider::{
    ByteRange, Enumerator, ErrorDomain, Item, ItemChanges, ItemIdentifier, ItemTemplate, Page, Provider,
    ProviderError, SyncAnchor, System,
};
use yonder_vfs::Vfs;

/// The system's side of the signals: each container signalled, in order.
#[derive(Default)]
pub struct Signals {
    signalled: Mutex<Vec<ItemIdentifier>>,
    count: tokio::sync::watch::Sender<u64>,
}

impl System for Signals {
    fn signal_enumerator(&self, container: &ItemIdentifier) {
        self.signalled.lock().unwrap().push(container.clone());
        self.count.send_modify(|n| *n += 1);
    }
}

/// An error status as the system was given it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reported {
    pub op: &'static str,
    pub item: ItemIdentifier,
    pub domain: ErrorDomain,
    pub code: i64,
}

pub struct FakeSystem {
    pub provider: Arc<Provider>,
    signals: Arc<Signals>,
    /// `NSFileProviderManager.temporaryDirectoryURL`.
    temporary: tempfile::TempDir,
    /// What the system knows of the domain: the items it was told of.
    pub replica: Mutex<BTreeMap<ItemIdentifier, Item>>,
    /// The working set's latest sync anchor.
    anchor: Mutex<Vec<u8>>,
    /// Every error handed to a completion handler or an observer.
    reported: Mutex<Vec<Reported>>,
    /// The observers' `suggestedPageSize`.
    pub page_size: usize,
    /// Times the system had to enumerate again from scratch.
    pub restarts: Mutex<u32>,
}

impl FakeSystem {
    /// The system loading the extension for a domain over `vfs`: asks the
    /// working set's current anchor, then its items (contract step 1-2).
    pub async fn start(vfs: Arc<Vfs>, page_size: usize) -> FakeSystem {
        let signals = Arc::new(Signals::default());
        let provider = Provider::new(vfs, signals.clone());
        let system = FakeSystem {
            provider,
            signals,
            temporary: tempfile::tempdir().unwrap(),
            replica: Mutex::default(),
            anchor: Mutex::default(),
            reported: Mutex::default(),
            page_size,
            restarts: Mutex::new(0),
        };
        system.enumerate_working_set().await;
        system
    }

    async fn enumerate_working_set(&self) {
        let working_set = self.enumerator(&ItemIdentifier::WorkingSet).await.unwrap();
        let anchor = working_set.current_anchor().to_bytes().to_vec();
        assert!(anchor.len() <= 500, "a sync anchor is at most 500 bytes");
        *self.anchor.lock().unwrap() = anchor;
        for item in self.pages(&working_set).await.unwrap() {
            self.replica.lock().unwrap().insert(item.identifier.clone(), item);
        }
    }

    /// Hands `result` to a completion handler: an error is recorded with
    /// the status it carries.
    fn complete<T>(&self, result: Result<T, ProviderError>) -> Result<T, Reported> {
        result.map_err(|e| {
            let reported = Reported {
                op: e.op,
                item: e.item.clone(),
                domain: e.status.domain(),
                code: e.status.code(),
            };
            self.reported.lock().unwrap().push(reported.clone());
            reported
        })
    }

    pub fn reported(&self) -> Vec<Reported> {
        self.reported.lock().unwrap().clone()
    }

    pub fn signals(&self) -> Vec<ItemIdentifier> {
        self.signals.signalled.lock().unwrap().clone()
    }

    /// Waits (at most 5 s) for a signal after the first `seen`; returns how
    /// many there have been.
    pub async fn signal_after(&self, seen: u64) -> u64 {
        let mut count = self.signals.count.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(5), count.wait_for(|n| *n > seen)).await;
        let n = waited.expect("no signal within 5 s").map(|n| *n);
        n.unwrap()
    }

    pub fn signal_count(&self) -> u64 {
        *self.signals.count.borrow()
    }

    /// `itemForIdentifier:request:completionHandler:`.
    pub async fn item(&self, id: &ItemIdentifier) -> Result<Item, Reported> {
        let item = self.complete(self.provider.item(id).await)?;
        assert_eq!(&item.identifier, id, "item for {id} answered another identifier");
        Ok(item)
    }

    async fn enumerator(&self, container: &ItemIdentifier) -> Result<Enumerator, Reported> {
        self.complete(Enumerator::open(self.provider.clone(), container.clone()).await)
    }

    /// Every page of `enumerator`'s items, each from the page the last
    /// one returned.
    async fn pages(&self, enumerator: &Enumerator) -> Result<Vec<Item>, Reported> {
        let mut page = Page::Initial;
        let mut items = Vec::new();
        loop {
            let answer = self.complete(enumerator.enumerate_items(&page, self.page_size).await)?;
            assert!(
                answer.items.len() <= self.page_size,
                "a page of {} items, suggested {}",
                answer.items.len(),
                self.page_size
            );
            for item in &answer.items {
                assert_eq!(
                    &item.parent,
                    enumerator.container(),
                    "{item:?} enumerated in another container"
                );
            }
            items.extend(answer.items);
            match answer.next {
                Some(next) => {
                    let bytes = next.to_bytes();
                    assert!(bytes.len() <= 500, "a page is at most 500 bytes");
                    // The system keeps pages as opaque data.
                    page = Page::from_bytes(&bytes).expect("a page the extension made reads back");
                }
                None => return Ok(items),
            }
        }
    }

    /// Opens a directory in Finder: its enumerator's items, all pages.
    pub async fn list(&self, dir: &ItemIdentifier) -> Result<Vec<Item>, Reported> {
        let enumerator = self.enumerator(dir).await?;
        let items = self.pages(&enumerator).await?;
        let mut replica = self.replica.lock().unwrap();
        for item in &items {
            replica.insert(item.identifier.clone(), item.clone());
        }
        Ok(items)
    }

    /// After a signal of the working set: its changes from the latest
    /// anchor, while more are coming, applied to what the system knows.
    /// Returns the items updated and the identifiers deleted.
    pub async fn sync_changes(&self) -> Result<(Vec<Item>, Vec<ItemIdentifier>), Reported> {
        let working_set = self.enumerator(&ItemIdentifier::WorkingSet).await?;
        let mut updated = Vec::new();
        let mut deleted = Vec::new();
        loop {
            let from = self.anchor.lock().unwrap().clone();
            let batch = match working_set.enumerate_changes(&from).await {
                Err(e) if e.status == yonder_fileprovider::ErrorStatus::SyncAnchorExpired => {
                    self.complete::<()>(Err(e)).unwrap_err();
                    // Drop everything and enumerate again from scratch.
                    *self.restarts.lock().unwrap() += 1;
                    self.replica.lock().unwrap().clear();
                    self.enumerate_working_set().await;
                    return Ok((updated, deleted));
                }
                other => self.complete(other)?,
            };
            let anchor = batch.anchor.to_bytes().to_vec();
            assert!(anchor.len() <= 500);
            if !batch.updated.is_empty() || !batch.deleted.is_empty() {
                assert_ne!(anchor, from, "changes reported without moving the anchor on");
            }
            {
                let mut replica = self.replica.lock().unwrap();
                for id in &batch.deleted {
                    replica.remove(id);
                }
                for item in &batch.updated {
                    replica.insert(item.identifier.clone(), item.clone());
                }
            }
            updated.extend(batch.updated);
            deleted.extend(batch.deleted);
            *self.anchor.lock().unwrap() = anchor;
            if !batch.more_coming {
                return Ok((updated, deleted));
            }
        }
    }

    /// Hands the system a sync anchor it never had (as after an update
    /// of the extension): the next change enumeration must expire it.
    pub fn forget_anchor(&self, anchor: SyncAnchor) {
        *self.anchor.lock().unwrap() = anchor.to_bytes().to_vec();
    }

    /// `fetchContents`: the item's whole data, the file taken over.
    pub async fn fetch(&self, id: &ItemIdentifier) -> Result<(Item, Vec<u8>), Reported> {
        let fetched = self.complete(self.provider.fetch_contents(id, self.temporary.path()).await)?;
        self.check_handed_over(&fetched.path);
        let data = std::fs::read(&fetched.path).unwrap();
        assert_eq!(
            data.len() as u64,
            fetched.item.size,
            "contents of another size than documentSize"
        );
        assert_eq!(
            fetched.range,
            ByteRange {
                offset: 0,
                len: fetched.item.size
            }
        );
        // The system clones and unlinks the file.
        std::fs::remove_file(&fetched.path).unwrap();
        Ok((fetched.item, data))
    }

    /// `fetchPartialContents`: the range fetched and its data.
    pub async fn fetch_range(
        &self,
        id: &ItemIdentifier,
        requested: ByteRange,
        alignment: u64,
    ) -> Result<(ByteRange, Vec<u8>), Reported> {
        let fetched = self.complete(
            self.provider
                .fetch_partial_contents(id, requested, alignment, self.temporary.path())
                .await,
        )?;
        self.check_handed_over(&fetched.path);
        let size = fetched.item.size;
        let range = fetched.range;
        let whole = range == ByteRange { offset: 0, len: size };
        if !whole {
            assert_eq!(
                range.offset % alignment,
                0,
                "{range:?} does not start aligned to {alignment}"
            );
            assert!(
                range.len % alignment == 0 || range.end() == size,
                "{range:?} neither aligned to {alignment} nor ending at the end ({size})"
            );
            assert!(
                range.offset <= requested.offset,
                "{range:?} does not cover {requested:?}"
            );
            assert!(
                range.end() >= requested.end().min(size),
                "{range:?} does not cover {requested:?}"
            );
        }
        let file = std::fs::File::open(&fetched.path).unwrap();
        assert!(
            file.metadata().unwrap().len() >= range.end(),
            "the file is shorter than the range's end"
        );
        let mut data = vec![0; range.len as usize];
        file.read_exact_at(&mut data, range.offset).unwrap();
        std::fs::remove_file(&fetched.path).unwrap();
        Ok((range, data))
    }

    /// Fetched contents are a regular file in the system's temporary
    /// directory.
    fn check_handed_over(&self, path: &Path) {
        assert_eq!(
            path.parent(),
            Some(self.temporary.path()),
            "contents outside the temporary directory"
        );
        assert!(std::fs::symlink_metadata(path).unwrap().file_type().is_file());
    }

    /// `createItemBasedOnTemplate`, a file's data given as a local file.
    pub async fn create(&self, template: ItemTemplate, contents: Option<&[u8]>) -> Result<Item, Reported> {
        let local = contents.map(|data| {
            let path = self.temporary.path().join("new-contents");
            std::fs::write(&path, data).unwrap();
            path
        });
        let item = self.complete(self.provider.create_item(&template, local.as_deref()).await)?;
        self.replica
            .lock()
            .unwrap()
            .insert(item.identifier.clone(), item.clone());
        Ok(item)
    }

    /// `modifyItem`; the item the system knew by `id` is replaced by the
    /// answer.
    pub async fn modify(&self, id: &ItemIdentifier, changes: ItemChanges) -> Result<Item, Reported> {
        let item = self.complete(self.provider.modify_item(id, &changes).await)?;
        let mut replica = self.replica.lock().unwrap();
        replica.remove(id);
        replica.insert(item.identifier.clone(), item.clone());
        Ok(item)
    }

    /// `deleteItemWithIdentifier`.
    pub async fn delete(&self, id: &ItemIdentifier, recursive: bool) -> Result<(), Reported> {
        self.complete(self.provider.delete_item(id, recursive).await)?;
        self.replica.lock().unwrap().remove(id);
        Ok(())
    }

    /// Writes `data` to a new local file for `modifyItem`'s contents.
    pub fn local_contents(&self, data: &[u8]) -> std::path::PathBuf {
        let path = self.temporary.path().join("modified-contents");
        std::fs::write(&path, data).unwrap();
        path
    }
}
