//! Many probes at once in one process (`vipcheck status`, `vipcheck agent`): one packet
//! socket per interface and source shared by every probe, read by whichever probe is
//! waiting (it hands each frame to the probe it answers: see [`Tap`]), and the kernel
//! lookups and neighbour resolution done once per real server. The agent's turns, close
//! together, read it only at each turn ([`PACED_READ`]), and judge each frame by when it
//! came.
//!
//! Routing a reply needs no guess: every probe takes its echo identifiers and TCP source
//! ports from one counter ([`Entropy::token`]), so they are unique among the probes in
//! flight, and registers them before it sends. ARP replies and neighbour advertisements
//! go to every probe that asked about that address (at most the probes in flight); each
//! probe's own matching (the real server's MAC, the ISN, the echo sequence) then judges
//! them exactly as a lone `vipcheck probe` does.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::engine::{self, token_port, Entropy, OsEntropy};
use super::quick_hash::QuickMap;
use super::request::Request;
use super::{
    find_way_with, interface_of, netlink, no_neighbour, plan_checks, run_group, socket_error,
    Group, IcmpMemo, Verdict, Way,
};
use crate::net::packet_socket::first_of_each_family;
use crate::net::{Frame, FrameIo, PacketSocket};
use crate::wire::frame::{self, Inbound, QuotedProbe};
use crate::wire::MacAddr;

/// What a received frame is addressed to, as far as routing it to a probe goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    /// A token ([`Entropy::token`]): an echo reply's identifier, or our TCP port (a
    /// reply's destination port), or either of them quoted by an ICMP error. A probe
    /// registers each token once, whichever of its checks carries it.
    Token(u16),
    /// The address an ARP reply or neighbour advertisement claims.
    Claim(IpAddr),
    /// Our UDP port (held by a socket of ours, see [`super::udp::claim_ports`]): a
    /// datagram's destination port, or the source port an error quotes.
    UdpPort(u16),
}

/// The tokens a counter can hand out before one comes round again: the size of the
/// ephemeral port range the TCP source port is taken from.
const TOKENS: u32 = 28232;

/// The token an echo identifier is, if it is one.
fn ident_key(ident: u16) -> Option<Key> {
    (u32::from(ident) < TOKENS).then_some(Key::Token(ident))
}

/// The token a TCP port of ours stands for ([`token_port`]), if it is one.
fn port_key(port: u16) -> Option<Key> {
    let t = port.checked_sub(token_port(0))?;
    (u32::from(t) < TOKENS).then_some(Key::Token(t))
}

fn quoted_key(q: &frame::Quoted) -> Option<Key> {
    match &q.probe {
        QuotedProbe::Echo { ident, .. } => ident_key(*ident),
        QuotedProbe::Tcp { src_port, .. } => port_key(*src_port),
        QuotedProbe::Udp { src_port, .. } => Some(Key::UdpPort(*src_port)),
        QuotedProbe::Tunnelled(inner) => quoted_key(inner),
        QuotedProbe::Unknown => None,
    }
}

/// The key a frame is routed by, if it can answer any probe. Checksums are not verified
/// here: the probe the frame goes to parses it again and verifies them there, so every
/// frame on the wire (most of them for nobody) is not summed twice.
fn route_key(f: &Frame) -> Option<Key> {
    let rx = frame::parse_with(&f.bytes, false).ok()?;
    match rx.inbound {
        Inbound::ArpReply { sender_ip, .. } => Some(Key::Claim(IpAddr::V4(sender_ip))),
        Inbound::NeighborAdvert { target, .. } => Some(Key::Claim(IpAddr::V6(target))),
        Inbound::EchoReply { ident, .. } => ident_key(ident),
        Inbound::Tcp { segment, .. } => port_key(segment.dst_port),
        Inbound::Udp { dst_port, .. } => Some(Key::UdpPort(dst_port)),
        Inbound::IcmpError { quoted, .. } => quoted_key(&quoted),
        Inbound::Other => None,
    }
}

/// What the reading probe has taken off the shared socket for the others, and who waits
/// for what.
#[derive(Default)]
struct Post {
    /// Which leases (by id) a frame with this key goes to.
    routes: QuickMap<Key, Vec<u64>>,
    /// Frames routed to a lease and not yet taken by it.
    boxes: QuickMap<u64, VecDeque<Frame>>,
    /// A lease is reading the socket: the others wait for it to post their frames.
    reading: bool,
    /// The leases waiting while another reads, each woken on its own: when a frame is
    /// posted to it, or (one of those that would read) when the reader leaves.
    waiting: Vec<Waiting>,
    /// Emptied containers kept for the next leases (a lease lives one round; the agent
    /// runs a hundred rounds a second): route lists, boxes, and the reader's batch.
    spare_routes: Vec<Vec<u64>>,
    spare_boxes: Vec<VecDeque<Frame>>,
    batch: Vec<Frame>,
}

/// A lease waiting for frames, woken on its own when one is posted to it.
struct Waiting {
    id: u64,
    cv: Arc<Condvar>,
    /// It takes the reading over when the reader leaves (a paced round does not: it is
    /// only woken by its own frames).
    would_read: bool,
}

