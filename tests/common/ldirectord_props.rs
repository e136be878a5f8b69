//! Properties every ldirectord rewrite must have, shared by the tests and the fuzz target
//! (which includes this file by path). Each can fail: the rewrite is applied through the
//! production writer ([`Plan::new_text`]), its markers are removed by plain line
//! matching, and the rewritten file is parsed again.

#![allow(dead_code)]

use vipcheck::config::ldirectord::{self, Document, Resolver, MARK_BEGIN, MARK_END};
use vipcheck::rewrite::Plan;

/// `text` with every generated region removed: each line from one whose first non-blank
/// text starts with `# vipcheck:begin` through the next whose starts with
/// `# vipcheck:end`, terminators included.
pub fn without_generated(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if !inside && t.starts_with(MARK_BEGIN) {
            inside = true;
        }
        if !inside {
            out.push_str(line);
        }
        if inside && t.starts_with(MARK_END) {
            inside = false;
        }
    }
    out
}

/// What a parsed document says of its services, without byte positions (which a rewrite
/// moves): one line per virtual, then one per real server.
pub fn shape(doc: &Document) -> Vec<String> {
    let mut out = Vec::new();
    for (v, s) in doc.virtuals.iter().zip(&doc.services) {
        let c = &v.check;
        out.push(format!(
            "{} {:?} {:?} vips={:?} fwmarks={:?} port={:?} {:?} {:?} check={:?} service={} command={} checkport={:?} request={:?} receive={:?} vhost={:?} {} timeouts={:?}/{:?} count={:?}",
            s.key,
            v.family,
            v.protocol,
            s.vips,
            s.fwmarks,
            s.port,
            s.protocol,
            s.method,
            c.checktype,
            c.service,
            c.checkcommand,
            c.checkport,
            c.request,
            c.receive,
            c.virtualhost,
            c.httpmethod,
            c.checktimeout,
            c.negotiatetimeout,
            c.checkcount,
        ));
        for r in &s.real_servers {
            out.push(format!(
                "  real {} port={:?} weight={:?} {:?} checks={:?}",
                r.addr,
                r.port,
                r.weight,
                r.method,
                r.checks
                    .iter()
                    .map(|c| (&c.kind, &c.detail))
                    .collect::<Vec<_>>()
            ));
        }
    }
    out
}

/// The rewrite of `doc` by `plan`, checked: with its generated regions removed it is the
/// original text (when the original held none); parsed again it has the same services,
/// and for each wrapper the plan writes exactly one generated region runs it, closed and
/// last in its block. Returns the rewritten text.
#[track_caller]
pub fn assert_rewrite(doc: &Document, plan: &Plan, resolver: &dyn Resolver) -> String {
    let text = doc.text();
    let out = plan.new_text(doc.file);
    if !text.contains("vipcheck:") {
        let now = without_generated(&out);
        // KNOWN GAP (issue 11, rewrite side): a file without a final newline gets one
        // before the begin marker, outside the region. Tolerated here, and only that, until
        // the rewrite puts it inside; then drop `newline_added`.
        let newline_added = !text.ends_with('\n') && now.strip_suffix('\n') == Some(text);
        assert!(
            now == text || newline_added,
            "bytes changed outside the generated regions:\n{text:?}\n->\n{out:?}"
        );
    } else {
        // Removing a region that held a bare `virtual=` line's only lines up to the end
        // of the file leaves one blank line: ldirectord reads a virtual line that ends the
        // file twice and rejects it.
        let (now, before) = (without_generated(&out), without_generated(text));
        let kept_off_the_end = now.strip_suffix('\n') == Some(before.as_str())
            && before
                .lines()
                .last()
                .is_some_and(|l| l.trim_start().starts_with("virtual"));
        assert!(
            now == before || kept_off_the_end,
            "bytes changed outside the generated regions:\n{text:?}\n->\n{out:?}"
        );
    }
    let again = ldirectord::parse_str(doc.path().to_path_buf(), out.clone(), resolver)
        .unwrap_or_else(|d| panic!("the rewrite does not parse: {d}\n{out}"));
    assert_eq!(
        shape(&again),
        shape(doc),
        "the rewrite changed the services:\n{out}"
    );
    for f in &plan.new_files {
        let name = f
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let runs: Vec<_> = again
            .virtuals
            .iter()
            .filter_map(|v| v.generated.as_ref())
            .filter(|g| {
                let region = again.sources.slice(g.span);
                region.contains("checktype=external") && region.contains(&name)
            })
            .collect();
        assert_eq!(
            runs.len(),
            1,
            "not one generated region runs {name}:\n{text:?}\n->\n{out:?}"
        );
        assert!(
            runs[0].terminated && !runs[0].followed_by_directives,
            "the region running {name} is open or not last:\n{text:?}\n->\n{out:?}"
        );
    }
    out
}

/// The system resolver, each answer remembered: a second parse of the same names (the
/// rewritten file) asks nothing more of the network than the first did.
#[derive(Default)]
pub struct Remembering {
    hosts: std::cell::RefCell<std::collections::HashMap<String, Option<std::net::IpAddr>>>,
}

impl Resolver for Remembering {
    fn host(&self, name: &str, family: ldirectord::Family) -> Option<std::net::IpAddr> {
        let key = format!("{name}/{family:?}");
        if let Some(known) = self.hosts.borrow().get(&key) {
            return *known;
        }
        let found = ldirectord::SystemResolver.host(name, family);
        self.hosts.borrow_mut().insert(key, found);
        found
    }

    fn service(&self, name: &str, proto: &str) -> Option<u16> {
        ldirectord::SystemResolver.service(name, proto)
    }
}
