//! Integration tests: the hub on the real PostgreSQL and RabbitMQ, with the supplier simulators
//! (ServiceNow, Remedy) standing in for the suppliers. One binary keeps link time down.

mod api;
mod cli;
mod delivery;
mod golden;
mod golden_remedy;
mod helpers;
mod remedy;
mod resilience;
mod sync;
