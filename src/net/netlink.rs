//! The one netlink core: framing (the message header, a family header, attributes, 4-byte
//! alignment), sequence numbers, acknowledgements and errors, multipart dumps, and a
//! receive that ends at a deadline. The rtnetlink queries ([`super::rtnl`]) and the
//! nf_tables batch ([`super::nftables`]) talk to the kernel through it.
//!
//! Building and reading messages is pure code ([`MessageBuilder`], [`messages`],
//! [`attrs`], and the [`Exchange`] state machines [`Answers`] and [`Acks`]), tested on
//! constructed bytes; [`Socket`] only moves datagrams and waits.
//!
//! Errors are `io::Error`s. An error the kernel answers (NLMSG_ERROR with an errno) is that
//! plain OS error, so `raw_os_error()` still works and the caller names what it asked; an
//! error of the core itself (socket, send, receive, a malformed answer, the deadline) reads
//! `netlink REQUEST: what happened`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// The length of `struct nlmsghdr`.
pub const HEADER_LEN: usize = 16;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x01;
pub const NLM_F_MULTI: u16 = 0x02;
pub const NLM_F_ACK: u16 = 0x04;
/// NLM_F_ROOT | NLM_F_MATCH.
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLA_F_NESTED: u16 = 0x8000;
/// An attribute's type without the nested / byte-order flags.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The largest datagram read at once; the kernel's dump datagrams stay well below it.
const RECV_BUF: usize = 64 * 1024;

/// `len` rounded up to netlink's 4-byte alignment.
pub const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// A native-endian u32 from exactly four bytes.
pub fn ne_u32(b: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(b).ok().map(u32::from_ne_bytes)
}

pub fn ne_u16(b: &[u8]) -> Option<u16> {
    <[u8; 2]>::try_from(b).ok().map(u16::from_ne_bytes)
}

fn malformed(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed netlink answer: {what}"),
    )
}

/// `e` with the request it happened on.
fn context(request: &str, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("netlink {request}: {what}: {e}"))
}

/// One message under construction: the header, then the family header (`struct rtmsg`,
/// `nfgenmsg`, ...) as raw bytes, then attributes, each padded to four bytes.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    buf: Vec<u8>,
}

impl MessageBuilder {
    /// A message of type `kind` with `flags` (NLM_F_REQUEST is not implied) and `seq`.
    /// The port id stays 0: the kernel fills in the sender's.
    pub fn new(kind: u16, flags: u16, seq: u32) -> MessageBuilder {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        MessageBuilder { buf }
    }

    /// Appends fixed bytes (the family header), padded to four bytes.
    pub fn header(&mut self, bytes: &[u8]) -> &mut MessageBuilder {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    /// Appends one attribute.
    pub fn attr(&mut self, kind: u16, data: &[u8]) -> &mut MessageBuilder {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, kind: u16, s: &str) -> &mut MessageBuilder {
        let mut d = Vec::with_capacity(s.len() + 1);
        d.extend_from_slice(s.as_bytes());
        d.push(0);
        self.attr(kind, &d)
    }

    /// A big-endian u32 attribute (nf_tables' byte order).
    pub fn attr_be32(&mut self, kind: u16, v: u32) -> &mut MessageBuilder {
        self.attr(kind, &v.to_be_bytes())
    }

    /// A native-endian u32 attribute (rtnetlink's byte order).
    pub fn attr_u32(&mut self, kind: u16, v: u32) -> &mut MessageBuilder {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// A nested attribute (NLA_F_NESTED) holding what `inner` appends.
    pub fn nest(
        &mut self,
        kind: u16,
        inner: impl FnOnce(&mut MessageBuilder),
    ) -> &mut MessageBuilder {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        inner(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn pad(&mut self) {
        self.buf.resize(align(self.buf.len()), 0);
    }

    /// The message's bytes, its length filled in.
    pub fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// One received message: the header's fields and the bytes after the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub port: u32,
    pub payload: &'a [u8],
}

/// What a message says about its request, beyond data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// NLMSG_DONE: the dump is complete.
    Done,
    /// NLMSG_ERROR with error 0: the request is acknowledged.
    Ack,
    /// NLMSG_ERROR (or a NLMSG_DONE ending a failed dump) with this errno.
    Error(i32),
}

impl Message<'_> {
    /// `None` for a data message; else the end, acknowledgement or error it carries.
    pub fn control(&self) -> io::Result<Option<Control>> {
        let code = || {
            self.payload
                .get(0..4)
                .and_then(ne_u32)
                .map(|c| c as i32)
                .ok_or_else(|| {
                    malformed(format!(
                        "message type {} with {} bytes, no error code",
                        self.kind,
                        self.payload.len()
                    ))
                })
        };
        match self.kind {
            NLMSG_ERROR => Ok(Some(match code()? {
                0 => Control::Ack,
                c => Control::Error(c.checked_neg().unwrap_or(i32::MAX)),
            })),
            // A dump that failed part-way ends with DONE carrying the negative errno.
            NLMSG_DONE => Ok(Some(match self.payload.get(0..4).and_then(ne_u32) {
                Some(c) if (c as i32) < 0 => {
                    Control::Error((c as i32).checked_neg().unwrap_or(i32::MAX))
                }
                _ => Control::Done,
            })),
            _ => Ok(None),
        }
    }
}

/// The messages of one datagram, in order.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { rest: buf }
}

/// Iterator of [`messages`]: an error (then nothing) at the first header that is cut off
/// or claims more bytes than the datagram holds, so a truncated answer is never half-read.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = io::Result<Message<'a>>;

