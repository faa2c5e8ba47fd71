use std::time::Duration;

use chrono::TimeZone;
use mockall::predicate::eq;

use super::*;
use crate::activity::{
    ClientDayCount, MockActivitySink, MockHitStore, MockUsageCache, MockUsageStore, PrincipalKind,
};
use crate::clock::MockClock;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 10, 20, 0).unwrap()
}

fn clock() -> Arc<MockClock> {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(now());
    Arc::new(clock)
}

fn policy() -> ActivityPolicy {
    ActivityPolicy {
        retention: RetentionDays::new(30).unwrap(),
        prepare_days_ahead: 3,
    }
}

fn reporter() -> HitPrincipal {
    HitPrincipal::new(PrincipalKind::Client, Uuid::from_u128(7))
}

fn activity(sink: MockActivitySink, store: MockHitStore) -> ActivityService {
    ActivityService::new(Arc::new(sink), Arc::new(store), clock(), policy())
}

fn reported(endpoint: &str) -> ReportedHit {
    ReportedHit {
        endpoint: endpoint.to_owned(),
        ..ReportedHit::default()
    }
}

#[tokio::test]
async fn a_reported_hit_gets_the_reporter_get_and_now_by_default() {
    let mut sink = MockActivitySink::new();
    sink.expect_accept()
        .withf(|hits| {
            hits.len() == 1
                && hits[0].principal == reporter()
                && hits[0].method == HitMethod::Get
                && hits[0].occurred_at == now()
                && hits[0].endpoint.as_str() == "/v1/orders"
                && hits[0].source == HitSource::Reported
        })
        .times(1)
        .returning(|_| Ok(()));

    let accepted = activity(sink, MockHitStore::new())
        .report(reporter(), vec![reported(" /v1/orders ")])
        .await
        .expect("accepted");

    assert_eq!(accepted, 1);
}

#[tokio::test]
async fn a_request_with_no_hit_or_more_than_1000_is_refused_before_the_sink() {
    let service = activity(MockActivitySink::new(), MockHitStore::new());

    let none = service.report(reporter(), vec![]).await;
    let too_many = service.report(reporter(), vec![reported("/x"); 1001]).await;

    assert!(matches!(
        none,
        Err(RecordHitsError::BadCount { given: 0, .. })
    ));
    assert!(matches!(
        too_many,
        Err(RecordHitsError::BadCount {
            given: 1001,
            max: 1000
        })
    ));
}

#[tokio::test]
async fn every_invalid_hit_is_named_by_index_and_nothing_is_accepted() {
    let service = activity(MockActivitySink::new(), MockHitStore::new());
    let hits = vec![
        reported("/fine"),
        ReportedHit {
            status: Some(700),
            ..reported("/bad-status")
        },
        reported("   "),
        ReportedHit {
            method: Some("BREW".into()),
            occurred_at: Some(now() + TimeDelta::minutes(6)),
            ..reported("/future")
        },
        ReportedHit {
            occurred_at: Some(now() - TimeDelta::days(30)),
            ..reported("/too-old")
        },
    ];

    let Err(RecordHitsError::Invalid(invalid)) = service.report(reporter(), hits).await else {
        panic!("refused");
    };

    let named: Vec<_> = invalid.iter().map(|i| (i.index, i.field)).collect();
    assert_eq!(
        named,
        [
            (1, "status"),
            (2, "endpoint"),
            (3, "method"),
            (3, "occurred_at"),
            (4, "occurred_at")
        ]
    );
}

#[tokio::test]
async fn a_hit_on_the_oldest_kept_day_or_slightly_ahead_is_accepted() {
    let mut sink = MockActivitySink::new();
    sink.expect_accept().times(1).returning(|_| Ok(()));
    let oldest = Utc.with_ymd_and_hms(2026, 2, 9, 0, 0, 0).unwrap();
    let hits = vec![
        ReportedHit {
            occurred_at: Some(oldest),
            ..reported("/old")
        },
        ReportedHit {
            occurred_at: Some(now() + TimeDelta::minutes(5)),
            ..reported("/ahead")
        },
    ];

    let accepted = activity(sink, MockHitStore::new())
        .report(reporter(), hits)
        .await;

    assert_eq!(accepted.ok(), Some(2));
}

#[tokio::test]
async fn a_full_sink_is_backpressure_for_the_caller() {
    let mut sink = MockActivitySink::new();
    sink.expect_accept().returning(|_| {
        Err(RecordHitsError::Backpressure {
            retry_after: Duration::from_secs(1),
        })
    });

    let outcome = activity(sink, MockHitStore::new())
        .report(reporter(), vec![reported("/x")])
        .await;

    assert!(matches!(outcome, Err(RecordHitsError::Backpressure { .. })));
}

#[tokio::test]
async fn pruning_keeps_the_retention_s_days_up_to_today() {
    let mut store = MockHitStore::new();
    let first_kept = NaiveDate::from_ymd_opt(2026, 2, 9).unwrap();
    store
        .expect_prune()
        .with(eq(first_kept))
        .times(1)
        .returning(|_| Ok(vec![]));

    activity(MockActivitySink::new(), store)
        .prune()
        .await
        .expect("pruned");
}

