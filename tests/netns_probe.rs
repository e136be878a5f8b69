//! `vipcheck probe` against real network stacks: a director and real servers in network
//! namespaces on one bridge (192.0.2.0/24, 2001:db8::/64), the built binary run inside
//! the director's namespace, verdict and reason asserted. Needs root; prints
//! "skipped: needs root (...)" otherwise, unless VIPCHECK_REQUIRE_PRIVILEGED=1.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{privileged, run_bounded, Forward, Lan, Netns, Relay};
use common::topo::{
    add_vips, director, drop_echo, firewall, listen, Cabled, Pair, RealServer, Scenario,
    DIRECTOR_MAC as DIR_MAC, VIP4, VIP6,
};

const RS_MAC: &str = "02:00:00:00:00:0b";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

fn probe_cmd(dir: &Netns, args: &[&str]) -> Command {
    let mut c = dir.command(env!("CARGO_BIN_EXE_vipcheck"));
    c.arg("probe").args(args);
    c
}

fn run(mut cmd: Command) -> Run {
    let start = Instant::now();
    let out = run_bounded(&mut cmd, Duration::from_secs(20));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

fn probe(dir: &Netns, args: &[&str]) -> Run {
    run(probe_cmd(dir, args))
}

fn assert_up(r: &Run) {
    assert_eq!(r.code, 0, "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("up: icmp "), "{}", r.stdout);
}

fn assert_down(r: &Run, reason: &str) {
    assert_eq!(r.code, 1, "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(
        r.stderr.starts_with("down: ") && r.stderr.contains(reason),
        "expected {reason:?} in {:?}",
        r.stderr
    );
}

/// Director + one real server with VIPs and a listener on VIP:80, v4 and v6.
fn good() -> Pair {
    Pair::new(RS_MAC, Scenario::Good, &[80])
}

const V4_ARGS: [&str; 6] = ["--vip", VIP4, "--rip", "192.0.2.11", "--port", "80"];
const V6_ARGS: [&str; 6] = ["--vip", VIP6, "--rip", "2001:db8::b", "--port", "80"];

#[test]
fn good_real_server_is_up_with_icmp_and_tcp() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let g = good();
    let r = probe(&g.dir, &V4_ARGS);
    assert_up(&r);
    assert!(r.stdout.contains(" ms, tcp "), "{}", r.stdout);
    // Twice: the second run finds the MAC in the kernel's table or ARPs again.
    assert_up(&probe(&g.dir, &V4_ARGS));
}

#[test]
fn good_real_server_is_up_in_ldirectord_convention() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let g = good();
    assert_up(&probe(
        &g.dir,
        &["--method", "dr", VIP4, "80", "192.0.2.11", "80"],
    ));
    // A UDP service without a check of its own (not DNS's port) is checked with ICMP
    // only, and the verdict says so.
    let r = probe(
        &g.dir,
        &["--proto", "udp", VIP4, "514", "192.0.2.11", "514"],
    );
    assert_up(&r);
    assert!(
        r.stdout.trim_end().ends_with(
            "(udp service: ICMP only, so only the VIP's presence was checked (--check dns|udp \
             checks the service))"
        ),
        "{}",
        r.stdout
    );
    assert_up(&probe(
        &g.dir,
        &["[2001:db8::20]", "80", "[2001:db8::b]", "80"],
    ));
}

#[test]
fn real_server_without_the_vip_is_down() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let Pair {
        dir,
        rs: _rs,
        lan: _lan,
    } = Pair::new(RS_MAC, Scenario::NoVip, &[80]);
    let r = probe(&dir, &[&V4_ARGS[..], &["--timeout", "800ms"]].concat());
    assert_down(
        &r,
        "VIP 192.0.2.20 did not answer through 02:00:00:00:00:0b (VIP not configured?)",
    );
    // Never past the budget (plus process start and netns entry).
    assert!(r.elapsed < Duration::from_millis(1800), "{:?}", r.elapsed);
}

#[test]
fn vip_without_listener_is_down_closed() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let Pair {
        dir,
        rs: _rs,
        lan: _lan,
    } = Pair::new(RS_MAC, Scenario::NoListener, &[80]);
    assert_down(
        &probe(&dir, &V4_ARGS),
        "VIP answers but TCP 80 is closed (RST)",
    );
    assert_down(
        &probe(&dir, &V6_ARGS),
        "VIP answers but TCP 80 is closed (RST)",
    );
    // ICMP alone still passes: the VIP is there.
    let r = probe(
        &dir,
        &["--vip", VIP4, "--rip", "192.0.2.11", "--check", "icmp"],
    );
    assert_up(&r);
}

#[test]
fn forwarding_real_server_without_vip_is_down_even_when_the_director_holds_the_vip() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // The original report's trap: the real server routes the VIP back to the director,
    // which holds it and would answer a probe with a normal TTL.
    let Pair {
        dir,
        rs: _rs,
        lan: _lan,
    } = Pair::new(RS_MAC, Scenario::Forwarder, &[80]);
    add_vips(&dir, "lo");
    let _dir_listeners = [listen(&dir, VIP4, 80), listen(&dir, VIP6, 80)];
    assert_down(
        &probe(&dir, &V4_ARGS),
        "192.0.2.11 forwarded the probe for VIP 192.0.2.20 instead of answering it",
    );
    assert_down(
        &probe(&dir, &V6_ARGS),
        "2001:db8::b forwarded the probe for VIP 2001:db8::20 instead of answering it",
    );
}

