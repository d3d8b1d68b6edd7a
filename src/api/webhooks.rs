//! `POST /webhooks/{supplier}`: a supplier system telling the hub its ticket changed.
//!
//! ServiceNow has no standard webhook; the hub takes what a business rule or flow can send: the
//! Table API record (raw, `display_value=true` or `all`), bare or as `{"result": ...}` or
//! `{"record": ..., "journal": [sys_journal_field rows]}`. Remedy has none either: a filter that
//! calls a REST endpoint can send the `HPD:IncidentInterface` entry, bare or as
//! `{"entry": {"values": ...}, "worklogs": [HPD:WorkLog entries]}`, with basic auth (the sweep
//! stays Remedy's main path). Every delivery is authenticated:
//! HMAC-SHA256 over `<timestamp>.<raw body>` within a tolerance window, or basic auth where the
//! supplier can do no better; Jira's `X-Hub-Signature` for Jira suppliers. A delivery id
//! (`X-Siam-Delivery`, `X-Atlassian-Webhook-Identifier`, a TMF event's `eventId`) makes retries
//! idempotent.
//!
//! TMF621 suppliers send event notifications (`TroubleTicketCreateEvent`,
//! `...StatusChangeEvent`, `...AttributeValueChangeEvent` and their aliases) either here or, as
//! TMF listeners, to `/webhooks/{supplier}/listener/{eventType}`; the Mapping reads the
//! `event.troubleTicket`, and a partial one is completed by reading the ticket.

use super::error::ApiError;
use super::{correlation_id, parse_json, read_body, AppState};
use crate::config::WebhookAuth;
use crate::sync::SupplierLink;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// What a refused delivery is told, whatever the reason and whether the supplier exists: the
/// answer never says which (no probing for configured suppliers or their signature scheme);
/// the hub's log says why.
const NOT_AUTHENTICATED: &str = "the delivery is not authenticated for this supplier (check the signature, its timestamp and the shared secret)";

fn refused(supplier: &str, why: &str) -> ApiError {
    tracing::warn!(%supplier, reason = %why, "webhook delivery refused");
    ApiError::unauthorized(NOT_AUTHENTICATED)
}

/// Checks the delivery's credentials against the supplier's webhook secret. For a delivery
/// whose signature covers no timestamp header (Jira's `X-Hub-Signature`), answers the key by
/// which a replay of the same signed body is recognised.
pub fn verify(link: &SupplierLink, req: &HttpRequest, body: &[u8], now: i64) -> Result<Option<String>, ApiError> {
    check(link, req, body, now).map_err(|why| refused(&link.settings.id, &why))
}

fn check(link: &SupplierLink, req: &HttpRequest, body: &[u8], now: i64) -> Result<Option<String>, String> {
    let secret = link.webhook_secret.as_ref().ok_or("no webhook secret is configured for this supplier")?;
    let tolerance = link.settings.webhook_tolerance_secs;
    let mac = || Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).map_err(|_| "unusable secret".to_string());
    match link.settings.webhook_auth {
        WebhookAuth::Hmac => {
            let ts = header(req, "x-siam-timestamp").ok_or("missing X-Siam-Timestamp header")?;
            let sig = header(req, "x-siam-signature").ok_or("missing X-Siam-Signature header")?;
            let ts_num: i64 = ts.trim().parse().map_err(|_| "X-Siam-Timestamp must be Unix seconds")?;
            let hex_sig = sig.trim().strip_prefix("sha256=").unwrap_or(sig.trim());
            let given = hex::decode(hex_sig).map_err(|_| "X-Siam-Signature must be sha256=<hex>")?;
            let mut mac = mac()?;
            mac.update(ts.trim().as_bytes());
            mac.update(b".");
            mac.update(body);
            mac.verify_slice(&given).map_err(|_| "the signature does not match the body")?;
            within(now.saturating_sub(ts_num), tolerance)?;
            Ok(None)
        }
        WebhookAuth::HubSignature => {
            let sig = header(req, "x-hub-signature").ok_or("missing X-Hub-Signature header")?;
            let hex_sig = sig.trim().strip_prefix("sha256=").ok_or("X-Hub-Signature must be sha256=<hex>")?;
            let given = hex::decode(hex_sig).map_err(|_| "X-Hub-Signature must be sha256=<hex>")?;
            let mut mac = mac()?;
            mac.update(body);
            mac.verify_slice(&given).map_err(|_| "the signature does not match the body")?;
            // The signature covers the body alone, so freshness comes from the body's own
            // `timestamp` (milliseconds), and a replay inside the window from remembering the
            // signed body: the delivery identifier header is not signed, so it cannot be trusted.
            let sent_ms = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("timestamp").and_then(serde_json::Value::as_i64))
                .ok_or("the signed body carries no `timestamp`, so a replay could not be told apart")?;
            within(now.saturating_sub(sent_ms.div_euclid(1000)), tolerance)?;
            Ok(Some(format!("sha256:{}", hex::encode(<Sha256 as sha2::Digest>::digest(body)))))
        }
        WebhookAuth::Basic => {
            let auth = header(req, "authorization").and_then(|a| a.strip_prefix("Basic ")).ok_or("basic auth required")?;
            let decoded = base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|_| "malformed basic auth")?;
            let expected = format!("{}:{}", link.settings.id, secret.expose_secret());
            // Compare digests so the time taken says nothing about the secret.
            if hmac_eq(&decoded, expected.as_bytes()) {
                Ok(None)
            } else {
                Err("wrong webhook credentials".into())
            }
        }
    }
}

