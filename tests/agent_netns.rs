//! `vipcheck agent` against real network stacks: a director and real servers in network
//! namespaces (tests/common/topo.rs), the agent run inside the director's namespace.
//! Asserted: the verdict files of the usual matrix (good, no VIP, no listener, forwarder,
//! ARP problem, IPv6) within two intervals, and that they, `/status`, `/metrics` and
//! `vipcheck status --json` agree on every pair; rise and fall; the depool threshold;
//! fail-static when the agent's interface is deleted; following the config; sd_notify.
//! Needs root; prints "skipped: needs root (...)" otherwise, unless
//! VIPCHECK_REQUIRE_PRIVILEGED=1.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{in_named, privileged, run_bounded, ChildGuard};
use common::topo::{self, Scenario, VIP4, VIP6};

/// The agent, running in the director's namespace until dropped.
struct Agent {
    _child: ChildGuard,
    state: PathBuf,
    log: PathBuf,
    ns: String,
    _tmp: tempfile::TempDir,
}

const LISTEN: &str = "127.0.0.1:9874";

impl Agent {
    /// `vipcheck agent CONFIG ARGS` in `dir`, with its state in a temp dir.
    fn start(
        dir: &common::netns::Netns,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        // On tmpfs when there is one, as the agent's /run/vipcheck is: a synced write to a
        // busy disk can take longer than a turn.
        let tmp = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("temp dir");
        let conf = tmp.path().join("keepalived.conf");
        std::fs::write(&conf, config).expect("write the config");
        Agent::start_at(dir, tmp, &conf, args, env)
    }

    fn start_at(
        dir: &common::netns::Netns,
        tmp: tempfile::TempDir,
        conf: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        let state = tmp.path().join("state");
        let log = tmp.path().join("agent.log");
        let mut c = dir.command(env!("CARGO_BIN_EXE_vipcheck"));
        c.arg("agent")
            .arg(conf)
            .arg("--state-dir")
            .arg(&state)
            .args(["--listen", LISTEN])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let child = c.spawn().expect("start the agent");
        Agent {
            _child: ChildGuard(child),
            state,
            log,
            ns: dir.name().to_string(),
            _tmp: tmp,
        }
    }

    /// The verdict file of a pair: `Some("0")` up, `Some("1")` down.
    fn verdict(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.state.join(name))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `f` every 20 ms until it holds or `limit` passes; returns the time it took.
    fn wait(&self, limit: Duration, what: &str, mut f: impl FnMut(&Agent) -> bool) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f(self) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{what}: not within {limit:?}\nagent log:\n{}", self.log());
    }

    /// Waits until every pair of `all` has its file (two intervals of 1 s, plus a second
    /// for the process to start on a busy machine), then checks each holds its verdict.
    fn assert_verdicts(&self, all: &[(String, bool)]) {
        self.wait(Duration::from_secs(3), "every verdict file", |a| {
            all.iter().all(|(n, _)| a.verdict(n).is_some())
        });
        for (n, up) in all {
            assert_eq!(
                self.verdict(n).as_deref(),
                Some(if *up { "0" } else { "1" }),
                "{n}\n{}",
                self.log()
            );
        }
    }

    /// `GET path` from the agent's endpoint, inside its namespace.
    fn get(&self, path: &str) -> String {
        in_named(&self.ns, || vipcheck::agent::client::get(LISTEN, path))
            .unwrap_or_else(|e| panic!("{path}: {e}\nagent log:\n{}", self.log()))
    }
}

fn name(vip: &str, port: u16, rip: &str) -> String {
    format!(
        "tcp_{}_{port}_{}",
        vip.replace(':', "-"),
        rip.replace(':', "-")
    )
}

fn rip_of(host: u8, v6: bool) -> String {
    if v6 {
        format!("2001:db8::{host:x}")
    } else {
        format!("192.0.2.{host}")
    }
}

