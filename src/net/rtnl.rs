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
    let msg = answers
        .first()
        .filter(|m| m.len() >= 12)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no route in the answer"))?;
    let mut route = Route {
        oif: 0,
        prefsrc: None,
        gateway: None,
        kind: msg[7],
    };
    for (kind, data) in attrs(&msg[12..]) {
        match kind {
            RTA_OIF => route.oif = ne_u32(data).unwrap_or(0),
            RTA_PREFSRC => route.prefsrc = ip_from(data),
            RTA_GATEWAY => route.gateway = ip_from(data),
            RTA_VIA if data.len() > 2 => route.gateway = ip_from(&data[2..]),
            _ => {}
        }
    }
    Ok(route)
}

/// The MAC the kernel's neighbour table holds for `addr` on `ifindex`, if its entry is
/// in a usable state.
pub fn neighbor(ifindex: u32, addr: IpAddr, deadline: Instant) -> io::Result<Option<Neighbour>> {
    // struct ndmsg: family, padding, ifindex, state, flags, type.
    let mut ndmsg = [0u8; 12];
    ndmsg[0] = family(addr);
    ndmsg[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    let answers = request(
        "RTM_GETNEIGH",
        RTM_GETNEIGH,
        NLM_F_DUMP,
        RTM_NEWNEIGH,
        deadline,
        |m| {
            m.header(&ndmsg);
        },
    )?;
    for msg in answers {
        if msg.len() < 12 {
            continue;
        }
        let index = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
        let state = u16::from_ne_bytes([msg[8], msg[9]]);
        if index as u32 != ifindex || state & NUD_USABLE == 0 {
            continue;
        }
        let mut dst = None;
        let mut mac = None;
        for (kind, data) in attrs(&msg[12..]) {
            match kind {
                NDA_DST => dst = ip_from(data),
                NDA_LLADDR => mac = MacAddr::from_slice(data),
                _ => {}
            }
        }
        if dst == Some(addr) {
            if let Some(mac) = mac.filter(|m| *m != MacAddr::ZERO) {
                return Ok(Some(Neighbour {
                    mac,
                    confirmed: state & NUD_CONFIRMED != 0,
                }));
            }
        }
    }
    Ok(None)
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
