//! Benchmark (not a test): `vipcheck probe` as a whole process, ICMP + TCP against one good
//! DR real server in network namespaces, warm neighbour cache; and the original report's
//! nping recipe for the same check as the baseline. Prints medians and the ratio.
//!
//! Run: `cargo bench --bench probe` as root (or scripts/bench-probe.sh).
//! Env: VIPCHECK_BENCH_RUNS (default 50), VIPCHECK_BENCH_BASELINE_RUNS (default 5).

#[path = "../tests/common/netns.rs"]
mod netns;

use std::fs::File;
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netns::{privileged, Lan, Netns};

/// One finished process: wall time, CPU (user + system), exit status, stdout.
struct Sample {
    wall: Duration,
    cpu: Duration,
    ok: bool,
    stdout: String,
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Runs `program args` inside the namespace behind `ns_fd` (entered between fork and
/// exec, so no `ip netns exec` cost is measured) and reaps it with wait4 for its rusage.
#[allow(clippy::zombie_processes)] // reaped with wait4, which also gives its rusage
fn measure(ns_fd: i32, program: &str, args: &[&str]) -> Sample {
    let mut cmd = Command::new(program);
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
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut stdout = String::new();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let _ = out.read_to_string(&mut stdout);
        stdout
    });
    let mut status = 0;
    // SAFETY: rusage is plain data; zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; status and usage are valid for writes.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    let stdout = reader.join().unwrap_or_default();
    Sample {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stdout,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn env_runs(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// The original report's recipe: nping --arp for the MAC, `ip route get` for the
/// source, then nping ICMP and TCP with TTL 1 to the VIP through that MAC.
fn baseline(ns_fd: i32) -> Option<(Duration, Duration)> {
    let mut wall = Duration::ZERO;
    let mut cpu = Duration::ZERO;
    let arp = measure(ns_fd, "nping", &["--arp", "--count", "1", "192.0.2.11"]);
    wall += arp.wall;
    cpu += arp.cpu;
    // "RCVD (0.1s) ARP reply 192.0.2.11 is at 02:00:00:00:00:0B"
    let mac = arp
        .stdout
        .lines()
        .find(|l| l.contains("ARP reply"))?
        .rsplit(' ')
        .next()?
        .to_ascii_lowercase();
    let route = measure(ns_fd, "ip", &["route", "get", "192.0.2.11"]);
    wall += route.wall;
    cpu += route.cpu;
    let src = route
        .stdout
        .split_whitespace()
        .skip_while(|w| *w != "src")
        .nth(1)?
        .to_string();
    let common = [
        "--dest-mac",
        &mac,
        "--ttl",
        "1",
        "--source-ip",
        &src,
        "--dest-ip",
        "192.0.2.20",
        "--count",
        "1",
        "--interface",
        "eth0",
    ];
    let icmp = measure(ns_fd, "nping", &[&common[..], &["--icmp"]].concat());
    let tcp = measure(
        ns_fd,
        "nping",
        &[&common[..], &["--tcp", "-p", "80"]].concat(),
    );
    if !icmp.stdout.contains("Echo reply") || !tcp.stdout.contains("SA") {
        eprintln!(
            "baseline: nping did not see the replies:\n{}\n{}",
            icmp.stdout, tcp.stdout
        );
        return None;
    }
    wall += icmp.wall + tcp.wall;
    cpu += icmp.cpu + tcp.cpu;
    Some((wall, cpu))
}

fn main() {
    // `cargo bench` passes --bench; nothing else is read from the command line.
    if !privileged("network namespaces and packet sockets for the probe benchmark") {
        return;
    }
    let runs = env_runs("VIPCHECK_BENCH_RUNS", 50);
    let baseline_runs = env_runs("VIPCHECK_BENCH_BASELINE_RUNS", 5);

    let lan = Lan::new();
    let dir = Netns::new("dir");
    lan.attach(&dir, "eth0", "02:00:00:00:00:02");
    dir.ip("addr add 192.0.2.2/24 dev eth0");
    let rs = Netns::new("rs");
    lan.attach(&rs, "eth0", "02:00:00:00:00:0b");
    for scope in ["all", "eth0"] {
        rs.sysctl(&format!("net.ipv4.conf.{scope}.arp_ignore"), "1");
        rs.sysctl(&format!("net.ipv4.conf.{scope}.arp_announce"), "2");
    }
    rs.ip("addr add 192.0.2.11/24 dev eth0");
    rs.ip("addr add 192.0.2.20/32 dev lo");
    let vip: IpAddr = "192.0.2.20".parse().expect("address");
    let _listener = rs.in_ns(|| TcpListener::bind((vip, 80)).expect("listen on the VIP"));
    // Warm the director's neighbour cache the ordinary way: traffic to the RIP.
    dir.in_ns(|| {
        let s = UdpSocket::bind("192.0.2.2:0").expect("udp socket");
        let _ = s.send_to(b"warm", "192.0.2.11:9");
    });
    std::thread::sleep(Duration::from_millis(200));
    println!("neighbour table: {}", dir.ip("neigh show dev eth0").trim());

    let ns_file = File::open(format!("/var/run/netns/{}", dir.name())).expect("netns file");
    let ns_fd = ns_file.as_raw_fd();
    // The binary to measure: the installable static build when scripts/bench-probe.sh
    // passes it (VIPCHECK_BENCH_BIN), else the one cargo built for this bench.
    let exe_owned = std::env::var("VIPCHECK_BENCH_BIN").ok();
    let exe = exe_owned
        .as_deref()
        .unwrap_or(env!("CARGO_BIN_EXE_vipcheck"));
    println!("binary: {exe}");
    let args = [
        "probe",
        "--vip",
        "192.0.2.20",
        "--rip",
        "192.0.2.11",
        "--port",
        "80",
    ];
    for _ in 0..3 {
        let s = measure(ns_fd, exe, &args);
        assert!(s.ok, "warm-up probe was not up: {}", s.stdout);
    }
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut last = String::new();
    for _ in 0..runs {
        let s = measure(ns_fd, exe, &args);
        assert!(s.ok, "probe was not up: {}", s.stdout);
        walls.push(s.wall);
        cpus.push(s.cpu);
        last = s.stdout;
    }
    let (wall, cpu) = (median(walls), median(cpus));
    println!("vipcheck probe (ICMP + TCP), {runs} runs: median wall {:.2} ms, median CPU {:.2} ms; last verdict: {}",
        ms(wall), ms(cpu), last.trim());

    // Cold: no kernel neighbour entry, so the probe ARPs for the real server itself.
    let mut cold = Vec::new();
    for _ in 0..runs.min(20) {
        dir.ip("neigh flush dev eth0");
        let s = measure(ns_fd, exe, &args);
        assert!(s.ok, "cold probe was not up: {}", s.stdout);
        cold.push(s.wall);
    }
    println!(
        "vipcheck probe, cold neighbour cache (own ARP), {} runs: median wall {:.2} ms",
        cold.len(),
        ms(median(cold))
    );

    let nping = Command::new("nping").arg("--version").output().is_ok();
    if !nping {
        println!("baseline skipped: nping is not installed (Debian package nmap)");
        return;
    }
    let mut bw = Vec::new();
    let mut bc = Vec::new();
    for _ in 0..baseline_runs {
        match baseline(ns_fd) {
            Some((w, c)) => {
                bw.push(w);
                bc.push(c);
            }
            None => {
                println!("baseline failed: see above");
                return;
            }
        }
    }
    let (bwall, bcpu) = (median(bw), median(bc));
    println!(
        "nping recipe (arp + route get + icmp + tcp), {baseline_runs} runs: median wall {:.2} ms, median CPU {:.2} ms",
        ms(bwall),
        ms(bcpu)
    );
    println!(
        "ratio: vipcheck is {:.0}x faster (wall), {:.0}x less CPU",
        bwall.as_secs_f64() / wall.as_secs_f64(),
        bcpu.as_secs_f64() / cpu.as_secs_f64().max(1e-6)
    );
    println!(
        "targets: wall <= 5 ms {}, CPU <= 2 ms {}, >= 400x {}",
        if wall <= Duration::from_millis(5) {
            "met"
        } else {
            "MISSED"
        },
        if cpu <= Duration::from_millis(2) {
            "met"
        } else {
            "MISSED"
        },
        if bwall.as_secs_f64() / wall.as_secs_f64() >= 400.0 {
            "met"
        } else {
            "MISSED"
        }
    );
}
