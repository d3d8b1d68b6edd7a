//! Integration tests: the hub on the real PostgreSQL and RabbitMQ, with the ServiceNow
//! simulator standing in for the supplier. One binary keeps link time down.

mod api;
mod cli;
mod dashboard;
mod delivery;
mod golden;
mod helpers;
mod resilience;
mod sla;
mod sync;
