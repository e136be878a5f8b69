//! The real [`Regenerate`]: plan the rewrite of the watched config and write the files
//! whose text changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Prior, Regenerate, Regenerated, Written};
use crate::cli::WatchArgs;
use crate::config::Format;
use crate::rewrite::command::generate_options;
use crate::rewrite::{self, GenerateOptions, OutputFile, Plan, RewriteError};

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
    /// Builds it from the command line (`config` already absolute).
    pub fn from_args(
        args: &WatchArgs,
        format: Format,
        config: &Path,
    ) -> Result<Self, RewriteError> {
        let target = match (&args.output, args.in_place) {
            (Some(out), false) => Target::Out(super::paths::absolute(out)),
            _ => Target::InPlace,
        };
        // As `vipcheck rewrite -o` decides: a directory (existing, or a new name without
        // an extension) receives the tree, otherwise the file's directory.
        let output_dir = match &target {
            Target::Out(out) if out.is_dir() || (!out.exists() && out.extension().is_none()) => {
                Some(out.clone())
            }
            Target::Out(out) => out.parent().map(Path::to_path_buf),
            Target::InPlace => None,
        };
        let opts = generate_options(&args.generate, output_dir)?;
        Ok(RewriteRegenerator {
            config: config.to_path_buf(),
            format,
            opts,
            target,
        })
    }

    /// The file the daemon reads (once a pass has written).
    pub fn main_output(&self) -> PathBuf {
        match &self.target {
            Target::InPlace => self.config.clone(),
            // After a write, a directory means the tree was written there.
            Target::Out(out) if out.is_dir() => {
                out.join(self.config.file_name().unwrap_or_default())
            }
            Target::Out(out) => out.clone(),
        }
    }

    /// What the files a write may touch hold now, so a rejected output can be put back.
    fn snapshot(&self, plan: &Plan, outputs: &[OutputFile]) -> BTreeMap<PathBuf, Prior> {
        let mut dests = Vec::new();
        match &self.target {
            Target::InPlace => dests.extend(outputs.iter().map(|f| f.path.clone())),
            Target::Out(out) => {
                dests.push(out.clone());
                let root = plan
                    .read_paths()
                    .first()
                    .and_then(|m| m.parent().map(Path::to_path_buf))
                    .unwrap_or_default();
                for f in outputs {
                    dests.push(f.path.clone());
                    if let Ok(rel) = f.path.strip_prefix(&root) {
                        dests.push(out.join(rel));
                    }
                }
            }
        }
        dests
            .into_iter()
            .filter(|p| !p.is_dir())
            .map(|p| {
                let prior = match std::fs::read(&p) {
                    Ok(bytes) => Prior::Held(bytes),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Prior::Absent,
                    Err(_) => Prior::Unknown,
                };
                (p, prior)
            })
            .collect()
    }
}

impl Regenerate for RewriteRegenerator {
    fn regenerate(&mut self) -> Result<Regenerated, RewriteError> {
        let plan = rewrite::plan(&self.config, self.format, &self.opts)?;
        let outputs = plan.outputs();
        let mut before = self.snapshot(&plan, &outputs);
        let paths = match &self.target {
            Target::InPlace => plan.write_in_place(false)?,
            Target::Out(out) => plan.write_to(out)?,
        };
        let written = paths
            .into_iter()
            .map(|path| Written {
                before: before.remove(&path).unwrap_or(Prior::Unknown),
                path,
            })
            .collect();
        Ok(Regenerated {
            written,
            main_output: self.main_output(),
            read_paths: plan.read_paths(),
            include_patterns: plan.include_patterns.clone(),
            watch_dirs: plan.watch_dirs(),
        })
    }
}
