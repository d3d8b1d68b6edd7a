//! Business-hours calendars: which instants count towards an SLA target.
//!
//! This module owns calendar arithmetic: counting the business seconds between two instants and
//! finding the instant a given amount of business time runs out. An instant is business time
//! when its *wall-clock* time in the calendar's zone (date and time of day) falls inside that
//! weekday's working hours and the date is not a holiday. So 09:00-17:00 is eight hours on the
//! day the clocks go forward as on any other day, and a window that covers the repeated hour on
//! the day the clocks go back counts that hour twice, as a wall clock would show.
//!
//! All arithmetic is in whole seconds (instants are floored to the second), so business time is
//! additive: `secs(a, b) + secs(b, c) == secs(a, c)`. The work is per local day (plus a short
//! binary search on the two days a year the offset changes), never per second or minute.

use crate::config::CalendarDef;
use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::HashSet;

const DAY: i64 = 86_400;

/// How far ahead [`Calendar::add_business_secs`] looks before it concludes the calendar cannot
/// supply the time asked for (a calendar open one minute a week and a target of years).
const HORIZON_SECS: i64 = 400 * 366 * DAY;

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone)]
pub struct Calendar {
    pub id: String,
    tz: Tz,
    always: bool,
    /// Working intervals per weekday (0 = Monday), in seconds after local midnight, sorted and
    /// disjoint; `end` may be 86 400 (`"24:00"`).
    week: [Vec<(i64, i64)>; 7],
    /// Holidays as days since 1970-01-01 (local dates).
    holidays: HashSet<i64>,
}

impl Calendar {
    /// Checks and compiles a calendar definition. Errors name the calendar and the bad value.
    pub fn from_def(def: &CalendarDef) -> Result<Calendar, String> {
        let id = def.id.clone();
        if id.trim().is_empty() {
            return Err("an SLA calendar has an empty id".into());
        }
        let tz: Tz = def.time_zone.parse().map_err(|_| format!("calendar `{id}`: unknown time zone `{}` (use an IANA name such as Europe/London)", def.time_zone))?;
        let mut week: [Vec<(i64, i64)>; 7] = Default::default();
        for (day, times) in &def.hours {
            let Some(index) = WEEKDAYS.iter().position(|w| w.eq_ignore_ascii_case(day)) else {
                return Err(format!("calendar `{id}`: unknown weekday `{day}` in hours (use mon, tue, wed, thu, fri, sat, sun)"));
            };
            week[index] = parse_intervals(&id, day, times)?;
        }
        if !def.always && week.iter().all(|d| d.is_empty()) {
            return Err(format!("calendar `{id}` has no working hours: give `hours` for at least one weekday, or set `always = true`"));
        }
        let holidays = def.holidays.iter().map(|d| epoch_day(*d)).collect();
        Ok(Calendar { id, tz, always: def.always, week, holidays })
    }

    /// The calendar's time zone.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// True for a round-the-clock calendar.
    pub fn is_always(&self) -> bool {
        self.always
    }

    /// Business seconds between two instants (0 if `to <= from`).
    pub fn business_secs(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        let (mut t, end) = (from.timestamp(), to.timestamp());
        if end <= t {
            return 0;
        }
        if self.always {
            return end - t;
        }
        let mut total = 0;
        while t < end {
            let seg = self.segment(t);
            let stop = seg.end.min(end);
            let (a, b) = (t - seg.day_start, stop - seg.day_start);
            for &(s, e) in self.open(seg.day) {
                total += (e.min(b) - s.max(a)).max(0);
            }
            t = stop;
        }
        total
    }

