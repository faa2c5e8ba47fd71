//! Scheduled jobs in PostgreSQL: [`PgJobStore`].
//!
//! Every decision about a job's runs is made while its `jobs` row is locked
//! (`FOR UPDATE`), on runs read after the lock was taken: instances deciding
//! about one job queue on that row, and each sees what the one before wrote.
//! Polling instances lock with `SKIP LOCKED` instead: a job another instance is
//! deciding about is skipped, not waited for, since that instance takes whatever
//! there is to take. The partial unique indexes on `job_runs` (one running, one
//! pending per job) hold the guarantee even against a bug in the rules.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::exists;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ordo_domain::scheduling::{
    ClaimContext, InstanceId, JobChanges, JobName, JobOverview, JobRun, JobState, JobStore,
    ListRunsError, RunId, RunStatus, RunTrigger, Schedule, StoredRun, TriggerJobError,
    UpdateJobError,
};
use ordo_domain::{Page, PageRequest, Version, VersionMatch};
use uuid::Uuid;

use crate::errors::{Doing, TxError};
use crate::pool::{PgPool, checkout};
use crate::schema::{job_runs, jobs};

/// [`JobStore`] over PostgreSQL.
#[derive(Clone)]
pub struct PgJobStore {
    pool: PgPool,
}

impl std::fmt::Debug for PgJobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgJobStore").finish_non_exhaustive()
    }
}

impl PgJobStore {
    /// A store using connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
struct JobRow {
    name: String,
    schedule: String,
    enabled: bool,
    next_run_at: Option<DateTime<Utc>>,
    version: i32,
    updated_at: DateTime<Utc>,
}

impl JobRow {
    fn of(job: &JobState) -> Self {
        Self {
            name: job.name().as_str().to_owned(),
            schedule: job.schedule().as_str().to_owned(),
            enabled: job.enabled(),
            next_run_at: job.next_run_at(),
            version: job.version().get(),
            updated_at: job.updated_at(),
        }
    }

    /// Rows only hold values written from domain types; a failure means the
    /// database was edited by hand.
    fn into_domain(self) -> anyhow::Result<JobState> {
        let parse = || -> Result<JobState, ordo_domain::InvalidValue> {
            Ok(JobState::restore(
                JobName::parse(&self.name)?,
                Schedule::parse(&self.schedule)?,
                self.enabled,
                self.next_run_at,
                Version::new(self.version)?,
                self.updated_at,
            ))
        };
        parse().map_err(|e| anyhow::anyhow!("stored job {} is invalid: {e}", self.name))
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = job_runs, check_for_backend(diesel::pg::Pg))]
struct RunRow {
    id: Uuid,
    job_name: String,
    trigger: String,
    status: String,
    requested_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    instance: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    attempts: i32,
    error: Option<String>,
}

impl RunRow {
    fn of(run: &JobRun) -> Self {
        Self {
            id: run.id().as_uuid(),
            job_name: run.job().as_str().to_owned(),
            trigger: run.trigger().as_str().to_owned(),
            status: run.status().as_str().to_owned(),
            requested_at: run.requested_at(),
            started_at: run.started_at(),
            finished_at: run.finished_at(),
            instance: run.instance().map(|i| i.as_str().to_owned()),
            lease_expires_at: run.lease_expires_at(),
            attempts: i32::try_from(run.attempts()).unwrap_or(i32::MAX),
            error: run.error().map(str::to_owned),
        }
    }

