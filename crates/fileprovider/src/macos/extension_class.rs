//! [`YonderFileProviderExtension`]: the principal class of the extension,
//! which the system instantiates once per domain.

use super::convert::{changes_of, item_identifier, ns_error, template_of};
use super::enumerator_class::YonderEnumerator;
use super::item_class::YonderItem;
use super::send::SendPtr;
use super::session::ExtensionSession;
use crate::{ByteRange, Enumerator, ErrorStatus, Item, ItemIdentifier, ProviderError};
use block2::DynBlock;
use objc2::rc::{Allocated, Retained};
use objc2::runtime::{Bool, NSObject, NSObjectProtocol, ProtocolObject};
use objc2::{define_class, msg_send, DefinedClass};
use objc2_file_provider::{
    NSFileProviderCreateItemOptions, NSFileProviderDeleteItemOptions, NSFileProviderDomain,
    NSFileProviderEnumerating, NSFileProviderEnumerator, NSFileProviderFetchContentsOptions,
    NSFileProviderItem, NSFileProviderItemFields, NSFileProviderItemProtocol, NSFileProviderItemVersion,
    NSFileProviderManager, NSFileProviderMaterializationFlags, NSFileProviderModifyItemOptions,
    NSFileProviderPartialContentFetching, NSFileProviderReplicatedExtension, NSFileProviderRequest,
};
use objc2_foundation::{NSError, NSProgress, NSRange, NSString, NSURL};
use std::ptr::null_mut;
use std::sync::Arc;

pub struct ExtensionIvars {
    session: Arc<ExtensionSession>,
}

/// The completion handler of `createItem` and `modifyItem`.
type CreateOrModify = DynBlock<dyn Fn(*mut NSFileProviderItem, NSFileProviderItemFields, Bool, *mut NSError)>;

