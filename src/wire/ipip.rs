//! IP-in-IP encapsulation as IPVS's tunnelling method sends it: an outer IPv4 or IPv6
//! header to the real server around the whole inner packet. IPv4 in IPv4 is protocol 4
//! (RFC 2003); IPv6 inside is protocol / next header 41 and IPv4 inside an IPv6 header is
//! next header 4 (RFC 2473). The header itself is written by [`super::tunnel`], with the
//! GUE and GRE ones.

use std::net::IpAddr;

use super::ipv4::{self, protocol};
use super::ipv6;

/// TTL / hop limit of the outer header.
pub const OUTER_HOP_LIMIT: u8 = 64;

/// The protocol number that announces an inner packet whose destination is `inner_dst`.
pub fn inner_protocol(inner_dst: IpAddr) -> u8 {
    if inner_dst.is_ipv4() {
        protocol::IPIP
    } else {
        protocol::IPV6
    }
}

/// The outer header's length for a tunnel to `outer_dst`.
pub fn outer_header_len(outer_dst: IpAddr) -> usize {
    if outer_dst.is_ipv4() {
        ipv4::HEADER_LEN
    } else {
        ipv6::HEADER_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::ethertype;
    use crate::wire::tunnel::{emit_outer, Encap};
    use crate::wire::{Result, WireError};

    /// IPIP is the tunnel module's `Encap::Ipip`.
    fn encapsulate(
        src: IpAddr,
        dst: IpAddr,
        ident: u16,
        inner_dst: IpAddr,
        inner: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        crate::wire::tunnel::encapsulate(Encap::Ipip, src, dst, ident, inner_dst, inner)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_outer_header_announces_protocol_4_or_41() {
        let (etype, b) = encapsulate(
            ip("192.0.2.2"),
            ip("192.0.2.11"),
            7,
            ip("192.0.2.20"),
            &[1, 2],
        )
        .unwrap();
        assert_eq!(etype, ethertype::IPV4);
        let expected_header: [u8; 20] = [
            0x45, 0, 0, 22, 0, 7, 0x40, 0, 64, 4, 0xb6, 0xcf, 192, 0, 2, 2, 192, 0, 2, 11,
        ];
        assert_eq!(b[..20], expected_header);
        assert_eq!(&b[20..], &[1, 2]);
        let (_, b) = encapsulate(
            ip("192.0.2.2"),
            ip("192.0.2.11"),
            7,
            ip("2001:db8::20"),
            &[],
        )
        .unwrap();
        assert_eq!(b[9], 41);
    }

    #[test]
    fn ipv6_outer_header_announces_next_header_41_or_4() {
        let (etype, b) = encapsulate(
            ip("2001:db8::2"),
            ip("2001:db8::b"),
            7,
            ip("192.0.2.20"),
            &[9],
        )
        .unwrap();
        assert_eq!(etype, ethertype::IPV6);
        assert_eq!(&b[..8], &[0x60, 0, 0, 0, 0, 1, 4, 64]);
        let (_, b) = encapsulate(
            ip("2001:db8::2"),
            ip("2001:db8::b"),
            7,
            ip("2001:db8::20"),
            &[],
        )
        .unwrap();
        assert_eq!(b[6], 41);
    }

    #[test]
    fn mixed_outer_families_are_refused() {
        assert_eq!(
            encapsulate(ip("192.0.2.2"), ip("2001:db8::b"), 0, ip("192.0.2.20"), &[]),
            Err(WireError::Unsupported)
        );
    }

    #[test]
    fn outer_header_in_place_is_the_encapsulated_one() {
        for (src, dst, inner) in [
            ("192.0.2.2", "192.0.2.11", "2001:db8::20"),
            ("2001:db8::2", "2001:db8::b", "192.0.2.20"),
        ] {
            let (etype, whole) = encapsulate(ip(src), ip(dst), 9, ip(inner), &[1, 2, 3]).unwrap();
            let head = outer_header_len(ip(dst));
            let mut buf = vec![0xa5; head + 3];
            buf[head..].copy_from_slice(&[1, 2, 3]);
            assert_eq!(
                emit_outer(Encap::Ipip, ip(src), ip(dst), 9, ip(inner), &mut buf),
                Ok(etype)
            );
            assert_eq!(buf, whole);
        }
    }
}
