//! Tickets with an event log at chosen times, written straight into the record in bulk: weeks of
//! history in seconds, for the SLA benchmark and for tests whose figures depend on when things
//! happened. The hub itself never calls this; the events have the shapes the hub records
//! (`incident.created`, `incident.routed`, `incident.status_changed`, ...), so the SLA engine
//! reads them as it reads live ones.

use super::schema::*;
use super::StoreResult;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::PgConnection;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct SeedEvent {
    pub kind: String,
    pub source: String,
    pub data: Value,
    pub at: DateTime<Utc>,
}

/// A ticket's life told event by event, building the record row as it goes.
#[derive(Debug, Clone)]
pub struct Story {
    pub title: String,
    pub priority: u8,
    pub status: String,
    pub hold_reason: Option<String>,
    pub holder: Option<String>,
    /// Suppliers (not queues) that get a supplier leg.
    pub external: Vec<String>,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub events: Vec<SeedEvent>,
    now: DateTime<Utc>,
}

impl Story {
    /// Raised by the service desk at `at` with `priority`, routed at once to `supplier`.
    pub fn raised(title: &str, at: DateTime<Utc>, priority: u8, supplier: &str) -> Story {
        let mut s = Story {
            title: title.to_string(),
            priority,
            status: "new".into(),
            hold_reason: None,
            holder: None,
            external: vec![],
            opened_at: at,
            resolved_at: None,
            closed_at: None,
            events: vec![],
            now: at,
        };
        let (impact, urgency) = match priority {
            1 => (1, 1),
            2 => (1, 2),
            3 => (2, 2),
            4 => (2, 3),
            _ => (3, 3),
        };
        s.push(
            "incident.created",
            "api:seed",
            json!({ "title": title, "status": "new", "impact": impact, "urgency": urgency, "priority": priority, "service": "network", "ci": null, "category": null, "caller": "seed" }),
        );
        s.route(supplier);
        s
    }

    fn push(&mut self, kind: &str, source: &str, data: Value) {
        self.events.push(SeedEvent { kind: kind.into(), source: source.into(), data, at: self.now });
    }

    /// Moves the story's clock on.
    pub fn after_secs(&mut self, secs: i64) -> &mut Self {
        self.now += Duration::seconds(secs);
        self
    }

    pub fn at(&mut self, t: DateTime<Utc>) -> &mut Self {
        self.now = t;
        self
    }

    /// Hands the ticket to `supplier` (the first call routes it).
    pub fn route(&mut self, supplier: &str) -> &mut Self {
        self.holder = Some(supplier.to_string());
        self.push("incident.routed", "hub", json!({ "supplier": supplier, "rule": "seed" }));
        self
    }

    /// Marks `supplier` as an external supplier with a leg (visible to its key).
    pub fn with_leg(&mut self, supplier: &str) -> &mut Self {
        if !self.external.iter().any(|s| s == supplier) {
            self.external.push(supplier.to_string());
        }
        self
    }

    /// A status change made by `source` (`supplier:<id>` or `api:<key>`).
    pub fn status(&mut self, to: &str, hold_reason: Option<&str>, source: &str) -> &mut Self {
        let from = std::mem::replace(&mut self.status, to.to_string());
        self.hold_reason = hold_reason.map(str::to_string);
        match to {
            "resolved" => self.resolved_at = Some(self.now),
            "closed" | "cancelled" => {
                self.closed_at = Some(self.now);
                self.resolved_at = self.resolved_at.or(Some(self.now));
            }
            _ => self.resolved_at = None,
        }
        let supplier = self.holder.clone();
        self.push("incident.status_changed", source, json!({ "from": from, "to": to, "hold_reason": hold_reason, "supplier": supplier }));
        self
    }

    /// The holding supplier acknowledges (moves the ticket to in progress).
    pub fn acknowledge(&mut self) -> &mut Self {
        let by = format!("supplier:{}", self.holder.clone().unwrap_or_default());
        self.status("in_progress", None, &by)
    }

