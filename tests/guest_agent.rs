//! Issue 13, keepalived fed by the agent: the real keepalived programs the real IPVS (in
//! the qemu guest) from the operator's config (without its own HTTP_GETs, see
//! tests/guest/fixtures/keepalived-agent.conf) rewritten with `vipcheck rewrite --feed
//! agent`, and `vipcheck agent` writes the verdict files its FILE_CHECKs read. Before the
//! agent runs the pools stay full (init_file 0); with it IPVS holds exactly the good real
//! servers; a server that loses its VIP leaves within the issue's `interval x fall + 1 s`
//! (the agent probes again after its retry delay; the figure is printed as a `MEASURED:`
//! line) and comes back; stopping the agent (SIGTERM, SIGKILL)
//! keeps the pool. The topology and assertions are in
//! tests/guest/scenarios/keepalived-agent.sh.

#[path = "guest/harness.rs"]
mod harness;

#[test]
fn keepalived_fed_by_the_agent_keeps_exactly_the_good_real_servers_in_ipvs() {
    if !harness::guest_available() {
        return;
    }
    let run = harness::run_scenario("scenarios/keepalived-agent.sh", &[], &[], 600);
    run.assert_passed(&[
        "vipcheck rewrite --feed agent writes the config",
        "rewrite added a FILE_CHECK to each of the 9 real servers and 9 track_files",
        "keepalived -t accepts the agent-fed config",
        "before the agent: keepalived keeps every real server (init_file 0)",
        "before the agent: the pools stay full",
        "before the agent: no FILE_CHECK takes a server out",
        "keepalived created the 9 verdict files holding 0",
        "agent: exactly the good real servers are in IPVS",
        "agent: 192.0.2.100:80 answered only by good1, good2",
        "agent: 192.0.2.101:80 answered only by tungood",
        "agent: [2001:db8::100]:80 answered only by good6",
        "agent: good1 without its VIP leaves IPVS within",
        "agent: the table is the good servers but good1",
        "agent: 192.0.2.100:80 answered only by good2 while good1 is broken",
        "agent: good1 with its VIP again is back",
        "agent stopped (SIGTERM): the pool is kept",
        "agent restarted: the pool is unchanged",
        "agent stopped (SIGKILL): the pool is kept",
        "keepalived stopped and removed its virtual servers",
    ]);
}
