//! Checking and discovering a Jira site (see [`crate::adapters::setup`]).
//!
//! The check asks Jira what the integration user may do without writing anything: `myself` for
//! the credentials, `mypermissions` in the configured project for reading, creating and updating
//! issues, commenting (internal comments also need the service project's agent role), and
//! attachments, and `field` for the custom fields the configuration names. Discovery reads the
//! project's statuses (per issue type, with their categories), the priorities, the resolutions
//! and the custom fields named Impact / Urgency, proposes what each means (by status category,
//! never by name alone, except for cancelling and closing statuses and resolutions, whose names
//! are all a site says about them), and writes the `[suppliers.jira]` settings that map what the
//! configuration does not know yet.

use super::mapping::JiraConfig;
use super::JiraClient;
use crate::adapters::setup::{Discovery, Proposal, Setup, Step};
use crate::adapters::SupplierError;
use crate::domain::{HoldReason, Status};
use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;

/// What each step needs, as `mypermissions` keys.
const READ: &[&str] = &["BROWSE_PROJECTS"];
const CREATE: &[&str] = &["CREATE_ISSUES"];
const UPDATE: &[&str] = &["EDIT_ISSUES", "TRANSITION_ISSUES"];
const PUBLIC_NOTES: &[&str] = &["ADD_COMMENTS"];
/// JSM internal comments are for agents: the agent role in the service project, which needs a
/// Jira Service Management agent licence.
const INTERNAL_NOTES: &[&str] = &["ADD_COMMENTS", "SERVICEDESK_AGENT"];
const UPLOAD: &[&str] = &["CREATE_ATTACHMENTS"];
/// Viewing an issue's attachments needs only browsing its project.
const DOWNLOAD: &[&str] = &["BROWSE_PROJECTS"];

const ALL: &[&str] = &["BROWSE_PROJECTS", "CREATE_ISSUES", "EDIT_ISSUES", "TRANSITION_ISSUES", "ADD_COMMENTS", "CREATE_ATTACHMENTS", "SERVICEDESK_AGENT"];

fn string_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string()))
}

/// The canonical status, with its hold reason, as the settings spell it (`on_hold:awaiting_caller`).
fn spelled(status: Status, hold: Option<HoldReason>) -> String {
    JiraConfig::target_key(status, hold)
}

impl JiraClient {
    async fn get(&self, what: &str, path: &str, query: &[(&str, String)]) -> Result<Value, SupplierError> {
        self.send_once(what, Method::GET, path, query, None).await
    }

    fn credentials_step(&self, r: Result<Value, SupplierError>) -> Step {
        match r {
            Ok(me) => {
                let name = me.get("displayName").and_then(Value::as_str).unwrap_or("?");
                let who = me.get("emailAddress").or_else(|| me.get("accountId")).and_then(Value::as_str).unwrap_or(&self.user);
                let kind = me.get("accountType").and_then(Value::as_str).unwrap_or("atlassian");
                Step::ok("credentials", format!("Jira accepted {} as {name} ({who}, {kind} account)", self.user))
            }
            Err(SupplierError::Rejected { status: 401, .. }) => Step::failed(
                "credentials",
                format!("Jira refused the credentials of {} (401)", self.user),
                "Set `username` to the integration account's e-mail address and its password secret to an API token of that account (id.atlassian.com > Security > API tokens); a revoked or expired token is refused the same way.",
            ),
            Err(SupplierError::Rejected { status: 403, message }) => Step::failed(
                "credentials",
                format!("Jira refused {} (403): {message}", self.user),
                "Log in once as the integration account in a browser (a CAPTCHA after failed logins blocks API access) and check the account is active with site access.",
            ),
            Err(e) => Step::failed("credentials", format!("Jira could not be asked who {} is: {e}", self.user), "Check base_url is the site (https://<site>.atlassian.net) and that it answers."),
        }
    }

