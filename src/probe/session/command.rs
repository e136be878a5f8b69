//! `vipcheck appcheck`: the application check with its path given explicitly (interface,
//! source address, next-hop MAC). The prober's route and neighbour lookups fill the same
//! [`NetPath`] for `vipcheck probe --check http|https|tcp-session`; this command is for
//! trying a real server by hand, for scripts and for the benchmark.

use std::net::IpAddr;
use std::time::Instant;

use super::options::{AppCheckKind, AppCheckOptions};
use super::{run, Outcome, Target};
use crate::config::{ForwardingMethod, Tunnel};
use crate::duration::parse_duration;
use crate::net::NetPath;
use crate::wire::MacAddr;

/// What `vipcheck appcheck` was asked, as plain values (the command line converts into
/// this). Texts are kept as given and checked by [`run_cli`], so every mistake is a
/// "down" (exit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCheckInputs {
    /// The interface the real server (DR) or the next hop towards it (TUN) is on.
    pub iface: String,
    /// The director's address on that interface: the session's source.
    pub src: IpAddr,
    /// The real server's MAC (DR) or the next hop's (TUN), e.g. 02:00:5e:00:00:11.
    pub next_hop_mac: String,
    /// TUN: the tunnel's outer source when the RIP's family differs from the VIP's.
    pub tunnel_src: Option<IpAddr>,
    pub vip: IpAddr,
    /// The real server's own address (the tunnel's end for TUN).
    pub rip: IpAddr,
    pub port: u16,
    pub method: ForwardingMethod,
    pub check: AppCheckKind,
    /// The whole check's time budget, as written (e.g. 500ms, 2s).
    pub timeout: String,
    /// Print the verdict as one JSON object.
    pub json: bool,
    pub app: AppCheckOptions,
    /// TUN: the encapsulation (`--tun-type`, `--tun-port`, `--tun-csum`).
    pub tunnel: Tunnel,
}

/// Parses `02:00:5e:00:00:11` (or with `-`).
pub fn parse_mac(text: &str) -> Result<MacAddr, String> {
    text.parse()
}

fn sysfs(iface: &str, file: &str) -> Result<String, String> {
    if iface.is_empty() || iface.contains('/') || iface.starts_with('.') {
        return Err(format!("'{iface}' is not an interface name"));
    }
    std::fs::read_to_string(format!("/sys/class/net/{iface}/{file}"))
        .map(|s| s.trim().to_string())
        .map_err(|e| {
            format!("cannot read interface {iface}'s {file}: {e} (hint: `ip link` lists the interfaces)")
        })
}

/// Builds the path and the target from the command line and the interface's sysfs
/// entries.
pub fn session_path(cmd: &AppCheckInputs) -> Result<(NetPath, Target), String> {
    let ifindex = sysfs(&cmd.iface, "ifindex")?
        .parse::<u32>()
        .map_err(|_| format!("interface {} has no usable index", cmd.iface))?;
    let mtu = sysfs(&cmd.iface, "mtu")?.parse::<usize>().unwrap_or(1500);
    let our_mac = parse_mac(&sysfs(&cmd.iface, "address")?)
        .map_err(|_| format!("interface {} has no Ethernet address", cmd.iface))?;
    let path = NetPath {
        iface: cmd.iface.clone(),
        ifindex,
        our_mac,
        src: cmd.tunnel_src.unwrap_or(cmd.src),
        rip: cmd.rip,
        next_hop_mac: parse_mac(&cmd.next_hop_mac).map_err(|e| format!("--next-hop-mac: {e}"))?,
        method: cmd.method,
        encap: cmd.tunnel,
    };
    let target = Target {
        vip: cmd.vip,
        src: cmd.src,
        port: cmd.port,
        mtu,
    };
    Ok((path, target))
}

fn json(outcome: &Outcome) -> String {
    serde_json::json!({
        "up": outcome.is_up(),
        "reason": outcome.reason.to_string(),
        "elapsed_ms": outcome.elapsed.as_secs_f64() * 1000.0,
        "connect_ms": outcome.connect_time.map(|d| d.as_secs_f64() * 1000.0),
        "status": outcome.status,
        "body_len": outcome.body_len,
        "digest": outcome.digest,
    })
    .to_string()
}

/// Runs the command; 0 = up, 1 = down or error (never 2..255, like `probe`).
pub fn run_cli(cmd: AppCheckInputs) -> i32 {
    let start = Instant::now();
    let prepared = (|| {
        let timeout = parse_duration(&cmd.timeout).map_err(|e| format!("--timeout: {e}"))?;
        let check = cmd.app.to_check(cmd.check)?;
        let (path, target) = session_path(&cmd)?;
        Ok::<_, String>((timeout, check, path, target))
    })();
    let (timeout, check, path, target) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("vipcheck appcheck: {e}");
            return 1;
        }
    };
    match run(&path, &target, &check, start + timeout) {
        Ok(outcome) => {
            if cmd.json {
                println!("{}", json(&outcome));
            } else {
                println!(
                    "{} {}:{} via {}: {outcome}",
                    path.rip, target.vip, target.port, path.iface
                );
            }
            i32::from(!outcome.is_up())
        }
        Err(e) => {
            eprintln!("vipcheck appcheck: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        let mac = MacAddr([2, 0, 0x5e, 0, 0, 0x11]);
        assert_eq!(parse_mac("02:00:5e:00:00:11"), Ok(mac));
        assert_eq!(parse_mac("02-00-5E-00-00-11"), Ok(mac));
        assert!(parse_mac("02:00:5e:00:00").is_err());
        assert!(parse_mac("02:00:5e:00:00:1").is_err());
        assert!(parse_mac("zz:00:5e:00:00:11").is_err());
    }

    #[test]
    fn interface_names_cannot_escape_sysfs() {
        assert!(sysfs("../../etc", "address").is_err());
        assert!(sysfs("", "address").is_err());
    }
}
