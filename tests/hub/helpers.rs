//! A hub per test: its own PostgreSQL database, its own broker names, its own ServiceNow
//! simulator, all on the real services running on this machine.

use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use siam_hub::config::{RoutingRule, SecretRef, Settings, SupplierSettings};
use siam_hub::sim::servicenow::{DisplayMode, ServiceNowSim, SimConfig, WebhookTarget};
use siam_hub::startup::Application;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

pub const SUPPLIER: &str = "sn-network";
pub const SIM_USER: &str = "hub.integration";
pub const SIM_PASSWORD: &str = "sim-password";

fn amqp_base() -> String {
    std::env::var("SIAM_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn pg_base() -> String {
    std::env::var("SIAM_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct Keys {
    pub service_desk: String,
    pub admin: String,
    pub supplier: String,
    pub manager: String,
}

#[derive(Clone)]
pub struct Options {
    pub poll_interval_secs: u64,
    pub max_attempts: u32,
    /// Route the broker connection through a proxy the test can cut.
    pub broker_proxy: bool,
    /// Route the database connections through a proxy the test can cut.
    pub db_proxy: bool,
    /// Changes the test settings further, after they are read (top-level settings the appended
    /// `extra_toml` cannot reach).
    pub tweak: Option<fn(&mut Settings)>,
    pub webhook_mode: DisplayMode,
    /// Seconds the supplier's clock is ahead of (or, negative, behind) the hub's.
    pub sim_clock_skew_secs: i64,
    /// More configuration (TOML) appended to the test settings, e.g. [`SLA_TOML`] or a
    /// `[sync.conflicts]` table.
    pub extra_toml: String,
    /// The ServiceNow supplier's attachment size limit.
    pub supplier_max_attachment_bytes: i64,
    /// `[egress] allow_networks`: loopback by default, where the tests' listeners are.
    pub allow_networks: Vec<String>,
    /// `[tmf621_hub]`: how long a TMF621 subscriber is retried, and how long it has to answer.
    pub notify_retry_budget_secs: u64,
    pub notify_timeout_secs: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            poll_interval_secs: 0,
            max_attempts: 4,
            broker_proxy: false,
            db_proxy: false,
            tweak: None,
            webhook_mode: DisplayMode::Raw,
            sim_clock_skew_secs: 0,
            extra_toml: String::new(),
            supplier_max_attachment_bytes: 25 * 1024 * 1024,
            allow_networks: vec!["127.0.0.0/8".into()],
            notify_retry_budget_secs: 3,
            notify_timeout_secs: 2,
        }
    }
}

impl Options {
    /// The default options with the SLA contracts of [`SLA_TOML`] and a 1 s SLA monitor.
    pub fn sla() -> Options {
        Options { extra_toml: SLA_TOML.to_string(), ..Default::default() }
    }
}

/// A second, queue-only supplier so tickets can be handed between suppliers.
pub const OTHER_SUPPLIER: &str = "hosting";

/// SLA contracts for tests, all on a 24x7 calendar so business time is wall time. Priority 1
/// has one-minute targets, for live warnings within seconds; the others are what the report
/// tests drive with seeded timestamps. Reports are in UTC.
pub const SLA_TOML: &str = r#"
[[suppliers]]
id = "hosting"
name = "Hosting supplier"
system = "queue"

[sla_monitor]
interval_secs = 1

[reporting]
time_zone = "UTC"
compliance_target = 90.0

[[sla.calendars]]
id = "always"
always = true

[[sla.contracts]]
id = "network-ola"
kind = "supplier"
supplier = "sn-network"
calendar = "always"
pause_on = ["awaiting_caller"]
warn_at = [50, 75]
[sla.contracts.targets]
"1" = { response_mins = 1, resolution_mins = 1 }
"2" = { response_mins = 10, resolution_mins = 60 }
"3" = { response_mins = 30, resolution_mins = 240 }
"4" = { response_mins = 60, resolution_mins = 480 }
"5" = { response_mins = 120, resolution_mins = 960 }