    /// `mypermissions` in the project: key -> held. Asks again without `SERVICEDESK_AGENT` on a
    /// site without Jira Service Management, which does not know that key.
    async fn permissions(&self, project: &str) -> Result<BTreeMap<String, bool>, SupplierError> {
        let ask = |keys: &[&str]| vec![("projectKey", project.to_string()), ("permissions", keys.join(","))];
        let answer = match self.get("Jira my permissions", "/rest/api/3/mypermissions", &ask(ALL)).await {
            Err(SupplierError::Rejected { status: 400, .. }) => {
                let keys: Vec<&str> = ALL.iter().copied().filter(|k| *k != "SERVICEDESK_AGENT").collect();
                self.get("Jira my permissions", "/rest/api/3/mypermissions", &ask(&keys)).await?
            }
            other => other?,
        };
        let held = answer
            .get("permissions")
            .and_then(Value::as_object)
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.get("havePermission").and_then(Value::as_bool).unwrap_or(false))).collect())
            .unwrap_or_default();
        Ok(held)
    }

    fn permission_step(&self, name: &str, needs: &[&str], held: &BTreeMap<String, bool>, project: &str, what: &str) -> Step {
        let missing: Vec<&str> = needs.iter().copied().filter(|k| !held.get(*k).copied().unwrap_or(false)).collect();
        if missing.is_empty() {
            return Step::ok(name, format!("{} holds {} in project {project}", self.user, needs.join(" and ")));
        }
        let mut fix = format!("In Jira, project {project} > Project settings > Permissions: grant {} to a role or group of {} (to {what}).", missing.join(" and "), self.user);
        if missing.contains(&"SERVICEDESK_AGENT") {
            fix.push_str(
                " Internal comments are for service project agents: add the account to the project's Service Desk Team role, which needs a Jira Service Management agent licence.",
            );
        }
        Step::failed(name, format!("{} lacks {} in project {project}", self.user, missing.join(" and ")), fix)
    }

    fn fields_step(&self, fields: Result<Value, SupplierError>) -> Step {
        let fields = match fields {
            Ok(f) => f,
            Err(e) => {
                return Step::failed(
                    "read profile fields",
                    format!("the site's fields could not be listed: {e}"),
                    "Grant the integration account Browse Projects; the field list is open to every user who can browse.",
                )
            }
        };
        let known: BTreeMap<String, String> =
            fields.as_array().into_iter().flatten().filter_map(|f| Some((string_of(f.get("id")?)?, f.get("name").and_then(Value::as_str).unwrap_or("").to_string()))).collect();
        let cfg = &self.cfg;
        let wanted = [("reference_field", &cfg.reference_field), ("impact_field", &cfg.impact_field), ("urgency_field", &cfg.urgency_field)];
        let mut found = vec![];
        let mut missing = vec![];
        for (setting, id) in wanted {
            let Some(id) = id else { continue };
            match known.get(id) {
                Some(name) => found.push(format!("{setting} {id} \"{name}\"")),
                None => missing.push(format!("{setting} {id}")),
            }
        }
        if missing.is_empty() {
            let detail = if found.is_empty() { "the configuration names no custom field".to_string() } else { format!("found {}", found.join(", ")) };
            return Step::ok("read profile fields", detail);
        }
        Step::failed(
            "read profile fields",
            format!("the site has no {}", missing.join(", ")),
            "Set these in [suppliers.jira] to the ids of the site's fields (discovery lists the fields named Impact and Urgency), or to \"\" where the site has no such field.",
        )
    }
}

