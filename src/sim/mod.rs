//! Simulators of the supplier systems, stateful and faithful to the real APIs (including their
//! failures), for the test suite and the demo. No real supplier is reachable from a test.

pub mod jira;
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