/// A delivery sent `age` seconds ago (negative: from the future) is fresh within `tolerance`.
fn within(age: i64, tolerance: i64) -> Result<(), String> {
    if age.saturating_abs() > tolerance {
        return Err(format!("the delivery was signed {age}s from the hub's clock, outside the {tolerance}s tolerance (replayed, or clock skew)"));
    }
    Ok(())
}

fn hmac_eq(a: &[u8], b: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(b"siam-hub-compare").expect("any key length works");
    mac.update(a);
    let ta = mac.finalize().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"siam-hub-compare").expect("any key length works");
    mac.update(b);
    mac.verify_slice(&ta).is_ok()
}

pub async fn receive(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let applied = deliver(&req, &state, &path.into_inner(), body).await?;
    Ok(HttpResponse::Ok().json(applied))
}

/// `POST /webhooks/{supplier}/listener/{eventType}`: a TMF event notification, sent by a TMF621
/// supplier to `{callback}/listener/{eventName}` for the subscription the hub registered with
/// callback `/webhooks/{supplier}`. Same authentication as any webhook of that supplier; a TMF
/// listener answers 204.
pub async fn listener(req: HttpRequest, state: web::Data<AppState>, path: web::Path<(String, String)>, body: web::Payload) -> Result<HttpResponse, ApiError> {
    let (supplier, _event) = path.into_inner();
    deliver(&req, &state, &supplier, body).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn deliver(req: &HttpRequest, state: &AppState, supplier: &str, body: web::Payload) -> Result<crate::sync::inbound::Applied, ApiError> {
    let bytes = read_body(body, state.settings.max_body_bytes).await?;
    // An unknown supplier is answered exactly like a bad signature.
    let link = state.engine.supplier(supplier).map_err(|_| refused(supplier, "no such supplier is configured"))?;
    let replay_key = verify(&link, req, &bytes, chrono::Utc::now().timestamp())?;
    let doc = parse_json(&bytes)?;
    if let Some(reference) = change_notified(&link, &doc) {
        // A change the supplier made in its own tool: its leg's dispatcher reads the change as
        // it is now, so a repeated or reordered notification changes nothing.
        let (s, ctx) = (supplier.to_string(), crate::store::record::Context::supplier(supplier, correlation_id(req)));
        state.store.tx(move |c| crate::store::record::enqueue_dispatch(c, &ctx, &reference, &s, crate::sync::outbound::PULL_FILES)).await?;
        state.engine.notify();
        return Ok(Default::default());
    }
    // A deleted supplier ticket carries no state to apply; the leg keeps what it last knew.
    if let Some(kind) = doc.get("eventType").and_then(|v| v.as_str()).filter(|k| k.ends_with("DeleteEvent")) {
        tracing::warn!(%supplier, event = %kind, "supplier reports a deleted ticket; nothing applied");
        return Ok(Default::default());
    }
    let unreadable =
        |e: crate::adapters::MapError| ApiError::unprocessable("unreadable-record", "Not a supplier ticket record", format!("not a {} ticket record: {e}", link.mapping.system()));
    let mut rec = link.mapping.parse_record(&doc).map_err(unreadable)?;
    let mut notes = link.mapping.parse_notes(&doc);
    if rec.revision.is_none() {
        // A notification carrying only part of the ticket (a TMF event): read the whole ticket,
        // so a missing attribute is never taken for a cleared one.
        let fetched = link
            .client
            .fetch(&rec.native_id)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "supplier-unavailable", "The supplier ticket could not be read", e.to_string()))?;
        if let Some(full) = fetched {
            rec = link.mapping.parse_record(&full).map_err(unreadable)?;
            notes = link.mapping.parse_notes(&full);
        }
    }
    // A delivery id stable across the supplier's retries makes a repeat a no-op (a TMF event's
    // `eventId` is one).
    // `eventId` is one). A body signed without a timestamp header is known by its digest.
    let delivery = replay_key.clone().or_else(|| {
        ["x-siam-delivery", "x-atlassian-webhook-identifier"]
            .iter()
            .find_map(|h| header(req, h))
            .map(str::to_string)
            .or_else(|| doc.get("eventId").and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string()))))
    });
    let applied = state.engine.apply(supplier, rec, notes, correlation_id(req), delivery, true).await?;
    if applied.duplicate && replay_key.is_some() {
        // The same signed body again: a supplier's retry after a lost answer, or a replay.
        // Either way nothing is applied; the answer says so plainly.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "replayed-delivery",
            "Delivery already received",
            "this signed delivery was already received and applied; a repeat changes nothing",
        ));
    }
    Ok(applied)
}

