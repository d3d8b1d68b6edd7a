//! Benchmark: the monthly SLA report over 100,000 tickets.
//!
//! Seeds a scratch database with tickets opened in one month (three suppliers, hand-offs, holds,
//! business-hours calendars), lets the SLA monitor compute and store every clock, then times
//! the monthly report per supplier and end to end (stored clocks aggregated in SQL), the same
//! report recomputed from the event log, the CSV, and the dashboard's data. It prints figures and
//! asserts no timing. Run with `cargo bench --bench sla_report`; `SIAM_BENCH_TICKETS` changes
//! the volume, `SIAM_BENCH_DATABASE_URL` the server (default
//! `postgres://postgres@127.0.0.1:5432`), `SIAM_BENCH_KEEP=1` keeps the database.

use chrono::{Duration, Utc};
use diesel::{Connection, PgConnection, RunQueryDsl};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siam_hub::config::Settings;
use siam_hub::sla::clock::Contracts;
use siam_hub::sla::report::{self, Period, ReportQuery};
use siam_hub::sla::{dashboard, monitor};
use siam_hub::store::seed::{self, Story};
use siam_hub::store::sla::Scope;
use std::time::Instant;

const SUPPLIERS: [&str; 3] = ["sn-network", "sn-apps", "sn-hosting"];

const CONFIG: &str = r#"
[[suppliers]]
id = "sn-network"
name = "Network"
system = "queue"
[[suppliers]]
id = "sn-apps"
name = "Applications"
system = "queue"
[[suppliers]]
id = "sn-hosting"
name = "Hosting"
system = "queue"

[reporting]
time_zone = "Europe/London"

[[sla.calendars]]
id = "office"
time_zone = "Europe/London"
hours = { mon = ["08:00", "18:00"], tue = ["08:00", "18:00"], wed = ["08:00", "18:00"], thu = ["08:00", "18:00"], fri = ["08:00", "18:00"] }
holidays = [2026-12-25, 2026-12-28, 2026-08-31, 2026-05-04, 2026-05-25]

[[sla.calendars]]
id = "always"
always = true

[[sla.contracts]]
id = "customer"
kind = "end_to_end"
calendar = "office"
pause_on = ["awaiting_caller"]
[sla.contracts.targets]
"1" = { response_mins = 15, resolution_mins = 240, calendar = "always" }
"2" = { response_mins = 30, resolution_mins = 480 }
"3" = { response_mins = 120, resolution_mins = 1440 }
"4" = { response_mins = 240, resolution_mins = 2880 }
"5" = { response_mins = 480, resolution_mins = 4800 }
"#;

fn supplier_contracts() -> String {
    SUPPLIERS
        .iter()
        .map(|s| {
            format!(
                r#"
[[sla.contracts]]
id = "{s}-ola"
kind = "supplier"
supplier = "{s}"
calendar = "office"
pause_on = ["awaiting_caller", "awaiting_change"]
[sla.contracts.targets]
"1" = {{ response_mins = 10, resolution_mins = 180, calendar = "always" }}
"2" = {{ response_mins = 20, resolution_mins = 360 }}
"3" = {{ response_mins = 60, resolution_mins = 1200 }}
"4" = {{ response_mins = 180, resolution_mins = 2400 }}
"5" = {{ response_mins = 360, resolution_mins = 4200 }}
"#
            )
        })
        .collect()
}

