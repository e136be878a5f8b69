//! vipcheck: prove that an LVS real server really answers on the VIP.
//!
//! Layers, from the bottom: [`config`] (text -> model), [`generate`] (model -> check
//! stanzas from templates), [`rewrite`] (edits -> new texts, diff, atomic writes),
//! [`wire`] (pure packet formats), [`probe`] (sockets, routes, verdicts), [`watch`]
//! (regenerate and reload on change), [`cli`] (argument definitions).

pub mod cli;
pub mod config;
pub mod generate;
pub mod probe;
pub mod rewrite;
pub mod watch;
pub mod wire;
