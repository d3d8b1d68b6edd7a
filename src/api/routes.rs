//! Every endpoint of the hub in one table. The app is configured from it, and the access-matrix
//! test lists it, so an endpoint cannot be added without the matrix saying who may call it.

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, Responder};

/// One method on one path, with its handler.
pub struct Endpoint {
    pub method: Method,
    /// The path pattern as registered (`/api/v1/incidents/{ref}`).
    pub path: String,
    route: actix_web::Route,
}

/// An endpoint calling `handler`.
pub fn endpoint<F, Args>(method: Method, path: impl Into<String>, handler: F) -> Endpoint
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Endpoint { route: web::method(method.clone()).to(handler), method, path: path.into() }
}

/// The whole table: the hub's own API, its TMF621 API, webhooks, health and the dashboard.
fn all() -> Vec<Endpoint> {
    [super::endpoints(), super::tmf621::endpoints(), super::dashboard::endpoints(), super::console::endpoints()].into_iter().flatten().collect()
}

/// Every `(method, path)` the hub serves, in registration order.
pub fn list() -> Vec<(Method, String)> {
    all().into_iter().map(|e| (e.method, e.path)).collect()
}

/// Registers every endpoint, one resource per path (so a wrong method on a known path answers
/// 405, not 404).
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<(String, Vec<actix_web::Route>)> = Vec::new();
    for e in all() {
        match paths.iter_mut().find(|(p, _)| *p == e.path) {
            Some((_, routes)) => routes.push(e.route),
            None => paths.push((e.path, vec![e.route])),
        }
    }
    for (path, routes) in paths {
        cfg.service(routes.into_iter().fold(web::resource(path), |r, route| r.route(route)));
    }
}
