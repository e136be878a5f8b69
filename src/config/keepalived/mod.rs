//! keepalived.conf: lexer, preprocessor (include, @id, $NAME, ~SEQ/~LST) and parser.
//!
//! [`lexer`] turns a file into tokens that cover every byte (the file prints back
//! unchanged); [`preprocess`] does what keepalived's `read_line()` does to each line;
//! [`parser`] builds the [`VirtualService`] model from the resulting lines.
//!
//! Behaviour follows keepalived 2.2.7 (checked with its `--config-test`), except where
//! reading on would only guess: unbalanced braces, a `real_server` outside a
//! `virtual_server`, an unknown `lb_kind`/`lvs_method` (keepalived accepts only `NAT`,
//! `DR`, `TUN`), a bad address or port and an unreadable include are errors here, where
//! keepalived logs them and runs on. An unknown keyword followed by `{` is skipped as a
//! block (keepalived ignores the `{` and reads the contents at the current level).
//! `${_RANDOM}` stands for its lower bound, so parses are repeatable.

// A config error ends the parse, so the large error type is built at most once; boxing it
// on every internal return would buy nothing.
#![allow(clippy::result_large_err)]

pub mod lexer;
pub mod parser;
pub mod preprocess;

use std::collections::BTreeSet;
use std::path::Path;

use super::{Diagnostic, InsertionPoint, SourceMap, Span, VirtualService};

/// Options that change what keepalived would read.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// keepalived's `-i`/`--config-id`: which `@id` lines apply. `None` means the host name
    /// up to its first dot, as keepalived does.
    pub config_id: Option<String>,
}

/// What the rewrite needs to know of `global_defs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalDefs {
    /// Where to add lines inside the first written `global_defs` block; `None` when there is
    /// no such block (the rewrite then adds one at the top of the main file).
    pub insert: Option<InsertionPoint>,
    /// The `global_defs` keyword of that block.
    pub keyword: Option<Span>,
    /// Every `enable_script_security` keyword met in a `global_defs` block.
    pub enable_script_security: Vec<Span>,
    /// Every `script_user` line met in a `global_defs` block.
    pub script_user: Vec<Span>,
}

/// A parsed keepalived configuration with every file it read.
#[derive(Debug, Clone)]
pub struct Document {
    pub sources: SourceMap,
    pub services: Vec<VirtualService>,
    pub global_defs: GlobalDefs,
    /// Every id named by an `@id` or `@^id` line, so a rewrite can cover every branch.
    pub conditional_ids: BTreeSet<String>,
    /// Every `include` pattern met, made absolute (resolved against the including file's
    /// directory), so a watcher can see new files that match.
    pub include_patterns: Vec<std::path::PathBuf>,
    pub warnings: Vec<Diagnostic>,
}

/// The most warnings one parse keeps; the rest are counted in a last one.
pub const MAX_WARNINGS: usize = 100;

/// Warnings of one parse, bounded: at most [`MAX_WARNINGS`], and one per source line (a
/// warning carries a copy of its line, so a long line repeated in many warnings would
/// cost memory by the square of the input).
#[derive(Debug, Default)]
pub struct Warnings {
    list: Vec<Diagnostic>,
    dropped: usize,
    /// The line of the last warning kept: file, start and end offsets.
    last_line: Option<(super::FileId, usize, usize)>,
}

impl Warnings {
    pub fn push(&mut self, sources: &SourceMap, span: Span, warning: Diagnostic) {
        let same_line = self.last_line.is_some_and(|(file, start, end)| {
            file == span.file && start <= span.start && span.start <= end
        });
        if same_line || self.list.len() >= MAX_WARNINGS {
            self.dropped += 1;
            return;
        }
        let text = &sources.file(span.file).text;
        let at = span.start.min(text.len());
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        self.last_line = Some((span.file, start, end));
        self.list.push(warning.at(sources, span));
    }

    /// Every warning kept, and one that counts the others.
    pub fn finish(mut self) -> Vec<Diagnostic> {
        if self.dropped > 0 {
            self.list.push(Diagnostic::warning(format!(
                "{} more warning(s) not shown (at most one per line and {MAX_WARNINGS} in all)",
                self.dropped
            )));
        }
        self.list
    }
}

/// Reads `path` and everything it includes.
pub fn parse_file(path: &Path, opts: &ParseOptions) -> Result<Document, Diagnostic> {
    let bytes = super::read_config_file(path)
        .map_err(|e| Diagnostic::error(e.message).with_hint(e.hint))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
        Diagnostic::error(format!("{} is not valid UTF-8", path.display()))
            .at_location(super::Location::in_text(
                path.to_path_buf(),
                &lossy,
                at,
                at + 1,
            ))
            .with_hint("convert the file to UTF-8")
    })?;
    parse_str(path, &text, opts)
}

/// Parses `text` as the contents of `path`; includes are read from disk relative to
/// `path`'s directory.
pub fn parse_str(path: &Path, text: &str, opts: &ParseOptions) -> Result<Document, Diagnostic> {
    let config_id = opts.config_id.clone().or_else(default_config_id);
    let mut pre = preprocess::Preprocessor::new(config_id);
    let mut parser = parser::Parser::default();
    pre.run(path, text.to_string(), &mut parser)?;
    let (services, global_defs, mut warnings) = parser.finish(&pre.sources)?;
    let mut all_warnings = std::mem::take(&mut pre.collected.warnings).finish();
    all_warnings.append(&mut warnings);
    Ok(Document {
        sources: pre.sources,
        services,
        global_defs,
        conditional_ids: pre.collected.conditional_ids,
        include_patterns: pre.collected.include_patterns,
        warnings: all_warnings,
    })
}

/// keepalived's default config id: the host name up to its first dot.
pub fn default_config_id() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?;
    let short = name.split('.').next().unwrap_or("");
    (!short.is_empty()).then(|| short.to_string())
}
