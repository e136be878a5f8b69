//! The directive tables: one per scope (column-0 globals, lines of a virtual block), each
//! mapping a directive name to the handler that reads its value (with the grammars in
//! `values`) and applies it. Names are kept sorted so a lookup is a binary search.
//!
//! A handler answers `Ok(false)` when the line names the directive but not in a form
//! ldirectord accepts (say `fork` without `=`): ldirectord then reports the line as an
//! unknown command, and so does the caller.

use super::lines::{self, Setting};
use super::parse::{error_at, unknown_command, Line, Parser, PendingVirtual};
use super::values::{
    counted, first_digits, first_keyword, first_word, has_lowercase, has_non_space, has_word,
    leading_digits, maybe_quoted, number, perl_true, quoted, starts_with_host, with_slash,
};
use super::{CheckType, Diagnostic, Family, Severity, VirtualProtocol, SERVICES};

/// What a global directive's handler gets: the parser, the line and its setting.
struct Global<'s, 'a> {
    p: &'s mut Parser<'a>,
    line: Line<'s>,
    s: &'s Setting<'s>,
}

/// Reads a global setting's value; `Ok(false)`: not a form of this directive.
type GlobalFn = fn(Global<'_, '_>) -> Result<bool, Diagnostic>;

/// The column-0 directives, sorted by name.
const GLOBAL: &[(&str, GlobalFn)] = &[
    ("autoreload", g_autoreload),
    ("callback", g_quoted_ignored),
    ("checkcount", g_checkcount),
    ("checkinterval", g_checkinterval),
    ("checktimeout", g_checktimeout),
    ("cleanstop", g_yes_no_ignored),
    ("connecttimeout", g_connecttimeout),
    ("emailalert", g_emailalert),
    ("emailalertfreq", g_emailalertfreq),
    ("emailalertfrom", g_emailalertfrom),
    ("emailalertstatus", g_emailalertstatus),
    ("execute", g_ignored),
    ("failurecount", g_failurecount),
    ("fallback", g_fallback),
    ("fallback6", g_fallback),
    ("fallbackcommand", g_fallbackcommand),
    ("fork", g_fork),
    ("logfile", g_quoted_ignored),
    ("maintenancedir", g_maintenancedir),
    ("negotiatetimeout", g_negotiatetimeout),
    ("quiescent", g_quiescent),
    ("readdquiescent", g_yes_no_ignored),
    ("smtp", g_smtp),
    ("supervised", g_supervised),
    ("timeout", g_timeout),
];

/// Applies one column-0 setting (not blank, not a comment, not a header).
pub(super) fn global(
    p: &mut Parser<'_>,
    line: Line<'_>,
    setting: &Setting<'_>,
) -> Result<(), Diagnostic> {
    if let Some(handler) = lookup(GLOBAL, setting.key) {
        if handler(Global {
            p: &mut *p,
            line,
            s: setting,
        })? {
            return Ok(());
        }
    }
    Err(p.error(line, unknown_command(line.text)).with_hint(
        "top-level lines are column-0 key=value settings, comments or blank; \
         a virtual's lines are indented by a tab or at least 4 spaces",
    ))
}

fn lookup<F: Copy>(table: &[(&str, F)], key: &str) -> Option<F> {
    table
        .binary_search_by(|(name, _)| (*name).cmp(key))
        .ok()
        .map(|i| table[i].1)
}

/// A timeout of whole seconds: its first digits, above 0.
fn positive(p: &Parser<'_>, line: Line<'_>, v: &str, what: &str) -> Result<u64, Diagnostic> {
    match first_digits(v) {
        Some(d) if perl_true(d) && number(d) > 0 => Ok(number(d)),
        _ => Err(
            error_at(p.sources, p.file, line, format!("invalid {what} value"))
                .with_hint("use a whole number of seconds above 0"),
        ),
    }
}

fn yes_no(p: &Parser<'_>, line: Line<'_>, v: &str, key: &str) -> Result<bool, Diagnostic> {
    match v {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(p
            .error(line, format!("{key} must be 'yes' or 'no'"))
            .with_hint("write exactly yes or no, with nothing after it")),
    }
}

