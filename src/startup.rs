//! Wiring: prepares the database, registers suppliers and routing rules, and runs the API, the
//! broker session (relay, dispatch consumers, TMF621 event notifications), the reconciliation
//! sweeps, the TMF621 suppliers' event subscriptions, the SLA monitor and housekeeping side by
//! side.

use crate::api::{self, AppState};
use crate::bus::{Bus, ConsumerSpec, Topology};
use crate::config::{Settings, QUEUE_SYSTEM};
use crate::routing::Router;
use crate::sla::clock::Contracts;
use crate::sla::monitor::Monitor;
use crate::store::schema::{routing_rules, suppliers};
use crate::store::{self, Store, StoreResult};
use crate::sync::Engine;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpMessage, HttpServer};
use diesel::prelude::*;
use std::net::TcpListener;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Application {
    port: u16,
    server: ServerHandle,
    server_task: JoinHandle<std::io::Result<()>>,
    workers: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    pub store: Store,
    pub engine: Arc<Engine>,
    pub bus: Bus,
}

/// Records the configured suppliers and routing rules so the record can refer to them.
fn register(conn: &mut PgConnection, settings: &Settings) -> StoreResult<()> {
    conn.transaction(|conn| {
        let mut all: Vec<(String, String, String)> = settings.suppliers.iter().map(|s| (s.id.clone(), s.name.clone(), s.system.clone())).collect();
        if !all.iter().any(|(id, _, _)| *id == settings.routing.default_queue) {
            all.push((settings.routing.default_queue.clone(), "Service integrator queue".into(), QUEUE_SYSTEM.into()));
        }
        for (id, name, system) in &all {
            diesel::insert_into(suppliers::table)
                .values((suppliers::id.eq(id), suppliers::name.eq(name), suppliers::system.eq(system)))
                .on_conflict(suppliers::id)
                .do_update()
                .set((suppliers::name.eq(name), suppliers::system.eq(system), suppliers::updated_at.eq(diesel::dsl::now)))
                .execute(conn)?;
        }
        diesel::delete(routing_rules::table).execute(conn)?;
        for (i, r) in settings.routing.rules.iter().enumerate() {
            diesel::insert_into(routing_rules::table)
                .values((
                    routing_rules::position.eq(i as i32 + 1),
                    routing_rules::service.eq(&r.service),
                    routing_rules::ci.eq(&r.ci),
                    routing_rules::category.eq(&r.category),
                    routing_rules::supplier_id.eq(&r.supplier),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

impl Application {
    /// Builds and starts everything; returns once the API is listening.
    pub async fn build(settings: Settings) -> Result<Application, String> {
        let listener = TcpListener::bind(&settings.listen).map_err(|e| format!("cannot listen on {}: {e} (set SIAM_LISTEN)", settings.listen))?;
        Self::build_with_listener(settings, listener).await
    }

    pub async fn build_with_listener(settings: Settings, listener: TcpListener) -> Result<Application, String> {
        let contracts = Arc::new(Contracts::from_settings(&settings.sla).map_err(|e| format!("configuration: SLA: {e}"))?);
        let url = settings.database_url.clone();
        tokio::task::spawn_blocking(move || store::prepare_database(&url)).await.map_err(|e| e.to_string())??;
        let store = Store::connect(&settings.database_url, 10).map_err(|e| format!("PostgreSQL: {e}"))?;
        let s2 = settings.clone();
        store.run(move |c| register(c, &s2)).await.map_err(|e| e.to_string())?;
        // Stored clocks computed under other contracts are recomputed under these.
        let fingerprint = crate::store::record::content_hash(&[&format!("{:?}", settings.sla)]);
        let marked = store.run(move |c| crate::store::sla::adopt_configuration(c, &fingerprint)).await.map_err(|e| e.to_string())?;
        if marked > 0 {
            tracing::info!(tickets = marked, "SLA configuration changed; recomputing every ticket's clocks");
        }

        let external: Vec<String> = settings.suppliers.iter().filter(|s| s.is_external()).map(|s| s.id.clone()).collect();
        let topology = Topology::new(&settings.broker, external.clone());
        let bus = Bus::new(&settings.amqp_url, topology.clone(), store.clone());
        let engine = Arc::new(Engine::new(&settings, store.clone(), bus.outbox_signal.clone())?);
        let (shutdown, shutdown_rx) = watch::channel(false);

        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let port = local.port();
        // Where suppliers and subscribers reach this hub: the configured public URL, else the
        // address it listens on.
        let public_base = settings.public_url.clone().map(|u| u.trim_end_matches('/').to_string()).unwrap_or_else(|| {
            let host = if local.ip().is_unspecified() { "127.0.0.1".to_string() } else { local.ip().to_string() };
            format!("http://{host}:{port}")
        });

        let mut consumers: Vec<ConsumerSpec> =
            external.iter().map(|s| ConsumerSpec { queue: topology.dispatch_queue(s), supplier: Some(s.clone()), prefetch: 16, handler: engine.dispatch_handler(s) }).collect();
        let deliveries = api::tmf621::notify::Deliveries::new(store.clone(), public_base.clone(), &settings)?;
        consumers.push(ConsumerSpec { queue: topology.tmf621_notify_queue(), supplier: None, prefetch: 4, handler: deliveries.handler() });
        let mut workers = vec![tokio::spawn(bus.clone().run(consumers, shutdown_rx.clone())), tokio::spawn(deliveries.run(shutdown_rx.clone()))];
        for s in settings.suppliers.iter().filter(|s| s.is_external() && s.poll_interval_secs > 0) {
            workers.push(tokio::spawn(engine.as_ref().clone().run_poller(s.id.clone(), shutdown_rx.clone())));
        }
        for s in settings.suppliers.iter().filter(|s| s.system == "tmf621" && s.tmf621.subscribe) {
            use crate::adapters::tmf621::subscription::{keep_subscribed, EventApi};
            let password = s.password_secret().map_err(|e| e.to_string())?;
            let callback = format!("{public_base}/webhooks/{}", s.id);
            let apis = if s.change_records { vec![EventApi::Tickets, EventApi::Changes] } else { vec![EventApi::Tickets] };
            for api in apis {
                let task = keep_subscribed(store.clone(), s.clone(), api, settings.egress.clone(), password.clone(), callback.clone(), shutdown_rx.clone());
                workers.push(tokio::spawn(task));
            }
        }
        let monitor = Monitor { store: store.clone(), contracts: contracts.clone(), settings: settings.sla_monitor.clone(), outbox_signal: bus.outbox_signal.clone() };
        workers.push(tokio::spawn(monitor.run(shutdown_rx.clone())));
        let h = &settings.housekeeping;
        let retention = store::housekeeping::Retention { outbox_secs: h.outbox_retention_secs, inbox_secs: h.inbox_retention_secs, stale_upload_secs: h.stale_upload_secs };
        let every = std::time::Duration::from_secs(h.interval_secs);
        workers.push(tokio::spawn(store::housekeeping::run(store.clone(), retention, every, shutdown_rx.clone())));

        let state = web::Data::new(AppState {
            settings: Arc::new(settings.clone()),
            store: store.clone(),
            engine: engine.clone(),
            router: Router::new(&settings),
            broker_connected: bus.watch_connected(),
            bus: bus.clone(),
            contracts,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap_fn(|req, srv| {
                    use actix_web::dev::Service;
                    let id = req
                        .headers()
                        .get("x-correlation-id")
                        .and_then(|v| v.to_str().ok())
                        .filter(|v| !v.is_empty() && v.len() <= 128)
                        .map(str::to_string)
                        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
                    req.extensions_mut().insert(api::CorrelationId(id.clone()));
                    let (method, path) = (req.method().clone(), req.path().to_string());
                    let fut = srv.call(req);
                    async move {
                        let mut res = fut.await?;
                        tracing::info!(%method, %path, status = res.status().as_u16(), correlation_id = %id, "request");
                        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&id) {
                            res.headers_mut().insert(actix_web::http::header::HeaderName::from_static("x-correlation-id"), v);
                        }
                        Ok(res)
                    }
                })
                .configure(api::configure)
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .map_err(|e| e.to_string())?
        .run();
        let handle = server.handle();
        let server_task = tokio::spawn(server);
        Ok(Application { port, server: handle, server_task, workers, shutdown, store, engine, bus })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until Ctrl-C (or SIGTERM), then stops gracefully.
    pub async fn run_until_stopped(self) -> Result<(), String> {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("stopping"),
            _ = term => tracing::info!("stopping"),
        }
        self.stop().await;
        Ok(())
    }

    /// Stops the API, the broker session and the sweeps, and waits for them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        self.server.stop(true).await;
        let _ = self.server_task.await;
        for w in self.workers {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), w).await;
        }
    }
}
