//! Command-line definitions (clap) for every subcommand, and their conversion into the
//! types of the modules that do the work ([`crate::probe::request::ProbeInputs`],
//! [`crate::rewrite::command::RewriteInputs`], [`crate::watch::WatchInputs`],
//! [`crate::status::StatusInputs`], ...). Nothing below this module imports it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::agent::hysteresis::Thresholds;
use crate::agent::{AgentInputs, Settings as AgentSettings};
use crate::config::{Format, ForwardingMethod, Protocol, Tunnel, TunnelChecksum, TunnelType};
use crate::duration::{parse_duration, parse_duration_or_zero};
use crate::probe::request::{CheckSelection, ProbeInputs, DEFAULT_RETRIES};
use crate::probe::session::command::AppCheckInputs;
use crate::probe::session::{AppCheckKind, AppCheckOptions};
use crate::probe::udp::{UdpCheckKind, UdpCheckOptions};
use crate::rewrite::command::{ColorChoice, FeedChoice, GenerateInputs, RewriteInputs};
use crate::status::StatusInputs;
use crate::watch::{ReloadChoice, WatchInputs};

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
    Appcheck(AppCheckCommandArgs),
    Watch(WatchArgs),
    Status(StatusArgs),
    Agent(AgentArgs),
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
    /// The probe's own timeout (1ms to 1h); the daemon's check timeout is set above it.
    #[arg(long, default_value = "2s", value_name = "DUR", value_parser = parse_duration)]
    pub probe_timeout: Duration,
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
    /// What the generated checks read: `probe` runs `vipcheck probe` per check (keepalived
    /// MISC_CHECK); `agent` reads the verdict files of `vipcheck agent` (keepalived
    /// FILE_CHECK on a track_file; the ldirectord wrapper reads the file). `vipcheck
    /// agent` always generates `agent`.
    #[arg(long, value_enum, default_value = "probe")]
    pub feed: FeedArg,
    /// The directory of the agent's verdict files (default /run/vipcheck): where
    /// `vipcheck agent` writes them, and what `--feed agent` checks read.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FeedArg {
    Probe,
    Agent,
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
    /// NAT (masq): no VIP on the real server; only a UDP service's own check (--proto udp
    /// --check dns|udp), sent to the real server's own address and port (RPORT).
    Nat,
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
    /// A UDP service: a DNS query through the VIP (with ICMP and ARP).
    Dns,
    /// A UDP service: a datagram through the VIP, keepalived's UDP_CHECK (with ICMP and ARP).
    Udp,
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
    /// The service's protocol: a UDP service gets --check dns|udp, or under all a DNS
    /// query on port 53 and ICMP only on other ports.
    #[arg(long, value_enum, default_value = "tcp")]
    pub proto: ProtoArg,
    /// How IPVS forwards to the real server: dr (frame to its MAC) or tun (IPIP to it);
    /// nat only with --proto udp --check dns|udp (to the real server's own address).
    #[arg(long, value_enum, default_value = "dr")]
    pub method: MethodArg,
    /// Which checks: icmp, tcp, arp, or all (icmp; tcp for a TCP service with a port;
    /// dns for a UDP service on port 53; arp: the real server must not answer ARP /
    /// neighbour solicitation for the VIP).
    #[arg(long, value_enum, default_value = "all")]
    pub check: CheckArg,
    /// A real server that answers ARP for the VIP is a warning, not down (for setups
    /// that route VIP traffic to the real servers on purpose).
    #[arg(long)]
    pub allow_arp_answer: bool,
    /// Options of the application checks (`--check http|https|tcp-session`).
    #[command(flatten)]
    pub app: AppCheckArgs,
    /// The whole probe's time budget, retries included (1ms to 1h, e.g. 500ms, 2s).
    #[arg(long, default_value = crate::probe::request::DEFAULT_TIMEOUT, value_name = "DUR")]
    pub timeout: String,
    /// Extra attempts, each with a fresh identifier, within the timeout.
    #[arg(long, default_value_t = DEFAULT_RETRIES)]
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
    #[command(flatten)]
    pub tunnel: TunnelArgs,
    /// Options of the UDP service checks (`--check dns|udp`).
    #[command(flatten)]
    pub udp: UdpCheckArgs,
}

