use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

use super::OrderStatus;
use crate::catalog::{ProductId, ProductName, Sku};
use crate::clock::to_micros;
use crate::customers::CustomerId;
use crate::money::{Money, MoneyOverflow};
use crate::value::{InvalidValue, Version, id_newtype, text_newtype};

id_newtype!(
    /// Identifies an order.
    OrderId
);

text_newtype!(
    /// A free-text note on an order.
    OrderNote,
    "a note",
    2000
);

/// An instant an order can be scheduled at, exactly as storage keeps it: between
/// the years 1970 and 9999 (which every storage and client represents without
/// surprises), to the microsecond, and with a leap second (`23:59:60`) read as the
/// first instant of the next minute — so what is stored, returned on create and
/// read back is one and the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScheduledAt(DateTime<Utc>);

impl ScheduledAt {
    /// Parses an instant.
    ///
    /// # Errors
    /// Outside the years 1970 to 9999.
    pub fn parse(at: DateTime<Utc>) -> Result<Self, InvalidValue> {
        // chrono represents a leap second as a nanosecond count of one second or
        // more within second 59; PostgreSQL stores it as the next minute.
        let at = match at.nanosecond().checked_sub(1_000_000_000) {
            Some(nanos) => at
                .with_nanosecond(nanos)
                .and_then(|at| at.checked_add_signed(chrono::TimeDelta::seconds(1)))
                .ok_or_else(|| InvalidValue::new("must lie between the years 1970 and 9999"))?,
            None => at,
        };
        let at = to_micros(at);
        if (1970..=9999).contains(&at.year()) {
            Ok(Self(at))
        } else {
            Err(InvalidValue::new(
                "must lie between the years 1970 and 9999",
            ))
        }
    }

    /// The instant.
    pub fn get(self) -> DateTime<Utc> {
        self.0
    }
}

/// A human-readable order number `ORD-YYYYMMDD-NNNNNN`: the day the order was placed
/// (UTC) and its running number that day, from 1 without gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderNumber {
    day: NaiveDate,
    sequence: u32,
}

impl OrderNumber {
    /// The largest running number of one day.
    pub const MAX_SEQUENCE: u32 = 999_999;

    /// The `sequence`-th order of `day`.
    ///
    /// # Errors
    /// When `sequence` is 0 or above 999 999.
    pub fn new(day: NaiveDate, sequence: u32) -> Result<Self, InvalidValue> {
        if !(1..=Self::MAX_SEQUENCE).contains(&sequence) {
            return Err(InvalidValue::new(
                "an order number's running number is 1 to 999999",
            ));
        }
        Ok(Self { day, sequence })
    }

    /// Parses `ORD-YYYYMMDD-NNNNNN`.
    ///
    /// # Errors
    /// When `raw` is not of that form.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let invalid = || InvalidValue::new("an order number looks like ORD-20260101-000001");
        let rest = raw.strip_prefix("ORD-").ok_or_else(invalid)?;
        let (day, sequence) = rest.split_once('-').ok_or_else(invalid)?;
        if day.len() != 8 || sequence.len() != 6 || !sequence.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        // By hand rather than `parse_from_str("%Y%m%d")`: a page of orders parses
        // one number per order, and chrono's format strings are read anew each time.
        if !day.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let digits =
            |range: std::ops::Range<usize>| day[range].parse::<u32>().map_err(|_| invalid());
        // Stricter than chrono, which let a space stand before the month or day.
        let year = day[0..4].parse::<i32>().map_err(|_| invalid())?;
        let day =
            NaiveDate::from_ymd_opt(year, digits(4..6)?, digits(6..8)?).ok_or_else(invalid)?;
        let sequence = sequence.parse().map_err(|_| invalid())?;
        Self::new(day, sequence).map_err(|_| invalid())
    }

    /// The day the order was placed.
    pub fn day(&self) -> NaiveDate {
        self.day
    }

    /// The running number within the day.
    pub fn sequence(&self) -> u32 {
        self.sequence
    }
}

impl fmt::Display for OrderNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As `%Y%m%d` writes it, without reading a format string per number.
        let year = self.day.year();
        if (0..=9999).contains(&year) {
            write!(f, "ORD-{year:04}")?;
        } else {
            write!(f, "ORD-{year:+05}")?;
        }
        write!(
            f,
            "{:02}{:02}-{:06}",
            self.day.month(),
            self.day.day(),
            self.sequence
        )
    }
}

/// How an order is looked up: by id or by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderRef {
    /// By id.
    Id(OrderId),
    /// By order number.
    Number(OrderNumber),
}

impl OrderRef {
    /// Parses a UUID or an order number.
    ///
    /// # Errors
    /// When `raw` is neither.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if let Ok(id) = uuid::Uuid::parse_str(raw) {
            return Ok(Self::Id(OrderId::from_uuid(id)));
        }
        OrderNumber::parse(raw).map(Self::Number).map_err(|_| {
            InvalidValue::new("must be an order id (UUID) or number (ORD-YYYYMMDD-NNNNNN)")
        })
    }
}

