//! Keeping supplier tickets and the unified record in step.
//!
//! - [`outbound`]: a supplier's dispatch queue consumer brings its ticket in line with the
//!   record (create once, push changed fields, push new notes).
//! - [`inbound`]: a supplier record (from a webhook, a poll, or the answer to our own write) is
//!   compared with the leg's baseline and only real supplier changes reach the record.
//! - [`poller`]: the reconciliation sweep that catches what webhooks missed.

pub mod attachments;
pub mod change;
pub mod handoff;
pub mod inbound;
pub mod outbound;
pub mod poller;

use crate::adapters::{Client, MapError, Mapping, SupplierError};
use crate::config::{Settings, SupplierSettings, SyncSettings};
use crate::domain::PriorityMatrix;
use crate::routing::Router;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Supplier(#[from] SupplierError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read the supplier's record: {0}")]
    Map(#[from] MapError),
    #[error("supplier `{0}` is not configured")]
    UnknownSupplier(String),
}

/// One configured external supplier instance, ready to call.
pub struct SupplierLink {
    pub settings: SupplierSettings,
    pub mapping: Arc<dyn Mapping>,
    pub client: Arc<dyn Client>,
    /// HMAC secret (or basic-auth password) the supplier's webhooks must carry.
    pub webhook_secret: Option<SecretString>,
}

/// How the hub's work with one supplier went lately, in this process: its calls (see
/// [`crate::adapters::http::CallLog`]) and its last reconciliation sweep.
#[derive(Debug, Default)]
pub struct Activity {
    pub calls: Arc<crate::adapters::http::CallLog>,
    last_sweep: std::sync::Mutex<Option<SweepSeen>>,
}

/// When a sweep ended, and why it failed if it did.
#[derive(Debug, Clone)]
pub struct SweepSeen {
    pub at: DateTime<Utc>,
    pub error: Option<String>,
}

impl Activity {
    pub fn swept(&self, error: Option<String>) {
        *self.last_sweep.lock().unwrap_or_else(|p| p.into_inner()) = Some(SweepSeen { at: Utc::now(), error });
    }

    pub fn last_sweep(&self) -> Option<SweepSeen> {
        self.last_sweep.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What the sync stages share.
#[derive(Clone)]
pub struct Engine {
    pub store: Store,
    pub matrix: PriorityMatrix,
    pub suppliers: Arc<HashMap<String, Arc<SupplierLink>>>,
    /// Each external supplier's recent activity, for its health.
    pub activity: Arc<HashMap<String, Arc<Activity>>>,
    /// Wakes the outbox relay after a commit.
    pub outbox_signal: Arc<Notify>,
    pub router: Router,
    pub policy: SyncSettings,
    /// The most files one incident holds (supplier files beyond it are refused).
    pub max_attachments: i64,
    /// When this process began: any write to a supplier attempted before it was left in flight
    /// by a hub process that is gone.
    pub started_at: DateTime<Utc>,
    /// The change rules (CAB, freezes, failure policy) the change legs are judged by.
    pub changes: Arc<crate::config::ChangeSettings>,
}

impl Engine {
    /// Builds clients for every external supplier; fails on a missing secret.
    pub fn new(settings: &Settings, store: Store, outbox_signal: Arc<Notify>) -> Result<Engine, String> {
        let mut suppliers = HashMap::new();
        let mut activity = HashMap::new();
        for s in settings.suppliers.iter().filter(|s| s.is_external()) {
            let password = s.password_secret().map_err(|e| e.to_string())?;
            let webhook_secret = s.webhook_secret().map_err(|e| e.to_string())?;
            let ((mapping, client), calls) = crate::adapters::connect_logged(s, &settings.egress, password)?;
            activity.insert(s.id.clone(), Arc::new(Activity { calls, last_sweep: Default::default() }));
            suppliers.insert(s.id.clone(), Arc::new(SupplierLink { settings: s.clone(), mapping, client, webhook_secret }));
        }
        Ok(Engine {
            store,
            matrix: settings.priority_matrix.clone(),
            suppliers: Arc::new(suppliers),
            activity: Arc::new(activity),
            outbox_signal,
            router: Router::new(settings),
            policy: settings.sync.clone(),
            max_attachments: settings.max_attachments_per_incident,
            started_at: Utc::now(),
            changes: Arc::new(settings.changes.clone()),
        })
    }

    /// Before looking at a supplier for what a write attempted at `attempted_at` left there:
    /// a write this process made was already given its time to land (`SupplierHttp::write_once`
    /// waits and looks once more after its last attempt), but one a stopped or killed hub
    /// process left in flight may still commit. Its request went out before this process
    /// started, so waiting until twice the client timeout after the start gives it the time
    /// `write_once` gives the hub's own writes.
    pub async fn settle_writes_of_earlier_processes(&self, link: &SupplierLink, attempted_at: DateTime<Utc>) {
        if attempted_at >= self.started_at {
            return;
        }
        let until = self.started_at + chrono::Duration::seconds(2 * link.settings.timeout_secs as i64);
        if let Ok(wait) = (until - Utc::now()).to_std() {
            tracing::info!(waited = ?wait, "giving a write left in flight by an earlier hub process time to land before looking for it");
            tokio::time::sleep(wait).await;
        }
    }

    pub fn supplier(&self, id: &str) -> Result<Arc<SupplierLink>, SyncError> {
        self.suppliers.get(id).cloned().ok_or_else(|| SyncError::UnknownSupplier(id.to_string()))
    }

    pub fn notify(&self) {
        self.outbox_signal.notify_one();
    }
}
