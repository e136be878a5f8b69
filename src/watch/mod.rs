//! Watch mode: follow the config (and its includes), regenerate, validate, reload.
//!
//! The loop: watch the directories (never the files: editors rename over them and
//! ConfigMaps swap symlinks) of every file the last pass read, wait until changes stop for
//! the debounce time (trailing edge), then run one pass. A pass regenerates through a
//! [`Regenerate`], which writes only files whose text changed; the watcher validates the
//! daemon's config, rolls back to the last good output when it fails, and reloads the
//! daemon once. Events on files whose contents are exactly what the watcher last wrote
//! are its own and are not acted on; rename events are not paired, the next pass simply
//! reads what is there.

mod daemon;
mod log;
mod paths;
mod regenerate;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher as _};

use crate::config::{Diagnostic, Format};
use crate::rewrite::command::{resolve_format, GenerateInputs};
use crate::rewrite::RewriteError;

pub use daemon::{
    autoreload_enabled, find_program, keepalived_exit, parse_keepalived_line, ConfigTest,
    Judgement, Reload, ReloadError, Reloaded, Validation, ValidationError,
};
pub use log::{Logger, Priority, Report};
pub use paths::{absolute, fingerprint, is_editor_scratch, link_chain, WatchSet};
pub use regenerate::RewriteRegenerator;

/// Which daemon to reload after a pass (`--reload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadChoice {
    /// The one the config's format belongs to.
    Auto,
    Keepalived,
    Ldirectord,
    None,
}

/// What `vipcheck watch` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchInputs {
    /// The config to watch (its includes are watched too).
    pub config: PathBuf,
    /// Write the generated config here (a file, or a directory for a config with
    /// includes); without it, the watched files are rewritten in place.
    pub output: Option<PathBuf>,
    /// Rewrite the watched files themselves.
    pub in_place: bool,
    pub reload: ReloadChoice,
    /// Run this command (through /bin/sh) to reload instead.
    pub reload_command: Option<String>,
    /// keepalived's pidfile.
    pub pidfile: Option<PathBuf>,
    /// Quiet time after the last change before a pass runs.
    pub debounce: Duration,
    /// One regeneration pass, then exit.
    pub once: bool,
    pub generate: GenerateInputs,
}

/// One regeneration: re-read the sources and write the outputs whose text changed.
pub trait Regenerate {
    fn regenerate(&mut self) -> Result<Regenerated, RewriteError>;

    /// The file the daemon reads, as it is before a pass writes (what the daemon runs
    /// now), when known.
    fn current_output(&self) -> Option<PathBuf> {
        None
    }
}

/// What a pass wrote and what it read.
#[derive(Debug, Clone, Default)]
pub struct Regenerated {
    /// Files written this pass (only those whose text changed).
    pub written: Vec<Written>,
    /// The file the daemon reads: the one validated and reloaded.
    pub main_output: PathBuf,
    /// Every file read.
    pub read_paths: Vec<PathBuf>,
    /// Every include pattern met, absolute: a new file matching one is a change.
    pub include_patterns: Vec<PathBuf>,
    /// Further directories to watch.
    pub watch_dirs: Vec<PathBuf>,
    /// The parser's warnings about the config, one located line each.
    pub warnings: Vec<String>,
    /// The config's virtual services as this node reads them (the plan's parse).
    pub services: Vec<crate::config::VirtualService>,
}

/// A file a pass wrote, with what it held before (to restore the last good output when
/// the daemon's validator rejects the new one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    pub before: Prior,
}

/// What a written file held before the pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// It did not exist (restoring removes it).
    Absent,
    Held(Vec<u8>),
    /// Not known (unreadable): it is left as written.
    Unknown,
}

/// How the watcher behaves, whatever regenerates.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config named on the command line (always watched, even when a pass fails).
    pub config: PathBuf,
    /// Quiet time after the last change before a pass runs.
    pub debounce: Duration,
    /// The outputs are the sources: a change in them is a change in the daemon's config
    /// (reload even when nothing is written), and a rejected config is not rolled back
    /// (that would undo the operator's own edit).
    pub in_place: bool,
    pub validation: Validation,
    pub reload: Reload,
}

