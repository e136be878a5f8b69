//! The prober: route and neighbour lookup, the packet socket, DR and TUN probes, verdicts.

pub mod session;

use crate::cli::ProbeArgs;

/// Runs `vipcheck probe`; returns the process exit code (0 = up, 1 = down). Never 2..255:
/// keepalived's `misc_dynamic` reads those as "up, weight = code - 2".
pub fn run_cli(args: ProbeArgs) -> i32 {
    let _ = args;
    eprintln!("down: the prober is not written yet");
    1
}
