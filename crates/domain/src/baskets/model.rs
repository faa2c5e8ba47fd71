use chrono::{DateTime, TimeDelta, Utc};

use super::{BasketStatus, ChangeBasketError, DeleteBasketError};
use crate::catalog::{Product, ProductId};
use crate::customers::CustomerId;
use crate::money::{Currency, Money};
use crate::orders::{OrderItem, OrderItems, OrderLine, PricingError, Quantity, price_lines};
use crate::value::{InvalidValue, Version, id_newtype};

id_newtype!(
    /// Identifies a basket.
    BasketId
);

/// How long a basket lives after its last change: 1 minute to 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BasketTtl(TimeDelta);

impl BasketTtl {
    /// A day, unless configured otherwise.
    pub const DEFAULT_SECS: u64 = 24 * 3600;
    const MIN_SECS: u64 = 60;
    const MAX_SECS: u64 = 30 * 24 * 3600;

    /// A time-to-live of `secs` seconds.
    ///
    /// # Errors
    /// Outside 60 seconds to 30 days.
    pub fn from_secs(secs: u64) -> Result<Self, InvalidValue> {
        match i64::try_from(secs) {
            Ok(s) if (Self::MIN_SECS..=Self::MAX_SECS).contains(&secs) => {
                Ok(Self(TimeDelta::seconds(s)))
            }
            _ => Err(InvalidValue::new(
                "a basket's time-to-live is 60 seconds to 30 days",
            )),
        }
    }

    /// The duration.
    pub fn get(self) -> TimeDelta {
        self.0
    }
}

impl Default for BasketTtl {
    fn default() -> Self {
        Self(TimeDelta::seconds(Self::DEFAULT_SECS as i64))
    }
}

/// Parses the quantity a line is set to: 0 removes the line (`None`), 1 to
/// 1 000 000 sets it, as an order's line allows.
///
/// # Errors
/// When `raw` is negative or above 1 000 000.
pub fn parse_basket_quantity(raw: i64) -> Result<Option<Quantity>, InvalidValue> {
    if raw == 0 {
        return Ok(None);
    }
    Quantity::parse(raw)
        .map(Some)
        .map_err(|_| InvalidValue::new("quantity must be between 0 (removes the line) and 1000000"))
}

/// What a change does to one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineChange {
    /// Sets the product's line to `quantity`, priced from `product`: the catalog's
    /// entry for `product_id`, `None` when there is none.
    Set {
        /// The product of the line.
        product_id: ProductId,
        /// Its new quantity.
        quantity: Quantity,
        /// The catalog's entry for it, read just before.
        product: Option<Product>,
    },
    /// Removes the product's line; nothing changes when there is none.
    Remove(ProductId),
}

/// A change to a basket's lines, made at `at`, which keeps the basket alive for
/// `ttl` more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasketEdit {
    /// What happens to which line.
    pub change: LineChange,
    /// When the change is made.
    pub at: DateTime<Utc>,
    /// How long the basket lives after it.
    pub ttl: BasketTtl,
}

/// A basket: lines priced when they were set, their total, and how long it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basket {
    id: BasketId,
    customer_id: Option<CustomerId>,
    status: BasketStatus,
    lines: Vec<OrderLine>,
    total: Money,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: Version,
}

impl Basket {
    /// The largest number of lines of one basket: what one order holds, so that
    /// every basket can be checked out.
    pub const MAX_LINES: usize = OrderItems::MAX_LINES;

    /// A new, empty, open basket, in `currency` until its first line says otherwise.
    pub fn open(
        id: BasketId,
        customer_id: Option<CustomerId>,
        currency: Currency,
        at: DateTime<Utc>,
        ttl: BasketTtl,
    ) -> Self {
        Self {
            id,
            customer_id,
            status: BasketStatus::Open,
            lines: Vec::new(),
            total: Money::zero(currency),
            expires_at: at + ttl.get(),
            created_at: at,
            updated_at: at,
            version: Version::FIRST,
        }
    }