/// Waits on `cv` for at most `wait`, listed among the waiting as lease `id` (one that
/// `would_read` or not) meanwhile; `None` if the lock is poisoned.
fn wait_in<'a>(
    mut post: MutexGuard<'a, Post>,
    id: u64,
    cv: &Arc<Condvar>,
    would_read: bool,
    wait: Duration,
) -> Option<MutexGuard<'a, Post>> {
    post.waiting.push(Waiting {
        id,
        cv: cv.clone(),
        would_read,
    });
    let mut post = cv.wait_timeout(post, wait).ok()?.0;
    post.waiting.retain(|w| w.id != id);
    Some(post)
}

/// Emptied containers [`Post`] keeps at most, of each kind.
const SPARE: usize = 64;

impl Post {
    /// Puts `f` in the box of every lease that listens for its key, and wakes those that
    /// wait; false when none listens.
    fn route(&mut self, f: Frame) -> bool {
        let Some(key) = route_key(&f) else {
            return false;
        };
        let Post {
            routes,
            boxes,
            spare_boxes,
            waiting,
            ..
        } = self;
        let Some((&last, others)) = routes.get(&key).and_then(|ids| ids.split_last()) else {
            return false;
        };
        // Into lease `id`'s box (a kept one if it has none), waking it if it waits.
        let mut deliver = |id: u64, f: Frame| {
            boxes
                .entry(id)
                .or_insert_with(|| spare_boxes.pop().unwrap_or_default())
                .push_back(f);
            Post::wake_in(waiting, id);
        };
        for &id in others {
            deliver(id, f.clone());
        }
        deliver(last, f);
        true
    }

    /// Keeps an emptied container for later, up to [`SPARE`] of a kind.
    fn keep<T>(spare: &mut Vec<T>, item: T) {
        if spare.len() < SPARE {
            spare.push(item);
        }
    }

    /// Lease `id`'s next frame from its box.
    fn pop(&mut self, id: u64) -> Option<Frame> {
        self.boxes.get_mut(&id).and_then(VecDeque::pop_front)
    }

    /// Wakes lease `id` if it is among the `waiting`.
    fn wake_in(waiting: &[Waiting], id: u64) {
        if let Some(Waiting { cv, .. }) = waiting.iter().find(|w| w.id == id) {
            cv.notify_one();
        }
    }

    /// Wakes one waiting lease to take the reading over, if nobody reads.
    fn hand_on(&self) {
        if !self.reading {
            if let Some(Waiting { cv, .. }) = self.waiting.iter().find(|w| w.would_read) {
                cv.notify_one();
            }
        }
    }
}

/// One shared packet socket. There is no dispatcher thread: a probe that waits for a
/// frame and finds none in its box reads the socket itself, unless another probe is
/// reading it already, and posts what it reads to the probes each frame answers (itself
/// included). A probe that waits while another reads is woken when frames are posted or
/// the reader leaves (then one of the waiting takes over). One round in flight, the
/// agent's usual case, thus reads its own replies with no thread between it and the
/// socket.
struct Tap {
    sock: PacketSocket,
    /// The reading probe's handle (the `reading` flag in [`Post`] says whose turn it is:
    /// this lock is never waited for).
    reader: Mutex<PacketSocket>,
    post: Mutex<Post>,
    /// Frames received that no probe was waiting for (late replies, foreign traffic).
    unrouted: AtomicU64,
    /// Set when a read failed (the interface went away): nobody reads the socket again.
    failed: AtomicBool,
    /// When a read last found the socket's queue empty.
    drained: Drained,
}

/// When something last happened, kept without a lock.
struct Drained {
    /// Microseconds since `since`; 0: never.
    at: AtomicU64,
    since: Instant,
}

impl Drained {
    fn new() -> Drained {
        Drained {
            at: AtomicU64::new(0),
            since: Instant::now(),
        }
    }

    fn mark(&self) {
        let now = self.since.elapsed().as_micros() as u64;
        self.at.store(now.max(1), Ordering::Relaxed);
    }

    /// True when it happened less than `within` ago.
    fn within(&self, within: Duration) -> bool {
        let at = self.at.load(Ordering::Relaxed);
        let now = self.since.elapsed().as_micros() as u64;
        at > 0 && now.saturating_sub(at) < within.as_micros() as u64
    }
}

/// Frames a reader takes without waiting after the first, at most, before it posts them.
const DRAIN: usize = 64;

/// Frames [`Tap::catch_up`] takes at most: more than the receive buffer holds.
const BACKLOG: usize = 1 << 16;

impl Tap {
    fn open(ifindex: u32, our_mac: MacAddr, sources: &[IpAddr]) -> io::Result<Tap> {
        // The reading handle reads through the receive ring; its clone sends.
        let reader = PacketSocket::open_ringed(ifindex, our_mac, sources)?;
        // Room for the replies to every probe in flight, even if nobody reads for a while
        // (the ring's slots, and the receive queue for the frames too long for a slot).
        reader.set_recv_buffer(8 << 20);
        let sock = reader.try_clone()?;
        let reader = Mutex::new(reader);
        Ok(Tap {
            sock,
            reader,
            post: Mutex::default(),
            unrouted: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            drained: Drained::new(),
        })
    }

