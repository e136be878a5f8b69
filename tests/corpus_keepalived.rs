//! Real keepalived configurations: every file round-trips byte-exactly through the lexer,
//! and every file that `keepalived --config-test` accepted parses.
//!
//! The third-party corpus lives outside the crate (`../shared/corpus`); Debian's samples
//! come with the keepalived package (`/usr/share/doc/keepalived/samples`). Either may be
//! absent, in which case its part says it was skipped.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vipcheck::config::keepalived::{lexer, parse_file, ParseOptions};

/// `$VIPCHECK_CORPUS`, else `../shared/corpus` from the crate root (a checkout beside the
/// shared directory), else `../../shared/corpus` (a git worktree one level deeper).
fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VIPCHECK_CORPUS") {
        return PathBuf::from(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let near = root.join("../shared/corpus");
    let far = root.join("../../shared/corpus");
    if !near.is_dir() && far.is_dir() {
        far
    } else {
        near
    }
}

const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The keepalived configs among Debian's samples (not the shell scripts).
fn sample_files() -> Vec<PathBuf> {
    files_under(Path::new(SAMPLES))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("keepalived.conf"))
        })
        .collect()
}

fn assert_round_trip(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let text = String::from_utf8(bytes.clone())
        .unwrap_or_else(|_| panic!("{} is not UTF-8", path.display()));
    let tokens = lexer::lex(&text);
    assert_eq!(
        lexer::print(&text, &tokens).as_bytes(),
        &bytes[..],
        "{} does not round-trip",
        path.display()
    );
}

/// `file -> rc` from config_test_keepalived-2.2.7.tsv.
fn config_test_results(corpus: &Path) -> HashMap<String, i32> {
    let tsv = std::fs::read_to_string(corpus.join("config_test_keepalived-2.2.7.tsv"))
        .expect("config_test_keepalived-2.2.7.tsv in the corpus");
    tsv.lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let file = cols.next()?.to_string();
            let rc = cols.next()?.parse().ok()?;
            Some((file, rc))
        })
        .collect()
}

/// The names the corpus index gives a file: `keepalived/X` is `X`; a tree file is
/// `TREE_<path with / as _>` or `TREE_<file name>`.
fn corpus_names(corpus: &Path, path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(corpus).unwrap_or(path);
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.first().map(String::as_str) {
        Some("keepalived") => vec![parts[1..].join("_")],
        Some("keepalived_trees") if parts.len() > 2 => vec![
            format!("{}_{}", parts[1], parts[2..].join("_")),
            format!("{}_{}", parts[1], parts[parts.len() - 1]),
        ],
        _ => vec![],
    }
}

/// Every insertion point is right before a real server's `}`: at the start of the brace's
/// line (after an `@id` prefix, if any, and blanks) or, mid-line, just before it.
fn assert_insertion_points_sit_before_closing_braces(
    doc: &vipcheck::config::keepalived::Document,
) -> usize {
    let mut checked = 0;
    let points = doc
        .services
        .iter()
        .flat_map(|s| &s.real_servers)
        .filter_map(|r| r.insert.as_ref())
        .chain(doc.global_defs.insert.as_ref());
    for ins in points {
        let text = &doc.sources.file(ins.at.file).text;
        let rest = &text[ins.at.start..];
        let rest = if ins.mid_line {
            rest
        } else {
            let rest = match rest.strip_prefix('@') {
                Some(r) => r.trim_start_matches(|c: char| !c.is_whitespace()),
                None => rest,
            };
            rest.trim_start_matches([' ', '\t'])
        };
        assert!(
            rest.starts_with('}'),
            "{}: insertion point at byte {} is not before a '}}'",
            doc.sources.file(ins.at.file).path.display(),
            ins.at.start
        );
        assert!(ins.indent.ends_with([' ', '\t']), "indent {:?}", ins.indent);
        checked += 1;
    }
    checked
}

#[test]
fn debian_samples_round_trip_and_parse() {
    let files = sample_files();
    if !common::require(
        !files.is_empty(),
        &format!("{SAMPLES} not found (Debian package keepalived)"),
    ) {
        return;
    }
    let opts = ParseOptions::default();
    let mut parsed = 0;
    let mut rejected = Vec::new();
    for f in &files {
        assert_round_trip(f);
        match parse_file(f, &opts) {
            Ok(doc) => {
                parsed += 1;
                assert_insertion_points_sit_before_closing_braces(&doc);
            }
            Err(e) => {
                assert!(e.location.is_some(), "{}: unlocated error {e}", f.display());
                rejected.push(format!("{}: {}", f.display(), e.message));
            }
        }
    }
    // Every sample Debian ships is a config keepalived reads: none may be refused.
    assert!(
        rejected.is_empty(),
        "{} of {} Debian samples rejected:\n{}",
        rejected.len(),
        files.len(),
        rejected.join("\n")
    );
    assert_eq!(parsed, files.len());
}

#[test]
fn corpus_round_trips_and_accepted_files_parse() {
    let corpus = corpus_dir();
    if !common::require(
        corpus.join("keepalived").is_dir(),
        &format!("corpus not found at {}", corpus.display()),
    ) {
        return;
    }
    let results = config_test_results(&corpus);
    let mut files = files_under(&corpus.join("keepalived"));
    files.extend(files_under(&corpus.join("keepalived_trees")));
    let opts = ParseOptions::default();
    let (mut parsed, mut rejected, mut round_tripped) = (0, 0, 0);
    let mut insertion_points = 0;
    let mut must_parse_failures = Vec::new();
    let mut accepted_seen = std::collections::BTreeSet::new();
    for f in &files {
        assert_round_trip(f);
        round_tripped += 1;
        let entry = corpus_names(&corpus, f)
            .into_iter()
            .find_map(|n| results.get(&n).map(|&rc| (n, rc)));
        let rc = entry.as_ref().map(|e| e.1);
        if let Some((name, 0)) = &entry {
            accepted_seen.insert(name.clone());
        }
        match parse_file(f, &opts) {
            Ok(doc) => {
                parsed += 1;
                insertion_points += assert_insertion_points_sit_before_closing_braces(&doc);
                // Every file read through includes round-trips too.
                for (_, src) in doc.sources.files() {
                    assert_eq!(
                        lexer::print(&src.text, &lexer::lex(&src.text)),
                        src.text,
                        "{} does not round-trip",
                        src.path.display()
                    );
                }
            }
            Err(e) => {
                rejected += 1;
                assert!(
                    e.location.is_some(),
                    "{}: error without a location: {e}",
                    f.display()
                );
                println!("  rejected (keepalived rc {rc:?}): {e}");
                if rc == Some(0) {
                    must_parse_failures.push(format!("{}: {e}", f.display()));
                }
            }
        }
    }
    let accepted_total = results.values().filter(|&&rc| rc == 0).count();
    println!(
        "corpus: {round_tripped} files round-tripped; parsed {parsed} / rejected-with-location {rejected} / total {}; keepalived-accepted files found {} of {accepted_total}; {insertion_points} insertion points checked",
        files.len(),
        accepted_seen.len()
    );
    assert!(
        must_parse_failures.is_empty(),
        "files keepalived accepts must parse:\n{}",
        must_parse_failures.join("\n")
    );
    assert_eq!(
        accepted_seen.len(),
        accepted_total,
        "every file keepalived accepted should be in the corpus"
    );
}
