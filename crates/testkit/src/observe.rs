//! Interceptors that watch calls or change answers rather than fail them,
//! beside the fault injectors of [`crate::faults`] and nesting with them:
//!
//! - [`Counted`] counts calls by operation ([`Counts`]);
//! - [`Recorded`] keeps the data of every write as it reached the remote,
//!   the buffers themselves, to check what a caller copies ([`Writes`]);
//! - [`WithoutInodeNumbers`] answers with attributes that carry no inode
//!   number, device or birth time, as a remote without them (SFTP) does
//!   ([`NoInodeNumbers`]).
//!
//! Each counts or records the calls that pass it: placed right around the
//! remote, what the remote received; outside a [`crate::faults::Faulty`],
//! failed calls too.

use crate::faults::{Call, Intercepted, Interceptor, Op};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use yonder_proto::Attr;
use yonder_remote::{Bytes, Result};

/// The interceptor of [`Counted`]: how many calls of each operation passed.
#[derive(Default)]
pub struct Counts {
    calls: Mutex<HashMap<Op, u64>>,
}

impl Counts {
    /// Calls of `op` so far.
    pub fn of(&self, op: Op) -> u64 {
        self.calls.lock().unwrap().get(&op).copied().unwrap_or(0)
    }
}

impl Interceptor for Counts {
    fn intercept<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        next: impl Future<Output = Result<T>> + Send + 'a,
    ) -> impl Future<Output = Result<T>> + Send + 'a {
        *self.calls.lock().unwrap().entry(call.op).or_default() += 1;
        next
    }
}

/// A remote whose calls are counted; see [`Counts`].
pub type Counted = Intercepted<Counts>;

/// The interceptor of [`Recorded`]: every write's data, in the order the
/// writes passed.
#[derive(Default)]
pub struct Writes {
    data: Mutex<Vec<Bytes>>,
}

impl Writes {
    /// The data of every write so far: views of the callers' buffers, not
    /// copies, so that `as_ptr` tells where each came from.
    pub fn written(&self) -> Vec<Bytes> {
        self.data.lock().unwrap().clone()
    }
}

impl Interceptor for Writes {
    fn intercept<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        next: impl Future<Output = Result<T>> + Send + 'a,
    ) -> impl Future<Output = Result<T>> + Send + 'a {
        if let Some(data) = call.data {
            self.data.lock().unwrap().push(data.clone());
        }
        next
    }
}

/// A remote whose writes' data is kept; see [`Writes`].
pub type Recorded = Intercepted<Writes>;

/// The interceptor of [`WithoutInodeNumbers`]: passes every call and shows
/// attributes without inode number, device or birth time.
#[derive(Default)]
pub struct NoInodeNumbers;

impl Interceptor for NoInodeNumbers {
    fn intercept<'a, T: Send + 'a>(
        &'a self,
        _: Call<'a>,
        next: impl Future<Output = Result<T>> + Send + 'a,
    ) -> impl Future<Output = Result<T>> + Send + 'a {
        next
    }

    fn shown_attr(&self, attr: Attr) -> Attr {
        Attr {
            ino: 0,
            dev: 0,
            btime: None,
            ..attr
        }
    }
}

/// A remote that answers without inode numbers; see [`NoInodeNumbers`].
pub type WithoutInodeNumbers = Intercepted<NoInodeNumbers>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direct::DirectAgent;
    use crate::faults::{Fault, Faulty};
    use yonder_proto::{open_flags as of, Errno};
    use yonder_remote::Remote;

    #[tokio::test]
    async fn counts_what_passes_by_operation() {
        let dir = tempfile::tempdir().unwrap();
        let counted = Counted::new(DirectAgent::new(dir.path()));
        let faulty = Faulty::new(counted.clone());
        faulty.inject(Fault::on(Op::Mkdir, Errno::EROFS));
        faulty.lstat(b"").await.unwrap();
        faulty.lstat(b"missing").await.unwrap_err();
        faulty.mkdir(b"d", 0o755, None).await.unwrap_err();
        assert_eq!(counted.of(Op::Lstat), 2, "failed calls count too");
        assert_eq!(counted.of(Op::Mkdir), 0, "the fault kept it from the remote");
        assert_eq!(counted.of(Op::Stat), 0);
    }

    #[tokio::test]
    async fn records_the_callers_buffers_not_copies() {
        let dir = tempfile::tempdir().unwrap();
        let agent = DirectAgent::new(dir.path());
        let recorded = Recorded::new(agent.clone());
        let flags = of::WRITE_ONLY | of::CREATE;
        let (handle, _) = recorded.open(b"f", flags, 0o644, None).await.unwrap();
        let data = Bytes::from(vec![7u8; 1000]);
        recorded.write(handle, 0, data.slice(..10)).await.unwrap();
        recorded.write(handle, 10, data.slice(10..)).await.unwrap();
        assert_eq!(agent.open_files(), 1);
        recorded.close(handle).await.unwrap();
        assert_eq!(agent.open_files(), 0);
        let written = recorded.written();
        assert_eq!(written.len(), 2);
        assert_eq!(written[0].as_ptr(), data.as_ptr());
        assert_eq!(written[1].as_ptr(), data[10..].as_ptr());
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), &data[..]);
    }

    #[tokio::test]
    async fn hides_inode_numbers_in_every_answer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let agent = DirectAgent::new(dir.path());
        let real = agent.lstat(b"f").await.unwrap();
        assert_ne!(real.ino, 0);
        let hidden = WithoutInodeNumbers::new(agent);
        let shown = hidden.lstat(b"f").await.unwrap();
        assert_eq!((shown.ino, shown.dev, shown.btime), (0, 0, None));
        assert_eq!(shown.size, real.size);
        let listed = hidden.read_dir_all(b"").await.unwrap();
        assert!(listed
            .iter()
            .all(|e| e.attr.is_some_and(|a| a.ino == 0 && a.dev == 0)));
        let (handle, opened) = hidden.open(b"f", of::READ_ONLY, 0, None).await.unwrap();
        assert_eq!(opened.ino, 0);
        assert_eq!(hidden.fstat(handle).await.unwrap().ino, 0);
        hidden.close(handle).await.unwrap();
    }
}
