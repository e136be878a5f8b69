//! Issue 5, ldirectord half: the real ldirectord (Debian package, debug mode) runs an
//! operator's ldirectord.cf, first as written (the baseline keeps misconfigured real
//! servers), then as rewritten by `vipcheck rewrite` (only the good ones). ldirectord
//! drives a stand-in `./ipvsadm` in its working directory that keeps the table in a file
//! and prints it for `-L -n` like ipvsadm, so no IPVS is needed; the real servers are in
//! network namespaces on a bridge, with real web servers (busybox httpd).
//! Needs root, ldirectord, busybox, iproute2; skips (saying so) otherwise unless
//! VIPCHECK_REQUIRE_PRIVILEGED=1.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::netns::{ChildGuard, Lan, Netns};
use common::topo;
use std::time::{Duration, Instant};

const VIP: &str = "192.0.2.100";
const VIP6: &str = "2001:db8::100";
const SVC4: &str = "TCP 192.0.2.100:80";
const SVC6: &str = "TCP [2001:db8::100]:80";

/// The operator's config: an HTTP check against each real server's own address (it
/// cannot see whether the real server holds the VIP), a connect check for IPv6.
const OPERATOR_CF: &str = "\
# ldirectord.cf as an operator writes it (vipcheck end-to-end test)
checktimeout=2
checkinterval=1
autoreload=no
quiescent=no

virtual=192.0.2.100:80
\treal=192.0.2.11:80 gate
\treal=192.0.2.12:80 gate
\treal=192.0.2.13:80 gate
\treal=192.0.2.14:80 gate
\treal=192.0.2.15:80 gate
\tservice=http
\tscheduler=rr
\tprotocol=tcp
\tchecktype=negotiate
\trequest=\"index.html\"
\treceive=\"ready\"

virtual6=[2001:db8::100]:80
\treal6=[2001:db8::21]:80 gate
\treal6=[2001:db8::22]:80 gate
\tscheduler=rr
\tprotocol=tcp
\tchecktype=connect
";

/// (namespace suffix, IPv4, IPv6, role, VIP on lo, web server listens on, page).
struct RealServer {
    name: &'static str,
    ip4: &'static str,
    ip6: Option<&'static str>,
    role: &'static str,
    vip_on_lo: bool,
    listen_mgmt_only: bool,
    forwarder: bool,
    page: &'static str,
}

const SERVERS: &[RealServer] = &[
    RealServer {
        name: "good",
        ip4: "192.0.2.11",
        ip6: None,
        role: "good",
        vip_on_lo: true,
        listen_mgmt_only: false,
        forwarder: false,
        page: "ready: good",
    },
    RealServer {
        name: "novip",
        ip4: "192.0.2.12",
        ip6: None,
        role: "no VIP",
        vip_on_lo: false,
        listen_mgmt_only: false,
        forwarder: false,
        page: "ready: novip",
    },
    RealServer {
        name: "nolisten",
        ip4: "192.0.2.13",
        ip6: None,
        role: "VIP, no listener on it",
        vip_on_lo: true,
        listen_mgmt_only: true,
        forwarder: false,
        page: "ready: nolisten",
    },
    RealServer {
        name: "fwd",
        ip4: "192.0.2.14",
        ip6: None,
        role: "forwarder, no VIP",
        vip_on_lo: false,
        listen_mgmt_only: false,
        forwarder: true,
        page: "ready: fwd",
    },
    RealServer {
        name: "badbody",
        ip4: "192.0.2.15",
        ip6: None,
        role: "good, page lacks 'ready'",
        vip_on_lo: true,
        listen_mgmt_only: false,
        forwarder: false,
        page: "maintenance: badbody",
    },
    RealServer {
        name: "good6",
        ip4: "192.0.2.21",
        ip6: Some("2001:db8::21"),
        role: "good",
        vip_on_lo: true,
        listen_mgmt_only: false,
        forwarder: false,
        page: "ready: good6",
    },
    RealServer {
        name: "novip6",
        ip4: "192.0.2.22",
        ip6: Some("2001:db8::22"),
        role: "no VIP",
        vip_on_lo: false,
        listen_mgmt_only: false,
        forwarder: false,
        page: "ready: novip6",
    },
];

/// Stand-in for ipvsadm: the subset ldirectord uses (-A -E -D -a -e -d, -L -n
/// [--thresholds]), with the table kept in ./ipvsadm.state and each call logged.
const IPVSADM_STANDIN: &str = r#"#!/usr/bin/perl
# Stand-in for ipvsadm used by the vipcheck ldirectord end-to-end test.
use strict;
use warnings;