    fn next(&mut self) -> Option<io::Result<Message<'a>>> {
        let buf = self.rest;
        if buf.is_empty() {
            return None;
        }
        let fields = (
            buf.get(0..4).and_then(ne_u32),
            buf.get(4..6).and_then(ne_u16),
            buf.get(6..8).and_then(ne_u16),
            buf.get(8..12).and_then(ne_u32),
            buf.get(12..16).and_then(ne_u32),
        );
        let (Some(len), Some(kind), Some(flags), Some(seq), Some(port)) = fields else {
            self.rest = &[];
            return Some(Err(malformed(format!(
                "{} bytes left, less than a message header",
                buf.len()
            ))));
        };
        let len = len as usize;
        if len < HEADER_LEN || len > buf.len() {
            self.rest = &[];
            return Some(Err(malformed(format!(
                "message length {len} with {} bytes left",
                buf.len()
            ))));
        }
        self.rest = &buf[align(len).min(buf.len())..];
        Some(Ok(Message {
            kind,
            flags,
            seq,
            port,
            payload: &buf[HEADER_LEN..len],
        }))
    }
}

/// The `(type, data)` attributes in `buf`, the type without its flags; the walk stops at
/// the first malformed attribute (attributes are read leniently: an unknown or cut-off one
/// is never fatal).
pub fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(buf.get(0..2).and_then(ne_u16)?);
        let kind = buf.get(2..4).and_then(ne_u16)? & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return None;
        }
        let data = &buf[4..len];
        buf = &buf[align(len).min(buf.len())..];
        Some((kind, data))
    })
}

/// What a receive loop waits for: fed every message of every datagram, in order, until it
/// says it is complete.
pub trait Exchange {
    /// Takes one message; `Ok(true)` when nothing more is awaited.
    fn take(&mut self, msg: &Message<'_>) -> io::Result<bool>;
}

/// One data message of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub kind: u16,
    pub payload: Vec<u8>,
}

/// The answers to one request, sequence number `seq`. Complete at NLMSG_DONE (a dump), at
/// the acknowledgement (a request sent with NLM_F_ACK), or after a single answer without
/// NLM_F_MULTI (a plain get). An error answer is the kernel's errno. Messages of other
/// sequence numbers (late answers to an earlier request) are skipped.
#[derive(Debug, Clone)]
pub struct Answers {
    seq: u32,
    ack: bool,
    answers: Vec<Answer>,
}

impl Answers {
    /// Waits for the answers to the request `seq` sent with `flags`.
    pub fn new(seq: u32, flags: u16) -> Answers {
        Answers {
            seq,
            ack: flags & NLM_F_ACK != 0,
            answers: Vec::new(),
        }
    }

    pub fn into_answers(self) -> Vec<Answer> {
        self.answers
    }
}

