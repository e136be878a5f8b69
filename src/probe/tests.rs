//! The probe logic against a mocked [`FrameIo`]: the exact frames sent, and the verdict
//! for right, foreign, wrong-MAC, duplicate, late and missing replies. No root needed.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::engine::{self, Check, CheckKind, Entropy, Prober};
use super::request::Request;
use super::{run_checks, Verdict};
use crate::config::ForwardingMethod;
use crate::net::{Frame, FrameIo, NetPath};
use crate::wire::ethernet::{ethertype, EthernetRepr};
use crate::wire::frame::{self, Probe, ProbeKind};
use crate::wire::icmpv4::{self, Icmpv4Repr};
use crate::wire::ipv4::{protocol, Ipv4Repr};
use crate::wire::tcp::{flags, TcpRepr};
use crate::wire::MacAddr;

const DIR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const RS_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const OTHER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0d]);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A mocked wire: every sent frame is recorded and shown to `respond`, whose frames are
/// then received in order; an empty queue means silence until the deadline.
struct Mock<F: FnMut(usize, &[u8]) -> Vec<Vec<u8>>> {
    sent: Vec<Vec<u8>>,
    queue: VecDeque<Vec<u8>>,
    deadlines: Vec<Instant>,
    respond: F,
}

impl<F: FnMut(usize, &[u8]) -> Vec<Vec<u8>>> Mock<F> {
    fn new(respond: F) -> Self {
        Mock {
            sent: Vec::new(),
            queue: VecDeque::new(),
            deadlines: Vec::new(),
            respond,
        }
    }
}

impl<F: FnMut(usize, &[u8]) -> Vec<Vec<u8>>> FrameIo for Mock<F> {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let n = self.sent.len();
        self.sent.push(frame.to_vec());
        let replies = (self.respond)(n, frame);
        self.queue.extend(replies);
        Ok(())
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        self.deadlines.push(deadline);
        Ok(self.queue.pop_front().map(Frame::wire))
    }

    fn recv_ready(&mut self) -> io::Result<Option<Frame>> {
        Ok(self.queue.pop_front().map(Frame::wire))
    }
}

/// Returns 0xbeef0001, 0x00001234, 0xcafe0002, 0x00005678, ... : known identifiers.
struct Counter(u32);

impl Entropy for Counter {
    fn next_u32(&mut self) -> u32 {
        self.0 += 1;
        match self.0 {
            1 => 0xbeef_0001,
            2 => 0x0000_1234,
            3 => 0xcafe_0002,
            4 => 0x0000_5678,
            n => n.wrapping_mul(0x9e37_79b9),
        }
    }
}

fn path(method: ForwardingMethod) -> NetPath {
    NetPath {
        iface: "eth1".into(),
        ifindex: 3,
        our_mac: DIR_MAC,
        method,
        encap: crate::config::Tunnel::default(),
        rip: ip("192.0.2.11"),
        src: ip("192.0.2.2"),
        next_hop_mac: RS_MAC,
    }
}

fn icmp_check() -> Check {
    Check {
        kind: CheckKind::Icmp,
        vip: ip("192.0.2.20"),
        src: ip("192.0.2.2"),
    }
}

fn tcp_check() -> Check {
    Check {
        kind: CheckKind::Tcp { port: 80 },
        vip: ip("192.0.2.20"),
        src: ip("192.0.2.2"),
    }
}

/// The inner IPv4 packet of a frame we sent (unwrapping one IPIP, GUE or GRE header).
fn inner(frame: &[u8]) -> (Ipv4Repr, Vec<u8>) {
    let (eth, payload) = EthernetRepr::parse(frame).unwrap();
    assert_eq!(eth.ethertype, ethertype::IPV4);
    let (ip, body) = Ipv4Repr::parse(payload).unwrap();
    let encap = match ip.protocol {
        protocol::IPIP => Some(0),
        // GUE in these tests goes to port 6080; any other UDP is a UDP check's own.
        protocol::UDP if body.get(2..4) == Some(&6080u16.to_be_bytes()[..]) => {
            Some(crate::wire::gue::HEADER_LEN)
        }
        crate::wire::gre::PROTOCOL => Some(crate::wire::gre::header_len(body[0] & 0x80 != 0)),
        _ => None,
    };
    if let Some(skip) = encap {
        let (ip, body) = Ipv4Repr::parse(&body[skip..]).unwrap();
        return (ip, body.to_vec());
    }
    (ip, body.to_vec())
}

fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => panic!("IPv4 expected"),
    }
}

fn ipv4_frame(src_mac: MacAddr, src: IpAddr, dst: IpAddr, proto: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + body.len()];
    EthernetRepr {
        dst: DIR_MAC,
        src: src_mac,
        ethertype: ethertype::IPV4,
    }
    .emit(&mut f);
    Ipv4Repr {
        src: v4(src),
        dst: v4(dst),
        protocol: proto,
        ttl: 64,
        ident: 7,
        payload_len: body.len(),
    }
    .emit(&mut f[14..]);
    f[34..].copy_from_slice(body);
    f
}

/// An echo reply to the echo request in `sent`, from `mac`, with the ident changed by
/// `ident_delta` (non-zero: a foreign reply).
fn echo_reply(sent: &[u8], mac: MacAddr, ident_delta: u16) -> Vec<u8> {
    let (ip, body) = inner(sent);
    let Icmpv4Repr::EchoRequest { ident, seq, data } = Icmpv4Repr::parse(&body).unwrap() else {
        panic!("not an echo request");
    };
    let r = Icmpv4Repr::EchoReply {
        ident: ident.wrapping_add(ident_delta),
        seq,
        data,
    };
    let mut b = vec![0; r.buffer_len()];
    r.emit(&mut b);
    ipv4_frame(
        mac,
        IpAddr::V4(ip.dst),
        IpAddr::V4(ip.src),
        protocol::ICMP,
        &b,
    )
}

/// A TCP answer with `fl` flags to the SYN in `sent`.
fn tcp_answer(sent: &[u8], mac: MacAddr, fl: u8) -> Vec<u8> {
    let (ip, body) = inner(sent);
    let (src, dst) = (IpAddr::V4(ip.dst), IpAddr::V4(ip.src));
    let syn = TcpRepr::parse(dst, src, &body).unwrap();
    let r = TcpRepr {
        src_port: syn.dst_port,
        dst_port: syn.src_port,
        seq: 0xa0b0_c0d0,
        ack: syn.seq.wrapping_add(1),
        flags: fl,
        window: 0,
        mss: None,
    };
    let mut b = vec![0; r.buffer_len()];
    r.emit(src, dst, &mut b);
    ipv4_frame(mac, src, dst, protocol::TCP, &b)
}

/// An ICMP error from `from` quoting the whole IP packet of `sent`.
fn icmp_error(sent: &[u8], from: IpAddr, kind: u8, code: u8) -> Vec<u8> {
    let quoted = &sent[14..];
    let r = match kind {
        icmpv4::kind::TIME_EXCEEDED => Icmpv4Repr::TimeExceeded {
            code,
            invoking: quoted,
        },
        _ => Icmpv4Repr::DstUnreachable {
            code,
            invoking: quoted,
        },
    };
    let mut b = vec![0; r.buffer_len()];
    r.emit(&mut b);
    ipv4_frame(RS_MAC, from, ip("192.0.2.2"), protocol::ICMP, &b)
}

fn run<F: FnMut(usize, &[u8]) -> Vec<Vec<u8>>>(
    mock: &mut Mock<F>,
    method: ForwardingMethod,
    check: Check,
    attempts: u32,
) -> engine::CheckResult {
    run_until(
        mock,
        method,
        check,
        attempts,
        Instant::now() + Duration::from_secs(1),
    )
}

/// Runs `check` over `io` on a path of `method`: `attempts` probes until `deadline`.
fn run_until(
    io: &mut impl FrameIo,
    method: ForwardingMethod,
    check: Check,
    attempts: u32,
    deadline: Instant,
) -> engine::CheckResult {
    let p = path(method);
    let mut prober = Prober {
        io,
        entropy: &mut Counter(0),
        path: &p,
    };
    prober.run(&check, deadline, attempts).unwrap()
}

