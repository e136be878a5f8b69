//! `vipcheck status` against real network stacks: a director and a dozen real servers in
//! network namespaces on one bridge, in every scenario of the issue (good, no VIP, no
//! listener, forwarder, ARP-answering, IPv6), read from a keepalived and an ldirectord
//! config; every row of `--json` asserted. Needs root; prints "skipped: needs root
//! (...)" otherwise, unless VIPCHECK_REQUIRE_PRIVILEGED=1.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::netns::{privileged, run_bounded};
use common::topo::{self, Scenario, VIP4, VIP6};
use vipcheck::probe::fleet::{Alarm, Turn};

/// The servers on their bridge, and a temp dir for the configs.
struct Site {
    site: topo::Site,
    dir_path: tempfile::TempDir,
}

impl std::ops::Deref for Site {
    type Target = topo::Site;

    fn deref(&self) -> &topo::Site {
        &self.site
    }
}

const HOSTS: [(u8, Scenario); 12] = [
    (11, Scenario::Good),
    (12, Scenario::Good),
    (13, Scenario::Good),
    (14, Scenario::NoVip),
    (15, Scenario::NoListener),
    (16, Scenario::Forwarder),
    (17, Scenario::ArpAnswering),
    (18, Scenario::VipOnEth0),
    (19, Scenario::Good),
    (26, Scenario::Good),
    (27, Scenario::Good),
    (28, Scenario::VipOnEth0),
];

fn site() -> Site {
    site_of(&HOSTS)
}

/// A mix of healthy servers that used to be called down (hardened, moved) among broken
/// ones.
const MIX: [(u8, Scenario); 6] = [
    (41, Scenario::Hardened),
    (42, Scenario::Moved),
    (43, Scenario::NoVip),
    (44, Scenario::Forwarder),
    (45, Scenario::Good),
    (46, Scenario::NoListener),
];

fn site_of(hosts: &[(u8, Scenario)]) -> Site {
    Site {
        site: topo::Site::new(hosts, &[80, 443]),
        dir_path: tempfile::tempdir().expect("temp dir"),
    }
}

fn status(site: &Site, config: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut c: Command = site.dir.command(env!("CARGO_BIN_EXE_vipcheck"));
    c.arg("status")
        .arg(config)
        .args(["--json", "--timeout", "500ms"]);
    c.args(extra);
    let out = run_bounded(&mut c, Duration::from_secs(30));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What a row must say: up, and a piece of the reason ("" = empty reason).
fn expect(scenario: Scenario, vip: &str, port: u16) -> (bool, String) {
    let v6 = vip.contains(':');
    match scenario {
        Scenario::Good => (true, String::new()),
        Scenario::NoVip => (false, format!("VIP {vip} did not answer through")),
        Scenario::NoListener => (false, format!("VIP answers but TCP {port} is closed (RST)")),
        Scenario::Forwarder => (
            false,
            format!("forwarded the probe for VIP {vip} instead of answering it"),
        ),
        // IPv6 has no arp_ignore: a VIP on lo is never answered for.
        Scenario::ArpAnswering if v6 => (true, String::new()),
        Scenario::ArpAnswering => (
            false,
            format!(
                "answers ARP for VIP {vip}: it can take VIP traffic away from the director \
                 (set arp_ignore=1, arp_announce=2 or put the VIP on lo)"
            ),
        ),
        Scenario::VipOnEth0 if v6 => (
            false,
            format!("answers neighbour solicitations for VIP {vip}: it can take VIP traffic"),
        ),
        Scenario::VipOnEth0 => (false, format!("answers ARP for VIP {vip}")),
        Scenario::Hardened => (true, "icmp filtered".to_string()),
        Scenario::Moved => (
            true,
            "MAC changed: the neighbour entry said 02:00:00:00:00:99".to_string(),
        ),
    }
}

fn scenario_of(rip: &str) -> Scenario {
    let ip: IpAddr = rip.parse().expect("rip");
    let host = match ip {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    HOSTS
        .iter()
        .chain(&MIX)
        .find(|(h, _)| *h == host)
        .map(|(_, s)| *s)
        .unwrap_or_else(|| panic!("no scenario for {rip}"))
}

/// Checks every row against its real server's scenario; returns how many rows.
fn assert_rows(stdout: &str, expected: &[(&str, u16, &str, &str)]) -> usize {
    let rows: serde_json::Value = serde_json::from_str(stdout).expect("a JSON array");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), expected.len(), "{stdout}");
    for (row, (vip, port, rip, method)) in rows.iter().zip(expected) {
        assert_eq!(row["vip"], *vip, "{row}");
        assert_eq!(row["port"], *port, "{row}");
        assert_eq!(row["proto"], "tcp", "{row}");
        assert_eq!(row["rip"], *rip, "{row}");
        assert_eq!(row["method"], *method, "{row}");
        let (up, reason) = expect(scenario_of(rip), vip, *port);
        assert_eq!(row["up"], up, "{row}");
        let got = row["reason"].as_str().expect("reason");
        if reason.is_empty() {
            assert_eq!(got, "", "{row}");
        } else {
            assert!(got.contains(&reason), "expected {reason:?} in {row}");
        }
        if up {
            assert!(row["latency_ms"].as_f64().is_some_and(|l| l > 0.0), "{row}");
        }
    }
    rows.len()
}

