//! The session's link: IP packets from the user-space TCP stack framed for the chosen real
//! server (Ethernet to its MAC for DR, IP-in-IP to its address for TUN) and sent on an
//! AF_PACKET socket; on the way in, only the real server's answers from VIP:port to our
//! address and port are handed to the stack.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::config::ForwardingMethod;

const ETH_HDR: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_IPV6: u8 = 41;

/// How our IP packets are wrapped on the wire and which frames are ours on the way back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    pub method: ForwardingMethod,
    pub src_mac: [u8; 6],
    /// The real server's MAC (DR) or the next hop towards its address (TUN).
    pub next_hop_mac: [u8; 6],
    /// The director's address: the session's source (the inner source for TUN).
    pub src_ip: IpAddr,
    /// TUN: the outer source, of the RIP's family (may differ from the VIP's).
    pub outer_src: IpAddr,
    pub rip: IpAddr,
    pub vip: IpAddr,
    pub port: u16,
    pub local_port: u16,
}

impl Framing {
    /// Bytes in front of the IP packet.
    pub fn header_len(&self) -> usize {
        match (self.method, self.rip) {
            (ForwardingMethod::Tunnel, IpAddr::V4(_)) => ETH_HDR + 20,
            (ForwardingMethod::Tunnel, IpAddr::V6(_)) => ETH_HDR + 40,
            _ => ETH_HDR,
        }
    }

    /// Writes the Ethernet (and, for TUN, outer IP) header in front of an IP packet that
    /// already sits at `frame[header_len()..]`. `ident` is the outer IPv4 identification.
    pub fn write_header(&self, frame: &mut [u8], ident: u16) {
        let inner_len = frame.len() - self.header_len();
        let inner_v6 = self.vip.is_ipv6();
        let outer_v6 = match self.method {
            ForwardingMethod::Tunnel => self.rip.is_ipv6(),
            _ => inner_v6,
        };
        frame[0..6].copy_from_slice(&self.next_hop_mac);
        frame[6..12].copy_from_slice(&self.src_mac);
        let ethertype = if outer_v6 {
            ETHERTYPE_IPV6
        } else {
            ETHERTYPE_IPV4
        };
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        if self.method != ForwardingMethod::Tunnel {
            return;
        }
        let inner_proto = if inner_v6 { IPPROTO_IPV6 } else { IPPROTO_IPIP };
        let outer = &mut frame[ETH_HDR..];
        match (self.outer_src, self.rip) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let total = (20 + inner_len) as u16;
                outer[0] = 0x45;
                outer[1] = 0;
                outer[2..4].copy_from_slice(&total.to_be_bytes());
                outer[4..6].copy_from_slice(&ident.to_be_bytes());
                outer[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
                outer[8] = 64;
                outer[9] = inner_proto;
                outer[10..12].copy_from_slice(&[0, 0]);
                outer[12..16].copy_from_slice(&src.octets());
                outer[16..20].copy_from_slice(&dst.octets());
                let sum = checksum(&outer[..20], 0);
                outer[10..12].copy_from_slice(&sum.to_be_bytes());
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                outer[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
                outer[4..6].copy_from_slice(&(inner_len as u16).to_be_bytes());
                outer[6] = inner_proto;
                outer[7] = 64;
                outer[8..24].copy_from_slice(&src.octets());
                outer[24..40].copy_from_slice(&dst.octets());
            }
            // SessionPath::validate refuses mixed families before a frame is built.
            _ => {}
        }
    }

