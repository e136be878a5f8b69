//! A UDP service's own check from its config, to run through the VIP (`rewrite
//! --app-check`, `status`): keepalived's DNS_CHECK (`type`, `name`) and UDP_CHECK
//! (`payload`, `require_reply`, `min_reply_length`, `max_reply_length`), and
//! ldirectord's `service=dns` (`request` = the name, `receive` = the expected answer).

use std::net::IpAddr;

use serde::Serialize;

use crate::config::ExistingCheck;

/// keepalived's defaults: UDP_CHECK's `max_reply_length` (a `u8`'s range), DNS_CHECK's
/// name and type.
const UDP_CHECK_MAX_REPLY: u32 = 255;

/// The UDP check's options as `vipcheck probe` takes them. Every value was checked to be
/// one word without quotes, so it goes into a command line as it is.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct UdpAppProbe {
    /// `dns` or `udp` (`--check`).
    pub check: &'static str,
    pub dns_name: Option<String>,
    pub dns_type: Option<String>,
    pub dns_expect: Option<String>,
    pub udp_payload: Option<String>,
    pub udp_expect_len: Option<String>,
}

impl UdpAppProbe {
    /// The probe's options after `--proto udp`: `--check dns --dns-name=...`.
    pub fn args(&self) -> Vec<String> {
        let mut out = vec!["--check".to_string(), self.check.to_string()];
        let mut opt = |flag: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push(format!("--{flag}={v}"));
            }
        };
        opt("dns-name", &self.dns_name);
        opt("dns-type", &self.dns_type);
        opt("dns-expect", &self.dns_expect);
        opt("udp-payload", &self.udp_payload);
        opt("udp-expect-len", &self.udp_expect_len);
        out
    }
}

fn word(what: &str, v: &str) -> Result<String, String> {
    if v.is_empty()
        || v.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'\\`$".contains(c))
    {
        return Err(format!(
            "{what} {v:?} cannot be passed on a command line as one word"
        ));
    }
    Ok(v.to_string())
}

fn param<'a>(c: &'a ExistingCheck, key: &str) -> Option<&'a str> {
    // keepalived keeps the last value of a repeated keyword.
    c.params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The first UDP service check among a real server's checks (`None`: it has none), or
/// why it cannot be run through the VIP.
pub fn from_checks(checks: &[ExistingCheck]) -> Option<Result<UdpAppProbe, String>> {
    checks
        .iter()
        .find_map(|c| match (c.kind.as_str(), c.detail.as_str()) {
            ("DNS_CHECK", _) => Some(dns_check(c)),
            ("UDP_CHECK", _) => Some(udp_check(c)),
            (_, "dns") => Some(ldirectord_dns(c)),
            _ => None,
        })
}

fn dns_check(c: &ExistingCheck) -> Result<UdpAppProbe, String> {
    Ok(UdpAppProbe {
        check: "dns",
        dns_name: param(c, "name").map(|n| word("name", n)).transpose()?,
        dns_type: param(c, "type").map(|t| word("type", t)).transpose()?,
        ..UdpAppProbe::default()
    })
}

fn udp_check(c: &ExistingCheck) -> Result<UdpAppProbe, String> {
    let payload = param(c, "payload")
        .map(|p| p.split_whitespace().collect::<String>())
        .map(|p| word("payload", &p))
        .transpose()?;
    let number = |key: &str, default: u32| -> Result<u32, String> {
        match param(c, key) {
            None => Ok(default),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= u32::from(u16::MAX))
                .ok_or_else(|| format!("{key} {v:?} is not a length from 0 to 65535")),
        }
    };
    let expect_len = match param(c, "require_reply") {
        None => None,
        Some(data) if !data.is_empty() => {
            return Err(format!(
                "require_reply with reply data ({data}) cannot be checked through the VIP yet"
            ))
        }
        Some(_) => Some(format!(
            "{}-{}",
            number("min_reply_length", 0)?,
            number("max_reply_length", UDP_CHECK_MAX_REPLY)?
        )),
    };
    Ok(UdpAppProbe {
        check: "udp",
        udp_payload: payload,
        udp_expect_len: expect_len,
        ..UdpAppProbe::default()
    })
}

/// ldirectord's check_dns: `request` without its leading `/` is searched (an IPv4
/// address as its PTR name, as Net::DNS does, else A), and an A or PTR answer must match
/// `receive` (an empty `receive` never matches there, so it is down; here it asks for any
/// successful answer).
fn ldirectord_dns(c: &ExistingCheck) -> Result<UdpAppProbe, String> {
    from_ldirectord_dns(
        param(c, "request").unwrap_or("/"),
        param(c, "receive").unwrap_or(""),
    )
}

