//! The daemon side of watching: validate a generated config with the daemon's own
//! checker, and tell the running daemon to reload it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a validation or reload command may run before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How a generated config is checked before the daemon is told to load it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    None,
    /// `PROGRAM --config-test -f OUTPUT [-i ID]`, judged as [`ConfigTest::judge`] says.
    Keepalived {
        program: PathBuf,
        config_id: Option<String>,
    },
}

/// One problem the validator reported, with its location when it gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub path: Option<PathBuf>,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.path, self.line) {
            (Some(p), Some(l)) => write!(f, "{}:{l}: {}", p.display(), self.message),
            (Some(p), None) => write!(f, "{}: {}", p.display(), self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl ValidationError {
    fn unlocated(message: String) -> Self {
        ValidationError {
            path: None,
            line: None,
            message,
        }
    }

    /// keepalived's own word for a default it filled in or a thing it ignores: it still
    /// loads the config, with the same effect as today.
    pub fn is_warning(&self) -> bool {
        let m = self.message.to_ascii_lowercase();
        m.starts_with("warning") || m.contains(", setting default")
    }
}

/// keepalived 2.2.7 `--config-test` exit codes (`config_test_exit()` in its main.c; the man
/// page's list is one lower than what the program does).
pub mod keepalived_exit {
    pub const OK: i32 = 0;
    /// The configuration cannot be run (a file not found, an interface missing, a fatal
    /// error): keepalived refuses it.
    pub const CANNOT_RUN: i32 = 4;
    /// Errors or warnings, and keepalived runs after dropping or defaulting what it
    /// complained about.
    pub const RUNS_WITH_ERRORS: i32 = 5;
    /// Scripts are configured but `enable_script_security` is not set: keepalived runs
    /// without ever starting the MISC_CHECK scripts.
    pub const SCRIPT_SECURITY: i32 = 6;
}

/// What `keepalived --config-test` said of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigTest {
    /// The exit code (`None`: killed by a signal or the timeout).
    pub code: Option<i32>,
    /// How it ended, as text for the log.
    pub status: String,
    /// Every line it printed, located where it said where.
    pub messages: Vec<ValidationError>,
}

/// How a config-test is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// keepalived loads it as written, or with nothing the running config does not already
    /// have: these lines are what it said (warnings, and errors the running config shares).
    Accepted(Vec<ValidationError>),
    /// keepalived would refuse it, or it is worse than the running config: why.
    Rejected(Vec<ValidationError>),
}

impl ConfigTest {
    /// The errors (not warnings) it reported, without their locations: what two versions
    /// of a config can be compared by (generated blocks move line numbers).
    pub fn errors(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| !m.is_warning())
            .map(|m| m.message.clone())
            .collect()
    }

    /// The rule: exit 0 is accepted. Exit 5 (keepalived runs, dropping or defaulting what
    /// it complained of) is accepted when every error it reports is one `running` (the
    /// errors of the config the daemon runs now) already has; warnings never count.
    /// Anything else (4: keepalived cannot run it, 6: the check scripts would never run,
    /// a crash or a timeout) is rejected.
    pub fn judge(&self, running: &[String]) -> Judgement {
        match self.code {
            Some(keepalived_exit::OK) => Judgement::Accepted(self.messages.clone()),
            Some(keepalived_exit::RUNS_WITH_ERRORS) => {
                let mut known: Vec<&str> = running.iter().map(String::as_str).collect();
                let mut new = Vec::new();
                for m in self.messages.iter().filter(|m| !m.is_warning()) {
                    match known.iter().position(|k| *k == m.message) {
                        Some(i) => {
                            known.swap_remove(i);
                        }
                        None => new.push(m.clone()),
                    }
                }
                if new.is_empty() {
                    Judgement::Accepted(self.messages.clone())
                } else {
                    Judgement::Rejected(new)
                }
            }
            _ => {
                let why = match self.code {
                    Some(keepalived_exit::CANNOT_RUN) => "keepalived cannot run this config",
                    Some(keepalived_exit::SCRIPT_SECURITY) => {
                        "keepalived would never run the check scripts (script security)"
                    }
                    _ => "keepalived --config-test failed",
                };
                let mut reasons = self.messages.clone();
                reasons.push(ValidationError::unlocated(format!(
                    "{why} ({})",
                    self.status
                )));
                Judgement::Rejected(reasons)
            }
        }
    }
}

