//! Whole Ethernet frames: the probes the prober sends (ARP request, neighbour
//! solicitation, ICMP/ICMPv6 echo, TCP SYN/RST, each optionally IP-in-IP encapsulated)
//! and a classifier for every frame it may receive.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pnet_packet::icmp::echo_request::EchoRequestPacket;

use super::arp::{ArpOperation, ArpRepr};
use super::ethernet::{self, ethertype, EthernetRepr};
use super::gre;
use super::icmpv4::{self, Icmpv4Repr};
use super::icmpv6::{self, Icmpv6Repr};
use super::ipv4::{self, protocol, Ipv4Repr};
use super::ipv6::{self, Ipv6Repr};
use super::tcp::{self, TcpRepr};
use super::tunnel::{self, Encap};
use super::udp::UdpRepr;
use super::{MacAddr, Result, WireError};

/// The payload of every echo request: lets an operator spot vipcheck in a capture.
pub const ECHO_DATA: &[u8; 8] = b"vipcheck";
pub use super::ipip::OUTER_HOP_LIMIT;
/// The MSS the SYN announces.
pub const SYN_MSS: u16 = 1460;
/// The window the SYN announces.
pub const SYN_WINDOW: u16 = 64240;

/// What the innermost packet of a probe carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// ICMP echo request (ICMPv6 for IPv6).
    Echo { ident: u16, seq: u16 },
    /// TCP SYN from `src_port` with initial sequence number `seq`.
    Syn {
        src_port: u16,
        dst_port: u16,
        seq: u32,
    },
    /// TCP RST that closes what a SYN-ACK opened; `seq` is the SYN-ACK's ack number.
    Rst {
        src_port: u16,
        dst_port: u16,
        seq: u32,
    },
    /// A UDP datagram; `tag` tells its attempts apart (the DNS query's id). Its payload
    /// is not part of the kind: it is framed with [`Probe::build_with`].
    Udp {
        src_port: u16,
        dst_port: u16,
        tag: u16,
    },
}

/// One probe: an IP packet from `src` to `dst` (the VIP), in a frame from `src_mac` to
/// `dst_mac`, optionally encapsulated in an outer IP header `tunnel = (outer_src,
/// outer_dst)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub tunnel: Option<(IpAddr, IpAddr)>,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL / hop limit of the inner packet: 1, so nothing forwards it.
    pub hop_limit: u8,
    /// IPv4 identification (inner and outer header).
    pub ip_ident: u16,
    pub kind: ProbeKind,
    /// How a tunnelled probe is encapsulated (IPIP, GUE or GRE); unused without `tunnel`.
    pub encap: Encap,
}

/// A buffer for one header to be emitted into. Pre-filled with 0xa5, not zero: every
/// byte must be written by an `emit`, and the byte-exact tests then catch one that is not.
fn buffer(len: usize) -> Vec<u8> {
    vec![0xa5; len]
}

fn family_mismatch() -> WireError {
    WireError::Unsupported
}