/// A keepalived config: one DR service on VIP:80 per VIP with `hosts` as real servers.
fn keepalived(vips: &[&str], hosts: &[u8], delay_loop: &str) -> String {
    let mut s = String::from("global_defs {\n    router_id test\n}\n");
    for vip in vips {
        s.push_str(&format!(
            "virtual_server {vip} 80 {{\n    delay_loop {delay_loop}\n    lb_kind DR\n    protocol TCP\n"
        ));
        for &h in hosts {
            s.push_str(&format!(
                "    real_server {} 80 {{\n    }}\n",
                rip_of(h, vip.contains(':'))
            ));
        }
        s.push_str("}\n");
    }
    s
}

/// Whether a pair of the matrix is up.
fn expected_up(s: Scenario, v6: bool) -> bool {
    match s {
        Scenario::Good => true,
        // IPv6 has no arp_ignore: a VIP on lo is never answered for.
        Scenario::ArpAnswering => v6,
        _ => false,
    }
}

const MATRIX: [(u8, Scenario); 6] = [
    (11, Scenario::Good),
    (12, Scenario::NoVip),
    (13, Scenario::NoListener),
    (14, Scenario::Forwarder),
    (15, Scenario::ArpAnswering),
    (16, Scenario::VipOnEth0),
];

/// `vipcheck status --json` on `config` in the director's namespace.
fn status_json(dir: &common::netns::Netns, config: &Path) -> serde_json::Value {
    let mut c: Command = dir.command(env!("CARGO_BIN_EXE_vipcheck"));
    c.arg("status")
        .arg(config)
        .args(["--json", "--timeout", "500ms"]);
    let out = run_bounded(&mut c, Duration::from_secs(30));
    serde_json::from_slice(&out.stdout).expect("status --json")
}

/// The value of a metric line that starts with `prefix` (name and labels).
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn the_matrix_s_verdict_files_are_right_within_two_intervals_and_agree_with_status() {
    if !privileged("builds network namespaces and runs the agent with raw sockets") {
        return;
    }
    let site = topo::Site::new(&MATRIX, &[80]);
    let hosts: Vec<u8> = MATRIX.iter().map(|(h, _)| *h).collect();
    // The interval comes from delay_loop.
    let agent = Agent::start(
        &site.dir,
        &keepalived(&[VIP4, VIP6], &hosts, "1"),
        &["--timeout", "400ms"],
        &[],
    );
    let all: Vec<(String, bool)> = [VIP4, VIP6]
        .iter()
        .flat_map(|vip| {
            MATRIX.iter().map(move |&(h, s)| {
                let v6 = vip.contains(':');
                (name(vip, 80, &rip_of(h, v6)), expected_up(s, v6))
            })
        })
        .collect();
    agent.assert_verdicts(&all);
    // /status, /metrics and `status --json` say the same of every pair.
    let conf = agent._tmp.path().join("keepalived.conf");
    let ours: serde_json::Value = serde_json::from_str(&agent.get("/status")).expect("JSON");
    let theirs = status_json(&site.dir, &conf);
    let metrics = agent.get("/metrics");
    let (ours, theirs) = (ours.as_array().unwrap(), theirs.as_array().unwrap());
    assert_eq!(ours.len(), all.len());
    assert_eq!(theirs.len(), all.len());
    for (o, t) in ours.iter().zip(theirs) {
        for k in ["service", "vip", "port", "proto", "rip", "method", "up"] {
            assert_eq!(o[k], t[k], "{k}: {o} vs {t}");
        }
        let (vip, rip) = (o["vip"].as_str().unwrap(), o["rip"].as_str().unwrap());
        let file = agent.verdict(&name(vip, 80, rip));
        assert_eq!(file.as_deref() == Some("0"), o["up"] == true, "{o}");
        let labels = format!(
            "vipcheck_agent_pair_up{{service=\"{}\",vip=\"{vip}\",port=\"80\",proto=\"tcp\",real=\"{rip}\",method=\"dr\"}}",
            o["service"].as_str().unwrap()
        );
        assert_eq!(
            metric(&metrics, &labels),
            Some(if o["up"] == true { 1.0 } else { 0.0 }),
            "{labels}"
        );
    }
    assert!(metrics.contains("vipcheck_agent_probe_latency_seconds_bucket{"));
    assert_eq!(metric(&metrics, "vipcheck_agent_fail_static "), Some(0.0));
    let ups = all.iter().filter(|(_, up)| *up).count() as f64;
    let v4_ups = MATRIX
        .iter()
        .filter(|(_, s)| expected_up(*s, false))
        .count() as f64;
    assert_eq!(
        metric(
            &metrics,
            "vipcheck_agent_service_pairs_up{service=\"192.0.2.20:80/tcp\"}"
        ),
        Some(v4_ups)
    );
    assert!(ups > v4_ups);
    // `status --agent` prints the agent's view.
    let mut c = site.dir.command(env!("CARGO_BIN_EXE_vipcheck"));
    c.args(["status", "--agent", LISTEN, "--json"]);
    let out = run_bounded(&mut c, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "some pairs are down");
    let via: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let via = via.as_array().expect("a JSON array");
    assert_eq!(via.len(), ours.len(), "a row per pair");
    for (v, o) in via.iter().zip(ours) {
        assert_eq!(v["up"], o["up"]);
        assert_eq!(v["rip"], o["rip"]);
    }
}

