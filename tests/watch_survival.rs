//! What `vipcheck watch` must survive, each with real inotify in a temp dir: editor saves,
//! includes coming and going, ConfigMap symlink swaps, deletes, bursts, bad saves, its own
//! writes, and a daemon that is not there. A stand-in daemon counts the SIGHUPs.

mod watch_support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use vipcheck::watch::{Regenerate, Reload, Report, Validation};
use watch_support::*;

/// A config, its output already generated (so the first pass changes nothing), a stand-in
/// daemon and the watcher.
struct Scene {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    main: PathBuf,
    out: PathBuf,
    daemon: StandIn,
    h: Harness,
}

fn scene(files: &[(&str, &str)]) -> Scene {
    let (tmp, dir) = tempdir();
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let main = dir.join("main.conf");
    let out = dir.join("out.conf");
    let mut regen = CopyRegen::new(main.clone(), Target::File(out.clone()));
    regen.regenerate().unwrap();
    regen.calls.store(0, Ordering::SeqCst);
    let daemon = StandIn::start(&dir);
    let reload = daemon.reload();
    let h = Harness::start(regen, Validation::None, reload, false);
    Scene {
        _tmp: tmp,
        dir,
        main,
        out,
        daemon,
        h,
    }
}

fn out_text(s: &Scene) -> String {
    std::fs::read_to_string(&s.out).unwrap()
}

/// Waits for the pass a change causes and checks it was exactly one regeneration and one
/// reload, and that nothing more follows.
fn expect_one_reload(s: &mut Scene, hups_before: usize) {
    s.h.expect(is_reloaded);
    let after = s.h.quiet();
    assert_eq!(count(&after, is_reloaded), 0, "second reload: {after:#?}");
    assert_eq!(
        count(&after, is_change),
        0,
        "own write acted on: {after:#?}"
    );
    assert_eq!(s.daemon.wait_hups(hups_before + 1), hups_before + 1);
}

#[test]
fn first_pass_without_changes_does_not_reload() {
    let mut s = scene(&[("main.conf", "a\n")]);
    assert_eq!(s.h.calls(), 1);
    assert!(s.h.seen.contains(&Report::Unchanged), "{:#?}", s.h.seen);
    s.h.quiet();
    assert_eq!(s.daemon.hups(), 0);
}

#[test]
fn first_pass_with_stale_output_regenerates_and_reloads_once() {
    let (_tmp, dir) = tempdir();
    let main = dir.join("main.conf");
    std::fs::write(&main, "a\n").unwrap();
    let out = dir.join("out.conf");
    let daemon = StandIn::start(&dir);
    let regen = CopyRegen::new(main, Target::File(out.clone()));
    let mut h = Harness::start(regen, Validation::None, daemon.reload(), false);
    assert_eq!(count(&h.seen, is_regenerated), 1, "{:#?}", h.seen);
    assert_eq!(count(&h.seen, is_reloaded), 1, "{:#?}", h.seen);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("a\n{MARKER}")
    );
    let later = h.quiet();
    assert_eq!(
        count(&later, is_change),
        0,
        "own output acted on: {later:#?}"
    );
    assert_eq!(daemon.wait_hups(1), 1);
    assert_eq!(h.calls(), 1);
}

#[test]
fn editor_save_by_temp_and_rename_regenerates_and_reloads_once() {
    let mut s = scene(&[("main.conf", "a\n")]);
    save_by_rename(&s.main, "a\nb\n");
    expect_one_reload(&mut s, 0);
    assert_eq!(out_text(&s), format!("a\nb\n{MARKER}"));
    assert_eq!(s.h.calls(), 2);
    // The watch survived the rename: a second save is seen too.
    save_by_rename(&s.main, "c\n");
    expect_one_reload(&mut s, 1);
    assert_eq!(out_text(&s), format!("c\n{MARKER}"));
}

#[test]
fn editor_save_by_truncate_and_write_regenerates_and_reloads_once() {
    let mut s = scene(&[("main.conf", "a\n")]);
    save_by_truncate(&s.main, "a\nlonger line b\n");
    expect_one_reload(&mut s, 0);
    assert_eq!(out_text(&s), format!("a\nlonger line b\n{MARKER}"));
    assert_eq!(s.h.calls(), 2);
}

