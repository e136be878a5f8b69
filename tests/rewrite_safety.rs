//! What a rewrite guarantees about the files it writes: symlinks followed and kept, owner
//! and mode kept, all-or-nothing over every file, a bounded number of descriptors, every
//! `@id` branch idempotent, the original bytes back when the generated blocks are removed,
//! and special or huge files refused as input.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{corpus_dir, fixture, require};
use vipcheck::config::Format;
use vipcheck::rewrite::{markers, plan, GenerateOptions, Plan};

fn vipcheck(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vipcheck"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn options(id: &str) -> GenerateOptions {
    let mut opts = GenerateOptions::new(PathBuf::from("/usr/sbin/vipcheck"));
    opts.config_id = Some(id.into());
    opts
}

/// Every file of `dir` (recursively) with its bytes, links as `-> target`.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if meta.file_type().is_symlink() {
                let to = fs::read_link(&p).unwrap();
                out.push((rel, format!("-> {}", to.display()).into_bytes()));
            } else if meta.is_dir() {
                stack.push(p);
            } else {
                out.push((rel, fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

const KEEPALIVED_MAIN: &str = "global_defs {\n    router_id T\n}\ninclude conf.d/*.conf\n";
const KEEPALIVED_INCLUDED: &str = "virtual_server 192.0.2.20 80 {\n    lb_kind DR\n    protocol TCP\n    real_server 192.0.2.11 80 {\n        weight 1\n    }\n}\n";

#[test]
fn in_place_follows_symlinks_and_keeps_owner_group_and_mode() {
    if !require(is_root(), "needs root to give the files another owner") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    let etc = tmp.path().join("etc");
    fs::create_dir_all(real.join("conf.d")).unwrap();
    fs::create_dir_all(etc.join("conf.d")).unwrap();
    let targets = [
        (real.join("keepalived.conf"), KEEPALIVED_MAIN),
        (real.join("conf.d/web.conf"), KEEPALIVED_INCLUDED),
    ];
    for (path, contents) in &targets {
        fs::write(path, contents).unwrap();
        std::os::unix::fs::chown(path, Some(12345), Some(23456)).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o640)).unwrap();
    }
    // The config and the included file are both links into `real`.
    symlink(&targets[0].0, etc.join("keepalived.conf")).unwrap();
    symlink("../../real/conf.d/web.conf", etc.join("conf.d/web.conf")).unwrap();
    let out = vipcheck(
        &["rewrite", "etc/keepalived.conf", "--in-place"],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (link, (target, before)) in [etc.join("keepalived.conf"), etc.join("conf.d/web.conf")]
        .iter()
        .zip(&targets)
    {
        let meta = fs::symlink_metadata(link).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "{} is no longer a link",
            link.display()
        );
        let now = fs::read_to_string(target).unwrap();
        assert_ne!(&now, before, "{} was not rewritten", target.display());
        let meta = fs::metadata(target).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (12345, 23456, 0o640),
            "{}",
            target.display()
        );
    }
    assert!(fs::read_to_string(&targets[1].0)
        .unwrap()
        .contains("MISC_CHECK"));
    assert!(fs::read_to_string(&targets[0].0)
        .unwrap()
        .contains("enable_script_security"));
    // Nothing but the rewritten files is left in either directory.
    let names: Vec<_> = tree(tmp.path()).into_iter().map(|(p, _)| p).collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

fn ldirectord_config(dir: &Path, virtuals: usize) -> PathBuf {
    let mut cf = String::from("checktimeout=3\n");
    for i in 0..virtuals {
        cf.push_str(&format!(
            "virtual=192.0.2.{}:{}\n    real=198.51.100.{}:{} gate\n    checktype=connect\n",
            i % 250 + 1,
            1000 + i / 250,
            i % 250 + 1,
            1000 + i / 250
        ));
    }
    let path = dir.join("ldirectord.cf");
    fs::write(&path, cf).unwrap();
    path
}

#[test]
fn a_directory_where_a_wrapper_should_go_leaves_every_file_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let cf = ldirectord_config(tmp.path(), 3);
    // The wrapper of the second virtual is planned at this path; make it a directory.
    let plan = plan(&cf, Format::Ldirectord, &options("lb1")).unwrap();
    assert_eq!(plan.new_files.len(), 3);
    fs::create_dir(&plan.new_files[1].path).unwrap();
    let before = tree(tmp.path());
    let out = vipcheck(&["rewrite", "ldirectord.cf", "--in-place"], tmp.path());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(tree(tmp.path()), before, "a file changed: {err}");
    assert!(err.contains("is a directory"), "{err}");
}

