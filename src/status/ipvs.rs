//! `vipcheck status --ipvs`: audit the live IPVS table. Every DR and TUN destination the
//! kernel forwards to is probed on its service's VIP with the same engine as
//! `status CONFIG`; NAT and other destinations are listed as not applicable; weight 0
//! destinations are probed and shown as quiesced, and the ones that get traffic now and
//! fail are flagged to act on first. With a config too, the drift report compares the
//! two (services and destinations on one side only, forwarding method and port).
//!
//! Building rows and the drift report is pure code over a [`Table`]; the agent can take
//! its pairs from the kernel the same way ([`pairs_from_ipvs`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use super::{latency_ms, prom_escape, Outcome, Pair};
use crate::config::{Protocol, ServiceKey, Tunnel, TunnelType, VirtualService};
use crate::net::ipvs::{IpvsDestination, IpvsForward, IpvsKey, IpvsService, Table};

/// One destination behind one VIP (a fwmark service has a row per VIP given for its mark,
/// or one row without a VIP when none is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsRow {
    /// The service's label (`192.0.2.20:80/tcp`, `fwmark 5/tcp`).
    pub service: String,
    pub scheduler: String,
    pub vip: Option<IpAddr>,
    pub dest: IpvsDestination,
    /// What is probed: a DR/TUN destination with a known VIP.
    pub pair: Option<Pair>,
    /// Why the row is not probed, when it is not.
    pub not_checked: Option<String>,
}

impl IpvsRow {
    /// Weight 0: the scheduler sends it no new connections.
    pub fn quiesced(&self) -> bool {
        self.dest.weight == 0
    }
}

/// A tunnel as a short word: `ipip`, `gue:6080`, `gre`, with `+csum`/`+remcsum`.
pub fn tunnel_label(t: &Tunnel) -> String {
    let mut s = match t.kind {
        TunnelType::Ipip => "ipip".to_string(),
        TunnelType::Gue { port } => format!("gue:{port}"),
        TunnelType::Gre => "gre".to_string(),
    };
    match t.csum {
        crate::config::TunnelChecksum::None => {}
        crate::config::TunnelChecksum::Csum => s.push_str("+csum"),
        crate::config::TunnelChecksum::Remcsum => s.push_str("+remcsum"),
    }
    s
}

/// The method column: `DR`, `TUN` (`TUN/gue:6080` for a tunnel other than plain IPIP),
/// `NAT`, `Local`, `Bypass`.
fn method_label(d: &IpvsDestination) -> String {
    match (d.forward, d.tunnel) {
        (IpvsForward::Tunnel, Some(t)) if t != Tunnel::default() => {
            format!("TUN/{}", tunnel_label(&t))
        }
        (f, _) => match f.method() {
            Some(m) => m.to_string(),
            None => f.to_string(),
        },
    }
}

fn method_arg(d: &IpvsDestination) -> &'static str {
    match d.forward {
        IpvsForward::Masq => "nat",
        IpvsForward::Route => "dr",
        IpvsForward::Tunnel => "tun",
        IpvsForward::Local => "local",
        IpvsForward::Bypass => "bypass",
    }
}

/// The port a probe of `svc`'s destination `d` checks: the service's, else (a fwmark or
/// all-ports service) the destination's, else none (ICMP only).
fn probe_port(svc: &IpvsService, d: &IpvsDestination) -> Option<u16> {
    let svc_port = match svc.key {
        IpvsKey::Address { port, .. } => port,
        IpvsKey::Fwmark { .. } => 0,
    };
    [svc_port, d.port].into_iter().find(|p| *p != 0)
}

/// The protocol a probe of `svc` uses: the service's; TCP for a fwmark service of any
/// protocol (0, as ipvsadm makes them), which is probed on its destination's port if any.
fn probe_proto(svc: &IpvsService) -> Option<Protocol> {
    match (svc.proto(), svc.key) {
        (Some(p), _) => Some(p),
        (None, IpvsKey::Fwmark { .. }) if svc.protocol == 0 => Some(Protocol::Tcp),
        (None, _) => None,
    }
}

