//! Shared pieces of the watch tests: a stand-in daemon that records the SIGHUPs it gets, a
//! regenerator that copies files (so the watcher is tested without the rewrite engine),
//! and a harness that runs the watcher on a thread and reads its reports.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vipcheck::config::{Diagnostic, Location};
use vipcheck::rewrite::RewriteError;
use vipcheck::watch::{
    write_atomically, Options, Prior, Regenerate, Regenerated, Reload, Report, Stopper, Validation,
    Watcher, Written,
};

/// How long a test waits for something it expects.
pub const EXPECT: Duration = Duration::from_secs(10);
/// How long a test watches for something that must not happen (several debounce times).
pub const QUIET: Duration = Duration::from_millis(600);
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// A process that writes its pid to a pidfile and appends a line to a log for every
/// SIGHUP. It runs a copy of /bin/sh named `keepalived`, so the watcher sees the daemon it
/// expects behind the pid. It exits by itself after two minutes, and is killed on drop.
pub struct StandIn {
    child: Child,
    pub pidfile: PathBuf,
    log: PathBuf,
}

impl StandIn {
    pub fn start(dir: &Path) -> StandIn {
        let pidfile = dir.join("daemon.pid");
        let log = dir.join("daemon.hups");
        std::fs::write(&log, "").unwrap();
        let script = r#"trap 'echo hup >> "$2"' HUP
echo $$ > "$1.tmp" && mv "$1.tmp" "$1"
i=0
while [ $i -lt 1200 ]; do sleep 0.1 & wait $!; i=$((i+1)); done"#;
        let shell = dir.join("keepalived");
        std::fs::copy("/bin/sh", &shell).unwrap();
        let start = Instant::now();
        // Another test thread forking while the copy was open for writing makes exec fail
        // with ETXTBSY for a moment: try again, bounded.
        let child = loop {
            let spawned = Command::new(&shell)
                .arg("-c")
                .arg(script)
                .arg("standin")
                .arg(&pidfile)
                .arg(&log)
                .spawn();
            match spawned {
                Ok(c) => break c,
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && start.elapsed() < EXPECT => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("cannot start the stand-in daemon: {e}"),
            }
        };
        while !pidfile.exists() {
            assert!(start.elapsed() < EXPECT, "stand-in daemon did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        StandIn {
            child,
            pidfile,
            log,
        }
    }

    /// Reload by SIGHUP through its pidfile, as `--reload keepalived` does.
    pub fn reload(&self) -> Reload {
        Reload::Signal {
            pidfile: self.pidfile.clone(),
            daemon: "keepalived".into(),
        }
    }

    /// SIGHUPs recorded so far.
    pub fn hups(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Waits (bounded) until `n` SIGHUPs are recorded; the trap runs a little after the
    /// signal is sent.
    pub fn wait_hups(&self, n: usize) -> usize {
        let start = Instant::now();
        while self.hups() < n && start.elapsed() < EXPECT {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.hups()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the copying regenerator writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// Append a marker line to the main file itself.
    InPlace,
    File(PathBuf),
}

pub const MARKER: &str = "# vipcheck: checked\n";

/// A regenerator standing in for the rewrite: it reads `main`, expands `include GLOB`
/// lines (relative to the main file's directory), fails on a line `SYNTAX ERROR` with a
/// located diagnostic, and writes the expansion plus a marker line, only when it changed.
pub struct CopyRegen {
    pub main: PathBuf,
    pub target: Target,
    pub calls: Arc<AtomicUsize>,
}

impl CopyRegen {
    pub fn new(main: PathBuf, target: Target) -> Self {
        CopyRegen {
            main,
            target,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }
}

fn read(path: &Path) -> Result<String, RewriteError> {
    std::fs::read_to_string(path).map_err(|source| RewriteError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    })
}

impl Regenerate for CopyRegen {
    fn regenerate(&mut self) -> Result<Regenerated, RewriteError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let text = read(&self.main)?;
        let dir = self.main.parent().unwrap().to_path_buf();
        let mut read_paths = vec![self.main.clone()];
        let mut include_patterns = Vec::new();
        let mut expanded = String::new();
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            if line.trim() == "SYNTAX ERROR" {
                let loc = Location::in_text(self.main.clone(), &text, offset, offset + 6);
                return Err(Diagnostic::error("unexpected 'SYNTAX'")
                    .at_location(loc)
                    .into());
            }
            if let Some(pattern) = line.trim().strip_prefix("include ") {
                let pattern = dir.join(pattern);
                include_patterns.push(pattern.clone());
                let mut files: Vec<PathBuf> = glob::glob(&pattern.to_string_lossy())
                    .map(|paths| paths.filter_map(Result::ok).collect())
                    .unwrap_or_default();
                files.sort();
                for f in files {
                    expanded.push_str(&read(&f)?);
                    read_paths.push(f);
                }
            } else {
                expanded.push_str(line);
            }
            offset += line.len();
        }
        let (out, new_text) = match &self.target {
            Target::InPlace if text.ends_with(MARKER) => (self.main.clone(), text.clone()),
            Target::InPlace => (self.main.clone(), format!("{text}{MARKER}")),
            Target::File(out) => (out.clone(), format!("{expanded}{MARKER}")),
        };
        let before = std::fs::read(&out).ok();
        let prior = match &before {
            Some(b) => Prior::Held(b.clone()),
            None => Prior::Absent,
        };
        let mut written = Vec::new();
        if before.as_deref() != Some(new_text.as_bytes()) {
            write_atomically(&out, new_text.as_bytes()).map_err(|source| RewriteError::Io {
                op: "write",
                path: out.clone(),
                source,
            })?;
            written.push(Written {
                path: out.clone(),
                before: prior,
            });
        }
        Ok(Regenerated {
            written,
            main_output: out,
            read_paths,
            include_patterns,
            watch_dirs: Vec::new(),
            warnings: Vec::new(),
            services: Vec::new(),
        })
    }

    fn current_output(&self) -> Option<PathBuf> {
        Some(match &self.target {
            Target::InPlace => self.main.clone(),
            Target::File(out) => out.clone(),
        })
    }
}

/// The watcher running on a thread, its reports on a channel.
pub struct Harness {
    pub reports: Receiver<Report>,
    /// Every report received so far, in order.
    pub seen: Vec<Report>,
    stopper: Stopper,
    thread: Option<JoinHandle<()>>,
    pub calls: Arc<AtomicUsize>,
}

impl Harness {
    /// Starts watching and waits for the first pass to finish and the watches to be set.
    pub fn start(regen: CopyRegen, validation: Validation, reload: Reload, in_place: bool) -> Self {
        let calls = regen.calls.clone();
        let config = regen.main.clone();
        Self::start_with(regen, config, calls, validation, reload, in_place)
    }

    /// The same around any regenerator; `calls` is whatever it counts passes with.
    pub fn start_with<R: Regenerate + Send + 'static>(
        regen: R,
        config: PathBuf,
        calls: Arc<AtomicUsize>,
        validation: Validation,
        reload: Reload,
        in_place: bool,
    ) -> Self {
        let opts = Options {
            config,
            debounce: DEBOUNCE,
            in_place,
            validation,
            reload,
        };
        let (tx, rx) = mpsc::channel();
        let watcher = Watcher::new(
            regen,
            opts,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        let stopper = watcher.stopper();
        let thread = std::thread::spawn(move || {
            watcher.run().unwrap();
        });
        let mut h = Harness {
            reports: rx,
            seen: Vec::new(),
            stopper,
            thread: Some(thread),
            calls,
        };
        h.expect(|r| matches!(r, Report::Watching { .. }));
        h
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Waits (bounded) for a report matching `pred`; panics with every report seen.
    pub fn expect(&mut self, pred: impl Fn(&Report) -> bool) -> Report {
        let deadline = Instant::now() + EXPECT;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(wait) {
                Ok(r) => {
                    self.seen.push(r.clone());
                    if pred(&r) {
                        return r;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!("expected report not seen; reports: {:#?}", self.seen)
                }
            }
        }
    }

    /// Every report made during the next `QUIET` period.
    pub fn quiet(&mut self) -> Vec<Report> {
        let deadline = Instant::now() + QUIET;
        let mut got = Vec::new();
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(wait) {
                Ok(r) => {
                    self.seen.push(r.clone());
                    got.push(r);
                }
                Err(_) => return got,
            }
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stopper.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A save the way many editors do it: write a temp file beside it, rename over it.
pub fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A save by truncating and writing the file itself (in two steps, as an editor does).
pub fn save_by_truncate(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    let (a, b) = text.split_at(text.len() / 2);
    f.write_all(a.as_bytes()).unwrap();
    f.flush().unwrap();
    f.write_all(b.as_bytes()).unwrap();
}

/// A temp dir with its path resolved (so paths in reports compare equal).
pub fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    (dir, path)
}

pub fn count(reports: &[Report], pred: impl Fn(&Report) -> bool) -> usize {
    reports.iter().filter(|r| pred(r)).count()
}

pub fn is_reloaded(r: &Report) -> bool {
    matches!(r, Report::Reloaded(_))
}

pub fn is_regenerated(r: &Report) -> bool {
    matches!(r, Report::Regenerated { .. })
}

pub fn is_change(r: &Report) -> bool {
    matches!(r, Report::ChangeSeen { .. })
}
