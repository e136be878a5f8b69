//! Located errors and warnings about a configuration: one sentence, the file, line and
//! column, the source line with a caret under the spot, and a hint where there is one.

use std::fmt;
use std::path::PathBuf;

use super::span::{line_col, line_text, SourceMap, Span};

/// Where a diagnostic points: resolved to a path, line and column when it was made, so it
/// can be printed without the source map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    /// The source line, without its newline.
    pub source_line: String,
    /// How many characters of the line the caret underlines (at least 1).
    pub width: usize,
}

impl Location {
    pub fn from_span(sources: &SourceMap, span: Span) -> Self {
        let file = sources.file(span.file);
        Self::in_text(file.path.clone(), &file.text, span.start, span.end)
    }

    /// A location in `text` (the contents of `path`) for the bytes `start..end`.
    pub fn in_text(path: PathBuf, text: &str, start: usize, end: usize) -> Self {
        let lc = line_col(text, start);
        let source_line = line_text(text, start).to_string();
        let line_rest = source_line.chars().count().saturating_sub(lc.col - 1);
        let span_chars = text
            .get(start..end.max(start).min(text.len()))
            .map_or(1, |s| s.chars().take_while(|&c| c != '\n').count());
        Location {
            path,
            line: lc.line,
            col: lc.col,
            source_line,
            width: span_chars.clamp(1, line_rest.max(1)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// A problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub location: Option<Location>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            location: None,
            hint: None,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Self::error(message)
        }
    }

    pub fn at(mut self, sources: &SourceMap, span: Span) -> Self {
        self.location = Some(Location::from_span(sources, span));
        self
    }

    pub fn at_location(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    /// ```text
    /// error: unknown forwarding method 'FNAT'
    ///   --> keepalived.conf:9:17
    ///    |
    ///  9 |         lb_kind FNAT
    ///    |                 ^^^^
    ///    = hint: use NAT, DR or TUN
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: {}", self.message)?;
        let gutter;
        if let Some(loc) = &self.location {
            let num = loc.line.to_string();
            gutter = " ".repeat(num.len());
            write!(
                f,
                "\n{gutter}--> {}:{}:{}",
                loc.path.display(),
                loc.line,
                loc.col
            )?;
            write!(f, "\n{gutter} |")?;
            write!(f, "\n{num} | {}", loc.source_line.replace('\t', " "))?;
            write!(
                f,
                "\n{gutter} | {}{}",
                " ".repeat(loc.col - 1),
                "^".repeat(loc.width)
            )?;
        } else {
            gutter = String::new();
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n{gutter} = hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_path_line_column_source_and_caret() {
        let text = "virtual_server 192.0.2.1 80 {\n    lb_kind FNAT\n}\n";
        let start = text.find("FNAT").unwrap();
        let d = Diagnostic::error("unknown forwarding method 'FNAT'")
            .at_location(Location::in_text("k.conf".into(), text, start, start + 4))
            .with_hint("use NAT, DR or TUN");
        assert_eq!(
            d.to_string(),
            "error: unknown forwarding method 'FNAT'\n --> k.conf:2:13\n  |\n2 |     lb_kind FNAT\n  |             ^^^^\n  = hint: use NAT, DR or TUN"
        );
    }
}
