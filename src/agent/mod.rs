//! `vipcheck agent`: a resident prober. It reads the config like `status`, probes every
//! DR/TUN pair in this process over shared packet sockets ([`FleetProbe`]), each on its
//! service's interval and spread over it ([`schedule`]), turns the results into verdicts
//! with rise/fall ([`hysteresis`]) and the depool threshold ([`depool`]), and writes each
//! verdict to a file when it changes ([`state`]) for keepalived's `track_file` or
//! ldirectord's check to read. It follows the config with the [`Watcher`] of `watch`
//! (rewriting and reloading the daemon as `watch` does, when asked to), serves
//! `/metrics` and `/status` ([`http`], [`metrics`]) and talks to systemd ([`notify`]).
//!
//! Fail-static: a probe that could not run at all ([`Verdict::own_fault`]: no route or
//! interface, no packet socket, a send refused) changes nothing; the pair keeps its last
//! verdict, the fault is logged and exported, and the shared sockets and cached paths
//! are dropped and rebuilt (at most once a second) so the agent recovers by itself.

pub mod client;
pub mod depool;
pub mod http;
pub mod hysteresis;
pub mod metrics;
pub mod notify;
pub mod schedule;
pub mod state;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::config::{load, Format, ForwardingMethod};
use crate::probe::fleet::{Alarm, Turn};
use crate::probe::request::Request;
use crate::probe::{IcmpMemo, Verdict};
use crate::rewrite::command::{generate_options, resolve_format};
use crate::rewrite::{GenerateOptions, RewriteError};
use crate::status::{outcome, pairs, FleetProbe, Outcome, Pair};
use crate::watch::{
    Priority, Regenerate, Regenerated, Reload, RewriteRegenerator, Validation, WatchInputs, Watcher,
};
use hysteresis::{Health, Thresholds};
use schedule::Schedule;
use state::StateDir;

/// Where `/metrics` and `/status` are served unless `--listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9874";
/// Each probe's time budget unless `--timeout` says otherwise (never above the interval).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// keepalived's `delay_loop` when a virtual_server does not set it.
pub const KEEPALIVED_DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// ldirectord's `checkinterval` default.
pub const LDIRECTORD_DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// The shared sockets and the cached routes and MACs are rebuilt this often (a real
/// server's new MAC or a changed route is seen within this time), and at most once a
/// second after a probe could not run.
const FLEET_REFRESH: Duration = Duration::from_secs(30);
const FAULT_REFRESH: Duration = Duration::from_secs(1);
/// Turns due within this of each other are dispatched together (fewer wake-ups; the
/// spread stays even to within this).
const SLACK: Duration = Duration::from_millis(4);

/// What `vipcheck agent` is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentInputs {
    /// The config, and what `watch` would do with it (`-o` / `--in-place`, `--reload`,
    /// generate options). Without `-o` and `--in-place` the agent only follows the config.
    /// With `ipvs` only its generate options count (`--fwmark-vip`).
    pub watch: WatchInputs,
    /// Take the pairs from the kernel's IPVS table, re-read every [`IPVS_REREAD`].
    pub ipvs: bool,
    pub state_dir: PathBuf,
    pub listen: String,
    pub settings: Settings,
}

/// How the agent probes and judges.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Every service's interval (default: its own `delay_loop` / `checkinterval`).
    pub interval: Option<Duration>,
    pub thresholds: Thresholds,
    /// 0..=1: the share of each service's pairs never reported down (0: off).
    pub depool_threshold: f64,
    pub timeout: Option<Duration>,
    /// At most this many rounds (one real server's pairs each) in flight.
    pub parallel: usize,
    pub allow_arp_answer: bool,
    /// After a failure that has not taken a pair down yet (fewer than `fall` in a row),
    /// its next turn comes this soon (at most its interval): keepalived's
    /// `delay_before_retry`, HAProxy's `fastinter`.
    pub retry_delay: Duration,
    /// See [`crate::probe::fleet::Turn::arp_reask`].
    pub arp_reask: Duration,
}

