//! ldirectord.cf -> edits: every virtual with direct-routing or tunnelled reals gets
//! `checktype=external` and a `checkcommand` naming a wrapper script written beside the
//! config. ldirectord execs the command without a shell and appends
//! `VIP VPORT RIP RPORT`, so the command must be a bare path; the wrapper runs
//! `vipcheck probe` and then the virtual's original check against the real server.
//!
//! The generated lines go at the end of the block, between `# vipcheck:begin` and
//! `# vipcheck:end`. ldirectord keeps the last value of a setting, so they override the
//! block's own `checktype`/`checkcommand`/`checktimeout`, which stay where they are: the
//! next run reads the original check from them and replaces only the marked lines.

// `Diagnostic` is the crate's located error type; boxing it is a crate-wide choice.
#![allow(clippy::result_large_err)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Edit, Feed, GenerateOptions, NewFile, Plan, RewriteError};
use crate::config::ldirectord::{
    service_to_port, CheckType, Document, Family, Real, Virtual, VirtualProtocol, VirtualTarget,
};
use crate::config::{Diagnostic, Severity, Span, VirtualService};
use crate::generate::{format_duration, Generator};

const DIRECTIVES: &str = "ldirectord/directives.cf.j2";
const WRAPPER: &str = "ldirectord/check_wrapper.sh.j2";

/// Plans the edits and wrapper files for every virtual of `doc`.
pub fn plan(doc: &Document, gen: &Generator, opts: &GenerateOptions) -> Result<Plan, RewriteError> {
    let mut plan = Plan {
        sources: doc.sources.clone(),
        warnings: doc.warnings.clone(),
        ..Plan::default()
    };
    let dir = wrapper_dir(doc, opts)?;
    for (v, service) in doc.virtuals.iter().zip(&doc.services) {
        plan_virtual(doc, v, service, gen, opts, &dir, &mut plan)?;
    }
    Ok(plan)
}

/// Where the wrappers go, as an absolute path.
fn wrapper_dir(doc: &Document, opts: &GenerateOptions) -> Result<PathBuf, RewriteError> {
    let dir = match &opts.output_dir {
        Some(d) => d.clone(),
        None => match doc.path().parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
    };
    std::path::absolute(&dir).map_err(|source| RewriteError::Io {
        op: "resolve the directory",
        path: dir,
        source,
    })
}

fn note(severity: Severity, doc: &Document, span: Span, message: String, hint: &str) -> Diagnostic {
    let mut d = Diagnostic::error(message)
        .at(&doc.sources, span)
        .with_hint(hint);
    d.severity = severity;
    d
}