    /// Reassembles a stored basket; storage only holds what Ordo wrote, so the
    /// parts are taken as they are.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        id: BasketId,
        customer_id: Option<CustomerId>,
        status: BasketStatus,
        lines: Vec<OrderLine>,
        total: Money,
        expires_at: DateTime<Utc>,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
        version: Version,
    ) -> Self {
        Self {
            id,
            customer_id,
            status,
            lines,
            total,
            expires_at,
            created_at,
            updated_at,
            version,
        }
    }

    /// The id.
    pub fn id(&self) -> BasketId {
        self.id
    }

    /// Whom the basket is for, if known yet.
    pub fn customer_id(&self) -> Option<CustomerId> {
        self.customer_id
    }

    /// The stored status; see [`status_at`](Self::status_at) for what it is now.
    pub fn status(&self) -> BasketStatus {
        self.status
    }

    /// The status at `now`: an open basket whose time ran out is expired, whether
    /// or not that was stored yet.
    pub fn status_at(&self, now: DateTime<Utc>) -> BasketStatus {
        if self.status == BasketStatus::Open && now >= self.expires_at {
            BasketStatus::Expired
        } else {
            self.status
        }
    }

    /// The basket as it stands at `now` (expired once its time ran out).
    pub fn as_of(mut self, now: DateTime<Utc>) -> Self {
        self.status = self.status_at(now);
        self
    }

    /// The priced lines, in the order they were first added.
    pub fn lines(&self) -> &[OrderLine] {
        &self.lines
    }

    /// The sum of the line totals, in the basket's currency.
    pub fn total(&self) -> Money {
        self.total
    }

    /// When an open basket expires unless changed before.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// When the basket was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// When the basket last changed.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }

    /// The revision, for optimistic concurrency.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The lines as the items of an order (product and quantity), for checkout to
    /// place; `None` for an empty basket.
    pub fn order_items(&self) -> Option<OrderItems> {
        let items = self
            .lines
            .iter()
            .map(|line| OrderItem {
                product_id: line.product_id(),
                quantity: line.quantity(),
            })
            .collect();
        OrderItems::new(items).ok()
    }

    /// The basket after `edit`, one version later and alive for `edit.ttl` from
    /// `edit.at`; `None` when the edit changes nothing (removing a line that is
    /// not there).
    ///
    /// # Errors
    /// `NotOpen` when the basket is checked out or has expired by `edit.at`;
    /// `Pricing` when the product is unknown or inactive, is priced in another
    /// currency than the other lines, or the total would not fit; `Full` when a
    /// new line would exceed [`MAX_LINES`](Self::MAX_LINES).
    pub fn edited(&self, edit: &BasketEdit) -> Result<Option<Basket>, ChangeBasketError> {
        let status = self.status_at(edit.at);
        if status != BasketStatus::Open {
            return Err(ChangeBasketError::NotOpen {
                id: self.id,
                status,
            });
        }
        let mut lines = self.lines.clone();
        let position = |product_id: ProductId| {
            lines
                .iter()
                .position(|line| line.product_id() == product_id)
        };
        match &edit.change {
            LineChange::Set {
                product_id,
                quantity,
                product,
            } => {
                let line = price_line(*product_id, *quantity, product.as_ref())?;
                match position(*product_id) {
                    Some(at) => lines[at] = line,
                    None if lines.len() >= Self::MAX_LINES => {
                        return Err(ChangeBasketError::Full {
                            id: self.id,
                            max: Self::MAX_LINES,
                        });
                    }
                    None => lines.push(line),
                }
            }
            LineChange::Remove(product_id) => match position(*product_id) {
                Some(at) => {
                    lines.remove(at);
                }
                None => return Ok(None),
            },
        }
        let total = sum_lines(&lines, self.total.currency())?;
        Ok(Some(Basket {
            lines,
            total,
            expires_at: edit.at + edit.ttl.get(),
            updated_at: edit.at,
            version: self.version.next(),
            ..self.clone()
        }))
    }

    /// The basket as checkout leaves it at `at`: `checked_out`, one version
    /// later, its lines kept as the order's.
    ///
    /// # Errors
    /// The basket's status at `at` when it is not open (checked out, or expired).
    pub fn checked_out(&self, at: DateTime<Utc>) -> Result<Basket, BasketStatus> {
        let status = self.status_at(at);
        if status != BasketStatus::Open {
            return Err(status);
        }
        Ok(Basket {
            status: BasketStatus::CheckedOut,
            updated_at: at,
            version: self.version.next(),
            ..self.clone()
        })
    }

    /// The basket open again at `at` after its checkout failed (the payment was
    /// declined), alive for `ttl` from then, one version later; `None` when it is
    /// not checked out.
    pub fn reopened(&self, at: DateTime<Utc>, ttl: BasketTtl) -> Option<Basket> {
        (self.status == BasketStatus::CheckedOut).then(|| Basket {
            status: BasketStatus::Open,
            expires_at: at + ttl.get(),
            updated_at: at,
            version: self.version.next(),
            ..self.clone()
        })
    }

    /// Checks that the basket may be deleted.
    ///
    /// # Errors
    /// `NotDeletable` once an order was made of it.
    pub fn check_deletable(&self) -> Result<(), DeleteBasketError> {
        if self.status.is_deletable() {
            Ok(())
        } else {
            Err(DeleteBasketError::NotDeletable {
                id: self.id,
                status: self.status,
            })
        }
    }
}

/// One line priced by the rules of an order's lines.
fn price_line(
    product_id: ProductId,
    quantity: Quantity,
    product: Option<&Product>,
) -> Result<OrderLine, PricingError> {
    let items = OrderItems::new(vec![OrderItem {
        product_id,
        quantity,
    }])
    .map_err(|_| PricingError::UnknownProduct(product_id))?;
    let (mut lines, _) = price_lines(
        &items,
        product.map(std::slice::from_ref).unwrap_or_default(),
    )?;
    lines.pop().ok_or(PricingError::UnknownProduct(product_id))
}

/// The total of `lines`, which must share one currency; `currency` when empty.
fn sum_lines(lines: &[OrderLine], currency: Currency) -> Result<Money, PricingError> {
    let currency = lines
        .first()
        .map_or(currency, |line| line.line_total().currency());
    lines.iter().try_fold(Money::zero(currency), |sum, line| {
        if line.line_total().currency() != currency {
            return Err(PricingError::MixedCurrencies);
        }
        sum.plus(line.line_total())
            .map_err(|_| PricingError::AmountTooLarge)
    })
}

#[cfg(test)]
mod tests;