/// keepalived's default `delay_before_retry`.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// One line to stderr in `watch`'s format (`<N>` priority prefix under journald).
pub fn say(priority: Priority, text: &str) {
    use std::io::Write;
    let text =
        crate::config::diagnostic::escape_control(&text.replace('\n', " "), false).into_owned();
    let line = if std::env::var_os("JOURNAL_STREAM").is_some() {
        format!("<{}>vipcheck agent: {text}", priority as u8)
    } else {
        format!("vipcheck agent: {text}")
    };
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Latency histogram buckets, in seconds (a DR probe on a LAN is well under 1 ms).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A cumulative-bucket histogram for the Prometheus text format.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    pub counts: [u64; LATENCY_BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, secs: f64) {
        for (c, b) in self.counts.iter_mut().zip(LATENCY_BUCKETS) {
            if secs <= b {
                *c += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

/// Everything the agent knows of one pair.
#[derive(Debug, Clone)]
pub struct Record {
    /// Shared with the jobs that probe it (a turn queues no copy of the pair).
    pub pair: Arc<Pair>,
    pub name: String,
    pub interval: Duration,
    pub health: Health,
    /// The verdict reported (the file's content once written): health after the depool
    /// threshold. `None` before the first result.
    pub reported: Option<bool>,
    /// What the file was last written with.
    pub written: Option<bool>,
    /// When the health went down (sequence number), for the depool threshold.
    pub down_since: u64,
    /// Held up by the depool threshold against its health.
    pub held: bool,
    pub last: Option<Outcome>,
    /// The last probe could not run (the agent's own fault), and why.
    pub fault: Option<String>,
    pub last_change: Option<SystemTime>,
    pub flaps: u64,
    pub latency: Histogram,
}

/// Counters of the agent as a whole.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub probes: u64,
    pub faults: u64,
    pub write_errors: u64,
    /// Turns skipped: the schedule's own, plus [`Counters::busy_skips`].
    pub overruns: u64,
    /// Pairs whose turn came while their previous probe was still running.
    pub busy_skips: u64,
    /// Probes per second over the last window.
    pub rate: f64,
    /// From a verdict known to its file renamed.
    pub write_latency: Histogram,
}

/// The agent's state: every pair (in config order) and the counters.
#[derive(Debug)]
pub struct Book {
    /// In config order; a turn reaches its pairs' records by position ([`Slots`]).
    records: Vec<Record>,
    /// Where each pair's record is, by state name.
    by_name: HashMap<String, usize>,
    /// Counts the changes of `records`' order: a position is only good within its
    /// generation.
    generation: u64,
    pub counters: Counters,
    /// Pairs held up by the threshold, per service (what was logged last).
    held: BTreeMap<String, usize>,
    seq: u64,
    state: StateDir,
    thresholds: Thresholds,
    depool_threshold: f64,
}

impl Book {
    /// The records in config order.
    pub fn ordered(&self) -> impl Iterator<Item = &Record> {
        self.records.iter()
    }

    /// How many pairs there are.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record of the pair named `name` (its state name).
    pub fn get(&self, name: &str) -> Option<&Record> {
        self.by_name.get(name).map(|&i| &self.records[i])
    }

    /// Where the pair `slots` names (position `i` of them) is now: its position, or
    /// `None` when it was removed from the config meanwhile.
    fn locate(&self, slots: &Slots, i: usize) -> Option<usize> {
        if slots.generation == self.generation {
            return slots.at.get(i).copied();
        }
        self.by_name.get(slots.names.get(i)?).copied()
    }

    /// Pairs held up by the threshold, per service.
    pub fn held(&self) -> &BTreeMap<String, usize> {
        &self.held
    }

    /// Applies the depool threshold to `service` and writes the verdicts that changed.
    fn settle(&mut self, service: &str, known_at: Instant) {
        let members: Vec<usize> = (0..self.records.len())
            .filter(|&i| self.records[i].pair.service == service)
            .collect();
        self.settle_members(service, &members, known_at);
    }

    /// [`Book::settle`] over `positions`, the pairs of `service` (all of them, or only
    /// the one that changed when there is no threshold: then no pair's verdict depends
    /// on another's).
    fn settle_members(&mut self, service: &str, positions: &[usize], known_at: Instant) {
        let members: Vec<depool::Member> = positions
            .iter()
            .map(|&i| {
                let r = &self.records[i];
                depool::Member {
                    healthy: r.health.state(),
                    down_since: r.down_since,
                }
            })
            .collect();
        let (report, held) = depool::apply(&members, self.depool_threshold);
        let mut held_names = Vec::new();
        for (&i, up) in positions.iter().zip(report) {
            let r = &mut self.records[i];
            let Some(health) = r.health.state() else {
                continue;
            };
            r.held = health != up;
            if r.held {
                held_names.push(format!("{} ({})", r.pair.rip, r.pair.vip));
            }
            if r.reported != Some(up) {
                if r.reported.is_some() {
                    r.flaps += 1;
                }
                r.reported = Some(up);
                r.last_change = Some(SystemTime::now());
                let why = r.last.as_ref().map_or("", |o| o.reason.as_str());
                say(
                    if up {
                        Priority::Notice
                    } else {
                        Priority::Warning
                    },
                    &format!(
                        "{} {} on {}: {}{}",
                        r.name,
                        if up { "up" } else { "down" },
                        r.pair.service,
                        if r.held {
                            "held up by the depool threshold; "
                        } else {
                            ""
                        },
                        if why.is_empty() { "answers" } else { why }
                    ),
                );
            }
            if r.written != r.reported {
                match self.state.write(&r.name, up) {
                    Ok(()) => {
                        r.written = Some(up);
                        self.counters
                            .write_latency
                            .observe(known_at.elapsed().as_secs_f64());
                    }
                    Err(e) => {
                        self.counters.write_errors += 1;
                        say(
                            Priority::Error,
                            &format!(
                                "cannot write {}: {e} (tried again on the next result)",
                                self.state.path(&r.name).display()
                            ),
                        );
                    }
                }
            }
        }
        let before = self.held.get(service).copied().unwrap_or(0);
        if held != before {
            if held > 0 {
                say(
                    Priority::Warning,
                    &format!(
                        "depool threshold {}: {service} has too many servers down; {held} of {} \
                         kept up against their checks: {}",
                        self.depool_threshold,
                        positions.len(),
                        held_names.join(", ")
                    ),
                );
                self.held.insert(service.to_string(), held);
            } else {
                say(
                    Priority::Notice,
                    &format!("depool threshold: {service} holds no server up any more"),
                );
                self.held.remove(service);
            }
        }
    }

    /// Counts one probe result for the pair at `at` (see [`Book::locate`]). Gives the
    /// pair's interval when it is failing but not down yet (its next turn then comes
    /// after the retry delay).
    fn record(
        &mut self,
        at: Option<usize>,
        result: Outcome,
        fault: bool,
        known_at: Instant,
    ) -> Option<Duration> {
        self.counters.probes += 1;
        let thresholds = self.thresholds;
        let falling = |r: &Record| {
            (thresholds.fall > 1 && r.health.state() == Some(true) && r.health.pending() > 0)
                .then_some(r.interval)
        };
        let Some(r) = at.and_then(|i| self.records.get_mut(i)) else {
            return None; // removed from the config meanwhile
        };
        if fault {
            self.counters.faults += 1;
            if r.fault.is_none() {
                say(
                    Priority::Error,
                    &format!(
                        "cannot probe {}: {}; keeping its last verdict ({})",
                        r.name,
                        result.reason,
                        match r.reported {
                            Some(true) => "up",
                            Some(false) => "down",
                            None => "none yet",
                        }
                    ),
                );
            }
            r.fault = Some(result.reason);
            return falling(r);
        }
        if r.fault.take().is_some() {
            say(Priority::Notice, &format!("probing {} works again", r.name));
        }
        if let Some(l) = result.latency {
            r.latency.observe(l.as_secs_f64());
        }
        let up = result.up;
        r.last = Some(result);
        let changed = r.health.record(up, thresholds);
        if changed == Some(false) {
            self.seq += 1;
            r.down_since = self.seq;
        }
        let soon = falling(r);
        // Nothing to settle while the health stands and the file holds it.
        if changed.is_some() || r.written != r.reported || r.reported.is_none() {
            let service = r.pair.service.clone();
            if self.depool_threshold > 0.0 {
                self.settle(&service, known_at);
            } else if let Some(i) = at {
                self.settle_members(&service, &[i], known_at);
            }
        }
        soon
    }
}

/// The pairs probed together (one real server and VIP: they share the ICMP echo).
#[derive(Debug, Default)]
struct Plan {
    targets: Vec<Target>,
    schedule: Schedule,
    /// Counts the changes of `targets`: a turn's target index is only good within its
    /// generation.
    generation: u64,
}

/// One real server and VIP: its pairs are probed in one round.
#[derive(Debug)]
struct Target {
    /// The pairs' state names, in config order, and their records' positions.
    slots: Arc<Slots>,
    /// The pairs, in the same order (the records' own).
    pairs: Arc<Vec<Arc<Pair>>>,
    /// The pairs' probe requests, built on the first turn after the pairs or the fleet's
    /// timeout changed (the timeout they were built with comes along).
    requests: Option<(Duration, Requests)>,
    /// A turn of it is queued or running (its next one is skipped meanwhile).
    busy: bool,
    /// Its last turn found every pair up: the next sends every port's SYN with the echo
    /// (its path is no forwarder's; after a failure the ports wait for the echo again,
    /// so a forwarder draws one rate-limited ICMP error a turn, not one per port), and
    /// recent ARP-problem answers stand (`--arp-reask`). See [`Turn::all_up_before`].
    all_up: bool,
}

/// A target's pairs: their state names and where their records are in the [`Book`] of
/// `generation` (a turn looks no name up).
#[derive(Debug)]
struct Slots {
    names: Vec<String>,
    at: Vec<usize>,
    generation: u64,
}

impl Slots {
    fn len(&self) -> usize {
        self.names.len()
    }
}

/// One request per pair of a target, in order (or why it cannot be built).
type Requests = Arc<Vec<Result<Request, String>>>;

/// One target's turn, waiting for a worker.
struct Job {
    /// The target's requests and its pairs' names (a turn builds no request and formats
    /// no name).
    requests: Requests,
    slots: Arc<Slots>,
    memo: IcmpMemo,
    /// See [`Target::all_up`].
    all_up_before: bool,
    target: usize,
    generation: u64,
}

/// The leader's bookkeeping: the watchdog, the status line and the probe rate.
struct Pace {
    notifier: Option<notify::Notifier>,
    last_watchdog: Instant,
    last_status: Option<Instant>,
    /// The start of the rate's window, and the probes counted then.
    window: (Instant, u64),
}

impl Pace {
    fn new(notifier: Option<notify::Notifier>) -> Pace {
        let now = Instant::now();
        Pace {
            notifier,
            last_watchdog: now,
            last_status: None,
            window: (now, 0),
        }
    }

    /// One pass of the leader at `now`: feeds the watchdog (every `watchdog` period),
    /// counts the turns skipped, updates the rate every 10 s and the status line every 5 s.
    /// Gives when the watchdog is to be fed next.
    fn tick(
        &mut self,
        now: Instant,
        watchdog: Option<Duration>,
        skipped: u64,
        overruns: u64,
        book: &mut Book,
    ) -> Option<Instant> {
        if let (Some(n), Some(p)) = (&self.notifier, watchdog) {
            if now.duration_since(self.last_watchdog) >= p {
                n.send("WATCHDOG=1");
                self.last_watchdog = now;
            }
        }
        book.counters.busy_skips += skipped;
        book.counters.overruns = overruns + book.counters.busy_skips;
        if now.duration_since(self.window.0) >= Duration::from_secs(10) {
            let secs = now.duration_since(self.window.0).as_secs_f64();
            book.counters.rate = book.counters.probes.saturating_sub(self.window.1) as f64 / secs;
            self.window = (now, book.counters.probes);
        }
        if let Some(n) = &self.notifier {
            if self
                .last_status
                .map_or(true, |t| now.duration_since(t) >= Duration::from_secs(5))
            {
                n.send(&format!("STATUS={}", metrics::summary(book)));
                self.last_status = Some(now);
            }
        }
        self.notifier
            .as_ref()
            .and(watchdog)
            .map(|p| self.last_watchdog + p)
    }
}

/// What a pool thread does next.
enum Work {
    /// Probe one target's turn.
    Probe(Job),
    /// Lead the schedule ([`Agent::lead`]).
    Lead,
}

/// Work waiting for a pool thread.
#[derive(Default)]
struct Jobs {
    queue: VecDeque<Work>,
    idle: usize,
    threads: usize,
}

/// The running agent, shared by its threads.
pub struct Agent {
    pub book: Mutex<Book>,
    plan: Mutex<Plan>,
    plan_changed: Condvar,
    jobs: Mutex<Jobs>,
    job_ready: Condvar,
    /// The leader's bookkeeping, whichever thread leads.
    pace: Mutex<Pace>,
    fleet: RwLock<Arc<FleetProbe>>,
    fleet_built: Mutex<Instant>,
    refresh: AtomicBool,
    stop: AtomicBool,
    format: Format,
    interval: Option<Duration>,
    timeout: Option<Duration>,
    parallel: usize,
    allow_arp_answer: bool,
    retry_delay: Duration,
    arp_reask: Duration,
    pub started: Instant,
}

impl Agent {
    fn new(inputs: &Settings, format: Format, state: StateDir) -> Agent {
        let timeout = inputs.timeout.unwrap_or(DEFAULT_TIMEOUT);
        Agent {
            book: Mutex::new(Book {
                records: Vec::new(),
                by_name: HashMap::new(),
                generation: 0,
                counters: Counters::default(),
                held: BTreeMap::new(),
                seq: 0,
                state,
                thresholds: inputs.thresholds,
                depool_threshold: inputs.depool_threshold,
            }),
            plan: Mutex::default(),
            plan_changed: Condvar::new(),
            jobs: Mutex::default(),
            job_ready: Condvar::new(),
            pace: Mutex::new(Pace::new(None)),
            fleet: RwLock::new(Arc::new(FleetProbe::new(timeout, inputs.allow_arp_answer))),
            // Built again on the scheduler's first turn, with the pairs' timeout.
            fleet_built: Mutex::new(
                Instant::now()
                    .checked_sub(FLEET_REFRESH)
                    .unwrap_or_else(Instant::now),
            ),
            refresh: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            format,
            interval: inputs.interval,
            timeout: inputs.timeout,
            parallel: inputs.parallel.max(1),
            allow_arp_answer: inputs.allow_arp_answer,
            retry_delay: inputs.retry_delay,
            arp_reask: inputs.arp_reask,
            started: Instant::now(),
        }
    }

    /// A pair's interval: `--interval`, else its service's, else the daemon's default.
    fn interval_of(&self, pair: &Pair) -> Duration {
        self.interval
            .or(pair.interval)
            .unwrap_or(match self.format {
                Format::Keepalived => KEEPALIVED_DEFAULT_INTERVAL,
                Format::Ldirectord => LDIRECTORD_DEFAULT_INTERVAL,
            })
    }

    /// Takes the config's pairs: new ones start probing, removed ones lose their files.
    pub fn set_pairs(&self, new: Vec<Pair>) {
        let now = Instant::now();
        let mut seen = std::collections::HashSet::new();
        let new: Vec<Pair> = new
            .into_iter()
            .filter(|p| seen.insert(p.state_name()))
            .collect();
        let Ok(mut book) = self.book.lock() else {
            return;
        };
        let names: Vec<String> = new.iter().map(Pair::state_name).collect();
        let gone: Vec<String> = book
            .records
            .iter()
            .filter(|r| !seen.contains(&r.name))
            .map(|r| r.name.clone())
            .collect();
        for name in &gone {
            if let Err(e) = book.state.remove(name) {
                say(
                    Priority::Error,
                    &format!("cannot remove {}: {e}", book.state.path(name).display()),
                );
            }
        }
        let mut added = 0;
        // The records' own pairs, also the targets' (a turn then looks none up).
        let mut shared = Vec::with_capacity(new.len());
        let mut old: HashMap<String, Record> = std::mem::take(&mut book.records)
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        for (pair, name) in new.iter().zip(&names) {
            let interval = self.interval_of(pair);
            let pair = Arc::new(pair.clone());
            shared.push(pair.clone());
            let record = match old.remove(name) {
                Some(r) => Record {
                    pair,
                    interval,
                    ..r
                },
                None => {
                    added += 1;
                    Record {
                        pair,
                        name: name.clone(),
                        interval,
                        health: Health::default(),
                        reported: None,
                        written: None,
                        down_since: 0,
                        held: false,
                        last: None,
                        fault: None,
                        last_change: None,
                        flaps: 0,
                        latency: Histogram::default(),
                    }
                }
            };
            book.records.push(record);
        }
        book.by_name = names.iter().cloned().zip(0..).collect();
        book.generation += 1;
        let generation = book.generation;
        let services: std::collections::BTreeSet<String> =
            new.iter().map(|p| p.service.clone()).collect();
        book.held.retain(|s, _| services.contains(s));
        for s in &services {
            book.settle(s, now);
        }
        if added > 0 || !gone.is_empty() {
            say(
                Priority::Info,
                &format!(
                    "{} pairs ({added} new, {} removed)",
                    names.len(),
                    gone.len()
                ),
            );
        }
        drop(book);
        // One target per real server, VIP, method and interval, in config order.
        let mut keyed: Vec<(TargetKey, Slots, Vec<Arc<Pair>>)> = Vec::new();
        for ((name, pair), at) in names.into_iter().zip(shared).zip(0..) {
            let key = (pair.vip, pair.rip, pair.method, self.interval_of(&pair));
            match keyed.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, n, p)) => {
                    n.names.push(name);
                    n.at.push(at);
                    p.push(pair);
                }
                None => keyed.push((
                    key,
                    Slots {
                        names: vec![name],
                        at: vec![at],
                        generation,
                    },
                    vec![pair],
                )),
            }
        }
        let intervals: Vec<Duration> = keyed.iter().map(|(k, _, _)| k.3).collect();
        let targets: Vec<Target> = keyed
            .into_iter()
            .map(|(_, names, pairs)| Target {
                slots: Arc::new(names),
                pairs: Arc::new(pairs),
                requests: None,
                busy: false,
                all_up: false,
            })
            .collect();
        let changed = match self.plan.lock() {
            // The same targets keep their turns and busy flags (a pass that changed
            // nothing) and take the new pairs (a pair's other settings may have changed).
            Ok(mut plan)
                if plan.targets.len() == targets.len()
                    && plan
                        .targets
                        .iter()
                        .zip(&targets)
                        .all(|(a, b)| a.slots.names == b.slots.names)
                    && plan.schedule.intervals() == intervals =>
            {
                for (old, new) in plan.targets.iter_mut().zip(targets) {
                    old.slots = new.slots;
                    old.pairs = new.pairs;
                    old.requests = None;
                }
                false
            }
            Ok(mut plan) => {
                plan.schedule = Schedule::new(&intervals, now);
                plan.targets = targets;
                plan.generation += 1;
                true
            }
            Err(_) => false,
        };
        // New targets, or a new shortest interval (the probe timeout never exceeds it):
        // fresh sockets and caches. A pass that changed nothing (every `agent --ipvs`
        // re-read of an unchanged table) keeps them.
        if changed {
            self.refresh.store(true, Ordering::Relaxed);
            self.plan_changed.notify_all();
        }
    }

    /// The probe budget: `--timeout` (default 1 s), at most the shortest interval.
    fn probe_timeout(&self) -> Duration {
        let shortest = self
            .book
            .lock()
            .ok()
            .and_then(|b| b.records.iter().map(|r| r.interval).min());
        let t = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        match shortest {
            Some(s) => t.min(s).max(Duration::from_millis(1)),
            None => t,
        }
    }

    /// Builds new shared sockets and caches when asked to (a fault, new pairs) or when
    /// [`FLEET_REFRESH`] has passed; the old ones close once their probes end.
    fn maybe_refresh_fleet(&self) {
        let Ok(mut built) = self.fleet_built.lock() else {
            return;
        };
        let asked = self.refresh.load(Ordering::Relaxed) && built.elapsed() >= FAULT_REFRESH;
        if !asked && built.elapsed() < FLEET_REFRESH {
            return;
        }
        self.refresh.store(false, Ordering::Relaxed);
        *built = Instant::now();
        let fresh = Arc::new(FleetProbe::new(self.probe_timeout(), self.allow_arp_answer));
        // The old sockets close when the last probe still running on them ends.
        if let Ok(mut f) = self.fleet.write() {
            *f = fresh;
        }
    }

    /// Probes one target's pairs (one real server and VIP) in one round where they can
    /// share it ([`crate::probe::fleet::Fleet::probe_many`]), and counts the results.
    fn probe_target(&self, job: &Job, alarm: Option<&Arc<Alarm>>) {
        let (built, memo) = (&job.requests, &job.memo);
        let fleet = match self.fleet.read() {
            Ok(f) => f.clone(),
            Err(_) => return,
        };
        let start = Instant::now();
        let reqs: Vec<&Request> = built.iter().filter_map(|r| r.as_ref().ok()).collect();
        let mut probed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let turn = Turn {
                alarm: alarm.cloned(),
                all_up_before: job.all_up_before,
                arp_reask: self.arp_reask,
            };
            fleet.fleet.probe_many(&reqs, start, memo, &turn)
        }))
        .unwrap_or_else(|_| {
            vec![
                Verdict::cannot_probe("internal error in vipcheck (a bug: please report it)");
                reqs.len()
            ]
        })
        .into_iter();
        let verdicts: Vec<Verdict> = built
            .iter()
            .map(|r| match r {
                Ok(_) => probed
                    .next()
                    .unwrap_or_else(|| Verdict::cannot_probe("no check was run")),
                Err(e) => Verdict::failed(format!("cannot build the probe: {e}")),
            })
            .collect();
        let known_at = Instant::now();
        if verdicts.iter().any(|v| v.own_fault) {
            self.refresh.store(true, Ordering::Relaxed);
        }
        let results = verdicts.iter().map(|v| (outcome(v), v.own_fault)).collect();
        self.take_results(job, results, known_at);
    }

    /// Counts a turn's results (one per pair of the job, in order). A pair that failed
    /// but is not down yet brings its target's next turn forward to the retry delay.
    fn take_results(&self, job: &Job, results: Vec<(Outcome, bool)>, known_at: Instant) {
        let mut retry: Option<Duration> = None;
        let all_up = results.iter().all(|(r, fault)| r.up && !fault);
        if let Ok(mut book) = self.book.lock() {
            for (i, (result, fault)) in results.into_iter().enumerate() {
                // Failing, not down yet: the next turn comes after the retry delay.
                let at = book.locate(&job.slots, i);
                if let Some(interval) = book.record(at, result, fault, known_at) {
                    let soon = self.retry_delay.min(interval);
                    retry = Some(retry.map_or(soon, |d| d.min(soon)));
                }
            }
        }
        if let Ok(mut plan) = self.plan.lock() {
            if plan.generation == job.generation {
                if let Some(t) = plan.targets.get_mut(job.target) {
                    t.busy = false;
                    t.all_up = all_up;
                }
                if let Some(delay) = retry {
                    plan.schedule.expedite(job.target, known_at + delay);
                }
            }
        }
        if retry.is_some() {
            self.plan_changed.notify_all();
        }
    }

    /// Queues work for the pool, starting a thread when none is idle (at most
    /// `--parallel` probing, plus the leader).
    fn enqueue(self: &Arc<Self>, work: Work) {
        let Ok(mut jobs) = self.jobs.lock() else {
            return;
        };
        jobs.queue.push_back(work);
        if jobs.idle == 0 && jobs.threads < self.parallel + 1 {
            jobs.threads += 1;
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("vipcheck-probe".into())
                .spawn(move || me.work());
            if spawned.is_err() {
                jobs.threads -= 1;
            }
        }
        drop(jobs);
        self.job_ready.notify_one();
    }

    /// A pool thread: takes queued work until the agent stops.
    fn work(self: &Arc<Self>) {
        loop {
            let work = {
                let Ok(mut jobs) = self.jobs.lock() else {
                    return;
                };
                loop {
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Some(w) = jobs.queue.pop_front() {
                        break w;
                    }
                    jobs.idle += 1;
                    jobs = match self.job_ready.wait(jobs) {
                        Ok(j) => j,
                        Err(_) => return,
                    };
                    jobs.idle -= 1;
                }
            };
            match work {
                Work::Probe(job) => self.probe_target(&job, None),
                Work::Lead => self.lead(),
            }
        }
    }

    /// The turns due by `now` (within [`SLACK`]), each a job of its target's pairs unless
    /// the target's last turn is still queued or running: then it is skipped, and its
    /// pairs are counted. Also gives when the next turn is due and the schedule's own
    /// overruns. `None` if the plan's lock is poisoned.
    fn due_jobs(&self, now: Instant) -> Option<(Vec<Job>, u64, Option<Instant>, u64)> {
        let fleet = self.fleet.read().ok()?.clone();
        let mut plan = self.plan.lock().ok()?;
        let mut jobs = Vec::new();
        let mut skipped = 0u64;
        for target in plan.schedule.take_due(now + SLACK) {
            let Some(t) = plan.targets.get_mut(target) else {
                continue;
            };
            if t.busy {
                skipped += t.slots.len() as u64;
                continue;
            }
            t.busy = true;
            let requests = match &t.requests {
                Some((timeout, r)) if *timeout == fleet.timeout => r.clone(),
                _ => {
                    let r: Requests = Arc::new(t.pairs.iter().map(|p| fleet.request(p)).collect());
                    t.requests = Some((fleet.timeout, r.clone()));
                    r
                }
            };
            jobs.push(Job {
                requests,
                slots: t.slots.clone(),
                memo: IcmpMemo::default(),
                all_up_before: t.all_up,
                target,
                generation: plan.generation,
            });
        }
        Some((
            jobs,
            skipped,
            plan.schedule.next_due(),
            plan.schedule.overruns,
        ))
    }

    /// Leads the schedule: sleeps until the next turn and runs it on this thread (no
    /// hand-over to another thread per turn); turns due at once beside it go to the pool.
    /// With the next turn close, the round's own sleep until it is the turn's only wait
    /// ([`crate::probe::fleet::PACED_READ`]).
    /// If a round is still waiting for replies when the next turn comes (or the
    /// watchdog's next feed), its alarm hands the lead to a pool thread and this one
    /// returns once the round is done. Also refreshes the fleet and feeds the watchdog
    /// and the status line. Returns at stop.
    fn lead(self: &Arc<Self>) {
        let watchdog = notify::watchdog_period();
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            self.maybe_refresh_fleet();
            let Some((mut jobs, skipped, next, overruns)) = self.due_jobs(now) else {
                return;
            };
            let mut feed = None;
            if let (Ok(mut pace), Ok(mut book)) = (self.pace.lock(), self.book.lock()) {
                feed = pace.tick(now, watchdog, skipped, overruns, &mut book);
            }
            let mine = (!jobs.is_empty()).then(|| jobs.remove(0));
            for j in jobs {
                self.enqueue(Work::Probe(j));
            }
            if let Some(job) = mine {
                // The next turn, or the watchdog's next feed if sooner: a long round must
                // not starve systemd's watchdog either.
                let alarm = [next, feed].into_iter().flatten().min().map(|at| {
                    let me = self.clone();
                    Arc::new(Alarm::new(at, move || me.enqueue(Work::Lead)))
                });
                self.probe_target(&job, alarm.as_ref());
                // Rung: another thread leads now.
                if alarm.is_some_and(|a| a.rung()) {
                    return;
                }
                continue;
            }
            let mut wait = Duration::from_millis(500);
            if let Some(n) = next {
                wait = wait.min(n.saturating_duration_since(Instant::now()));
            }
            if let Some(p) = watchdog {
                wait = wait.min(p);
            }
            if wait.is_zero() {
                continue;
            }
            if let Ok(plan) = self.plan.lock() {
                let _ = self.plan_changed.wait_timeout(plan, wait);
            }
        }
    }

    fn shut(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.plan_changed.notify_all();
        self.job_ready.notify_all();
    }
}

