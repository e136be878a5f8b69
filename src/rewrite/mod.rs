//! Model + rendered stanzas -> a plan of edits -> new texts, a diff, atomic writes.
//! Every byte outside an edit is copied from the source as it was read.

use std::path::PathBuf;

use crate::config::{Diagnostic, SourceMap, Span};

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
}
