//! What vipcheck says, run as a user would: the parser's warnings are printed once and
//! located, a bad option is a usage error (exit 2, never a verdict), and text from the
//! config reaches the terminal with its control characters escaped.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use vipcheck::config::{ForwardingMethod, Protocol};
use vipcheck::status::{render_table, Outcome, Pair};

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

/// A config whose parse warns four ways, read through two `@id` branches (so every shared
/// line is met twice): a service without `protocol`, an include matching nothing, an
/// include that is a directory, and one that is a symlink loop.
fn warning_tree(dir: &Path) {
    std::fs::create_dir(dir.join("conf.d")).unwrap();
    std::os::unix::fs::symlink("loop.conf", dir.join("loop.conf")).unwrap();
    std::fs::write(
        dir.join("keepalived.conf"),
        "@lb-a global_defs {\n@lb-a     router_id A\n@lb-a }\n\
         include nothing-*.conf\n\
         include conf.d\n\
         include loop.conf\n\
         virtual_server 192.0.2.20 80 {\n    lb_kind NAT\n    real_server 192.0.2.11 80 {\n        weight 1\n    }\n}\n",
    )
    .unwrap();
}

fn assert_each_warning_once(err: &str) {
    for (what, at) in [
        (
            "no protocol set; keepalived 2.2 makes this service UDP",
            "keepalived.conf:7:1",
        ),
        (
            "include 'nothing-*.conf' matches no file",
            "keepalived.conf:4:1",
        ),
        ("conf.d' is a directory", "keepalived.conf:5:1"),
        ("loop.conf' (", "keepalived.conf:6:1"),
    ] {
        assert_eq!(err.matches(what).count(), 1, "{what}:\n{err}");
        let after = &err[err.find(what).unwrap()..];
        let location = after.lines().nth(1).unwrap_or("");
        assert!(
            location.trim_start().starts_with("-->") && location.ends_with(at),
            "{what} is not located at {at}:\n{err}"
        );
    }
}

#[test]
fn parser_warnings_are_printed_once_with_their_location() {
    let tmp = tempfile::tempdir().unwrap();
    warning_tree(tmp.path());
    let out = vipcheck(
        &[
            "rewrite",
            "keepalived.conf",
            "--dry-run",
            "--config-id",
            "lb-a",
        ],
        tmp.path(),
    );
    assert!(
        out.status.code().is_some_and(|c| c < 2),
        "{}",
        text(&out.stderr)
    );
    assert_each_warning_once(&text(&out.stderr));
    // status reads the config the same way (NAT only: nothing is probed).
    let out = vipcheck(
        &["status", "keepalived.conf", "--config-id", "lb-a"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_each_warning_once(&text(&out.stderr));
}

#[test]
fn an_invalid_option_is_a_usage_error_never_a_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    // A DR pair for rewrite; status reads a NAT-only config, so even a run that got past
    // its options sends nothing anywhere (it would print "0 of 0 pairs up" and exit 0).
    std::fs::write(
        tmp.path().join("keepalived.conf"),
        "virtual_server 192.0.2.20 80 {\n    lb_kind DR\n    protocol TCP\n    real_server 192.0.2.11 80 {\n    }\n}\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("nat.conf"),
        "virtual_server 192.0.2.20 80 {\n    lb_kind NAT\n    protocol TCP\n    real_server 192.0.2.11 80 {\n    }\n}\n",
    )
    .unwrap();
    let sentence = "is not a duration from 1ms to 1h";
    for (option, value, extra) in [
        ("--timeout", "0", &["status"][..]),
        ("--timeout", "0", &["status", "--prometheus"]),
        ("--timeout", "0", &["status", "--json"]),
        ("--timeout", "2h", &["status"]),
        ("--timeout", "soon", &["status"]),
        ("--probe-timeout", "0", &["rewrite", "--dry-run"]),
        ("--probe-timeout", "90m", &["rewrite", "--dry-run"]),
        ("--debounce", "0", &["watch", "--in-place", "--once"]),
        ("--parallel", "0", &["status"]),
    ] {
        let config = if extra[0] == "status" {
            "nat.conf"
        } else {
            "keepalived.conf"
        };
        let mut args = vec![extra[0], config];
        args.extend(&extra[1..]);
        args.extend([option, value]);
        let out = vipcheck(&args, tmp.path());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} gave a verdict: {}",
            text(&out.stdout)
        );
        assert!(err.contains(option), "{args:?}: {err}");
        if option != "--parallel" {
            assert!(err.contains(sentence), "{args:?}: {err}");
        }
    }
    // The probe (and appcheck) never exit 2..255: keepalived's misc_dynamic reads those as
    // "up". Their bad arguments are a "down" (1), with the same sentence.
    for args in [
        &[
            "probe",
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--timeout",
            "0",
        ][..],
        &[
            "probe",
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--timeout",
            "2h",
        ],
        &[
            "appcheck",
            "--iface",
            "lo",
            "--src",
            "127.0.0.1",
            "--next-hop-mac",
            "02:00:00:00:00:01",
            "--rip",
            "127.0.0.1",
            "--vip",
            "127.0.0.1",
            "--port",
            "80",
            "--timeout",
            "0",
        ],
    ] {
        let out = vipcheck(args, tmp.path());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(sentence), "{args:?}: {err}");
    }
    // A usage error clap finds (a missing option) is a "down" too.
    let out = vipcheck(&["appcheck", "--timeout", "1s"], tmp.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // The edges of the range are taken.
    for t in ["1ms", "1h", "60m", "3600"] {
        let out = vipcheck(
            &[
                "rewrite",
                "keepalived.conf",
                "--dry-run",
                "--probe-timeout",
                t,
            ],
            tmp.path(),
        );
        assert_eq!(out.status.code(), Some(1), "{t}: {}", text(&out.stderr));
    }
}