    /// True once a read of the socket has failed.
    fn dead(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Reads what the socket has for lease `id` (and posts what it has for others): waits
    /// until `deadline` for a frame (on `cv`, `id`'s own, while another lease reads); with
    /// `deadline` `None`, only takes what is queued. Gives `id`'s next frame, or `None` at
    /// the deadline (or at once without one).
    fn take(&self, id: u64, cv: &Arc<Condvar>, deadline: Option<Instant>) -> Option<Frame> {
        let mut post = self.post.lock().ok()?;
        // Bounded by the deadline (each pass either reads, which waits, or waits for the
        // reader); without one, by `read_once` (one read at most).
        let mut read_once = false;
        let got = loop {
            if let Some(f) = post.pop(id) {
                break Some(f);
            }
            let now = Instant::now();
            let wait = match deadline {
                Some(d) if now < d => Some(d - now),
                Some(_) => break None,
                None if read_once => break None,
                None => None,
            };
            if post.reading || self.dead() {
                let Some(w) = wait else { break None };
                post = wait_in(post, id, cv, true, w)?;
                continue;
            }
            post = self.read_and_post(post, deadline)?.0;
            read_once = true;
        };
        // Whoever leaves the socket unread while others wait hands it on.
        post.hand_on();
        got
    }

    /// Lease `id`'s next frame as another lease's read posts it, waited for until
    /// `deadline` without reading the socket (`None` then).
    fn wait_posted(&self, id: u64, cv: &Arc<Condvar>, deadline: Instant) -> Option<Frame> {
        let mut post = self.post.lock().ok()?;
        // Bounded by the deadline: each pass waits until it or until woken.
        loop {
            if let Some(f) = post.pop(id) {
                return Some(f);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            post = wait_in(post, id, cv, false, deadline - now)?;
        }
    }

    /// Lease `id`'s next frame without waiting: from its box, or else from what the socket
    /// has queued ([`Tap::catch_up`]: all of it, not one read's worth).
    fn take_queued(&self, id: u64, cv: &Arc<Condvar>) -> Option<Frame> {
        if let Some(f) = self.post.lock().ok()?.pop(id) {
            return Some(f);
        }
        self.catch_up();
        self.take(id, cv, None)
    }

    /// Takes in, unless a probe is reading already, what the socket queued while nobody
    /// read: the filter lets in all traffic to the director's own address (its SSH, its
    /// monitoring), and between rounds it piles up. A round calls this before it sends,
    /// so that a buffer filled while idle cannot drop its replies. Frames are posted as
    /// any reader posts them (a round just started may find one of its own).
    fn catch_up(&self) {
        let Ok(mut post) = self.post.lock() else {
            return;
        };
        // Bounded by BACKLOG frames, DRAIN + 1 at a time; it stops early when another
        // probe has started reading meanwhile (that one takes in the rest).
        let mut taken = 0;
        while taken < BACKLOG && !post.reading && !self.dead() {
            let Some((p, n)) = self.read_and_post(post, None) else {
                return;
            };
            post = p;
            taken += n;
            if n <= DRAIN {
                break;
            }
        }
        post.hand_on();
    }

    /// One read turn by the caller, who holds `post` and finds nobody reading: reads
    /// without the lock ([`Tap::read`]), then posts every frame to the probes it answers.
    /// Gives the lock back and how many frames were read; `None` if the lock is
    /// poisoned. A read error marks the socket failed.
    fn read_and_post<'a>(
        &'a self,
        mut post: MutexGuard<'a, Post>,
        deadline: Option<Instant>,
    ) -> Option<(MutexGuard<'a, Post>, usize)> {
        post.reading = true;
        let mut frames = std::mem::take(&mut post.batch);
        drop(post);
        let read = self.read(deadline, &mut frames);
        let mut post = self.post.lock().ok()?;
        post.reading = false;
        if read.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        let n = frames.len();
        for f in frames.drain(..) {
            if !post.route(f) {
                self.unrouted.fetch_add(1, Ordering::Relaxed);
            }
        }
        post.batch = frames;
        Some((post, n))
    }

    /// One read turn into `frames` (empty): the first frame (waited for until `deadline`,
    /// or only if queued) and up to [`DRAIN`] more already queued, from the socket's
    /// receive ring (replies come in bursts: a real server's ports answer together). A
    /// frame read before an error stays in `frames`.
    fn read(&self, deadline: Option<Instant>, frames: &mut Vec<Frame>) -> io::Result<()> {
        let mut sock = self
            .reader
            .lock()
            .map_err(|_| io::Error::other("reader lock poisoned"))?;
        // Bounded by the deadline: each pass waits until a frame is queued or it passes;
        // without one, a single pass.
        loop {
            if let Some(d) = deadline {
                if !sock.wait_readable(d)? {
                    return Ok(());
                }
            }
            let n = sock.recv_batch(frames, DRAIN + 1)?;
            if n <= DRAIN {
                // It took less than it asked for: the queue is empty now.
                self.drained.mark();
            }
            // Woken without a frame (another handle took it): wait on.
            if n > 0 || deadline.is_none() {
                return Ok(());
            }
        }
    }

    fn register(&self, key: Key, id: u64) {
        if let Ok(mut p) = self.post.lock() {
            let Post {
                routes,
                spare_routes,
                ..
            } = &mut *p;
            routes
                .entry(key)
                .or_insert_with(|| spare_routes.pop().unwrap_or_default())
                .push(id);
        }
    }

    fn unregister(&self, keys: &[Key], id: u64) {
        if let Ok(mut p) = self.post.lock() {
            for key in keys {
                if let Some(v) = p.routes.get_mut(key) {
                    v.retain(|i| *i != id);
                    if v.is_empty() {
                        if let Some(v) = p.routes.remove(key) {
                            Post::keep(&mut p.spare_routes, v);
                        }
                    }
                }
            }
            if let Some(mut b) = p.boxes.remove(&id) {
                b.clear();
                Post::keep(&mut p.spare_boxes, b);
            }
        }
    }
}

/// A call made once by a probe still waiting for a reply at a given instant (the agent:
/// the thread that runs a turn itself hands the schedule on to another when the round
/// outlasts the gap to the next turn).
pub struct Alarm {
    at: Instant,
    rung: AtomicBool,
    ring: Box<dyn Fn() + Send + Sync>,
}

impl Alarm {
    pub fn new(at: Instant, ring: impl Fn() + Send + Sync + 'static) -> Alarm {
        Alarm {
            at,
            rung: AtomicBool::new(false),
            ring: Box::new(ring),
        }
    }