/// Every destination of the table as rows, in the kernel's order; `fwmark_vips` supplies
/// the VIPs of fwmark services (`--fwmark-vip`).
pub fn rows(table: &Table, fwmark_vips: &BTreeMap<u32, Vec<IpAddr>>) -> Vec<IpvsRow> {
    let mut out = Vec::new();
    for svc in &table.services {
        let label = svc.label();
        let vips: Vec<IpAddr> = match svc.key {
            IpvsKey::Address { addr, .. } => vec![addr],
            IpvsKey::Fwmark { mark, .. } => fwmark_vips.get(&mark).cloned().unwrap_or_default(),
        };
        for d in &svc.destinations {
            let row =
                |vip: Option<IpAddr>, pair: Option<Pair>, not_checked: Option<String>| IpvsRow {
                    service: label.clone(),
                    scheduler: svc.scheduler.clone(),
                    vip,
                    dest: d.clone(),
                    pair,
                    not_checked,
                };
            let method = d.forward.method().filter(|m| m.needs_vip_on_real_server());
            let why_not = match (method, probe_proto(svc)) {
                (None, _) => Some(format!(
                    "not applicable: {} forwarding, the real server does not hold the VIP",
                    method_label(d)
                )),
                (Some(_), None) => Some(format!(
                    "not checked: protocol {} is not one vipcheck probes",
                    svc.protocol
                )),
                (Some(_), Some(_)) => None,
            };
            if let Some(why) = why_not {
                out.push(row(vips.first().copied(), None, Some(why)));
                continue;
            }
            let (Some(method), Some(proto)) = (method, probe_proto(svc)) else {
                continue;
            };
            if vips.is_empty() {
                let mark = match svc.key {
                    IpvsKey::Fwmark { mark, .. } => mark,
                    IpvsKey::Address { .. } => 0,
                };
                out.push(row(
                    None,
                    None,
                    Some(format!(
                        "not checked: no VIP known for fwmark {mark} (give --fwmark-vip {mark}=VIP)"
                    )),
                ));
                continue;
            }
            for vip in &vips {
                let pair = Pair {
                    service: label.clone(),
                    vip: *vip,
                    port: probe_port(svc, d),
                    proto,
                    rip: d.addr,
                    method,
                    config_checks: Vec::new(),
                    interval: None,
                    tunnel: d.tunnel.unwrap_or_default(),
                    udp: Default::default(),
                };
                out.push(row(Some(*vip), Some(pair), None));
            }
        }
    }
    out
}

/// The pairs to probe for the kernel's table: every DR/TUN destination on each of its
/// service's VIPs (`fwmark_vips` for fwmark services). What `agent --ipvs` probes.
pub fn pairs_from_ipvs(table: &Table, fwmark_vips: &BTreeMap<u32, Vec<IpAddr>>) -> Vec<Pair> {
    rows(table, fwmark_vips)
        .into_iter()
        .filter_map(|r| r.pair)
        .collect()
}

/// A row's verdict: probed (up or down), or not.
fn verdict<'a>(row: &IpvsRow, outcome: Option<&'a Outcome>) -> Option<&'a Outcome> {
    row.pair.as_ref().and(outcome)
}

/// Gets traffic now (weight > 0) and fails the check: act on it first.
fn act_first(row: &IpvsRow, outcome: Option<&Outcome>) -> bool {
    !row.quiesced() && verdict(row, outcome).is_some_and(|o| !o.up)
}

/// A destination on one side of the drift report only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftDestination {
    pub service: String,
    pub real: IpAddr,
    pub port: Option<u16>,
    pub method: String,
}

/// A destination in both, with one field different.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftDifference {
    pub service: String,
    pub real: IpAddr,
    /// `method` or `port`.
    pub field: &'static str,
    pub config: String,
    pub kernel: String,
}

