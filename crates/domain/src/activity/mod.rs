//! Activity: the hits API clients and users make, and the usage figures drawn
//! from them.
//!
//! A [`Hit`] is one request: reported by an API client through the logging
//! endpoint, or observed by the server itself on every `/v1` request of a user or
//! a client. Hits go to an [`ActivitySink`], which accepts a whole request's hits
//! or none (backpressure), and end up in storage as raw rows plus hourly counts per
//! principal ([`HourlyCount`]). The usage figures ([`UsageService`]) read only the
//! hourly counts, so their cost does not grow with the number of hits: the daily
//! figures of clients, the top clients of the last hours (in whole hourly buckets,
//! see [`TopWindow`]) and the hourly counts of every principal.

mod error;
mod model;
mod ports;
mod service;
mod window;

pub use error::{DailyUsageError, InvalidHit, RecordHitsError};
pub use model::{
    Endpoint, Hit, HitBatch, HitMethod, HitPrincipal, HitSource, HitStatus, HourlyCount,
    PrincipalKind, ReportedHit,
};
pub use ports::{
    ActivitySink, ClientCount, ClientDayCount, ClientLabel, HitStore, UsageCache, UsageQuery,
    UsageReport, UsageStore,
};
#[cfg(any(test, feature = "mocks"))]
pub use ports::{MockActivitySink, MockHitStore, MockUsageCache, MockUsageStore};
pub use service::{
    ActivityPolicy, ActivityService, ClientDays, DailyUsage, DayCount, HourlyUsage, TopClients,
    UsageService, UsageViewer,
};
pub use window::{DailyWindow, HourlyRange, RetentionDays, TopWindow, hour_of};
