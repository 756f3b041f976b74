//! Values between the mapping's Rust types and Foundation's.

use crate::{ErrorDomain, ErrorStatus, ItemChanges, ItemIdentifier, ItemKind, ItemTemplate, ProviderError};
use objc2::rc::Retained;
use objc2::runtime::NSObjectProtocol;
use objc2_file_provider::{
    NSFileProviderErrorDomain, NSFileProviderFileSystemFlags, NSFileProviderItem, NSFileProviderItemFields,
    NSFileProviderItemProtocol,
};
use objc2_foundation::{NSCocoaErrorDomain, NSDate, NSError, NSPOSIXErrorDomain, NSString, NSURL};
use yonder_vfs::Timespec;

pub fn ns_identifier(id: &ItemIdentifier) -> Retained<NSString> {
    NSString::from_str(&id.to_system_string())
}

/// An identifier the system gives; one this extension never made names
/// no item (`None`).
pub fn item_identifier(s: &NSString) -> Option<ItemIdentifier> {
    ItemIdentifier::from_system_string(&s.to_string())
}

pub fn ns_status(status: ErrorStatus) -> Retained<NSError> {
    // SAFETY: the domains are Foundation's and FileProvider's constant
    // strings, valid for the life of the process.
    let domain = unsafe {
        match status.domain() {
            ErrorDomain::FileProvider => NSFileProviderErrorDomain,
            ErrorDomain::Cocoa => NSCocoaErrorDomain,
            ErrorDomain::Posix => NSPOSIXErrorDomain,
        }
    };
    NSError::new(status.code() as isize, domain)
}

pub fn ns_error(error: &ProviderError) -> Retained<NSError> {
    tracing::debug!("{error}");
    ns_status(error.status)
}

pub fn ns_date(t: Timespec) -> Retained<NSDate> {
    NSDate::dateWithTimeIntervalSince1970(t.sec as f64 + f64::from(t.nsec) / 1e9)
}

pub fn timespec(date: &NSDate) -> Timespec {
    let secs = date.timeIntervalSince1970();
    let whole = secs.floor();
    Timespec {
        sec: whole as i64,
        nsec: ((secs - whole) * 1e9) as u32,
    }
}

/// A name as the system gives it: Finder's names are Unicode.
fn name_of(item: &NSFileProviderItem) -> Vec<u8> {
    // SAFETY: `filename` is a required method of the protocol.
    unsafe { item.filename() }.to_string().into_bytes()
}

/// What `createItemBasedOnTemplate` asks for.
pub fn template_of(item: &NSFileProviderItem) -> Option<ItemTemplate> {
    // SAFETY: required and optional methods of the protocol, the optional
    // ones asked only once `respondsToSelector:` says they are there.
    unsafe {
        let parent = item_identifier(&item.parentItemIdentifier())?;
        let kind = if item.respondsToSelector(objc2::sel!(symlinkTargetPath)) {
            match item.symlinkTargetPath() {
                Some(target) => ItemKind::Symlink(target.to_string().into_bytes()),
                None => kind_by_type(item),
            }
        } else {
            kind_by_type(item)
        };
        Some(ItemTemplate {
            parent,
            filename: name_of(item),
            kind,
            perm: perm_of(item).unwrap_or(0o644),
        })
    }
}

/// A directory by its content type, anything else a file.
///
/// SAFETY: the caller passes an item of the system's.
unsafe fn kind_by_type(item: &NSFileProviderItem) -> ItemKind {
    if item.respondsToSelector(objc2::sel!(contentType)) {
        let folder = NSString::from_str("public.folder");
        if item.contentType().identifier().isEqualToString(&folder) {
            return ItemKind::Directory;
        }
    }
    ItemKind::File
}

/// Permission bits from `fileSystemFlags`, the owner's only (FileProvider
/// has no others).
///
/// SAFETY: the caller passes an item of the system's.
unsafe fn perm_of(item: &NSFileProviderItem) -> Option<u32> {
    if !item.respondsToSelector(objc2::sel!(fileSystemFlags)) {
        return None;
    }
    let flags = item.fileSystemFlags();
    let mut perm = 0o044;
    if flags.contains(NSFileProviderFileSystemFlags::UserReadable) {
        perm |= 0o400;
    }
    if flags.contains(NSFileProviderFileSystemFlags::UserWritable) {
        perm |= 0o200;
    }
    if flags.contains(NSFileProviderFileSystemFlags::UserExecutable) {
        perm |= 0o111;
    }
    Some(perm)
}

/// What `modifyItem` asks to change, by the fields it says changed.
pub fn changes_of(
    item: &NSFileProviderItem,
    fields: NSFileProviderItemFields,
    contents: Option<&NSURL>,
) -> ItemChanges {
    let mut changes = ItemChanges::default();
    // SAFETY: as in `template_of`.
    unsafe {
        if fields.contains(NSFileProviderItemFields::Filename) {
            changes.filename = Some(name_of(item));
        }
        if fields.contains(NSFileProviderItemFields::ParentItemIdentifier) {
            changes.parent = item_identifier(&item.parentItemIdentifier());
        }
        if fields.contains(NSFileProviderItemFields::FileSystemFlags) {
            changes.perm = perm_of(item);
        }
        if fields.contains(NSFileProviderItemFields::ContentModificationDate)
            && item.respondsToSelector(objc2::sel!(contentModificationDate))
        {
            changes.modified = item.contentModificationDate().map(|d| timespec(&d));
        }
    }
    if fields.contains(NSFileProviderItemFields::Contents) {
        changes.contents = contents.and_then(|url| url.to_file_path());
    }
    changes
}
