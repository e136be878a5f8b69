//! `rewrite --feed agent`: keepalived gets a FILE_CHECK per pair on the track_file of the
//! agent's verdict (declared once at the top), ldirectord's wrapper reads the verdict file
//! instead of probing. Golden snapshots, idempotence, switching feeds, byte-exactness
//! outside the generated blocks, real keepalived's `--config-test`, the wrapper's reading
//! of verdict files, and the names agreeing with the agent's (`Pair::state_name`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixture, relative_paths, tool};
use vipcheck::config::keepalived::{parse_file, ParseOptions};
use vipcheck::config::ldirectord::{self, OfflineResolver, Services};
use vipcheck::config::{FileId, Format};
use vipcheck::generate::Generator;
use vipcheck::rewrite::{markers, plan, Feed, GenerateOptions, Plan};

const STATE_DIR: &str = "/run/vipcheck";

fn options(feed: Feed) -> GenerateOptions {
    let mut opts = GenerateOptions::new(PathBuf::from("/usr/sbin/vipcheck"));
    opts.fwmark_vips
        .insert(5, vec!["192.0.2.50".parse().unwrap()]);
    opts.fwmark_vips
        .insert(7, vec!["192.0.2.70".parse().unwrap()]);
    opts.config_id = Some("lb1".into());
    opts.feed = feed;
    opts
}

fn agent() -> Feed {
    Feed::Agent {
        state_dir: STATE_DIR.into(),
    }
}

fn keepalived_plan(path: &Path, feed: Feed) -> Plan {
    let path = path.strip_prefix(common::crate_dir()).unwrap_or(path);
    plan(path, Format::Keepalived, &options(feed))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes the plan into a fresh directory; returns it and the new main file.
fn write_temp(plan: &Plan, name: &std::ffi::OsStr) -> (tempfile::TempDir, PathBuf) {
    let out = tempfile::tempdir().unwrap();
    plan.write_to(out.path()).unwrap();
    let main = out.path().join(name);
    (out, main)
}

/// The text of every file of a written tree, by path relative to its directory.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn golden_keepalived_feed_agent_rewrites_of_every_fixture() {
    insta::glob!("../fixtures/rewrite/keepalived", "*.conf", |path| {
        let plan = keepalived_plan(path, agent());
        let mut out = String::new();
        for note in &plan.skipped {
            out.push_str(&note.to_string());
            out.push('\n');
        }
        out.push_str(&format!("generated checks: {}\n", plan.checks));
        out.push_str(&plan.unified_diff(false));
        insta::assert_snapshot!(relative_paths(&out, None));
    });
}

#[test]
fn keepalived_feed_agent_is_idempotent_and_switching_feeds_replaces_the_blocks() {
    for path in common::keepalived::fixture_paths() {
        let name = path.file_name().unwrap();
        let (agent_dir, agent_main) = write_temp(&keepalived_plan(&path, agent()), name);
        let (probe_dir, probe_main) = write_temp(&keepalived_plan(&path, Feed::Probe), name);
        // Twice the same feed: nothing to change.
        let again = keepalived_plan(&agent_main, agent());
        assert!(
            !again.has_changes(),
            "{}:\n{}",
            path.display(),
            again.unified_diff(false)
        );
        // probe -> agent gives the bytes of a direct agent rewrite, and back.
        let (switched, _) = write_temp(&keepalived_plan(&probe_main, agent()), name);
        assert_eq!(
            tree(switched.path()),
            tree(agent_dir.path()),
            "{}: probe -> agent",
            path.display()
        );
        let (back, _) = write_temp(&keepalived_plan(&agent_main, Feed::Probe), name);
        assert_eq!(
            tree(back.path()),
            tree(probe_dir.path()),
            "{}: agent -> probe",
            path.display()
        );
    }
}

