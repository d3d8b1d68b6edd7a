//! ServiceNow (Table API, `incident` table): record parsing in all three display modes, the
//! mapping to and from the canonical model, and the API client.

pub mod client;
pub mod mapping;

pub use client::ServiceNowClient;
pub use mapping::{parse_record, JournalEntry, SnRecord, SYNCED_FIELDS};
