//! The format-neutral model both parsers produce: virtual services with their real
//! servers, each pointing back at the text it came from.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::span::Span;

/// Which daemon's configuration language a file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Keepalived,
    Ldirectord,
}

/// How IPVS forwards a packet to a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ForwardingMethod {
    /// Masquerading: the director rewrites the destination; the VIP is not on the real server.
    Nat,
    /// Direct routing ("gate"): the frame is sent to the real server's MAC, the VIP kept.
    DirectRouting,
    /// IP-in-IP tunnelling ("ipip"): the packet is encapsulated to the real server.
    Tunnel,
}

impl ForwardingMethod {
    /// True for the methods where the real server must hold the VIP itself.
    pub fn needs_vip_on_real_server(self) -> bool {
        matches!(
            self,
            ForwardingMethod::DirectRouting | ForwardingMethod::Tunnel
        )
    }

    /// The value `vipcheck probe --method` takes.
    pub fn probe_arg(self) -> &'static str {
        match self {
            ForwardingMethod::Nat => "nat",
            ForwardingMethod::DirectRouting => "dr",
            ForwardingMethod::Tunnel => "tun",
        }
    }
}

impl fmt::Display for ForwardingMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForwardingMethod::Nat => "NAT",
            ForwardingMethod::DirectRouting => "DR",
            ForwardingMethod::Tunnel => "TUN",
        })
    }
}

/// How a TUN real server's packets are encapsulated (keepalived
/// `lvs_method TUN type ipip|gue port N|gre [nocsum|csum|remcsum]`; the kernel's IPVS
/// reports the same as `IPVS_DEST_ATTR_TUN_TYPE`, `_TUN_PORT` and `_TUN_FLAGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum TunnelType {
    /// IP-in-IP (IPv4 in IPv4 or IPv6, or IPv6 in IPv6): IPVS's default.
    #[default]
    Ipip,
    /// Generic UDP Encapsulation to this UDP port on the real server.
    Gue { port: u16 },
    /// Generic Routing Encapsulation.
    Gre,
}

/// The checksum option of a GUE or GRE tunnel (IPVS's `IP_VS_TUNNEL_ENCAP_FLAG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TunnelChecksum {
    /// No checksum (`nocsum`, the default).
    #[default]
    None,
    /// A checksum in the encapsulation header (`csum`).
    Csum,
    /// Remote checksum offload (`remcsum`, GUE only).
    Remcsum,
}

/// A TUN real server's encapsulation: its type and checksum option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, Default)]
pub struct Tunnel {
    #[serde(flatten)]
    pub kind: TunnelType,
    pub csum: TunnelChecksum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a virtual service is named in its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKey {
    /// `virtual_server 192.0.2.20 80` / `virtual=192.0.2.20:80`
    Address(IpAddr),
    /// `virtual_server fwmark 5` / `virtual=5`
    Fwmark(u32),
    /// `virtual_server group NAME` (keepalived only)
    Group(String),
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Address(ip) => write!(f, "{ip}"),
            ServiceKey::Fwmark(m) => write!(f, "fwmark {m}"),
            ServiceKey::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// A check the configuration already runs against a real server (HTTP_GET, TCP_CHECK,
/// MISC_CHECK, ... for keepalived; checktype/service for ldirectord).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExistingCheck {
    /// The checker's keyword as written, e.g. `HTTP_GET` or `negotiate`.
    pub kind: String,
    /// For ldirectord: the service (`http`, `https`, ...); for keepalived: empty.
    pub detail: String,
    #[serde(skip)]
    pub span: Span,
    /// The checker's own settings as (keyword, value), in order: a keepalived checker
    /// block's top-level lines (`name`, `type`, `payload`, `require_reply`, ...), an
    /// ldirectord virtual's `request` / `receive`. Read by the UDP service checks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<(String, String)>,
}

/// Where the real server's text lives, and so whether a rewrite can edit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Written out in the file at this span (the `real_server` header, or the `real=` line).
    Written(Span),
    /// Produced by expanding a `$NAME` macro or a `~SEQ`/`~LST` line; the span is the line
    /// that expanded into it. No text of its own to edit.
    Expanded { span: Span, via: String },
}

impl Origin {
    pub fn span(&self) -> Span {
        match self {
            Origin::Written(s) | Origin::Expanded { span: s, .. } => *s,
        }
    }
}