/// The transport segment of a probe, emitted where its frame puts it.
enum Segment<'a> {
    Icmpv4(Icmpv4Repr<'a>),
    Icmpv6(Icmpv6Repr<'a>),
    Tcp(TcpRepr),
    Udp(UdpRepr<'a>),
}

impl Segment<'_> {
    fn protocol(&self) -> u8 {
        match self {
            Segment::Icmpv4(_) => protocol::ICMP,
            Segment::Icmpv6(_) => protocol::ICMPV6,
            Segment::Tcp(_) => protocol::TCP,
            Segment::Udp(_) => protocol::UDP,
        }
    }

    fn len(&self) -> usize {
        match self {
            Segment::Icmpv4(r) => r.buffer_len(),
            Segment::Icmpv6(r) => r.buffer_len(),
            Segment::Tcp(r) => r.buffer_len(),
            Segment::Udp(r) => r.buffer_len(),
        }
    }

    /// Writes the segment, its checksum for `src` -> `dst` included, into `buf` (its
    /// length exactly).
    fn emit(&self, src: IpAddr, dst: IpAddr, buf: &mut [u8]) -> Result<()> {
        match self {
            Segment::Icmpv4(r) => r.emit(buf),
            Segment::Icmpv6(r) => match (src, dst) {
                (IpAddr::V6(s), IpAddr::V6(d)) => r.emit(s, d, buf),
                _ => return Err(family_mismatch()),
            },
            Segment::Tcp(r) => r.emit(src, dst, buf),
            Segment::Udp(r) => r.emit(src, dst, buf)?,
        }
        Ok(())
    }
}

/// The transport segment of `p`; `payload` is a UDP datagram's data (the other kinds
/// carry none).
fn transport<'a>(p: &Probe, payload: &'a [u8]) -> Result<Segment<'a>> {
    if p.src.is_ipv4() != p.dst.is_ipv4() {
        return Err(family_mismatch());
    }
    Ok(match p.kind {
        ProbeKind::Echo { ident, seq } if p.dst.is_ipv4() => {
            Segment::Icmpv4(Icmpv4Repr::EchoRequest {
                ident,
                seq,
                data: ECHO_DATA,
            })
        }
        ProbeKind::Echo { ident, seq } => Segment::Icmpv6(Icmpv6Repr::EchoRequest {
            ident,
            seq,
            data: ECHO_DATA,
        }),
        ProbeKind::Syn {
            src_port,
            dst_port,
            seq,
        }
        | ProbeKind::Rst {
            src_port,
            dst_port,
            seq,
        } => {
            let syn = matches!(p.kind, ProbeKind::Syn { .. });
            Segment::Tcp(TcpRepr {
                src_port,
                dst_port,
                seq,
                ack: 0,
                flags: if syn {
                    tcp::flags::SYN
                } else {
                    tcp::flags::RST
                },
                window: if syn { SYN_WINDOW } else { 0 },
                mss: syn.then_some(SYN_MSS),
            })
        }
        ProbeKind::Udp {
            src_port, dst_port, ..
        } => Segment::Udp(UdpRepr {
            src_port,
            dst_port,
            payload,
        }),
    })
}

/// The length of the IP header `src` -> `dst` puts before its payload.
fn ip_header_len(src: IpAddr, dst: IpAddr) -> Result<usize> {
    match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Ok(ipv4::HEADER_LEN),
        (IpAddr::V6(_), IpAddr::V6(_)) => Ok(ipv6::HEADER_LEN),
        _ => Err(family_mismatch()),
    }
}

fn emit_ethernet(src: MacAddr, dst: MacAddr, ethertype: u16, frame: &mut [u8]) {
    EthernetRepr {
        dst,
        src,
        ethertype,
    }
    .emit(frame);
}

impl Probe {
    /// The whole frame. Fails only when addresses of one header mix IPv4 and IPv6.
    pub fn build(&self) -> Result<Vec<u8>> {
        self.build_with(&[])
    }

    /// The whole frame, with `payload` as a UDP datagram's data (a DNS query, a UDP
    /// check's bytes; the other kinds carry none). One buffer: each header is written
    /// in its place, the transport segment first (the headers around it need its
    /// length, a tunnel's GUE checksum its bytes).
    pub fn build_with(&self, payload: &[u8]) -> Result<Vec<u8>> {
        let segment = transport(self, payload)?;
        let inner_ip = ip_header_len(self.src, self.dst)?;
        let outer = match self.tunnel {
            Some((_, outer_dst)) => self.encap.outer_len(outer_dst),
            None => 0,
        };
        let ip_at = ethernet::HEADER_LEN + outer;
        let segment_at = ip_at + inner_ip;
        let mut b = buffer(segment_at + segment.len());
        segment.emit(self.src, self.dst, &mut b[segment_at..])?;
        let mut etype = tunnel::emit_ip_header(
            self.src,
            self.dst,
            segment.protocol(),
            self.hop_limit,
            self.ip_ident,
            &mut b[ip_at..],
        )?;
        if let Some((outer_src, outer_dst)) = self.tunnel {
            etype = tunnel::emit_outer(
                self.encap,
                outer_src,
                outer_dst,
                self.ip_ident,
                self.dst,
                &mut b[ethernet::HEADER_LEN..],
            )?;
        }
        emit_ethernet(self.src_mac, self.dst_mac, etype, &mut b);
        Ok(b)
    }
}

/// A broadcast ARP request for `target` from `src_mac` / `src_ip`.
pub fn arp_request(src_mac: MacAddr, src_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp_request_to(MacAddr::BROADCAST, src_mac, src_ip, target)
}

