//! ldirectord rewrite: golden snapshots of the rewritten config and the wrappers for every
//! fixture, idempotence, and byte-exact round trips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::ldirectord_props::assert_rewrite;
use vipcheck::config::ldirectord::{self, Document, OfflineResolver, Services};
use vipcheck::generate::Generator;
use vipcheck::rewrite::{ldirectord::plan, GenerateOptions, Plan};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/ldirectord")
}

fn resolver() -> OfflineResolver {
    OfflineResolver {
        services: Services::parse("http 80/tcp www\nhttps 443/tcp\n"),
        ..Default::default()
    }
}

fn parse(path: &Path, text: &str) -> Document {
    ldirectord::parse_str(path.to_path_buf(), text.to_string(), &resolver())
        .unwrap_or_else(|d| panic!("{d}"))
}

fn options() -> GenerateOptions {
    GenerateOptions {
        probe_path: "/usr/sbin/vipcheck".into(),
        probe_timeout: Duration::from_secs(2),
        fwmark_vips: BTreeMap::from([(7, vec!["192.0.2.70".parse().unwrap()])]),
        templates: None,
        config_id: None,
        output_dir: Some("/etc/ha.d".into()),
        app_check: false,
        feed: vipcheck::rewrite::Feed::Probe,
    }
}

/// The rewrite through the production writer, checked by [`assert_rewrite`].
fn rewrite(path: &Path, text: &str) -> (Document, Plan, String) {
    let doc = parse(path, text);
    let gen = Generator::new(None).unwrap();
    let plan = plan(&doc, &gen, &options()).unwrap_or_else(|e| panic!("{e}"));
    let out = assert_rewrite(&doc, &plan, &resolver());
    (doc, plan, out)
}

#[test]
fn rewritten_fixtures_match_their_snapshots() {
    insta::glob!("../fixtures/ldirectord", "*.cf", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (_, plan, out) = rewrite(Path::new(&name), &text);
        let mut report = format!("=== {name} (rewritten)\n{out}");
        for f in &plan.new_files {
            assert!(f.executable);
            report.push_str(&format!("=== {}\n{}", f.path.display(), f.contents));
        }
        for d in &plan.skipped {
            report.push_str(&format!("=== note\n{d}\n"));
        }
        insta::assert_snapshot!(report);
    });
}

/// The valid fixtures (`fixtures/ldirectord/*.cf`; `errors/` holds the invalid ones).
fn valid_fixtures() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "cf"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn error_messages_match_their_snapshots() {
    insta::glob!("../fixtures/ldirectord/errors", "*.cf", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let err = ldirectord::parse_str(name.into(), text, &resolver())
            .expect_err("an error fixture is rejected");
        insta::assert_snapshot!(err.to_string());
    });
}

#[test]
fn rewriting_the_output_changes_nothing() {
    for path in valid_fixtures() {
        let text = std::fs::read_to_string(&path).unwrap();
        let (_, first, once) = rewrite(&path, &text);
        let (_, second, twice) = rewrite(&path, &once);
        assert_eq!(once, twice, "{} is not idempotent", path.display());
        assert!(
            second.edits.is_empty(),
            "{}: {:?}",
            path.display(),
            second.edits
        );
        assert_eq!(first.new_files, second.new_files);
    }
}

#[test]
fn fixtures_keep_their_bytes_and_services_through_the_rewrite() {
    for path in valid_fixtures() {
        let text = std::fs::read_to_string(&path).unwrap();
        // `rewrite` asserts the properties (see common/ldirectord_props.rs).
        rewrite(&path, &text);
    }
}

#[test]
fn generated_lines_override_and_keep_the_original_check() {
    let path = fixtures().join("web-dr-negotiate.cf");
    let text = std::fs::read_to_string(&path).unwrap();
    let (_, plan, out) = rewrite(&path, &text);
    let doc = parse(&path, &out);
    // The block's own lines still say negotiate; the last checktype ldirectord reads is
    // external.
    let v = &doc.virtuals[0];
    assert_eq!(v.check.checktype, ldirectord::CheckType::Negotiate);
    let block = doc.sources.slice(v.block);
    let last = block
        .lines()
        .rfind(|l| l.trim_start().starts_with("checktype="));
    assert_eq!(last.map(str::trim), Some("checktype=external"));
    assert!(block.contains("\tcheckcommand=/etc/ha.d/vipcheck-check-192.0.2.20-80-tcp.sh\n"));
    // checktimeout covers the probe (2 s), negotiatetimeout (10 s) and a second spare.
    assert!(block.contains("\tchecktimeout=13\n"));
    // The NAT virtual is untouched and reported.
    assert_eq!(plan.new_files.len(), 1);
    assert_eq!(plan.skipped.len(), 1);
    assert!(plan.skipped[0].message.contains("192.0.2.20:8080/tcp"));
}

#[test]
fn fwmark_without_vips_is_skipped_with_a_warning_naming_it() {
    let path = fixtures().join("ipv6-fwmark.cf");
    let text = std::fs::read_to_string(&path).unwrap();
    let (_, plan, _) = rewrite(&path, &text);
    let names: Vec<_> = plan
        .new_files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "vipcheck-check-2001-db8--20-80-tcp.sh",
            "vipcheck-check-fwmark-7.sh"
        ]
    );
    assert_eq!(plan.skipped.len(), 1);
    assert!(plan.skipped[0].message.contains("fwmark 8"));
    assert!(plan.skipped[0]
        .hint
        .as_deref()
        .unwrap()
        .contains("--fwmark-vip 8=IP"));
}

#[test]
fn an_unterminated_generated_region_is_a_located_error() {
    let text = "virtual=192.0.2.20:80\n    real=192.0.2.11 gate\n    # vipcheck:begin\n    checktype=external\n";
    let doc = parse(Path::new("x.cf"), text);
    let gen = Generator::new(None).unwrap();
    let err = plan(&doc, &gen, &options()).unwrap_err().to_string();
    assert!(err.contains("x.cf:3:5"), "{err}");
    assert!(err.contains("no '# vipcheck:end'"), "{err}");
}

#[test]
fn an_output_directory_with_a_hash_is_refused() {
    let text = "virtual=192.0.2.20:80\n    real=192.0.2.11 gate\n";
    let doc = parse(Path::new("x.cf"), text);
    let gen = Generator::new(None).unwrap();
    let opts = GenerateOptions {
        output_dir: Some("/srv/a#b".into()),
        app_check: false,
        ..options()
    };
    let err = plan(&doc, &gen, &opts).unwrap_err().to_string();
    assert!(err.contains("cuts a line at '#'"), "{err}");
}

#[test]
fn removing_generated_lines_never_leaves_a_virtual_line_last() {
    // ldirectord reads a virtual line that ends the file twice and rejects it.
    let text =
        "virtual=192.0.2.51:80\n    # vipcheck:begin\n    checktype=external\n    # vipcheck:end\n";
    let (_, plan, out) = rewrite(Path::new("x.cf"), text);
    assert_eq!(plan.skipped.len(), 1, "no reals: skipped");
    assert_eq!(out, "virtual=192.0.2.51:80\n\n");
    let (_, again, _) = rewrite(Path::new("x.cf"), &out);
    assert!(again.edits.is_empty());
}
