//! The watcher with the real `keepalived --config-test` as validator: an output keepalived
//! rejects is rolled back, logged with file:line and not reloaded; the next good save is.

mod common;
mod watch_support;

use std::sync::atomic::Ordering;

use vipcheck::watch::{Regenerate, Report, Validation};
use watch_support::*;

fn service(method: &str, real: &str) -> String {
    format!(
        "global_defs {{\n  router_id test\n}}\n\
         virtual_server 192.0.2.20 80 {{\n  lb_algo rr\n  lb_kind {method}\n  protocol TCP\n\
         {real}}}\n"
    )
}

/// keepalived, or a skip when it is not installed.
fn keepalived() -> Option<std::path::PathBuf> {
    common::tool("keepalived", "keepalived")
}

#[test]
fn output_rejected_by_keepalived_is_rolled_back_and_not_reloaded() {
    let Some(program) = keepalived() else {
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
        daemon.reload(),
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

#[test]
fn output_keepalived_only_warns_about_is_written_and_reloaded() {
    let Some(program) = keepalived() else {
        return;
    };
    let (_tmp, dir) = tempdir();
    let main = dir.join("keepalived.src.conf");
    let out = dir.join("keepalived.conf");
    let one = "  real_server 192.0.2.11 80 {\n    weight 1\n  }\n";
    std::fs::write(&main, service("DR", one)).unwrap();
    let mut regen = CopyRegen::new(main.clone(), Target::File(out.clone()));
    regen.regenerate().unwrap();
    let daemon = StandIn::start(&dir);
    let mut h = Harness::start(
        regen,
        Validation::Keepalived {
            program,
            config_id: None,
        },
        daemon.reload(),
        false,
    );

    // No lb_algo: keepalived 2.2.7 exits 5, says it sets the default scheduler, and runs.
    let warned = service("DR", one).replace("  lb_algo rr\n", "");
    save_by_rename(&main, &warned);
    let note = h.expect(|r| matches!(r, Report::Tolerated(_)));
    assert!(note.to_string().contains("no scheduler set"), "{note}");
    h.expect(is_reloaded);
    h.quiet();
    assert!(
        !h.seen
            .iter()
            .any(|r| matches!(r, Report::ValidationFailed(_) | Report::KeptLastGood { .. })),
        "{:#?}",
        h.seen
    );
    assert_eq!(daemon.wait_hups(1), 1);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("{warned}{MARKER}")
    );

    // A MISC_CHECK without script security: keepalived exits 6 and would never run the
    // script. Refused, rolled back, not reloaded.
    let misc = "  real_server 192.0.2.11 80 {\n    weight 1\n    MISC_CHECK {\n      misc_path \"/bin/true\"\n    }\n  }\n";
    save_by_rename(&main, &service("DR", misc));
    let failed = h.expect(|r| matches!(r, Report::ValidationFailed(_)));
    assert!(
        failed.to_string().contains("SECURITY VIOLATION"),
        "{failed}"
    );
    h.expect(|r| *r == Report::KeptLastGood { restored: 1 });
    h.quiet();
    assert_eq!(daemon.hups(), 1);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("{warned}{MARKER}")
    );
}

#[test]
fn error_the_running_config_already_has_does_not_block_a_change() {
    let Some(program) = keepalived() else {
        return;
    };
    let (_tmp, dir) = tempdir();
    let main = dir.join("keepalived.src.conf");
    let out = dir.join("keepalived.conf");
    // `nb_get_retry` is gone from keepalived 2.x: an error it skips, in many real configs.
    let old = "  real_server 192.0.2.11 80 {\n    weight 1\n    nb_get_retry 3\n  }\n";
    let two = "  real_server 192.0.2.11 80 {\n    weight 1\n    nb_get_retry 3\n  }\n  real_server 192.0.2.12 80 {\n    weight 1\n  }\n";
    std::fs::write(&main, service("DR", old)).unwrap();
    let mut regen = CopyRegen::new(main.clone(), Target::File(out.clone()));
    regen.regenerate().unwrap();
    let daemon = StandIn::start(&dir);
    let mut h = Harness::start(
        regen,
        Validation::Keepalived {
            program,
            config_id: None,
        },
        daemon.reload(),
        false,
    );
    save_by_rename(&main, &service("DR", two));
    h.expect(is_reloaded);
    assert!(
        h.seen
            .iter()
            .any(|r| matches!(r, Report::Tolerated(e) if e.message.contains("nb_get_retry"))),
        "{:#?}",
        h.seen
    );
    assert_eq!(daemon.wait_hups(1), 1);
    // The same error once more is more errors than the running config has: refused.
    let three = two.replace(
        "real_server 192.0.2.12 80 {\n    weight 1\n",
        "real_server 192.0.2.12 80 {\n    weight 1\n    nb_get_retry 3\n",
    );
    assert_ne!(three, two);
    save_by_rename(&main, &service("DR", &three));
    let failed = h.expect(|r| matches!(r, Report::ValidationFailed(_)));
    assert!(failed.to_string().contains("nb_get_retry"), "{failed}");
    assert!(
        failed.to_string().contains(":14:"),
        "the new one, at its line: {failed}"
    );
    h.expect(|r| *r == Report::KeptLastGood { restored: 1 });
    h.quiet();
    assert_eq!(daemon.hups(), 1);
}
