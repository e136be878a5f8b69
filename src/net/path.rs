//! The path to one real server, as the kernel's route and neighbour tables (or the
//! command line) give it: what every check needs to frame a packet for it.

use std::net::IpAddr;

use crate::config::{ForwardingMethod, Tunnel, TunnelChecksum, TunnelType};
use crate::wire::tunnel::Encap;
use crate::wire::MacAddr;

/// How frames reach one real server: out of which interface, from which of the
/// director's addresses and MAC, to which next-hop MAC, and forwarded how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPath {
    /// The egress interface's name and index.
    pub iface: String,
    pub ifindex: u32,
    /// The egress interface's own MAC: the frames' source.
    pub our_mac: MacAddr,
    /// The director's address toward the real server, of the RIP's family (never a VIP):
    /// the source of a direct probe of that family and the outer source of a tunnel.
    pub src: IpAddr,
    /// The real server's own address (the tunnel's end for TUN).
    pub rip: IpAddr,
    /// DR: the real server's MAC. TUN: the MAC of the next hop toward the RIP.
    pub next_hop_mac: MacAddr,
    /// DR or TUN (NAT never reaches a path: the real server does not hold the VIP).
    pub method: ForwardingMethod,
    /// TUN: the encapsulation (IPIP, GUE or GRE) and its checksum option.
    pub encap: Tunnel,
}

impl NetPath {
    /// TUN: the outer header's (source, destination); `None` when frames go direct.
    pub fn tunnel(&self) -> Option<(IpAddr, IpAddr)> {
        (self.method == ForwardingMethod::Tunnel).then_some((self.src, self.rip))
    }

    /// Whether the real server is reached in an IP-in-IP tunnel.
    pub fn is_tunnel(&self) -> bool {
        self.method == ForwardingMethod::Tunnel
    }

    /// The tunnel's encapsulation as the wire layer writes it.
    pub fn encapsulation(&self) -> Encap {
        encapsulation(self.encap)
    }
}

/// A TUN real server's tunnel as the wire layer writes it: `csum` and `remcsum` both make
/// IPVS fill in the GUE packet's UDP checksum (remote checksum offload adds nothing for a
/// packet whose inner checksum is complete, as every probe's is).
pub fn encapsulation(t: Tunnel) -> Encap {
    let csum = t.csum != TunnelChecksum::None;
    match t.kind {
        TunnelType::Ipip => Encap::Ipip,
        TunnelType::Gue { port } => Encap::Gue { port, csum },
        TunnelType::Gre => Encap::Gre {
            csum: t.csum == TunnelChecksum::Csum,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_tunnel_has_an_outer_header() {
        let mut p = NetPath {
            iface: "eth0".into(),
            ifindex: 2,
            our_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src: "192.0.2.1".parse().unwrap(),
            rip: "198.51.100.11".parse().unwrap(),
            next_hop_mac: MacAddr([2, 0, 0, 0, 0, 0x11]),
            method: ForwardingMethod::DirectRouting,
            encap: Tunnel::default(),
        };
        assert_eq!(p.tunnel(), None);
        p.method = ForwardingMethod::Tunnel;
        assert_eq!(p.tunnel(), Some((p.src, p.rip)));
    }
}
