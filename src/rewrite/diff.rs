//! The unified diff of a rewrite, built from its edits: the rewrite knows which bytes it
//! changes, so only the lines around them are looked at (time and memory linear in the
//! file size, where a general line diff is quadratic in the worst case).
//!
//! The output is the usual `diff -u` form with 3 lines of context: hunks closer than
//! 6 unchanged lines are joined, removed lines come before added ones, and a last line
//! without a newline is followed by `\ No newline at end of file`.

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// A change of bytes: `old[old_start..old_end]` became `new[new_start..new_end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteChange {
    pub old_start: usize,
    pub old_end: usize,
    pub new_start: usize,
    pub new_end: usize,
}

/// Where the lines of a text start, with the text's end as a last, empty line when the
/// text is empty or ends with a newline.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        if !text.is_empty() && !text.ends_with('\n') {
            // The last line has no newline: it is a real line, not the end.
        } else if starts.last() != Some(&text.len()) {
            starts.push(text.len());
        }
        Lines { text, starts }
    }

    /// How many lines the text has.
    fn count(&self) -> usize {
        if self.text.is_empty() || self.text.ends_with('\n') {
            self.starts.len() - 1
        } else {
            self.starts.len()
        }
    }

    /// The index of the line that holds byte `offset` (`count()` at the end of a text
    /// that ends with a newline).
    fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset) - 1
    }

    fn at_line_start(&self, offset: usize) -> bool {
        offset == 0 || self.text.as_bytes().get(offset - 1) == Some(&b'\n')
    }

    /// Line `i`, with its newline.
    fn line(&self, i: usize) -> &'a str {
        let start = self.starts[i];
        let end = self.starts.get(i + 1).copied().unwrap_or(self.text.len());
        &self.text[start..end]
    }
}

/// A change of whole lines: old lines `old.0..old.1` became new lines `new.0..new.1`.
#[derive(Debug, Clone, Copy)]
struct LineChange {
    old: (usize, usize),
    new: (usize, usize),
}

/// The unified diff of `old` -> `new` given the byte changes that turn one into the other
/// (in order, not overlapping). Empty when the texts are the same.
pub fn unified(old: &str, new: &str, changes: &[ByteChange], a: &str, b: &str) -> String {
    let ol = Lines::new(old);
    let nl = Lines::new(new);
    // Byte changes -> line changes, joined where they share or touch a line.
    let mut merged: Vec<LineChange> = Vec::new();
    for c in changes {
        if c.old_start == c.old_end && c.new_start == c.new_end {
            continue; // an empty insertion changes nothing
        }
        let o0 = ol.line_of(c.old_start);
        let n0 = nl.line_of(c.new_start);
        // The line after the change is part of it unless both sides end on a line start.
        let clean_end = ol.at_line_start(c.old_end) && nl.at_line_start(c.new_end);
        let (o1, n1) = if clean_end {
            (ol.line_of(c.old_end), nl.line_of(c.new_end))
        } else {
            (
                (ol.line_of(c.old_end) + 1).min(ol.count()),
                (nl.line_of(c.new_end) + 1).min(nl.count()),
            )
        };
        let lc = LineChange {
            old: (o0, o1.max(o0)),
            new: (n0, n1.max(n0)),
        };
        match merged.last_mut() {
            Some(last) if lc.old.0 <= last.old.1 => {
                last.old.1 = last.old.1.max(lc.old.1);
                last.new.1 = last.new.1.max(lc.new.1);
            }
            _ => merged.push(lc),
        }
    }
    // Lines a change leaves as they were (e.g. a block removed and written again the
    // same) are context, not change.
    let mut real: Vec<LineChange> = Vec::with_capacity(merged.len());
    for mut c in merged {
        while c.old.0 < c.old.1 && c.new.0 < c.new.1 && ol.line(c.old.0) == nl.line(c.new.0) {
            c.old.0 += 1;
            c.new.0 += 1;
        }
        while c.old.0 < c.old.1 && c.new.0 < c.new.1 && ol.line(c.old.1 - 1) == nl.line(c.new.1 - 1)
        {
            c.old.1 -= 1;
            c.new.1 -= 1;
        }
        if c.old.0 < c.old.1 || c.new.0 < c.new.1 {
            split_by_common_lines(&ol, &nl, c, &mut real);
        }
    }
    if real.is_empty() {
        return String::new();
    }
    // Hunks: changes with at most 2 x CONTEXT unchanged lines between them.
    let mut hunks: Vec<Vec<LineChange>> = Vec::new();
    for c in real {
        match hunks.last_mut() {
            Some(h) if c.old.0 - h[h.len() - 1].old.1 <= 2 * CONTEXT => h.push(c),
            _ => hunks.push(vec![c]),
        }
    }
    let mut out = format!("--- {a}\n+++ {b}\n");
    for h in hunks {
        let first = h[0];
        let last = h[h.len() - 1];
        let before = first.old.0.min(CONTEXT);
        let old_start = first.old.0 - before;
        let new_start = first.new.0 - before;
        let old_end = (last.old.1 + CONTEXT).min(ol.count());
        // Unchanged lines keep their count; each change adds its own difference.
        let added: usize = h.iter().map(|c| c.new.1 - c.new.0).sum();
        let removed: usize = h.iter().map(|c| c.old.1 - c.old.0).sum();
        let new_end = new_start + (old_end - old_start) + added - removed;
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(old_start, old_end),
            range(new_start, new_end)
        ));
        let mut at = old_start;
        for c in &h {
            for i in at..c.old.0 {
                push_line(&mut out, ' ', ol.line(i));
            }
            for i in c.old.0..c.old.1 {
                push_line(&mut out, '-', ol.line(i));
            }
            for i in c.new.0..c.new.1 {
                push_line(&mut out, '+', nl.line(i));
            }
            at = c.old.1;
        }
        for i in at..old_end {
            push_line(&mut out, ' ', ol.line(i));
        }
    }
    out
}