#[async_trait]
impl Setup for JiraClient {
    async fn steps(&self) -> Vec<Step> {
        let me = self.get("Jira myself", "/rest/api/3/myself", &[]).await;
        let credentials = self.credentials_step(me);
        if !credentials.ok {
            return vec![credentials];
        }
        let mut steps = vec![credentials];
        let project = self.cfg.project_key.clone();
        if project.is_empty() {
            steps.push(Step::failed("read tickets", "no project is configured", "Set project_key in [suppliers.jira] to the key of the project the hub raises issues in."));
            return steps;
        }
        match self.permissions(&project).await {
            Ok(held) => {
                steps.push(self.permission_step("read tickets", READ, &held, &project, "read the project's issues"));
                steps.push(self.permission_step("create tickets", CREATE, &held, &project, "raise issues"));
                steps.push(self.permission_step("update tickets", UPDATE, &held, &project, "edit issues and move them through the workflow"));
                steps.push(self.permission_step("write public notes", PUBLIC_NOTES, &held, &project, "add comments"));
                steps.push(self.permission_step("write internal notes", INTERNAL_NOTES, &held, &project, "add internal comments"));
                steps.push(self.permission_step("upload files", UPLOAD, &held, &project, "attach files"));
                steps.push(self.permission_step("download files", DOWNLOAD, &held, &project, "read attached files"));
            }
            Err(SupplierError::Rejected { status: 404, .. }) => steps.push(Step::failed(
                "read tickets",
                format!("project {project} does not exist or {} cannot see it", self.user),
                format!("Check project_key in [suppliers.jira], and grant {} Browse Projects in that project.", self.user),
            )),
            Err(e) => steps.push(Step::failed(
                "read tickets",
                format!("the permissions in project {project} could not be read: {e}"),
                "Check the site answers the REST API v3 (`/rest/api/3/mypermissions`).",
            )),
        }
        let fields = self.get("Jira fields", "/rest/api/3/field", &[]).await;
        steps.push(self.fields_step(fields));
        steps
    }

    async fn discover(&self) -> Result<Discovery, SupplierError> {
        let project = self.cfg.project_key.clone();
        if project.is_empty() {
            return Err(SupplierError::Rejected { status: 0, message: "no project_key is configured in [suppliers.jira]: discovery reads that project's statuses".into() });
        }
        let statuses = self.get("Jira project statuses", &format!("/rest/api/3/project/{}/statuses", super::client::segment(&project)), &[]).await?;
        let priorities = self.get("Jira priorities", "/rest/api/3/priority", &[]).await?;
        let resolutions = self.get("Jira resolutions", "/rest/api/3/resolution", &[]).await?;
        let fields = self.get("Jira fields", "/rest/api/3/field", &[]).await?;
        let site = Site::read(&statuses, &self.settings.issue_type, &priorities, &resolutions, &fields);
        Ok(site.discover(&self.cfg))
    }
}

/// A site's vocabulary as its API lists it.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// (id, name, category key) of the statuses of the hub's issue type.
    pub statuses: Vec<(String, String, String)>,
    /// (id, name)
    pub priorities: Vec<(String, String)>,
    pub resolutions: Vec<String>,
    /// (id, name) of custom fields.
    pub fields: Vec<(String, String)>,
}

