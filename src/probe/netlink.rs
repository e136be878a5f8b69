//! The kernel's view of the network, asked over rtnetlink: the route to the real server
//! (egress interface, preferred source, gateway), the neighbour table, an interface's
//! addresses, name and MAC. A small hand-written client: one request, its answers.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::wire::MacAddr;

const NLMSG_HDR_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_MULTI: u16 = 0x02;
const NLM_F_DUMP: u16 = 0x300;

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

struct Socket {
    fd: OwnedFd,
    seq: u32,
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

fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// Iterates the `(type, data)` attributes in `buf`; stops at the first malformed one.
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            return None;
        }
        let data = &buf[4..len];
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
        Some((kind, data))
    })
}

fn ne_u32(b: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(b).ok().map(u32::from_ne_bytes)
}

impl Socket {
    fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Socket { fd, seq: 0 })
    }

    /// Sends one request and collects the bodies (after the netlink header) of the
    /// answers of `want` type.
    fn request(
        &mut self,
        kind: u16,
        flags: u16,
        body: &[u8],
        want: u16,
    ) -> io::Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let len = NLMSG_HDR_LEN + body.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: msg is a valid buffer of msg.len() bytes; the kernel is the default
        // destination of an unbound netlink socket's send.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: buf is valid for buf.len() bytes of writes.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut rest = &buf[..n as usize];
            let mut multi = false;
            while rest.len() >= NLMSG_HDR_LEN {
                let mlen = ne_u32(&rest[0..4]).unwrap_or(0) as usize;
                if mlen < NLMSG_HDR_LEN || mlen > rest.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "malformed netlink answer",
                    ));
                }
                let mtype = u16::from_ne_bytes([rest[4], rest[5]]);
                let mflags = u16::from_ne_bytes([rest[6], rest[7]]);
                let mseq = ne_u32(&rest[8..12]).unwrap_or(0);
                let body = &rest[NLMSG_HDR_LEN..mlen];
                rest = &rest[mlen.next_multiple_of(4).min(rest.len())..];
                if mseq != self.seq {
                    continue;
                }
                multi |= mflags & NLM_F_MULTI != 0;
                match mtype {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = body.get(0..4).and_then(ne_u32).unwrap_or(0) as i32;
                        if code != 0 {
                            return Err(io::Error::from_raw_os_error(-code));
                        }
                        return Ok(out);
                    }
                    t if t == want => out.push(body.to_vec()),
                    _ => {}
                }
            }
            if !multi {
                return Ok(out);
            }
        }
    }
}

/// `ip route get DST [oif IF]`: the route the kernel would use to reach `dst`.
pub fn route_get(dst: IpAddr, oif: Option<u32>) -> io::Result<Route> {
    let mut body = vec![0u8; 12];
    body[0] = family(dst);
    body[1] = if dst.is_ipv4() { 32 } else { 128 };
    push_attr(&mut body, RTA_DST, &ip_bytes(dst));
    if let Some(oif) = oif {
        push_attr(&mut body, RTA_OIF, &oif.to_ne_bytes());
    }
    let answers = Socket::open()?.request(RTM_GETROUTE, 0, &body, RTM_NEWROUTE)?;
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
pub fn neighbor(ifindex: u32, addr: IpAddr) -> io::Result<Option<Neighbour>> {
    let mut body = vec![0u8; 12];
    body[0] = family(addr);
    body[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
    let answers = Socket::open()?.request(RTM_GETNEIGH, NLM_F_DUMP, &body, RTM_NEWNEIGH)?;
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
pub fn addresses(ifindex: u32) -> io::Result<Vec<IfAddr>> {
    let body = vec![0u8; 8];
    let answers = Socket::open()?.request(RTM_GETADDR, NLM_F_DUMP, &body, RTM_NEWADDR)?;
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
pub fn link(index: u32) -> io::Result<Link> {
    let mut body = vec![0u8; 16];
    body[4..8].copy_from_slice(&(index as i32).to_ne_bytes());
    let answers = Socket::open()?.request(RTM_GETLINK, 0, &body, RTM_NEWLINK)?;
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

    #[test]
    fn attributes_are_padded_to_four_bytes_and_read_back() {
        let mut buf = Vec::new();
        push_attr(&mut buf, RTA_DST, &[192, 0, 2, 11]);
        push_attr(&mut buf, IFLA_IFNAME, b"eth1\0");
        push_attr(&mut buf, RTA_OIF, &7u32.to_ne_bytes());
        assert_eq!(buf.len(), 8 + 12 + 8);
        let got: Vec<(u16, Vec<u8>)> = attrs(&buf).map(|(k, d)| (k, d.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (RTA_DST, vec![192, 0, 2, 11]),
                (IFLA_IFNAME, b"eth1\0".to_vec()),
                (RTA_OIF, 7u32.to_ne_bytes().to_vec()),
            ]
        );
    }

    #[test]
    fn a_malformed_attribute_ends_the_walk() {
        let buf = [0xff, 0x00, 0x01, 0x00, 1, 2];
        assert_eq!(attrs(&buf).count(), 0);
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0);
    }

    #[test]
    fn loopback_route_is_local() {
        // Every network namespace has lo with 127.0.0.1, and route lookups need no
        // privilege.
        match route_get("127.0.0.1".parse().unwrap(), None) {
            Ok(r) => assert_eq!(r.kind, RTN_LOCAL),
            Err(e) => println!("skipped: netlink unavailable ({e})"),
        }
    }
}
