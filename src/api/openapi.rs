//! `/openapi.json`: the API description, with the canonical schemas from `schemas/`.

use actix_web::HttpResponse;
use serde_json::{json, Value};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, Required};
use utoipa::openapi::{ContentBuilder, InfoBuilder, OpenApiBuilder, PathItem, PathsBuilder, Ref, ResponseBuilder};

struct Op {
    method: HttpMethod,
    path: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    ok: (&'static str, Option<&'static str>),
    params: &'static [(&'static str, ParameterIn)],
}

fn schema_ref(name: &str) -> Ref {
    Ref::new(format!("#/components/schemas/{name}"))
}

fn build() -> Value {
    let problem = ContentBuilder::new().schema(Some(schema_ref("problem"))).build();
    let ops = [
        Op {
            method: HttpMethod::Post,
            path: "/api/v1/incidents",
            summary: "Raise an incident (Idempotency-Key header recommended)",
            body: Some("create"),
            ok: ("201", Some("incident")),
            params: &[("Idempotency-Key", ParameterIn::Header)],
        },
        Op {
            method: HttpMethod::Get,
            path: "/api/v1/incidents",
            summary: "List incidents, newest first, with cursor pagination",
            body: None,
            ok: ("200", None),
            params: &[
                ("status", ParameterIn::Query),
                ("supplier", ParameterIn::Query),
                ("priority", ParameterIn::Query),
                ("service", ParameterIn::Query),
                ("limit", ParameterIn::Query),
                ("cursor", ParameterIn::Query),
            ],
        },
        Op {
            method: HttpMethod::Get,
            path: "/api/v1/incidents/{ref}",
            summary: "Read the unified record of one incident",
            body: None,
            ok: ("200", Some("incident")),
            params: &[("ref", ParameterIn::Path)],
        },
        Op {
            method: HttpMethod::Patch,
            path: "/api/v1/incidents/{ref}",
            summary: "Change an incident (JSON merge patch; If-Match with the version read)",
            body: Some("patch"),
            ok: ("200", Some("incident")),
            params: &[("ref", ParameterIn::Path), ("If-Match", ParameterIn::Header)],
        },
        Op {
            method: HttpMethod::Post,
            path: "/api/v1/incidents/{ref}/notes",
            summary: "Add a public or internal note",
            body: Some("note_create"),
            ok: ("201", Some("note")),
            params: &[("ref", ParameterIn::Path)],
        },
        Op {
            method: HttpMethod::Get,
            path: "/api/v1/incidents/{ref}/history",
            summary: "The incident's append-only event log, a page at a time (limit 1..1000, default 200; next_cursor continues)",
            body: None,
            ok: ("200", None),
            params: &[("ref", ParameterIn::Path), ("limit", ParameterIn::Query), ("cursor", ParameterIn::Query)],
        },
        Op {
            method: HttpMethod::Post,
            path: "/api/v1/incidents/{ref}/route",
            summary: "Re-route to a supplier (or the next by rule), or add a supplier leg (major incident)",
            body: Some("route"),
            ok: ("200", Some("incident")),
            params: &[("ref", ParameterIn::Path)],
        },
        Op {
            method: HttpMethod::Post,
            path: "/api/v1/incidents/{ref}/handback",
            summary: "A supplier hands the ticket back",
            body: Some("handback"),
            ok: ("200", Some("incident")),
            params: &[("ref", ParameterIn::Path)],
        },
        Op {
            method: HttpMethod::Post,
            path: "/api/v1/incidents/{ref}/attachments",
            summary: "Attach a file (the body; ?file_name=); stored once per SHA-256 and sent to every supplier leg within its size limit",
            body: None,
            ok: ("201", Some("attachment")),
            params: &[("ref", ParameterIn::Path), ("file_name", ParameterIn::Query)],
        },
        Op {
            method: HttpMethod::Get,
            path: "/api/v1/incidents/{ref}/attachments/{id}",
            summary: "Download a file",
            body: None,
            ok: ("200", None),
            params: &[("ref", ParameterIn::Path), ("id", ParameterIn::Path)],
        },
        Op {
            method: HttpMethod::Get,
            path: "/api/v1/incidents/{ref}/sla",
            summary: "The incident's SLA clocks, computed from its event log now (a supplier key: its own clocks only)",
            body: None,
            ok: ("200", None),
            params: &[("ref", ParameterIn::Path)],
        },
        Op {
            method: HttpMethod::Get,
            path: "/api/v1/reports/sla",
            summary: "SLA report of a supplier (or end to end) for a month or range, per priority; JSON, or CSV with format=csv (manager, admin; a supplier key: its own)",
            body: None,
            ok: ("200", None),
            params: &[
                ("supplier", ParameterIn::Query),
                ("month", ParameterIn::Query),
                ("from", ParameterIn::Query),
                ("to", ParameterIn::Query),
                ("priority", ParameterIn::Query),
                ("format", ParameterIn::Query),
                ("table", ParameterIn::Query),
                ("breaches", ParameterIn::Query),
            ],
        },
        Op {
            method: HttpMethod::Post,
            path: "/webhooks/{supplier}",
            summary: "A supplier system reports a change (signed)",
            body: None,
            ok: ("200", None),
            params: &[("supplier", ParameterIn::Path)],
        },
        Op { method: HttpMethod::Get, path: "/api/v1/admin/dead-letters", summary: "Messages the hub gave up on, with reasons", body: None, ok: ("200", None), params: &[] },
        Op {
            method: HttpMethod::Get,
            path: "/api/v1/admin/mapping-events",
            summary: "Native values no mapping knows (kept on the legs), newest first",
            body: None,
            ok: ("200", None),
            params: &[],
        },
        Op {
            method: HttpMethod::Post,
            path: "/api/v1/admin/dead-letters/{id}/replay",
            summary: "Replay a dead letter",
            body: None,
            ok: ("202", None),
            params: &[("id", ParameterIn::Path)],
        },
        Op {
            method: HttpMethod::Post,
            path: "/api/v1/admin/suppliers/{id}/reconcile",
            summary: "Run a reconciliation sweep of one supplier now",
            body: None,
            ok: ("200", None),
            params: &[("id", ParameterIn::Path)],
        },
        Op { method: HttpMethod::Get, path: "/api/v1/admin/suppliers", summary: "Every configured supplier with its health", body: None, ok: ("200", None), params: &[] },
        Op {
            method: HttpMethod::Get,
            path: "/api/v1/admin/suppliers/{id}/check",
            summary: "Check a supplier: reachable, clock skew, credentials and permissions, each a step with ok, detail and fix",
            body: None,
            ok: ("200", None),
            params: &[("id", ParameterIn::Path)],
        },
        Op {
            method: HttpMethod::Get,
            path: "/api/v1/admin/suppliers/{id}/discovery",
            summary: "A supplier instance's statuses, priorities and fields with a proposed canonical value each, and the TOML to paste",
            body: None,
            ok: ("200", None),
            params: &[("id", ParameterIn::Path)],
        },
        Op {
            method: HttpMethod::Post,
            path: "/webhooks/{supplier}/listener/{event}",
            summary: "A TMF621 supplier's event notification (TMF listener; answers 204)",
            body: None,
            ok: ("204", None),
            params: &[("supplier", ParameterIn::Path), ("event", ParameterIn::Path)],
        },
        Op {
            method: HttpMethod::Post,
            path: "/tmf-api/troubleTicket/v4/troubleTicket",
            summary: "TMF621: raise a trouble ticket, routed like any incident (externalId or Idempotency-Key make retries safe; errors are TMF630)",
            body: None,
            ok: ("201", None),
            params: &[("Idempotency-Key", ParameterIn::Header)],
        },
        Op {
            method: HttpMethod::Get,
            path: "/tmf-api/troubleTicket/v4/troubleTicket",
            summary: "TMF621: list trouble tickets (offset/limit, X-Total-Count, X-Result-Count)",
            body: None,
            ok: ("200", None),
            params: &[
                ("offset", ParameterIn::Query),
                ("limit", ParameterIn::Query),
                ("fields", ParameterIn::Query),
                ("status", ParameterIn::Query),
                ("externalId", ParameterIn::Query),
                ("id", ParameterIn::Query),
                ("lastUpdate.gt", ParameterIn::Query),
            ],
        },
        Op {
            method: HttpMethod::Get,
            path: "/tmf-api/troubleTicket/v4/troubleTicket/{id}",
            summary: "TMF621: one trouble ticket (the unified record; public notes only)",
            body: None,
            ok: ("200", None),
            params: &[("id", ParameterIn::Path), ("fields", ParameterIn::Query)],
        },
        Op {
            method: HttpMethod::Patch,
            path: "/tmf-api/troubleTicket/v4/troubleTicket/{id}",
            summary: "TMF621: merge-patch status, attributes and new note[] entries",
            body: None,
            ok: ("200", None),
            params: &[("id", ParameterIn::Path)],
        },
        Op {
            method: HttpMethod::Post,
            path: "/tmf-api/troubleTicket/v4/hub",
            summary: "TMF621: subscribe {callback, query} to TroubleTicket events",
            body: None,
            ok: ("201", None),
            params: &[],
        },
        Op {
            method: HttpMethod::Get,
            path: "/tmf-api/troubleTicket/v4/hub/{id}",
            summary: "TMF621: one of the caller's subscriptions",
            body: None,
            ok: ("200", None),
            params: &[("id", ParameterIn::Path)],
        },
        Op {
            method: HttpMethod::Delete,
            path: "/tmf-api/troubleTicket/v4/hub/{id}",
            summary: "TMF621: unsubscribe",
            body: None,
            ok: ("204", None),
            params: &[("id", ParameterIn::Path)],
        },
        Op { method: HttpMethod::Get, path: "/healthz", summary: "Liveness", body: None, ok: ("200", None), params: &[] },
        Op { method: HttpMethod::Get, path: "/readyz", summary: "Readiness: database and broker reachable", body: None, ok: ("200", None), params: &[] },
    ];
    let mut paths = PathsBuilder::new();
    for op in ops {
        let mut b = OperationBuilder::new().summary(Some(op.summary));
        for (name, loc) in op.params {
            let required = if matches!(loc, ParameterIn::Path) { Required::True } else { Required::False };
            b = b.parameter(ParameterBuilder::new().name(*name).parameter_in(loc.clone()).required(required).build());
        }
        if let Some(schema) = op.body {
            b = b.request_body(Some(
                RequestBodyBuilder::new().content("application/json", ContentBuilder::new().schema(Some(schema_ref(schema))).build()).required(Some(Required::True)).build(),
            ));
        }
        let mut ok = ResponseBuilder::new().description("Success");
        if let Some(schema) = op.ok.1 {
            ok = ok.content("application/json", ContentBuilder::new().schema(Some(schema_ref(schema))).build());
        }
        b = b
            .response(op.ok.0, ok.build())
            .response("default", ResponseBuilder::new().description("RFC 9457 problem details").content("application/problem+json", problem.clone()).build());
        paths = paths.path(op.path, PathItem::new(op.method, b.build()));
    }
    let mut components = Components::new();
    components.add_security_scheme("api_key", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    let api = OpenApiBuilder::new()
        .info(InfoBuilder::new().title("SIAM Hub").version(env!("CARGO_PKG_VERSION")).description(Some("Multi-supplier IT service-management integration hub")).build())
        .paths(paths.build())
        .components(Some(components))
        .build();
    let mut doc = serde_json::to_value(api).unwrap_or_else(|_| json!({}));
    // The canonical schemas are JSON Schema 2020-12 documents, which OpenAPI 3.1 takes as they are.
    doc["openapi"] = json!("3.1.0");
    let incident: Value = serde_json::from_str(crate::validation::INCIDENT_SCHEMA).unwrap_or_default();
    let mut schemas = serde_json::Map::new();
    if let Some(defs) = incident.get("$defs").and_then(|d| d.as_object()) {
        for (k, v) in defs {
            schemas.insert(k.clone(), rewrite_refs(v.clone()));
        }
    }
    let mut whole = incident.clone();
    if let Some(o) = whole.as_object_mut() {
        o.remove("$defs");
        o.remove("$schema");
        o.remove("$id");
    }
    schemas.insert("incident".into(), rewrite_refs(whole));
    schemas.insert(
        "problem".into(),
        json!({"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {"pointer": {"type": "string"}, "message": {"type": "string"}}}}}}),
    );
    doc["components"]["schemas"] = Value::Object(schemas);
    doc["security"] = json!([{ "api_key": [] }]);
    doc
}

/// `#/$defs/x` inside the schema file becomes `#/components/schemas/x` in the API document.
fn rewrite_refs(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| match (k.as_str(), &v) {
                    ("$ref", Value::String(s)) => (k, Value::String(s.replace("#/$defs/", "#/components/schemas/"))),
                    _ => (k, rewrite_refs(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(rewrite_refs).collect()),
        other => other,
    }
}

pub fn document() -> &'static Value {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOC.get_or_init(build)
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
