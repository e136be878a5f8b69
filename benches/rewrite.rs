//! Benchmark: parse + rewrite of a generated keepalived.conf with 10,000 virtual servers x
//! 10 real servers, as a whole `vipcheck rewrite` process (wall time, peak RSS), and in the
//! same run real keepalived's own `--config-test` on the same file as the reference.
//!
//! Then `vipcheck rewrite --dry-run` on a 4 MiB config: the unified diff of every check it
//! would add (built from the edits; a general line diff took 99 s on this size).
//!
//! `cargo bench --bench rewrite` (add `-- --services N --reals M` to change the size).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// Runs a command to completion; returns its wall time, peak RSS (KiB) and exit code.
fn measure(cmd: &mut Command) -> (Duration, i64, i32) {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // wait4 reports the child's own peak RSS, which std's wait does not.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(r, pid, "wait4 failed");
    std::mem::forget(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (wall, usage.ru_maxrss, code)
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let services = arg(&args, "--services", 10_000);
    let reals = arg(&args, "--reals", 10);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("keepalived.conf");
    std::fs::write(&config, generate(services, reals)).expect("write config");
    let size = std::fs::metadata(&config).map(|m| m.len()).unwrap_or(0);
    println!(
        "config: {services} virtual servers x {reals} real servers, {:.1} MiB",
        size as f64 / 1048576.0
    );

    let vipcheck = env!("CARGO_BIN_EXE_vipcheck");
    let out = dir.path().join("out.conf");
    let mut runs = Vec::new();
    for _ in 0..3 {
        let _ = std::fs::remove_file(&out);
        let (wall, rss, code) = measure(
            Command::new(vipcheck)
                .arg("rewrite")
                .arg(&config)
                .arg("-o")
                .arg(&out)
                .args(["--probe-path", "/usr/sbin/vipcheck"]),
        );
        assert_eq!(code, 0, "vipcheck rewrite failed");
        runs.push((wall, rss));
    }
    runs.sort();
    let (wall, rss) = runs[runs.len() / 2];
    let checks = std::fs::read_to_string(&out)
        .map(|t| t.matches("MISC_CHECK {").count())
        .unwrap_or(0);
    println!(
        "vipcheck rewrite:            median wall {:8.1} ms, peak RSS {:6.1} MiB ({checks} checks generated)",
        wall.as_secs_f64() * 1e3,
        rss as f64 / 1024.0
    );

    // The diff of a 4 MiB config (3,400 services x 10 real servers).
    let small = dir.path().join("keepalived-4mib.conf");
    std::fs::write(&small, generate(3_400, 10)).expect("write config");
    let small_size = std::fs::metadata(&small).map(|m| m.len()).unwrap_or(0);
    let mut runs = Vec::new();
    for _ in 0..3 {
        let (wall, rss, code) = measure(
            Command::new(vipcheck)
                .arg("rewrite")
                .arg("--dry-run")
                .arg(&small)
                .args(["--probe-path", "/usr/sbin/vipcheck"]),
        );
        // 1 = there are changes (as diff(1) says), which there are.
        assert!(
            code == 0 || code == 1,
            "vipcheck rewrite --dry-run failed ({code})"
        );
        runs.push((wall, rss));
    }
    runs.sort();
    let (wall, rss) = runs[runs.len() / 2];
    println!(
        "vipcheck rewrite --dry-run on {:.1} MiB: median wall {:8.1} ms, peak RSS {:6.1} MiB",
        small_size as f64 / 1048576.0,
        wall.as_secs_f64() * 1e3,
        rss as f64 / 1024.0
    );

    let keepalived = ["/usr/sbin/keepalived", "/sbin/keepalived"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    match keepalived {
        Some(k) => {
            let (kwall, krss, code) =
                measure(Command::new(k).arg("--config-test").arg("-f").arg(&config));
            println!(
                "keepalived --config-test:    wall        {:8.1} ms, peak RSS {:6.1} MiB (exit {code})",
                kwall.as_secs_f64() * 1e3,
                krss as f64 / 1024.0
            );
            println!(
                "ratio (keepalived / vipcheck wall): {:.1}x",
                kwall.as_secs_f64() / wall.as_secs_f64()
            );
        }
        None => println!("keepalived is not installed: no reference figure"),
    }
}
