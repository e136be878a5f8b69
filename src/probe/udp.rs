//! UDP service checks through the VIP: a DNS query (`--check dns`) or a datagram with a
//! given payload (`--check udp`, keepalived's UDP_CHECK), sent to VIP:port in a frame to
//! the real server (DR) or through its tunnel (TUN), TTL 1, and the reply read on the
//! packet socket like the TCP check's. This module holds what the check sends and how a
//! reply is judged; [`super::engine`] runs it with the other checks.
//!
//! The director's kernel must not interfere: on a director that does not hold the VIP
//! the reply reaches its UDP layer, which would answer "port unreachable" to the VIP
//! (through the real server). So the source port is one the kernel itself hands out to
//! a UDP socket bound on the probe's source address ([`claim_ports`]): the reply is
//! queued on that socket and dropped when it closes, nothing is sent back, and nothing
//! stays behind. On a director that holds the VIP, IPv4 replies are martians and never
//! get that far; the socket changes nothing there.

use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6, UdpSocket};

use super::engine::{Check, CheckKind};
use crate::wire::dns::{self, QueryRepr, Rcode, ResponseRepr};

/// At most `N` bytes, interned: a check stays `Copy` and small (a reference), however
/// long its payload. A check is copied and compared many times per probe; with the
/// bytes inline every check was over 500 bytes, and a resident prober spent a tenth of
/// its time moving them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Bytes<const N: usize> {
    bytes: &'static [u8],
}

/// Every distinct byte string a check has held, kept for the process's life: the
/// payloads and names come from the command line or the config, so there are few.
static INTERNED: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<&'static [u8]>>> =
    std::sync::OnceLock::new();

/// The one `'static` copy of `b`.
fn intern(b: &[u8]) -> &'static [u8] {
    if b.is_empty() {
        return &[];
    }
    let Ok(mut all) = INTERNED.get_or_init(Default::default).lock() else {
        // Poisoned by a panic elsewhere: a private copy is still right.
        return Box::leak(b.to_vec().into_boxed_slice());
    };
    if let Some(&known) = all.get(b) {
        return known;
    }
    let fresh: &'static [u8] = Box::leak(b.to_vec().into_boxed_slice());
    all.insert(fresh);
    fresh
}

impl<const N: usize> Bytes<N> {
    /// `None` when `b` is longer than `N`.
    pub fn new(b: &[u8]) -> Option<Self> {
        if b.len() > N {
            return None;
        }
        Some(Bytes { bytes: intern(b) })
    }

    pub fn as_slice(&self) -> &[u8] {
        self.bytes
    }
}

#[cfg(test)]
mod bytes_tests {
    use super::*;

    #[test]
    fn bytes_are_kept_once_compared_by_content_and_bounded_by_n() {
        let a = Bytes::<4>::new(b"abc").unwrap();
        let owned = String::from("abc").into_bytes();
        let b = Bytes::<4>::new(&owned).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_slice(), b"abc");
        // The same content is one allocation, however often it is asked for.
        assert!(std::ptr::eq(a.as_slice(), b.as_slice()));
        assert_ne!(a, Bytes::<4>::new(b"abd").unwrap());
        assert_eq!(Bytes::<4>::new(b"").unwrap().as_slice(), b"");
        assert!(Bytes::<4>::new(b"abcde").is_none());
        // A check stays small whatever its payload's limit.
        assert!(
            std::mem::size_of::<Check>() <= 96,
            "{}",
            std::mem::size_of::<Check>()
        );
    }
}

impl<const N: usize> std::fmt::Debug for Bytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x?}", self.as_slice())
    }
}

/// The longest payload `--udp-payload` takes (keepalived reads no more in practice, and
/// it stays within one frame).
pub const MAX_PAYLOAD: usize = 512;

