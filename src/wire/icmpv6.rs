//! ICMPv6 (RFC 4443) and the neighbour discovery messages the prober needs (RFC 4861):
//! echo, neighbour solicitation/advertisement with link-layer address options, and the
//! errors that quote the offending packet (unreachable, time exceeded, parameter problem).
//!
//! On pnet's ICMPv6, echo and NDP packet types. Ours: the errors' second word (pnet
//! 0.35 has no view for ICMPv6 errors) and the link-layer address options (pnet's
//! option view computes `length * 8 - 2` in a `u8`, which overflows on a hostile
//! length byte; the walker here checks every length against what is there).

use std::net::{IpAddr, Ipv6Addr};

use pnet_packet::icmpv6::echo_reply::{EchoReplyPacket, MutableEchoReplyPacket};
use pnet_packet::icmpv6::echo_request::{EchoRequestPacket, MutableEchoRequestPacket};
use pnet_packet::icmpv6::ndp::{
    MutableNeighborAdvertPacket, MutableNeighborSolicitPacket, NeighborAdvertPacket,
    NeighborSolicitPacket,
};
use pnet_packet::icmpv6::{
    self as pnet_icmpv6, Icmpv6Code, Icmpv6Packet, Icmpv6Type, MutableIcmpv6Packet,
};

use super::{be32, checksum, ipv4::protocol, put32, MacAddr, Result, WireError};

/// The second word of an error message: parameter problem's pointer, else unused.
const WORD: usize = 4;

pub const HEADER_LEN: usize = 8;
/// NS/NA: header, target address.
const ND_LEN: usize = 24;
/// A source/target link-layer address option for Ethernet.
const LLADDR_OPT_LEN: usize = 8;

pub mod kind {
    pub const DST_UNREACHABLE: u8 = 1;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// Parameter problem codes.
/// Destination unreachable codes (RFC 4443).
pub mod unreachable {
    /// The destination does not serve the port (for a tunnel packet: no tunnel device
    /// takes it).
    pub const PORT: u8 = 4;
}

pub mod param_problem {
    /// "Unrecognized Next Header type encountered": for IPv6 tunnelling, "does not
    /// decapsulate".
    pub const UNRECOGNIZED_NEXT_HEADER: u8 = 1;
}

const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;

/// NA flags.
pub const FLAG_ROUTER: u32 = 0x8000_0000;
pub const FLAG_SOLICITED: u32 = 0x4000_0000;
pub const FLAG_OVERRIDE: u32 = 0x2000_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
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
    NeighborSolicit {
        target: Ipv6Addr,
        source_lladdr: Option<MacAddr>,
    },
    NeighborAdvert {
        flags: u32,
        target: Ipv6Addr,
        target_lladdr: Option<MacAddr>,
    },
    DstUnreachable {
        code: u8,
        invoking: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        invoking: &'a [u8],
    },
    ParamProblem {
        code: u8,
        pointer: u32,
        invoking: &'a [u8],
    },
    Other {
        kind: u8,
        code: u8,
    },
}

/// Finds an Ethernet link-layer address option of `wanted` kind in ND options.
fn find_lladdr(mut opts: &[u8], wanted: u8) -> Result<Option<MacAddr>> {
    while !opts.is_empty() {
        if opts.len() < 2 {
            return Err(WireError::Truncated);
        }
        let len = usize::from(opts[1]) * 8;
        if len == 0 {
            return Err(WireError::Malformed);
        }
        if opts.len() < len {
            return Err(WireError::Truncated);
        }
        if opts[0] == wanted && len >= LLADDR_OPT_LEN {
            return Ok(MacAddr::from_slice(&opts[2..8]));
        }
        opts = &opts[len..];
    }
    Ok(None)
}