#[test]
fn ipv6_good_and_bad() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let g = good();
    let r = probe(&g.dir, &V6_ARGS);
    assert_up(&r);
    g.rs.ip(&format!("addr del {VIP6}/128 dev lo"));
    assert_down(
        &probe(&g.dir, &V6_ARGS),
        "VIP 2001:db8::20 did not answer through 02:00:00:00:00:0b (VIP not configured?)",
    );
}

#[test]
fn director_holding_the_vip_still_sees_the_replies() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let g = good();
    add_vips(&g.dir, "lo");
    assert_up(&probe(&g.dir, &V4_ARGS));
    assert_up(&probe(&g.dir, &V6_ARGS));
    // Two VIPs at once (direct routing keeps one address family), and the VIP on the
    // egress interface itself.
    g.rs.ip("addr add 192.0.2.21/32 dev lo");
    let _second = listen(&g.rs, "192.0.2.21", 80);
    g.dir.ip(&format!("addr del {VIP4}/32 dev lo"));
    g.dir.ip(&format!("addr add {VIP4}/32 dev eth0"));
    g.dir.ip("addr add 192.0.2.21/32 dev lo");
    let r = probe(
        &g.dir,
        &[
            "--vip",
            VIP4,
            "--vip",
            "192.0.2.21",
            "--rip",
            "192.0.2.11",
            "--port",
            "80",
        ],
    );
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("192.0.2.20 icmp"), "{}", r.stdout);
    assert!(r.stdout.contains("192.0.2.21 icmp"), "{}", r.stdout);
}

#[test]
fn missing_real_server_is_down_within_the_timeout() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let lan = Lan::new();
    let dir = director(&lan);
    let r = probe(
        &dir,
        &[
            "--vip",
            VIP4,
            "--rip",
            "192.0.2.99",
            "--port",
            "80",
            "--timeout",
            "600ms",
        ],
    );
    assert_down(&r, "no ARP reply from 192.0.2.99 on eth0");
    // The budget is the whole run; process start and netns entry get a second of slack.
    assert!(r.elapsed < Duration::from_millis(1600), "{:?}", r.elapsed);
    let r = probe(
        &dir,
        &["--vip", VIP6, "--rip", "2001:db8::99", "--timeout", "600ms"],
    );
    assert_down(&r, "no neighbour advertisement from 2001:db8::99 on eth0");
}

#[test]
fn lost_first_echo_is_up_on_retry() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let Cabled {
        rs: _rs,
        dir,
        relay: relay_ns,
        ra,
        rb,
    } = Cabled::new(RS_MAC, Scenario::NoListener, &[80]);
    let mut dropped = 0;
    let _relay = Relay::start(&relay_ns, &ra, &rb, move |f| {
        // The first ICMP echo request to the VIP is lost.
        let echo_to_vip = f.len() > 34
            && f[12..14] == [0x08, 0x00]
            && f[23] == 1
            && f[30..34] == [192, 0, 2, 20]
            && f[34] == 8;
        if echo_to_vip && dropped == 0 {
            dropped += 1;
            return true;
        }
        false
    });
    let r = probe(
        &dir,
        &[
            "--vip",
            VIP4,
            "--rip",
            "192.0.2.11",
            "--check",
            "icmp",
            "--retries",
            "2",
            "--timeout",
            "3s",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one JSON object");
    assert_eq!(v["up"], true);
    assert_eq!(v["checks"][0]["attempts"], 2, "{v}");
}

#[test]
fn json_verdict_has_up_reason_and_one_entry_per_check() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let g = good();
    let mut args = V4_ARGS.to_vec();
    args.push("--json");
    let r = probe(&g.dir, &args);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert_eq!(r.stdout.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one JSON object");
    assert_eq!(v["up"], true);
    assert_eq!(v["reason"], "");
    let checks = v["checks"].as_array().expect("checks array");
    assert_eq!(checks.len(), 3);
    assert_eq!(checks[2]["check"], "arp");
    assert_eq!(checks[2]["up"], true);
    for (c, name) in checks.iter().zip(["icmp", "tcp"]) {
        assert_eq!(c["check"], name);
        assert_eq!(c["vip"], VIP4);
        assert_eq!(c["up"], true);
        assert!(c["latency_ms"].as_f64().is_some_and(|l| l >= 0.0), "{c}");
    }
    g.rs.ip(&format!("addr del {VIP4}/32 dev lo"));
    let r = probe(&g.dir, &args);
    assert_eq!(r.code, 1);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one JSON object");
    assert_eq!(v["up"], false);
    assert!(
        v["reason"].as_str().unwrap().contains("did not answer"),
        "{v}"
    );
    assert_eq!(v["checks"][0]["up"], false);
    assert!(v["checks"][0]["latency_ms"].is_null());
}

#[test]
fn errors_exit_1_with_a_reason() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let lan = Lan::new();
    let dir = director(&lan);
    let r = probe(
        &dir,
        &["--vip", VIP4, "--rip", "192.0.2.11", "--iface", "nosuch0"],
    );
    assert_down(&r, "unknown interface nosuch0");
    let r = probe(&dir, &["--vip", VIP4, "--rip", "198.51.100.7"]);
    assert_down(&r, "no route to the real server 198.51.100.7");
    let r = probe(&dir, &["--vip", VIP4, "--rip", "192.0.2.2"]);
    assert_down(&r, "is an address of this host");
    let r = probe(&dir, &["--vip", "not-an-ip", "--rip", "192.0.2.11"]);
    assert_eq!(r.code, 1, "clap usage errors must exit 1: {}", r.stderr);
    let r = probe(
        &dir,
        &["--vip", VIP4, "--rip", "192.0.2.11", "--timeout", "soon"],
    );
    assert_down(&r, "bad arguments: --timeout \"soon\" is not a duration");
    // DR needs the real server on-link.
    dir.ip("route add 198.51.100.0/24 via 192.0.2.1");
    let r = probe(&dir, &["--vip", VIP4, "--rip", "198.51.100.7"]);
    assert_down(&r, "is not on-link from eth0 (routed via 192.0.2.1)");
    // The only source address is a VIP.
    let lan2 = Lan::new();
    let lonely = Netns::new("dir");
    lan2.attach(&lonely, "eth0", DIR_MAC);
    lonely.ip(&format!("addr add {VIP4}/24 dev eth0"));
    let r = probe(&lonely, &["--vip", VIP4, "--rip", "192.0.2.11"]);
    assert_down(&r, "eth0 has no IPv4 address other than a VIP to send from");
}

