//! The TCP header (RFC 9293) for what a reachability probe needs: SYN (with an MSS
//! option), RST, and reading SYN-ACK / RST replies. Options are skipped on parse.

use std::net::IpAddr;

use super::{be16, be32, checksum, ipv4::protocol, put16, put32, Result, WireError};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

pub const HEADER_LEN: usize = 20;

pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Emitted as the only option when set (SYN); not read back on parse.
    pub mss: Option<u16>,
}

impl TcpRepr {
    /// Checks the data offset and the checksum over the pseudo-header of `src` -> `dst`.
    pub fn parse(src: IpAddr, dst: IpAddr, segment: &[u8]) -> Result<TcpRepr> {
        Self::parse_with(src, dst, segment, true)
    }

    /// As [`TcpRepr::parse`]; `verify = false` skips the checksum, for segments the
    /// kernel says it has not checksummed yet (local traffic over veth) or has verified.
    pub fn parse_with(src: IpAddr, dst: IpAddr, segment: &[u8], verify: bool) -> Result<TcpRepr> {
        let repr = Self::parse_ports(segment)?;
        if segment.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let offset = usize::from(segment[field::OFFSET] >> 4) * 4;
        if offset < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if offset > segment.len() {
            return Err(WireError::Truncated);
        }
        if verify && checksum::with_pseudo(src, dst, protocol::TCP, segment) != 0 {
            return Err(WireError::Checksum);
        }
        Ok(TcpRepr {
            seq: be32(segment, field::SEQ),
            ack: be32(segment, field::ACK),
            flags: segment[field::FLAGS] & 0x3f,
            window: be16(segment, field::WINDOW),
            ..repr
        })
    }

    /// Only the ports (the first 4 bytes), as quoted in an ICMP error.
    pub fn parse_ports(segment: &[u8]) -> Result<TcpRepr> {
        if segment.len() < 4 {
            return Err(WireError::Truncated);
        }
        Ok(TcpRepr {
            src_port: be16(segment, field::SRC_PORT),
            dst_port: be16(segment, field::DST_PORT),
            seq: 0,
            ack: 0,
            flags: 0,
            window: 0,
            mss: None,
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + if self.mss.is_some() { 4 } else { 0 }
    }

    /// Writes the segment (no payload) and its checksum for `src` -> `dst`.
    pub fn emit(&self, src: IpAddr, dst: IpAddr, buf: &mut [u8]) {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        put16(buf, field::SRC_PORT, self.src_port);
        put16(buf, field::DST_PORT, self.dst_port);
        put32(buf, field::SEQ, self.seq);
        put32(buf, field::ACK, self.ack);
        buf[field::OFFSET] = ((len / 4) as u8) << 4;
        buf[field::FLAGS] = self.flags;
        put16(buf, field::WINDOW, self.window);
        put16(buf, field::CHECKSUM, 0);
        put16(buf, field::URGENT, 0);
        if let Some(mss) = self.mss {
            buf[HEADER_LEN] = 2;
            buf[HEADER_LEN + 1] = 4;
            put16(buf, HEADER_LEN + 2, mss);
        }
        let c = checksum::with_pseudo(src, dst, protocol::TCP, buf);
        put16(buf, field::CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn syn_with_mss_emits_header_option_and_checksum() {
        let repr = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq: 0x0102_0304,
            ack: 0,
            flags: flags::SYN,
            window: 64240,
            mss: Some(1460),
        };
        let mut buf = [0xa5; 24];
        repr.emit(ip("192.0.2.2"), ip("192.0.2.20"), &mut buf);
        let expected: [u8; 24] = [
            0x9c, 0x40, 0x00, 0x50, 1, 2, 3, 4, 0, 0, 0, 0, 0x60, 0x02, 0xfa, 0xf0, 0x78, 0x88, 0,
            0, 2, 4, 0x05, 0xb4,
        ];
        assert_eq!(buf, expected);
        let back = TcpRepr::parse(ip("192.0.2.2"), ip("192.0.2.20"), &buf).unwrap();
        assert_eq!(back, TcpRepr { mss: None, ..repr });
    }

    #[test]
    fn checksum_depends_on_the_addresses() {
        let repr = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: 3,
            ack: 4,
            flags: flags::RST | flags::ACK,
            window: 0,
            mss: None,
        };
        let mut buf = [0xa5; 20];
        repr.emit(ip("2001:db8::20"), ip("2001:db8::2"), &mut buf);
        assert!(TcpRepr::parse(ip("2001:db8::20"), ip("2001:db8::2"), &buf).is_ok());
        assert_eq!(
            TcpRepr::parse(ip("2001:db8::21"), ip("2001:db8::2"), &buf),
            Err(WireError::Checksum)
        );
    }

    #[test]
    fn data_offset_beyond_the_segment_is_truncated() {
        let mut seg = [0u8; 20];
        seg[12] = 0x60;
        assert_eq!(
            TcpRepr::parse(ip("192.0.2.1"), ip("192.0.2.2"), &seg),
            Err(WireError::Truncated)
        );
        seg[12] = 0x40;
        assert_eq!(
            TcpRepr::parse(ip("192.0.2.1"), ip("192.0.2.2"), &seg),
            Err(WireError::Malformed)
        );
    }
}
