//! What `/metrics` and `/status` say, from the agent's [`Book`]: the Prometheus text
//! format, the same JSON rows as `vipcheck status --json`, and the one-line summary for
//! `systemctl status`.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::{Book, Histogram, Record, LATENCY_BUCKETS};
use crate::status::{render_json, Outcome, Pair};

/// `N pairs: U up, D down, ...` for systemd's STATUS=.
pub fn summary(book: &Book) -> String {
    let (mut up, mut down, mut fault, mut unknown) = (0, 0, 0, 0);
    for r in book.ordered() {
        match r.reported {
            Some(true) => up += 1,
            Some(false) => down += 1,
            None => unknown += 1,
        }
        if r.fault.is_some() {
            fault += 1;
        }
    }
    let held: usize = book.held().values().sum();
    let mut s = format!("{} pairs: {up} up, {down} down", book.len());
    if unknown > 0 {
        let _ = write!(s, ", {unknown} not probed yet");
    }
    if held > 0 {
        let _ = write!(s, ", {held} held up by the depool threshold");
    }
    if fault > 0 {
        let _ = write!(s, ", {fault} cannot be probed (last verdicts kept)");
    }
    s
}

/// The row `/status` shows for a record: its reported verdict, and why.
pub fn outcome_of(r: &Record) -> Outcome {
    let last = r.last.clone();
    let mut reason = match (&last, r.reported) {
        (_, None) => "not probed yet".to_string(),
        (Some(o), _) => o.reason.clone(),
        (None, Some(_)) => String::new(),
    };
    if r.held {
        reason = format!("held up by the depool threshold: {reason}");
    }
    if r.health.pending() > 0 {
        let _ = write!(reason, " ({} against it in a row)", r.health.pending());
    }
    if let Some(f) = &r.fault {
        reason = format!("cannot probe ({f}); last verdict kept: {reason}");
    }
    Outcome {
        up: r.reported == Some(true),
        reason: reason.trim().to_string(),
        latency: last.and_then(|o| o.latency),
    }
}

