//! Changes to the unified record. Each public function here is one transaction that writes the
//! ticket change, its events and its outbox rows together.

use super::models::LegRow;
use super::models::*;
use super::schema::*;
use super::{StoreError, StoreResult};
use crate::domain::event::cloud_event;
use crate::domain::*;
use chrono::Utc;
use diesel::prelude::*;
use diesel::PgConnection;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Who is changing the record, and under which correlation id.
#[derive(Debug, Clone)]
pub struct Context {
    /// `api:<key prefix>`, `supplier:<id>` or `hub`.
    pub source: String,
    /// Set when the change comes from a supplier system: that supplier's legs are not sent the
    /// change back.
    pub supplier: Option<String>,
    pub correlation_id: String,
}

impl Context {
    pub fn hub(correlation_id: impl Into<String>) -> Self {
        Context { source: "hub".into(), supplier: None, correlation_id: correlation_id.into() }
    }
    pub fn supplier(id: &str, correlation_id: impl Into<String>) -> Self {
        Context { source: format!("supplier:{id}"), supplier: Some(id.to_string()), correlation_id: correlation_id.into() }
    }
}

/// Where routing sent a new incident.
#[derive(Debug, Clone)]
pub struct Route {
    pub supplier: String,
    pub system: String,
    /// False for a hub-internal queue: no supplier ticket is created.
    pub external: bool,
    /// Which rule matched (`default` when none did).
    pub rule: String,
}

#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub principal: String,
    pub key: String,
    pub request_hash: String,
}

pub fn content_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// Appends an event to the ticket's log and queues it for the bus.
pub fn record_event(conn: &mut PgConnection, ctx: &Context, row: &IncidentRow, event: NewEvent) -> StoreResult<()> {
    append_event(conn, ctx, row, uuid::Uuid::now_v7(), event)
}

/// [`record_event`] under an id the caller chose (and may already have stored elsewhere in the
/// same transaction, as the SLA monitor does with its once-only alerts).
pub fn append_event(conn: &mut PgConnection, ctx: &Context, row: &IncidentRow, id: uuid::Uuid, event: NewEvent) -> StoreResult<()> {
    let now = Utc::now();
    diesel::insert_into(events::table)
        .values((
            events::event_id.eq(id),
            events::incident_id.eq(row.id),
            events::kind.eq(event.kind.as_str()),
            events::source.eq(&event.source),
            events::data.eq(&event.data),
            events::occurred_at.eq(now),
            events::correlation_id.eq(&ctx.correlation_id),
        ))
        .execute(conn)?;
    let mut data = event.data;
    if let Some(obj) = data.as_object_mut() {
        obj.insert("source".into(), json!(event.source));
    }
    let envelope = cloud_event(id, event.kind.as_str(), &row.reference, &now, &ctx.correlation_id, data);
    enqueue(conn, id, event.kind.as_str(), &envelope)
}

/// Queues a message for the outbox relay.
pub fn enqueue(conn: &mut PgConnection, id: uuid::Uuid, routing_key: &str, payload: &serde_json::Value) -> StoreResult<()> {
    diesel::insert_into(outbox::table).values((outbox::message_id.eq(id), outbox::routing_key.eq(routing_key), outbox::payload.eq(payload))).execute(conn)?;
    Ok(())
}

/// Routing key of the dispatch queue of one supplier.
pub fn dispatch_key(supplier: &str) -> String {
    format!("dispatch.{supplier}")
}

/// Asks the supplier's dispatcher to bring its ticket in line with the record.
pub fn enqueue_dispatch(conn: &mut PgConnection, ctx: &Context, reference: &str, supplier: &str, reason: &str) -> StoreResult<()> {
    let id = uuid::Uuid::now_v7();
    let envelope = cloud_event(id, "siam.dispatch.sync", reference, &Utc::now(), &ctx.correlation_id, json!({ "ref": reference, "supplier": supplier, "reason": reason }));
    enqueue(conn, id, &dispatch_key(supplier), &envelope)
}

