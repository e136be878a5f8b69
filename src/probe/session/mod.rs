//! The application check through the VIP on one chosen real server: a TCP session (and
//! HTTP or HTTPS over it) to VIP:port, run by a user-space TCP stack (smoltcp) whose
//! packets leave on a packet socket addressed to the real server's MAC (DR) or
//! encapsulated to its address (TUN). The director's kernel never owns the connection:
//! on a director holding the VIP the answers are martians to it; on one that does not, it
//! would reset the real server's side, so an nftables owner table, added over netlink
//! ([`crate::net::nftables`]), drops exactly those RSTs and vanishes with its socket ([`guard`]). A forked
//! helper resets the real server's side should vipcheck be killed mid-session ([`reaper`]).
//!
//! Entry point: [`run`]. The caller (the prober) resolves the interface, the director's
//! address and MAC and the next hop's MAC into a [`NetPath`]; the [`Target`] says which
//! VIP and port, from which address.

pub mod command;
pub mod guard;
pub mod http;
pub mod link;
pub mod options;
pub mod reaper;
#[cfg(test)]
mod tests;
pub mod tls;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use crate::config::ForwardingMethod;
use crate::net::{FrameIo, NetPath, PacketSocket};

pub use http::{HttpExpect, Mismatch, ResponseError, StatusRange};
pub use options::{AppCheckKind, AppCheckOptions};
pub use tls::TlsOptions;

use link::{Framing, Link};
use std::os::fd::AsRawFd;

/// What one session is to, over a [`NetPath`]: VIP:port, from which of the director's
/// addresses, within which MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub vip: IpAddr,
    /// The director's address: the session's client address, of the VIP's family (the
    /// inner source for TUN; the path's source is the outer one).
    pub src: IpAddr,
    pub port: u16,
    /// The interface's MTU.
    pub mtu: usize,
}

/// Refuses what no frame can be built for: a NAT path, a source of another family
/// than the VIP, a tunnel source of another family than the RIP.
fn validate(path: &NetPath, target: &Target) -> Result<(), SessionError> {
    if path.method == ForwardingMethod::Nat {
        return Err(SessionError::Unsupported {
            detail: "a NAT real server does not hold the VIP; check it through its own address"
                .into(),
        });
    }
    if target.src.is_ipv6() != target.vip.is_ipv6() {
        return Err(SessionError::Unsupported {
            detail: format!(
                "the source address {} and the VIP {} are of different families",
                target.src, target.vip
            ),
        });
    }
    if path.is_tunnel() && path.src.is_ipv6() != path.rip.is_ipv6() {
        return Err(SessionError::Unsupported {
            detail: format!(
                "tunnelling to {} needs a tunnel source of its family (got {})",
                path.rip, path.src
            ),
        });
    }
    Ok(())
}

/// What to check once the session is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppCheck {
    /// Handshake completes: the service listens on the VIP.
    TcpSession,
    Http(HttpExpect),
    Https(HttpExpect, TlsOptions),
}

/// Which part of the session a timeout hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Handshake,
    Response,
}

/// Why the check says up or down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Up: the session completed and the answer matched.
    Answered,
    /// The real server answered the SYN with a RST: nothing listens on VIP:port there.
    Refused,
    /// No answer before the deadline.
    Timeout(Phase),
    /// The real server reset the session before a complete response.
    Reset,
    BadResponse(ResponseError),
    Mismatch(Mismatch),
    Tls(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Answered => write!(f, "answered"),
            Reason::Refused => write!(f, "connection refused on the VIP (RST to SYN)"),
            Reason::Timeout(Phase::Handshake) => write!(f, "no answer to the SYN"),
            Reason::Timeout(Phase::Response) => write!(f, "no complete response in time"),
            Reason::Reset => write!(f, "the real server reset the session"),
            Reason::BadResponse(e) => write!(f, "{e}"),
            Reason::Mismatch(m) => write!(f, "{m}"),
            Reason::Tls(e) => write!(f, "TLS failed: {e}"),
        }
    }
}

/// The verdict of one application check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub reason: Reason,
    /// From the start of [`run`] to the verdict.
    pub elapsed: Duration,
    /// From the SYN to the completed handshake.
    pub connect_time: Option<Duration>,
    pub status: Option<u16>,
    pub body_len: Option<usize>,
    /// MD5 of the body (lower-case hex), to put into `--expect-digest` or `digest`.
    pub digest: Option<String>,
}