#[test]
fn backup_without_in_place_and_parallel_zero_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = "virtual_server 192.0.2.20 80 {\n    lb_kind DR\n    protocol TCP\n    real_server 192.0.2.11 80 {\n    }\n}\n";
    std::fs::write(tmp.path().join("keepalived.conf"), config).unwrap();
    for args in [
        &["rewrite", "keepalived.conf", "--backup", "-o", "out.conf"][..],
        &["rewrite", "keepalived.conf", "--backup", "--dry-run"],
        &["rewrite", "keepalived.conf", "--backup"],
    ] {
        let out = vipcheck(args, tmp.path());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("--backup") && err.contains("--in-place"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
    assert!(!tmp.path().join("out.conf").exists());
    // (NAT only: even a run that ignored the option would send nothing.)
    let nat = config.replace("lb_kind DR", "lb_kind NAT");
    std::fs::write(tmp.path().join("nat.conf"), nat).unwrap();
    let out = vipcheck(&["status", "nat.conf", "--parallel", "0"], tmp.path());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--parallel") && err.contains("1 or more"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("keepalived.conf")).unwrap(),
        config
    );
}

/// True when `s` holds a control character other than a line feed.
fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n')
}

#[test]
fn control_characters_from_the_config_are_escaped_in_messages() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("keepalived.conf"),
        "include \"x\x07\x1b]0;owned\x07-*.conf\"\n\
         virtual_server group web\x1b[2J\r {\n    lb_kind DR\n    protocol TCP\n    real_server 192.0.2.11 80 {\n    }\n}\n",
    )
    .unwrap();
    let out = vipcheck(&["rewrite", "keepalived.conf", "--dry-run"], tmp.path());
    let err = text(&out.stderr);
    assert!(err.contains("matches no file"), "{err}");
    assert!(err.contains("web\\x1b[2J"), "{err}");
    assert!(err.contains("x\\x07\\x1b]0;owned\\x07-*.conf"), "{err}");
    assert!(
        !has_control(&err),
        "raw control characters on stderr: {err:?}"
    );
}

#[test]
fn control_characters_in_names_are_escaped_in_a_diff_for_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "k\x1b]0;owned\x07.conf";
    std::fs::write(
        tmp.path().join(name),
        "virtual_server 192.0.2.20 80 {\n    lb_kind DR\n    protocol TCP\n    # note\x1b[2J\n    real_server 192.0.2.11 80 {\n    }\n}\n",
    )
    .unwrap();
    let args = [
        "rewrite",
        name,
        "--format",
        "keepalived",
        "--dry-run",
        "--probe-path",
        "/usr/sbin/vipcheck",
    ];
    // Coloured for a terminal: only the diff's own colour codes stay.
    let out = vipcheck(&[&args[..], &["--color", "always"]].concat(), tmp.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let diff = text(&out.stdout);
    let mut plain = diff.clone();
    for code in ["\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[36m", "\x1b[0m"] {
        plain = plain.replace(code, "");
    }
    assert!(
        !has_control(&plain),
        "raw control characters in the diff: {diff:?}"
    );
    assert!(plain.contains("k\\x1b]0;owned\\x07.conf"), "{plain}");
    assert!(plain.contains("# note\\x1b[2J"), "{plain}");
    // Into a pipe without colour the diff keeps the exact bytes (for `patch`).
    let out = vipcheck(&[&args[..], &["--color", "never"]].concat(), tmp.path());
    assert!(text(&out.stdout).contains("# note\x1b[2J"));
}

#[test]
fn control_characters_in_names_are_escaped_in_the_status_table() {
    let pair = Pair {
        service: "group web\x1b[2J\r".into(),
        vip: "192.0.2.20".parse().unwrap(),
        port: Some(80),
        proto: Protocol::Tcp,
        rip: "192.0.2.11".parse().unwrap(),
        method: ForwardingMethod::DirectRouting,
        config_checks: vec!["HTTP_GET".into()],
        interval: None,
        tunnel: Default::default(),
        udp: Default::default(),
    };
    let outcome = Outcome {
        up: false,
        reason: "unknown interface eth\x07".into(),
        latency: Some(Duration::from_millis(1)),
    };
    let table = render_table(&[pair], &[outcome], false);
    assert!(!has_control(&table), "{table:?}");
    assert!(table.contains("group web\\x1b[2J\\r"), "{table}");
    assert!(table.contains("unknown interface eth\\x07"), "{table}");
}
