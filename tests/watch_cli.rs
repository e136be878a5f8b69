//! `vipcheck watch` as a process: journald-friendly stderr lines, a clean exit 0 on
//! SIGTERM and SIGINT, usage errors with a hint.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const EXPECT: Duration = Duration::from_secs(10);

/// The watcher process; killed on drop if a test fails before it exits.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn start(dir: &Path, journal: bool) -> Proc {
        let config = dir.join("keepalived.conf");
        std::fs::write(&config, "global_defs {\n}\n").unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vipcheck"));
        cmd.arg("watch")
            .arg(&config)
            .arg("-o")
            .arg(dir.join("out.conf"))
            .arg("--reload")
            .arg("none")
            .arg("--pidfile")
            .arg(dir.join("none.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.env_remove("JOURNAL_STREAM");
        if journal {
            cmd.env("JOURNAL_STREAM", "8:12345");
        }
        Proc::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    fn expect_line(&mut self, part: &str) -> String {
        let deadline = Instant::now() + EXPECT;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(wait) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(part) {
                        return l;
                    }
                }
                Err(_) => panic!("no line with {part:?}; lines: {:#?}", self.seen),
            }
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + EXPECT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "watch did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn exits_cleanly_on(sig: libc::c_int) {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::start(dir.path(), false);
    let watching = p.expect_line("watching");
    assert!(watching.starts_with("vipcheck: watching "), "{watching}");
    p.signal(sig);
    p.expect_line("stopping");
    assert_eq!(p.wait_exit(), 0);
    for l in &p.seen {
        assert!(l.starts_with("vipcheck: "), "not a plain log line: {l:?}");
        assert!(!l.contains('\u{1b}'), "colour in a log line: {l:?}");
    }
}

#[test]
fn sigterm_exits_zero() {
    exits_cleanly_on(libc::SIGTERM);
}

#[test]
fn sigint_exits_zero() {
    exits_cleanly_on(libc::SIGINT);
}

#[test]
fn journal_stream_lines_carry_syslog_priority() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::start(dir.path(), true);
    let watching = p.expect_line("watching");
    assert!(watching.starts_with("<6>vipcheck: watching "), "{watching}");
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn bad_debounce_is_a_usage_error_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vipcheck"))
        .arg("watch")
        .arg(dir.path().join("keepalived.conf"))
        .arg("--in-place")
        .arg("--debounce")
        .arg("soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--debounce") && err.contains("hint"), "{err}");
}

#[test]
fn open_file_limit_at_start_is_an_error_with_a_hint() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keepalived.conf");
    std::fs::write(&config, "global_defs {\n}\n").unwrap();
    // How many descriptors a start takes before it creates the inotify instance depends
    // on the build: try low limits until that creation fails.
    let mut firsts = Vec::new();
    for limit in 4..=12u64 {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vipcheck"));
        cmd.arg("watch")
            .arg(&config)
            .arg("--in-place")
            .arg("--reload")
            .arg("none")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: the closure only calls setrlimit, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut p = Proc::spawn(cmd);
        let first = p.lines.recv_timeout(EXPECT).unwrap_or_default();
        firsts.push(format!("{limit}: {first}"));
        if first.contains("cannot start watching") {
            assert!(first.contains("open-file limit"), "{first}");
            assert!(first.contains("hint: "), "{first}");
            assert_eq!(p.wait_exit(), 1);
            return;
        }
        // Started (or failed earlier than inotify): stop it and try the next limit.
        p.signal(libc::SIGTERM);
        let _ = p.wait_exit();
    }
    panic!("no limit made the inotify start fail: {firsts:#?}");
}