my $state = "./ipvsadm.state";
if (open(my $log, '>>', './ipvsadm.log')) { print $log "ipvsadm @ARGV\n"; close($log); }

my (@services, %reals);    # services: [proto, addr, sched]; reals{"proto addr"}: [[rip, fwd, w]]
if (open(my $in, '<', $state)) {
    while (my $line = <$in>) {
        chomp $line;
        my @f = split /\t/, $line;
        if ($f[0] eq 'S') { push @services, [@f[1 .. 3]]; }
        elsif ($f[0] eq 'R') { push @{ $reals{"$f[1] $f[2]"} }, [@f[3 .. 5]]; }
    }
    close($in);
}

my ($op, $proto, $addr, $sched, $rip, $fwd, $weight, $thresholds) =
    ('', '', '', 'wlc', '', 'Route', 1, 0);
while (@ARGV) {
    my $a = shift @ARGV;
    if ($a =~ /^-([AEDaedLlC])$/) { $op = $1; $op = 'L' if $op eq 'l'; }
    elsif ($a eq '-t') { $proto = 'TCP'; $addr = shift @ARGV; }
    elsif ($a eq '-u') { $proto = 'UDP'; $addr = shift @ARGV; }
    elsif ($a eq '-f') { $proto = 'FWM'; $addr = shift @ARGV; }
    elsif ($a eq '-s') { $sched = shift @ARGV; }
    elsif ($a eq '-r') { $rip = shift @ARGV; }
    elsif ($a eq '-g') { $fwd = 'Route'; }
    elsif ($a eq '-i') { $fwd = 'Tunnel'; }
    elsif ($a eq '-m') { $fwd = 'Masq'; }
    elsif ($a eq '-w') { $weight = shift @ARGV; }
    elsif ($a eq '--thresholds') { $thresholds = 1; }
    elsif ($a =~ /^-[pMxy]$/) { shift @ARGV if @ARGV && $ARGV[0] !~ /^-/; }
    # -n, -6 and anything else: no effect on the table
}
my $key = "$proto $addr";
my ($svc) = grep { "$_->[0] $_->[1]" eq $key } @services;

sub save {
    open(my $out, '>', "$state.tmp") or die "ipvsadm stand-in: cannot write $state.tmp: $!\n";
    for my $s (@services) {
        print $out join("\t", 'S', @$s), "\n";
        for my $r (@{ $reals{"$s->[0] $s->[1]"} || [] }) { print $out join("\t", 'R', @$s[0, 1], @$r), "\n"; }
    }
    close($out);
    rename("$state.tmp", $state) or die "ipvsadm stand-in: cannot rename: $!\n";
}
sub fail { print STDERR "$_[0]\n"; exit 1; }

if ($op eq 'L') {
    print "IP Virtual Server version 1.2.1 (size=4096)\n";
    print "Prot LocalAddress:Port Scheduler Flags\n";
    print $thresholds
        ? "  -> RemoteAddress:Port           Uthreshold Lthreshold ActiveConn InActConn\n"
        : "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";
    for my $s (@services) {
        printf "%-4s %s %s\n", $s->[0], $s->[1], $s->[2];
        for my $r (@{ $reals{"$s->[0] $s->[1]"} || [] }) {
            if ($thresholds) { printf "  -> %-28s %-10s %-10s %-10s %s\n", $r->[0], 0, 0, 0, 0; }
            else { printf "  -> %-28s %-7s %-6s %-10s %s\n", $r->[0], $r->[1], $r->[2], 0, 0; }
        }
    }
    exit 0;
} elsif ($op eq 'A') {
    fail("Service already exists") if $svc;
    push @services, [$proto, $addr, $sched];
} elsif ($op eq 'E') {
    fail("No such service") unless $svc;
    $svc->[2] = $sched;
} elsif ($op eq 'D') {
    fail("No such service") unless $svc;
    @services = grep { "$_->[0] $_->[1]" ne $key } @services;
    delete $reals{$key};
} elsif ($op eq 'C') {
    @services = (); %reals = ();
} elsif ($op =~ /^[aed]$/) {
    fail("No such service") unless $svc;
    my $list = $reals{$key} ||= [];
    my ($r) = grep { $_->[0] eq $rip } @$list;
    if ($op eq 'a') { fail("Destination already exists") if $r; push @$list, [$rip, $fwd, $weight]; }
    elsif ($op eq 'e') { fail("No such destination") unless $r; @$r[1, 2] = ($fwd, $weight); }
    else { fail("No such destination") unless $r; @$list = grep { $_->[0] ne $rip } @$list; }
} else {
    fail("ipvsadm stand-in: unsupported arguments");
}
save();
exit 0;
"#;

