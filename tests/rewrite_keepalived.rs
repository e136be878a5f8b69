//! The keepalived rewrite end to end through the library: golden diffs, idempotence,
//! byte-exactness outside the generated blocks, includes, refusals, and real keepalived's
//! `--config-test` on what it writes.

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, relative_paths, tool};
use vipcheck::config::Format;
use vipcheck::rewrite::{markers, plan, GenerateOptions, Plan};

fn options() -> GenerateOptions {
    let mut opts = GenerateOptions::new(PathBuf::from("/usr/sbin/vipcheck"));
    opts.fwmark_vips
        .insert(5, vec!["192.0.2.50".parse().unwrap()]);
    opts.config_id = Some("lb1".into());
    opts
}

/// Plans with the path relative to the crate (the tests' working directory), so paths in
/// diffs and messages do not depend on where the checkout is.
fn plan_of(path: &Path) -> Plan {
    let path = path.strip_prefix(common::crate_dir()).unwrap_or(path);
    plan(path, Format::Keepalived, &options()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn report(plan: &Plan) -> String {
    let mut out = String::new();
    for note in &plan.skipped {
        out.push_str(&note.to_string());
        out.push('\n');
    }
    out.push_str(&format!("generated checks: {}\n", plan.checks));
    out.push_str(&plan.unified_diff(false));
    relative_paths(&out, None)
}

#[test]
fn golden_rewrites_of_every_fixture() {
    insta::glob!("../fixtures/rewrite/keepalived", "*.conf", |path| {
        insta::assert_snapshot!(report(&plan_of(path)));
    });
}

#[test]
fn golden_rewrite_of_a_tree_edits_the_included_files() {
    let plan = plan_of(&fixture("rewrite/keepalived_tree/keepalived.conf"));
    assert_eq!(plan.checks, 2);
    insta::assert_snapshot!(report(&plan));
}

/// Writes the rewrite of `path` into a fresh directory; returns it and the new main file.
fn rewrite_into_temp(path: &Path) -> (tempfile::TempDir, PathBuf) {
    let out = tempfile::tempdir().unwrap();
    let plan = plan_of(path);
    plan.write_to(out.path()).unwrap();
    let name = path.file_name().unwrap();
    let main = out.path().join(name);
    (out, main)
}

#[test]
fn rewriting_the_output_again_changes_nothing() {
    for path in common::keepalived::fixture_paths() {
        let (_dir, out) = rewrite_into_temp(&path);
        let again = plan_of(&out);
        assert!(
            !again.has_changes(),
            "{}:\n{}",
            path.display(),
            again.unified_diff(false)
        );
    }
}

#[test]
fn every_byte_outside_the_generated_blocks_is_kept() {
    for path in common::keepalived::fixture_paths() {
        let plan = plan_of(&path);
        // Every file the config reads, included ones too.
        for (id, file) in plan.sources.files() {
            let original = &file.text;
            let new = plan.new_text(id);
            let mut stripped = String::new();
            let mut pos = 0;
            for b in markers::generated_blocks(&new) {
                stripped.push_str(&new[pos..b.start]);
                pos = b.end;
            }
            stripped.push_str(&new[pos..]);
            if path.ends_with("braces_same_line.conf") {
                // A brace with text before it on its line gets a line break and
                // indentation before the stanza; nothing else changes.
                assert_eq!(
                    stripped.replace(char::is_whitespace, ""),
                    original.replace(char::is_whitespace, "")
                );
            } else {
                assert_eq!(&stripped, original, "{}", file.path.display());
            }
        }
    }
}

#[test]
fn real_servers_made_by_seq_are_refused_with_their_line() {
    let path = fixture("rewrite/keepalived_refused/seq_real_servers.conf");
    let err = plan(&path, Format::Keepalived, &options())
        .unwrap_err()
        .to_string();
    insta::assert_snapshot!(relative_paths(&err, None));
}

#[test]
fn direct_routing_across_address_families_is_refused_with_its_line() {
    let path = fixture("rewrite/keepalived_refused/group_mixed_families.conf");
    let err = plan(&path, Format::Keepalived, &options())
        .unwrap_err()
        .to_string();
    insta::assert_snapshot!(relative_paths(&err, None));
}

/// Asserts that every DR/TUN real server with a VIP to probe holds exactly one generated
/// MISC_CHECK, reading the rewritten config back with the parser.
fn assert_one_generated_check_per_real_server(config: &Path) {
    let opts = vipcheck::config::keepalived::ParseOptions {
        config_id: Some("lb1".into()),
    };
    let doc = vipcheck::config::keepalived::parse_file(config, &opts).unwrap();
    for vs in &doc.services {
        if vs.vips.is_empty() && !vs.fwmarks.contains(&5) {
            continue;
        }
        for rs in vs
            .real_servers
            .iter()
            .filter(|r| r.method.needs_vip_on_real_server())
        {
            let text = &doc.sources.file(rs.span.file).text;
            let blocks = markers::generated_blocks(text);
            let generated = rs
                .checks
                .iter()
                .filter(|c| {
                    c.kind == "MISC_CHECK" && markers::within(&blocks, c.span.start..c.span.end)
                })
                .count();
            assert_eq!(
                generated,
                1,
                "{}: real server {} of {}",
                config.display(),
                rs.addr,
                vs.label()
            );
        }
    }
}

#[test]
fn real_keepalived_accepts_every_rewritten_config_it_accepted_before() {
    let Some(keepalived) = tool("keepalived", "keepalived") else {
        return;
    };
    let inputs = common::keepalived::accepted_inputs(&keepalived);
    assert!(
        inputs.len() >= 10,
        "too few accepted inputs: {}",
        inputs.len()
    );
    let mut total_checks = 0;
    for input in &inputs {
        let plan = plan_of(input);
        let dir = tempfile::tempdir().unwrap();
        plan.write_to(dir.path()).unwrap();
        let out = dir.path().join(input.file_name().unwrap());
        let (rc, stderr) = common::keepalived::config_test(&keepalived, &out);
        assert_eq!(
            rc,
            0,
            "{} rewritten is rejected by keepalived:\n{stderr}",
            input.display()
        );
        assert_one_generated_check_per_real_server(&out);
        total_checks += plan.checks;
    }
    eprintln!(
        "keepalived --config-test accepted {} rewritten configs ({} generated checks)",
        inputs.len(),
        total_checks
    );
}

#[test]
fn a_template_directory_overrides_the_embedded_stanza() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keepalived")).unwrap();
    std::fs::write(
        dir.path().join("keepalived/misc_check.conf.j2"),
        "{{ indent }}# vipcheck:begin custom\n{{ indent }}MISC_CHECK {\n{{ indent }}    misc_path \"{{ command_line }}\"\n\
         {{ indent }}    misc_timeout {{ misc_timeout }}\n{{ indent }}    # real server {{ command.rip }}\n{{ indent }}}\n{{ indent }}# vipcheck:end\n",
    )
    .unwrap();
    let mut opts = options();
    opts.templates = Some(dir.path().to_path_buf());
    let plan = plan(
        &fixture("rewrite/keepalived/dr_basic.conf"),
        Format::Keepalived,
        &opts,
    )
    .unwrap();
    let text = plan.new_text(vipcheck::config::FileId(0));
    assert!(
        text.contains("        # real server 192.0.2.11\n"),
        "{text}"
    );
    assert!(
        text.contains("        # real server 192.0.2.12\n"),
        "{text}"
    );
}

#[test]
fn a_template_with_an_undefined_variable_fails_loudly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keepalived")).unwrap();
    std::fs::write(
        dir.path().join("keepalived/misc_check.conf.j2"),
        "{{ indnet }}MISC_CHECK {}\n",
    )
    .unwrap();
    let mut opts = options();
    opts.templates = Some(dir.path().to_path_buf());
    let err = plan(
        &fixture("rewrite/keepalived/dr_basic.conf"),
        Format::Keepalived,
        &opts,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("misc_check.conf.j2") && err.contains("undefined"),
        "{err}"
    );
}

