//! The built `vipcheck` binary, run as a user would in a temp dir.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::{fixture, relative_paths};

fn vipcheck(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vipcheck"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn dir_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    let tmp = tempfile::tempdir().unwrap();
    for sub in [
        "rewrite",
        "probe",
        "appcheck",
        "watch",
        "status",
        "completions",
        "man",
    ] {
        let out = vipcheck(&[sub, "--help"], tmp.path());
        assert_eq!(out.status.code(), Some(0), "{sub}");
        let help = text(&out.stdout);
        assert!(
            help.contains("Example"),
            "{sub} --help has no example:\n{help}"
        );
    }
}

#[test]
fn completions_and_man_page_come_from_the_cli_definitions() {
    let tmp = tempfile::tempdir().unwrap();
    let bash = vipcheck(&["completions", "bash"], tmp.path());
    assert!(
        text(&bash.stdout).contains("rewrite"),
        "bash completion lacks subcommands"
    );
    let man = vipcheck(&["man"], tmp.path());
    let page = text(&man.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH vipcheck"),
        "{page}"
    );
}

#[test]
fn version_names_the_git_revision_it_was_built_from() {
    let tmp = tempfile::tempdir().unwrap();
    let out = vipcheck(&["--version"], tmp.path());
    assert_eq!(out.status.code(), Some(0));
    // What build.rs saw: this checkout's HEAD, or "unknown" where there is no git.
    let rev = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| text(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    assert_eq!(
        text(&out.stdout),
        format!("vipcheck {} (git {rev})\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn man_dir_writes_a_page_per_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let out = vipcheck(&["man", "--dir", "share/man1"], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dir = tmp.path().join("share/man1");
    assert_eq!(
        dir_listing(&dir),
        [
            "vipcheck-agent.1",
            "vipcheck-appcheck.1",
            "vipcheck-completions.1",
            "vipcheck-man.1",
            "vipcheck-probe.1",
            "vipcheck-rewrite.1",
            "vipcheck-status.1",
            "vipcheck-watch.1",
            "vipcheck.1",
        ]
    );
    let probe = fs::read_to_string(dir.join("vipcheck-probe.1")).unwrap();
    assert!(probe.contains(".TH vipcheck-probe 1"), "{probe}");
    assert!(probe.contains("\\fB\\-\\-vip\\fR"), "{probe}");
    let top = fs::read_to_string(dir.join("vipcheck.1")).unwrap();
    assert!(top.contains("vipcheck\\-probe(1)"), "{top}");
}

#[test]
fn dry_run_prints_the_diff_and_exits_1_when_changes_are_pending() {
    let tmp = tempfile::tempdir().unwrap();
    let example = fixture("examples/keepalived.conf");
    let out = vipcheck(
        &[
            "rewrite",
            "--dry-run",
            example.to_str().unwrap(),
            "--probe-path",
            "/usr/sbin/vipcheck",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let diff = text(&out.stdout);
    assert!(diff.contains("+        MISC_CHECK {"), "{diff}");
    assert!(
        diff.contains(
            "misc_path \"/usr/sbin/vipcheck probe --vip 192.0.2.20 --rip 192.0.2.11 --port 80"
        ),
        "{diff}"
    );
    assert!(
        text(&out.stderr).contains("NAT"),
        "the NAT service is listed as skipped"
    );
    assert!(
        !diff.contains("\x1b["),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn in_place_with_backup_then_dry_run_finds_nothing_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("keepalived.conf");
    let original = fs::read_to_string(fixture("rewrite/keepalived/dr_basic.conf")).unwrap();
    fs::write(&conf, &original).unwrap();
    let out = vipcheck(
        &[
            "rewrite",
            "keepalived.conf",
            "--in-place",
            "--backup",
            "--probe-path",
            "/usr/sbin/vipcheck",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        fs::read_to_string(tmp.path().join("keepalived.conf.bak")).unwrap(),
        original
    );
    let rewritten = fs::read_to_string(&conf).unwrap();
    assert_eq!(
        rewritten.matches("# vipcheck:begin").count(),
        3,
        "two checks and global_defs"
    );
    let again = vipcheck(
        &[
            "rewrite",
            "--dry-run",
            "keepalived.conf",
            "--probe-path",
            "/usr/sbin/vipcheck",
        ],
        tmp.path(),
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    assert!(again.stdout.is_empty());
}

#[test]
fn output_to_a_file_leaves_the_source_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("rewrite/keepalived/no_global_defs.conf");
    let before = fs::read_to_string(&src).unwrap();
    let out = vipcheck(
        &[
            "rewrite",
            src.to_str().unwrap(),
            "-o",
            "out.conf",
            "--probe-path",
            "/usr/sbin/vipcheck",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(fs::read_to_string(&src).unwrap(), before);
    let written = fs::read_to_string(tmp.path().join("out.conf")).unwrap();
    assert!(
        written.contains("enable_script_security") && written.contains("MISC_CHECK"),
        "{written}"
    );
}

#[test]
fn bad_config_exits_2_with_a_located_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("keepalived.conf");
    let bad = "virtual_server 192.0.2.20 80 {\n    lb_kind DR\n    real_server 192.0.2.300 80 {\n    }\n}\n";
    fs::write(&conf, bad).unwrap();
    for mode in [
        &["--in-place"][..],
        &["-o", "out.conf"][..],
        &["--dry-run"][..],
    ] {
        let mut args = vec!["rewrite", "keepalived.conf"];
        args.extend_from_slice(mode);
        let out = vipcheck(&args, tmp.path());
        assert_eq!(out.status.code(), Some(2), "{mode:?}");
        let err = relative_paths(&text(&out.stderr), Some(tmp.path()));
        assert!(err.contains("keepalived.conf:3:"), "{mode:?}: {err}");
        assert!(err.contains('^'), "{err}");
        assert_eq!(fs::read_to_string(&conf).unwrap(), bad);
        assert_eq!(dir_listing(tmp.path()), vec!["keepalived.conf"]);
    }
}

#[test]
fn an_unknown_file_name_asks_for_format() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("lvs.txt"), "").unwrap();
    let out = vipcheck(&["rewrite", "--dry-run", "lvs.txt"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--format"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ldirectord_output_to_a_file_puts_the_wrappers_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("ldirectord/web-dr-negotiate.cf");
    let out = vipcheck(
        &[
            "rewrite",
            src.to_str().unwrap(),
            "-o",
            "out.cf",
            "--probe-path",
            "/usr/sbin/vipcheck",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(tmp.path().join("out.cf").is_file(), "out.cf must be a file");
    let written = fs::read_to_string(tmp.path().join("out.cf")).unwrap();
    let wrappers: Vec<String> = dir_listing(tmp.path())
        .into_iter()
        .filter(|n| n.starts_with("vipcheck-check-"))
        .collect();
    assert!(!wrappers.is_empty(), "{:?}", dir_listing(tmp.path()));
    for w in &wrappers {
        let abs = tmp.path().canonicalize().unwrap().join(w);
        assert!(
            written.contains(&format!("checkcommand={}", abs.display())),
            "{written}"
        );
    }
    assert!(
        !text(&out.stderr).contains(" 0 generated check"),
        "{}",
        text(&out.stderr)
    );
}
