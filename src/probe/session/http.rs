//! HTTP/1.1 for the application check: the GET request, reading one response (length,
//! chunked or close-delimited), and judging it (status range, body text, MD5 digest).
//! Pure code: bytes in, verdict out.

use std::fmt;

use md5::{Digest, Md5};

/// An inclusive range of acceptable status codes, written `200-299` or `204`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub low: u16,
    pub high: u16,
}

impl StatusRange {
    pub fn parse(text: &str) -> Result<StatusRange, String> {
        let hint = "write a code or a range, e.g. 200 or 200-299";
        let one = |t: &str| -> Result<u16, String> {
            match t.trim().parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => Ok(c),
                _ => Err(format!("'{text}' is not an HTTP status range ({hint})")),
            }
        };
        let (low, high) = match text.split_once('-') {
            Some((a, b)) => (one(a)?, one(b)?),
            None => {
                let c = one(text)?;
                (c, c)
            }
        };
        if low > high {
            return Err(format!(
                "'{text}' is an empty status range: {low} is above {high} ({hint})"
            ));
        }
        Ok(StatusRange { low, high })
    }

    pub fn contains(&self, code: u16) -> bool {
        (self.low..=self.high).contains(&code)
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

/// What the response must look like to count as up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpExpect {
    pub path: String,
    /// The Host header; the VIP (and the port when not the scheme's default) when unset.
    pub host: Option<String>,
    pub status: StatusRange,
    pub body_contains: Option<String>,
    /// Lower-case hex MD5 of the body, like keepalived's HTTP_GET `digest`.
    pub digest: Option<String>,
}

/// Builds the GET request. `Connection: close` asks the server to end the session after
/// one response, so a close-delimited body is complete when the server's FIN arrives.
pub fn request(path: &str, host: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: vipcheck/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("the answer is not an HTTP response (it starts with {0:?})")]
    NotHttp(String),
    #[error("the response header is malformed: {0}")]
    BadHeader(String),
    #[error("the response's chunked body is malformed")]
    BadChunk,
    #[error("the response header is larger than {0} bytes")]
    HeaderTooLarge(usize),
    #[error("the response body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("the server closed the connection after {got} of {want} body bytes")]
    Truncated { got: usize, want: usize },
    #[error("the server closed the connection before a complete response header")]
    ClosedInHeader,
}

const MAX_HEADER: usize = 64 * 1024;
/// A health-check page is small; a huge body is read no further than this.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Tries to take one complete response from `buf`. `Ok(None)` means more bytes are needed;
/// `eof` says the server has closed its side, which ends a close-delimited body.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, ResponseError> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEADER {
            return Err(ResponseError::HeaderTooLarge(MAX_HEADER));
        }
        if !buf.is_empty() && !b"HTTP/".starts_with(&buf[..buf.len().min(5)]) {
            return Err(not_http(buf));
        }
        return if eof {
            Err(ResponseError::ClosedInHeader)
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| ResponseError::BadHeader("it is not UTF-8 text".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = parse_status_line(status_line).ok_or_else(|| not_http(buf))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ResponseError::BadHeader(format!("no ':' in {line:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value.parse::<usize>().map_err(|_| {
                ResponseError::BadHeader(format!("Content-Length {value:?} is not a number"))
            })?;
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    let rest = &buf[head_end + 4..];
    // 1xx, 204 and 304 carry no body.
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some(Response {
            status,
            body: Vec::new(),
        }));
    }
    if chunked {
        return match dechunk(rest)? {
            Some(body) => Ok(Some(Response { status, body })),
            None if eof => Err(ResponseError::BadChunk),
            None => Ok(None),
        };
    }
    if let Some(want) = length {
        if want > MAX_BODY {
            return Err(ResponseError::BodyTooLarge(MAX_BODY));
        }
        if rest.len() >= want {
            return Ok(Some(Response {
                status,
                body: rest[..want].to_vec(),
            }));
        }
        return if eof {
            Err(ResponseError::Truncated {
                got: rest.len(),
                want,
            })
        } else {
            Ok(None)
        };
    }
    if rest.len() > MAX_BODY {
        return Err(ResponseError::BodyTooLarge(MAX_BODY));
    }
    if eof {
        Ok(Some(Response {
            status,
            body: rest.to_vec(),
        }))
    } else {
        Ok(None)
    }
}

fn not_http(buf: &[u8]) -> ResponseError {
    let shown = String::from_utf8_lossy(&buf[..buf.len().min(16)]).into_owned();
    ResponseError::NotHttp(shown)
}

fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse::<u16>().ok().filter(|c| (100..=599).contains(c))
}

/// Decodes a chunked body; `Ok(None)` while incomplete. Trailers are skipped.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, ResponseError> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(rest, b"\r\n") else {
            return if rest.len() > 1024 {
                Err(ResponseError::BadChunk)
            } else {
                Ok(None)
            };
        };
        let size_text = std::str::from_utf8(&rest[..eol]).map_err(|_| ResponseError::BadChunk)?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| ResponseError::BadChunk)?;
        rest = &rest[eol + 2..];
        if size == 0 {
            // Trailer section: header lines up to an empty line.
            loop {
                let Some(eol) = find(rest, b"\r\n") else {
                    return Ok(None);
                };
                if eol == 0 {
                    return Ok(Some(body));
                }
                rest = &rest[eol + 2..];
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(ResponseError::BodyTooLarge(MAX_BODY));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err(ResponseError::BadChunk);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Lower-case hex MD5 of a body, as keepalived's `genhash` prints it.
pub fn md5_hex(body: &[u8]) -> String {
    Md5::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a complete response does not count as up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Status { got: u16, want: StatusRange },
    Body { want: String },
    Digest { got: String, want: String },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Status { got, want } => {
                write!(f, "status {got} is outside the expected {want}")
            }
            Mismatch::Body { want } => write!(f, "the body does not contain {want:?}"),
            Mismatch::Digest { got, want } => {
                write!(f, "the body's MD5 is {got}, expected {want}")
            }
        }
    }
}

