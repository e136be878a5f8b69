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
pub fn generated_blocks(text: &str) -> Vec<Range<usize>> {
    let mut blocks = Vec::new();
    let mut open: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = without_condition(line.trim_start());
        if trimmed.starts_with(BEGIN) {
            open = Some(offset);
        } else if trimmed.starts_with(END) {
            if let Some(start) = open.take() {
                blocks.push(start..offset + line.len());
            }
        }
        offset += line.len();
    }
    blocks
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
    fn an_unterminated_begin_is_not_a_block() {
        assert!(generated_blocks("# vipcheck:begin\nfoo\n").is_empty());
    }
}
