//! The one AF_PACKET socket every check sends and receives whole frames on (the probe,
//! the fleet behind `status`, the application check's session), behind the one
//! [`FrameIo`] trait so the logic above it can be tested with recorded frames.
//!
//! Frames are captured below the IP layer on purpose: on a director that holds the VIP
//! its own IP stack drops the replies (their source is one of its addresses) as martians.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::rx_ring::RxRing;
use crate::wire::MacAddr;

/// A received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    /// The kernel vouches for the transport checksum: it has verified it, or the frame
    /// was generated on this host (over a veth) and its checksum is not filled in yet.
    /// Either way the checksum bytes must not be checked.
    pub checksum_trusted: bool,
    /// When the kernel took it in (its receive timestamp), if known: a reply read some
    /// time after it came is judged by when it came ([`crate::probe::engine`]).
    pub at: Option<Instant>,
}

impl Frame {
    /// A frame whose checksums are to be verified (what a wire delivers).
    pub fn wire(bytes: Vec<u8>) -> Frame {
        Frame {
            bytes,
            checksum_trusted: false,
            at: None,
        }
    }
}

/// Sends and receives whole Ethernet frames on one interface: the packet socket in
/// production, a recorder or an in-memory peer in tests.
pub trait FrameIo {
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// Sends several frames in order (a packet socket: one `sendmmsg(2)`); stops at the
    /// first that cannot be sent.
    fn send_batch(&mut self, frames: &[Vec<u8>]) -> io::Result<()> {
        for f in frames {
            self.send(f)?;
        }
        Ok(())
    }
    /// The next frame received before `deadline`, or `None` once it has passed.
    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Frame>>;
    /// A frame already received, without waiting (`None` when there is none).
    fn recv_ready(&mut self) -> io::Result<Option<Frame>> {
        Ok(None)
    }
}

/// A packet socket bound to one interface that only wakes for frames addressed to
/// `our_mac` of type ARP, IPv4 or IPv6, and never for frames we sent.
pub struct PacketSocket {
    fd: OwnedFd,
    buf: Vec<u8>,
    /// [`RECV_BATCH`] buffers of [`RECV_BUF`] bytes for [`PacketSocket::recv_batch`],
    /// made on its first call (only a reading handle needs them; the pages a frame never
    /// reached are never touched).
    batch: Vec<u8>,
    /// The receive ring, on the handle [`PacketSocket::open_ringed`] gave: frames are
    /// read from it instead of by `recvmmsg`.
    ring: Option<RxRing>,
}

