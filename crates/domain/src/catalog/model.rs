use chrono::{DateTime, Utc};

use crate::money::Money;
use crate::value::{InvalidValue, Version, id_newtype, text_newtype};

id_newtype!(
    /// Identifies a product.
    ProductId
);

text_newtype!(
    /// A product's display name.
    ProductName,
    "a product name",
    200
);

/// A stock-keeping unit: 1 to 64 characters of letters, digits, `-`, `_` and `.`,
/// unique across the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sku(String);

impl Sku {
    /// Parses a SKU.
    ///
    /// # Errors
    /// When `raw` is empty, longer than 64 characters or holds other characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let sku = raw.trim();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if sku.is_empty() || sku.len() > 64 || !sku.chars().all(allowed) {
            return Err(InvalidValue::new(
                "a SKU is 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        Ok(Self(sku.to_owned()))
    }

    /// The SKU text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Sku {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a product is work done (a service) or a thing handed over (a good).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProductKind {
    /// Work done; never stocked.
    Service,
    /// A thing handed over; may track stock.
    Good,
}

impl ProductKind {
    /// Parses `"service"` or `"good"`.
    ///
    /// # Errors
    /// For any other text.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw {
            "service" => Ok(Self::Service),
            "good" => Ok(Self::Good),
            _ => Err(InvalidValue::new("kind must be \"service\" or \"good\"")),
        }
    }

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Good => "good",
        }
    }
}

/// A number of units on hand or a stock threshold: 0 to 10¹², so that adding any
/// order's units back can never overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StockLevel(i64);

impl StockLevel {
    /// The largest stock level.
    pub const MAX: i64 = 1_000_000_000_000;

    /// Parses a stock level.
    ///
    /// # Errors
    /// When `raw` is negative or above [`Self::MAX`].
    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        if !(0..=Self::MAX).contains(&raw) {
            return Err(InvalidValue::new(
                "stock must be between 0 and 1000000000000",
            ));
        }
        Ok(Self(raw))
    }

    /// The number of units.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A product of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub(crate) id: ProductId,
    pub(crate) sku: Sku,
    pub(crate) name: ProductName,
    pub(crate) kind: ProductKind,
    pub(crate) price: Money,
    pub(crate) stock: Option<StockLevel>,
    pub(crate) low_stock_threshold: Option<StockLevel>,
    pub(crate) active: bool,
    pub(crate) version: Version,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl Product {
    /// Reassembles a stored product. Adapters call this with values they stored
    /// from this type, so no rule is checked again.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        id: ProductId,
        sku: Sku,
        name: ProductName,
        kind: ProductKind,
        price: Money,
        stock: Option<StockLevel>,
        low_stock_threshold: Option<StockLevel>,
        active: bool,
        version: Version,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            sku,
            name,
            kind,
            price,
            stock,
            low_stock_threshold,
            active,
            version,
            created_at,
            updated_at,
        }
    }

    /// The product's id.
    pub fn id(&self) -> ProductId {
        self.id
    }
    /// The SKU.
    pub fn sku(&self) -> &Sku {
        &self.sku
    }
    /// The display name.
    pub fn name(&self) -> &ProductName {
        &self.name
    }
    /// Service or good.
    pub fn kind(&self) -> ProductKind {
        self.kind
    }
    /// The unit price.
    pub fn price(&self) -> Money {
        self.price
    }
    /// Units on hand; `None` when stock is not tracked.
    pub fn stock(&self) -> Option<StockLevel> {
        self.stock
    }
    /// The level at or below which stock counts as low.
    pub fn low_stock_threshold(&self) -> Option<StockLevel> {
        self.low_stock_threshold
    }
    /// Whether stock is at or below the low-stock threshold.
    pub fn is_low_on_stock(&self) -> bool {
        matches!((self.stock, self.low_stock_threshold), (Some(s), Some(t)) if s <= t)
    }
    /// Whether new orders may use the product.
    pub fn is_active(&self) -> bool {
        self.active
    }
    /// The revision, for optimistic concurrency.
    pub fn version(&self) -> Version {
        self.version
    }
    /// When the product was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// When the product last changed.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
}

/// A product to add to the catalog, already checked: a service never tracks stock.
/// The catalog service gives it its id and creation instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub(crate) sku: Sku,
    pub(crate) name: ProductName,
    pub(crate) kind: ProductKind,
    pub(crate) price: Money,
    pub(crate) stock: Option<StockLevel>,
    pub(crate) low_stock_threshold: Option<StockLevel>,
}

