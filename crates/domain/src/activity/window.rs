//! The time windows of the usage figures. Every figure is read from hourly
//! buckets, so every window starts and ends on a whole hour (the last bucket
//! being the current, partial hour).

use chrono::{DateTime, DurationRound, NaiveDate, TimeDelta, Utc};

use crate::value::InvalidValue;

/// The start of the hour `at` falls in.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    // Truncating to an hour cannot fail for any instant chrono represents.
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// How many days of raw hits are kept, 1 to 3 650.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionDays(u16);

impl RetentionDays {
    /// Parses a number of days.
    ///
    /// # Errors
    /// Outside 1 to 3 650.
    pub fn new(days: u32) -> Result<Self, InvalidValue> {
        u16::try_from(days)
            .ok()
            .filter(|d| (1..=3650).contains(d))
            .map(Self)
            .ok_or_else(|| InvalidValue::new("retention is 1 to 3650 days"))
    }

    /// The number of days.
    pub fn get(self) -> u16 {
        self.0
    }

    /// The first day whose raw hits are kept on `today`: `today` and the
    /// `days - 1` before it.
    pub fn first_kept_day(self, today: NaiveDate) -> NaiveDate {
        today - TimeDelta::days(i64::from(self.0) - 1)
    }
}

/// The days of a daily figure: `days` UTC days, the last being today; 1 to 90.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DailyWindow(u16);

impl DailyWindow {
    /// Seven days, the default.
    pub const DEFAULT: DailyWindow = DailyWindow(7);

    /// Parses a number of days.
    ///
    /// # Errors
    /// Outside 1 to 90.
    pub fn new(days: i64) -> Result<Self, InvalidValue> {
        u16::try_from(days)
            .ok()
            .filter(|d| (1..=90).contains(d))
            .map(Self)
            .ok_or_else(|| InvalidValue::new("days is 1 to 90"))
    }

    /// The number of days.
    pub fn days(self) -> u16 {
        self.0
    }

    /// The days ending with `today`, oldest first.
    pub fn dates(self, today: NaiveDate) -> Vec<NaiveDate> {
        (0..i64::from(self.0))
            .rev()
            .map(|back| today - TimeDelta::days(back))
            .collect()
    }

    /// The instants the window covers on `today`: from the first day's midnight
    /// to tomorrow's (exclusive).
    pub fn bounds(self, today: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let midnight = |day: NaiveDate| day.and_time(chrono::NaiveTime::MIN).and_utc();
        let first = today - TimeDelta::days(i64::from(self.0) - 1);
        (midnight(first), midnight(today + TimeDelta::days(1)))
    }
}

/// The window and length of a top list: the clients with the most hits in the
/// last `hours` hourly buckets (the current, partial hour being the last), 1 to
/// 720; at most `limit` of them, 1 to 100.
///
/// The window is whole buckets: at 10:20 the last 24 hours are 11:00 yesterday
/// to now, 23 h 20 min. It is stated exactly in every answer, so a reader knows
/// which hits it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopWindow {
    hours: u16,
    limit: u16,
}

impl TopWindow {
    /// The last 24 hours, top 3: the default.
    pub const DEFAULT: TopWindow = TopWindow {
        hours: 24,
        limit: 3,
    };

    /// Parses the window's hours.
    ///
    /// # Errors
    /// Outside 1 to 720.
    pub fn hours(hours: i64) -> Result<u16, InvalidValue> {
        u16::try_from(hours)
            .ok()
            .filter(|h| (1..=720).contains(h))
            .ok_or_else(|| InvalidValue::new("hours is 1 to 720"))
    }

    /// Parses the list's length.
    ///
    /// # Errors
    /// Outside 1 to 100.
    pub fn limit(limit: i64) -> Result<u16, InvalidValue> {
        u16::try_from(limit)
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| InvalidValue::new("limit is 1 to 100"))
    }

    /// A window of checked `hours` and `limit` (see [`hours`](Self::hours),
    /// [`limit`](Self::limit)).
    ///
    /// # Errors
    /// When either is out of range.
    pub fn new(hours: i64, limit: i64) -> Result<Self, InvalidValue> {
        Ok(Self {
            hours: Self::hours(hours)?,
            limit: Self::limit(limit)?,
        })
    }

    /// The number of hourly buckets.
    pub fn hour_count(self) -> u16 {
        self.hours
    }

    /// The most clients listed.
    pub fn max_clients(self) -> u16 {
        self.limit
    }

    /// The first bucket's start at `now`: the current hour's start, less
    /// `hours - 1` hours.
    pub fn start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        hour_of(now) - TimeDelta::hours(i64::from(self.hours) - 1)
    }
}

