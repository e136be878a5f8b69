//! The probe logic over a [`FrameIo`]: resolve a neighbour with ARP / neighbour
//! solicitation, send ICMP echo and TCP SYN probes to a VIP through one real server (DR:
//! in a frame to its MAC; TUN: encapsulated to its address), and judge the replies.
//! No sockets and no clock of its own beyond `Instant::now()`, so it runs against
//! recorded frames in tests.
//!
//! Every check of a probe runs at once, over the whole budget ([`Prober::round`]): each
//! gets `attempts` probes spread evenly over the time left, and a reply to any of them
//! that arrives before the deadline counts. One receive loop hands each frame to the
//! check it answers, to the ARP-problem watch, and to the confirmation of a neighbour
//! entry the kernel no longer vouches for.

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::quick_hash::QuickMap;
use super::udp::UdpProbe;
use crate::config::ForwardingMethod;
use crate::net::{FrameIo, NetPath};
use crate::wire::frame::{self, IcmpError, Inbound, Probe, ProbeKind, Quoted, QuotedProbe};
use crate::wire::gre;
use crate::wire::ipv4::protocol;
use crate::wire::tcp::flags;
use crate::wire::tunnel::Encap;
use crate::wire::MacAddr;

// A UDP check carries its question inline (at most ~800 bytes) so every check stays
// `Copy` and nothing is shared between threads of the fleet: boxing it would buy nothing
// for the few checks of a probe.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    Icmp,
    Tcp {
        port: u16,
    },
    /// Does the real server answer ARP / neighbour solicitation for the VIP? Run by
    /// [`Prober::round`] alongside the others, not by [`Prober::run`].
    Arp,
    /// A UDP service check through the VIP (DNS query or a datagram, see
    /// [`super::udp`]) from `src_port`, a port the director's kernel holds for it
    /// ([`super::udp::claim_ports`]).
    Udp {
        port: u16,
        src_port: u16,
        probe: UdpProbe,
    },
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
    /// Whether this check decides the verdict (the TCP check of a TCP service; ICMP
    /// where nothing else can), or only corroborates and explains it.
    pub decides: bool,
    /// How it was answered, for the decision rule.
    #[serde(skip)]
    pub answer: Answer,
}

/// How a check was answered: what the verdict's decision rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Answer {
    /// An echo reply or SYN-ACK from the VIP through the real server.
    Reply,
    /// A RST from the VIP through the real server: the VIP is there, the port closed.
    Refused,
    /// An ICMP error that shows the VIP is not served on this path: the probe was
    /// forwarded (TTL exceeded), or the tunnel is not decapsulated.
    PathError,
    /// Any other ICMP error quoting the probe (a firewall's reject, for one).
    OtherError,
    /// A reply in a frame from another MAC than the real server's.
    OtherMac,
    /// Nothing within the budget.
    #[default]
    Silence,
    /// Not sent (an earlier failure decided the verdict).
    NotRun,
    /// No reply and no ICMP error to a UDP datagram that needs no reply (keepalived's
    /// UDP_CHECK without require_reply): up while the VIP answers ICMP echo.
    NoReplyNeeded,
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
                CheckKind::Udp { probe, .. } => probe.name(),
            },
            vip: check.vip,
            port: match check.kind {
                CheckKind::Icmp | CheckKind::Arp => None,
                CheckKind::Tcp { port } | CheckKind::Udp { port, .. } => Some(port),
            },
            up,
            reason,
            latency_ms: latency.map(fmt_ms),
            attempts,
            decides: true,
            answer: if up { Answer::Reply } else { Answer::Silence },
        }
    }

    /// The same result, answered as `answer`.
    pub fn answered(mut self, answer: Answer) -> CheckResult {
        self.answer = answer;
        self
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

/// The kernel's random source, read 256 bytes at a time per thread (a resident prober
/// draws several numbers per probe; one getrandom(2) call each was a tenth of its
/// system calls).
pub struct OsEntropy;

/// Random bytes from the kernel not handed out yet, per thread.
struct Pool {
    bytes: [u8; 256],
    used: usize,
}

thread_local! {
    static POOL: std::cell::RefCell<Pool> = const {
        std::cell::RefCell::new(Pool { bytes: [0; 256], used: 256 })
    };
}

impl Entropy for OsEntropy {
    fn next_u32(&mut self) -> u32 {
        let drawn = POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.used + 4 > pool.bytes.len() {
                let len = pool.bytes.len();
                // SAFETY: the buffer is valid for `len` bytes of writes.
                let n = unsafe { libc::getrandom(pool.bytes.as_mut_ptr().cast(), len, 0) };
                if usize::try_from(n).ok() != Some(len) {
                    return None;
                }
                pool.used = 0;
            }
            let at = pool.used;
            pool.used += 4;
            let b = &pool.bytes[at..at + 4];
            Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        });
        drawn.unwrap_or_else(|| {
            // getrandom(2) does not fail once the pool is ready; fall back to the clock
            // rather than abort a health check.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            t ^ std::process::id().rotate_left(16)
        })
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
    let Some(request) = neighbour_request(our_mac, our_ip, target, None) else {
        return Ok(None);
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
            if let Some(mac) = neighbour_answer(&rx, target) {
                return Ok(Some(mac));
            }
        }
    }
    Ok(None)
}

/// What a received frame means for one check.
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
        mac: MacAddr,
    },
    /// A UDP datagram from the VIP's service port to ours, answering the attempt sent
    /// at `sent_at`.
    Datagram {
        mac: MacAddr,
        sent_at: Instant,
        payload: Vec<u8>,
    },
}

