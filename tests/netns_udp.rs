//! UDP services through the VIP (`vipcheck probe --proto udp --check dns|udp|all`)
//! against real network stacks: a director and a real server in network namespaces on one
//! bridge, a real DNS server (dnsmasq, started by the test with no upstream, answering
//! from its own `--address` entries) bound to the VIP on the real server, and a small
//! UDP echo server of the test's own. A NAT (masq) real server's check goes to its own
//! address instead (`--method nat`, dnsmasq on the real server's address), also as the
//! generated ldirectord wrapper runs it. Needs root and dnsmasq; prints "skipped: ..."
//! otherwise, unless VIPCHECK_REQUIRE_PRIVILEGED=1.

mod common;

use std::net::{IpAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::netns::{privileged, run_bounded, ChildGuard, Netns};
use common::skip::tool;
use common::topo::{add_vips, drop_echo, Pair, Scenario, VIP4, VIP6};

const RS_MAC: &str = "02:00:00:00:00:0b";
/// The name dnsmasq answers, and its answers.
const NAME: &str = "www.example.test";
const ANSWER4: &str = "192.0.2.53";
const ANSWER6: &str = "2001:db8::53";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn probe(dir: &Netns, args: &[&str]) -> Run {
    let mut c = dir.command(env!("CARGO_BIN_EXE_vipcheck"));
    c.arg("probe").args(args);
    let out = run_bounded(&mut c, Duration::from_secs(20));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[track_caller]
fn assert_up(r: &Run, contains: &str) {
    assert_eq!(r.code, 0, "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("up: ") && r.stdout.contains(contains),
        "expected {contains:?} in {:?}",
        r.stdout
    );
}

#[track_caller]
fn assert_down(r: &Run, reason: &str) {
    assert_eq!(r.code, 1, "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(
        r.stderr.starts_with("down: ") && r.stderr.contains(reason),
        "expected {reason:?} in {:?}",
        r.stderr
    );
}

/// Root and dnsmasq, or a skip.
fn ready() -> bool {
    privileged("network namespaces and packet sockets") && tool("dnsmasq", "dnsmasq-base").is_some()
}

/// dnsmasq on the real server, bound to the VIPs only, no upstream, no hosts file:
/// `NAME` has an A and an AAAA record, `nx.example.test` is NXDOMAIN, anything else is
/// REFUSED. Waits (bounded) until it listens.
fn dnsmasq(rs: &Netns) -> ChildGuard {
    dnsmasq_on(rs, &[VIP4, VIP6], 53)
}

/// [`dnsmasq`] on `addrs` (one IPv4 and one IPv6 address) and `port`.
fn dnsmasq_on(rs: &Netns, addrs: &[&str; 2], port: u16) -> ChildGuard {
    let a4 = format!("--address=/{NAME}/{ANSWER4}");
    let a6 = format!("--address=/{NAME}/{ANSWER6}");
    let listen: Vec<String> = addrs
        .iter()
        .map(|a| format!("--listen-address={a}"))
        .collect();
    let port_arg = format!("--port={port}");
    let guard = rs.spawn(
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            &listen[0],
            &listen[1],
            &port_arg,
            "--pid-file=",
            "--user=root",
            "--group=root",
            &a4,
            &a6,
            "--address=/nx.example.test/",
        ],
    );
    // ss writes IPv6 addresses in their short form, as the constants are written.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let ss = rs.run("ss", &["-Hlun", "sport", "=", &format!(":{port}")]);
        if addrs.iter().all(|a| ss.contains(a)) {
            return guard;
        }
        assert!(Instant::now() < until, "dnsmasq did not start: {ss}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A real server with the VIPs on lo (no TCP listener needed).
fn good() -> Pair {
    Pair::new(RS_MAC, Scenario::NoListener, &[])
}

/// `--check dns` for `NAME` of type `ty`, expecting `expect`.
fn dns_check<'a>(ty: &'a str, expect: &'a str) -> [&'a str; 8] {
    [
        "--check",
        "dns",
        "--dns-name",
        NAME,
        "--dns-type",
        ty,
        "--dns-expect",
        expect,
    ]
}

fn dns_args<'a>(vip: &'a str, rip: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--vip",
        vip,
        "--rip",
        rip,
        "--port",
        "53",
        "--proto",
        "udp",
        "--timeout",
        "1s",
    ];
    v.extend_from_slice(extra);
    v
}