/// Dispatches to every live leg (and every withdrawn one whose supplier ticket is not yet
/// cancelled) except the one the change came from.
fn dispatch_to_legs(conn: &mut PgConnection, ctx: &Context, row: &IncidentRow, reason: &str) -> StoreResult<()> {
    let targets: Vec<String> = legs::table
        .filter(legs::incident_id.eq(row.id))
        .filter(legs::state.eq_any([LegState::Pending.as_str(), LegState::Open.as_str()]).or(legs::state.eq(LegState::Withdrawn.as_str()).and(legs::closed_at.is_null())))
        .select(legs::supplier_id)
        .distinct()
        .load(conn)?;
    for supplier in targets.iter().filter(|s| Some(*s) != ctx.supplier.as_ref()) {
        enqueue_dispatch(conn, ctx, &row.reference, supplier, reason)?;
    }
    Ok(())
}

pub fn find_row(conn: &mut PgConnection, reference: &str) -> StoreResult<IncidentRow> {
    incidents::table
        .filter(incidents::reference.eq(reference))
        .select(IncidentRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("incident {reference}")))
}

fn lock_row(conn: &mut PgConnection, reference: &str) -> StoreResult<IncidentRow> {
    incidents::table
        .filter(incidents::reference.eq(reference))
        .select(IncidentRow::as_select())
        .for_update()
        .first(conn)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("incident {reference}")))
}

pub fn lock_row_by_id(conn: &mut PgConnection, id: i64) -> StoreResult<IncidentRow> {
    Ok(incidents::table.find(id).select(IncidentRow::as_select()).for_update().first(conn)?)
}

/// The canonical document of one incident.
pub fn load(conn: &mut PgConnection, reference: &str) -> StoreResult<Incident> {
    let row = find_row(conn, reference)?;
    document(conn, &row)
}

pub fn document(conn: &mut PgConnection, row: &IncidentRow) -> StoreResult<Incident> {
    let mut doc = document_without_attachments(conn, row)?;
    doc.attachments = super::attachments::for_incidents(conn, &[row.id])?.into_iter().map(|(_, a)| a).collect();
    Ok(doc)
}

fn document_without_attachments(conn: &mut PgConnection, row: &IncidentRow) -> StoreResult<Incident> {
    let notes = notes::table.filter(notes::incident_id.eq(row.id)).order(notes::id).select(NoteRow::as_select()).load(conn)?;
    let legs = legs::table.filter(legs::incident_id.eq(row.id)).order(legs::id).select(LegRow::as_select()).load(conn)?;
    row.to_domain(&notes, &legs)
}

/// Filters of the incident list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub supplier: Option<String>,
    pub priority: Option<Priority>,
    pub service: Option<String>,
    /// Only incidents in which this supplier holds a leg (a supplier-scoped key).
    pub visible_to_supplier: Option<String>,
    /// Words of the title, the hub's reference, or a supplier's ticket number or id (to a
    /// supplier key, only its own tickets' numbers).
    pub search: Option<String>,
}

/// `text` as a case-insensitive `LIKE` pattern matching it anywhere, its wildcards taken literally.
fn contains_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// The ids of the incidents `supplier` may see (see [`crate::domain::access`]); a closed or
/// cancelled incident it held to the end stays among them, read only.
pub fn seen_by_supplier(supplier: &str) -> legs::BoxedQuery<'static, diesel::pg::Pg, diesel::sql_types::BigInt> {
    let states: Vec<&'static str> = LegState::SEEN_BY_ITS_SUPPLIER.iter().map(|s| s.as_str()).collect();
    legs::table.filter(legs::supplier_id.eq(supplier.to_string())).filter(legs::state.eq_any(states)).select(legs::incident_id).into_boxed()
}

