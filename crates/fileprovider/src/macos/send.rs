//! [`SendPtr`]: an Objective-C object of the system's (a copied
//! completion block, an enumeration observer) carried to the tokio
//! runtime's threads, where the request is served.

/// Holds `T` so that it may move to another thread.
pub struct SendPtr<T>(T);

// SAFETY: only the system's completion blocks (copied to the heap with
// `DynBlock::copy`) and its enumeration observers are wrapped. FileProvider
// documents that completion handlers and observers may be called from any
// queue, and the extension calls each once, from one thread at a time;
// what they capture is the system's, made for that.
unsafe impl<T> Send for SendPtr<T> {}

impl<T> SendPtr<T> {
    pub fn new(value: T) -> SendPtr<T> {
        SendPtr(value)
    }

    pub fn get(&self) -> &T {
        &self.0
    }
}