/// The largest region (old lines x new lines) searched for lines both sides share;
/// a larger one is shown as all removed, then all added.
const MAX_REGION_CELLS: usize = 1 << 18;

/// Pushes `c` as the smaller changes left when the lines old and new have in common
/// inside it (a longest common subsequence) are kept as context.
fn split_by_common_lines(ol: &Lines, nl: &Lines, c: LineChange, out: &mut Vec<LineChange>) {
    let (n, m) = (c.old.1 - c.old.0, c.new.1 - c.new.0);
    if n == 0 || m == 0 || (n + 1) * (m + 1) > MAX_REGION_CELLS {
        out.push(c);
        return;
    }
    let a = |i: usize| ol.line(c.old.0 + i);
    let b = |j: usize| nl.line(c.new.0 + j);
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let w = m + 1;
    let mut lcs = vec![0u32; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * w + j] = if a(i) == b(j) {
                lcs[(i + 1) * w + j + 1] + 1
            } else {
                lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut open: Option<LineChange> = None;
    let close = |open: &mut Option<LineChange>, out: &mut Vec<LineChange>| {
        if let Some(o) = open.take() {
            out.push(o);
        }
    };
    while i < n || j < m {
        if i < n && j < m && a(i) == b(j) {
            close(&mut open, out);
            i += 1;
            j += 1;
            continue;
        }
        let o = open.get_or_insert(LineChange {
            old: (c.old.0 + i, c.old.0 + i),
            new: (c.new.0 + j, c.new.0 + j),
        });
        // Removed lines before added ones where both would do.
        if j == m || (i < n && lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
            i += 1;
            o.old.1 = c.old.0 + i;
        } else {
            j += 1;
            o.new.1 = c.new.0 + j;
        }
    }
    close(&mut open, out);
}

/// `start+1,len`; `start+1` alone for one line; `start,0` for none.
fn range(start: usize, end: usize) -> String {
    match end - start {
        1 => format!("{}", start + 1),
        0 => format!("{start},0"),
        n => format!("{},{n}", start + 1),
    }
}

fn push_line(out: &mut String, tag: char, line: &str) {
    out.push(tag);
    out.push_str(line);
    if !line.ends_with('\n') {
        out.push_str("\n\\ No newline at end of file\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use similar::TextDiff;

    /// A small deterministic generator (xorshift), so failures repeat.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Applies `edits` (offset, deleted length, inserted text; sorted, apart) to `old`.
    fn apply(old: &str, edits: &[(usize, usize, String)]) -> (String, Vec<ByteChange>) {
        let mut new = String::new();
        let mut changes = Vec::new();
        let mut pos = 0;
        for (at, del, ins) in edits {
            new.push_str(&old[pos..*at]);
            let new_start = new.len();
            new.push_str(ins);
            changes.push(ByteChange {
                old_start: *at,
                old_end: at + del,
                new_start,
                new_end: new.len(),
            });
            pos = at + del;
        }
        new.push_str(&old[pos..]);
        (new, changes)
    }

    fn similar_diff(old: &str, new: &str) -> String {
        TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header("a", "b")
            .to_string()
    }

    #[test]
    fn matches_a_general_line_diff_for_random_edits() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut fresh = 0;
        for case in 0..2000 {
            let lines = rng.below(30);
            let mut old = String::new();
            for i in 0..lines {
                old.push_str(&format!("line {i}\n"));
            }
            if rng.below(4) == 0 && !old.is_empty() {
                old.pop(); // no newline at the end
            }
            // Random edits at random offsets: insertions of whole or partial lines,
            // deletions, replacements, also in the middle of a line.
            let mut edits = Vec::new();
            let mut pos = 0;
            for _ in 0..rng.below(5) + 1 {
                if pos > old.len() {
                    break;
                }
                let at = pos + rng.below(old.len() - pos + 1);
                if !old.is_char_boundary(at) {
                    continue;
                }
                let del = match rng.below(3) {
                    0 => 0,
                    _ => rng.below((old.len() - at).min(20) + 1),
                };
                let mut ins = String::new();
                for _ in 0..rng.below(3) {
                    fresh += 1;
                    ins.push_str(&format!("new {fresh}"));
                    if rng.below(4) != 0 {
                        ins.push('\n');
                    }
                }
                edits.push((at, del, ins));
                pos = at + del + 1;
            }
            let (new, changes) = apply(&old, &edits);
            let ours = unified(&old, &new, &changes, "a", "b");
            assert_eq!(
                ours,
                similar_diff(&old, &new),
                "case {case}: {old:?} -> {new:?} by {edits:?}"
            );
        }
    }

    #[test]
    fn a_block_removed_and_written_again_the_same_is_no_change() {
        let old = "a\nb\nc\n";
        let changes = [
            ByteChange {
                old_start: 2,
                old_end: 4,
                new_start: 2,
                new_end: 2,
            },
            ByteChange {
                old_start: 4,
                old_end: 4,
                new_start: 2,
                new_end: 4,
            },
        ];
        assert_eq!(unified(old, old, &changes, "a", "b"), "");
    }

    #[test]
    fn headers_count_lines_and_far_changes_get_their_own_hunks() {
        let old: String = (0..20).map(|i| format!("{i}\n")).collect();
        let (new, changes) = apply(
            &old,
            &[(2, 0, "x\n".into()), (old.len() - 3, 3, String::new())],
        );
        let d = unified(&old, &new, &changes, "a", "b");
        assert_eq!(d, similar_diff(&old, &new));
        assert_eq!(d.matches("@@ -").count(), 2, "{d}");
    }
}