/// How the kernel's table and the config differ.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub services_only_in_config: Vec<String>,
    pub services_only_in_kernel: Vec<String>,
    pub destinations_only_in_config: Vec<DriftDestination>,
    pub destinations_only_in_kernel: Vec<DriftDestination>,
    pub differences: Vec<DriftDifference>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.services_only_in_config.is_empty()
            && self.services_only_in_kernel.is_empty()
            && self.destinations_only_in_config.is_empty()
            && self.destinations_only_in_kernel.is_empty()
            && self.differences.is_empty()
    }
}

/// What identifies a virtual service on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum MatchKey {
    /// VIP, port (0: every port), protocol name.
    Address(IpAddr, u16, &'static str),
    Mark(u32),
}

fn key_label(k: MatchKey) -> String {
    match k {
        MatchKey::Address(a, 0, p) => format!("{a}/{p}"),
        MatchKey::Address(IpAddr::V6(a), port, p) => format!("[{a}]:{port}/{p}"),
        MatchKey::Address(a, port, p) => format!("{a}:{port}/{p}"),
        MatchKey::Mark(m) => format!("fwmark {m}"),
    }
}

fn kernel_key(s: &IpvsService) -> Option<MatchKey> {
    match s.key {
        IpvsKey::Address { addr, port, .. } => {
            Some(MatchKey::Address(addr, port, s.proto()?.as_str()))
        }
        IpvsKey::Fwmark { mark, .. } => Some(MatchKey::Mark(mark)),
    }
}

fn config_keys(vs: &VirtualService) -> Vec<MatchKey> {
    let mut keys: Vec<MatchKey> = vs
        .vips
        .iter()
        .map(|v| MatchKey::Address(*v, vs.port.unwrap_or(0), vs.protocol.as_str()))
        .collect();
    keys.extend(vs.fwmarks.iter().map(|m| MatchKey::Mark(*m)));
    if let (ServiceKey::Fwmark(m), true) = (&vs.key, vs.fwmarks.is_empty()) {
        keys.push(MatchKey::Mark(*m));
    }
    keys
}

fn kernel_method(d: &IpvsDestination) -> String {
    match d.forward.method() {
        Some(m) => m.to_string(),
        None => d.forward.to_string(),
    }
}

/// Compares the config's services with the kernel's table. Services match by VIP, port
/// and protocol (or firewall mark), destinations by address; a port differs when both
/// sides name one (a fwmark service's real server may have none in the config).
pub fn drift(config: &[VirtualService], table: &Table) -> Drift {
    let mut cfg: BTreeMap<MatchKey, Vec<&crate::config::RealServer>> = BTreeMap::new();
    let mut order: Vec<MatchKey> = Vec::new();
    for vs in config {
        for k in config_keys(vs) {
            if !cfg.contains_key(&k) {
                order.push(k);
            }
            cfg.entry(k).or_default().extend(vs.real_servers.iter());
        }
    }
    let mut out = Drift::default();
    let mut seen = std::collections::BTreeSet::new();
    for svc in &table.services {
        let label = svc.label();
        let reals = kernel_key(svc).and_then(|k| {
            seen.insert(k);
            cfg.get(&k)
        });
        let Some(reals) = reals else {
            out.services_only_in_kernel.push(label);
            continue;
        };
        for d in &svc.destinations {
            let Some(rs) = reals.iter().find(|r| r.addr == d.addr) else {
                out.destinations_only_in_kernel.push(DriftDestination {
                    service: label.clone(),
                    real: d.addr,
                    port: (d.port != 0).then_some(d.port),
                    method: kernel_method(d),
                });
                continue;
            };
            if d.forward.method() != Some(rs.method) {
                out.differences.push(DriftDifference {
                    service: label.clone(),
                    real: d.addr,
                    field: "method",
                    config: rs.method.to_string(),
                    kernel: kernel_method(d),
                });
            }
            if let Some(p) = rs.port.filter(|p| d.port != 0 && *p != d.port) {
                out.differences.push(DriftDifference {
                    service: label.clone(),
                    real: d.addr,
                    field: "port",
                    config: p.to_string(),
                    kernel: d.port.to_string(),
                });
            }
        }
        for rs in reals {
            if !svc.destinations.iter().any(|d| d.addr == rs.addr) {
                out.destinations_only_in_config.push(DriftDestination {
                    service: label.clone(),
                    real: rs.addr,
                    port: rs.port,
                    method: rs.method.to_string(),
                });
            }
        }
    }
    for k in order {
        if !seen.contains(&k) {
            out.services_only_in_config.push(key_label(k));
        }
    }
    out
}

