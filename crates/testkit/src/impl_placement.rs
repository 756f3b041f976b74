//! Where a type's inherent `impl` blocks are: the rule that parts own
//! their state (a type's data, its lock and the methods that change them
//! in one file) read from the source. A type may be given trait impls
//! anywhere; its own methods live beside its definition.
//!
//! Like [`crate::module_graph`] it reads text, not a compiler's view: a
//! type is known by its name within its crate, and one defined twice under
//! one name (in two modules) may have its impls in either file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// An inherent `impl` of a type outside every file that defines it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StrayImpl {
    pub type_name: String,
    pub impl_file: PathBuf,
    pub defined_in: Vec<PathBuf>,
}

/// The stray impls among `files` (path, source text) of one crate.
pub fn stray_impls(files: &[(PathBuf, String)]) -> Vec<StrayImpl> {
    let mut defined: BTreeMap<String, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut implemented: BTreeMap<String, BTreeSet<PathBuf>> = BTreeMap::new();
    for (path, text) in files {
        let text = crate::module_graph::strip_comments(text);
        for line in text.lines() {
            if let Some(name) = defined_name(line) {
                defined.entry(name).or_default().insert(path.clone());
            }
            if let Some(name) = inherent_impl_name(line) {
                implemented.entry(name).or_default().insert(path.clone());
            }
        }
    }
    let mut strays = Vec::new();
    for (name, impl_files) in implemented {
        let Some(homes) = defined.get(&name) else { continue };
        for file in impl_files.difference(homes) {
            strays.push(StrayImpl {
                type_name: name.clone(),
                impl_file: file.clone(),
                defined_in: homes.iter().cloned().collect(),
            });
        }
    }
    strays
}

/// `pub(crate) struct Name`, `enum Name<T>`, ...: the name defined.
fn defined_name(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    if let Some(after) = rest.strip_prefix("pub") {
        rest = after.trim_start();
        if rest.starts_with('(') {
            rest = rest[rest.find(')')? + 1..].trim_start();
        }
    }
    let (kind, after) = rest.split_once(char::is_whitespace)?;
    if !matches!(kind, "struct" | "enum" | "union") {
        return None;
    }
    let name: String = after
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// `impl Name {` or `impl<T> Name<T> {` (not `impl Trait for Name`): the
/// type's name.
fn inherent_impl_name(line: &str) -> Option<String> {
    let line = line.trim_start();
    let rest = line.strip_prefix("impl")?;
    if !(rest.starts_with(' ') || rest.starts_with('<')) {
        return None;
    }
    let mut rest = rest.trim_start();
    if rest.starts_with('<') {
        let mut depth = 0;
        let end = rest.char_indices().find_map(|(i, c)| {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
            None
        })?;
        rest = rest[end + 1..].trim_start();
    }
    let header = rest.split('{').next()?;
    if header.split_whitespace().any(|w| w == "for") {
        return None;
    }
    let name: String = header
        .trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The `.rs` files under `src`, with their text (those of its modules, as
/// [`crate::module_graph`] reads them).
pub fn crate_sources(src: &Path) -> std::io::Result<Vec<(PathBuf, String)>> {
    crate::module_graph::source_files(src)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
        list.iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect()
    }

    #[test]
    fn an_impl_in_another_file_is_stray() {
        let strays = stray_impls(&files(&[
            (
                "vfs.rs",
                "pub struct Vfs {\n    a: u8,\n}\nimpl Vfs {\n    fn a(&self) {}\n}\n",
            ),
            (
                "read.rs",
                "use crate::vfs::Vfs;\nimpl Vfs {\n    pub fn read(&self) {}\n}\n",
            ),
        ]));
        assert_eq!(
            strays,
            vec![StrayImpl {
                type_name: "Vfs".into(),
                impl_file: "read.rs".into(),
                defined_in: vec!["vfs.rs".into()],
            }]
        );
    }

    #[test]
    fn types_of_any_visibility_are_placed() {
        let strays = stray_impls(&files(&[
            ("table.rs", "pub(crate) struct Table {\n}\n"),
            ("other.rs", "impl Table {\n}\n"),
        ]));
        assert_eq!(strays.len(), 1, "{strays:?}");
        assert_eq!(strays[0].impl_file, PathBuf::from("other.rs"));
    }

    #[test]
    fn trait_impls_generics_and_comments_are_not_stray() {
        let strays = stray_impls(&files(&[
            ("table.rs", "pub(crate) struct Table<T> { t: T }\nimpl<T: Clone> Table<T> {}\n"),
            ("inner.rs", "pub(in crate::a) struct Inner;\nimpl Inner {}\n"),
            (
                "other.rs",
                "impl<T> Drop for Table<T> { fn drop(&mut self) {} }\nimpl std::fmt::Debug for Table<u8> {}\n// impl Table {\n",
            ),
        ]));
        assert!(strays.is_empty(), "{strays:?}");
    }
}
