//! Every ldirectord.cf in ../shared/corpus: the files real ldirectord 4.12 accepted parse
//! and print back byte for byte; the files it rejected are rejected with a located error.

use std::collections::BTreeMap;
use std::path::PathBuf;

mod common;

use std::time::Duration;

use common::ldirectord_props::{assert_rewrite, Remembering};
use vipcheck::config::ldirectord;
use vipcheck::generate::Generator;
use vipcheck::rewrite::{ldirectord::plan, GenerateOptions};

fn options() -> GenerateOptions {
    GenerateOptions {
        probe_path: "/usr/sbin/vipcheck".into(),
        probe_timeout: Duration::from_secs(2),
        fwmark_vips: BTreeMap::new(),
        templates: None,
        config_id: None,
        output_dir: Some("/etc/ha.d".into()),
        app_check: false,
        feed: vipcheck::rewrite::Feed::Probe,
    }
}

/// ../shared/corpus next to the checkout (or two levels up, for a git worktree).
fn corpus() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    ["../shared/corpus", "../../shared/corpus"]
        .iter()
        .map(|rel| root.join(rel))
        .find(|dir| dir.join("ldirectord").is_dir())
}

/// file name -> ldirectord's exit status (3 = parsed, 2 = config error).
fn verdicts(dir: &std::path::Path) -> BTreeMap<String, u32> {
    let tsv = std::fs::read_to_string(dir.join("config_test_ldirectord-4.12.tsv"))
        .expect("the corpus ships its verdict table");
    tsv.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?.to_string(), f.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn corpus_matches_ldirectord_verdicts_and_round_trips() {
    let Some(dir) = corpus() else {
        common::skip("../shared/corpus/ldirectord not found");
        return;
    };
    // Corpus files name hosts: their lookups stay inside a namespace with no route out.
    let Some(ns) = common::netns::offline("the system resolver looks up the corpus's host names")
    else {
        return;
    };
    ns.in_ns(|| {
    let verdicts = verdicts(&dir);
    let (mut parsed, mut rejected, mut mismatches) = (0, 0, Vec::new());
    let mut refused = Vec::new();
    let generator = Generator::new(None).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(dir.join("ldirectord"))
        .expect("readable corpus directory")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "the corpus directory is empty");
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let want = *verdicts
            .get(&name)
            .unwrap_or_else(|| panic!("{name} has no verdict in the table"));
        let text = std::fs::read_to_string(&path).unwrap();
        let resolver = Remembering::default();
        match (ldirectord::parse_str(path.clone(), text, &resolver), want) {
            (Ok(doc), 3) => {
                assert_eq!(doc.services.len(), doc.virtuals.len());
                // Rewritten, it keeps its bytes outside the generated lines and its
                // services, and gains one check per wrapper.
                match plan(&doc, &generator, &options()) {
                    Ok(plan) => {
                        assert_rewrite(&doc, &plan, &resolver);
                    }
                    Err(e) => refused.push(format!("{name}: {e}")),
                }
                parsed += 1;
            }
            (Err(d), 2) => {
                let loc = d
                    .location
                    .as_ref()
                    .unwrap_or_else(|| panic!("{name}: error without a location: {d}"));
                assert!(loc.line >= 1 && !loc.source_line.is_empty(), "{name}: {d}");
                println!("{name}: rejected as ldirectord does:\n{d}\n");
                rejected += 1;
            }
            (Ok(_), _) => mismatches.push(format!("{name}: parsed, ldirectord rejected it")),
            (Err(d), _) => mismatches.push(format!("{name}: rejected, ldirectord parsed it:\n{d}")),
        }
    }
    println!(
        "ldirectord corpus: {parsed} parsed and rewritten, {rejected} rejected; rewrite refused: {refused:#?}"
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(parsed > 0 && refused.len() < parsed, "{refused:#?}");
    });
}