#[test]
fn echo_probe_is_sent_byte_exactly_and_its_reply_accepted() {
    let mut mock = Mock::new(|_, f: &[u8]| vec![echo_reply(f, RS_MAC, 0)]);
    let r = run(&mut mock, ForwardingMethod::DirectRouting, icmp_check(), 3);
    assert!(r.up, "{r:?}");
    assert_eq!(r.attempts, 1);
    assert!(r.latency_ms.is_some());
    // ident 0xbeef, seq 1, IP id 0x1234: the frame in tests/wire_frames.rs ECHO_V4_DR.
    let expected: [u8; 50] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x24, 0x12, 0x34, 0x40, 0x00, 0x01, 0x01, 0xe3, 0x8e, 0xc0, 0x00, 0x02, 0x02,
        0xc0, 0x00, 0x02, 0x14, 0x08, 0x00, 0x86, 0x71, 0xbe, 0xef, 0x00, 0x01, 0x76, 0x69, 0x70,
        0x63, 0x68, 0x65, 0x63, 0x6b,
    ];
    assert_eq!(mock.sent, vec![expected.to_vec()]);
}

#[test]
fn reply_from_another_mac_is_down_naming_both_macs() {
    let mut mock = Mock::new(|_, f: &[u8]| vec![echo_reply(f, OTHER_MAC, 0)]);
    let r = run(&mut mock, ForwardingMethod::DirectRouting, icmp_check(), 3);
    assert!(!r.up);
    assert_eq!(
        r.reason,
        "reply came from 02:00:00:00:00:0d, not the real server 02:00:00:00:00:0b"
    );
}

#[test]
fn wrong_mac_then_right_mac_in_the_same_attempt_is_up() {
    let mut mock =
        Mock::new(|_, f: &[u8]| vec![echo_reply(f, OTHER_MAC, 0), echo_reply(f, RS_MAC, 0)]);
    assert!(run(&mut mock, ForwardingMethod::DirectRouting, icmp_check(), 1).up);
}

#[test]
fn foreign_identifier_is_ignored() {
    let mut mock = Mock::new(|_, f: &[u8]| vec![echo_reply(f, RS_MAC, 1)]);
    let r = run(&mut mock, ForwardingMethod::DirectRouting, icmp_check(), 2);
    assert!(!r.up);
    assert_eq!(r.attempts, 2);
    assert_eq!(
        r.reason,
        "VIP 192.0.2.20 did not answer through 02:00:00:00:00:0b (VIP not configured?)"
    );
}

#[test]
fn duplicate_and_garbage_frames_do_not_confuse_the_verdict() {
    let mut mock = Mock::new(|_, f: &[u8]| {
        let good = echo_reply(f, RS_MAC, 0);
        let mut corrupt = good.clone();
        corrupt[40] ^= 0xff;
        vec![vec![0u8; 5], corrupt, good.clone(), good]
    });
    let r = run(&mut mock, ForwardingMethod::DirectRouting, icmp_check(), 1);
    assert!(r.up, "{r:?}");
    assert_eq!(mock.sent.len(), 1);
}

#[test]
fn loss_then_reply_on_retry_is_up_with_a_fresh_identifier() {
    let mut mock = Mock::new(|n, f: &[u8]| {
        if n == 0 {
            Vec::new()
        } else {
            vec![echo_reply(f, RS_MAC, 0)]
        }
    });
    let r = run(&mut mock, ForwardingMethod::DirectRouting, icmp_check(), 3);
    assert!(r.up, "{r:?}");
    assert_eq!(r.attempts, 2);
    assert_eq!(mock.sent.len(), 2);
    let ident = |f: &[u8]| u16::from_be_bytes([f[38], f[39]]);
    assert_eq!(ident(&mock.sent[0]), 0xbeef);
    assert_eq!(ident(&mock.sent[1]), 0xcafe);
}

#[test]
fn late_reply_to_an_earlier_attempt_counts() {
    let mut first = None;
    let mut mock = Mock::new(move |n, f: &[u8]| {
        if n == 0 {
            first = Some(echo_reply(f, RS_MAC, 0));
            Vec::new()
        } else {
            first.take().into_iter().collect()
        }
    });
    let r = run(&mut mock, ForwardingMethod::DirectRouting, icmp_check(), 3);
    assert!(r.up);
    assert_eq!(r.attempts, 2);
}

#[test]
fn every_wait_ends_by_the_deadline_and_attempts_are_bounded() {
    let mut mock = Mock::new(|_, _: &[u8]| Vec::new());
    let deadline = Instant::now() + Duration::from_millis(300);
    let r = run_until(
        &mut mock,
        ForwardingMethod::DirectRouting,
        icmp_check(),
        4,
        deadline,
    );
    assert!(!r.up);
    assert_eq!(mock.sent.len(), 4);
    assert!(!mock.deadlines.is_empty());
    assert!(mock.deadlines.iter().all(|d| *d <= deadline));
    // Attempt windows grow toward the end: each is a share of what is left.
    assert!(mock.deadlines.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn syn_ack_is_up_and_answered_with_an_exact_rst() {
    let mut mock = Mock::new(|n, f: &[u8]| {
        if n == 0 {
            vec![tcp_answer(f, RS_MAC, flags::SYN | flags::ACK)]
        } else {
            Vec::new()
        }
    });
    let r = run(&mut mock, ForwardingMethod::DirectRouting, tcp_check(), 3);
    assert!(r.up, "{r:?}");
    assert_eq!(mock.sent.len(), 2, "SYN then RST");
    let (hdr, syn) = inner(&mock.sent[0]);
    assert_eq!(hdr.ttl, 1);
    let syn = TcpRepr::parse(ip("192.0.2.2"), ip("192.0.2.20"), &syn).unwrap();
    assert_eq!(syn.flags, flags::SYN);
    assert!((32768..61000).contains(&syn.src_port));
    // The RST: same ports, seq = the SYN-ACK's ack (our ISN + 1), frame to the real server.
    let expected = Probe {
        src_mac: DIR_MAC,
        dst_mac: RS_MAC,
        tunnel: None,
        src: ip("192.0.2.2"),
        dst: ip("192.0.2.20"),
        hop_limit: 1,
        ip_ident: u16::from_be_bytes([mock.sent[1][18], mock.sent[1][19]]),
        kind: ProbeKind::Rst {
            src_port: syn.src_port,
            dst_port: 80,
            seq: syn.seq.wrapping_add(1),
        },
        encap: Default::default(),
    }
    .build()
    .unwrap();
    assert_eq!(mock.sent[1], expected);
    assert_eq!(mock.sent[1][47], flags::RST);
}

/// A wire whose replies are read only once the round has stopped waiting (the agent
/// reads them at its next turn): `recv` waits to its deadline and finds nothing,
/// `recv_ready` then gives each SYN-ACK with the time it came, `after` its SYN.
struct ReadLate {
    after: Duration,
    sent: Vec<Vec<u8>>,
    queue: VecDeque<Frame>,
}

impl FrameIo for ReadLate {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if frame[47] == flags::SYN {
            self.queue.push_back(Frame {
                bytes: tcp_answer(frame, RS_MAC, flags::SYN | flags::ACK),
                checksum_trusted: false,
                at: Some(Instant::now() + self.after),
            });
        }
        self.sent.push(frame.to_vec());
        Ok(())
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        Ok(None)
    }

    fn recv_ready(&mut self) -> io::Result<Option<Frame>> {
        Ok(self.queue.pop_front())
    }
}

#[test]
fn a_reply_read_after_the_deadline_counts_as_of_when_it_came() {
    // Came 2 ms after the SYN, read at the deadline (60 ms): up, with the 2 ms latency
    // and the RST. Came 20 ms after the deadline: down, and no RST.
    let budget = Duration::from_millis(60);
    for (after, up) in [
        (Duration::from_millis(2), true),
        (budget + Duration::from_millis(20), false),
    ] {
        let mut wire = ReadLate {
            after,
            sent: Vec::new(),
            queue: VecDeque::new(),
        };
        let r = run_until(
            &mut wire,
            ForwardingMethod::DirectRouting,
            tcp_check(),
            1,
            Instant::now() + budget,
        );
        assert_eq!(r.up, up, "came {after:?} after the SYN: {r:?}");
        if up {
            let ms = r.latency_ms.expect("a latency");
            assert!(
                (1.5..10.0).contains(&ms),
                "the latency of when it came: {ms} ms"
            );
            assert_eq!(wire.sent.len(), 2, "SYN then RST");
        } else {
            assert_eq!(wire.sent.len(), 1, "the SYN alone");
        }
    }
}

/// A mock whose frames carry a zeroed TCP checksum, flagged trusted or not, the way a
/// packet socket sees a SYN-ACK generated on the other end of a veth.
struct PartialChecksum {
    trusted: bool,
    sent: Vec<Vec<u8>>,
    queue: VecDeque<Vec<u8>>,
}

impl FrameIo for PartialChecksum {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if frame[47] == flags::SYN {
            let mut a = tcp_answer(frame, RS_MAC, flags::SYN | flags::ACK);
            a[50..52].fill(0);
            self.queue.push_back(a);
        }
        self.sent.push(frame.to_vec());
        Ok(())
    }

    fn recv(&mut self, _deadline: Instant) -> io::Result<Option<Frame>> {
        Ok(self.queue.pop_front().map(|bytes| Frame {
            bytes,
            checksum_trusted: self.trusted,
            at: None,
        }))
    }
}

