//! `vipcheck status`: probe every DR/TUN pair of a config at once and show, per virtual
//! service, which real servers really serve the VIP — as a table, JSON, or Prometheus
//! textfile metrics.
//!
//! Probing happens in this process ([`FleetProbe`] over [`Fleet`]): each pair gets the
//! [`Request`] the generated check's `vipcheck probe` would build (built here directly;
//! a test proves the two agree), and the probes share one
//! packet socket per interface, one route and neighbour lookup per real server, and one
//! ICMP result per VIP and real server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{ForwardingMethod, Protocol, Tunnel, VirtualService};
use crate::probe::fleet::Fleet;
use crate::probe::request::{CheckSelection, ProbeSpec, Request, DEFAULT_RETRIES};
use crate::probe::session::AppCheckOptions;
use crate::probe::udp::UdpCheckOptions;
use crate::probe::Verdict;
use crate::rewrite::command::{ColorChoice, GenerateInputs};

pub mod ipvs;
pub use ipvs::pairs_from_ipvs;

/// What `vipcheck status` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusInputs {
    /// The keepalived.conf or ldirectord.cf to read (optional with `ipvs`).
    pub config: Option<std::path::PathBuf>,
    /// At most this many probes in flight (1 or more).
    pub parallel: usize,
    /// Each probe's time budget.
    pub timeout: Duration,
    /// One JSON array, an object per pair.
    pub json: bool,
    /// Metrics for node_exporter's textfile collector.
    pub prometheus: bool,
    /// Colour the table.
    pub color: ColorChoice,
    /// A real server that answers ARP for the VIP is a warning, not down.
    pub allow_arp_answer: bool,
    pub generate: GenerateInputs,
    /// Audit the kernel's IPVS table (and, with a config, its drift from it).
    pub ipvs: bool,
}

/// One real server behind one VIP:port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pair {
    /// The virtual service's label (`192.0.2.20:80/tcp`, `fwmark 5/tcp`, ...).
    pub service: String,
    pub vip: IpAddr,
    pub port: Option<u16>,
    pub proto: Protocol,
    pub rip: IpAddr,
    pub method: ForwardingMethod,
    /// What the config already checks on this real server (`HTTP_GET`, `negotiate http`).
    pub config_checks: Vec<String>,
    /// The service's check interval ([`VirtualService::interval`]).
    #[serde(skip)]
    pub interval: Option<Duration>,
    /// TUN: the real server's encapsulation (shown only when not IPIP).
    #[serde(skip_serializing_if = "is_ipip")]
    pub tunnel: Tunnel,
    /// The UDP service's own check from the config (DNS_CHECK, UDP_CHECK, `service=dns`),
    /// run through the VIP; default (none) otherwise.
    #[serde(skip)]
    pub udp: UdpCheckOptions,
}

fn is_ipip(t: &Tunnel) -> bool {
    *t == Tunnel::default()
}

impl Pair {
    /// The pair's name as a file name and a keepalived `track_file` name:
    /// `PROTO_VIP_PORT_RIP`, with `any` for a service that covers every port and an IPv6
    /// address's colons written as `-` (so `tcp_2001-db8--20_80_2001-db8--11`). The agent
    /// writes its verdict to `STATE_DIR/NAME`; the generated `FILE_CHECK`s and ldirectord
    /// checks read that file. Distinct pairs get distinct names: the parts are separated by
    /// `_`, which no address contains, and `-` stands for `:` only.
    pub fn state_name(&self) -> String {
        state_name(self.proto, self.vip, self.port, self.rip)
    }
}

/// [`Pair::state_name`] from its parts: [`state_name_prefix`] and the real server's
/// address.
pub fn state_name(proto: Protocol, vip: IpAddr, port: Option<u16>, rip: IpAddr) -> String {
    state_name_prefix(proto, vip, port) + &state_addr(rip)
}

/// The part of a pair's name before the real server's address (`PROTO_VIP_PORT_`), for a
/// check that learns that address only when it runs (the ldirectord wrapper, for a real
/// added after the rewrite): `prefix + address with ':' written '-'` is the name.
pub fn state_name_prefix(proto: Protocol, vip: IpAddr, port: Option<u16>) -> String {
    let port = port.map_or_else(|| "any".to_string(), |p| p.to_string());
    format!("{}_{}_{port}_", proto.as_str(), state_addr(vip))
}

