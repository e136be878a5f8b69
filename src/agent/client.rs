//! `vipcheck status --agent ADDR:PORT`: the running agent's view (its `/status`), shown
//! as `status` shows its own probes (table, `--json`, `--prometheus`).

use std::io::{IsTerminal, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

use crate::config::{ForwardingMethod, Protocol, Tunnel};
use crate::status::{render_json, render_prometheus, render_table, Outcome, Pair, StatusInputs};

/// How long to wait for the agent.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Fetches `GET path` from `addr` and returns the body of a 200 answer.
pub fn get(addr: &str, path: &str) -> Result<String, String> {
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let mut s = TcpStream::connect_timeout(&sock, TIMEOUT)
        .map_err(|e| format!("cannot reach the agent at {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let _ = s.set_write_timeout(Some(TIMEOUT));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("cannot ask the agent at {addr}: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .map_err(|e| format!("no answer from the agent at {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("the agent at {addr} sent no HTTP answer"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("the agent at {addr} answered {status:?}"));
    }
    Ok(body.to_string())
}

/// Reads `/status`'s rows back into pairs and outcomes.
pub fn parse_rows(body: &str) -> Result<Vec<(Pair, Outcome)>, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let rows = v.as_array().ok_or("not a JSON array")?;
    rows.iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().map(str::to_string);
            let ip = |k: &str| {
                text(k)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("row without a valid {k}"))
            };
            let proto = match r["proto"].as_str() {
                Some("udp") => Protocol::Udp,
                Some("sctp") => Protocol::Sctp,
                _ => Protocol::Tcp,
            };
            let method = match r["method"].as_str() {
                Some("tun") => ForwardingMethod::Tunnel,
                Some("nat") => ForwardingMethod::Nat,
                _ => ForwardingMethod::DirectRouting,
            };
            let tunnel = match r.get("tunnel") {
                Some(t) => serde_json::from_value(t.clone()).map_err(|e| format!("tunnel: {e}"))?,
                None => Tunnel::default(),
            };
            let pair = Pair {
                service: text("service").unwrap_or_default(),
                vip: ip("vip")?,
                port: r["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
                proto,
                rip: ip("rip")?,
                method,
                config_checks: r["config_checks"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                interval: None,
                tunnel,
                udp: Default::default(),
            };
            let outcome = Outcome {
                up: r["up"].as_bool().unwrap_or(false),
                reason: text("reason").unwrap_or_default(),
                latency: r["latency_ms"]
                    .as_f64()
                    .filter(|ms| ms.is_finite() && *ms >= 0.0)
                    .map(|ms| Duration::from_secs_f64(ms / 1e3)),
            };
            Ok((pair, outcome))
        })
        .collect()
}

/// Exit codes as `status`: 0 every pair up, 1 any down, 2 the agent cannot be asked.
pub fn run_cli(args: StatusInputs, addr: &str) -> i32 {
    let rows = match get(addr, "/status").and_then(|b| parse_rows(&b)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vipcheck: {e}; hint: is `vipcheck agent` running with --listen {addr}?");
            return 2;
        }
    };
    let (pairs, outcomes): (Vec<Pair>, Vec<Outcome>) = rows.into_iter().unzip();
    let text = if args.json {
        render_json(&pairs, &outcomes)
    } else if args.prometheus {
        render_prometheus(&pairs, &outcomes)
    } else {
        render_table(
            &pairs,
            &outcomes,
            args.color.colors(std::io::stdout().is_terminal()),
        )
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    i32::from(outcomes.iter().any(|o| !o.up))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rows_read_back_as_the_pairs_and_outcomes_they_came_from() {
        let pair = Pair {
            service: "[2001:db8::20]:80/tcp".into(),
            vip: "2001:db8::20".parse().unwrap(),
            port: Some(80),
            proto: Protocol::Tcp,
            rip: "2001:db8::b".parse().unwrap(),
            method: ForwardingMethod::Tunnel,
            config_checks: vec!["HTTP_GET".into()],
            interval: None,
            tunnel: Tunnel {
                kind: crate::config::TunnelType::Gue { port: 6080 },
                csum: crate::config::TunnelChecksum::Remcsum,
            },
            udp: Default::default(),
        };
        let outcome = Outcome {
            up: true,
            reason: "icmp filtered".into(),
            latency: Some(Duration::from_micros(250)),
        };
        let json = render_json(std::slice::from_ref(&pair), std::slice::from_ref(&outcome));
        let rows = parse_rows(&json).unwrap();
        assert_eq!(rows, vec![(pair, outcome)]);
        assert!(parse_rows("{}").is_err());
    }
}
