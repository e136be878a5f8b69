//! The module layering: `cli.rs` converts the command line into the modules' own types,
//! so nothing below it may import it (only `main.rs`, which dispatches, and `cli.rs`).

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The items of a `{...}` group that starts right after `text`'s start, split at its own
/// commas (a nested group is one item).
fn group_items(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0usize, 0usize, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&text[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

/// Whether the text names the `cli` module through the crate root: `crate::cli`,
/// `super::cli` (the only `cli` module is the crate's), or a `crate::{...}` /
/// `super::{...}` group listing `cli` at its top level (white space ignored).
fn mentions_crate_cli(text: &str) -> bool {
    let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if squeezed.contains("crate::cli") || squeezed.contains("super::cli") {
        return true;
    }
    ["crate::{", "super::{"].iter().any(|root| {
        squeezed.match_indices(root).any(|(at, open)| {
            group_items(&squeezed[at + open.len()..])
                .iter()
                .any(|item| {
                    *item == "cli" || item.starts_with("cli::") || item.starts_with("clias")
                })
        })
    })
}

#[test]
fn the_detector_sees_every_way_of_naming_the_cli_module() {
    assert!(mentions_crate_cli("use crate::cli::ProbeArgs;"));
    assert!(mentions_crate_cli("fn f(a: crate :: cli :: WatchArgs) {}"));
    assert!(mentions_crate_cli("use crate::{cli, config};"));
    assert!(mentions_crate_cli("use crate::{config, cli::StatusArgs};"));
    assert!(mentions_crate_cli("use super::cli::AgentArgs;"));
    assert!(mentions_crate_cli("use super::super::{cli, config};"));
    assert!(mentions_crate_cli(
        "use crate::{config::{Format, Protocol}, cli::X};"
    ));
    assert!(mentions_crate_cli("use crate::{cli as c, config};"));
    assert!(!mentions_crate_cli("use crate::{client, config};"));
    assert!(!mentions_crate_cli(
        "use crate::{config::{cli_name, Format}, probe};"
    ));
    assert!(!mentions_crate_cli("use crate::config::cli_name;"));
}

#[test]
fn nothing_below_cli_imports_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "found only {files:?}");
    let offenders: Vec<String> = files
        .iter()
        .filter(|p| {
            let rel = p.strip_prefix(&src).expect("under src/");
            rel != Path::new("cli.rs") && rel != Path::new("main.rs")
        })
        .filter(|p| {
            let text =
                std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            mentions_crate_cli(&text)
        })
        .map(|p| p.strip_prefix(&src).unwrap_or(p).display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "these files under src/ import crate::cli; convert the clap arguments in cli.rs \
         into the module's own types instead: {offenders:?}"
    );
}