fn fmt_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// An ICMP result shared by the probes of one run, filled in by the probe that sent it.
#[derive(Debug, Default)]
pub struct MemoSlot(Mutex<Option<CheckResult>>);

impl MemoSlot {
    fn get(&self) -> Option<CheckResult> {
        self.0.lock().ok().and_then(|r| r.clone())
    }

    fn set(&self, result: &CheckResult) {
        if let Ok(mut r) = self.0.lock() {
            *r = Some(result.clone());
        }
    }
}

/// ICMP results shared by the probes of one run, per (VIP, real server, method, source).
///
/// The ICMP check does not depend on the service port, and a real server that forwards
/// (or cannot decapsulate) answers with ICMP errors it rate-limits per destination
/// (Linux: a burst of 6, then one a second): probing its ten ports separately would see
/// most of those errors suppressed and report silence instead of the cause. The first
/// probe of a key sends the echo; the others read its result.
pub type IcmpMemo = Mutex<QuickMap<(IpAddr, IpAddr, ForwardingMethod, IpAddr), Arc<MemoSlot>>>;

/// A MAC the neighbour table gave that turned out to be another host's (or no one's):
/// the one that answered for the next hop instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacChange {
    pub from: MacAddr,
    pub to: MacAddr,
}

impl Serialize for MacChange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("MacChange", 2)?;
        st.serialize_field("from", &self.from.to_string())?;
        st.serialize_field("to", &self.to.to_string())?;
        st.end()
    }
}

/// How one round of checks is run.
pub struct RoundSpec<'m> {
    pub deadline: Instant,
    /// Probes per check, spread evenly over the budget.
    pub attempts: u32,
    /// The next hop, when its MAC came from a neighbour entry that is not REACHABLE or
    /// PERMANENT: it is confirmed with our own ARP / neighbour solicitation (to the
    /// MAC itself first, then to everyone) unless something answers through it.
    pub confirm: Option<IpAddr>,
    /// ICMP results shared with the other probes of this run.
    pub memo: Option<&'m IcmpMemo>,
    /// Send every port's SYN with the echo instead of the first only (the agent, for a
    /// real server whose last round found every port up: its path is not a forwarder's).
    pub ports_at_once: bool,
    /// The answers to the ARP-problem questions from a recent round (the agent, for a
    /// real server whose last round found every port up): not asked again; these VIPs
    /// count as answered for, the others as not.
    pub arp_known: Option<&'m [IpAddr]>,
}

impl RoundSpec<'_> {
    /// `attempts` probes per check until `deadline`, nothing else.
    pub fn until(deadline: Instant, attempts: u32) -> RoundSpec<'static> {
        RoundSpec {
            deadline,
            attempts,
            confirm: None,
            memo: None,
            ports_at_once: false,
            arp_known: None,
        }
    }
}

/// What one round found.
#[derive(Debug)]
pub struct Round {
    /// One result per check that is not an ARP check, in the order given.
    pub results: Vec<CheckResult>,
    /// When the round asked the ARP-problem questions: the VIPs the real server answered
    /// ARP / neighbour solicitation for. `None` when it asked none (none to ask, or
    /// [`RoundSpec::arp_known`] given).
    pub arp_answered: Option<Vec<IpAddr>>,
    /// The next hop's MAC, when [`RoundSpec::confirm`] was given and something answered
    /// through it (the entry's MAC, or the one that replaced it).
    pub confirmed: Option<MacAddr>,
    /// Set when the neighbour entry's MAC was replaced by the one that answered.
    pub mac_change: Option<MacChange>,
}

/// One check in flight.
struct Pending {
    check: Check,
    sent: Vec<(ProbeKind, Instant)>,
    wrong_mac: Option<MacAddr>,
    /// The result and when it was reached.
    done: Option<(CheckResult, Instant)>,
    /// The shared ICMP result, and whether this probe is the one that fills it in.
    memo: Option<(Arc<MemoSlot>, bool)>,
    /// A TCP check held back until the shared ICMP result of its VIP is in, or this
    /// instant: when that result shows the path does not serve the VIP (forwarded, not
    /// decapsulated), the SYN is not sent at all. A forwarder rate-limits its ICMP errors
    /// per destination (Linux: a burst of 6, then one a second), so ten ports' SYNs
    /// drawing ten errors each run would leave the next run's echo unexplained.
    held_until: Option<Instant>,
}

impl Pending {
    fn sends(&self) -> bool {
        self.done.is_none() && !matches!(self.memo, Some((_, false))) && self.held_until.is_none()
    }
}

/// The confirmation of an unconfirmed neighbour entry.
struct Confirm {
    target: IpAddr,
    /// When to ask everyone, if the entry's MAC has not answered by then.
    broadcast_at: Instant,
    broadcast_sent: bool,
    done: bool,
}

/// The ARP-problem watch: the VIPs asked about, and the ones the real server claimed.
struct ArpAsk {
    vips: Vec<(IpAddr, IpAddr)>,
    answered: Vec<IpAddr>,
    sent_at: Option<Instant>,
}

/// Runs probes of one path.
pub struct Prober<'a, I: FrameIo, E: Entropy> {
    pub io: &'a mut I,
    pub entropy: &'a mut E,
    pub path: &'a NetPath,
}

