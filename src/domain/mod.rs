//! The canonical model: what a ticket is, whatever supplier system holds it.
//!
//! Nothing here does I/O. Values are parsed into these types at the edge (HTTP, supplier
//! adapters, database rows) so the rest of the hub never handles an unchecked impact, status or
//! reference.

pub mod access;
pub mod change;
pub mod event;
pub mod incident;
pub mod priority;
#[cfg(test)]
mod proptests;
pub mod time;

pub use access::SupplierAccess;
pub use event::{EventType, NewEvent};
pub use incident::*;
pub use priority::PriorityMatrix;
