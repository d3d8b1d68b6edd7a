//! The change record: changes, one leg per supplier, the CAB's decisions, the conflicts of the
//! forward schedule, notes and each change's event log. Each public function that writes is one
//! transaction writing the change, its events and their outbox rows together, as for incidents;
//! every judgement (may it move, is it approved, what collides) is the domain's.

pub mod files;
pub mod legs;

use super::record::{self as incident_record, content_hash, enqueue, Context, IdempotencyKey, Route};
use super::schema::*;
use super::{StoreError, StoreResult};
use crate::domain::change::lifecycle::{self, approval_state, ApprovalState, Approver, Blocked, CabRule, Decision, GateInput, LegPlan, LegState};
use crate::domain::change::request::{ChangePatch, Draft, LegUpdate};
use crate::domain::change::schedule::{self, Conflict, ConflictKind, Freeze, MaintenanceWindow, Planned, Window};
use crate::domain::change::{ChangeRef, ChangeStatus, ChangeType, Risk};
use crate::domain::event::cloud_event;
use crate::domain::time::serde_ms;
use crate::domain::Visibility;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::PgConnection;
use serde::Serialize;
use serde_json::{json, Value};

/// The change rules of the configuration, as the record applies them.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub cab: &'a [CabRule],
    pub freezes: &'a [Freeze],
    pub maintenance: &'a [MaintenanceWindow],
    /// Whether a failed leg asks the legs that did their part to back out.
    pub back_out: bool,
}

/// The change rules of a configuration.
pub fn rules_of(c: &crate::config::ChangeSettings) -> Rules<'_> {
    Rules { cab: &c.cab, freezes: &c.freezes, maintenance: &c.maintenance, back_out: c.failure_policy == crate::config::FailurePolicy::BackOut }
}

/// A change as stored, and (without its id) as the API shows its own fields.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset, Serialize)]
#[diesel(table_name = changes, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct ChangeRow {
    #[serde(skip)]
    pub id: i64,
    #[serde(rename = "ref")]
    pub reference: String,
    pub title: String,
    pub description: String,
    #[serde(rename = "type")]
    pub change_type: String,
    pub status: String,
    pub on_hold: bool,
    pub hold_reason: Option<String>,
    pub risk: i16,
    pub impact: i16,
    pub urgency: i16,
    pub services: Vec<String>,
    pub cis: Vec<String>,
    #[serde(with = "serde_ms::option")]
    pub planned_start: Option<DateTime<Utc>>,
    #[serde(with = "serde_ms::option")]
    pub planned_end: Option<DateTime<Utc>>,
    #[serde(with = "serde_ms::option")]
    pub actual_start: Option<DateTime<Utc>>,
    #[serde(with = "serde_ms::option")]
    pub actual_end: Option<DateTime<Utc>>,
    pub implementation_plan: String,
    pub backout_plan: String,
    pub test_plan: String,
    pub template: Option<String>,
    pub outcome: Option<String>,
    pub outcome_notes: Option<String>,
    pub requested_by: String,
    #[serde(with = "serde_ms")]
    pub opened_at: DateTime<Utc>,
    #[serde(with = "serde_ms")]
    pub updated_at: DateTime<Utc>,
    #[serde(with = "serde_ms::option")]
    pub closed_at: Option<DateTime<Utc>>,
    pub version: i32,
}

impl ChangeRow {
    fn status(&self) -> StoreResult<ChangeStatus> {
        corrupt(self.status.parse())
    }
    fn kind(&self) -> StoreResult<ChangeType> {
        corrupt(self.change_type.parse())
    }
    fn window(&self) -> Option<Window> {
        Window::new(self.planned_start?, self.planned_end?)
    }
    fn planned(&self) -> StoreResult<Planned> {
        Ok(Planned { reference: self.reference.clone(), status: self.status()?, window: self.window(), services: self.services.clone(), cis: self.cis.clone() })
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = change_legs, check_for_backend(diesel::pg::Pg))]
pub struct ChangeLegRow {
    pub id: i64,
    pub change_id: i64,
    pub supplier_id: String,
    pub system: String,
    pub state: String,
    pub native_number: Option<String>,
    pub planned_start: Option<DateTime<Utc>>,
    pub planned_end: Option<DateTime<Utc>>,
    pub depends_on: Vec<String>,
    pub backout_requested_at: Option<DateTime<Utc>>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The change's id in the supplier's system, once created there.
    pub native_id: Option<String>,
    /// The supplier's own status word, as last read.
    pub native_status: Option<String>,
    /// Native values read many-to-one, kept so a write back does not rewrite them.
    pub native_kept: Value,
    /// Native values the hub could not read, by native field name.
    pub unmapped: Value,
    /// The body last written to the supplier's change (so only what the hub changed is sent).
    pub pushed: Option<Value>,
    /// When the back-out request reached the supplier's change.
    pub backout_sent_at: Option<DateTime<Utc>>,
    /// Why the last attempt to bring the supplier's change in line failed.
    pub last_error: Option<String>,
}

impl ChangeLegRow {
    fn state(&self) -> StoreResult<LegState> {
        corrupt(self.state.parse())
    }
    fn plan(&self) -> StoreResult<LegPlan> {
        let window = self.planned_start.zip(self.planned_end).and_then(|(s, e)| Window::new(s, e));
        Ok(LegPlan { supplier: self.supplier_id.clone(), state: self.state()?, window, depends_on: self.depends_on.clone() })
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = change_approvals, check_for_backend(diesel::pg::Pg))]
pub struct ApprovalRow {
    pub id: i64,
    pub change_id: i64,
    pub kind: String,
    pub approver: String,
    pub approve: bool,
    pub comment: String,
    pub decided_at: DateTime<Utc>,
    pub voided_at: Option<DateTime<Utc>>,
}

impl ApprovalRow {
    fn decision(&self) -> Decision {
        let by = if self.kind == "supplier" { Approver::Supplier(self.approver.clone()) } else { Approver::Integrator(self.approver.clone()) };
        Decision { by, approve: self.approve, comment: self.comment.clone() }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = change_conflicts, check_for_backend(diesel::pg::Pg))]
pub struct ConflictRow {
    pub change_id: i64,
    pub key: String,
    pub kind: String,
    pub other_ref: Option<String>,
    pub subject: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub hard: bool,
    pub detail: String,
    pub detected_at: DateTime<Utc>,
    pub acknowledged_by: Option<String>,
    pub ack_reason: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
}

impl ConflictRow {
    fn conflict(&self) -> StoreResult<Conflict> {
        let kind: ConflictKind = serde_json::from_value(json!(self.kind)).map_err(|e| StoreError::Corrupt(format!("conflict kind `{}`: {e}", self.kind)))?;
        let period = Window::new(self.period_start, self.period_end).unwrap_or(Window { start: self.period_start, end: self.period_end });
        Ok(Conflict { kind, other: self.other_ref.clone(), subject: self.subject.clone(), period, hard: self.hard, detail: self.detail.clone() })
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = change_events, check_for_backend(diesel::pg::Pg))]
pub struct ChangeEventRow {
    pub id: i64,
    pub event_id: uuid::Uuid,
    pub change_id: i64,
    pub kind: String,
    pub source: String,
    pub data: Value,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = change_notes, check_for_backend(diesel::pg::Pg))]