[[sla.contracts]]
id = "hosting-ola"
kind = "supplier"
supplier = "hosting"
calendar = "always"
warn_at = [50, 75]
[sla.contracts.targets]
"2" = { response_mins = 10, resolution_mins = 60 }
"3" = { response_mins = 30, resolution_mins = 240 }

[[sla.contracts]]
id = "customer-sla"
kind = "end_to_end"
calendar = "always"
pause_on = ["awaiting_caller"]
warn_at = [50, 75]
[sla.contracts.targets]
"1" = { response_mins = 1, resolution_mins = 1 }
"2" = { response_mins = 10, resolution_mins = 60 }
"3" = { response_mins = 30, resolution_mins = 240 }
"4" = { response_mins = 60, resolution_mins = 480 }
"5" = { response_mins = 120, resolution_mins = 960 }
"#;

pub struct TestHub {
    app: Option<Application>,
    pub addr: String,
    pub sim: ServiceNowSim,
    pub settings: Settings,
    /// The configuration file text of `settings` (without the secrets set in code).
    pub toml: String,
    pub db_name: String,
    pub keys: Keys,
    pub http: reqwest::Client,
    pub webhook_secret: String,
    pub proxy: Option<TcpProxy>,
    /// The database as the hub reaches it, when [`Options::db_proxy`] is set.
    pub db_proxy: Option<TcpProxy>,
    options: Options,
}

/// The test settings, and the TOML they were read from (for the CLI).
fn test_settings(db_name: &str, prefix: &str, sim_url: &str, amqp: &str, pg: &str, webhook_secret: &str, o: &Options) -> (Settings, String) {
    let toml = format!(
        r#"
        listen = "127.0.0.1:0"
        database_url = "{pg}/{db_name}"
        amqp_url = "{amqp}"
        max_body_bytes = 65536
        max_attachment_bytes = 2097152

        [broker]
        prefix = "{prefix}"
        queue_expires_ms = 120000

        [egress]
        allow_networks = {allow}

        [tmf621_hub]
        retry_budget_secs = {budget}
        delivery_timeout_secs = {notify_timeout}

        [[services]]
        name = "network"
        [[services]]
        name = "email"
        [[services]]
        name = "payroll"

        [[suppliers]]
        id = "{SUPPLIER}"
        name = "Network supplier"
        system = "servicenow"
        base_url = "{sim_url}"
        username = "{SIM_USER}"
        poll_interval_secs = {poll}
        poll_overlap_secs = 120
        timeout_secs = 2
        max_attempts = {attempts}
        rate_per_sec = 50
        max_attachment_bytes = {att_limit}

        [routing]
        default_queue = "integrator"

        [[routing.rules]]
        service = "network"
        supplier = "{SUPPLIER}"

        {extra}
        "#,
        extra = o.extra_toml,
        allow = serde_json::to_string(&o.allow_networks).expect("a list of strings"),
        budget = o.notify_retry_budget_secs,
        notify_timeout = o.notify_timeout_secs,
        att_limit = o.supplier_max_attachment_bytes,
        poll = o.poll_interval_secs,
        attempts = o.max_attempts,
    );
    let mut s = Settings::from_toml(&toml).expect("test settings are valid");
    if let Some(tweak) = o.tweak {
        tweak(&mut s);
    }
    s.suppliers[0].password = Some(SecretRef::Value(SecretString::from(SIM_PASSWORD.to_string())));
    s.suppliers[0].webhook_secret = Some(SecretRef::Value(SecretString::from(webhook_secret.to_string())));
    (s, toml)
}

