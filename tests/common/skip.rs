//! The one rule for a test that needs something this machine may lack (root, a tool such
//! as keepalived, ldirectord or qemu, the corpus, Debian's sample configs): it says
//! `skipped: <why>` and returns, or fails when `VIPCHECK_REQUIRE_PRIVILEGED=1` (CI), so a
//! run that needs every test never passes by skipping one. Every skip goes through here.

#![allow(dead_code)]

/// The env var that turns a skip into a failure (CI sets it).
pub const REQUIRE_ENV: &str = "VIPCHECK_REQUIRE_PRIVILEGED";

/// True when `ok`. Otherwise skips: prints `skipped: <why>` and returns false, or panics
/// with `why` when `VIPCHECK_REQUIRE_PRIVILEGED=1`.
#[track_caller]
pub fn require(ok: bool, why: &str) -> bool {
    if ok {
        return true;
    }
    skip(why);
    false
}

/// Skips unconditionally (the caller returns right after): prints `skipped: <why>`, or
/// panics when `VIPCHECK_REQUIRE_PRIVILEGED=1`.
#[track_caller]
pub fn skip(why: &str) {
    if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("cannot skip under {REQUIRE_ENV}=1: {why}");
    }
    eprintln!("skipped: {why}");
}

/// True when this process runs as root; otherwise skips with `needs root (<why>)`.
#[track_caller]
pub fn root(why: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    require(
        unsafe { libc::geteuid() } == 0,
        &format!("needs root ({why})"),
    )
}

/// `program` from PATH (or the sbin directories), if it is installed.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(std::path::PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `program` from PATH (or the sbin directories), or a skip naming the Debian package.
#[track_caller]
pub fn tool(program: &str, package: &str) -> Option<std::path::PathBuf> {
    let found = which(program);
    require(
        found.is_some(),
        &format!("{program} is not installed (Debian package {package})"),
    );
    found
}

/// True when every `(program, Debian package)` is installed; otherwise one skip naming
/// the missing ones and their packages.
#[track_caller]
pub fn tools(needed: &[(&str, &str)]) -> bool {
    let missing: Vec<String> = needed
        .iter()
        .filter(|(program, _)| which(program).is_none())
        .map(|(program, package)| format!("{program} (Debian package {package})"))
        .collect();
    require(
        missing.is_empty(),
        &format!("not installed: {}", missing.join(", ")),
    )
}
