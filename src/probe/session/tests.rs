//! The session loop against an in-memory real server (a second smoltcp stack behind a
//! fake packet socket): handshake, request, verdict and the closing RST, without root.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use super::link::{Framing, Link};
use super::*;
use crate::net::Frame;
use crate::wire::MacAddr;

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const MY_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const SERVER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x11]);

/// A smoltcp device made of two queues.
#[derive(Default)]
struct Queues {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct QRx(Vec<u8>);
struct QTx<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for QRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for QTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0; len];
        let r = f(&mut b);
        self.0.push(b);
        r
    }
}

impl phy::Device for Queues {
    type RxToken<'a> = QRx;
    type TxToken<'a> = QTx<'a>;
    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(QRx, QTx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((QRx(p), QTx(&mut self.tx)))
    }
    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<QTx<'_>> {
        Some(QTx(&mut self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = 1500;
        c
    }
}

/// How the fake real server behaves.
#[derive(Clone, Copy, PartialEq)]
enum Server {
    /// Listens on VIP:80 and answers every request with this status and body.
    Answers(u16, &'static str),
    /// Nothing listens on VIP:80: the SYN is answered with a RST.
    Closed,
    /// The frames go nowhere.
    Silent,
}

/// The fake packet socket: frames the client sends reach the server's stack; its answers
/// come back framed to the client's MAC.
struct FakeWire {
    mode: Server,
    /// Bytes in front of the inner IP packet: 14 for DR, 34 for IPv4-in-IPv4 TUN.
    header: usize,
    iface: Interface,
    dev: Queues,
    sockets: SocketSet<'static>,
    handle: SocketHandle,
    request: Vec<u8>,
    answered: bool,
    inbox: VecDeque<Vec<u8>>,
    origin: Instant,
}

impl FakeWire {
    fn new(mode: Server, header: usize) -> FakeWire {
        let mut dev = Queues::default();
        let origin = Instant::now();
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = 7;
        let mut iface = Interface::new(config, &mut dev, smoltcp::time::Instant::from_millis(0));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::from(VIP), 24));
        });
        let mut sockets = SocketSet::new(vec![]);
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 8192]),
            tcp::SocketBuffer::new(vec![0; 8192]),
        );
        if let Server::Answers(..) = mode {
            s.listen(80).expect("listen");
        }
        let handle = sockets.add(s);
        FakeWire {
            mode,
            header,
            iface,
            dev,
            sockets,
            handle,
            request: Vec::new(),
            answered: false,
            inbox: VecDeque::new(),
            origin,
        }
    }

    /// Lets the server's stack and application run once.
    fn turn(&mut self) {
        let now = smoltcp::time::Instant::from_micros(self.origin.elapsed().as_micros() as i64);
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        let s = self.sockets.get_mut::<tcp::Socket>(self.handle);
        while s.can_recv() {
            let _ = s.recv(|b| {
                self.request.extend_from_slice(b);
                (b.len(), ())
            });
        }
        if let Server::Answers(status, body) = self.mode {
            if !self.answered && self.request.windows(4).any(|w| w == b"\r\n\r\n") {
                let text = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.send_slice(text.as_bytes());
                self.answered = true;
            }
        }
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        for ip in self.dev.tx.drain(..) {
            let mut frame = MY_MAC.0.to_vec();
            frame.extend_from_slice(&SERVER_MAC.0);
            frame.extend_from_slice(&[0x08, 0x00]);
            frame.extend_from_slice(&ip);
            self.inbox.push_back(frame);
        }
    }
}

impl FrameIo for FakeWire {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        assert_eq!(
            &frame[..6],
            &SERVER_MAC.0,
            "frames go to the real server's MAC"
        );
        if self.header == 34 {
            // IPv4-in-IPv4 to the RIP; the real server decapsulates.
            assert_eq!(frame[14 + 9], 4, "outer protocol IPIP");
            assert_eq!(
                &frame[14 + 16..14 + 20],
                &[192, 0, 2, 11],
                "outer destination: RIP"
            );
        }
        if self.mode != Server::Silent {
            self.dev.rx.push_back(frame[self.header..].to_vec());
            self.turn();
        }
        Ok(())
    }

    /// Lets the server run for a moment, then takes what it sent.
    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_millis(1)));
        if self.mode != Server::Silent {
            self.turn();
        }
        self.recv_ready()
    }

    fn recv_ready(&mut self) -> io::Result<Option<Frame>> {
        Ok(self.inbox.pop_front().map(Frame::wire))
    }
}

/// A FakeWire whose sent frames are also copied to a log the test keeps.
struct Logged {
    inner: FakeWire,
    log: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl FrameIo for Logged {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if let Ok(mut l) = self.log.lock() {
            l.push(frame.to_vec());
        }
        self.inner.send(frame)
    }
    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        self.inner.recv(deadline)
    }

    fn recv_ready(&mut self) -> io::Result<Option<Frame>> {
        self.inner.recv_ready()
    }
}