#[test]
fn app_check_runs_the_real_servers_own_http_get_through_the_vip() {
    let mut opts = options();
    opts.app_check = true;
    let path = fixture("rewrite/keepalived/dr_basic.conf");
    let plan = plan(&path, Format::Keepalived, &opts).unwrap();
    let text = plan.new_text(vipcheck::config::FileId(0));
    for rip in ["192.0.2.11", "192.0.2.12"] {
        let line = format!(
            "misc_path \"/usr/sbin/vipcheck probe --vip 192.0.2.20 --rip {rip} --port 80 --proto tcp \
             --method dr --timeout 2s --check http --http-path=/ --expect-status 200\""
        );
        assert!(text.contains(&line), "{text}");
    }
    // Without an HTTP_GET there is nothing to run through the VIP: the plain probe.
    let plan = plan_of_with(&fixture("rewrite/keepalived/no_global_defs.conf"), &opts);
    assert!(!plan
        .new_text(vipcheck::config::FileId(0))
        .contains("--check http"));
    let Some(keepalived) = tool("keepalived", "keepalived") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keepalived.conf");
    std::fs::write(&out, &text).unwrap();
    let (rc, stderr) = common::keepalived::config_test(&keepalived, &out);
    assert_eq!(rc, 0, "{stderr}");
}

fn plan_of_with(path: &Path, opts: &GenerateOptions) -> Plan {
    plan(path, Format::Keepalived, opts).unwrap()
}