/// Judges a response: status first, then body text, then digest.
pub fn judge(expect: &HttpExpect, response: &Response) -> Result<(), Mismatch> {
    if !expect.status.contains(response.status) {
        return Err(Mismatch::Status {
            got: response.status,
            want: expect.status,
        });
    }
    if let Some(want) = &expect.body_contains {
        if find(&response.body, want.as_bytes()).is_none() && !want.is_empty() {
            return Err(Mismatch::Body { want: want.clone() });
        }
    }
    if let Some(want) = &expect.digest {
        let got = md5_hex(&response.body);
        if !got.eq_ignore_ascii_case(want) {
            return Err(Mismatch::Digest {
                got,
                want: want.clone(),
            });
        }
    }
    Ok(())
}

/// Checks that a digest given on the command line is 32 hex digits.
pub fn parse_digest(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t.to_ascii_lowercase())
    } else {
        Err(format!(
            "'{text}' is not an MD5 digest (32 hex digits, as `genhash` prints)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect() -> HttpExpect {
        HttpExpect {
            path: "/".into(),
            host: None,
            status: StatusRange::parse("200-299").unwrap(),
            body_contains: None,
            digest: None,
        }
    }

    #[test]
    fn request_has_host_and_asks_to_close() {
        let r = String::from_utf8(request("/health?x=1", "www.example.com:8080")).unwrap();
        assert!(r.starts_with("GET /health?x=1 HTTP/1.1\r\nHost: www.example.com:8080\r\n"));
        assert!(r.contains("\r\nConnection: close\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }

    #[test]
    fn status_ranges() {
        assert_eq!(
            StatusRange::parse("204"),
            Ok(StatusRange {
                low: 204,
                high: 204
            })
        );
        let r = StatusRange::parse("200-299").unwrap();
        assert!(r.contains(200) && r.contains(299) && !r.contains(300) && !r.contains(199));
        assert!(StatusRange::parse("300-200").is_err());
        assert!(StatusRange::parse("ok").is_err());
        assert!(StatusRange::parse("99").is_err());
        assert_eq!(r.to_string(), "200-299");
    }

    #[test]
    fn content_length_body_waits_for_all_bytes() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_response(&full[..full.len() - 1], false), Ok(None));
        assert_eq!(
            parse_response(full, false),
            Ok(Some(Response {
                status: 200,
                body: b"hello".to_vec()
            }))
        );
        assert_eq!(
            parse_response(&full[..full.len() - 2], true),
            Err(ResponseError::Truncated { got: 3, want: 5 })
        );
    }

    #[test]
    fn close_delimited_body_ends_at_eof() {
        let r = b"HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\nnope";
        assert_eq!(parse_response(r, false), Ok(None));
        assert_eq!(
            parse_response(r, true),
            Ok(Some(Response {
                status: 404,
                body: b"nope".to_vec()
            }))
        );
    }

    #[test]
    fn chunked_body_is_decoded() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(parse_response(&r[..r.len() - 2], false), Ok(None));
        assert_eq!(
            parse_response(r, false).unwrap().unwrap().body,
            b"Wikipedia".to_vec()
        );
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(parse_response(bad, false), Err(ResponseError::BadChunk));
    }

    #[test]
    fn non_http_answers_are_rejected_early() {
        assert!(matches!(
            parse_response(b"SSH-2.0-OpenSSH", false),
            Err(ResponseError::NotHttp(_))
        ));
        assert_eq!(
            parse_response(b"HTTP/1.1 200", true),
            Err(ResponseError::ClosedInHeader)
        );
    }

    #[test]
    fn no_body_statuses_complete_at_header_end() {
        let r = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(
            parse_response(r, false),
            Ok(Some(Response {
                status: 204,
                body: vec![]
            }))
        );
    }

    #[test]
    fn md5_matches_known_vectors() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn judge_checks_status_then_body_then_digest() {
        let ok = Response {
            status: 200,
            body: b"service is up".to_vec(),
        };
        assert_eq!(judge(&expect(), &ok), Ok(()));
        let mut e = expect();
        e.body_contains = Some("is up".into());
        e.digest = Some(md5_hex(b"service is up"));
        assert_eq!(judge(&e, &ok), Ok(()));
        let bad_status = Response {
            status: 503,
            body: ok.body.clone(),
        };
        assert!(matches!(
            judge(&e, &bad_status),
            Err(Mismatch::Status { got: 503, .. })
        ));
        e.body_contains = Some("is down".into());
        assert!(matches!(judge(&e, &ok), Err(Mismatch::Body { .. })));
        e.body_contains = None;
        e.digest = Some("0".repeat(32));
        assert!(matches!(judge(&e, &ok), Err(Mismatch::Digest { .. })));
    }

    #[test]
    fn digests_are_validated() {
        assert_eq!(
            parse_digest("900150983CD24FB0D6963F7D28E17F72"),
            Ok("900150983cd24fb0d6963f7d28e17f72".into())
        );
        assert!(parse_digest("xyz").is_err());
    }
}