/// What a UDP check sends and expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpProbe {
    /// A DNS query of `qtype` for `qname` (wire form), RD set as keepalived's DNS_CHECK
    /// sets it; up on a reply with our id and rcode NOERROR (and, with `expect`, an
    /// answer of the asked type whose data is that text).
    Dns {
        qtype: u16,
        qname: Bytes<{ dns::MAX_NAME_LEN }>,
        expect: Option<Bytes<{ dns::MAX_NAME_LEN }>>,
        /// Any answer with our id is up (an error rcode becomes a warning): `--check all`
        /// on port 53 with no name given, where keepalived's default (`.` SOA) would be
        /// refused by every authoritative-only server.
        any_rcode: bool,
    },
    /// keepalived's UDP_CHECK: `payload` out; with `reply_len` (require_reply) a reply
    /// of MIN..=MAX bytes is needed, without it the absence of an ICMP error is enough
    /// (while the VIP answers ICMP echo, see [`super::decide`]).
    Datagram {
        payload: Bytes<MAX_PAYLOAD>,
        reply_len: Option<(u16, u16)>,
    },
}

impl UdpProbe {
    /// The check's name in verdicts: `dns` or `udp`.
    pub fn name(&self) -> &'static str {
        match self {
            UdpProbe::Dns { .. } => "dns",
            UdpProbe::Datagram { .. } => "udp",
        }
    }

    /// Whether silence fails the check (DNS; UDP_CHECK with require_reply).
    pub fn needs_reply(&self) -> bool {
        match self {
            UdpProbe::Dns { .. } => true,
            UdpProbe::Datagram { reply_len, .. } => reply_len.is_some(),
        }
    }

    /// The datagram's payload for the attempt tagged `tag`.
    pub fn payload(&self, tag: u16) -> Vec<u8> {
        match self {
            UdpProbe::Dns { qtype, qname, .. } => {
                let q = QueryRepr {
                    id: tag,
                    recursion_desired: true,
                    qname: qname.as_slice(),
                    qtype: *qtype,
                };
                let mut b = vec![0; q.buffer_len()];
                // The buffer has the length the query asks for: emit cannot fail.
                let _ = q.emit(&mut b);
                b
            }
            UdpProbe::Datagram { payload, .. } => payload.as_slice().to_vec(),
        }
    }

    /// Which attempt a reply answers, by its tag: a DNS reply's id must be one we sent
    /// (and the message a response); any datagram answers the last attempt otherwise.
    pub fn answers(&self, reply: &[u8], tags: &[u16]) -> Option<usize> {
        match self {
            UdpProbe::Dns { .. } => {
                let p = dns::Packet::new_checked(reply).ok()?;
                if !p.is_response() {
                    return None;
                }
                tags.iter().position(|t| *t == p.id())
            }
            UdpProbe::Datagram { .. } => tags.len().checked_sub(1),
        }
    }

    /// Judges a reply this check's attempt got: `Ok(None)` up, `Ok(Some(warning))` up
    /// with a warning, `Err(reason)` down.
    pub fn judge(&self, reply: &[u8], port: u16) -> Result<Option<String>, String> {
        match self {
            UdpProbe::Dns {
                qtype,
                expect,
                any_rcode,
                ..
            } => {
                let r = ResponseRepr::parse(reply)
                    .map_err(|e| format!("DNS reply on udp/{port} is not a valid message: {e}"))?;
                if r.rcode != Rcode::NoError {
                    if *any_rcode {
                        return Ok(Some(format!(
                            "DNS on udp/{port} answered {} to the default query (. SOA): it \
                             answers, but give --dns-name to check a name it serves",
                            r.rcode
                        )));
                    }
                    return Err(format!("DNS answered {} on udp/{port}", r.rcode));
                }
                let Some(expect) = expect else {
                    return Ok(None);
                };
                let want = String::from_utf8_lossy(expect.as_slice()).into_owned();
                let of_type: Vec<&dns::Record> =
                    r.answers.iter().filter(|a| a.rtype == *qtype).collect();
                if of_type.iter().any(|a| dns::data_matches(a, &want)) {
                    return Ok(None);
                }
                let got: Vec<&str> = of_type.iter().map(|a| a.data.as_str()).collect();
                Err(if got.is_empty() {
                    format!(
                        "DNS answered NOERROR on udp/{port} with no {} record (expected {want})",
                        dns::type_name(*qtype)
                    )
                } else {
                    format!("DNS answered {} on udp/{port}, not {want}", got.join(", "))
                })
            }
            UdpProbe::Datagram { reply_len, .. } => match reply_len {
                Some((min, max))
                    if reply.len() < usize::from(*min) || reply.len() > usize::from(*max) =>
                {
                    Err(format!(
                        "udp/{port} replied with {} bytes, not {min}-{max}",
                        reply.len()
                    ))
                }
                _ => Ok(None),
            },
        }
    }
}