/// ldirectord's `service=dns` with its `request` and `receive` (see [`from_checks`]).
pub fn from_ldirectord_dns(request: &str, receive: &str) -> Result<UdpAppProbe, String> {
    let name = request.strip_prefix('/').unwrap_or(request);
    if name.is_empty() {
        return Err("service=dns needs request=NAME".to_string());
    }
    let (name, ty) = match name.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            let o = ip.octets();
            (
                format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]),
                "PTR",
            )
        }
        _ => (name.to_string(), "A"),
    };
    let receive = Some(receive).filter(|r| !r.is_empty());
    if let Some(r) = receive {
        // An address's dots are the usual regex; anything more is refused.
        if r.chars().any(|ch| "*+?[](){}|^$\\".contains(ch)) {
            return Err(format!(
                "receive {r:?} is a regular expression; --app-check matches plain text only"
            ));
        }
    }
    Ok(UdpAppProbe {
        check: "dns",
        dns_name: Some(word("request", &name)?),
        dns_type: Some(ty.to_string()),
        dns_expect: receive.map(|r| word("receive", r)).transpose()?,
        ..UdpAppProbe::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileId, Span};

    fn check(kind: &str, detail: &str, params: &[(&str, &str)]) -> ExistingCheck {
        ExistingCheck {
            kind: kind.into(),
            detail: detail.into(),
            span: Span::point(FileId(0), 0),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn keepalived_dns_check_maps_name_and_type() {
        let c = check(
            "DNS_CHECK",
            "",
            &[("type", "A"), ("name", "www.example.org")],
        );
        let p = from_checks(&[check("TCP_CHECK", "", &[]), c])
            .unwrap()
            .unwrap();
        assert_eq!(
            p.args(),
            [
                "--check",
                "dns",
                "--dns-name=www.example.org",
                "--dns-type=A"
            ]
        );
        let bare = from_checks(&[check("DNS_CHECK", "", &[])])
            .unwrap()
            .unwrap();
        assert_eq!(bare.args(), ["--check", "dns"]);
    }

    #[test]
    fn keepalived_udp_check_maps_payload_and_reply_bounds() {
        let c = check(
            "UDP_CHECK",
            "",
            &[
                ("payload", "68 65 6c"),
                ("require_reply", ""),
                ("max_reply_length", "64"),
            ],
        );
        assert_eq!(
            from_checks(&[c]).unwrap().unwrap().args(),
            [
                "--check",
                "udp",
                "--udp-payload=68656c",
                "--udp-expect-len=0-64"
            ]
        );
        let quiet = check("UDP_CHECK", "", &[("payload", "00")]);
        assert_eq!(
            from_checks(&[quiet]).unwrap().unwrap().args(),
            ["--check", "udp", "--udp-payload=00"]
        );
        let data = check("UDP_CHECK", "", &[("require_reply", "ff00")]);
        assert!(from_checks(&[data]).unwrap().is_err());
        let bad = check(
            "UDP_CHECK",
            "",
            &[("require_reply", ""), ("min_reply_length", "x")],
        );
        assert!(from_checks(&[bad]).unwrap().is_err());
    }

    #[test]
    fn ldirectord_dns_maps_request_and_receive() {
        let c = check(
            "negotiate",
            "dns",
            &[("request", "/www.example.org"), ("receive", "192.0.2.53")],
        );
        assert_eq!(
            from_checks(&[c]).unwrap().unwrap().args(),
            [
                "--check",
                "dns",
                "--dns-name=www.example.org",
                "--dns-type=A",
                "--dns-expect=192.0.2.53"
            ]
        );
        let ptr = check(
            "negotiate",
            "dns",
            &[("request", "192.0.2.53"), ("receive", "")],
        );
        assert_eq!(
            from_checks(&[ptr]).unwrap().unwrap().args(),
            [
                "--check",
                "dns",
                "--dns-name=53.2.0.192.in-addr.arpa",
                "--dns-type=PTR"
            ]
        );
        let regex = check(
            "negotiate",
            "dns",
            &[("request", "/x"), ("receive", "192\\.0.*")],
        );
        assert!(from_checks(&[regex]).unwrap().is_err());
        assert!(from_checks(&[check("negotiate", "http", &[])]).is_none());
    }
}
