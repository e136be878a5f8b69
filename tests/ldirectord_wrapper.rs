//! Runs generated ldirectord wrappers: a stub `vipcheck` (a shell script recording its
//! arguments) stands in for the probe, and a local HTTP server on 127.0.0.1 for the real
//! server, to prove the chained original check decides together with the probe.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vipcheck::config::ldirectord::{self, OfflineResolver};
use vipcheck::generate::Generator;
use vipcheck::rewrite::{ldirectord::plan, GenerateOptions};

/// True when the tools the wrappers use are here; a skip (the one rule) otherwise.
#[track_caller]
fn tools() -> bool {
    common::tools(&[
        ("curl", "curl"),
        ("perl", "perl"),
        ("bash", "bash"),
        ("timeout", "coreutils"),
    ])
}

/// A one-thread HTTP server answering every request with `status` and `body`; it keeps
/// the requests it saw and stops when dropped (and after 30 s in any case).
struct HttpServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    fn start(status: &'static str, body: &'static str) -> Self {
        Self::start_on("127.0.0.1:0", status, body).unwrap()
    }

    fn start_on(addr: &str, status: &'static str, body: &'static str) -> Option<Self> {
        let listener = TcpListener::bind(addr).ok()?;
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, halt) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !halt.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(req) = serve(stream, status, body) {
                            seen.lock().unwrap().push(req);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Some(HttpServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, status: &str, body: &str) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 65536 {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let reply = format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).ok()?;
    Some(String::from_utf8_lossy(&req).into_owned())
}

/// A temp dir with a stub `vipcheck` that logs each call's arguments, boundaries kept
/// (the count, then every argument NUL-terminated, then an RS byte), and exits 1 when the
/// file `probe-fails` exists.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stub = dir.path().join("vipcheck");
        std::fs::write(
            &stub,
            "#!/bin/sh\nd=$(dirname \"$0\")\n{ printf '%s\\000' \"$#\" \"$@\"; printf '\\036'; } >> \"$d/probe.log\"\n[ -e \"$d/probe-fails\" ] && exit 1\nexit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Rewrites `config` and writes the wrappers; returns the wrapper paths.
    fn rewrite(&self, config: &str) -> Vec<PathBuf> {
        self.rewrite_with(config, false)
    }

    /// As `rewrite`, with `--app-check` on or off.
    fn rewrite_with(&self, config: &str, app_check: bool) -> Vec<PathBuf> {
        let doc = ldirectord::parse_str(
            self.path("ldirectord.cf"),
            config.to_string(),
            &OfflineResolver::default(),
        )
        .unwrap_or_else(|d| panic!("{d}"));
        let opts = GenerateOptions {
            probe_path: self.path("vipcheck"),
            probe_timeout: Duration::from_secs(2),
            fwmark_vips: BTreeMap::new(),
            templates: None,
            config_id: None,
            output_dir: Some(self.dir.path().to_path_buf()),
            app_check,
            feed: vipcheck::rewrite::Feed::Probe,
        };
        let plan = plan(&doc, &Generator::new(None).unwrap(), &opts).unwrap();
        plan.new_files
            .iter()
            .map(|f| {
                std::fs::write(&f.path, &f.contents).unwrap();
                std::fs::set_permissions(&f.path, std::fs::Permissions::from_mode(0o755)).unwrap();
                f.path.clone()
            })
            .collect()
    }

    /// The argument vector of every call of the stub, in order.
    fn probe_calls(&self) -> Vec<Vec<String>> {
        let log = std::fs::read(self.path("probe.log")).unwrap_or_default();
        let log = String::from_utf8(log).expect("the stub logs UTF-8");
        let mut calls = Vec::new();
        for record in log.split_terminator('\u{1e}') {
            let mut fields: Vec<String> =
                record.split_terminator('\0').map(str::to_string).collect();
            assert!(!fields.is_empty(), "empty record in {log:?}");
            let count: usize = fields.remove(0).parse().expect("argument count");
            assert_eq!(fields.len(), count, "argument boundaries lost: {log:?}");
            calls.push(fields);
        }
        calls
    }
}

/// An argument vector from words (each one argument, spaces and all).
fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Runs the wrapper the way ldirectord does: exec, no shell, four arguments.
fn run(wrapper: &Path, args: [&str; 4]) -> i32 {
    let out = common::output_fresh(Command::new(wrapper).args(args));
    out.status.code().unwrap_or(-1)
}