pub struct ChangeNoteRow {
    pub id: i64,
    pub change_id: i64,
    pub visibility: String,
    pub author: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// The change as the API shows it: its own fields, where it stands with its approvers, its
/// legs, conflicts and notes.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeDoc {
    #[serde(flatten)]
    pub change: ChangeRow,
    pub approval: Value,
    pub legs: Vec<Value>,
    pub conflicts: Vec<Value>,
    pub notes: Vec<Value>,
    pub attachments: Vec<Value>,
    /// The incidents that name this change as their cause or their fix (those a supplier key
    /// may see, for a supplier).
    pub incidents: Vec<Value>,
}

/// Reads `raw` into a domain value, or says the record holds something this build cannot read.
fn corrupt<T>(r: Result<T, crate::domain::UnknownValue>) -> StoreResult<T> {
    r.map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn ms(t: &DateTime<Utc>) -> String {
    crate::domain::time::rfc3339(t)
}

/// Appends an event to the change's log and queues it for the bus as a CloudEvent.
fn record_event(conn: &mut PgConnection, ctx: &Context, row: &ChangeRow, kind: &str, data: Value) -> StoreResult<()> {
    let id = uuid::Uuid::now_v7();
    let now = Utc::now();
    diesel::insert_into(change_events::table)
        .values((
            change_events::event_id.eq(id),
            change_events::change_id.eq(row.id),
            change_events::kind.eq(kind),
            change_events::source.eq(&ctx.source),
            change_events::data.eq(&data),
            change_events::occurred_at.eq(now),
            change_events::correlation_id.eq(&ctx.correlation_id),
        ))
        .execute(conn)?;
    let mut data = data;
    if let Some(obj) = data.as_object_mut() {
        obj.insert("source".into(), json!(ctx.source));
    }
    let envelope = cloud_event(id, kind, &row.reference, &now, &ctx.correlation_id, data);
    enqueue(conn, id, kind, &envelope)
}

pub fn find_row(conn: &mut PgConnection, reference: &str) -> StoreResult<ChangeRow> {
    changes::table
        .filter(changes::reference.eq(reference))
        .select(ChangeRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("change {reference}")))
}

fn lock_row(conn: &mut PgConnection, reference: &str) -> StoreResult<ChangeRow> {
    changes::table
        .filter(changes::reference.eq(reference))
        .select(ChangeRow::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("change {reference}")))
}

fn legs_of(conn: &mut PgConnection, change_id: i64) -> StoreResult<Vec<ChangeLegRow>> {
    Ok(change_legs::table.filter(change_legs::change_id.eq(change_id)).order(change_legs::id).select(ChangeLegRow::as_select()).load(conn)?)
}

fn approvals_of(conn: &mut PgConnection, change_id: i64) -> StoreResult<Vec<ApprovalRow>> {
    Ok(change_approvals::table
        .filter(change_approvals::change_id.eq(change_id))
        .filter(change_approvals::voided_at.is_null())
        .order(change_approvals::id)
        .select(ApprovalRow::as_select())
        .load(conn)?)
}

fn conflicts_of(conn: &mut PgConnection, change_id: i64) -> StoreResult<Vec<ConflictRow>> {
    Ok(change_conflicts::table.filter(change_conflicts::change_id.eq(change_id)).order(change_conflicts::key).select(ConflictRow::as_select()).load(conn)?)
}

fn plans(legs: &[ChangeLegRow]) -> StoreResult<Vec<LegPlan>> {
    legs.iter().map(ChangeLegRow::plan).collect()
}

/// Where the change stands with its approvers under the rules: soft freezes it falls in ask one
/// more integrator approval each.
fn approval(rules: &Rules<'_>, row: &ChangeRow, legs: &[ChangeLegRow], approvals: &[ApprovalRow], conflicts: &[ConflictRow]) -> StoreResult<ApprovalState> {
    let kind = row.kind()?;
    let risk = Risk::new(row.risk as u8);
    let rule = CabRule::for_change(rules.cab, kind, risk);
    let soft = conflicts.iter().filter(|c| c.kind == ConflictKind::Freeze.as_str() && !c.hard).count() as u32;
    let decisions: Vec<Decision> = approvals.iter().map(ApprovalRow::decision).collect();
    let suppliers: Vec<String> = legs.iter().filter(|l| l.state != LegState::Cancelled.as_str()).map(|l| l.supplier_id.clone()).collect();
    Ok(approval_state(kind, &rule, soft, &decisions, &suppliers))
}

/// Where the change stands with its approvers, in the document's words (`pre_approved`,
/// `approved`, `pending` or `rejected`), and what is still missing.
fn approval_word(rules: &Rules<'_>, row: &ChangeRow, legs: &[ChangeLegRow], approvals: &[ApprovalRow], conflicts: &[ConflictRow]) -> StoreResult<(&'static str, Vec<String>)> {
    Ok(match approval(rules, row, legs, approvals, conflicts)? {
        _ if row.kind()? == ChangeType::Standard => ("pre_approved", vec![]),
        ApprovalState::Approved => ("approved", vec![]),
        ApprovalState::Pending(m) => ("pending", m),
        ApprovalState::Rejected { .. } => ("rejected", vec![]),
    })
}

/// The change document; `viewer` is the supplier a supplier key speaks for: it sees public
/// notes only, and of other suppliers' legs only whose they are and how far they got.
pub fn document(conn: &mut PgConnection, rules: &Rules<'_>, row: &ChangeRow, viewer: Option<&str>) -> StoreResult<ChangeDoc> {
    let legs = legs_of(conn, row.id)?;
    let approvals = approvals_of(conn, row.id)?;
    let conflicts = conflicts_of(conn, row.id)?;
    let notes: Vec<ChangeNoteRow> = change_notes::table.filter(change_notes::change_id.eq(row.id)).order(change_notes::id).select(ChangeNoteRow::as_select()).load(conn)?;
    let (word, missing) = approval_word(rules, row, &legs, &approvals, &conflicts)?;
    let decisions: Vec<Value> = approvals
        .iter()
        .map(|a| json!({ "by": { "kind": a.kind, "id": a.approver }, "decision": if a.approve { "approve" } else { "reject" }, "comment": a.comment, "at": ms(&a.decided_at) }))
        .collect();
    let legs: Vec<Value> = legs
        .iter()
        .map(|l| {
            let own = viewer.is_none_or(|v| v == l.supplier_id);
            let mut leg = json!({
                "supplier": l.supplier_id, "state": l.state,
                "planned_start": l.planned_start.as_ref().map(ms), "planned_end": l.planned_end.as_ref().map(ms),
                "depends_on": l.depends_on,
            });
            if own {
                leg["system"] = json!(l.system);
                leg["native_number"] = json!(l.native_number);
                leg["backout_requested_at"] = json!(l.backout_requested_at.as_ref().map(ms));
                leg["native_id"] = json!(l.native_id);
                leg["native_status"] = json!(l.native_status);
                leg["unmapped"] = l.unmapped.clone();
                leg["last_error"] = json!(l.last_error);
            }
            leg
        })
        .collect();
    let conflicts: Vec<Value> = conflicts.iter().map(conflict_json).collect();
    let notes: Vec<Value> = notes
        .iter()
        .filter(|n| viewer.is_none() || n.visibility == Visibility::Public.as_str())
        .map(|n| json!({ "id": n.id, "visibility": n.visibility, "author": n.author, "text": n.body, "created_at": ms(&n.created_at) }))
        .collect();
    let incidents = linked_incidents(conn, &row.reference, viewer)?;
    let attachments = files::files_of(conn, row.id)?.iter().map(|f| f.json(&row.reference)).collect();
    Ok(ChangeDoc { change: row.clone(), approval: json!({ "state": word, "missing": missing, "decisions": decisions }), legs, conflicts, notes, attachments, incidents })
}

