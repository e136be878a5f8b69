//! The comment lines that bracket every block vipcheck generates, so the next run finds
//! and replaces its own output instead of adding it twice.

use std::ops::Range;

/// The first line of a generated block (after indentation).
pub const BEGIN: &str = "# vipcheck:begin";
/// The last line of a generated block (after indentation).
pub const END: &str = "# vipcheck:end";

/// Byte ranges of the generated blocks in `text`: from the start of each `BEGIN` line up to
/// and including the line break after the matching `END` line. A `BEGIN` without an `END`
/// is not a block (the text is left alone rather than guessing where it stops).
///
/// A block added inside a one-line block (`real_server 192.0.2.11 80 { weight 1 }`) starts
/// with its `BEGIN` comment on that line, right where the `}` was, and ends where the `}`
/// now stands: after the `END` line, the next line's `@id` prefix and indentation are the
/// block's too. Removing every block gives back the text as it was before, byte for byte.
pub fn generated_blocks(text: &str) -> Vec<Range<usize>> {
    let mut blocks: Vec<Range<usize>> = Vec::new();
    // Where the open block starts, and whether it started mid-line.
    let mut open: Option<(usize, bool)> = None;
    // A mid-line block that just ended takes the next line's prefix.
    let mut extend: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some(i) = extend.take() {
            blocks[i].end += line_prefix_len(line);
        }
        let trimmed = without_condition(line.trim_start());
        if trimmed.starts_with(BEGIN) {
            open = Some((offset, false));
        } else if trimmed.starts_with(END) {
            if let Some((start, mid_line)) = open.take() {
                blocks.push(start..offset + line.len());
                if mid_line {
                    extend = Some(blocks.len() - 1);
                }
            }
        } else if let Some(at) = mid_line_begin(line) {
            open = Some((offset + at, true));
        }
        offset += line.len();
    }
    blocks
}

/// Where a `BEGIN` comment that follows other text on its line starts.
fn mid_line_begin(line: &str) -> Option<usize> {
    if !line.contains(BEGIN) {
        return None;
    }
    let body = line.strip_suffix('\n').unwrap_or(line);
    let scan = crate::config::keepalived::lexer::scan_line(body);
    scan.tokens
        .iter()
        .find(|t| t.0 == crate::config::keepalived::lexer::TokenKind::Comment)
        .filter(|t| body[t.1..].starts_with(BEGIN))
        .map(|t| t.1)
}

/// The length of a line's indentation with an `@id` prefix in it, if any.
fn line_prefix_len(line: &str) -> usize {
    let blank = |c: char| c == ' ' || c == '\t';
    let lead = line.len() - line.trim_start_matches(blank).len();
    let rest = &line[lead..];
    match rest.strip_prefix('@') {
        Some(cond) => {
            let id_len = cond.len() - cond.trim_start_matches(|c: char| !c.is_whitespace()).len();
            let after = &cond[id_len..];
            let blanks = after.len() - after.trim_start_matches(blank).len();
            // `@id` alone on its line is not a prefix of anything.
            if blanks == 0 {
                lead
            } else {
                lead + 1 + id_len + blanks
            }
        }
        None => lead,
    }
}

/// The text a generated block that starts mid-line must be: `stanza` (rendered with its
/// indentation, as for a block of its own lines) from its `BEGIN` comment on, followed by
/// `close_prefix`, the `@id` prefix and indentation the closing brace's new line needs.
/// `None` when the stanza does not start with a `BEGIN` line.
pub fn mid_line_block(stanza: &str, close_prefix: &str) -> Option<String> {
    let at = stanza.find(BEGIN)?;
    let first_line_end = stanza.find('\n')?;
    if at > first_line_end || !stanza.ends_with('\n') {
        return None;
    }
    Some(format!("{}{close_prefix}", &stanza[at..]))
}

/// The block of `blocks` that an insertion point at `at` must go in front of: one that
/// starts mid-line and holds `at` or ends right at it (the closing brace after it was the
/// block's place before). Its start is where the new block goes.
pub fn mid_line_block_at(text: &str, blocks: &[Range<usize>], at: usize) -> Option<usize> {
    blocks
        .iter()
        .find(|b| b.start < at && at <= b.end && starts_mid_line(text, b.start))
        .map(|b| b.start)
}

/// True when text other than blanks and an `@id` prefix precedes `at` on its line.
pub fn starts_mid_line(text: &str, at: usize) -> bool {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..at];
    line_prefix_len(before) < before.len()
}

/// A line's text after a keepalived `@id` / `@^id` prefix, which generated lines inside a
/// conditional block carry like the block's own lines.
fn without_condition(line: &str) -> &str {
    match line.strip_prefix('@') {
        Some(rest) => rest
            .trim_start_matches(|c: char| !c.is_whitespace())
            .trim_start(),
        None => line,
    }
}

/// True when `range` lies inside one of `blocks`.
pub fn within(blocks: &[Range<usize>], range: Range<usize>) -> bool {
    blocks
        .iter()
        .any(|b| b.start <= range.start && range.end <= b.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blocks_with_their_trailing_newline() {
        let text = "a {\n  # vipcheck:begin x\n  MISC_CHECK {}\n  # vipcheck:end\n}\n";
        let blocks = generated_blocks(text);
        assert_eq!(blocks.len(), 1);
        assert_eq!(
            &text[blocks[0].clone()],
            "  # vipcheck:begin x\n  MISC_CHECK {}\n  # vipcheck:end\n"
        );
    }

    #[test]
    fn blocks_inside_conditional_lines_are_found() {
        let text = "@lb1    # vipcheck:begin\n@lb1    MISC_CHECK {}\n@lb1    # vipcheck:end\n";
        assert_eq!(generated_blocks(text), vec![0..text.len()]);
    }

    #[test]
    fn a_block_inside_a_one_line_block_covers_exactly_the_added_bytes() {
        let original = "a\n@lb1   real_server 192.0.2.11 80 { weight 1 }\nz\n";
        let at = original.find("}").unwrap();
        let stanza =
            "@lb1       # vipcheck:begin x\n@lb1       MISC_CHECK {}\n@lb1       # vipcheck:end\n";
        let added = mid_line_block(stanza, "@lb1   ").unwrap();
        let text = format!("{}{added}{}", &original[..at], &original[at..]);
        assert_eq!(
            text,
            "a\n@lb1   real_server 192.0.2.11 80 { weight 1 # vipcheck:begin x\n@lb1       MISC_CHECK {}\n@lb1       # vipcheck:end\n@lb1   }\nz\n"
        );
        let blocks = generated_blocks(&text);
        assert_eq!(blocks, vec![at..at + added.len()]);
        // The closing brace's new line points back into the block.
        let close = text.rfind('}').unwrap();
        let brace_line = text[..close].rfind('\n').unwrap() + 1;
        assert_eq!(mid_line_block_at(&text, &blocks, brace_line), Some(at));
        assert_eq!(mid_line_block_at(&text, &blocks, close), Some(at));
    }

    #[test]
    fn an_unterminated_begin_is_not_a_block() {
        assert!(generated_blocks("# vipcheck:begin\nfoo\n").is_empty());
    }
}
