//! Stateful simulator of BMC Helix / Remedy ITSM's AR System REST API (incidents, change
//! requests and their work logs), used by integration tests and by demo mode.
//!
//! It owns an in-memory `HPD:Help Desk` (read through `HPD:IncidentInterface` or the base form),
//! the create interface `HPD:IncidentInterface_Create`, and `HPD:WorkLog`, and reproduces the
//! traps of the real API (see `reference/suppliers/remedy.md`):
//! - `POST /api/jwt/login` takes form-encoded credentials and answers a *plain-text* JWT; every
//!   other call needs `Authorization: AR-JWT <token>`. Tokens expire (configurable lifetime) and
//!   can be invalidated on demand; an expired or unknown token gets 401 with AR error 623.
//! - The create form has its own field names (`Detailed_Decription`, `Service_Type`,
//!   `First_Name`, `Login_ID`) and runs the create workflow only with `z1D_Action: "CREATE"`
//!   (without it the POST "succeeds" and no incident exists). Names of the other form are
//!   refused, as are unknown names and selection labels outside the field's list.
//! - It answers 201 with a `Location` of the *create form's* entry and no body, unless
//!   `?fields=values(...)` asks for some create-form values (`Incident_Entry_ID`...).
//! - Reads use the read names (`Detailed Decription`, `Service Type`...), nulls are `null`,
//!   numbers are numbers; `Incident Number`, `Entry ID` and the interface's `Request ID`
//!   (`X|X`) are three different things, the first two both INC-prefixed and different.
//! - Dates are `2022-06-21T11:08:05.000+0000`, in whole seconds.
//! - Queries take AR qualifications (`'Field' = "v"`, `!=`, `<`, `<=`, `>`, `>=`, `LIKE`, `AND`,
//!   `OR`, `NOT`, parentheses, `$NULL$`), `fields=values(...)`, `sort=Field.asc|desc`,
//!   `offset`/`limit`, and answer `{"entries", "_links": {"self", "next"}}`.
//! - `PUT` changes only the fields given and answers 204; a changed `Status` clears a
//!   `Status_Reason` not given with it; Pending and Resolved need a reason; `Priority` and
//!   `Priority Weight` follow impact and urgency by the default weight table.
//! - Work logs are separate records whose `View Access` defaults to Public, so a client that
//!   forgets it publishes its internal notes. Files live in a work log's attachment fields
//!   (`z2AF Work Log01..03`): uploaded as multipart/form-data with an `entry` JSON part and an
//!   `attach-<field>` part per file, read back as `{"name", "sizeBytes", "href"}`, downloaded
//!   from `.../entry/HPD:WorkLog/{id}/attach/{field}`. A new work log does not touch its incident's
//!   `Last Modified Date` (a poll of incidents alone would miss it).
//! - Errors are JSON arrays of `{messageType, messageText, messageAppendedText,
//!   messageNumber}`: 302 entry not found, 303 no such form, 623 authentication failed, 326
//!   required field blank, 306 value outside the field's limits. Numbers the reference does not
//!   give (unknown field names, bad qualifications, ITSM workflow refusals) are the
//!   simulator's own stand-ins and are marked as such.
//! - Changes live in `CHG:Infrastructure Change`, created on `CHG:ChangeInterface_Create` (whose
//!   status is `Status` and whose answer spells the business id `Infrastructure Change Id`) and
//!   read and updated on `CHG:ChangeInterface` (`Change Request Status`, `Infrastructure Change
//!   ID`). A change starts in Draft; its `Request ID` (the entry id) and `Infrastructure Change
//!   ID` are CRQ numbers. The interface refuses create names and ignores set-once fields
//!   (`Change Type`, the requester, `Vendor Ticket Number`); dates are stored in AR's form; a
//!   window may not end before it starts. Change work logs are `CHG:WorkLog` records linked by
//!   `Infrastructure Change ID`, Public unless marked. Change saves send no notification.
//!
//! For a first-contact check and discovery it serves the field metadata of the incident
//! forms (`GET /api/arsys/v1.0/fields/{form}`, selection fields with their
//! `limit.selection_values`, a site's extra statuses and status reasons included), the `User`
//! form (the integration user's `Group List`, group ids) and the `Group` form. The groups drive
//! the incident forms' permissions: reads need Incident Viewer or better, creates Incident
//! Submitter or better, modifications and work logs Incident Master or Incident User; a refusal
//! is a 403 with the simulator's stand-in error 333.
//!
//! Injectable faults: 429 with `Retry-After` (a Helix gateway throttle), AR 500s, slow answers,
//! answers lost after the commit, and token expiry; they hit change calls as they hit incident
//! calls. An agent surface changes incidents and changes and adds work logs as a Remedy support
//! agent or change coordinator would. Remedy has no standard outbound webhook; the
//! optional notification models a filter that, after every committed change (the hub's own
//! included), POSTs `{"event", "form", "entry", "worklogs"}` with basic auth and a delivery id.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::outbox::{Notification, Outbox};

/// A stored entry, by read name, in JSON values (labels, text, numbers, `null`).
type Row = BTreeMap<String, Value>;

pub const INTERFACE: &str = "HPD:IncidentInterface";
pub const CREATE_FORM: &str = "HPD:IncidentInterface_Create";
pub const HELP_DESK: &str = "HPD:Help Desk";
pub const WORKLOG: &str = "HPD:WorkLog";
pub const CHANGE_INTERFACE: &str = "CHG:ChangeInterface";
pub const CHANGE_CREATE_FORM: &str = "CHG:ChangeInterface_Create";
pub const CHANGE_BASE: &str = "CHG:Infrastructure Change";
pub const CHANGE_WORKLOG: &str = "CHG:WorkLog";

/// The support agent the agent surface acts as unless told otherwise.
pub const DEFAULT_AGENT: &str = "Allen";
const WEBHOOK_ATTEMPTS: u32 = 4;
/// The server's cap on entries per query answer (AR's max-entries).
const MAX_ENTRIES: usize = 2000;

// AR message numbers from the reference.
const AR_NOT_FOUND: i64 = 302;
const AR_NO_FORM: i64 = 303;
const AR_OUT_OF_LIMITS: i64 = 306;
const AR_REQUIRED: i64 = 326;
const AR_AUTH: i64 = 623;
/// "Cannot establish a network connection to the AR System server".
const AR_NO_SERVER: i64 = 90;
// Stand-ins: the reference gives no numbers for these.
const SIM_NO_SUCH_FIELD: i64 = 314;
const SIM_BAD_QUALIFICATION: i64 = 1587;
const SIM_WORKFLOW: i64 = 10000;

/// Incident fields (read names) with their defaults; ids, dates and audit are set on create.
#[rustfmt::skip]
const INCIDENT_FIELDS: &[&str] = &[
    "Request ID", "Entry ID", "Incident Number", "InstanceId", "Submitter", "Submit Date",
    "Reported Date", "Last Modified By", "Last Modified Date", "Status", "Status_Reason",
    "Status-History", "Description", "Detailed Decription", "Impact", "Urgency", "Priority",
    "Priority Weight", "Service Type", "Reported Source", "First Name", "Last Name",
    "Customer Login ID", "Person ID", "Internet E-mail", "Company", "Contact Company", "VIP",
    "Assigned Support Company", "Assigned Support Organization", "Assigned Group",
    "Assigned Group ID", "Assignee", "Assignee Login ID", "Owner Group", "Owner Group ID",
    "Owner Support Company", "Owner Support Organization", "Categorization Tier 1",
    "Categorization Tier 2", "Categorization Tier 3", "Product Categorization Tier 1",
    "Product Categorization Tier 2", "Product Categorization Tier 3", "Product Name", "HPD_CI",
    "HPD_CI_ReconID", "ServiceCI", "ServiceCI_ReconID", "Resolution", "Resolution Method",
    "Resolution Category", "Last Resolved Date", "Closed Date", "Responded Date",
    "Estimated Resolution Date", "Vendor Ticket Number", "Vendor Name", "Vendor Group",
    "Vendor Organization", "Broker Vendor Name", "Total Transfers", "TemplateID",
    "z1D_Activity_Type", "z1D_Summary", "z1D_Details", "z1D_View_Access", "z1D_Secure_Log",
    "z1D_WorklogDetails",
];

/// Fields a `PUT` (or the agent) may set; the rest are computed or set once.
#[rustfmt::skip]
const WRITABLE: &[&str] = &[
    "Status", "Status_Reason", "Description", "Detailed Decription", "Impact", "Urgency",
    "Service Type", "Reported Source", "Company", "VIP", "Assigned Support Company",
    "Assigned Support Organization", "Assigned Group", "Assignee", "Assignee Login ID",
    "Categorization Tier 1", "Categorization Tier 2", "Categorization Tier 3",
    "Product Categorization Tier 1", "Product Categorization Tier 2",
    "Product Categorization Tier 3", "Product Name", "HPD_CI", "HPD_CI_ReconID", "ServiceCI",
    "ServiceCI_ReconID", "Resolution", "Resolution Method", "Resolution Category",
    "Estimated Resolution Date", "Vendor Ticket Number", "Vendor Name", "Vendor Group",
    "Vendor Organization", "Broker Vendor Name", "TemplateID",
];

/// The worklog-on-update shortcut fields of the interface: a `PUT` carrying them files a work log.
const WORKLOG_SHORTCUT: &[&str] = &["z1D_Activity_Type", "z1D_Summary", "z1D_Details", "z1D_View_Access", "z1D_Secure_Log", "z1D_WorklogDetails"];

/// Create-form names and the read name each lands in (`None`: consumed by the workflow).
#[rustfmt::skip]
const CREATE_FIELDS: &[(&str, Option<&str>)] = &[
    ("z1D_Action", None), ("First_Name", None), ("Last_Name", None), ("Login_ID", None),
    ("Description", Some("Description")), ("Detailed_Decription", Some("Detailed Decription")),
    ("Impact", Some("Impact")), ("Urgency", Some("Urgency")), ("Status", Some("Status")),
    ("Status_Reason", Some("Status_Reason")), ("Reported Source", Some("Reported Source")),
    ("Service_Type", Some("Service Type")), ("Company", Some("Company")),
    ("Assigned Support Company", Some("Assigned Support Company")),
    ("Assigned Support Organization", Some("Assigned Support Organization")),
    ("Assigned Group", Some("Assigned Group")), ("Assignee", Some("Assignee")),
    ("Assignee Login ID", Some("Assignee Login ID")),
    ("Categorization Tier 1", Some("Categorization Tier 1")),
    ("Categorization Tier 2", Some("Categorization Tier 2")),
    ("Categorization Tier 3", Some("Categorization Tier 3")),
    ("Product Categorization Tier 1", Some("Product Categorization Tier 1")),
    ("Product Categorization Tier 2", Some("Product Categorization Tier 2")),
    ("Product Categorization Tier 3", Some("Product Categorization Tier 3")),
    ("Product Name", Some("Product Name")), ("HPD_CI", Some("HPD_CI")),
    ("ServiceCI", Some("ServiceCI")), ("Resolution", Some("Resolution")),
    ("Vendor Ticket Number", Some("Vendor Ticket Number")), ("Vendor Name", Some("Vendor Name")),
    ("TemplateID", Some("TemplateID")),
];

/// Create-form values a `?fields=values(...)` answer may name besides the ones written.
const CREATE_ANSWER_FIELDS: &[&str] = &["Incident_Entry_ID", "Incident Number", "Create Date", "Request ID"];

#[rustfmt::skip]
const WORKLOG_FIELDS: &[&str] = &[
    "Work Log ID", "Incident Number", "Incident Entry ID", "Submitter", "Submit Date",
    "Last Modified By", "Last Modified Date", "Status", "Work Log Type", "Description",
    "Detailed Description", "View Access", "Secure Work Log", "Communication Source",
    "Communication Type", "Work Log Submitter", "Work Log Submit Date", "Work Log Date",
    "Number of Attachments", "z2AF Work Log01", "z2AF Work Log02", "z2AF Work Log03",
];

const WORKLOG_WRITABLE: &[&str] = &[
    "Incident Number",
    "Work Log Type",
    "Description",
    "Detailed Description",
    "View Access",
    "Secure Work Log",
    "Communication Source",
    "Communication Type",
    "Work Log Date",
    "z2AF Work Log01",
    "z2AF Work Log02",
    "z2AF Work Log03",
];

const WORKLOG_FILE_FIELDS: &[&str] = &["z2AF Work Log01", "z2AF Work Log02", "z2AF Work Log03"];

/// Change fields (read names on `CHG:ChangeInterface`); ids, dates and audit are set on create.
#[rustfmt::skip]
const CHANGE_FIELDS: &[&str] = &[
    "Request ID", "Infrastructure Change ID", "InstanceId", "Submitter", "Submit Date",
    "Last Modified By", "Last Modified Date", "Description", "Detailed Description",
    "Change Request Status", "Status Reason", "Status-History", "Change Type", "Change Timing",
    "Risk Level", "Impact", "Urgency", "Priority", "Reason For Change", "Scheduled Start Date",
    "Scheduled End Date", "Actual Start Date", "Actual End Date", "Requested Start Date",
    "Requested End Date", "Location Company", "Company", "First Name", "Last Name",
    "Customer First Name", "Customer Last Name", "Support Company", "Support Organization",
    "Support Group Name", "Assigned To", "ServiceCI", "Vendor Ticket Number", "TemplateID",
];

/// Change fields a `PUT` (or the change coordinator) may set; the rest are computed or set once
/// (the request class, the requester, the vendor's ticket number).
#[rustfmt::skip]
const CHANGE_WRITABLE: &[&str] = &[
    "Description", "Detailed Description", "Change Request Status", "Status Reason",
    "Change Timing", "Risk Level", "Impact", "Urgency", "Priority", "Reason For Change",
    "Scheduled Start Date", "Scheduled End Date", "Actual Start Date", "Actual End Date",
    "Requested Start Date", "Requested End Date", "Location Company", "Company",
    "Customer First Name", "Customer Last Name", "Support Company", "Support Organization",
    "Support Group Name", "Assigned To", "ServiceCI", "TemplateID",
];

/// Change create-form names and the read name each lands in: the status is `Status` here but
/// `Change Request Status` on the interface.
#[rustfmt::skip]
const CHANGE_CREATE_FIELDS: &[(&str, &str)] = &[
    ("Description", "Description"), ("Detailed Description", "Detailed Description"),
    ("Status", "Change Request Status"), ("Status Reason", "Status Reason"),
    ("Change Type", "Change Type"), ("Change Timing", "Change Timing"),
    ("Risk Level", "Risk Level"), ("Impact", "Impact"), ("Urgency", "Urgency"),
    ("Priority", "Priority"), ("Reason For Change", "Reason For Change"),
    ("Scheduled Start Date", "Scheduled Start Date"), ("Scheduled End Date", "Scheduled End Date"),
    ("Actual Start Date", "Actual Start Date"), ("Actual End Date", "Actual End Date"),
    ("Requested Start Date", "Requested Start Date"), ("Requested End Date", "Requested End Date"),
    ("Location Company", "Location Company"), ("Company", "Company"),
    ("First Name", "First Name"), ("Last Name", "Last Name"),
    ("Customer First Name", "Customer First Name"), ("Customer Last Name", "Customer Last Name"),
    ("Support Company", "Support Company"), ("Support Organization", "Support Organization"),
    ("Support Group Name", "Support Group Name"), ("Assigned To", "Assigned To"),
    ("ServiceCI", "ServiceCI"), ("Vendor Ticket Number", "Vendor Ticket Number"),
    ("TemplateID", "TemplateID"),
];

/// Change create-form values a `?fields=values(...)` answer may name besides the ones written
/// (the business id is spelt `Infrastructure Change Id` here).
const CHANGE_CREATE_ANSWER_FIELDS: &[&str] = &["Infrastructure Change Id", "Change_Entry_ID", "Create Date", "Request ID"];

/// The dates of a change, stored in AR's form whatever ISO form they were written in.
const CHANGE_DATE_FIELDS: &[&str] = &["Scheduled Start Date", "Scheduled End Date", "Actual Start Date", "Actual End Date", "Requested Start Date", "Requested End Date"];

#[rustfmt::skip]
const CHANGE_WORKLOG_FIELDS: &[&str] = &[
    "Work Log ID", "Infrastructure Change ID", "Submitter", "Submit Date", "Last Modified By",
    "Last Modified Date", "Status", "Work Log Type", "Description", "Detailed Description",
    "View Access", "Secure Work Log", "Communication Source", "Communication Type",
    "Work Log Submitter", "Work Log Submit Date", "Work Log Date", "Number of Attachments",
];

#[rustfmt::skip]
const CHANGE_WORKLOG_WRITABLE: &[&str] = &[
    "Infrastructure Change ID", "Work Log Type", "Description", "Detailed Description",
    "View Access", "Secure Work Log", "Communication Source", "Communication Type",
    "Work Log Date",
];

const DATE_FIELDS: &[&str] = &[
    "Scheduled Start Date",
    "Scheduled End Date",
    "Actual Start Date",
    "Actual End Date",
    "Requested Start Date",
    "Requested End Date",
    "Submit Date",
    "Reported Date",
    "Last Modified Date",
    "Last Resolved Date",
    "Closed Date",
    "Responded Date",
    "Estimated Resolution Date",
    "Work Log Submit Date",
    "Work Log Date",
];

