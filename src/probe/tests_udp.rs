//! The UDP service checks (`--check dns|udp`) against the mocked wire: the exact
//! datagram sent, and the verdict for answers, refusals, port unreachable, wrong MACs and
//! silence. No root needed.

use super::*;
use crate::probe::udp::{UdpCheckKind, UdpCheckOptions, UdpProbe};
use crate::wire::udp::UdpRepr;

fn dns_probe(expect: Option<&str>) -> UdpProbe {
    UdpCheckOptions {
        dns_name: Some("www.example.org".into()),
        dns_type: Some("A".into()),
        dns_expect: expect.map(str::to_string),
        ..Default::default()
    }
    .to_probe(UdpCheckKind::Dns)
    .unwrap()
}

fn udp_check(probe: UdpProbe) -> Check {
    Check {
        kind: CheckKind::Udp {
            port: 53,
            src_port: 40000,
            probe,
        },
        vip: ip("192.0.2.20"),
        src: ip("192.0.2.2"),
    }
}

/// The datagram (ports, payload) inside a frame we sent.
fn datagram(frame: &[u8]) -> Option<(Ipv4Repr, u16, u16, Vec<u8>)> {
    let (ip, body) = inner(frame);
    if ip.protocol != protocol::UDP {
        return None;
    }
    let d = UdpRepr::parse(IpAddr::V4(ip.src), IpAddr::V4(ip.dst), &body, true).unwrap();
    Some((ip, d.src_port, d.dst_port, d.payload.to_vec()))
}

/// A UDP reply to the datagram in `sent`, from `mac`, carrying `payload`.
fn udp_reply(sent: &[u8], mac: MacAddr, payload: &[u8]) -> Vec<u8> {
    let (ip, sport, dport, _) = datagram(sent).unwrap();
    let (src, dst) = (IpAddr::V4(ip.dst), IpAddr::V4(ip.src));
    let r = UdpRepr {
        src_port: dport,
        dst_port: sport,
        payload,
    };
    let mut b = vec![0; r.buffer_len()];
    r.emit(src, dst, &mut b).unwrap();
    ipv4_frame(mac, src, dst, protocol::UDP, &b)
}

/// The DNS reply to the query in `sent`: its id and question, QR RA, `rcode`, and one A
/// record when `answer` is given.
fn dns_answer(sent: &[u8], mac: MacAddr, rcode: u8, answer: Option<[u8; 4]>) -> Vec<u8> {
    let (_, _, _, q) = datagram(sent).unwrap();
    let mut m = q.clone();
    m[2] |= 0x80;
    m[3] = 0x80 | rcode;
    if let Some(a) = answer {
        m[7] = 1;
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        m.extend_from_slice(&a);
    }
    udp_reply(sent, mac, &m)
}

fn run_one<F: FnMut(usize, &[u8]) -> Vec<Vec<u8>>>(
    mock: &mut Mock<F>,
    method: ForwardingMethod,
    check: Check,
) -> engine::CheckResult {
    run(mock, method, check, 2)
}

#[test]
fn dns_query_is_sent_byte_exactly_and_its_answer_accepted() {
    let mut mock = Mock::new(|_, f: &[u8]| vec![dns_answer(f, RS_MAC, 0, Some([192, 0, 2, 53]))]);
    let r = run_one(
        &mut mock,
        ForwardingMethod::DirectRouting,
        udp_check(dns_probe(Some("192.0.2.53"))),
    );
    assert!(r.up, "{r:?}");
    assert_eq!((r.check, r.port), ("dns", Some(53)));
    assert!(r.latency_ms.is_some());
    // Id 0xbeef (the first random bits), RD, www.example.org A IN; TTL 1, IP id 0x1234,
    // from the held port 40000 to 53. Bytes computed independently (RFC 768/1035/1071).
    let expected: [u8; 75] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x3d, 0x12, 0x34, 0x40, 0x00, 0x01, 0x11, 0xe3, 0x65, 0xc0, 0x00, 0x02, 0x02,
        0xc0, 0x00, 0x02, 0x14, 0x9c, 0x40, 0x00, 0x35, 0x00, 0x29, 0xd2, 0xbd, 0xbe, 0xef, 0x01,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x77, 0x77, 0x77, 0x07, 0x65,
        0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x6f, 0x72, 0x67, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];
    assert_eq!(mock.sent, vec![expected.to_vec()]);
}