/// Which UDP check `--check` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpCheckKind {
    Dns,
    Datagram,
}

/// The UDP check's options as given (`--dns-*`, `--udp-*`), checked by
/// [`UdpCheckOptions::to_probe`]. `kind` is set by a config that names the check
/// (DNS_CHECK, UDP_CHECK, `service=dns`), so `--check all` runs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpCheckOptions {
    pub kind: Option<UdpCheckKind>,
    /// The name to ask for (default `.`, keepalived's default).
    pub dns_name: Option<String>,
    /// The record type (default SOA, keepalived's default).
    pub dns_type: Option<String>,
    /// The answer the reply must hold.
    pub dns_expect: Option<String>,
    /// The datagram's payload in hex.
    pub udp_payload: Option<String>,
    /// `MIN-MAX` bytes: a reply is required, of that length.
    pub udp_expect_len: Option<String>,
}

/// keepalived's defaults for a DNS_CHECK without `name` / `type`.
pub const DEFAULT_DNS_NAME: &str = ".";
pub const DEFAULT_DNS_TYPE: &str = "SOA";

impl UdpCheckOptions {
    /// The probe these options describe; an error names the bad option and value.
    pub fn to_probe(&self, kind: UdpCheckKind) -> Result<UdpProbe, String> {
        match kind {
            UdpCheckKind::Dns => {
                let name = self.dns_name.as_deref().unwrap_or(DEFAULT_DNS_NAME);
                let qname = dns::encode_name(name).map_err(|e| format!("--dns-name: {e}"))?;
                let ty = self.dns_type.as_deref().unwrap_or(DEFAULT_DNS_TYPE);
                let qtype = dns::type_from_name(ty).ok_or_else(|| {
                    format!(
                        "--dns-type '{ty}' is not a record type (A, AAAA, NS, SOA, MX, TXT, ...)"
                    )
                })?;
                let expect = match self.dns_expect.as_deref() {
                    None => None,
                    Some(e) if e.trim().is_empty() => {
                        return Err("--dns-expect is empty".to_string())
                    }
                    Some(e) => Some(Bytes::new(e.as_bytes()).ok_or_else(|| {
                        format!("--dns-expect is longer than {} bytes", dns::MAX_NAME_LEN)
                    })?),
                };
                Ok(UdpProbe::Dns {
                    qtype,
                    // encode_name keeps to 255 bytes.
                    qname: Bytes::new(&qname).ok_or("--dns-name is too long")?,
                    expect,
                    any_rcode: false,
                })
            }
            UdpCheckKind::Datagram => {
                let payload = match self.udp_payload.as_deref() {
                    Some(h) => parse_hex(h).map_err(|e| format!("--udp-payload: {e}"))?,
                    None => Vec::new(),
                };
                let payload = Bytes::new(&payload)
                    .ok_or_else(|| format!("--udp-payload is longer than {MAX_PAYLOAD} bytes"))?;
                let reply_len = self
                    .udp_expect_len
                    .as_deref()
                    .map(parse_len_range)
                    .transpose()
                    .map_err(|e| format!("--udp-expect-len: {e}"))?;
                Ok(UdpProbe::Datagram { payload, reply_len })
            }
        }
    }
}

