//! What every supplier client shares: timeouts, retries with backoff that honour `Retry-After`,
//! a rate governor per supplier instance, answers read up to a size cap, and where the
//! supplier's credentials may go ([`super::egress`]): only to its own origin, following
//! redirects only within it; files it lists elsewhere are fetched by a second client that
//! carries no credentials.

use super::egress::{AddressPolicy, FileUrl, SupplierOrigins};
use super::SupplierError;
use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Largest answer read when no limit is configured.
const DEFAULT_MAX_RESPONSE: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct SupplierHttp {
    /// The client that carries the supplier's credentials: redirects only within its origins.
    pub client: reqwest::Client,
    /// The client for files on other origins: no credentials, addresses checked.
    files: reqwest::Client,
    origins: Option<Arc<SupplierOrigins>>,
    addresses: AddressPolicy,
    limiter: Arc<DefaultDirectRateLimiter>,
    /// How long the hub waits for one answer (see [`SupplierHttp::write_once`]).
    timeout: Duration,
    max_attempts: u32,
    min_backoff: Duration,
    max_response: usize,
    /// How the calls to this supplier went, for its health.
    calls: Arc<CallLog>,
}

/// How long retries are remembered for a supplier's health (it shows the last hour's).
const RETRY_MEMORY: chrono::Duration = chrono::Duration::hours(1);

/// How the calls to one supplier instance went lately, as its health shows them: the last call
/// that succeeded, the last that failed for want of an answer or of credentials, how many failed
/// in a row since the last success, and when calls were retried in the last hour. Kept in the
/// process (it starts empty with the hub): the hub has no circuit breaker, so this is what
/// tells an administrator whether its calls are failing now.
#[derive(Debug, Default)]
pub struct CallLog {
    inner: std::sync::Mutex<Calls>,
}

/// What [`CallLog`] holds.
#[derive(Debug, Default, Clone)]
pub struct Calls {
    pub last_ok: Option<chrono::DateTime<chrono::Utc>>,
    pub last_failure: Option<(chrono::DateTime<chrono::Utc>, String)>,
    /// Calls that failed since the last that succeeded.
    pub failures_in_row: u32,
    /// When calls were retried, oldest first, within the last hour.
    pub retries: std::collections::VecDeque<chrono::DateTime<chrono::Utc>>,
}

impl CallLog {
    fn with<T>(&self, f: impl FnOnce(&mut Calls) -> T) -> T {
        let mut calls = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let horizon = chrono::Utc::now() - RETRY_MEMORY;
        while calls.retries.front().is_some_and(|t| *t < horizon) {
            calls.retries.pop_front();
        }
        f(&mut calls)
    }

    /// A call that got what it asked for.
    pub fn succeeded(&self) {
        self.with(|c| {
            c.last_ok = Some(chrono::Utc::now());
            c.failures_in_row = 0;
        });
    }

    /// What a failed call says about the supplier: no answer (or only errors and rate limits
    /// after every retry), or credentials refused, counts as failing; any other refusal is
    /// the supplier answering about that one request.
    pub fn failed(&self, e: &SupplierError) {
        let failing = match e {
            SupplierError::Transient { .. } => true,
            SupplierError::Rejected { status, .. } => matches!(status, 0 | 401 | 403),
            SupplierError::Protocol(_) => false,
        };
        if failing {
            self.with(|c| {
                c.last_failure = Some((chrono::Utc::now(), e.to_string()));
                c.failures_in_row = c.failures_in_row.saturating_add(1);
            });
        }
    }

    pub fn retried(&self) {
        self.with(|c| c.retries.push_back(chrono::Utc::now()));
    }

    /// The figures now (retries: the last hour's).
    pub fn snapshot(&self) -> Calls {
        self.with(|c| c.clone())
    }
}

impl SupplierHttp {
    /// A client for no supplier in particular: it follows no redirect and fetches no file by
    /// URL.
    pub fn new(timeout: Duration, rate_per_sec: u32, max_attempts: u32) -> Result<Self, String> {
        Self::build(timeout, rate_per_sec, max_attempts, None, AddressPolicy::default(), DEFAULT_MAX_RESPONSE)
    }

