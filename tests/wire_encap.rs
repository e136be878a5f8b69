//! Issue 15: GUE and GRE as vipcheck writes them, byte for byte against the frames the
//! kernel's own IPVS sent to a TUN real server in the guest (fixtures/wire/, recorded by
//! tests/guest/scenarios/capture-encap.sh; see fixtures/wire/README.md), and the ICMP
//! errors that quote each encapsulation.
//!
//! Every fixture is re-encapsulated from its own inner packet and must come out the same,
//! apart from the fields that legitimately differ: the outer TTL / hop limit (IPVS copies
//! the inner packet's, vipcheck sends 64 around a TTL-1 probe) with the IPv4 header
//! checksum that covers it, and the GUE UDP source port (a hash of the flow on both
//! sides, but not the same hash). The UDP checksum is compared after re-emitting with the
//! kernel's source port, so it is ours, computed, not copied.
//!
//! The captured inner TCP checksums are not complete: the client was a namespace on the
//! same host, so its segments reached IPVS as CHECKSUM_PARTIAL and the veth never filled
//! them in. The kernel's outer checksums (GUE's UDP, GRE's) already count them as
//! completed (local checksum offload), so the test completes the inner checksum in the
//! kernel's frame first, as a NIC would have on the wire.

mod common;

use std::net::IpAddr;

use vipcheck::wire::checksum;
use vipcheck::wire::frame::{self, IcmpError, Inbound, QuotedProbe};
use vipcheck::wire::tunnel::{self, Encap};
use vipcheck::wire::{gre, gue, tcp};

const ETH: usize = 14;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/wire/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// (outer header length, outer src, outer dst, protocol, TTL offset).
fn outer(packet: &[u8]) -> (usize, IpAddr, IpAddr, u8, usize) {
    if packet[0] >> 4 == 4 {
        let a = |at: usize| IpAddr::from(<[u8; 4]>::try_from(&packet[at..at + 4]).unwrap());
        (20, a(12), a(16), packet[9], 8)
    } else {
        let a = |at: usize| IpAddr::from(<[u8; 16]>::try_from(&packet[at..at + 16]).unwrap());
        (40, a(8), a(24), packet[6], 7)
    }
}

fn inner_dst(inner: &[u8]) -> IpAddr {
    outer(inner).2
}

/// Re-encapsulates the inner packet of the kernel's frame `name` as vipcheck does and
/// compares, as the module comment says. `extra` skips private GUE fields the kernel
/// added in front of the inner packet.
fn same_as_kernel(name: &str, encap: Encap, extra: usize) -> (Vec<u8>, Vec<u8>) {
    let mut frame = fixture(name);
    let (ip_len, src, dst, _, ttl_at) = outer(&frame[ETH..]);
    let inner_at = ETH + ip_len + encap.header_len() + extra;
    complete_tcp_checksum(&mut frame[inner_at..]);
    let kernel = &frame[ETH..];
    let inner = &kernel[ip_len + encap.header_len() + extra..];
    let ident = if src.is_ipv4() {
        u16::from_be_bytes([kernel[4], kernel[5]])
    } else {
        0
    };
    let (etype, mut ours) =
        tunnel::encapsulate(encap, src, dst, ident, inner_dst(inner), inner).unwrap();
    assert_eq!(etype, u16::from_be_bytes([frame[12], frame[13]]), "{name}");
    assert_eq!(ours[ttl_at], 64, "{name}: vipcheck's outer TTL");
    ours[ttl_at] = kernel[ttl_at];
    if src.is_ipv4() {
        ours[10..12].copy_from_slice(&[0, 0]);
        let sum = checksum::of(&ours[..20]);
        ours[10..12].copy_from_slice(&sum.to_be_bytes());
    }
    if let Encap::Gue { port, csum } = encap {
        let sport = u16::from_be_bytes([kernel[ip_len], kernel[ip_len + 1]]);
        let ours_sport = u16::from_be_bytes([ours[ip_len], ours[ip_len + 1]]);
        assert!(
            (gue::SOURCE_PORT_MIN..=gue::SOURCE_PORT_MAX).contains(&ours_sport),
            "{name}: {ours_sport}"
        );
        // What `encapsulate` wrote itself, before the source port is made the kernel's:
        // the destination port and length, the GUE word, and a UDP checksum that is
        // there (and right) exactly when the tunnel asks for one.
        // (With `extra`, the kernel's remcsum option, the lengths and the GUE word differ
        // by that option: the remcsum test compares those itself.)
        let (k, o) = (&kernel[ip_len..], &ours[ip_len..]);
        assert_eq!(o[2..4], k[2..4], "{name}: destination port");
        if extra == 0 {
            assert_eq!(o.len(), k.len(), "{name}: datagram length");
            assert_eq!(o[4..6], k[4..6], "{name}: UDP length");
            assert_eq!(o[8..12], k[8..12], "{name}: GUE header");
        }
        let summed = o[6..8] != [0, 0];
        assert_eq!(summed, csum, "{name}: UDP checksum present");
        if summed {
            assert_eq!(
                checksum::with_pseudo(src, dst, 17, o),
                0,
                "{name}: our checksum"
            );
        }
        let proto = ours[ip_len + 9];
        gue::emit(
            sport,
            port,
            proto,
            csum.then_some((src, dst)),
            &mut ours[ip_len..],
        );
    }
    (kernel.to_vec(), ours)
}

