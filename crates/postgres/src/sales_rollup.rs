//! The daily sales rollup (migration `2026-11-25-000400_sales_rollup`, which
//! explains how writers mark days dirty and why a report stays exact).

use async_trait::async_trait;
use chrono::NaiveDate;
use diesel::QueryableByName;
use diesel::sql_types::Date;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ordo_domain::reports::SalesRollup;

use crate::errors::Doing;
use crate::pool::{PgPool, checkout};

/// [`SalesRollup`] over PostgreSQL.
#[derive(Clone)]
pub struct PgSalesRollup {
    pool: PgPool,
}

impl std::fmt::Debug for PgSalesRollup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSalesRollup").finish_non_exhaustive()
    }
}

impl PgSalesRollup {
    /// A rollup kept with connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(QueryableByName)]
struct DirtyDay {
    #[diesel(sql_type = Date)]
    day: NaiveDate,
}

#[async_trait]
impl SalesRollup for PgSalesRollup {
    async fn roll_up_changed_days(&self) -> anyhow::Result<u64> {
        let mut conn = checkout(&self.pool).await?;
        roll_up_changed_days(&mut conn).await
    }
}

/// [`SalesRollup::roll_up_changed_days`] on `conn`.
pub(crate) async fn roll_up_changed_days(conn: &mut AsyncPgConnection) -> anyhow::Result<u64> {
    let days: Vec<DirtyDay> = diesel::sql_query("SELECT day FROM sales_dirty_days ORDER BY day")
        .load(conn)
        .await
        .doing("listing the days whose sales changed")?;
    let mut rebuilt = 0;
    for DirtyDay { day } in days {
        // One statement, so one transaction, per day: its lock waits only for
        // that day's writers, and holds back only them.
        diesel::sql_query("SELECT sales_roll_up_day($1)")
            .bind::<Date, _>(day)
            .execute(conn)
            .await
            .doing("rolling up a day of sales")?;
        rebuilt += 1;
    }
    Ok(rebuilt)
}