    /// The instant at which `secs` business seconds after `from` have elapsed: the earliest
    /// instant `x` with `business_secs(from, x) == secs`. `from` itself for `secs <= 0`; the
    /// latest representable instant if the calendar cannot supply `secs` within 400 years.
    pub fn add_business_secs(&self, from: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
        self.try_add_business_secs(from, secs).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// [`Calendar::add_business_secs`], with `None` when the time cannot be found within the
    /// horizon (or lies beyond the representable range).
    pub fn try_add_business_secs(&self, from: DateTime<Utc>, secs: i64) -> Option<DateTime<Utc>> {
        if secs <= 0 {
            return Some(from);
        }
        let start = from.timestamp();
        if self.always {
            return instant(start.checked_add(secs)?);
        }
        let horizon = start.saturating_add(HORIZON_SECS);
        let (mut t, mut remaining) = (start, secs);
        while t < horizon {
            let seg = self.segment(t);
            let (a, b) = (t - seg.day_start, seg.end - seg.day_start);
            for &(s, e) in self.open(seg.day) {
                let (lo, hi) = (s.max(a), e.min(b));
                if lo >= hi {
                    continue;
                }
                if remaining <= hi - lo {
                    return instant(seg.day_start + lo + remaining);
                }
                remaining -= hi - lo;
            }
            t = seg.end;
        }
        None
    }

    /// Working intervals of a local day (none on a holiday).
    fn open(&self, day: i64) -> &[(i64, i64)] {
        if self.holidays.contains(&day) {
            return &[];
        }
        // 1970-01-01 was a Thursday (index 3 with Monday = 0).
        &self.week[(day + 3).rem_euclid(7) as usize]
    }

    /// UTC offset in seconds at an instant.
    fn offset(&self, t: i64) -> i64 {
        match DateTime::from_timestamp(t, 0) {
            Some(dt) => i64::from(self.tz.offset_from_utc_datetime(&dt.naive_utc()).fix().local_minus_utc()),
            None => 0,
        }
    }

    /// The stretch of time from `t` in which the UTC offset is constant and the local date does
    /// not change, so local time is `utc + offset` throughout.
    fn segment(&self, t: i64) -> Segment {
        let offset = self.offset(t);
        let day = (t + offset).div_euclid(DAY);
        let mut end = (day + 1) * DAY - offset;
        if self.offset(end - 1) != offset {
            // The offset changes today: find the first second with the new offset.
            let (mut lo, mut hi) = (t, end - 1);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if self.offset(mid) == offset {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            end = hi;
        }
        Segment { end, day, day_start: day * DAY - offset }
    }
}

struct Segment {
    /// First instant (unix seconds) after the segment.
    end: i64,
    /// Local date, as days since 1970-01-01.
    day: i64,
    /// The instant local midnight of `day` would be at this segment's offset.
    day_start: i64,
}

fn instant(t: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t, 0)
}

fn epoch_day(d: chrono::NaiveDate) -> i64 {
    (d - DateTime::UNIX_EPOCH.date_naive()).num_days()
}

/// `["08:00", "12:00", "13:00", "17:00"]` -> two intervals (a lunch break); pairs must be in
/// order and must not overlap; `"24:00"` may end a day.
fn parse_intervals(id: &str, day: &str, times: &[String]) -> Result<Vec<(i64, i64)>, String> {
    if !times.len().is_multiple_of(2) {
        return Err(format!("calendar `{id}`: hours for `{day}` must be start/end pairs such as [\"08:00\", \"18:00\"], got {times:?}"));
    }
    let mut out: Vec<(i64, i64)> = Vec::new();
    for pair in times.chunks(2) {
        let (s, e) = (parse_time(id, day, &pair[0])?, parse_time(id, day, &pair[1])?);
        if s >= e {
            return Err(format!(
                "calendar `{id}`: hours for `{day}` run from {} to {}; the start must be before the end (split overnight hours across two days)",
                pair[0], pair[1]
            ));
        }
        if let Some(&(_, prev_end)) = out.last() {
            if s < prev_end {
                return Err(format!("calendar `{id}`: hours for `{day}` overlap or are out of order: {times:?}"));
            }
        }
        out.push((s, e));
    }
    Ok(out)
}

fn parse_time(id: &str, day: &str, text: &str) -> Result<i64, String> {
    let bad = || format!("calendar `{id}`: `{text}` in hours for `{day}` is not a time of day HH:MM (00:00 to 24:00)");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=24).contains(&h) || !(0..60).contains(&m) || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("test instant").with_timezone(&Utc)
    }

    fn def(id: &str, tz: &str, hours: &[(&str, &[&str])], holidays: &[&str]) -> CalendarDef {
        CalendarDef {
            id: id.into(),
            time_zone: tz.into(),
            always: false,
            hours: hours.iter().map(|(d, t)| (d.to_string(), t.iter().map(|s| s.to_string()).collect())).collect::<BTreeMap<_, _>>(),
            holidays: holidays.iter().map(|d| d.parse::<NaiveDate>().unwrap()).collect(),
        }
    }

    const WEEKDAY_9_17: &[(&str, &[&str])] =
        &[("mon", &["09:00", "17:00"]), ("tue", &["09:00", "17:00"]), ("wed", &["09:00", "17:00"]), ("thu", &["09:00", "17:00"]), ("fri", &["09:00", "17:00"])];

    /// Mon-Fri 09:00-17:00 in London, with the 2026 Christmas bank holidays.
    fn office() -> Calendar {
        Calendar::from_def(&def("office", "Europe/London", WEEKDAY_9_17, &["2026-12-25", "2026-12-28"])).unwrap()
    }

    fn every_day(id: &str, from: &str, to: &str) -> Calendar {
        let pair = [from, to];
        let hours: Vec<(&str, &[&str])> = WEEKDAYS.iter().map(|d| (*d, &pair[..])).collect();
        Calendar::from_def(&def(id, "Europe/London", &hours, &[])).unwrap()
    }

    fn always() -> Calendar {
        let mut d = def("24x7", "Europe/London", &[], &[]);
        d.always = true;
        Calendar::from_def(&d).unwrap()
    }

    const H: i64 = 3600;

    #[test]
    fn weekday_span_counts_only_working_hours() {
        // Mon 2 Nov 2026 10:00 -> Tue 3 Nov 11:30 (GMT): Mon 10:00-17:00 = 7h, Tue 09:00-11:30 = 2.5h.
        assert_eq!(office().business_secs(utc("2026-11-02T10:00:00Z"), utc("2026-11-03T11:30:00Z")), 9 * H + 1800);
    }

    #[test]
    fn weekend_is_closed() {
        // Fri 6 Nov 16:00 -> Mon 9 Nov 10:00: Fri 1h + Mon 1h.
        assert_eq!(office().business_secs(utc("2026-11-06T16:00:00Z"), utc("2026-11-09T10:00:00Z")), 2 * H);
        // Entirely inside the weekend.
        assert_eq!(office().business_secs(utc("2026-11-07T08:00:00Z"), utc("2026-11-08T20:00:00Z")), 0);
        // Adding 2h from Fri 16:00 lands on Mon 10:00.
        assert_eq!(office().add_business_secs(utc("2026-11-06T16:00:00Z"), 2 * H), utc("2026-11-09T10:00:00Z"));
    }

    #[test]
    fn holidays_are_closed_all_day() {
        // Thu 24 Dec 16:00 -> Tue 29 Dec 10:00: Thu 1h, Fri 25 holiday, weekend, Mon 28 holiday, Tue 1h.
        assert_eq!(office().business_secs(utc("2026-12-24T16:00:00Z"), utc("2026-12-29T10:00:00Z")), 2 * H);
        assert_eq!(office().add_business_secs(utc("2026-12-24T16:30:00Z"), H), utc("2026-12-29T09:30:00Z"));
    }

    #[test]
    fn working_hours_follow_london_summer_time() {
        // 09:00 BST is 08:00 UTC: Fri 23 Oct 08:30Z-09:30Z is 09:30-10:30 local, a full hour.
        assert_eq!(office().business_secs(utc("2026-10-23T08:30:00Z"), utc("2026-10-23T09:30:00Z")), H);
        // The same UTC times on Mon 26 Oct (GMT again) are 08:30-09:30 local: half an hour.
        assert_eq!(office().business_secs(utc("2026-10-26T08:30:00Z"), utc("2026-10-26T09:30:00Z")), 1800);
    }

    #[test]
    fn the_day_the_clocks_go_forward() {
        // Sun 29 Mar 2026: 01:00 GMT becomes 02:00 BST.
        let nine_to_five = every_day("daily", "09:00", "17:00");
        // 09:00-17:00 BST is 08:00Z-16:00Z: still 8 business hours.
        assert_eq!(nine_to_five.business_secs(utc("2026-03-29T00:00:00Z"), utc("2026-03-30T00:00:00Z")), 8 * H);
        assert_eq!(nine_to_five.add_business_secs(utc("2026-03-29T00:00:00Z"), 8 * H), utc("2026-03-29T16:00:00Z"));
        // A whole-day calendar: local 29 Mar lasts 23 hours (00:00Z to 23:00Z).
        let whole = every_day("whole", "00:00", "24:00");
        assert_eq!(whole.business_secs(utc("2026-03-28T12:00:00Z"), utc("2026-03-30T12:00:00Z")), 48 * H);
        // 00:00-03:00 local that day is 00:00Z-01:00Z (GMT) then 01:00Z-02:00Z (BST 02:00-03:00): 2h.
        let night = every_day("night", "00:00", "03:00");
        assert_eq!(night.business_secs(utc("2026-03-29T00:00:00Z"), utc("2026-03-29T12:00:00Z")), 2 * H);
    }

    #[test]
    fn the_day_the_clocks_go_back() {
        // Sun 25 Oct 2026: 02:00 BST becomes 01:00 GMT; local 01:00-02:00 happens twice.
        let nine_to_five = every_day("daily", "09:00", "17:00");
        // 09:00-17:00 GMT is 09:00Z-17:00Z: 8 hours.
        assert_eq!(nine_to_five.business_secs(utc("2026-10-24T23:00:00Z"), utc("2026-10-26T00:00:00Z")), 8 * H);
        // 00:00-03:00 local is 23:00Z (24 Oct) to 03:00Z: 4 real hours, the repeated hour counted twice.
        let night = every_day("night", "00:00", "03:00");
        assert_eq!(night.business_secs(utc("2026-10-24T22:00:00Z"), utc("2026-10-25T12:00:00Z")), 4 * H);
        // Mon-Fri office: Fri 23 Oct 16:00 BST (15:00Z) -> Mon 26 Oct 10:00 GMT (10:00Z) = 1h + 1h.
        assert_eq!(office().business_secs(utc("2026-10-23T15:00:00Z"), utc("2026-10-26T10:00:00Z")), 2 * H);
        // And 2h from Fri 15:00Z ends at Mon 10:00 GMT.
        assert_eq!(office().add_business_secs(utc("2026-10-23T15:00:00Z"), 2 * H), utc("2026-10-26T10:00:00Z"));
    }

    #[test]
    fn adding_across_the_spring_change_lands_on_local_time() {
        // Fri 27 Mar 16:00 GMT + 2h: Fri 16:00-17:00, then Mon 30 Mar 09:00-10:00 BST = 09:00Z.
        assert_eq!(office().add_business_secs(utc("2026-03-27T16:00:00Z"), 2 * H), utc("2026-03-30T09:00:00Z"));
    }

    #[test]
    fn round_the_clock_counts_everything() {
        let c = always();
        assert_eq!(c.business_secs(utc("2026-03-28T00:00:00Z"), utc("2026-03-30T00:00:00Z")), 48 * H);
        assert_eq!(c.add_business_secs(utc("2026-12-24T23:00:00Z"), 2 * H), utc("2026-12-25T01:00:00Z"));
    }

    #[test]
    fn other_zones_and_split_days() {
        // New York, 09:00-12:00 and 13:00-17:00 on weekdays (EST is UTC-5 in November).
        let hours: &[(&str, &[&str])] = &[("mon", &["09:00", "12:00", "13:00", "17:00"])];
        let ny = Calendar::from_def(&def("ny", "America/New_York", hours, &[])).unwrap();
        // Mon 2 Nov 11:00-14:00 EST = 16:00Z-19:00Z: 1h before lunch, 1h after.
        assert_eq!(ny.business_secs(utc("2026-11-02T16:00:00Z"), utc("2026-11-02T19:00:00Z")), 2 * H);
        // 3h after 11:00 EST: 12:00 (1h), lunch, 13:00-15:00 -> 15:00 EST = 20:00Z.
        assert_eq!(ny.add_business_secs(utc("2026-11-02T16:00:00Z"), 3 * H), utc("2026-11-02T20:00:00Z"));
    }

    #[test]
    fn edges_and_sub_seconds() {
        let c = office();
        assert_eq!(c.business_secs(utc("2026-11-02T12:00:00Z"), utc("2026-11-02T11:00:00Z")), 0);
        assert_eq!(c.add_business_secs(utc("2026-11-02T12:00:00Z"), 0), utc("2026-11-02T12:00:00Z"));
        // Exactly the rest of a working day ends at closing time, not the next morning.
        assert_eq!(c.add_business_secs(utc("2026-11-02T16:00:00Z"), H), utc("2026-11-02T17:00:00Z"));
        // Instants are floored to the second, so fractions never create or lose a second.
        assert_eq!(c.business_secs(utc("2026-11-02T10:00:00.900Z"), utc("2026-11-02T10:00:01.100Z")), 1);
        // Far-away instants do not panic.
        assert_eq!(c.business_secs(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MIN_UTC), 0);
        let _ = c.business_secs(DateTime::<Utc>::MAX_UTC - chrono::Duration::days(3), DateTime::<Utc>::MAX_UTC);
        assert_eq!(c.add_business_secs(DateTime::<Utc>::MAX_UTC - chrono::Duration::days(3), 30 * H), DateTime::<Utc>::MAX_UTC);
        assert_eq!(always().add_business_secs(utc("2026-11-02T12:00:00Z"), i64::MAX), DateTime::<Utc>::MAX_UTC);
        // Giving up beyond the horizon instead of looping for ever.
        assert_eq!(c.try_add_business_secs(utc("2026-11-02T12:00:00Z"), i64::MAX), None);
    }

    #[test]
    fn bad_definitions_are_refused_with_the_calendar_named() {
        let cases: Vec<(CalendarDef, &str)> = vec![
            (def("c1", "Mars/Olympus", WEEKDAY_9_17, &[]), "unknown time zone"),
            (def("c2", "Europe/London", &[("funday", &["09:00", "17:00"])], &[]), "unknown weekday"),
            (def("c3", "Europe/London", &[("mon", &["09:00"])], &[]), "pairs"),
            (def("c4", "Europe/London", &[("mon", &["17:00", "09:00"])], &[]), "before the end"),
            (def("c5", "Europe/London", &[("mon", &["9am", "17:00"])], &[]), "not a time of day"),
            (def("c6", "Europe/London", &[("mon", &["09:00", "24:30"])], &[]), "not a time of day"),
            (def("c7", "Europe/London", &[("mon", &["09:00", "13:00", "12:00", "17:00"])], &[]), "overlap"),
            (def("c8", "Europe/London", &[], &[]), "no working hours"),
        ];
        for (d, needle) in cases {
            let err = Calendar::from_def(&d).unwrap_err();
            assert!(err.contains(&format!("`{}`", d.id)) && err.contains(needle), "{err}");
        }
    }

    /// Independent oracle: walks minute-aligned instants and asks chrono-tz for the local time.
    fn per_minute(def: &CalendarDef, from: i64, to: i64) -> i64 {
        let tz: Tz = def.time_zone.parse().unwrap();
        let mut total = 0;
        let mut t = from;
        while t < to {
            let local = tz.timestamp_opt(t, 0).unwrap().naive_local();
            let day = local.date();
            let wd = WEEKDAYS[chrono::Datelike::weekday(&day).num_days_from_monday() as usize];
            let secs = i64::from(chrono::Timelike::num_seconds_from_midnight(&local.time()));
            let open = !def.holidays.contains(&day)
                && def.hours.get(wd).is_some_and(|v| v.chunks(2).any(|p| parse_time("", "", &p[0]).unwrap() <= secs && secs < parse_time("", "", &p[1]).unwrap()));
            if open || def.always {
                total += 60;
            }
            t += 60;
        }
        total
    }

    fn sample_defs() -> Vec<CalendarDef> {
        let mut a = def("24x7", "Europe/London", &[], &[]);
        a.always = true;
        vec![
            def("office", "Europe/London", WEEKDAY_9_17, &["2026-12-25", "2026-12-28", "2027-03-26"]),
            def("nights", "Europe/London", &[("sun", &["00:00", "03:00", "22:00", "24:00"]), ("sat", &["01:30", "02:30"])], &[]),
            def("ny", "America/New_York", &[("sun", &["00:30", "04:00"]), ("mon", &["09:00", "12:00", "13:00", "17:00"])], &[]),
            def("kolkata", "Asia/Kolkata", &[("tue", &["10:00", "18:30"])], &["2026-11-10"]),
            a,
        ]
    }

    /// Random instants, biased towards the DST change days of 2026 and 2027.
    fn random_instant(rng: &mut impl Rng) -> i64 {
        let anchors = ["2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z", "2026-11-01T06:00:00Z", "2026-03-08T07:00:00Z", "2026-12-24T12:00:00Z"];
        if rng.gen_bool(0.5) {
            utc(anchors[rng.gen_range(0..anchors.len())]).timestamp() + rng.gen_range(-3 * DAY..3 * DAY)
        } else {
            utc("2025-01-01T00:00:00Z").timestamp() + rng.gen_range(0..3 * 365 * DAY)
        }
    }

    #[test]
    fn property_matches_a_per_minute_oracle_around_dst_changes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for d in sample_defs() {
            let cal = Calendar::from_def(&d).unwrap();
            for _ in 0..60 {
                let from = random_instant(&mut rng) / 60 * 60;
                let to = from + rng.gen_range(0..4 * DAY) / 60 * 60;
                let (f, t) = (instant(from).unwrap(), instant(to).unwrap());
                assert_eq!(cal.business_secs(f, t), per_minute(&d, from, to), "{} {f} -> {t}", d.id);
            }
        }
    }

    #[test]
    fn property_add_is_the_inverse_of_business_secs_and_is_earliest() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for d in sample_defs() {
            let cal = Calendar::from_def(&d).unwrap();
            for _ in 0..400 {
                let from = instant(random_instant(&mut rng)).unwrap() + chrono::Duration::milliseconds(rng.gen_range(0..1000));
                let secs = match rng.gen_range(0..3) {
                    0 => rng.gen_range(0..120),
                    1 => rng.gen_range(0..DAY),
                    _ => rng.gen_range(0..60 * DAY),
                };
                let end = cal.add_business_secs(from, secs);
                assert_eq!(cal.business_secs(from, end), secs, "{} from {from} + {secs}", d.id);
                if secs > 0 {
                    // One second earlier, the time had not yet run out.
                    assert_eq!(cal.business_secs(from, end - chrono::Duration::seconds(1)), secs - 1, "{} {from} + {secs}", d.id);
                }
            }
        }
    }

    #[test]
    fn property_business_time_is_additive() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(23);
        for d in sample_defs() {
            let cal = Calendar::from_def(&d).unwrap();
            for _ in 0..300 {
                let mut t = [random_instant(&mut rng), random_instant(&mut rng), random_instant(&mut rng)];
                t.sort();
                let [a, b, c] = t.map(|x| instant(x).unwrap());
                assert_eq!(cal.business_secs(a, b) + cal.business_secs(b, c), cal.business_secs(a, c), "{} {a} {b} {c}", d.id);
                assert!(cal.business_secs(a, c) <= (c - a).num_seconds());
            }
        }
    }

    #[test]
    fn a_year_of_business_time_is_computed_quickly() {
        let c = office();
        let started = std::time::Instant::now();
        let mut total = 0;
        for i in 0..200 {
            total += c.business_secs(utc("2026-01-01T00:00:00Z") + chrono::Duration::hours(i), utc("2027-01-01T00:00:00Z"));
        }
        assert!(total > 0);
        // 200 year-long spans; day-by-day work takes milliseconds even unoptimised.
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }
}
