//! The prober: route and neighbour lookup, the packet socket, DR and TUN probes, verdicts.
//!
//! `run_cli` turns the command line's values ([`request::ProbeInputs`]) into a
//! [`request::Request`], resolves the path to the real server ([`NetPath`]) from the
//! kernel's tables ([`crate::net::rtnl`]), opens the [`PacketSocket`] and lets [`engine`]
//! run the checks; the [`Verdict`] is printed as one line (stdout when up, stderr when
//! down) or one JSON object (stdout). Every failure, including bad arguments and a missing
//! capability, is a "down" verdict with exit status 1.
//!
//! Decisions worth knowing:
//! - Source address: the kernel's preferred source for the route to the RIP, unless it
//!   is one of the VIPs; then another address of the egress interface; never a VIP (the
//!   real server would answer the VIP itself). In a tunnel, a VIP of the other family
//!   than the RIP is probed from an address of that family on the same interface; direct
//!   routing between families is refused up front, as IPVS refuses it.
//! - DR needs the real server on-link (no gateway on the route): the frame goes to its
//!   MAC. TUN sends to the next hop's MAC (the gateway, if any).
//! - MAC: the kernel's neighbour entry when it has one; otherwise our own ARP request /
//!   neighbour solicitation. An entry that is not REACHABLE or PERMANENT (STALE after a
//!   replaced NIC or a migrated VM, for one) is confirmed on the way: our own request
//!   goes to that MAC with the probes, and to everyone if it has not answered soon; when
//!   another MAC answers for the real server, the probes go there and the verdict says
//!   so. Nothing is written to the kernel's neighbour table.
//! - DR accepts a reply only from the real server's MAC. TUN replies come back through
//!   whatever route the real server uses, so any MAC is accepted there; TTL 1 on the
//!   inner packet still keeps anyone but the decapsulating real server from answering.
//! - The reply must arrive on the egress interface (the socket listens there only).
//! - UDP services get the ICMP check only (a UDP probe proves nothing without knowing
//!   the protocol); the verdict says so.
//! - ldirectord's positional `VIP VPORT RIP RPORT`: a fwmark number in the VIP place
//!   needs the VIPs from `--vip`; the TCP port is `--port`, else VPORT, else RPORT.
//! - The time budget (`--timeout`) counts from the start. Every check runs at once over
//!   all of it: `--retries` re-sends spread evenly over the budget, and a reply to any
//!   attempt that arrives before the deadline counts.
//! - The decision rule ([`decide`]): for a TCP service the TCP exchange decides, ICMP
//!   corroborates and explains (`icmp filtered` is a note on an up verdict), and decides
//!   alone only where nothing else can.
//! - The ARP-problem check (`arp`, part of `all`): an ARP request (IPv4) or neighbour
//!   solicitation (IPv6, to the VIP's solicited-node group) for the VIP, from the
//!   director's own address, in a frame to the real server's MAC only. An answer means a
//!   router asking for the VIP could be answered by the real server and send VIP
//!   traffic past the director: down (a warning with `--allow-arp-answer`). It goes out
//!   before the other checks and is judged after them, within twice the slowest round
//!   trip they measured, so a silent (correct) server costs no extra wait.
//!   Linux answers ARP for the VIP on lo unless arp_ignore >= 1, and for the VIP on the
//!   interface always. It answers a neighbour solicitation only for an address of the
//!   interface it arrived on (whatever the sysctls), so an IPv6 VIP on lo is never
//!   answered for and an IPv6 VIP on eth0 always is. Not asked through a router (TUN
//!   to a real server that is not on-link): its link is out of reach.
//! - A NAT (masq) real server holds no VIP: only a UDP service's own check runs for it
//!   (`--method nat --proto udp --check dns|udp`), sent to its own address and port over
//!   a kernel UDP socket ([`nat`]), with the same verdict rules.
//! - [`fleet`] runs many probes in one process (`vipcheck status`) over shared sockets,
//!   with the same checks and verdicts.

pub mod engine;
pub mod fleet;
// The rtnetlink queries, under their old name here.
use crate::net::rtnl as netlink;
pub mod nat;
pub mod quick_hash;
pub mod request;
#[cfg(test)]
mod tests;
pub mod udp;

use std::io::{self, Write};
use std::net::IpAddr;
use std::time::Instant;

