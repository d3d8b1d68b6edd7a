//! The hub's own subscriptions at a TMF supplier's `/hub`: the trouble tickets' (TMF621) and,
//! for a supplier keeping its change legs in its own tool, the change requests' (TMF655), so the
//! supplier's event notifications reach `<public_url>/webhooks/<supplier>` (as
//! `.../listener/<eventName>`).
//!
//! Registered once per supplier however many hub processes run: a process claims the
//! registration in the database, removes a subscription made for an older callback, registers
//! and records the new id; the others see it done. A supplier that is down is retried with
//! backoff; meanwhile (and always) the reconciliation sweep keeps the hub in sync.

use super::client::Tmf621Client;
use crate::adapters::http::SupplierHttp;
use crate::config::{EgressSettings, SupplierSettings, TmfFlavour};
use crate::store::tmf621::{self as tmf_store, Claim};
use crate::store::Store;
use secrecy::SecretString;
use std::time::Duration;
use tokio::sync::watch;

/// The API of a TMF supplier whose events the hub follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventApi {
    /// TMF621 trouble tickets.
    Tickets,
    /// TMF655 change requests.
    Changes,
}

impl EventApi {
    pub fn as_str(self) -> &'static str {
        match self {
            EventApi::Tickets => "troubleTicket",
            EventApi::Changes => "changeRequest",
        }
    }
}

/// The events the hub subscribes to at `api`, in the flavour's names.
pub fn event_query(settings: &SupplierSettings, api: EventApi) -> String {
    if api == EventApi::Changes {
        return "eventType=ChangeRequestCreateEvent,ChangeRequestStateChangeEvent,ChangeRequestAttributeValueChangeEvent".into();
    }
    let attribute = match settings.tmf621.flavour {
        TmfFlavour::Servicenow => "TroubleTicketAttributeChangeEvent",
        TmfFlavour::Standard => "TroubleTicketAttributeValueChangeEvent",
    };
    format!("eventType=TroubleTicketCreateEvent,TroubleTicketStatusChangeEvent,{attribute}")
}

/// Keeps trying until the subscription for `callback` is registered (by this process or
/// another), or until shutdown.
#[allow(clippy::too_many_arguments)]
pub async fn keep_subscribed(
    store: Store,
    settings: SupplierSettings,
    api: EventApi,
    egress: EgressSettings,
    password: SecretString,
    callback: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let http = match SupplierHttp::for_supplier(&settings, &egress) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(supplier = %settings.id, error = %e, "cannot build the HTTP client for the TMF621 subscription");
            return;
        }
    };
    let client = Tmf621Client::new(http, &settings.base_url, &settings.tmf621, &settings.username, password);
    let query = event_query(&settings, api);
    let mut backoff = Duration::from_millis(500);
    loop {
        match attempt(&store, &client, &settings.id, api, &callback, &query).await {
            Ok(true) => return,
            Ok(false) => tracing::debug!(supplier = %settings.id, "another hub process is registering the TMF621 subscription"),
            Err(e) => tracing::warn!(supplier = %settings.id, error = %e, retry_in = ?backoff, "TMF621 event subscription failed; the sweep covers the gap"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// One try: `true` when the subscription for `callback` is in place.
async fn attempt(store: &Store, client: &Tmf621Client, supplier: &str, api: EventApi, callback: &str, query: &str) -> Result<bool, String> {
    let (s, cb) = (supplier.to_string(), callback.to_string());
    let changes = api == EventApi::Changes;
    match store.run(move |c| tmf_store::claim_supplier_subscription(c, &s, api.as_str(), &cb)).await.map_err(|e| e.to_string())? {
        Claim::Done => Ok(true),
        Claim::Busy => Ok(false),
        Claim::Claimed { old } => {
            if let Some(old) = old {
                // A subscription for an older callback would keep sending events nowhere useful.
                if let Err(e) = client.unsubscribe(changes, &old).await {
                    tracing::warn!(%supplier, subscription = %old, error = %e, "could not remove the previous TMF621 subscription");
                }
            }
            let (s, cb) = (supplier.to_string(), callback.to_string());
            match client.subscribe(changes, callback, query).await {
                Ok(id) => {
                    tracing::info!(%supplier, subscription = %id, %callback, "subscribed to the supplier's TMF621 events");
                    store.run(move |c| tmf_store::finish_supplier_subscription(c, &s, api.as_str(), Some(&id), &cb)).await.map_err(|e| e.to_string())?;
                    Ok(true)
                }
                Err(e) => {
                    store.run(move |c| tmf_store::release_supplier_claim(c, &s, api.as_str())).await.map_err(|e| e.to_string())?;
                    Err(e.to_string())
                }
            }
        }
    }
}