    /// True once it has rung.
    pub fn rung(&self) -> bool {
        self.rung.load(Ordering::Relaxed)
    }

    fn ring_once(&self) {
        if !self.rung.swap(true, Ordering::Relaxed) {
            (self.ring)();
        }
    }
}

/// Sleeps until `t` (at once if it has passed).
fn sleep_until(t: Instant) {
    let left = t.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        std::thread::sleep(left);
    }
}

/// A round whose alarm (the agent's next turn) is due within this does not wait on the
/// socket for its replies: it sleeps until the alarm (or its own next wake, if sooner)
/// and then takes at once what came meanwhile, each frame judged by when it came (its
/// kernel receive time). A turn of the agent then costs one wake-up, not one per burst of
/// replies, and its verdict is known at most this much later. A round still open at its
/// alarm (a silent or slow server) does not read the socket either: it is woken by its
/// own frames as the next turns read them, and reads itself at its own wakes (its
/// retries, its deadline).
pub const PACED_READ: Duration = Duration::from_millis(25);

/// How the agent runs one turn ([`Fleet::probe_many`]).
#[derive(Default)]
pub struct Turn {
    /// Rung if a round is still waiting for a reply at its instant; within
    /// [`PACED_READ`], the round reads its replies at that instant.
    pub alarm: Option<Arc<Alarm>>,
    /// The target's last turn found every pair up: its ports' SYNs go with the echo
    /// ([`engine::RoundSpec::ports_at_once`]), and the ARP-problem answers younger than
    /// `arp_reask` stand without a question.
    pub all_up_before: bool,
    /// See above (the agent's `--arp-reask`, by default [`ARP_REASK`]); zero: the question
    /// is asked on every turn.
    pub arp_reask: Duration,
}

/// One probe's view of a [`Tap`]: sends on the shared socket, receives the frames routed
/// to it; its keys and box are dropped when it ends.
struct Lease {
    tap: Arc<Tap>,
    id: u64,
    keys: Vec<Key>,
    /// What it waits on while another lease reads.
    cv: Arc<Condvar>,
    /// Rung if a wait for a reply lasts past its instant.
    alarm: Option<Arc<Alarm>>,
}

impl Lease {
    fn new(tap: Arc<Tap>, id: u64) -> Lease {
        Lease {
            tap,
            id,
            keys: Vec::new(),
            cv: Arc::default(),
            alarm: None,
        }
    }

    fn listen(&mut self, key: Key) {
        self.tap.register(key, self.id);
        self.keys.push(key);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.tap.unregister(&self.keys, self.id);
    }
}

impl FrameIo for Lease {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.tap.sock.transmit(frame)
    }

    fn send_batch(&mut self, frames: &[Vec<u8>]) -> io::Result<()> {
        self.tap.sock.transmit_batch(frames)
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        let Some(alarm) = self.alarm.as_ref() else {
            return Ok(self.tap.take(self.id, &self.cv, Some(deadline)));
        };
        if !alarm.rung() && alarm.at > Instant::now() + PACED_READ {
            // The next turn is far: wait on the socket, and hand the lead on at the alarm.
            if alarm.at < deadline {
                if let Some(f) = self.tap.take(self.id, &self.cv, Some(alarm.at)) {
                    return Ok(Some(f));
                }
                // Still waiting at the alarm's instant (or the lock is poisoned).
                alarm.ring_once();
            }
            return Ok(self.tap.take(self.id, &self.cv, Some(deadline)));
        }
        // Paced: no wait on the socket. What came is taken at the alarm (the next turn);
        // after it, a round still open is woken by its frames as the turns read them,
        // and reads itself at its own wakes.
        if !alarm.rung() {
            let until = alarm.at.min(deadline);
            sleep_until(until);
            if let Some(f) = self.tap.take_queued(self.id, &self.cv) {
                return Ok(Some(f));
            }
            if until < alarm.at {
                return Ok(None);
            }
            alarm.ring_once();
        }
        // The turns read the socket meanwhile: woken by a frame they post to it.
        if let Some(f) = self.tap.wait_posted(self.id, &self.cv, deadline) {
            return Ok(Some(f));
        }
        Ok(self.tap.take_queued(self.id, &self.cv))
    }

    fn recv_ready(&mut self) -> io::Result<Option<Frame>> {
        Ok(self.tap.take(self.id, &self.cv, None))
    }
}

/// Random bits from the kernel, and tokens from the fleet's counter, each registered
/// with the lease before the probe that carries it is sent.
struct LeaseEntropy<'a> {
    lease: &'a RefCell<Lease>,
    counter: &'a AtomicU32,
}

impl Entropy for LeaseEntropy<'_> {
    fn next_u32(&mut self) -> u32 {
        OsEntropy.next_u32()
    }

    fn token(&mut self) -> Option<u16> {
        let t = (self.counter.fetch_add(1, Ordering::Relaxed) % TOKENS) as u16;
        let mut lease = self.lease.borrow_mut();
        lease.listen(Key::Token(t));
        Some(t)
    }
}