/// An address as a state name writes it: an IPv6 address's colons as `-`.
fn state_addr(ip: IpAddr) -> String {
    ip.to_string().replace(':', "-")
}

/// What probing one pair found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub up: bool,
    pub reason: String,
    pub latency: Option<Duration>,
}

/// Anything that can probe a pair (the real prober, or a stand-in in tests).
pub trait PairProbe: Sync {
    fn probe(&self, pair: &Pair) -> Outcome;
}

/// Every DR/TUN pair of the services, one per VIP and real server, in config order.
/// `fwmark_vips` supplies the VIPs of fwmark services.
pub fn pairs(services: &[VirtualService], fwmark_vips: &BTreeMap<u32, Vec<IpAddr>>) -> Vec<Pair> {
    let mut out = Vec::new();
    for vs in services {
        let mut vips = vs.vips.clone();
        for m in &vs.fwmarks {
            vips.extend(fwmark_vips.get(m).into_iter().flatten().copied());
        }
        for rs in vs
            .real_servers
            .iter()
            .filter(|r| r.method.needs_vip_on_real_server())
        {
            let config_checks: Vec<String> = rs
                .checks
                .iter()
                .map(|c| {
                    if c.detail.is_empty() {
                        c.kind.clone()
                    } else {
                        format!("{} {}", c.kind, c.detail)
                    }
                })
                .collect();
            for vip in &vips {
                out.push(Pair {
                    service: vs.label(),
                    vip: *vip,
                    port: rs.port.or(vs.port),
                    proto: vs.protocol,
                    rip: rs.addr,
                    method: rs.method,
                    config_checks: config_checks.clone(),
                    interval: vs.interval,
                    tunnel: rs.tunnel,
                    udp: config_udp_check(&rs.checks),
                });
            }
        }
    }
    out
}

/// The UDP service's own check from the config, as the probe's options (none when the
/// config has none, or one that cannot run through the VIP).
fn config_udp_check(checks: &[crate::config::ExistingCheck]) -> UdpCheckOptions {
    match crate::generate::udp_check::from_checks(checks) {
        Some(Ok(p)) => UdpCheckOptions {
            kind: Some(if p.check == "dns" {
                crate::probe::udp::UdpCheckKind::Dns
            } else {
                crate::probe::udp::UdpCheckKind::Datagram
            }),
            dns_name: p.dns_name,
            dns_type: p.dns_type,
            dns_expect: p.dns_expect,
            udp_payload: p.udp_payload,
            udp_expect_len: p.udp_expect_len,
        },
        _ => UdpCheckOptions::default(),
    }
}

/// Probes every pair with at most `parallel` probes in flight; results in pair order.
/// `progress` is called (from one thread at a time) with (done, total) after each probe.
pub fn probe_all(
    pairs: &[Pair],
    prober: &dyn PairProbe,
    parallel: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    let report = Mutex::new(());
    std::thread::scope(|s| {
        for _ in 0..parallel.clamp(1, pairs.len().max(1)) {
            let tx = tx.clone();
            let (next, done, report) = (&next, &done, &report);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(pair) = pairs.get(i) else { break };
                let outcome = prober.probe(pair);
                let _ = tx.send((i, outcome));
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if let Ok(_guard) = report.lock() {
                    progress(n, pairs.len());
                }
            });
        }
    });
    drop(tx);
    let mut results: Vec<Option<Outcome>> = vec![None; pairs.len()];
    for (i, o) in rx {
        results[i] = Some(o);
    }
    results
        .into_iter()
        .map(|o| {
            o.unwrap_or(Outcome {
                up: false,
                reason: "not probed".into(),
                latency: None,
            })
        })
        .collect()
}

fn latency_ms(o: &Outcome) -> Option<f64> {
    o.latency.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3)
}