/// TUN: how IPVS encapsulates to the real server (keepalived `lvs_method TUN type ...`).
#[derive(Debug, Clone, Args)]
pub struct TunnelArgs {
    /// TUN: the tunnel type: ipip (IPVS's default), gue (UDP to --tun-port) or gre.
    #[arg(long, value_enum, default_value = "ipip", value_name = "TYPE")]
    pub tun_type: TunTypeArg,
    /// TUN: the real server's GUE port (needed with, and only read for, --tun-type gue).
    #[arg(
        long,
        value_name = "PORT",
        required_if_eq("tun_type", "gue"),
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub tun_port: Option<u16>,
    /// TUN: the checksum option: none, csum (GUE's UDP or GRE's checksum) or remcsum (GUE).
    #[arg(long, value_enum, default_value = "none", value_name = "CSUM")]
    pub tun_csum: TunCsumArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TunTypeArg {
    Ipip,
    Gue,
    Gre,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TunCsumArg {
    None,
    Csum,
    Remcsum,
}

impl From<TunnelArgs> for Tunnel {
    /// A port with another type than gue is not read (GUE alone has one); a GUE port of 0
    /// is refused by the request.
    fn from(a: TunnelArgs) -> Tunnel {
        Tunnel {
            kind: match a.tun_type {
                TunTypeArg::Ipip => TunnelType::Ipip,
                TunTypeArg::Gue => TunnelType::Gue {
                    port: a.tun_port.unwrap_or(0),
                },
                TunTypeArg::Gre => TunnelType::Gre,
            },
            csum: match a.tun_csum {
                TunCsumArg::None => TunnelChecksum::None,
                TunCsumArg::Csum => TunnelChecksum::Csum,
                TunCsumArg::Remcsum => TunnelChecksum::Remcsum,
            },
        }
    }
}

/// Options of `--check dns|udp` (a UDP service).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct UdpCheckArgs {
    /// The name the DNS query asks for (default `.`, as keepalived's DNS_CHECK).
    #[arg(long, value_name = "NAME")]
    pub dns_name: Option<String>,
    /// The record type to ask for: A, AAAA, NS, SOA, MX, TXT, ... (default SOA).
    #[arg(long, value_name = "TYPE")]
    pub dns_type: Option<String>,
    /// The answer the reply must hold (an address for A/AAAA, a name, ...).
    #[arg(long, value_name = "TEXT")]
    pub dns_expect: Option<String>,
    /// The datagram's payload in hex (default: empty).
    #[arg(long, value_name = "HEX")]
    pub udp_payload: Option<String>,
    /// Require a reply of MIN-MAX bytes (keepalived's require_reply); without it, no
    /// ICMP error while the VIP answers echo is enough.
    #[arg(long, value_name = "MIN-MAX")]
    pub udp_expect_len: Option<String>,
}

/// Probe every DR/TUN real server of a config at once and show which really serve the VIP.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    vipcheck status /etc/keepalived/keepalived.conf\n  \
    vipcheck status /etc/ha.d/ldirectord.cf --json\n  \
    vipcheck status keepalived.conf --prometheus > /var/lib/node_exporter/textfile/vipcheck.prom\n  \
    vipcheck status --ipvs --fwmark-vip 5=192.0.2.30\n  \
    vipcheck status /etc/keepalived/keepalived.conf --ipvs\n\n\
    Exit status: 0 when every pair is up, 1 otherwise, 2 when the config cannot be read\n\
    (with --ipvs: also when the kernel has no IPVS or it cannot be read).")]
pub struct StatusArgs {
    /// The keepalived.conf or ldirectord.cf to read (includes are followed); optional
    /// with --ipvs or --agent.
    #[arg(required_unless_present_any = ["ipvs", "agent"])]
    pub config: Option<PathBuf>,
    /// At most this many probes in flight (1 or more).
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = parallel_arg)]
    pub parallel: usize,
    /// Each probe's time budget (1ms to 1h).
    #[arg(long, default_value = "1s", value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Duration,
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
    /// Audit the kernel's IPVS table: probe every DR/TUN destination on its VIP; with a
    /// CONFIG, also report how the table and the config differ.
    #[arg(long)]
    pub ipvs: bool,
    /// Show what the running `vipcheck agent` listening on ADDR:PORT sees (its /status)
    /// instead of probing.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "ipvs")]
    pub agent: Option<String>,
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
    /// Wait this long after the last change before acting (1ms to 1h).
    #[arg(long, default_value = "100ms", value_name = "DUR", value_parser = parse_duration)]
    pub debounce: Duration,
    /// One regeneration pass, then exit.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub generate: GenerateArgs,
}

/// Probe every DR/TUN pair continuously and write each verdict to a file for keepalived
/// (`track_file`) or ldirectord; follow the config like `watch`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    vipcheck agent /etc/keepalived/keepalived.conf\n  \
    vipcheck agent /etc/keepalived/keepalived.conf --in-place --reload keepalived --fall 3\n  \
    vipcheck agent /etc/ha.d/ldirectord.cf --state-dir /run/vipcheck --depool-threshold 0.5\n\n\
    Each pair's file STATE_DIR/PROTO_VIP_PORT_RIP holds 0 (up) or 1 (down). \
    GET /metrics and /status on --listen.\n  \
    vipcheck agent --ipvs --interval 2s --fwmark-vip 5=192.0.2.30   (pairs from the kernel's IPVS table)")]
