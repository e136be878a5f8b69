//! ICMP for IPv4 (RFC 792) on pnet's ICMP packet types: echo request/reply, and the
//! errors that quote the packet that caused them (destination unreachable, time exceeded).

use pnet_packet::icmp::destination_unreachable::MutableDestinationUnreachablePacket;
use pnet_packet::icmp::echo_reply::{EchoReplyPacket, MutableEchoReplyPacket};
use pnet_packet::icmp::echo_request::{EchoRequestPacket, MutableEchoRequestPacket};
use pnet_packet::icmp::time_exceeded::MutableTimeExceededPacket;
use pnet_packet::icmp::{self as pnet_icmp, IcmpCode, IcmpPacket, IcmpType, MutableIcmpPacket};

use super::{checksum, Result, WireError};

pub const HEADER_LEN: usize = 8;

pub mod kind {
    pub const ECHO_REPLY: u8 = 0;
    pub const DST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
}

/// Destination-unreachable codes the prober tells apart.
pub mod unreachable {
    pub const NET: u8 = 0;
    pub const HOST: u8 = 1;
    /// The receiver does not handle the IP protocol: for IPIP, "does not decapsulate".
    pub const PROTOCOL: u8 = 2;
    pub const PORT: u8 = 3;
    pub const ADMIN_PROHIBITED: u8 = 13;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    EchoRequest {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    /// `invoking` is the quoted IP header and the start of its payload.
    DstUnreachable {
        code: u8,
        invoking: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        invoking: &'a [u8],
    },
    Other {
        kind: u8,
        code: u8,
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Checks the length and checksum.
    pub fn parse(packet: &'a [u8]) -> Result<Icmpv4Repr<'a>> {
        Self::parse_with(packet, true)
    }

    /// As [`Icmpv4Repr::parse`]; `verify = false` skips the checksum.
    pub fn parse_with(packet: &'a [u8], verify: bool) -> Result<Icmpv4Repr<'a>> {
        if packet.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let icmp = IcmpPacket::new(packet).ok_or(WireError::Truncated)?;
        if verify && checksum::of(packet) != 0 {
            return Err(WireError::Checksum);
        }
        let code = icmp.get_icmp_code().0;
        let rest = &packet[HEADER_LEN..];
        Ok(match icmp.get_icmp_type().0 {
            kind::ECHO_REQUEST => {
                let echo = EchoRequestPacket::new(packet).ok_or(WireError::Truncated)?;
                Icmpv4Repr::EchoRequest {
                    ident: echo.get_identifier(),
                    seq: echo.get_sequence_number(),
                    data: rest,
                }
            }
            kind::ECHO_REPLY => {
                let echo = EchoReplyPacket::new(packet).ok_or(WireError::Truncated)?;
                Icmpv4Repr::EchoReply {
                    ident: echo.get_identifier(),
                    seq: echo.get_sequence_number(),
                    data: rest,
                }
            }
            kind::DST_UNREACHABLE => Icmpv4Repr::DstUnreachable {
                code,
                invoking: rest,
            },
            kind::TIME_EXCEEDED => Icmpv4Repr::TimeExceeded {
                code,
                invoking: rest,
            },
            kind => Icmpv4Repr::Other { kind, code },
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body().len()
    }

    /// What follows the 8-byte header.
    fn body(&self) -> &'a [u8] {
        match *self {
            Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => data,
            Icmpv4Repr::DstUnreachable { invoking, .. }
            | Icmpv4Repr::TimeExceeded { invoking, .. } => invoking,
            Icmpv4Repr::Other { .. } => &[],
        }
    }

    /// Writes the message (header, body, checksum) into `buf[..self.buffer_len()]`.
    pub fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..self.buffer_len()];
        // The second word: identifier and sequence number for an echo, zero for the rest.
        let (kind, code) = match *self {
            Icmpv4Repr::EchoRequest { ident, seq, data } => {
                if let Some(mut e) = MutableEchoRequestPacket::new(buf) {
                    e.set_identifier(ident);
                    e.set_sequence_number(seq);
                    e.set_payload(data);
                }
                (kind::ECHO_REQUEST, 0)
            }
            Icmpv4Repr::EchoReply { ident, seq, data } => {
                if let Some(mut e) = MutableEchoReplyPacket::new(buf) {
                    e.set_identifier(ident);
                    e.set_sequence_number(seq);
                    e.set_payload(data);
                }
                (kind::ECHO_REPLY, 0)
            }
            Icmpv4Repr::DstUnreachable { code, invoking } => {
                if let Some(mut u) = MutableDestinationUnreachablePacket::new(buf) {
                    u.set_unused(0);
                    u.set_next_hop_mtu(0);
                    u.set_payload(invoking);
                }
                (kind::DST_UNREACHABLE, code)
            }
            Icmpv4Repr::TimeExceeded { code, invoking } => {
                if let Some(mut t) = MutableTimeExceededPacket::new(buf) {
                    t.set_unused(0);
                    t.set_payload(invoking);
                }
                (kind::TIME_EXCEEDED, code)
            }
            Icmpv4Repr::Other { kind, code } => {
                if let Some(mut t) = MutableTimeExceededPacket::new(buf) {
                    t.set_unused(0);
                }
                (kind, code)
            }
        };
        let Some(mut icmp) = MutableIcmpPacket::new(buf) else {
            return;
        };
        icmp.set_icmp_type(IcmpType(kind));
        icmp.set_icmp_code(IcmpCode(code));
        let c = pnet_icmp::checksum(&icmp.to_immutable());
        icmp.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO: [u8; 12] = [
        0x08, 0x00, 0x52, 0x42, 0xbe, 0xef, 0x00, 0x01, 0x76, 0x69, 0x70, 0x63,
    ];

    #[test]
    fn echo_request_emits_with_checksum() {
        let repr = Icmpv4Repr::EchoRequest {
            ident: 0xbeef,
            seq: 1,
            data: b"vipc",
        };
        let mut buf = [0xa5; 12];
        repr.emit(&mut buf);
        assert_eq!(buf, ECHO);
        assert_eq!(Icmpv4Repr::parse(&ECHO).unwrap(), repr);
    }

    #[test]
    fn time_exceeded_round_trips_with_its_quote() {
        let quote = [
            0x45u8, 0, 0, 28, 0, 0, 0x40, 0, 0, 1, 0, 0, 192, 0, 2, 2, 192, 0, 2, 20,
        ];
        let repr = Icmpv4Repr::TimeExceeded {
            code: 0,
            invoking: &quote,
        };
        let mut buf = [0xa5; 28];
        repr.emit(&mut buf);
        assert_eq!(&buf[..8], &[11, 0, 0xeb, 0xca, 0, 0, 0, 0]);
        assert_eq!(Icmpv4Repr::parse(&buf).unwrap(), repr);
    }

    #[test]
    fn corrupted_message_fails_the_checksum() {
        let mut p = ECHO;
        p[9] ^= 0x20;
        assert_eq!(Icmpv4Repr::parse(&p), Err(WireError::Checksum));
        assert_eq!(Icmpv4Repr::parse(&p[..7]), Err(WireError::Truncated));
    }
}