/// A page of incidents, newest first; `after` is the id the previous page ended on.
pub fn list(conn: &mut PgConnection, filter: &ListFilter, after: Option<i64>, limit: i64) -> StoreResult<(Vec<Incident>, Option<i64>)> {
    let mut q = incidents::table.select(IncidentRow::as_select()).order(incidents::id.desc()).limit(limit + 1).into_boxed();
    if let Some(s) = filter.status {
        q = q.filter(incidents::status.eq(s.as_str()));
    }
    if let Some(s) = &filter.supplier {
        q = q.filter(incidents::assigned_supplier.eq(s.clone()));
    }
    if let Some(p) = filter.priority {
        q = q.filter(incidents::priority.eq(i16::from(p.get())));
    }
    if let Some(s) = &filter.service {
        q = q.filter(incidents::service.eq(s.clone()));
    }
    if let Some(s) = &filter.visible_to_supplier {
        q = q.filter(incidents::id.eq_any(seen_by_supplier(s)));
    }
    if let Some(text) = filter.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let mut numbered = legs::table.filter(legs::native_number.eq(text.to_string()).or(legs::native_id.eq(text.to_string()))).select(legs::incident_id).into_boxed();
        if let Some(s) = &filter.visible_to_supplier {
            numbered = numbered.filter(legs::supplier_id.eq(s.clone()));
        }
        q = q.filter(incidents::title.ilike(contains_pattern(text)).or(incidents::reference.eq(text.to_uppercase())).or(incidents::id.eq_any(numbered)));
    }
    if let Some(after) = after {
        q = q.filter(incidents::id.lt(after));
    }
    let mut rows: Vec<IncidentRow> = q.load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let all_notes: Vec<NoteRow> = notes::table.filter(notes::incident_id.eq_any(&ids)).order(notes::id).select(NoteRow::as_select()).load(conn)?;
    let all_legs: Vec<LegRow> = legs::table.filter(legs::incident_id.eq_any(&ids)).order(legs::id).select(LegRow::as_select()).load(conn)?;
    let all_attachments = super::attachments::for_incidents(conn, &ids)?;
    let docs = rows
        .iter()
        .map(|r| {
            let n: Vec<NoteRow> = all_notes.iter().filter(|x| x.incident_id == r.id).cloned().collect();
            let l: Vec<LegRow> = all_legs.iter().filter(|x| x.incident_id == r.id).cloned().collect();
            let mut doc = r.to_domain(&n, &l)?;
            doc.attachments = all_attachments.iter().filter(|(id, _)| *id == r.id).map(|(_, a)| a.clone()).collect();
            Ok(doc)
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let next = if more { rows.last().map(|r| r.id) } else { None };
    Ok((docs, next))
}

pub fn history(conn: &mut PgConnection, reference: &str) -> StoreResult<Vec<EventRow>> {
    let row = find_row(conn, reference)?;
    Ok(events::table.filter(events::incident_id.eq(row.id)).order(events::id).select(EventRow::as_select()).load(conn)?)
}

/// A page of the ticket's event log, oldest first, after the event `after` (the id a previous
/// page ended on); with the id to continue after when there is more.
pub fn history_page(conn: &mut PgConnection, reference: &str, after: Option<i64>, limit: i64) -> StoreResult<(Vec<EventRow>, Option<i64>)> {
    let row = find_row(conn, reference)?;
    let mut page: Vec<EventRow> = events::table
        .filter(events::incident_id.eq(row.id))
        .filter(events::id.gt(after.unwrap_or(0)))
        .order(events::id)
        .limit(limit + 1)
        .select(EventRow::as_select())
        .load(conn)?;
    let more = page.len() as i64 > limit;
    page.truncate(limit as usize);
    let next = if more { page.last().map(|e| e.id) } else { None };
    Ok((page, next))
}

/// The ticket's routing events (who held it when), oldest first.
pub fn routings(conn: &mut PgConnection, reference: &str) -> StoreResult<Vec<EventRow>> {
    let row = find_row(conn, reference)?;
    Ok(events::table.filter(events::incident_id.eq(row.id)).filter(events::kind.eq(EventType::Routed.as_str())).order(events::id).select(EventRow::as_select()).load(conn)?)
}

/// Raises a new incident: stores it, routes it, logs `incident.created` and `incident.routed`,
/// and queues the dispatch to the chosen supplier. With an idempotency key, a repeat of the same
/// request returns the first incident (`true` = replayed) instead of creating another.
pub fn create_incident(
    conn: &mut PgConnection,
    ctx: &Context,
    idem: Option<&IdempotencyKey>,
    new: &NewIncident,
    priority: Priority,
    route: &Route,
) -> StoreResult<(Incident, bool)> {
    conn.transaction(|conn| {
        if let Some(k) = idem {
            // Serialises requests that share a key, so two racing retries make one incident.
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind::<diesel::sql_types::Text, _>(format!("{}\n{}", k.principal, k.key)).execute(conn)?;
            let existing: Option<(String, i64)> =
                idempotency_keys::table.find((&k.principal, &k.key)).select((idempotency_keys::request_hash, idempotency_keys::incident_id)).first(conn).optional()?;
            if let Some((hash, incident_id)) = existing {
                if hash != k.request_hash {
                    return Err(StoreError::IdempotencyMismatch(k.key.clone()));
                }
                let row = incidents::table.find(incident_id).select(IncidentRow::as_select()).first(conn)?;
                return Ok((document(conn, &row)?, true));
            }
        }
        let id: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("nextval('incident_number_seq')")).get_result(conn)?;
        let now = Utc::now();
        let row = IncidentRow {
            id,
            reference: TicketRef::incident(id).to_string(),
            title: new.title.clone(),
            description: new.description.clone(),
            status: Status::New.as_str().into(),
            hold_reason: None,
            impact: new.impact.get().into(),
            urgency: new.urgency.get().into(),
            priority: priority.get().into(),
            priority_source: PrioritySource::Derived.as_str().into(),
            category: new.category.clone(),
            service: new.service.clone(),
            ci: new.ci.clone(),
            caller: new.caller.clone(),
            assigned_supplier: Some(route.supplier.clone()),
            resolution_code: None,
            resolution_notes: None,
            opened_at: now,
            updated_at: now,
            resolved_at: None,
            closed_at: None,
            version: 1,
            caused_by_change: None,
            fixed_by_change: None,
        };
        diesel::insert_into(incidents::table).values(&row).execute(conn)?;
        record_event(
            conn,
            ctx,
            &row,
            NewEvent::new(
                EventType::Created,
                &ctx.source,
                json!({
                    "title": row.title, "status": row.status, "impact": row.impact, "urgency": row.urgency,
                    "priority": row.priority, "service": row.service, "ci": row.ci, "category": row.category,
                    "caller": row.caller,
                }),
            ),
        )?;
        record_event(conn, ctx, &row, NewEvent::new(EventType::Routed, &ctx.source, json!({ "supplier": route.supplier, "rule": route.rule })))?;
        if route.external {
            diesel::insert_into(legs::table)
                .values((
                    legs::incident_id.eq(id),
                    legs::supplier_id.eq(&route.supplier),
                    legs::system.eq(&route.system),
                    legs::state.eq(LegState::Pending.as_str()),
                    legs::opened_at.eq(now),
                ))
                .execute(conn)?;
            enqueue_dispatch(conn, ctx, &row.reference, &route.supplier, "created")?;
        }
        if let Some(k) = idem {
            diesel::insert_into(idempotency_keys::table)
                .values((
                    idempotency_keys::principal.eq(&k.principal),
                    idempotency_keys::key.eq(&k.key),
                    idempotency_keys::request_hash.eq(&k.request_hash),
                    idempotency_keys::incident_id.eq(id),
                ))
                .execute(conn)?;
        }
        Ok((document(conn, &row)?, false))
    })
}