fn g_checktimeout(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    p.globals.checktimeout = Some(positive(p, line, v, "check timeout")?);
    Ok(true)
}

fn g_negotiatetimeout(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    p.globals.negotiatetimeout = Some(positive(p, line, v, "negotiate timeout")?);
    Ok(true)
}

fn g_connecttimeout(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    if s.value.is_none() {
        return Ok(false);
    }
    Err(p
        .error(
            line,
            "connecttimeout directive deprecated in favour of negotiatetimeout",
        )
        .with_hint("rename it to negotiatetimeout"))
}

fn g_timeout(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    if s.value.is_none() {
        return Ok(false);
    }
    Err(p
        .error(
            line,
            "timeout directive deprecated in favour of checktimeout and negotiatetimeout",
        )
        .with_hint("replace it with checktimeout= and negotiatetimeout="))
}

fn g_checkinterval(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    p.globals.checkinterval = counted(v).ok_or_else(|| {
        p.error(line, "invalid check interval value")
            .with_hint("use a whole number of seconds above 0")
    })?;
    Ok(true)
}

fn g_checkcount(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    p.globals.checkcount = counted(v).ok_or_else(|| {
        p.error(line, "invalid check count value")
            .with_hint("use a whole number above 0")
    })?;
    let mut warning = p
        .error(line, "checkcount option is deprecated")
        .with_hint("use failurecount instead");
    warning.severity = Severity::Warning;
    p.warnings.push(warning);
    Ok(true)
}

fn g_failurecount(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    counted(v).ok_or_else(|| {
        p.error(line, "invalid failure count value")
            .with_hint("use a whole number above 0")
    })?;
    Ok(true)
}

fn g_fallback(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    let family = if s.key == "fallback6" {
        Family::V6
    } else {
        Family::V4
    };
    let fb = p.parse_fallback(line, v, None)?;
    p.resolve_fallback(line, "tcp", &fb, family)?;
    p.resolve_fallback(line, "udp", &fb, family)?;
    Ok(true)
}

fn g_fallbackcommand(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    match s.value {
        None => Ok(false),
        Some("") => Err(p
            .error(line, "invalid fallback command")
            .with_hint("name the command to run")),
        Some(_) => Ok(true),
    }
}

fn g_autoreload(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    p.globals.autoreload = yes_no(p, line, v, "autoreload")?;
    Ok(true)
}

fn g_fork(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    p.globals.fork = yes_no(p, line, v, "fork")?;
    Ok(true)
}

fn g_quiescent(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    p.globals.quiescent = yes_no(p, line, v, "quiescent")?;
    Ok(true)
}

/// `readdquiescent=`, `cleanstop=`: checked, not used.
fn g_yes_no_ignored(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    yes_no(p, line, v, s.key)?;
    Ok(true)
}

/// `callback="..."`, `logfile="..."`: only the quoted form is accepted.
fn g_quoted_ignored(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { s, .. } = c;
    Ok(s.value.and_then(quoted).is_some())
}

/// `execute=`: anything.
fn g_ignored(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { s, .. } = c;
    Ok(s.value.is_some())
}

/// `supervised`, `supervised=yes|no`.
fn g_supervised(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let ok = match s.value {
        Some(v) => v == "yes" || v == "no",
        None => !has_non_space(s.after_key),
    };
    if !ok {
        return Err(p
            .error(line, "supervised must be 'yes' or 'no'")
            .with_hint("write supervised=yes or supervised=no"));
    }
    Ok(true)
}

fn g_emailalert(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    p.email_alert(line, v)?;
    Ok(true)
}

fn g_emailalertfreq(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    email_alert_freq(p, line, v)?;
    Ok(true)
}

fn g_emailalertstatus(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    p.email_alert_status(line, v)?;
    Ok(true)
}

fn g_emailalertfrom(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    match s.value {
        None => Ok(false),
        Some("") => Err(p
            .error(line, "no email from address specified")
            .with_hint("write an address after emailalertfrom=")),
        Some(_) => Ok(true),
    }
}

