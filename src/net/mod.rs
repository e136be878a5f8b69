//! What the prober stands on: the kernel's netlink interfaces.

pub mod netlink;
pub mod nftables;
pub mod rtnl;
