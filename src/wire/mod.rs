//! Pure packet formats: build and parse the frames the prober and the application check
//! send and receive. Nothing here touches a socket, and nothing imports the rest of the
//! project.
//!
//! Every format follows one pattern: a `Repr` (the fields that matter) with `parse`
//! (checked, for untrusted bytes), `emit` (writes every byte of the header, so a buffer
//! pre-filled with garbage comes out right) and `buffer_len`. [`frame`] composes them into
//! whole Ethernet frames; [`ipip`] is the one function per encapsulation.
//!
//! The bytes are read and written through pnet's packet types (`pnet_packet`:
//! `EthernetPacket`, `ArpPacket`, `Ipv4Packet`, `Ipv6Packet`, `IcmpPacket` and its echo,
//! unreachable and time-exceeded views, `Icmpv6Packet` with its echo and NDP views,
//! `TcpPacket`) and its checksum functions. What stays ours, and why:
//! - The `Repr`s themselves: pnet's owned structs (`Ethernet`, `Ipv4`, ...) allocate
//!   for every payload and option list and have no checked constructor for untrusted
//!   input beyond a minimum length; a `Repr` holds only what a verdict reads.
//! - [`MacAddr`]: a `[u8; 6]` newtype usable in `const`s and patterns; pnet's `MacAddr`
//!   (six fields, in `pnet_base`) is converted at the packet view.
//! - The ICMPv6 errors' second word (unused / parameter-problem pointer): pnet 0.35 has no
//!   view for ICMPv6 errors.
//! - The NDP link-layer address options: pnet's `NdpOption` length computes
//!   `length * 8 - 2` in a `u8`, which overflows (a panic in debug builds) on a hostile
//!   length byte; [`icmpv6`] walks the options with every length checked.
//! - The validation rules (version, lengths, fragments, which checksums to verify): pnet's
//!   views only check that a minimum header is there.

pub mod arp;
pub mod checksum;
pub mod dns;
pub mod ethernet;
pub mod frame;
pub mod gre;
pub mod gue;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod tunnel;
pub mod udp;

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
            // from_str_radix alone would take a sign: `+2`.
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
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

/// Reads a big-endian u32 at `at`; callers have checked the length.
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

    #[test]
    fn mac_parses_from_colon_or_dash_hex_and_nothing_else() {
        let mac = MacAddr([0x02, 0, 0x5e, 0, 0, 0x11]);
        assert_eq!("02:00:5e:00:00:11".parse(), Ok(mac));
        assert_eq!("02-00-5E-00-00-11".parse(), Ok(mac));
        assert_eq!(mac.to_string().parse(), Ok(mac));
        for bad in [
            "02:00:5e:00:00",
            "02:00:5e:00:00:1",
            "zz:00:5e:00:00:11",
            "+2:00:5e:00:00:11",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}
