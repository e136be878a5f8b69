//! Plans the keepalived edits: a generated `MISC_CHECK` in every DR and TUN `real_server`,
//! and what `global_defs` needs for keepalived to run it; or, with `--feed agent`, a
//! `FILE_CHECK` per pair on the `track_file` of the agent's verdict, the `track_file`s
//! declared once at the top of the main file.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::markers::{self, generated_blocks, within};
use super::{Edit, Feed, GenerateOptions, Plan, RewriteError};
use crate::config::keepalived::{self, Document, ParseOptions};
use crate::config::span::line_text;
use crate::config::{Diagnostic, FileId, ServiceKey, SourceMap, Span, VirtualService};
use crate::generate::{AppProbe, Generator, ProbeCommand};

/// An id no `@id` line names, so that only the `@^id` branches apply.
const NO_ID: &str = "\u{1}vipcheck-no-config-id";

pub fn plan(config: &Path, gen: &Generator, opts: &GenerateOptions) -> Result<Plan, RewriteError> {
    let mut docs = parse_every_branch(config, opts)?;
    for doc in &docs {
        crate::config::check_targets(&doc.services, &doc.sources).map_err(RewriteError::Many)?;
    }
    // The first parse's files are the plan's; spans of other parses are mapped onto them.
    let mut sources = std::mem::take(&mut docs[0].sources);
    let mut plan = Plan {
        include_patterns: docs
            .iter()
            .flat_map(|d| d.include_patterns.iter().cloned())
            .collect(),
        ..Plan::default()
    };
    plan.include_patterns.sort();
    plan.include_patterns.dedup();
    plan.warnings = docs.iter().flat_map(|d| d.warnings.clone()).collect();

    // Every file any branch reads is part of the plan, also one that only an `@id
    // include` brings in, so its earlier output is found and replaced like any other.
    for doc in docs.iter().skip(1) {
        for (_, file) in doc.sources.files() {
            if sources.find(&file.path).is_none() {
                sources.add(file.path.clone(), file.text.clone());
            }
        }
    }
    // Our own earlier output is removed; what we generate now goes in its place.
    let mut blocks = HashMap::new();
    for (id, file) in sources.files() {
        let found = generated_blocks(&file.text);
        for b in &found {
            plan.edits.push(Edit {
                span: Span::new(id, b.start, b.end),
                text: String::new(),
            });
        }
        blocks.insert(id, found);
    }

    let mut stanzas = StanzaCache::new(gen);
    let mut errors = Vec::new();
    // Every @id branch's parse meets the shared text again: each note and each real
    // server is handled once, by the span of the text it comes from.
    let mut noted: BTreeSet<(FileId, usize, &str)> = BTreeSet::new();
    let mut done: BTreeSet<(FileId, usize, usize)> = BTreeSet::new();
    // With `--feed agent`: every track_file the FILE_CHECKs name, in config order, once.
    let mut track_files = TrackFiles::default();
    let misc_timeout =
        opts.probe_timeout.as_secs() + u64::from(opts.probe_timeout.subsec_nanos() > 0) + 1;
    for (di, doc) in docs.iter().enumerate() {
        for vs in &doc.services {
            let vs_span = remap(&mut sources, di, &doc.sources, vs.span);
            let nat_reals = vs
                .real_servers
                .iter()
                .filter(|r| !r.method.needs_vip_on_real_server())
                .count();
            if nat_reals > 0 && noted.insert((vs_span.file, vs_span.start, "nat")) {
                plan.skipped.push(
                    Diagnostic::warning(format!(
                        "left {nat_reals} NAT real server(s) of {} alone: with NAT the VIP is not on the real server",
                        vs.label()
                    ))
                    .at(&sources, vs_span),
                );
            }
            let vips = match service_vips(vs, opts) {
                Ok(v) => v,
                Err(marks) => {
                    if vs
                        .real_servers
                        .iter()
                        .any(|r| r.method.needs_vip_on_real_server())
                        && noted.insert((vs_span.file, vs_span.start, "fwmark"))
                    {
                        plan.skipped.push(
                            Diagnostic::warning(format!(
                                "skipped {}: a fwmark service names no VIP to probe",
                                vs.label()
                            ))
                            .at(&sources, vs_span)
                            .with_hint(format!(
                                "map the mark to its VIPs with --fwmark-vip {}=VIP",
                                marks
                            )),
                        );
                    }
                    continue;
                }
            };
            for rs in vs
                .real_servers
                .iter()
                .filter(|r| r.method.needs_vip_on_real_server())
            {
                let rs_span = remap(&mut sources, di, &doc.sources, rs.span);
                if !done.insert((rs_span.file, rs_span.start, rs_span.end)) {
                    continue; // the same text, reached again through another @id branch
                }
                let Some(ins) = &rs.insert else {
                    let origin = remap(&mut sources, di, &doc.sources, rs.origin.span());
                    let via = match &rs.origin {
                        crate::config::Origin::Expanded { via, .. } => via.clone(),
                        crate::config::Origin::Written(_) => "an expansion".to_string(),
                    };
                    errors.push(
                        Diagnostic::error(format!(
                            "real server {} of {} comes from {via}: there is no text of its own to add a check to",
                            rs.addr,
                            vs.label()
                        ))
                        .at(&sources, origin)
                        .with_hint("write this real_server block out in full, then rewrite again"),
                    );
                    continue;
                };
                let mut at = remap(&mut sources, di, &doc.sources, ins.at);
                let mut mid_line = ins.mid_line;
                if let Some(start) = markers::mid_line_block_at(
                    &sources.file(at.file).text,
                    blocks.get(&at.file).map_or(&[][..], Vec::as_slice),
                    at.start,
                ) {
                    // Our block from an earlier run sits where the brace was.
                    at = Span::point(at.file, start);
                    mid_line = true;
                }
                if let Feed::Agent { state_dir } = &opts.feed {
                    let mut names: Vec<String> = Vec::with_capacity(vips.len());
                    for vip in &vips {
                        // A group may list a VIP twice (with other ports): one check each.
                        let name = state_name(vs, rs, *vip);
                        if !names.contains(&name) {
                            track_files.add(&name, state_dir);
                            names.push(name);
                        }
                    }
                    let stanza = gen.render(
                        FILE_CHECK_TEMPLATE,
                        FileCheckCtx {
                            indent: &ins.indent,
                            track_files: &names,
                        },
                    )?;
                    let text = if mid_line {
                        let prefix = close_prefix(&sources, rs_span, at);
                        mid_line_text(&stanza, &prefix, FILE_CHECK_TEMPLATE)?
                    } else {
                        stanza
                    };
                    plan.edits.push(Edit { span: at, text });
                    plan.checks += names.len();
                    continue;
                }
                let app = if opts.app_check && vs.protocol == crate::config::Protocol::Tcp {
                    let mut found = None;
                    for check in rs
                        .checks
                        .iter()
                        .filter(|c| c.kind == "HTTP_GET" || c.kind == "SSL_GET")
                    {
                        let span = remap(&mut sources, di, &doc.sources, check.span);
                        if markers::within(
                            blocks.get(&span.file).map_or(&[][..], Vec::as_slice),
                            span.start..span.end,
                        ) {
                            continue;
                        }
                        match app_probe(check.kind == "SSL_GET", sources.slice(span)) {
                            Ok(a) => found = Some(a),
                            Err(why) => plan.skipped.push(
                                Diagnostic::warning(format!(
                                    "real server {} of {}: its {} is not run through the VIP: {why}",
                                    rs.addr,
                                    vs.label(),
                                    check.kind
                                ))
                                .at(&sources, span),
                            ),
                        }
                        break;
                    }
                    found
                } else {
                    None
                };
                let udp = if opts.app_check && vs.protocol == crate::config::Protocol::Udp {
                    match crate::generate::udp_check::from_checks(&rs.checks) {
                        Some(Ok(p)) => Some(p),
                        Some(Err(why)) => {
                            let check = rs
                                .checks
                                .iter()
                                .find(|c| c.kind == "DNS_CHECK" || c.kind == "UDP_CHECK");
                            let mut d = Diagnostic::warning(format!(
                                "real server {} of {}: its {} is not run through the VIP: {why}",
                                rs.addr,
                                vs.label(),
                                check.map_or("check", |c| c.kind.as_str())
                            ));
                            if let Some(c) = check {
                                let span = remap(&mut sources, di, &doc.sources, c.span);
                                d = d.at(&sources, span);
                            }
                            plan.skipped.push(d);
                            None
                        }
                        None => None,
                    }
                } else {
                    None
                };
                let command = ProbeCommand {
                    program: opts.probe_path.clone(),
                    vips: vips.clone(),
                    rip: rs.addr,
                    port: rs.port.or(vs.port),
                    protocol: vs.protocol,
                    method: rs.method,
                    timeout: opts.probe_timeout,
                    app,
                    tunnel: rs.tunnel,
                    udp,
                };
                let stanza = stanzas.render(gen, &ins.indent, &command, misc_timeout)?;
                let text = if mid_line {
                    let prefix = close_prefix(&sources, rs_span, at);
                    mid_line_text(&stanza, &prefix, "keepalived/misc_check.conf.j2")?
                } else {
                    stanza
                };
                plan.edits.push(Edit { span: at, text });
                plan.checks += 1;
            }
        }
    }
    if !errors.is_empty() {
        return Err(RewriteError::Many(errors));
    }
    match &opts.feed {
        Feed::Probe if plan.checks > 0 => {
            if let Some(edit) = global_defs_edit(&docs[0], &sources, &blocks, gen)? {
                plan.edits.push(edit);
            }
        }
        Feed::Agent { .. } if !track_files.list.is_empty() => {
            // keepalived looks a FILE_CHECK's track_file up when it reads the FILE_CHECK,
            // so the declarations go first: at the very top of the main file.
            let text = gen.render(
                TRACK_FILES_TEMPLATE,
                TrackFilesCtx {
                    track_files: &track_files.list,
                    init_value: TRACK_FILE_INIT,
                },
            )?;
            plan.edits.push(Edit {
                span: Span::point(FileId(0), 0),
                text,
            });
        }
        _ => {}
    }
    plan.sources = sources;
    // This node's reading (its `-i`): the first parse.
    plan.services = std::mem::take(&mut docs[0].services);
    Ok(plan)
}