impl<'a> Icmpv6Repr<'a> {
    /// Checks the length and the checksum over the pseudo-header of `src` -> `dst`.
    pub fn parse(src: Ipv6Addr, dst: Ipv6Addr, packet: &'a [u8]) -> Result<Icmpv6Repr<'a>> {
        Self::parse_with(src, dst, packet, true)
    }

    /// As [`Icmpv6Repr::parse`]; `verify = false` skips the checksum.
    pub fn parse_with(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        packet: &'a [u8],
        verify: bool,
    ) -> Result<Icmpv6Repr<'a>> {
        if packet.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let icmp = Icmpv6Packet::new(packet).ok_or(WireError::Truncated)?;
        if verify
            && checksum::with_pseudo(IpAddr::V6(src), IpAddr::V6(dst), protocol::ICMPV6, packet)
                != 0
        {
            return Err(WireError::Checksum);
        }
        let code = icmp.get_icmpv6_code().0;
        let rest = &packet[HEADER_LEN..];
        Ok(match icmp.get_icmpv6_type().0 {
            kind::ECHO_REQUEST => {
                let e = EchoRequestPacket::new(packet).ok_or(WireError::Truncated)?;
                Icmpv6Repr::EchoRequest {
                    ident: e.get_identifier(),
                    seq: e.get_sequence_number(),
                    data: rest,
                }
            }
            kind::ECHO_REPLY => {
                let e = EchoReplyPacket::new(packet).ok_or(WireError::Truncated)?;
                Icmpv6Repr::EchoReply {
                    ident: e.get_identifier(),
                    seq: e.get_sequence_number(),
                    data: rest,
                }
            }
            kind::NEIGHBOR_SOLICIT => {
                let ns = NeighborSolicitPacket::new(packet).ok_or(WireError::Truncated)?;
                Icmpv6Repr::NeighborSolicit {
                    target: ns.get_target_addr(),
                    source_lladdr: find_lladdr(&packet[ND_LEN..], OPT_SOURCE_LLADDR)?,
                }
            }
            kind::NEIGHBOR_ADVERT => {
                let na = NeighborAdvertPacket::new(packet).ok_or(WireError::Truncated)?;
                Icmpv6Repr::NeighborAdvert {
                    flags: (u32::from(na.get_flags()) << 24) | na.get_reserved(),
                    target: na.get_target_addr(),
                    target_lladdr: find_lladdr(&packet[ND_LEN..], OPT_TARGET_LLADDR)?,
                }
            }
            kind::DST_UNREACHABLE => Icmpv6Repr::DstUnreachable {
                code,
                invoking: rest,
            },
            kind::TIME_EXCEEDED => Icmpv6Repr::TimeExceeded {
                code,
                invoking: rest,
            },
            kind::PARAM_PROBLEM => Icmpv6Repr::ParamProblem {
                code,
                pointer: be32(packet, WORD),
                invoking: rest,
            },
            kind => Icmpv6Repr::Other { kind, code },
        })
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv6Repr::EchoRequest { data, .. } | Icmpv6Repr::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Icmpv6Repr::NeighborSolicit {
                source_lladdr: l, ..
            }
            | Icmpv6Repr::NeighborAdvert {
                target_lladdr: l, ..
            } => ND_LEN + if l.is_some() { LLADDR_OPT_LEN } else { 0 },
            Icmpv6Repr::DstUnreachable { invoking, .. }
            | Icmpv6Repr::TimeExceeded { invoking, .. }
            | Icmpv6Repr::ParamProblem { invoking, .. } => HEADER_LEN + invoking.len(),
            Icmpv6Repr::Other { .. } => HEADER_LEN,
        }
    }

    /// Writes the message and its checksum for a packet from `src` to `dst`.
    pub fn emit(&self, src: Ipv6Addr, dst: Ipv6Addr, buf: &mut [u8]) {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        let (kind, code) = match *self {
            Icmpv6Repr::EchoRequest { ident, seq, data } => {
                if let Some(mut e) = MutableEchoRequestPacket::new(buf) {
                    e.set_identifier(ident);
                    e.set_sequence_number(seq);
                    e.set_payload(data);
                }
                (kind::ECHO_REQUEST, 0)
            }
            Icmpv6Repr::EchoReply { ident, seq, data } => {
                if let Some(mut e) = MutableEchoReplyPacket::new(buf) {
                    e.set_identifier(ident);
                    e.set_sequence_number(seq);
                    e.set_payload(data);
                }
                (kind::ECHO_REPLY, 0)
            }
            Icmpv6Repr::NeighborSolicit {
                target,
                source_lladdr,
            } => {
                if let Some(mut ns) = MutableNeighborSolicitPacket::new(buf) {
                    ns.set_reserved(0);
                    ns.set_target_addr(target);
                }
                if let Some(mac) = source_lladdr {
                    emit_lladdr(&mut buf[ND_LEN..], OPT_SOURCE_LLADDR, mac);
                }
                (kind::NEIGHBOR_SOLICIT, 0)
            }
            Icmpv6Repr::NeighborAdvert {
                flags,
                target,
                target_lladdr,
            } => {
                if let Some(mut na) = MutableNeighborAdvertPacket::new(buf) {
                    na.set_flags((flags >> 24) as u8);
                    na.set_reserved(flags & 0x00ff_ffff);
                    na.set_target_addr(target);
                }
                if let Some(mac) = target_lladdr {
                    emit_lladdr(&mut buf[ND_LEN..], OPT_TARGET_LLADDR, mac);
                }
                (kind::NEIGHBOR_ADVERT, 0)
            }
            Icmpv6Repr::DstUnreachable { code, invoking } => {
                emit_error(buf, 0, invoking);
                (kind::DST_UNREACHABLE, code)
            }
            Icmpv6Repr::TimeExceeded { code, invoking } => {
                emit_error(buf, 0, invoking);
                (kind::TIME_EXCEEDED, code)
            }
            Icmpv6Repr::ParamProblem {
                code,
                pointer,
                invoking,
            } => {
                emit_error(buf, pointer, invoking);
                (kind::PARAM_PROBLEM, code)
            }
            Icmpv6Repr::Other { kind, code } => {
                emit_error(buf, 0, &[]);
                (kind, code)
            }
        };
        let Some(mut icmp) = MutableIcmpv6Packet::new(buf) else {
            return;
        };
        icmp.set_icmpv6_type(Icmpv6Type(kind));
        icmp.set_icmpv6_code(Icmpv6Code(code));
        let c = pnet_icmpv6::checksum(&icmp.to_immutable(), &src, &dst);
        icmp.set_checksum(c);
    }
}

