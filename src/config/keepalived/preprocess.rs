//! What keepalived does to each line before its parser sees it: comments removed,
//! `include` followed (textually, globs sorted, relative to the including file),
//! `@id` / `@^id` lines kept or dropped, `$NAME=value` definitions (multi-line with `\`)
//! stored and `$NAME` / `${NAME}` substituted, `~SEQ(...)` / `~LST(...)` lines repeated.
//!
//! Every logical line keeps track of where its bytes came from: text written in a file
//! keeps its exact span; text produced by an expansion carries the span of the written
//! line that triggered it and what expanded (`$NAME`, `~SEQ(...)`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::lexer::{scan_line, TokenKind};
use crate::config::{Diagnostic, FileId, SourceMap, Span};

/// How deep includes may nest before we call it a loop.
pub const MAX_INCLUDE_DEPTH: usize = 32;
/// How deep expansions (`~SEQ` inside a multi-line definition inside ...) may nest.
const MAX_EXPANSION_DEPTH: usize = 64;
/// How many lines one `~SEQ`/`~LST` may produce.
pub const MAX_SEQ_LINES: i64 = 65_536;
/// How many lines all expansions together may produce.
const MAX_EXPANDED_LINES: usize = 1_000_000;
/// The longest line substitution may build (keepalived's own buffer is far smaller).
const MAX_LINE_LEN: usize = 64 * 1024;
/// Substitutions on one line before we call it recursive.
const MAX_SUBSTITUTIONS: usize = 4096;

/// A byte of a logical line that did not come from the file as written.
const SYNTHETIC: usize = usize::MAX;

/// Where the bytes of a logical line came from.
#[derive(Debug, Clone)]
enum Provenance {
    /// The text is exactly the bytes `base..base + len` of `file`.
    Exact { file: FileId, base: usize },
    /// Byte `i` of the text came from offset `map[i]` of `file`, or from an expansion
    /// when `map[i] == SYNTHETIC`.
    Mapped {
        file: FileId,
        map: Vec<usize>,
        via: Rc<str>,
    },
    /// Every byte came from an expansion.
    Synthetic { via: Rc<str> },
}

/// One line as keepalived's `read_line()` would hand it on, plus where it came from.
#[derive(Debug, Clone)]
struct Line {
    text: String,
    prov: Provenance,
    /// The written line this one is or descends from (for messages and expanded tokens).
    site: Span,
    /// The file whose reading produced this line (for `${_PWD}` and relative includes).
    file: FileId,
    /// The tokens of `text` when it is still exactly as the file's lexer saw it (saves
    /// lexing the common, untouched line twice).
    tokens: Option<Vec<(TokenKind, usize, usize)>>,
}

impl Line {
    /// The logical line without its first `n` bytes.
    fn drop_front(&mut self, n: usize) {
        self.tokens = None;
        self.text.drain(..n);
        match &mut self.prov {
            Provenance::Exact { base, .. } => *base += n,
            Provenance::Mapped { map, .. } => {
                map.drain(..n);
            }
            Provenance::Synthetic { .. } => {}
        }
    }

    /// Cuts a comment (from `#` or `!` outside double quotes) and the blanks before it.
    fn strip_comment(&mut self) {
        let scan = scan_line(&self.text);
        let Some(&(_, at, _)) = scan.tokens.iter().find(|t| t.0 == TokenKind::Comment) else {
            return;
        };
        let end = self.text[..at].trim_end_matches([' ', '\t']).len();
        self.text.truncate(end);
        self.tokens = None;
        if let Provenance::Mapped { map, .. } = &mut self.prov {
            map.truncate(end);
        }
    }

    /// The span and expansion of the bytes `start..end` of the text.
    fn locate(&self, start: usize, end: usize) -> (Span, Option<Rc<str>>) {
        match &self.prov {
            Provenance::Exact { file, base } => (Span::new(*file, base + start, base + end), None),
            Provenance::Mapped { file, map, via } => {
                let slice = &map[start..end];
                if !slice.is_empty() && slice.iter().all(|&o| o != SYNTHETIC) {
                    (Span::new(*file, slice[0], slice[slice.len() - 1] + 1), None)
                } else {
                    (self.site, Some(via.clone()))
                }
            }
            Provenance::Synthetic { via } => (self.site, Some(via.clone())),
        }
    }

    fn byte_map(&self) -> Vec<usize> {
        match &self.prov {
            Provenance::Exact { base, .. } => (*base..*base + self.text.len()).collect(),
            Provenance::Mapped { map, .. } => map.clone(),
            Provenance::Synthetic { .. } => vec![SYNTHETIC; self.text.len()],
        }
    }
}

/// A token of a logical line, as the block parser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LToken {
    pub kind: TokenKind,
    /// For words: the value with double quotes removed. `{` / `}` otherwise.
    pub value: String,
    /// Exact for written text; the expanding line for expanded text.
    pub span: Span,
    /// What produced this token when it is not written as such in a file.
    pub via: Option<Rc<str>>,
}

/// Receives the logical lines, in order.
pub trait LineSink {
    fn line(&mut self, sources: &SourceMap, tokens: Vec<LToken>) -> Result<(), Diagnostic>;
}

#[derive(Debug, Clone)]
struct Definition {
    value: String,
    multiline: bool,
}