use serde::Serialize;

pub mod session;

use crate::config::ForwardingMethod;
use crate::net::{FrameIo, NetPath, PacketSocket};
use crate::wire::MacAddr;
pub use engine::IcmpMemo;
use engine::{
    Answer, Check, CheckKind, CheckResult, Entropy, MacChange, OsEntropy, Prober, RoundSpec,
};
use request::{ProbeInputs, Request};

/// The note on a UDP service with no check of its own: ICMP and ARP show only that the
/// VIP is there, not that the service answers.
pub const UDP_PRESENCE_ONLY: &str =
    "udp service: ICMP only, so only the VIP's presence was checked (--check dns|udp checks the service)";

/// The answer to "does this real server answer on the VIP?".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub up: bool,
    /// Empty when up; otherwise the first failure, in words.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rip: Option<IpAddr>,
    /// `dr` or `tun` in JSON, as `--method` takes it.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_method"
    )]
    pub method: Option<ForwardingMethod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    pub checks: Vec<CheckResult>,
    /// What the operator should know about an up (or down) verdict that does not change
    /// it: `icmp filtered`, a UDP service checked by ICMP only, a changed MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The neighbour entry's MAC for the next hop, and the one that answered instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_change: Option<MacChange>,
    /// Problems that do not make the verdict down (an allowed ARP answer).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The probe could not run at all (no route or interface, no packet socket, a send
    /// the kernel refused): a fault of this host, which says nothing about the real
    /// server. The agent keeps its last verdict then (fail-static).
    #[serde(skip)]
    pub own_fault: bool,
}

fn serialize_method<S: serde::Serializer>(
    method: &Option<ForwardingMethod>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match method {
        Some(m) => s.serialize_str(m.probe_arg()),
        None => s.serialize_none(),
    }
}

impl Verdict {
    /// A down verdict for a failure before any check ran.
    pub fn failed(reason: impl Into<String>) -> Verdict {
        Verdict {
            up: false,
            reason: reason.into(),
            rip: None,
            method: None,
            iface: None,
            checks: Vec::new(),
            note: None,
            mac_change: None,
            warnings: Vec::new(),
            own_fault: false,
        }
    }

    /// A down verdict for a probe that could not run because of this host (see
    /// [`Verdict::own_fault`]).
    pub fn cannot_probe(reason: impl Into<String>) -> Verdict {
        Verdict {
            own_fault: true,
            ..Verdict::failed(reason)
        }
    }

    /// From the results of every check, by the decision rule: up only when every
    /// deciding check is up (see [`decide`]).
    pub fn from_checks(req: &Request, path: &NetPath, mut checks: Vec<CheckResult>) -> Verdict {
        let mut notes = decide(&mut checks, path.next_hop_mac);
        let several = req.vips.len() > 1;
        let first_down = checks.iter().find(|c| c.decides && !c.up);
        let reason = match first_down {
            Some(c) if several && !c.reason.contains(&c.vip.to_string()) => {
                format!("{}: {}", c.vip, c.reason)
            }
            Some(c) => c.reason.clone(),
            None if checks.is_empty() => "no check was run".to_string(),
            None => String::new(),
        };
        let warnings = checks
            .iter()
            .filter(|c| c.decides && c.up && !c.reason.is_empty())
            .map(|c| c.reason.clone())
            .collect();
        if req.icmp_only_udp {
            notes.insert(0, UDP_PRESENCE_ONLY.to_string());
        }
        Verdict {
            up: first_down.is_none() && !checks.is_empty(),
            warnings,
            reason,
            rip: Some(req.rip),
            method: Some(req.method),
            iface: Some(path.iface.clone()),
            checks,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
            mac_change: None,
            own_fault: false,
        }
    }

    /// Records that the next hop's MAC was not the neighbour entry's.
    fn with_mac_change(mut self, change: Option<MacChange>) -> Verdict {
        if let Some(c) = change {
            let text = format!(
                "MAC changed: the neighbour entry said {}, {} answered",
                c.from, c.to
            );
            self.note = Some(match self.note.take() {
                Some(n) => format!("{n}; {text}"),
                None => text,
            });
            self.mac_change = Some(c);
        }
        self
    }