#[test]
fn removing_the_agent_feed_blocks_gives_back_the_original_bytes() {
    for path in common::keepalived::fixture_paths() {
        let plan = keepalived_plan(&path, agent());
        assert!(plan.checks > 0, "{}", path.display());
        for (id, file) in plan.sources.files() {
            let new = plan.new_text(id);
            let mut stripped = String::new();
            let mut pos = 0;
            for b in markers::generated_blocks(&new) {
                stripped.push_str(&new[pos..b.start]);
                pos = b.end;
            }
            stripped.push_str(&new[pos..]);
            if path.ends_with("braces_same_line.conf") {
                // A one-line block's closing brace moves to a line of its own.
                assert_eq!(
                    stripped.replace(char::is_whitespace, ""),
                    file.text.replace(char::is_whitespace, "")
                );
            } else {
                assert_eq!(stripped, file.text, "{}", file.path.display());
            }
        }
    }
}

#[test]
fn the_agent_feed_needs_no_script_security_and_runs_no_probe() {
    let plan = keepalived_plan(&fixture("rewrite/keepalived/no_global_defs.conf"), agent());
    let text = plan.new_text(FileId(0));
    assert!(!text.contains("MISC_CHECK"), "{text}");
    assert!(!text.contains("enable_script_security"), "{text}");
    assert!(!text.contains("/usr/sbin/vipcheck"), "{text}");
    assert!(text.starts_with(markers::BEGIN), "{text}");
}

/// What the rewritten config holds, read back with vipcheck's parser: every DR/TUN real
/// server with a VIP has exactly one generated FILE_CHECK per VIP, naming the track_file
/// of that pair as the agent names it; every name is declared (once) at the top of the
/// main file, before anything else, with its file in the state directory.
fn assert_one_file_check_per_pair(config: &Path) {
    let doc = parse_file(
        config,
        &ParseOptions {
            config_id: Some("lb1".into()),
        },
    )
    .unwrap();
    let main = &doc.sources.file(FileId(0)).text;
    let top = markers::generated_blocks(main)
        .into_iter()
        .next()
        .filter(|b| b.start == 0)
        .unwrap_or_else(|| panic!("{}: no generated block at the top", config.display()));
    let declared: Vec<&str> = main[top.clone()]
        .lines()
        .filter_map(|l| l.strip_prefix("track_file "))
        .filter_map(|l| l.strip_suffix(" {"))
        .collect();
    let unique: BTreeSet<&str> = declared.iter().copied().collect();
    assert_eq!(
        unique.len(),
        declared.len(),
        "{}: declared twice",
        config.display()
    );
    for name in &declared {
        assert!(
            main[top.clone()].contains(&format!("    file {STATE_DIR}/{name}\n")),
            "{}: {name}",
            config.display()
        );
    }
    let mut expected = BTreeSet::new();
    for pair in vipcheck::status::pairs(&doc.services, &options(agent()).fwmark_vips) {
        expected.insert(pair.state_name());
    }
    for vs in &doc.services {
        let vips: Vec<_> = vs
            .vips
            .iter()
            .chain(
                vs.fwmarks
                    .iter()
                    .flat_map(|m| {
                        options(agent())
                            .fwmark_vips
                            .get(m)
                            .cloned()
                            .unwrap_or_default()
                    })
                    .collect::<Vec<_>>()
                    .iter(),
            )
            .copied()
            .collect();
        if vips.is_empty() {
            continue;
        }
        for rs in vs
            .real_servers
            .iter()
            .filter(|r| r.method.needs_vip_on_real_server())
        {
            let text = &doc.sources.file(rs.span.file).text;
            let blocks = markers::generated_blocks(text);
            let named: Vec<String> = rs
                .checks
                .iter()
                .filter(|c| markers::within(&blocks, c.span.start..c.span.end))
                .map(|c| {
                    assert_eq!(c.kind, "FILE_CHECK", "{}", config.display());
                    let body = &text[c.span.start..c.span.end];
                    let words: Vec<&str> = body.split_whitespace().collect();
                    let at = words.iter().position(|w| *w == "track_file").unwrap();
                    words[at + 1].to_string()
                })
                .collect();
            let mut want: Vec<String> = Vec::new();
            for vip in &vips {
                let name =
                    vipcheck::rewrite::state_name(vs.protocol, *vip, rs.port.or(vs.port), rs.addr);
                if !want.contains(&name) {
                    want.push(name);
                }
            }
            assert_eq!(named, want, "{}: real server {}", config.display(), rs.addr);
            for n in &named {
                assert!(
                    unique.contains(n.as_str()),
                    "{}: {n} undeclared",
                    config.display()
                );
                assert!(
                    expected.contains(n),
                    "{}: {n} is not a pair's state_name",
                    config.display()
                );
            }
        }
    }
}

