//! The kernel's IPVS table, read over generic netlink (the `IPVS` family): virtual
//! services (address, port, protocol or firewall mark, scheduler) and each one's
//! destinations (address, port, forwarding method, tunnel, weight, connections).
//!
//! Constants and attribute layouts follow the kernel's `include/uapi/linux/ip_vs.h`.
//! Parsing ([`parse_service`], [`parse_destination`]) is pure code over the answers'
//! bytes; [`read_table`] does the asking. Nothing here loads a module: without IPVS in
//! the kernel the family is not registered and [`IpvsError::NotLoaded`] says so.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use serde::Serialize;

use super::genl;
use super::netlink::{self, attrs, MessageBuilder, NLM_F_DUMP};
use crate::config::{Protocol, Tunnel, TunnelChecksum, TunnelType};

/// `IPVS_GENL_NAME` and `IPVS_GENL_VERSION`.
pub const FAMILY_NAME: &str = "IPVS";
const FAMILY_VERSION: u8 = 1;

const IPVS_CMD_GET_SERVICE: u8 = 4;
const IPVS_CMD_GET_DEST: u8 = 8;

const IPVS_CMD_ATTR_SERVICE: u16 = 1;
const IPVS_CMD_ATTR_DEST: u16 = 2;

const IPVS_SVC_ATTR_AF: u16 = 1;
const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
const IPVS_SVC_ATTR_ADDR: u16 = 3;
const IPVS_SVC_ATTR_PORT: u16 = 4;
const IPVS_SVC_ATTR_FWMARK: u16 = 5;
const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
const IPVS_SVC_ATTR_FLAGS: u16 = 7;

const IPVS_DEST_ATTR_ADDR: u16 = 1;
const IPVS_DEST_ATTR_PORT: u16 = 2;
const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13;
const IPVS_DEST_ATTR_TUN_PORT: u16 = 14;
const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15;

const IP_VS_CONN_F_FWD_MASK: u32 = 0x7;
const IP_VS_CONN_F_MASQ: u32 = 0;
const IP_VS_CONN_F_LOCALNODE: u32 = 1;
const IP_VS_CONN_F_TUNNEL: u32 = 2;
const IP_VS_CONN_F_DROUTE: u32 = 3;
const IP_VS_CONN_F_BYPASS: u32 = 4;

const IP_VS_CONN_F_TUNNEL_TYPE_IPIP: u8 = 0;
const IP_VS_CONN_F_TUNNEL_TYPE_GUE: u8 = 1;
const IP_VS_CONN_F_TUNNEL_TYPE_GRE: u8 = 2;
const IP_VS_TUNNEL_ENCAP_FLAG_CSUM: u16 = 1 << 0;
const IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM: u16 = 1 << 1;

const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;
const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;
const IPPROTO_SCTP: u16 = 132;

/// How IPVS forwards to a destination (`IPVS_DEST_ATTR_FWD_METHOD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpvsForward {
    /// Masquerading (NAT).
    Masq,
    /// The director itself.
    Local,
    /// Tunnelling (IPIP, GUE or GRE; see [`IpvsDestination::tunnel`]).
    Tunnel,
    /// Direct routing.
    Route,
    /// Cache bypass.
    Bypass,
}

impl IpvsForward {
    fn from_flags(flags: u32) -> Option<IpvsForward> {
        Some(match flags & IP_VS_CONN_F_FWD_MASK {
            IP_VS_CONN_F_MASQ => IpvsForward::Masq,
            IP_VS_CONN_F_LOCALNODE => IpvsForward::Local,
            IP_VS_CONN_F_TUNNEL => IpvsForward::Tunnel,
            IP_VS_CONN_F_DROUTE => IpvsForward::Route,
            IP_VS_CONN_F_BYPASS => IpvsForward::Bypass,
            _ => return None,
        })
    }

    /// The config model's method, for the methods a config can name.
    pub fn method(self) -> Option<crate::config::ForwardingMethod> {
        use crate::config::ForwardingMethod as M;
        match self {
            IpvsForward::Masq => Some(M::Nat),
            IpvsForward::Route => Some(M::DirectRouting),
            IpvsForward::Tunnel => Some(M::Tunnel),
            IpvsForward::Local | IpvsForward::Bypass => None,
        }
    }
}

