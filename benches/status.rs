//! Benchmark (not a test): `vipcheck status` over 1,000 pairs — 100 DR real servers x 10
//! ports in network namespaces on one bridge — as a whole process tree (support/measure.rs:
//! wall time to its exit, CPU of it and of every process it starts, summed from
//! RUSAGE_CHILDREN in a child-subreaper process once every descendant is reaped, and the
//! largest peak RSS), and every row of `--json` checked against the scenario its real
//! server was built in (good, no VIP, no listener, forwarder, ARP-answering).
//!
//! Run: `cargo bench --bench status` as root (or scripts/bench-status.sh, which measures
//! the static build an operator installs).
//! Env: VIPCHECK_BENCH_RUNS (default 5), VIPCHECK_BENCH_SERVERS (default 100),
//! VIPCHECK_BENCH_PORTS (default 10), VIPCHECK_BENCH_ARGS (extra `status` arguments,
//! default "--timeout 500ms"), VIPCHECK_BENCH_BIN (the binary to measure).

#[path = "support/measure.rs"]
mod measure;
#[path = "../tests/common/netns.rs"]
mod netns;

use std::net::{IpAddr, TcpListener};
use std::time::{Duration, Instant};

use netns::{privileged, Lan, Netns};

const VIP: &str = "192.0.2.20";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Good,
    NoVip,
    NoListener,
    Forwarder,
    ArpAnswering,
}

/// Real server `i` (0-based): one in four of every twenty is broken in one way each.
fn scenario(i: usize) -> Scenario {
    match i % 20 {
        5 => Scenario::NoVip,
        7 => Scenario::NoListener,
        9 => Scenario::Forwarder,
        11 => Scenario::ArpAnswering,
        _ => Scenario::Good,
    }
}

/// 192.0.2.(30 + i): clear of the director (.2) and the VIP (.20).
fn rip(i: usize) -> String {
    format!("192.0.2.{}", 30 + i)
}

struct Server {
    _ns: Netns,
    _listeners: Vec<TcpListener>,
}

fn server(lan: &Lan, i: usize, ports: &[u16]) -> Server {
    let ns = Netns::new("brs");
    lan.attach(
        &ns,
        "eth0",
        &format!("02:00:00:01:{:02x}:{:02x}", i / 256, i % 256),
    );
    let s = scenario(i);
    let ignore = if s == Scenario::ArpAnswering {
        "0"
    } else {
        "1"
    };
    ns.arp_sysctls("eth0", ignore);
    ns.ip(&format!("addr add {}/24 dev eth0", rip(i)));
    let mut listeners = Vec::new();
    match s {
        Scenario::NoVip => {}
        Scenario::Forwarder => {
            ns.sysctl("net.ipv4.ip_forward", "1");
            ns.ip(&format!("route add {VIP}/32 via 192.0.2.2"));
        }
        _ => {
            ns.ip(&format!("addr add {VIP}/32 dev lo"));
            if s != Scenario::NoListener {
                let ip: IpAddr = VIP.parse().expect("VIP");
                for &p in ports {
                    listeners.push(ns.in_ns(|| TcpListener::bind((ip, p)).expect("listen")));
                }
            }
        }
    }
    Server {
        _ns: ns,
        _listeners: listeners,
    }
}

fn config(servers: usize, ports: &[u16]) -> String {
    let mut s = String::new();
    for p in ports {
        s.push_str(&format!(
            "virtual_server {VIP} {p} {{\n    lb_kind DR\n    protocol TCP\n"
        ));
        for i in 0..servers {
            s.push_str(&format!(
                "    real_server {} {p} {{\n        TCP_CHECK {{\n        }}\n    }}\n",
                rip(i)
            ));
        }
        s.push_str("}\n\n");
    }
    s
}

