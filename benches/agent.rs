//! Benchmark (not a test): `vipcheck agent` against fork-per-check, on 1,000 pairs (100 DR
//! real servers x 10 ports in network namespaces on one bridge) at a 1 s interval.
//!
//! - The agent: `timeout -s TERM SECS vipcheck agent CONFIG --interval 1s`, measured as a
//!   whole process tree (support/measure.rs: CPU of every thread and every process,
//!   summed from RUSAGE_CHILDREN in a child-subreaper once all are reaped; peak RSS).
//!   Half-way, one real server loses its VIP; at the end every state file is checked
//!   (that server's ten pairs 1, the rest 0) and `/metrics` gives the time from a
//!   verdict change to its file's rename (`vipcheck_agent_state_write_seconds`).
//! - Fork-per-check, what keepalived's MISC_CHECK does: a driver (this binary, measured
//!   with everything it starts) runs the generated `vipcheck probe ...` command line of
//!   each pair once a second, spread over the second, for the same time; every exit code
//!   is checked (0 = up). The driver's own spawning is part of the figure, as keepalived's
//!   fork is part of its cost.
//! - The wire floor: what sending the agent's frames alone costs on this topology. A
//!   driver (this binary, measured the same way, right after the agent) sends on one
//!   packet socket on the director's eth0, per real server per second and spread over the
//!   second like the agent's turns, exactly the frames of one agent turn: an ICMP echo to
//!   the VIP, per port a SYN (TTL 1, to the real server's MAC) and the RST that closes it
//!   (seq = ISN + 1), and on every fifth turn of a server (as the agent asks a healthy
//!   one, `ARP_REASK`) a unicast ARP request for the VIP first, built with vipcheck's
//!   own wire code. It takes no frame in (its socket's filter drops everything), so what is
//!   left is the kernel's work that the sends carry in softirq context on one machine:
//!   veth, bridge, the real server's SYN-ACK and echo reply, the director's stack taking
//!   them in. The agent's figure minus this one is its own work. The director's eth0
//!   transmit counter over each run shows both sent the same frames.
//! - Two ways of sharing the kernel's work, each printed: "one machine" (as above, every
//!   host's work on a frame charged to the process that sent it) and then "separate
//!   machines": the agent and the wire floor run again pinned to core 0 (`taskset -c 0`)
//!   while the real servers' and the switch's interfaces take their frames in on core 1
//!   and the director's on core 0 (RPS, `rps_cpus`), so a real server's SYN-ACK is no
//!   longer made on the agent's time, as it is not when the real servers are other
//!   machines. Fork per check runs once, on one machine, against the agent's first run.
//!
//! Run: `cargo bench --bench agent` as root, or scripts/bench-agent.sh.
//! Env: VIPCHECK_BENCH_SECS (default 20), VIPCHECK_BENCH_SERVERS (100),
//! VIPCHECK_BENCH_PORTS (10), VIPCHECK_BENCH_BIN (the binary to measure).

#[path = "support/measure.rs"]
mod measure;
#[path = "../tests/common/netns.rs"]
mod netns;

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netns::{privileged, Lan, Netns};
use vipcheck::config::{ForwardingMethod, Protocol};
use vipcheck::generate::ProbeCommand;
use vipcheck::net::PacketSocket;
use vipcheck::probe::engine::{token_port, Entropy, OsEntropy};
use vipcheck::probe::fleet::ARP_REASK;
use vipcheck::wire::frame::{self, Probe, ProbeKind};
use vipcheck::wire::MacAddr;

const VIP: &str = "192.0.2.20";
const LISTEN: &str = "127.0.0.1:9874";
/// Every pair's interval (`delay_loop`): the drivers' pacing spreads one turn of each
/// over a second, so this is 1.
const INTERVAL_SECS: u64 = 1;
const DRIVER_ARG: &str = "--vipcheck-fork-driver";
const FLOOR_ARG: &str = "--vipcheck-wire-floor";
const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// The MAC the bench gives real server `i`: 02:00:00:01:hi:lo.
fn server_mac(i: usize) -> MacAddr {
    MacAddr([0x02, 0, 0, 0x01, (i / 256) as u8, (i % 256) as u8])
}

fn rip(i: usize) -> String {
    format!("192.0.2.{}", 30 + i)
}

struct Server {
    ns: Netns,
    _listeners: Vec<TcpListener>,
}