const STATUSES: &[&str] = &["New", "Assigned", "In Progress", "Pending", "Resolved", "Closed", "Cancelled"];
const IMPACTS: &[(&str, i64)] = &[("1-Extensive/Widespread", 9), ("2-Significant/Large", 5), ("3-Moderate/Limited", 3), ("4-Minor/Localized", 0)];
const URGENCIES: &[(&str, i64)] = &[("1-Critical", 20), ("2-High", 15), ("3-Medium", 10), ("4-Low", 0)];
#[rustfmt::skip]
const STATUS_REASONS: &[&str] = &[
    "Infrastructure Change", "Infrastructure Change Request", "Local Site Action Required",
    "Purchase Order Approval", "Registration Approval", "Supplier Delivery",
    "Support Contact Hold", "Third Party Vendor Action Reqd", "Client Action Required",
    "Future Enhancement", "Pending Original Incident", "Pending Causal Incident Resolution",
    "Client Hold", "Monitoring Incident", "Request", "Customer Follow-Up Required",
    "Temporary Corrective Action", "No Further Action Required", "Resolved by Original Incident",
    "Automated Resolution Reported", "No longer a Causal CI",
];
const SERVICE_TYPES: &[&str] = &["User Service Restoration", "User Service Request", "Infrastructure Restoration", "Infrastructure Event", "Security Incident"];
#[rustfmt::skip]
const REPORTED_SOURCES: &[&str] = &[
    "Direct Input", "Email", "External Escalation", "Fax", "Self Service", "Systems Management",
    "Phone", "Voice Mail", "Walk In", "Web", "Other", "BMC Impact Manager Event",
];
const WORK_LOG_TYPES: &[&str] =
    &["General Information", "Customer Communication", "Working Log", "Email System", "Resolution Communications", "Status Update", "Customer Status Update"];
const VIEW_ACCESS: &[&str] = &["Internal", "Public"];
const YES_NO: &[&str] = &["Yes", "No"];
const CHANGE_STATUSES: &[&str] = &[
    "Draft",
    "Request For Authorization",
    "Request For Change",
    "Planning In Progress",
    "Scheduled For Review",
    "Scheduled For Approval",
    "Scheduled",
    "Implementation In Progress",
    "Completed",
    "Closed",
    "Pending",
    "Rejected",
    "Cancelled",
];
const CHANGE_TIMINGS: &[&str] = &["Emergency", "Expedited", "Latent", "Normal", "No Impact", "Standard"];
const CHANGE_TYPES: &[&str] = &["Change", "Release", "Asset Configuration", "Asset Management", "Asset Lease", "Purchase Requisition", "Asset Maintenance"];
const RISK_LEVELS: &[&str] = &["Risk Level 1", "Risk Level 2", "Risk Level 3", "Risk Level 4", "Risk Level 5"];
const PRIORITIES: &[&str] = &["Critical", "High", "Medium", "Low"];

/// The `User` form's fields (the AR user record of a login).
const USER_FIELDS: &[&str] = &["Login Name", "Full Name", "Group List", "License Type", "Status"];
/// The `Group` form's fields.
const GROUP_FIELDS: &[&str] = &["Group ID", "Group Name", "Group Type"];
/// The permission groups of the simulated server (AR's `Administrator` is group 1; the ITSM
/// groups' ids are the simulator's own stand-ins).
#[rustfmt::skip]
const PERMISSION_GROUPS: &[(i64, &str)] = &[
    (1, "Administrator"), (1000000005, "Incident Master"), (1000000006, "Incident User"),
    (1000000007, "Incident Submitter"), (1000000008, "Incident Viewer"),
    (1000000009, "Incident Config"),
];
/// Groups whose members read incidents and their work logs.
const READ_GROUPS: &[&str] = &["Administrator", "Incident Master", "Incident User", "Incident Viewer", "Incident Submitter"];
/// Groups whose members create incidents.
const CREATE_GROUPS: &[&str] = &["Administrator", "Incident Master", "Incident User", "Incident Submitter"];
/// Groups whose members modify incidents and file work logs (notes and files).
const MODIFY_GROUPS: &[&str] = &["Administrator", "Incident Master", "Incident User"];
/// "No permission": the simulator's stand-in number (the reference gives none).
const SIM_NO_ACCESS: i64 = 333;
/// Field ids of the incident fields whose real ids are well known; the others get ids from
/// AR's range for custom fields.
#[rustfmt::skip]
const FIELD_IDS: &[(&str, i64)] = &[
    ("Request ID", 1), ("Entry ID", 1), ("Submitter", 2), ("Submit Date", 3),
    ("Last Modified By", 5), ("Last Modified Date", 6), ("Status", 7),
    ("Description", 1000000000), ("Detailed Decription", 1000000151),
    ("Detailed_Decription", 1000000151), ("Incident Number", 1000000161),
    ("Urgency", 1000000162), ("Impact", 1000000163), ("Priority", 1000000164),
    ("Status_Reason", 1000000881),
];
const COMMUNICATION_TYPES: &[&str] = &["Inbound", "Outbound"];

// ---- Public API ------------------------------------------------------------------------------

/// A person of the simulated CTM:People form.
#[derive(Clone, Debug)]
pub struct Person {
    pub login: String,
    pub first: String,
    pub last: String,
    pub company: String,
    pub email: String,
    pub person_id: String,
}

/// The support group assignment routing gives an incident created without one.
#[derive(Clone, Debug)]
pub struct SupportGroup {
    pub company: String,
    pub organization: String,
    pub group: String,
    pub group_id: String,
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub user: String,
    pub password: String,
    /// How long a JWT stays valid (about an hour on a default server).
    pub token_ttl: Duration,
    pub webhook: Option<WebhookTarget>,
    /// Added to the simulator's own "now" (a supplier clock that is off).
    pub clock_skew_secs: i64,
    pub default_group: SupportGroup,
    pub people: Vec<Person>,
    /// Statuses this instance adds to the base list (a customised instance).
    pub extra_statuses: Vec<String>,
    /// Status reasons this instance adds to the base list.
    pub extra_status_reasons: Vec<String>,
    /// The permission groups of the integration user (`User` form, `Group List`). Without
    /// Incident Master or Incident User it cannot modify incidents or file work logs.
    pub groups: Vec<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        let person = |login: &str, first: &str, last: &str, id: &str| Person {
            login: login.into(),
            first: first.into(),
            last: last.into(),
            company: "Calbro Services".into(),
            email: format!("{}@calbroservices.com", login.to_ascii_lowercase()),
            person_id: id.into(),
        };
        SimConfig {
            user: "hub.integration".into(),
            password: "hub-password".into(),
            token_ttl: Duration::from_secs(3600),
            webhook: None,
            clock_skew_secs: 0,
            default_group: SupportGroup { company: "Calbro Services".into(), organization: "IT Support".into(), group: "Service Desk".into(), group_id: "SGP000000000011".into() },
            people: vec![person("Allen", "Allen", "Allbrook", "PPL000000000013"), person("Mary", "Mary", "Mann", "PPL000000000016")],
            extra_statuses: Vec::new(),
            extra_status_reasons: Vec::new(),
            groups: vec!["Incident Master".into()],
        }
    }
}

/// Where the notification filter posts, and the basic-auth credentials it sends.
#[derive(Clone, Debug)]
pub struct WebhookTarget {
    pub url: String,
    pub username: String,
    pub password: String,
}

#[derive(Clone, Debug)]
pub enum Fault {
    /// A gateway throttle in front of Helix: 429 with `Retry-After`.
    RateLimited { retry_after_secs: u64 },
    /// AR answers 500 (error 90, the AR server unreachable behind the REST tier).
    ServerError,
    /// The answer comes after `delay`; the request is served normally meanwhile.
    Timeout { delay: Duration },
    /// The request is served and committed; the answer is lost (504 from the gateway).
    LoseResponseAfterCommit,
    /// The token of this request has just expired: 401 with AR error 623.
    TokenExpired,
}

super::chance_faults!(Fault);

/// Which requests a queued fault may hit: `None` matches anything.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FaultTarget {
    pub method: Option<String>,
    pub form: Option<String>,
}

/// What happens to the next notifications.
pub type WebhookBehaviour = super::outbox::Behaviour;

pub use super::LoggedRequest;

/// An AR status entry in an error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ERROR ({number}): {text}; {appended}")]
pub struct SimError {
    pub status: u16,
    pub number: i64,
    pub text: String,
    pub appended: String,
}

impl SimError {
    fn new(status: u16, number: i64, text: &str, appended: impl Into<String>) -> Self {
        SimError { status, number, text: text.into(), appended: appended.into() }
    }
    fn not_found(form: &str, id: &str) -> Self {
        Self::new(404, AR_NOT_FOUND, "Entry does not exist in database", format!("{form} : {id}"))
    }
    fn required(field: &str) -> Self {
        Self::new(400, AR_REQUIRED, "Required field cannot be blank.", field)
    }
    fn out_of_limits(field: &str, value: &str) -> Self {
        Self::new(400, AR_OUT_OF_LIMITS, "Value does not fall within the limits specified for the field", format!("{field} : {value}"))
    }
    fn no_such_field(form: &str, field: &str) -> Self {
        Self::new(400, SIM_NO_SUCH_FIELD, "Field does not exist on current form", format!("{form} : {field}"))
    }
    fn bad_request(text: &str) -> Self {
        Self::new(400, SIM_BAD_QUALIFICATION, text, "")
    }
    fn workflow(text: &str) -> Self {
        Self::new(400, SIM_WORKFLOW, text, "")
    }

    /// The AR error body.
    pub fn body(&self) -> Value {
        json!([{ "messageType": "ERROR", "messageText": self.text, "messageAppendedText": self.appended, "messageNumber": self.number }])
    }

    fn response(&self) -> HttpResponse {
        ar_json(StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST), &self.body())
    }
}

#[derive(Clone)]
pub struct RemedySim {
    inner: Arc<Mutex<State>>,
}

impl RemedySim {
    pub fn new(config: SimConfig) -> Self {
        RemedySim {
            inner: Arc::new(Mutex::new(State {
                config,
                base_url: None,
                incidents: Vec::new(),
                worklogs: Vec::new(),
                files: HashMap::new(),
                tokens: HashMap::new(),
                next_incident: 430,
                next_entry: 527,
                next_create: 103,
                next_worklog: 2_437_184,
                changes: Vec::new(),
                change_worklogs: Vec::new(),
                next_change: 101,
                next_change_create: 301,
                next_change_worklog: 1_208_311,
                faults: VecDeque::new(),
                chance: super::Chance::default(),
                latency: Duration::ZERO,
                log: Vec::new(),
                outbox: Outbox::new("remedy", WEBHOOK_ATTEMPTS),
            })),
        }
    }