/// Everything the preprocessor collects besides the lines themselves.
#[derive(Debug, Default)]
pub struct Collected {
    pub conditional_ids: BTreeSet<String>,
    pub include_patterns: Vec<PathBuf>,
    pub warnings: super::Warnings,
}

pub struct Preprocessor {
    pub sources: SourceMap,
    pub collected: Collected,
    config_id: Option<String>,
    defs: HashMap<String, Definition>,
    /// The name of a multi-line definition still taking lines.
    open_definition: Option<String>,
    /// Files being read, outermost first (include cycle guard).
    include_stack: Vec<FileId>,
    expanded_lines: usize,
}

impl Preprocessor {
    pub fn new(config_id: Option<String>) -> Self {
        Preprocessor {
            sources: SourceMap::new(),
            collected: Collected::default(),
            config_id,
            defs: HashMap::new(),
            open_definition: None,
            include_stack: Vec::new(),
            expanded_lines: 0,
        }
    }

    /// Adds the main file and runs every line of it (and of what it includes) into `sink`.
    pub fn run(
        &mut self,
        path: &Path,
        text: String,
        sink: &mut dyn LineSink,
    ) -> Result<(), Diagnostic> {
        let id = self.sources.add(path.to_path_buf(), text);
        self.read_file(id, sink)
    }

    fn error_at(&self, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(message).at(&self.sources, span)
    }

    fn warn_at(&mut self, span: Span, message: impl Into<String>) {
        self.collected
            .warnings
            .push(&self.sources, span, Diagnostic::warning(message));
    }

    fn read_file(&mut self, file: FileId, sink: &mut dyn LineSink) -> Result<(), Diagnostic> {
        self.include_stack.push(file);
        // A copy, so lines can be processed while the source map grows with includes.
        let text: Rc<str> = Rc::from(self.sources.file(file).text.as_str());
        let mut offset = 0;
        for raw in text.split_inclusive('\n') {
            let body = raw.strip_suffix('\n').unwrap_or(raw);
            let line = self.decomment(file, offset, body);
            offset += raw.len();
            if let Some(line) = line {
                self.process(line, 0, sink)?;
            }
        }
        // keepalived ends a definition at the end of the file it started in.
        self.open_definition = None;
        self.include_stack.pop();
        Ok(())
    }

    /// keepalived's `decomment()`: the line without leading and trailing blanks and
    /// comments, a final `\` kept (it continues a definition).
    fn decomment(&mut self, file: FileId, offset: usize, body: &str) -> Option<Line> {
        let scan = scan_line(body);
        let whole = Span::new(file, offset, offset + body.len());
        if scan.unterminated_quote {
            self.warn_at(
                whole,
                "unterminated double quote; it runs to the end of the line",
            );
        }
        let content: Vec<_> = scan
            .tokens
            .iter()
            .filter(|t| !matches!(t.0, TokenKind::Comment | TokenKind::Continuation))
            .collect();
        let first = content.iter().position(|t| t.0 != TokenKind::Space);
        let last = content.iter().rposition(|t| t.0 != TokenKind::Space);
        let continues = scan.continues();
        let (start, end) = match (first, last) {
            (Some(f), Some(l)) => {
                // Comments only ever follow the content, so content tokens are contiguous.
                (content[f].1, content[l].2)
            }
            _ => (0, 0),
        };
        // A word may end in an escaped blank (`\ `); keepalived trims that blank too.
        let end = start + body[start..end].trim_end_matches([' ', '\t']).len();
        let site_end = if continues {
            body.trim_end_matches('\r').len()
        } else {
            end
        };
        let site = if start < site_end {
            Span::new(file, offset + start, offset + site_end)
        } else {
            whole
        };
        let mut text = body[start..end].to_string();
        let mut prov = Provenance::Exact {
            file,
            base: offset + start,
        };
        if continues && !text.ends_with('\\') {
            let mut map: Vec<usize> = (offset + start..offset + end).collect();
            text.push('\\');
            let at = scan
                .tokens
                .iter()
                .find(|t| t.0 == TokenKind::Continuation)
                .map_or(body.len().saturating_sub(1), |t| t.1);
            map.push(offset + at);
            prov = Provenance::Mapped {
                file,
                map,
                via: Rc::from("\\"),
            };
        }
        if text.is_empty() && self.open_definition.is_none() {
            return None;
        }
        // A backslash left at the end (before a comment) lexes differently on its own.
        let reusable = matches!(prov, Provenance::Exact { .. }) && !text.ends_with('\\');
        let tokens = reusable.then(|| {
            scan.tokens
                .iter()
                .filter(|t| !t.0.is_trivia() && t.1 >= start && t.2 <= end)
                .map(|&(k, s, e)| (k, s - start, e - start))
                .collect()
        });
        Some(Line {
            text,
            prov,
            site,
            file,
            tokens,
        })
    }

