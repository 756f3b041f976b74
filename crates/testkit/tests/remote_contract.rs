//! The `Remote` contract against the agent served in this process
//! (`yonder_agent::serve` on an in-memory pipe, an `AgentClient` on the
//! other end), against the agent's request handling called directly (the
//! double the VFS and frontend tests run on), and against a `Scoped` view
//! of a temporary directory through an agent serving `/` (how the
//! manager's mounts share one connection). The child-process and ssh
//! instantiations live with the binary, in
//! crates/cli/tests/remote_contract.rs.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

use yonder_testkit::contract::Subject;

async fn subject() -> Subject {
    Subject::in_process_agent().await
}

yonder_testkit::remote_contract!(subject);

mod direct {
    async fn subject() -> yonder_testkit::contract::Subject {
        yonder_testkit::contract::Subject::direct_agent()
    }

    yonder_testkit::remote_contract!(subject);
}

mod scoped {
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::Arc;
    use yonder_remote::Scoped;
    use yonder_testkit::contract::Subject;

    async fn subject() -> Subject {
        let dir = tempfile::Builder::new()
            .prefix("yonder-scoped")
            .tempdir()
            .expect("temporary directory");
        let (client, serve) = yonder_testkit::agent::connect(Path::new("/"))
            .await
            .expect("in-process agent serving /");
        let root = dir.path().canonicalize().unwrap();
        let scoped = Scoped::resolve(Arc::new(client), root.as_os_str().as_bytes())
            .await
            .expect("scoped view");
        Subject::new(Arc::new(scoped), root, (dir, AbortOnDrop(serve)))
    }

    struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    yonder_testkit::remote_contract!(subject);
}
