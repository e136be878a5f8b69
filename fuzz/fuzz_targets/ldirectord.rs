//! Fuzz the ldirectord parser: no panic on any input; whatever parses prints back byte
//! for byte, parses again to the same model, and its rewrite parses too and is stable.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vipcheck::config::ldirectord::{self, Document, OfflineResolver};
use vipcheck::generate::Generator;
use vipcheck::rewrite::{ldirectord::plan, GenerateOptions};

fn generator() -> &'static Generator {
    static GEN: OnceLock<Generator> = OnceLock::new();
    GEN.get_or_init(|| Generator::new(None).expect("embedded templates load"))
}

fn options() -> GenerateOptions {
    GenerateOptions {
        probe_path: "/usr/sbin/vipcheck".into(),
        probe_timeout: Duration::from_secs(2),
        fwmark_vips: BTreeMap::from([(1, vec!["192.0.2.1".parse().expect("address")])]),
        templates: None,
        config_id: None,
        output_dir: Some("/etc/ha.d".into()),
        app_check: false,
    }
}

fn parse(text: &str) -> Option<Document> {
    ldirectord::parse_str("fuzz.cf".into(), text.to_string(), &OfflineResolver::default()).ok()
}

/// The rewritten text, or `None` when the plan refuses (a located error, not a panic).
fn rewrite(doc: &Document) -> Option<String> {
    let plan = plan(doc, generator(), &options()).ok()?;
    let text = doc.text();
    let mut edits = plan.edits;
    edits.sort_by_key(|e| (e.span.start, e.span.end));
    let (mut out, mut at) = (String::new(), 0);
    for e in &edits {
        assert!(e.span.start >= at, "overlapping edits");
        out.push_str(&text[at..e.span.start]);
        out.push_str(&e.text);
        at = e.span.end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(doc) = parse(text) else {
        return;
    };
    assert_eq!(doc.print(), text, "print is not byte-identical");
    let again = parse(&doc.print()).expect("printed text parses again");
    assert_eq!(again.virtuals, doc.virtuals);
    if let Some(once) = rewrite(&doc) {
        let redoc = parse(&once).expect("the rewrite parses");
        assert_eq!(rewrite(&redoc).as_deref(), Some(once.as_str()), "rewrite is not stable");
    }
});