    /// Starts the HTTP server on `listener` and spawns it on the current tokio runtime.
    pub fn start(&self, listener: std::net::TcpListener) -> std::io::Result<ServerHandle> {
        let sim = self.clone();
        let running = super::serve("RemedySim", listener, move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::new(sim.clone()))
                // Work logs carry files: room for a generous attachment.
                .app_data(web::PayloadConfig::new(64 << 20))
                .route("/api/jwt/login", web::post().to(login))
                .route("/api/jwt/logout", web::post().to(logout))
                .route("/api/arsys/v1/entry/{rest:.*}", web::route().to(entry_api))
                .route("/api/arsys/{version}/fields/{form}", web::get().to(fields_api))
                .route("/sim/incidents", web::get().to(sim_incidents))
                .route("/sim/worklogs", web::get().to(sim_worklogs))
                .route("/sim/incidents/{number}/agent", web::post().to(sim_agent))
                .route("/sim/changes", web::get().to(sim_changes))
                .route("/sim/change-worklogs", web::get().to(sim_change_worklogs))
                .route("/sim/changes/{id}/agent", web::post().to(sim_change_agent))
                .route("/sim/faults", web::post().to(sim_faults))
                .route("/sim/requests", web::get().to(sim_requests));
        })?;
        let mut st = self.lock();
        st.base_url = Some(running.base_url);
        st.outbox.runtime = Some(running.runtime);
        Ok(running.handle)
    }

    pub fn base_url(&self) -> Option<String> {
        self.lock().base_url.clone()
    }

    pub fn set_webhook(&self, target: Option<WebhookTarget>) {
        self.lock().config.webhook = target;
    }

    /// Puts the integration user in these permission groups (and only these).
    pub fn set_groups(&self, groups: &[&str]) {
        self.lock().config.groups = groups.iter().map(|g| g.to_string()).collect();
    }

    /// Adds a status reason of the site's own to the `Status_Reason` selection.
    pub fn add_status_reason(&self, reason: &str) {
        self.lock().config.extra_status_reasons.push(reason.to_string());
    }

    pub fn set_webhook_behaviour(&self, b: WebhookBehaviour) {
        self.lock().outbox.behaviour = b;
    }

    /// Every incident, as `HPD:IncidentInterface` values, in creation order.
    pub fn incidents(&self) -> Vec<Value> {
        let st = self.lock();
        st.incidents.iter().map(|r| row_value(&st.interface_row(r))).collect()
    }

    /// The incidents whose `Vendor Ticket Number` is `reference`.
    pub fn incidents_by_vendor_ticket(&self, reference: &str) -> Vec<Value> {
        self.incidents().into_iter().filter(|v| v["Vendor Ticket Number"] == reference).collect()
    }

    /// The work logs of an incident (by Incident Number), oldest first.
    pub fn worklogs(&self, incident_number: &str) -> Vec<Value> {
        let st = self.lock();
        st.worklogs.iter().filter(|w| text(w, "Incident Number") == incident_number).map(row_value).collect()
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// Changes an incident (by Incident Number) as a support agent would in the console; the
    /// values use read names. Returns the incident after.
    pub fn agent_update(&self, incident_number: &str, values: Value) -> Result<Value, SimError> {
        self.agent_update_as(incident_number, DEFAULT_AGENT, values)
    }

    pub fn agent_update_as(&self, incident_number: &str, user: &str, values: Value) -> Result<Value, SimError> {
        let Value::Object(values) = values else {
            return Err(SimError::bad_request("expected a JSON object of field values"));
        };
        let mut st = self.lock();
        let i = st.by_number(incident_number).ok_or_else(|| SimError::not_found(INTERFACE, incident_number))?;
        let row = st.modify_incident(i, &values, user)?;
        Ok(row_value(&st.interface_row(&row)))
    }

    /// Adds a work log to an incident as a support agent; `view_access` is `Public` or `Internal`.
    pub fn agent_work_log(&self, incident_number: &str, view_access: &str, text: &str) -> Result<Value, SimError> {
        let values = agent_worklog_values(("Incident Number", incident_number), view_access, text, first_line(text));
        let mut st = self.lock();
        let row = st.create_worklog(&values, vec![], DEFAULT_AGENT)?;
        Ok(row_value(&row))
    }

    /// Attaches a file to an incident as a support agent does: a work log whose first
    /// attachment field holds it, with `text` as its body (`""`: a work log only naming the file).
    pub fn agent_attach(&self, incident_number: &str, view_access: &str, text: &str, file_name: &str, data: Vec<u8>) -> Result<Value, SimError> {
        let summary = if text.is_empty() { file_name } else { first_line(text) };
        let mut values = agent_worklog_values(("Incident Number", incident_number), view_access, text, summary);
        values.insert(WORKLOG_FILE_FIELDS[0].to_string(), json!(file_name));
        let mut st = self.lock();
        let row = st.create_worklog(&values, vec![(WORKLOG_FILE_FIELDS[0].to_string(), file_name.to_string(), data)], DEFAULT_AGENT)?;
        Ok(row_value(&row))
    }

    /// The content of a work log's attachment field.
    pub fn file(&self, work_log_id: &str, field: &str) -> Option<Vec<u8>> {
        self.lock().files.get(&(work_log_id.to_string(), field.to_string())).cloned()
    }

    /// Queues a fault for the next AR request (login excepted).
    pub fn push_fault(&self, fault: Fault) {
        self.push_fault_for(FaultTarget::default(), fault);
    }

    /// Queues a fault for the next AR request matching `target`.
    pub fn push_fault_for(&self, target: FaultTarget, fault: Fault) {
        self.lock().faults.push_back((target, fault));
    }

    /// Every token issued so far stops working (as after a server restart or their expiry).
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    pub fn set_token_ttl(&self, ttl: Duration) {
        self.lock().config.token_ttl = ttl;
    }

    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    /// Answers a share of the API calls with faults, by seeded chance (after queued faults).
    pub fn set_chance(&self, spec: super::ChanceSpec) {
        self.lock().chance = super::Chance::new(spec);
    }

    /// A poisoned lock only means a panic elsewhere; the data is still usable for a simulator.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Changes: the supplier's own change coordinator working in Remedy.
impl RemedySim {
    /// Every change, as `CHG:ChangeInterface` values, in creation order.
    pub fn changes(&self) -> Vec<Value> {
        self.lock().changes.iter().map(row_value).collect()
    }

    /// The changes whose `Vendor Ticket Number` is `reference`.
    pub fn changes_by_vendor_ticket(&self, reference: &str) -> Vec<Value> {
        self.changes().into_iter().filter(|v| v["Vendor Ticket Number"] == reference).collect()
    }

    /// The work logs of a change (by `Request ID` or `Infrastructure Change ID`), oldest first.
    pub fn change_worklogs(&self, change_id: &str) -> Vec<Value> {
        let st = self.lock();
        let Some(i) = st.change_by_id(change_id) else { return Vec::new() };
        let number = text(&st.changes[i], "Infrastructure Change ID");
        st.change_worklogs.iter().filter(|w| text(w, "Infrastructure Change ID") == number).map(row_value).collect()
    }

    /// Changes a change (by `Request ID` or `Infrastructure Change ID`) as its change coordinator
    /// would in Remedy; the values use read names. Returns the change after.
    pub fn agent_update_change(&self, change_id: &str, values: Value) -> Result<Value, SimError> {
        self.agent_update_change_as(change_id, DEFAULT_AGENT, values)
    }

    pub fn agent_update_change_as(&self, change_id: &str, user: &str, values: Value) -> Result<Value, SimError> {
        let Value::Object(values) = values else {
            return Err(SimError::bad_request("expected a JSON object of field values"));
        };
        let mut st = self.lock();
        let i = st.change_by_id(change_id).ok_or_else(|| SimError::not_found(CHANGE_INTERFACE, change_id))?;
        let row = st.modify_change(i, &values, user)?;
        Ok(row_value(&row))
    }

    /// Adds a work log to a change as its coordinator; `view_access` is `Public` or `Internal`.
    pub fn agent_change_work_log(&self, change_id: &str, view_access: &str, note: &str) -> Result<Value, SimError> {
        let mut st = self.lock();
        let i = st.change_by_id(change_id).ok_or_else(|| SimError::not_found(CHANGE_INTERFACE, change_id))?;
        let number = text(&st.changes[i], "Infrastructure Change ID");
        let values = agent_worklog_values(("Infrastructure Change ID", &number), view_access, note, first_line(note));
        let row = st.create_change_worklog(&values, DEFAULT_AGENT)?;
        Ok(row_value(&row))
    }
}

// ---- State and write semantics ---------------------------------------------------------------

struct State {
    config: SimConfig,
    base_url: Option<String>,
    /// `HPD:Help Desk` rows (with the interface's `Request ID` kept alongside).
    incidents: Vec<Row>,
    worklogs: Vec<Row>,
    /// (Work Log ID, attachment field) -> content.
    files: HashMap<(String, String), Vec<u8>>,
    /// token -> (user, expiry).
    tokens: HashMap<String, (String, DateTime<Utc>)>,
    next_incident: u64,
    next_entry: u64,
    next_create: u64,
    next_worklog: u64,
    /// `CHG:Infrastructure Change` rows, in read names.
    changes: Vec<Row>,
    change_worklogs: Vec<Row>,
    next_change: u64,
    next_change_create: u64,
    next_change_worklog: u64,
    faults: VecDeque<(FaultTarget, Fault)>,
    chance: super::Chance,
    latency: Duration,
    log: Vec<LoggedRequest>,
    outbox: Outbox,
}

/// The first line of a text (empty for an empty text).
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The values of a work log an agent adds to the record `parent` (its linking field and
/// value): general information, `summary` cut to the 100 characters of `Description`.
fn agent_worklog_values(parent: (&str, &str), view_access: &str, text: &str, summary: &str) -> Map<String, Value> {
    [
        (parent.0, json!(parent.1)),
        ("Work Log Type", json!("General Information")),
        ("Description", json!(summary.chars().take(100).collect::<String>())),
        ("Detailed Description", json!(text)),
        ("View Access", json!(view_access)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn text(row: &Row, name: &str) -> String {
    match row.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn row_value(row: &Row) -> Value {
    Value::Object(row.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// AR reads an empty string as "no value".
fn normalise(v: &Value) -> Value {
    match v {
        Value::String(s) if s.is_empty() => Value::Null,
        other => other.clone(),
    }
}

fn ar_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.000+0000").to_string()
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok().map(|n| n.and_utc()))
        .or_else(|| s.parse::<i64>().ok().and_then(|secs| DateTime::from_timestamp(secs, 0)))
}

fn random_id(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let more = uuid::Uuid::new_v4().into_bytes();
    bytes.iter().chain(more.iter()).take(len).map(|b| CHARS[*b as usize % CHARS.len()] as char).collect()
}

fn priority_for(impact: &str, urgency: &str) -> Option<(&'static str, i64)> {
    let i = IMPACTS.iter().find(|(l, _)| *l == impact)?.1;
    let u = URGENCIES.iter().find(|(l, _)| *l == urgency)?.1;
    let w = i + u;
    let label = match w {
        24.. => "Critical",
        16..=23 => "High",
        10..=15 => "Medium",
        _ => "Low",
    };
    Some((label, w))
}

impl State {
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        let now = chrono::Duration::try_seconds(self.config.clock_skew_secs).and_then(|s| now.checked_add_signed(s)).unwrap_or(now);
        // AR keeps whole seconds.
        DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
    }

    fn base(&self) -> String {
        self.base_url.clone().unwrap_or_else(|| "https://remedy-sim.example:8443".into())
    }

    fn entry_href(&self, form: &str, id: &str) -> String {
        format!("{}/api/arsys/v1/entry/{}/{}", self.base(), encode_segment(form), encode_segment(id))
    }

    fn by_number(&self, number: &str) -> Option<usize> {
        self.incidents.iter().position(|r| text(r, "Incident Number") == number)
    }

    /// An interface id is the composite `X|X`; the bare Help Desk id is accepted too.
    fn by_entry(&self, id: &str) -> Option<usize> {
        let mut parts = id.split('|');
        let first = parts.next().unwrap_or("");
        if parts.any(|p| p != first) {
            return None;
        }
        self.incidents.iter().position(|r| text(r, "Entry ID") == first)
    }

    fn statuses(&self) -> Vec<String> {
        STATUSES.iter().map(|s| s.to_string()).chain(self.config.extra_statuses.iter().cloned()).collect()
    }

    fn in_group(&self, groups: &[&str]) -> bool {
        self.config.groups.iter().any(|g| groups.contains(&g.as_str()))
    }

    /// The integration user's `User` entry.
    fn user_rows(&self) -> Vec<Row> {
        let list: String = self.config.groups.iter().filter_map(|g| PERMISSION_GROUPS.iter().find(|(_, n)| n == g)).map(|(id, _)| format!("{id};")).collect();
        let mut row = Row::new();
        row.insert("Login Name".into(), json!(self.config.user));
        row.insert("Full Name".into(), json!(self.config.user));
        row.insert("Group List".into(), json!(list));
        row.insert("License Type".into(), json!("Fixed"));
        row.insert("Status".into(), json!("Current"));
        vec![row]
    }

    fn group_rows(&self) -> Vec<Row> {
        PERMISSION_GROUPS
            .iter()
            .map(|(id, name)| [("Group ID", json!(id)), ("Group Name", json!(name)), ("Group Type", json!("Change"))].into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            .collect()
    }

    /// The field metadata of a form: each field's id, name and data type, and for selection
    /// fields their values (`limit.selection_values`).
    fn form_fields(&self, form: &str) -> Option<Value> {
        let names: Vec<&str> = match form {
            INTERFACE | HELP_DESK => INCIDENT_FIELDS.iter().copied().filter(|f| form == INTERFACE || *f != "Request ID").collect(),
            CREATE_FORM => CREATE_FIELDS.iter().map(|(c, _)| *c).chain(CREATE_ANSWER_FIELDS.iter().copied()).collect(),
            WORKLOG => WORKLOG_FIELDS.to_vec(),
            _ => return None,
        };
        let statuses = self.statuses();
        let reasons: Vec<String> = STATUS_REASONS.iter().map(|r| r.to_string()).chain(self.config.extra_status_reasons.iter().cloned()).collect();
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let fields: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let id = FIELD_IDS.iter().find(|(n, _)| n == name).map_or(536_870_913 + i as i64, |(_, id)| *id);
                let values: Option<Vec<String>> = match *name {
                    "Status" if form != WORKLOG => Some(statuses.clone()),
                    "Status_Reason" => Some(reasons.clone()),
                    "Impact" => Some(IMPACTS.iter().map(|(l, _)| l.to_string()).collect()),
                    "Urgency" => Some(URGENCIES.iter().map(|(l, _)| l.to_string()).collect()),
                    "Priority" => Some(owned(PRIORITIES)),
                    "View Access" => Some(owned(VIEW_ACCESS)),
                    "Work Log Type" => Some(owned(WORK_LOG_TYPES)),
                    _ => None,
                };
                match values {
                    Some(values) => json!({
                        "id": id, "name": name, "datatype": "ENUM",
                        "limit": {"datatype": "ENUM", "list_style": "REGULAR",
                                  "selection_values": values.iter().enumerate().map(|(n, v)| json!({"id": n * 1000, "name": v})).collect::<Vec<_>>()},
                    }),
                    None if name.starts_with("z2AF") => json!({"id": id, "name": name, "datatype": "ATTACH"}),
                    None => json!({"id": id, "name": name, "datatype": "CHAR"}),
                }
            })
            .collect();
        Some(Value::Array(fields))
    }

    fn interface_row(&self, r: &Row) -> Row {
        r.clone()
    }

    fn help_desk_row(&self, r: &Row) -> Row {
        let mut r = r.clone();
        r.remove("Request ID");
        r
    }

    fn check_selection(&self, row: &Row, fields: &[&str]) -> Result<(), SimError> {
        let statuses = self.statuses();
        for f in fields {
            let Some(v) = row.get(*f).filter(|v| !v.is_null()) else { continue };
            let label = v.as_str().unwrap_or("");
            let ok = match *f {
                "Status" => statuses.iter().any(|s| s == label),
                "Change Request Status" => CHANGE_STATUSES.contains(&label),
                "Change Timing" => CHANGE_TIMINGS.contains(&label),
                "Change Type" => CHANGE_TYPES.contains(&label),
                "Risk Level" => RISK_LEVELS.contains(&label),
                "Priority" => PRIORITIES.contains(&label),
                "Impact" => IMPACTS.iter().any(|(l, _)| *l == label),
                "Urgency" => URGENCIES.iter().any(|(l, _)| *l == label),
                "Status_Reason" => STATUS_REASONS.contains(&label) || self.config.extra_status_reasons.iter().any(|r| r == label),
                "Service Type" => SERVICE_TYPES.contains(&label),
                "Reported Source" => REPORTED_SOURCES.contains(&label),
                "VIP" | "Secure Work Log" => YES_NO.contains(&label),
                "Work Log Type" => WORK_LOG_TYPES.contains(&label),
                "View Access" => VIEW_ACCESS.contains(&label),
                "Communication Type" => COMMUNICATION_TYPES.contains(&label),
                _ => true,
            };
            if !ok {
                return Err(SimError::out_of_limits(f, &v.to_string()));
            }
        }
        Ok(())
    }

    /// The ITSM rules every save runs: required reasons, assignment, the 100-character summary,
    /// computed priority, dates and status history.
    fn run_incident_workflow(&self, before: Option<&Row>, rec: &mut Row, user: &str, now: &str) -> Result<(), SimError> {
        self.check_selection(rec, &["Status", "Impact", "Urgency", "Status_Reason", "Service Type", "Reported Source", "VIP"])?;
        let summary = text(rec, "Description");
        if summary.trim().is_empty() {
            return Err(SimError::required("Description"));
        }
        if summary.chars().count() > 100 {
            return Err(SimError::out_of_limits("Description", &format!("{} characters, at most 100", summary.chars().count())));
        }
        for f in ["Impact", "Urgency", "Status"] {
            if text(rec, f).is_empty() {
                return Err(SimError::required(f));
            }
        }
        let status = text(rec, "Status");
        if matches!(status.as_str(), "Pending" | "Resolved") && text(rec, "Status_Reason").is_empty() {
            return Err(SimError::required("Status_Reason"));
        }
        if !matches!(status.as_str(), "New" | "Cancelled") && text(rec, "Assigned Group").is_empty() {
            return Err(SimError::required("Assigned Group"));
        }
        match priority_for(&text(rec, "Impact"), &text(rec, "Urgency")) {
            Some((label, weight)) => {
                rec.insert("Priority".into(), json!(label));
                rec.insert("Priority Weight".into(), json!(weight));
            }
            None => {
                rec.insert("Priority".into(), Value::Null);
                rec.insert("Priority Weight".into(), Value::Null);
            }
        }
        let old_status = before.map(|b| text(b, "Status")).unwrap_or_default();
        if status != old_status {
            let mut history = rec.get("Status-History").and_then(Value::as_object).cloned().unwrap_or_default();
            history.insert(status.clone(), json!({"user": user, "timestamp": now}));
            rec.insert("Status-History".into(), Value::Object(history));
            match status.as_str() {
                "Resolved" => {
                    rec.insert("Last Resolved Date".into(), json!(now));
                }
                "Closed" => {
                    if rec.get("Last Resolved Date").is_none_or(Value::is_null) {
                        rec.insert("Last Resolved Date".into(), json!(now));
                    }
                    rec.insert("Closed Date".into(), json!(now));
                }
                "In Progress" if rec.get("Responded Date").is_none_or(Value::is_null) => {
                    rec.insert("Responded Date".into(), json!(now));
                }
                _ => {}
            }
            if matches!(old_status.as_str(), "Resolved" | "Closed" | "Cancelled") && !matches!(status.as_str(), "Resolved" | "Closed" | "Cancelled") {
                rec.insert("Closed Date".into(), Value::Null);
            }
        }
        if let Some(b) = before {
            if text(b, "Assigned Group") != text(rec, "Assigned Group") {
                let n = b.get("Total Transfers").and_then(Value::as_i64).unwrap_or(0) + 1;
                rec.insert("Total Transfers".into(), json!(n));
            }
        }
        Ok(())
    }

    /// `POST HPD:IncidentInterface_Create`. Returns the create-form answer values (what a
    /// `?fields=values(...)` may pick from) and the create entry id.
    fn create_incident(&mut self, body: &Map<String, Value>, user: &str) -> Result<(Map<String, Value>, String), SimError> {
        let now_t = self.now();
        let now = ar_time(&now_t);
        for k in body.keys() {
            if !CREATE_FIELDS.iter().any(|(n, _)| n == k) {
                return Err(SimError::no_such_field(CREATE_FORM, k));
            }
        }
        let create_id = format!("{:015}", self.next_create);
        self.next_create += 1;
        let mut answer: Map<String, Value> = body.clone();
        answer.insert("Create Date".into(), json!(now));
        // Without the action the create interface stores its staging row and stops there.
        if body.get("z1D_Action").and_then(Value::as_str) != Some("CREATE") {
            for k in ["Incident_Entry_ID", "Incident Number", "Request ID"] {
                answer.insert(k.into(), Value::Null);
            }
            return Ok((answer, create_id));
        }
        let mut rec: Row = INCIDENT_FIELDS.iter().map(|f| (f.to_string(), Value::Null)).collect();
        for (create, read) in CREATE_FIELDS {
            if let (Some(read), Some(v)) = (read, body.get(*create)) {
                rec.insert(read.to_string(), normalise(v));
            }
        }
        // The customer must resolve to one person.
        let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let person = match (s("Login_ID"), s("First_Name"), s("Last_Name")) {
            (Some(login), _, _) => {
                self.person_by_login(&login).ok_or_else(|| SimError::workflow(&format!("The customer with login ID {login} could not be found in the People form.")))?
            }
            (None, Some(first), Some(last)) => self
                .config
                .people
                .iter()
                .find(|p| p.first.eq_ignore_ascii_case(&first) && p.last.eq_ignore_ascii_case(&last))
                .cloned()
                .ok_or_else(|| SimError::workflow(&format!("The customer {first} {last} could not be found in the People form.")))?,
            _ => return Err(SimError::required("First_Name, Last_Name or Login_ID")),
        };
        rec.insert("First Name".into(), json!(person.first));
        rec.insert("Last Name".into(), json!(person.last));
        rec.insert("Customer Login ID".into(), json!(person.login));
        rec.insert("Person ID".into(), json!(person.person_id));
        rec.insert("Internet E-mail".into(), json!(person.email));
        rec.insert("Contact Company".into(), json!(person.company));
        if rec.get("Company").is_none_or(Value::is_null) {
            rec.insert("Company".into(), json!(person.company));
        }
        for f in ["Service Type", "Reported Source"] {
            if text(&rec, f).is_empty() {
                let create = CREATE_FIELDS.iter().find(|(_, r)| *r == Some(f)).map(|(c, _)| *c).unwrap_or(f);
                return Err(SimError::required(create));
            }
        }
        // Assignment routing: no group given, the configured one takes it.
        if text(&rec, "Assigned Group").is_empty() {
            let g = &self.config.default_group;
            rec.insert("Assigned Support Company".into(), json!(g.company));
            rec.insert("Assigned Support Organization".into(), json!(g.organization));
            rec.insert("Assigned Group".into(), json!(g.group));
            rec.insert("Assigned Group ID".into(), json!(g.group_id));
        } else if text(&rec, "Assigned Group") == self.config.default_group.group {
            rec.insert("Assigned Group ID".into(), json!(self.config.default_group.group_id));
        } else {
            rec.insert("Assigned Group ID".into(), json!(format!("SGP{:012}", 500 + self.incidents.len())));
        }
        for (owner, from) in [
            ("Owner Group", "Assigned Group"),
            ("Owner Group ID", "Assigned Group ID"),
            ("Owner Support Company", "Assigned Support Company"),
            ("Owner Support Organization", "Assigned Support Organization"),
        ] {
            let v = rec.get(from).cloned().unwrap_or(Value::Null);
            rec.insert(owner.into(), v);
        }
        if text(&rec, "VIP").is_empty() {
            rec.insert("VIP".into(), json!("No"));
        }
        rec.insert("Total Transfers".into(), json!(0));
        self.run_incident_workflow(None, &mut rec, user, &now)?;
        let entry = format!("INC{:012}", self.next_entry);
        let number = format!("INC{:012}", self.next_incident);
        self.next_entry += 1;
        self.next_incident += 1;
        for (k, v) in [
            ("Entry ID", json!(entry)),
            ("Request ID", json!(format!("{entry}|{entry}"))),
            ("Incident Number", json!(number)),
            ("InstanceId", json!(format!("IDG{}", random_id(27)))),
            ("Submitter", json!(user)),
            ("Submit Date", json!(now)),
            ("Reported Date", json!(now)),
            ("Last Modified By", json!(user)),
            ("Last Modified Date", json!(now)),
        ] {
            rec.insert(k.into(), v);
        }
        self.incidents.push(rec.clone());
        answer.insert("Incident_Entry_ID".into(), json!(entry));
        answer.insert("Incident Number".into(), json!(number));
        answer.insert("Request ID".into(), json!(create_id));
        self.notify("create", &rec, &[]);
        Ok((answer, create_id))
    }

    fn person_by_login(&self, login: &str) -> Option<Person> {
        if login == self.config.user {
            return Some(Person {
                login: login.into(),
                first: "Hub".into(),
                last: "Integration".into(),
                company: self.config.default_group.company.clone(),
                email: format!("{login}@calbroservices.com"),
                person_id: "PPL000000000099".into(),
            });
        }
        self.config.people.iter().find(|p| p.login == login).cloned()
    }

    /// A `PUT` (or an agent's save): only the given fields change. A save that changes nothing
    /// is no save: no modification date, no notification.
    fn modify_incident(&mut self, i: usize, values: &Map<String, Value>, user: &str) -> Result<Row, SimError> {
        let now = ar_time(&self.now());
        let before = self.incidents[i].clone();
        let mut rec = before.clone();
        let mut shortcut: Map<String, Value> = Map::new();
        for (k, v) in values {
            if WRITABLE.contains(&k.as_str()) {
                rec.insert(k.clone(), normalise(v));
            } else if WORKLOG_SHORTCUT.contains(&k.as_str()) {
                shortcut.insert(k.clone(), v.clone());
            } else if !INCIDENT_FIELDS.contains(&k.as_str()) {
                return Err(SimError::no_such_field(INTERFACE, k));
            }
            // Other known fields are computed or set once: AR workflow overwrites them.
        }
        if text(&rec, "Status") != text(&before, "Status") && !values.contains_key("Status_Reason") {
            rec.insert("Status_Reason".into(), Value::Null);
        }
        self.run_incident_workflow(Some(&before), &mut rec, user, &now)?;
        let number = text(&rec, "Incident Number");
        let log_text = [shortcut.get("z1D_Details"), shortcut.get("z1D_WorklogDetails"), shortcut.get("z1D_Summary")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|s| !s.trim().is_empty())
            .map(str::to_string);
        if rec == before && log_text.is_none() {
            return Ok(rec);
        }
        if rec != before {
            rec.insert("Last Modified Date".into(), json!(now));
            rec.insert("Last Modified By".into(), json!(user));
            self.incidents[i] = rec.clone();
            self.notify("modify", &rec, &[]);
        }
        if let Some(details) = log_text {
            let mut wl = Map::new();
            wl.insert("Incident Number".into(), json!(number));
            wl.insert("Description".into(), shortcut.get("z1D_Summary").cloned().unwrap_or_else(|| json!(details.chars().take(100).collect::<String>())));
            wl.insert("Detailed Description".into(), json!(details));
            wl.insert("Work Log Type".into(), shortcut.get("z1D_Activity_Type").cloned().unwrap_or_else(|| json!("General Information")));
            if let Some(v) = shortcut.get("z1D_View_Access") {
                wl.insert("View Access".into(), v.clone());
            }
            if let Some(v) = shortcut.get("z1D_Secure_Log") {
                wl.insert("Secure Work Log".into(), v.clone());
            }
            self.create_worklog(&wl, vec![], user)?;
        }
        Ok(rec)
    }

    /// `POST HPD:WorkLog`, with the files of its `attach-<field>` parts as (field, file name,
    /// content). The incident is not modified.
    fn create_worklog(&mut self, values: &Map<String, Value>, files: Vec<(String, String, Vec<u8>)>, user: &str) -> Result<Row, SimError> {
        let mut rec = worklog_entry(WORKLOG, values, WORKLOG_FIELDS, WORKLOG_WRITABLE)?;
        for (field, _, _) in &files {
            if !WORKLOG_FILE_FIELDS.contains(&field.as_str()) {
                return Err(SimError::no_such_field(WORKLOG, &format!("attach-{field}")));
            }
        }
        for field in WORKLOG_FILE_FIELDS {
            let named = values.get(*field).is_some_and(|v| !normalise(v).is_null());
            if named && !files.iter().any(|(f, _, _)| f == field) {
                return Err(SimError::new(400, SIM_BAD_QUALIFICATION, "The attachment field has no attachment part", format!("attach-{field}")));
            }
        }
        let number = text(&rec, "Incident Number");
        if number.is_empty() {
            return Err(SimError::required("Incident Number"));
        }
        let Some(i) = self.by_number(&number) else {
            return Err(SimError::workflow(&format!("The incident {number} does not exist; the work information cannot be saved.")));
        };
        let id = self.complete_worklog(&mut rec, user, false, files.len())?;
        for (field, part_name, data) in files {
            // The entry names the file; a part's own file name stands in when it does not.
            let name = Some(text(&rec, &field)).filter(|n| !n.is_empty()).unwrap_or(part_name);
            let href = format!("{}/attach/{}", self.entry_href(WORKLOG, &id), encode_segment(&field));
            rec.insert(field.clone(), json!({"name": name, "sizeBytes": data.len(), "href": href}));
            self.files.insert((id.clone(), field), data);
        }
        self.worklogs.push(rec.clone());
        let incident = self.incidents[i].clone();
        self.notify("worklog", &incident, std::slice::from_ref(&rec));
        Ok(rec)
    }

    fn notify(&mut self, event: &str, incident: &Row, worklogs: &[Row]) {
        let Some(target) = self.config.webhook.clone() else { return };
        let id = text(incident, "Entry ID");
        let body = json!({
            "event": event,
            "form": INTERFACE,
            "entry": {"values": row_value(&self.interface_row(incident)), "_links": {"self": [{"href": self.entry_href(INTERFACE, &id)}]}},
            "worklogs": worklogs.iter().map(|w| json!({"values": row_value(w)})).collect::<Vec<_>>(),
        });
        self.push_notification(target, &body);
    }

    /// Queues one notification to the hub, with the filter's basic credentials.
    fn push_notification(&mut self, target: WebhookTarget, body: &Value) {
        self.outbox.push(Notification {
            id: uuid::Uuid::new_v4().to_string(),
            url: target.url,
            body: body.to_string(),
            basic_auth: Some((target.username, target.password)),
            headers: Arc::new(|n: &Notification, _| vec![("X-Siam-Delivery".into(), n.id.clone())]),
        });
    }

    /// The filter on the change form pushes a saved change as the incident one does.
    fn notify_change(&mut self, change: &Row) {
        let Some(target) = self.config.webhook.clone() else { return };
        let id = text(change, "Request ID");
        let body = json!({
            "event": "modify",
            "form": CHANGE_INTERFACE,
            "entry": {"values": row_value(change), "_links": {"self": [{"href": self.entry_href(CHANGE_INTERFACE, &id)}]}},
        });
        self.push_notification(target, &body);
    }

    fn take_fault(&mut self, method: &str, form: &str) -> Option<Fault> {
        let i = self.faults.iter().position(|(t, _)| t.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method)) && t.form.as_deref().is_none_or(|f| f == form));
        i.and_then(|i| self.faults.remove(i)).map(|(_, f)| f).or_else(|| self.chance.draw())
    }

    fn issue_token(&mut self, user: &str) -> String {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.config.token_ttl).unwrap_or(chrono::Duration::hours(1));
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let claims = json!({"_cacheId": random_id(8), "nbf": now.timestamp(), "iss": "remedy-sim", "exp": (now + ttl).timestamp(), "_ver": 1, "_user": user});
        let token = format!("{}.{}.{}", b64(r#"{"alg":"HS256"}"#), b64(&claims.to_string()), b64(&random_id(32)));
        self.tokens.insert(token.clone(), (user.to_string(), now + ttl));
        token
    }

    /// The user of a valid `AR-JWT` header.
    fn authenticate(&mut self, req: &HttpRequest) -> Option<String> {
        let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if scheme != "AR-JWT" {
            return None;
        }
        let token = token.trim();
        match self.tokens.get(token) {
            Some((user, exp)) if *exp > Utc::now() => Some(user.clone()),
            Some(_) => {
                self.tokens.remove(token);
                None
            }
            None => None,
        }
    }
}

// ---- Changes ---------------------------------------------------------------------------------

/// A new entry of the work log form `form` (whose fields are `fields`) from the values
/// written: a name the form does not know is refused, the writable ones are kept, the rest
/// start empty.
fn worklog_entry(form: &str, values: &Map<String, Value>, fields: &[&str], writable: &[&str]) -> Result<Row, SimError> {
    if let Some(k) = values.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(SimError::no_such_field(form, k));
    }
    let mut rec: Row = fields.iter().map(|f| (f.to_string(), Value::Null)).collect();
    for (k, v) in values.iter().filter(|(k, _)| writable.contains(&k.as_str())) {
        rec.insert(k.clone(), normalise(v));
    }
    Ok(rec)
}

/// A change date as AR stores it; `None` when the value is no instant.
fn change_date(v: &Value) -> Option<String> {
    let t = match v {
        Value::String(s) => parse_time(s),
        Value::Number(n) => n.as_i64().and_then(|secs| DateTime::from_timestamp(secs, 0)),
        _ => None,
    }?;
    Some(ar_time(&t))
}

impl State {
    /// The entries of a work log form: `CHG:WorkLog` or `HPD:WorkLog`.
    fn worklogs_of(&self, form: &str) -> &[Row] {
        if form == CHANGE_WORKLOG {
            &self.change_worklogs
        } else {
            &self.worklogs
        }
    }

    /// A change by its entry id (`Request ID`) or its `Infrastructure Change ID`.
    fn change_by_id(&self, id: &str) -> Option<usize> {
        let id = id.trim();
        if id.is_empty() {
            return None;
        }
        self.changes.iter().position(|r| text(r, "Request ID") == id || text(r, "Infrastructure Change ID") == id)
    }

    /// The change rules every save runs: AR dates, selection labels, the 100-character summary,
    /// a window that does not end before it starts, a priority, and the status history.
    fn run_change_workflow(&self, before: Option<&Row>, rec: &mut Row, user: &str, now: &str) -> Result<(), SimError> {
        for f in CHANGE_DATE_FIELDS {
            let Some(v) = rec.get(*f).filter(|v| !v.is_null()).cloned() else { continue };
            let stored = change_date(&v).ok_or_else(|| SimError::out_of_limits(f, &v.to_string()))?;
            rec.insert(f.to_string(), json!(stored));
        }
        self.check_selection(rec, &["Change Request Status", "Change Timing", "Change Type", "Risk Level", "Impact", "Urgency", "Priority"])?;
        let summary = text(rec, "Description");
        if summary.trim().is_empty() {
            return Err(SimError::required("Description"));
        }
        if summary.chars().count() > 100 {
            return Err(SimError::out_of_limits("Description", &format!("{} characters, at most 100", summary.chars().count())));
        }
        for f in ["Change Request Status", "Impact", "Urgency"] {
            if text(rec, f).is_empty() {
                return Err(SimError::required(f));
            }
        }
        for (start, end) in [("Scheduled Start Date", "Scheduled End Date"), ("Actual Start Date", "Actual End Date")] {
            if let (Some(s), Some(e)) = (parse_time(&text(rec, start)), parse_time(&text(rec, end))) {
                if e < s {
                    return Err(SimError::workflow(&format!("The {end} must not be earlier than the {start}.")));
                }
            }
        }
        if text(rec, "Priority").is_empty() {
            let priority = priority_for(&text(rec, "Impact"), &text(rec, "Urgency")).map(|(label, _)| json!(label)).unwrap_or(Value::Null);
            rec.insert("Priority".into(), priority);
        }
        let status = text(rec, "Change Request Status");
        if before.map(|b| text(b, "Change Request Status")).unwrap_or_default() != status {
            let mut history = rec.get("Status-History").and_then(Value::as_object).cloned().unwrap_or_default();
            history.insert(status, json!({"user": user, "timestamp": now}));
            rec.insert("Status-History".into(), Value::Object(history));
        }
        Ok(())
    }

    /// `POST CHG:ChangeInterface_Create`. Returns the create-form answer values and the create
    /// entry id. A change starts in Draft; requester, companies and coordinator group default to
    /// the submitter's and the instance's own.
    fn create_change(&mut self, body: &Map<String, Value>, user: &str) -> Result<(Map<String, Value>, String), SimError> {
        let now = ar_time(&self.now());
        for k in body.keys() {
            if !CHANGE_CREATE_FIELDS.iter().any(|(c, _)| c == k) {
                return Err(SimError::no_such_field(CHANGE_CREATE_FORM, k));
            }
        }
        let create_id = format!("{:015}", self.next_change_create);
        self.next_change_create += 1;
        let mut rec: Row = CHANGE_FIELDS.iter().map(|f| (f.to_string(), Value::Null)).collect();
        for (create, read) in CHANGE_CREATE_FIELDS {
            if let Some(v) = body.get(*create) {
                rec.insert(read.to_string(), normalise(v));
            }
        }
        let requester = self.person_by_login(user);
        let group = self.config.default_group.clone();
        let company = requester.as_ref().map(|p| p.company.clone()).unwrap_or_else(|| group.company.clone());
        let defaults = [
            ("Change Request Status", "Draft".to_string()),
            ("Change Type", "Change".to_string()),
            ("Impact", "4-Minor/Localized".to_string()),
            ("Urgency", "4-Low".to_string()),
            ("Company", company.clone()),
            ("Location Company", company),
            ("First Name", requester.as_ref().map(|p| p.first.clone()).unwrap_or_default()),
            ("Last Name", requester.as_ref().map(|p| p.last.clone()).unwrap_or_default()),
            ("Support Company", group.company),
            ("Support Organization", group.organization),
            ("Support Group Name", group.group),
        ];
        for (f, d) in defaults {
            if text(&rec, f).is_empty() && !d.is_empty() {
                rec.insert(f.into(), json!(d));
            }
        }
        for (customer, person) in [("Customer First Name", "First Name"), ("Customer Last Name", "Last Name")] {
            if text(&rec, customer).is_empty() {
                let v = rec.get(person).cloned().unwrap_or(Value::Null);
                rec.insert(customer.into(), v);
            }
        }
        self.run_change_workflow(None, &mut rec, user, &now)?;
        let id = format!("CRQ{:012}", self.next_change);
        self.next_change += 1;
        for (k, v) in [
            ("Request ID", json!(id)),
            ("Infrastructure Change ID", json!(id)),
            ("InstanceId", json!(format!("AGG{}", random_id(27)))),
            ("Submitter", json!(user)),
            ("Submit Date", json!(now)),
            ("Last Modified By", json!(user)),
            ("Last Modified Date", json!(now)),
        ] {
            rec.insert(k.into(), v);
        }
        self.changes.push(rec.clone());
        let mut answer: Map<String, Value> = body.clone();
        for (k, v) in [("Create Date", json!(now)), ("Request ID", json!(create_id)), ("Change_Entry_ID", json!(id)), ("Infrastructure Change Id", json!(id))] {
            answer.insert(k.into(), v);
        }
        Ok((answer, create_id))
    }

    /// A `PUT` on the change interface (or the coordinator's save): only the given fields
    /// change; a changed status clears a `Status Reason` not given with it. A save that changes
    /// nothing leaves the modification date alone.
    fn modify_change(&mut self, i: usize, values: &Map<String, Value>, user: &str) -> Result<Row, SimError> {
        let now = ar_time(&self.now());
        let before = self.changes.get(i).cloned().ok_or_else(|| SimError::not_found(CHANGE_INTERFACE, &i.to_string()))?;
        let mut rec = before.clone();
        for (k, v) in values {
            if CHANGE_WRITABLE.contains(&k.as_str()) {
                rec.insert(k.clone(), normalise(v));
            } else if !CHANGE_FIELDS.contains(&k.as_str()) {
                return Err(SimError::no_such_field(CHANGE_INTERFACE, k));
            }
            // Other known fields are computed or set once.
        }
        if text(&rec, "Change Request Status") != text(&before, "Change Request Status") && !values.contains_key("Status Reason") {
            rec.insert("Status Reason".into(), Value::Null);
        }
        self.run_change_workflow(Some(&before), &mut rec, user, &now)?;
        if rec != before {
            rec.insert("Last Modified Date".into(), json!(now));
            rec.insert("Last Modified By".into(), json!(user));
            self.changes[i] = rec.clone();
            self.notify_change(&rec);
        }
        Ok(rec)
    }

    /// The rules a work log form applies to any new entry, of an incident or a change: the
    /// form's defaults (a work log nobody marked is Public), its selections and the summary's
    /// limits; then the entry's id (numbered per form), its audit fields and its date.
    fn complete_worklog(&mut self, rec: &mut Row, user: &str, of_change: bool, files: usize) -> Result<String, SimError> {
        for (f, d) in [("View Access", "Public"), ("Secure Work Log", "No"), ("Work Log Type", "General Information"), ("Communication Type", "Inbound")] {
            if text(rec, f).is_empty() {
                rec.insert(f.into(), json!(d));
            }
        }
        self.check_selection(rec, &["View Access", "Secure Work Log", "Work Log Type", "Communication Type"])?;
        if text(rec, "Description").is_empty() && text(rec, "Detailed Description").is_empty() {
            return Err(SimError::required("Description"));
        }
        if text(rec, "Description").chars().count() > 100 {
            return Err(SimError::out_of_limits("Description", "more than 100 characters"));
        }
        let now = ar_time(&self.now());
        let (prefix, counter) = if of_change { ("CLG", &mut self.next_change_worklog) } else { ("WLG", &mut self.next_worklog) };
        let id = format!("{prefix}{:012}", *counter);
        *counter += 1;
        for (k, v) in [
            ("Work Log ID", json!(id)),
            ("Submitter", json!(user)),
            ("Work Log Submitter", json!(user)),
            ("Submit Date", json!(now)),
            ("Work Log Submit Date", json!(now)),
            ("Last Modified By", json!(user)),
            ("Last Modified Date", json!(now)),
            ("Status", json!("Enabled")),
            ("Number of Attachments", json!(files)),
        ] {
            rec.insert(k.into(), v);
        }
        if text(rec, "Work Log Date").is_empty() {
            rec.insert("Work Log Date".into(), json!(now));
        }
        Ok(id)
    }

    /// `POST CHG:WorkLog`: a work log of the change named by `Infrastructure Change ID`. The
    /// change is not modified.
    fn create_change_worklog(&mut self, values: &Map<String, Value>, user: &str) -> Result<Row, SimError> {
        let mut rec = worklog_entry(CHANGE_WORKLOG, values, CHANGE_WORKLOG_FIELDS, CHANGE_WORKLOG_WRITABLE)?;
        let change = text(&rec, "Infrastructure Change ID");
        if change.is_empty() {
            return Err(SimError::required("Infrastructure Change ID"));
        }
        if !self.changes.iter().any(|r| text(r, "Infrastructure Change ID") == change) {
            return Err(SimError::workflow(&format!("The change {change} does not exist; the work information cannot be saved.")));
        }
        self.complete_worklog(&mut rec, user, true, 0)?;
        self.change_worklogs.push(rec.clone());
        Ok(rec)
    }
}

/// What an AR server leaves as it is in a path segment it writes: the unreserved characters
/// and `:` of form names.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b':');

fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

// ---- AR qualifications -----------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(String),
    Str(String),
    Num(f64),
    Null,
    And,
    Or,
    Not,
    Like,
    Op(&'static str),
    Open,
    Close,
}

fn lex(q: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '\'' => {
                let end = chars[i + 1..].iter().position(|&x| x == '\'').ok_or("unterminated field name")? + i + 1;
                out.push(Tok::Field(chars[i + 1..end].iter().collect()));
                i = end + 1;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('"') if chars.get(i + 1) == Some(&'"') => {
                            s.push('"');
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '!' | '<' | '>' | '=' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = ["!=", "<=", ">=", "=", "<", ">"].into_iter().find(|o| two.starts_with(o)).ok_or("bad operator")?;
                out.push(Tok::Op(op));
                i += op.len();
            }
            '$' => {
                let rest: String = chars[i..].iter().collect();
                if rest.to_ascii_uppercase().starts_with("$NULL$") {
                    out.push(Tok::Null);
                    i += 6;
                } else {
                    return Err("only $NULL$ is supported among keywords".into());
                }
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                out.push(Tok::Num(s.parse().map_err(|_| format!("bad number {s}"))?));
            }
            c if c.is_ascii_alphabetic() => {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_alphabetic() {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect::<String>().to_ascii_uppercase();
                out.push(match word.as_str() {
                    "AND" => Tok::And,
                    "OR" => Tok::Or,
                    "NOT" => Tok::Not,
                    "LIKE" => Tok::Like,
                    other => return Err(format!("unexpected word {other}")),
                });
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Operand {
    Field(String),
    Value(Value),
}

#[derive(Debug, Clone)]
enum Qual {
    All,
    And(Box<Qual>, Box<Qual>),
    Or(Box<Qual>, Box<Qual>),
    Not(Box<Qual>),
    Cmp(Operand, &'static str, Operand),
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
    /// Open parentheses and NOTs, bounded so a hostile qualification cannot exhaust the stack.
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn expr(&mut self) -> Result<Qual, String> {
        let mut left = self.term()?;
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            left = Qual::Or(Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }
    fn term(&mut self) -> Result<Qual, String> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            left = Qual::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Qual, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("the qualification nests too deeply".into());
        }
        let q = self.unary_inner();
        self.depth -= 1;
        q
    }
    fn unary_inner(&mut self) -> Result<Qual, String> {
        match self.peek() {
            Some(Tok::Not) => {
                self.at += 1;
                Ok(Qual::Not(Box::new(self.unary()?)))
            }
            Some(Tok::Open) => {
                self.at += 1;
                let e = self.expr()?;
                match self.next() {
                    Some(Tok::Close) => Ok(e),
                    _ => Err("missing )".into()),
                }
            }
            _ => {
                let a = self.operand()?;
                let op = match self.next() {
                    Some(Tok::Op(o)) => o,
                    Some(Tok::Like) => "LIKE",
                    other => return Err(format!("expected an operator, found {other:?}")),
                };
                let b = self.operand()?;
                Ok(Qual::Cmp(a, op, b))
            }
        }
    }
    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Tok::Field(f)) => Ok(Operand::Field(f)),
            Some(Tok::Str(s)) => Ok(Operand::Value(json!(s))),
            Some(Tok::Num(n)) => Ok(Operand::Value(json!(n))),
            Some(Tok::Null) => Ok(Operand::Value(Value::Null)),
            other => Err(format!("expected a field or a value, found {other:?}")),
        }
    }
}

fn parse_qualification(q: &str) -> Result<Qual, String> {
    if q.trim().is_empty() {
        return Ok(Qual::All);
    }
    let mut p = Parser { toks: lex(q)?, at: 0, depth: 0 };
    let e = p.expr()?;
    if p.at != p.toks.len() {
        return Err("unexpected text after the qualification".into());
    }
    Ok(e)
}

impl Qual {
    fn fields(&self, out: &mut Vec<String>) {
        match self {
            Qual::All => {}
            Qual::And(a, b) | Qual::Or(a, b) => {
                a.fields(out);
                b.fields(out);
            }
            Qual::Not(a) => a.fields(out),
            Qual::Cmp(a, _, b) => {
                for o in [a, b] {
                    if let Operand::Field(f) = o {
                        out.push(f.clone());
                    }
                }
            }
        }
    }

    fn matches(&self, row: &Row) -> bool {
        match self {
            Qual::All => true,
            Qual::And(a, b) => a.matches(row) && b.matches(row),
            Qual::Or(a, b) => a.matches(row) || b.matches(row),
            Qual::Not(a) => !a.matches(row),
            Qual::Cmp(a, op, b) => {
                let resolve = |o: &Operand| match o {
                    Operand::Field(f) => (row.get(f).cloned().map(|v| normalise(&v)).unwrap_or(Value::Null), DATE_FIELDS.contains(&f.as_str())),
                    Operand::Value(v) => (v.clone(), false),
                };
                let ((x, xd), (y, yd)) = (resolve(a), resolve(b));
                compare(&x, op, &y, xd || yd)
            }
        }
    }
}

/// AR's `LIKE`: `%` any run of characters, `_` one character. Iterative (greedy with one
/// backtrack point), so a long value or pattern cannot exhaust the stack.
fn like(value: &str, pattern: &str) -> bool {
    let v: Vec<char> = value.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < v.len() {
        if j < p.len() && (p[j] == '_' || p[j] == v[i]) && p[j] != '%' {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == '%' {
            star = Some((j, i));
            j += 1;
        } else if let Some((sj, si)) = star {
            j = sj + 1;
            i = si + 1;
            star = Some((sj, si + 1));
        } else {
            return false;
        }
    }
    p[j..].iter().all(|c| *c == '%')
}

fn compare(x: &Value, op: &str, y: &Value, dates: bool) -> bool {
    if x.is_null() || y.is_null() {
        return match op {
            "=" => x.is_null() && y.is_null(),
            "!=" => x.is_null() != y.is_null(),
            _ => false,
        };
    }
    let sx = match x {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let sy = match y {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if op == "LIKE" {
        return like(&sx, &sy);
    }
    let ord = if dates {
        match (parse_time(&sx), parse_time(&sy)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => sx.cmp(&sy),
        }
    } else {
        match (sx.parse::<f64>(), sy.parse::<f64>()) {
            (Ok(a), Ok(b)) => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
            _ => sx.cmp(&sy),
        }
    };
    match op {
        "=" => ord.is_eq(),
        "!=" => ord.is_ne(),
        "<" => ord.is_lt(),
        "<=" => ord.is_le(),
        ">" => ord.is_gt(),
        _ => ord.is_ge(),
    }
}

// ---- HTTP ------------------------------------------------------------------------------------

fn ar_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status).insert_header((header::CONTENT_TYPE, "application/json")).body(body.to_string())
}

fn auth_failed() -> HttpResponse {
    SimError::new(401, AR_AUTH, "Authentication failed", "").response()
}

fn log(sim: &RemedySim, req: &HttpRequest, status: u16, user: Option<String>) {
    let path = req.uri().path_and_query().map(|pq| pq.as_str().to_string()).unwrap_or_else(|| req.path().to_string());
    sim.lock().log.push(LoggedRequest { method: req.method().to_string(), path, status, user });
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    #[serde(rename = "authString")]
    #[allow(dead_code)]
    auth_string: Option<String>,
}

/// `POST /api/jwt/login`: form-encoded in, plain-text token out.
async fn login(req: HttpRequest, sim: web::Data<RemedySim>, body: web::Bytes) -> HttpResponse {
    let form: Option<LoginForm> = serde_urlencoded_form(&body);
    let (resp, user) = {
        let mut st = sim.lock();
        match form {
            Some(f) if f.username == st.config.user && f.password == st.config.password => {
                let token = st.issue_token(&f.username);
                (HttpResponse::Ok().insert_header((header::CONTENT_TYPE, "text/plain")).body(token), Some(f.username))
            }
            _ => (auth_failed(), None),
        }
    };
    log(&sim, &req, resp.status().as_u16(), user);
    resp
}

fn serde_urlencoded_form(body: &[u8]) -> Option<LoginForm> {
    let pairs: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    Some(LoginForm { username: pairs.get("username")?.clone(), password: pairs.get("password")?.clone(), auth_string: pairs.get("authString").cloned() })
}

async fn logout(req: HttpRequest, sim: web::Data<RemedySim>) -> HttpResponse {
    let token = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("AR-JWT ")).map(str::trim).map(str::to_string);
    let user = {
        let mut st = sim.lock();
        let user = st.authenticate(&req);
        if let (Some(t), Some(_)) = (&token, &user) {
            st.tokens.remove(t);
        }
        user
    };
    let resp = if user.is_some() { HttpResponse::NoContent().finish() } else { auth_failed() };
    log(&sim, &req, resp.status().as_u16(), user);
    resp
}

/// `/api/arsys/v1/entry/{form}[/{id}]`: faults and latency first, then AR itself.
async fn entry_api(req: HttpRequest, body: web::Bytes, sim: web::Data<RemedySim>) -> HttpResponse {
    let path = req.uri().path().strip_prefix("/api/arsys/v1/entry/").unwrap_or("");
    let segments: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(decode_segment).collect();
    let form = segments.first().cloned().unwrap_or_default();
    let (fault, latency) = {
        let mut st = sim.lock();
        (st.take_fault(req.method().as_str(), &form), st.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(Fault::TokenExpired) = &fault {
        if let Some(t) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("AR-JWT ")) {
            sim.lock().tokens.remove(t.trim());
        }
    }
    let user = sim.lock().authenticate(&req);
    let resp = match fault {
        Some(Fault::RateLimited { retry_after_secs }) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", retry_after_secs.to_string()))
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .body(json!({"error": "Too Many Requests", "message": "API rate limit exceeded"}).to_string()),
        Some(Fault::ServerError) => SimError::new(500, AR_NO_SERVER, "Cannot establish a network connection to the AR System server", "remedy-sim:0").response(),
        Some(Fault::Timeout { delay }) => {
            let (sim, req, segments, body, user) = (sim.clone(), req.clone(), segments.clone(), body.clone(), user.clone());
            super::answer_late(delay, move || serve(&sim, &req, &segments, &body, user.as_deref())).await
        }
        Some(Fault::LoseResponseAfterCommit) => {
            let _committed = serve(&sim, &req, &segments, &body, user.as_deref());
            HttpResponse::GatewayTimeout().insert_header((header::CONTENT_TYPE, "text/html")).body("<html><body><h1>504 Gateway Time-out</h1></body></html>")
        }
        Some(Fault::TokenExpired) | None => serve(&sim, &req, &segments, &body, user.as_deref()),
    };
    log(&sim, &req, resp.status().as_u16(), user);
    resp
}

/// `GET /api/arsys/v1.0/fields/{form}`: the form's field metadata, for any user who may log in.
async fn fields_api(req: HttpRequest, sim: web::Data<RemedySim>) -> HttpResponse {
    let form = decode_segment(req.match_info().get("form").unwrap_or(""));
    let user = sim.lock().authenticate(&req);
    let resp = match &user {
        None => auth_failed(),
        Some(_) => match sim.lock().form_fields(&form) {
            Some(fields) => ar_json(StatusCode::OK, &fields),
            None => SimError::new(404, AR_NO_FORM, "Form does not exist on server", form.clone()).response(),
        },
    };
    log(&sim, &req, resp.status().as_u16(), user);
    resp
}

/// `fields=values(A,B)` -> the names.
fn fields_param(params: &[(String, String)]) -> Option<Vec<String>> {
    let v = params.iter().find(|(k, _)| k == "fields")?.1.trim().to_string();
    let inner = v.strip_prefix("values(").and_then(|r| r.strip_suffix(')'))?;
    Some(inner.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

fn pick(row: &Row, fields: &Option<Vec<String>>) -> Value {
    match fields {
        None => row_value(row),
        Some(names) => Value::Object(names.iter().filter_map(|n| row.get(n).map(|v| (n.clone(), v.clone()))).collect()),
    }
}

/// Files of a work log create: (attachment field, file name, content).
type AttachedFiles = Vec<(String, String, Vec<u8>)>;

/// A work log create: JSON values, or multipart/form-data with an `entry` part of values and
/// one `attach-<field>` part per file.
fn worklog_request(req: &HttpRequest, body: &[u8]) -> Result<(Map<String, Value>, AttachedFiles), SimError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        return Ok((read_values(body)?, vec![]));
    }
    let parts = super::multipart(content_type, body).map_err(|e| SimError::bad_request(&e))?;
    let entry = parts.iter().find(|p| p.name == "entry").ok_or_else(|| SimError::bad_request("a multipart entry needs an `entry` part"))?;
    let values = read_values(&entry.data)?;
    let files = parts
        .into_iter()
        .filter_map(|p| {
            let field = p.name.strip_prefix("attach-")?.to_string();
            Some((field, p.file_name.unwrap_or_default(), p.data))
        })
        .collect();
    Ok((values, files))
}

fn read_values(body: &[u8]) -> Result<Map<String, Value>, SimError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| SimError::new(400, SIM_BAD_QUALIFICATION, "The request body is not valid JSON", e.to_string()))?;
    match v.get("values") {
        Some(Value::Object(m)) => Ok(m.clone()),
        _ => Err(SimError::new(400, SIM_BAD_QUALIFICATION, "The request body must be {\"values\": {...}}", "")),
    }
}

fn serve(sim: &RemedySim, req: &HttpRequest, segments: &[String], body: &[u8], user: Option<&str>) -> HttpResponse {
    let Some(user) = user else { return auth_failed() };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    let fields = fields_param(&params);
    let method = req.method().clone();
    let mut st = sim.lock();
    let (form, id) = match segments {
        [form] => (form.as_str(), None),
        [form, id] => (form.as_str(), Some(id.as_str())),
        [form, id, attach, field] if form == WORKLOG && attach == "attach" && method == Method::GET => {
            return match st.files.get(&(id.clone(), field.clone())) {
                Some(data) => HttpResponse::Ok().content_type("application/octet-stream").body(data.clone()),
                None if st.worklogs.iter().any(|w| text(w, "Work Log ID") == *id) => {
                    SimError::new(404, AR_NOT_FOUND, "Entry does not exist in database", format!("{WORKLOG} : {id} : {field}")).response()
                }
                None => SimError::not_found(WORKLOG, id).response(),
            };
        }
        _ => return SimError::new(404, AR_NO_FORM, "Form does not exist on server", segments.join("/")).response(),
    };
    let no_access = |what: &str| Err(SimError::new(403, SIM_NO_ACCESS, "You have no access to this operation on the form", format!("{what} {form} : {user}")));
    let incident_forms = [INTERFACE, HELP_DESK, CREATE_FORM, WORKLOG].contains(&form);
    let result: Result<HttpResponse, SimError> = match (form, &method, id) {
        (_, &Method::GET, _) if incident_forms && !st.in_group(READ_GROUPS) => no_access("read"),
        (CREATE_FORM, &Method::POST, None) if !st.in_group(CREATE_GROUPS) => no_access("create"),
        (INTERFACE | HELP_DESK | WORKLOG, &Method::POST | &Method::PUT, _) if !st.in_group(MODIFY_GROUPS) => no_access("modify"),
        ("User", &Method::GET, None) => query(&st, form, &st.user_rows(), &params, &fields, "Login Name"),
        ("Group", &Method::GET, None) => query(&st, form, &st.group_rows(), &params, &fields, "Group ID"),
        (CREATE_FORM, &Method::POST, None) => read_values(body).and_then(|values| {
            let (answer, create_id) = st.create_incident(&values, user)?;
            let allowed = |n: &str| CREATE_FIELDS.iter().any(|(c, _)| *c == n) || CREATE_ANSWER_FIELDS.contains(&n);
            Ok(created(st.entry_href(CREATE_FORM, &create_id), create_answer(&answer, &fields, allowed)))
        }),
        (CREATE_FORM, _, _) => Err(SimError::new(400, SIM_WORKFLOW, "The create interface only accepts new entries", CREATE_FORM)),
        (INTERFACE | HELP_DESK, &Method::GET, None) => query(
            &st,
            form,
            &st.incidents.iter().map(|r| if form == HELP_DESK { st.help_desk_row(r) } else { st.interface_row(r) }).collect::<Vec<_>>(),
            &params,
            &fields,
            "Entry ID",
        ),
        (INTERFACE | HELP_DESK, &Method::GET, Some(id)) => match st.by_entry(id) {
            Some(i) => {
                let row = if form == HELP_DESK { st.help_desk_row(&st.incidents[i]) } else { st.interface_row(&st.incidents[i]) };
                Ok(ar_json(StatusCode::OK, &entry_json(&st, form, &row, &fields, "Entry ID")))
            }
            None => Err(SimError::not_found(form, id)),
        },
        (INTERFACE | HELP_DESK, &Method::PUT, Some(id)) => match st.by_entry(id) {
            Some(i) => read_values(body).and_then(|values| st.modify_incident(i, &values, user)).map(|_| HttpResponse::NoContent().finish()),
            None => Err(SimError::not_found(form, id)),
        },
        (WORKLOG | CHANGE_WORKLOG, &Method::GET, None) => query(&st, form, st.worklogs_of(form), &params, &fields, "Work Log ID"),
        (WORKLOG | CHANGE_WORKLOG, &Method::GET, Some(id)) => match st.worklogs_of(form).iter().find(|w| text(w, "Work Log ID") == id) {
            Some(row) => Ok(ar_json(StatusCode::OK, &entry_json(&st, form, row, &fields, "Work Log ID"))),
            None => Err(SimError::not_found(form, id)),
        },
        (WORKLOG, &Method::POST, None) => worklog_request(req, body).and_then(|(values, files)| {
            let row = st.create_worklog(&values, files, user)?;
            Ok(created(st.entry_href(WORKLOG, &text(&row, "Work Log ID")), fields.as_ref().map(|_| pick(&row, &fields))))
        }),
        (CHANGE_CREATE_FORM, &Method::POST, None) => read_values(body).and_then(|values| {
            let (answer, create_id) = st.create_change(&values, user)?;
            let allowed = |n: &str| CHANGE_CREATE_FIELDS.iter().any(|(c, _)| *c == n) || CHANGE_CREATE_ANSWER_FIELDS.contains(&n);
            Ok(created(st.entry_href(CHANGE_CREATE_FORM, &create_id), create_answer(&answer, &fields, allowed)))
        }),
        (CHANGE_CREATE_FORM, _, _) => Err(SimError::new(400, SIM_WORKFLOW, "The create interface only accepts new entries", CHANGE_CREATE_FORM)),
        (CHANGE_INTERFACE | CHANGE_BASE, &Method::GET, None) => query(&st, form, &st.changes, &params, &fields, "Request ID"),
        (CHANGE_INTERFACE | CHANGE_BASE, &Method::GET, Some(id)) => match st.change_by_id(id) {
            Some(i) => Ok(ar_json(StatusCode::OK, &entry_json(&st, form, &st.changes[i], &fields, "Request ID"))),
            None => Err(SimError::not_found(form, id)),
        },
        (CHANGE_INTERFACE | CHANGE_BASE, &Method::PUT, Some(id)) => match st.change_by_id(id) {
            Some(i) => read_values(body).and_then(|values| st.modify_change(i, &values, user)).map(|_| HttpResponse::NoContent().finish()),
            None => Err(SimError::not_found(form, id)),
        },
        (CHANGE_WORKLOG, &Method::POST, None) => read_values(body).and_then(|values| {
            let row = st.create_change_worklog(&values, user)?;
            Ok(created(st.entry_href(CHANGE_WORKLOG, &text(&row, "Work Log ID")), fields.as_ref().map(|_| pick(&row, &fields))))
        }),
        (INTERFACE | HELP_DESK | WORKLOG | CHANGE_INTERFACE | CHANGE_BASE | CHANGE_WORKLOG, _, _) => {
            Err(SimError::new(405, SIM_WORKFLOW, "The simulator does not support this operation", format!("{method} {form}")))
        }
        _ => Err(SimError::new(404, AR_NO_FORM, "Form does not exist on server", form)),
    };
    result.unwrap_or_else(|e| e.response())
}

/// One entry as the REST API answers it: the picked values and the entry's own link, its id
/// read from `id_field`.
fn entry_json(st: &State, form: &str, row: &Row, fields: &Option<Vec<String>>, id_field: &str) -> Value {
    json!({"values": pick(row, fields), "_links": {"self": [{"href": st.entry_href(form, &text(row, id_field))}]}})
}

/// `201 Created` with the new entry's location; with `values`, a body of them and the link.
fn created(location: String, values: Option<Value>) -> HttpResponse {
    let mut resp = HttpResponse::Created();
    resp.insert_header((header::LOCATION, location.clone()));
    match values {
        Some(values) => resp.insert_header((header::CONTENT_TYPE, "application/json")).body(json!({"values": values, "_links": {"self": [{"href": location}]}}).to_string()),
        None => resp.finish(),
    }
}

/// The values a create interface answers with when `?fields=values(...)` names them: those of
/// the names the form knows (`allowed`), null where the create left them unset.
fn create_answer(answer: &Map<String, Value>, fields: &Option<Vec<String>>, allowed: impl Fn(&str) -> bool) -> Option<Value> {
    let names = fields.as_ref()?;
    Some(Value::Object(names.iter().filter(|n| allowed(n)).map(|n| (n.clone(), answer.get(n).cloned().unwrap_or(Value::Null))).collect()))
}

/// A query answer: qualification, sort, paging with `_links.next`.
fn query(st: &State, form: &str, rows: &[Row], params: &[(String, String)], fields: &Option<Vec<String>>, id_field: &str) -> Result<HttpResponse, SimError> {
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let qual = parse_qualification(param("q").unwrap_or("")).map_err(|e| SimError::bad_request(&format!("The qualification is not valid: {e}")))?;
    let mut named = Vec::new();
    qual.fields(&mut named);
    let known: &[&str] = match form {
        WORKLOG => WORKLOG_FIELDS,
        "User" => USER_FIELDS,
        "Group" => GROUP_FIELDS,
        CHANGE_INTERFACE | CHANGE_BASE => CHANGE_FIELDS,
        CHANGE_WORKLOG => CHANGE_WORKLOG_FIELDS,
        _ => INCIDENT_FIELDS,
    };
    if let Some(bad) = named.iter().find(|f| !known.contains(&f.as_str())) {
        return Err(SimError::no_such_field(form, bad));
    }
    let mut matched: Vec<&Row> = rows.iter().filter(|r| qual.matches(r)).collect();
    if let Some(sort) = param("sort") {
        let keys: Vec<(String, bool)> = sort
            .split(',')
            .filter_map(|k| {
                let k = k.trim();
                let (name, desc) = match k.rsplit_once('.') {
                    Some((n, d)) if d.eq_ignore_ascii_case("desc") => (n, true),
                    Some((n, a)) if a.eq_ignore_ascii_case("asc") => (n, false),
                    _ => (k, false),
                };
                (!name.is_empty()).then(|| (name.to_string(), desc))
            })
            .collect();
        matched.sort_by(|a, b| {
            keys.iter()
                .map(|(f, desc)| {
                    let (x, y) = (a.get(f).map(normalise).unwrap_or(Value::Null), b.get(f).map(normalise).unwrap_or(Value::Null));
                    let o = if compare(&x, "<", &y, DATE_FIELDS.contains(&f.as_str())) {
                        std::cmp::Ordering::Less
                    } else if compare(&x, ">", &y, DATE_FIELDS.contains(&f.as_str())) {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Equal
                    };
                    if *desc {
                        o.reverse()
                    } else {
                        o
                    }
                })
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }
    let offset = param("offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0);
    let limit = param("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0).unwrap_or(MAX_ENTRIES).min(MAX_ENTRIES);
    let entries: Vec<Value> = matched.iter().skip(offset).take(limit).map(|r| entry_json(st, form, r, fields, id_field)).collect();
    let link = |off: usize| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.iter().filter(|(k, _)| k != "offset" && k != "limit") {
            q.append_pair(k, v);
        }
        q.append_pair("offset", &off.to_string());
        q.append_pair("limit", &limit.to_string());
        format!("{}/api/arsys/v1/entry/{}?{}", st.base(), encode_segment(form), q.finish())
    };
    let mut links = json!({"self": [{"href": link(offset)}]});
    if offset.saturating_add(limit) < matched.len() {
        links["next"] = json!([{"href": link(offset + limit)}]);
    }
    Ok(ar_json(StatusCode::OK, &json!({"entries": entries, "_links": links})))
}

// ---- /sim control surface (no auth, no faults) -----------------------------------------------

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Control {
    RateLimited {
        #[serde(default)]
        retry_after_secs: u64,
        #[serde(flatten)]
        target: FaultTarget,
    },
    ServerError {
        #[serde(flatten)]
        target: FaultTarget,
    },
    Timeout {
        delay_ms: u64,
        #[serde(flatten)]
        target: FaultTarget,
    },
    LoseResponseAfterCommit {
        #[serde(flatten)]
        target: FaultTarget,
    },
    TokenExpired {
        #[serde(flatten)]
        target: FaultTarget,
    },
    /// Invalidates every issued token now.
    ExpireTokens,
    Latency {
        ms: u64,
    },
    Chance(super::ChanceSpec),
    WebhookBehaviour(WebhookBehaviour),
}

#[derive(Deserialize)]
struct AgentQuery {
    user: Option<String>,
}

/// Body of `POST /sim/incidents/{number}/agent`.
#[derive(Deserialize)]
struct AgentAction {
    #[serde(default)]
    values: Map<String, Value>,
    work_log: Option<AgentWorkLog>,
}

#[derive(Deserialize)]
struct AgentWorkLog {
    #[serde(default)]
    text: String,
    #[serde(default = "public")]
    view_access: String,
    /// A file the work log holds, with its content in base64.
    file_name: Option<String>,
    content_base64: Option<String>,
}

fn public() -> String {
    "Public".into()
}

async fn sim_incidents(sim: web::Data<RemedySim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.incidents())
}

async fn sim_worklogs(sim: web::Data<RemedySim>) -> HttpResponse {
    let all: Vec<Value> = sim.lock().worklogs.iter().map(row_value).collect();
    HttpResponse::Ok().json(all)
}

async fn sim_requests(sim: web::Data<RemedySim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.request_log())
}

async fn sim_agent(sim: web::Data<RemedySim>, path: web::Path<String>, query: web::Query<AgentQuery>, body: web::Bytes) -> HttpResponse {
    let number = path.into_inner();
    let current = || sim.incidents().into_iter().find(|v| v["Incident Number"] == number).ok_or_else(|| SimError::not_found(INTERFACE, &number));
    agent_action(
        &body,
        current,
        |values| sim.agent_update_as(&number, &agent_user(&query), values),
        |w| match (&w.file_name, &w.content_base64) {
            (Some(name), Some(content)) => match base64::engine::general_purpose::STANDARD.decode(content.trim()) {
                Ok(data) => sim.agent_attach(&number, &w.view_access, &w.text, name, data),
                Err(e) => Err(SimError::bad_request(&format!("content_base64: {e}"))),
            },
            _ => sim.agent_work_log(&number, &w.view_access, &w.text),
        },
    )
}

fn agent_user(query: &AgentQuery) -> String {
    query.user.clone().unwrap_or_else(|| DEFAULT_AGENT.to_string())
}

/// An agent's action on one record: sets `values` (none: the record is only read) and may add
/// a work log; answers with the record after, or the first error.
fn agent_action(
    body: &[u8],
    current: impl Fn() -> Result<Value, SimError>,
    update: impl FnOnce(Value) -> Result<Value, SimError>,
    add_work_log: impl FnOnce(AgentWorkLog) -> Result<Value, SimError>,
) -> HttpResponse {
    let action: AgentAction = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(e) => return SimError::bad_request(&format!("expected {{\"values\": {{...}}, \"work_log\": {{\"text\", \"view_access\"}}}}: {e}")).response(),
    };
    let mut result = if action.values.is_empty() { current() } else { update(Value::Object(action.values)) };
    if let (Ok(_), Some(w)) = (&result, action.work_log) {
        result = add_work_log(w).and_then(|_| current());
    }
    match result {
        Ok(v) => HttpResponse::Ok().json(json!({ "values": v })),
        Err(e) => e.response(),
    }
}

async fn sim_changes(sim: web::Data<RemedySim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.changes())
}

async fn sim_change_worklogs(sim: web::Data<RemedySim>) -> HttpResponse {
    let all: Vec<Value> = sim.lock().change_worklogs.iter().map(row_value).collect();
    HttpResponse::Ok().json(all)
}

/// `POST /sim/changes/{id}/agent`: the change coordinator sets `values` (read names) and may
/// add a work log (`work_log: {"text", "view_access"}`; change work logs here carry no files).
async fn sim_change_agent(sim: web::Data<RemedySim>, path: web::Path<String>, query: web::Query<AgentQuery>, body: web::Bytes) -> HttpResponse {
    let id = path.into_inner();
    let current = || {
        let st = sim.lock();
        st.change_by_id(&id).map(|i| row_value(&st.changes[i])).ok_or_else(|| SimError::not_found(CHANGE_INTERFACE, &id))
    };
    agent_action(
        &body,
        current,
        |values| sim.agent_update_change_as(&id, &agent_user(&query), values),
        |w| {
            if w.file_name.is_some() || w.content_base64.is_some() {
                Err(SimError::bad_request("the simulator files no attachments in change work logs"))
            } else {
                sim.agent_change_work_log(&id, &w.view_access, &w.text)
            }
        },
    )
}

async fn sim_faults(sim: web::Data<RemedySim>, body: web::Bytes) -> HttpResponse {
    let control = match serde_json::from_slice::<Control>(&body) {
        Ok(c) => c,
        Err(e) => return SimError::bad_request(&e.to_string()).response(),
    };
    let (target, fault) = match control {
        Control::RateLimited { retry_after_secs, target } => (target, Fault::RateLimited { retry_after_secs }),
        Control::ServerError { target } => (target, Fault::ServerError),
        Control::Timeout { delay_ms, target } => (target, Fault::Timeout { delay: Duration::from_millis(delay_ms) }),
        Control::LoseResponseAfterCommit { target } => (target, Fault::LoseResponseAfterCommit),
        Control::TokenExpired { target } => (target, Fault::TokenExpired),
        Control::ExpireTokens => {
            sim.expire_tokens();
            return HttpResponse::NoContent().finish();
        }
        Control::Latency { ms } => {
            sim.set_latency(Duration::from_millis(ms));
            return HttpResponse::NoContent().finish();
        }
        Control::Chance(spec) => {
            sim.set_chance(spec);
            return HttpResponse::NoContent().finish();
        }
        Control::WebhookBehaviour(b) => {
            sim.set_webhook_behaviour(b);
            return HttpResponse::NoContent().finish();
        }
    };
    sim.push_fault_for(target, fault);
    HttpResponse::Ok().json(json!({ "queued": sim.lock().faults.len() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, HttpServer};
    use std::net::TcpListener;

    const USER: &str = "hub.integration";
    const PASSWORD: &str = "s3cret";

    fn config() -> SimConfig {
        SimConfig { user: USER.into(), password: PASSWORD.into(), ..SimConfig::default() }
    }

    /// A started simulator and a logged-in client; answers come back parsed.
    struct Api {
        sim: RemedySim,
        base: String,
        http: reqwest::Client,
        token: String,
    }

    impl Api {
        async fn start(config: SimConfig) -> Api {
            let sim = RemedySim::new(config);
            sim.start(TcpListener::bind("127.0.0.1:0").expect("bind")).expect("start");
            let base = sim.base_url().expect("base url");
            let http = reqwest::Client::new();
            let mut api = Api { sim, base, http, token: String::new() };
            api.token = api.login(USER, PASSWORD).await.expect("login");
            api
        }

        async fn login(&self, user: &str, password: &str) -> Result<String, (u16, Value)> {
            let resp = self.http.post(format!("{}/api/jwt/login", self.base)).form(&[("username", user), ("password", password)]).send().await.expect("request");
            let status = resp.status().as_u16();
            let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let text = resp.text().await.expect("body");
            if status == 200 {
                assert_eq!(ct, "text/plain", "the token is plain text");
                Ok(text)
            } else {
                Err((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
            }
        }

        async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, reqwest::header::HeaderMap, Value) {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let mut req = self.http.request(method, format!("{}{path}", self.base)).header("Authorization", format!("AR-JWT {}", self.token));
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.expect("request");
            let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
            let text = resp.text().await.expect("body");
            (status, headers, serde_json::from_str(&text).unwrap_or(if text.is_empty() { Value::Null } else { Value::String(text) }))
        }

        async fn create(&self, values: Value) -> Value {
            let (status, _, body) =
                self.call("POST", "/api/arsys/v1/entry/HPD:IncidentInterface_Create?fields=values(Incident_Entry_ID,Incident%20Number)", Some(json!({ "values": values }))).await;
            assert_eq!(status, 201, "{body}");
            body["values"].clone()
        }
    }

    fn create_values() -> Value {
        json!({
            "z1D_Action": "CREATE", "Login_ID": "Mary", "Description": "Printer jammed",
            "Detailed_Decription": "Tray 2 jams on every job", "Impact": "3-Moderate/Limited",
            "Urgency": "2-High", "Status": "Assigned", "Reported Source": "Web",
            "Service_Type": "User Service Restoration", "Vendor Ticket Number": "INC-000001",
        })
    }

    #[actix_web::test]
    async fn login_issues_plain_text_tokens_and_refuses_bad_credentials() {
        let api = Api::start(config()).await;
        assert_eq!(api.token.split('.').count(), 3, "a JWT: {}", api.token);
        let (status, body) = api.login(USER, "guess").await.unwrap_err();
        assert_eq!(status, 401);
        assert_eq!(body[0]["messageNumber"], 623);
        let (status, _, body) = api.call("GET", "/api/arsys/v1/entry/HPD:IncidentInterface", None).await;
        assert_eq!((status, body["entries"].clone()), (200, json!([])));
        // Basic auth and unknown tokens get the AR authentication error.
        let resp = api.http.get(format!("{}/api/arsys/v1/entry/HPD:IncidentInterface", api.base)).basic_auth(USER, Some(PASSWORD)).send().await.expect("request");
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body[0]["messageType"], "ERROR");
        assert_eq!(body[0]["messageText"], "Authentication failed");
        let (status, _, _) = api.call("POST", "/api/jwt/logout", None).await;
        assert_eq!(status, 204);
        let (status, _, _) = api.call("GET", "/api/arsys/v1/entry/HPD:IncidentInterface", None).await;
        assert_eq!(status, 401, "a logged-out token is dead");
    }

    #[actix_web::test]
    async fn tokens_expire_by_lifetime_on_demand_and_by_fault() {
        let api = Api::start(SimConfig { token_ttl: Duration::from_millis(300), ..config() }).await;
        let path = "/api/arsys/v1/entry/HPD:IncidentInterface";
        assert_eq!(api.call("GET", path, None).await.0, 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (status, _, body) = api.call("GET", path, None).await;
        assert_eq!((status, body[0]["messageNumber"].clone()), (401, json!(623)));

        api.sim.set_token_ttl(Duration::from_secs(3600));
        let mut api = api;
        api.token = api.login(USER, PASSWORD).await.expect("login");
        assert_eq!(api.call("GET", path, None).await.0, 200);
        api.sim.expire_tokens();
        assert_eq!(api.call("GET", path, None).await.0, 401);
        api.token = api.login(USER, PASSWORD).await.expect("login");
        api.sim.push_fault(Fault::TokenExpired);
        assert_eq!(api.call("GET", path, None).await.0, 401);
        assert_eq!(api.call("GET", path, None).await.0, 401, "the expired token stays expired");
    }

    #[actix_web::test]
    async fn create_uses_create_names_and_reads_come_back_in_read_names() {
        let api = Api::start(config()).await;
        let (status, headers, body) = api.call("POST", "/api/arsys/v1/entry/HPD:IncidentInterface_Create", Some(json!({ "values": create_values() }))).await;
        assert_eq!(status, 201);
        assert_eq!(body, Value::Null, "no body without ?fields");
        let location = headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(location.contains("/api/arsys/v1/entry/HPD:IncidentInterface_Create/0000000000001"), "{location}");

        let created = api.create(create_values()).await;
        let entry = created["Incident_Entry_ID"].as_str().expect("entry id").to_string();
        let number = created["Incident Number"].as_str().expect("number").to_string();
        assert_ne!(entry, number, "Entry ID and Incident Number are different INC numbers");
        assert!(entry.starts_with("INC") && number.starts_with("INC"));

        let (status, _, read) = api.call("GET", &format!("/api/arsys/v1/entry/HPD:IncidentInterface/{entry}%7C{entry}"), None).await;
        assert_eq!(status, 200);
        let v = &read["values"];
        assert_eq!(v["Request ID"], format!("{entry}|{entry}"));
        assert_eq!(v["Detailed Decription"], "Tray 2 jams on every job");
        assert!(v.get("Detailed_Decription").is_none());
        assert_eq!(v["Service Type"], "User Service Restoration");
        assert_eq!((v["First Name"].as_str(), v["Last Name"].as_str()), (Some("Mary"), Some("Mann")));
        assert_eq!((v["Priority"].as_str(), v["Priority Weight"].as_i64()), (Some("High"), Some(18)));
        assert_eq!(v["Assigned Group"], "Service Desk", "assignment routing filled the group");
        assert_eq!(v["Status_Reason"], Value::Null);
        let lmd = v["Last Modified Date"].as_str().expect("date");
        assert!(lmd.ends_with(".000+0000") && lmd.len() == 28, "{lmd}");
        assert_eq!(read["_links"]["self"][0]["href"].as_str().map(|h| h.ends_with(&entry)), Some(true));

        // The base form has no composite Request ID; an unknown id is AR error 302.
        let (_, _, base) = api.call("GET", &format!("/api/arsys/v1/entry/HPD:Help%20Desk/{entry}"), None).await;
        assert!(base["values"].get("Request ID").is_none());
        assert_eq!(base["values"]["Incident Number"], number);
        let (status, _, err) = api.call("GET", "/api/arsys/v1/entry/HPD:IncidentInterface/INC000000000999", None).await;
        assert_eq!(status, 404);
        assert_eq!(
            err,
            json!([{"messageType": "ERROR", "messageText": "Entry does not exist in database", "messageAppendedText": "HPD:IncidentInterface : INC000000000999", "messageNumber": 302}])
        );
        let (status, _, err) = api.call("GET", "/api/arsys/v1/entry/HPD:Nothing", None).await;
        assert_eq!((status, err[0]["messageNumber"].clone()), (404, json!(303)));
    }

    #[actix_web::test]
    async fn create_traps_action_names_labels_and_required_fields() {
        let api = Api::start(config()).await;
        let mut no_action = create_values();
        no_action.as_object_mut().map(|o| o.remove("z1D_Action"));
        let created = api.create(no_action).await;
        assert_eq!(created["Incident Number"], Value::Null);
        assert!(api.sim.incidents().is_empty(), "without z1D_Action no incident is made");

        let post = |values: Value| api.call("POST", "/api/arsys/v1/entry/HPD:IncidentInterface_Create", Some(json!({ "values": values })));
        let mut read_name = create_values();
        read_name["Detailed Decription"] = json!("the read name");
        let (status, _, err) = post(read_name).await;
        assert_eq!((status, err[0]["messageText"].as_str()), (400, Some("Field does not exist on current form")));
        let mut bad_label = create_values();
        bad_label["Impact"] = json!("2");
        let (status, _, err) = post(bad_label).await;
        assert_eq!((status, err[0]["messageNumber"].clone()), (400, json!(306)));
        let mut pending = create_values();
        pending["Status"] = json!("Pending");
        let (status, _, err) = post(pending).await;
        assert_eq!((status, err[0]["messageNumber"].clone(), err[0]["messageAppendedText"].clone()), (400, json!(326), json!("Status_Reason")));
        let mut long = create_values();
        long["Description"] = json!("x".repeat(101));
        assert_eq!(post(long).await.0, 400);
        let mut stranger = create_values();
        stranger["Login_ID"] = json!("nobody");
        let (status, _, err) = post(stranger).await;
        assert_eq!((status, err[0]["messageNumber"].clone()), (400, json!(SIM_WORKFLOW)));
        assert!(api.sim.incidents().is_empty());
    }

    #[actix_web::test]
    async fn put_changes_only_what_it_names_and_enforces_reasons() {
        let api = Api::start(config()).await;
        let entry = api.create(create_values()).await["Incident_Entry_ID"].as_str().unwrap_or("").to_string();
        let path = format!("/api/arsys/v1/entry/HPD:IncidentInterface/{entry}%7C{entry}");
        let before = api.sim.incidents()[0].clone();
        let (status, _, err) = api.call("PUT", &path, Some(json!({"values": {"Status": "Pending"}}))).await;
        assert_eq!((status, err[0]["messageNumber"].clone()), (400, json!(326)));
        let (status, _, body) = api.call("PUT", &path, Some(json!({"values": {"Status": "Pending", "Status_Reason": "Client Hold"}}))).await;
        assert_eq!((status, body), (204, Value::Null));
        let after = api.sim.incidents()[0].clone();
        assert_eq!(after["Description"], before["Description"]);
        assert_eq!(after["Status_Reason"], "Client Hold");
        assert!(after["Status-History"]["Pending"]["timestamp"].is_string());
        // A new status without a reason clears the old one; Resolved needs its own.
        api.call("PUT", &path, Some(json!({"values": {"Status": "In Progress"}}))).await;
        assert_eq!(api.sim.incidents()[0]["Status_Reason"], Value::Null);
        assert_eq!(api.call("PUT", &path, Some(json!({"values": {"Status": "Resolved"}}))).await.0, 400);
        api.call("PUT", &path, Some(json!({"values": {"Status": "Resolved", "Status_Reason": "No Further Action Required", "Resolution": "Cleared the tray"}}))).await;
        let resolved = api.sim.incidents()[0].clone();
        assert!(resolved["Last Resolved Date"].is_string());
        // Writing the computed priority changes nothing; unknown fields are refused.
        api.call("PUT", &path, Some(json!({"values": {"Priority": "Low", "Impact": "1-Extensive/Widespread", "Urgency": "1-Critical"}}))).await;
        let now = api.sim.incidents()[0].clone();
        assert_eq!((now["Priority"].as_str(), now["Priority Weight"].as_i64()), (Some("Critical"), Some(29)));
        let (status, _, _) = api.call("PUT", &path, Some(json!({"values": {"u_custom": 1}}))).await;
        assert_eq!(status, 400);
        // A save that changes nothing keeps the modification date.
        let lmd = now["Last Modified Date"].clone();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(api.call("PUT", &path, Some(json!({"values": {"Impact": "1-Extensive/Widespread"}}))).await.0, 204);
        assert_eq!(api.sim.incidents()[0]["Last Modified Date"], lmd);
    }

    #[test]
    fn default_weights_give_the_reference_matrix() {
        let expect = [
            ("1-Extensive/Widespread", ["Critical", "Critical", "High", "Low"]),
            ("2-Significant/Large", ["Critical", "High", "Medium", "Low"]),
            ("3-Moderate/Limited", ["High", "High", "Medium", "Low"]),
            ("4-Minor/Localized", ["High", "Medium", "Medium", "Low"]),
        ];
        for (impact, row) in expect {
            for ((urgency, _), want) in URGENCIES.iter().zip(row) {
                assert_eq!(priority_for(impact, urgency).map(|p| p.0), Some(want), "{impact} x {urgency}");
            }
        }
        assert_eq!(priority_for("2-Significant/Large", "1-Critical"), Some(("Critical", 25)));
        assert_eq!(priority_for("4-Minor/Localized", "3-Medium"), Some(("Medium", 10)));
    }

    #[test]
    fn qualifications_parse_and_match() {
        let row: Row = [
            ("Status", json!("Assigned")),
            ("Vendor Ticket Number", json!("INC-000042")),
            ("Last Modified Date", json!("2024-05-01T10:00:05.000+0000")),
            ("Priority Weight", json!(18)),
            ("Resolution", Value::Null),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let m = |q: &str| parse_qualification(q).map(|x| x.matches(&row));
        assert_eq!(m("'Status' = \"Assigned\""), Ok(true));
        assert_eq!(m("'Last Modified Date' >= \"2024-05-01T10:00:05Z\" AND 'Vendor Ticket Number' LIKE \"INC-%\""), Ok(true));
        assert_eq!(m("'Last Modified Date' > \"2024-05-01T10:00:05.000+0000\""), Ok(false));
        assert_eq!(m("('Status' = \"New\" OR 'Status' = \"Assigned\") AND NOT 'Priority Weight' < 10"), Ok(true));
        assert_eq!(m("'Resolution' = $NULL$ AND 'Status' != $NULL$"), Ok(true));
        assert_eq!(m("'Vendor Ticket Number' LIKE \"CHG-%\""), Ok(false));
        assert_eq!(m("'Status' = \"say \"\"hi\"\"\""), Ok(false));
        for bad in ["'Status' = ", "'Status' \"x\"", "('Status' = \"x\"", "'Status = \"x\"", "'Status' = \"x\" junk"] {
            assert!(parse_qualification(bad).is_err(), "{bad}");
        }
        assert!(like("abc", "a_c") && like("abc", "%") && !like("abc", "b%"));
        assert!(like("INC-000042", "INC-%") && like("abcabd", "%abd") && like("", "%") && !like("ab", "a") && like("a%b", "a%b"));
        assert!(!like(&"a".repeat(20_000), &format!("{}b", "%a".repeat(50))));
        assert!(parse_qualification(&format!("{}'Status' = \"x\"{}", "(".repeat(10_000), ")".repeat(10_000))).is_err());
    }

    #[actix_web::test]
    async fn queries_page_with_next_links_and_refuse_unknown_fields() {
        let api = Api::start(config()).await;
        for i in 0..5 {
            let mut v = create_values();
            v["Vendor Ticket Number"] = json!(format!("INC-00000{i}"));
            v["Description"] = json!(format!("item {i}"));
            api.create(v).await;
        }
        let q = "/api/arsys/v1/entry/HPD:IncidentInterface?q=%27Vendor%20Ticket%20Number%27%20LIKE%20%22INC-%25%22&fields=values(Incident%20Number,Description)&sort=Incident%20Number.desc&limit=2&offset=2";
        let (status, _, page) = api.call("GET", q, None).await;
        assert_eq!(status, 200, "{page}");
        let titles: Vec<&str> = page["entries"].as_array().expect("entries").iter().filter_map(|e| e["values"]["Description"].as_str()).collect();
        assert_eq!(titles, ["item 2", "item 1"]);
        assert_eq!(page["entries"][0]["values"].as_object().map(|o| o.len()), Some(2), "only the fields asked for");
        let next = page["_links"]["next"][0]["href"].as_str().expect("a next link");
        assert!(next.contains("offset=4"), "{next}");
        let (_, _, last) = api.call("GET", next.trim_start_matches(&api.base), None).await;
        assert_eq!(last["entries"].as_array().map(Vec::len), Some(1));
        assert!(last["_links"].get("next").is_none());
        let (status, _, err) = api.call("GET", "/api/arsys/v1/entry/HPD:IncidentInterface?q=%27Nope%27%20%3D%20%221%22", None).await;
        assert_eq!((status, err[0]["messageText"].as_str()), (400, Some("Field does not exist on current form")));
        let (status, _, _) = api.call("GET", "/api/arsys/v1/entry/HPD:IncidentInterface?q=%27Status%27%20%3D", None).await;
        assert_eq!(status, 400);
    }

    #[actix_web::test]
    async fn work_logs_are_separate_records_public_by_default() {
        let api = Api::start(config()).await;
        let created = api.create(create_values()).await;
        let number = created["Incident Number"].as_str().unwrap_or("").to_string();
        let lmd = api.sim.incidents()[0]["Last Modified Date"].clone();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (status, headers, body) =
            api.call("POST", "/api/arsys/v1/entry/HPD:WorkLog", Some(json!({"values": {"Incident Number": number, "Detailed Description": "forgot the view access"}}))).await;
        assert_eq!((status, body), (201, Value::Null));
        assert!(headers.get("location").and_then(|l| l.to_str().ok()).is_some_and(|l| l.contains("/HPD:WorkLog/WLG")));
        let (status, _, body) = api
            .call(
                "POST",
                "/api/arsys/v1/entry/HPD:WorkLog?fields=values(Work%20Log%20ID,View%20Access)",
                Some(json!({"values": {"Incident Number": number, "Description": "internal", "Detailed Description": "internal", "View Access": "Internal"}})),
            )
            .await;
        assert_eq!(status, 201);
        assert_eq!(body["values"]["View Access"], "Internal");
        api.sim.agent_work_log(&number, "Public", "Called the customer").expect("agent work log");
        let logs = api.sim.worklogs(&number);
        let access: Vec<&str> = logs.iter().filter_map(|l| l["View Access"].as_str()).collect();
        assert_eq!(access, ["Public", "Internal", "Public"]);
        assert_eq!(logs[2]["Work Log Submitter"], DEFAULT_AGENT);
        assert_eq!(api.sim.incidents()[0]["Last Modified Date"], lmd, "a work log does not modify its incident");
        let q = format!("/api/arsys/v1/entry/HPD:WorkLog?q=%27Incident%20Number%27%20%3D%20%22{number}%22");
        let (_, _, listed) = api.call("GET", &q, None).await;
        assert_eq!(listed["entries"].as_array().map(Vec::len), Some(3));
        let (status, _, err) = api.call("POST", "/api/arsys/v1/entry/HPD:WorkLog", Some(json!({"values": {"Incident Number": "INC999", "Description": "x"}}))).await;
        assert_eq!((status, err[0]["messageNumber"].clone()), (400, json!(SIM_WORKFLOW)));
    }

    #[actix_web::test]
    async fn faults_throttle_fail_and_lose_answers_after_commit() {
        let api = Api::start(config()).await;
        api.sim.push_fault(Fault::RateLimited { retry_after_secs: 3 });
        let (status, headers, _) = api.call("GET", "/api/arsys/v1/entry/HPD:IncidentInterface", None).await;
        assert_eq!(status, 429);
        assert_eq!(headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("3"));
        api.sim.push_fault(Fault::ServerError);
        let (status, _, err) = api.call("GET", "/api/arsys/v1/entry/HPD:IncidentInterface", None).await;
        assert_eq!((status, err[0]["messageNumber"].clone()), (500, json!(AR_NO_SERVER)));
        api.sim.push_fault_for(FaultTarget { method: Some("POST".into()), form: Some(CREATE_FORM.into()) }, Fault::LoseResponseAfterCommit);
        assert_eq!(api.call("GET", "/api/arsys/v1/entry/HPD:IncidentInterface", None).await.0, 200, "the targeted fault waits for its request");
        let (status, _, _) = api.call("POST", "/api/arsys/v1/entry/HPD:IncidentInterface_Create", Some(json!({ "values": create_values() }))).await;
        assert_eq!(status, 504);
        assert_eq!(api.sim.incidents_by_vendor_ticket("INC-000001").len(), 1, "the create was committed");

        let queued = api.http.post(format!("{}/sim/faults", api.base)).json(&json!({"kind": "timeout", "delay_ms": 2000})).send().await.expect("request");
        assert_eq!(queued.status(), 200);
        let impatient = api
            .http
            .get(format!("{}/api/arsys/v1/entry/HPD:IncidentInterface", api.base))
            .header("Authorization", format!("AR-JWT {}", api.token))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(impatient.is_err_and(|e| e.is_timeout()));
        let statuses: Vec<u16> = api.sim.request_log().iter().map(|r| r.status).collect();
        assert_eq!(&statuses[..5], [200, 429, 500, 200, 504], "{statuses:?}");
    }

    fn change_values(reference: &str) -> Value {
        json!({
            "Description": "Core switch firmware upgrade", "Detailed Description": "Both core switches to 17.9.4",
            "Status": "Planning In Progress", "Change Timing": "Normal", "Risk Level": "Risk Level 2",
            "Impact": "3-Moderate/Limited", "Urgency": "3-Medium", "Priority": "Medium", "Change Type": "Change",
            "Scheduled Start Date": "2026-12-06T22:00:00.000+0000", "Scheduled End Date": "2026-12-07T01:00:00Z",
            "Vendor Ticket Number": reference,
        })
    }

    const CHANGE_CREATE_PATH: &str = "/api/arsys/v1/entry/CHG:ChangeInterface_Create?fields=values(Change_Entry_ID,Infrastructure%20Change%20Id,Request%20ID)";

    #[actix_web::test]
    async fn changes_are_created_on_their_create_form_and_read_and_updated_on_the_interface() {
        let api = Api::start(config()).await;
        let (status, headers, body) = api.call("POST", CHANGE_CREATE_PATH, Some(json!({"values": change_values("CHG-000001")}))).await;
        assert_eq!(status, 201, "{body}");
        let id = body["values"]["Change_Entry_ID"].as_str().unwrap_or("").to_string();
        assert_eq!(id, "CRQ000000000101");
        assert_eq!(body["values"]["Infrastructure Change Id"], id.as_str());
        assert_ne!(body["values"]["Request ID"], id.as_str(), "the create form names its own entry");
        assert!(headers.get("location").and_then(|l| l.to_str().ok()).is_some_and(|l| l.contains("/CHG:ChangeInterface_Create/")));
        let (status, _, body) = api
            .call("POST", "/api/arsys/v1/entry/CHG:ChangeInterface_Create", Some(json!({"values": {"Description": "Draft by default", "Vendor Ticket Number": "CHG-000002"}})))
            .await;
        assert_eq!((status, body), (201, Value::Null));
        let changes = api.sim.changes();
        assert_eq!(changes.len(), 2);
        assert_eq!((changes[1]["Change Request Status"].as_str(), changes[1]["Infrastructure Change ID"].as_str()), (Some("Draft"), Some("CRQ000000000102")));
        assert_eq!(changes[0]["Scheduled End Date"], "2026-12-07T01:00:00.000+0000", "dates are stored in AR's form");
        assert_eq!(changes[0]["Status-History"]["Planning In Progress"]["user"], USER);
        let (status, _, err) =
            api.call("POST", "/api/arsys/v1/entry/CHG:ChangeInterface_Create", Some(json!({"values": {"Description": "x", "Change Request Status": "Draft"}}))).await;
        assert_eq!((status, err[0]["messageNumber"].clone()), (400, json!(SIM_NO_SUCH_FIELD)), "the create form's status is `Status`");

        let entry_path = format!("/api/arsys/v1/entry/CHG:ChangeInterface/{id}");
        let (status, _, entry) = api.call("GET", &entry_path, None).await;
        assert_eq!(status, 200);
        assert_eq!(entry["values"]["Change Request Status"], "Planning In Progress");
        assert!(entry["values"].get("Status").is_none());
        let (status, _, err) = api.call("PUT", &entry_path, Some(json!({"values": {"Status": "Scheduled"}}))).await;
        assert_eq!((status, err[0]["messageNumber"].clone()), (400, json!(SIM_NO_SUCH_FIELD)), "the interface's status is `Change Request Status`");
        let (status, _, body) =
            api.call("PUT", &entry_path, Some(json!({"values": {"Change Request Status": "Scheduled For Approval", "Vendor Ticket Number": "CHG-999999"}}))).await;
        assert_eq!((status, body), (204, Value::Null));
        let after = &api.sim.changes()[0];
        assert_eq!(after["Change Request Status"], "Scheduled For Approval");
        assert_eq!(after["Vendor Ticket Number"], "CHG-000001", "set once");
        for (values, number) in [
            (json!({"Change Request Status": "Approved"}), AR_OUT_OF_LIMITS),
            (json!({"Scheduled Start Date": "next tuesday"}), AR_OUT_OF_LIMITS),
            (json!({"Scheduled Start Date": "2026-12-07T02:00:00Z"}), SIM_WORKFLOW),
            (json!({"Description": ""}), AR_REQUIRED),
        ] {
            let (status, _, err) = api.call("PUT", &entry_path, Some(json!({ "values": values }))).await;
            assert_eq!((status, err[0]["messageNumber"].clone()), (400, json!(number)), "{values}");
        }
        assert_eq!(api.call("GET", "/api/arsys/v1/entry/CHG:ChangeInterface/CRQ000000000999", None).await.0, 404);

        let ids =
            |listed: &Value| -> Vec<String> { listed["entries"].as_array().into_iter().flatten().filter_map(|e| e["values"]["Request ID"].as_str().map(str::to_string)).collect() };
        let q = "/api/arsys/v1/entry/CHG:ChangeInterface?q=%27Vendor%20Ticket%20Number%27%20%3D%20%22CHG-000001%22%20AND%20%27Change%20Request%20Status%27%20%3D%20%22Scheduled%20For%20Approval%22";
        assert_eq!(ids(&api.call("GET", q, None).await.2), [id.as_str()]);
        let q = "/api/arsys/v1/entry/CHG:ChangeInterface?q=%27Change%20Request%20Status%27%20%3D%20%22Draft%22&sort=Submit%20Date.desc";
        assert_eq!(ids(&api.call("GET", q, None).await.2), ["CRQ000000000102"]);
        let (status, _, err) = api.call("GET", "/api/arsys/v1/entry/CHG:ChangeInterface?q=%27Incident%20Number%27%20%3D%20%22x%22", None).await;
        assert_eq!((status, err[0]["messageNumber"].clone()), (400, json!(SIM_NO_SUCH_FIELD)));

        // The change coordinator in Remedy.
        let resp = api
            .http
            .post(format!("{}/sim/changes/{id}/agent", api.base))
            .json(&json!({"values": {"Change Request Status": "Scheduled"}, "work_log": {"text": "Window agreed with the CAB"}}))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("json");
        assert_eq!((body["values"]["Change Request Status"].as_str(), body["values"]["Last Modified By"].as_str()), (Some("Scheduled"), Some(DEFAULT_AGENT)));
        assert_eq!(api.sim.change_worklogs(&id).len(), 1);
        let listed: Value = api.http.get(format!("{}/sim/changes", api.base)).send().await.expect("request").json().await.expect("json");
        assert_eq!(listed.as_array().map(Vec::len), Some(2));
        assert!(api.sim.agent_update_change("CRQ000000000999", json!({"Change Request Status": "Scheduled"})).is_err());
        assert!(api.sim.agent_update_change(&id, json!("not values")).is_err());
    }

    #[actix_web::test]
    async fn change_work_logs_are_filed_under_the_change_number_and_faults_hit_change_calls() {
        let api = Api::start(config()).await;
        let (_, _, body) = api.call("POST", CHANGE_CREATE_PATH, Some(json!({"values": change_values("CHG-000003")}))).await;
        let id = body["values"]["Change_Entry_ID"].as_str().unwrap_or("").to_string();
        let change = api.sim.changes()[0].clone();
        let (status, headers, body) =
            api.call("POST", "/api/arsys/v1/entry/CHG:WorkLog", Some(json!({"values": {"Infrastructure Change ID": id, "Detailed Description": "forgot the view access"}}))).await;
        assert_eq!((status, body), (201, Value::Null));
        assert!(headers.get("location").and_then(|l| l.to_str().ok()).is_some_and(|l| l.contains("/CHG:WorkLog/CLG")));
        let (status, _, body) = api
            .call(
                "POST",
                "/api/arsys/v1/entry/CHG:WorkLog?fields=values(Work%20Log%20ID,View%20Access)",
                Some(json!({"values": {"Infrastructure Change ID": id, "Description": "internal", "Detailed Description": "internal", "View Access": "Internal"}})),
            )
            .await;
        assert_eq!(status, 201);
        assert_eq!(body["values"]["View Access"], "Internal");
        let log_id = body["values"]["Work Log ID"].as_str().unwrap_or("").to_string();
        assert_eq!(api.call("GET", &format!("/api/arsys/v1/entry/CHG:WorkLog/{log_id}"), None).await.2["values"]["Detailed Description"], "internal");
        let q = format!("/api/arsys/v1/entry/CHG:WorkLog?q=%27Infrastructure%20Change%20ID%27%20%3D%20%22{id}%22");
        let (_, _, listed) = api.call("GET", &q, None).await;
        let access: Vec<&str> = listed["entries"].as_array().into_iter().flatten().filter_map(|e| e["values"]["View Access"].as_str()).collect();
        assert_eq!(access, ["Public", "Internal"], "Public unless marked");
        assert_eq!(api.sim.changes()[0], change, "a work log does not modify its change");
        let (status, _, err) =
            api.call("POST", "/api/arsys/v1/entry/CHG:WorkLog", Some(json!({"values": {"Infrastructure Change ID": "CRQ000000000999", "Description": "x"}}))).await;
        assert_eq!((status, err[0]["messageNumber"].clone()), (400, json!(SIM_WORKFLOW)));
        let (status, _, err) = api.call("POST", "/api/arsys/v1/entry/CHG:WorkLog", Some(json!({"values": {"Incident Number": "INC000000000430", "Description": "x"}}))).await;
        assert_eq!((status, err[0]["messageNumber"].clone()), (400, json!(SIM_NO_SUCH_FIELD)));

        api.sim.push_fault_for(FaultTarget { method: Some("POST".into()), form: Some(CHANGE_WORKLOG.into()) }, Fault::LoseResponseAfterCommit);
        let (status, _, _) = api.call("POST", "/api/arsys/v1/entry/CHG:WorkLog", Some(json!({"values": {"Infrastructure Change ID": id, "Description": "lost"}}))).await;
        assert_eq!(status, 504);
        assert_eq!(api.sim.change_worklogs(&id).len(), 3, "committed before the answer was lost");
        api.sim.push_fault_for(FaultTarget { method: Some("PUT".into()), form: Some(CHANGE_INTERFACE.into()) }, Fault::ServerError);
        let (status, _, _) = api.call("PUT", &format!("/api/arsys/v1/entry/CHG:ChangeInterface/{id}"), Some(json!({"values": {"Change Request Status": "Scheduled"}}))).await;
        assert_eq!(status, 500);
        assert_eq!(api.sim.changes()[0]["Change Request Status"], "Planning In Progress", "a 500 before the work changes nothing");
    }

    type Received = Arc<Mutex<Vec<(reqwest::header::HeaderMap, String)>>>;

    fn receiver() -> (String, Received) {
        let store: Received = Arc::default();
        let data = web::Data::new(store.clone());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).default_service(web::to(|req: HttpRequest, body: web::Bytes, store: web::Data<Received>| async move {
                let mut headers = reqwest::header::HeaderMap::new();
                for (k, v) in req.headers() {
                    if let (Ok(k), Ok(v)) = (reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()), reqwest::header::HeaderValue::from_bytes(v.as_bytes())) {
                        headers.insert(k, v);
                    }
                }
                store.lock().expect("lock").push((headers, String::from_utf8_lossy(&body).into_owned()));
                HttpResponse::Ok().finish()
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        (format!("http://127.0.0.1:{port}/webhooks/bmc"), store)
    }

    async fn wait_for(store: &Received, n: usize) -> Vec<(reqwest::header::HeaderMap, String)> {
        for _ in 0..100 {
            if store.lock().expect("lock").len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store.lock().expect("lock").clone()
    }

    #[actix_web::test]
    async fn agent_changes_notify_with_basic_auth_and_duplicates_keep_their_id() {
        let (url, store) = receiver();
        let api = Api::start(SimConfig { webhook: Some(WebhookTarget { url, username: "bmc".into(), password: "whsec".into() }), ..config() }).await;
        let number = api.create(create_values()).await["Incident Number"].as_str().unwrap_or("").to_string();
        let got = wait_for(&store, 1).await;
        let auth = got[0].0.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(auth, format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("bmc:whsec")));
        let first: Value = serde_json::from_str(&got[0].1).expect("json");
        assert_eq!((first["event"].as_str(), first["entry"]["values"]["Incident Number"].as_str()), (Some("create"), Some(number.as_str())));

        api.sim.set_webhook_behaviour(WebhookBehaviour { duplicate: true, ..Default::default() });
        let after = api.sim.agent_update(&number, json!({"Status": "In Progress"})).expect("agent");
        assert_eq!(after["Last Modified By"], DEFAULT_AGENT);
        api.sim.agent_work_log(&number, "Internal", "checking the fuser").expect("work log");
        let got = wait_for(&store, 5).await;
        assert_eq!(got.len(), 5);
        let id = |i: usize| got[i].0.get("x-siam-delivery").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert_eq!(id(1), id(2));
        assert_ne!(id(2), id(3));
        let log: Value = serde_json::from_str(&got[3].1).expect("json");
        assert_eq!(log["event"], "worklog");
        assert_eq!(log["worklogs"][0]["values"]["View Access"], "Internal");

        let agent = api
            .http
            .post(format!("{}/sim/incidents/{number}/agent?user=Mary", api.base))
            .json(&json!({"values": {"Status": "Pending", "Status_Reason": "Client Hold"}, "work_log": {"text": "Waiting for you", "view_access": "Public"}}))
            .send()
            .await
            .expect("request");
        assert_eq!(agent.status(), 200);
        let shown: Value = agent.json().await.expect("json");
        assert_eq!(shown["values"]["Status"], "Pending");
        assert_eq!(shown["values"]["Last Modified By"], "Mary");
        assert!(api.sim.agent_update(&number, json!({"Status": "Bogus"})).is_err());
        assert!(api.sim.agent_update("INC404", json!({})).is_err());
    }
}
