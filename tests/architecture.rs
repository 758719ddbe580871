//! The layering of src/ that docs/architecture.md describes, checked on the source text:
//! the top-level modules of the library import each other without cycles, and the
//! pipeline never imports the command line (`cli`) or the commands layer (`commands`).
//!
//! A cycle is what lets clap types leak into the phases and string prefixes stand in for
//! types; a new one fails here with the circle spelled out, so it is fixed where it starts
//! instead of being found by the next person who tries to move a module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that may import the command line: everything else is the pipeline.
const COMMAND_LAYER: [&str; 2] = ["cli", "commands"];

#[test]
fn src_modules_import_each_other_without_cycles() {
    let graph = module_graph();
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "import cycle in src/: {} (see docs/architecture.md for which way imports go)",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_pipeline_imports_nothing_from_cli_or_commands() {
    let mut wrong = Vec::new();
    for (module, uses) in module_graph() {
        if COMMAND_LAYER.contains(&module.as_str()) {
            continue;
        }
        for used in uses.iter().filter(|u| COMMAND_LAYER.contains(&u.as_str())) {
            wrong.push(format!("{module} imports {used}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "the pipeline must not depend on the command line: {wrong:?}; turn the clap \
         arguments into plain options in src/commands/ and pass those"
    );
}

#[test]
fn the_checker_sees_imports_and_cycles() {
    let text = "use crate::ssh::{self, Target};\nuse crate::{facts, plan::Vars};\n\
                // crate::cli in a comment\nlet x = crate::ui::Progress::new(); \"crate::report\";";
    let found: BTreeSet<String> = references(text).into_iter().collect();
    let want = ["facts", "plan", "ssh", "ui"].map(String::from);
    assert_eq!(found, BTreeSet::from(want));
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
}

/// Top-level module -> the other top-level modules its files name as `crate::NAME`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        // lib.rs declares the modules; main.rs is the binary, above the library.
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let uses = graph.entry(module.clone()).or_default();
        uses.extend(references(&text).into_iter().filter(|m| *m != module));
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The top-level modules a file's code names: `crate::NAME` anywhere (paths in code as
/// well as `use` lines) and `use crate::{NAME, ...}` groups; comments and string literals
/// are not code.
fn references(text: &str) -> Vec<String> {
    let code = strip_comments_and_strings(text);
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = code.len() - rest.len() + at;
        rest = &rest[at + "crate::".len()..];
        // `bootstrap_crate::x` is not `crate::x`.
        if code[..before]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain([',']) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.extend(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            found.extend(ident(rest));
        }
    }
    found
}

fn ident(text: &str) -> Option<String> {
    let name: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && name != "self").then_some(name)
}

fn matching_brace(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// The text with `//` comments and the contents of `"..."` literals blanked (raw
/// strings are rare in src/ and never name modules). Good enough for imports.
fn strip_comments_and_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut escaped = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_string {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => in_string = false,
                    _ => {}
                }
                if !in_string {
                    out.push('"');
                }
                continue;
            }
            match c {
                '/' if chars.peek() == Some(&'/') => break,
                '"' => {
                    in_string = true;
                    out.push('"');
                }
                // A char literal such as '"' must not open a string.
                '\'' => {
                    let lookahead: String = chars.clone().take(3).collect();
                    if lookahead.starts_with("\"'") {
                        chars.next();
                        chars.next();
                    }
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
        out.push('\n');
    }
    out
}

/// A cycle in `graph` as the modules along it (first == last), if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == node).unwrap();
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_string(), Mark::Open);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}
