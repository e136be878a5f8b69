//! Issue 17: `vipcheck status --ipvs` audits the real IPVS table in the qemu guest. The
//! table is built with ipvsadm (DR, TUN with IPIP and GUE, NAT, fwmark, IPv6, weight 0)
//! over good / no VIP / no listener / forwarder real servers; every row, the drift report
//! against tests/guest/fixtures/ipvs-drift.conf, and, with IPVS unloaded, exit 2 without a
//! module request; `agent --ipvs` writes every destination's verdict file and follows the
//! table. The topology and the assertions are in
//! tests/guest/scenarios/ipvs-audit.sh.

#[path = "guest/harness.rs"]
mod harness;

#[test]
fn status_ipvs_audits_the_real_ipvs_table() {
    if !harness::guest_available() {
        return;
    }
    let run = harness::run_scenario("scenarios/ipvs-audit.sh", &[], &[], 420);
    run.assert_passed(&[
        "status --ipvs exits 1 when a checked destination is down",
        "status --ipvs: every destination's row",
        "the forwarder's reason says it forwards",
        "the NAT destination is not applicable",
        "the GUE destination is probed, and down: no such host",
        "the GUE destination's tunnel type, port and flags",
        "every row has its connection counts",
        "status --ipvs table: six to act on first",
        "status --ipvs table: a quiesced destination is shown as such",
        "status --ipvs without --fwmark-vip: the fwmark row asks for it",
        "status --ipvs --prometheus: gauges for probed and weights for all",
        "status --ipvs --prometheus: up and down gauges",
        "status CONFIG --ipvs: the drift report",
        "status CONFIG --ipvs table: a drift section",
        "agent --ipvs: every DR/TUN destination's verdict file is right",
        "agent --ipvs: no file for the NAT destination",
        "agent --ipvs follows the table: a removed destination loses its file",
        "agent --ipvs stops on SIGTERM with exit 0",
        "status --ipvs unprivileged: exits 2 and names CAP_NET_ADMIN",
        "ip_vs unloaded",
        "status --ipvs without IPVS: says so, exits 2",
        "status --ipvs asked the kernel for no module",
        "control: a by-name family lookup requests net-pf-16-proto-16-family-IPVS",
    ]);
}