/// Why a pass ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The first pass (or `--once`): reload only when something was written.
    Start,
    /// A change was seen in the sources.
    Change,
}

/// How a pass ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassOutcome {
    /// Nothing written and nothing to reload.
    Unchanged,
    /// Written (or changed in place) and reloaded, or no reload configured.
    Done { written: usize },
    /// The sources could not be read or parsed: nothing written.
    ConfigError,
    /// The daemon's validator rejected the output: not reloaded (with `-o`, the last good
    /// output put back).
    Invalid,
    /// Written and valid, but the reload failed.
    ReloadFailed { written: usize },
}

/// Messages the loop waits for: file-system events, and requests from signals.
enum Msg {
    Fs(notify::Result<notify::Event>),
    /// Run a pass now (SIGHUP), as if everything had changed.
    Refresh,
    Stop,
}

/// Asks a running [`Watcher::run`] to return.
#[derive(Clone)]
pub struct Stopper(Sender<Msg>);

impl Stopper {
    pub fn stop(&self) {
        let _ = self.0.send(Msg::Stop);
    }

    /// Asks for a pass now.
    pub fn refresh(&self) {
        let _ = self.0.send(Msg::Refresh);
    }
}

/// Why watching could not go on.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot start watching: {message}")]
    Start { message: String, hint: &'static str },
}

impl WatchError {
    pub fn hint(&self) -> &'static str {
        match self {
            WatchError::Start { hint, .. } => hint,
        }
    }
}

const LIMIT_HINT_WATCHES: &str =
    "raise the limit: sysctl fs.inotify.max_user_watches=524288 (and add it to /etc/sysctl.d)";
const LIMIT_HINT_INSTANCES: &str =
    "raise the limit: sysctl fs.inotify.max_user_instances=1024 (and add it to /etc/sysctl.d)";

const LIMIT_HINT_FILES: &str = "raise the open-file limit: LimitNOFILE= in the unit, or ulimit -n";

/// True when this process holds about as many descriptors as its soft RLIMIT_NOFILE.
fn open_file_limit_reached() -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return false;
    }
    // Reading /proc/self/fd takes one more descriptor than the process held.
    match std::fs::read_dir("/proc/self/fd") {
        Ok(d) => d.count() as u64 >= lim.rlim_cur.saturating_sub(1),
        Err(e) => e.raw_os_error() == Some(libc::EMFILE),
    }
}

/// Describes a notify error in one sentence, with a hint for the inotify limits.
fn describe_notify_error(e: &notify::Error) -> (String, &'static str) {
    let paths = e
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => (
            format!("the inotify watch limit is reached (watching {paths})"),
            LIMIT_HINT_WATCHES,
        ),
        // inotify_init1 says EMFILE for both the per-user instance limit and this
        // process's open-file limit: tell them apart by counting open descriptors.
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::EMFILE) => {
            if open_file_limit_reached() {
                (
                    "the open-file limit of this process is reached".to_string(),
                    LIMIT_HINT_FILES,
                )
            } else {
                (
                    "the inotify instance limit is reached".to_string(),
                    LIMIT_HINT_INSTANCES,
                )
            }
        }
        _ if paths.is_empty() => (e.to_string(), ""),
        _ => (format!("{e} ({paths})"), ""),
    }
}

