//! ARP for IPv4 over Ethernet (RFC 826), on pnet's [`ArpPacket`]: the request the
//! prober sends when the kernel's neighbour table has no entry, and the reply it waits for.

use std::net::Ipv4Addr;

use pnet_packet::arp::{self as pnet_arp, ArpHardwareType, ArpPacket, MutableArpPacket};
use pnet_packet::ethernet::EtherType;

use super::{ethernet, MacAddr, Result, WireError};

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

/// ARP's hardware type for Ethernet.
const HTYPE_ETHERNET: u16 = 1;

impl ArpRepr {
    pub fn parse(packet: &[u8]) -> Result<ArpRepr> {
        let arp = ArpPacket::new(packet).ok_or(WireError::Truncated)?;
        if arp.get_hardware_type().0 != HTYPE_ETHERNET
            || arp.get_protocol_type().0 != ethernet::ethertype::IPV4
            || arp.get_hw_addr_len() != 6
            || arp.get_proto_addr_len() != 4
        {
            return Err(WireError::Unsupported);
        }
        let operation = match arp.get_operation() {
            op if op == pnet_arp::ArpOperations::Request => ArpOperation::Request,
            op if op == pnet_arp::ArpOperations::Reply => ArpOperation::Reply,
            _ => return Err(WireError::Malformed),
        };
        Ok(ArpRepr {
            operation,
            sender_mac: MacAddr(arp.get_sender_hw_addr().octets()),
            sender_ip: arp.get_sender_proto_addr(),
            target_mac: MacAddr(arp.get_target_hw_addr().octets()),
            target_ip: arp.get_target_proto_addr(),
        })
    }

    pub fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    pub fn emit(&self, buf: &mut [u8]) {
        let Some(mut arp) = MutableArpPacket::new(&mut buf[..PACKET_LEN]) else {
            return;
        };
        arp.set_hardware_type(ArpHardwareType(HTYPE_ETHERNET));
        arp.set_protocol_type(EtherType(ethernet::ethertype::IPV4));
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(match self.operation {
            ArpOperation::Request => pnet_arp::ArpOperations::Request,
            ArpOperation::Reply => pnet_arp::ArpOperations::Reply,
        });
        arp.set_sender_hw_addr(self.sender_mac.0.into());
        arp.set_sender_proto_addr(self.sender_ip);
        arp.set_target_hw_addr(self.target_mac.0.into());
        arp.set_target_proto_addr(self.target_ip);
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
