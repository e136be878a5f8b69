//! What a probe is asked -> a checked [`Request`]. Two ways in: [`ProbeInputs`], the
//! probe's command line as plain values (durations as written, ldirectord's positional
//! `VIP VPORT RIP RPORT`), read by [`Request::from_inputs`]; and [`ProbeSpec`], typed
//! values (what `status` has for each pair), read by [`Request::new`]. Both choose the
//! checks the same way.

use std::net::IpAddr;
use std::time::Duration;

use super::engine::CheckKind;
use super::session::{AppCheck, AppCheckKind, AppCheckOptions};
use super::udp::{UdpCheckKind, UdpCheckOptions, UdpProbe};
use crate::config::{ForwardingMethod, Protocol, Tunnel, TunnelChecksum, TunnelType};
use crate::duration::{duration_message, parse_duration as parse_any_duration, DURATION_HINT};

/// Extra attempts when none are asked for (`--retries`).
pub const DEFAULT_RETRIES: u32 = 2;
/// The probe's time budget when none is asked for (`--timeout`).
pub const DEFAULT_TIMEOUT: &str = "2s";

/// Which checks a probe runs (`--check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckSelection {
    Icmp,
    Tcp,
    /// Only whether the real server answers ARP / neighbour solicitation for the VIP.
    Arp,
    /// ICMP, TCP for a TCP service with a port, and ARP.
    All,
    /// ICMP and ARP, then the application check through the VIP.
    App(AppCheckKind),
    /// A UDP service's own check through the VIP (DNS query or datagram), with ICMP and
    /// ARP.
    Udp(UdpCheckKind),
}

/// The probe's command line as plain values: what `vipcheck probe` was asked, before any
/// of it is checked. Everything wrong in it is a "down" verdict, never a usage error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeInputs {
    /// The VIPs (every one must answer).
    pub vips: Vec<IpAddr>,
    /// The real server's own address.
    pub rip: Option<IpAddr>,
    /// The service port (for the TCP and application checks).
    pub port: Option<u16>,
    /// The service's protocol: a UDP service gets the ICMP check only.
    pub proto: Protocol,
    pub method: ForwardingMethod,
    pub check: CheckSelection,
    /// An ARP answer is a warning instead of down.
    pub allow_arp_answer: bool,
    pub app: AppCheckOptions,
    /// The whole probe's time budget, as written (read by [`parse_duration`]).
    pub timeout: String,
    pub retries: u32,
    pub iface: Option<String>,
    pub json: bool,
    /// ldirectord's `VIP VPORT RIP RPORT` (IPv6 may be in brackets), or nothing.
    pub positional: Vec<String>,
    /// TUN: the encapsulation (`--tun-type`, `--tun-port`, `--tun-csum`).
    pub tunnel: Tunnel,
    /// Options of the UDP service checks (`--check dns|udp`, or `all` for a UDP service).
    pub udp: UdpCheckOptions,
}

/// A probe in typed values: the pair, the checks and the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub vips: Vec<IpAddr>,
    pub rip: IpAddr,
    pub port: Option<u16>,
    pub proto: Protocol,
    pub method: ForwardingMethod,
    pub check: CheckSelection,
    pub allow_arp_answer: bool,
    pub app: AppCheckOptions,
    pub timeout: Duration,
    pub retries: u32,
    pub iface: Option<String>,
    pub json: bool,
    /// TUN: the encapsulation.
    pub tunnel: Tunnel,
    pub udp: UdpCheckOptions,
}

/// A probe request whose arguments make sense together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub vips: Vec<IpAddr>,
    pub rip: IpAddr,
    pub method: ForwardingMethod,
    /// The checks for every VIP, in order.
    pub checks: Vec<CheckKind>,
    /// True when the service is UDP and so only ICMP is checked.
    pub icmp_only_udp: bool,
    /// An ARP answer is a warning instead of down.
    pub allow_arp_answer: bool,
    /// The application check through the VIP (`--check http|https|tcp-session`), run
    /// after the others pass.
    pub app: Option<(AppCheck, u16)>,
    pub timeout: Duration,
    pub retries: u32,
    pub iface: Option<String>,
    pub json: bool,
    /// TUN: the encapsulation (IPIP unless asked otherwise).
    pub tunnel: Tunnel,
}

