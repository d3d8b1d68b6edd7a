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

/// Checks the delivery's credentials against the supplier's webhook secret.
pub fn verify(link: &SupplierLink, req: &HttpRequest, body: &[u8], now: i64) -> Result<(), ApiError> {
    let secret =
        link.webhook_secret.as_ref().ok_or_else(|| ApiError::forbidden(format!("webhooks from `{}` are refused: no webhook secret is configured for it", link.settings.id)))?;
    match link.settings.webhook_auth {
        WebhookAuth::Hmac => {
            let ts = header(req, "x-siam-timestamp").ok_or_else(|| ApiError::unauthorized("missing X-Siam-Timestamp header"))?;
            let sig = header(req, "x-siam-signature").ok_or_else(|| ApiError::unauthorized("missing X-Siam-Signature header"))?;
            let ts_num: i64 = ts.trim().parse().map_err(|_| ApiError::unauthorized("X-Siam-Timestamp must be Unix seconds"))?;
            if (now - ts_num).abs() > link.settings.webhook_tolerance_secs {
                return Err(ApiError::unauthorized(format!(
                    "the delivery timestamp is {}s from the hub's clock, outside the {}s tolerance (replayed or clock skew)",
                    now - ts_num,
                    link.settings.webhook_tolerance_secs
                )));
            }
            let hex_sig = sig.trim().strip_prefix("sha256=").unwrap_or(sig.trim());
            let given = hex::decode(hex_sig).map_err(|_| ApiError::unauthorized("X-Siam-Signature must be sha256=<hex>"))?;
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).map_err(|_| ApiError::unauthorized("bad secret"))?;
            mac.update(ts.trim().as_bytes());
            mac.update(b".");
            mac.update(body);
            mac.verify_slice(&given).map_err(|_| ApiError::unauthorized("the webhook signature does not match the body"))
        }
        WebhookAuth::HubSignature => {
            let sig = header(req, "x-hub-signature").ok_or_else(|| ApiError::unauthorized("missing X-Hub-Signature header"))?;
            let hex_sig = sig.trim().strip_prefix("sha256=").ok_or_else(|| ApiError::unauthorized("X-Hub-Signature must be sha256=<hex>"))?;
            let given = hex::decode(hex_sig).map_err(|_| ApiError::unauthorized("X-Hub-Signature must be sha256=<hex>"))?;
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).map_err(|_| ApiError::unauthorized("bad secret"))?;
            mac.update(body);
            mac.verify_slice(&given).map_err(|_| ApiError::unauthorized("the webhook signature does not match the body"))
        }
        WebhookAuth::Basic => {
            let auth = header(req, "authorization").and_then(|a| a.strip_prefix("Basic ")).ok_or_else(|| ApiError::unauthorized("basic auth required"))?;
            let decoded = base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|_| ApiError::unauthorized("malformed basic auth"))?;
            let expected = format!("{}:{}", link.settings.id, secret.expose_secret());
            // Compare digests so the time taken says nothing about the secret.
            let same = hmac_eq(&decoded, expected.as_bytes());
            if same {
                Ok(())
            } else {
                Err(ApiError::unauthorized("wrong webhook credentials"))
            }
        }
    }
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
    let link = state.engine.supplier(supplier).map_err(|_| ApiError::not_found(format!("no supplier `{supplier}` is configured")))?;
    let bytes = read_body(body, state.settings.max_body_bytes).await?;
    verify(&link, req, &bytes, chrono::Utc::now().timestamp())?;
    let doc = parse_json(&bytes)?;
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
    let delivery = ["x-siam-delivery", "x-atlassian-webhook-identifier"]
        .iter()
        .find_map(|h| header(req, h))
        .map(str::to_string)
        .or_else(|| doc.get("eventId").and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string()))));
    state.engine.apply(supplier, rec, notes, correlation_id(req), delivery, true).await.map_err(|e| match e {
        crate::sync::SyncError::Store(s) => ApiError::from(s),
        other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unapplicable", "The delivery could not be applied", other.to_string()),
    })
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
