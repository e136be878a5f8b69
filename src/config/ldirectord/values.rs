//! The value grammars of ldirectord's directives, as nom parsers: each one reads what
//! ldirectord's regex for that directive captures (Perl regexes on bytes, so `\d`, `\w`
//! and `\s` are ASCII only).

use nom::branch::alt;
use nom::bytes::complete::{take_till, take_while, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{all_consuming, map, opt, recognize};
use nom::sequence::{delimited, preceded, separated_pair, tuple};
use nom::IResult;

use super::lines::is_perl_space;

/// Perl's `\w` on bytes.
fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `"(.*)"` right at the start: the text between the first and the last double quote
/// (greedy, so inner quotes belong to the value; text after the last quote is ignored).
fn quoted_greedy(input: &str) -> IResult<&str, &str> {
    let (inner, _) = char('"')(input)?;
    match inner.rfind('"') {
        Some(end) => Ok((&inner[end + 1..], &inner[..end])),
        None => Err(nom::Err::Error(nom::error::Error::new(
            inner,
            nom::error::ErrorKind::Char,
        ))),
    }
}

/// The value of `key\s*=\s*"(.*)"`, given what follows `\s*=\s*`.
pub(super) fn quoted(value: &str) -> Option<&str> {
    quoted_greedy(value).ok().map(|(_, v)| v)
}

/// The first run of digits anywhere (`(\d+)`).
pub(super) fn first_digits(s: &str) -> Option<&str> {
    let parsed: IResult<&str, &str> = preceded(take_till(|c: char| c.is_ascii_digit()), digit1)(s);
    parsed.ok().map(|(_, d)| d)
}

/// The leading run of digits, possibly empty (`^(\d*)`).
pub(super) fn leading_digits(s: &str) -> &str {
    take_while::<_, _, nom::error::Error<&str>>(|c: char| c.is_ascii_digit())(s)
        .map_or("", |(_, d)| d)
}

/// The first run of word characters anywhere (`(\w+)`).
pub(super) fn first_word(s: &str) -> Option<&str> {
    let parsed: IResult<&str, &str> = preceded(take_till(is_word), take_while1(is_word))(s);
    parsed.ok().map(|(_, w)| w)
}

/// The first run of `[0-9A-Za-z_-]` anywhere (checktype's keyword).
pub(super) fn first_keyword(s: &str) -> Option<&str> {
    let is_kw = |c: char| is_word(c) || c == '-';
    let parsed: IResult<&str, &str> = preceded(take_till(is_kw), take_while1(is_kw))(s);
    parsed.ok().map(|(_, w)| w)
}

/// `^[0-9A-Za-z._+-]+`: a host name or address starts the value.
pub(super) fn starts_with_host(s: &str) -> bool {
    take_while1::<_, _, nom::error::Error<&str>>(|c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')
    })(s)
    .is_ok()
}

/// `^\d+$`
pub(super) fn all_digits(s: &str) -> bool {
    all_consuming(digit1::<_, nom::error::Error<&str>>)(s).is_ok()
}

/// `^\d+\.\d+\.\d+\.\d+$`
pub(super) fn dotted_quad(s: &str) -> bool {
    all_consuming(recognize(tuple((
        digit1::<_, nom::error::Error<&str>>,
        char('.'),
        digit1,
        char('.'),
        digit1,
        char('.'),
        digit1,
    ))))(s)
    .is_ok()
}

/// `"?([^"]*)"?`: the value without its quotes, up to the first inner quote.
pub(super) fn maybe_quoted(s: &str) -> &str {
    preceded(
        opt(char::<_, nom::error::Error<&str>>('"')),
        take_till(|c| c == '"'),
    )(s)
    .map_or("", |(_, v)| v)
}

/// `^"([^"]*)"$` unwrapped, else the value as is.
pub(super) fn unquoted_whole(s: &str) -> &str {
    all_consuming(delimited(
        char::<_, nom::error::Error<&str>>('"'),
        take_till(|c| c == '"'),
        char('"'),
    ))(s)
    .map_or(s, |(_, v)| v)
}

/// Perl's `split /\s*,\s*/` with trailing empty fields dropped.
pub(super) fn comma_list(s: &str) -> Vec<&str> {
    let pieces: Vec<&str> = s.split(',').collect();
    let last = pieces.len() - 1;
    let mut items: Vec<&str> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let p = if i > 0 {
                p.trim_start_matches(is_perl_space)
            } else {
                p
            };
            if i < last {
                p.trim_end_matches(is_perl_space)
            } else {
                p
            }
        })
        .collect();
    while items.last().is_some_and(|s| s.is_empty()) {
        items.pop();
    }
    items
}

/// True when `s` has a character of the class anywhere (`/[a-z]/`, `/\S/`, `/\w/`).
pub(super) fn has_lowercase(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_lowercase())
}

pub(super) fn has_non_space(s: &str) -> bool {
    !s.chars().all(is_perl_space)
}

pub(super) fn has_word(s: &str) -> bool {
    s.chars().any(is_word)
}

/// Perl truth of a captured string: false for "" and "0".
pub(super) fn perl_true(s: &str) -> bool {
    !s.is_empty() && s != "0"
}