/// `chattr +i` on a file; false when the file system does not support it.
fn chattr(flag: &str, path: &Path) -> bool {
    Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Takes the immutable flag off again, also when the test fails.
struct Immutable(PathBuf);
impl Drop for Immutable {
    fn drop(&mut self) {
        chattr("-i", &self.0);
    }
}

#[test]
fn an_immutable_wrapper_leaves_every_file_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let cf = ldirectord_config(tmp.path(), 3);
    let plan = plan(&cf, Format::Ldirectord, &options("lb1")).unwrap();
    // A stale wrapper of the last virtual, marked immutable.
    let wrapper = plan.new_files[2].path.clone();
    fs::write(&wrapper, "#!/bin/sh\nexit 0\n").unwrap();
    let supported = is_root() && chattr("+i", &wrapper);
    let _guard = Immutable(wrapper.clone());
    if !require(
        supported,
        "chattr +i does not work here (needs root and a file system with inode flags)",
    ) {
        return;
    }
    let before = tree(tmp.path());
    let out = vipcheck(&["rewrite", "ldirectord.cf", "--in-place"], tmp.path());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(tree(tmp.path()), before, "a file changed: {err}");
    assert!(err.contains("immutable"), "{err}");
}

#[test]
fn thousands_of_wrappers_are_written_with_64_descriptors() {
    let tmp = tempfile::tempdir().unwrap();
    ldirectord_config(tmp.path(), 1200);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vipcheck"));
    cmd.args(["rewrite", "ldirectord.cf", "--in-place"])
        .current_dir(tmp.path());
    // SAFETY: the closure only calls setrlimit, which is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let wrappers = fs::read_dir(tmp.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".sh")
        })
        .count();
    assert_eq!(wrappers, 1200);
}

/// The ids the conditional-include fixture names, and one it does not.
const IDS: [&str; 3] = ["lba", "lbb", "lbz"];

#[test]
fn every_branch_of_a_conditional_include_is_idempotent() {
    let config = fixture("rewrite/keepalived_conditional_include/keepalived.conf");
    for first in IDS {
        let out = tempfile::tempdir().unwrap();
        let plan1 = plan(&config, Format::Keepalived, &options(first)).unwrap();
        // Every file, the ones only one branch includes too, gets its checks.
        assert_eq!(plan1.sources.len(), 3, "{first}");
        plan1.write_to(out.path()).unwrap();
        let main = out.path().join("keepalived.conf");
        for again in IDS {
            let plan2 = plan(&main, Format::Keepalived, &options(again)).unwrap();
            assert!(
                !plan2.has_changes(),
                "written for {first}, rewritten for {again}:\n{}",
                plan2.unified_diff(false)
            );
        }
        // Each real server holds one generated check, whichever branch reads it.
        let extra = fs::read_to_string(out.path().join("extra.conf")).unwrap();
        assert_eq!(extra.matches("MISC_CHECK").count(), 2, "{extra}");
        let other = fs::read_to_string(out.path().join("other.conf")).unwrap();
        assert_eq!(other.matches("MISC_CHECK").count(), 1, "{other}");
    }
}

/// `text` without its generated blocks.
fn without_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for b in markers::generated_blocks(text) {
        out.push_str(&text[pos..b.start]);
        pos = b.end;
    }
    out.push_str(&text[pos..]);
    out
}

fn keepalived_inputs() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut inputs = Vec::new();
    walk(&fixture("rewrite/keepalived"), &mut inputs);
    inputs.push(fixture("rewrite/keepalived_tree/keepalived.conf"));
    inputs.push(fixture(
        "rewrite/keepalived_conditional_include/keepalived.conf",
    ));
    inputs.push(fixture("examples/keepalived.conf"));
    inputs
}

/// Asserts the property for every file `plan` covers; returns how many files.
fn assert_blocks_removed_give_the_original(path: &Path, plan: &Plan) -> usize {
    for (id, file) in plan.sources.files() {
        let new = plan.new_text(id);
        assert_eq!(
            without_blocks(&new),
            without_blocks(&file.text),
            "{} (read from {})",
            file.path.display(),
            path.display()
        );
    }
    plan.sources.len()
}