/// The incidents caused or fixed by the change `reference`, oldest first.
fn linked_incidents(conn: &mut PgConnection, reference: &str, viewer: Option<&str>) -> StoreResult<Vec<Value>> {
    use crate::store::schema::incidents;
    let mut q = incidents::table
        .filter(incidents::caused_by_change.eq(reference).or(incidents::fixed_by_change.eq(reference)))
        .select((incidents::reference, incidents::title, incidents::status, incidents::caused_by_change))
        .order(incidents::id)
        .into_boxed();
    if let Some(s) = viewer {
        q = q.filter(incidents::id.eq_any(crate::store::record::seen_by_supplier(s)));
    }
    let rows: Vec<(String, String, String, Option<String>)> = q.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(r, title, status, caused)| {
            let relation = if caused.as_deref() == Some(reference) { "caused" } else { "fixed" };
            json!({ "ref": r, "title": title, "status": status, "relation": relation })
        })
        .collect())
}

fn conflict_json(c: &ConflictRow) -> Value {
    let ack = c.acknowledged_at.map(|at| json!({ "by": c.acknowledged_by, "reason": c.ack_reason, "at": ms(&at) }));
    json!({
        "key": c.key, "kind": c.kind, "other": c.other_ref, "subject": c.subject,
        "period": { "start": ms(&c.period_start), "end": ms(&c.period_end) },
        "hard": c.hard, "detail": c.detail, "acknowledged": ack,
    })
}

/// Whether the supplier holds a leg of the change (in any state: it keeps reading a change it
/// worked, as it does an incident it resolved).
pub fn holds_leg(conn: &mut PgConnection, change_id: i64, supplier: &str) -> StoreResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(change_legs::table.filter(change_legs::change_id.eq(change_id)).filter(change_legs::supplier_id.eq(supplier)))).get_result(conn)?)
}

/// Raises a change in `draft` (replaying the first answer for a repeated idempotency key).
pub fn create(conn: &mut PgConnection, ctx: &Context, rules: &Rules<'_>, idem: Option<&IdempotencyKey>, draft: &Draft) -> StoreResult<(ChangeDoc, bool)> {
    conn.transaction(|conn| {
        if let Some(k) = idem {
            // Serialises requests that share a key, so two racing retries make one change.
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind::<diesel::sql_types::Text, _>(format!("change\n{}\n{}", k.principal, k.key))
                .execute(conn)?;
            let existing: Option<(String, i64)> = change_idempotency_keys::table
                .find((&k.principal, &k.key))
                .select((change_idempotency_keys::request_hash, change_idempotency_keys::change_id))
                .first(conn)
                .optional()?;
            if let Some((hash, change_id)) = existing {
                if hash != k.request_hash {
                    return Err(StoreError::IdempotencyMismatch(k.key.clone()));
                }
                let row = changes::table.find(change_id).select(ChangeRow::as_select()).first(conn)?;
                return Ok((document(conn, rules, &row, None)?, true));
            }
        }
        let id: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("nextval('change_number_seq')")).get_result(conn)?;
        let now = Utc::now();
        let row = ChangeRow {
            id,
            reference: ChangeRef::new(id).to_string(),
            title: draft.title.clone(),
            description: draft.description.clone(),
            change_type: draft.change_type.as_str().into(),
            status: ChangeStatus::Draft.as_str().into(),
            on_hold: false,
            hold_reason: None,
            risk: draft.risk.get().into(),
            impact: draft.impact.get().into(),
            urgency: draft.urgency.get().into(),
            services: draft.services.clone(),
            cis: draft.cis.clone(),
            planned_start: draft.planned_start,
            planned_end: draft.planned_end,
            actual_start: None,
            actual_end: None,
            implementation_plan: draft.implementation_plan.clone(),
            backout_plan: draft.backout_plan.clone(),
            test_plan: draft.test_plan.clone(),
            template: draft.template.clone(),
            outcome: None,
            outcome_notes: None,
            requested_by: ctx.source.clone(),
            opened_at: now,
            updated_at: now,
            closed_at: None,
            version: 1,
        };
        diesel::insert_into(changes::table).values(&row).execute(conn)?;
        record_event(
            conn,
            ctx,
            &row,
            "change.created",
            json!({ "title": row.title, "type": row.change_type, "risk": row.risk, "services": row.services, "cis": row.cis, "template": row.template }),
        )?;
        if let Some(k) = idem {
            diesel::insert_into(change_idempotency_keys::table)
                .values((
                    change_idempotency_keys::principal.eq(&k.principal),
                    change_idempotency_keys::key.eq(&k.key),
                    change_idempotency_keys::request_hash.eq(&k.request_hash),
                    change_idempotency_keys::change_id.eq(id),
                ))
                .execute(conn)?;
        }
        recheck(conn, ctx, rules, &row)?;
        Ok((document(conn, rules, &row, None)?, false))
    })
}

/// The request hash of a new change, for its idempotency key.
pub fn request_hash(draft: &Draft) -> String {
    content_hash(&[&serde_json::to_string(draft).unwrap_or_default()])
}

/// The change as `viewer` (the supplier a supplier key speaks for) may see it: a supplier sees
/// only the changes it holds a leg of, and any other is not found.
fn visible_row(conn: &mut PgConnection, reference: &str, viewer: Option<&str>) -> StoreResult<ChangeRow> {
    let row = find_row(conn, reference)?;
    if let Some(s) = viewer {
        if !holds_leg(conn, row.id, s)? {
            return Err(StoreError::NotFound(format!("change {reference}")));
        }
    }
    Ok(row)
}

