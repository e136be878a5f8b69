//! The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers that TCP and ICMPv6
//! add to it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The one's-complement sum of `data` as 16-bit big-endian words, not yet folded.
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

/// Folds a sum to 16 bits and complements it: the value that goes into the header.
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum of `data` alone (IPv4 header, ICMPv4).
pub fn of(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// The pseudo-header sum for an upper-layer packet of `len` bytes and protocol `proto`.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_v4(s, d, proto, len),
        (IpAddr::V6(s), IpAddr::V6(d)) => pseudo_v6(s, d, proto, len),
        // Mixed families never share a packet; sum the addresses anyway so the result
        // is simply wrong rather than a panic.
        (s, d) => {
            let mut acc = addr_sum(s).wrapping_add(addr_sum(d));
            acc = acc.wrapping_add(u32::from(proto));
            acc.wrapping_add(len as u32)
        }
    }
}

fn addr_sum(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(a) => sum(&a.octets()),
        IpAddr::V6(a) => sum(&a.octets()),
    }
}

pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
    sum(&src.octets())
        .wrapping_add(sum(&dst.octets()))
        .wrapping_add(u32::from(proto))
        .wrapping_add(len as u32 & 0xffff)
}

pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: usize) -> u32 {
    sum(&src.octets())
        .wrapping_add(sum(&dst.octets()))
        .wrapping_add((len as u32) >> 16)
        .wrapping_add(len as u32 & 0xffff)
        .wrapping_add(u32::from(next_header))
}

/// The checksum of `data` behind a pseudo-header (TCP, ICMPv6).
pub fn with_pseudo(src: IpAddr, dst: IpAddr, proto: u8, data: &[u8]) -> u16 {
    finish(pseudo_header(src, dst, proto, data.len()).wrapping_add(sum(data)))
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
