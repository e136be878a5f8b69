//! Generic UDP Encapsulation (draft-ietf-intarea-gue) as IPVS sends it to a TUN real
//! server (`ipvs_gue_encap` in the kernel's net/netfilter/ipvs/ip_vs_xmit.c): a UDP header
//! to the real server's GUE port, then a 4-byte GUE header (variant 0, no control flag, no
//! optional fields) whose protocol field names the inner packet (4: IPv4, 41: IPv6), then
//! the inner IP packet.
//!
//! The UDP checksum is zero for `nocsum` and the full checksum for `csum` and `remcsum`
//! (IPVS's `udp_set_csum(!check, ...)`). Remote checksum offload only adds a private
//! option when the inner packet's checksum is still to be filled in by hardware
//! (`CHECKSUM_PARTIAL`, a packet made on the director itself); a forwarded client packet,
//! and every probe, carries its full checksum, so IPVS sends it with the plain header.

use std::net::IpAddr;

use super::checksum;
use super::ipv4::protocol;

/// The UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// The GUE header without optional fields.
pub const GUE_HEADER_LEN: usize = 4;
/// Everything IPVS puts between the outer IP header and the inner packet.
pub const HEADER_LEN: usize = UDP_HEADER_LEN + GUE_HEADER_LEN;

/// The kernel's default ephemeral range (`net.ipv4.ip_local_port_range`), from which
/// `udp_flow_src_port` picks the source port by a hash of the inner flow.
pub const SOURCE_PORT_MIN: u16 = 32768;
pub const SOURCE_PORT_MAX: u16 = 60999;

/// The UDP source port for an inner packet: like the kernel, a hash of the flow (addresses
/// and the first four transport bytes, the ports) scaled into the ephemeral range, so one
/// flow always leaves from one port and flows spread over the real server's queues.
pub fn source_port(inner: &[u8]) -> u16 {
    let flow: &[u8] = match inner.first().map(|b| b >> 4) {
        // IPv4: addresses at 12..20, transport after the header (IHL words).
        Some(4) if inner.len() >= 20 => {
            let hl = usize::from(inner[0] & 0x0f) * 4;
            let end = (hl + 4).min(inner.len());
            return scale(fnv(&inner[12..20], &inner[hl.min(end)..end]));
        }
        // IPv6: addresses at 8..40, transport after the fixed header.
        Some(6) if inner.len() >= 40 => &inner[8..(44.min(inner.len()))],
        _ => inner,
    };
    scale(fnv(flow, &[]))
}

fn fnv(a: &[u8], b: &[u8]) -> u32 {
    a.iter().chain(b).fold(0x811c_9dc5u32, |h, &x| {
        (h ^ u32::from(x)).wrapping_mul(0x0100_0193)
    })
}

/// `reciprocal_scale` as the kernel does: a 32-bit hash onto the range.
fn scale(hash: u32) -> u16 {
    let span = u64::from(SOURCE_PORT_MAX - SOURCE_PORT_MIN);
    SOURCE_PORT_MIN + ((u64::from(hash) * span) >> 32) as u16
}

/// Writes the UDP and GUE headers into `buf[..HEADER_LEN]`, in front of the inner packet
/// that already fills `buf[HEADER_LEN..]`. With `checksum = Some((outer_src, outer_dst))`
/// the UDP checksum is computed over the pseudo-header and everything after it; with
/// `None` it is zero ("no checksum").
pub fn emit(
    src_port: u16,
    dst_port: u16,
    inner_protocol: u8,
    checksum: Option<(IpAddr, IpAddr)>,
    buf: &mut [u8],
) {
    let len = buf.len() as u16;
    buf[0..2].copy_from_slice(&src_port.to_be_bytes());
    buf[2..4].copy_from_slice(&dst_port.to_be_bytes());
    buf[4..6].copy_from_slice(&len.to_be_bytes());
    buf[6..8].copy_from_slice(&[0, 0]);
    // Version 0, C = 0, Hlen = 0 (no optional fields); protocol; flags 0.
    buf[8..12].copy_from_slice(&[0, inner_protocol, 0, 0]);
    if let Some((src, dst)) = checksum {
        let sum = match checksum::with_pseudo(src, dst, protocol::UDP, buf) {
            // A computed zero goes out as all ones (RFC 768): zero means "none".
            0 => 0xffff,
            s => s,
        };
        buf[6..8].copy_from_slice(&sum.to_be_bytes());
    }
}