/// Arguments that cannot be run: one sentence and a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({hint})")]
pub struct RequestError {
    pub message: String,
    pub hint: String,
}

fn err(message: impl Into<String>, hint: impl Into<String>) -> RequestError {
    RequestError {
        message: message.into(),
        hint: hint.into(),
    }
}

/// `500ms`, `2s`, `1.5s`, `2` (seconds), read as every duration option is, with the
/// same range (1ms to 1h) and message ([`crate::duration::parse_duration`]).
pub fn parse_duration(s: &str) -> Result<Duration, RequestError> {
    parse_any_duration(s)
        .map_err(|_| err(format!("--timeout {}", duration_message(s)), DURATION_HINT))
}

/// An address as ldirectord writes it: IPv6 may come in brackets.
fn parse_addr(s: &str) -> Option<IpAddr> {
    let t = s
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(s);
    t.parse().ok()
}

fn parse_port(s: &str, what: &str) -> Result<u16, RequestError> {
    s.parse().map_err(|_| {
        err(
            format!("{what} {s:?} is not a port number"),
            "ldirectord passes VIP VPORT RIP RPORT",
        )
    })
}

/// Refuses VIPs and real servers no probe can check (see
/// [`crate::config::model::unusable_target`]), and direct routing between families.
fn check_targets(
    vips: &[IpAddr],
    rip: IpAddr,
    method: ForwardingMethod,
    nat_udp: bool,
) -> Result<(), RequestError> {
    use crate::config::model::unusable_target;
    for &vip in vips {
        if let Some(what) = unusable_target(vip) {
            return Err(err(
                format!("VIP {vip} is {what}: no real server can hold it"),
                "give the service's unicast VIP",
            ));
        }
    }
    if let Some(what) = unusable_target(rip) {
        return Err(err(
            format!("real server {rip} is {what}"),
            "give the real server's own unicast address",
        ));
    }
    if method == ForwardingMethod::Nat && !nat_udp {
        return Err(err(
            format!("real server {rip} is behind NAT and does not hold the VIP"),
            "vipcheck probes direct routing (dr) and tunnelling (tun) real servers; under nat \
             only a UDP service's own check (--proto udp --check dns|udp) runs, to its address",
        ));
    }
    if method == ForwardingMethod::DirectRouting {
        if let Some(vip) = vips.iter().find(|v| v.is_ipv4() != rip.is_ipv4()) {
            return Err(err(
                format!(
                    "real server {rip} and VIP {vip} are of different address families; direct \
                     routing cannot forward between them"
                ),
                "IPVS mixes IPv4 and IPv6 only in tunnel mode (--method tun)",
            ));
        }
    }
    Ok(())
}

impl Request {
    /// Checks the arguments. ldirectord's four positional values add to the options:
    /// the VIP (an address, or a fwmark number that then needs `--vip`), the ports
    /// (`--port`, else VPORT, else RPORT: DR and TUN do not translate ports, so the real
    /// server sees VPORT) and the RIP (which must agree with `--rip` when both are given).
    pub fn from_inputs(args: &ProbeInputs) -> Result<Request, RequestError> {
        let mut vips = args.vips.clone();
        let mut rip = args.rip;
        let mut port = args.port;
        match args.positional.as_slice() {
            [] => {}
            [vip, vport, r, rport] => {
                let vport = parse_port(vport, "VPORT")?;
                let rport = parse_port(rport, "RPORT")?;
                if let Some(ip) = parse_addr(vip) {
                    if !vips.contains(&ip) {
                        vips.push(ip);
                    }
                } else if let Ok(mark) = vip.parse::<u32>() {
                    if vips.is_empty() {
                        return Err(err(
                            format!("the service is fwmark {mark}, which has no address to probe"),
                            "give its VIPs with --vip (repeatable)",
                        ));
                    }
                } else {
                    return Err(err(
                        format!("VIP {vip:?} is neither an address nor a fwmark number"),
                        "ldirectord passes VIP VPORT RIP RPORT",
                    ));
                }
                let r = parse_addr(r).ok_or_else(|| {
                    err(
                        format!("RIP {r:?} is not an address"),
                        "ldirectord passes VIP VPORT RIP RPORT",
                    )
                })?;
                match rip {
                    Some(given) if given != r => {
                        return Err(err(
                            format!("--rip {given} and the positional RIP {r} differ"),
                            "give the real server once",
                        ))
                    }
                    _ => rip = Some(r),
                }
                if port.is_none() {
                    // NAT translates the port: the real server listens on RPORT.
                    let order = if args.method == ForwardingMethod::Nat {
                        [rport, vport]
                    } else {
                        [vport, rport]
                    };
                    port = order.into_iter().find(|&p| p != 0);
                }
            }
            other => {
                return Err(err(
                    format!(
                        "expected the four positional values VIP VPORT RIP RPORT, got {}",
                        other.len()
                    ),
                    "ldirectord appends all four; otherwise use --vip and --rip",
                ))
            }
        }
        if vips.is_empty() {
            return Err(err("no VIP to probe", "give one with --vip VIP"));
        }
        let rip = rip.ok_or_else(|| err("no real server to probe", "give it with --rip RIP"))?;
        // Read now, reported after the other checks, as it always was.
        let timeout = parse_duration(&args.timeout);
        let req = Request::new(ProbeSpec {
            vips,
            rip,
            port,
            proto: args.proto,
            method: args.method,
            check: args.check,
            allow_arp_answer: args.allow_arp_answer,
            app: args.app.clone(),
            timeout: timeout.clone().unwrap_or_default(),
            retries: args.retries,
            iface: args.iface.clone(),
            json: args.json,
            tunnel: args.tunnel,
            udp: args.udp.clone(),
        })?;
        Ok(Request {
            timeout: timeout?,
            ..req
        })
    }

