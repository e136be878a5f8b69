//! The encapsulations of IPVS's tunnelling method, one function per type: IP-in-IP
//! ([`super::ipip`]), GUE ([`super::gue`]) and GRE ([`super::gre`]), each under an outer
//! IPv4 or IPv6 header to the real server. The outer header and the encapsulation header
//! are written in front of an inner packet already in place, as the kernel pushes them.

use std::net::IpAddr;

use super::ipip::{self, OUTER_HOP_LIMIT};
use super::ipv4::{self, protocol, Ipv4Repr};
use super::ipv6::{self, Ipv6Repr};
use super::{ethernet::ethertype, gre, gue, Result, WireError};

/// How the inner packet is carried (the wire's view of a TUN real server's tunnel type
/// and checksum option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encap {
    /// IP-in-IP: the outer header alone.
    #[default]
    Ipip,
    /// UDP to `port` and a GUE header; `csum`: the UDP checksum is computed (keepalived's
    /// `csum` and `remcsum`), else zero.
    Gue { port: u16, csum: bool },
    /// A GRE header; `csum`: with the GRE checksum.
    Gre { csum: bool },
}

impl Encap {
    /// The IP protocol the outer header announces for an inner packet of `inner_proto`.
    fn outer_protocol(self, inner_proto: u8) -> u8 {
        match self {
            Encap::Ipip => inner_proto,
            Encap::Gue { .. } => protocol::UDP,
            Encap::Gre { .. } => gre::PROTOCOL,
        }
    }

    /// Bytes between the outer IP header and the inner packet.
    pub fn header_len(self) -> usize {
        match self {
            Encap::Ipip => 0,
            Encap::Gue { .. } => gue::HEADER_LEN,
            Encap::Gre { csum } => gre::header_len(csum),
        }
    }

    /// Everything in front of the inner packet for a tunnel to `outer_dst`.
    pub fn outer_len(self, outer_dst: IpAddr) -> usize {
        ipip::outer_header_len(outer_dst) + self.header_len()
    }
}

/// Writes the outer IP header `outer_src` -> `outer_dst` and the encapsulation header into
/// the front of `buf` (`encap.outer_len(outer_dst)` bytes), in front of the inner packet
/// (to `inner_dst`) that already fills the rest; returns the EtherType of the result.
pub fn emit_outer(
    encap: Encap,
    outer_src: IpAddr,
    outer_dst: IpAddr,
    ident: u16,
    inner_dst: IpAddr,
    buf: &mut [u8],
) -> Result<u16> {
    let ip_len = ipip::outer_header_len(outer_dst);
    let head = ip_len + encap.header_len();
    if buf.len() < head || outer_src.is_ipv4() != outer_dst.is_ipv4() {
        return Err(WireError::Unsupported);
    }
    let inner_proto = ipip::inner_protocol(inner_dst);
    match encap {
        Encap::Ipip => {}
        Encap::Gue { port, csum } => {
            let src_port = gue::source_port(&buf[head..]);
            let sum = csum.then_some((outer_src, outer_dst));
            gue::emit(src_port, port, inner_proto, sum, &mut buf[ip_len..]);
        }
        Encap::Gre { csum } => gre::emit(inner_proto, csum, &mut buf[ip_len..]),
    }
    let proto = encap.outer_protocol(inner_proto);
    emit_ip_header(outer_src, outer_dst, proto, OUTER_HOP_LIMIT, ident, buf)
}

/// Writes, at the start of `packet`, an IPv4 or IPv6 header `src` -> `dst` of protocol
/// `proto` for the payload that fills the rest of it; the frame's EtherType. The outer
/// header here, and a probe's own in [`super::frame`].
pub(super) fn emit_ip_header(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    hop_limit: u8,
    ident: u16,
    packet: &mut [u8],
) -> Result<u16> {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) if packet.len() >= ipv4::HEADER_LEN => {
            Ipv4Repr {
                src,
                dst,
                protocol: proto,
                ttl: hop_limit,
                ident,
                payload_len: packet.len() - ipv4::HEADER_LEN,
            }
            .emit(packet);
            Ok(ethertype::IPV4)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) if packet.len() >= ipv6::HEADER_LEN => {
            Ipv6Repr {
                src,
                dst,
                next_header: proto,
                hop_limit,
                payload_len: packet.len() - ipv6::HEADER_LEN,
            }
            .emit(packet);
            Ok(ethertype::IPV6)
        }
        _ => Err(WireError::Unsupported),
    }
}

/// Wraps the IP packet `inner` (to `inner_dst`) for a tunnel `outer_src` -> `outer_dst`;
/// returns the EtherType of the result and its bytes.
pub fn encapsulate(
    encap: Encap,
    outer_src: IpAddr,
    outer_dst: IpAddr,
    ident: u16,
    inner_dst: IpAddr,
    inner: &[u8],
) -> Result<(u16, Vec<u8>)> {
    let head = encap.outer_len(outer_dst);
    let mut b = vec![0xa5; head + inner.len()];
    b[head..].copy_from_slice(inner);
    let etype = emit_outer(encap, outer_src, outer_dst, ident, inner_dst, &mut b)?;
    Ok((etype, b))
}

/// The encapsulated packet an ICMP error quotes after the outer header of protocol
/// `outer_proto`: the encapsulation it shows (the GUE port as quoted, checksum options
/// unknown), the inner protocol and the inner bytes. `None` when it is no tunnel packet.
pub fn quoted_inner(outer_proto: u8, rest: &[u8]) -> Option<(Encap, u8, &[u8])> {
    match outer_proto {
        protocol::IPIP | protocol::IPV6 => Some((Encap::Ipip, outer_proto, rest)),
        protocol::UDP => {
            let (port, proto, inner) = gue::quoted_inner(rest)?;
            Some((Encap::Gue { port, csum: false }, proto, inner))
        }
        gre::PROTOCOL => {
            let (proto, inner) = gre::quoted_inner(rest)?;
            Some((Encap::Gre { csum: false }, proto, inner))
        }
        _ => None,
    }
}
