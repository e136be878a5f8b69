//! The session's link: IP packets from the user-space TCP stack framed for the chosen real
//! server (Ethernet to its MAC for DR, IP-in-IP to its address for TUN) and sent on the
//! packet socket; on the way in, only the real server's answers from VIP:port to our
//! address and port are handed to the stack. Every header is built and read by the wire
//! layer ([`crate::wire`]).

use std::io;
use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::net::{Frame, FrameIo, NetPath};
use crate::wire::ethernet::{self, ethertype, EthernetRepr};
use crate::wire::frame::{self, Probe, ProbeKind};
use crate::wire::tcp::{self, flags, TcpRepr};
use crate::wire::tunnel;

const ETH_HDR: usize = ethernet::HEADER_LEN;

/// How our IP packets are wrapped on the wire and which frames are ours on the way back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    /// The interface, MACs, method and (TUN) the outer source and the RIP.
    pub path: NetPath,
    /// The director's address: the session's source (the inner source for TUN), of the
    /// VIP's family.
    pub src: IpAddr,
    pub vip: IpAddr,
    pub port: u16,
    pub local_port: u16,
}

impl Framing {
    /// Bytes in front of the IP packet.
    pub fn header_len(&self) -> usize {
        match self.path.tunnel() {
            Some((_, rip)) => ETH_HDR + self.path.encapsulation().outer_len(rip),
            None => ETH_HDR,
        }
    }

    /// Writes the Ethernet (and, for TUN, outer IP) header in front of an IP packet that
    /// already sits at `frame[header_len()..]`. `ident` is the outer IPv4 identification.
    pub fn write_header(&self, frame: &mut [u8], ident: u16) {
        let family = |ip: IpAddr| {
            if ip.is_ipv6() {
                ethertype::IPV6
            } else {
                ethertype::IPV4
            }
        };
        let ethertype = match self.path.tunnel() {
            // Mixed families are refused before a frame is built (`validate`).
            Some((outer_src, rip)) => tunnel::emit_outer(
                self.path.encapsulation(),
                outer_src,
                rip,
                ident,
                self.vip,
                &mut frame[ETH_HDR..],
            )
            .unwrap_or(family(rip)),
            None => family(self.vip),
        };
        EthernetRepr {
            dst: self.path.next_hop_mac,
            src: self.path.our_mac,
            ethertype,
        }
        .emit(frame);
    }

    /// Where the IP packet lies in `frame` when it is the real server's answer to our
    /// session: to our MAC, from VIP:port, to our address and port, TCP, not a fragment.
    /// Ethernet padding is left out.
    pub fn ours(&self, frame: &[u8]) -> Option<Range<usize>> {
        let (eth, payload) = EthernetRepr::parse(frame).ok()?;
        let family = if self.vip.is_ipv6() {
            ethertype::IPV6
        } else {
            ethertype::IPV4
        };
        if eth.dst != self.path.our_mac || eth.ethertype != family {
            return None;
        }
        let t = frame::tcp_in_ip(payload).ok()?;
        if t.src != self.vip || t.dst != self.src {
            return None;
        }
        let ports = TcpRepr::parse_ports(&payload[t.tcp_at..]).ok()?;
        if ports.src_port != self.port || ports.dst_port != self.local_port {
            return None;
        }
        Some(ETH_HDR..ETH_HDR + t.len)
    }

    /// The IP packet inside `frame` when it is the real server's answer to our session
    /// (see [`Framing::ours`]).
    pub fn accept<'f>(&self, frame: &'f mut [u8]) -> Option<&'f mut [u8]> {
        let at = self.ours(frame)?;
        Some(&mut frame[at])
    }
}

/// Recomputes the TCP checksum of an IP packet (accepted by [`Framing::accept`]). Needed
/// for packets the kernel hands to the packet socket with the checksum not yet filled in
/// (a veth peer's segments, offloaded checksums).
pub fn fill_tcp_checksum(ip: &mut [u8]) {
    if let Ok(t) = frame::tcp_in_ip(ip) {
        tcp::fill_checksum(t.src, t.dst, &mut ip[t.tcp_at..t.len]);
    }
}

/// The sequence number after a TCP segment we send (payload, SYN and FIN count one
/// each); `None` for a RST or a packet that is not TCP.
pub fn segment_end(ip: &[u8]) -> Option<u32> {
    let t = frame::tcp_in_ip(ip).ok()?;
    let segment = &ip[t.tcp_at..t.len];
    let r = TcpRepr::parse_with(t.src, t.dst, segment, false).ok()?;
    if r.flags & flags::RST != 0 {
        return None;
    }
    let payload = (segment.len() - tcp::header_len(segment).ok()?) as u32;
    let syn = u32::from(r.flags & flags::SYN != 0);
    let fin = u32::from(r.flags & flags::FIN != 0);
    Some(r.seq.wrapping_add(payload + syn + fin))
}