/// A Udp counter of `/proc/net/snmp` in `ns` (`NoPorts`, `InDatagrams`, ...), and the
/// ICMP `OutDestUnreachs`.
fn snmp(ns: &Netns, table: &str, field: &str) -> u64 {
    let text = ns.run("cat", &["/proc/net/snmp"]);
    let mut lines = text.lines().filter(|l| l.starts_with(&format!("{table}:")));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        panic!("no {table} in /proc/net/snmp: {text}");
    };
    let i = names
        .split_whitespace()
        .position(|n| n == field)
        .unwrap_or_else(|| panic!("no {field} in {names}"));
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

#[test]
fn dns_through_the_vip_is_up_with_the_expected_answer() {
    if !ready() {
        return;
    }
    let g = good();
    let _dns = dnsmasq(&g.rs);
    let r = probe(
        &g.dir,
        &dns_args(VIP4, "192.0.2.11", &dns_check("A", ANSWER4)),
    );
    assert_up(&r, " ms, dns ");
    assert!(r.stdout.starts_with("up: icmp "), "{}", r.stdout);
    // A wrong expectation is down, naming what came back.
    let r = probe(
        &g.dir,
        &dns_args(VIP4, "192.0.2.11", &dns_check("A", "192.0.2.54")),
    );
    assert_down(&r, "DNS answered 192.0.2.53 on udp/53, not 192.0.2.54");
    // `all` on port 53 runs the DNS check (here with the name given).
    let r = probe(
        &g.dir,
        &dns_args(VIP4, "192.0.2.11", &["--dns-name", NAME, "--dns-type", "A"]),
    );
    assert_up(&r, " ms, dns ");
    // JSON names the check.
    let r = probe(
        &g.dir,
        &dns_args(
            VIP4,
            "192.0.2.11",
            &[
                "--check",
                "dns",
                "--dns-name",
                NAME,
                "--dns-type",
                "A",
                "--json",
            ],
        ),
    );
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["up"], true, "{}", r.stdout);
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "dns" && c["port"] == 53),
        "{}",
        r.stdout
    );
}

#[test]
fn dns_over_ipv6_through_the_vip() {
    if !ready() {
        return;
    }
    let g = good();
    let _dns = dnsmasq(&g.rs);
    let r = probe(
        &g.dir,
        &dns_args(VIP6, "2001:db8::b", &dns_check("AAAA", ANSWER6)),
    );
    assert_up(&r, " ms, dns ");
}

#[test]
fn refused_and_nxdomain_are_down_by_name() {
    if !ready() {
        return;
    }
    let g = good();
    let _dns = dnsmasq(&g.rs);
    let r = probe(
        &g.dir,
        &dns_args(
            VIP4,
            "192.0.2.11",
            &[
                "--check",
                "dns",
                "--dns-name",
                "other.test",
                "--dns-type",
                "A",
            ],
        ),
    );
    assert_down(&r, "VIP 192.0.2.20: DNS answered REFUSED on udp/53");
    let r = probe(
        &g.dir,
        &dns_args(
            VIP4,
            "192.0.2.11",
            &[
                "--check",
                "dns",
                "--dns-name",
                "nx.example.test",
                "--dns-type",
                "A",
            ],
        ),
    );
    assert_down(&r, "VIP 192.0.2.20: DNS answered NXDOMAIN on udp/53");
    // keepalived's defaults (`.` SOA) to a server without the root zone: refused too.
    let r = probe(&g.dir, &dns_args(VIP4, "192.0.2.11", &["--check", "dns"]));
    assert_down(&r, "DNS answered REFUSED on udp/53");
    // The same default under `all`, chosen by the port alone: the server answered, so
    // it is up, with a warning to give a name.
    let r = probe(&g.dir, &dns_args(VIP4, "192.0.2.11", &[]));
    assert_up(
        &r,
        "(warning: DNS on udp/53 answered REFUSED to the default query (. SOA): it answers, \
         but give --dns-name to check a name it serves)",
    );
}