#[test]
fn without_cap_net_raw_the_error_says_how_to_grant_it() {
    if !privileged("network namespaces and dropping privileges") {
        return;
    }
    let lan = Lan::new();
    let dir = director(&lan);
    let ns_file = File::open(dir.path()).expect("netns file");
    let ns_fd = ns_file.as_raw_fd();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vipcheck"));
    cmd.args(["probe", "--vip", VIP4, "--rip", "192.0.2.11"]);
    // SAFETY: only async-signal-safe system calls run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0
                || libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let r = run(cmd);
    assert_down(
        &r,
        "cannot open a packet socket: Operation not permitted (run as root or grant it: \
         setcap cap_net_raw+ep ",
    );
}

#[test]
fn tunnel_to_a_real_server_that_cannot_decapsulate_is_down_saying_so() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // This host's kernel has no ipip / ip6_tunnel: the real server's stack answers
    // IPIP with ICMP protocol unreachable (IPv6: parameter problem, next header), exactly
    // what a real server without a tunnel device does. Tunnels that work are tested in
    // the qemu guest, whose kernel has the modules.
    let Pair {
        dir,
        rs: _rs,
        lan: _lan,
    } = Pair::new(RS_MAC, Scenario::NoListener, &[80]);
    let r = probe(
        &dir,
        &[
            "--method",
            "tun",
            "--vip",
            VIP4,
            "--rip",
            "192.0.2.11",
            "--port",
            "80",
        ],
    );
    assert_down(&r, "real server 192.0.2.11 does not decapsulate IPIP");
    let r = probe(
        &dir,
        &[
            "--method",
            "tun",
            "--vip",
            VIP6,
            "--rip",
            "2001:db8::b",
            "--port",
            "80",
        ],
    );
    assert_down(&r, "real server 2001:db8::b does not decapsulate");
}

#[test]
fn the_kernel_neighbour_table_is_used_before_arp() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let g = good();
    // A permanent entry with a MAC nobody has: the probe must go there (and fail), which
    // shows it took the MAC from the kernel's table rather than asking by ARP.
    g.dir
        .ip("neigh replace 192.0.2.11 lladdr 02:00:00:00:00:0d dev eth0 nud permanent");
    let r = probe(&g.dir, &[&V4_ARGS[..], &["--timeout", "500ms"]].concat());
    assert_down(
        &r,
        "VIP 192.0.2.20 did not answer through 02:00:00:00:00:0d (VIP not configured?)",
    );
    // With the right MAC in the table, and the egress interface named explicitly.
    g.dir
        .ip("neigh replace 192.0.2.11 lladdr 02:00:00:00:00:0b dev eth0 nud permanent");
    assert_up(&probe(
        &g.dir,
        &[&V4_ARGS[..], &["--iface", "eth0"]].concat(),
    ));
}

#[test]
fn lost_first_syn_is_up_on_retry() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let Cabled {
        rs,
        dir,
        relay: relay_ns,
        ra,
        rb,
    } = Cabled::new(RS_MAC, Scenario::NoListener, &[80]);
    let _listener = listen(&rs, VIP4, 80);
    let mut dropped = 0;
    let _relay = Relay::start(&relay_ns, &ra, &rb, move |f| {
        // The first TCP SYN to the VIP is lost.
        let syn_to_vip = f.len() > 47
            && f[12..14] == [0x08, 0x00]
            && f[23] == 6
            && f[30..34] == [192, 0, 2, 20]
            && f[47] == 0x02;
        if syn_to_vip && dropped == 0 {
            dropped += 1;
            return true;
        }
        false
    });
    let r = probe(
        &dir,
        &[
            "--vip",
            VIP4,
            "--rip",
            "192.0.2.11",
            "--port",
            "80",
            "--check",
            "tcp",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one JSON object");
    assert_eq!(v["checks"][0]["check"], "tcp");
    assert_eq!(v["checks"][0]["attempts"], 2, "{v}");
}

#[test]
fn a_vip_as_the_routes_preferred_source_is_never_used() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // The VIP is eth0's primary address, so the kernel's route to the real server
    // prefers it as the source; the probe must use the director's other address.
    let lan = Lan::new();
    let dir = Netns::new("dir");
    lan.attach(&dir, "eth0", DIR_MAC);
    dir.ip(&format!("addr add {VIP4}/24 dev eth0"));
    dir.ip("addr add 192.0.2.2/24 dev eth0");
    let route = dir.ip("route get 192.0.2.11");
    assert!(route.contains(&format!("src {VIP4}")), "{route}");
    let rs = RealServer::attach(&lan, 11, RS_MAC, Scenario::NoListener, &[80]);
    let _listener = listen(&rs, VIP4, 80);
    assert_up(&probe(&dir, &V4_ARGS));
}

