//! Lossless lexer for keepalived.conf: every byte of a file lands in exactly one token, so
//! printing the tokens back gives the file unchanged.
//!
//! The rules follow keepalived 2.2's `decomment()` and `read_line()` (checked against
//! `keepalived -t` 2.2.7): a comment starts at `#` or `!` outside double quotes and runs
//! to the end of the line, even right after a backslash; otherwise a backslash pairs with
//! the next character (so `\"` does not open a quote); a backslash that ends the line
//! continues a `$NAME=` definition, even after a comment; `{` and `}` outside double
//! quotes are tokens of their own wherever they stand.
//!
//! Every token is a nom parser over the rest of the line (`spaces`, `continuation`,
//! `comment`, a brace, `word`), and `scan_line` takes the first that matches, in that
//! order, until the line is used up. The grammar is small but context-dependent (a
//! backslash pairs with the next character unless it ends the line; a quote switches the
//! comment and brace characters off until it closes); the combinators below spell those
//! rules out one by one, so nom does the scanning rather than a byte loop dressed as a
//! parser. Lines are split before lexing because every rule stops at the line's end.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{anychar, char, one_of};
use nom::combinator::{consumed, eof, map, not, opt, peek, recognize, value};
use nom::multi::{fold_many1, many0_count};
use nom::sequence::{pair, preceded, terminated, tuple};
use nom::IResult;

/// What a run of bytes is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Spaces, tabs, `\r`, vertical tab, form feed.
    Space,
    /// A word: keyword or argument, quotes and escapes included as written.
    Word,
    /// `{`
    Open,
    /// `}`
    Close,
    /// From `#` or `!` to the end of the line (without a final continuation backslash).
    Comment,
    /// A backslash that ends a line.
    Continuation,
    /// `\n`
    Newline,
}

impl TokenKind {
    /// True for the tokens keepalived ignores (whitespace, comments, line ends).
    pub fn is_trivia(self) -> bool {
        matches!(
            self,
            TokenKind::Space | TokenKind::Comment | TokenKind::Newline | TokenKind::Continuation
        )
    }
}

/// One token: `start..end` byte offsets into the text that was lexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

/// Lexes a whole file. The tokens cover `text` exactly, in order, without gaps.
pub fn lex(text: &str) -> Vec<Token> {
    let mut out = Vec::with_capacity(text.len() / 4);
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        for (kind, start, end) in scan_line(body).tokens {
            out.push(Token {
                kind,
                start: offset + start,
                end: offset + end,
            });
        }
        if body.len() < line.len() {
            out.push(Token {
                kind: TokenKind::Newline,
                start: offset + body.len(),
                end: offset + line.len(),
            });
        }
        offset += line.len();
    }
    out
}

/// Prints tokens back to text: the concatenation of the bytes each one covers.
pub fn print(text: &str, tokens: &[Token]) -> String {
    let mut out = String::with_capacity(text.len());
    for t in tokens {
        out.push_str(&text[t.start..t.end]);
    }
    out
}

/// The tokens of one line (without its `\n`), with offsets into that line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineScan {
    pub tokens: Vec<(TokenKind, usize, usize)>,
    /// A double quote was opened and not closed before the end of the line.
    pub unterminated_quote: bool,
}

impl LineScan {
    /// True when the line ends with a continuation backslash.
    pub fn continues(&self) -> bool {
        self.tokens
            .iter()
            .any(|&(k, _, _)| k == TokenKind::Continuation)
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\x0b' | '\x0c')
}

fn spaces(input: &str) -> IResult<&str, &str> {
    take_while1(is_space)(input)
}

/// Only carriage returns up to the end of the line.
/// (keepalived drops the line's `\r` first, so `\` before `\r\n` continues too.)
fn line_end(input: &str) -> IResult<&str, &str> {
    terminated(take_while(|c| c == '\r'), eof)(input)
}

/// A backslash with nothing after it on the line.
fn continuation(input: &str) -> IResult<&str, &str> {
    recognize(pair(char('\\'), line_end))(input)
}

/// A backslash that does not end the line, with the character it pairs with.
fn escaped_pair(input: &str) -> IResult<&str, &str> {
    recognize(tuple((char('\\'), not(line_end), anychar)))(input)
}

/// A comment: from `#`/`!` to the end of the line, stopping before a final unpaired
/// backslash (keepalived still sees that one as a continuation).
fn comment(input: &str) -> IResult<&str, &str> {
    recognize(pair(
        one_of("#!"),
        many0_count(alt((take_while1(|c| c != '\\'), escaped_pair))),
    ))(input)
}

/// A double-quoted run: to the closing quote or the end of the line (a backslash pairs
/// with the next character, so `\"` does not close it). Its output: whether it closed.
fn quoted(input: &str) -> IResult<&str, bool> {
    map(
        preceded(
            char('"'),
            pair(
                many0_count(alt((take_while1(|c| c != '"' && c != '\\'), escaped_pair))),
                opt(char('"')),
            ),
        ),
        |(_, close)| close.is_some(),
    )(input)
}

/// An unquoted backslash that does not end the line: keepalived 2.2 does not let it hide
/// a comment character, so before `#`/`!` it stands alone.
fn escape_outside_quotes(input: &str) -> IResult<&str, &str> {
    alt((terminated(tag("\\"), peek(one_of("#!"))), escaped_pair))(input)
}

/// Characters that end an unquoted run of a word.
fn ends_plain(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\r' | '\x0b' | '\x0c' | '{' | '}' | '#' | '!' | '"' | '\\'
    )
}

