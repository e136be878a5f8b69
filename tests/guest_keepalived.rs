//! Issue 5, keepalived half: the real keepalived programs the real IPVS (in the qemu guest)
//! from an operator's keepalived.conf, first as written (the baseline keeps misconfigured
//! real servers), then as rewritten by `vipcheck rewrite` (exactly the good ones, client
//! traffic reaches only them, a broken server leaves and comes back). The topology and the
//! assertions are in tests/guest/scenarios/keepalived-ipvs.sh; the config is
//! tests/guest/fixtures/keepalived.conf.

#[path = "guest/harness.rs"]
mod harness;

#[test]
fn keepalived_with_vipcheck_keeps_exactly_the_good_real_servers_in_ipvs() {
    if !harness::guest_available() {
        return;
    }
    let run = harness::run_scenario("scenarios/keepalived-ipvs.sh", &[], &[], 150);
    run.assert_passed(&[
        "baseline: keepalived programs every real server",
        "baseline: the management-address checks keep the misconfigured real servers",
        "keepalived stopped and removed its virtual servers",
        "vipcheck rewrite writes the config",
        "rewrite added a MISC_CHECK to each of the 9 real servers",
        "keepalived -t accepts the rewritten config",
        "vipcheck: exactly the good real servers are in IPVS",
        "vipcheck: 192.0.2.100:80 answered only by good1, good2",
        "vipcheck: 192.0.2.101:80 answered only by tungood",
        "vipcheck: [2001:db8::100]:80 answered only by good6",
        "vipcheck: good1 without its VIP is removed",
        "vipcheck: 192.0.2.100:80 answered only by good2 while good1 is broken",
        "vipcheck: good1 with its VIP again is back",
        "vipcheck: 192.0.2.100:80 answered by good1 and good2 again",
    ]);
}