fn g_smtp(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    let Some(v) = s.value else { return Ok(false) };
    smtp(p, line, v)?;
    Ok(true)
}

fn g_maintenancedir(c: Global<'_, '_>) -> Result<bool, Diagnostic> {
    let Global { p, line, s } = c;
    match s.value {
        None => Ok(false),
        Some("") => Err(p
            .error(line, "maintenance directory not specified")
            .with_hint("name a directory after maintenancedir=")),
        Some(_) => Ok(true),
    }
}

/// `emailalertfreq=` (both scopes): `^(\d*)` of the value, which must not be empty.
fn email_alert_freq(p: &Parser<'_>, line: Line<'_>, v: &str) -> Result<(), Diagnostic> {
    if leading_digits(v).is_empty() {
        return Err(p
            .error(line, "invalid email alert frequency")
            .with_hint("use a whole number of seconds"));
    }
    Ok(())
}

/// `smtp=` (both scopes).
fn smtp(p: &Parser<'_>, line: Line<'_>, v: &str) -> Result<(), Diagnostic> {
    if !starts_with_host(v) {
        return Err(p
            .error(line, "invalid SMTP server address")
            .with_hint("write a host name or address"));
    }
    Ok(())
}

/// One line of a virtual block, as the table's handlers see it.
pub(super) struct Directive<'c> {
    /// The directive's name (leading `[0-9A-Za-z_-]` run).
    key: &'c str,
    /// The value after `\s*=\s*`, when the name is followed by `=`.
    value: Option<&'c str>,
}

/// What a virtual directive's handler gets: the parser, the block read so far, the line
/// and its directive.
struct Virt<'s, 'a> {
    p: &'s Parser<'a>,
    pv: &'s mut PendingVirtual<'a>,
    line: Line<'a>,
    d: &'s Directive<'s>,
}

/// Reads a virtual directive's value; `Ok(false)`: not a form of this directive.
type VirtualFn = fn(Virt<'_, '_>) -> Result<bool, Diagnostic>;

/// The directives of a virtual block, sorted by name.
const VIRTUAL: &[(&str, VirtualFn)] = &[
    ("checkcommand", v_checkcommand),
    ("checkcount", v_checkcount),
    ("checkinterval", v_checkinterval),
    ("checkport", v_checkport),
    ("checktimeout", v_checktimeout),
    ("checktype", v_checktype),
    ("cleanstop", v_yes_no),
    ("comment", v_any),
    ("connecttimeout", v_connecttimeout),
    ("database", v_required_quoted),
    ("emailalert", v_emailalert),
    ("emailalertfreq", v_emailalertfreq),
    ("emailalertstatus", v_emailalertstatus),
    ("failurecount", v_failurecount),
    ("fallback", v_fallback),
    ("fallback6", v_fallback),
    ("fallbackcommand", v_fallbackcommand),
    ("httpmethod", v_httpmethod),
    ("load", v_load),
    ("login", v_required_quoted),
    ("monitorfile", v_any),
    ("negotiatetimeout", v_negotiatetimeout),
    ("netmask", v_netmask),
    ("ops", v_yes_no),
    ("passwd", v_required_quoted),
    ("persistent", v_persistent),
    ("protocol", v_protocol),
    ("quiescent", v_yes_no),
    ("real", v_real),
    ("real6", v_real),
    ("receive", v_receive),
    ("request", v_request),
    ("schedflags", v_schedflags),
    ("scheduler", v_scheduler),
    ("secret", v_required_quoted),
    ("service", v_service),
    ("servicename", v_any),
    ("smtp", v_smtp),
    ("virtualhost", v_virtualhost),
];