impl<I: FrameIo, E: Entropy> Prober<'_, I, E> {
    fn fresh(&mut self, check: &Check) -> ProbeKind {
        let token = self.entropy.token();
        let r = self.entropy.next_u32();
        match check.kind {
            // The ARP check sends no probe of this kind; `round` never asks for one.
            CheckKind::Icmp | CheckKind::Arp => ProbeKind::Echo {
                ident: token.unwrap_or((r >> 16) as u16),
                seq: r as u16,
            },
            CheckKind::Tcp { port } => ProbeKind::Syn {
                src_port: token_port(token.unwrap_or((r % 28232) as u16)),
                dst_port: port,
                seq: self.entropy.next_u32(),
            },
            // A fresh tag (the DNS id) each attempt; the port stays the one held.
            CheckKind::Udp { port, src_port, .. } => ProbeKind::Udp {
                src_port,
                dst_port: port,
                tag: (r >> 16) as u16,
            },
        }
    }

    fn frame(&mut self, check: &Check, kind: ProbeKind, peer: MacAddr) -> io::Result<Vec<u8>> {
        let p = Probe {
            src_mac: self.path.our_mac,
            dst_mac: peer,
            tunnel: self.path.tunnel(),
            src: check.src,
            dst: check.vip,
            hop_limit: 1,
            ip_ident: self.entropy.next_u32() as u16,
            kind,
            encap: self.path.encapsulation(),
        };
        let built = match (kind, check.kind) {
            (ProbeKind::Udp { tag, .. }, CheckKind::Udp { probe, .. }) => {
                p.build_with(&probe.payload(tag))
            }
            _ => p.build(),
        };
        built.map_err(|e| {
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
                    (
                        ProbeKind::Udp {
                            src_port, dst_port, ..
                        },
                        QuotedProbe::Udp {
                            src_port: sp,
                            dst_port: dp,
                        },
                    ) => src_port == sp && dst_port == dp,
                    _ => false,
                })
        };
        if !self.path.is_tunnel() {
            return direct(q);
        }
        let tunnel = q.src == self.path.src
            && q.dst == self.path.rip
            && match self.path.encapsulation() {
                Encap::Ipip => matches!(q.protocol, protocol::IPIP | protocol::IPV6),
                Encap::Gue { .. } => q.protocol == protocol::UDP,
                Encap::Gre { .. } => q.protocol == gre::PROTOCOL,
            };
        tunnel
            && match &q.probe {
                QuotedProbe::Tunnelled(inner) => direct(inner),
                // Too little quoted to see the inner packet: the outer header is ours.
                _ => true,
            }
    }

    fn classify(
        &self,
        check: &Check,
        rx: &frame::Received,
        sent: &[(ProbeKind, Instant)],
    ) -> Option<Event> {
        match &rx.inbound {
            Inbound::EchoReply {
                src,
                dst,
                ident,
                seq,
            } if *src == check.vip && *dst == check.src => {
                let (_, at) = sent.iter().find(|(k, _)| {
                    *k == ProbeKind::Echo {
                        ident: *ident,
                        seq: *seq,
                    }
                })?;
                Some(Event::Answer {
                    mac: rx.eth_src,
                    sent_at: *at,
                    syn_ack: None,
                    rst: false,
                })
            }
            Inbound::Tcp { src, dst, segment } if *src == check.vip && *dst == check.src => {
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
            Inbound::Udp {
                src,
                dst,
                src_port,
                dst_port,
                payload,
            } if *src == check.vip && *dst == check.src => {
                let CheckKind::Udp {
                    port,
                    src_port: ours,
                    probe,
                } = check.kind
                else {
                    return None;
                };
                if *src_port != port || *dst_port != ours {
                    return None;
                }
                let tags: Vec<u16> = sent
                    .iter()
                    .filter_map(|(k, _)| match k {
                        ProbeKind::Udp { tag, .. } => Some(*tag),
                        _ => None,
                    })
                    .collect();
                let i = probe.answers(payload, &tags)?;
                let sent_at = sent
                    .iter()
                    .filter(|(k, _)| matches!(k, ProbeKind::Udp { .. }))
                    .nth(i)?
                    .1;
                Some(Event::Datagram {
                    mac: rx.eth_src,
                    sent_at,
                    payload: payload.clone(),
                })
            }
            Inbound::IcmpError {
                from,
                to,
                error,
                quoted,
            } if (*to == check.src || *to == self.path.src)
                && self.quotes_ours(check, quoted, sent) =>
            {
                Some(Event::Error {
                    from: *from,
                    error: *error,
                    mac: rx.eth_src,
                })
            }
            _ => None,
        }
    }

    /// Whether an ICMP error shows that this path does not serve the VIP at all (rather
    /// than that one kind of packet is refused, as a firewall's reject does).
    fn is_path_error(&self, from: IpAddr, error: IcmpError) -> bool {
        let tunnel = self.path.is_tunnel();
        match error {
            IcmpError::TimeExceeded => true,
            IcmpError::ProtocolUnreachable | IcmpError::NextHeaderUnrecognized => tunnel,
            IcmpError::PortUnreachable => tunnel && from == self.path.rip,
            IcmpError::Unreachable(_) | IcmpError::ParamProblem(_) => false,
        }
    }

    fn error_reason(&self, check: &Check, from: IpAddr, error: IcmpError) -> String {
        let vip = check.vip;
        let tunnel = self.path.is_tunnel();
        match error {
            IcmpError::TimeExceeded => format!(
                "{from} forwarded the probe for VIP {vip} instead of answering it \
                 (TTL exceeded: VIP not configured there?)"
            ),
            IcmpError::ProtocolUnreachable if tunnel => format!(
                "real server {} does not decapsulate {} (ICMP protocol unreachable from {from})",
                self.path.rip,
                tunnel_kind(self.path.encapsulation()),
            ),
            IcmpError::NextHeaderUnrecognized if tunnel => format!(
                "real server {} does not decapsulate the IPv6 tunnel (ICMPv6 unrecognized next \
                 header from {from})",
                self.path.rip
            ),
            // With the tunnel module loaded but no tunnel device up, Linux answers an
            // IPIP/IPv6-in-IPv6 packet with port unreachable, not protocol unreachable.
            IcmpError::PortUnreachable if tunnel && from == self.path.rip => {
                match self.path.encapsulation() {
                    Encap::Gue { port, .. } => format!(
                        "real server {} does not decapsulate GUE on UDP port {port} (nothing \
                         receives there: ICMP port unreachable from {from})",
                        self.path.rip
                    ),
                    e => format!(
                        "real server {} does not decapsulate {} (no tunnel device up: ICMP \
                         port unreachable from {from})",
                        self.path.rip,
                        match e {
                            Encap::Gre { .. } => "GRE",
                            _ => "the tunnel",
                        }
                    ),
                }
            }
            IcmpError::PortUnreachable => match check.kind {
                CheckKind::Udp { port, .. } if from == vip => {
                    format!("VIP {vip} present, nothing listens on udp/{port} (ICMP port unreachable)")
                }
                _ => format!("{from} answered the probe for VIP {vip} with ICMP port unreachable"),
            },
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

    fn silence_reason(&self, check: &Check, peer: MacAddr) -> String {
        let vip = check.vip;
        let what = match check.kind {
            CheckKind::Icmp | CheckKind::Arp => String::new(),
            CheckKind::Tcp { port } => format!(" on TCP {port}"),
            CheckKind::Udp { port, probe, .. } => {
                let via = if self.path.is_tunnel() {
                    format!("the tunnel to {}", self.path.rip)
                } else {
                    peer.to_string()
                };
                return format!(
                    "no reply from VIP {vip} on udp/{port} ({}) through {via}",
                    probe.name()
                );
            }
        };
        if self.path.is_tunnel() {
            format!(
                "VIP {vip} did not answer{what} through the tunnel to {} (VIP not configured \
                 there?)",
                self.path.rip
            )
        } else {
            format!("VIP {vip} did not answer{what} through {peer} (VIP not configured?)")
        }
    }

    /// Runs one check: up to `attempts` probes, each with a fresh identifier, spread
    /// over the time until `deadline`. A reply to any of them that arrives in time counts.
    pub fn run(
        &mut self,
        check: &Check,
        deadline: Instant,
        attempts: u32,
    ) -> io::Result<CheckResult> {
        if check.kind == CheckKind::Arp {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the ARP check runs alongside the others, in a round",
            ));
        }
        let mut round = self.round(&[*check], &RoundSpec::until(deadline, attempts))?;
        Ok(round.results.remove(0))
    }

    /// Runs every check at once within `spec.deadline` (see the module doc). ARP checks
    /// ask their question first (unless their answers are known) and are answered in
    /// [`Round::arp_answered`].
    pub fn round(&mut self, checks: &[Check], spec: &RoundSpec) -> io::Result<Round> {
        let start = Instant::now();
        let attempts = spec.attempts.max(1);
        let interval = spec.deadline.saturating_duration_since(start) / attempts;
        let mut peer = self.path.next_hop_mac;
        let mut mac_change = None;
        let mut pend: Vec<Pending> = checks
            .iter()
            .filter(|c| c.kind != CheckKind::Arp)
            .map(|&check| Pending {
                check,
                sent: Vec::new(),
                wrong_mac: None,
                done: None,
                memo: spec
                    .memo
                    .filter(|_| check.kind == CheckKind::Icmp)
                    .and_then(|m| m.lock().ok())
                    .map(|mut m| {
                        let key = (check.vip, self.path.rip, self.path.method, check.src);
                        let owner = !m.contains_key(&key);
                        (m.entry(key).or_default().clone(), owner)
                    }),
                held_until: None,
            })
            .collect();
        let hold = start + MEMO_HOLD.min(interval / 2);
        let shared_icmp: Vec<IpAddr> = pend
            .iter()
            .filter(|p| matches!(p.memo, Some((_, false))))
            .map(|p| p.check.vip)
            .collect();
        // Several ports of one VIP in this round (the agent's turn of a real server): the
        // first SYN goes with the echo, the others wait for its result as they would
        // reading another probe's shared one.
        let mut first_syn: Vec<IpAddr> = Vec::new();
        let own_icmp: Vec<IpAddr> = pend
            .iter()
            .filter(|p| p.check.kind == CheckKind::Icmp && !shared_icmp.contains(&p.check.vip))
            .map(|p| p.check.vip)
            .collect();
        for p in pend.iter_mut() {
            if !matches!(p.check.kind, CheckKind::Tcp { .. }) {
                continue;
            }
            let vip = p.check.vip;
            let later = own_icmp.contains(&vip) && first_syn.contains(&vip) && !spec.ports_at_once;
            if shared_icmp.contains(&vip) || later {
                p.held_until = Some(hold);
            }
            first_syn.push(vip);
        }
        let mut arp = ArpAsk {
            // Answers known already: no question.
            vips: match spec.arp_known {
                Some(_) => Vec::new(),
                None => checks
                    .iter()
                    .filter(|c| c.kind == CheckKind::Arp)
                    .map(|c| (c.vip, c.src))
                    .collect(),
            },
            answered: Vec::new(),
            sent_at: None,
        };
        // The ARP-problem questions go first, so their answers arrive while the rest runs:
        // at the head of the first batch, with the neighbour confirmation.
        let mut lead = self.arp_questions(&arp, peer);
        let mut asking = !lead.is_empty();
        let mut confirm = match spec.confirm {
            Some(target) => {
                let outer = self.path.src;
                if let Some(f) = neighbour_request(self.path.our_mac, outer, target, Some(peer)) {
                    lead.push(f);
                }
                Some(Confirm {
                    target,
                    broadcast_at: start
                        + interval.min(spec.deadline.saturating_duration_since(start) / 4),
                    broadcast_sent: false,
                    done: false,
                })
            }
            None => None,
        };
        let mut rounds = 0u32;
        let mut rsts: Vec<Vec<u8>> = Vec::new();
        loop {
            let now = Instant::now();
            if rounds < attempts && now < spec.deadline && now >= start + interval * rounds {
                if rounds > 0 {
                    // A reply only from another MAC in the last window: that is the answer.
                    for p in pend.iter_mut().filter(|p| p.done.is_none()) {
                        if let Some(mac) = p.wrong_mac {
                            p.done = Some((self.other_mac(p, mac, peer), now));
                        }
                    }
                }
                let at = self.send_all(&mut pend, peer, std::mem::take(&mut lead))?;
                if std::mem::take(&mut asking) {
                    arp.sent_at = Some(at);
                }
                rounds += 1;
            }
            if let Some(c) = confirm.as_mut().filter(|c| !c.done && !c.broadcast_sent) {
                if now >= c.broadcast_at {
                    c.broadcast_sent = true;
                    let outer = self.path.src;
                    if let Some(f) = neighbour_request(self.path.our_mac, outer, c.target, None) {
                        self.io.send(&f)?;
                    }
                }
            }
            for p in pend.iter_mut().filter(|p| p.done.is_none()) {
                if let Some((slot, false)) = &p.memo {
                    if let Some(r) = slot.get() {
                        p.done = Some((r, now));
                    }
                }
            }
            // Held SYNs go once their VIP's shared ICMP result is in (unless it shows the
            // path cannot serve the VIP), or when the hold runs out.
            let icmp_of = |pend: &[Pending], vip: IpAddr| {
                pend.iter()
                    .find(|q| q.check.vip == vip && q.check.kind == CheckKind::Icmp)
                    .and_then(|q| q.done.as_ref().map(|(r, _)| r.answer))
            };
            let mut released = Vec::new();
            for i in 0..pend.len() {
                let Some(until) = pend[i].held_until else {
                    continue;
                };
                match icmp_of(&pend, pend[i].check.vip) {
                    Some(Answer::PathError) => continue,
                    Some(_) => {}
                    None if now < until => continue,
                    None => {}
                }
                pend[i].held_until = None;
                if pend[i].done.is_none() {
                    released.push(i);
                }
            }
            // (Past the deadline, while replies that came before it are taken, nothing goes.)
            if !released.is_empty() && now < spec.deadline {
                self.send_some(&mut pend, &released, peer, Vec::new())?;
            }
            let (settled, grace_end) = self.settled(&pend, now);
            if settled {
                break;
            }
            let mut wake = spec.deadline;
            if rounds < attempts {
                wake = wake.min(start + interval * rounds);
            }
            if let Some(c) = confirm.as_ref().filter(|c| !c.done && !c.broadcast_sent) {
                wake = wake.min(c.broadcast_at);
            }
            if let Some(g) = grace_end {
                wake = wake.min(g);
            }
            if pend
                .iter()
                .any(|p| p.done.is_none() && matches!(p.memo, Some((_, false))))
            {
                wake = wake.min(now + MEMO_POLL);
            }
            if let Some(h) = pend.iter().filter_map(|p| p.held_until).min() {
                wake = wake.min(h.max(now));
            }
            // Past the deadline, a reply that came before it still counts, however late it
            // is read (the agent reads its replies at its next turn). Before it, the RSTs
            // of the SYN-ACKs taken so far go out together once no other reply is queued:
            // one burst, not one frame between every two replies.
            let got = if now >= spec.deadline {
                match self.io.recv_ready()? {
                    Some(f) if f.at.is_some_and(|at| at <= spec.deadline) => Some(f),
                    _ => break,
                }
            } else if rsts.is_empty() {
                self.io.recv(wake)?
            } else if let Some(f) = self.io.recv_ready()? {
                Some(f)
            } else {
                self.send_rsts(&mut rsts);
                self.io.recv(wake)?
            };
            let Some(f) = got else {
                continue;
            };
            let Ok(rx) = frame::parse_with(&f.bytes, !f.checksum_trusted) else {
                continue;
            };
            arp.look(&rx, peer);
            if let Some(c) = confirm.as_mut().filter(|c| !c.done) {
                match neighbour_answer(&rx, c.target) {
                    Some(mac) if mac == peer => c.done = true,
                    Some(mac) => {
                        // Another host answers for the next hop now: the entry was stale.
                        c.done = true;
                        mac_change = Some(MacChange {
                            from: peer,
                            to: mac,
                        });
                        peer = mac;
                        for p in pend.iter_mut() {
                            p.wrong_mac = None;
                        }
                        if Instant::now() < spec.deadline {
                            let questions = self.arp_questions(&arp, peer);
                            let asks = !questions.is_empty();
                            let at = self.send_all(&mut pend, peer, questions)?;
                            arp.sent_at = asks.then_some(at);
                        }
                        continue;
                    }
                    None => {}
                }
            }
            // Judged as of when it came (read late, it still came then).
            let now = f.at.map_or_else(Instant::now, |at| at.min(Instant::now()));
            for p in pend.iter_mut() {
                if p.done.is_some() {
                    continue;
                }
                let Some(event) = self.classify(&p.check, &rx, &p.sent) else {
                    continue;
                };
                if let Event::Answer { mac, .. } = event {
                    if mac == peer {
                        if let Some(c) = confirm.as_mut() {
                            // The entry's MAC answers: nothing to confirm any more.
                            c.done = true;
                        }
                    }
                }
                if let Some(result) = self.judge(p, event, peer, now, &mut rsts) {
                    // The other probes of the run waiting for this ICMP result get it now.
                    if let Some((slot, true)) = &p.memo {
                        slot.set(&result);
                    }
                    p.done = Some((result, now));
                }
                break;
            }
        }
        self.send_rsts(&mut rsts);
        let results: Vec<CheckResult> = pend
            .into_iter()
            .map(|p| {
                let result = match p.done {
                    Some((r, _)) => r,
                    None => match p.wrong_mac {
                        Some(mac) => self.other_mac(&p, mac, peer),
                        None => match p.memo.as_ref().filter(|(_, owner)| !owner) {
                            Some((slot, _)) => slot.get().unwrap_or_else(|| self.silent(&p, peer)),
                            None => self.silent(&p, peer),
                        },
                    },
                };
                if let Some((slot, true)) = &p.memo {
                    slot.set(&result);
                }
                result
            })
            .collect();
        let rtt = results
            .iter()
            .filter_map(|r| r.latency_ms)
            .reduce(f64::max)
            .map(|ms| Duration::from_secs_f64(ms / 1e3));
        let arp_answered = match arp.sent_at {
            Some(at) => Some(self.finish_arp(arp, at, rtt, spec.deadline, peer)?),
            None => None,
        };
        Ok(Round {
            results,
            arp_answered,
            confirmed: confirm.filter(|c| c.done).map(|_| peer),
            mac_change,
        })
    }

    /// Sends a fresh probe of every check still open that this probe sends itself, after
    /// `first`; see
    /// [`Prober::send_some`].
    fn send_all(
        &mut self,
        pend: &mut [Pending],
        peer: MacAddr,
        first: Vec<Vec<u8>>,
    ) -> io::Result<Instant> {
        let open: Vec<usize> = (0..pend.len()).filter(|&i| pend[i].sends()).collect();
        self.send_some(pend, &open, peer, first)
    }

    /// Sends the frames `first` (the ARP questions, a neighbour confirmation), then a
    /// fresh probe of each check `which` names, all in one batch; when it went.
    fn send_some(
        &mut self,
        pend: &mut [Pending],
        which: &[usize],
        peer: MacAddr,
        first: Vec<Vec<u8>>,
    ) -> io::Result<Instant> {
        let mut frames = first;
        frames.reserve(which.len());
        let mut kinds = Vec::with_capacity(which.len());
        for &i in which {
            let kind = self.fresh(&pend[i].check);
            frames.push(self.frame(&pend[i].check, kind, peer)?);
            kinds.push(kind);
        }
        let sent_at = Instant::now();
        self.io.send_batch(&frames)?;
        for (&i, kind) in which.iter().zip(kinds) {
            pend[i].sent.push((kind, sent_at));
        }
        Ok(sent_at)
    }

    /// Sends the RSTs held back (see [`Prober::round`]). A failure to send changes
    /// nothing about the verdict.
    fn send_rsts(&mut self, rsts: &mut Vec<Vec<u8>>) {
        let _ = self.io.send_batch(rsts);
        rsts.clear();
    }

    fn other_mac(&self, p: &Pending, mac: MacAddr, peer: MacAddr) -> CheckResult {
        let reason = format!("reply came from {mac}, not the real server {peer}");
        CheckResult::new(&p.check, false, reason, None, p.sent.len() as u32)
            .answered(Answer::OtherMac)
    }

    fn silent(&self, p: &Pending, peer: MacAddr) -> CheckResult {
        let reason = self.silence_reason(&p.check, peer);
        let answer = match p.check.kind {
            _ if p.sent.is_empty() => Answer::NotRun,
            CheckKind::Udp { probe, .. } if !probe.needs_reply() => Answer::NoReplyNeeded,
            _ => Answer::Silence,
        };
        CheckResult::new(&p.check, false, reason, None, p.sent.len() as u32).answered(answer)
    }

    /// The result an event gives a check, or `None` when it only notes a reply from
    /// another MAC. The RST that closes a SYN-ACK goes to `rsts`.
    fn judge(
        &mut self,
        p: &mut Pending,
        event: Event,
        peer: MacAddr,
        now: Instant,
        rsts: &mut Vec<Vec<u8>>,
    ) -> Option<CheckResult> {
        let n = p.sent.len() as u32;
        let check = p.check;
        match event {
            // A UDP service's "nothing listens" counts only from the real server itself.
            Event::Error {
                mac,
                error: IcmpError::PortUnreachable,
                from,
            } if matches!(check.kind, CheckKind::Udp { .. })
                && from == check.vip
                && !self.path.is_tunnel()
                && mac != peer =>
            {
                p.wrong_mac = Some(mac);
                None
            }
            Event::Error { from, error, .. } => {
                let reason = self.error_reason(&check, from, error);
                let answer = if self.is_path_error(from, error) {
                    Answer::PathError
                } else if matches!(check.kind, CheckKind::Udp { .. })
                    && error == IcmpError::PortUnreachable
                    && from == check.vip
                {
                    // The VIP is there and nothing listens: a UDP service's RST.
                    Answer::Refused
                } else {
                    Answer::OtherError
                };
                Some(CheckResult::new(&check, false, reason, None, n).answered(answer))
            }
            Event::Datagram { mac, .. } if !self.path.is_tunnel() && mac != peer => {
                p.wrong_mac = Some(mac);
                None
            }
            Event::Datagram {
                sent_at, payload, ..
            } => {
                let latency = now.saturating_duration_since(sent_at);
                let CheckKind::Udp { port, probe, .. } = check.kind else {
                    return None;
                };
                Some(match probe.judge(&payload, port) {
                    Ok(warning) => CheckResult::new(
                        &check,
                        true,
                        warning.unwrap_or_default(),
                        Some(latency),
                        n,
                    ),
                    Err(reason) => {
                        let reason = format!("VIP {}: {reason}", check.vip);
                        CheckResult::new(&check, false, reason, Some(latency), n)
                            .answered(Answer::Refused)
                    }
                })
            }
            Event::Answer { mac, .. } if !self.path.is_tunnel() && mac != peer => {
                p.wrong_mac = Some(mac);
                None
            }
            Event::Answer {
                sent_at,
                syn_ack,
                rst,
                ..
            } => {
                let latency = now.saturating_duration_since(sent_at);
                if let Some((src_port, ack)) = syn_ack {
                    // Close what the SYN-ACK opened so no half-open connection is left on
                    // the real server.
                    if let CheckKind::Tcp { port } = check.kind {
                        let rst = ProbeKind::Rst {
                            src_port,
                            dst_port: port,
                            seq: ack,
                        };
                        if let Ok(f) = self.frame(&check, rst, peer) {
                            rsts.push(f);
                        }
                    }
                    return Some(CheckResult::new(
                        &check,
                        true,
                        String::new(),
                        Some(latency),
                        n,
                    ));
                }
                if rst {
                    let port = match check.kind {
                        CheckKind::Tcp { port } | CheckKind::Udp { port, .. } => port,
                        CheckKind::Icmp | CheckKind::Arp => 0,
                    };
                    let reason = format!("VIP answers but TCP {port} is closed (RST)");
                    return Some(
                        CheckResult::new(&check, false, reason, Some(latency), n)
                            .answered(Answer::Refused),
                    );
                }
                Some(CheckResult::new(
                    &check,
                    true,
                    String::new(),
                    Some(latency),
                    n,
                ))
            }
        }
    }

    /// Whether every VIP's verdict is reached: its deciding check (TCP when there is
    /// one, else ICMP) is answered and the others had their grace to corroborate it, or
    /// some check showed the path does not serve the VIP. Also the end of the earliest
    /// grace still running.
    fn settled(&self, pend: &[Pending], now: Instant) -> (bool, Option<Instant>) {
        let mut grace_end: Option<Instant> = None;
        let mut settled = true;
        // Each VIP once, at its first check. No allocation: this runs on every wake of
        // every round, and a round has a handful of checks.
        let firsts = pend
            .iter()
            .enumerate()
            .filter(|&(i, p)| pend[..i].iter().all(|q| q.check.vip != p.check.vip));
        for (_, first) in firsts {
            let vip = first.check.vip;
            let group = || pend.iter().filter(move |p| p.check.vip == vip);
            let path_error =
                group().any(|p| matches!(&p.done, Some((r, _)) if r.answer == Answer::PathError));
            if path_error {
                continue;
            }
            // The checks that decide: each port's TCP or UDP check (one per request; a
            // round may carry several ports of the VIP), else the first check.
            let port =
                |p: &Pending| matches!(p.check.kind, CheckKind::Tcp { .. } | CheckKind::Udp { .. });
            let ports = group().any(port);
            let decisive =
                group()
                    .filter(move |p| !ports || port(p))
                    .take(if ports { usize::MAX } else { 1 });
            // When the last of them was decided, and how fast its answer came.
            let mut last: Option<(Option<f64>, Instant)> = None;
            let mut open = false;
            for d in decisive {
                if let (None, CheckKind::Udp { probe, .. }) = (&d.done, d.check.kind) {
                    // A datagram that needs no reply has its answer in silence: once the
                    // VIP's echo is back, an ICMP error would have come within a few
                    // round trips of it.
                    let echo = group().find_map(|p| match (&p.check.kind, &p.done) {
                        (CheckKind::Icmp, Some((r, at))) if r.up => Some((r.latency_ms, *at)),
                        _ => None,
                    });
                    if let (false, Some((ms, at))) = (probe.needs_reply(), echo) {
                        let wait =
                            ms.map_or(Duration::ZERO, |ms| Duration::from_secs_f64(ms * 4.0 / 1e3));
                        let end = at + wait.max(NO_REPLY_WAIT);
                        if now < end {
                            settled = false;
                            grace_end = Some(grace_end.map_or(end, |g| g.min(end)));
                        }
                        open = true;
                        continue;
                    }
                }
                match &d.done {
                    Some((r, at)) => {
                        if last.map_or(true, |(_, t)| *at >= t) {
                            last = Some((r.latency_ms, *at));
                        }
                    }
                    None => {
                        settled = false;
                        open = true;
                    }
                }
            }
            if open {
                continue;
            }
            let Some((latency_ms, at)) = last else {
                continue;
            };
            if group().all(|p| p.done.is_some()) {
                continue;
            }
            // A result another probe of the run is getting comes when it comes: waiting
            // for it (within the deadline) costs less than a wrong `icmp filtered`.
            if group().any(|p| p.done.is_none() && matches!(p.memo, Some((_, false)))) {
                settled = false;
                continue;
            }
            let grace = latency_ms.map_or(Duration::ZERO, |ms| {
                Duration::from_secs_f64(ms * 2.0 / 1e3).max(MIN_GRACE)
            });
            let end = at + grace;
            if now < end {
                settled = false;
                grace_end = Some(grace_end.map_or(end, |g| g.min(end)));
            }
        }
        (settled, grace_end)
    }

    /// The ARP-problem questions of `arp`, to `peer` alone: whether it claims each VIP.
    fn arp_questions(&self, arp: &ArpAsk, peer: MacAddr) -> Vec<Vec<u8>> {
        arp.vips
            .iter()
            .filter_map(|&(vip, src)| match (src, vip) {
                (IpAddr::V4(s), IpAddr::V4(t)) => {
                    Some(frame::arp_request_to(peer, self.path.our_mac, s, t))
                }
                (IpAddr::V6(s), IpAddr::V6(t)) => Some(frame::neighbor_solicitation_to(
                    peer,
                    self.path.our_mac,
                    s,
                    t,
                )),
                _ => None,
            })
            .collect()
    }

    /// Waits out the ARP check's grace (until twice the slowest round trip after the
    /// questions, within the deadline), takes what is already queued, and returns the
    /// VIPs the real server answered for, in the order asked.
    fn finish_arp(
        &mut self,
        mut arp: ArpAsk,
        sent_at: Instant,
        rtt: Option<Duration>,
        deadline: Instant,
        peer: MacAddr,
    ) -> io::Result<Vec<IpAddr>> {
        let all = |a: &ArpAsk| a.answered.len() >= a.vips.len();
        if !all(&arp) {
            if let Some(rtt) = rtt {
                let grace = (sent_at + rtt * 2).min(deadline);
                while !all(&arp) {
                    let Some(f) = self.io.recv(grace)? else { break };
                    if let Ok(rx) = frame::parse_with(&f.bytes, !f.checksum_trusted) {
                        arp.look(&rx, peer);
                    }
                }
            }
            // Bounded: a flood of frames must not hold the verdict back.
            for _ in 0..64 {
                if all(&arp) {
                    break;
                }
                match self.io.recv_ready()? {
                    Some(f) => {
                        if let Ok(rx) = frame::parse_with(&f.bytes, !f.checksum_trusted) {
                            arp.look(&rx, peer);
                        }
                    }
                    None => break,
                }
            }
        }
        Ok(arp
            .vips
            .iter()
            .map(|(v, _)| *v)
            .filter(|v| arp.answered.contains(v))
            .collect())
    }
}

