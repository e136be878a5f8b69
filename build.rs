//! Records the git revision the binary is built from, for `vipcheck --version`.
//!
//! `VIPCHECK_GIT_REV` wins when set (a build from a tarball can say where it came from);
//! otherwise `git rev-parse --short HEAD`, and "unknown" when there is no git or no
//! repository. Nothing here touches the network.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=VIPCHECK_GIT_REV");
    let rev = std::env::var("VIPCHECK_GIT_REV")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| {
            watch_git_head();
            git(&["rev-parse", "--short", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!(
        "cargo:rustc-env=VIPCHECK_VERSION={} (git {})",
        env!("CARGO_PKG_VERSION"),
        rev.trim()
    );
}

/// Runs git in the crate's directory; `None` when git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// Asks cargo to run this script again when HEAD moves: a checkout changes HEAD itself, a
/// commit changes the branch's ref (loose, or in packed-refs). In a worktree these live in
/// different directories, so git is asked where each one is.
fn watch_git_head() {
    let mut files = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        files.push(branch);
    }
    for file in files {
        if let Some(path) = git(&["rev-parse", "--git-path", &file]) {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