#[test]
fn vip_without_a_dns_server_is_port_unreachable() {
    if !ready() {
        return;
    }
    let g = good();
    let r = probe(
        &g.dir,
        &dns_args(VIP4, "192.0.2.11", &["--check", "dns", "--dns-name", NAME]),
    );
    assert_down(
        &r,
        "VIP 192.0.2.20 present, nothing listens on udp/53 (ICMP port unreachable)",
    );
    let r = probe(
        &g.dir,
        &dns_args(VIP6, "2001:db8::b", &["--check", "dns", "--dns-name", NAME]),
    );
    assert_down(&r, "VIP 2001:db8::20 present, nothing listens on udp/53");
}

#[test]
fn real_server_without_the_vip_is_no_reply() {
    if !ready() {
        return;
    }
    let g = Pair::new(RS_MAC, Scenario::NoVip, &[]);
    let _dns = dnsmasq_without_vip(&g.rs);
    let r = probe(
        &g.dir,
        &dns_args(VIP4, "192.0.2.11", &["--check", "dns", "--dns-name", NAME]),
    );
    assert_down(
        &r,
        "no reply: VIP 192.0.2.20 did not answer through 02:00:00:00:00:0b (VIP not configured?)",
    );
}

/// dnsmasq on every address of a real server that has no VIP (it answers on its own
/// address; the probe to the VIP must still not count).
fn dnsmasq_without_vip(rs: &Netns) -> ChildGuard {
    rs.spawn(
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--port=53",
            "--pid-file=",
            "--user=root",
            "--group=root",
            "--address=/www.example.test/192.0.2.53",
        ],
    )
}

#[test]
fn echo_filtered_but_dns_up_is_up() {
    if !ready() {
        return;
    }
    let g = good();
    drop_echo(&g.rs, "drop");
    let _dns = dnsmasq(&g.rs);
    let r = probe(
        &g.dir,
        &dns_args(
            VIP4,
            "192.0.2.11",
            &["--check", "dns", "--dns-name", NAME, "--dns-type", "A"],
        ),
    );
    assert_up(&r, "(icmp filtered)");
    assert!(r.stdout.starts_with("up: dns "), "{}", r.stdout);
}

#[test]
fn a_forwarder_is_down_forwarded() {
    if !ready() {
        return;
    }
    let g = Pair::new(RS_MAC, Scenario::Forwarder, &[]);
    let r = probe(
        &g.dir,
        &dns_args(VIP4, "192.0.2.11", &["--check", "dns", "--dns-name", NAME]),
    );
    assert_down(&r, "forwarded the probe for VIP 192.0.2.20");
}

#[test]
fn the_director_s_kernel_stays_quiet_holding_the_vip_or_not() {
    if !ready() {
        return;
    }
    let g = good();
    let _dns = dnsmasq(&g.rs);
    let args = dns_args(
        VIP4,
        "192.0.2.11",
        &["--check", "dns", "--dns-name", NAME, "--dns-type", "A"],
    );
    let args6 = dns_args(
        VIP6,
        "2001:db8::b",
        &["--check", "dns", "--dns-name", NAME, "--dns-type", "AAAA"],
    );
    for holding in [false, true] {
        if holding {
            add_vips(&g.dir, "lo");
        }
        let before = (
            snmp(&g.dir, "Udp", "NoPorts"),
            snmp(&g.dir, "Icmp", "OutDestUnreachs"),
        );
        assert_up(&probe(&g.dir, &args), " ms, dns ");
        assert_up(&probe(&g.dir, &args6), " ms, dns ");
        let after = (
            snmp(&g.dir, "Udp", "NoPorts"),
            snmp(&g.dir, "Icmp", "OutDestUnreachs"),
        );
        assert_eq!(
            before, after,
            "the director's kernel answered a reply with port unreachable (holding the VIP: {holding})"
        );
        let v6 = g.dir.run("cat", &["/proc/net/snmp6"]);
        for counter in ["Icmp6OutDestUnreachs", "Udp6NoPorts"] {
            let value = v6
                .lines()
                .find_map(|l| {
                    let mut w = l.split_whitespace();
                    (w.next() == Some(counter)).then(|| w.next().map(str::to_string))
                })
                .flatten();
            assert_eq!(value.as_deref(), Some("0"), "{counter}: {v6}");
        }
        // Nothing left behind: no UDP socket of ours stays open.
        let ss = g.dir.run("ss", &["-Huan"]);
        assert_eq!(ss.trim(), "", "sockets left: {ss}");
    }
}