#[test]
fn every_generated_file_check_names_a_declared_track_file_of_its_pair() {
    for path in common::keepalived::fixture_paths() {
        let (_dir, main) = write_temp(&keepalived_plan(&path, agent()), path.file_name().unwrap());
        assert_one_file_check_per_pair(&main);
    }
}

#[test]
fn real_keepalived_accepts_every_agent_fed_config_it_accepted_before() {
    let Some(keepalived) = tool("keepalived", "keepalived") else {
        return;
    };
    let inputs = common::keepalived::accepted_inputs(&keepalived);
    assert!(
        inputs.len() >= 10,
        "too few accepted inputs: {}",
        inputs.len()
    );
    let (mut configs, mut checks) = (0, 0);
    for input in &inputs {
        let plan = keepalived_plan(input, agent());
        let (_dir, out) = write_temp(&plan, input.file_name().unwrap());
        let (rc, stderr) = common::keepalived::config_test(&keepalived, &out);
        assert_eq!(
            rc,
            0,
            "{} rewritten with --feed agent is rejected by keepalived:\n{stderr}",
            input.display()
        );
        // keepalived reports a FILE_CHECK whose track_file it does not know yet on
        // standard error without failing the test: no such line may appear.
        assert!(
            !stderr.contains("track_file") && !stderr.contains("FILE_CHECK"),
            "{}: {stderr}",
            input.display()
        );
        if plan.checks > 0 {
            assert_one_file_check_per_pair(&out);
            configs += 1;
        }
        checks += plan.checks;
    }
    assert!(checks > 0);
    eprintln!(
        "keepalived --config-test accepted {} agent-fed configs ({configs} with checks, {checks} FILE_CHECKs)",
        inputs.len()
    );
}