#[test]
fn change_in_included_file_regenerates() {
    let mut s = scene(&[
        ("main.conf", "top\ninclude conf.d/*.conf\n"),
        ("conf.d/a.conf", "a1\n"),
    ]);
    save_by_rename(&s.dir.join("conf.d/a.conf"), "a2\n");
    expect_one_reload(&mut s, 0);
    assert_eq!(out_text(&s), format!("top\na2\n{MARKER}"));
}

#[test]
fn new_file_matching_include_glob_regenerates() {
    let mut s = scene(&[
        ("main.conf", "top\ninclude conf.d/*.conf\n"),
        ("conf.d/a.conf", "a\n"),
    ]);
    // Not matching the glob: ignored.
    std::fs::write(s.dir.join("conf.d/notes.txt"), "x\n").unwrap();
    let q = s.h.quiet();
    assert_eq!(count(&q, is_change), 0, "{q:#?}");
    std::fs::write(s.dir.join("conf.d/b.conf"), "b\n").unwrap();
    expect_one_reload(&mut s, 0);
    assert_eq!(out_text(&s), format!("top\na\nb\n{MARKER}"));
}

#[test]
fn new_file_in_a_symlinked_include_directory_regenerates() {
    let mut s = scene(&[
        ("main.conf", "top\ninclude conf.d/*.conf\n"),
        ("shared/a.conf", "a\n"),
    ]);
    // conf.d did not exist when the scene was generated: make it a link, let that pass.
    symlink("shared", s.dir.join("conf.d")).unwrap();
    expect_one_reload(&mut s, 0);
    assert_eq!(out_text(&s), format!("top\na\n{MARKER}"));
    std::fs::write(s.dir.join("shared/b.conf"), "b\n").unwrap();
    expect_one_reload(&mut s, 1);
    assert_eq!(out_text(&s), format!("top\na\nb\n{MARKER}"));
}

#[test]
fn new_include_directory_created_later_is_watched() {
    // The pattern's directory does not exist yet: its parent is watched instead.
    let mut s = scene(&[("main.conf", "top\ninclude conf.d/*.conf\n")]);
    std::fs::create_dir(s.dir.join("conf.d")).unwrap();
    // The directory appearing is itself a change (nothing to write: one pass, no reload).
    s.h.expect(|r| *r == Report::Unchanged);
    std::fs::write(s.dir.join("conf.d/a.conf"), "a\n").unwrap();
    expect_one_reload(&mut s, 0);
    assert_eq!(out_text(&s), format!("top\na\n{MARKER}"));
}

#[test]
fn included_file_removed_regenerates_without_it() {
    let mut s = scene(&[
        ("main.conf", "top\ninclude conf.d/*.conf\n"),
        ("conf.d/a.conf", "a\n"),
        ("conf.d/b.conf", "b\n"),
    ]);
    std::fs::remove_file(s.dir.join("conf.d/b.conf")).unwrap();
    expect_one_reload(&mut s, 0);
    assert_eq!(out_text(&s), format!("top\na\n{MARKER}"));
}

#[test]
fn include_line_removed_regenerates_without_it() {
    let mut s = scene(&[
        ("main.conf", "top\ninclude conf.d/*.conf\n"),
        ("conf.d/a.conf", "a\n"),
    ]);
    save_by_rename(&s.main, "top\n");
    expect_one_reload(&mut s, 0);
    assert_eq!(out_text(&s), format!("top\n{MARKER}"));
    // The file no longer included changes: nothing to do.
    std::fs::write(s.dir.join("conf.d/a.conf"), "a2\n").unwrap();
    let q = s.h.quiet();
    assert_eq!(count(&q, is_reloaded), 0, "{q:#?}");
    assert_eq!(s.daemon.hups(), 1);
}

