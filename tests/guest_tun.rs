//! Issue 3, TUN part: `vipcheck probe --method tun` against real IPIP / ip6tnl real servers
//! in the qemu guest (this host's kernel has no ipip), plus a DR pass on the same topology,
//! and issue 7's application check (`--check http|tcp-session`) through the tunnel.
//! The topology and the expected verdicts are in tests/guest/scenarios/probe-tun.sh.

#[path = "guest/harness.rs"]
mod harness;

#[test]
fn tun_probe_verdicts_against_real_tunnel_real_servers() {
    if !harness::guest_available() {
        return;
    }
    let run = harness::run_scenario("scenarios/probe-tun.sh", &[], &[], 100);
    run.assert_passed(&[
        "topology: no-tunl has no tunnel device",
        "topology: dr-only's tunl0 is down",
        "tun good (VIP on tunl0) = up",
        "tun good (VIP on lo) = up",
        "tun good, icmp only = up",
        "tun tunnel but no VIP = down",
        "tun tunl0 down (DR real server) = down, does not decapsulate",
        "tun no tunnel device = down, does not decapsulate",
        "tun ldirectord convention = up",
        "tun6 good = up",
        "tun6 ip6tnl0 down (DR real server) = down, does not decapsulate",
        "tun IPv4 VIP in IPv6 to an IPv6 real server = up",
        "tun IPv4 VIP in IPv6 to a tunnel that takes only IPv6 = down",
        "tun IPv4 VIP in IPv6, no VIP there = down",
        "tun http through the VIP, right body = up",
        "tun http through the VIP, wrong body = down",
        "tun tcp-session to a closed port = down, refused",
        "tun6 http through the VIP = up",
        "tun http, IPv4 VIP in IPv6 = up",
        "no nftables table left on the director",
        "dr good = up",
        "dr no VIP = down",
        "dr6 good = up",
    ]);
}