    /// The one line an operator reads: `up: icmp 0.21 ms, tcp 0.34 ms` or `down: why`.
    pub fn line(&self) -> String {
        if !self.up {
            return format!("down: {}", self.reason);
        }
        let vips: Vec<IpAddr> = self.checks.iter().fold(Vec::new(), |mut v, c| {
            if !v.contains(&c.vip) {
                v.push(c.vip);
            }
            v
        });
        let per_vip = |vip: IpAddr| {
            self.checks
                .iter()
                .filter(|c| c.vip == vip && c.up)
                .map(|c| match c.latency_ms {
                    Some(ms) => format!("{} {ms:.2} ms", c.check),
                    // The ARP check passes by silence: nothing was timed.
                    None => format!("{} ok", c.check),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut line = if vips.len() == 1 {
            format!("up: {}", per_vip(vips[0]))
        } else {
            let parts: Vec<String> = vips
                .iter()
                .map(|&v| format!("{v} {}", per_vip(v)))
                .collect();
            format!("up: {}", parts.join("; "))
        };
        if let Some(note) = &self.note {
            line.push_str(&format!(" ({note})"));
        }
        for w in &self.warnings {
            line.push_str(&format!(" (warning: {w})"));
        }
        line
    }
}

/// Runs `vipcheck probe`; returns the process exit code (0 = up, 1 = down). Never 2..255:
/// keepalived's `misc_dynamic` reads those as "up, weight = code - 2".
pub fn run_cli(args: ProbeInputs) -> i32 {
    let start = Instant::now();
    let json = args.json;
    // A panic would exit 101, which keepalived's misc_dynamic reads as "up": turn any
    // bug into a "down" instead.
    let verdict = std::panic::catch_unwind(|| match Request::from_inputs(&args) {
        Ok(req) => probe_with(&req, start, true),
        Err(e) => Verdict::failed(format!("bad arguments: {e}")),
    })
    .unwrap_or_else(|_| Verdict::failed("internal error in vipcheck (a bug: please report it)"));
    let mut out = io::stdout().lock();
    let printed = if json {
        serde_json::to_string(&verdict)
            .map_err(io::Error::other)
            .and_then(|s| writeln!(out, "{s}"))
    } else if verdict.up {
        writeln!(out, "{}", verdict.line())
    } else {
        writeln!(io::stderr().lock(), "{}", verdict.line())
    };
    // A closed stdout (the daemon does not read it) changes nothing about the verdict.
    let _ = printed;
    if verdict.up {
        0
    } else {
        1
    }
}

/// The system's words for an error, without Rust's " (os error N)" suffix.
fn os_message(e: &io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or(text.clone(), str::to_string),
        None => text,
    }
}

/// Why the path to the real server cannot be used.
fn setup_error(what: &str, e: &io::Error) -> String {
    format!("{what}: {}", os_message(e))
}

/// An address of the interface in the family of `like` that is not a VIP: the route's
/// preferred source when it qualifies, else a global address, else a link-local one.
fn pick_source(
    prefsrc: Option<IpAddr>,
    addrs: &[netlink::IfAddr],
    like: IpAddr,
    vips: &[IpAddr],
) -> Option<IpAddr> {
    let ok = |a: &IpAddr| a.is_ipv4() == like.is_ipv4() && !vips.contains(a);
    prefsrc.filter(ok).or_else(|| {
        let mut candidates: Vec<&netlink::IfAddr> = addrs
            .iter()
            .filter(|a| ok(&a.addr) && a.scope != 254)
            .collect();
        candidates.sort_by_key(|a| a.scope);
        candidates.first().map(|a| a.addr)
    })
}

fn family_name(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Resolves the path and runs every check within the request's timeout, counted from
/// `start`.
pub fn probe(req: &Request, start: Instant) -> Verdict {
    probe_with(req, start, false)
}

/// What the kernel's tables say about the way to one real server: the route, the egress
/// interface and its addresses. Looked up once per real server; not yet a [`NetPath`]
/// (the source and the next hop's MAC are chosen from it per request).
#[derive(Debug, Clone)]
pub struct Way {
    pub route: netlink::Route,
    pub link: netlink::Link,
    pub our_mac: MacAddr,
    pub addrs: Vec<netlink::IfAddr>,
}

impl Way {
    /// The path over this way for `req`, from `src` to the next hop at `next_hop_mac`.
    pub fn path(&self, req: &Request, src: IpAddr, next_hop_mac: MacAddr) -> NetPath {
        NetPath {
            iface: self.link.name.clone(),
            ifindex: self.link.index,
            our_mac: self.our_mac,
            src,
            rip: req.rip,
            next_hop_mac,
            method: req.method,
            encap: req.tunnel,
        }
    }
}

/// Looks up the way to `rip` (through interface `iface` when given) by `deadline`; the
/// error is the down verdict's reason.
pub fn find_way(rip: IpAddr, iface: Option<&str>, deadline: Instant) -> Result<Way, String> {
    find_way_with(rip, iface, deadline, |oif| interface_of(oif, deadline))
}

/// The egress interface `oif`'s name and MAC, and its addresses.
pub fn interface_of(
    oif: u32,
    deadline: Instant,
) -> Result<(netlink::Link, Vec<netlink::IfAddr>), String> {
    let link = netlink::link(oif, deadline)
        .map_err(|e| setup_error("cannot read the egress interface", &e))?;
    let addrs = netlink::addresses(oif, deadline)
        .map_err(|e| setup_error("cannot read interface addresses", &e))?;
    Ok((link, addrs))
}

/// [`find_way`], the egress interface's details from `interface` (the fleet reads each
/// interface once, not once per real server: the address list is every address of the
/// director, VIPs included).
pub fn find_way_with(
    rip: IpAddr,
    iface: Option<&str>,
    deadline: Instant,
    interface: impl FnOnce(u32) -> Result<(netlink::Link, Vec<netlink::IfAddr>), String>,
) -> Result<Way, String> {
    let oif = match iface {
        Some(name) => match netlink::index_of(name) {
            Some(i) => Some(i),
            None => {
                return Err(format!(
                    "unknown interface {name} (see `ip link` for the names on this host)"
                ))
            }
        },
        None => None,
    };
    let route = netlink::route_get(rip, oif, deadline)
        .map_err(|e| setup_error(&format!("no route to the real server {rip}"), &e))?;
    if route.kind == netlink::RTN_LOCAL {
        return Err(format!(
            "{rip} is an address of this host, not a real server (check --rip)"
        ));
    }
    if route.kind != netlink::RTN_UNICAST {
        return Err(format!(
            "no usable route to the real server {rip} (route type {})",
            route.kind
        ));
    }
    let (link, addrs) = interface(route.oif)?;
    let Some(our_mac) = link.mac.filter(|m| *m != MacAddr::ZERO) else {
        return Err(format!(
            "interface {} has no Ethernet address; DR and TUN probes need an Ethernet link",
            link.name
        ));
    };
    Ok(Way {
        route,
        link,
        our_mac,
        addrs,
    })
}

/// The director's outer source address, with every check of `req` over `way` (each with
/// its source) pushed onto `checks`; the error is the down verdict's reason (`checks` may
/// then hold some of them).
pub fn plan_checks(req: &Request, way: &Way, checks: &mut Vec<Check>) -> Result<IpAddr, String> {
    let (route, link) = (&way.route, &way.link);
    if req.method == ForwardingMethod::Nat {
        return Err(format!(
            "a NAT real server ({}) does not hold the VIP; check it through its own address",
            req.rip
        ));
    }
    if req.method == ForwardingMethod::DirectRouting {
        if let Some(gw) = route.gateway {
            return Err(format!(
                "real server {} is not on-link from {} (routed via {gw}); direct routing needs \
                 the real server on the director's own network",
                req.rip, link.name
            ));
        }
    }
    let Some(outer_src) = pick_source(route.prefsrc, &way.addrs, req.rip, &req.vips) else {
        return Err(format!(
            "{} has no {} address other than a VIP to send from (a probe from the VIP would \
             be answered to the real server itself); add one",
            link.name,
            family_name(req.rip)
        ));
    };
    for &vip in &req.vips {
        let src = if vip.is_ipv4() == req.rip.is_ipv4() {
            outer_src
        } else {
            pick_source(None, &way.addrs, vip, &req.vips).ok_or_else(|| {
                format!(
                    "{} has no {} address to probe VIP {vip} from; add one",
                    link.name,
                    family_name(vip)
                )
            })?
        };
        for &kind in &req.checks {
            // Through a router the real server's own link is out of reach: nothing to ask.
            if kind == CheckKind::Arp && route.gateway.is_some() {
                continue;
            }
            checks.push(Check { kind, vip, src });
        }
    }
    Ok(outer_src)
}

/// Why a packet socket cannot be opened, with the hint for a missing capability.
pub fn socket_error(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::PermissionDenied {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "/path/to/vipcheck".to_string());
        return format!(
            "cannot open a packet socket: {} (run as root or grant it: setcap \
             cap_net_raw+ep {exe})",
            os_message(e)
        );
    }
    setup_error("cannot open a packet socket", e)
}

/// As [`probe`]; `exiting` says the process ends right after, so the packet socket is
/// released by a helper that outlives it (see [`PacketSocket::release_in_background`]).
fn probe_with(req: &Request, start: Instant, exiting: bool) -> Verdict {
    if req.method == ForwardingMethod::Nat {
        return nat::probe(req, start);
    }
    let deadline = start + req.timeout;
    let way = match find_way(req.rip, req.iface.as_deref(), deadline) {
        Ok(w) => w,
        Err(reason) => return Verdict::failed(reason),
    };
    let mut checks = Vec::new();
    let outer_src = match plan_checks(req, &way, &mut checks) {
        Ok(src) => src,
        Err(reason) => return Verdict::failed(reason),
    };
    // Held until the checks are done: the director's kernel takes the replies quietly.
    let _udp_ports = match udp::claim_ports(&mut checks, way.link.index) {
        Ok(s) => s,
        Err(e) => return Verdict::failed(setup_error("cannot hold a UDP source port", &e)),
    };
    let mut sources = vec![outer_src];
    sources.extend(checks.iter().map(|c| c.src));
    let mut sock = match PacketSocket::open(way.link.index, way.our_mac, &sources) {
        Ok(s) => s,
        Err(e) => return Verdict::failed(socket_error(&e)),
    };
    let mut entropy = OsEntropy;
    let verdict = run_path(
        req,
        &mut sock,
        &mut entropy,
        &way,
        outer_src,
        checks,
        deadline,
    );
    if exiting {
        sock.release_in_background();
    }
    verdict
}

/// The part after the kernel lookups: neighbour resolution and the checks, over any
/// [`FrameIo`].
fn run_path(
    req: &Request,
    io: &mut impl FrameIo,
    entropy: &mut impl Entropy,
    way: &Way,
    outer_src: IpAddr,
    checks: Vec<Check>,
    deadline: Instant,
) -> Verdict {
    let (iface, our_mac) = (&way.link.name, way.our_mac);
    let next_hop = way.route.gateway.unwrap_or(req.rip);
    let attempts = req.retries.saturating_add(1);
    let (peer_mac, confirm) = match netlink::neighbor(way.route.oif, next_hop, deadline) {
        Ok(Some(n)) => (n.mac, (!n.confirmed).then_some(next_hop)),
        _ => match engine::resolve_neighbor(io, our_mac, outer_src, next_hop, deadline, attempts) {
            // Our own resolution just now: nothing left to confirm.
            Ok(Some(mac)) => (mac, None),
            Ok(None) => return Verdict::failed(no_neighbour(next_hop, iface)),
            Err(e) => return Verdict::failed(setup_error("cannot send on the packet socket", &e)),
        },
    };
    let mut path = way.path(req, outer_src, peer_mac);
    let verdict = run_checks_with(req, &path, io, entropy, &checks, deadline, None, confirm);
    if let Some(c) = verdict.mac_change {
        path.next_hop_mac = c.to;
    }
    match &req.app {
        Some((app, port)) if verdict.up => {
            let change = verdict.mac_change;
            application_checks(req, verdict, &path, &checks, app, *port, deadline)
                .with_mac_change(change)
        }
        _ => verdict,
    }
}

/// The reason when the next hop does not answer our own ARP / neighbour solicitation.
pub fn no_neighbour(next_hop: IpAddr, iface: &str) -> String {
    let what = if next_hop.is_ipv4() {
        "ARP reply"
    } else {
        "neighbour advertisement"
    };
    format!("no {what} from {next_hop} on {iface}")
}

/// `--check http|https|tcp-session`: once the VIP is known to be on the real server, the
/// application's own check runs through it, per VIP, in a session of its own
/// ([`session`]); the verdict is up only when every session is.
fn application_checks(
    req: &Request,
    mut verdict: Verdict,
    path: &NetPath,
    checks: &[Check],
    app: &session::AppCheck,
    port: u16,
    deadline: Instant,
) -> Verdict {
    let name = match app {
        session::AppCheck::TcpSession => "tcp-session",
        session::AppCheck::Http(_) => "http",
        session::AppCheck::Https(..) => "https",
    };
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{}/mtu", path.iface))
        .ok()
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(1500);
    let mut results = std::mem::take(&mut verdict.checks);
    for vip in &req.vips {
        let src = checks
            .iter()
            .find(|c| c.vip == *vip)
            .map_or(path.src, |c| c.src);
        let target = session::Target {
            vip: *vip,
            src,
            port,
            mtu,
        };
        let until = deadline;
        let (up, reason, latency) = match session::run(path, &target, app, until) {
            Ok(o) if o.is_up() => (true, String::new(), Some(o.elapsed)),
            Ok(o) => (
                false,
                format!("VIP {vip} port {port}: {name} {}", o.reason),
                None,
            ),
            Err(e) => (
                false,
                format!("VIP {vip} port {port}: {name} check failed: {e}"),
                None,
            ),
        };
        results.push(CheckResult {
            check: name,
            vip: *vip,
            port: Some(port),
            up,
            reason,
            latency_ms: latency.map(|d| (d.as_secs_f64() * 1e5).round() / 1e2),
            attempts: 1,
            decides: true,
            answer: if up { Answer::Reply } else { Answer::Silence },
        });
    }
    Verdict::from_checks(req, path, results)
}

/// The decision rule, applied to one probe's results in place; returns the notes for
/// an operator.
///
/// For a TCP service the TCP exchange through the VIP decides: a SYN-ACK from the real
/// server's MAC means the VIP is there and listening, a RST from it that the VIP is there
/// and the port closed. ICMP then only corroborates and explains: an echo that goes
/// unanswered while TCP answered is a note (`icmp filtered`), not a failure, since
/// hardened servers drop echo requests. Where TCP got no answer, ICMP says why: an echo
/// reply (the VIP is there, the port filtered), a TTL-exceeded (forwarded: no VIP), or
/// nothing (no VIP). ICMP decides alone only where nothing else can (`--check icmp`, UDP
/// services). An ICMP error that shows the path cannot serve the VIP (forwarded, tunnel
/// not decapsulated) decides on any check.
pub fn decide(checks: &mut [CheckResult], peer: crate::wire::MacAddr) -> Vec<String> {
    let mut notes = Vec::new();
    // Each VIP once, at its first result. No allocation: this runs for every verdict.
    for first in 0..checks.len() {
        let vip = checks[first].vip;
        if checks[..first].iter().any(|c| c.vip == vip) {
            continue;
        }
        let several = several(checks, vip);
        let icmp = checks
            .iter()
            .position(|c| c.vip == vip && c.check == "icmp");
        let tcp = checks
            .iter()
            .position(|c| c.vip == vip && matches!(c.check, "tcp" | "dns" | "udp"));
        let (Some(i), Some(t)) = (icmp, tcp) else {
            continue;
        };
        let (icmp, tcp) = two_mut(checks, i, t);
        icmp.decides = false;
        if icmp.answer == Answer::PathError && !tcp.up {
            // Forwarded or not decapsulated: the ICMP error is the better reason.
            tcp.decides = false;
            icmp.decides = true;
            continue;
        }
        if tcp.up {
            match icmp.answer {
                Answer::Reply => {}
                Answer::Silence | Answer::NotRun => notes.push(if several {
                    format!("{vip}: icmp filtered")
                } else {
                    "icmp filtered".to_string()
                }),
                _ => notes.push(format!("icmp: {}", icmp.reason)),
            }
            if !icmp.up && !icmp.reason.starts_with("icmp filtered") {
                icmp.reason = format!("icmp filtered: {}", icmp.reason);
            }
            continue;
        }
        if tcp.answer == Answer::NoReplyNeeded {
            // keepalived's UDP_CHECK without require_reply: silence is success, but only
            // while the VIP is known to be there (an echo reply through the real server).
            let port = tcp.port.unwrap_or(0);
            if icmp.answer == Answer::Reply {
                tcp.up = true;
                tcp.reason.clear();
                notes.push(format!("udp/{port}: no reply, none required"));
            } else {
                tcp.reason = format!(
                    "no reply on udp/{port} (none required) and {}: the VIP's presence is not shown",
                    icmp.reason
                );
            }
            continue;
        }
        if tcp.check != "tcp" && matches!(tcp.answer, Answer::Silence | Answer::NotRun) {
            let port = tcp.port.unwrap_or(0);
            let name = tcp.check;
            tcp.reason = match icmp.answer {
                Answer::Reply => format!(
                    "VIP {vip} answers ICMP echo through {peer} but {name} on udp/{port} gave no \
                     reply"
                ),
                // The ICMP check's own words: the generic silence, or what answered.
                Answer::Silence | Answer::NotRun => format!("no reply: {}", icmp.reason),
                _ => icmp.reason.clone(),
            };
            continue;
        }
        if matches!(tcp.answer, Answer::Silence | Answer::NotRun) {
            let port = tcp.port.unwrap_or(0);
            tcp.reason = match icmp.answer {
                Answer::Reply => format!(
                    "VIP {vip} answers ICMP echo through {peer} but not TCP {port} (filtered, \
                     or the service drops SYNs?)"
                ),
                // The ICMP check's own words: the generic silence, or what answered.
                _ => icmp.reason.clone(),
            };
        }
    }
    notes
}

/// Elements `i` and `j` (not the same) of `s`, both mutable.
fn two_mut<T>(s: &mut [T], i: usize, j: usize) -> (&mut T, &mut T) {
    assert_ne!(i, j, "two_mut needs two elements");
    if i < j {
        let (a, b) = s.split_at_mut(j);
        (&mut a[i], &mut b[0])
    } else {
        let (a, b) = s.split_at_mut(i);
        (&mut b[0], &mut a[j])
    }
}

/// Whether the results cover more than one VIP.
fn several(checks: &[CheckResult], vip: IpAddr) -> bool {
    checks.iter().any(|c| c.vip != vip)
}

/// Why an answer to the ARP check is a problem, and what to do.
fn arp_answer_reason(vip: IpAddr) -> String {
    match vip {
        IpAddr::V4(_) => format!(
            "answers ARP for VIP {vip}: it can take VIP traffic away from the director (set \
             arp_ignore=1, arp_announce=2 or put the VIP on lo)"
        ),
        IpAddr::V6(_) => format!(
            "answers neighbour solicitations for VIP {vip}: it can take VIP traffic away from \
             the director (put the VIP on lo, not on the real server's network interface)"
        ),
    }
}

/// Runs `checks` at once within `deadline` (see [`engine::Prober::round`]) and judges
/// them by the decision rule ([`decide`]).
pub fn run_checks(
    req: &Request,
    path: &NetPath,
    io: &mut impl FrameIo,
    entropy: &mut impl Entropy,
    checks: &[Check],
    deadline: Instant,
) -> Verdict {
    run_checks_with(req, path, io, entropy, checks, deadline, None, None)
}

/// As [`run_checks`]; with `memo`, an ICMP check already run for the same VIP and real
/// server in this run is not sent again: its result is shared. With `confirm`, the next
/// hop's MAC came from a neighbour entry the kernel no longer vouches for and is
/// confirmed on the way.
#[allow(clippy::too_many_arguments)]
pub fn run_checks_with(
    req: &Request,
    path: &NetPath,
    io: &mut impl FrameIo,
    entropy: &mut impl Entropy,
    checks: &[Check],
    deadline: Instant,
    memo: Option<&IcmpMemo>,
    confirm: Option<IpAddr>,
) -> Verdict {
    let all: Vec<usize> = (0..checks.len()).collect();
    let group = Group {
        reqs: &[req],
        own: &[&all],
        checks,
        ports_at_once: false,
        arp_known: None,
    };
    let mut verdicts = run_group(&group, path, io, entropy, deadline, memo, confirm).verdicts;
    verdicts
        .pop()
        .unwrap_or_else(|| Verdict::failed("no check was run"))
}

/// Requests to one real server that are probed in one round: the same real server,
/// VIPs, forwarding method, tunnel, timeout and retries; they differ in their ports.
pub struct Group<'a> {
    pub reqs: &'a [&'a Request],
    /// Per request, the indices of its checks in `checks`.
    pub own: &'a [&'a [usize]],
    /// Every request's checks, each once: the ARP and ICMP checks of a VIP are shared.
    pub checks: &'a [Check],
    /// See [`engine::RoundSpec::ports_at_once`].
    pub ports_at_once: bool,
    /// See [`engine::RoundSpec::arp_known`].
    pub arp_known: Option<&'a [IpAddr]>,
}

