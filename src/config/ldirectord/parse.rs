//! Walks the lines of a file: globals, blocks and their directives (dispatched through
//! the tables in `directives`), then resolves each block's names and reads its `real=`
//! lines.
//!
//! The `real=` line and the fallback's `HOST[:PORT] [METHOD]` stay Perl-compatible regexes:
//! ldirectord matches them unanchored, with backtracking between overlapping alternatives
//! (an address class that also takes `-` before `->`, a trailing `\s*$` that moves the
//! match start), and the error messages quote those captures. A nom grammar would have to
//! re-create that search step by step; the regex engine's leftmost-first semantics are
//! Perl's, so these few patterns are kept as ldirectord writes them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;

use super::lines::{self, BlockLine, TopLine};
use super::resolve::family_of;
use super::values::{self, number, with_slash, VirtualAddress};
use super::{
    directives, port_to_service, CheckSettings, Diagnostic, Family, FileId, ForwardingMethod,
    GeneratedRegion, Globals, InsertionPoint, Real, Resolver, SourceMap, Span, Virtual,
    VirtualProtocol, VirtualTarget, MARK_BEGIN, MARK_END, MAX_RANGE,
};

// Perl's character classes, spelled out in ASCII (ldirectord reads bytes, so `\d`, `\s`
// and `\w` never match beyond ASCII).
const S: &str = r"[\t\n\x0B\x0C\r ]";

fn re(pattern: &str) -> Regex {
    let pattern = pattern
        .replace(r"\s", S)
        .replace(r"\S", r"[^\t\n\x0B\x0C\r ]")
        .replace(r"\d", "[0-9]")
        .replace(r"\w", "[0-9A-Za-z_]");
    // The patterns are constants of this file; a typo shows up in every test.
    Regex::new(&pattern).unwrap_or_else(|e| panic!("bad built-in pattern {pattern}: {e}"))
}

macro_rules! regex {
    ($pat:expr) => {{
        static RE: LazyLock<Regex> = LazyLock::new(|| re($pat));
        &*RE
    }};
}

pub(super) struct Parser<'a> {
    pub(super) sources: &'a SourceMap,
    pub(super) file: FileId,
    pub(super) lines: &'a [Span],
    pub(super) resolver: &'a dyn Resolver,
    pub(super) globals: Globals,
    pub(super) virtuals: Vec<Virtual>,
    pub(super) warnings: Vec<Diagnostic>,
}

/// A line being read: its index, its text without the `\n`, and its span.
#[derive(Clone, Copy)]
pub(super) struct Line<'t> {
    pub(super) index: usize,
    pub(super) text: &'t str,
    pub(super) start: usize,
}

