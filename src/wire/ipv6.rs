//! The IPv6 fixed header (RFC 8200). Extension headers are not emitted; on parse the
//! next header is reported as found (replies to probes carry none).

use std::net::Ipv6Addr;

use super::{be16, put16, Result, WireError};

mod field {
    use std::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

pub const HEADER_LEN: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub hop_limit: u8,
    pub payload_len: usize,
}

fn ip6(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
}

impl Ipv6Repr {
    /// A received packet: checks the version and that the payload is all there.
    pub fn parse(packet: &[u8]) -> Result<(Ipv6Repr, &[u8])> {
        let repr = Self::parse_header(packet)?;
        let end = HEADER_LEN + repr.payload_len;
        if end > packet.len() {
            return Err(WireError::Truncated);
        }
        Ok((repr, &packet[HEADER_LEN..end]))
    }

    /// The header quoted inside an ICMPv6 error: the payload may be cut off.
    pub fn parse_quoted(packet: &[u8]) -> Result<(Ipv6Repr, &[u8])> {
        let repr = Self::parse_header(packet)?;
        let end = (HEADER_LEN + repr.payload_len).min(packet.len());
        Ok((repr, &packet[HEADER_LEN..end]))
    }

    fn parse_header(packet: &[u8]) -> Result<Ipv6Repr> {
        if packet.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if packet[0] >> 4 != 6 {
            return Err(WireError::Malformed);
        }
        Ok(Ipv6Repr {
            src: ip6(&packet[field::SRC]),
            dst: ip6(&packet[field::DST]),
            next_header: packet[field::NEXT_HEADER],
            hop_limit: packet[field::HOP_LIMIT],
            payload_len: usize::from(be16(packet, field::PAYLOAD_LEN)),
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte header: traffic class and flow label zero.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[field::VER_TC_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
        put16(buf, field::PAYLOAD_LEN, self.payload_len as u16);
        buf[field::NEXT_HEADER] = self.next_header;
        buf[field::HOP_LIMIT] = self.hop_limit;
        buf[field::SRC].copy_from_slice(&self.src.octets());
        buf[field::DST].copy_from_slice(&self.dst.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKET: [u8; 44] = [
        0x60, 0, 0, 0, 0x00, 0x04, 58, 1, // ver, len 4, ICMPv6, hop limit 1
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // 2001:db8::2
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, // 2001:db8::20
        0xde, 0xad, 0xbe, 0xef,
    ];

    fn repr() -> Ipv6Repr {
        Ipv6Repr {
            src: "2001:db8::2".parse().unwrap(),
            dst: "2001:db8::20".parse().unwrap(),
            next_header: 58,
            hop_limit: 1,
            payload_len: 4,
        }
    }

    #[test]
    fn emit_writes_every_header_byte() {
        let mut buf = [0xa5; 40];
        repr().emit(&mut buf);
        assert_eq!(buf[..], PACKET[..40]);
    }

    #[test]
    fn parse_returns_header_and_payload() {
        let (r, payload) = Ipv6Repr::parse(&PACKET).unwrap();
        assert_eq!(r, repr());
        assert_eq!(payload, &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn truncated_payload_is_rejected_unless_quoted() {
        assert_eq!(Ipv6Repr::parse(&PACKET[..42]), Err(WireError::Truncated));
        let (_, rest) = Ipv6Repr::parse_quoted(&PACKET[..42]).unwrap();
        assert_eq!(rest, &[0xde, 0xad]);
    }
}
