//! Shared by the guest test targets (`tests/guest_*.rs`): decides whether the qemu guest
//! can run here, prepares it (`tests/guest/setup.sh`), boots it with one scenario script
//! (`tests/guest/run.sh`) and reads the scenario's `PASS:` / `FAIL:` lines from the console.

#![allow(dead_code)] // each test target uses a different part

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../common/skip.rs"]
mod skip;

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn guest_dir() -> PathBuf {
    crate_dir().join("tests").join("guest")
}

/// The vipcheck binary the guest runs from the shared root: `VIPCHECK_GUEST_BIN` when set
/// (scripts/test.sh sets it to the release binary it has just built from the same tree:
/// under qemu's emulation a debug probe costs about 0.5 s of CPU, enough for keepalived's
/// MISC_CHECKs to time out when the host is busy), else the one cargo built for this run.
pub fn vipcheck_bin() -> PathBuf {
    std::env::var_os("VIPCHECK_GUEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vipcheck")))
}

fn in_path(program: &str) -> bool {
    skip::which(program).is_some()
}

/// Why the guest cannot run on this machine, if it cannot.
pub fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (qemu guest with network namespaces and IPVS)".into());
    }
    if !in_path("qemu-system-x86_64") {
        return Some("qemu-system-x86_64 not found (apt-get install qemu-system-x86)".into());
    }
    if !Path::new("/usr/lib/qemu/virtiofsd").is_file() {
        return Some("/usr/lib/qemu/virtiofsd not found (apt-get install qemu-system-x86)".into());
    }
    let built = guest_dir().join("work/initramfs.gz").is_file();
    if !in_path("apt-get") && !built {
        return Some("no apt-get to fetch the guest kernel".into());
    }
    if !built && !Path::new("/bin/busybox").is_file() {
        return Some(
            "no busybox for the guest's initramfs (apt-get install busybox-static)".into(),
        );
    }
    None
}

/// True when the test should go on; false (after printing why) when it should skip.
/// Panics instead of skipping when VIPCHECK_REQUIRE_PRIVILEGED=1 (the one skip rule).
#[track_caller]
pub fn guest_available() -> bool {
    match missing_prerequisite() {
        None => true,
        Some(reason) => skip::require(false, &format!("the qemu guest cannot run: {reason}")),
    }
}

/// What one guest boot produced.
pub struct GuestRun {
    /// The scenario's exit status (124: guest timed out, 125: no status reported).
    pub status: Option<i32>,
    /// The guest console, timestamped by the runner, then the runner's own messages.
    pub console: String,
}

impl GuestRun {
    /// The lines the scenario marked as passed checks, without the `PASS: ` prefix.
    pub fn passes(&self) -> Vec<&str> {
        self.marked("PASS: ")
    }

    pub fn failures(&self) -> Vec<&str> {
        self.marked("FAIL: ")
    }

    fn marked(&self, tag: &str) -> Vec<&str> {
        self.console
            .lines()
            .filter_map(|line| line.find(tag).map(|i| &line[i + tag.len()..]))
            .collect()
    }

    /// Asserts that the scenario exited 0, reported no failure, and reported each of
    /// `expected` as passed (each is a prefix of a PASS line), so a scenario that silently
    /// skipped a check does not count as green.
    pub fn assert_passed(&self, expected: &[&str]) {
        let failures = self.failures();
        assert!(
            failures.is_empty(),
            "the guest scenario reported failures:\n  {}",
            failures.join("\n  ")
        );
        let passes = self.passes();
        let missing: Vec<&&str> = expected
            .iter()
            .filter(|want| !passes.iter().any(|p| p.starts_with(**want)))
            .collect();
        assert!(
            missing.is_empty(),
            "the guest scenario did not report these checks as passed: {missing:?}"
        );
        assert_eq!(self.status, Some(0), "the guest scenario's exit status");
    }
}

/// Prepares the guest (cached) and runs `scenario` (a path relative to tests/guest/) in it
/// with `args`. Variables in `env` are passed to the scenario (names must start with
/// VIPCHECK_). The console is printed (cargo shows it for a failing test).
pub fn run_scenario(
    scenario: &str,
    args: &[&str],
    env: &[(&str, &str)],
    timeout_s: u32,
) -> GuestRun {
    let setup = Command::new(guest_dir().join("setup.sh"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run tests/guest/setup.sh: {e}"));
    assert!(
        setup.status.success(),
        "tests/guest/setup.sh failed:\n{}{}",
        String::from_utf8_lossy(&setup.stdout),
        String::from_utf8_lossy(&setup.stderr)
    );

    let mut cmd = Command::new(guest_dir().join("run.sh"));
    cmd.arg("--timeout")
        .arg(timeout_s.to_string())
        .arg(guest_dir().join(scenario))
        .args(args)
        .current_dir(crate_dir())
        .env("VIPCHECK_BIN", vipcheck_bin());
    for (name, value) in env {
        assert!(
            name.starts_with("VIPCHECK_"),
            "guest env {name} must start with VIPCHECK_"
        );
        cmd.env(name, value);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run tests/guest/run.sh: {e}"));
    let console = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("---- guest console ({scenario}) ----\n{console}---- end of guest console ----");
    GuestRun {
        status: out.status.code(),
        console,
    }
}