/// A UDP server of the test's own on VIP:port in `ns`: echoes each datagram back when
/// `echo`, else swallows it. Stops when dropped.
struct UdpServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpServer {
    fn start(ns: &Netns, addr: &str, port: u16, echo: bool) -> UdpServer {
        let ip: IpAddr = addr.parse().unwrap();
        let sock = ns.in_ns(|| UdpSocket::bind((ip, port)).expect("bind the UDP server"));
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            // Bounded: at most 10 minutes even if the test never drops it.
            let until = Instant::now() + Duration::from_secs(600);
            while !flag.load(Ordering::Relaxed) && Instant::now() < until {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    if echo {
                        let _ = sock.send_to(&buf[..n], from);
                    }
                }
            }
        });
        UdpServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn udp_args<'a>(vip: &'a str, rip: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--vip",
        vip,
        "--rip",
        rip,
        "--port",
        "7",
        "--proto",
        "udp",
        "--check",
        "udp",
        "--timeout",
        "1s",
        "--udp-payload",
        "70696e67",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn generic_udp_with_payload_and_reply_length_bounds() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let g = good();
    {
        let _echo = UdpServer::start(&g.rs, VIP4, 7, true);
        assert_up(
            &probe(
                &g.dir,
                &udp_args(VIP4, "192.0.2.11", &["--udp-expect-len", "4-4"]),
            ),
            " ms, udp ",
        );
        assert_down(
            &probe(
                &g.dir,
                &udp_args(VIP4, "192.0.2.11", &["--udp-expect-len", "5-9"]),
            ),
            "VIP 192.0.2.20: udp/7 replied with 4 bytes, not 5-9",
        );
    }
    {
        let _echo6 = UdpServer::start(&g.rs, VIP6, 7, true);
        assert_up(
            &probe(
                &g.dir,
                &udp_args(VIP6, "2001:db8::b", &["--udp-expect-len", "1-512"]),
            ),
            "udp ",
        );
    }
    {
        // A service that never answers (syslog-like): up without require_reply while
        // the VIP answers echo, down when a reply is required.
        let _sink = UdpServer::start(&g.rs, VIP4, 7, false);
        assert_up(
            &probe(&g.dir, &udp_args(VIP4, "192.0.2.11", &[])),
            "(udp/7: no reply, none required)",
        );
        assert_down(
            &probe(
                &g.dir,
                &udp_args(VIP4, "192.0.2.11", &["--udp-expect-len", "1-512"]),
            ),
            "but udp on udp/7 gave no reply",
        );
    }
    // Nothing listens: port unreachable decides, reply required or not.
    assert_down(
        &probe(&g.dir, &udp_args(VIP4, "192.0.2.11", &[])),
        "VIP 192.0.2.20 present, nothing listens on udp/7",
    );
}

#[test]
fn a_udp_service_on_another_port_says_only_presence_was_checked() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let g = good();
    let r = probe(
        &g.dir,
        &[
            "--vip",
            VIP4,
            "--rip",
            "192.0.2.11",
            "--port",
            "514",
            "--proto",
            "udp",
        ],
    );
    assert_up(&r, "only the VIP's presence was checked");
}

