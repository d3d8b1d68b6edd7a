//! Simulators of the supplier systems, stateful and faithful to the real APIs (including their
//! failures), for the test suite and the demo. No real supplier is reachable from a test.

pub mod jira;
pub mod remedy;
pub mod servicenow;
pub mod tmf621;
