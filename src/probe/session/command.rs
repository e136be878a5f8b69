//! `vipcheck appcheck`: the application check with its path given explicitly (interface,
//! source address, next-hop MAC). The prober's route and neighbour lookups fill the same
//! [`NetPath`] for `vipcheck probe --check http|https|tcp-session`; this command is for
//! trying a real server by hand, for scripts and for the benchmark.

use std::net::IpAddr;
use std::time::Instant;

use clap::Args;

use super::args::{AppCheckArgs, AppCheckKind};
use super::{run, Outcome, Target};
use crate::cli::{parse_duration, MethodArg};
use crate::config::ForwardingMethod;
use crate::net::NetPath;
use crate::wire::MacAddr;

/// Check that the application answers through the VIP on one real server.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    vipcheck appcheck --iface eth0 --src 192.0.2.1 --next-hop-mac 02:00:5e:00:00:11 \\\n    \
      --vip 192.0.2.20 --rip 192.0.2.11 --port 80 --check http --expect-body OK\n  \
    vipcheck appcheck --iface eth0 --src 2001:db8::1 --next-hop-mac 02:00:5e:00:00:11 \\\n    \
      --vip 2001:db8::20 --rip 2001:db8::11 --port 443 --check https --sni www.example.com\n\n\
    Exit status: 0 = up, 1 = down (any reason, including errors).")]
pub struct AppCheckCommand {
    /// The interface the real server (DR) or the next hop towards it (TUN) is on.
    #[arg(long, value_name = "IF")]
    pub iface: String,
    /// The director's address on that interface: the session's source.
    #[arg(long, value_name = "IP")]
    pub src: IpAddr,
    /// The real server's MAC (DR) or the next hop's (TUN), e.g. 02:00:5e:00:00:11.
    #[arg(long, value_name = "MAC")]
    pub next_hop_mac: String,
    /// TUN: the tunnel's outer source when the RIP's family differs from the VIP's.
    #[arg(long, value_name = "IP")]
    pub tunnel_src: Option<IpAddr>,
    #[arg(long, value_name = "VIP")]
    pub vip: IpAddr,
    /// The real server's own address (the tunnel's end for TUN).
    #[arg(long, value_name = "RIP")]
    pub rip: IpAddr,
    #[arg(long)]
    pub port: u16,
    #[arg(long, value_enum, default_value = "dr")]
    pub method: MethodArg,
    #[arg(long, value_enum, default_value = "http")]
    pub check: AppCheckKind,
    /// The whole check's time budget (e.g. 500ms, 2s).
    #[arg(long, default_value = "2s", value_name = "DUR")]
    pub timeout: String,
    /// Print the verdict as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub app: AppCheckArgs,
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
pub fn session_path(cmd: &AppCheckCommand) -> Result<(NetPath, Target), String> {
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
        method: match cmd.method {
            MethodArg::Dr => ForwardingMethod::DirectRouting,
            MethodArg::Tun => ForwardingMethod::Tunnel,
        },
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
pub fn run_cli(cmd: AppCheckCommand) -> i32 {
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
