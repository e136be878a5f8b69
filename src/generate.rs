//! Model -> rendered check stanzas. The templates live in `templates/`, are embedded in
//! the binary, and can be overridden one by one from a directory the user names.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use crate::config::{ForwardingMethod, Protocol, Tunnel, TunnelChecksum, TunnelType};

mod check;
pub mod udp_check;

/// The templates shipped with vipcheck: (name, text).
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "keepalived/misc_check.conf.j2",
        include_str!("../templates/keepalived/misc_check.conf.j2"),
    ),
    (
        "keepalived/global_defs.conf.j2",
        include_str!("../templates/keepalived/global_defs.conf.j2"),
    ),
    (
        "keepalived/file_check.conf.j2",
        include_str!("../templates/keepalived/file_check.conf.j2"),
    ),
    (
        "keepalived/track_files.conf.j2",
        include_str!("../templates/keepalived/track_files.conf.j2"),
    ),
    (
        "ldirectord/directives.cf.j2",
        include_str!("../templates/ldirectord/directives.cf.j2"),
    ),
    (
        "ldirectord/check_wrapper.sh.j2",
        include_str!("../templates/ldirectord/check_wrapper.sh.j2"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot read template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {name}: {source}")]
    Template {
        name: String,
        source: minijinja::Error,
    },
    /// A template from `--templates` rendered text the rewrite cannot use; nothing is
    /// written.
    #[error(
        "template {} (replacing {name}) renders text vipcheck cannot use: {why}; hint: \
         compare it with the embedded template (`vipcheck rewrite` without --templates \
         shows its output)",
        path.display()
    )]
    Invalid {
        name: String,
        path: PathBuf,
        why: String,
    },
}

/// Renders the check templates.
pub struct Generator {
    env: Environment<'static>,
    /// The templates a `--templates` directory replaced, by name, with their files: their
    /// output is checked before anything is written.
    overridden: HashMap<String, PathBuf>,
}

impl Generator {
    /// The embedded templates, with any file of the same name in `override_dir` used instead.
    pub fn new(override_dir: Option<&Path>) -> Result<Self, GenerateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("shell_quote", shell_quote);
        let mut overridden = HashMap::new();
        for (name, text) in EMBEDDED {
            let text = match override_dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| GenerateError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    overridden.insert(name.to_string(), path);
                    text
                }
                None => (*text).to_string(),
            };
            env.add_template_owned(name.to_string(), text)
                .map_err(|source| GenerateError::Template {
                    name: name.to_string(),
                    source,
                })?;
        }
        Ok(Generator { env, overridden })
    }

    /// The top-level variables template `name` reads.
    pub fn variables(&self, name: &str) -> std::collections::HashSet<String> {
        self.env
            .get_template(name)
            .map(|t| t.undeclared_variables(false))
            .unwrap_or_default()
    }

    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, GenerateError> {
        let to_err = |source| GenerateError::Template {
            name: name.to_string(),
            source,
        };
        let ctx = Value::from_serialize(&ctx);
        let text = self
            .env
            .get_template(name)
            .map_err(to_err)?
            .render(&ctx)
            .map_err(to_err)?;
        if let Some(path) = self.overridden.get(name) {
            check::rendered(name, &text, &ctx).map_err(|why| GenerateError::Invalid {
                name: name.to_string(),
                path: path.clone(),
                why,
            })?;
        }
        Ok(text)
    }
}

/// Quotes a word for a POSIX shell (for the ldirectord wrapper script). Values are typed
/// (addresses, ports, paths we chose), but quoting keeps a path with spaces working.
fn shell_quote(value: String) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,[]".contains(&b))
    {
        value
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// One `vipcheck probe` invocation, built only from typed values.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProbeCommand {
    pub program: PathBuf,
    pub vips: Vec<IpAddr>,
    pub rip: IpAddr,
    pub port: Option<u16>,
    pub protocol: Protocol,
    pub method: ForwardingMethod,
    /// The probe's own total time budget.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// The application check to run through the VIP as well (`rewrite --app-check`).
    pub app: Option<AppProbe>,
    /// TUN: the encapsulation, written out only when it is not IPIP without options.
    pub tunnel: Tunnel,
    /// A UDP service's own check (DNS_CHECK, UDP_CHECK) to run through the VIP
    /// (`rewrite --app-check`).
    pub udp: Option<udp_check::UdpAppProbe>,
}

/// An HTTP(S) check through the VIP, from the real server's own HTTP_GET / SSL_GET `url`
/// (keepalived). Every field was checked to be a single word without quotes, so it goes
/// into a command line as it is.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppProbe {
    pub https: bool,
    pub path: String,
    pub status: Option<u16>,
    pub digest: Option<String>,
    pub host: Option<String>,
}