type TargetKey = (IpAddr, IpAddr, ForwardingMethod, Duration);

/// The `watch` pass of the agent: rewrite as `watch` does (when asked to), then re-read
/// the pairs and hand them to the agent.
struct Following {
    rewrite: Option<RewriteRegenerator>,
    config: PathBuf,
    format: Format,
    opts: GenerateOptions,
    agent: Arc<Agent>,
    notifier: Option<Arc<notify::Notifier>>,
    ready: bool,
}

impl Regenerate for Following {
    fn regenerate(&mut self) -> Result<Regenerated, RewriteError> {
        let mut done = match &mut self.rewrite {
            Some(r) => r.regenerate()?,
            None => {
                // Only following: what the rewrite would read, nothing written.
                let plan = crate::rewrite::plan(&self.config, self.format, &self.opts)?;
                Regenerated {
                    written: Vec::new(),
                    main_output: self.config.clone(),
                    read_paths: plan.read_paths(),
                    include_patterns: plan.include_patterns.clone(),
                    watch_dirs: plan.watch_dirs(),
                    warnings: plan
                        .warnings
                        .iter()
                        .map(crate::watch::diagnostic_line)
                        .collect(),
                    services: plan.services,
                }
            }
        };
        // The services the plan read: the pairs come from the same parse.
        let services = std::mem::take(&mut done.services);
        self.agent
            .set_pairs(pairs(&services, &self.opts.fwmark_vips));
        if !self.ready {
            self.ready = true;
            if let Some(n) = &self.notifier {
                n.send("READY=1");
            }
        }
        Ok(done)
    }

