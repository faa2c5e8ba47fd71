use chrono::{DateTime, Datelike, Months, NaiveDate, TimeDelta, TimeZone, Utc};

use crate::activity::HitPrincipal;
use crate::catalog::ProductId;
use crate::customers::CustomerId;
use crate::money::Currency;
use crate::value::InvalidValue;

/// The longest period a report covers: ten years (of 366 days, so any ten
/// calendar years fit). Longer ones are refused rather than left to run for
/// minutes.
const MAX_PERIOD_DAYS: i64 = 3660;

/// The instants a report covers: from `from` (included) to `to` (excluded), on
/// the orders' `scheduled_at`, as `GET /v1/orders?from=&to=` filters them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportPeriod {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl ReportPeriod {
    /// The period `[from, to)`.
    ///
    /// # Errors
    /// When `from` is after `to`, or the period is longer than ten years.
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self, InvalidValue> {
        if from > to {
            return Err(InvalidValue::new("from must not be after to"));
        }
        if to - from > TimeDelta::days(MAX_PERIOD_DAYS) {
            return Err(InvalidValue::new(format!(
                "a report covers at most {MAX_PERIOD_DAYS} days"
            )));
        }
        Ok(Self { from, to })
    }

    /// The first instant covered.
    pub fn from(&self) -> DateTime<Utc> {
        self.from
    }

    /// The first instant no longer covered.
    pub fn to(&self) -> DateTime<Utc> {
        self.to
    }

    /// Every calendar month (UTC) the period touches, in order; none when the
    /// period is empty. A month only partly covered counts as a whole one.
    pub fn months(&self) -> Vec<YearMonth> {
        if self.from == self.to {
            return Vec::new();
        }
        let first = YearMonth::of(self.from);
        let last = YearMonth::of(self.to - TimeDelta::microseconds(1));
        std::iter::successors(Some(first), |m| Some(m.next()))
            .take_while(|m| *m <= last)
            .collect()
    }
}

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    year: i32,
    month: u32,
}

impl YearMonth {
    /// The month `at` falls in (UTC).
    pub fn of(at: DateTime<Utc>) -> Self {
        Self {
            year: at.year(),
            month: at.month(),
        }
    }

    /// The month `month` (1–12) of `year`.
    ///
    /// # Errors
    /// When `month` is not 1 to 12.
    pub fn new(year: i32, month: u32) -> Result<Self, InvalidValue> {
        if (1..=12).contains(&month) {
            Ok(Self { year, month })
        } else {
            Err(InvalidValue::new("a month is 1 to 12"))
        }
    }

    /// The year.
    pub fn year(&self) -> i32 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(&self) -> u32 {
        self.month
    }

    /// The month after this one.
    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Midnight (UTC) of the month's first day; `None` outside chrono's range.
    pub fn start(self) -> Option<DateTime<Utc>> {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
    }
}

impl std::fmt::Display for YearMonth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Parses where a period starts: a date `YYYY-MM-DD` (that day's midnight, UTC)
/// or an RFC 3339 instant.
///
/// # Errors
/// When `raw` is neither.
pub fn parse_period_start(raw: &str) -> Result<DateTime<Utc>, InvalidValue> {
    parse_bound(raw, |day| day)
}

/// Parses where a period ends: a date `YYYY-MM-DD` includes that whole day (the
/// period ends at the next midnight, UTC); an RFC 3339 instant is itself the
/// first instant not covered.
///
/// # Errors
/// When `raw` is neither.
pub fn parse_period_end(raw: &str) -> Result<DateTime<Utc>, InvalidValue> {
    parse_bound(raw, |day| day.succ_opt().unwrap_or(day))
}

fn parse_bound(
    raw: &str,
    day_to_start: impl FnOnce(NaiveDate) -> NaiveDate,
) -> Result<DateTime<Utc>, InvalidValue> {
    let invalid = || {
        InvalidValue::new(
            "must be a date like 2026-01-31 or an RFC 3339 timestamp like 2026-01-31T09:00:00Z",
        )
    };
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return day_to_start(day)
            .and_hms_opt(0, 0, 0)
            .map(|midnight| midnight.and_utc())
            .ok_or_else(invalid);
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| invalid())
}

/// The twelve calendar months up to and including the one `to` falls in: where
/// the monthly report starts when no `from` is given.
pub(crate) fn twelve_months_before(to: DateTime<Utc>) -> DateTime<Utc> {
    let last = YearMonth::of(to - TimeDelta::microseconds(1));
    last.start()
        .and_then(|start| start.checked_sub_months(Months::new(11)))
        .unwrap_or(to)
}

