//! Real ldirectord (Debian's 4.12, `ldirectord -d FILE status`, which runs its config
//! reader only): it accepts (exit 3) every rewritten fixture and corpus file, and it
//! accepts or rejects (exit 2) the same small configs vipcheck's parser does.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vipcheck::config::ldirectord::{self, Document, SystemResolver};
use vipcheck::generate::Generator;
use vipcheck::rewrite::{ldirectord::plan, GenerateOptions};

const LDIRECTORD: &str = "/usr/sbin/ldirectord";

#[track_caller]
fn available() -> bool {
    common::require(
        Path::new(LDIRECTORD).exists(),
        &format!("{LDIRECTORD} is not installed (Debian package ldirectord)"),
    )
}

/// ldirectord's exit status for `path` (absolute: ldirectord prefers /etc/ha.d/NAME).
fn ldirectord_status(path: &Path) -> (i32, String) {
    let out = Command::new(LDIRECTORD)
        .arg("-d")
        .arg(path)
        .arg("status")
        .output()
        .expect("ldirectord runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Rewrites `doc` into `dir` (config and wrappers) and returns the new config's path, or
/// the plan's refusal.
fn rewrite_into(doc: &Document, dir: &Path) -> Result<PathBuf, String> {
    let opts = GenerateOptions {
        probe_path: "/usr/sbin/vipcheck".into(),
        probe_timeout: Duration::from_millis(1500),
        fwmark_vips: BTreeMap::from([(7, vec!["192.0.2.70".parse().unwrap()])]),
        templates: None,
        config_id: None,
        output_dir: Some(dir.to_path_buf()),
        app_check: false,
        feed: vipcheck::rewrite::Feed::Probe,
    };
    let plan = plan(doc, &Generator::new(None).unwrap(), &opts).map_err(|e| e.to_string())?;
    let out = plan.new_text(doc.file);
    for f in &plan.new_files {
        std::fs::write(&f.path, &f.contents).unwrap();
    }
    let path = dir.join("rewritten.cf");
    std::fs::write(&path, out).unwrap();
    Ok(path)
}

fn check_rewrite_accepted(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = ldirectord::parse_str(path.to_path_buf(), text, &SystemResolver)
        .unwrap_or_else(|d| panic!("{d}"));
    let dir = tempfile::tempdir().unwrap();
    let out = rewrite_into(&doc, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let (code, stderr) = ldirectord_status(&out);
    assert_eq!(
        code,
        3,
        "ldirectord rejects the rewrite of {}:\n{stderr}\n{}",
        path.display(),
        std::fs::read_to_string(&out).unwrap()
    );
}

#[test]
fn ldirectord_accepts_every_rewritten_fixture() {
    if !available() {
        return;
    }
    let Some(ns) = common::netns::offline("ldirectord and the system resolver look up host names")
    else {
        return;
    };
    ns.in_ns(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/ldirectord");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.is_file() {
                continue;
            }
            assert_eq!(
                ldirectord_status(&path).0,
                3,
                "fixture {} itself",
                path.display()
            );
            check_rewrite_accepted(&path);
            n += 1;
        }
        assert!(n >= 5);
        // And it rejects every error fixture, as vipcheck does.
        for entry in std::fs::read_dir(dir.join("errors")).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(ldirectord_status(&path).0, 2, "{}", path.display());
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(ldirectord::parse_str(path, text, &SystemResolver).is_err());
        }
    });
}

#[test]
fn ldirectord_accepts_every_rewritten_corpus_file_it_accepted() {
    if !available() {
        return;
    }
    let Some(ns) = common::netns::offline("ldirectord and the system resolver look up host names")
    else {
        return;
    };
    ns.in_ns(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let Some(dir) = ["../shared/corpus", "../../shared/corpus"]
            .iter()
            .map(|rel| root.join(rel).join("ldirectord"))
            .find(|d| d.is_dir())
        else {
            common::skip("../shared/corpus/ldirectord not found");
            return;
        };
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if ldirectord_status(&path).0 != 3 {
                continue;
            }
            check_rewrite_accepted(&path);
            n += 1;
        }
        println!("ldirectord accepted {n} rewritten corpus files");
        assert!(n > 0);
    });
}

