//! The one test support module: every integration test target that needs shared
//! scaffolding declares `mod common;` (and never a second module that includes these
//! files again; clippy's `duplicate_mod`).
//!
//! - [`netns`]: network namespaces, a bridge, veth links and cables, processes and
//!   threads inside a namespace, a relay that drops or delays frames; removed on drop.
//! - [`topo`]: director and real-server topologies by scenario (good, no VIP, no listener,
//!   forwarder, ARP-answering, VIP on eth0, hardened, moved; IPv4 and IPv6).
//! - [`fixtures`] (re-exported here): fixture paths, the corpus, machine-independent text.
//! - [`keepalived`]: the keepalived rewrite fixtures and every input the real keepalived
//!   accepts (fixtures, Debian's samples, the corpus).
//! - [`ldirectord_props`]: properties every ldirectord rewrite must have (the fuzz target
//!   includes that file by path too).
//! - [`skip`]: the one skip rule (`skipped: <why>`, or a failure under
//!   `VIPCHECK_REQUIRE_PRIVILEGED=1`), declared inside `netns` so the benches that include
//!   `netns.rs` alone by `#[path]` have it too.
//!
//! There is no second support module: `tests/support/` was folded in here. The only
//! other shared test modules are domain ones that never include these files:
//! `tests/watch_support/` (watch stand-ins, beside `mod common;`) and
//! `tests/guest/harness.rs` (the qemu guest; includes `skip.rs` alone by path).

#![allow(dead_code)]

pub mod fixtures;
pub mod keepalived;
pub mod ldirectord_props;
pub mod netns;
pub mod topo;

#[allow(unused_imports)]
pub use fixtures::*;

/// tests/common/skip.rs, the one skip rule (declared inside `netns`, see there).
pub use netns::skip;

#[allow(unused_imports)]
pub use skip::{require, root, skip, tool, tools, which};

/// Runs a program this test has just written (a generated wrapper, a stub) and waits for
/// its output. Another test thread forking at the moment the file was open for writing
/// holds that descriptor until its child execs, and the kernel refuses to run a file
/// open for writing (ETXTBSY): that case is retried, 100 times at most, 10 ms apart.
pub fn output_fresh(cmd: &mut std::process::Command) -> std::process::Output {
    const ETXTBSY: i32 = 26;
    for _ in 0..100 {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("cannot run {cmd:?}: {e}"),
            Ok(out) => return out,
        }
    }
    panic!("cannot run {cmd:?}: still busy (ETXTBSY) after 1 s");
}