/// How many units of a product a line holds: 1 to 1 000 000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(u32);

impl Quantity {
    /// The largest quantity of one line.
    pub const MAX: u32 = 1_000_000;

    /// Parses a quantity.
    ///
    /// # Errors
    /// When `raw` is below 1 or above 1 000 000.
    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        match u32::try_from(raw) {
            Ok(q) if (1..=Self::MAX).contains(&q) => Ok(Self(q)),
            _ => Err(InvalidValue::new("quantity must be between 1 and 1000000")),
        }
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// One requested line: a product and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderItem {
    /// The product.
    pub product_id: ProductId,
    /// How many units.
    pub quantity: Quantity,
}

/// Why a list of items was refused; `index` points at the offending item, if one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct InvalidItems {
    /// The position of the offending item.
    pub index: Option<usize>,
    /// What is wrong.
    pub problem: InvalidValue,
}

/// The requested lines of an order: 1 to 100 items, each product at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItems(Vec<OrderItem>);

impl OrderItems {
    /// The largest number of lines of one order.
    pub const MAX_LINES: usize = 100;

    /// Checks a list of items.
    ///
    /// # Errors
    /// When the list is empty, too long, or names a product twice.
    pub fn new(items: Vec<OrderItem>) -> Result<Self, InvalidItems> {
        if items.is_empty() {
            return Err(InvalidItems {
                index: None,
                problem: InvalidValue::new("an order needs at least one item"),
            });
        }
        if items.len() > Self::MAX_LINES {
            return Err(InvalidItems {
                index: None,
                problem: InvalidValue::new("an order holds at most 100 items"),
            });
        }
        let mut seen = HashSet::with_capacity(items.len());
        if let Some(index) = items.iter().position(|i| !seen.insert(i.product_id)) {
            return Err(InvalidItems {
                index: Some(index),
                problem: InvalidValue::new("this product already appears in an earlier item"),
            });
        }
        Ok(Self(items))
    }

    /// The items, in the order they were given.
    pub fn as_slice(&self) -> &[OrderItem] {
        &self.0
    }

    /// The distinct products asked for.
    pub fn product_ids(&self) -> Vec<ProductId> {
        self.0.iter().map(|i| i.product_id).collect()
    }
}

/// A priced line of an order: the product as it was when the order was priced.
/// Its total always fits in 64-bit minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    product_id: ProductId,
    sku: Sku,
    name: ProductName,
    quantity: Quantity,
    unit_price: Money,
    reserves_stock: bool,
    line_total: Money,
}

impl OrderLine {
    /// A line of `quantity` units of a product at `unit_price`; `reserves_stock`
    /// when the product tracks stock.
    ///
    /// # Errors
    /// When `unit_price × quantity` does not fit in 64-bit minor units.
    pub fn new(
        product_id: ProductId,
        sku: Sku,
        name: ProductName,
        quantity: Quantity,
        unit_price: Money,
        reserves_stock: bool,
    ) -> Result<Self, MoneyOverflow> {
        let line_total = unit_price.times(quantity.get())?;
        Ok(Self {
            product_id,
            sku,
            name,
            quantity,
            unit_price,
            reserves_stock,
            line_total,
        })
    }

    /// The product.
    pub fn product_id(&self) -> ProductId {
        self.product_id
    }

    /// Its SKU at pricing time.
    pub fn sku(&self) -> &Sku {
        &self.sku
    }

    /// Its name at pricing time.
    pub fn name(&self) -> &ProductName {
        &self.name
    }

    /// How many units.
    pub fn quantity(&self) -> Quantity {
        self.quantity
    }

    /// The unit price at pricing time.
    pub fn unit_price(&self) -> Money {
        self.unit_price
    }

    /// Whether the product tracks stock, so the line reserves units.
    pub fn reserves_stock(&self) -> bool {
        self.reserves_stock
    }

    /// `unit_price × quantity`.
    pub fn line_total(&self) -> Money {
        self.line_total
    }
}

/// The payment state of an order, once checkout has asked for payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentInfo {
    /// The payment's status as the payment provider reports it.
    pub status: String,
    /// The provider's reference.
    pub reference: Option<String>,
}

/// The fulfilment state of an order at the upstream order system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FulfillmentInfo {
    /// The status at the upstream system.
    pub status: String,
    /// The upstream system's reference.
    pub reference: Option<String>,
    /// How many delivery attempts were made.
    pub attempts: i32,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    id: OrderId,
    number: OrderNumber,
    customer_id: CustomerId,
    status: OrderStatus,
    scheduled_at: DateTime<Utc>,
    lines: Vec<OrderLine>,
    total: Money,
    note: Option<OrderNote>,
    payment: Option<PaymentInfo>,
    fulfillment: Option<FulfillmentInfo>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: Version,
}

