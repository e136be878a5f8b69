//! Benchmark (not a test): `vipcheck rewrite` of a generated ldirectord.cf with 10,000
//! virtual services x 10 real servers, as a whole process (like benches/rewrite.rs for
//! keepalived): wall time, CPU and peak RSS, with the new config and its 10,000 check
//! wrappers written; and, as the reference, real ldirectord reading the same file
//! (`ldirectord -d FILE status`: it reads the whole config, then reports that no daemon
//! runs for it), exit code and output checked.
//!
//! Both run in a network namespace with nothing but loopback, so nothing either of them
//! might resolve leaves the machine. Figures are whole process trees (support/measure.rs:
//! CPU summed from RUSAGE_CHILDREN in a child-subreaper process once every descendant is
//! reaped; peak RSS is the largest of any one process).
//!
//! Run: `cargo bench --bench ldirectord` as root.
//! Env: VIPCHECK_BENCH_RUNS (default 3), VIPCHECK_BENCH_BASELINE_RUNS (default 3).

#[path = "support/measure.rs"]
mod measure;
#[path = "../tests/common/netns.rs"]
mod netns;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use measure::{median, summary};
use netns::{privileged, Netns};

const VIRTUALS: u32 = 10_000;
const REALS: u32 = 10;
const LIMIT: Duration = Duration::from_secs(600);

/// VIPs counted up inside 198.18.0.0/15 (benchmark space), reals in 192.0.2.0/24; every
/// virtual a DR HTTP service with a negotiate check.
fn config() -> String {
    let mut s = String::from("checktimeout=3\nnegotiatetimeout=10\nautoreload=no\n\n");
    for v in 0..VIRTUALS {
        let (a, b) = (v / 256, v % 256);
        let _ = writeln!(s, "virtual=198.18.{a}.{b}:80");
        for r in 0..REALS {
            let _ = writeln!(s, "\treal=192.0.2.{}:80 gate {}", 10 + r, 1 + r);
        }
        s.push_str("\tservice=http\n\trequest=\"/health\"\n\treceive=\"OK\"\n\tscheduler=wrr\n\tprotocol=tcp\n\tchecktype=negotiate\n\n");
    }
    s
}

fn main() {
    measure::serve_if_asked();
    if !privileged("a network namespace with no route out for ldirectord") {
        return;
    }
    let runs = measure::env_count("VIPCHECK_BENCH_RUNS", 3);
    let baseline_runs = measure::env_count("VIPCHECK_BENCH_BASELINE_RUNS", 3);
    measure::print_load("start");
    let text = config();
    let dir = tempfile::tempdir().expect("temp dir");
    // A name of its own: ldirectord derives its pid file's name from it.
    let path = dir
        .path()
        .join(format!("vipcheck-bench-{}.cf", std::process::id()));
    std::fs::write(&path, &text).expect("write the config");
    let path_s = path.to_str().expect("a UTF-8 temp path").to_string();
    println!(
        "ldirectord.cf: {VIRTUALS} virtuals x {REALS} reals, {} lines, {:.1} MiB",
        text.lines().count(),
        text.len() as f64 / 1048576.0
    );
    let ns = Netns::new("ldb");
    println!(
        "network namespace {}: loopback only, no route out",
        ns.name()
    );

    let vipcheck = env!("CARGO_BIN_EXE_vipcheck");
    let out_dir = dir.path().join("out");
    let out = out_dir.join("ldirectord.cf");
    let out_s = out.to_str().expect("a UTF-8 temp path").to_string();
    let args = [
        "rewrite",
        path_s.as_str(),
        "-o",
        out_s.as_str(),
        "--probe-path",
        "/usr/sbin/vipcheck",
    ];
    let mut measured = Vec::new();
    for _ in 0..runs {
        // Every run writes into an empty directory.
        let _ = std::fs::remove_dir_all(&out_dir);
        std::fs::create_dir(&out_dir).expect("output directory");
        let m = measure::measure(Some(ns.name()), LIMIT, vipcheck, &args);
        assert!(
            m.success(),
            "vipcheck rewrite failed ({}): {}{}",
            m.end_text(),
            m.stdout,
            m.stderr
        );
        measured.push(m);
    }
    let new_text = std::fs::read_to_string(&out).expect("the rewritten config");
    let external = new_text.matches("checktype=external").count();
    let wrappers = std::fs::read_dir(&out_dir)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("vipcheck-check-")
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(
        external, VIRTUALS as usize,
        "checks in the rewritten config"
    );
    assert_eq!(wrappers, VIRTUALS as usize, "check wrappers written");
    println!("\nvipcheck rewrite, whole process ({runs} runs, each into an empty directory):");
    println!(
        "  command (in the namespace): {vipcheck} {}",
        args.join(" ")
    );
    println!(
        "  every run exit 0; {external} virtuals switched to their wrapper, {wrappers} \
         wrappers written"
    );
    println!("  {}", summary(&measured));
    let vip_wall = median(measured.iter().map(|m| m.wall).collect());

    let ldirectord = "/usr/sbin/ldirectord";
    if !Path::new(ldirectord).exists() {
        println!("\nreference skipped: {ldirectord} is not installed (scripts/install-deps.sh)");
        return;
    }
    let largs = ["-d", path_s.as_str(), "status"];
    let stopped = format!("ldirectord is stopped for {path_s}");
    let mut reference = Vec::new();
    for _ in 0..baseline_runs {
        let m = measure::measure(Some(ns.name()), LIMIT, ldirectord, &largs);
        // Exit 3 (LSB "not running") with this line means it read the whole config and
        // found no daemon for it; a config error exits 2, a stale pid file 1.
        assert!(
            m.end == measure::End::Exit(3) && m.stdout.contains(&stopped) && m.killed == 0,
            "ldirectord did not read the config through ({}):\n{}{}",
            m.end_text(),
            m.stdout
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .join("\n"),
            m.stderr
        );
        reference.push(m);
    }
    println!("\nreference: ldirectord reading the same file ({baseline_runs} runs):");
    println!(
        "  command (in the namespace): {ldirectord} {}",
        largs.join(" ")
    );
    println!("  every run exit 3 with \"ldirectord is stopped for FILE\" (config read through)");
    println!("  {}", summary(&reference));
    let ld_wall = median(reference.iter().map(|m| m.wall).collect());
    println!(
        "ratio (ldirectord / vipcheck rewrite wall, medians): {:.1}x",
        ld_wall.as_secs_f64() / vip_wall.as_secs_f64()
    );
    measure::print_load("end");
}