    /// The client of one configured supplier instance, under the hub's egress policy.
    pub fn for_supplier(settings: &crate::config::SupplierSettings, egress: &crate::config::EgressSettings) -> Result<Self, String> {
        let token_url = if settings.system == "tmf621" { settings.tmf621.token_url.as_deref() } else { None };
        let origins = SupplierOrigins::new(&settings.base_url, token_url, &settings.attachment_origins).map_err(|e| format!("supplier `{}`: {e}", settings.id))?;
        let addresses = AddressPolicy::new(egress)?;
        Self::build(Duration::from_secs(settings.timeout_secs), settings.rate_per_sec, settings.max_attempts, Some(origins), addresses, settings.max_response_bytes)
    }

    fn build(timeout: Duration, rate_per_sec: u32, max_attempts: u32, origins: Option<SupplierOrigins>, addresses: AddressPolicy, max_response: usize) -> Result<Self, String> {
        let redirects = origins.as_ref().map(SupplierOrigins::credentialed_redirects).unwrap_or_else(reqwest::redirect::Policy::none);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("siam-hub/", env!("CARGO_PKG_VERSION")))
            .redirect(redirects)
            .build()
            .map_err(|e| e.to_string())?;
        let file_redirects = origins.as_ref().map(|o| o.file_redirects(&addresses)).unwrap_or_else(reqwest::redirect::Policy::none);
        let files = addresses.client(timeout, file_redirects)?;
        let rate = NonZeroU32::new(rate_per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(SupplierHttp {
            client,
            files,
            origins: origins.map(Arc::new),
            addresses,
            limiter: Arc::new(RateLimiter::direct(Quota::per_second(rate))),
            timeout,
            max_attempts: max_attempts.max(1),
            min_backoff: Duration::from_millis(200),
            max_response: max_response.max(1),
            calls: Arc::default(),
        })
    }

    /// How the calls through this client went (shared by its clones).
    pub fn calls(&self) -> Arc<CallLog> {
        self.calls.clone()
    }

    /// Shortens the first backoff step (tests use it to keep retry storms quick).
    pub fn with_min_backoff(mut self, d: Duration) -> Self {
        self.min_backoff = d;
        self
    }

    /// Runs `call` under the rate governor, retrying transient failures with exponential backoff;
    /// a `Retry-After` from the supplier replaces the computed delay.
    pub async fn retrying<T, F, Fut>(&self, what: &str, call: F) -> Result<T, SupplierError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SupplierError>>,
    {
        let limiter = self.limiter.clone();
        let mut call = call;
        let attempt = move || {
            let limiter = limiter.clone();
            let fut = call();
            async move {
                limiter.until_ready().await;
                fut.await
            }
        };
        let calls = self.calls.clone();
        let result = attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(self.min_backoff)
                    .with_max_delay(Duration::from_secs(30))
                    .with_max_times(self.max_attempts.saturating_sub(1) as usize)
                    .with_jitter(),
            )
            .when(SupplierError::is_transient)
            .adjust(|e, dur| match e {
                SupplierError::Transient { retry_after: Some(ra), .. } => dur.map(|_| *ra),
                _ => dur,
            })
            .notify(|e, dur| {
                calls.retried();
                tracing::warn!(call = what, error = %e, retry_in = ?dur, "supplier call failed; retrying")
            })
            .await;
        match &result {
            Ok(_) => self.calls.succeeded(),
            Err(e) => self.calls.failed(e),
        }
        result
    }
}

