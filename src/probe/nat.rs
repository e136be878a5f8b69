//! NAT (masq) real servers of a UDP service: the service's own check (`--check dns|udp`)
//! sent straight to RIP:RPORT, where the director's NAT sends a client's datagram, with an
//! ordinary kernel UDP socket. A NAT real server holds no VIP, so there is nothing to
//! probe through it; what can fail is the service on its own address, and that is what
//! this checks.
//!
//! The datagram and the verdict rules are the through-VIP check's ([`UdpProbe`]: the
//! query or payload, our id, the rcode by name, `--dns-expect`, the length bounds); only
//! the transport differs. The socket is connected, so the kernel hands us only the real
//! server's datagrams and turns its ICMP port unreachable into `ECONNREFUSED`: "nothing
//! listens". Silence is "no reply". A datagram that needs no reply is refused up front
//! ([`direct_request`]): from the real server's own address silence shows nothing, not
//! even that it is there.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

use super::engine::{Answer, Check, CheckKind, CheckResult, Entropy, OsEntropy};
use super::request::{Request, RequestError};
use super::udp::UdpProbe;
use super::Verdict;
use crate::config::{ForwardingMethod, Tunnel};

/// Sends datagrams to one peer and receives its answers: the kernel socket in use, a
/// recorded exchange in the unit tests.
pub trait DatagramIo {
    fn send(&mut self, payload: &[u8]) -> io::Result<()>;
    /// One datagram from the peer into `buf` (its length), or `None` when `until` passes
    /// first. An ICMP error the kernel matched to the socket comes back as the error.
    fn recv(&mut self, buf: &mut [u8], until: Instant) -> io::Result<Option<usize>>;
}

/// A UDP socket connected to the real server (any local address and port).
pub struct KernelUdp(UdpSocket);

impl KernelUdp {
    /// A socket on any address and a port the kernel picks, of `target`'s family.
    pub fn bind(target: SocketAddr) -> io::Result<KernelUdp> {
        let any = match target {
            SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        };
        UdpSocket::bind(any).map(KernelUdp)
    }

    /// Connects to `target`: the kernel picks the route and source, and fails here when
    /// it has no route.
    pub fn connect(&self, target: SocketAddr) -> io::Result<()> {
        self.0.connect(target)
    }
}

impl DatagramIo for KernelUdp {
    fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        self.0.send(payload).map(|_| ())
    }

    fn recv(&mut self, buf: &mut [u8], until: Instant) -> io::Result<Option<usize>> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        // A zero timeout would block for ever; the wait is at least 1 ms.
        self.0
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        match self.0.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            // A signal: the caller asks again with the time left.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The request for `--method nat --proto udp --check dns|udp`: the one UDP check, to the
/// real server's own address and port. A datagram check that needs no reply is refused:
/// without a path through the VIP nothing would show the real server is there, so it
/// could never be up (the through-VIP check needs the VIP's echo for the same reason).
pub fn direct_request(
    vips: Vec<IpAddr>,
    rip: IpAddr,
    udp_check: CheckKind,
    timeout: Duration,
    retries: u32,
    iface: Option<String>,
    json: bool,
) -> Result<Request, RequestError> {
    if let CheckKind::Udp { probe, .. } = udp_check {
        if !probe.needs_reply() {
            return Err(RequestError {
                message: format!(
                    "--check udp without --udp-expect-len cannot check the NAT real server {rip}: \
                     silence from its own address shows nothing"
                ),
                hint: "give the reply length the service answers with (--udp-expect-len MIN-MAX)"
                    .to_string(),
            });
        }
    }
    Ok(Request {
        vips,
        rip,
        method: ForwardingMethod::Nat,
        checks: vec![udp_check],
        icmp_only_udp: false,
        allow_arp_answer: false,
        app: None,
        timeout,
        retries: retries.min(100),
        iface,
        json,
        tunnel: Tunnel::default(),
    })
}

/// Runs a NAT request ([`direct_request`]) over a kernel UDP socket.
pub fn probe(req: &Request, start: Instant) -> Verdict {
    let Some(&CheckKind::Udp { port, .. }) = req.checks.first() else {
        return Verdict::failed(format!(
            "a NAT real server ({}) does not hold the VIP; check it through its own address",
            req.rip
        ));
    };
    let target = match req.rip {
        // A link-local real server is reached through the interface given.
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => {
            let scope = req
                .iface
                .as_deref()
                .and_then(crate::net::rtnl::index_of)
                .unwrap_or(0);
            SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope))
        }
        ip => SocketAddr::new(ip, port),
    };
    let mut sock = match KernelUdp::bind(target) {
        Ok(s) => s,
        Err(e) => return Verdict::cannot_probe(super::setup_error("cannot open a UDP socket", &e)),
    };
    if let Err(e) = sock.connect(target) {
        return Verdict::failed(super::setup_error(
            &format!("no route to the real server {}", req.rip),
            &e,
        ));
    }
    run(req, &mut sock, &mut OsEntropy, start)
}