/// `--json`: `{"destinations": [...], "drift": null | {...}}`.
pub fn render_json(
    rows: &[IpvsRow],
    outcomes: &[Option<Outcome>],
    drift: Option<&Drift>,
) -> String {
    #[derive(Serialize)]
    struct Row<'a> {
        service: &'a str,
        scheduler: &'a str,
        vip: Option<IpAddr>,
        port: Option<u16>,
        proto: Option<Protocol>,
        rip: IpAddr,
        rport: u16,
        method: &'static str,
        tunnel: Option<Tunnel>,
        weight: u32,
        quiesced: bool,
        active_conns: u32,
        inactive_conns: u32,
        checked: bool,
        up: Option<bool>,
        reason: &'a str,
        latency_ms: Option<f64>,
        act_first: bool,
    }
    #[derive(Serialize)]
    struct Doc<'a> {
        destinations: Vec<Row<'a>>,
        drift: Option<&'a Drift>,
    }
    let destinations = rows
        .iter()
        .zip(outcomes)
        .map(|(r, o)| {
            let o = verdict(r, o.as_ref());
            Row {
                service: &r.service,
                scheduler: &r.scheduler,
                vip: r.vip,
                port: r.pair.as_ref().and_then(|p| p.port),
                proto: r.pair.as_ref().map(|p| p.proto),
                rip: r.dest.addr,
                rport: r.dest.port,
                method: method_arg(&r.dest),
                tunnel: r.dest.tunnel,
                weight: r.dest.weight,
                quiesced: r.quiesced(),
                active_conns: r.dest.active_conns,
                inactive_conns: r.dest.inactive_conns,
                checked: o.is_some(),
                up: o.map(|o| o.up),
                reason: o.map_or(r.not_checked.as_deref().unwrap_or(""), |o| &o.reason),
                latency_ms: o.and_then(latency_ms),
                act_first: act_first(r, o),
            }
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&Doc {
        destinations,
        drift,
    })
    .unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// `--prometheus`: the `status` gauges for the probed destinations, and every
/// destination's weight.
pub fn render_prometheus(rows: &[IpvsRow], outcomes: &[Option<Outcome>]) -> String {
    let (pairs, probed): (Vec<Pair>, Vec<Outcome>) = rows
        .iter()
        .zip(outcomes)
        .filter_map(|(r, o)| Some((r.pair.clone()?, o.clone()?)))
        .unzip();
    let mut out = super::render_prometheus(&pairs, &probed);
    out.push_str(
        "# HELP vipcheck_ipvs_destination_weight The destination's weight in the kernel's IPVS table (0: quiesced).\n\
         # TYPE vipcheck_ipvs_destination_weight gauge\n",
    );
    let mut seen = std::collections::BTreeSet::new();
    for r in rows {
        let labels = format!(
            "service=\"{}\",real=\"{}\",method=\"{}\"",
            prom_escape(&r.service),
            prom_escape(&r.dest.addr.to_string()),
            method_arg(&r.dest)
        );
        if seen.insert(labels.clone()) {
            let _ = writeln!(
                out,
                "vipcheck_ipvs_destination_weight{{{labels}}} {}",
                r.dest.weight
            );
        }
    }
    out
}

/// The table for a person: the destinations to act on first, then every service with its
/// destinations, then (with a config) the drift report.
pub fn render_table(
    rows: &[IpvsRow],
    outcomes: &[Option<Outcome>],
    drift: Option<&Drift>,
    color: bool,
) -> String {
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    let first: Vec<(&IpvsRow, &Outcome)> = rows
        .iter()
        .zip(outcomes)
        .filter(|(r, o)| act_first(r, o.as_ref()))
        .filter_map(|(r, o)| Some((r, o.as_ref()?)))
        .collect();
    if !first.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint(
                "1;31",
                &format!(
                    "Act first: {} destination(s) get traffic now (weight > 0) and fail the check",
                    first.len()
                )
            )
        );
        for (r, o) in &first {
            let _ = writeln!(
                out,
                "  {}  {}  {}  weight {}: {}",
                r.service,
                r.dest.addr,
                method_label(&r.dest),
                r.dest.weight,
                o.reason
            );
        }
        out.push('\n');
    }
    let rip_w = rows
        .iter()
        .map(|r| r.dest.addr.to_string().len())
        .max()
        .unwrap_or(4)
        .max(4);
    let method_w = rows
        .iter()
        .map(|r| method_label(&r.dest).len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut current: Option<&str> = None;
    for (r, o) in rows.iter().zip(outcomes) {
        if current != Some(r.service.as_str()) {
            if current.is_some() {
                out.push('\n');
            }
            let _ = writeln!(out, "{}  scheduler {}", paint("1", &r.service), r.scheduler);
            let _ = writeln!(
                out,
                "  {:<rip_w$}  {:<5}  {:<method_w$}  {:<12} {:<11} {:<5} {:<9} REASON",
                "REAL", "PORT", "METHOD", "WEIGHT", "CONNS A/I", "UP", "LATENCY"
            );
            current = Some(&r.service);
        }
        let o = verdict(r, o.as_ref());
        let state = match o {
            Some(o) if o.up => paint("32", "up   "),
            Some(_) => paint("31", "down "),
            None if r
                .not_checked
                .as_deref()
                .unwrap_or("")
                .starts_with("not applicable") =>
            {
                "n/a  ".to_string()
            }
            None => "-    ".to_string(),
        };
        let weight = if r.quiesced() {
            "0 quiesced".to_string()
        } else {
            r.dest.weight.to_string()
        };
        let latency = o
            .and_then(latency_ms)
            .map_or("-".to_string(), |ms| format!("{ms:.2}ms"));
        let mut reason = o.map_or(r.not_checked.clone().unwrap_or_default(), |o| {
            o.reason.clone()
        });
        if r.pair.is_some()
            && rows
                .iter()
                .filter(|q| q.service == r.service && q.dest.addr == r.dest.addr)
                .count()
                > 1
        {
            if let Some(vip) = r.vip {
                let _ = write!(reason, " (VIP {vip})");
            }
        }
        let flag = if act_first(r, o) {
            paint("1;31", "  << act first")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {:<rip_w$}  {:<5}  {:<method_w$}  {:<12} {:<11} {} {:<9} {}{}",
            r.dest.addr.to_string(),
            r.dest.port,
            method_label(&r.dest),
            weight,
            format!("{}/{}", r.dest.active_conns, r.dest.inactive_conns),
            state,
            latency,
            reason,
            flag
        );
    }
    let probed: Vec<&Outcome> = rows
        .iter()
        .zip(outcomes)
        .filter_map(|(r, o)| verdict(r, o.as_ref()))
        .collect();
    let up = probed.iter().filter(|o| o.up).count();
    let quiesced = rows.iter().filter(|r| r.quiesced()).count();
    let unchecked = rows.len() - probed.len();
    let _ = writeln!(
        out,
        "\n{up} of {} checked destinations up; {quiesced} quiesced; {unchecked} not checked; {} to act on first",
        probed.len(),
        first.len()
    );
    if let Some(d) = drift {
        out.push_str(&render_drift(d, &paint));
    }
    out
}