/// A complete frame carrying a RST from our address and port to VIP:port with sequence
/// number `seq`, framed like the session's own packets (TTL 1; an empty frame if the
/// addresses mix families, which `validate` refuses before).
pub fn rst_frame(framing: &Framing, seq: u32) -> Vec<u8> {
    Probe {
        src_mac: framing.path.our_mac,
        dst_mac: framing.path.next_hop_mac,
        tunnel: framing.path.tunnel(),
        src: framing.src,
        dst: framing.vip,
        hop_limit: 1,
        ip_ident: 0,
        kind: ProbeKind::Rst {
            src_port: framing.local_port,
            dst_port: framing.port,
            seq,
        },
        encap: framing.path.encapsulation(),
    }
    .build()
    .unwrap_or_default()
}

/// A smoltcp device (medium IP) over a [`FrameIo`], framing with [`Framing`].
pub struct Link<F: FrameIo> {
    pub io: F,
    pub framing: Framing,
    mtu: usize,
    ident: u16,
    /// The first send error seen, reported when the session fails.
    pub send_error: Option<io::Error>,
    /// Frames sent, for the outcome's statistics.
    pub frames_sent: u32,
    pub frames_received: u32,
    /// One past the highest sequence number sent: what the peer expects next. A RST
    /// with this number resets the peer's connection.
    pub snd_end: Option<u32>,
    /// A frame [`Link::wait`] received, for the next [`phy::Device::receive`].
    pending: Option<Frame>,
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
            send_error: None,
            frames_sent: 0,
            frames_received: 0,
            snd_end: None,
            pending: None,
        }
    }

    /// Returns when a frame has arrived (kept for the next receive) or after `timeout`.
    pub fn wait(&mut self, timeout: Duration) {
        if self.pending.is_some() {
            return;
        }
        // An error ends the wait early; the session loop's deadline still holds.
        if let Ok(Some(f)) = self.io.recv(std::time::Instant::now() + timeout) {
            self.pending = Some(f);
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
            let frame = match self.pending.take() {
                Some(f) => f,
                None => match self.io.recv_ready() {
                    Ok(Some(f)) => f,
                    Ok(None) | Err(_) => return None,
                },
            };
            let Some(at) = self.framing.ours(&frame.bytes) else {
                continue;
            };
            let mut packet = frame.bytes[at].to_vec();
            if frame.checksum_trusted {
                fill_tcp_checksum(&mut packet);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ForwardingMethod;
    use crate::wire::checksum::{of as checksum, with_pseudo};
    use crate::wire::MacAddr;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const MY_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    fn dr4() -> Framing {
        Framing {
            path: NetPath {
                iface: "eth0".into(),
                ifindex: 2,
                our_mac: MY_MAC,
                src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                rip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)),
                next_hop_mac: MacAddr([2, 0, 0, 0, 0, 0x11]),
                method: ForwardingMethod::DirectRouting,
                encap: crate::config::Tunnel::default(),
            },
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            vip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20)),
            port: 80,
            local_port: 40000,
        }
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
    }

    /// An IPv4 TCP segment 192.0.2.20:80 -> 192.0.2.1:40000, flags SYN|ACK, no options,
    /// with a correct header checksum and TCP checksum.
    fn reply4() -> Vec<u8> {
        let mut ip = vec![
            0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 20, 192, 0, 2, 1,
        ];
        let sum = checksum(&ip);
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
    fn tcp_checksum_verifies_to_zero() {
        let ip = reply4();
        // Summing a segment with its checksum in place (plus the pseudo header) gives 0.
        let (src, dst) = (IpAddr::from([192, 0, 2, 20]), IpAddr::from([192, 0, 2, 1]));
        assert_eq!(with_pseudo(src, dst, 6, &ip[20..]), 0);
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
        f.path.method = ForwardingMethod::Tunnel;
        f.path.rip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11));
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
        assert_eq!(checksum(outer), 0, "outer header checksum is valid");
        assert_eq!(&buf[34..], &inner[..]);
    }

    #[test]
    fn tun_gue_and_gre_headers_follow_the_outer_header_and_the_mtu_shrinks() {
        use crate::config::{Tunnel, TunnelChecksum, TunnelType};
        let mut f = dr4();
        f.path.method = ForwardingMethod::Tunnel;
        f.path.encap = Tunnel {
            kind: TunnelType::Gue { port: 6080 },
            csum: TunnelChecksum::Csum,
        };
        assert_eq!(f.header_len(), 14 + 20 + 12);
        let inner = reply4();
        let mut buf = vec![0xa5; 46];
        buf.extend_from_slice(&inner);
        f.write_header(&mut buf, 1);
        assert_eq!(buf[14 + 9], 17, "outer protocol UDP");
        assert_eq!(&buf[36..38], &6080u16.to_be_bytes());
        assert_eq!(&buf[42..46], &[0, 4, 0, 0], "GUE header naming IPv4");
        let (src, dst) = (f.path.src, f.path.rip);
        assert_eq!(with_pseudo(src, dst, 17, &buf[34..]), 0, "UDP checksum");
        assert_eq!(&buf[46..], &inner[..]);
        let io = Recorder {
            sent: vec![],
            inbox: vec![],
        };
        assert_eq!(Link::new(io, f.clone(), 1500).mtu, 1500 - 32);

        f.path.encap = Tunnel {
            kind: TunnelType::Gre,
            csum: TunnelChecksum::None,
        };
        assert_eq!(f.header_len(), 14 + 20 + 4);
        let mut buf = vec![0xa5; 38];
        buf.extend_from_slice(&inner);
        f.write_header(&mut buf, 1);
        assert_eq!(buf[14 + 9], 47, "outer protocol GRE");
        assert_eq!(&buf[34..38], &[0, 0, 0x08, 0x00]);
        assert_eq!(checksum(&buf[14..34]), 0);
    }

    #[test]
    fn tun_ipv6_header_encapsulates_to_the_rip() {
        let mut f = dr4();
        f.path.method = ForwardingMethod::Tunnel;
        f.path.src = v6("2001:db8::1");
        f.path.rip = v6("2001:db8::11");
        f.src = v6("2001:db8::1");
        f.vip = v6("2001:db8::20");
        f.port = 443;
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
        f.path.method = ForwardingMethod::Tunnel;
        f.path.src = v6("2001:db8::1");
        f.path.rip = v6("2001:db8::11");
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
        let mut good = frame(f.path.our_mac.0, 0x0800, &ip, 60);
        assert_eq!(good.len(), 60);
        assert_eq!(f.accept(&mut good).map(|p| p.to_vec()), Some(ip.clone()));

        let mut other_mac = frame([2, 0, 0, 0, 0, 9], 0x0800, &ip, 60);
        assert!(f.accept(&mut other_mac).is_none());

        let mut wrong_port = ip.clone();
        wrong_port[23] = 0x41; // destination port 40001
        assert!(f
            .accept(&mut frame(f.path.our_mac.0, 0x0800, &wrong_port, 0))
            .is_none());

        let mut from_rip = ip.clone();
        from_rip[15] = 11; // source 192.0.2.11: the management address, not the VIP
        assert!(f
            .accept(&mut frame(f.path.our_mac.0, 0x0800, &from_rip, 0))
            .is_none());

        let mut fragment = ip.clone();
        fragment[6] = 0x20; // more fragments
        assert!(f
            .accept(&mut frame(f.path.our_mac.0, 0x0800, &fragment, 0))
            .is_none());

        let mut short = frame(f.path.our_mac.0, 0x0800, &ip[..30], 0);
        assert!(f.accept(&mut short).is_none());
        assert!(f
            .accept(&mut frame(f.path.our_mac.0, 0x86dd, &ip, 0))
            .is_none());
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
        assert_eq!(checksum(&ip[..20]), 0);
        assert_eq!(&ip[12..20], &[192, 0, 2, 1, 192, 0, 2, 20]);
        assert_eq!(
            &ip[20..36],
            &[0x9c, 0x40, 0, 80, 1, 2, 3, 4, 0, 0, 0, 0, 0x50, 0x04, 0, 0]
        );
        let (src, dst) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 20]));
        assert_eq!(with_pseudo(src, dst, 6, &ip[20..]), 0);
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
        fn recv(&mut self, _deadline: std::time::Instant) -> io::Result<Option<Frame>> {
            self.recv_ready()
        }
        fn recv_ready(&mut self) -> io::Result<Option<Frame>> {
            Ok(self.inbox.pop().map(|(bytes, checksum_trusted)| Frame {
                bytes,
                checksum_trusted,
                at: None,
            }))
        }
    }

    #[test]
    fn device_frames_what_the_stack_sends_and_skips_foreign_frames() {
        use smoltcp::phy::{Device, RxToken as _, TxToken as _};
        let f = dr4();
        let mut ip = reply4();
        ip[36] ^= 0xff; // checksum not ready
        let mine = frame(f.path.our_mac.0, 0x0800, &ip, 60);
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
