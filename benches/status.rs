//! Benchmark (not a test): `vipcheck status` over 1,000 pairs — 100 DR real servers x 10
//! ports in network namespaces on one bridge — as a whole process: wall time, CPU and
//! peak memory (wait4 rusage), and every row of `--json` checked against the scenario
//! its real server was built in (good, no VIP, no listener, forwarder, ARP-answering).
//!
//! Run: `cargo bench --bench status` as root (or scripts/bench-status.sh).
//! Env: VIPCHECK_BENCH_RUNS (default 5), VIPCHECK_BENCH_SERVERS (default 100),
//! VIPCHECK_BENCH_PORTS (default 10), VIPCHECK_BENCH_ARGS (extra `status` arguments,
//! default "--timeout 500ms").

#[path = "../tests/common/netns.rs"]
mod netns;

use std::fs::File;
use std::net::{IpAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
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

fn env_num(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
    for scope in ["all", "eth0"] {
        ns.sysctl(&format!("net.ipv4.conf.{scope}.arp_ignore"), ignore);
        ns.sysctl(&format!("net.ipv4.conf.{scope}.arp_announce"), "2");
    }
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

struct Sample {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: i64,
    code: i32,
    stdout: String,
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Runs the binary inside the namespace behind `ns_fd` (entered between fork and exec)
/// and reaps it with wait4 for its rusage.
#[allow(clippy::zombie_processes)] // reaped with wait4, which also gives its rusage
fn measure(ns_fd: i32, args: &[String]) -> Sample {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vipcheck"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: only setns, an async-signal-safe system call, runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("run vipcheck status");
    let mut out = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data; zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; status and usage are valid for writes.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    Sample {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss,
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
        stdout: reader.join().unwrap_or_default(),
    }
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
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let runs = env_num("VIPCHECK_BENCH_RUNS", 5).max(1);
    let servers = env_num("VIPCHECK_BENCH_SERVERS", 100).clamp(1, 200);
    let nports = env_num("VIPCHECK_BENCH_PORTS", 10).clamp(1, 100);
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
    let ns_file = File::open(format!("/var/run/netns/{}", dir.name())).expect("netns file");
    let mut args = vec![
        "status".to_string(),
        conf.display().to_string(),
        "--json".to_string(),
    ];
    args.extend(extra.split_whitespace().map(str::to_string));

    let mut walls = Vec::new();
    let mut total_bad = 0;
    for run in 0..runs {
        // Every run starts cold: the director's neighbour table is flushed.
        let _ = dir.ip("neigh flush dev eth0");
        let s = measure(ns_file.as_raw_fd(), &args);
        let bad = mismatches(&s.stdout, servers, &ports);
        println!(
            "run {run}: wall {:.1} ms, CPU {:.1} ms, peak RSS {} KiB, exit {}, rows not \
             matching their scenario: {}",
            s.wall.as_secs_f64() * 1e3,
            s.cpu.as_secs_f64() * 1e3,
            s.max_rss_kib,
            s.code,
            bad.len()
        );
        for b in bad.iter().take(5) {
            println!("  {b}");
        }
        total_bad += bad.len();
        walls.push(s.wall);
    }
    walls.sort();
    let median = walls[walls.len() / 2];
    println!(
        "vipcheck status {} ({} pairs), {runs} runs: median wall {:.1} ms, max {:.1} ms; \
         mismatched rows in all runs: {total_bad}",
        extra,
        servers * nports,
        median.as_secs_f64() * 1e3,
        walls[walls.len() - 1].as_secs_f64() * 1e3,
    );
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets: wall <= 1 s {}, every verdict right {}",
        met(median <= Duration::from_secs(1)),
        met(total_bad == 0)
    );
}
