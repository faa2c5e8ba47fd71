//! The spacing rule: no two non-cancelled orders of one customer closer than a window.

use chrono::{DateTime, TimeDelta, Utc};

use super::{OrderId, OrderStatus};
use crate::value::InvalidValue;

/// The minimum distance between two orders of one customer: 3 hours by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpacingWindow(TimeDelta);

impl SpacingWindow {
    /// Three hours.
    pub const DEFAULT_MINUTES: i64 = 180;

    /// A window of `minutes` minutes, 1 minute to 7 days.
    ///
    /// # Errors
    /// Outside that range.
    pub fn from_minutes(minutes: i64) -> Result<Self, InvalidValue> {
        if !(1..=7 * 24 * 60).contains(&minutes) {
            return Err(InvalidValue::new(
                "the spacing window must be between 1 minute and 7 days",
            ));
        }
        Ok(Self(TimeDelta::minutes(minutes)))
    }

    /// The window in whole minutes.
    pub fn minutes(self) -> i64 {
        self.0.num_minutes()
    }

    /// The window as a duration.
    pub fn as_delta(self) -> TimeDelta {
        self.0
    }

    /// The open interval `(at - window, at + window)`: only orders scheduled inside it
    /// can conflict with one at `at`, so storage needs to look no further.
    pub fn neighbourhood(self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        // Saturating, so that instants near chrono's limits cannot panic.
        (
            at.checked_sub_signed(self.0)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            at.checked_add_signed(self.0)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }
}

impl Default for SpacingWindow {
    fn default() -> Self {
        Self(TimeDelta::minutes(Self::DEFAULT_MINUTES))
    }
}

/// What the spacing rule needs to know of an existing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledOrder {
    /// The order.
    pub id: OrderId,
    /// When it is scheduled.
    pub scheduled_at: DateTime<Utc>,
    /// Its status; cancelled orders never conflict.
    pub status: OrderStatus,
}

/// The existing order closest to `candidate` that is less than `window` away from
/// it, if any. The rule is symmetric, ignores cancelled orders and ignores the order
/// `exclude` (the one being rescheduled). Exactly `window` apart is allowed.
pub fn find_conflict(
    candidate: DateTime<Utc>,
    exclude: Option<OrderId>,
    existing: &[ScheduledOrder],
    window: SpacingWindow,
) -> Option<&ScheduledOrder> {
    existing
        .iter()
        .filter(|o| Some(o.id) != exclude && o.status.counts_for_spacing())
        .filter(|o| (o.scheduled_at - candidate).abs() < window.as_delta())
        .min_by_key(|o| ((o.scheduled_at - candidate).abs(), o.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, hour, minute, 0)
            .single()
            .expect("valid time")
    }

    fn order(hour: u32, minute: u32, status: OrderStatus) -> ScheduledOrder {
        ScheduledOrder {
            id: OrderId::generate(),
            scheduled_at: at(hour, minute),
            status,
        }
    }

    #[test]
    fn an_order_three_hours_after_another_is_accepted() {
        let existing = [order(9, 0, OrderStatus::Placed)];
        assert_eq!(
            find_conflict(at(12, 0), None, &existing, SpacingWindow::default()),
            None
        );
    }

    #[test]
    fn an_order_one_minute_short_of_three_hours_conflicts() {
        let existing = [order(9, 0, OrderStatus::Placed)];
        let found = find_conflict(at(11, 59), None, &existing, SpacingWindow::default());
        assert_eq!(found.map(|o| o.id), Some(existing[0].id));
    }

    #[test]
    fn the_rule_is_symmetric() {
        let existing = [order(12, 0, OrderStatus::Paid)];
        assert!(find_conflict(at(9, 1), None, &existing, SpacingWindow::default()).is_some());
        assert!(find_conflict(at(9, 0), None, &existing, SpacingWindow::default()).is_none());
    }

    #[test]
    fn cancelled_orders_and_failed_payments_never_conflict() {
        let existing = [
            order(10, 0, OrderStatus::Cancelled),
            order(10, 0, OrderStatus::PaymentFailed),
        ];
        assert!(find_conflict(at(10, 0), None, &existing, SpacingWindow::default()).is_none());
    }

    #[test]
    fn an_order_does_not_conflict_with_itself() {
        let existing = [order(10, 0, OrderStatus::Placed)];
        let me = existing[0].id;
        assert!(find_conflict(at(10, 30), Some(me), &existing, SpacingWindow::default()).is_none());
    }

    #[test]
    fn the_closest_conflict_is_reported() {
        let far = order(8, 0, OrderStatus::Placed);
        let near = order(10, 30, OrderStatus::PendingPayment);
        let existing = [far, near];
        let found = find_conflict(at(10, 0), None, &existing, SpacingWindow::default());
        assert_eq!(found.map(|o| o.id), Some(near.id));
    }

    #[test]
    fn the_window_is_configurable_and_bounded() {
        let window = SpacingWindow::from_minutes(30).expect("valid window");
        let existing = [order(10, 0, OrderStatus::Placed)];
        assert!(find_conflict(at(10, 30), None, &existing, window).is_none());
        assert!(find_conflict(at(10, 29), None, &existing, window).is_some());
        assert!(SpacingWindow::from_minutes(0).is_err());
        assert!(SpacingWindow::from_minutes(7 * 24 * 60 + 1).is_err());
    }

    #[test]
    fn the_neighbourhood_spans_one_window_each_side() {
        let (from, to) = SpacingWindow::default().neighbourhood(at(10, 0));
        assert_eq!((from, to), (at(7, 0), at(13, 0)));
    }
}
