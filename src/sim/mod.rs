//! Simulators of the supplier systems, stateful and faithful to the real APIs (including their
//! failures), for the test suite and the demo. No real supplier is reachable from a test.

pub mod harness;
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

/// Seeded chance faults: a share of the calls to a simulator's API answered with a fault, the
/// way a supplier under load answers some calls and not others. Every simulator draws from it
/// when no queued fault is waiting, so one seed replays the same sequence of draws.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct ChanceSpec {
    pub seed: u64,
    /// Shares (0..1) of the calls answered 429 with `Retry-After`, answered 5xx, answered late
    /// but within the caller's patience, and answered later than `timeout_ms`.
    pub rate_limited: f64,
    pub server_error: f64,
    pub slow: f64,
    pub timeout: f64,
    pub retry_after_secs: u64,
    pub slow_ms: u64,
    pub timeout_ms: u64,
}

/// A fault drawn by chance, in the terms every simulator's own faults share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Drawn {
    RateLimited {
        retry_after_secs: u64,
    },
    ServerError,
    /// The request is served after the delay (a slow answer, or one after the caller gave up).
    Delayed(std::time::Duration),
}

/// Every simulator's own `Fault` has a rate limit, a server error and a delayed answer: a drawn
/// fault becomes the simulator's, answered in that system's own way.
macro_rules! chance_faults {
    ($fault:ident) => {
        impl From<$crate::sim::Drawn> for $fault {
            fn from(d: $crate::sim::Drawn) -> Self {
                match d {
                    $crate::sim::Drawn::RateLimited { retry_after_secs } => $fault::RateLimited { retry_after_secs },
                    $crate::sim::Drawn::ServerError => $fault::ServerError,
                    $crate::sim::Drawn::Delayed(delay) => $fault::Timeout { delay },
                }
            }
        }
    };
}
pub(crate) use chance_faults;

/// The chance faults of one simulator: off until a [`ChanceSpec`] with a share is set.
#[derive(Debug, Default)]
pub struct Chance {
    spec: ChanceSpec,
    rng: Option<rand::rngs::StdRng>,
}

impl Chance {
    pub fn new(spec: ChanceSpec) -> Self {
        use rand::SeedableRng;
        let rng = Some(rand::rngs::StdRng::seed_from_u64(spec.seed));
        Chance { spec, rng }
    }

    pub fn spec(&self) -> &ChanceSpec {
        &self.spec
    }

    /// The fault of the next call, if chance gives it one.
    pub fn draw<F: From<Drawn>>(&mut self) -> Option<F> {
        use rand::Rng;
        let s = &self.spec;
        let roll: f64 = self.rng.as_mut()?.gen();
        let shares = [
            (s.rate_limited, Drawn::RateLimited { retry_after_secs: s.retry_after_secs }),
            (s.server_error, Drawn::ServerError),
            (s.slow, Drawn::Delayed(std::time::Duration::from_millis(s.slow_ms))),
            (s.timeout, Drawn::Delayed(std::time::Duration::from_millis(s.timeout_ms))),
        ];
        let mut upto = 0.0;
        shares
            .into_iter()
            .find(|(share, _)| {
                upto += share.max(0.0);
                roll < upto
            })
            .map(|(_, d)| F::from(d))
    }
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

/// A supplier's slow answer: the work is done after `delay` whether or not the client is still
/// waiting, as a real supplier finishes a transaction its client gave up on (the request
/// handler itself is dropped when the client disconnects).
pub(crate) async fn answer_late<F>(delay: std::time::Duration, work: F) -> actix_web::HttpResponse
where
    F: FnOnce() -> actix_web::HttpResponse + 'static,
{
    let task = actix_web::rt::spawn(async move {
        tokio::time::sleep(delay).await;
        work()
    });
    task.await.unwrap_or_else(|_| actix_web::HttpResponse::InternalServerError().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_faults_hit_their_share_and_replay_by_seed() {
        let spec = ChanceSpec { seed: 42, rate_limited: 0.05, server_error: 0.05, slow: 0.05, timeout: 0.05, retry_after_secs: 2, slow_ms: 10, timeout_ms: 20 };
        let draws = |spec: &ChanceSpec| {
            let mut c = Chance::new(spec.clone());
            (0..10_000).map(|_| c.draw::<Drawn>()).collect::<Vec<_>>()
        };
        let first = draws(&spec);
        assert_eq!(first, draws(&spec), "one seed, one sequence");
        let share = |d: Drawn| first.iter().filter(|x| **x == Some(d)).count();
        for d in [
            Drawn::RateLimited { retry_after_secs: 2 },
            Drawn::ServerError,
            Drawn::Delayed(std::time::Duration::from_millis(10)),
            Drawn::Delayed(std::time::Duration::from_millis(20)),
        ] {
            assert!((350..650).contains(&share(d)), "{d:?}: {} of 10000", share(d));
        }
        assert_ne!(first, draws(&ChanceSpec { seed: 43, ..spec }));
        assert!(Chance::default().draw::<Drawn>().is_none(), "off until set");
    }

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
