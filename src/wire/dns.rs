//! DNS messages (RFC 1035) as far as a health check needs them: one query out (header and
//! one question), and the reply read back (header, the question echoed, the answer
//! records with their data as text). A zero-copy view ([`Packet`]) over the header, a
//! [`QueryRepr`] with `emit` / `buffer_len`, and a [`ResponseRepr`] with `parse`.
//!
//! Replies are untrusted: every length and compression pointer is checked, pointers may
//! only point backwards (so a loop cannot be built) and a name has at most 255 bytes, so
//! hostile input gives an error, never a panic or unbounded work.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Result, WireError};

pub const HEADER_LEN: usize = 12;
/// The longest name on the wire (RFC 1035 2.3.4), length bytes included.
pub const MAX_NAME_LEN: usize = 255;
/// The largest message a check reads (a UDP datagram without EDNS is at most 512 bytes;
/// a server may still send more, which is read up to this).
pub const MAX_MESSAGE_LEN: usize = 65535;
/// Answer records read from one reply; the rest are skipped.
pub const MAX_ANSWERS: usize = 64;

mod field {
    use std::ops::Range;
    pub const ID: Range<usize> = 0..2;
    pub const FLAGS: Range<usize> = 2..4;
    pub const QDCOUNT: Range<usize> = 4..6;
    pub const ANCOUNT: Range<usize> = 6..8;
    pub const NSCOUNT: Range<usize> = 8..10;
    pub const ARCOUNT: Range<usize> = 10..12;
}

/// Header flag bits (in the 16-bit flags word).
pub mod flags {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
}

/// Record types a check may ask for.
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const ANY: u16 = 255;
}

pub const CLASS_IN: u16 = 1;

const TYPE_NAMES: &[(u16, &str)] = &[
    (rtype::A, "A"),
    (rtype::NS, "NS"),
    (rtype::CNAME, "CNAME"),
    (rtype::SOA, "SOA"),
    (rtype::PTR, "PTR"),
    (rtype::MX, "MX"),
    (rtype::TXT, "TXT"),
    (rtype::AAAA, "AAAA"),
    (rtype::SRV, "SRV"),
    (rtype::ANY, "ANY"),
];

/// A record type from its name (`A`, `aaaa`, `SOA`, ... or RFC 3597's `TYPE99`).
pub fn type_from_name(name: &str) -> Option<u16> {
    if let Some((t, _)) = TYPE_NAMES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
    {
        return Some(*t);
    }
    let n = name.get(..4).filter(|p| p.eq_ignore_ascii_case("TYPE"))?;
    let digits = &name[n.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|t| *t != 0)
}

/// A record type's name (`TYPE99` for one without).
pub fn type_name(t: u16) -> String {
    TYPE_NAMES
        .iter()
        .find(|(n, _)| *n == t)
        .map_or_else(|| format!("TYPE{t}"), |(_, s)| s.to_string())
}

/// The response code (RFC 1035 4.1.1, RFC 2136 for 6..10), shown by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    YxDomain,
    YxRrSet,
    NxRrSet,
    NotAuth,
    NotZone,
    Other(u8),
}

impl Rcode {
    pub fn from_u4(v: u8) -> Rcode {
        match v & 0x0f {
            0 => Rcode::NoError,
            1 => Rcode::FormErr,
            2 => Rcode::ServFail,
            3 => Rcode::NxDomain,
            4 => Rcode::NotImp,
            5 => Rcode::Refused,
            6 => Rcode::YxDomain,
            7 => Rcode::YxRrSet,
            8 => Rcode::NxRrSet,
            9 => Rcode::NotAuth,
            10 => Rcode::NotZone,
            n => Rcode::Other(n),
        }
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
            Rcode::YxDomain => "YXDOMAIN",
            Rcode::YxRrSet => "YXRRSET",
            Rcode::NxRrSet => "NXRRSET",
            Rcode::NotAuth => "NOTAUTH",
            Rcode::NotZone => "NOTZONE",
            Rcode::Other(n) => return write!(f, "RCODE{n}"),
        };
        f.write_str(s)
    }
}

fn be16(b: &[u8], at: usize) -> Result<u16> {
    let s = b.get(at..at + 2).ok_or(WireError::Truncated)?;
    Ok(u16::from_be_bytes([s[0], s[1]]))
}

