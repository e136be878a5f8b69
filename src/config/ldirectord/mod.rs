//! ldirectord.cf: column-0 globals and indented `virtual=` blocks, read the way
//! ldirectord 4.12's `read_config` reads them (same line rules, same defaults, same
//! rejections), keeping every line's bytes so the file can be printed back unchanged.
//!
//! The rules, as ldirectord applies them:
//! - a line starting (column 0) with `virtual=` / `virtual6=` opens a block; each next line
//!   that is a comment (`^\s*#`) is skipped without ending the block; any other line has
//!   its `#...` tail cut and tabs turned into four spaces, and belongs to the block when it
//!   then starts with at least four spaces followed by at least one character. The first
//!   line that does not ends the block and is read again as a top-level line;
//! - top-level lines are blank, comments, or column-0 `key=value` globals;
//! - host and service names are resolved (getaddrinfo, /etc/services) after the whole
//!   block is read, because the protocol may be set anywhere in it.
//!
//! The parts: `lines` classifies each line (nom), `values` holds the value grammars
//! (nom), `directives` maps each directive name, global and virtual, to its handler in
//! one table per scope, `parse` walks the lines and builds blocks (the `real=` line and
//! the fallback keep ldirectord's regexes, see there), `resolve` looks names up.

// `Diagnostic` is the crate's located error type (as the keepalived parser returns it);
// boxing it is a crate-wide choice, not this module's.
#![allow(clippy::result_large_err)]

mod directives;
mod lines;
mod parse;
mod resolve;
mod values;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::{
    Diagnostic, ExistingCheck, FileId, ForwardingMethod, InsertionPoint, Origin, Protocol,
    RealServer, ServiceKey, Severity, SourceMap, Span, Tunnel, VirtualService,
};

pub use resolve::{OfflineResolver, Resolver, Services, SystemResolver};

/// The comment that opens the lines `vipcheck rewrite` generates inside a virtual block.
pub const MARK_BEGIN: &str = "# vipcheck:begin";
/// The comment that closes them.
pub const MARK_END: &str = "# vipcheck:end";

/// More real servers than this from one `A->B` range is refused rather than expanded.
pub const MAX_RANGE: usize = 65_536;

/// A parsed ldirectord configuration.
#[derive(Debug, Clone)]
pub struct Document {
    pub sources: SourceMap,
    pub file: FileId,
    /// Every line of the file with its line terminator, in order; together they cover the
    /// whole text, so concatenating them gives the file back.
    pub lines: Vec<Span>,
    pub globals: Globals,
    /// One per `virtual=` block, in file order.
    pub virtuals: Vec<Virtual>,
    /// The model of each block: `services[i]` describes `virtuals[i]`.
    pub services: Vec<VirtualService>,
    pub warnings: Vec<Diagnostic>,
}

impl Document {
    /// The file's text, rebuilt from its lines.
    pub fn print(&self) -> String {
        let mut out = String::with_capacity(self.text().len());
        for span in &self.lines {
            out.push_str(self.sources.slice(*span));
        }
        out
    }

    /// The text as read.
    pub fn text(&self) -> &str {
        &self.sources.file(self.file).text
    }

    pub fn path(&self) -> &Path {
        &self.sources.file(self.file).path
    }
}

/// The column-0 settings that matter to vipcheck (others are validated and ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Globals {
    /// `checktimeout=`; `None` = unset (ldirectord falls back to the other timeouts, then 5).
    pub checktimeout: Option<u64>,
    /// `negotiatetimeout=`; `None` = unset (default 30).
    pub negotiatetimeout: Option<u64>,
    /// `checkcount=` (default 1).
    pub checkcount: u64,
    /// `autoreload=yes`: ldirectord rereads the file when it changes.
    pub autoreload: bool,
    pub quiescent: bool,
    /// `fork=yes`: each virtual is checked in its own process.
    pub fork: bool,
    pub checkinterval: u64,
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            checktimeout: None,
            negotiatetimeout: None,
            checkcount: 1,
            autoreload: false,
            quiescent: false,
            fork: false,
            checkinterval: 10,
        }
    }
}

