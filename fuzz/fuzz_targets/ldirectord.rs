//! Fuzz the ldirectord parser: no panic on any input; whatever parses parses again to the
//! same model; its rewrite (through the production writer) keeps every byte outside the
//! generated lines and the services, parses again, and is stable.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/ldirectord_props.rs"]
mod props;

use props::assert_rewrite;
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

/// The rewritten text, checked by [`assert_rewrite`], or `None` when the plan refuses (a
/// located error, not a panic).
fn rewrite(doc: &Document) -> Option<String> {
    let plan = plan(doc, generator(), &options()).ok()?;
    Some(assert_rewrite(doc, &plan, &OfflineResolver::default()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(doc) = parse(text) else {
        return;
    };
    let again = parse(text).expect("the same text parses again");
    assert_eq!(again.virtuals, doc.virtuals);
    if let Some(once) = rewrite(&doc) {
        let redoc = parse(&once).expect("the rewrite parses");
        assert_eq!(rewrite(&redoc).as_deref(), Some(once.as_str()), "rewrite is not stable");
    }
});
