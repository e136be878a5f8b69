//! `vipcheck rewrite`: plan, then show the diff or write. Also the options every command
//! that reads a config and generates checks shares ([`GenerateInputs`]), and their reading
//! into [`GenerateOptions`].

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{plan, Feed, GenerateOptions, RewriteError, DEFAULT_STATE_DIR};
use crate::config::diagnostic::escape_control;
use crate::config::{detect_format, Diagnostic, Format};

/// Whether to colour what goes to a terminal (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    /// Colour when the output is a terminal.
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour, given whether the output is a terminal.
    pub fn colors(self, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal,
        }
    }
}

/// What `rewrite`, `watch` and `status` are told about the config and the checks to
/// generate, as given (read by [`generate_options`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateInputs {
    /// The config's language, when its file name does not tell.
    pub format: Option<Format>,
    /// VIPs of fwmark services, each written `MARK=IP`.
    pub fwmark_vips: Vec<String>,
    /// The vipcheck binary the generated checks run (default: this executable).
    pub probe_path: Option<PathBuf>,
    /// The probe's own timeout.
    pub probe_timeout: Duration,
    /// A directory whose templates replace the embedded ones of the same name.
    pub templates: Option<PathBuf>,
    /// keepalived's config id (`-i`).
    pub config_id: Option<String>,
    /// Also run the application check through the VIP.
    pub app_check: bool,
    /// What the generated checks read (`--feed`).
    pub feed: FeedChoice,
    /// With `--feed agent`: the agent's verdict directory (default `/run/vipcheck`).
    pub state_dir: Option<PathBuf>,
}

/// `--feed`: a probe per check (keepalived MISC_CHECK) or the agent's verdict files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedChoice {
    #[default]
    Probe,
    Agent,
}

/// What `vipcheck rewrite` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteInputs {
    /// The keepalived.conf or ldirectord.cf to read.
    pub config: PathBuf,
    /// Print a unified diff; write nothing.
    pub dry_run: bool,
    /// Rewrite the config (and the included files that change) in place.
    pub in_place: bool,
    /// With `in_place`: keep each changed file's previous text as FILE.bak.
    pub backup: bool,
    /// Write the result here: a file, or a directory for a config with includes.
    pub output: Option<PathBuf>,
    /// Colour the diff.
    pub color: ColorChoice,
    pub generate: GenerateInputs,
}

/// Exit codes: 0 done (or, with --dry-run, nothing to change), 1 changes pending
/// (--dry-run), 2 error.
pub fn run_cli(args: RewriteInputs) -> i32 {
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", escape_control(&e.to_string(), true));
            2
        }
    }
}

/// Prints notes and warnings on standard error, each once (a file read through several
/// `@id` branches meets the same line again), with control characters escaped.
pub fn print_diagnostics(notes: &[Diagnostic]) {
    let mut seen = std::collections::HashSet::new();
    let mut err = std::io::stderr().lock();
    for note in notes {
        let text = note.to_string();
        if seen.insert(text.clone()) {
            let _ = writeln!(err, "{text}");
        }
    }
}

fn run(args: &RewriteInputs) -> Result<i32, RewriteError> {
    if args.backup && !args.in_place {
        return Err(RewriteError::Output(
            "--backup only works with --in-place: it keeps the previous text of each file \
             rewritten in place (with -o or --dry-run no file is replaced)"
                .into(),
        ));
    }
    let format = resolve_format(&args.config, args.generate.format)?;
    let output_dir = match &args.output {
        Some(out) if super::output_is_directory(out) => Some(out.clone()),
        Some(out) => out.parent().map(Path::to_path_buf),
        None => None,
    };
    let opts = generate_options(&args.generate, output_dir.map(absolute))?;
    let plan = plan(&args.config, format, &opts)?;
    print_diagnostics(&[&plan.warnings[..], &plan.skipped[..]].concat());
    if args.dry_run {
        let terminal = std::io::stdout().is_terminal();
        let color = args.color.colors(terminal);
        let diff = plan.unified_diff(color);
        // A diff for a terminal (or coloured for one) shows control characters of the
        // config escaped; one into a pipe or file keeps the bytes `patch` needs.
        let diff = if terminal || color {
            terminal_diff(&diff)
        } else {
            diff
        };
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error.
        let _ = out.write_all(diff.as_bytes()).and_then(|()| out.flush());
        return Ok(i32::from(!diff.is_empty()));
    }
    let written = if args.in_place {
        plan.write_in_place(args.backup)?
    } else if let Some(out) = &args.output {
        plan.write_to(out)?
    } else {
        return Err(RewriteError::Output(
            "say what to do: --dry-run to see the diff, --in-place to rewrite, or -o OUT".into(),
        ));
    };
    eprintln!(
        "vipcheck: {} generated check(s); wrote {} file(s){}",
        plan.checks,
        written.len(),
        written
            .iter()
            .map(|p| format!("\n  {}", escape_control(&p.to_string_lossy(), false)))
            .collect::<String>()
    );
    Ok(0)
}

