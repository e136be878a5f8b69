//! Benchmark (not a test): `vipcheck probe` as the generated keepalived MISC_CHECK runs it
//! (ICMP + TCP + ARP-problem check, one good DR real server, network namespaces), against
//! the original report's nping recipe for the same check (nping --arp for the MAC, `ip
//! route get` for the source, nping ICMP and TCP with TTL 1 to the VIP through that MAC).
//!
//! Like with like: both run with a cold neighbour cache (the director's entry for the real
//! server flushed before every run) and with a warm one (a REACHABLE entry set before every
//! run); the recipe runs as fast as nping can (`--delay 0`: no sleep between or after
//! probes, nping leaves as soon as the reply is in) and as written (nping's default 1 s
//! delay), each labelled. Every figure is a whole process tree measured by
//! `support/measure.rs`: wall time to the command's exit; CPU of the command and of every
//! process it starts (the probe's socket-release helper too), summed from RUSAGE_CHILDREN
//! in a child-subreaper process once every descendant is reaped. Every command's exit code
//! and output are checked: a run that did not see the reply aborts the benchmark.
//!
//! Run: `cargo bench --bench probe` as root (or scripts/bench-probe.sh, which measures the
//! static build an operator installs).
//! Env: VIPCHECK_BENCH_RUNS (default 100), VIPCHECK_BENCH_BASELINE_RUNS (default 11),
//! VIPCHECK_BENCH_BIN (the binary to measure; default: the one cargo built).

#[path = "support/cache.rs"]
mod cache;
#[path = "support/measure.rs"]
mod measure;
#[path = "../tests/common/netns.rs"]
mod netns;

use std::net::{IpAddr, TcpListener};
use std::time::Duration;

use cache::Cache;
use measure::{median, ms, spread, Measured};
use netns::{privileged, Lan, Netns};

const RIP: &str = "192.0.2.11";
const RS_MAC: &str = "02:00:00:00:00:0b";
const VIP: &str = "192.0.2.20";
const LIMIT: Duration = Duration::from_secs(15);

/// Stops the benchmark with a message (a panic, so the namespaces are still removed): a
/// failed baseline must not pass for a fast one.
fn abort(msg: String) -> ! {
    panic!("bench probe: {msg}");
}

/// Runs one command in the director's namespace and checks that it exited 0.
fn step(dir: &Netns, program: &str, args: &[&str]) -> Measured {
    let m = measure::measure(Some(dir.name()), LIMIT, program, args);
    if !m.success() {
        abort(format!(
            "`{program} {}` failed ({}):\n{}{}",
            args.join(" "),
            m.end_text(),
            m.stdout,
            m.stderr
        ));
    }
    m
}