    fn process(
        &mut self,
        mut line: Line,
        depth: usize,
        sink: &mut dyn LineSink,
    ) -> Result<(), Diagnostic> {
        if depth > MAX_EXPANSION_DEPTH {
            return Err(self
                .error_at(line.site, "expansion nests too deeply")
                .with_hint("a definition or ~SEQ probably expands into itself"));
        }
        if let Some(name) = self.open_definition.clone() {
            self.continue_definition(&name, &line.text);
            return Ok(());
        }
        if line.text.is_empty() {
            return Ok(());
        }
        let mut tails: Vec<(Rc<str>, Vec<String>)> = Vec::new();
        let mut rounds = 0;
        // What the (possibly substituted) line turns out to be.
        enum Action {
            Emit,
            Drop,
            Repeat,
        }
        let action = loop {
            rounds += 1;
            if rounds > MAX_SUBSTITUTIONS {
                return Err(self
                    .error_at(line.site, "substitution does not settle")
                    .with_hint("a definition probably refers to itself"));
            }
            if line.text.starts_with('@') && !self.conditional(&mut line) {
                break Action::Drop;
            }
            if line.text.starts_with('$') && self.define(&line) {
                break Action::Drop;
            }
            if line.text.starts_with("~SEQ") || line.text.starts_with("~LST") {
                break Action::Repeat;
            }
            if line.text.starts_with('~') || !line.text.contains('$') {
                break Action::Emit;
            }
            match self.substitute(&line)? {
                None => break Action::Emit,
                Some((next, mut more)) => {
                    line = next;
                    tails.append(&mut more);
                    // keepalived 2.2.7 decomments after each substitution pass, so a
                    // `${_HASH}` comments out the rest, but multi-line definitions
                    // already met in the pass keep their later lines.
                    line.strip_comment();
                    if line.text.is_empty() {
                        break Action::Drop;
                    }
                }
            }
        };
        let (site, file) = (line.site, line.file);
        match action {
            Action::Emit => self.emit(&line, sink)?,
            Action::Repeat => self.repeat(line, depth, sink)?,
            Action::Drop => {}
        }
        // The later lines of multi-line definitions, innermost first (keepalived's stack).
        while let Some((via, lines)) = tails.pop() {
            for text in lines {
                self.count_expanded(site)?;
                let l = Line {
                    text,
                    prov: Provenance::Synthetic { via: via.clone() },
                    site,
                    file,
                    tokens: None,
                };
                self.process(l, depth + 1, sink)?;
            }
        }
        Ok(())
    }

    fn count_expanded(&mut self, site: Span) -> Result<(), Diagnostic> {
        self.expanded_lines += 1;
        if self.expanded_lines > MAX_EXPANDED_LINES {
            return Err(self
                .error_at(
                    site,
                    format!("expansions produce more than {MAX_EXPANDED_LINES} lines"),
                )
                .with_hint("check the ~SEQ ranges and nested definitions"));
        }
        Ok(())
    }

    /// `@id rest` / `@^id rest`: strips the prefix and returns true when the line applies.
    fn conditional(&mut self, line: &mut Line) -> bool {
        let (negated, ofs) = if line.text[1..].starts_with('^') {
            (true, 2)
        } else {
            (false, 1)
        };
        let Some(sp) = line.text[ofs..].find([' ', '\t']) else {
            let id = &line.text[ofs..];
            if !id.is_empty() {
                self.collected.conditional_ids.insert(id.to_string());
            }
            return false;
        };
        let id = line.text[ofs..ofs + sp].to_string();
        let matches = self.config_id.as_deref() == Some(id.as_str());
        if !id.is_empty() {
            self.collected.conditional_ids.insert(id);
        }
        if matches == negated {
            return false;
        }
        let rest = ofs + sp;
        let skip = line.text[rest..]
            .find(|c| c != ' ' && c != '\t')
            .unwrap_or(line.text.len() - rest);
        line.drop_front(rest + skip);
        !line.text.is_empty()
    }

    /// `$NAME=value` (keepalived's `check_definition()`): stores it and returns true.
    fn define(&mut self, line: &Line) -> bool {
        let Some((name, value)) = parse_definition(&line.text) else {
            return false;
        };
        let mut def = Definition {
            value: value.to_string(),
            multiline: false,
        };
        if let Some(body) = value.strip_suffix('\\') {
            let body = body.trim_end_matches([' ', '\t']);
            def.value = if body.is_empty() {
                String::new()
            } else {
                format!("{body}\n")
            };
            def.multiline = true;
            self.open_definition = Some(name.to_string());
        }
        self.defs.insert(name.to_string(), def);
        true
    }

    /// A line of a multi-line definition (the definition is open).
    fn continue_definition(&mut self, name: &str, text: &str) {
        let Some(def) = self.defs.get_mut(name) else {
            self.open_definition = None;
            return;
        };
        if let Some(body) = text.strip_suffix('\\') {
            let body = body.trim_end_matches([' ', '\t']);
            if !body.is_empty() {
                def.value.push_str(body);
                def.value.push('\n');
            }
        } else {
            self.open_definition = None;
            def.value.push_str(text);
            if def.value.is_empty() {
                def.multiline = false;
            }
        }
    }