#[test]
fn status_runs_the_config_s_dns_check_through_the_vip() {
    if !ready() {
        return;
    }
    use common::topo::Site;
    let site = Site::new(
        &[(11, Scenario::NoListener), (12, Scenario::NoListener)],
        &[],
    );
    let _dns = dnsmasq(&site.servers[0]);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("keepalived.conf");
    std::fs::write(
        &conf,
        format!(
            "virtual_server {VIP4} 53 {{\n    protocol UDP\n    lb_algo rr\n    lb_kind DR\n\
             {rs}\n}}\n",
            rs = [11, 12]
                .map(|h| format!(
                    "    real_server 192.0.2.{h} 53 {{\n        DNS_CHECK {{\n            type A\n\
                     \x20           name {NAME}\n        }}\n    }}"
                ))
                .join("\n")
        ),
    )
    .unwrap();
    let mut c = site.dir.command(env!("CARGO_BIN_EXE_vipcheck"));
    c.arg("status")
        .arg(&conf)
        .args(["--json", "--timeout", "1s"]);
    let out = run_bounded(&mut c, Duration::from_secs(20));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1), "one pair is down");
    let row = |rip: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["rip"] == rip)
            .unwrap_or_else(|| panic!("no row for {rip}: {rows}"))
            .clone()
    };
    assert_eq!(row("192.0.2.11")["up"], true, "{rows}");
    let down = row("192.0.2.12");
    assert_eq!(down["up"], false, "{rows}");
    assert!(
        down["reason"]
            .as_str()
            .unwrap()
            .contains("nothing listens on udp/53"),
        "{rows}"
    );
}

/// `--method nat` in ldirectord's form: VIP VPORT RIP RPORT, the DNS check at RIP:RPORT.
fn nat_args<'a>(vip: &'a str, rip: &'a str, rport: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--method",
        "nat",
        "--proto",
        "udp",
        "--timeout",
        "1s",
        "--check",
        "dns",
    ];
    v.extend_from_slice(extra);
    v.extend_from_slice(&[vip, "53", rip, rport]);
    v
}

/// A NAT (masq) real server holds no VIP: `--method nat` sends the DNS query to its own
/// address and port (where the director's NAT sends a client's), over a kernel socket,
/// and judges the answer as the through-VIP check does.
#[test]
fn nat_dns_goes_to_the_real_server_s_own_address() {
    if !ready() {
        return;
    }
    let g = Pair::new(RS_MAC, Scenario::NoVip, &[]);
    // `nat_args` has `--check dns` already.
    let a = |ty: &'static str, expect: &'static str| dns_check(ty, expect)[2..].to_vec();
    {
        let _dns = dnsmasq_on(&g.rs, &["192.0.2.11", "2001:db8::b"], 5353);
        let r = probe(
            &g.dir,
            &nat_args(VIP4, "192.0.2.11", "5353", &a("A", ANSWER4)),
        );
        assert_up(
            &r,
            "(NAT: checked at the real server's own address 192.0.2.11:5353)",
        );
        assert!(r.stdout.starts_with("up: dns "), "{}", r.stdout);
        let r = probe(
            &g.dir,
            &nat_args(VIP6, "2001:db8::b", "5353", &a("AAAA", ANSWER6)),
        );
        assert_up(&r, "[2001:db8::b]:5353");
        // (VIP, real server, its port, the check's options, the reason it is down.)
        let nx = ["--dns-name", "nx.example.test", "--dns-type", "A"];
        let down: [(&str, &str, &str, Vec<&str>, &str); 5] = [
            (
                VIP4,
                "192.0.2.11",
                "5353",
                a("A", "192.0.2.54"),
                "real server 192.0.2.11: DNS answered 192.0.2.53 on udp/5353, not 192.0.2.54",
            ),
            (
                VIP4,
                "192.0.2.11",
                "5353",
                vec!["--dns-name", "other.test"],
                "real server 192.0.2.11: DNS answered REFUSED on udp/5353",
            ),
            (
                VIP4,
                "192.0.2.11",
                "5353",
                nx.to_vec(),
                "real server 192.0.2.11: DNS answered NXDOMAIN on udp/5353",
            ),
            // The same server, but the check names another port: nothing listens there.
            (
                VIP4,
                "192.0.2.11",
                "5354",
                a("A", ANSWER4),
                "real server 192.0.2.11 present, nothing listens on udp/5354 (ICMP port unreachable)",
            ),
            (
                VIP6,
                "2001:db8::b",
                "5354",
                a("AAAA", ANSWER6),
                "real server 2001:db8::b present, nothing listens on udp/5354",
            ),
        ];
        for (vip, rip, port, options, reason) in &down {
            assert_down(&probe(&g.dir, &nat_args(vip, rip, port, options)), reason);
        }
    }
    // keepalived's UDP_CHECK at the real server's own address: payload and reply bounds.
    {
        let _echo = UdpServer::start(&g.rs, "192.0.2.11", 7, true);
        let udp = |len: &'static str| {
            vec![
                "--method",
                "nat",
                "--proto",
                "udp",
                "--timeout",
                "1s",
                "--check",
                "udp",
                "--udp-payload",
                "70696e67",
                "--udp-expect-len",
                len,
                VIP4,
                "7",
                "192.0.2.11",
                "7",
            ]
        };
        assert_up(&probe(&g.dir, &udp("4-4")), "udp ");
        assert_down(
            &probe(&g.dir, &udp("5-9")),
            "real server 192.0.2.11: udp/7 replied with 4 bytes, not 5-9",
        );
    }
    // A server that swallows every datagram: no reply.
    let _sink = UdpServer::start(&g.rs, "192.0.2.11", 5353, false);
    let r = probe(
        &g.dir,
        &nat_args(VIP4, "192.0.2.11", "5353", &a("A", ANSWER4)),
    );
    assert_down(
        &r,
        "no reply: real server 192.0.2.11 did not answer dns on udp/5353",
    );
}

