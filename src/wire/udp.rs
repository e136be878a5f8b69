//! The UDP header (RFC 768; RFC 8200 8.1 for IPv6), for the datagram a UDP service check
//! sends to the VIP and the reply it reads back. A zero-copy view ([`UdpPacket`]) over the
//! bytes, and a [`UdpRepr`] with `parse` / `emit` / `buffer_len`.

use std::net::IpAddr;

use super::{checksum, ipv4::protocol, Result, WireError};

pub const HEADER_LEN: usize = 8;

mod field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

fn be16(b: &[u8], r: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

/// A read-only view of a UDP datagram (header and payload).
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// A view without any check: the accessors may panic on a short buffer.
    pub fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// A view of untrusted bytes: the header is there and its length field fits.
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>> {
        let p = UdpPacket { buffer };
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(be16(b, field::LENGTH));
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Header and payload, by the length field.
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload, by the length field (what follows is padding).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
}

/// A UDP datagram's header fields and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

impl<'a> UdpRepr<'a> {
    /// Checks the length and, when `verify`, the checksum over the pseudo-header of `src`
    /// -> `dst` (an IPv4 checksum of zero means "none sent"; IPv6 requires one).
    pub fn parse(src: IpAddr, dst: IpAddr, datagram: &'a [u8], verify: bool) -> Result<Self> {
        let p = UdpPacket::new_checked(datagram)?;
        let whole = &datagram[..usize::from(p.len())];
        if verify {
            let none = src.is_ipv4() && p.checksum() == 0;
            if !none && checksum::with_pseudo(src, dst, protocol::UDP, whole) != 0 {
                return Err(WireError::Checksum);
            }
        }
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload: &whole[HEADER_LEN..],
        })
    }

    /// Only the ports, as quoted in an ICMP error (at least 8 bytes of it).
    pub fn parse_ports(quoted: &[u8]) -> Result<(u16, u16)> {
        if quoted.len() < 4 {
            return Err(WireError::Truncated);
        }
        Ok((be16(quoted, field::SRC_PORT), be16(quoted, field::DST_PORT)))
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Writes the datagram and its checksum for `src` -> `dst` into `buf` (at least
    /// [`UdpRepr::buffer_len`] bytes). Fails when the datagram is too long for UDP.
    pub fn emit(&self, src: IpAddr, dst: IpAddr, buf: &mut [u8]) -> Result<()> {
        let len = self.buffer_len();
        let len16 = u16::try_from(len).map_err(|_| WireError::Unsupported)?;
        let b = buf.get_mut(..len).ok_or(WireError::Truncated)?;
        b[field::SRC_PORT].copy_from_slice(&self.src_port.to_be_bytes());
        b[field::DST_PORT].copy_from_slice(&self.dst_port.to_be_bytes());
        b[field::LENGTH].copy_from_slice(&len16.to_be_bytes());
        b[field::CHECKSUM].fill(0);
        b[HEADER_LEN..].copy_from_slice(self.payload);
        let mut c = checksum::with_pseudo(src, dst, protocol::UDP, b);
        // A computed zero is sent as all ones (zero means "no checksum").
        if c == 0 {
            c = 0xffff;
        }
        b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    // 192.0.2.2:40000 -> 192.0.2.20:53, payload "ab". Checksum by hand (RFC 1071):
    // pseudo-header, header and data summed and complemented (RFC 1071): 0x7deb.
    const DATAGRAM: [u8; 10] = [0x9c, 0x40, 0x00, 0x35, 0x00, 0x0a, 0x7d, 0xeb, 0x61, 0x62];

    #[test]
    fn emits_byte_exactly_into_a_dirty_buffer() {
        let r = UdpRepr {
            src_port: 40000,
            dst_port: 53,
            payload: b"ab",
        };
        let mut b = vec![0xa5; r.buffer_len() + 3];
        r.emit(ip("192.0.2.2"), ip("192.0.2.20"), &mut b).unwrap();
        assert_eq!(&b[..10], &DATAGRAM);
        assert_eq!(&b[10..], &[0xa5; 3], "nothing written past the datagram");
    }

    #[test]
    fn parses_its_own_bytes_and_checks_the_checksum() {
        let (s, d) = (ip("192.0.2.2"), ip("192.0.2.20"));
        let r = UdpRepr::parse(s, d, &DATAGRAM, true).unwrap();
        assert_eq!((r.src_port, r.dst_port, r.payload), (40000, 53, &b"ab"[..]));
        let mut bad = DATAGRAM;
        bad[9] ^= 1;
        assert_eq!(UdpRepr::parse(s, d, &bad, true), Err(WireError::Checksum));
        assert!(UdpRepr::parse(s, d, &bad, false).is_ok());
        // IPv4: zero means no checksum was sent.
        let mut none = DATAGRAM;
        none[6..8].fill(0);
        assert!(UdpRepr::parse(s, d, &none, true).is_ok());
        // IPv6 has no such exception.
        let (s6, d6) = (ip("2001:db8::2"), ip("2001:db8::20"));
        assert_eq!(
            UdpRepr::parse(s6, d6, &none, true),
            Err(WireError::Checksum)
        );
    }

    #[test]
    fn ipv6_datagram_round_trips() {
        let (s, d) = (ip("2001:db8::2"), ip("2001:db8::20"));
        let r = UdpRepr {
            src_port: 1,
            dst_port: 2,
            payload: &[0u8; 7],
        };
        let mut b = vec![0xa5; r.buffer_len()];
        r.emit(s, d, &mut b).unwrap();
        assert_eq!(UdpRepr::parse(s, d, &b, true).unwrap(), r);
    }

    #[test]
    fn lengths_are_checked_and_padding_left_out() {
        let (s, d) = (ip("192.0.2.2"), ip("192.0.2.20"));
        assert_eq!(
            UdpRepr::parse(s, d, &DATAGRAM[..7], true),
            Err(WireError::Truncated)
        );
        let mut short = DATAGRAM;
        short[5] = 7;
        assert_eq!(
            UdpRepr::parse(s, d, &short, false),
            Err(WireError::Malformed)
        );
        let mut long = DATAGRAM;
        long[5] = 11;
        assert_eq!(
            UdpRepr::parse(s, d, &long, false),
            Err(WireError::Truncated)
        );
        let mut padded = DATAGRAM.to_vec();
        padded.extend_from_slice(&[0; 4]);
        assert_eq!(UdpRepr::parse(s, d, &padded, true).unwrap().payload, b"ab");
        assert_eq!(UdpRepr::parse_ports(&DATAGRAM[..4]), Ok((40000, 53)));
        assert_eq!(
            UdpRepr::parse_ports(&DATAGRAM[..3]),
            Err(WireError::Truncated)
        );
    }
}
