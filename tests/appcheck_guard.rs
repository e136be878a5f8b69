//! The RST guard's nftables table (root): installed over netlink, it holds exactly one rule for the session's RSTs and is gone as soon as the guard is.

use std::net::IpAddr;
use std::time::{Duration, Instant};

mod common;

use common::netns::{in_named, Netns};
use vipcheck::probe::session::guard::{table_name, RstGuard};

fn privileged(what: &str) -> bool {
    common::root(&format!("network namespaces, nftables: {what}"))
        && common::tools(&[("nft", "nftables")])
}

/// The namespace's nftables ruleset, as `nft list ruleset` prints it.
fn ruleset(ns: &Netns) -> String {
    ns.run("nft", &["list", "ruleset"])
}

fn guard_holds_one_rule_and_goes() {
    let ns = Netns::new("l");
    for (src, vip, fam) in [
        ("192.0.2.1", "192.0.2.20", "ip"),
        ("2001:db8::1", "2001:db8::20", "ip6"),
    ] {
        let (s, v): (IpAddr, IpAddr) = (src.parse().unwrap(), vip.parse().unwrap());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        // The guard lives on the namespace thread until the test has read the ruleset.
        let name = ns.name().to_string();
        let holder = std::thread::spawn(move || {
            in_named(&name, move || {
                let g = RstGuard::install(s, 40000, v, 80, Instant::now() + Duration::from_secs(5));
                let _ = ready_tx.send(g.as_ref().err().map(|e| e.to_string()));
                if g.is_ok() {
                    let _ = rx.recv_timeout(Duration::from_secs(10));
                }
                drop(g);
            })
        });
        let err = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("guard thread answered");
        assert_eq!(err, None, "installing the guard");
        let rules = ruleset(&ns);
        let rule =
            format!("{fam} saddr {src} {fam} daddr {vip} tcp sport 40000 tcp dport 80 tcp flags");
        assert!(rules.contains(&rule), "{rules}");
        assert!(rules.contains("flags owner"), "{rules}");
        assert!(rules.contains(&table_name(40000)), "{rules}");
        assert!(
            rules.contains("hook output priority raw; policy accept;"),
            "{rules}"
        );
        assert_eq!(rules.matches("drop").count(), 1, "{rules}");
        drop(tx);
        holder.join().expect("holder");
        // Gone with the guard (the kernel's teardown is asynchronous: wait, bounded).
        let until = Instant::now() + Duration::from_secs(3);
        while !ruleset(&ns).trim().is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(ruleset(&ns).trim(), "", "the table outlived the guard");
    }
}

#[test]
fn netlink_guard_holds_one_rule_and_goes_with_the_socket() {
    if privileged("netlink_guard_holds_one_rule_and_goes_with_the_socket") {
        guard_holds_one_rule_and_goes();
    }
}