/// The watch loop around one [`Regenerate`].
pub struct Watcher<R> {
    regen: R,
    opts: Options,
    report: Box<dyn FnMut(Report) + Send>,
    /// Fingerprints of what this process last wrote, by resolved path.
    own: HashMap<PathBuf, (u64, u64)>,
    /// What the last successful pass read, plus the config's own chain.
    set: WatchSet,
    /// Directories watched, with the (device, inode) they had when the watch was added.
    watched: BTreeMap<PathBuf, (u64, u64)>,
    /// The inotify watcher, while [`Watcher::run`] runs.
    fs: Option<notify::RecommendedWatcher>,
    /// A directory watched for the first time already held a file the last pass did not
    /// read (it raced the watch): run another pass.
    recheck: bool,
    /// The last pass could not read or parse the config.
    last_failed: bool,
    /// The errors keepalived reports for the config the daemon runs now (see
    /// [`ConfigTest::judge`]); `None` until first known.
    running_errors: Option<Vec<String>>,
    /// Config warnings already logged: each is said once while the watcher runs.
    warned: std::collections::HashSet<String>,
    /// The whole-second mtime each autoreloaded output was given last (see
    /// [`Watcher::keep_mtime_moving`]).
    autoreload_mtimes: HashMap<PathBuf, u64>,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
}

impl<R: Regenerate> Watcher<R> {
    pub fn new(regen: R, opts: Options, report: Box<dyn FnMut(Report) + Send>) -> Self {
        let (tx, rx) = mpsc::channel();
        let set = WatchSet::new(std::slice::from_ref(&opts.config), &[], &[]);
        Watcher {
            regen,
            opts,
            report,
            own: HashMap::new(),
            set,
            watched: BTreeMap::new(),
            fs: None,
            recheck: false,
            last_failed: false,
            running_errors: None,
            warned: Default::default(),
            autoreload_mtimes: HashMap::new(),
            tx,
            rx,
        }
    }

    pub fn stopper(&self) -> Stopper {
        Stopper(self.tx.clone())
    }

    /// The regenerator (tests read what it counted).
    pub fn regenerator(&self) -> &R {
        &self.regen
    }

    fn say(&mut self, r: Report) {
        (self.report)(r)
    }