/// Fills in the TCP checksum of the IP packet `inner` (IPv4 or IPv6, no options).
fn complete_tcp_checksum(inner: &mut [u8]) {
    let (ip_len, src, dst, proto, _) = outer(inner);
    assert_eq!(proto, 6);
    tcp::fill_checksum(src, dst, &mut inner[ip_len..]);
}

#[test]
fn gue_without_checksum_is_byte_exact_with_ipvs_ipv4_and_ipv6() {
    for name in ["ipvs-gue-ipv4", "ipvs-gue-ipv6"] {
        let encap = Encap::Gue {
            port: 6080,
            csum: false,
        };
        let (kernel, ours) = same_as_kernel(name, encap, 0);
        assert_eq!(ours, kernel, "{name}");
    }
}

#[test]
fn gue_with_checksum_is_byte_exact_with_ipvs_ipv4_and_ipv6() {
    for name in ["ipvs-gue-csum-ipv4", "ipvs-gue-csum-ipv6"] {
        let encap = Encap::Gue {
            port: 6080,
            csum: true,
        };
        let (kernel, ours) = same_as_kernel(name, encap, 0);
        assert_eq!(ours, kernel, "{name}");
    }
}

#[test]
fn gre_with_and_without_checksum_is_byte_exact_with_ipvs_ipv4_and_ipv6() {
    for (name, csum) in [
        ("ipvs-gre-ipv4", false),
        ("ipvs-gre-ipv6", false),
        ("ipvs-gre-csum-ipv4", true),
        ("ipvs-gre-csum-ipv6", true),
    ] {
        let (kernel, ours) = same_as_kernel(name, Encap::Gre { csum }, 0);
        assert_eq!(ours, kernel, "{name}");
    }
}

/// The capture's client sat in another namespace, so its segments reached IPVS with the
/// checksum still to be filled in (CHECKSUM_PARTIAL), and `remcsum` added the private
/// remote-checksum option (start: the inner TCP header; offset: its checksum). A probe's inner
/// checksum is complete, for which IPVS adds nothing: vipcheck sends the `csum` form,
/// which matches the kernel's frame everywhere but the option, the UDP length it adds to
/// and the UDP checksum.
#[test]
fn gue_remcsum_is_the_csum_form_for_a_complete_inner_checksum() {
    for name in ["ipvs-gue-remcsum-ipv4", "ipvs-gue-remcsum-ipv6"] {
        let encap = Encap::Gue {
            port: 6080,
            csum: true,
        };
        let (kernel, ours) = same_as_kernel(name, encap, 8);
        let ip_len = outer(&kernel).0;
        let udp = ip_len;
        // The kernel's GUE header: Hlen 2 (8 bytes of options), the private-data flag,
        // then the remote checksum flag and start / offset.
        assert_eq!(
            kernel[udp + 8..udp + 12],
            [2, kernel[udp + 9], 0, 1],
            "{name}"
        );
        let start = outer(&kernel[udp + 20..]).0 as u8;
        assert_eq!(
            kernel[udp + 12..udp + 20],
            [0x80, 0, 0, 0, 0, start, 0, start + 16]
        );
        assert_eq!(ours[udp + 8..udp + 12], [0, kernel[udp + 9], 0, 0]);
        // Everything else but the lengths and checksums (and the option) is the same.
        assert_eq!(ours[udp..udp + 4], kernel[udp..udp + 4], "{name}: ports");
        assert_eq!(ours[udp + 12..], kernel[udp + 20..], "{name}: inner packet");
        let ulen = |b: &[u8]| usize::from(u16::from_be_bytes([b[udp + 4], b[udp + 5]]));
        assert_eq!(ulen(&ours) + 8, ulen(&kernel));
        let (src, dst) = (outer(&kernel).1, outer(&kernel).2);
        assert_eq!(checksum::with_pseudo(src, dst, 17, &ours[udp..]), 0);
    }
}