/// An error message's second word and the quoted packet behind it.
fn emit_error(buf: &mut [u8], word: u32, invoking: &[u8]) {
    put32(buf, WORD, word);
    buf[HEADER_LEN..HEADER_LEN + invoking.len()].copy_from_slice(invoking);
}

fn emit_lladdr(buf: &mut [u8], kind: u8, mac: MacAddr) {
    buf[0] = kind;
    buf[1] = 1;
    buf[2..8].copy_from_slice(&mac.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn neighbor_solicitation_emits_target_and_source_option() {
        let src = a("2001:db8::2");
        let dst = a("ff02::1:ff00:11");
        let repr = Icmpv6Repr::NeighborSolicit {
            target: a("2001:db8::11"),
            source_lladdr: Some(MacAddr([2, 0, 0, 0, 0, 2])),
        };
        let mut buf = [0xa5; 32];
        repr.emit(src, dst, &mut buf);
        let expected: [u8; 32] = [
            135, 0, 0x1c, 0x07, 0, 0, 0, 0, // type, code, checksum, reserved
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, // target
            1, 1, 2, 0, 0, 0, 0, 2, // source link-layer address
        ];
        assert_eq!(buf, expected);
        assert_eq!(Icmpv6Repr::parse(src, dst, &buf).unwrap(), repr);
    }

    #[test]
    fn neighbor_advert_yields_the_target_lladdr() {
        let src = a("2001:db8::11");
        let dst = a("2001:db8::2");
        let repr = Icmpv6Repr::NeighborAdvert {
            flags: FLAG_SOLICITED | FLAG_OVERRIDE,
            target: src,
            target_lladdr: Some(MacAddr([2, 0, 0, 0, 0, 0x0b])),
        };
        let mut buf = [0xa5; 32];
        repr.emit(src, dst, &mut buf);
        assert_eq!(&buf[4..8], &[0x60, 0, 0, 0]);
        assert_eq!(&buf[24..32], &[2, 1, 2, 0, 0, 0, 0, 0x0b]);
        assert_eq!(Icmpv6Repr::parse(src, dst, &buf).unwrap(), repr);
    }

    #[test]
    fn checksum_covers_the_pseudo_header() {
        let src = a("2001:db8::2");
        let repr = Icmpv6Repr::EchoRequest {
            ident: 7,
            seq: 1,
            data: b"",
        };
        let mut buf = [0xa5; 8];
        repr.emit(src, a("2001:db8::20"), &mut buf);
        assert_eq!(
            Icmpv6Repr::parse(src, a("2001:db8::21"), &buf),
            Err(WireError::Checksum)
        );
    }

    #[test]
    fn zero_length_option_is_malformed() {
        let src = a("2001:db8::11");
        let dst = a("2001:db8::2");
        let mut buf = [0u8; 32];
        Icmpv6Repr::NeighborAdvert {
            flags: 0,
            target: src,
            target_lladdr: Some(MacAddr([2, 0, 0, 0, 0, 0x0b])),
        }
        .emit(src, dst, &mut buf);
        buf[25] = 0;
        buf[2..4].fill(0);
        let c = checksum::with_pseudo(IpAddr::V6(src), IpAddr::V6(dst), 58, &buf);
        buf[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(Icmpv6Repr::parse(src, dst, &buf), Err(WireError::Malformed));
    }

    #[test]
    fn option_length_beyond_the_message_is_truncated_not_a_panic() {
        // 255 * 8 bytes claimed: pnet's own option view would overflow computing it.
        let src = a("2001:db8::11");
        let dst = a("2001:db8::2");
        let mut buf = [0u8; 32];
        Icmpv6Repr::NeighborAdvert {
            flags: 0,
            target: src,
            target_lladdr: Some(MacAddr([2, 0, 0, 0, 0, 0x0b])),
        }
        .emit(src, dst, &mut buf);
        buf[25] = 0xff;
        buf[2..4].fill(0);
        let c = checksum::with_pseudo(IpAddr::V6(src), IpAddr::V6(dst), 58, &buf);
        buf[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(Icmpv6Repr::parse(src, dst, &buf), Err(WireError::Truncated));
    }
}