/// Rows whose verdict or reason does not match their real server's scenario.
fn mismatches(stdout: &str, servers: usize, ports: &[u16]) -> Vec<String> {
    let Ok(serde_json::Value::Array(rows)) = serde_json::from_str(stdout) else {
        return vec![format!("not a JSON array: {stdout:.200}")];
    };
    let mut bad = Vec::new();
    if rows.len() != servers * ports.len() {
        bad.push(format!(
            "{} rows, expected {}",
            rows.len(),
            servers * ports.len()
        ));
    }
    for (n, row) in rows.iter().enumerate() {
        let (p, i) = (ports[(n / servers) % ports.len()], n % servers);
        let (up, reason) = match scenario(i) {
            Scenario::Good => (true, String::new()),
            Scenario::NoVip => (false, format!("VIP {VIP} did not answer through")),
            Scenario::NoListener => (false, format!("TCP {p} is closed (RST)")),
            Scenario::Forwarder => (false, format!("forwarded the probe for VIP {VIP}")),
            Scenario::ArpAnswering => (false, format!("answers ARP for VIP {VIP}")),
        };
        let ok = row["rip"] == rip(i).as_str()
            && row["port"] == p
            && row["up"] == up
            && row["reason"].as_str().is_some_and(|r| {
                if reason.is_empty() {
                    r.is_empty()
                } else {
                    r.contains(&reason)
                }
            });
        if !ok {
            bad.push(format!(
                "row {n} ({}:{p}, {:?}): {row}",
                rip(i),
                scenario(i)
            ));
        }
    }
    bad
}

fn main() {
    measure::serve_if_asked();
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let runs = measure::env_count("VIPCHECK_BENCH_RUNS", 5).max(1);
    let servers = measure::env_count("VIPCHECK_BENCH_SERVERS", 100).clamp(1, 200);
    let nports = measure::env_count("VIPCHECK_BENCH_PORTS", 10).clamp(1, 100);
    let extra = std::env::var("VIPCHECK_BENCH_ARGS").unwrap_or_else(|_| "--timeout 500ms".into());
    let ports: Vec<u16> = (0..nports).map(|p| 8000 + p as u16).collect();

    let setup = Instant::now();
    let lan = Lan::new();
    let dir = Netns::new("bdir");
    lan.attach(&dir, "eth0", "02:00:00:00:00:02");
    dir.ip("addr add 192.0.2.2/24 dev eth0");
    let _servers: Vec<Server> = (0..servers).map(|i| server(&lan, i, &ports)).collect();
    let tmp = tempfile::tempdir().expect("temp dir");
    let conf = tmp.path().join("keepalived.conf");
    std::fs::write(&conf, config(servers, &ports)).expect("write config");
    println!(
        "setup: {servers} real servers x {nports} ports = {} pairs in {:.1} s",
        servers * nports,
        setup.elapsed().as_secs_f64()
    );
    let exe_owned = std::env::var("VIPCHECK_BENCH_BIN").ok();
    let exe = exe_owned
        .as_deref()
        .unwrap_or(env!("CARGO_BIN_EXE_vipcheck"));
    measure::print_load("start");
    let mut args = vec![
        "status".to_string(),
        conf.display().to_string(),
        "--json".to_string(),
    ];
    args.extend(extra.split_whitespace().map(str::to_string));

    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    println!(
        "command (in the director's netns, cold neighbour cache: flushed before every run): \
         {exe} {}",
        args.join(" ")
    );
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut total_bad = 0;
    for run in 0..runs {
        // Every run starts cold: the director's neighbour table is flushed.
        let _ = dir.ip("neigh flush dev eth0");
        let s = measure::measure(Some(dir.name()), Duration::from_secs(60), exe, &args);
        let mut bad = mismatches(&s.stdout, servers, &ports);
        // Exit 0 only when every pair is up, 1 otherwise.
        let all_good = (0..servers).all(|i| scenario(i) == Scenario::Good);
        let expected = measure::End::Exit(if all_good { 0 } else { 1 });
        if s.end != expected || s.killed != 0 {
            bad.push(format!("{}, expected {expected:?}", s.end_text()));
        }
        println!(
            "run {run}: wall {:.1} ms, CPU {:.1} ms (every process), peak RSS {} KiB, {}, \
             {} process(es) reaped, rows not matching their scenario: {}",
            s.wall.as_secs_f64() * 1e3,
            s.cpu().as_secs_f64() * 1e3,
            s.max_rss_kib,
            s.end_text(),
            s.reaped,
            bad.len()
        );
        for b in bad.iter().take(5) {
            println!("  {b}");
        }
        total_bad += bad.len();
        walls.push(s.wall);
        cpus.push(s.cpu());
    }
    walls.sort();
    let median = walls[walls.len() / 2];
    println!(
        "vipcheck status {} ({} pairs), {runs} runs: median wall {:.1} ms, max {:.1} ms; \
         CPU {}; mismatched rows in all runs: {total_bad}",
        extra,
        servers * nports,
        median.as_secs_f64() * 1e3,
        walls[walls.len() - 1].as_secs_f64() * 1e3,
        measure::spread(&cpus),
    );
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets: wall <= 1 s {}, every verdict right {}",
        met(median <= Duration::from_secs(1)),
        met(total_bad == 0)
    );
}
