//! The probe logic over a [`FrameIo`]: resolve a neighbour with ARP / neighbour
//! solicitation, send ICMP echo and TCP SYN probes to a VIP through one real server (DR:
//! in a frame to its MAC; TUN: encapsulated to its address), and judge the replies.
//! No sockets and no clock of its own beyond `Instant::now()`, so it runs against
//! recorded frames in tests.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::socket::{Frame, FrameIo};
use crate::wire::frame::{self, IcmpError, Inbound, Probe, ProbeKind, Quoted, QuotedProbe};
use crate::wire::ipv4::protocol;
use crate::wire::tcp::flags;
use crate::wire::MacAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Direct routing: the probe goes in a frame to the real server's MAC.
    Dr,
    /// IP-in-IP tunnelling: the probe is encapsulated to the real server's address.
    Tun,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    Icmp,
    Tcp {
        port: u16,
    },
    /// Does the real server answer ARP / neighbour solicitation for the VIP? Run by
    /// [`ArpWatch`] alongside the others, not by [`Prober::run`].
    Arp,
}

/// How to reach the real server, as resolved from the kernel's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub iface: String,
    pub our_mac: MacAddr,
    pub method: Method,
    pub rip: IpAddr,
    /// The director's address toward the real server (the outer source for TUN).
    pub outer_src: IpAddr,
    /// DR: the real server's MAC. TUN: the MAC of the next hop toward it.
    pub peer_mac: MacAddr,
}

/// One check of one VIP, from the director's address `src` (never a VIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    pub kind: CheckKind,
    pub vip: IpAddr,
    pub src: IpAddr,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// `icmp` or `tcp`.
    pub check: &'static str,
    pub vip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub up: bool,
    pub reason: String,
    /// From sending the probe that was answered to the answer.
    pub latency_ms: Option<f64>,
    /// Probes sent (1 + retries used).
    pub attempts: u32,
}

impl CheckResult {
    pub fn new(
        check: &Check,
        up: bool,
        reason: String,
        latency: Option<Duration>,
        attempts: u32,
    ) -> CheckResult {
        CheckResult {
            check: match check.kind {
                CheckKind::Icmp => "icmp",
                CheckKind::Tcp { .. } => "tcp",
                CheckKind::Arp => "arp",
            },
            vip: check.vip,
            port: match check.kind {
                CheckKind::Icmp | CheckKind::Arp => None,
                CheckKind::Tcp { port } => Some(port),
            },
            up,
            reason,
            latency_ms: latency.map(fmt_ms),
            attempts,
        }
    }
}

/// Where identifiers, sequence numbers and ports come from.
pub trait Entropy {
    fn next_u32(&mut self) -> u32;

    /// A token that is unique among the probes in flight, used as the echo identifier
    /// or (mapped into the ephemeral range) the TCP source port, when several probes
    /// share one socket and replies are routed by it. `None`: take random bits.
    fn token(&mut self) -> Option<u16> {
        None
    }
}

/// The ephemeral source port for a token: the Linux default range, 32768..60999.
pub fn token_port(token: u16) -> u16 {
    32768 + token % 28232
}

/// The kernel's random source.
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        // SAFETY: b is valid for 4 bytes of writes.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 4, 0) };
        if n != 4 {
            // getrandom(2) does not fail for 4 bytes once the pool is ready; fall back to
            // the clock rather than abort a health check.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            return t ^ std::process::id().rotate_left(16);
        }
        u32::from_ne_bytes(b)
    }
}

/// `now + (deadline - now) / parts`: an even share of what is left of a budget.
pub fn share(now: Instant, deadline: Instant, parts: u32) -> Instant {
    now + deadline.saturating_duration_since(now) / parts.max(1)
}