#[test]
fn dns_rcodes_and_wrong_answers_are_down_by_name() {
    for (rcode, answer, reason) in [
        (5, None, "VIP 192.0.2.20: DNS answered REFUSED on udp/53"),
        (3, None, "VIP 192.0.2.20: DNS answered NXDOMAIN on udp/53"),
        (2, None, "VIP 192.0.2.20: DNS answered SERVFAIL on udp/53"),
        (
            0,
            Some([192, 0, 2, 99]),
            "VIP 192.0.2.20: DNS answered 192.0.2.99 on udp/53, not 192.0.2.53",
        ),
    ] {
        let mut mock = Mock::new(move |_, f: &[u8]| vec![dns_answer(f, RS_MAC, rcode, answer)]);
        let r = run_one(
            &mut mock,
            ForwardingMethod::DirectRouting,
            udp_check(dns_probe(Some("192.0.2.53"))),
        );
        assert!(!r.up);
        assert_eq!(r.reason, reason);
    }
}

#[test]
fn a_reply_with_another_id_or_port_is_not_ours() {
    let mut mock = Mock::new(|_, f: &[u8]| {
        // Another id (a correct checksum: the frame is well formed, just not ours).
        let (_, _, _, mut q) = datagram(f).unwrap();
        q[0] ^= 0xff;
        q[2] |= 0x80;
        let other_id = udp_reply(f, RS_MAC, &q);
        // Our id, but to another port of ours.
        let mut other_port = dns_answer(f, RS_MAC, 0, None);
        other_port[36..38].copy_from_slice(&40001u16.to_be_bytes());
        other_port[40..42].fill(0); // no checksum (IPv4)
        vec![other_id, other_port]
    });
    let r = run_one(
        &mut mock,
        ForwardingMethod::DirectRouting,
        udp_check(dns_probe(None)),
    );
    assert!(!r.up);
    assert_eq!(r.attempts, 2);
    assert_eq!(
        r.reason,
        "no reply from VIP 192.0.2.20 on udp/53 (dns) through 02:00:00:00:00:0b"
    );
}

#[test]
fn an_answer_from_another_mac_is_down_naming_both() {
    let mut mock = Mock::new(|_, f: &[u8]| vec![dns_answer(f, OTHER_MAC, 0, None)]);
    let r = run_one(
        &mut mock,
        ForwardingMethod::DirectRouting,
        udp_check(dns_probe(None)),
    );
    assert!(!r.up);
    assert_eq!(
        r.reason,
        "reply came from 02:00:00:00:00:0d, not the real server 02:00:00:00:00:0b"
    );
}

/// ICMP port unreachable from `from`, in a frame from `mac`, quoting the datagram sent.
fn port_unreachable(sent: &[u8], from: &str, mac: MacAddr) -> Vec<u8> {
    let mut f = icmp_error(sent, ip(from), icmpv4::kind::DST_UNREACHABLE, 3);
    f[6..12].copy_from_slice(&mac.0);
    f
}

#[test]
fn port_unreachable_from_the_vip_through_the_real_server_is_nothing_listening() {
    let mut mock = Mock::new(|_, f: &[u8]| vec![port_unreachable(f, "192.0.2.20", RS_MAC)]);
    let r = run_one(
        &mut mock,
        ForwardingMethod::DirectRouting,
        udp_check(dns_probe(None)),
    );
    assert!(!r.up);
    assert_eq!(r.answer, engine::Answer::Refused);
    assert_eq!(
        r.reason,
        "VIP 192.0.2.20 present, nothing listens on udp/53 (ICMP port unreachable)"
    );
    // The same error in a frame from another host does not count.
    let mut mock = Mock::new(|_, f: &[u8]| vec![port_unreachable(f, "192.0.2.20", OTHER_MAC)]);
    let r = run_one(
        &mut mock,
        ForwardingMethod::DirectRouting,
        udp_check(dns_probe(None)),
    );
    assert!(
        r.reason.starts_with("reply came from 02:00:00:00:00:0d"),
        "{r:?}"
    );
}

#[test]
fn tunnel_sends_the_datagram_encapsulated_and_port_unreachable_from_the_rip_is_no_tunnel() {
    let mut mock = Mock::new(|_, f: &[u8]| vec![port_unreachable(f, "192.0.2.11", RS_MAC)]);
    let r = run_one(
        &mut mock,
        ForwardingMethod::Tunnel,
        udp_check(dns_probe(None)),
    );
    let (eth, payload) = EthernetRepr::parse(&mock.sent[0]).unwrap();
    assert_eq!(eth.ethertype, ethertype::IPV4);
    let (outer, _) = Ipv4Repr::parse(payload).unwrap();
    assert_eq!(outer.protocol, protocol::IPIP);
    let (hdr, sport, dport, _) = datagram(&mock.sent[0]).unwrap();
    assert_eq!((hdr.ttl, sport, dport), (1, 40000, 53));
    assert_eq!(r.answer, engine::Answer::PathError);
    assert!(r.reason.contains("does not decapsulate"), "{r:?}");
}

fn echo_udp(payload_len: Option<(u16, u16)>) -> UdpProbe {
    UdpCheckOptions {
        udp_payload: Some("70696e67".into()),
        udp_expect_len: payload_len.map(|(a, b)| format!("{a}-{b}")),
        ..Default::default()
    }
    .to_probe(UdpCheckKind::Datagram)
    .unwrap()
}

