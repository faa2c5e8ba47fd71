//! Redis adapters for the ports several Ordo instances must share: the
//! [`RateLimitStore`](ordo_domain::ratelimit::RateLimitStore) (one allowance per
//! caller however many instances serve it), the
//! [`UsageCache`](ordo_domain::activity::UsageCache) (one answer per usage question
//! for every instance), and [`testing`], a throw-away `redis-server` for tests.
//!
//! One [`Redis`] connection (multiplexed, reconnecting by itself) serves every
//! adapter of an instance.

mod connection;
mod rate_limits;
pub mod testing;
mod usage_cache;

pub use connection::{Redis, RedisConfig};
pub use rate_limits::RedisRateLimits;
pub use usage_cache::{RedisUsageCache, USAGE_CACHE_UNAVAILABLE};
