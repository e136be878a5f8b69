//! Command-line definitions (clap) for every subcommand; nothing here does the work.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "vipcheck",
    version = env!("VIPCHECK_VERSION"),
    about = "Prove that LVS real servers really answer on the VIP (DR and TUN)",
    long_about = "vipcheck reads a keepalived.conf or ldirectord.cf, adds a check to every \
        direct-routing and tunnelling real server that proves the real server answers on the \
        VIP itself, and runs that check (`vipcheck probe`) when the daemon calls it."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Rewrite(RewriteArgs),
    Probe(ProbeArgs),
    Appcheck(crate::probe::session::command::AppCheckCommand),
    Watch(WatchArgs),
    Status(StatusArgs),
    /// Print shell completions for SHELL to standard output.
    #[command(
        after_help = "Example:\n  vipcheck completions bash > /etc/bash_completion.d/vipcheck"
    )]
    Completions {
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output, or write every page to a directory.
    #[command(after_help = "Examples:\n  vipcheck man | man -l -\n  \
        vipcheck man --dir /usr/local/share/man/man1")]
    Man {
        /// Write one page per subcommand into DIR (vipcheck.1, vipcheck-probe.1, ...).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Keepalived,
    Ldirectord,
}

/// Options shared by every command that reads a config and generates checks.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// The config's language, when its file name does not tell.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// VIPs for a fwmark service, e.g. `--fwmark-vip 5=192.0.2.20` (repeatable).
    #[arg(long = "fwmark-vip", value_name = "MARK=IP")]
    pub fwmark_vip: Vec<String>,
    /// The vipcheck binary the generated checks run (default: this executable).
    #[arg(long, value_name = "PATH")]
    pub probe_path: Option<PathBuf>,
    /// The probe's own timeout; the daemon's check timeout is set above it.
    #[arg(long, default_value = "2s", value_name = "DUR")]
    pub probe_timeout: String,
    /// A directory whose templates replace the embedded ones of the same name.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// keepalived's config id (`-i`): which `@id` lines apply to this node
    /// (default: the host name up to its first dot).
    #[arg(long, value_name = "ID")]
    pub config_id: Option<String>,
    /// Also run the application check through the VIP on each real server: keepalived's
    /// own HTTP_GET / SSL_GET (its first url), ldirectord's negotiate http/https check
    /// (request, receive, virtualhost), instead of only on the real server's own address.
    #[arg(long)]
    pub app_check: bool,
}

/// Add a VIP check to every DR/TUN real server of a config; show the diff or write it.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    vipcheck rewrite --dry-run /etc/keepalived/keepalived.conf\n  \
    vipcheck rewrite /etc/keepalived/keepalived.conf --in-place --backup\n  \
    vipcheck rewrite /etc/ha.d/ldirectord.cf -o /etc/ha.d/ldirectord.vip.cf\n\n\
    With --dry-run the exit status is 1 when changes are pending and 0 when none, like diff.")]
