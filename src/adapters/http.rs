//! What every supplier client shares: timeouts, retries with backoff that honour `Retry-After`,
//! and a rate governor per supplier instance.

use super::SupplierError;
use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct SupplierHttp {
    pub client: reqwest::Client,
    limiter: Arc<DefaultDirectRateLimiter>,
    max_attempts: u32,
    min_backoff: Duration,
}

impl SupplierHttp {
    pub fn new(timeout: Duration, rate_per_sec: u32, max_attempts: u32) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("siam-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let rate = NonZeroU32::new(rate_per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(SupplierHttp { client, limiter: Arc::new(RateLimiter::direct(Quota::per_second(rate))), max_attempts: max_attempts.max(1), min_backoff: Duration::from_millis(200) })
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
        attempt
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
            .notify(|e, dur| tracing::warn!(call = what, error = %e, retry_in = ?dur, "supplier call failed; retrying"))
            .await
    }
}

impl SupplierHttp {
    /// Opens a download with retries and returns the answer for its body to be streamed;
    /// `detail` reads the supplier's own error body.
    pub async fn download(&self, what: &str, request: impl Fn() -> reqwest::RequestBuilder, detail: fn(&str) -> String) -> Result<reqwest::Response, SupplierError> {
        self.retrying(what, || {
            let req = request();
            async move {
                let resp = req.send().await.map_err(|e| transport_error(what, e))?;
                if resp.status().is_success() {
                    return Ok(resp);
                }
                let (status, headers) = (resp.status(), resp.headers().clone());
                let text = resp.text().await.unwrap_or_default();
                Err(status_error(what, status, &headers, &detail(&text)))
            }
        })
        .await
    }
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

/// Classifies a transport error (no HTTP answer at all).
pub fn transport_error(what: &str, e: reqwest::Error) -> SupplierError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    SupplierError::Transient { message: format!("{what} {kind}: {e}"), retry_after: None }
}

/// Classifies an HTTP error status; `detail` is the supplier's own error text.
pub fn status_error(what: &str, status: reqwest::StatusCode, headers: &HeaderMap, detail: &str) -> SupplierError {
    let message = format!("{what} answered {status}: {detail}");
    if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
        SupplierError::Transient { message, retry_after: retry_after(headers) }
    } else {
        SupplierError::Rejected { status: status.as_u16(), message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