#[tokio::test]
async fn storage_is_prepared_from_yesterday_to_the_days_ahead() {
    let mut store = MockHitStore::new();
    store
        .expect_prepare()
        .with(
            eq(NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()),
            eq(NaiveDate::from_ymd_opt(2026, 3, 13).unwrap()),
        )
        .times(1)
        .returning(|_, _| Ok(()));

    activity(MockActivitySink::new(), store)
        .prepare_storage()
        .await
        .expect("prepared");
}

fn no_cache() -> MockUsageCache {
    let mut cache = MockUsageCache::new();
    cache.expect_get().returning(|_| None);
    cache.expect_put().returning(|_, _| ());
    cache
}

fn usage(store: MockUsageStore, cache: MockUsageCache) -> UsageService {
    UsageService::new(Arc::new(store), Arc::new(cache), clock())
}

fn label(n: u128) -> ClientLabel {
    ClientLabel {
        id: ClientId::from_uuid(Uuid::from_u128(n)),
        name: format!("client {n}"),
    }
}

#[tokio::test]
async fn daily_figures_have_every_day_of_the_window_zero_filled_today_last() {
    let mut store = MockUsageStore::new();
    store
        .expect_clients()
        .returning(|_| Ok(vec![label(1), label(2)]));
    let today = now().date_naive();
    store
        .expect_client_days()
        .withf(|only, from, to| {
            only.is_none()
                && *from == Utc.with_ymd_and_hms(2026, 3, 8, 0, 0, 0).unwrap()
                && *to == Utc.with_ymd_and_hms(2026, 3, 11, 0, 0, 0).unwrap()
        })
        .returning(move |_, _, _| {
            Ok(vec![ClientDayCount {
                client: label(2).id,
                day: today,
                requests: 5,
            }])
        });

    let daily = usage(store, no_cache())
        .daily(UsageViewer::Admin, None, DailyWindow::new(3).unwrap())
        .await
        .expect("figures");

    let shown: Vec<Vec<u64>> = daily
        .clients
        .iter()
        .map(|c| c.days.iter().map(|d| d.requests).collect())
        .collect();
    assert_eq!(shown, [vec![0, 0, 0], vec![0, 0, 5]]);
    assert_eq!(daily.clients[1].days[2].date, today);
}

#[tokio::test]
async fn an_api_client_sees_only_itself_and_may_not_name_another() {
    let own = label(1).id;
    let mut store = MockUsageStore::new();
    store
        .expect_clients()
        .with(eq(Some(own)))
        .returning(|_| Ok(vec![label(1)]));
    store
        .expect_client_days()
        .withf(move |only, _, _| *only == Some(own))
        .returning(|_, _, _| Ok(vec![]));
    let service = usage(store, no_cache());

    let mine = service
        .daily(UsageViewer::Client(own), None, DailyWindow::DEFAULT)
        .await
        .expect("own figures");
    let other = service
        .daily(
            UsageViewer::Client(own),
            Some(label(2).id),
            DailyWindow::DEFAULT,
        )
        .await;

    assert_eq!(mine.clients.len(), 1);
    assert_eq!(mine.clients[0].days.len(), 7);
    assert!(matches!(other, Err(DailyUsageError::OtherClient)));
}

#[tokio::test]
async fn an_administrator_naming_an_unknown_client_is_told_so() {
    let mut store = MockUsageStore::new();
    store.expect_clients().returning(|_| Ok(vec![]));

    let outcome = usage(store, no_cache())
        .daily(UsageViewer::Admin, Some(label(9).id), DailyWindow::DEFAULT)
        .await;

    assert!(matches!(outcome, Err(DailyUsageError::ClientNotFound(id)) if id == label(9).id));
}

#[tokio::test]
async fn a_remembered_answer_is_served_without_reading_storage() {
    let remembered = Arc::new(TopClients {
        window_start: now(),
        window_end: now(),
        clients: vec![],
    });
    let answer = remembered.clone();
    let mut cache = MockUsageCache::new();
    cache
        .expect_get()
        .returning(move |_| Some(UsageReport::Top(answer.clone())));

    let top = usage(MockUsageStore::new(), cache)
        .top(TopWindow::DEFAULT)
        .await
        .expect("top");

    assert!(Arc::ptr_eq(&top, &remembered));
}

#[tokio::test]
async fn the_top_list_reads_whole_buckets_through_the_current_hour() {
    let mut store = MockUsageStore::new();
    store
        .expect_top_clients()
        .withf(|from, to, limit| {
            *from == Utc.with_ymd_and_hms(2026, 3, 9, 11, 0, 0).unwrap()
                && *to == Utc.with_ymd_and_hms(2026, 3, 10, 11, 0, 0).unwrap()
                && *limit == 3
        })
        .times(1)
        .returning(|_, _, _| Ok(vec![]));
    let mut cache = MockUsageCache::new();
    cache.expect_get().returning(|_| None);
    cache
        .expect_put()
        .withf(|query, _| {
            matches!(
                query,
                UsageQuery::Top {
                    hours: 24,
                    limit: 3,
                    ..
                }
            )
        })
        .times(1)
        .returning(|_, _| ());

    let top = usage(store, cache)
        .top(TopWindow::DEFAULT)
        .await
        .expect("top");

    assert_eq!(top.window_end, now());
    assert_eq!(
        top.window_start,
        Utc.with_ymd_and_hms(2026, 3, 9, 11, 0, 0).unwrap()
    );
}