impl NewProduct {
    /// Checks the combination of fields.
    ///
    /// # Errors
    /// When a service is given a stock level.
    pub fn new(
        sku: Sku,
        name: ProductName,
        kind: ProductKind,
        price: Money,
        stock: Option<StockLevel>,
        low_stock_threshold: Option<StockLevel>,
    ) -> Result<Self, InvalidValue> {
        if kind == ProductKind::Service && stock.is_some() {
            return Err(InvalidValue::new("a service cannot track stock"));
        }
        Ok(Self {
            sku,
            name,
            kind,
            price,
            stock,
            low_stock_threshold,
        })
    }

    /// The SKU.
    pub fn sku(&self) -> &Sku {
        &self.sku
    }
    /// The display name.
    pub fn name(&self) -> &ProductName {
        &self.name
    }
    /// Service or good.
    pub fn kind(&self) -> ProductKind {
        self.kind
    }
    /// The unit price.
    pub fn price(&self) -> Money {
        self.price
    }
    /// Initial stock; `None` when not tracked.
    pub fn stock(&self) -> Option<StockLevel> {
        self.stock
    }
    /// The low-stock threshold.
    pub fn low_stock_threshold(&self) -> Option<StockLevel> {
        self.low_stock_threshold
    }
}

/// A unit price in minor units, on its own: never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PriceMinor(i64);

impl PriceMinor {
    /// Parses a price in minor units.
    ///
    /// # Errors
    /// When `raw` is negative.
    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        if raw < 0 {
            return Err(InvalidValue::new("a price must not be negative"));
        }
        Ok(Self(raw))
    }

    /// The amount in minor units.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A partial update of a product; `None` leaves a field as it is. Price and
/// currency change independently, so storage applies each without reading first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductChanges {
    /// A new SKU.
    pub sku: Option<Sku>,
    /// A new name.
    pub name: Option<ProductName>,
    /// A new unit price in minor units.
    pub price_minor: Option<PriceMinor>,
    /// A new currency of the unit price.
    pub currency: Option<crate::money::Currency>,
    /// A new threshold; `Some(None)` clears it.
    pub low_stock_threshold: Option<Option<StockLevel>>,
    /// Activates or deactivates the product.
    pub active: Option<bool>,
}

impl ProductChanges {
    /// Whether no field changes.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A change of stock in units: not zero, at most [`StockLevel::MAX`] either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StockDelta(i64);

impl StockDelta {
    /// Parses a change of stock.
    ///
    /// # Errors
    /// When `raw` is zero or beyond ±[`StockLevel::MAX`] (`i64::MIN` included).
    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        if raw == 0 || !(-StockLevel::MAX..=StockLevel::MAX).contains(&raw) {
            return Err(InvalidValue::new(
                "delta must be a non-zero number of units, at most 1000000000000 either way",
            ));
        }
        Ok(Self(raw))
    }

    /// Units added (positive) or removed (negative).
    pub fn get(self) -> i64 {
        self.0
    }
}

id_newtype!(
    /// Identifies a recorded stock adjustment.
    StockAdjustmentId
);

/// A change of stock with its reason, kept for audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockAdjustment {
    /// The record's id.
    pub id: StockAdjustmentId,
    /// Units added (positive) or removed (negative).
    pub delta: StockDelta,
    /// Why, e.g. "delivery" or "breakage".
    pub reason: String,
    /// When the adjustment was made.
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[test]
    fn skus_allow_only_a_safe_alphabet() {
        assert!(Sku::parse("INSP-001").is_ok());
        assert!(Sku::parse("a b").is_err());
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn a_service_cannot_track_stock() {
        let eur = Currency::parse("EUR").expect("currency");
        let result = NewProduct::new(
            Sku::parse("INSP").expect("sku"),
            ProductName::parse("Inspection").expect("name"),
            ProductKind::Service,
            Money::new(100, eur),
            Some(StockLevel::parse(1).expect("stock")),
            None,
        );
        assert!(result.is_err());
    }

    #[test]
    fn a_stock_delta_is_non_zero_and_bounded_either_way() {
        for bad in [
            0,
            StockLevel::MAX + 1,
            -StockLevel::MAX - 1,
            i64::MIN,
            i64::MAX,
        ] {
            assert!(StockDelta::parse(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(
            StockDelta::parse(-StockLevel::MAX).map(StockDelta::get),
            Ok(-StockLevel::MAX)
        );
    }

    #[test]
    fn stock_is_never_negative_nor_astronomical() {
        assert!(StockLevel::parse(-1).is_err());
        assert!(StockLevel::parse(StockLevel::MAX + 1).is_err());
        assert_eq!(StockLevel::parse(0).map(StockLevel::get), Ok(0));
    }
}