/// Lays out a ConfigMap volume: `..TS/main.conf`, `..data -> ..TS`,
/// `main.conf -> ..data/main.conf`.
fn configmap(dir: &Path, ts: &str, text: &str) {
    std::fs::create_dir(dir.join(ts)).unwrap();
    std::fs::write(dir.join(ts).join("main.conf"), text).unwrap();
}

/// Swaps `..data` to a new timestamped directory the way the kubelet does.
fn configmap_swap(dir: &Path, old_ts: &str, new_ts: &str, text: &str) {
    configmap(dir, new_ts, text);
    symlink(new_ts, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join(old_ts)).unwrap();
}

#[test]
fn configmap_symlink_swap_regenerates_each_time() {
    let (_tmp, dir) = tempdir();
    let cm = dir.join("cm");
    std::fs::create_dir(&cm).unwrap();
    configmap(&cm, "..2026_11_26_00_00_00.1", "v1\n");
    symlink("..2026_11_26_00_00_00.1", cm.join("..data")).unwrap();
    symlink("..data/main.conf", cm.join("main.conf")).unwrap();
    let out = dir.join("out.conf");
    let mut regen = CopyRegen::new(cm.join("main.conf"), Target::File(out.clone()));
    regen.regenerate().unwrap();
    let daemon = StandIn::start(&dir);
    let mut h = Harness::start(regen, Validation::None, daemon.reload(), false);
    configmap_swap(
        &cm,
        "..2026_11_26_00_00_00.1",
        "..2026_11_26_00_01_00.2",
        "v2\n",
    );
    h.expect(is_reloaded);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("v2\n{MARKER}")
    );
    let q = h.quiet();
    assert_eq!(count(&q, is_reloaded), 0, "{q:#?}");
    assert_eq!(daemon.wait_hups(1), 1);
    // The chain was resolved again: a second swap is seen as well.
    configmap_swap(
        &cm,
        "..2026_11_26_00_01_00.2",
        "..2026_11_26_00_02_00.3",
        "v3\n",
    );
    h.expect(is_reloaded);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("v3\n{MARKER}")
    );
    h.quiet();
    assert_eq!(daemon.wait_hups(2), 2);
}

#[test]
fn config_deleted_then_recreated_regenerates_once_recreated() {
    let mut s = scene(&[("main.conf", "a\n")]);
    let before = out_text(&s);
    std::fs::remove_file(&s.main).unwrap();
    match s.h.expect(|r| matches!(r, Report::ConfigError(_))) {
        Report::ConfigError(e) => assert!(e.contains("main.conf"), "{e}"),
        _ => unreachable!(),
    }
    assert_eq!(
        out_text(&s),
        before,
        "output touched while the config is gone"
    );
    std::fs::write(&s.main, "recreated\n").unwrap();
    expect_one_reload(&mut s, 0);
    assert_eq!(out_text(&s), format!("recreated\n{MARKER}"));
    assert_eq!(count(&s.h.seen, is_reloaded), 1);
}

#[test]
fn config_directory_deleted_then_recreated_is_watched_again() {
    let (_tmp, dir) = tempdir();
    let cfg = dir.join("cfg");
    std::fs::create_dir(&cfg).unwrap();
    let main = cfg.join("main.conf");
    std::fs::write(&main, "a\n").unwrap();
    let out = dir.join("out.conf");
    let mut regen = CopyRegen::new(main.clone(), Target::File(out.clone()));
    regen.regenerate().unwrap();
    let daemon = StandIn::start(&dir);
    let mut h = Harness::start(regen, Validation::None, daemon.reload(), false);
    std::fs::remove_dir_all(&cfg).unwrap();
    h.expect(|r| matches!(r, Report::ConfigError(_)));
    std::fs::create_dir(&cfg).unwrap();
    std::fs::write(&main, "again\n").unwrap();
    h.expect(is_reloaded);
    h.quiet();
    assert_eq!(daemon.wait_hups(1), 1);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("again\n{MARKER}")
    );
    // And the recreated directory is watched itself.
    save_by_rename(&main, "third\n");
    h.expect(is_reloaded);
    h.quiet();
    assert_eq!(daemon.wait_hups(2), 2);
}

