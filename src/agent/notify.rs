//! systemd's notification protocol (`sd_notify`), written out: one datagram of
//! `KEY=VALUE` lines to the socket in `$NOTIFY_SOCKET` (a path, or `@name` for the
//! abstract namespace). `READY=1` once the first pass is done, `WATCHDOG=1` from the
//! scheduler's loop (so a stuck scheduler is restarted), `STATUS=` for `systemctl status`.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go, when the service manager asked for them.
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; `None` when it is unset (not run by systemd) or unusable.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).to_vec();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name).ok()?
            }
            None => SocketAddr::from_pathname(std::path::Path::new(&path)).ok()?,
        };
        let sock = UnixDatagram::unbound().ok()?;
        Some(Notifier { sock, addr })
    }

    /// Sends one notification (`READY=1`, `STATUS=...`); errors are ignored, as
    /// sd_notify's callers do.
    pub fn send(&self, state: &str) {
        let _ = self.sock.send_to_addr(state.as_bytes(), &self.addr);
    }
}

/// How often systemd wants `WATCHDOG=1` (`$WATCHDOG_USEC`, for this process), if at all:
/// half the timeout, as sd_watchdog_enabled's callers are told.
pub fn watchdog_period() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_arrives_as_one_datagram_on_the_socket() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            sock: UnixDatagram::unbound().unwrap(),
            addr: SocketAddr::from_pathname(&path).unwrap(),
        };
        n.send("READY=1\nSTATUS=3 pairs");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=3 pairs");
    }
}