    fn current_output(&self) -> Option<PathBuf> {
        self.rewrite.as_ref().and_then(|r| r.current_output())
    }
}

/// Runs `vipcheck agent`; returns the exit code: 0 stopped by SIGTERM/SIGINT, 1 the
/// agent could not go on, 2 the config, arguments or listen address are wrong.
pub fn run_cli(inputs: AgentInputs) -> i32 {
    if !(0.0..=1.0).contains(&inputs.settings.depool_threshold) {
        eprintln!(
            "vipcheck: --depool-threshold {} is not a fraction from 0 to 1; hint: e.g. 0.5 \
             keeps at least half of each service up",
            inputs.settings.depool_threshold
        );
        return 2;
    }
    if inputs.ipvs {
        return run_ipvs(inputs);
    }
    let args = &inputs.watch;
    let setup = (|| {
        let format = resolve_format(&args.config, args.generate.format)?;
        let config = crate::watch::absolute(&args.config);
        let opts = generate_options(&args.generate, None)?;
        let loaded = load(&config, format, opts.config_id.clone())?;
        crate::config::check_targets(&loaded.services, &loaded.sources)
            .map_err(RewriteError::Many)?;
        let rewrite = if args.output.is_some() || args.in_place {
            Some(RewriteRegenerator::from_args(
                args.clone(),
                format,
                &config,
            )?)
        } else {
            None
        };
        Ok::<_, RewriteError>((format, config, opts, loaded, rewrite))
    })();
    let (format, config, opts, loaded, rewrite) = match setup {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vipcheck: {e}");
            return 2;
        }
    };
    crate::rewrite::command::print_diagnostics(&loaded.warnings);
    let mut watch_opts = crate::watch::daemon_options(args, format, config.clone());
    if rewrite.is_none() {
        watch_opts.validation = Validation::None;
        watch_opts.reload = Reload::None;
    }
    let running = match Running::start(&inputs, format, pairs(&loaded.services, &opts.fwmark_vips))
    {
        Ok(r) => r,
        Err(code) => return code,
    };
    let agent = running.agent.clone();
    let notifier = running.notifier.clone();
    say(
        Priority::Info,
        &format!(
            "probing {} pairs of {}; verdicts in {}; metrics on http://{}/metrics",
            agent.book.lock().map_or(0, |b| b.len()),
            config.display(),
            inputs.state_dir.display(),
            inputs.listen
        ),
    );
    let following = Following {
        rewrite,
        config,
        format,
        opts,
        agent: agent.clone(),
        notifier: notifier.clone(),
        ready: false,
    };
    let mut logger = crate::watch::Logger::stderr();
    let watcher = Watcher::new(following, watch_opts, Box::new(move |r| logger.log(&r)));
    let stopper = watcher.stopper();
    let handle = match crate::watch::follow_signals(stopper) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("vipcheck: cannot catch SIGTERM/SIGINT/SIGHUP: {e}");
            return 1;
        }
    };
    let code = match watcher.run() {
        Ok(()) => 0,
        Err(e) => {
            say(Priority::Error, &format!("{e}; hint: {}", e.hint()));
            1
        }
    };
    handle.close();
    running.finish();
    code
}