/// The lease as the prober's `FrameIo`, shared with its [`LeaseEntropy`]: both are used
/// by one thread, one call at a time.
struct SharedLease<'a>(&'a RefCell<Lease>);

impl FrameIo for SharedLease<'_> {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.0.borrow_mut().send(frame)
    }

    fn send_batch(&mut self, frames: &[Vec<u8>]) -> io::Result<()> {
        self.0.borrow_mut().send_batch(frames)
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        self.0.borrow_mut().recv(deadline)
    }

    fn recv_ready(&mut self) -> io::Result<Option<Frame>> {
        self.0.borrow_mut().recv_ready()
    }
}

type SocketKey = (u32, Option<Ipv4Addr>, Option<Ipv6Addr>);

/// A map whose values are computed once, by the first thread that needs them, while the
/// others wait for that result.
type OnceMap<K, V, E = String> = Mutex<QuickMap<K, Arc<OnceLock<Result<V, E>>>>>;

/// Probes many (VIP, real server) pairs concurrently over shared sockets.
pub struct Fleet {
    ways: OnceMap<(IpAddr, Option<String>), Way>,
    /// Each egress interface's name, MAC and addresses, read once for all its ways.
    interfaces: OnceMap<u32, (netlink::Link, Vec<netlink::IfAddr>)>,
    /// The next hop's MAC, and whether the kernel's entry for it still needs confirming.
    macs: OnceMap<(u32, IpAddr), (MacAddr, bool), (String, bool)>,
    taps: OnceMap<SocketKey, Arc<Tap>>,
    tokens: AtomicU32,
    ids: AtomicU64,
    icmp: IcmpMemo,
    /// The ARP-problem questions' last answers: (real server, VIP) -> when asked, and
    /// whether it claimed the VIP.
    arp: Mutex<QuickMap<(IpAddr, IpAddr), (Instant, bool)>>,
}

/// How old the ARP-problem answers of a real server all up at its last turn may be
/// before its next round asks again, by default (see [`Turn::arp_reask`]). A real server's ARP
/// behaviour is configuration (`arp_ignore`, where the VIP sits), which changes rarely;
/// asking on every turn cost a frame and, waiting out the answer's grace, a wake-up. A
/// real server that failed anything at its last turn is asked on every turn.
pub const ARP_REASK: Duration = Duration::from_secs(5);

/// The once-cell for `key` in `map`, made on first use; `None` if the lock is poisoned.
fn cell<K: std::hash::Hash + Eq, V>(
    map: &Mutex<QuickMap<K, Arc<OnceLock<V>>>>,
    key: K,
) -> Option<Arc<OnceLock<V>>> {
    map.lock()
        .ok()
        .map(|mut m| m.entry(key).or_default().clone())
}

impl Default for Fleet {
    fn default() -> Self {
        Fleet::new()
    }
}

impl Fleet {
    pub fn new() -> Fleet {
        Fleet {
            ways: Mutex::default(),
            interfaces: Mutex::default(),
            macs: Mutex::default(),
            taps: Mutex::default(),
            // Start somewhere random so two runs back to back do not reuse ports.
            tokens: AtomicU32::new(OsEntropy.next_u32() % TOKENS),
            ids: AtomicU64::new(0),
            icmp: IcmpMemo::default(),
            arp: Mutex::default(),
        }
    }

    /// The VIPs among `vips` that real server `rip` answered ARP-problem questions for,
    /// if every one of them was asked less than `reask` before `now`; `None` when one
    /// must be asked again (or `vips` is empty).
    fn arp_known(
        &self,
        rip: IpAddr,
        vips: &[IpAddr],
        now: Instant,
        reask: Duration,
    ) -> Option<Vec<IpAddr>> {
        let known = self.arp.lock().ok()?;
        let mut answered = Vec::new();
        for &vip in vips {
            let &(asked, claimed) = known.get(&(rip, vip))?;
            if now.saturating_duration_since(asked) >= reask {
                return None;
            }
            if claimed {
                answered.push(vip);
            }
        }
        (!vips.is_empty()).then_some(answered)
    }

    /// Records the answers of a round that asked the ARP-problem questions for `vips`.
    fn arp_asked(&self, rip: IpAddr, vips: &[IpAddr], answered: &[IpAddr], at: Instant) {
        if let Ok(mut known) = self.arp.lock() {
            for &vip in vips {
                known.insert((rip, vip), (at, answered.contains(&vip)));
            }
        }
    }

    /// Frames received that no probe was waiting for, over every socket so far.
    pub fn unrouted(&self) -> u64 {
        self.taps.lock().map_or(0, |t| {
            t.values()
                .filter_map(|c| c.get().and_then(|r| r.as_ref().ok()))
                .map(|tap| tap.unrouted.load(Ordering::Relaxed))
                .sum()
        })
    }

    fn tap(&self, way: &Way, sources: &[IpAddr]) -> Result<Arc<Tap>, String> {
        let (v4, v6) = first_of_each_family(sources);
        let c = cell(&self.taps, (way.link.index, v4, v6)).ok_or("internal lock poisoned")?;
        c.get_or_init(|| {
            Tap::open(way.link.index, way.our_mac, sources)
                .map(Arc::new)
                .map_err(|e| socket_error(&e))
        })
        .clone()
    }