/// An ARP request for `target` in a frame to `dst_mac` (broadcast for address
/// resolution; one host's MAC to ask that host alone whether it claims `target`).
pub fn arp_request_to(
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src_ip: Ipv4Addr,
    target: Ipv4Addr,
) -> Vec<u8> {
    let r = ArpRepr {
        operation: ArpOperation::Request,
        sender_mac: src_mac,
        sender_ip: src_ip,
        target_mac: MacAddr::ZERO,
        target_ip: target,
    };
    let mut b = buffer(ethernet::HEADER_LEN + r.buffer_len());
    r.emit(&mut b[ethernet::HEADER_LEN..]);
    emit_ethernet(src_mac, dst_mac, ethertype::ARP, &mut b);
    b
}

/// The solicited-node multicast address of `target` (RFC 4291 2.7.1).
pub fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let o = target.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// A neighbour solicitation for `target` to its solicited-node address, hop limit 255.
pub fn neighbor_solicitation(src_mac: MacAddr, src_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let dst = solicited_node(target);
    neighbor_solicitation_to(MacAddr::ipv6_multicast(dst), src_mac, src_ip, target)
}

/// As [`neighbor_solicitation`] (IPv6 destination: the solicited-node group, as a router
/// resolving `target` sends it) but in a frame to `dst_mac`: asks one host alone.
pub fn neighbor_solicitation_to(
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src_ip: Ipv6Addr,
    target: Ipv6Addr,
) -> Vec<u8> {
    let dst = solicited_node(target);
    let r = Icmpv6Repr::NeighborSolicit {
        target,
        source_lladdr: Some(src_mac),
    };
    let icmp_at = ethernet::HEADER_LEN + ipv6::HEADER_LEN;
    let mut b = buffer(icmp_at + r.buffer_len());
    r.emit(src_ip, dst, &mut b[icmp_at..]);
    Ipv6Repr {
        src: src_ip,
        dst,
        next_header: protocol::ICMPV6,
        hop_limit: 255,
        payload_len: r.buffer_len(),
    }
    .emit(&mut b[ethernet::HEADER_LEN..]);
    emit_ethernet(src_mac, dst_mac, ethertype::IPV6, &mut b);
    b
}

/// An ICMP error, told apart the way the verdict needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// TTL / hop limit reached zero: a router forwarded the probe.
    TimeExceeded,
    /// IPv4 protocol unreachable (type 3 code 2): the receiver does not handle the
    /// quoted protocol (for IPIP: does not decapsulate).
    ProtocolUnreachable,
    /// IPv6 parameter problem, unrecognised next header: the IPv6 counterpart.
    NextHeaderUnrecognized,
    PortUnreachable,
    /// Any other destination unreachable (the code is the family's own).
    Unreachable(u8),
    /// Any other parameter problem.
    ParamProblem(u8),
}

/// What an ICMP error quotes of the packet that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub probe: QuotedProbe,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotedProbe {
    Echo {
        ident: u16,
        seq: u16,
    },
    Tcp {
        src_port: u16,
        dst_port: u16,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    /// An encapsulated packet, when enough of it is quoted to read its header.
    Tunnelled(Box<Quoted>),
    /// Not enough bytes quoted, or a protocol the prober never sends.
    Unknown,
}

/// A received frame, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    ArpReply {
        sender_mac: MacAddr,
        sender_ip: Ipv4Addr,
        target_ip: Ipv4Addr,
    },
    NeighborAdvert {
        target: Ipv6Addr,
        lladdr: Option<MacAddr>,
    },
    EchoReply {
        src: IpAddr,
        dst: IpAddr,
        ident: u16,
        seq: u16,
    },
    Tcp {
        src: IpAddr,
        dst: IpAddr,
        segment: TcpRepr,
    },
    Udp {
        src: IpAddr,
        dst: IpAddr,
        src_port: u16,
        dst_port: u16,
        payload: Vec<u8>,
    },
    IcmpError {
        /// Who sent the error.
        from: IpAddr,
        to: IpAddr,
        error: IcmpError,
        quoted: Quoted,
    },
    /// Anything else (other protocols, requests, tunnelled traffic).
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub eth_src: MacAddr,
    pub eth_dst: MacAddr,
    pub inbound: Inbound,
}