/// The parts every agent runs whatever its pairs come from: the state directory, the
/// listener, the scheduler and the HTTP threads.
struct Running {
    agent: Arc<Agent>,
    scheduler: std::thread::JoinHandle<()>,
    notifier: Option<Arc<notify::Notifier>>,
}

impl Running {
    /// Opens the state directory and the listener and starts probing `first` pairs; the
    /// exit code on failure (2: a bad directory or address, 1: no thread).
    fn start(inputs: &AgentInputs, format: Format, first: Vec<Pair>) -> Result<Running, i32> {
        let state = StateDir::open(&inputs.state_dir).map_err(|e| {
            eprintln!(
                "vipcheck: cannot use the state directory {}: {e}; hint: --state-dir DIR, or \
                 RuntimeDirectory=vipcheck in the unit",
                inputs.state_dir.display()
            );
            2
        })?;
        let listener = TcpListener::bind(&inputs.listen).map_err(|e| {
            eprintln!(
                "vipcheck: cannot listen on {}: {e}; hint: --listen ADDR:PORT",
                inputs.listen
            );
            2
        })?;
        let agent = Arc::new(Agent::new(&inputs.settings, format, state));
        agent.set_pairs(first);
        let notifier = notify::Notifier::from_env().map(Arc::new);
        if let Ok(mut pace) = agent.pace.lock() {
            *pace = Pace::new(notify::Notifier::from_env());
        }
        if let Ok(mut jobs) = agent.jobs.lock() {
            // The first leader, a pool thread once it hands the lead on.
            jobs.threads = 1;
        }
        let scheduler = {
            let agent = agent.clone();
            std::thread::Builder::new()
                .name("vipcheck-probe".into())
                .spawn(move || {
                    agent.lead();
                    agent.work();
                })
        }
        .map_err(|e| {
            eprintln!("vipcheck: cannot start the scheduler: {e}");
            1
        })?;
        {
            let agent = agent.clone();
            let _ = std::thread::Builder::new()
                .name("vipcheck-http".into())
                .spawn(move || http::serve(listener, &agent));
        }
        Ok(Running {
            agent,
            scheduler,
            notifier,
        })
    }