impl SupplierHttp {
    /// Makes a write the supplier must hold once (a ticket, a note, a file): `write` is one
    /// attempt; before each further attempt `look` searches the supplier for what an earlier
    /// attempt may have written, and what it finds is the result instead of a second write.
    ///
    /// An attempt whose outcome is unknown (it timed out, the connection dropped after the
    /// request went out, the supplier or its gateway answered 5xx) may still be running at the
    /// supplier, whose slow answer then commits after the hub gave up on it. A look made at once
    /// would miss that write and the retry would make a second one. So after such an attempt the
    /// look waits until one more client timeout has passed since the failure: the write is seen
    /// if the supplier finished it within twice the hub's timeout of receiving it. Only a
    /// supplier slower than that can still be written twice, as no client can rule out without
    /// an idempotency key on the supplier's side. Failures that certainly did nothing (no
    /// connection, a rate limit) wait only the usual backoff.
    pub async fn write_once<T, W, WF, L, LF>(&self, what: &str, write: W, look: L) -> Result<T, SupplierError>
    where
        W: Fn() -> WF,
        WF: std::future::Future<Output = Result<T, SupplierError>>,
        L: Fn() -> LF,
        LF: std::future::Future<Output = Result<Option<T>, SupplierError>>,
    {
        // Attempts made, and when the last attempt whose outcome is unknown failed.
        let state = std::sync::Mutex::new((0u32, None::<tokio::time::Instant>));
        let (write, look, state) = (&write, &look, &state);
        let last_in_doubt = std::sync::atomic::AtomicBool::new(false);
        let last_in_doubt = &last_in_doubt;
        let result = self
            .retrying(what, || async move {
                let (attempt, in_doubt) = {
                    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                    s.0 += 1;
                    *s
                };
                if attempt > 1 {
                    if let Some(failed) = in_doubt {
                        tokio::time::sleep_until(failed + self.timeout).await;
                    }
                    if let Some(found) = look().await? {
                        tracing::info!(call = what, attempt, "an earlier attempt reached the supplier; taking what it wrote");
                        return Ok(found);
                    }
                }
                let result = write().await;
                let in_doubt = result.as_ref().is_err_and(SupplierError::outcome_unknown);
                last_in_doubt.store(in_doubt, std::sync::atomic::Ordering::Relaxed);
                if in_doubt {
                    state.lock().unwrap_or_else(|p| p.into_inner()).1 = Some(tokio::time::Instant::now());
                }
                result
            })
            .await;
        // Out of attempts with the last one in doubt: give it the same time to land and look
        // once more, so that no caller ever retries a write this call may still make.
        let failed = state.lock().unwrap_or_else(|p| p.into_inner()).1;
        match (result, failed) {
            (Err(e), Some(failed)) if last_in_doubt.load(std::sync::atomic::Ordering::Relaxed) => {
                tokio::time::sleep_until(failed + self.timeout).await;
                match look().await {
                    Ok(Some(found)) => {
                        tracing::info!(call = what, "the last attempt reached the supplier after all; taking what it wrote");
                        Ok(found)
                    }
                    _ => Err(e),
                }
            }
            (result, _) => result,
        }
    }

    /// Refuses `url` unless it is on the supplier's own origin: the check before anything is
    /// sent there with the supplier's credentials.
    pub fn check_own(&self, what: &str, url: &str) -> Result<url::Url, SupplierError> {
        let refused = |message: String| SupplierError::Rejected { status: 0, message: format!("{what}: {message}") };
        let parsed = url::Url::parse(url).map_err(|e| refused(format!("`{url}` is not a URL: {e}")))?;
        let origins = self.origins.as_ref().ok_or_else(|| refused("this client has no supplier origin to send credentials to".into()))?;
        origins.check_own(&parsed).map_err(refused)?;
        Ok(parsed)
    }

    /// Sorts a file URL the supplier gave (see [`SupplierOrigins::file_url`]); a refusal is a
    /// `Rejected` with why.
    pub fn file_url(&self, url: &url::Url) -> Result<FileUrl, SupplierError> {
        let origins = self.origins.as_ref().ok_or_else(|| SupplierError::Rejected { status: 0, message: format!("file URL {url}: this client fetches no files by URL") })?;
        origins.file_url(url, &self.addresses).map_err(|message| SupplierError::Rejected { status: 0, message })
    }

    /// Opens a download on the supplier's own origin, with its credentials (`auth` adds them),
    /// with retries, and returns the answer for its body to be streamed; `detail` reads the
    /// supplier's own error body.
    pub async fn download(
        &self,
        what: &str,
        url: &str,
        auth: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
        detail: fn(&str) -> String,
    ) -> Result<reqwest::Response, SupplierError> {
        let url = self.check_own(what, url)?;
        self.open(what, || auth(self.client.get(url.clone())), detail).await
    }

    /// Opens a file on an origin the supplier's `attachment_origins` allows: without
    /// credentials, through the client whose resolver and redirects obey the egress policy.
    pub async fn download_elsewhere(&self, what: &str, url: &url::Url, detail: fn(&str) -> String) -> Result<reqwest::Response, SupplierError> {
        match self.file_url(url)? {
            FileUrl::Allowed(u) => self.open(what, || self.files.get(u.clone()), detail).await,
            FileUrl::Own(_) => Err(SupplierError::Rejected { status: 0, message: format!("{what}: {url} is the supplier's own origin, fetched with its credentials") }),
        }
    }

    async fn open(&self, what: &str, request: impl Fn() -> reqwest::RequestBuilder, detail: fn(&str) -> String) -> Result<reqwest::Response, SupplierError> {
        self.retrying(what, || {
            let req = request();
            async move {
                let resp = req.send().await.map_err(|e| transport_error(what, e))?;
                if resp.status().is_success() {
                    return Ok(resp);
                }
                let (status, headers) = (resp.status(), resp.headers().clone());
                let text = self.read_text(what, resp).await.unwrap_or_default();
                Err(status_error(what, status, &headers, &detail(&text)))
            }
        })
        .await
    }