/// A diff as shown on a terminal: every control character escaped but the line breaks,
/// tabs and the colour codes the diff itself put around a line.
fn terminal_diff(diff: &str) -> String {
    let mut out = String::with_capacity(diff.len());
    for line in diff.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        // The colour is `ESC [ digits m` at the start and `ESC [0m` at the end; a line of
        // the config itself starts with the diff's own ' ', '+', '-' or '@'.
        let colour = body.strip_prefix("\x1b[").and_then(|rest| {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let inner = rest[digits..].strip_prefix('m')?;
            let inner = inner.strip_suffix("\x1b[0m")?;
            (digits > 0).then_some((&body[..2 + digits + 1], inner))
        });
        match colour {
            Some((open, inner)) => {
                out.push_str(open);
                out.push_str(&escape_control(inner, true));
                out.push_str("\x1b[0m");
            }
            None => out.push_str(&escape_control(body, true)),
        }
        out.push_str(newline);
    }
    out
}

/// The format from `--format`, else from the file name.
pub fn resolve_format(config: &Path, given: Option<Format>) -> Result<Format, RewriteError> {
    match given {
        Some(format) => Ok(format),
        None => detect_format(config).ok_or_else(|| {
            RewriteError::Output(format!(
                "cannot tell whether {} is a keepalived or an ldirectord config: pass --format keepalived|ldirectord",
                escape_control(&config.to_string_lossy(), false)
            ))
        }),
    }
}

/// Reads the shared options into [`GenerateOptions`].
pub fn generate_options(
    args: &GenerateInputs,
    output_dir: Option<PathBuf>,
) -> Result<GenerateOptions, RewriteError> {
    let probe_path = match &args.probe_path {
        Some(p) => absolute(p.clone()),
        None => std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .map_err(|source| RewriteError::Io {
                op: "find the path of",
                path: "vipcheck".into(),
                source,
            })?,
    };
    check_probe_path(&probe_path, args.probe_path.is_some())?;
    if args.state_dir.is_some() && args.feed == FeedChoice::Probe {
        return Err(RewriteError::Output(
            "--state-dir only works with --feed agent: it names the directory of the agent's \
             verdict files, which only FILE_CHECK (keepalived) or the agent-fed wrapper \
             (ldirectord) read"
                .into(),
        ));
    }
    let mut opts = GenerateOptions::new(probe_path);
    opts.probe_timeout = args.probe_timeout;
    for m in &args.fwmark_vips {
        let (mark, ip) = m
            .split_once('=')
            .and_then(|(mark, ip)| {
                Some((
                    mark.trim().parse::<u32>().ok()?,
                    ip.trim().parse::<IpAddr>().ok()?,
                ))
            })
            .ok_or_else(|| {
                RewriteError::Output(format!(
                    "--fwmark-vip {m}: expected MARK=IP, e.g. 5=192.0.2.20"
                ))
            })?;
        opts.fwmark_vips.entry(mark).or_default().push(ip);
    }
    opts.templates = args.templates.clone();
    opts.config_id = args.config_id.clone();
    opts.app_check = args.app_check;
    opts.output_dir = output_dir;
    opts.feed = match args.feed {
        FeedChoice::Probe => Feed::Probe,
        FeedChoice::Agent => {
            let dir = absolute(
                args.state_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            );
            check_state_dir(&dir)?;
            Feed::Agent { state_dir: dir }
        }
    };
    Ok(opts)
}

/// The state directory goes into keepalived's `track_file { file PATH }` (read as one
/// word) and the ldirectord wrapper: it must be absolute and a single plain word.
fn check_state_dir(dir: &Path) -> Result<(), RewriteError> {
    let bad = |why: &str| {
        RewriteError::Output(format!(
            "--state-dir {}: {why}; hint: keepalived reads the track file's path as one word, \
             so use a plain absolute directory such as {DEFAULT_STATE_DIR}",
            escape_control(&dir.to_string_lossy(), false)
        ))
    };
    if !dir.is_absolute() {
        return Err(bad("is not an absolute path"));
    }
    let Some(text) = dir.to_str() else {
        return Err(bad("is not valid UTF-8"));
    };
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || PROBE_PATH_SPECIALS.contains(c))
    {
        return Err(bad(
            "holds white space, a control character, a quote or one of $ # ! { } \\ `",
        ));
    }
    Ok(())
}

