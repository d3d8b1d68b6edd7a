//! The API's error type, rendered as RFC 9457 problem details (`application/problem+json`).

use crate::store::StoreError;
use crate::validation::Violation;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    Problem { status: StatusCode, kind: &'static str, title: &'static str, detail: String, extra: Option<serde_json::Value> },
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Problem { status, kind, title, detail: detail.into(), extra: None }
    }

    pub fn with(mut self, extra: serde_json::Value) -> Self {
        let ApiError::Problem { extra: e, .. } = &mut self;
        *e = Some(extra);
        self
    }

    pub fn bad_json(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-json", "The body is not valid JSON", detail)
    }

    pub fn schema(violations: Vec<Violation>) -> Self {
        let detail = violations.iter().map(|v| format!("{}: {}", if v.pointer.is_empty() { "/" } else { &v.pointer }, v.message)).collect::<Vec<_>>().join("; ");
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "schema-violation", "The document does not match its schema", detail).with(json!({ "errors": violations }))
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed for this key", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn unprocessable(kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, kind, title, detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        let ApiError::Problem { status, .. } = self;
        *status
    }

    fn error_response(&self) -> HttpResponse {
        let ApiError::Problem { status, kind, title, detail, extra } = self;
        let mut body = json!({
            "type": format!("https://siam-hub.example/problems/{kind}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        });
        if let (Some(obj), Some(serde_json::Value::Object(more))) = (body.as_object_mut(), extra) {
            obj.extend(more.clone());
        }
        HttpResponse::build(*status).content_type("application/problem+json").json(body)
    }
}

/// What the sync's failures mean to an API caller: the record's own errors as the store's, a
/// supplier that failed as a bad gateway, a record that cannot be read or a supplier the hub
/// does not know as unprocessable.
impl From<crate::sync::SyncError> for ApiError {
    fn from(e: crate::sync::SyncError) -> Self {
        use crate::sync::SyncError;
        match e {
            SyncError::Store(s) => ApiError::from(s),
            SyncError::Supplier(_) => ApiError::new(StatusCode::BAD_GATEWAY, "supplier-unavailable", "The supplier could not be reached", e.to_string()),
            SyncError::Map(_) | SyncError::UnknownSupplier(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unapplicable", "The supplier's record could not be applied", e.to_string())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} does not exist")),
            StoreError::VersionConflict { current, expected } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "version-conflict",
                "The record changed since you read it",
                format!("If-Match names version {expected} but the record is at version {current}; read it again and reapply your change"),
            )
            .with(json!({ "current_version": current })),
            StoreError::IdempotencyMismatch(key) => ApiError::unprocessable(
                "idempotency-key-reused",
                "Idempotency key reused with a different request",
                format!("Idempotency-Key `{key}` was first used with a different body; use a new key for a new incident"),
            ),
            StoreError::Blocked(missing) => {
                let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
                ApiError::new(StatusCode::CONFLICT, "change-blocked", "The change cannot make this move", missing.join("; ")).with(json!({ "missing": missing }))
            }
            StoreError::Invalid(detail) => ApiError::unprocessable("invalid-change", "The change is not coherent", detail),
            StoreError::Conflict(detail) => ApiError::new(StatusCode::CONFLICT, "conflict", "The request conflicts with the incident's state", detail),
            StoreError::LimitReached(detail) => ApiError::unprocessable("limit-reached", "A limit is reached", detail),
            StoreError::Lifecycle(e) => ApiError::unprocessable("invalid-transition", "The change breaks the incident lifecycle", e.to_string()),
            other => {
                tracing::error!(error = %other, "record unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "record-unavailable",
                    "The service record is unavailable",
                    "the database could not complete the request; nothing was changed, retry later",
                )
            }
        }
    }
}
