//! The IPv4 header (RFC 791) on pnet's [`Ipv4Packet`], without options on emit; options
//! are skipped on parse.

use std::net::Ipv4Addr;

use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv4::{self as pnet_ipv4, Ipv4Flags, Ipv4Packet, MutableIpv4Packet};

use super::{checksum, Result, WireError};

pub const HEADER_LEN: usize = 20;

pub mod protocol {
    pub const ICMP: u8 = 1;
    /// IPv4 encapsulated in IP (IPIP, RFC 2003).
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    /// IPv6 encapsulated in IP (RFC 2473 / 4213).
    pub const IPV6: u8 = 41;
    pub const ICMPV6: u8 = 58;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub ident: u16,
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// A received packet: checks version, lengths and the header checksum; returns the
    /// payload cut to the header's total length. Fragments other than the first are
    /// `Unsupported` (a probe reply never needs reassembly).
    pub fn parse(packet: &[u8]) -> Result<(Ipv4Repr, &[u8])> {
        let (repr, hlen, total) = Self::parse_header(packet)?;
        if total > packet.len() {
            return Err(WireError::Truncated);
        }
        if checksum::of(&packet[..hlen]) != 0 {
            return Err(WireError::Checksum);
        }
        if Ipv4Packet::new(packet).is_some_and(|p| p.get_fragment_offset() != 0) {
            return Err(WireError::Unsupported);
        }
        Ok((repr, &packet[hlen..total]))
    }

    /// The header quoted inside an ICMP error: the rest of the packet may be cut off and
    /// the checksum is not checked (routers may have changed the TTL).
    pub fn parse_quoted(packet: &[u8]) -> Result<(Ipv4Repr, &[u8])> {
        let (repr, hlen, total) = Self::parse_header(packet)?;
        Ok((repr, &packet[hlen..total.min(packet.len())]))
    }

    fn parse_header(packet: &[u8]) -> Result<(Ipv4Repr, usize, usize)> {
        let ip = Ipv4Packet::new(packet).ok_or(WireError::Truncated)?;
        if ip.get_version() != 4 {
            return Err(WireError::Malformed);
        }
        let hlen = usize::from(ip.get_header_length()) * 4;
        let total = usize::from(ip.get_total_length());
        if hlen < HEADER_LEN || total < hlen {
            return Err(WireError::Malformed);
        }
        if packet.len() < hlen {
            return Err(WireError::Truncated);
        }
        let repr = Ipv4Repr {
            src: ip.get_source(),
            dst: ip.get_destination(),
            protocol: ip.get_next_level_protocol().0,
            ttl: ip.get_ttl(),
            ident: ip.get_identification(),
            payload_len: total - hlen,
        };
        Ok((repr, hlen, total))
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with DF set and its checksum.
    pub fn emit(&self, buf: &mut [u8]) {
        let Some(mut ip) = MutableIpv4Packet::new(&mut buf[..HEADER_LEN]) else {
            return;
        };
        ip.set_version(4);
        ip.set_header_length((HEADER_LEN / 4) as u8);
        ip.set_dscp(0);
        ip.set_ecn(0);
        ip.set_total_length((HEADER_LEN + self.payload_len) as u16);
        ip.set_identification(self.ident);
        ip.set_flags(Ipv4Flags::DontFragment);
        ip.set_fragment_offset(0);
        ip.set_ttl(self.ttl);
        ip.set_next_level_protocol(IpNextHeaderProtocol(self.protocol));
        ip.set_source(self.src);
        ip.set_destination(self.dst);
        let c = pnet_ipv4::checksum(&ip.to_immutable());
        ip.set_checksum(c);
    }
}

/// The header's length in bytes (with options), for a packet [`Ipv4Repr::parse`] took.
pub fn header_len(packet: &[u8]) -> usize {
    Ipv4Packet::new(packet).map_or(HEADER_LEN, |p| usize::from(p.get_header_length()) * 4)
}

/// Whether the packet is a fragment: more follow, or it is not the first.
pub fn is_fragment(packet: &[u8]) -> bool {
    Ipv4Packet::new(packet).is_some_and(|p| {
        p.get_flags() & Ipv4Flags::MoreFragments != 0 || p.get_fragment_offset() != 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // 192.0.2.2 -> 192.0.2.20, ICMP, TTL 1, id 0x1234, 8 bytes of payload.
    const PACKET: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x01, 0x01, 0xe3, 0x96, 192, 0, 2, 2, 192,
        0, 2, 20, 1, 2, 3, 4, 5, 6, 7, 8,
    ];

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src: Ipv4Addr::new(192, 0, 2, 2),
            dst: Ipv4Addr::new(192, 0, 2, 20),
            protocol: protocol::ICMP,
            ttl: 1,
            ident: 0x1234,
            payload_len: 8,
        }
    }

    #[test]
    fn emit_writes_the_header_with_checksum() {
        let mut buf = [0xa5; 20];
        repr().emit(&mut buf);
        assert_eq!(buf[..], PACKET[..20]);
    }

    #[test]
    fn parse_returns_header_and_payload() {
        let (r, payload) = Ipv4Repr::parse(&PACKET).unwrap();
        assert_eq!(r, repr());
        assert_eq!(payload, &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn parse_cuts_ethernet_padding_at_total_length() {
        let mut padded = PACKET.to_vec();
        padded.extend_from_slice(&[0; 18]);
        let (_, payload) = Ipv4Repr::parse(&padded).unwrap();
        assert_eq!(payload.len(), 8);
    }

    #[test]
    fn bad_checksum_is_rejected() {
        let mut p = PACKET;
        p[11] ^= 1;
        assert_eq!(Ipv4Repr::parse(&p), Err(WireError::Checksum));
    }

    #[test]
    fn truncated_packet_is_rejected_but_quoted_header_is_read() {
        assert_eq!(Ipv4Repr::parse(&PACKET[..24]), Err(WireError::Truncated));
        let (r, rest) = Ipv4Repr::parse_quoted(&PACKET[..24]).unwrap();
        assert_eq!(r.dst, Ipv4Addr::new(192, 0, 2, 20));
        assert_eq!(rest, &[1, 2, 3, 4]);
    }

    #[test]
    fn ipv6_version_is_malformed() {
        let mut p = PACKET;
        p[0] = 0x65;
        assert_eq!(Ipv4Repr::parse(&p), Err(WireError::Malformed));
    }
}
