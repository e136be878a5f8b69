//! Resets the session on the real server if vipcheck dies in the middle of it (SIGKILL,
//! a crash). A forked helper holds its own packet socket and waits on a pipe that only the
//! prober writes to; when the prober goes, the pipe reads end-of-file and the helper sends
//! the RST the prober last left in shared memory (sequence number = what the real server
//! expects next), so no half-open connection stays there. On a normal end the prober
//! disarms it first. The helper only reads, sends and exits: safe after fork.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

const SLOT: usize = 128;

#[repr(C)]
struct Shared {
    /// 0: nothing to send; 1 or 2: the slot holding the current RST frame.
    armed: AtomicU32,
    len: [AtomicU32; 2],
    frames: [[u8; SLOT]; 2],
}

pub struct Reaper {
    pipe_w: Option<OwnedFd>,
    shared: *mut Shared,
    next: usize,
}

impl Reaper {
    /// Forks the helper, which sends on `sock` (the session's packet socket, shared) and
    /// also keeps `extra` (the guard's netlink socket) open. The helper is forked twice so
    /// that init, not the prober, reaps it: the prober never waits for it, and the helper,
    /// holding the last references, pays for closing them (RCU grace periods, the owner
    /// table's removal) after the prober has moved on.
    pub fn spawn(sock: RawFd, extra: Option<RawFd>) -> io::Result<Reaper> {
        // SAFETY: an anonymous shared mapping, checked below; zero-filled, which is a valid
        // Shared (atomics at 0, empty frames).
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<Shared>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let shared = mem.cast::<Shared>();
        let unmap = |e: io::Error| {
            // SAFETY: the mapping made above, not shared with anyone yet.
            unsafe { libc::munmap(mem, std::mem::size_of::<Shared>()) };
            e
        };
        let mut fds = [0; 2];
        // SAFETY: fds has room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(unmap(io::Error::last_os_error()));
        }
        // SAFETY: fresh descriptors we own.
        let (pipe_r, pipe_w) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the children below only call async-signal-safe functions and _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(unmap(io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: as above; the middle child forks the helper and leaves at once.
            unsafe {
                if libc::fork() == 0 {
                    helper(
                        pipe_w.as_raw_fd(),
                        pipe_r.as_raw_fd(),
                        sock,
                        extra.unwrap_or(-1),
                        shared,
                    )
                }
                libc::_exit(0)
            }
        }
        let mut status = 0;
        // SAFETY: our own child, which exits right after its fork.
        unsafe {
            for _ in 0..100 {
                if libc::waitpid(pid, &mut status, 0) >= 0
                    || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted
                {
                    break;
                }
            }
        }
        drop(pipe_r);
        Ok(Reaper {
            pipe_w: Some(pipe_w),
            shared,
            next: 0,
        })
    }

    /// Makes `frame` the RST sent should the prober die now.
    pub fn arm(&mut self, frame: &[u8]) {
        if frame.len() > SLOT {
            return;
        }
        // SAFETY: the mapping lives as long as self; the helper only reads it.
        let shared = unsafe { &mut *self.shared };
        let i = self.next;
        shared.frames[i][..frame.len()].copy_from_slice(frame);
        shared.len[i].store(frame.len() as u32, Ordering::SeqCst);
        shared.armed.store(i as u32 + 1, Ordering::SeqCst);
        self.next = 1 - i;
    }

    /// Nothing to reset: the session ended by itself.
    pub fn disarm(&mut self) {
        // SAFETY: as in arm.
        unsafe { &*self.shared }.armed.store(0, Ordering::SeqCst);
    }
}

/// The helper process: waits for the prober to go, sends the armed RST, exits.
unsafe fn helper(pipe_w: i32, pipe_r: i32, sock: i32, extra: i32, shared: *mut Shared) -> ! {
    libc::close(pipe_w);
    // Drop every other inherited descriptor: a helper forked for a parallel session must
    // not hold this one's pipe open (nor anyone's pipes and sockets).
    let mut keep = [pipe_r, sock, extra];
    keep.sort_unstable();
    let mut first: u32 = 3;
    for fd in keep {
        if fd < 0 {
            continue;
        }
        let fd = fd as u32;
        if fd > first {
            libc::syscall(libc::SYS_close_range, first, fd - 1, 0u32);
        }
        first = first.max(fd + 1);
    }
    libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32);
    let mut b = 0u8;
    // read returns 0 (EOF) once every write end is closed: the prober has exited or
    // dropped the reaper. Bounded: a signal storm cannot keep us here forever.
    for _ in 0..1000 {
        let n = libc::read(pipe_r, (&mut b as *mut u8).cast(), 1);
        if n >= 0 {
            break;
        }
    }
    let armed = (*shared).armed.load(Ordering::SeqCst);
    if armed == 1 || armed == 2 {
        let i = armed as usize - 1;
        let len = ((*shared).len[i].load(Ordering::SeqCst) as usize).min(SLOT);
        libc::send(sock, (*shared).frames[i].as_ptr().cast(), len, 0);
    }
    libc::_exit(0)
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.disarm();
        // Closing the pipe wakes the helper, which finds nothing armed and exits.
        self.pipe_w = None;
        // SAFETY: the mapping made in spawn; the helper has its own mapping of it.
        unsafe { libc::munmap(self.shared.cast(), std::mem::size_of::<Shared>()) };
    }
}
