//! The IPv6 fixed header (RFC 8200) on pnet's [`Ipv6Packet`]. Extension headers are not
//! emitted; on parse the next header is reported as found (replies to probes carry none).

use std::net::Ipv6Addr;

use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv6::{Ipv6Packet, MutableIpv6Packet};

use super::{Result, WireError};

pub const HEADER_LEN: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub hop_limit: u8,
    pub payload_len: usize,
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
        let ip = Ipv6Packet::new(packet).ok_or(WireError::Truncated)?;
        if ip.get_version() != 6 {
            return Err(WireError::Malformed);
        }
        Ok(Ipv6Repr {
            src: ip.get_source(),
            dst: ip.get_destination(),
            next_header: ip.get_next_header().0,
            hop_limit: ip.get_hop_limit(),
            payload_len: usize::from(ip.get_payload_length()),
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte header: traffic class and flow label zero.
    pub fn emit(&self, buf: &mut [u8]) {
        let Some(mut ip) = MutableIpv6Packet::new(&mut buf[..HEADER_LEN]) else {
            return;
        };
        ip.set_version(6);
        ip.set_traffic_class(0);
        ip.set_flow_label(0);
        ip.set_payload_length(self.payload_len as u16);
        ip.set_next_header(IpNextHeaderProtocol(self.next_header));
        ip.set_hop_limit(self.hop_limit);
        ip.set_source(self.src);
        ip.set_destination(self.dst);
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