#[test]
fn a_real_server_s_ports_probed_in_one_round_get_the_verdicts_each_would_get_alone() {
    if !privileged("builds network namespaces and runs the agent with raw sockets") {
        return;
    }
    // The agent probes a real server's ports in one round (one ARP question, one echo,
    // a SYN per port); `vipcheck status` probes every pair on its own. Port 81 has no
    // listener anywhere: closed on the good servers, silent or forwarded on the others.
    const HOSTS: [(u8, Scenario); 4] = [
        (11, Scenario::Good),
        (12, Scenario::NoVip),
        (14, Scenario::Forwarder),
        (16, Scenario::VipOnEth0),
    ];
    let ports = [80u16, 81, 8080];
    let site = topo::Site::new(&HOSTS, &[80, 8080]);
    let mut config = String::from("global_defs {\n    router_id test\n}\n");
    for port in ports {
        config.push_str(&format!(
            "virtual_server {VIP4} {port} {{\n    delay_loop 1\n    lb_kind DR\n    protocol TCP\n"
        ));
        for (h, _) in HOSTS {
            config.push_str(&format!("    real_server 192.0.2.{h} {port} {{\n    }}\n"));
        }
        config.push_str("}\n");
    }
    let agent = Agent::start(&site.dir, &config, &["--timeout", "400ms"], &[]);
    let all: Vec<(String, bool)> = ports
        .iter()
        .flat_map(|&port| {
            HOSTS.iter().map(move |&(h, s)| {
                let up = s == Scenario::Good && port != 81;
                (name(VIP4, port, &format!("192.0.2.{h}")), up)
            })
        })
        .collect();
    agent.assert_verdicts(&all);
    // The same verdicts, and the same reasons, as each pair probed alone.
    let conf = agent._tmp.path().join("keepalived.conf");
    let ours: serde_json::Value = serde_json::from_str(&agent.get("/status")).expect("JSON");
    let alone = status_json(&site.dir, &conf);
    let (ours, alone) = (ours.as_array().unwrap(), alone.as_array().unwrap());
    assert_eq!(ours.len(), all.len());
    assert_eq!(alone.len(), all.len());
    for (o, a) in ours.iter().zip(alone) {
        assert_eq!(o["rip"], a["rip"]);
        assert_eq!(o["port"], a["port"]);
        assert_eq!(o["up"], a["up"], "{o} vs {a}");
        let (ro, ra) = (o["reason"].as_str().unwrap(), a["reason"].as_str().unwrap());
        // The latencies in the reasons differ; the words do not.
        let words = |r: &str| -> String {
            r.split_whitespace()
                .filter(|w| !w.chars().next().is_some_and(|c| c.is_ascii_digit()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(words(ro), words(ra), "{o} vs {a}");
    }
}

#[test]
fn silent_servers_rounds_do_not_hold_up_the_next_turns() {
    if !privileged("builds network namespaces and runs the agent with raw sockets") {
        return;
    }
    // Five real servers at 1 s: turns a fifth of a second apart. The thread that leads
    // the schedule runs each turn itself; the four silent servers' rounds last 700 ms,
    // past the next turn, so each must hand the lead on when the next turn comes. Held
    // up instead, the leader would need 2.8 s a second: the turns would fall behind
    // until whole turns are skipped (overruns).
    let hosts = [
        (41, Scenario::NoVip),
        (42, Scenario::NoVip),
        (43, Scenario::Good),
        (44, Scenario::NoVip),
        (45, Scenario::NoVip),
    ];
    let site = topo::Site::new(&hosts, &[80]);
    let ids: Vec<u8> = hosts.iter().map(|&(h, _)| h).collect();
    let agent = Agent::start(
        &site.dir,
        &keepalived(&[VIP4], &ids, "1"),
        &["--timeout", "700ms", "--fall", "1", "--rise", "1"],
        &[],
    );
    let all: Vec<(String, bool)> = hosts
        .iter()
        .map(|&(h, s)| (name(VIP4, 80, &rip_of(h, false)), s == Scenario::Good))
        .collect();
    agent.assert_verdicts(&all);
    std::thread::sleep(Duration::from_secs(3));
    let metrics = agent.get("/metrics");
    assert_eq!(
        metric(&metrics, "vipcheck_agent_schedule_overruns_total "),
        Some(0.0),
        "{metrics}\n{}",
        agent.log()
    );
    // Every target had its turn every second: at least three each since the files.
    let probes = metric(&metrics, "vipcheck_agent_probes_total ").unwrap_or(0.0);
    assert!(probes >= 15.0, "{probes} probes\n{metrics}");
}

/// The turn interval of [`agent_on_one_good_server`].
const SHORT_INTERVAL: Duration = Duration::from_millis(300);

/// One good real server (host 11, port 80) and the agent on it, every [`SHORT_INTERVAL`]
/// with a 200 ms timeout and `args`, its pair up: the site, the agent and the pair's name.
fn agent_on_one_good_server(args: &[&str]) -> (topo::Site, Agent, String) {
    let site = topo::Site::new(&[(11, Scenario::Good)], &[80]);
    let interval = format!("{}ms", SHORT_INTERVAL.as_millis());
    let mut all = vec!["--interval", interval.as_str(), "--timeout", "200ms"];
    all.extend_from_slice(args);
    let agent = Agent::start(&site.dir, &keepalived(&[VIP4], &[11], "60"), &all, &[]);
    let n = name(VIP4, 80, "192.0.2.11");
    agent.wait(Duration::from_secs(2), "up", |a| {
        a.verdict(&n).as_deref() == Some("0")
    });
    (site, agent, n)
}

#[test]
fn a_server_that_loses_its_vip_goes_down_after_fall_turns_and_back_after_rise() {
    if !privileged("builds network namespaces and runs the agent with raw sockets") {
        return;
    }
    let (site, agent, n) = agent_on_one_good_server(&["--fall", "3", "--rise", "2"]);
    let rs = &site.servers[0];
    // The results needed are counted, not timed: after a turn that ran late (a loaded
    // machine) the next comes less than an interval later, by the schedule's design.
    let probes = |a: &Agent| metric(&a.get("/metrics"), "vipcheck_agent_probes_total ");
    let before = probes(&agent).expect("probes_total");
    rs.ip(&format!("addr del {VIP4}/32 dev lo"));
    let took = agent.wait(Duration::from_secs(5), "down after fall", |a| {
        a.verdict(&n).as_deref() == Some("1")
    });
    // Three failures in a row: the first may come at once, the third two intervals on.
    let counted = probes(&agent).expect("probes_total") - before;
    assert!(counted >= 3.0, "down after {counted} results");
    assert!(
        took <= SHORT_INTERVAL * 4 + Duration::from_millis(500),
        "{took:?}"
    );
    let before = probes(&agent).expect("probes_total");
    rs.ip(&format!("addr add {VIP4}/32 dev lo"));
    let took = agent.wait(Duration::from_secs(5), "up after rise", |a| {
        a.verdict(&n).as_deref() == Some("0")
    });
    let counted = probes(&agent).expect("probes_total") - before;
    assert!(counted >= 2.0, "up after {counted} results");
    assert!(
        took <= SHORT_INTERVAL * 3 + Duration::from_millis(500),
        "{took:?}"
    );
    let metrics = agent.get("/metrics");
    assert!(
        metrics.contains(&format!(
            "vipcheck_agent_pair_flaps_total{{service=\"192.0.2.20:80/tcp\",vip=\"{VIP4}\",port=\"80\",proto=\"tcp\",real=\"192.0.2.11\",method=\"dr\"}} 2"
        )),
        "{metrics}"
    );
}

#[test]
fn a_healthy_server_that_starts_answering_arp_for_the_vip_goes_down_within_the_reask_time() {
    if !privileged("builds network namespaces and runs the agent with raw sockets") {
        return;
    }
    // After an all-up turn the agent does not ask the ARP-problem question again until
    // the last answer is ARP_REASK old: a server that starts answering for the VIP while
    // up is still caught, within that time and its fall turns.
    use vipcheck::probe::fleet::ARP_REASK;
    let (site, agent, n) = agent_on_one_good_server(&["--fall", "1"]);
    site.servers[0].arp_sysctls("eth0", "0");
    let limit = ARP_REASK + SHORT_INTERVAL * 2 + Duration::from_secs(1);
    let took = agent.wait(
        limit + Duration::from_secs(2),
        "down for its ARP answer",
        |a| a.verdict(&n).as_deref() == Some("1"),
    );
    assert!(took <= limit, "{took:?}");
    let status = agent.get("/status");
    assert!(
        status.contains("answers ARP for VIP 192.0.2.20"),
        "{status}"
    );
}

#[test]
fn the_depool_threshold_keeps_half_the_pool_with_the_latest_failures() {
    if !privileged("builds network namespaces and runs the agent with raw sockets") {
        return;
    }
    let hosts = [11, 12, 13, 14];
    let site = topo::Site::new(&hosts.map(|h| (h, Scenario::Good)), &[80]);
    let agent = Agent::start(
        &site.dir,
        &keepalived(&[VIP4], &hosts, "60"),
        &[
            "--interval",
            "200ms",
            "--timeout",
            "150ms",
            "--fall",
            "1",
            "--depool-threshold",
            "0.5",
        ],
        &[],
    );
    let names: Vec<String> = hosts
        .iter()
        .map(|h| name(VIP4, 80, &format!("192.0.2.{h}")))
        .collect();
    agent.wait(Duration::from_secs(2), "all up", |a| {
        names.iter().all(|n| a.verdict(n).as_deref() == Some("0"))
    });
    // 11 fails first, then 12, then 13: 0.5 of four keeps two up, 14 and the latest (13).
    for (i, rs) in site.servers[..3].iter().enumerate() {
        rs.ip(&format!("addr del {VIP4}/32 dev lo"));
        if i < 2 {
            let n = &names[i];
            agent.wait(Duration::from_secs(3), "down", |a| {
                a.verdict(n).as_deref() == Some("1")
            });
        }
    }
    agent.wait(Duration::from_secs(3), "the threshold holds one", |a| {
        metric(
            &a.get("/metrics"),
            "vipcheck_agent_service_depool_held{service=\"192.0.2.20:80/tcp\"}",
        ) == Some(1.0)
    });
    // Stays that way.
    std::thread::sleep(Duration::from_millis(600));
    let files: Vec<Option<String>> = names.iter().map(|n| agent.verdict(n)).collect();
    assert_eq!(
        files,
        ["1", "1", "0", "0"].map(|s| Some(s.to_string())),
        "{}",
        agent.log()
    );
    let status: serde_json::Value = serde_json::from_str(&agent.get("/status")).unwrap();
    assert!(status[2]["reason"]
        .as_str()
        .unwrap()
        .starts_with("held up by the depool threshold"));
    assert!(
        agent.log().contains("depool threshold 0.5"),
        "{}",
        agent.log()
    );
}

#[test]
fn when_the_agent_cannot_probe_it_keeps_the_last_verdicts() {
    if !privileged("builds network namespaces and runs the agent with raw sockets") {
        return;
    }
    let site = topo::Site::new(&[(11, Scenario::Good), (12, Scenario::NoVip)], &[80]);
    let agent = Agent::start(
        &site.dir,
        &keepalived(&[VIP4], &[11, 12], "60"),
        &["--interval", "200ms", "--timeout", "150ms", "--fall", "1"],
        &[],
    );
    let (good, bad) = (name(VIP4, 80, "192.0.2.11"), name(VIP4, 80, "192.0.2.12"));
    agent.wait(Duration::from_secs(2), "verdicts", |a| {
        a.verdict(&good).as_deref() == Some("0") && a.verdict(&bad).as_deref() == Some("1")
    });
    // The agent's own interface goes away: no route, no socket.
    site.dir.ip("link del eth0");
    agent.wait(Duration::from_secs(3), "fail-static exported", |a| {
        metric(&a.get("/metrics"), "vipcheck_agent_fail_static ") == Some(1.0)
    });
    // Ten turns later, nothing changed.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        agent.verdict(&good).as_deref(),
        Some("0"),
        "{}",
        agent.log()
    );
    assert_eq!(agent.verdict(&bad).as_deref(), Some("1"));
    let metrics = agent.get("/metrics");
    assert!(metric(&metrics, "vipcheck_agent_probe_errors_total ").unwrap() >= 5.0);
    let status: serde_json::Value = serde_json::from_str(&agent.get("/status")).unwrap();
    assert_eq!(status[0]["up"], true);
    assert!(status[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("cannot probe"));
    assert!(
        agent.log().contains("keeping its last verdict"),
        "{}",
        agent.log()
    );
}

#[test]
fn the_agent_follows_the_config_and_removes_the_files_of_removed_pairs() {
    if !privileged("builds network namespaces and runs the agent with raw sockets") {
        return;
    }
    let site = topo::Site::new(&[(11, Scenario::Good), (12, Scenario::Good)], &[80]);
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("keepalived.conf");
    std::fs::write(&conf, keepalived(&[VIP4], &[11], "60")).unwrap();
    let agent = Agent::start_at(
        &site.dir,
        tmp,
        &conf,
        &["--interval", "200ms", "--timeout", "150ms"],
        &[],
    );
    let (a11, a12) = (name(VIP4, 80, "192.0.2.11"), name(VIP4, 80, "192.0.2.12"));
    agent.wait(Duration::from_secs(2), "first", |a| {
        a.verdict(&a11).is_some()
    });
    assert!(agent.verdict(&a12).is_none());
    std::fs::write(&conf, keepalived(&[VIP4], &[12], "60")).unwrap();
    agent.wait(Duration::from_secs(3), "follows", |a| {
        a.verdict(&a12).as_deref() == Some("0") && a.verdict(&a11).is_none()
    });
}

#[test]
fn systemd_hears_ready_and_the_watchdog() {
    if !privileged("builds network namespaces and runs the agent with raw sockets") {
        return;
    }
    let site = topo::Site::new(&[(11, Scenario::Good)], &[80]);
    let sock_dir = tempfile::tempdir().unwrap();
    let path = sock_dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let agent = Agent::start(
        &site.dir,
        &keepalived(&[VIP4], &[11], "1"),
        &[],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let start = Instant::now();
    let (mut ready, mut watchdogs, mut status) = (false, 0, false);
    let mut buf = [0u8; 512];
    while start.elapsed() < Duration::from_secs(5) && !(ready && watchdogs >= 3 && status) {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            ready |= msg.contains("READY=1");
            watchdogs += usize::from(msg.contains("WATCHDOG=1"));
            status |= msg.starts_with("STATUS=") && msg.contains("pairs");
        }
    }
    assert!(ready, "no READY=1\n{}", agent.log());
    assert!(watchdogs >= 3, "{watchdogs} WATCHDOG=1\n{}", agent.log());
    assert!(status, "no STATUS=");
}

#[test]
fn a_long_round_does_not_starve_the_watchdog() {
    if !privileged("builds network namespaces and runs the agent with raw sockets") {
        return;
    }
    // One silent server, probed every 30 s with a 3 s timeout: the leader's first round
    // waits out 3 s with no other turn due. The watchdog (every 200 ms) must still be fed
    // meanwhile: the round's alarm hands the lead on at the next feed.
    let site = topo::Site::new(&[(11, Scenario::NoVip)], &[80]);
    let sock_dir = tempfile::tempdir().unwrap();
    let path = sock_dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let agent = Agent::start(
        &site.dir,
        &keepalived(&[VIP4], &[11], "30"),
        &["--timeout", "3s"],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut buf = [0u8; 512];
    let mut ready_at = None;
    let start = Instant::now();
    // Bounded by 2 s after READY (or 10 s without it).
    while start.elapsed() < Duration::from_secs(10)
        && ready_at.map_or(true, |t: Instant| t.elapsed() < Duration::from_millis(500))
    {
        if let Ok(n) = sock.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
                ready_at = Some(Instant::now());
            }
        }
    }
    assert!(ready_at.is_some(), "no READY=1\n{}", agent.log());
    // From 0.5 s to 2.5 s after READY, inside the silent round's 3 s.
    let until = Instant::now() + Duration::from_secs(2);
    let mut watchdogs = 0;
    while Instant::now() < until {
        if let Ok(n) = sock.recv(&mut buf) {
            watchdogs += usize::from(String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1"));
        }
    }
    assert!(
        watchdogs >= 5,
        "{watchdogs} WATCHDOG=1 in 2 s (every 200 ms expected)\n{}",
        agent.log()
    );
    assert_eq!(
        agent.verdict(&name(VIP4, 80, "192.0.2.11")),
        None,
        "the round is still on"
    );
}

#[test]
fn an_ldirectord_config_is_probed_on_its_checkinterval() {
    if !privileged("builds network namespaces and runs the agent with raw sockets") {
        return;
    }
    let site = topo::Site::new(&[(11, Scenario::Good), (12, Scenario::NoVip)], &[80]);
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("ldirectord.cf");
    std::fs::write(
        &conf,
        format!(
            "checkinterval=1\nvirtual={VIP4}:80\n\treal=192.0.2.11:80 gate\n\
             \treal=192.0.2.12:80 gate\n\tchecktype=connect\n"
        ),
    )
    .unwrap();
    let agent = Agent::start_at(&site.dir, tmp, &conf, &["--timeout", "300ms"], &[]);
    let (good, bad) = (name(VIP4, 80, "192.0.2.11"), name(VIP4, 80, "192.0.2.12"));
    agent.wait(Duration::from_secs(3), "verdicts", |a| {
        a.verdict(&good).as_deref() == Some("0") && a.verdict(&bad).as_deref() == Some("1")
    });
    // One probe a second per pair: some 4 turns each by now, 8 in all; ldirectord's
    // default of 10 s would have given 2.
    std::thread::sleep(Duration::from_secs(3));
    let probes = metric(&agent.get("/metrics"), "vipcheck_agent_probes_total ").unwrap();
    assert!((6.0..=12.0).contains(&probes), "{probes} probes");
}
