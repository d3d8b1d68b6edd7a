//! Integration tests: the hub on the real PostgreSQL and RabbitMQ, with the supplier simulators
//! (ServiceNow, Jira, Remedy, TMF621) standing in for the suppliers. One binary keeps link time down.

mod access;
mod api;
mod attachments;
mod browser;
mod change_dashboard;
mod change_legs;
mod changes;
mod cli;
mod console;
mod dashboard;
mod delivery;
mod estate;
mod fixtures;
mod golden;
mod golden_change;
mod golden_jira;
mod golden_remedy;
mod handoff;
mod helpers;
mod housekeeping;
mod jira;
mod remedy;
mod resilience;
mod sla;
mod supplier_setup_jira;
mod supplier_setup_sn;
mod suppliers;
mod sync;
mod tmf621;
