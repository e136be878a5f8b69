//! Pure packet formats: build and parse the frames the prober sends and receives.
//! Nothing here touches a socket.
//!
//! Every format follows one pattern: a `Repr` (the fields that matter) with `parse`
//! (checked, for untrusted bytes), `emit` (writes every byte of the header, so a buffer
//! pre-filled with garbage comes out right) and `buffer_len`. Byte ranges live in a
//! private `field` module per format. [`frame`] composes them into whole Ethernet frames.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod frame;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;

use std::fmt;

/// Why a byte slice is not a packet of the expected kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the packet is shorter than its header says")]
    Truncated,
    #[error("a header field has an impossible value")]
    Malformed,
    #[error("the checksum does not match")]
    Checksum,
    #[error("this kind of packet is not handled")]
    Unsupported,
}

pub type Result<T> = std::result::Result<T, WireError>;

/// An Ethernet (EUI-48) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The multicast address an IPv6 packet to `ip` (a multicast address) is sent to.
    pub fn ipv6_multicast(ip: std::net::Ipv6Addr) -> MacAddr {
        let o = ip.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(b).ok().map(MacAddr)
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;

    /// `02:00:5e:00:00:11` (or with `-`), as `ip link` prints it.
    fn from_str(text: &str) -> std::result::Result<MacAddr, String> {
        let bad = || format!("'{text}' is not a MAC address (e.g. 02:00:5e:00:00:11)");
        let parts: Vec<&str> = text.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (m, p) in mac.iter_mut().zip(&parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *m = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(MacAddr(mac))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Reads a big-endian u16 at `at`; callers have checked the length.
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_displays_as_lowercase_colon_hex() {
        assert_eq!(
            MacAddr([0x02, 0, 0, 0xab, 0x0c, 0xff]).to_string(),
            "02:00:00:ab:0c:ff"
        );
    }

    #[test]
    fn ipv6_multicast_mac_keeps_the_low_32_bits() {
        let ip: std::net::Ipv6Addr = "ff02::1:ff00:11".parse().unwrap();
        assert_eq!(
            MacAddr::ipv6_multicast(ip),
            MacAddr([0x33, 0x33, 0xff, 0x00, 0x00, 0x11])
        );
    }
}
