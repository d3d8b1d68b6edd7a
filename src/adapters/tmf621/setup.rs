//! Checking and discovering a TMF621 instance (see [`crate::adapters::setup`]).
//!
//! TMF621 has no permission API: the check proves what it can without writing (the token flow,
//! the credentials on a ticket list, the `/hub` subscription resource answering) and says plainly
//! where only a write could tell (creating and updating tickets, writing notes and files), so an
//! administrator knows what the first real ticket will prove. Discovery reads a page of the
//! instance's tickets and proposes a meaning for each status, severity and priority seen, from
//! the TMF621 enum, ServiceNow's TMF621 flavour labels, and the instance's vocabularies.

use super::mapping::{profile, Instance, F_PRIORITY, F_SEVERITY};
use super::Tmf621Client;
use crate::adapters::setup::{Discovery, Proposal, Setup, Step};
use crate::adapters::SupplierError;
use crate::domain::Status;
use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;

/// Tickets read for discovery: one page.
const DISCOVERY_PAGE: usize = 100;
const NOT_WRITTEN: &str = "not verified without writing: the first ticket the hub raises proves it";

impl Tmf621Client {
    /// One page of tickets, in one attempt (a check reports what it finds; it does not retry).
    async fn list_tickets_once(&self, limit: usize) -> Result<Value, SupplierError> {
        let query = [("limit", limit.to_string()), ("offset", "0".to_string())];
        self.attempt("TMF621 list trouble tickets", Method::GET, "/troubleTicket", &query, None).await
    }

    fn credentials_failure(&self, e: &SupplierError) -> Step {
        let who = &self.user;
        match (self.auth_kind(), e) {
            ("oauth2", _) => Step::failed(
                "credentials",
                format!("the API refused the access token issued to client {who}: {e}"),
                "Check the client's scopes or roles at the supplier allow the Trouble Ticket API (ServiceNow: the ticket_integrator role).",
            ),
            (_, SupplierError::Rejected { status: 401, .. }) => Step::failed(
                "credentials",
                format!("the supplier refused the credentials of {who} (401)"),
                "Check `username` and the password secret (or the bearer token) with the supplier; ServiceNow's Trouble Ticket API needs a user with the ticket_integrator role.",
            ),
            (_, SupplierError::Rejected { status: 403, .. }) => Step::failed(
                "credentials",
                format!("{who} is authenticated but may not use the Trouble Ticket API (403)"),
                "Ask the supplier to grant the integration user access to the Trouble Ticket API (ServiceNow: the ticket_integrator role).",
            ),
            _ => Step::failed(
                "credentials",
                format!("the ticket list could not be read as {who}: {e}"),
                "Check base_url and tmf621.base_path point at the supplier's Trouble Ticket API.",
            ),
        }
    }
}

/// The tickets of a list answer: a bare array (TMF630) or wrapped in `result` / `troubleTicket`.
fn tickets_of(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o.get("result").or_else(|| o.get("troubleTicket")).and_then(Value::as_array).cloned().unwrap_or_default(),
        _ => vec![],
    }
}