/// Applies `changes` made through the hub's API, checking the caller's expected version.
pub fn update(conn: &mut PgConnection, ctx: &Context, reference: &str, expected_version: i32, changes: &IncidentChanges, matrix: &PriorityMatrix) -> StoreResult<Incident> {
    conn.transaction(|conn| {
        let row = lock_row(conn, reference)?;
        if row.version != expected_version {
            return Err(StoreError::VersionConflict { current: row.version, expected: expected_version });
        }
        let row = apply_changes(conn, ctx, row, changes, matrix)?;
        document(conn, &row)
    })
}

fn opt_eq<T: PartialEq>(current: &Option<T>, new: &Option<Option<T>>) -> bool {
    match new {
        None => true,
        Some(n) => n == current,
    }
}

/// Applies `changes` to a locked row inside the caller's transaction: lifecycle checks, derived
/// priority and timestamps, version bump, events, and dispatch to the other legs. Fields whose
/// value does not change are dropped, so an echo of the current state writes nothing.
/// A supplier now holds the ticket: a `new` incident becomes `assigned` (any other status stays).
pub fn assign_if_new(conn: &mut PgConnection, ctx: &Context, row: IncidentRow, matrix: &PriorityMatrix) -> StoreResult<IncidentRow> {
    if row.status()? != Status::New {
        return Ok(row);
    }
    apply_changes(conn, ctx, row, &IncidentChanges { status: Some(Status::Assigned), ..Default::default() }, matrix)
}