/// Asks `target` for its MAC (ARP for IPv4, neighbour solicitation for IPv6) from
/// `our_ip`, with `attempts` tries spread over the time until `deadline`.
pub fn resolve_neighbor(
    io: &mut impl FrameIo,
    our_mac: MacAddr,
    our_ip: IpAddr,
    target: IpAddr,
    deadline: Instant,
    attempts: u32,
) -> io::Result<Option<MacAddr>> {
    let request = match (our_ip, target) {
        (IpAddr::V4(s), IpAddr::V4(t)) => frame::arp_request(our_mac, s, t),
        (IpAddr::V6(s), IpAddr::V6(t)) => frame::neighbor_solicitation(our_mac, s, t),
        _ => return Ok(None),
    };
    for attempt in 0..attempts {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let until = share(now, deadline, attempts - attempt);
        io.send(&request)?;
        while let Some(f) = io.recv(until)? {
            let Ok(rx) = frame::parse_with(&f.bytes, !f.checksum_trusted) else {
                continue;
            };
            match rx.inbound {
                Inbound::ArpReply {
                    sender_mac,
                    sender_ip,
                    ..
                } if IpAddr::V4(sender_ip) == target => return Ok(Some(sender_mac)),
                Inbound::NeighborAdvert { target: t, lladdr } if IpAddr::V6(t) == target => {
                    return Ok(Some(lladdr.unwrap_or(rx.eth_src)));
                }
                _ => {}
            }
        }
    }
    Ok(None)
}

/// What a received frame means for the probes of one check.
enum Event {
    /// An echo reply, SYN-ACK (`Some(ack)`) or RST from the VIP, in a frame from `mac`.
    Answer {
        mac: MacAddr,
        sent_at: Instant,
        syn_ack: Option<(u16, u32)>,
        rst: bool,
    },
    Error {
        from: IpAddr,
        error: IcmpError,
    },
}

fn fmt_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// Runs probes of one path.
pub struct Prober<'a, I: FrameIo, E: Entropy> {
    pub io: &'a mut I,
    pub entropy: &'a mut E,
    pub path: &'a Path,
}

