//! The kernel's view of the network, asked over rtnetlink: the route to the real server
//! (egress interface, preferred source, gateway), the neighbour table, an interface's
//! addresses, name and MAC. One request, its answers, over the netlink core
//! ([`super::netlink`]), each by the caller's deadline.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use super::netlink::{self, attrs, ne_u32, MessageBuilder, NLM_F_DUMP};
use crate::wire::MacAddr;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
const RTA_VIA: u16 = 18;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;

const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;

/// `rtm_type` values.
pub const RTN_UNICAST: u8 = 1;
pub const RTN_LOCAL: u8 = 2;

/// Address flags that make an address unusable as a source.
const IFA_F_TENTATIVE: u32 = 0x40;
const IFA_F_DADFAILED: u32 = 0x08;

/// Neighbour states whose MAC can be used: REACHABLE, STALE, DELAY, PROBE, PERMANENT.
/// (INCOMPLETE, FAILED and NOARP entries cannot.)
pub const NUD_USABLE: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x80;

/// Of those, the states the kernel vouches for now: REACHABLE and PERMANENT. A STALE,
/// DELAY or PROBE entry may hold the MAC of a NIC that has since been replaced.
pub const NUD_CONFIRMED: u16 = 0x02 | 0x80;

/// A usable neighbour entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub mac: MacAddr,
    /// REACHABLE or PERMANENT: no need to confirm the MAC before trusting silence.
    pub confirmed: bool,
}

/// What the kernel answers to "route get RIP".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub oif: u32,
    pub prefsrc: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
    pub kind: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// RT_SCOPE_*: 0 universe, 253 link, 254 host.
    pub scope: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<MacAddr>,
}

fn family(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn ip_from(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
        _ => None,
    }
}

/// Sends one request on a fresh route socket and returns the payloads of the answers of
/// type `want`, all by `deadline`.
fn request(
    name: &str,
    kind: u16,
    flags: u16,
    want: u16,
    deadline: Instant,
    body: impl FnOnce(&mut MessageBuilder),
) -> io::Result<Vec<Vec<u8>>> {
    let mut sock = netlink::Socket::open(libc::NETLINK_ROUTE)?;
    Ok(sock
        .request(name, kind, flags, deadline, body)?
        .into_iter()
        .filter(|a| a.kind == want)
        .map(|a| a.payload)
        .collect())
}

/// `ip route get DST [oif IF]`: the route the kernel would use to reach `dst`.
pub fn route_get(dst: IpAddr, oif: Option<u32>, deadline: Instant) -> io::Result<Route> {
    // struct rtmsg: family, destination prefix length, then zeros.
    let mut rtmsg = [0u8; 12];
    rtmsg[0] = family(dst);
    rtmsg[1] = if dst.is_ipv4() { 32 } else { 128 };
    let answers = request(
        "RTM_GETROUTE",
        RTM_GETROUTE,
        0,
        RTM_NEWROUTE,
        deadline,
        |m| {
            m.header(&rtmsg).attr(RTA_DST, &ip_bytes(dst));
            if let Some(oif) = oif {
                m.attr_u32(RTA_OIF, oif);
            }
        },
    )?;
    answers
        .first()
        .and_then(|m| parse_route(m))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no route in the answer"))
}

/// An RTM_NEWROUTE payload: `struct rtmsg`, then attributes.
fn parse_route(msg: &[u8]) -> Option<Route> {
    let mut route = Route {
        oif: 0,
        prefsrc: None,
        gateway: None,
        kind: *msg.get(7)?,
    };
    for (kind, data) in attrs(msg.get(12..)?) {
        match kind {
            RTA_OIF => route.oif = ne_u32(data).unwrap_or(0),
            RTA_PREFSRC => route.prefsrc = ip_from(data),
            RTA_GATEWAY => route.gateway = ip_from(data),
            RTA_VIA if data.len() > 2 => route.gateway = ip_from(&data[2..]),
            _ => {}
        }
    }
    Some(route)
}

/// The MAC the kernel's neighbour table holds for `addr` on `ifindex`, if its entry is
/// in a usable state. One entry is asked for ([`NeighbourQuery::Entry`], `ip neigh
/// get`); a kernel without that (before 4.20) is asked for its whole table instead
/// ([`NeighbourQuery::Table`]), which on a director with a thousand real servers is a
/// thousand entries for each one looked up.
pub fn neighbor(ifindex: u32, addr: IpAddr, deadline: Instant) -> io::Result<Option<Neighbour>> {
    match neighbor_by(NeighbourQuery::Entry, ifindex, addr, deadline) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)) => {
            neighbor_by(NeighbourQuery::Table, ifindex, addr, deadline)
        }
        got => got,
    }
}

/// How [`neighbor_by`] asks the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighbourQuery {
    /// The single get (RTM_GETNEIGH for the address, Linux 4.20 and later); an error
    /// (EOPNOTSUPP or EINVAL) on a kernel without it.
    Entry,
    /// A dump of the whole table, searched here.
    Table,
}