fn server(lan: &Lan, i: usize, ports: &[u16]) -> Server {
    let ns = Netns::new("ars");
    lan.attach(&ns, "eth0", &server_mac(i).to_string());
    ns.arp_sysctls("eth0", "1");
    ns.ip(&format!("addr add {}/24 dev eth0", rip(i)));
    ns.ip(&format!("addr add {VIP}/32 dev lo"));
    let ip: IpAddr = VIP.parse().expect("VIP");
    let listeners = ports
        .iter()
        .map(|&p| ns.in_ns(|| TcpListener::bind((ip, p)).expect("listen")))
        .collect();
    Server {
        ns,
        _listeners: listeners,
    }
}

fn config(servers: usize, ports: &[u16]) -> String {
    let mut s = String::new();
    for p in ports {
        s.push_str(&format!(
            "virtual_server {VIP} {p} {{\n    delay_loop {INTERVAL_SECS}\n    lb_kind DR\n    protocol TCP\n"
        ));
        for i in 0..servers {
            s.push_str(&format!("    real_server {} {p} {{\n    }}\n", rip(i)));
        }
        s.push_str("}\n\n");
    }
    s
}

/// The fork-per-check driver: runs each command line of the file (one per line) once a
/// second, spread over the second, for SECS seconds; prints `probes N ok M failed F late
/// L` (late: started over 100 ms behind their turn, the machine could not keep up).
fn driver(args: &[String]) -> ! {
    let (Some(file), Some(secs)) = (args.first(), args.get(1)) else {
        eprintln!("driver: FILE SECS");
        std::process::exit(3);
    };
    let lines: Vec<Vec<String>> = std::fs::read_to_string(file)
        .expect("the command file")
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    let secs: u64 = secs.parse().expect("seconds");
    let n = lines.len().max(1);
    let mut pacer = Pacer::new(n, secs);
    let mut running: Vec<Child> = Vec::new();
    let (mut probes, mut ok, mut failed) = (0u64, 0u64, 0u64);
    let reap = |running: &mut Vec<Child>, ok: &mut u64, failed: &mut u64| {
        running.retain_mut(|c| match c.try_wait() {
            Ok(Some(st)) => {
                if st.success() {
                    *ok += 1;
                } else {
                    *failed += 1;
                }
                false
            }
            Ok(None) => true,
            Err(_) => false,
        });
    };
    while let Some(k) = pacer.next() {
        let argv = &lines[(k as usize) % n];
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => running.push(c),
            Err(_) => failed += 1,
        }
        probes += 1;
        if (k + 1) % 16 == 0 {
            reap(&mut running, &mut ok, &mut failed);
        }
    }
    for mut c in running {
        match c.wait() {
            Ok(st) if st.success() => ok += 1,
            _ => failed += 1,
        }
    }
    println!(
        "probes {probes} ok {ok} failed {failed} late {}",
        pacer.late
    );
    std::process::exit(i32::from(failed > 0));
}

/// `per_second` turns a second, spread evenly over it, for `secs` seconds: the drivers'
/// common pace.
struct Pacer {
    start: Instant,
    end: Instant,
    step: Duration,
    next: u64,
    /// Turns started over 100 ms behind their time (the machine could not keep up).
    late: u64,
}

impl Pacer {
    fn new(per_second: usize, secs: u64) -> Pacer {
        let start = Instant::now();
        Pacer {
            start,
            end: start + Duration::from_secs(secs),
            step: Duration::from_secs(1) / per_second.max(1) as u32,
            next: 0,
            late: 0,
        }
    }

    /// Waits for the next turn's time and gives its number; `None` once the time is up.
    fn next(&mut self) -> Option<u64> {
        let due = self.start + self.step * self.next as u32;
        if due >= self.end || Instant::now() >= self.end {
            return None;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > Duration::from_millis(100) {
            self.late += 1;
        }
        self.next += 1;
        Some(self.next - 1)
    }
}

/// Replaces the socket's filter with one that takes no frame in: the floor reads nothing,
/// so no reply is queued to it (delivering replies to a socket is the agent's own work).
fn take_nothing(sock: &PacketSocket) -> std::io::Result<()> {
    // BPF_RET | BPF_K, 0: keep no byte of any frame.
    sock.set_filter(&[libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0,
    }])
}