const ETH_P_ALL: u16 = 0x0003;
pub(super) const SOL_PACKET: libc::c_int = 263;
const PACKET_AUXDATA: libc::c_int = 8;
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
const TP_STATUS_CSUM_VALID: u32 = 1 << 7;
const PACKET_OUTGOING: u32 = 4;
/// SKF_AD_OFF + SKF_AD_PKTTYPE: where classic BPF reads the packet type.
const AD_PKTTYPE: u32 = 0xffff_f000 + 4;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The classic BPF filter: an incoming frame to `mac` that is ARP, or IPv4 to `v4`, or
/// IPv6 to `v6` (the director's own source addresses). Client traffic to the VIPs, which
/// also reaches a director's MAC, never wakes the prober.
fn filter(mac: MacAddr, v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = 0x20;
    const LD_H_ABS: u16 = 0x28;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const ACCEPT: usize = 20;
    const DROP: usize = 21;
    // A conditional jump at `at` to `t` if equal, else to `f` (offsets are relative).
    let jeq = |at: usize, k: u32, t: usize, f: usize| {
        insn(JEQ_K, (t - at - 1) as u8, (f - at - 1) as u8, k)
    };
    let m = mac.0;
    let low = u32::from_be_bytes([m[2], m[3], m[4], m[5]]);
    let high = u32::from(u16::from_be_bytes([m[0], m[1]]));
    // No address of a family: compare with the unspecified address, which no reply has.
    let v4 = u32::from(v4.unwrap_or(Ipv4Addr::UNSPECIFIED));
    let w = v6.unwrap_or(Ipv6Addr::UNSPECIFIED).octets();
    let word = |i: usize| u32::from_be_bytes([w[i], w[i + 1], w[i + 2], w[i + 3]]);
    vec![
        insn(LD_W_ABS, 0, 0, AD_PKTTYPE), // 0
        jeq(1, PACKET_OUTGOING, DROP, 2), // 1: our own frames
        insn(LD_W_ABS, 0, 0, 2),          // 2: destination MAC, low 4 bytes
        jeq(3, low, 4, DROP),             // 3
        insn(LD_H_ABS, 0, 0, 0),          // 4: destination MAC, high 2 bytes
        jeq(5, high, 6, DROP),            // 5
        insn(LD_H_ABS, 0, 0, 12),         // 6: EtherType
        jeq(7, 0x0806, ACCEPT, 8),        // 7: ARP
        jeq(8, 0x0800, 10, 9),            // 8: IPv4
        jeq(9, 0x86dd, 12, DROP),         // 9: IPv6
        insn(LD_W_ABS, 0, 0, 14 + 16),    // 10: IPv4 destination
        jeq(11, v4, ACCEPT, DROP),        // 11
        insn(LD_W_ABS, 0, 0, 14 + 24),    // 12: IPv6 destination, 4 words
        jeq(13, word(0), 14, DROP),       // 13
        insn(LD_W_ABS, 0, 0, 14 + 28),    // 14
        jeq(15, word(4), 16, DROP),       // 15
        insn(LD_W_ABS, 0, 0, 14 + 32),    // 16
        jeq(17, word(8), 18, DROP),       // 17
        insn(LD_W_ABS, 0, 0, 14 + 36),    // 18
        jeq(19, word(12), ACCEPT, DROP),  // 19
        insn(RET_K, 0, 0, 0x0004_0000),   // 20: accept (up to 256 KiB)
        insn(RET_K, 0, 0, 0),             // 21: drop
    ]
}