impl TestHub {
    pub async fn spawn() -> TestHub {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> TestHub {
        Self::spawn_with_suppliers(options, vec![], vec![]).await
    }

    /// A hub with more supplier instances (and routing rules for them) beside the ServiceNow one.
    pub async fn spawn_with_suppliers(options: Options, suppliers: Vec<SupplierSettings>, rules: Vec<RoutingRule>) -> TestHub {
        let _ = tracing_subscriber::fmt().with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into())).with_test_writer().try_init();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let db_name = format!("siam_test_{}", &id[..16]);
        let prefix = format!("t_{}", &id[..12]);
        let sim = ServiceNowSim::new(SimConfig { user: SIM_USER.into(), password: SIM_PASSWORD.into(), clock_skew_secs: options.sim_clock_skew_secs, ..SimConfig::default() });
        sim.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).expect("simulator starts");
        let sim_url = sim.base_url().unwrap();
        let proxy = if options.broker_proxy { Some(TcpProxy::start(&amqp_base()).await) } else { None };
        let amqp = match &proxy {
            Some(p) => format!("amqp://guest:guest@127.0.0.1:{}/%2f", p.port),
            None => amqp_base(),
        };
        let db_proxy = if options.db_proxy { Some(TcpProxy::start(&pg_base()).await) } else { None };
        let pg = match &db_proxy {
            Some(p) => {
                let mut u = url::Url::parse(&pg_base()).unwrap();
                u.set_host(Some("127.0.0.1")).unwrap();
                u.set_port(Some(p.port)).unwrap();
                u.as_str().trim_end_matches('/').to_string()
            }
            None => pg_base(),
        };
        let webhook_secret = format!("whsec-{}", &id[16..]);
        let (mut settings, toml) = test_settings(&db_name, &prefix, &sim_url, &amqp, &pg, &webhook_secret, &options);
        settings.suppliers.extend(suppliers);
        settings.routing.rules.extend(rules);
        let mut hub = TestHub {
            app: None,
            addr: String::new(),
            sim,
            settings,
            toml,
            db_name,
            keys: Keys { service_desk: String::new(), admin: String::new(), supplier: String::new(), manager: String::new() },
            http: reqwest::Client::new(),
            webhook_secret,
            proxy,
            db_proxy,
            options,
        };
        hub.start().await;
        hub.keys = Keys {
            service_desk: hub.key("service_desk", None).await,
            admin: hub.key("admin", None).await,
            supplier: hub.key("supplier", Some(SUPPLIER)).await,
            manager: hub.key("manager", None).await,
        };
        hub
    }

    /// A new API key with `role` (for a supplier key, scoped to `supplier`).
    pub async fn key(&self, role: &str, supplier: Option<&str>) -> String {
        let (role, supplier) = (role.to_string(), supplier.map(str::to_string));
        self.app().store.run(move |c| siam_hub::store::auth::create(c, &role, supplier.as_deref(), Some("test"))).await.unwrap()
    }

    pub fn app(&self) -> &Application {
        self.app.as_ref().expect("the hub is running")
    }

    async fn start(&mut self) {
        let app = Application::build_with_listener(self.settings.clone(), std::net::TcpListener::bind("127.0.0.1:0").unwrap()).await.expect("the hub starts");
        self.addr = format!("http://127.0.0.1:{}", app.port());
        self.sim.set_webhook(Some(WebhookTarget {
            url: format!("{}/webhooks/{SUPPLIER}", self.addr),
            secret: self.webhook_secret.clone(),
            display_value: self.options.webhook_mode,
        }));
        self.app = Some(app);
    }

    /// Stops the whole hub (API, relay, consumers, sweeps).
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    pub fn set_amqp_url(&mut self, url: &str) {
        self.settings.amqp_url = url.to_string();
    }

    /// Stops the hub, deletes its broker queues and exchanges, and drops its database.
    pub async fn finish(mut self) {
        self.stop().await;
        let prefix = self.settings.broker.prefix.clone();
        let suppliers: Vec<String> = self.settings.suppliers.iter().map(|s| s.id.clone()).collect();
        if let Ok(Ok(conn)) = tokio::time::timeout(
            Duration::from_secs(5),
            lapin::Connection::connect(
                &amqp_base(),
                lapin::ConnectionProperties::default().with_executor(tokio_executor_trait::Tokio::current()).with_reactor(tokio_reactor_trait::Tokio),
            ),
        )
        .await
        {
            if let Ok(ch) = conn.create_channel().await {
                for q in suppliers.iter().map(|s| format!("{prefix}.dispatch.{s}")).chain([format!("{prefix}.dead"), format!("{prefix}.tmf621.notify")]) {
                    let _ = ch.queue_delete(&q, Default::default()).await;
                }
                for e in [format!("{prefix}.events"), format!("{prefix}.dlx")] {
                    let _ = ch.exchange_delete(&e, Default::default()).await;
                }
            }
            let _ = conn.close(200, "test done").await;
        }
        let url = format!("{}/postgres", pg_base());
        let name = self.db_name.clone();
        let _ = tokio::task::spawn_blocking(move || {
            use diesel::{Connection, RunQueryDsl};
            let mut c = diesel::PgConnection::establish(&url).ok()?;
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).ok()
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.addr, path)
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Response {
        self.http.post(self.url(path)).bearer_auth(key).json(body).send().await.unwrap()
    }

    pub async fn get_as(&self, path: &str, key: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(key).send().await.unwrap()
    }

    pub async fn create(&self, body: &Value, idempotency_key: Option<&str>) -> Response {
        let mut req = self.http.post(self.url("/api/v1/incidents")).bearer_auth(&self.keys.service_desk).json(body);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.unwrap()
    }

    /// Raises an incident and returns its document (asserting 201).
    pub async fn raise(&self, body: &Value) -> Value {
        let resp = self.create(body, Some(&uuid::Uuid::new_v4().to_string())).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "create failed: {}", resp.text().await.unwrap_or_default());
        resp.json().await.unwrap()
    }

    /// Raises a network incident and waits until its ServiceNow ticket exists: (ref, sys_id).
    pub async fn open_ticket(&self, title: &str) -> (String, String) {
        let doc = self.raise(&network_incident(title)).await;
        let r = doc["ref"].as_str().unwrap().to_string();
        let doc = self.wait_incident(&r, "the leg to open", |d| d["legs"][0]["state"] == "open").await;
        (r, doc["legs"][0]["native_id"].as_str().unwrap().to_string())
    }

    /// Attaches a file to the record as the service desk does.
    pub async fn attach(&self, reference: &str, file_name: &str, content_type: &str, data: Vec<u8>) -> Response {
        self.http
            .post(self.url(&format!("/api/v1/incidents/{reference}/attachments?file_name={file_name}")))
            .bearer_auth(&self.keys.service_desk)
            .header("content-type", content_type)
            .body(data)
            .send()
            .await
            .unwrap()
    }

    pub async fn incident(&self, reference: &str) -> Value {
        let resp = self.get_as(&format!("/api/v1/incidents/{reference}"), &self.keys.service_desk).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    pub async fn history(&self, reference: &str) -> Vec<Value> {
        let v: Value = self.get_as(&format!("/api/v1/incidents/{reference}/history"), &self.keys.service_desk).await.json().await.unwrap();
        v["events"].as_array().cloned().unwrap_or_default()
    }

    pub async fn patch(&self, reference: &str, version: i64, body: &Value) -> Response {
        self.http
            .patch(self.url(&format!("/api/v1/incidents/{reference}")))
            .bearer_auth(&self.keys.service_desk)
            .header("If-Match", format!("\"{version}\""))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Waits (up to 30 s: a loaded machine is slow, a lost update never comes) until the
    /// incident satisfies `cond`, and returns it.
    pub async fn wait_incident(&self, reference: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let doc = self.incident(reference).await;
            if cond(&doc) {
                return doc;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; incident is {}", serde_json::to_string_pretty(&doc).unwrap());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the simulator holds the supplier ticket of `reference`, and returns it.
    pub async fn wait_sim_ticket(&self, reference: &str) -> Value {
        wait_for("the supplier ticket", || self.sim.incident_by_correlation(reference).first().cloned()).await
    }

    /// Lets webhooks and dispatches in flight settle: the record stops changing for 600 ms.
    pub async fn settle(&self, reference: &str) -> Value {
        let mut last = self.incident(reference).await;
        let mut stable_since = tokio::time::Instant::now();
        let deadline = stable_since + Duration::from_secs(30);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.incident(reference).await;
            if now != last {
                last = now;
                stable_since = tokio::time::Instant::now();
            } else if stable_since.elapsed() > Duration::from_millis(600) {
                return last;
            }
            assert!(tokio::time::Instant::now() < deadline, "the record never settled");
        }
    }

    pub async fn reconcile(&self) -> Value {
        let resp = self.post(&format!("/api/v1/admin/suppliers/{SUPPLIER}/reconcile"), &self.keys.admin, &json!({})).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }
}

/// The leg of `supplier` in `state` on an incident document.
pub fn leg<'a>(doc: &'a Value, supplier: &str, state: &str) -> Option<&'a Value> {
    doc["legs"].as_array().unwrap().iter().find(|l| l["supplier"] == supplier && l["state"] == state)
}

