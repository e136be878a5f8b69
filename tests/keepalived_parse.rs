//! The keepalived parser on fixtures written for it: the model it builds (addresses,
//! ports, methods, checks, origins, insertion points), byte-exact round trips, and golden
//! error messages for the configs keepalived would refuse.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use vipcheck::config::keepalived::{lexer, parse_file, Document, ParseOptions};
use vipcheck::config::{ForwardingMethod, Origin, Protocol, RealServer, ServiceKey};

use common::crate_dir as root;

/// Parses a fixture by its path relative to the crate (as a user would name it).
fn parse(rel: &str, id: &str) -> Document {
    let opts = ParseOptions {
        config_id: Some(id.to_string()),
    };
    let path = root().join(rel);
    parse_file(&path, &opts).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn ips(v: &[IpAddr]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

/// The text at the start of the line an insertion point is on, up to the point.
fn line_at(doc: &Document, rs: &RealServer) -> String {
    let ins = rs.insert.as_ref().expect("insertion point");
    let text = &doc.sources.file(ins.at.file).text;
    text[ins.at.start..]
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("fixture dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn every_fixture_round_trips_byte_exactly() {
    let files = files_under(&root().join("fixtures/keepalived"));
    assert!(files.len() > 10);
    for f in &files {
        let bytes = std::fs::read(f).expect("read fixture");
        // The one deliberately non-UTF-8 fixture cannot be lexed as text.
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        let tokens = lexer::lex(&text);
        assert_eq!(lexer::print(&text, &tokens), text, "{}", f.display());
    }
}

#[test]
fn parsed_sources_are_the_files_as_read() {
    let doc = parse("fixtures/keepalived/include/main.conf", "lb1");
    for (_, src) in doc.sources.files() {
        let on_disk = std::fs::read_to_string(&src.path).expect("read source");
        assert_eq!(src.text, on_disk);
        assert_eq!(lexer::print(&src.text, &lexer::lex(&src.text)), on_disk);
    }
}

#[test]
fn brace_styles_give_the_same_model() {
    let doc = parse("fixtures/keepalived/braces.conf", "lb1");
    assert_eq!(doc.services.len(), 2, "vrrp_instance is skipped");

    let web = &doc.services[0];
    assert_eq!(web.key, ServiceKey::Address(ip("192.0.2.10")));
    assert_eq!((web.port, web.protocol), (Some(80), Protocol::Tcp));
    assert_eq!(web.method, ForwardingMethod::DirectRouting);
    let rs = &web.real_servers;
    assert_eq!(rs.len(), 2, "sorry_server is not a real server");
    assert_eq!(rs[0].addr, ip("192.0.2.21"));
    assert_eq!(rs[0].weight, Some(1));
    assert_eq!(rs[0].checks.len(), 1);
    assert_eq!(rs[0].checks[0].kind, "HTTP_GET");
    // The real server on port 8080 is reached on the VIP's port in DR.
    assert_eq!((rs[1].addr, rs[1].port), (ip("192.0.2.22"), Some(80)));
    // A one-line block: the generated text goes right before its brace.
    let ins = rs[1].insert.as_ref().expect("insert");
    assert!(ins.mid_line);
    assert_eq!(line_at(&doc, &rs[1]), "}");
    assert_eq!(ins.indent, "        ");

    let v6 = &doc.services[1];
    assert_eq!(v6.vips, vec![ip("2001:db8::10")]);
    assert_eq!(v6.method, ForwardingMethod::Tunnel);
    let rs6 = &v6.real_servers[0];
    let kinds: Vec<_> = rs6.checks.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["TCP_CHECK", "MISC_CHECK"],
        "a quoted '#' and '{{}}' stay in the string"
    );
    // `}}}` closes the MISC_CHECK, the real server and the virtual server.
    let ins = rs6.insert.as_ref().expect("insert");
    assert!(ins.mid_line);
    assert_eq!(line_at(&doc, rs6), "}}");

    // The first real server's brace has only blanks before it: insert at line start.
    let ins = rs[0].insert.as_ref().expect("insert");
    assert!(!ins.mid_line);
    assert_eq!(line_at(&doc, &rs[0]), "    }");

    // Spans point at the text.
    match &rs[0].origin {
        Origin::Written(span) => {
            assert_eq!(doc.sources.slice(*span), "real_server 192.0.2.21 80");
        }
        o => panic!("written origin expected, got {o:?}"),
    }
    assert!(doc
        .sources
        .slice(rs[0].span)
        .starts_with("real_server 192.0.2.21 80\n    {"));
    assert!(doc.sources.slice(rs[0].span).ends_with('}'));
    assert_eq!(doc.sources.slice(web.span), "virtual_server 192.0.2.10 80");
    let g = doc.global_defs.insert.as_ref().expect("global_defs insert");
    assert_eq!(g.indent, "    ");
    assert!(doc.global_defs.enable_script_security.is_empty());
}

#[test]
fn includes_are_textual_sorted_and_relative() {
    let doc = parse("fixtures/keepalived/include/main.conf", "lb1");
    let labels: Vec<_> = doc.services.iter().map(|s| s.label()).collect();
    assert_eq!(
        labels,
        vec![
            "192.0.2.10:80/tcp",
            "192.0.2.20:8443/tcp",
            "192.0.2.40:443/tcp"
        ],
        "conf.d/*.conf in sorted order, then the split block"
    );
    // Each real server points into the file it is written in.
    let file_of = |i: usize| {
        let rs = &doc.services[i].real_servers[0];
        doc.sources
            .file(rs.origin.span().file)
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    };
    assert_eq!(file_of(0).as_deref(), Some("10-web.conf"));
    assert_eq!(file_of(1).as_deref(), Some("20-api.conf"));
    assert_eq!(file_of(2).as_deref(), Some("main.conf"));
    // The block opened in split/open.inc and closed in split/close.inc.
    let split = &doc.services[2];
    assert_eq!(split.method, ForwardingMethod::Tunnel);
    assert_eq!(split.real_servers[0].port, Some(443));
    assert_eq!(split.real_servers[0].checks[0].kind, "SSL_GET");
    assert_eq!(doc.global_defs.enable_script_security.len(), 1);
    let user = doc.global_defs.script_user.first().expect("script_user");
    assert!(doc.sources.slice(*user).ends_with("keepalived_script"));

    let dir = root().join("fixtures/keepalived/include");
    assert_eq!(
        doc.include_patterns,
        vec![
            dir.join("conf.d/*.conf"),
            dir.join("split/open.inc"),
            dir.join("split/close.inc"),
            dir.join("missing.d/*.conf"),
        ]
    );
    assert!(doc.include_patterns.iter().all(|p| p.is_absolute()));
    assert_eq!(doc.sources.len(), 5, "main + 2 in conf.d + 2 split files");
    assert_eq!(doc.warnings.len(), 1, "{:?}", doc.warnings);
    assert!(doc.warnings[0].message.contains("matches no file"));
}

#[test]
fn conditional_lines_follow_the_config_id() {
    let lb1 = parse("fixtures/keepalived/conditional.conf", "lb1");
    let lb2 = parse("fixtures/keepalived/conditional.conf", "lb2");
    let addrs = |d: &Document| -> Vec<String> {
        d.services[0]
            .real_servers
            .iter()
            .map(|r| r.addr.to_string())
            .collect()
    };
    assert_eq!(addrs(&lb1), vec!["192.0.2.21", "192.0.2.23"]);
    assert_eq!(addrs(&lb2), vec!["192.0.2.22", "192.0.2.23"]);
    let ids: Vec<_> = lb1.conditional_ids.iter().cloned().collect();
    assert_eq!(ids, vec!["lb1", "lb2"]);
    // Inside a conditional block, inserted lines carry the same condition.
    let rs = &lb1.services[0].real_servers[0];
    let ins = rs.insert.as_ref().expect("insert");
    assert_eq!(ins.indent, "@lb1        ");
    assert!(!ins.mid_line);
    assert_eq!(line_at(&lb1, rs), "@lb1    }");
}

#[test]
fn macros_seq_and_lst_expand_and_say_so() {
    let doc = parse("fixtures/keepalived/macros.conf", "lb1");
    let vs = &doc.services[0];
    assert_eq!(vs.vips, vec![ip("192.0.2.10")]);
    assert_eq!(vs.port, Some(80));
    let addrs: Vec<_> = vs.real_servers.iter().map(|r| r.addr.to_string()).collect();
    assert_eq!(
        addrs,
        vec!["192.0.2.101", "192.0.2.51", "192.0.2.52", "192.0.2.53"]
    );
    // Written with a substituted address: editable.
    let written = &vs.real_servers[0];
    assert!(matches!(written.origin, Origin::Written(_)));
    assert!(written.insert.is_some());
    assert_eq!(written.weight, Some(5));
    // From ~SEQ of a multi-line definition: not editable, and says where it came from.
    for rs in &vs.real_servers[1..] {
        assert!(rs.insert.is_none());
        assert_eq!(
            rs.checks.len(),
            1,
            "the nested $CHECK definition expands too"
        );
        match &rs.origin {
            Origin::Expanded { span, via } => {
                assert_eq!(via, "~SEQ(N, 51, 53)");
                assert_eq!(doc.sources.slice(*span), "~SEQ(N, 51, 53) $RS");
                assert_eq!(doc.sources.line_col(span.file, span.start).line, 20);
            }
            o => panic!("expanded origin expected, got {o:?}"),
        }
    }
    let lst = &doc.services[1];
    let addrs: Vec<_> = lst
        .real_servers
        .iter()
        .map(|r| r.addr.to_string())
        .collect();
    assert_eq!(addrs, vec!["192.0.2.61", "192.0.2.62"]);
    assert!(lst
        .real_servers
        .iter()
        .all(|r| matches!(&r.origin, Origin::Expanded { via, .. } if via == "~LST(H, 61, 62)")));
}

#[test]
fn groups_fwmarks_and_ranges() {
    let doc = parse("fixtures/keepalived/groups.conf", "lb1");
    let web = &doc.services[1];
    assert_eq!(web.key, ServiceKey::Group("web".into()));
    assert_eq!(
        ips(&web.vips),
        vec![
            "192.0.2.1",
            "192.0.2.2",
            "192.0.2.3",
            "2001:db8::a",
            "2001:db8::b",
            "2001:db8::c"
        ]
    );
    assert!(web.fwmarks.is_empty());
    assert_eq!(web.port, Some(80));
    assert_eq!(web.real_servers[0].port, Some(80));

    let marked = &doc.services[0];
    assert_eq!(marked.key, ServiceKey::Group("marked".into()));
    assert_eq!(marked.fwmarks, vec![7]);
    assert_eq!(marked.method, ForwardingMethod::Nat);
    assert_eq!(
        marked.real_servers[0].port, None,
        "keepalived clears real server ports under fwmark services"
    );

    let fw = &doc.services[2];
    assert_eq!(fw.key, ServiceKey::Fwmark(9));
    assert!(fw.vips.is_empty());
    assert_eq!((fw.port, fw.method), (None, ForwardingMethod::Tunnel));
    assert_eq!(fw.real_servers[0].port, None);

    let marks = &doc.services[3];
    assert!(marks.vips.is_empty());
    assert_eq!(marks.fwmarks, vec![10, 11]);
}

#[test]
fn methods_ports_and_protocol_default_as_keepalived_does() {
    let doc = parse("fixtures/keepalived/defaults.conf", "lb1");
    let nat = &doc.services[0];
    assert_eq!(nat.method, ForwardingMethod::Nat);
    assert_eq!(
        nat.protocol,
        Protocol::Udp,
        "keepalived 2.2: no protocol = UDP"
    );
    assert_eq!(
        nat.real_servers[0].port,
        Some(5353),
        "NAT keeps the real port"
    );
    assert_eq!(nat.real_servers[1].port, Some(53), "no port: the virtual's");

    let mixed = &doc.services[1];
    let dr = &mixed.real_servers[0];
    assert_eq!(
        dr.method,
        ForwardingMethod::DirectRouting,
        "real-level lvs_method"
    );
    assert_eq!(dr.port, Some(443), "DR ignores the real server's port");
    assert_eq!(dr.weight, Some(3));
    assert_eq!(mixed.real_servers[1].method, ForwardingMethod::Nat);
    assert_eq!(mixed.real_servers[1].port, Some(8443));

    let all_ports = &doc.services[2];
    assert_eq!(
        all_ports.method,
        ForwardingMethod::Tunnel,
        "lvs_method at virtual level"
    );
    assert_eq!(all_ports.port, None);
    assert_eq!(all_ports.real_servers[0].port, None);

    assert_eq!(doc.warnings.len(), 1);
    assert!(doc.warnings[0].message.contains("UDP"));
}

#[test]
fn tab_indented_files_get_tab_indents() {
    let doc = parse("fixtures/keepalived/tabs.conf", "lb1");
    let rs = &doc.services[0].real_servers[0];
    let ins = rs.insert.as_ref().expect("insert");
    assert_eq!(ins.indent, "\t\t");
    assert!(!ins.mid_line);
    assert_eq!(line_at(&doc, rs), "\t}");
}

/// Each config keepalived refuses gives one located error, pinned as a golden file.
#[test]
fn bad_configs_give_located_errors() {
    let prefix = format!("{}/", root().display());
    insta::glob!("../fixtures/keepalived/bad", "*.conf", |path| {
        let rel = path.strip_prefix(root()).expect("fixture under the crate");
        let err = parse_file(
            rel,
            &ParseOptions {
                config_id: Some("lb1".into()),
            },
        )
        .expect_err("a bad fixture must not parse");
        assert!(err.location.is_some(), "{err}");
        insta::assert_snapshot!(err.to_string().replace(&prefix, ""));
    });
}

/// A small deterministic stand-in for the fuzz target: every fixture with syntax-heavy
/// text inserted, cut short, or missing a character never makes the parser panic, always
/// lexes back to itself, and when it parses, parses the same again.
#[test]
fn mutated_fixtures_never_panic_and_round_trip() {
    use vipcheck::config::keepalived::parse_str;

    let inserts = [
        "{",
        "}",
        "}}",
        "\"",
        "$",
        "${",
        "$X=",
        "\\",
        "\n",
        "#",
        "!",
        "@lb1 ",
        "@^lb1 ",
        "~SEQ(",
        "~SEQ(i,1,3) ",
        "~LST(",
        "include ",
        "real_server ",
        "virtual_server ",
        "-",
        ":",
        "é",
        "\r\n",
        "\t",
    ];
    let opts = ParseOptions {
        config_id: Some("lb1".into()),
    };
    let mut runs = 0;
    for f in files_under(&root().join("fixtures/keepalived")) {
        // Those two expand to tens of thousands of addresses or lines on every run.
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        if matches!(
            name.as_deref(),
            Some("group_too_big.conf" | "seq_too_long.conf")
        ) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let boundaries: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        let step = (boundaries.len() / 25).max(1);
        for &pos in boundaries.iter().step_by(step) {
            let mut variants: Vec<String> = inserts
                .iter()
                .map(|ins| format!("{}{ins}{}", &text[..pos], &text[pos..]))
                .collect();
            variants.push(text[..pos].to_string());
            if let Some(c) = text[pos..].chars().next() {
                variants.push(format!("{}{}", &text[..pos], &text[pos + c.len_utf8()..]));
            }
            for v in variants {
                runs += 1;
                assert_eq!(lexer::print(&v, &lexer::lex(&v)), v);
                if let Ok(doc) = parse_str(&f, &v, &opts) {
                    let again = parse_str(&f, &v, &opts).expect("parses twice");
                    assert_eq!(doc.services, again.services);
                }
            }
        }
    }
    assert!(runs > 1000, "only {runs} variants");
}

/// The fixtures this parser accepts are real keepalived syntax: keepalived's own config
/// test accepts them (exit 0) for the same config id.
#[test]
fn real_keepalived_accepts_the_valid_fixtures() {
    if !common::require(
        std::process::Command::new("keepalived")
            .arg("--version")
            .output()
            .is_ok(),
        "keepalived is not installed (Debian package keepalived)",
    ) {
        return;
    }
    for rel in [
        "fixtures/keepalived/conditional.conf",
        "fixtures/keepalived/macros.conf",
        "fixtures/keepalived/groups.conf",
        "fixtures/keepalived/tabs.conf",
    ] {
        for id in ["lb1", "lb2"] {
            let path = root().join(rel);
            let out = std::process::Command::new("keepalived")
                .args(["--config-test", "--log-console", "-i", id, "-f"])
                .arg(&path)
                .output()
                .expect("run keepalived -t");
            assert_eq!(
                out.status.code(),
                Some(0),
                "keepalived -t -i {id} {rel}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // And so does vipcheck, for the same id.
            parse(rel, id);
        }
    }
}

/// A checker's settings come from the parser's own statements: an included file, an
/// `@id` line, a quoted value and a `$NAME` definition are read as keepalived reads them
/// (a second pass over the block's raw text saw none of them).
#[test]
fn checker_params_are_read_as_keepalived_reads_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("main.conf"),
        "$ZONE=zone.example.test\n\
         virtual_server 192.0.2.30 53 {\n    protocol UDP\n    lb_kind DR\n\
         \x20   real_server 192.0.2.11 53 {\n        DNS_CHECK {\n            include dns.inc\n\
         \x20       }\n    }\n\
         \x20   real_server 192.0.2.12 53 {\n        DNS_CHECK {\n\
         @lb1        name lb1.example.test\n\
         @lb2        name lb2.example.test\n\
         \x20           type \"AAAA\"\n        }\n    }\n\
         \x20   real_server 192.0.2.13 53 {\n        DNS_CHECK {\n            name $ZONE\n\
         \x20           nested {\n                name not.this.one\n            }\n\
         \x20       }\n    }\n}\n",
    )
    .expect("write main.conf");
    std::fs::write(
        dir.path().join("dns.inc"),
        "type A\nname \"www.example.test\" # the name to ask\n",
    )
    .expect("write dns.inc");
    let params = |id: &str| -> Vec<Vec<(String, String)>> {
        let opts = ParseOptions {
            config_id: Some(id.to_string()),
        };
        let doc =
            parse_file(&dir.path().join("main.conf"), &opts).unwrap_or_else(|e| panic!("{e}"));
        doc.services[0]
            .real_servers
            .iter()
            .map(|r| {
                assert_eq!(r.checks.len(), 1);
                assert_eq!(r.checks[0].kind, "DNS_CHECK");
                r.checks[0].params.clone()
            })
            .collect()
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let lb1 = params("lb1");
    assert_eq!(
        lb1[0],
        pairs(&[("type", "A"), ("name", "www.example.test")])
    );
    assert_eq!(
        lb1[1],
        pairs(&[("name", "lb1.example.test"), ("type", "AAAA")])
    );
    assert_eq!(lb1[2], pairs(&[("name", "zone.example.test")]));
    let lb2 = params("lb2");
    assert_eq!(
        lb2[1],
        pairs(&[("name", "lb2.example.test"), ("type", "AAAA")])
    );
}