    /// Runs every check of `req` within its timeout, counted from `start`; the same
    /// checks and verdict as `vipcheck probe` with these arguments.
    pub fn probe(&self, req: &Request, start: Instant) -> Verdict {
        self.probe_with_memo(req, start, &self.icmp)
    }

    /// As [`Fleet::probe`], sharing ICMP results through `memo` instead of the fleet's
    /// own (which keeps the first result of each VIP and real server for the fleet's
    /// life): the agent gives each round of a real server's pairs a fresh one.
    pub fn probe_with_memo(&self, req: &Request, start: Instant, memo: &IcmpMemo) -> Verdict {
        self.probe_group(&[req], start, memo, &Turn::default())
            .pop()
            .unwrap_or_else(|| Verdict::cannot_probe("no check was run"))
    }

    /// Probes several requests at once, one verdict each, in order: the requests to one
    /// real server that differ only in their ports (see [`same_round`]) share one round,
    /// with one ARP question and one echo per VIP; others are probed one by one, each
    /// as `turn` says.
    pub fn probe_many(
        &self,
        reqs: &[&Request],
        start: Instant,
        memo: &IcmpMemo,
        turn: &Turn,
    ) -> Vec<Verdict> {
        let mut verdicts: Vec<Option<Verdict>> = vec![None; reqs.len()];
        let mut left: Vec<usize> = (0..reqs.len()).collect();
        while let Some(&lead) = left.first() {
            let (together, rest): (Vec<usize>, Vec<usize>) = left
                .iter()
                .partition(|&&i| i == lead || same_round(reqs[lead], reqs[i]));
            left = rest;
            let group: Vec<&Request> = together.iter().map(|&i| reqs[i]).collect();
            for (i, v) in together
                .into_iter()
                .zip(self.probe_group(&group, start, memo, turn))
            {
                verdicts[i] = Some(v);
            }
        }
        verdicts
            .into_iter()
            .map(|v| v.unwrap_or_else(|| Verdict::cannot_probe("no check was run")))
            .collect()
    }