/// The check over any [`DatagramIo`]: `1 + retries` attempts, each with a fresh tag (the
/// DNS id), spread evenly over the budget from `start`; a reply to any of them that
/// arrives in time counts.
pub fn run(
    req: &Request,
    io: &mut impl DatagramIo,
    entropy: &mut impl Entropy,
    start: Instant,
) -> Verdict {
    let Some(&CheckKind::Udp { port, probe, .. }) = req.checks.first() else {
        return Verdict::failed("no check was run");
    };
    let check = Check {
        kind: CheckKind::Udp {
            port,
            src_port: 0,
            probe,
        },
        vip: req.rip,
        src: match req.rip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        },
    };
    let result = exchange(&check, port, probe, req, io, entropy, start);
    verdict(req, result)
}

fn exchange(
    check: &Check,
    port: u16,
    probe: UdpProbe,
    req: &Request,
    io: &mut impl DatagramIo,
    entropy: &mut impl Entropy,
    start: Instant,
) -> CheckResult {
    let rip = req.rip;
    let deadline = start + req.timeout;
    let attempts = req.retries.saturating_add(1);
    let interval = req.timeout / attempts;
    let mut tags: Vec<u16> = Vec::new();
    let mut sent_at: Vec<Instant> = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let n = |tags: &[u16]| tags.len() as u32;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let due = start + interval * n(&tags);
        if n(&tags) < attempts && now >= due {
            // A tag no earlier attempt has, so a late reply is matched to its own query.
            let mut tag = entropy.next_u32() as u16;
            while tags.contains(&tag) {
                tag = tag.wrapping_add(1);
            }
            let sent = io.send(&probe.payload(tag));
            tags.push(tag);
            sent_at.push(Instant::now());
            if let Err(e) = sent {
                return failure(check, rip, port, &e, n(&tags));
            }
            continue;
        }
        let until = if n(&tags) < attempts {
            (start + interval * n(&tags)).min(deadline)
        } else {
            deadline
        };
        match io.recv(&mut buf, until) {
            Ok(None) => {}
            Ok(Some(len)) => {
                let reply = &buf[..len];
                let Some(i) = probe.answers(reply, &tags) else {
                    continue;
                };
                let latency = Instant::now().saturating_duration_since(sent_at[i]);
                return match probe.judge(reply, port) {
                    Ok(warning) => CheckResult::new(
                        check,
                        true,
                        warning.unwrap_or_default(),
                        Some(latency),
                        n(&tags),
                    ),
                    Err(reason) => CheckResult::new(
                        check,
                        false,
                        format!("real server {rip}: {reason}"),
                        Some(latency),
                        n(&tags),
                    )
                    .answered(Answer::Refused),
                };
            }
            Err(e) => return failure(check, rip, port, &e, n(&tags)),
        }
    }
    CheckResult::new(
        check,
        false,
        format!(
            "no reply: real server {rip} did not answer {} on udp/{port}",
            probe.name()
        ),
        None,
        n(&tags),
    )
}

/// The kernel's word on a datagram: port unreachable means nothing listens; anything
/// else (host or network unreachable, ...) is said as it is.
fn failure(check: &Check, rip: IpAddr, port: u16, e: &io::Error, attempts: u32) -> CheckResult {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        return CheckResult::new(
            check,
            false,
            format!(
                "real server {rip} present, nothing listens on udp/{port} (ICMP port unreachable)"
            ),
            None,
            attempts,
        )
        .answered(Answer::Refused);
    }
    CheckResult::new(
        check,
        false,
        super::setup_error(&format!("real server {rip} on udp/{port}"), e),
        None,
        attempts,
    )
    .answered(Answer::OtherError)
}

