//! Who is calling: API keys (`Authorization: Bearer <key>` or `X-API-Key`) with a role, and for
//! supplier keys the one supplier they speak for.

use super::error::ApiError;
use super::AppState;
use crate::domain::{Incident, SupplierAccess};
use crate::store::auth;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use std::future::Future;
use std::pin::Pin;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    ServiceDesk,
    /// The integrator's change manager: authorises, schedules and coordinates changes.
    ChangeManager,
    Supplier,
    Manager,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "service_desk" => Some(Role::ServiceDesk),
            "change_manager" => Some(Role::ChangeManager),
            "supplier" => Some(Role::Supplier),
            "manager" => Some(Role::Manager),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub const NAMES: &'static [&'static str] = &["service_desk", "change_manager", "supplier", "manager", "admin"];
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub key_prefix: String,
    pub role: Role,
    pub supplier: Option<String>,
}

impl Principal {
    /// The caller a stored key stands for.
    pub fn of(record: auth::KeyRecord) -> Result<Principal, ApiError> {
        let role = Role::parse(&record.role).ok_or_else(|| ApiError::forbidden(format!("the key has an unknown role `{}`", record.role)))?;
        Ok(Principal { key_prefix: record.prefix, role, supplier: record.supplier_id })
    }

    /// The name recorded as the source of changes this caller makes.
    pub fn source(&self) -> String {
        format!("api:{}", self.key_prefix)
    }

    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if self.role == Role::Admin || allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this operation needs one of the roles {allowed:?}; the key has {:?}", self.role)))
        }
    }
}

/// What a request needs from an incident: to read it, or to work it (notes, files, hand-back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Work,
}

impl Principal {
    /// The supplier a supplier key speaks for (`None` for the hub's own roles); a supplier key
    /// scoped to no supplier is refused.
    pub fn scoped_supplier(&self) -> Result<Option<&str>, ApiError> {
        match (self.role, &self.supplier) {
            (Role::Supplier, None) => Err(ApiError::forbidden("this supplier key is not scoped to a supplier")),
            (Role::Supplier, Some(s)) => Ok(Some(s)),
            _ => Ok(None),
        }
    }

    /// The incident as this caller may see it, if it may `need` it at all: the hub's roles see
    /// everything; a supplier sees a ticket by the rule of [`crate::domain::access`] (one it
    /// has let go of does not exist for it), without other suppliers' leg details.
    pub fn incident(&self, incident: Incident, need: Need) -> Result<Incident, ApiError> {
        let Some(s) = self.scoped_supplier()? else { return Ok(incident) };
        match (incident.supplier_access(s), need) {
            (SupplierAccess::None, _) => Err(ApiError::not_found(format!("incident {} does not exist", incident.reference))),
            (SupplierAccess::Read, Need::Work) => {
                Err(ApiError::forbidden(format!("{}'s part in {} is over ({}): the ticket can be read, not changed", s, incident.reference, incident.status)))
            }
            _ => Ok(incident.seen_by_supplier(s)),
        }
    }
}

fn presented_key(req: &HttpRequest) -> Option<String> {
    if let Some(v) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_string());
    }
    let auth = req.headers().get("authorization")?.to_str().ok()?;
    auth.strip_prefix("Bearer ").map(|k| k.trim().to_string())
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = presented_key(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let key = key.ok_or_else(|| ApiError::unauthorized("send an API key as `Authorization: Bearer <key>` (create one with `siam-hub keys create`)"))?;
            let state = state.ok_or_else(|| ApiError::unauthorized("no key store"))?;
            let record = state.store.run(move |c| auth::lookup(c, &key)).await.map_err(ApiError::from)?;
            let record = record.ok_or_else(|| ApiError::unauthorized("the API key is unknown or revoked"))?;
            Principal::of(record)
        })
    }
}
