//! Checking and discovering a ServiceNow instance (see [`crate::adapters::setup`]), and the
//! proposals from a value's label that the other systems' discovery shares.
//!
//! The check never writes to the instance: what the integration user may do is read from its
//! roles, since ServiceNow's base ACLs hang on them and a test write would leave a ticket (and
//! notifications) at a customer's instance. What each step does there:
//! - `credentials`: `GET sys_user?user_name=<user>` (one row). A 401 means the user name or
//!   password is wrong, or the user is locked out; nothing else is checked then.
//! - the user's roles: `GET sys_user_has_role?user.user_name=<user>` (`role.name`), which lists
//!   inherited roles and those given through groups too. An instance that does not show them to
//!   the integration user leaves the write steps "not verified without writing" (ok, said so).
//! - `read tickets`: `GET incident` (one row); a 403 fails, and so does a user without a role
//!   that reads every incident (`itil`, `sn_incident_read`, `sn_incident_write`, `admin`): the
//!   instance would show it only the incidents it opened.
//! - `create tickets`, `update tickets`, `write public notes` (`comments`), `upload files`:
//!   the roles (`itil`, `sn_incident_write` or `admin`).
//! - `write internal notes` (`work_notes`): `itil` or `admin`. Without them ServiceNow drops
//!   the work notes of a save without an error, so the hub would believe them delivered.
//! - `read notes`: the hub reads notes from `sys_journal_field`, which the base ACLs open to
//!   `itil`; one row is read.
//! - `download files`: `GET attachment` (one row's metadata).
//! - `read profile fields`: one incident read with the fields the profile maps
//!   (`sysparm_fields`); the instance leaves out a field that does not exist or that an ACL
//!   hides, and the step names it. With no incident visible it is not verified.
//!
//! Discovery reads `sys_choice` (active English choices, by sequence) of incident `state`,
//! `hold_reason`, `close_code`, `impact`, `urgency` and `priority`, and change_request
//! `state`. `statuses` holds the incident states (native = the stored value) and then the
//! change states (native `change_request.state=<value>`); `fields` the hold reasons and close
//! codes (`hold_reason=<value>`, `close_code=<value>`); `priorities` the impact, urgency and
//! priority choices (`impact=<value>`...). Each is proposed from the reference profile when it
//! knows the value, otherwise from its label; `configured` is what the profile with this
//! supplier's `[suppliers.overrides]` maps it to. The TOML snippet maps the incident states,
//! hold reasons and close codes the configuration does not know yet, as
//! `[suppliers.overrides.*]` tables to paste under the supplier's `[[suppliers]]` entry; change
//! states have no per-supplier setting and are listed there as comments.

use super::client::READ_FIELDS;
use super::mapping::profile;
use super::ServiceNowClient;
use crate::adapters::setup::{Discovery, Proposal, Setup, Step};
use crate::adapters::SupplierError;
use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

/// Roles with which the base ACLs let a user read every incident.
const READ_ROLES: &[&str] = &["itil", "sn_incident_read", "sn_incident_write", "admin"];
/// Roles with which the base ACLs let a user create and update incidents, write comments and
/// attach files.
const WRITE_ROLES: &[&str] = &["itil", "sn_incident_write", "admin"];
/// Roles with which the base ACLs let a user write work notes and read the journal.
const WORK_NOTES_ROLES: &[&str] = &["itil", "admin"];

/// The change profile's state map (`adapters/servicenow/change_profile.json`).
static CHANGE_STATES: LazyLock<BTreeMap<String, String>> = LazyLock::new(|| {
    serde_json::from_str::<Value>(include_str!("../../../adapters/servicenow/change_profile.json"))
        .ok()
        .and_then(|v| v.pointer("/state/to_canonical").cloned())
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default()
});

