//! Benchmark (not a test): how the prober reads a real server's MAC from the kernel's
//! neighbour table, on a director with many real servers. The fleet looks up every real
//! server's next hop at start and at every rebuild (30 s): by the single get
//! (`NeighbourQuery::Entry`, RTM_GETNEIGH for the address, what `rtnl::neighbor` asks
//! first) against a dump of the whole table searched in the process
//! (`NeighbourQuery::Table`, what it did before and still does where a kernel refuses
//! the get).
//!
//! Like with like: both are the same library's calls in this one process, on the same
//! thread (its own CPU, `RUSAGE_THREAD`: all the work is that thread's system calls and
//! parsing), over the same table, taking turns pass by pass; every lookup's answer is
//! checked (the entry's MAC).
//!
//! Run: `cargo bench --locked --bench neighbour` as root. Env: VIPCHECK_BENCH_ENTRIES
//! (default 1,000 entries, each looked up once a pass), VIPCHECK_BENCH_RUNS (default 3
//! passes of each).

#[path = "support/measure.rs"]
mod measure;
#[path = "../tests/common/netns.rs"]
mod netns;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use netns::{privileged, Netns};
use vipcheck::net::rtnl::{neighbor_by, NeighbourQuery};
use vipcheck::wire::MacAddr;

/// Entry `i`: its address (10.0.0.0/8, inside the benchmark's own namespace only) and MAC.
fn entry(i: u32) -> (IpAddr, MacAddr) {
    let [_, a, b, c] = i.to_be_bytes();
    let host = |n: u32| (n % 250) as u8;
    let addr = Ipv4Addr::new(10, host(i / 62_500), host(i / 250), host(i) + 1);
    (IpAddr::V4(addr), MacAddr([2, 0, 0, a, b, c]))
}

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid rusage to fill for this thread.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) };
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    t(r.ru_utime) + t(r.ru_stime)
}

fn main() {
    if !privileged("network namespaces") {
        return;
    }
    let entries = measure::env_count("VIPCHECK_BENCH_ENTRIES", 1000).clamp(1, 60_000) as u32;
    let runs = measure::env_count("VIPCHECK_BENCH_RUNS", 3).max(1);
    measure::print_load("start");
    let ns = Netns::new("nbench");
    ns.ip("link add va type veth peer name vb");
    ns.ip("link set va up");
    let batch = tempfile::NamedTempFile::new().expect("a batch file");
    let lines: String = (0..entries)
        .map(|i| {
            let (addr, mac) = entry(i);
            format!("neigh add {addr} lladdr {mac} dev va nud permanent\n")
        })
        .collect();
    std::fs::write(batch.path(), lines).expect("the batch file");
    let path = batch.path().to_str().expect("a UTF-8 path");
    ns.run("ip", &["-batch", path]);
    let ways = [
        ("single get (NeighbourQuery::Entry)", NeighbourQuery::Entry),
        ("table dump (NeighbourQuery::Table)", NeighbourQuery::Table),
    ];
    let cpu = ns.in_ns(|| {
        let va = netns::ifindex("va");
        let mut cpu = vec![Vec::new(); ways.len()];
        for _ in 0..runs {
            for (w, &(name, query)) in ways.iter().enumerate() {
                let deadline = Instant::now() + Duration::from_secs(600);
                let before = thread_cpu();
                for i in 0..entries {
                    let (addr, mac) = entry(i);
                    let got = neighbor_by(query, va, addr, deadline)
                        .unwrap_or_else(|e| panic!("{name}: {addr}: {e}"));
                    assert_eq!(got.map(|n| n.mac), Some(mac), "{name}: {addr}");
                }
                cpu[w].push(thread_cpu() - before);
            }
        }
        cpu
    });
    println!(
        "{entries} neighbour lookups among {entries} PERMANENT entries, {runs} passes each, \
         taking turns; CPU of the looking-up thread, every answer checked:"
    );
    for ((name, _), cpu) in ways.iter().zip(&cpu) {
        let ms: Vec<String> = cpu
            .iter()
            .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
            .collect();
        println!("  {name}: {} ms a pass", ms.join(", "));
    }
}