/// Puts the classic BPF program `prog` on socket `fd` in place of any it had.
fn attach_filter(fd: RawFd, mut prog: Vec<libc::sock_filter>) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // fprog points at prog, which outlives the call; the kernel copies it.
    set_option(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// Sets option `name` at `level` of socket `fd` to `value` (the kernel copies it).
pub(super) fn set_option<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: value points at a live T of the size passed; the kernel only reads it
    // (and checks any address inside it itself).
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl PacketSocket {
    /// Opens the socket on interface `ifindex` whose own address is `our_mac`, for
    /// replies to the director's source addresses `sources` (at most one per family is
    /// used). Fails with `PermissionDenied` without CAP_NET_RAW.
    pub fn open(ifindex: u32, our_mac: MacAddr, sources: &[IpAddr]) -> io::Result<PacketSocket> {
        PacketSocket::open_with(ifindex, our_mac, sources, false)
    }

    /// [`PacketSocket::open`], reading through a mapped receive ring ([`RxRing`]: no
    /// system call and no copy into a buffer for each batch of frames), or, if the kernel
    /// cannot make one, the ordinary way. For a socket read many times a second (the
    /// fleet's); the ring's 8 MiB would only slow a one-shot probe down. Its clones
    /// ([`PacketSocket::try_clone`]) send, and read the ordinary way.
    pub fn open_ringed(
        ifindex: u32,
        our_mac: MacAddr,
        sources: &[IpAddr],
    ) -> io::Result<PacketSocket> {
        PacketSocket::open_with(ifindex, our_mac, sources, true)
    }

    fn open_with(
        ifindex: u32,
        our_mac: MacAddr,
        sources: &[IpAddr],
        ringed: bool,
    ) -> io::Result<PacketSocket> {
        let (v4, v6) = first_of_each_family(sources);
        // Protocol 0: nothing is queued until bind, so no frame slips past the filter.
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        check(fd)?;
        // SAFETY: fd is fresh and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        attach_filter(fd.as_raw_fd(), filter(our_mac, v4, v6))?;
        let one: libc::c_int = 1;
        set_option(fd.as_raw_fd(), SOL_PACKET, PACKET_AUXDATA, &one)?;
        // Each frame's receive time comes with it (SCM_TIMESTAMPNS): see [`Frame::at`].
        set_option(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &one)?;
        // Before bind: every frame then comes by the ring.
        let ring = if ringed {
            RxRing::attach(fd.as_raw_fd()).ok()
        } else {
            None
        };
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: sll is a valid sockaddr_ll of the size passed.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(PacketSocket {
            fd,
            buf: vec![0; RECV_BUF],
            batch: Vec::new(),
            ring,
        })
    }

    /// True when this handle reads through a receive ring.
    pub fn is_ringed(&self) -> bool {
        self.ring.is_some()
    }
}

/// The pauses before sending again after ENOBUFS (a full queue), in turn: 7 ms in all.
const FULL_QUEUE_BACKOFF: [Duration; 3] = [
    Duration::from_millis(1),
    Duration::from_millis(2),
    Duration::from_millis(4),
];

/// The largest IP packet plus its Ethernet header: GRO can merge segments up to it.
const RECV_BUF: usize = 65_535 + 64;

/// Frames one `recvmmsg(2)` takes at most.
const RECV_BATCH: usize = 16;

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl PacketSocket {
    /// Closes the socket without making this process wait for it.
    ///
    /// Releasing a packet socket waits for an RCU grace period in the kernel
    /// (`synchronize_net` in `packet_release`): about 10 ms of idle waiting, several times
    /// the whole probe. A forked child keeps the socket until this process has exited
    /// (it sees the end of a pipe) and then drops the last reference, so the daemon that
    /// runs the check gets its exit status without that wait. The child has no standard
    /// streams and exits right after. If fork fails, the socket is closed here.
    /// Only for a process about to exit: the helper lives as long as this process.
    pub fn release_in_background(self) {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds is valid for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return;
        }
        let [read_end, write_end] = fds;
        // SAFETY: the child only calls async-signal-safe functions (close, read, _exit),
        // which is sound after fork even in a threaded process.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: plain descriptor calls on descriptors this process owns.
            unsafe {
                libc::close(write_end);
                for fd in 0..3 {
                    libc::close(fd);
                }
                let mut b = 0u8;
                // Returns 0 (end of file) once the parent has exited; a bounded loop on
                // EINTR only.
                for _ in 0..100 {
                    let n = libc::read(read_end, (&mut b as *mut u8).cast(), 1);
                    if n >= 0 || *libc::__errno_location() != libc::EINTR {
                        break;
                    }
                }
                libc::close(self.fd.as_raw_fd());
                libc::_exit(0);
            }
        }
        // SAFETY: closing our copy of the read end, which we own.
        unsafe { libc::close(read_end) };
        if pid > 0 {
            // Keep our references (socket and pipe write end) until exit: the child
            // closes the socket after us.
            std::mem::forget(self);
        }
        // On fork failure `self` drops here and closes the socket the slow way; the
        // write end is left to the exit.
    }
}

impl FrameIo for PacketSocket {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.transmit(frame)
    }

    fn send_batch(&mut self, frames: &[Vec<u8>]) -> io::Result<()> {
        self.transmit_batch(frames)
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        // Bounded by the deadline: each pass waits until a frame is queued or it passes.
        while self.wait_readable(deadline)? {
            if let Some(f) = self.read_ready()? {
                return Ok(Some(f));
            }
            // Woken without a frame (another reader took it): wait on.
        }
        Ok(None)
    }

    fn recv_ready(&mut self) -> io::Result<Option<Frame>> {
        self.read_ready()
    }
}

