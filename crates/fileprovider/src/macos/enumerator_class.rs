//! [`YonderEnumerator`]: an [`Enumerator`] as the system drives it, an
//! object of the `NSFileProviderEnumerator` protocol.

use super::convert::{ns_error, ns_identifier, ns_status};
use super::item_class::YonderItem;
use super::send::SendPtr;
use super::session::ExtensionSession;
use crate::{Enumerator, ErrorStatus, Item, Page};
use block2::DynBlock;
use objc2::rc::Retained;
use objc2::runtime::{NSObject, NSObjectProtocol, ProtocolObject};
use objc2::{define_class, msg_send, AnyThread, DefinedClass, Message};
use objc2_file_provider::{
    NSFileProviderChangeObserver, NSFileProviderEnumerationObserver, NSFileProviderEnumerator,
    NSFileProviderInitialPageSortedByDate, NSFileProviderInitialPageSortedByName, NSFileProviderItemProtocol,
};
use objc2_foundation::{NSArray, NSData, NSString};
use std::sync::Arc;

/// Page size when the observer suggests none.
const DEFAULT_PAGE_SIZE: usize = 200;

pub struct EnumeratorIvars {
    session: Arc<ExtensionSession>,
    enumerator: Arc<Enumerator>,
}

define_class!(
    // SAFETY: NSObject has no subclassing requirements, and
    // `YonderEnumerator` does not implement `Drop`.
    #[unsafe(super(NSObject))]
    #[name = "YonderEnumerator"]
    #[ivars = EnumeratorIvars]
    pub struct YonderEnumerator;

    unsafe impl NSObjectProtocol for YonderEnumerator {}

    unsafe impl NSFileProviderEnumerator for YonderEnumerator {
        #[unsafe(method(invalidate))]
        fn invalidate(&self) {}

        #[unsafe(method(enumerateItemsForObserver:startingAtPage:))]
        fn enumerate_items(
            &self,
            observer: &ProtocolObject<dyn NSFileProviderEnumerationObserver>,
            page: &NSData,
        ) {
            let observer = SendPtr::new(observer.retain());
            let Some(page) = page_of(page) else {
                // SAFETY: a method of the observer the system passed.
                unsafe {
                    observer
                        .get()
                        .finishEnumeratingWithError(&ns_status(ErrorStatus::SyncAnchorExpired))
                };
                return;
            };
            // SAFETY: an optional method, asked only where present.
            let page_size = unsafe {
                let o = observer.get();
                if o.respondsToSelector(objc2::sel!(suggestedPageSize)) {
                    usize::try_from(o.suggestedPageSize()).unwrap_or(DEFAULT_PAGE_SIZE)
                } else {
                    DEFAULT_PAGE_SIZE
                }
            };
            let enumerator = self.ivars().enumerator.clone();
            self.ivars().session.spawn(async move {
                let answer = enumerator.enumerate_items(&page, page_size).await;
                let o = observer.get();
                // SAFETY: the observer's methods, each finishing call made
                // once.
                unsafe {
                    match answer {
                        Ok(answer) => {
                            o.didEnumerateItems(&items_array(answer.items));
                            let next = answer.next.map(|p| NSData::with_bytes(&p.to_bytes()));
                            o.finishEnumeratingUpToPage(next.as_deref());
                        }
                        Err(e) => o.finishEnumeratingWithError(&ns_error(&e)),
                    }
                }
            });
        }

        #[unsafe(method(enumerateChangesForObserver:fromSyncAnchor:))]
        fn enumerate_changes(
            &self,
            observer: &ProtocolObject<dyn NSFileProviderChangeObserver>,
            anchor: &NSData,
        ) {
            let observer = SendPtr::new(observer.retain());
            let anchor = anchor.to_vec();
            let enumerator = self.ivars().enumerator.clone();
            self.ivars().session.spawn(async move {
                let answer = enumerator.enumerate_changes(&anchor).await;
                let o = observer.get();
                // SAFETY: the observer's methods, the finishing one once.
                unsafe {
                    match answer {
                        Ok(batch) => {
                            o.didUpdateItems(&items_array(batch.updated));
                            let deleted: Vec<Retained<NSString>> =
                                batch.deleted.iter().map(ns_identifier).collect();
                            o.didDeleteItemsWithIdentifiers(&NSArray::from_retained_slice(&deleted));
                            o.finishEnumeratingChangesUpToSyncAnchor_moreComing(
                                &NSData::with_bytes(&batch.anchor.to_bytes()),
                                batch.more_coming,
                            );
                        }
                        Err(e) => o.finishEnumeratingWithError(&ns_error(&e)),
                    }
                }
            });
        }

        #[unsafe(method(currentSyncAnchorWithCompletionHandler:))]
        fn current_sync_anchor(&self, completion: &DynBlock<dyn Fn(*mut NSData)>) {
            let anchor = NSData::with_bytes(&self.ivars().enumerator.current_anchor().to_bytes());
            completion.call((Retained::as_ptr(&anchor).cast_mut(),));
        }
    }
);

impl YonderEnumerator {
    pub fn new(session: Arc<ExtensionSession>, enumerator: Enumerator) -> Retained<YonderEnumerator> {
        let this = YonderEnumerator::alloc().set_ivars(EnumeratorIvars {
            session,
            enumerator: Arc::new(enumerator),
        });
        // SAFETY: NSObject's designated initializer, on an allocated object.
        unsafe { msg_send![super(this), init] }
    }
}

/// The system's page: its two initial pages (yonder sorts by name for
/// both), or one this extension handed out.
fn page_of(data: &NSData) -> Option<Page> {
    // SAFETY: FileProvider's constant pages, valid for the process's life.
    let initial = unsafe {
        [
            NSFileProviderInitialPageSortedByName,
            NSFileProviderInitialPageSortedByDate,
        ]
    };
    if initial.iter().any(|p| p.isEqualToData(data)) {
        return Some(Page::Initial);
    }
    Page::from_bytes(&data.to_vec())
}

pub fn items_array(items: Vec<Item>) -> Retained<NSArray<ProtocolObject<dyn NSFileProviderItemProtocol>>> {
    let objects: Vec<Retained<ProtocolObject<dyn NSFileProviderItemProtocol>>> = items
        .into_iter()
        .map(|item| ProtocolObject::from_retained(YonderItem::new(item)))
        .collect();
    NSArray::from_retained_slice(&objects)
}
