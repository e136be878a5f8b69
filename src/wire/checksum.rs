//! The Internet checksum (RFC 1071), alone and behind the IPv4/IPv6 pseudo-header that
//! TCP and ICMPv6 add to it: pnet's `util` functions, named for what the wire code asks.
//! A packet with its checksum in place checksums to zero, which is how received packets
//! are verified.

use std::net::IpAddr;

use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::util;

/// No word is skipped: the checksum field is summed as it stands (zero while emitting).
const SKIP_NONE: usize = usize::MAX;

/// The checksum of `data` alone (IPv4 header, ICMPv4).
pub fn of(data: &[u8]) -> u16 {
    util::checksum(data, SKIP_NONE)
}

/// The checksum of `data` behind a pseudo-header (TCP, ICMPv6).
pub fn with_pseudo(src: IpAddr, dst: IpAddr, proto: u8, data: &[u8]) -> u16 {
    let proto = IpNextHeaderProtocol(proto);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => util::ipv4_checksum(data, SKIP_NONE, &[], &s, &d, proto),
        (IpAddr::V6(s), IpAddr::V6(d)) => util::ipv6_checksum(data, SKIP_NONE, &[], &s, &d, proto),
        // Mixed families never share a packet: a checksum without the pseudo-header is
        // simply wrong rather than a panic.
        _ => of(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sums_to_the_published_value() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 before complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(of(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_the_last_byte_with_zero() {
        assert_eq!(of(&[0x12, 0x34, 0x56]), of(&[0x12, 0x34, 0x56, 0x00]));
    }

    #[test]
    fn a_packet_with_its_checksum_sums_to_zero() {
        let mut data = [
            0x45, 0x00, 0x00, 0x1c, 0xab, 0xcd, 0x00, 0x00, 0x01, 0x01, 0, 0,
        ];
        let c = of(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(of(&data), 0);
    }
}
