//! Measures one command as a whole process tree, for the benchmarks: the wall time to the
//! command's own exit (what keepalived or ldirectord waits for) and the CPU time of the
//! command *and of every process it starts*, background helpers included.
//!
//! The benchmark binary runs itself again as the measuring process (`serve_if_asked`, the
//! first thing its `main` calls). That process makes itself a child subreaper
//! (`prctl(PR_SET_CHILD_SUBREAPER)`), so the processes the command leaves behind when it
//! exits (the probe's socket-release helper, the application check's double-forked session
//! helper) are reparented to it rather than to init. It reaps every one of them, and only
//! then reads `RUSAGE_CHILDREN`, which by then holds the whole tree: a process's children
//! that it waited for itself are in its own figure, the orphans are in the subreaper's. A
//! process of its own keeps the benchmark's other children (`ip`, servers) out of the sum.

#![allow(dead_code)] // each benchmark uses a different part

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The first argument that turns the benchmark binary into the measuring process.
const MEASURE_ARG: &str = "--vipcheck-measure-tree";

/// How a measured command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exit(i32),
    Signal(i32),
    /// Still running at the time limit; killed.
    TimedOut,
}

/// One measured command.
#[derive(Debug, Clone)]
pub struct Measured {
    /// From just before the command was started to its exit.
    pub wall: Duration,
    /// From the same start to the exit of the last process of its tree.
    pub tree_wall: Duration,
    /// User CPU of the command and every descendant.
    pub user: Duration,
    /// System CPU of the command and every descendant.
    pub system: Duration,
    /// User + system CPU of the command itself and the children it waited for, without
    /// the descendants that outlived it (the part a plain wait4 would have seen).
    pub own_cpu: Duration,
    /// The largest peak resident set size of any process of the tree, KiB.
    pub max_rss_kib: i64,
    /// Context switches (voluntary and not) of the command and every descendant.
    pub switches: i64,
    /// Processes reaped by the measuring process: the command and every descendant that
    /// outlived its parent (a descendant its parent waited for is counted in the parent's
    /// figures but not here).
    pub reaped: u32,
    /// Descendants still alive at the time limit, killed.
    pub killed: u32,
    pub end: End,
    pub stdout: String,
    pub stderr: String,
}

impl Measured {
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }

    pub fn success(&self) -> bool {
        self.end == End::Exit(0) && self.killed == 0
    }

    /// "exit 0", "killed by signal 9", "timed out".
    pub fn end_text(&self) -> String {
        match self.end {
            End::Exit(c) => format!("exit {c}"),
            End::Signal(s) => format!("killed by signal {s}"),
            End::TimedOut => "timed out".to_string(),
        }
    }
}

/// Runs `program args` inside the network namespace `netns` (a name from `ip netns`, or
/// none for the current one) in a measuring process of its own, killed after `limit`.
/// Panics when the measuring itself fails (not when the command fails: see `end`).
pub fn measure(netns: Option<&str>, limit: Duration, program: &str, args: &[&str]) -> Measured {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let ns = netns.map_or_else(|| "-".to_string(), |n| format!("/var/run/netns/{n}"));
    let out = Command::new(exe)
        .arg(MEASURE_ARG)
        .arg(limit.as_millis().to_string())
        .arg(ns)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("start the measuring process");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (report, rest) = stdout.split_once('\n').unwrap_or((&stdout, ""));
    parse_report(report, rest, stderr).unwrap_or_else(|| {
        panic!(
            "measuring `{program} {}` failed ({}): {stdout}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn parse_report(report: &str, stdout: &str, stderr: String) -> Option<Measured> {
    let mut words = report.strip_prefix("measured ")?.split(' ');
    let end = match words.next()?.split_once('=')? {
        ("exit", c) => End::Exit(c.parse().ok()?),
        ("signal", s) => End::Signal(s.parse().ok()?),
        ("timeout", _) => End::TimedOut,
        _ => return None,
    };
    let mut field = |name: &str| -> Option<i64> {
        let (k, v) = words.next()?.split_once('=')?;
        if k != name {
            return None;
        }
        v.parse().ok()
    };
    let ns = |v: i64| Duration::from_nanos(v.max(0) as u64);
    let us = |v: i64| Duration::from_micros(v.max(0) as u64);
    Some(Measured {
        wall: ns(field("wall_ns")?),
        tree_wall: ns(field("tree_ns")?),
        user: us(field("user_us")?),
        system: us(field("sys_us")?),
        own_cpu: us(field("own_us")?),
        max_rss_kib: field("maxrss_kib")?,
        switches: field("csw")?,
        reaped: field("reaped")? as u32,
        killed: field("killed")? as u32,
        end,
        stdout: stdout.to_string(),
        stderr,
    })
}

/// When the process was started as the measuring process, measures and exits; otherwise
/// returns at once. Call it first in `main`, before any thread is started.
pub fn serve_if_asked() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().map(OsString::as_os_str) != Some(OsStr::new(MEASURE_ARG)) {
        return;
    }
    let code = match measure_here(&args[1..]) {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&report);
            let _ = out.flush();
            0
        }
        Err(e) => {
            eprintln!("measuring process: {e}");
            3
        }
    };
    std::process::exit(code);
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn children_usage() -> libc::rusage {
    // SAFETY: rusage is plain data; zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_CHILDREN with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru
}

fn micros(t: libc::timeval) -> i64 {
    t.tv_sec * 1_000_000 + t.tv_usec
}

/// The pids of this process's living children, from /proc (for killing stragglers).
fn own_children() -> Vec<libc::pid_t> {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let mut pids = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<libc::pid_t>().ok());
        if ppid == Some(me) {
            pids.push(pid);
        }
    }
    pids
}

