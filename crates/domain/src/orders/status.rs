use crate::value::InvalidValue;

/// Where an order is in its life.
///
/// ```text
/// placed ──► pending_payment ──► paid
///   │             │    ▲
///   │             ▼    │
///   │        payment_failed
///   ▼             │
/// cancelled ◄─────┘
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Accepted; may still be edited, cancelled or deleted.
    Placed,
    /// Checkout asked for payment and the outcome is not known yet.
    PendingPayment,
    /// Paid; final until refunds exist.
    Paid,
    /// The payment was declined; stock was released.
    PaymentFailed,
    /// Cancelled; stock was released. Final.
    Cancelled,
}

impl OrderStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [OrderStatus; 5] = [
        Self::Placed,
        Self::PendingPayment,
        Self::Paid,
        Self::PaymentFailed,
        Self::Cancelled,
    ];

    /// Parses the wire/storage name (`placed`, `pending_payment`, ...).
    ///
    /// # Errors
    /// For any other text.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                InvalidValue::new(
                    "status must be one of placed, pending_payment, paid, payment_failed, cancelled",
                )
            })
    }

    /// The wire/storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::PaymentFailed => "payment_failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether an order may move from this status to `next`: the one place the
    /// state machine is written down.
    pub fn can_transition_to(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Placed, PendingPayment)
                | (Placed, Cancelled)
                | (PendingPayment, Paid)
                | (PendingPayment, PaymentFailed)
                | (PaymentFailed, PendingPayment)
                | (PaymentFailed, Cancelled)
        )
    }

    /// Whether an order in this status holds its goods' stock.
    pub fn holds_stock(self) -> bool {
        matches!(self, Self::Placed | Self::PendingPayment | Self::Paid)
    }

    /// Whether the order's schedule and lines may still be changed.
    pub fn is_editable(self) -> bool {
        self == Self::Placed
    }

    /// Whether the order may be deleted: not once money is or may be involved.
    pub fn is_deletable(self) -> bool {
        !matches!(self, Self::Paid | Self::PendingPayment)
    }

    /// Whether the order takes part in the spacing rule: not once it is off —
    /// cancelled, or its payment failed (a customer whose card was declined at
    /// checkout pays again with another at once).
    pub fn counts_for_spacing(self) -> bool {
        !matches!(self, Self::Cancelled | Self::PaymentFailed)
    }

    /// Whether the order is a sale in the reports: paid, or placed through
    /// `/v1/orders` (sold on account). Checkout's orders count once paid; a
    /// cancelled or unpaid one never does.
    pub fn counts_as_sale(self) -> bool {
        matches!(self, Self::Placed | Self::Paid)
    }

    /// Whether the order's units are reserved: taken from stock, but not (yet) a
    /// sale, so they may still come back.
    pub fn reserves_unsold_stock(self) -> bool {
        self.holds_stock() && !self.counts_as_sale()
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Ok(status));
        }
        assert!(OrderStatus::parse("shipped").is_err());
    }

    #[test]
    fn the_state_machine_allows_exactly_the_drawn_transitions() {
        let allowed = [
            (Placed, PendingPayment),
            (Placed, Cancelled),
            (PendingPayment, Paid),
            (PendingPayment, PaymentFailed),
            (PaymentFailed, PendingPayment),
            (PaymentFailed, Cancelled),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn paid_and_cancelled_orders_are_final() {
        for to in OrderStatus::ALL {
            assert!(!Paid.can_transition_to(to));
            assert!(!Cancelled.can_transition_to(to));
        }
    }

    #[test]
    fn only_orders_without_money_involved_are_deletable() {
        assert!(Placed.is_deletable());
        assert!(Cancelled.is_deletable());
        assert!(PaymentFailed.is_deletable());
        assert!(!Paid.is_deletable());
        assert!(!PendingPayment.is_deletable());
    }

    #[test]
    fn orders_that_are_off_do_not_keep_others_away() {
        assert!(Placed.counts_for_spacing());
        assert!(PendingPayment.counts_for_spacing());
        assert!(Paid.counts_for_spacing());
        assert!(!Cancelled.counts_for_spacing());
        assert!(!PaymentFailed.counts_for_spacing());
    }

    #[test]
    fn only_paid_and_placed_orders_are_sales_and_only_pending_payments_reserve() {
        let sales: Vec<_> = OrderStatus::ALL
            .into_iter()
            .filter(|s| s.counts_as_sale())
            .collect();
        let reserving: Vec<_> = OrderStatus::ALL
            .into_iter()
            .filter(|s| s.reserves_unsold_stock())
            .collect();
        assert_eq!(sales, [Placed, Paid]);
        assert_eq!(reserving, [PendingPayment]);
    }

    #[test]
    fn released_orders_hold_no_stock() {
        assert!(Placed.holds_stock());
        assert!(!Cancelled.holds_stock());
        assert!(!PaymentFailed.holds_stock());
    }
}
