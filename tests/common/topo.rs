//! Director and real-server topologies built from [`super::netns`]: one bridge
//! (192.0.2.0/24, 2001:db8::/64), a director at host 2 and real servers at host N
//! (192.0.2.N, 2001:db8::N in hex), each real server set up for one [`Scenario`] of the
//! issues (good, no VIP, no listener, forwarder, ARP-answering, VIP on eth0, hardened,
//! moved). Everything goes with its namespace on drop.

use std::net::{IpAddr, TcpListener};
use std::ops::Deref;

use super::netns::{Lan, Netns};

/// The VIPs every scenario uses.
pub const VIP4: &str = "192.0.2.20";
pub const VIP6: &str = "2001:db8::20";
/// The director: host 2 on the bridge, with this MAC.
pub const DIRECTOR_HOST: u8 = 2;
pub const DIRECTOR_MAC: &str = "02:00:00:00:00:02";
/// The MAC a moved real server's old NIC had (the director's STALE entry names it).
pub const OLD_MAC: &str = "02:00:00:00:00:99";

/// `192.0.2.host/24` and `2001:db8::host/64` (host in hex, no DAD) on `ifname`.
pub fn address(ns: &Netns, ifname: &str, host: u8) {
    ns.ip(&format!("addr add 192.0.2.{host}/24 dev {ifname}"));
    ns.ip(&format!(
        "addr add 2001:db8::{host:x}/64 dev {ifname} nodad"
    ));
}

/// Adds `vip` (/32 or /128, no DAD) to `dev`.
pub fn add_vip(ns: &Netns, vip: &str, dev: &str) {
    let ip: IpAddr = vip.parse().expect("a VIP");
    if ip.is_ipv4() {
        ns.ip(&format!("addr add {vip}/32 dev {dev}"));
    } else {
        ns.ip(&format!("addr add {vip}/128 dev {dev} nodad"));
    }
}

/// [`VIP4`] and [`VIP6`] on `dev` (`lo` for a DR real server or a director holding them).
pub fn add_vips(ns: &Netns, dev: &str) {
    add_vip(ns, VIP4, dev);
    add_vip(ns, VIP6, dev);
}

/// Forwarding on, and the VIPs routed back to the director: the original report's trap.
pub fn forward_vips(ns: &Netns) {
    ns.sysctl("net.ipv4.ip_forward", "1");
    ns.sysctl("net.ipv6.conf.all.forwarding", "1");
    ns.ip(&format!("route add {VIP4}/32 via 192.0.2.{DIRECTOR_HOST}"));
    ns.ip(&format!(
        "route add {VIP6}/128 via 2001:db8::{DIRECTOR_HOST:x}"
    ));
}

/// A TCP listener on `addr:port` inside `ns`; the kernel completes handshakes while it
/// lives.
pub fn listen(ns: &Netns, addr: &str, port: u16) -> TcpListener {
    let ip: IpAddr = addr.parse().expect("an address");
    ns.in_ns(|| TcpListener::bind((ip, port)).expect("listen"))
}

/// Loads an nftables ruleset into `ns` (`nft -f -`); the rules go with the namespace.
pub fn firewall(ns: &Netns, rules: &str) {
    use std::io::Write;
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft (Debian package nftables)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(rules.as_bytes())
        .expect("write the ruleset");
    let status = child.wait().expect("nft exits");
    assert!(status.success(), "nft rejected: {rules}");
}

/// Drops (or rejects: `verdict`) every ICMP and ICMPv6 echo request, as hardened servers
/// do.
pub fn drop_echo(ns: &Netns, verdict: &str) {
    firewall(
        ns,
        &format!(
            "table inet hardened {{\n chain input {{\n type filter hook input priority 0;\n \
             icmp type echo-request {verdict}\n icmpv6 type echo-request {verdict}\n }}\n}}\n"
        ),
    );
}

/// A STALE neighbour entry on `dir`'s eth0 for `addr` with `mac` (a NIC since replaced).
pub fn stale_neighbour(dir: &Netns, addr: &str, mac: &str) {
    dir.ip(&format!(
        "neigh replace {addr} lladdr {mac} dev eth0 nud stale"
    ));
}

/// The director on `lan`: eth0 with [`DIRECTOR_MAC`], 192.0.2.2 and 2001:db8::2.
pub fn director(lan: &Lan) -> Netns {
    let ns = Netns::new("dir");
    lan.attach(&ns, "eth0", DIRECTOR_MAC);
    address(&ns, "eth0", DIRECTOR_HOST);
    ns
}

/// How a real server is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// VIPs on lo, arp_ignore=1, arp_announce=2, listeners on the VIPs' ports.
    Good,
    /// No VIP at all.
    NoVip,
    /// VIPs on lo but nothing listening.
    NoListener,
    /// No VIP; forwards the VIP back to the director (the original report's trap).
    Forwarder,
    /// VIP on lo with listeners, but arp_ignore=0: answers ARP for the VIP.
    ArpAnswering,
    /// VIPs on eth0 (with listeners): answers ARP and neighbour solicitation.
    VipOnEth0,
    /// Good, but its firewall drops every echo request (ICMP and ICMPv6).
    Hardened,
    /// Good, but the director's neighbour entry for it is STALE with [`OLD_MAC`] (set by
    /// [`Site`]; a lone real server is just good).
    Moved,
}

