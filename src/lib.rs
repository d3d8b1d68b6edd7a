//! SIAM Hub: raise a ticket once, route it to the right supplier, keep every supplier's
//! ticketing system and one unified service record in sync, and broker every event.
//!
//! Layers, each using only those above it in this list:
//! `domain` (canonical model) -> `config`, `validation`, `store`, `routing` -> `bus`,
//! `adapters` -> `sync`, `api`, `sim` -> `startup` -> the CLI.

pub mod adapters;
pub mod api;
pub mod bus;
pub mod cli;
pub mod config;
pub mod domain;
pub mod routing;
pub mod sim;
pub mod sla;
pub mod startup;
pub mod store;
pub mod sync;
#[cfg(test)]
mod testkit;
pub mod validation;
