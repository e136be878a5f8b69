//! Located errors and warnings about a configuration: one sentence, the file, line and
//! column, the source line with a caret under the spot, and a hint where there is one.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
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
        // Everything here may come from the config (names, paths, lines): control
        // characters are shown escaped, never sent to the terminal.
        write!(f, "{label}: {}", escape_control(&self.message, false))?;
        let gutter;
        if let Some(loc) = &self.location {
            let num = loc.line.to_string();
            gutter = " ".repeat(num.len());
            write!(
                f,
                "\n{gutter}--> {}:{}:{}",
                escape_control(&loc.path.to_string_lossy(), false),
                loc.line,
                loc.col
            )?;
            write!(f, "\n{gutter} |")?;
            // The caret counts the characters as shown: a tab is one space, an escaped
            // control character as many as its escape.
            let chars: Vec<char> = loc.source_line.chars().collect();
            let start = loc.col.saturating_sub(1).min(chars.len());
            let end = (start + loc.width).min(chars.len());
            let before = shown_source(&chars[..start]);
            let marked = shown_source(&chars[start..end]);
            let after = shown_source(&chars[end..]);
            write!(f, "\n{num} | {before}{marked}{after}")?;
            write!(
                f,
                "\n{gutter} | {}{}",
                " ".repeat(
                    before.chars().count() + loc.col.saturating_sub(1).saturating_sub(start)
                ),
                "^".repeat(if end > start {
                    marked.chars().count()
                } else {
                    loc.width
                })
            )?;
        } else {
            gutter = String::new();
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n{gutter} = hint: {}", escape_control(hint, false))?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// A source line's characters as a diagnostic shows them.
fn shown_source(chars: &[char]) -> String {
    let mut out = String::with_capacity(chars.len());
    for &c in chars {
        if c == '\t' {
            out.push(' ');
        } else {
            push_escaped(&mut out, c);
        }
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 && c.is_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if c.is_control() => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `text` with every control character (C0, DEL, C1: ESC, BEL, CR, ...) written as an
/// escape (`\x1b`, `\r`, `\u{9b}`), so text from a config cannot drive the terminal it is
/// printed on. With `keep_lines`, line feeds and tabs stay (for multi-line messages).
pub fn escape_control(text: &str, keep_lines: bool) -> Cow<'_, str> {
    let kept = |c: char| keep_lines && (c == '\n' || c == '\t');
    if !text.chars().any(|c| c.is_control() && !kept(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if kept(c) {
            out.push(c);
        } else {
            push_escaped(&mut out, c);
        }
    }
    Cow::Owned(out)
}

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

    #[test]
    fn control_characters_from_the_config_are_shown_escaped() {
        let text = "real_server 192.0.2.1\x1b[2J 80 {\r\n";
        let start = text.find("80").unwrap();
        let d = Diagnostic::warning("server \x1b]0;owned\x07 is odd\u{9b}")
            .at_location(Location::in_text(
                "dir\x1b[31m/k.conf".into(),
                text,
                start,
                start + 2,
            ))
            .with_hint("bell\x07");
        let shown = d.to_string();
        assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n'),
            "{shown:?}"
        );
        assert!(
            shown.contains("server \\x1b]0;owned\\x07 is odd\\u{9b}"),
            "{shown}"
        );
        assert!(shown.contains("--> dir\\x1b[31m/k.conf:1:"), "{shown}");
        assert!(shown.contains("hint: bell\\x07"), "{shown}");
        // The caret stays under `80` on the escaped line.
        let lines: Vec<&str> = shown.lines().collect();
        let source = lines.iter().find(|l| l.starts_with("1 | ")).unwrap();
        let caret = lines.iter().find(|l| l.contains('^')).unwrap();
        assert_eq!(source.find("80"), caret.find('^'), "{shown}");
        assert_eq!(caret.matches('^').count(), 2);
    }

    #[test]
    fn escape_control_keeps_plain_text_and_optionally_lines() {
        assert!(matches!(
            escape_control("plain", false),
            Cow::Borrowed("plain")
        ));
        assert_eq!(escape_control("a\nb\tc\x1b", true), "a\nb\tc\\x1b");
        assert_eq!(escape_control("a\nb\x7f", false), "a\\nb\\x7f");
    }
}