    /// One pass: regenerate, validate, reload.
    pub fn pass(&mut self, trigger: Trigger) -> PassOutcome {
        if self.running_errors.is_none() && self.opts.validation.is_enabled() {
            // What the daemon runs now, before this pass writes: a new output is judged
            // against it.
            let running = match self.regen.current_output() {
                Some(out) if out.is_file() => self
                    .opts
                    .validation
                    .test(&out)
                    .map(|t| t.errors())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            self.running_errors = Some(running);
        }
        let result = self.regen.regenerate();
        let mut set = WatchSet::new(std::slice::from_ref(&self.opts.config), &[], &[]);
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                self.say(failure_report(&e));
                // Keep watching what the last good pass read.
                set.extend(std::mem::take(&mut self.set));
                self.set = set;
                self.last_failed = true;
                self.sync_watches();
                return PassOutcome::ConfigError;
            }
        };
        set.extend(WatchSet::new(
            &r.read_paths,
            &r.include_patterns,
            &r.watch_dirs,
        ));
        self.set = set;
        self.last_failed = false;
        for w in &r.warnings {
            if self.warned.insert(w.clone()) {
                self.say(Report::ConfigWarning(w.clone()));
            }
        }
        // Watch what this pass read before anything else, so a change made from now on
        // is seen.
        self.sync_watches();
        for w in &r.written {
            self.remember_own(&w.path);
        }
        let written = r.written.len();
        if written > 0 {
            self.say(Report::Regenerated {
                files: r.written.iter().map(|w| w.path.clone()).collect(),
            });
        }
        let daemon_config_changed =
            written > 0 || (self.opts.in_place && trigger == Trigger::Change);
        if !daemon_config_changed {
            self.say(Report::Unchanged);
            return PassOutcome::Unchanged;
        }
        let running = self.running_errors.clone().unwrap_or_default();
        match self.opts.validation.test(&r.main_output) {
            None => {}
            Some(test) => match test.judge(&running) {
                Judgement::Accepted(notes) => {
                    for n in notes {
                        self.say(Report::Tolerated(n));
                    }
                    self.running_errors = Some(test.errors());
                }
                Judgement::Rejected(errors) => {
                    for e in errors {
                        self.say(Report::ValidationFailed(e));
                    }
                    return self.rejected(&r.written);
                }
            },
        }
        match self.opts.reload.reload(&r.main_output) {
            Ok(Some(done)) => {
                if done == Reloaded::Autoreload {
                    self.keep_mtime_moving(&r.main_output);
                }
                self.say(Report::Reloaded(done));
                PassOutcome::Done { written }
            }
            Ok(None) => PassOutcome::Done { written },
            Err(e) => {
                self.say(Report::ReloadFailed(e.to_string()));
                PassOutcome::ReloadFailed { written }
            }
        }
    }

    /// After a rejected output: roll back to the last good output (with `-o`), never
    /// reload.
    fn rejected(&mut self, written: &[Written]) -> PassOutcome {
        if self.opts.in_place {
            self.say(Report::NotReloaded);
        } else {
            let restored = self.restore(written);
            self.say(Report::KeptLastGood { restored });
        }
        PassOutcome::Invalid
    }

    /// ldirectord's autoreload skips a file whose mtime, in whole seconds, equals the one
    /// it saw last: a second write within the same second would go unseen for good. So an
    /// output written again within the second gets the next second as its mtime.
    fn keep_mtime_moving(&mut self, output: &Path) {
        let secs = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        let Ok(mtime) = std::fs::metadata(output).and_then(|m| m.modified()) else {
            return;
        };
        let mut now = secs(mtime);
        if let Some(&last) = self.autoreload_mtimes.get(output) {
            if now <= last {
                now = last + 1;
                let t = std::time::UNIX_EPOCH + Duration::from_secs(now);
                let set = std::fs::File::options()
                    .write(true)
                    .open(output)
                    .and_then(|f| f.set_modified(t));
                if let Err(e) = set {
                    self.say(Report::WatchError(format!(
                        "cannot move the mtime of {} on for ldirectord's autoreload: {e}",
                        output.display()
                    )));
                }
            }
        }
        self.autoreload_mtimes.insert(output.to_path_buf(), now);
    }

    fn remember_own(&mut self, path: &Path) {
        let resolved = link_chain(path).pop().unwrap_or_else(|| path.to_path_buf());
        match fingerprint(&resolved) {
            Some(fp) => {
                self.own.insert(resolved, fp);
            }
            None => {
                self.own.remove(&resolved);
            }
        }
    }

    /// Puts back what the written files held before this pass.
    fn restore(&mut self, written: &[Written]) -> usize {
        let mut restored = 0;
        for w in written {
            let result = match &w.before {
                Prior::Held(bytes) => write_atomically(&w.path, bytes),
                Prior::Absent => std::fs::remove_file(&w.path),
                Prior::Unknown => Err(std::io::Error::other("its previous contents are unknown")),
            };
            match result {
                Ok(()) => {
                    restored += 1;
                    self.remember_own(&w.path);
                }
                Err(e) => self.say(Report::WatchError(format!(
                    "cannot restore {}: {e}",
                    w.path.display()
                ))),
            }
        }
        restored
    }

    /// Adds and drops directory watches so exactly the current set (or, for a directory
    /// that does not exist, its nearest existing ancestor) is watched. A directory that
    /// was replaced (another inode at the same path) is watched again.
    fn sync_watches(&mut self) {
        let Some(mut fs) = self.fs.take() else {
            return;
        };
        let mut want: BTreeMap<PathBuf, (u64, u64)> = BTreeMap::new();
        for dir in &self.set.dirs {
            let mut d = dir.as_path();
            loop {
                if let Ok(m) = std::fs::metadata(d) {
                    if m.is_dir() {
                        want.insert(d.to_path_buf(), (m.dev(), m.ino()));
                        break;
                    }
                }
                match d.parent() {
                    Some(p) => d = p,
                    None => break,
                }
            }
        }
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(p, id)| want.get(*p) != Some(id))
            .map(|(p, _)| p.clone())
            .collect();
        for p in stale {
            let _ = fs.unwatch(&p);
            self.watched.remove(&p);
        }
        for (dir, id) in want {
            if self.watched.contains_key(&dir) {
                continue;
            }
            match fs.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.recheck |= self.holds_unread(&dir);
                    self.watched.insert(dir, id);
                }
                Err(e) => {
                    let (msg, hint) = describe_notify_error(&e);
                    self.say(Report::WatchError(with_hint(msg, hint)));
                }
            }
        }
        self.fs = Some(fs);
    }

    /// True when `dir` holds something the last pass did not read because it was created
    /// between the read and the watch on its directory: a file matching an include
    /// pattern, or, after a pass that failed (a config directory deleted and recreated),
    /// any file that matters.
    fn holds_unread(&self, dir: &Path) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.filter_map(Result::ok).any(|e| {
            let p = e.path();
            self.set.may_matter(&p) && (self.last_failed || self.set.only_by_pattern(&p))
        })
    }

    /// True when the batch holds a change this process did not make itself.
    fn batch_is_foreign(&mut self, batch: &[PathBuf], rescan: bool) -> Option<PathBuf> {
        let mut foreign = rescan.then(|| self.opts.config.clone());
        for p in batch {
            if !self.set.may_matter(p) {
                continue;
            }
            let now = fingerprint(p);
            if self.set.only_by_pattern(p) && now.is_none() {
                continue; // came and went, e.g. a writer's temp file
            }
            if now.is_some() && self.own.get(p) == now.as_ref() {
                continue; // exactly what this process wrote
            }
            // Someone else changed it: a later return to the text this process wrote is
            // theirs too (the daemon may have loaded their version in between).
            self.own.remove(p);
            foreign.get_or_insert_with(|| p.clone());
        }
        foreign
    }

    /// Watches until stopped: one pass at start, then one pass per burst of changes.
    pub fn run(mut self) -> Result<(), WatchError> {
        let tx = self.tx.clone();
        let fs = notify::recommended_watcher(move |ev| {
            let _ = tx.send(Msg::Fs(ev));
        })
        .map_err(|e| {
            let (message, hint) = describe_notify_error(&e);
            WatchError::Start { message, hint }
        })?;
        self.fs = Some(fs);
        // Watch before the first read, so a change made while it runs is not lost.
        self.sync_watches();
        self.pass(Trigger::Start);
        self.recheck = false;
        let dirs = self.watched.len();
        self.say(Report::Watching {
            config: self.opts.config.clone(),
            dirs,
        });
        // Never wait longer than this after the first change of a burst that never stops.
        let max_wait = (self.opts.debounce * 20).max(Duration::from_secs(2));
        loop {
            let mut batch: Vec<PathBuf> = Vec::new();
            let mut rescan = false;
            let mut requested = false;
            let mut first: Option<Instant> = None;
            let mut deadline: Option<Instant> = None;
            if std::mem::take(&mut self.recheck) {
                rescan = true;
                deadline = Some(Instant::now());
            }
            loop {
                let msg = match deadline {
                    None => match self.rx.recv() {
                        Ok(m) => m,
                        Err(_) => return Ok(()),
                    },
                    Some(d) => {
                        let wait = d.saturating_duration_since(Instant::now());
                        match self.rx.recv_timeout(wait) {
                            Ok(m) => m,
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return Ok(()),
                        }
                    }
                };
                let ev = match msg {
                    Msg::Stop => {
                        self.say(Report::Stopping);
                        return Ok(());
                    }
                    Msg::Refresh => {
                        requested = true;
                        deadline = Some(Instant::now());
                        continue;
                    }
                    Msg::Fs(Err(e)) => {
                        let (msg, hint) = describe_notify_error(&e);
                        self.say(Report::WatchError(with_hint(msg, hint)));
                        continue;
                    }
                    Msg::Fs(Ok(ev)) => ev,
                };
                // Opens and reads (our own passes read every source) change nothing.
                if matches!(ev.kind, EventKind::Access(_)) {
                    continue;
                }
                let mut matters = ev.need_rescan();
                rescan |= ev.need_rescan();
                for p in ev.paths {
                    if self.set.may_matter(&p) {
                        matters = true;
                        if !batch.contains(&p) {
                            batch.push(p);
                        }
                    }
                }
                if matters {
                    let now = Instant::now();
                    let start = *first.get_or_insert(now);
                    deadline = Some((now + self.opts.debounce).min(start + max_wait));
                }
            }
            let foreign = self.batch_is_foreign(&batch, rescan);
            if requested {
                self.say(Report::Refresh);
                self.pass(Trigger::Change);
            } else if let Some(changed) = foreign {
                self.say(Report::ChangeSeen {
                    path: changed,
                    more: batch.len().saturating_sub(1),
                });
                self.pass(Trigger::Change);
            }
            // Directories replaced without a change that mattered (an old ConfigMap
            // directory removed) still need their watches brought up to date.
            self.sync_watches();
        }
    }
}