/// The canonical status a label suggests (`Awaiting vendor` -> on_hold), if any.
pub(crate) fn status_from_label(label: &str) -> Option<&'static str> {
    let l = label.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| l.contains(w));
    Some(if has(&["cancel", "withdrawn", "void"]) {
        "cancelled"
    } else if has(&["clos"]) {
        "closed"
    } else if has(&["resolv", "solved", "fixed", "complete"]) {
        "resolved"
    } else if has(&["hold", "pending", "awaiting", "waiting", "suspend", "deferred"]) {
        "on_hold"
    } else if has(&["progress", "work", "active", "investigat", "diagnos", "open"]) {
        "in_progress"
    } else if has(&["assign"]) {
        "assigned"
    } else if has(&["new", "submitted", "logged", "registered"]) {
        "new"
    } else {
        return None;
    })
}

/// The canonical hold reason a label suggests (`Awaiting Vendor Fix` -> awaiting_supplier).
pub(crate) fn hold_reason_from_label(label: &str) -> Option<&'static str> {
    let l = label.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| l.contains(w));
    Some(if has(&["vendor", "supplier", "third party", "3rd party", "delivery"]) {
        "awaiting_supplier"
    } else if has(&["caller", "client", "customer", "user", "requester"]) {
        "awaiting_caller"
    } else if has(&["problem", "pending causal", "pending original"]) {
        "awaiting_problem"
    } else if has(&["change"]) {
        "awaiting_change"
    } else if has(&["evidence", "monitor", "information", "info"]) {
        "awaiting_evidence"
    } else {
        return None;
    })
}

/// The canonical resolution code a label suggests (`Solved by Vendor Patch` -> fixed).
pub(crate) fn resolution_from_label(label: &str) -> Option<&'static str> {
    let l = label.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| l.contains(w));
    Some(if has(&["work around", "workaround", "temporary"]) {
        "workaround"
    } else if has(&["not reproducible", "cannot reproduce", "could not reproduce"]) {
        "not_reproducible"
    } else if has(&["not solved", "not fixed", "too costly", "won't fix", "wont fix"]) {
        "not_fixed"
    } else if has(&["duplicate", "original incident"]) {
        "duplicate"
    } else if has(&["by caller", "by user", "by customer"]) {
        "resolved_by_caller"
    } else if has(&["solved", "fixed", "resolved", "permanent", "no further action"]) {
        "fixed"
    } else {
        return None;
    })
}

/// The canonical change state a label suggests.
fn change_state_from_label(label: &str) -> Option<&'static str> {
    let l = label.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| l.contains(w));
    Some(if has(&["cancel"]) {
        "cancelled"
    } else if has(&["reject"]) {
        "rejected"
    } else if has(&["clos", "complete"]) {
        "closed"
    } else if has(&["review"]) {
        "review"
    } else if has(&["implement"]) {
        "implement"
    } else if has(&["schedul"]) {
        "scheduled"
    } else if has(&["authori", "approv"]) {
        "authorize"
    } else if has(&["assess"]) {
        "assess"
    } else if has(&["new", "draft"]) {
        "draft"
    } else {
        return None;
    })
}

/// A proposal for `native`: the reference profile's reading when it has one, otherwise the
/// label's, otherwise none.
pub(crate) fn propose(native: &str, label: &str, reference: Option<&str>, from_label: fn(&str) -> Option<&'static str>, configured: Option<String>) -> Proposal {
    let (proposed, why) = match (reference, from_label(label)) {
        (Some(r), _) => (Some(r.to_string()), format!("the reference profile maps {native} to {r}")),
        (None, Some(l)) => (Some(l.to_string()), format!("from its label \"{label}\"")),
        (None, None) => (None, format!("neither the reference profile nor the label \"{label}\" says what it means")),
    };
    Proposal { native: native.to_string(), label: label.to_string(), proposed, why, configured }
}

/// A TOML string (basic string escapes are JSON's).
pub(crate) fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
}