/// The frames of one agent turn of real server `mac` (every check of its ports in one
/// round): a unicast ARP request for the VIP, an ICMP echo to the VIP, and per port a SYN
/// and the RST that closes it, as the agent sends it once the SYN-ACK is in (its `seq` is
/// the SYN-ACK's ack number, ISN + 1). The numbers the agent draws at random (echo
/// identifier and sequence, source port, ISN, IP identification) are drawn the same way,
/// once: the driver sends a server the same frames every turn (a RST leaves no state on
/// either side, so a tuple used again a second later meets nothing).
fn turn_frames(mac: MacAddr, vip: Ipv4Addr, ports: &[u16], rng: &mut OsEntropy) -> Vec<Vec<u8>> {
    let our_mac = MacAddr(DIRECTOR_MAC);
    let mut frames = vec![frame::arp_request_to(mac, our_mac, DIRECTOR_IP, vip)];
    let probe = |kind: ProbeKind, rng: &mut OsEntropy| {
        Probe {
            src_mac: our_mac,
            dst_mac: mac,
            tunnel: None,
            src: IpAddr::V4(DIRECTOR_IP),
            dst: IpAddr::V4(vip),
            hop_limit: 1,
            ip_ident: rng.next_u32() as u16,
            kind,
            encap: Default::default(),
        }
        .build()
        .expect("an IPv4 probe of IPv4 addresses")
    };
    let r = rng.next_u32();
    frames.push(probe(
        ProbeKind::Echo {
            ident: (r >> 16) as u16,
            seq: r as u16,
        },
        rng,
    ));
    for &port in ports {
        let src_port = token_port(rng.next_u32() as u16);
        let isn = rng.next_u32();
        let syn = ProbeKind::Syn {
            src_port,
            dst_port: port,
            seq: isn,
        };
        let rst = ProbeKind::Rst {
            src_port,
            dst_port: port,
            seq: isn.wrapping_add(1),
        };
        frames.push(probe(syn, rng));
        frames.push(probe(rst, rng));
    }
    frames
}

/// The wire-floor driver (in the director's netns): for SECS seconds, one agent turn's
/// frames per real server per second, the turns spread evenly over the second, each
/// turn in one `sendmmsg(2)`; reads nothing back. The frames are built before the clock
/// starts (the floor is the price of sending, not of framing). Prints `turns T pairs P frames F late L` (pairs:
/// pair-probes these frames stand for; late: turns started over 100 ms behind). Exits 1 on a send error, 2 when
/// the socket cannot be opened, 3 on bad arguments.
fn wire_floor(args: &[String]) -> ! {
    let parsed = (|| {
        let secs: u64 = args.first()?.parse().ok()?;
        let servers: usize = args.get(1)?.parse().ok()?;
        let ports = args
            .get(2)?
            .split(',')
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<u16>>>()?;
        let vip: Ipv4Addr = VIP.parse().ok()?;
        Some((secs, servers.max(1), ports, vip))
    })();
    let Some((secs, servers, ports, vip)) = parsed else {
        eprintln!("wire floor: SECS SERVERS PORT,PORT,...");
        std::process::exit(3);
    };
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
    let sock = match PacketSocket::open(ifindex, MacAddr(DIRECTOR_MAC), &[IpAddr::V4(DIRECTOR_IP)])
        .and_then(|s| take_nothing(&s).map(|()| s))
    {
        Ok(s) if ifindex != 0 => s,
        Ok(_) => {
            eprintln!("wire floor: no eth0 in this network namespace");
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("wire floor: packet socket on eth0: {e}");
            std::process::exit(2);
        }
    };
    let mut rng = OsEntropy;
    let built: Vec<Vec<Vec<u8>>> = (0..servers)
        .map(|i| turn_frames(server_mac(i), vip, &ports, &mut rng))
        .collect();
    let mut pacer = Pacer::new(servers, secs);
    let (mut turns, mut pairs, mut frames) = (0u64, 0u64, 0u64);
    // The agent asks a real server all up at its last turn the ARP-problem question
    // again once the last answer is ARP_REASK old: every fifth turn at 1 s.
    let arp_every = ARP_REASK.as_secs().div_ceil(INTERVAL_SECS).max(1);
    while let Some(turn) = pacer.next() {
        // A turn's frames in one sendmmsg(2): the fewest system calls they can cost (the
        // agent sends them in two or three batches, as the replies let it).
        let all = &built[(turn as usize) % servers];
        let asks = (turn / servers as u64) % arp_every == 0;
        let turn_frames = if asks { &all[..] } else { &all[1..] };
        if let Err(e) = sock.transmit_batch(turn_frames) {
            eprintln!("wire floor: send after {frames} frames: {e}");
            std::process::exit(1);
        }
        frames += turn_frames.len() as u64;
        pairs += ports.len() as u64;
        turns += 1;
    }
    println!(
        "turns {turns} pairs {pairs} frames {frames} late {}",
        pacer.late
    );
    std::process::exit(0);
}

