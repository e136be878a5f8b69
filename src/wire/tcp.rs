//! The TCP header (RFC 9293) on pnet's [`TcpPacket`], for what a reachability probe
//! needs: SYN (with an MSS option), RST, and reading SYN-ACK / RST replies. Options are
//! skipped on parse.

use std::net::IpAddr;

use pnet_packet::tcp::{self as pnet_tcp, MutableTcpPacket, TcpPacket};

use super::{checksum, ipv4::protocol, Result, WireError};

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
        let tcp = TcpPacket::new(segment).ok_or(WireError::Truncated)?;
        header_len(segment)?;
        if verify && checksum::with_pseudo(src, dst, protocol::TCP, segment) != 0 {
            return Err(WireError::Checksum);
        }
        Ok(TcpRepr {
            src_port: tcp.get_source(),
            dst_port: tcp.get_destination(),
            seq: tcp.get_sequence(),
            ack: tcp.get_acknowledgement(),
            flags: tcp.get_flags() & 0x3f,
            window: tcp.get_window(),
            mss: None,
        })
    }

    /// Only the ports (the first 4 bytes), as quoted in an ICMP error.
    pub fn parse_ports(segment: &[u8]) -> Result<TcpRepr> {
        // pnet's view needs a whole header; an ICMP error may quote as little as 8 bytes.
        let mut header = [0u8; HEADER_LEN];
        let quoted = segment.get(..4).ok_or(WireError::Truncated)?;
        header[..4].copy_from_slice(quoted);
        let tcp = TcpPacket::new(&header).ok_or(WireError::Truncated)?;
        Ok(TcpRepr {
            src_port: tcp.get_source(),
            dst_port: tcp.get_destination(),
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
        let Some(mut tcp) = MutableTcpPacket::new(&mut buf[..len]) else {
            return;
        };
        tcp.set_source(self.src_port);
        tcp.set_destination(self.dst_port);
        tcp.set_sequence(self.seq);
        tcp.set_acknowledgement(self.ack);
        tcp.set_data_offset((len / 4) as u8);
        tcp.set_reserved(0);
        tcp.set_flags(self.flags);
        tcp.set_window(self.window);
        tcp.set_checksum(0);
        tcp.set_urgent_ptr(0);
        if let Some(mss) = self.mss {
            // Kind 2 (MSS), length 4, the value; by hand, as pnet's `TcpOption` would
            // allocate on every SYN.
            let [hi, lo] = mss.to_be_bytes();
            buf[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&[2, 4, hi, lo]);
        }
        fill_checksum(src, dst, &mut buf[..len]);
    }
}

/// The header's length in bytes (the data offset), checked against the segment.
pub fn header_len(segment: &[u8]) -> Result<usize> {
    let tcp = TcpPacket::new(segment).ok_or(WireError::Truncated)?;
    let offset = usize::from(tcp.get_data_offset()) * 4;
    if offset < HEADER_LEN {
        return Err(WireError::Malformed);
    }
    if offset > segment.len() {
        return Err(WireError::Truncated);
    }
    Ok(offset)
}

/// (Re)computes the checksum of a whole segment from `src` to `dst`: for segments we
/// build, and for received ones the kernel handed over with the checksum not filled in
/// (a veth peer's, offloaded to hardware that never saw them).
pub fn fill_checksum(src: IpAddr, dst: IpAddr, segment: &mut [u8]) {
    let Some(mut tcp) = MutableTcpPacket::new(segment) else {
        return;
    };
    let c = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pnet_tcp::ipv4_checksum(&tcp.to_immutable(), &s, &d),
        (IpAddr::V6(s), IpAddr::V6(d)) => pnet_tcp::ipv6_checksum(&tcp.to_immutable(), &s, &d),
        // Mixed families never share a packet; leave the field as it is.
        _ => return,
    };
    tcp.set_checksum(c);
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