fn with_hint(msg: String, hint: &str) -> String {
    if hint.is_empty() {
        msg
    } else {
        format!("{msg}; hint: {hint}")
    }
}

/// What a failed regeneration is reported as: a file that is there but cannot be read or
/// written is said to be that (with the reason, e.g. permission denied), not a config
/// error. A missing config stays a config error (the operator's to fix by saving it).
pub fn failure_report(e: &RewriteError) -> Report {
    match e {
        RewriteError::Io { op, path, source } if source.kind() != std::io::ErrorKind::NotFound => {
            let why = match source.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    // SAFETY: geteuid has no preconditions.
                    let uid = unsafe { libc::geteuid() };
                    format!("permission denied (vipcheck runs as uid {uid}; check the owner and mode of the file and its directory)")
                }
                _ => source.to_string(),
            };
            Report::FileError(format!("cannot {op} {}: {why}", path.display()))
        }
        other => Report::ConfigError(one_line(other)),
    }
}

/// A rewrite error as one log line: `FILE:LINE:COL: message (hint: ...)`.
pub fn one_line(e: &RewriteError) -> String {
    match e {
        RewriteError::Config(d) => diagnostic_line(d),
        other => other.to_string().replace('\n', " "),
    }
}

pub(crate) fn diagnostic_line(d: &Diagnostic) -> String {
    let mut s = String::new();
    if let Some(loc) = &d.location {
        s.push_str(&format!(
            "{}:{}:{}: ",
            loc.path.display(),
            loc.line,
            loc.col
        ));
    }
    s.push_str(&d.message.replace('\n', " "));
    if let Some(h) = &d.hint {
        s.push_str(&format!(" (hint: {})", h.replace('\n', " ")));
    }
    // Text from the config reaches a terminal or the journal: no control characters.
    crate::config::diagnostic::escape_control(&s, false).into_owned()
}