const FILE_CHECK_TEMPLATE: &str = "keepalived/file_check.conf.j2";
const TRACK_FILES_TEMPLATE: &str = "keepalived/track_files.conf.j2";

/// What keepalived writes into a track file that does not exist when it starts
/// (`init_file`, without `overwrite`): 0, up. A director that boots before the agent has
/// written anything keeps every real server in its pools, as it would with no check at
/// all, instead of emptying them until the agent's first verdicts; and a verdict the agent
/// already wrote is never replaced by keepalived starting. keepalived reads a missing or
/// deleted file as 0 too, so "no verdict" means up throughout.
pub const TRACK_FILE_INIT: i32 = 0;

#[derive(Serialize)]
struct FileCheckCtx<'a> {
    indent: &'a str,
    track_files: &'a [String],
}

#[derive(Serialize)]
struct TrackFileCtx {
    name: String,
    path: String,
}

#[derive(Serialize)]
struct TrackFilesCtx<'a> {
    track_files: &'a [TrackFileCtx],
    init_value: i32,
}

/// The track_file declarations, each once, in the order the config first names them.
#[derive(Default)]
struct TrackFiles {
    seen: BTreeSet<String>,
    list: Vec<TrackFileCtx>,
}

impl TrackFiles {
    fn add(&mut self, name: &str, state_dir: &Path) {
        if self.seen.insert(name.to_string()) {
            self.list.push(TrackFileCtx {
                name: name.to_string(),
                path: state_dir.join(name).display().to_string(),
            });
        }
    }
}

