//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod netns;

/// tests/common/skip.rs, the one skip rule (declared inside `netns`, see there).
pub use netns::skip;

#[allow(unused_imports)]
pub use skip::{require, skip};