    fn finish(self) {
        if let Some(n) = &self.notifier {
            n.send("STOPPING=1");
        }
        self.agent.shut();
        let _ = self.scheduler.join();
    }
}

/// How often `agent --ipvs` reads the kernel's table again.
pub const IPVS_REREAD: Duration = Duration::from_secs(2);

/// The probe interval of `agent --ipvs` without `--interval` (the table names none).
pub const IPVS_DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// `vipcheck agent --ipvs`: the pairs are every DR/TUN destination of the kernel's IPVS
/// table on its service's VIP (as `status --ipvs`), read again every [`IPVS_REREAD`]:
/// new destinations start probing, removed ones lose their files. A table that cannot be
/// read at start is exit 2 (as `status --ipvs`); later, a failed read keeps the pairs
/// (fail-static) and is logged once until a read succeeds again.
fn run_ipvs(mut inputs: AgentInputs) -> i32 {
    let opts = match generate_options(&inputs.watch.generate, None) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vipcheck: {e}");
            return 2;
        }
    };
    let read = || crate::net::ipvs::read_table(Instant::now() + Duration::from_secs(1));
    let table = match read() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("vipcheck: {e}");
            return 2;
        }
    };
    inputs.settings.interval = inputs.settings.interval.or(Some(IPVS_DEFAULT_INTERVAL));
    let first = crate::status::pairs_from_ipvs(&table, &opts.fwmark_vips);
    let running = match Running::start(&inputs, Format::Keepalived, first) {
        Ok(r) => r,
        Err(code) => return code,
    };
    say(
        Priority::Info,
        &format!(
            "probing {} pairs of the kernel's IPVS table; verdicts in {}; metrics on \
             http://{}/metrics",
            running.agent.book.lock().map_or(0, |b| b.len()),
            inputs.state_dir.display(),
            inputs.listen
        ),
    );
    if let Some(n) = &running.notifier {
        n.send("READY=1");
    }
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT]);
    let mut signals = match signals {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vipcheck: cannot catch SIGTERM/SIGINT: {e}");
            running.finish();
            return 1;
        }
    };
    let handle = signals.handle();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = stop_tx.send(());
        }
    });
    let mut failing = false;
    // Until SIGTERM/SIGINT: each turn waits IPVS_REREAD (or the stop) and reads again.
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(IPVS_REREAD) {
        match read() {
            Ok(t) => {
                if failing {
                    say(Priority::Info, "the IPVS table can be read again");
                    failing = false;
                }
                running
                    .agent
                    .set_pairs(crate::status::pairs_from_ipvs(&t, &opts.fwmark_vips));
            }
            Err(e) if !failing => {
                say(
                    Priority::Error,
                    &format!("{e}; the pairs and their verdicts are kept"),
                );
                failing = true;
            }
            Err(_) => {}
        }
    }
    handle.close();
    running.finish();
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protocol;

    fn pair(host: u8) -> Pair {
        Pair {
            service: "192.0.2.20:80/tcp".into(),
            vip: "192.0.2.20".parse().unwrap(),
            port: Some(80),
            proto: Protocol::Tcp,
            rip: format!("192.0.2.{host}").parse().unwrap(),
            method: ForwardingMethod::DirectRouting,
            config_checks: Vec::new(),
            interval: Some(Duration::from_secs(1)),
            tunnel: Default::default(),
            udp: Default::default(),
        }
    }

    fn result(up: bool) -> Outcome {
        Outcome {
            up,
            reason: if up {
                String::new()
            } else {
                "VIP did not answer".into()
            },
            latency: up.then(|| Duration::from_micros(300)),
        }
    }

    fn agent(dir: &std::path::Path, fall: u32, depool: f64, hosts: &[u8]) -> Agent {
        let inputs = Settings {
            interval: None,
            thresholds: Thresholds { rise: 1, fall },
            depool_threshold: depool,
            timeout: None,
            parallel: 4,
            allow_arp_answer: false,
            retry_delay: DEFAULT_RETRY_DELAY,
            arp_reask: crate::probe::fleet::ARP_REASK,
        };
        let a = Agent::new(&inputs, Format::Keepalived, StateDir::open(dir).unwrap());
        a.set_pairs(hosts.iter().map(|&h| pair(h)).collect());
        a
    }

    /// The job of target `host`'s current turn, as the scheduler would queue it.
    fn job_of(a: &Agent, host: u8) -> Job {
        let plan = a.plan.lock().unwrap();
        let name = pair(host).state_name();
        let target = plan
            .targets
            .iter()
            .position(|t| t.slots.names.contains(&name))
            .unwrap();
        let book = a.book.lock().unwrap();
        let pair = book.get(&name).unwrap().pair.clone();
        let names = Slots {
            at: vec![book.by_name[&name]],
            names: vec![name],
            generation: book.generation,
        };
        drop(book);
        let fleet = a.fleet.read().unwrap().clone();
        Job {
            requests: Arc::new(vec![fleet.request(&pair)]),
            slots: Arc::new(names),
            memo: IcmpMemo::default(),
            all_up_before: false,
            target,
            generation: plan.generation,
        }
    }

    /// When target `target` comes next, as the scheduler would find it.
    fn next_turn(a: &Agent, target: usize) -> Instant {
        let mut s = a.plan.lock().unwrap().schedule.clone();
        for _ in 0..10 {
            let t = s.next_due().unwrap();
            if s.take_due(t).contains(&target) {
                return t;
            }
        }
        panic!("target {target} has no turn");
    }

    /// The scheduler taking the turns due by `at`.
    fn take_turns(a: &Agent, at: Instant) {
        a.plan.lock().unwrap().schedule.take_due(at);
    }

    #[test]
    fn a_failure_short_of_fall_brings_the_next_turn_forward_to_the_retry_delay() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = agent(dir.path(), 3, 0.0, &[11, 12]);
        let retry = Duration::from_millis(200);
        a.retry_delay = retry;
        let now = Instant::now();
        take_turns(&a, now);
        let job = job_of(&a, 11);
        let interval = pair(11).interval.unwrap();
        // Up and passing: the next turn is an interval on.
        a.take_results(&job, vec![(result(true), false)], now);
        assert!(next_turn(&a, job.target) > now + interval / 2);
        // One failure of three: still up, and probed again after the retry delay.
        a.take_results(&job, vec![(result(false), false)], now);
        assert_eq!(file(dir.path(), 11).as_deref(), Some("0\n"));
        assert_eq!(next_turn(&a, job.target), now + retry);
        // The other target keeps its turn.
        let other = job_of(&a, 12).target;
        assert!(next_turn(&a, other) > now + retry);
        // The second failure: the same again.
        take_turns(&a, now + retry);
        a.take_results(&job, vec![(result(false), false)], now + retry);
        assert_eq!(file(dir.path(), 11).as_deref(), Some("0\n"));
        assert_eq!(next_turn(&a, job.target), now + retry * 2);
        // Down at the third (fall 3): no more hurry, the next turn is an interval on.
        take_turns(&a, now + retry * 2);
        a.take_results(&job, vec![(result(false), false)], now + retry * 2);
        assert_eq!(file(dir.path(), 11).as_deref(), Some("1\n"));
        assert_eq!(next_turn(&a, job.target), now + retry * 2 + interval);
    }

    #[test]
    fn a_turn_from_before_the_config_changed_counts_for_its_own_pair_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(dir.path(), 1, 0.0, &[11, 12, 13]);
        let (j12, j13) = (job_of(&a, 12), job_of(&a, 13));
        // 10 comes first and 13 goes while their turns run: 12's record moves from the
        // second place to the third.
        a.set_pairs(vec![pair(10), pair(11), pair(12)]);
        let now = Instant::now();
        a.take_results(&j12, vec![(result(false), false)], now);
        a.take_results(&j13, vec![(result(false), false)], now);
        let book = a.book.lock().unwrap();
        let down: Vec<u8> = [10, 11, 12]
            .into_iter()
            .filter(|&h| book.get(&pair(h).state_name()).unwrap().reported == Some(false))
            .collect();
        assert_eq!(down, vec![12]);
        assert!(book.get(&pair(13).state_name()).is_none());
        assert_eq!(file(dir.path(), 12).as_deref(), Some("1\n"));
        assert_eq!(file(dir.path(), 13), None);
    }

    #[test]
    fn a_target_still_probing_skips_its_turn_and_takes_the_next_once_its_results_are_in() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(dir.path(), 2, 0.0, &[11]);
        let now = Instant::now();
        let interval = pair(11).interval.unwrap();
        let target = job_of(&a, 11).target;
        let turn = next_turn(&a, target);
        // Its turn: one job of its pairs, and the target is busy.
        let (jobs, skipped, _, _) = a.due_jobs(turn).unwrap();
        let job = jobs
            .into_iter()
            .find(|j| j.target == target)
            .expect("its job");
        assert_eq!(skipped, 0);
        assert_eq!(job.slots.names, vec![pair(11).state_name()]);
        assert_eq!(job.requests.len(), 1);
        assert_eq!(job.requests[0].as_ref().unwrap().rip, pair(11).rip);
        // Its next turn comes while the first is still running: skipped and counted.
        let (jobs, skipped, _, _) = a.due_jobs(turn + interval).unwrap();
        assert!(jobs.is_empty());
        assert_eq!(skipped, 1);
        // Its results are in: the turn after runs again.
        a.take_results(&job, vec![(result(true), false)], now);
        let (jobs, skipped, _, _) = a.due_jobs(turn + interval * 2).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].target, target);
        assert_eq!(skipped, 0);
        // ... with the requests of the first turn, not new ones.
        assert!(Arc::ptr_eq(&jobs[0].requests, &job.requests));
    }

    #[test]
    fn a_turn_after_an_all_up_turn_sends_its_ports_at_once_and_after_a_failure_not() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(dir.path(), 2, 0.0, &[11]);
        let target = job_of(&a, 11).target;
        let interval = pair(11).interval.unwrap();
        let turn = next_turn(&a, target);
        let now = Instant::now();
        let mut at = turn;
        let mut next_job = |a: &Agent| {
            let (jobs, _, _, _) = a.due_jobs(at).unwrap();
            at += interval * 3;
            jobs.into_iter().next().expect("its turn")
        };
        // Nothing known yet: the ports wait for the echo.
        let first = next_job(&a);
        assert!(!first.all_up_before);
        a.take_results(&first, vec![(result(true), false)], now);
        let second = next_job(&a);
        assert!(second.all_up_before);
        // A failure: the next turn holds the ports back again.
        a.take_results(&second, vec![(result(false), false)], now);
        let third = next_job(&a);
        assert!(!third.all_up_before);
        a.take_results(&third, vec![(result(true), false)], now);
        // The agent's own fault is no proof of the path either.
        let fourth = next_job(&a);
        assert!(fourth.all_up_before);
        a.take_results(&fourth, vec![(result(true), true)], now);
        assert!(!next_job(&a).all_up_before);
    }

    #[test]
    fn a_pass_builds_the_targets_requests_again_from_its_pairs() {
        use crate::config::model::{Tunnel, TunnelType};
        let dir = tempfile::tempdir().unwrap();
        let tun = |kind| Pair {
            method: ForwardingMethod::Tunnel,
            tunnel: Tunnel {
                kind,
                ..Default::default()
            },
            ..pair(11)
        };
        let a = agent(dir.path(), 2, 0.0, &[]);
        a.set_pairs(vec![tun(TunnelType::Ipip)]);
        let interval = pair(11).interval.unwrap();
        let turn = next_turn(&a, 0);
        let (first, _, _, _) = a.due_jobs(turn).unwrap();
        assert_eq!(
            first[0].requests[0].as_ref().unwrap().tunnel.kind,
            TunnelType::Ipip
        );
        a.take_results(&first[0], vec![(result(true), false)], Instant::now());
        // The same pair (same name, same target) now tunnelled with GRE: a new request.
        a.set_pairs(vec![tun(TunnelType::Gre)]);
        let (next, _, _, _) = a.due_jobs(turn + interval).unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].target, first[0].target);
        assert!(!Arc::ptr_eq(&next[0].requests, &first[0].requests));
        assert_eq!(
            next[0].requests[0].as_ref().unwrap().tunnel.kind,
            TunnelType::Gre
        );
    }

    #[test]
    fn a_turn_of_an_older_plan_moves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(dir.path(), 2, 0.0, &[11, 12]);
        let now = Instant::now();
        take_turns(&a, now);
        let mut job = job_of(&a, 11);
        a.take_results(&job, vec![(result(true), false)], now);
        let booked = next_turn(&a, job.target);
        job.generation += 1;
        a.take_results(&job, vec![(result(false), false)], now);
        assert_eq!(next_turn(&a, job.target), booked);
    }

    fn file(dir: &std::path::Path, host: u8) -> Option<String> {
        std::fs::read_to_string(dir.join(pair(host).state_name())).ok()
    }

    fn feed(a: &Agent, host: u8, up: bool, fault: bool) {
        let mut book = a.book.lock().unwrap();
        let at = book.by_name.get(&pair(host).state_name()).copied();
        book.record(at, result(up), fault, Instant::now());
    }

    #[test]
    fn a_file_appears_with_the_first_result_and_changes_only_with_the_verdict() {
        let tmp = tempfile::tempdir().unwrap();
        let a = agent(tmp.path(), 2, 0.0, &[11]);
        assert_eq!(file(tmp.path(), 11), None);
        feed(&a, 11, true, false);
        assert_eq!(file(tmp.path(), 11).as_deref(), Some("0\n"));
        let ino = |p: &std::path::Path| {
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap())
        };
        let path = tmp.path().join(pair(11).state_name());
        let first = ino(&path);
        feed(&a, 11, true, false);
        feed(&a, 11, false, false);
        // One failure of two: not rewritten (a rename would give a new inode).
        assert_eq!(ino(&path), first);
        feed(&a, 11, false, false);
        assert_eq!(file(tmp.path(), 11).as_deref(), Some("1\n"));
        let book = a.book.lock().unwrap();
        assert_eq!(book.get(&pair(11).state_name()).unwrap().flaps, 1);
        assert_eq!(book.counters.write_latency.count, 2);
    }

    #[test]
    fn the_agent_s_own_faults_change_no_verdict_and_are_counted() {
        let tmp = tempfile::tempdir().unwrap();
        let a = agent(tmp.path(), 1, 0.0, &[11, 12]);
        feed(&a, 11, true, false);
        for _ in 0..5 {
            feed(&a, 11, false, true);
            feed(&a, 12, false, true);
        }
        assert_eq!(file(tmp.path(), 11).as_deref(), Some("0\n"));
        // No verdict yet: no file rather than a guess.
        assert_eq!(file(tmp.path(), 12), None);
        let book = a.book.lock().unwrap();
        assert_eq!(book.counters.faults, 10);
        let text = metrics::render(&book, Duration::from_secs(1));
        assert!(text.contains("\nvipcheck_agent_fail_static 1\n"), "{text}");
        let row = metrics::outcome_of(book.get(&pair(11).state_name()).unwrap());
        assert!(row.up && row.reason.starts_with("cannot probe"), "{row:?}");
        drop(book);
        // Probing works again: results count again.
        feed(&a, 11, false, false);
        assert_eq!(file(tmp.path(), 11).as_deref(), Some("1\n"));
    }

    #[test]
    fn the_threshold_holds_the_latest_failure_up_and_lets_it_go_when_another_recovers() {
        let tmp = tempfile::tempdir().unwrap();
        let a = agent(tmp.path(), 1, 0.5, &[11, 12, 13, 14]);
        for h in [11, 12, 13, 14] {
            feed(&a, h, true, false);
        }
        for h in [11, 12, 13] {
            feed(&a, h, false, false);
        }
        let files = [11, 12, 13, 14].map(|h| file(tmp.path(), h).unwrap());
        assert_eq!(files, ["1\n", "1\n", "0\n", "0\n"]);
        assert_eq!(
            a.book.lock().unwrap().held().get("192.0.2.20:80/tcp"),
            Some(&1)
        );
        // 11 recovers: two up without holding 13 any more.
        feed(&a, 11, true, false);
        let files = [11, 12, 13, 14].map(|h| file(tmp.path(), h).unwrap());
        assert_eq!(files, ["0\n", "1\n", "1\n", "0\n"]);
        assert!(a.book.lock().unwrap().held().is_empty());
    }

    #[test]
    fn removed_pairs_lose_their_files_and_targets_group_a_server_s_ports() {
        let tmp = tempfile::tempdir().unwrap();
        let a = agent(tmp.path(), 1, 0.0, &[11, 12]);
        feed(&a, 11, true, false);
        feed(&a, 12, true, false);
        let mut p81 = pair(11);
        p81.port = Some(81);
        p81.service = "192.0.2.20:81/tcp".into();
        a.set_pairs(vec![pair(11), p81]);
        assert_eq!(file(tmp.path(), 12), None);
        assert_eq!(file(tmp.path(), 11).as_deref(), Some("0\n"));
        let plan = a.plan.lock().unwrap();
        assert_eq!(plan.targets.len(), 1, "{:?}", plan.targets);
        assert_eq!(plan.targets[0].slots.len(), 2);
    }

    #[test]
    fn an_unchanged_pass_keeps_the_sockets_and_a_new_pair_renews_them() {
        let tmp = tempfile::tempdir().unwrap();
        let a = agent(tmp.path(), 1, 0.0, &[11, 12]);
        assert!(
            a.refresh.load(Ordering::Relaxed),
            "the first pairs build the sockets"
        );
        a.refresh.store(false, Ordering::Relaxed);
        // What `agent --ipvs` does every 2 s with an unchanged table.
        a.set_pairs(vec![pair(11), pair(12)]);
        assert!(!a.refresh.load(Ordering::Relaxed));
        a.set_pairs(vec![pair(11), pair(12), pair(13)]);
        assert!(a.refresh.load(Ordering::Relaxed));
    }
}