/// Address family of a block: `virtual=` (IPv4) or `virtual6=` (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// What a `virtual=` line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtualTarget {
    Address { addr: IpAddr, port: u16 },
    Fwmark(u32),
}

/// The `protocol=` of a virtual: tcp or udp for an address, fwm for a firewall mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtualProtocol {
    Tcp,
    Udp,
    Fwm,
}

impl VirtualProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            VirtualProtocol::Tcp => "tcp",
            VirtualProtocol::Udp => "udp",
            VirtualProtocol::Fwm => "fwm",
        }
    }
}

/// `checktype=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckType {
    Negotiate,
    Connect,
    Ping,
    On,
    Off,
    External,
    ExternalPerl,
    /// `checktype=N`: N connect checks, then one negotiate check.
    Combined(u64),
}

impl CheckType {
    /// The keyword as ldirectord names it (`combined` for a number).
    pub fn as_str(self) -> &'static str {
        match self {
            CheckType::Negotiate => "negotiate",
            CheckType::Connect => "connect",
            CheckType::Ping => "ping",
            CheckType::On => "on",
            CheckType::Off => "off",
            CheckType::External => "external",
            CheckType::ExternalPerl => "external-perl",
            CheckType::Combined(_) => "combined",
        }
    }
}

/// The check settings of a virtual as its own (not generated) lines leave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSettings {
    pub checktype: CheckType,
    /// The `checktype=` line, when there is one.
    pub checktype_span: Option<Span>,
    /// `service=`, or inferred from the port as ldirectord does (`none` when unknown).
    pub service: String,
    /// `checkcommand=` (default `/bin/true`).
    pub checkcommand: String,
    pub checkport: Option<u16>,
    /// `request=` with a leading `/` added as ldirectord does (default `/`).
    pub request: String,
    /// `receive=`: a Perl regular expression the response must match (empty = any).
    pub receive: String,
    pub virtualhost: Option<String>,
    /// `GET` or `HEAD`.
    pub httpmethod: String,
    pub checktimeout: Option<u64>,
    pub negotiatetimeout: Option<u64>,
    pub checkcount: Option<u64>,
    /// `checkinterval=` in seconds, when the virtual sets it.
    pub checkinterval: Option<u64>,
}

impl CheckSettings {
    fn new(service: Option<&str>) -> Self {
        CheckSettings {
            checktype: CheckType::Negotiate,
            checktype_span: None,
            service: service.unwrap_or("").to_string(),
            checkcommand: "/bin/true".to_string(),
            checkport: None,
            request: "/".to_string(),
            receive: String::new(),
            virtualhost: None,
            httpmethod: "GET".to_string(),
            checktimeout: None,
            negotiatetimeout: None,
            checkcount: None,
            checkinterval: None,
        }
    }

    /// The timeout ldirectord gives this check type, in seconds (its `ld_setup` rules:
    /// checktimeout and negotiatetimeout default to each other, then to the globals, then
    /// to 5 and 30). A combined check counts as negotiate, its slower half.
    pub fn effective_timeout(&self, globals: &Globals) -> u64 {
        let check = self
            .checktimeout
            .or(self.negotiatetimeout)
            .or(globals.checktimeout)
            .or(globals.negotiatetimeout)
            .unwrap_or(5);
        let negotiate = self
            .negotiatetimeout
            .or(self.checktimeout)
            .or(globals.negotiatetimeout)
            .or(globals.checktimeout)
            .unwrap_or(30);
        match self.checktype {
            CheckType::Negotiate | CheckType::Combined(_) => negotiate,
            _ => check,
        }
    }
}