/// True when the test should go on; a skip (the one rule) when it must not.
fn prerequisites() -> bool {
    common::root("network namespaces, ldirectord")
        && common::tools(&[
            ("ldirectord", "ldirectord"),
            ("busybox", "busybox-static"),
            ("ip", "iproute2"),
        ])
}

/// Network namespaces, web servers and the daemon of one test; all torn down on drop,
/// also when the test fails.
struct Topology {
    tag: String,
    _web: Vec<ChildGuard>,
    servers: Vec<(&'static str, Netns)>,
    lb: Netns,
    _lan: Lan,
    dir: tempfile::TempDir,
}

impl Topology {
    /// The namespace of the real server `name` (see [`SERVERS`]).
    fn server(&self, name: &str) -> &Netns {
        self.servers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, ns)| ns)
            .unwrap_or_else(|| panic!("no real server {name}"))
    }

    fn build(test: &str) -> Topology {
        let tag = format!("vce2e{}{test}", std::process::id());
        let dir = tempfile::tempdir().expect("temp dir");
        // The bridge lives in a namespace of its own: nothing is added to the host's.
        let lan = Lan::new();
        let lb = Netns::new("lb");
        lan.attach(&lb, "eth0", "02:00:00:00:02:01");
        topo::address(&lb, "eth0", 1);
        topo::add_vip(&lb, VIP, "eth0");
        // Deprecated, so the director never picks the VIP as its source address.
        lb.ip(&format!(
            "addr add {VIP6}/128 dev eth0 nodad preferred_lft 0"
        ));
        let www = dir.path().join("www");
        let mut servers = Vec::new();
        let mut web = Vec::new();
        for (i, rs) in SERVERS.iter().enumerate() {
            let ns = Netns::new(rs.name);
            lan.attach(&ns, "eth0", &format!("02:00:00:00:02:{:02x}", i + 2));
            ns.ip(&format!("addr add {}/24 dev eth0", rs.ip4));
            if let Some(ip6) = rs.ip6 {
                ns.ip(&format!("addr add {ip6}/64 dev eth0 nodad"));
            }
            if rs.vip_on_lo {
                topo::add_vip(&ns, VIP, "lo");
                topo::add_vip(&ns, VIP6, "lo");
            }
            ns.arp_sysctls("eth0", "1");
            if rs.forwarder {
                ns.ip(&format!("route add {VIP}/32 via 192.0.2.1"));
                ns.sysctl("net.ipv4.ip_forward", "1");
            }
            let root = www.join(rs.name);
            fs::create_dir_all(&root).expect("create web root");
            fs::write(root.join("index.html"), rs.page).expect("write page");
            let listen = if rs.listen_mgmt_only {
                format!("{}:80", rs.ip4)
            } else {
                "[::]:80".into()
            };
            let root = root.to_str().expect("a UTF-8 temp dir");
            web.push(ns.spawn("busybox", &["httpd", "-f", "-p", &listen, "-h", root]));
            servers.push((rs.name, ns));
        }
        fs::write(dir.path().join("ipvsadm"), IPVSADM_STANDIN).expect("write ipvsadm");
        make_executable(&dir.path().join("ipvsadm"));
        Topology {
            tag,
            _web: web,
            servers,
            lb,
            _lan: lan,
            dir,
        }
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// service -> real servers, as the stand-in holds them.
type Table = BTreeMap<String, BTreeSet<String>>;

fn read_table(dir: &Path) -> Table {
    let mut table = Table::new();
    let text = fs::read_to_string(dir.join("ipvsadm.state")).unwrap_or_default();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["S", proto, addr, _] => {
                table.entry(format!("{proto} {addr}")).or_default();
            }
            ["R", proto, addr, rip, _, _] => {
                table
                    .entry(format!("{proto} {addr}"))
                    .or_default()
                    .insert(rip.to_string());
            }
            _ => {}
        }
    }
    table
}

