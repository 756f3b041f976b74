//! The import graph of a crate's modules, and its cycles.
//!
//! Each module of a crate (a file under `src/`, or an inline `mod` block of
//! one) is a node; a path a module names (`use crate::a::B`, `super::c`, a
//! path written inline in code) is an edge to the module that defines what
//! it names. A path through the crate root's re-exports (`pub use
//! inode::InodeTable` in lib.rs, then `crate::InodeTable`) is followed to
//! the module the root took it from, since that is the module the name
//! really depends on. Declaring a child (`mod x;`) is ownership, not an
//! import, and makes no edge; a child's own tests module is left out, as it
//! belongs to its parent.
//!
//! The rule it checks: imports inside a crate run one way, so the graph has
//! no cycle. `tests/module_graph.rs` runs it over every crate of the
//! workspace.
//!
//! It reads source text, not a compiler's view: macros that build paths and
//! `#[path]` attributes are not followed. It errs towards edges it cannot
//! disprove, so it may report a cycle a compiler would not, never the
//! reverse for the kinds of paths the workspace writes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module by its path inside the crate: `[]` is the root, `["vfs",
/// "write"]` is `crate::vfs::write`.
pub type ModulePath = Vec<String>;

/// The modules of one crate and which of them each one imports.
#[derive(Debug, Default)]
pub struct ModuleGraph {
    /// Each module's file, for reports.
    files: BTreeMap<ModulePath, PathBuf>,
    edges: BTreeMap<ModulePath, BTreeSet<ModulePath>>,
}

/// One module's source, as the parser needs it.
struct Source {
    module: ModulePath,
    /// The file, relative to `src/`; empty for texts given directly.
    file: PathBuf,
    text: String,
}

impl ModuleGraph {
    /// Reads the crate whose `src/` folder is `src`: `lib.rs` or `main.rs`
    /// is the root, and every `.rs` file beneath is a module (`a.rs` and
    /// `a/mod.rs` are `a`, `a/b.rs` is `a::b`). Binaries under `src/bin`
    /// are crates of their own and are left out.
    pub fn of_crate(src: &Path) -> std::io::Result<ModuleGraph> {
        let mut sources = Vec::new();
        collect(src, src, &mut sources)?;
        Ok(ModuleGraph::from_sources(sources))
    }

    /// Builds the graph from `(module path, source text)` pairs: the unit
    /// under test, without files.
    pub fn from_texts(texts: &[(&str, &str)]) -> ModuleGraph {
        let sources = texts
            .iter()
            .map(|(module, text)| Source {
                module: split_module(module),
                file: PathBuf::new(),
                text: text.to_string(),
            })
            .collect();
        ModuleGraph::from_sources(sources)
    }

    fn from_sources(sources: Vec<Source>) -> ModuleGraph {
        let mut graph = ModuleGraph::default();
        // Inline modules become modules of their own, so that `super::`
        // inside them resolves as the compiler would.
        let mut modules: Vec<Source> = Vec::new();
        for source in sources {
            graph.files.insert(source.module.clone(), source.file.clone());
            let text = strip_comments(&source.text);
            split_inline_modules(&source.module, &text, &mut modules);
        }
        let known: BTreeSet<ModulePath> = modules.iter().map(|m| m.module.clone()).collect();
        let reexports = root_reexports(modules.iter().find(|m| m.module.is_empty()), &known);
        for module in &modules {
            let targets = graph.edges.entry(module.module.clone()).or_default();
            for path in referenced_paths(&module.text) {
                if let Some(target) = resolve(&module.module, &path, &known, &reexports) {
                    if target != module.module && !is_ancestor(&module.module, &target, &path) {
                        targets.insert(target);
                    }
                }
            }
        }
        graph
    }

    fn prefix_files(&mut self, prefix: &Path) {
        for file in self.files.values_mut() {
            *file = prefix.join(&*file);
        }
    }

    /// The modules that import one another in a circle, each circle as its
    /// members in order (strongly connected components of more than one
    /// module), smallest module first.
    pub fn cycles(&self) -> Vec<Vec<ModulePath>> {
        strongly_connected(&self.edges)
            .into_iter()
            .filter(|component| component.len() > 1)
            .collect()
    }