const KEEPALIVED: &str = "\
global_defs {
    router_id test
}

virtual_server 192.0.2.20 80 {
    lb_kind DR
    protocol TCP
    real_server 192.0.2.11 80 {
        HTTP_GET {
            url {
                path /
                status_code 200
            }
        }
    }
    real_server 192.0.2.12 80 {
        TCP_CHECK {
        }
    }
    real_server 192.0.2.13 80 {
    }
    real_server 192.0.2.14 80 {
    }
    real_server 192.0.2.15 80 {
    }
    real_server 192.0.2.16 80 {
    }
    real_server 192.0.2.17 80 {
    }
    real_server 192.0.2.18 80 {
    }
}

virtual_server 192.0.2.20 443 {
    lb_kind DR
    protocol TCP
    real_server 192.0.2.19 443 {
    }
    real_server 192.0.2.26 443 {
    }
    real_server 192.0.2.27 443 {
    }
}

virtual_server 2001:db8::20 80 {
    lb_kind DR
    protocol TCP
    real_server 2001:db8::1b 80 {
    }
    real_server 2001:db8::1c 80 {
    }
    real_server 2001:db8::11 80 {
    }
    real_server 2001:db8::12 80 {
    }
}

virtual_server 192.0.2.21 80 {
    lb_kind NAT
    protocol TCP
    real_server 192.0.2.11 80 {
    }
}
";

#[test]
fn keepalived_config_every_row_matches_its_scenario() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let s = site();
    let conf = s.dir_path.path().join("keepalived.conf");
    std::fs::write(&conf, KEEPALIVED).expect("write config");
    let (code, stdout, stderr) = status(&s, &conf, &[]);
    assert_eq!(code, 1, "some pairs are down: {stderr}");
    let expected = [
        (VIP4, 80, "192.0.2.11", "dr"),
        (VIP4, 80, "192.0.2.12", "dr"),
        (VIP4, 80, "192.0.2.13", "dr"),
        (VIP4, 80, "192.0.2.14", "dr"),
        (VIP4, 80, "192.0.2.15", "dr"),
        (VIP4, 80, "192.0.2.16", "dr"),
        (VIP4, 80, "192.0.2.17", "dr"),
        (VIP4, 80, "192.0.2.18", "dr"),
        (VIP4, 443, "192.0.2.19", "dr"),
        (VIP4, 443, "192.0.2.26", "dr"),
        (VIP4, 443, "192.0.2.27", "dr"),
        (VIP6, 80, "2001:db8::1b", "dr"),
        (VIP6, 80, "2001:db8::1c", "dr"),
        (VIP6, 80, "2001:db8::11", "dr"),
        (VIP6, 80, "2001:db8::12", "dr"),
    ];
    assert_eq!(assert_rows(&stdout, &expected), 15);
    // What the config already checks is shown next to the verdict.
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows[0]["config_checks"][0], "HTTP_GET");
    assert_eq!(rows[1]["config_checks"][0], "TCP_CHECK");

    // The table: grouped by service, no colour off a terminal.
    let mut c = s.dir.command(env!("CARGO_BIN_EXE_vipcheck"));
    c.arg("status").arg(&conf).args(["--timeout", "500ms"]);
    let out = run_bounded(&mut c, Duration::from_secs(30));
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(table.contains("192.0.2.20:80/tcp\n"), "{table}");
    assert!(table.contains("192.0.2.20:443/tcp\n"), "{table}");
    assert!(table.contains("8 of 15 pairs up"), "{table}");
    assert!(!table.contains('\x1b'), "{table}");

    // Prometheus: one gauge per pair.
    let mut c = s.dir.command(env!("CARGO_BIN_EXE_vipcheck"));
    c.arg("status")
        .arg(&conf)
        .args(["--prometheus", "--timeout", "500ms"]);
    let out = run_bounded(&mut c, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("vipcheck_real_server_up{").count(),
        15,
        "{text}"
    );
    assert!(text.contains(
        "vipcheck_real_server_up{vip=\"192.0.2.20\",port=\"80\",proto=\"tcp\",real=\"192.0.2.17\",method=\"dr\"} 0\n"
    ));

    // --allow-arp-answer: the ARP-answering server is up with the warning as reason.
    let (_, stdout, _) = status(&s, &conf, &["--allow-arp-answer"]);
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows[6]["rip"], "192.0.2.17");
    assert_eq!(rows[6]["up"], true);
    assert!(
        rows[6]["reason"]
            .as_str()
            .unwrap()
            .starts_with("allowed: answers ARP for VIP 192.0.2.20"),
        "{}",
        rows[6]
    );
}

