//! [`System`]: what the extension asks of the operating system, the one
//! call that goes that way (everything else is the system calling in).

use crate::identifier::ItemIdentifier;

/// The system side the extension calls. On macOS,
/// `NSFileProviderManager`'s `signalEnumeratorForContainerItemIdentifier`
/// for the extension's domain; in the tests, a fake that enumerates the
/// changes as the system would.
pub trait System: Send + Sync {
    /// Tells the system that `container`'s enumerator has changes to
    /// enumerate: it asks for them later, from its last sync anchor.
    /// Called from the VFS's tasks; must not block.
    fn signal_enumerator(&self, container: &ItemIdentifier);
}
