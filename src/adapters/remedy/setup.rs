//! Checking and discovering a Remedy (AR System) server (see [`crate::adapters::setup`]).
//!
//! The check never writes to the server: what the integration user may do is read from its
//! permission groups, since the ITSM forms' permissions hang on them and a test write would
//! leave an incident (and its notifications) at a customer's server. What each step does there:
//! - `credentials`: `POST /api/jwt/login` with the configured user (and `authString`); a 401
//!   (AR error 623) means the user name or password is wrong; nothing else is checked then.
//! - the user's groups: the `User` form entry of the login (`Group List`, group ids), named
//!   through the `Group` form. A server that does not show them leaves the write steps "not
//!   verified without writing" (ok, said so).
//! - `read tickets`: one entry of the incident interface; `read notes`: one `HPD:WorkLog` entry
//!   (a refusal fails either, naming the group to add).
//! - `create tickets`: Incident Master, Incident User or Incident Submitter (or Administrator);
//!   `update tickets`, `write public notes`, `write internal notes` (work logs of both view
//!   accesses) and `upload files` (work log attachments): Incident Master or Incident User.
//! - `download files`: a work log read, and the attachment field the hub uses on `HPD:WorkLog`.
//! - `read profile fields`: the field metadata (`GET /api/arsys/v1.0/fields/{form}`) of the
//!   incident interface, the create form and the work log form, against the fields the
//!   profile reads and writes there; a missing one is named with its form.
//!
//! Discovery reads the selection values (`limit.selection_values`) of `Status`,
//! `Status_Reason`, `Impact` and `Urgency` on the incident interface. `statuses` holds the
//! statuses (native = the label, as REST carries it); `fields` the status reasons
//! (`Status_Reason=<label>`), proposed as a hold reason or a resolution code (the two
//! vocabularies do not overlap); `priorities` impact and urgency (`Impact=<label>`...). The
//! proposal is the shipped profile's reading, otherwise the label's; `configured` is what the
//! profile with this supplier's `[suppliers.remedy.profile]` maps it to. The TOML snippet adds
//! what the configuration does not know to `[suppliers.remedy.profile.*.to_canonical]`.

use super::client::{values_param, READ_FIELDS, WORKLOG_FIELDS};
use super::mapping::{default_profile, percent_encode, WORKLOG_FILE_FIELDS};
use super::RemedyClient;
use crate::adapters::servicenow::setup::{hold_reason_from_label, propose, resolution_from_label, status_from_label, toml_table};
use crate::adapters::setup::{Discovery, Proposal, Setup, Step};
use crate::adapters::SupplierError;
use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Groups whose members create incidents.
const CREATE_GROUPS: &[&str] = &["Incident Master", "Incident User", "Incident Submitter", "Administrator"];
/// Groups whose members modify incidents and file work logs.
const MODIFY_GROUPS: &[&str] = &["Incident Master", "Incident User", "Administrator"];
/// Groups whose members read incidents and work logs.
const READ_GROUPS: &[&str] = &["Incident Master", "Incident User", "Incident Viewer", "Incident Submitter", "Administrator"];

/// A form's fields as its metadata lists them: name -> selection values (empty for a field
/// that is not a selection).
type FormFields = BTreeMap<String, Vec<String>>;

/// The selection values of one field of a metadata answer, whatever spelling the server uses.
fn selection_values(field: &Value) -> Vec<String> {
    let limit = field.get("limit").unwrap_or(&Value::Null);
    let list = ["selection_values", "selectionValues", "enum_values", "enumValues"].iter().find_map(|k| limit.get(*k).or_else(|| field.get(*k))).and_then(Value::as_array);
    list.map(|l| {
        l.iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                other => ["name", "value", "label"].iter().find_map(|k| other.get(*k).and_then(Value::as_str)).map(str::to_string),
            })
            .collect()
    })
    .unwrap_or_default()
}

fn is_refusal(e: &SupplierError) -> bool {
    matches!(e, SupplierError::Rejected { status: 401..=403, .. })
}

impl RemedyClient {
    /// `GET /api/arsys/v1.0/fields/{form}`: the form's fields and selection values.
    async fn form_fields(&self, form: &str) -> Result<FormFields, SupplierError> {
        let what = "Remedy field metadata";
        let url = format!("{}/api/arsys/v1.0/fields/{}", self.base, percent_encode(form));
        let v = self.call(what, Method::GET, &url, &[("field_criteria", "NAME,DATATYPE,LIMIT".into())], None).await?.json(what)?;
        let list = v.as_array().or_else(|| ["fields", "entries"].iter().find_map(|k| v.get(*k)).and_then(Value::as_array)).cloned().unwrap_or_default();
        Ok(list.iter().filter_map(|f| Some((f.get("name").and_then(Value::as_str)?.to_string(), selection_values(f)))).collect())
    }