pub fn load(conn: &mut PgConnection, rules: &Rules<'_>, reference: &str, viewer: Option<&str>) -> StoreResult<ChangeDoc> {
    let row = visible_row(conn, reference, viewer)?;
    document(conn, rules, &row, viewer)
}

/// How many events of its log a change's file carries, oldest first.
pub const FILE_EVENTS: i64 = 1000;

/// A change with everything the record holds about it, as rows: what the dashboard's change
/// page draws.
#[derive(Debug, Clone)]
pub struct ChangeFile {
    pub change: ChangeRow,
    /// Where it stands with its approvers, as the document says it, and what is missing.
    pub approval: &'static str,
    pub missing: Vec<String>,
    pub legs: Vec<ChangeLegRow>,
    /// The decisions in force (those an edit voided are left out).
    pub approvals: Vec<ApprovalRow>,
    pub conflicts: Vec<ConflictRow>,
    /// Its event log, oldest first, at most [`FILE_EVENTS`].
    pub events: Vec<ChangeEventRow>,
}

/// The change's file, under the same visibility as [`load`]: a supplier reads only a change it
/// holds a leg of.
pub fn file(conn: &mut PgConnection, rules: &Rules<'_>, reference: &str, viewer: Option<&str>) -> StoreResult<ChangeFile> {
    let row = visible_row(conn, reference, viewer)?;
    let legs = legs_of(conn, row.id)?;
    let approvals = approvals_of(conn, row.id)?;
    let conflicts = conflicts_of(conn, row.id)?;
    let (approval, missing) = approval_word(rules, &row, &legs, &approvals, &conflicts)?;
    let events: Vec<ChangeEventRow> =
        change_events::table.filter(change_events::change_id.eq(row.id)).order(change_events::id).limit(FILE_EVENTS).select(ChangeEventRow::as_select()).load(conn)?;
    let events = events.into_iter().filter_map(|e| seen_by(e, viewer)).collect();
    let legs = legs.into_iter().map(|l| leg_seen_by(l, viewer)).collect();
    Ok(ChangeFile { change: row, approval, missing, legs, approvals, conflicts, events })
}

/// A page of changes.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<ChangeStatus>,
    pub service: Option<String>,
    pub supplier: Option<String>,
    /// Changes whose planned window ends after this...
    pub from: Option<DateTime<Utc>>,
    /// ...and starts before this.
    pub to: Option<DateTime<Utc>>,
    /// A supplier key sees only the changes it holds a leg of.
    pub visible_to_supplier: Option<String>,
}

fn filtered(filter: &ListFilter) -> changes::BoxedQuery<'static, diesel::pg::Pg> {
    let mut q = changes::table.into_boxed();
    if let Some(s) = filter.status {
        q = q.filter(changes::status.eq(s.as_str()));
    }
    if let Some(s) = &filter.service {
        q = q.filter(changes::services.contains(vec![s.clone()]));
    }
    for s in [&filter.supplier, &filter.visible_to_supplier].into_iter().flatten() {
        q = q.filter(changes::id.eq_any(change_legs::table.filter(change_legs::supplier_id.eq(s.clone())).select(change_legs::change_id)));
    }
    if let Some(from) = filter.from {
        q = q.filter(changes::planned_end.gt(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(changes::planned_start.lt(to));
    }
    q
}

pub fn list(conn: &mut PgConnection, rules: &Rules<'_>, filter: &ListFilter, after: Option<i64>, limit: i64) -> StoreResult<(Vec<ChangeDoc>, Option<i64>)> {
    let mut q = filtered(filter);
    if let Some(a) = after {
        q = q.filter(changes::id.gt(a));
    }
    let rows: Vec<ChangeRow> = q.order(changes::id).limit(limit + 1).select(ChangeRow::as_select()).load(conn)?;
    let next = (rows.len() as i64 > limit).then(|| rows[limit as usize - 1].id);
    let viewer = filter.visible_to_supplier.as_deref();
    let docs = rows.iter().take(limit as usize).map(|r| document(conn, rules, r, viewer)).collect::<StoreResult<Vec<_>>>()?;
    Ok((docs, next))
}

/// A change in the forward schedule, with its legs and its open (unacknowledged) conflicts.
pub type Scheduled = (ChangeRow, Vec<ChangeLegRow>, Vec<ConflictRow>);

/// The forward schedule between `from` and `to`: changes that take part in it (and closed ones,
/// which did), by planned start.
pub fn calendar(conn: &mut PgConnection, filter: &ListFilter) -> StoreResult<Vec<Scheduled>> {
    let rows: Vec<ChangeRow> = filtered(filter)
        .filter(changes::status.ne_all([ChangeStatus::Draft.as_str(), ChangeStatus::Cancelled.as_str(), ChangeStatus::Rejected.as_str()]))
        .filter(changes::planned_start.is_not_null())
        .order((changes::planned_start, changes::id))
        .limit(5000)
        .select(ChangeRow::as_select())
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let legs: Vec<ChangeLegRow> = change_legs::table.filter(change_legs::change_id.eq_any(&ids)).order(change_legs::id).select(ChangeLegRow::as_select()).load(conn)?;
    let open: Vec<ConflictRow> = change_conflicts::table
        .filter(change_conflicts::change_id.eq_any(&ids))
        .filter(change_conflicts::acknowledged_at.is_null())
        .order((change_conflicts::change_id, change_conflicts::key))
        .select(ConflictRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let own = legs.iter().filter(|l| l.change_id == r.id).cloned().collect();
            let conflicts = open.iter().filter(|c| c.change_id == r.id).cloned().collect();
            (r, own, conflicts)
        })
        .collect())
}

/// Where routing sends the work on some services and CIs.
pub type LegsFor<'a> = &'a dyn Fn(&[String], &[String]) -> Vec<Route>;

/// Who asks for an edit, and what they may do.
#[derive(Clone, Copy)]
pub struct Editor<'a> {
    pub ctx: &'a Context,
    /// Where routing sends work on services and CIs, for the legs a change gets when it leaves
    /// draft: one leg per supplier system found.
    pub legs_for: LegsFor<'a>,
    pub now: DateTime<Utc>,
}