/// What [`run_group`] found.
pub struct GroupRun {
    /// One verdict per request, in order.
    pub verdicts: Vec<Verdict>,
    /// See [`engine::Round::arp_answered`].
    pub arp_answered: Option<Vec<IpAddr>>,
    /// See [`engine::Round::confirmed`].
    pub confirmed: Option<crate::wire::MacAddr>,
}

/// Runs a [`Group`]'s checks in one round (the ARP question and the echo once, every
/// port's own check) and gives each request the verdict [`run_checks_with`] would give
/// it alone: the decision rule on its own checks' results. With them, the ARP-problem
/// questions' answers when they were asked.
pub fn run_group(
    group: &Group,
    path: &NetPath,
    io: &mut impl FrameIo,
    entropy: &mut impl Entropy,
    deadline: Instant,
    memo: Option<&IcmpMemo>,
    confirm: Option<IpAddr>,
) -> GroupRun {
    let Some(first) = group.reqs.first() else {
        return GroupRun {
            verdicts: Vec::new(),
            arp_answered: None,
            confirmed: None,
        };
    };
    let spec = RoundSpec {
        deadline,
        attempts: first.retries.saturating_add(1),
        confirm,
        memo,
        ports_at_once: group.ports_at_once,
        arp_known: group.arp_known,
    };
    let checks = group.checks;
    let round = {
        let mut prober = Prober { io, entropy, path };
        match prober.round(checks, &spec) {
            Ok(r) => r,
            Err(e) => {
                let verdicts = group
                    .reqs
                    .iter()
                    .map(|req| {
                        let mut v = Verdict::from_checks(req, path, Vec::new());
                        v.up = false;
                        v.reason = setup_error("cannot use the packet socket", &e);
                        v.own_fault = true;
                        v
                    })
                    .collect();
                return GroupRun {
                    verdicts,
                    arp_answered: None,
                    confirmed: None,
                };
            }
        }
    };
    // The round's results, one per check that is not an ARP check, in order.
    let mut answered = round.results.iter();
    let results: Vec<Option<&CheckResult>> = checks
        .iter()
        .map(|c| match c.kind {
            CheckKind::Arp => None,
            _ => answered.next(),
        })
        .collect();
    let mut path = path.clone();
    if let Some(c) = round.mac_change {
        path.next_hop_mac = c.to;
    }
    // The answers this round's questions got, or those known before it.
    let arp_answered = round
        .arp_answered
        .as_deref()
        .or(group.arp_known)
        .unwrap_or_default();
    let verdicts = group
        .reqs
        .iter()
        .zip(group.own)
        .map(|(req, own)| {
            let mut mine: Vec<CheckResult> = own
                .iter()
                .filter_map(|&i| results.get(i).copied().flatten().cloned())
                .collect();
            // The ARP results come last, so the line reads as before: `up: icmp .., tcp
            // .., arp ok`.
            mine.extend(
                own.iter()
                    .filter_map(|&i| checks.get(i))
                    .filter(|c| c.kind == CheckKind::Arp)
                    .map(|c| arp_result(req, c, arp_answered)),
            );
            Verdict::from_checks(req, &path, mine).with_mac_change(round.mac_change)
        })
        .collect();
    GroupRun {
        verdicts,
        arp_answered: round.arp_answered,
        confirmed: round.confirmed,
    }
}

/// The ARP check's result for `c`: down (or a warning, when allowed) when the real
/// server answered for the VIP.
fn arp_result(req: &Request, c: &Check, answered: &[IpAddr]) -> CheckResult {
    if answered.contains(&c.vip) {
        let reason = arp_answer_reason(c.vip);
        if req.allow_arp_answer {
            CheckResult::new(c, true, format!("allowed: {reason}"), None, 1)
        } else {
            CheckResult::new(c, false, reason, None, 1)
        }
    } else {
        CheckResult::new(c, true, String::new(), None, 1)
    }
}