impl TestHub {
    /// The service desk re-routes the incident to `supplier`.
    pub async fn route(&self, reference: &str, supplier: &str) {
        let resp = self.post(&format!("/api/v1/incidents/{reference}/route"), &self.keys.service_desk, &json!({"supplier": supplier, "reason": "triage"})).await;
        assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap_or_default());
    }

    /// `supplier` holds the incident's ticket `first`; the service desk routes the incident to
    /// `other` and back to `supplier`, whose system loses the answer to the create of its new
    /// ticket (`lose_create` queues the faults on its simulator). Exactly one new ticket is made
    /// and the new leg holds it, not the old one. `tickets` lists the ids of the tickets the
    /// supplier's simulator holds with the incident's reference.
    pub async fn routed_back_gets_one_fresh_ticket(
        &self,
        reference: &str,
        supplier: &str,
        other: &str,
        first: &str,
        lose_create: impl FnOnce(),
        tickets: impl Fn() -> Vec<String>,
    ) {
        self.route(reference, other).await;
        self.wait_incident(reference, "the first leg to be withdrawn", |d| leg(d, supplier, "withdrawn").is_some_and(|l| l["closed_at"].is_string())).await;
        self.settle(reference).await;
        assert_eq!(tickets(), [first], "the supplier holds the first ticket only");

        lose_create();
        self.route(reference, supplier).await;
        // The dispatcher's own opening of the leg (which sets its link) is the end of the create.
        self.wait_incident(reference, "the new leg to open", |d| leg(d, supplier, "open").is_some_and(|l| l["url"].is_string())).await;
        let doc = self.settle(reference).await;
        let held = tickets();
        assert_eq!(held.len(), 2, "exactly one new supplier ticket: {held:?}");
        let fresh = held.iter().find(|id| *id != first).unwrap();
        assert_eq!(leg(&doc, supplier, "open").unwrap()["native_id"], fresh.as_str(), "the new leg holds the new ticket: {}", doc["legs"]);
        assert_eq!(leg(&doc, supplier, "withdrawn").unwrap()["native_id"], first, "the earlier leg keeps its ticket: {}", doc["legs"]);
    }
}