impl Site {
    /// Reads the answers of `project/{key}/statuses` (the statuses of `issue_type`, or of every
    /// issue type when the project has no such type), `priority`, `resolution` and `field`.
    pub fn read(statuses: &Value, issue_type: &str, priorities: &Value, resolutions: &Value, fields: &Value) -> Site {
        let types: Vec<&Value> = statuses.as_array().map(|a| a.iter().collect()).unwrap_or_default();
        let ours: Vec<&Value> = types.iter().copied().filter(|t| t.get("name").and_then(Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case(issue_type))).collect();
        let chosen = if ours.is_empty() { types } else { ours };
        let mut site = Site::default();
        for s in chosen.iter().flat_map(|t| t.get("statuses").and_then(Value::as_array).into_iter().flatten()) {
            let Some(id) = s.get("id").and_then(string_of) else { continue };
            if site.statuses.iter().any(|(known, _, _)| *known == id) {
                continue;
            }
            let name = s.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            let category = s.pointer("/statusCategory/key").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
            site.statuses.push((id, name, category));
        }
        site.priorities = priorities
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p.get("id").and_then(string_of)?, p.get("name").and_then(Value::as_str).unwrap_or("").to_string())))
            .collect();
        site.resolutions = resolutions.as_array().into_iter().flatten().filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string)).collect();
        site.fields = fields
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f.get("custom").and_then(Value::as_bool).unwrap_or(false))
            .filter_map(|f| Some((f.get("id").and_then(string_of)?, f.get("name").and_then(Value::as_str).unwrap_or("").to_string())))
            .collect();
        site
    }

    /// Proposals for every value, and the settings mapping what `cfg` does not know yet.
    pub fn discover(&self, cfg: &JiraConfig) -> Discovery {
        let statuses: Vec<Proposal> = self.statuses.iter().map(|(id, name, category)| status_proposal(cfg, id, name, category)).collect();
        let priorities: Vec<Proposal> = self.priorities.iter().map(|(id, name)| priority_proposal(cfg, id, name)).collect();
        let mut fields: Vec<Proposal> = vec![];
        for (setting, label, configured) in [("impact_field", "Impact", &cfg.impact_field), ("urgency_field", "Urgency", &cfg.urgency_field)] {
            let found: Vec<&(String, String)> = self.fields.iter().filter(|(_, n)| n.eq_ignore_ascii_case(label)).collect();
            for (id, name) in &found {
                fields.push(Proposal {
                    native: id.clone(),
                    label: name.clone(),
                    proposed: Some(setting.to_string()),
                    why: format!("custom field named {label}: the JSM {label} select list"),
                    configured: (configured.as_deref() == Some(id.as_str())).then(|| setting.to_string()),
                });
            }
        }
        for name in &self.resolutions {
            fields.push(resolution_proposal(cfg, name));
        }
        let toml = self.toml(cfg, &statuses, &priorities);
        Discovery { statuses, priorities, fields, toml }
    }

    /// The `[suppliers.jira]` lines mapping what the configuration does not know: to paste at the
    /// end of the supplier's `[suppliers.jira]` section. Empty when nothing is missing.
    fn toml(&self, cfg: &JiraConfig, statuses: &[Proposal], priorities: &[Proposal]) -> String {
        let mut keys: Vec<String> = vec![];
        let mut notes: Vec<String> = vec![];
        for (setting, label, configured) in [("impact_field", "Impact", &cfg.impact_field), ("urgency_field", "Urgency", &cfg.urgency_field)] {
            let found: Vec<&String> = self.fields.iter().filter(|(_, n)| n.eq_ignore_ascii_case(label)).map(|(id, _)| id).collect();
            match (found.as_slice(), configured) {
                ([id], c) if c.as_deref() != Some(id.as_str()) => keys.push(format!("{setting} = {}", quote(id))),
                ([], Some(_)) if !self.fields.is_empty() => keys.push(format!("{setting} = \"\"  # the site has no field named {label}")),
                ([_, _, ..], c) if c.as_ref().is_none_or(|c| !found.contains(&c)) => {
                    notes.push(format!("# several fields are named {label}: set {setting} to the one the service project uses"))
                }
                _ => {}
            }
        }
        // A whole scheme, when the site's priority ids are not the configured ones.
        if priorities.iter().any(|p| p.configured.is_none()) {
            let levels: Vec<(String, String, u8)> =
                self.priorities.iter().zip(priorities).filter_map(|((id, name), p)| Some((id.clone(), name.clone(), p.proposed.as_deref()?.parse::<u8>().ok()?))).collect();
            if (1..=5u8).all(|l| levels.iter().any(|(_, _, p)| *p == l)) {
                let entries: Vec<String> =
                    levels.iter().map(|(id, name, p)| format!("{{ id = {}, name = {}, priority = {p}, urgency = {} }}", quote(id), quote(name), urgency_of(*p))).collect();
                keys.push(format!("priorities = [\n  {},\n]", entries.join(",\n  ")));
            } else {
                notes.push("# the site's priorities do not cover the hub's five levels: set `priorities` by hand (one for each priority 1..5)".into());
            }
        }
        let mut rules: Vec<String> = vec![];
        let mut rule_of: BTreeMap<String, String> = BTreeMap::new();
        for (p, (id, name, category)) in statuses.iter().zip(&self.statuses) {
            let Some(proposed) = p.proposed.as_deref().filter(|_| p.configured.is_none()) else { continue };
            let (canonical, hold) = proposed.split_once(':').map(|(c, h)| (c, Some(h))).unwrap_or((proposed, None));
            let hold = hold.map(|h| format!(", hold_reason = {}", quote(h))).unwrap_or_default();
            rules.push(format!("{} = {{ category = {}, canonical = {}{hold}, name = {} }}", quote(id), quote(category), quote(canonical), quote(name)));
            rule_of.insert(id.clone(), proposed.to_string());
        }
        // Targets the site lacks: the first of its statuses proposed for the same meaning.
        let site_ids: Vec<&String> = self.statuses.iter().map(|(id, _, _)| id).collect();
        let mut targets: Vec<String> = vec![];
        for (key, id) in &cfg.targets {
            if self.statuses.is_empty() || site_ids.contains(&id) {
                continue;
            }
            let meaning = if key == "assigned" { "new" } else { key.as_str() };
            let candidate = statuses.iter().find(|p| p.configured.as_deref().or(rule_of.get(&p.native).map(String::as_str)) == Some(meaning));
            match candidate {
                Some(p) => targets.push(format!("{} = {}", quote(key), quote(&p.native))),
                None => {
                    notes.push(format!("# the site has no status {id}, the target for `{key}`, and none of its statuses is proposed for it: set status_targets.\"{key}\" by hand"))
                }
            }
        }
        let mut resolutions: Vec<String> = vec![];
        for name in &self.resolutions {
            let p = resolution_proposal(cfg, name);
            if p.configured.is_none() {
                if let Some(code) = p.proposed.filter(|c| c != "cancelled") {
                    resolutions.push(format!("{} = {}", quote(name), quote(&code)));
                }
            }
        }
        if keys.is_empty() && rules.is_empty() && targets.is_empty() && resolutions.is_empty() && notes.is_empty() {
            return String::new();
        }
        let mut out = vec!["# Paste at the end of this supplier's [suppliers.jira] section.".to_string()];
        out.extend(notes);
        out.extend(keys);
        for (table, lines) in [("statuses", rules), ("status_targets", targets), ("resolutions", resolutions)] {
            if !lines.is_empty() {
                out.push(format!("\n[suppliers.jira.{table}]"));
                out.extend(lines);
            }
        }
        out.join("\n") + "\n"
    }
}