#[test]
fn usage_errors_exit_1_not_clap_s_2() {
    // No root needed: these fail before any socket is opened.
    for args in [
        &["--bogus"][..],
        &["--vip", "not-an-ip", "--rip", "192.0.2.11"],
        &["--vip", VIP4, "--rip", "192.0.2.11", "--proto", "sctp"],
        &["--vip", VIP4, "--rip", "192.0.2.11", "--retries", "-1"],
        &[VIP4, "80", "192.0.2.11"],
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vipcheck"));
        cmd.arg("probe").args(args);
        let r = run(cmd);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.is_empty(), "{args:?} printed no reason");
    }
    let mut help = Command::new(env!("CARGO_BIN_EXE_vipcheck"));
    help.args(["probe", "--help"]);
    assert_eq!(run(help).code, 0);
}

/// The reason an IPv4 ARP answer gives, as the issue words it.
const ARP_REASON: &str = "answers ARP for VIP 192.0.2.20: it can take VIP traffic away from \
    the director (set arp_ignore=1, arp_announce=2 or put the VIP on lo)";

fn assert_arp_ok(r: &Run) {
    assert_up(r);
    assert!(r.stdout.trim_end().ends_with(", arp ok"), "{}", r.stdout);
}

#[test]
fn correct_dr_real_server_passes_the_arp_check() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // VIP on lo, arp_ignore=1, arp_announce=2: silent for the VIP on eth0.
    let g = good();
    assert_arp_ok(&probe(&g.dir, &V4_ARGS));
    // IPv6: the VIP on lo (nodad) is never answered for on eth0.
    assert_arp_ok(&probe(&g.dir, &V6_ARGS));
    let r = probe(
        &g.dir,
        &["--vip", VIP4, "--rip", "192.0.2.11", "--check", "arp"],
    );
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert_eq!(r.stdout.trim_end(), "up: arp ok");
}

#[test]
fn vip_on_lo_without_arp_ignore_answers_arp_and_is_down() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let g = good();
    for scope in ["all", "eth0"] {
        g.rs.sysctl(&format!("net.ipv4.conf.{scope}.arp_ignore"), "0");
        g.rs.sysctl(&format!("net.ipv4.conf.{scope}.arp_announce"), "0");
    }
    let r = probe(&g.dir, &V4_ARGS);
    assert_down(&r, ARP_REASON);
    assert!(
        r.stderr.trim_end().ends_with("put the VIP on lo)"),
        "{}",
        r.stderr
    );
    // The answer is judged, not waited for: well inside the default 2 s budget.
    assert!(r.elapsed < Duration::from_millis(1000), "{:?}", r.elapsed);
    // JSON: icmp and tcp up, the arp check down with the reason.
    let r = probe(&g.dir, &[&V4_ARGS[..], &["--json"]].concat());
    assert_eq!(r.code, 1);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("JSON");
    assert_eq!(v["reason"], ARP_REASON);
    assert_eq!(v["checks"][0]["up"], true);
    assert_eq!(v["checks"][1]["up"], true);
    assert_eq!(v["checks"][2]["check"], "arp");
    assert_eq!(v["checks"][2]["up"], false);
    // --allow-arp-answer: up, with the warning on the line.
    let r = probe(&g.dir, &[&V4_ARGS[..], &["--allow-arp-answer"]].concat());
    assert_up(&r);
    assert!(
        r.stdout
            .trim_end()
            .ends_with(&format!("(warning: allowed: {ARP_REASON})")),
        "{}",
        r.stdout
    );
}

#[test]
fn vip_on_eth0_answers_arp_and_neighbour_solicitation_and_is_down() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // arp_ignore=1 still answers for an address on the receiving interface.
    let Pair { dir, rs, lan: _lan } = Pair::new(RS_MAC, Scenario::VipOnEth0, &[80]);
    assert_down(&probe(&dir, &V4_ARGS), ARP_REASON);
    assert_down(
        &probe(&dir, &V6_ARGS),
        "answers neighbour solicitations for VIP 2001:db8::20: it can take VIP traffic away \
         from the director (put the VIP on lo, not on the real server's network interface)",
    );
    // Two VIPs at once, one on lo (not answered for): the reason names the one that is.
    rs.ip("addr add 192.0.2.21/32 dev lo");
    let _second = listen(&rs, "192.0.2.21", 80);
    let r = probe(
        &dir,
        &[
            "--vip",
            "192.0.2.21",
            "--vip",
            VIP4,
            "--rip",
            "192.0.2.11",
            "--port",
            "80",
        ],
    );
    assert_down(&r, ARP_REASON);
}

#[test]
fn ipv6_vip_on_lo_is_not_answered_for_whatever_the_sysctls() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // Linux answers a neighbour solicitation only for an address of the interface it
    // arrived on: arp_ignore has no IPv6 counterpart because none is needed.
    let g = good();
    for scope in ["all", "eth0"] {
        g.rs.sysctl(&format!("net.ipv4.conf.{scope}.arp_ignore"), "0");
    }
    assert_arp_ok(&probe(&g.dir, &V6_ARGS));
}