impl Exchange for Answers {
    fn take(&mut self, msg: &Message<'_>) -> io::Result<bool> {
        if msg.seq != self.seq {
            return Ok(false);
        }
        match msg.control()? {
            Some(Control::Done | Control::Ack) => Ok(true),
            Some(Control::Error(errno)) => Err(io::Error::from_raw_os_error(errno)),
            None => {
                self.answers.push(Answer {
                    kind: msg.kind,
                    payload: msg.payload.to_vec(),
                });
                Ok(!self.ack && msg.flags & NLM_F_MULTI == 0)
            }
        }
    }
}

/// The acknowledgements of a batch's messages `first .. first + count`: complete once each
/// is acknowledged; the first error answer is the kernel's errno.
#[derive(Debug, Clone)]
pub struct Acks {
    first: u32,
    pending: Vec<bool>,
}

impl Acks {
    pub fn new(first: u32, count: u32) -> Acks {
        Acks {
            first,
            pending: vec![true; count as usize],
        }
    }

    /// Sequence numbers still waiting for their acknowledgement.
    pub fn missing(&self) -> usize {
        self.pending.iter().filter(|p| **p).count()
    }
}

impl Exchange for Acks {
    fn take(&mut self, msg: &Message<'_>) -> io::Result<bool> {
        let Some(i) = msg
            .seq
            .checked_sub(self.first)
            .map(|i| i as usize)
            .filter(|i| *i < self.pending.len())
        else {
            return Ok(false);
        };
        match msg.control()? {
            Some(Control::Ack) => self.pending[i] = false,
            Some(Control::Error(errno)) => return Err(io::Error::from_raw_os_error(errno)),
            Some(Control::Done) | None => {}
        }
        Ok(self.missing() == 0)
    }
}

/// A netlink socket bound to a kernel-chosen port, with its own sequence numbers.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn kernel_address() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain data; zeroed is valid (port id 0: the kernel).
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa
}

const SOCKADDR_NL_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_nl>() as _;