#[test]
fn ldirectord_config_every_row_matches_its_scenario() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let s = site();
    let conf = s.dir_path.path().join("ldirectord.cf");
    std::fs::write(
        &conf,
        "\
checktimeout=3

virtual=192.0.2.20:80
\treal=192.0.2.11:80 gate
\treal=192.0.2.15:80 gate
\treal=192.0.2.16:80 gate
\treal=192.0.2.17:80 gate
\tservice=http
\tchecktype=negotiate
\trequest=\"index.html\"
\treceive=\"ok\"

virtual6=[2001:db8::20]:443
\treal6=[2001:db8::1b]:443 gate
\treal6=[2001:db8::1c]:443 gate
\treal6=[2001:db8::e]:443 gate
\tchecktype=connect
",
    )
    .expect("write config");
    let (code, stdout, stderr) = status(&s, &conf, &[]);
    assert_eq!(code, 1, "{stderr}");
    let expected = [
        (VIP4, 80, "192.0.2.11", "dr"),
        (VIP4, 80, "192.0.2.15", "dr"),
        (VIP4, 80, "192.0.2.16", "dr"),
        (VIP4, 80, "192.0.2.17", "dr"),
        (VIP6, 443, "2001:db8::1b", "dr"),
        (VIP6, 443, "2001:db8::1c", "dr"),
        (VIP6, 443, "2001:db8::e", "dr"),
    ];
    assert_eq!(assert_rows(&stdout, &expected), 7);
}

#[test]
fn all_up_exits_0_and_a_bad_config_exits_2() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    let s = site();
    let conf = s.dir_path.path().join("keepalived.conf");
    std::fs::write(
        &conf,
        "virtual_server 192.0.2.20 80 {\n    lb_kind DR\n    protocol TCP\n    \
         real_server 192.0.2.11 80 {\n    }\n    real_server 192.0.2.12 80 {\n    }\n}\n",
    )
    .unwrap();
    let (code, stdout, stderr) = status(&s, &conf, &[]);
    assert_eq!(code, 0, "{stdout} {stderr}");
    let bad = s.dir_path.path().join("bad.conf");
    std::fs::write(&bad, "virtual_server 192.0.2.20 80 {\n    lb_kind DR\n").unwrap();
    let (code, _, stderr) = status(&s, &bad, &["--format", "keepalived"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bad.conf:"), "{stderr}");
}

#[test]
fn two_hundred_pairs_at_once_get_their_own_replies() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // 20 real servers x 10 ports, every scenario, all probed with 64 in flight over one
    // shared socket: each row must still carry its own server's verdict.
    let ports: Vec<u16> = (8000..8010).collect();
    let cycle = [
        Scenario::Good,
        Scenario::NoListener,
        Scenario::Good,
        Scenario::Forwarder,
        Scenario::Good,
        Scenario::ArpAnswering,
        Scenario::Good,
        Scenario::VipOnEth0,
        Scenario::Good,
        Scenario::NoVip,
    ];
    let hosts: Vec<(u8, Scenario)> = (0..20u8)
        .map(|i| (40 + i, cycle[usize::from(i) % 10]))
        .collect();
    let site = topo::Site::new(&hosts, &ports);
    let dir = &site.dir;
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("keepalived.conf");
    let mut text = String::new();
    for p in &ports {
        text.push_str(&format!(
            "virtual_server {VIP4} {p} {{\n    lb_kind DR\n    protocol TCP\n"
        ));
        for (h, _) in &hosts {
            text.push_str(&format!("    real_server 192.0.2.{h} {p} {{\n    }}\n"));
        }
        text.push_str("}\n");
    }
    std::fs::write(&conf, text).unwrap();
    let mut c = dir.command(env!("CARGO_BIN_EXE_vipcheck"));
    c.arg("status")
        .arg(&conf)
        .args(["--json", "--timeout", "500ms", "--parallel", "64"]);
    let out = run_bounded(&mut c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 200);
    for (n, row) in rows.iter().enumerate() {
        let (host, scenario) = hosts[n % hosts.len()];
        let port = ports[n / hosts.len()];
        assert_eq!(row["rip"], format!("192.0.2.{host}"), "{row}");
        assert_eq!(row["port"], port, "{row}");
        let (up, reason) = expect(scenario, VIP4, port);
        assert_eq!(row["up"], up, "{row}");
        let got = row["reason"].as_str().unwrap();
        assert!(
            if reason.is_empty() {
                got.is_empty()
            } else {
                got.contains(&reason)
            },
            "expected {reason:?} in {row}"
        );
    }
}

