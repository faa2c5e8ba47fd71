//! `/v1/reports`: JSON, or CSV with `Accept: text/csv`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, Utc};
use ordo_domain::Currency;
use ordo_domain::InvalidValue;
use ordo_domain::reports::{
    CitySales, CustomerRanking, CustomerSales, MonthSales, PrincipalHour, ProductAverage,
    ReportLimit, ReportRequest, SalesReport, StockLine, parse_period_end, parse_period_start,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::extract::{CheckAll, Checked, Staff, optional};
use crate::problem::ApiError;
use crate::state::AppState;

pub(super) fn routes(config: &mut ServiceConfig) {
    config
        .service(top_customers)
        .service(sales_by_city)
        .service(stock)
        .service(monthly_sales)
        .service(requests_per_hour);
}

/// The period and currency of a sales report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// The first day (`YYYY-MM-DD`, from its midnight UTC) or instant (RFC 3339)
    /// covered, on the orders' `scheduled_at`. Default: 30 days before `to`
    /// (monthly sales: the first day of the month eleven months before `to`'s).
    #[param(value_type = Option<String>)]
    pub from: Option<String>,
    /// The last day covered (`YYYY-MM-DD`, up to its end), or the first instant
    /// not covered (RFC 3339). Default: now. Not before `from`; at most 3660 days
    /// after it.
    #[param(value_type = Option<String>)]
    pub to: Option<String>,
    /// Only orders in this currency count. Default: `ORDO_DEFAULT_CURRENCY`.
    #[param(schema_with = crate::openapi::currency_or_null)]
    pub currency: Option<String>,
}

impl PeriodQuery {
    fn parse(&self) -> Checked<ReportRequest> {
        let from = optional("from", self.from.as_deref(), parse_period_start);
        let to = optional("to", self.to.as_deref(), parse_period_end);
        let currency = optional("currency", self.currency.as_deref(), Currency::parse);
        match (from, to, currency) {
            (Ok(from), Ok(to), Ok(currency)) => Ok(ReportRequest { from, to, currency }),
            (from, to, currency) => Err(from
                .err()
                .into_iter()
                .chain(to.err())
                .chain(currency.err())
                .flatten()
                .collect()),
        }
    }
}

fn parse_limit(raw: &str) -> Result<ReportLimit, InvalidValue> {
    raw.parse::<i64>()
        .map_err(|_| InvalidValue::new("limit must be a whole number"))
        .and_then(ReportLimit::parse)
}

/// `?from=&to=&limit=` of the requests-per-hour report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HoursQuery {
    /// The first day (`YYYY-MM-DD`, from its midnight UTC) or instant (RFC 3339)
    /// covered: the hours that start at or after it count. Default: 30 days
    /// before `to`.
    #[param(value_type = Option<String>)]
    pub from: Option<String>,
    /// The last day covered (`YYYY-MM-DD`, up to its end), or the first instant
    /// not covered (RFC 3339): the hours that start before it count. Default: now.
    /// Not before `from`; at most 3660 days after it.
    #[param(value_type = Option<String>)]
    pub to: Option<String>,
    /// Principals listed (the busiest first), 1–200 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
}

/// `?limit=&by=` of the top-customers report, beside its period.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RankingQuery {
    /// Customers listed, 1–200 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Rank by money spent (`spend`, the default) or by number of orders (`orders`).
    #[param(value_type = Option<RankingName>)]
    pub by: Option<String>,
}

/// What the top-customers report ranks by.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum RankingName {
    /// Money spent.
    Spend,
    /// Number of orders.
    Orders,
}

/// The period and currency a sales report covers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Coverage {
    /// The first instant covered.
    from: DateTime<Utc>,
    /// The first instant not covered.
    to: DateTime<Utc>,
    /// The only currency whose orders count.
    #[schema(schema_with = crate::openapi::currency)]
    currency: String,
}

impl Coverage {
    fn of<T>(report: &SalesReport<T>) -> Self {
        Self {
            from: report.period.from(),
            to: report.period.to(),
            currency: report.currency.to_string(),
        }
    }
}

/// The rows of a sales report, in the report's order, with the period and
/// currency they cover.
#[derive(Debug, Serialize, ToSchema)]
pub struct CoveredRows<T: ToSchema> {
    #[serde(flatten)]
    coverage: Coverage,
    items: Vec<T>,
}

