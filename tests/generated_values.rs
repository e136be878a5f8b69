//! What the rewrite puts into generated commands and files comes back as the same values:
//! the probe path is one word keepalived does not split, a value starting with '-' is never
//! read as an option, an ldirectord request is encoded as ldirectord encodes it, and a
//! replacement template that would break the next run or the daemon is refused.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use vipcheck::cli::{Cli, Command as Sub, ProbeArgs};
use vipcheck::config::ldirectord::{self, OfflineResolver};
use vipcheck::generate::Generator;
use vipcheck::rewrite::{ldirectord::ldirectord_url, ldirectord::plan, GenerateOptions};

fn vipcheck(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vipcheck"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses a `vipcheck probe` argument vector (program name first) with vipcheck's own
/// command line definitions, as the probe does when the daemon runs it.
fn parse_probe(argv: &[String]) -> ProbeArgs {
    let cli =
        Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("the probe cannot read {argv:?}: {e}"));
    match cli.command {
        Sub::Probe(args) => args,
        other => panic!("not a probe command: {other:?}"),
    }
}

const KEEPALIVED: &str = "global_defs {\n    router_id LVS_DR\n}\n\n\
virtual_server 192.0.2.20 80 {\n    lb_kind DR\n    protocol TCP\n\
    real_server 192.0.2.11 80 {\n        weight 1\n    }\n}\n";

#[test]
fn a_probe_path_keepalived_would_split_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("keepalived.conf");
    std::fs::write(&config, KEEPALIVED).unwrap();
    let ld = tmp.path().join("ldirectord.cf");
    let ld_text = "virtual=192.0.2.20:80\n\treal=192.0.2.11:80 gate\n\tchecktype=connect\n";
    std::fs::write(&ld, ld_text).unwrap();
    for bad in [
        "/opt/vip check/vipcheck",
        "/opt/vip'check",
        "/opt/vip\"check",
        "/opt/vip\\check",
        "/opt/vip\tcheck",
        "/opt/$VIP/vipcheck",
    ] {
        for file in ["keepalived.conf", "ldirectord.cf"] {
            for mode in ["--dry-run", "--in-place"] {
                let out = vipcheck(&["rewrite", file, mode, "--probe-path", bad], tmp.path());
                let err = text(&out.stderr);
                assert_eq!(out.status.code(), Some(2), "{bad} {file} {mode}: {err}");
                assert!(
                    err.contains("--probe-path") && err.contains("hint"),
                    "{bad}: {err}"
                );
                assert!(out.stdout.is_empty(), "{bad}: {}", text(&out.stdout));
            }
        }
    }
    assert_eq!(std::fs::read_to_string(&config).unwrap(), KEEPALIVED);
    assert_eq!(std::fs::read_to_string(&ld).unwrap(), ld_text);
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["keepalived.conf", "ldirectord.cf"],
        "no wrapper written"
    );
    // A plain path is taken, and is the misc_path's first word.
    let out = vipcheck(
        &[
            "rewrite",
            "keepalived.conf",
            "--dry-run",
            "--probe-path",
            "/usr/local/sbin/vip-check_1.2",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("misc_path \"/usr/local/sbin/vip-check_1.2 probe "));
}