/// A TOML basic string (a JSON string is one: the same quotes and escapes).
fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// The urgency a Jira priority implies where there is no urgency field (the profile's: 1-2 -> 1,
/// 3 -> 2, 4-5 -> 3).
fn urgency_of(priority: u8) -> u8 {
    match priority {
        1 | 2 => 1,
        3 => 2,
        _ => 3,
    }
}

fn status_proposal(cfg: &JiraConfig, id: &str, name: &str, category: &str) -> Proposal {
    let configured = cfg.read_status(id, category, "").map(|(s, h)| spelled(s, h));
    let lower = name.to_ascii_lowercase();
    let (proposed, why) = match category {
        "done" if ["cancel", "declin", "reject", "won't", "withdraw"].iter().any(|w| lower.contains(w)) => {
            (Some("cancelled".to_string()), "category done, and the name says cancelled".to_string())
        }
        "done" if lower.contains("closed") => (Some("closed".into()), "category done, and the name says closed".into()),
        "done" => (Some("resolved".into()), "category done (closed or cancelled only when the resolution is a cancelling one)".into()),
        "indeterminate" => (Some("in_progress".into()), "category indeterminate (In Progress); a hold status needs its hold reason set by hand".into()),
        "new" => (Some("new".into()), "category new (To Do)".into()),
        other => (None, format!("category `{other}` says nothing of its meaning: map it by hand")),
    };
    // A rule the configuration has for this id (the reference profile's, or the instance's) wins.
    let (proposed, why) = match (&configured, cfg.statuses.get(id)) {
        (Some(c), Some(r)) if r.category == category => (Some(c.clone()), format!("{why}; the configuration's rule for {id}")),
        _ => (proposed, why),
    };
    Proposal { native: id.to_string(), label: name.to_string(), proposed, why, configured }
}

