//! Model + rendered stanzas -> a plan of edits -> new texts, a diff, atomic writes.
//! Every byte outside an edit is copied from the source as it was read.

pub mod command;
mod commit;
mod diff;
pub mod keepalived;
pub mod ldirectord;
pub mod markers;
mod output;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Diagnostic, Format, SourceMap, Span, VirtualService};
use crate::generate::Generator;

pub use output::{output_is_directory, OutputFile};

/// Replace the bytes of `span` with `text` (an empty span inserts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub span: Span,
    pub text: String,
}

/// A file the rewrite creates beside the config (e.g. an ldirectord check wrapper).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub path: PathBuf,
    pub contents: String,
    pub executable: bool,
}

/// Everything one rewrite would change.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub sources: SourceMap,
    pub edits: Vec<Edit>,
    pub new_files: Vec<NewFile>,
    /// Services or real servers left alone, and why (NAT, fwmark without a VIP, ...).
    pub skipped: Vec<Diagnostic>,
    /// The parser's warnings about the config (a service without `protocol`, an include
    /// that matches nothing, ...); a file read through several `@id` branches may give the
    /// same one more than once.
    pub warnings: Vec<Diagnostic>,
    /// `include` patterns of the config, absolute (a watcher watches their directories).
    pub include_patterns: Vec<PathBuf>,
    /// How many generated checks the new text holds.
    pub checks: usize,
    /// The config's virtual services as this node reads them (keepalived: with its
    /// `config_id`), for a caller that also probes them (`agent`): no second parse.
    pub services: Vec<VirtualService>,
}

/// What the generated checks look like; shared by `rewrite`, `watch` and `status`.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// The vipcheck binary the generated checks run.
    pub probe_path: PathBuf,
    /// The probe's own total timeout.
    pub probe_timeout: Duration,
    /// VIPs for fwmark services, by mark.
    pub fwmark_vips: BTreeMap<u32, Vec<IpAddr>>,
    /// A directory of templates that replace embedded ones of the same name.
    pub templates: Option<PathBuf>,
    /// keepalived `-i`; `None` = host name up to the first dot.
    pub config_id: Option<String>,
    /// The directory the main config will be written to (files the rewrite creates, such
    /// as ldirectord wrappers, go here and are named by absolute path). `None` = the
    /// config's own directory.
    pub output_dir: Option<PathBuf>,
    /// Also run the real server's own HTTP_GET / SSL_GET check (its first url) through
    /// the VIP (`vipcheck probe --check http|https`).
    pub app_check: bool,
    /// What the generated checks read: a probe per check, or the agent's verdict files.
    pub feed: Feed,
}

/// Where the generated checks get their verdicts (`--feed`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Feed {
    /// Each check runs `vipcheck probe` (keepalived MISC_CHECK, ldirectord wrapper).
    #[default]
    Probe,
    /// Each check reads the verdict file `vipcheck agent` keeps for its pair in
    /// `state_dir` (keepalived FILE_CHECK on a `track_file`; the ldirectord wrapper
    /// reads the file).
    Agent { state_dir: PathBuf },
}

/// Where `vipcheck agent` writes its verdict files unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/run/vipcheck";

/// The name of a pair's verdict file (and keepalived track_file), and the part of it
/// before the real server's address: the agent's own naming
/// ([`crate::status::Pair::state_name`]), so the generated checks and the agent agree by
/// construction. `port` `None` = a service of every port.
pub use crate::status::{state_name, state_name_prefix};

impl GenerateOptions {
    /// Defaults for `probe_path` (the files are written for this binary to run).
    pub fn new(probe_path: PathBuf) -> Self {
        GenerateOptions {
            probe_path,
            probe_timeout: Duration::from_secs(2),
            fwmark_vips: BTreeMap::new(),
            templates: None,
            config_id: None,
            output_dir: None,
            app_check: false,
            feed: Feed::Probe,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// The config (or a template) is wrong: a located diagnostic.
    #[error("{0}")]
    Config(Box<Diagnostic>),
    /// Several located problems (e.g. every real server that cannot be edited).
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<Diagnostic>),
    #[error(transparent)]
    Generate(#[from] crate::generate::GenerateError),
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Output(String),
}

impl From<Diagnostic> for RewriteError {
    fn from(d: Diagnostic) -> Self {
        RewriteError::Config(Box::new(d))
    }
}

/// Reads `config` (with its includes) and plans every edit that adds or refreshes the
/// generated checks.
pub fn plan(config: &Path, format: Format, opts: &GenerateOptions) -> Result<Plan, RewriteError> {
    let generator = Generator::new(opts.templates.as_deref())?;
    match format {
        Format::Keepalived => keepalived::plan(config, &generator, opts),
        Format::Ldirectord => {
            let doc = crate::config::ldirectord::parse_file(config)?;
            crate::config::check_targets(&doc.services, &doc.sources)
                .map_err(RewriteError::Many)?;
            let mut plan = ldirectord::plan(&doc, &generator, opts)?;
            plan.services = doc.services;
            Ok(plan)
        }
    }
}