/// How many a ranked report lists (customers, or principals with their hours):
/// 1 to 200, 10 unless asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLimit(u16);

impl ReportLimit {
    /// The most a report lists.
    pub const MAX: u16 = 200;

    /// Parses a limit.
    ///
    /// # Errors
    /// When `raw` is not 1 to 200.
    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        u16::try_from(raw)
            .ok()
            .filter(|n| (1..=Self::MAX).contains(n))
            .map(Self)
            .ok_or_else(|| InvalidValue::new("limit must be 1 to 200"))
    }

    /// The limit.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl Default for ReportLimit {
    fn default() -> Self {
        Self(10)
    }
}

/// What the top-customers report ranks by. Ties go to the other figure, then to
/// the customer id, so the order is always the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CustomerRanking {
    /// Money spent (the default).
    #[default]
    Spend,
    /// Number of orders.
    Orders,
}

impl CustomerRanking {
    /// Parses `spend` or `orders`.
    ///
    /// # Errors
    /// For anything else.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw {
            "spend" => Ok(Self::Spend),
            "orders" => Ok(Self::Orders),
            _ => Err(InvalidValue::new("by must be spend or orders")),
        }
    }
}

/// A report on sales: the rows, and the period and currency they cover.
#[derive(Debug, Clone, PartialEq)]
pub struct SalesReport<T> {
    /// The period covered.
    pub period: ReportPeriod,
    /// The only currency whose orders were counted.
    pub currency: Currency,
    /// The report itself.
    pub rows: T,
}

/// One customer's purchases in a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSales {
    /// The customer.
    pub customer_id: CustomerId,
    /// Their name now.
    pub name: String,
    /// Their city now, trimmed.
    pub city: String,
    /// Orders counted.
    pub orders: i64,
    /// The orders' totals added up, in minor units.
    pub spend_minor: i64,
}

/// What one city bought of one product in a period. Cities are the customers'
/// cities compared case-insensitively and without surrounding spaces; `city` is the
/// spelling most customers of that city use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitySales {
    /// The city.
    pub city: String,
    /// The product.
    pub product_id: ProductId,
    /// Its SKU now.
    pub sku: String,
    /// Its name now.
    pub name: String,
    /// Units sold.
    pub quantity: i64,
    /// What they sold for (quantity × unit price of each line), in minor units.
    pub revenue_minor: i64,
}

/// A product whose stock is tracked, as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLine {
    /// The product.
    pub product_id: ProductId,
    /// Its SKU.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Units on hand and free to sell.
    pub stock: i64,
    /// Units taken from stock by orders awaiting payment: not sold yet, and back
    /// in stock if the payment fails.
    pub reserved: i64,
    /// Units sold in the 30 days up to the report.
    pub sold_30d: i64,
    /// Whether stock is at or below the product's low-stock threshold.
    pub low_stock: bool,
}

/// The stock report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockReport {
    /// The start of the 30 days `sold_30d` counts.
    pub sold_since: DateTime<Utc>,
    /// When the report was made.
    pub as_of: DateTime<Utc>,
    /// One line per tracked product, by SKU.
    pub lines: Vec<StockLine>,
}

/// Sales of one calendar month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthSales {
    /// The month.
    pub month: YearMonth,
    /// Units sold.
    pub units: i64,
    /// What they sold for, in minor units.
    pub revenue_minor: i64,
}

/// Units of one product sold in a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductUnits {
    /// The product.
    pub product_id: ProductId,
    /// Its SKU now.
    pub sku: String,
    /// Units sold.
    pub units: i64,
}

/// Sales per month as storage reads them: every month of the period, months
/// without a sale included, and the units of each product sold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MonthlySales {
    /// Every month of the period, in order.
    pub months: Vec<MonthSales>,
    /// Each product sold in the period.
    pub products: Vec<ProductUnits>,
}

/// A product's average units sold per month of a period.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductAverage {
    /// The product.
    pub product_id: ProductId,
    /// Its SKU now.
    pub sku: String,
    /// Units sold ÷ months of the period, to two decimals.
    pub avg_units_per_month: f64,
}