/// A real server in its namespace (reach the namespace through `Deref`), with the
/// listeners its scenario has.
pub struct RealServer {
    pub listeners: Vec<TcpListener>,
    pub ns: Netns,
}

impl Deref for RealServer {
    type Target = Netns;

    fn deref(&self) -> &Netns {
        &self.ns
    }
}

/// The MAC of real server `host` on a [`Site`]: 02:00:00:00:01:host.
pub fn real_server_mac(host: u8) -> String {
    format!("02:00:00:00:01:{host:02x}")
}

impl RealServer {
    /// A new namespace plugged into `lan` with `mac`, set up as host `host` in
    /// `scenario`, listening on `ports` when the scenario listens.
    pub fn attach(lan: &Lan, host: u8, mac: &str, scenario: Scenario, ports: &[u16]) -> Self {
        let ns = Netns::new("rs");
        lan.attach(&ns, "eth0", mac);
        RealServer::set_up(ns, "eth0", host, scenario, ports)
    }

    /// Sets up `ns`, whose `ifname` is already plugged in, as host `host` in `scenario`.
    pub fn set_up(ns: Netns, ifname: &str, host: u8, scenario: Scenario, ports: &[u16]) -> Self {
        let ignore = if scenario == Scenario::ArpAnswering {
            "0"
        } else {
            "1"
        };
        ns.arp_sysctls(ifname, ignore);
        address(&ns, ifname, host);
        let vip_dev = match scenario {
            Scenario::NoVip | Scenario::Forwarder => None,
            Scenario::VipOnEth0 => Some(ifname),
            _ => Some("lo"),
        };
        if let Some(dev) = vip_dev {
            add_vips(&ns, dev);
        }
        if scenario == Scenario::Forwarder {
            forward_vips(&ns);
        }
        if scenario == Scenario::Hardened {
            drop_echo(&ns, "drop");
        }
        let mut listeners = Vec::new();
        if vip_dev.is_some() && scenario != Scenario::NoListener {
            for vip in [VIP4, VIP6] {
                for &port in ports {
                    listeners.push(listen(&ns, vip, port));
                }
            }
        }
        RealServer { listeners, ns }
    }
}

/// A director and one real server (host 11 = 0x0b, `rs_mac`) on a bridge.
pub struct Pair {
    pub rs: RealServer,
    pub dir: Netns,
    pub lan: Lan,
}

impl Pair {
    pub fn new(rs_mac: &str, scenario: Scenario, ports: &[u16]) -> Pair {
        let lan = Lan::new();
        let dir = director(&lan);
        let rs = RealServer::attach(&lan, 11, rs_mac, scenario, ports);
        Pair { rs, dir, lan }
    }
}

/// A director and one real server (host 11) joined by a cable through a relay
/// namespace instead of a bridge: start a [`super::netns::Relay`] on `relay` between
/// `ra` and `rb` to drop or delay frames.
pub struct Cabled {
    pub rs: RealServer,
    pub dir: Netns,
    pub relay: Netns,
    pub ra: String,
    pub rb: String,
}

impl Cabled {
    pub fn new(rs_mac: &str, scenario: Scenario, ports: &[u16]) -> Cabled {
        let relay = Netns::new("relay");
        let dir = Netns::new("dir");
        let rs = Netns::new("rs");
        let (ra, rb) =
            Lan::cable_through(&relay, (&dir, "eth0", DIRECTOR_MAC), (&rs, "eth0", rs_mac));
        address(&dir, "eth0", DIRECTOR_HOST);
        let rs = RealServer::set_up(rs, "eth0", 11, scenario, ports);
        Cabled {
            rs,
            dir,
            relay,
            ra,
            rb,
        }
    }
}

/// A director and real servers `(host, scenario)` (MACs by [`real_server_mac`]) on one
/// bridge, each listening on `ports`; [`Scenario::Moved`] servers have a STALE entry
/// with [`OLD_MAC`] on the director.
pub struct Site {
    pub servers: Vec<RealServer>,
    pub dir: Netns,
    pub lan: Lan,
}

impl Site {
    pub fn new(hosts: &[(u8, Scenario)], ports: &[u16]) -> Site {
        let lan = Lan::new();
        let dir = director(&lan);
        let servers = hosts
            .iter()
            .map(|&(h, s)| RealServer::attach(&lan, h, &real_server_mac(h), s, ports))
            .collect();
        for &(h, _) in hosts.iter().filter(|(_, s)| *s == Scenario::Moved) {
            for rip in [format!("192.0.2.{h}"), format!("2001:db8::{h:x}")] {
                stale_neighbour(&dir, &rip, OLD_MAC);
            }
        }
        Site { servers, dir, lan }
    }
}