    /// The modules `module` imports.
    pub fn imports_of(&self, module: &str) -> Vec<String> {
        self.edges
            .get(&split_module(module))
            .map(|targets| targets.iter().map(join_module).collect())
            .unwrap_or_default()
    }

    /// One line per cycle, naming each module and, inside it, which of the
    /// others it imports: what a reader needs to break it.
    pub fn describe_cycles(&self) -> String {
        let mut out = String::new();
        for cycle in self.cycles() {
            let members: BTreeSet<&ModulePath> = cycle.iter().collect();
            let parts: Vec<String> = cycle
                .iter()
                .map(|m| {
                    let imports: Vec<String> = self.edges[m]
                        .iter()
                        .filter(|t| members.contains(t))
                        .map(join_module)
                        .collect();
                    let file = self
                        .files
                        .get(m)
                        .filter(|f| !f.as_os_str().is_empty())
                        .map(|f| format!(" ({})", f.display()))
                        .unwrap_or_default();
                    format!("{}{} -> {}", join_module(m), file, imports.join(", "))
                })
                .collect();
            out.push_str(&format!("cycle of {}: {}\n", cycle.len(), parts.join("; ")));
        }
        out
    }
}

/// The files of a crate's modules under `src` (as [`ModuleGraph::of_crate`]
/// reads them), each with its text, in path order.
pub(crate) fn source_files(src: &Path) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut sources = Vec::new();
    collect(src, src, &mut sources)?;
    Ok(sources.into_iter().map(|s| (src.join(s.file), s.text)).collect())
}

fn collect(src: &Path, dir: &Path, out: &mut Vec<Source>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let relative = path.strip_prefix(src).expect("under src");
        if entry.file_type()?.is_dir() {
            if relative == Path::new("bin") {
                continue;
            }
            collect(src, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut module: ModulePath = relative
                .with_extension("")
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod")) {
                module.pop();
            }
            if module.len() == 1 && (module[0] == "lib" || module[0] == "main") {
                module.clear();
            }
            out.push(Source {
                module,
                file: relative.to_path_buf(),
                text: std::fs::read_to_string(&path)?,
            });
        }
    }
    Ok(())
}

fn split_module(module: &str) -> ModulePath {
    module
        .split("::")
        .filter(|s| !s.is_empty() && *s != "crate")
        .map(str::to_string)
        .collect()
}

fn join_module(module: &ModulePath) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        format!("crate::{}", module.join("::"))
    }
}

/// Whether `target` is an ancestor of `module` reached by `super`: a child
/// naming its parent's items (`super::*` in a tests module, `super::Thing`)
/// is part of its parent, and the parent owns it; that is no import.
fn is_ancestor(module: &ModulePath, target: &ModulePath, path: &[String]) -> bool {
    path.first().is_some_and(|s| s == "super") && module.starts_with(target) && target.len() < module.len()
}