impl PacketSocket {
    /// Replaces the socket's filter with the classic BPF program `prog` (a benchmark's
    /// driver that sends and must take nothing in: one `BPF_RET 0`).
    pub fn set_filter(&self, prog: &[libc::sock_filter]) -> io::Result<()> {
        attach_filter(self.fd.as_raw_fd(), prog.to_vec())
    }

    /// Sends one frame; usable from several threads at once ([`PacketSocket::transmit_batch`]
    /// of one).
    pub fn transmit(&self, frame: &[u8]) -> io::Result<()> {
        self.transmit_batch(&[frame])
    }

    /// Sends `frames` in order with as few `sendmmsg(2)` calls as the kernel takes them
    /// in (one, for a probe's handful); usable from several threads at once. Stops at the
    /// first frame that cannot be sent, with its error.
    pub fn transmit_batch<F: AsRef<[u8]>>(&self, frames: &[F]) -> io::Result<()> {
        const MAX: usize = 64;
        let mut left = frames;
        let mut full = 0;
        // Bounded: each pass sends at least one frame, returns, or takes one of the
        // FULL_QUEUE_BACKOFF pauses.
        while !left.is_empty() {
            let chunk = &left[..left.len().min(MAX)];
            let mut iovs: Vec<libc::iovec> = chunk
                .iter()
                .map(|f| libc::iovec {
                    iov_base: f.as_ref().as_ptr() as *mut libc::c_void,
                    iov_len: f.as_ref().len(),
                })
                .collect();
            let mut msgs: Vec<libc::mmsghdr> = iovs
                .iter_mut()
                .map(|iov| {
                    // SAFETY: msghdr is plain data; all-zero is a valid value.
                    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
                    hdr.msg_iov = iov;
                    hdr.msg_iovlen = 1;
                    libc::mmsghdr {
                        msg_hdr: hdr,
                        msg_len: 0,
                    }
                })
                .collect();
            // SAFETY: msgs holds chunk.len() headers, each pointing at one iovec in iovs
            // over a frame in `frames`; all live across the call. The kernel only reads
            // the frames. The socket is bound, so no address is given.
            let n = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    msgs.len() as libc::c_uint,
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The queue the frame goes into is full for now (a receiving core's
                // backlog behind a veth, a device's queue): the frames go again a moment
                // later, a few times, before that counts as this host's fault.
                if e.raw_os_error() == Some(libc::ENOBUFS) && full < FULL_QUEUE_BACKOFF.len() {
                    std::thread::sleep(FULL_QUEUE_BACKOFF[full]);
                    full += 1;
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                // Never for a non-empty batch; a frame must not be skipped unsaid.
                return Err(io::Error::other("sendmmsg sent no frame"));
            }
            left = &left[(n as usize).min(chunk.len())..];
        }
        Ok(())
    }

    /// Another handle on the same socket (a duplicated descriptor), with its own buffer:
    /// one thread receives on it while others send on the original.
    pub fn try_clone(&self) -> io::Result<PacketSocket> {
        Ok(PacketSocket {
            fd: self.fd.try_clone()?,
            buf: vec![0; RECV_BUF],
            batch: Vec::new(),
            ring: None,
        })
    }

    /// Asks for a receive queue of `bytes` (beyond the system limit when privileged), so
    /// a burst of replies to many probes in flight is not dropped.
    pub fn set_recv_buffer(&self, bytes: usize) {
        let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            if set_option(self.fd.as_raw_fd(), libc::SOL_SOCKET, opt, &v).is_ok() {
                break;
            }
        }
    }

