//! The block parser: logical lines -> virtual servers, groups, real servers, checkers and
//! what `global_defs` says about script security.
//!
//! As in keepalived, a statement ends at the end of a line or at a brace, and a statement
//! followed by `{` (on its line or the next) opens a block. Blocks vipcheck does not need
//! (vrrp_instance, static routes, unknown keywords, ...) are skipped with their braces
//! balanced.

use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

use nom::bytes::complete::take_while1;
use nom::character::complete::{char, hex_digit1};
use nom::combinator::{all_consuming, opt};
use nom::sequence::{pair, preceded};

use super::lexer::TokenKind;
use super::preprocess::{LToken, LineSink};
use super::GlobalDefs;
use crate::config::{
    Diagnostic, ExistingCheck, FileId, ForwardingMethod, InsertionPoint, Origin, Protocol,
    RealServer, ServiceKey, SourceMap, Span, Tunnel, TunnelChecksum, TunnelType, VirtualService,
};

/// The most addresses a `virtual_server_group` may expand to.
pub const MAX_GROUP_ADDRESSES: usize = 65_536;

/// The deepest blocks may nest. keepalived's own configs nest about 5 deep
/// (`virtual_server` > `real_server` > `HTTP_GET` > `url`); far more is a broken or
/// hostile file, whose parse would otherwise grow with every level.
pub const MAX_BLOCK_DEPTH: usize = 128;

/// The most VIPs all services together may have (groups are copied into each service
/// that names them).
pub const MAX_TOTAL_VIPS: usize = 1_000_000;

/// keepalived's checker keywords inside a `real_server`.
pub const CHECKERS: &[&str] = &[
    "HTTP_GET",
    "SSL_GET",
    "TCP_CHECK",
    "MISC_CHECK",
    "SMTP_CHECK",
    "DNS_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
    "BFD_CHECK",
];

#[derive(Debug, Clone)]
struct Word {
    value: String,
    span: Span,
    via: Option<Rc<str>>,
}

#[derive(Debug, Clone)]
struct Stmt {
    words: Vec<Word>,
}

impl Stmt {
    fn keyword(&self) -> &str {
        &self.words[0].value
    }

    fn arg(&self, i: usize) -> Option<&Word> {
        self.words.get(i)
    }

    /// From the first word to the last, when they are in one file in order.
    fn span(&self) -> Span {
        let first = self.words[0].span;
        let last = self.words[self.words.len() - 1].span;
        join(first, last)
    }
}

fn join(a: Span, b: Span) -> Span {
    if a.file == b.file && b.end >= a.start {
        Span::new(a.file, a.start, b.end.max(a.end))
    } else {
        a
    }
}

#[derive(Debug)]
struct VsBuild {
    key: ServiceKey,
    header: Span,
    block: Span,
    port: Option<u16>,
    /// `None` until a `protocol` line sets it (see [`Parser::finish`] for the default).
    protocol: Option<Protocol>,
    method: ForwardingMethod,
    real_servers: Vec<RsBuild>,
    /// `delay_loop`, when written.
    interval: Option<std::time::Duration>,
    tunnel: Tunnel,
}

#[derive(Debug)]
struct RsBuild {
    keyword: Word,
    header: Span,
    addr: IpAddr,
    port: Option<u16>,
    weight: Option<i64>,
    method: Option<ForwardingMethod>,
    checks: Vec<ExistingCheck>,
    /// Set with `method` (a real server's `lvs_method` replaces the virtual's tunnel).
    tunnel: Tunnel,
    span: Span,
    insert: Option<InsertionPoint>,
}

#[derive(Debug, Default)]
struct GroupBuild {
    vips: Vec<IpAddr>,
    fwmarks: Vec<u32>,
    ports: Vec<Option<u16>>,
}

#[derive(Debug)]
enum Frame {
    Top,
    Skip,
    GlobalDefs {
        keyword: Word,
    },
    VirtualServer(VsBuild),
    Group {
        name: String,
        group: GroupBuild,
    },
    RealServer(RsBuild),
    /// A checker block of a real server, with its top-level statements as (keyword, the
    /// other words joined by one space), read as every other statement is (includes,
    /// `@id` lines, quotes, escapes and continuations already applied).
    Checker {
        keyword: Word,
        params: Vec<(String, String)>,
    },
}

/// Builds the model from logical lines (see [`LineSink`]).
pub struct Parser {
    frames: Vec<Frame>,
    pending: Option<Stmt>,
    services: Vec<VsBuild>,
    groups: HashMap<String, (GroupBuild, Span)>,
    pub global_defs: GlobalDefs,
    pub warnings: super::Warnings,
    tabs: HashMap<FileId, bool>,
    /// The outermost block still open and its `{`, for the "never closed" error.
    open_braces: Vec<Span>,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            frames: vec![Frame::Top],
            pending: None,
            services: Vec::new(),
            groups: HashMap::new(),
            global_defs: GlobalDefs::default(),
            warnings: super::Warnings::default(),
            tabs: HashMap::new(),
            open_braces: Vec::new(),
        }
    }
}

impl LineSink for Parser {
    fn line(&mut self, sources: &SourceMap, tokens: Vec<LToken>) -> Result<(), Diagnostic> {
        let mut words: Vec<Word> = Vec::new();
        for t in tokens {
            match t.kind {
                TokenKind::Word => words.push(Word {
                    value: t.value,
                    span: t.span,
                    via: t.via,
                }),
                TokenKind::Open | TokenKind::Close => {
                    if !words.is_empty() {
                        self.statement(
                            sources,
                            Stmt {
                                words: std::mem::take(&mut words),
                            },
                        )?;
                    }
                    let brace = Word {
                        value: t.value,
                        span: t.span,
                        via: t.via,
                    };
                    if t.kind == TokenKind::Open {
                        self.open(sources, brace)?;
                    } else {
                        self.close(sources, brace)?;
                    }
                }
                _ => {}
            }
        }
        if !words.is_empty() {
            self.statement(sources, Stmt { words })?;
        }
        Ok(())
    }
}

