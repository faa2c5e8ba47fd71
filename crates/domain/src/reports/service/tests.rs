use std::sync::Arc;

use chrono::{DateTime, Utc};
use mockall::predicate::eq;

use super::*;
use crate::activity::{HitPrincipal, PrincipalKind};
use crate::catalog::ProductId;
use crate::clock::MockClock;
use crate::reports::{
    MockReportQueries, MonthSales, MonthlySales, PrincipalHour, ProductUnits, YearMonth,
};

fn at(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw)
        .expect("an instant")
        .with_timezone(&Utc)
}

fn eur() -> Currency {
    Currency::parse("EUR").expect("a currency")
}

fn service_at(now: &str, queries: MockReportQueries) -> ReportService {
    let now = at(now);
    let mut clock = MockClock::new();
    clock.expect_now().return_const(now);
    ReportService::new(Arc::new(queries), Arc::new(clock), eur())
}

#[tokio::test]
async fn without_from_and_to_a_report_covers_the_last_thirty_days_in_the_default_currency() {
    let mut queries = MockReportQueries::new();
    let expected = ReportPeriod::new(at("2026-04-01T12:00:00Z"), at("2026-05-01T12:00:00Z"))
        .expect("a period");
    queries
        .expect_top_customers()
        .with(
            eq(expected),
            eq(eur()),
            eq(CustomerRanking::Spend),
            eq(ReportLimit::default()),
        )
        .times(1)
        .returning(|_, _, _, _| Ok(Vec::new()));
    let service = service_at("2026-05-01T12:00:00Z", queries);

    let report = service
        .top_customers(
            ReportRequest::default(),
            CustomerRanking::Spend,
            ReportLimit::default(),
        )
        .await
        .expect("a report");

    assert_eq!(report.period, expected);
    assert_eq!(report.currency, eur());
}

