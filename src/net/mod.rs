//! What every check stands on: the link layer and the kernel's netlink interfaces.
//!
//! - The one packet socket ([`packet_socket::PacketSocket`], with its BPF filter, auxdata
//!   receive and release in the background; the fleet's shared sockets read through a
//!   mapped receive ring, [`rx_ring`]) behind the one [`packet_socket::FrameIo`]
//!   seam for tests, and the one path to a real server ([`path::NetPath`]: interface,
//!   source, MACs, method). Used by the probe, `status` (the fleet) and the application
//!   check (the session).
//! - The one netlink core ([`netlink`]: framing, sequence numbers, acks, dumps, receive by
//!   a deadline), under the rtnetlink queries ([`rtnl`]: route, neighbour, address, link)
//!   and the nf_tables owner-table batch ([`nftables`]).
//! - Generic netlink ([`genl`]: the family list) and the IPVS table reader ([`ipvs`]).

pub mod genl;
pub mod ipvs;
pub mod netlink;
pub mod nftables;
pub mod packet_socket;
pub mod path;
pub mod rtnl;
pub mod rx_ring;

pub use packet_socket::{Frame, FrameIo, PacketSocket};
pub use path::NetPath;
