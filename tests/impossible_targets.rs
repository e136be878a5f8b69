//! VIPs and real servers that cannot be right (the wildcard, broadcast, multicast and
//! loopback addresses; direct routing between address families) are refused before
//! anything runs: `rewrite` and `status` exit 2 naming file and line, and write nothing.

mod common;

use std::process::Command;

fn vipcheck(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vipcheck"))
        .args(args)
        .output()
        .expect("run vipcheck");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture(name: &str) -> String {
    common::fixture(&format!("targets/{name}"))
        .display()
        .to_string()
}

#[test]
fn keepalived_targets_that_cannot_be_right_are_refused_with_file_and_line() {
    let conf = fixture("impossible.conf");
    for cmd in [&["rewrite", "--dry-run"][..], &["status"]] {
        let mut args = cmd.to_vec();
        args.push(&conf);
        let (code, stderr) = vipcheck(&args);
        assert_eq!(code, 2, "{cmd:?}: {stderr}");
        for (line, says) in [
            (2, "VIP 0.0.0.0 is the unspecified address"),
            (
                15,
                "real server 2001:db8::b and VIP 192.0.2.20 are of different address families",
            ),
            (18, "real server 127.0.0.1 is a loopback address"),
        ] {
            assert!(
                stderr.contains(&format!("impossible.conf:{line}:")) && stderr.contains(says),
                "{cmd:?}: expected line {line} {says:?} in:\n{stderr}"
            );
        }
        // The NAT service's loopback real server is not a DR/TUN target.
        assert!(!stderr.contains("impossible.conf:28:"), "{stderr}");
    }
}

#[test]
fn ldirectord_targets_that_cannot_be_right_are_refused_with_file_and_line() {
    let cf = fixture("impossible.cf");
    let out = tempfile::tempdir().expect("temp dir");
    let out_cf = out.path().join("ldirectord.cf");
    let out_arg = out_cf.display().to_string();
    for cmd in [&["rewrite", "-o", &out_arg][..], &["status"]] {
        let mut args = cmd.to_vec();
        args.push(&cf);
        let (code, stderr) = vipcheck(&args);
        assert_eq!(code, 2, "{cmd:?}: {stderr}");
        assert!(
            stderr.contains("impossible.cf:2:")
                && stderr.contains("VIP 224.0.0.5 is a multicast address"),
            "{stderr}"
        );
        assert!(
            stderr.contains("impossible.cf:9:")
                && stderr.contains("real server 255.255.255.255 is the broadcast address"),
            "{stderr}"
        );
    }
    // Nothing was written.
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}