    /// Checks a probe given in typed values and chooses its checks: ICMP, TCP (a TCP
    /// service with a port), ARP, or the application check after ICMP and ARP.
    pub fn new(spec: ProbeSpec) -> Result<Request, RequestError> {
        let ProbeSpec {
            vips,
            rip,
            port,
            proto,
            method,
            check,
            allow_arp_answer,
            app: app_options,
            timeout,
            retries,
            iface,
            json,
            tunnel,
            udp,
        } = spec;
        if vips.is_empty() {
            return Err(err("no VIP to probe", "give one with --vip VIP"));
        }
        if vips.contains(&rip) {
            return Err(err(
                format!("the real server {rip} is also given as a VIP"),
                "--rip is the real server's own address, --vip the service's",
            ));
        }
        // A NAT real server holds no VIP: only a UDP service's own check runs, sent to
        // the real server's own address (see super::nat).
        let nat_udp = method == ForwardingMethod::Nat
            && proto == Protocol::Udp
            && matches!(check, CheckSelection::Udp(_));
        check_targets(&vips, rip, method, nat_udp)?;
        check_tunnel(method, tunnel)?;
        if proto == Protocol::Sctp {
            return Err(err(
                "an SCTP service cannot be probed",
                "vipcheck probes TCP and UDP services",
            ));
        }
        let tcp_service = proto == Protocol::Tcp;
        let mut checks = Vec::new();
        let app = match check {
            CheckSelection::App(kind) => {
                if !tcp_service {
                    return Err(err(
                        "an application check was asked for a UDP service",
                        "http, https and tcp-session run over TCP: use --proto tcp or --check icmp",
                    ));
                }
                let port = port.filter(|p| *p != 0).ok_or_else(|| {
                    err(
                        "an application check needs a port",
                        "give it with --port PORT",
                    )
                })?;
                let check = app_options
                    .to_check(kind)
                    .map_err(|e| err(e, "see vipcheck probe --help"))?;
                Some((check, port))
            }
            _ => None,
        };
        // A UDP service's own check: asked for, or under `all` when the config names
        // one (DNS_CHECK, UDP_CHECK, service=dns) or the port is DNS's.
        let udp_kind = match check {
            CheckSelection::Udp(_) if tcp_service => {
                return Err(err(
                    "--check dns|udp was asked for a TCP service",
                    "give the UDP service's protocol with --proto udp",
                ))
            }
            CheckSelection::Udp(kind) => Some(kind),
            CheckSelection::All if !tcp_service => {
                udp.kind.or((port == Some(53)).then_some(UdpCheckKind::Dns))
            }
            _ => None,
        };
        let udp_check = match udp_kind {
            Some(kind) => {
                let port = port.filter(|p| *p != 0).ok_or_else(|| {
                    err(
                        "a UDP service check needs a port",
                        "give it with --port PORT",
                    )
                })?;
                let mut probe = udp
                    .to_probe(kind)
                    .map_err(|e| err(e, "see vipcheck probe --help"))?;
                // DNS only because of the port, and no name to ask: any answer will do.
                if let UdpProbe::Dns { any_rcode, .. } = &mut probe {
                    *any_rcode = check == CheckSelection::All
                        && udp.kind.is_none()
                        && udp.dns_name.is_none();
                }
                Some(CheckKind::Udp {
                    port,
                    src_port: 0,
                    probe,
                })
            }
            None => None,
        };
        if let (true, Some(udp_check)) = (nat_udp, udp_check) {
            return super::nat::direct_request(vips, rip, udp_check, timeout, retries, iface, json);
        }
        if matches!(
            check,
            CheckSelection::Icmp | CheckSelection::All | CheckSelection::Udp(_)
        ) || app.is_some()
        {
            checks.push(CheckKind::Icmp);
        }
        checks.extend(udp_check);
        if check == CheckSelection::Tcp && !tcp_service {
            return Err(err(
                "--check tcp was asked for a UDP service",
                "a UDP service is checked with --check dns, udp, icmp or all",
            ));
        }
        if check == CheckSelection::Tcp && port.is_none() {
            return Err(err("--check tcp needs a port", "give it with --port PORT"));
        }
        if matches!(check, CheckSelection::Tcp | CheckSelection::All) && tcp_service {
            if let Some(port) = port {
                if port == 0 {
                    return Err(err("port 0 cannot be probed", "give the service's port"));
                }
                checks.push(CheckKind::Tcp { port });
            }
        }
        if matches!(
            check,
            CheckSelection::Arp | CheckSelection::All | CheckSelection::Udp(_)
        ) || app.is_some()
        {
            checks.push(CheckKind::Arp);
        }
        Ok(Request {
            vips,
            rip,
            method,
            checks,
            icmp_only_udp: !tcp_service && check == CheckSelection::All && udp_check.is_none(),
            allow_arp_answer,
            app,
            timeout,
            retries: retries.min(100),
            iface,
            json,
            tunnel,
        })
    }
}