/// Hex digits, optionally with spaces, `:` or a `0x` prefix between bytes' pairs.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: Vec<u8> = t
        .bytes()
        .filter(|b| !matches!(b, b' ' | b':' | b'\t'))
        .collect();
    if digits.len() % 2 != 0 {
        return Err(format!("'{text}' has an odd number of hex digits"));
    }
    digits
        .chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).map_err(|_| format!("'{text}' is not hex"))?;
            if !p.iter().all(u8::is_ascii_hexdigit) {
                return Err(format!("'{text}' is not hex"));
            }
            u8::from_str_radix(s, 16).map_err(|_| format!("'{text}' is not hex"))
        })
        .collect()
}

/// `MIN-MAX` (or one number for exactly that length), bytes.
pub fn parse_len_range(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("'{text}' is not MIN-MAX bytes (e.g. 1-512)");
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let num = |s: &str| -> Result<u16, String> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (min, max) = (num(a)?, num(b)?);
    if min > max {
        return Err(format!("'{text}': MIN is above MAX"));
    }
    Ok((min, max))
}

/// Binds a UDP socket on the source address of every UDP check, on a port the kernel
/// picks, and gives that port to the check. Keep the sockets until the checks are done:
/// while they are open the director's kernel takes the replies quietly (see the module
/// doc); they close, and take nothing else with them, when dropped.
pub fn claim_ports(checks: &mut [Check], ifindex: u32) -> io::Result<Vec<UdpSocket>> {
    let mut sockets = Vec::new();
    for c in checks.iter_mut() {
        let CheckKind::Udp { src_port, .. } = &mut c.kind else {
            continue;
        };
        let addr = match c.src {
            IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => {
                SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, ifindex))
            }
            ip => SocketAddr::new(ip, 0),
        };
        let s = UdpSocket::bind(addr)?;
        *src_port = s.local_addr()?.port();
        sockets.push(s);
    }
    Ok(sockets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(name: &str, ty: &str, expect: Option<&str>) -> UdpProbe {
        UdpCheckOptions {
            dns_name: Some(name.into()),
            dns_type: Some(ty.into()),
            dns_expect: expect.map(str::to_string),
            ..Default::default()
        }
        .to_probe(UdpCheckKind::Dns)
        .unwrap()
    }

    #[test]
    fn dns_query_payload_is_the_query_with_the_tag_as_id() {
        let p = dns("www.example.org", "A", None);
        let q = p.payload(0xbeef);
        assert_eq!(&q[..4], &[0xbe, 0xef, 0x01, 0x00], "id, then RD only");
        assert_eq!(q.len(), 12 + 17 + 4);
        assert_eq!(p.answers(&q, &[0xbeef]), None, "a query is not an answer");
    }

    #[test]
    fn defaults_are_keepalived_s() {
        let p = UdpCheckOptions::default()
            .to_probe(UdpCheckKind::Dns)
            .unwrap();
        let UdpProbe::Dns { qtype, qname, .. } = p else {
            panic!()
        };
        assert_eq!((qtype, qname.as_slice()), (dns::rtype::SOA, &[0u8][..]));
        let d = UdpCheckOptions::default()
            .to_probe(UdpCheckKind::Datagram)
            .unwrap();
        assert!(!d.needs_reply());
        assert_eq!(d.payload(1), Vec::<u8>::new());
    }

    #[test]
    fn bad_options_name_themselves() {
        let e = |o: UdpCheckOptions, k| o.to_probe(k).unwrap_err();
        let o = UdpCheckOptions::default;
        assert!(e(
            UdpCheckOptions {
                dns_type: Some("BOGUS".into()),
                ..o()
            },
            UdpCheckKind::Dns
        )
        .starts_with("--dns-type"));
        assert!(e(
            UdpCheckOptions {
                dns_name: Some("a..b".into()),
                ..o()
            },
            UdpCheckKind::Dns
        )
        .starts_with("--dns-name"));
        assert!(e(
            UdpCheckOptions {
                udp_payload: Some("abc".into()),
                ..o()
            },
            UdpCheckKind::Datagram
        )
        .starts_with("--udp-payload"));
        assert!(e(
            UdpCheckOptions {
                udp_expect_len: Some("9-1".into()),
                ..o()
            },
            UdpCheckKind::Datagram
        )
        .starts_with("--udp-expect-len"));
        assert!(e(
            UdpCheckOptions {
                udp_payload: Some("00".repeat(513)),
                ..o()
            },
            UdpCheckKind::Datagram
        )
        .contains("longer"));
    }

    #[test]
    fn hex_and_ranges() {
        assert_eq!(parse_hex("0x01ff").unwrap(), vec![1, 0xff]);
        assert_eq!(
            parse_hex("de:ad be ef").unwrap(),
            vec![0xde, 0xad, 0xbe, 0xef]
        );
        assert!(parse_hex("zz").is_err());
        assert!(parse_hex("+1").is_err());
        assert_eq!(parse_len_range("1-512"), Ok((1, 512)));
        assert_eq!(parse_len_range("4"), Ok((4, 4)));
        assert!(parse_len_range("-1").is_err());
        assert!(parse_len_range("1-70000").is_err());
    }

    fn reply(id: u16, rcode: u8, answer: Option<[u8; 4]>) -> Vec<u8> {
        let mut m = vec![
            (id >> 8) as u8,
            id as u8,
            0x81,
            0x80 | rcode,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        m.extend_from_slice(&[1, b'x', 0, 0, 1, 0, 1]);
        if let Some(a) = answer {
            m[7] = 1;
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
            m.extend_from_slice(&a);
        }
        m
    }

    #[test]
    fn dns_replies_are_judged_by_id_rcode_and_answer() {
        let p = dns("x", "A", Some("192.0.2.53"));
        assert_eq!(p.answers(&reply(7, 0, None), &[5, 7]), Some(1));
        assert_eq!(p.answers(&reply(8, 0, None), &[5, 7]), None);
        assert_eq!(p.judge(&reply(7, 0, Some([192, 0, 2, 53])), 53), Ok(None));
        assert_eq!(
            p.judge(&reply(7, 0, Some([192, 0, 2, 54])), 53),
            Err("DNS answered 192.0.2.54 on udp/53, not 192.0.2.53".into())
        );
        assert_eq!(
            p.judge(&reply(7, 3, None), 53),
            Err("DNS answered NXDOMAIN on udp/53".into())
        );
        assert_eq!(
            p.judge(&reply(7, 5, None), 53),
            Err("DNS answered REFUSED on udp/53".into())
        );
        assert!(p
            .judge(&reply(7, 0, None), 53)
            .unwrap_err()
            .contains("no A record"));
        assert!(p
            .judge(&[0x00, 0x07, 0x80], 53)
            .unwrap_err()
            .contains("not a valid"));
        let any = dns("x", "A", None);
        assert_eq!(any.judge(&reply(7, 0, None), 53), Ok(None));
    }

    #[test]
    fn datagram_reply_length_bounds() {
        let p = UdpCheckOptions {
            udp_payload: Some("68656c6c6f".into()),
            udp_expect_len: Some("5-10".into()),
            ..Default::default()
        }
        .to_probe(UdpCheckKind::Datagram)
        .unwrap();
        assert!(p.needs_reply());
        assert_eq!(p.payload(9), b"hello");
        assert_eq!(p.judge(b"hello", 7), Ok(None));
        assert_eq!(
            p.judge(b"hi", 7),
            Err("udp/7 replied with 2 bytes, not 5-10".into())
        );
        assert!(p.judge(&[0; 11], 7).is_err());
        assert_eq!(p.answers(b"x", &[1, 2]), Some(1));
    }
}