    fn into_domain(self) -> anyhow::Result<JobRun> {
        let id = self.id;
        let parse = || -> Result<JobRun, ordo_domain::InvalidValue> {
            Ok(JobRun::restore(StoredRun {
                id: RunId::from_uuid(self.id),
                job: JobName::parse(&self.job_name)?,
                trigger: RunTrigger::parse(&self.trigger)?,
                status: RunStatus::parse(&self.status)?,
                requested_at: self.requested_at,
                started_at: self.started_at,
                finished_at: self.finished_at,
                instance: self
                    .instance
                    .as_deref()
                    .map(InstanceId::parse)
                    .transpose()?,
                lease_expires_at: self.lease_expires_at,
                attempts: u32::try_from(self.attempts).unwrap_or(0),
                error: self.error,
            }))
        };
        parse().map_err(|e| anyhow::anyhow!("stored job run {id} is invalid: {e}"))
    }
}

fn runs_into_domain(rows: Vec<RunRow>) -> anyhow::Result<Vec<JobRun>> {
    rows.into_iter().map(RunRow::into_domain).collect()
}

const OPEN: [&str; 2] = ["pending", "running"];

/// Inserts `run`, or updates it when it exists: the domain decided its state.
async fn write_run(conn: &mut AsyncPgConnection, run: &JobRun) -> QueryResult<()> {
    diesel::insert_into(job_runs::table)
        .values(RunRow::of(run))
        .on_conflict(job_runs::id)
        .do_update()
        .set((
            job_runs::status.eq(excluded(job_runs::status)),
            job_runs::started_at.eq(excluded(job_runs::started_at)),
            job_runs::finished_at.eq(excluded(job_runs::finished_at)),
            job_runs::instance.eq(excluded(job_runs::instance)),
            job_runs::lease_expires_at.eq(excluded(job_runs::lease_expires_at)),
            job_runs::attempts.eq(excluded(job_runs::attempts)),
            job_runs::error.eq(excluded(job_runs::error)),
        ))
        .execute(conn)
        .await
        .map(drop)
}

async fn open_runs(conn: &mut AsyncPgConnection, names: &[String]) -> QueryResult<Vec<RunRow>> {
    job_runs::table
        .filter(job_runs::job_name.eq_any(names))
        .filter(job_runs::status.eq_any(OPEN))
        .select(RunRow::as_select())
        .load(conn)
        .await
}

/// The job, locked until the end of the transaction; `not_found` without one.
async fn lock_job<E: From<anyhow::Error>>(
    conn: &mut AsyncPgConnection,
    name: &JobName,
    not_found: impl FnOnce(JobName) -> E,
) -> Result<JobState, TxError<E>> {
    jobs::table
        .find(name.as_str())
        .select(JobRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| TxError::Rule(not_found(name.clone())))?
        .into_domain()
        .map_err(|e| TxError::Rule(e.into()))
}

async fn store_job(conn: &mut AsyncPgConnection, job: &JobState) -> QueryResult<()> {
    let row = JobRow::of(job);
    diesel::update(jobs::table.find(&row.name))
        .set((
            jobs::schedule.eq(&row.schedule),
            jobs::enabled.eq(row.enabled),
            jobs::next_run_at.eq(row.next_run_at),
            jobs::version.eq(row.version),
            jobs::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .await
        .map(drop)
}

#[async_trait]
impl JobStore for PgJobStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn register(&self, new_jobs: Vec<JobState>) -> anyhow::Result<()> {
        let rows: Vec<JobRow> = new_jobs.iter().map(JobRow::of).collect();
        let mut conn = checkout(&self.pool).await?;
        diesel::insert_into(jobs::table)
            .values(rows)
            .on_conflict_do_nothing()
            .execute(&mut conn)
            .await
            .doing("registering jobs")?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list(&self) -> anyhow::Result<Vec<JobOverview>> {
        let mut conn = checkout(&self.pool).await?;
        let job_rows = jobs::table
            .select(JobRow::as_select())
            .order(jobs::name)
            .load(&mut conn)
            .await
            .doing("listing jobs")?;
        // The newest run of each job: one index scan per job of `job_runs_history_idx`.
        let mut last_runs = runs_into_domain(
            job_runs::table
                .distinct_on(job_runs::job_name)
                .order((job_runs::job_name, job_runs::id.desc()))
                .select(RunRow::as_select())
                .load(&mut conn)
                .await
                .doing("reading the jobs' last runs")?,
        )?;
        job_rows
            .into_iter()
            .map(|row| {
                let job = row.into_domain()?;
                let last_run = last_runs
                    .iter()
                    .position(|r| r.job() == job.name())
                    .map(|i| last_runs.swap_remove(i));
                Ok(JobOverview { job, last_run })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(job = %name))]
    async fn runs(&self, name: JobName, page: PageRequest) -> Result<Page<JobRun>, ListRunsError> {
        let mut conn = checkout(&self.pool).await?;
        let known: bool = diesel::select(exists(jobs::table.find(name.as_str())))
            .get_result(&mut conn)
            .await
            .doing("finding a job")?;
        if !known {
            return Err(ListRunsError::NotFound(name));
        }
        let mut query = job_runs::table
            .filter(job_runs::job_name.eq(name.as_str()))
            .select(RunRow::as_select())
            .order(job_runs::id.desc())
            .limit(i64::from(page.limit.get()) + 1)
            .into_boxed();
        if let Some(after) = page.after {
            query = query.filter(job_runs::id.lt(after));
        }
        let rows = query.load(&mut conn).await.doing("listing a job's runs")?;
        Ok(Page::from_overfetched(
            runs_into_domain(rows)?,
            page.limit,
            |r| r.id().as_uuid(),
        ))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(job = %name))]
    async fn update(
        &self,
        name: JobName,
        changes: JobChanges,
        expected: Option<VersionMatch>,
        at: DateTime<Utc>,
    ) -> Result<JobOverview, UpdateJobError> {
        let mut conn = checkout(&self.pool).await?;
        conn.transaction(
            async |conn| -> Result<JobOverview, TxError<UpdateJobError>> {
                let current = lock_job(conn, &name, UpdateJobError::NotFound).await?;
                if expected
                    .as_ref()
                    .is_some_and(|expected| !expected.admits(current.version()))
                {
                    return Err(TxError::Rule(UpdateJobError::VersionMismatch(name.clone())));
                }
                let job = match current.changed(&changes, at) {
                    Some(changed) => {
                        store_job(conn, &changed).await?;
                        changed
                    }
                    None => current,
                };
                let last_run = job_runs::table
                    .filter(job_runs::job_name.eq(name.as_str()))
                    .order(job_runs::id.desc())
                    .select(RunRow::as_select())
                    .first(conn)
                    .await
                    .optional()?
                    .map(RunRow::into_domain)
                    .transpose()
                    .map_err(|e| TxError::Rule(e.into()))?;
                Ok(JobOverview { job, last_run })
            },
        )
        .await
        .map_err(|e| e.into_domain("changing a job"))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(job = %name))]
    async fn trigger(
        &self,
        name: JobName,
        new_run: RunId,
        at: DateTime<Utc>,
    ) -> Result<JobRun, TriggerJobError> {
        let mut conn = checkout(&self.pool).await?;
        conn.transaction(async |conn| -> Result<JobRun, TxError<TriggerJobError>> {
            let job = lock_job(conn, &name, TriggerJobError::NotFound).await?;
            let open = runs_into_domain(open_runs(conn, &[name.as_str().to_owned()]).await?)
                .map_err(|e| TxError::Rule(e.into()))?;
            let triggered = ordo_domain::scheduling::trigger(&job, &open, new_run, at);
            if triggered.created {
                write_run(conn, &triggered.run).await?;
            }
            Ok(triggered.run)
        })
        .await
        .map_err(|e| e.into_domain("requesting a job run"))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(instance = %ctx.instance))]
    async fn claim(
        &self,
        candidates: Vec<(JobName, RunId)>,
        ctx: ClaimContext,
    ) -> anyhow::Result<Vec<JobRun>> {
        let names: Vec<String> = candidates
            .iter()
            .map(|(name, _)| name.as_str().to_owned())
            .collect();
        let now = ctx.now;
        let mut conn = checkout(&self.pool).await?;
        conn.transaction(async |conn| -> anyhow::Result<Vec<JobRun>> {
            // Only jobs with something to take; the rules decide on what is read
            // after the lock, so a row whose state moved on meanwhile is harmless.
            let has_work = exists(
                job_runs::table
                    .filter(job_runs::job_name.eq(jobs::name))
                    .filter(
                        job_runs::status.eq("pending").or(job_runs::status
                            .eq("running")
                            .and(job_runs::lease_expires_at.le(now))),
                    ),
            );
            let locked = jobs::table
                .filter(jobs::name.eq_any(&names))
                .filter(
                    jobs::enabled
                        .and(jobs::next_run_at.le(now))
                        .assume_not_null()
                        .or(has_work),
                )
                .order(jobs::name)
                .select(JobRow::as_select())
                .for_update()
                .skip_locked()
                .load(conn)
                .await
                .doing("locking the jobs due")?;
            if locked.is_empty() {
                return Ok(Vec::new());
            }
            let locked_names: Vec<String> = locked.iter().map(|j| j.name.clone()).collect();
            let open = runs_into_domain(
                open_runs(conn, &locked_names)
                    .await
                    .doing("reading the open runs of the jobs due")?,
            )?;
            let mut taken = Vec::new();
            for row in locked {
                let job = row.into_domain()?;
                let Some((_, new_run)) = candidates.iter().find(|(name, _)| name == job.name())
                else {
                    continue;
                };
                let runs: Vec<JobRun> = open
                    .iter()
                    .filter(|r| r.job() == job.name())
                    .cloned()
                    .collect();
                let claim = ordo_domain::scheduling::claim(&job, &runs, *new_run, &ctx);
                if let Some(advanced) = &claim.job {
                    store_job(conn, advanced)
                        .await
                        .doing("moving a job's next run on")?;
                }
                for run in &claim.writes {
                    write_run(conn, run).await.doing("storing a job run")?;
                }
                taken.extend(claim.taken);
            }
            Ok(taken)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(run_id = %run.id()))]
    async fn store_held(&self, run: JobRun) -> anyhow::Result<bool> {
        let row = RunRow::of(&run);
        let mut conn = checkout(&self.pool).await?;
        // Only while this attempt of this instance still holds it: once taken
        // over, the run belongs to the instance that took it.
        let updated = diesel::update(
            job_runs::table
                .find(row.id)
                .filter(job_runs::status.eq("running"))
                .filter(job_runs::instance.eq(&row.instance))
                .filter(job_runs::attempts.eq(row.attempts)),
        )
        .set((
            job_runs::status.eq(&row.status),
            job_runs::finished_at.eq(row.finished_at),
            job_runs::lease_expires_at.eq(row.lease_expires_at),
            job_runs::error.eq(&row.error),
        ))
        .execute(&mut conn)
        .await
        .doing("storing a job run")?;
        Ok(updated == 1)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn prune(&self, before: DateTime<Utc>) -> anyhow::Result<u64> {
        let mut conn = checkout(&self.pool).await?;
        let deleted = diesel::delete(job_runs::table.filter(job_runs::finished_at.lt(before)))
            .execute(&mut conn)
            .await
            .doing("pruning job runs")?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }
}
