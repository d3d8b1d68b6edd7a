//! Supplier systems: one module per system, each translating between the system's native
//! records and the canonical model (its mapping profile lives in `adapters/<system>/` at the
//! repository root) and holding the client for the system's API.

pub mod http;
pub mod servicenow;

use std::time::Duration;

/// Why a supplier call failed, sorted by what the caller should do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SupplierError {
    /// Worth retrying: rate limiting, a server error, a timeout, a dropped connection.
    #[error("{message}")]
    Transient { message: String, retry_after: Option<Duration> },
    /// The supplier refused the request; retrying the same request will not help.
    #[error("{message}")]
    Rejected { status: u16, message: String },
    /// The supplier answered something this adapter cannot read.
    #[error("{0}")]
    Protocol(String),
}

impl SupplierError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SupplierError::Transient { .. })
    }
}

/// A native payload that cannot be mapped at all (not a record of this system).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MapError(pub String);