impl Outcome {
    pub fn is_up(&self) -> bool {
        self.reason == Reason::Answered
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", if self.is_up() { "up" } else { "down" })?;
        write!(f, ": {}", self.reason)?;
        if let Some(s) = self.status {
            write!(f, ", status {s}")?;
        }
        if let Some(n) = self.body_len {
            write!(f, ", {n} body bytes")?;
        }
        if let Some(d) = &self.digest {
            write!(f, ", md5 {d}")?;
        }
        write!(f, " in {} ms", self.elapsed.as_millis())
    }
}

/// Why a session could not even be tried (as opposed to a down verdict).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the application check cannot run here: {detail}")]
    Unsupported { detail: String },
    #[error("cannot open a packet socket on {iface}: {source} (hint: run as root or grant CAP_NET_RAW and CAP_NET_ADMIN)")]
    PacketSocket { iface: String, source: io::Error },
    #[error("cannot reserve a TCP port on {addr}: {source} (hint: the source address must be one of this host's)")]
    Port { addr: IpAddr, source: io::Error },
    #[error("cannot install the nftables table that keeps this host from resetting the session: {detail} (hint: run as root or with CAP_NET_ADMIN; needs nf_tables and Linux 5.12 or later)")]
    Nft { detail: String },
    #[error("TLS setup failed: {detail}")]
    Tls { detail: String },
    #[error("the TCP stack refused the session to {vip}: {detail}")]
    Stack { vip: IpAddr, detail: String },
}

/// Runs one application check to `target` over `path` and returns its verdict. Every
/// wait ends by `deadline`; the session is closed with a RST before returning, so nothing
/// stays half-open on the real server.
pub fn run(
    path: &NetPath,
    target: &Target,
    check: &AppCheck,
    deadline: Instant,
) -> Result<Outcome, SessionError> {
    run_guarded(path, target, check, deadline, true)
}

/// As [`run`] without the RST guard, so a director without the VIP resets the session.
/// Only for the test that shows what the guard is for; vipcheck itself never calls it.
#[doc(hidden)]
pub fn run_unguarded(
    path: &NetPath,
    target: &Target,
    check: &AppCheck,
    deadline: Instant,
) -> Result<Outcome, SessionError> {
    run_guarded(path, target, check, deadline, false)
}

fn run_guarded(
    path: &NetPath,
    target: &Target,
    check: &AppCheck,
    deadline: Instant,
    guarded: bool,
) -> Result<Outcome, SessionError> {
    let start = Instant::now();
    validate(path, target)?;
    let tls = match check {
        AppCheck::Https(_, options) => Some(tls::connect(options, target.vip)?),
        _ => None,
    };
    // A kernel socket bound to the port keeps the kernel from handing it to anyone else
    // while the session uses it.
    let port_hold = reserve_port(target.src).map_err(|source| SessionError::Port {
        addr: target.src,
        source,
    })?;
    let local_port = port_hold.1;
    let packet_error = |source| SessionError::PacketSocket {
        iface: path.iface.clone(),
        source,
    };
    // Only the answers to our address reach the session (the outer source for TUN
    // takes the ICMP errors a tunnel may draw, which the session ignores).
    let socket = PacketSocket::open(path.ifindex, path.our_mac, &[target.src, path.src])
        .map_err(packet_error)?;
    let guard = match guarded {
        true => Some(guard::RstGuard::install(
            target.src,
            local_port,
            target.vip,
            target.port,
            deadline,
        )?),
        false => None,
    };
    let netlink_fd = guard.as_ref().map(guard::RstGuard::netlink_fd);
    let mut reaper = reaper::Reaper::spawn(socket.as_raw_fd(), netlink_fd).map_err(packet_error)?;
    let framing = Framing {
        path: path.clone(),
        src: target.src,
        vip: target.vip,
        port: target.port,
        local_port,
    };
    let link = Link::new(socket, framing, target.mtu);
    let outcome = drive(
        &path.iface,
        link,
        Some(&mut reaper),
        check,
        tls,
        deadline,
        start,
    );
    // The guard, then the helper's pipe: the helper then holds the last references to the
    // packet and netlink sockets and pays for closing them after we have moved on.
    drop(guard);
    drop(reaper);
    drop(port_hold);
    outcome
}

