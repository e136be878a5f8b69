//! Benchmark (not a test): parse + rewrite plan of a generated ldirectord.cf with 10,000
//! virtual services x 10 real servers. Prints wall time and peak memory, and the time real
//! ldirectord (`ldirectord -d FILE status`, its config reader) takes on the same file.
//!
//! Run: cargo bench --bench ldirectord

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vipcheck::config::ldirectord::{self, OfflineResolver, Services};
use vipcheck::generate::Generator;
use vipcheck::rewrite::{ldirectord::plan, GenerateOptions};

const VIRTUALS: u32 = 10_000;
const REALS: u32 = 10;

/// VIPs from 10.0.0.0/8-style counting inside 198.18.0.0/15 (benchmark space), reals in
/// 192.0.2.0/24; every virtual a DR HTTP service with a negotiate check.
fn config() -> String {
    let mut s = String::from("checktimeout=3\nnegotiatetimeout=10\nautoreload=no\n\n");
    for v in 0..VIRTUALS {
        let (a, b) = (v / 256, v % 256);
        let _ = writeln!(s, "virtual=198.18.{a}.{b}:80");
        for r in 0..REALS {
            let _ = writeln!(s, "\treal=192.0.2.{}:80 gate {}", 10 + r, 1 + r);
        }
        s.push_str("\tservice=http\n\trequest=\"/health\"\n\treceive=\"OK\"\n\tscheduler=wrr\n\tprotocol=tcp\n\tchecktype=negotiate\n\n");
    }
    s
}

/// CPU seconds (user + system) this process has used: steadier than wall time on a
/// shared machine.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Peak resident set size of this process (VmHWM), in MiB.
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let text = config();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.cf");
    std::fs::write(&path, &text).expect("write the config");
    println!(
        "ldirectord.cf: {VIRTUALS} virtuals x {REALS} reals, {} lines, {:.1} MiB",
        text.lines().count(),
        text.len() as f64 / 1048576.0
    );

    let gen = Generator::new(None).expect("templates");
    let opts = GenerateOptions {
        probe_path: "/usr/sbin/vipcheck".into(),
        probe_timeout: Duration::from_secs(2),
        fwmark_vips: BTreeMap::new(),
        templates: None,
        config_id: None,
        output_dir: Some(dir.path().to_path_buf()),
        app_check: false,
    };
    let resolver = OfflineResolver {
        services: Services::parse("http 80/tcp www\n"),
        ..Default::default()
    };
    let (start, cpu0) = (Instant::now(), cpu_secs());
    let doc = ldirectord::parse_str(path.clone(), text.clone(), &resolver).expect("parses");
    let (parsed, cpu1) = (start.elapsed(), cpu_secs());
    let plan = plan(&doc, &gen, &opts).expect("plans");
    let (total, cpu2) = (start.elapsed(), cpu_secs());
    assert_eq!(plan.edits.len(), VIRTUALS as usize);
    println!(
        "vipcheck parse: {:.3} s wall ({:.3} s CPU), parse + rewrite plan: {:.3} s wall ({:.3} s CPU) \
         ({} edits, {} wrappers), peak RSS {:.1} MiB",
        parsed.as_secs_f64(),
        cpu1 - cpu0,
        total.as_secs_f64(),
        cpu2 - cpu0,
        plan.edits.len(),
        plan.new_files.len(),
        peak_mib().unwrap_or(f64::NAN)
    );

    let ldirectord = Path::new("/usr/sbin/ldirectord");
    if ldirectord.exists() {
        let start = Instant::now();
        // /usr/bin/time (Debian package "time") adds the CPU seconds when it is there.
        let timed = Path::new("/usr/bin/time").exists();
        let mut cmd = if timed {
            let mut c = Command::new("/usr/bin/time");
            c.args(["-f", "%U %S"]).arg(ldirectord);
            c
        } else {
            Command::new(ldirectord)
        };
        let status = cmd
            .arg("-d")
            .arg(&path)
            .arg("status")
            .output()
            .expect("ldirectord runs");
        let stderr = String::from_utf8_lossy(&status.stderr);
        let cpu: f64 = stderr
            .lines()
            .last()
            .filter(|_| timed)
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|w| w.parse::<f64>().ok())
                    .sum()
            })
            .unwrap_or(f64::NAN);
        println!(
            "reference: ldirectord -d FILE status: {:.3} s wall ({cpu:.3} s CPU, exit {:?})",
            start.elapsed().as_secs_f64(),
            status.status.code()
        );
    } else {
        println!("reference skipped: /usr/sbin/ldirectord not installed");
    }
}