/// One ticket's life, drawn at random but plausibly.
fn story(rng: &mut StdRng, period: &Period, i: usize) -> Story {
    let span = (period.to - period.from).num_seconds() - 1;
    let opened = period.from + Duration::seconds(rng.gen_range(0..span));
    let priority = match rng.gen_range(0..100) {
        0..=1 => 1,
        2..=11 => 2,
        12..=51 => 3,
        52..=89 => 4,
        _ => 5,
    };
    let mut supplier = SUPPLIERS[rng.gen_range(0..SUPPLIERS.len())];
    let mut s = Story::raised(&format!("ticket {i}"), opened, priority, supplier);
    s.with_leg(supplier);
    // Business-hours targets run to days of wall time, so wall-time steps are drawn long.
    let scale = [0, 600, 3_600, 14_400, 43_200, 86_400][usize::from(priority)];
    s.after_secs(rng.gen_range(30..scale.max(60))).acknowledge();
    if rng.gen_bool(0.12) {
        let other = SUPPLIERS[(SUPPLIERS.iter().position(|x| *x == supplier).unwrap_or(0) + 1) % SUPPLIERS.len()];
        s.after_secs(rng.gen_range(60..scale.max(120))).route(other).with_leg(other);
        s.after_secs(rng.gen_range(30..scale.max(60))).acknowledge();
        if rng.gen_bool(0.3) {
            s.after_secs(rng.gen_range(60..scale.max(120))).route(supplier);
            s.after_secs(rng.gen_range(30..scale.max(60))).acknowledge();
        } else {
            supplier = other;
        }
    }
    if rng.gen_bool(0.2) {
        let reason = if rng.gen_bool(0.6) { "awaiting_caller" } else { "awaiting_supplier" };
        s.after_secs(rng.gen_range(60..scale.max(120))).status("on_hold", Some(reason), &format!("supplier:{supplier}"));
        s.after_secs(rng.gen_range(600..scale.max(1200) * 2)).status("in_progress", None, &format!("supplier:{supplier}"));
    }
    if rng.gen_bool(0.9) {
        s.after_secs(rng.gen_range(scale / 4 + 60..scale * 4 + 120)).resolve();
    }
    s
}