#[test]
fn hardened_and_moved_servers_are_up_among_broken_ones() {
    if !privileged("network namespaces, packet sockets and nftables") {
        return;
    }
    let s = site_of(&MIX);
    let conf = s.dir_path.path().join("keepalived.conf");
    let mut text = String::new();
    for (vip, hosts) in [
        (VIP4, MIX.map(|(h, _)| format!("192.0.2.{h}"))),
        (VIP6, MIX.map(|(h, _)| format!("2001:db8::{h:x}"))),
    ] {
        for port in [80, 443] {
            text.push_str(&format!(
                "virtual_server {vip} {port} {{\n    lb_kind DR\n    protocol TCP\n"
            ));
            for rip in &hosts {
                text.push_str(&format!("    real_server {rip} {port} {{\n    }}\n"));
            }
            text.push_str("}\n");
        }
    }
    std::fs::write(&conf, text).expect("write config");
    let (code, stdout, stderr) = status(&s, &conf, &[]);
    assert_eq!(code, 1, "some pairs are down: {stderr}");
    let mut expected = Vec::new();
    for vip in [VIP4, VIP6] {
        for port in [80, 443] {
            for (h, _) in MIX {
                let rip = if vip == VIP4 {
                    format!("192.0.2.{h}")
                } else {
                    format!("2001:db8::{h:x}")
                };
                expected.push((vip, port, rip));
            }
        }
    }
    let expected: Vec<(&str, u16, &str, &str)> = expected
        .iter()
        .map(|(v, p, r)| (*v, *p, r.as_str(), "dr"))
        .collect();
    assert_eq!(assert_rows(&stdout, &expected), 24);
}

/// The pairs of a keepalived config written in `dir`: per `(VIP, real server hosts)` one
/// DR service on port 80 of `192.0.2.HOST` real servers, read as `status` and the agent
/// read it, in order.
fn port_80_pairs(dir: &Path, services: &[(&str, &[u8])]) -> Vec<vipcheck::status::Pair> {
    let mut text = String::new();
    for (vip, hosts) in services {
        text.push_str(&format!(
            "virtual_server {vip} 80 {{\n    lb_kind DR\n    protocol TCP\n"
        ));
        for h in *hosts {
            text.push_str(&format!("    real_server 192.0.2.{h} 80 {{\n    }}\n"));
        }
        text.push_str("}\n");
    }
    let conf = dir.join("keepalived.conf");
    std::fs::write(&conf, text).unwrap();
    let loaded = vipcheck::config::load(&conf, vipcheck::config::Format::Keepalived, None)
        .expect("the config");
    vipcheck::status::pairs(&loaded.services, &Default::default())
}

/// A fleet with probe budget `budget`, and the request of each pair [`port_80_pairs`]
/// reads from `services` (its config written into `dir`), in order.
fn fleet_requests(
    dir: &Path,
    services: &[(&str, &[u8])],
    budget: Duration,
) -> (
    vipcheck::status::FleetProbe,
    Vec<vipcheck::probe::request::Request>,
) {
    let pairs = port_80_pairs(dir, services);
    let fleet = vipcheck::status::FleetProbe::new(budget, false);
    let requests = pairs
        .iter()
        .map(|p| fleet.request(p).expect("the request"))
        .collect();
    (fleet, requests)
}

#[test]
fn a_probe_waiting_while_another_reads_the_shared_socket_is_not_held_to_its_deadline() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // The probes of one fleet share a socket, read by whichever of them waits first. A
    // server that stays silent keeps its probe reading until its 3 s timeout; a good
    // server's probe started meanwhile must get its replies from that reader (its ARP
    // answer, echo reply and SYN-ACK) as they come, not when the reader leaves.
    let site = site_of(&[(51, Scenario::NoVip), (52, Scenario::Good)]);
    let timeout = Duration::from_secs(3);
    let (fleet, requests) = fleet_requests(site.dir_path.path(), &[(VIP4, &[51, 52])], timeout);
    let [silent, good] = <[_; 2]>::try_from(requests).expect("two requests");
    let (silent, good, took) = site.dir.in_ns(|| {
        std::thread::scope(|s| {
            let reader = s.spawn(|| fleet.fleet.probe(&silent, std::time::Instant::now()));
            // By now the silent server's probe has sent everything and reads the socket.
            std::thread::sleep(Duration::from_millis(300));
            let start = std::time::Instant::now();
            let good = fleet.fleet.probe(&good, start);
            let took = start.elapsed();
            (reader.join().expect("the silent probe"), good, took)
        })
    });
    assert!(!silent.up, "the server without the VIP: {silent:?}");
    assert!(silent.reason.contains("did not answer"), "{silent:?}");
    assert!(good.up, "the good server: {good:?}");
    // Held to the reader's deadline it would take about 2.7 s.
    assert!(
        took < Duration::from_millis(1500),
        "the good server's verdict took {took:?}"
    );
}