#[test]
fn generated_keepalived_check_command_passes_for_a_correct_server() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let g = good();
    for (vip, rip) in [(VIP4, "192.0.2.11"), (VIP6, "2001:db8::b")] {
        let cmd = vipcheck::generate::ProbeCommand {
            program: env!("CARGO_BIN_EXE_vipcheck").into(),
            vips: vec![vip.parse().unwrap()],
            rip: rip.parse().unwrap(),
            port: Some(80),
            protocol: vipcheck::config::Protocol::Tcp,
            method: vipcheck::config::ForwardingMethod::DirectRouting,
            timeout: Duration::from_secs(2),
            app: None,
            tunnel: Default::default(),
            udp: None,
        };
        let args = cmd.args();
        assert_eq!(args[0], "probe");
        let r = run({
            let mut c = g.dir.command(&cmd.program);
            c.args(&args);
            c
        });
        assert_arp_ok(&r);
    }
}

#[test]
fn hardened_real_server_that_drops_echo_is_up_with_icmp_filtered() {
    if !privileged("network namespaces, packet sockets and nftables") {
        return;
    }
    let g = good();
    drop_echo(&g.rs, "drop");
    for args in [V4_ARGS, V6_ARGS] {
        let r = probe(&g.dir, &args);
        assert_eq!(r.code, 0, "{args:?}: {} {}", r.stdout, r.stderr);
        assert!(r.stdout.starts_with("up: tcp "), "{}", r.stdout);
        assert!(r.stdout.contains("(icmp filtered)"), "{}", r.stdout);
        let mut json = args.to_vec();
        json.push("--json");
        let r = probe(&g.dir, &json);
        let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one object");
        assert_eq!(v["up"], true, "{v}");
        assert_eq!(v["note"], "icmp filtered", "{v}");
        assert_eq!(v["checks"][0]["check"], "icmp");
        assert_eq!(v["checks"][0]["up"], false, "{v}");
        assert_eq!(v["checks"][0]["decides"], false, "{v}");
        assert_eq!(v["checks"][1]["decides"], true, "{v}");
    }
    // On a director that holds the VIP too.
    add_vips(&g.dir, "lo");
    for args in [V4_ARGS, V6_ARGS] {
        let r = probe(&g.dir, &args);
        assert_eq!(r.code, 0, "{args:?}: {} {}", r.stdout, r.stderr);
        assert!(r.stdout.contains("(icmp filtered)"), "{}", r.stdout);
    }
    // `--check icmp` has nothing else to go by: there ICMP decides, and says why.
    let r = probe(
        &g.dir,
        &[
            "--vip",
            VIP4,
            "--rip",
            "192.0.2.11",
            "--check",
            "icmp",
            "--timeout",
            "300ms",
        ],
    );
    assert_down(
        &r,
        "VIP 192.0.2.20 did not answer through 02:00:00:00:00:0b",
    );
}

#[test]
fn hardened_real_server_that_rejects_echo_is_up_saying_so() {
    if !privileged("network namespaces, packet sockets and nftables") {
        return;
    }
    let g = good();
    drop_echo(&g.rs, "reject");
    for args in [V4_ARGS, V6_ARGS] {
        let r = probe(&g.dir, &args);
        assert_eq!(r.code, 0, "{args:?}: {} {}", r.stdout, r.stderr);
        assert!(r.stdout.starts_with("up: tcp "), "{}", r.stdout);
        assert!(r.stdout.contains("(icmp: "), "{}", r.stdout);
    }
}

#[test]
fn hardened_real_server_without_vip_or_listener_is_still_down() {
    if !privileged("network namespaces, packet sockets and nftables") {
        return;
    }
    let Pair { dir, rs, lan: _lan } = Pair::new(RS_MAC, Scenario::NoVip, &[80]);
    drop_echo(&rs, "drop");
    fn with(args: [&'static str; 6]) -> Vec<&'static str> {
        let mut v = args.to_vec();
        v.extend(["--timeout", "400ms"]);
        v
    }
    assert_down(
        &probe(&dir, &with(V4_ARGS)),
        "VIP 192.0.2.20 did not answer through 02:00:00:00:00:0b (VIP not configured?)",
    );
    assert_down(
        &probe(&dir, &with(V6_ARGS)),
        "VIP 2001:db8::20 did not answer through 02:00:00:00:00:0b (VIP not configured?)",
    );
    add_vips(&rs, "lo");
    assert_down(
        &probe(&dir, &with(V4_ARGS)),
        "VIP answers but TCP 80 is closed (RST)",
    );
    assert_down(
        &probe(&dir, &with(V6_ARGS)),
        "VIP answers but TCP 80 is closed (RST)",
    );
}

#[test]
fn echo_answered_but_port_filtered_is_down_saying_so() {
    if !privileged("network namespaces, packet sockets and nftables") {
        return;
    }
    let g = good();
    firewall(
        &g.rs,
        "table inet f {\n chain input {\n type filter hook input priority 0;\n tcp dport 80 drop\n }\n}\n",
    );
    let mut args = V4_ARGS.to_vec();
    args.extend(["--timeout", "400ms"]);
    assert_down(
        &probe(&g.dir, &args),
        "VIP 192.0.2.20 answers ICMP echo through 02:00:00:00:00:0b but not TCP 80",
    );
}

#[test]
fn stale_neighbour_entry_with_an_old_mac_is_confirmed_and_the_new_mac_probed() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let g = good();
    // The real server's NIC was replaced: the director still has the old MAC, STALE.
    let old = "02:00:00:00:00:99";
    for (rip, args) in [("192.0.2.11", V4_ARGS), ("2001:db8::b", V6_ARGS)] {
        g.dir.ip(&format!(
            "neigh replace {rip} lladdr {old} dev eth0 nud stale"
        ));
        let mut json = args.to_vec();
        json.push("--json");
        let r = probe(&g.dir, &json);
        assert_eq!(r.code, 0, "{rip}: {} {}", r.stdout, r.stderr);
        let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one object");
        assert_eq!(v["mac_change"]["from"], old, "{v}");
        assert_eq!(v["mac_change"]["to"], RS_MAC, "{v}");
        let note = v["note"].as_str().unwrap_or_default();
        assert!(
            note.contains(&format!(
                "MAC changed: the neighbour entry said {old}, {RS_MAC} answered"
            )),
            "{v}"
        );
    }
    // A FAILED entry is not used at all: the prober resolves the MAC itself.
    g.dir
        .ip("neigh replace 192.0.2.11 lladdr 02:00:00:00:00:98 dev eth0 nud failed");
    assert_up(&probe(&g.dir, &V4_ARGS));
    // A stale entry whose MAC is right is confirmed without a change.
    g.dir.ip(&format!(
        "neigh replace 192.0.2.11 lladdr {RS_MAC} dev eth0 nud stale"
    ));
    let r = probe(&g.dir, &V4_ARGS);
    assert_up(&r);
    assert!(!r.stdout.contains("MAC changed"), "{}", r.stdout);
}

#[test]
fn stale_entry_for_a_real_server_without_the_vip_is_still_down() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let Pair {
        dir,
        rs: _rs,
        lan: _lan,
    } = Pair::new(RS_MAC, Scenario::NoVip, &[80]);
    dir.ip("neigh replace 192.0.2.11 lladdr 02:00:00:00:00:99 dev eth0 nud stale");
    let mut args = V4_ARGS.to_vec();
    args.extend(["--timeout", "600ms"]);
    // Probed through the MAC that answers now, and down for the right reason.
    assert_down(
        &probe(&dir, &args),
        "VIP 192.0.2.20 did not answer through 02:00:00:00:00:0b (VIP not configured?)",
    );
}

