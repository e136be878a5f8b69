//! Generic netlink on the netlink core: the family header and the controller's family
//! list, to find the id of a family (IPVS) by its name.
//!
//! The lookup dumps every registered family and picks the name from the list; it never asks
//! the controller for one family by name (CTRL_CMD_GETFAMILY with CTRL_ATTR_FAMILY_NAME),
//! because that request makes the kernel load a module for a missing family
//! (`request_module("net-pf-16-proto-16-family-%s")` in `ctrl_getfamily`), and vipcheck
//! must never load modules. A dump only lists what is already there.

use std::io;
use std::time::Instant;

use super::netlink::{self, attrs, MessageBuilder, NLM_F_DUMP};

/// The controller's own family id (`GENL_ID_CTRL`).
pub const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
/// The length of `struct genlmsghdr` (cmd, version, reserved).
pub const GENL_HEADER_LEN: usize = 4;

/// `struct genlmsghdr` for command `cmd` of a family at `version`.
pub fn header(cmd: u8, version: u8) -> [u8; GENL_HEADER_LEN] {
    [cmd, version, 0, 0]
}

/// A family the controller lists: its name and the id its messages are sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub name: String,
    pub id: u16,
}

/// Appends the family dump request's body: the generic header, no attributes (a name
/// attribute would turn the dump into the by-name lookup that loads modules).
pub fn family_dump_body(m: &mut MessageBuilder) {
    m.header(&header(CTRL_CMD_GETFAMILY, 1));
}

/// One CTRL_CMD_NEWFAMILY answer (generic header, then attributes) as a [`Family`];
/// `None` when it lacks a name or an id.
pub fn parse_family(payload: &[u8]) -> Option<Family> {
    let body = payload.get(GENL_HEADER_LEN..)?;
    let mut name = None;
    let mut id = None;
    for (kind, data) in attrs(body) {
        match kind {
            CTRL_ATTR_FAMILY_ID => {
                id = <[u8; 2]>::try_from(data).ok().map(u16::from_ne_bytes);
            }
            CTRL_ATTR_FAMILY_NAME => {
                let text = data.split(|b| *b == 0).next().unwrap_or_default();
                name = std::str::from_utf8(text).ok().map(str::to_string);
            }
            _ => {}
        }
    }
    Some(Family {
        name: name?,
        id: id?,
    })
}

/// Every registered generic netlink family, by `deadline`.
pub fn families(sock: &mut netlink::Socket, deadline: Instant) -> io::Result<Vec<Family>> {
    let answers = sock.request(
        "CTRL_CMD_GETFAMILY (dump)",
        GENL_ID_CTRL,
        NLM_F_DUMP,
        deadline,
        family_dump_body,
    )?;
    Ok(answers
        .iter()
        .filter_map(|a| parse_family(&a.payload))
        .collect())
}

/// The id of the family `name`, `None` when no such family is registered (its module is
/// not loaded). Never loads a module (see the module comment).
pub fn family_id(
    sock: &mut netlink::Socket,
    name: &str,
    deadline: Instant,
) -> io::Result<Option<u16>> {
    Ok(families(sock, deadline)?
        .into_iter()
        .find(|f| f.name == name)
        .map(|f| f.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::netlink::{messages, NLM_F_REQUEST};

    #[test]
    fn the_family_lookup_is_a_dump_without_a_name_so_it_loads_no_module() {
        let mut m = MessageBuilder::new(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_DUMP, 1);
        family_dump_body(&mut m);
        let bytes = m.finish();
        let msg = messages(&bytes).next().unwrap().unwrap();
        assert_eq!(msg.kind, GENL_ID_CTRL);
        assert_eq!(msg.flags & NLM_F_DUMP, NLM_F_DUMP);
        // The generic header (CTRL_CMD_GETFAMILY, version 1) and nothing else: no
        // CTRL_ATTR_FAMILY_NAME, which would make the kernel request_module() it.
        assert_eq!(msg.payload, &[3, 1, 0, 0]);
    }

    #[test]
    fn a_family_answer_gives_name_and_id() {
        let mut m = MessageBuilder::new(GENL_ID_CTRL, 0, 1);
        m.header(&header(1, 2))
            .attr(CTRL_ATTR_FAMILY_ID, &0x25u16.to_ne_bytes())
            .attr_str(CTRL_ATTR_FAMILY_NAME, "IPVS")
            .attr_u32(3, 1);
        let bytes = m.finish();
        let msg = messages(&bytes).next().unwrap().unwrap();
        assert_eq!(
            parse_family(msg.payload),
            Some(Family {
                name: "IPVS".into(),
                id: 0x25
            })
        );
        // No id: not a family we can talk to.
        let mut m = MessageBuilder::new(GENL_ID_CTRL, 0, 1);
        m.header(&header(1, 2))
            .attr_str(CTRL_ATTR_FAMILY_NAME, "IPVS");
        let bytes = m.finish();
        let msg = messages(&bytes).next().unwrap().unwrap();
        assert_eq!(parse_family(msg.payload), None);
        assert_eq!(parse_family(&[1, 2]), None);
    }

    #[test]
    fn the_controller_lists_itself() {
        // Needs no privilege: every kernel with generic netlink has "nlctrl".
        let Ok(mut s) = netlink::Socket::open(libc::NETLINK_GENERIC) else {
            println!("skipped: no generic netlink sockets here");
            return;
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let id = family_id(&mut s, "nlctrl", deadline).unwrap();
        assert_eq!(id, Some(GENL_ID_CTRL));
        assert_eq!(family_id(&mut s, "no-such-family", deadline).unwrap(), None);
    }
}