/// Each small config is accepted by both or rejected by both.
#[test]
fn parser_and_ldirectord_agree_on_what_is_valid() {
    if !available() {
        return;
    }
    let Some(ns) = common::netns::offline("ldirectord and the system resolver look up host names")
    else {
        return;
    };
    ns.in_ns(|| {
        let cases = [
            "virtual=192.0.2.20:80\n    real=192.0.2.11:80 gate\n",
            "virtual=192.0.2.20:80\n   real=192.0.2.11:80 gate\n",
            "virtual=192.0.2.20:80\n\treal=192.0.2.11 gate\n# c\n\treal=192.0.2.12 gate\n",
            "virtual=192.0.2.20:80\n    real=192.0.2.11 gate\n     \n",
            "virtual=192.0.2.20:80\n    real=192.0.2.11 gate\n    \n",
            "virtual=192.0.2.20:80\n    real=192.0.2.11 gate\n\n    real=192.0.2.12 gate\n",
            "virtual=192.0.2.20:http\n    real=192.0.2.11->192.0.2.14:www masq 5 \"/x\", \"OK\"\n",
            "virtual=192.0.2.20:80\n    real=192.0.2.13->192.0.2.11 gate\n",
            "virtual6=[2001:db8::20]:443\n    real6=[2001:db8::11]:443 gate\n",
            "virtual=[2001:db8::20]:443\n",
            "virtual6=[2001:db8::20]:443\n    real=192.0.2.11 gate\n",
            "virtual=7\n    real=192.0.2.11 gate\n    protocol=fwm\n",
            "virtual=7\n    real=192.0.2.11 gate\n    protocol=tcp\n",
            "virtual=192.0.2.20:80\n    real=192.0.2.11 gate\n    protocol=sctp\n",
            "virtual=192.0.2.20:80\n    real=192.0.2.11 bogus\n",
            "virtual=192.0.2.20:80\n    real=192.0.2.11\n",
            "virtual=192.0.2.20:80\n    real=192.0.2.11 gate 1 junk\n",
            "virtual=192.0.2.20:80\n    real=192.0.2.11 gate 1 l:5 u:9\n",
            "virtual=192.0.2.20:80\n    checktype=sometimes\n",
            "virtual=192.0.2.20:80\n    checktype=3\n",
            "virtual=192.0.2.20:80\n    checktype=external-perl\n",
            "virtual=192.0.2.20:80\n    service=gopher\n",
            "virtual=192.0.2.20:80\n    receive=\"#x\"\n",
            "virtual=192.0.2.20:80\n    receive=\"x\" # comment\n",
            "virtual=192.0.2.20:80\n    login=bare\n",
            "virtual=192.0.2.20:80\n    checkport=0\n",
            "virtual=192.0.2.20:80\n    checkport=65535\n",
            "virtual=192.0.2.20:80\n    netmask=255.255.255.0\n",
            "virtual=192.0.2.20:80\n    netmask=24\n",
            "virtual=192.0.2.20:80\n    httpmethod=head\n",
            "virtual=192.0.2.20:80\n    virtualhost=\"a b\"\n",
            "virtual=192.0.2.20:80\n    fallback=127.0.0.1:80 gate\n",
            "virtual=192.0.2.20:80\n    fallback=127.0.0.1:80 nat\n",
            "virtual=192.0.2.20:80\n    quiescent=yes \n",
            "virtual=192.0.2.20:80\n    emailalertstatus=starting, running\n",
            "virtual=192.0.2.20:80\n    emailalertstatus=none,running\n",
            "virtual=192.0.2.20:80\nvirtual=192.0.2.20:80\n",
            "virtual=192.0.2.20:80\n    protocol=udp\nvirtual=192.0.2.20:80\n",
            "virtual=192.0.2.20:nosuchservice\n",
            "virtual=192.0.2.20:99999\n",
            "virtual=192.0.2.20\n",
            "checktimeout=0\n",
            "checktimeout=00\n",
            "autoreload=yes\nquiescent=no\nfork=yes\n",
            "autoreload=Yes\n",
            "timeout=3\n",
            "connecttimeout=3\n",
            "supervised\n",
            "supervised=maybe\n",
            "logfile=/var/log/x\n",
            "logfile=\"local0\"\n",
            "  checktimeout=3\n",
            "# comment\n\n   \n\t# indented comment\n",
            "fallback=127.0.0.1:80\n",
            "emailalert=\"\"\n",
        ];
        let dir = tempfile::tempdir().unwrap();
        let mut disagreements = Vec::new();
        for (i, text) in cases.iter().enumerate() {
            let path = dir.path().join(format!("case{i}.cf"));
            std::fs::write(&path, text).unwrap();
            let ours = ldirectord::parse_str(path.clone(), text.to_string(), &SystemResolver);
            let (code, stderr) = ldirectord_status(&path);
            let agree = matches!((&ours, code), (Ok(_), 3) | (Err(_), 2));
            if !agree {
                disagreements.push(format!(
                    "{text:?}: ldirectord {code}, vipcheck {}\n{stderr}",
                    match &ours {
                        Ok(_) => "accepted".to_string(),
                        Err(d) => d.to_string(),
                    }
                ));
            }
        }
        assert!(
            disagreements.is_empty(),
            "{}",
            disagreements.join("\n---\n")
        );
    });
}