/// A read-only view of a DNS message's header.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view without any check: the accessors panic on fewer than 12 bytes.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A view of untrusted bytes: at least a whole header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }

    fn word(&self, r: std::ops::Range<usize>) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[r.start], b[r.start + 1]])
    }

    pub fn id(&self) -> u16 {
        self.word(field::ID)
    }

    pub fn flags(&self) -> u16 {
        self.word(field::FLAGS)
    }

    pub fn is_response(&self) -> bool {
        self.flags() & flags::QR != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags() >> 11) & 0x0f) as u8
    }

    pub fn rcode(&self) -> Rcode {
        Rcode::from_u4((self.flags() & 0x0f) as u8)
    }

    pub fn qdcount(&self) -> u16 {
        self.word(field::QDCOUNT)
    }

    pub fn ancount(&self) -> u16 {
        self.word(field::ANCOUNT)
    }

    pub fn nscount(&self) -> u16 {
        self.word(field::NSCOUNT)
    }

    pub fn arcount(&self) -> u16 {
        self.word(field::ARCOUNT)
    }
}

/// Why a name cannot be asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(pub String);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name in wire form (length-prefixed labels ending in the root's zero), from text:
/// `example.org`, `example.org.` or `.` (the root). Labels of 1..63 bytes, at most 255
/// bytes in all; no escapes.
pub fn encode_name(text: &str) -> std::result::Result<Vec<u8>, NameError> {
    let mut out = Vec::with_capacity(text.len() + 2);
    let trimmed = text.strip_suffix('.').unwrap_or(text);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(NameError(format!("'{text}' has an empty label")));
            }
            if label.len() > 63 {
                return Err(NameError(format!(
                    "'{text}' has a label longer than 63 bytes"
                )));
            }
            if label
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'\\')
            {
                return Err(NameError(format!(
                    "'{text}' has a space, control character or backslash"
                )));
            }
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    } else if text.is_empty() {
        return Err(NameError("the name is empty (the root is '.')".into()));
    }
    out.push(0);
    if out.len() > MAX_NAME_LEN {
        return Err(NameError(format!("'{text}' is longer than 255 bytes")));
    }
    Ok(out)
}

/// A query: header and one question, class IN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRepr<'a> {
    pub id: u16,
    /// Recursion desired: keepalived's DNS_CHECK sets it.
    pub recursion_desired: bool,
    /// The name in wire form ([`encode_name`]).
    pub qname: &'a [u8],
    pub qtype: u16,
}

impl QueryRepr<'_> {
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.qname.len() + 4
    }

    /// Writes the whole message into `buf` (at least [`QueryRepr::buffer_len`] bytes).
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let len = self.buffer_len();
        let b = buf.get_mut(..len).ok_or(WireError::Truncated)?;
        let fl = if self.recursion_desired { flags::RD } else { 0 };
        b[field::ID].copy_from_slice(&self.id.to_be_bytes());
        b[field::FLAGS].copy_from_slice(&fl.to_be_bytes());
        b[field::QDCOUNT].copy_from_slice(&1u16.to_be_bytes());
        b[field::ANCOUNT].fill(0);
        b[field::NSCOUNT].fill(0);
        b[field::ARCOUNT].fill(0);
        let q = HEADER_LEN + self.qname.len();
        b[HEADER_LEN..q].copy_from_slice(self.qname);
        b[q..q + 2].copy_from_slice(&self.qtype.to_be_bytes());
        b[q + 2..q + 4].copy_from_slice(&CLASS_IN.to_be_bytes());
        Ok(())
    }
}

/// One answer record: owner name, type, class, TTL and data as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    /// The data in presentation form: `192.0.2.53`, `2001:db8::53`, `ns1.example.`,
    /// `10 mail.example.`, `"text"`, the SOA's seven fields, or `\# LEN HEX` (RFC 3597)
    /// for other types.
    pub data: String,
}

/// A reply: header fields, the echoed question and the answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseRepr {
    pub id: u16,
    pub flags: u16,
    pub rcode: Rcode,
    /// The first question as echoed, name in lower case with a trailing dot.
    pub question: Option<(String, u16)>,
    pub answers: Vec<Record>,
}

