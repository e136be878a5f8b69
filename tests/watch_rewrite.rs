//! The watcher with the real rewrite engine on keepalived configs: in place (its own
//! writes not acted on) and into an output tree (includes added and removed), validated
//! by the real `keepalived --config-test` when it is installed, reloading a stand-in daemon.

mod common;
mod watch_support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use clap::Parser;
use vipcheck::cli::{Cli, Command};
use vipcheck::config::Format;
use vipcheck::rewrite::RewriteError;
use vipcheck::watch::{
    find_program, Regenerate, Regenerated, Report, RewriteRegenerator, Validation,
};
use watch_support::*;

/// Counts the passes of the real regenerator.
struct Counting(RewriteRegenerator, Arc<AtomicUsize>);

impl Regenerate for Counting {
    fn regenerate(&mut self) -> Result<Regenerated, RewriteError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.regenerate()
    }
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn regenerator(args: &[&str], config: &Path) -> (Counting, Arc<AtomicUsize>) {
    let mut argv = vec!["vipcheck", "watch"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let Command::Watch(args) = cli.command else {
        unreachable!()
    };
    let regen = RewriteRegenerator::from_args(&args, Format::Keepalived, config).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    (Counting(regen, calls.clone()), calls)
}

fn validation() -> Validation {
    match find_program("keepalived") {
        Some(program) => Validation::Keepalived {
            program,
            config_id: None,
        },
        None => {
            common::skip(
                "keepalived is not installed (Debian package keepalived): running without validation",
            );
            Validation::None
        }
    }
}

fn checks_for(text: &str, rip: &str) -> usize {
    text.matches(&format!("--rip {rip} ")).count()
}

#[test]
fn in_place_rewrite_reloads_once_and_ignores_its_own_writes() {
    let (_tmp, dir) = tempdir();
    let config = dir.join("keepalived.conf");
    std::fs::copy(fixture("rewrite/keepalived/dr_basic.conf"), &config).unwrap();
    let (regen, calls) = regenerator(
        &[
            config.to_str().unwrap(),
            "--in-place",
            "--probe-path",
            "/usr/local/bin/vipcheck",
        ],
        &config,
    );
    let daemon = StandIn::start(&dir);
    let mut h = Harness::start_with(
        regen,
        config.clone(),
        calls,
        validation(),
        daemon.reload(),
        true,
    );
    // The first pass added the checks in place and reloaded.
    assert_eq!(count(&h.seen, is_regenerated), 1, "{:#?}", h.seen);
    assert_eq!(count(&h.seen, is_reloaded), 1, "{:#?}", h.seen);
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(checks_for(&text, "192.0.2.11"), 1, "{text}");
    assert_eq!(checks_for(&text, "192.0.2.12"), 1, "{text}");
    let q = h.quiet();
    assert_eq!(count(&q, is_change), 0, "own write acted on: {q:#?}");
    assert_eq!(h.calls(), 1);
    assert_eq!(daemon.wait_hups(1), 1);

    // The operator adds a real server.
    let last_brace = text.rfind('}').unwrap();
    let edited = format!(
        "{}    real_server 192.0.2.13 80 {{\n        weight 1\n    }}\n}}\n",
        &text[..last_brace]
    );
    save_by_rename(&config, &edited);
    h.expect(is_reloaded);
    let q = h.quiet();
    assert_eq!(count(&q, is_change), 0, "own write acted on: {q:#?}");
    assert_eq!(h.calls(), 2);
    assert_eq!(daemon.wait_hups(2), 2);
    let text = std::fs::read_to_string(&config).unwrap();
    for rip in ["192.0.2.11", "192.0.2.12", "192.0.2.13"] {
        assert_eq!(checks_for(&text, rip), 1, "{rip}: {text}");
    }
}

#[test]
fn output_tree_follows_include_files_added_and_removed() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("src");
    copy_tree(&fixture("rewrite/keepalived_tree"), &src);
    let config = src.join("keepalived.conf");
    let out = dir.join("out");
    let (regen, calls) = regenerator(
        &[
            config.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--probe-path",
            "/usr/local/bin/vipcheck",
        ],
        &config,
    );
    let daemon = StandIn::start(&dir);
    let mut h = Harness::start_with(
        regen,
        config.clone(),
        calls,
        validation(),
        daemon.reload(),
        false,
    );
    assert_eq!(count(&h.seen, is_reloaded), 1, "{:#?}", h.seen);
    assert!(out.join("keepalived.conf").is_file());
    assert!(out.join("conf.d/10-web.conf").is_file());
    assert_eq!(daemon.wait_hups(1), 1);

    // A new include file: its service gets checks in the output tree.
    std::fs::write(
        src.join("conf.d/30-new.conf"),
        "virtual_server 192.0.2.30 80 {\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n    \
         real_server 192.0.2.31 80 {\n        weight 1\n    }\n}\n",
    )
    .unwrap();
    h.expect(is_reloaded);
    h.quiet();
    assert_eq!(daemon.wait_hups(2), 2);
    let new = std::fs::read_to_string(out.join("conf.d/30-new.conf")).unwrap();
    assert_eq!(checks_for(&new, "192.0.2.31"), 1, "{new}");

    // The include file removed: gone from the output tree too (keepalived's glob there
    // would still read it).
    std::fs::remove_file(src.join("conf.d/30-new.conf")).unwrap();
    h.expect(is_reloaded);
    h.quiet();
    assert_eq!(daemon.wait_hups(3), 3);
    assert!(!out.join("conf.d/30-new.conf").exists());
    assert!(out.join("conf.d/10-web.conf").is_file());
    assert_eq!(
        count(&h.seen, |r| matches!(r, Report::ValidationFailed(_))),
        0
    );
}
