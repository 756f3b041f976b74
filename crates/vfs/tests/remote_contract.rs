//! The `Remote` contract (yonder_testkit::contract) against `LocalRemote`,
//! the test double the VFS tests run on: whatever they show holds for the
//! agent only as far as the double behaves as the agent does.

use yonder_testkit::contract::Subject;
use yonder_vfs::testing::LocalRemote;

async fn subject() -> Subject {
    let dir = tempfile::Builder::new()
        .prefix("yonder-local")
        .tempdir()
        .expect("temporary directory");
    let remote = LocalRemote::new(dir.path());
    Subject::new(remote, dir.path().to_path_buf(), dir)
}

yonder_testkit::remote_contract!(subject);