impl ResponseRepr {
    /// Parses a reply; the authority and additional sections are not read.
    pub fn parse(msg: &[u8]) -> Result<ResponseRepr> {
        let msg = &msg[..msg.len().min(MAX_MESSAGE_LEN)];
        let p = Packet::new_checked(msg)?;
        if !p.is_response() {
            return Err(WireError::Malformed);
        }
        let mut at = HEADER_LEN;
        let mut question = None;
        for i in 0..p.qdcount() {
            let (name, next) = read_name(msg, at)?;
            let qtype = be16(msg, next)?;
            be16(msg, next + 2)?;
            at = next + 4;
            if i == 0 {
                question = Some((name, qtype));
            }
        }
        let mut answers = Vec::new();
        for _ in 0..p.ancount() {
            let (name, next) = read_name(msg, at)?;
            let rtype = be16(msg, next)?;
            let class = be16(msg, next + 2)?;
            let ttl = (u32::from(be16(msg, next + 4)?) << 16) | u32::from(be16(msg, next + 6)?);
            let rdlen = usize::from(be16(msg, next + 8)?);
            let start = next + 10;
            let end = start + rdlen;
            if end > msg.len() {
                return Err(WireError::Truncated);
            }
            if answers.len() < MAX_ANSWERS {
                let data = rdata_text(msg, rtype, start, end)?;
                answers.push(Record {
                    name,
                    rtype,
                    class,
                    ttl,
                    data,
                });
            }
            at = end;
        }
        Ok(ResponseRepr {
            id: p.id(),
            flags: p.flags(),
            rcode: p.rcode(),
            question,
            answers,
        })
    }

    pub fn truncated(&self) -> bool {
        self.flags & flags::TC != 0
    }
}

/// Reads a (possibly compressed) name at `at`: its text (lower case, trailing dot) and
/// where the bytes after it start.
pub fn read_name(msg: &[u8], mut at: usize) -> Result<(String, usize)> {
    let mut text = String::new();
    let mut wire_len = 0usize;
    let mut after: Option<usize> = None;
    // Each pointer must point before the one that led to it: no loops, and at most as
    // many jumps as bytes.
    let mut limit = at;
    loop {
        let len = *msg.get(at).ok_or(WireError::Truncated)?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    if text.is_empty() {
                        text.push('.');
                    }
                    return Ok((text, after.unwrap_or(at + 1)));
                }
                let n = usize::from(len);
                let label = msg.get(at + 1..at + 1 + n).ok_or(WireError::Truncated)?;
                wire_len += n + 1;
                if wire_len + 1 > MAX_NAME_LEN {
                    return Err(WireError::Malformed);
                }
                for &b in label {
                    push_escaped(&mut text, b.to_ascii_lowercase());
                }
                text.push('.');
                at += 1 + n;
            }
            0xc0 => {
                let low = *msg.get(at + 1).ok_or(WireError::Truncated)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                if target >= limit {
                    return Err(WireError::Malformed);
                }
                if after.is_none() {
                    after = Some(at + 2);
                }
                limit = target;
                at = target;
            }
            // 0x40 and 0x80: extended label types (RFC 6891 retired them).
            _ => return Err(WireError::Unsupported),
        }
    }
}

/// A byte of a label or string as presentation text: printable ASCII as it is (`.`,
/// `\` and `"` escaped), anything else as `\DDD`.
fn push_escaped(out: &mut String, b: u8) {
    match b {
        b'.' | b'\\' | b'"' => {
            out.push('\\');
            out.push(b as char);
        }
        0x21..=0x7e => out.push(b as char),
        _ => out.push_str(&format!("\\{b:03}")),
    }
}

fn rdata_text(msg: &[u8], rtype: u16, start: usize, end: usize) -> Result<String> {
    let data = &msg[start..end];
    let name_at = |at: usize| -> Result<(String, usize)> {
        let (n, next) = read_name(msg, at)?;
        if next > end {
            return Err(WireError::Malformed);
        }
        Ok((n, next))
    };
    Ok(match rtype {
        rtype::A => {
            let o: [u8; 4] = data.try_into().map_err(|_| WireError::Malformed)?;
            Ipv4Addr::from(o).to_string()
        }
        rtype::AAAA => {
            let o: [u8; 16] = data.try_into().map_err(|_| WireError::Malformed)?;
            Ipv6Addr::from(o).to_string()
        }
        rtype::NS | rtype::CNAME | rtype::PTR => name_at(start)?.0,
        rtype::MX => {
            let pref = be16(msg, start)?;
            format!("{pref} {}", name_at(start + 2)?.0)
        }
        rtype::SOA => {
            let (mname, next) = name_at(start)?;
            let (rname, next) = name_at(next)?;
            let nums = msg.get(next..next + 20).ok_or(WireError::Truncated)?;
            if next + 20 > end {
                return Err(WireError::Malformed);
            }
            let n: Vec<String> = nums
                .chunks(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]).to_string())
                .collect();
            format!("{mname} {rname} {}", n.join(" "))
        }
        rtype::TXT => {
            let mut parts = Vec::new();
            let mut i = 0;
            while i < data.len() {
                let n = usize::from(data[i]);
                let s = data.get(i + 1..i + 1 + n).ok_or(WireError::Malformed)?;
                let mut t = String::from("\"");
                for &b in s {
                    if b == b' ' {
                        t.push(' ');
                    } else {
                        push_escaped(&mut t, b);
                    }
                }
                t.push('"');
                parts.push(t);
                i += 1 + n;
            }
            parts.join(" ")
        }
        _ => {
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            format!("\\# {} {hex}", data.len())
        }
    })
}