fn table(entries: &[(&str, &[&str])]) -> Table {
    entries
        .iter()
        .map(|(svc, rips)| {
            (
                svc.to_string(),
                rips.iter().map(|r| r.to_string()).collect(),
            )
        })
        .collect()
}

/// One ldirectord run in the director namespace, stopped on drop.
struct Ldirectord {
    child: Child,
    log: PathBuf,
    pidfile: PathBuf,
}

impl Ldirectord {
    fn start(topo: &Topology, config: &Path) -> Ldirectord {
        let log = config.with_extension("log");
        let out = fs::File::create(&log).expect("create ldirectord log");
        let err = out.try_clone().expect("clone log handle");
        let child = topo
            .lb
            .command("ldirectord")
            .arg("-d")
            .arg(config)
            .arg("start")
            .current_dir(topo.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ldirectord: {e}"));
        let name = config.file_name().expect("config file name");
        let pidfile = PathBuf::from(format!(
            "/var/run/ldirectord.{}.pid",
            name.to_string_lossy()
        ));
        Ldirectord {
            child,
            log,
            pidfile,
        }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits (bounded) until the table equals `want`; on timeout panics with the table,
    /// the stand-in's call log and ldirectord's log tail.
    fn wait_for(&mut self, dir: &Path, want: &Table, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let got = read_table(dir);
            if &got == want {
                return start.elapsed();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "ldirectord exited ({status}) before the table was {want:?}; log:\n{}",
                    self.log_tail()
                );
            }
            if start.elapsed() > within {
                let calls = fs::read_to_string(dir.join("ipvsadm.log")).unwrap_or_default();
                let calls: Vec<&str> = calls.lines().collect();
                panic!(
                    "after {within:?} the table is\n{got:#?}\nwanted\n{want:#?}\n\
                     ipvsadm calls (tail):\n{}\nldirectord log (tail):\n{}",
                    calls[calls.len().saturating_sub(20)..].join("\n"),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Ldirectord {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.pidfile);
    }
}

fn write_config(topo: &Topology, label: &str, text: &str) -> PathBuf {
    let path = topo.dir.path().join(format!("{}-{label}.cf", topo.tag));
    fs::write(&path, text).expect("write config");
    path
}

/// Starts ldirectord on `config` and waits until the table equals `want` and holds for a
/// few check rounds (or panics).
fn settle_running(topo: &Topology, config: &Path, want: &Table) -> (Ldirectord, Table) {
    let _ = fs::remove_file(topo.dir.path().join("ipvsadm.state"));
    let mut daemon = Ldirectord::start(topo, config);
    let took = daemon.wait_for(topo.dir.path(), want, Duration::from_secs(30));
    // Hold for a few check rounds: the table must stay as it is.
    std::thread::sleep(Duration::from_secs(3));
    let held = read_table(topo.dir.path());
    assert_eq!(
        &held,
        want,
        "the table changed after settling; log:\n{}",
        daemon.log_tail()
    );
    println!("table reached after {took:.1?} and held for 3 s: {held:?}");
    (daemon, held)
}

/// The same, then stops ldirectord.
fn settle(topo: &Topology, config: &Path, want: &Table) -> Table {
    settle_running(topo, config, want).1
}

fn print_side_by_side(baseline: &Table, vipcheck: Option<&Table>) {
    println!(
        "{:<24} {:<20} {:<26} {:<9} VIPCHECK",
        "SERVICE", "REAL SERVER", "ROLE", "BASELINE"
    );
    for rs in SERVERS {
        let (svc, rip) = match rs.ip6 {
            Some(ip6) => (SVC6, format!("[{ip6}]:80")),
            None => (SVC4, format!("{}:80", rs.ip4)),
        };
        let mark = |t: Option<&Table>| match t {
            None => "-",
            Some(t) if t.get(svc).is_some_and(|s| s.contains(&rip)) => "IN",
            Some(_) => "out",
        };
        println!(
            "{svc:<24} {rip:<20} {:<26} {:<9} {}",
            rs.role,
            mark(Some(baseline)),
            mark(vipcheck)
        );
    }
}

fn baseline_table() -> Table {
    // The HTTP check on the management address passes for every server whose page says
    // "ready", VIP or not; only badbody's page fails it.
    table(&[
        (
            SVC4,
            &[
                "192.0.2.11:80",
                "192.0.2.12:80",
                "192.0.2.13:80",
                "192.0.2.14:80",
            ],
        ),
        (SVC6, &["[2001:db8::21]:80", "[2001:db8::22]:80"]),
    ])
}

#[test]
fn ldirectord_baseline_keeps_real_servers_without_the_vip() {
    if !prerequisites() {
        return;
    }
    let topo = Topology::build("b");
    let config = write_config(&topo, "operator", OPERATOR_CF);
    let got = settle(&topo, &config, &baseline_table());
    print_side_by_side(&got, None);
}

#[test]
fn ldirectord_with_vipcheck_keeps_only_the_good_real_servers() {
    if !prerequisites() {
        return;
    }
    let topo = Topology::build("v");
    let original = write_config(&topo, "operator", OPERATOR_CF);
    let baseline = settle(&topo, &original, &baseline_table());

    // Into a directory: the rewrite writes the config there under its own name (the
    // check wrappers it creates go beside the original).
    let out_dir = topo.dir.path().join("rewritten");
    fs::create_dir_all(&out_dir).expect("create output dir");
    let out = Command::new(env!("CARGO_BIN_EXE_vipcheck"))
        .arg("rewrite")
        .arg(&original)
        .arg("-o")
        .arg(&out_dir)
        .args(["--format", "ldirectord", "--probe-timeout", "1s"])
        .arg("--probe-path")
        .arg(env!("CARGO_BIN_EXE_vipcheck"))
        .output()
        .expect("run vipcheck rewrite");
    assert!(
        out.status.success(),
        "vipcheck rewrite failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rewritten = out_dir.join(original.file_name().expect("config file name"));
    println!(
        "rewritten config:\n{}",
        fs::read_to_string(&rewritten).unwrap_or_default()
    );

    // Only the good servers: no VIP, no listener on the VIP and forwarding are caught by
    // vipcheck's probe; badbody stays out because the original HTTP check still applies.
    let want = table(&[(SVC4, &["192.0.2.11:80"]), (SVC6, &["[2001:db8::21]:80"])]);
    let (mut daemon, got) = settle_running(&topo, &rewritten, &want);
    print_side_by_side(&baseline, Some(&got));

    // Break the good IPv4 server (take its VIP away): it must leave; give it back: it must
    // return. checkinterval 1 s, the probe's timeout 1 s, checktimeout 4 s.
    let good = topo.server("good");
    let vip_on_lo = format!("{VIP}/32");
    good.ip(&format!("addr del {vip_on_lo} dev lo"));
    let broken = table(&[(SVC4, &[]), (SVC6, &["[2001:db8::21]:80"])]);
    let took = daemon.wait_for(topo.dir.path(), &broken, Duration::from_secs(20));
    println!("good server without its VIP removed after {took:.1?}");
    good.ip(&format!("addr add {vip_on_lo} dev lo"));
    let took = daemon.wait_for(topo.dir.path(), &want, Duration::from_secs(20));
    println!("good server with its VIP again back after {took:.1?}");
}

/// `rewrite --app-check`: the virtual's negotiate check (request `index.html`, receive
/// `ready`) runs through the VIP on each real server (`vipcheck probe --check http`), a
/// real session from the director, instead of curl to the real server's own address.
/// ldirectord keeps exactly the good servers, as with the plain probe.
#[test]
fn ldirectord_with_app_check_runs_the_http_check_through_the_vip() {
    if !prerequisites() {
        return;
    }
    let topo = Topology::build("a");
    let original = write_config(&topo, "operator", OPERATOR_CF);
    let out_dir = topo.dir.path().join("rewritten");
    fs::create_dir_all(&out_dir).expect("create output dir");
    let out = Command::new(env!("CARGO_BIN_EXE_vipcheck"))
        .arg("rewrite")
        .arg(&original)
        .arg("-o")
        .arg(&out_dir)
        .args([
            "--format",
            "ldirectord",
            "--probe-timeout",
            "1500ms",
            "--app-check",
        ])
        .arg("--probe-path")
        .arg(env!("CARGO_BIN_EXE_vipcheck"))
        .output()
        .expect("run vipcheck rewrite");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rewritten = out_dir.join(original.file_name().expect("config file name"));
    let wrapper = fs::read_dir(&out_dir)
        .expect("list output dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("192.0.2.100-80"))
        .expect("the IPv4 virtual's wrapper");
    let text = fs::read_to_string(&wrapper).unwrap_or_default();
    assert!(text.contains("--check http"), "{text}");
    let want = table(&[(SVC4, &["192.0.2.11:80"]), (SVC6, &["[2001:db8::21]:80"])]);
    let (_daemon, got) = settle_running(&topo, &rewritten, &want);
    print_side_by_side(&baseline_table(), Some(&got));
}

/// Issue 13: ldirectord fed by `vipcheck agent` (`rewrite --feed agent`): the wrapper
/// reads the agent's verdict file of each pair and runs no probe. Before the agent runs
/// there is no verdict, which means up: the table is the baseline's (the original HTTP
/// check alone decides). With the agent, only the good servers; a server that loses its
/// VIP leaves and comes back; stopping the agent keeps the table.
#[test]
fn ldirectord_fed_by_the_agent_keeps_only_the_good_real_servers() {
    if !prerequisites() {
        return;
    }
    let topo = Topology::build("g");
    let original = write_config(&topo, "operator", OPERATOR_CF);
    let state = topo.dir.path().join("state");
    fs::create_dir_all(&state).expect("create state dir");
    let out_dir = topo.dir.path().join("rewritten");
    fs::create_dir_all(&out_dir).expect("create output dir");
    let out = Command::new(env!("CARGO_BIN_EXE_vipcheck"))
        .arg("rewrite")
        .arg(&original)
        .arg("-o")
        .arg(&out_dir)
        .args(["--format", "ldirectord", "--feed", "agent", "--state-dir"])
        .arg(&state)
        .arg("--probe-path")
        .arg(env!("CARGO_BIN_EXE_vipcheck"))
        .output()
        .expect("run vipcheck rewrite");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rewritten = out_dir.join(original.file_name().expect("config file name"));
    let wrappers: Vec<PathBuf> = fs::read_dir(&out_dir)
        .expect("list output dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .collect();
    assert_eq!(wrappers.len(), 2, "{wrappers:?}");
    for w in &wrappers {
        let text = fs::read_to_string(w).unwrap_or_default();
        assert!(
            !text.contains(" probe "),
            "the agent-fed wrapper probes:\n{text}"
        );
        assert!(text.contains(&*state.to_string_lossy()), "{text}");
    }

    // ldirectord before the agent: no verdict yet is no reason to depool.
    let (mut daemon, _) = settle_running(&topo, &rewritten, &baseline_table());

    let log = topo.dir.path().join("agent.log");
    let log_file = fs::File::create(&log).expect("create agent log");
    let agent = topo
        .lb
        .command(env!("CARGO_BIN_EXE_vipcheck"))
        .arg("agent")
        .arg(&rewritten)
        .arg("--state-dir")
        .arg(&state)
        .args(["--interval", "1s", "--fall", "2", "--rise", "2"])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("clone log handle"))
        .stderr(log_file)
        .spawn()
        .expect("start vipcheck agent");
    let mut agent = ChildGuard(agent);
    let agent_log = || fs::read_to_string(&log).unwrap_or_default();

    let want = table(&[(SVC4, &["192.0.2.11:80"]), (SVC6, &["[2001:db8::21]:80"])]);
    let took = daemon.wait_for(topo.dir.path(), &want, Duration::from_secs(30));
    println!("with the agent, only the good servers after {took:.1?}");
    assert!(
        matches!(agent.0.try_wait(), Ok(None)),
        "the agent exited; log:\n{}",
        agent_log()
    );
    let verdict = |name: &str| fs::read_to_string(state.join(name)).unwrap_or_default();
    assert_eq!(verdict("tcp_192.0.2.100_80_192.0.2.11").trim(), "0");
    assert_eq!(verdict("tcp_192.0.2.100_80_192.0.2.12").trim(), "1");

    let good = topo.server("good");
    good.ip(&format!("addr del {VIP}/32 dev lo"));
    let broken = table(&[(SVC4, &[]), (SVC6, &["[2001:db8::21]:80"])]);
    let took = daemon.wait_for(topo.dir.path(), &broken, Duration::from_secs(20));
    println!("good server without its VIP removed after {took:.1?} (checkinterval 1 s)");
    good.ip(&format!("addr add {VIP}/32 dev lo"));
    let took = daemon.wait_for(topo.dir.path(), &want, Duration::from_secs(20));
    println!("good server with its VIP again back after {took:.1?}");

    // The agent stops: its last verdicts stay, and so does the table.
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && matches!(agent.0.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(agent);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        read_table(topo.dir.path()),
        want,
        "the table changed after the agent stopped; agent log:\n{}",
        agent_log()
    );
}