impl<T: ToSchema + Serialize> CoveredRows<T> {
    /// `report`'s rows as views, as JSON or CSV as `req` asks.
    fn respond<D>(req: &HttpRequest, report: SalesReport<Vec<D>>) -> Result<HttpResponse, ApiError>
    where
        T: From<D>,
    {
        let document = Self {
            coverage: Coverage::of(&report),
            items: report.rows.into_iter().map(Into::into).collect(),
        };
        respond(req, &document, &document.items)
    }
}

/// One customer's purchases.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerSalesView {
    customer_id: Uuid,
    name: String,
    /// The customer's city, trimmed.
    city: String,
    /// Orders counted.
    orders: i64,
    /// Their totals added up, in minor units of `currency`.
    spend_minor: i64,
}

impl From<CustomerSales> for CustomerSalesView {
    fn from(r: CustomerSales) -> Self {
        Self {
            customer_id: r.customer_id.as_uuid(),
            name: r.name,
            city: r.city,
            orders: r.orders,
            spend_minor: r.spend_minor,
        }
    }
}

/// What one city bought of one product.
#[derive(Debug, Serialize, ToSchema)]
pub struct CitySalesView {
    /// The city, as most of its customers spell it; spellings that differ only in
    /// case or surrounding spaces are one city.
    city: String,
    product_id: Uuid,
    sku: String,
    name: String,
    /// Units sold.
    quantity: i64,
    /// Units × unit price of each line, in minor units of `currency`.
    revenue_minor: i64,
}

impl From<CitySales> for CitySalesView {
    fn from(r: CitySales) -> Self {
        Self {
            city: r.city,
            product_id: r.product_id.as_uuid(),
            sku: r.sku,
            name: r.name,
            quantity: r.quantity,
            revenue_minor: r.revenue_minor,
        }
    }
}

/// A product whose stock is tracked.
#[derive(Debug, Serialize, ToSchema)]
pub struct StockLineView {
    product_id: Uuid,
    sku: String,
    name: String,
    /// Units free to sell.
    stock: i64,
    /// Units taken by orders awaiting payment.
    reserved: i64,
    /// Units sold in the last 30 days.
    sold_30d: i64,
    /// Whether `stock` is at or below the product's low-stock threshold.
    low_stock: bool,
}

impl From<StockLine> for StockLineView {
    fn from(r: StockLine) -> Self {
        Self {
            product_id: r.product_id.as_uuid(),
            sku: r.sku,
            name: r.name,
            stock: r.stock,
            reserved: r.reserved,
            sold_30d: r.sold_30d,
            low_stock: r.low_stock,
        }
    }
}

/// Stock now.
#[derive(Debug, Serialize, ToSchema)]
pub struct StockReportView {
    /// When the report was made.
    as_of: DateTime<Utc>,
    /// The start of the 30 days `sold_30d` counts.
    sold_since: DateTime<Utc>,
    /// By SKU.
    items: Vec<StockLineView>,
}

/// Sales of one month.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthSalesView {
    /// `YYYY-MM`.
    #[schema(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
    month: String,
    units: i64,
    /// In minor units of `currency`.
    revenue_minor: i64,
}

impl From<MonthSales> for MonthSalesView {
    fn from(m: MonthSales) -> Self {
        Self {
            month: m.month.to_string(),
            units: m.units,
            revenue_minor: m.revenue_minor,
        }
    }
}

/// A product's average units sold per month.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductAverageView {
    product_id: Uuid,
    sku: String,
    /// Units sold ÷ months of the period, to two decimals.
    avg_units_per_month: f64,
}

impl From<ProductAverage> for ProductAverageView {
    fn from(p: ProductAverage) -> Self {
        Self {
            product_id: p.product_id.as_uuid(),
            sku: p.sku,
            avg_units_per_month: p.avg_units_per_month,
        }
    }
}

/// Sales per month.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthlySalesReportView {
    #[serde(flatten)]
    coverage: Coverage,
    /// Every calendar month the period touches, months without a sale included.
    months: Vec<MonthSalesView>,
    /// All units sold ÷ `months.len()`, to two decimals.
    average_units_per_month: f64,
    /// Each product sold, most units first.
    by_product: Vec<ProductAverageView>,
}

