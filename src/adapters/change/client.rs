//! A supplier system's change records over its API: the calls the change legs need.
//!
//! A record is exchanged in the shapes the system's [`super::ChangeMapping`] reads and writes, and
//! the native id a client takes is the one that mapping reads (`legs[0].native_id`), so the sync
//! never needs to know which system it talks to.

use crate::adapters::SupplierError;
use async_trait::async_trait;
use serde_json::Value;

/// A supplier system that takes changes through the hub.
#[async_trait]
pub trait ChangeClient: Send + Sync {
    /// The change mapping this client's records are read with (`servicenow`, `remedy`, `tmf655`).
    fn change_system(&self) -> &'static str;
    /// Every change record carrying the hub's change reference in the system's correlation field.
    async fn find_changes(&self, reference: &str) -> Result<Vec<Value>, SupplierError>;
    /// Creates the change from `body` (the mapping's `create_body`) and returns the created record.
    /// Written once: before any retry of an attempt whose outcome is unknown, the client looks
    /// for `reference` and adopts the record that attempt made.
    async fn create_change(&self, reference: &str, body: &Value) -> Result<Value, SupplierError>;
    /// Brings the record in line with `body` (the mapping's `create_body` of the change as it
    /// should be now; the client sends what the system's update takes of it) and returns the
    /// record after.
    async fn update_change(&self, native_id: &str, body: &Value) -> Result<Value, SupplierError>;
    /// The record as it is now.
    async fn fetch_change(&self, native_id: &str) -> Result<Value, SupplierError>;
    /// Adds a work note the supplier's change team sees (never published to end users).
    async fn add_change_note(&self, native_id: &str, text: &str) -> Result<(), SupplierError>;
    /// A link a person can open.
    fn change_url(&self, native_id: &str) -> String;
}
