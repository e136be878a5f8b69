//! Benchmark: parse + rewrite of a generated keepalived.conf with 10,000 virtual servers x
//! 10 real servers, as a whole `vipcheck rewrite` process (wall time, CPU, peak RSS), and in
//! the same run real keepalived's own `--config-test` on the same file as the reference,
//! its exit code checked.
//!
//! Then `vipcheck rewrite --dry-run` on a 4 MiB config: the unified diff of every check it
//! would add (built from the edits; a general line diff took 99 s on this size).
//!
//! Both run in a network namespace with nothing but loopback (nothing either might resolve
//! leaves the machine). Figures are whole process trees (support/measure.rs: CPU summed
//! from RUSAGE_CHILDREN in a child-subreaper process once every descendant is reaped;
//! peak RSS is the largest of any one process).
//!
//! `cargo bench --bench rewrite` as root (add `-- --services N --reals M` to change the
//! size; VIPCHECK_BENCH_RUNS, default 3, runs of each).

#[path = "support/measure.rs"]
mod measure;
#[path = "../tests/common/netns.rs"]
mod netns;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use measure::{median, summary};
use netns::{privileged, Netns};

const LIMIT: Duration = Duration::from_secs(300);

fn generate(services: usize, reals: usize) -> String {
    let mut s = String::with_capacity(services * reals * 120);
    s.push_str("global_defs {\n    router_id BENCH\n}\n\n");
    for i in 0..services {
        let vip = format!("192.0.2.{}", i % 250 + 1);
        let port = 1000 + i / 250;
        let _ = write!(s, "virtual_server {vip} {port} {{\n    delay_loop 6\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n\n");
        for j in 0..reals {
            let _ = write!(
                s,
                "    real_server 198.51.100.{} {port} {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 3\n        }}\n    }}\n",
                j + 1
            );
        }
        s.push_str("}\n\n");
    }
    s
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    measure::serve_if_asked();
    if !privileged("a network namespace with no route out for keepalived") {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let services = arg(&args, "--services", 10_000);
    let reals = arg(&args, "--reals", 10);
    let runs = std::env::var("VIPCHECK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(3);
    measure::print_load("start");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("keepalived.conf");
    std::fs::write(&config, generate(services, reals)).expect("write config");
    let size = std::fs::metadata(&config).map(|m| m.len()).unwrap_or(0);
    println!(
        "config: {services} virtual servers x {reals} real servers, {:.1} MiB",
        size as f64 / 1048576.0
    );
    let ns = Netns::new("kab");
    println!(
        "network namespace {}: loopback only, no route out",
        ns.name()
    );
    let config_s = config.to_str().expect("a UTF-8 temp path").to_string();

    let vipcheck = env!("CARGO_BIN_EXE_vipcheck");
    let out = dir.path().join("out.conf");
    let out_s = out.to_str().expect("a UTF-8 temp path").to_string();
    let vargs = [
        "rewrite",
        config_s.as_str(),
        "-o",
        out_s.as_str(),
        "--probe-path",
        "/usr/sbin/vipcheck",
    ];
    let mut measured = Vec::new();
    for _ in 0..runs {
        let _ = std::fs::remove_file(&out);
        let m = measure::measure(Some(ns.name()), LIMIT, vipcheck, &vargs);
        assert!(
            m.success(),
            "vipcheck rewrite failed ({}): {}{}",
            m.end_text(),
            m.stdout,
            m.stderr
        );
        measured.push(m);
    }
    let checks = std::fs::read_to_string(&out)
        .map(|t| t.matches("MISC_CHECK {").count())
        .unwrap_or(0);
    assert_eq!(
        checks,
        services * reals,
        "MISC_CHECKs in the rewritten config"
    );
    println!("\nvipcheck rewrite, whole process ({runs} runs):");
    println!(
        "  command (in the namespace): {vipcheck} {}",
        vargs.join(" ")
    );
    println!("  every run exit 0; {checks} checks generated");
    println!("  {}", summary(&measured));
    let wall = median(measured.iter().map(|m| m.wall).collect());

    // The diff of a 4 MiB config (3,400 services x 10 real servers).
    let small = dir.path().join("keepalived-4mib.conf");
    std::fs::write(&small, generate(3_400, 10)).expect("write config");
    let small_size = std::fs::metadata(&small).map(|m| m.len()).unwrap_or(0);
    let small_s = small.to_str().expect("a UTF-8 temp path").to_string();
    let dargs = [
        "rewrite",
        "--dry-run",
        small_s.as_str(),
        "--probe-path",
        "/usr/sbin/vipcheck",
    ];
    let mut dry = Vec::new();
    for _ in 0..runs {
        let m = measure::measure(Some(ns.name()), LIMIT, vipcheck, &dargs);
        // 1 = there are changes (as diff(1) says), which there are: exit 0 would be a dry
        // run that generated nothing, and is no figure.
        assert!(
            matches!(m.end, measure::End::Exit(1)) && m.killed == 0,
            "vipcheck rewrite --dry-run failed ({}): {}",
            m.end_text(),
            m.stderr
        );
        dry.push(m);
    }
    println!(
        "\nvipcheck rewrite --dry-run on {:.1} MiB, whole process ({runs} runs):",
        small_size as f64 / 1048576.0
    );
    println!(
        "  command (in the namespace): {vipcheck} {}",
        dargs.join(" ")
    );
    println!("  {}", summary(&dry));

    let Some(keepalived) = ["/usr/sbin/keepalived", "/sbin/keepalived"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        println!("\nreference skipped: keepalived is not installed (scripts/install-deps.sh)");
        return;
    };
    let kargs = ["--config-test", "-f", config_s.as_str()];
    let mut reference = Vec::new();
    for _ in 0..runs {
        let m = measure::measure(Some(ns.name()), LIMIT, keepalived, &kargs);
        assert!(
            m.success(),
            "keepalived --config-test rejected the benchmark config ({}):\n{}{}",
            m.end_text(),
            m.stdout,
            m.stderr
        );
        reference.push(m);
    }
    println!("\nreference: keepalived checking the same file ({runs} runs):");
    println!(
        "  command (in the namespace): {keepalived} {}",
        kargs.join(" ")
    );
    println!("  every run exit 0");
    println!("  {}", summary(&reference));
    let kwall = median(reference.iter().map(|m| m.wall).collect());
    println!(
        "ratio (keepalived / vipcheck rewrite wall, medians): {:.1}x",
        kwall.as_secs_f64() / wall.as_secs_f64()
    );
    measure::print_load("end");
}