/// The shortest wait, after the deciding check answered, for the others to corroborate.
const MIN_GRACE: Duration = Duration::from_millis(20);

/// How long a UDP datagram that needs no reply waits for an ICMP error after the VIP's
/// echo reply (at least).
const NO_REPLY_WAIT: Duration = Duration::from_millis(50);

/// How often a probe looks for an ICMP result another probe of the run is waiting for.
const MEMO_POLL: Duration = Duration::from_millis(5);

/// How long a TCP check waits for its VIP's shared ICMP result before sending anyway
/// (at most half the first attempt's share of the budget).
const MEMO_HOLD: Duration = Duration::from_millis(50);

impl ArpAsk {
    /// Notes a claim of one of the asked VIPs by the real server.
    fn look(&mut self, rx: &frame::Received, peer: MacAddr) {
        if self.vips.is_empty() {
            return;
        }
        let claimed = match &rx.inbound {
            Inbound::ArpReply {
                sender_mac,
                sender_ip,
                ..
            } if *sender_mac == peer || rx.eth_src == peer => IpAddr::V4(*sender_ip),
            Inbound::NeighborAdvert { target, lladdr }
                if rx.eth_src == peer || *lladdr == Some(peer) =>
            {
                IpAddr::V6(*target)
            }
            _ => return,
        };
        if self.vips.iter().any(|(v, _)| *v == claimed) && !self.answered.contains(&claimed) {
            self.answered.push(claimed);
        }
    }
}