    /// Runs every check of `reqs` (which [`same_round`] puts together) in one round
    /// within their timeout, counted from `start`.
    fn probe_group(
        &self,
        reqs: &[&Request],
        start: Instant,
        memo: &IcmpMemo,
        turn: &Turn,
    ) -> Vec<Verdict> {
        let Some(req) = reqs.first().copied() else {
            return Vec::new();
        };
        let all = |v: Verdict| vec![v; reqs.len()];
        let deadline = start + req.timeout;
        let Some(way_cell) = cell(&self.ways, (req.rip, req.iface.clone())) else {
            return all(Verdict::cannot_probe("internal lock poisoned"));
        };
        let interface = |oif: u32| match cell(&self.interfaces, oif) {
            Some(c) => c.get_or_init(|| interface_of(oif, deadline)).clone(),
            None => Err("internal lock poisoned".to_string()),
        };
        let found = || find_way_with(req.rip, req.iface.as_deref(), deadline, interface);
        let way = match way_cell.get_or_init(found) {
            Ok(w) => w,
            Err(reason) => return all(Verdict::cannot_probe(reason.clone())),
        };
        // Every request's checks, each once, and which are whose (`mine` holds each
        // request's indices into `checks` in turn, `spans` where each request's are).
        let mut checks: Vec<engine::Check> = Vec::new();
        let mut planned: Vec<engine::Check> = Vec::new();
        let mut mine: Vec<usize> = Vec::new();
        let mut spans = Vec::with_capacity(reqs.len());
        let mut outer_src = None;
        for r in reqs {
            planned.clear();
            let src = match plan_checks(r, way, &mut planned) {
                Ok(src) => src,
                Err(reason) => return all(Verdict::cannot_probe(reason)),
            };
            outer_src.get_or_insert(src);
            let from = mine.len();
            for c in planned.drain(..) {
                mine.push(match checks.iter().position(|k| *k == c) {
                    Some(i) => i,
                    None => {
                        checks.push(c);
                        checks.len() - 1
                    }
                });
            }
            spans.push(from..mine.len());
        }
        let own: Vec<&[usize]> = spans.into_iter().map(|r| &mine[r]).collect();
        let Some(outer_src) = outer_src else {
            return Vec::new();
        };
        // Held until the checks are done (see `udp::claim_ports`).
        let _udp_ports = match super::udp::claim_ports(&mut checks, way.link.index) {
            Ok(s) => s,
            Err(e) => {
                return all(Verdict::failed(format!(
                    "cannot hold a UDP source port: {e}"
                )))
            }
        };
        let mut sources = vec![outer_src];
        sources.extend(checks.iter().map(|c| c.src));
        let tap = match self.tap(way, &sources) {
            Ok(t) => t,
            Err(reason) => return all(Verdict::cannot_probe(reason)),
        };
        if tap.dead() {
            // A read of it failed: every reply would go unseen.
            return all(Verdict::cannot_probe(format!(
                "the packet socket on {} failed; it is reopened on the next refresh",
                way.link.name
            )));
        }
        // Before anything is sent: what piled up while nobody read must not fill the
        // buffer the replies come into. A socket found empty within PACED_READ (the
        // agent's turns read it a hundred times a second) has not had the time; that
        // much traffic is left to the next read, as a paced round leaves its own.
        if !tap.drained.within(PACED_READ) {
            tap.catch_up();
        }
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let next_hop = way.route.gateway.unwrap_or(req.rip);
        let attempts = req.retries.saturating_add(1);
        let Some(mac_cell) = cell(&self.macs, (way.route.oif, next_hop)) else {
            return all(Verdict::cannot_probe("internal lock poisoned"));
        };
        let peer = mac_cell.get_or_init(|| {
            if let Ok(Some(n)) = netlink::neighbor(way.route.oif, next_hop, deadline) {
                return Ok((n.mac, !n.confirmed));
            }
            let mut lease = Lease::new(tap.clone(), id);
            lease.listen(Key::Claim(next_hop));
            match engine::resolve_neighbor(
                &mut lease,
                way.our_mac,
                outer_src,
                next_hop,
                deadline,
                attempts,
            ) {
                Ok(Some(mac)) => Ok((mac, false)),
                Ok(None) => Err((no_neighbour(next_hop, &way.link.name), false)),
                Err(e) => Err((format!("cannot send on the packet socket: {e}"), true)),
            }
        });
        let (peer_mac, unconfirmed) = match peer {
            Ok(m) => *m,
            Err((reason, false)) => return all(Verdict::failed(reason.clone())),
            Err((reason, true)) => return all(Verdict::cannot_probe(reason.clone())),
        };
        let path = way.path(req, outer_src, peer_mac);
        let mut lease = Lease::new(tap, id);
        lease.alarm = turn.alarm.clone();
        if unconfirmed {
            lease.listen(Key::Claim(next_hop));
        }
        for c in &checks {
            if let engine::CheckKind::Udp { src_port, .. } = c.kind {
                lease.listen(Key::UdpPort(src_port));
            }
            if c.kind == engine::CheckKind::Arp && !lease.keys.contains(&Key::Claim(c.vip)) {
                lease.listen(Key::Claim(c.vip));
            }
        }
        let lease = RefCell::new(lease);
        let mut entropy = LeaseEntropy {
            lease: &lease,
            counter: &self.tokens,
        };
        // After a turn that found every port up, the ARP-problem answers of the last few
        // seconds stand (not with a next hop to confirm: it may be another host now).
        let arp_vips: Vec<IpAddr> = checks
            .iter()
            .filter(|c| c.kind == engine::CheckKind::Arp)
            .map(|c| c.vip)
            .collect();
        let asked_at = Instant::now();
        let arp_known = (turn.all_up_before && !unconfirmed)
            .then(|| self.arp_known(req.rip, &arp_vips, asked_at, turn.arp_reask))
            .flatten();
        let group = Group {
            reqs,
            own: &own,
            checks: &checks,
            ports_at_once: turn.all_up_before,
            arp_known: arp_known.as_deref(),
        };
        let run = run_group(
            &group,
            &path,
            &mut SharedLease(&lease),
            &mut entropy,
            deadline,
            Some(memo),
            unconfirmed.then_some(next_hop),
        );
        if let Some(answered) = &run.arp_answered {
            self.arp_asked(req.rip, &arp_vips, answered, asked_at);
        }
        if let Some(mac) = run.confirmed {
            // Confirmed as the kernel's entry is by that same answer (REACHABLE): the next
            // rounds neither ask again nor report the change again, until the fleet is
            // rebuilt and reads the kernel's entry anew.
            if let Ok(mut macs) = self.macs.lock() {
                macs.insert(
                    (way.route.oif, next_hop),
                    Arc::new(OnceLock::from(Ok((mac, false)))),
                );
            }
        }
        run.verdicts
    }
}