    /// The IP packet inside `frame` when it is the real server's answer to our session:
    /// to our MAC, from VIP:port, to our address and port, TCP. Ethernet padding is cut.
    pub fn accept<'f>(&self, frame: &'f mut [u8]) -> Option<&'f mut [u8]> {
        if frame.len() < ETH_HDR || frame[0..6] != self.src_mac {
            return None;
        }
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let ip = &mut frame[ETH_HDR..];
        let (len, tcp_at) = match (ethertype, self.vip, self.src_ip) {
            (ETHERTYPE_IPV4, IpAddr::V4(vip), IpAddr::V4(me)) => {
                if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != IPPROTO_TCP {
                    return None;
                }
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                // A fragment's TCP header may be missing; the session never needs them.
                let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
                if ihl < 20 || total < ihl + 20 || total > ip.len() || frag != 0 {
                    return None;
                }
                if ip[12..16] != vip.octets() || ip[16..20] != me.octets() {
                    return None;
                }
                (total, ihl)
            }
            (ETHERTYPE_IPV6, IpAddr::V6(vip), IpAddr::V6(me)) => {
                if ip.len() < 40 || ip[0] >> 4 != 6 || ip[6] != IPPROTO_TCP {
                    return None;
                }
                let total = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
                if total < 60 || total > ip.len() {
                    return None;
                }
                if ip[8..24] != vip.octets() || ip[24..40] != me.octets() {
                    return None;
                }
                (total, 40)
            }
            _ => return None,
        };
        let tcp = &ip[tcp_at..];
        let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
        let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
        if sport != self.port || dport != self.local_port {
            return None;
        }
        Some(&mut frame[ETH_HDR..ETH_HDR + len])
    }
}

/// The Internet checksum (RFC 1071) of `data`, continuing from a partial sum.
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Recomputes the TCP checksum of an IP packet (accepted by [`Framing::accept`]). Needed
/// for packets the kernel hands to the packet socket with the checksum not yet filled in
/// (a veth peer's segments, offloaded checksums).
pub fn fill_tcp_checksum(ip: &mut [u8]) {
    let (tcp_at, pseudo) = if ip[0] >> 4 == 4 {
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let len = (ip.len() - ihl) as u32;
        let mut sum = u32::from(IPPROTO_TCP) + len;
        for c in ip[12..20].chunks_exact(2) {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        (ihl, sum)
    } else {
        let len = (ip.len() - 40) as u32;
        let mut sum = u32::from(IPPROTO_TCP) + (len >> 16) + (len & 0xffff);
        for c in ip[8..40].chunks_exact(2) {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        (40, sum)
    };
    let tcp = &mut ip[tcp_at..];
    tcp[16] = 0;
    tcp[17] = 0;
    let sum = checksum(tcp, pseudo);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
}

/// The sequence number after a TCP segment we send (payload, SYN and FIN count one
/// each); `None` for a RST or a packet that is not TCP.
pub fn segment_end(ip: &[u8]) -> Option<u32> {
    let (tcp_at, total) = match ip.first()? >> 4 {
        4 if ip.len() >= 20 && ip[9] == IPPROTO_TCP => (
            usize::from(ip[0] & 0x0f) * 4,
            usize::from(u16::from_be_bytes([ip[2], ip[3]])),
        ),
        6 if ip.len() >= 40 && ip[6] == IPPROTO_TCP => {
            (40, 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]])))
        }
        _ => return None,
    };
    let tcp = ip.get(tcp_at..total.min(ip.len()))?;
    if tcp.len() < 20 {
        return None;
    }
    let flags = tcp[13];
    if flags & 0x04 != 0 {
        return None;
    }
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let payload = tcp.len().saturating_sub(usize::from(tcp[12] >> 4) * 4) as u32;
    Some(seq.wrapping_add(payload + u32::from(flags & 0x02 != 0) + u32::from(flags & 0x01 != 0)))
}

/// A complete frame carrying a RST from our address and port to VIP:port with sequence
/// number `seq`, framed like the session's own packets.
pub fn rst_frame(framing: &Framing, seq: u32) -> Vec<u8> {
    let mut ip = match (framing.src_ip, framing.vip) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let mut h = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 1, IPPROTO_TCP, 0, 0];
            h.extend_from_slice(&src.octets());
            h.extend_from_slice(&dst.octets());
            let sum = checksum(&h, 0);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            h
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let mut h = vec![0x60, 0, 0, 0, 0, 20, IPPROTO_TCP, 1];
            h.extend_from_slice(&src.octets());
            h.extend_from_slice(&dst.octets());
            h
        }
        _ => return Vec::new(),
    };
    ip.extend_from_slice(&framing.local_port.to_be_bytes());
    ip.extend_from_slice(&framing.port.to_be_bytes());
    ip.extend_from_slice(&seq.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x04, 0, 0, 0, 0, 0, 0]);
    fill_tcp_checksum(&mut ip);
    let head = framing.header_len();
    let mut frame = vec![0u8; head];
    frame.extend_from_slice(&ip);
    framing.write_header(&mut frame, 0);
    frame
}

