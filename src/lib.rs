//! vipcheck: prove that an LVS real server really answers on the VIP.
//!
//! Layers, from the bottom: [`config`] (text -> model), [`generate`] (model -> check
//! stanzas from templates), [`rewrite`] (edits -> new texts, diff, atomic writes),
//! [`wire`] (pure packet formats), [`net`] (the packet socket and the path to a real
//! server), [`probe`] (routes, checks, verdicts), [`status`] (every pair at once),
//! [`watch`] (regenerate and reload on change), [`agent`] (the resident prober),
//! [`duration`] (the one duration syntax),
//! and on top [`cli`]: the argument definitions, converted there into each module's own
//! types. Nothing below [`cli`] imports it (tests/layering.rs checks).

// A located Diagnostic (path, source line) is large; it is only ever built on the way out
// with an error, so boxing it everywhere would buy nothing.
#![allow(clippy::result_large_err)]

pub mod agent;
pub mod cli;
pub mod config;
pub mod duration;
pub mod generate;
pub mod net;
pub mod probe;
pub mod rewrite;
pub mod status;
pub mod watch;
pub mod wire;