/// Writes `bytes` to a temp file beside `path`, syncs it and renames it over `path`,
/// keeping the old file's permissions.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let mut tmp = tempfile::Builder::new()
        .prefix(".vipcheck-")
        .suffix(".tmp")
        .tempfile_in(dir.unwrap_or(Path::new(".")))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if let Ok(m) = std::fs::metadata(path) {
        tmp.as_file().set_permissions(m.permissions())?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// How the watcher validates and reloads for `args` (the daemon of `format`, or
/// `--reload` / `--reload-command`), watching `config` (absolute).
pub fn daemon_options(args: &WatchInputs, format: Format, config: PathBuf) -> Options {
    let validation = match (format, find_program("keepalived")) {
        (Format::Keepalived, Some(program)) => Validation::Keepalived {
            program,
            config_id: args.generate.config_id.clone(),
        },
        _ => Validation::None,
    };
    let reload =
        match (&args.reload_command, args.reload, format) {
            (Some(command), ..) => Reload::Command {
                command: command.clone(),
            },
            (None, ReloadChoice::None, _) => Reload::None,
            (None, ReloadChoice::Keepalived, _)
            | (None, ReloadChoice::Auto, Format::Keepalived) => Reload::Signal {
                pidfile: args
                    .pidfile
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/run/keepalived.pid")),
                daemon: "keepalived".into(),
            },
            (None, ReloadChoice::Ldirectord, _)
            | (None, ReloadChoice::Auto, Format::Ldirectord) => Reload::Ldirectord {
                program: find_program("ldirectord").unwrap_or_else(|| "ldirectord".into()),
            },
        };
    Options {
        config,
        debounce: args.debounce,
        in_place: args.in_place,
        validation,
        reload,
    }
}

/// Runs `vipcheck watch`; returns the process exit code: 0 stopped by SIGTERM/SIGINT (or
/// `--once` done), 1 watching failed (or `--once` met a bad config), 2 usage error.
/// Hands SIGTERM and SIGINT (stop) and SIGHUP (a pass now) to `stopper`, from a thread of
/// their own; close the returned handle once the watcher has returned.
pub fn follow_signals(stopper: Stopper) -> std::io::Result<signal_hook::iterator::Handle> {
    let mut signals =
        signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT, libc::SIGHUP])?;
    let handle = signals.handle();
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == libc::SIGHUP {
                stopper.refresh();
            } else {
                stopper.stop();
                break;
            }
        }
    });
    Ok(handle)
}