/// The name of the verdict file of the pair (`vip`, real server `rs` of `vs`).
fn state_name(
    vs: &VirtualService,
    rs: &crate::config::RealServer,
    vip: std::net::IpAddr,
) -> String {
    super::state_name(vs.protocol, vip, rs.port.or(vs.port), rs.addr)
}

#[derive(Serialize)]
struct MiscCheckCtx<'a> {
    indent: &'a str,
    command_line: String,
    command: &'a ProbeCommand,
    misc_timeout: u64,
}

/// Renders the MISC_CHECK stanza. When the template reads nothing but the indentation, the
/// command line and the timeout (as the shipped one does), it is rendered once per
/// indentation with a placeholder for the command line, and each stanza is that text with
/// the command line put in: a config with 100,000 real servers would otherwise spend a
/// fifth of its rewrite in the template engine.
struct StanzaCache {
    simple: bool,
    by_indent: HashMap<String, Option<(String, String)>>,
}

const PLACEHOLDER: &str = "\u{1}vipcheck-command-line\u{1}";
const TEMPLATE: &str = "keepalived/misc_check.conf.j2";

impl StanzaCache {
    fn new(gen: &Generator) -> Self {
        let simple = gen
            .variables(TEMPLATE)
            .iter()
            .all(|v| matches!(v.as_str(), "indent" | "command_line" | "misc_timeout"));
        StanzaCache {
            simple,
            by_indent: HashMap::new(),
        }
    }