#[tokio::test]
async fn a_from_after_to_is_refused_without_asking_storage() {
    let service = service_at("2026-05-01T12:00:00Z", MockReportQueries::new());

    let refused = service
        .sales_by_city(ReportRequest {
            from: Some(at("2026-03-02T00:00:00Z")),
            to: Some(at("2026-03-01T00:00:00Z")),
            currency: None,
        })
        .await;

    assert!(
        matches!(refused, Err(ReportError::Invalid { field: "from", .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_from_in_the_future_without_to_is_refused() {
    let service = service_at("2026-05-01T12:00:00Z", MockReportQueries::new());

    let refused = service
        .monthly_sales(ReportRequest {
            from: Some(at("2026-06-01T00:00:00Z")),
            ..ReportRequest::default()
        })
        .await;

    assert!(matches!(refused, Err(ReportError::Invalid { .. })));
}

#[tokio::test]
async fn the_monthly_report_defaults_to_twelve_calendar_months() {
    let mut queries = MockReportQueries::new();
    let expected = ReportPeriod::new(at("2025-06-01T00:00:00Z"), at("2026-05-20T08:00:00Z"))
        .expect("a period");
    queries
        .expect_monthly_sales()
        .with(eq(expected), eq(eur()))
        .times(1)
        .returning(|_, _| Ok(MonthlySales::default()));
    let service = service_at("2026-05-20T08:00:00Z", queries);

    let report = service
        .monthly_sales(ReportRequest::default())
        .await
        .expect("a report");

    assert_eq!(report.period.months().len(), 12);
}

#[tokio::test]
async fn averages_divide_by_every_month_of_the_period_including_months_without_sales() {
    let product = |n: u128, sku: &str, units| ProductUnits {
        product_id: ProductId::from_uuid(uuid::Uuid::from_u128(n)),
        sku: sku.to_owned(),
        units,
    };
    let month = |m, units| MonthSales {
        month: YearMonth::new(2026, m).expect("a month"),
        units,
        revenue_minor: units * 100,
    };
    let mut queries = MockReportQueries::new();
    // Three months, the middle one without a sale; 10 units in all.
    queries.expect_monthly_sales().returning(move |_, _| {
        Ok(MonthlySales {
            months: vec![month(1, 4), month(2, 0), month(3, 6)],
            products: vec![product(1, "B", 2), product(2, "A", 2), product(3, "C", 6)],
        })
    });
    let service = service_at("2026-05-01T00:00:00Z", queries);

    let report = service
        .monthly_sales(ReportRequest {
            from: Some(at("2026-01-01T00:00:00Z")),
            to: Some(at("2026-04-01T00:00:00Z")),
            currency: None,
        })
        .await
        .expect("a report")
        .rows;

    assert_eq!(report.average_units_per_month, 3.33);
    let by_product: Vec<(&str, f64)> = report
        .by_product
        .iter()
        .map(|p| (p.sku.as_str(), p.avg_units_per_month))
        .collect();
    // Most units first; equal units by SKU.
    assert_eq!(by_product, [("C", 2.0), ("A", 0.67), ("B", 0.67)]);
    assert_eq!(report.months.len(), 3);
}

#[tokio::test]
async fn the_stock_report_counts_sales_of_the_thirty_days_up_to_now() {
    let mut queries = MockReportQueries::new();
    queries
        .expect_stock()
        .with(
            eq(at("2026-04-01T12:00:00Z")),
            eq(at("2026-05-01T12:00:00Z")),
        )
        .times(1)
        .returning(|_, _| Ok(Vec::new()));
    let service = service_at("2026-05-01T12:00:00Z", queries);

    let report = service.stock().await.expect("a report");

    assert_eq!(report.as_of, at("2026-05-01T12:00:00Z"));
    assert!(report.lines.is_empty());
}

#[tokio::test]
async fn a_storage_failure_is_unexpected() {
    let mut queries = MockReportQueries::new();
    queries
        .expect_sales_by_city()
        .returning(|_, _| Err(anyhow::anyhow!("connection lost")));
    let service = service_at("2026-05-01T12:00:00Z", queries);

    let failed = service.sales_by_city(ReportRequest::default()).await;

    assert!(matches!(failed, Err(ReportError::Unexpected(_))));
}

#[tokio::test]
async fn requests_per_hour_cover_the_last_thirty_days_unless_asked_and_pass_the_limit() {
    let mut queries = MockReportQueries::new();
    let expected = ReportPeriod::new(at("2026-04-01T12:00:00Z"), at("2026-05-01T12:00:00Z"))
        .expect("a period");
    let limit = ReportLimit::parse(3).expect("a limit");
    let row = PrincipalHour {
        principal: HitPrincipal::new(PrincipalKind::User, uuid::Uuid::from_u128(7)),
        name: Some("ada@example.com".to_owned()),
        hour: at("2026-04-30T09:00:00Z"),
        requests: 12,
    };
    let returned = row.clone();
    queries
        .expect_requests_per_hour()
        .with(eq(expected), eq(limit))
        .times(1)
        .returning(move |_, _| Ok(vec![returned.clone()]));
    let service = service_at("2026-05-01T12:00:00Z", queries);

    let report = service
        .requests_per_hour(ReportRequest::default(), limit)
        .await
        .expect("a report");

    assert_eq!(report.period, expected);
    assert_eq!(report.rows, [row]);
}

#[tokio::test]
async fn requests_per_hour_of_a_reversed_period_are_refused_without_asking_storage() {
    let service = service_at("2026-05-01T12:00:00Z", MockReportQueries::new());

    let refused = service
        .requests_per_hour(
            ReportRequest {
                from: Some(at("2026-03-02T00:00:00Z")),
                to: Some(at("2026-03-01T00:00:00Z")),
                currency: None,
            },
            ReportLimit::default(),
        )
        .await;

    assert!(
        matches!(refused, Err(ReportError::Invalid { field: "from", .. })),
        "{refused:?}"
    );
}