/// `/status`: the rows of `vipcheck status --json`, one per pair in config order.
pub fn status_json(book: &Book) -> String {
    let (pairs, outcomes): (Vec<Pair>, Vec<Outcome>) = book
        .ordered()
        .map(|r| (Pair::clone(&r.pair), outcome_of(r)))
        .unzip();
    render_json(&pairs, &outcomes)
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(p: &Pair) -> String {
    format!(
        "service=\"{}\",vip=\"{}\",port=\"{}\",proto=\"{}\",real=\"{}\",method=\"{}\"",
        escape(&p.service),
        p.vip,
        p.port.map_or(String::new(), |x| x.to_string()),
        p.proto,
        p.rip,
        p.method.probe_arg()
    )
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (b, c) in LATENCY_BUCKETS.iter().zip(h.counts) {
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {:.9}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// CPU seconds of this process (every thread) and of its waited-for children.
pub fn cpu_seconds() -> f64 {
    let of = |who| {
        // SAFETY: getrusage fills the struct we own.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut u) } != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(u.ru_utime) + tv(u.ru_stime)
    };
    of(libc::RUSAGE_SELF) + of(libc::RUSAGE_CHILDREN)
}

/// The resident set of this process, in bytes.
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// `/metrics` in the Prometheus text format.
pub fn render(book: &Book, uptime: Duration) -> String {
    let mut out = String::new();
    let rows: Vec<(&Record, String)> = book.ordered().map(|r| (r, labels(&r.pair))).collect();
    head(
        &mut out,
        "vipcheck_agent_pair_up",
        "gauge",
        "The verdict in the pair's state file: 1 up, 0 down (absent before the first result).",
    );
    for (r, l) in &rows {
        if let Some(up) = r.reported {
            let _ = writeln!(out, "vipcheck_agent_pair_up{{{l}}} {}", u8::from(up));
        }
    }
    head(
        &mut out,
        "vipcheck_agent_pair_healthy",
        "gauge",
        "The pair's health after rise/fall, before the depool threshold.",
    );
    for (r, l) in &rows {
        if let Some(up) = r.health.state() {
            let _ = writeln!(out, "vipcheck_agent_pair_healthy{{{l}}} {}", u8::from(up));
        }
    }
    head(
        &mut out,
        "vipcheck_agent_pair_probe_fault",
        "gauge",
        "1 when the last probe of the pair could not run (the agent's fault; verdict kept).",
    );
    for (r, l) in &rows {
        let _ = writeln!(
            out,
            "vipcheck_agent_pair_probe_fault{{{l}}} {}",
            u8::from(r.fault.is_some())
        );
    }
    head(
        &mut out,
        "vipcheck_agent_pair_last_change_timestamp_seconds",
        "gauge",
        "When the pair's reported verdict last changed (Unix time).",
    );
    for (r, l) in &rows {
        if let Some(t) = r.last_change {
            let secs = t
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            let _ = writeln!(
                out,
                "vipcheck_agent_pair_last_change_timestamp_seconds{{{l}}} {secs:.3}"
            );
        }
    }
    head(
        &mut out,
        "vipcheck_agent_pair_flaps_total",
        "counter",
        "Changes of the pair's reported verdict since the agent started.",
    );
    for (r, l) in &rows {
        let _ = writeln!(out, "vipcheck_agent_pair_flaps_total{{{l}}} {}", r.flaps);
    }
    head(
        &mut out,
        "vipcheck_agent_probe_latency_seconds",
        "histogram",
        "Round trip of the VIP probes through the real server (answers only).",
    );
    for (r, l) in &rows {
        histogram(
            &mut out,
            "vipcheck_agent_probe_latency_seconds",
            l,
            &r.latency,
        );
    }
    // Per service, in config order.
    let mut services: Vec<(&str, usize, usize)> = Vec::new();
    for (r, _) in &rows {
        let up = usize::from(r.reported == Some(true));
        match services.iter_mut().find(|(s, ..)| *s == r.pair.service) {
            Some((_, u, t)) => {
                *u += up;
                *t += 1;
            }
            None => services.push((&r.pair.service, up, 1)),
        }
    }
    head(
        &mut out,
        "vipcheck_agent_service_pairs_up",
        "gauge",
        "Pairs of the virtual service reported up.",
    );
    for (s, up, _) in &services {
        let _ = writeln!(
            out,
            "vipcheck_agent_service_pairs_up{{service=\"{}\"}} {up}",
            escape(s)
        );
    }
    head(
        &mut out,
        "vipcheck_agent_service_pairs",
        "gauge",
        "Pairs of the virtual service.",
    );
    for (s, _, total) in &services {
        let _ = writeln!(
            out,
            "vipcheck_agent_service_pairs{{service=\"{}\"}} {total}",
            escape(s)
        );
    }
    head(
        &mut out,
        "vipcheck_agent_service_depool_held",
        "gauge",
        "Pairs of the service reported up against their checks by the depool threshold.",
    );
    for (s, ..) in &services {
        let held = book.held().get(*s).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "vipcheck_agent_service_depool_held{{service=\"{}\"}} {held}",
            escape(s)
        );
    }
    let c = &book.counters;
    let fail_static = rows.iter().any(|(r, _)| r.fault.is_some());
    for (name, kind, help, value) in [
        (
            "vipcheck_agent_probes_total",
            "counter",
            "Probes run.",
            c.probes as f64,
        ),
        (
            "vipcheck_agent_probes_per_second",
            "gauge",
            "Probes per second over the last 10 s.",
            c.rate,
        ),
        (
            "vipcheck_agent_probe_errors_total",
            "counter",
            "Probes that could not run (the agent's own fault: no socket, no route, ...).",
            c.faults as f64,
        ),
        (
            "vipcheck_agent_fail_static",
            "gauge",
            "1 while some pair cannot be probed and keeps its last verdict.",
            f64::from(u8::from(fail_static)),
        ),
        (
            "vipcheck_agent_state_write_errors_total",
            "counter",
            "State files that could not be written.",
            c.write_errors as f64,
        ),
        (
            "vipcheck_agent_schedule_overruns_total",
            "counter",
            "Turns skipped because the pair's previous probe was still running.",
            c.overruns as f64,
        ),
        (
            "vipcheck_agent_cpu_seconds_total",
            "counter",
            "CPU time of the agent (every thread) and its children (reloads).",
            cpu_seconds(),
        ),
        (
            "vipcheck_agent_resident_memory_bytes",
            "gauge",
            "Resident memory of the agent.",
            resident_bytes() as f64,
        ),
        (
            "vipcheck_agent_uptime_seconds",
            "gauge",
            "Time since the agent started.",
            uptime.as_secs_f64(),
        ),
    ] {
        head(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    head(
        &mut out,
        "vipcheck_agent_state_write_seconds",
        "histogram",
        "From a verdict change known to its state file renamed.",
    );
    histogram(
        &mut out,
        "vipcheck_agent_state_write_seconds",
        "",
        &c.write_latency,
    );
    out
}