/// Classifies a received frame. Errors are for frames that claim to be a kind the prober
/// reads but are cut short or corrupt; callers drop those like foreign frames.
pub fn parse(frame: &[u8]) -> Result<Received> {
    parse_with(frame, true)
}

/// As [`parse`]; `verify = false` skips the TCP/ICMP checksums (the IPv4 header checksum
/// is always checked). For frames the kernel flags as not yet checksummed: traffic
/// generated on this host's side of a veth carries a partial checksum the hardware
/// would have filled in.
pub fn parse_with(frame: &[u8], verify: bool) -> Result<Received> {
    let (eth, payload) = EthernetRepr::parse(frame)?;
    let inbound = match eth.ethertype {
        ethertype::ARP => parse_arp(payload)?,
        ethertype::IPV4 => parse_ipv4(payload, verify)?,
        ethertype::IPV6 => parse_ipv6(payload, verify)?,
        _ => Inbound::Other,
    };
    Ok(Received {
        eth_src: eth.src,
        eth_dst: eth.dst,
        inbound,
    })
}

fn parse_arp(payload: &[u8]) -> Result<Inbound> {
    let arp = ArpRepr::parse(payload)?;
    Ok(match arp.operation {
        ArpOperation::Reply => Inbound::ArpReply {
            sender_mac: arp.sender_mac,
            sender_ip: arp.sender_ip,
            target_ip: arp.target_ip,
        },
        ArpOperation::Request => Inbound::Other,
    })
}

fn parse_ipv4(payload: &[u8], verify: bool) -> Result<Inbound> {
    let (ip, body) = Ipv4Repr::parse(payload)?;
    let (src, dst) = (IpAddr::V4(ip.src), IpAddr::V4(ip.dst));
    Ok(match ip.protocol {
        protocol::ICMP => match Icmpv4Repr::parse_with(body, verify)? {
            Icmpv4Repr::EchoReply { ident, seq, .. } => Inbound::EchoReply {
                src,
                dst,
                ident,
                seq,
            },
            Icmpv4Repr::TimeExceeded { invoking, .. } => {
                icmp_error(src, dst, IcmpError::TimeExceeded, quoted_v4(invoking)?)
            }
            Icmpv4Repr::DstUnreachable { code, invoking } => {
                let error = match code {
                    icmpv4::unreachable::PROTOCOL => IcmpError::ProtocolUnreachable,
                    icmpv4::unreachable::PORT => IcmpError::PortUnreachable,
                    c => IcmpError::Unreachable(c),
                };
                icmp_error(src, dst, error, quoted_v4(invoking)?)
            }
            _ => Inbound::Other,
        },
        protocol::TCP => Inbound::Tcp {
            src,
            dst,
            segment: TcpRepr::parse_with(src, dst, body, verify)?,
        },
        protocol::UDP => udp_inbound(src, dst, body, verify)?,
        _ => Inbound::Other,
    })
}

fn parse_ipv6(payload: &[u8], verify: bool) -> Result<Inbound> {
    let (ip, body) = Ipv6Repr::parse(payload)?;
    let (src, dst) = (IpAddr::V6(ip.src), IpAddr::V6(ip.dst));
    Ok(match ip.next_header {
        protocol::ICMPV6 => match Icmpv6Repr::parse_with(ip.src, ip.dst, body, verify)? {
            Icmpv6Repr::EchoReply { ident, seq, .. } => Inbound::EchoReply {
                src,
                dst,
                ident,
                seq,
            },
            Icmpv6Repr::NeighborAdvert {
                target,
                target_lladdr,
                ..
            } => Inbound::NeighborAdvert {
                target,
                lladdr: target_lladdr,
            },
            Icmpv6Repr::TimeExceeded { invoking, .. } => {
                icmp_error(src, dst, IcmpError::TimeExceeded, quoted_v6(invoking)?)
            }
            Icmpv6Repr::DstUnreachable { code, invoking } => {
                let error = match code {
                    icmpv6::unreachable::PORT => IcmpError::PortUnreachable,
                    c => IcmpError::Unreachable(c),
                };
                icmp_error(src, dst, error, quoted_v6(invoking)?)
            }
            Icmpv6Repr::ParamProblem { code, invoking, .. } => {
                let error = match code {
                    icmpv6::param_problem::UNRECOGNIZED_NEXT_HEADER => {
                        IcmpError::NextHeaderUnrecognized
                    }
                    c => IcmpError::ParamProblem(c),
                };
                icmp_error(src, dst, error, quoted_v6(invoking)?)
            }
            _ => Inbound::Other,
        },
        protocol::TCP => Inbound::Tcp {
            src,
            dst,
            segment: TcpRepr::parse_with(src, dst, body, verify)?,
        },
        protocol::UDP => udp_inbound(src, dst, body, verify)?,
        _ => Inbound::Other,
    })
}