extern "C" fn on_alarm(_: libc::c_int) {}

/// Interrupts a blocking waitpid after `after` (zero: disarms).
fn arm_alarm(after: Duration) -> Result<(), String> {
    // SAFETY: a handler that does nothing, installed without SA_RESTART so that waitpid
    // returns EINTR; sigaction is plain data.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut()) != 0 {
            return Err(os_err("sigaction"));
        }
    }
    let tv = libc::timeval {
        tv_sec: after.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(after.subsec_micros() as i32),
    };
    let it = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: tv,
    };
    // SAFETY: a valid itimerval; the old value is not wanted.
    if unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) } != 0 {
        return Err(os_err("setitimer"));
    }
    Ok(())
}

fn measure_here(args: &[OsString]) -> Result<Vec<u8>, String> {
    let [limit, netns, program, rest @ ..] = args else {
        return Err("usage: LIMIT_MS NETNS|- PROGRAM [ARGS...]".into());
    };
    let limit_ms: u64 = limit
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or("the limit is not a number of milliseconds")?;
    let limit = Duration::from_millis(limit_ms);
    // SAFETY: prctl with an integer argument.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(os_err("prctl(PR_SET_CHILD_SUBREAPER)"));
    }
    if netns != "-" {
        let f = File::open(netns).map_err(|e| format!("{}: {e}", netns.to_string_lossy()))?;
        // SAFETY: f is an open namespace file.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(os_err("setns"));
        }
    }
    let mut out = tempfile::tempfile().map_err(|e| format!("temp file: {e}"))?;
    let mut err = tempfile::tempfile().map_err(|e| format!("temp file: {e}"))?;
    let before = children_usage();

    let start = Instant::now();
    let deadline = start + limit;
    let child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(err.try_clone().map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.to_string_lossy()))?;
    let pid = child.id() as libc::pid_t;
    // Reaped below with waitpid, which std's Child does not know about.
    std::mem::forget(child);

    // A pidfd turns readable when the command exits: the wall time is taken then, to the
    // microsecond, with the limit as the poll timeout.
    // SAFETY: pidfd_open on our own child; the result is checked.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if raw < 0 {
        return Err(os_err("pidfd_open"));
    }
    // SAFETY: a fresh descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut exited = false;
    for _ in 0..10_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r > 0 {
            exited = true;
            break;
        }
    }
    // Past the limit (or, in theory, out of poll rounds): killed and counted as timed out.
    let timed_out = !exited;
    if timed_out {
        // SAFETY: our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut status = 0;
    // SAFETY: rusage is plain data; zero is a valid value.
    let mut own: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: our own child; status and own are valid for writes.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut own) } != pid {
        return Err(os_err("wait4"));
    }
    let wall = start.elapsed();
    let end = if timed_out {
        End::TimedOut
    } else if libc::WIFEXITED(status) {
        End::Exit(libc::WEXITSTATUS(status))
    } else {
        End::Signal(libc::WTERMSIG(status))
    };

    // Every descendant that outlived its parent is now ours: reap them all, blocking in
    // waitpid so the last exit is timed exactly, within the same limit (from the
    // command's start); then stragglers are killed and get one more second.
    let mut reaped = 1u32;
    let mut killed = 0u32;
    let mut tree_wall = wall;
    let hard_end = deadline.max(Instant::now()) + Duration::from_secs(1);
    arm_alarm(
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1)),
    )?;
    for _ in 0..100_000 {
        let mut st = 0;
        // SAFETY: any child of ours; st is valid for writes.
        let r = unsafe { libc::waitpid(-1, &mut st, 0) };
        if r > 0 {
            reaped += 1;
            tree_wall = start.elapsed();
            continue;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            // No process of the tree is left.
            Some(libc::ECHILD) => break,
            Some(libc::EINTR) => {}
            _ => return Err(os_err("waitpid")),
        }
        let now = Instant::now();
        if now >= hard_end {
            return Err("descendants still alive after the limit and their kill".into());
        }
        if now >= deadline {
            for p in own_children() {
                // SAFETY: a child of ours, found in /proc just now.
                if unsafe { libc::kill(p, libc::SIGKILL) } == 0 {
                    killed += 1;
                }
            }
        }
        arm_alarm(
            deadline
                .saturating_duration_since(now)
                .max(Duration::from_millis(100)),
        )?;
    }
    arm_alarm(Duration::ZERO)?;
    let after = children_usage();

    let mut stdout = Vec::new();
    out.rewind().map_err(|e| e.to_string())?;
    out.read_to_end(&mut stdout).map_err(|e| e.to_string())?;
    let mut stderr = Vec::new();
    err.rewind().map_err(|e| e.to_string())?;
    err.read_to_end(&mut stderr).map_err(|e| e.to_string())?;
    let _ = std::io::stderr().write_all(&stderr);

    let end_word = match end {
        End::Exit(c) => format!("exit={c}"),
        End::Signal(s) => format!("signal={s}"),
        End::TimedOut => "timeout=1".to_string(),
    };
    let mut report = format!(
        "measured {end_word} wall_ns={} tree_ns={} user_us={} sys_us={} own_us={} \
         maxrss_kib={} csw={} reaped={reaped} killed={killed}\n",
        wall.as_nanos(),
        tree_wall.as_nanos(),
        micros(after.ru_utime) - micros(before.ru_utime),
        micros(after.ru_stime) - micros(before.ru_stime),
        micros(own.ru_utime) + micros(own.ru_stime),
        after.ru_maxrss,
        (after.ru_nvcsw + after.ru_nivcsw) - (before.ru_nvcsw + before.ru_nivcsw),
    )
    .into_bytes();
    report.extend_from_slice(&stdout);
    Ok(report)
}