    /// Waits until a frame is queued (true) or `deadline` passes (false).
    pub fn wait_readable(&self, deadline: Instant) -> io::Result<bool> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let left = deadline - now;
            let ts = libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
            };
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: pfd and ts are valid for the call; no signal mask is changed.
            let r = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r > 0 {
                return Ok(true);
            }
        }
    }

    /// The frames already queued, up to `max`, without waiting: appended to `out`, in the
    /// order received; how many. From the receive ring if this handle has one; else one
    /// `recvmmsg(2)` per [`RECV_BATCH`] frames, and none after one that found the queue
    /// emptied.
    pub fn recv_batch(&mut self, out: &mut Vec<Frame>, max: usize) -> io::Result<usize> {
        if let Some(ring) = &mut self.ring {
            return take_from_ring(ring, self.fd.as_raw_fd(), &mut self.buf, out, max);
        }
        if self.batch.is_empty() {
            self.batch = vec![0; RECV_BATCH * RECV_BUF];
        }
        let mut taken = 0;
        // Bounded by `max`: each pass takes at least one frame or returns.
        while taken < max {
            let want = (max - taken).min(RECV_BATCH);
            let got = recv_frames(self.fd.as_raw_fd(), &mut self.batch, want)?;
            for (i, &(len, checksum_trusted, at)) in got.iter().enumerate() {
                let from = i * RECV_BUF;
                out.push(Frame {
                    bytes: self.batch[from..from + len].to_vec(),
                    checksum_trusted,
                    at,
                });
            }
            taken += got.len();
            if got.len() < want {
                break;
            }
        }
        Ok(taken)
    }

    /// One queued frame, without waiting.
    fn read_ready(&mut self) -> io::Result<Option<Frame>> {
        if let Some(ring) = &mut self.ring {
            let mut one = Vec::with_capacity(1);
            take_from_ring(ring, self.fd.as_raw_fd(), &mut self.buf, &mut one, 1)?;
            return Ok(one.pop());
        }
        read_one(self.fd.as_raw_fd(), &mut self.buf)
    }
}

/// Up to `max` frames from `ring` (packet socket `fd`'s), in order, appended to `out`;
/// how many. A frame longer than a slot is read whole (into `buf`) from the receive
/// queue, where the kernel also put it.
fn take_from_ring(
    ring: &mut RxRing,
    fd: RawFd,
    buf: &mut [u8],
    out: &mut Vec<Frame>,
    max: usize,
) -> io::Result<usize> {
    let mut clocks = None;
    let mut taken = 0;
    let mut failed = None;
    // Bounded by `max`, and by the slots the kernel has handed over.
    while taken < max {
        let more = ring.next_frame(|slot| {
            let frame = match slot.bytes {
                Some(bytes) => Some(Frame {
                    bytes: bytes.to_vec(),
                    checksum_trusted: trusted(slot.status),
                    at: Some(
                        clocks
                            .get_or_insert_with(Clocks::now)
                            .instant_of(slot.stamp),
                    ),
                }),
                None => read_one(fd, buf).unwrap_or_else(|e| {
                    failed = Some(e);
                    None
                }),
            };
            out.extend(frame);
        });
        if !more {
            break;
        }
        taken += 1;
    }
    failed.map_or(Ok(taken), Err)
}

/// One frame queued on packet socket `fd`'s receive queue, read into `buf`, without
/// waiting.
fn read_one(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<Frame>> {
    let got = recv_frames(fd, buf, 1)?;
    Ok(got.first().map(|&(len, checksum_trusted, at)| Frame {
        bytes: buf[..len].to_vec(),
        checksum_trusted,
        at,
    }))
}

/// The first IPv4 and the first IPv6 address among `sources`: the filter and the socket
/// take one source per family.
pub fn first_of_each_family(sources: &[IpAddr]) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
    let v4 = sources.iter().find_map(|a| match a {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    });
    let v6 = sources.iter().find_map(|a| match a {
        IpAddr::V6(a) => Some(*a),
        IpAddr::V4(_) => None,
    });
    (v4, v6)
}

