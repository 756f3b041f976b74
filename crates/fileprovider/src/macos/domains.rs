//! Adding and removing the domains the extension serves, for the app that
//! contains it (`NSFileProviderManager.addDomain`/`removeDomain`).

use block2::RcBlock;
use objc2::AnyThread;
use objc2_file_provider::{NSFileProviderDomain, NSFileProviderManager};
use objc2_foundation::{NSError, NSString};
use std::sync::mpsc;
use std::time::Duration;

/// How long the system is given to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// Adds the domain of `source`, shown as `name`; the system then starts
/// the extension for it. Adding one already there is no error.
pub fn add_domain(source: &str, name: &str) -> Result<(), String> {
    let domain = domain(source, name);
    wait_for("adding", source, |done| {
        // SAFETY: the domain is a valid object; the system copies the
        // completion block and calls it once.
        unsafe { NSFileProviderManager::addDomain_completionHandler(&domain, done) }
    })
}

/// Removes the domain of `source`, and what the system keeps of it.
pub fn remove_domain(source: &str) -> Result<(), String> {
    let domain = domain(source, source);
    wait_for("removing", source, |done| {
        // SAFETY: as in `add_domain`.
        unsafe { NSFileProviderManager::removeDomain_completionHandler(&domain, done) }
    })
}

fn domain(source: &str, name: &str) -> objc2::rc::Retained<NSFileProviderDomain> {
    // SAFETY: an initializer taking two strings, which it copies.
    unsafe {
        NSFileProviderDomain::initWithIdentifier_displayName(
            NSFileProviderDomain::alloc(),
            &NSString::from_str(source),
            &NSString::from_str(name),
        )
    }
}

/// Calls `call` with a completion block and waits for its answer.
fn wait_for(
    what: &str,
    source: &str,
    call: impl FnOnce(&block2::DynBlock<dyn Fn(*mut NSError)>),
) -> Result<(), String> {
    let (answer, answered) = mpsc::channel();
    let done = RcBlock::new(move |error: *mut NSError| {
        // SAFETY: the system passes a valid error or null.
        let error = unsafe { error.as_ref() }.map(|e| e.localizedDescription().to_string());
        let _ = answer.send(error);
    });
    call(&done);
    match answered.recv_timeout(ANSWER_WITHIN) {
        Ok(None) => Ok(()),
        Ok(Some(error)) => Err(format!("{what} the domain {source}: {error}")),
        Err(_) => Err(format!(
            "{what} the domain {source}: no answer from the system within {ANSWER_WITHIN:?}"
        )),
    }
}