    /// One entry of `form` (an empty answer included), for checking read access.
    async fn read_one(&self, what: &str, form: &str, field: &str) -> Result<(), SupplierError> {
        self.call(what, Method::GET, &self.form_url(form), &[("fields", values_param(&[field])), ("limit", "1".into())], None).await.map(|_| ())
    }

    /// The names of the integration user's permission groups, when the server shows them.
    async fn groups(&self) -> Option<BTreeSet<String>> {
        let q = format!("'Login Name' = {}", super::client::ar_quote(&self.user));
        let (users, _) = self.query_page("Remedy user groups", "User", &q, &["Login Name", "Group List"], "Login Name.asc", 0, 1).await.ok()?;
        let list = users.first()?.pointer("/values/Group List").and_then(Value::as_str)?.to_string();
        let members: Vec<&str> = list.split(';').map(str::trim).filter(|g| !g.is_empty()).collect();
        let answer = self
            .call("Remedy groups", Method::GET, &self.form_url("Group"), &[("fields", values_param(&["Group ID", "Group Name"])), ("limit", "2000".into())], None)
            .await
            .ok()?;
        let groups = answer.json("Remedy groups").ok()?;
        let names: BTreeMap<String, String> = groups
            .get("entries")
            .and_then(Value::as_array)
            .map(|e| {
                e.iter()
                    .filter_map(|g| {
                        let v = g.get("values")?;
                        let id = match v.get("Group ID")? {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        Some((id, v.get("Group Name")?.as_str()?.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The list holds group ids; a name stands for itself.
        let named: BTreeSet<String> = members.iter().map(|m| names.get(*m).cloned().unwrap_or_else(|| m.to_string())).collect();
        (!named.is_empty()).then_some(named)
    }

    fn group_step(&self, name: &str, groups: Option<&BTreeSet<String>>, wanted: &[&str], what: &str) -> Step {
        let user = &self.user;
        let Some(groups) = groups else {
            return Step::ok(
                name,
                format!(
                    "not verified without writing: the server does not show `{user}`'s groups (User form), and the hub does not write to find out; {what} needs one of {}",
                    wanted.join(", ")
                ),
            );
        };
        match wanted.iter().find(|w| groups.contains(**w)) {
            Some(g) => Step::ok(name, format!("`{user}` is in the {g} group, with which ITSM lets it {what} (checked from its groups, nothing written)")),
            None => Step::failed(
                name,
                format!("`{user}` is in none of {} (its groups: {}), so it cannot {what}", wanted.join(", "), groups.iter().cloned().collect::<Vec<_>>().join(", ")),
                format!("add the integration user `{user}` to the {} group at the Remedy server", wanted[0]),
            ),
        }
    }

    /// A read step: ok, or failed naming the group that reads `form`.
    async fn read_step(&self, name: &str, form: &str, field: &str) -> Step {
        let user = &self.user;
        match self.read_one(name, form, field).await {
            Ok(()) => Step::ok(name, format!("`{user}` reads {form}")),
            Err(e) if is_refusal(&e) => Step::failed(
                name,
                format!("Remedy refuses `{user}` reading {form}: {e}"),
                format!("add the integration user `{user}` to the Incident Viewer (or Incident Master) group"),
            ),
            Err(e) => Step::failed(name, format!("reading {form} failed: {e}"), format!("check that the form {form} exists on the server and that `{user}` may read it")),
        }
    }
}

#[async_trait]
impl Setup for RemedyClient {
    async fn steps(&self) -> Vec<Step> {
        let user = self.user.clone();
        let mut steps = Vec::new();
        match self.login().await {
            Ok(_) => steps.push(Step::ok("credentials", format!("Remedy issued a token to `{user}` (POST /api/jwt/login)"))),
            Err(SupplierError::Rejected { status: 401, message }) => {
                steps.push(Step::failed(
                    "credentials",
                    format!("Remedy refused user `{user}` at login: {message}"),
                    format!("check the user name `{user}` and the password the hub has for this supplier (and `auth_string`, if the server needs one)"),
                ));
                return steps;
            }
            Err(e) => {
                steps.push(Step::failed(
                    "credentials",
                    format!("could not log in as `{user}`: {e}"),
                    "make the server's REST API reachable (see the reachability step) and check again",
                ));
                return steps;
            }
        }
        let groups = self.groups().await;
        let forms = &self.profile.forms;
        let read = self.read_step("read tickets", &forms.incident, "Entry ID").await;
        steps.push(match (&read, &groups) {
            (Step { ok: true, .. }, Some(g)) if !READ_GROUPS.iter().any(|w| g.contains(*w)) => self.group_step("read tickets", Some(g), READ_GROUPS, "read incidents"),
            _ => read,
        });
        steps.push(self.group_step("create tickets", groups.as_ref(), CREATE_GROUPS, &format!("create incidents on {}", forms.create)));
        steps.push(self.group_step("update tickets", groups.as_ref(), MODIFY_GROUPS, &format!("modify incidents on {}", forms.incident)));
        steps.push(self.group_step("write public notes", groups.as_ref(), MODIFY_GROUPS, &format!("file Public work logs on {}", forms.worklog)));
        steps.push(self.group_step("write internal notes", groups.as_ref(), MODIFY_GROUPS, &format!("file Internal work logs on {}", forms.worklog)));
        steps.push(self.read_step("read notes", &forms.worklog, "Work Log ID").await);
        steps.push(self.group_step("upload files", groups.as_ref(), MODIFY_GROUPS, "attach files to work logs"));

        let metadata = [
            (&forms.incident, self.form_fields(&forms.incident).await),
            (&forms.create, self.form_fields(&forms.create).await),
            (&forms.worklog, self.form_fields(&forms.worklog).await),
        ];
        let known = |form: &str| metadata.iter().find(|(f, _)| f.as_str() == form).and_then(|(_, m)| m.as_ref().ok());
        let file_field = WORKLOG_FILE_FIELDS[0];
        steps.push(match (self.read_one("download files", &forms.worklog, "Work Log ID").await, known(&forms.worklog)) {
            (Err(e), _) => Step::failed(
                "download files",
                format!("reading {} failed: {e}", forms.worklog),
                format!("add the integration user `{user}` to the Incident Viewer (or Incident Master) group"),
            ),
            (Ok(()), Some(fields)) if !fields.contains_key(file_field) => Step::failed(
                "download files",
                format!("{} has no attachment field `{file_field}`, where the hub files and finds files", forms.worklog),
                "restore the work log attachment fields (z2AF Work Log01..03) on the server",
            ),
            (Ok(()), _) => Step::ok("download files", format!("`{user}` reads {} and its attachment field `{file_field}`", forms.worklog)),
        });

        let mut wanted: Vec<(&str, String)> = Vec::new();
        for f in &self.profile.fields {
            wanted.push((&forms.incident, f.read.clone()));
            wanted.push((&forms.create, f.create.clone()));
        }
        wanted.extend(READ_FIELDS.iter().map(|f| (forms.incident.as_str(), f.to_string())));
        wanted.extend(WORKLOG_FIELDS.iter().map(|f| (forms.worklog.as_str(), f.to_string())));
        let unreadable: Vec<String> = metadata.iter().filter_map(|(f, m)| m.as_ref().err().map(|e| format!("{f} ({e})"))).collect();
        let mut missing: Vec<String> =
            wanted.iter().filter(|(form, field)| known(form).is_some_and(|m| !m.contains_key(field))).map(|(form, field)| format!("{form}: {field}")).collect();
        missing.dedup();
        steps.push(if !missing.is_empty() {
            Step::failed(
                "read profile fields",
                format!("fields the profile uses are not on the server's forms: {}", missing.join(", ")),
                "map the server's own field names in `[suppliers.remedy.profile]`, or restore the fields on the forms",
            )
        } else if !unreadable.is_empty() {
            Step::ok("read profile fields", format!("not verified: the field metadata of {} could not be read", unreadable.join(", ")))
        } else {
            Step::ok("read profile fields", format!("{}, {} and {} carry every field the profile uses", forms.incident, forms.create, forms.worklog))
        });
        steps
    }

    async fn discover(&self) -> Result<Discovery, SupplierError> {
        let reference = default_profile();
        let p = &self.profile;
        let fields = self.form_fields(&p.forms.incident).await?;
        let values = |name: &str| fields.get(name).cloned().unwrap_or_default();
        let mut d = Discovery::default();

        for s in values("Status") {
            d.statuses.push(propose(&s, &s, reference.status.to_canonical.get(&s).map(String::as_str), status_from_label, p.status.to_canonical.get(&s).cloned()));
        }
        for r in values("Status_Reason") {
            let known = reference.hold_reason.to_canonical.get(&r).or_else(|| reference.resolution.to_canonical.get(&r)).map(String::as_str);
            let configured = p.hold_reason.to_canonical.get(&r).or_else(|| p.resolution.to_canonical.get(&r)).cloned();
            let from_label: fn(&str) -> Option<&'static str> = |l| hold_reason_from_label(l).or_else(|| resolution_from_label(l));
            let mut proposal = propose(&r, &r, known, from_label, configured);
            proposal.native = format!("Status_Reason={r}");
            d.fields.push(proposal);
        }
        for (name, reference_scale, scale) in [("Impact", &reference.impact, &p.impact), ("Urgency", &reference.urgency, &p.urgency)] {
            for v in values(name) {
                let known = reference_scale.to_canonical.get(&v).map(|n| n.to_string());
                let configured = scale.to_canonical.get(&v).map(|n| n.to_string());
                let mut proposal = propose(&v, &v, known.as_deref(), |_| None, configured);
                proposal.native = format!("{name}={v}");
                d.priorities.push(proposal);
            }
        }

        let reason = |p: &Proposal| p.native.trim_start_matches("Status_Reason=").to_string();
        let holds: Vec<&Proposal> = d.fields.iter().filter(|f| f.proposed.as_deref().is_some_and(|v| v.parse::<crate::domain::HoldReason>().is_ok())).collect();
        let resolutions: Vec<&Proposal> = d.fields.iter().filter(|f| f.proposed.as_deref().is_some_and(|v| v.parse::<crate::domain::HoldReason>().is_err())).collect();
        let statuses: Vec<&Proposal> = d.statuses.iter().collect();
        d.toml = [
            toml_table("suppliers.remedy.profile.status.to_canonical", &statuses, |p| p.native.clone()),
            toml_table("suppliers.remedy.profile.hold_reason.to_canonical", &holds, reason),
            toml_table("suppliers.remedy.profile.resolution.to_canonical", &resolutions, reason),
        ]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use serde_json::json;

    #[test]
    fn selection_values_read_in_every_spelling() {
        let f = json!({"name": "Status", "limit": {"selection_values": [{"id": 0, "name": "New"}, {"id": 1000, "name": "Assigned"}]}});
        assert_eq!(selection_values(&f), ["New", "Assigned"]);
        assert_eq!(selection_values(&json!({"limit": {"enumValues": ["A", "B"]}})), ["A", "B"]);
        assert!(selection_values(&json!({"name": "Description"})).is_empty());
    }

    /// The snippet, pasted after the supplier's entry, parses and makes the instance's mapping
    /// read the new values.
    #[test]
    fn the_snippet_parses_back_into_the_remedy_profile() {
        let status = propose("Awaiting Vendor", "Awaiting Vendor", None, status_from_label, None);
        let hold = propose("Status_Reason=Vendor Escalation", "Vendor Escalation", None, hold_reason_from_label, None);
        let reason = |p: &Proposal| p.native.trim_start_matches("Status_Reason=").to_string();
        let snippet = [
            toml_table("suppliers.remedy.profile.status.to_canonical", &[&status], |p| p.native.clone()),
            toml_table("suppliers.remedy.profile.hold_reason.to_canonical", &[&hold], reason),
        ]
        .join("\n");
        let toml =
            format!("[[suppliers]]\nid = \"bmc\"\nname = \"BMC\"\nsystem = \"remedy\"\nbase_url = \"http://127.0.0.1:1\"\n[suppliers.remedy]\nvendor_name = \"Hub\"\n{snippet}");
        let settings = Settings::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let mapping = crate::adapters::remedy::Remedy::for_instance(&settings.suppliers[0].remedy).expect("the profile with the snippet is coherent");
        let fields: BTreeMap<String, String> =
            [("Status", "Awaiting Vendor"), ("Status_Reason", "Vendor Escalation")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let c = crate::adapters::Mapping::to_canonical(&mapping, &fields, false);
        assert_eq!(c.status.map(|s| s.as_str()), Some("on_hold"));
        assert_eq!(c.hold_reason.map(|h| h.as_str()), Some("awaiting_supplier"));
        assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    }
}