fn plan_virtual(
    doc: &Document,
    v: &Virtual,
    service: &VirtualService,
    gen: &Generator,
    opts: &GenerateOptions,
    dir: &Path,
    plan: &mut Plan,
) -> Result<(), RewriteError> {
    let label = service.label();
    if let Some(g) = &v.generated {
        if !g.terminated {
            return Err(Diagnostic::error(format!(
                "the vipcheck lines of virtual {label} have no '# vipcheck:end'"
            ))
            .at(&doc.sources, {
                let region = doc.sources.slice(g.span);
                let lead = region.len() - region.trim_start().len();
                let width = region.trim_start().lines().next().map_or(0, str::len);
                Span::new(
                    g.span.file,
                    g.span.start + lead,
                    g.span.start + lead + width,
                )
            })
            .with_hint("delete the generated lines (from '# vipcheck:begin') and run again")
            .into());
        }
    }
    let remove_generated = |plan: &mut Plan| {
        if let Some(g) = &v.generated {
            // A virtual line left last in the file would be read twice by ldirectord (a
            // "duplicate virtual server"): leave a blank line after it instead.
            let header_only = g.span.start == v.header.end + 1 && g.span.end == doc.text().len();
            plan.edits.push(Edit {
                span: g.span,
                text: if header_only { "\n" } else { "" }.to_string(),
            });
        }
    };

    if v.check.checktype == CheckType::Off {
        plan.skipped.push(note(
            Severity::Warning,
            doc,
            v.header,
            format!("virtual {label} has checktype=off; left alone"),
            "ldirectord never adds its real servers, so there is nothing to check",
        ));
        remove_generated(plan);
        return Ok(());
    }
    if !v.reals.iter().any(|r| r.method.needs_vip_on_real_server()) {
        plan.skipped.push(note(
            Severity::Warning,
            doc,
            v.header,
            format!(
                "virtual {label} has no gate (DR) or ipip (TUN) real server; left alone"
            ),
            "with masq (NAT) the director rewrites the destination, so the VIP need not be on the real server",
        ));
        remove_generated(plan);
        return Ok(());
    }
    let fwmark_vips = match v.target {
        VirtualTarget::Address { .. } => None,
        VirtualTarget::Fwmark(mark) => {
            let vips: Vec<IpAddr> = opts
                .fwmark_vips
                .get(&mark)
                .map(|vips| {
                    vips.iter()
                        .copied()
                        .filter(|ip| match v.family {
                            Family::V4 => ip.is_ipv4(),
                            Family::V6 => ip.is_ipv6(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            if vips.is_empty() {
                plan.skipped.push(note(
                    Severity::Warning,
                    doc,
                    v.header,
                    format!("virtual fwmark {mark} has no VIP to probe; left alone"),
                    &format!(
                        "name its VIPs with --fwmark-vip {mark}=IP ({} for virtual{})",
                        match v.family {
                            Family::V4 => "IPv4",
                            Family::V6 => "IPv6",
                        },
                        match v.family {
                            Family::V4 => "",
                            Family::V6 => "6",
                        }
                    ),
                ));
                return Ok(());
            }
            Some(vips)
        }
    };

    let wrapper = dir.join(wrapper_name(v));
    let wrapper_text = checked_path(&wrapper)?;
    let mut check = original_check(doc, v, service, plan, opts.app_check);
    let agent = match &opts.feed {
        Feed::Probe => None,
        Feed::Agent { state_dir } => Some(agent_ctx(v, service, fwmark_vips.as_deref(), state_dir)),
    };
    if opts.app_check && check.ctx.kind == "http" {
        if agent.is_some() {
            plan.skipped.push(note(
                Severity::Warning,
                doc,
                v.header,
                format!("virtual {label}: with --feed agent its negotiate check stays on the real servers' own addresses"),
                "the wrapper reads the agent's verdict and runs no probe; --app-check applies to --feed probe",
            ));
        } else {
            check.ctx.through_vip = through_vip(v, &label, doc, plan);
        }
    }
    let probe_secs =
        opts.probe_timeout.as_secs() + u64::from(opts.probe_timeout.subsec_nanos() > 0);
    let checktimeout = probe_secs + check.budget + 1;

    let ctx = WrapperCtx {
        label: label.clone(),
        probe: opts.probe_path.display().to_string(),
        timeout: format_duration(opts.probe_timeout),
        proto: match v.protocol {
            VirtualProtocol::Udp => "udp",
            VirtualProtocol::Tcp | VirtualProtocol::Fwm => "tcp",
        },
        fwmark_vips: fwmark_vips.map(|vips| vips.iter().map(|ip| ip.to_string()).collect()),
        v6: v.family == Family::V6,
        fallback: fallback_ctx(v),
        reals: v
            .reals
            .iter()
            .map(|r| {
                let mut row = real_ctx(v, r);
                if let Some(a) = &agent {
                    if r.method.needs_vip_on_real_server() {
                        row.states = a
                            .vips
                            .iter()
                            .map(|vip| {
                                super::state_name(service.protocol, *vip, service.port, r.addr)
                            })
                            .collect::<Vec<_>>()
                            .join(" ");
                    }
                }
                row
            })
            .collect(),
        check: check.ctx,
        agent,
    };
    let contents = gen.render(WRAPPER, &ctx)?;
    plan.new_files.push(NewFile {
        path: wrapper,
        contents,
        executable: true,
    });
    // Every DR/TUN real server of the virtual is checked through the wrapper, and so is
    // a masq one of a UDP virtual when it gets a DNS check at its own address.
    let nat_dns = matches!(&ctx.check.nat, Some(n) if n.kind == "dns");
    plan.checks += v
        .reals
        .iter()
        .filter(|r| r.method.needs_vip_on_real_server() || nat_dns)
        .count();

    let original = match v.check.checktype {
        CheckType::Negotiate | CheckType::Combined(_) => {
            format!("{} service={}", v.check.checktype.as_str(), v.check.service)
        }
        t => t.as_str().to_string(),
    };
    let text = gen.render(
        DIRECTIVES,
        DirectivesCtx {
            indent: v.insert.indent.clone(),
            lead: if v.insert.mid_line { "\n" } else { "" },
            wrapper: wrapper_text,
            checktimeout,
            original,
        },
    )?;
    match &v.generated {
        Some(g) if !g.followed_by_directives => {
            if doc.sources.slice(g.span) != text {
                plan.edits.push(Edit { span: g.span, text });
            }
        }
        Some(g) => {
            plan.edits.push(Edit {
                span: g.span,
                text: String::new(),
            });
            plan.edits.push(Edit {
                span: v.insert.at,
                text,
            });
        }
        None => plan.edits.push(Edit {
            span: v.insert.at,
            text,
        }),
    }
    Ok(())
}

/// `vipcheck-check-192.0.2.20-80-tcp.sh`, `vipcheck-check-2001-db8--20-443-tcp.sh`,
/// `vipcheck-check-fwmark-5.sh`, `vipcheck-check-fwmark6-5.sh`.
pub fn wrapper_name(v: &Virtual) -> String {
    match v.target {
        VirtualTarget::Address { addr, port } => format!(
            "vipcheck-check-{}-{port}-{}.sh",
            addr.to_string().replace(':', "-"),
            v.protocol.as_str()
        ),
        VirtualTarget::Fwmark(m) => format!(
            "vipcheck-check-fwmark{}-{m}.sh",
            if v.family == Family::V6 { "6" } else { "" }
        ),
    }
}

/// The wrapper's path as text ldirectord reads back unchanged: `checkcommand=` takes the
/// rest of the line, after cutting a `#` comment.
fn checked_path(path: &Path) -> Result<String, RewriteError> {
    let bad = |why: &str| -> RewriteError {
        Diagnostic::error(format!(
            "the check wrapper path {} cannot be written in ldirectord.cf: {why}",
            path.display()
        ))
        .with_hint("choose an output directory whose path has no '#', quotes or control characters")
        .into()
    };
    let text = path.to_str().ok_or_else(|| bad("it is not UTF-8"))?;
    if text.contains('#') {
        return Err(bad("ldirectord cuts a line at '#'"));
    }
    if text.contains('"') || text.chars().any(char::is_control) {
        return Err(bad("it holds a quote or a control character"));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::ldirectord_url;

    #[test]
    fn urls_are_encoded_like_perls_uri() {
        // Each expectation is what `HTTP::Request->new(GET => $url)->uri` gives (URI 5.17).
        for (url, want) in [
            ("http://192.0.2.11:80/a b", "http://192.0.2.11:80/a%20b"),
            ("http://192.0.2.11:80/a%20b", "http://192.0.2.11:80/a%20b"),
            (
                "http://192.0.2.11:80/a b[1]{x}\"|^`\u{e9}?q=1 2#frag",
                "http://192.0.2.11:80/a%20b%5B1%5D%7Bx%7D%22%7C%5E%60%C3%A9?q=1%202",
            ),
            (
                "https://[2001:db8::11]:443/x y",
                "https://[2001:db8::11]:443/x%20y",
            ),
            ("http://192.0.2.11:80/trail  ", "http://192.0.2.11:80/trail"),
            ("<URL:http://h/a b>", "http://h/a%20b"),
            (
                "http://192.0.2.11:80/;/?:@&=+$,-_.!~*'()",
                "http://192.0.2.11:80/;/?:@&=+$,-_.!~*'()",
            ),
        ] {
            assert_eq!(ldirectord_url(url), want, "{url}");
        }
    }
}

#[derive(Serialize)]
struct DirectivesCtx {
    indent: String,
    lead: &'static str,
    wrapper: String,
    checktimeout: u64,
    original: String,
}

#[derive(Serialize)]
struct WrapperCtx {
    label: String,
    probe: String,
    timeout: String,
    proto: &'static str,
    fwmark_vips: Option<Vec<String>>,
    /// Real servers are IPv6 (URLs need brackets).
    v6: bool,
    fallback: FallbackCtx,
    reals: Vec<RealCtx>,
    check: CheckCtx,
    /// `--feed agent`: read the agent's verdict files instead of probing.
    agent: Option<AgentCtx>,
}

/// With `--feed agent`: where the wrapper reads its verdicts.
#[derive(Serialize)]
struct AgentCtx {
    state_dir: String,
    /// For a real the table does not list: the verdict file names up to the real
    /// server's address, one per VIP (see [`super::state_name_prefix`]).
    prefixes: Vec<String>,
    #[serde(skip)]
    vips: Vec<IpAddr>,
}

fn agent_ctx(
    v: &Virtual,
    service: &VirtualService,
    fwmark_vips: Option<&[IpAddr]>,
    state_dir: &Path,
) -> AgentCtx {
    let vips: Vec<IpAddr> = match (v.target, fwmark_vips) {
        (VirtualTarget::Address { addr, .. }, _) => vec![addr],
        (VirtualTarget::Fwmark(_), Some(vips)) => vips.to_vec(),
        (VirtualTarget::Fwmark(_), None) => Vec::new(),
    };
    AgentCtx {
        state_dir: state_dir.display().to_string(),
        prefixes: vips
            .iter()
            .map(|vip| super::state_name_prefix(service.protocol, *vip, service.port))
            .collect(),
        vips,
    }
}

#[derive(Serialize)]
struct RealCtx {
    /// `RIP:RPORT` as the wrapper sees them (brackets stripped).
    key: String,
    method: &'static str,
    url: String,
    proxy: String,
    receive: String,
    /// The port the original check talks to (ldirectord's `ld_checkport`), or empty.
    port: String,
    /// With `--feed agent`: the names of the real's verdict files, one per VIP,
    /// separated by spaces (names hold no white space).
    states: String,
}

/// The settings for a real server the table does not list (the config changed since the
/// wrapper was written): built at run time from its address and port, as ldirectord would.
#[derive(Serialize)]
struct FallbackCtx {
    method: &'static str,
    receive: String,
    /// `checkport=`, or empty.
    checkport: String,
    /// The service's well-known port, or empty.
    service_port: String,
    scheme: String,
    /// The request without its leading `/`.
    uri: String,
    http_proxy: bool,
}

#[derive(Serialize)]
struct CheckCtx {
    /// http, connect, ping, external, external-perl or none.
    kind: &'static str,
    /// `rewrite --app-check`: the http check runs through the VIP on the real server
    /// (`vipcheck probe --check http|https`) instead of curl to its own address.
    through_vip: Option<&'static str>,
    describe: String,
    timeout: u64,
    count: u64,
    head: bool,
    virtualhost: Option<String>,
    command: String,
    /// `rewrite --app-check` on a UDP `service=dns`: the probe's options for the DNS
    /// query through the VIP (`--check dns --dns-name=...`).
    udp_args: Option<Vec<String>>,
    /// A UDP virtual whose check the wrapper reduces to the VIP probe: what its masq
    /// (NAT) real servers, which hold no VIP, run instead (see [`NatCtx`]).
    nat: Option<NatCtx>,
}

/// The check of a masq (NAT) real server of a UDP virtual whose own check the wrapper
/// reduces to the VIP probe, which does not apply to it.
#[derive(Serialize)]
struct NatCtx {
    /// `dns`: the virtual's DNS check at the real server's own address and port
    /// (`vipcheck probe --method nat`); `ping`: ldirectord's UDP fallback, a ping of the
    /// real server (what its `connect` does on UDP).
    kind: &'static str,
    /// For `dns`: the probe's options (`--check dns --dns-name=...`).
    args: Vec<String>,
}

struct OriginalCheck {
    ctx: CheckCtx,
    /// Seconds the original check may take.
    budget: u64,
}

/// How the wrapper reproduces the virtual's own check; a note in `plan.skipped` when it
/// can only approximate it.
fn original_check(
    doc: &Document,
    v: &Virtual,
    service: &VirtualService,
    plan: &mut Plan,
    app_check: bool,
) -> OriginalCheck {
    let c = &v.check;
    let timeout = c.effective_timeout(&doc.globals);
    let udp = v.protocol == VirtualProtocol::Udp;
    let ctx = |kind: &'static str, describe: String| CheckCtx {
        kind,
        through_vip: None,
        describe,
        timeout,
        count: c.checkcount.unwrap_or(doc.globals.checkcount).max(1),
        head: c.httpmethod == "HEAD",
        virtualhost: c.virtualhost.clone(),
        command: c.checkcommand.clone(),
        udp_args: None,
        nat: None,
    };
    let masq = udp && v.reals.iter().any(|r| !r.method.needs_vip_on_real_server());
    // The DNS query of `service=dns` (request, receive), or why it cannot be run.
    let dns = || crate::generate::udp_check::from_ldirectord_dns(&c.request, &c.receive);
    let check = match c.checktype {
        CheckType::Negotiate | CheckType::Combined(_) => {
            let name = c.checktype.as_str();
            match c.service.as_str() {
                "http" | "https" | "http_proxy" => {
                    ctx("http", format!("{name} {} via curl", c.service))
                }
                "none" => ctx("none", format!("{name} with service none: always up")),
                // `rewrite --app-check`: the DNS query runs through the VIP instead.
                "dns" if udp && app_check => match dns() {
                    Ok(p) => CheckCtx {
                        udp_args: Some(p.args()),
                        nat: masq.then(|| NatCtx {
                            kind: "dns",
                            args: p.args(),
                        }),
                        ..ctx("none", format!("{name} dns through the VIP"))
                    },
                    Err(why) => {
                        plan.skipped.push(note(
                                Severity::Warning,
                                doc,
                                c.checktype_span.unwrap_or(v.header),
                                format!(
                                    "virtual {}: its {name} dns check is not run through the VIP: {why}{}",
                                    service.label(),
                                    if masq { MASQ_PING } else { "" },
                                ),
                                "give request= a host name and receive= the plain answer",
                            ));
                        CheckCtx {
                            nat: masq.then(nat_ping),
                            ..ctx(
                                "none",
                                format!("{name} dns, reduced to nothing beyond the VIP probe"),
                            )
                        }
                    }
                },
                other => {
                    let (kind, instead) = if udp {
                        ("none", "nothing beyond the VIP probe")
                    } else {
                        ("connect", "a TCP connect")
                    };
                    // A masq real server holds no VIP: a DNS service is checked at its own
                    // address, any other gets ldirectord's UDP fallback, a ping.
                    let nat = match (masq, other) {
                        (false, _) => None,
                        (true, "dns") => Some(dns().map_or_else(
                            |_| nat_ping(),
                            |p| NatCtx {
                                kind: "dns",
                                args: p.args(),
                            },
                        )),
                        _ => Some(nat_ping()),
                    };
                    let masq_note = match (&nat, other) {
                        (Some(n), _) if n.kind == "dns" => MASQ_DNS.to_string(),
                        (Some(_), "dns") => match dns() {
                            Err(why) => format!("{MASQ_PING} ({why})"),
                            Ok(_) => MASQ_PING.to_string(),
                        },
                        (Some(_), _) => MASQ_PING.to_string(),
                        (None, _) => String::new(),
                    };
                    plan.skipped.push(note(
                        Severity::Warning,
                        doc,
                        c.checktype_span.unwrap_or(v.header),
                        format!(
                            "virtual {}: the {name} check of service {other} is reduced to {instead} in the wrapper{masq_note}",
                            service.label()
                        ),
                        "the wrapper re-runs http, https and http_proxy checks exactly; other services get a plainer check",
                    ));
                    CheckCtx {
                        nat,
                        ..ctx(kind, format!("{name} {other}, reduced to {instead}"))
                    }
                }
            }
        }
        CheckType::Connect if udp => ctx("ping", "connect on UDP: ping, as ldirectord does".into()),
        CheckType::Connect => ctx("connect", "connect: a TCP connect".into()),
        CheckType::Ping => ctx("ping", "ping".into()),
        CheckType::External => ctx("external", "external: the original checkcommand".into()),
        CheckType::ExternalPerl => ctx(
            "external-perl",
            "external-perl: the original checkcommand run by perl".into(),
        ),
        CheckType::On | CheckType::Off => ctx("none", "on: always up".into()),
    };
    let ping = matches!(&check.nat, Some(n) if n.kind == "ping");
    let budget = if check.kind == "none" && !ping {
        0
    } else {
        timeout
    };
    OriginalCheck { ctx: check, budget }
}

/// The end of a reduced UDP check's warning when masq real servers get a ping.
const MASQ_PING: &str =
    "; its masq (NAT) real servers get ldirectord's UDP fallback, a ping of the real server";
/// ... or the DNS check at their own address.
const MASQ_DNS: &str =
    "; its masq (NAT) real servers get the DNS check at their own address and port";

fn nat_ping() -> NatCtx {
    NatCtx {
        kind: "ping",
        args: Vec::new(),
    }
}

fn fallback_ctx(v: &Virtual) -> FallbackCtx {
    let c = &v.check;
    let uri = c.request.strip_prefix('/').unwrap_or(&c.request);
    FallbackCtx {
        method: v.common_method().probe_arg(),
        receive: c.receive.clone(),
        checkport: c.checkport.map_or(String::new(), |p| p.to_string()),
        service_port: service_to_port(&c.service).map_or(String::new(), |p| p.to_string()),
        scheme: scheme(&c.service).to_string(),
        // For http_proxy the request is the whole URL; otherwise it follows
        // `scheme://host:port/`, which the wrapper builds at run time.
        uri: if c.service == "http_proxy" {
            ldirectord_url(uri)
        } else {
            ldirectord_url(&format!("{URL_BASE}{uri}"))
                .strip_prefix(URL_BASE)
                .map_or(String::new(), str::to_string)
        },
        http_proxy: c.service == "http_proxy",
    }
}

/// A base that [`ldirectord_url`] leaves unchanged, to encode a request on its own.
const URL_BASE: &str = "http://192.0.2.1:80/";

/// The URL ldirectord's HTTP check requests for `url` (the text `ld_setup` builds from
/// `request`): `HTTP::Request->new` hands it to perl's `URI->new`, which drops a
/// `<URL:...>` or `"..."` wrapping and surrounding white space, then percent-encodes every
/// byte that is not a URI character (`/a b` -> `/a%20b`; `%` stays, so an encoded request
/// is not encoded twice) except the brackets of an IPv6 host. The fragment (`#...`) is
/// cut: neither LWP nor curl sends it.
pub fn ldirectord_url(url: &str) -> String {
    let mut u = url;
    if let Some(inner) = u.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
        u = inner.strip_prefix("URL:").unwrap_or(inner);
    }
    if let Some(inner) = u.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        u = inner;
    }
    // perl's \s: space, \t, \n, \r, \f and \v.
    let perl_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c' | '\x0b');
    let u = u.trim_matches(perl_space);
    let u = u.split('#').next().unwrap_or("");
    // URI.pm's $uric: reserved, unreserved and '%'.
    let kept = |b: u8| b.is_ascii_alphanumeric() || b";/?:@&=+$,-_.!~*'()%".contains(&b);
    let mut out = String::with_capacity(u.len());
    for &b in u.as_bytes() {
        if kept(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // URI 5.11+ puts the brackets of the host part back (`http://[2001:db8::1]:80/`).
    if let Some(scheme_end) = out.find("://").filter(|&i| {
        let scheme = &out[..i];
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    }) {
        let start = scheme_end + 3;
        let end = out[start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| start + i);
        let authority = &out[start..end];
        let host_start = authority.rfind('@').map_or(0, |i| i + 1);
        let fixed = format!(
            "{}{}",
            &authority[..host_start],
            authority[host_start..]
                .replace("%5B", "[")
                .replace("%5D", "]")
        );
        out.replace_range(start..end, &fixed);
    }
    out
}

fn scheme(service: &str) -> &str {
    if service == "http_proxy" {
        "http"
    } else {
        service
    }
}

/// One row of the wrapper's table: what ldirectord's `ld_setup` builds for the real (its
/// URL, receive string and check port).
/// Whether the virtual's negotiate check can run through the VIP (`--app-check`), and as
/// which check: http or https, HEAD-less, not through a proxy, and every `receive` plain
/// text (ldirectord matches a Perl regular expression; the probe matches text, so a
/// pattern keeps the curl check against the real server's own address, with a note).
fn through_vip(v: &Virtual, label: &str, doc: &Document, plan: &mut Plan) -> Option<&'static str> {
    let c = &v.check;
    let kind = match c.service.as_str() {
        "http" => "http",
        "https" => "https",
        _ => return None,
    };
    if c.httpmethod == "HEAD" {
        return None;
    }
    let pattern = |r: &str| r.chars().any(|ch| ".*+?[](){}|^$\\".contains(ch));
    let receives = std::iter::once(c.receive.as_str())
        .chain(v.reals.iter().filter_map(|r| r.receive.as_deref()));
    if let Some(p) = receives.into_iter().find(|r| pattern(r)) {
        plan.skipped.push(note(
            Severity::Warning,
            doc,
            v.header,
            format!(
                "virtual {label}: its negotiate check stays on the real servers' own addresses"
            ),
            &format!("receive {p:?} is a regular expression; --app-check matches plain text only"),
        ));
        return None;
    }
    Some(kind)
}

fn real_ctx(v: &Virtual, real: &Real) -> RealCtx {
    let c = &v.check;
    let check_port = c
        .checkport
        .or((real.port > 0).then_some(real.port))
        .or_else(|| service_to_port(&c.service));
    let server = match real.addr {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let schema = scheme(&c.service);
    let port_text = check_port.map_or(String::new(), |p| p.to_string());
    let base = |uri: &str| format!("{schema}://{server}:{port_text}/{uri}");
    let (url, receive) = match real.request.as_ref().zip(real.receive.as_ref()) {
        // (each URL below is then encoded as ldirectord's perl does)
        Some((request, receive)) => {
            let uri = request.strip_prefix('/').unwrap_or(request);
            let url = if request.contains(&format!("{schema}://")) {
                uri.to_string()
            } else {
                base(uri)
            };
            (url, receive.clone())
        }
        None => {
            let uri = c.request.strip_prefix('/').unwrap_or(&c.request);
            let url = if c.service == "http_proxy" {
                uri.to_string()
            } else {
                base(uri)
            };
            (url, c.receive.clone())
        }
    };
    let proxy = if c.service == "http_proxy" {
        format!("http://{server}:{port_text}/")
    } else {
        String::new()
    };
    RealCtx {
        key: format!("{}:{}", real.addr, real.port),
        method: real.method.probe_arg(),
        url: ldirectord_url(&url),
        proxy,
        receive,
        port: port_text,
        states: String::new(),
    }
}