/// The monthly sales report.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthlySalesReport {
    /// Every month of the period, months without a sale included.
    pub months: Vec<MonthSales>,
    /// All units sold ÷ months of the period, to two decimals.
    pub average_units_per_month: f64,
    /// Each product sold, most units first (ties by SKU).
    pub by_product: Vec<ProductAverage>,
}

/// One principal's requests in one hour, from the hourly activity counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalHour {
    /// The user or API client.
    pub principal: HitPrincipal,
    /// Who that is: an API client's name, a user's e-mail address (users have no
    /// other name); `None` once the principal was deleted (its counts stay).
    pub name: Option<String>,
    /// The start of the hour (UTC).
    pub hour: DateTime<Utc>,
    /// Requests made in that hour.
    pub requests: i64,
}

/// The requests-per-hour report: the busiest principals of a period, each with
/// every hour (starting within the period) in which it made requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestsPerHourReport {
    /// The period covered: the hours that start within it.
    pub period: ReportPeriod,
    /// The busiest principal's hours first, in order, then the next one's; hours
    /// without requests are left out.
    pub rows: Vec<PrincipalHour>,
}

/// `units` spread over `months`, to two decimals; 0 over no months.
pub fn average_per_month(units: i64, months: usize) -> f64 {
    if months == 0 {
        return 0.0;
    }
    // Units stay far below 2⁵³, where f64 holds every integer exactly.
    let average = units as f64 / months as f64;
    (average * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw)
            .expect("an instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_date_starts_at_its_midnight_and_ends_after_its_last_instant() {
        assert_eq!(
            parse_period_start("2026-03-01"),
            Ok(at("2026-03-01T00:00:00Z"))
        );
        assert_eq!(
            parse_period_end("2026-03-31"),
            Ok(at("2026-04-01T00:00:00Z"))
        );
        assert_eq!(
            parse_period_end("2026-03-31T12:00:00+02:00"),
            Ok(at("2026-03-31T10:00:00Z"))
        );
        assert!(parse_period_start("March").is_err());
        assert!(parse_period_start("2026-02-30").is_err());
    }

    #[test]
    fn a_period_may_be_empty_but_never_reversed_or_longer_than_ten_years() {
        let start = at("2026-01-01T00:00:00Z");
        assert!(ReportPeriod::new(start, start).is_ok());
        assert!(ReportPeriod::new(start, start - TimeDelta::seconds(1)).is_err());
        assert!(ReportPeriod::new(start, at("2036-01-01T00:00:00Z")).is_ok());
        assert!(ReportPeriod::new(start, at("2036-01-10T00:00:00Z")).is_err());
    }

    #[test]
    fn a_period_touches_every_month_between_its_ends_and_no_more() {
        let period = ReportPeriod::new(at("2025-11-15T00:00:00Z"), at("2026-02-01T00:00:00Z"))
            .expect("a period");
        let months: Vec<String> = period.months().iter().map(ToString::to_string).collect();
        assert_eq!(months, ["2025-11", "2025-12", "2026-01"]);
        let empty = ReportPeriod::new(period.from(), period.from()).expect("a period");
        assert!(empty.months().is_empty());
    }

    #[test]
    fn twelve_months_end_with_the_month_of_the_last_covered_instant() {
        assert_eq!(
            twelve_months_before(at("2026-05-10T08:00:00Z")),
            at("2025-06-01T00:00:00Z")
        );
        // `to` at a month's first instant covers nothing of that month.
        assert_eq!(
            twelve_months_before(at("2026-05-01T00:00:00Z")),
            at("2025-05-01T00:00:00Z")
        );
    }

    #[test]
    fn limits_are_one_to_two_hundred_and_rankings_spend_or_orders() {
        assert_eq!(ReportLimit::default().get(), 10);
        assert_eq!(ReportLimit::parse(200).map(ReportLimit::get), Ok(200));
        assert!(ReportLimit::parse(0).is_err());
        assert!(ReportLimit::parse(201).is_err());
        assert_eq!(
            CustomerRanking::parse("orders"),
            Ok(CustomerRanking::Orders)
        );
        assert!(CustomerRanking::parse("Spend").is_err());
    }

    #[test]
    fn averages_are_rounded_to_two_decimals_and_zero_over_no_months() {
        assert_eq!(average_per_month(10, 3), 3.33);
        assert_eq!(average_per_month(2, 3), 0.67);
        assert_eq!(average_per_month(12, 12), 1.0);
        assert_eq!(average_per_month(5, 0), 0.0);
    }
}