/// One real server (one per address of an `A->B` range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Real {
    pub addr: IpAddr,
    /// The port as written (0 when absent); ldirectord passes it to external checks.
    pub port: u16,
    pub method: ForwardingMethod,
    pub weight: i64,
    /// Per-real `"request", "receive"` (request with its leading `/`).
    pub request: Option<String>,
    pub receive: Option<String>,
    /// The `real=` line (without its line terminator).
    pub line: Span,
}

/// The lines vipcheck generated inside a block (`# vipcheck:begin` .. `# vipcheck:end`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedRegion {
    /// From the start of the begin line to the end of the end line, terminator included.
    pub span: Span,
    /// False when the block ended before `# vipcheck:end`.
    pub terminated: bool,
    /// True when a line of the block's own (not a comment) follows the region, so the
    /// region is no longer the last word on the block's settings.
    pub followed_by_directives: bool,
}

/// One `virtual=` / `virtual6=` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Virtual {
    pub family: Family,
    pub target: VirtualTarget,
    pub protocol: VirtualProtocol,
    /// The header line, without its terminator.
    pub header: Span,
    /// From the header to the end of the block's last line (comments included).
    pub block: Span,
    /// The settings the block's own lines give (generated lines left out).
    pub check: CheckSettings,
    pub reals: Vec<Real>,
    /// After the block's last own line, indented like the block's first directive.
    pub insert: InsertionPoint,
    pub generated: Option<GeneratedRegion>,
}

impl Virtual {
    /// The forwarding method the block's reals share, else the first real's; direct
    /// routing (ldirectord's default for a fallback) when there are none.
    pub fn common_method(&self) -> ForwardingMethod {
        match self.reals.first() {
            None => ForwardingMethod::DirectRouting,
            Some(first) => first.method,
        }
    }
}

/// Reads and parses `path` with the system resolver.
pub fn parse_file(path: &Path) -> Result<Document, Diagnostic> {
    let bytes = super::read_config_file(path)
        .map_err(|e| Diagnostic::error(e.message).with_hint(e.hint))?;
    let text = text_from_bytes(path, bytes)?;
    parse_str(path.to_path_buf(), text, &SystemResolver)
}

/// The file as UTF-8, or an error located at its first invalid byte.
pub fn text_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
        Diagnostic::error("the file is not valid UTF-8")
            .at_location(super::Location::in_text(
                path.to_path_buf(),
                &lossy,
                at,
                at + 1,
            ))
            .with_hint("vipcheck edits text files only; convert the file to UTF-8")
    })
}

/// Parses `text` (the contents of `path`).
pub fn parse_str(
    path: PathBuf,
    text: String,
    resolver: &dyn Resolver,
) -> Result<Document, Diagnostic> {
    let mut sources = SourceMap::new();
    let file = sources.add(path, text);
    let lines = split_lines(&sources.file(file).text, file);
    let mut p = parse::Parser {
        sources: &sources,
        file,
        lines: &lines,
        resolver,
        globals: Globals::default(),
        virtuals: Vec::new(),
        warnings: Vec::new(),
    };
    p.run()?;
    let parse::Parser {
        globals,
        virtuals,
        warnings,
        ..
    } = p;
    let services = virtuals.iter().map(|v| model(v, file, &globals)).collect();
    Ok(Document {
        sources,
        file,
        lines,
        globals,
        virtuals,
        services,
        warnings,
    })
}

fn split_lines(text: &str, file: FileId) -> Vec<Span> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            lines.push(Span::new(file, start, i + 1));
            start = i + 1;
        }
    }
    if start < text.len() {
        lines.push(Span::new(file, start, text.len()));
    }
    lines
}