pub struct RewriteArgs {
    /// The keepalived.conf or ldirectord.cf to read (includes are followed).
    pub config: PathBuf,
    /// Print a unified diff of what would change; write nothing.
    #[arg(long, conflicts_with_all = ["in_place", "output"])]
    pub dry_run: bool,
    /// Rewrite the config (and the included files that change) in place.
    #[arg(long, conflicts_with = "output")]
    pub in_place: bool,
    /// With --in-place: keep each changed file's previous text as FILE.bak.
    #[arg(long, requires = "in_place")]
    pub backup: bool,
    /// Write the result here: a file, or a directory for a config with includes.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Colour the diff: auto (on a terminal), always, never.
    #[arg(long, default_value = "auto", value_name = "WHEN")]
    pub color: ColorWhen,
    #[command(flatten)]
    pub generate: GenerateArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtoArg {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    Dr,
    Tun,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckArg {
    Icmp,
    Tcp,
    /// Only whether the real server answers ARP / neighbour solicitation for the VIP.
    Arp,
    All,
    /// ICMP and ARP, then an HTTP/1.1 GET through the VIP on this real server.
    Http,
    /// As http, over TLS.
    Https,
    /// ICMP and ARP, then a complete TCP handshake through the VIP (and a reset).
    TcpSession,
}

/// Check that one real server answers on the VIP (what keepalived/ldirectord run).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    vipcheck probe --vip 192.0.2.20 --rip 192.0.2.11 --port 80\n  \
    vipcheck probe --method tun --vip 2001:db8::20 --rip 2001:db8::11 --check icmp --json\n  \
    vipcheck probe --method dr 192.0.2.20 80 192.0.2.11 80   (ldirectord's VIP VPORT RIP RPORT)\n  \
    vipcheck probe --vip 192.0.2.20 --rip 192.0.2.11 --port 80 --check http --http-path /health --expect-body OK\n\n\
    Exit status: 0 = up, 1 = down (any reason, including errors). Never 2..255.")]
pub struct ProbeArgs {
    /// The virtual IP (repeatable: every VIP must answer).
    #[arg(long = "vip", value_name = "VIP")]
    pub vips: Vec<IpAddr>,
    /// The real server's own address.
    #[arg(long, value_name = "RIP")]
    pub rip: Option<IpAddr>,
    /// The service port (for the TCP check).
    #[arg(long)]
    pub port: Option<u16>,
    /// The service's protocol: a UDP service gets the ICMP check only.
    #[arg(long, value_enum, default_value = "tcp")]
    pub proto: ProtoArg,
    /// How IPVS forwards to the real server: dr (frame to its MAC) or tun (IPIP to it).
    #[arg(long, value_enum, default_value = "dr")]
    pub method: MethodArg,
    /// Which checks: icmp, tcp, arp, or all (icmp; tcp for a TCP service with a port;
    /// arp: the real server must not answer ARP / neighbour solicitation for the VIP).
    #[arg(long, value_enum, default_value = "all")]
    pub check: CheckArg,
    /// A real server that answers ARP for the VIP is a warning, not down (for setups
    /// that route VIP traffic to the real servers on purpose).
    #[arg(long)]
    pub allow_arp_answer: bool,
    /// Options of the application checks (`--check http|https|tcp-session`).
    #[command(flatten)]
    pub app: crate::probe::session::args::AppCheckArgs,
    /// The whole probe's time budget, retries included (e.g. 500ms, 2s).
    #[arg(long, default_value = "2s", value_name = "DUR")]
    pub timeout: String,
    /// Extra attempts, each with a fresh identifier, within the timeout.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// The egress interface (default: the one the kernel routes the real server through).
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
    /// Print the verdict as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// ldirectord's convention: VIP VPORT RIP RPORT appended to the command (IPv6 may be in
    /// brackets). A fwmark number as VIP needs the VIPs from --vip; the TCP port is
    /// --port, else VPORT, else RPORT.
    #[arg(value_name = "VIP VPORT RIP RPORT", num_args = 0..=4)]
    pub positional: Vec<String>,
}

/// Probe every DR/TUN real server of a config at once and show which really serve the VIP.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    vipcheck status /etc/keepalived/keepalived.conf\n  \
    vipcheck status /etc/ha.d/ldirectord.cf --json\n  \
    vipcheck status keepalived.conf --prometheus > /var/lib/node_exporter/textfile/vipcheck.prom\n\n\
    Exit status: 0 when every pair is up, 1 otherwise, 2 when the config cannot be read.")]
pub struct StatusArgs {
    /// The keepalived.conf or ldirectord.cf to read (includes are followed).
    pub config: PathBuf,
    /// At most this many probes in flight.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub parallel: usize,
    /// Each probe's time budget.
    #[arg(long, default_value = "1s", value_name = "DUR")]
    pub timeout: String,
    /// One JSON array, an object per pair.
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,
    /// Metrics for node_exporter's textfile collector.
    #[arg(long)]
    pub prometheus: bool,
    /// Colour the table: auto (on a terminal), always, never.
    #[arg(long, default_value = "auto", value_name = "WHEN")]
    pub color: ColorWhen,
    /// A real server that answers ARP for the VIP is a warning, not down.
    #[arg(long)]
    pub allow_arp_answer: bool,
    #[command(flatten)]
    pub generate: GenerateArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReloadArg {
    Auto,
    Keepalived,
    Ldirectord,
    None,
}

/// Watch a config, regenerate the checks on every change, validate, reload the daemon.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    vipcheck watch /etc/keepalived/keepalived.conf --in-place --reload keepalived\n  \
    vipcheck watch /etc/ha.d/ldirectord.src.cf -o /etc/ha.d/ldirectord.cf --reload ldirectord")]
pub struct WatchArgs {
    /// The config to watch (its includes are watched too).
    pub config: PathBuf,
    /// Write the generated config here (a file, or a directory for a config with includes).
    #[arg(short, long, value_name = "OUT", required_unless_present = "in_place")]
    pub output: Option<PathBuf>,
    /// Rewrite the watched files themselves (own writes are not acted on).
    #[arg(long, conflicts_with = "output")]
    pub in_place: bool,
    #[arg(long, value_enum, default_value = "auto")]
    pub reload: ReloadArg,
    /// Run this command (through /bin/sh) to reload instead.
    #[arg(long, value_name = "CMD")]
    pub reload_command: Option<String>,
    /// keepalived's pidfile.
    #[arg(long, value_name = "PATH")]
    pub pidfile: Option<PathBuf>,
    /// Wait this long after the last change before acting.
    #[arg(long, default_value = "100ms", value_name = "DUR")]
    pub debounce: String,
    /// One regeneration pass, then exit.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub generate: GenerateArgs,
}

/// Parses a duration as written on the command line: `250ms`, `2s`, `1.5s`, `1m`, or a
/// bare number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * scale < 86_400.0 => {
            Ok(std::time::Duration::from_secs_f64(v * scale))
        }
        _ => Err(format!(
            "'{text}' is not a duration (examples: 500ms, 2s, 1.5s)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