/// A word: everything up to whitespace, a brace or a comment character outside double
/// quotes. Its output: whether its last quote (if any) closed.
fn word(input: &str) -> IResult<&str, (&str, bool)> {
    consumed(fold_many1(
        alt((
            quoted,
            value(true, escape_outside_quotes),
            value(true, take_while1(|c| !ends_plain(c))),
        )),
        || true,
        |closed, part| closed && part,
    ))(input)
}
/// One token and, for a word, whether its quotes closed.
fn token(input: &str) -> IResult<&str, (TokenKind, &str, bool)> {
    alt((
        map(spaces, |t| (TokenKind::Space, t, true)),
        map(continuation, |t| (TokenKind::Continuation, t, true)),
        map(comment, |t| (TokenKind::Comment, t, true)),
        map(tag("{"), |t| (TokenKind::Open, t, true)),
        map(tag("}"), |t| (TokenKind::Close, t, true)),
        map(word, |(t, closed)| (TokenKind::Word, t, closed)),
    ))(input)
}

/// Splits one line (without its newline) into tokens covering it exactly.
pub fn scan_line(line: &str) -> LineScan {
    let mut scan = LineScan::default();
    let mut rest = line;
    while !rest.is_empty() {
        let start = line.len() - rest.len();
        match token(rest) {
            Ok((r, (kind, text, closed))) => {
                if !closed {
                    scan.unterminated_quote = true;
                }
                scan.tokens.push((kind, start, start + text.len()));
                rest = r;
            }
            Err(_) => {
                // Cannot happen (the alternatives cover any first character), but stay
                // lossless rather than loop: take one character as a word.
                let n = rest.chars().next().map_or(1, char::len_utf8);
                scan.tokens.push((TokenKind::Word, start, start + n));
                rest = &rest[n..];
            }
        }
    }
    scan
}

/// The value keepalived sees for a word: double quotes removed (the text between them
/// kept, spaces included).
pub fn word_value(word: &str) -> String {
    if !word.contains('"') {
        return word.to_string();
    }
    word.replace('"', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(line: &str) -> Vec<(TokenKind, &str)> {
        scan_line(line)
            .tokens
            .into_iter()
            .map(|(k, s, e)| (k, &line[s..e]))
            .collect()
    }

    #[test]
    fn braces_are_tokens_wherever_they_stand() {
        use TokenKind::*;
        assert_eq!(
            kinds("virtual_server 192.0.2.1 80{weight 1}}"),
            vec![
                (Word, "virtual_server"),
                (Space, " "),
                (Word, "192.0.2.1"),
                (Space, " "),
                (Word, "80"),
                (Open, "{"),
                (Word, "weight"),
                (Space, " "),
                (Word, "1"),
                (Close, "}"),
                (Close, "}"),
            ]
        );
    }

    #[test]
    fn comments_start_at_hash_or_bang_outside_quotes() {
        use TokenKind::*;
        assert_eq!(
            kinds("a b#c { d"),
            vec![(Word, "a"), (Space, " "), (Word, "b"), (Comment, "#c { d")]
        );
        assert_eq!(
            kinds("x ! y"),
            vec![(Word, "x"), (Space, " "), (Comment, "! y")]
        );
        assert_eq!(
            kinds(r#"script "/bin/a # b {}" # c"#),
            vec![
                (Word, "script"),
                (Space, " "),
                (Word, r#""/bin/a # b {}""#),
                (Space, " "),
                (Comment, "# c"),
            ]
        );
    }

    #[test]
    fn backslash_escapes_quotes_but_not_comment_characters() {
        use TokenKind::*;
        assert_eq!(kinds(r"a\#b"), vec![(Word, r"a\"), (Comment, "#b")]);
        assert_eq!(
            kinds(r#"a\" #c"#),
            vec![(Word, r#"a\""#), (Space, " "), (Comment, "#c")]
        );
    }

    #[test]
    fn final_backslash_is_a_continuation_even_after_a_comment() {
        use TokenKind::*;
        assert_eq!(
            kinds(r"real_server 1 \"),
            vec![
                (Word, "real_server"),
                (Space, " "),
                (Word, "1"),
                (Space, " "),
                (Continuation, r"\"),
            ]
        );
        let scan = scan_line(r"    # quorum_down x \");
        assert!(scan.continues());
        assert!(
            scan_line("$A=x \\\r").continues(),
            "CRLF line ends continue too"
        );
        assert!(scan_line("# c \\\r").continues());
        assert!(!scan_line(r"a \\").continues());
    }

    #[test]
    fn unterminated_quote_runs_to_end_of_line() {
        let scan = scan_line(r#"notify "/bin/x { y"#);
        assert!(scan.unterminated_quote);
        assert_eq!(scan.tokens.last().map(|t| t.0), Some(TokenKind::Word));
    }

    #[test]
    fn lex_then_print_is_byte_identical() {
        let text = "global_defs {\r\n\t# c\\\n  x \"y z\" }\n\n}}{ ! end\nno newline \\";
        let tokens = lex(text);
        assert_eq!(print(text, &tokens), text);
        let mut at = 0;
        for t in &tokens {
            assert_eq!(t.start, at, "gap or overlap before {t:?}");
            assert!(t.end > t.start, "empty token {t:?}");
            at = t.end;
        }
        assert_eq!(at, text.len());
    }

    #[test]
    fn word_value_strips_double_quotes() {
        assert_eq!(word_value(r#""/bin/a b""#), "/bin/a b");
        assert_eq!(word_value("plain"), "plain");
    }
}
