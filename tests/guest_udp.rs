//! Issue 14: a UDP (DNS) service under the real keepalived and the real IPVS (in the
//! qemu guest), its config rewritten by `vipcheck rewrite --app-check`: IPVS holds
//! exactly the good real servers (DR, TUN, IPv6), and every client DNS query through the
//! VIPs is answered by them. The topology and the assertions are in
//! tests/guest/scenarios/keepalived-udp.sh; the config is
//! tests/guest/fixtures/keepalived-udp.conf.

#[path = "guest/harness.rs"]
mod harness;

#[test]
fn keepalived_with_the_dns_check_through_the_vip_keeps_exactly_the_good_real_servers() {
    if !harness::guest_available() {
        return;
    }
    let run = harness::run_scenario("scenarios/keepalived-udp.sh", &[], &[], 400);
    run.assert_passed(&[
        "vipcheck rewrite --app-check writes the config",
        "every real server's DNS_CHECK runs through the VIP too",
        "keepalived -t accepts the rewritten config",
        "vipcheck: exactly the good real servers are in IPVS",
        "vipcheck: 192.0.2.110:53 answered only by dns1, dns2",
        "vipcheck: 192.0.2.111:53 answered only by tundns",
        "vipcheck: [2001:db8::110]:53 answered only by dns6",
        "vipcheck probe: notun does not decapsulate",
        "vipcheck probe: mgmtonly has nothing on the VIP",
    ]);
}
