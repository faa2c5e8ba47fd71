//! Reports: what sold, to whom, where, and what is left.
//!
//! Every report reads sales as the orders that [count as a sale](crate::orders::OrderStatus::counts_as_sale)
//! (paid, or placed through `/v1/orders`; cancelled ones never), scheduled within a
//! [`ReportPeriod`] and in one currency, so that money of different currencies is
//! never added up. The stock report is the catalog's state now, with the units
//! sold in the last 30 days. Requests per hour come from the activity's hourly
//! counts per principal, never from the raw hits.

mod error;
mod model;
mod ports;
mod service;

pub use error::ReportError;
pub use model::{
    CitySales, CustomerRanking, CustomerSales, MonthSales, MonthlySales, MonthlySalesReport,
    PrincipalHour, ProductAverage, ProductUnits, ReportLimit, ReportPeriod, RequestsPerHourReport,
    SalesReport, StockLine, StockReport, YearMonth, average_per_month, parse_period_end,
    parse_period_start,
};
#[cfg(any(test, feature = "mocks"))]
pub use ports::{MockReportQueries, MockSalesRollup};
pub use ports::{ReportQueries, SalesRollup};
pub use service::{ReportRequest, ReportService};