/// The model of one block.
fn model(v: &Virtual, file: FileId, globals: &Globals) -> VirtualService {
    let (key, vips, fwmarks, port) = match v.target {
        VirtualTarget::Address { addr, port } => (
            ServiceKey::Address(addr),
            vec![addr],
            vec![],
            (port != 0).then_some(port),
        ),
        VirtualTarget::Fwmark(m) => (ServiceKey::Fwmark(m), vec![], vec![m], None),
    };
    let protocol = match v.protocol {
        VirtualProtocol::Udp => Protocol::Udp,
        VirtualProtocol::Tcp | VirtualProtocol::Fwm => Protocol::Tcp,
    };
    let check = ExistingCheck {
        kind: v.check.checktype.as_str().to_string(),
        detail: v.check.service.clone(),
        span: v
            .check
            .checktype_span
            .unwrap_or(Span::point(file, v.header.start)),
        params: vec![
            ("request".to_string(), v.check.request.clone()),
            ("receive".to_string(), v.check.receive.clone()),
        ],
    };
    let real_servers = v
        .reals
        .iter()
        .map(|r| {
            let own = (r.port != 0).then_some(r.port);
            RealServer {
                addr: r.addr,
                port: if r.method.needs_vip_on_real_server() {
                    port
                } else {
                    own.or(port)
                },
                weight: Some(r.weight),
                method: r.method,
                checks: vec![check.clone()],
                origin: Origin::Written(r.line),
                span: r.line,
                insert: Some(v.insert.clone()),
                // ldirectord has no tunnel types: IPIP.
                tunnel: Tunnel::default(),
            }
        })
        .collect();
    VirtualService {
        key,
        vips,
        fwmarks,
        port,
        protocol,
        method: v.common_method(),
        real_servers,
        span: v.header,
        block: v.block,
        interval: Some(std::time::Duration::from_secs(
            v.check.checkinterval.unwrap_or(globals.checkinterval),
        )),
        tunnel: Tunnel::default(),
    }
}

/// The services ldirectord knows how to check.
pub const SERVICES: &[&str] = &[
    "dns",
    "ftp",
    "http",
    "https",
    "http_proxy",
    "imap",
    "imaps",
    "ldap",
    "ldaps",
    "nntp",
    "mysql",
    "none",
    "oracle",
    "pop",
    "pops",
    "radius",
    "pgsql",
    "sip",
    "smtp",
    "submission",
    "simpletcp",
];

/// ldirectord's `ld_port_to_service`.
pub fn port_to_service(port: &str) -> &'static str {
    match port {
        "21" => "ftp",
        "25" => "smtp",
        "53" => "dns",
        "80" => "http",
        "110" => "pop",
        "119" => "nntp",
        "143" => "imap",
        "389" => "ldap",
        "443" => "https",
        "587" => "submission",
        "636" => "ldaps",
        "995" => "pops",
        "993" => "imaps",
        "1521" => "oracle",
        "1812" => "radius",
        "3128" => "http_proxy",
        "3306" => "mysql",
        "5060" => "sip",
        "5432" => "pgsql",
        _ => "none",
    }
}

/// ldirectord's `ld_service_to_port`.
pub fn service_to_port(service: &str) -> Option<u16> {
    SERVICE_PORTS
        .iter()
        .find(|(s, _)| *s == service)
        .map(|(_, p)| *p)
}

const SERVICE_PORTS: &[(&str, u16)] = &[
    ("ftp", 21),
    ("smtp", 25),
    ("dns", 53),
    ("http", 80),
    ("pop", 110),
    ("nntp", 119),
    ("imap", 143),
    ("ldap", 389),
    ("https", 443),
    ("submission", 587),
    ("ldaps", 636),
    ("imaps", 993),
    ("pops", 995),
    ("oracle", 1521),
    ("radius", 1812),
    ("http_proxy", 3128),
    ("mysql", 3306),
    ("sip", 5060),
    ("pgsql", 5432),
];

/// The identity ldirectord uses to find duplicate virtual services.
fn virtual_id(v: &Virtual) -> String {
    match v.target {
        VirtualTarget::Fwmark(m) => {
            format!("fwm{}:{m}", if v.family == Family::V6 { "6" } else { "" })
        }
        VirtualTarget::Address { addr, port } => {
            format!("{}:{addr}:{port}", v.protocol.as_str())
        }
    }
}