#[test]
fn a_round_still_waiting_at_its_alarm_rings_it_once_and_a_round_answered_before_does_not() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // The agent runs a turn on the thread that leads its schedule and hands the lead on
    // through the round's alarm when the round is still waiting at the next turn. A
    // silent server's round (1 s) is still waiting at its alarm (200 ms): rung once, at
    // about its instant, and the verdict is the same. A good server's round is over long
    // before its alarm: not rung.
    let site = site_of(&[(53, Scenario::NoVip), (54, Scenario::Good)]);
    let pairs = port_80_pairs(site.dir_path.path(), &[(VIP4, &[53, 54])]);
    let fleet = vipcheck::status::FleetProbe::new(Duration::from_secs(1), false);
    let rung = |counter: &Arc<Mutex<Vec<Instant>>>| {
        let c = counter.clone();
        move || c.lock().unwrap().push(Instant::now())
    };
    for (pair, alarm_after, want_up, want_rings) in [
        (&pairs[0], Duration::from_millis(200), false, 1),
        (&pairs[1], Duration::from_millis(900), true, 0),
    ] {
        let req = fleet.request(pair).expect("the request");
        let rings = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let alarm = Arc::new(Alarm::new(start + alarm_after, rung(&rings)));
        let v = site.dir.in_ns(|| {
            fleet.fleet.probe_many(
                &[&req],
                start,
                &Default::default(),
                &Turn {
                    alarm: Some(alarm.clone()),
                    ..Default::default()
                },
            )
        });
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].up, want_up, "{}: {:?}", pair.rip, v[0]);
        let rings = rings.lock().unwrap();
        assert_eq!(rings.len(), want_rings, "{}: rung at {rings:?}", pair.rip);
        assert_eq!(alarm.rung(), want_rings > 0);
        for at in rings.iter() {
            let late = at.saturating_duration_since(start + alarm_after);
            assert!(
                *at >= start + alarm_after && late < Duration::from_millis(300),
                "rung {late:?} after its instant"
            );
        }
    }
}

/// A round of `req` as the agent runs it, its next turn `next_turn` from now (the round's
/// alarm): the verdict, how long it took, and whether the alarm rang.
fn agent_round(
    fleet: &vipcheck::status::FleetProbe,
    req: &vipcheck::probe::request::Request,
    next_turn: Duration,
) -> (vipcheck::probe::Verdict, Duration, bool) {
    let start = Instant::now();
    let alarm = Arc::new(Alarm::new(start + next_turn, || {}));
    let turn = Turn {
        alarm: Some(alarm.clone()),
        ..Default::default()
    };
    let v = fleet
        .fleet
        .probe_many(&[req], start, &Default::default(), &turn)
        .pop()
        .expect("one verdict");
    (v, start.elapsed(), alarm.rung())
}

/// The slowest answered check's latency in ms (NaN when none answered).
fn slowest_ms(v: &vipcheck::probe::Verdict) -> f64 {
    v.checks
        .iter()
        .filter_map(|c| c.latency_ms)
        .reduce(f64::max)
        .unwrap_or(f64::NAN)
}

#[test]
fn a_round_whose_alarm_is_near_reads_its_replies_at_the_alarm_judged_by_when_they_came() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // The agent's next turn within PACED_READ: the round does not wait on the socket but
    // takes its replies at the alarm's instant, and each reply counts as of its kernel
    // receive time (a latency of the real round trip, not of the wait). The alarm is not
    // rung: the round is over at its instant. With the alarm far, the round reads at
    // once, as ever.
    use vipcheck::probe::fleet::PACED_READ;
    let site = site_of(&[(55, Scenario::Good)]);
    let (fleet, mut requests) = fleet_requests(
        site.dir_path.path(),
        &[(VIP4, &[55])],
        Duration::from_secs(1),
    );
    let req = requests.remove(0);
    let near = PACED_READ * 4 / 5;
    let far = Duration::from_millis(800);
    // The first round learns the MAC and asks the ARP question; the ones measured follow.
    for (next_turn, label) in [(far, "warm-up"), (near, "near"), (far, "far")] {
        let (v, took, rang) = site.dir.in_ns(|| agent_round(&fleet, &req, next_turn));
        assert!(v.up, "{label}: {v:?}");
        assert!(!rang, "{label}: rung, took {took:?}");
        let slowest = slowest_ms(&v);
        match label {
            "near" => {
                assert!(took >= near, "near: read before its alarm, after {took:?}");
                assert!(
                    slowest < near.as_secs_f64() * 1e3 / 2.0,
                    "near: latency {slowest} ms is the wait, not the round trip"
                );
            }
            "far" => assert!(
                took < Duration::from_millis(300),
                "far: the replies waited {took:?}"
            ),
            _ => {}
        }
    }
}

