//! The fuzz target's properties on deterministic mutations of the fixtures (runs in every
//! `cargo test`, no cargo-fuzz needed): no panic; whatever parses prints back byte for
//! byte and parses again to the same model; its rewrite parses and is stable.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

mod common;

use common::ldirectord_props::assert_rewrite;
use vipcheck::config::ldirectord::{self, Document, OfflineResolver};
use vipcheck::generate::Generator;
use vipcheck::rewrite::{ldirectord::plan, GenerateOptions};

const TOKENS: &[&str] = &[
    "\n",
    "\t",
    "    ",
    "#",
    "=",
    "\"",
    ":",
    "->",
    " ",
    "\r",
    "0",
    "9",
    "[",
    "]",
    "ü",
    "real=",
    "real6=",
    "virtual=",
    "virtual6=",
    "checktype=",
    " gate",
    " masq",
    " ipip",
    "service=https",
    "checkport=1",
    "# vipcheck:begin",
    "# vipcheck:end",
    "fallback=",
    "192.0.2.1",
    "2001:db8::1",
    "protocol=udp",
    "request=\"x\"",
    "receive=\"y\"",
];

/// A small linear congruential generator: the same mutations on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

fn boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(text: &str, rng: &mut Lcg) -> String {
    let mut t = text.to_string();
    for _ in 0..1 + rng.next(3) {
        let at = boundary(&t, rng.next(t.len() + 1));
        match rng.next(3) {
            0 => {
                let end = boundary(&t, at + 1 + rng.next(12));
                t.replace_range(at..end, "");
            }
            1 => t.insert_str(at, TOKENS[rng.next(TOKENS.len())]),
            _ => {
                let start = t[..at].rfind('\n').map_or(0, |i| i + 1);
                let end = t[at..].find('\n').map_or(t.len(), |i| at + i + 1);
                let line = t[start..end].to_string();
                t.insert_str(end, &line);
            }
        }
    }
    t
}

fn parse(text: &str) -> Option<Document> {
    ldirectord::parse_str("m.cf".into(), text.to_string(), &OfflineResolver::default()).ok()
}

fn rewrite(doc: &Document, gen: &Generator) -> Option<String> {
    let opts = GenerateOptions {
        probe_path: "/usr/sbin/vipcheck".into(),
        probe_timeout: Duration::from_secs(2),
        fwmark_vips: BTreeMap::from([(7, vec!["192.0.2.70".parse().unwrap()])]),
        templates: None,
        config_id: None,
        output_dir: Some("/etc/ha.d".into()),
        app_check: false,
        feed: vipcheck::rewrite::Feed::Probe,
    };
    let plan = plan(doc, gen, &opts).ok()?;
    Some(assert_rewrite(doc, &plan, &OfflineResolver::default()))
}

#[test]
fn mutated_fixtures_never_panic_and_what_parses_round_trips_and_rewrites() {
    let gen = Generator::new(None).unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/ldirectord");
    let mut rng = Lcg(0x5eed);
    let (mut tried, mut parsed, mut rewritten) = (0, 0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let original = std::fs::read_to_string(path).unwrap();
        for _ in 0..400 {
            let text = mutate(&original, &mut rng);
            tried += 1;
            let Some(doc) = parse(&text) else { continue };
            parsed += 1;
            let again = parse(&text).expect("parses again");
            assert_eq!(again.virtuals, doc.virtuals);
            if let Some(once) = rewrite(&doc, &gen) {
                rewritten += 1;
                let redoc = parse(&once)
                    .unwrap_or_else(|| panic!("the rewrite of\n{text}\ndoes not parse:\n{once}"));
                assert_eq!(
                    rewrite(&redoc, &gen).as_deref(),
                    Some(once.as_str()),
                    "{text}"
                );
            }
        }
    }
    println!("{tried} mutations: {parsed} parsed, {rewritten} rewritten and stable");
    assert!(
        parsed > tried / 10,
        "mutations too destructive to test anything"
    );
}
