//! Source files as read, and byte spans into them, so every token, error and edit can
//! point back at the exact text it came from.

use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A half-open byte range `start..end` in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        Span { file, start, end }
    }

    /// An empty span at `offset`: a place to insert text.
    pub fn point(file: FileId, offset: usize) -> Self {
        Span {
            file,
            start: offset,
            end: offset,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// One file read from disk (or given as text), exactly as it was.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

/// Every file a configuration was read from, in the order first read.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

/// 1-based line and column (column counted in characters) of an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub col: usize,
}

impl SourceMap {
    pub fn new() -> Self {
        SourceMap::default()
    }

    /// Adds a file; returns the id of an existing entry if the same path was added before.
    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        if let Some(i) = self.files.iter().position(|f| f.path == path) {
            return FileId(i as u32);
        }
        self.files.push(SourceFile { path, text });
        FileId((self.files.len() - 1) as u32)
    }

    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files
            .iter()
            .position(|f| f.path == path)
            .map(|i| FileId(i as u32))
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The text a span covers.
    pub fn slice(&self, span: Span) -> &str {
        &self.file(span.file).text[span.start..span.end]
    }

    pub fn line_col(&self, file: FileId, offset: usize) -> LineCol {
        line_col(&self.file(file).text, offset)
    }

    /// The whole line (without its newline) that contains `offset`.
    pub fn line_text(&self, file: FileId, offset: usize) -> &str {
        line_text(&self.file(file).text, offset)
    }
}

/// 1-based line and character column of `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> LineCol {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..offset].chars().count() + 1;
    LineCol { line, col }
}

/// The line of `text` containing `offset`, without its line terminator.
pub fn line_text(text: &str, offset: usize) -> &str {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    text[start..end].trim_end_matches('\r')
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_characters() {
        let text = "ab\ncäd\n";
        assert_eq!(line_col(text, 0), LineCol { line: 1, col: 1 });
        assert_eq!(line_col(text, 3), LineCol { line: 2, col: 1 });
        // 'd' sits after a two-byte character: byte 6, character column 3.
        assert_eq!(line_col(text, 6), LineCol { line: 2, col: 3 });
        assert_eq!(line_text(text, 4), "cäd");
    }
}