/// The number after `key` in a driver's `key N key N ...` line.
fn count(line: &str, key: &str) -> Option<f64> {
    let mut w = line.split_whitespace();
    while let Some(k) = w.next() {
        if k == key {
            return w.next()?.parse().ok();
        }
    }
    None
}

/// Frames the director's eth0 has transmitted (the packet socket's and any the director's
/// own stack sends), from /proc/net/dev of the director's netns.
fn director_tx(dir: &Netns) -> f64 {
    let dev = dir.in_ns(|| std::fs::read_to_string("/proc/thread-self/net/dev"));
    dev.ok()
        .and_then(|text| {
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with("eth0:"))?
                .split_once(':')?
                .1
                .to_string();
            // receive: bytes packets errs drop fifo frame compressed multicast; transmit:
            // bytes packets ...
            line.split_whitespace().nth(9)?.parse().ok()
        })
        .unwrap_or(f64::NAN)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The bench's network: the director, the switch and the real servers.
struct Site {
    lan: Lan,
    dir: Netns,
    all: Vec<Server>,
    servers: usize,
    ports: Vec<u16>,
    conf: std::path::PathBuf,
    /// State directories live under it (on tmpfs, as /run/vipcheck on a systemd host).
    run: tempfile::TempDir,
    exe: String,
}

/// How the kernel's work is shared between the cores during a run.
#[derive(Clone, Copy, PartialEq)]
enum Cores {
    /// As the kernel does it with every host on one machine: the real servers' and the
    /// switch's work on a frame runs in the sender's softirq, charged to the sender.
    OneMachine,
    /// As on separate machines: the real servers and the switch take their frames in on
    /// core 1 (RPS), the director on core 0, and the measured process runs on core 0.
    Separate,
}

impl Cores {
    fn label(self) -> &'static str {
        match self {
            Cores::OneMachine => "one machine",
            Cores::Separate => "separate machines",
        }
    }

    /// `program args` as this sharing runs it (pinned to core 0 when separate).
    fn command(self, program: &str, args: &[String]) -> (String, Vec<String>) {
        match self {
            Cores::OneMachine => (program.to_string(), args.to_vec()),
            Cores::Separate => {
                let mut all = vec!["-c".to_string(), "0".to_string(), program.to_string()];
                all.extend_from_slice(args);
                ("taskset".to_string(), all)
            }
        }
    }
}

/// Steers every interface's receive work: the real servers' and the switch's ports to
/// core 1, the director's to core 0 (`rps_cpus` masks; 0 turns steering off).
fn steer(site: &Site, cores: Cores) {
    let (far, near) = match cores {
        Cores::OneMachine => ("0", "0"),
        Cores::Separate => ("2", "1"),
    };
    let set = |ns: &Netns, glob: &str, mask: &str| {
        netns::must(Command::new("ip").args([
            "netns",
            "exec",
            ns.name(),
            "sh",
            "-c",
            &format!(
                "for f in /sys/class/net/{glob}/queues/rx-*/rps_cpus; do echo {mask} > $f; done"
            ),
        ]));
    };
    for s in &site.all {
        set(&s.ns, "eth0", far);
    }
    set(site.lan.switch(), "p*", far);
    set(&site.dir, "eth0", near);
}

/// What one agent run measured.
struct AgentRun {
    pct: f64,
    /// Between the two `/metrics` reads (start-up and first verdicts behind it).
    steady_pct: f64,
    cpu: f64,
    wall: f64,
    probes: f64,
    rss_mib: f64,
    write_mean_ms: f64,
    ok: bool,
}

