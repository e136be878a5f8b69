//! The director's neighbour cache state a benchmark run starts from, set before every
//! run so that both tools of a comparison start from the same one.

use crate::netns::Netns;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// No entry for the real server: whoever sends first resolves it.
    Cold,
    /// A REACHABLE entry for the real server's address and MAC.
    Warm,
}

impl Cache {
    pub fn label(self) -> &'static str {
        match self {
            Cache::Cold => "cold neighbour cache (entry flushed before every run)",
            Cache::Warm => "warm neighbour cache (REACHABLE entry set before every run)",
        }
    }

    /// Puts the director's (`dir`, interface eth0) entry for `rip` in this state.
    pub fn set(self, dir: &Netns, rip: &str, mac: &str) {
        match self {
            Cache::Cold => {
                dir.ip("neigh flush dev eth0");
            }
            Cache::Warm => {
                dir.ip(&format!(
                    "neigh replace {rip} lladdr {mac} nud reachable dev eth0"
                ));
            }
        }
    }
}