#[test]
fn slow_server_answering_at_70_percent_of_the_budget_is_up() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let Cabled {
        rs,
        dir,
        relay: relay_ns,
        ra,
        rb,
    } = Cabled::new(RS_MAC, Scenario::NoListener, &[80]);
    let _listener = listen(&rs, VIP4, 80);
    // Every reply from the VIP (echo reply, SYN-ACK) takes 700 ms of a 1 s budget.
    let _relay = Relay::start_with(&relay_ns, &ra, &rb, |f| {
        let from_vip = f.len() > 34 && f[12..14] == [0x08, 0x00] && f[26..30] == [192, 0, 2, 20];
        if from_vip {
            Forward::Delay(Duration::from_millis(700))
        } else {
            Forward::Pass
        }
    });
    dir.ip(&format!(
        "neigh replace 192.0.2.11 lladdr {RS_MAC} dev eth0 nud permanent"
    ));
    let mut args = V4_ARGS.to_vec();
    args.extend(["--timeout", "1s", "--json"]);
    let r = probe(&dir, &args);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one object");
    for (i, check) in ["icmp", "tcp"].iter().enumerate() {
        assert_eq!(v["checks"][i]["check"], *check, "{v}");
        assert_eq!(v["checks"][i]["up"], true, "{v}");
        let ms = v["checks"][i]["latency_ms"].as_f64().expect("latency");
        assert!(
            ms >= 600.0,
            "{check} answered in {ms} ms, not held 700 ms: {v}"
        );
    }
    assert!(v.get("note").is_none(), "{v}");
}

/// `n` echo requests (identifier `ident`, sequence numbers 0..n) from the director's
/// 192.0.2.2 to real server 21's own address, and a packet socket on the director's eth0
/// to send them on (opened in the director's namespace by `with_socket`).
fn echoes_to_server_21(
    n: u16,
    ident: u16,
) -> (Vec<Vec<u8>>, impl Fn(bool) -> vipcheck::net::PacketSocket) {
    use std::net::{IpAddr, Ipv4Addr};
    use vipcheck::net::PacketSocket;
    use vipcheck::wire::frame::{Probe, ProbeKind};
    use vipcheck::wire::MacAddr;
    let ours: MacAddr = DIR_MAC.parse().expect("the director's MAC");
    let theirs: MacAddr = common::topo::real_server_mac(21)
        .parse()
        .expect("the real server's MAC");
    let (src, dst) = (Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(192, 0, 2, 21));
    let frames = (0..n)
        .map(|seq| {
            Probe {
                src_mac: ours,
                dst_mac: theirs,
                tunnel: None,
                src: IpAddr::V4(src),
                dst: IpAddr::V4(dst),
                hop_limit: 64,
                ip_ident: seq,
                kind: ProbeKind::Echo { ident, seq },
                encap: Default::default(),
            }
            .build()
            .expect("an echo request")
        })
        .collect();
    // The ordinary socket, or the fleet's, which reads through a receive ring.
    let open = move |ringed: bool| {
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
        let sources = [IpAddr::V4(src)];
        let sock = if ringed {
            PacketSocket::open_ringed(ifindex, ours, &sources)
        } else {
            PacketSocket::open(ifindex, ours, &sources)
        };
        let sock = sock.expect("a packet socket");
        assert_eq!(sock.is_ringed(), ringed);
        sock
    };
    (frames, open)
}