/// Applies a JSON merge patch to a change at `expected_version`: field edits, then a status
/// move through its gates. An edit of what the approvers judged voids their approvals and sends
/// an authorised change back to assessment.
pub fn update(conn: &mut PgConnection, ed: &Editor<'_>, rules: &Rules<'_>, reference: &str, expected_version: i32, patch: &ChangePatch) -> StoreResult<ChangeDoc> {
    conn.transaction(|conn| {
        let mut row = lock_row(conn, reference)?;
        if row.version != expected_version {
            return Err(StoreError::VersionConflict { current: row.version, expected: expected_version });
        }
        let status = row.status()?;
        if matches!(status, ChangeStatus::Closed | ChangeStatus::Cancelled | ChangeStatus::Rejected) {
            return Err(StoreError::Conflict(format!("change {reference} is {status} and takes no further edits")));
        }
        let before = row.clone();
        apply_fields(&mut row, patch)?;
        let replanned =
            [before.planned_start != row.planned_start, before.planned_end != row.planned_end, before.services != row.services, before.cis != row.cis, before.risk != row.risk]
                .contains(&true);
        if replanned && matches!(status, ChangeStatus::Implement | ChangeStatus::Review) {
            return Err(StoreError::Conflict(format!("change {reference} is in {status}: its window, services, CIs and risk can no longer change")));
        }
        let mut changed: Vec<&str> = vec![];
        for (name, differs) in [
            ("title", before.title != row.title),
            ("description", before.description != row.description),
            ("on_hold", before.on_hold != row.on_hold || before.hold_reason != row.hold_reason),
            ("risk", before.risk != row.risk),
            ("impact", before.impact != row.impact),
            ("urgency", before.urgency != row.urgency),
            ("services", before.services != row.services),
            ("cis", before.cis != row.cis),
            ("planned_start", before.planned_start != row.planned_start),
            ("planned_end", before.planned_end != row.planned_end),
            ("implementation_plan", before.implementation_plan != row.implementation_plan),
            ("backout_plan", before.backout_plan != row.backout_plan),
            ("test_plan", before.test_plan != row.test_plan),
            ("outcome_notes", before.outcome_notes != row.outcome_notes),
        ] {
            if differs {
                changed.push(name);
            }
        }
        if !changed.is_empty() {
            record_event(conn, ed.ctx, &row, "change.updated", json!({ "fields": changed }))?;
        }
        if replanned {
            void_approvals(conn, ed.ctx, &mut row, status)?;
        }
        // Conflicts are judged on the change as edited, before its gates are.
        save(conn, &row)?;
        recheck(conn, ed.ctx, rules, &row)?;
        let moved = patch.status.filter(|to| to.as_str() != row.status);
        if let Some(to) = moved {
            move_to(conn, ed, rules, &mut row, to)?;
        }
        if row.status != before.status || !changed.is_empty() {
            row.version += 1;
            row.updated_at = ed.now;
        }
        save(conn, &row)?;
        if moved.is_some() {
            // Entering or leaving the schedule changes what collides with it.
            recheck(conn, ed.ctx, rules, &row)?;
        }
        if moved.is_some() || !changed.is_empty() {
            dispatch_legs(conn, ed.ctx, &row)?;
        }
        document(conn, rules, &row, None)
    })
}

fn apply_fields(row: &mut ChangeRow, p: &ChangePatch) -> StoreResult<()> {
    let blank = |what: &str| StoreError::Invalid(format!("{what} must not be blank"));
    if let Some(t) = &p.title {
        if t.trim().is_empty() {
            return Err(blank("title"));
        }
        row.title = t.clone();
    }
    if let Some(d) = &p.description {
        row.description = d.clone();
    }
    if let Some(h) = p.on_hold {
        row.on_hold = h;
        if !h {
            row.hold_reason = None;
        }
    }
    if let Some(r) = &p.hold_reason {
        row.hold_reason = r.clone();
    }
    if row.hold_reason.is_some() && !row.on_hold {
        return Err(StoreError::Invalid("hold_reason is set but the change is not on hold".into()));
    }
    if let Some(r) = p.risk {
        row.risk = r.get().into();
    }
    if let Some(i) = p.impact {
        row.impact = i.get().into();
    }
    if let Some(u) = p.urgency {
        row.urgency = u.get().into();
    }
    if let Some(s) = &p.services {
        row.services = s.clone();
    }
    if let Some(c) = &p.cis {
        row.cis = c.clone();
    }
    if let Some(s) = p.planned_start {
        row.planned_start = s;
    }
    if let Some(e) = p.planned_end {
        row.planned_end = e;
    }
    if let (Some(s), Some(e)) = (row.planned_start, row.planned_end) {
        if e <= s {
            return Err(StoreError::Invalid("planned_end must be after planned_start".into()));
        }
    }
    for (field, value) in [(&mut row.implementation_plan, &p.implementation_plan), (&mut row.backout_plan, &p.backout_plan), (&mut row.test_plan, &p.test_plan)] {
        if let Some(v) = value {
            *field = v.clone();
        }
    }
    if let Some(n) = &p.outcome_notes {
        row.outcome_notes = n.clone();
    }
    Ok(())
}

/// Voids the decisions taken on the change as it was, and sends an authorised or scheduled
/// change back to be assessed (an emergency change, which has no assessment, to authorisation).
fn void_approvals(conn: &mut PgConnection, ctx: &Context, row: &mut ChangeRow, status: ChangeStatus) -> StoreResult<()> {
    let voided = diesel::update(change_approvals::table.filter(change_approvals::change_id.eq(row.id)).filter(change_approvals::voided_at.is_null()))
        .set(change_approvals::voided_at.eq(Utc::now()))
        .execute(conn)?;
    let back = match (row.kind()?, status) {
        (ChangeType::Normal, ChangeStatus::Authorize | ChangeStatus::Scheduled) => Some(ChangeStatus::Assess),
        (ChangeType::Emergency, ChangeStatus::Scheduled) => Some(ChangeStatus::Authorize),
        _ => None,
    };
    if voided > 0 || back.is_some() {
        record_event(conn, ctx, row, "change.approvals_voided", json!({ "voided": voided, "reason": "the window, services, CIs or risk changed after assessment" }))?;
    }
    if let Some(to) = back {
        record_event(conn, ctx, row, "change.status_changed", json!({ "from": row.status, "to": to.as_str(), "reason": "re-assessment after an edit" }))?;
        row.status = to.as_str().into();
    }
    Ok(())
}

/// Open conflicts: those nobody acknowledged.
fn open_conflicts(conflicts: &[ConflictRow]) -> StoreResult<Vec<Conflict>> {
    conflicts.iter().filter(|c| c.acknowledged_at.is_none()).map(ConflictRow::conflict).collect()
}

