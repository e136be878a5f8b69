//! The AF_PACKET socket the prober sends and receives whole frames on, behind the
//! [`FrameIo`] trait so the probe logic can be tested with recorded frames.
//!
//! Frames are captured below the IP layer on purpose: on a director that holds the VIP
//! its own IP stack drops the replies (their source is one of its addresses) as martians.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use crate::wire::MacAddr;

/// A received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    /// The kernel vouches for the transport checksum: it has verified it, or the frame
    /// was generated on this host (over a veth) and its checksum is not filled in yet.
    /// Either way the checksum bytes must not be checked.
    pub checksum_trusted: bool,
}

impl Frame {
    /// A frame whose checksums are to be verified (what a wire delivers).
    pub fn wire(bytes: Vec<u8>) -> Frame {
        Frame {
            bytes,
            checksum_trusted: false,
        }
    }
}

/// Sends and receives whole Ethernet frames on one interface.
pub trait FrameIo {
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// The next frame received before `deadline`, or `None` once it has passed.
    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Frame>>;
}

/// A packet socket bound to one interface that only wakes for frames addressed to
/// `our_mac` of type ARP, IPv4 or IPv6, and never for frames we sent.
pub struct PacketSocket {
    fd: OwnedFd,
    buf: Vec<u8>,
}

const ETH_P_ALL: u16 = 0x0003;
const SOL_PACKET: libc::c_int = 263;
const PACKET_AUXDATA: libc::c_int = 8;
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
const TP_STATUS_CSUM_VALID: u32 = 1 << 7;
const PACKET_OUTGOING: u32 = 4;
/// SKF_AD_OFF + SKF_AD_PKTTYPE: where classic BPF reads the packet type.
const AD_PKTTYPE: u32 = 0xffff_f000 + 4;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The classic BPF filter: incoming, ARP/IPv4/IPv6, destination MAC == `mac`.
fn filter(mac: MacAddr) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = 0x20;
    const LD_H_ABS: u16 = 0x28;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let m = mac.0;
    let low = u32::from_be_bytes([m[2], m[3], m[4], m[5]]);
    let high = u32::from(u16::from_be_bytes([m[0], m[1]]));
    vec![
        insn(LD_W_ABS, 0, 0, AD_PKTTYPE),   // 0
        insn(JEQ_K, 9, 0, PACKET_OUTGOING), // 1: ours -> drop
        insn(LD_H_ABS, 0, 0, 12),           // 2: EtherType
        insn(JEQ_K, 2, 0, 0x0806),          // 3
        insn(JEQ_K, 1, 0, 0x0800),          // 4
        insn(JEQ_K, 0, 5, 0x86dd),          // 5: else drop
        insn(LD_W_ABS, 0, 0, 2),            // 6: destination MAC, low 4 bytes
        insn(JEQ_K, 0, 3, low),             // 7
        insn(LD_H_ABS, 0, 0, 0),            // 8: destination MAC, high 2 bytes
        insn(JEQ_K, 0, 1, high),            // 9
        insn(RET_K, 0, 0, 0x0004_0000),     // 10: accept
        insn(RET_K, 0, 0, 0),               // 11: drop
    ]
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl PacketSocket {
    /// Opens the socket on interface `ifindex` whose own address is `our_mac`.
    /// Fails with `PermissionDenied` without CAP_NET_RAW.
    pub fn open(ifindex: u32, our_mac: MacAddr) -> io::Result<PacketSocket> {
        // Protocol 0: nothing is queued until bind, so no frame slips past the filter.
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        check(fd)?;
        // SAFETY: fd is fresh and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut prog = filter(our_mac);
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_mut_ptr(),
        };
        // SAFETY: fprog points at prog, which outlives the call; the kernel copies it.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&fprog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        })?;
        let one: libc::c_int = 1;
        // SAFETY: one is a valid c_int for the call.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_AUXDATA,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
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
            buf: vec![0; 65536],
        })
    }
}

impl FrameIo for PacketSocket {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is valid for frame.len() bytes; the socket is bound, so the
        // interface and protocol come from the binding.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
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
            if r == 0 {
                continue;
            }
            let mut iov = libc::iovec {
                iov_base: self.buf.as_mut_ptr().cast(),
                iov_len: self.buf.len(),
            };
            // u64 elements keep the control buffer aligned for cmsghdr.
            let mut control = [0u64; 16];
            // SAFETY: msghdr is plain data; all-zero is a valid value.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control);
            // SAFETY: msg points at iov (into self.buf) and control, both live and of the
            // sizes given.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
            let mut status = 0u32;
            // SAFETY: the CMSG_* helpers walk the control buffer the kernel just filled,
            // within msg.msg_controllen; the auxdata payload starts with a u32 status.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    if (*c).cmsg_level == SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                        status = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>());
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
            let len = (n as usize).min(self.buf.len());
            return Ok(Some(Frame {
                bytes: self.buf[..len].to_vec(),
                checksum_trusted: status & (TP_STATUS_CSUMNOTREADY | TP_STATUS_CSUM_VALID) != 0,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_jumps_land_inside_the_program() {
        let prog = filter(MacAddr([2, 0, 0, 0, 0, 2]));
        for (i, ins) in prog.iter().enumerate() {
            if ins.code == 0x15 {
                assert!(i + 1 + usize::from(ins.jt) < prog.len());
                assert!(i + 1 + usize::from(ins.jf) < prog.len());
            }
        }
        assert_eq!(prog[7].k, 0x0000_0002);
        assert_eq!(prog[9].k, 0x0200);
        // Both branches of every test that rejects end at the final "drop".
        assert_eq!(prog[11].k, 0);
        assert_eq!(1 + 1 + usize::from(prog[1].jt), 11);
        assert_eq!(5 + 1 + usize::from(prog[5].jf), 11);
        assert_eq!(7 + 1 + usize::from(prog[7].jf), 11);
        assert_eq!(9 + 1 + usize::from(prog[9].jf), 11);
    }
}
