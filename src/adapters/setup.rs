//! First contact with a supplier instance: checking that the hub can work with it, and
//! discovering the instance's own vocabulary with a proposed canonical meaning for each value.
//!
//! A check is a list of named steps, each ok or failed, saying what was found and, when it
//! failed, what to change at the supplier (or in the hub's configuration). Reachability, TLS and
//! the clock skew are the same for every system ([`check`]); what the integration user may do
//! and which fields the profile needs are each system's ([`Setup::steps`]). Discovery reads the
//! instance's statuses, priorities and fields and proposes, for each native value, the canonical
//! one with why (its category, its label, the reference profile), with a TOML snippet an
//! administrator can paste into the supplier's `[suppliers.*]` section.

use super::SupplierError;
use async_trait::async_trait;
use serde::Serialize;

/// One step of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// What was checked, e.g. `credentials`, `create tickets`, `clock skew`.
    pub name: String,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// When it failed: what to change, and where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Step {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Step {
        Step { name: name.into(), ok: true, detail: detail.into(), fix: None }
    }

    pub fn failed(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Step {
        Step { name: name.into(), ok: false, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// The answer of a check: ok when every step is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub steps: Vec<Step>,
}

impl CheckReport {
    pub fn of(steps: Vec<Step>) -> CheckReport {
        CheckReport { ok: steps.iter().all(|s| s.ok), steps }
    }
}

/// One native value of the instance, with what the hub proposes it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proposal {
    /// The value as the instance stores it (a status id, a choice value, an enumeration number).
    pub native: String,
    /// Its name at the instance.
    pub label: String,
    /// The canonical value proposed (`in_progress`, `2`...), if any fits.
    pub proposed: Option<String>,
    /// Why: the category, the label, the reference profile.
    pub why: String,
    /// What the hub's configuration maps it to today, if anything.
    pub configured: Option<String>,
}

/// The instance's vocabulary, as discovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Discovery {
    pub statuses: Vec<Proposal>,
    pub priorities: Vec<Proposal>,
    /// Fields the profile needs (custom fields found by name, close codes, hold reasons...).
    pub fields: Vec<Proposal>,
    /// The `[suppliers.*]` settings that map what the configuration does not know yet, ready to
    /// paste (empty when nothing is missing).
    pub toml: String,
}

/// What a supported system's client can tell about its instance.
#[async_trait]
pub trait Setup: Send + Sync {
    /// The system's own steps: credentials accepted, what the integration user may do (read,
    /// create and update tickets, write notes of both visibilities, upload and download files,
    /// read the fields the profile needs).
    async fn steps(&self) -> Vec<Step>;

    /// The instance's vocabulary with a proposal for each value.
    async fn discover(&self) -> Result<Discovery, SupplierError>;
}

/// What the hub checks and discovers one configured supplier instance with: its system's
/// [`Setup`] and the supplier's HTTP client, with the password resolved as the hub resolves it
/// at start. An error names what in the configuration is missing or wrong.
pub fn for_configured(
    settings: &crate::config::SupplierSettings,
    egress: &crate::config::EgressSettings,
) -> Result<(std::sync::Arc<dyn Setup>, super::http::SupplierHttp), String> {
    if !settings.is_external() {
        return Err(format!("supplier `{}` is the hub's own queue (system `{}`): there is no supplier system to check", settings.id, settings.system));
    }
    let password = settings.password_secret().map_err(|e| e.to_string())?;
    super::setup_for(settings, egress, password)
}

/// Within this skew the supplier's clock is as good as the hub's.
const SKEW_FINE_SECS: i64 = 60;
/// Beyond this skew timestamps the hub relies on (webhook signatures, the sweep's watermark)
/// are no longer trustworthy: the check fails.
const SKEW_FAILED_SECS: i64 = 300;