/// Comments and string literals removed, so that paths in prose or in
/// messages make no edges; line structure is kept.
pub(crate) fn strip_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map(|e| e + 2).unwrap_or(rest.len());
            out.extend(rest[..end].chars().filter(|c| *c == '\n'));
            i += end;
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            let end = rest[body..]
                .find(&close)
                .map(|e| body + e + close.len())
                .unwrap_or(rest.len());
            out.extend(rest[..end].chars().filter(|c| *c == '\n'));
            out.push_str("\"\"");
            i += end;
        } else if rest.starts_with('"') {
            let mut j = 1;
            let rb = rest.as_bytes();
            while j < rb.len() && rb[j] != b'"' {
                j += if rb[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(rest.len());
            out.extend(rest[..end].chars().filter(|c| *c == '\n'));
            out.push_str("\"\"");
            i += end;
        } else if rest.starts_with('\'') && is_char_literal(rest) {
            let end = rest[1..].find('\'').map(|e| e + 2).unwrap_or(rest.len());
            out.push_str("' '");
            i += end;
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `'x'`, `'\n'`, `'\''` rather than a lifetime `'a`.
fn is_char_literal(rest: &str) -> bool {
    let b = rest.as_bytes();
    (b.len() >= 3 && b[1] != b'\\' && rest[1..].chars().nth(1) == Some('\''))
        || (b.len() >= 4 && b[1] == b'\\')
}

/// Splits `text` (a module's source, comments stripped) into the module
/// itself and its inline `mod name { ... }` blocks, each a module of its
/// own. A `#[cfg(test)]` block is left out: tests belong to the module
/// they test.
fn split_inline_modules(module: &ModulePath, text: &str, out: &mut Vec<Source>) {
    let mut own = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((before, name, body, after, is_test)) = next_inline_module(rest) {
        own.push_str(before);
        if !is_test {
            let mut child = module.clone();
            child.push(name.to_string());
            split_inline_modules(&child, body, out);
        }
        rest = after;
    }
    own.push_str(rest);
    out.push(Source {
        module: module.clone(),
        file: PathBuf::new(),
        text: own,
    });
}

/// The first `mod NAME {` in `text`: what precedes it, its name, its body,
/// what follows it, and whether a `#[cfg(test)]` stands before it.
fn next_inline_module(text: &str) -> Option<(&str, &str, &str, &str, bool)> {
    let mut search = 0;
    while let Some(found) = find_word(&text[search..], "mod") {
        let at = search + found;
        let after_kw = &text[at + 3..];
        let name_start = after_kw.len() - after_kw.trim_start().len();
        let name: String = after_kw[name_start..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after_name = &after_kw[name_start + name.len()..];
        let brace = after_name.len() - after_name.trim_start().len();
        if !name.is_empty() && after_name[brace..].starts_with('{') {
            let open = at + 3 + name_start + name.len() + brace;
            let close = matching_brace(text, open)?;
            let before = &text[..at];
            let is_test = before.trim_end().ends_with("#[cfg(test)]")
                || before
                    .trim_end()
                    .trim_end_matches(|c: char| c.is_alphanumeric() || c == '(' || c == ')')
                    .trim_end()
                    .ends_with("#[cfg(test)]");
            let name_at = at + 3 + name_start;
            return Some((
                before,
                &text[name_at..name_at + name.len()],
                &text[open + 1..close],
                &text[close + 1..],
                is_test,
            ));
        }
        search = at + 3;
    }
    None
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let before_ok = at == 0 || !is_ident(text.as_bytes()[at - 1]);
        let end = at + word.len();
        let after_ok = end >= text.len() || !is_ident(text.as_bytes()[end]);
        if before_ok && after_ok {
            return Some(at);
        }
        from = end;
    }
    None
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn matching_brace(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in text.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Every path a module names that starts at `crate`, `super` or `self`:
/// the leaves of its `use` trees, and paths written inline in code.
fn referenced_paths(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = text;
    // `use` trees, expanded: `use crate::{a::B, c::{D, E}}`.
    while let Some(at) = find_word(rest, "use") {
        let tail = &rest[at + 3..];
        let Some(end) = tail.find(';') else { break };
        let mut leaves = Vec::new();
        expand_use_tree("", &normalize_use_tree(&tail[..end]), &mut leaves);
        paths.extend(leaves.into_iter().map(|mut leaf| {
            if let Some(last) = leaf.last_mut() {
                *last = without_alias(last).to_string();
            }
            leaf
        }));
        rest = &tail[end + 1..];
    }
    // Inline paths: `crate::a::b(...)`, `super::c::D`.
    for anchor in ["crate", "super", "self"] {
        let mut from = 0;
        while let Some(i) = find_word(&text[from..], anchor) {
            let at = from + i;
            let path: String = text[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if path.contains("::") {
                paths.push(
                    path.split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                );
            }
            from = at + anchor.len();
        }
    }
    paths
        .into_iter()
        .filter(|p: &Vec<String>| {
            p.first()
                .is_some_and(|s| s == "crate" || s == "super" || s == "self")
        })
        .collect()
}

/// A `use` tree with whitespace only where it separates words (`a as
/// b`), so that paths read the same however the tree was laid out.
fn normalize_use_tree(tree: &str) -> String {
    let words: Vec<&str> = tree.split_whitespace().collect();
    let mut out = String::new();
    for word in words {
        let joins = out.ends_with([':', '{', '}', ',']) || word.starts_with([':', '{', '}', ',']);
        if !out.is_empty() && !joins {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Expands one `use` tree (normalized) under `prefix` into its
/// leaf paths.
fn expand_use_tree(prefix: &str, tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let head = &tree[..open];
        let close = matching_brace(tree, open).unwrap_or(tree.len() - 1);
        let inner = &tree[open + 1..close];
        let base = format!("{prefix}{head}");
        for item in split_top_level(inner) {
            expand_use_tree(&base, item, out);
        }
    } else {
        // The leaf keeps its `as` alias: the root's re-exports are known
        // by it.
        let full = format!("{prefix}{tree}");
        let path: Vec<String> = full
            .split("::")
            .filter(|s| !s.is_empty() && *s != "*")
            .map(str::to_string)
            .collect();
        if !path.is_empty() {
            out.push(path);
        }
    }
}

fn without_alias(segment: &str) -> &str {
    segment.split(" as ").next().unwrap_or(segment)
}

fn split_top_level(inner: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, b) in inner.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items.into_iter().filter(|s| !s.is_empty()).collect()
}

/// Names the crate root re-exports, and the module each comes from.
fn root_reexports(root: Option<&Source>, known: &BTreeSet<ModulePath>) -> BTreeMap<String, ModulePath> {
    let mut map = BTreeMap::new();
    let Some(root) = root else { return map };
    let mut rest = root.text.as_str();
    while let Some(at) = find_word(rest, "use") {
        let before = rest[..at].trim_end();
        let tail = &rest[at + 3..];
        let Some(end) = tail.find(';') else { break };
        if before.ends_with("pub") || before.ends_with(')') {
            let mut leaves = Vec::new();
            expand_use_tree("", &normalize_use_tree(&tail[..end]), &mut leaves);
            for leaf in leaves {
                let exported = leaf
                    .last()
                    .map(|s| s.rsplit(" as ").next().unwrap_or(s).to_string());
                let segments: Vec<String> = leaf
                    .iter()
                    .filter(|s| *s != "crate" && *s != "self")
                    .map(|s| without_alias(s).to_string())
                    .collect();
                if let (Some(module), Some(exported)) = (longest_module(&segments, known), exported) {
                    if !module.is_empty() {
                        map.insert(exported, module);
                    }
                }
            }
        }
        rest = &tail[end + 1..];
    }
    map
}

fn longest_module(segments: &[String], known: &BTreeSet<ModulePath>) -> Option<ModulePath> {
    (0..=segments.len())
        .rev()
        .map(|n| segments[..n].to_vec())
        .find(|candidate| known.contains(candidate))
}

/// The module that defines what `path`, written in `module`, names.
fn resolve(
    module: &ModulePath,
    path: &[String],
    known: &BTreeSet<ModulePath>,
    reexports: &BTreeMap<String, ModulePath>,
) -> Option<ModulePath> {
    let mut base: ModulePath;
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base = Vec::new();
            rest = &rest[1..];
        }
        Some("self") => {
            base = module.clone();
            rest = &rest[1..];
        }
        Some("super") => {
            base = module.clone();
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    let mut full = base.clone();
    full.extend(rest.iter().cloned());
    let found = longest_module(&full, known)?;
    if found.is_empty() {
        // Through the root: follow its re-export, if it is one.
        if let Some(name) = full.first() {
            if let Some(origin) = reexports.get(name) {
                return Some(origin.clone());
            }
        }
    }
    base = found;
    Some(base)
}

/// Tarjan's algorithm, iteratively; components in a stable order.
fn strongly_connected(edges: &BTreeMap<ModulePath, BTreeSet<ModulePath>>) -> Vec<Vec<ModulePath>> {
    let nodes: Vec<&ModulePath> = edges.keys().collect();
    let index_of: BTreeMap<&ModulePath, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let successors: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            edges[*n]
                .iter()
                .filter_map(|t| index_of.get(t).copied())
                .collect()
        })
        .collect();
    let n = nodes.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut components = Vec::new();
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        // (node, next successor to visit)
        let mut work = vec![(start, 0usize)];
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = successors[v].get(*child) {
                *child += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                loop {
                    let w = stack.pop().expect("on stack");
                    on_stack[w] = false;
                    component.push(nodes[w].clone());
                    if w == v {
                        break;
                    }
                }
                component.sort();
                components.push(component);
            }
        }
    }
    components.sort();
    components
}

/// The graph of each crate under `crates/` (each folder with a `src/`),
/// by crate folder name.
pub fn workspace_graphs(crates: &Path) -> std::io::Result<BTreeMap<String, ModuleGraph>> {
    let mut graphs = BTreeMap::new();
    let mut entries: Vec<_> = std::fs::read_dir(crates)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let src = entry.path().join("src");
        if src.is_dir() {
            let mut graph = ModuleGraph::of_crate(&src)?;
            // Named from the crates' folder: `vfs/src/inode.rs`.
            graph.prefix_files(&Path::new(&entry.file_name()).join("src"));
            graphs.insert(entry.file_name().to_string_lossy().into_owned(), graph);
        }
    }
    Ok(graphs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycles(texts: &[(&str, &str)]) -> Vec<Vec<String>> {
        ModuleGraph::from_texts(texts)
            .cycles()
            .into_iter()
            .map(|c| c.iter().map(join_module).collect())
            .collect()
    }

    #[test]
    fn two_modules_importing_each_other_are_a_cycle() {
        let found = cycles(&[
            ("crate", "mod a; mod b;"),
            ("a", "use crate::b::Thing;\npub struct Other;"),
            ("b", "use crate::a::Other;\npub struct Thing;"),
        ]);
        assert_eq!(found, vec![vec!["crate::a".to_string(), "crate::b".to_string()]]);
    }

    #[test]
    fn imports_running_one_way_are_no_cycle() {
        let found = cycles(&[
            ("crate", "mod a; mod b; mod c; pub use a::Top;"),
            ("a", "use crate::b::Mid; use crate::c::{self, Low};"),
            ("b", "use crate::c::Low;"),
            ("c", "pub struct Low;"),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_cycle_through_the_roots_reexports_and_grouped_uses_is_found() {
        // a names `crate::Thing`, which the root takes from b; b names a
        // inside a grouped use; c names a inline in code.
        let found = cycles(&[
            ("crate", "mod a; mod b; mod c; pub use b::{Thing, More as Alias};"),
            ("a", "fn f() -> crate::Thing { todo!() }"),
            ("b", "use crate::{c::{Deep, Other}};"),
            ("c", "fn g() { crate::a::f(); }"),
        ]);
        assert_eq!(
            found,
            vec![vec![
                "crate::a".to_string(),
                "crate::b".to_string(),
                "crate::c".to_string()
            ]]
        );
    }

    #[test]
    fn parents_tests_comments_and_strings_make_no_edges() {
        let found = cycles(&[
            ("crate", "mod a; mod b;"),
            (
                "a",
                "use crate::b::Thing;\n// crate::b is fine, and so is crate::a\n#[cfg(test)]\nmod tests { use crate::b::Other; }",
            ),
            (
                "b",
                "pub struct Thing; const S: &str = \"crate::a::x\"; /* crate::a::y */\n#[cfg(test)]\nmod tests {\n use crate::a::*;\n}",
            ),
            ("b::inner", "use super::Thing;"),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn super_paths_resolve_from_nested_modules() {
        let found = cycles(&[
            ("crate", "mod write; mod read;"),
            ("write", "mod buffer; use super::read::Chunk;"),
            ("write::buffer", "use super::super::read::Chunk;"),
            ("read", "use crate::write::buffer::Buffer;"),
        ]);
        assert_eq!(
            found,
            vec![vec![
                "crate::read".to_string(),
                "crate::write::buffer".to_string()
            ]]
        );
    }
}
