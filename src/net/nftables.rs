//! The RST guard's table spoken straight to nf_tables over netlink: one batch that adds an
//! owner table (`flags owner`, Linux 5.12+), an output chain at raw priority and one rule
//! dropping our RSTs to VIP:port. The kernel deletes an owner table when the netlink
//! socket that created it closes, so [`OwnerTable`] leaves nothing behind on drop, exit or
//! SIGKILL, with no helper process and no `nft` binary on the director. Framed, sent and
//! acknowledged through the netlink core ([`super::netlink`]).

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::netlink::{self, Acks, MessageBuilder, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;

const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
/// NF_IP_PRI_RAW: before conntrack, like `priority raw`.
const PRIORITY_RAW: i32 = -300;
const NFT_TABLE_F_OWNER: u32 = 0x2;

// Attribute numbers (include/uapi/linux/netfilter/nf_tables.h).
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_L4PROTO: u32 = 16;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;

/// A message of the batch: the netlink header, then `nfgenmsg` (family, version 0, the
/// resource id big-endian).
fn msg(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> MessageBuilder {
    let mut m = MessageBuilder::new(kind, flags, seq);
    let res = res_id.to_be_bytes();
    m.header(&[family, 0, res[0], res[1]]);
    m
}

/// One expression: `{ NAME, DATA { ... } }` inside the rule's expression list.
fn expr(m: &mut MessageBuilder, name: &str, data: impl FnOnce(&mut MessageBuilder)) {
    m.nest(NFTA_LIST_ELEM, |e| {
        e.attr_str(NFTA_EXPR_NAME, name);
        e.nest(NFTA_EXPR_DATA, data);
    });
}

fn payload(m: &mut MessageBuilder, base: u32, offset: u32, len: u32) {
    expr(m, "payload", |d| {
        d.attr_be32(NFTA_PAYLOAD_DREG, NFT_REG_1)
            .attr_be32(NFTA_PAYLOAD_BASE, base)
            .attr_be32(NFTA_PAYLOAD_OFFSET, offset)
            .attr_be32(NFTA_PAYLOAD_LEN, len);
    });
}

fn cmp(m: &mut MessageBuilder, op: u32, value: &[u8]) {
    expr(m, "cmp", |d| {
        d.attr_be32(NFTA_CMP_SREG, NFT_REG_1)
            .attr_be32(NFTA_CMP_OP, op);
        d.nest(NFTA_CMP_DATA, |v| {
            v.attr(NFTA_DATA_VALUE, value);
        });
    });
}

/// The whole batch: begin, table (owner), chain (output hook, raw priority), rule, end.
/// Sequence numbers `seq..seq+4`; the three middle messages ask for an ack.
pub fn batch(
    table: &str,
    src: IpAddr,
    local_port: u16,
    vip: IpAddr,
    port: u16,
    seq: u32,
) -> Vec<u8> {
    let family = if vip.is_ipv6() {
        NFPROTO_IPV6
    } else {
        NFPROTO_IPV4
    };
    let sub = |t: u16| (NFNL_SUBSYS_NFTABLES << 8) | t;
    let create = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;
    let mut out = Vec::new();
    out.extend(
        msg(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        )
        .finish(),
    );

    let mut t = msg(sub(NFT_MSG_NEWTABLE), create, seq + 1, family, 0);
    t.attr_str(NFTA_TABLE_NAME, table)
        .attr_be32(NFTA_TABLE_FLAGS, NFT_TABLE_F_OWNER);
    out.extend(t.finish());

    let mut c = msg(sub(NFT_MSG_NEWCHAIN), create, seq + 2, family, 0);
    c.attr_str(NFTA_CHAIN_TABLE, table)
        .attr_str(NFTA_CHAIN_NAME, "out");
    c.nest(NFTA_CHAIN_HOOK, |h| {
        h.attr_be32(NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_OUT)
            .attr_be32(NFTA_HOOK_PRIORITY, PRIORITY_RAW as u32);
    });
    c.attr_be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
        .attr_str(NFTA_CHAIN_TYPE, "filter");
    out.extend(c.finish());

    let mut r = msg(sub(NFT_MSG_NEWRULE), create, seq + 3, family, 0);
    r.attr_str(NFTA_RULE_TABLE, table)
        .attr_str(NFTA_RULE_CHAIN, "out");
    r.nest(NFTA_RULE_EXPRESSIONS, |l| {
        let (src_at, dst_at, octets): (u32, u32, (Vec<u8>, Vec<u8>)) = match (src, vip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (12, 16, (s.octets().to_vec(), d.octets().to_vec())),
            (IpAddr::V6(s), IpAddr::V6(d)) => (8, 24, (s.octets().to_vec(), d.octets().to_vec())),
            // Mixed families never reach here (SessionPath::validate); match nothing then.
            _ => (12, 16, (vec![0; 4], vec![0xff; 4])),
        };
        let alen = octets.0.len() as u32;
        payload(l, NFT_PAYLOAD_NETWORK_HEADER, src_at, alen);
        cmp(l, NFT_CMP_EQ, &octets.0);
        payload(l, NFT_PAYLOAD_NETWORK_HEADER, dst_at, alen);
        cmp(l, NFT_CMP_EQ, &octets.1);
        expr(l, "meta", |d| {
            d.attr_be32(NFTA_META_DREG, NFT_REG_1)
                .attr_be32(NFTA_META_KEY, NFT_META_L4PROTO);
        });
        cmp(l, NFT_CMP_EQ, &[libc::IPPROTO_TCP as u8]);
        payload(l, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2);
        cmp(l, NFT_CMP_EQ, &local_port.to_be_bytes());
        payload(l, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
        cmp(l, NFT_CMP_EQ, &port.to_be_bytes());
        // tcp flags & rst != 0
        payload(l, NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1);
        expr(l, "bitwise", |d| {
            d.attr_be32(NFTA_BITWISE_SREG, NFT_REG_1)
                .attr_be32(NFTA_BITWISE_DREG, NFT_REG_1)
                .attr_be32(NFTA_BITWISE_LEN, 1);
            d.nest(NFTA_BITWISE_MASK, |v| {
                v.attr(NFTA_DATA_VALUE, &[0x04]);
            });
            d.nest(NFTA_BITWISE_XOR, |v| {
                v.attr(NFTA_DATA_VALUE, &[0x00]);
            });
        });
        cmp(l, NFT_CMP_NEQ, &[0x00]);
        expr(l, "immediate", |d| {
            d.attr_be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
            d.nest(NFTA_IMMEDIATE_DATA, |v| {
                v.nest(NFTA_DATA_VERDICT, |vd| {
                    vd.attr_be32(NFTA_VERDICT_CODE, NF_DROP);
                });
            });
        });
    });
    out.extend(r.finish());

    out.extend(
        msg(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            seq + 4,
            0,
            NFNL_SUBSYS_NFTABLES,
        )
        .finish(),
    );
    out
}

/// The owner table; dropping it closes the socket and the kernel deletes the table.
pub struct OwnerTable {
    sock: netlink::Socket,
}

impl AsRawFd for OwnerTable {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }
}

impl OwnerTable {
    /// Adds the table and waits (until `deadline`) for the kernel's acks.
    pub fn install(
        table: &str,
        src: IpAddr,
        local_port: u16,
        vip: IpAddr,
        port: u16,
        deadline: Instant,
    ) -> io::Result<OwnerTable> {
        let mut sock = netlink::Socket::open(libc::NETLINK_NETFILTER)?;
        let seq = sock.next_seqs(5);
        let msg = batch(table, src, local_port, vip, port, seq);
        sock.send("nf_tables batch", &msg)?;
        // Table, chain and rule ask for an ack; the batch's begin and end do not.
        let mut acks = Acks::new(seq + 1, 3);
        sock.exchange("nf_tables batch", &mut acks, deadline)?;
        Ok(OwnerTable { sock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a batch into (type, flags, seq, family, attributes).
    fn messages(b: &[u8]) -> Vec<(u16, u16, u32, u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < b.len() {
            let len = u32::from_ne_bytes(b[at..at + 4].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0, "messages are 4-byte aligned");
            out.push((
                u16::from_ne_bytes([b[at + 4], b[at + 5]]),
                u16::from_ne_bytes([b[at + 6], b[at + 7]]),
                u32::from_ne_bytes(b[at + 8..at + 12].try_into().unwrap()),
                b[at + 16],
                b[at + 20..at + len].to_vec(),
            ));
            at += len;
        }
        out
    }

    /// Top-level attributes as (type without flags, payload); read here on its own so
    /// the batch is checked independently of the core's parser.
    fn attrs(mut b: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        while b.len() >= 4 {
            let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
            let kind = u16::from_ne_bytes([b[2], b[3]]) & !netlink::NLA_F_NESTED;
            out.push((kind, b[4..len].to_vec()));
            b = &b[((len + 3) & !3).min(b.len())..];
        }
        out
    }

    #[test]
    fn batch_is_begin_table_chain_rule_end() {
        let b = batch(
            "vipcheck_1_40000",
            "192.0.2.1".parse().unwrap(),
            40000,
            "192.0.2.20".parse().unwrap(),
            80,
            100,
        );
        let m = messages(&b);
        let kinds: Vec<(u16, u16, u32, u8)> = m.iter().map(|x| (x.0, x.1, x.2, x.3)).collect();
        assert_eq!(
            kinds,
            vec![
                (0x10, 0x1, 100, 0),
                (0x0a00, 0x405, 101, 2),
                (0x0a03, 0x405, 102, 2),
                (0x0a06, 0x405, 103, 2),
                (0x11, 0x1, 104, 0),
            ]
        );
        // Batch begin/end carry the subsystem in res_id (big-endian).
        assert_eq!(&b[18..20], &[0, 10]);
        let table = attrs(&m[1].4);
        assert_eq!(
            table,
            vec![(1, b"vipcheck_1_40000\0".to_vec()), (2, vec![0, 0, 0, 2])]
        );
        let chain = attrs(&m[2].4);
        assert_eq!(chain[0], (1, b"vipcheck_1_40000\0".to_vec()));
        assert_eq!(chain[1], (3, b"out\0".to_vec()));
        let hook = attrs(&chain[2].1);
        assert_eq!(
            hook,
            vec![(1, vec![0, 0, 0, 3]), (2, (-300i32).to_be_bytes().to_vec())]
        );
        assert_eq!(chain[3], (5, vec![0, 0, 0, 1]));
        assert_eq!(chain[4], (7, b"filter\0".to_vec()));
    }

    #[test]
    fn rule_matches_addresses_ports_and_the_rst_flag_then_drops() {
        let b = batch(
            "t",
            "2001:db8::1".parse().unwrap(),
            0x9c40,
            "2001:db8::20".parse().unwrap(),
            443,
            1,
        );
        let m = messages(&b);
        assert_eq!(m[3].3, 10, "an ip6 table for an IPv6 VIP");
        let rule = attrs(&m[3].4);
        let exprs = attrs(&rule[2].1);
        let names: Vec<String> = exprs
            .iter()
            .map(|(_, e)| {
                let a = attrs(e);
                String::from_utf8(a[0].1.clone())
                    .unwrap()
                    .trim_end_matches('\0')
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "payload",
                "cmp",
                "payload",
                "cmp",
                "meta",
                "cmp",
                "payload",
                "cmp",
                "payload",
                "cmp",
                "payload",
                "bitwise",
                "cmp",
                "immediate"
            ]
        );
        // The values compared, in order: source, VIP, TCP, our port, the service port, 0.
        let values: Vec<Vec<u8>> = exprs
            .iter()
            .filter_map(|(_, e)| {
                let a = attrs(e);
                (a[0].1 == b"cmp\0").then(|| {
                    let data = attrs(&a[1].1);
                    attrs(&data[2].1)[0].1.clone()
                })
            })
            .collect();
        let ip = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets().to_vec();
        assert_eq!(
            values,
            vec![
                ip("2001:db8::1"),
                ip("2001:db8::20"),
                vec![6],
                vec![0x9c, 0x40],
                vec![1, 0xbb],
                vec![0]
            ]
        );
        // The source is read at offset 8, 16 bytes, of the network header.
        let first = attrs(&attrs(&exprs[0].1)[1].1);
        assert_eq!(
            first,
            vec![
                (1, vec![0, 0, 0, 1]),
                (2, vec![0, 0, 0, 1]),
                (3, vec![0, 0, 0, 8]),
                (4, vec![0, 0, 0, 16])
            ]
        );
    }
}