    fn render(
        &mut self,
        gen: &Generator,
        indent: &str,
        command: &ProbeCommand,
        misc_timeout: u64,
    ) -> Result<String, RewriteError> {
        let ctx = |command_line: String| MiscCheckCtx {
            indent,
            command_line,
            command,
            misc_timeout,
        };
        if !self.simple {
            return Ok(gen.render(TEMPLATE, ctx(command.command_line()))?);
        }
        if !self.by_indent.contains_key(indent) {
            let text = gen.render(TEMPLATE, ctx(PLACEHOLDER.to_string()))?;
            // Only a single, verbatim use of the command line can be filled in afterwards.
            let split = match text.match_indices(PLACEHOLDER).count() {
                1 => text
                    .split_once(PLACEHOLDER)
                    .map(|(a, b)| (a.to_string(), b.to_string())),
                _ => None,
            };
            self.by_indent.insert(indent.to_string(), split);
        }
        match self.by_indent.get(indent).and_then(Option::as_ref) {
            Some((before, after)) => Ok(format!("{before}{}{after}", command.command_line())),
            None => Ok(gen.render(TEMPLATE, ctx(command.command_line()))?),
        }
    }
}

#[derive(Serialize)]
struct GlobalDefsCtx<'a> {
    indent: &'a str,
    enable_script_security: bool,
    script_user: Option<&'a str>,
    new_block: bool,
}

/// keepalived runs no MISC_CHECK without `enable_script_security` and a `script_user`
/// (`--config-test` exits 6). Adds what is missing, into the first `global_defs` block the
/// user wrote, or a block of its own at the top of the main file. `doc` is the first
/// parse, whose spans point into the plan's files (`sources`) as they are.
fn global_defs_edit(
    doc: &Document,
    sources: &SourceMap,
    blocks: &HashMap<FileId, Vec<std::ops::Range<usize>>>,
    gen: &Generator,
) -> Result<Option<Edit>, RewriteError> {
    let ours = |id: FileId| blocks.get(&id).map_or(&[][..], Vec::as_slice);
    let users_own = |spans: &[Span]| spans.iter().any(|s| !within(ours(s.file), s.start..s.end));
    let need_security = !users_own(&doc.global_defs.enable_script_security);
    let need_user = !users_own(&doc.global_defs.script_user);
    if !need_security && !need_user {
        return Ok(None);
    }
    let insert = doc.global_defs.insert.as_ref().and_then(|ins| {
        let id = ins.at.file;
        let text = &sources.file(id).text;
        if let Some(start) = markers::mid_line_block_at(text, ours(id), ins.at.start) {
            return Some((Span::point(id, start), ins, true));
        }
        let inside_ours = within(ours(id), ins.at.start..ins.at.end)
            && !ours(id).iter().any(|r| r.end == ins.at.start);
        (!inside_ours).then(|| (Span::point(id, ins.at.start), ins, ins.mid_line))
    });
    let (span, indent, new_block, mid_line, keyword) = match insert {
        Some((span, ins, mid_line)) => (
            span,
            ins.indent.clone(),
            false,
            mid_line,
            doc.global_defs.keyword,
        ),
        None => (
            Span::point(FileId(0), 0),
            "    ".to_string(),
            true,
            false,
            None,
        ),
    };
    let text = gen.render(
        "keepalived/global_defs.conf.j2",
        GlobalDefsCtx {
            indent: &indent,
            enable_script_security: need_security,
            script_user: need_user.then_some("root"),
            new_block,
        },
    )?;
    let text = match (mid_line, keyword) {
        (true, Some(keyword)) => {
            let prefix = close_prefix(sources, keyword, span);
            mid_line_text(&text, &prefix, "keepalived/global_defs.conf.j2")?
        }
        _ => text,
    };
    Ok(Some(Edit { span, text }))
}