impl<I: FrameIo, E: Entropy> Prober<'_, I, E> {
    fn fresh(&mut self, check: &Check) -> ProbeKind {
        let token = self.entropy.token();
        let r = self.entropy.next_u32();
        match check.kind {
            // `run` answers the ARP check without sending a probe.
            CheckKind::Icmp | CheckKind::Arp => ProbeKind::Echo {
                ident: token.unwrap_or((r >> 16) as u16),
                seq: r as u16,
            },
            CheckKind::Tcp { port } => ProbeKind::Syn {
                src_port: token_port(token.unwrap_or((r % 28232) as u16)),
                dst_port: port,
                seq: self.entropy.next_u32(),
            },
        }
    }

    fn frame(&mut self, check: &Check, kind: ProbeKind) -> io::Result<Vec<u8>> {
        let p = Probe {
            src_mac: self.path.our_mac,
            dst_mac: self.path.peer_mac,
            tunnel: match self.path.method {
                Method::Dr => None,
                Method::Tun => Some((self.path.outer_src, self.path.rip)),
            },
            src: check.src,
            dst: check.vip,
            hop_limit: 1,
            ip_ident: self.entropy.next_u32() as u16,
            kind,
        };
        p.build().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot build the probe to {}: {e}", check.vip),
            )
        })
    }

    /// Does a quoted packet show one of our probes of this check?
    fn quotes_ours(&self, check: &Check, q: &Quoted, sent: &[(ProbeKind, Instant)]) -> bool {
        let direct = |q: &Quoted| {
            q.src == check.src
                && q.dst == check.vip
                && sent.iter().any(|(k, _)| match (k, &q.probe) {
                    (ProbeKind::Echo { ident, seq }, QuotedProbe::Echo { ident: i, seq: s }) => {
                        ident == i && seq == s
                    }
                    (
                        ProbeKind::Syn {
                            src_port, dst_port, ..
                        },
                        QuotedProbe::Tcp {
                            src_port: sp,
                            dst_port: dp,
                        },
                    ) => src_port == sp && dst_port == dp,
                    _ => false,
                })
        };
        match self.path.method {
            Method::Dr => direct(q),
            Method::Tun => {
                let tunnel = q.src == self.path.outer_src
                    && q.dst == self.path.rip
                    && matches!(q.protocol, protocol::IPIP | protocol::IPV6);
                tunnel
                    && match &q.probe {
                        QuotedProbe::Tunnelled(inner) => direct(inner),
                        // Too little quoted to see the inner packet: the outer header is ours.
                        _ => true,
                    }
            }
        }
    }

    fn classify(&self, check: &Check, f: &Frame, sent: &[(ProbeKind, Instant)]) -> Option<Event> {
        let rx = frame::parse_with(&f.bytes, !f.checksum_trusted).ok()?;
        match rx.inbound {
            Inbound::EchoReply {
                src,
                dst,
                ident,
                seq,
            } if src == check.vip && dst == check.src => {
                let (_, at) = sent
                    .iter()
                    .find(|(k, _)| *k == ProbeKind::Echo { ident, seq })?;
                Some(Event::Answer {
                    mac: rx.eth_src,
                    sent_at: *at,
                    syn_ack: None,
                    rst: false,
                })
            }
            Inbound::Tcp { src, dst, segment } if src == check.vip && dst == check.src => {
                let (kind, at) = sent.iter().find(|(k, _)| match k {
                    ProbeKind::Syn {
                        src_port,
                        dst_port,
                        seq,
                    } => {
                        // Both a SYN-ACK and the RST a closed port sends (RST+ACK, RFC 9293
                        // 3.10.7.1) acknowledge our ISN: 32 random bits to match.
                        segment.src_port == *dst_port
                            && segment.dst_port == *src_port
                            && segment.flags & flags::ACK != 0
                            && segment.ack == seq.wrapping_add(1)
                    }
                    _ => false,
                })?;
                let ProbeKind::Syn { src_port, .. } = kind else {
                    return None;
                };
                let syn_ack = segment.flags & (flags::SYN | flags::ACK | flags::RST)
                    == flags::SYN | flags::ACK;
                let rst = segment.flags & flags::RST != 0;
                if !syn_ack && !rst {
                    return None;
                }
                Some(Event::Answer {
                    mac: rx.eth_src,
                    sent_at: *at,
                    syn_ack: syn_ack.then_some((*src_port, segment.ack)),
                    rst,
                })
            }
            Inbound::IcmpError {
                from,
                to,
                error,
                quoted,
            } if (to == check.src || to == self.path.outer_src)
                && self.quotes_ours(check, &quoted, sent) =>
            {
                Some(Event::Error { from, error })
            }
            _ => None,
        }
    }

    fn error_reason(&self, check: &Check, from: IpAddr, error: IcmpError) -> String {
        let vip = check.vip;
        let tunnel = self.path.method == Method::Tun;
        match error {
            IcmpError::TimeExceeded => format!(
                "{from} forwarded the probe for VIP {vip} instead of answering it \
                 (TTL exceeded: VIP not configured there?)"
            ),
            IcmpError::ProtocolUnreachable if tunnel => format!(
                "real server {} does not decapsulate IPIP (ICMP protocol unreachable from {from})",
                self.path.rip
            ),
            IcmpError::NextHeaderUnrecognized if tunnel => format!(
                "real server {} does not decapsulate the IPv6 tunnel (ICMPv6 unrecognized next \
                 header from {from})",
                self.path.rip
            ),
            // With the tunnel module loaded but no tunnel device up, Linux answers an
            // IPIP/IPv6-in-IPv6 packet with port unreachable, not protocol unreachable.
            IcmpError::PortUnreachable if tunnel && from == self.path.rip => format!(
                "real server {} does not decapsulate the tunnel (no tunnel device up: ICMP port \
                 unreachable from {from})",
                self.path.rip
            ),
            IcmpError::PortUnreachable => {
                format!("{from} answered the probe for VIP {vip} with ICMP port unreachable")
            }
            IcmpError::ProtocolUnreachable => {
                format!("{from} answered the probe for VIP {vip} with ICMP protocol unreachable")
            }
            IcmpError::NextHeaderUnrecognized => format!(
                "{from} answered the probe for VIP {vip} with ICMPv6 unrecognized next header"
            ),
            IcmpError::Unreachable(code) => format!(
                "{from} answered the probe for VIP {vip} with ICMP destination unreachable \
                 (code {code})"
            ),
            IcmpError::ParamProblem(code) => format!(
                "{from} answered the probe for VIP {vip} with ICMPv6 parameter problem (code {code})"
            ),
        }
    }

    fn silence_reason(&self, check: &Check) -> String {
        let vip = check.vip;
        let what = match check.kind {
            CheckKind::Icmp | CheckKind::Arp => String::new(),
            CheckKind::Tcp { port } => format!(" on TCP {port}"),
        };
        match self.path.method {
            Method::Dr => format!(
                "VIP {vip} did not answer{what} through {} (VIP not configured?)",
                self.path.peer_mac
            ),
            Method::Tun => format!(
                "VIP {vip} did not answer{what} through the tunnel to {} (VIP not configured \
                 there?)",
                self.path.rip
            ),
        }
    }

    /// Runs one check: up to `attempts` probes, each with a fresh identifier, within
    /// `deadline`. A reply to an earlier attempt that arrives late still counts.
    pub fn run(
        &mut self,
        check: &Check,
        deadline: Instant,
        attempts: u32,
    ) -> io::Result<CheckResult> {
        if check.kind == CheckKind::Arp {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the ARP check runs alongside the others, through ArpWatch",
            ));
        }
        let attempts = attempts.max(1);
        let mut sent: Vec<(ProbeKind, Instant)> = Vec::new();
        let mut wrong_mac: Option<MacAddr> = None;
        for attempt in 0..attempts {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let until = share(now, deadline, attempts - attempt);
            let kind = self.fresh(check);
            let bytes = self.frame(check, kind)?;
            let sent_at = Instant::now();
            self.io.send(&bytes)?;
            sent.push((kind, sent_at));
            while let Some(rx) = self.io.recv(until)? {
                let Some(event) = self.classify(check, &rx, &sent) else {
                    continue;
                };
                let n = sent.len() as u32;
                match event {
                    Event::Error { from, error } => {
                        let reason = self.error_reason(check, from, error);
                        return Ok(CheckResult::new(check, false, reason, None, n));
                    }
                    Event::Answer { mac, .. }
                        if self.path.method == Method::Dr && mac != self.path.peer_mac =>
                    {
                        wrong_mac = Some(mac);
                    }
                    Event::Answer {
                        sent_at,
                        syn_ack,
                        rst,
                        ..
                    } => {
                        let latency = Instant::now().saturating_duration_since(sent_at);
                        if let Some((src_port, ack)) = syn_ack {
                            // Close what the SYN-ACK opened so no half-open connection is
                            // left on the real server. A failure to send changes nothing
                            // about the verdict.
                            if let CheckKind::Tcp { port } = check.kind {
                                let rst = ProbeKind::Rst {
                                    src_port,
                                    dst_port: port,
                                    seq: ack,
                                };
                                if let Ok(f) = self.frame(check, rst) {
                                    let _ = self.io.send(&f);
                                }
                            }
                            return Ok(CheckResult::new(
                                check,
                                true,
                                String::new(),
                                Some(latency),
                                n,
                            ));
                        }
                        if rst {
                            let port = match check.kind {
                                CheckKind::Tcp { port } => port,
                                CheckKind::Icmp | CheckKind::Arp => 0,
                            };
                            let reason = format!("VIP answers but TCP {port} is closed (RST)");
                            return Ok(CheckResult::new(check, false, reason, Some(latency), n));
                        }
                        return Ok(CheckResult::new(
                            check,
                            true,
                            String::new(),
                            Some(latency),
                            n,
                        ));
                    }
                }
            }
            if let Some(mac) = wrong_mac {
                let reason = format!(
                    "reply came from {mac}, not the real server {}",
                    self.path.peer_mac
                );
                return Ok(CheckResult::new(
                    check,
                    false,
                    reason,
                    None,
                    sent.len() as u32,
                ));
            }
        }
        let reason = self.silence_reason(check);
        Ok(CheckResult::new(
            check,
            false,
            reason,
            None,
            sent.len() as u32,
        ))
    }
}

