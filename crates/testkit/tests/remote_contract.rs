//! The `Remote` contract against the agent served in this process
//! (`yonder_agent::serve` on an in-memory pipe, an `AgentClient` on the
//! other end). The child-process and ssh instantiations live with the
//! binary, in crates/cli/tests/remote_contract.rs; `LocalRemote`'s in
//! crates/vfs/tests/remote_contract.rs.

use yonder_testkit::contract::Subject;

async fn subject() -> Subject {
    Subject::in_process_agent().await
}

yonder_testkit::remote_contract!(subject);