fn move_to(conn: &mut PgConnection, ed: &Editor<'_>, rules: &Rules<'_>, row: &mut ChangeRow, to: ChangeStatus) -> StoreResult<()> {
    let from = row.status()?;
    let legs = legs_of(conn, row.id)?;
    let approvals = approvals_of(conn, row.id)?;
    let conflicts = conflicts_of(conn, row.id)?;
    let state = approval(rules, row, &legs, &approvals, &conflicts)?;
    let plans = plans(&legs)?;
    let open = open_conflicts(&conflicts)?;
    let gate = GateInput {
        change_type: row.kind()?,
        status: from,
        on_hold: row.on_hold,
        window: row.window(),
        affects_something: !(row.services.is_empty() && row.cis.is_empty()),
        approval: &state,
        legs: &plans,
        open_conflicts: &open,
        now: ed.now,
    };
    lifecycle::check_move(&gate, to).map_err(StoreError::Blocked)?;
    record_event(conn, ed.ctx, row, "change.status_changed", json!({ "from": from.as_str(), "to": to.as_str() }))?;
    row.status = to.as_str().into();
    if from == ChangeStatus::Draft && !matches!(to, ChangeStatus::Cancelled) {
        open_legs(conn, ed, row)?;
    }
    match to {
        ChangeStatus::Implement => row.actual_start = Some(ed.now),
        ChangeStatus::Review => {
            row.actual_end = Some(ed.now);
            row.outcome = lifecycle::outcome(&plans).map(|o| o.as_str().to_string());
        }
        ChangeStatus::Closed | ChangeStatus::Cancelled | ChangeStatus::Rejected => {
            row.closed_at = Some(ed.now);
            if to != ChangeStatus::Closed {
                cancel_open_legs(conn, ed.ctx, row, &legs)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn save(conn: &mut PgConnection, row: &ChangeRow) -> StoreResult<()> {
    diesel::update(changes::table.find(row.id)).set(row).execute(conn)?;
    Ok(())
}

/// Why a change leg's dispatcher is asked to bring the supplier's change in line.
pub const DISPATCH_REASON: &str = "change";

/// Asks every leg's dispatcher to bring the supplier's change in line with the record, but the
/// leg of the supplier the edit came from: its change already says so.
fn dispatch_legs(conn: &mut PgConnection, ctx: &Context, row: &ChangeRow) -> StoreResult<()> {
    let suppliers: Vec<String> = change_legs::table.filter(change_legs::change_id.eq(row.id)).order(change_legs::id).select(change_legs::supplier_id).load(conn)?;
    for s in suppliers.iter().filter(|s| ctx.supplier.as_deref() != Some(s.as_str())) {
        incident_record::enqueue_dispatch(conn, ctx, &row.reference, s, DISPATCH_REASON)?;
    }
    Ok(())
}

/// One leg per supplier that routing gives the change's services and CIs, proposed.
fn open_legs(conn: &mut PgConnection, ed: &Editor<'_>, row: &ChangeRow) -> StoreResult<()> {
    let mut seen: Vec<String> = legs_of(conn, row.id)?.into_iter().map(|l| l.supplier_id).collect();
    for route in (ed.legs_for)(&row.services, &row.cis).into_iter().filter(|r| r.external) {
        if seen.contains(&route.supplier) {
            continue;
        }
        let now = Utc::now();
        diesel::insert_into(change_legs::table)
            .values((
                change_legs::change_id.eq(row.id),
                change_legs::supplier_id.eq(&route.supplier),
                change_legs::system.eq(&route.system),
                change_legs::state.eq(LegState::Proposed.as_str()),
                change_legs::opened_at.eq(now),
                change_legs::updated_at.eq(now),
            ))
            .execute(conn)?;
        record_event(conn, ed.ctx, row, "change.leg_opened", json!({ "supplier": route.supplier, "system": route.system, "rule": route.rule }))?;
        seen.push(route.supplier);
    }
    Ok(())
}

fn cancel_open_legs(conn: &mut PgConnection, ctx: &Context, row: &ChangeRow, legs: &[ChangeLegRow]) -> StoreResult<()> {
    for l in legs {
        if l.state()?.is_final() {
            continue;
        }
        diesel::update(change_legs::table.find(l.id)).set((change_legs::state.eq(LegState::Cancelled.as_str()), change_legs::updated_at.eq(Utc::now()))).execute(conn)?;
        record_event(conn, ctx, row, "change.leg_updated", json!({ "supplier": l.supplier_id, "from": l.state, "to": LegState::Cancelled.as_str() }))?;
    }
    Ok(())
}

/// Moves a leg (a supplier reporting progress on its part, or the change manager ordering the
/// legs). A leg starts only while the change is implementing and after the legs it depends on
/// succeeded; a failed leg, under the back-out policy, asks the legs that did their part to
/// back out.
pub fn update_leg(conn: &mut PgConnection, ctx: &Context, rules: &Rules<'_>, reference: &str, supplier: &str, u: &LegUpdate) -> StoreResult<ChangeDoc> {
    conn.transaction(|conn| {
        let mut row = lock_row(conn, reference)?;
        let status = row.status()?;
        let legs = legs_of(conn, row.id)?;
        let leg = legs.iter().find(|l| l.supplier_id == supplier).ok_or_else(|| StoreError::NotFound(format!("supplier {supplier}'s leg of {reference}")))?;
        if matches!(status, ChangeStatus::Closed | ChangeStatus::Cancelled | ChangeStatus::Rejected) {
            return Err(StoreError::Conflict(format!("change {reference} is {status}; its legs no longer move")));
        }
        let from = leg.state()?;
        let mut plan = leg.plan()?;
        if let Some(deps) = &u.depends_on {
            if let Some(unknown) = deps.iter().find(|d| *d == supplier || !legs.iter().any(|l| &l.supplier_id == *d)) {
                return Err(StoreError::Invalid(format!("depends_on names `{unknown}`, which is not another leg of {reference}")));
            }
            plan.depends_on = deps.clone();
        }
        let (start, end) = (u.planned_start.or(leg.planned_start), u.planned_end.or(leg.planned_end));
        if let (Some(s), Some(e)) = (start, end) {
            if e <= s {
                return Err(StoreError::Invalid("the leg's planned_end must be after its planned_start".into()));
            }
        }
        let to = u.state.unwrap_or(from);
        if to != from {
            check_leg_move(&row, status, from, to, &plan, &plans(&legs)?)?;
        }
        diesel::update(change_legs::table.find(leg.id))
            .set((
                change_legs::state.eq(to.as_str()),
                change_legs::planned_start.eq(start),
                change_legs::planned_end.eq(end),
                change_legs::depends_on.eq(&plan.depends_on),
                change_legs::native_number.eq(u.native_number.clone().or(leg.native_number.clone())),
                change_legs::updated_at.eq(Utc::now()),
            ))
            .execute(conn)?;
        record_event(
            conn,
            ctx,
            &row,
            "change.leg_updated",
            json!({ "supplier": supplier, "from": from.as_str(), "to": to.as_str(), "planned_start": start.as_ref().map(ms), "planned_end": end.as_ref().map(ms), "depends_on": plan.depends_on }),
        )?;
        if to == LegState::Failed && from != LegState::Failed && rules.back_out {
            let now_legs = plans(&legs_of(conn, row.id)?)?;
            for s in lifecycle::back_out_after_failure(&now_legs) {
                diesel::update(change_legs::table.filter(change_legs::change_id.eq(row.id)).filter(change_legs::supplier_id.eq(&s)))
                    .set(change_legs::backout_requested_at.eq(Utc::now()))
                    .execute(conn)?;
                record_event(conn, ctx, &row, "change.backout_requested", json!({ "supplier": s, "because": supplier }))?;
            }
        }
        recheck(conn, ctx, rules, &row)?;
        row.version += 1;
        row.updated_at = Utc::now();
        diesel::update(changes::table.find(row.id)).set((changes::version.eq(row.version), changes::updated_at.eq(row.updated_at))).execute(conn)?;
        dispatch_legs(conn, ctx, &row)?;
        document(conn, rules, &row, None)
    })
}

/// The moves a leg may make: forward through planning, into progress once the change is
/// implementing and its dependencies succeeded, to an end from progress, and back out from any
/// work done.
fn check_leg_move(row: &ChangeRow, status: ChangeStatus, from: LegState, to: LegState, plan: &LegPlan, legs: &[LegPlan]) -> StoreResult<()> {
    use LegState::*;
    let illegal = || StoreError::Blocked(vec![Blocked::LegNotReady { supplier: plan.supplier.clone(), state: from, needs: "in a state that can make this move" }]);
    let rank = |s: LegState| match s {
        Proposed => 0,
        Accepted => 1,
        Scheduled => 2,
        Ready => 3,
        _ => 9,
    };
    match to {
        Accepted | Scheduled | Ready if rank(from) < rank(to) || (from == Ready && to == Scheduled) => Ok(()),
        Cancelled if !from.is_final() => Ok(()),
        InProgress if matches!(from, Ready | Scheduled | Accepted) => {
            if status != ChangeStatus::Implement {
                return Err(StoreError::Conflict(format!("change {} is {status}: legs start once it is implementing", row.reference)));
            }
            lifecycle::may_start(plan, legs).map_err(|waiting| StoreError::Conflict(format!("supplier {}'s leg may not start: {}", plan.supplier, waiting.join("; "))))
        }
        Succeeded | SucceededWithIssues | Failed if from == InProgress => Ok(()),
        BackedOut if matches!(from, InProgress | Succeeded | SucceededWithIssues | Failed) => Ok(()),
        _ => Err(illegal()),
    }
}

/// Records an approval decision. A rejection ends the change (`rejected`); a supplier decides
/// for its own leg only. A later decision by the same approver replaces the earlier one.
pub fn decide(conn: &mut PgConnection, ctx: &Context, rules: &Rules<'_>, reference: &str, by: &Approver, approve: bool, comment: &str) -> StoreResult<ChangeDoc> {
    conn.transaction(|conn| {
        let mut row = lock_row(conn, reference)?;
        let status = row.status()?;
        if !matches!(status, ChangeStatus::Assess | ChangeStatus::Authorize) {
            return Err(StoreError::Conflict(format!("change {reference} is {status}: decisions are taken while it is in assess or authorize")));
        }
        if row.kind()? == ChangeType::Standard {
            return Err(StoreError::Conflict(format!("change {reference} is a standard change, pre-approved by its template")));
        }
        let (kind, id) = match by {
            Approver::Integrator(k) => ("integrator", k.as_str()),
            Approver::Supplier(s) => ("supplier", s.as_str()),
        };
        if let Approver::Supplier(s) = by {
            let held = legs_of(conn, row.id)?.iter().any(|l| &l.supplier_id == s && l.state != LegState::Cancelled.as_str());
            if !held {
                return Err(StoreError::Conflict(format!("supplier {s} holds no open leg of {reference}")));
            }
        }
        let now = Utc::now();
        diesel::update(change_approvals::table.filter(change_approvals::change_id.eq(row.id)).filter(change_approvals::kind.eq(kind)).filter(change_approvals::approver.eq(id)))
            .filter(change_approvals::voided_at.is_null())
            .set(change_approvals::voided_at.eq(now))
            .execute(conn)?;
        diesel::insert_into(change_approvals::table)
            .values((
                change_approvals::change_id.eq(row.id),
                change_approvals::kind.eq(kind),
                change_approvals::approver.eq(id),
                change_approvals::approve.eq(approve),
                change_approvals::comment.eq(comment),
                change_approvals::decided_at.eq(now),
            ))
            .execute(conn)?;
        record_event(conn, ctx, &row, "change.approval", json!({ "by": { "kind": kind, "id": id }, "decision": if approve { "approve" } else { "reject" }, "comment": comment }))?;
        if !approve {
            record_event(conn, ctx, &row, "change.status_changed", json!({ "from": row.status, "to": ChangeStatus::Rejected.as_str(), "reason": comment }))?;
            row.status = ChangeStatus::Rejected.as_str().into();
            row.closed_at = Some(now);
            let legs = legs_of(conn, row.id)?;
            cancel_open_legs(conn, ctx, &row, &legs)?;
        }
        row.version += 1;
        row.updated_at = now;
        save(conn, &row)?;
        if !approve {
            // A rejected change leaves the schedule.
            recheck(conn, ctx, rules, &row)?;
        }
        dispatch_legs(conn, ctx, &row)?;
        document(conn, rules, &row, None)
    })
}

/// Acknowledges a conflict with a reason: it stays listed, no longer blocks, and stays
/// acknowledged while re-detection finds it unchanged. A hard freeze is overridden only for an
/// emergency change.
pub fn acknowledge(conn: &mut PgConnection, ctx: &Context, rules: &Rules<'_>, reference: &str, key: &str, reason: &str) -> StoreResult<ChangeDoc> {
    conn.transaction(|conn| {
        let mut row = lock_row(conn, reference)?;
        let c: ConflictRow = change_conflicts::table
            .find((row.id, key))
            .select(ConflictRow::as_select())
            .first(conn)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("conflict `{key}` of {reference}")))?;
        if c.kind == ConflictKind::Freeze.as_str() && c.hard && row.kind()? != ChangeType::Emergency {
            return Err(StoreError::Conflict(format!("{} is a hard freeze: only an emergency change may override it", c.subject)));
        }
        let now = Utc::now();
        diesel::update(change_conflicts::table.find((row.id, key)))
            .set((change_conflicts::acknowledged_by.eq(&ctx.source), change_conflicts::ack_reason.eq(reason), change_conflicts::acknowledged_at.eq(now)))
            .execute(conn)?;
        record_event(conn, ctx, &row, "change.conflict_acknowledged", json!({ "key": key, "kind": c.kind, "subject": c.subject, "reason": reason }))?;
        row.version += 1;
        row.updated_at = now;
        diesel::update(changes::table.find(row.id)).set((changes::version.eq(row.version), changes::updated_at.eq(now))).execute(conn)?;
        document(conn, rules, &row, None)
    })
}

/// Re-detects the conflicts of `row` and of every change that shares a service or CI with it,
/// or had a conflict with it: an edit of one change can make or end another's conflict.
fn recheck(conn: &mut PgConnection, ctx: &Context, rules: &Rules<'_>, row: &ChangeRow) -> StoreResult<()> {
    let peers = peers_of(conn, row)?;
    let had: Vec<i64> = change_conflicts::table.filter(change_conflicts::other_ref.eq(&row.reference)).select(change_conflicts::change_id).load(conn)?;
    store_conflicts(conn, ctx, rules, row, &peers)?;
    let mut others: Vec<ChangeRow> = peers;
    let missing: Vec<i64> = had.into_iter().filter(|id| !others.iter().any(|o| o.id == *id)).collect();
    if !missing.is_empty() {
        others.extend(changes::table.filter(changes::id.eq_any(missing)).select(ChangeRow::as_select()).load(conn)?);
    }
    for other in others.iter().filter(|o| o.id != row.id) {
        let their_peers = peers_of(conn, other)?;
        store_conflicts(conn, ctx, rules, other, &their_peers)?;
    }
    Ok(())
}

/// The changes in the schedule that share a service or CI with `row` (its own latest state
/// included in place of the stored one).
fn peers_of(conn: &mut PgConnection, row: &ChangeRow) -> StoreResult<Vec<ChangeRow>> {
    let counted = [ChangeStatus::Assess, ChangeStatus::Authorize, ChangeStatus::Scheduled, ChangeStatus::Implement, ChangeStatus::Review].map(|s| s.as_str());
    Ok(changes::table
        .filter(changes::id.ne(row.id))
        .filter(changes::status.eq_any(counted))
        .filter(changes::services.overlaps_with(row.services.clone()).or(changes::cis.overlaps_with(row.cis.clone())))
        .select(ChangeRow::as_select())
        .load(conn)?)
}

fn store_conflicts(conn: &mut PgConnection, ctx: &Context, rules: &Rules<'_>, row: &ChangeRow, peers: &[ChangeRow]) -> StoreResult<()> {
    let me = row.planned()?;
    let found = if me.counts() || me.status == ChangeStatus::Draft {
        let others = peers.iter().map(ChangeRow::planned).collect::<StoreResult<Vec<_>>>()?;
        let legs = plans(&legs_of(conn, row.id)?)?;
        schedule::detect(&me, &legs, &others, rules.freezes, rules.maintenance)
    } else {
        vec![]
    };
    let stored = conflicts_of(conn, row.id)?;
    let keys: Vec<String> = found.iter().map(Conflict::key).collect();
    let gone: Vec<&String> = stored.iter().map(|c| &c.key).filter(|k| !keys.contains(k)).collect();
    if !gone.is_empty() {
        diesel::delete(change_conflicts::table.filter(change_conflicts::change_id.eq(row.id)).filter(change_conflicts::key.eq_any(&gone))).execute(conn)?;
        record_event(conn, ctx, row, "change.conflicts_cleared", json!({ "keys": gone }))?;
    }
    let now = Utc::now();
    for c in found {
        let key = c.key();
        match stored.iter().find(|s| s.key == key) {
            Some(s) => {
                if s.period_start != c.period.start || s.period_end != c.period.end || s.detail != c.detail || s.hard != c.hard {
                    diesel::update(change_conflicts::table.find((row.id, &key)))
                        .set((
                            change_conflicts::period_start.eq(c.period.start),
                            change_conflicts::period_end.eq(c.period.end),
                            change_conflicts::detail.eq(&c.detail),
                            change_conflicts::hard.eq(c.hard),
                        ))
                        .execute(conn)?;
                }
            }
            None => {
                let new = ConflictRow {
                    change_id: row.id,
                    key: key.clone(),
                    kind: c.kind.as_str().into(),
                    other_ref: c.other.clone(),
                    subject: c.subject.clone(),
                    period_start: c.period.start,
                    period_end: c.period.end,
                    hard: c.hard,
                    detail: c.detail.clone(),
                    detected_at: now,
                    acknowledged_by: None,
                    ack_reason: None,
                    acknowledged_at: None,
                };
                diesel::insert_into(change_conflicts::table).values(&new).execute(conn)?;
                record_event(conn, ctx, row, "change.conflict_detected", conflict_json(&new))?;
            }
        }
    }
    Ok(())
}

/// Adds a note to the change.
pub fn add_note(conn: &mut PgConnection, ctx: &Context, rules: &Rules<'_>, reference: &str, visibility: Visibility, author: &str, text: &str) -> StoreResult<ChangeDoc> {
    conn.transaction(|conn| {
        let mut row = lock_row(conn, reference)?;
        let now = Utc::now();
        let id: i64 = diesel::insert_into(change_notes::table)
            .values((
                change_notes::change_id.eq(row.id),
                change_notes::visibility.eq(visibility.as_str()),
                change_notes::author.eq(author),
                change_notes::body.eq(text),
                change_notes::created_at.eq(now),
            ))
            .returning(change_notes::id)
            .get_result(conn)?;
        record_event(conn, ctx, &row, "change.note_added", json!({ "note": id, "visibility": visibility.as_str(), "author": author }))?;
        row.version += 1;
        row.updated_at = now;
        diesel::update(changes::table.find(row.id)).set((changes::version.eq(row.version), changes::updated_at.eq(now))).execute(conn)?;
        document(conn, rules, &row, None)
    })
}

/// The change's event log, oldest first, a page at a time.
/// An event of the change's log as `viewer` (a supplier; `None`: the integrator) may read it: a
/// supplier reads the change's own events and its own leg's, of another supplier's leg only how
/// far it got, and no internal note.
fn seen_by(mut e: ChangeEventRow, viewer: Option<&str>) -> Option<ChangeEventRow> {
    let Some(me) = viewer else { return Some(e) };
    if e.kind == "change.note_added" && e.data["visibility"] == Visibility::Internal.as_str() {
        return None;
    }
    let about = e.data.get("supplier").and_then(Value::as_str).map(str::to_string);
    match about {
        Some(s) if s != me => match e.kind.as_str() {
            "change.leg_opened" | "change.leg_updated" => {
                e.data = json!({ "supplier": s, "from": e.data.get("from"), "to": e.data.get("to") });
                Some(e)
            }
            _ => None,
        },
        _ => Some(e),
    }
}

/// Another supplier's leg as a supplier may see it: whose it is and how far it got.
fn leg_seen_by(mut l: ChangeLegRow, viewer: Option<&str>) -> ChangeLegRow {
    if viewer.is_some_and(|v| v != l.supplier_id) {
        (l.native_id, l.native_number, l.native_status, l.last_error, l.pushed) = (None, None, None, None, None);
        (l.native_kept, l.unmapped) = (json!({}), json!({}));
    }
    l
}

pub fn history_page(conn: &mut PgConnection, reference: &str, viewer: Option<&str>, after: Option<i64>, limit: i64) -> StoreResult<(Vec<ChangeEventRow>, Option<i64>)> {
    let row = find_row(conn, reference)?;
    let mut q = change_events::table.filter(change_events::change_id.eq(row.id)).into_boxed();
    if let Some(a) = after {
        q = q.filter(change_events::id.gt(a));
    }
    let rows: Vec<ChangeEventRow> = q.order(change_events::id).limit(limit + 1).select(ChangeEventRow::as_select()).load(conn)?;
    let next = (rows.len() as i64 > limit).then(|| rows[limit as usize - 1].id);
    Ok((rows.into_iter().take(limit as usize).filter_map(|e| seen_by(e, viewer)).collect(), next))
}
