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

// `Diagnostic` is the crate's located error type (as the keepalived parser returns it);
// boxing it is a crate-wide choice, not this module's.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, OnceLock};

use regex::Regex;

use super::{
    Diagnostic, ExistingCheck, FileId, ForwardingMethod, InsertionPoint, Origin, Protocol,
    RealServer, ServiceKey, SourceMap, Span, VirtualService,
};

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

/// Host and service name lookups, as ldirectord does them (getaddrinfo, getservbyname).
pub trait Resolver {
    /// The first address of `name` in the family; `None` when it does not resolve.
    fn host(&self, name: &str, family: Family) -> Option<IpAddr>;
    /// The port of a service name for `proto` (`tcp`, `udp`, or "" for any).
    fn service(&self, name: &str, proto: &str) -> Option<u16>;
}

/// The system's resolver and `/etc/services`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn host(&self, name: &str, family: Family) -> Option<IpAddr> {
        (name, 0)
            .to_socket_addrs()
            .ok()?
            .map(|sa| sa.ip())
            .find(|ip| family_of(*ip) == family)
    }

    fn service(&self, name: &str, proto: &str) -> Option<u16> {
        static SERVICES: OnceLock<Services> = OnceLock::new();
        SERVICES
            .get_or_init(|| {
                Services::parse(&std::fs::read_to_string("/etc/services").unwrap_or_default())
            })
            .lookup(name, proto)
    }
}

/// A resolver that knows no host names (numeric addresses still work) and the services
/// of a given `/etc/services` text: for tests and fuzzing, where lookups must not leave
/// the process.
#[derive(Debug, Default, Clone)]
pub struct OfflineResolver {
    pub services: Services,
    pub hosts: HashMap<String, IpAddr>,
}

impl Resolver for OfflineResolver {
    fn host(&self, name: &str, family: Family) -> Option<IpAddr> {
        self.hosts
            .get(name)
            .copied()
            .filter(|ip| family_of(*ip) == family)
    }

    fn service(&self, name: &str, proto: &str) -> Option<u16> {
        self.services.lookup(name, proto)
    }
}

/// An `/etc/services` table: `name port/proto aliases...`.
#[derive(Debug, Default, Clone)]
pub struct Services {
    entries: Vec<(String, u16, String)>,
}

impl Services {
    pub fn parse(text: &str) -> Self {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(port_proto)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, proto)) = port_proto.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            for n in std::iter::once(name).chain(words) {
                entries.push((n.to_string(), port, proto.to_string()));
            }
        }
        Services { entries }
    }

    /// The first entry named `name` (or aliased so) for `proto`, any protocol when empty.
    pub fn lookup(&self, name: &str, proto: &str) -> Option<u16> {
        self.entries
            .iter()
            .find(|(n, _, p)| n == name && (proto.is_empty() || p == proto))
            .map(|(_, port, _)| *port)
    }
}

fn family_of(ip: IpAddr) -> Family {
    match ip {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
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
    let mut p = Parser {
        sources: &sources,
        file,
        lines: &lines,
        resolver,
        globals: Globals::default(),
        virtuals: Vec::new(),
        warnings: Vec::new(),
    };
    p.run()?;
    let Parser {
        globals,
        virtuals,
        warnings,
        ..
    } = p;
    let services = virtuals.iter().map(|v| model(v, file)).collect();
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
fn model(v: &Virtual, file: FileId) -> VirtualService {
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
    }
}

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

/// Perl truth of a captured string: false for "" and "0".
fn perl_true(s: &str) -> bool {
    !s.is_empty() && s != "0"
}

/// A run of digits as a number (saturating; Perl would go to floating point).
fn number(digits: &str) -> u64 {
    digits.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    })
}

/// The first run of digits in `s`, when there is one.
fn first_digits(s: &str) -> Option<&str> {
    regex!(r"(\d+)")
        .captures(s)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

struct Parser<'a> {
    sources: &'a SourceMap,
    file: FileId,
    lines: &'a [Span],
    resolver: &'a dyn Resolver,
    globals: Globals,
    virtuals: Vec<Virtual>,
    warnings: Vec<Diagnostic>,
}