pub struct AgentArgs {
    /// The keepalived.conf or ldirectord.cf to read (includes are followed and watched).
    #[arg(required_unless_present = "ipvs")]
    pub config: Option<PathBuf>,
    /// Take the pairs from the kernel's IPVS table instead of a config (every DR/TUN
    /// destination on its service's VIP), re-read every 2 s; the default interval is 5 s.
    #[arg(long, conflicts_with_all = ["config", "output", "in_place"])]
    pub ipvs: bool,
    /// Probe every pair this often (default: its service's delay_loop / checkinterval).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Successes in a row that bring a down pair back (keepalived: the first success).
    #[arg(long, default_value_t = crate::agent::hysteresis::DEFAULT_RISE, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rise: u32,
    /// Failures in a row that take an up pair down (keepalived's retry 1: two).
    #[arg(long, default_value_t = crate::agent::hysteresis::DEFAULT_FALL, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub fall: u32,
    /// After a failure that has not taken a pair down yet, probe it again this soon (at
    /// most its interval; keepalived's delay_before_retry).
    #[arg(long, default_value = "1s", value_name = "DUR", value_parser = parse_duration)]
    pub retry_delay: Duration,
    /// After a turn that found every port of a real server up, ask it the ARP-problem
    /// question again only once the last answer is this old (0: on every turn).
    #[arg(long, default_value = "5s", value_name = "DUR", value_parser = parse_duration_or_zero)]
    pub arp_reask: Duration,
    /// Never report more than 1-F of a service's pairs down (0: off; PyBal uses 0.5).
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    pub depool_threshold: f64,
    /// Serve /metrics and /status here.
    #[arg(long, default_value = crate::agent::DEFAULT_LISTEN, value_name = "ADDR:PORT")]
    pub listen: String,
    /// Each probe's time budget (default 1s, at most the shortest interval).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// At most this many rounds in flight (a round probes one real server's ports).
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = parallel_arg)]
    pub parallel: usize,
    /// A real server that answers ARP for the VIP is a warning, not down.
    #[arg(long)]
    pub allow_arp_answer: bool,
    /// Also write the generated config here, as `watch -o` does.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Also rewrite the config in place, as `watch --in-place` does.
    #[arg(long, conflicts_with = "output")]
    pub in_place: bool,
    /// The daemon to reload when the rewrite changes (with -o or --in-place).
    #[arg(long, value_enum, default_value = "auto")]
    pub reload: ReloadArg,
    /// Run this command (through /bin/sh) to reload instead.
    #[arg(long, value_name = "CMD")]
    pub reload_command: Option<String>,
    /// keepalived's pidfile.
    #[arg(long, value_name = "PATH")]
    pub pidfile: Option<PathBuf>,
    /// Wait this long after the last change to the config before acting (1ms to 1h).
    #[arg(long, default_value = "100ms", value_name = "DUR", value_parser = parse_duration)]
    pub debounce: Duration,
    #[command(flatten)]
    pub generate: GenerateArgs,
}

impl From<AgentArgs> for AgentInputs {
    fn from(a: AgentArgs) -> AgentInputs {
        // One --state-dir (the shared generate option): where the agent writes its
        // verdicts is where the checks of its own rewrite (-o / --in-place) read them, so
        // that rewrite is always --feed agent.
        let mut generate: GenerateInputs = a.generate.into();
        generate.feed = FeedChoice::Agent;
        let state_dir = generate
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::rewrite::DEFAULT_STATE_DIR));
        generate.state_dir = Some(state_dir.clone());
        AgentInputs {
            ipvs: a.ipvs,
            watch: WatchInputs {
                config: a.config.unwrap_or_default(),
                output: a.output,
                in_place: a.in_place,
                reload: a.reload.into(),
                reload_command: a.reload_command,
                pidfile: a.pidfile,
                debounce: a.debounce,
                once: false,
                generate,
            },
            state_dir,
            listen: a.listen,
            settings: AgentSettings {
                interval: a.interval,
                thresholds: Thresholds {
                    rise: a.rise,
                    fall: a.fall,
                },
                depool_threshold: a.depool_threshold,
                timeout: a.timeout,
                parallel: a.parallel,
                allow_arp_answer: a.allow_arp_answer,
                retry_delay: a.retry_delay,
                arp_reask: a.arp_reask,
            },
        }
    }
}

/// `--parallel`: how many probes at once, at least one (0 would probe nothing and report
/// nothing useful).
pub fn parallel_arg(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a number of probes of 1 or more")),
    }
}

/// Check that the application answers through the VIP on one real server.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    vipcheck appcheck --iface eth0 --src 192.0.2.1 --next-hop-mac 02:00:5e:00:00:11 \\\n    \
      --vip 192.0.2.20 --rip 192.0.2.11 --port 80 --check http --expect-body OK\n  \
    vipcheck appcheck --iface eth0 --src 2001:db8::1 --next-hop-mac 02:00:5e:00:00:11 \\\n    \
      --vip 2001:db8::20 --rip 2001:db8::11 --port 443 --check https --sni www.example.com\n\n\
    Exit status: 0 = up, 1 = down (any reason, including errors).")]