#[test]
fn keepalived_rejects_a_file_check_before_its_declaration() {
    // The reason the declarations go first: the check above would catch them moved.
    let Some(keepalived) = tool("keepalived", "keepalived") else {
        return;
    };
    let plan = keepalived_plan(&fixture("rewrite/keepalived/dr_basic.conf"), agent());
    let text = plan.new_text(FileId(0));
    let top = markers::generated_blocks(&text)[0].clone();
    let moved = format!("{}{}", &text[top.end..], &text[top.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keepalived.conf");
    std::fs::write(&path, moved).unwrap();
    let (_, stderr) = common::keepalived::config_test(&keepalived, &path);
    assert!(stderr.contains("not found"), "{stderr}");
}

// ---- ldirectord ----

fn resolver() -> OfflineResolver {
    OfflineResolver {
        services: Services::parse("http 80/tcp www\nhttps 443/tcp\n"),
        ..Default::default()
    }
}

fn ldirectord_plan(path: &Path, text: &str, opts: &GenerateOptions) -> (Plan, String) {
    let doc = ldirectord::parse_str(path.to_path_buf(), text.to_string(), &resolver())
        .unwrap_or_else(|d| panic!("{d}"));
    let plan = vipcheck::rewrite::ldirectord::plan(&doc, &Generator::new(None).unwrap(), opts)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = plan.new_text(FileId(0));
    (plan, out)
}

fn ldirectord_options(feed: Feed, dir: &Path) -> GenerateOptions {
    let mut opts = options(feed);
    opts.output_dir = Some(dir.to_path_buf());
    opts
}

#[test]
fn golden_ldirectord_feed_agent_rewrites_of_every_fixture() {
    insta::glob!("../fixtures/ldirectord", "*.cf", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let opts = ldirectord_options(agent(), Path::new("/etc/ha.d"));
        let (plan, out) = ldirectord_plan(Path::new(&name), &text, &opts);
        let mut report = format!("=== {name} (rewritten)\n{out}");
        for f in &plan.new_files {
            assert!(f.executable);
            assert!(
                !f.contents.contains("/usr/sbin/vipcheck"),
                "the agent-fed wrapper runs no probe"
            );
            report.push_str(&format!("=== {}\n{}", f.path.display(), f.contents));
        }
        for d in &plan.skipped {
            report.push_str(&format!("=== note\n{d}\n"));
        }
        insta::assert_snapshot!(report);
    });
}

#[test]
fn ldirectord_feed_agent_is_idempotent_and_switching_feeds_replaces_the_wrappers() {
    let dir = Path::new("/etc/ha.d");
    for e in std::fs::read_dir(fixture("ldirectord")).unwrap().flatten() {
        let path = e.path();
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let (agent_plan, once) = ldirectord_plan(&path, &text, &ldirectord_options(agent(), dir));
        let (again, twice) = ldirectord_plan(&path, &once, &ldirectord_options(agent(), dir));
        assert_eq!(once, twice, "{}", path.display());
        assert!(again.edits.is_empty(), "{}", path.display());
        assert_eq!(agent_plan.new_files, again.new_files);
        let (probe_plan, probe_text) =
            ldirectord_plan(&path, &text, &ldirectord_options(Feed::Probe, dir));
        let (switched, switched_text) =
            ldirectord_plan(&path, &once, &ldirectord_options(Feed::Probe, dir));
        assert_eq!(switched_text, probe_text, "{}", path.display());
        assert_eq!(
            switched.new_files,
            probe_plan.new_files,
            "{}",
            path.display()
        );
        assert_ne!(
            switched.new_files,
            agent_plan.new_files,
            "{}",
            path.display()
        );
    }
}

/// A wrapper written for `config` (DR reals 192.0.2.11 and .12 of 192.0.2.20:80 with
/// `checktype=on`, so the original check always passes), with a probe path that leaves a
/// mark if anything runs it.
struct Wrapper {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Wrapper {
    fn new(feed_dir: Option<&Path>, config: &str) -> Wrapper {
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("vipcheck");
        std::fs::write(
            &probe,
            format!(
                "#!/bin/sh\ntouch {}/probe-ran\nexit 0\n",
                dir.path().display()
            ),
        )
        .unwrap();
        set_executable(&probe);
        let feed = match feed_dir {
            Some(d) => Feed::Agent {
                state_dir: d.to_path_buf(),
            },
            None => Feed::Probe,
        };
        let mut opts = ldirectord_options(feed, dir.path());
        opts.probe_path = probe;
        let (plan, _) = ldirectord_plan(&dir.path().join("ldirectord.cf"), config, &opts);
        let [file] = plan.new_files.as_slice() else {
            panic!("one wrapper expected: {:?}", plan.new_files)
        };
        std::fs::write(&file.path, &file.contents).unwrap();
        set_executable(&file.path);
        Wrapper {
            path: file.path.clone(),
            dir,
        }
    }

    /// The wrapper's exit code for real `rip`, as ldirectord runs it.
    fn run(&self, vip: &str, rip: &str) -> i32 {
        let out = common::output_fresh(Command::new(&self.path).args([vip, "80", rip, "80"]));
        out.status.code().unwrap_or(-1)
    }

    fn probe_ran(&self) -> bool {
        self.dir.path().join("probe-ran").exists()
    }
}

fn set_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

const ON_CONFIG: &str =
    "virtual=192.0.2.20:80\n\treal=192.0.2.11:80 gate\n\treal=192.0.2.12:80 gate\n\
                         \tprotocol=tcp\n\tchecktype=on\n";

#[test]
fn the_agent_fed_wrapper_reads_each_pairs_verdict_and_runs_no_probe() {
    let states = tempfile::tempdir().unwrap();
    let w = Wrapper::new(Some(states.path()), ON_CONFIG);
    let file = |rip: &str| states.path().join(format!("tcp_192.0.2.20_80_{rip}"));
    // No verdict yet (the agent is not running): up, like keepalived's init_file 0.
    assert_eq!(w.run("192.0.2.20", "192.0.2.11"), 0);
    for (content, want) in [
        ("1\n", 1),
        ("0\n", 0),
        ("1", 1),
        ("-1\n", 1),
        ("00\n", 0),
        ("", 0),
        ("garbage\n", 0),
    ] {
        std::fs::write(file("192.0.2.11"), content).unwrap();
        assert_eq!(
            w.run("192.0.2.20", "192.0.2.11"),
            want,
            "verdict {content:?}"
        );
    }
    // Each real server reads its own pair's file.
    std::fs::write(file("192.0.2.11"), "1\n").unwrap();
    std::fs::write(file("192.0.2.12"), "0\n").unwrap();
    assert_eq!(w.run("192.0.2.20", "192.0.2.12"), 0);
    // A real added after the rewrite (not in the wrapper's table) reads its own file too.
    std::fs::write(file("192.0.2.13"), "1\n").unwrap();
    assert_eq!(w.run("192.0.2.20", "192.0.2.13"), 1);
    assert_eq!(w.run("192.0.2.20", "192.0.2.14"), 0);
    // An unreadable verdict (a directory in its place) is no verdict: up.
    std::fs::create_dir(file("192.0.2.15")).unwrap();
    assert_eq!(w.run("192.0.2.20", "192.0.2.15"), 0);
    assert!(!w.probe_ran(), "the agent-fed wrapper ran the probe");
    // The probe-fed wrapper, for contrast, runs it.
    let p = Wrapper::new(None, ON_CONFIG);
    assert_eq!(p.run("192.0.2.20", "192.0.2.11"), 0);
    assert!(p.probe_ran());
}

#[test]
fn the_agent_fed_wrapper_of_a_fwmark_service_reads_every_vips_verdict() {
    let states = tempfile::tempdir().unwrap();
    let mut config =
        String::from("virtual=7\n\treal=192.0.2.11 gate\n\tprotocol=fwm\n\tchecktype=on\n");
    config.push('\n');
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ldirectord_options(
        Feed::Agent {
            state_dir: states.path().to_path_buf(),
        },
        dir.path(),
    );
    opts.fwmark_vips.insert(
        7,
        vec!["192.0.2.70".parse().unwrap(), "192.0.2.71".parse().unwrap()],
    );
    let (plan, _) = ldirectord_plan(&dir.path().join("ldirectord.cf"), &config, &opts);
    let file = &plan.new_files[0];
    std::fs::write(&file.path, &file.contents).unwrap();
    set_executable(&file.path);
    let run = |rip: &str| {
        common::output_fresh(Command::new(&file.path).args(["7", "0", rip, "0"]))
            .status
            .code()
    };
    assert_eq!(run("192.0.2.11"), Some(0));
    std::fs::write(states.path().join("tcp_192.0.2.71_any_192.0.2.11"), "1\n").unwrap();
    assert_eq!(run("192.0.2.11"), Some(1));
    std::fs::write(states.path().join("tcp_192.0.2.71_any_192.0.2.11"), "0\n").unwrap();
    std::fs::write(states.path().join("tcp_192.0.2.70_any_192.0.2.11"), "1\n").unwrap();
    assert_eq!(run("192.0.2.11"), Some(1));
    // Not in the table: built from the address at run time.
    std::fs::write(states.path().join("tcp_192.0.2.71_any_192.0.2.12"), "1\n").unwrap();
    assert_eq!(run("192.0.2.12"), Some(1));
}

// ---- the command line ----

fn vipcheck() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vipcheck"))
}

#[test]
fn state_dir_without_feed_agent_is_refused() {
    let out = vipcheck()
        .args(["rewrite", "--dry-run", "--state-dir", "/run/x"])
        .arg(fixture("rewrite/keepalived/dr_basic.conf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--state-dir only works with --feed agent"),
        "{err}"
    );
}

#[test]
fn the_command_line_feeds_keepalived_from_the_state_dir_given() {
    let out = vipcheck()
        .args([
            "rewrite",
            "--dry-run",
            "--feed",
            "agent",
            "--state-dir",
            "/var/lib/vc",
            "--probe-path",
            "/usr/sbin/vipcheck",
        ])
        .arg(fixture("rewrite/keepalived/dr_basic.conf"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        diff.contains("+    file /var/lib/vc/tcp_192.0.2.20_80_192.0.2.11\n"),
        "{diff}"
    );
    assert!(
        diff.contains("+            track_file tcp_192.0.2.20_80_192.0.2.12\n"),
        "{diff}"
    );
    assert!(!diff.contains("MISC_CHECK"), "{diff}");
    let bad = vipcheck()
        .args([
            "rewrite",
            "--dry-run",
            "--feed",
            "agent",
            "--state-dir",
            "/run/a b",
        ])
        .arg(fixture("rewrite/keepalived/dr_basic.conf"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--state-dir /run/a b"));
}