pub fn apply_changes(conn: &mut PgConnection, ctx: &Context, mut row: IncidentRow, changes: &IncidentChanges, matrix: &PriorityMatrix) -> StoreResult<IncidentRow> {
    let current = row.to_domain(&[], &[])?;
    let mut c = changes.clone();
    if c.title.as_ref() == Some(&current.title) {
        c.title = None;
    }
    if c.description.as_ref() == Some(&current.description) {
        c.description = None;
    }
    if c.status == Some(current.status) {
        c.status = None;
    }
    if opt_eq(&current.hold_reason, &c.hold_reason) {
        c.hold_reason = None;
    }
    if c.impact == Some(current.impact) {
        c.impact = None;
    }
    if c.urgency == Some(current.urgency) {
        c.urgency = None;
    }
    if opt_eq(&current.category, &c.category) {
        c.category = None;
    }
    if opt_eq(&current.ci, &c.ci) {
        c.ci = None;
    }
    if opt_eq(&current.resolution, &c.resolution) {
        c.resolution = None;
    }
    if opt_eq(&current.caused_by_change, &c.caused_by_change) {
        c.caused_by_change = None;
    }
    if opt_eq(&current.fixed_by_change, &c.fixed_by_change) {
        c.fixed_by_change = None;
    }
    // Leaving hold clears the reason unless the change sets one.
    if c.status.is_some() && c.status != Some(Status::OnHold) && c.hold_reason.is_none() && current.hold_reason.is_some() {
        c.hold_reason = Some(None);
    }
    if c.is_empty() {
        return Ok(row);
    }
    current.check(&c)?;

    let now = Utc::now();
    if let Some(t) = &c.title {
        row.title = t.clone();
    }
    if let Some(d) = &c.description {
        row.description = d.clone();
    }
    if let Some(h) = &c.hold_reason {
        row.hold_reason = h.map(|h| h.as_str().to_string());
    }
    if let Some(i) = c.impact {
        row.impact = i.get().into();
    }
    if let Some(u) = c.urgency {
        row.urgency = u.get().into();
    }
    if (c.impact.is_some() || c.urgency.is_some()) && current.priority_source == PrioritySource::Derived {
        let impact = c.impact.unwrap_or(current.impact);
        let urgency = c.urgency.unwrap_or(current.urgency);
        row.priority = matrix.derive(impact, urgency).get().into();
    }
    if let Some(cat) = &c.category {
        row.category = cat.clone();
    }
    if let Some(ci) = &c.ci {
        row.ci = ci.clone();
    }
    if let Some(r) = &c.resolution {
        row.resolution_code = r.as_ref().map(|r| r.code.clone());
        row.resolution_notes = r.as_ref().map(|r| r.notes.clone());
    }
    for (link, column) in [(&c.caused_by_change, &mut row.caused_by_change), (&c.fixed_by_change, &mut row.fixed_by_change)] {
        if let Some(link) = link {
            if let Some(change) = link {
                let known: bool = diesel::select(diesel::dsl::exists(changes::table.filter(changes::reference.eq(change.as_str())))).get_result(conn)?;
                if !known {
                    return Err(StoreError::Invalid(format!("there is no change {change}")));
                }
            }
            *column = link.as_ref().map(|r| r.as_str().to_string());
        }
    }
    if let Some(s) = c.status {
        row.status = s.as_str().into();
        match s {
            Status::Resolved => row.resolved_at = Some(now),
            Status::Closed | Status::Cancelled => {
                row.closed_at = Some(now);
                if s == Status::Closed && row.resolved_at.is_none() {
                    row.resolved_at = Some(now);
                }
            }
            _ => {
                // Reopened: the earlier resolution stays in the event log.
                row.resolved_at = None;
            }
        }
    }
    row.updated_at = now;
    row.version += 1;
    diesel::update(incidents::table.find(row.id)).set(&row).execute(conn)?;

    if let Some(s) = c.status {
        record_event(
            conn,
            ctx,
            &row,
            NewEvent::new(EventType::StatusChanged, &ctx.source, json!({ "from": current.status, "to": s, "hold_reason": row.hold_reason, "supplier": row.assigned_supplier })),
        )?;
    }
    let mut fields = serde_json::to_value(&c).unwrap_or_default();
    if let Some(obj) = fields.as_object_mut() {
        obj.remove("status");
        if c.impact.is_some() || c.urgency.is_some() {
            obj.insert("priority".into(), json!(row.priority));
        }
    }
    if fields.as_object().is_some_and(|o| !o.is_empty()) {
        record_event(conn, ctx, &row, NewEvent::new(EventType::Updated, &ctx.source, json!({ "changes": fields, "version": row.version })))?;
    }
    dispatch_to_legs(conn, ctx, &row, "updated")?;
    Ok(row)
}

