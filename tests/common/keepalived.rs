//! The keepalived inputs the rewrite tests share: the rewrite fixtures, and every input
//! the real keepalived accepts (fixtures, Debian's samples, the corpus), judged by
//! `keepalived --config-test`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{corpus_dir, fixture, skip};

/// The keepalived rewrite fixtures: every `.conf` of fixtures/rewrite/keepalived, then the
/// include tree and the example.
pub fn fixture_paths() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixture("rewrite/keepalived"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    paths.sort();
    paths.push(fixture("rewrite/keepalived_tree/keepalived.conf"));
    paths.push(fixture("examples/keepalived.conf"));
    paths
}

/// `keepalived --config-test -f CONFIG`: its exit code and what it printed on stderr.
pub fn config_test(keepalived: &Path, config: &Path) -> (i32, String) {
    let out = Command::new(keepalived)
        .arg("--config-test")
        .arg("-f")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

/// Every input real keepalived accepts: the fixtures, Debian's samples, the corpus.
pub fn accepted_inputs(keepalived: &Path) -> Vec<PathBuf> {
    let mut inputs = fixture_paths();
    let samples = Path::new("/usr/share/doc/keepalived/samples");
    if !samples.is_dir() {
        skip("Debian's keepalived samples are absent: checking without them");
    }
    let mut extra: Vec<PathBuf> = std::fs::read_dir(samples)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("keepalived.conf"))
        })
        .collect();
    match corpus_dir() {
        Some(c) => extra.extend(walk(&c.join("keepalived"))),
        None => skip("../shared/corpus is absent: checking fixtures and samples only"),
    }
    extra.sort();
    inputs.extend(extra);
    inputs.retain(|p| config_test(keepalived, p).0 == 0);
    inputs
}