/// [`neighbor`] asked by `query` alone: the usable entry for `addr` on `ifindex`; none
/// when the kernel has no entry (ENOENT).
pub fn neighbor_by(
    query: NeighbourQuery,
    ifindex: u32,
    addr: IpAddr,
    deadline: Instant,
) -> io::Result<Option<Neighbour>> {
    let whole_table = query == NeighbourQuery::Table;
    // struct ndmsg: family, padding, ifindex, state, flags, type.
    let mut ndmsg = [0u8; 12];
    ndmsg[0] = family(addr);
    ndmsg[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    let flags = if whole_table { NLM_F_DUMP } else { 0 };
    let answers = request(
        "RTM_GETNEIGH",
        RTM_GETNEIGH,
        flags,
        RTM_NEWNEIGH,
        deadline,
        |m| {
            m.header(&ndmsg);
            if !whole_table {
                m.attr(NDA_DST, &ip_bytes(addr));
            }
        },
    );
    match answers {
        Ok(answers) => Ok(answers
            .iter()
            .find_map(|m| parse_neighbour(m, ifindex, addr))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An RTM_NEWNEIGH payload (`struct ndmsg`, then attributes), when it is a usable entry
/// for `addr` on `ifindex`.
fn parse_neighbour(msg: &[u8], ifindex: u32, addr: IpAddr) -> Option<Neighbour> {
    let index = msg.get(4..8).and_then(ne_u32)?;
    let state = u16::from_ne_bytes([*msg.get(8)?, *msg.get(9)?]);
    if index != ifindex || state & NUD_USABLE == 0 {
        return None;
    }
    let mut dst = None;
    let mut mac = None;
    for (kind, data) in attrs(msg.get(12..)?) {
        match kind {
            NDA_DST => dst = ip_from(data),
            NDA_LLADDR => mac = MacAddr::from_slice(data),
            _ => {}
        }
    }
    let mac = mac.filter(|m| *m != MacAddr::ZERO && dst == Some(addr))?;
    Some(Neighbour {
        mac,
        confirmed: state & NUD_CONFIRMED != 0,
    })
}

/// The usable (not tentative, not failed DAD) addresses of `ifindex`.
pub fn addresses(ifindex: u32, deadline: Instant) -> io::Result<Vec<IfAddr>> {
    // struct ifaddrmsg, all zeros: every family, every interface (filtered below).
    let answers = request(
        "RTM_GETADDR",
        RTM_GETADDR,
        NLM_F_DUMP,
        RTM_NEWADDR,
        deadline,
        |m| {
            m.header(&[0u8; 8]);
        },
    )?;
    let mut out = Vec::new();
    for msg in answers {
        if msg.len() < 8 {
            continue;
        }
        let index = ne_u32(&msg[4..8]).unwrap_or(0);
        if index != ifindex {
            continue;
        }
        let mut flags = u32::from(msg[2]);
        let mut local = None;
        let mut address = None;
        for (kind, data) in attrs(&msg[8..]) {
            match kind {
                IFA_LOCAL => local = ip_from(data),
                IFA_ADDRESS => address = ip_from(data),
                IFA_FLAGS => flags = ne_u32(data).unwrap_or(flags),
                _ => {}
            }
        }
        if flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) != 0 {
            continue;
        }
        // IFA_LOCAL is the address itself on point-to-point links; IFA_ADDRESS otherwise.
        if let Some(addr) = local.or(address) {
            out.push(IfAddr {
                addr,
                prefix_len: msg[1],
                scope: msg[3],
            });
        }
    }
    Ok(out)
}

/// Name and MAC of the interface `index`.
pub fn link(index: u32, deadline: Instant) -> io::Result<Link> {
    // struct ifinfomsg: family, padding, type, index, flags, change.
    let mut ifinfomsg = [0u8; 16];
    ifinfomsg[4..8].copy_from_slice(&(index as i32).to_ne_bytes());
    let answers = request("RTM_GETLINK", RTM_GETLINK, 0, RTM_NEWLINK, deadline, |m| {
        m.header(&ifinfomsg);
    })?;
    let msg = answers
        .first()
        .filter(|m| m.len() >= 16)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such interface"))?;
    let mut link = Link {
        index,
        name: String::new(),
        mac: None,
    };
    for (kind, data) in attrs(&msg[16..]) {
        match kind {
            IFLA_IFNAME => {
                link.name = String::from_utf8_lossy(data.split(|&b| b == 0).next().unwrap_or(&[]))
                    .into_owned()
            }
            IFLA_ADDRESS => link.mac = MacAddr::from_slice(data),
            _ => {}
        }
    }
    Ok(link)
}

/// The index of the interface called `name`, if there is one.
pub fn index_of(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn loopback_route_is_local_and_lo_is_index_1() {
        // Every network namespace has lo with 127.0.0.1, and these lookups need no
        // privilege.
        match route_get("127.0.0.1".parse().unwrap(), None, soon()) {
            Ok(r) => assert_eq!(r.kind, RTN_LOCAL),
            Err(e) => {
                println!("skipped: netlink unavailable ({e})");
                return;
            }
        }
        let lo = link(1, soon()).unwrap();
        assert_eq!(lo.name, "lo");
        assert_eq!(index_of("lo"), Some(1));
        let addrs = addresses(1, soon()).unwrap();
        assert!(
            addrs
                .iter()
                .any(|a| a.addr == IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "{addrs:?}"
        );
    }

    /// An answer's payload: the family header and attributes as the kernel frames them.
    fn payload(header: &[u8], attrs: impl FnOnce(&mut MessageBuilder)) -> Vec<u8> {
        let mut m = MessageBuilder::new(RTM_NEWNEIGH, 0, 1);
        m.header(header);
        attrs(&mut m);
        m.finish()[netlink::HEADER_LEN..].to_vec()
    }

    fn ndmsg(ifindex: u32, state: u16) -> [u8; 12] {
        let mut h = [0u8; 12];
        h[0] = libc::AF_INET as u8;
        h[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        h[8..10].copy_from_slice(&state.to_ne_bytes());
        h
    }

    #[test]
    fn the_neighbour_dump_yields_the_usable_entry_for_the_address() {
        const REACHABLE: u16 = 0x02;
        const STALE: u16 = 0x04;
        const FAILED: u16 = 0x20;
        let rs: IpAddr = "192.0.2.11".parse().unwrap();
        let mac = [2, 0, 0, 0, 0, 0x0b];
        let entry = |ifindex, state, dst: &str, lladdr: &[u8]| {
            let dst: IpAddr = dst.parse().unwrap();
            payload(&ndmsg(ifindex, state), |m| {
                m.attr(NDA_DST, &ip_bytes(dst)).attr(NDA_LLADDR, lladdr);
            })
        };
        let dump = [
            entry(3, REACHABLE, "192.0.2.12", &mac),
            entry(4, REACHABLE, "192.0.2.11", &mac),
            entry(3, FAILED, "192.0.2.11", &mac),
            entry(3, REACHABLE, "192.0.2.11", &[0; 6]),
            entry(3, STALE, "192.0.2.11", &mac),
        ];
        let found: Vec<Neighbour> = dump
            .iter()
            .filter_map(|m| parse_neighbour(m, 3, rs))
            .collect();
        assert_eq!(
            found,
            vec![Neighbour {
                mac: MacAddr(mac),
                confirmed: false
            }]
        );
        let reachable = entry(3, REACHABLE, "192.0.2.11", &mac);
        assert_eq!(
            parse_neighbour(&reachable, 3, rs).map(|n| n.confirmed),
            Some(true)
        );
        // Cut-off entries are skipped, never a panic.
        for cut in 0..reachable.len() {
            let _ = parse_neighbour(&reachable[..cut], 3, rs);
        }
        assert_eq!(parse_neighbour(&reachable[..10], 3, rs), None);
    }

    #[test]
    fn a_route_answer_gives_interface_source_gateway_and_type() {
        let mut rtmsg = [0u8; 12];
        rtmsg[0] = libc::AF_INET as u8;
        rtmsg[7] = RTN_UNICAST;
        let msg = payload(&rtmsg, |m| {
            m.attr(RTA_DST, &[198, 51, 100, 7])
                .attr_u32(RTA_OIF, 5)
                .attr(RTA_PREFSRC, &[192, 0, 2, 1])
                .attr(RTA_GATEWAY, &[192, 0, 2, 254]);
        });
        assert_eq!(
            parse_route(&msg),
            Some(Route {
                oif: 5,
                prefsrc: Some("192.0.2.1".parse().unwrap()),
                gateway: Some("192.0.2.254".parse().unwrap()),
                kind: RTN_UNICAST,
            })
        );
        // IPv6 via an IPv4 gateway (RTA_VIA: family, then the address).
        let mut rtmsg6 = rtmsg;
        rtmsg6[0] = libc::AF_INET6 as u8;
        let mut via = (libc::AF_INET as u16).to_ne_bytes().to_vec();
        via.extend_from_slice(&[192, 0, 2, 254]);
        let msg = payload(&rtmsg6, |m| {
            m.attr(RTA_VIA, &via);
        });
        assert_eq!(
            parse_route(&msg).and_then(|r| r.gateway),
            Some("192.0.2.254".parse().unwrap())
        );
        assert_eq!(parse_route(&msg[..7]), None);
    }

    #[test]
    fn lookups_end_at_a_passed_deadline() {
        let now = Instant::now();
        let e = route_get("127.0.0.1".parse().unwrap(), None, now).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        let e = neighbor(1, "127.0.0.1".parse().unwrap(), now).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        let e = addresses(1, now).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        let e = link(1, now).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    }
}