impl Order {
    /// Reassembles a stored order; storage only holds what Ordo wrote, so the parts
    /// are taken as they are.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        id: OrderId,
        number: OrderNumber,
        customer_id: CustomerId,
        status: OrderStatus,
        scheduled_at: DateTime<Utc>,
        lines: Vec<OrderLine>,
        total: Money,
        note: Option<OrderNote>,
        payment: Option<PaymentInfo>,
        fulfillment: Option<FulfillmentInfo>,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
        version: Version,
    ) -> Self {
        Self {
            id,
            number,
            customer_id,
            status,
            scheduled_at,
            lines,
            total,
            note,
            payment,
            fulfillment,
            created_at,
            updated_at,
            version,
        }
    }

    /// The id.
    pub fn id(&self) -> OrderId {
        self.id
    }

    /// The human-readable number.
    pub fn number(&self) -> OrderNumber {
        self.number
    }

    /// Whom the order is for.
    pub fn customer_id(&self) -> CustomerId {
        self.customer_id
    }

    /// Where the order is in its life.
    pub fn status(&self) -> OrderStatus {
        self.status
    }

    /// When the order is due.
    pub fn scheduled_at(&self) -> DateTime<Utc> {
        self.scheduled_at
    }

    /// The priced lines, in the order they were given.
    pub fn lines(&self) -> &[OrderLine] {
        &self.lines
    }

    /// The sum of the line totals.
    pub fn total(&self) -> Money {
        self.total
    }

    /// A free-text note.
    pub fn note(&self) -> Option<&OrderNote> {
        self.note.as_ref()
    }

    /// The payment, once checkout asked for one.
    pub fn payment(&self) -> Option<&PaymentInfo> {
        self.payment.as_ref()
    }

    /// The upstream fulfilment, once requested.
    pub fn fulfillment(&self) -> Option<&FulfillmentInfo> {
        self.fulfillment.as_ref()
    }

    /// When the order was placed.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// When the order last changed.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }

    /// The revision, for optimistic concurrency.
    pub fn version(&self) -> Version {
        self.version
    }
}

/// A request to place an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOrder {
    /// Whom the order is for.
    pub customer_id: CustomerId,
    /// When it is due; now when `None`.
    pub scheduled_at: Option<ScheduledAt>,
    /// What is ordered.
    pub items: OrderItems,
    /// A free-text note.
    pub note: Option<OrderNote>,
}

/// A request to change a placed order's schedule, lines and note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviseOrder {
    /// The new due instant.
    pub scheduled_at: ScheduledAt,
    /// The new lines, replacing the old ones.
    pub items: OrderItems,
    /// The new note; `None` clears it.
    pub note: Option<OrderNote>,
}

/// A priced order ready to be stored; storage assigns its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The new order's id.
    pub id: OrderId,
    /// Whom the order is for.
    pub customer_id: CustomerId,
    /// When it is due.
    pub scheduled_at: DateTime<Utc>,
    /// The priced lines.
    pub lines: Vec<OrderLine>,
    /// The sum of the line totals.
    pub total: Money,
    /// A free-text note.
    pub note: Option<OrderNote>,
    /// The instant of placing; its UTC day is the number's day.
    pub created_at: DateTime<Utc>,
}

/// A priced revision of an order, to store only if the order is still at `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRevision {
    /// The order.
    pub id: OrderId,
    /// Whom the order is for (unchanged; needed for the spacing rule).
    pub customer_id: CustomerId,
    /// The version the revision was priced against.
    pub expected: Version,
    /// The new due instant.
    pub scheduled_at: DateTime<Utc>,
    /// The new lines.
    pub lines: Vec<OrderLine>,
    /// The new total.
    pub total: Money,
    /// The new note.
    pub note: Option<OrderNote>,
    /// When the revision is made.
    pub at: DateTime<Utc>,
}