define_class!(
    // SAFETY: NSObject has no subclassing requirements, and the class
    // does not implement `Drop`.
    #[unsafe(super(NSObject))]
    #[name = "YonderFileProviderExtension"]
    #[ivars = ExtensionIvars]
    pub struct YonderFileProviderExtension;

    unsafe impl NSObjectProtocol for YonderFileProviderExtension {}

    unsafe impl NSFileProviderEnumerating for YonderFileProviderExtension {
        #[unsafe(method(enumeratorForContainerItemIdentifier:request:error:))]
        fn enumerator_for_container(
            &self,
            container: &NSString,
            _request: &NSFileProviderRequest,
            error: *mut *mut NSError,
        ) -> *mut ProtocolObject<dyn NSFileProviderEnumerator> {
            let session = self.ivars().session.clone();
            // The system waits for the enumerator; opening one is a
            // lookup, answered from the caches while they are fresh.
            let opened = session.block_on(async {
                let id = parse("enumerator", container)?;
                let provider = session.provider("enumerator", &id).await?;
                Enumerator::open(provider, id).await
            });
            match opened {
                Ok(enumerator) => {
                    let object = ProtocolObject::from_retained(YonderEnumerator::new(session, enumerator));
                    Retained::autorelease_return(object)
                }
                Err(e) => {
                    if !error.is_null() {
                        // SAFETY: the caller's out-parameter, checked non-null;
                        // the error is autoreleased, as Cocoa's convention for
                        // out-parameters has it.
                        unsafe { *error = Retained::autorelease_ptr(ns_error(&e)) };
                    }
                    null_mut()
                }
            }
        }
    }

    unsafe impl NSFileProviderReplicatedExtension for YonderFileProviderExtension {
        #[unsafe(method_id(initWithDomain:))]
        fn init_with_domain(this: Allocated<Self>, domain: &NSFileProviderDomain) -> Retained<Self> {
            // SAFETY: accessors of the domain the system passed, and the
            // manager FileProvider keeps for it.
            let (source, name, temporary) = unsafe {
                let temporary = NSFileProviderManager::managerForDomain(domain)
                    .and_then(|m| m.temporaryDirectoryURLWithError().ok())
                    .and_then(|url| url.to_file_path())
                    .unwrap_or_else(std::env::temp_dir);
                (
                    domain.identifier().to_string(),
                    domain.displayName().to_string(),
                    temporary,
                )
            };
            let session = ExtensionSession::new(source, name, temporary)
                .expect("the extension's runtime (two threads) could not be started");
            let this = this.set_ivars(ExtensionIvars { session });
            // SAFETY: NSObject's designated initializer, on an allocated object.
            unsafe { msg_send![super(this), init] }
        }

        #[unsafe(method(invalidate))]
        fn invalidate(&self) {}

        #[unsafe(method_id(itemForIdentifier:request:completionHandler:))]
        fn item_for_identifier(
            &self,
            identifier: &NSString,
            _request: &NSFileProviderRequest,
            completion: &DynBlock<dyn Fn(*mut NSFileProviderItem, *mut NSError)>,
        ) -> Retained<NSProgress> {
            let completion = SendPtr::new(completion.copy());
            let session = self.ivars().session.clone();
            let id = parse("item", identifier);
            self.ivars().session.spawn(async move {
                let answer = async {
                    let id = id?;
                    session.provider("item", &id).await?.item(&id).await
                }
                .await;
                match answer {
                    Ok(item) => {
                        let item = item_object(item);
                        completion
                            .get()
                            .call((Retained::as_ptr(&item).cast_mut(), null_mut()));
                    }
                    Err(e) => {
                        let error = ns_error(&e);
                        completion
                            .get()
                            .call((null_mut(), Retained::as_ptr(&error).cast_mut()));
                    }
                }
            });
            NSProgress::discreteProgressWithTotalUnitCount(1)
        }

        #[unsafe(method_id(fetchContentsForItemWithIdentifier:version:request:completionHandler:))]
        fn fetch_contents(
            &self,
            identifier: &NSString,
            _version: Option<&NSFileProviderItemVersion>,
            _request: &NSFileProviderRequest,
            completion: &DynBlock<dyn Fn(*mut NSURL, *mut NSFileProviderItem, *mut NSError)>,
        ) -> Retained<NSProgress> {
            let completion = SendPtr::new(completion.copy());
            let session = self.ivars().session.clone();
            let id = parse("fetch contents", identifier);
            self.ivars().session.spawn(async move {
                let answer = async {
                    let id = id?;
                    let provider = session.provider("fetch contents", &id).await?;
                    provider.fetch_contents(&id, session.temporary()).await
                }
                .await;
                let url = answer.as_ref().ok().and_then(|f| NSURL::from_file_path(&f.path));
                match (answer, url) {
                    (Ok(fetched), Some(url)) => {
                        let item = item_object(fetched.item);
                        completion.get().call((
                            Retained::as_ptr(&url).cast_mut(),
                            Retained::as_ptr(&item).cast_mut(),
                            null_mut(),
                        ));
                    }
                    (answer, _) => {
                        let error = match answer {
                            Err(e) => ns_error(&e),
                            Ok(_) => super::convert::ns_status(ErrorStatus::Posix(libc_einval())),
                        };
                        completion
                            .get()
                            .call((null_mut(), null_mut(), Retained::as_ptr(&error).cast_mut()));
                    }
                }
            });
            NSProgress::discreteProgressWithTotalUnitCount(1)
        }

        #[unsafe(method_id(createItemBasedOnTemplate:fields:contents:options:request:completionHandler:))]
        fn create_item(
            &self,
            template: &NSFileProviderItem,
            _fields: NSFileProviderItemFields,
            contents: Option<&NSURL>,
            _options: NSFileProviderCreateItemOptions,
            _request: &NSFileProviderRequest,
            completion: &CreateOrModify,
        ) -> Retained<NSProgress> {
            let completion = SendPtr::new(completion.copy());
            let session = self.ivars().session.clone();
            let template = template_of(template);
            let contents = contents.and_then(|url| url.to_file_path());
            self.ivars().session.spawn(async move {
                let answer = async {
                    let Some(template) = template else {
                        return Err(ProviderError::new(
                            "create item",
                            &ItemIdentifier::Root,
                            ErrorStatus::NoSuchItem,
                        ));
                    };
                    let provider = session.provider("create item", &template.parent).await?;
                    provider.create_item(&template, contents.as_deref()).await
                }
                .await;
                finish_create_or_modify(completion.get(), answer);
            });
            NSProgress::discreteProgressWithTotalUnitCount(1)
        }

        #[unsafe(method_id(modifyItem:baseVersion:changedFields:contents:options:request:completionHandler:))]
        fn modify_item(
            &self,
            item: &NSFileProviderItem,
            _version: &NSFileProviderItemVersion,
            fields: NSFileProviderItemFields,
            contents: Option<&NSURL>,
            _options: NSFileProviderModifyItemOptions,
            _request: &NSFileProviderRequest,
            completion: &CreateOrModify,
        ) -> Retained<NSProgress> {
            let completion = SendPtr::new(completion.copy());
            let session = self.ivars().session.clone();
            // SAFETY: a required method of the item the system passed.
            let id = parse("modify item", &*unsafe { item.itemIdentifier() });
            let changes = changes_of(item, fields, contents);
            self.ivars().session.spawn(async move {
                let answer = async {
                    let id = id?;
                    session
                        .provider("modify item", &id)
                        .await?
                        .modify_item(&id, &changes)
                        .await
                }
                .await;
                finish_create_or_modify(completion.get(), answer);
            });
            NSProgress::discreteProgressWithTotalUnitCount(1)
        }

        #[unsafe(method_id(deleteItemWithIdentifier:baseVersion:options:request:completionHandler:))]
        fn delete_item(
            &self,
            identifier: &NSString,
            _version: &NSFileProviderItemVersion,
            options: NSFileProviderDeleteItemOptions,
            _request: &NSFileProviderRequest,
            completion: &DynBlock<dyn Fn(*mut NSError)>,
        ) -> Retained<NSProgress> {
            let completion = SendPtr::new(completion.copy());
            let session = self.ivars().session.clone();
            let id = parse("delete item", identifier);
            let recursive = options.contains(NSFileProviderDeleteItemOptions::Recursive);
            self.ivars().session.spawn(async move {
                let answer = async {
                    let id = id?;
                    session
                        .provider("delete item", &id)
                        .await?
                        .delete_item(&id, recursive)
                        .await
                }
                .await;
                match answer {
                    Ok(()) => completion.get().call((null_mut(),)),
                    Err(e) => {
                        let error = ns_error(&e);
                        completion.get().call((Retained::as_ptr(&error).cast_mut(),));
                    }
                }
            });
            NSProgress::discreteProgressWithTotalUnitCount(1)
        }
    }

    unsafe impl NSFileProviderPartialContentFetching for YonderFileProviderExtension {
        #[unsafe(method_id(fetchPartialContentsForItemWithIdentifier:version:request:minimalRange:aligningTo:options:completionHandler:))]
        fn fetch_partial_contents(
            &self,
            identifier: &NSString,
            _version: &NSFileProviderItemVersion,
            _request: &NSFileProviderRequest,
            requested: NSRange,
            alignment: usize,
            _options: NSFileProviderFetchContentsOptions,
            completion: &DynBlock<
                dyn Fn(
                    *mut NSURL,
                    *mut NSFileProviderItem,
                    NSRange,
                    NSFileProviderMaterializationFlags,
                    *mut NSError,
                ),
            >,
        ) -> Retained<NSProgress> {
            let completion = SendPtr::new(completion.copy());
            let session = self.ivars().session.clone();
            let id = parse("fetch partial contents", identifier);
            let requested = ByteRange {
                offset: requested.location as u64,
                len: requested.length as u64,
            };
            self.ivars().session.spawn(async move {
                let answer = async {
                    let id = id?;
                    let provider = session.provider("fetch partial contents", &id).await?;
                    provider
                        .fetch_partial_contents(&id, requested, alignment as u64, session.temporary())
                        .await
                }
                .await;
                let url = answer.as_ref().ok().and_then(|f| NSURL::from_file_path(&f.path));
                match (answer, url) {
                    (Ok(fetched), Some(url)) => {
                        let range = NSRange::new(fetched.range.offset as usize, fetched.range.len as usize);
                        let item = item_object(fetched.item);
                        completion.get().call((
                            Retained::as_ptr(&url).cast_mut(),
                            Retained::as_ptr(&item).cast_mut(),
                            range,
                            NSFileProviderMaterializationFlags::empty(),
                            null_mut(),
                        ));
                    }
                    (answer, _) => {
                        let error = match answer {
                            Err(e) => ns_error(&e),
                            Ok(_) => super::convert::ns_status(ErrorStatus::Posix(libc_einval())),
                        };
                        completion.get().call((
                            null_mut(),
                            null_mut(),
                            NSRange::new(0, 0),
                            NSFileProviderMaterializationFlags::empty(),
                            Retained::as_ptr(&error).cast_mut(),
                        ));
                    }
                }
            });
            NSProgress::discreteProgressWithTotalUnitCount(1)
        }
    }
);

