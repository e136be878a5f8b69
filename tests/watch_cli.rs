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