/// Receives up to `want` (at most [`RECV_BATCH`]) queued frames from packet socket `fd`
/// with one `recvmmsg(2)`, without waiting: frame `i` into `bufs[i * RECV_BUF..]`. Each
/// frame's length, whether its checksum is trusted and when it came ([`ancillary`]);
/// empty when none is queued.
fn recv_frames(fd: RawFd, bufs: &mut [u8], want: usize) -> io::Result<Received> {
    let want = want.min(RECV_BATCH).min(bufs.len() / RECV_BUF);
    let mut iovs: [libc::iovec; RECV_BATCH] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; RECV_BATCH];
    for (i, (iov, buf)) in iovs
        .iter_mut()
        .zip(bufs.chunks_exact_mut(RECV_BUF))
        .enumerate()
    {
        if i < want {
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = buf.len();
        }
    }
    // u64 elements keep each control buffer aligned for cmsghdr.
    let mut controls = [[0u64; 16]; RECV_BATCH];
    // SAFETY: mmsghdr is plain data; all-zero is a valid value.
    let mut msgs: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
    for ((m, iov), control) in msgs
        .iter_mut()
        .zip(iovs.iter_mut())
        .zip(controls.iter_mut())
    {
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
        m.msg_hdr.msg_control = control.as_mut_ptr().cast();
        m.msg_hdr.msg_controllen = std::mem::size_of_val(control);
    }
    let mut got = Received {
        frames: [(0, false, None); RECV_BATCH],
        len: 0,
    };
    let n = loop {
        // SAFETY: the first `want` headers point at their own iovec (into a distinct
        // RECV_BUF-sized part of `bufs`) and control buffer, all live across the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                want as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(got),
            _ => return Err(e),
        }
    };
    let clocks = Clocks::now();
    for (slot, m) in got.frames.iter_mut().zip(&msgs).take(n.min(want)) {
        let (trusted, stamp) = ancillary(&m.msg_hdr);
        *slot = (
            (m.msg_len as usize).min(RECV_BUF),
            trusted,
            stamp.map(|s| clocks.instant_of(s)),
        );
    }
    got.len = n.min(want);
    Ok(got)
}

/// One frame [`recv_frames`] took: its length, whether its checksum is trusted, and
/// when it came.
type Taken = (usize, bool, Option<Instant>);

/// What [`recv_frames`] took, in order.
struct Received {
    frames: [Taken; RECV_BATCH],
    len: usize,
}

impl std::ops::Deref for Received {
    type Target = [Taken];
    fn deref(&self) -> &[Taken] {
        &self.frames[..self.len]
    }
}

/// The wall clock and the monotonic one read together: a receive timestamp (wall clock,
/// the only one the kernel stamps frames with) becomes an [`Instant`] by its age.
struct Clocks {
    wall: SystemTime,
    mono: Instant,
}

impl Clocks {
    fn now() -> Clocks {
        Clocks {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }

    /// The instant of wall-clock time `stamp`, by its age now. A stamp from the future
    /// (the wall clock was set back meanwhile) is now; an age beyond a minute (set
    /// forward) is taken as a minute.
    fn instant_of(&self, stamp: libc::timespec) -> Instant {
        let since_epoch = Duration::new(
            u64::try_from(stamp.tv_sec).unwrap_or(0),
            u32::try_from(stamp.tv_nsec).unwrap_or(0),
        );
        let age = self
            .wall
            .duration_since(UNIX_EPOCH + since_epoch)
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(60));
        self.mono.checked_sub(age).unwrap_or(self.mono)
    }
}

/// What the kernel said of a frame `recvmsg` took, in its control messages: whether its
/// transport checksum is not to be checked (PACKET_AUXDATA: a local peer left it to the
/// hardware, CSUMNOTREADY, or the NIC or kernel verified it already and GRO may have
/// merged the segment since, CSUM_VALID), and its receive time (SO_TIMESTAMPNS).
fn ancillary(msg: &libc::msghdr) -> (bool, Option<libc::timespec>) {
    let mut status = 0u32;
    let mut stamp = None;
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel just filled, within
    // msg.msg_controllen; the auxdata payload starts with a u32 status, the timestamp's
    // is a timespec.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (SOL_PACKET, PACKET_AUXDATA) => {
                    status = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>());
                }
                (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                    stamp = Some(std::ptr::read_unaligned(
                        libc::CMSG_DATA(c).cast::<libc::timespec>(),
                    ));
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    (trusted(status), stamp)
}