#[test]
fn burst_of_50_writes_in_100ms_is_one_regeneration_and_one_reload() {
    let mut s = scene(&[("main.conf", "a\n")]);
    let start = Instant::now();
    let mut last = start;
    let mut longest_gap = Duration::ZERO;
    for i in 0..50 {
        if i % 2 == 0 {
            save_by_truncate(&s.main, &format!("write {i}\n"));
        } else {
            save_by_rename(&s.main, &format!("write {i}\n"));
        }
        std::thread::sleep(Duration::from_millis(2));
        longest_gap = longest_gap.max(last.elapsed());
        last = Instant::now();
    }
    // The premise: no pause in the burst as long as the debounce time.
    assert!(longest_gap < DEBOUNCE, "burst paused for {longest_gap:?}");
    s.h.expect(is_reloaded);
    let q = s.h.quiet();
    assert_eq!(count(&q, is_reloaded), 0, "{q:#?}");
    assert_eq!(count(&s.h.seen, is_regenerated), 1, "{:#?}", s.h.seen);
    assert_eq!(s.h.calls(), 2, "one pass at start, one for the burst");
    assert_eq!(s.daemon.wait_hups(1), 1);
    assert_eq!(out_text(&s), format!("write 49\n{MARKER}"));
}

#[test]
fn invalid_config_leaves_output_and_daemon_alone_until_fixed() {
    let mut s = scene(&[("main.conf", "a\n")]);
    let good = out_text(&s);
    save_by_rename(&s.main, "a\nSYNTAX ERROR\n");
    match s.h.expect(|r| matches!(r, Report::ConfigError(_))) {
        Report::ConfigError(e) => {
            let want = format!("{}:2:1: unexpected 'SYNTAX'", s.main.display());
            assert!(e.starts_with(&want), "{e}");
        }
        _ => unreachable!(),
    }
    let q = s.h.quiet();
    assert_eq!(count(&q, is_reloaded), 0, "{q:#?}");
    assert_eq!(out_text(&s), good);
    assert_eq!(s.daemon.hups(), 0);
    save_by_rename(&s.main, "a\nfixed\n");
    expect_one_reload(&mut s, 0);
    assert_eq!(out_text(&s), format!("a\nfixed\n{MARKER}"));
}

#[test]
fn own_in_place_output_is_not_acted_on() {
    let (_tmp, dir) = tempdir();
    let main = dir.join("main.conf");
    std::fs::write(&main, "a\n").unwrap();
    let daemon = StandIn::start(&dir);
    let regen = CopyRegen::new(main.clone(), Target::InPlace);
    let mut h = Harness::start(regen, Validation::None, daemon.reload(), true);
    // The first pass wrote the marker into the config itself and reloaded.
    assert_eq!(
        std::fs::read_to_string(&main).unwrap(),
        format!("a\n{MARKER}")
    );
    let q = h.quiet();
    assert_eq!(count(&q, is_change), 0, "own write acted on: {q:#?}");
    assert_eq!(h.calls(), 1);
    assert_eq!(daemon.wait_hups(1), 1);
    // An operator's save: one pass that writes the marker back, one reload, and the
    // watcher's own write after it is not acted on.
    save_by_rename(&main, "b\n");
    h.expect(is_reloaded);
    let q = h.quiet();
    assert_eq!(count(&q, is_change), 0, "own write acted on: {q:#?}");
    assert_eq!(h.calls(), 2);
    assert_eq!(daemon.wait_hups(2), 2);
    assert_eq!(
        std::fs::read_to_string(&main).unwrap(),
        format!("b\n{MARKER}")
    );
    // An in-place edit that needs no new check still reloads (the daemon's config changed).
    save_by_rename(&main, format!("c\n{MARKER}").as_str());
    h.expect(is_reloaded);
    h.quiet();
    assert_eq!(h.calls(), 3);
    assert_eq!(daemon.wait_hups(3), 3);
    // Back to exactly the text the watcher wrote last: the operator's change, not its own
    // (the daemon loaded "c" in between).
    save_by_rename(&main, format!("b\n{MARKER}").as_str());
    h.expect(is_reloaded);
    h.quiet();
    assert_eq!(h.calls(), 4);
    assert_eq!(daemon.wait_hups(4), 4);
}

