//! `rewrite --app-check` for UDP services: keepalived's DNS_CHECK (type, name) and
//! UDP_CHECK (payload, require_reply, min/max_reply_length) and ldirectord's
//! `service=dns` (request, receive) become `vipcheck probe --check dns|udp` through the
//! VIP. Golden snapshots of both rewrites, the same configs without `--app-check`, and
//! real keepalived's `--config-test` on the result.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{fixture, relative_paths, tool};
use vipcheck::config::ldirectord::{self, OfflineResolver, Services};
use vipcheck::config::Format;
use vipcheck::generate::Generator;
use vipcheck::rewrite::{plan, GenerateOptions, Plan};

fn keepalived_plan(app_check: bool) -> Plan {
    let mut opts = GenerateOptions::new(PathBuf::from("/usr/sbin/vipcheck"));
    opts.app_check = app_check;
    let path = fixture("udp/keepalived.conf");
    let path = path
        .strip_prefix(common::crate_dir())
        .unwrap_or(&path)
        .to_path_buf();
    plan(&path, Format::Keepalived, &opts).unwrap_or_else(|e| panic!("{e}"))
}

fn report(plan: &Plan) -> String {
    let mut out = String::new();
    for note in &plan.skipped {
        out.push_str(&note.to_string());
        out.push('\n');
    }
    out.push_str(&format!("generated checks: {}\n", plan.checks));
    out.push_str(&plan.unified_diff(false));
    relative_paths(&out, None)
}

#[test]
fn keepalived_dns_and_udp_checks_run_through_the_vip() {
    let plan = keepalived_plan(true);
    let text = plan.new_text(vipcheck::config::FileId(0));
    for line in [
        "--port 53 --proto udp --method dr --timeout 2s --check dns --dns-name=www.example.test \
         --dns-type=A\"",
        "--rip 192.0.2.12 --port 53 --proto udp --method dr --timeout 2s --check dns\"",
        "--rip 192.0.2.11 --port 514 --proto udp --method dr --timeout 2s --check udp \
         --udp-payload=3c31333e74657374 --udp-expect-len=1-64\"",
        "--rip 192.0.2.12 --port 514 --proto udp --method dr --timeout 2s --check udp \
         --udp-payload=00\"",
        "--rip 192.0.2.13 --port 514 --proto udp --method dr --timeout 2s\"",
        "--method tun --timeout 2s --check dns --dns-name=www.example.test --dns-type=AAAA\"",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    // The reply data of require_reply cannot be checked: a warning naming the line.
    let notes: Vec<String> = plan.skipped.iter().map(|d| d.to_string()).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("require_reply with reply data (6f6b)")
                && n.contains("keepalived.conf:42:9")),
        "{notes:?}"
    );
    insta::assert_snapshot!("keepalived_app_check", report(&plan));
    // Without --app-check: the plain probe (port 53 still gets a DNS query under `all`).
    let plain = keepalived_plan(false);
    let plain_text = plain.new_text(vipcheck::config::FileId(0));
    assert!(!plain_text.contains("--check"), "{plain_text}");
    let Some(keepalived) = tool("keepalived", "keepalived") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keepalived.conf");
    std::fs::write(&out, &text).unwrap();
    let o = Command::new(keepalived)
        .args(["--config-test", "-f"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn ldirectord_rewrite(app_check: bool) -> String {
    let path = Path::new("ldirectord.cf");
    let text = std::fs::read_to_string(fixture("udp/ldirectord.cf")).unwrap();
    let resolver = OfflineResolver {
        services: Services::parse("domain 53/udp\n"),
        ..Default::default()
    };
    let doc = ldirectord::parse_str(path.to_path_buf(), text, &resolver)
        .unwrap_or_else(|d| panic!("{d}"));
    let opts = GenerateOptions {
        probe_path: "/usr/sbin/vipcheck".into(),
        probe_timeout: Duration::from_secs(2),
        fwmark_vips: BTreeMap::new(),
        templates: None,
        config_id: None,
        output_dir: Some("/etc/ha.d".into()),
        app_check,
        feed: vipcheck::rewrite::Feed::Probe,
    };
    let gen = Generator::new(None).unwrap();
    let plan =
        vipcheck::rewrite::ldirectord::plan(&doc, &gen, &opts).unwrap_or_else(|e| panic!("{e}"));
    let mut report = String::new();
    for f in &plan.new_files {
        report.push_str(&format!("=== {}\n{}", f.path.display(), f.contents));
    }
    for d in &plan.skipped {
        report.push_str(&format!("=== note\n{d}\n"));
    }
    report
}

#[test]
fn ldirectord_service_dns_runs_through_the_vip() {
    let report = ldirectord_rewrite(true);
    assert!(
        report.contains(
            "--check dns --dns-name=www.example.test --dns-type=A --dns-expect=192.0.2.53 \
             \"$vip\" \"$vport\" \"$rip\" \"$rport\" || exit 1"
        ),
        "{report}"
    );
    assert!(
        report.contains("receive \"192\\\\.0\\\\.2\\\\.5[0-9]\" is a regular expression"),
        "{report}"
    );
    insta::assert_snapshot!("ldirectord_app_check", report);
    let plain = ldirectord_rewrite(false);
    assert!(!plain.contains("--check dns"), "{plain}");
}