/// Whether a frame of kernel status `status` (auxdata's, or a ring slot's: the same bits)
/// has a transport checksum not to be checked: a local peer left it to the hardware
/// (CSUMNOTREADY), or the NIC or kernel verified it already and GRO may have merged the
/// segment since (CSUM_VALID).
fn trusted(status: u32) -> bool {
    status & (TP_STATUS_CSUMNOTREADY | TP_STATUS_CSUM_VALID) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF program the way the kernel would for the few instructions the
    /// filter uses; `pkttype` is what the ancillary load returns.
    fn run(prog: &[libc::sock_filter], frame: &[u8], pkttype: u32) -> u32 {
        let mut a = 0u32;
        let mut pc = 0;
        for _ in 0..prog.len() {
            let i = prog[pc];
            let k = i.k as usize;
            match i.code {
                0x20 if i.k == AD_PKTTYPE => a = pkttype,
                0x20 => match frame.get(k..k + 4) {
                    Some(b) => a = u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                    None => return 0,
                },
                0x28 => match frame.get(k..k + 2) {
                    Some(b) => a = u32::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return 0,
                },
                0x15 => {
                    pc += 1 + usize::from(if a == i.k { i.jt } else { i.jf });
                    continue;
                }
                0x06 => return i.k,
                other => panic!("unexpected instruction {other:#x}"),
            }
            pc += 1;
        }
        panic!("the program ran off its end");
    }

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn frame(dst_mac: [u8; 6], ethertype: u16, dst_ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 80];
        f[..6].copy_from_slice(&dst_mac);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        match ethertype {
            0x0800 => f[30..34].copy_from_slice(dst_ip),
            0x86dd => f[38..54].copy_from_slice(dst_ip),
            _ => {}
        }
        f
    }

    #[test]
    fn filter_passes_replies_to_our_sources_and_nothing_else() {
        let v4: Ipv4Addr = "192.0.2.2".parse().unwrap();
        let v6: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let prog = filter(MAC, Some(v4), Some(v6));
        let ours = MAC.0;
        let accept = 0x0004_0000;
        assert_eq!(run(&prog, &frame(ours, 0x0800, &v4.octets()), 0), accept);
        assert_eq!(run(&prog, &frame(ours, 0x86dd, &v6.octets()), 0), accept);
        assert_eq!(run(&prog, &frame(ours, 0x0806, &[]), 0), accept);
        // Client traffic to a VIP, another host's frames, our own frames, other types.
        assert_eq!(run(&prog, &frame(ours, 0x0800, &[192, 0, 2, 20]), 0), 0);
        let other6: Ipv6Addr = "2001:db8::20".parse().unwrap();
        assert_eq!(run(&prog, &frame(ours, 0x86dd, &other6.octets()), 0), 0);
        assert_eq!(
            run(&prog, &frame([2, 0, 0, 0, 0, 3], 0x0800, &v4.octets()), 3),
            0
        );
        assert_eq!(
            run(&prog, &frame(ours, 0x0800, &v4.octets()), PACKET_OUTGOING),
            0
        );
        assert_eq!(run(&prog, &frame(ours, 0x8100, &[]), 0), 0);
        // Short frames are dropped, never read past their end.
        assert_eq!(run(&prog, &frame(ours, 0x0800, &v4.octets())[..20], 0), 0);
    }

    #[test]
    fn filter_without_an_ipv6_source_drops_ipv6() {
        let v4: Ipv4Addr = "192.0.2.2".parse().unwrap();
        let prog = filter(MAC, Some(v4), None);
        let any6: Ipv6Addr = "2001:db8::2".parse().unwrap();
        assert_eq!(run(&prog, &frame(MAC.0, 0x86dd, &any6.octets()), 0), 0);
        assert_eq!(
            run(&prog, &frame(MAC.0, 0x0800, &v4.octets()), 0),
            0x0004_0000
        );
    }
}