pub fn run_cli(args: WatchInputs) -> i32 {
    let debounce = args.debounce;
    if debounce.is_zero() {
        eprintln!("vipcheck: --debounce must be above zero; hint: e.g. --debounce 100ms");
        return 2;
    }
    let format = match resolve_format(&args.config, args.generate.format) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("vipcheck: {e}");
            return 2;
        }
    };
    let config = paths::absolute(&args.config);
    let regen = match RewriteRegenerator::from_args(args.clone(), format, &config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vipcheck: {e}");
            return 2;
        }
    };
    let opts = daemon_options(&args, format, config);
    let mut logger = Logger::stderr();
    let mut watcher = Watcher::new(regen, opts, Box::new(move |r| logger.log(&r)));
    if args.once {
        return match watcher.pass(Trigger::Start) {
            PassOutcome::Unchanged | PassOutcome::Done { .. } => 0,
            // The config is fine and written; the daemon reads it when it starts.
            PassOutcome::ReloadFailed { .. } => 0,
            PassOutcome::ConfigError | PassOutcome::Invalid => 1,
        };
    }
    let stopper = watcher.stopper();
    let handle = match follow_signals(stopper) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("vipcheck: cannot catch SIGTERM/SIGINT/SIGHUP: {e}");
            return 1;
        }
    };
    let code = match watcher.run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vipcheck: {}", with_hint(e.to_string(), e.hint()));
            1
        }
    };
    handle.close();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn located_config_error_is_one_line_with_file_line_col() {
        let text = "virtual_server 192.0.2.1 80 {\n  lb_kind FOO\n";
        let at = text.find("FOO").unwrap();
        let d = Diagnostic::error("unknown forwarding method 'FOO'")
            .at_location(crate::config::Location::in_text(
                "k.conf".into(),
                text,
                at,
                at + 3,
            ))
            .with_hint("use NAT, DR or TUN");
        assert_eq!(
            one_line(&RewriteError::from(d)),
            "k.conf:2:11: unknown forwarding method 'FOO' (hint: use NAT, DR or TUN)"
        );
    }

    #[test]
    fn inotify_limit_errors_carry_the_sysctl_hint() {
        let e = notify::Error::new(notify::ErrorKind::MaxFilesWatch).add_path("/etc".into());
        let (msg, hint) = describe_notify_error(&e);
        assert!(msg.contains("watch limit") && msg.contains("/etc"), "{msg}");
        assert!(hint.contains("fs.inotify.max_user_watches"));
        let e = notify::Error::io(std::io::Error::from_raw_os_error(libc::EMFILE));
        let (_, hint) = describe_notify_error(&e);
        assert!(hint.contains("fs.inotify.max_user_instances"));
    }
}