/// Runs the agent for `secs` + 3 s on a fresh state directory; half-way, real server 0
/// loses its VIP (it gets it back at the end). Checks every state file.
fn agent_run(site: &Site, exe: &str, secs: u64, cores: Cores) -> AgentRun {
    let state = site.run.path().join(match cores {
        Cores::OneMachine => "one",
        Cores::Separate => "separate",
    });
    let run_secs = secs + 3; // start-up and the first spread round
    let agent_args: Vec<String> = [
        "-s",
        "TERM",
        &run_secs.to_string(),
        exe,
        "agent",
        &site.conf.display().to_string(),
        "--state-dir",
        &state.display().to_string(),
        "--listen",
        LISTEN,
        "--timeout",
        "500ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (program, args) = cores.command("timeout", &agent_args);
    println!(
        "[{}] agent (in the director's netns): {program} {}",
        cores.label(),
        args.join(" ")
    );
    let dir_name = site.dir.name().to_string();
    let tx_before = director_tx(&site.dir);
    let (agent, before, metrics) = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            measure::measure(
                Some(&dir_name),
                Duration::from_secs(run_secs + 20),
                &program,
                &a,
            )
        });
        // Half-way, server 0 loses its VIP: ten verdicts change. The writes before are
        // the first verdicts (all at start); the ones after are those ten changes.
        std::thread::sleep(Duration::from_secs(run_secs / 2));
        let before = site
            .dir
            .in_ns(|| vipcheck::agent::client::get(LISTEN, "/metrics"));
        let read_before = Instant::now();
        site.all[0].ns.ip(&format!("addr del {VIP}/32 dev lo"));
        std::thread::sleep(Duration::from_secs(run_secs - run_secs / 2 - 1));
        let metrics = site
            .dir
            .in_ns(|| vipcheck::agent::client::get(LISTEN, "/metrics"));
        let between = read_before.elapsed();
        (
            h.join().expect("measure"),
            before.expect("/metrics half-way (the changes are counted from it)"),
            metrics.map(|m| (m, between)),
        )
    });
    let tx = director_tx(&site.dir) - tx_before;
    let (metrics, between) = metrics.unwrap_or_else(|e| {
        println!("cannot read /metrics: {e}");
        (String::new(), Duration::ZERO)
    });
    let mut wrong = 0;
    for p in &site.ports {
        for i in 0..site.servers {
            let name = format!("tcp_{VIP}_{p}_{}", rip(i));
            let want = if i == 0 { "1" } else { "0" };
            let got = std::fs::read_to_string(state.join(&name)).unwrap_or_default();
            if got.trim() != want {
                wrong += 1;
                if wrong <= 5 {
                    println!("  {name}: {:?}, expected {want}", got.trim());
                }
            }
        }
    }
    site.all[0].ns.ip(&format!("addr add {VIP}/32 dev lo"));
    let cpu = agent.cpu().as_secs_f64();
    let wall = agent.wall.as_secs_f64();
    let probes = metric(&metrics, "vipcheck_agent_probes_total ").unwrap_or(0.0);
    let writes = metric(&metrics, "vipcheck_agent_state_write_seconds_count").unwrap_or(0.0);
    let write_sum = metric(&metrics, "vipcheck_agent_state_write_seconds_sum").unwrap_or(0.0);
    let faults = metric(&metrics, "vipcheck_agent_probe_errors_total ").unwrap_or(-1.0);
    let over = metric(&metrics, "vipcheck_agent_schedule_overruns_total ").unwrap_or(-1.0);
    // The agent ends by SIGTERM from timeout(1): exit 124 is the expected end.
    let ok = agent.end == measure::End::Exit(124) && wrong == 0 && faults == 0.0;
    if !ok {
        let log: Vec<&str> = agent.stderr.lines().collect();
        // Its own faults first (they are why a run fails most often), then how it ended.
        let faults: Vec<&str> = log
            .iter()
            .copied()
            .filter(|l| l.contains("cannot probe"))
            .take(5)
            .collect();
        println!(
            "the agent's own faults (first five):\n{}\nthe agent's last log lines:\n{}",
            faults.join("\n"),
            log[log.len().saturating_sub(20)..].join("\n")
        );
    }
    println!(
        "[{}] agent: {} (exit 124 expected), wall {wall:.1} s, CPU {cpu:.2} s (user {:.2} s, \
         system {:.2} s) = {:.2}% of one core, peak RSS {:.1} MiB, {probes} probes ({:.0}/s), \
         overruns {over}, own faults {faults}, wrong state files {wrong}; director's eth0 sent \
         {:.0} frames/s; {} context switches, {:.1} a turn (a turn: one real server's {} \
         ports)",
        cores.label(),
        agent.end_text(),
        agent.user.as_secs_f64(),
        agent.system.as_secs_f64(),
        100.0 * cpu / wall,
        agent.max_rss_kib as f64 / 1024.0,
        probes / wall.max(1.0),
        tx / wall,
        agent.switches,
        agent.switches as f64 / (probes / site.ports.len() as f64),
        site.ports.len(),
    );
    // The agent's own count of its CPU (getrusage, every thread) at the two reads: the
    // second half of the run, with start-up and the first verdicts behind it and one
    // real server down.
    let cpu_between = metric(&metrics, "vipcheck_agent_cpu_seconds_total ").unwrap_or(f64::NAN)
        - metric(&before, "vipcheck_agent_cpu_seconds_total ").unwrap_or(f64::NAN);
    let probes_between =
        probes - metric(&before, "vipcheck_agent_probes_total ").unwrap_or(f64::NAN);
    let steady_pct = 100.0 * cpu_between / between.as_secs_f64();
    println!(
        "[{}] agent in steady state (between its two /metrics reads, {:.1} s, one real server \
         down): CPU {cpu_between:.3} s = {steady_pct:.2}% of one core, {:.0} probes/s",
        cores.label(),
        between.as_secs_f64(),
        probes_between / between.as_secs_f64()
    );
    let writes_before = metric(&before, "vipcheck_agent_state_write_seconds_count").unwrap_or(0.0);
    let sum_before = metric(&before, "vipcheck_agent_state_write_seconds_sum").unwrap_or(0.0);
    let changes = writes - writes_before;
    // One server of ten ports lost its VIP half-way: ten verdicts change, and the mean is
    // theirs alone (not the start-up burst's).
    assert_eq!(changes, 10.0, "state file writes after the VIP went");
    let write_mean_ms = 1e3 * (write_sum - sum_before) / changes;
    println!(
        "[{}] verdict change -> state file renamed (vipcheck_agent_state_write_seconds): the \
         {changes} changes after the VIP went, mean {write_mean_ms:.3} ms; all {writes} writes \
         (the first verdicts at start included) mean {:.3} ms",
        cores.label(),
        1e3 * write_sum / writes.max(1.0)
    );
    AgentRun {
        pct: 100.0 * cpu / wall,
        steady_pct,
        cpu,
        wall,
        probes,
        rss_mib: agent.max_rss_kib as f64 / 1024.0,
        write_mean_ms,
        ok,
    }
}