#[test]
fn unfilled_checksum_counts_only_when_the_kernel_vouches_for_it() {
    for trusted in [true, false] {
        let mut io = PartialChecksum {
            trusted,
            sent: Vec::new(),
            queue: VecDeque::new(),
        };
        let r = run_until(
            &mut io,
            ForwardingMethod::DirectRouting,
            tcp_check(),
            1,
            Instant::now() + Duration::from_secs(1),
        );
        assert_eq!(r.up, trusted, "{r:?}");
    }
}

#[test]
fn rst_means_closed() {
    let mut mock = Mock::new(|_, f: &[u8]| vec![tcp_answer(f, RS_MAC, flags::RST | flags::ACK)]);
    let r = run(&mut mock, ForwardingMethod::DirectRouting, tcp_check(), 3);
    assert!(!r.up);
    assert_eq!(r.reason, "VIP answers but TCP 80 is closed (RST)");
    assert_eq!(
        mock.sent.len(),
        1,
        "no retry and no RST of our own after a RST"
    );
}

#[test]
fn rst_without_ack_is_foreign() {
    let mut mock = Mock::new(|_, f: &[u8]| vec![tcp_answer(f, RS_MAC, flags::RST)]);
    let r = run(&mut mock, ForwardingMethod::DirectRouting, tcp_check(), 1);
    assert!(!r.up);
    assert!(
        r.reason.contains("did not answer on TCP 80"),
        "{}",
        r.reason
    );
}

#[test]
fn syn_ack_with_a_wrong_ack_number_is_foreign() {
    let mut mock = Mock::new(|_, f: &[u8]| {
        let mut a = tcp_answer(f, RS_MAC, flags::SYN | flags::ACK);
        // Rebuild with ack + 1: parse, change, emit.
        let (ip, body) = Ipv4Repr::parse(&a[14..])
            .map(|(i, b)| (i, b.to_vec()))
            .unwrap();
        let (s, d) = (IpAddr::V4(ip.src), IpAddr::V4(ip.dst));
        let mut t = TcpRepr::parse(s, d, &body).unwrap();
        t.ack = t.ack.wrapping_add(1);
        t.emit(s, d, &mut a[34..]);
        vec![a]
    });
    let r = run(&mut mock, ForwardingMethod::DirectRouting, tcp_check(), 1);
    assert!(!r.up);
    assert!(
        r.reason.contains("did not answer on TCP 80"),
        "{}",
        r.reason
    );
}

#[test]
fn time_exceeded_from_the_real_server_means_it_forwarded() {
    let mut mock = Mock::new(|_, f: &[u8]| {
        vec![icmp_error(
            f,
            ip("192.0.2.11"),
            icmpv4::kind::TIME_EXCEEDED,
            0,
        )]
    });
    let r = run(&mut mock, ForwardingMethod::DirectRouting, icmp_check(), 3);
    assert!(!r.up);
    assert!(
        r.reason
            .starts_with("192.0.2.11 forwarded the probe for VIP 192.0.2.20"),
        "{}",
        r.reason
    );
}

#[test]
fn tunnel_probe_is_ipip_to_the_rip_and_accepts_a_reply_from_any_mac() {
    let mut mock = Mock::new(|_, f: &[u8]| vec![echo_reply(f, OTHER_MAC, 0)]);
    let r = run(&mut mock, ForwardingMethod::Tunnel, icmp_check(), 1);
    assert!(r.up, "{r:?}");
    let (eth, payload) = EthernetRepr::parse(&mock.sent[0]).unwrap();
    assert_eq!(eth.dst, RS_MAC);
    let (outer, _) = Ipv4Repr::parse(payload).unwrap();
    assert_eq!(outer.protocol, protocol::IPIP);
    assert_eq!(outer.dst, Ipv4Addr::new(192, 0, 2, 11));
    assert_eq!(outer.ttl, frame::OUTER_HOP_LIMIT);
}

#[test]
fn port_unreachable_from_the_rip_means_no_tunnel_device() {
    let mut mock = Mock::new(|_, f: &[u8]| {
        vec![icmp_error(
            f,
            ip("192.0.2.11"),
            icmpv4::kind::DST_UNREACHABLE,
            icmpv4::unreachable::PORT,
        )]
    });
    let r = run(&mut mock, ForwardingMethod::Tunnel, icmp_check(), 3);
    assert!(!r.up);
    assert!(
        r.reason
            .starts_with("real server 192.0.2.11 does not decapsulate the tunnel"),
        "{}",
        r.reason
    );
}

#[test]
fn protocol_unreachable_from_the_rip_means_no_decapsulation() {
    let mut mock = Mock::new(|_, f: &[u8]| {
        vec![icmp_error(
            f,
            ip("192.0.2.11"),
            icmpv4::kind::DST_UNREACHABLE,
            icmpv4::unreachable::PROTOCOL,
        )]
    });
    let r = run(&mut mock, ForwardingMethod::Tunnel, icmp_check(), 3);
    assert!(!r.up);
    assert!(
        r.reason
            .starts_with("real server 192.0.2.11 does not decapsulate IPIP"),
        "{}",
        r.reason
    );
    assert_eq!(mock.sent.len(), 1);
}

#[test]
fn arp_resolution_takes_only_the_target_s_reply() {
    let reply = |sender: [u8; 4], mac: MacAddr| {
        let r = crate::wire::arp::ArpRepr {
            operation: crate::wire::arp::ArpOperation::Reply,
            sender_mac: mac,
            sender_ip: Ipv4Addr::from(sender),
            target_mac: DIR_MAC,
            target_ip: Ipv4Addr::new(192, 0, 2, 2),
        };
        let mut f = vec![0u8; 42];
        EthernetRepr {
            dst: DIR_MAC,
            src: mac,
            ethertype: ethertype::ARP,
        }
        .emit(&mut f);
        r.emit(&mut f[14..]);
        f
    };
    let mut mock = Mock::new(move |_, _: &[u8]| {
        vec![
            reply([192, 0, 2, 12], OTHER_MAC),
            reply([192, 0, 2, 11], RS_MAC),
        ]
    });
    let deadline = Instant::now() + Duration::from_secs(1);
    let mac = engine::resolve_neighbor(
        &mut mock,
        DIR_MAC,
        ip("192.0.2.2"),
        ip("192.0.2.11"),
        deadline,
        3,
    )
    .unwrap();
    assert_eq!(mac, Some(RS_MAC));
    assert_eq!(
        mock.sent[0],
        frame::arp_request(
            DIR_MAC,
            Ipv4Addr::new(192, 0, 2, 2),
            Ipv4Addr::new(192, 0, 2, 11)
        )
    );

    let mut silent = Mock::new(|_, _: &[u8]| Vec::new());
    let mac = engine::resolve_neighbor(
        &mut silent,
        DIR_MAC,
        ip("192.0.2.2"),
        ip("192.0.2.11"),
        deadline,
        3,
    )
    .unwrap();
    assert_eq!(mac, None);
    assert_eq!(silent.sent.len(), 3);
}

fn request(checks: Vec<CheckKind>, vips: &[&str]) -> Request {
    Request {
        vips: vips.iter().map(|v| ip(v)).collect(),
        rip: ip("192.0.2.11"),
        method: ForwardingMethod::DirectRouting,
        checks,
        icmp_only_udp: false,
        timeout: Duration::from_secs(1),
        retries: 1,
        iface: None,
        json: false,
        allow_arp_answer: false,
        app: None,
        tunnel: Default::default(),
    }
}