/// Whether two requests can share one round: the same real server, interface, VIPs,
/// forwarding method, tunnel, timeout, retries and ARP rule (they differ in their
/// ports), and neither has an application check.
pub fn same_round(a: &Request, b: &Request) -> bool {
    a.rip == b.rip
        && a.iface == b.iface
        && a.vips == b.vips
        && a.method == b.method
        && a.tunnel == b.tunnel
        && a.timeout == b.timeout
        && a.retries == b.retries
        && a.allow_arp_answer == b.allow_arp_answer
        && a.app.is_none()
        && b.app.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::wire::arp::{ArpOperation, ArpRepr};
    use crate::wire::ethernet::{ethertype, EthernetRepr};
    use crate::wire::frame::{Probe, ProbeKind};
    use crate::wire::icmpv4::Icmpv4Repr;
    use crate::wire::ipv4::{protocol, Ipv4Repr};

    #[test]
    fn arp_answers_stand_while_every_vip_was_asked_within_the_reask_time() {
        let f = Fleet::new();
        let rip: IpAddr = "192.0.2.11".parse().unwrap();
        let (a, b): (IpAddr, IpAddr) =
            ("192.0.2.20".parse().unwrap(), "192.0.2.21".parse().unwrap());
        let t0 = Instant::now();
        assert_eq!(f.arp_known(rip, &[a], t0, ARP_REASK), None, "never asked");
        f.arp_asked(rip, &[a, b], &[b], t0);
        assert_eq!(
            f.arp_known(rip, &[a, b], t0 + ARP_REASK / 2, ARP_REASK),
            Some(vec![b])
        );
        assert_eq!(
            f.arp_known(rip, &[a], t0 + ARP_REASK / 2, ARP_REASK),
            Some(vec![])
        );
        assert_eq!(
            f.arp_known(rip, &[a, b], t0 + ARP_REASK, ARP_REASK),
            None,
            "too old"
        );
        let other: IpAddr = "192.0.2.12".parse().unwrap();
        assert_eq!(
            f.arp_known(other, &[a], t0, ARP_REASK),
            None,
            "another real server"
        );
        let c: IpAddr = "192.0.2.22".parse().unwrap();
        assert_eq!(
            f.arp_known(rip, &[a, c], t0, ARP_REASK),
            None,
            "one VIP never asked"
        );
        assert_eq!(f.arp_known(rip, &[], t0, ARP_REASK), None, "nothing to ask");
        assert_eq!(
            f.arp_known(rip, &[a, b], t0, Duration::ZERO),
            None,
            "zero: always asked"
        );
        // A later question replaces the answer.
        f.arp_asked(rip, &[b], &[], t0 + ARP_REASK);
        assert_eq!(
            f.arp_known(rip, &[b], t0 + ARP_REASK, ARP_REASK),
            Some(vec![])
        );
    }

    const DIR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const RS_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);

    fn syn(src_port: u16) -> Vec<u8> {
        Probe {
            src_mac: DIR_MAC,
            dst_mac: RS_MAC,
            tunnel: None,
            src: "192.0.2.2".parse().unwrap(),
            dst: "192.0.2.20".parse().unwrap(),
            hop_limit: 1,
            ip_ident: 1,
            kind: ProbeKind::Syn {
                src_port,
                dst_port: 80,
                seq: 7,
            },
            encap: Default::default(),
        }
        .build()
        .unwrap()
    }

    fn ipv4_frame(proto: u8, src: [u8; 4], dst: [u8; 4], body: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 34 + body.len()];
        EthernetRepr {
            dst: DIR_MAC,
            src: RS_MAC,
            ethertype: ethertype::IPV4,
        }
        .emit(&mut f);
        Ipv4Repr {
            src: src.into(),
            dst: dst.into(),
            protocol: proto,
            ttl: 64,
            ident: 9,
            payload_len: body.len(),
        }
        .emit(&mut f[14..]);
        f[34..].copy_from_slice(body);
        f
    }

    #[test]
    fn replies_route_by_our_port_ident_or_claimed_address() {
        // A segment to the director routes by its destination port: our source port.
        let mut seg = syn(80);
        // Swap the ports of our own SYN to make it look like the answer to port 41000.
        seg[34..36].copy_from_slice(&80u16.to_be_bytes());
        seg[36..38].copy_from_slice(&41000u16.to_be_bytes());
        assert_eq!(
            route_key(&Frame {
                bytes: seg,
                checksum_trusted: true,
                at: None,
            }),
            Some(Key::Token(41000 - 32768))
        );

        let arp = ArpRepr {
            operation: ArpOperation::Reply,
            sender_mac: RS_MAC,
            sender_ip: [192, 0, 2, 20].into(),
            target_mac: DIR_MAC,
            target_ip: [192, 0, 2, 2].into(),
        };
        let mut f = vec![0u8; 42];
        EthernetRepr {
            dst: DIR_MAC,
            src: RS_MAC,
            ethertype: ethertype::ARP,
        }
        .emit(&mut f);
        arp.emit(&mut f[14..]);
        assert_eq!(
            route_key(&Frame::wire(f)),
            Some(Key::Claim("192.0.2.20".parse().unwrap()))
        );

        // An ICMP error routes by the port of the probe it quotes.
        let quoted = syn(41001);
        let err = Icmpv4Repr::TimeExceeded {
            code: 0,
            invoking: &quoted[14..],
        };
        let mut body = vec![0u8; err.buffer_len()];
        err.emit(&mut body);
        let f = ipv4_frame(protocol::ICMP, [192, 0, 2, 11], [192, 0, 2, 2], &body);
        assert_eq!(route_key(&Frame::wire(f)), Some(Key::Token(41001 - 32768)));

        // Requests and anything else route nowhere.
        let req = frame::arp_request(DIR_MAC, [192, 0, 2, 11].into(), [192, 0, 2, 2].into());
        assert_eq!(route_key(&Frame::wire(req)), None);
        assert_eq!(route_key(&Frame::wire(vec![0u8; 10])), None);
    }

    #[test]
    fn a_token_s_port_and_identifier_route_to_it_and_nothing_else_does() {
        for t in [0u16, 1, 17_000, (TOKENS - 1) as u16] {
            assert_eq!(port_key(token_port(t)), Some(Key::Token(t)));
            assert_eq!(ident_key(t), Some(Key::Token(t)));
        }
        // Below and above the range: not a port of ours.
        assert_eq!(port_key(32767), None);
        assert_eq!(port_key(80), None);
        assert_eq!(port_key(token_port(0) + TOKENS as u16), None);
        assert_eq!(ident_key(TOKENS as u16), None);
    }

    #[test]
    fn a_drained_socket_counts_as_drained_for_paced_read_only() {
        let d = Drained::new();
        assert!(!d.within(Duration::from_secs(3600)), "never drained");
        d.mark();
        assert!(d.within(PACED_READ));
        std::thread::sleep(PACED_READ + Duration::from_millis(5));
        assert!(!d.within(PACED_READ));
        assert!(d.within(Duration::from_secs(3600)));
    }

    #[test]
    fn every_token_has_its_own_port() {
        let mut seen = vec![false; 65536];
        for t in 0..TOKENS as u16 {
            let p = usize::from(token_port(t));
            assert!((32768..61000).contains(&p), "{p}");
            assert!(!seen[p], "port {p} given twice");
            seen[p] = true;
        }
    }
}
