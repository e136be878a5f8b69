//! Network topologies for tests that need root: network namespaces, a bridge joining
//! them, veth links, addresses, sysctls, processes and threads inside a namespace, and a
//! relay that can drop chosen frames. Everything is removed on drop, also when a test
//! fails (a namespace kills whatever still runs inside it first). Namespace names carry
//! the process id and a counter so parallel tests (and parallel test binaries) never
//! collide.

#![allow(dead_code)] // each test target uses a different part of the harness

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// The one skip rule, declared here (by path) so the benches that include this file alone
// have it too; `common::skip` re-exports it.
#[path = "skip.rs"]
pub mod skip;

#[allow(unused_imports)]
pub use skip::REQUIRE_ENV;

/// True when the test can run (root). Otherwise skips through the one skip rule
/// (tests/common/skip.rs): prints "skipped: needs root (why)" and returns false, or panics
/// when VIPCHECK_REQUIRE_PRIVILEGED=1.
#[track_caller]
pub fn privileged(why: &str) -> bool {
    skip::root(why)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs a command to completion within `limit`, killing it if it takes longer.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let out = child.wait_with_output();
                panic!("{cmd:?} did not finish within {limit:?}: {out:?}");
            }
        }
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot collect {cmd:?}: {e}"))
}

/// Runs a command that must succeed (within 10 s); returns its stdout.
pub fn must(cmd: &mut Command) -> String {
    let out = run_bounded(cmd, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop (with every interface inside it).
pub struct Netns {
    name: String,
}

impl Netns {
    /// A new namespace `vc-TAG-PID-N` with lo up and IPv6 DAD off.
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("vc-{tag}-{}-{n}", std::process::id());
        let _ = run_bounded(
            Command::new("ip").args(["netns", "del", &name]),
            Duration::from_secs(10),
        );
        must(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip("link set lo up");
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0");
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...` (split on white space), which must succeed.
    pub fn ip(&self, args: &str) -> String {
        must(
            Command::new("ip")
                .args(["-n", &self.name])
                .args(args.split_whitespace()),
        )
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) {
        must(
            self.command("sysctl")
                .args(["-qw", &format!("{key}={value}")]),
        );
    }

    /// A DR real server's ARP settings on `ifname` (and `all`): `arp_ignore` as given
    /// (1: answer only for addresses on that interface, so never for a VIP on lo) and
    /// `arp_announce` 2 (never a VIP as the source of its own ARP requests).
    pub fn arp_sysctls(&self, ifname: &str, arp_ignore: &str) {
        for scope in ["all", ifname] {
            self.sysctl(&format!("net.ipv4.conf.{scope}.arp_ignore"), arp_ignore);
            self.sysctl(&format!("net.ipv4.conf.{scope}.arp_announce"), "2");
        }
    }

    /// `program` run inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Starts a process inside the namespace; it is killed when the guard drops.
    pub fn spawn(&self, program: impl AsRef<OsStr>, args: &[&str]) -> ChildGuard {
        let child = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn in {}: {e}", self.name));
        ChildGuard(child)
    }

    /// The namespace's file (`/var/run/netns/NAME`), for `setns`.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// Runs `program args...` inside the namespace; it must succeed (within 10 s).
    /// Returns its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        must(self.command(program).args(args))
    }

    /// Runs `f` on a thread that has entered the namespace; sockets it creates stay in
    /// the namespace after it returns.
    pub fn in_ns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_named(&self.name, f)
    }
}

/// [`Netns::in_ns`] for a namespace this process did not create (a child process given
/// its parent's namespace name).
pub fn in_named<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{name}");
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(&path);
            f()
        })
        .join()
        .unwrap_or_else(|_| panic!("a thread inside {name} panicked"))
    })
}

/// A namespace with nothing but lo, for code that may look up host names (ldirectord,
/// the system resolver on a config's names): inside it a lookup fails at once instead of
/// asking the host's resolver, so no test sends anything off this machine. Needs root;
/// otherwise skips through the one rule (see [`privileged`]).
#[track_caller]
pub fn offline(why: &str) -> Option<Netns> {
    privileged(why).then(|| Netns::new("off"))
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &str) {
    let f = File::open(path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
    // SAFETY: f is an open namespace file; setns only changes this thread's namespace.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// The index of interface `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).expect("interface name");
    // SAFETY: c is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(index, 0, "no interface {name}");
    index
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Whatever still runs inside (a daemon, a check it started) goes first.
        let pids = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        if let Ok(out) = pids {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = run_bounded(
            Command::new("ip").args(["netns", "del", &self.name]),
            Duration::from_secs(10),
        );
    }
}

/// A child process killed and reaped on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An Ethernet segment: a bridge in its own namespace that hosts are plugged into.
pub struct Lan {
    switch: Netns,
    ports: AtomicU32,
}

impl Lan {
    pub fn new() -> Lan {
        let switch = Netns::new("sw");
        switch.ip("link add br0 type bridge");
        // No spanning tree delay, no multicast snooping surprises.
        switch.ip("link set br0 type bridge forward_delay 0 stp_state 0 mcast_snooping 0");
        // A switch forwards frames; it does not run them through the IP firewall hooks
        // (br_netfilter, on by default in every namespace when the kernel has it).
        for family in ["iptables", "ip6tables", "arptables"] {
            let key = format!("/proc/sys/net/bridge/bridge-nf-call-{family}");
            let _ = switch.in_ns(|| std::fs::write(&key, "0"));
        }
        switch.ip("link set br0 up");
        Lan {
            switch,
            ports: AtomicU32::new(0),
        }
    }

    pub fn switch(&self) -> &Netns {
        &self.switch
    }

    /// Plugs `host` into the bridge through a veth named `ifname` on the host side with
    /// MAC `mac`, and brings it up.
    pub fn attach(&self, host: &Netns, ifname: &str, mac: &str) {
        let port = format!("p{}", self.ports.fetch_add(1, Ordering::Relaxed));
        self.switch.ip(&format!(
            "link add {port} type veth peer name {ifname} netns {}",
            host.name()
        ));
        self.switch.ip(&format!("link set {port} master br0 up"));
        host.ip(&format!("link set {ifname} address {mac} up"));
    }

    /// Plugs `a` and `b` together with a veth pair through `relay`'s namespace
    /// instead of the bridge: `a`'s `ifname_a` <-> relay "ra{n}", "rb{n}" <-> `b`'s
    /// `ifname_b`. Returns the relay-side names.
    pub fn cable_through(
        relay: &Netns,
        a: (&Netns, &str, &str),
        b: (&Netns, &str, &str),
    ) -> (String, String) {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let (ra, rb) = (format!("ra{n}"), format!("rb{n}"));
        for ((host, ifname, mac), r) in [(a, &ra), (b, &rb)] {
            relay.ip(&format!(
                "link add {r} type veth peer name {ifname} netns {}",
                host.name()
            ));
            relay.ip(&format!("link set {r} up"));
            host.ip(&format!("link set {ifname} address {mac} up"));
        }
        (ra, rb)
    }
}

impl Default for Lan {
    fn default() -> Self {
        Lan::new()
    }
}

/// What a [`Relay`] does with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    Pass,
    Drop,
    /// Passes it on after this long (a slow link or a slow server).
    Delay(Duration),
}

/// Copies frames between two interfaces of one namespace with packet sockets, dropping
/// or delaying the frames a rule picks. Stops on drop, and after `MAX_RUN` in any case.
pub struct Relay {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const MAX_RUN: Duration = Duration::from_secs(60);

fn packet_socket(ifname: &str) -> i32 {
    let index = ifindex(ifname);
    // SAFETY: plain libc calls with valid arguments; results are checked.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = 0x0003u16.to_be();
        sll.sll_ifindex = index as i32;
        let r = libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(r, 0, "bind {ifname}: {}", std::io::Error::last_os_error());
        fd
    }
}

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

/// Rewrites the TCP checksum of an IPv4 or IPv6 (no extension headers) frame.
fn finish_tcp_checksum(frame: &mut [u8]) {
    let (pseudo, seg_start, seg_end) = match frame.get(12..14) {
        Some([0x08, 0x00]) if frame.len() >= 34 && frame[23] == 6 => {
            let ihl = usize::from(frame[14] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
            let (start, end) = (14 + ihl, 14 + total);
            if end > frame.len() || start + 18 > end {
                return;
            }
            let p = sum16(&frame[26..34]) + 6 + (end - start) as u32;
            (p, start, end)
        }
        Some([0x86, 0xdd]) if frame.len() >= 54 && frame[20] == 6 => {
            let len = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
            let (start, end) = (54, 54 + len);
            if end > frame.len() || start + 18 > end {
                return;
            }
            let p = sum16(&frame[22..54]) + 6 + len as u32;
            (p, start, end)
        }
        _ => return,
    };
    frame[seg_start + 16..seg_start + 18].fill(0);
    let mut acc = pseudo + sum16(&frame[seg_start..seg_end]);
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    frame[seg_start + 16..seg_start + 18].copy_from_slice(&(!(acc as u16)).to_be_bytes());
}

impl Relay {
    /// A relay that drops the frames `drop_frame` picks and passes the rest at once.
    pub fn start(
        ns: &Netns,
        if_a: &str,
        if_b: &str,
        mut drop_frame: impl FnMut(&[u8]) -> bool + Send + 'static,
    ) -> Relay {
        Relay::start_with(ns, if_a, if_b, move |f| {
            if drop_frame(f) {
                Forward::Drop
            } else {
                Forward::Pass
            }
        })
    }

    /// A relay that does with each frame what `rule` says.
    pub fn start_with(
        ns: &Netns,
        if_a: &str,
        if_b: &str,
        mut rule: impl FnMut(&[u8]) -> Forward + Send + 'static,
    ) -> Relay {
        let stop = Arc::new(AtomicBool::new(false));
        let path = ns.path();
        let (if_a, if_b) = (if_a.to_string(), if_b.to_string());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            enter(&path);
            let fds = [packet_socket(&if_a), packet_socket(&if_b)];
            let _ = ready_tx.send(());
            let start = Instant::now();
            let mut buf = vec![0u8; 65536];
            // Delayed frames: when to send, to which socket, what (bounded by MAX_RUN).
            let mut held: Vec<(Instant, usize, Vec<u8>)> = Vec::new();
            while !flag.load(Ordering::Relaxed) && start.elapsed() < MAX_RUN {
                let now = Instant::now();
                held.retain(|(at, out, frame)| {
                    if *at > now {
                        return true;
                    }
                    // SAFETY: frame is valid for its length; the socket is bound.
                    unsafe {
                        libc::send(fds[*out], frame.as_ptr().cast(), frame.len(), 0);
                    }
                    false
                });
                let wait = held
                    .iter()
                    .map(|(at, _, _)| at.saturating_duration_since(now))
                    .min()
                    .map_or(20, |d| d.as_millis().min(20) as i32);
                let mut pfds = fds.map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
                // SAFETY: pfds is a valid array of two pollfds.
                let r = unsafe { libc::poll(pfds.as_mut_ptr(), 2, wait) };
                if r <= 0 {
                    continue;
                }
                for (i, p) in pfds.iter().enumerate() {
                    if p.revents & libc::POLLIN == 0 {
                        continue;
                    }
                    // SAFETY: sll and buf are valid for the sizes passed.
                    let (n, pkttype) = unsafe {
                        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                        let n = libc::recvfrom(
                            p.fd,
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                            libc::MSG_DONTWAIT,
                            (&mut sll as *mut libc::sockaddr_ll).cast(),
                            &mut len,
                        );
                        (n, sll.sll_pkttype)
                    };
                    // Our own transmissions show up as outgoing: skip them.
                    if n <= 0 || pkttype == libc::PACKET_OUTGOING {
                        continue;
                    }
                    let frame = &mut buf[..n as usize];
                    let forward = rule(frame);
                    if forward == Forward::Drop {
                        continue;
                    }
                    // A segment sent by a namespace's own stack carries a checksum the
                    // "hardware" was to fill in; this relay is that hardware.
                    finish_tcp_checksum(frame);
                    if let Forward::Delay(d) = forward {
                        held.push((Instant::now() + d, 1 - i, frame.to_vec()));
                        continue;
                    }
                    // SAFETY: frame is valid for its length; the socket is bound.
                    unsafe {
                        libc::send(fds[1 - i], frame.as_ptr().cast(), frame.len(), 0);
                    }
                }
            }
            for fd in fds {
                // SAFETY: fd was opened above and is closed once.
                unsafe { libc::close(fd) };
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("relay started");
        Relay {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