fn timed<T>(label: &str, f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    let secs = start.elapsed().as_secs_f64();
    println!("{label:<58} {:>9.1} ms", secs * 1000.0);
    (out, secs)
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` this binary is only built and checked.
    if !std::env::args().any(|a| a == "--bench") {
        println!("sla_report: a benchmark, not a test; run it with `cargo bench --bench sla_report`");
        return;
    }
    let tickets: usize = std::env::var("SIAM_BENCH_TICKETS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let base = std::env::var("SIAM_BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("siam_bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let url = format!("{base}/{name}");
    if let Err(e) = run(tickets, &url) {
        eprintln!("error: {e}");
    }
    if std::env::var("SIAM_BENCH_KEEP").as_deref() != Ok("1") {
        if let Ok(mut admin) = PgConnection::establish(&format!("{base}/postgres")) {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin);
        }
    } else {
        println!("kept database {url}");
    }
}

fn run(tickets: usize, url: &str) -> Result<(), String> {
    let mut settings = Settings::from_toml(&format!("{CONFIG}{}", supplier_contracts())).map_err(|e| e.to_string())?;
    settings.database_url = url.to_string();
    let contracts = Contracts::from_settings(&settings.sla)?;
    siam_hub::store::prepare_database(url)?;
    let mut conn = PgConnection::establish(url).map_err(|e| e.to_string())?;
    for s in SUPPLIERS.iter().chain(["integrator"].iter()) {
        diesel::sql_query(format!("INSERT INTO suppliers (id, name, system) VALUES ('{s}', '{s}', 'queue') ON CONFLICT DO NOTHING"))
            .execute(&mut conn)
            .map_err(|e| e.to_string())?;
    }
    // Last month, so every event is in the past.
    let month = Period::current_month(Utc::now(), &settings.reporting.time_zone)?.months_before(1)?;
    println!("SLA report benchmark: {tickets} tickets opened in {} ({} suppliers, 4 contracts)", month.label, SUPPLIERS.len());

    let mut rng = StdRng::seed_from_u64(4);
    let mut events = 0;
    timed("seed tickets and event logs (bulk insert)", || -> Result<(), String> {
        let mut done = 0;
        while done < tickets {
            let n = (tickets - done).min(5_000);
            let batch: Vec<Story> = (done..done + n).map(|i| story(&mut rng, &month, i)).collect();
            events += batch.iter().map(|s| s.events.len()).sum::<usize>();
            seed::insert(&mut conn, &batch).map_err(|e| e.to_string())?;
            done += n;
        }
        Ok(())
    })
    .0?;
    println!("  {events} events");

    let ((computed, alerts), secs) = timed("SLA monitor: compute and store every clock", || {
        let (mut computed, mut alerts) = (0, 0);
        loop {
            match monitor::refresh_batch(&mut conn, &contracts, &settings.sla_monitor, Utc::now()) {
                Ok(b) if b.computed > 0 => {
                    computed += b.computed;
                    alerts += b.alerts;
                }
                Ok(_) => return (computed, alerts),
                Err(e) => {
                    eprintln!("error: {e}");
                    return (computed, alerts);
                }
            }
        }
    });
    let clocks: i64 = diesel::dsl::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("(SELECT count(*) FROM sla_clocks)")).get_result(&mut conn).unwrap_or(0);
    println!("  {computed} tickets, {clocks} clocks ({:.0} tickets/s), {alerts} live alerts", computed as f64 / secs.max(1e-9));
    // What autovacuum does soon after the monitor's writes: statistics, and the visibility map
    // that lets the report aggregates read the covering index alone.
    timed("VACUUM ANALYZE (as autovacuum would)", || diesel::sql_query("VACUUM ANALYZE").execute(&mut conn)).0.map_err(|e| e.to_string())?;

    let now = Utc::now();
    let q = |supplier: Option<&str>| ReportQuery { supplier: supplier.map(str::to_string), period: month.clone(), priority: None, breach_limit: 100 };
    let mut samples = Vec::new();
    for round in 0..3 {
        for supplier in SUPPLIERS.iter().map(|s| Some(*s)).chain([None]) {
            let label = format!("monthly report (stored), {}, run {}", supplier.unwrap_or("end to end"), round + 1);
            let (r, secs) = timed(&label, || report::build(&mut conn, &contracts, &settings.reporting, &q(supplier), now));
            let r = r.map_err(|e| e.to_string())?;
            samples.push(secs);
            if round == 0 {
                let all = r.contracts.first().and_then(|c| c.rows.last());
                if let Some(all) = all {
                    println!(
                        "    {} tickets, response met {:?}%, resolution met {:?}%, {} breaches, backlog {}",
                        all.tickets, all.response.met_percent, all.resolution.met_percent, r.breaches_total, all.backlog.open
                    );
                }
            }
        }
    }
    samples.sort_by(f64::total_cmp);
    println!("monthly report (stored): median {:.1} ms, worst {:.1} ms over {} runs", samples[samples.len() / 2] * 1000.0, samples[samples.len() - 1] * 1000.0, samples.len());

    let r = report::build(&mut conn, &contracts, &settings.reporting, &q(Some(SUPPLIERS[0])), now).map_err(|e| e.to_string())?;
    timed("CSV of a supplier's report", || report::to_csv(&r));
    let (recomputed, _) = timed(&format!("monthly report recomputed from the event log, {}", SUPPLIERS[0]), || {
        report::recompute(&mut conn, &contracts, &settings.reporting, &q(Some(SUPPLIERS[0])), now)
    });
    let recomputed = recomputed.map_err(|e| e.to_string())?;
    let strip = |r: &report::Report| {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("source");
            o.remove("pending_tickets");
            o.remove("generated_at");
        }
        v
    };
    println!("  recomputed figures equal the stored ones: {}", strip(&recomputed) == strip(&r));
    for scope in [Scope::All, Scope::Supplier(SUPPLIERS[0].into())] {
        let label = format!("dashboard data ({})", if scope == Scope::All { "manager" } else { "supplier" });
        timed(&label, || dashboard::overview(&mut conn, &contracts, &settings.reporting, &month, &scope, now)).0.map_err(|e| e.to_string())?;
    }
    Ok(())
}
