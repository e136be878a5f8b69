//! ICMPv6 (RFC 4443) and the neighbour discovery messages the prober needs (RFC 4861):
//! echo, neighbour solicitation/advertisement with link-layer address options, and the
//! errors that quote the offending packet (unreachable, time exceeded, parameter problem).

use std::net::{IpAddr, Ipv6Addr};

use super::{be16, be32, checksum, ipv4::protocol, put16, put32, MacAddr, Result, WireError};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    /// Parameter problem: the offset of the offending byte. Echo: ident + seq.
    pub const WORD: usize = 4;
    pub const TARGET: std::ops::Range<usize> = 8..24;
}

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

fn ip6(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
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
        if verify
            && checksum::with_pseudo(IpAddr::V6(src), IpAddr::V6(dst), protocol::ICMPV6, packet)
                != 0
        {
            return Err(WireError::Checksum);
        }
        let code = packet[field::CODE];
        let rest = &packet[HEADER_LEN..];
        Ok(match packet[field::TYPE] {
            kind::ECHO_REQUEST => Icmpv6Repr::EchoRequest {
                ident: be16(packet, field::IDENT),
                seq: be16(packet, field::SEQ),
                data: rest,
            },
            kind::ECHO_REPLY => Icmpv6Repr::EchoReply {
                ident: be16(packet, field::IDENT),
                seq: be16(packet, field::SEQ),
                data: rest,
            },
            kind::NEIGHBOR_SOLICIT => {
                if packet.len() < ND_LEN {
                    return Err(WireError::Truncated);
                }
                Icmpv6Repr::NeighborSolicit {
                    target: ip6(&packet[field::TARGET]),
                    source_lladdr: find_lladdr(&packet[ND_LEN..], OPT_SOURCE_LLADDR)?,
                }
            }
            kind::NEIGHBOR_ADVERT => {
                if packet.len() < ND_LEN {
                    return Err(WireError::Truncated);
                }
                Icmpv6Repr::NeighborAdvert {
                    flags: be32(packet, field::WORD),
                    target: ip6(&packet[field::TARGET]),
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
                pointer: be32(packet, field::WORD),
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
            Icmpv6Repr::EchoRequest { ident, seq, data }
            | Icmpv6Repr::EchoReply { ident, seq, data } => {
                put16(buf, field::IDENT, ident);
                put16(buf, field::SEQ, seq);
                buf[HEADER_LEN..].copy_from_slice(data);
                let kind = if matches!(self, Icmpv6Repr::EchoRequest { .. }) {
                    kind::ECHO_REQUEST
                } else {
                    kind::ECHO_REPLY
                };
                (kind, 0)
            }
            Icmpv6Repr::NeighborSolicit {
                target,
                source_lladdr,
            } => {
                put32(buf, field::WORD, 0);
                buf[field::TARGET].copy_from_slice(&target.octets());
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
                put32(buf, field::WORD, flags);
                buf[field::TARGET].copy_from_slice(&target.octets());
                if let Some(mac) = target_lladdr {
                    emit_lladdr(&mut buf[ND_LEN..], OPT_TARGET_LLADDR, mac);
                }
                (kind::NEIGHBOR_ADVERT, 0)
            }
            Icmpv6Repr::DstUnreachable { code, invoking } => {
                put32(buf, field::WORD, 0);
                buf[HEADER_LEN..].copy_from_slice(invoking);
                (kind::DST_UNREACHABLE, code)
            }
            Icmpv6Repr::TimeExceeded { code, invoking } => {
                put32(buf, field::WORD, 0);
                buf[HEADER_LEN..].copy_from_slice(invoking);
                (kind::TIME_EXCEEDED, code)
            }
            Icmpv6Repr::ParamProblem {
                code,
                pointer,
                invoking,
            } => {
                put32(buf, field::WORD, pointer);
                buf[HEADER_LEN..].copy_from_slice(invoking);
                (kind::PARAM_PROBLEM, code)
            }
            Icmpv6Repr::Other { kind, code } => {
                put32(buf, field::WORD, 0);
                (kind, code)
            }
        };
        buf[field::TYPE] = kind;
        buf[field::CODE] = code;
        put16(buf, field::CHECKSUM, 0);
        let c = checksum::with_pseudo(IpAddr::V6(src), IpAddr::V6(dst), protocol::ICMPV6, buf);
        put16(buf, field::CHECKSUM, c);
    }
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
}