    /// Finds the next `$NAME` / `${NAME}` keepalived would replace and replaces all of
    /// them (keepalived's `replace_param()`). Returns the new line and the later lines of
    /// any multi-line definition used, or `None` when nothing was replaced.
    #[allow(clippy::type_complexity)]
    fn substitute(
        &mut self,
        line: &Line,
    ) -> Result<Option<(Line, Vec<(Rc<str>, Vec<String>)>)>, Diagnostic> {
        let mut text = line.text.clone();
        let mut map = line.byte_map();
        let mut tails = Vec::new();
        let mut first_via: Option<Rc<str>> = None;
        let mut pos = 0;
        let mut count = 0;
        while let Some(found) = text[pos..].find('$') {
            let at = pos + found;
            let Some(r) = self.find_reference(&text[at..], line.file) else {
                pos = at + 1;
                continue;
            };
            count += 1;
            if count > MAX_SUBSTITUTIONS || text.len() + r.value.len() > MAX_LINE_LEN {
                return Err(self
                    .error_at(line.site, "substitution makes the line too long")
                    .with_hint("a definition probably refers to itself"));
            }
            let via: Rc<str> = Rc::from(format!("${}", r.name));
            first_via.get_or_insert_with(|| via.clone());
            let (replacement, rest) = match r.value.split_once('\n') {
                Some((head, rest)) if r.multiline => (head.to_string(), Some(rest.to_string())),
                _ => (r.value.clone(), None),
            };
            if let Some(rest) = rest {
                let lines: Vec<String> = rest.split('\n').map(str::to_string).collect();
                tails.push((via, lines));
            }
            text.replace_range(at..at + r.len, &replacement);
            map.splice(
                at..at + r.len,
                std::iter::repeat(SYNTHETIC).take(replacement.len()),
            );
            pos = at;
            if replacement.trim_start_matches([' ', '\t']).starts_with('~') {
                break;
            }
        }
        let Some(via) = first_via else {
            return Ok(None);
        };
        let prov = match &line.prov {
            Provenance::Exact { file, .. } | Provenance::Mapped { file, .. } => {
                Provenance::Mapped {
                    file: *file,
                    map,
                    via,
                }
            }
            Provenance::Synthetic { via } => Provenance::Synthetic { via: via.clone() },
        };
        let next = Line {
            text,
            prov,
            site: line.site,
            file: line.file,
            tokens: None,
        };
        Ok(Some((next, tails)))
    }

