use crate::orders::OrderStatus;
use crate::value::InvalidValue;

/// Where a checkout is.
///
/// ```text
///    ┌───────────────────────────────────────────┐
///    │                                           ▼
/// started ──► order_placed_upstream ──────────► paid
///  │  │            │         │                   ▲
///  │  │            │         ▼                   │
///  │  └────────────┼───► pending_payment ────────┘
///  │               ▼         │
///  └──────► payment_failed ◄─┘
/// ```
///
/// - `started`: the local order is written; nothing upstream is known to have
///   happened. One step from here creates the upstream order and, at once, sends
///   the payment, and is recorded once with the payment's result: `paid`,
///   `pending_payment` or `payment_failed`. A worker that died between the two
///   calls left it `started`; the next one repeats both (idempotent on our order
///   id and the payment's key), and the checkout is marked interrupted, so it is
///   never given up as if nothing had been charged.
/// - `order_placed_upstream`: the upstream order exists; no payment was sent, or
///   the last attempt certainly did not reach the upstream.
/// - `pending_payment`: a payment was sent and its outcome is unknown; only the
///   upstream can say (asked again with the same idempotency key).
/// - `paid`, `payment_failed`: final. A failed checkout released its stock and
///   reopened its basket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckoutState {
    /// The local order is written; nothing upstream is confirmed.
    Started,
    /// The upstream order exists; nothing was charged.
    OrderPlacedUpstream,
    /// The payment's outcome is unknown.
    PendingPayment,
    /// Charged. Final.
    Paid,
    /// Declined, refused, or given up before anything was charged. Final.
    PaymentFailed,
}

impl CheckoutState {
    /// Every state, in life-cycle order.
    pub const ALL: [CheckoutState; 5] = [
        Self::Started,
        Self::OrderPlacedUpstream,
        Self::PendingPayment,
        Self::Paid,
        Self::PaymentFailed,
    ];

    /// Parses the storage name (`started`, `order_placed_upstream`, ...).
    ///
    /// # Errors
    /// For any other text.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| InvalidValue::new("not a checkout state"))
    }

    /// The storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::OrderPlacedUpstream => "order_placed_upstream",
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::PaymentFailed => "payment_failed",
        }
    }

    /// Whether a checkout may move from this state to `next`: the one place the
    /// state machine is written down.
    pub fn can_transition_to(self, next: CheckoutState) -> bool {
        use CheckoutState::*;
        matches!(
            (self, next),
            (Started, OrderPlacedUpstream)
                | (Started, Paid)
                | (Started, PendingPayment)
                | (Started, PaymentFailed)
                | (OrderPlacedUpstream, Paid)
                | (OrderPlacedUpstream, PendingPayment)
                | (OrderPlacedUpstream, PaymentFailed)
                | (PendingPayment, Paid)
                | (PendingPayment, PaymentFailed)
        )
    }

    /// Whether the checkout is over.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Paid | Self::PaymentFailed)
    }

    /// Whether this state says the customer may have been charged without our
    /// knowing: such a checkout is never given up, only settled by asking the
    /// upstream. The state alone does not tell: an attempt that sent the payment
    /// but never recorded its outcome left the state it started from (see
    /// [`Checkout::may_have_charged`](super::Checkout::may_have_charged), which
    /// also counts such interrupted attempts).
    pub fn may_have_charged(self) -> bool {
        self == Self::PendingPayment
    }

    /// The status of the checkout's order in this state.
    pub fn order_status(self) -> OrderStatus {
        match self {
            Self::Paid => OrderStatus::Paid,
            Self::PaymentFailed => OrderStatus::PaymentFailed,
            Self::Started | Self::OrderPlacedUpstream | Self::PendingPayment => {
                OrderStatus::PendingPayment
            }
        }
    }
}

impl std::fmt::Display for CheckoutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::CheckoutState::*;
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_name() {
        for state in CheckoutState::ALL {
            assert_eq!(CheckoutState::parse(state.as_str()), Ok(state));
        }
        assert!(CheckoutState::parse("shipped").is_err());
    }

    #[test]
    fn the_state_machine_allows_exactly_the_drawn_transitions() {
        let allowed = [
            (Started, OrderPlacedUpstream),
            (Started, Paid),
            (Started, PendingPayment),
            (Started, PaymentFailed),
            (OrderPlacedUpstream, Paid),
            (OrderPlacedUpstream, PendingPayment),
            (OrderPlacedUpstream, PaymentFailed),
            (PendingPayment, Paid),
            (PendingPayment, PaymentFailed),
        ];
        for from in CheckoutState::ALL {
            for to in CheckoutState::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn final_states_lead_nowhere_and_every_state_maps_to_an_order_status_it_may_hold() {
        for state in CheckoutState::ALL {
            if state.is_final() {
                assert!(
                    CheckoutState::ALL
                        .iter()
                        .all(|to| !state.can_transition_to(*to))
                );
            }
        }
        assert_eq!(Started.order_status(), OrderStatus::PendingPayment);
        assert_eq!(Paid.order_status(), OrderStatus::Paid);
        assert_eq!(PaymentFailed.order_status(), OrderStatus::PaymentFailed);
        assert!(OrderStatus::PendingPayment.can_transition_to(Paid.order_status()));
        assert!(OrderStatus::PendingPayment.can_transition_to(PaymentFailed.order_status()));
    }

    #[test]
    fn only_a_payment_in_doubt_may_have_charged() {
        let in_doubt: Vec<_> = CheckoutState::ALL
            .into_iter()
            .filter(|s| s.may_have_charged())
            .collect();
        assert_eq!(in_doubt, [PendingPayment]);
    }
}
