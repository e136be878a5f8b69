//! The settings of a keepalived checker block as (keyword, value) pairs, for the checks
//! that read them (DNS_CHECK's `name` and `type`, UDP_CHECK's `payload`,
//! `require_reply`, `min_reply_length`, `max_reply_length`).

/// The top-level lines of a checker block (`DNS_CHECK { ... }`): each line's first word
/// and the rest of its words joined by one space. Nested blocks, comments (`#`, `!`)
/// and double quotes are handled as keepalived reads them.
pub fn top_level(block: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut depth = 0usize;
    for line in block.lines() {
        let mut group: Vec<String> = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        let flush = |group: &mut Vec<String>, depth: usize, out: &mut Vec<(String, String)>| {
            if depth == 1 && !group.is_empty() {
                let key = group.remove(0);
                out.push((key, group.join(" ")));
            }
            group.clear();
        };
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                '#' | '!' if !quoted => break,
                '{' | '}' if !quoted => {
                    if !word.is_empty() {
                        group.push(std::mem::take(&mut word));
                    }
                    flush(&mut group, depth, &mut out);
                    if c == '{' {
                        depth += 1;
                    } else {
                        depth = depth.saturating_sub(1);
                    }
                }
                c if c.is_whitespace() && !quoted => {
                    if !word.is_empty() {
                        group.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            group.push(word);
        }
        flush(&mut group, depth, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn top_level_lines_become_pairs() {
        let text = "DNS_CHECK {\n  connect_timeout 2 # seconds\n  type AAAA\n  name \"www.example.org\"\n}";
        assert_eq!(
            top_level(text),
            pairs(&[
                ("connect_timeout", "2"),
                ("type", "AAAA"),
                ("name", "www.example.org")
            ])
        );
        let text =
            "UDP_CHECK { payload 01 02 ff\n require_reply\n nested { x y }\n max_reply_length 9 }";
        assert_eq!(
            top_level(text),
            pairs(&[
                ("payload", "01 02 ff"),
                ("require_reply", ""),
                ("nested", ""),
                ("max_reply_length", "9")
            ])
        );
    }
}
