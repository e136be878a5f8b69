//! The link layer every check stands on: the one packet socket
//! ([`packet_socket::PacketSocket`], with its BPF filter, auxdata receive and release in
//! the background) behind the one [`packet_socket::FrameIo`] seam for tests, and the one
//! path to a real server ([`path::NetPath`]: interface, source, MACs, method). Used by the
//! probe, `status` (the fleet) and the application check (the session).

pub mod packet_socket;
pub mod path;

pub use packet_socket::{Frame, FrameIo, PacketSocket};
pub use path::NetPath;
