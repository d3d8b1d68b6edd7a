//! The forward schedule of change and its conflicts: two changes on a shared service or CI in
//! intersecting windows, a change inside a freeze, outside its services' maintenance windows, a
//! supplier's leg planned outside the change window, and legs planned against their
//! dependency order.
//!
//! Windows are half-open (`[start, end)`), so back-to-back changes do not collide. Closed,
//! cancelled and rejected changes, and drafts nobody has submitted, do not count.

use super::lifecycle::LegPlan;
use super::ChangeStatus;
use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A half-open period `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// A window, if it ends after it starts.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Window> {
        (end > start).then_some(Window { start, end })
    }

    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }

    pub fn contains(&self, inner: &Window) -> bool {
        self.start <= inner.start && inner.end <= self.end
    }

    /// The part both windows share.
    pub fn intersection(&self, other: &Window) -> Option<Window> {
        Window::new(self.start.max(other.start), self.end.min(other.end))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} .. {}", self.start.format("%Y-%m-%d %H:%M UTC"), self.end.format("%Y-%m-%d %H:%M UTC"))
    }
}

/// A configured freeze (or blackout) period.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Freeze {
    pub name: String,
    /// The services it covers; every service when empty.
    #[serde(default)]
    pub services: Vec<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// A hard freeze blocks implementation; a soft one asks one more integrator approval.
    #[serde(default = "yes")]
    pub hard: bool,
}

fn yes() -> bool {
    true
}

/// A service's weekly maintenance window, in the service's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MaintenanceWindow {
    pub service: String,
    /// The day it opens (`Sun`, `Mon`, ...).
    pub day: Weekday,
    /// Local opening time, `HH:MM`.
    pub start: NaiveTime,
    pub hours: u32,
    /// IANA time zone name; UTC when absent.
    #[serde(default)]
    pub time_zone: Option<String>,
}

impl MaintenanceWindow {
    /// Whether `w` falls wholly inside one occurrence of this weekly window.
    pub fn admits(&self, w: &Window) -> bool {
        let tz: Tz = self.time_zone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(Tz::UTC);
        let first = w.start.with_timezone(&tz).date_naive() - Duration::days(7);
        (0..=8).map(|d| first + Duration::days(d)).filter(|day| day.weekday() == self.day).any(|day| {
            // A local opening time skipped by a clock change opens at the next valid instant.
            let opens =
                tz.from_local_datetime(&day.and_time(self.start)).earliest().or_else(|| tz.from_local_datetime(&(day.and_time(self.start) + Duration::hours(1))).earliest());
            opens.is_some_and(|o| {
                let o = o.with_timezone(&Utc);
                Window::new(o, o + Duration::hours(i64::from(self.hours))).is_some_and(|m| m.contains(w))
            })
        })
    }
}

/// What a conflict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    Overlap,
    Freeze,
    OutsideMaintenance,
    LegOutsideWindow,
    DependencyOrder,
}

impl ConflictKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ConflictKind::Overlap => "overlap",
            ConflictKind::Freeze => "freeze",
            ConflictKind::OutsideMaintenance => "outside_maintenance",
            ConflictKind::LegOutsideWindow => "leg_outside_window",
            ConflictKind::DependencyOrder => "dependency_order",
        }
    }
}

/// One conflict of a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub kind: ConflictKind,
    /// The other change, for an overlap.
    pub other: Option<String>,
    /// The service, CI, freeze or supplier it concerns.
    pub subject: String,
    /// When it bites.
    pub period: Window,
    /// A hard conflict blocks implementation until it is resolved or acknowledged.
    pub hard: bool,
    pub detail: String,
}

impl Conflict {
    /// A stable key, by which an acknowledgement keeps applying while the conflict stays the
    /// same (re-detection after every edit finds the same key).
    pub fn key(&self) -> String {
        format!("{}:{}:{}", self.kind.as_str(), self.other.as_deref().unwrap_or("-"), self.subject)
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {} ({}): {}", self.kind.as_str(), self.subject, self.period, self.detail)
    }
}

/// A change as the schedule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub reference: String,
    pub status: ChangeStatus,
    pub window: Option<Window>,
    pub services: Vec<String>,
    pub cis: Vec<String>,
}

impl Planned {
    /// Whether it takes part in the forward schedule.
    pub fn counts(&self) -> bool {
        !matches!(self.status, ChangeStatus::Draft | ChangeStatus::Closed | ChangeStatus::Cancelled | ChangeStatus::Rejected)
    }
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Every conflict of `change` against the other changes, the freezes, the maintenance windows
/// and its own legs.
pub fn detect(change: &Planned, legs: &[LegPlan], others: &[Planned], freezes: &[Freeze], maintenance: &[MaintenanceWindow]) -> Vec<Conflict> {
    let mut out = Vec::new();
    let Some(w) = change.window else { return out };
    for other in others.iter().filter(|o| o.reference != change.reference && o.counts()) {
        let Some(ow) = other.window else { continue };
        let Some(period) = w.intersection(&ow) else { continue };
        let shared = change
            .services
            .iter()
            .filter(|s| other.services.iter().any(|o| same(o, s)))
            .map(|s| format!("service {s}"))
            .chain(change.cis.iter().filter(|c| other.cis.iter().any(|o| same(o, c))).map(|c| format!("CI {c}")));
        for subject in shared {
            out.push(Conflict {
                kind: ConflictKind::Overlap,
                other: Some(other.reference.clone()),
                detail: format!("{} works on it {ow}", other.reference),
                subject,
                period,
                hard: true,
            });
        }
    }
    for f in freezes {
        let Some(fw) = Window::new(f.start, f.end) else { continue };
        let Some(period) = w.intersection(&fw) else { continue };
        let hit: Vec<&String> =
            if f.services.is_empty() { change.services.iter().collect() } else { change.services.iter().filter(|s| f.services.iter().any(|x| same(x, s))).collect() };
        let subjects: Vec<String> = if f.services.is_empty() && hit.is_empty() { vec!["every service".into()] } else { hit.into_iter().map(|s| format!("service {s}")).collect() };
        for subject in subjects {
            let kind = if f.hard { "hard" } else { "soft" };
            out.push(Conflict { kind: ConflictKind::Freeze, other: None, subject, period, hard: f.hard, detail: format!("{kind} freeze {} {fw}", f.name) });
        }
    }
    for s in &change.services {
        let windows: Vec<&MaintenanceWindow> = maintenance.iter().filter(|m| same(&m.service, s)).collect();
        if !windows.is_empty() && !windows.iter().any(|m| m.admits(&w)) {
            out.push(Conflict {
                kind: ConflictKind::OutsideMaintenance,
                other: None,
                subject: format!("service {s}"),
                period: w,
                hard: false,
                detail: format!("the window is not inside a maintenance window of {s}"),
            });
        }
    }
    for leg in legs {
        let Some(lw) = leg.window else { continue };
        if !w.contains(&lw) {
            out.push(Conflict {
                kind: ConflictKind::LegOutsideWindow,
                other: None,
                subject: format!("supplier {}", leg.supplier),
                period: lw,
                hard: true,
                detail: format!("{}'s leg is planned {lw}, outside the change window {w}", leg.supplier),
            });
        }
        let out_of_order =
            |detail: String| Conflict { kind: ConflictKind::DependencyOrder, other: None, subject: format!("supplier {}", leg.supplier), period: lw, hard: true, detail };
        for dep in &leg.depends_on {
            match legs.iter().find(|l| &l.supplier == dep) {
                None => out.push(out_of_order(format!("{} depends on {dep}, which has no leg in this change", leg.supplier))),
                Some(before) if before.window.is_some_and(|bw| bw.end > lw.start) => {
                    out.push(out_of_order(format!("{} starts at {} before {dep}, which it depends on, is planned to end", leg.supplier, lw.start.format("%Y-%m-%d %H:%M UTC"))))
                }
                Some(_) => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::change::lifecycle::LegState;

    fn at(h: i64) -> DateTime<Utc> {
        // A Saturday.
        Utc.with_ymd_and_hms(2026, 12, 12, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    fn w(a: i64, b: i64) -> Window {
        Window::new(at(a), at(b)).unwrap()
    }

    fn planned(r: &str, status: ChangeStatus, win: (i64, i64), services: &[&str], cis: &[&str]) -> Planned {
        Planned {
            reference: r.into(),
            status,
            window: Some(w(win.0, win.1)),
            services: services.iter().map(|s| s.to_string()).collect(),
            cis: cis.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn windows_are_half_open() {
        assert!(w(0, 2).overlaps(&w(1, 3)));
        assert!(!w(0, 2).overlaps(&w(2, 4)), "back to back is no overlap");
        assert!(w(0, 4).contains(&w(0, 4)) && w(0, 4).contains(&w(1, 2)) && !w(0, 4).contains(&w(3, 5)));
        assert!(Window::new(at(2), at(2)).is_none(), "an empty window is no window");
    }

    #[test]
    fn two_changes_on_a_shared_service_or_ci_in_intersecting_windows_overlap() {
        let me = planned("CHG-000001", ChangeStatus::Scheduled, (2, 6), &["network"], &["core-sw-01"]);
        let others = [
            planned("CHG-000002", ChangeStatus::Authorize, (5, 8), &["Network"], &[]),
            planned("CHG-000003", ChangeStatus::Scheduled, (6, 9), &["network"], &[]),
            planned("CHG-000004", ChangeStatus::Implement, (0, 3), &["email"], &["core-sw-01"]),
            planned("CHG-000005", ChangeStatus::Cancelled, (2, 6), &["network"], &[]),
            planned("CHG-000006", ChangeStatus::Closed, (2, 6), &["network"], &[]),
            planned("CHG-000007", ChangeStatus::Scheduled, (2, 6), &["payroll"], &[]),
        ];
        let found = detect(&me, &[], &others, &[], &[]);
        let keys: Vec<String> = found.iter().map(Conflict::key).collect();
        assert_eq!(keys, ["overlap:CHG-000002:service network", "overlap:CHG-000004:CI core-sw-01"]);
        assert_eq!(found[0].period, w(5, 6));
        assert!(found.iter().all(|c| c.hard));
    }

    #[test]
    fn freezes_hit_the_services_they_cover() {
        let me = planned("CHG-000001", ChangeStatus::Scheduled, (2, 6), &["network", "email"], &[]);
        let freezes = [
            Freeze { name: "year end".into(), services: vec!["network".into()], start: at(0), end: at(24), hard: true },
            Freeze { name: "payroll run".into(), services: vec!["payroll".into()], start: at(0), end: at(24), hard: true },
            Freeze { name: "audit".into(), services: vec![], start: at(5), end: at(30), hard: false },
            Freeze { name: "later".into(), services: vec![], start: at(6), end: at(30), hard: true },
        ];
        let found = detect(&me, &[], &[], &freezes, &[]);
        let got: Vec<(String, bool)> = found.iter().map(|c| (format!("{}|{}", c.subject, c.detail.split(' ').take(3).collect::<Vec<_>>().join(" ")), c.hard)).collect();
        assert_eq!(
            got,
            [
                ("service network|hard freeze year".to_string(), true),
                ("service network|soft freeze audit".to_string(), false),
                ("service email|soft freeze audit".to_string(), false)
            ]
        );
    }

    #[test]
    fn maintenance_windows_are_weekly_and_local() {
        // Saturdays 22:00 for 6 hours, London time (UTC in December).
        let m = MaintenanceWindow {
            service: "network".into(),
            day: Weekday::Sat,
            start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            hours: 6,
            time_zone: Some("Europe/London".into()),
        };
        assert!(m.admits(&w(22, 28)));
        assert!(m.admits(&w(23, 24)));
        assert!(!m.admits(&w(21, 23)), "starts before it opens");
        assert!(m.admits(&w(22 + 168, 23 + 168)), "the next week too");
        let me = planned("CHG-000001", ChangeStatus::Scheduled, (2, 6), &["network", "email"], &[]);
        let found = detect(&me, &[], &[], &[], std::slice::from_ref(&m));
        assert_eq!(found.len(), 1, "email has no maintenance windows, so none is missed");
        assert_eq!((found[0].kind, found[0].hard), (ConflictKind::OutsideMaintenance, false));
        // Summer time: the window opens at 21:00 UTC.
        let summer = Utc.with_ymd_and_hms(2026, 7, 11, 21, 0, 0).unwrap();
        assert!(m.admits(&Window::new(summer, summer + Duration::hours(6)).unwrap()));
    }

    #[test]
    fn legs_must_sit_inside_the_window_and_follow_their_dependencies() {
        let me = planned("CHG-000001", ChangeStatus::Scheduled, (2, 10), &["network"], &[]);
        let leg = |s: &str, win: (i64, i64), deps: &[&str]| LegPlan {
            supplier: s.into(),
            state: LegState::Scheduled,
            window: Some(w(win.0, win.1)),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
        };
        let legs = [leg("net", (2, 4), &[]), leg("host", (4, 6), &["net"]), leg("apps", (5, 11), &["host"]), leg("dns", (3, 4), &["ghost"])];
        let found = detect(&me, &legs, &[], &[], &[]);
        let keys: Vec<String> = found.iter().map(Conflict::key).collect();
        assert_eq!(keys, ["leg_outside_window:-:supplier apps", "dependency_order:-:supplier apps", "dependency_order:-:supplier dns"]);
        assert!(found[1].detail.contains("before host"), "{}", found[1].detail);
    }
}