fn verdict(req: &Request, result: CheckResult) -> Verdict {
    let port = result.port.unwrap_or(0);
    let up = result.up;
    Verdict {
        up,
        reason: if up {
            String::new()
        } else {
            result.reason.clone()
        },
        warnings: if up && !result.reason.is_empty() {
            vec![result.reason.clone()]
        } else {
            Vec::new()
        },
        rip: Some(req.rip),
        method: Some(ForwardingMethod::Nat),
        iface: None,
        note: Some(format!(
            "NAT: checked at the real server's own address {}",
            SocketAddr::new(req.rip, port)
        )),
        checks: vec![result],
        mac_change: None,
        own_fault: false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::config::Protocol;
    use crate::probe::request::{CheckSelection, ProbeInputs};
    use crate::probe::session::AppCheckOptions;
    use crate::probe::udp::{UdpCheckKind, UdpCheckOptions};

    /// What the real server does with each datagram: the answers it queues.
    type Server = Box<dyn FnMut(&[u8]) -> Vec<io::Result<Vec<u8>>>>;

    /// A recorded exchange: every datagram sent, and the server's answers in order.
    struct Wire {
        sent: Vec<Vec<u8>>,
        queued: VecDeque<io::Result<Vec<u8>>>,
        server: Server,
    }

    impl Wire {
        fn new(server: impl FnMut(&[u8]) -> Vec<io::Result<Vec<u8>>> + 'static) -> Wire {
            Wire {
                sent: Vec::new(),
                queued: VecDeque::new(),
                server: Box::new(server),
            }
        }
    }

    impl DatagramIo for Wire {
        fn send(&mut self, payload: &[u8]) -> io::Result<()> {
            self.sent.push(payload.to_vec());
            let answers = (self.server)(payload);
            self.queued.extend(answers);
            Ok(())
        }

        fn recv(&mut self, buf: &mut [u8], until: Instant) -> io::Result<Option<usize>> {
            match self.queued.pop_front() {
                Some(Ok(d)) => {
                    buf[..d.len()].copy_from_slice(&d);
                    Ok(Some(d.len()))
                }
                Some(Err(e)) => Err(e),
                None => {
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    Ok(None)
                }
            }
        }
    }

    struct Counter(u32);

    impl Entropy for Counter {
        fn next_u32(&mut self) -> u32 {
            self.0 += 1;
            0x1230 + self.0
        }
    }

    fn inputs(check: CheckSelection, udp: UdpCheckOptions) -> ProbeInputs {
        ProbeInputs {
            vips: Vec::new(),
            rip: None,
            port: None,
            proto: Protocol::Udp,
            method: ForwardingMethod::Nat,
            check,
            allow_arp_answer: false,
            app: AppCheckOptions::default(),
            timeout: "90ms".into(),
            retries: 2,
            iface: None,
            json: false,
            // ldirectord's VIP VPORT RIP RPORT: NAT may change the port.
            positional: ["192.0.2.20", "53", "198.51.100.11", "5353"]
                .map(String::from)
                .to_vec(),
            tunnel: Tunnel::default(),
            udp,
        }
    }

    fn dns_request(expect: Option<&str>) -> Request {
        Request::from_inputs(&inputs(
            CheckSelection::Udp(UdpCheckKind::Dns),
            UdpCheckOptions {
                dns_name: Some("www.example.org".into()),
                dns_type: Some("A".into()),
                dns_expect: expect.map(str::to_string),
                ..Default::default()
            },
        ))
        .unwrap()
    }

    /// A DNS reply to `query` (its id and question) with `rcode` and an A record.
    fn reply(query: &[u8], rcode: u8, answer: Option<[u8; 4]>) -> Vec<u8> {
        let mut m = query.to_vec();
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        if let Some(a) = answer {
            m[7] = 1;
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
            m.extend_from_slice(&a);
        }
        m
    }

    fn run_on(req: &Request, wire: &mut Wire) -> Verdict {
        run(req, wire, &mut Counter(0), Instant::now())
    }

    #[test]
    fn nat_requests_check_the_real_servers_own_port() {
        let req = dns_request(None);
        assert_eq!(req.method, ForwardingMethod::Nat);
        assert_eq!(req.rip, "198.51.100.11".parse::<IpAddr>().unwrap());
        let [CheckKind::Udp { port, .. }] = req.checks.as_slice() else {
            panic!("{:?}", req.checks)
        };
        assert_eq!(*port, 5353, "RPORT, where NAT sends the datagram");
        // Everything else under nat keeps its refusal.
        for check in [CheckSelection::All, CheckSelection::Icmp] {
            let e = Request::from_inputs(&inputs(check, UdpCheckOptions::default())).unwrap_err();
            assert!(e.message.contains("behind NAT"), "{e}");
        }
        let tcp = ProbeInputs {
            proto: Protocol::Tcp,
            ..inputs(CheckSelection::Tcp, UdpCheckOptions::default())
        };
        let e = Request::from_inputs(&tcp).unwrap_err();
        assert!(e.message.contains("behind NAT"), "{e}");
        // A datagram that needs no reply could never show anything from here.
        let e = Request::from_inputs(&inputs(
            CheckSelection::Udp(UdpCheckKind::Datagram),
            UdpCheckOptions::default(),
        ))
        .unwrap_err();
        assert!(e.message.contains("--udp-expect-len"), "{e}");
    }

    #[test]
    fn the_query_sent_is_the_through_vip_checks_and_a_good_answer_is_up() {
        let req = dns_request(Some("192.0.2.53"));
        let mut wire = Wire::new(|q| vec![Ok(reply(q, 0, Some([192, 0, 2, 53])))]);
        let v = run_on(&req, &mut wire);
        assert!(v.up, "{}", v.line());
        assert_eq!(wire.sent.len(), 1);
        // id 0x1231 (our first tag), RD, one question: www.example.org A IN.
        let mut want = vec![0x12, 0x31, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(b"\x03www\x07example\x03org\x00\x00\x01\x00\x01");
        assert_eq!(wire.sent[0], want);
        assert!(v.line().starts_with("up: dns "), "{}", v.line());
        assert!(
            v.line()
                .ends_with("(NAT: checked at the real server's own address 198.51.100.11:5353)"),
            "{}",
            v.line()
        );
        assert_eq!(v.method, Some(ForwardingMethod::Nat));
    }

    #[test]
    fn rcodes_answers_and_ids_are_judged_as_through_the_vip() {
        let req = dns_request(Some("192.0.2.53"));
        for (rcode, answer, want) in [
            (
                5,
                None,
                "real server 198.51.100.11: DNS answered REFUSED on udp/5353",
            ),
            (
                3,
                None,
                "real server 198.51.100.11: DNS answered NXDOMAIN on udp/5353",
            ),
            (
                0,
                Some([192, 0, 2, 54]),
                "real server 198.51.100.11: DNS answered 192.0.2.54 on udp/5353, not 192.0.2.53",
            ),
        ] {
            let mut wire = Wire::new(move |q| vec![Ok(reply(q, rcode, answer))]);
            let v = run_on(&req, &mut wire);
            assert!(!v.up);
            assert_eq!(v.line(), format!("down: {want}"));
        }
        // A reply with another id (or a query) answers nothing of ours: silence.
        let mut wire = Wire::new(|q| {
            let mut other = reply(q, 0, Some([192, 0, 2, 53]));
            other[1] ^= 0xff;
            vec![Ok(q.to_vec()), Ok(other)]
        });
        let v = run_on(&req, &mut wire);
        assert_eq!(
            v.line(),
            "down: no reply: real server 198.51.100.11 did not answer dns on udp/5353"
        );
        assert_eq!(wire.sent.len(), 3, "1 + 2 retries");
        // A late answer to the first attempt still counts.
        let mut first: Option<Vec<u8>> = None;
        let mut wire = Wire::new(move |q| match first.take() {
            None => {
                first = Some(q.to_vec());
                Vec::new()
            }
            Some(f) => vec![Ok(reply(&f, 0, Some([192, 0, 2, 53])))],
        });
        assert!(run_on(&req, &mut wire).up);
    }

    #[test]
    fn port_unreachable_and_other_kernel_errors() {
        let req = dns_request(None);
        let mut wire = Wire::new(|_| vec![Err(io::Error::from_raw_os_error(libc::ECONNREFUSED))]);
        assert_eq!(
            run_on(&req, &mut wire).line(),
            "down: real server 198.51.100.11 present, nothing listens on udp/5353 (ICMP port \
             unreachable)"
        );
        let mut wire = Wire::new(|_| vec![Err(io::Error::from_raw_os_error(libc::EHOSTUNREACH))]);
        assert_eq!(
            run_on(&req, &mut wire).line(),
            "down: real server 198.51.100.11 on udp/5353: No route to host"
        );
    }

    #[test]
    fn datagram_replies_need_the_given_length() {
        let req = Request::from_inputs(&inputs(
            CheckSelection::Udp(UdpCheckKind::Datagram),
            UdpCheckOptions {
                udp_payload: Some("68656c6c6f".into()),
                udp_expect_len: Some("5-10".into()),
                ..Default::default()
            },
        ))
        .unwrap();
        let mut wire = Wire::new(|p| vec![Ok(p.to_vec())]);
        let v = run_on(&req, &mut wire);
        assert!(v.up, "{}", v.line());
        assert_eq!(wire.sent, vec![b"hello".to_vec()]);
        let mut wire = Wire::new(|_| vec![Ok(b"hi".to_vec())]);
        assert_eq!(
            run_on(&req, &mut wire).line(),
            "down: real server 198.51.100.11: udp/5353 replied with 2 bytes, not 5-10"
        );
    }
}
