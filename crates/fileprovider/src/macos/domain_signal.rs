//! [`DomainSignal`]: the mapping's [`System`] on macOS, the domain's
//! `NSFileProviderManager`.

use crate::{ItemIdentifier, System};
use block2::RcBlock;
use objc2::AnyThread;
use objc2_file_provider::{NSFileProviderDomain, NSFileProviderManager};
use objc2_foundation::{NSError, NSString};

/// Signals the enumerators of one domain. Keeps the domain's identifier
/// and name, not the manager: Foundation's objects stay on the thread
/// that asks, and the signal comes from the VFS's tasks.
pub struct DomainSignal {
    pub identifier: String,
    pub display_name: String,
}

impl System for DomainSignal {
    fn signal_enumerator(&self, container: &ItemIdentifier) {
        let identifier = NSString::from_str(&self.identifier);
        let name = NSString::from_str(&self.display_name);
        // SAFETY: a domain is made from its identifier and name, the way
        // the app that registered it made it; the manager is looked up by
        // the identifier. `signalEnumerator` may be called from any
        // thread, and copies the completion block it is given.
        unsafe {
            let domain = NSFileProviderDomain::initWithIdentifier_displayName(
                NSFileProviderDomain::alloc(),
                &identifier,
                &name,
            );
            let Some(manager) = NSFileProviderManager::managerForDomain(&domain) else {
                tracing::warn!(
                    "signalling {container}: no manager for domain {}",
                    self.identifier
                );
                return;
            };
            let shown = container.to_string();
            let done = RcBlock::new(move |error: *mut NSError| {
                if let Some(error) = error.as_ref() {
                    tracing::warn!("signalling {shown}: {error:?}");
                }
            });
            manager.signalEnumeratorForContainerItemIdentifier_completionHandler(
                &super::convert::ns_identifier(container),
                &done,
            );
        }
    }
}