/// Characters a probe path may not hold: keepalived's `misc_path` splits the command at
/// white space and reads quotes and backslashes itself; `$`, `#`, `!`, braces and the
/// backquote mean something to keepalived's or a shell's reader of the line.
const PROBE_PATH_SPECIALS: &str = "\"'\\`$#!{}";

/// The probe path goes into keepalived's `misc_path` (split at white space) and the
/// ldirectord wrapper: it must be absolute and come back as the same single word.
fn check_probe_path(path: &Path, given: bool) -> Result<(), RewriteError> {
    let what = if given {
        "--probe-path"
    } else {
        "the path of this vipcheck (the default --probe-path)"
    };
    let bad = |why: String| {
        RewriteError::Output(format!(
            "{what} {}: {why}; hint: keepalived's misc_path splits the command at white space \
             and reads quotes and backslashes, so install vipcheck (or a symlink to it) under a \
             plain path such as /usr/local/sbin/vipcheck and pass that with --probe-path",
            escape_control(&path.to_string_lossy(), false)
        ))
    };
    if !path.is_absolute() {
        return Err(bad("is not an absolute path".into()));
    }
    let Some(text) = path.to_str() else {
        return Err(bad("is not valid UTF-8".into()));
    };
    if let Some(c) = text
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || PROBE_PATH_SPECIALS.contains(c))
    {
        let shown = if c.is_whitespace() || c.is_control() {
            format!("white space or a control character ({:?})", c)
        } else {
            format!("'{c}'")
        };
        return Err(bad(format!("holds {shown}")));
    }
    Ok(())
}

fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_paths_that_keepalived_would_split_are_refused() {
        for bad in [
            "/opt/my tools/vipcheck",
            "/opt/vip\tcheck",
            "/opt/vip'check",
            "/opt/vip\"check",
            "/opt/vip\\check",
            "/opt/$HOME/vipcheck",
            "/opt/vip#check",
            "/opt/vip\u{a0}check",
            "relative/vipcheck",
        ] {
            let e = check_probe_path(Path::new(bad), true)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("--probe-path ") && e.contains("hint"),
                "{bad}: {e}"
            );
        }
        check_probe_path(Path::new("/usr/local/sbin/vipcheck-1.2_x+y"), true).unwrap();
    }

    #[test]
    fn state_dirs_keepalived_would_split_are_refused() {
        for bad in ["/run/vip check", "/run/vip\"check", "/run/{x}", "/run/$X"] {
            let e = check_state_dir(Path::new(bad)).unwrap_err().to_string();
            assert!(
                e.starts_with("--state-dir ") && e.contains("hint"),
                "{bad}: {e}"
            );
        }
        check_state_dir(Path::new("/run/vipcheck")).unwrap();
    }

    #[test]
    fn feed_agent_defaults_to_the_agents_state_dir() {
        let inputs = GenerateInputs {
            format: None,
            fwmark_vips: vec![],
            probe_path: Some("/usr/sbin/vipcheck".into()),
            probe_timeout: std::time::Duration::from_secs(2),
            templates: None,
            config_id: None,
            app_check: false,
            feed: FeedChoice::Agent,
            state_dir: None,
        };
        let opts = generate_options(&inputs, None).unwrap();
        assert_eq!(
            opts.feed,
            Feed::Agent {
                state_dir: PathBuf::from("/run/vipcheck")
            }
        );
        let probe = GenerateInputs {
            feed: FeedChoice::Probe,
            ..inputs
        };
        assert_eq!(generate_options(&probe, None).unwrap().feed, Feed::Probe);
    }

    #[test]
    fn terminal_diff_escapes_the_config_but_keeps_its_own_colours() {
        let diff =
            "\x1b[1m--- a/k\x1b]0;x\x07.conf\x1b[0m\n \x1b[2J ctx\r\n\x1b[32m+new\x1b[31m\x1b[0m\n";
        assert_eq!(
            terminal_diff(diff),
            "\x1b[1m--- a/k\\x1b]0;x\\x07.conf\x1b[0m\n \\x1b[2J ctx\\r\n\x1b[32m+new\\x1b[31m\x1b[0m\n"
        );
    }
}
