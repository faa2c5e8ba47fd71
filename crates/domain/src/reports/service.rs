use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::model::twelve_months_before;
use super::{
    CitySales, CustomerRanking, CustomerSales, MonthlySalesReport, ProductAverage, ReportError,
    ReportLimit, ReportPeriod, ReportQueries, RequestsPerHourReport, SalesReport, StockReport,
    average_per_month,
};
use crate::clock::Clock;
use crate::money::Currency;

/// The days a report covers when no `from` is given, and the days `sold_30d` counts.
const RECENT_DAYS: i64 = 30;

/// The period and currency a caller asked for; what is left out takes its default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportRequest {
    /// The first instant covered. Default: 30 days before `to` (the monthly
    /// report: the first day of the eleventh month before `to`'s, so it covers
    /// twelve calendar months).
    pub from: Option<DateTime<Utc>>,
    /// The first instant not covered. Default: now.
    pub to: Option<DateTime<Utc>>,
    /// Only orders in this currency count. Default: the service's default currency.
    pub currency: Option<Currency>,
}

/// How far back a report reaches when the caller gives no `from`.
#[derive(Debug, Clone, Copy)]
enum DefaultStart {
    RecentDays,
    TwelveMonths,
}

/// The reports' use cases.
#[derive(Clone)]
pub struct ReportService {
    queries: Arc<dyn ReportQueries>,
    clock: Arc<dyn Clock>,
    default_currency: Currency,
}

impl std::fmt::Debug for ReportService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportService")
            .field("default_currency", &self.default_currency)
            .finish_non_exhaustive()
    }
}

impl ReportService {
    /// A service over `queries`; reports without a currency cover `default_currency`.
    pub fn new(
        queries: Arc<dyn ReportQueries>,
        clock: Arc<dyn Clock>,
        default_currency: Currency,
    ) -> Self {
        Self {
            queries,
            clock,
            default_currency,
        }
    }

    /// The customers with the most purchases.
    ///
    /// # Errors
    /// `Invalid` for a reversed or too long period.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn top_customers(
        &self,
        request: ReportRequest,
        ranking: CustomerRanking,
        limit: ReportLimit,
    ) -> Result<SalesReport<Vec<CustomerSales>>, ReportError> {
        let (period, currency) = self.resolve(request, DefaultStart::RecentDays)?;
        let rows = self
            .queries
            .top_customers(period, currency, ranking, limit)
            .await?;
        Ok(SalesReport {
            period,
            currency,
            rows,
        })
    }

    /// What each city bought of each product.
    ///
    /// # Errors
    /// `Invalid` for a reversed or too long period.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn sales_by_city(
        &self,
        request: ReportRequest,
    ) -> Result<SalesReport<Vec<CitySales>>, ReportError> {
        let (period, currency) = self.resolve(request, DefaultStart::RecentDays)?;
        let rows = self.queries.sales_by_city(period, currency).await?;
        Ok(SalesReport {
            period,
            currency,
            rows,
        })
    }

    /// Stock now, with the units sold in the last 30 days.
    ///
    /// # Errors
    /// When storage fails.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn stock(&self) -> Result<StockReport, ReportError> {
        let as_of = self.clock.now();
        let sold_since = as_of - TimeDelta::days(RECENT_DAYS);
        let lines = self.queries.stock(sold_since, as_of).await?;
        Ok(StockReport {
            sold_since,
            as_of,
            lines,
        })
    }

    /// Sales per month, and the average units sold per month: divided by every
    /// month of the period, months without a sale included.
    ///
    /// # Errors
    /// `Invalid` for a reversed or too long period.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn monthly_sales(
        &self,
        request: ReportRequest,
    ) -> Result<SalesReport<MonthlySalesReport>, ReportError> {
        let (period, currency) = self.resolve(request, DefaultStart::TwelveMonths)?;
        let sales = self.queries.monthly_sales(period, currency).await?;
        // The divisor is the period's months as the domain counts them, whatever
        // storage returned: a month storage left out still divides.
        let months = period.months().len();
        let total: i64 = sales.months.iter().map(|m| m.units).sum();
        let mut products = sales.products;
        products.sort_by(|a, b| b.units.cmp(&a.units).then_with(|| a.sku.cmp(&b.sku)));
        let by_product = products
            .into_iter()
            .map(|p| ProductAverage {
                product_id: p.product_id,
                sku: p.sku,
                avg_units_per_month: average_per_month(p.units, months),
            })
            .collect();
        Ok(SalesReport {
            period,
            currency,
            rows: MonthlySalesReport {
                months: sales.months,
                average_units_per_month: average_per_month(total, months),
                by_product,
            },
        })
    }

    /// Requests per principal (user or API client) per hour: the `limit` busiest
    /// principals of the period, each with its hours. The period's currency, if
    /// any, plays no part.
    ///
    /// # Errors
    /// `Invalid` for a reversed or too long period.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn requests_per_hour(
        &self,
        request: ReportRequest,
        limit: ReportLimit,
    ) -> Result<RequestsPerHourReport, ReportError> {
        let (period, _) = self.resolve(request, DefaultStart::RecentDays)?;
        let rows = self.queries.requests_per_hour(period, limit).await?;
        Ok(RequestsPerHourReport { period, rows })
    }

    fn resolve(
        &self,
        request: ReportRequest,
        default_start: DefaultStart,
    ) -> Result<(ReportPeriod, Currency), ReportError> {
        let to = request.to.unwrap_or_else(|| self.clock.now());
        let from = request.from.unwrap_or_else(|| match default_start {
            DefaultStart::RecentDays => to - TimeDelta::days(RECENT_DAYS),
            DefaultStart::TwelveMonths => twelve_months_before(to),
        });
        let period = ReportPeriod::new(from, to).map_err(|e| ReportError::Invalid {
            field: if request.from.is_some() { "from" } else { "to" },
            message: e.message().to_owned(),
        })?;
        Ok((period, request.currency.unwrap_or(self.default_currency)))
    }
}

#[cfg(test)]
mod tests;