    /// keepalived's `find_definition()` for a reference starting at `s` (which begins
    /// with `$`).
    fn find_reference(&self, s: &str, file: FileId) -> Option<Reference> {
        let bytes = s.as_bytes();
        let braces = bytes.get(1) == Some(&b'{');
        let name_start = if braces { 2 } else { 1 };
        let first = *bytes.get(name_start)?;
        if !(first.is_ascii_alphabetic() || first == b'_') {
            return None;
        }
        let mut p = name_start + 1;
        while p < bytes.len() && (bytes[p].is_ascii_alphanumeric() || bytes[p] == b'_') {
            p += 1;
        }
        let name = &s[name_start..p];
        let mut params: Option<&str> = None;
        let len;
        if braces {
            let pstart = p;
            while p < bytes.len() && (bytes[p] == b' ' || bytes[p].is_ascii_digit()) {
                p += 1;
            }
            let raw = &s[pstart..p];
            if !raw.trim().is_empty() {
                if raw.ends_with(' ') {
                    return None;
                }
                params = Some(raw.trim());
            }
            if bytes.get(p) != Some(&b'}') {
                return None;
            }
            len = p + 1;
        } else {
            if p < bytes.len() && !matches!(bytes[p], b' ' | b'\t' | b',' | b')') {
                return None;
            }
            len = p;
        }
        let at_end = len == s.len();
        if let Some(def) = self.defs.get(name) {
            if params.is_some() || (def.multiline && !at_end) {
                return None;
            }
            return Some(Reference {
                name: name.to_string(),
                len,
                value: def.value.clone(),
                multiline: def.multiline,
            });
        }
        let value = match name {
            "_PWD" if params.is_none() => self.directory_of(file).display().to_string(),
            "_INSTANCE" if params.is_none() => self.config_id.clone().unwrap_or_default(),
            "_HASH" if params.is_none() => "#".to_string(),
            "_BANG" if params.is_none() => "!".to_string(),
            // Random values cannot be reproduced; the lower bound stands in for them.
            "_RANDOM" => params
                .and_then(|p| p.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
                .to_string(),
            _ => return None,
        };
        Some(Reference {
            name: name.to_string(),
            len,
            value,
            multiline: false,
        })
    }

    /// The absolute directory of a source file.
    fn directory_of(&self, file: FileId) -> PathBuf {
        let path = &self.sources.file(file).path;
        let dir = path.parent().unwrap_or(Path::new(""));
        absolute(dir)
    }

    /// `~SEQ(var, ...)` / `~LST(var, ...)`: the rest of the line once per value.
    fn repeat(
        &mut self,
        line: Line,
        depth: usize,
        sink: &mut dyn LineSink,
    ) -> Result<(), Diagnostic> {
        let close = line.text.find(')');
        let head_end = close.map_or(line.text.len(), |c| c + 1);
        let head = line.text[..head_end].to_string();
        let Some(close) = close else {
            return Err(self
                .error_at(line.site, format!("invalid {head}: no closing ')'"))
                .with_hint("write ~SEQ(var, start, end), ~SEQ(var, start, step, end) or ~LST(var, a, b, ...)"));
        };
        let template = line.text[close + 1..]
            .trim_start_matches([' ', '\t'])
            .to_string();
        let (head_span, _) = line.locate(0, head_end);
        let parsed =
            if line.text.starts_with("~SEQ") {
                // keepalived substitutes definitions in the numbers first.
                let args = self.substitute_plain(&line.text[..=close], line.file);
                parse_seq(&args).map_err(|why| {
                (why, "write ~SEQ(var, end), ~SEQ(var, start, end) or ~SEQ(var, start, step, end)")
            })
            } else {
                parse_lst(&line.text[..=close]).map_err(|why| {
                    (
                        why,
                        "write ~LST(var, a, b, ...) or ~LST({v1, v2}, {a1, a2}, ...)",
                    )
                })
            };
        let assignments = parsed.map_err(|(why, hint)| {
            let hint = if why.contains(&MAX_SEQ_LINES.to_string()) {
                "split the range into several lines"
            } else {
                hint
            };
            self.error_at(head_span, format!("invalid {head}: {why}"))
                .with_hint(hint)
        })?;
        let via: Rc<str> = Rc::from(head.as_str());
        for values in assignments {
            for (name, value) in values {
                self.defs.insert(
                    name,
                    Definition {
                        value,
                        multiline: false,
                    },
                );
            }
            self.count_expanded(line.site)?;
            let l = Line {
                text: template.clone(),
                prov: Provenance::Synthetic { via: via.clone() },
                site: line.site,
                file: line.file,
                tokens: None,
            };
            self.process(l, depth + 1, sink)?;
        }
        Ok(())
    }

    /// Single-line substitution of `text` (for `~SEQ` arguments).
    fn substitute_plain(&self, text: &str, file: FileId) -> String {
        let mut out = text.to_string();
        let mut pos = 0;
        let mut count = 0;
        while let Some(found) = out[pos..].find('$') {
            let at = pos + found;
            match self.find_reference(&out[at..], file) {
                Some(r) if !r.multiline && count < 64 => {
                    out.replace_range(at..at + r.len, &r.value);
                    count += 1;
                    pos = at;
                }
                _ => pos = at + 1,
            }
        }
        out
    }

    /// Tokenizes the finished line; follows it when it is an include, else hands it on.
    fn emit(&mut self, line: &Line, sink: &mut dyn LineSink) -> Result<(), Diagnostic> {
        // Substitution can bring in comment characters (`${_HASH}`, `${_BANG}`);
        // keepalived 2.2.7 treats them as comments, so decomment again.
        let scanned;
        let raw_tokens = match &line.tokens {
            Some(t) => t.as_slice(),
            None => {
                scanned = scan_line(&line.text);
                scanned.tokens.as_slice()
            }
        };
        let mut tokens = Vec::with_capacity(raw_tokens.len());
        for &(kind, start, end) in raw_tokens {
            if kind.is_trivia() {
                continue;
            }
            let (span, via) = line.locate(start, end);
            let raw = &line.text[start..end];
            let value = if kind == TokenKind::Word {
                super::lexer::word_value(raw)
            } else {
                raw.to_string()
            };
            tokens.push(LToken {
                kind,
                value,
                span,
                via,
            });
        }
        if tokens.len() == 2
            && tokens[1].kind == TokenKind::Word
            && matches!(
                tokens[0].value.as_str(),
                "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
            )
        {
            return self.include(line, &tokens[1].value, sink);
        }
        if tokens.is_empty() {
            return Ok(());
        }
        sink.line(&self.sources, tokens)
    }

    fn include(
        &mut self,
        line: &Line,
        pattern: &str,
        sink: &mut dyn LineSink,
    ) -> Result<(), Diagnostic> {
        let pattern_path = Path::new(pattern);
        let full = if pattern_path.is_absolute() {
            pattern_path.to_path_buf()
        } else {
            self.directory_of(line.file).join(pattern_path)
        };
        if !self.collected.include_patterns.contains(&full) {
            self.collected.include_patterns.push(full.clone());
        }
        let pattern_text = full.to_string_lossy().into_owned();
        // keepalived globs with GLOB_BRACE: each alternative's matches, sorted, in turn.
        let mut matches: Vec<PathBuf> = Vec::new();
        for alternative in expand_braces(&pattern_text) {
            match glob::glob(&alternative) {
                Ok(paths) => {
                    let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
                    found.sort();
                    matches.extend(found);
                }
                Err(e) => {
                    self.warn_at(
                        line.site,
                        format!("include pattern '{pattern}' is not a valid glob ({e}); skipped"),
                    );
                    return Ok(());
                }
            }
        }
        let matched = !matches.is_empty();
        for path in matches {
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    // A dangling link or a symlink loop: keepalived cannot open it either.
                    self.warn_at(
                        line.site,
                        format!(
                            "cannot read '{}' ({e}); keepalived skips it",
                            path.display()
                        ),
                    );
                    continue;
                }
            };
            if meta.is_dir() {
                self.warn_at(
                    line.site,
                    format!("'{}' is a directory; keepalived skips it", path.display()),
                );
                continue;
            }
            if !meta.is_file() {
                self.warn_at(
                    line.site,
                    format!(
                        "'{}' is not a regular file; keepalived skips it",
                        path.display()
                    ),
                );
                continue;
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o111 != 0 {
                    self.warn_at(
                        line.site,
                        format!(
                            "'{}' is executable; keepalived skips executable config files",
                            path.display()
                        ),
                    );
                    continue;
                }
            }
            if self.include_stack.len() >= MAX_INCLUDE_DEPTH {
                return Err(self
                    .error_at(
                        line.site,
                        format!("includes nest more than {MAX_INCLUDE_DEPTH} deep"),
                    )
                    .with_hint("an included file probably includes itself"));
            }
            let id = match self.sources.find(&path) {
                Some(id) => id,
                None => {
                    let bytes = crate::config::read_config_file(&path).map_err(|e| {
                        self.error_at(line.site, format!("included file: {}", e.message))
                            .with_hint(e.hint)
                    })?;
                    let text = String::from_utf8(bytes).map_err(|_| {
                        self.error_at(
                            line.site,
                            format!("included file '{}' is not valid UTF-8", path.display()),
                        )
                        .with_hint("convert the file to UTF-8")
                    })?;
                    self.sources.add(path.clone(), text)
                }
            };
            if self.include_stack.contains(&id) {
                return Err(self
                    .error_at(line.site, format!("'{}' includes itself", path.display()))
                    .with_hint("remove the include that closes the loop"));
            }
            self.read_file(id, sink)?;
        }
        if !matched {
            self.warn_at(
                line.site,
                format!("include '{pattern}' matches no file; keepalived skips it"),
            );
        }
        Ok(())
    }
}

