//! The Debian package, installed for real on this machine: `scripts/build-deb.sh` builds it
//! (or `VIPCHECK_DEB` names one already built), `dpkg -i` installs it, and the test checks
//! the file capabilities, man pages, completions, units and docs where Debian expects them,
//! that lintian finds no error (and no warning the README does not explain), that an
//! unprivileged user's probe is up thanks to the file capabilities alone, and that
//! `dpkg --purge` removes every file the package installed.
//!
//! Needs root (prints "skipped: needs root (...)" otherwise, unless
//! VIPCHECK_REQUIRE_PRIVILEGED=1). It refuses to run when vipcheck is already installed,
//! so it never replaces an operator's copy, and purges on the way out, also on failure.
//! Everything dpkg does is in one test function, and a lock file keeps two runs (two
//! checkouts, two `cargo test`s) from installing at the same time: dpkg allows one writer.
//! The postinst's message for a file system without capabilities is tested on its own.

mod common;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::net::{IpAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::netns::{privileged, run_bounded, Lan, Netns};

const BIN: &str = "/usr/bin/vipcheck";
const NOBODY: [&str; 3] = ["--reuid=65534", "--regid=65534", "--clear-groups"];
const VIP: &str = "192.0.2.20";
const PROBE: [&str; 6] = ["--vip", VIP, "--rip", "192.0.2.11", "--port", "80"];
const UNITS: [&str; 4] = [
    "vipcheck-watch.service",
    "vipcheck-rewrite.path",
    "vipcheck-rewrite.service",
    "vipcheck-agent.service",
];
/// Where deb-systemd-helper keeps what it knows of each unit.
const HELPER_RECORDS: &str = "/var/lib/systemd/deb-systemd-helper-enabled";
/// The link `systemctl enable vipcheck-watch` makes (its unit says WantedBy=multi-user.target).
const ENABLE_LINK: &str = "/etc/systemd/system/multi-user.target.wants/vipcheck-watch.service";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(cmd: &mut Command, limit: Duration) -> Output {
    run_bounded(cmd, limit)
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs dpkg, waiting (bounded) while another program holds dpkg's lock.
fn dpkg(args: &[&str]) -> Output {
    let start = Instant::now();
    loop {
        let out = run(Command::new("dpkg").args(args), Duration::from_secs(300));
        let locked = !out.status.success() && text(&out.stderr).contains("lock");
        if !locked || start.elapsed() > Duration::from_secs(300) {
            return out;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// dpkg's idea of the package's state: "installed", "config-files", ..., or "" when unknown.
fn package_state() -> String {
    let out = run(
        Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", "vipcheck"]),
        Duration::from_secs(30),
    );
    text(&out.stdout).trim().to_owned()
}

/// Holds an exclusive lock on a file for as long as it lives: one run of this test at a time.
struct RunLock(#[allow(dead_code)] File);

impl RunLock {
    fn take() -> RunLock {
        let path = "/run/lock/vipcheck-deb-package-test.lock";
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        let start = Instant::now();
        loop {
            // SAFETY: f is an open file; flock only changes its lock.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return RunLock(f);
            }
            assert!(
                start.elapsed() < Duration::from_secs(1200),
                "another run of the package test held {path} for 20 minutes"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Purges the package when dropped, so a failed assertion leaves no vipcheck installed;
/// it also removes the unit link the test made, in case the purge did not get that far.
struct PurgeOnDrop;

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        if !package_state().is_empty() {
            let out = dpkg(&["--purge", "vipcheck"]);
            if !out.status.success() {
                eprintln!(
                    "cleanup: dpkg --purge vipcheck failed: {}",
                    text(&out.stderr)
                );
            }
        }
        if fs::symlink_metadata(ENABLE_LINK).is_ok() {
            let _ = fs::remove_file(ENABLE_LINK);
        }
        // deb-systemd-helper's records, should a broken postrm have left them.
        if !named_vipcheck(Path::new(HELPER_RECORDS)).is_empty() {
            let _ = run(
                Command::new("deb-systemd-helper")
                    .arg("purge")
                    .args(UNITS)
                    // It acts only when called from a maintainer script.
                    .env("DPKG_MAINTSCRIPT_PACKAGE", "vipcheck")
                    .env("DPKG_MAINTSCRIPT_NAME", "postrm"),
                Duration::from_secs(60),
            );
        }
    }
}

/// The .deb to install: `VIPCHECK_DEB` (scripts/test.sh builds it first), else built here.
fn the_deb(out: &Path) -> PathBuf {
    if let Some(deb) = std::env::var_os("VIPCHECK_DEB") {
        return PathBuf::from(deb);
    }
    let built = run(
        Command::new(repo().join("scripts/build-deb.sh")).arg(out),
        Duration::from_secs(1800),
    );
    assert!(
        built.status.success(),
        "scripts/build-deb.sh failed:\n{}",
        text(&built.stderr)
    );
    let stdout = text(&built.stdout);
    PathBuf::from(stdout.lines().last().expect("build-deb.sh printed no path"))
}

/// The package's paths from its archive: (regular files and links, directories).
fn contents(deb: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let listing = ok(Command::new("dpkg-deb").arg("--contents").arg(deb));
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for line in listing.lines() {
        let mode = line.split_whitespace().next().unwrap_or("");
        let path = line
            .split_whitespace()
            .nth(5)
            .unwrap_or_else(|| panic!("unexpected dpkg-deb line {line:?}"));
        let path = PathBuf::from(path.trim_start_matches('.'));
        if path == Path::new("/") {
            continue;
        }
        if mode.starts_with('d') {
            dirs.push(path);
        } else {
            files.push(path);
        }
    }
    (files, dirs)
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Director (192.0.2.2) and one DR real server (192.0.2.11) holding the VIP on lo, with a
/// listener on VIP:80, on one bridge.
struct Topology {
    _listener: TcpListener,
    _rs: Netns,
    dir: Netns,
    _lan: Lan,
}

fn topology() -> Topology {
    let lan = Lan::new();
    let dir = Netns::new("debdir");
    lan.attach(&dir, "eth0", "02:00:00:00:00:02");
    dir.ip("addr add 192.0.2.2/24 dev eth0");
    let rs = Netns::new("debrs");
    lan.attach(&rs, "eth0", "02:00:00:00:00:0b");
    rs.arp_sysctls("eth0", "1");
    rs.ip("addr add 192.0.2.11/24 dev eth0");
    rs.ip(&format!("addr add {VIP}/32 dev lo"));
    let vip: IpAddr = VIP.parse().unwrap();
    let listener = rs.in_ns(|| TcpListener::bind((vip, 80)).expect("listen on the VIP"));
    Topology {
        _listener: listener,
        _rs: rs,
        dir,
        _lan: lan,
    }
}

/// `binary probe ARGS` run in the director's namespace as nobody (uid and gid 65534, no
/// groups): whatever privilege it has comes from the file's capabilities.
fn probe_as_nobody(t: &Topology, binary: &Path, args: &[&str]) -> Output {
    let mut cmd = t.dir.command("setpriv");
    cmd.args(NOBODY)
        .arg("--")
        .arg(binary)
        .arg("probe")
        .args(args);
    run(&mut cmd, Duration::from_secs(30))
}

fn assert_up(out: &Output, what: &str) {
    assert!(
        out.status.code() == Some(0) && text(&out.stdout).starts_with("up: "),
        "{what}: expected up, got {}\nstdout: {}stderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn deb_installs_with_capabilities_pages_completions_units_and_purges_clean() {
    if !privileged("dpkg -i, file capabilities and network namespaces") {
        return;
    }
    if !common::tools(&[
        ("lintian", "lintian"),
        ("dpkg-deb", "dpkg"),
        ("dpkg-parsechangelog", "dpkg-dev"),
        ("strip", "binutils"),
        ("getcap", "libcap2-bin"),
        ("man", "man-db"),
        ("setpriv", "util-linux"),
    ]) {
        return;
    }
    let _lock = RunLock::take();
    assert_eq!(
        package_state(),
        "",
        "vipcheck is already known to dpkg on this machine; this test installs and purges \
         its own build and will not replace it (`dpkg --purge vipcheck` first)"
    );
    let work = tempfile::tempdir().unwrap();
    let deb = the_deb(work.path());
    let (files, dirs) = contents(&deb);
    for f in &files {
        assert!(
            !exists(f),
            "{} exists before the package is installed; the test will not overwrite it",
            f.display()
        );
    }
    let dirs_before: BTreeSet<&PathBuf> = dirs.iter().filter(|d| exists(d)).collect();

    let _purge = PurgeOnDrop;
    let out = dpkg(&["-i", deb.to_str().unwrap()]);
    assert!(out.status.success(), "dpkg -i: {}", text(&out.stderr));
    assert_eq!(package_state(), "installed");

    // The binary, with both capabilities from postinst.
    let caps = ok(Command::new("getcap").arg(BIN));
    assert!(
        caps.contains("cap_net_admin,cap_net_raw=ep"),
        "getcap {BIN}: {caps:?}"
    );
    let version = ok(Command::new(BIN).arg("--version"));
    assert!(
        version.starts_with(&format!("vipcheck {} (git ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );

    // A man page per subcommand, found by man, compressed as Debian wants.
    for page in [
        "vipcheck",
        "vipcheck-probe",
        "vipcheck-rewrite",
        "vipcheck-watch",
        "vipcheck-status",
        "vipcheck-appcheck",
    ] {
        let found = ok(Command::new("man").args(["-w", page]));
        assert_eq!(found.trim(), format!("/usr/share/man/man1/{page}.1.gz"));
    }
    let rendered = ok(Command::new("man")
        .args(["-P", "cat", "vipcheck-probe"])
        .env("MANWIDTH", "100"));
    assert!(rendered.contains("--vip"), "{rendered}");

    // Completions where bash-completion, zsh and fish look for them.
    let bash = read("/usr/share/bash-completion/completions/vipcheck");
    assert!(bash.contains("complete -F _vipcheck") && bash.contains("probe"));
    let zsh = read("/usr/share/zsh/vendor-completions/_vipcheck");
    assert!(zsh.starts_with("#compdef vipcheck"), "{zsh}");
    let fish = read("/usr/share/fish/vendor_completions.d/vipcheck.fish");
    assert!(fish.contains("complete -c vipcheck"), "{fish}");

    // The units, pointing at the packaged binary, and not enabled.
    for unit in UNITS {
        let body = read(&format!("/lib/systemd/system/{unit}"));
        assert!(
            !body.contains("/usr/local"),
            "{unit} still names /usr/local"
        );
    }
    assert!(read("/lib/systemd/system/vipcheck-watch.service")
        .contains("\nExecStart=/usr/bin/vipcheck watch "));
    let agent = read("/lib/systemd/system/vipcheck-agent.service");
    assert!(
        agent.contains("\nExecStart=/usr/bin/vipcheck agent "),
        "{agent}"
    );
    assert!(agent.contains("\nType=notify\n") && agent.contains("\nWatchdogSec="));
    let enabled = named_vipcheck(Path::new("/etc/systemd/system"));
    assert!(enabled.is_empty(), "postinst enabled a unit: {enabled:?}");

    // README, copyright (DEP-5) and changelog.
    let copyright = read("/usr/share/doc/vipcheck/copyright");
    assert!(copyright
        .starts_with("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"));
    assert!(copyright.contains("License: MIT or Apache-2.0"));
    for f in ["README.md.gz", "changelog.Debian.gz"] {
        assert!(exists(&Path::new("/usr/share/doc/vipcheck").join(f)), "{f}");
    }

    // lintian: no error, and every warning explained in the README.
    lintian_has_no_errors_and_only_explained_warnings(&deb);

    // As nobody, the installed binary probes a good real server: up, through the file
    // capabilities alone. The same bytes without them (a copy, which drops the
    // capabilities) cannot open the packet socket: down.
    let t = topology();
    assert_up(
        &probe_as_nobody(&t, Path::new(BIN), &PROBE),
        "probe as nobody",
    );
    let session: Vec<&str> = PROBE
        .iter()
        .copied()
        .chain(["--check", "tcp-session"])
        .collect();
    assert_up(
        &probe_as_nobody(&t, Path::new(BIN), &session),
        "tcp-session as nobody (cap_net_admin: the nftables owner table)",
    );
    let shelf = work.path().join("shelf");
    fs::create_dir(&shelf).unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let copy = shelf.join("vipcheck");
    fs::copy(BIN, &copy).unwrap();
    assert_eq!(ok(Command::new("getcap").arg(&copy)), "");
    let denied = probe_as_nobody(&t, &copy, &PROBE);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        text(&denied.stderr).contains("setcap cap_net_raw+ep"),
        "{}",
        text(&denied.stderr)
    );
    // cap_net_raw alone (the README's recipe without the application check): probes are
    // up, the application check is refused.
    ok(Command::new("setcap").arg("cap_net_raw+ep").arg(&copy));
    assert_up(
        &probe_as_nobody(&t, &copy, &PROBE),
        "probe with cap_net_raw alone",
    );
    let refused = probe_as_nobody(&t, &copy, &session);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "tcp-session without cap_net_admin: {}{}",
        text(&refused.stdout),
        text(&refused.stderr)
    );
    drop(t);

    // Purge: an administrator enabled the watcher; purging removes that link too, and
    // every file and every directory the package brought.
    let unit = "/lib/systemd/system/vipcheck-watch.service";
    fs::create_dir_all(Path::new(ENABLE_LINK).parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(unit, ENABLE_LINK).unwrap();
    let out = dpkg(&["--purge", "vipcheck"]);
    assert!(out.status.success(), "dpkg --purge: {}", text(&out.stderr));
    assert_eq!(package_state(), "");
    let left: Vec<&PathBuf> = files.iter().filter(|f| exists(f)).collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    let dirs_left: Vec<&PathBuf> = dirs
        .iter()
        .filter(|d| exists(d) && !dirs_before.contains(d))
        .collect();
    assert!(
        dirs_left.is_empty(),
        "directories left after purge: {dirs_left:?}"
    );
    assert!(
        !exists(Path::new(ENABLE_LINK)),
        "the enable link survived the purge"
    );
    let records = named_vipcheck(Path::new(HELPER_RECORDS));
    assert!(
        records.is_empty(),
        "deb-systemd-helper records survived the purge: {records:?}"
    );
}

/// Every entry under `dir` (not following links) whose name starts with "vipcheck".
fn named_vipcheck(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with("vipcheck") {
            found.push(path.clone());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(named_vipcheck(&path));
        }
    }
    found
}

/// Runs lintian on the package; fails on any error, and on a warning or an override whose
/// tag the README's lintian list does not name.
fn lintian_has_no_errors_and_only_explained_warnings(deb: &Path) {
    let out = run(
        Command::new("lintian")
            .args([
                "--tag-display-limit",
                "0",
                "--display-info",
                "--show-overrides",
            ])
            .arg(deb)
            .current_dir(repo()),
        Duration::from_secs(300),
    );
    let report = text(&out.stdout);
    println!("lintian:\n{report}{}", text(&out.stderr));
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    for line in report
        .lines()
        .filter(|l| l.starts_with("W: ") || l.starts_with("O: "))
    {
        let tag = line.split_whitespace().nth(2).unwrap_or(line);
        assert!(
            readme.contains(&format!("`{tag}`")),
            "lintian tag {tag} is not explained in the README:\n{line}"
        );
    }
}

/// postinst where `setcap` fails (a file system without extended attributes): it says so,
/// with setcap's own error and the command to run, and the install still succeeds. It
/// records the units with deb-systemd-helper and enables none. Runs the script itself with
/// stand-ins for setcap and deb-systemd-helper first in PATH, so it needs no root.
#[test]
fn postinst_explains_a_file_system_without_capabilities_and_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("bin");
    fs::create_dir(&fake).unwrap();
    let log = tmp.path().join("calls");
    for (name, exit) in [("setcap", 1), ("deb-systemd-helper", 0)] {
        let script = format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\n{}exit {exit}\n",
            log.display(),
            if exit == 0 {
                ""
            } else {
                "echo 'Failed to set capabilities on file `/usr/bin/vipcheck` (Operation not supported)' >&2\n"
            }
        );
        let path = fake.join(name);
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", fake.display());
    let out = run(
        Command::new("sh")
            .arg(repo().join("contrib/debian/postinst"))
            .arg("configure")
            .env("PATH", path),
        Duration::from_secs(30),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("could not give /usr/bin/vipcheck the file capabilities")
            && stderr.contains("(Operation not supported)")
            && stderr.contains("setcap cap_net_raw,cap_net_admin+ep /usr/bin/vipcheck"),
        "{stderr}"
    );
    let calls = fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls,
        "setcap cap_net_raw,cap_net_admin+ep /usr/bin/vipcheck\n\
         deb-systemd-helper update-state vipcheck-watch.service\n\
         deb-systemd-helper update-state vipcheck-rewrite.path\n\
         deb-systemd-helper update-state vipcheck-rewrite.service\n\
         deb-systemd-helper update-state vipcheck-agent.service\n"
    );
}
