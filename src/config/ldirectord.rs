//! ldirectord.cf: column-0 globals and indented `virtual=` blocks.

use std::path::Path;

use super::{Diagnostic, SourceMap, VirtualService};

/// A parsed ldirectord configuration.
#[derive(Debug, Clone)]
pub struct Document {
    pub sources: SourceMap,
    pub services: Vec<VirtualService>,
    pub warnings: Vec<Diagnostic>,
}

/// Reads `path`.
pub fn parse_file(path: &Path) -> Result<Document, Diagnostic> {
    let _ = path;
    Err(Diagnostic::error("ldirectord parser not written yet"))
}