#[test]
fn all_checks_up_gives_the_up_line_with_latencies() {
    let req = request(
        vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }],
        &["192.0.2.20"],
    );
    let mut mock = Mock::new(|_, f: &[u8]| {
        let (ip, _) = inner(f);
        if ip.protocol == protocol::ICMP {
            vec![echo_reply(f, RS_MAC, 0)]
        } else if f[47] == flags::SYN {
            vec![tcp_answer(f, RS_MAC, flags::SYN | flags::ACK)]
        } else {
            Vec::new()
        }
    });
    let checks = [icmp_check(), tcp_check()];
    let v = run_checks(
        &req,
        &path(ForwardingMethod::DirectRouting),
        &mut mock,
        &mut Counter(0),
        &checks,
        Instant::now() + Duration::from_secs(1),
    );
    assert!(v.up, "{v:?}");
    let line = v.line();
    assert!(line.starts_with("up: icmp "), "{line}");
    assert!(line.contains(" ms, tcp "), "{line}");
    assert!(line.ends_with(" ms"), "{line}");
    let json: serde_json::Value = serde_json::to_value(&v).unwrap();
    assert_eq!(json["up"], true);
    assert_eq!(json["checks"][1]["check"], "tcp");
    assert!(json["checks"][0]["latency_ms"].is_number());
}

#[test]
fn silence_on_every_check_is_down_with_the_generic_reason_and_tcp_decides() {
    let req = request(
        vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }],
        &["192.0.2.20"],
    );
    let mut mock = Mock::new(|_, _: &[u8]| Vec::new());
    let checks = [icmp_check(), tcp_check()];
    let v = run_checks(
        &req,
        &path(ForwardingMethod::DirectRouting),
        &mut mock,
        &mut Counter(0),
        &checks,
        Instant::now() + Duration::from_millis(50),
    );
    assert!(!v.up);
    assert_eq!(
        v.line(),
        "down: VIP 192.0.2.20 did not answer through 02:00:00:00:00:0b (VIP not configured?)"
    );
    assert_eq!(v.checks.len(), 2);
    // Both were sent at once; TCP decides, ICMP explains.
    assert!(v.checks.iter().all(|c| c.attempts >= 1), "{v:?}");
    assert!(!v.checks[0].decides && v.checks[1].decides, "{v:?}");
}

/// A real server that answers SYNs on the VIP and treats echo requests as `icmp` says:
/// `None` drops them (a hardened server), `Some(code)` rejects them with that ICMP
/// destination-unreachable code.
fn hardened(icmp: Option<u8>) -> impl FnMut(usize, &[u8]) -> Vec<Vec<u8>> {
    move |_, f: &[u8]| {
        let (eth, _) = EthernetRepr::parse(f).unwrap();
        if eth.ethertype == ethertype::ARP {
            return Vec::new();
        }
        let (ip, _) = inner(f);
        if ip.protocol == protocol::ICMP {
            icmp.map(|code| vec![icmp_error(f, ip_of(ip.dst), 3, code)])
                .unwrap_or_default()
        } else if f[47] == flags::SYN {
            vec![tcp_answer(f, RS_MAC, flags::SYN | flags::ACK)]
        } else {
            Vec::new()
        }
    }
}

fn ip_of(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

#[test]
fn echo_dropped_but_syn_answered_is_up_with_icmp_filtered_noted() {
    let req = all_checks();
    let mut mock = Mock::new(hardened(None));
    let v = run_all(&req, &mut mock);
    assert!(v.up, "{v:?}");
    assert_eq!(v.note.as_deref(), Some("icmp filtered"));
    let line = v.line();
    assert!(line.starts_with("up: tcp "), "{line}");
    assert!(line.ends_with(", arp ok (icmp filtered)"), "{line}");
    assert!(!v.checks[0].up && !v.checks[0].decides, "{v:?}");
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["up"], true);
    assert_eq!(json["note"], "icmp filtered");
    assert_eq!(json["checks"][0]["decides"], false);
}

#[test]
fn echo_rejected_but_syn_answered_is_up_saying_how_icmp_was_refused() {
    let req = all_checks();
    // A firewall's `reject`: port unreachable from the VIP itself.
    let mut mock = Mock::new(hardened(Some(3)));
    let v = run_all(&req, &mut mock);
    assert!(v.up, "{v:?}");
    let note = v.note.clone().unwrap_or_default();
    assert!(
        note.starts_with(
            "icmp: 192.0.2.20 answered the probe for VIP 192.0.2.20 with ICMP port unreachable"
        ),
        "{note}"
    );
}

#[test]
fn echo_answered_but_syn_unanswered_is_down_saying_tcp_is_filtered() {
    let req = request(
        vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }],
        &["192.0.2.20"],
    );
    let mut mock = Mock::new(|_, f: &[u8]| {
        let (ip, _) = inner(f);
        if ip.protocol == protocol::ICMP {
            vec![echo_reply(f, RS_MAC, 0)]
        } else {
            Vec::new()
        }
    });
    let v = run_checks(
        &req,
        &path(ForwardingMethod::DirectRouting),
        &mut mock,
        &mut Counter(0),
        &[icmp_check(), tcp_check()],
        Instant::now() + Duration::from_millis(60),
    );
    assert!(!v.up);
    assert_eq!(
        v.reason,
        "VIP 192.0.2.20 answers ICMP echo through 02:00:00:00:00:0b but not TCP 80 (filtered, \
         or the service drops SYNs?)"
    );
}

#[test]
fn every_check_goes_out_at_once_with_retries_spread_over_the_whole_budget() {
    let req = request(
        vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }],
        &["192.0.2.20"],
    );
    let mut mock = Mock::new(|_, _: &[u8]| Vec::new());
    let start = Instant::now();
    let budget = Duration::from_millis(90);
    let mut req3 = req.clone();
    req3.retries = 2;
    let v = run_checks(
        &req3,
        &path(ForwardingMethod::DirectRouting),
        &mut mock,
        &mut Counter(0),
        &[icmp_check(), tcp_check()],
        start + budget,
    );
    assert!(!v.up);
    // Three rounds of one echo and one SYN each, the first two frames at once.
    assert_eq!(mock.sent.len(), 6, "{}", mock.sent.len());
    assert_eq!(inner(&mock.sent[0]).0.protocol, protocol::ICMP);
    assert_eq!(inner(&mock.sent[1]).0.protocol, protocol::TCP);
    assert!(v.checks.iter().all(|c| c.attempts == 3), "{v:?}");
    // Nothing waited past the deadline.
    assert!(mock.deadlines.iter().all(|d| *d <= start + budget));
}

#[test]
fn a_failure_on_the_second_vip_is_named() {
    let req = request(
        vec![CheckKind::Tcp { port: 80 }],
        &["192.0.2.20", "192.0.2.21"],
    );
    let mut mock = Mock::new(|_, f: &[u8]| {
        let (ip, _) = inner(f);
        let fl = if ip.dst == Ipv4Addr::new(192, 0, 2, 20) {
            flags::SYN | flags::ACK
        } else {
            flags::RST | flags::ACK
        };
        if f[47] == flags::SYN {
            vec![tcp_answer(f, RS_MAC, fl)]
        } else {
            Vec::new()
        }
    });
    let second = Check {
        vip: ip("192.0.2.21"),
        ..tcp_check()
    };
    let v = run_checks(
        &req,
        &path(ForwardingMethod::DirectRouting),
        &mut mock,
        &mut Counter(0),
        &[tcp_check(), second],
        Instant::now() + Duration::from_secs(1),
    );
    assert!(!v.up);
    assert_eq!(
        v.line(),
        "down: 192.0.2.21: VIP answers but TCP 80 is closed (RST)"
    );
}

#[test]
fn failed_setup_is_down_with_no_checks() {
    let v = Verdict::failed("no ARP reply from 192.0.2.11 on eth1");
    assert_eq!(v.line(), "down: no ARP reply from 192.0.2.11 on eth1");
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["up"], false);
    assert_eq!(json["checks"], serde_json::json!([]));
}

/// An ARP reply from `mac` claiming `sender` for the director.
fn arp_reply(sender: [u8; 4], mac: MacAddr) -> Vec<u8> {
    let r = crate::wire::arp::ArpRepr {
        operation: crate::wire::arp::ArpOperation::Reply,
        sender_mac: mac,
        sender_ip: Ipv4Addr::from(sender),
        target_mac: DIR_MAC,
        target_ip: Ipv4Addr::new(192, 0, 2, 2),
    };
    let mut f = vec![0u8; 42];
    EthernetRepr {
        dst: DIR_MAC,
        src: mac,
        ethertype: ethertype::ARP,
    }
    .emit(&mut f);
    r.emit(&mut f[14..]);
    f
}