pub struct AppCheckCommandArgs {
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
    pub check: AppCheckKindArg,
    /// The whole check's time budget (e.g. 500ms, 2s).
    #[arg(long, default_value = "2s", value_name = "DUR")]
    pub timeout: String,
    /// Print the verdict as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub app: AppCheckArgs,
    #[command(flatten)]
    pub tunnel: TunnelArgs,
}

/// Which application check `--check` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AppCheckKindArg {
    /// HTTP/1.1 GET through the VIP.
    Http,
    /// HTTP/1.1 GET over TLS through the VIP.
    Https,
    /// A complete TCP handshake through the VIP, then a reset.
    TcpSession,
}

/// Options of `--check http|https|tcp-session`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct AppCheckArgs {
    /// The path to GET.
    #[arg(long, default_value = "/", value_name = "PATH")]
    pub http_path: String,
    /// The Host header (default: the VIP, with the port when not 80/443).
    #[arg(long, value_name = "HOST")]
    pub http_host: Option<String>,
    /// Acceptable status codes: a code or a range.
    #[arg(long, default_value = "200-299", value_name = "RANGE")]
    pub expect_status: String,
    /// Text the body must contain.
    #[arg(long, value_name = "TEXT")]
    pub expect_body: Option<String>,
    /// MD5 of the body (hex), like keepalived's HTTP_GET `digest`.
    #[arg(long, value_name = "MD5")]
    pub expect_digest: Option<String>,
    /// TLS server name to send (default: the --http-host name, else none: the VIP).
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// Verify the server's certificate chain and name (off: health checks often meet
    /// internal certificates).
    #[arg(long)]
    pub tls_verify: bool,
    /// CA bundle for --tls-verify (default: /etc/ssl/certs/ca-certificates.crt).
    #[arg(long, value_name = "FILE", requires = "tls_verify")]
    pub tls_ca: Option<PathBuf>,
}

// From the command line's arguments to the modules' own types.

impl From<FormatArg> for Format {
    fn from(arg: FormatArg) -> Format {
        match arg {
            FormatArg::Keepalived => Format::Keepalived,
            FormatArg::Ldirectord => Format::Ldirectord,
        }
    }
}

impl From<ColorWhen> for ColorChoice {
    fn from(arg: ColorWhen) -> ColorChoice {
        match arg {
            ColorWhen::Auto => ColorChoice::Auto,
            ColorWhen::Always => ColorChoice::Always,
            ColorWhen::Never => ColorChoice::Never,
        }
    }
}

impl From<ProtoArg> for Protocol {
    fn from(arg: ProtoArg) -> Protocol {
        match arg {
            ProtoArg::Tcp => Protocol::Tcp,
            ProtoArg::Udp => Protocol::Udp,
        }
    }
}

impl From<MethodArg> for ForwardingMethod {
    fn from(arg: MethodArg) -> ForwardingMethod {
        match arg {
            MethodArg::Dr => ForwardingMethod::DirectRouting,
            MethodArg::Tun => ForwardingMethod::Tunnel,
            MethodArg::Nat => ForwardingMethod::Nat,
        }
    }
}

impl From<AppCheckKindArg> for AppCheckKind {
    fn from(arg: AppCheckKindArg) -> AppCheckKind {
        match arg {
            AppCheckKindArg::Http => AppCheckKind::Http,
            AppCheckKindArg::Https => AppCheckKind::Https,
            AppCheckKindArg::TcpSession => AppCheckKind::TcpSession,
        }
    }
}

impl From<CheckArg> for CheckSelection {
    fn from(arg: CheckArg) -> CheckSelection {
        match arg {
            CheckArg::Icmp => CheckSelection::Icmp,
            CheckArg::Tcp => CheckSelection::Tcp,
            CheckArg::Arp => CheckSelection::Arp,
            CheckArg::All => CheckSelection::All,
            CheckArg::Http => CheckSelection::App(AppCheckKind::Http),
            CheckArg::Https => CheckSelection::App(AppCheckKind::Https),
            CheckArg::TcpSession => CheckSelection::App(AppCheckKind::TcpSession),
            CheckArg::Dns => CheckSelection::Udp(UdpCheckKind::Dns),
            CheckArg::Udp => CheckSelection::Udp(UdpCheckKind::Datagram),
        }
    }
}

impl From<AppCheckArgs> for AppCheckOptions {
    fn from(a: AppCheckArgs) -> AppCheckOptions {
        AppCheckOptions {
            http_path: a.http_path,
            http_host: a.http_host,
            expect_status: a.expect_status,
            expect_body: a.expect_body,
            expect_digest: a.expect_digest,
            sni: a.sni,
            tls_verify: a.tls_verify,
            tls_ca: a.tls_ca,
        }
    }
}