fn negotiate_config(port: u16, receive: &str) -> String {
    format!(
        "virtual=192.0.2.20:80\n\treal=127.0.0.1:{port} gate\n\tservice=http\n\trequest=\"health\"\n\treceive=\"{receive}\"\n\tvirtualhost=www.example.test\n\tnegotiatetimeout=5\n"
    )
}

#[test]
fn negotiate_passes_for_the_right_receive_string_and_runs_the_probe() {
    if !tools() {
        return;
    }
    let server = HttpServer::start("200 OK", "status: OK 42\n");
    let s = Setup::new();
    let wrappers = s.rewrite(&negotiate_config(server.port, "OK [0-9]+"));
    let port = server.port.to_string();
    assert_eq!(
        run(&wrappers[0], ["192.0.2.20", "80", "127.0.0.1", &port]),
        0
    );
    assert_eq!(
        s.probe_calls(),
        [argv(&[
            "probe",
            "--method",
            "dr",
            "--proto",
            "tcp",
            "--timeout",
            "2s",
            "192.0.2.20",
            "80",
            "127.0.0.1",
            &port
        ])]
    );
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0].starts_with("GET /health HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
    assert!(
        requests[0].contains("\r\nHost: www.example.test\r\n"),
        "{}",
        requests[0]
    );
}

#[test]
fn negotiate_fails_for_a_wrong_receive_string() {
    if !tools() {
        return;
    }
    let server = HttpServer::start("200 OK", "status: OK 42\n");
    let s = Setup::new();
    let wrappers = s.rewrite(&negotiate_config(server.port, "NOT THERE"));
    let port = server.port.to_string();
    assert_eq!(
        run(&wrappers[0], ["192.0.2.20", "80", "127.0.0.1", &port]),
        1
    );
    assert_eq!(
        server.requests.lock().unwrap().len(),
        1,
        "the check did run"
    );
}

#[test]
fn negotiate_fails_on_an_http_error_status() {
    if !tools() {
        return;
    }
    let server = HttpServer::start("503 Service Unavailable", "OK 42");
    let s = Setup::new();
    let wrappers = s.rewrite(&negotiate_config(server.port, "OK"));
    let port = server.port.to_string();
    assert_eq!(
        run(&wrappers[0], ["192.0.2.20", "80", "127.0.0.1", &port]),
        1
    );
}

#[test]
fn a_failing_probe_fails_the_check_even_when_http_passes() {
    if !tools() {
        return;
    }
    let server = HttpServer::start("200 OK", "OK 1");
    let s = Setup::new();
    let wrappers = s.rewrite(&negotiate_config(server.port, "OK"));
    std::fs::write(s.path("probe-fails"), "").unwrap();
    let port = server.port.to_string();
    assert_eq!(
        run(&wrappers[0], ["192.0.2.20", "80", "127.0.0.1", &port]),
        1
    );
}

#[test]
fn connect_check_passes_on_an_open_port_and_fails_on_a_closed_one() {
    if !tools() {
        return;
    }
    let server = HttpServer::start("200 OK", "");
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = Setup::new();
    let config = format!(
        "virtual=192.0.2.20:80\n    real=127.0.0.1:{} gate\n    real=127.0.0.2:{closed} ipip\n    checktype=connect\n    checktimeout=3\n",
        server.port
    );
    let wrappers = s.rewrite(&config);
    let open = server.port.to_string();
    assert_eq!(
        run(&wrappers[0], ["192.0.2.20", "80", "127.0.0.1", &open]),
        0
    );
    let closed = closed.to_string();
    assert_eq!(
        run(&wrappers[0], ["192.0.2.20", "80", "127.0.0.2", &closed]),
        1
    );
    // The second real is tunnelled: the probe was asked for tun.
    let calls = s.probe_calls();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with(&argv(&["probe", "--method", "tun"]))),
        "{calls:?}"
    );
}

