//! Benchmark (not a test): the DNS check through the VIP as the generated checks run it
//! (`vipcheck probe ... --proto udp --check dns --dns-name www.example.test --dns-type A
//! --dns-expect 192.0.2.53`: route and neighbour lookups, the held UDP port, ICMP echo,
//! the ARP-problem check and the DNS query, in frames to the real server's MAC), against
//! `dig @RIP` to the real server's management address (the check users run today, as a
//! process of its own; keepalived's DNS_CHECK sends its query from inside its checker
//! process, with no process start at all), in network namespaces built here.
//!
//! Like with like: both are whole processes started the same way from the director's
//! namespace, both counted with every process they start (support/measure.rs), both from a
//! cold neighbour cache and from a warm one, taking turns run by run; both ask the same
//! dnsmasq (started here with no upstream, bound to the VIP and the management address)
//! the same question with one try. Every run's exit code and answer are checked.
//!
//! Run: scripts/bench-dns.sh as root. Env: VIPCHECK_BENCH_RUNS (default 100 per tool and
//! cache state), VIPCHECK_BENCH_BIN (the vipcheck binary to measure).

#[path = "support/cache.rs"]
mod cache;
#[path = "support/measure.rs"]
mod measure;
#[path = "../tests/common/netns.rs"]
mod netns;

use std::time::Duration;

use cache::Cache;
use measure::{median, spread, Measured};
use netns::{privileged, Lan, Netns};

const RIP: &str = "192.0.2.11";
const RS_MAC: &str = "02:00:00:00:00:0b";
const VIP: &str = "192.0.2.20";
const NAME: &str = "www.example.test";
const ANSWER: &str = "192.0.2.53";
const LIMIT: Duration = Duration::from_secs(15);

/// One run; panics (the namespaces are still removed) unless it succeeded with `want` in
/// its output.
fn run(dir: &Netns, program: &str, args: &[&str], want: &str) -> Measured {
    let m = measure::measure(Some(dir.name()), LIMIT, program, args);
    if !m.success() || !m.stdout.contains(want) {
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

#[derive(Default)]
struct Series {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
    own: Vec<Duration>,
}

impl Series {
    fn add(&mut self, m: &Measured) {
        self.wall.push(m.wall);
        self.cpu.push(m.cpu());
        self.own.push(m.own_cpu);
    }

    fn print(&self, name: &str, command: &str) {
        println!("  {name}");
        println!("    command (in the director's netns): {command}");
        println!(
            "    {} runs, every one exit 0 with the answer checked: wall {}; CPU (the \
             process and every process it starts) {}; the process alone {}",
            self.wall.len(),
            spread(&self.wall),
            spread(&self.cpu),
            spread(&self.own)
        );
    }
}

fn main() {
    measure::serve_if_asked();
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let runs = measure::env_count("VIPCHECK_BENCH_RUNS", 100);
    measure::print_load("start");
    let lan = Lan::new();
    let dir = Netns::new("ddir");
    lan.attach(&dir, "eth0", "02:00:00:00:00:02");
    dir.ip("addr add 192.0.2.2/24 dev eth0");
    let rs = Netns::new("drs");
    lan.attach(&rs, "eth0", RS_MAC);
    rs.arp_sysctls("eth0", "1");
    rs.ip(&format!("addr add {RIP}/24 dev eth0"));
    rs.ip(&format!("addr add {VIP}/32 dev lo"));
    let _dnsmasq = rs.spawn(
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            &format!("--listen-address={VIP}"),
            &format!("--listen-address={RIP}"),
            "--pid-file=",
            "--user=root",
            "--group=root",
            &format!("--address=/{NAME}/{ANSWER}"),
        ],
    );
    // Bounded wait until it listens on both.
    for _ in 0..100 {
        let ss = rs.run("ss", &["-Hlun", "sport", "=", ":53"]);
        if ss.contains(VIP) && ss.contains(RIP) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let exe_owned = std::env::var("VIPCHECK_BENCH_BIN").ok();
    let exe = exe_owned
        .as_deref()
        .unwrap_or(env!("CARGO_BIN_EXE_vipcheck"));
    println!("binary: {exe}");
    // What `vipcheck rewrite --app-check` writes for a real server with DNS_CHECK { type A
    // name www.example.test } (plus the expected answer, which dig's check below reads).
    let probe = [
        "probe",
        "--vip",
        VIP,
        "--rip",
        RIP,
        "--port",
        "53",
        "--proto",
        "udp",
        "--method",
        "dr",
        "--timeout",
        "2s",
        "--check",
        "dns",
        "--dns-name",
        NAME,
        "--dns-type",
        "A",
        "--dns-expect",
        ANSWER,
    ];
    let at = format!("@{RIP}");
    let dig = [at.as_str(), "+short", "+tries=1", "+time=2", NAME, "A"];

    for cache in [Cache::Warm, Cache::Cold] {
        for _ in 0..5 {
            cache.set(&dir, RIP, RS_MAC);
            run(&dir, exe, &probe, "up: ");
            cache.set(&dir, RIP, RS_MAC);
            run(&dir, "dig", &dig, ANSWER);
        }
        let (mut v, mut d) = (Series::default(), Series::default());
        for _ in 0..runs {
            cache.set(&dir, RIP, RS_MAC);
            v.add(&run(&dir, exe, &probe, "up: "));
            cache.set(&dir, RIP, RS_MAC);
            d.add(&run(&dir, "dig", &dig, ANSWER));
        }
        println!("\n{}, the two tools taking turns:", cache.label());
        v.print(
            "vipcheck probe --check dns (through the VIP: icmp, dns, arp)",
            &format!("{exe} {}", probe.join(" ")),
        );
        d.print(
            "dig (management address)",
            &format!("dig {}", dig.join(" ")),
        );
        let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
        println!(
            "  vipcheck / dig: wall median {:.2}x; CPU median {:.2}x",
            r(median(v.wall.clone()), median(d.wall.clone())),
            r(median(v.cpu.clone()), median(d.cpu.clone())),
        );
    }
    measure::print_load("end");
}
