//! ARP for IPv4 over Ethernet (RFC 826): the request the prober sends when the kernel's
//! neighbour table has no entry, and the reply it waits for.

use std::net::Ipv4Addr;

use super::{be16, ethernet, put16, MacAddr, Result, WireError};

mod field {
    use std::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

pub const PACKET_LEN: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOperation {
    Request,
    Reply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

fn ip4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl ArpRepr {
    pub fn parse(packet: &[u8]) -> Result<ArpRepr> {
        if packet.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if be16(packet, field::HTYPE) != 1
            || be16(packet, field::PTYPE) != ethernet::ethertype::IPV4
            || packet[field::HLEN] != 6
            || packet[field::PLEN] != 4
        {
            return Err(WireError::Unsupported);
        }
        let operation = match be16(packet, field::OPER) {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            _ => return Err(WireError::Malformed),
        };
        Ok(ArpRepr {
            operation,
            sender_mac: MacAddr::from_slice(&packet[field::SHA]).ok_or(WireError::Truncated)?,
            sender_ip: ip4(&packet[field::SPA]),
            target_mac: MacAddr::from_slice(&packet[field::THA]).ok_or(WireError::Truncated)?,
            target_ip: ip4(&packet[field::TPA]),
        })
    }

    pub fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    pub fn emit(&self, buf: &mut [u8]) {
        put16(buf, field::HTYPE, 1);
        put16(buf, field::PTYPE, ethernet::ethertype::IPV4);
        buf[field::HLEN] = 6;
        buf[field::PLEN] = 4;
        put16(
            buf,
            field::OPER,
            match self.operation {
                ArpOperation::Request => 1,
                ArpOperation::Reply => 2,
            },
        );
        buf[field::SHA].copy_from_slice(&self.sender_mac.0);
        buf[field::SPA].copy_from_slice(&self.sender_ip.octets());
        buf[field::THA].copy_from_slice(&self.target_mac.0);
        buf[field::TPA].copy_from_slice(&self.target_ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // eth/ipv4, reply
        0x02, 0, 0, 0, 0, 0x0b, 192, 0, 2, 11, // sender
        0x02, 0, 0, 0, 0, 0x02, 192, 0, 2, 2, // target
    ];

    #[test]
    fn reply_parses_and_emits_back_to_the_same_bytes() {
        let repr = ArpRepr::parse(&REPLY).unwrap();
        assert_eq!(repr.operation, ArpOperation::Reply);
        assert_eq!(repr.sender_mac, MacAddr([2, 0, 0, 0, 0, 0x0b]));
        assert_eq!(repr.sender_ip, Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!(repr.target_ip, Ipv4Addr::new(192, 0, 2, 2));
        let mut buf = [0xa5; 28];
        repr.emit(&mut buf);
        assert_eq!(buf, REPLY);
    }

    #[test]
    fn non_ethernet_ipv4_arp_is_unsupported() {
        let mut p = REPLY;
        p[1] = 6; // IEEE 802 hardware type
        assert_eq!(ArpRepr::parse(&p), Err(WireError::Unsupported));
    }

    #[test]
    fn short_arp_is_truncated() {
        assert_eq!(ArpRepr::parse(&REPLY[..27]), Err(WireError::Truncated));
    }
}