/// Median of a non-empty list (the upper one of the middle two for an even count).
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// "median 1.23 ms (min 1.01, max 2.34)" over a list of durations.
pub fn spread(v: &[Duration]) -> String {
    let mut s = v.to_vec();
    s.sort();
    format!(
        "median {:.2} ms (min {:.2}, max {:.2})",
        ms(s[s.len() / 2]),
        ms(s[0]),
        ms(s[s.len() - 1])
    )
}

/// One line for a set of runs: wall and CPU spread, the median user/system split, and the
/// largest peak RSS of any one process.
pub fn summary(runs: &[Measured]) -> String {
    let walls: Vec<Duration> = runs.iter().map(|m| m.wall).collect();
    let cpus: Vec<Duration> = runs.iter().map(Measured::cpu).collect();
    let user = median(runs.iter().map(|m| m.user).collect());
    let system = median(runs.iter().map(|m| m.system).collect());
    let rss = runs.iter().map(|m| m.max_rss_kib).max().unwrap_or(0);
    format!(
        "wall {}; CPU (every process) {} (median user {:.0} ms, system {:.0} ms); peak RSS \
         {:.1} MiB",
        spread(&walls),
        spread(&cpus),
        ms(user),
        ms(system),
        rss as f64 / 1024.0
    )
}

/// A count from the environment (`VIPCHECK_BENCH_RUNS` and the like): a positive
/// number, else `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// Prints the load average, `when` being "start" or "end": a figure is only as good as
/// the machine was quiet.
pub fn print_load(when: &str) {
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at {when}: {}", load.trim());
    }
}