/// A small linear congruential generator: the same mutations on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// Deletes a few bytes or inserts a config token at a random character boundary.
fn mutate(text: &str, rng: &mut Lcg) -> String {
    const TOKENS: &[&str] = &[
        "\n",
        "\t",
        "   ",
        "#",
        "=",
        "\"",
        ":",
        "->",
        " ",
        "0",
        "real=",
        "virtual=",
        "checktype=",
        " gate",
        "[",
        "service=https",
        "protocol=udp",
        "192.0.2.1",
    ];
    let mut t = text.to_string();
    let mut at = rng.next(t.len() + 1);
    while !t.is_char_boundary(at) {
        at -= 1;
    }
    if rng.next(2) == 0 {
        let mut end = (at + 1 + rng.next(8)).min(t.len());
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        t.replace_range(at..end, "");
    } else {
        t.insert_str(at, TOKENS[rng.next(TOKENS.len())]);
    }
    t
}

/// Mutated fixtures: vipcheck and ldirectord accept and reject the same ones, and
/// ldirectord accepts vipcheck's rewrite of every one it accepts.
#[test]
fn parser_and_ldirectord_agree_on_mutated_fixtures() {
    if !available() {
        return;
    }
    let Some(ns) = common::netns::offline("ldirectord and the system resolver look up host names")
    else {
        return;
    };
    ns.in_ns(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/ldirectord");
        let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        fixtures.sort();
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = Lcg(0xabc123);
        let mut disagreements = Vec::new();
        for i in 0..40 {
            let original = std::fs::read_to_string(&fixtures[i % fixtures.len()]).unwrap();
            let text = mutate(&original, &mut rng);
            let path = tmp.path().join(format!("m{i}.cf"));
            std::fs::write(&path, &text).unwrap();
            let ours = ldirectord::parse_str(path.clone(), text.clone(), &SystemResolver);
            let (code, stderr) = ldirectord_status(&path);
            match (&ours, code) {
                (Ok(doc), 3) => {
                    let out_dir = tmp.path().join(format!("out{i}"));
                    std::fs::create_dir(&out_dir).unwrap();
                    // A plan may refuse (a located error), e.g. for a broken marker pair.
                    if let Ok(out) = rewrite_into(doc, &out_dir) {
                        let (code, stderr) = ldirectord_status(&out);
                        if code != 3 {
                            disagreements.push(format!("rewrite of {text:?} rejected:\n{stderr}"));
                        }
                    }
                }
                (Err(_), 2) => {}
                _ => disagreements.push(format!(
                    "{text:?}: ldirectord {code}, vipcheck {}\n{stderr}",
                    match &ours {
                        Ok(_) => "accepted".to_string(),
                        Err(d) => d.to_string(),
                    }
                )),
            }
        }
        assert!(
            disagreements.is_empty(),
            "{}",
            disagreements.join("\n---\n")
        );
    });
}
