//! Checks on what a replacement template (`--templates DIR`) rendered, before the rewrite
//! uses it: the next run must find the block again (one `# vipcheck:begin` ..
//! `# vipcheck:end` region holding all of it), the daemon must accept it (it parses with
//! our own parser, braces balanced), and it must hold the check it claims to add.

use std::path::Path;

use minijinja::Value;

use crate::config::keepalived::{self, ParseOptions};
use crate::config::ldirectord::{self, CheckType, OfflineResolver};
use crate::config::ExistingCheck;
use crate::rewrite::markers::{generated_blocks, BEGIN, END};

/// Why the text `name` rendered (with context `ctx`) cannot be used, if it cannot.
pub(crate) fn rendered(name: &str, text: &str, ctx: &Value) -> Result<(), String> {
    match name {
        "keepalived/misc_check.conf.j2" => {
            one_marked_block(text)?;
            misc_check(text)
        }
        "keepalived/file_check.conf.j2" => {
            one_marked_block(text)?;
            file_check(text, ctx)
        }
        "keepalived/track_files.conf.j2" => {
            one_marked_block(text)?;
            track_files(text, ctx)
        }
        "keepalived/global_defs.conf.j2" => {
            one_marked_block(text)?;
            global_defs(text, ctx)
        }
        "ldirectord/directives.cf.j2" => {
            one_marked_block(text)?;
            directives(text, ctx)
        }
        "ldirectord/check_wrapper.sh.j2" => {
            if text.starts_with("#!") {
                Ok(())
            } else {
                Err("the wrapper does not start with '#!' (ldirectord executes it directly)".into())
            }
        }
        _ => Ok(()),
    }
}

/// The whole text is one generated block (white space around it aside): otherwise the
/// next rewrite does not find it and adds another, or leaves part of it behind.
fn one_marked_block(text: &str) -> Result<(), String> {
    let blocks = generated_blocks(text);
    let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else {
        return Err(format!(
            "it has no '{BEGIN}' line followed by a '{END}' line, so the next rewrite \
             would not find it and would add it again"
        ));
    };
    if blocks.len() > 1 {
        return Err(format!(
            "it holds {} '{BEGIN}' .. '{END}' blocks; one is expected",
            blocks.len()
        ));
    }
    let outside = text[..first.start]
        .chars()
        .chain(text[last.end..].chars())
        .any(|c| !c.is_whitespace());
    if outside {
        return Err(format!(
            "it has text outside its '{BEGIN}' .. '{END}' lines, which the next rewrite \
             would not replace"
        ));
    }
    Ok(())
}

fn parse_keepalived(snippet: &str) -> Result<keepalived::Document, String> {
    keepalived::parse_str(
        Path::new("(rendered template)"),
        snippet,
        &ParseOptions {
            config_id: Some("vipcheck-template-check".into()),
        },
    )
    .map_err(|d| {
        format!(
            "keepalived would not read it as vipcheck does: {}",
            d.message
        )
    })
}

/// The checks of a `real_server` block holding `text`, as the rewrite places a stanza;
/// an error when the stanza does not parse there or closes the block it goes into.
fn real_server_checks(text: &str) -> Result<Vec<ExistingCheck>, String> {
    let snippet = format!(
        "virtual_server 192.0.2.1 80 {{\n    protocol TCP\n    lb_kind DR\n    \
         real_server 192.0.2.2 80 {{\n{text}\n    }}\n}}\n"
    );
    let unbalanced = || "its braces do not balance: it closes the real_server it goes into";
    let doc = parse_keepalived(&snippet)?;
    let [service] = <[_; 1]>::try_from(doc.services).map_err(|_| unbalanced())?;
    let [real] = <[_; 1]>::try_from(service.real_servers).map_err(|_| unbalanced())?;
    Ok(real.checks)
}

/// The stanza goes inside a `real_server` block: it must parse there and leave a
/// MISC_CHECK with a `misc_path` in it.
fn misc_check(text: &str) -> Result<(), String> {
    let checks = real_server_checks(text)?;
    let Some(check) = checks.iter().find(|c| c.kind == "MISC_CHECK") else {
        return Err("it adds no MISC_CHECK block, yet the rewrite would count a check".into());
    };
    if !check.params.iter().any(|(k, _)| k == "misc_path") {
        return Err("its MISC_CHECK has no misc_path".into());
    }
    Ok(())
}