impl From<ProbeArgs> for ProbeInputs {
    fn from(a: ProbeArgs) -> ProbeInputs {
        ProbeInputs {
            vips: a.vips,
            rip: a.rip,
            port: a.port,
            proto: a.proto.into(),
            method: a.method.into(),
            check: a.check.into(),
            allow_arp_answer: a.allow_arp_answer,
            app: a.app.into(),
            timeout: a.timeout,
            retries: a.retries,
            iface: a.iface,
            json: a.json,
            positional: a.positional,
            tunnel: a.tunnel.into(),
            udp: UdpCheckOptions {
                kind: None,
                dns_name: a.udp.dns_name,
                dns_type: a.udp.dns_type,
                dns_expect: a.udp.dns_expect,
                udp_payload: a.udp.udp_payload,
                udp_expect_len: a.udp.udp_expect_len,
            },
        }
    }
}

impl From<AppCheckCommandArgs> for AppCheckInputs {
    fn from(a: AppCheckCommandArgs) -> AppCheckInputs {
        AppCheckInputs {
            iface: a.iface,
            src: a.src,
            next_hop_mac: a.next_hop_mac,
            tunnel_src: a.tunnel_src,
            vip: a.vip,
            rip: a.rip,
            port: a.port,
            method: a.method.into(),
            check: a.check.into(),
            timeout: a.timeout,
            json: a.json,
            app: a.app.into(),
            tunnel: a.tunnel.into(),
        }
    }
}

impl From<GenerateArgs> for GenerateInputs {
    fn from(a: GenerateArgs) -> GenerateInputs {
        GenerateInputs {
            format: a.format.map(Format::from),
            fwmark_vips: a.fwmark_vip,
            probe_path: a.probe_path,
            probe_timeout: a.probe_timeout,
            templates: a.templates,
            config_id: a.config_id,
            app_check: a.app_check,
            feed: match a.feed {
                FeedArg::Probe => FeedChoice::Probe,
                FeedArg::Agent => FeedChoice::Agent,
            },
            state_dir: a.state_dir,
        }
    }
}

impl From<RewriteArgs> for RewriteInputs {
    fn from(a: RewriteArgs) -> RewriteInputs {
        RewriteInputs {
            config: a.config,
            dry_run: a.dry_run,
            in_place: a.in_place,
            backup: a.backup,
            output: a.output,
            color: a.color.into(),
            generate: a.generate.into(),
        }
    }
}

impl From<StatusArgs> for StatusInputs {
    fn from(a: StatusArgs) -> StatusInputs {
        StatusInputs {
            config: a.config,
            parallel: a.parallel,
            timeout: a.timeout,
            json: a.json,
            prometheus: a.prometheus,
            color: a.color.into(),
            allow_arp_answer: a.allow_arp_answer,
            generate: a.generate.into(),
            ipvs: a.ipvs,
        }
    }
}

impl From<ReloadArg> for ReloadChoice {
    fn from(arg: ReloadArg) -> ReloadChoice {
        match arg {
            ReloadArg::Auto => ReloadChoice::Auto,
            ReloadArg::Keepalived => ReloadChoice::Keepalived,
            ReloadArg::Ldirectord => ReloadChoice::Ldirectord,
            ReloadArg::None => ReloadChoice::None,
        }
    }
}

impl From<&WatchArgs> for WatchInputs {
    fn from(a: &WatchArgs) -> WatchInputs {
        WatchInputs {
            config: a.config.clone(),
            output: a.output.clone(),
            in_place: a.in_place,
            reload: a.reload.into(),
            reload_command: a.reload_command.clone(),
            pidfile: a.pidfile.clone(),
            debounce: a.debounce,
            once: a.once,
            generate: a.generate.clone().into(),
        }
    }
}

