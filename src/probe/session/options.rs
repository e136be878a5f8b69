//! The options of the application check (`--check http|https|tcp-session` of `vipcheck
//! probe`, and `vipcheck appcheck`) as plain values, and their conversion into an
//! [`AppCheck`]. The command line (cli.rs) converts its arguments into these.

use std::path::PathBuf;

use super::http::{parse_digest, HttpExpect, StatusRange};
use super::{AppCheck, TlsOptions};

/// Which application check `--check` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppCheckKind {
    /// HTTP/1.1 GET through the VIP.
    Http,
    /// HTTP/1.1 GET over TLS through the VIP.
    Https,
    /// A complete TCP handshake through the VIP, then a reset.
    TcpSession,
}

/// Options of `--check http|https|tcp-session`, as given (checked by
/// [`AppCheckOptions::to_check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCheckOptions {
    /// The path to GET (a missing leading `/` is added).
    pub http_path: String,
    /// The Host header (default: the VIP, with the port when not 80/443).
    pub http_host: Option<String>,
    /// Acceptable status codes: a code or a range.
    pub expect_status: String,
    /// Text the body must contain.
    pub expect_body: Option<String>,
    /// MD5 of the body (hex), like keepalived's HTTP_GET `digest`.
    pub expect_digest: Option<String>,
    /// TLS server name to send (default: the `http_host` name, else none).
    pub sni: Option<String>,
    /// Verify the server's certificate chain and name.
    pub tls_verify: bool,
    /// CA bundle for `tls_verify`.
    pub tls_ca: Option<PathBuf>,
}

impl Default for AppCheckOptions {
    /// What the command line gives when no option is set: GET `/`, any 2xx.
    fn default() -> Self {
        AppCheckOptions {
            http_path: "/".into(),
            http_host: None,
            expect_status: "200-299".into(),
            expect_body: None,
            expect_digest: None,
            sni: None,
            tls_verify: false,
            tls_ca: None,
        }
    }
}

impl AppCheckOptions {
    /// The check these options describe; an error names the bad option and value.
    pub fn to_check(&self, kind: AppCheckKind) -> Result<AppCheck, String> {
        if kind == AppCheckKind::TcpSession {
            return Ok(AppCheck::TcpSession);
        }
        let path = if self.http_path.starts_with('/') {
            self.http_path.clone()
        } else {
            format!("/{}", self.http_path)
        };
        if path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(format!(
                "--http-path '{}' contains a space or control character (hint: percent-encode it)",
                self.http_path
            ));
        }
        if let Some(h) = &self.http_host {
            if h.is_empty()
                || h.bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(format!("--http-host '{h}' is not a host name"));
            }
        }
        let expect = HttpExpect {
            path,
            host: self.http_host.clone(),
            status: StatusRange::parse(&self.expect_status)
                .map_err(|e| format!("--expect-status: {e}"))?,
            body_contains: self.expect_body.clone(),
            digest: self
                .expect_digest
                .as_deref()
                .map(parse_digest)
                .transpose()
                .map_err(|e| format!("--expect-digest: {e}"))?,
        };
        Ok(match kind {
            AppCheckKind::Http => AppCheck::Http(expect),
            _ => {
                // SNI defaults to the Host name when that is a name, not an address.
                let sni = self.sni.clone().or_else(|| {
                    self.http_host
                        .as_deref()
                        .map(|h| h.rsplit_once(':').map_or(h, |(n, _)| n))
                        .filter(|n| n.parse::<std::net::IpAddr>().is_err() && !n.starts_with('['))
                        .map(str::to_string)
                });
                AppCheck::Https(
                    expect,
                    TlsOptions {
                        sni,
                        verify: self.tls_verify,
                        ca_file: self.tls_ca.clone(),
                    },
                )
            }
        })
    }
}

/// Maps an ldirectord `negotiate` check (`service`, `request`, `receive`, `virtualhost`)
/// onto the application check, so the virtual's own check runs through the VIP.
/// ldirectord's `receive` is a Perl regular expression; it is matched here as plain text,
/// which is what nearly every configuration writes.
pub fn from_ldirectord_negotiate(
    service: &str,
    request: Option<&str>,
    receive: Option<&str>,
    virtualhost: Option<&str>,
) -> Result<AppCheck, String> {
    let kind = match service.to_ascii_lowercase().as_str() {
        "http" => AppCheckKind::Http,
        "https" => AppCheckKind::Https,
        other => {
            return Err(format!(
                "ldirectord service '{other}' has no application check through the VIP (http and https do)"
            ))
        }
    };
    let args = AppCheckOptions {
        http_path: request.unwrap_or("/").to_string(),
        http_host: virtualhost.map(str::to_string),
        expect_status: "200-299".into(),
        expect_body: receive.map(str::to_string),
        ..AppCheckOptions::default()
    };
    args.to_check(kind)
}