/// Wall and CPU of a sequence of commands, and of each.
struct Recipe {
    wall: Duration,
    cpu: Duration,
    steps: Vec<(&'static str, Measured)>,
    /// What the first two steps found: the real server's MAC and the source address.
    mac: String,
    src: String,
}

/// The original report's recipe, each output checked for the reply it is run for.
/// `fast`: `--delay 0` on every nping.
fn recipe(dir: &Netns, fast: bool) -> Recipe {
    let delay: &[&str] = if fast { &["--delay", "0"] } else { &[] };
    let arp_args = [&["--arp", "--count", "1"][..], delay, &[RIP]].concat();
    let arp = step(dir, "nping", &arp_args);
    // "RCVD (0.0718s) ARP reply 192.0.2.11 is at 02:00:00:00:00:0B"
    let mac = arp
        .stdout
        .lines()
        .filter(|l| l.starts_with("RCVD"))
        .find_map(|l| l.split_once(&format!("ARP reply {RIP} is at ")))
        .map(|(_, m)| m.trim().to_ascii_lowercase())
        .unwrap_or_else(|| abort(format!("nping --arp saw no ARP reply:\n{}", arp.stdout)));
    if mac != RS_MAC {
        abort(format!("nping --arp reported {mac}, not {RS_MAC}"));
    }
    let route = step(dir, "ip", &["route", "get", RIP]);
    let src = route
        .stdout
        .split_whitespace()
        .skip_while(|w| *w != "src")
        .nth(1)
        .unwrap_or_else(|| abort(format!("no source in `ip route get`: {}", route.stdout)))
        .to_string();
    let common = [
        "--dest-mac",
        &mac,
        "--ttl",
        "1",
        "--source-ip",
        &src,
        "--dest-ip",
        VIP,
        "--count",
        "1",
        "--interface",
        "eth0",
    ];
    let icmp = step(dir, "nping", &[&common[..], &["--icmp"], delay].concat());
    // The report's own test: "RCVD .* ICMP [192.0.2.20 > 192.0.2.2 Echo reply .*".
    let echo = format!("ICMP [{VIP} > {src} Echo reply");
    if !icmp
        .stdout
        .lines()
        .any(|l| l.starts_with("RCVD") && l.contains(&echo))
    {
        abort(format!("nping --icmp saw no echo reply:\n{}", icmp.stdout));
    }
    let tcp = step(
        dir,
        "nping",
        &[&common[..], &["--tcp", "-p", "80"], delay].concat(),
    );
    // "RCVD (1.6950s) TCP 192.0.2.20:80 > 192.0.2.2:17011 SA ttl=64 ..."
    let syn_ack = format!("TCP {VIP}:80 > {src}:");
    let got_syn_ack = tcp.stdout.lines().any(|l| {
        l.starts_with("RCVD")
            && l.split_once(&syn_ack)
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                == Some("SA")
    });
    if !got_syn_ack {
        abort(format!("nping --tcp saw no SYN-ACK:\n{}", tcp.stdout));
    }
    let steps = vec![
        ("nping --arp", arp),
        ("ip route get", route),
        ("nping --icmp", icmp),
        ("nping --tcp", tcp),
    ];
    Recipe {
        wall: steps.iter().map(|(_, m)| m.wall).sum(),
        cpu: steps.iter().map(|(_, m)| m.cpu()).sum(),
        steps,
        mac,
        src,
    }
}

/// Medians of a series of recipe runs: (wall, CPU).
fn run_recipe(dir: &Netns, fast: bool, cache: Cache, runs: usize) -> (Duration, Duration) {
    let name = if fast {
        "nping recipe, as fast as nping can (--delay 0 on every nping)"
    } else {
        "nping recipe as written (nping's default --delay 1s)"
    };
    let delay = if fast { " --delay 0" } else { "" };
    println!("\n{name}, {}:", cache.label());
    println!("  commands (in the director's netns, one after the other):");
    println!("    nping --arp --count 1{delay} {RIP}");
    println!("    ip route get {RIP}");
    for m in ["--icmp", "--tcp -p 80"] {
        println!(
            "    nping --dest-mac MAC --ttl 1 --source-ip SRC --dest-ip {VIP} --count 1 \
             --interface eth0 {m}{delay}"
        );
    }
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut per_step: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut found = String::new();
    for _ in 0..runs {
        cache.set(dir, RIP, RS_MAC);
        let r = recipe(dir, fast);
        found = format!(
            "MAC = {} (nping --arp), SRC = {} (ip route get)",
            r.mac, r.src
        );
        walls.push(r.wall);
        cpus.push(r.cpu);
        for (i, (n, m)) in r.steps.into_iter().enumerate() {
            if per_step.len() <= i {
                per_step.push((n, Vec::new()));
            }
            per_step[i].1.push(m.wall);
        }
    }
    println!("  where {found}");
    println!(
        "  {runs} runs, every exit code 0 and every reply seen: wall {}; CPU (every process \
         of every step) {}",
        spread(&walls),
        spread(&cpus)
    );
    let steps: Vec<String> = per_step
        .into_iter()
        .map(|(n, v)| format!("{n} {:.1}", ms(median(v))))
        .collect();
    println!("  median wall per step, ms: {}", steps.join(", "));
    (median(walls), median(cpus))
}

/// Medians of a series of probe runs: (wall, CPU).
fn run_probe(
    dir: &Netns,
    exe: &str,
    args: &[&str],
    cache: Cache,
    runs: usize,
) -> (Duration, Duration) {
    for _ in 0..3 {
        cache.set(dir, RIP, RS_MAC);
        let s = measure::measure(Some(dir.name()), LIMIT, exe, args);
        if !s.success() || !s.stdout.starts_with("up") {
            abort(format!(
                "warm-up probe was not up ({}): {}{}",
                s.end_text(),
                s.stdout,
                s.stderr
            ));
        }
    }
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut trees = Vec::new();
    let mut owns = Vec::new();
    let mut reaped = Vec::new();
    let mut last = String::new();
    for _ in 0..runs {
        cache.set(dir, RIP, RS_MAC);
        let s = measure::measure(Some(dir.name()), LIMIT, exe, args);
        if !s.success() || !s.stdout.starts_with("up") {
            abort(format!(
                "probe was not up ({}): {}{}",
                s.end_text(),
                s.stdout,
                s.stderr
            ));
        }
        walls.push(s.wall);
        cpus.push(s.cpu());
        trees.push(s.tree_wall);
        owns.push(s.own_cpu);
        reaped.push(s.reaped);
        last = s.stdout;
    }
    reaped.sort();
    println!("\nvipcheck probe, {}:", cache.label());
    println!(
        "  command (in the director's netns): {exe} {}",
        args.join(" ")
    );
    println!(
        "  {runs} runs, every one exit 0 and up: wall {}; CPU (the probe and every process it \
         starts) {}",
        spread(&walls),
        spread(&cpus)
    );
    println!(
        "  of that CPU, the probe process alone (what a plain wait4 would report): {}",
        spread(&owns)
    );
    println!(
        "  processes reaped per run (the probe + helpers that outlived it): {}..{}; last \
         of them gone after {}; last verdict: {}",
        reaped[0],
        reaped[reaped.len() - 1],
        spread(&trees),
        last.trim()
    );
    (median(walls), median(cpus))
}

fn main() {
    measure::serve_if_asked();
    // `cargo bench` passes --bench; nothing else is read from the command line.
    if !privileged("network namespaces and packet sockets for the probe benchmark") {
        return;
    }
    let runs = measure::env_count("VIPCHECK_BENCH_RUNS", 100);
    let baseline_runs = measure::env_count("VIPCHECK_BENCH_BASELINE_RUNS", 11);
    measure::print_load("start");

    let lan = Lan::new();
    let dir = Netns::new("dir");
    lan.attach(&dir, "eth0", "02:00:00:00:00:02");
    dir.ip("addr add 192.0.2.2/24 dev eth0");
    let rs = Netns::new("rs");
    lan.attach(&rs, "eth0", RS_MAC);
    rs.arp_sysctls("eth0", "1");
    rs.ip(&format!("addr add {RIP}/24 dev eth0"));
    rs.ip(&format!("addr add {VIP}/32 dev lo"));
    let vip: IpAddr = VIP.parse().expect("address");
    let _listener = rs.in_ns(|| TcpListener::bind((vip, 80)).expect("listen on the VIP"));

    // The binary to measure: the installable static build when scripts/bench-probe.sh
    // passes it (VIPCHECK_BENCH_BIN), else the one cargo built for this bench.
    let exe_owned = std::env::var("VIPCHECK_BENCH_BIN").ok();
    let exe = exe_owned
        .as_deref()
        .unwrap_or(env!("CARGO_BIN_EXE_vipcheck"));
    println!("binary: {exe}");
    // What the generated keepalived MISC_CHECK runs (src/generate.rs, ProbeCommand).
    let args = [
        "probe",
        "--vip",
        VIP,
        "--rip",
        RIP,
        "--port",
        "80",
        "--proto",
        "tcp",
        "--method",
        "dr",
        "--timeout",
        "2s",
    ];
    let (warm_wall, warm_cpu) = run_probe(&dir, exe, &args, Cache::Warm, runs);
    let (cold_wall, cold_cpu) = run_probe(&dir, exe, &args, Cache::Cold, runs);

    if measure::measure(None, LIMIT, "nping", &["--version"]).end != measure::End::Exit(0) {
        abort("nping is not installed (Debian package nmap; scripts/install-deps.sh)".into());
    }
    let fast_warm = run_recipe(&dir, true, Cache::Warm, baseline_runs);
    let fast_cold = run_recipe(&dir, true, Cache::Cold, baseline_runs);
    let written_warm = run_recipe(&dir, false, Cache::Warm, baseline_runs);
    let written_cold = run_recipe(&dir, false, Cache::Cold, baseline_runs);

    let ratio = |(bw, bc): (Duration, Duration), w: Duration, c: Duration| {
        format!(
            "{:.0}x the wall time, {:.0}x the CPU",
            bw.as_secs_f64() / w.as_secs_f64(),
            bc.as_secs_f64() / c.as_secs_f64().max(1e-6)
        )
    };
    println!("\nratios, median against median (the recipe takes ... of vipcheck probe):");
    println!(
        "  warm vs warm, recipe as fast as nping can: {}",
        ratio(fast_warm, warm_wall, warm_cpu)
    );
    println!(
        "  cold vs cold, recipe as fast as nping can: {}",
        ratio(fast_cold, cold_wall, cold_cpu)
    );
    println!(
        "  warm vs warm, recipe as written:           {}",
        ratio(written_warm, warm_wall, warm_cpu)
    );
    println!(
        "  cold vs cold, recipe as written:           {}",
        ratio(written_cold, cold_wall, cold_cpu)
    );
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets (warm): wall <= 5 ms {}, CPU <= 2 ms {}, >= 400x faster than the fastest \
         recipe {}",
        met(warm_wall <= Duration::from_millis(5)),
        met(warm_cpu <= Duration::from_millis(2)),
        met(fast_warm.0.as_secs_f64() / warm_wall.as_secs_f64() >= 400.0)
    );
    measure::print_load("end");
}
