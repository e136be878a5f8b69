//! keepalived.conf parser: no input makes it panic; the lexer prints every input back
//! unchanged; and parse -> print -> parse gives the same model.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vipcheck::config::keepalived::{lexer, parse_str, ParseOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tokens = lexer::lex(text);
    assert_eq!(lexer::print(text, &tokens), text, "the lexer is not lossless");

    // Relative includes resolve against a directory that does not exist.
    let path = Path::new("/nonexistent/vipcheck-fuzz/keepalived.conf");
    let opts = ParseOptions {
        config_id: Some("fuzz".into()),
    };
    let Ok(first) = parse_str(path, text, &opts) else {
        return;
    };
    let main = first
        .sources
        .files()
        .next()
        .map(|(_, f)| lexer::print(&f.text, &lexer::lex(&f.text)))
        .unwrap_or_default();
    let again = parse_str(path, &main, &opts).expect("printed text parses again");
    assert_eq!(first.services, again.services);
    assert_eq!(first.global_defs, again.global_defs);
});
