//! The application check through the VIP, end to end in network namespaces (root):
//! a director and a real server on a bridge; HTTP(S) servers on the real server bound to
//! the VIP or to its management address; the director with and without the VIP; IPv4 and
//! IPv6. After every test the director's ruleset, rules and routes and the real server's
//! connection table are as before, also after a probe killed with SIGKILL mid-session.

mod common;

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::netns::{ifindex, in_named, must, ChildGuard, Lan, Netns};
use common::topo;
use vipcheck::config::ForwardingMethod;
use vipcheck::net::NetPath;
use vipcheck::probe::session::{self, AppCheck, HttpExpect, Outcome, StatusRange, Target};
use vipcheck::wire::MacAddr;

const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0x5e, 0, 0, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0x5e, 0, 0, 0x11];
const BODY: &str = "vipcheck test page: service is up\n";

/// Skips (returns false) without root or tools, unless VIPCHECK_REQUIRE_PRIVILEGED=1.
fn privileged(what: &str) -> bool {
    common::root(&format!(
        "network namespaces, packet sockets, nftables: {what}"
    )) && common::tools(&[
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("python3", "python3"),
        ("ss", "iproute2"),
    ])
}

/// Runs a host command (openssl, md5sum) that must succeed; returns its stdout.
fn sh(args: &[&str]) -> String {
    must(Command::new(args[0]).args(&args[1..]))
}

/// Director and real server joined by a bridge in a third namespace.
struct Lab {
    servers: Vec<ChildGuard>,
    director: Netns,
    server: Netns,
    _lan: Lan,
    dir: tempfile::TempDir,
    v6: bool,
    baseline: (String, String),
}

impl Lab {
    fn new(v6: bool, director_has_vip: bool) -> Lab {
        let lan = Lan::new();
        let director = Netns::new("d");
        let server = Netns::new("r");
        for (peer, mac, addrs) in [
            (&director, DIRECTOR_MAC, ["192.0.2.1/24", "2001:db8::1/64"]),
            (&server, SERVER_MAC, ["192.0.2.11/24", "2001:db8::11/64"]),
        ] {
            lan.attach(peer, "eth0", &mac_text(mac));
            peer.ip(&format!("addr add {} dev eth0", addrs[0]));
            peer.ip(&format!("addr add {} dev eth0 nodad", addrs[1]));
        }
        // The real server holds the VIP on lo and neither answers nor announces it (DR).
        server.arp_sysctls("eth0", "1");
        topo::add_vips(&server, "lo");
        if !director_has_vip {
            // The director's kernel reaches the VIP, as a backup director reaches the
            // master's: without the guard its RSTs would reach the real server.
            let mac = mac_text(SERVER_MAC);
            for vip in [topo::VIP4, topo::VIP6] {
                director.ip(&format!(
                    "neigh replace {vip} lladdr {mac} dev eth0 nud permanent"
                ));
            }
        }
        if director_has_vip {
            topo::add_vips(&director, "lo");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("index.html"), BODY).expect("write page");
        let mut lab = Lab {
            servers: Vec::new(),
            director,
            server,
            _lan: lan,
            dir,
            v6,
            baseline: (String::new(), String::new()),
        };
        lab.settle();
        lab.baseline = lab.snapshot();
        lab
    }

