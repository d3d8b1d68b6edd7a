//! Simulators of the supplier systems, stateful and faithful to the real APIs (including their
//! failures), for the test suite and the demo. No real supplier is reachable from a test.

pub mod jira;
pub mod outbox;
pub mod remedy;
pub mod servicenow;
pub mod tmf621;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

/// A simulator's HTTP server, running.
pub struct Running {
    pub handle: ServerHandle,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The runtime it runs on (simulators spawn their webhook deliveries there).
    pub runtime: tokio::runtime::Handle,
}

/// Serves a simulator's routes on `listener`, spawned on the current tokio runtime.
pub fn serve<F>(name: &str, listener: std::net::TcpListener, routes: F) -> std::io::Result<Running>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| std::io::Error::other(format!("{name}::start needs a tokio runtime: {e}")))?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
    let server = HttpServer::new(move || App::new().configure(routes.clone())).workers(2).disable_signals().listen(listener)?.run();
    let handle = server.handle();
    runtime.spawn(server);
    Ok(Running { handle, base_url: format!("http://{host}:{}", addr.port()), runtime })
}

/// A request a simulator served, for tests to inspect.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoggedRequest {
    pub method: String,
    /// Path plus query string, as sent.
    pub path: String,
    pub status: u16,
    /// The authenticated user, `None` when authentication failed or was not needed.
    pub user: Option<String>,
}

/// One part of a multipart/form-data body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The form field name (`file`, `entry`, `attach-<field>`...).
    pub name: String,
    pub file_name: Option<String>,
    /// The part's own content type, `""` when it names none.
    pub content_type: String,
    pub data: Vec<u8>,
}

/// Splits a multipart/form-data body (RFC 7578) into its parts, as the supplier systems' upload
/// endpoints read them.
pub fn multipart(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    let boundary =
        content_type.split(';').find_map(|p| p.trim().strip_prefix("boundary=")).map(|b| b.trim_matches('"').to_string()).ok_or("the request is not multipart/form-data")?;
    let delimiter = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| hay.get(from..).and_then(|h| h.windows(needle.len()).position(|w| w == needle)).map(|p| p + from);
    let mut parts = vec![];
    let mut at = find(body, &delimiter, 0).ok_or("no multipart boundary in the body")?;
    loop {
        let start = at + delimiter.len();
        if body.get(start..start + 2) == Some(b"--") {
            break;
        }
        let Some(next) = find(body, &delimiter, start) else { break };
        let part = &body[start..next];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        if let Some(split) = find(part, b"\r\n\r\n", 0) {
            let head = String::from_utf8_lossy(&part[..split]).to_string();
            let disposition = head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition")).unwrap_or("");
            let attr = |name: &str| disposition.split(';').find_map(|p| p.trim().strip_prefix(&format!("{name}=")).map(|v| v.trim_matches('"').to_string()));
            let content_type =
                head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-type")).map(|(_, v)| v.trim().to_string())).unwrap_or_default();
            if let Some(name) = attr("name") {
                parts.push(Part { name, file_name: attr("filename"), content_type, data: part[split + 4..].to_vec() });
            }
        }
        at = next;
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_split_into_named_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"entry\"\r\nContent-Type: application/json\r\n\r\n{\"values\":{}}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"attach-z2AF Work Log01\"; filename=\"a b.txt\"\r\n\r\nline1\r\nline2\r\n--XyZ--\r\n";
        let parts = multipart("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].name.as_str(), parts[0].content_type.as_str(), parts[0].data.as_slice()), ("entry", "application/json", &b"{\"values\":{}}"[..]));
        assert_eq!((parts[1].name.as_str(), parts[1].file_name.as_deref(), parts[1].data.as_slice()), ("attach-z2AF Work Log01", Some("a b.txt"), &b"line1\r\nline2"[..]));
        assert!(multipart("application/json", body).is_err());
    }
}