impl Parser {
    /// A finished statement: held back until we know whether a `{` follows.
    fn statement(&mut self, sources: &SourceMap, stmt: Stmt) -> Result<(), Diagnostic> {
        if let Some(prev) = self.pending.take() {
            self.simple(sources, prev)?;
        }
        self.pending = Some(stmt);
        Ok(())
    }

    fn flush(&mut self, sources: &SourceMap) -> Result<(), Diagnostic> {
        if let Some(prev) = self.pending.take() {
            self.simple(sources, prev)?;
        }
        Ok(())
    }

    /// A statement without a block.
    fn simple(&mut self, sources: &SourceMap, stmt: Stmt) -> Result<(), Diagnostic> {
        let kw = stmt.keyword().to_string();
        let frame = self.frames.last_mut();
        match (frame, kw.as_str()) {
            (Some(Frame::Top), "real_server") => {
                Err(Diagnostic::error("real_server outside a virtual_server")
                    .at(sources, stmt.words[0].span)
                    .with_hint("put the real_server block inside a virtual_server { ... } block"))
            }
            (Some(Frame::Top), "virtual_server" | "virtual_server_group")
            | (Some(Frame::VirtualServer(_)), "real_server") => {
                Err(Diagnostic::error(format!("{kw} without a '{{' block"))
                    .at(sources, stmt.span())
                    .with_hint(format!("write {kw} ... {{ ... }}")))
            }
            (Some(Frame::GlobalDefs { .. }), "enable_script_security") => {
                self.global_defs.enable_script_security.push(stmt.span());
                Ok(())
            }
            (Some(Frame::GlobalDefs { .. }), "script_user") => {
                match stmt.arg(1) {
                    Some(_) => self.global_defs.script_user.push(stmt.span()),
                    None => self.warn(sources, stmt.span(), "script_user without a user name"),
                }
                Ok(())
            }
            (Some(Frame::VirtualServer(vs)), "lb_kind" | "lvs_method") => {
                vs.method = parse_method(sources, &stmt)?;
                vs.tunnel = parse_tunnel(sources, &stmt, vs.method)?;
                Ok(())
            }
            (Some(Frame::VirtualServer(vs)), "delay_loop") => {
                // keepalived reads decimal seconds (microsecond resolution).
                let secs = stmt.arg(1).and_then(|w| w.value.trim().parse::<f64>().ok());
                match secs.filter(|s| s.is_finite() && *s >= 1e-6 && *s <= 4_294.0) {
                    Some(s) => vs.interval = Some(std::time::Duration::from_secs_f64(s)),
                    None => {
                        let span = stmt.span();
                        self.warn(
                            sources,
                            span,
                            "delay_loop is not a number of seconds; keepalived ignores the line",
                        );
                    }
                }
                Ok(())
            }
            (Some(Frame::VirtualServer(vs)), "protocol") => {
                // keepalived compares without regard to case.
                let value = stmt.arg(1).map(|w| w.value.to_ascii_uppercase());
                match value.as_deref() {
                    Some("TCP") => vs.protocol = Some(Protocol::Tcp),
                    Some("UDP") => vs.protocol = Some(Protocol::Udp),
                    Some("SCTP") => vs.protocol = Some(Protocol::Sctp),
                    _ => {
                        let span = stmt.span();
                        self.warn(
                            sources,
                            span,
                            "unknown protocol; keepalived ignores the line",
                        );
                    }
                }
                Ok(())
            }
            (Some(Frame::RealServer(rs)), "lvs_method") => {
                let method = parse_method(sources, &stmt)?;
                rs.tunnel = parse_tunnel(sources, &stmt, method)?;
                rs.method = Some(method);
                Ok(())
            }
            (Some(Frame::RealServer(rs)), "weight") => {
                match stmt.arg(1).and_then(|w| w.value.trim().parse::<i64>().ok()) {
                    Some(w) => rs.weight = Some(w),
                    None => {
                        let span = stmt.span();
                        self.warn(sources, span, "weight is not a number; ignored");
                    }
                }
                Ok(())
            }
            (Some(Frame::RealServer(rs)), k) if CHECKERS.contains(&k) => {
                rs.checks.push(ExistingCheck {
                    kind: k.to_string(),
                    detail: String::new(),
                    span: stmt.span(),
                    params: Vec::new(),
                });
                Ok(())
            }
            (Some(Frame::Group { group, .. }), _) => group_entry(sources, group, &stmt),
            (Some(Frame::Checker { params, .. }), _) => {
                let rest: Vec<&str> = stmt.words[1..].iter().map(|w| w.value.as_str()).collect();
                params.push((kw.clone(), rest.join(" ")));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn warn(&mut self, sources: &SourceMap, span: Span, message: &str) {
        self.warnings
            .push(sources, span, Diagnostic::warning(message));
    }

    fn open(&mut self, sources: &SourceMap, brace: Word) -> Result<(), Diagnostic> {
        let Some(header) = self.pending.take() else {
            self.warn(
                sources,
                brace.span,
                "'{' without a keyword before it; its block is skipped",
            );
            return self.push_frame(sources, Frame::Skip, brace.span);
        };
        let kw = header.keyword().to_string();
        let frame = match (self.frames.last(), kw.as_str()) {
            (Some(Frame::Top), "global_defs") => Frame::GlobalDefs {
                keyword: header.words[0].clone(),
            },
            (Some(Frame::Top), "virtual_server") => {
                Frame::VirtualServer(virtual_server_header(sources, &header)?)
            }
            (Some(Frame::Top), "virtual_server_group") => match header.arg(1) {
                Some(name) => Frame::Group {
                    name: name.value.clone(),
                    group: GroupBuild::default(),
                },
                None => {
                    return Err(Diagnostic::error("virtual_server_group without a name")
                        .at(sources, header.span())
                        .with_hint("write virtual_server_group NAME { ... }"))
                }
            },
            (Some(Frame::Top), "real_server") => {
                return Err(Diagnostic::error("real_server outside a virtual_server")
                    .at(sources, header.words[0].span)
                    .with_hint("put the real_server block inside a virtual_server { ... } block"))
            }
            (Some(Frame::VirtualServer(_)), "real_server") => {
                Frame::RealServer(real_server_header(sources, &header)?)
            }
            (Some(Frame::RealServer(_)), k) if CHECKERS.contains(&k) => Frame::Checker {
                keyword: header.words[0].clone(),
                params: Vec::new(),
            },
            _ => Frame::Skip,
        };
        self.push_frame(sources, frame, brace.span)
    }

    /// Opens a block, unless blocks already nest [`MAX_BLOCK_DEPTH`] deep.
    fn push_frame(
        &mut self,
        sources: &SourceMap,
        frame: Frame,
        brace: Span,
    ) -> Result<(), Diagnostic> {
        // The first frame is the top level, not a block.
        if self.frames.len() > MAX_BLOCK_DEPTH {
            return Err(Diagnostic::error(format!(
                "blocks nest more than {MAX_BLOCK_DEPTH} deep"
            ))
            .at(sources, brace)
            .with_hint(
                "keepalived configs nest a few blocks deep (virtual_server > real_server > \
                 checker > url); check the braces",
            ));
        }
        self.frames.push(frame);
        self.open_braces.push(brace);
        Ok(())
    }

    fn close(&mut self, sources: &SourceMap, brace: Word) -> Result<(), Diagnostic> {
        self.flush(sources)?;
        if self.frames.len() <= 1 {
            return Err(Diagnostic::error("'}' closes no block")
                .at(sources, brace.span)
                .with_hint("remove it, or add the '{' it should close"));
        }
        self.open_braces.pop();
        let frame = self.frames.pop();
        match frame {
            Some(Frame::GlobalDefs { keyword })
                if self.global_defs.insert.is_none()
                    && keyword.via.is_none()
                    && brace.via.is_none() =>
            {
                self.global_defs.insert = Some(self.insertion(sources, &keyword, &brace));
                self.global_defs.keyword = Some(keyword.span);
            }
            Some(Frame::VirtualServer(mut vs)) => {
                vs.block = join(vs.header, brace.span);
                self.services.push(vs);
            }
            Some(Frame::Group { name, group }) => {
                let span = brace.span;
                match self.groups.entry(name) {
                    std::collections::hash_map::Entry::Occupied(e) => {
                        let message = format!(
                            "virtual_server_group {} is defined again; the first one counts",
                            e.key()
                        );
                        self.warn(sources, span, &message);
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert((group, span));
                    }
                }
            }
            Some(Frame::RealServer(mut rs)) => {
                rs.span = join(rs.keyword.span, brace.span);
                if rs.keyword.via.is_none() && brace.via.is_none() {
                    rs.insert = Some(self.insertion(sources, &rs.keyword, &brace));
                }
                if let Some(Frame::VirtualServer(vs)) = self.frames.last_mut() {
                    vs.real_servers.push(rs);
                }
            }
            Some(Frame::Checker { keyword, params }) => {
                if let Some(Frame::RealServer(rs)) = self.frames.last_mut() {
                    let span = join(keyword.span, brace.span);
                    rs.checks.push(ExistingCheck {
                        kind: keyword.value.clone(),
                        detail: String::new(),
                        span,
                        params,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Where text goes inside the block opened by `keyword` and closed by `close`.
    ///
    /// When the closing brace's line is conditional (`@id    }`), the indent starts with
    /// the same `@id` so every inserted line applies to the same config ids as the block.
    fn insertion(&mut self, sources: &SourceMap, keyword: &Word, close: &Word) -> InsertionPoint {
        let text = &sources.file(close.span.file).text;
        let c = close.span.start;
        let line_start = text[..c].rfind('\n').map_or(0, |i| i + 1);
        let before = &text[line_start..c];
        let (condition, before_brace) = split_condition(before);
        let (at, mid_line) = if before_brace.chars().all(|ch| ch == ' ' || ch == '\t') {
            (line_start, false)
        } else {
            (c, true)
        };
        let ktext = &sources.file(keyword.span.file).text;
        let k = keyword.span.start.min(ktext.len());
        let kline = ktext[..k].rfind('\n').map_or(0, |i| i + 1);
        let (_, kbody) = split_condition(&ktext[kline..k]);
        let white: String = kbody
            .chars()
            .take_while(|&ch| ch == ' ' || ch == '\t')
            .collect();
        let file = keyword.span.file;
        let tabs = *self
            .tabs
            .entry(file)
            .or_insert_with(|| indents_with_tabs(ktext));
        let step = if white.contains('\t') || (white.is_empty() && tabs) {
            "\t"
        } else {
            "    "
        };
        InsertionPoint {
            at: Span::point(close.span.file, at),
            indent: format!("{}{white}{step}", condition.unwrap_or("")),
            mid_line,
        }
    }

    /// End of input: every block must be closed; groups are resolved.
    pub fn finish(
        mut self,
        sources: &SourceMap,
    ) -> Result<(Vec<VirtualService>, GlobalDefs, Vec<Diagnostic>), Diagnostic> {
        self.flush(sources)?;
        if self.frames.len() > 1 {
            let span = self.open_braces.first().copied();
            let open = self.frames.len() - 1;
            let mut d = Diagnostic::error("this '{' is never closed").with_hint(format!(
                "add the missing '}}' ({open} block(s) are still open at the end of the configuration)"
            ));
            if let Some(span) = span {
                d = d.at(sources, span);
            }
            return Err(d);
        }
        let mut services = Vec::with_capacity(self.services.len());
        let mut total_vips = 0usize;
        for vs in std::mem::take(&mut self.services) {
            if let ServiceKey::Group(name) = &vs.key {
                total_vips += self.groups.get(name).map_or(0, |(g, _)| g.vips.len());
            } else {
                total_vips += 1;
            }
            if total_vips > MAX_TOTAL_VIPS {
                return Err(Diagnostic::error(format!(
                    "the virtual servers have more than {MAX_TOTAL_VIPS} addresses in total"
                ))
                .at(sources, vs.header)
                .with_hint("use fewer or smaller virtual_server_group ranges"));
            }
            let (vips, fwmarks, port) = match &vs.key {
                ServiceKey::Address(ip) => (vec![*ip], Vec::new(), vs.port),
                ServiceKey::Fwmark(m) => (Vec::new(), vec![*m], None),
                ServiceKey::Group(name) => match self.groups.get(name) {
                    Some((g, _)) => {
                        let first = g.ports.first().copied().flatten();
                        let same = g.ports.iter().all(|p| *p == g.ports[0]);
                        if !same {
                            self.warnings.push(
                                sources,
                                vs.header,
                                Diagnostic::warning(format!(
                                    "virtual_server_group {name} mixes ports; the service is treated as covering all ports"
                                )),
                            );
                        }
                        let port = if same { first } else { None };
                        (g.vips.clone(), g.fwmarks.clone(), port)
                    }
                    None => {
                        self.warnings.push(
                            sources,
                            vs.header,
                            Diagnostic::warning(format!(
                                "virtual_server_group {name} is not defined; the service has no addresses"
                            )),
                        );
                        (Vec::new(), Vec::new(), None)
                    }
                },
            };
            // keepalived 2.2 (check_data.c): an address service without `protocol` is UDP,
            // since that is what the kernel makes of protocol 0. A fwmark service has no
            // protocol of its own; TCP stands in.
            let protocol = match vs.protocol {
                Some(p) => p,
                None if vips.is_empty() => Protocol::Tcp,
                None => {
                    self.warnings.push(
                        sources,
                        vs.header,
                        Diagnostic::warning(
                            "no protocol set; keepalived 2.2 makes this service UDP",
                        )
                        .with_hint("add 'protocol TCP' if the service is TCP"),
                    );
                    Protocol::Udp
                }
            };
            // keepalived clears a real server's port under a fwmark-only service, and
            // resets it to the virtual's for DR and TUN.
            let fwmark_only = vips.is_empty() && !fwmarks.is_empty();
            let real_servers = vs
                .real_servers
                .into_iter()
                .map(|rs| {
                    let method = rs.method.unwrap_or(vs.method);
                    let tunnel = if rs.method.is_some() {
                        rs.tunnel
                    } else {
                        vs.tunnel
                    };
                    let port = if fwmark_only || method.needs_vip_on_real_server() {
                        port
                    } else {
                        rs.port.or(port)
                    };
                    let origin = match &rs.keyword.via {
                        Some(via) => Origin::Expanded {
                            span: rs.keyword.span,
                            via: via.to_string(),
                        },
                        None => Origin::Written(rs.header),
                    };
                    RealServer {
                        addr: rs.addr,
                        port,
                        weight: rs.weight,
                        method,
                        checks: rs.checks,
                        origin,
                        span: rs.span,
                        insert: rs.insert,
                        tunnel,
                    }
                })
                .collect();
            services.push(VirtualService {
                key: vs.key,
                vips,
                fwmarks,
                port,
                protocol,
                method: vs.method,
                real_servers,
                span: vs.header,
                block: vs.block,
                interval: vs.interval,
                tunnel: vs.tunnel,
            });
        }
        Ok((services, self.global_defs, self.warnings.finish()))
    }
}

/// Splits a leading `@id` / `@^id` (after optional blanks) off a line's text: returns the
/// condition and the text after it (starting with the blanks that separate it).
fn split_condition(line: &str) -> (Option<&str>, &str) {
    let trimmed = line.trim_start_matches([' ', '\t']);
    if let Some(rest) = trimmed.strip_prefix('@') {
        if let Some(end) = rest.find([' ', '\t']) {
            let cond_len = 1 + end;
            return (Some(&trimmed[..cond_len]), &trimmed[cond_len..]);
        }
    }
    (None, line)
}

/// True when most indented lines of the file start with a tab.
fn indents_with_tabs(text: &str) -> bool {
    let (mut tabs, mut spaces) = (0usize, 0usize);
    for line in text.lines() {
        match line.as_bytes().first() {
            Some(b'\t') => tabs += 1,
            Some(b' ') => spaces += 1,
            _ => {}
        }
    }
    tabs > spaces
}

fn parse_method(sources: &SourceMap, stmt: &Stmt) -> Result<ForwardingMethod, Diagnostic> {
    let Some(w) = stmt.arg(1) else {
        return Err(
            Diagnostic::error(format!("{} without a method", stmt.keyword()))
                .at(sources, stmt.span())
                .with_hint("use NAT, DR or TUN"),
        );
    };
    match w.value.as_str() {
        "NAT" => Ok(ForwardingMethod::Nat),
        "DR" => Ok(ForwardingMethod::DirectRouting),
        "TUN" => Ok(ForwardingMethod::Tunnel),
        other => Err(
            Diagnostic::error(format!("unknown forwarding method '{other}'"))
                .at(sources, w.span)
                .with_hint("keepalived accepts NAT, DR or TUN, in upper case"),
        ),
    }
}

/// The tunnel options after `lvs_method TUN` / `lb_kind TUN`, as keepalived reads them
/// (check_parser.c): in any order, `type ipip|gue|gre`, `port N` (1-65535, GUE only and
/// then required), `nocsum|csum|remcsum` (not on IPIP; no `remcsum` on GRE). keepalived
/// ignores words after NAT and DR, and so does this.
fn parse_tunnel(
    sources: &SourceMap,
    stmt: &Stmt,
    method: ForwardingMethod,
) -> Result<Tunnel, Diagnostic> {
    let mut t = Tunnel::default();
    if method != ForwardingMethod::Tunnel {
        return Ok(t);
    }
    let hint = "keepalived takes lvs_method TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]";
    let bad =
        |span: Span, msg: String| Err(Diagnostic::error(msg).at(sources, span).with_hint(hint));
    let mut port: Option<(u16, Span)> = None;
    let mut gue = false;
    let mut i = 2;
    while let Some(w) = stmt.arg(i) {
        match w.value.as_str() {
            "type" => {
                let Some(kind) = stmt.arg(i + 1) else {
                    return bad(w.span, "'type' without a tunnel type".into());
                };
                match kind.value.as_str() {
                    "ipip" => (gue, t.kind) = (false, TunnelType::Ipip),
                    "gue" => gue = true,
                    "gre" => (gue, t.kind) = (false, TunnelType::Gre),
                    other => {
                        return bad(kind.span, format!("unknown tunnel type '{other}'"));
                    }
                }
                i += 1;
            }
            "port" => {
                let Some(p) = stmt.arg(i + 1) else {
                    return bad(w.span, "'port' without a GUE port number".into());
                };
                match p.value.parse::<u16>() {
                    Ok(n) if n > 0 && p.value.bytes().all(|b| b.is_ascii_digit()) => {
                        port = Some((n, p.span));
                    }
                    _ => {
                        return bad(
                            p.span,
                            format!("GUE port '{}' is not a number from 1 to 65535", p.value),
                        )
                    }
                }
                i += 1;
            }
            "nocsum" => t.csum = TunnelChecksum::None,
            "csum" => t.csum = TunnelChecksum::Csum,
            "remcsum" => t.csum = TunnelChecksum::Remcsum,
            other => return bad(w.span, format!("unknown tunnel option '{other}'")),
        }
        i += 1;
    }
    match (gue, port) {
        (true, Some((n, _))) => t.kind = TunnelType::Gue { port: n },
        (true, None) => return bad(stmt.span(), "a GUE tunnel needs 'port N'".into()),
        (false, Some((_, span))) => {
            return bad(span, "only a GUE tunnel has a port".into());
        }
        (false, None) => {}
    }
    match (t.kind, t.csum) {
        (TunnelType::Ipip, c) if c != TunnelChecksum::None => {
            bad(stmt.span(), "an IPIP tunnel has no checksum option".into())
        }
        (TunnelType::Gre, TunnelChecksum::Remcsum) => bad(
            stmt.span(),
            "a GRE tunnel has no remote checksum offload (remcsum)".into(),
        ),
        _ => Ok(t),
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

fn parse_port(sources: &SourceMap, w: &Word) -> Result<Option<u16>, Diagnostic> {
    match w.value.parse::<u16>() {
        Ok(0) => Ok(None),
        Ok(p) => Ok(Some(p)),
        Err(_) => Err(
            Diagnostic::error(format!("'{}' is not a port number", w.value))
                .at(sources, w.span)
                .with_hint("use a number from 0 to 65535 (0 = all ports)"),
        ),
    }
}

fn bad_address(sources: &SourceMap, w: &Word, what: &str) -> Diagnostic {
    Diagnostic::error(format!("'{}' is not an IP address ({what})", w.value))
        .at(sources, w.span)
        .with_hint("write an IPv4 or IPv6 address, e.g. 192.0.2.10 or 2001:db8::10")
}

fn virtual_server_header(sources: &SourceMap, header: &Stmt) -> Result<VsBuild, Diagnostic> {
    let key_and_port = match (header.arg(1), header.arg(2)) {
        (Some(g), Some(name)) if g.value == "group" => {
            (ServiceKey::Group(name.value.clone()), None)
        }
        (Some(f), Some(mark)) if f.value == "fwmark" => {
            let m = parse_c_u32(&mark.value).ok_or_else(|| {
                Diagnostic::error(format!("'{}' is not a firewall mark", mark.value))
                    .at(sources, mark.span)
                    .with_hint("use a number from 0 to 4294967295")
            })?;
            (ServiceKey::Fwmark(m), None)
        }
        (Some(addr), port) if addr.value != "group" && addr.value != "fwmark" => {
            let ip = parse_ip(&addr.value)
                .ok_or_else(|| bad_address(sources, addr, "virtual_server"))?;
            let port = match port {
                Some(p) => parse_port(sources, p)?,
                None => None,
            };
            (ServiceKey::Address(ip), port)
        }
        _ => {
            return Err(Diagnostic::error(
                "virtual_server needs an address and port, 'fwmark N' or 'group NAME'",
            )
            .at(sources, header.span())
            .with_hint("e.g. virtual_server 192.0.2.10 80 { ... }"))
        }
    };
    Ok(VsBuild {
        key: key_and_port.0,
        header: header.span(),
        block: header.span(),
        port: key_and_port.1,
        protocol: None,
        method: ForwardingMethod::Nat,
        real_servers: Vec::new(),
        interval: None,
        tunnel: Tunnel::default(),
    })
}

fn real_server_header(sources: &SourceMap, header: &Stmt) -> Result<RsBuild, Diagnostic> {
    let Some(addr) = header.arg(1) else {
        return Err(Diagnostic::error("real_server without an address")
            .at(sources, header.span())
            .with_hint("e.g. real_server 192.0.2.21 80 { ... }"));
    };
    let ip = parse_ip(&addr.value).ok_or_else(|| bad_address(sources, addr, "real_server"))?;
    let port = match header.arg(2) {
        Some(p) => parse_port(sources, p)?,
        None => None,
    };
    Ok(RsBuild {
        keyword: header.words[0].clone(),
        header: header.span(),
        addr: ip,
        port,
        weight: None,
        method: None,
        checks: Vec::new(),
        span: header.span(),
        insert: None,
        tunnel: Tunnel::default(),
    })
}

fn parse_c_u32(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

/// One line of a `virtual_server_group`: `IP [PORT]`, `IP-END [PORT]`, `fwmark N`.
fn group_entry(sources: &SourceMap, group: &mut GroupBuild, stmt: &Stmt) -> Result<(), Diagnostic> {
    let first = &stmt.words[0];
    if first.value == "fwmark" {
        let Some(mark) = stmt.arg(1).and_then(|w| parse_c_u32(&w.value)) else {
            return Err(Diagnostic::error("fwmark entry without a valid mark")
                .at(sources, stmt.span())
                .with_hint("write fwmark N"));
        };
        group.fwmarks.push(mark);
        return Ok(());
    }
    let addrs = expand_range(&first.value).map_err(|why| {
        Diagnostic::error(format!(
            "'{}' is not an address or address range ({why})",
            first.value
        ))
        .at(sources, first.span)
        .with_hint("write 192.0.2.1 80, a range such as 192.0.2.1-10 80, or fwmark N")
    })?;
    if group.vips.len() + addrs.len() > MAX_GROUP_ADDRESSES {
        return Err(Diagnostic::error(format!(
            "virtual_server_group expands to more than {MAX_GROUP_ADDRESSES} addresses"
        ))
        .at(sources, first.span)
        .with_hint("split the range or use a fwmark service"));
    }
    let port = match stmt.arg(1) {
        Some(p) => parse_port(sources, p)?,
        None => None,
    };
    for a in addrs {
        group.vips.push(a);
        group.ports.push(port);
    }
    Ok(())
}

/// `192.0.2.1`, `192.0.2.1-10` (last octet, decimal), `2001:db8::1-a` (last group, hex).
pub fn expand_range(s: &str) -> Result<Vec<IpAddr>, String> {
    let addr_chars = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':';
    let res: nom::IResult<&str, (&str, Option<&str>)> = all_consuming(pair(
        take_while1(addr_chars),
        opt(preceded(char('-'), hex_digit1)),
    ))(s);
    let (_, (addr, end)) = res.map_err(|_| "unexpected characters".to_string())?;
    let ip: IpAddr = addr.parse().map_err(|_| "bad address".to_string())?;
    let Some(end) = end else {
        return Ok(vec![ip]);
    };
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let last: u8 = end
                .parse()
                .map_err(|_| format!("range end '{end}' is not a number from 0 to 255"))?;
            if last < o[3] {
                return Err(format!("range end {last} is below the start {}", o[3]));
            }
            Ok((o[3]..=last)
                .map(|x| IpAddr::from([o[0], o[1], o[2], x]))
                .collect())
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            let last = u16::from_str_radix(end, 16)
                .map_err(|_| format!("range end '{end}' is not a hex number up to ffff"))?;
            if last < seg[7] {
                return Err(format!(
                    "range end {last:x} is below the start {:x}",
                    seg[7]
                ));
            }
            let count = usize::from(last - seg[7]) + 1;
            if count > MAX_GROUP_ADDRESSES {
                return Err(format!("more than {MAX_GROUP_ADDRESSES} addresses"));
            }
            Ok((seg[7]..=last)
                .map(|x| {
                    let mut s = seg;
                    s[7] = x;
                    IpAddr::from(s)
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keepalived::preprocess::Preprocessor;
    use std::path::Path;

    fn parse(text: &str) -> Result<(Vec<VirtualService>, GlobalDefs, Vec<Diagnostic>), Diagnostic> {
        let mut pre = Preprocessor::new(Some("lb1".into()));
        let mut parser = Parser::default();
        pre.run(Path::new("k.conf"), text.to_string(), &mut parser)?;
        parser.finish(&pre.sources)
    }

    #[test]
    fn delay_loop_is_the_service_s_interval_in_decimal_seconds() {
        let text = "virtual_server 192.0.2.1 80 {\n delay_loop 3\n lb_kind DR\n}\n\
            virtual_server 192.0.2.2 80 {\n delay_loop 0.25\n}\n\
            virtual_server 192.0.2.3 80 {\n}\n\
            virtual_server 192.0.2.4 80 {\n delay_loop soon\n}\n";
        let (services, _, warnings) = parse(text).unwrap();
        let got: Vec<_> = services.iter().map(|s| s.interval).collect();
        assert_eq!(
            got,
            [
                Some(std::time::Duration::from_secs(3)),
                Some(std::time::Duration::from_millis(250)),
                None,
                None
            ]
        );
        let about: Vec<_> = warnings
            .iter()
            .filter(|w| w.message.contains("delay_loop"))
            .collect();
        assert_eq!(about.len(), 1, "{warnings:?}");
        assert_eq!(about[0].location.as_ref().map(|l| l.line), Some(11));
    }

    #[test]
    fn braces_on_own_lines_keyword_lines_and_doubled() {
        let a = "virtual_server 192.0.2.1 80\n{\n  lb_kind DR\n  real_server 192.0.2.11 8080\n  {\n  }\n}\n";
        let b = "virtual_server 192.0.2.1 80 { lb_kind DR\n  real_server 192.0.2.11 8080 {\n  }}\n";
        let c = "virtual_server 192.0.2.1 80 { lb_kind DR\n real_server 192.0.2.11 8080 {}}";
        for text in [a, b] {
            let (vs, _, _) = parse(text).expect("parses");
            assert_eq!(vs.len(), 1);
            assert_eq!(vs[0].method, ForwardingMethod::DirectRouting);
            assert_eq!(vs[0].real_servers.len(), 1);
            assert_eq!(vs[0].real_servers[0].port, Some(80), "DR uses the VS port");
        }
        // Everything on one line works too.
        let (vs, _, _) = parse(c).expect("parses");
        assert_eq!(vs[0].real_servers.len(), 1);
    }

    #[test]
    fn methods_default_to_nat_and_real_level_overrides() {
        let text = "virtual_server 192.0.2.1 80 {\n real_server 192.0.2.11 8080 {\n }\n real_server 192.0.2.12 {\n lvs_method TUN\n }\n}\n";
        let (vs, _, _) = parse(text).expect("parses");
        let rs = &vs[0].real_servers;
        assert_eq!(vs[0].method, ForwardingMethod::Nat);
        assert_eq!(
            (rs[0].method, rs[0].port),
            (ForwardingMethod::Nat, Some(8080))
        );
        assert_eq!(
            (rs[1].method, rs[1].port),
            (ForwardingMethod::Tunnel, Some(80))
        );
    }

    #[test]
    fn fwmark_services_clear_real_server_ports() {
        let text =
            "virtual_server fwmark 4 {\n lb_kind NAT\n real_server 192.0.2.2 8080 {\n }\n}\n";
        let (vs, _, _) = parse(text).expect("parses");
        assert_eq!(vs[0].real_servers[0].port, None);
    }

    #[test]
    fn protocol_defaults_like_keepalived() {
        let text = "virtual_server 192.0.2.1 53 {\n}\nvirtual_server 192.0.2.1 53 {\nprotocol tcp\n}\nvirtual_server fwmark 3 {\n}\nvirtual_server 192.0.2.1 5 {\nprotocol SCTP\n}\n";
        let (vs, _, warnings) = parse(text).expect("parses");
        let got: Vec<_> = vs.iter().map(|v| v.protocol).collect();
        assert_eq!(
            got,
            vec![Protocol::Udp, Protocol::Tcp, Protocol::Tcp, Protocol::Sctp]
        );
        assert_eq!(
            warnings.len(),
            1,
            "the unset address service is warned about"
        );
    }

    #[test]
    fn fnat_is_a_located_error() {
        let err = parse("virtual_server 192.0.2.1 80 {\n    lb_kind FNAT\n}\n").expect_err("FNAT");
        let loc = err.location.expect("located");
        assert_eq!((loc.line, loc.col, loc.width), (2, 13, 4));
    }

    fn tunnel_of(line: &str) -> Result<Tunnel, Diagnostic> {
        let text = format!(
            "virtual_server 192.0.2.1 80 {{\n  lb_kind TUN\n  real_server 192.0.2.11 80 {{\n    {line}\n  }}\n}}\n"
        );
        parse(&text).map(|(vs, _, _)| vs[0].real_servers[0].tunnel)
    }

    #[test]
    fn tunnel_types_and_checksum_options_as_keepalived_reads_them() {
        let t = |kind, csum| Tunnel { kind, csum };
        let gue = TunnelType::Gue { port: 6080 };
        for (line, want) in [
            ("lvs_method TUN", t(TunnelType::Ipip, TunnelChecksum::None)),
            (
                "lvs_method TUN type ipip",
                t(TunnelType::Ipip, TunnelChecksum::None),
            ),
            (
                "lvs_method TUN type gue port 6080",
                t(gue, TunnelChecksum::None),
            ),
            (
                "lvs_method TUN type gue port 6080 csum",
                t(gue, TunnelChecksum::Csum),
            ),
            (
                "lvs_method TUN port 6080 remcsum type gue",
                t(gue, TunnelChecksum::Remcsum),
            ),
            (
                "lvs_method TUN type gue port 6080 csum nocsum",
                t(gue, TunnelChecksum::None),
            ),
            (
                "lvs_method TUN type gre",
                t(TunnelType::Gre, TunnelChecksum::None),
            ),
            (
                "lvs_method TUN type gre csum",
                t(TunnelType::Gre, TunnelChecksum::Csum),
            ),
            // keepalived reads no options after DR and NAT.
            ("lvs_method DR type gue port 6080", Tunnel::default()),
        ] {
            assert_eq!(tunnel_of(line).unwrap(), want, "{line}");
        }
    }

    #[test]
    fn tunnel_options_keepalived_refuses_are_located_errors() {
        for (line, col, width, says) in [
            (
                "lvs_method TUN type vxlan",
                25,
                5,
                "unknown tunnel type 'vxlan'",
            ),
            (
                "lvs_method TUN type GUE port 1",
                25,
                3,
                "unknown tunnel type",
            ),
            ("lvs_method TUN type", 20, 4, "without a tunnel type"),
            ("lvs_method TUN type gue", 5, 23, "needs 'port N'"),
            ("lvs_method TUN type gue port", 29, 4, "without a GUE port"),
            (
                "lvs_method TUN type gue port 0",
                34,
                1,
                "not a number from 1 to 65535",
            ),
            ("lvs_method TUN type gue port 70000", 34, 5, "not a number"),
            ("lvs_method TUN type gue port 0x10", 34, 4, "not a number"),
            (
                "lvs_method TUN type gre port 5",
                34,
                1,
                "only a GUE tunnel has a port",
            ),
            (
                "lvs_method TUN type ipip csum",
                5,
                29,
                "IPIP tunnel has no checksum",
            ),
            ("lvs_method TUN csum", 5, 19, "IPIP tunnel has no checksum"),
            (
                "lvs_method TUN type gre remcsum",
                5,
                31,
                "no remote checksum",
            ),
            (
                "lvs_method TUN type gue port 6080 bogus",
                39,
                5,
                "unknown tunnel option 'bogus'",
            ),
        ] {
            let e = tunnel_of(line).expect_err(line);
            assert!(e.message.contains(says), "{line}: {}", e.message);
            let loc = e.location.expect("located");
            assert_eq!((loc.line, loc.col, loc.width), (4, col, width), "{line}");
        }
    }

    #[test]
    fn a_real_server_s_lvs_method_replaces_the_virtual_server_s_tunnel() {
        let text = "virtual_server 192.0.2.1 80 {\n lvs_method TUN type gue port 6080 csum\n \
                    real_server 192.0.2.11 80 {\n }\n \
                    real_server 192.0.2.12 80 {\n  lvs_method TUN type gre\n }\n \
                    real_server 192.0.2.13 80 {\n  lvs_method TUN\n }\n}\n";
        let (vs, _, _) = parse(text).unwrap();
        let gue = Tunnel {
            kind: TunnelType::Gue { port: 6080 },
            csum: TunnelChecksum::Csum,
        };
        assert_eq!(vs[0].tunnel, gue);
        let got: Vec<Tunnel> = vs[0].real_servers.iter().map(|r| r.tunnel).collect();
        assert_eq!(
            got,
            [
                gue,
                Tunnel {
                    kind: TunnelType::Gre,
                    csum: TunnelChecksum::None
                },
                Tunnel::default()
            ]
        );
    }

    #[test]
    fn unbalanced_braces_are_errors() {
        let err = parse("global_defs {\n}\n}\n").expect_err("extra");
        assert_eq!(err.location.expect("located").line, 3);
        let err = parse("virtual_server 192.0.2.1 80 {\n real_server 192.0.2.2 80 {\n}\n")
            .expect_err("missing");
        assert_eq!(err.location.expect("located").line, 1);
    }

    #[test]
    fn real_server_outside_virtual_server_is_an_error() {
        let err = parse("real_server 192.0.2.2 80 {\n}\n").expect_err("outside");
        assert!(err.message.contains("outside"));
    }

    #[test]
    fn unknown_blocks_are_skipped() {
        let text = "vrrp_instance VI_1 {\n  virtual_ipaddress {\n    192.0.2.1\n  }\n  real_server 1 2 { }\n}\nvirtual_server fwmark 7 {\n  lb_kind DR\n  sorry_server 192.0.2.99 80\n  real_server 192.0.2.2 {\n    TCP_CHECK { connect_port 80 }\n    MISC_CHECK {\n misc_path /bin/true\n }\n  }\n}\n";
        let (vs, _, _) = parse(text).expect("parses");
        assert_eq!(vs.len(), 1);
        assert_eq!(vs[0].fwmarks, vec![7]);
        assert_eq!(vs[0].port, None);
        let rs = &vs[0].real_servers;
        assert_eq!(rs.len(), 1, "sorry_server is not a real server");
        assert_eq!(rs[0].port, None);
        let kinds: Vec<_> = rs[0].checks.iter().map(|c| c.kind.as_str()).collect();
        assert_eq!(kinds, vec!["TCP_CHECK", "MISC_CHECK"]);
    }

    #[test]
    fn groups_expand_ranges_and_fwmarks() {
        let text = "virtual_server group web {\n  lb_kind DR\n  real_server 192.0.2.50 80 { }\n}\nvirtual_server_group web {\n  192.0.2.1-3 80\n  2001:db8::9-b 80\n  fwmark 5\n}\n";
        let (vs, _, _) = parse(text).expect("parses");
        let ips: Vec<String> = vs[0].vips.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            ips,
            vec![
                "192.0.2.1",
                "192.0.2.2",
                "192.0.2.3",
                "2001:db8::9",
                "2001:db8::a",
                "2001:db8::b"
            ]
        );
        assert_eq!(vs[0].fwmarks, vec![5]);
        assert_eq!(vs[0].port, Some(80));
    }

    #[test]
    fn range_expansion_rules() {
        assert_eq!(expand_range("192.0.2.250-255").map(|v| v.len()), Ok(6));
        assert!(expand_range("192.0.2.10-5").is_err());
        assert!(expand_range("192.0.2.1-256").is_err());
        assert!(expand_range("2001:db8::-ffff").is_ok());
        assert!(expand_range("foo").is_err());
    }

    #[test]
    fn group_beyond_the_cap_is_a_located_error() {
        let mut text = String::from("virtual_server_group big {\n");
        for i in 0..1 {
            text.push_str(&format!("  2001:db8:{i}::0-ffff 80\n"));
        }
        text.push_str("  192.0.2.1 80\n}\n");
        let err = parse(&text).expect_err("cap");
        assert_eq!(
            err.location.expect("located").line,
            3,
            "the address past the cap"
        );
    }

    #[test]
    fn total_vips_are_capped() {
        let mut text = String::from("virtual_server_group g {\n  2001:db8::0-ffff 80\n}\n");
        for _ in 0..16 {
            text.push_str("virtual_server group g {\n}\n");
        }
        let err = parse(&text).expect_err("over the cap");
        assert_eq!(err.location.expect("located").line, 4 + 2 * 15);
    }

    #[test]
    fn insertion_points() {
        let text = "virtual_server 192.0.2.1 80 {\n    real_server 192.0.2.2 80 {\n        weight 1\n    }\n    real_server 192.0.2.3 80 { weight 2 }\n}\n";
        let (vs, _, _) = parse(text).expect("parses");
        let a = vs[0].real_servers[0].insert.clone().expect("insert");
        assert_eq!(
            a.at.start,
            text.find("    }\n    real_server").expect("brace")
        );
        assert!(!a.mid_line);
        assert_eq!(a.indent, "        ");
        let b = vs[0].real_servers[1].insert.clone().expect("insert");
        assert_eq!(b.at.start, text.find(" }\n}").expect("brace") + 1);
        assert!(b.mid_line);
    }

    #[test]
    fn conditional_block_gets_conditional_indent() {
        let text =
            "virtual_server 192.0.2.1 80 {\n@lb1    real_server 192.0.2.2 80 {\n@lb1    }\n}\n";
        let (vs, _, _) = parse(text).expect("parses");
        let ins = vs[0].real_servers[0].insert.clone().expect("insert");
        assert_eq!(ins.indent, "@lb1        ");
        assert!(!ins.mid_line);
        assert_eq!(ins.at.start, text.find("@lb1    }").expect("close"));
    }

    #[test]
    fn tab_indented_file_gets_tab_indent() {
        let text =
            "virtual_server 192.0.2.1 80 {\n\tlb_kind DR\n\treal_server 192.0.2.2 80 {\n\t}\n}\n";
        let (vs, _, _) = parse(text).expect("parses");
        assert_eq!(
            vs[0].real_servers[0].insert.clone().expect("insert").indent,
            "\t\t"
        );
        let text = "virtual_server 192.0.2.1 80 {\nreal_server 192.0.2.2 80 {\n}\n}\n";
        let (vs, _, _) = parse(text).expect("parses");
        assert_eq!(
            vs[0].real_servers[0].insert.clone().expect("insert").indent,
            "    "
        );
    }

    #[test]
    fn global_defs_script_security() {
        let text = "global_defs {\n  router_id x\n}\nglobal_defs {\n  enable_script_security\n  script_user nobody nogroup\n}\n";
        let (_, g, _) = parse(text).expect("parses");
        assert_eq!(g.enable_script_security.len(), 1);
        let user = g.script_user.first().expect("script_user");
        assert_eq!(&text[user.start..user.end], "script_user nobody nogroup");
        let at = g.insert.expect("insert").at.start;
        assert_eq!(at, text.find("}\nglobal_defs").expect("first close"));
    }

    #[test]
    fn expanded_real_servers_have_no_insertion_point() {
        let text = "$RS=real_server 192.0.2.$i 80 { \\\n}\nvirtual_server 192.0.2.1 80 {\n  lb_kind DR\n  ~SEQ(i,1,2) $RS\n}\n";
        let (vs, _, _) = parse(text).expect("parses");
        let rs = &vs[0].real_servers;
        assert_eq!(rs.len(), 2);
        for r in rs {
            assert!(r.insert.is_none());
            match &r.origin {
                Origin::Expanded { span, via } => {
                    assert_eq!(via, "~SEQ(i,1,2)");
                    assert_eq!(span.start, text.find("~SEQ").expect("seq"));
                }
                o => panic!("expected expanded origin, got {o:?}"),
            }
        }
    }

    #[test]
    fn substituted_address_keeps_written_origin() {
        let text = "$IP=192.0.2.2\nvirtual_server 192.0.2.1 80 {\n  real_server $IP 80 {\n  }\n}\n";
        let (vs, _, _) = parse(text).expect("parses");
        let rs = &vs[0].real_servers[0];
        assert_eq!(rs.addr.to_string(), "192.0.2.2");
        assert!(matches!(rs.origin, Origin::Written(_)));
        assert!(rs.insert.is_some());
    }
}
