//! Host and service name lookups, as ldirectord does them (getaddrinfo, getservbyname),
//! behind a trait so tests and fuzzing never leave the process.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::OnceLock;

use super::Family;

/// Host and service name lookups, as ldirectord does them (getaddrinfo, getservbyname).
pub trait Resolver {
    /// The first address of `name` in the family; `None` when it does not resolve.
    fn host(&self, name: &str, family: Family) -> Option<IpAddr>;
    /// The port of a service name for `proto` (`tcp`, `udp`, or "" for any).
    fn service(&self, name: &str, proto: &str) -> Option<u16>;
}

/// The system's resolver and `/etc/services`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn host(&self, name: &str, family: Family) -> Option<IpAddr> {
        (name, 0)
            .to_socket_addrs()
            .ok()?
            .map(|sa| sa.ip())
            .find(|ip| family_of(*ip) == family)
    }

    fn service(&self, name: &str, proto: &str) -> Option<u16> {
        static SERVICES: OnceLock<Services> = OnceLock::new();
        SERVICES
            .get_or_init(|| {
                Services::parse(&std::fs::read_to_string("/etc/services").unwrap_or_default())
            })
            .lookup(name, proto)
    }
}

/// A resolver that knows no host names (numeric addresses still work) and the services
/// of a given `/etc/services` text: for tests and fuzzing, where lookups must not leave
/// the process.
#[derive(Debug, Default, Clone)]
pub struct OfflineResolver {
    pub services: Services,
    pub hosts: HashMap<String, IpAddr>,
}

impl Resolver for OfflineResolver {
    fn host(&self, name: &str, family: Family) -> Option<IpAddr> {
        self.hosts
            .get(name)
            .copied()
            .filter(|ip| family_of(*ip) == family)
    }

    fn service(&self, name: &str, proto: &str) -> Option<u16> {
        self.services.lookup(name, proto)
    }
}

/// An `/etc/services` table: `name port/proto aliases...`.
#[derive(Debug, Default, Clone)]
pub struct Services {
    entries: Vec<(String, u16, String)>,
}

impl Services {
    pub fn parse(text: &str) -> Self {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(port_proto)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, proto)) = port_proto.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            for n in std::iter::once(name).chain(words) {
                entries.push((n.to_string(), port, proto.to_string()));
            }
        }
        Services { entries }
    }

    /// The first entry named `name` (or aliased so) for `proto`, any protocol when empty.
    pub fn lookup(&self, name: &str, proto: &str) -> Option<u16> {
        self.entries
            .iter()
            .find(|(n, _, p)| n == name && (proto.is_empty() || p == proto))
            .map(|(_, port, _)| *port)
    }
}

pub(super) fn family_of(ip: IpAddr) -> Family {
    match ip {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}
