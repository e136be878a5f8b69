#![allow(clippy::result_large_err)]
//! ldirectord.cf parsing: the line rules, defaults and rejections of ldirectord 4.12's
//! read_config, on small inline configs (no name lookups leave the process).

mod common;

use std::net::IpAddr;

use common::ldirectord_props::assert_rewrite;
use vipcheck::generate::Generator;
use vipcheck::rewrite::{ldirectord::plan, GenerateOptions};

use vipcheck::config::ldirectord::{
    self, CheckType, Document, Family, OfflineResolver, Services, VirtualProtocol, VirtualTarget,
};
use vipcheck::config::{Diagnostic, ForwardingMethod, Protocol, ServiceKey};

const SERVICES: &str = "http 80/tcp www\nhttps 443/tcp\ndomain 53/udp\ndomain 53/tcp\n";

fn resolver() -> OfflineResolver {
    let mut r = OfflineResolver {
        services: Services::parse(SERVICES),
        ..Default::default()
    };
    r.hosts.insert("web1".into(), "192.0.2.31".parse().unwrap());
    r
}

fn parse(text: &str) -> Result<Document, Diagnostic> {
    ldirectord::parse_str("test.cf".into(), text.to_string(), &resolver())
}

/// Parses `text`, which must be accepted; when it can be rewritten, the rewrite keeps its
/// bytes and services (see common/ldirectord_props.rs).
fn ok(text: &str) -> Document {
    match parse(text) {
        Ok(doc) => {
            let opts = GenerateOptions {
                probe_path: "/usr/sbin/vipcheck".into(),
                probe_timeout: std::time::Duration::from_secs(2),
                fwmark_vips: Default::default(),
                templates: None,
                config_id: None,
                output_dir: Some("/etc/ha.d".into()),
                app_check: false,
                feed: vipcheck::rewrite::Feed::Probe,
            };
            if let Ok(plan) = plan(&doc, &Generator::new(None).unwrap(), &opts) {
                assert_rewrite(&doc, &plan, &resolver());
            }
            doc
        }
        Err(d) => panic!("unexpected error:\n{d}"),
    }
}