    /// The body of an answer as text, read up to the supplier's `max_response_bytes`; a larger
    /// one is a protocol error (the hub reads whole answers only as JSON or error text, never
    /// files, which stream).
    pub async fn read_text(&self, what: &str, resp: reqwest::Response) -> Result<String, SupplierError> {
        let bytes = read_capped(what, resp, self.max_response).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Reads a whole answer, refusing one larger than `limit` bytes without reading the rest.
pub async fn read_capped(what: &str, mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, SupplierError> {
    let too_large = || SupplierError::Protocol(format!("{what}: the answer is larger than {limit} bytes (max_response_bytes)"));
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(what, e))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads `Retry-After` as delay-seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(3600)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO).min(Duration::from_secs(3600)))
}

/// Classifies a transport error (no HTTP answer at all). A request the egress policy stopped
/// is a refusal: trying again would go to the same place.
pub fn transport_error(what: &str, e: reqwest::Error) -> SupplierError {
    if let Some(why) = super::egress::refusal(&e) {
        return SupplierError::Rejected { status: 0, message: format!("{what}: {why}") };
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    // A request that found no connection never reached the supplier; any other may have.
    SupplierError::Transient { message: format!("{what} {kind}: {e}"), retry_after: None, unsent: e.is_connect() }
}

/// Classifies an HTTP error status; `detail` is the supplier's own error text.
pub fn status_error(what: &str, status: reqwest::StatusCode, headers: &HeaderMap, detail: &str) -> SupplierError {
    let message = format!("{what} answered {status}: {detail}");
    if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
        // A rate limit refuses a request before any work; a server error may come after it.
        SupplierError::Transient { message, retry_after: retry_after(headers), unsent: status.as_u16() == 429 }
    } else {
        SupplierError::Rejected { status: status.as_u16(), message }
    }
}

/// A bare HTTP/1.1 server on 127.0.0.1 for tests: answers every request with what `answer`
/// makes of its path, and records each request's head.
#[cfg(test)]
pub(crate) mod test_server {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub type Heads = Arc<Mutex<Vec<String>>>;

