//! Issue 17 on this machine, whose kernel has no IPVS: `vipcheck status --ipvs` says so and
//! exits 2, asks the kernel for no module, and `status` still wants a CONFIG without
//! `--ipvs`; so does `agent --ipvs`. (The audit of a real table runs in the guest: tests/guest_ipvs.rs.)

mod common;

use std::process::{Command, Output};

fn vipcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vipcheck"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn ipvs_in_kernel() -> bool {
    std::path::Path::new("/proc/net/ip_vs").exists()
        || std::fs::read_to_string("/proc/modules")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("ip_vs "))
}

#[test]
fn status_ipvs_without_ipvs_in_the_kernel_says_so_and_exits_2() {
    if !common::skip::require(!ipvs_in_kernel(), "this kernel has IPVS loaded") {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    for args in [
        &["status", "--ipvs"][..],
        &["status", "--ipvs", "--json"],
        &["status", "--ipvs", "--prometheus"],
        // The agent fed by the kernel's table: no table, no agent (nothing written).
        &[
            "agent",
            "--ipvs",
            "--state-dir",
            state_dir,
            "--listen",
            "127.0.0.1:0",
        ],
    ] {
        let out = vipcheck(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("IPVS is not in this kernel") && err.contains("never loads modules"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
    // Nothing was loaded on the way (a by-name family lookup would have asked for
    // net-pf-16-proto-16-family-IPVS; the guest scenario proves the request is not made).
    assert!(!ipvs_in_kernel());
}

#[test]
fn agent_takes_a_config_or_ipvs_not_both() {
    let out = vipcheck(&["agent"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CONFIG"), "{err}");
    let out = vipcheck(&["agent", "keepalived.conf", "--ipvs"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn status_without_config_or_ipvs_is_a_usage_error() {
    let out = vipcheck(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CONFIG") || err.contains("<CONFIG>"), "{err}");
}

#[test]
fn status_config_ipvs_reads_the_config_first() {
    // A config error is reported as such (exit 2) before the kernel is asked.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("keepalived.conf");
    std::fs::write(&bad, "virtual_server 192.0.2.1 80 {\n    lb_kind FNAT\n}\n").unwrap();
    let out = vipcheck(&["status", bad.to_str().unwrap(), "--ipvs"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("keepalived.conf:2:"), "{err}");
    assert!(!err.contains("IPVS is not in this kernel"), "{err}");
}