/// `--json`: an array with one object per pair.
pub fn render_json(pairs: &[Pair], outcomes: &[Outcome]) -> String {
    #[derive(Serialize)]
    struct Row<'a> {
        service: &'a str,
        vip: IpAddr,
        port: Option<u16>,
        proto: Protocol,
        rip: IpAddr,
        method: &'static str,
        up: bool,
        reason: &'a str,
        latency_ms: Option<f64>,
        config_checks: &'a [String],
        /// TUN in GUE or GRE: `{"type": "gue", "port": 6080, "csum": "none"}`; absent
        /// for IPIP.
        #[serde(skip_serializing_if = "Option::is_none")]
        tunnel: Option<Tunnel>,
    }
    let rows: Vec<Row> = pairs
        .iter()
        .zip(outcomes)
        .map(|(p, o)| Row {
            service: &p.service,
            vip: p.vip,
            port: p.port,
            proto: p.proto,
            rip: p.rip,
            method: p.method.probe_arg(),
            up: o.up,
            reason: &o.reason,
            latency_ms: latency_ms(o),
            config_checks: &p.config_checks,
            tunnel: (!is_ipip(&p.tunnel)).then_some(p.tunnel),
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into());
    s.push('\n');
    s
}

fn prom_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `--prometheus`: node_exporter textfile-collector format.
pub fn render_prometheus(pairs: &[Pair], outcomes: &[Outcome]) -> String {
    let mut up = String::from(
        "# HELP vipcheck_real_server_up 1 when the real server answers on the VIP itself, else 0.\n\
         # TYPE vipcheck_real_server_up gauge\n",
    );
    let mut lat = String::from(
        "# HELP vipcheck_probe_latency_seconds Round trip of the VIP probe through the real server.\n\
         # TYPE vipcheck_probe_latency_seconds gauge\n",
    );
    for (p, o) in pairs.iter().zip(outcomes) {
        let labels = format!(
            "vip=\"{}\",port=\"{}\",proto=\"{}\",real=\"{}\",method=\"{}\"",
            prom_escape(&p.vip.to_string()),
            p.port.map_or(String::new(), |x| x.to_string()),
            p.proto,
            prom_escape(&p.rip.to_string()),
            p.method.probe_arg()
        );
        let _ = writeln!(up, "vipcheck_real_server_up{{{labels}}} {}", u8::from(o.up));
        if let Some(d) = o.latency {
            let _ = writeln!(
                lat,
                "vipcheck_probe_latency_seconds{{{labels}}} {:.6}",
                d.as_secs_f64()
            );
        }
    }
    up + &lat
}

/// The table for a person: grouped by virtual service, coloured when `color`.
pub fn render_table(pairs: &[Pair], outcomes: &[Outcome], color: bool) -> String {
    use crate::config::diagnostic::escape_control;
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    let mut current: Option<&str> = None;
    let rip_w = pairs
        .iter()
        .map(|p| p.rip.to_string().len())
        .max()
        .unwrap_or(4)
        .max(4);
    for (p, o) in pairs.iter().zip(outcomes) {
        if current != Some(p.service.as_str()) {
            if current.is_some() {
                out.push('\n');
            }
            // Names come from the config: control characters are shown escaped.
            let _ = writeln!(out, "{}", paint("1", &escape_control(&p.service, false)));
            let _ = writeln!(
                out,
                "  {:<rip_w$}  {:<6} {:<5} {:<9} {:<9} REASON",
                "REAL", "METHOD", "UP", "LATENCY", "CONFIG"
            );
            current = Some(&p.service);
        }
        let state = if o.up {
            paint("32", "up   ")
        } else {
            paint("31", "down ")
        };
        let latency = latency_ms(o).map_or("-".to_string(), |ms| format!("{ms:.2}ms"));
        let checks = if p.config_checks.is_empty() {
            "-".to_string()
        } else {
            p.config_checks.join(",")
        };
        let vip_note = if pairs
            .iter()
            .filter(|q| q.service == p.service && q.rip == p.rip)
            .count()
            > 1
        {
            format!(" (VIP {})", p.vip)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {:<rip_w$}  {:<6} {} {:<9} {:<9} {}{}",
            p.rip.to_string(),
            p.method.to_string(),
            state,
            latency,
            escape_control(&checks, false),
            escape_control(&o.reason, false),
            vip_note
        );
    }
    let up = outcomes.iter().filter(|o| o.up).count();
    let _ = writeln!(out, "\n{up} of {} pairs up", outcomes.len());
    out
}

