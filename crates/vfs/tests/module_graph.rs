//! The shape of the crate: its modules depend on each other one way only
//! (no import circle), and `Vfs` has one `impl` block, in `vfs.rs`, so that
//! its parts stay types of their own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate's top-level module a source file belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// Code without comments and without its unit tests.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(tests) => &text[..tests],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(comment) => &line[..comment],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules named after `crate::` in `code`.
fn uses(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

fn graph() -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut texts = BTreeMap::new();
    for file in files {
        let module = module_of(&src, &file);
        let text = std::fs::read_to_string(&file).expect("readable source");
        let code = code(&text);
        if module != "lib" {
            let entry = deps.entry(module.clone()).or_default();
            entry.extend(uses(&code).into_iter().filter(|m| *m != module));
        }
        texts.insert(file.strip_prefix(&src).unwrap().display().to_string(), code);
    }
    (deps, texts)
}

#[test]
fn the_modules_of_the_crate_form_no_import_circle() {
    let (deps, _) = graph();
    // Depth-first search; a module met again while on the path closes a
    // circle.
    fn visit(
        module: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(module) {
            return;
        }
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut circle = path[at..].to_vec();
            circle.push(module.to_string());
            panic!("import circle: {}", circle.join(" -> "));
        }
        path.push(module.to_string());
        for dep in deps.get(module).into_iter().flatten() {
            if deps.contains_key(dep) {
                visit(dep, deps, path, done);
            }
        }
        path.pop();
        done.insert(module.to_string());
    }
    let mut done = BTreeSet::new();
    for module in deps.keys() {
        visit(module, &deps, &mut Vec::new(), &mut done);
    }
    assert!(
        deps.contains_key("vfs") && deps.contains_key("write_back"),
        "{deps:?}"
    );
}

#[test]
fn no_part_names_the_vfs_and_the_vfs_has_one_impl_block() {
    let (deps, texts) = graph();
    // Only what stands beside the VFS and uses its public API may name it.
    for (module, uses) in &deps {
        if uses.contains("vfs") {
            assert_eq!(
                module, "export",
                "{module} names the Vfs: pass it the part it needs instead"
            );
        }
    }
    let impls: Vec<&String> = texts
        .iter()
        .flat_map(|(file, code)| std::iter::repeat_n(file, code.matches("impl Vfs {").count()))
        .collect();
    assert_eq!(impls, ["vfs.rs"], "impl Vfs blocks");
}