#[async_trait]
impl Setup for Tmf621Client {
    async fn steps(&self) -> Vec<Step> {
        let mut steps = vec![];
        if self.auth_kind() == "oauth2" {
            match self.token().await {
                Ok(_) => steps.push(Step::ok("token", format!("the token endpoint issued an access token to client {}", self.user))),
                Err(e) => {
                    let refused = matches!(e, SupplierError::Rejected { status: 400 | 401 | 403, .. });
                    let fix = if refused {
                        "Check the OAuth2 client id (`username`) and secret with the supplier, and that the client may use the client-credentials grant."
                    } else {
                        "Check tmf621.token_url is the supplier's OAuth2 token endpoint."
                    };
                    steps.push(Step::failed("credentials", format!("the token endpoint refused client {}: {e}", self.user), fix));
                    return steps;
                }
            }
        }
        let listed = self.list_tickets_once(1).await;
        match &listed {
            Ok(v) => {
                steps.push(Step::ok("credentials", format!("the Trouble Ticket API accepted {} ({})", self.user, self.auth_kind())));
                steps.push(Step::ok("read tickets", format!("listed trouble tickets ({} on the first page)", tickets_of(v).len())));
            }
            Err(e) => {
                steps.push(self.credentials_failure(e));
                return steps;
            }
        }
        steps.push(Step::ok("create tickets", NOT_WRITTEN));
        steps.push(Step::ok("update tickets", NOT_WRITTEN));
        steps.push(Step::ok("write public notes", format!("notes are written with the ticket (`note[]`): {NOT_WRITTEN}")));
        steps.push(match &self.inst.private_note_type {
            Some(t) => Step::ok("write internal notes", format!("internal notes are written as note type `{t}`: {NOT_WRITTEN}")),
            None => Step::ok("write internal notes", "TMF621 notes carry no visibility and the instance declares no private note type: internal notes stay at the hub (set tmf621.private_note_type if the supplier has one)"),
        });
        if self.inst.is_servicenow() {
            steps.push(Step::ok("upload files", "ServiceNow's TMF621 flavour carries no files: they stay at the hub"));
            steps.push(Step::ok("download files", "ServiceNow's TMF621 flavour carries no files"));
        } else {
            steps.push(Step::ok("upload files", format!("files travel in the ticket's `attachment[]`: {NOT_WRITTEN}")));
            steps.push(Step::ok("download files", "files are read from the ticket's `attachment[]` (inline or by their url)"));
        }
        steps.push(self.hub_step().await);
        steps
    }

    async fn discover(&self) -> Result<Discovery, SupplierError> {
        let page = self.list_tickets_once(DISCOVERY_PAGE).await?;
        Ok(discover_from(&self.inst, &tickets_of(&page)))
    }
}

impl Tmf621Client {
    /// The `/hub` resource answers: a read of a subscription that does not exist must come back
    /// as TMF's "not found" (or the method refused), not as a missing path or a failure.
    async fn hub_step(&self) -> Step {
        if !self.subscribes {
            return Step::ok("event subscription", "subscriptions are off (tmf621.subscribe = false): the reconciliation sweep keeps the hub in sync");
        }
        let probe = format!("/hub/siam-hub-check-{}", uuid::Uuid::new_v4().simple());
        let url = self.url(&probe);
        match self.attempt("TMF621 hub", Method::GET, &probe, &[], None).await {
            Ok(_) => Step::ok("event subscription", format!("{url} answers; registering is {NOT_WRITTEN}")),
            Err(SupplierError::Rejected { status, message }) if status == 405 || (status == 404 && message.to_ascii_lowercase().contains("hub")) => {
                Step::ok("event subscription", format!("the /hub resource answers ({status} for an unknown subscription, as expected); registering is {NOT_WRITTEN}"))
            }
            Err(e) => Step::failed(
                "event subscription",
                format!("the /hub resource did not answer as a TMF hub: {e}"),
                "Ask the supplier to enable event notifications (the TMF621 /hub resource) for the integration user, or set tmf621.subscribe = false to rely on the reconciliation sweep alone.",
            ),
        }
    }
}