/// A bound, never-listening kernel TCP socket: the port is ours for the session.
struct PortHold(#[allow(dead_code)] std::os::fd::OwnedFd, u16);

fn reserve_port(addr: IpAddr) -> io::Result<PortHold> {
    use std::os::fd::FromRawFd;
    let family = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: plain socket(2), checked below.
    let raw = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor we own.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_storage is plain data; zeroed is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        IpAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    use std::os::fd::AsRawFd;
    // SAFETY: ss holds a sockaddr of `len` bytes.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&ss as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    let mut out_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: ss is large enough for any address getsockname returns.
    if unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut out_len,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    // Both sockaddr_in and sockaddr_in6 keep the port (network order) right after the family.
    // SAFETY: ss was filled by getsockname for this family.
    let port = unsafe {
        match addr {
            IpAddr::V4(_) => u16::from_be(
                (*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()).sin_port,
            ),
            IpAddr::V6(_) => u16::from_be(
                (*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()).sin6_port,
            ),
        }
    };
    Ok(PortHold(fd, port))
}

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: b is a valid 8-byte buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 8 {
        u64::from_ne_bytes(b)
    } else {
        // The seed only picks the initial sequence number; time and pid do for that.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        t ^ (u64::from(std::process::id()) << 32)
    }
}

/// The Host header for a check: the one given, else the VIP (bracketed for IPv6) with the
/// port when it is not the scheme's default.
pub fn host_header(expect: &HttpExpect, vip: IpAddr, port: u16, tls: bool) -> String {
    if let Some(h) = &expect.host {
        return h.clone();
    }
    let addr = match vip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let default = if tls { 443 } else { 80 };
    if port == default {
        addr
    } else {
        format!("{addr}:{port}")
    }
}

/// The application's side of the session: what to send, what came back.
struct Exchange {
    tls: Option<rustls::ClientConnection>,
    /// Plaintext request not yet handed to TCP (or TLS).
    request: Vec<u8>,
    /// Bytes for TCP not yet accepted by its buffer (TLS records or plaintext).
    outgoing: Vec<u8>,
    response: Vec<u8>,
    eof: bool,
}

