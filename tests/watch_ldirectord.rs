//! The watcher next to the real ldirectord (Debian package), in debug mode with an
//! `./ipvsadm` stand-in in its working directory that records its calls (this kernel has
//! no IPVS): a real server added to the source config reaches ldirectord through the
//! regenerated file and `autoreload = yes`, both through a copying regenerator and through
//! the real ldirectord rewrite (whose generated check, with a stub probe, takes out the real
//! server without the VIP). And without autoreload, the watcher runs
//! `ldirectord OUTPUT reload`.

mod common;
mod watch_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vipcheck::watch::{Regenerate, Reload, Reloaded, Report, Validation};
use watch_support::*;

const IPVSADM: &str = r#"#!/bin/sh
echo "$*" >> "$(dirname "$0")/ipvsadm.calls"
case "$*" in
  *-L*)
    echo "IP Virtual Server version 1.2.1 (size=4096)"
    echo "Prot LocalAddress:Port Scheduler Flags"
    echo "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
    ;;
esac
exit 0
"#;

fn ldirectord_cf(dir: &Path, reals: &[&str]) -> String {
    let mut s = format!(
        "checktimeout=3\ncheckinterval=1\nautoreload=yes\nquiescent=no\nlogfile=\"{}\"\n\
         virtual=192.0.2.20:80\n",
        dir.join("ldirectord.log").display()
    );
    for r in reals {
        s.push_str(&format!("\treal={r}:80 gate\n"));
    }
    s.push_str("\tservice=http\n\tchecktype=on\n\tscheduler=rr\n\tprotocol=tcp\n");
    s
}

/// ldirectord in the foreground; stopped with SIGTERM (it then removes what it added),
/// killed if it does not stop.
struct Ldirectord(Child);

impl Drop for Ldirectord {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn calls(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("ipvsadm.calls")).unwrap_or_default()
}