/// Which orders a list shows; all given conditions must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OrderFilter {
    /// Only this customer's orders.
    pub customer_id: Option<CustomerId>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only orders scheduled at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only orders scheduled before this instant.
    pub to: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_round_trip() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 21).expect("valid date");
        let number = OrderNumber::new(day, 42).expect("valid number");
        assert_eq!(number.to_string(), "ORD-20261121-000042");
        assert_eq!(OrderNumber::parse("ORD-20261121-000042"), Ok(number));
    }

    #[test]
    fn an_order_number_writes_its_day_as_chrono_writes_y_m_d() {
        for (year, month, day) in [
            (2026, 1, 2),
            (1, 12, 31),
            (0, 2, 29),
            (9999, 12, 31),
            (10_000, 1, 1),
            (-1, 6, 15),
        ] {
            let date = NaiveDate::from_ymd_opt(year, month, day).expect("valid date");
            let number = OrderNumber::new(date, 7).expect("valid number");
            assert_eq!(
                number.to_string(),
                format!("ORD-{}-000007", date.format("%Y%m%d")),
                "{date}"
            );
        }
    }

    #[test]
    fn an_order_number_reads_what_chrono_reads_and_what_it_writes() {
        // Every eight-digit day of two years around a leap day, valid or not, and
        // the days written back.
        for year in [2027, 2028] {
            for month in 0..=13 {
                for day in 0..=32 {
                    let text = format!("{year:04}{month:02}{day:02}");
                    let raw = format!("ORD-{text}-000001");
                    let expected = NaiveDate::parse_from_str(&text, "%Y%m%d").ok();
                    let read = OrderNumber::parse(&raw).ok();
                    assert_eq!(read.map(|n| n.day()), expected, "{raw}");
                    if let Some(number) = read {
                        assert_eq!(number.to_string(), raw);
                    }
                }
            }
        }
        // Where chrono was lenient, the form `ORD-YYYYMMDD-NNNNNN` is not.
        for bad in [
            "ORD-2026+121-000001",
            "ORD-2026 121-000001",
            "ORD-202611 1-000001",
        ] {
            assert!(OrderNumber::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn malformed_order_numbers_are_refused() {
        for bad in [
            "ORD-20261121-42",
            "ORD-20261321-000001",
            "ORD-20261121-000000",
            "ord-20261121-000001",
            "ORD-20261121-+00001",
            "ORD-2026112-0000001",
        ] {
            assert!(OrderNumber::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn an_order_is_found_by_id_or_number() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(
            OrderRef::parse(&id.to_string()),
            Ok(OrderRef::Id(OrderId::from_uuid(id)))
        );
        assert!(matches!(
            OrderRef::parse("ORD-20260101-000001"),
            Ok(OrderRef::Number(_))
        ));
        assert!(OrderRef::parse("42").is_err());
    }

    #[test]
    fn quantities_are_between_one_and_a_million() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(-5).is_err());
        assert!(Quantity::parse(1_000_001).is_err());
        assert!(Quantity::parse(i64::MAX).is_err());
        assert_eq!(Quantity::parse(1_000_000).map(Quantity::get), Ok(1_000_000));
    }

    #[test]
    fn item_lists_are_non_empty_bounded_and_without_repeats() {
        let item = |id| OrderItem {
            product_id: id,
            quantity: Quantity::parse(1).expect("valid"),
        };
        assert!(OrderItems::new(vec![]).is_err());
        let p = ProductId::generate();
        let repeated = OrderItems::new(vec![item(p), item(ProductId::generate()), item(p)]);
        assert_eq!(repeated.map_err(|e| e.index), Err(Some(2)));
        let many = (0..101).map(|_| item(ProductId::generate())).collect();
        assert!(OrderItems::new(many).is_err());
    }

    fn utc(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw)
            .expect("an RFC 3339 instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_line_whose_total_does_not_fit_is_refused_not_capped() {
        let eur = crate::money::Currency::parse("EUR").expect("currency");
        let line = |price: i64| {
            OrderLine::new(
                ProductId::generate(),
                Sku::parse("SKU-1").expect("sku"),
                ProductName::parse("Widget").expect("name"),
                Quantity::parse(1_000_000).expect("quantity"),
                Money::new(price, eur),
                false,
            )
        };
        assert!(line(i64::MAX / 999_999).is_err());
        assert_eq!(line(7).map(|l| l.line_total().minor()), Ok(7_000_000));
    }

    #[test]
    fn schedules_outside_1970_to_9999_are_refused() {
        assert!(ScheduledAt::parse(utc("1969-12-31T00:00:00Z")).is_err());
        assert!(ScheduledAt::parse(utc("2026-01-01T00:00:00Z")).is_ok());
        assert!(ScheduledAt::parse(utc("9999-12-31T23:59:60Z")).is_err());
    }

    #[test]
    fn a_leap_second_is_the_first_instant_of_the_next_minute() {
        let leap = ScheduledAt::parse(utc("2030-06-30T23:59:60Z")).expect("schedulable");
        assert_eq!(leap.get(), utc("2030-07-01T00:00:00Z"));
        let leap = ScheduledAt::parse(utc("2030-06-30T23:59:60.5Z")).expect("schedulable");
        assert_eq!(leap.get(), utc("2030-07-01T00:00:00.5Z"));
    }

    #[test]
    fn a_schedule_keeps_microseconds_and_drops_the_rest() {
        let at = ScheduledAt::parse(utc("2030-01-01T09:00:00.123456789Z")).expect("schedulable");
        assert_eq!(at.get(), utc("2030-01-01T09:00:00.123456Z"));
    }
}