/// What goes before a block's closing brace when the block was written on one line and
/// gets a generated block before that brace: the brace moves to a line of its own, which
/// needs the `@id` prefix of the line the brace was on and the indentation of the line
/// that opened the block (`opener`).
fn close_prefix(sources: &SourceMap, opener: Span, close: Span) -> String {
    let close_line = line_text(&sources.file(close.file).text, close.start);
    let condition = close_line
        .trim_start_matches([' ', '\t'])
        .strip_prefix('@')
        .and_then(|rest| rest.split_once([' ', '\t']))
        .map(|(id, _)| format!("@{id}"));
    let open_line = line_text(&sources.file(opener.file).text, opener.start);
    let body = match open_line.trim_start_matches([' ', '\t']).strip_prefix('@') {
        Some(rest) => rest.trim_start_matches(|c: char| !c.is_whitespace()),
        None => open_line,
    };
    format!("{}{}", condition.unwrap_or_default(), leading_ws(body))
}

/// A rendered stanza as a block that starts mid-line (see [`markers::mid_line_block`]).
fn mid_line_text(stanza: &str, prefix: &str, template: &str) -> Result<String, RewriteError> {
    markers::mid_line_block(stanza, prefix).ok_or_else(|| {
        RewriteError::Output(format!(
            "the output of {template} does not start with a '{}' line: the next run could \
             not find and replace it",
            markers::BEGIN
        ))
    })
}

/// The VIPs to probe for a service, or `Err(marks)` for a fwmark service with no mapping.
fn service_vips(
    vs: &VirtualService,
    opts: &GenerateOptions,
) -> Result<Vec<std::net::IpAddr>, String> {
    let mut vips = vs.vips.clone();
    for mark in &vs.fwmarks {
        if let Some(mapped) = opts.fwmark_vips.get(mark) {
            vips.extend(mapped.iter().copied());
        }
    }
    vips.dedup();
    if vips.is_empty() {
        let marks = match &vs.key {
            ServiceKey::Fwmark(m) => m.to_string(),
            _ => vs
                .fwmarks
                .first()
                .map_or("MARK".to_string(), u32::to_string),
        };
        return Err(marks);
    }
    Ok(vips)
}