/// Runs the wire floor's driver for `secs` s; gives its CPU per pair-probe (seconds) and
/// prints the floor at the agent's own rate of pair-probes, so that the agent's start-up
/// second and any turn it ran late weigh the same on both sides.
fn floor_run(site: &Site, secs: u64, cores: Cores, agent: &AgentRun) -> f64 {
    let bench = std::env::current_exe().expect("own path");
    let port_list: Vec<String> = site.ports.iter().map(u16::to_string).collect();
    let floor_args = [
        FLOOR_ARG.to_string(),
        secs.to_string(),
        site.servers.to_string(),
        port_list.join(","),
    ];
    let (program, args) = cores.command(&bench.display().to_string(), &floor_args);
    println!(
        "[{}] wire floor (in the director's netns): {program} {}",
        cores.label(),
        args.join(" ")
    );
    let tx_before = director_tx(&site.dir);
    let floor = measure::measure(
        Some(site.dir.name()),
        Duration::from_secs(secs + 20),
        &program,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let tx = director_tx(&site.dir) - tx_before;
    let cpu = floor.cpu().as_secs_f64();
    let wall = floor.wall.as_secs_f64();
    let pairs = count(&floor.stdout, "pairs").unwrap_or(f64::NAN);
    let frames = count(&floor.stdout, "frames").unwrap_or(f64::NAN);
    let per_pair = cpu / pairs;
    println!(
        "[{}] wire floor: {}, wall {wall:.1} s, CPU {cpu:.2} s (user {:.2} s, system {:.2} s) = \
         {:.2}% of one core, {:.4} ms CPU per pair-probe, {:.0} frames/s ({:.0} \
         pair-probes/s); director's eth0 sent {:.0} frames/s; driver: {}",
        cores.label(),
        floor.end_text(),
        floor.user.as_secs_f64(),
        floor.system.as_secs_f64(),
        100.0 * cpu / wall,
        1e3 * per_pair,
        frames / wall,
        pairs / wall,
        tx / wall,
        floor.stdout.trim()
    );
    assert!(
        floor.success() && frames > 0.0,
        "the wire floor's driver failed ({}): {}",
        floor.end_text(),
        floor.stderr.trim()
    );
    let at_agent = 100.0 * per_pair * agent.probes / agent.wall;
    println!(
        "[{}] agent above the wire floor: {:.2}% of a core (agent {:.2}% minus the floor's \
         {at_agent:.2}% at the agent's {:.0} probes/s); the frames are {:.0}% of the agent's CPU",
        cores.label(),
        agent.pct - at_agent,
        agent.pct,
        agent.probes / agent.wall,
        100.0 * at_agent / agent.pct
    );
    at_agent
}

fn main() {
    measure::serve_if_asked();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(DRIVER_ARG) {
        driver(&args[1..]);
    }
    if args.first().map(String::as_str) == Some(FLOOR_ARG) {
        wire_floor(&args[1..]);
    }
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let secs = measure::env_count("VIPCHECK_BENCH_SECS", 20).max(5) as u64;
    let servers = measure::env_count("VIPCHECK_BENCH_SERVERS", 100).clamp(2, 200);
    let nports = measure::env_count("VIPCHECK_BENCH_PORTS", 10).clamp(1, 100);
    let ports: Vec<u16> = (0..nports).map(|p| 8000 + p as u16).collect();
    let pairs = servers * nports;

    let setup = Instant::now();
    let lan = Lan::new();
    let dir = Netns::new("adir");
    lan.attach(&dir, "eth0", "02:00:00:00:00:02");
    dir.ip("addr add 192.0.2.2/24 dev eth0");
    let all: Vec<Server> = (0..servers).map(|i| server(&lan, i, &ports)).collect();
    let tmp = tempfile::tempdir().expect("temp dir");
    let conf = tmp.path().join("keepalived.conf");
    std::fs::write(&conf, config(servers, &ports)).expect("write config");
    let exe = std::env::var("VIPCHECK_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_vipcheck").to_string());
    let site = Site {
        lan,
        dir,
        all,
        servers,
        ports,
        conf,
        run: tempfile::tempdir_in("/dev/shm").expect("a temp dir in /dev/shm"),
        exe,
    };
    println!(
        "setup: {servers} real servers x {nports} ports = {pairs} pairs in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    measure::print_load("start");

    if let Ok(builds) = std::env::var("VIPCHECK_BENCH_COMPARE") {
        compare(&site, secs, &builds);
        return;
    }

    // --- One machine: the agent, its wire floor, and fork per check.
    let one = agent_run(&site, &site.exe, secs, Cores::OneMachine);
    let one_floor = floor_run(&site, secs, Cores::OneMachine, &one);
    let (fork_pct, ratio) = fork_run(&site, secs, &one);

    // --- Separate machines: the agent and its floor again, the far side's work off core 0.
    steer(&site, Cores::Separate);
    let sep = agent_run(&site, &site.exe, secs, Cores::Separate);
    let sep_floor = floor_run(&site, secs, Cores::Separate, &sep);
    steer(&site, Cores::OneMachine);

    println!(
        "summary: {pairs} pairs at 1 s: agent in steady state {:.2}% of a core on one machine \
         ({:.2}% as on separate machines); over the whole run, start-up included, {:.2}% \
         ({:.2}%); fork-per-check {fork_pct:.1}%, {ratio:.1}x less CPU; agent peak \
         RSS {:.1} MiB; verdict->rename mean {:.3} ms; wire floor at the agent's rate {:.2}% \
         ({:.2}%), agent above it {:.2}% ({:.2}%)",
        one.steady_pct,
        sep.steady_pct,
        one.pct,
        sep.pct,
        one.rss_mib.max(sep.rss_mib),
        one.write_mean_ms,
        one_floor,
        sep_floor,
        one.pct - one_floor,
        sep.pct - sep_floor,
    );
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets: agent < 5% of a core in steady state: one machine {}, separate machines {} \
         (over the whole run: {}, {}); >= 20x less than fork-per-check {}; < 50 MiB {}; every \
         verdict right and no own fault {}",
        met(one.steady_pct < 5.0),
        met(sep.steady_pct < 5.0),
        met(one.pct < 5.0),
        met(sep.pct < 5.0),
        met(ratio >= 20.0),
        met(one.rss_mib.max(sep.rss_mib) < 50.0),
        met(one.ok && sep.ok),
    );
}