/// Applies one line of a virtual block (`command`: the line as ldirectord reads it, cut
/// at `#` and without its indentation).
pub(super) fn in_virtual<'a>(
    p: &Parser<'a>,
    pv: &mut PendingVirtual<'a>,
    line: Line<'a>,
    command: &str,
) -> Result<(), Diagnostic> {
    let (key, after_key) = lines::directive_key(command);
    let directive = Directive {
        key,
        value: lines::value_after(after_key),
    };
    if let Some(handler) = lookup(VIRTUAL, key) {
        if handler(Virt {
            p,
            pv: &mut *pv,
            line,
            d: &directive,
        })? {
            return Ok(());
        }
    }
    let hint = if line.text.contains('#') {
        "ldirectord cuts every line at '#', even inside quotes"
    } else {
        "see ldirectord(8) for the settings a virtual block takes; \
         a line indented by a tab or 4+ spaces belongs to the virtual above it"
    };
    Err(p.error(line, unknown_command(command)).with_hint(hint))
}

/// A value that must not be empty.
fn need<'v>(
    p: &Parser<'_>,
    line: Line<'_>,
    v: &'v str,
    what: &str,
    hint: &str,
) -> Result<&'v str, Diagnostic> {
    if v.is_empty() {
        Err(p.error(line, what.to_string()).with_hint(hint.to_string()))
    } else {
        Ok(v)
    }
}

/// A count above 0.
fn nonzero(p: &Parser<'_>, line: Line<'_>, v: &str, what: &str) -> Result<u64, Diagnostic> {
    counted(v).ok_or_else(|| {
        p.error(line, format!("invalid {what}"))
            .with_hint("use a whole number above 0")
    })
}

/// `real=` / `real6=`, kept for resolving once the block is read; the family must match
/// the block's.
fn v_real(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value else { return Ok(false) };
    let six = d.key == "real6";
    if six != (pv.family == Family::V6) {
        let (want, got) = if six {
            ("real", "real6")
        } else {
            ("real6", "real")
        };
        return Err(p
            .error(line, format!("cannot specify \"{got}\" here"))
            .with_hint(format!("use \"{want}\" in this virtual block")));
    }
    pv.reals.push((v.to_string(), line));
    Ok(true)
}

fn v_request(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value.and_then(quoted) else {
        return Ok(false);
    };
    let v = need(
        p,
        line,
        v,
        "no request string specified",
        "write request=\"/path\"",
    )?;
    pv.check.request = with_slash(v.to_string());
    Ok(true)
}

fn v_receive(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value.and_then(quoted) else {
        return Ok(false);
    };
    pv.check.receive = need(
        p,
        line,
        v,
        "invalid receive string",
        "write receive=\"text\"",
    )?
    .to_string();
    Ok(true)
}

fn v_checktype(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value else { return Ok(false) };
    pv.check.checktype = if let Some(digits) = first_digits(v) {
        CheckType::Combined(number(digits))
    } else {
        match first_keyword(v).unwrap_or("") {
            "connect" => CheckType::Connect,
            "negotiate" => CheckType::Negotiate,
            "ping" => CheckType::Ping,
            "off" => CheckType::Off,
            "on" => CheckType::On,
            "external" => CheckType::External,
            "external-perl" => CheckType::ExternalPerl,
            _ => {
                return Err(p.error(line, "unknown checktype").with_hint(
                    "use connect, negotiate, on, off, ping, external, \
                     external-perl or a positive number",
                ))
            }
        }
    };
    pv.check.checktype_span = Some(p.line_span(line));
    Ok(true)
}

/// `checkcommand="..."` or `checkcommand=...`.
fn v_checkcommand(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value else { return Ok(false) };
    let v = quoted(v).unwrap_or(v);
    pv.check.checkcommand = need(
        p,
        line,
        v,
        "invalid check command",
        "name the program to run",
    )?
    .to_string();
    Ok(true)
}

fn v_checktimeout(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value else { return Ok(false) };
    pv.check.checktimeout = Some(nonzero(p, line, v, "check timeout")?);
    Ok(true)
}

fn v_connecttimeout(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, line, d, .. } = c;
    if d.value.is_none() {
        return Ok(false);
    }
    Err(p
        .error(
            line,
            "connecttimeout directive deprecated in favour of negotiatetimeout",
        )
        .with_hint("rename it to negotiatetimeout"))
}