struct Reference {
    name: String,
    /// Length of the reference text (`$NAME` or `${NAME ...}`).
    len: usize,
    value: String,
    multiline: bool,
}

/// The most patterns one brace expression may expand to.
const MAX_BRACE_ALTERNATIVES: usize = 1024;

/// csh-style brace expansion as glob(3) does with GLOB_BRACE: `a{b,c{d,e}}f` ->
/// `abf`, `acdf`, `acef`. Unbalanced braces are left as they are.
pub fn expand_braces(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    expand_braces_into(pattern, &mut out);
    out
}

fn expand_braces_into(pattern: &str, out: &mut Vec<String>) {
    if out.len() >= MAX_BRACE_ALTERNATIVES {
        return;
    }
    let bytes = pattern.as_bytes();
    let mut depth = 0usize;
    let mut open = 0usize;
    let mut commas = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' => {
                if depth == 0 {
                    open = i;
                    commas.clear();
                }
                depth += 1;
            }
            b',' if depth == 1 => commas.push(i),
            b'}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    let (pre, post) = (&pattern[..open], &pattern[i + 1..]);
                    let mut start = open + 1;
                    let mut parts = Vec::new();
                    for &c in &commas {
                        parts.push(&pattern[start..c]);
                        start = c + 1;
                    }
                    parts.push(&pattern[start..i]);
                    for part in parts {
                        expand_braces_into(&format!("{pre}{part}{post}"), out);
                    }
                    return;
                }
            }
            _ => {}
        }
    }
    out.push(pattern.to_string());
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match std::env::current_dir() {
        Ok(cwd) if path.as_os_str().is_empty() => cwd,
        Ok(cwd) => cwd.join(path),
        Err(_) => path.to_path_buf(),
    }
}

