use crate::value::InvalidValue;

/// Where a basket is in its life.
///
/// ```text
/// open ──► checked_out      (checkout wrote the order)
///  │  ◄──     │             (the payment was declined: open again)
///  ▼
/// expired                   (expires_at passed without a change)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BasketStatus {
    /// Lines may be set and removed.
    Open,
    /// Checkout turned the basket into an order; it no longer changes.
    CheckedOut,
    /// Its time ran out before checkout. Final.
    Expired,
}

impl BasketStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [BasketStatus; 3] = [Self::Open, Self::CheckedOut, Self::Expired];

    /// Parses the wire/storage name (`open`, `checked_out`, `expired`).
    ///
    /// # Errors
    /// For any other text.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| InvalidValue::new("status must be one of open, checked_out, expired"))
    }

    /// The wire/storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::CheckedOut => "checked_out",
            Self::Expired => "expired",
        }
    }

    /// Whether a basket may move from this status to `next`: the one place the
    /// state machine is written down.
    pub fn can_transition_to(self, next: BasketStatus) -> bool {
        use BasketStatus::*;
        matches!(
            (self, next),
            (Open, CheckedOut) | (CheckedOut, Open) | (Open, Expired)
        )
    }

    /// Whether the basket may be deleted: not once an order was made of it, which
    /// checkout refers back to.
    pub fn is_deletable(self) -> bool {
        self != Self::CheckedOut
    }
}

impl std::fmt::Display for BasketStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::BasketStatus::*;
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name() {
        for status in BasketStatus::ALL {
            assert_eq!(BasketStatus::parse(status.as_str()), Ok(status));
        }
        assert!(BasketStatus::parse("abandoned").is_err());
    }

    #[test]
    fn the_state_machine_allows_exactly_the_drawn_transitions() {
        let allowed = [(Open, CheckedOut), (CheckedOut, Open), (Open, Expired)];
        for from in BasketStatus::ALL {
            for to in BasketStatus::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn only_a_checked_out_basket_is_kept() {
        assert!(Open.is_deletable());
        assert!(Expired.is_deletable());
        assert!(!CheckedOut.is_deletable());
    }
}
