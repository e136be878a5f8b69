//! Issue 15: `vipcheck probe --method tun --tun-type gue|gre` against real servers that
//! decapsulate with the kernel's own devices (fou + ipip / ip6tnl, gre / ip6gre) in the
//! qemu guest (this host's kernel has no fou or gre), the ARP and application checks over
//! each type, and the real keepalived with real IPVS forwarding in GUE and GRE, its checks
//! written by `vipcheck rewrite`. The topology and the expected verdicts are in
//! tests/guest/scenarios/probe-gue-gre.sh. (Like the other guest targets it takes the
//! skip logic from the harness, which loads tests/common/skip.rs itself.)

#[path = "guest/harness.rs"]
mod harness;

#[test]
fn gue_and_gre_probes_and_ipvs_against_real_tunnel_real_servers() {
    if !harness::guest_available() {
        return;
    }
    let run = harness::run_scenario("scenarios/probe-gue-gre.sh", &[], &[], 600);
    run.assert_passed(&[
        "topology: gre-nodev has no GRE device",
        "gue good = up",
        "gue csum = up",
        "gue remcsum = up",
        "gue no fou port = down, does not decapsulate",
        "gue wrong port = down, does not decapsulate",
        "gue no VIP = down",
        "gue to a GRE-only real server = down",
        "ipip to a GRE-only real server = down, does not decapsulate",
        "gre good = up",
        "gre no device = down, does not decapsulate",
        "gre csum to a device that wants it = up",
        "gre without csum to a device that wants it = down",
        "gre to a GUE-only real server = down",
        "gue6 good = up",
        "gue6 csum = up",
        "gue6 wrong port = down",
        "gue6 csum, wrong port = down, does not decapsulate",
        "gre6 good = up",
        "gre6 csum = up",
        "gre6 without csum to a device that wants it = down",
        "gue http through the VIP = up",
        "gre http through the VIP = up",
        "gre csum http through the VIP = up",
        "gue6 http through the VIP = up",
        "gre6 http through the VIP = up",
        "gue http, wrong port = down",
        "vipcheck rewrite writes the tunnel options into the checks",
        "generated checks: 2 GUE, 2 GRE",
        "IPVS holds exactly the good real servers",
        "client traffic through the VIP in GUE and GRE is all answered",
    ]);
}
