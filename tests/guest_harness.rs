//! The qemu guest harness itself: the guest boots the Debian cloud kernel with the modules
//! the scenarios need, runs a scenario from the shared host root, and hands back its exit
//! status. Needs root, qemu-system-x86 and apt (for the kernel package); see tests/guest/.

#[path = "guest/harness.rs"]
mod harness;

#[test]
fn guest_boots_with_ipvs_tunnels_and_netns_and_runs_vipcheck() {
    if !harness::guest_available() {
        return;
    }
    let run = harness::run_scenario("scenarios/smoke.sh", &[], &[], 60);
    run.assert_passed(&[
        "module ip_vs loaded",
        "module ipip loaded",
        "module ip6_tunnel loaded",
        "module veth loaded",
        "module bridge loaded",
        "ip netns add",
        "bridge + veth into a netns",
        "IPVS answers",
        "ipip fallback device in a new netns",
        "vipcheck runs",
    ]);
}

#[test]
fn guest_runner_returns_the_scenario_exit_status() {
    if !harness::guest_available() {
        return;
    }
    let run = harness::run_scenario("scenarios/exit-status.sh", &["7"], &[], 60);
    assert_eq!(
        run.status,
        Some(7),
        "run.sh must pass the scenario's status through"
    );
    assert!(run.console.contains("exit-status: leaving with 7"));
}

#[test]
fn guest_runner_ends_a_scenario_that_outlives_its_timeout() {
    if !harness::guest_available() {
        return;
    }
    let run = harness::run_scenario("scenarios/hang.sh", &[], &[], 40);
    // 124 comes only from the runner's timeout: the scenario itself would sleep 600 s.
    assert_eq!(run.status, Some(124), "run.sh reports a timeout as 124");
    assert!(
        run.console.contains("hang: sleeping"),
        "the scenario did start"
    );
}