/// `$NAME=value` / `$NAME = value`: the name and the value (leading blanks skipped).
fn parse_definition(text: &str) -> Option<(&str, &str)> {
    use nom::bytes::complete::{take_while, take_while1};
    use nom::character::complete::char;
    use nom::sequence::{pair, preceded, terminated};

    let blank = |c: char| c == ' ' || c == '\t';
    let name = nom::combinator::recognize(pair(
        take_while1(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ));
    let mut parser = preceded(
        char('$'),
        terminated(name, pair(take_while(blank), char('='))),
    );
    let res: nom::IResult<&str, &str> = parser(text);
    let (rest, name) = res.ok()?;
    Some((name, rest.trim_start_matches([' ', '\t'])))
}

/// Assignments of one repetition: (variable, value) pairs.
type Assignment = Vec<(String, String)>;

/// `~SEQ(var, end)`, `~SEQ(var, start, end)`, `~SEQ(var, start, step, end)`, `~SEQx(...)`
/// for hexadecimal values; numbers as C's `strtol(.., 0)` reads them.
fn parse_seq(head: &str) -> Result<Vec<Assignment>, String> {
    let rest = &head[4..];
    let (hex, rest) = match rest.strip_prefix('x') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let inner = rest
        .trim_start_matches([' ', '\t'])
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or("expected '(' after ~SEQ")?;
    let mut parts = inner.split(',').map(|p| p.trim_matches([' ', '\t']));
    let var = parts
        .next()
        .filter(|v| !v.is_empty())
        .ok_or("no variable name")?;
    if var.contains([' ', '\t']) {
        return Err("the variable name has a space in it".into());
    }
    let nums = parts
        .map(|p| parse_c_long(p).ok_or_else(|| format!("'{p}' is not a number")))
        .collect::<Result<Vec<i64>, String>>()?;
    let (start, step, end) = match nums.as_slice() {
        [end] => {
            let end = *end;
            (
                if end < 0 { -1 } else { 1 },
                if end < 1 { -1 } else { 1 },
                end,
            )
        }
        [start, end] => (*start, if start <= end { 1 } else { -1 }, *end),
        [start, step, end] => {
            let (start, step, end) = (*start, *step, *end);
            if step == 0 || (start < end && step < 0) || (start > end && step > 0) {
                return Err("the step does not lead from start to end".into());
            }
            (start, step, end)
        }
        [] => return Err("no numbers".into()),
        _ => return Err("more than three numbers".into()),
    };
    if hex && (start < 0 || end < 0) {
        return Err("~SEQx takes only positive numbers".into());
    }
    let count = (i128::from(end) - i128::from(start)) / i128::from(step) + 1;
    if count > i128::from(MAX_SEQ_LINES) {
        return Err(format!(
            "it would produce {count} lines, more than {MAX_SEQ_LINES}"
        ));
    }
    let mut out = Vec::new();
    let mut v = start;
    while (step > 0 && v <= end) || (step < 0 && v >= end) {
        let value = if hex { format!("{v:x}") } else { v.to_string() };
        out.push(vec![(var.to_string(), value)]);
        match v.checked_add(step) {
            Some(n) => v = n,
            None => break,
        }
    }
    Ok(out)
}

/// C `strtol(s, &end, 0)` accepting the whole string: decimal, `0x` hex, `0` octal.
fn parse_c_long(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(h, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// `~LST(var, a, b, c)` or `~LST({v1, v2}, {a1, a2}, {b1, b2})`.
fn parse_lst(head: &str) -> Result<Vec<Assignment>, String> {
    let inner = head[4..]
        .trim_start_matches([' ', '\t'])
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or("expected '(' after ~LST")?;
    let groups = split_groups(inner)?;
    let mut iter = groups.into_iter();
    let vars = iter.next().ok_or("no variable names")?;
    if vars.iter().any(|v| v.is_empty()) {
        return Err("empty variable name".into());
    }
    let mut out = Vec::new();
    for values in iter {
        if values.len() > vars.len() {
            return Err("a value set has more values than there are variables".into());
        }
        let mut a = Vec::new();
        for (i, var) in vars.iter().enumerate() {
            a.push((var.clone(), values.get(i).cloned().unwrap_or_default()));
        }
        out.push(a);
    }
    if out.is_empty() {
        return Err("no values".into());
    }
    if out.len() as i64 > MAX_SEQ_LINES {
        return Err(format!("more than {MAX_SEQ_LINES} values"));
    }
    Ok(out)
}

/// Splits `a, {b, c}, d` into `[[a], [b, c], [d]]`.
fn split_groups(s: &str) -> Result<Vec<Vec<String>>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim_start_matches([' ', '\t']);
    loop {
        if let Some(r) = rest.strip_prefix('{') {
            let close = r.find('}').ok_or("unclosed '{'")?;
            out.push(
                r[..close]
                    .split(',')
                    .map(|v| v.trim_matches([' ', '\t']).to_string())
                    .collect(),
            );
            rest = r[close + 1..].trim_start_matches([' ', '\t']);
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            out.push(vec![rest[..end].trim_matches([' ', '\t']).to_string()]);
            rest = &rest[end..];
        }
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start_matches([' ', '\t']),
            None if rest.trim().is_empty() => break,
            None => return Err(format!("unexpected '{}'", rest.trim())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects each logical line as its word values joined by spaces.
    #[derive(Default)]
    struct Lines(Vec<(String, Vec<Option<String>>)>);

    impl LineSink for Lines {
        fn line(&mut self, _: &SourceMap, tokens: Vec<LToken>) -> Result<(), Diagnostic> {
            let text = tokens
                .iter()
                .map(|t| t.value.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let vias = tokens
                .iter()
                .map(|t| t.via.as_deref().map(str::to_string))
                .collect();
            self.0.push((text, vias));
            Ok(())
        }
    }

    fn run_with(text: &str, id: Option<&str>) -> (Vec<String>, Preprocessor) {
        let mut pre = Preprocessor::new(id.map(str::to_string));
        let mut sink = Lines::default();
        pre.run(
            Path::new("/nonexistent/k.conf"),
            text.to_string(),
            &mut sink,
        )
        .expect("preprocess");
        (sink.0.into_iter().map(|l| l.0).collect(), pre)
    }

    fn run(text: &str) -> Vec<String> {
        run_with(text, Some("node1")).0
    }

    #[test]
    fn comments_and_blank_lines_vanish() {
        assert_eq!(run("a b # c\n\n  ! x\n d\\#e f\n"), vec!["a b", "d"]);
    }

    #[test]
    fn conditional_lines_follow_the_config_id() {
        let (lines, pre) = run_with(
            "@node1 a 1\n@node2 b 2\n@^node1 c 3\n@^node2 d 4\n@node1\n",
            Some("node1"),
        );
        assert_eq!(lines, vec!["a 1", "d 4"]);
        let ids: Vec<_> = pre.collected.conditional_ids.into_iter().collect();
        assert_eq!(ids, vec!["node1", "node2"]);
    }

    #[test]
    fn definitions_substitute_with_and_without_braces() {
        assert_eq!(
            run("$IP=192.0.2.1\n$P = 80\nreal_server $IP $P\nx ${IP}:${P} $IP.5 $PX\n"),
            vec!["real_server 192.0.2.1 80", "x 192.0.2.1:80 $IP.5 $PX"]
        );
    }

    #[test]
    fn substituted_tokens_carry_the_expansion() {
        let mut pre = Preprocessor::new(None);
        let mut sink = Lines::default();
        pre.run(
            Path::new("k.conf"),
            "$IP=192.0.2.1\nreal_server $IP 80\n".into(),
            &mut sink,
        )
        .expect("preprocess");
        let (_, vias) = &sink.0[0];
        assert_eq!(
            vias,
            &vec![None, Some("$IP".to_string()), None],
            "only the substituted word is expanded"
        );
    }

    #[test]
    fn multiline_definitions_expand_into_lines() {
        let text = "$RS=real_server 192.0.2.$N 80 { \\\n  weight 1 \\\n}\n$N=7\n$RS\n";
        assert_eq!(
            run(text),
            vec!["real_server 192.0.2.7 80 {", "weight 1", "}"]
        );
    }

    #[test]
    fn multiline_definition_only_expands_at_end_of_line() {
        let text = "$M=a \\\nb\nx $M y\n";
        assert_eq!(run(text), vec!["x $M y"]);
    }

    #[test]
    fn backslash_then_blank_still_continues() {
        assert_eq!(run("$M=a \\ \nb\n$M\n"), vec!["a", "b"]);
    }

    #[test]
    fn crlf_files_continue_definitions() {
        let text = "$RS=rs 1 { \\\r\n  weight 1 \\\r\n}\r\n$RS\r\n";
        assert_eq!(run(text), vec!["rs 1 {", "weight 1", "}"]);
    }

    #[test]
    fn blank_line_ends_a_multiline_definition() {
        let text = "$M=a \\\nb \\\n\nc\n$M\n";
        assert_eq!(run(text), vec!["c", "a", "b"]);
    }

    #[test]
    fn seq_repeats_the_rest_of_the_line() {
        assert_eq!(
            run("~SEQ(i, 1, 3) rs 192.0.2.$i\n"),
            vec!["rs 192.0.2.1", "rs 192.0.2.2", "rs 192.0.2.3"]
        );
        assert_eq!(run("~SEQ(i,10,-5,1) v $i\n"), vec!["v 10", "v 5"]);
        assert_eq!(run("~SEQ(i,2) v $i\n"), vec!["v 1", "v 2"]);
        assert_eq!(run("~SEQx(i,9,11) v $i\n"), vec!["v 9", "v a", "v b"]);
        assert_eq!(run("$N=2\n~SEQ(i,1,$N) v $i\n"), vec!["v 1", "v 2"]);
    }

    #[test]
    fn seq_of_a_multiline_definition_expands_each_copy() {
        let text = "$RS=rs 192.0.2.$i { \\\n}\n~SEQ(i,1,2) $RS\n";
        assert_eq!(
            run(text),
            vec!["rs 192.0.2.1 {", "}", "rs 192.0.2.2 {", "}"]
        );
    }

    #[test]
    fn multiline_definition_starting_with_seq_keeps_its_other_lines() {
        let text = "$M=~SEQ(i,1,2) v $i \\\nafter\n$M\n";
        assert_eq!(run(text), vec!["v 1", "v 2", "after"]);
    }

    #[test]
    fn lst_assigns_each_value() {
        assert_eq!(run("~LST(h, a, b) host $h\n"), vec!["host a", "host b"]);
        assert_eq!(
            run("~LST({ip,port}, {192.0.2.1, 80}, {192.0.2.2, 443}) v $ip $port\n"),
            vec!["v 192.0.2.1 80", "v 192.0.2.2 443"]
        );
    }

    #[test]
    fn seq_with_too_many_lines_is_a_located_error() {
        let mut pre = Preprocessor::new(None);
        let mut sink = Lines::default();
        let err = pre
            .run(
                Path::new("k.conf"),
                "\n~SEQ(i,1,1000000) x\n".into(),
                &mut sink,
            )
            .expect_err("too many");
        let loc = err.location.expect("located");
        assert_eq!((loc.line, loc.col), (2, 1));
    }

    #[test]
    fn self_referencing_definition_is_an_error_not_a_hang() {
        let mut pre = Preprocessor::new(None);
        let mut sink = Lines::default();
        let err = pre
            .run(Path::new("k.conf"), "$A=x $A\ny $A\n".into(), &mut sink)
            .expect_err("recursive");
        assert!(err.message.contains("too long") || err.message.contains("settle"));
    }

    #[test]
    fn hash_and_bang_definitions_comment_out_the_rest() {
        assert_eq!(
            run("$OFF=${_HASH}\n$OFF virtual_server x\nlb_kind A ${_BANG} B\n"),
            vec!["lb_kind A"]
        );
    }

    #[test]
    fn hash_comment_keeps_multiline_tails_met_before_it() {
        // As keepalived 2.2.7 does (and the corpus relies on): the first line of $M is
        // commented out, its later lines are not.
        let text = "$OFF=${_HASH}\n$M=a \\\nb\n$ONE=x\n$OFF $M\n$OFF $ONE\n";
        assert_eq!(run(text), vec!["b"]);
    }

    #[test]
    fn standard_definitions() {
        let (lines, _) = run_with("a ${_INSTANCE} ${_RANDOM 3 9}\nb ${_PWD}\n", Some("lb1"));
        assert_eq!(lines, vec!["a lb1 3", "b /nonexistent"]);
    }

    #[test]
    fn brace_expansion_like_glob_brace() {
        assert_eq!(expand_braces("a{b,c{d,e}}f"), vec!["abf", "acdf", "acef"]);
        assert_eq!(
            expand_braces("/etc/{,x/}k.conf"),
            vec!["/etc/k.conf", "/etc/x/k.conf"]
        );
        assert_eq!(expand_braces("plain*.conf"), vec!["plain*.conf"]);
        assert_eq!(expand_braces("open{a,b"), vec!["open{a,b"]);
        let many = "{a,b}".repeat(20);
        assert_eq!(expand_braces(&many).len(), MAX_BRACE_ALTERNATIVES);
    }

    #[test]
    fn definition_parser() {
        assert_eq!(parse_definition("$A=1"), Some(("A", "1")));
        assert_eq!(parse_definition("$_b2 =  x y"), Some(("_b2", "x y")));
        assert_eq!(parse_definition("$2=1"), None);
        assert_eq!(parse_definition("$A x=1"), None);
    }
}