impl Validation {
    /// True when there is a validator to run.
    pub fn is_enabled(&self) -> bool {
        !matches!(self, Validation::None)
    }

    /// Runs the validator on `output`; `None` when there is none.
    pub fn test(&self, output: &Path) -> Option<ConfigTest> {
        let (program, config_id) = match self {
            Validation::None => return None,
            Validation::Keepalived { program, config_id } => (program, config_id),
        };
        // keepalived --config-test exits 0 for a file that does not exist.
        if !output.is_file() {
            return Some(ConfigTest {
                code: None,
                status: "not run".into(),
                messages: vec![ValidationError {
                    path: Some(output.to_path_buf()),
                    line: None,
                    message: "the generated config is missing".into(),
                }],
            });
        }
        let mut cmd = Command::new(program);
        cmd.arg("--config-test").arg("-f").arg(output);
        if let Some(id) = config_id {
            cmd.arg("-i").arg(id);
        }
        let run = match run_bounded(&mut cmd) {
            Ok(run) => run,
            Err(e) => {
                return Some(ConfigTest {
                    code: None,
                    status: "not run".into(),
                    messages: vec![ValidationError::unlocated(format!(
                        "cannot run {} --config-test: {e}",
                        program.display()
                    ))],
                })
            }
        };
        let dir = output.parent().unwrap_or(Path::new("."));
        let messages = run
            .output
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| parse_keepalived_line(l, dir))
            .collect();
        Some(ConfigTest {
            code: run.code,
            status: run.status,
            messages,
        })
    }

    /// Checks `output` against the errors of the config the daemon runs now.
    pub fn check(&self, output: &Path, running: &[String]) -> Judgement {
        match self.test(output) {
            None => Judgement::Accepted(Vec::new()),
            Some(t) => t.judge(running),
        }
    }
}

/// Reads one line of keepalived's config-test output. keepalived writes located errors as
/// `(FILE: Line N) MESSAGE`, FILE as given on its command line or include.
pub fn parse_keepalived_line(line: &str, dir: &Path) -> ValidationError {
    let located = line.strip_prefix('(').and_then(|rest| {
        let (loc, msg) = rest.split_once(") ")?;
        let (file, num) = loc.rsplit_once(": Line ")?;
        let num: usize = num.trim().parse().ok()?;
        Some((file, num, msg))
    });
    let in_main = line.strip_prefix("(Line ").and_then(|rest| {
        let (num, msg) = rest.split_once(") ")?;
        Some((num.trim().parse::<usize>().ok()?, msg))
    });
    if let Some((num, msg)) = in_main {
        return ValidationError {
            path: None,
            line: Some(num),
            message: msg.trim_start_matches("PARSER : ").trim().to_string(),
        };
    }
    match located {
        Some((file, num, msg)) => ValidationError {
            path: Some(dir.join(file)),
            line: Some(num),
            message: msg.trim_start_matches("PARSER : ").trim().to_string(),
        },
        None => ValidationError {
            path: None,
            line: None,
            message: line.trim().to_string(),
        },
    }
}