/// A kernel frame turned into the ICMP error a real server sends about it: `(type, code)`
/// from `from`, quoting the frame's IP packet (as much as fits, like Linux).
fn icmp_error_about(packet: &[u8], kind: (u8, u8)) -> Vec<u8> {
    let (_, src, dst, _, _) = outer(packet);
    let quote = &packet[..packet.len().min(548)];
    let mut icmp = vec![kind.0, kind.1, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(quote);
    let (mut b, total) = match (dst, src) {
        (IpAddr::V4(from), IpAddr::V4(to)) => {
            let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
            h.extend(from.octets());
            h.extend(to.octets());
            let total = (20 + icmp.len()) as u16;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            let sum = checksum::of(&h);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            let sum = checksum::of(&icmp);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            (h, 0x0800u16)
        }
        (IpAddr::V6(from), IpAddr::V6(to)) => {
            let mut h = vec![0x60, 0, 0, 0, 0, 0, 58, 64];
            h[4..6].copy_from_slice(&(icmp.len() as u16).to_be_bytes());
            h.extend(from.octets());
            h.extend(to.octets());
            let sum = checksum::with_pseudo(dst, src, 58, &icmp);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            (h, 0x86dd)
        }
        _ => unreachable!(),
    };
    b.extend(icmp);
    let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    frame.extend(total.to_be_bytes());
    frame.extend(b);
    frame
}

#[test]
fn icmp_errors_quoting_gue_and_gre_show_the_inner_probe() {
    for (name, kind, error) in [
        ("ipvs-gue-ipv4", (3, 3), IcmpError::PortUnreachable),
        ("ipvs-gue-csum-ipv6", (1, 4), IcmpError::PortUnreachable),
        ("ipvs-gre-ipv4", (3, 2), IcmpError::ProtocolUnreachable),
        ("ipvs-gre-csum-ipv4", (3, 3), IcmpError::PortUnreachable),
        ("ipvs-gre-ipv6", (4, 1), IcmpError::NextHeaderUnrecognized),
    ] {
        let frame = fixture(name);
        let packet = &frame[ETH..];
        let (ip_len, src, dst, proto, _) = outer(packet);
        let inner_at = ip_len
            + if proto == gre::PROTOCOL {
                gre::header_len(packet[ip_len] & 0x80 != 0)
            } else {
                gue::HEADER_LEN
            };
        let inner = &packet[inner_at..];
        let rx = frame::parse(&icmp_error_about(packet, kind)).unwrap();
        let Inbound::IcmpError {
            from,
            error: e,
            quoted,
            ..
        } = rx.inbound
        else {
            panic!("{name}: {:?}", rx.inbound);
        };
        assert_eq!((from, e), (dst, error), "{name}");
        assert_eq!((quoted.src, quoted.dst, quoted.protocol), (src, dst, proto));
        let QuotedProbe::Tunnelled(q) = quoted.probe else {
            panic!("{name}: {:?}", quoted.probe);
        };
        assert_eq!(q.dst, inner_dst(inner), "{name}");
        assert!(matches!(q.probe, QuotedProbe::Tcp { dst_port, .. } if dst_port > 8000));
    }
}

#[test]
fn plain_udp_is_not_taken_for_gue() {
    // A DNS query quoted in a port unreachable: not GUE, so nothing tunnelled.
    let mut packet = vec![
        0x45, 0, 0, 41, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 11,
    ];
    packet.extend([0xc0, 0x00, 0, 53, 0, 21, 0, 0]);
    packet.extend([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    let sum = checksum::of(&packet[..20]);
    packet[10..12].copy_from_slice(&sum.to_be_bytes());
    let rx = frame::parse(&icmp_error_about(&packet, (3, 3))).unwrap();
    let Inbound::IcmpError { quoted, .. } = rx.inbound else {
        panic!("{:?}", rx.inbound);
    };
    assert!(!matches!(quoted.probe, QuotedProbe::Tunnelled(_)));
}