fn v_negotiatetimeout(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value else { return Ok(false) };
    pv.check.negotiatetimeout = Some(nonzero(p, line, v, "negotiate timeout")?);
    Ok(true)
}

fn v_checkcount(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value else { return Ok(false) };
    pv.check.checkcount = Some(nonzero(p, line, v, "check count")?);
    Ok(true)
}

fn v_failurecount(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, line, d, .. } = c;
    let Some(v) = d.value else { return Ok(false) };
    nonzero(p, line, v, "failure count")?;
    Ok(true)
}

fn v_checkinterval(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value else { return Ok(false) };
    pv.check.checkinterval = Some(nonzero(p, line, v, "checkinterval")?);
    Ok(true)
}

fn v_checkport(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value else { return Ok(false) };
    let port = first_digits(v)
        .map(number)
        .ok_or_else(|| p.error(line, "invalid port").with_hint("write checkport=N"))?;
    if !(1..65536).contains(&port) {
        return Err(p
            .error(line, "checkport must be in range 1..65535")
            .with_hint("write a TCP or UDP port number"));
    }
    pv.check.checkport = u16::try_from(port).ok();
    Ok(true)
}

/// `login=`, `passwd=`, `database=`, `secret=`: a quoted, non-empty string.
fn v_required_quoted(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, line, d, .. } = c;
    let Some(v) = d.value.and_then(quoted) else {
        return Ok(false);
    };
    let (what, hint) = match d.key {
        "login" => ("invalid login string", "write login=\"name\""),
        "passwd" => ("invalid password", "write passwd=\"secret\""),
        "database" => ("invalid database", "write database=\"name\""),
        _ => ("invalid secret", "write secret=\"text\""),
    };
    need(p, line, v, what, hint)?;
    Ok(true)
}

fn v_load(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, line, d, .. } = c;
    let Some(v) = d.value.and_then(quoted) else {
        return Ok(false);
    };
    if !has_word(v) {
        return Err(p
            .error(line, "invalid string for load testing")
            .with_hint("write load=\"name\""));
    }
    Ok(true)
}

fn v_scheduler(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, line, d, .. } = c;
    let Some(v) = d.value else { return Ok(false) };
    if !has_lowercase(v) {
        return Err(p
            .error(
                line,
                "invalid scheduler, should be only lowercase letters (a-z)",
            )
            .with_hint("for example scheduler=wrr"));
    }
    Ok(true)
}

fn v_persistent(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, line, d, .. } = c;
    let Some(v) = d.value else { return Ok(false) };
    if first_digits(v).is_none() {
        return Err(p
            .error(line, "invalid persistent timeout")
            .with_hint("write persistent=SECONDS"));
    }
    Ok(true)
}

fn v_schedflags(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, line, d, .. } = c;
    let Some(v) = d.value else { return Ok(false) };
    if !has_non_space(v) {
        return Err(p
            .error(line, "invalid sched-flags")
            .with_hint("write schedflags=FLAGS"));
    }
    Ok(true)
}

fn v_netmask(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value else { return Ok(false) };
    let ok = match pv.family {
        Family::V6 => super::values::all_digits(v) && (1..=128).contains(&number(v)),
        Family::V4 => super::values::dotted_quad(v),
    };
    if !ok {
        return Err(p.error(line, "invalid netmask").with_hint(match pv.family {
            Family::V6 => "a prefix length between 1 and 128 is required",
            Family::V4 => "dotted quad notation is required",
        }));
    }
    Ok(true)
}

fn v_protocol(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value else { return Ok(false) };
    match (first_word(v), pv.protocol) {
        (None, _) => {
            return Err(p
                .error(line, "invalid protocol")
                .with_hint("write protocol=tcp or protocol=udp"))
        }
        (Some("fwm"), VirtualProtocol::Fwm) => {}
        (Some(_), VirtualProtocol::Fwm) => {
            return Err(p
                .error(
                    line,
                    "protocol must be fwm if the virtual service is a fwmark (a number)",
                )
                .with_hint("remove the line or write protocol=fwm"))
        }
        (Some("tcp"), _) => pv.protocol = VirtualProtocol::Tcp,
        (Some("udp"), _) => pv.protocol = VirtualProtocol::Udp,
        (Some(_), _) => {
            return Err(p
                .error(
                    line,
                    "protocol must be tcp or udp if the virtual service is an address and port",
                )
                .with_hint("write protocol=tcp or protocol=udp"))
        }
    }
    Ok(true)
}

