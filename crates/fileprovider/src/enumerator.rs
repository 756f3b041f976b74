//! [`Enumerator`]: what `NSFileProviderEnumerator` answers for one
//! container, items by page and changes from a sync anchor.

use crate::change_log::Changed;
use crate::error::{ErrorStatus, ProviderError};
use crate::identifier::ItemIdentifier;
use crate::item::Item;
use crate::page::Page;
use crate::provider::Provider;
use crate::sync_anchor::SyncAnchor;
use std::collections::BTreeMap;
use std::sync::Arc;
use yonder_vfs::{Errno, FileKind, VfsError};

/// A page of items (`didEnumerateItems`) and where the next starts
/// (`finishEnumeratingUpToPage`; `None`: this was the last).
#[derive(Debug)]
pub struct ItemPage {
    pub items: Vec<Item>,
    pub next: Option<Page>,
}

/// The changes since an anchor: `didUpdateItems`,
/// `didDeleteItemsWithIdentifiers`, then
/// `finishEnumeratingChangesUpToSyncAnchor:moreComing:`.
#[derive(Debug)]
pub struct ChangeBatch {
    pub updated: Vec<Item>,
    pub deleted: Vec<ItemIdentifier>,
    pub anchor: SyncAnchor,
    pub more_coming: bool,
}

/// The enumerator of one container: a directory, or the working set.
///
/// A directory's items are its listing in name order. The working set's
/// items are none: yonder does not track what the user uses; the system
/// learns of items by enumerating directories as they are opened. Changes
/// come from the provider's change log, for the working set all of them,
/// for a directory those of its entries.
pub struct Enumerator {
    provider: Arc<Provider>,
    container: ItemIdentifier,
}

impl Enumerator {
    /// `enumeratorForContainerItemIdentifier`: fails with no such item for
    /// an unknown container and the trash.
    pub async fn open(
        provider: Arc<Provider>,
        container: ItemIdentifier,
    ) -> Result<Enumerator, ProviderError> {
        const OP: &str = "enumerator";
        if container != ItemIdentifier::WorkingSet {
            let attr = provider.resolve(OP, &container).await?;
            if attr.kind != FileKind::Directory {
                return Err(ProviderError::reading(
                    OP,
                    &container,
                    VfsError::new(OP, container.to_string(), Errno::ENOTDIR),
                ));
            }
        }
        Ok(Enumerator { provider, container })
    }

    pub fn container(&self) -> &ItemIdentifier {
        &self.container
    }

    /// `enumerateItemsForObserver:startingAtPage:`, at most `page_size`
    /// items (the observer's `suggestedPageSize`).
    pub async fn enumerate_items(&self, page: &Page, page_size: usize) -> Result<ItemPage, ProviderError> {
        const OP: &str = "enumerate items";
        if self.container == ItemIdentifier::WorkingSet {
            return Ok(ItemPage {
                items: Vec::new(),
                next: None,
            });
        }
        let entries = self.provider.list(OP, &self.container).await?;
        let start = match page {
            Page::Initial => 0,
            Page::After(last) => entries.partition_point(|(name, _)| name <= last),
        };
        let page_size = page_size.max(1);
        let mut items = Vec::new();
        let mut next = None;
        for (i, (name, attr)) in entries.iter().enumerate().skip(start) {
            if items.len() == page_size {
                next = Some(Page::After(entries[i - 1].0.clone()));
                break;
            }
            let Some(id) = self.container.child(name) else {
                break;
            };
            match self.provider.item_with(OP, id, attr).await {
                Ok(item) => items.push(item),
                // Not shown (a FIFO, a device), or gone since the listing.
                Err(e) if e.status == ErrorStatus::NoSuchItem => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ItemPage { items, next })
    }

    /// `currentSyncAnchorWithCompletionHandler`.
    pub fn current_anchor(&self) -> SyncAnchor {
        self.provider.change_log().current()
    }

    /// `enumerateChangesForObserver:fromSyncAnchor:`: every change since
    /// `from`, each item asked again of the VFS (whose caches the change
    /// emptied), in one batch (`more_coming` is false). An anchor this
    /// process did not make, or older than its log, is expired.
    pub async fn enumerate_changes(&self, from: &[u8]) -> Result<ChangeBatch, ProviderError> {
        const OP: &str = "enumerate changes";
        let since = SyncAnchor::from_bytes(from).and_then(|anchor| self.provider.change_log().since(anchor));
        let Some((changes, anchor)) = since else {
            return Err(ProviderError::new(
                OP,
                &self.container,
                ErrorStatus::SyncAnchorExpired,
            ));
        };
        let mut updated = BTreeMap::new();
        let mut deleted = BTreeMap::new();
        for change in changes {
            let (path, children) = match change {
                Changed::Item(path) => (path, false),
                Changed::Children(path) => (path, true),
            };
            let id = ItemIdentifier::for_path(&path);
            if !self.covers(&id, children) {
                continue;
            }
            if children {
                match self.provider.list(OP, &id).await {
                    Ok(entries) => {
                        for (name, attr) in entries {
                            let child = id.child(&name).expect("a directory has children");
                            if let Ok(item) = self.provider.item_with(OP, child.clone(), &attr).await {
                                deleted.remove(&child);
                                updated.insert(child, item);
                            }
                        }
                    }
                    Err(e) if e.status == ErrorStatus::NoSuchItem => {
                        updated.remove(&id);
                        deleted.insert(id.clone(), ());
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                if self.container != ItemIdentifier::WorkingSet {
                    continue;
                }
            }
            match self.provider.item(&id).await {
                Ok(item) => {
                    deleted.remove(&id);
                    updated.insert(id, item);
                }
                Err(e) if e.status == ErrorStatus::NoSuchItem => {
                    updated.remove(&id);
                    deleted.insert(id, ());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(ChangeBatch {
            updated: updated.into_values().collect(),
            deleted: deleted.into_keys().collect(),
            anchor,
            more_coming: false,
        })
    }

    /// Whether a change of `id` (of its entries, `children`) is this
    /// enumerator's to report.
    fn covers(&self, id: &ItemIdentifier, children: bool) -> bool {
        match &self.container {
            ItemIdentifier::WorkingSet => true,
            container if children => id == container,
            container => {
                id.parent_and_name()
                    .is_some_and(|(parent, _)| parent == *container)
                    && id != container
            }
        }
    }
}