/// A note as it arrives, before it is stored.
#[derive(Debug, Clone)]
pub struct NewNote {
    pub visibility: Visibility,
    pub author: String,
    pub text: String,
    /// `hub`, or the supplier id the note came from.
    pub origin: String,
    pub native_id: Option<String>,
    pub created_at: chrono::DateTime<Utc>,
}

/// Adds a note to a locked incident. A note already recorded under the same native id is
/// ignored (`None`).
pub fn add_note(conn: &mut PgConnection, ctx: &Context, row: &mut IncidentRow, note: &NewNote) -> StoreResult<Option<Note>> {
    let hash = content_hash(&[note.visibility.as_str(), note.text.trim()]);
    let inserted: Option<NoteRow> = diesel::insert_into(notes::table)
        .values((
            notes::incident_id.eq(row.id),
            notes::visibility.eq(note.visibility.as_str()),
            notes::author.eq(&note.author),
            notes::body.eq(&note.text),
            notes::origin.eq(&note.origin),
            notes::native_id.eq(&note.native_id),
            notes::content_hash.eq(&hash),
            notes::created_at.eq(note.created_at),
        ))
        .on_conflict_do_nothing()
        .returning(NoteRow::as_returning())
        .get_result(conn)
        .optional()?;
    let Some(inserted) = inserted else { return Ok(None) };
    let data = json!({ "note_id": inserted.id, "visibility": inserted.visibility, "origin": inserted.origin, "author": inserted.author });
    add_to_record(conn, ctx, row, NewEvent::new(EventType::NoteAdded, &ctx.source, data), "note")?;
    Ok(Some(inserted.to_domain()?))
}

/// Something was added to a locked incident (a note, a file): a new version, its event, and
/// the other legs told.
pub fn add_to_record(conn: &mut PgConnection, ctx: &Context, row: &mut IncidentRow, event: NewEvent, reason: &str) -> StoreResult<()> {
    row.updated_at = Utc::now();
    row.version += 1;
    diesel::update(incidents::table.find(row.id)).set((incidents::updated_at.eq(row.updated_at), incidents::version.eq(row.version))).execute(conn)?;
    record_event(conn, ctx, row, event)?;
    dispatch_to_legs(conn, ctx, row, reason)
}

/// Adds a note written at the hub, in its own transaction.
pub fn add_hub_note(conn: &mut PgConnection, ctx: &Context, reference: &str, note: &NewNote) -> StoreResult<(Note, Incident)> {
    conn.transaction(|conn| {
        let mut row = lock_row(conn, reference)?;
        let status = row.status()?;
        if status.is_terminal() {
            return Err(crate::domain::incident::LifecycleError::Terminal(status).into());
        }
        let stored = add_note(conn, ctx, &mut row, note)?.ok_or_else(|| StoreError::Corrupt("a hub note collided with an existing native id".into()))?;
        Ok((stored, document(conn, &row)?))
    })
}

/// The active leg of `supplier` on an incident, if any.
pub fn active_leg(conn: &mut PgConnection, incident_id: i64, supplier: &str) -> StoreResult<Option<LegRow>> {
    Ok(legs::table
        .filter(legs::incident_id.eq(incident_id))
        .filter(legs::supplier_id.eq(supplier))
        .filter(legs::state.eq_any([LegState::Pending.as_str(), LegState::Open.as_str()]))
        .order(legs::id.desc())
        .select(LegRow::as_select())
        .first(conn)
        .optional()?)
}

/// Suppliers that handed this incident back (so routing skips them).
pub fn handed_back_by(conn: &mut PgConnection, incident_id: i64) -> StoreResult<Vec<String>> {
    Ok(legs::table.filter(legs::incident_id.eq(incident_id)).filter(legs::state.eq(LegState::HandedBack.as_str())).select(legs::supplier_id).distinct().load(conn)?)
}