impl fmt::Display for IpvsForward {
    /// As `ipvsadm -Ln` names it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpvsForward::Masq => "Masq",
            IpvsForward::Local => "Local",
            IpvsForward::Tunnel => "Tunnel",
            IpvsForward::Route => "Route",
            IpvsForward::Bypass => "Bypass",
        })
    }
}

/// One destination (real server) of a virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpvsDestination {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: IpvsForward,
    /// The encapsulation of a tunnel destination (IPIP when the kernel is too old to say).
    pub tunnel: Option<Tunnel>,
    pub weight: u32,
    pub active_conns: u32,
    pub inactive_conns: u32,
}

/// How a virtual service is addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpvsKey {
    /// VIP, port (0: every port) and protocol.
    Address {
        addr: IpAddr,
        port: u16,
        protocol: u16,
    },
    /// A firewall mark, of an address family.
    Fwmark { mark: u32, ipv6: bool },
}

/// One virtual service and its destinations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpvsService {
    pub key: IpvsKey,
    /// The protocol number the kernel stores (also for fwmark services).
    pub protocol: u16,
    pub scheduler: String,
    /// `IP_VS_SVC_F_*` (persistent, one-packet, ...).
    pub flags: u32,
    pub destinations: Vec<IpvsDestination>,
}

fn protocol_name(p: u16) -> Option<Protocol> {
    match p {
        IPPROTO_TCP => Some(Protocol::Tcp),
        IPPROTO_UDP => Some(Protocol::Udp),
        IPPROTO_SCTP => Some(Protocol::Sctp),
        _ => None,
    }
}

impl IpvsService {
    /// The protocol as the config model names it, `None` for a number it does not know.
    pub fn proto(&self) -> Option<Protocol> {
        protocol_name(self.protocol)
    }

    /// `192.0.2.20:80/tcp`, `[2001:db8::20]:80/tcp`, `fwmark 5/tcp` (as a config's
    /// services are labelled), `192.0.2.20/tcp` for a service on every port.
    pub fn label(&self) -> String {
        let proto = self
            .proto()
            .map_or_else(|| format!("proto{}", self.protocol), |p| p.to_string());
        match self.key {
            IpvsKey::Address { addr, port: 0, .. } => format!("{addr}/{proto}"),
            IpvsKey::Address {
                addr: IpAddr::V6(a),
                port,
                ..
            } => format!("[{a}]:{port}/{proto}"),
            IpvsKey::Address { addr, port, .. } => format!("{addr}:{port}/{proto}"),
            // ipvsadm creates fwmark services with protocol 0 (any).
            IpvsKey::Fwmark { mark, ipv6 } => {
                let family = if ipv6 { " ipv6" } else { "" };
                if self.protocol == 0 {
                    format!("fwmark {mark}{family}")
                } else {
                    format!("fwmark {mark}{family}/{proto}")
                }
            }
        }
    }
}

/// The whole table, services in the kernel's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Table {
    pub services: Vec<IpvsService>,
}

impl Table {
    /// Services by key (addresses, IPv4 first, then marks), destinations by address and
    /// port: the kernel dumps them in hash and list order, which changes from run to run.
    pub fn sort(&mut self) {
        self.services.sort_by_key(|s| s.key);
        for s in &mut self.services {
            s.destinations.sort_by_key(|d| (d.addr, d.port));
        }
    }

    pub fn destination_count(&self) -> usize {
        self.services.iter().map(|s| s.destinations.len()).sum()
    }
}

/// Why the table could not be read.
#[derive(Debug)]
pub enum IpvsError {
    /// The `IPVS` generic netlink family is not registered: no ip_vs in this kernel.
    NotLoaded,
    /// The kernel refused (IPVS wants CAP_NET_ADMIN).
    Permission(io::Error),
    /// Any other netlink failure, with what was asked.
    Netlink(io::Error),
    /// An answer that does not parse.
    Malformed(String),
}