/// Proposals for the vocabulary of `tickets` as `inst` reads it, and the settings mapping what
/// the instance's configuration does not.
pub fn discover_from(inst: &Instance, tickets: &[Value]) -> Discovery {
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut severities: BTreeMap<String, usize> = BTreeMap::new();
    let mut priorities: BTreeMap<String, usize> = BTreeMap::new();
    for t in tickets {
        let text = |k: &str| t.get(k).and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string()))).filter(|s| !s.trim().is_empty());
        if let Some(s) = text("status") {
            *statuses.entry(s).or_default() += 1;
        }
        if let Some(s) = text(F_SEVERITY) {
            *severities.entry(s).or_default() += 1;
        }
        if let Some(s) = text(F_PRIORITY) {
            *priorities.entry(s).or_default() += 1;
        }
    }
    let status_list: Vec<Proposal> = statuses.iter().map(|(raw, n)| status_proposal(inst, raw, *n)).collect();
    let mut priority_list: Vec<Proposal> = severities.iter().map(|(raw, n)| severity_proposal(inst, raw, *n)).collect();
    priority_list.extend(priorities.iter().map(|(raw, n)| {
        let configured = Instance::level_of(&inst.priority_labels, raw).map(|l| format!("priority {l}"));
        Proposal {
            native: raw.clone(),
            label: raw.clone(),
            proposed: configured.clone(),
            why: format!("`priority` (seen on {n} tickets): the hub's own priority label, shown, never read into the record"),
            configured,
        }
    }));
    let mut toml = vec![];
    let map: Vec<String> =
        status_list.iter().filter(|p| p.configured.is_none()).filter_map(|p| Some(format!("{} = {}", quote(&p.native), quote(p.proposed.as_deref()?)))).collect();
    if !map.is_empty() {
        toml.push("[suppliers.tmf621.status_map]".to_string());
        toml.extend(map);
    }
    if !inst.severity_is_priority {
        let aliases: Vec<String> = priority_list
            .iter()
            .filter(|p| p.configured.is_none() && p.why.starts_with("`severity`"))
            .filter_map(|p| Some(format!("{} = {}", quote(&p.native), p.proposed.as_deref()?.strip_prefix("impact ")?)))
            .collect();
        if !aliases.is_empty() {
            if !toml.is_empty() {
                toml.push(String::new());
            }
            toml.push("[suppliers.tmf621.severity_aliases]".to_string());
            toml.extend(aliases);
        }
    }
    let toml = if toml.is_empty() { String::new() } else { format!("# Paste into this supplier's settings (after its [suppliers.tmf621] keys, if any).\n{}\n", toml.join("\n")) };
    Discovery { statuses: status_list, priorities: priority_list, fields: vec![], toml }
}

fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn status_proposal(inst: &Instance, raw: &str, seen: usize) -> Proposal {
    let normalised = inst.normalise_status(raw);
    let configured = inst.status_target(&normalised);
    let p = profile();
    let (proposed, why) = if let Some(c) = p.status.to_canonical.get(&normalised) {
        let how = if normalised == raw { "the TMF621 status enum".to_string() } else { format!("`{raw}` is the flavour's spelling of the TMF621 status `{normalised}`") };
        (Some(c.clone()), how)
    } else if let Some(s) = inferred_label(raw) {
        (
            Some(s.to_string()),
            "a ServiceNow incident state label (its TMF621 flavour writes them outside the enum); read as such at run time and marked inferred until mapped".into(),
        )
    } else {
        (None, "neither a TMF621 status nor a known label: map it in tmf621.status_map".into())
    };
    let why = format!("{why} (seen on {seen} tickets)");
    // A label mapped by the instance's status_map is configured; the enum is the profile's.
    Proposal { native: raw.to_string(), label: raw.to_string(), proposed: configured.clone().or(proposed), why, configured }
}

/// The canonical status of a ServiceNow state label, from the profile's `status.inferred`.
fn inferred_label(raw: &str) -> Option<Status> {
    let squash = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>();
    profile().status.inferred.iter().find(|(k, _)| squash(k) == squash(raw)).and_then(|(_, v)| v.parse().ok())
}

