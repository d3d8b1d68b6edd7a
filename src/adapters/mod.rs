//! Supplier systems: one module per system, each translating between the system's native
//! records and the canonical model (its mapping profile lives in `adapters/<system>/` at the
//! repository root) and holding the client for the system's API.
//!
//! The sync stages see a system only through [`Mapping`] (pure translation) and [`Client`]
//! (the supplier's API), so adding a system means adding a module, not touching the sync.
//! Every client shares [`http`] (retries, rate governor, answer size cap) and [`egress`] (where
//! a supplier's credentials and the hub's requests may go).

pub mod change;
pub mod egress;
pub mod http;
pub mod jira;
#[cfg(test)]
mod proptests;
pub mod remedy;
pub mod servicenow;
pub mod setup;
pub mod tmf621;

use crate::domain::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Why a supplier call failed, sorted by what the caller should do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SupplierError {
    /// Worth retrying: rate limiting, a server error, a timeout, a dropped connection.
    /// `unsent`: the supplier certainly did nothing with the request (no connection was made,
    /// or it was refused before any work, as a 429 is); otherwise a write may have happened.
    #[error("{message}")]
    Transient { message: String, retry_after: Option<Duration>, unsent: bool },
    /// The supplier refused the request; retrying the same request will not help.
    #[error("{message}")]
    Rejected { status: u16, message: String },
    /// The supplier answered something this adapter cannot read.
    #[error("{0}")]
    Protocol(String),
}

impl SupplierError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SupplierError::Transient { .. })
    }

    /// A transient failure after which the supplier may have made the write: it may still be
    /// making it (a timeout, a dropped answer, a 5xx in front of a busy server).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, SupplierError::Transient { unsent: false, .. })
    }
}

/// A native payload that cannot be mapped at all (not a record of this system).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MapError(pub String);

/// The canonical reading of a supplier ticket's field values: what the hub would record, plus
/// the native values it could not map (kept on the leg, never guessed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Canonical {
    pub status: Option<Status>,
    pub hold_reason: Option<HoldReason>,
    pub impact: Option<Impact>,
    pub urgency: Option<Urgency>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub ci: Option<String>,
    pub resolution: Option<Resolution>,
    /// The supplier refuses the ticket or hands it back (not theirs, wrong supplier), with its
    /// reason: the hub takes the leg out of play and re-routes.
    pub handed_back: Option<String>,
    pub unmapped: BTreeMap<String, String>,
}

/// A supplier ticket reduced to what the sync needs, whatever system and shape it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeRecord {
    pub native_id: String,
    pub native_number: Option<String>,
    /// The hub reference the supplier holds (its correlation / external id field).
    pub correlation: Option<String>,
    /// Orders versions of the record (a modification counter, or an update time in ms): an
    /// older delivery than the one applied changes nothing.
    pub revision: Option<i64>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The synced fields, in the system's stored values, `""` when empty.
    pub fields: BTreeMap<String, String>,
    /// Someone at the supplier owns the ticket (turns a "new" ticket into `assigned`).
    pub assigned: bool,
    /// The native status, as shown on the leg.
    pub native_status: Option<String>,
}

/// A work note or comment as the supplier holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeNote {
    pub native_id: String,
    /// The supplier ticket it belongs to, when the payload says (`""` otherwise).
    pub ticket_id: String,
    pub visibility: Visibility,
    pub author: String,
    pub text: String,
    pub created_at: Option<DateTime<Utc>>,
}

/// A file as a supplier system lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NativeAttachment {
    pub native_id: String,
    pub file_name: String,
    pub content_type: String,
    pub size: Option<i64>,
    /// SHA-256 of the content when the system says it (ServiceNow's `hash`).
    pub sha256: Option<String>,
    /// Where the content is, when the listing says: a URL, or an RFC 2397 `data:` URL for
    /// content the listing carries inline (TMF621's attachment values).
    pub location: Option<String>,
}

/// The content of a file, chunk by chunk.
pub type ContentStream = futures_util::stream::BoxStream<'static, std::io::Result<Vec<u8>>>;

/// Makes the content stream of one upload attempt (a retry needs a fresh stream).
pub type ContentFactory = Arc<dyn Fn() -> ContentStream + Send + Sync>;