/// `VIPCHECK_BENCH_COMPARE=A:B[:...]`: the agents of several builds, as on separate
/// machines, in turn (A B A B ...) for `VIPCHECK_BENCH_ROUNDS` rounds (default 3), so that
/// the machine's drift weighs on each alike; prints each run's steady state and each
/// build's mean. Only the agents run (no floor, no fork per check).
fn compare(site: &Site, secs: u64, builds: &str) {
    let builds: Vec<&str> = builds.split(':').filter(|b| !b.is_empty()).collect();
    let rounds = measure::env_count("VIPCHECK_BENCH_ROUNDS", 3).clamp(1, 20);
    steer(site, Cores::Separate);
    let mut seen: Vec<Vec<f64>> = vec![Vec::new(); builds.len()];
    for round in 0..rounds {
        for (b, exe) in builds.iter().enumerate() {
            let run = agent_run(site, exe, secs, Cores::Separate);
            assert!(run.ok, "{exe}: a wrong state file or an own fault");
            println!(
                "compare: round {round} build {b} ({exe}): steady {:.2}%",
                run.steady_pct
            );
            seen[b].push(run.steady_pct);
        }
    }
    steer(site, Cores::OneMachine);
    for (b, exe) in builds.iter().enumerate() {
        let v = &seen[b];
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        println!(
            "compare: build {b} ({exe}): steady {mean:.2}% of a core as on separate machines \
             (mean of {} runs, {lo:.2}-{hi:.2})",
            v.len()
        );
    }
}