/// `[table]` with `"native" = "proposed"` for each proposal the configuration does not map yet
/// (empty when there is none). `native_key` reads the native value a proposal stands for.
pub(crate) fn toml_table(table: &str, proposals: &[&Proposal], native_key: impl Fn(&Proposal) -> String) -> String {
    let lines: Vec<String> = proposals
        .iter()
        .filter(|p| p.configured.is_none())
        .filter_map(|p| {
            let key = native_key(p);
            // The label as a comment where the value does not say it already.
            let note = if p.label == key { String::new() } else { format!("  # {}", p.label.replace(['\n', '\r'], " ")) };
            p.proposed.as_ref().map(|v| format!("{} = {}{note}", toml_string(&key), toml_string(v)))
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    format!("[{table}]\n{}\n", lines.join("\n"))
}

/// Whether a failed call was the instance refusing the user's rights (403).
fn forbidden(e: &SupplierError) -> bool {
    matches!(e, SupplierError::Rejected { status: 403, .. })
}

impl ServiceNowClient {
    /// Rows of a Table API query (one attempt per retry policy of the supplier).
    async fn rows(&self, what: &str, path: &str, query: &[(&str, String)]) -> Result<Vec<Value>, SupplierError> {
        Ok(self.call(what, Method::GET, path, query, None).await?.as_array().cloned().unwrap_or_default())
    }

    /// The integration user's active roles, when the instance shows them.
    async fn roles(&self) -> Option<BTreeSet<String>> {
        let query = [("sysparm_query", format!("user.user_name={}^state=active", self.user)), ("sysparm_fields", "role.name".into()), ("sysparm_limit", "500".into())];
        let rows = self.rows("ServiceNow roles", "/api/now/table/sys_user_has_role", &query).await.ok()?;
        let roles: BTreeSet<String> = rows.iter().filter_map(|r| r.get("role.name").and_then(Value::as_str)).filter(|r| !r.is_empty()).map(str::to_string).collect();
        (!roles.is_empty()).then_some(roles)
    }

    /// A step decided by the roles: ok with one of `wanted`, failed without, "not verified"
    /// when the roles are not known.
    fn role_step(&self, name: &str, roles: Option<&BTreeSet<String>>, wanted: &[&str], what: &str, extra: &str) -> Step {
        let user = &self.user;
        let Some(roles) = roles else {
            return Step::ok(
                name,
                format!(
                    "not verified without writing: the instance does not show `{user}`'s roles (sys_user_has_role), and the hub does not write to find out; {what} needs one of {}",
                    wanted.join(", ")
                ),
            );
        };
        match wanted.iter().find(|w| roles.contains(**w)) {
            Some(r) => Step::ok(name, format!("`{user}` holds the {r} role, with which the base ACLs let it {what} (checked from its roles, nothing written)")),
            None => Step::failed(
                name,
                format!("`{user}` holds none of {} (its roles: {}), so it cannot {what}{extra}", wanted.join(", "), roles.iter().cloned().collect::<Vec<_>>().join(", ")),
                format!("give the integration user `{user}` the {} role at the instance", wanted[0]),
            ),
        }
    }

    async fn choices(&self, table: &str, element: &str) -> Result<Vec<(String, String)>, SupplierError> {
        let query = [
            ("sysparm_query", format!("name={table}^element={element}^inactive=false^language=en^ORDERBYsequence")),
            ("sysparm_fields", "value,label".into()),
            ("sysparm_limit", "500".into()),
        ];
        let rows = self.rows("ServiceNow choices", "/api/now/table/sys_choice", &query).await?;
        let mut seen = BTreeSet::new();
        Ok(rows
            .iter()
            .filter_map(|r| {
                let value = r.get("value").and_then(Value::as_str)?.to_string();
                let label = r.get("label").and_then(Value::as_str).unwrap_or(&value).to_string();
                seen.insert(value.clone()).then_some((value, label))
            })
            .collect())
    }
}

#[async_trait]
impl Setup for ServiceNowClient {
    async fn steps(&self) -> Vec<Step> {
        let user = self.user.clone();
        let mut steps = Vec::new();
        let who = [("sysparm_query", format!("user_name={user}")), ("sysparm_fields", "sys_id,user_name,active".into()), ("sysparm_limit", "1".into())];
        match self.rows("ServiceNow credentials", "/api/now/table/sys_user", &who).await {
            Ok(_) => steps.push(Step::ok("credentials", format!("ServiceNow accepted user `{user}`"))),
            Err(e) if forbidden(&e) => steps.push(Step::ok("credentials", format!("ServiceNow accepted user `{user}` (its own user record is hidden from it)"))),
            Err(SupplierError::Rejected { status: 401, message }) => {
                steps.push(Step::failed(
                    "credentials",
                    format!("ServiceNow refused user `{user}`: {message}"),
                    format!("check the user name `{user}` and the password the hub has for this supplier; the user must be active and not locked out at the instance"),
                ));
                return steps;
            }
            Err(e) => {
                steps.push(Step::failed("credentials", format!("could not log in as `{user}`: {e}"), "make the instance reachable (see the reachability step) and check again"));
                return steps;
            }
        }
        let roles = self.roles().await;

        let one = [("sysparm_limit", "1".to_string()), ("sysparm_fields", "sys_id".to_string())];
        steps.push(match self.rows("ServiceNow read incidents", "/api/now/table/incident", &one).await {
            Err(e) if forbidden(&e) => Step::failed(
                "read tickets",
                format!("ServiceNow refuses `{user}` reading incidents: {e}"),
                format!("give the integration user `{user}` the itil role at the instance"),
            ),
            Err(e) => Step::failed("read tickets", format!("reading incidents failed: {e}"), "check the instance's incident table and the user's access"),
            Ok(_) => match &roles {
                Some(r) if !READ_ROLES.iter().any(|w| r.contains(*w)) => {
                    self.role_step("read tickets", Some(r), READ_ROLES, "read every incident", ": the instance shows it only the incidents it opened")
                }
                _ => Step::ok("read tickets", format!("`{user}` reads the incident table")),
            },
        });
        steps.push(self.role_step("create tickets", roles.as_ref(), WRITE_ROLES, "create incidents", ""));
        steps.push(self.role_step("update tickets", roles.as_ref(), WRITE_ROLES, "update incidents", ""));
        steps.push(self.role_step("write public notes", roles.as_ref(), WRITE_ROLES, "write comments (public notes)", ""));
        steps.push(self.role_step(
            "write internal notes",
            roles.as_ref(),
            WORK_NOTES_ROLES,
            "write work notes (internal notes)",
            ": ServiceNow drops the work notes of its saves without an error",
        ));
        steps.push(self.role_step("read notes", roles.as_ref(), WORK_NOTES_ROLES, "read the journal (sys_journal_field) the hub reads notes from", ""));
        steps.push(self.role_step("upload files", roles.as_ref(), WRITE_ROLES, "attach files to incidents", ""));
        steps.push(match self.rows("ServiceNow attachment list", "/api/now/attachment", &[("sysparm_limit", "1".into())]).await {
            Ok(_) => Step::ok("download files", format!("`{user}` reads attachment metadata (files are fetched from /api/now/attachment/{{sys_id}}/file)")),
            Err(e) => {
                Step::failed("download files", format!("reading attachments failed: {e}"), format!("let the integration user `{user}` read sys_attachment (the itil role does)"))
            }
        });

        let wanted: Vec<&str> = READ_FIELDS.split(',').collect();
        let read = [("sysparm_limit", "1".to_string()), ("sysparm_fields", READ_FIELDS.to_string())];
        steps.push(match self.rows("ServiceNow read profile fields", "/api/now/table/incident", &read).await {
            Ok(rows) => match rows.first().and_then(Value::as_object) {
                None => Step::ok("read profile fields", "not verified: no incident is visible to read the profile's fields from"),
                Some(row) => {
                    let missing: Vec<&str> = wanted.iter().copied().filter(|f| !row.contains_key(*f)).collect();
                    if missing.is_empty() {
                        Step::ok("read profile fields", format!("incidents carry every field the profile maps ({})", wanted.join(", ")))
                    } else {
                        Step::failed(
                            "read profile fields",
                            format!("the instance leaves out {} on incident: the fields do not exist there or an ACL hides them from `{user}`", missing.join(", ")),
                            format!("let the integration user `{user}` read incident.{} (field ACLs), or map the instance's own fields", missing.join(", incident.")),
                        )
                    }
                }
            },
            Err(e) => Step::failed("read profile fields", format!("reading incident fields failed: {e}"), format!("let the integration user `{user}` read the incident table")),
        });
        steps
    }

    async fn discover(&self) -> Result<Discovery, SupplierError> {
        let p = profile();
        let o = &self.overrides;
        let mut d = Discovery::default();

        for (v, label) in self.choices("incident", "state").await? {
            let configured = o.states.get(&v).map(|s| s.as_str().to_string()).or_else(|| p.status.to_canonical.get(&v).cloned());
            d.statuses.push(propose(&v, &label, p.status.to_canonical.get(&v).map(String::as_str), status_from_label, configured));
        }
        let incident_states = d.statuses.len();
        for (v, label) in self.choices("change_request", "state").await? {
            let known = CHANGE_STATES.get(&v).map(String::as_str);
            let mut proposal = propose(&v, &label, known, change_state_from_label, known.map(str::to_string));
            proposal.native = format!("change_request.state={v}");
            d.statuses.push(proposal);
        }

        for (v, label) in self.choices("incident", "hold_reason").await? {
            let configured = o.hold_reasons.get(&v).map(|h| h.as_str().to_string()).or_else(|| p.hold_reason.to_canonical.get(&v).cloned());
            let mut proposal = propose(&v, &label, p.hold_reason.to_canonical.get(&v).map(String::as_str), hold_reason_from_label, configured);
            proposal.native = format!("hold_reason={v}");
            d.fields.push(proposal);
        }
        for (v, label) in self.choices("incident", "close_code").await? {
            let configured = o.resolutions.get(&v).cloned().or_else(|| p.resolution.to_canonical.get(&v).cloned());
            let mut proposal = propose(&v, &label, p.resolution.to_canonical.get(&v).map(String::as_str), resolution_from_label, configured);
            proposal.native = format!("close_code={v}");
            d.fields.push(proposal);
        }

        for element in ["impact", "urgency", "priority"] {
            let labels = match element {
                "impact" => &p.impact_labels,
                "urgency" => &p.urgency_labels,
                _ => &p.priority_labels,
            };
            let max = if element == "priority" { 5 } else { 3 };
            let known: BTreeSet<&String> = labels.values().collect();
            for (v, label) in self.choices("incident", element).await? {
                let reference = known.contains(&v).then_some(v.as_str());
                // A label such as "4 - Very Low" reads as its leading level, within the hub's scale.
                let from_label = |l: &str| -> Option<&'static str> {
                    let n: u8 = l.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
                    ["1", "2", "3", "4", "5"].get(usize::from(n.checked_sub(1)?)).copied().filter(|_| n <= max)
                };
                let mut proposal = propose(&v, &label, reference, |_| None, reference.map(str::to_string));
                if proposal.proposed.is_none() {
                    if let Some(level) = from_label(&label) {
                        proposal.proposed = Some(level.to_string());
                        proposal.why = format!("from its label \"{label}\"");
                    }
                }
                proposal.native = format!("{element}={v}");
                d.priorities.push(proposal);
            }
        }

        let strip = |prefix: &'static str| move |p: &Proposal| p.native.strip_prefix(prefix).unwrap_or(&p.native).to_string();
        let states: Vec<&Proposal> = d.statuses[..incident_states].iter().collect();
        let holds: Vec<&Proposal> = d.fields.iter().filter(|p| p.native.starts_with("hold_reason=")).collect();
        let codes: Vec<&Proposal> = d.fields.iter().filter(|p| p.native.starts_with("close_code=")).collect();
        let mut toml = [
            toml_table("suppliers.overrides.states", &states, strip("")),
            toml_table("suppliers.overrides.hold_reasons", &holds, strip("hold_reason=")),
            toml_table("suppliers.overrides.resolutions", &codes, strip("close_code=")),
        ]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
        let unknown_changes: Vec<String> = d.statuses[incident_states..]
            .iter()
            .filter(|p| p.configured.is_none())
            .map(|p| format!("# {} \"{}\": the hub has no per-supplier change state setting; proposed {}", p.native, p.label, p.proposed.as_deref().unwrap_or("nothing")))
            .collect();
        if !unknown_changes.is_empty() {
            if !toml.is_empty() {
                toml.push('\n');
            }
            toml.push_str(&unknown_changes.join("\n"));
            toml.push('\n');
        }
        d.toml = toml;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn labels_propose_canonical_values() {
        assert_eq!(status_from_label("Awaiting vendor"), Some("on_hold"));
        assert_eq!(status_from_label("Work in Progress"), Some("in_progress"));
        assert_eq!(status_from_label("Resolved - Pending Confirmation"), Some("resolved"));
        assert_eq!(status_from_label("Canceled"), Some("cancelled"));
        assert_eq!(status_from_label("Xyzzy"), None);
        assert_eq!(hold_reason_from_label("Awaiting Vendor Fix"), Some("awaiting_supplier"));
        assert_eq!(resolution_from_label("Solved Remotely (Work Around)"), Some("workaround"));
        assert_eq!(resolution_from_label("Not Solved (Too Costly)"), Some("not_fixed"));
        assert_eq!(resolution_from_label("Solved by Vendor Patch"), Some("fixed"));
        assert_eq!(change_state_from_label("Peer Review"), Some("review"));
    }

    #[test]
    fn proposals_prefer_the_reference_profile_then_the_label() {
        let p = propose("6", "Resolved", Some("resolved"), status_from_label, Some("resolved".into()));
        assert_eq!(p.why, "the reference profile maps 6 to resolved");
        let p = propose("10", "Awaiting vendor", None, status_from_label, None);
        assert_eq!((p.proposed.as_deref(), p.why.as_str()), (Some("on_hold"), "from its label \"Awaiting vendor\""));
        assert_eq!(propose("11", "Xyzzy", None, status_from_label, None).proposed, None);
    }

    /// The snippet, pasted under the supplier's entry, parses into its overrides.
    #[test]
    fn the_snippet_parses_back_into_the_supplier_overrides() {
        let states = [propose("10", "Awaiting \"vendor\"", None, status_from_label, None), propose("6", "Resolved", Some("resolved"), status_from_label, Some("resolved".into()))];
        let codes = [propose("close_code=Solved by Vendor Patch", "Solved by Vendor Patch", None, resolution_from_label, None)];
        let holds = [propose("hold_reason=7", "Awaiting Vendor Fix", None, hold_reason_from_label, None)];
        let snippet = [
            toml_table("suppliers.overrides.states", &states.iter().collect::<Vec<_>>(), |p| p.native.clone()),
            toml_table("suppliers.overrides.hold_reasons", &holds.iter().collect::<Vec<_>>(), |p| p.native.trim_start_matches("hold_reason=").to_string()),
            toml_table("suppliers.overrides.resolutions", &codes.iter().collect::<Vec<_>>(), |p| p.native.trim_start_matches("close_code=").to_string()),
        ]
        .join("\n");
        assert!(!snippet.contains("\"6\""), "a value the configuration maps is left out: {snippet}");
        let toml = format!("[[suppliers]]\nid = \"sn\"\nname = \"SN\"\nsystem = \"servicenow\"\nbase_url = \"http://127.0.0.1:1\"\n{snippet}");
        let settings = Settings::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let o = &settings.suppliers[0].overrides;
        assert_eq!(o.states.get("10").map(|s| s.as_str()), Some("on_hold"));
        assert_eq!(o.hold_reasons.get("7").map(|h| h.as_str()), Some("awaiting_supplier"));
        assert_eq!(o.resolutions.get("Solved by Vendor Patch").map(String::as_str), Some("fixed"));
    }
}