/// The sequence numbers of the echo replies with identifier `ident` among `frames`, each
/// with its frame's length.
fn echo_replies(frames: &[vipcheck::net::Frame], ident: u16) -> Vec<(u16, usize)> {
    use vipcheck::wire::frame::{parse_with, Inbound};
    frames
        .iter()
        .filter_map(|f| match parse_with(&f.bytes, true).ok()?.inbound {
            Inbound::EchoReply { ident: i, seq, .. } if i == ident => Some((seq, f.bytes.len())),
            _ => None,
        })
        .collect()
}

/// The frames `sock` receives until `n` echo replies of `ident` are among them, or 3 s
/// have passed.
fn echo_replies_in(
    sock: &mut vipcheck::net::PacketSocket,
    ident: u16,
    n: usize,
) -> Vec<vipcheck::net::Frame> {
    use vipcheck::net::FrameIo;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut received = Vec::new();
    // Bounded by the deadline.
    while echo_replies(&received, ident).len() < n {
        let Ok(Some(f)) = sock.recv(deadline) else {
            break;
        };
        received.push(f);
    }
    received
}

#[test]
fn a_batch_of_frames_goes_out_whole_and_in_order() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // PacketSocket::transmit_batch (one sendmmsg(2)): five echo requests to a real
    // server's own address in one call; all five are answered, in the order sent.
    let site = common::topo::Site::new(&[(21, Scenario::Good)], &[80]);
    let (frames, open) = echoes_to_server_21(5, 0x4242);
    let received = site.dir.in_ns(|| {
        let mut sock = open(false);
        sock.transmit_batch(&frames).expect("the batch");
        echo_replies_in(&mut sock, 0x4242, frames.len())
    });
    let seqs: Vec<u16> = echo_replies(&received, 0x4242)
        .iter()
        .map(|&(s, _)| s)
        .collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
}

#[test]
fn a_full_queue_is_waited_out_not_reported_as_a_failed_send() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // A queue the frames go into that is full for a moment (here the director's eth0
    // behind a token bucket: 1,600 bytes at once and 1,600 queued, then 1,000 bytes a
    // millisecond) refuses a frame with ENOBUFS. PacketSocket::transmit_batch sends the
    // rest again a moment later: a hundred echo requests in one call all go, once each
    // and in order, while the queue did refuse some.
    let site = common::topo::Site::new(&[(21, Scenario::Good)], &[80]);
    let added = site
        .dir
        .command("tc")
        .args(["qdisc", "add", "dev", "eth0", "root", "tbf"])
        .args(["rate", "8mbit", "burst", "1600", "limit", "1600"])
        .status()
        .is_ok_and(|s| s.success());
    if !common::skip::require(added, "tc's tbf qdisc (a queue that fills)") {
        return;
    }
    let (frames, open) = echoes_to_server_21(100, 0x4444);
    let (sent, received) = site.dir.in_ns(|| {
        let mut sock = open(false);
        sock.set_recv_buffer(1 << 20);
        let sent = sock.transmit_batch(&frames);
        let received = echo_replies_in(&mut sock, 0x4444, frames.len());
        (sent, received)
    });
    let stats = site.dir.run("tc", &["-s", "qdisc", "show", "dev", "eth0"]);
    let dropped: u64 = stats
        .split("dropped ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "the queue never refused a frame: {stats}");
    sent.expect("every frame sent, the full queue waited out");
    let seqs: Vec<u16> = echo_replies(&received, 0x4444)
        .iter()
        .map(|&(s, _)| s)
        .collect();
    assert_eq!(seqs, (0..100).collect::<Vec<u16>>());
}

#[test]
fn a_burst_of_frames_is_taken_in_batches_whole_and_in_order() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // PacketSocket::recv_batch (recvmmsg(2), sixteen frames a call): forty echo replies
    // queued at once are taken up to the number asked for, then the rest, in the order
    // they came, each whole and with the time it came; an empty queue gives none and no
    // error.
    burst_taken_whole_and_in_order(false);
}

#[test]
fn a_burst_of_frames_is_taken_from_the_receive_ring_whole_and_in_order() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // The same through the fleet's receive ring: the slots the kernel handed over, in
    // order, each with its receive time.
    burst_taken_whole_and_in_order(true);
}

fn burst_taken_whole_and_in_order(ringed: bool) {
    let site = common::topo::Site::new(&[(21, Scenario::Good)], &[80]);
    let (requests, open) = echoes_to_server_21(40, 0x4343);
    let (first, rest, after) = site.dir.in_ns(|| {
        let mut sock = open(ringed);
        sock.set_recv_buffer(1 << 20);
        sock.transmit_batch(&requests).expect("the requests");
        // Every reply queued before the first read (bounded: 3 s).
        let deadline = Instant::now() + Duration::from_secs(3);
        assert!(
            sock.wait_readable(deadline).expect("poll"),
            "no reply at all"
        );
        std::thread::sleep(Duration::from_millis(300));
        let read_at = Instant::now();
        let (mut first, mut rest, mut after) = (Vec::new(), Vec::new(), Vec::new());
        sock.recv_batch(&mut first, 10).expect("the first batch");
        sock.recv_batch(&mut rest, 64).expect("the rest");
        sock.recv_batch(&mut after, 64).expect("an empty queue");
        // Each carries when it came (the kernel's receive time), not when it was read.
        for f in first.iter().chain(&rest) {
            let at = f.at.expect("a receive time");
            assert!(
                read_at.saturating_duration_since(at) >= Duration::from_millis(250),
                "came {:?} before it was read",
                read_at.saturating_duration_since(at)
            );
        }
        (first, rest, after)
    });
    assert_eq!(first.len(), 10, "no more than asked for");
    assert!(
        after.is_empty(),
        "the queue was emptied: {} more",
        after.len()
    );
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    let replies = echo_replies(&all, 0x4343);
    let seqs: Vec<u16> = replies.iter().map(|&(s, _)| s).collect();
    assert_eq!(seqs, (0..40).collect::<Vec<u16>>());
    // Each whole: Ethernet, IPv4, ICMP header and the 8 bytes of "vipcheck".
    assert!(
        replies.iter().all(|&(_, len)| len == 14 + 20 + 8 + 8),
        "{replies:?}"
    );
}