/// A range of hourly buckets for the hourly figures: from the hour `from` falls in
/// up to the hour `to` falls in, inclusive; at most 31 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HourlyRange {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

impl HourlyRange {
    /// The longest range, in hours.
    pub const MAX_HOURS: i64 = 31 * 24;

    /// The buckets from `from`'s hour to `to`'s.
    ///
    /// # Errors
    /// When `to` is before `from`, or the range spans more than 31 days.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self, InvalidValue> {
        let (first, last) = (hour_of(from), hour_of(to));
        if last < first {
            return Err(InvalidValue::new("to must not be before from"));
        }
        if (last - first).num_hours() >= Self::MAX_HOURS {
            return Err(InvalidValue::new("a range spans at most 31 days"));
        }
        Ok(Self { first, last })
    }

    /// The last 24 buckets at `now`, the current hour's included.
    pub fn last_day(now: DateTime<Utc>) -> Self {
        let last = hour_of(now);
        Self {
            first: last - TimeDelta::hours(23),
            last,
        }
    }

    /// The first bucket's start.
    pub fn first(self) -> DateTime<Utc> {
        self.first
    }

    /// The instant after the last bucket (exclusive).
    pub fn end(self) -> DateTime<Utc> {
        self.last + TimeDelta::hours(1)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, h, m, 0).unwrap()
    }

    #[test]
    fn the_daily_window_ends_today_oldest_first() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let dates = DailyWindow::new(3).unwrap().dates(today);
        assert_eq!(
            dates,
            [
                NaiveDate::from_ymd_opt(2026, 3, 8).unwrap(),
                NaiveDate::from_ymd_opt(2026, 3, 9).unwrap(),
                today
            ]
        );
        let (from, to) = DailyWindow::new(3).unwrap().bounds(today);
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 3, 8, 0, 0, 0).unwrap());
        assert_eq!(to, Utc.with_ymd_and_hms(2026, 3, 11, 0, 0, 0).unwrap());
    }

    #[test]
    fn a_daily_window_is_1_to_90_days() {
        assert!(DailyWindow::new(0).is_err());
        assert!(DailyWindow::new(1).is_ok());
        assert!(DailyWindow::new(90).is_ok());
        assert!(DailyWindow::new(91).is_err());
    }

    #[test]
    fn the_top_window_is_whole_buckets_ending_with_the_current_hour() {
        let window = TopWindow::new(24, 3).unwrap();
        assert_eq!(window.start(at(10, 20)), at(11, 0) - TimeDelta::days(1));
        assert_eq!(TopWindow::new(1, 3).unwrap().start(at(10, 59)), at(10, 0));
        assert!(TopWindow::new(0, 3).is_err());
        assert!(TopWindow::new(721, 3).is_err());
        assert!(TopWindow::new(24, 0).is_err());
        assert!(TopWindow::new(24, 101).is_err());
    }

    #[test]
    fn an_hourly_range_covers_whole_hours_up_to_31_days() {
        let range = HourlyRange::new(at(9, 30), at(11, 5)).unwrap();
        assert_eq!(range.first(), at(9, 0));
        assert_eq!(range.end(), at(12, 0));
        assert!(HourlyRange::new(at(11, 0), at(9, 0)).is_err());
        assert!(HourlyRange::new(at(0, 0), at(0, 0) + TimeDelta::hours(743)).is_ok());
        assert!(HourlyRange::new(at(0, 0), at(0, 0) + TimeDelta::hours(744)).is_err());
    }

    #[test]
    fn retention_keeps_today_and_the_days_before_it() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        assert_eq!(RetentionDays::new(1).unwrap().first_kept_day(today), today);
        assert_eq!(
            RetentionDays::new(30).unwrap().first_kept_day(today),
            NaiveDate::from_ymd_opt(2026, 2, 9).unwrap()
        );
        assert!(RetentionDays::new(0).is_err());
    }
}