fn render_drift(d: &Drift, paint: &dyn Fn(&str, &str) -> String) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{}",
        paint("1", "Drift: config vs the kernel's IPVS table")
    );
    if d.is_empty() {
        out.push_str(
            "  none: the kernel's table has exactly the config's services and real servers\n",
        );
        return out;
    }
    let port = |p: Option<u16>| p.map_or(String::new(), |p| format!(" port {p}"));
    for s in &d.services_only_in_config {
        let _ = writeln!(out, "  service only in the config:  {s}");
    }
    for s in &d.services_only_in_kernel {
        let _ = writeln!(out, "  service only in the kernel:  {s}");
    }
    for x in &d.destinations_only_in_config {
        let _ = writeln!(
            out,
            "  real server only in the config:  {}  {}{} {} (a failed check may have removed it)",
            x.service,
            x.real,
            port(x.port),
            x.method
        );
    }
    for x in &d.destinations_only_in_kernel {
        let _ = writeln!(
            out,
            "  real server only in the kernel:  {}  {}{} {}",
            x.service,
            x.real,
            port(x.port),
            x.method
        );
    }
    for x in &d.differences {
        let _ = writeln!(
            out,
            "  {} differs:  {}  {}: config {}, kernel {}",
            x.field, x.service, x.real, x.config, x.kernel
        );
    }
    out
}