/// Whether a record's data is `expected` as an operator writes it: addresses compared as
/// addresses, names without regard to case or a trailing dot, TXT with or without its
/// quotes.
pub fn data_matches(record: &Record, expected: &str) -> bool {
    let expected = expected.trim();
    match record.rtype {
        rtype::A | rtype::AAAA => {
            match (
                record.data.parse::<std::net::IpAddr>(),
                expected.parse::<std::net::IpAddr>(),
            ) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
        }
        rtype::TXT => {
            record.data == expected
                || record
                    .data
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    == Some(expected)
        }
        _ => {
            let norm = |s: &str| {
                s.split_whitespace()
                    .map(|w| w.trim_end_matches('.').to_ascii_lowercase())
                    .collect::<Vec<_>>()
            };
            norm(&record.data) == norm(expected)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // id 0xbeef, RD, one question: www.example.org A IN.
    const QUERY: [u8; 33] = [
        0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // header
        3, b'w', b'w', b'w', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'o', b'r', b'g',
        0, // name
        0x00, 0x01, 0x00, 0x01, // A IN
    ];

    /// The reply a server gives to QUERY: QR RD RA, the question echoed, one A record
    /// whose owner is a pointer to the question's name (offset 12), 192.0.2.53, TTL 0.
    fn reply(rcode: u8) -> Vec<u8> {
        let mut r = QUERY.to_vec();
        r[2] = 0x81;
        r[3] = 0x80 | rcode;
        r[7] = 1; // ancount
        r.extend_from_slice(&[
            0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 192, 0, 2, 53,
        ]);
        r
    }

    #[test]
    fn query_is_emitted_byte_exactly_into_a_dirty_buffer() {
        let name = encode_name("www.example.org").unwrap();
        let q = QueryRepr {
            id: 0xbeef,
            recursion_desired: true,
            qname: &name,
            qtype: rtype::A,
        };
        let mut b = vec![0xa5; q.buffer_len() + 2];
        q.emit(&mut b).unwrap();
        assert_eq!(&b[..33], &QUERY);
        assert_eq!(&b[33..], &[0xa5, 0xa5]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.id(), p.qdcount(), p.is_response()), (0xbeef, 1, false));
    }

    #[test]
    fn names_are_encoded_and_refused_as_a_resolver_would() {
        assert_eq!(encode_name(".").unwrap(), vec![0]);
        assert_eq!(
            encode_name("example.org.").unwrap(),
            encode_name("example.org").unwrap()
        );
        assert!(encode_name("").is_err());
        assert!(encode_name("a..b").is_err());
        assert!(encode_name("a b").is_err());
        assert!(encode_name(&"a".repeat(64)).is_err());
        let long = vec!["a".repeat(63); 4].join(".");
        assert!(encode_name(&long).is_err(), "256 bytes on the wire");
        let fits = [
            "a".repeat(63),
            "a".repeat(63),
            "a".repeat(63),
            "a".repeat(61),
        ]
        .join(".");
        assert_eq!(encode_name(&fits).unwrap().len(), 255);
    }

    #[test]
    fn reply_is_parsed_with_its_compressed_answer() {
        let r = ResponseRepr::parse(&reply(0)).unwrap();
        assert_eq!(r.id, 0xbeef);
        assert_eq!(r.rcode, Rcode::NoError);
        assert_eq!(r.question, Some(("www.example.org.".to_string(), rtype::A)));
        assert_eq!(
            r.answers,
            vec![Record {
                name: "www.example.org.".into(),
                rtype: rtype::A,
                class: CLASS_IN,
                ttl: 0,
                data: "192.0.2.53".into(),
            }]
        );
        assert!(data_matches(&r.answers[0], "192.0.2.53"));
        assert!(!data_matches(&r.answers[0], "192.0.2.54"));
    }

    #[test]
    fn rcodes_are_named() {
        for (code, name) in [
            (0, "NOERROR"),
            (2, "SERVFAIL"),
            (3, "NXDOMAIN"),
            (5, "REFUSED"),
            (9, "NOTAUTH"),
            (12, "RCODE12"),
        ] {
            let mut m = reply(code);
            m[7] = 0;
            m.truncate(QUERY.len());
            assert_eq!(ResponseRepr::parse(&m).unwrap().rcode.to_string(), name);
        }
    }

    #[test]
    fn record_data_reads_as_presentation_text() {
        // One question (ex. ANY IN) at offset 12, then MX, TXT, SOA and an unknown type
        // whose names point back to it.
        let mut m = vec![0, 1, 0x84, 0, 0, 1, 0, 4, 0, 0, 0, 0];
        m.extend_from_slice(&[2, b'e', b'x', 0, 0, 255, 0, 1]);
        let rec = |m: &mut Vec<u8>, t: u16, data: &[u8]| {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        };
        rec(&mut m, rtype::MX, &[0, 10, 0xc0, 12]);
        rec(&mut m, rtype::TXT, &[5, b'h', b'i', b' ', b'"', 1, 1, b'x']);
        let mut soa = vec![0xc0, 12, 1, b'h', 0xc0, 12];
        for n in [1u32, 2, 3, 4, 5] {
            soa.extend_from_slice(&n.to_be_bytes());
        }
        rec(&mut m, rtype::SOA, &soa);
        rec(&mut m, 99, &[0xab, 0xcd]);
        let parsed = ResponseRepr::parse(&m).unwrap();
        assert_eq!(parsed.question, Some(("ex.".to_string(), rtype::ANY)));
        let data: Vec<&str> = parsed.answers.iter().map(|r| r.data.as_str()).collect();
        assert_eq!(
            data,
            vec![
                "10 ex.",
                "\"hi \\\"\\001\" \"x\"",
                "ex. h.ex. 1 2 3 4 5",
                "\\# 2 abcd"
            ]
        );
        assert_eq!(parsed.answers[0].ttl, 60);
        assert!(data_matches(&parsed.answers[0], "10 EX"));
        assert!(data_matches(&parsed.answers[2], "ex h.ex 1 2 3 4 5"));
    }

    #[test]
    fn hostile_replies_are_errors_not_panics() {
        let good = reply(0);
        // Every truncation.
        for n in 0..good.len() {
            assert!(ResponseRepr::parse(&good[..n]).is_err(), "{n} bytes");
        }
        // A pointer to itself, and one pointing forward.
        let mut looped = good.clone();
        let at = QUERY.len();
        looped[at] = 0xc0;
        looped[at + 1] = at as u8;
        assert_eq!(ResponseRepr::parse(&looped), Err(WireError::Malformed));
        let mut forward = good.clone();
        forward[at + 1] = 0xff;
        assert_eq!(ResponseRepr::parse(&forward), Err(WireError::Malformed));
        // A record whose length runs past the end, an A record of 3 bytes.
        let mut long = good.clone();
        let rdlen = good.len() - 5;
        long[rdlen] = 9;
        assert_eq!(ResponseRepr::parse(&long), Err(WireError::Truncated));
        let mut short = good.clone();
        short[rdlen] = 3;
        short.pop();
        assert_eq!(ResponseRepr::parse(&short), Err(WireError::Malformed));
        // A query is not a reply.
        assert_eq!(ResponseRepr::parse(&QUERY), Err(WireError::Malformed));
        // Every byte flipped through every value: never a panic.
        for i in 0..good.len() {
            for v in [0x00, 0x3f, 0x40, 0x80, 0xc0, 0xff] {
                let mut m = good.clone();
                m[i] = v;
                let _ = ResponseRepr::parse(&m);
            }
        }
        // A huge answer count on a short message.
        let mut many = good.clone();
        many[6] = 0xff;
        assert!(ResponseRepr::parse(&many).is_err());
    }

    #[test]
    fn types_read_by_name_and_number() {
        assert_eq!(type_from_name("aaaa"), Some(rtype::AAAA));
        assert_eq!(type_from_name("SOA"), Some(rtype::SOA));
        assert_eq!(type_from_name("TYPE99"), Some(99));
        assert_eq!(type_from_name("TYPE"), None);
        assert_eq!(type_from_name("TYPE0"), None);
        assert_eq!(type_from_name("BOGUS"), None);
        assert_eq!(type_name(99), "TYPE99");
        assert_eq!(type_name(rtype::MX), "MX");
    }
}