impl fmt::Display for IpvsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpvsError::NotLoaded => f.write_str(
                "IPVS is not in this kernel (no generic netlink family \"IPVS\"): nothing to \
                 audit. Hint: on a director, load it with `modprobe ip_vs` (keepalived and \
                 ldirectord do); vipcheck never loads modules itself",
            ),
            IpvsError::Permission(e) => write!(
                f,
                "cannot read the IPVS table: {e}. Hint: reading IPVS needs CAP_NET_ADMIN \
                 (run as root)"
            ),
            IpvsError::Netlink(e) => write!(f, "cannot read the IPVS table: {e}"),
            IpvsError::Malformed(what) => {
                write!(f, "cannot read the IPVS table: malformed answer: {what}")
            }
        }
    }
}

impl std::error::Error for IpvsError {}

fn from_io(e: io::Error) -> IpvsError {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => IpvsError::Permission(e),
        _ => IpvsError::Netlink(e),
    }
}

fn u16_be(d: &[u8]) -> Option<u16> {
    <[u8; 2]>::try_from(d).ok().map(u16::from_be_bytes)
}

/// `union nf_inet_addr` (16 bytes, an IPv4 address in the first four) of family `af`.
fn inet_addr(af: u16, d: &[u8]) -> Option<IpAddr> {
    match af {
        AF_INET => <[u8; 4]>::try_from(d.get(0..4)?)
            .ok()
            .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        AF_INET6 => <[u8; 16]>::try_from(d.get(0..16)?)
            .ok()
            .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        _ => None,
    }
}

/// The attributes nested in the top-level attribute `outer` of a generic netlink payload.
fn nested(payload: &[u8], outer: u16) -> Result<&[u8], String> {
    let body = payload
        .get(genl::GENL_HEADER_LEN..)
        .ok_or_else(|| format!("{} bytes, no generic netlink header", payload.len()))?;
    attrs(body)
        .find(|(k, _)| *k == outer)
        .map(|(_, d)| d)
        .ok_or_else(|| format!("no attribute {outer} in the answer"))
}