/// Where frames go: the packet socket in production, a recorder in tests.
pub trait FrameIo {
    /// Sends one frame.
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// Receives one frame into `buf` without waiting: `Ok(None)` when none is queued.
    /// The flag says the TCP checksum field is not to be trusted as it stands (left for
    /// the hardware, or already verified and then invalidated by GRO): refill it.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, bool)>>;
}

/// A smoltcp device (medium IP) over a [`FrameIo`], framing with [`Framing`].
pub struct Link<F: FrameIo> {
    pub io: F,
    pub framing: Framing,
    mtu: usize,
    ident: u16,
    rx: Vec<u8>,
    /// The first send error seen, reported when the session fails.
    pub send_error: Option<io::Error>,
    /// Frames sent, for the outcome's statistics.
    pub frames_sent: u32,
    pub frames_received: u32,
    /// One past the highest sequence number sent: what the peer expects next. A RST
    /// with this number resets the peer's connection.
    pub snd_end: Option<u32>,
}

impl<F: FrameIo> Link<F> {
    /// `link_mtu` is the interface's MTU; the tunnel's outer header comes off it for TUN.
    pub fn new(io: F, framing: Framing, link_mtu: usize) -> Link<F> {
        let mtu = link_mtu
            .saturating_sub(framing.header_len() - ETH_HDR)
            .max(576);
        Link {
            io,
            framing,
            mtu,
            ident: std::process::id() as u16,
            // The largest IP packet plus its Ethernet header (GRO can merge up to it).
            rx: vec![0; 65_535 + 64],
            send_error: None,
            frames_sent: 0,
            frames_received: 0,
            snd_end: None,
        }
    }
}

pub struct RxToken {
    packet: Vec<u8>,
}

impl phy::RxToken for RxToken {
    fn consume<R, G>(self, f: G) -> R
    where
        G: FnOnce(&[u8]) -> R,
    {
        f(&self.packet)
    }
}

pub struct TxToken<'a, F: FrameIo> {
    link: &'a mut Link<F>,
}

impl<F: FrameIo> phy::TxToken for TxToken<'_, F> {
    fn consume<R, G>(self, len: usize, f: G) -> R
    where
        G: FnOnce(&mut [u8]) -> R,
    {
        let head = self.link.framing.header_len();
        let mut frame = vec![0u8; head + len];
        let r = f(&mut frame[head..]);
        if let Some(end) = segment_end(&frame[head..]) {
            let later = self
                .link
                .snd_end
                .map_or(true, |cur| (end.wrapping_sub(cur) as i32) > 0);
            if later {
                self.link.snd_end = Some(end);
            }
        }
        self.link.ident = self.link.ident.wrapping_add(1);
        self.link.framing.write_header(&mut frame, self.link.ident);
        match self.link.io.send(&frame) {
            Ok(()) => self.link.frames_sent += 1,
            Err(e) => {
                // TCP retransmits; the error is kept for the verdict if nothing gets through.
                if self.link.send_error.is_none() {
                    self.link.send_error = Some(e);
                }
            }
        }
        r
    }
}

impl<F: FrameIo> phy::Device for Link<F> {
    type RxToken<'a>
        = RxToken
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, F>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_, F>)> {
        // Bounded: a busy interface cannot keep the session loop here forever.
        for _ in 0..256 {
            let (n, csum_not_ready) = match self.io.recv(&mut self.rx) {
                Ok(Some(got)) => got,
                Ok(None) | Err(_) => return None,
            };
            let n = n.min(self.rx.len());
            let Some(ip) = self.framing.accept(&mut self.rx[..n]) else {
                continue;
            };
            if csum_not_ready {
                fill_tcp_checksum(ip);
            }
            let packet = ip.to_vec();
            self.frames_received += 1;
            return Some((RxToken { packet }, TxToken { link: self }));
        }
        None
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_, F>> {
        Some(TxToken { link: self })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps.max_burst_size = None;
        caps.checksum.ipv4 = Checksum::Both;
        caps.checksum.tcp = Checksum::Both;
        caps
    }
}