/// A GUE packet quoted in an ICMP error (after the outer IP header): its UDP destination
/// port, the inner protocol and what is quoted of the inner packet. `None` when it is not
/// shaped as IPVS's GUE (too short, another GUE variant, options, a control message, or
/// an inner protocol other than IPv4 / IPv6).
pub fn quoted_inner(rest: &[u8]) -> Option<(u16, u8, &[u8])> {
    if rest.len() < HEADER_LEN {
        return None;
    }
    let dst_port = u16::from_be_bytes([rest[2], rest[3]]);
    let (first, proto) = (rest[8], rest[9]);
    // Version 0 and C = 0 in the top three bits; Hlen in the low five.
    if first != 0 || !matches!(proto, protocol::IPIP | protocol::IPV6) {
        return None;
    }
    Some((dst_port, proto, &rest[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nocsum_header_is_udp_with_zero_checksum_then_gue_naming_the_inner_protocol() {
        let mut b = vec![0xa5; HEADER_LEN + 3];
        b[HEADER_LEN..].copy_from_slice(&[0x45, 1, 2]);
        emit(40000, 6080, protocol::IPIP, None, &mut b);
        assert_eq!(
            b[..HEADER_LEN],
            [0x9c, 0x40, 0x17, 0xc0, 0, 15, 0, 0, 0, 4, 0, 0]
        );
        emit(40000, 6080, protocol::IPV6, None, &mut b);
        assert_eq!(b[9], 41);
    }

    #[test]
    fn csum_header_checksums_to_zero_with_the_pseudo_header() {
        for (src, dst) in [("192.0.2.1", "192.0.2.11"), ("2001:db8::1", "2001:db8::11")] {
            let mut b = vec![0xa5; HEADER_LEN + 5];
            b[HEADER_LEN..].copy_from_slice(&[0x45, 1, 2, 3, 4]);
            emit(
                40000,
                6080,
                protocol::IPIP,
                Some((ip(src), ip(dst))),
                &mut b,
            );
            assert_ne!(b[6..8], [0, 0]);
            assert_eq!(
                checksum::with_pseudo(ip(src), ip(dst), protocol::UDP, &b),
                0
            );
        }
    }

    #[test]
    fn source_port_is_per_flow_and_in_the_ephemeral_range() {
        let mut a = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        a.extend([192, 0, 2, 50, 198, 51, 100, 100, 0x9c, 0x41, 0, 80]);
        let mut other_ident = a.clone();
        other_ident[4] = 9;
        let mut other_port = a.clone();
        other_port[21] = 0x42;
        let p = source_port(&a);
        assert!((SOURCE_PORT_MIN..=SOURCE_PORT_MAX).contains(&p), "{p}");
        assert_eq!(
            source_port(&other_ident),
            p,
            "the IP id is not part of the flow"
        );
        assert_ne!(source_port(&other_port), p);
    }

    #[test]
    fn quoted_gue_yields_port_protocol_and_inner_bytes() {
        let b = [0x9c, 0x40, 0x17, 0xc0, 0, 15, 0, 0, 0, 41, 0, 0, 0x60, 1];
        assert_eq!(quoted_inner(&b), Some((6080, 41, &[0x60, 1][..])));
        let mut control = b;
        control[8] = 0x80;
        assert_eq!(quoted_inner(&control), None);
        let mut udp_proto = b;
        udp_proto[9] = 17;
        assert_eq!(quoted_inner(&udp_proto), None);
        assert_eq!(quoted_inner(&b[..11]), None);
    }
}
