//! Watch mode: follow the config (and its includes), regenerate, validate, reload.

use crate::cli::WatchArgs;

/// Runs `vipcheck watch`; returns the process exit code.
pub fn run_cli(args: WatchArgs) -> i32 {
    let _ = args;
    eprintln!("vipcheck: watch is not written yet");
    2
}