#[test]
fn a_reader_that_leaves_hands_the_socket_to_a_probe_still_waiting() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // One real server behind a relay that holds every reply from the VIP for 1 s. The
    // first probe (a VIP the server does not have: silent, 500 ms) reads the shared
    // socket; the second (the server's VIP, 3 s), started meanwhile, waits for it. Its
    // replies come after the first has given up and left: it must take the reading over
    // and see them. One attempt, so no retry wakes the second round by itself: without
    // the hand-over it would sleep past its replies to its deadline.
    let (cabled, _relay) = behind_a_slow_relay(Duration::from_secs(1));
    let dir = &cabled.dir;
    let tmp = tempfile::tempdir().unwrap();
    let services: [(&str, &[u8]); 2] = [("192.0.2.99", &[11]), (VIP4, &[11])];
    let (fleet, requests) = fleet_requests(tmp.path(), &services, Duration::from_secs(3));
    let [mut silent, mut slow] = <[_; 2]>::try_from(requests).expect("two requests");
    silent.timeout = Duration::from_millis(500);
    slow.retries = 0;
    let (silent, slow) = dir.in_ns(|| {
        std::thread::scope(|s| {
            let reader = s.spawn(|| fleet.fleet.probe(&silent, std::time::Instant::now()));
            std::thread::sleep(Duration::from_millis(100));
            let slow = fleet.fleet.probe(&slow, std::time::Instant::now());
            (reader.join().expect("the silent probe"), slow)
        })
    });
    assert!(!silent.up, "192.0.2.99 is nowhere: {silent:?}");
    assert!(slow.up, "the server's VIP answers, 1 s late: {slow:?}");
}

#[test]
fn a_paced_round_past_its_alarm_is_woken_by_the_next_turn_s_read_or_reads_at_its_deadline() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // One real server behind a relay that holds every reply from the VIP for 150 ms. A
    // paced round (its alarm, the next turn, 20 ms on) is still open at its alarm: it
    // rings it and then does not read the socket. Alone, it takes its reply at its own
    // deadline (1.5 s); when the next turn (a paced round to a VIP nobody has) reads the
    // socket at its own alarm, the reply is posted to it and wakes it. Either way the
    // reply counts as of when it came: a latency of the relay's 150 ms.
    let held = Duration::from_millis(150);
    let (cabled, _relay) = behind_a_slow_relay(held);
    let dir = &cabled.dir;
    let tmp = tempfile::tempdir().unwrap();
    let services: [(&str, &[u8]); 2] = [(VIP4, &[11]), ("192.0.2.99", &[11])];
    let budget = Duration::from_millis(1500);
    let (fleet, requests) = fleet_requests(tmp.path(), &services, budget);
    let [mut slow, mut next] = <[_; 2]>::try_from(requests).expect("two requests");
    slow.retries = 0;
    next.timeout = Duration::from_millis(300);
    let paced = |req| agent_round(&fleet, req, Duration::from_millis(20));
    let near_held = |ms: f64| ms >= held.as_secs_f64() * 1e3 - 5.0 && ms < 300.0;
    let (alone, took, rang) = dir.in_ns(|| paced(&slow));
    assert!(alone.up, "alone: {alone:?}");
    assert!(rang, "alone: still open at its alarm");
    assert!(
        took >= budget,
        "alone: it reads at its deadline, took {took:?}"
    );
    assert!(
        near_held(slowest_ms(&alone)),
        "alone: latency {}",
        slowest_ms(&alone)
    );

    let (woken, took, rang) = dir.in_ns(|| {
        std::thread::scope(|s| {
            let first = s.spawn(|| paced(&slow));
            std::thread::sleep(Duration::from_millis(400));
            let (nobody, _, _) = paced(&next);
            assert!(!nobody.up, "192.0.2.99 is nowhere: {nobody:?}");
            first.join().expect("the slow round")
        })
    });
    assert!(woken.up, "woken: {woken:?}");
    assert!(rang, "woken: still open at its alarm");
    assert!(
        took < Duration::from_millis(1000),
        "woken by the next turn's read (at about 420 ms), took {took:?}"
    );
    assert!(
        near_held(slowest_ms(&woken)),
        "woken: latency {}",
        slowest_ms(&woken)
    );
}