#[test]
fn editor_scratch_and_unrelated_files_are_ignored() {
    let mut s = scene(&[("main.conf", "a\n")]);
    for name in [
        ".main.conf.swp",
        "main.conf~",
        "4913",
        ".#main.conf",
        "other.txt",
    ] {
        std::fs::write(s.dir.join(name), "junk\n").unwrap();
    }
    std::fs::remove_file(s.dir.join("4913")).unwrap();
    let q = s.h.quiet();
    assert_eq!(count(&q, is_change), 0, "{q:#?}");
    assert_eq!(s.h.calls(), 1);
    assert_eq!(s.daemon.hups(), 0);
}

#[test]
fn reload_target_missing_is_logged_and_watching_goes_on() {
    let (_tmp, dir) = tempdir();
    let main = dir.join("main.conf");
    std::fs::write(&main, "a\n").unwrap();
    let out = dir.join("out.conf");
    let mut regen = CopyRegen::new(main.clone(), Target::File(out.clone()));
    regen.regenerate().unwrap();
    let pidfile = dir.join("daemon.pid");
    let mut h = Harness::start(
        regen,
        Validation::None,
        Reload::Signal {
            pidfile: pidfile.clone(),
            daemon: "keepalived".into(),
        },
        false,
    );
    // No pidfile.
    save_by_rename(&main, "b\n");
    match h.expect(|r| matches!(r, Report::ReloadFailed(_))) {
        Report::ReloadFailed(e) => assert!(e.contains("no pidfile"), "{e}"),
        _ => unreachable!(),
    }
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("b\n{MARKER}")
    );
    // A stale pidfile: pid_max is never a live pid.
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
    std::fs::write(&pidfile, pid_max).unwrap();
    save_by_rename(&main, "c\n");
    match h.expect(|r| matches!(r, Report::ReloadFailed(_))) {
        Report::ReloadFailed(e) => assert!(e.contains("is gone"), "{e}"),
        _ => unreachable!(),
    }
    // The daemon starts: the next change reloads it.
    let daemon = StandIn::start(&dir);
    save_by_rename(&main, "d\n");
    h.expect(is_reloaded);
    h.quiet();
    assert_eq!(daemon.wait_hups(1), 1);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("d\n{MARKER}")
    );
}

/// An unrelated process, killed on drop.
struct Bystander(std::process::Child);

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pidfile_holding_another_process_is_not_signalled() {
    let (_tmp, dir) = tempdir();
    let main = dir.join("main.conf");
    let out = dir.join("out.conf");
    let pidfile = dir.join("keepalived.pid");
    std::fs::write(&main, "a\n").unwrap();
    // `sleep` has no SIGHUP handler: the signal would kill it.
    let mut sleeper = Bystander(
        std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap(),
    );
    std::fs::write(&pidfile, format!("{}\n", sleeper.0.id())).unwrap();
    let regen = CopyRegen::new(main.clone(), Target::File(out.clone()));
    let mut h = Harness::start(
        regen,
        Validation::None,
        Reload::Signal {
            pidfile: pidfile.clone(),
            daemon: "keepalived".into(),
        },
        false,
    );
    // The first pass wrote the output and tried to reload.
    let e = h
        .seen
        .iter()
        .find_map(|r| match r {
            Report::ReloadFailed(e) => Some(e.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no reload failure reported: {:#?}", h.seen));
    assert!(
        e.contains(&format!("not signalling pid {}", sleeper.0.id())) && e.contains("`sleep`"),
        "{e}"
    );
    assert!(e.contains("not keepalived"), "{e}");
    // A change runs another pass: still not signalled.
    save_by_rename(&main, "b\n");
    h.expect(|r| matches!(r, Report::ReloadFailed(_)));
    h.quiet();
    assert_eq!(
        sleeper.0.try_wait().unwrap(),
        None,
        "the unrelated process was signalled"
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("b\n{MARKER}")
    );
}