fn leading_ws(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// Reads the config once for this node's id, then once for every other `@id` branch (and
/// once for none), so that a file shared by every node gets every branch's checks.
fn parse_every_branch(
    config: &Path,
    opts: &GenerateOptions,
) -> Result<Vec<Document>, RewriteError> {
    let first = keepalived::parse_file(
        config,
        &ParseOptions {
            config_id: opts.config_id.clone(),
        },
    )?;
    let mut done: BTreeSet<String> = BTreeSet::new();
    if first.conditional_ids.is_empty() {
        // No `@id` line: every node reads the same text, so one parse is the whole story.
        return Ok(vec![first]);
    }
    let mut todo: Vec<String> = first
        .conditional_ids
        .iter()
        .cloned()
        .chain([NO_ID.to_string()])
        .collect();
    let mut docs = vec![first];
    // Bounded: every round parses one new id; ids come from the text, so they run out.
    for _ in 0..256 {
        let Some(id) = todo.pop() else { break };
        if !done.insert(id.clone()) {
            continue;
        }
        let doc = keepalived::parse_file(
            config,
            &ParseOptions {
                config_id: Some(id),
            },
        )?;
        todo.extend(
            doc.conditional_ids
                .iter()
                .filter(|i| !done.contains(*i))
                .cloned(),
        );
        docs.push(doc);
    }
    Ok(docs)
}

/// A span from another parse of the same files, made to point into `base` (adding the file
/// when that parse read one the base parse did not).
fn remap(base: &mut SourceMap, parse: usize, from: &SourceMap, span: Span) -> Span {
    if parse == 0 {
        return span; // the first parse's own files
    }
    let file = from.file(span.file);
    let id = match base.find(&file.path) {
        Some(id) => id,
        None => base.add(PathBuf::from(&file.path), file.text.clone()),
    };
    Span::new(id, span.start, span.end)
}

/// The first `url` of an HTTP_GET / SSL_GET block (`path`, `status_code`, `digest`, and
/// `virtualhost` from the url or the checker) as an application check through the VIP.
/// keepalived accepts any 2xx when no `status_code` is given, and so does the probe.
fn app_probe(https: bool, checker: &str) -> Result<AppProbe, String> {
    let words = checker_words(checker);
    let mut depth = 0;
    let mut in_url = false;
    let mut url_seen = false;
    let (mut path, mut status, mut digest, mut host) = (None, None, None, None);
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let value = words.get(i + 1).map(String::as_str);
        match w {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if in_url && depth == 1 {
                    in_url = false;
                    url_seen = true;
                }
            }
            "url" if depth == 1 && !url_seen => in_url = true,
            "path" if in_url => path = value,
            "digest" if in_url => digest = value,
            "status_code" if in_url => status = value,
            "virtualhost" if in_url || depth == 1 => host = host.or(value),
            _ => {}
        }
        i += 1;
    }
    let path = path.ok_or("its url has no path")?;
    let status = match status {
        None => None,
        Some(s) => Some(s.parse::<u16>().map_err(|_| {
            format!("status_code {s:?} is not one code (a range or list cannot be checked through the VIP yet)")
        })?),
    };
    AppProbe::new(https, path, status, digest, host)
}

/// The words of a checker block: comments (`#`, `!`) removed, braces as words of their
/// own, double quotes taken off.
fn checker_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for line in text.lines() {
        let mut word = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                '#' | '!' if !quoted => break,
                '{' | '}' if !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    words.push(c.to_string());
                }
                c if c.is_whitespace() && !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_url_becomes_the_application_check() {
        let text = "HTTP_GET {\n  url { # the health page\n    path /health\n    digest 9B3A0C85A887A256D6939DA88AABD8CD\n    status_code 200\n  }\n  url { path /other }\n  virtualhost \"www.example.test\"\n}";
        let app = app_probe(false, text).unwrap();
        assert_eq!(app.path, "/health");
        assert_eq!(app.status, Some(200));
        assert_eq!(
            app.digest.as_deref(),
            Some("9b3a0c85a887a256d6939da88aabd8cd")
        );
        assert_eq!(app.host.as_deref(), Some("www.example.test"));
        assert!(!app.https);
    }

    #[test]
    fn what_cannot_go_on_a_command_line_is_refused() {
        assert!(app_probe(true, "SSL_GET { url { path \"/a b\" } }")
            .unwrap_err()
            .contains("one word"));
        assert!(app_probe(false, "HTTP_GET { connect_timeout 3 }")
            .unwrap_err()
            .contains("no path"));
        assert!(
            app_probe(false, "HTTP_GET { url { path / status_code 200-299 } }")
                .unwrap_err()
                .contains("status_code")
        );
    }
}