/// Maps one `url` block of a keepalived HTTP_GET / SSL_GET check (`path`, `digest`,
/// `status_code`, and the checker's `virtualhost`) onto the application check. Without a
/// `status_code`, any 2xx is accepted, as keepalived does.
pub fn from_keepalived_url(
    ssl: bool,
    path: &str,
    digest: Option<&str>,
    status_code: Option<u16>,
    virtualhost: Option<&str>,
) -> Result<AppCheck, String> {
    let args = AppCheckOptions {
        http_path: path.to_string(),
        http_host: virtualhost.map(str::to_string),
        expect_status: status_code.map_or_else(|| "200-299".to_string(), |c| c.to_string()),
        expect_digest: digest.map(str::to_string),
        ..AppCheckOptions::default()
    };
    args.to_check(if ssl {
        AppCheckKind::Https
    } else {
        AppCheckKind::Http
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(opts: AppCheckOptions) -> Result<AppCheck, String> {
        opts.to_check(AppCheckKind::Http)
    }

    #[test]
    fn http_defaults() {
        let AppCheck::Http(e) = http(AppCheckOptions::default()).unwrap() else {
            panic!("not http")
        };
        assert_eq!(e.path, "/");
        assert_eq!(e.host, None);
        assert_eq!(
            e.status,
            StatusRange {
                low: 200,
                high: 299
            }
        );
        assert_eq!((e.body_contains, e.digest), (None, None));
    }

    #[test]
    fn https_options_and_sni_from_host() {
        let check = AppCheckOptions {
            http_path: "health".into(),
            http_host: Some("www.example.com:8443".into()),
            expect_status: "200".into(),
            expect_body: Some("OK".into()),
            expect_digest: Some("900150983CD24FB0D6963F7D28E17F72".into()),
            ..AppCheckOptions::default()
        }
        .to_check(AppCheckKind::Https)
        .unwrap();
        let AppCheck::Https(e, t) = check else {
            panic!("not https")
        };
        assert_eq!(e.path, "/health");
        assert_eq!(
            e.status,
            StatusRange {
                low: 200,
                high: 200
            }
        );
        assert_eq!(
            e.digest.as_deref(),
            Some("900150983cd24fb0d6963f7d28e17f72")
        );
        assert_eq!(t.sni.as_deref(), Some("www.example.com"));
        assert!(!t.verify);
        let AppCheck::Https(_, t) = AppCheckOptions {
            http_host: Some("192.0.2.20".into()),
            tls_verify: true,
            ..AppCheckOptions::default()
        }
        .to_check(AppCheckKind::Https)
        .unwrap() else {
            panic!("not https")
        };
        assert_eq!(t.sni, None, "an address is not sent as SNI");
        assert!(t.verify);
    }

    #[test]
    fn bad_values_name_their_option() {
        let e = http(AppCheckOptions {
            expect_status: "2xx".into(),
            ..AppCheckOptions::default()
        })
        .unwrap_err();
        assert!(e.starts_with("--expect-status:"), "{e}");
        let e = http(AppCheckOptions {
            expect_digest: Some("abc".into()),
            ..AppCheckOptions::default()
        })
        .unwrap_err();
        assert!(e.starts_with("--expect-digest:"), "{e}");
        let e = http(AppCheckOptions {
            http_path: "/a b".into(),
            ..AppCheckOptions::default()
        })
        .unwrap_err();
        assert!(e.starts_with("--http-path"), "{e}");
    }

    #[test]
    fn tcp_session_needs_nothing_else() {
        assert_eq!(
            AppCheckOptions::default().to_check(AppCheckKind::TcpSession),
            Ok(AppCheck::TcpSession)
        );
    }

    #[test]
    fn keepalived_url_maps_onto_http_and_https() {
        let AppCheck::Http(e) = from_keepalived_url(
            false,
            "/health",
            Some("9b3a0c85a887a256d6939da88aabd8cd"),
            Some(204),
            None,
        )
        .unwrap() else {
            panic!("not http")
        };
        assert_eq!(
            e.status,
            StatusRange {
                low: 204,
                high: 204
            }
        );
        assert_eq!(
            e.digest.as_deref(),
            Some("9b3a0c85a887a256d6939da88aabd8cd")
        );
        let AppCheck::Https(e, t) =
            from_keepalived_url(true, "/", None, None, Some("www.example.com")).unwrap()
        else {
            panic!("not https")
        };
        assert_eq!(
            e.status,
            StatusRange {
                low: 200,
                high: 299
            }
        );
        assert_eq!(t.sni.as_deref(), Some("www.example.com"));
        assert!(from_keepalived_url(false, "/", Some("not-a-digest"), None, None).is_err());
    }

    #[test]
    fn ldirectord_negotiate_maps_onto_http() {
        let AppCheck::Http(e) = from_ldirectord_negotiate(
            "http",
            Some("index.html"),
            Some("Test Page"),
            Some("www.x.com"),
        )
        .unwrap() else {
            panic!("not http")
        };
        assert_eq!(e.path, "/index.html");
        assert_eq!(e.body_contains.as_deref(), Some("Test Page"));
        assert_eq!(e.host.as_deref(), Some("www.x.com"));
        assert!(matches!(
            from_ldirectord_negotiate("https", None, None, None),
            Ok(AppCheck::Https(..))
        ));
        assert!(from_ldirectord_negotiate("ftp", None, None, None).is_err());
    }
}