/// Checks a supplier instance: the steps every system shares (`reachable`: DNS, connection,
/// TLS; `clock skew` against the hub's clock), then the system's own [`Setup::steps`], which
/// run only once the instance answered at all (they are reported as skipped otherwise). Calls
/// go through the supplier's own HTTP client, so its timeouts, redirect rule and egress policy
/// apply as they do to the hub's work with it.
pub async fn check(http: &super::http::SupplierHttp, base_url: &str, setup: &dyn Setup) -> CheckReport {
    let mut steps = Vec::new();
    match reach(&http.client, base_url).await {
        Ok(answer) => {
            steps.push(answer.step);
            steps.push(clock_skew(answer.date.as_deref(), chrono::Utc::now()));
            steps.extend(setup.steps().await);
        }
        Err(step) => {
            steps.push(step);
            steps.push(Step::failed(
                "system checks",
                "skipped: the credentials, permissions and fields are checked once the supplier can be reached",
                "fix the reachability above, then run the check again",
            ));
        }
    }
    CheckReport::of(steps)
}

/// The `reachable` step alone: whether the instance answers at all, and if not, why and what
/// to change (for explaining a failed discovery).
pub async fn reachability(http: &super::http::SupplierHttp, base_url: &str) -> Step {
    match reach(&http.client, base_url).await {
        Ok(answer) => answer.step,
        Err(step) => step,
    }
}

/// What the first request to the instance found.
struct Answer {
    step: Step,
    /// The answer's `Date` header.
    date: Option<String>,
}

/// One plain request to the base URL, without credentials: any HTTP answer (even 401 or 404)
/// shows the instance is reachable.
async fn reach(client: &reqwest::Client, base_url: &str) -> Result<Answer, Step> {
    let url = url::Url::parse(base_url)
        .map_err(|e| Step::failed("reachable", format!("base_url `{base_url}` is not a URL: {e}"), "correct base_url in the supplier's [[suppliers]] entry"))?;
    let host = url.host_str().unwrap_or_default().to_string();
    match client.get(url.clone()).send().await {
        Ok(resp) => {
            let date = resp.headers().get(reqwest::header::DATE).and_then(|v| v.to_str().ok()).map(str::to_string);
            let tls = if url.scheme() == "https" { " over TLS, its certificate accepted" } else { "" };
            Ok(Answer { step: Step::ok("reachable", format!("{host} answered {}{tls}", resp.status())), date })
        }
        Err(e) => {
            if let Some(why) = super::egress::refusal(&e) {
                return Err(Step::failed("reachable", why, "list the supplier's network in [egress] allow_networks if the hub may reach it"));
            }
            let (detail, fix) = unreachable_because(&host, url.port_or_known_default(), &error_chain(&e), e.is_timeout());
            Err(Step::failed("reachable", detail, fix))
        }
    }
}

/// An error and every error under it, as one text.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Why a request found no answer, and what to change: from the error's text (the resolver's,
/// the socket's and the TLS library's messages), or `timed_out`.
fn unreachable_because(host: &str, port: Option<u16>, chain: &str, timed_out: bool) -> (String, String) {
    let lower = chain.to_lowercase();
    let at = match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    if lower.contains("dns error") || lower.contains("failed to lookup address") || lower.contains("name or service not known") || lower.contains("no such host") {
        (
            format!("the DNS name {host} was not found ({chain})"),
            "check the host name in base_url, and that the hub's DNS resolver knows it (a private name needs the hub on that network)".into(),
        )
    } else if lower.contains("certificate") || lower.contains("ssl") || lower.contains("tls") || lower.contains("handshake") {
        (
            format!("the TLS connection to {at} failed: {chain}"),
            "the supplier's certificate must be valid for this host name and issued by a CA the hub's system trusts (install the CA in the hub's trust store if it is a private one); check base_url uses the right scheme and port".into(),
        )
    } else if lower.contains("connection refused") {
        (
            format!("the connection to {at} was refused: nothing listens there"),
            "check the port in base_url, and that the supplier's service is running and not behind a firewall that rejects the hub".into(),
        )
    } else if timed_out || lower.contains("timed out") {
        (
            format!("{at} did not answer in time ({chain})"),
            "check that a firewall or proxy lets the hub reach the supplier (packets dropped look like this), or raise timeout_secs if the supplier is slow".into(),
        )
    } else {
        (format!("{at} could not be reached: {chain}"), "check base_url and the network between the hub and the supplier".into())
    }
}

