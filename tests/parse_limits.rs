//! The keepalived parser on hostile input: braces nested on one line are refused at a
//! fixed depth with a located error, in memory linear in the input; a deep but sane
//! nesting still parses; warnings stay bounded.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vipcheck::config::keepalived::{
    parse_str, parser::MAX_BLOCK_DEPTH, Document, ParseOptions, MAX_WARNINGS,
};
use vipcheck::config::Diagnostic;

fn parse(text: &str) -> Result<Document, Box<Diagnostic>> {
    parse_str(Path::new("nested.conf"), text, &ParseOptions::default()).map_err(Box::new)
}

/// `depth` blocks nested on one line inside `global_defs`.
fn nested(depth: usize) -> String {
    format!(
        "global_defs {{\n    x {}{}\n}}\n",
        "{ y ".repeat(depth - 1),
        "}".repeat(depth - 1)
    )
}

#[test]
fn braces_nested_past_the_limit_are_a_located_error() {
    // 60 KB of `{` on one line.
    let text = format!("{}{}\n", "{".repeat(30_000), "}".repeat(30_000));
    let err = parse(&text).unwrap_err();
    let loc = err.location.as_ref().expect("a location");
    assert_eq!((loc.line, loc.col), (1, MAX_BLOCK_DEPTH + 1), "{err}");
    assert!(err.message.contains("nest more than"), "{err}");
    assert!(err.to_string().contains("nested.conf:1:"), "{err}");
}

#[test]
fn nesting_up_to_the_limit_parses() {
    // global_defs is one level, so `MAX_BLOCK_DEPTH` levels in all.
    let doc = parse(&nested(MAX_BLOCK_DEPTH)).unwrap();
    assert!(doc.global_defs.insert.is_some());
    let err = parse(&nested(MAX_BLOCK_DEPTH + 1)).unwrap_err();
    assert!(err.message.contains("nest more than"), "{err}");
    assert_eq!(err.location.as_ref().map(|l| l.line), Some(2), "{err}");
}

#[test]
fn many_warnings_on_one_line_are_kept_once() {
    // 30,000 `{` without a keyword, each worth a warning that quotes the 60 KB line.
    let text = format!("{}\n", "{}".repeat(30_000));
    let doc = parse(&text).unwrap();
    assert!(
        doc.warnings.len() <= MAX_WARNINGS + 1,
        "{}",
        doc.warnings.len()
    );
    assert!(doc.warnings.len() >= 2, "the first warning and the count");
}

/// Runs the binary on `config` with its address space limited to `limit_mib`.
fn run_limited(config: &Path, limit_mib: u64) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vipcheck"));
    cmd.args(["rewrite", "--dry-run", "--format", "keepalived"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let bytes = limit_mib * 1024 * 1024;
    // SAFETY: the closure only calls setrlimit, which is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{} did not finish", config.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_60_kb_nesting_is_refused_within_a_bounded_address_space() {
    let dir = tempfile::tempdir().unwrap();
    let nest = dir.path().join("nest.conf");
    std::fs::write(
        &nest,
        format!("{}{}\n", "{".repeat(30_000), "}".repeat(30_000)),
    )
    .unwrap();
    let pairs = dir.path().join("pairs.conf");
    std::fs::write(&pairs, format!("{}\n", "{}".repeat(30_000))).unwrap();
    // Before the limit, the nesting took 1.8 GB; 512 MiB of address space holds the
    // binary, its libraries and a parse linear in the 60 KB.
    let out = run_limited(&nest, 512);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nest more than") && err.contains("nest.conf:1:"),
        "{:?}: {}",
        out.status,
        &err[..err.len().min(2000)]
    );
    let out = run_limited(&pairs, 512);
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