impl From<WatchArgs> for WatchInputs {
    fn from(a: WatchArgs) -> WatchInputs {
        WatchInputs::from(&a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protocol;
    use crate::generate::ProbeCommand;
    use crate::probe::engine::CheckKind;
    use crate::probe::request::{Request, RequestError};
    use crate::probe::session::AppCheck;
    use crate::status::{FleetProbe, Pair};

    /// `vipcheck agent` and `rewrite --feed agent` share one `--state-dir`: the agent
    /// writes where its own rewrite's checks read, and that rewrite is always `agent`.
    /// `--arp-reask` comes through, 5 s by default.
    #[test]
    fn the_agent_and_its_rewrite_share_one_state_dir() {
        let inputs = |argv: &[&str]| match Cli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .command
        {
            Command::Agent(a) => AgentInputs::from(a),
            _ => panic!("not the agent"),
        };
        let a = inputs(&[
            "vipcheck",
            "agent",
            "k.conf",
            "--state-dir",
            "/srv/v",
            "--arp-reask",
            "0",
        ]);
        assert_eq!(a.settings.arp_reask, Duration::ZERO, "0: every turn asks");
        assert_eq!(a.state_dir, PathBuf::from("/srv/v"));
        assert_eq!(a.watch.generate.feed, FeedChoice::Agent);
        assert_eq!(a.watch.generate.state_dir, Some(PathBuf::from("/srv/v")));
        let a = inputs(&["vipcheck", "agent", "k.conf"]);
        assert_eq!(a.settings.arp_reask, crate::probe::fleet::ARP_REASK);
        assert_eq!(a.state_dir, PathBuf::from("/run/vipcheck"));
        assert_eq!(a.watch.generate.feed, FeedChoice::Agent);
        assert_eq!(
            a.watch.generate.state_dir,
            Some(PathBuf::from("/run/vipcheck"))
        );
        let rewrite = Cli::try_parse_from([
            "vipcheck",
            "rewrite",
            "k.conf",
            "--feed",
            "agent",
            "--state-dir",
            "/srv/v",
        ])
        .unwrap();
        let Command::Rewrite(r) = rewrite.command else {
            panic!("not rewrite")
        };
        let r = RewriteInputs::from(r);
        assert_eq!(r.generate.feed, FeedChoice::Agent);
        assert_eq!(r.generate.state_dir, Some(PathBuf::from("/srv/v")));
    }

    /// `vipcheck probe ARGS` read as the binary reads it: clap, then the conversion.
    fn probe_inputs(argv: &[String]) -> ProbeInputs {
        let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        let Command::Probe(args) = cli.command else {
            panic!("{argv:?} is not a probe command")
        };
        args.into()
    }

    fn req(argv: &[&str]) -> Result<Request, RequestError> {
        let argv: Vec<String> = ["vipcheck", "probe"]
            .iter()
            .chain(argv)
            .map(|s| s.to_string())
            .collect();
        Request::from_inputs(&probe_inputs(&argv))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Issue 15: the tunnel options of a pair go into the generated check and read back
    /// as the very request `status` builds; wrong combinations are refused.
    #[test]
    fn tunnel_options_read_back_as_the_request_status_builds() {
        let gue = |port, csum| Tunnel {
            kind: TunnelType::Gue { port },
            csum,
        };
        for tunnel in [
            Tunnel::default(),
            gue(6080, TunnelChecksum::None),
            gue(1, TunnelChecksum::Remcsum),
            Tunnel {
                kind: TunnelType::Gre,
                csum: TunnelChecksum::Csum,
            },
        ] {
            let pair = Pair {
                service: "test".into(),
                vip: ip("192.0.2.20"),
                port: Some(80),
                proto: Protocol::Tcp,
                rip: ip("198.51.100.11"),
                method: ForwardingMethod::Tunnel,
                config_checks: Vec::new(),
                interval: None,
                tunnel,
                udp: Default::default(),
            };
            let cmd = ProbeCommand {
                program: "/usr/sbin/vipcheck".into(),
                vips: vec![pair.vip],
                rip: pair.rip,
                port: pair.port,
                protocol: pair.proto,
                method: pair.method,
                timeout: Duration::from_secs(1),
                app: None,
                tunnel,
                udp: None,
            };
            let argv: Vec<String> = cmd
                .command_line()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            let from_cli = Request::from_inputs(&probe_inputs(&argv)).unwrap();
            assert_eq!(from_cli.tunnel, tunnel, "{argv:?}");
            let status = FleetProbe::new(Duration::from_secs(1), false);
            assert_eq!(status.request(&pair).unwrap(), from_cli, "{argv:?}");
        }
        let base = [
            "--method",
            "tun",
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
        ];
        let with = |extra: &[&str]| {
            let mut a = base.to_vec();
            a.extend_from_slice(extra);
            req(&a)
        };
        let e = with(&["--tun-csum", "csum"]).unwrap_err();
        assert!(e.message.contains("IPIP tunnel has no checksum"), "{e}");
        let e = with(&["--tun-type", "gre", "--tun-csum", "remcsum"]).unwrap_err();
        assert!(e.message.contains("no remote checksum"), "{e}");
        let e = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--tun-type",
            "gre",
        ])
        .unwrap_err();
        assert!(e.message.contains("not tunnelled"), "{e}");
        // gue without a port, or with port 0, is a usage error of the command line itself.
        let argv = ["vipcheck", "probe", "--method", "tun", "--tun-type", "gue"];
        assert!(Cli::try_parse_from(argv).is_err());
        let mut argv = argv.to_vec();
        argv.extend(["--tun-port", "0"]);
        assert!(Cli::try_parse_from(&argv).is_err());
        let r = with(&["--tun-type", "gre"]).unwrap();
        assert_eq!(r.tunnel.kind, TunnelType::Gre);
    }

    /// What `status` probes for a pair is what the generated check asks for: the
    /// `misc_path` argv (as the keepalived template renders it, split at spaces) read by
    /// the probe's command line gives the very request `status` builds for that pair.
    #[test]
    fn generated_probe_argv_reads_back_as_the_request_status_builds() {
        let mut seen = 0;
        for (vip, rip, method) in [
            ("192.0.2.20", "192.0.2.11", ForwardingMethod::DirectRouting),
            (
                "2001:db8::20",
                "2001:db8::11",
                ForwardingMethod::DirectRouting,
            ),
            ("192.0.2.20", "198.51.100.11", ForwardingMethod::Tunnel),
            ("2001:db8::20", "192.0.2.11", ForwardingMethod::Tunnel),
        ] {
            for (proto, port) in [
                (Protocol::Tcp, Some(80)),
                (Protocol::Udp, Some(53)),
                (Protocol::Tcp, None),
            ] {
                for allow_arp_answer in [false, true] {
                    // `--timeout 1.5007s` is probed as the generated `1500ms`.
                    for timeout in [
                        Duration::from_millis(1500),
                        Duration::from_secs(1),
                        Duration::from_micros(1_500_700),
                    ] {
                        let pair = Pair {
                            service: "test".into(),
                            vip: ip(vip),
                            port,
                            proto,
                            rip: ip(rip),
                            method,
                            config_checks: Vec::new(),
                            interval: None,
                            tunnel: Default::default(),
                            udp: Default::default(),
                        };
                        let cmd = ProbeCommand {
                            program: "/usr/sbin/vipcheck".into(),
                            vips: vec![pair.vip],
                            rip: pair.rip,
                            port,
                            protocol: proto,
                            method,
                            timeout,
                            app: None,
                            tunnel: Default::default(),
                            udp: None,
                        };
                        // keepalived's misc_path: the rendered line, split at white space.
                        let line = cmd.command_line();
                        let mut argv: Vec<String> =
                            line.split_whitespace().map(str::to_string).collect();
                        assert_eq!(argv[1..], cmd.args()[..], "{line}");
                        if allow_arp_answer {
                            argv.push("--allow-arp-answer".into());
                        }
                        let from_cli = Request::from_inputs(&probe_inputs(&argv))
                            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
                        let status = FleetProbe::new(timeout, allow_arp_answer);
                        let direct = status.request(&pair).unwrap();
                        assert_eq!(direct, from_cli, "{argv:?}");
                        assert_eq!(direct.allow_arp_answer, allow_arp_answer);
                        assert_eq!(direct.method, method);
                        seen += 1;
                    }
                }
            }
        }
        assert_eq!(seen, 4 * 3 * 2 * 3);
    }

    #[test]
    fn the_defaults_of_the_app_check_options_are_the_command_lines() {
        let inputs = probe_inputs(&["vipcheck".into(), "probe".into()]);
        assert_eq!(inputs.app, AppCheckOptions::default());
        assert_eq!(inputs.retries, DEFAULT_RETRIES);
        assert_eq!(inputs.check, CheckSelection::All);
    }

    #[test]
    fn a_tls_ca_needs_tls_verify() {
        let argv = ["vipcheck", "probe", "--check", "https", "--tls-ca", "x"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    #[test]
    fn options_give_icmp_and_tcp_for_a_tcp_service() {
        let r = req(&["--vip", "192.0.2.20", "--rip", "192.0.2.11", "--port", "80"]).unwrap();
        assert_eq!(r.vips, vec![ip("192.0.2.20")]);
        assert_eq!(r.rip, ip("192.0.2.11"));
        assert_eq!(
            r.checks,
            vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }, CheckKind::Arp]
        );
        assert_eq!(r.method, ForwardingMethod::DirectRouting);
        assert_eq!(r.timeout, Duration::from_secs(2));
    }

    #[test]
    fn ldirectord_positionals_with_bracketed_ipv6() {
        let r = req(&[
            "--method",
            "tun",
            "[2001:db8::20]",
            "443",
            "[2001:db8::11]",
            "443",
        ])
        .unwrap();
        assert_eq!(r.vips, vec![ip("2001:db8::20")]);
        assert_eq!(r.rip, ip("2001:db8::11"));
        assert_eq!(
            r.checks,
            vec![
                CheckKind::Icmp,
                CheckKind::Tcp { port: 443 },
                CheckKind::Arp
            ]
        );
        assert_eq!(r.method, ForwardingMethod::Tunnel);
    }

    #[test]
    fn fwmark_needs_vips_and_takes_the_real_port() {
        let e = req(&["5", "0", "192.0.2.11", "80"]).unwrap_err();
        assert!(e.message.contains("fwmark 5"), "{e}");
        assert!(e.hint.contains("--vip"));
        let r = req(&["--vip", "192.0.2.20", "5", "0", "192.0.2.11", "80"]).unwrap();
        assert_eq!(r.vips, vec![ip("192.0.2.20")]);
        assert_eq!(
            r.checks,
            vec![CheckKind::Icmp, CheckKind::Tcp { port: 80 }, CheckKind::Arp]
        );
    }

    #[test]
    fn wrong_positional_counts_and_values_are_errors() {
        assert!(req(&["192.0.2.20", "80"]).is_err());
        assert!(req(&["vip", "80", "192.0.2.11", "80"]).is_err());
        assert!(req(&["192.0.2.20", "http", "192.0.2.11", "80"]).is_err());
        let e = req(&[
            "--rip",
            "192.0.2.12",
            "192.0.2.20",
            "80",
            "192.0.2.11",
            "80",
        ])
        .unwrap_err();
        assert!(e.message.contains("differ"));
    }

    #[test]
    fn udp_service_is_icmp_only() {
        let r = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--port",
            "514",
            "--proto",
            "udp",
        ])
        .unwrap();
        assert_eq!(r.checks, vec![CheckKind::Icmp, CheckKind::Arp]);
        assert!(r.icmp_only_udp);
        // Port 53 under `all` is DNS: a query through the VIP (keepalived's defaults).
        let dns = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--port",
            "53",
            "--proto",
            "udp",
        ])
        .unwrap();
        assert!(matches!(
            dns.checks.as_slice(),
            [
                CheckKind::Icmp,
                CheckKind::Udp { port: 53, .. },
                CheckKind::Arp
            ]
        ));
        assert!(!dns.icmp_only_udp);
        assert!(req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--proto",
            "udp",
            "--check",
            "tcp"
        ])
        .is_err());
    }

    #[test]
    fn missing_vip_rip_or_port_is_an_error() {
        assert!(req(&["--rip", "192.0.2.11"]).is_err());
        assert!(req(&["--vip", "192.0.2.20"]).is_err());
        assert!(req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--check",
            "tcp"
        ])
        .is_err());
        assert!(req(&["--vip", "192.0.2.20", "--rip", "192.0.2.20"]).is_err());
    }

    #[test]
    fn without_a_port_only_icmp_runs() {
        let r = req(&["--vip", "192.0.2.20", "--rip", "192.0.2.11"]).unwrap();
        assert_eq!(r.checks, vec![CheckKind::Icmp, CheckKind::Arp]);
        assert!(!r.icmp_only_udp);
    }

    #[test]
    fn check_arp_alone_and_the_allow_flag() {
        let r = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--check",
            "arp",
        ])
        .unwrap();
        assert_eq!(r.checks, vec![CheckKind::Arp]);
        assert!(!r.allow_arp_answer);
        assert!(!r.icmp_only_udp);
        let r = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--allow-arp-answer",
        ])
        .unwrap();
        assert!(r.allow_arp_answer);
        assert_eq!(r.checks, vec![CheckKind::Icmp, CheckKind::Arp]);
    }

    #[test]
    fn application_checks_run_after_icmp_and_arp_and_need_a_tcp_port() {
        let r = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--port",
            "80",
            "--check",
            "http",
        ])
        .unwrap();
        assert_eq!(r.checks, vec![CheckKind::Icmp, CheckKind::Arp]);
        assert!(matches!(r.app, Some((AppCheck::Http(_), 80))));
        let no_port = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--check",
            "tcp-session",
        ]);
        assert!(no_port.unwrap_err().message.contains("needs a port"));
        let udp = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--port",
            "53",
            "--proto",
            "udp",
            "--check",
            "https",
        ]);
        assert!(udp.unwrap_err().message.contains("UDP"));
        let bad = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--port",
            "80",
            "--check",
            "http",
            "--expect-status",
            "2xx",
        ]);
        assert!(bad.unwrap_err().message.contains("--expect-status"));
    }

    #[test]
    fn targets_that_cannot_be_right_are_refused_up_front() {
        for (vip, rip, method, says) in [
            (
                "0.0.0.0",
                "192.0.2.11",
                "dr",
                "VIP 0.0.0.0 is the unspecified address",
            ),
            (
                "255.255.255.255",
                "192.0.2.11",
                "dr",
                "is the broadcast address",
            ),
            ("224.0.0.18", "192.0.2.11", "dr", "is a multicast address"),
            (
                "127.0.0.1",
                "192.0.2.11",
                "dr",
                "VIP 127.0.0.1 is a loopback address",
            ),
            ("::1", "2001:db8::b", "dr", "VIP ::1 is a loopback address"),
            ("ff02::1", "2001:db8::b", "tun", "is a multicast address"),
            ("::", "2001:db8::b", "tun", "is the unspecified address"),
            (
                "192.0.2.20",
                "127.0.0.2",
                "dr",
                "real server 127.0.0.2 is a loopback address",
            ),
            (
                "192.0.2.20",
                "2001:db8::b",
                "dr",
                "of different address families",
            ),
            (
                "2001:db8::20",
                "192.0.2.11",
                "dr",
                "of different address families",
            ),
        ] {
            let e = req(&[
                "--vip", vip, "--rip", rip, "--method", method, "--port", "80",
            ])
            .expect_err(vip);
            assert!(e.message.contains(says), "{vip} {rip}: {e}");
        }
        // A tunnel may carry another family than its outer header's.
        let mixed = req(&[
            "--vip",
            "192.0.2.20",
            "--rip",
            "2001:db8::b",
            "--method",
            "tun",
            "--port",
            "80",
        ]);
        assert!(mixed.is_ok(), "{mixed:?}");
    }
}
