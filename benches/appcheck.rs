//! Benchmark (not a test): the HTTP check the generated checks run through the VIP
//! (`vipcheck probe ... --check http --http-path /index.html`, as `rewrite --app-check`
//! writes it: route and neighbour lookups, the VIP checks, the session in user space, its
//! nftables guard and its helper), against `curl` to the real server's management address
//! (what keepalived's HTTP_GET checks), in network namespaces built here.
//!
//! Like with like: both are whole processes started the same way from the same namespace,
//! both counted with every process they start (support/measure.rs: CPU summed from
//! RUSAGE_CHILDREN in a child-subreaper process once every descendant is reaped), both
//! from a cold neighbour cache and from a warm one, and the two tools take turns run by run
//! so that a busy moment of the machine hits both. Both servers are the same small HTTP
//! server (threads of this benchmark in the real server's namespace), so neither side's
//! server is slower. Every run's exit code and verdict are checked.
//!
//! Run: `cargo bench --bench appcheck` as root (or scripts/bench-appcheck.sh, which
//! measures the static build an operator installs).
//! Env: VIPCHECK_BENCH_RUNS (default 200 per tool and cache state), VIPCHECK_BENCH_BIN.

#[path = "support/cache.rs"]
mod cache;
#[path = "support/measure.rs"]
mod measure;
#[path = "../tests/common/netns.rs"]
mod netns;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cache::Cache;
use measure::{median, spread, Measured};
use netns::{privileged, Lan, Netns};

const RIP: &str = "192.0.2.11";
const RS_MAC: &str = "02:00:00:00:00:0b";
const VIP: &str = "192.0.2.20";
const LIMIT: Duration = Duration::from_secs(15);
const BODY: &str = "vipcheck bench page\n";
/// The longest the servers run, whatever happens.
const SERVE_AT_MOST: Duration = Duration::from_secs(30 * 60);

/// A minimal HTTP/1.1 server on one listener: every request gets the same page, and the
/// connection is closed after it. Stops on drop.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(listener: TcpListener) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            while !flag.load(Ordering::Relaxed) && start.elapsed() < SERVE_AT_MOST {
                let mut pfd = libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd. The timeout only bounds how late a stop is seen;
                // a connection wakes the poll at once.
                if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
                    continue;
                }
                let Ok((mut conn, _)) = listener.accept() else {
                    continue;
                };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut req = Vec::new();
                let mut buf = [0u8; 2048];
                while req.len() < 16384 && !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{BODY}",
                    BODY.len()
                );
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One run; panics (the namespaces are still removed) unless it succeeded.
fn run(dir: &Netns, program: &str, args: &[&str], verdict_up: bool) -> Measured {
    let m = measure::measure(Some(dir.name()), LIMIT, program, args);
    if !m.success() || (verdict_up && !m.stdout.starts_with("up")) {
        panic!(
            "`{program} {}` failed ({}):\n{}{}",
            args.join(" "),
            m.end_text(),
            m.stdout,
            m.stderr
        );
    }
    m
}

struct Series {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
    tree: Vec<Duration>,
    own: Vec<Duration>,
    reaped: Vec<u32>,
}

impl Series {
    fn new() -> Series {
        Series {
            wall: Vec::new(),
            cpu: Vec::new(),
            tree: Vec::new(),
            own: Vec::new(),
            reaped: Vec::new(),
        }
    }

    fn add(&mut self, m: &Measured) {
        self.wall.push(m.wall);
        self.cpu.push(m.cpu());
        self.tree.push(m.tree_wall);
        self.own.push(m.own_cpu);
        self.reaped.push(m.reaped);
    }

    fn print(&self, name: &str, command: &str) {
        let (lo, hi) = (
            self.reaped.iter().min().copied().unwrap_or(0),
            self.reaped.iter().max().copied().unwrap_or(0),
        );
        println!("  {name}");
        println!("    command (in the director's netns): {command}");
        println!(
            "    {} runs, every one exit 0: wall {}; CPU (the process and every process it \
             starts) {}",
            self.wall.len(),
            spread(&self.wall),
            spread(&self.cpu)
        );
        println!(
            "    of that CPU, the process alone (what a plain wait4 would report): {}",
            spread(&self.own)
        );
        println!(
            "    processes reaped per run: {lo}..{hi}; last of them gone after {}",
            spread(&self.tree)
        );
    }
}

fn mean(v: &[Duration]) -> f64 {
    v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len() as f64
}

fn main() {
    measure::serve_if_asked();
    if !privileged("network namespaces, packet sockets and nftables for the application check") {
        return;
    }
    let runs = measure::env_count("VIPCHECK_BENCH_RUNS", 200);
    measure::print_load("start");

    let lan = Lan::new();
    let dir = Netns::new("adir");
    lan.attach(&dir, "eth0", "02:00:00:00:00:02");
    dir.ip("addr add 192.0.2.2/24 dev eth0");
    let rs = Netns::new("ars");
    lan.attach(&rs, "eth0", RS_MAC);
    rs.arp_sysctls("eth0", "1");
    rs.ip(&format!("addr add {RIP}/24 dev eth0"));
    rs.ip(&format!("addr add {VIP}/32 dev lo"));
    let vip: IpAddr = VIP.parse().expect("address");
    let rip: IpAddr = RIP.parse().expect("address");
    let (on_vip, on_rip) = rs.in_ns(|| {
        (
            TcpListener::bind((vip, 80)).expect("listen on the VIP"),
            TcpListener::bind((rip, 8080)).expect("listen on the management address"),
        )
    });
    let _servers = (Server::start(on_vip), Server::start(on_rip));

    let exe_owned = std::env::var("VIPCHECK_BENCH_BIN").ok();
    let exe = exe_owned
        .as_deref()
        .unwrap_or(env!("CARGO_BIN_EXE_vipcheck"));
    println!("binary: {exe}");
    // What `vipcheck rewrite --app-check` writes for a keepalived real server with
    // HTTP_GET { url { path /index.html } } (src/generate.rs, ProbeCommand).
    let probe = [
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
        "--check",
        "http",
        "--http-path",
        "/index.html",
    ];
    let url = format!("http://{RIP}:8080/index.html");
    let curl = ["-sf", "--noproxy", "*", "-o", "/dev/null", url.as_str()];
    let curl_line = format!("curl -sf --noproxy '*' -o /dev/null {url}");

    for cache in [Cache::Warm, Cache::Cold] {
        for _ in 0..5 {
            cache.set(&dir, RIP, RS_MAC);
            run(&dir, exe, &probe, true);
            cache.set(&dir, RIP, RS_MAC);
            run(&dir, "curl", &curl, false);
        }
        let (mut v, mut c) = (Series::new(), Series::new());
        for _ in 0..runs {
            cache.set(&dir, RIP, RS_MAC);
            v.add(&run(&dir, exe, &probe, true));
            cache.set(&dir, RIP, RS_MAC);
            c.add(&run(&dir, "curl", &curl, false));
        }
        println!("\n{}, the two tools taking turns:", cache.label());
        v.print(
            "vipcheck probe --check http (through the VIP, helper included)",
            &format!("{exe} {}", probe.join(" ")),
        );
        c.print("curl (management address)", &curl_line);
        let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
        println!(
            "  vipcheck / curl: wall median {:.2}x, mean {:.2}x; CPU median {:.2}x \
             (target: wall within 2x)",
            r(median(v.wall.clone()), median(c.wall.clone())),
            mean(&v.wall) / mean(&c.wall),
            r(median(v.cpu.clone()), median(c.cpu.clone())),
        );
    }
    measure::print_load("end");
}