fn udp_inbound(src: IpAddr, dst: IpAddr, body: &[u8], verify: bool) -> Result<Inbound> {
    let d = UdpRepr::parse(src, dst, body, verify)?;
    Ok(Inbound::Udp {
        src,
        dst,
        src_port: d.src_port,
        dst_port: d.dst_port,
        payload: d.payload.to_vec(),
    })
}

fn icmp_error(from: IpAddr, to: IpAddr, error: IcmpError, quoted: Quoted) -> Inbound {
    Inbound::IcmpError {
        from,
        to,
        error,
        quoted,
    }
}

fn quoted_v4(invoking: &[u8]) -> Result<Quoted> {
    let (ip, rest) = Ipv4Repr::parse_quoted(invoking)?;
    Ok(quoted(
        IpAddr::V4(ip.src),
        IpAddr::V4(ip.dst),
        ip.protocol,
        rest,
    ))
}

fn quoted_v6(invoking: &[u8]) -> Result<Quoted> {
    let (ip, rest) = Ipv6Repr::parse_quoted(invoking)?;
    Ok(quoted(
        IpAddr::V6(ip.src),
        IpAddr::V6(ip.dst),
        ip.next_header,
        rest,
    ))
}

/// Reads what can be read of a quoted transport header; never fails (an error quotes
/// as little as 8 bytes of it).
fn quoted(src: IpAddr, dst: IpAddr, proto: u8, rest: &[u8]) -> Quoted {
    let probe = match proto {
        protocol::ICMP | protocol::ICMPV6 if rest.len() >= 8 => {
            let request = if proto == protocol::ICMP {
                icmpv4::kind::ECHO_REQUEST
            } else {
                icmpv6::kind::ECHO_REQUEST
            };
            // The echo request's header has the same layout in both families.
            match EchoRequestPacket::new(rest) {
                Some(e) if e.get_icmp_type().0 == request => QuotedProbe::Echo {
                    ident: e.get_identifier(),
                    seq: e.get_sequence_number(),
                },
                _ => QuotedProbe::Unknown,
            }
        }
        protocol::TCP => match TcpRepr::parse_ports(rest) {
            Ok(t) => QuotedProbe::Tcp {
                src_port: t.src_port,
                dst_port: t.dst_port,
            },
            Err(_) => QuotedProbe::Unknown,
        },
        // GUE (UDP shaped as IPVS's GUE header, holding a packet we could have sent) and
        // GRE: the packet inside, as for IPIP. Before plain UDP: a GUE probe is a UDP
        // datagram too; a UDP check's own datagram (DNS, say) whose first bytes happen to
        // look like a GUE header holds no quotable packet and stays plain UDP.
        protocol::UDP | gre::PROTOCOL
            if !matches!(quoted_encapsulated(proto, rest), QuotedProbe::Unknown) =>
        {
            quoted_encapsulated(proto, rest)
        }
        protocol::UDP => match UdpRepr::parse_ports(rest) {
            Ok((src_port, dst_port)) => QuotedProbe::Udp { src_port, dst_port },
            Err(_) => QuotedProbe::Unknown,
        },
        protocol::IPIP => quoted_v4(rest)
            .map(|q| QuotedProbe::Tunnelled(Box::new(q)))
            .unwrap_or(QuotedProbe::Unknown),
        protocol::IPV6 => quoted_v6(rest)
            .map(|q| QuotedProbe::Tunnelled(Box::new(q)))
            .unwrap_or(QuotedProbe::Unknown),
        _ => QuotedProbe::Unknown,
    };
    Quoted {
        src,
        dst,
        protocol: proto,
        probe,
    }
}

