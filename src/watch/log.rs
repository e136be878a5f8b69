//! What the watcher reports, one line per event, in a form journald keeps readable: plain
//! `vipcheck: ...` lines, with a `<N>` syslog priority prefix when stderr is the journal.

use std::io::Write;
use std::path::PathBuf;

use super::daemon::{Reloaded, ValidationError};

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The first pass is done and the watches are in place.
    Watching {
        config: PathBuf,
        dirs: usize,
    },
    /// A pass was asked for (SIGHUP).
    Refresh,
    /// A change worth a pass (the first changed path, and how many more in the burst).
    ChangeSeen {
        path: PathBuf,
        more: usize,
    },
    Regenerated {
        files: Vec<PathBuf>,
    },
    /// The pass wrote nothing and the daemon's config did not change.
    Unchanged,
    /// The sources could not be parsed (one located line).
    ConfigError(String),
    /// The parser warns about the config (one located line), once per watcher.
    ConfigWarning(String),
    /// A file could not be read or written (permissions, a full disk): what and why.
    FileError(String),
    /// keepalived loads the output but said this of it (a warning, or an error the
    /// running config has too).
    Tolerated(ValidationError),
    ValidationFailed(ValidationError),
    /// After a failed validation the written files were put back as they were.
    KeptLastGood {
        restored: usize,
    },
    /// After a failed validation of an in-place config: nothing to roll back, no reload.
    NotReloaded,
    Reloaded(Reloaded),
    ReloadFailed(String),
    WatchError(String),
    Stopping,
}

/// syslog priorities, as journald reads them from a `<N>` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

impl Report {
    pub fn priority(&self) -> Priority {
        match self {
            Report::ConfigError(_) | Report::FileError(_) | Report::ValidationFailed(_) => {
                Priority::Error
            }
            Report::ReloadFailed(_)
            | Report::WatchError(_)
            | Report::NotReloaded
            | Report::ConfigWarning(_)
            | Report::Tolerated(_) => Priority::Warning,
            Report::KeptLastGood { .. } | Report::Reloaded(_) | Report::Regenerated { .. } => {
                Priority::Notice
            }
            _ => Priority::Info,
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Report::Watching { config, dirs } => write!(
                f,
                "watching {} ({dirs} director{})",
                config.display(),
                if *dirs == 1 { "y" } else { "ies" }
            ),
            Report::Refresh => f.write_str("pass requested (SIGHUP)"),
            Report::ChangeSeen { path, more: 0 } => write!(f, "change seen: {}", path.display()),
            Report::ChangeSeen { path, more } => {
                write!(f, "change seen: {} and {more} more", path.display())
            }
            Report::Regenerated { files } => {
                let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "regenerated {} file{}: {}",
                    files.len(),
                    if files.len() == 1 { "" } else { "s" },
                    names.join(", ")
                )
            }
            Report::Unchanged => f.write_str("no change in the generated config"),
            Report::ConfigError(e) => write!(f, "config error: {e}; output left as it was"),
            Report::ConfigWarning(w) => write!(f, "config warning: {w}"),
            Report::FileError(e) => write!(f, "{e}; output left as it was"),
            Report::Tolerated(e) => write!(
                f,
                "keepalived --config-test: {e} (accepted: keepalived loads it, and it is no worse than the running config)"
            ),
            Report::ValidationFailed(e) => write!(f, "validation failed: {e}"),
            Report::KeptLastGood { restored } => write!(
                f,
                "not reloading; kept the last good output ({restored} file{} restored)",
                if *restored == 1 { "" } else { "s" }
            ),
            Report::NotReloaded => {
                f.write_str("not reloading; the daemon keeps the config it loaded last")
            }
            Report::Reloaded(r) => write!(f, "{r}"),
            Report::ReloadFailed(e) => write!(f, "reload failed: {e}; still watching"),
            Report::WatchError(e) => write!(f, "watch error: {e}"),
            Report::Stopping => f.write_str("stopping"),
        }
    }
}

/// Writes reports to stderr.
pub struct Logger {
    /// Prefix each line with `<N>` (stderr is connected to journald).
    priorities: bool,
}

impl Logger {
    /// systemd sets `JOURNAL_STREAM` when stderr goes to the journal.
    pub fn stderr() -> Self {
        Logger {
            priorities: std::env::var_os("JOURNAL_STREAM").is_some(),
        }
    }

    pub fn line(&self, r: &Report) -> String {
        let text = r.to_string().replace('\n', " ");
        if self.priorities {
            format!("<{}>vipcheck: {text}", r.priority() as u8)
        } else {
            format!("vipcheck: {text}")
        }
    }

    pub fn log(&mut self, r: &Report) {
        let line = self.line(r);
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journald_lines_carry_priority_and_terminal_lines_do_not() {
        let r = Report::ConfigError("k.conf:3:5: expected '{'".into());
        let journal = Logger { priorities: true };
        let plain = Logger { priorities: false };
        assert_eq!(
            journal.line(&r),
            "<3>vipcheck: config error: k.conf:3:5: expected '{'; output left as it was"
        );
        assert_eq!(
            plain.line(&Report::Regenerated {
                files: vec!["/etc/k.conf".into()]
            }),
            "vipcheck: regenerated 1 file: /etc/k.conf"
        );
    }
}