fn priority_proposal(cfg: &JiraConfig, id: &str, name: &str) -> Proposal {
    let configured = cfg.priority_by_id(id).map(|p| p.priority.to_string());
    let standard = ["highest", "high", "medium", "low", "lowest"].iter().position(|n| n.eq_ignore_ascii_case(name.trim())).map(|i| i as u8 + 1);
    // "P1 - Critical", "1 - Critical", "Priority 2"...
    let digits: String = name.chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
    let numbered = digits.parse::<u8>().ok().filter(|n| (1..=5).contains(n));
    let (proposed, why) = match (standard, numbered) {
        (Some(l), _) => (Some(l), format!("Jira's default priority {name}")),
        (None, Some(l)) => (Some(l), format!("the name numbers it {l}")),
        _ => (None, "not one of Jira's default priorities: give it a hub priority by hand".into()),
    };
    Proposal { native: id.to_string(), label: name.to_string(), proposed: proposed.map(|l| l.to_string()), why, configured }
}

fn resolution_proposal(cfg: &JiraConfig, name: &str) -> Proposal {
    let configured = if cfg.cancel_resolutions.iter().any(|r| r == name) { Some("cancelled".to_string()) } else { cfg.resolution_to.get(name).cloned() };
    let lower = name.to_ascii_lowercase();
    let (proposed, why) = if ["won't do", "declin", "cancel", "withdraw"].iter().any(|w| lower.contains(w)) {
        ("cancelled", "resolution; the name says cancelled")
    } else if lower.contains("won't fix") || lower.contains("not fixed") {
        ("not_fixed", "resolution; the name says not fixed")
    } else if lower.contains("duplicate") {
        ("duplicate", "resolution; the name says duplicate")
    } else if lower.contains("reproduc") {
        ("not_reproducible", "resolution; the name says not reproducible")
    } else if lower.contains("workaround") {
        ("workaround", "resolution; the name says workaround")
    } else if ["done", "fixed", "resolved", "complete"].iter().any(|w| lower == *w) {
        ("fixed", "resolution; the name says fixed")
    } else {
        ("other", "resolution the hub has no code for: read as other")
    };
    Proposal { native: name.to_string(), label: name.to_string(), proposed: Some(proposed.into()), why: why.into(), configured }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use serde_json::json;

    fn sample_site() -> Site {
        let status = |id: &str, name: &str, cat: &str| json!({"id": id, "name": name, "statusCategory": {"key": cat}});
        let statuses = json!([
            {"name": "Incident", "statuses": [
                status("10010", "Waiting for support", "new"),
                status("10018", "Work in progress", "indeterminate"),
                status("10012", "Waiting for customer", "indeterminate"),
                status("10019", "Waiting for vendor", "indeterminate"),
                status("10015", "Resolved", "done"),
                status("10016", "Closed", "done"),
                status("10017", "Canceled", "done"),
            ]},
            {"name": "Change", "statuses": [status("10100", "Open", "new")]}
        ]);
        let priorities =
            json!([{"id": "1", "name": "Highest"}, {"id": "2", "name": "High"}, {"id": "3", "name": "Medium"}, {"id": "4", "name": "Low"}, {"id": "5", "name": "Lowest"}]);
        let resolutions = json!([{"id": "1", "name": "Done"}, {"id": "2", "name": "Won't Do"}, {"id": "3", "name": "Known error"}]);
        let fields = json!([{"id": "customfield_10204", "name": "Impact", "custom": true}, {"id": "customfield_10005", "name": "Urgency", "custom": true}, {"id": "summary", "name": "Summary", "custom": false}]);
        Site::read(&statuses, "Incident", &priorities, &resolutions, &fields)
    }

    const BASE: &str = "[[suppliers]]\nid = \"j\"\nname = \"J\"\nsystem = \"jira\"\nbase_url = \"https://x.atlassian.net\"\n[suppliers.jira]\nproject_key = \"OPS\"\n";

    #[test]
    fn a_sites_own_statuses_are_proposed_by_category_and_the_snippet_maps_them() {
        let cfg = JiraConfig::default();
        let d = sample_site().discover(&cfg);
        assert_eq!(d.statuses.len(), 7, "only the hub's issue type: {:?}", d.statuses);
        let by = |id: &str| d.statuses.iter().find(|p| p.native == id).cloned().unwrap();
        assert_eq!((by("10018").proposed.as_deref(), by("10018").configured.as_deref()), (Some("in_progress"), None));
        assert_eq!((by("10019").proposed.as_deref(), by("10019").configured.as_deref()), (Some("in_progress"), None));
        assert_eq!(by("10012").configured.as_deref(), Some("on_hold:awaiting_caller"));
        assert_eq!(by("10017").proposed.as_deref(), Some("cancelled"));
        assert!(by("10018").why.contains("indeterminate"));
        let impact = d.fields.iter().find(|p| p.label == "Impact").unwrap();
        assert_eq!((impact.native.as_str(), impact.configured.as_deref()), ("customfield_10204", None));
        let known = d.fields.iter().find(|p| p.native == "Known error").unwrap();
        assert_eq!((known.proposed.as_deref(), known.configured.as_deref()), (Some("other"), None));

        let toml = format!("{BASE}{}", d.toml);
        let settings = Settings::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let jira = &settings.suppliers[0].jira;
        assert_eq!(jira.impact_field.as_deref(), Some("customfield_10204"));
        assert_eq!(jira.status_targets.get("in_progress").map(String::as_str), Some("10018"));
        assert_eq!(jira.resolutions.get("Known error").map(String::as_str), Some("other"));
        let applied = JiraConfig::from_settings(jira).unwrap();
        assert_eq!(applied.read_status("10018", "indeterminate", ""), Some((Status::InProgress, None)));
        assert_eq!(applied.target(Status::InProgress, None).map(String::as_str), Some("10018"));
        // Everything known now: a second discovery proposes nothing more to paste.
        let again = sample_site().discover(&applied);
        assert!(again.statuses.iter().all(|p| p.configured.is_some()), "{:?}", again.statuses);
        assert!(!again.toml.contains("[suppliers.jira.statuses]"), "{}", again.toml);
    }

    #[test]
    fn a_site_priority_scheme_is_proposed_whole() {
        let mut site = sample_site();
        site.priorities = vec![
            ("10001".into(), "P1 - Critical".into()),
            ("10002".into(), "P2 - High".into()),
            ("10003".into(), "P3 - Moderate".into()),
            ("10004".into(), "P4 - Low".into()),
            ("10005".into(), "P5 - Planning".into()),
        ];
        let d = site.discover(&JiraConfig::default());
        assert!(d.priorities.iter().all(|p| p.configured.is_none() && p.proposed.is_some()));
        let settings = Settings::from_toml(&format!("{BASE}{}", d.toml)).unwrap_or_else(|e| panic!("{e}\n{}", d.toml));
        let cfg = JiraConfig::from_settings(&settings.suppliers[0].jira).unwrap();
        assert_eq!(cfg.priority_for(1).map(|p| p.id.as_str()), Some("10001"));
        assert_eq!(settings.suppliers[0].jira.priorities.len(), 5);
    }

    #[test]
    fn nothing_missing_means_no_snippet() {
        let site = Site {
            statuses: ["10010", "10011", "10012", "10013", "10015", "10016", "10017"]
                .iter()
                .map(|id| (id.to_string(), "S".to_string(), JiraConfig::default().statuses[*id].category.clone()))
                .collect(),
            priorities: vec![("1".into(), "Highest".into())],
            resolutions: vec!["Done".into()],
            fields: vec![("customfield_10004".into(), "Impact".into()), ("customfield_10005".into(), "Urgency".into())],
        };
        let d = site.discover(&JiraConfig::default());
        assert_eq!(d.toml, "", "{}", d.toml);
    }
}