impl Exchange {
    /// Moves bytes between the TCP socket, TLS and the buffers. Errors are TLS errors.
    fn pump(&mut self, sock: &mut tcp::Socket<'_>) -> Result<(), String> {
        // In: TCP -> (TLS ->) response.
        while sock.can_recv() {
            let mut chunk = Vec::new();
            let taken = sock.recv(|b| {
                chunk.extend_from_slice(b);
                (b.len(), b.len())
            });
            if taken.is_err() || chunk.is_empty() {
                break;
            }
            match &mut self.tls {
                None => self.response.extend_from_slice(&chunk),
                Some(conn) => {
                    let mut rd = &chunk[..];
                    while !rd.is_empty() {
                        if conn.read_tls(&mut rd).map_err(|e| e.to_string())? == 0 {
                            break;
                        }
                        conn.process_new_packets().map_err(|e| e.to_string())?;
                    }
                    let mut buf = [0u8; 8192];
                    loop {
                        match conn.reader().read(&mut buf) {
                            Ok(0) => {
                                self.eof = true;
                                break;
                            }
                            Ok(n) => self.response.extend_from_slice(&buf[..n]),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                }
            }
        }
        if !sock.may_recv() && !sock.can_recv() {
            // The peer's FIN (or a reset) ends a close-delimited body.
            self.eof = true;
        }
        // Out: request -> (TLS ->) TCP.
        match &mut self.tls {
            None => {
                if !self.request.is_empty() {
                    self.outgoing.append(&mut self.request);
                }
            }
            Some(conn) => {
                if !conn.is_handshaking() && !self.request.is_empty() {
                    conn.writer()
                        .write_all(&self.request)
                        .map_err(|e| e.to_string())?;
                    self.request.clear();
                }
                while conn.wants_write() {
                    conn.write_tls(&mut self.outgoing)
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        if !self.outgoing.is_empty() && sock.can_send() {
            if let Ok(n) = sock.send_slice(&self.outgoing) {
                self.outgoing.drain(..n);
            }
        }
        Ok(())
    }
}

fn smol_now(origin: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(origin.elapsed().as_micros() as i64)
}

/// The session loop: connect, exchange, judge, reset. Generic over the frame I/O so it can
/// run against an in-memory peer in tests.
fn drive<F: FrameIo>(
    iface_name: &str,
    mut link: Link<F>,
    mut reaper: Option<&mut reaper::Reaper>,
    check: &AppCheck,
    tls: Option<rustls::ClientConnection>,
    deadline: Instant,
    start: Instant,
) -> Result<Outcome, SessionError> {
    let f = link.framing.clone();
    let mut config = Config::new(HardwareAddress::Ip);
    config.random_seed = random_seed();
    let mut iface = Interface::new(config, &mut link, smol_now(start));
    iface.update_ip_addrs(|addrs| {
        // Prefix 0: every destination is "on link"; framing decides where frames go.
        let _ = addrs.push(IpCidr::new(IpAddress::from(f.src), 0));
    });
    let mut sockets = SocketSet::new(vec![]);
    let mut sock = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        tcp::SocketBuffer::new(vec![0; 16 * 1024]),
    );
    // TTL 1: a real server without the VIP must not route our segment on to someone who has it.
    sock.set_hop_limit(Some(1));
    sock.set_nagle_enabled(false);
    sock.set_ack_delay(None);
    sock.connect(
        iface.context(),
        (IpAddress::from(f.vip), f.port),
        (IpAddress::from(f.src), f.local_port),
    )
    .map_err(|e| SessionError::Stack {
        vip: f.vip,
        detail: e.to_string(),
    })?;
    let handle = sockets.add(sock);

    let expect = match check {
        AppCheck::TcpSession => None,
        AppCheck::Http(e) => Some((e, false)),
        AppCheck::Https(e, _) => Some((e, true)),
    };
    let request = expect
        .map(|(e, tls)| http::request(&e.path, &host_header(e, f.vip, f.port, tls)))
        .unwrap_or_default();
    let mut exchange = Exchange {
        tls,
        request,
        outgoing: Vec::new(),
        response: Vec::new(),
        eof: false,
    };
    let mut connect_time = None;
    let mut response = None;
    let mut armed = None;
    let syn_at = Instant::now();

    let reason = loop {
        let now = Instant::now();
        if now >= deadline {
            break Reason::Timeout(if connect_time.is_some() {
                Phase::Response
            } else {
                Phase::Handshake
            });
        }
        iface.poll(smol_now(start), &mut link, &mut sockets);
        if let (Some(r), Some(end)) = (reaper.as_mut(), link.snd_end) {
            if armed != Some(end) {
                r.arm(&link::rst_frame(&f, end));
                armed = Some(end);
            }
        }
        let sock = sockets.get_mut::<tcp::Socket>(handle);
        if connect_time.is_none() {
            match sock.state() {
                tcp::State::Established => {
                    connect_time = Some(now.saturating_duration_since(syn_at));
                    if expect.is_none() {
                        break Reason::Answered;
                    }
                }
                tcp::State::Closed => break Reason::Refused,
                _ => {}
            }
        }
        if let Some((e, _)) = expect.filter(|_| connect_time.is_some()) {
            if let Err(err) = exchange.pump(sock) {
                break Reason::Tls(err);
            }
            // Closed without our doing is a RST (a FIN leaves the socket in CLOSE-WAIT): a
            // response cut short by it is a reset, not a close-delimited body.
            let reset = sock.state() == tcp::State::Closed;
            match http::parse_response(&exchange.response, exchange.eof && !reset) {
                Ok(Some(r)) => {
                    let verdict = http::judge(e, &r);
                    response = Some(r);
                    break match verdict {
                        Ok(()) => Reason::Answered,
                        Err(m) => Reason::Mismatch(m),
                    };
                }
                Ok(None) if reset || (exchange.eof && exchange.response.is_empty()) => {
                    break Reason::Reset
                }
                Ok(None) => {}
                Err(_) if reset => break Reason::Reset,
                Err(err) => break Reason::BadResponse(err),
            }
            // Whatever the pump queued goes out in this turn, not after the next wait.
            iface.poll(smol_now(start), &mut link, &mut sockets);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let delay = iface
            .poll_delay(smol_now(start), &sockets)
            .map(|d| Duration::from_micros(d.total_micros()))
            .unwrap_or(Duration::from_millis(100))
            .min(left);
        if !delay.is_zero() {
            link.wait(delay);
        }
    };

    // Close with a RST: the real server's socket goes at once, with no TIME-WAIT or
    // half-open state left there, and no FIN exchange for a vanished client to finish.
    let sock = sockets.get_mut::<tcp::Socket>(handle);
    if sock.state() != tcp::State::Closed {
        sock.abort();
        iface.poll(smol_now(start), &mut link, &mut sockets);
    }
    if let Some(r) = reaper.as_mut() {
        r.disarm();
    }
    if reason == Reason::Timeout(Phase::Handshake) && link.frames_sent == 0 {
        if let Some(e) = link.send_error.take() {
            return Err(SessionError::PacketSocket {
                iface: iface_name.to_string(),
                source: e,
            });
        }
    }
    Ok(Outcome {
        reason,
        elapsed: start.elapsed(),
        connect_time,
        status: response.as_ref().map(|r| r.status),
        body_len: response.as_ref().map(|r| r.body.len()),
        digest: response.as_ref().map(|r| http::md5_hex(&r.body)),
    })
}