/// A run of digits as a number (saturating; Perl would go to floating point).
pub(super) fn number(digits: &str) -> u64 {
    digits.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10)
            .saturating_add(u64::from(b.wrapping_sub(b'0')))
    })
}

/// `checktimeout=` and friends: the first digits, which must not be "0".
pub(super) fn counted(v: &str) -> Option<u64> {
    first_digits(v).filter(|d| perl_true(d)).map(number)
}

/// ldirectord adds a leading `/` to a request.
pub(super) fn with_slash(v: String) -> String {
    if v.starts_with('/') {
        v
    } else {
        format!("/{v}")
    }
}

/// `\[(.*)\]` anywhere: the text between the first `[` and the last `]` after it.
pub(super) fn bracketed(s: &str) -> Option<&str> {
    let (_, (_, inner)) = tuple((
        take_till::<_, _, nom::error::Error<&str>>(|c| c == '['),
        quoted_by_brackets,
    ))(s)
    .ok()?;
    Some(inner)
}

fn quoted_by_brackets(input: &str) -> IResult<&str, &str> {
    let (inner, _) = char('[')(input)?;
    match inner.rfind(']') {
        Some(end) => Ok((&inner[end + 1..], &inner[..end])),
        None => Err(nom::Err::Error(nom::error::Error::new(
            inner,
            nom::error::ErrorKind::Char,
        ))),
    }
}

/// What a `virtual=` line names, before names are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VirtualAddress<'t> {
    /// `HOST:PORT` (an IPv4 address is a host here too).
    HostPort(&'t str, &'t str),
    /// `FWMARK`: the leading digits.
    Mark(&'t str),
    /// `[IPv6]:PORT`
    V6(&'t str, &'t str),
}

/// `[0-9A-Za-z_-]+`: a port number or service name.
fn port_name(input: &str) -> IResult<&str, &str> {
    take_while1(|c: char| is_word(c) || c == '-')(input)
}

/// ldirectord's patterns for a virtual, tried in its order: `^(HOST):(PORT)`, `^(\d+)`,
/// `^\[([0-9A-Fa-f:]+)\]:(PORT)`. (Its `^(\d+\.\d+\.\d+\.\d+):(PORT)`, tried first for
/// IPv4, captures exactly what the host pattern does, so it needs no parser of its own.)
pub(super) fn virtual_address(s: &str) -> Option<VirtualAddress<'_>> {
    let host =
        take_while1(|c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'));
    let v6 = delimited(
        char('['),
        take_while1(|c: char| c.is_ascii_hexdigit() || c == ':'),
        char(']'),
    );
    let parsed: IResult<&str, VirtualAddress<'_>> = alt((
        map(separated_pair(host, char(':'), port_name), |(h, p)| {
            VirtualAddress::HostPort(h, p)
        }),
        map(digit1, VirtualAddress::Mark),
        map(separated_pair(v6, char(':'), port_name), |(a, p)| {
            VirtualAddress::V6(a, p)
        }),
    ))(s);
    parsed.ok().map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_grammars_read_what_the_perl_regexes_capture() {
        assert_eq!(quoted(r#""/a "b" c"x"#), Some(r#"/a "b" c"#));
        assert_eq!(quoted(r#""open"#), None);
        assert_eq!(quoted(r#"x"a""#), None);
        assert_eq!(first_digits("abc 012x3"), Some("012"));
        assert_eq!(first_digits("none"), None);
        assert_eq!(leading_digits("12a"), "12");
        assert_eq!(leading_digits("a12"), "");
        assert_eq!(first_word(" -foo_1 bar"), Some("foo_1"));
        assert_eq!(first_keyword(" external-perl "), Some("external-perl"));
        assert!(starts_with_host("mail.example.org"));
        assert!(!starts_with_host(" mail"));
        assert!(all_digits("64") && !all_digits("64 ") && !all_digits(""));
        assert!(dotted_quad("255.255.255.0") && !dotted_quad("255.255.255"));
        assert_eq!(maybe_quoted(r#""www.example" x"#), "www.example");
        assert_eq!(maybe_quoted("plain host"), "plain host");
        assert_eq!(unquoted_whole(r#""a@b""#), "a@b");
        assert_eq!(unquoted_whole(r#""a"b""#), r#""a"b""#);
        assert_eq!(comma_list("all , none,, "), vec!["all", "none"]);
        assert_eq!(comma_list(" all,\tx"), vec![" all", "x"]);
        assert_eq!(comma_list(""), Vec::<&str>::new());
        assert_eq!(bracketed("[2001:db8::1]"), Some("2001:db8::1"));
        assert_eq!(bracketed("x[a]b]c"), Some("a]b"));
        assert_eq!(bracketed("[a"), None);
        use VirtualAddress::*;
        assert_eq!(
            virtual_address("192.0.2.1:http x"),
            Some(HostPort("192.0.2.1", "http"))
        );
        assert_eq!(virtual_address("12:"), Some(Mark("12")));
        assert_eq!(
            virtual_address("[2001:db8::1]:80"),
            Some(V6("2001:db8::1", "80"))
        );
        assert_eq!(virtual_address("[2001:db8::1]"), None);
    }
}