#[test]
fn external_check_is_chained_with_the_same_four_arguments() {
    if !tools() {
        return;
    }
    let s = Setup::new();
    let original = s.path("original check");
    std::fs::write(
        &original,
        "#!/bin/sh\nprintf '%s|' \"$@\" > \"$(dirname \"$0\")/original.log\"\nexit \"${ORIGINAL_EXIT:-0}\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&original, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        "virtual6=[2001:db8::20]:80\n    real6=[2001:db8::11]:80 gate\n    checktype=external\n    checkcommand={}\n",
        original.display()
    );
    let wrappers = s.rewrite(&config);
    let args = ["[2001:db8::20]", "80", "[2001:db8::11]", "80"];
    assert_eq!(run(&wrappers[0], args), 0);
    assert_eq!(
        std::fs::read_to_string(s.path("original.log")).unwrap(),
        "[2001:db8::20]|80|[2001:db8::11]|80|"
    );
    // The probe gets the addresses without ldirectord's brackets.
    assert_eq!(
        s.probe_calls(),
        [argv(&[
            "probe",
            "--method",
            "dr",
            "--proto",
            "tcp",
            "--timeout",
            "2s",
            "2001:db8::20",
            "80",
            "2001:db8::11",
            "80"
        ])]
    );
    let out = common::output_fresh(
        Command::new(&wrappers[0])
            .args(args)
            .env("ORIGINAL_EXIT", "3"),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failing original check fails the wrapper"
    );
}

#[test]
fn wrapper_refuses_a_wrong_argument_count() {
    let s = Setup::new();
    let wrappers = s.rewrite("virtual=192.0.2.20:80\n    real=192.0.2.11 gate\n    checktype=on\n");
    assert_eq!(
        run(&wrappers[0], ["192.0.2.20", "80", "192.0.2.11", "80"]),
        0
    );
    let out = common::output_fresh(Command::new(&wrappers[0]).arg("192.0.2.20"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(s.probe_calls().len(), 1, "no probe for a bad call");
}

#[test]
fn negotiate_reaches_an_ipv6_real_server_in_brackets() {
    if !tools() {
        return;
    }
    let Some(server) = HttpServer::start_on("[::1]:0", "200 OK", "v6 OK") else {
        common::skip("no IPv6 loopback here");
        return;
    };
    let s = Setup::new();
    let config = format!(
        "virtual6=[2001:db8::20]:80\n    real6=[::1]:{} gate\n    receive=\"v6 OK\"\n    request=\"/a[1]\"\n",
        server.port
    );
    let wrappers = s.rewrite(&config);
    let port = server.port.to_string();
    assert_eq!(
        run(&wrappers[0], ["[2001:db8::20]", "80", "[::1]", &port]),
        0
    );
    let requests = server.requests.lock().unwrap().clone();
    // Brackets in the request are sent encoded, as ldirectord's LWP (URI >= 5.11) does.
    assert!(
        requests[0].starts_with("GET /a%5B1%5D HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
}

#[test]
fn app_check_runs_the_negotiate_check_through_the_vip_instead_of_curl() {
    if !tools() {
        return;
    }
    let server = HttpServer::start("200 OK", "status: OK\n");
    let s = Setup::new();
    let wrappers = s.rewrite_with(&negotiate_config(server.port, "status: OK"), true);
    let port = server.port.to_string();
    assert_eq!(
        run(&wrappers[0], ["192.0.2.20", "80", "127.0.0.1", &port]),
        0
    );
    // `status: OK` is one argument: a wrapper that split it would still pass `echo "$@"`.
    assert_eq!(
        s.probe_calls(),
        [argv(&[
            "probe",
            "--method",
            "dr",
            "--proto",
            "tcp",
            "--timeout",
            "2s",
            "--check",
            "http",
            "--http-path=/health",
            "--http-host=www.example.test",
            "--expect-body=status: OK",
            "192.0.2.20",
            "80",
            "127.0.0.1",
            &port
        ])]
    );
    // The check went through the VIP (the probe), not to the real server's own address.
    assert!(server.requests.lock().unwrap().is_empty());
    // The probe's verdict is the wrapper's.
    std::fs::write(s.path("probe-fails"), "").unwrap();
    assert_eq!(
        run(&wrappers[0], ["192.0.2.20", "80", "127.0.0.1", &port]),
        1
    );
}

#[test]
fn app_check_keeps_curl_for_a_receive_pattern() {
    if !tools() {
        return;
    }
    let server = HttpServer::start("200 OK", "status: OK 42\n");
    let s = Setup::new();
    let wrappers = s.rewrite_with(&negotiate_config(server.port, "OK [0-9]+"), true);
    let port = server.port.to_string();
    assert_eq!(
        run(&wrappers[0], ["192.0.2.20", "80", "127.0.0.1", &port]),
        0
    );
    let calls = s.probe_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(!calls[0].iter().any(|a| a == "--check"), "{calls:?}");
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}
