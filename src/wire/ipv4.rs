//! The IPv4 header (RFC 791), without options on emit; options are skipped on parse.

use std::net::Ipv4Addr;

use super::{be16, checksum, put16, Result, WireError};

mod field {
    use std::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

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

fn ip4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
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
        if be16(packet, field::FLAGS_FRAG) & 0x1fff != 0 {
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
        if packet.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if packet[field::VER_IHL] >> 4 != 4 {
            return Err(WireError::Malformed);
        }
        let hlen = usize::from(packet[field::VER_IHL] & 0x0f) * 4;
        let total = usize::from(be16(packet, field::LENGTH));
        if hlen < HEADER_LEN || total < hlen {
            return Err(WireError::Malformed);
        }
        if packet.len() < hlen {
            return Err(WireError::Truncated);
        }
        let repr = Ipv4Repr {
            src: ip4(&packet[field::SRC]),
            dst: ip4(&packet[field::DST]),
            protocol: packet[field::PROTOCOL],
            ttl: packet[field::TTL],
            ident: be16(packet, field::IDENT),
            payload_len: total - hlen,
        };
        Ok((repr, hlen, total))
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with DF set and its checksum.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[field::VER_IHL] = 0x45;
        buf[field::TOS] = 0;
        put16(buf, field::LENGTH, (HEADER_LEN + self.payload_len) as u16);
        put16(buf, field::IDENT, self.ident);
        put16(buf, field::FLAGS_FRAG, 0x4000);
        buf[field::TTL] = self.ttl;
        buf[field::PROTOCOL] = self.protocol;
        buf[field::CHECKSUM].copy_from_slice(&[0, 0]);
        buf[field::SRC].copy_from_slice(&self.src.octets());
        buf[field::DST].copy_from_slice(&self.dst.octets());
        let c = checksum::of(&buf[..HEADER_LEN]);
        buf[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
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