/// The ldirectord wrapper `rewrite` writes for a DNS virtual with a masq real server,
/// run on the director as ldirectord runs it: up while the real server's DNS answers at
/// its own address, down once nothing listens there.
#[test]
fn ldirectord_wrapper_checks_a_masq_real_server_s_dns() {
    use std::collections::BTreeMap;
    use vipcheck::config::ldirectord::{self, OfflineResolver, Services};
    use vipcheck::generate::Generator;
    use vipcheck::rewrite::GenerateOptions;

    if !ready() {
        return;
    }
    let cf = format!(
        "virtual={VIP4}:53\n\treal=192.0.2.12:53 gate\n\treal=192.0.2.11:5353 masq\n\
         \tprotocol=udp\n\tchecktype=negotiate\n\tservice=dns\n\trequest=\"{NAME}\"\n\
         \treceive=\"{ANSWER4}\"\n"
    );
    let resolver = OfflineResolver {
        services: Services::parse("domain 53/udp\n"),
        ..Default::default()
    };
    let doc = ldirectord::parse_str("ldirectord.cf".into(), cf, &resolver)
        .unwrap_or_else(|d| panic!("{d}"));
    let dir = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        probe_path: env!("CARGO_BIN_EXE_vipcheck").into(),
        probe_timeout: Duration::from_secs(1),
        fwmark_vips: BTreeMap::new(),
        templates: None,
        config_id: None,
        output_dir: Some(dir.path().to_path_buf()),
        app_check: false,
        feed: vipcheck::rewrite::Feed::Probe,
    };
    let gen = Generator::new(None).unwrap();
    let plan =
        vipcheck::rewrite::ldirectord::plan(&doc, &gen, &opts).unwrap_or_else(|e| panic!("{e}"));
    let [wrapper] = plan.new_files.as_slice() else {
        panic!("one wrapper expected: {:?}", plan.new_files.len());
    };
    std::fs::write(&wrapper.path, &wrapper.contents).unwrap();
    let g = Pair::new(RS_MAC, Scenario::NoVip, &[]);
    let run = || {
        let mut c = g.dir.command("sh");
        c.arg(&wrapper.path)
            .args([VIP4, "53", "192.0.2.11", "5353"]);
        run_bounded(&mut c, Duration::from_secs(20))
    };
    {
        let _dns = dnsmasq_on(&g.rs, &["192.0.2.11", "2001:db8::b"], 5353);
        let o = run();
        assert_eq!(o.status.code(), Some(0), "{o:?}");
    }
    let o = run();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("real server 192.0.2.11 present, nothing listens on udp/5353"),
        "{stderr}"
    );
}
