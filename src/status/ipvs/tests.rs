use super::*;
use crate::config::TunnelChecksum;
use crate::net::ipvs::tests::captured_table;
use std::time::Duration;

fn fwmark_vips() -> BTreeMap<u32, Vec<IpAddr>> {
    BTreeMap::from([(5, vec!["192.0.2.103".parse().unwrap()])])
}

/// Up when the real server's last octet is 11, 12, 21 or 31 (the scenario's good ones).
fn outcomes(rows: &[IpvsRow]) -> Vec<Option<Outcome>> {
    rows.iter()
        .map(|r| {
            r.pair.as_ref().map(|p| {
                let last = match p.rip {
                    IpAddr::V4(a) => a.octets()[3],
                    IpAddr::V6(a) => a.octets()[15],
                };
                let up = matches!(last, 0x11 | 0x31 | 11 | 12 | 21 | 31);
                Outcome {
                    up,
                    reason: if up {
                        String::new()
                    } else {
                        format!("{} has no VIP", p.rip)
                    },
                    latency: up.then(|| Duration::from_micros(300)),
                }
            })
        })
        .collect()
}

#[test]
fn dr_and_tun_destinations_are_probed_on_their_vip_nat_is_not_applicable() {
    let t = captured_table();
    let rows = rows(&t, &fwmark_vips());
    assert_eq!(rows.len(), 12);
    let probed: Vec<String> = rows
        .iter()
        .filter_map(|r| r.pair.as_ref())
        .map(|p| format!("{} {} {:?} {} {}", p.vip, p.rip, p.port, p.proto, p.method))
        .collect();
    assert_eq!(
        probed,
        [
            "192.0.2.100 192.0.2.11 Some(80) tcp DR",
            "192.0.2.100 192.0.2.13 Some(80) tcp DR",
            "192.0.2.100 192.0.2.14 Some(80) tcp DR",
            "192.0.2.100 192.0.2.15 Some(80) tcp DR",
            "192.0.2.100 192.0.2.16 Some(80) tcp DR",
            "192.0.2.101 192.0.2.21 Some(80) tcp TUN",
            "192.0.2.101 192.0.2.22 Some(80) tcp TUN",
            "192.0.2.101 192.0.2.23 Some(80) tcp TUN",
            "2001:db8::100 2001:db8::31 Some(80) tcp DR",
            "2001:db8::100 2001:db8::32 Some(80) tcp DR",
            "192.0.2.103 192.0.2.12 None tcp DR",
        ]
    );
    let nat = rows
        .iter()
        .find(|r| r.dest.addr.to_string() == "192.0.2.41")
        .unwrap();
    assert!(nat.pair.is_none());
    assert!(nat
        .not_checked
        .as_deref()
        .unwrap()
        .starts_with("not applicable: NAT"));
    let gue = rows
        .iter()
        .find(|r| r.dest.addr.to_string() == "192.0.2.23")
        .unwrap();
    // A GUE destination is probed in GUE, on the port and with the flags IPVS uses.
    assert!(gue.not_checked.is_none());
    assert_eq!(
        gue.pair.as_ref().map(|p| p.tunnel),
        Some(Tunnel {
            kind: TunnelType::Gue { port: 6080 },
            csum: TunnelChecksum::Remcsum,
        })
    );
    assert_eq!(pairs_from_ipvs(&t, &fwmark_vips()).len(), 11);
}

#[test]
fn a_fwmark_service_without_a_vip_says_which_flag_to_give() {
    let t = captured_table();
    let none = rows(&t, &BTreeMap::new());
    let fw = none.iter().find(|r| r.service == "fwmark 5").unwrap();
    assert!(fw.pair.is_none());
    assert_eq!(
        fw.not_checked.as_deref(),
        Some("not checked: no VIP known for fwmark 5 (give --fwmark-vip 5=VIP)")
    );
    // Two VIPs for the mark: one row (and pair) per VIP.
    let two = BTreeMap::from([(
        5,
        vec![
            "192.0.2.103".parse().unwrap(),
            "192.0.2.104".parse().unwrap(),
        ],
    )]);
    let two = rows(&t, &two);
    assert_eq!(two.iter().filter(|r| r.service == "fwmark 5").count(), 2);
}

#[test]
fn destinations_that_get_traffic_and_fail_are_flagged_quiesced_ones_are_not() {
    let t = captured_table();
    let rows = rows(&t, &fwmark_vips());
    let outs = outcomes(&rows);
    let text = render_table(&rows, &outs, None, false);
    assert!(
        text.starts_with(
            "Act first: 6 destination(s) get traffic now (weight > 0) and fail the check\n"
        ),
        "{text}"
    );
    let line = |rip: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{rip} ")))
            .unwrap_or_else(|| panic!("no row for {rip} in\n{text}"))
            .to_string()
    };
    assert!(line("192.0.2.13").ends_with("<< act first"), "{text}");
    let quiet = line("192.0.2.16");
    assert!(
        quiet.contains("0 quiesced") && quiet.contains("down"),
        "{quiet}"
    );
    assert!(!quiet.contains("act first"), "{quiet}");
    assert!(line("192.0.2.11").contains("up"));
    assert!(line("192.0.2.41").contains("n/a"));
    assert!(line("192.0.2.23").contains("TUN/gue:6080+remcsum"));
    assert!(
        text.contains(
            "4 of 11 checked destinations up; 1 quiesced; 1 not checked; 6 to act on first"
        ),
        "{text}"
    );
    assert!(!text.contains("Drift"));
}

