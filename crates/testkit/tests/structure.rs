//! The workspace's structure rules, read from its source:
//! - imports inside each crate run one way: no module of a crate imports,
//!   directly or through others, a module that imports it;
//! - parts own their state: a type's own methods (`impl Type { ... }`) are
//!   in the file that defines the type.
//!
//! A failure names what breaks the rule and where.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use yonder_testkit::impl_placement::{crate_sources, stray_impls};
use yonder_testkit::module_graph::workspace_graphs;

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `vfs/src/vfs.rs`, not the machine's whole path.
fn shown(path: &Path) -> String {
    path.strip_prefix(crates_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn no_crate_has_an_import_cycle() {
    let graphs = workspace_graphs(&crates_dir()).expect("read the workspace's crates");
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

#[test]
fn each_types_own_methods_are_in_the_file_that_defines_it() {
    let mut report = String::new();
    let mut crates = 0;
    for entry in std::fs::read_dir(crates_dir()).expect("read crates/") {
        let src = entry.expect("crate folder").path().join("src");
        if !src.is_dir() {
            continue;
        }
        crates += 1;
        let sources = crate_sources(&src).expect("read a crate's sources");
        for stray in stray_impls(&sources) {
            report.push_str(&format!(
                "impl {} in {} (defined in {})\n",
                stray.type_name,
                shown(&stray.impl_file),
                stray
                    .defined_in
                    .iter()
                    .map(|p| shown(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    assert!(crates >= 8, "found only {crates} crates");
    assert!(report.is_empty(), "methods outside their type's file:\n{report}");
}
