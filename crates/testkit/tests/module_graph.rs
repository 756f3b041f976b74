//! Imports inside each crate of the workspace run one way: no module of a
//! crate imports, directly or through others, a module that imports it.
//! A failure names each cycle's modules and which of the others each one
//! imports.

use std::path::Path;
use yonder_testkit::module_graph::workspace_graphs;

#[test]
fn no_crate_has_an_import_cycle() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let graphs = workspace_graphs(&crates).expect("read the workspace's crates");
    assert!(
        graphs.len() >= 8,
        "found only {:?}",
        graphs.keys().collect::<Vec<_>>()
    );
    let mut report = String::new();
    for (name, graph) in &graphs {
        let cycles = graph.describe_cycles();
        if !cycles.is_empty() {
            report.push_str(&format!("crate {name}:\n{cycles}"));
        }
    }
    assert!(report.is_empty(), "import cycles inside crates:\n{report}");
}