#[test]
fn json_rows_carry_weight_connections_tunnel_and_act_first() {
    let t = captured_table();
    let rows = rows(&t, &fwmark_vips());
    let outs = outcomes(&rows);
    let v: serde_json::Value = serde_json::from_str(&render_json(&rows, &outs, None)).unwrap();
    let d = &v["destinations"];
    assert_eq!(d.as_array().unwrap().len(), 12);
    assert_eq!(d[1]["rip"], "192.0.2.13");
    assert_eq!(d[1]["method"], "dr");
    assert_eq!(d[1]["weight"], 1);
    assert_eq!(d[1]["up"], false);
    assert_eq!(d[1]["act_first"], true);
    assert_eq!(d[4]["quiesced"], true);
    assert_eq!(d[4]["act_first"], false);
    assert_eq!(d[7]["tunnel"]["type"], "gue");
    assert_eq!(d[7]["tunnel"]["port"], 6080);
    assert_eq!(d[7]["checked"], true);
    assert_eq!(d[7]["up"], false);
    assert_eq!(d[7]["act_first"], true);
    assert_eq!(d[8]["method"], "nat");
    assert_eq!(d[0]["latency_ms"], 0.3);
    assert!(v["drift"].is_null());
}

#[test]
fn prometheus_has_the_status_gauges_and_every_weight() {
    let t = captured_table();
    let rows = rows(&t, &fwmark_vips());
    let text = render_prometheus(&rows, &outcomes(&rows));
    assert_eq!(text.matches("\nvipcheck_real_server_up{").count(), 11);
    assert_eq!(
        text.matches("\nvipcheck_ipvs_destination_weight{").count(),
        12
    );
    assert!(text.contains(
        "vipcheck_ipvs_destination_weight{service=\"192.0.2.100:80/tcp\",real=\"192.0.2.16\",method=\"dr\"} 0\n"
    ));
}

#[test]
fn the_drift_report_finds_each_known_difference() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/guest/fixtures/ipvs-drift.conf");
    let cfg = crate::config::load(&path, crate::config::Format::Keepalived, None).unwrap();
    let d = drift(&cfg.services, &captured_table());
    assert_eq!(d.services_only_in_config, ["192.0.2.104:80/tcp"]);
    assert_eq!(d.services_only_in_kernel, ["fwmark 5"]);
    let dest = |x: &DriftDestination| format!("{} {} {:?} {}", x.service, x.real, x.port, x.method);
    assert_eq!(
        d.destinations_only_in_config
            .iter()
            .map(dest)
            .collect::<Vec<_>>(),
        ["192.0.2.100:80/tcp 192.0.2.17 Some(80) DR"]
    );
    assert_eq!(
        d.destinations_only_in_kernel
            .iter()
            .map(dest)
            .collect::<Vec<_>>(),
        ["192.0.2.100:80/tcp 192.0.2.16 Some(80) DR"]
    );
    let diff = |x: &DriftDifference| {
        format!(
            "{} {} {} {} {}",
            x.service, x.real, x.field, x.config, x.kernel
        )
    };
    assert_eq!(
        d.differences.iter().map(diff).collect::<Vec<_>>(),
        [
            "192.0.2.100:80/tcp 192.0.2.15 method TUN DR",
            "192.0.2.102:80/tcp 192.0.2.41 port 8081 8080"
        ]
    );
    let rows = rows(&captured_table(), &fwmark_vips());
    let text = render_table(&rows, &outcomes(&rows), Some(&d), false);
    assert!(
        text.contains("\nDrift: config vs the kernel's IPVS table\n"),
        "{text}"
    );
    assert!(
        text.contains("  method differs:  192.0.2.100:80/tcp  192.0.2.15: config TUN, kernel DR\n"),
        "{text}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&render_json(&rows, &outcomes(&rows), Some(&d))).unwrap();
    assert_eq!(v["drift"]["differences"][1]["field"], "port");
}

#[test]
fn a_config_that_matches_the_table_has_no_drift() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/guest/fixtures/ipvs-drift.conf");
    let cfg = crate::config::load(&path, crate::config::Format::Keepalived, None).unwrap();
    // The kernel's table restricted to what the config has, with the config's methods
    // and ports: nothing to report.
    let mut t = captured_table();
    t.services
        .retain(|s| !matches!(s.key, IpvsKey::Fwmark { .. }));
    for s in &mut t.services {
        for d in &mut s.destinations {
            if d.addr.to_string() == "192.0.2.15" {
                d.forward = IpvsForward::Tunnel;
            }
            if d.addr.to_string() == "192.0.2.41" {
                d.port = 8081;
            }
        }
        s.destinations
            .retain(|d| d.addr.to_string() != "192.0.2.16");
    }
    let mut only_in_config = drift(&cfg.services, &t);
    assert_eq!(only_in_config.destinations_only_in_config.len(), 1);
    assert_eq!(only_in_config.services_only_in_config.len(), 1);
    only_in_config.destinations_only_in_config.clear();
    only_in_config.services_only_in_config.clear();
    assert!(only_in_config.is_empty(), "{only_in_config:?}");
}
