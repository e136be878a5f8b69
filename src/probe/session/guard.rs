//! Keeps the director's own kernel from resetting the session. The real server answers
//! our address from VIP:port; a director that does not hold the VIP has no socket for that
//! connection and answers every segment with a RST. An nftables table with `flags owner`
//! drops exactly those RSTs (our address and port to VIP:port). The kernel deletes an owner
//! table when the netlink socket that created it closes, so the table lives exactly as long
//! as the socket: on drop, on exit and on SIGKILL it goes.
//!
//! By default the table is added over netlink ([`super::nftnl`]); with `VIPCHECK_NFT` set
//! to an `nft` program, that program (`nft -i`, PR_SET_PDEATHSIG) holds the table instead.
//! PR_SET_PDEATHSIG fires when the *thread* that spawned the child ends, which is fine
//! here: the guard lives inside one synchronous [`super::run`] on that thread.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::SessionError;

/// The nft program to use instead of netlink, from `VIPCHECK_NFT`.
fn nft_program() -> Option<String> {
    std::env::var("VIPCHECK_NFT").ok().filter(|p| !p.is_empty())
}

/// The table's name: unique per process and session port.
pub fn table_name(local_port: u16) -> String {
    format!("vipcheck_{}_{}", std::process::id(), local_port)
}

/// The nft script that creates the table, then lists it (the listing tells us the table
/// is in place before the first SYN leaves).
pub fn script(table: &str, src: IpAddr, local_port: u16, vip: IpAddr, port: u16) -> String {
    let family = if vip.is_ipv6() { "ip6" } else { "ip" };
    format!(
        "add table inet {table} {{ flags owner; chain out {{ type filter hook output priority raw; policy accept; \
         {family} saddr {src} {family} daddr {vip} tcp sport {local_port} tcp dport {port} tcp flags & rst == rst drop; }}; }}\n\
         list table inet {table}\n"
    )
}

/// While alive, the director's RSTs for one session are dropped.
pub struct RstGuard {
    child: Option<Child>,
    _table: Option<super::nftnl::OwnerTable>,
}

impl RstGuard {
    /// The netlink socket that owns the table, when the table was added over netlink.
    pub fn netlink_fd(&self) -> Option<std::os::fd::RawFd> {
        self._table.as_ref().map(|t| t.as_raw_fd())
    }

    pub fn install(
        src: IpAddr,
        local_port: u16,
        vip: IpAddr,
        port: u16,
        deadline: Instant,
    ) -> Result<RstGuard, SessionError> {
        Self::install_via(
            nft_program().as_deref(),
            src,
            local_port,
            vip,
            port,
            deadline,
        )
    }

    /// As [`RstGuard::install`], with the `nft` program to use instead of netlink given.
    pub fn install_via(
        nft: Option<&str>,
        src: IpAddr,
        local_port: u16,
        vip: IpAddr,
        port: u16,
        deadline: Instant,
    ) -> Result<RstGuard, SessionError> {
        let Some(program) = nft else {
            let table = super::nftnl::OwnerTable::install(
                &table_name(local_port),
                src,
                local_port,
                vip,
                port,
                deadline,
            )
            .map_err(|e| SessionError::Nft {
                detail: format!("nf_tables refused it: {e}"),
            })?;
            return Ok(RstGuard {
                child: None,
                _table: Some(table),
            });
        };
        Self::install_with_nft(program, src, local_port, vip, port, deadline)
    }

    fn install_with_nft(
        program: &str,
        src: IpAddr,
        local_port: u16,
        vip: IpAddr,
        port: u16,
        deadline: Instant,
    ) -> Result<RstGuard, SessionError> {
        let mut cmd = Command::new(program);
        cmd.arg("-i")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| SessionError::Nft {
            detail: format!("cannot run {program}: {e}"),
        })?;
        let mut guard_child = KillOnDrop(Some(child.id()), &mut child);
        let table = table_name(local_port);
        let text = script(&table, src, local_port, vip, port);
        if let Some(stdin) = guard_child.1.stdin.as_mut() {
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| SessionError::Nft {
                    detail: format!("cannot talk to {program}: {e}"),
                })?;
        }
        let mut out = guard_child
            .1
            .stdout
            .take()
            .ok_or_else(|| SessionError::Nft {
                detail: "nft's output is not connected".into(),
            })?;
        let listed = read_until_listing(&mut out, deadline);
        guard_child.1.stdout = Some(out);
        if !listed {
            let mut err = String::new();
            let _ = guard_child.1.kill();
            let _ = guard_child.1.wait();
            if let Some(mut e) = guard_child.1.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let first = err
                .lines()
                .next()
                .unwrap_or("no answer before the deadline");
            return Err(SessionError::Nft {
                detail: first.trim().to_string(),
            });
        }
        guard_child.0 = None;
        drop(guard_child);
        Ok(RstGuard {
            child: Some(child),
            _table: None,
        })
    }
}

/// Kills the child if installation fails half-way.
struct KillOnDrop<'a>(Option<u32>, &'a mut Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if self.0.is_some() {
            let _ = self.1.kill();
            let _ = self.1.wait();
        }
    }
}

/// Reads nft's output until the table listing ends with its closing `}` line; false on
/// EOF (nft failed) or at the deadline.
fn read_until_listing(out: &mut std::process::ChildStdout, deadline: Instant) -> bool {
    let fd = out.as_raw_fd();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let wait_ms = (deadline - now).as_millis().min(10_000) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, wait_ms.max(1)) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        if rc == 0 {
            continue;
        }
        match out.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if seen.split(|&b| b == b'\n').any(|line| line == b"}") {
            return true;
        }
    }
}

impl Drop for RstGuard {
    fn drop(&mut self) {
        // Closing nft's netlink socket (by ending the process) deletes the owner table.
        // The kernel's teardown takes a while; a thread reaps the child meanwhile.
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = child.kill();
        // Should no thread start, the child stays a zombie until we exit; the table is
        // gone either way.
        let _ = std::thread::Builder::new()
            .name("nft-reaper".into())
            .spawn(move || {
                let _ = child.wait();
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_drops_only_this_sessions_rsts() {
        let s = script(
            "vipcheck_1_40000",
            "192.0.2.1".parse().unwrap(),
            40000,
            "192.0.2.20".parse().unwrap(),
            80,
        );
        assert_eq!(
            s,
            "add table inet vipcheck_1_40000 { flags owner; chain out { type filter hook output \
             priority raw; policy accept; ip saddr 192.0.2.1 ip daddr 192.0.2.20 tcp sport 40000 \
             tcp dport 80 tcp flags & rst == rst drop; }; }\nlist table inet vipcheck_1_40000\n"
        );
        let s6 = script(
            "t",
            "2001:db8::1".parse().unwrap(),
            1,
            "2001:db8::20".parse().unwrap(),
            443,
        );
        assert!(
            s6.contains("ip6 saddr 2001:db8::1 ip6 daddr 2001:db8::20 tcp sport 1 tcp dport 443")
        );
    }
}