/// The `misc_path` of every generated MISC_CHECK in `text`, split at white space as
/// keepalived splits it.
fn misc_paths(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("misc_path \""))
        .map(|rest| {
            rest.trim_end_matches('"')
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[test]
fn a_keepalived_app_check_value_starting_with_a_dash_stays_a_value() {
    let tmp = tempfile::tempdir().unwrap();
    let config = "global_defs {\n    router_id LVS_DR\n}\n\
virtual_server 192.0.2.20 80 {\n    lb_kind DR\n    protocol TCP\n\
    real_server 192.0.2.11 80 {\n        HTTP_GET {\n            url {\n                path /health\n\
                status_code 200\n            }\n            virtualhost --tls-verify\n        }\n    }\n}\n";
    std::fs::write(tmp.path().join("keepalived.conf"), config).unwrap();
    let out = vipcheck(
        &[
            "rewrite",
            "keepalived.conf",
            "-o",
            "out.conf",
            "--app-check",
            "--probe-path",
            "/usr/sbin/vipcheck",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(tmp.path().join("out.conf")).unwrap();
    let commands = misc_paths(&written);
    assert_eq!(commands.len(), 1, "{written}");
    let args = parse_probe(&commands[0]);
    assert_eq!(
        args.app.http_host.as_deref(),
        Some("--tls-verify"),
        "{written}"
    );
    assert!(
        !args.app.tls_verify,
        "the value became an option: {written}"
    );
    assert_eq!(args.app.http_path, "/health");
    assert_eq!(args.app.expect_status, "200");
}

/// A one-thread HTTP server on 127.0.0.1 answering `200 OK` with `body`; keeps the
/// request lines it saw; stops when dropped (and after 30 s in any case).
struct HttpServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    fn start(body: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, halt) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !halt.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 65536 {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let first = text(&req).lines().next().unwrap_or("").to_string();
                seen.lock().unwrap().push(first);
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
        HttpServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
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

/// A temp dir with a stub `vipcheck` that records each call's arguments, one per line
/// (argument boundaries kept), and exits 0.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stub = dir.path().join("vipcheck");
        std::fs::write(
            &stub,
            "#!/bin/sh\nd=$(dirname \"$0\")\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$d/probe.argv\"\nexit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Rewrites `config` and writes the wrappers; returns the wrapper paths.
    fn rewrite(&self, config: &str, app_check: bool) -> Vec<PathBuf> {
        let doc = ldirectord::parse_str(
            self.path("ldirectord.cf"),
            config.to_string(),
            &OfflineResolver::default(),
        )
        .unwrap_or_else(|d| panic!("{d}"));
        let mut opts = GenerateOptions::new(self.path("vipcheck"));
        opts.fwmark_vips = BTreeMap::new();
        opts.output_dir = Some(self.dir.path().to_path_buf());
        opts.app_check = app_check;
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

    /// The last probe call's argument vector, with a program name first.
    fn probe_argv(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.path("probe.argv")).unwrap_or_default();
        std::iter::once("vipcheck".to_string())
            .chain(log.lines().map(str::to_string))
            .collect()
    }
}

/// Runs a wrapper as ldirectord does: exec, no shell, VIP VPORT RIP RPORT.
fn run(wrapper: &Path, args: [&str; 4]) -> Output {
    common::output_fresh(Command::new(wrapper).args(args))
}

#[test]
fn an_ldirectord_app_check_value_starting_with_a_dash_stays_a_value() {
    let s = Setup::new();
    let config = "virtual=192.0.2.20:80\n\treal=127.0.0.1:8080 gate\n\tservice=http\n\
        \trequest=\"health\"\n\treceive=\"-v\"\n\tvirtualhost=--tls-verify\n";
    let wrappers = s.rewrite(config, true);
    let out = run(&wrappers[0], ["192.0.2.20", "80", "127.0.0.1", "8080"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let argv = s.probe_argv();
    let args = parse_probe(&argv);
    assert_eq!(
        args.app.http_host.as_deref(),
        Some("--tls-verify"),
        "{argv:?}"
    );
    assert!(!args.app.tls_verify, "{argv:?}");
    assert_eq!(args.app.expect_body.as_deref(), Some("-v"), "{argv:?}");
    assert_eq!(args.app.http_path, "/health");
    assert_eq!(args.positional, ["192.0.2.20", "80", "127.0.0.1", "8080"]);
}

/// What perl's URI module (which ldirectord's LWP check uses) makes of `url`, or `None`
/// when perl or the module is missing.
fn perl_uri(url: &str) -> Option<String> {
    let out = Command::new("perl")
        .args(["-MURI", "-e", "print URI->new($ARGV[0])", url])
        .output()
        .ok()?;
    out.status.success().then(|| text(&out.stdout))
}

#[test]
fn ldirectord_urls_are_encoded_as_perls_uri_module_does() {
    let have = perl_uri("http://h/").is_some();
    if !common::require(have, "perl with URI.pm (liburi-perl) is not installed") {
        return;
    }
    for url in [
        "http://192.0.2.11:80/a b",
        "http://192.0.2.11:80/a%20b?x=1 2&y=\"z\"",
        "http://192.0.2.11:80/<tag>|{}^`\\",
        "http://192.0.2.11:80/caf\u{e9}/\u{2603}",
        "http://[2001:db8::11]:8080/x[1]",
        "https://192.0.2.11:443/ trailing ",
        "http://192.0.2.11:80/;/?:@&=+$,-_.!~*'()",
    ] {
        let perl = perl_uri(url).unwrap();
        // The fragment is never sent (by LWP or curl); it is cut.
        let perl = perl.split('#').next().unwrap().to_string();
        assert_eq!(ldirectord_url(url), perl, "{url}");
    }
}

#[test]
fn an_ldirectord_request_with_a_space_is_sent_as_ldirectord_sends_it() {
    let tools = ["curl", "perl", "timeout"]
        .iter()
        .all(|t| common::which(t).is_some());
    if !common::require(
        tools,
        "curl, perl or timeout is not installed (the wrapper needs them)",
    ) {
        return;
    }
    let server = HttpServer::start("all good\n");
    let port = server.port.to_string();
    let s = Setup::new();
    let config = format!(
        "virtual=192.0.2.20:80\n\treal=127.0.0.1:{port} gate\n\tservice=http\n\
         \trequest=\"/a b?q=x y\"\n\treceive=\"good\"\n\tnegotiatetimeout=5\n"
    );
    let wrappers = s.rewrite(&config, false);
    // The real server from the wrapper's table ...
    let out = run(&wrappers[0], ["192.0.2.20", "80", "127.0.0.1", &port]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // ... and one the table does not list (the wrapper builds its URL at run time).
    let config2 = config.replace("real=127.0.0.1", "real=127.0.0.2");
    let wrappers = s.rewrite(&config2, false);
    let out = run(&wrappers[0], ["192.0.2.20", "80", "127.0.0.1", &port]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let seen = server.requests.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for line in &seen {
        assert_eq!(line, "GET /a%20b?q=x%20y HTTP/1.1", "{seen:?}");
    }
    // Through the VIP (--app-check) the probe asks for the same encoded path.
    let wrappers = s.rewrite(&config, true);
    let out = run(&wrappers[0], ["192.0.2.20", "80", "127.0.0.1", &port]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let args = parse_probe(&s.probe_argv());
    assert_eq!(args.app.http_path, "/a%20b?q=x%20y");
}

/// Writes `text` as the replacement template `name` in a new template dir under `root`.
fn template_dir(root: &Path, name: &str, text: &str) -> PathBuf {
    let dir = root.join("templates");
    let file = dir.join(name);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, text).unwrap();
    dir
}

/// Runs `rewrite --in-place` of `config_name` (holding `config`) with a replacement
/// template; returns the output and asserts the config was left as it was.
fn rewrite_with_template(config_name: &str, config: &str, name: &str, template: &str) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(config_name);
    std::fs::write(&path, config).unwrap();
    let dir = template_dir(tmp.path(), name, template);
    let out = vipcheck(
        &[
            "rewrite",
            config_name,
            "--in-place",
            "--probe-path",
            "/usr/sbin/vipcheck",
            "--templates",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    );
    if out.status.code() != Some(0) {
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            config,
            "config changed"
        );
        let wrappers = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("vipcheck-check")
            })
            .count();
        assert_eq!(wrappers, 0, "a wrapper was written");
    }
    out
}

fn assert_refused_naming(out: &Output, name: &str, why: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("templates/{name}")), "{err}");
    assert!(err.contains(why), "{err}");
}

const MISC: &str = "keepalived/misc_check.conf.j2";

#[test]
fn a_template_without_the_markers_is_refused() {
    let t = "{{ indent }}MISC_CHECK {\n{{ indent }}    misc_path \"{{ command_line }}\"\n{{ indent }}}\n";
    let out = rewrite_with_template("keepalived.conf", KEEPALIVED, MISC, t);
    assert_refused_naming(&out, MISC, "no '# vipcheck:begin' line");
    let t = "{{ lead }}{{ indent }}checktype=external\n{{ indent }}checkcommand={{ wrapper }}\n";
    let ld = "virtual=192.0.2.20:80\n\treal=192.0.2.11:80 gate\n\tchecktype=connect\n";
    let out = rewrite_with_template("ldirectord.cf", ld, "ldirectord/directives.cf.j2", t);
    assert_refused_naming(
        &out,
        "ldirectord/directives.cf.j2",
        "no '# vipcheck:begin' line",
    );
}

#[test]
fn an_empty_template_is_refused() {
    let out = rewrite_with_template("keepalived.conf", KEEPALIVED, MISC, "");
    assert_refused_naming(&out, MISC, "no '# vipcheck:begin' line");
    let t = "{{ indent }}# vipcheck:begin\n{{ indent }}# vipcheck:end\n";
    let out = rewrite_with_template("keepalived.conf", KEEPALIVED, MISC, t);
    assert_refused_naming(&out, MISC, "adds no MISC_CHECK");
    let out = rewrite_with_template(
        "ldirectord.cf",
        "virtual=192.0.2.20:80\n\treal=192.0.2.11:80 gate\n\tchecktype=connect\n",
        "ldirectord/check_wrapper.sh.j2",
        "",
    );
    assert_refused_naming(&out, "ldirectord/check_wrapper.sh.j2", "'#!'");
}

#[test]
fn an_unbalanced_template_is_refused() {
    let t = "{{ indent }}# vipcheck:begin\n{{ indent }}MISC_CHECK {\n\
             {{ indent }}    misc_path \"{{ command_line }}\"\n{{ indent }}# vipcheck:end\n";
    let out = rewrite_with_template("keepalived.conf", KEEPALIVED, MISC, t);
    assert_refused_naming(&out, MISC, "would not read it");
    let t = "{{ indent }}# vipcheck:begin\n{{ indent }}MISC_CHECK {\n\
             {{ indent }}    misc_path \"{{ command_line }}\"\n{{ indent }}}\n{{ indent }}}\n{{ indent }}# vipcheck:end\n";
    let out = rewrite_with_template("keepalived.conf", KEEPALIVED, MISC, t);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("templates/keepalived/misc_check.conf.j2"),
        "{err}"
    );
}

#[test]
fn a_good_replacement_template_is_used_and_a_second_run_changes_nothing() {
    let t = "{{ indent }}# vipcheck:begin my own\n{{ indent }}MISC_CHECK {\n\
             {{ indent }}    misc_path \"{{ command_line }}\"\n{{ indent }}    misc_timeout {{ misc_timeout }}\n\
             {{ indent }}    user nobody\n{{ indent }}}\n{{ indent }}# vipcheck:end\n";
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("keepalived.conf"), KEEPALIVED).unwrap();
    let dir = template_dir(tmp.path(), MISC, t);
    let args = [
        "rewrite",
        "keepalived.conf",
        "--in-place",
        "--probe-path",
        "/usr/sbin/vipcheck",
        "--templates",
        dir.to_str().unwrap(),
    ];
    let out = vipcheck(&args, tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let once = std::fs::read_to_string(tmp.path().join("keepalived.conf")).unwrap();
    assert_eq!(once.matches("user nobody").count(), 1, "{once}");
    let out = vipcheck(&args, tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let twice = std::fs::read_to_string(tmp.path().join("keepalived.conf")).unwrap();
    assert_eq!(once, twice);
}