impl AppProbe {
    /// Checks every field for a command line: one word, no quote, no control character.
    pub fn new(
        https: bool,
        path: &str,
        status: Option<u16>,
        digest: Option<&str>,
        host: Option<&str>,
    ) -> Result<AppProbe, String> {
        let word = |what: &str, v: &str| {
            if v.is_empty()
                || v.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "\"'\\`$".contains(c))
            {
                Err(format!(
                    "{what} {v:?} cannot be passed on a command line as one word"
                ))
            } else {
                Ok(v.to_string())
            }
        };
        if !path.starts_with('/') {
            return Err(format!("url path {path:?} does not start with '/'"));
        }
        if let Some(d) = digest {
            if d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("digest {d:?} is not an MD5 in hex"));
            }
        }
        Ok(AppProbe {
            https,
            path: word("url path", path)?,
            status,
            digest: digest.map(str::to_ascii_lowercase),
            host: host.map(|h| word("virtualhost", h)).transpose()?,
        })
    }
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// `1500ms`, `2s`: the form `vipcheck probe --timeout` reads.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl ProbeCommand {
    /// The argument vector after the program name.
    pub fn args(&self) -> Vec<String> {
        self.command_line_after_program()
            .split(' ')
            .map(str::to_string)
            .collect()
    }

    /// The whole command line, words separated by single spaces. Every word is a typed
    /// value or a path without white space or quotes, so keepalived's `misc_path` splits it
    /// back into the same words.
    pub fn command_line(&self) -> String {
        format!(
            "{} {}",
            self.program.display(),
            self.command_line_after_program()
        )
    }

    fn command_line_after_program(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(128);
        s.push_str("probe");
        for vip in &self.vips {
            let _ = write!(s, " --vip {vip}");
        }
        let _ = write!(s, " --rip {}", self.rip);
        if let Some(port) = self.port {
            let _ = write!(s, " --port {port}");
        }
        let _ = write!(
            s,
            " --proto {} --method {} --timeout {}",
            self.protocol.as_str(),
            self.method.probe_arg(),
            format_duration(self.timeout)
        );
        if self.tunnel != Tunnel::default() {
            let _ = write!(s, "{}", tunnel_args(self.tunnel));
        }
        if let Some(app) = &self.app {
            // Free text goes as `--option=VALUE`, which clap never reads as an option of
            // its own, even when the value starts with '-'.
            let _ = write!(
                s,
                " --check {} --http-path={}",
                if app.https { "https" } else { "http" },
                app.path
            );
            if let Some(status) = app.status {
                let _ = write!(s, " --expect-status {status}");
            }
            if let Some(digest) = &app.digest {
                let _ = write!(s, " --expect-digest={digest}");
            }
            if let Some(host) = &app.host {
                let _ = write!(s, " --http-host={host}");
            }
        }
        if let Some(udp) = &self.udp {
            for arg in udp.args() {
                let _ = write!(s, " {arg}");
            }
        }
        s
    }
}

/// ` --tun-type T [--tun-port N] [--tun-csum C]`, as `vipcheck probe` reads them.
fn tunnel_args(t: Tunnel) -> String {
    let mut s = match t.kind {
        TunnelType::Ipip => " --tun-type ipip".to_string(),
        TunnelType::Gue { port } => format!(" --tun-type gue --tun-port {port}"),
        TunnelType::Gre => " --tun-type gre".to_string(),
    };
    match t.csum {
        TunnelChecksum::None => {}
        TunnelChecksum::Csum => s.push_str(" --tun-csum csum"),
        TunnelChecksum::Remcsum => s.push_str(" --tun-csum remcsum"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_options_are_written_only_when_not_plain_ipip() {
        let mut cmd = ProbeCommand {
            program: "/usr/sbin/vipcheck".into(),
            vips: vec!["192.0.2.20".parse().unwrap()],
            rip: "192.0.2.11".parse().unwrap(),
            port: Some(80),
            protocol: Protocol::Tcp,
            method: ForwardingMethod::Tunnel,
            timeout: Duration::from_millis(1500),
            app: None,
            tunnel: Tunnel::default(),
            udp: None,
        };
        assert!(!cmd.command_line().contains("--tun"));
        cmd.tunnel = Tunnel {
            kind: TunnelType::Gue { port: 6080 },
            csum: TunnelChecksum::Remcsum,
        };
        assert!(cmd.command_line().ends_with(
            "--method tun --timeout 1500ms --tun-type gue --tun-port 6080 --tun-csum remcsum"
        ));
        cmd.tunnel = Tunnel {
            kind: TunnelType::Gre,
            csum: TunnelChecksum::None,
        };
        assert!(cmd.command_line().ends_with(" --tun-type gre"));
    }

    #[test]
    fn probe_command_line_lists_every_typed_value() {
        let cmd = ProbeCommand {
            program: "/usr/sbin/vipcheck".into(),
            vips: vec![
                "192.0.2.20".parse().unwrap(),
                "2001:db8::20".parse().unwrap(),
            ],
            rip: "192.0.2.11".parse().unwrap(),
            port: Some(80),
            protocol: Protocol::Tcp,
            method: ForwardingMethod::DirectRouting,
            timeout: Duration::from_millis(1500),
            app: None,
            tunnel: Tunnel::default(),
            udp: None,
        };
        assert_eq!(
            cmd.command_line(),
            "/usr/sbin/vipcheck probe --vip 192.0.2.20 --vip 2001:db8::20 --rip 192.0.2.11 \
             --port 80 --proto tcp --method dr --timeout 1500ms"
        );
    }

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(
            shell_quote("/usr/sbin/vipcheck".into()),
            "/usr/sbin/vipcheck"
        );
        assert_eq!(shell_quote("a b'c".into()), "'a b'\\''c'");
    }
}