/// What a virtual's lines said before names are resolved.
#[derive(Clone)]
pub(super) struct PendingVirtual<'t> {
    pub(super) family: Family,
    pub(super) header: Line<'t>,
    /// `host:port` as written, or `None` for a fwmark.
    pub(super) ip_port: Option<(&'t str, &'t str)>,
    pub(super) fwmark: Option<&'t str>,
    pub(super) protocol: VirtualProtocol,
    pub(super) service: Option<String>,
    pub(super) check: CheckSettings,
    pub(super) reals: Vec<(String, Line<'t>)>,
    pub(super) fallback: Option<(Fallback, Line<'t>)>,
}

#[derive(Clone)]
pub(super) struct Fallback {
    pub(super) server: String,
    pub(super) port: Option<String>,
}

impl<'a> Parser<'a> {
    pub(super) fn text(&self) -> &'a str {
        &self.sources.file(self.file).text
    }

    fn line(&self, index: usize) -> Line<'a> {
        let span = self.lines[index];
        let text = &self.text()[span.start..span.end];
        Line {
            index,
            text: text.strip_suffix('\n').unwrap_or(text),
            start: span.start,
        }
    }

    /// An error pointing at the line's text from its first non-blank character.
    pub(super) fn error(&self, line: Line<'_>, message: impl Into<String>) -> Diagnostic {
        error_at(self.sources, self.file, line, message)
    }

    /// Reads every line: headers open blocks, everything else outside a block is global.
    pub(super) fn run(&mut self) -> Result<(), Diagnostic> {
        let mut i = 0;
        let mut seen: HashMap<String, usize> = HashMap::new();
        while i < self.lines.len() {
            let line = self.line(i);
            let setting = match lines::top_line(line.text) {
                TopLine::Virtual { family, value } => {
                    let (next, virt) = self.read_virtual(line, family, value)?;
                    if next == i + 1 && next == self.lines.len() {
                        // ldirectord re-reads a header that is the file's last line
                        // (nothing was read after it) as a second virtual, and rejects the
                        // pair.
                        return Err(self.error(line, "duplicate virtual server").with_hint(
                            "ldirectord reads a virtual line that ends the file twice; \
                             add its real= lines, or a blank line after it",
                        ));
                    }
                    let id = super::virtual_id(&virt);
                    if let Some(first) = seen.get(&id) {
                        let first = self.line(*first);
                        let lc = crate::config::span::line_col(self.text(), first.start);
                        return Err(self.error(line, "duplicate virtual server").with_hint(
                            format!(
                            "the same service is already defined on line {}; merge the two blocks",
                            lc.line
                        ),
                        ));
                    }
                    seen.insert(id, line.index);
                    self.virtuals.push(virt);
                    i = next;
                    continue;
                }
                TopLine::Blank | TopLine::Comment => None,
                TopLine::Setting(setting) => Some(setting),
            };
            if let Some(setting) = setting {
                directives::global(self, line, &setting)?;
            }
            i += 1;
        }
        Ok(())
    }

    pub(super) fn email_alert(&self, line: Line<'_>, addr: &str) -> Result<(), Diagnostic> {
        let stripped = values::unquoted_whole(addr);
        if stripped.is_empty() {
            return Err(self
                .error(line, "no email address specified")
                .with_hint("write an address after emailalert="));
        }
        Ok(())
    }

    pub(super) fn email_alert_status(&self, line: Line<'_>, arg: &str) -> Result<(), Diagnostic> {
        let items = values::comma_list(arg);
        let items = &items[..];
        let none = items.contains(&"none");
        for item in items {
            if *item == "none" {
                continue;
            }
            if !["all", "starting", "stopping", "running", "reloading"].contains(item) {
                return Err(self
                    .error(line, format!("invalid email alert status at: \"{item}\""))
                    .with_hint("use all, none, starting, stopping, running or reloading"));
            }
            if none {
                return Err(self
                    .error(
                        line,
                        format!("invalid email alert status: \"{item}\" specified with \"none\""),
                    )
                    .with_hint("none cannot be combined with other states"));
            }
        }
        Ok(())
    }

    /// Reads a block starting at `header`; returns the index of the first line after it.
    fn read_virtual(
        &self,
        header: Line<'a>,
        family: Family,
        vattr: &'a str,
    ) -> Result<(usize, Virtual), Diagnostic> {
        let (ip_port, fwmark) = match values::virtual_address(vattr) {
            Some(VirtualAddress::HostPort(host, port)) => (Some((host, port)), None),
            Some(VirtualAddress::Mark(mark)) => (None, Some(mark)),
            Some(VirtualAddress::V6(addr, port)) => {
                if family == Family::V4 {
                    return Err(self
                        .error(header, "cannot specify an IPv6 address here")
                        .with_hint("use virtual6= for an IPv6 service"));
                }
                if addr.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(self
                        .error(header, "invalid ipv6 address for virtual server")
                        .with_hint("write it as virtual6=[2001:db8::20]:80"));
                }
                (Some((addr, port)), None)
            }
            None => {
                return Err(self
                    .error(header, "invalid address for virtual server")
                    .with_hint(
                        "write virtual=IP:PORT, virtual=HOST:SERVICE, virtual6=[IPv6]:PORT \
                     or virtual=FWMARK",
                    ));
            }
        };
        let (protocol, service) = match ip_port {
            Some((_, port)) if port == "53" || port == "domain" => (VirtualProtocol::Udp, None),
            Some(_) => (VirtualProtocol::Tcp, None),
            None => (VirtualProtocol::Fwm, Some("none")),
        };
        let mut pv = PendingVirtual {
            family,
            header,
            ip_port,
            fwmark,
            protocol,
            service: service.map(str::to_string),
            check: CheckSettings::new(service),
            reals: Vec::new(),
            fallback: None,
        };

        let mut i = header.index + 1;
        let mut indent: Option<String> = None;
        let mut last_own_end: Option<usize> = None;
        let mut block_end = self.lines[header.index].end;
        let mut region: Option<GeneratedRegion> = None;
        let mut in_region = false;
        while i < self.lines.len() {
            let line = self.line(i);
            let rcmd = match lines::block_line(line.text) {
                BlockLine::End => break,
                BlockLine::Directive(command) => Some(command),
                BlockLine::Comment => None,
            };
            let Some(rcmd) = rcmd else {
                let trimmed = line.text.trim();
                if trimmed.starts_with(MARK_BEGIN) && region.is_none() {
                    in_region = true;
                    region = Some(GeneratedRegion {
                        span: Span::new(self.file, line.start, self.lines[i].end),
                        terminated: false,
                        followed_by_directives: false,
                    });
                } else if trimmed.starts_with(MARK_END) && in_region {
                    in_region = false;
                    if let Some(r) = region.as_mut() {
                        r.span.end = self.lines[i].end;
                        r.terminated = true;
                    }
                } else if in_region {
                    if let Some(r) = region.as_mut() {
                        r.span.end = self.lines[i].end;
                    }
                }
                block_end = self.lines[i].end;
                i += 1;
                continue;
            };
            block_end = self.lines[i].end;
            if indent.is_none() {
                let lead = line.text.len() - line.text.trim_start_matches([' ', '\t']).len();
                indent = Some(line.text[..lead].to_string());
            }
            if in_region {
                if let Some(r) = region.as_mut() {
                    r.span.end = self.lines[i].end;
                }
                // Generated lines are validated but do not count as the block's own.
                let mut scratch = pv.clone();
                scratch.reals.clear();
                directives::in_virtual(self, &mut scratch, line, &rcmd)?;
                pv.reals.extend(scratch.reals);
            } else {
                if let Some(r) = region.as_mut() {
                    r.followed_by_directives = true;
                }
                directives::in_virtual(self, &mut pv, line, &rcmd)?;
                last_own_end = Some(self.lines[i].end);
            }
            i += 1;
        }

        let text = self.text();
        let insert_at = last_own_end.unwrap_or(self.lines[header.index].end);
        let mid_line = insert_at == text.len() && !text.ends_with('\n');
        let insert = InsertionPoint {
            at: Span::point(self.file, insert_at),
            indent: indent.unwrap_or_else(|| "    ".to_string()),
            mid_line,
        };
        let block = Span::new(self.file, header.start, block_end);
        let virt = self.resolve(pv, insert, block, region)?;
        Ok((i, virt))
    }

    /// The line's text span from its first non-blank character, without trailing blanks.
    pub(super) fn line_span(&self, line: Line<'_>) -> Span {
        let lead = line.text.len() - line.text.trim_start().len();
        let body = line.text.trim_end().len().max(lead);
        Span::new(self.file, line.start + lead, line.start + body)
    }

    pub(super) fn parse_fallback(
        &self,
        line: Line<'_>,
        value: &str,
        default_port: Option<&str>,
    ) -> Result<Fallback, Diagnostic> {
        let mut parse_line = value.to_string();
        let mut fwd = None;
        if let Some(c) = regex!(r"(\S+)(\s+(\S+))?\s*$").captures(value) {
            fwd = c.get(3).map(|m| m.as_str().to_string());
            parse_line = c.get(1).map_or("", |m| m.as_str()).to_string();
        }
        let port_re = regex!(r"(:(\d+|[A-Za-z0-9_\-]+))?$");
        let (server, mut port) = match port_re.captures(&parse_line) {
            Some(c) => {
                let whole = c.get(0).map_or(parse_line.len(), |m| m.start());
                (
                    parse_line[..whole].to_string(),
                    c.get(2).map(|m| m.as_str().to_string()),
                )
            }
            None => (parse_line.clone(), None),
        };
        if port.is_none() {
            port = default_port.map(str::to_string);
        }
        if let Some(f) = fwd.as_deref() {
            if !["gate", "masq", "ipip"].contains(&f) {
                return Err(self
                    .error(line, "forward method must be gate, masq or ipip")
                    .with_hint("write the fallback as HOST[:PORT] [gate|masq|ipip]"));
            }
        }
        Ok(Fallback { server, port })
    }

    pub(super) fn resolve_fallback(
        &self,
        line: Line<'_>,
        protocol: &str,
        fb: &Fallback,
        family: Family,
    ) -> Result<(), Diagnostic> {
        if self.host(&fb.server, family).is_none() {
            return Err(self
                .error(
                    line,
                    format!(
                        "invalid {} address or could not resolve for fallback server: {}",
                        match family {
                            Family::V4 => "IPv4",
                            Family::V6 => "IPv6",
                        },
                        fb.server
                    ),
                )
                .with_hint("write an address, or a host name this machine resolves"));
        }
        match fb.port.as_deref() {
            None | Some("") | Some("0") => Ok(()),
            Some(p) => match self.port(p, protocol) {
                Some(n) if n != 0 => Ok(()),
                _ => Err(self
                    .error(line, "invalid port for fallback server")
                    .with_hint("write a port number or a service name from /etc/services")),
            },
        }
    }

    /// ldirectord's `ld_gethostbyname`: brackets stripped, numeric or resolved.
    fn host(&self, name: &str, family: Family) -> Option<IpAddr> {
        let name = values::bracketed(name).unwrap_or(name);
        match name.parse::<IpAddr>() {
            Ok(ip) => (family_of(ip) == family).then_some(ip),
            Err(_) if name.is_empty() => None,
            Err(_) => self.resolver.host(name, family),
        }
    }

    /// ldirectord's `ld_getservbyname`: a number 0..65535, or a service name.
    fn port(&self, name: &str, protocol: &str) -> Option<u16> {
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            return u16::try_from(number(name)).ok();
        }
        self.resolver.service(name, protocol)
    }

    fn resolve(
        &self,
        pv: PendingVirtual<'a>,
        insert: InsertionPoint,
        block: Span,
        generated: Option<GeneratedRegion>,
    ) -> Result<Virtual, Diagnostic> {
        let header = pv.header;
        if let Some((fb, line)) = &pv.fallback {
            self.resolve_fallback(*line, pv.protocol.as_str(), fb, pv.family)?;
        }
        let mut check = pv.check;
        let target = match (pv.ip_port, pv.fwmark) {
            (Some((host, port_name)), _) => {
                let resolved = self
                    .host(host, pv.family)
                    .zip(self.port(port_name, pv.protocol.as_str()));
                let Some((addr, port)) = resolved else {
                    return Err(self
                        .error(header, "invalid address for virtual service")
                        .with_hint(format!(
                            "'{host}' or '{port_name}' does not resolve ({} {})",
                            match pv.family {
                                Family::V4 => "IPv4",
                                Family::V6 => "IPv6",
                            },
                            pv.protocol.as_str()
                        )));
                };
                if pv.service.is_none() {
                    // ldirectord compares the port's text: a number as written, a name's
                    // resolved number.
                    let text = if port_name.bytes().all(|b| b.is_ascii_digit()) {
                        port_name.to_string()
                    } else {
                        port.to_string()
                    };
                    check.service = port_to_service(&text).to_string();
                }
                VirtualTarget::Address { addr, port }
            }
            (None, Some(mark)) => match mark.parse::<u32>() {
                Ok(m) => VirtualTarget::Fwmark(m),
                Err(_) => {
                    return Err(self
                        .error(header, "firewall mark out of range")
                        .with_hint("a mark is a number from 0 to 4294967295"))
                }
            },
            (None, None) => {
                return Err(self.error(header, "invalid address for virtual server"));
            }
        };
        let mut reals = Vec::new();
        for (text, line) in &pv.reals {
            self.real(text, *line, pv.family, &mut reals)?;
        }
        Ok(Virtual {
            family: pv.family,
            target,
            protocol: pv.protocol,
            header: Span::new(self.file, header.start, header.start + header.text.len()),
            block,
            check,
            reals,
            insert,
            generated,
        })
    }

    fn real(
        &self,
        text: &str,
        line: Line<'_>,
        family: Family,
        out: &mut Vec<Real>,
    ) -> Result<(), Diagnostic> {
        const ADDR: &str = r"(\d+\.\d+\.\d+\.\d+|[A-Za-z0-9.\-]+|\[[0-9A-fa-f:]+\])";
        static REAL: LazyLock<Regex> = LazyLock::new(|| {
            re(&format!(
                r"{ADDR}(->{ADDR})?(:(\d+|[A-Za-z0-9_\-]+))?\s+(.*)"
            ))
        });
        let Some(c) = REAL.captures(text) else {
            return Err(self
                .error(line, "invalid address for real server (wrong format)")
                .with_hint(
                    "write real=IP[:PORT] gate|masq|ipip [WEIGHT] [\"REQUEST\", \"RECEIVE\"]",
                ));
        };
        let get = |i: usize| c.get(i).map(|m| m.as_str());
        let ip1 = get(1).unwrap_or("");
        let ip2 = get(3);
        let port_name = get(5).unwrap_or("0");
        let flags = get(6).unwrap_or("");
        let first = self.host(ip1, family).ok_or_else(|| {
            self.error(
                line,
                format!("invalid address ({ip1}) for real server (could not resolve host)"),
            )
            .with_hint("write an address, or a host name this machine resolves")
        })?;
        let port = self.port(port_name, "").ok_or_else(|| {
            self.error(
                line,
                format!("invalid port ({port_name}) for real server (could not resolve port)"),
            )
            .with_hint("write a port number or a service name from /etc/services")
        })?;
        let template = self.real_flags(flags, line, first, port)?;
        let Some(ip2) = ip2 else {
            out.push(template);
            return Ok(());
        };
        let last = self.host(ip2, family).ok_or_else(|| {
            self.error(
                line,
                format!("invalid address ({ip2}) for real server (could not resolve end host)"),
            )
            .with_hint("write an address, or a host name this machine resolves")
        })?;
        let (IpAddr::V4(a), IpAddr::V4(b)) = (first, last) else {
            return Err(self
                .error(line, "Address range for IPv6 is not supported yet")
                .with_hint("write one real6= line per real server"));
        };
        let (a, b) = (u32::from(a), u32::from(b));
        if a > b {
            return Err(self
                .error(line, format!("invalid range: {first} is after {last}"))
                .with_hint("write the lower address first"));
        }
        // ldirectord compares the addresses as decimal strings (`le`); same-length numbers
        // compare as numbers, and the count cap bounds the odd cases where they do not.
        let end = b.to_string();
        let mut i = a;
        let mut n = 0usize;
        while i.to_string() <= end {
            n += 1;
            if n > MAX_RANGE {
                return Err(self
                    .error(line, "address range too large")
                    .with_hint(format!("a range may hold at most {MAX_RANGE} real servers")));
            }
            out.push(Real {
                addr: IpAddr::V4(i.into()),
                ..template.clone()
            });
            match i.checked_add(1) {
                Some(next) => i = next,
                None => break,
            }
        }
        Ok(())
    }

    /// `gate|masq|ipip [WEIGHT] ["REQUEST", "RECEIVE"] [l:N] [u:N]` (ldirectord's
    /// `add_real_server`: each part found anywhere in what is left).
    fn real_flags(
        &self,
        flags: &str,
        line: Line<'_>,
        addr: IpAddr,
        port: u16,
    ) -> Result<Real, Diagnostic> {
        let bad_method = || {
            self.error(line, "forward method must be gate, masq or ipip")
                .with_hint("gate = direct routing, ipip = tunnel, masq = NAT")
        };
        let c = regex!(r"(\w+)(.*)")
            .captures(flags)
            .ok_or_else(bad_method)?;
        let method = match c.get(1).map_or("", |m| m.as_str()) {
            "gate" => ForwardingMethod::DirectRouting,
            "masq" => ForwardingMethod::Nat,
            "ipip" => ForwardingMethod::Tunnel,
            _ => return Err(bad_method()),
        };
        let mut rest = c.get(2).map_or("", |m| m.as_str());
        let mut weight = 1i64;
        if let Some(c) = regex!(r"\s+(\d+)(.*)").captures(rest) {
            weight = i64::try_from(number(c.get(1).map_or("", |m| m.as_str()))).unwrap_or(i64::MAX);
            rest = c.get(2).map_or("", |m| m.as_str());
        }
        let (mut request, mut receive) = (None, None);
        if let Some(c) = regex!(r#"\s+"(.*)"[, ]\s*"(.*)"(.*)"#).captures(rest) {
            request = Some(with_slash(c.get(1).map_or("", |m| m.as_str()).to_string()));
            receive = Some(c.get(2).map_or("", |m| m.as_str()).to_string());
            rest = c.get(3).map_or("", |m| m.as_str());
        }
        for threshold in [regex!(r"\s+l:(\d+)(.*)"), regex!(r"\s+u:(\d+)(.*)")] {
            if let Some(c) = threshold.captures(rest) {
                rest = c.get(2).map_or("", |m| m.as_str());
            }
        }
        if values::has_non_space(rest) {
            return Err(self
                .error(
                    line,
                    format!("invalid real server line, around \"{}\"", rest.trim()),
                )
                .with_hint(
                    "write real=IP[:PORT] gate|masq|ipip [WEIGHT] [\"REQUEST\", \"RECEIVE\"]",
                ));
        }
        Ok(Real {
            addr,
            port,
            method,
            weight,
            request,
            receive,
            line: self.line_span(line),
        })
    }
}

/// An error pointing at the line's text from its first non-blank character.
pub(super) fn error_at(
    sources: &SourceMap,
    file: FileId,
    line: Line<'_>,
    message: impl Into<String>,
) -> Diagnostic {
    let lead = line.text.len() - line.text.trim_start().len();
    let body = line.text.trim_end().len().max(lead);
    Diagnostic::error(message).at(
        sources,
        Span::new(file, line.start + lead, line.start + body),
    )
}

/// "unknown command 'KEY'" naming what the line starts with.
pub(super) fn unknown_command(text: &str) -> String {
    let text = text.trim();
    let word = text.split('=').next().unwrap_or("").trim();
    if word.is_empty() && text.is_empty() {
        "unknown command: a line of white space inside a virtual block".to_string()
    } else {
        let word: String = if word.is_empty() { text } else { word }
            .chars()
            .take(40)
            .collect();
        format!("unknown command '{word}'")
    }
}