/// The hub change a notification is about, when it is one of the supplier's change records
/// (one carrying a hub change reference) and the supplier keeps its change legs in its system.
fn change_notified(link: &SupplierLink, doc: &serde_json::Value) -> Option<String> {
    let client = link.client.changes().filter(|_| link.settings.change_records)?;
    let change = crate::adapters::change::mapping_for(client.change_system())?.read(doc).ok()?;
    change.reference.map(|r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::http::SupplierHttp;
    use crate::adapters::servicenow::ServiceNowClient;
    use crate::config::Settings;
    use actix_web::test::TestRequest;
    use secrecy::SecretString;

    fn link(auth: &str) -> SupplierLink {
        let s = Settings::from_toml(&format!("[[suppliers]]\nid = \"sn\"\nname = \"SN\"\nsystem = \"servicenow\"\nbase_url = \"http://127.0.0.1:1\"\nwebhook_auth = \"{auth}\"\n"))
            .unwrap();
        let http = SupplierHttp::new(std::time::Duration::from_secs(1), 1, 1).unwrap();
        SupplierLink {
            settings: s.suppliers[0].clone(),
            mapping: std::sync::Arc::new(crate::adapters::servicenow::ServiceNow::default()),
            client: std::sync::Arc::new(ServiceNowClient::new(http, "http://127.0.0.1:1", "u", SecretString::from(String::new()))),
            webhook_secret: Some(SecretString::from("s3cret".to_string())),
        }
    }

    #[test]
    fn basic_auth_webhooks_need_the_supplier_id_and_secret() {
        let l = link("basic");
        let good = base64::engine::general_purpose::STANDARD.encode("sn:s3cret");
        let bad = base64::engine::general_purpose::STANDARD.encode("sn:guess");
        let req = TestRequest::default().insert_header(("authorization", format!("Basic {good}"))).to_http_request();
        assert!(verify(&l, &req, b"{}", 0).is_ok());
        let req = TestRequest::default().insert_header(("authorization", format!("Basic {bad}"))).to_http_request();
        assert!(verify(&l, &req, b"{}", 0).is_err());
        let req = TestRequest::default().to_http_request();
        assert!(verify(&l, &req, b"{}", 0).is_err());
    }

    #[test]
    fn hmac_webhooks_are_checked_over_timestamp_and_raw_body() {
        let l = link("hmac");
        let sig = crate::sim::servicenow::sign_webhook("s3cret", "1000", "{\"a\":1}");
        let req = TestRequest::default().insert_header(("x-siam-timestamp", "1000")).insert_header(("x-siam-signature", sig.clone())).to_http_request();
        assert!(verify(&l, &req, b"{\"a\":1}", 1010).is_ok());
        assert!(verify(&l, &req, b"{\"a\":2}", 1010).is_err(), "a changed body fails");
        assert!(verify(&l, &req, b"{\"a\":1}", 5000).is_err(), "outside the tolerance window");
    }
}