fn session(mode: Server, check: &AppCheck, budget: Duration) -> (Outcome, Vec<Vec<u8>>) {
    session_via(ForwardingMethod::DirectRouting, mode, check, budget)
}

fn session_via(
    method: ForwardingMethod,
    mode: Server,
    check: &AppCheck,
    budget: Duration,
) -> (Outcome, Vec<Vec<u8>>) {
    let framing = Framing {
        path: NetPath {
            iface: "fake0".into(),
            ifindex: 1,
            our_mac: MY_MAC,
            src: IpAddr::V4(SRC),
            rip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)),
            next_hop_mac: SERVER_MAC,
            method,
            encap: crate::config::Tunnel::default(),
        },
        src: IpAddr::V4(SRC),
        vip: IpAddr::V4(VIP),
        port: 80,
        local_port: 40000,
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let wire = Logged {
        inner: FakeWire::new(mode, framing.header_len()),
        log: log.clone(),
    };
    let link = Link::new(wire, framing, 1500);
    let start = Instant::now();
    let outcome =
        drive("fake0", link, None, check, None, start + budget, start).expect("session runs");
    let sent = log.lock().map(|l| l.clone()).unwrap_or_default();
    (outcome, sent)
}

fn payload(frame: &[u8]) -> &[u8] {
    let tcp = 14 + 20;
    &frame[tcp + usize::from(frame[tcp + 12] >> 4) * 4..]
}

fn tcp_flags(frame: &[u8]) -> u8 {
    frame[14 + 20 + 13]
}

fn expect(status: &str, body: Option<&str>) -> HttpExpect {
    HttpExpect {
        path: "/".into(),
        host: None,
        status: StatusRange::parse(status).expect("range"),
        body_contains: body.map(str::to_string),
        digest: None,
    }
}

#[test]
fn http_answer_is_up_and_the_session_ends_with_a_rst() {
    let (o, sent) = session(
        Server::Answers(200, "all good"),
        &AppCheck::Http(expect("200-299", Some("good"))),
        Duration::from_secs(5),
    );
    assert!(o.is_up(), "{o}");
    assert_eq!((o.status, o.body_len), (Some(200), Some(8)));
    assert_eq!(
        o.digest.as_deref(),
        Some(http::md5_hex(b"all good").as_str())
    );
    assert_eq!(tcp_flags(&sent[0]) & 0x12, 0x02, "the first frame is a SYN");
    assert_eq!(sent[0][14 + 8], 1, "TTL 1");
    let last = sent.last().expect("frames");
    assert_eq!(tcp_flags(last) & 0x04, 0x04, "the last frame is a RST");
    let request = sent
        .iter()
        .map(|f| String::from_utf8_lossy(payload(f)).into_owned())
        .find(|p| p.starts_with("GET "))
        .expect("a request was sent");
    assert!(
        request.starts_with("GET / HTTP/1.1\r\nHost: 192.0.2.20\r\n"),
        "{request}"
    );
}

#[test]
fn wrong_status_is_down_with_the_status() {
    let (o, _) = session(
        Server::Answers(503, "busy"),
        &AppCheck::Http(expect("200-299", None)),
        Duration::from_secs(5),
    );
    assert_eq!(
        o.reason,
        Reason::Mismatch(Mismatch::Status {
            got: 503,
            want: StatusRange::parse("200-299").unwrap()
        })
    );
    assert_eq!(o.status, Some(503));
}

#[test]
fn tcp_session_is_up_after_the_handshake() {
    let (o, sent) = session(
        Server::Answers(200, ""),
        &AppCheck::TcpSession,
        Duration::from_secs(5),
    );
    assert!(o.is_up(), "{o}");
    assert!(o.connect_time.is_some());
    assert_eq!(tcp_flags(sent.last().expect("frames")) & 0x04, 0x04);
}

#[test]
fn closed_port_is_refused() {
    let (o, _) = session(
        Server::Closed,
        &AppCheck::Http(expect("200", None)),
        Duration::from_secs(5),
    );
    assert_eq!(o.reason, Reason::Refused, "{o}");
}

#[test]
fn silence_times_out_in_the_handshake_by_the_deadline() {
    let budget = Duration::from_millis(300);
    let (o, sent) = session(Server::Silent, &AppCheck::TcpSession, budget);
    assert_eq!(o.reason, Reason::Timeout(Phase::Handshake), "{o}");
    // The loop stops at the deadline, not before (an upper bound is a benchmark's job).
    assert!(o.elapsed >= budget, "{o}");
    assert!(!sent.is_empty(), "a SYN was sent");
}

#[test]
fn tun_session_is_encapsulated_to_the_rip_and_answered_directly() {
    let (o, sent) = session_via(
        ForwardingMethod::Tunnel,
        Server::Answers(200, "tunnelled"),
        &AppCheck::Http(expect("200", Some("tunnelled"))),
        Duration::from_secs(5),
    );
    assert!(o.is_up(), "{o}");
    assert!(sent.iter().all(|f| f.len() >= 34 && f[14 + 9] == 4));
}