#[test]
fn traffic_that_piled_up_while_nobody_read_does_not_drop_the_next_round_s_replies() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // The shared socket takes in all traffic to the director's own address (its SSH, its
    // monitoring) and nobody reads it between rounds. 16 MiB of datagrams to the director
    // while no round runs fill its buffer (8 MiB) to the brim: the next round must still
    // see its replies.
    let site = site_of(&[(53, Scenario::Good)]);
    // 800 ms and one attempt: a reply the kernel dropped is not made good by a later one
    // (nor by the real server's own SYN-ACK again after 1 s).
    let budget = Duration::from_millis(800);
    let (fleet, mut requests) = fleet_requests(site.dir_path.path(), &[(VIP4, &[53])], budget);
    let mut req = requests.remove(0);
    req.retries = 0;
    let first = site
        .dir
        .in_ns(|| fleet.fleet.probe(&req, std::time::Instant::now()));
    assert!(first.up, "before the flood: {first:?}");
    site.servers[0].in_ns(|| {
        let sock = std::net::UdpSocket::bind("192.0.2.53:0").expect("a UDP socket");
        for _ in 0..16 * 1024 {
            sock.send_to(
                &[0u8; 1024],
                (format!("192.0.2.{}", topo::DIRECTOR_HOST), 9),
            )
            .expect("send to the director");
        }
    });
    // Idle time after the flood: a round within PACED_READ of a read that found the
    // socket empty (the first round's last) does not catch up, by design.
    std::thread::sleep(vipcheck::probe::fleet::PACED_READ);
    let second = site
        .dir
        .in_ns(|| fleet.fleet.probe(&req, std::time::Instant::now()));
    assert!(second.up, "after the flood: {second:?}");
}

/// A good real server (host 11, port 80) cabled to the director through a relay that
/// holds every frame from VIP4 for `delay`; the director's entry for it is PERMANENT (no
/// confirmation in any round).
fn behind_a_slow_relay(delay: Duration) -> (topo::Cabled, common::netns::Relay) {
    assert_eq!(VIP4, "192.0.2.20");
    let cabled = topo::Cabled::new(&topo::real_server_mac(11), Scenario::Good, &[80]);
    let relay = common::netns::Relay::start_with(&cabled.relay, &cabled.ra, &cabled.rb, move |f| {
        let from_vip = f.len() > 34 && f[12..14] == [0x08, 0x00] && f[26..30] == [192, 0, 2, 20];
        if from_vip {
            common::netns::Forward::Delay(delay)
        } else {
            common::netns::Forward::Pass
        }
    });
    cabled.dir.ip(&format!(
        "neigh replace 192.0.2.11 lladdr {} dev eth0 nud permanent",
        topo::real_server_mac(11)
    ));
    (cabled, relay)
}

/// A good real server (host 11, port 80) cabled to the director through a relay that
/// counts the ARP requests (opcode 1) for `target`, to `to` alone when given; the count
/// so far. The relay forwards every frame.
fn counting_arp_requests(
    to: Option<[u8; 6]>,
    target: [u8; 4],
) -> (topo::Cabled, common::netns::Relay, Arc<Mutex<usize>>) {
    let cabled = topo::Cabled::new(&topo::real_server_mac(11), Scenario::Good, &[80]);
    let asked = Arc::new(Mutex::new(0usize));
    let count = asked.clone();
    let relay = common::netns::Relay::start_with(&cabled.relay, &cabled.ra, &cabled.rb, move |f| {
        let counted = f.len() >= 42
            && to.map_or(true, |mac| f[..6] == mac)
            && f[12..14] == [0x08, 0x06]
            && f[20..22] == [0, 1]
            && f[38..42] == target;
        if counted {
            *count.lock().unwrap() += 1;
        }
        common::netns::Forward::Pass
    });
    (cabled, relay, asked)
}

#[test]
fn a_next_hop_confirmed_by_one_round_is_not_confirmed_again_by_the_next() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // The kernel's entry for the real server is STALE (nothing of the director's own
    // talks to it), so a round confirms its MAC with our own ARP request. Once a round
    // has confirmed it, the fleet's next rounds must not ask again: the agent would send
    // one more frame on every turn of every real server, and report a changed MAC on
    // every turn until its next refresh.
    // ARP requests for the real server's own address, to anyone.
    let (
        topo::Cabled {
            rs: _rs,
            dir,
            relay: _relay_ns,
            ..
        },
        _relay,
        asked,
    ) = counting_arp_requests(None, [192, 0, 2, 11]);
    let tmp = tempfile::tempdir().unwrap();
    let pairs = port_80_pairs(tmp.path(), &[(VIP4, &[11])]);
    let asked_in = |fleet: &vipcheck::status::FleetProbe| {
        let req = fleet.request(&pairs[0]).expect("the request");
        let before = *asked.lock().unwrap();
        let v = dir.in_ns(|| fleet.fleet.probe(&req, Instant::now()));
        // The relay forwards before it counts the next frame; the round is over.
        std::thread::sleep(Duration::from_millis(50));
        (v, *asked.lock().unwrap() - before)
    };

    // The right MAC, STALE.
    dir.ip(&format!(
        "neigh replace 192.0.2.11 lladdr {} dev eth0 nud stale",
        topo::real_server_mac(11)
    ));
    let fleet = vipcheck::status::FleetProbe::new(Duration::from_millis(800), false);
    let (first, n) = asked_in(&fleet);
    assert!(first.up, "{first:?}");
    assert_eq!(n, 1, "the first round confirms the STALE entry's MAC");
    for round in 2..=3 {
        let (v, n) = asked_in(&fleet);
        assert!(v.up, "round {round}: {v:?}");
        assert_eq!(n, 0, "round {round} asked again: {v:?}");
    }

    // An old MAC, STALE: the first round finds the new one; the next ones probe it
    // directly and report no change again.
    dir.ip("neigh replace 192.0.2.11 lladdr 02:00:00:00:00:99 dev eth0 nud stale");
    let fleet = vipcheck::status::FleetProbe::new(Duration::from_millis(800), false);
    let (first, n) = asked_in(&fleet);
    assert!(first.up, "{first:?}");
    assert!(n >= 1, "the old MAC is confirmed: {first:?}");
    let change = first
        .mac_change
        .expect("the first round reports the change");
    assert_eq!(change.to.to_string(), topo::real_server_mac(11));
    for round in 2..=3 {
        let (v, n) = asked_in(&fleet);
        assert!(v.up, "round {round}: {v:?}");
        assert_eq!(n, 0, "round {round} asked again: {v:?}");
        assert!(v.mac_change.is_none(), "round {round}: {v:?}");
    }
}

