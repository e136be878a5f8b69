//! Keeps the director's own kernel from resetting the session. The real server answers
//! our address from VIP:port; a director that does not hold the VIP has no socket for that
//! connection and answers every segment with a RST. An nftables table with `flags owner`
//! drops exactly those RSTs (our address and port to VIP:port). The kernel deletes an owner
//! table when the netlink socket that created it closes, so the table lives exactly as long
//! as the socket: on drop, on exit and on SIGKILL it goes.
//!
//! The table is added over netlink ([`crate::net::nftables`]); no helper process, no `nft`.

use std::net::IpAddr;
use std::time::Instant;

use super::SessionError;
use crate::net::nftables::OwnerTable;

/// The table's name: unique per process and session port.
pub fn table_name(local_port: u16) -> String {
    format!("vipcheck_{}_{}", std::process::id(), local_port)
}

/// While alive, the director's RSTs for one session are dropped.
pub struct RstGuard {
    table: OwnerTable,
}

impl RstGuard {
    /// The netlink socket that owns the table.
    pub fn netlink_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.table.as_raw_fd()
    }

    /// Adds the table for the session `src`:`local_port` -> `vip`:`port`, acknowledged by
    /// the kernel before `deadline`.
    pub fn install(
        src: IpAddr,
        local_port: u16,
        vip: IpAddr,
        port: u16,
        deadline: Instant,
    ) -> Result<RstGuard, SessionError> {
        let table = OwnerTable::install(
            &table_name(local_port),
            src,
            local_port,
            vip,
            port,
            deadline,
        )
        .map_err(|e| SessionError::Nft {
            detail: format!("nf_tables refused it: {e}"),
        })?;
        Ok(RstGuard { table })
    }
}