    /// The holding supplier resolves the ticket.
    pub fn resolve(&mut self) -> &mut Self {
        let by = format!("supplier:{}", self.holder.clone().unwrap_or_default());
        self.status("resolved", None, &by);
        self.push("incident.updated", &by, json!({ "changes": { "resolution": { "code": "fixed", "notes": "seeded" } } }));
        self
    }

    /// A priority change through the API.
    pub fn reprioritise(&mut self, priority: u8) -> &mut Self {
        self.priority = priority;
        self.push("incident.updated", "api:seed", json!({ "changes": { "priority": priority } }));
        self
    }
}

/// Writes the stories (tickets, legs, events; the events trigger marks them for the SLA
/// monitor) and returns each ticket's id and reference, in order.
pub fn insert(conn: &mut PgConnection, stories: &[Story]) -> StoreResult<Vec<(i64, String)>> {
    conn.transaction(|conn| {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        let ids: Vec<Id> =
            diesel::sql_query("SELECT nextval('incident_number_seq') AS id FROM generate_series(1, $1)").bind::<diesel::sql_types::BigInt, _>(stories.len() as i64).load(conn)?;
        let refs: Vec<(i64, String)> = ids.iter().map(|i| (i.id, crate::domain::TicketRef::incident(i.id).to_string())).collect();
        let rows: Vec<_> = stories
            .iter()
            .zip(&refs)
            .map(|(s, (id, r))| {
                let (impact, urgency) = s.events.first().map(|e| (e.data["impact"].as_i64().unwrap_or(2), e.data["urgency"].as_i64().unwrap_or(2))).unwrap_or((2, 2));
                let updated = s.events.last().map(|e| e.at).unwrap_or(s.opened_at);
                (
                    incidents::id.eq(*id),
                    incidents::reference.eq(r.clone()),
                    incidents::title.eq(s.title.clone()),
                    incidents::status.eq(s.status.clone()),
                    incidents::hold_reason.eq(s.hold_reason.clone()),
                    incidents::impact.eq(impact as i16),
                    incidents::urgency.eq(urgency as i16),
                    incidents::priority.eq(i16::from(s.priority)),
                    incidents::priority_source.eq("derived"),
                    incidents::caller.eq("seed"),
                    incidents::assigned_supplier.eq(s.holder.clone()),
                    (incidents::opened_at.eq(s.opened_at), incidents::updated_at.eq(updated), incidents::resolved_at.eq(s.resolved_at), incidents::closed_at.eq(s.closed_at)),
                )
            })
            .collect();
        for chunk in rows.chunks(2_000) {
            diesel::insert_into(incidents::table).values(chunk).execute(conn)?;
        }
        let legs: Vec<_> = stories
            .iter()
            .zip(&refs)
            .flat_map(|(s, (id, _))| {
                s.external.iter().map(move |sup| {
                    (legs::incident_id.eq(*id), legs::supplier_id.eq(sup.clone()), legs::system.eq("servicenow"), legs::state.eq("open"), legs::opened_at.eq(s.opened_at))
                })
            })
            .collect();
        for chunk in legs.chunks(5_000) {
            diesel::insert_into(legs::table).values(chunk).execute(conn)?;
        }
        let events: Vec<_> = stories
            .iter()
            .zip(&refs)
            .flat_map(|(s, (id, _))| {
                s.events.iter().map(move |e| {
                    (
                        events::event_id.eq(uuid::Uuid::now_v7()),
                        events::incident_id.eq(*id),
                        events::kind.eq(e.kind.clone()),
                        events::source.eq(e.source.clone()),
                        events::data.eq(e.data.clone()),
                        events::occurred_at.eq(e.at),
                    )
                })
            })
            .collect();
        for chunk in events.chunks(8_000) {
            diesel::insert_into(events::table).values(chunk).execute(conn)?;
        }
        Ok(refs)
    })
}