/// The ARP-problem check: asks the real server alone (a frame to its MAC) who has each
/// VIP, then watches every frame the other checks receive for its answer.
///
/// A DR real server must not claim the VIP on the wire: if it answers, a router that
/// asks may send VIP traffic straight to it, past the director. Silence is the good
/// outcome, so no time is spent waiting for it: the requests go out before the other
/// checks, answers are picked up while those run, and afterwards only a grace of twice
/// the slowest round trip measured (counted from the request) is allowed.
pub struct ArpWatch<'a, I: FrameIo> {
    io: &'a mut I,
    peer_mac: MacAddr,
    vips: Vec<IpAddr>,
    answered: Vec<IpAddr>,
    sent_at: Option<Instant>,
}

impl<'a, I: FrameIo> ArpWatch<'a, I> {
    /// A watch that asks nothing and passes every frame through.
    pub fn idle(io: &'a mut I) -> Self {
        ArpWatch {
            io,
            peer_mac: MacAddr::ZERO,
            vips: Vec::new(),
            answered: Vec::new(),
            sent_at: None,
        }
    }

    /// Sends, for each `(vip, src)`, an ARP request (IPv4) or neighbour solicitation
    /// (IPv6) for the VIP from the director's `src` in a frame to `peer_mac`.
    pub fn ask(
        io: &'a mut I,
        our_mac: MacAddr,
        peer_mac: MacAddr,
        vips: &[(IpAddr, IpAddr)],
    ) -> io::Result<Self> {
        let mut w = ArpWatch::idle(io);
        w.peer_mac = peer_mac;
        for &(vip, src) in vips {
            let request = match (src, vip) {
                (IpAddr::V4(s), IpAddr::V4(t)) => frame::arp_request_to(peer_mac, our_mac, s, t),
                (IpAddr::V6(s), IpAddr::V6(t)) => {
                    frame::neighbor_solicitation_to(peer_mac, our_mac, s, t)
                }
                _ => continue,
            };
            if w.sent_at.is_none() {
                w.sent_at = Some(Instant::now());
            }
            w.io.send(&request)?;
            w.vips.push(vip);
        }
        Ok(w)
    }