/// With `--feed agent`: the stanza goes inside a `real_server` block and must leave one
/// FILE_CHECK per track_file of the context, each naming its track_file.
fn file_check(text: &str, ctx: &Value) -> Result<(), String> {
    let names: Vec<String> = ctx
        .get_attr("track_files")
        .ok()
        .and_then(|v| v.try_iter().ok())
        .map(|it| it.filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let checks: Vec<ExistingCheck> = real_server_checks(text)?
        .into_iter()
        .filter(|c| c.kind == "FILE_CHECK")
        .collect();
    if checks.len() != names.len() {
        return Err(format!(
            "it adds {} FILE_CHECK block(s) for {} track_file(s); one each is expected",
            checks.len(),
            names.len()
        ));
    }
    for (check, name) in checks.iter().zip(&names) {
        if !check
            .params
            .iter()
            .any(|(k, v)| k == "track_file" && v == name)
        {
            return Err(format!("a FILE_CHECK does not name its track_file {name}"));
        }
    }
    Ok(())
}

/// With `--feed agent`: the top-level declarations must parse as blocks of their own (no
/// virtual_server) and name every track_file of the context.
fn track_files(text: &str, ctx: &Value) -> Result<(), String> {
    let doc = parse_keepalived(text)?;
    if !doc.services.is_empty() {
        return Err("it holds a virtual_server".into());
    }
    let words: Vec<&str> = text
        .lines()
        .map(|l| l.split(['#', '!']).next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .collect();
    let files = ctx.get_attr("track_files").ok();
    for f in files
        .iter()
        .flat_map(|v| v.try_iter().into_iter().flatten())
    {
        let name = f.get_attr("name").ok();
        let Some(name) = name.as_ref().and_then(Value::as_str) else {
            continue;
        };
        let declared = words
            .windows(2)
            .any(|w| w[0] == "track_file" && w[1] == name);
        if !declared {
            return Err(format!(
                "it does not declare track_file {name}, which a generated FILE_CHECK names"
            ));
        }
    }
    Ok(())
}

/// The lines go into (or make) `global_defs`: they must parse and hold what keepalived
/// needs to run the checks at all.
fn global_defs(text: &str, ctx: &Value) -> Result<(), String> {
    let flag = |key: &str| ctx.get_attr(key).is_ok_and(|v| v.is_true());
    let snippet = if flag("new_block") {
        text.to_string()
    } else {
        format!("global_defs {{\n{text}\n}}\n")
    };
    let doc = parse_keepalived(&snippet)?;
    if !doc.services.is_empty() {
        return Err("it holds a virtual_server".into());
    }
    if flag("enable_script_security") && doc.global_defs.enable_script_security.is_empty() {
        return Err(
            "it leaves out enable_script_security, without which keepalived runs no MISC_CHECK"
                .into(),
        );
    }
    if flag("script_user") && doc.global_defs.script_user.is_empty() {
        return Err("it leaves out script_user, which keepalived needs to run MISC_CHECK".into());
    }
    Ok(())
}

/// The lines go at the end of a `virtual=` block: every line must parse as a directive of
/// that block, and together they must make ldirectord run the wrapper.
fn directives(text: &str, ctx: &Value) -> Result<(), String> {
    let indent = ctx
        .get_attr("indent")
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "\t".into());
    let wrapper = ctx
        .get_attr("wrapper")
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let body = text.trim_start_matches(['\n', '\r']);
    let parse = |body: &str| {
        ldirectord::parse_str(
            "(rendered template)".into(),
            format!("virtual=192.0.2.1:80\n{indent}real=192.0.2.2:80 gate\n{body}"),
            &OfflineResolver::default(),
        )
        .map_err(|d| {
            format!(
                "ldirectord would not read it as vipcheck does: {}",
                d.message
            )
        })
    };
    let doc = parse(body)?;
    let [v] = doc.virtuals.as_slice() else {
        return Err("it starts another virtual block".into());
    };
    match &v.generated {
        Some(g) if g.terminated && !g.followed_by_directives => {}
        _ => {
            return Err(format!(
                "its lines are not all inside the virtual block between '{BEGIN}' and '{END}'"
            ))
        }
    }
    // Read as the block's own lines (markers taken out), they must select the wrapper.
    let own: String = body
        .split_inclusive('\n')
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with(BEGIN) || t.starts_with(END))
        })
        .collect();
    let doc = parse(&own)?;
    let Some(v) = doc.virtuals.first() else {
        return Err("it ends the virtual block".into());
    };
    if v.check.checktype != CheckType::External || v.check.checkcommand != wrapper {
        return Err(format!(
            "it does not set checktype=external and checkcommand={wrapper}, yet the rewrite \
             would count the check"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::EMBEDDED;

    fn ctx(pairs: &[(&str, Value)]) -> Value {
        Value::from_iter(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())))
    }

    /// The embedded templates' own output passes every check (the checks are not stricter
    /// than what vipcheck itself writes).
    #[test]
    fn the_embedded_templates_pass() {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        for (name, text) in EMBEDDED {
            env.add_template(name, text).unwrap();
        }
        let misc = ctx(&[
            ("indent", "        ".into()),
            (
                "command_line",
                "/usr/sbin/vipcheck probe --vip 192.0.2.20".into(),
            ),
            ("misc_timeout", 3.into()),
        ]);
        let name = "keepalived/misc_check.conf.j2";
        let text = env.get_template(name).unwrap().render(&misc).unwrap();
        rendered(name, &text, &misc).unwrap();
        let names = [
            "tcp_192.0.2.20_80_192.0.2.11",
            "tcp_192.0.2.21_80_192.0.2.11",
        ];
        let file = ctx(&[
            ("indent", "        ".into()),
            ("track_files", Value::from_serialize(names)),
        ]);
        let name = "keepalived/file_check.conf.j2";
        let text = env.get_template(name).unwrap().render(&file).unwrap();
        rendered(name, &text, &file).unwrap();
        let decl = ctx(&[
            (
                "track_files",
                Value::from_serialize(
                    names
                        .iter()
                        .map(|n| {
                            std::collections::BTreeMap::from([
                                ("name", n.to_string()),
                                ("path", format!("/run/vipcheck/{n}")),
                            ])
                        })
                        .collect::<Vec<_>>(),
                ),
            ),
            ("init_value", 0.into()),
        ]);
        let name = "keepalived/track_files.conf.j2";
        let text = env.get_template(name).unwrap().render(&decl).unwrap();
        rendered(name, &text, &decl).unwrap();
        // The checks can fail: a FILE_CHECK short, a declaration missing.
        let one = text.replacen("track_file tcp_192.0.2.21", "track_file tcp_x", 1);
        assert!(rendered(name, &one, &decl)
            .unwrap_err()
            .contains("does not declare"));
        let e = rendered(
            "keepalived/file_check.conf.j2",
            "# vipcheck:begin\nFILE_CHECK { track_file tcp_192.0.2.20_80_192.0.2.11 }\n# vipcheck:end\n",
            &file,
        )
        .unwrap_err();
        assert!(e.contains("1 FILE_CHECK block(s) for 2"), "{e}");
        // The name must be the FILE_CHECK's track_file, not a word of a comment.
        let e = rendered(
            "keepalived/file_check.conf.j2",
            "# vipcheck:begin\nFILE_CHECK { track_file tcp_192.0.2.20_80_192.0.2.11 }\n\
             FILE_CHECK { track_file x # tcp_192.0.2.21_80_192.0.2.11\n }\n# vipcheck:end\n",
            &file,
        )
        .unwrap_err();
        assert!(
            e.contains("does not name its track_file tcp_192.0.2.21"),
            "{e}"
        );
        for new_block in [true, false] {
            let g = ctx(&[
                ("indent", "    ".into()),
                ("enable_script_security", true.into()),
                ("script_user", "root".into()),
                ("new_block", new_block.into()),
            ]);
            let name = "keepalived/global_defs.conf.j2";
            let text = env.get_template(name).unwrap().render(&g).unwrap();
            rendered(name, &text, &g).unwrap();
        }
        for lead in ["", "\n"] {
            let d = ctx(&[
                ("indent", "\t".into()),
                ("lead", lead.into()),
                (
                    "wrapper",
                    "/etc/ha.d/vipcheck-check-192.0.2.20-80-tcp.sh".into(),
                ),
                ("checktimeout", 8.into()),
                ("original", "negotiate service=http".into()),
            ]);
            let name = "ldirectord/directives.cf.j2";
            let text = env.get_template(name).unwrap().render(&d).unwrap();
            rendered(name, &text, &d).unwrap();
        }
    }

    #[test]
    fn empty_unmarked_or_unbalanced_output_is_refused() {
        let misc = ctx(&[]);
        let name = "keepalived/misc_check.conf.j2";
        let e = rendered(name, "", &misc).unwrap_err();
        assert!(e.contains("no '# vipcheck:begin'"), "{e}");
        let e = rendered(name, "MISC_CHECK { misc_path /bin/true }\n", &misc).unwrap_err();
        assert!(e.contains("no '# vipcheck:begin'"), "{e}");
        let e = rendered(name, "# vipcheck:begin\n# vipcheck:end\n", &misc).unwrap_err();
        assert!(e.contains("no MISC_CHECK"), "{e}");
        // `misc_path` only in a comment: no misc_path.
        let e = rendered(
            name,
            "# vipcheck:begin\nMISC_CHECK {\n misc_timeout 5 # misc_path /bin/true\n}\n# vipcheck:end\n",
            &misc,
        )
        .unwrap_err();
        assert!(e.contains("has no misc_path"), "{e}");
        let e = rendered(
            name,
            "# vipcheck:begin\nMISC_CHECK {\n misc_path /bin/true\n# vipcheck:end\n",
            &misc,
        )
        .unwrap_err();
        assert!(e.contains("would not read it"), "{e}");
        let e = rendered(
            name,
            "# vipcheck:begin\nMISC_CHECK { misc_path /bin/true } }\n# vipcheck:end\n",
            &misc,
        )
        .unwrap_err();
        assert!(
            e.contains("would not read it") || e.contains("balance"),
            "{e}"
        );
        let e = rendered("ldirectord/check_wrapper.sh.j2", "", &misc).unwrap_err();
        assert!(e.contains("#!"), "{e}");
        let d = ctx(&[("indent", "\t".into()), ("wrapper", "/w.sh".into())]);
        let e = rendered(
            "ldirectord/directives.cf.j2",
            "\t# vipcheck:begin\n\tchecktype=connect\n\t# vipcheck:end\n",
            &d,
        )
        .unwrap_err();
        assert!(e.contains("checkcommand=/w.sh"), "{e}");
    }
}
