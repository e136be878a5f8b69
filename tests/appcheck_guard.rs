//! The RST guard's nftables table (root): installed over netlink, it holds exactly one rule for the session's RSTs and is gone as soon as the guard is.

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use vipcheck::probe::session::guard::{table_name, RstGuard};

fn privileged(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let nft = Command::new("nft")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    let why = match (root, nft) {
        (false, _) => "needs root (network namespaces, nftables)",
        (true, false) => "needs nft (nftables) to read the ruleset back",
        _ => return true,
    };
    common::require(false, &format!("{why} ({what})"))
}

/// A private network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("vcguard{tag}{}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(ok.is_ok_and(|s| s.success()), "ip netns add {name}");
        Netns(name)
    }

    fn ruleset(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "list", "ruleset"])
            .output()
            .expect("nft list ruleset");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
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
        let holder = {
            let path = format!("/run/netns/{}", ns.0);
            std::thread::spawn(move || {
                use std::os::fd::AsRawFd;
                let file = std::fs::File::open(&path).expect("open netns");
                // SAFETY: a namespace fd and the matching flag.
                assert_eq!(
                    unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
                    0
                );
                let g = RstGuard::install(s, 40000, v, 80, Instant::now() + Duration::from_secs(5));
                let _ = ready_tx.send(g.as_ref().err().map(|e| e.to_string()));
                if g.is_ok() {
                    let _ = rx.recv_timeout(Duration::from_secs(10));
                }
                drop(g);
            })
        };
        let err = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("guard thread answered");
        assert_eq!(err, None, "installing the guard");
        let rules = ns.ruleset();
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
        while !ns.ruleset().trim().is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(ns.ruleset().trim(), "", "the table outlived the guard");
    }
}

#[test]
fn netlink_guard_holds_one_rule_and_goes_with_the_socket() {
    if privileged("netlink_guard_holds_one_rule_and_goes_with_the_socket") {
        guard_holds_one_rule_and_goes();
    }
}