    /// Waits (bounded) until both ends have a usable link-local address: its route
    /// appears only then, and the baseline must not catch it half-way.
    fn settle(&self) {
        let until = Instant::now() + Duration::from_secs(10);
        for n in [&self.director, &self.server] {
            loop {
                let link = n.ip("-6 addr show dev eth0 scope link");
                let tentative = n.ip("-6 addr show dev eth0 tentative");
                if link.contains("fe80::") && tentative.trim().is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < until,
                    "IPv6 link-local address never became usable"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn vip(&self) -> IpAddr {
        if self.v6 {
            "2001:db8::20"
        } else {
            "192.0.2.20"
        }
        .parse()
        .unwrap()
    }

    fn rip(&self) -> IpAddr {
        if self.v6 {
            "2001:db8::11"
        } else {
            "192.0.2.11"
        }
        .parse()
        .unwrap()
    }

    fn src(&self) -> IpAddr {
        if self.v6 { "2001:db8::1" } else { "192.0.2.1" }
            .parse()
            .unwrap()
    }

    /// Starts a test server in the real server's namespace and waits until it listens.
    /// Modes: ok, status503, https (with a fresh self-signed certificate), hang.
    fn serve(&mut self, addr: IpAddr, port: u16, mode: &str) {
        let mut args = vec![
            "-c".to_string(),
            SERVER_PY.into(),
            addr.to_string(),
            port.to_string(),
            mode.into(),
            self.dir.path().display().to_string(),
        ];
        if mode == "https" {
            let (cert, key) = self.make_certificate();
            args.push(cert);
            args.push(key);
        }
        let mut child = self
            .server
            .command("python3")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the test server");
        let out = child.stdout.take().expect("server stdout");
        self.servers.push(ChildGuard(child));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the test server did not start within 10 s");
        assert_eq!(line.trim(), "ready", "test server said {line:?}");
    }

    /// A test CA (ca.pem) and a server certificate for www.example.com signed by it, made
    /// with openssl at test time. Returns the certificate and key paths.
    fn make_certificate(&self) -> (String, String) {
        let p = |f: &str| self.dir.path().join(f).display().to_string();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["openssl", "req", "-x509"];
        ca.extend_from_slice(&ec);
        let (ca_key, ca_pem) = (p("ca.key"), p("ca.pem"));
        ca.extend_from_slice(&[
            "-days",
            "1",
            "-subj",
            "/CN=vipcheck test CA",
            "-keyout",
            &ca_key,
            "-out",
            &ca_pem,
        ]);
        sh(&ca);
        let (key, csr, cert, ext) = (p("key.pem"), p("req.csr"), p("cert.pem"), p("ext.cnf"));
        std::fs::write(
            &ext,
            "subjectAltName=DNS:www.example.com\nbasicConstraints=CA:FALSE\n",
        )
        .expect("write extensions");
        let mut req = vec!["openssl", "req"];
        req.extend_from_slice(&ec);
        req.extend_from_slice(&[
            "-subj",
            "/CN=www.example.com",
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        sh(&req);
        sh(&[
            "openssl",
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ]);
        (cert, key)
    }

    fn path(&self) -> NetPath {
        NetPath {
            iface: "eth0".into(),
            ifindex: 0, // filled in inside the namespace
            our_mac: MacAddr(DIRECTOR_MAC),
            src: self.src(),
            rip: self.rip(),
            next_hop_mac: MacAddr(SERVER_MAC),
            method: ForwardingMethod::DirectRouting,
            encap: Default::default(),
        }
    }

    fn target(&self, port: u16) -> Target {
        Target {
            vip: self.vip(),
            src: self.src(),
            port,
            mtu: 1500,
        }
    }

    /// Runs one session from the director's namespace.
    fn check(&self, port: u16, check: AppCheck) -> Outcome {
        let (path, target) = (self.path(), self.target(port));
        self.director.in_ns(move || {
            let mut path = path;
            path.ifindex = ifindex("eth0");
            session::run(
                &path,
                &target,
                &check,
                Instant::now() + Duration::from_secs(5),
            )
            .unwrap_or_else(|e| panic!("session error: {e}"))
        })
    }

    /// The director's ruleset, rules and routes; the real server's connections.
    fn snapshot(&self) -> (String, String) {
        let d = &self.director;
        let director = [
            d.run("nft", &["list", "ruleset"]),
            d.ip("rule"),
            d.ip("-6 rule"),
            d.ip("route show table all"),
            d.ip("-6 route show table all"),
        ]
        .join("\n");
        let conns: Vec<String> = self
            .server
            .run("ss", &["-tanH"])
            .lines()
            .filter(|l| !l.starts_with("LISTEN"))
            .map(str::to_string)
            .collect();
        (director, conns.join("\n"))
    }

    /// Waits (bounded) for the state to return to the baseline, then asserts it.
    fn assert_clean(&self) {
        let until = Instant::now() + Duration::from_secs(3);
        let mut now = self.snapshot();
        while now != self.baseline && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
            now = self.snapshot();
        }
        assert_eq!(now.0, self.baseline.0, "the director's state changed");
        assert_eq!(now.1, self.baseline.1, "the real server kept a connection");
    }
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn http(status: &str, body: Option<&str>, digest: Option<String>) -> HttpExpect {
    HttpExpect {
        path: "/index.html".into(),
        host: Some("www.example.com".into()),
        status: StatusRange::parse(status).expect("range"),
        body_contains: body.map(str::to_string),
        digest,
    }
}

/// The MD5 of the page, from the system's md5sum (an implementation not under test).
fn page_digest(lab: &Lab) -> String {
    let out = sh(&[
        "md5sum",
        &lab.dir.path().join("index.html").display().to_string(),
    ]);
    out.split_whitespace()
        .next()
        .expect("md5sum output")
        .to_string()
}

const SERVER_PY: &str = r#"
import http.server, os, socket, ssl, sys
addr, port, mode, root = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
if mode == "hang":
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(8)
    print("ready", flush=True)
    held = []
    while True:
        c, _ = s.accept(); held.append(c)
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        path = os.path.join(root, self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_error(404); return
        body = open(path, "rb").read()
        self.send_response(503 if mode == "status503" else 200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Host", self.headers.get("Host", ""))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class Server(http.server.HTTPServer):
    address_family = family
srv = Server((addr, port), Handler)
if mode == "https":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[5], sys.argv[6])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"#;

fn up_through_vip(v6: bool, director_has_vip: bool) {
    let mut lab = Lab::new(v6, director_has_vip);
    let vip = lab.vip();
    lab.serve(vip, 80, "ok");
    let digest = page_digest(&lab);
    let o = lab.check(
        80,
        AppCheck::Http(http("200-299", Some("service is up"), Some(digest.clone()))),
    );
    assert!(o.is_up(), "expected up, got {o}");
    assert_eq!(o.status, Some(200));
    assert_eq!(o.body_len, Some(BODY.len()));
    assert_eq!(o.digest.as_deref(), Some(digest.as_str()));
    let o = lab.check(80, AppCheck::TcpSession);
    assert!(o.is_up(), "tcp-session: expected up, got {o}");
    lab.assert_clean();
}

#[test]
fn http_on_the_vip_is_up_ipv4_director_without_vip() {
    if privileged("http_on_the_vip_is_up_ipv4_director_without_vip") {
        up_through_vip(false, false);
    }
}

#[test]
fn http_on_the_vip_is_up_ipv4_director_with_vip() {
    if privileged("http_on_the_vip_is_up_ipv4_director_with_vip") {
        up_through_vip(false, true);
    }
}

#[test]
fn http_on_the_vip_is_up_ipv6_director_without_vip() {
    if privileged("http_on_the_vip_is_up_ipv6_director_without_vip") {
        up_through_vip(true, false);
    }
}

#[test]
fn http_on_the_vip_is_up_ipv6_director_with_vip() {
    if privileged("http_on_the_vip_is_up_ipv6_director_with_vip") {
        up_through_vip(true, true);
    }
}

/// The case the SYN check on the management address cannot see: the service answers on
/// the real server's own address but not on the VIP.
fn management_only_is_down(v6: bool) {
    let mut lab = Lab::new(v6, false);
    let rip = lab.rip();
    lab.serve(rip, 8080, "ok");
    // The server does answer on the management address (what HTTP_GET would test)...
    let url = match rip {
        IpAddr::V6(a) => format!("http://[{a}]:8080/index.html"),
        IpAddr::V4(a) => format!("http://{a}:8080/index.html"),
    };
    let page = lab.director.run("curl", &["-sf", "--max-time", "5", &url]);
    assert_eq!(page, BODY);
    // ...but not through the VIP.
    let o = lab.check(8080, AppCheck::Http(http("200-299", None, None)));
    assert_eq!(o.reason, session::Reason::Refused, "got {o}");
    let o = lab.check(8080, AppCheck::TcpSession);
    assert_eq!(o.reason, session::Reason::Refused, "tcp-session: got {o}");
    lab.assert_clean();
}

#[test]
fn server_on_management_address_only_is_down_through_the_vip_ipv4() {
    if privileged("server_on_management_address_only_is_down_through_the_vip_ipv4") {
        management_only_is_down(false);
    }
}

#[test]
fn server_on_management_address_only_is_down_through_the_vip_ipv6() {
    if privileged("server_on_management_address_only_is_down_through_the_vip_ipv6") {
        management_only_is_down(true);
    }
}

#[test]
fn wrong_status_and_wrong_body_are_down() {
    if !privileged("wrong_status_and_wrong_body_are_down") {
        return;
    }
    let mut lab = Lab::new(false, false);
    let vip = lab.vip();
    lab.serve(vip, 80, "ok");
    lab.serve(vip, 81, "status503");
    let o = lab.check(81, AppCheck::Http(http("200-299", None, None)));
    assert!(
        matches!(
            o.reason,
            session::Reason::Mismatch(session::Mismatch::Status { got: 503, .. })
        ),
        "got {o}"
    );
    assert_eq!(o.status, Some(503));
    let mut missing = http("200-299", None, None);
    missing.path = "/nothing-here".into();
    let o = lab.check(80, AppCheck::Http(missing));
    assert_eq!(o.status, Some(404), "got {o}");
    assert!(!o.is_up());
    let o = lab.check(
        80,
        AppCheck::Http(http("200-299", Some("maintenance"), None)),
    );
    assert!(
        matches!(
            o.reason,
            session::Reason::Mismatch(session::Mismatch::Body { .. })
        ),
        "got {o}"
    );
    let o = lab.check(80, AppCheck::Http(http("200", None, Some("0".repeat(32)))));
    assert!(
        matches!(
            o.reason,
            session::Reason::Mismatch(session::Mismatch::Digest { .. })
        ),
        "got {o}"
    );
    lab.assert_clean();
}

fn https_up(v6: bool, director_has_vip: bool) {
    let mut lab = Lab::new(v6, director_has_vip);
    let vip = lab.vip();
    lab.serve(vip, 443, "https");
    let tls = session::TlsOptions {
        sni: Some("www.example.com".into()),
        verify: false,
        ca_file: None,
    };
    let o = lab.check(
        443,
        AppCheck::Https(
            http("200", Some("service is up"), Some(page_digest(&lab))),
            tls.clone(),
        ),
    );
    assert!(o.is_up(), "expected up, got {o}");
    // With verification: accepted against the test CA for the right name, refused for
    // another name.
    let strict = session::TlsOptions {
        verify: true,
        ca_file: Some(lab.dir.path().join("ca.pem")),
        ..tls
    };
    let o = lab.check(
        443,
        AppCheck::Https(http("200", None, None), strict.clone()),
    );
    assert!(o.is_up(), "verified against the test CA: got {o}");
    let wrong_name = session::TlsOptions {
        sni: Some("other.example.org".into()),
        ..strict
    };
    let o = lab.check(443, AppCheck::Https(http("200", None, None), wrong_name));
    assert!(matches!(o.reason, session::Reason::Tls(_)), "got {o}");
    lab.assert_clean();
}

#[test]
fn https_with_a_test_certificate_is_up_ipv4() {
    if privileged("https_with_a_test_certificate_is_up_ipv4") {
        https_up(false, false);
    }
}

#[test]
fn https_with_a_test_certificate_is_up_ipv6_director_with_vip() {
    if privileged("https_with_a_test_certificate_is_up_ipv6_director_with_vip") {
        https_up(true, true);
    }
}

/// Child half of the SIGKILL test: runs one long session when asked through the
/// environment, and does nothing otherwise.
#[test]
#[ignore = "helper: run by probe_killed_mid_session_leaves_nothing_behind"]
fn appcheck_child_session() {
    let Ok(spec) = std::env::var("VIPCHECK_APPCHECK_CHILD") else {
        return;
    };
    let parts: Vec<&str> = spec.split(',').collect();
    let (netns, v6) = (parts[0].to_string(), parts[1] == "6");
    let budget = Duration::from_secs(parts.get(2).and_then(|p| p.parse().ok()).unwrap_or(30));
    let guarded = parts.get(3) != Some(&"unguarded");
    let src: IpAddr = if v6 { "2001:db8::1" } else { "192.0.2.1" }
        .parse()
        .unwrap();
    let vip: IpAddr = if v6 { "2001:db8::20" } else { "192.0.2.20" }
        .parse()
        .unwrap();
    let rip: IpAddr = if v6 { "2001:db8::11" } else { "192.0.2.11" }
        .parse()
        .unwrap();
    let o = in_named(&netns, move || {
        let path = NetPath {
            iface: "eth0".into(),
            ifindex: ifindex("eth0"),
            our_mac: MacAddr(DIRECTOR_MAC),
            src,
            rip,
            next_hop_mac: MacAddr(SERVER_MAC),
            method: ForwardingMethod::DirectRouting,
            encap: Default::default(),
        };
        let target = Target {
            vip,
            src,
            port: 80,
            mtu: 1500,
        };
        let run = if guarded {
            session::run
        } else {
            session::run_unguarded
        };
        run(
            &path,
            &target,
            &AppCheck::Http(http("200", None, None)),
            Instant::now() + budget,
        )
    });
    println!("child outcome: {o:?}");
}

fn killed_mid_session(v6: bool, director_has_vip: bool) {
    let mut lab = Lab::new(v6, director_has_vip);
    let vip = lab.vip();
    lab.serve(vip, 80, "hang");
    let exe = std::env::current_exe().expect("test binary");
    let child = Command::new(exe)
        .args([
            "--exact",
            "appcheck_child_session",
            "--ignored",
            "--nocapture",
        ])
        .env(
            "VIPCHECK_APPCHECK_CHILD",
            format!("{},{}", lab.director.name(), if v6 { 6 } else { 4 }),
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("start the child probe");
    let mut child = ChildGuard(child);
    // Wait (bounded) until the real server holds the session and the director the table.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let conns = lab.server.run("ss", &["-tanH", "state", "established"]);
        let rules = lab.director.run("nft", &["list", "ruleset"]);
        if !conns.trim().is_empty() && rules.contains("vipcheck_") {
            break;
        }
        assert!(Instant::now() < until, "the session never got established");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGKILL) };
    let _ = child.0.wait();
    lab.assert_clean();
}

#[test]
fn probe_killed_mid_session_leaves_nothing_behind_ipv4() {
    if privileged("probe_killed_mid_session_leaves_nothing_behind_ipv4") {
        killed_mid_session(false, true);
    }
}

#[test]
fn probe_killed_mid_session_leaves_nothing_behind_ipv6() {
    if privileged("probe_killed_mid_session_leaves_nothing_behind_ipv6") {
        killed_mid_session(true, false);
    }
}

/// The guard is what keeps the session alive on a director without the VIP: without it,
/// the director's kernel resets the real server's side.
#[test]
fn without_the_guard_the_directors_rsts_break_the_session() {
    if !privileged("without_the_guard_the_directors_rsts_break_the_session") {
        return;
    }
    let mut lab = Lab::new(false, false);
    let vip = lab.vip();
    lab.serve(vip, 80, "ok");
    let run_child = |guard: &str| {
        let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
        cmd.args([
            "--exact",
            "appcheck_child_session",
            "--ignored",
            "--nocapture",
        ])
        .env(
            "VIPCHECK_APPCHECK_CHILD",
            format!("{},4,5,{guard}", lab.director.name()),
        );
        let out = cmd.output().expect("run the child probe");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let with_guard = run_child("guarded");
    assert!(
        with_guard.contains("reason: Answered"),
        "with the guard: {with_guard}"
    );
    let without = run_child("unguarded");
    assert!(
        without.contains("reason: Reset"),
        "without the guard: {without}"
    );
    lab.assert_clean();
}

/// The command line: `vipcheck appcheck` exits 0 when up, 1 when down, and prints the
/// verdict as JSON on request.
#[test]
fn appcheck_command_exit_status_and_json() {
    if !privileged("appcheck_command_exit_status_and_json") {
        return;
    }
    let mut lab = Lab::new(false, false);
    let vip = lab.vip();
    lab.serve(vip, 80, "ok");
    let run = |port: &str, extra: &[&str]| {
        let mut args = vec![
            "appcheck",
            "--iface",
            "eth0",
            "--src",
            "192.0.2.1",
            "--next-hop-mac",
            "02:00:5e:00:00:11",
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--port",
            port,
            "--timeout",
            "3s",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = lab
            .director
            .command(env!("CARGO_BIN_EXE_vipcheck"))
            .args(&args)
            .output()
            .expect("run vipcheck appcheck");
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (
            out.status.code(),
            json,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, json, err) = run("80", &["--check", "http", "--http-path", "/index.html"]);
    assert_eq!(code, Some(0), "{json} {err}");
    assert_eq!(json["up"], true);
    assert_eq!(json["status"], 200);
    let (code, json, err) = run(
        "80",
        &[
            "--check",
            "http",
            "--http-path",
            "/index.html",
            "--expect-body",
            "nope",
        ],
    );
    assert_eq!(code, Some(1), "{json} {err}");
    assert_eq!(json["up"], false);
    assert_eq!(json["status"], 200);
    assert_eq!(json["reason"], "the body does not contain \"nope\"");
    let (code, json, _) = run("8080", &["--check", "tcp-session"]);
    assert_eq!(code, Some(1));
    assert_eq!(json["reason"], "connection refused on the VIP (RST to SYN)");
    let (code, _, err) = run("80", &["--check", "http", "--expect-status", "2xx"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--expect-status"), "{err}");
    lab.assert_clean();
}

/// A page larger than the session's receive buffer arrives whole (window updates, many
/// segments, GRO on the veth) and its digest matches the file's.
#[test]
fn large_page_is_read_whole_and_digested() {
    if !privileged("large_page_is_read_whole_and_digested") {
        return;
    }
    let mut lab = Lab::new(false, false);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let file = lab.dir.path().join("big.bin");
    std::fs::write(&file, &big).expect("write big page");
    let digest = sh(&["md5sum", &file.display().to_string()]);
    let digest = digest
        .split_whitespace()
        .next()
        .expect("md5sum")
        .to_string();
    let vip = lab.vip();
    lab.serve(vip, 80, "ok");
    let mut expect = http("200", None, Some(digest));
    expect.path = "/big.bin".into();
    let o = lab.check(80, AppCheck::Http(expect));
    assert!(o.is_up(), "{o}");
    assert_eq!(o.body_len, Some(big.len()));
    lab.assert_clean();
}

/// `vipcheck probe --check http|tcp-session`: the prober resolves the path itself (route,
/// neighbour, source) and runs the application check through the VIP after the VIP checks.
#[test]
fn probe_check_http_runs_the_session_through_the_vip() {
    if !privileged("probe_check_http_runs_the_session_through_the_vip") {
        return;
    }
    let mut lab = Lab::new(false, true);
    let vip = lab.vip();
    lab.serve(vip, 80, "ok");
    let rip = lab.rip();
    lab.serve(rip, 8080, "ok");
    let probe = |port: &str, extra: &[&str]| {
        let mut args = vec![
            "probe",
            "--vip",
            "192.0.2.20",
            "--rip",
            "192.0.2.11",
            "--port",
            port,
            "--timeout",
            "3s",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = lab
            .director
            .command(env!("CARGO_BIN_EXE_vipcheck"))
            .args(&args)
            .output()
            .expect("run vipcheck probe");
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code(), json)
    };
    let (code, json) = probe(
        "80",
        &[
            "--check",
            "http",
            "--http-path",
            "/index.html",
            "--expect-body",
            "vipcheck",
        ],
    );
    assert_eq!(code, Some(0), "{json}");
    let kinds: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["check"].as_str())
        .collect();
    assert_eq!(kinds, ["icmp", "arp", "http"], "{json}");
    // The wrong body is down, with the session's reason.
    let (code, json) = probe(
        "80",
        &[
            "--check",
            "http",
            "--http-path",
            "/index.html",
            "--expect-body",
            "nope",
        ],
    );
    assert_eq!(code, Some(1), "{json}");
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains("does not contain \"nope\""),
        "{json}"
    );
    // A service bound to the management address only: the VIP is there, the session is
    // refused through it.
    let (code, json) = probe("8080", &["--check", "tcp-session"]);
    assert_eq!(code, Some(1), "{json}");
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{json}"
    );
    lab.assert_clean();
}