#[test]
fn after_an_all_up_turn_the_arp_answers_stand_until_they_are_old_then_are_asked_again() {
    if !privileged("network namespaces and packet sockets") {
        return;
    }
    // The agent's turn after one that found every port up does not ask the ARP-problem
    // question again while the last answers are younger than ARP_REASK; any other turn
    // asks. A real server that starts answering for the VIP meanwhile is caught at the
    // first question after that.
    use vipcheck::probe::fleet::ARP_REASK;
    // ARP requests for the VIP to the real server alone (the director's kernel asks
    // everyone for the VIP when it answers a stray SYN-ACK).
    let (
        topo::Cabled {
            rs,
            dir,
            relay: _relay_ns,
            ..
        },
        _relay,
        asked,
    ) = counting_arp_requests(Some([0x02, 0, 0, 0, 0x01, 11]), [192, 0, 2, 20]);
    // A confirmed next hop: no confirmation in any round.
    dir.ip(&format!(
        "neigh replace 192.0.2.11 lladdr {} dev eth0 nud permanent",
        topo::real_server_mac(11)
    ));
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, mut requests) =
        fleet_requests(tmp.path(), &[(VIP4, &[11])], Duration::from_millis(800));
    let req = requests.remove(0);
    let memo = vipcheck::probe::engine::IcmpMemo::default();
    let turn_with = |all_up_before: bool, arp_reask: Duration| {
        let before = *asked.lock().unwrap();
        let t = Turn {
            alarm: None,
            all_up_before,
            arp_reask,
        };
        let v = dir
            .in_ns(|| fleet.fleet.probe_many(&[&req], Instant::now(), &memo, &t))
            .pop()
            .expect("one verdict");
        // The relay has forwarded (and counted) every frame of the round by now.
        std::thread::sleep(Duration::from_millis(50));
        (v, *asked.lock().unwrap() - before)
    };
    let turn = |all_up_before: bool| turn_with(all_up_before, ARP_REASK);
    let start = Instant::now();
    let (v, n) = turn(false);
    assert!(v.up, "{v:?}");
    assert_eq!(n, 1, "the first turn asks");
    let (v, n) = turn_with(true, Duration::ZERO);
    assert!(v.up, "{v:?}");
    assert_eq!(n, 1, "--arp-reask 0: every turn asks");
    let (v, n) = turn(true);
    assert!(v.up, "{v:?}");
    assert_eq!(n, 0, "after an all-up turn the answers stand");
    let (v, n) = turn(false);
    assert!(v.up, "{v:?}");
    assert_eq!(n, 1, "after a turn not all up the question is asked");
    let asked_last = Instant::now();

    // The real server starts answering ARP for the VIP (on lo).
    rs.arp_sysctls("eth0", "0");
    let (v, n) = turn(true);
    assert_eq!(n, 0, "not asked within {ARP_REASK:?}: {v:?}");
    assert!(v.up, "the standing answer: {v:?}");
    std::thread::sleep(ARP_REASK.saturating_sub(asked_last.elapsed()) + Duration::from_millis(100));
    let (v, n) = turn(true);
    assert_eq!(n, 1, "asked again after {ARP_REASK:?}");
    assert!(!v.up, "{v:?}");
    assert!(v.reason.contains("answers ARP for VIP 192.0.2.20"), "{v:?}");
    assert!(
        start.elapsed() < ARP_REASK * 3,
        "bounded: {:?}",
        start.elapsed()
    );
}