/// Prints `probing N/M` on a terminal once probing has run for over a second.
pub fn progress_printer(enabled: bool) -> impl Fn(usize, usize) + Sync {
    let start = Instant::now();
    move |done, total| {
        if enabled && start.elapsed() > Duration::from_secs(1) {
            eprint!("\rprobing {done}/{total}");
            if done == total {
                eprint!("\r\x1b[K");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(rip: &str, port: u16) -> Pair {
        Pair {
            service: format!("192.0.2.20:{port}/tcp"),
            vip: "192.0.2.20".parse().unwrap(),
            port: Some(port),
            proto: Protocol::Tcp,
            rip: rip.parse().unwrap(),
            method: ForwardingMethod::DirectRouting,
            config_checks: vec!["HTTP_GET".into()],
            interval: None,
            tunnel: Tunnel::default(),
            udp: UdpCheckOptions::default(),
        }
    }

    /// Issue 15: every pair carries its real server's tunnel (the real server's own
    /// `lvs_method`, else the virtual server's), which `status` then probes with.
    #[test]
    fn pairs_carry_the_real_server_s_tunnel() {
        use crate::config::keepalived::{parse_str, ParseOptions};
        use crate::config::{TunnelChecksum, TunnelType};
        let text = "virtual_server 192.0.2.20 80 {\n lvs_method TUN type gue port 6080 csum\n \
                    protocol TCP\n real_server 192.0.2.11 80 {\n }\n \
                    real_server 192.0.2.12 80 {\n  lvs_method TUN type gre\n }\n}\n";
        let doc = parse_str(
            std::path::Path::new("k.conf"),
            text,
            &ParseOptions::default(),
        )
        .unwrap();
        let got: Vec<Tunnel> = pairs(&doc.services, &BTreeMap::new())
            .iter()
            .map(|p| p.tunnel)
            .collect();
        assert_eq!(
            got,
            [
                Tunnel {
                    kind: TunnelType::Gue { port: 6080 },
                    csum: TunnelChecksum::Csum
                },
                Tunnel {
                    kind: TunnelType::Gre,
                    csum: TunnelChecksum::None
                }
            ]
        );
    }

    struct ByAddress;
    impl PairProbe for ByAddress {
        fn probe(&self, p: &Pair) -> Outcome {
            // Odd last octets are up: a deterministic stand-in keyed on the pair itself.
            let up = matches!(p.rip, IpAddr::V4(a) if a.octets()[3] % 2 == 1);
            Outcome {
                up,
                reason: if up {
                    "icmp 0.20 ms".into()
                } else {
                    format!("{} has no VIP", p.rip)
                },
                latency: up.then(|| Duration::from_micros(200 + u64::from(p.port.unwrap_or(0)))),
            }
        }
    }

    #[test]
    fn probe_all_keeps_pair_order_whatever_the_parallelism() {
        let pairs: Vec<Pair> = (1..=40)
            .map(|i| pair(&format!("192.0.2.{i}"), 80 + (i % 3) as u16))
            .collect();
        for parallel in [1, 3, 64] {
            let outcomes = probe_all(&pairs, &ByAddress, parallel, &|_, _| {});
            for (p, o) in pairs.iter().zip(&outcomes) {
                assert_eq!(*o, ByAddress.probe(p), "parallel {parallel}");
            }
        }
    }

    #[test]
    fn state_names_are_distinct_file_names_for_distinct_pairs() {
        let mut v6 = pair("192.0.2.11", 53);
        v6.vip = "2001:db8::20".parse().unwrap();
        v6.rip = "2001:db8::11".parse().unwrap();
        v6.proto = Protocol::Udp;
        let mut any = pair("192.0.2.11", 80);
        any.port = None;
        assert_eq!(
            pair("192.0.2.11", 80).state_name(),
            "tcp_192.0.2.20_80_192.0.2.11"
        );
        assert_eq!(v6.state_name(), "udp_2001-db8--20_53_2001-db8--11");
        assert_eq!(any.state_name(), "tcp_192.0.2.20_any_192.0.2.11");
        let names: std::collections::BTreeSet<String> = (1..=40)
            .flat_map(|i| [80, 8080].map(move |p| pair(&format!("192.0.2.{i}"), p).state_name()))
            .collect();
        assert_eq!(names.len(), 80);
        assert!(names.iter().all(|n| !n.contains('/') && !n.contains(' ')));
    }

    #[test]
    fn json_rows_have_the_documented_fields() {
        let pairs = vec![pair("192.0.2.11", 80), pair("192.0.2.12", 80)];
        let outcomes = probe_all(&pairs, &ByAddress, 2, &|_, _| {});
        let v: serde_json::Value = serde_json::from_str(&render_json(&pairs, &outcomes)).unwrap();
        assert_eq!(v[0]["vip"], "192.0.2.20");
        assert_eq!(v[0]["port"], 80);
        assert_eq!(v[0]["proto"], "tcp");
        assert_eq!(v[0]["rip"], "192.0.2.11");
        assert_eq!(v[0]["method"], "dr");
        assert_eq!(v[0]["up"], true);
        assert_eq!(v[0]["latency_ms"], 0.28);
        assert_eq!(v[1]["up"], false);
        assert_eq!(v[1]["reason"], "192.0.2.12 has no VIP");
        assert!(v[1]["latency_ms"].is_null());
    }

    #[test]
    fn prometheus_has_one_gauge_per_pair_and_latency_for_answers() {
        let pairs = vec![pair("192.0.2.11", 80), pair("192.0.2.12", 80)];
        let outcomes = probe_all(&pairs, &ByAddress, 2, &|_, _| {});
        let text = render_prometheus(&pairs, &outcomes);
        assert!(text.contains(
            "vipcheck_real_server_up{vip=\"192.0.2.20\",port=\"80\",proto=\"tcp\",real=\"192.0.2.11\",method=\"dr\"} 1\n"
        ));
        assert!(text.contains("real=\"192.0.2.12\",method=\"dr\"} 0\n"));
        assert_eq!(text.matches("vipcheck_probe_latency_seconds{").count(), 1);
    }

    #[test]
    fn a_pair_is_probed_with_the_generated_check_s_request() {
        use crate::probe::engine::CheckKind;
        let fp = FleetProbe::new(Duration::from_millis(700), false);
        let r = fp.request(&pair("192.0.2.11", 80)).unwrap();
        assert_eq!(r.vips, vec!["192.0.2.20".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.rip, "192.0.2.11".parse::<IpAddr>().unwrap());
        assert_eq!(r.method, ForwardingMethod::DirectRouting);
        assert_eq!(
            r.checks,
            vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }, CheckKind::Arp]
        );
        assert_eq!(r.timeout, Duration::from_millis(700));
        assert!(!r.allow_arp_answer);
        let mut udp = pair("192.0.2.11", 514);
        udp.proto = Protocol::Udp;
        udp.method = ForwardingMethod::Tunnel;
        let fp = FleetProbe::new(Duration::from_secs(1), true);
        let r = fp.request(&udp).unwrap();
        assert_eq!(r.checks, vec![CheckKind::Icmp, CheckKind::Arp]);
        assert_eq!(r.method, ForwardingMethod::Tunnel);
        assert!(r.allow_arp_answer);
    }

    #[test]
    fn an_up_verdict_with_a_warning_shows_the_warning_as_reason() {
        let mut v = Verdict::failed("VIP 192.0.2.20 did not answer");
        let o = outcome(&v);
        assert!(!o.up);
        assert_eq!(o.reason, "VIP 192.0.2.20 did not answer");
        v.up = true;
        v.reason.clear();
        v.warnings = vec!["allowed: answers ARP for VIP 192.0.2.20".into()];
        let o = outcome(&v);
        assert!(o.up);
        assert_eq!(o.reason, "allowed: answers ARP for VIP 192.0.2.20");
        assert_eq!(o.latency, None);
    }

    #[test]
    fn table_groups_by_service_and_counts() {
        let pairs = vec![
            pair("192.0.2.11", 80),
            pair("192.0.2.12", 80),
            pair("192.0.2.13", 443),
        ];
        let outcomes = probe_all(&pairs, &ByAddress, 2, &|_, _| {});
        let t = render_table(&pairs, &outcomes, false);
        assert_eq!(t.matches("192.0.2.20:80/tcp\n").count(), 1);
        assert_eq!(t.matches("192.0.2.20:443/tcp\n").count(), 1);
        assert!(t.contains("2 of 3 pairs up"), "{t}");
        assert!(!t.contains('\x1b'));
        assert!(render_table(&pairs, &outcomes, true).contains("\x1b[31mdown"));
    }
}

pub use command::run_cli;

mod command {
    use std::io::{IsTerminal, Write};

    use super::StatusInputs;
    use super::{pairs, probe_all, progress_printer, render_json, render_prometheus, render_table};
    use crate::config::load;
    use crate::rewrite::command::{generate_options, resolve_format};

    /// Exit codes: 0 every pair up, 1 any down, 2 the config or arguments are wrong.
    pub fn run_cli(args: StatusInputs) -> i32 {
        if args.ipvs {
            return super::ipvs::run_cli(&args);
        }
        let Some(config) = args.config.clone() else {
            eprintln!("vipcheck status: give a CONFIG, or --ipvs to audit the kernel's table");
            return 2;
        };
        let setup = (|| {
            let format =
                resolve_format(&config, args.generate.format).map_err(|e| e.to_string())?;
            let opts = generate_options(&args.generate, None).map_err(|e| e.to_string())?;
            let timeout = args.timeout;
            let loaded =
                load(&config, format, opts.config_id.clone()).map_err(|e| e.to_string())?;
            crate::config::check_targets(&loaded.services, &loaded.sources).map_err(|errors| {
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
            Ok::<_, String>((loaded, opts, timeout))
        })();
        let (loaded, opts, timeout) = match setup {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        };
        crate::rewrite::command::print_diagnostics(&loaded.warnings);
        let pairs = pairs(&loaded.services, &opts.fwmark_vips);
        let prober = super::FleetProbe::new(timeout, args.allow_arp_answer);
        let on_terminal = std::io::stderr().is_terminal() && !args.json && !args.prometheus;
        let outcomes = probe_all(
            &pairs,
            &prober,
            args.parallel,
            &progress_printer(on_terminal),
        );
        let text = if args.json {
            render_json(&pairs, &outcomes)
        } else if args.prometheus {
            render_prometheus(&pairs, &outcomes)
        } else {
            let color = args.color.colors(std::io::stdout().is_terminal());
            render_table(&pairs, &outcomes, color)
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        i32::from(outcomes.iter().any(|o| !o.up))
    }
}

/// Probes pairs in this process over shared packet sockets ([`Fleet`]), each with the
/// request the generated check's `vipcheck probe` builds ([`FleetProbe::request`]), so
/// `status` shows what the daemon will see.
pub struct FleetProbe {
    pub fleet: Fleet,
    pub timeout: Duration,
    pub allow_arp_answer: bool,
}

impl FleetProbe {
    pub fn new(timeout: Duration, allow_arp_answer: bool) -> FleetProbe {
        FleetProbe {
            fleet: Fleet::new(),
            timeout,
            allow_arp_answer,
        }
    }

    /// The probe request for a pair: what the generated check (`vipcheck probe` with the
    /// pair, `--timeout` and the default checks) asks for, built from the pair's values.
    /// The timeout is whole milliseconds, as the generated command line writes it.
    pub fn request(&self, pair: &Pair) -> Result<Request, String> {
        let millis = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        Request::new(ProbeSpec {
            vips: vec![pair.vip],
            rip: pair.rip,
            port: pair.port,
            proto: pair.proto,
            method: pair.method,
            check: CheckSelection::All,
            allow_arp_answer: self.allow_arp_answer,
            app: AppCheckOptions::default(),
            timeout: Duration::from_millis(millis),
            retries: DEFAULT_RETRIES,
            iface: None,
            json: false,
            tunnel: pair.tunnel,
            udp: pair.udp.clone(),
        })
        .map_err(|e| e.to_string())
    }
}

/// The status row's view of a probe verdict.
pub fn outcome(v: &Verdict) -> Outcome {
    let reason = if v.up {
        v.note
            .iter()
            .chain(&v.warnings)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        v.reason.clone()
    };
    Outcome {
        up: v.up,
        reason,
        latency: v
            .checks
            .iter()
            .filter_map(|c| c.latency_ms)
            .reduce(f64::max)
            .map(|ms| Duration::from_secs_f64(ms / 1e3)),
    }
}

impl PairProbe for FleetProbe {
    fn probe(&self, pair: &Pair) -> Outcome {
        let start = Instant::now();
        let verdict = match self.request(pair) {
            Ok(req) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.fleet.probe(&req, start)
            }))
            .unwrap_or_else(|_| {
                Verdict::failed("internal error in vipcheck (a bug: please report it)")
            }),
            Err(e) => Verdict::failed(format!("cannot build the probe: {e}")),
        };
        outcome(&verdict)
    }
}
