//! Integration tests: the hub on the real PostgreSQL and RabbitMQ, with the ServiceNow and
//! TMF621 simulators standing in for the suppliers. One binary keeps link time down.

mod api;
mod attachments;
mod cli;
mod delivery;
mod golden;
mod handoff;
mod golden_jira;
mod helpers;
mod jira;
mod resilience;
mod sync;
mod tmf621;
