//! [`YonderItem`]: an [`Item`] as the system reads it, an object of the
//! `NSFileProviderItem` protocol.

use super::convert::{ns_date, ns_identifier};
use crate::{Item, ItemKind};
use objc2::rc::Retained;
use objc2::runtime::{NSObject, NSObjectProtocol};
use objc2::{define_class, msg_send, AnyThread, DefinedClass};
use objc2_file_provider::{
    NSFileProviderFileSystemFlags, NSFileProviderItemCapabilities, NSFileProviderItemProtocol,
    NSFileProviderItemVersion,
};
use objc2_foundation::{NSData, NSDate, NSNumber, NSString};
use objc2_uniform_type_identifiers::UTType;

define_class!(
    // SAFETY: NSObject has no subclassing requirements, and `YonderItem`
    // does not implement `Drop`.
    #[unsafe(super(NSObject))]
    #[name = "YonderItem"]
    #[ivars = Item]
    pub struct YonderItem;

    unsafe impl NSObjectProtocol for YonderItem {}

    unsafe impl NSFileProviderItemProtocol for YonderItem {
        #[unsafe(method_id(itemIdentifier))]
        fn item_identifier(&self) -> Retained<NSString> {
            ns_identifier(&self.ivars().identifier)
        }

        #[unsafe(method_id(parentItemIdentifier))]
        fn parent_item_identifier(&self) -> Retained<NSString> {
            ns_identifier(&self.ivars().parent)
        }

        #[unsafe(method_id(filename))]
        fn filename(&self) -> Retained<NSString> {
            NSString::from_str(&String::from_utf8_lossy(&self.ivars().filename))
        }

        #[unsafe(method_id(contentType))]
        fn content_type(&self) -> Retained<UTType> {
            let identifier = match self.ivars().kind {
                ItemKind::Directory => "public.folder",
                ItemKind::Symlink(_) => "public.symlink",
                ItemKind::File => "public.data",
            };
            UTType::typeWithIdentifier(&NSString::from_str(identifier))
                .or_else(|| UTType::typeWithIdentifier(&NSString::from_str("public.data")))
                .expect("public.data is a type of the system's")
        }

        #[unsafe(method(capabilities))]
        fn capabilities(&self) -> NSFileProviderItemCapabilities {
            let mut allowed = NSFileProviderItemCapabilities::AllowsReading
                | NSFileProviderItemCapabilities::AllowsRenaming
                | NSFileProviderItemCapabilities::AllowsReparenting
                | NSFileProviderItemCapabilities::AllowsDeleting;
            if self.ivars().perm & 0o200 != 0 {
                allowed |= NSFileProviderItemCapabilities::AllowsWriting;
            }
            allowed
        }

        #[unsafe(method(fileSystemFlags))]
        fn file_system_flags(&self) -> NSFileProviderFileSystemFlags {
            let perm = self.ivars().perm;
            let mut flags = NSFileProviderFileSystemFlags::empty();
            if perm & 0o400 != 0 {
                flags |= NSFileProviderFileSystemFlags::UserReadable;
            }
            if perm & 0o200 != 0 {
                flags |= NSFileProviderFileSystemFlags::UserWritable;
            }
            if perm & 0o100 != 0 {
                flags |= NSFileProviderFileSystemFlags::UserExecutable;
            }
            flags
        }

        #[unsafe(method_id(documentSize))]
        fn document_size(&self) -> Option<Retained<NSNumber>> {
            Some(NSNumber::numberWithUnsignedLongLong(self.ivars().size))
        }

        #[unsafe(method_id(contentModificationDate))]
        fn content_modification_date(&self) -> Option<Retained<NSDate>> {
            Some(ns_date(self.ivars().modified))
        }

        #[unsafe(method_id(itemVersion))]
        fn item_version(&self) -> Retained<NSFileProviderItemVersion> {
            let version = &self.ivars().version;
            // SAFETY: an initializer taking two data objects, which it copies.
            unsafe {
                NSFileProviderItemVersion::initWithContentVersion_metadataVersion(
                    NSFileProviderItemVersion::alloc(),
                    &NSData::with_bytes(&version.content),
                    &NSData::with_bytes(&version.metadata),
                )
            }
        }

        #[unsafe(method_id(symlinkTargetPath))]
        fn symlink_target_path(&self) -> Option<Retained<NSString>> {
            match &self.ivars().kind {
                ItemKind::Symlink(target) => Some(NSString::from_str(&String::from_utf8_lossy(target))),
                _ => None,
            }
        }
    }
);

impl YonderItem {
    pub fn new(item: Item) -> Retained<YonderItem> {
        let this = YonderItem::alloc().set_ivars(item);
        // SAFETY: NSObject's designated initializer, on an allocated object.
        unsafe { msg_send![super(this), init] }
    }
}