fn arp_check() -> Check {
    Check {
        kind: CheckKind::Arp,
        ..icmp_check()
    }
}

const ARP_ANSWER_REASON: &str = "answers ARP for VIP 192.0.2.20: it can take VIP traffic away \
    from the director (set arp_ignore=1, arp_announce=2 or put the VIP on lo)";

/// A real server that answers echo and SYN, and ARP for the VIP when `arp` says so (with
/// the answer queued right away, or only once the last frame of the checks went out).
fn server(arp: Option<(MacAddr, bool)>) -> impl FnMut(usize, &[u8]) -> Vec<Vec<u8>> {
    move |_, f: &[u8]| {
        let (eth, _) = EthernetRepr::parse(f).unwrap();
        if eth.ethertype == ethertype::ARP {
            return match arp {
                Some((mac, false)) => vec![arp_reply([192, 0, 2, 20], mac)],
                _ => Vec::new(),
            };
        }
        let (ip, _) = inner(f);
        if ip.protocol == protocol::ICMP {
            vec![echo_reply(f, RS_MAC, 0)]
        } else if f[47] == flags::SYN {
            vec![tcp_answer(f, RS_MAC, flags::SYN | flags::ACK)]
        } else if let Some((mac, true)) = arp {
            // The RST that closes the handshake: the last frame the checks send.
            vec![arp_reply([192, 0, 2, 20], mac)]
        } else {
            Vec::new()
        }
    }
}

fn run_all(req: &Request, mock: &mut impl FrameIo) -> Verdict {
    run_checks(
        req,
        &path(ForwardingMethod::DirectRouting),
        mock,
        &mut Counter(0),
        &[icmp_check(), tcp_check(), arp_check()],
        Instant::now() + Duration::from_secs(1),
    )
}

fn all_checks() -> Request {
    request(
        vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }, CheckKind::Arp],
        &["192.0.2.20"],
    )
}

#[test]
fn arp_request_goes_first_unicast_to_the_real_server() {
    let mut mock = Mock::new(server(None));
    let v = run_all(&all_checks(), &mut mock);
    assert_eq!(
        mock.sent[0],
        frame::arp_request_to(
            RS_MAC,
            DIR_MAC,
            Ipv4Addr::new(192, 0, 2, 2),
            Ipv4Addr::new(192, 0, 2, 20)
        )
    );
    assert!(v.up, "{v:?}");
    let line = v.line();
    assert!(line.starts_with("up: icmp "), "{line}");
    assert!(line.ends_with(" ms, arp ok"), "{line}");
    assert_eq!(v.checks[2].check, "arp");
    assert!(v.warnings.is_empty());
}

#[test]
fn real_server_answering_arp_for_the_vip_is_down_with_the_fix() {
    let mut mock = Mock::new(server(Some((RS_MAC, false))));
    let v = run_all(&all_checks(), &mut mock);
    assert!(!v.up);
    assert_eq!(v.reason, ARP_ANSWER_REASON);
    // The other checks still ran and passed.
    assert!(v.checks[0].up && v.checks[1].up, "{v:?}");
}

#[test]
fn an_arp_answer_after_the_last_check_is_still_caught() {
    let mut mock = Mock::new(server(Some((RS_MAC, true))));
    let v = run_all(&all_checks(), &mut mock);
    assert!(!v.up, "{v:?}");
    assert_eq!(v.reason, ARP_ANSWER_REASON);
}

#[test]
fn an_arp_answer_from_another_host_is_not_the_real_server_s() {
    let mut mock = Mock::new(server(Some((OTHER_MAC, false))));
    let v = run_all(&all_checks(), &mut mock);
    assert!(v.up, "{v:?}");
}

#[test]
fn allowed_arp_answer_is_a_warning() {
    let mut req = all_checks();
    req.allow_arp_answer = true;
    let mut mock = Mock::new(server(Some((RS_MAC, false))));
    let v = run_all(&req, &mut mock);
    assert!(v.up, "{v:?}");
    assert_eq!(v.warnings, vec![format!("allowed: {ARP_ANSWER_REASON}")]);
    assert!(v
        .line()
        .ends_with(&format!("(warning: allowed: {ARP_ANSWER_REASON})")));
}

#[test]
fn no_grace_wait_when_no_round_trip_was_measured() {
    // The VIP is silent: the verdict is down already, and the ARP check adds no wait.
    let mut mock = Mock::new(|_, _: &[u8]| Vec::new());
    let start = Instant::now();
    let v = run_checks(
        &all_checks(),
        &path(ForwardingMethod::DirectRouting),
        &mut mock,
        &mut Counter(0),
        &[icmp_check(), arp_check()],
        start + Duration::from_millis(30),
    );
    assert!(!v.up);
    assert!(
        v.reason.starts_with("VIP 192.0.2.20 did not answer"),
        "{}",
        v.reason
    );
    // Every recv deadline is within the check's budget: none added for the ARP check.
    assert!(mock
        .deadlines
        .iter()
        .all(|d| *d <= start + Duration::from_millis(30)));
}

#[test]
fn ipv6_neighbour_advertisement_for_the_vip_is_down() {
    use crate::wire::icmpv6::Icmpv6Repr;
    use crate::wire::ipv6::Ipv6Repr;
    let vip: std::net::Ipv6Addr = "2001:db8::20".parse().unwrap();
    let src: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
    let mut mock = Mock::new(move |_, f: &[u8]| {
        let (eth, _) = EthernetRepr::parse(f).unwrap();
        assert_eq!(eth.dst, RS_MAC, "asked in a frame to the real server");
        let na = Icmpv6Repr::NeighborAdvert {
            flags: 0x6000_0000,
            target: vip,
            target_lladdr: Some(RS_MAC),
        };
        let mut icmp = vec![0; na.buffer_len()];
        na.emit(vip, src, &mut icmp);
        let ip = Ipv6Repr {
            src: vip,
            dst: src,
            next_header: protocol::ICMPV6,
            hop_limit: 255,
            payload_len: icmp.len(),
        };
        let mut out = vec![0u8; 14 + 40 + icmp.len()];
        EthernetRepr {
            dst: DIR_MAC,
            src: RS_MAC,
            ethertype: ethertype::IPV6,
        }
        .emit(&mut out);
        ip.emit(&mut out[14..]);
        out[54..].copy_from_slice(&icmp);
        vec![out]
    });
    let check = Check {
        kind: CheckKind::Arp,
        vip: IpAddr::V6(vip),
        src: IpAddr::V6(src),
    };
    let req = request(vec![CheckKind::Arp], &["2001:db8::20"]);
    let v = run_checks(
        &req,
        &path(ForwardingMethod::DirectRouting),
        &mut mock,
        &mut Counter(0),
        &[check],
        Instant::now() + Duration::from_millis(100),
    );
    assert!(!v.up, "{v:?}");
    assert!(
        v.reason
            .starts_with("answers neighbour solicitations for VIP 2001:db8::20: it can take"),
        "{}",
        v.reason
    );
}

#[test]
fn a_shared_icmp_result_is_reused_not_sent_again() {
    let memo = super::IcmpMemo::default();
    let req = request(
        vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }],
        &["192.0.2.20"],
    );
    let run = |mock: &mut Mock<_>| {
        super::run_checks_with(
            &req,
            &path(ForwardingMethod::DirectRouting),
            mock,
            &mut Counter(0),
            &[icmp_check(), tcp_check()],
            Instant::now() + Duration::from_secs(1),
            Some(&memo),
            None,
        )
    };
    let mut first = Mock::new(server(None));
    assert!(run(&mut first).up);
    assert!(first
        .sent
        .iter()
        .any(|f| inner(f).0.protocol == protocol::ICMP));
    // The second pair (another port of the same real server) sends its SYN only.
    let mut second = Mock::new(server(None));
    let v = run(&mut second);
    assert!(v.up, "{v:?}");
    assert!(second
        .sent
        .iter()
        .all(|f| inner(f).0.protocol == protocol::TCP));
    assert_eq!(v.checks[0].check, "icmp");
}