/// Takes a supplier's active leg out of play: `HandedBack` (the supplier refused the ticket) or
/// `Withdrawn` (the hub moved it; the dispatcher then cancels the supplier ticket). Returns
/// whether there was an active leg.
pub fn end_leg(conn: &mut PgConnection, ctx: &Context, row: &IncidentRow, supplier: &str, state: LegState, reason: &str) -> StoreResult<bool> {
    let Some(leg) = active_leg(conn, row.id, supplier)? else { return Ok(false) };
    let closed_at = (state == LegState::HandedBack).then(Utc::now);
    // The supplier's reason stays on the leg, where whoever reads the record sees it.
    let note = (state == LegState::HandedBack).then(|| format!("handed back: {reason}")).or(leg.last_error.clone());
    diesel::update(legs::table.find(leg.id)).set((legs::state.eq(state.as_str()), legs::closed_at.eq(closed_at), legs::last_error.eq(note))).execute(conn)?;
    let kind = if state == LegState::HandedBack { EventType::LegHandedBack } else { EventType::LegWithdrawn };
    record_event(conn, ctx, row, NewEvent::new(kind, &ctx.source, json!({ "supplier": supplier, "reason": reason })))?;
    if state == LegState::Withdrawn {
        enqueue_dispatch(conn, ctx, &row.reference, supplier, "withdrawn")?;
    }
    Ok(true)
}

/// Routes a locked incident to `route`. `add = false` reassigns it (the previous owner's leg is
/// withdrawn and the status goes back to `new` until the new supplier has its ticket);
/// `add = true` adds a further supplier leg beside the others (a major incident).
pub fn route_to(conn: &mut PgConnection, ctx: &Context, row: IncidentRow, route: &Route, reason: &str, add: bool, matrix: &PriorityMatrix) -> StoreResult<IncidentRow> {
    let status = row.status()?;
    if status.is_terminal() {
        return Err(crate::domain::incident::LifecycleError::Terminal(status).into());
    }
    if active_leg(conn, row.id, &route.supplier)?.is_some() || (!route.external && row.assigned_supplier.as_deref() == Some(&route.supplier)) {
        return Err(StoreError::Conflict(format!("{} already holds {}", route.supplier, row.reference)));
    }
    if add && !route.external {
        return Err(StoreError::Conflict(format!("{} is a hub queue, not a supplier leg", route.supplier)));
    }
    let previous = row.assigned_supplier.clone();
    if !add {
        if let Some(prev) = &previous {
            end_leg(conn, ctx, &row, prev, LegState::Withdrawn, reason)?;
        }
    }
    if route.external {
        diesel::insert_into(legs::table)
            .values((
                legs::incident_id.eq(row.id),
                legs::supplier_id.eq(&route.supplier),
                legs::system.eq(&route.system),
                legs::state.eq(LegState::Pending.as_str()),
                legs::opened_at.eq(Utc::now()),
            ))
            .execute(conn)?;
        enqueue_dispatch(conn, ctx, &row.reference, &route.supplier, "routed")?;
    }
    if add {
        record_event(conn, ctx, &row, NewEvent::new(EventType::LegAdded, &ctx.source, json!({ "supplier": route.supplier, "reason": reason })))?;
        return Ok(row);
    }
    diesel::update(incidents::table.find(row.id)).set(incidents::assigned_supplier.eq(&route.supplier)).execute(conn)?;
    let mut row = row;
    row.assigned_supplier = Some(route.supplier.clone());
    record_event(conn, ctx, &row, NewEvent::new(EventType::Routed, &ctx.source, json!({ "supplier": route.supplier, "rule": route.rule, "from": previous, "reason": reason })))?;
    let changes = IncidentChanges { status: Some(Status::New), ..Default::default() };
    apply_changes(conn, ctx, row, &changes, matrix)
}

/// The most recent events of one type across all tickets, newest first, with each ticket's ref
/// (for the administrators' lists, such as native values no mapping knows).
pub fn recent_events(conn: &mut PgConnection, kind: &str, limit: i64) -> StoreResult<Vec<(String, EventRow)>> {
    Ok(events::table
        .inner_join(incidents::table)
        .filter(events::kind.eq(kind))
        .order(events::id.desc())
        .limit(limit)
        .select((incidents::reference, EventRow::as_select()))
        .load(conn)?)
}