    pub async fn start(answer: impl Fn(&str, u16) -> Vec<u8> + Send + Sync + 'static) -> (u16, Heads) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads: Heads = Arc::default();
        let (h, answer) = (heads.clone(), Arc::new(answer));
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (h, answer) = (h.clone(), answer.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut byte = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut byte).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&byte[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    h.lock().unwrap().push(head);
                    let _ = sock.write_all(&answer(&path, port)).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        (port, heads)
    }

    pub fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::{response, start};
    use super::*;

    fn supplier(base: &str, extra: &str) -> crate::config::SupplierSettings {
        let toml = format!("[[suppliers]]\nid = \"s\"\nname = \"S\"\nsystem = \"servicenow\"\nbase_url = \"{base}\"\nmax_attempts = 1\n{extra}");
        crate::config::Settings::from_toml(&toml).unwrap().suppliers.remove(0)
    }

    #[tokio::test]
    async fn credentials_follow_redirects_within_the_supplier_origin_only() {
        let (elsewhere, stolen) = start(|_, _| response("200 OK", &[], b"secret please")).await;
        let (port, seen) = start(move |path, port| match path {
            "/away" => response("302 Found", &[("Location", format!("http://127.0.0.1:{elsewhere}/steal"))], b""),
            "/moved" => response("302 Found", &[("Location", format!("http://127.0.0.1:{port}/file"))], b""),
            _ => response("200 OK", &[("Content-Length", "5".into())], b"hello"),
        })
        .await;
        let base = format!("http://127.0.0.1:{port}");
        let http = SupplierHttp::for_supplier(&supplier(&base, ""), &crate::config::EgressSettings::default()).unwrap();
        let auth = |r: reqwest::RequestBuilder| r.basic_auth("hub", Some("pw"));
        let ok = http.download("download", &format!("{base}/moved"), auth, |s| s.to_string()).await.unwrap();
        assert_eq!(ok.bytes().await.unwrap().as_ref(), b"hello", "a redirect within the origin is followed");
        assert!(seen.lock().unwrap().iter().all(|h| h.contains("authorization: Basic")), "{:?}", seen.lock().unwrap());
        let err = http.download("download", &format!("{base}/away"), auth, |s| s.to_string()).await.unwrap_err();
        match &err {
            SupplierError::Rejected { message, .. } => assert!(message.contains(&format!("to http://127.0.0.1:{elsewhere}/steal leaves")), "{message}"),
            other => panic!("not a refusal: {other:?}"),
        }
        assert!(stolen.lock().unwrap().is_empty(), "the other origin was reached");
        let err = http.download("download", &format!("http://127.0.0.1:{elsewhere}/x"), auth, |s| s.to_string()).await.unwrap_err();
        assert!(matches!(&err, SupplierError::Rejected { message, .. } if message.contains("another origin than the supplier's")), "{err:?}");
        assert!(stolen.lock().unwrap().is_empty(), "credentials were sent to another origin");
    }

    #[tokio::test]
    async fn answers_over_max_response_bytes_are_protocol_errors() {
        let (port, _) = start(|path, _| {
            let body = vec![b'x'; 2000];
            match path {
                "/sized" => response("200 OK", &[("Content-Length", body.len().to_string())], &body),
                "/small" => response("200 OK", &[], b"{}"),
                // No length: the cap is found while reading.
                _ => response("200 OK", &[], &body),
            }
        })
        .await;
        let base = format!("http://127.0.0.1:{port}");
        let http = SupplierHttp::for_supplier(&supplier(&base, "max_response_bytes = 1000"), &crate::config::EgressSettings::default()).unwrap();
        for path in ["/sized", "/streamed"] {
            let resp = http.client.get(format!("{base}{path}")).send().await.unwrap();
            let err = http.read_text("read", resp).await.unwrap_err();
            assert!(matches!(&err, SupplierError::Protocol(m) if m == "read: the answer is larger than 1000 bytes (max_response_bytes)"), "{path}: {err:?}");
        }
        let resp = http.client.get(format!("{base}/small")).send().await.unwrap();
        assert_eq!(http.read_text("read", resp).await.unwrap(), "{}");
    }

    #[tokio::test]
    async fn the_call_log_counts_retries_and_failures_in_a_row() {
        let http = SupplierHttp::new(Duration::from_secs(1), 100, 3).unwrap().with_min_backoff(Duration::from_millis(1));
        let flaky = || async { Err::<(), _>(SupplierError::Transient { message: "503".into(), retry_after: None, unsent: true }) };
        assert!(http.retrying("read", flaky).await.is_err());
        let calls = http.calls().snapshot();
        assert_eq!((calls.retries.len(), calls.failures_in_row, calls.last_ok), (2, 1, None), "{calls:?}");
        assert!(calls.last_failure.is_some_and(|(_, e)| e == "503"));
        let refused = || async { Err::<(), _>(SupplierError::Rejected { status: 400, message: "bad field".into() }) };
        assert!(http.retrying("write", refused).await.is_err());
        assert_eq!(http.calls().snapshot().failures_in_row, 1, "a refusal of one request says nothing of the supplier's health");
        assert!(http.retrying("read", || async { Ok::<_, SupplierError>(()) }).await.is_ok());
        let calls = http.calls().snapshot();
        assert!(calls.last_ok.is_some() && calls.failures_in_row == 0, "{calls:?}");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    proptest::proptest! {
        #![proptest_config(crate::testkit::config(2000))]

        /// Whatever a supplier puts in `Retry-After` (seconds, a date, garbage, bytes that are no
        /// text), the wait read is at most an hour, and delay-seconds are read as given.
        #[test]
        fn any_retry_after_is_at_most_an_hour(text in proptest::prop_oneof![crate::testkit::date_like(), crate::testkit::odd_text(), "[0-9]{1,25}"], bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let read = |value: Option<reqwest::header::HeaderValue>| {
                let mut h = HeaderMap::new();
                h.extend(value.map(|v| (RETRY_AFTER, v)));
                retry_after(&h)
            };
            let (wait, other) = (read(reqwest::header::HeaderValue::from_str(&text).ok()), read(reqwest::header::HeaderValue::from_bytes(&bytes).ok()));
            for w in [wait, other] {
                proptest::prop_assert!(w.is_none_or(|w| w <= Duration::from_secs(3600)), "{:?}", w);
            }
            if let (Ok(_), Ok(secs)) = (reqwest::header::HeaderValue::from_str(&text), text.trim().parse::<u64>()) {
                proptest::prop_assert_eq!(wait, Some(Duration::from_secs(secs.min(3600))));
            }
        }
    }
}
