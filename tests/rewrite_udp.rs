//! `rewrite --app-check` for UDP services: keepalived's DNS_CHECK (type, name) and
//! UDP_CHECK (payload, require_reply, min/max_reply_length) and ldirectord's
//! `service=dns` (request, receive) become `vipcheck probe --check dns|udp` through the
//! VIP. Golden snapshots of both rewrites, the same configs without `--app-check`, and
//! real keepalived's `--config-test` on the result. The masq (NAT) real servers of an
//! ldirectord UDP virtual get a check of their own (the DNS check at their own address,
//! or a ping), and a dead one fails the generated wrapper.

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
    ldirectord_plan(app_check, "/usr/sbin/vipcheck".into())
        .iter()
        .map(|(name, text)| format!("=== {name}\n{text}"))
        .collect()
}

/// The ldirectord fixture's rewrite with `probe_path`: each wrapper's path and text,
/// then each note as ("note", text).
fn ldirectord_plan(app_check: bool, probe_path: PathBuf) -> Vec<(String, String)> {
    let path = Path::new("ldirectord.cf");
    let text = std::fs::read_to_string(fixture("udp/ldirectord.cf")).unwrap();
    let resolver = OfflineResolver {
        services: Services::parse("domain 53/udp\n"),
        ..Default::default()
    };
    let doc = ldirectord::parse_str(path.to_path_buf(), text, &resolver)
        .unwrap_or_else(|d| panic!("{d}"));
    let opts = GenerateOptions {
        probe_path,
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
    let mut out: Vec<(String, String)> = plan
        .new_files
        .iter()
        .map(|f| (f.path.display().to_string(), f.contents.clone()))
        .collect();
    out.extend(
        plan.skipped
            .iter()
            .map(|d| ("note".to_string(), format!("{d}\n"))),
    );
    out
}

/// The direct DNS check a masq (NAT) real server of the DNS virtual runs, with or
/// without --app-check: to its own address and port, request and receive as for DR.
const MASQ_DNS: &str = "if [ \"$method\" = nat ]; then
    # A masq (NAT) real server holds no VIP: the virtual's DNS check goes to its own
    # address and port, where the director's NAT sends a client's query.
    /usr/sbin/vipcheck probe --method nat --proto udp --timeout 2s --check dns \
     --dns-name=www.example.test --dns-type=A --dns-expect=192.0.2.53 \
     \"$vip\" \"$vport\" \"$rip\" \"$rport\" || exit 1
    exit 0
fi
";

/// ldirectord's UDP fallback for a masq real server of a service the wrapper has no
/// check for.
const MASQ_PING: &str = "if [ \"$method\" = nat ]; then
    # A masq (NAT) real server holds no VIP, and its service has no check here:
    # ldirectord's UDP fallback, a ping of the real server.
    ping -n -q -c 1 -W 3 \"$rip\" >/dev/null 2>&1 || exit 1
    exit 0
fi
";

/// The wrapper of `virtual` (its file name's part, `192.0.2.30-53-udp`) in a rewrite.
fn wrapper<'a>(files: &'a [(String, String)], virtual_: &str) -> &'a str {
    files
        .iter()
        .find(|(name, _)| name.ends_with(&format!("vipcheck-check-{virtual_}.sh")))
        .map(|(_, text)| text.as_str())
        .unwrap_or_else(|| panic!("no wrapper for {virtual_}"))
}

#[test]
fn ldirectord_masq_real_servers_of_udp_virtuals_get_a_check_of_their_own() {
    for app_check in [true, false] {
        let files = ldirectord_plan(app_check, "/usr/sbin/vipcheck".into());
        // The masq real of the DNS virtual: the direct DNS check, in its table as nat.
        let dns = wrapper(&files, "192.0.2.30-53-udp");
        assert!(dns.contains(MASQ_DNS), "app_check {app_check}:\n{dns}");
        assert!(
            dns.contains("198.51.100.13:5353)\n        method=nat "),
            "{dns}"
        );
        // A DNS virtual whose receive is a pattern, and a radius one: a ping.
        for v in ["192.0.2.31-53-udp", "192.0.2.32-1812-udp"] {
            let w = wrapper(&files, v);
            assert!(w.contains(MASQ_PING), "app_check {app_check} {v}:\n{w}");
            assert!(!w.contains("--method nat"), "{w}");
        }
        let notes: Vec<&str> = files
            .iter()
            .filter(|(n, _)| n == "note")
            .map(|(_, t)| t.as_str())
            .collect();
        assert!(
            notes.iter().any(|n| n.contains(
                "virtual 192.0.2.32:1812/udp: the negotiate check of service radius is reduced to \
                 nothing beyond the VIP probe in the wrapper; its masq (NAT) real servers get \
                 ldirectord's UDP fallback, a ping of the real server"
            )),
            "{notes:?}"
        );
        assert!(
            notes.iter().any(|n| n.contains("virtual 192.0.2.31:53/udp")
                && n.contains("its masq (NAT) real servers get ldirectord's UDP fallback, a ping")),
            "{notes:?}"
        );
    }
}

/// A dead masq real server (no route to it, in a namespace with nothing but lo) fails
/// the generated wrapper: the direct DNS check and the ping both run and say why. The
/// wrapper of before exited 0 for it without checking anything.
#[test]
fn ldirectord_wrapper_of_a_dead_masq_server_exits_1() {
    let Some(ns) = common::netns::offline("runs the wrappers in a namespace with no route") else {
        return;
    };
    if tool("ping", "iputils-ping").is_none() {
        return;
    }
    let files = ldirectord_plan(false, env!("CARGO_BIN_EXE_vipcheck").into());
    let dir = tempfile::tempdir().unwrap();
    let run = |virtual_: &str, args: &[&str]| {
        let path = dir.path().join(format!("{virtual_}.sh"));
        std::fs::write(&path, wrapper(&files, virtual_)).unwrap();
        let mut c = ns.command("sh");
        c.arg(&path).args(args);
        common::netns::run_bounded(&mut c, Duration::from_secs(20))
    };
    let o = run(
        "192.0.2.30-53-udp",
        &["192.0.2.30", "53", "198.51.100.13", "5353"],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("down: no route to the real server 198.51.100.13: "),
        "{stderr}"
    );
    let o = run(
        "192.0.2.32-1812-udp",
        &["192.0.2.32", "1812", "198.51.100.14", "1812"],
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
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
    // Without --app-check only the masq real server runs a DNS check of its own (DR and
    // TUN get the probe's `all`, a DNS query on port 53).
    let plain = ldirectord_rewrite(false);
    assert_eq!(plain.matches("--check dns").count(), 1, "{plain}");
    assert!(plain.contains(MASQ_DNS), "{plain}");
    insta::assert_snapshot!("ldirectord_plain", plain);
}