/// How the daemon is told to load the new config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    None,
    /// SIGHUP to the pid in the pidfile, once that pid is shown to be `daemon` (its
    /// executable's or command's name): a pidfile left behind may hold a reused pid.
    Signal {
        pidfile: PathBuf,
        daemon: String,
    },
    /// `PROGRAM OUTPUT reload`, skipped when the output sets `autoreload = yes`
    /// (ldirectord then reads the file itself).
    Ldirectord {
        program: PathBuf,
    },
    /// `sh -c COMMAND`, with `VIPCHECK_OUTPUT` set to the generated config.
    Command {
        command: String,
    },
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    Signalled {
        pid: i32,
        pidfile: PathBuf,
    },
    Ran {
        command: String,
    },
    /// ldirectord with `autoreload = yes` reads the file itself.
    Autoreload,
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reloaded::Signalled { pid, pidfile } => {
                write!(f, "reloaded pid {pid} (SIGHUP, from {})", pidfile.display())
            }
            Reloaded::Ran { command } => write!(f, "reloaded with `{command}`"),
            Reloaded::Autoreload => {
                f.write_str("not reloading: ldirectord has autoreload = yes and reads the file")
            }
        }
    }
}

/// Why a reload did not happen; the watcher logs it and goes on.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the daemon is not running: no pidfile at {pidfile}; it will read the new config when it starts")]
    NoPidfile { pidfile: PathBuf },
    #[error("cannot read the pidfile {pidfile}: {source}")]
    Pidfile {
        pidfile: PathBuf,
        source: std::io::Error,
    },
    #[error("the pidfile {pidfile} does not hold a process id ({text:?}); check --pidfile")]
    BadPidfile { pidfile: PathBuf, text: String },
    #[error("the daemon is not running: pid {pid} from {pidfile} is gone (stale pidfile); it will read the new config when it starts")]
    DeadPid { pid: i32, pidfile: PathBuf },
    #[error("not signalling pid {pid} from {pidfile}: it is {found}, not {daemon} (a stale pidfile whose pid was reused?); check --pidfile")]
    NotTheDaemon {
        pid: i32,
        pidfile: PathBuf,
        daemon: String,
        found: String,
    },
    #[error("cannot signal pid {pid} from {pidfile}: {source}")]
    Signal {
        pid: i32,
        pidfile: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}){}", if output.is_empty() { String::new() } else { format!(": {}", output.trim().replace('\n', " | ")) })]
    Failed {
        command: String,
        status: String,
        output: String,
    },
}

impl Reload {
    /// Tells the daemon to reload `output` (the config it reads); `Ok(None)` when there
    /// is nothing to tell.
    pub fn reload(&self, output: &Path) -> Result<Option<Reloaded>, ReloadError> {
        match self {
            Reload::None => Ok(None),
            Reload::Signal { pidfile, daemon } => {
                signal_pidfile(pidfile, daemon, libc::SIGHUP).map(Some)
            }
            Reload::Ldirectord { program } => {
                if autoreload_enabled(output) {
                    return Ok(Some(Reloaded::Autoreload));
                }
                let mut cmd = Command::new(program);
                cmd.arg(output).arg("reload");
                let command = format!("{} {} reload", program.display(), output.display());
                run_reload(cmd, command).map(Some)
            }
            Reload::Command { command } => {
                let mut cmd = Command::new("/bin/sh");
                cmd.arg("-c").arg(command).env("VIPCHECK_OUTPUT", output);
                run_reload(cmd, command.clone()).map(Some)
            }
        }
    }
}

fn run_reload(mut cmd: Command, command: String) -> Result<Reloaded, ReloadError> {
    let run = run_bounded(&mut cmd).map_err(|source| ReloadError::Spawn {
        command: command.clone(),
        source,
    })?;
    if run.success {
        Ok(Reloaded::Ran { command })
    } else {
        Err(ReloadError::Failed {
            command,
            status: run.status,
            output: run.output,
        })
    }
}

/// What process `pid` runs: the file name of its executable, and its command name (the
/// first 15 bytes of the name it was started with). `None` when it is gone.
fn process_names(pid: i32) -> Option<(Option<String>, String)> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let comm = std::fs::read_to_string(proc.join("comm")).ok()?;
    let exe = std::fs::read_link(proc.join("exe")).ok().and_then(|p| {
        let name = p.file_name()?.to_string_lossy().into_owned();
        // An executable replaced by a package upgrade reads "NAME (deleted)".
        Some(name.trim_end_matches(" (deleted)").to_string())
    });
    Some((exe, comm.trim_end_matches('\n').to_string()))
}