/// An ARP request (IPv4) or neighbour solicitation (IPv6) for `target` from `our_ip`,
/// to `to` alone or, without it, to everyone (broadcast / the solicited-node group).
fn neighbour_request(
    our_mac: MacAddr,
    our_ip: IpAddr,
    target: IpAddr,
    to: Option<MacAddr>,
) -> Option<Vec<u8>> {
    match (our_ip, target) {
        (IpAddr::V4(s), IpAddr::V4(t)) => Some(match to {
            Some(mac) => frame::arp_request_to(mac, our_mac, s, t),
            None => frame::arp_request(our_mac, s, t),
        }),
        (IpAddr::V6(s), IpAddr::V6(t)) => Some(match to {
            Some(mac) => frame::neighbor_solicitation_to(mac, our_mac, s, t),
            None => frame::neighbor_solicitation(our_mac, s, t),
        }),
        _ => None,
    }
}

/// The MAC a frame gives for `target`: an ARP reply from it or a neighbour advertisement
/// of it.
fn neighbour_answer(rx: &frame::Received, target: IpAddr) -> Option<MacAddr> {
    match &rx.inbound {
        Inbound::ArpReply {
            sender_mac,
            sender_ip,
            ..
        } if IpAddr::V4(*sender_ip) == target => Some(*sender_mac),
        Inbound::NeighborAdvert { target: t, lladdr } if IpAddr::V6(*t) == target => {
            Some(lladdr.unwrap_or(rx.eth_src))
        }
        _ => None,
    }
}

/// The encapsulation's name in a reason.
fn tunnel_kind(e: Encap) -> &'static str {
    match e {
        Encap::Ipip => "IPIP",
        Encap::Gue { .. } => "GUE",
        Encap::Gre { .. } => "GRE",
    }
}