/// A file to send to a supplier.
#[derive(Clone)]
pub struct OutgoingFile {
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub content: ContentFactory,
}

impl OutgoingFile {
    /// A fresh request body streaming the content.
    pub fn body(&self) -> reqwest::Body {
        reqwest::Body::wrap_stream((self.content)())
    }

    /// Whether `listed`, a file the supplier lists, is what a write of this file left there:
    /// the same name, and the same size where the system gives one.
    pub fn left_by_write(&self, listed: &NativeAttachment) -> bool {
        listed.file_name == self.file_name && listed.size.is_none_or(|s| s == self.size)
    }
}

/// Translation between one system's payloads and the canonical model. Pure: no I/O.
pub trait Mapping: Send + Sync {
    fn system(&self) -> &'static str;
    /// Reads a ticket from any payload shape the system produces (API record, webhook body).
    fn parse_record(&self, payload: &Value) -> Result<NativeRecord, MapError>;
    /// Reads the notes a payload carries (journal rows, comments, work logs).
    fn parse_notes(&self, payload: &Value) -> Vec<NativeNote>;
    /// The files a notes payload ([`Client::notes`]) lists, where the system lists them there
    /// (Remedy's work logs, a TMF621 ticket), so the sweep needs no second read to find them;
    /// `None` where it does not.
    fn parse_attachments(&self, payload: &Value) -> Option<Vec<NativeAttachment>> {
        let _ = payload;
        None
    }
    /// The canonical reading of native field values, with what could not be mapped.
    fn to_canonical(&self, fields: &BTreeMap<String, String>, assigned: bool) -> Canonical;
    /// The native values the hub wants the supplier ticket to hold.
    #[allow(clippy::wrong_self_convention)] // the instance's profile does the conversion
    fn from_canonical(&self, incident: &Incident) -> BTreeMap<String, String>;
    /// What to push given what the supplier holds (`baseline`, in native values). Systems whose
    /// reading is many-to-one (Remedy's four impact levels, its many status reasons per hold
    /// reason) keep a native value that already means what the hub wants instead of rewriting
    /// it to their own spelling; the default is [`Mapping::from_canonical`].
    fn desired(&self, incident: &Incident, baseline: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let _ = baseline;
        self.from_canonical(incident)
    }
    /// What `siam-hub map` prints for a native payload.
    fn canonical_document(&self, payload: &Value) -> Result<Value, MapError>;
    /// What `siam-hub map --reverse` prints for a canonical incident.
    fn native_document(&self, canonical: &Value) -> Result<Value, MapError>;
}

/// A supplier system's API, as the dispatcher and the sweep use it.
#[async_trait]
pub trait Client: Send + Sync {
    /// Every ticket carrying `reference` in the supplier's correlation field, newest first where
    /// the system can say. A supplier given an incident it held before (handed back, re-routed
    /// away) holds several: the caller adopts only one that no earlier leg held.
    async fn find_by_correlation(&self, reference: &str) -> Result<Vec<Value>, SupplierError>;
    /// Creates the supplier ticket; returns the created record. `known`: the native ids of the
    /// tickets already carrying the reference (earlier legs' tickets). A retry after an attempt
    /// whose answer was lost adopts the ticket that attempt made, never one of these.
    async fn create(&self, incident: &Incident, known: &[String]) -> Result<Value, SupplierError>;
    /// Writes changed synced fields (native names and values); returns the record after.
    async fn update(&self, native_id: &str, changes: &BTreeMap<String, String>) -> Result<Value, SupplierError>;
    /// Adds a note; returns the record after, if the system answers with one.
    async fn add_note(&self, native_id: &str, visibility: Visibility, text: &str) -> Result<Option<Value>, SupplierError>;
    /// One page of the hub's tickets updated at or after `since`, oldest first (tickets updated
    /// at the same time in a stable order, where the system can sort by a second key).
    async fn updated_since(&self, since: DateTime<Utc>, offset: usize, limit: usize) -> Result<Vec<Value>, SupplierError>;
    /// The notes of one ticket, as a payload `Mapping::parse_notes` reads.
    async fn notes(&self, native_id: &str) -> Result<Value, SupplierError>;
    /// A link a person can open.
    fn ticket_url(&self, native_id: &str) -> String;