/// One principal's requests in one hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrincipalHourView {
    principal_id: Uuid,
    /// `user` or `client`.
    #[schema(pattern = "^(user|client)$")]
    principal_kind: &'static str,
    /// An API client's name, a user's e-mail address; null once the principal
    /// was deleted.
    name: Option<String>,
    /// The start of the hour (UTC).
    hour: DateTime<Utc>,
    /// Requests made in that hour.
    requests: i64,
}

impl From<PrincipalHour> for PrincipalHourView {
    fn from(r: PrincipalHour) -> Self {
        Self {
            principal_id: r.principal.id(),
            principal_kind: r.principal.kind().as_str(),
            name: r.name,
            hour: r.hour,
            requests: r.requests,
        }
    }
}

/// Requests per principal per hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestsPerHourView {
    /// The first instant covered.
    from: DateTime<Utc>,
    /// The first instant not covered.
    to: DateTime<Utc>,
    /// The busiest principal's hours first, in order, then the next one's; hours
    /// without requests are left out.
    items: Vec<PrincipalHourView>,
}

/// Whether the caller prefers CSV: `text/csv` (or `text/*`) ranked before any
/// JSON the `Accept` header admits. Anything else gets JSON.
fn wants_csv(req: &HttpRequest) -> bool {
    let Ok(accept) = <header::Accept as header::Header>::parse(req) else {
        return false;
    };
    accept
        .ranked()
        .into_iter()
        .find_map(
            |mime| match (mime.type_().as_str(), mime.subtype().as_str()) {
                ("text", "csv" | "*") => Some(true),
                ("application", "json" | "*") | ("*", "*") => Some(false),
                _ => None,
            },
        )
        .unwrap_or(false)
}

/// `document` as JSON, or `rows` as CSV (a header row of the field names, then
/// one record per row, quoted where a value needs it) when the caller asks for it.
fn respond<T: Serialize, R: Serialize>(
    req: &HttpRequest,
    document: &T,
    rows: &[R],
) -> Result<HttpResponse, ApiError> {
    let mut response = HttpResponse::Ok();
    response.insert_header((header::VARY, HeaderValue::from_static("accept")));
    if !wants_csv(req) {
        return Ok(response.json(document));
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer
            .serialize(row)
            .map_err(|e| ApiError::internal(anyhow::Error::new(e).context("writing CSV")))?;
    }
    let body = writer
        .into_inner()
        .map_err(|e| ApiError::internal(anyhow::anyhow!("writing CSV: {e}")))?;
    Ok(response
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .body(body))
}

/// Customers with the most purchases (paid and placed orders of the period in
/// one currency; cancelled never count). Ties go to the other figure, then to
/// the lower customer id. CSV: one row per customer.
#[utoipa::path(tag = "reports", params(PeriodQuery, RankingQuery), responses(
    (status = 200, description = "The report", content(
        (CoveredRows<CustomerSalesView> = "application/json"),
        (String = "text/csv", example = "customer_id,name,city,orders,spend_minor\n0190aaaa-0000-7000-8000-000000000001,\"Ada, \"\"the\"\" Countess\",London,2,24000\n"),
    )),
))]
#[get("/reports/top-customers")]
async fn top_customers(
    _: Staff,
    req: HttpRequest,
    state: web::Data<AppState>,
    period: web::Query<PeriodQuery>,
    ranking: web::Query<RankingQuery>,
) -> Result<HttpResponse, ApiError> {
    let (request, limit, by) = (
        period.parse(),
        optional("limit", ranking.limit.as_deref(), parse_limit),
        optional("by", ranking.by.as_deref(), CustomerRanking::parse),
    )
        .check_all()?;
    let report = state
        .reports
        .top_customers(request, by.unwrap_or_default(), limit.unwrap_or_default())
        .await?;
    CoveredRows::<CustomerSalesView>::respond(&req, report)
}