#[test]
fn datagram_payload_goes_out_and_reply_length_is_checked() {
    let mut mock = Mock::new(|_, f: &[u8]| {
        let (_, _, _, p) = datagram(f).unwrap();
        vec![udp_reply(f, RS_MAC, &p)]
    });
    let r = run_one(
        &mut mock,
        ForwardingMethod::DirectRouting,
        udp_check(echo_udp(Some((4, 4)))),
    );
    assert!(r.up, "{r:?}");
    assert_eq!(datagram(&mock.sent[0]).unwrap().3, b"ping");
    let mut mock = Mock::new(|_, f: &[u8]| vec![udp_reply(f, RS_MAC, b"pong!")]);
    let r = run_one(
        &mut mock,
        ForwardingMethod::DirectRouting,
        udp_check(echo_udp(Some((1, 4)))),
    );
    assert_eq!(
        r.reason,
        "VIP 192.0.2.20: udp/53 replied with 5 bytes, not 1-4"
    );
}

fn verdict_of<F: FnMut(usize, &[u8]) -> Vec<Vec<u8>>>(
    mock: &mut Mock<F>,
    probe: UdpProbe,
    budget: Duration,
) -> Verdict {
    let check = udp_check(probe);
    let req = request(vec![CheckKind::Icmp, check.kind], &["192.0.2.20"]);
    run_checks(
        &req,
        &path(ForwardingMethod::DirectRouting),
        mock,
        &mut Counter(0),
        &[icmp_check(), check],
        Instant::now() + budget,
    )
}

#[test]
fn echo_filtered_but_dns_answering_is_up_with_a_note() {
    let mut mock = Mock::new(|_, f: &[u8]| match datagram(f) {
        Some(_) => vec![dns_answer(f, RS_MAC, 0, None)],
        None => Vec::new(),
    });
    let v = verdict_of(&mut mock, dns_probe(None), Duration::from_millis(300));
    assert!(v.up, "{v:?}");
    assert!(v.line().starts_with("up: dns "), "{}", v.line());
    assert_eq!(v.note.as_deref(), Some("icmp filtered"));
}

#[test]
fn silence_is_down_no_reply_and_echo_explains_it() {
    // Echo answered, DNS silent: the VIP is there, the service does not answer.
    let mut mock = Mock::new(|_, f: &[u8]| match datagram(f) {
        Some(_) => Vec::new(),
        None => vec![echo_reply(f, RS_MAC, 0)],
    });
    let v = verdict_of(&mut mock, dns_probe(None), Duration::from_millis(200));
    assert!(!v.up);
    assert_eq!(
        v.reason,
        "VIP 192.0.2.20 answers ICMP echo through 02:00:00:00:00:0b but dns on udp/53 gave no \
         reply"
    );
    // Nothing at all: no reply, and no VIP as far as can be seen.
    let mut mock = Mock::new(|_, _: &[u8]| Vec::new());
    let v = verdict_of(&mut mock, dns_probe(None), Duration::from_millis(100));
    assert!(!v.up);
    assert_eq!(
        v.reason,
        "no reply: VIP 192.0.2.20 did not answer through 02:00:00:00:00:0b (VIP not configured?)"
    );
}

#[test]
fn a_datagram_that_needs_no_reply_is_up_only_while_the_vip_answers_echo() {
    let mut mock = Mock::new(|_, f: &[u8]| match datagram(f) {
        Some(_) => Vec::new(),
        None => vec![echo_reply(f, RS_MAC, 0)],
    });
    let start = Instant::now();
    let v = verdict_of(&mut mock, echo_udp(None), Duration::from_secs(2));
    assert!(v.up, "{v:?}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "settles soon after the echo, not at the deadline"
    );
    assert_eq!(v.note.as_deref(), Some("udp/53: no reply, none required"));
    let mut mock = Mock::new(|_, _: &[u8]| Vec::new());
    let v = verdict_of(&mut mock, echo_udp(None), Duration::from_millis(100));
    assert!(!v.up);
    assert!(
        v.reason
            .starts_with("no reply on udp/53 (none required) and VIP"),
        "{}",
        v.reason
    );
    // Port unreachable decides even without a reply needed.
    let mut mock = Mock::new(|_, f: &[u8]| match datagram(f) {
        Some(_) => vec![port_unreachable(f, "192.0.2.20", RS_MAC)],
        None => vec![echo_reply(f, RS_MAC, 0)],
    });
    let v = verdict_of(&mut mock, echo_udp(None), Duration::from_secs(1));
    assert!(!v.up);
    assert!(
        v.reason.contains("nothing listens on udp/53"),
        "{}",
        v.reason
    );
}