/// `ops=`, `quiescent=`, `cleanstop=`: checked, not used.
fn v_yes_no(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, line, d, .. } = c;
    let Some(v) = d.value else { return Ok(false) };
    yes_no(p, line, v, d.key)?;
    Ok(true)
}

fn v_service(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value else { return Ok(false) };
    let word = first_word(v).unwrap_or("");
    if !SERVICES.contains(&word) {
        return Err(p
            .error(line, format!("unknown service '{word}'"))
            .with_hint(format!("service must be one of {}", SERVICES.join(", "))));
    }
    pv.service = Some(word.to_string());
    pv.check.service = word.to_string();
    Ok(true)
}

fn v_httpmethod(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value else { return Ok(false) };
    let word = first_word(v).unwrap_or("").to_ascii_uppercase();
    if word != "GET" && word != "HEAD" {
        return Err(p
            .error(line, "httpmethod must be GET or HEAD")
            .with_hint("write httpmethod=GET or httpmethod=HEAD"));
    }
    pv.check.httpmethod = word;
    Ok(true)
}

fn v_virtualhost(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { pv, d, .. } = c;
    let Some(v) = d.value else { return Ok(false) };
    pv.check.virtualhost = Some(maybe_quoted(v).to_string());
    Ok(true)
}

/// `fallback=` / `fallback6=`: the family must match the block's; resolved with the
/// block's protocol once the block is read.
fn v_fallback(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, pv, line, d } = c;
    let Some(v) = d.value else { return Ok(false) };
    let six = d.key == "fallback6";
    if six != (pv.family == Family::V6) {
        let (want, got) = if six {
            ("fallback", "fallback6")
        } else {
            ("fallback6", "fallback")
        };
        return Err(p
            .error(line, format!("cannot specify \"{got}\" here"))
            .with_hint(format!("use \"{want}\" in this virtual block")));
    }
    let port = pv.ip_port.map_or("0", |(_, port)| port).to_string();
    let fb = p.parse_fallback(line, v, Some(&port))?;
    pv.fallback = Some((fb, line));
    Ok(true)
}

/// `fallbackcommand="..."` or `fallbackcommand=...`.
fn v_fallbackcommand(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, line, d, .. } = c;
    let Some(v) = d.value else { return Ok(false) };
    let v = quoted(v).unwrap_or(v);
    need(
        p,
        line,
        v,
        "invalid fallback command",
        "name the command to run",
    )?;
    Ok(true)
}

fn v_emailalert(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, line, d, .. } = c;
    let Some(v) = d.value else { return Ok(false) };
    p.email_alert(line, v)?;
    Ok(true)
}

fn v_emailalertfreq(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, line, d, .. } = c;
    let Some(v) = d.value else { return Ok(false) };
    email_alert_freq(p, line, v)?;
    Ok(true)
}

fn v_emailalertstatus(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, line, d, .. } = c;
    let Some(v) = d.value else { return Ok(false) };
    p.email_alert_status(line, v)?;
    Ok(true)
}

fn v_smtp(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { p, line, d, .. } = c;
    let Some(v) = d.value else { return Ok(false) };
    smtp(p, line, v)?;
    Ok(true)
}

/// `monitorfile=`, `servicename=`, `comment=`: accepted as they are (ldirectord opens a
/// monitor file for appending; reading the configuration does not touch it).
fn v_any(c: Virt<'_, '_>) -> Result<bool, Diagnostic> {
    let Virt { d, .. } = c;
    Ok(d.value.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_for_binary_search() {
        for pair in GLOBAL.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
        for pair in VIRTUAL.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
    }
}
