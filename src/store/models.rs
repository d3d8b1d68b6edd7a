//! Row types and their conversion to the canonical model.

use super::schema::*;
use super::StoreResult;
use crate::domain::*;
use chrono::{DateTime, Utc};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = incidents, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct IncidentRow {
    pub id: i64,
    pub reference: String,
    pub title: String,
    pub description: String,
    pub status: String,
    pub hold_reason: Option<String>,
    pub impact: i16,
    pub urgency: i16,
    pub priority: i16,
    pub priority_source: String,
    pub category: Option<String>,
    pub service: Option<String>,
    pub ci: Option<String>,
    pub caller: String,
    pub assigned_supplier: Option<String>,
    pub resolution_code: Option<String>,
    pub resolution_notes: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub version: i32,
    pub caused_by_change: Option<String>,
    pub fixed_by_change: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = legs, check_for_backend(diesel::pg::Pg))]
pub struct LegRow {
    pub id: i64,
    pub incident_id: i64,
    pub supplier_id: String,
    pub system: String,
    pub state: String,
    pub native_id: Option<String>,
    pub native_number: Option<String>,
    pub native_status: Option<String>,
    pub url: Option<String>,
    pub native_revision: Option<i64>,
    pub native_updated_at: Option<DateTime<Utc>>,
    pub baseline: serde_json::Value,
    pub unmapped: serde_json::Value,
    pub last_error: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub synced_at: Option<DateTime<Utc>>,
    /// What the hub is writing to the supplier ticket right now (native field -> value).
    pub pushing: serde_json::Value,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = notes, check_for_backend(diesel::pg::Pg))]
pub struct NoteRow {
    pub id: i64,
    pub incident_id: i64,
    pub visibility: String,
    pub author: String,
    pub body: String,
    pub origin: String,
    pub native_id: Option<String>,
    pub content_hash: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events, check_for_backend(diesel::pg::Pg))]
pub struct EventRow {
    pub id: i64,
    pub event_id: uuid::Uuid,
    pub incident_id: i64,
    pub kind: String,
    pub source: String,
    pub data: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Option<String>,
}

fn scale<T>(v: i16, parse: fn(u8) -> Option<T>, what: &str) -> StoreResult<T> {
    u8::try_from(v).ok().and_then(parse).ok_or_else(|| super::StoreError::Corrupt(format!("{what} {v}")))
}

impl NoteRow {
    pub fn to_domain(&self) -> StoreResult<Note> {
        Ok(Note {
            id: self.id,
            visibility: self.visibility.parse()?,
            author: self.author.clone(),
            text: self.body.clone(),
            origin: self.origin.clone(),
            native_id: self.native_id.clone(),
            created_at: self.created_at,
        })
    }
}

impl LegRow {
    pub fn to_domain(&self) -> StoreResult<Leg> {
        Ok(Leg {
            supplier: self.supplier_id.clone(),
            system: self.system.clone(),
            state: self.state.parse()?,
            native_id: self.native_id.clone(),
            native_number: self.native_number.clone(),
            native_status: self.native_status.clone(),
            url: self.url.clone(),
            opened_at: self.opened_at,
            closed_at: self.closed_at,
            last_error: self.last_error.clone(),
            unmapped: self.unmapped.as_object().cloned().unwrap_or_default(),
            primary: false,
        })
    }

    pub fn state(&self) -> StoreResult<LegState> {
        Ok(self.state.parse()?)
    }
}

impl IncidentRow {
    pub fn reference(&self) -> TicketRef {
        TicketRef::incident(self.id)
    }

    pub fn status(&self) -> StoreResult<Status> {
        Ok(self.status.parse()?)
    }

    /// The canonical document of this row with its notes and legs.
    pub fn to_domain(&self, notes: &[NoteRow], legs: &[LegRow]) -> StoreResult<Incident> {
        Ok(Incident {
            reference: self.reference.parse().map_err(super::StoreError::Corrupt)?,
            title: self.title.clone(),
            description: self.description.clone(),
            status: self.status()?,
            hold_reason: self.hold_reason.as_deref().map(str::parse).transpose()?,
            impact: scale(self.impact, Impact::new, "impact")?,
            urgency: scale(self.urgency, Urgency::new, "urgency")?,
            priority: scale(self.priority, Priority::new, "priority")?,
            priority_source: self.priority_source.parse()?,
            category: self.category.clone(),
            service: self.service.clone(),
            ci: self.ci.clone(),
            caller: self.caller.clone(),
            assigned_supplier: self.assigned_supplier.clone(),
            resolution: self.resolution_code.as_ref().map(|code| Resolution { code: code.clone(), notes: self.resolution_notes.clone().unwrap_or_default() }),
            notes: notes.iter().map(NoteRow::to_domain).collect::<StoreResult<_>>()?,
            opened_at: self.opened_at,
            updated_at: self.updated_at,
            resolved_at: self.resolved_at,
            closed_at: self.closed_at,
            version: self.version,
            caused_by_change: self.caused_by_change.as_deref().map(str::parse).transpose().map_err(super::StoreError::Corrupt)?,
            fixed_by_change: self.fixed_by_change.as_deref().map(str::parse).transpose().map_err(super::StoreError::Corrupt)?,
            legs: legs
                .iter()
                .map(|l| {
                    let mut leg = l.to_domain()?;
                    leg.primary = leg.state.is_active() && Some(&l.supplier_id) == self.assigned_supplier.as_ref();
                    Ok(leg)
                })
                .collect::<StoreResult<_>>()?,
            attachments: vec![],
        })
    }
}