#[test]
fn a_frame_longer_than_a_ring_slot_comes_whole_and_in_its_place() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // A 2 KiB slot holds any frame of a 1,500-byte MTU. On a jumbo-frame LAN an echo
    // reply of 4,050 bytes does not fit: the kernel queues it whole besides (the slot
    // says so), and it must come whole, between the short replies around it.
    let site = common::topo::Site::new(&[(21, Scenario::Good)], &[80]);
    site.dir.ip("link set eth0 mtu 9000");
    site.servers[0].ns.ip("link set eth0 mtu 9000");
    for port in ["p0", "p1"] {
        site.lan.switch().ip(&format!("link set {port} mtu 9000"));
    }
    let (mut requests, open) = echoes_to_server_21(4, 0x4545);
    for seq in [1, 2] {
        requests[seq] = with_payload(&requests[seq], 4_000);
    }
    let replies = site.dir.in_ns(|| {
        let mut sock = open(true);
        sock.transmit_batch(&requests).expect("the requests");
        echo_replies(&echo_replies_in(&mut sock, 0x4545, 4), 0x4545)
    });
    let short = 14 + 20 + 8 + 8;
    assert_eq!(
        replies,
        vec![
            (0, short),
            (1, short + 4_000),
            (2, short + 4_000),
            (3, short)
        ]
    );
}

/// IPv4 echo request `frame` with `extra` more bytes of payload, its lengths and
/// checksums made good.
fn with_payload(frame: &[u8], extra: usize) -> Vec<u8> {
    fn sum(bytes: &[u8]) -> u16 {
        let mut s: u32 = bytes
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
    let mut f = frame.to_vec();
    f.extend((0..extra).map(|i| i as u8));
    let ip_len = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[24..26].fill(0);
    let ip_sum = sum(&f[14..34]);
    f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
    f[36..38].fill(0);
    let icmp_sum = sum(&f[34..]);
    f[36..38].copy_from_slice(&icmp_sum.to_be_bytes());
    f
}

#[test]
fn the_kernel_s_neighbour_entry_is_read_for_its_address_and_interface_alone() {
    if !privileged("network namespaces") {
        return;
    }
    // rtnl::neighbor asks the kernel for one entry (RTM_GETNEIGH with the address;
    // `NeighbourQuery::Entry`), and only a kernel without that for the whole table
    // (`NeighbourQuery::Table`). Both, and the two together, must give among two hundred
    // entries on two interfaces the one for the address on the interface asked, in its
    // state, and nothing for an address without an entry, one on the other interface or
    // one not usable.
    use std::net::IpAddr;
    use vipcheck::net::rtnl::{neighbor, neighbor_by, Neighbour, NeighbourQuery};
    let ns = Netns::new("neigh");
    ns.ip("link add va type veth peer name vb");
    ns.ip("link set va up");
    ns.ip("link set vb up");
    for h in 1..=100u8 {
        ns.ip(&format!(
            "neigh add 192.0.2.{h} lladdr 02:00:00:00:01:{h:02x} dev va nud permanent"
        ));
        ns.ip(&format!(
            "neigh add 198.51.100.{h} lladdr 02:00:00:00:02:{h:02x} dev vb nud permanent"
        ));
    }
    ns.ip("neigh add 2001:db8::7 lladdr 02:00:00:00:03:07 dev va nud stale");
    ns.ip("neigh add 192.0.2.200 dev va nud incomplete");
    let got = ns.in_ns(|| {
        let (a, b) = (common::netns::ifindex("va"), common::netns::ifindex("vb"));
        let deadline = Instant::now() + Duration::from_secs(3);
        let ask = |ifindex: u32, addr: &str| {
            let addr: IpAddr = addr.parse().expect("an address");
            let got = neighbor(ifindex, addr, deadline).expect("the neighbour query");
            let by = |query| neighbor_by(query, ifindex, addr, deadline).expect("the query");
            let (one, all) = (by(NeighbourQuery::Entry), by(NeighbourQuery::Table));
            assert_eq!((one, all), (got, got), "{addr} on {ifindex}");
            got
        };
        [
            ask(a, "192.0.2.57"),
            ask(b, "198.51.100.3"),
            ask(a, "2001:db8::7"),
            ask(a, "192.0.2.150"),
            ask(a, "198.51.100.3"),
            ask(b, "192.0.2.57"),
            ask(a, "192.0.2.200"),
        ]
    });
    let entry = |mac: &str, confirmed| {
        Some(Neighbour {
            mac: mac.parse().expect("a MAC"),
            confirmed,
        })
    };
    assert_eq!(
        got,
        [
            entry("02:00:00:00:01:39", true),
            entry("02:00:00:00:02:03", true),
            entry("02:00:00:00:03:07", false),
            None,
            None,
            None,
            None,
        ]
    );
}