/// Refuses tunnel options that IPVS (and keepalived) would not take: any but IPIP without
/// TUN, GUE without a port, a checksum option on IPIP, remote checksum offload on GRE.
fn check_tunnel(method: ForwardingMethod, tunnel: Tunnel) -> Result<(), RequestError> {
    if tunnel == Tunnel::default() {
        return Ok(());
    }
    if method != ForwardingMethod::Tunnel {
        return Err(err(
            format!(
                "a {} tunnel was asked for a real server that is not tunnelled",
                tunnel_name(tunnel.kind)
            ),
            "--tun-type, --tun-port and --tun-csum go with --method tun",
        ));
    }
    match (tunnel.kind, tunnel.csum) {
        (TunnelType::Gue { port: 0 }, _) => Err(err(
            "a GUE tunnel needs the real server's GUE port",
            "give it with --tun-port PORT (1-65535)",
        )),
        (TunnelType::Ipip, c) if c != TunnelChecksum::None => Err(err(
            "an IPIP tunnel has no checksum option",
            "--tun-csum csum|remcsum goes with --tun-type gue or gre",
        )),
        (TunnelType::Gre, TunnelChecksum::Remcsum) => Err(err(
            "a GRE tunnel has no remote checksum offload",
            "use --tun-csum csum or none with --tun-type gre",
        )),
        _ => Ok(()),
    }
}

