use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    CitySales, CustomerRanking, CustomerSales, MonthlySales, PrincipalHour, ReportLimit,
    ReportPeriod, StockLine,
};
use crate::money::Currency;

/// The queries behind the reports. Every figure of sales counts only orders that
/// [count as a sale](crate::orders::OrderStatus::counts_as_sale), scheduled within
/// the period and in `currency`; each order and each line is counted once.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ReportQueries: Send + Sync {
    /// The `limit` customers with the most purchases by `ranking`; ties go to the
    /// other figure, then to the lower customer id.
    ///
    /// # Errors
    /// When storage fails.
    async fn top_customers(
        &self,
        period: ReportPeriod,
        currency: Currency,
        ranking: CustomerRanking,
        limit: ReportLimit,
    ) -> anyhow::Result<Vec<CustomerSales>>;

    /// Units and revenue per city (case-insensitive, trimmed) and product, by city
    /// then most units first, then SKU.
    ///
    /// # Errors
    /// When storage fails.
    async fn sales_by_city(
        &self,
        period: ReportPeriod,
        currency: Currency,
    ) -> anyhow::Result<Vec<CitySales>>;

    /// Every product whose stock is tracked, by SKU, with the units sold from
    /// `sold_since` up to `as_of`.
    ///
    /// # Errors
    /// When storage fails.
    async fn stock(
        &self,
        sold_since: DateTime<Utc>,
        as_of: DateTime<Utc>,
    ) -> anyhow::Result<Vec<StockLine>>;

    /// Units and revenue of every month of `period` (months without a sale
    /// included, as zeros), and the units of each product sold in it.
    ///
    /// # Errors
    /// When storage fails.
    async fn monthly_sales(
        &self,
        period: ReportPeriod,
        currency: Currency,
    ) -> anyhow::Result<MonthlySales>;

    /// The `limit` principals (users and API clients) with the most requests in
    /// the hours starting within `period` (ties by kind, then id), each with its
    /// hourly counts there: the busiest principal's hours first, in order. Read
    /// from the hourly counts, never from the raw hits.
    ///
    /// # Errors
    /// When storage fails.
    async fn requests_per_hour(
        &self,
        period: ReportPeriod,
        limit: ReportLimit,
    ) -> anyhow::Result<Vec<PrincipalHour>>;
}

/// The daily sales rollup that the sales reports read for the days whose sales
/// did not change since it was last rebuilt (the others they compute from the
/// orders, so a report is exact however stale the rollup is).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SalesRollup: Send + Sync + std::fmt::Debug {
    /// Rebuilds every day whose sales changed since it was rolled up, each day in
    /// its own short transaction; returns how many days were rebuilt. A change
    /// committed while a day is rebuilt leaves that day to the next run.
    ///
    /// # Errors
    /// When storage fails; the days rebuilt before stay rebuilt.
    async fn roll_up_changed_days(&self) -> anyhow::Result<u64>;
}