fn once(dir: &Path, config_text: &str) -> (Option<i32>, String) {
    let config = dir.join("keepalived.conf");
    std::fs::write(&config, config_text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vipcheck"))
        .arg("watch")
        .arg(&config)
        .arg("-o")
        .arg(dir.join("out.conf"))
        .arg("--reload")
        .arg("none")
        .arg("--once")
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn once_regenerates_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = once(
        dir.path(),
        "virtual_server 192.0.2.20 80 {\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  \
         real_server 192.0.2.11 80 {\n    weight 1\n  }\n}\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("vipcheck: regenerated 1 file"), "{err}");
    let out = std::fs::read_to_string(dir.path().join("out.conf")).unwrap();
    assert!(out.contains("--rip 192.0.2.11"), "{out}");
}

#[test]
fn once_with_a_bad_config_exits_one_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = once(
        dir.path(),
        "virtual_server 192.0.2.20 80 {\n  lb_kind FOO\n}\n",
    );
    assert_eq!(code, Some(1), "{err}");
    let want = format!("{}:2:", dir.path().join("keepalived.conf").display());
    assert!(
        err.contains("vipcheck: config error: ") && err.contains(&want),
        "{err}"
    );
    assert!(!dir.path().join("out.conf").exists());
}

#[test]
fn sighup_runs_a_pass_now() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::start(dir.path(), false);
    p.expect_line("watching");
    let out = dir.path().join("out.conf");
    assert!(out.is_file());
    // The output is not watched: removing it changes nothing until a pass is asked for.
    std::fs::remove_file(&out).unwrap();
    p.signal(libc::SIGHUP);
    p.expect_line("pass requested (SIGHUP)");
    p.expect_line("regenerated 1 file");
    assert!(out.is_file());
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}

/// `watch --once` run as an unprivileged user (nobody when this test runs as root, so
/// file modes apply); its exit code and stderr.
fn once_unprivileged(config: &Path, out: &Path) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vipcheck"));
    cmd.arg("watch")
        .arg(config)
        .arg("-o")
        .arg(out)
        .arg("--reload")
        .arg("none")
        .arg("--once")
        .env_remove("JOURNAL_STREAM");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A temp dir anyone may enter, holding a good config.
fn open_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("keepalived.conf");
    std::fs::write(
        &config,
        "virtual_server 192.0.2.20 80 {\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  \
         real_server 192.0.2.11 80 {\n    weight 1\n  }\n}\n",
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, config)
}

#[test]
fn unreadable_config_is_logged_as_permission_denied_not_config_error() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, config) = open_dir();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, err) = once_unprivileged(&config, &out_dir.join("out.conf"));
    assert_eq!(code, Some(1), "{err}");
    let want = format!(
        "vipcheck: cannot read {}: permission denied",
        config.display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(!err.contains("config error"), "{err}");
}

#[test]
fn unwritable_output_is_logged_as_permission_denied_not_config_error() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, config) = open_dir();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let (code, err) = once_unprivileged(&config, &out_dir.join("out.conf"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("vipcheck: cannot "), "{err}");
    assert!(
        err.contains(&format!("{}: permission denied", out_dir.display())),
        "{err}"
    );
    assert!(!err.contains("config error"), "{err}");
    assert!(!out_dir.join("out.conf").exists());
}

#[test]
fn parser_warnings_are_logged_once_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keepalived.conf");
    // No `protocol` line: keepalived takes UDP, and says so; so does vipcheck.
    std::fs::write(
        &config,
        "virtual_server 192.0.2.20 80 {\n    lb_kind DR\n    real_server 192.0.2.11 80 {\n    }\n}\n",
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vipcheck"));
    cmd.arg("watch")
        .arg(&config)
        .arg("-o")
        .arg(dir.path().join("out.conf"))
        .args(["--reload", "none", "--debounce", "20ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("JOURNAL_STREAM");
    let mut p = Proc::spawn(cmd);
    let line = p.expect_line("config warning: ");
    assert!(line.contains("keepalived.conf:1:"), "{line}");
    assert!(line.contains("protocol"), "{line}");
    p.expect_line("watching ");
    // Another pass over the same config does not say it again.
    std::fs::write(
        &config,
        "virtual_server 192.0.2.20 80 {\n    lb_kind DR\n    real_server 192.0.2.11 80 {\n    }\n}\n\n",
    )
    .unwrap();
    p.expect_line("change seen");
    p.expect_line("regenerated");
    p.signal(libc::SIGTERM);
    p.expect_line("stopping");
    let warnings = p
        .seen
        .iter()
        .filter(|l| l.contains("config warning"))
        .count();
    assert_eq!(warnings, 1, "{:#?}", p.seen);
}
