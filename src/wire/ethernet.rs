//! Ethernet II header: destination, source, EtherType, on pnet's [`EthernetPacket`].

use pnet_packet::ethernet::{EtherType, EthernetPacket, MutableEthernetPacket};

use super::{MacAddr, Result, WireError};

pub const HEADER_LEN: usize = 14;

pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: u16,
}

impl EthernetRepr {
    /// The header and the payload behind it.
    pub fn parse(frame: &[u8]) -> Result<(EthernetRepr, &[u8])> {
        let eth = EthernetPacket::new(frame).ok_or(WireError::Truncated)?;
        let repr = EthernetRepr {
            dst: MacAddr(eth.get_destination().octets()),
            src: MacAddr(eth.get_source().octets()),
            ethertype: eth.get_ethertype().0,
        };
        Ok((repr, &frame[HEADER_LEN..]))
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 14 bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        let Some(mut eth) = MutableEthernetPacket::new(&mut buf[..HEADER_LEN]) else {
            return;
        };
        eth.set_destination(self.dst.0.into());
        eth.set_source(self.src.0.into());
        eth.set_ethertype(EtherType(self.ethertype));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 16] = [
        0x02, 0, 0, 0, 0, 0x0b, // dst
        0x02, 0, 0, 0, 0, 0x02, // src
        0x08, 0x00, // IPv4
        0xde, 0xad, // payload
    ];

    #[test]
    fn parse_reads_addresses_type_and_payload() {
        let (repr, payload) = EthernetRepr::parse(&FRAME).unwrap();
        assert_eq!(repr.dst, MacAddr([2, 0, 0, 0, 0, 0x0b]));
        assert_eq!(repr.src, MacAddr([2, 0, 0, 0, 0, 0x02]));
        assert_eq!(repr.ethertype, ethertype::IPV4);
        assert_eq!(payload, &[0xde, 0xad]);
    }

    #[test]
    fn emit_writes_every_header_byte() {
        let (repr, _) = EthernetRepr::parse(&FRAME).unwrap();
        let mut buf = [0xa5; 14];
        repr.emit(&mut buf);
        assert_eq!(buf[..], FRAME[..14]);
    }

    #[test]
    fn short_frame_is_truncated() {
        assert_eq!(EthernetRepr::parse(&FRAME[..13]), Err(WireError::Truncated));
    }
}
