//! The watcher with the real `keepalived --config-test` as validator: an output keepalived
//! rejects is rolled back, logged with file:line and not reloaded; the next good save is.

mod watch_support;

use std::sync::atomic::Ordering;

use vipcheck::watch::{find_program, Regenerate, Reload, Report, Validation};
use watch_support::*;

fn service(method: &str, real: &str) -> String {
    format!(
        "global_defs {{\n  router_id test\n}}\n\
         virtual_server 192.0.2.20 80 {{\n  lb_algo rr\n  lb_kind {method}\n  protocol TCP\n\
         {real}}}\n"
    )
}

#[test]
fn output_rejected_by_keepalived_is_rolled_back_and_not_reloaded() {
    let Some(program) = find_program("keepalived") else {
        assert!(
            std::env::var("VIPCHECK_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "keepalived is not installed and VIPCHECK_REQUIRE_PRIVILEGED=1"
        );
        println!("skipped: needs keepalived installed (apt-get install keepalived)");
        return;
    };
    let (_tmp, dir) = tempdir();
    let main = dir.join("keepalived.src.conf");
    let out = dir.join("keepalived.conf");
    let one = "  real_server 192.0.2.11 80 {\n    weight 1\n  }\n";
    let two = "  real_server 192.0.2.11 80 {\n    weight 1\n  }\n  real_server 192.0.2.12 80 {\n    weight 1\n  }\n";
    std::fs::write(&main, service("DR", one)).unwrap();
    let mut regen = CopyRegen::new(main.clone(), Target::File(out.clone()));
    regen.regenerate().unwrap();
    regen.calls.store(0, Ordering::SeqCst);
    let good = std::fs::read_to_string(&out).unwrap();
    let daemon = StandIn::start(&dir);
    let mut h = Harness::start(
        regen,
        Validation::Keepalived {
            program,
            config_id: None,
        },
        Reload::Signal {
            pidfile: daemon.pidfile.clone(),
        },
        false,
    );

    // Parses for the stand-in regenerator, but keepalived rejects the method (line 6).
    save_by_rename(&main, &service("FOO", one));
    let failed = h.expect(|r| matches!(r, Report::ValidationFailed(_)));
    let Report::ValidationFailed(e) = failed else {
        unreachable!()
    };
    assert_eq!(e.path.as_deref(), Some(out.as_path()), "{e}");
    assert_eq!(e.line, Some(6), "{e}");
    assert!(e.to_string().contains("FOO"), "{e}");
    h.expect(|r| *r == Report::KeptLastGood { restored: 1 });
    let q = h.quiet();
    assert_eq!(count(&q, is_reloaded), 0, "{q:#?}");
    assert_eq!(count(&q, is_change), 0, "the rollback was acted on: {q:#?}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), good);
    assert_eq!(daemon.hups(), 0);

    // Fixed, with a second real server: regenerated, valid, reloaded once.
    save_by_rename(&main, &service("DR", two));
    h.expect(is_reloaded);
    let q = h.quiet();
    assert_eq!(count(&q, is_reloaded), 0, "{q:#?}");
    assert_eq!(daemon.wait_hups(1), 1);
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("192.0.2.12"));
}