/// Units and revenue per city and product (paid and placed orders of the period
/// in one currency). Cities are compared trimmed and case-insensitively. CSV: one
/// row per city and product.
#[utoipa::path(tag = "reports", params(PeriodQuery), responses(
    (status = 200, description = "The report", content(
        (CoveredRows<CitySalesView> = "application/json"),
        (String = "text/csv", example = "city,product_id,sku,name,quantity,revenue_minor\nLondon,0190aaaa-0000-7000-8000-000000000002,SVC-CAL,\"Calibration, on site\",3,36000\n"),
    )),
))]
#[get("/reports/sales-by-city")]
async fn sales_by_city(
    _: Staff,
    req: HttpRequest,
    state: web::Data<AppState>,
    period: web::Query<PeriodQuery>,
) -> Result<HttpResponse, ApiError> {
    let (request,) = (period.parse(),).check_all()?;
    let report = state.reports.sales_by_city(request).await?;
    CoveredRows::<CitySalesView>::respond(&req, report)
}

/// Every product whose stock is tracked, as it stands, with the units reserved by
/// orders awaiting payment and the units sold (paid and placed orders) in the
/// last 30 days. CSV: one row per product.
#[utoipa::path(tag = "reports", responses(
    (status = 200, description = "The report", content(
        (StockReportView = "application/json"),
        (String = "text/csv", example = "product_id,sku,name,stock,reserved,sold_30d,low_stock\n0190aaaa-0000-7000-8000-000000000003,GD-FLT,Filter,4,1,12,true\n"),
    )),
))]
#[get("/reports/stock")]
async fn stock(
    _: Staff,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let report = state.reports.stock().await?;
    let document = StockReportView {
        as_of: report.as_of,
        sold_since: report.sold_since,
        items: report.lines.into_iter().map(Into::into).collect(),
    };
    respond(&req, &document, &document.items)
}

/// Units and revenue per calendar month (UTC) of the period, months without a
/// sale included, and the average units sold per month: all units ÷ every month
/// the period touches. Default period: twelve calendar months up to now. CSV: one
/// row per month.
#[utoipa::path(tag = "reports", params(PeriodQuery), responses(
    (status = 200, description = "The report", content(
        (MonthlySalesReportView = "application/json"),
        (String = "text/csv", example = "month,units,revenue_minor\n2026-01,4,8000\n2026-02,0,0\n"),
    )),
))]
#[get("/reports/monthly-sales")]
async fn monthly_sales(
    _: Staff,
    req: HttpRequest,
    state: web::Data<AppState>,
    period: web::Query<PeriodQuery>,
) -> Result<HttpResponse, ApiError> {
    let (request,) = (period.parse(),).check_all()?;
    let report = state.reports.monthly_sales(request).await?;
    let document = MonthlySalesReportView {
        coverage: Coverage::of(&report),
        months: report.rows.months.into_iter().map(Into::into).collect(),
        average_units_per_month: report.rows.average_units_per_month,
        by_product: report.rows.by_product.into_iter().map(Into::into).collect(),
    };
    respond(&req, &document, &document.months)
}

/// Requests per user and API client per hour, from the hourly activity counts:
/// the `limit` principals with the most requests in the hours that start within
/// the period (ties: clients before users, then by id), each with every hour in
/// which it made requests. Default period: the last 30 days. CSV: one row per
/// principal and hour.
#[utoipa::path(tag = "reports", params(HoursQuery), responses(
    (status = 200, description = "The report", content(
        (RequestsPerHourView = "application/json"),
        (String = "text/csv", example = "principal_id,principal_kind,name,hour,requests\n0190aaaa-0000-7000-8000-000000000004,client,\"Shop, \"\"front\"\"\",2026-03-10T09:00:00Z,42\n"),
    )),
))]
#[get("/reports/requests-per-hour")]
async fn requests_per_hour(
    _: Staff,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<HoursQuery>,
) -> Result<HttpResponse, ApiError> {
    let (from, to, limit) = (
        optional("from", query.from.as_deref(), parse_period_start),
        optional("to", query.to.as_deref(), parse_period_end),
        optional("limit", query.limit.as_deref(), parse_limit),
    )
        .check_all()?;
    let report = state
        .reports
        .requests_per_hour(
            ReportRequest {
                from,
                to,
                currency: None,
            },
            limit.unwrap_or_default(),
        )
        .await?;
    let document = RequestsPerHourView {
        from: report.period.from(),
        to: report.period.to(),
        items: report.rows.into_iter().map(Into::into).collect(),
    };
    respond(&req, &document, &document.items)
}