/// One IPVS_CMD_NEW_SERVICE answer (generic header, IPVS_CMD_ATTR_SERVICE), without
/// destinations.
pub fn parse_service(payload: &[u8]) -> Result<IpvsService, String> {
    let nest = nested(payload, IPVS_CMD_ATTR_SERVICE)?;
    let (mut af, mut protocol, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
    let (mut scheduler, mut flags) = (String::new(), 0);
    for (kind, d) in attrs(nest) {
        match kind {
            IPVS_SVC_ATTR_AF => af = netlink::ne_u16(d),
            IPVS_SVC_ATTR_PROTOCOL => protocol = netlink::ne_u16(d),
            IPVS_SVC_ATTR_ADDR => addr = Some(d),
            IPVS_SVC_ATTR_PORT => port = u16_be(d),
            IPVS_SVC_ATTR_FWMARK => fwmark = netlink::ne_u32(d),
            IPVS_SVC_ATTR_SCHED_NAME => {
                let text = d.split(|b| *b == 0).next().unwrap_or_default();
                scheduler = String::from_utf8_lossy(text).into_owned();
            }
            IPVS_SVC_ATTR_FLAGS => flags = d.get(0..4).and_then(netlink::ne_u32).unwrap_or(0),
            _ => {}
        }
    }
    let af = af.ok_or("a service without an address family")?;
    let protocol = protocol.unwrap_or(0);
    let key = match fwmark {
        Some(mark) if mark != 0 => IpvsKey::Fwmark {
            mark,
            ipv6: af == AF_INET6,
        },
        _ => {
            let addr = addr
                .and_then(|d| inet_addr(af, d))
                .ok_or_else(|| format!("a service of family {af} without a usable address"))?;
            IpvsKey::Address {
                addr,
                port: port.unwrap_or(0),
                protocol,
            }
        }
    };
    Ok(IpvsService {
        key,
        protocol,
        scheduler,
        flags,
        destinations: Vec::new(),
    })
}

/// One IPVS_CMD_NEW_DEST answer (generic header, IPVS_CMD_ATTR_DEST) of a service of
/// address family `service_af` (a destination without its own family has the service's).
pub fn parse_destination(payload: &[u8], service_af: u16) -> Result<IpvsDestination, String> {
    let nest = nested(payload, IPVS_CMD_ATTR_DEST)?;
    let (mut af, mut addr, mut port, mut fwd) = (None, None, None, None);
    let (mut weight, mut active, mut inactive) = (0, 0, 0);
    let (mut tun_type, mut tun_port, mut tun_flags) = (None, None, None);
    for (kind, d) in attrs(nest) {
        match kind {
            IPVS_DEST_ATTR_ADDR => addr = Some(d),
            IPVS_DEST_ATTR_PORT => port = u16_be(d),
            IPVS_DEST_ATTR_FWD_METHOD => fwd = netlink::ne_u32(d),
            IPVS_DEST_ATTR_WEIGHT => weight = netlink::ne_u32(d).unwrap_or(0),
            IPVS_DEST_ATTR_ACTIVE_CONNS => active = netlink::ne_u32(d).unwrap_or(0),
            IPVS_DEST_ATTR_INACT_CONNS => inactive = netlink::ne_u32(d).unwrap_or(0),
            IPVS_DEST_ATTR_ADDR_FAMILY => af = netlink::ne_u16(d),
            IPVS_DEST_ATTR_TUN_TYPE => tun_type = d.first().copied(),
            IPVS_DEST_ATTR_TUN_PORT => tun_port = u16_be(d),
            IPVS_DEST_ATTR_TUN_FLAGS => tun_flags = netlink::ne_u16(d),
            _ => {}
        }
    }
    let af = af.unwrap_or(service_af);
    let addr = addr
        .and_then(|d| inet_addr(af, d))
        .ok_or_else(|| format!("a destination of family {af} without a usable address"))?;
    let fwd = fwd.ok_or_else(|| format!("destination {addr} without a forwarding method"))?;
    let forward = IpvsForward::from_flags(fwd)
        .ok_or_else(|| format!("destination {addr}: unknown forwarding method {fwd}"))?;
    let tunnel = match forward {
        IpvsForward::Tunnel => {
            let kind = match tun_type.unwrap_or(IP_VS_CONN_F_TUNNEL_TYPE_IPIP) {
                IP_VS_CONN_F_TUNNEL_TYPE_IPIP => TunnelType::Ipip,
                IP_VS_CONN_F_TUNNEL_TYPE_GUE => TunnelType::Gue {
                    port: tun_port.unwrap_or(0),
                },
                IP_VS_CONN_F_TUNNEL_TYPE_GRE => TunnelType::Gre,
                other => return Err(format!("destination {addr}: unknown tunnel type {other}")),
            };
            let flags = tun_flags.unwrap_or(0);
            let csum = if flags & IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM != 0 {
                TunnelChecksum::Remcsum
            } else if flags & IP_VS_TUNNEL_ENCAP_FLAG_CSUM != 0 {
                TunnelChecksum::Csum
            } else {
                TunnelChecksum::None
            };
            Some(Tunnel { kind, csum })
        }
        _ => None,
    };
    Ok(IpvsDestination {
        addr,
        port: port.unwrap_or(0),
        forward,
        tunnel,
        weight,
        active_conns: active,
        inactive_conns: inactive,
    })
}

fn af_of(key: &IpvsKey) -> u16 {
    match key {
        IpvsKey::Address {
            addr: IpAddr::V4(_),
            ..
        }
        | IpvsKey::Fwmark { ipv6: false, .. } => AF_INET,
        _ => AF_INET6,
    }
}

/// Appends the IPVS_CMD_GET_DEST dump body for `svc`: the generic header and the service
/// named by its key (family, then mark or protocol, address and port).
pub fn destinations_body(m: &mut MessageBuilder, svc: &IpvsService) {
    m.header(&genl::header(IPVS_CMD_GET_DEST, FAMILY_VERSION));
    m.nest(IPVS_CMD_ATTR_SERVICE, |n| {
        n.attr(IPVS_SVC_ATTR_AF, &af_of(&svc.key).to_ne_bytes());
        match svc.key {
            IpvsKey::Fwmark { mark, .. } => {
                n.attr_u32(IPVS_SVC_ATTR_FWMARK, mark);
            }
            IpvsKey::Address {
                addr,
                port,
                protocol,
            } => {
                let mut a = [0u8; 16];
                match addr {
                    IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
                    IpAddr::V6(v6) => a.copy_from_slice(&v6.octets()),
                }
                n.attr(IPVS_SVC_ATTR_PROTOCOL, &protocol.to_ne_bytes())
                    .attr(IPVS_SVC_ATTR_ADDR, &a)
                    .attr(IPVS_SVC_ATTR_PORT, &port.to_be_bytes());
            }
        }
    });
}

/// Appends the IPVS_CMD_GET_SERVICE dump body.
pub fn services_body(m: &mut MessageBuilder) {
    m.header(&genl::header(IPVS_CMD_GET_SERVICE, FAMILY_VERSION));
}

/// The answers of one read, kept to write test fixtures (see fixtures/ipvs/README.md).
#[derive(Debug, Default)]
pub struct Capture {
    /// (what was asked, the data answers framed as netlink messages).
    pub parts: Vec<(String, Vec<u8>)>,
}

fn frame(kind: u16, answers: &[netlink::Answer]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in answers {
        let mut m = MessageBuilder::new(kind, netlink::NLM_F_MULTI, 0);
        m.header(&a.payload);
        out.extend(m.finish());
    }
    out
}

/// Reads every service and destination by `deadline`.
pub fn read_table(deadline: Instant) -> Result<Table, IpvsError> {
    read_table_capturing(deadline, None)
}

/// [`read_table`], keeping the raw answers in `capture` when given.
pub fn read_table_capturing(
    deadline: Instant,
    mut capture: Option<&mut Capture>,
) -> Result<Table, IpvsError> {
    let mut sock = netlink::Socket::open(libc::NETLINK_GENERIC).map_err(from_io)?;
    let id = genl::family_id(&mut sock, FAMILY_NAME, deadline)
        .map_err(from_io)?
        .ok_or(IpvsError::NotLoaded)?;
    let answers = sock
        .request(
            "IPVS_CMD_GET_SERVICE",
            id,
            NLM_F_DUMP,
            deadline,
            services_body,
        )
        .map_err(from_io)?;
    if let Some(c) = capture.as_deref_mut() {
        c.parts.push(("services".into(), frame(id, &answers)));
    }
    let mut table = Table::default();
    for a in &answers {
        table
            .services
            .push(parse_service(&a.payload).map_err(IpvsError::Malformed)?);
    }
    for (i, svc) in table.services.iter_mut().enumerate() {
        let answers = sock
            .request("IPVS_CMD_GET_DEST", id, NLM_F_DUMP, deadline, |m| {
                destinations_body(m, svc)
            })
            .map_err(|e| {
                from_io(io::Error::new(
                    e.kind(),
                    format!("destinations of {}: {e}", svc.label()),
                ))
            })?;
        if let Some(c) = capture.as_deref_mut() {
            c.parts.push((format!("dests-{i}"), frame(id, &answers)));
        }
        let af = af_of(&svc.key);
        for a in &answers {
            svc.destinations
                .push(parse_destination(&a.payload, af).map_err(IpvsError::Malformed)?);
        }
    }
    table.sort();
    Ok(table)
}

/// Parses a captured table: the services' messages, then each service's destination
/// messages in the same order (as [`Capture`] holds them).
pub fn parse_captured(services: &[u8], dests: &[&[u8]]) -> Result<Table, String> {
    let mut table = Table::default();
    for m in netlink::messages(services) {
        let m = m.map_err(|e| e.to_string())?;
        table.services.push(parse_service(m.payload)?);
    }
    if dests.len() != table.services.len() {
        return Err(format!(
            "{} services but {} destination lists",
            table.services.len(),
            dests.len()
        ));
    }
    for (svc, bytes) in table.services.iter_mut().zip(dests) {
        let af = af_of(&svc.key);
        for m in netlink::messages(bytes) {
            let m = m.map_err(|e| e.to_string())?;
            svc.destinations.push(parse_destination(m.payload, af)?);
        }
    }
    table.sort();
    Ok(table)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::net::netlink::{messages, NLM_F_REQUEST};

    fn svc_v4() -> IpvsService {
        IpvsService {
            key: IpvsKey::Address {
                addr: "192.0.2.20".parse().unwrap(),
                port: 80,
                protocol: IPPROTO_TCP,
            },
            protocol: IPPROTO_TCP,
            scheduler: "wlc".into(),
            flags: 0,
            destinations: Vec::new(),
        }
    }

    #[test]
    fn the_destination_dump_names_the_service_as_the_kernel_expects() {
        let mut m = MessageBuilder::new(0x25, NLM_F_REQUEST | NLM_F_DUMP, 3);
        destinations_body(&mut m, &svc_v4());
        let bytes = m.finish();
        let msg = messages(&bytes).next().unwrap().unwrap();
        assert_eq!(&msg.payload[..4], &[IPVS_CMD_GET_DEST, 1, 0, 0]);
        let nest = nested(msg.payload, IPVS_CMD_ATTR_SERVICE).unwrap();
        let got: Vec<(u16, Vec<u8>)> = attrs(nest).map(|(k, d)| (k, d.to_vec())).collect();
        let mut addr = vec![192, 0, 2, 20];
        addr.resize(16, 0);
        assert_eq!(
            got,
            vec![
                (IPVS_SVC_ATTR_AF, AF_INET.to_ne_bytes().to_vec()),
                (IPVS_SVC_ATTR_PROTOCOL, 6u16.to_ne_bytes().to_vec()),
                (IPVS_SVC_ATTR_ADDR, addr),
                (IPVS_SVC_ATTR_PORT, vec![0, 80]),
            ]
        );
        let mut fw = svc_v4();
        fw.key = IpvsKey::Fwmark {
            mark: 7,
            ipv6: true,
        };
        let mut m = MessageBuilder::new(0x25, NLM_F_REQUEST | NLM_F_DUMP, 4);
        destinations_body(&mut m, &fw);
        let bytes = m.finish();
        let msg = messages(&bytes).next().unwrap().unwrap();
        let nest = nested(msg.payload, IPVS_CMD_ATTR_SERVICE).unwrap();
        let got: Vec<(u16, Vec<u8>)> = attrs(nest).map(|(k, d)| (k, d.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (IPVS_SVC_ATTR_AF, AF_INET6.to_ne_bytes().to_vec()),
                (IPVS_SVC_ATTR_FWMARK, 7u32.to_ne_bytes().to_vec()),
            ]
        );
    }

    /// A destination answer built attribute by attribute.
    fn dest_answer(attrs_of: impl FnOnce(&mut MessageBuilder)) -> Vec<u8> {
        let mut m = MessageBuilder::new(0x25, 0, 0);
        m.header(&genl::header(IPVS_CMD_GET_DEST, 1));
        m.nest(IPVS_CMD_ATTR_DEST, attrs_of);
        let bytes = m.finish();
        bytes[netlink::HEADER_LEN..].to_vec()
    }

    #[test]
    fn tunnel_type_port_and_flags_map_onto_the_model() {
        let p = dest_answer(|n| {
            n.attr(IPVS_DEST_ATTR_ADDR, &[192, 0, 2, 21, 0, 0, 0, 0])
                .attr(IPVS_DEST_ATTR_PORT, &80u16.to_be_bytes())
                .attr_u32(IPVS_DEST_ATTR_FWD_METHOD, IP_VS_CONN_F_TUNNEL)
                .attr_u32(IPVS_DEST_ATTR_WEIGHT, 3)
                .attr(IPVS_DEST_ATTR_TUN_TYPE, &[IP_VS_CONN_F_TUNNEL_TYPE_GUE])
                .attr(IPVS_DEST_ATTR_TUN_PORT, &6080u16.to_be_bytes())
                .attr(IPVS_DEST_ATTR_TUN_FLAGS, &3u16.to_ne_bytes());
        });
        let d = parse_destination(&p, AF_INET).unwrap();
        assert_eq!(d.addr, "192.0.2.21".parse::<IpAddr>().unwrap());
        assert_eq!(d.forward, IpvsForward::Tunnel);
        assert_eq!(
            d.tunnel,
            Some(Tunnel {
                kind: TunnelType::Gue { port: 6080 },
                csum: TunnelChecksum::Remcsum
            })
        );
        let p = dest_answer(|n| {
            n.attr(IPVS_DEST_ATTR_ADDR, &[192, 0, 2, 21, 0, 0, 0, 0])
                .attr_u32(IPVS_DEST_ATTR_FWD_METHOD, IP_VS_CONN_F_TUNNEL)
                .attr(IPVS_DEST_ATTR_TUN_TYPE, &[IP_VS_CONN_F_TUNNEL_TYPE_GRE])
                .attr(IPVS_DEST_ATTR_TUN_FLAGS, &1u16.to_ne_bytes());
        });
        let d = parse_destination(&p, AF_INET).unwrap();
        assert_eq!(
            d.tunnel,
            Some(Tunnel {
                kind: TunnelType::Gre,
                csum: TunnelChecksum::Csum
            })
        );
        // An old kernel without tunnel attributes: IPIP, IPVS's only tunnel then.
        let p = dest_answer(|n| {
            n.attr(IPVS_DEST_ATTR_ADDR, &[192, 0, 2, 21, 0, 0, 0, 0])
                .attr_u32(IPVS_DEST_ATTR_FWD_METHOD, IP_VS_CONN_F_TUNNEL);
        });
        let d = parse_destination(&p, AF_INET).unwrap();
        assert_eq!(d.tunnel, Some(Tunnel::default()));
        // An unknown tunnel type or method is an error naming the destination.
        let p = dest_answer(|n| {
            n.attr(IPVS_DEST_ATTR_ADDR, &[192, 0, 2, 21, 0, 0, 0, 0])
                .attr_u32(IPVS_DEST_ATTR_FWD_METHOD, IP_VS_CONN_F_TUNNEL)
                .attr(IPVS_DEST_ATTR_TUN_TYPE, &[9]);
        });
        let e = parse_destination(&p, AF_INET).unwrap_err();
        assert!(
            e.contains("192.0.2.21") && e.contains("tunnel type 9"),
            "{e}"
        );
        let p = dest_answer(|n| {
            n.attr(IPVS_DEST_ATTR_ADDR, &[192, 0, 2, 21, 0, 0, 0, 0])
                .attr_u32(IPVS_DEST_ATTR_FWD_METHOD, 5);
        });
        assert!(parse_destination(&p, AF_INET).is_err());
    }

    #[test]
    fn a_destination_of_the_other_family_uses_its_own_family() {
        // An IPv6 real server behind an IPv4 service (tunnel mode).
        let v6: Ipv6Addr = "2001:db8::21".parse().unwrap();
        let p = dest_answer(|n| {
            n.attr(IPVS_DEST_ATTR_ADDR, &v6.octets())
                .attr_u32(IPVS_DEST_ATTR_FWD_METHOD, IP_VS_CONN_F_TUNNEL)
                .attr(IPVS_DEST_ATTR_ADDR_FAMILY, &AF_INET6.to_ne_bytes());
        });
        assert_eq!(parse_destination(&p, AF_INET).unwrap().addr, IpAddr::V6(v6));
    }

    #[test]
    fn truncated_answers_are_errors_not_panics() {
        let p = dest_answer(|n| {
            n.attr(IPVS_DEST_ATTR_ADDR, &[192, 0, 2, 21, 0, 0, 0, 0])
                .attr_u32(IPVS_DEST_ATTR_FWD_METHOD, IP_VS_CONN_F_DROUTE);
        });
        assert!(parse_destination(&p, AF_INET).is_ok());
        for cut in 0..p.len() {
            // Either an error or (cut inside trailing padding) the same destination.
            if let Ok(d) = parse_destination(&p[..cut], AF_INET) {
                assert_eq!(d.forward, IpvsForward::Route);
            }
            let _ = parse_service(&p[..cut]);
        }
    }

    /// The table the ipvs-audit guest scenario builds with ipvsadm, as the kernel answered
    /// (fixtures/ipvs/README.md says how it was captured).
    pub fn captured_table() -> Table {
        let dests: [&[u8]; 5] = [
            include_bytes!("../../fixtures/ipvs/dests-0.bin"),
            include_bytes!("../../fixtures/ipvs/dests-1.bin"),
            include_bytes!("../../fixtures/ipvs/dests-2.bin"),
            include_bytes!("../../fixtures/ipvs/dests-3.bin"),
            include_bytes!("../../fixtures/ipvs/dests-4.bin"),
        ];
        parse_captured(include_bytes!("../../fixtures/ipvs/services.bin"), &dests).unwrap()
    }

    #[test]
    fn the_captured_table_parses_to_what_ipvsadm_created() {
        let t = captured_table();
        let labels: Vec<String> = t.services.iter().map(IpvsService::label).collect();
        assert_eq!(
            labels,
            [
                "192.0.2.100:80/tcp",
                "192.0.2.101:80/tcp",
                "192.0.2.102:80/tcp",
                "[2001:db8::100]:80/tcp",
                "fwmark 5"
            ]
        );
        let scheds: Vec<&str> = t.services.iter().map(|s| s.scheduler.as_str()).collect();
        assert_eq!(scheds, ["wlc", "rr", "rr", "rr", "rr"]);
        assert_eq!(t.destination_count(), 12);
        let row = |s: usize, d: usize| {
            let d = &t.services[s].destinations[d];
            (d.addr.to_string(), d.port, d.forward, d.weight, d.tunnel)
        };
        use IpvsForward::{Masq, Route};
        assert_eq!(row(0, 0), ("192.0.2.11".into(), 80, Route, 1, None));
        assert_eq!(row(0, 4), ("192.0.2.16".into(), 80, Route, 0, None));
        assert_eq!(
            row(1, 0),
            (
                "192.0.2.21".into(),
                80,
                IpvsForward::Tunnel,
                1,
                Some(Tunnel::default())
            )
        );
        assert_eq!(
            row(1, 2),
            (
                "192.0.2.23".into(),
                80,
                IpvsForward::Tunnel,
                1,
                Some(Tunnel {
                    kind: TunnelType::Gue { port: 6080 },
                    csum: TunnelChecksum::Remcsum
                })
            )
        );
        assert_eq!(row(2, 0), ("192.0.2.41".into(), 8080, Masq, 1, None));
        assert_eq!(row(3, 1), ("2001:db8::32".into(), 80, Route, 1, None));
        assert_eq!(row(4, 0), ("192.0.2.12".into(), 0, Route, 1, None));
        assert_eq!(
            t.services[4].key,
            IpvsKey::Fwmark {
                mark: 5,
                ipv6: false
            }
        );
        assert_eq!(t.services[4].protocol, 0);
        assert!(t
            .services
            .iter()
            .flat_map(|s| &s.destinations)
            .all(|d| d.active_conns == 0 && d.inactive_conns == 0));
    }

    #[test]
    fn a_refusal_is_a_permission_error_with_the_hint() {
        let e = from_io(io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(e, IpvsError::Permission(_)));
        assert!(e.to_string().contains("needs CAP_NET_ADMIN"), "{e}");
        let e = from_io(io::Error::from_raw_os_error(libc::ENOENT));
        assert!(matches!(e, IpvsError::Netlink(_)));
    }

    #[test]
    fn the_host_without_ipvs_reports_it_not_loaded() {
        // This machine's kernel has no IPVS (tests/guest has); where it has, this is no test.
        if std::path::Path::new("/proc/net/ip_vs").exists() {
            println!("skipped: this kernel has IPVS");
            return;
        }
        let Ok(mut s) = netlink::Socket::open(libc::NETLINK_GENERIC) else {
            println!("skipped: no generic netlink sockets here");
            return;
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        assert_eq!(
            genl::family_id(&mut s, FAMILY_NAME, deadline).unwrap(),
            None
        );
        let e = read_table(deadline).unwrap_err();
        assert!(matches!(e, IpvsError::NotLoaded), "{e}");
        assert!(e.to_string().contains("never loads modules"), "{e}");
    }
}