/// Fork per check, on one machine as the agent's first run: gives its CPU at the agent's
/// rate of probes (% of a core) and how many times the agent's that is.
fn fork_run(site: &Site, secs: u64, agent: &AgentRun) -> (f64, f64) {
    let lines: Vec<String> = (0..site.servers)
        .flat_map(|i| site.ports.iter().map(move |&p| (i, p)))
        .map(|(i, p)| {
            ProbeCommand {
                program: site.exe.clone().into(),
                vips: vec![VIP.parse().expect("VIP")],
                rip: rip(i).parse().expect("RIP"),
                port: Some(p),
                protocol: Protocol::Tcp,
                method: ForwardingMethod::DirectRouting,
                timeout: Duration::from_millis(500),
                app: None,
                tunnel: Default::default(),
                udp: None,
            }
            .command_line()
        })
        .collect();
    let cmds = site.run.path().join("commands");
    std::fs::write(&cmds, lines.join("\n")).expect("write the commands");
    println!(
        "fork per check: {} per second, e.g. {}",
        lines.len(),
        lines[1]
    );
    let bench = std::env::current_exe().expect("own path");
    let fork = measure::measure(
        Some(site.dir.name()),
        Duration::from_secs(secs + 30),
        &bench.display().to_string(),
        &[DRIVER_ARG, &cmds.display().to_string(), &secs.to_string()],
    );
    let fork_cpu = fork.cpu().as_secs_f64();
    let fork_wall = fork.wall.as_secs_f64();
    println!(
        "fork per check: {}, wall {fork_wall:.1} s, CPU {fork_cpu:.2} s = {:.1}% of one core, \
         peak RSS {:.1} MiB, {} processes reaped; driver: {}",
        fork.end_text(),
        100.0 * fork_cpu / fork_wall,
        fork.max_rss_kib as f64 / 1024.0,
        fork.reaped,
        fork.stdout.trim()
    );
    assert!(
        fork.success(),
        "a forked probe failed or the driver did: {}",
        fork.stderr.trim()
    );
    // Per probe, so a driver that fell behind (a busy machine) still compares like with
    // like: the CPU of one forked check times the checks per second the agent runs.
    let forked = count(&fork.stdout, "probes").unwrap_or(f64::NAN);
    let per_probe = fork_cpu / forked;
    println!(
        "fork per check: {:.3} ms CPU per check ({forked} checks); the agent: {:.3} ms",
        per_probe * 1e3,
        1e3 * agent.cpu / agent.probes
    );
    let fork_pct = 100.0 * per_probe * agent.probes / agent.wall;
    (fork_pct, fork_pct / agent.pct)
}