/// The error's message and its line:column.
fn err(text: &str) -> (String, usize, usize) {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(d) => {
            let loc = d.location.clone().expect("errors are located");
            (d.message, loc.line, loc.col)
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn virtual_block_with_defaults_as_ldirectord_sets_them() {
    let doc = ok("virtual=192.0.2.20:80\n    real=192.0.2.11:80 gate\n");
    let v = &doc.virtuals[0];
    assert_eq!(
        v.target,
        VirtualTarget::Address {
            addr: ip("192.0.2.20"),
            port: 80
        }
    );
    assert_eq!(v.protocol, VirtualProtocol::Tcp);
    assert_eq!(v.check.checktype, CheckType::Negotiate);
    assert_eq!(v.check.service, "http", "service inferred from port 80");
    assert_eq!(v.check.request, "/");
    assert_eq!(v.check.checkcommand, "/bin/true");
    assert_eq!(v.reals[0].weight, 1);
    let s = &doc.services[0];
    assert_eq!(s.key, ServiceKey::Address(ip("192.0.2.20")));
    assert_eq!(s.vips, vec![ip("192.0.2.20")]);
    assert_eq!(s.port, Some(80));
    assert_eq!(s.method, ForwardingMethod::DirectRouting);
    assert_eq!(s.real_servers[0].checks[0].kind, "negotiate");
    assert_eq!(s.real_servers[0].checks[0].detail, "http");
    assert_eq!(
        doc.sources.slice(s.real_servers[0].span),
        "real=192.0.2.11:80 gate"
    );
}

#[test]
fn port_53_defaults_to_udp_and_dns() {
    let doc = ok("virtual=192.0.2.20:53\n\treal=192.0.2.11 gate\n");
    assert_eq!(doc.virtuals[0].protocol, VirtualProtocol::Udp);
    assert_eq!(doc.virtuals[0].check.service, "dns");
    assert_eq!(doc.services[0].protocol, Protocol::Udp);
}

#[test]
fn tab_or_four_spaces_indent_but_three_spaces_end_the_block() {
    let doc = ok("virtual=192.0.2.20:80\n\treal=192.0.2.11 gate\n    real=192.0.2.12 gate\n");
    assert_eq!(doc.virtuals[0].reals.len(), 2);
    let (msg, line, col) = err("virtual=192.0.2.20:80\n   real=192.0.2.11 gate\n");
    assert_eq!((msg.as_str(), line, col), ("unknown command 'real'", 2, 4));
}

#[test]
fn comments_inside_a_block_do_not_end_it_but_blank_lines_do() {
    let doc = ok(
        "virtual=192.0.2.20:80\n    real=192.0.2.11 gate\n# col 0\n    # indented\n    real=192.0.2.12 ipip\n\nchecktimeout=3\n",
    );
    let v = &doc.virtuals[0];
    assert_eq!(v.reals.len(), 2);
    assert_eq!(v.reals[1].method, ForwardingMethod::Tunnel);
    assert_eq!(doc.globals.checktimeout, Some(3));
    // A blank line ends the block: an indented line after it is a top-level error.
    let (msg, line, _) =
        err("virtual=192.0.2.20:80\n    real=192.0.2.11 gate\n\n    real=192.0.2.12 gate\n");
    assert_eq!((msg.as_str(), line), ("unknown command 'real'", 4));
}

#[test]
fn a_white_space_line_of_five_spaces_is_an_unknown_command_as_in_ldirectord() {
    let (msg, line, _) = err("virtual=192.0.2.20:80\n    real=192.0.2.11 gate\n     \n");
    assert_eq!(
        (msg.as_str(), line),
        (
            "unknown command: a line of white space inside a virtual block",
            3
        )
    );
    // Four spaces end the block like a blank line.
    ok("virtual=192.0.2.20:80\n    real=192.0.2.11 gate\n    \n");
}

#[test]
fn an_unindented_line_ends_the_block_and_is_read_as_a_global() {
    let doc = ok("virtual=192.0.2.20:80\n    real=192.0.2.11 gate\nautoreload=yes\nvirtual=192.0.2.21:80\n    real=192.0.2.11 gate\n");
    assert!(doc.globals.autoreload);
    assert_eq!(doc.virtuals.len(), 2);
}

#[test]
fn real_ranges_ports_weights_and_per_real_checks() {
    let doc = ok("virtual=192.0.2.20:http\n    real=192.0.2.11->192.0.2.13:www masq 5 \"/health\", \"OK\"\n    real=web1 gate\n");
    let v = &doc.virtuals[0];
    let addrs: Vec<_> = v.reals.iter().map(|r| r.addr).collect();
    assert_eq!(
        addrs,
        vec![
            ip("192.0.2.11"),
            ip("192.0.2.12"),
            ip("192.0.2.13"),
            ip("192.0.2.31")
        ]
    );
    assert_eq!(v.reals[0].port, 80);
    assert_eq!(v.reals[0].weight, 5);
    assert_eq!(v.reals[0].request.as_deref(), Some("/health"));
    assert_eq!(v.reals[0].receive.as_deref(), Some("OK"));
    assert_eq!(v.reals[3].port, 0, "no port written");
    assert_eq!(v.reals[0].method, ForwardingMethod::Nat);
    // A NAT real keeps its own port; a DR real takes the virtual's.
    assert_eq!(doc.services[0].real_servers[0].port, Some(80));
    assert_eq!(doc.services[0].real_servers[3].port, Some(80));
}

#[test]
fn ipv6_and_fwmark_virtuals() {
    let doc = ok("virtual6=[2001:db8::20]:443\n    real6=[2001:db8::11]:443 gate\n    service=https\nvirtual=7\n    real=192.0.2.11 gate\n");
    assert_eq!(doc.virtuals[0].family, Family::V6);
    assert_eq!(doc.virtuals[0].reals[0].addr, ip("2001:db8::11"));
    assert_eq!(doc.services[0].label(), "[2001:db8::20]:443/tcp");
    assert_eq!(doc.virtuals[1].target, VirtualTarget::Fwmark(7));
    assert_eq!(doc.virtuals[1].protocol, VirtualProtocol::Fwm);
    assert_eq!(doc.virtuals[1].check.service, "none");
    assert_eq!(doc.services[1].key, ServiceKey::Fwmark(7));
    assert!(doc.services[1].vips.is_empty());
    assert_eq!(doc.services[1].port, None);
}

#[test]
fn rejections_are_located_on_the_offending_line() {
    let cases: &[(&str, &str, usize)] = &[
        (
            "virtual=[2001:db8::1]:80\n",
            "cannot specify an IPv6 address here",
            1,
        ),
        (
            "virtual=192.0.2.20:80\n    real6=[2001:db8::1] gate\n",
            "cannot specify \"real6\" here",
            2,
        ),
        (
            "virtual=192.0.2.20:80\n    real=192.0.2.11 bogus\n",
            "forward method must be gate, masq or ipip",
            2,
        ),
        (
            "virtual=192.0.2.20:80\n    real=192.0.2.11\n",
            "invalid address for real server (wrong format)",
            2,
        ),
        (
            "virtual=192.0.2.20:80\n    checktype=sometimes\n",
            "unknown checktype",
            2,
        ),
        (
            "virtual=192.0.2.20:80\n    service=gopher\n",
            "unknown service 'gopher'",
            2,
        ),
        (
            "virtual=192.0.2.20:80\n    protocol=sctp\n",
            "protocol must be tcp or udp if the virtual service is an address and port",
            2,
        ),
        (
            "virtual=192.0.2.20:80\n    real=192.0.2.11 gate 1 junk\n",
            "invalid real server line, around \"junk\"",
            2,
        ),
        (
            "virtual=192.0.2.20:80\n    real=192.0.2.13->192.0.2.11 gate\n",
            "invalid range: 192.0.2.13 is after 192.0.2.11",
            2,
        ),
        (
            "virtual=192.0.2.20:nosuch\n    real=192.0.2.11 gate\n",
            "invalid address for virtual service",
            1,
        ),
        (
            "virtual=unknown-host:80\n",
            "invalid address for virtual service",
            1,
        ),
        (
            "timeout=3\n",
            "timeout directive deprecated in favour of checktimeout and negotiatetimeout",
            1,
        ),
        ("autoreload=maybe\n", "autoreload must be 'yes' or 'no'", 1),
        ("checktimeout=0\n", "invalid check timeout value", 1),
        (
            "virtual=192.0.2.20:80\n    checkport=70000\n",
            "checkport must be in range 1..65535",
            2,
        ),
        (
            "virtual=192.0.2.20:80\n    receive=\"#x\"\n",
            "unknown command 'receive'",
            2,
        ),
        (
            "virtual=192.0.2.20:80\n    real=192.0.2.11 gate\nvirtual=192.0.2.20:80\n",
            "duplicate virtual server",
            3,
        ),
    ];
    for (text, want, want_line) in cases {
        let (msg, line, _) = err(text);
        assert_eq!((msg.as_str(), line), (*want, *want_line), "for {text:?}");
    }
}

#[test]
fn error_renders_file_line_column_source_and_caret() {
    let d = parse("virtual=192.0.2.20:80\n\treal=192.0.2.11 gate\n\tservice=gopher\n").unwrap_err();
    assert_eq!(
        d.to_string(),
        "error: unknown service 'gopher'\n --> test.cf:3:2\n  |\n3 |  service=gopher\n  |  ^^^^^^^^^^^^^^\n  = hint: service must be one of dns, ftp, http, https, http_proxy, imap, imaps, ldap, ldaps, nntp, mysql, none, oracle, pop, pops, radius, pgsql, sip, smtp, submission, simpletcp"
    );
}

#[test]
fn checktype_number_is_combined_and_last_setting_wins() {
    let doc =
        ok("virtual=192.0.2.20:80\n    checktype=3\n    checktype=connect\n    checktype=5\n");
    assert_eq!(doc.virtuals[0].check.checktype, CheckType::Combined(5));
}

#[test]
fn effective_timeouts_follow_ldirectords_fallbacks() {
    let doc = ok("negotiatetimeout=12\nvirtual=192.0.2.20:80\n    checktype=connect\nvirtual=192.0.2.21:80\n    checktimeout=4\nvirtual=192.0.2.22:80\n    checktype=ping\n");
    let t: Vec<u64> = doc
        .virtuals
        .iter()
        .map(|v| v.check.effective_timeout(&doc.globals))
        .collect();
    // connect: checktimeout <- global negotiatetimeout; negotiate: own checktimeout.
    assert_eq!(t, vec![12, 4, 12]);
    let doc = ok("virtual=192.0.2.20:80\n    checktype=connect\nvirtual=192.0.2.21:80\n    real=192.0.2.11 gate\n");
    let t: Vec<u64> = doc
        .virtuals
        .iter()
        .map(|v| v.check.effective_timeout(&doc.globals))
        .collect();
    assert_eq!(t, vec![5, 30]);
}

#[test]
fn crlf_and_missing_final_newline_round_trip() {
    ok("checktimeout=3\r\nvirtual=192.0.2.20:80\r\n\treal=192.0.2.11:80 gate\r\n\tchecktype=negotiate\r\n");
    let doc = ok("virtual=192.0.2.20:80\n\treal=192.0.2.11:80 gate");
    assert!(doc.virtuals[0].insert.mid_line);
}

#[test]
fn non_utf8_input_is_a_located_error() {
    let d =
        ldirectord::text_from_bytes("x.cf".as_ref(), b"checktimeout=3\nvirt\xffual=1\n".to_vec())
            .unwrap_err();
    let loc = d.location.unwrap();
    assert_eq!((loc.line, loc.col), (2, 5));
}

#[test]
fn generated_region_is_recognised_and_not_counted_as_the_blocks_own() {
    let doc = ok("virtual=192.0.2.20:80\n    real=192.0.2.11 gate\n    checktype=connect\n    # vipcheck:begin generated\n    checktype=external\n    checkcommand=/x.sh\n    # vipcheck:end\n");
    let v = &doc.virtuals[0];
    assert_eq!(v.check.checktype, CheckType::Connect);
    assert_eq!(v.check.checkcommand, "/bin/true");
    let g = v.generated.as_ref().unwrap();
    assert!(g.terminated && !g.followed_by_directives);
    assert!(doc
        .sources
        .slice(g.span)
        .starts_with("    # vipcheck:begin"));
    assert!(doc.sources.slice(g.span).ends_with("# vipcheck:end\n"));
    assert_eq!(
        v.insert.at.start,
        doc.text().find("    # vipcheck:begin").unwrap()
    );
}

#[test]
fn a_virtual_line_ending_the_file_is_a_duplicate_as_in_ldirectord() {
    // ldirectord reads such a header twice (nothing was read after it).
    let (msg, line, _) = err("virtual=192.0.2.20:80\n    protocol=udp\nvirtual=192.0.2.20:80\n");
    assert_eq!((msg.as_str(), line), ("duplicate virtual server", 3));
    assert_eq!(err("virtual=192.0.2.20\n").0, "duplicate virtual server");
    // A blank line or a comment after it is enough.
    ok("virtual=192.0.2.20:80\n\n");
    ok("virtual=192.0.2.20:80\n# no reals yet\n");
}

#[test]
fn the_check_interval_is_the_virtual_s_else_the_global_else_ldirectord_s_10s() {
    use std::time::Duration;
    let doc = ok("checkinterval=3\n\
        virtual=192.0.2.20:80\n\treal=192.0.2.11:80 gate\n\tchecktype=negotiate\n\
        virtual=192.0.2.21:80\n\treal=192.0.2.11:80 gate\n\tcheckinterval=7\n");
    let got: Vec<_> = doc.services.iter().map(|s| s.interval).collect();
    assert_eq!(
        got,
        [Some(Duration::from_secs(3)), Some(Duration::from_secs(7))]
    );
    let doc = ok("virtual=192.0.2.20:80\n\treal=192.0.2.11:80 gate\n");
    assert_eq!(doc.services[0].interval, Some(Duration::from_secs(10)));
}
