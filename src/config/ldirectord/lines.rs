//! The line classifier: what one line of ldirectord.cf is, as `read_config` sees it,
//! written as nom parsers over the line's text (without its `\n`).
//!
//! ldirectord reads line by line with Perl regexes anchored at the start of the line;
//! each of those anchors is a parser here. Perl's `\s` on bytes is ASCII only: tab, `\n`,
//! vertical tab, form feed, `\r` and space.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_till, take_while};
use nom::character::complete::char;
use nom::combinator::{eof, map, opt, rest, value};
use nom::sequence::{pair, preceded, terminated, tuple};
use nom::IResult;

use super::Family;

/// Perl's `\s` on a byte string.
pub(super) fn is_perl_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0B' | '\x0C' | '\r' | ' ')
}

/// `\s*`
pub(super) fn perl_space0(input: &str) -> IResult<&str, &str> {
    take_while(is_perl_space)(input)
}

/// `\s*=\s*(.*)`: the value of a setting whose key was just read.
pub(super) fn assignment(input: &str) -> IResult<&str, &str> {
    preceded(tuple((perl_space0, char('='), perl_space0)), rest)(input)
}

/// The value after `key`, when `text` is `key\s*=\s*VALUE` (`key` read up to where the
/// caller's key run ended, so `key` is the whole key).
pub(super) fn value_after(after_key: &str) -> Option<&str> {
    assignment(after_key).ok().map(|(_, v)| v)
}

/// A top-level line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TopLine<'t> {
    /// `virtual=` / `virtual6=` at column 0: opens a block.
    Virtual { family: Family, value: &'t str },
    /// Only white space.
    Blank,
    /// `^\s*#`
    Comment,
    /// Anything else: a global setting, or a line ldirectord rejects.
    Setting(Setting<'t>),
}

/// A column-0 `key=value` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Setting<'t> {
    /// The leading run of `[a-z6]` (empty when the line starts otherwise).
    pub key: &'t str,
    /// What follows the key.
    pub after_key: &'t str,
    /// The value, when the key is followed by `\s*=\s*`.
    pub value: Option<&'t str>,
}

/// `^virtual(6)?\s*=\s*(.*)`
fn virtual_header(input: &str) -> IResult<&str, TopLine<'_>> {
    map(
        pair(preceded(tag("virtual"), opt(char('6'))), assignment),
        |(six, value)| TopLine::Virtual {
            family: if six.is_some() {
                Family::V6
            } else {
                Family::V4
            },
            value,
        },
    )(input)
}

/// `^\s*$`
fn blank(input: &str) -> IResult<&str, TopLine<'_>> {
    value(TopLine::Blank, terminated(perl_space0, eof))(input)
}

/// `^\s*#`
fn comment(input: &str) -> IResult<&str, ()> {
    value((), pair(perl_space0, char('#')))(input)
}

/// `^([a-z6]*)` and what follows.
fn setting(input: &str) -> IResult<&str, TopLine<'_>> {
    map(
        pair(
            take_while(|c: char| c.is_ascii_lowercase() || c == '6'),
            rest,
        ),
        |(key, after_key): (&str, &str)| {
            TopLine::Setting(Setting {
                key,
                after_key,
                value: value_after(after_key),
            })
        },
    )(input)
}

/// Classifies a line outside a block (header tested first, as ldirectord does).
pub(super) fn top_line(text: &str) -> TopLine<'_> {
    let parsed = alt((
        virtual_header,
        blank,
        value(TopLine::Comment, comment),
        setting,
    ))(text);
    match parsed {
        Ok((_, line)) => line,
        // `setting` accepts any text; kept total without a panic.
        Err(_) => TopLine::Setting(Setting {
            key: "",
            after_key: text,
            value: None,
        }),
    }
}

/// A line after a block's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum BlockLine {
    /// `^\s*#`: skipped, the block goes on.
    Comment,
    /// A line of the block: its text cut at `#`, tabs turned into four spaces, the
    /// indentation (at least four columns) removed.
    Directive(String),
    /// Not indented enough: the block ends before this line.
    End,
}

/// What ldirectord makes of a line inside a block: a comment; else cut at `#`, tabs ->
/// four spaces, then `/^ {4,}(.+)/`.
pub(super) fn block_line(text: &str) -> BlockLine {
    if comment(text).is_ok() {
        return BlockLine::Comment;
    }
    let indented: IResult<&str, (&str, &str)> = pair(
        take_while(|c| c == ' ' || c == '\t'),
        take_till(|c| c == '#'),
    )(text);
    let Ok((_, (lead, body))) = indented else {
        return BlockLine::End;
    };
    let width: usize = lead.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum();
    match (width, body) {
        (0..=3, _) | (4, "") => BlockLine::End,
        // `.+` takes back the last space when nothing else follows.
        (_, "") => BlockLine::Directive(" ".to_string()),
        (_, body) => BlockLine::Directive(body.replace('\t', "    ")),
    }
}

/// The key of a block line: its leading run of `[0-9A-Za-z_-]`.
pub(super) fn directive_key(command: &str) -> (&str, &str) {
    let key_len = command
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        .count();
    command.split_at(key_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_blank_comments_and_settings() {
        assert_eq!(
            top_line("virtual6 =\t[2001:db8::1]:80"),
            TopLine::Virtual {
                family: Family::V6,
                value: "[2001:db8::1]:80"
            }
        );
        assert_eq!(
            top_line("virtual=192.0.2.1:80 "),
            TopLine::Virtual {
                family: Family::V4,
                value: "192.0.2.1:80 "
            }
        );
        assert_eq!(top_line(" \t\r"), TopLine::Blank);
        assert_eq!(top_line(""), TopLine::Blank);
        assert_eq!(top_line("  # x"), TopLine::Comment);
        assert_eq!(
            top_line("checktimeout = 3"),
            TopLine::Setting(Setting {
                key: "checktimeout",
                after_key: " = 3",
                value: Some("3")
            })
        );
        // `virtualx=` is not a header; its key stops at the first non-[a-z6].
        assert_eq!(
            top_line("Virtual=1"),
            TopLine::Setting(Setting {
                key: "",
                after_key: "Virtual=1",
                value: None
            })
        );
        assert_eq!(
            top_line("fork"),
            TopLine::Setting(Setting {
                key: "fork",
                after_key: "",
                value: None
            })
        );
    }

    #[test]
    fn block_lines_follow_ldirectord_indentation_rules() {
        assert_eq!(block_line("\t# c"), BlockLine::Comment);
        assert_eq!(
            block_line("\treal=192.0.2.2\tgate # x"),
            BlockLine::Directive("real=192.0.2.2    gate ".to_string())
        );
        assert_eq!(block_line("   real=x"), BlockLine::End);
        assert_eq!(block_line("    "), BlockLine::End);
        assert_eq!(block_line("     "), BlockLine::Directive(" ".to_string()));
        assert_eq!(block_line("\t\t"), BlockLine::Directive(" ".to_string()));
        assert_eq!(block_line("  \t x"), BlockLine::Directive("x".to_string()));
        assert_eq!(block_line("x=1"), BlockLine::End);
        assert_eq!(block_line(""), BlockLine::End);
    }
}
