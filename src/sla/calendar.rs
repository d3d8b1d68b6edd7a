//! Business-hours calendars. (Interface; implementation in progress.)

use crate::config::CalendarDef;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct Calendar {
    pub id: String,
}

impl Calendar {
    pub fn from_def(def: &CalendarDef) -> Result<Calendar, String> {
        Ok(Calendar { id: def.id.clone() })
    }

    /// Business seconds between two instants (0 if `to <= from`).
    pub fn business_secs(&self, _from: DateTime<Utc>, _to: DateTime<Utc>) -> i64 {
        todo!("calendar arithmetic")
    }

    /// The instant at which `secs` business seconds after `from` have elapsed.
    pub fn add_business_secs(&self, _from: DateTime<Utc>, _secs: i64) -> DateTime<Utc> {
        todo!("calendar arithmetic")
    }
}
