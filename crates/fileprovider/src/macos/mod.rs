//! The extension side on macOS: the Objective-C classes the system loads
//! into the extension process, over `objc2-file-provider`. Each request
//! is handed to the portable mapping ([`crate::Provider`],
//! [`crate::Enumerator`]) on the session's tokio runtime, and its answer
//! to the request's completion handler or observer.
//!
//! - `extension_class.rs`: `YonderFileProviderExtension`, the principal
//!   class (`NSFileProviderReplicatedExtension`, `NSFileProviderEnumerating`,
//!   `NSFileProviderPartialContentFetching`);
//! - `enumerator_class.rs`: `YonderEnumerator` (`NSFileProviderEnumerator`);
//! - `item_class.rs`: `YonderItem` (`NSFileProviderItemProtocol`);
//! - `session.rs`: one domain's runtime, connection and provider;
//! - `domain_signal.rs`: the [`crate::System`] that signals the domain's
//!   `NSFileProviderManager`;
//! - `domains.rs`: adding and removing domains, for the containing app;
//! - `convert.rs`: identifiers, errors, dates and templates between the
//!   two sides; `send.rs`: the system's blocks and observers carried to
//!   the runtime's threads.
//!
//! Type-checked for aarch64-apple-darwin (`./x cross`); nothing here has
//! run (see docs/fileprovider.md).

mod convert;
mod domain_signal;
mod domains;
mod enumerator_class;
mod extension_class;
mod item_class;
mod send;
mod session;

pub use domains::{add_domain, remove_domain};
pub use enumerator_class::YonderEnumerator;
pub use extension_class::YonderFileProviderExtension;
pub use item_class::YonderItem;

use objc2::ClassType;
use std::ffi::{c_char, c_int, CString};

extern "C" {
    /// Foundation's entry point of an app extension: connects to the
    /// system, instantiates `NSExtensionPrincipalClass` and never returns.
    fn NSExtensionMain(argc: c_int, argv: *mut *mut c_char) -> c_int;
}

/// The extension executable's `main`. The classes are registered with the
/// Objective-C runtime first: the system looks the principal class up by
/// the name the extension's Info.plist gives, and a class defined in Rust
/// exists only once registered.
pub fn extension_main() -> ! {
    let _ = YonderFileProviderExtension::class();
    let _ = YonderEnumerator::class();
    let _ = YonderItem::class();
    let args: Vec<CString> = std::env::args_os()
        .map(|arg| CString::new(arg.into_encoded_bytes()).unwrap_or_default())
        .collect();
    let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let argc = c_int::try_from(args.len()).unwrap_or(c_int::MAX);
    // SAFETY: `argv` is `argc` pointers to NUL-terminated strings and a
    // final null, as C's `main` gets them; `args` owns the strings and
    // outlives the call, which does not return before the process ends.
    let code = unsafe { NSExtensionMain(argc, argv.as_mut_ptr()) };
    std::process::exit(code)
}