    fn look(&mut self, f: &Frame) {
        if self.vips.is_empty() {
            return;
        }
        let Ok(rx) = frame::parse_with(&f.bytes, !f.checksum_trusted) else {
            return;
        };
        let claimed = match rx.inbound {
            Inbound::ArpReply {
                sender_mac,
                sender_ip,
                ..
            } if sender_mac == self.peer_mac || rx.eth_src == self.peer_mac => {
                IpAddr::V4(sender_ip)
            }
            Inbound::NeighborAdvert { target, lladdr }
                if rx.eth_src == self.peer_mac || lladdr == Some(self.peer_mac) =>
            {
                IpAddr::V6(target)
            }
            _ => return,
        };
        if self.vips.contains(&claimed) && !self.answered.contains(&claimed) {
            self.answered.push(claimed);
        }
    }

    /// Waits out the grace (until `2 * rtt` after the requests), takes what is already
    /// queued, and returns the VIPs the real server answered for, in the order asked.
    pub fn finish(mut self, rtt: Option<Duration>) -> io::Result<Vec<IpAddr>> {
        let Some(sent_at) = self.sent_at else {
            return Ok(Vec::new());
        };
        if self.answered.len() < self.vips.len() {
            if let Some(rtt) = rtt {
                let grace = sent_at + rtt * 2;
                while self.recv(grace)?.is_some() {}
            }
            // Bounded: a flood of frames must not hold the verdict back.
            for _ in 0..64 {
                if self.answered.len() == self.vips.len() {
                    break;
                }
                match self.io.recv_ready()? {
                    Some(f) => self.look(&f),
                    None => break,
                }
            }
        }
        let answered = &self.answered;
        Ok(self
            .vips
            .iter()
            .copied()
            .filter(|v| answered.contains(v))
            .collect())
    }
}

impl<I: FrameIo> FrameIo for ArpWatch<'_, I> {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.io.send(frame)
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        let f = self.io.recv(deadline)?;
        if let Some(f) = &f {
            self.look(f);
        }
        Ok(f)
    }

    fn recv_ready(&mut self) -> io::Result<Option<Frame>> {
        let f = self.io.recv_ready()?;
        if let Some(f) = &f {
            self.look(f);
        }
        Ok(f)
    }
}
