//! Delivery benchmark: how long from `POST /api/v1/incidents` answering 201 to the supplier
//! ticket existing in ServiceNow (the simulator), for a burst of incidents, on the real
//! PostgreSQL and RabbitMQ. Prints figures; asserts nothing about speed.
//!
//! `cargo bench --bench delivery` (env `SIAM_BENCH_INCIDENTS`, default 200).

use secrecy::SecretString;
use siam_hub::config::{SecretRef, Settings};
use siam_hub::sim::servicenow::{ServiceNowSim, SimConfig};
use siam_hub::startup::Application;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("SIAM_BENCH_INCIDENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let db = format!("siam_bench_{}", &id[..12]);
    let sim = ServiceNowSim::new(SimConfig::default());
    sim.start(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).expect("simulator");
    let mut settings = Settings::from_toml(&format!(
        r#"
        listen = "127.0.0.1:0"
        database_url = "postgres://postgres@127.0.0.1:5432/{db}"
        [broker]
        prefix = "bench_{p}"
        queue_expires_ms = 60000
        [[services]]
        name = "network"
        [[suppliers]]
        id = "sn"
        name = "SN"
        system = "servicenow"
        base_url = "{url}"
        username = "hub.integration"
        poll_interval_secs = 0
        rate_per_sec = 10000
        [[routing.rules]]
        service = "network"
        supplier = "sn"
        "#,
        p = &id[..8],
        url = sim.base_url().unwrap()
    ))
    .expect("settings");
    settings.suppliers[0].password = Some(SecretRef::Value(SecretString::from(SimConfig::default().password)));
    let app = Application::build_with_listener(settings, std::net::TcpListener::bind("127.0.0.1:0").unwrap()).await.expect("hub");
    let url = format!("http://127.0.0.1:{}", app.port());
    let store = app.store.clone();
    let key = store.run(|c| siam_hub::store::auth::create(c, "service_desk", None, Some("bench"))).await.unwrap();
    let http = reqwest::Client::new();
    while !app.bus.is_connected() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let started = Instant::now();
    let mut accepted = Vec::with_capacity(n);
    for i in 0..n {
        let body = serde_json::json!({"title": format!("bench {i}"), "service": "network", "impact": 2, "urgency": 2, "caller": "bench"});
        let resp = http.post(format!("{url}/api/v1/incidents")).bearer_auth(&key).json(&body).send().await.unwrap();
        let doc: serde_json::Value = resp.json().await.unwrap();
        accepted.push((doc["ref"].as_str().unwrap().to_string(), Instant::now()));
    }
    let accept_time = started.elapsed();
    let mut latencies = Vec::with_capacity(n);
    let mut pending: Vec<(String, Instant)> = accepted;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pending.is_empty() && Instant::now() < deadline {
        let created: std::collections::HashSet<String> = sim.incidents().iter().filter_map(|r| r["correlation_id"].as_str().map(str::to_string)).collect();
        let now = Instant::now();
        pending.retain(|(r, t)| {
            if created.contains(r) {
                latencies.push(now - *t);
                false
            } else {
                true
            }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total = started.elapsed();
    latencies.sort();
    println!("delivery benchmark: {n} incidents, one ServiceNow supplier (simulator), real PostgreSQL + RabbitMQ");
    println!("  accepted (201) in        {:>10.1?}  ({:.0} incidents/s through the API, sequential client)", accept_time, n as f64 / accept_time.as_secs_f64());
    println!("  all delivered after      {:>10.1?}  ({:.0} incidents/s end to end)", total, latencies.len() as f64 / total.as_secs_f64());
    if !latencies.is_empty() {
        println!(
            "  accept -> supplier ticket: p50 {:.1?}  p90 {:.1?}  p99 {:.1?}  max {:.1?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1]
        );
    }
    if !pending.is_empty() {
        println!("  NOT delivered within 120 s: {}", pending.len());
    }
    app.stop().await;
    let _ = tokio::task::spawn_blocking(move || {
        use diesel::{Connection, RunQueryDsl};
        let mut c = diesel::PgConnection::establish("postgres://postgres@127.0.0.1:5432/postgres").ok()?;
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut c).ok()
    })
    .await;
}
