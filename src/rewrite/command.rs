//! `vipcheck rewrite`: plan, then show the diff or write.

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::{plan, GenerateOptions, RewriteError};
use crate::cli::{parse_duration, ColorWhen, FormatArg, GenerateArgs, RewriteArgs};
use crate::config::{detect_format, Format};

/// Exit codes: 0 done (or, with --dry-run, nothing to change), 1 changes pending
/// (--dry-run), 2 error.
pub fn run_cli(args: RewriteArgs) -> i32 {
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

fn run(args: &RewriteArgs) -> Result<i32, RewriteError> {
    let format = resolve_format(&args.config, args.generate.format)?;
    let output_dir = match &args.output {
        Some(out) if super::output_is_directory(out) => Some(out.clone()),
        Some(out) => out.parent().map(Path::to_path_buf),
        None => None,
    };
    let opts = generate_options(&args.generate, output_dir.map(absolute))?;
    let plan = plan(&args.config, format, &opts)?;
    for note in &plan.skipped {
        eprintln!("{note}");
    }
    if args.dry_run {
        let color = match args.color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => std::io::stdout().is_terminal(),
        };
        let diff = plan.unified_diff(color);
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
            .map(|p| format!("\n  {}", p.display()))
            .collect::<String>()
    );
    Ok(0)
}

/// The format from `--format`, else from the file name.
pub fn resolve_format(config: &Path, arg: Option<FormatArg>) -> Result<Format, RewriteError> {
    match arg {
        Some(FormatArg::Keepalived) => Ok(Format::Keepalived),
        Some(FormatArg::Ldirectord) => Ok(Format::Ldirectord),
        None => detect_format(config).ok_or_else(|| {
            RewriteError::Output(format!(
                "cannot tell whether {} is a keepalived or an ldirectord config: pass --format keepalived|ldirectord",
                config.display()
            ))
        }),
    }
}

/// Turns the shared command-line options into [`GenerateOptions`].
pub fn generate_options(
    args: &GenerateArgs,
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
    let mut opts = GenerateOptions::new(probe_path);
    opts.probe_timeout = parse_duration(&args.probe_timeout)
        .map_err(|e| RewriteError::Output(format!("--probe-timeout: {e}")))?;
    if opts.probe_timeout.is_zero() {
        return Err(RewriteError::Output(
            "--probe-timeout: must be above zero".into(),
        ));
    }
    for m in &args.fwmark_vip {
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
    Ok(opts)
}

fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    }
}