/// The inner packet of a quoted GUE or GRE packet.
fn quoted_encapsulated(proto: u8, rest: &[u8]) -> QuotedProbe {
    let inner = match tunnel::quoted_inner(proto, rest) {
        Some((_, protocol::IPV6, inner)) => quoted_v6(inner),
        Some((_, _, inner)) => quoted_v4(inner),
        None => return QuotedProbe::Unknown,
    };
    inner
        .map(|q| QuotedProbe::Tunnelled(Box::new(q)))
        .unwrap_or(QuotedProbe::Unknown)
}

/// A TCP segment in an IP packet: its addresses and where it lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInIp {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Where the TCP header starts in the IP packet.
    pub tcp_at: usize,
    /// The IP packet's length by its header (what follows is Ethernet padding).
    pub len: usize,
}

/// The TCP segment in the IP packet `packet` (IPv4, or IPv6 without extension headers),
/// with at least a whole TCP header. Fragments are `Unsupported`: a session never needs
/// them, and a later one has no TCP header. The IPv4 header checksum is not checked:
/// this reads the session's own packets too, as the user-space stack hands them over.
pub fn tcp_in_ip(packet: &[u8]) -> Result<TcpInIp> {
    let (src, dst, tcp_at, payload_len) = match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let (ip, _) = Ipv4Repr::parse_quoted(packet)?;
            if ipv4::is_fragment(packet) {
                return Err(WireError::Unsupported);
            }
            if ip.protocol != protocol::TCP {
                return Err(WireError::Unsupported);
            }
            let at = ipv4::header_len(packet);
            (IpAddr::V4(ip.src), IpAddr::V4(ip.dst), at, ip.payload_len)
        }
        Some(6) => {
            let (ip, _) = Ipv6Repr::parse(packet)?;
            if ip.next_header != protocol::TCP {
                return Err(WireError::Unsupported);
            }
            (
                IpAddr::V6(ip.src),
                IpAddr::V6(ip.dst),
                ipv6::HEADER_LEN,
                ip.payload_len,
            )
        }
        Some(_) => return Err(WireError::Malformed),
        None => return Err(WireError::Truncated),
    };
    if payload_len < tcp::HEADER_LEN || tcp_at + payload_len > packet.len() {
        return Err(WireError::Truncated);
    }
    Ok(TcpInIp {
        src,
        dst,
        tcp_at,
        len: tcp_at + payload_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn_packet(src: &str, dst: &str) -> Vec<u8> {
        let frame = Probe {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            tunnel: None,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            hop_limit: 1,
            ip_ident: 7,
            kind: ProbeKind::Syn {
                src_port: 40000,
                dst_port: 80,
                seq: 1,
            },
            encap: Default::default(),
        }
        .build()
        .unwrap();
        frame[ethernet::HEADER_LEN..].to_vec()
    }

    #[test]
    fn tcp_in_ip_finds_the_segment_and_leaves_padding_out() {
        let mut p = syn_packet("192.0.2.1", "192.0.2.20");
        let len = p.len();
        p.extend_from_slice(&[0; 6]);
        let t = tcp_in_ip(&p).unwrap();
        assert_eq!(
            t,
            TcpInIp {
                src: "192.0.2.1".parse().unwrap(),
                dst: "192.0.2.20".parse().unwrap(),
                tcp_at: 20,
                len,
            }
        );
        let p6 = syn_packet("2001:db8::1", "2001:db8::20");
        assert_eq!(tcp_in_ip(&p6).unwrap().tcp_at, 40);
    }

    #[test]
    fn tcp_in_ip_refuses_fragments_other_protocols_and_short_segments() {
        let p = syn_packet("192.0.2.1", "192.0.2.20");
        let mut more = p.clone();
        more[6] |= 0x20; // more fragments follow
        assert_eq!(tcp_in_ip(&more), Err(WireError::Unsupported));
        let mut udp = p.clone();
        udp[9] = protocol::UDP;
        assert_eq!(tcp_in_ip(&udp), Err(WireError::Unsupported));
        assert_eq!(tcp_in_ip(&p[..30]), Err(WireError::Truncated));
        assert_eq!(tcp_in_ip(&[0x50; 40]), Err(WireError::Malformed));
        assert_eq!(tcp_in_ip(&[]), Err(WireError::Truncated));
    }
}
