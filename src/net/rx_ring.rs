//! A packet socket's receive ring (`PACKET_RX_RING`, `TPACKET_V2`): the kernel writes
//! each frame into a slot of memory mapped into this process, and a read is a walk over
//! the slots it has handed over, without a system call and without the kernel's copy
//! into a `recvmsg` buffer. The fleet's shared sockets read a hundred times a second, so
//! this is where their receive path costs least (see the README's agent figures).
//!
//! A frame longer than a slot is also queued whole on the socket's ordinary receive queue
//! (`PACKET_COPY_THRESH`); its slot says so (`TP_STATUS_COPY`) and the whole frame is read
//! from there, so nothing is cut short.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};

use super::packet_socket::{set_option, SOL_PACKET};

/// `SOL_PACKET` options and values from `<linux/if_packet.h>`.
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_COPY_THRESH: libc::c_int = 7;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V2: libc::c_int = 1;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_COPY: u32 = 1 << 1;

/// A slot: the header, the link-layer address the kernel fills in, and the frame. 2 KiB
/// holds any frame of a 1,500-byte MTU; a longer one comes whole by the copy.
const SLOT: usize = 2048;
/// Slots are grouped in blocks of pages: 32 slots a block.
const BLOCK: usize = 64 << 10;
/// 4,096 slots (8 MiB): as many frames as the 8 MiB receive buffer the fleet asks for
/// held of small replies.
const BLOCKS: usize = 128;

/// `struct tpacket2_hdr` (the kernel's layout, every field, read or not).
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
struct Header {
    status: u32,
    len: u32,
    snaplen: u32,
    mac: u16,
    net: u16,
    sec: u32,
    nsec: u32,
    vlan_tci: u16,
    vlan_tpid: u16,
    padding: [u8; 4],
}

/// `struct tpacket_req`.
#[repr(C)]
struct Request {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}

/// A frame the ring handed over: its bytes (`None` when it is to be read whole from the
/// receive queue; cut short when the kernel could not also queue it whole there, which
/// no parser then takes), its status bits and its receive time.
pub struct Slot<'a> {
    pub bytes: Option<&'a [u8]>,
    pub status: u32,
    pub stamp: libc::timespec,
}

/// The mapped ring of one packet socket, read in order from `next`.
pub struct RxRing {
    base: *mut u8,
    size: usize,
    slots: usize,
    next: usize,
}

// SAFETY: the mapping belongs to this value alone (no other handle walks it), and the
// kernel's side is synchronised through each slot's status word.
unsafe impl Send for RxRing {}
// SAFETY: a shared reference can do nothing with it (every read takes `&mut self`).
unsafe impl Sync for RxRing {}

impl RxRing {
    /// Sets up and maps the ring of packet socket `fd`, before it is bound (so that no
    /// frame is queued the old way first).
    pub fn attach(fd: RawFd) -> io::Result<RxRing> {
        set_option(fd, SOL_PACKET, PACKET_VERSION, &TPACKET_V2)?;
        set_option(fd, SOL_PACKET, PACKET_COPY_THRESH, &1 as &libc::c_int)?;
        let req = Request {
            block_size: BLOCK as u32,
            block_nr: BLOCKS as u32,
            frame_size: SLOT as u32,
            frame_nr: (BLOCKS * BLOCK / SLOT) as u32,
        };
        set_option(fd, SOL_PACKET, PACKET_RX_RING, &req)?;
        let size = BLOCKS * BLOCK;
        // SAFETY: a shared mapping of the ring the kernel just made for `fd`, of its size.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RxRing {
            base: base.cast(),
            size,
            slots: BLOCKS * BLOCK / SLOT,
            next: 0,
        })
    }

    /// The status word of slot `i`, shared with the kernel.
    fn status_word(&self, i: usize) -> &AtomicU32 {
        // SAFETY: slot i starts inside the mapping (i < slots), 16-byte aligned, with the
        // status word first; the kernel only ever changes it atomically.
        unsafe { AtomicU32::from_ptr(self.base.add(i * SLOT).cast::<u32>()) }
    }

    /// Hands the next frame the kernel has written to `take` and gives its slot back;
    /// `false` when there is none.
    pub fn next_frame(&mut self, take: impl FnOnce(Slot<'_>)) -> bool {
        let i = self.next;
        let word = self.status_word(i);
        // Acquire: the frame's bytes the kernel wrote before handing the slot over.
        let status = word.load(Ordering::Acquire);
        if status & TP_STATUS_USER == 0 {
            return false;
        }
        // SAFETY: slot i is ours until its status goes back to the kernel; its header is
        // plain data at its start.
        let header = unsafe { std::ptr::read(self.base.add(i * SLOT).cast::<Header>()) };
        let (from, len) = (usize::from(header.mac), header.snaplen as usize);
        let bytes = if status & TP_STATUS_COPY != 0 {
            None
        } else if from + len <= SLOT {
            // SAFETY: within slot i (checked), which the kernel does not touch until it is
            // given back below.
            Some(unsafe { std::slice::from_raw_parts(self.base.add(i * SLOT + from), len) })
        } else {
            // A header that points past its slot: no frame anyone could parse.
            Some(&[][..])
        };
        take(Slot {
            bytes,
            status,
            stamp: libc::timespec {
                tv_sec: libc::time_t::from(header.sec),
                tv_nsec: libc::c_long::from(header.nsec),
            },
        });
        // Release: done with the bytes before the kernel may write the slot again.
        self.status_word(i)
            .store(TP_STATUS_KERNEL, Ordering::Release);
        self.next = (i + 1) % self.slots;
        true
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in attach, of its size, unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.size) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_the_kernel_s_tpacket2_hdr() {
        // 32 bytes, fields where <linux/if_packet.h> has them.
        assert_eq!(std::mem::size_of::<Header>(), 32);
        assert_eq!(std::mem::offset_of!(Header, mac), 12);
        assert_eq!(std::mem::offset_of!(Header, sec), 16);
        assert_eq!(std::mem::offset_of!(Header, vlan_tci), 24);
        assert_eq!(std::mem::size_of::<Request>(), 16);
        // The geometry the kernel accepts: whole pages a block, whole slots a block.
        assert_eq!(BLOCK % 4096, 0);
        assert_eq!(BLOCK % SLOT, 0);
        assert_eq!(SLOT % 16, 0);
    }
}
