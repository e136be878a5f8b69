//! `vipcheck probe` arguments -> a checked request: durations, ldirectord's positional
//! `VIP VPORT RIP RPORT`, and which checks to run.

use std::net::IpAddr;
use std::time::Duration;

use super::engine::CheckKind;
use super::session::args::AppCheckKind;
use crate::cli::{CheckArg, MethodArg, ProbeArgs, ProtoArg};
use crate::config::ForwardingMethod;

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
    pub app: Option<(super::session::AppCheck, u16)>,
    pub timeout: Duration,
    pub retries: u32,
    pub iface: Option<String>,
    pub json: bool,
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
/// same range (1ms to 1h) and message ([`crate::cli::parse_duration`]).
pub fn parse_duration(s: &str) -> Result<Duration, RequestError> {
    crate::cli::parse_duration(s).map_err(|_| {
        err(
            format!("--timeout {}", crate::cli::duration_message(s)),
            crate::cli::DURATION_HINT,
        )
    })
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
fn check_targets(vips: &[IpAddr], rip: IpAddr, method: MethodArg) -> Result<(), RequestError> {
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
    if method == MethodArg::Dr {
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
    pub fn from_args(args: &ProbeArgs) -> Result<Request, RequestError> {
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
                    port = [vport, rport].into_iter().find(|&p| p != 0);
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
        if vips.contains(&rip) {
            return Err(err(
                format!("the real server {rip} is also given as a VIP"),
                "--rip is the real server's own address, --vip the service's",
            ));
        }
        check_targets(&vips, rip, args.method)?;
        let tcp_service = args.proto == ProtoArg::Tcp;
        let mut checks = Vec::new();
        let app_kind = match args.check {
            CheckArg::Http => Some(AppCheckKind::Http),
            CheckArg::Https => Some(AppCheckKind::Https),
            CheckArg::TcpSession => Some(AppCheckKind::TcpSession),
            _ => None,
        };
        let app = match app_kind {
            None => None,
            Some(kind) => {
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
                let check = args
                    .app
                    .to_check(kind)
                    .map_err(|e| err(e, "see vipcheck probe --help"))?;
                Some((check, port))
            }
        };
        if matches!(args.check, CheckArg::Icmp | CheckArg::All) || app.is_some() {
            checks.push(CheckKind::Icmp);
        }
        if args.check == CheckArg::Tcp && !tcp_service {
            return Err(err(
                "--check tcp was asked for a UDP service",
                "UDP services are checked with ICMP only: use --check icmp",
            ));
        }
        if args.check == CheckArg::Tcp && port.is_none() {
            return Err(err("--check tcp needs a port", "give it with --port PORT"));
        }
        if matches!(args.check, CheckArg::Tcp | CheckArg::All) && tcp_service {
            if let Some(port) = port {
                if port == 0 {
                    return Err(err("port 0 cannot be probed", "give the service's port"));
                }
                checks.push(CheckKind::Tcp { port });
            }
        }
        if matches!(args.check, CheckArg::Arp | CheckArg::All) || app.is_some() {
            checks.push(CheckKind::Arp);
        }
        Ok(Request {
            vips,
            rip,
            method: match args.method {
                MethodArg::Dr => ForwardingMethod::DirectRouting,
                MethodArg::Tun => ForwardingMethod::Tunnel,
            },
            checks,
            icmp_only_udp: !tcp_service && matches!(args.check, CheckArg::All),
            allow_arp_answer: args.allow_arp_answer,
            app,
            timeout: parse_duration(&args.timeout)?,
            retries: args.retries.min(100),
            iface: args.iface.clone(),
            json: args.json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: ProbeArgs,
    }

    fn req(argv: &[&str]) -> Result<Request, RequestError> {
        let mut v = vec!["probe"];
        v.extend_from_slice(argv);
        let w = Wrap::try_parse_from(v).expect("clap accepts the arguments");
        Request::from_args(&w.args)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
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
    fn options_give_icmp_and_tcp_for_a_tcp_service() {
        let r = req(&["--vip", "192.0.2.20", "--rip", "192.0.2.11", "--port", "80"]).unwrap();
        assert_eq!(r.vips, vec![ip("192.0.2.20")]);
        assert_eq!(r.rip, ip("192.0.2.11"));
        assert_eq!(
            r.checks,
            vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }, CheckKind::Arp]
        );
        assert_eq!(r.method, ForwardingMethod::DirectRouting);
        assert_eq!(r.timeout, Duration::from_secs(2));
    }

    #[test]
    fn ldirectord_positionals_with_bracketed_ipv6() {
        let r = req(&[
            "--method",
            "tun",
            "[2001:db8::20]",
            "443",
            "[2001:db8::11]",
            "443",
        ])
        .unwrap();
        assert_eq!(r.vips, vec![ip("2001:db8::20")]);
        assert_eq!(r.rip, ip("2001:db8::11"));
        assert_eq!(
            r.checks,
            vec![
                CheckKind::Icmp,
                CheckKind::Tcp { port: 443 },
                CheckKind::Arp
            ]
        );
        assert_eq!(r.method, ForwardingMethod::Tunnel);
    }

    #[test]
    fn fwmark_needs_vips_and_takes_the_real_port() {
        let e = req(&["5", "0", "192.0.2.11", "80"]).unwrap_err();
        assert!(e.message.contains("fwmark 5"), "{e}");
        assert!(e.hint.contains("--vip"));
        let r = req(&["--vip", "192.0.2.20", "5", "0", "192.0.2.11", "80"]).unwrap();
        assert_eq!(r.vips, vec![ip("192.0.2.20")]);
        assert_eq!(
            r.checks,
            vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }, CheckKind::Arp]
        );
    }

    #[test]
    fn wrong_positional_counts_and_values_are_errors() {
        assert!(req(&["192.0.2.20", "80"]).is_err());
        assert!(req(&["vip", "80", "192.0.2.11", "80"]).is_err());
        assert!(req(&["192.0.2.20", "http", "192.0.2.11", "80"]).is_err());
        let e = req(&[
            "--rip",
            "192.0.2.12",
            "192.0.2.20",
            "80",
            "192.0.2.11",
            "80",
        ])
        .unwrap_err();
        assert!(e.message.contains("differ"));
    }

    #[test]
    fn udp_service_is_icmp_only() {
        let r = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--port",
            "53",
            "--proto",
            "udp",
        ])
        .unwrap();
        assert_eq!(r.checks, vec![CheckKind::Icmp, CheckKind::Arp]);
        assert!(r.icmp_only_udp);
        assert!(req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--proto",
            "udp",
            "--check",
            "tcp"
        ])
        .is_err());
    }

    #[test]
    fn missing_vip_rip_or_port_is_an_error() {
        assert!(req(&["--rip", "192.0.2.11"]).is_err());
        assert!(req(&["--vip", "192.0.2.20"]).is_err());
        assert!(req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--check",
            "tcp"
        ])
        .is_err());
        assert!(req(&["--vip", "192.0.2.20", "--rip", "192.0.2.20"]).is_err());
    }

    #[test]
    fn without_a_port_only_icmp_runs() {
        let r = req(&["--vip", "192.0.2.20", "--rip", "192.0.2.11"]).unwrap();
        assert_eq!(r.checks, vec![CheckKind::Icmp, CheckKind::Arp]);
        assert!(!r.icmp_only_udp);
    }

    #[test]
    fn check_arp_alone_and_the_allow_flag() {
        let r = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--check",
            "arp",
        ])
        .unwrap();
        assert_eq!(r.checks, vec![CheckKind::Arp]);
        assert!(!r.allow_arp_answer);
        assert!(!r.icmp_only_udp);
        let r = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--allow-arp-answer",
        ])
        .unwrap();
        assert!(r.allow_arp_answer);
        assert_eq!(r.checks, vec![CheckKind::Icmp, CheckKind::Arp]);
    }

    #[test]
    fn application_checks_run_after_icmp_and_arp_and_need_a_tcp_port() {
        let r = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--port",
            "80",
            "--check",
            "http",
        ])
        .unwrap();
        assert_eq!(r.checks, vec![CheckKind::Icmp, CheckKind::Arp]);
        assert!(matches!(
            r.app,
            Some((super::super::session::AppCheck::Http(_), 80))
        ));
        let no_port = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--check",
            "tcp-session",
        ]);
        assert!(no_port.unwrap_err().message.contains("needs a port"));
        let udp = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--port",
            "53",
            "--proto",
            "udp",
            "--check",
            "https",
        ]);
        assert!(udp.unwrap_err().message.contains("UDP"));
        let bad = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--port",
            "80",
            "--check",
            "http",
            "--expect-status",
            "2xx",
        ]);
        assert!(bad.unwrap_err().message.contains("--expect-status"));
    }

    #[test]
    fn targets_that_cannot_be_right_are_refused_up_front() {
        for (vip, rip, method, says) in [
            (
                "0.0.0.0",
                "192.0.2.11",
                "dr",
                "VIP 0.0.0.0 is the unspecified address",
            ),
            (
                "255.255.255.255",
                "192.0.2.11",
                "dr",
                "is the broadcast address",
            ),
            ("224.0.0.18", "192.0.2.11", "dr", "is a multicast address"),
            (
                "127.0.0.1",
                "192.0.2.11",
                "dr",
                "VIP 127.0.0.1 is a loopback address",
            ),
            ("::1", "2001:db8::b", "dr", "VIP ::1 is a loopback address"),
            ("ff02::1", "2001:db8::b", "tun", "is a multicast address"),
            ("::", "2001:db8::b", "tun", "is the unspecified address"),
            (
                "192.0.2.20",
                "127.0.0.2",
                "dr",
                "real server 127.0.0.2 is a loopback address",
            ),
            (
                "192.0.2.20",
                "2001:db8::b",
                "dr",
                "of different address families",
            ),
            (
                "2001:db8::20",
                "192.0.2.11",
                "dr",
                "of different address families",
            ),
        ] {
            let e = req(&[
                "--vip", vip, "--rip", rip, "--method", method, "--port", "80",
            ])
            .expect_err(vip);
            assert!(e.message.contains(says), "{vip} {rip}: {e}");
        }
        // A tunnel may carry another family than its outer header's.
        let mixed = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "2001:db8::b",
            "--method",
            "tun",
            "--port",
            "80",
        ]);
        assert!(mixed.is_ok(), "{mixed:?}");
    }
}
