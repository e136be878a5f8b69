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
    /// `PROGRAM --config-test -f OUTPUT [-i ID]`; any non-zero exit is a failure
    /// (keepalived exits 5 on config errors and warnings, 6 on script-security problems).
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

impl Validation {
    /// Checks `output`; `Ok` when the daemon would load it, else every problem reported.
    pub fn check(&self, output: &Path) -> Result<(), Vec<ValidationError>> {
        let (program, config_id) = match self {
            Validation::None => return Ok(()),
            Validation::Keepalived { program, config_id } => (program, config_id),
        };
        // keepalived --config-test exits 0 for a file that does not exist.
        if !output.is_file() {
            return Err(vec![ValidationError {
                path: Some(output.to_path_buf()),
                line: None,
                message: "the generated config is missing".into(),
            }]);
        }
        let mut cmd = Command::new(program);
        cmd.arg("--config-test").arg("-f").arg(output);
        if let Some(id) = config_id {
            cmd.arg("-i").arg(id);
        }
        let run = run_bounded(&mut cmd).map_err(|e| {
            vec![ValidationError {
                path: None,
                line: None,
                message: format!("cannot run {} --config-test: {e}", program.display()),
            }]
        })?;
        if run.success {
            return Ok(());
        }
        let dir = output.parent().unwrap_or(Path::new("."));
        let mut errors: Vec<ValidationError> = run
            .output
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| parse_keepalived_line(l, dir))
            .collect();
        if errors.is_empty() {
            errors.push(ValidationError {
                path: Some(output.to_path_buf()),
                line: None,
                message: format!("keepalived --config-test failed ({})", run.status),
            });
        }
        Err(errors)
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
    /// SIGHUP to the pid in the pidfile (keepalived).
    Signal {
        pidfile: PathBuf,
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
            Reload::Signal { pidfile } => signal_pidfile(pidfile, libc::SIGHUP).map(Some),
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

fn signal_pidfile(pidfile: &Path, signal: libc::c_int) -> Result<Reloaded, ReloadError> {
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
    // SAFETY: kill(2) with a positive pid and a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(pid, signal) };
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
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status.to_string();
        }
        if start.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break format!("killed after {}s", COMMAND_TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let success = status == "exit status: 0";
    let mut output = out_t.join().unwrap_or_default();
    output.push_str(&err_t.join().unwrap_or_default());
    Ok(Run {
        success,
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
