//! The real [`Regenerate`]: plan the rewrite of the watched config and write the files
//! whose text changed.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Prior, Regenerate, Regenerated, WatchInputs, Written};
use crate::config::Format;
use crate::rewrite::command::generate_options;
use crate::rewrite::{self, GenerateOptions, Plan, RewriteError};

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
    /// Every file the last pass placed in the output (`-o`), to remove those a later
    /// pass no longer produces.
    produced: BTreeSet<PathBuf>,
    /// Every file the last good pass read.
    read: Vec<PathBuf>,
}

impl RewriteRegenerator {
    /// Builds it from what `watch` was asked (`config` already absolute). Anything that
    /// converts into [`WatchInputs`] will do (the command line's arguments do).
    pub fn from_args(
        args: impl Into<WatchInputs>,
        format: Format,
        config: &Path,
    ) -> Result<Self, RewriteError> {
        let args: WatchInputs = args.into();
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
            produced: BTreeSet::new(),
            read: Vec::new(),
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

    /// Where each output of `plan` lands, as [`Plan::write_to`] / [`Plan::write_in_place`]
    /// place them.
    /// Where this pass writes each output file (the same placement the rewrite uses).
    fn destinations(&self, plan: &Plan) -> Result<Vec<PathBuf>, RewriteError> {
        let out = match &self.target {
            Target::InPlace => None,
            Target::Out(out) => Some(out.as_path()),
        };
        Ok(plan
            .placed_outputs(out)?
            .into_iter()
            .map(|(dest, _)| dest)
            .collect())
    }
}

impl RewriteRegenerator {
    /// When a pass failed: the first source (the config, then the files the last good pass
    /// read) that cannot be opened, as the I/O error it is (the parser reports it as a
    /// located diagnostic, which would read as a config error).
    fn unreadable(&self) -> Option<RewriteError> {
        std::iter::once(&self.config)
            .chain(&self.read)
            .find_map(|path| {
                // Non-blocking, so a FIFO in the config's place cannot hang the watcher.
                let open = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path);
                match open {
                    Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                        Some(RewriteError::Io {
                            op: "read",
                            path: path.clone(),
                            source,
                        })
                    }
                    _ => None,
                }
            })
    }
}

/// What a file holds now.
fn prior(path: &Path) -> Prior {
    match std::fs::read(path) {
        Ok(bytes) => Prior::Held(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Prior::Absent,
        Err(_) => Prior::Unknown,
    }
}

impl Regenerate for RewriteRegenerator {
    fn regenerate(&mut self) -> Result<Regenerated, RewriteError> {
        let plan = rewrite::plan(&self.config, self.format, &self.opts)
            .map_err(|e| self.unreadable().unwrap_or(e))?;
        self.read = plan.read_paths();
        let dests = self.destinations(&plan)?;
        let mut before: BTreeMap<PathBuf, Prior> =
            dests.iter().map(|p| (p.clone(), prior(p))).collect();
        let paths = match &self.target {
            Target::InPlace => plan.write_in_place(false)?,
            Target::Out(out) => plan.write_to(out)?,
        };
        let mut written: Vec<Written> = paths
            .into_iter()
            .map(|path| Written {
                before: before.remove(&path).unwrap_or(Prior::Unknown),
                path,
            })
            .collect();
        // A file this process wrote into an output tree that the config no longer includes
        // would still be read by the daemon's include glob there: remove it.
        if matches!(self.target, Target::Out(_)) {
            let now: BTreeSet<PathBuf> = dests.into_iter().collect();
            for gone in self.produced.difference(&now) {
                let was = prior(gone);
                if was == Prior::Absent {
                    continue;
                }
                std::fs::remove_file(gone).map_err(|source| RewriteError::Io {
                    op: "remove",
                    path: gone.clone(),
                    source,
                })?;
                written.push(Written {
                    path: gone.clone(),
                    before: was,
                });
            }
            self.produced = now;
        }
        Ok(Regenerated {
            written,
            main_output: self.main_output(),
            read_paths: plan.read_paths(),
            include_patterns: plan.include_patterns.clone(),
            watch_dirs: plan.watch_dirs(),
            warnings: plan.warnings.iter().map(super::diagnostic_line).collect(),
            services: plan.services,
        })
    }

    fn current_output(&self) -> Option<PathBuf> {
        Some(self.main_output())
    }
}