impl Socket {
    /// Opens a socket of netlink `protocol` (NETLINK_ROUTE, NETLINK_NETFILTER, ...).
    pub fn open(protocol: libc::c_int) -> io::Result<Socket> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if raw < 0 {
            return Err(context(
                &format!("protocol {protocol}"),
                "socket",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: raw is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sa = kernel_address();
        // SAFETY: a valid sockaddr_nl of the given size; port 0 lets the kernel choose.
        if unsafe {
            libc::bind(
                raw,
                (&sa as *const libc::sockaddr_nl).cast(),
                SOCKADDR_NL_LEN,
            )
        } < 0
        {
            return Err(context(
                &format!("protocol {protocol}"),
                "bind",
                io::Error::last_os_error(),
            ));
        }
        Ok(Socket { fd, seq: 0 })
    }

    /// Reserves `count` consecutive sequence numbers and returns the first.
    pub fn next_seqs(&mut self, count: u32) -> u32 {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(count);
        first
    }

    /// Sends `bytes` (one or more messages) to the kernel.
    pub fn send(&self, request: &str, bytes: &[u8]) -> io::Result<()> {
        let sa = kernel_address();
        loop {
            // SAFETY: bytes is a valid buffer; sa addresses the kernel.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    0,
                    (&sa as *const libc::sockaddr_nl).cast(),
                    SOCKADDR_NL_LEN,
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(context(request, "send", e));
            }
        }
    }

    /// Receives one datagram from the kernel into `buf`, waiting at most until `deadline`
    /// (a passed deadline is a timeout at once, even with data queued). Datagrams from
    /// other ports than the kernel's are dropped; one larger than `buf` is an error.
    pub fn recv(&self, request: &str, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("netlink {request}: no answer from the kernel before the deadline"),
                ));
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // Rounded up, so a wait never ends just short of the deadline and spins.
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(context(request, "poll", e));
            }
            if rc == 0 {
                continue;
            }
            let mut from = kernel_address();
            let mut from_len = SOCKADDR_NL_LEN;
            // SAFETY: buf is valid for buf.len() bytes of writes; from for from_len bytes.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_nl).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    continue;
                }
                return Err(context(request, "receive", e));
            }
            if from.nl_pid != 0 {
                continue;
            }
            let n = n as usize;
            if n > buf.len() {
                return Err(context(
                    request,
                    "receive",
                    malformed(format!("a {n}-byte datagram, more than {}", buf.len())),
                ));
            }
            return Ok(n);
        }
    }

    /// Receives until `exchange` is complete or `deadline` passes.
    pub fn exchange(
        &self,
        request: &str,
        exchange: &mut impl Exchange,
        deadline: Instant,
    ) -> io::Result<()> {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let n = self.recv(request, &mut buf, deadline)?;
            for msg in messages(&buf[..n]) {
                let msg = msg.map_err(|e| context(request, "receive", e))?;
                if exchange.take(&msg)? {
                    return Ok(());
                }
            }
        }
    }

    /// Sends one request (NLM_F_REQUEST added) of type `kind`, its family header and
    /// attributes appended by `body`, and returns its data answers, all by `deadline`.
    /// `request` names it in errors.
    pub fn request(
        &mut self,
        request: &str,
        kind: u16,
        flags: u16,
        deadline: Instant,
        body: impl FnOnce(&mut MessageBuilder),
    ) -> io::Result<Vec<Answer>> {
        let flags = flags | NLM_F_REQUEST;
        let seq = self.next_seqs(1);
        let mut msg = MessageBuilder::new(kind, flags, seq);
        body(&mut msg);
        if Instant::now() >= deadline {
            // Nothing sent: an answer could not be read anyway.
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("netlink {request}: the deadline passed before the request"),
            ));
        }
        self.send(request, &msg.finish())?;
        let mut answers = Answers::new(seq, flags);
        self.exchange(request, &mut answers, deadline)?;
        Ok(answers.into_answers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A received message as the kernel frames it.
    fn msg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = ((HEADER_LEN + payload.len()) as u32).to_ne_bytes().to_vec();
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&4242u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(align(m.len()), 0);
        m
    }

    /// NLMSG_ERROR: the error code, then the request's header echoed.
    fn error(seq: u32, code: i32) -> Vec<u8> {
        let mut p = code.to_ne_bytes().to_vec();
        p.extend_from_slice(&msg(30, NLM_F_REQUEST, seq, &[])[..HEADER_LEN]);
        msg(NLMSG_ERROR, 0, seq, &p)
    }

    /// Feeds every datagram to `ex`: `Ok(true)` once it is complete.
    fn feed(ex: &mut impl Exchange, datagrams: &[Vec<u8>]) -> io::Result<bool> {
        for d in datagrams {
            for m in messages(d) {
                if ex.take(&m?)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    #[test]
    fn builder_frames_header_family_header_and_padded_attributes() {
        let mut b = MessageBuilder::new(26, NLM_F_REQUEST | NLM_F_ACK, 7);
        b.header(&[2, 32, 0])
            .attr(1, &[192, 0, 2, 11])
            .attr_str(3, "eth1")
            .attr_u32(4, 7)
            .attr_be32(5, 1)
            .nest(6, |n| {
                n.attr(1, &[9]);
            });
        let m = b.finish();
        let mut want = 68u32.to_ne_bytes().to_vec();
        want.extend_from_slice(&26u16.to_ne_bytes());
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[2, 32, 0, 0]);
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&1u16.to_ne_bytes());
        want.extend_from_slice(&[192, 0, 2, 11]);
        want.extend_from_slice(&9u16.to_ne_bytes());
        want.extend_from_slice(&3u16.to_ne_bytes());
        want.extend_from_slice(b"eth1\0\0\0\0");
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&4u16.to_ne_bytes());
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&[0, 0, 0, 1]);
        want.extend_from_slice(&12u16.to_ne_bytes());
        want.extend_from_slice(&(6 | NLA_F_NESTED).to_ne_bytes());
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&1u16.to_ne_bytes());
        want.extend_from_slice(&[9, 0, 0, 0]);
        assert_eq!(m, want);
        let parsed: Vec<Message> = messages(&m).collect::<io::Result<_>>().unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!((parsed[0].kind, parsed[0].flags, parsed[0].seq), (26, 5, 7));
        let got: Vec<(u16, Vec<u8>)> = attrs(&parsed[0].payload[4..])
            .map(|(k, d)| (k, d.to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, vec![192, 0, 2, 11]),
                (3, b"eth1\0".to_vec()),
                (4, 7u32.to_ne_bytes().to_vec()),
                (5, vec![0, 0, 0, 1]),
                (6, want[60..68].to_vec()),
            ]
        );
    }

    #[test]
    fn a_malformed_attribute_ends_the_walk() {
        assert_eq!(attrs(&[0xff, 0x00, 0x01, 0x00, 1, 2]).count(), 0);
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0);
        assert_eq!(attrs(&[8, 0]).count(), 0);
    }

    #[test]
    fn a_dump_over_two_datagrams_ends_at_done() {
        let one = [
            msg(28, NLM_F_MULTI, 9, b"first"),
            msg(28, NLM_F_MULTI, 9, b"second"),
        ]
        .concat();
        // A late answer to an earlier request in between is skipped.
        let two = [
            msg(28, 0, 8, b"stale"),
            msg(28, NLM_F_MULTI, 9, b"third"),
            msg(NLMSG_DONE, NLM_F_MULTI, 9, &0i32.to_ne_bytes()),
            msg(28, NLM_F_MULTI, 9, b"after done"),
        ]
        .concat();
        let mut a = Answers::new(9, NLM_F_REQUEST | NLM_F_DUMP);
        assert!(
            !feed(&mut a, std::slice::from_ref(&one)).unwrap(),
            "not done yet"
        );
        assert!(feed(&mut a, &[two]).unwrap());
        let got: Vec<(u16, Vec<u8>)> = a
            .into_answers()
            .into_iter()
            .map(|a| (a.kind, a.payload))
            .collect();
        assert_eq!(
            got,
            vec![
                (28, b"first".to_vec()),
                (28, b"second".to_vec()),
                (28, b"third".to_vec())
            ]
        );
        // Without the DONE the same datagram never completes the dump.
        let mut a = Answers::new(9, NLM_F_REQUEST | NLM_F_DUMP);
        assert!(!feed(&mut a, &[one]).unwrap());
    }

    #[test]
    fn a_single_answer_completes_a_plain_get_and_an_ack_one_sent_with_ack() {
        let mut a = Answers::new(3, NLM_F_REQUEST);
        assert!(feed(&mut a, &[msg(24, 0, 3, b"route")]).unwrap());
        assert_eq!(a.into_answers().len(), 1);
        let mut a = Answers::new(3, NLM_F_REQUEST | NLM_F_ACK);
        assert!(!feed(&mut a, &[msg(24, 0, 3, b"route")]).unwrap());
        assert!(feed(&mut a, &[error(3, 0)]).unwrap());
        assert_eq!(a.into_answers().len(), 1);
    }

    #[test]
    fn an_error_answer_is_the_kernels_errno() {
        let mut a = Answers::new(5, NLM_F_REQUEST);
        let e = feed(&mut a, &[error(5, -libc::ENETUNREACH)]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENETUNREACH));
        // The same error for another request is not ours.
        let mut a = Answers::new(5, NLM_F_REQUEST);
        assert!(!feed(&mut a, &[error(4, -libc::ENETUNREACH)]).unwrap());
        // A dump that fails part-way: DONE with a negative code.
        let mut a = Answers::new(5, NLM_F_REQUEST | NLM_F_DUMP);
        let done = msg(NLMSG_DONE, NLM_F_MULTI, 5, &(-libc::EINTR).to_ne_bytes());
        let e = feed(&mut a, &[done]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINTR));
    }

    #[test]
    fn a_batch_completes_when_every_message_is_acked_and_fails_on_the_first_error() {
        let mut acks = Acks::new(11, 3);
        assert!(!feed(&mut acks, &[[error(11, 0), error(12, 0)].concat()]).unwrap());
        assert_eq!(acks.missing(), 1);
        // Acks outside the batch count for nothing.
        assert!(!feed(&mut acks, &[error(10, 0), error(14, 0)]).unwrap());
        assert!(feed(&mut acks, &[error(13, 0)]).unwrap());
        let mut acks = Acks::new(11, 3);
        let e = feed(
            &mut acks,
            &[[error(11, 0), error(12, -libc::EPERM)].concat()],
        )
        .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let whole = [msg(28, NLM_F_MULTI, 1, b"a neighbour"), error(1, 0)].concat();
        for cut in 1..whole.len() {
            let part = &whole[..cut];
            let parsed: Vec<io::Result<Message>> = messages(part).collect();
            // The first message whole, with or without its padding.
            let first_len = HEADER_LEN + b"a neighbour".len();
            if cut == first_len || cut == align(first_len) {
                assert_eq!(parsed.len(), 1, "cut at {cut}");
                assert!(parsed[0].is_ok());
            } else {
                let last = parsed.last().expect("something");
                let e = last.as_ref().expect_err(&format!("cut at {cut}"));
                assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                assert!(e.to_string().starts_with("malformed netlink answer"), "{e}");
                assert_eq!(parsed.iter().filter(|p| p.is_err()).count(), 1);
            }
        }
        // An error message too short for its code.
        let short = msg(NLMSG_ERROR, 0, 1, &[0, 0]);
        let mut a = Answers::new(1, NLM_F_REQUEST);
        let e = feed(&mut a, &[short]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // A header claiming a length below its own.
        let mut bad = msg(28, 0, 1, &[]);
        bad[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(messages(&bad).next().unwrap().is_err());
    }

    #[test]
    fn sequence_numbers_are_consecutive_per_socket() {
        let Ok(mut s) = Socket::open(libc::NETLINK_ROUTE) else {
            println!("skipped: no netlink sockets here");
            return;
        };
        assert_eq!(s.next_seqs(1), 1);
        assert_eq!(s.next_seqs(5), 2);
        assert_eq!(s.next_seqs(1), 7);
    }

    #[test]
    fn a_receive_without_answer_ends_at_the_deadline() {
        // Route sockets need no privilege. Nothing is sent, so nothing comes back.
        let Ok(mut s) = Socket::open(libc::NETLINK_ROUTE) else {
            println!("skipped: no netlink sockets here");
            return;
        };
        let mut buf = [0u8; 64];
        let t = Instant::now();
        let past = t.checked_sub(Duration::from_secs(1)).unwrap_or(t);
        let e = s.recv("test", &mut buf, past).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());

        let deadline = Instant::now() + Duration::from_millis(100);
        let e = s.recv("test", &mut buf, deadline).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let now = Instant::now();
        assert!(now >= deadline, "returned before the deadline");
        assert!(now < deadline + Duration::from_secs(2), "returned late");

        // A request the kernel does not answer: without NLM_F_REQUEST it is ignored.
        let seq = s.next_seqs(1);
        let mut m = MessageBuilder::new(26, 0, seq);
        m.header(&[libc::AF_INET as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        s.send("test", &m.finish()).unwrap();
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut answers = Answers::new(seq, 0);
        let e = s
            .exchange("RTM_GETROUTE", &mut answers, deadline)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("RTM_GETROUTE"), "{e}");
        assert!(Instant::now() < deadline + Duration::from_secs(2));
    }

    #[test]
    fn a_request_is_answered_by_the_kernel() {
        let Ok(mut s) = Socket::open(libc::NETLINK_ROUTE) else {
            println!("skipped: no netlink sockets here");
            return;
        };
        // RTM_GETLINK for index 1 (lo, in every namespace): one RTM_NEWLINK.
        let mut body = vec![0u8; 16];
        body[4..8].copy_from_slice(&1i32.to_ne_bytes());
        let deadline = Instant::now() + Duration::from_secs(5);
        let get = |m: &mut MessageBuilder| {
            m.header(&body);
        };
        let answers = s.request("RTM_GETLINK", 18, 0, deadline, get).unwrap();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].kind, 16);
        // With NLM_F_ACK the answer is followed by the acknowledgement.
        let answers = s
            .request("RTM_GETLINK", 18, NLM_F_ACK, deadline, get)
            .unwrap();
        assert_eq!(answers.len(), 1);
        // An interface that does not exist: the kernel's ENODEV.
        let mut none = body.clone();
        none[4..8].copy_from_slice(&i32::MAX.to_ne_bytes());
        let e = s
            .request("RTM_GETLINK", 18, 0, deadline, |m| {
                m.header(&none);
            })
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
        // A passed deadline: nothing is sent or read.
        let e = s
            .request("RTM_GETLINK", 18, 0, Instant::now(), get)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