/// The `clock skew` step from the supplier's `Date` header, against the hub's clock `now`.
fn clock_skew(date: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> Step {
    const NAME: &str = "clock skew";
    let Some(date) = date else {
        return Step::ok(NAME, "not measured: the supplier's answer carries no Date header");
    };
    let Ok(theirs) = chrono::DateTime::parse_from_rfc2822(date.trim()) else {
        return Step::ok(NAME, format!("not measured: the supplier's Date header `{date}` is not an HTTP date"));
    };
    let skew = (theirs.with_timezone(&chrono::Utc) - now).num_seconds();
    let way = if skew > 0 { "ahead of" } else { "behind" };
    let amount = skew.abs();
    if amount <= SKEW_FINE_SECS {
        Step::ok(NAME, format!("{amount} s {way} the hub's clock"))
    } else if amount <= SKEW_FAILED_SECS {
        Step::ok(NAME, format!("the supplier's clock is {amount} s {way} the hub's: within what the hub tolerates, but worth setting right (NTP)"))
    } else {
        Step::failed(
            NAME,
            format!("the supplier's clock is {amount} s {way} the hub's"),
            "set the supplier's (or the hub's) clock by NTP; until then signed webhooks may be refused as stale (webhook_tolerance_secs) and the sweep must re-read further back (poll_overlap_secs above the skew)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::http::test_server::{response, start};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A system whose own steps say they ran.
    struct Counting(AtomicUsize);

    #[async_trait]
    impl Setup for Counting {
        async fn steps(&self) -> Vec<Step> {
            self.0.fetch_add(1, Ordering::SeqCst);
            vec![Step::ok("credentials", "accepted")]
        }

        async fn discover(&self) -> Result<Discovery, SupplierError> {
            Ok(Discovery::default())
        }
    }

    fn http_for(base: &str, extra: &str) -> crate::adapters::http::SupplierHttp {
        let toml = format!("[[suppliers]]\nid = \"s\"\nname = \"S\"\nsystem = \"servicenow\"\nbase_url = \"{base}\"\nmax_attempts = 1\n{extra}");
        let settings = crate::config::Settings::from_toml(&toml).unwrap().suppliers.remove(0);
        crate::adapters::http::SupplierHttp::for_supplier(&settings, &crate::config::EgressSettings::default()).unwrap()
    }

    /// An https server on loopback whose certificate no CA vouches for (self-signed, made with
    /// the `openssl` command), answering every connection with 200.
    fn self_signed_server() -> u16 {
        let dir = std::env::temp_dir().join(format!("siam-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
        let made = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("the openssl command");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let identity = native_tls::Identity::from_pkcs8(&std::fs::read(&cert).unwrap(), &std::fs::read(&key).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let acceptor = native_tls::TlsAcceptor::new(identity).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Ok(mut tls) = acceptor.accept(stream) {
                    use std::io::Write;
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                }
            }
        });
        port
    }

    #[tokio::test]
    async fn a_certificate_no_trusted_authority_issued_is_named_with_what_to_do() {
        let port = self_signed_server();
        let base = format!("https://127.0.0.1:{port}");
        let system = Counting(AtomicUsize::new(0));
        let report = check(&http_for(&base, ""), &base, &system).await;
        assert!(!report.ok);
        let reach = &report.steps[0];
        assert_eq!((reach.name.as_str(), reach.ok), ("reachable", false), "{report:?}");
        assert!(reach.detail.contains("certificate"), "{}", reach.detail);
        assert!(reach.fix.as_deref().is_some_and(|f| f.contains("trust")), "{:?}", reach.fix);
        assert_eq!(system.0.load(Ordering::SeqCst), 0, "no system step runs against an instance the hub cannot trust");
    }

    #[tokio::test]
    async fn a_reachable_instance_gets_the_shared_steps_then_its_own() {
        let date = httpdate(chrono::Utc::now());
        let (port, _) = start(move |_, _| response("401 Unauthorized", &[("Date", date.clone()), ("Content-Length", "0".into())], b"")).await;
        let base = format!("http://127.0.0.1:{port}");
        let system = Counting(AtomicUsize::new(0));
        let report = check(&http_for(&base, ""), &base, &system).await;
        let names: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["reachable", "clock skew", "credentials"], "{report:?}");
        assert!(report.ok, "{report:?}");
        assert!(report.steps[0].detail.contains("401"), "any answer shows it is reachable: {report:?}");
        assert_eq!(system.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_closed_port_is_named_and_the_system_steps_are_skipped() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let base = format!("http://127.0.0.1:{port}");
        let system = Counting(AtomicUsize::new(0));
        let report = check(&http_for(&base, ""), &base, &system).await;
        assert!(!report.ok);
        assert_eq!(report.steps[0].name, "reachable");
        assert!(report.steps[0].detail.contains("refused"), "{report:?}");
        assert!(report.steps[0].fix.as_deref().unwrap_or_default().contains("port"), "{report:?}");
        assert!(report.steps[1].detail.starts_with("skipped"), "{report:?}");
        assert_eq!(system.0.load(Ordering::SeqCst), 0, "the system's steps did not run");
    }

    #[tokio::test]
    async fn an_instance_that_never_answers_is_a_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                open.push(sock);
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let report = check(&http_for(&base, "timeout_secs = 1"), &base, &Counting(AtomicUsize::new(0))).await;
        assert!(!report.ok);
        assert!(report.steps[0].detail.contains("did not answer in time"), "{report:?}");
        assert!(report.steps[0].fix.as_deref().unwrap_or_default().contains("timeout_secs"), "{report:?}");
        held.abort();
    }

    #[test]
    fn each_cause_of_no_answer_is_named_with_its_fix() {
        let (d, f) = unreachable_because(
            "acme.invalid",
            Some(443),
            "error sending request: client error (Connect): dns error: failed to lookup address information: Name or service not known",
            false,
        );
        assert!(d.contains("DNS name acme.invalid was not found") && f.contains("host name"), "{d} / {f}");
        let (d, f) = unreachable_because(
            "acme.example",
            Some(443),
            "error sending request: client error (Connect): error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed",
            false,
        );
        assert!(d.contains("TLS connection to acme.example:443 failed") && f.contains("trust store"), "{d} / {f}");
        let (d, f) = unreachable_because("10.0.0.9", Some(8443), "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)", false);
        assert!(d.contains("10.0.0.9:8443 was refused") && f.contains("port"), "{d} / {f}");
        let (d, f) = unreachable_because("10.0.0.9", Some(443), "error sending request: operation timed out", true);
        assert!(d.contains("did not answer in time") && f.contains("firewall"), "{d} / {f}");
    }

    #[test]
    fn the_clock_skew_is_fine_within_a_minute_named_up_to_five_and_failed_beyond() {
        let now = chrono::Utc::now();
        let at = |secs: i64| httpdate(now + chrono::Duration::seconds(secs));
        let s = clock_skew(Some(&at(20)), now);
        assert!(s.ok && s.detail.contains("ahead of"), "{s:?}");
        let s = clock_skew(Some(&at(-150)), now);
        assert!(s.ok && s.detail.contains("150 s behind"), "{s:?}");
        let s = clock_skew(Some(&at(400)), now);
        assert!(!s.ok && s.detail.contains("s ahead of") && s.fix.as_deref().unwrap_or_default().contains("NTP"), "{s:?}");
        assert!(clock_skew(None, now).ok);
        assert!(clock_skew(Some("yesterday"), now).detail.contains("not an HTTP date"));
    }

    fn httpdate(t: chrono::DateTime<chrono::Utc>) -> String {
        t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
    }
}