/// A process held by a pidfd (Linux 5.3 and later).
struct PidFd(std::os::fd::OwnedFd);

impl PidFd {
    /// `None` when the kernel has no pidfds or the process is gone (then `kill` decides).
    fn open(pid: i32) -> Option<PidFd> {
        use std::os::fd::FromRawFd;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
        // SAFETY: fd is a descriptor we just opened and own.
        Some(PidFd(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    /// 0, or -1 with errno set, as kill(2).
    fn signal(&self, signal: libc::c_int) -> libc::c_int {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal on a descriptor we own, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        rc as libc::c_int
    }
}

/// True when the process names say `daemon`; the kernel keeps 15 bytes of a command name.
fn is_daemon(exe: Option<&str>, comm: &str, daemon: &str) -> bool {
    let short = daemon.get(..daemon.len().min(15)).unwrap_or(daemon);
    exe == Some(daemon) || comm == short
}

fn signal_pidfile(
    pidfile: &Path,
    daemon: &str,
    signal: libc::c_int,
) -> Result<Reloaded, ReloadError> {
    let text = std::fs::read_to_string(pidfile).map_err(|source| {
        let pidfile = pidfile.to_path_buf();
        if source.kind() == std::io::ErrorKind::NotFound {
            ReloadError::NoPidfile { pidfile }
        } else {
            ReloadError::Pidfile { pidfile, source }
        }
    })?;
    let pid: i32 = match text.trim().parse() {
        Ok(pid) if pid > 0 => pid,
        _ => {
            return Err(ReloadError::BadPidfile {
                pidfile: pidfile.to_path_buf(),
                text: text.trim().chars().take(40).collect(),
            })
        }
    };
    // Hold the process by a pidfd while its names are read, so the signal goes to the
    // process that was checked even if the pid is reused in between.
    let pidfd = PidFd::open(pid);
    if let Some((exe, comm)) = process_names(pid) {
        if !is_daemon(exe.as_deref(), &comm, daemon) {
            return Err(ReloadError::NotTheDaemon {
                pid,
                pidfile: pidfile.to_path_buf(),
                daemon: daemon.to_string(),
                found: match exe {
                    Some(exe) if exe != comm => format!("`{comm}` ({exe})"),
                    _ => format!("`{comm}`"),
                },
            });
        }
    }
    let rc = match &pidfd {
        Some(fd) => fd.signal(signal),
        // SAFETY: kill(2) with a positive pid and a valid signal number has no memory
        // effects.
        None => unsafe { libc::kill(pid, signal) },
    };
    if rc == 0 {
        return Ok(Reloaded::Signalled {
            pid,
            pidfile: pidfile.to_path_buf(),
        });
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Err(ReloadError::DeadPid {
            pid,
            pidfile: pidfile.to_path_buf(),
        })
    } else {
        Err(ReloadError::Signal {
            pid,
            pidfile: pidfile.to_path_buf(),
            source: err,
        })
    }
}

/// True when an ldirectord config sets `autoreload = yes` (a column-0 global).
pub fn autoreload_enabled(config: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(config) else {
        return false;
    };
    text.lines().any(|line| {
        if line.starts_with([' ', '\t']) {
            return false;
        }
        let line = line.split('#').next().unwrap_or("");
        match line.split_once('=') {
            Some((k, v)) => {
                k.trim().eq_ignore_ascii_case("autoreload") && v.trim().eq_ignore_ascii_case("yes")
            }
            None => false,
        }
    })
}

/// Looks `name` up in `PATH` (and the sbin directories a service's PATH may lack).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct Run {
    success: bool,
    /// The exit code (`None` when killed).
    code: Option<i32>,
    status: String,
    /// stdout and stderr, as text.
    output: String,
}

/// Runs `cmd` with stdin closed and its output collected, killing it after
/// [`COMMAND_TIMEOUT`].
fn run_bounded(cmd: &mut Command) -> std::io::Result<Run> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    // Read both pipes on threads so a chatty child cannot block on a full pipe.
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let start = Instant::now();
    let (status, code) = loop {
        if let Some(status) = child.try_wait()? {
            break (status.to_string(), status.code());
        }
        if start.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break (format!("killed after {}s", COMMAND_TIMEOUT.as_secs()), None);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let success = code == Some(0);
    let mut output = out_t.join().unwrap_or_default();
    output.push_str(&err_t.join().unwrap_or_default());
    Ok(Run {
        success,
        code,
        status,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_located_line_becomes_file_and_line() {
        let e = parse_keepalived_line(
            "(out.conf: Line 12) PARSER : unknown [FOO] routing method for virtual server.",
            Path::new("/etc/keepalived"),
        );
        assert_eq!(
            e.path.as_deref(),
            Some(Path::new("/etc/keepalived/out.conf"))
        );
        assert_eq!(e.line, Some(12));
        assert_eq!(
            e.message,
            "unknown [FOO] routing method for virtual server."
        );
        assert_eq!(
            e.to_string(),
            "/etc/keepalived/out.conf:12: unknown [FOO] routing method for virtual server."
        );
    }

    fn test_of(code: i32, lines: &[&str]) -> ConfigTest {
        ConfigTest {
            code: Some(code),
            status: format!("exit status: {code}"),
            messages: lines
                .iter()
                .map(|l| parse_keepalived_line(l, Path::new("/etc/keepalived")))
                .collect(),
        }
    }

    #[test]
    fn warnings_pass_and_new_errors_do_not() {
        let warned = test_of(
            5,
            &["Virtual server [192.0.2.20]:tcp:80: no scheduler set, setting default 'wlc'"],
        );
        assert!(matches!(warned.judge(&[]), Judgement::Accepted(n) if n.len() == 1));
        let error = test_of(
            5,
            &["(k.conf: Line 6) PARSER : unknown [FOO] routing method for virtual server."],
        );
        match error.judge(&[]) {
            Judgement::Rejected(why) => {
                assert_eq!(why.len(), 1);
                assert_eq!(why[0].line, Some(6));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_the_running_config_has_pass_once_each() {
        let running = vec!["Unknown keyword 'nb_get_retry'".to_string()];
        let same = test_of(5, &["(k.conf: Line 12) Unknown keyword 'nb_get_retry'"]);
        assert!(matches!(same.judge(&running), Judgement::Accepted(_)));
        let twice = test_of(
            5,
            &[
                "(k.conf: Line 12) Unknown keyword 'nb_get_retry'",
                "(k.conf: Line 20) Unknown keyword 'nb_get_retry'",
            ],
        );
        match twice.judge(&running) {
            Judgement::Rejected(why) => assert_eq!(why[0].line, Some(20)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exit_codes_other_than_0_and_5_are_refusals_even_when_known() {
        let security = test_of(
            6,
            &["SECURITY VIOLATION - check scripts are being executed but script_security not enabled."],
        );
        let running = security.errors();
        match security.judge(&running) {
            Judgement::Rejected(why) => {
                assert!(
                    why.last().unwrap().message.contains("script security"),
                    "{why:?}"
                )
            }
            other => panic!("{other:?}"),
        }
        let cannot_run = test_of(4, &[]);
        assert!(matches!(cannot_run.judge(&[]), Judgement::Rejected(_)));
        let killed = ConfigTest {
            code: None,
            status: "killed after 60s".into(),
            messages: Vec::new(),
        };
        assert!(matches!(killed.judge(&[]), Judgement::Rejected(_)));
        assert!(matches!(test_of(0, &[]).judge(&[]), Judgement::Accepted(_)));
    }

    #[test]
    fn daemon_is_told_by_executable_or_command_name() {
        assert!(is_daemon(Some("keepalived"), "keepalived", "keepalived"));
        assert!(is_daemon(None, "keepalived", "keepalived"));
        assert!(!is_daemon(Some("sleep"), "sleep", "keepalived"));
        // An interpreter runs it (ldirectord is perl): the command name still tells.
        assert!(is_daemon(Some("perl"), "ldirectord", "ldirectord"));
        // The kernel keeps 15 bytes of the command name.
        assert!(is_daemon(
            None,
            "a-daemon-with-a",
            "a-daemon-with-a-long-name"
        ));
    }

    #[test]
    fn signal_to_a_process_that_is_not_the_daemon_is_refused() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // spawn returns once the exec has released the parent, which is before the kernel
        // renames the child: until then its command name is this test thread's.
        let comm = format!("/proc/{}/comm", sleeper.id());
        let renamed = (0..200).any(|_| {
            let named = std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep");
            if !named {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            named
        });
        assert!(renamed, "the child was not renamed `sleep` within 2 s");
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("k.pid");
        std::fs::write(&pidfile, format!("{}\n", sleeper.id())).unwrap();
        let r = Reload::Signal {
            pidfile,
            daemon: "keepalived".into(),
        };
        let got = r.reload(Path::new("/x"));
        let alive = sleeper.try_wait().unwrap().is_none();
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        match got {
            Err(ReloadError::NotTheDaemon { found, .. }) => assert_eq!(found, "`sleep`"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(alive);
    }

    #[test]
    fn keepalived_unlocated_line_kept_as_message() {
        let e = parse_keepalived_line("There are 1 missing '}'s or extra '{'s", Path::new("/x"));
        assert_eq!(e.path, None);
        assert_eq!(e.to_string(), "There are 1 missing '}'s or extra '{'s");
    }

    #[test]
    fn autoreload_read_from_column_zero_globals_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.cf");
        std::fs::write(&p, "checktimeout=3\nautoreload = Yes # yes\n").unwrap();
        assert!(autoreload_enabled(&p));
        std::fs::write(&p, "virtual=1.2.3.4:80\n\tautoreload=yes\nautoreload=no\n").unwrap();
        assert!(!autoreload_enabled(&p));
    }

    #[test]
    fn missing_pidfile_and_dead_pid_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("k.pid");
        let r = Reload::Signal {
            pidfile: pidfile.clone(),
            daemon: "keepalived".into(),
        };
        assert!(matches!(
            r.reload(Path::new("/x")),
            Err(ReloadError::NoPidfile { .. })
        ));
        std::fs::write(&pidfile, "garbage\n").unwrap();
        assert!(matches!(
            r.reload(Path::new("/x")),
            Err(ReloadError::BadPidfile { .. })
        ));
        // pid_max itself is never a valid pid (pids run below it).
        let pid_max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::fs::write(&pidfile, format!("{pid_max}\n")).unwrap();
        match r.reload(Path::new("/x")) {
            Err(ReloadError::DeadPid { pid, .. }) => assert_eq!(pid, pid_max),
            other => panic!("expected a dead pid, got {other:?}"),
        }
    }

    #[test]
    fn reload_command_sees_output_and_reports_failure() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("m");
        let ok = Reload::Command {
            command: format!("echo \"$VIPCHECK_OUTPUT\" > {}", marker.display()),
        };
        assert!(matches!(
            ok.reload(Path::new("/etc/out.conf")),
            Ok(Some(Reloaded::Ran { .. }))
        ));
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "/etc/out.conf\n");
        let bad = Reload::Command {
            command: "echo nope >&2; exit 3".into(),
        };
        let err = bad.reload(Path::new("/x")).unwrap_err().to_string();
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("nope"), "{err}");
    }
}