fn severity_proposal(inst: &Instance, raw: &str, seen: usize) -> Proposal {
    let (unit, levels) = if inst.severity_is_priority { ("priority", 5) } else { ("impact", 3) };
    let configured = inst.severity_level(raw).map(|l| format!("{unit} {l}"));
    let standard = ["critical", "major", "minor"].iter().position(|l| l.eq_ignore_ascii_case(raw.trim())).map(|i| i as u8 + 1);
    let digits: String = raw.trim().chars().take_while(char::is_ascii_digit).collect();
    let numbered = digits.parse::<u8>().ok().filter(|n| (1..=levels).contains(n));
    let (proposed, why) = match (&configured, standard, numbered) {
        (Some(c), _, _) => (Some(c.clone()), format!("the instance's severity vocabulary ({unit})")),
        (None, Some(l), _) if !inst.severity_is_priority => (Some(format!("impact {l}")), "the TMF621 example severities (Critical, Major, Minor)".to_string()),
        (None, _, Some(l)) => (Some(format!("{unit} {l}")), format!("the value numbers it {l}")),
        _ => (None, "not in the instance's severity vocabulary: add it to tmf621.severity_aliases".to_string()),
    };
    Proposal { native: raw.to_string(), label: raw.to_string(), proposed, why: format!("`severity` (seen on {seen} tickets): {why}"), configured }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Settings, TmfFlavour};
    use serde_json::json;

    #[test]
    fn servicenow_labels_are_proposed_and_the_snippet_maps_them() {
        let settings = crate::config::Tmf621Settings { flavour: TmfFlavour::Servicenow, ..Default::default() };
        let inst = Instance::new(&settings);
        let tickets = vec![
            json!({"id": "1", "status": "New", "severity": "2 - High"}),
            json!({"id": "2", "status": "Open", "severity": "3 - Moderate"}),
            json!({"id": "3", "status": "On Hold", "severity": "3 - Moderate"}),
            json!({"id": "4", "status": "Canceled"}),
            json!({"id": "5", "status": "In Progress"}),
            json!({"id": "6", "status": "Awaiting vendor"}),
        ];
        let d = discover_from(&inst, &tickets);
        let by = |n: &str| d.statuses.iter().find(|p| p.native == n).cloned().unwrap();
        assert_eq!((by("New").proposed.as_deref(), by("New").configured.as_deref()), (Some("new"), Some("new")));
        assert_eq!((by("On Hold").proposed.as_deref(), by("On Hold").configured.as_deref()), (Some("on_hold"), None));
        assert_eq!((by("Canceled").proposed.as_deref(), by("Canceled").configured.as_deref()), (Some("cancelled"), None));
        assert_eq!(by("In Progress").configured.as_deref(), Some("in_progress"));
        assert_eq!((by("Awaiting vendor").proposed, by("Awaiting vendor").configured), (None, None));
        let high = d.priorities.iter().find(|p| p.native == "2 - High").unwrap();
        assert_eq!(high.configured.as_deref(), Some("priority 2"));

        let base = "[[suppliers]]\nid = \"t\"\nname = \"T\"\nsystem = \"tmf621\"\nbase_url = \"https://sn.example.org\"\n[suppliers.tmf621]\nflavour = \"servicenow\"\n";
        let text = format!("{base}{}", d.toml);
        let parsed = Settings::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let applied = Instance::new(&parsed.suppliers[0].tmf621);
        assert_eq!(applied.status_target("On Hold").as_deref(), Some("on_hold"));
        assert!(discover_from(&applied, &tickets).statuses.iter().filter(|p| p.native != "Awaiting vendor").all(|p| p.configured.is_some()));
    }

    #[test]
    fn unknown_severities_are_proposed_as_aliases() {
        let inst = Instance::default();
        let d = discover_from(
            &inst,
            &[
                json!({"id": "1", "status": "inProgress", "severity": "Major"}),
                json!({"id": "2", "status": "acknowledged", "severity": "3"}),
                json!({"id": "3", "severity": "Sev 9"}),
            ],
        );
        assert!(d.toml.is_empty() || d.toml.contains("severity_aliases"), "{}", d.toml);
        let sev9 = d.priorities.iter().find(|p| p.native == "Sev 9").unwrap();
        assert_eq!((sev9.proposed.as_deref(), sev9.configured.as_deref()), (None, None));
        assert!(d.statuses.iter().all(|p| p.configured.is_some()));
    }
}
