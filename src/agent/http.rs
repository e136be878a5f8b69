//! The agent's HTTP endpoint on a plain `std::net::TcpListener`: `GET /metrics` and
//! `GET /status`, one request per connection, answered from a snapshot of the agent's
//! state. Enough HTTP/1.x for Prometheus and curl; anything else gets 404 or 405.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use super::{metrics, Agent};

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head read.
const MAX_HEAD: usize = 8192;

/// The response to a request line's method and path: status, content type, body.
pub fn respond(
    method: &str,
    path: &str,
    page: impl Fn(&str) -> Option<(&'static str, String)>,
) -> (u16, &'static str, String) {
    let path = path.split('?').next().unwrap_or(path);
    if method != "GET" && method != "HEAD" {
        return (405, "text/plain", "only GET\n".into());
    }
    match page(path) {
        Some((kind, body)) => (200, kind, body),
        None => (404, "text/plain", "try /metrics or /status\n".into()),
    }
}

/// Reads a request head (up to the blank line) and returns its method and path.
fn read_request(stream: &mut TcpStream) -> Option<(String, String)> {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next()?.split_whitespace();
    Some((words.next()?.to_string(), words.next()?.to_string()))
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Bad Request",
    }
}

fn handle(mut stream: TcpStream, agent: &Agent) {
    let (code, kind, body, head_only) = match read_request(&mut stream) {
        Some((method, path)) => {
            let (code, kind, body) = respond(&method, &path, |p| {
                let book = agent.book.lock().ok()?;
                match p {
                    "/metrics" => Some((
                        "text/plain; version=0.0.4; charset=utf-8",
                        metrics::render(&book, agent.started.elapsed()),
                    )),
                    "/status" => Some(("application/json", metrics::status_json(&book))),
                    _ => None,
                }
            });
            (code, kind, body, method == "HEAD")
        }
        None => (400, "text/plain", "bad request\n".to_string(), false),
    };
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(code),
        body.len()
    );
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let _ = stream.write_all(head.as_bytes());
    if !head_only {
        let _ = stream.write_all(body.as_bytes());
    }
    let _ = stream.flush();
}

/// Serves until the process ends (one connection at a time: scrapes are rare).
pub fn serve(listener: TcpListener, agent: &Agent) {
    for stream in listener.incoming() {
        match stream {
            Ok(s) => handle(s, agent),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_methods_and_queries() {
        let page = |p: &str| (p == "/status").then(|| ("application/json", "[]".to_string()));
        assert_eq!(respond("GET", "/status", page).0, 200);
        assert_eq!(respond("GET", "/status?x=1", page).2, "[]");
        assert_eq!(respond("GET", "/nope", page).0, 404);
        assert_eq!(respond("POST", "/status", page).0, 405);
    }
}