/// A line being read: its index, its text without the `\n`, and its span.
#[derive(Clone, Copy)]
struct Line<'t> {
    index: usize,
    text: &'t str,
    start: usize,
}

/// What a virtual's lines said before names are resolved.
#[derive(Clone)]
struct PendingVirtual<'t> {
    family: Family,
    header: Line<'t>,
    /// `host:port` as written, or `None` for a fwmark.
    ip_port: Option<(&'t str, &'t str)>,
    fwmark: Option<&'t str>,
    protocol: VirtualProtocol,
    service: Option<String>,
    check: CheckSettings,
    reals: Vec<(String, Line<'t>)>,
    fallback: Option<(Fallback, Line<'t>)>,
}

#[derive(Clone)]
struct Fallback {
    server: String,
    port: Option<String>,
}

impl<'a> Parser<'a> {
    fn text(&self) -> &'a str {
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
    fn error(&self, line: Line<'_>, message: impl Into<String>) -> Diagnostic {
        error_at(self.sources, self.file, line, message)
    }

    fn run(&mut self) -> Result<(), Diagnostic> {
        let mut i = 0;
        let mut seen: HashMap<String, usize> = HashMap::new();
        while i < self.lines.len() {
            let line = self.line(i);
            if let Some(c) = regex!(r"^virtual(6)?\s*=\s*(.*)").captures(line.text) {
                let family = if c.get(1).is_some() {
                    Family::V6
                } else {
                    Family::V4
                };
                let vattr = c.get(2).map_or("", |m| m.as_str());
                let (next, virt) = self.read_virtual(line, family, vattr)?;
                if next == i + 1 && next == self.lines.len() {
                    // ldirectord re-reads a header that is the file's last line (nothing
                    // was read after it) as a second virtual, and rejects the pair.
                    return Err(self.error(line, "duplicate virtual server").with_hint(
                        "ldirectord reads a virtual line that ends the file twice; \
                             add its real= lines, or a blank line after it",
                    ));
                }
                let id = virtual_id(&virt);
                if let Some(first) = seen.get(&id) {
                    let first = self.line(*first);
                    let lc = crate::config::span::line_col(self.text(), first.start);
                    return Err(self
                        .error(line, "duplicate virtual server")
                        .with_hint(format!(
                            "the same service is already defined on line {}; merge the two blocks",
                            lc.line
                        )));
                }
                seen.insert(id, line.index);
                self.virtuals.push(virt);
                i = next;
                continue;
            }
            self.global(line)?;
            i += 1;
        }
        Ok(())
    }

    fn global(&mut self, line: Line<'_>) -> Result<(), Diagnostic> {
        let t = line.text;
        if regex!(r"^\s*$").is_match(t) || regex!(r"^\s*#").is_match(t) {
            return Ok(());
        }
        // `/^KEY\s*=\s*(.*)/`
        let value = |key: &str| -> Option<String> {
            let rest = t.strip_prefix(key)?.trim_start_matches(PERL_SPACE);
            let rest = rest.strip_prefix('=')?.trim_start_matches(PERL_SPACE);
            Some(rest.to_string())
        };
        // Only cheap prefix tests run per line; the key is matched first.
        let key = regex!(r"^([a-z6]+)")
            .captures(t)
            .and_then(|c| c.get(1))
            .map_or("", |m| m.as_str());
        let (sources, file) = (self.sources, self.file);
        let positive = |v: &str, what: &str| -> Result<u64, Diagnostic> {
            match first_digits(v) {
                Some(d) if perl_true(d) && number(d) > 0 => Ok(number(d)),
                _ => Err(
                    error_at(sources, file, line, format!("invalid {what} value"))
                        .with_hint("use a whole number of seconds above 0"),
                ),
            }
        };
        let yes_no = |v: &str, key: &str| -> Result<bool, Diagnostic> {
            match v {
                "yes" => Ok(true),
                "no" => Ok(false),
                _ => Err(
                    error_at(sources, file, line, format!("{key} must be 'yes' or 'no'"))
                        .with_hint("write exactly yes or no, with nothing after it"),
                ),
            }
        };
        match key {
            "checktimeout" if value("checktimeout").is_some() => {
                let v = value("checktimeout").unwrap_or_default();
                self.globals.checktimeout = Some(positive(&v, "check timeout")?);
            }
            "connecttimeout" if value("connecttimeout").is_some() => {
                return Err(self
                    .error(
                        line,
                        "connecttimeout directive deprecated in favour of negotiatetimeout",
                    )
                    .with_hint("rename it to negotiatetimeout"));
            }
            "negotiatetimeout" if value("negotiatetimeout").is_some() => {
                let v = value("negotiatetimeout").unwrap_or_default();
                self.globals.negotiatetimeout = Some(positive(&v, "negotiate timeout")?);
            }
            "checkinterval" if value("checkinterval").is_some() => {
                let v = value("checkinterval").unwrap_or_default();
                self.globals.checkinterval = counted(&v).ok_or_else(|| {
                    error_at(sources, file, line, "invalid check interval value")
                        .with_hint("use a whole number of seconds above 0")
                })?;
            }
            "checkcount" if value("checkcount").is_some() => {
                let v = value("checkcount").unwrap_or_default();
                self.globals.checkcount = counted(&v).ok_or_else(|| {
                    error_at(sources, file, line, "invalid check count value")
                        .with_hint("use a whole number above 0")
                })?;
                let mut warning = self
                    .error(line, "checkcount option is deprecated")
                    .with_hint("use failurecount instead");
                warning.severity = super::Severity::Warning;
                self.warnings.push(warning);
            }
            "failurecount" if value("failurecount").is_some() => {
                let v = value("failurecount").unwrap_or_default();
                counted(&v).ok_or_else(|| {
                    self.error(line, "invalid failure count value")
                        .with_hint("use a whole number above 0")
                })?;
            }
            "fallback" | "fallback6" if value(key).is_some() => {
                let family = if key == "fallback6" {
                    Family::V6
                } else {
                    Family::V4
                };
                let v = value(key).unwrap_or_default();
                let fb = self.parse_fallback(line, &v, None)?;
                self.resolve_fallback(line, "tcp", &fb, family)?;
                self.resolve_fallback(line, "udp", &fb, family)?;
            }
            "fallbackcommand" if value("fallbackcommand").is_some() => {
                if value("fallbackcommand").unwrap_or_default().is_empty() {
                    return Err(self
                        .error(line, "invalid fallback command")
                        .with_hint("name the command to run"));
                }
            }
            "autoreload" if value("autoreload").is_some() => {
                self.globals.autoreload =
                    yes_no(&value("autoreload").unwrap_or_default(), "autoreload")?;
            }
            "callback" if regex!(r#"^callback\s*=\s*"(.*)""#).is_match(t) => {}
            "logfile" if regex!(r#"^logfile\s*=\s*"(.*)""#).is_match(t) => {}
            "execute" if value("execute").is_some() => {}
            "fork" if value("fork").is_some() => {
                self.globals.fork = yes_no(&value("fork").unwrap_or_default(), "fork")?;
            }
            "supervised" => {
                let ok = match value("supervised") {
                    Some(v) => v == "yes" || v == "no",
                    None => regex!(r"^supervised\s*$").is_match(t),
                };
                if !ok {
                    return Err(self
                        .error(line, "supervised must be 'yes' or 'no'")
                        .with_hint("write supervised=yes or supervised=no"));
                }
            }
            "quiescent" if value("quiescent").is_some() => {
                self.globals.quiescent =
                    yes_no(&value("quiescent").unwrap_or_default(), "quiescent")?;
            }
            "readdquiescent" if value("readdquiescent").is_some() => {
                yes_no(
                    &value("readdquiescent").unwrap_or_default(),
                    "readdquiescent",
                )?;
            }
            "emailalert" if value("emailalert").is_some() => {
                self.email_alert(line, &value("emailalert").unwrap_or_default())?;
            }
            "emailalertfreq" if regex!(r"^emailalertfreq\s*=\s*(\d*)").is_match(t) => {
                let c = regex!(r"^emailalertfreq\s*=\s*(\d*)").captures(t);
                if c.and_then(|c| c.get(1))
                    .map_or(true, |m| m.as_str().is_empty())
                {
                    return Err(self
                        .error(line, "invalid email alert frequency")
                        .with_hint("use a whole number of seconds"));
                }
            }
            "emailalertstatus" if value("emailalertstatus").is_some() => {
                self.email_alert_status(line, &value("emailalertstatus").unwrap_or_default())?;
            }
            "emailalertfrom" if value("emailalertfrom").is_some() => {
                if value("emailalertfrom").unwrap_or_default().is_empty() {
                    return Err(self
                        .error(line, "no email from address specified")
                        .with_hint("write an address after emailalertfrom="));
                }
            }
            "cleanstop" if value("cleanstop").is_some() => {
                yes_no(&value("cleanstop").unwrap_or_default(), "cleanstop")?;
            }
            "smtp" if value("smtp").is_some() => {
                if !regex!(r"^[0-9A-Za-z._+-]+").is_match(&value("smtp").unwrap_or_default()) {
                    return Err(self
                        .error(line, "invalid SMTP server address")
                        .with_hint("write a host name or address"));
                }
            }
            "maintenancedir" if value("maintenancedir").is_some() => {
                if value("maintenancedir").unwrap_or_default().is_empty() {
                    return Err(self
                        .error(line, "maintenance directory not specified")
                        .with_hint("name a directory after maintenancedir="));
                }
            }
            _ if value("timeout").is_some() => {
                return Err(self
                    .error(
                        line,
                        "timeout directive deprecated in favour of checktimeout and negotiatetimeout",
                    )
                    .with_hint("replace it with checktimeout= and negotiatetimeout="));
            }
            _ => {
                return Err(self.error(line, unknown_command(t)).with_hint(
                    "top-level lines are column-0 key=value settings, comments or blank; \
                     a virtual's lines are indented by a tab or at least 4 spaces",
                ));
            }
        }
        Ok(())
    }

    fn email_alert(&self, line: Line<'_>, addr: &str) -> Result<(), Diagnostic> {
        let stripped = regex!(r#"^"([^"]*)"$"#)
            .captures(addr)
            .and_then(|c| c.get(1))
            .map_or(addr, |m| m.as_str());
        if stripped.is_empty() {
            return Err(self
                .error(line, "no email address specified")
                .with_hint("write an address after emailalert="));
        }
        Ok(())
    }

    fn email_alert_status(&self, line: Line<'_>, arg: &str) -> Result<(), Diagnostic> {
        let items: Vec<&str> = regex!(r"\s*,\s*").split(arg).collect();
        // Perl's split drops trailing empty fields.
        let n = items
            .iter()
            .rposition(|s| !s.is_empty())
            .map_or(0, |i| i + 1);
        let items = &items[..n];
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
        let addr_port = regex!(r"^(\d+\.\d+\.\d+\.\d+):([0-9A-Za-z_\-]+)");
        let host_port = regex!(r"^([0-9A-Za-z._+\-]+):([0-9A-Za-z_\-]+)");
        let mark = regex!(r"^(\d+)");
        let v6_port = regex!(r"^\[([0-9A-Fa-f:]+)\]:([0-9A-Za-z_\-]+)");
        let pair = |c: regex::Captures<'a>| {
            (
                c.get(1).map_or("", |m| m.as_str()),
                c.get(2).map_or("", |m| m.as_str()),
            )
        };
        let (ip_port, fwmark) =
            if let Some(c) = addr_port.captures(vattr).filter(|_| family == Family::V4) {
                (Some(pair(c)), None)
            } else if let Some(c) = host_port.captures(vattr) {
                (Some(pair(c)), None)
            } else if let Some(c) = mark.captures(vattr) {
                (None, c.get(1).map(|m| m.as_str()))
            } else if let Some(c) = v6_port.captures(vattr) {
                if family == Family::V4 {
                    return Err(self
                        .error(header, "cannot specify an IPv6 address here")
                        .with_hint("use virtual6= for an IPv6 service"));
                }
                let (addr, port) = pair(c);
                if addr.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(self
                        .error(header, "invalid ipv6 address for virtual server")
                        .with_hint("write it as virtual6=[2001:db8::20]:80"));
                }
                (Some((addr, port)), None)
            } else {
                return Err(self
                    .error(header, "invalid address for virtual server")
                    .with_hint(
                        "write virtual=IP:PORT, virtual=HOST:SERVICE, virtual6=[IPv6]:PORT \
                     or virtual=FWMARK",
                    ));
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
            if is_comment(line.text) {
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
            }
            let Some(rcmd) = block_command(line.text) else {
                break;
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
                self.directive(&mut scratch, line, &rcmd)?;
                pv.reals.extend(scratch.reals);
            } else {
                if let Some(r) = region.as_mut() {
                    r.followed_by_directives = true;
                }
                self.directive(&mut pv, line, &rcmd)?;
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

    fn directive(
        &self,
        pv: &mut PendingVirtual<'a>,
        line: Line<'a>,
        rcmd: &str,
    ) -> Result<(), Diagnostic> {
        // Every pattern starts with its key: compare the key first, run one pattern.
        let key_len = rcmd
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            .count();
        let key = &rcmd[..key_len];
        let cap1 = |name: &str, re: &Regex| -> Option<String> {
            if key != name {
                return None;
            }
            re.captures(rcmd)
                .map(|c| c.get(1).map_or("", |m| m.as_str()).to_string())
        };
        let nonzero = |v: &str, what: &str| -> Result<u64, Diagnostic> {
            counted(v).ok_or_else(|| {
                self.error(line, format!("invalid {what}"))
                    .with_hint("use a whole number above 0")
            })
        };
        let need = |v: String, what: &str, hint: &str| -> Result<String, Diagnostic> {
            if v.is_empty() {
                Err(self
                    .error(line, what.to_string())
                    .with_hint(hint.to_string()))
            } else {
                Ok(v)
            }
        };
        let yes_no = |v: &str, key: &str| -> Result<(), Diagnostic> {
            if v == "yes" || v == "no" {
                Ok(())
            } else {
                Err(self
                    .error(line, format!("{key} must be 'yes' or 'no'"))
                    .with_hint("write exactly yes or no, with nothing after it"))
            }
        };
        if let Some(c) = Some(())
            .filter(|_| key == "real" || key == "real6")
            .and_then(|_| regex!(r"^(real(6)?)\s*=\s*(.*)").captures(rcmd))
        {
            let six = c.get(2).is_some();
            if six != (pv.family == Family::V6) {
                let (want, got) = if six {
                    ("real", "real6")
                } else {
                    ("real6", "real")
                };
                return Err(self
                    .error(line, format!("cannot specify \"{got}\" here"))
                    .with_hint(format!("use \"{want}\" in this virtual block")));
            }
            pv.reals
                .push((c.get(3).map_or("", |m| m.as_str()).to_string(), line));
        } else if let Some(v) = cap1("request", regex!(r#"^request\s*=\s*"(.*)""#)) {
            let v = need(v, "no request string specified", "write request=\"/path\"")?;
            pv.check.request = with_slash(v);
        } else if let Some(v) = cap1("receive", regex!(r#"^receive\s*=\s*"(.*)""#)) {
            pv.check.receive = need(v, "invalid receive string", "write receive=\"text\"")?;
        } else if let Some(v) = cap1("checktype", regex!(r"^checktype\s*=\s*(.*)")) {
            let word = regex!(r"([0-9A-Za-z_\-]+)")
                .captures(&v)
                .and_then(|c| c.get(1))
                .map_or("", |m| m.as_str());
            pv.check.checktype = if let Some(d) = first_digits(&v) {
                CheckType::Combined(number(d))
            } else {
                match word {
                    "connect" => CheckType::Connect,
                    "negotiate" => CheckType::Negotiate,
                    "ping" => CheckType::Ping,
                    "off" => CheckType::Off,
                    "on" => CheckType::On,
                    "external" => CheckType::External,
                    "external-perl" => CheckType::ExternalPerl,
                    _ => {
                        return Err(self.error(line, "unknown checktype").with_hint(
                            "use connect, negotiate, on, off, ping, external, \
                                 external-perl or a positive number",
                        ))
                    }
                }
            };
            pv.check.checktype_span = Some(self.line_span(line));
        } else if let Some(v) = cap1("checkcommand", regex!(r#"^checkcommand\s*=\s*"(.*)""#))
            .or_else(|| cap1("checkcommand", regex!(r"^checkcommand\s*=\s*(.*)")))
        {
            pv.check.checkcommand = need(v, "invalid check command", "name the program to run")?;
        } else if let Some(v) = cap1("checktimeout", regex!(r"^checktimeout\s*=\s*(.*)")) {
            pv.check.checktimeout = Some(nonzero(&v, "check timeout")?);
        } else if cap1("connecttimeout", regex!(r"^connecttimeout\s*=\s*(.*)")).is_some() {
            return Err(self
                .error(
                    line,
                    "connecttimeout directive deprecated in favour of negotiatetimeout",
                )
                .with_hint("rename it to negotiatetimeout"));
        } else if let Some(v) = cap1("negotiatetimeout", regex!(r"^negotiatetimeout\s*=\s*(.*)")) {
            pv.check.negotiatetimeout = Some(nonzero(&v, "negotiate timeout")?);
        } else if let Some(v) = cap1("checkcount", regex!(r"^checkcount\s*=\s*(.*)")) {
            pv.check.checkcount = Some(nonzero(&v, "check count")?);
        } else if let Some(v) = cap1("failurecount", regex!(r"^failurecount\s*=\s*(.*)")) {
            nonzero(&v, "failure count")?;
        } else if let Some(v) = cap1("checkinterval", regex!(r"^checkinterval\s*=\s*(.*)")) {
            nonzero(&v, "checkinterval")?;
        } else if let Some(v) = cap1("checkport", regex!(r"^checkport\s*=\s*(.*)")) {
            let port = first_digits(&v).map(number).ok_or_else(|| {
                self.error(line, "invalid port")
                    .with_hint("write checkport=N")
            })?;
            if !(1..65536).contains(&port) {
                return Err(self
                    .error(line, "checkport must be in range 1..65535")
                    .with_hint("write a TCP or UDP port number"));
            }
            pv.check.checkport = u16::try_from(port).ok();
        } else if let Some(v) = cap1("login", regex!(r#"^login\s*=\s*"(.*)""#)) {
            need(v, "invalid login string", "write login=\"name\"")?;
        } else if let Some(v) = cap1("passwd", regex!(r#"^passwd\s*=\s*"(.*)""#)) {
            need(v, "invalid password", "write passwd=\"secret\"")?;
        } else if let Some(v) = cap1("database", regex!(r#"^database\s*=\s*"(.*)""#)) {
            need(v, "invalid database", "write database=\"name\"")?;
        } else if let Some(v) = cap1("secret", regex!(r#"^secret\s*=\s*"(.*)""#)) {
            need(v, "invalid secret", "write secret=\"text\"")?;
        } else if let Some(v) = cap1("load", regex!(r#"^load\s*=\s*"(.*)""#)) {
            if !regex!(r"\w").is_match(&v) {
                return Err(self
                    .error(line, "invalid string for load testing")
                    .with_hint("write load=\"name\""));
            }
        } else if let Some(v) = cap1("scheduler", regex!(r"^scheduler\s*=\s*(.*)")) {
            if !regex!(r"[a-z]").is_match(&v) {
                return Err(self
                    .error(
                        line,
                        "invalid scheduler, should be only lowercase letters (a-z)",
                    )
                    .with_hint("for example scheduler=wrr"));
            }
        } else if let Some(v) = cap1("persistent", regex!(r"^persistent\s*=\s*(.*)")) {
            if first_digits(&v).is_none() {
                return Err(self
                    .error(line, "invalid persistent timeout")
                    .with_hint("write persistent=SECONDS"));
            }
        } else if let Some(v) = cap1("schedflags", regex!(r"^schedflags\s*=\s*(.*)")) {
            if !regex!(r"\S").is_match(&v) {
                return Err(self
                    .error(line, "invalid sched-flags")
                    .with_hint("write schedflags=FLAGS"));
            }
        } else if let Some(v) = cap1("netmask", regex!(r"^netmask\s*=\s*(.*)")) {
            let ok = match pv.family {
                Family::V6 => regex!(r"^\d+$").is_match(&v) && (1..=128).contains(&number(&v)),
                Family::V4 => regex!(r"^\d+\.\d+\.\d+\.\d+$").is_match(&v),
            };
            if !ok {
                return Err(self
                    .error(line, "invalid netmask")
                    .with_hint(match pv.family {
                        Family::V6 => "a prefix length between 1 and 128 is required",
                        Family::V4 => "dotted quad notation is required",
                    }));
            }
        } else if let Some(v) = cap1("protocol", regex!(r"^protocol\s*=\s*(.*)")) {
            let word = regex!(r"(\w+)")
                .captures(&v)
                .and_then(|c| c.get(1))
                .map(|m| m.as_str());
            match (word, pv.protocol) {
                (None, _) => {
                    return Err(self
                        .error(line, "invalid protocol")
                        .with_hint("write protocol=tcp or protocol=udp"))
                }
                (Some("fwm"), VirtualProtocol::Fwm) => {}
                (Some(_), VirtualProtocol::Fwm) => {
                    return Err(self
                        .error(
                            line,
                            "protocol must be fwm if the virtual service is a fwmark (a number)",
                        )
                        .with_hint("remove the line or write protocol=fwm"))
                }
                (Some("tcp"), _) => pv.protocol = VirtualProtocol::Tcp,
                (Some("udp"), _) => pv.protocol = VirtualProtocol::Udp,
                (Some(_), _) => return Err(self
                    .error(
                        line,
                        "protocol must be tcp or udp if the virtual service is an address and port",
                    )
                    .with_hint("write protocol=tcp or protocol=udp")),
            }
        } else if let Some(v) = cap1("ops", regex!(r"^ops\s*=\s*(.*)")) {
            yes_no(&v, "ops")?;
        } else if let Some(v) = cap1("service", regex!(r"^service\s*=\s*(.*)")) {
            let word = regex!(r"(\w+)")
                .captures(&v)
                .and_then(|c| c.get(1))
                .map_or("", |m| m.as_str());
            if !SERVICES.contains(&word) {
                return Err(self
                    .error(line, format!("unknown service '{word}'"))
                    .with_hint(format!("service must be one of {}", SERVICES.join(", "))));
            }
            pv.service = Some(word.to_string());
            pv.check.service = word.to_string();
        } else if let Some(v) = cap1("httpmethod", regex!(r"^httpmethod\s*=\s*(.*)")) {
            let word = regex!(r"(\w+)")
                .captures(&v)
                .and_then(|c| c.get(1))
                .map_or(String::new(), |m| m.as_str().to_ascii_uppercase());
            if word != "GET" && word != "HEAD" {
                return Err(self
                    .error(line, "httpmethod must be GET or HEAD")
                    .with_hint("write httpmethod=GET or httpmethod=HEAD"));
            }
            pv.check.httpmethod = word;
        } else if let Some(v) = cap1("virtualhost", regex!(r"^virtualhost\s*=\s*(.*)")) {
            let host = regex!(r#""?([^"]*)"?"#)
                .captures(&v)
                .and_then(|c| c.get(1))
                .map_or("", |m| m.as_str());
            pv.check.virtualhost = Some(host.to_string());
        } else if let Some(c) = Some(())
            .filter(|_| key == "fallback" || key == "fallback6")
            .and_then(|_| regex!(r"^(fallback(6)?)\s*=\s*(.*)").captures(rcmd))
        {
            let six = c.get(2).is_some();
            if six != (pv.family == Family::V6) {
                let (want, got) = if six {
                    ("fallback", "fallback6")
                } else {
                    ("fallback6", "fallback")
                };
                return Err(self
                    .error(line, format!("cannot specify \"{got}\" here"))
                    .with_hint(format!("use \"{want}\" in this virtual block")));
            }
            let port = pv.ip_port.map_or("0", |(_, p)| p).to_string();
            let fb = self.parse_fallback(line, c.get(3).map_or("", |m| m.as_str()), Some(&port))?;
            pv.fallback = Some((fb, line));
        } else if let Some(v) = cap1(
            "fallbackcommand",
            regex!(r#"^fallbackcommand\s*=\s*"(.*)""#),
        )
        .or_else(|| cap1("fallbackcommand", regex!(r"^fallbackcommand\s*=\s*(.*)")))
        {
            need(v, "invalid fallback command", "name the command to run")?;
        } else if let Some(v) = cap1("quiescent", regex!(r"^quiescent\s*=\s*(.*)")) {
            yes_no(&v, "quiescent")?;
        } else if let Some(v) = cap1("emailalert", regex!(r"^emailalert\s*=\s*(.*)")) {
            self.email_alert(line, &v)?;
        } else if let Some(v) = cap1("emailalertfreq", regex!(r"^emailalertfreq\s*=\s*(\d*)")) {
            need(
                v,
                "invalid email alert frequency",
                "use a whole number of seconds",
            )?;
        } else if let Some(v) = cap1("emailalertstatus", regex!(r"^emailalertstatus\s*=\s*(.*)")) {
            self.email_alert_status(line, &v)?;
        } else if cap1("monitorfile", regex!(r"^monitorfile\s*=\s*(.*)")).is_some() {
            // ldirectord opens the file for appending here; reading does not touch it.
        } else if let Some(v) = cap1("cleanstop", regex!(r"^cleanstop\s*=\s*(.*)")) {
            yes_no(&v, "cleanstop")?;
        } else if let Some(v) = cap1("smtp", regex!(r"^smtp\s*=\s*(.*)")) {
            if !regex!(r"^[0-9A-Za-z._+-]+").is_match(&v) {
                return Err(self
                    .error(line, "invalid SMTP server address")
                    .with_hint("write a host name or address"));
            }
        } else if (key == "servicename" || key == "comment")
            && regex!(r"^(servicename|comment)\s*=").is_match(rcmd)
        {
        } else {
            let hint = if line.text.contains('#') {
                "ldirectord cuts every line at '#', even inside quotes"
            } else {
                "see ldirectord(8) for the settings a virtual block takes; \
                 a line indented by a tab or 4+ spaces belongs to the virtual above it"
            };
            return Err(self.error(line, unknown_command(rcmd)).with_hint(hint));
        }
        Ok(())
    }

    /// The line's text span from its first non-blank character, without trailing blanks.
    fn line_span(&self, line: Line<'_>) -> Span {
        let lead = line.text.len() - line.text.trim_start().len();
        let body = line.text.trim_end().len().max(lead);
        Span::new(self.file, line.start + lead, line.start + body)
    }

    fn parse_fallback(
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

    fn resolve_fallback(
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
        let name = regex!(r"\[(.*)\]")
            .captures(name)
            .and_then(|c| c.get(1))
            .map_or(name, |m| m.as_str());
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
        if regex!(r"\S").is_match(rest) {
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

/// The characters Perl's `\s` matches in a byte string.
const PERL_SPACE: [char; 6] = ['\t', '\n', '\x0B', '\x0C', '\r', ' '];

/// Perl's `/^\s*#/`.
fn is_comment(text: &str) -> bool {
    text.trim_start_matches(PERL_SPACE).starts_with('#')
}

/// "unknown command 'KEY'" naming what the line starts with.
fn unknown_command(text: &str) -> String {
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

/// What ldirectord makes of a line inside a block: cut at `#`, tabs -> four spaces, then
/// `/^ {4,}(.+)/`; `None` ends the block.
fn block_command(text: &str) -> Option<String> {
    let cut = text.find('#').map_or(text, |n| &text[..n]);
    let expanded = cut.replace('\t', "    ");
    let spaces = expanded.len() - expanded.trim_start_matches(' ').len();
    match (spaces, &expanded[spaces..]) {
        (0..=3, _) | (4, "") => None,
        // `.+` takes back the last space when nothing else follows.
        (_, "") => Some(" ".to_string()),
        (_, rest) => Some(rest.to_string()),
    }
}

/// An error pointing at the line's text from its first non-blank character.
fn error_at(
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

/// `checktimeout=` and friends: the first digits, which must not be "0".
fn counted(v: &str) -> Option<u64> {
    first_digits(v).filter(|d| perl_true(d)).map(number)
}

fn with_slash(v: String) -> String {
    if v.starts_with('/') {
        v
    } else {
        format!("/{v}")
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