    /// Attaches a file to the supplier ticket; returns the supplier's id of the file.
    async fn upload_attachment(&self, _native_id: &str, _file: &OutgoingFile) -> Result<String, SupplierError> {
        Err(SupplierError::Rejected { status: 0, message: "this supplier system takes no attachments through the hub".into() })
    }

    /// The files attached to the supplier ticket.
    async fn list_attachments(&self, _native_id: &str) -> Result<Vec<NativeAttachment>, SupplierError> {
        Ok(vec![])
    }

    /// The supplier's id of the copy of `file` an earlier upload left on the ticket, if any
    /// (not one of `before`, the files it held before that upload).
    async fn find_uploaded(&self, native_id: &str, file: &OutgoingFile, before: &[String]) -> Result<Option<String>, SupplierError> {
        Ok(self.list_attachments(native_id).await?.into_iter().find(|f| !before.contains(&f.native_id) && file.left_by_write(f)).map(|f| f.native_id))
    }

    /// Opens the content of one supplier file as a stream.
    async fn download_attachment(&self, _file: &NativeAttachment) -> Result<reqwest::Response, SupplierError> {
        Err(SupplierError::Rejected { status: 0, message: "this supplier system gives no attachments through the hub".into() })
    }

    /// The ticket as it is now, for systems whose notifications may carry only part of it
    /// (`None`: the system's notifications are always whole, or it cannot be read by id).
    async fn fetch(&self, _native_id: &str) -> Result<Option<Value>, SupplierError> {
        Ok(None)
    }

    /// The system's change records, if it takes changes through the hub (`None`: a change leg
    /// at this supplier is worked through the hub's API only).
    fn changes(&self) -> Option<&dyn change::ChangeClient> {
        None
    }
}

/// The first of `candidates` (tickets carrying a hub reference) whose native id, read by `id_of`,
/// is not among `known`: the ticket an unanswered create attempt made.
pub fn first_unknown(candidates: Vec<Value>, known: &[String], id_of: impl Fn(&Value) -> Option<String>) -> Option<Value> {
    candidates.into_iter().find(|c| id_of(c).is_some_and(|id| !known.contains(&id)))
}

/// The incident as a supplier instance that derives priority from impact x urgency by its own
/// matrix should hold it: with the impact and urgency, nearest to the record's, that give the
/// record's priority there (unchanged without a matrix, or when the record's pair already does).
pub fn aligned_priority<'a>(matrix: Option<&PriorityMatrix>, incident: &'a Incident) -> std::borrow::Cow<'a, Incident> {
    use std::borrow::Cow;
    let Some(m) = matrix else { return Cow::Borrowed(incident) };
    match m.pair_for(incident.priority, incident.impact, incident.urgency) {
        Some((impact, urgency)) if (impact, urgency) != (incident.impact, incident.urgency) => {
            let mut i = incident.clone();
            (i.impact, i.urgency) = (impact, urgency);
            Cow::Owned(i)
        }
        _ => Cow::Borrowed(incident),
    }
}

/// The mapping of a supported system.
pub fn mapping_for(system: &str) -> Option<Arc<dyn Mapping>> {
    match system {
        "servicenow" => Some(Arc::new(servicenow::ServiceNow::default())),
        // The default instance (v4, standard); `mapping_for_supplier` applies an instance's settings.
        "tmf621" => Some(Arc::new(tmf621::Tmf621::default())),
        // The reference site of the profile; configured instances add their own ids in `connect`.
        "jira" => Some(Arc::new(jira::Jira::default())),
        "remedy" => Some(Arc::new(remedy::Remedy::default())),
        _ => None,
    }
}

/// The mapping of one configured supplier instance: its system's profile with the instance's
/// own settings (overrides, version, flavour, vocabularies).
pub fn mapping_for_supplier(settings: &crate::config::SupplierSettings) -> Option<Arc<dyn Mapping>> {
    match settings.system.as_str() {
        "servicenow" => Some(Arc::new(servicenow::ServiceNow::with_overrides(settings.overrides.clone()))),
        "tmf621" => Some(Arc::new(tmf621::Tmf621::new(&settings.tmf621))),
        other => mapping_for(other),
    }
}