/// Where a rewrite may put text for one real server (keepalived) or one virtual (ldirectord).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertionPoint {
    /// An empty span: the offset where new lines go (the start of the line that holds the
    /// block's closing brace, or just before the brace when other text precedes it).
    pub at: Span,
    /// The indentation of the block's own lines (what the inserted stanza is indented by).
    pub indent: String,
    /// True when `at` is mid-line (a brace with text before it on its line), so the
    /// inserted text must start and end with a newline.
    pub mid_line: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    pub addr: IpAddr,
    /// The effective port: for DR and TUN the virtual server's (IPVS ignores the real
    /// server's); `None` when the service covers all ports (fwmark or port 0).
    pub port: Option<u16>,
    pub weight: Option<i64>,
    /// The effective forwarding method for this real server.
    pub method: ForwardingMethod,
    pub checks: Vec<ExistingCheck>,
    pub origin: Origin,
    /// The whole block (keepalived `real_server ... { ... }`) or line (ldirectord `real=`).
    pub span: Span,
    /// Where generated checks go; `None` when the text cannot be edited (see `origin`).
    pub insert: Option<InsertionPoint>,
    /// TUN: the encapsulation (the real server's `lvs_method TUN type ...`, else the
    /// virtual server's; IPIP when neither says).
    pub tunnel: Tunnel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualService {
    pub key: ServiceKey,
    /// Every concrete VIP this service answers on (one for an address, the members of a
    /// `virtual_server_group`, none for a bare fwmark).
    pub vips: Vec<IpAddr>,
    /// The firewall marks (a `fwmark` service, or fwmark entries of its group).
    pub fwmarks: Vec<u32>,
    /// `None` when the service covers every port (fwmark, port 0 or absent).
    pub port: Option<u16>,
    pub protocol: Protocol,
    /// The method the virtual server sets (`lb_kind`/`lvs_method`, `gate|masq|ipip` on
    /// every real for ldirectord); real servers may override it.
    pub method: ForwardingMethod,
    pub real_servers: Vec<RealServer>,
    /// The service's header (`virtual_server ...` / `virtual=...`) for messages.
    pub span: Span,
    /// The whole block.
    pub block: Span,
    /// How often the daemon checks this service's real servers: keepalived's
    /// `delay_loop` (`None` when not written), ldirectord's `checkinterval` (the
    /// virtual's, else the global one, else its default of 10 s).
    pub interval: Option<std::time::Duration>,
    /// TUN: the virtual server's encapsulation (`lvs_method TUN type ...`).
    pub tunnel: Tunnel,
}

impl VirtualService {
    /// A short label for messages and tables: `192.0.2.20:80/tcp`, `fwmark 5`, `group web`.
    pub fn label(&self) -> String {
        match (&self.key, self.port) {
            (ServiceKey::Address(IpAddr::V6(ip)), Some(p)) => {
                format!("[{ip}]:{p}/{}", self.protocol)
            }
            (ServiceKey::Address(ip), Some(p)) => format!("{ip}:{p}/{}", self.protocol),
            (key, Some(p)) => format!("{key} port {p}/{}", self.protocol),
            (key, None) => format!("{key}/{}", self.protocol),
        }
    }
}

/// Why `ip` can never be a VIP or real server that a probe through the VIP can check,
/// if so: the wildcard address, broadcast, multicast, loopback.
pub fn unusable_target(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) {
        Some("the broadcast address")
    } else {
        None
    }
}

/// A VIP or real server of a DR/TUN service that cannot be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetProblem {
    pub span: Span,
    pub message: String,
    pub hint: &'static str,
}

impl VirtualService {
    /// Targets of this service's DR/TUN real servers that no probe can check: a VIP or
    /// real server that is no host's unicast address, or (direct routing) a VIP of the
    /// other address family than the real server's, which IPVS forwards only in tunnels.
    pub fn target_problems(&self) -> Vec<TargetProblem> {
        let reals: Vec<&RealServer> = self
            .real_servers
            .iter()
            .filter(|r| r.method.needs_vip_on_real_server())
            .collect();
        if reals.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for &vip in &self.vips {
            if let Some(what) = unusable_target(vip) {
                out.push(TargetProblem {
                    span: self.span,
                    message: format!("VIP {vip} is {what}: no real server can hold it"),
                    hint: "a VIP is a unicast address that clients connect to",
                });
            }
        }
        for rs in reals {
            if let Some(what) = unusable_target(rs.addr) {
                out.push(TargetProblem {
                    span: rs.span,
                    message: format!("real server {} is {what}", rs.addr),
                    hint: "a real server is given by its own unicast address",
                });
                continue;
            }
            if rs.method == ForwardingMethod::DirectRouting {
                for &vip in self
                    .vips
                    .iter()
                    .filter(|v| v.is_ipv4() != rs.addr.is_ipv4())
                {
                    out.push(TargetProblem {
                        span: rs.span,
                        message: format!(
                            "real server {} and VIP {vip} are of different address families; \
                             direct routing cannot forward between them",
                            rs.addr
                        ),
                        hint: "IPVS mixes IPv4 and IPv6 only in tunnel mode: use a real server \
                               address of the VIP's family, or lvs_method TUN",
                    });
                }
            }
        }
        out
    }
}