/// Plans every input for each of `ids` and checks the property; returns how many plans
/// and files.
fn check_blocks_property(inputs: &[PathBuf], ids: &[&str]) -> (usize, usize) {
    let (mut files, mut plans) = (0, 0);
    for input in inputs {
        for &id in ids {
            // Inputs the rewrite refuses (a located error) write nothing.
            let Ok(p) = plan(input, Format::Keepalived, &options(id)) else {
                continue;
            };
            files += assert_blocks_removed_give_the_original(input, &p);
            plans += 1;
        }
    }
    (plans, files)
}

#[test]
fn removing_the_generated_blocks_gives_back_the_original_bytes() {
    let (plans, files) = check_blocks_property(&keepalived_inputs(), &["lb1", "lba", "lbb"]);
    assert!(plans >= 30 && files >= 30, "{plans} plans, {files} files");
}

#[test]
fn removing_the_generated_blocks_gives_back_debians_samples() {
    let samples = Path::new("/usr/share/doc/keepalived/samples");
    let inputs: Vec<PathBuf> = fs::read_dir(samples)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("keepalived.conf"))
        })
        .collect();
    if !require(
        !inputs.is_empty(),
        "Debian's keepalived samples are not installed",
    ) {
        return;
    }
    let (plans, _) = check_blocks_property(&inputs, &["lb1"]);
    assert!(plans > 0, "no sample could be planned");
}

#[test]
fn removing_the_generated_blocks_gives_back_the_corpus() {
    let corpus = corpus_dir();
    if !require(corpus.is_some(), "../shared/corpus is absent") {
        return;
    }
    let corpus = corpus.unwrap_or_default();
    let mut inputs = Vec::new();
    for sub in ["keepalived", "keepalived_trees"] {
        let mut stack = vec![corpus.join(sub)];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    inputs.push(p);
                }
            }
        }
    }
    inputs.sort();
    let (plans, files) = check_blocks_property(&inputs, &["lb1"]);
    assert!(plans > 50, "{plans} plans over {files} files");
}

/// A named pipe at `path`.
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Runs `vipcheck rewrite --dry-run CONFIG` (killed after 20 s); exit 2 is an error.
fn dry_run(config: &Path, format: &str, cwd: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vipcheck"))
        .args(["rewrite", "--dry-run", "--format", format])
        .arg(config)
        .current_dir(cwd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("reading {} did not end", config.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn special_files_as_config_are_refused_with_their_name() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo.conf");
    mkfifo(&fifo);
    for format in ["keepalived", "ldirectord"] {
        for (config, what) in [
            (Path::new("/dev/zero"), "not a regular file"),
            (fifo.as_path(), "not a regular file"),
            (tmp.path(), "directory"),
        ] {
            let out = dry_run(config, format, tmp.path());
            assert_eq!(out.status.code(), Some(2), "{format} {}", config.display());
            let err = text(&out.stderr);
            assert!(
                err.contains(&config.display().to_string()) && err.contains(what),
                "{format} {}: {err}",
                config.display()
            );
        }
    }
}

/// A sparse file one byte over the limit (no disk space used).
fn huge(path: &Path) {
    let f = fs::File::create(path).unwrap();
    f.set_len(vipcheck::config::MAX_FILE_SIZE + 1).unwrap();
}

#[test]
fn files_over_the_size_limit_are_refused_main_and_included() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.conf");
    huge(&big);
    let main = tmp.path().join("keepalived.conf");
    fs::write(&main, "global_defs {\n}\ninclude big.conf\n").unwrap();
    for (config, format) in [
        (&big, "keepalived"),
        (&big, "ldirectord"),
        (&main, "keepalived"),
    ] {
        let out = dry_run(config, format, tmp.path());
        assert_eq!(out.status.code(), Some(2), "{}", config.display());
        let err = text(&out.stderr);
        assert!(
            err.contains("big.conf") && err.contains("MiB"),
            "{}: {err}",
            config.display()
        );
        if config == &main {
            // Located at the include line.
            assert!(err.contains("keepalived.conf:3:"), "{err}");
        }
    }
}