/// The systems `mapping_for` knows.
pub const SYSTEMS: &[&str] = &["servicenow", "jira", "remedy", "tmf621"];

/// A supplier instance's mapping and API client.
pub type Connection = (Arc<dyn Mapping>, Arc<dyn Client>);

/// What the hub can check and discover of one configured supplier instance (see [`setup`]):
/// its API client, built as [`connect`] builds it, with the HTTP it talks through.
pub fn setup_for(
    settings: &crate::config::SupplierSettings,
    egress: &crate::config::EgressSettings,
    password: secrecy::SecretString,
) -> Result<(Arc<dyn setup::Setup>, http::SupplierHttp), String> {
    let built = build(settings, egress, password)?;
    Ok((built.setup, built.http))
}

/// Builds the mapping and the API client of one configured supplier instance, under the hub's
/// egress policy.
pub fn connect(settings: &crate::config::SupplierSettings, egress: &crate::config::EgressSettings, password: secrecy::SecretString) -> Result<Connection, String> {
    connect_logged(settings, egress, password).map(|(connection, _)| connection)
}

/// [`connect`], with the log of how the client's calls go (the supplier's health).
pub fn connect_logged(
    settings: &crate::config::SupplierSettings,
    egress: &crate::config::EgressSettings,
    password: secrecy::SecretString,
) -> Result<(Connection, Arc<http::CallLog>), String> {
    let built = build(settings, egress, password)?;
    Ok(((built.mapping, built.client), built.http.calls()))
}

/// One supplier instance's mapping and client, the client seen both as the sync's [`Client`]
/// and as the [`setup::Setup`] that checks and discovers the instance.
struct Built {
    mapping: Arc<dyn Mapping>,
    client: Arc<dyn Client>,
    setup: Arc<dyn setup::Setup>,
    http: http::SupplierHttp,
}

/// The one place a supplier instance's mapping and client are made from its settings.
fn build(settings: &crate::config::SupplierSettings, egress: &crate::config::EgressSettings, password: secrecy::SecretString) -> Result<Built, String> {
    fn both<C: Client + setup::Setup + 'static>(c: C) -> (Arc<dyn Client>, Arc<dyn setup::Setup>) {
        let c = Arc::new(c);
        (c.clone(), c)
    }
    let http = http::SupplierHttp::for_supplier(settings, egress)?;
    let invalid = |e: String| format!("supplier `{}`: {e}", settings.id);
    let (mapping, (client, setup)): (Arc<dyn Mapping>, _) = match settings.system.as_str() {
        "servicenow" => (
            Arc::new(servicenow::ServiceNow::with_overrides(settings.overrides.clone())),
            both(
                servicenow::ServiceNowClient::new(http.clone(), &settings.base_url, &settings.username, password)
                    .with_priority_matrix(settings.overrides.priority_matrix.clone())
                    .with_overrides(settings.overrides.clone()),
            ),
        ),
        "tmf621" => {
            (Arc::new(tmf621::Tmf621::new(&settings.tmf621)), both(tmf621::Tmf621Client::new(http.clone(), &settings.base_url, &settings.tmf621, &settings.username, password)))
        }
        "jira" => {
            let config = Arc::new(jira::JiraConfig::from_settings(&settings.jira).map_err(|e| invalid(e.to_string()))?);
            let client =
                jira::JiraClient::new(http.clone(), &settings.base_url, &settings.username, password, config.clone(), &settings.jira).map_err(|e| invalid(e.to_string()))?;
            (Arc::new(jira::Jira { config }), both(client))
        }
        "remedy" => {
            let mapping = Arc::new(remedy::Remedy::for_instance(&settings.remedy).map_err(|e| invalid(e.to_string()))?);
            let client = remedy::RemedyClient::new(http.clone(), &settings.base_url, &settings.username, password, settings.remedy.clone(), mapping.profile.clone());
            (mapping, both(client))
        }
        other => return Err(invalid(format!("system `{other}` has no adapter"))),
    };
    Ok(Built { mapping, client, setup, http })
}
