//! Fixture paths, the corpus beside the checkout, and machine-independent text for
//! snapshots.

use std::path::{Path, PathBuf};

pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    crate_dir().join("fixtures").join(rel)
}

/// `../shared/corpus`, when this checkout has it beside it.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = crate_dir().join("../shared/corpus");
    dir.is_dir().then_some(dir)
}

/// Replaces absolute paths of this checkout (and of temp dirs) so snapshots do not depend
/// on where the tests run.
pub fn relative_paths(text: &str, temp: Option<&Path>) -> String {
    let krate = crate_dir().display().to_string();
    // Diff headers put `a`/`b` right before an absolute path.
    let mut out = text
        .replace(&format!("--- a{krate}/"), "--- a/")
        .replace(&format!("+++ b{krate}/"), "+++ b/");
    out = out.replace(&format!("{krate}/"), "");
    if let Some(t) = temp {
        out = out.replace(&t.display().to_string(), "$TMP");
    }
    out
}
