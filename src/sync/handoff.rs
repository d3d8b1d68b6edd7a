//! Hand-offs: a supplier hands a ticket back (not theirs, wrong supplier), or the service desk
//! re-routes it or adds a supplier (a major incident). The record keeps every leg, and its event
//! log says who held the ticket when.

use super::{Engine, SyncError};
use crate::config::HandbackRule;
use crate::domain::*;
use crate::store::models::IncidentRow;
use crate::store::record::{self, Context};
use crate::store::{StoreError, StoreResult};
use diesel::PgConnection;

impl Engine {
    /// Inside a transaction: `supplier` gives the ticket back. When it owned the ticket, the hub
    /// routes it on by the configured rule.
    pub fn hand_back_tx(&self, conn: &mut PgConnection, ctx: &Context, row: IncidentRow, supplier: &str, reason: &str) -> StoreResult<IncidentRow> {
        if !record::end_leg(conn, ctx, &row, supplier, LegState::HandedBack, reason)? {
            return Err(StoreError::Conflict(format!("{supplier} holds no open leg of {}", row.reference)));
        }
        if row.assigned_supplier.as_deref() != Some(supplier) {
            return Ok(row);
        }
        let route = match self.policy.on_handback {
            HandbackRule::NextRule => {
                let excluded = record::handed_back_by(conn, row.id)?;
                let mut r = self.router.route_excluding(&row.service, &row.ci, &row.category, &excluded);
                r.rule = format!("handback: {}", r.rule);
                r
            }
            HandbackRule::ServiceDesk => self.router.to(self.router.default_queue(), "handback: service desk to choose".into()),
        };
        record::route_to(conn, ctx, row, &route, reason, false, &self.matrix)
    }

    /// A supplier (through the API) hands a ticket back.
    pub async fn hand_back(&self, supplier: &str, reference: &str, reason: &str, correlation_id: String) -> Result<Incident, SyncError> {
        let (engine, s, r, why) = (self.clone(), supplier.to_string(), reference.to_string(), reason.to_string());
        let doc = self
            .store
            .tx(move |conn| {
                let ctx = Context::supplier(&s, correlation_id);
                let found = record::find_row(conn, &r)?;
                let row = record::lock_row_by_id(conn, found.id)?;
                let row = engine.hand_back_tx(conn, &ctx, row, &s, &why)?;
                record::document(conn, &row)
            })
            .await?;
        self.notify();
        Ok(doc)
    }

    /// The service desk routes an incident: to `supplier`, or (None) to the next supplier by rule
    /// other than the current owner and those that handed it back. `add` keeps the other legs.
    pub async fn reroute(&self, ctx: Context, reference: &str, supplier: Option<String>, reason: &str, add: bool) -> Result<Incident, SyncError> {
        let (engine, r, why) = (self.clone(), reference.to_string(), reason.to_string());
        let doc = self
            .store
            .tx(move |conn| {
                let found = record::find_row(conn, &r)?;
                let row = record::lock_row_by_id(conn, found.id)?;
                let route = match &supplier {
                    Some(s) => engine.router.to(s, "manual".into()),
                    None => {
                        let mut excluded = record::handed_back_by(conn, row.id)?;
                        excluded.extend(row.assigned_supplier.clone());
                        let mut r = engine.router.route_excluding(&row.service, &row.ci, &row.category, &excluded);
                        r.rule = format!("next: {}", r.rule);
                        r
                    }
                };
                let row = record::route_to(conn, &ctx, row, &route, &why, add, &engine.matrix)?;
                record::document(conn, &row)
            })
            .await?;
        self.notify();
        Ok(doc)
    }
}