/// A real server at RS_MAC that answers ARP for its own address (192.0.2.11) to anyone
/// asking, and echo and SYN in frames to RS_MAC only; frames to any other MAC are lost.
fn moved_server() -> impl FnMut(usize, &[u8]) -> Vec<Vec<u8>> {
    move |_, f: &[u8]| {
        let (eth, payload) = EthernetRepr::parse(f).unwrap();
        if eth.dst != RS_MAC && eth.dst != MacAddr::BROADCAST {
            return Vec::new();
        }
        if eth.ethertype == ethertype::ARP {
            let req = crate::wire::arp::ArpRepr::parse(payload).unwrap();
            return if req.target_ip == Ipv4Addr::new(192, 0, 2, 11) {
                vec![arp_reply([192, 0, 2, 11], RS_MAC)]
            } else {
                Vec::new()
            };
        }
        let (ip, _) = inner(f);
        if ip.protocol == protocol::ICMP {
            vec![echo_reply(f, RS_MAC, 0)]
        } else if f[47] == flags::SYN {
            vec![tcp_answer(f, RS_MAC, flags::SYN | flags::ACK)]
        } else {
            Vec::new()
        }
    }
}

fn arp_requests(sent: &[Vec<u8>]) -> Vec<MacAddr> {
    sent.iter()
        .filter_map(|f| {
            let (eth, _) = EthernetRepr::parse(f).ok()?;
            (eth.ethertype == ethertype::ARP).then_some(eth.dst)
        })
        .collect()
}

#[test]
fn a_stale_entry_s_mac_is_confirmed_and_a_changed_mac_is_probed_and_reported() {
    let req = request(
        vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }],
        &["192.0.2.20"],
    );
    let mut stale = path(ForwardingMethod::DirectRouting);
    stale.next_hop_mac = OTHER_MAC;
    let mut mock = Mock::new(moved_server());
    let v = super::run_checks_with(
        &req,
        &stale,
        &mut mock,
        &mut Counter(0),
        &[icmp_check(), tcp_check()],
        Instant::now() + Duration::from_millis(400),
        None,
        Some(ip("192.0.2.11")),
    );
    assert!(v.up, "{v:?}");
    let change = v.mac_change.expect("the change is reported");
    assert_eq!((change.from, change.to), (OTHER_MAC, RS_MAC));
    assert!(
        v.line().contains(
            "MAC changed: the neighbour entry said 02:00:00:00:00:0d, 02:00:00:00:00:0b answered"
        ),
        "{}",
        v.line()
    );
    // Asked the old MAC first, then everyone.
    assert_eq!(
        arp_requests(&mock.sent),
        vec![OTHER_MAC, MacAddr::BROADCAST]
    );
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["mac_change"]["to"], "02:00:00:00:00:0b");
}

#[test]
fn a_stale_entry_whose_mac_answers_is_not_asked_about_again() {
    let req = request(
        vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }],
        &["192.0.2.20"],
    );
    let mut mock = Mock::new(moved_server());
    let v = super::run_checks_with(
        &req,
        &path(ForwardingMethod::DirectRouting),
        &mut mock,
        &mut Counter(0),
        &[icmp_check(), tcp_check()],
        Instant::now() + Duration::from_millis(400),
        None,
        Some(ip("192.0.2.11")),
    );
    assert!(v.up, "{v:?}");
    assert_eq!(v.mac_change, None);
    // One unicast request to the entry's MAC, answered: no broadcast.
    assert_eq!(arp_requests(&mock.sent), vec![RS_MAC]);
}

#[test]
fn a_confirmed_entry_is_trusted_without_asking() {
    let req = request(vec![CheckKind::Icmp], &["192.0.2.20"]);
    let mut mock = Mock::new(moved_server());
    let v = super::run_checks_with(
        &req,
        &path(ForwardingMethod::DirectRouting),
        &mut mock,
        &mut Counter(0),
        &[icmp_check()],
        Instant::now() + Duration::from_millis(200),
        None,
        None,
    );
    assert!(v.up, "{v:?}");
    assert!(arp_requests(&mock.sent).is_empty());
}

#[test]
fn a_spent_budget_ends_the_probe_at_its_first_kernel_lookup() {
    // Through lo: whatever happens, nothing leaves this host.
    let mut req = request(vec![CheckKind::Icmp], &["192.0.2.20"]);
    req.iface = Some("lo".into());
    let start = Instant::now()
        .checked_sub(req.timeout * 2)
        .expect("the clock is past two seconds");
    let t = Instant::now();
    let v = super::probe(&req, start);
    assert!(!v.up);
    assert!(
        v.reason
            .starts_with("no route to the real server 192.0.2.11: ")
            && v.reason.contains("deadline"),
        "{}",
        v.reason
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn verdict_json_names_the_method_as_the_command_line_does() {
    // config's ForwardingMethod would serialize as `DirectRouting`; scripts read `dr`.
    for (method, word) in [
        (ForwardingMethod::DirectRouting, "dr"),
        (ForwardingMethod::Tunnel, "tun"),
    ] {
        let mut req = request(vec![CheckKind::Icmp], &["192.0.2.20"]);
        req.method = method;
        let v = Verdict::from_checks(&req, &path(method), Vec::new());
        let json: serde_json::Value = serde_json::to_value(&v).unwrap();
        assert_eq!(json["method"], word);
    }
    assert!(serde_json::to_value(Verdict::failed("x")).unwrap()["method"].is_null());
}

#[test]
fn a_shared_forwarded_echo_holds_back_the_other_ports_syns() {
    let memo = super::IcmpMemo::default();
    let req = request(
        vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }],
        &["192.0.2.20"],
    );
    // A real server without the VIP that forwards it: TTL exceeded for every probe.
    let forwarder = |_: usize, f: &[u8]| vec![icmp_error(f, ip("192.0.2.11"), 11, 0)];
    let run = |mock: &mut Mock<_>| {
        super::run_checks_with(
            &req,
            &path(ForwardingMethod::DirectRouting),
            mock,
            &mut Counter(0),
            &[icmp_check(), tcp_check()],
            Instant::now() + Duration::from_secs(1),
            Some(&memo),
            None,
        )
    };
    let mut first = Mock::new(forwarder);
    let v = run(&mut first);
    assert!(!v.up);
    assert!(v.reason.contains("forwarded the probe"), "{}", v.reason);
    // Another port of the same real server: the shared echo already shows the path does
    // not serve the VIP, so no SYN goes out to draw another rate-limited error.
    let mut second = Mock::new(forwarder);
    let v = run(&mut second);
    assert!(!v.up);
    assert!(v.reason.contains("forwarded the probe"), "{}", v.reason);
    assert!(second.sent.is_empty(), "{} frames sent", second.sent.len());
}

/// Issue 15: probes in GUE and GRE, and the ICMP errors that quote them.
mod gue_gre {
    use super::*;
    use crate::config::{Tunnel, TunnelChecksum, TunnelType};
    use crate::wire::{checksum, gre};

