//! The released binary (scripts/build-release.sh: glibc linked statically, not
//! position-independent) resolves host names the way the director does: a name from
//! /etc/hosts in an ldirectord config becomes its address. glibc 2.34 and later carry the
//! `files` and `dns` name services inside libc itself, so a static binary needs no NSS
//! module loaded at run time for them.
//!
//! The binary is the one `scripts/test.sh` builds before the tests (as root, for the
//! Debian package); `VIPCHECK_RELEASE_BIN` names another. The lookup runs in a namespace
//! with nothing but lo, with its own /etc/hosts (`ip netns exec` mounts
//! /etc/netns/NAME/hosts over it), so nothing is asked of any resolver.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::netns::{offline, run_bounded};

fn release_binary() -> Option<PathBuf> {
    let path = match std::env::var_os("VIPCHECK_RELEASE_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
            target.join("x86_64-unknown-linux-gnu/release/vipcheck")
        }
    };
    common::require(
        path.is_file(),
        &format!(
            "no release binary at {} (scripts/build-release.sh builds it; scripts/test.sh does as root)",
            path.display()
        ),
    )
    .then_some(path)
}

/// /etc/netns/NAME/: `ip netns exec NAME` mounts its files over /etc. Removed on drop.
struct EtcOverlay(PathBuf);

impl Drop for EtcOverlay {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_static_release_binary_resolves_a_host_name_from_etc_hosts() {
    let Some(ns) = offline("a namespace of its own with its own /etc/hosts") else {
        return;
    };
    let Some(bin) = release_binary() else {
        return;
    };
    let ldd = run_bounded(
        std::process::Command::new("ldd").arg(&bin),
        Duration::from_secs(10),
    );
    let says =
        String::from_utf8_lossy(&ldd.stdout).into_owned() + &String::from_utf8_lossy(&ldd.stderr);
    assert!(says.contains("not a dynamic executable"), "{says}");

    let etc = PathBuf::from("/etc/netns").join(ns.name());
    std::fs::create_dir_all(&etc).expect("create /etc/netns/NAME");
    let _overlay = EtcOverlay(etc.clone());
    std::fs::write(
        etc.join("hosts"),
        "127.0.0.1 localhost\n192.0.2.11 rs-one.vipcheck.test\n2001:db8::b rs-six.vipcheck.test\n",
    )
    .expect("write the namespace's hosts file");
    let dir = tempfile::tempdir().expect("temp dir");
    let cf = dir.path().join("ldirectord.cf");
    std::fs::write(
        &cf,
        "virtual=192.0.2.20:80\n\treal=rs-one.vipcheck.test:80 gate\n\tchecktype=connect\n\n\
         virtual6=[2001:db8::20]:80\n\treal6=rs-six.vipcheck.test:80 gate\n\tchecktype=connect\n",
    )
    .expect("write the config");
    let mut status = ns.command(&bin);
    status
        .arg("status")
        .arg(&cf)
        .args(["--json", "--timeout", "100ms"]);
    let out = run_bounded(&mut status, Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Nothing to reach in here: the pairs are down, but named by their addresses.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON array");
    assert_eq!(rows[0]["rip"], "192.0.2.11", "{rows}");
    assert_eq!(rows[1]["rip"], "2001:db8::b", "{rows}");
}
