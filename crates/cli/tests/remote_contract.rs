//! The `Remote` contract (yonder_testkit::contract) against a real agent
//! through the client library: `yonder agent` spawned locally, and started
//! through real ssh. The in-process agent runs the same checks in
//! crates/testkit/tests, with the agent's request handling called directly
//! and a `Scoped` view.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

mod support;

use support::{fixture, Transport};
use yonder_testkit::contract::Subject;

async fn subject(transport: Transport) -> Subject {
    let f = fixture(transport).await;
    let root = f.root().to_path_buf();
    // The temporary root, then the sshd, go after the client.
    Subject::new(f.client, root, (f.dir, f.sshd))
}

mod local {
    async fn subject() -> super::Subject {
        super::subject(super::Transport::Local).await
    }
    yonder_testkit::remote_contract!(subject);
}

mod ssh {
    async fn subject() -> super::Subject {
        super::subject(super::Transport::Ssh).await
    }
    yonder_testkit::remote_contract!(subject);
}

mod sftp {
    async fn subject() -> super::Subject {
        super::subject(super::Transport::Sftp)
            .await
            .with_gaps(yonder_testkit::contract::SFTP_GAPS)
    }
    yonder_testkit::remote_contract!(subject);
}