    fn run_in(
        mock: &mut Mock<impl FnMut(usize, &[u8]) -> Vec<Vec<u8>>>,
        encap: Tunnel,
    ) -> engine::CheckResult {
        let mut p = path(ForwardingMethod::Tunnel);
        p.encap = encap;
        let mut entropy = Counter(0);
        let mut prober = Prober {
            io: mock,
            entropy: &mut entropy,
            path: &p,
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        prober.run(&icmp_check(), deadline, 3).unwrap()
    }

    fn gue(csum: TunnelChecksum) -> Tunnel {
        Tunnel {
            kind: TunnelType::Gue { port: 6080 },
            csum,
        }
    }

    fn gre(csum: TunnelChecksum) -> Tunnel {
        Tunnel {
            kind: TunnelType::Gre,
            csum,
        }
    }

    fn unreachable(code: u8) -> impl FnMut(usize, &[u8]) -> Vec<Vec<u8>> {
        move |_, f: &[u8]| {
            vec![icmp_error(
                f,
                ip("192.0.2.11"),
                icmpv4::kind::DST_UNREACHABLE,
                code,
            )]
        }
    }

    #[test]
    fn gue_probe_is_udp_to_the_gue_port_and_its_direct_reply_accepted() {
        for (csum, summed) in [
            (TunnelChecksum::None, false),
            (TunnelChecksum::Csum, true),
            (TunnelChecksum::Remcsum, true),
        ] {
            let mut mock = Mock::new(|_, f: &[u8]| vec![echo_reply(f, OTHER_MAC, 0)]);
            let r = run_in(&mut mock, gue(csum));
            assert!(r.up, "{r:?}");
            let (_, payload) = EthernetRepr::parse(&mock.sent[0]).unwrap();
            let (outer, udp) = Ipv4Repr::parse(payload).unwrap();
            assert_eq!(outer.protocol, protocol::UDP);
            assert_eq!(outer.dst, Ipv4Addr::new(192, 0, 2, 11));
            assert_eq!(udp[2..4], 6080u16.to_be_bytes());
            assert_eq!(udp[8..12], [0, protocol::IPIP, 0, 0], "GUE header");
            assert_eq!(udp[6..8] != [0, 0], summed, "{csum:?}");
            if summed {
                let (s, d) = (ip("192.0.2.2"), ip("192.0.2.11"));
                assert_eq!(checksum::with_pseudo(s, d, protocol::UDP, udp), 0);
            }
        }
    }

    #[test]
    fn gre_probe_names_the_inner_ethertype_and_its_checksum_option() {
        for (csum, first) in [(TunnelChecksum::None, 0), (TunnelChecksum::Csum, 0x80)] {
            let mut mock = Mock::new(|_, f: &[u8]| vec![echo_reply(f, OTHER_MAC, 0)]);
            let r = run_in(&mut mock, gre(csum));
            assert!(r.up, "{r:?}");
            let (_, payload) = EthernetRepr::parse(&mock.sent[0]).unwrap();
            let (outer, g) = Ipv4Repr::parse(payload).unwrap();
            assert_eq!(outer.protocol, gre::PROTOCOL);
            assert_eq!(g[..4], [first, 0, 0x08, 0x00]);
        }
    }

    #[test]
    fn port_unreachable_for_gue_means_nothing_receives_on_the_gue_port() {
        let mut mock = Mock::new(unreachable(icmpv4::unreachable::PORT));
        let r = run_in(&mut mock, gue(TunnelChecksum::None));
        assert!(!r.up);
        assert!(
            r.reason
                .starts_with("real server 192.0.2.11 does not decapsulate GUE on UDP port 6080"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn gre_unreachable_from_the_rip_means_no_decapsulation() {
        let mut mock = Mock::new(unreachable(icmpv4::unreachable::PROTOCOL));
        let r = run_in(&mut mock, gre(TunnelChecksum::None));
        assert!(!r.up);
        assert!(
            r.reason
                .starts_with("real server 192.0.2.11 does not decapsulate GRE"),
            "{}",
            r.reason
        );
        let mut mock = Mock::new(unreachable(icmpv4::unreachable::PORT));
        let r = run_in(&mut mock, gre(TunnelChecksum::Csum));
        assert!(
            r.reason
                .starts_with("real server 192.0.2.11 does not decapsulate GRE (no tunnel device"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn an_error_quoting_ipip_is_not_about_a_gue_probe() {
        // The error quotes an IPIP packet with our probe inside: not what a GUE path sent.
        let mut mock = Mock::new(|_, f: &[u8]| {
            let (ip_hdr, body) = inner(f);
            let mut inner_packet = vec![0; 20 + body.len()];
            Ipv4Repr {
                payload_len: body.len(),
                ..ip_hdr
            }
            .emit(&mut inner_packet);
            inner_packet[20..].copy_from_slice(&body);
            let (_, outer) = crate::wire::tunnel::encapsulate(
                crate::wire::tunnel::Encap::Ipip,
                ip("192.0.2.2"),
                ip("192.0.2.11"),
                1,
                ip("192.0.2.20"),
                &inner_packet,
            )
            .unwrap();
            let mut frame = f[..14].to_vec();
            frame.extend(outer);
            vec![icmp_error(
                &frame,
                ip("192.0.2.11"),
                icmpv4::kind::DST_UNREACHABLE,
                icmpv4::unreachable::PROTOCOL,
            )]
        });
        let r = run_in(&mut mock, gue(TunnelChecksum::None));
        assert!(!r.up);
        assert!(!r.reason.contains("decapsulate"), "{}", r.reason);
    }
}
#[path = "tests_udp.rs"]
mod udp;

/// Two ports of one real server in one round ([`super::run_group`]), as the agent
/// probes a real server's turn: port 80 open, port 81 closed.
fn group_of_two(mock: &mut impl FrameIo) -> Vec<Verdict> {
    group_of_two_with(mock, false)
}

fn group_of_two_with(mock: &mut impl FrameIo, ports_at_once: bool) -> Vec<Verdict> {
    group_of_two_knowing(mock, ports_at_once, None).verdicts
}

/// As [`group_of_two_with`], with the ARP-problem answers known beforehand.
fn group_of_two_knowing(
    mock: &mut impl FrameIo,
    ports_at_once: bool,
    arp_known: Option<&[IpAddr]>,
) -> super::GroupRun {
    let a = request(
        vec![CheckKind::Arp, CheckKind::Icmp, CheckKind::Tcp { port: 80 }],
        &["192.0.2.20"],
    );
    let b = request(
        vec![CheckKind::Arp, CheckKind::Icmp, CheckKind::Tcp { port: 81 }],
        &["192.0.2.20"],
    );
    let checks = [
        arp_check(),
        icmp_check(),
        tcp_check(),
        Check {
            kind: CheckKind::Tcp { port: 81 },
            ..tcp_check()
        },
    ];
    let own: [&[usize]; 2] = [&[0, 1, 2], &[0, 1, 3]];
    let group = super::Group {
        reqs: &[&a, &b],
        own: &own,
        checks: &checks,
        ports_at_once,
        arp_known,
    };
    super::run_group(
        &group,
        &path(ForwardingMethod::DirectRouting),
        mock,
        &mut Counter(0),
        Instant::now() + Duration::from_secs(1),
        None,
        None,
    )
}

/// A real server whose port 81 is closed (RST), answering everything else.
fn port_81_closed() -> impl FnMut(usize, &[u8]) -> Vec<Vec<u8>> {
    let mut open = server(None);
    move |n, f: &[u8]| {
        let (eth, _) = EthernetRepr::parse(f).unwrap();
        if eth.ethertype == ethertype::IPV4 && f[23] == protocol::TCP && f[47] == flags::SYN {
            let port = u16::from_be_bytes([f[36], f[37]]);
            if port == 81 {
                return vec![tcp_answer(f, RS_MAC, flags::RST | flags::ACK)];
            }
        }
        open(n, f)
    }
}

#[test]
fn ports_of_one_real_server_share_one_round_and_each_gets_its_own_verdict() {
    let mut mock = Mock::new(port_81_closed());
    let v = group_of_two(&mut mock);
    assert_eq!(v.len(), 2);
    assert!(v[0].up, "{:?}", v[0]);
    assert!(!v[1].up, "{:?}", v[1]);
    assert!(v[1].reason.contains("81"), "{}", v[1].reason);
    // Each verdict carries the shared echo and ARP results and its own port's check.
    for (verdict, port) in v.iter().zip([80, 81]) {
        let names: Vec<&str> = verdict.checks.iter().map(|c| c.check).collect();
        assert_eq!(names, ["icmp", "tcp", "arp"], "{verdict:?}");
        assert_eq!(verdict.checks[1].port, Some(port));
    }
    // One ARP question and one echo for both; a SYN per port.
    let kinds: Vec<(u16, u8)> = mock
        .sent
        .iter()
        .map(|f| {
            (
                u16::from_be_bytes([f[12], f[13]]),
                f.get(23).copied().unwrap_or(0),
            )
        })
        .collect();
    let count = |k: (u16, u8)| kinds.iter().filter(|&&x| x == k).count();
    assert_eq!(
        count((ethertype::ARP, 0)) + count((ethertype::ARP, 1)),
        1,
        "{kinds:?}"
    );
    assert_eq!(count((ethertype::IPV4, protocol::ICMP)), 1, "{kinds:?}");
    let syns = mock
        .sent
        .iter()
        .filter(|f| f.len() > 47 && f[23] == protocol::TCP && f[47] == flags::SYN)
        .count();
    assert_eq!(syns, 2);
}

/// A wire on which port 81's SYN-ACK comes `delay` after its SYN, everything else at once.
struct SlowPort81 {
    sent: Vec<Vec<u8>>,
    queue: VecDeque<Vec<u8>>,
    late: Option<(Instant, Vec<u8>)>,
    delay: Duration,
}

impl FrameIo for SlowPort81 {
    fn send(&mut self, f: &[u8]) -> io::Result<()> {
        self.sent.push(f.to_vec());
        let syn_to = |port: u16| {
            f.len() > 47
                && f[23] == protocol::TCP
                && f[47] == flags::SYN
                && u16::from_be_bytes([f[36], f[37]]) == port
        };
        if syn_to(81) {
            let answer = tcp_answer(f, RS_MAC, flags::SYN | flags::ACK);
            self.late = Some((Instant::now() + self.delay, answer));
        } else {
            self.queue.extend(server(None)(0, f));
        }
        Ok(())
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        if let Some(f) = self.queue.pop_front() {
            return Ok(Some(Frame::wire(f)));
        }
        match self.late.take() {
            Some((at, f)) if at <= deadline => {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                Ok(Some(Frame::wire(f)))
            }
            other => {
                self.late = other;
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                Ok(None)
            }
        }
    }

    fn recv_ready(&mut self) -> io::Result<Option<Frame>> {
        Ok(self.queue.pop_front().map(Frame::wire))
    }
}

#[test]
fn a_round_waits_for_every_port_s_answer_not_only_the_first() {
    // Port 81 answers 150 ms after port 80 and the echo (far past the grace after the
    // first answer): the round must not settle on port 80 and call port 81 silent.
    let mut wire = SlowPort81 {
        sent: Vec::new(),
        queue: VecDeque::new(),
        late: None,
        delay: Duration::from_millis(150),
    };
    let v = group_of_two(&mut wire);
    assert!(v[0].up && v[1].up, "{v:?}");
    assert!(v[1].checks[1].latency_ms.unwrap_or(0.0) >= 150.0, "{v:?}");
}

#[test]
fn a_forwarded_echo_keeps_the_other_ports_syns_of_the_round_back() {
    // A real server without the VIP that forwards it: TTL exceeded for every probe. The
    // first port's SYN goes with the echo; the second's waits for the echo's result,
    // which shows the path does not serve the VIP, so it never goes out to draw another
    // rate-limited error.
    let mut mock = Mock::new(|_, f: &[u8]| {
        let (eth, _) = EthernetRepr::parse(f).unwrap();
        if eth.ethertype == ethertype::ARP {
            return Vec::new();
        }
        vec![icmp_error(f, ip("192.0.2.11"), 11, 0)]
    });
    let v = group_of_two(&mut mock);
    for verdict in &v {
        assert!(!verdict.up);
        assert!(
            verdict.reason.contains("forwarded the probe"),
            "{}",
            verdict.reason
        );
    }
    let syn_ports: Vec<u16> = mock
        .sent
        .iter()
        .filter(|f| f.len() > 47 && f[23] == protocol::TCP && f[47] == flags::SYN)
        .map(|f| u16::from_be_bytes([f[36], f[37]]))
        .collect();
    assert_eq!(syn_ports, [80]);
}

/// A good real server that answers each frame only once the prober looks for replies:
/// how many frames went out before the prober first did.
struct AnswersWhenAsked {
    sent: Vec<Vec<u8>>,
    queue: VecDeque<Vec<u8>>,
    sent_before_first_look: Option<usize>,
}

impl AnswersWhenAsked {
    fn look(&mut self) -> Option<Frame> {
        self.sent_before_first_look.get_or_insert(self.sent.len());
        self.queue.pop_front().map(Frame::wire)
    }
}

impl FrameIo for AnswersWhenAsked {
    fn send(&mut self, f: &[u8]) -> io::Result<()> {
        self.sent.push(f.to_vec());
        self.queue.extend(server(None)(0, f));
        Ok(())
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        let f = self.look();
        if f.is_none() {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        }
        Ok(f)
    }

    fn recv_ready(&mut self) -> io::Result<Option<Frame>> {
        Ok(self.look())
    }
}

#[test]
fn ports_at_once_sends_every_port_s_syn_with_the_echo_and_judges_alike() {
    // Without it, the round sends the ARP question, the echo and the first port's SYN,
    // then waits for the echo before the other port's SYN; with it (the agent, after a
    // turn that found every port up), both SYNs go with the echo. The verdicts are the
    // same.
    let syns = |sent: &[Vec<u8>]| {
        sent.iter()
            .filter(|f| f.len() > 47 && f[23] == protocol::TCP && f[47] == flags::SYN)
            .count()
    };
    for (at_once, before_looking, syns_before) in [(false, 3, 1), (true, 4, 2)] {
        let mut wire = AnswersWhenAsked {
            sent: Vec::new(),
            queue: VecDeque::new(),
            sent_before_first_look: None,
        };
        let v = group_of_two_with(&mut wire, at_once);
        assert!(v[0].up && v[1].up, "{v:?}");
        let n = wire.sent_before_first_look.expect("it looked for replies");
        assert_eq!(n, before_looking, "ports at once: {at_once}");
        assert_eq!(
            syns(&wire.sent[..n]),
            syns_before,
            "ports at once: {at_once}"
        );
        assert_eq!(syns(&wire.sent), 2, "one SYN per port in all");
    }
}

/// A good real server that records each send call as one batch.
#[derive(Default)]
struct Batches {
    calls: Vec<Vec<Vec<u8>>>,
    queue: VecDeque<Vec<u8>>,
}

impl FrameIo for Batches {
    fn send(&mut self, f: &[u8]) -> io::Result<()> {
        self.send_batch(&[f.to_vec()])
    }

    fn send_batch(&mut self, frames: &[Vec<u8>]) -> io::Result<()> {
        for f in frames {
            self.queue.extend(server(None)(0, f));
        }
        self.calls.push(frames.to_vec());
        Ok(())
    }

    fn recv(&mut self, _deadline: Instant) -> io::Result<Option<Frame>> {
        Ok(self.queue.pop_front().map(Frame::wire))
    }

    fn recv_ready(&mut self) -> io::Result<Option<Frame>> {
        Ok(self.queue.pop_front().map(Frame::wire))
    }
}

/// Whether frame `f` is ARP.
fn is_arp(f: &[u8]) -> bool {
    f.len() > 14 && f[12..14] == [0x08, 0x06]
}

#[test]
fn the_arp_question_heads_the_first_batch() {
    // One system call for the ARP question, the echo and the SYNs, the question first
    // (its answer, if any, arrives while the rest runs); asked once.
    let mut wire = Batches::default();
    let v = group_of_two_with(&mut wire, true);
    assert!(v[0].up && v[1].up, "{v:?}");
    let first = &wire.calls[0];
    assert!(is_arp(&first[0]), "the ARP question first");
    assert_eq!(
        first.len(),
        4,
        "the question, the echo and both SYNs in one call"
    );
    assert_eq!(wire.calls.iter().flatten().filter(|f| is_arp(f)).count(), 1);
}

#[test]
fn known_arp_answers_stand_without_a_question_and_a_question_reports_its_answers() {
    let arp_of = |v: &Verdict| {
        v.checks
            .iter()
            .find(|c| c.check == "arp")
            .map(|c| (c.up, c.reason.clone()))
            .expect("an ARP check result")
    };
    // Asked: one question, and its (empty) answers come back.
    let mut wire = Batches::default();
    let run = group_of_two_knowing(&mut wire, true, None);
    assert_eq!(wire.calls.iter().flatten().filter(|f| is_arp(f)).count(), 1);
    assert_eq!(run.arp_answered, Some(Vec::new()));
    assert!(run.verdicts.iter().all(|v| v.up), "{:?}", run.verdicts);

    // Known, nothing claimed: no question, the check is up, nothing reported as asked.
    let mut wire = Batches::default();
    let run = group_of_two_knowing(&mut wire, true, Some(&[]));
    assert_eq!(wire.calls.iter().flatten().filter(|f| is_arp(f)).count(), 0);
    assert_eq!(run.arp_answered, None);
    assert!(
        run.verdicts.iter().all(|v| v.up && arp_of(v).0),
        "{:?}",
        run.verdicts
    );

    // Known, the VIP claimed: no question, and both pairs are down for it.
    let mut wire = Batches::default();
    let run = group_of_two_knowing(&mut wire, true, Some(&[ip("192.0.2.20")]));
    assert_eq!(wire.calls.iter().flatten().filter(|f| is_arp(f)).count(), 0);
    for v in &run.verdicts {
        assert!(!v.up, "{v:?}");
        let (up, reason) = arp_of(v);
        assert!(
            !up && reason.contains("answers ARP for VIP 192.0.2.20"),
            "{v:?}"
        );
    }
}