/// An AF_PACKET socket bound to one interface.
pub struct PacketSocket {
    fd: OwnedFd,
}

const SOL_PACKET: libc::c_int = 263;
const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const ETH_P_ALL: u16 = 0x0003;

impl PacketSocket {
    pub fn open(ifindex: u32) -> io::Result<PacketSocket> {
        let proto = ETH_P_ALL.to_be();
        // Protocol 0 at creation and ETH_P_ALL at bind: a socket created with a protocol
        // is hooked on every interface at once, and re-binding it to one interface waits
        // for an RCU grace period (milliseconds per probe).
        // SAFETY: plain socket(2); the result is checked before it is wrapped.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let on: libc::c_int = 1;
        for opt in [PACKET_AUXDATA, PACKET_IGNORE_OUTGOING] {
            // SAFETY: a c_int option value of the right size. PACKET_IGNORE_OUTGOING is
            // missing before Linux 4.20; outgoing frames are then filtered by address.
            let rc = unsafe {
                libc::setsockopt(
                    raw,
                    SOL_PACKET,
                    opt,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc < 0 && opt == PACKET_AUXDATA {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: sll is a valid sockaddr_ll and its size is passed.
        let rc = unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd })
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl FrameIo for PacketSocket {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is a valid buffer of frame.len() bytes.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, bool)>> {
        crate::probe::socket::recv_frame(self.fd.as_raw_fd(), buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn dr4() -> Framing {
        Framing {
            method: ForwardingMethod::DirectRouting,
            src_mac: [2, 0, 0, 0, 0, 1],
            next_hop_mac: [2, 0, 0, 0, 0, 0x11],
            src_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            outer_src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            rip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)),
            vip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20)),
            port: 80,
            local_port: 40000,
        }
    }

    /// An IPv4 TCP segment 192.0.2.20:80 -> 192.0.2.1:40000, flags SYN|ACK, no options,
    /// with a correct header checksum and TCP checksum.
    fn reply4() -> Vec<u8> {
        let mut ip = vec![
            0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 20, 192, 0, 2, 1,
        ];
        let sum = checksum(&ip, 0);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let tcp = [
            0, 80, 0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x12, 0xff, 0xff, 0, 0, 0, 0,
        ];
        ip.extend_from_slice(&tcp);
        fill_tcp_checksum(&mut ip);
        ip
    }

    fn frame(dst: [u8; 6], ethertype: u16, ip: &[u8], pad_to: usize) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&[2, 0, 0, 0, 0, 0x11]);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(ip);
        f.resize(pad_to.max(f.len()), 0);
        f
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 section 3's bytes sum to 0xddf2; the checksum is its complement.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0),
            !0xddf2
        );
        assert_eq!(checksum(&[0xff], 0), !0xff00);
    }

    #[test]
    fn tcp_checksum_verifies_to_zero() {
        let ip = reply4();
        // Summing a segment with its checksum in place (plus the pseudo header) gives 0.
        let pseudo: u32 = 6 + 20 + 0xc000 + 0x0214 + 0xc000 + 0x0201;
        assert_eq!(checksum(&ip[20..], pseudo), 0);
    }

    #[test]
    fn dr_header_is_ethernet_to_the_real_server() {
        let f = dr4();
        assert_eq!(f.header_len(), 14);
        let mut buf = vec![0xa5; 14 + 20];
        f.write_header(&mut buf, 7);
        assert_eq!(
            &buf[..14],
            &[2, 0, 0, 0, 0, 0x11, 2, 0, 0, 0, 0, 1, 0x08, 0x00]
        );
        assert!(
            buf[14..].iter().all(|&b| b == 0xa5),
            "the IP packet is untouched"
        );
    }

    #[test]
    fn tun_ipv4_header_encapsulates_to_the_rip() {
        let mut f = dr4();
        f.method = ForwardingMethod::Tunnel;
        f.rip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11));
        assert_eq!(f.header_len(), 34);
        let inner = reply4();
        let mut buf = vec![0xa5; 34];
        buf.extend_from_slice(&inner);
        f.write_header(&mut buf, 0x0102);
        assert_eq!(&buf[12..14], &[0x08, 0x00]);
        let outer = &buf[14..34];
        assert_eq!(
            outer,
            &[
                0x45, 0, 0, 60, 0x01, 0x02, 0x40, 0, 64, 4, outer[10], outer[11], 192, 0, 2, 1,
                198, 51, 100, 11
            ]
        );
        assert_eq!(checksum(outer, 0), 0, "outer header checksum is valid");
        assert_eq!(&buf[34..], &inner[..]);
    }

    #[test]
    fn tun_ipv6_header_encapsulates_to_the_rip() {
        let f = Framing {
            method: ForwardingMethod::Tunnel,
            src_mac: [2, 0, 0, 0, 0, 1],
            next_hop_mac: [2, 0, 0, 0, 0, 0x11],
            src_ip: IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap()),
            outer_src: IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap()),
            rip: IpAddr::V6("2001:db8::11".parse::<Ipv6Addr>().unwrap()),
            vip: IpAddr::V6("2001:db8::20".parse::<Ipv6Addr>().unwrap()),
            port: 443,
            local_port: 40000,
        };
        assert_eq!(f.header_len(), 54);
        let mut buf = vec![0xa5; 54 + 60];
        f.write_header(&mut buf, 0);
        assert_eq!(&buf[12..14], &[0x86, 0xdd]);
        assert_eq!(&buf[14..22], &[0x60, 0, 0, 0, 0, 60, 41, 64]);
        assert_eq!(
            buf[22..38],
            "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(
            buf[38..54],
            "2001:db8::11".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert!(buf[54..].iter().all(|&b| b == 0xa5));
    }

    #[test]
    fn tun_ipv4_vip_through_an_ipv6_tunnel() {
        let mut f = dr4();
        f.method = ForwardingMethod::Tunnel;
        f.outer_src = IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap());
        f.rip = IpAddr::V6("2001:db8::11".parse::<Ipv6Addr>().unwrap());
        let inner = reply4();
        let mut buf = vec![0xa5; 54];
        buf.extend_from_slice(&inner);
        f.write_header(&mut buf, 0);
        assert_eq!(&buf[12..14], &[0x86, 0xdd]);
        assert_eq!(
            &buf[14..22],
            &[0x60, 0, 0, 0, 0, 40, 4, 64],
            "next header 4: IPv4 inside"
        );
        assert_eq!(
            buf[22..38],
            "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(&buf[54..], &inner[..]);
    }

    #[test]
    fn accepts_only_the_sessions_replies_and_cuts_padding() {
        let f = dr4();
        let ip = reply4();
        let mut good = frame(f.src_mac, 0x0800, &ip, 60);
        assert_eq!(good.len(), 60);
        assert_eq!(f.accept(&mut good).map(|p| p.to_vec()), Some(ip.clone()));

        let mut other_mac = frame([2, 0, 0, 0, 0, 9], 0x0800, &ip, 60);
        assert!(f.accept(&mut other_mac).is_none());

        let mut wrong_port = ip.clone();
        wrong_port[23] = 0x41; // destination port 40001
        assert!(f
            .accept(&mut frame(f.src_mac, 0x0800, &wrong_port, 0))
            .is_none());

        let mut from_rip = ip.clone();
        from_rip[15] = 11; // source 192.0.2.11: the management address, not the VIP
        assert!(f
            .accept(&mut frame(f.src_mac, 0x0800, &from_rip, 0))
            .is_none());

        let mut fragment = ip.clone();
        fragment[6] = 0x20; // more fragments
        assert!(f
            .accept(&mut frame(f.src_mac, 0x0800, &fragment, 0))
            .is_none());

        let mut short = frame(f.src_mac, 0x0800, &ip[..30], 0);
        assert!(f.accept(&mut short).is_none());
        assert!(f.accept(&mut frame(f.src_mac, 0x86dd, &ip, 0)).is_none());
    }

    #[test]
    fn checksum_left_to_hardware_is_filled_in() {
        let mut ip = reply4();
        let good = ip.clone();
        ip[36] = 0x12; // a partial checksum, as a veth peer hands it over
        ip[37] = 0x34;
        fill_tcp_checksum(&mut ip);
        assert_eq!(ip, good);
    }

    #[test]
    fn segment_end_counts_payload_syn_and_fin() {
        let mut ip = reply4(); // SYN|ACK, seq 1, no payload
        assert_eq!(segment_end(&ip), Some(2));
        ip[33] = 0x18; // PSH|ACK
        ip.extend_from_slice(b"GET /");
        ip[3] = 45;
        assert_eq!(segment_end(&ip), Some(6));
        ip[33] = 0x11; // FIN|ACK
        assert_eq!(segment_end(&ip), Some(7));
        ip[33] = 0x04; // RST
        assert_eq!(segment_end(&ip), None);
        ip[24..28].copy_from_slice(&u32::MAX.to_be_bytes());
        ip[33] = 0x10;
        assert_eq!(segment_end(&ip), Some(4), "sequence numbers wrap");
    }

    #[test]
    fn rst_frame_resets_the_sessions_tuple() {
        let f = dr4();
        let frame = rst_frame(&f, 0x0102_0304);
        assert_eq!(frame.len(), 14 + 40);
        assert_eq!(&frame[..14], &[2, 0, 0, 0, 0, 0x11, 2, 0, 0, 0, 0, 1, 8, 0]);
        let ip = &frame[14..];
        assert_eq!(checksum(&ip[..20], 0), 0);
        assert_eq!(&ip[12..20], &[192, 0, 2, 1, 192, 0, 2, 20]);
        assert_eq!(
            &ip[20..36],
            &[0x9c, 0x40, 0, 80, 1, 2, 3, 4, 0, 0, 0, 0, 0x50, 0x04, 0, 0]
        );
        let pseudo: u32 = 6 + 20 + 0xc000 + 0x0201 + 0xc000 + 0x0214;
        assert_eq!(checksum(&ip[20..], pseudo), 0);
    }

    struct Recorder {
        sent: Vec<Vec<u8>>,
        inbox: Vec<(Vec<u8>, bool)>,
    }

    impl FrameIo for Recorder {
        fn send(&mut self, frame: &[u8]) -> io::Result<()> {
            self.sent.push(frame.to_vec());
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, bool)>> {
            Ok(self.inbox.pop().map(|(f, nr)| {
                buf[..f.len()].copy_from_slice(&f);
                (f.len(), nr)
            }))
        }
    }

    #[test]
    fn device_frames_what_the_stack_sends_and_skips_foreign_frames() {
        use smoltcp::phy::{Device, RxToken as _, TxToken as _};
        let f = dr4();
        let mut ip = reply4();
        ip[36] ^= 0xff; // checksum not ready
        let mine = frame(f.src_mac, 0x0800, &ip, 60);
        let foreign = frame([2, 0, 0, 0, 0, 9], 0x0800, &ip, 60);
        let io = Recorder {
            sent: vec![],
            inbox: vec![(mine, true), (foreign, false)],
        };
        let mut link = Link::new(io, f, 1500);
        assert_eq!(link.capabilities().max_transmission_unit, 1500);
        let (rx, _tx) = link.receive(Instant::from_millis(0)).expect("our reply");
        assert_eq!(rx.consume(|p| p.to_vec()), reply4());
        assert!(link.receive(Instant::from_millis(0)).is_none());
        let tx = link.transmit(Instant::from_millis(0)).unwrap();
        tx.consume(3, |b| b.copy_from_slice(&[1, 2, 3]));
        assert_eq!(
            link.io.sent,
            vec![vec![2, 0, 0, 0, 0, 0x11, 2, 0, 0, 0, 0, 1, 8, 0, 1, 2, 3]]
        );
    }
}