/// `vipcheck status [CONFIG] --ipvs`. Exit codes as `status CONFIG`: 0 every checked
/// destination up, 1 any down, 2 no IPVS, no permission, or a config or argument error.
pub fn run_cli(args: &super::StatusInputs) -> i32 {
    use std::io::{IsTerminal, Write};
    let setup = (|| {
        let opts = crate::rewrite::command::generate_options(&args.generate, None)
            .map_err(|e| e.to_string())?;
        let config = match &args.config {
            None => None,
            Some(path) => {
                let format = crate::rewrite::command::resolve_format(path, args.generate.format)
                    .map_err(|e| e.to_string())?;
                let loaded = crate::config::load(path, format, opts.config_id.clone())
                    .map_err(|e| e.to_string())?;
                Some(loaded)
            }
        };
        Ok::<_, String>((opts, config))
    })();
    let (opts, config) = match setup {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    if let Some(loaded) = &config {
        crate::rewrite::command::print_diagnostics(&loaded.warnings);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let capture_dir = std::env::var_os("VIPCHECK_IPVS_CAPTURE");
    let mut capture = crate::net::ipvs::Capture::default();
    let table = match crate::net::ipvs::read_table_capturing(
        deadline,
        capture_dir.as_ref().map(|_| &mut capture),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("vipcheck: {e}");
            return 2;
        }
    };
    if let Some(dir) = capture_dir {
        // A debugging aid for writing test fixtures (fixtures/ipvs/README.md).
        let dir = std::path::PathBuf::from(dir);
        for (name, bytes) in &capture.parts {
            if let Err(e) = std::fs::write(dir.join(format!("{name}.bin")), bytes) {
                eprintln!("vipcheck: cannot write {}: {e}", dir.display());
                return 2;
            }
        }
    }
    let rows = rows(&table, &opts.fwmark_vips);
    let drift = config.as_ref().map(|c| drift(&c.services, &table));
    let pairs: Vec<Pair> = rows.iter().filter_map(|r| r.pair.clone()).collect();
    let prober = super::FleetProbe::new(args.timeout, args.allow_arp_answer);
    let on_terminal = std::io::stderr().is_terminal() && !args.json && !args.prometheus;
    let probed = super::probe_all(
        &pairs,
        &prober,
        args.parallel,
        &super::progress_printer(on_terminal),
    );
    let mut probed = probed.into_iter();
    let outcomes: Vec<Option<Outcome>> = rows
        .iter()
        .map(|r| r.pair.as_ref().and_then(|_| probed.next()))
        .collect();
    let text = if args.json {
        render_json(&rows, &outcomes, drift.as_ref())
    } else if args.prometheus {
        render_prometheus(&rows, &outcomes)
    } else {
        let color = args.color.colors(std::io::stdout().is_terminal());
        render_table(&rows, &outcomes, drift.as_ref(), color)
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    i32::from(outcomes.iter().flatten().any(|o| !o.up))
}

#[cfg(test)]
mod tests;