pub async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the simulator's request log has not grown for a second: the dispatch in flight
/// is over.
pub async fn quiet(len: impl Fn() -> usize) {
    let mut last = len();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = len();
        if now == last {
            return;
        }
        last = now;
    }
}

pub fn network_incident(title: &str) -> Value {
    json!({
        "title": title,
        "description": "No network on floor 3 of building 2",
        "service": "network",
        "ci": "core-switch-02",
        "impact": 1,
        "urgency": 2,
        "caller": "j.smith",
        "category": "network"
    })
}

/// A TCP forwarder in front of RabbitMQ or PostgreSQL that a test can close (refuse and cut
/// every connection) and reopen, to play an outage without touching the shared service.
pub struct TcpProxy {
    pub port: u16,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl TcpProxy {
    /// Forwards to the host and port of `service_url`, on a thread of its own (the hub may
    /// block the test's runtime while it connects through the proxy).
    async fn start(service_url: &str) -> TcpProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let target = url::Url::parse(service_url).unwrap();
        let target =
            format!("{}:{}", target.host_str().unwrap_or("127.0.0.1"), target.port_or_known_default().unwrap_or(if target.scheme().starts_with("postgres") { 5432 } else { 5672 }));
        let (o, c) = (open.clone(), conns.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else { return };
                    if !o.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let target = target.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    c.lock().unwrap().push(task.abort_handle());
                }
            });
        });
        TcpProxy { port, open, conns }
    }

    /// The service "goes down": existing connections are cut, new ones refused.
    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub fn reopen(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl TestHub {
    /// Waits until the hub reports ready (database and broker; the broker topology declared).
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while self.http.get(self.url("/readyz")).send().await.map(|r| r.status()).ok() != Some(StatusCode::OK) {
            assert!(tokio::time::Instant::now() < deadline, "the hub never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes tickets with chosen event times straight into the record; returns their refs.
    pub async fn seed(&self, stories: Vec<siam_hub::store::seed::Story>) -> Vec<String> {
        let refs = self.app().store.run(move |c| siam_hub::store::seed::insert(c, &stories)).await.unwrap();
        refs.into_iter().map(|(_, r)| r).collect()
    }

    /// Waits until the SLA monitor has computed every ticket whose log changed.
    pub async fn sla_settled(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let pending = self.app().store.run(siam_hub::store::sla::pending).await.unwrap();
            if pending == 0 {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the SLA monitor left {pending} tickets uncomputed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A channel on the broker the hub uses (the connection comes with it and must be kept).
    pub async fn broker_channel(&self) -> (lapin::Connection, lapin::Channel) {
        let conn = lapin::Connection::connect(
            &amqp_base(),
            lapin::ConnectionProperties::default().with_executor(tokio_executor_trait::Tokio::current()).with_reactor(tokio_reactor_trait::Tokio),
        )
        .await
        .unwrap();
        let ch = conn.create_channel().await.unwrap();
        (conn, ch)
    }

    /// A temporary queue on the hub's event exchange bound to `pattern` (e.g. `sla.#`).
    pub async fn subscribe(&self, pattern: &str) -> EventTap {
        use lapin::options::*;
        use lapin::types::FieldTable;
        self.wait_ready().await;
        let (conn, ch) = self.broker_channel().await;
        let q = ch.queue_declare("", QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() }, FieldTable::default()).await.unwrap();
        let exchange = format!("{}.events", self.settings.broker.prefix);
        ch.queue_bind(q.name().as_str(), &exchange, pattern, QueueBindOptions::default(), FieldTable::default()).await.unwrap();
        let consumer = ch.basic_consume(q.name().as_str(), "tap", BasicConsumeOptions { no_ack: true, ..Default::default() }, FieldTable::default()).await.unwrap();
        EventTap { _conn: conn, consumer }
    }
}

/// Messages from the hub's event exchange, as a test sees them.
pub struct EventTap {
    _conn: lapin::Connection,
    consumer: lapin::Consumer,
}

impl EventTap {
    /// The next message within `wait`, as (routing key, CloudEvent).
    pub async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        use futures_util::StreamExt;
        let d = tokio::time::timeout(wait, self.consumer.next()).await.ok()??.ok()?;
        Some((d.routing_key.as_str().to_string(), serde_json::from_slice(&d.data).unwrap_or(Value::Null)))
    }

    /// Every message that arrives until `quiet` passes without one.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<(String, Value)> {
        let mut out = vec![];
        while let Some(m) = self.next(quiet).await {
            out.push(m);
        }
        out
    }
}