/// The identifier the system gives; one this extension never made names
/// no item.
fn parse(op: &'static str, identifier: &NSString) -> Result<ItemIdentifier, ProviderError> {
    item_identifier(identifier).ok_or_else(|| {
        let shown = ItemIdentifier::Path(identifier.to_string().into_bytes());
        ProviderError::new(op, &shown, ErrorStatus::NoSuchItem)
    })
}

fn item_object(item: Item) -> Retained<NSFileProviderItem> {
    ProtocolObject::<dyn NSFileProviderItemProtocol>::from_retained(YonderItem::new(item))
}

/// A path Foundation could not make a URL of.
fn libc_einval() -> i32 {
    yonder_vfs::Errno::EINVAL.to_host()
}

/// Answers `createItem` or `modifyItem`: the item, no fields left to
/// send, nothing to fetch again.
fn finish_create_or_modify(completion: &CreateOrModify, answer: Result<Item, ProviderError>) {
    match answer {
        Ok(item) => {
            let item = item_object(item);
            completion.call((
                Retained::as_ptr(&item).cast_mut(),
                NSFileProviderItemFields::empty(),
                Bool::NO,
                null_mut(),
            ));
        }
        Err(e) => {
            let error = ns_error(&e);
            completion.call((
                null_mut(),
                NSFileProviderItemFields::empty(),
                Bool::NO,
                Retained::as_ptr(&error).cast_mut(),
            ));
        }
    }
}