fn tunnel_name(kind: TunnelType) -> &'static str {
    match kind {
        TunnelType::Ipip => "IPIP",
        TunnelType::Gue { .. } => "GUE",
        TunnelType::Gre => "GRE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn spec(proto: Protocol, check: CheckSelection) -> ProbeSpec {
        ProbeSpec {
            vips: vec![ip("192.0.2.20")],
            rip: ip("192.0.2.11"),
            port: Some(80),
            proto,
            method: ForwardingMethod::DirectRouting,
            check,
            allow_arp_answer: false,
            app: AppCheckOptions::default(),
            timeout: Duration::from_secs(1),
            retries: DEFAULT_RETRIES,
            iface: None,
            json: false,
            tunnel: Tunnel::default(),
            udp: UdpCheckOptions::default(),
        }
    }

    #[test]
    fn durations_in_ms_s_and_bare_seconds() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("NaNs").is_err());
    }

    #[test]
    fn typed_specs_choose_the_checks_as_the_command_line_does() {
        let r = Request::new(spec(Protocol::Tcp, CheckSelection::All)).unwrap();
        assert_eq!(
            r.checks,
            vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }, CheckKind::Arp]
        );
        assert_eq!(r.timeout, Duration::from_secs(1));
        let r = Request::new(spec(Protocol::Udp, CheckSelection::All)).unwrap();
        assert_eq!(r.checks, vec![CheckKind::Icmp, CheckKind::Arp]);
        assert!(r.icmp_only_udp);
        let r = Request::new(spec(
            Protocol::Tcp,
            CheckSelection::App(AppCheckKind::TcpSession),
        ))
        .unwrap();
        assert_eq!(r.app, Some((AppCheck::TcpSession, 80)));
    }

    #[test]
    fn tunnel_options_ipvs_would_not_take_are_refused() {
        let tun = |kind, csum| ProbeSpec {
            method: ForwardingMethod::Tunnel,
            tunnel: Tunnel { kind, csum },
            ..spec(Protocol::Tcp, CheckSelection::All)
        };
        let e = Request::new(tun(TunnelType::Gue { port: 0 }, TunnelChecksum::None)).unwrap_err();
        assert!(e.message.contains("GUE port"), "{e}");
        let e = Request::new(tun(TunnelType::Ipip, TunnelChecksum::Csum)).unwrap_err();
        assert!(e.message.contains("IPIP"), "{e}");
        let e = Request::new(tun(TunnelType::Gre, TunnelChecksum::Remcsum)).unwrap_err();
        assert!(e.message.contains("GRE"), "{e}");
        let e = Request::new(ProbeSpec {
            method: ForwardingMethod::DirectRouting,
            ..tun(TunnelType::Gre, TunnelChecksum::None)
        })
        .unwrap_err();
        assert!(e.message.contains("not tunnelled"), "{e}");
        let ok =
            Request::new(tun(TunnelType::Gue { port: 6080 }, TunnelChecksum::Remcsum)).unwrap();
        assert_eq!(ok.tunnel.kind, TunnelType::Gue { port: 6080 });
    }

    #[test]
    fn typed_specs_that_cannot_be_probed_are_refused() {
        let e = Request::new(spec(Protocol::Sctp, CheckSelection::All)).unwrap_err();
        assert!(e.message.contains("SCTP"), "{e}");
        let e = Request::new(ProbeSpec {
            method: ForwardingMethod::Nat,
            ..spec(Protocol::Tcp, CheckSelection::All)
        })
        .unwrap_err();
        assert!(e.message.contains("NAT"), "{e}");
        let e = Request::new(ProbeSpec {
            vips: Vec::new(),
            ..spec(Protocol::Tcp, CheckSelection::All)
        })
        .unwrap_err();
        assert!(e.message.contains("no VIP"), "{e}");
    }

    #[test]
    fn a_bad_timeout_is_reported_after_the_other_mistakes() {
        let inputs = ProbeInputs {
            vips: vec![ip("192.0.2.20")],
            rip: Some(ip("192.0.2.11")),
            port: None,
            proto: Protocol::Tcp,
            method: ForwardingMethod::DirectRouting,
            check: CheckSelection::Tcp,
            allow_arp_answer: false,
            app: AppCheckOptions::default(),
            timeout: "soon".into(),
            retries: DEFAULT_RETRIES,
            iface: None,
            json: false,
            positional: Vec::new(),
            tunnel: Tunnel::default(),
            udp: UdpCheckOptions::default(),
        };
        let e = Request::from_inputs(&inputs).unwrap_err();
        assert!(e.message.contains("needs a port"), "{e}");
        let e = Request::from_inputs(&ProbeInputs {
            port: Some(80),
            ..inputs
        })
        .unwrap_err();
        assert_eq!(
            e.message,
            "--timeout \"soon\" is not a duration from 1ms to 1h"
        );
        assert_eq!(e.hint, DURATION_HINT);
    }
}
