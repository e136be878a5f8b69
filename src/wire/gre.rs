//! GRE (RFC 2784) as IPVS sends it to a TUN real server (`ipvs_gre_encap` in the kernel's
//! net/netfilter/ipvs/ip_vs_xmit.c, through `gre_build_header`): version 0, no key, no
//! sequence number, the protocol type the inner packet's EtherType (0x0800 IPv4, 0x86dd
//! IPv6), and with `csum` the checksum flag and a checksum over the GRE header and the
//! inner packet followed by 16 reserved bits.

use super::checksum;
use super::ethernet::ethertype;
use super::ipv4::protocol;

/// The IP protocol number of GRE.
pub const PROTOCOL: u8 = 47;

/// The checksum-present flag (C) in the first 16 bits.
pub const FLAG_CSUM: u16 = 0x8000;

/// The GRE header's length: 4 bytes, 8 with the checksum.
pub fn header_len(csum: bool) -> usize {
    if csum {
        8
    } else {
        4
    }
}

/// The protocol type for an inner packet of IP protocol `inner_protocol` (4 or 41).
pub fn protocol_type(inner_protocol: u8) -> u16 {
    if inner_protocol == protocol::IPV6 {
        ethertype::IPV6
    } else {
        ethertype::IPV4
    }
}

/// Writes the GRE header into `buf[..header_len(csum)]`, in front of the inner packet that
/// already fills the rest of `buf`.
pub fn emit(inner_protocol: u8, csum: bool, buf: &mut [u8]) {
    let flags = if csum { FLAG_CSUM } else { 0 };
    buf[0..2].copy_from_slice(&flags.to_be_bytes());
    buf[2..4].copy_from_slice(&protocol_type(inner_protocol).to_be_bytes());
    if csum {
        buf[4..8].copy_from_slice(&[0; 4]);
        let sum = checksum::of(buf);
        buf[4..6].copy_from_slice(&sum.to_be_bytes());
    }
}

/// A GRE packet quoted in an ICMP error (after the outer IP header): the inner IP protocol
/// (4 or 41) and what is quoted of the inner packet. `None` for other versions, keys,
/// sequence numbers, routing, or inner packets that are not IP.
pub fn quoted_inner(rest: &[u8]) -> Option<(u8, &[u8])> {
    if rest.len() < 4 {
        return None;
    }
    let flags = u16::from_be_bytes([rest[0], rest[1]]);
    if flags & !FLAG_CSUM != 0 {
        return None;
    }
    let inner = match u16::from_be_bytes([rest[2], rest[3]]) {
        ethertype::IPV4 => protocol::IPIP,
        ethertype::IPV6 => protocol::IPV6,
        _ => return None,
    };
    let len = header_len(flags & FLAG_CSUM != 0);
    Some((inner, rest.get(len..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_header_carries_the_inner_ethertype() {
        let mut b = vec![0xa5; 4 + 2];
        emit(protocol::IPIP, false, &mut b);
        assert_eq!(b[..4], [0, 0, 0x08, 0x00]);
        emit(protocol::IPV6, false, &mut b);
        assert_eq!(b[..4], [0, 0, 0x86, 0xdd]);
    }

    #[test]
    fn csum_header_sets_c_and_checksums_header_and_payload_to_zero() {
        let mut b = vec![0xa5; 8 + 5];
        b[8..].copy_from_slice(&[0x45, 1, 2, 3, 4]);
        emit(protocol::IPIP, true, &mut b);
        assert_eq!(b[..4], [0x80, 0, 0x08, 0x00]);
        assert_eq!(b[6..8], [0, 0], "reserved");
        assert_eq!(checksum::of(&b), 0);
    }

    #[test]
    fn quoted_gre_yields_the_inner_packet() {
        assert_eq!(
            quoted_inner(&[0, 0, 0x86, 0xdd, 0x60]),
            Some((41, &[0x60][..]))
        );
        assert_eq!(
            quoted_inner(&[0x80, 0, 0x08, 0, 1, 2, 0, 0, 0x45]),
            Some((4, &[0x45][..]))
        );
        assert_eq!(
            quoted_inner(&[0x20, 0, 0x08, 0, 1, 2, 3, 4, 0x45]),
            None,
            "key"
        );
        assert_eq!(quoted_inner(&[0, 0, 0x65, 0x58, 0x45]), None, "Ethernet");
        assert_eq!(quoted_inner(&[0, 0, 0x08]), None);
    }
}