fn wait_for_call(dir: &Path, part: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if calls(dir).contains(part) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn ldirectord_or_skip() -> Option<std::path::PathBuf> {
    common::tool("ldirectord", "ldirectord")
}

#[test]
fn real_server_added_to_source_reaches_ldirectord_through_autoreload() {
    let Some(program) = ldirectord_or_skip() else {
        return;
    };
    let (_tmp, dir) = tempdir();
    let ipvsadm = dir.join("ipvsadm");
    std::fs::write(&ipvsadm, IPVSADM).unwrap();
    std::fs::set_permissions(
        &ipvsadm,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let src = dir.join("ldirectord.src.cf");
    // ldirectord names its pidfile after the config: keep it unique per test process.
    let out = dir.join(format!("vipcheck-watch-{}.cf", std::process::id()));
    std::fs::write(&src, ldirectord_cf(&dir, &["192.0.2.11"])).unwrap();
    let mut regen = CopyRegen::new(src.clone(), Target::File(out.clone()));
    regen.regenerate().unwrap();
    regen.calls.store(0, Ordering::SeqCst);

    let child = Command::new(&program)
        .arg("-d")
        .arg(&out)
        .arg("start")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ld = Ldirectord(child);
    assert!(
        wait_for_call(&dir, "-r 192.0.2.11:80 -g"),
        "ldirectord did not add the first real server; ipvsadm calls:\n{}",
        calls(&dir)
    );
    assert!(!calls(&dir).contains("192.0.2.12"));

    let mut h = Harness::start(
        regen,
        Validation::None,
        Reload::Ldirectord { program },
        false,
    );
    // ldirectord's autoreload compares the file's mtime in whole seconds before looking at
    // its checksum: a change in the same second as the file it last checked goes unseen.
    // Let a second boundary pass, as an operator's edit would.
    std::thread::sleep(Duration::from_millis(1100));
    save_by_rename(&src, &ldirectord_cf(&dir, &["192.0.2.11", "192.0.2.12"]));
    assert_eq!(
        h.expect(is_reloaded),
        Report::Reloaded(Reloaded::Autoreload)
    );
    assert!(
        wait_for_call(&dir, "-a -t 192.0.2.20:80 -x 0 -y 0 -r 192.0.2.12:80 -g"),
        "ldirectord did not add the new real server; ipvsadm calls:\n{}",
        calls(&dir)
    );
}

#[test]
fn without_autoreload_the_watcher_runs_ldirectord_reload() {
    let (_tmp, dir) = tempdir();
    // A stand-in ldirectord that records its arguments.
    let program = dir.join("ldirectord");
    let record = dir.join("ldirectord.args");
    std::fs::write(
        &program,
        format!("#!/bin/sh\necho \"$*\" >> {}\n", record.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let src = dir.join("ldirectord.src.cf");
    let out = dir.join("ldirectord.cf");
    let text = ldirectord_cf(&dir, &["192.0.2.11"]).replace("autoreload=yes\n", "");
    std::fs::write(&src, &text).unwrap();
    let mut regen = CopyRegen::new(src.clone(), Target::File(out.clone()));
    regen.regenerate().unwrap();
    let mut h = Harness::start(
        regen,
        Validation::None,
        Reload::Ldirectord { program },
        false,
    );
    save_by_rename(&src, &format!("{text}\treal=192.0.2.12:80 gate\n"));
    match h.expect(is_reloaded) {
        Report::Reloaded(Reloaded::Ran { command }) => {
            assert!(
                command.ends_with(&format!("{} reload", out.display())),
                "{command}"
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    h.quiet();
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        format!("{} reload\n", out.display())
    );
}

#[test]
fn two_writes_within_a_second_give_autoreload_two_mtimes() {
    let (_tmp, dir) = tempdir();
    let src = dir.join("ldirectord.src.cf");
    let out = dir.join("ldirectord.cf");
    std::fs::write(&src, ldirectord_cf(&dir, &["192.0.2.11"])).unwrap();
    let regen = CopyRegen::new(src.clone(), Target::File(out.clone()));
    let mut h = Harness::start(
        regen,
        Validation::None,
        Reload::Ldirectord {
            program: dir.join("never-run"),
        },
        false,
    );
    let mtime = || {
        std::fs::metadata(&out)
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let mut last = mtime();
    for reals in [
        &["192.0.2.11", "192.0.2.12"][..],
        &["192.0.2.11", "192.0.2.12", "192.0.2.13"][..],
        &["192.0.2.13"][..],
    ] {
        save_by_rename(&src, &ldirectord_cf(&dir, reals));
        assert_eq!(
            h.expect(is_reloaded),
            Report::Reloaded(Reloaded::Autoreload)
        );
        let now = mtime();
        assert!(now > last, "mtime stayed at {now}");
        last = now;
    }
}

/// A stand-in for `vipcheck probe`: records its arguments, and says a real server is up
/// unless its address is listed in `down` (one per line) next to it.
const STUB_PROBE: &str = r#"#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/probe.calls"
# ... VIP VPORT RIP RPORT: the real server is the last but one argument.
n=$(($# - 1))
eval "rip=\${$n}"
while read -r down; do
    [ "$down" = "$rip" ] && exit 1
done < "$here/down"
exit 0
"#;

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

#[test]
fn real_rewrite_end_to_end_new_server_gated_by_the_probe() {
    use clap::Parser;
    use vipcheck::cli::{Cli, Command as Sub};
    use vipcheck::config::Format;
    use vipcheck::watch::RewriteRegenerator;

    let Some(program) = ldirectord_or_skip() else {
        return;
    };
    let (_tmp, dir) = tempdir();
    executable(&dir.join("ipvsadm"), IPVSADM);
    let probe = dir.join("probe");
    executable(&probe, STUB_PROBE);
    // 192.0.2.13 does not hold the VIP: its probe fails.
    std::fs::write(dir.join("down"), "192.0.2.13\n").unwrap();
    let src = dir.join(format!("vipcheck-e2e-{}.cf", std::process::id()));
    std::fs::write(&src, ldirectord_cf(&dir, &["192.0.2.11"])).unwrap();
    let out_dir = dir.join("out");
    let argv = [
        "vipcheck",
        "watch",
        src.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--probe-path",
        probe.to_str().unwrap(),
    ];
    let Sub::Watch(args) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    let mut regen = RewriteRegenerator::from_args(&args, Format::Ldirectord, &src).unwrap();
    regen.regenerate().unwrap();
    let out = regen.main_output();
    assert_eq!(out, out_dir.join(src.file_name().unwrap()));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("checktype=external"), "{text}");

    // In debug mode ldirectord logs to stderr: keep it to read its verdicts.
    let log = dir.join("ldirectord.err");
    let child = Command::new(&program)
        .arg("-d")
        .arg(&out)
        .arg("start")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _ld = Ldirectord(child);
    assert!(
        wait_for_call(&dir, "-r 192.0.2.11:80 -g"),
        "ldirectord did not add the first real server; ipvsadm calls:\n{}",
        calls(&dir)
    );

    let calls_count = Arc::new(AtomicUsize::new(0));
    let mut h = Harness::start_with(
        regen,
        src.clone(),
        calls_count,
        Validation::None,
        Reload::Ldirectord { program },
        false,
    );
    // A second boundary, for ldirectord's whole-second mtime check (see above).
    std::thread::sleep(Duration::from_millis(1100));
    save_by_rename(
        &src,
        &ldirectord_cf(&dir, &["192.0.2.11", "192.0.2.12", "192.0.2.13"]),
    );
    assert_eq!(
        h.expect(is_reloaded),
        Report::Reloaded(Reloaded::Autoreload)
    );
    assert!(
        wait_for_call(&dir, "-r 192.0.2.12:80 -g"),
        "ldirectord did not add the new real server; ipvsadm calls:\n{}",
        calls(&dir)
    );
    // ldirectord enables every real server it reads, then runs the generated check: the
    // probe fails for .13 (no VIP there), so ldirectord takes it out; .12 stays.
    let log_text =
        || String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    let start = Instant::now();
    while !log_text().contains("Deactivated service 192.0.2.13:80")
        && start.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = log_text();
    assert!(
        text.contains("Deactivated service 192.0.2.13:80"),
        "the generated check did not take 192.0.2.13 out:\n{text}"
    );
    assert!(
        !text.contains("Deactivated service 192.0.2.12:80"),
        "192.0.2.12 was taken out:\n{text}"
    );
    let probes = std::fs::read_to_string(dir.join("probe.calls")).unwrap_or_default();
    assert!(
        probes.contains("192.0.2.20 80 192.0.2.13 80"),
        "the probe never ran for 192.0.2.13:\n{probes}"
    );
}
