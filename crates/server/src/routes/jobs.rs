//! `/v1/jobs`: administrators list the scheduled jobs, read their runs, change
//! their schedules and ask for a run now.

use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use ordo_domain::scheduling::{JobChanges, JobName, JobOverview, JobRun, Schedule};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::ListResponse;
use crate::extract::{Admin, CheckAll, IfMatch, JsonBody, PageQuery, etag, optional};
use crate::problem::{ApiError, job_not_found};
use crate::state::AppState;

pub(super) fn routes(config: &mut ServiceConfig) {
    config
        .service(list_jobs)
        .service(update_job)
        .service(run_job)
        .service(list_job_runs);
}

/// A scheduled job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// `expire-baskets`, …
    name: String,
    /// A cron expression, evaluated in UTC.
    schedule: String,
    /// Whether scheduled runs happen (a manual run happens either way).
    enabled: bool,
    /// When the schedule next runs it; `null` while disabled.
    #[schema(required = true)]
    next_run_at: Option<DateTime<Utc>>,
    /// Its newest run; `null` if it never ran nor was asked to.
    #[schema(required = true)]
    last_run: Option<RunView>,
    /// Grows with every change; the `ETag` of `PATCH`.
    version: i32,
}

impl From<JobOverview> for JobView {
    fn from(JobOverview { job, last_run }: JobOverview) -> Self {
        Self {
            name: job.name().to_string(),
            schedule: job.schedule().to_string(),
            enabled: job.enabled(),
            next_run_at: job.next_run_at(),
            last_run: last_run.as_ref().map(RunView::from),
            version: job.version().get(),
        }
    }
}

/// One run of a job.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    id: Uuid,
    /// `schedule` or `manual`.
    #[schema(pattern = "^(schedule|manual)$")]
    trigger: &'static str,
    /// `pending`, `running`, `succeeded` or `failed`.
    #[schema(pattern = "^(pending|running|succeeded|failed)$")]
    status: &'static str,
    /// When its schedule came due, or when it was asked for.
    requested_at: DateTime<Utc>,
    /// When its latest attempt started.
    #[schema(required = true)]
    started_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    finished_at: Option<DateTime<Utc>>,
    /// Why it failed.
    #[schema(required = true)]
    error: Option<String>,
    /// The instance (`host:pid:random`) of its latest attempt.
    #[schema(required = true)]
    instance: Option<String>,
    /// How many times an instance took it: more than 1 when an instance died
    /// while running it and another took it over.
    #[schema(minimum = 0)]
    attempts: u32,
}

impl From<&JobRun> for RunView {
    fn from(run: &JobRun) -> Self {
        Self {
            id: run.id().as_uuid(),
            trigger: run.trigger().as_str(),
            status: run.status().as_str(),
            requested_at: run.requested_at(),
            started_at: run.started_at(),
            finished_at: run.finished_at(),
            error: run.error().map(str::to_owned),
            instance: run.instance().map(|i| i.to_string()),
            attempts: run.attempts(),
        }
    }
}

/// Changes to a job; omitted (or `null`) fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobPatch {
    /// A cron expression in UTC: five fields (`minute hour day-of-month month
    /// day-of-week`), an optional leading seconds field, or `@hourly`,
    /// `@daily`, …
    #[schema(min_length = 1, max_length = 200)]
    schedule: Option<String>,
    /// Enables or disables scheduled runs.
    enabled: Option<bool>,
}

/// A requested run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunRequested {
    /// The run that carries out the request: a new one, or the one already
    /// waiting (requests while a run waits share it).
    run_id: Uuid,
    /// `pending`: it starts once no run of the job is running.
    #[schema(pattern = "^pending$")]
    status: &'static str,
}

fn job_name(raw: &str) -> Result<JobName, ApiError> {
    // A name that cannot exist names no job.
    JobName::parse(raw).map_err(|_| job_not_found(raw))
}

/// Every scheduled job with its newest run, by name (administrators only).
#[utoipa::path(tag = "jobs", responses(
    (status = 200, body = Vec<JobView>),
))]
#[get("/jobs")]
async fn list_jobs(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let jobs = state.scheduling.list().await?;
    Ok(HttpResponse::Ok().json(jobs.into_iter().map(JobView::from).collect::<Vec<_>>()))
}

/// Changes a job's schedule or enables/disables it (administrators only);
/// honours `If-Match`. Every instance follows at its next poll, without a
/// restart; the next run is the new schedule's next instant after now.
#[utoipa::path(tag = "jobs", params(("name" = String, Path, description = "The job's name")), request_body = JobPatch, responses(
    (status = 200, body = JobView, headers(("ETag" = String, description = "The job's version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`job_not_found`"),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`: `schedule` is not a valid cron expression (nothing changed)"),
))]
#[patch("/jobs/{name}")]
async fn update_job(
    _: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
    if_match: IfMatch,
    JsonBody(body): JsonBody<JobPatch>,
) -> Result<HttpResponse, ApiError> {
    let name = job_name(&name)?;
    let (schedule,) = (optional(
        "schedule",
        body.schedule.as_deref(),
        Schedule::parse,
    ),)
        .check_all()?;
    let changes = JobChanges {
        schedule,
        enabled: body.enabled,
    };
    let job = state.scheduling.update(name, changes, if_match.0).await?;
    let mut builder = HttpResponse::Ok();
    Ok(etag(&mut builder, job.job.version()).json(JobView::from(job)))
}

/// Asks for a run of the job now, enabled or not (administrators only). A job
/// never runs twice at once: while a run is running, the requested one waits
/// until it has finished; while one already waits, the request shares it (the
/// same `run_id`). Follow it in `GET /v1/jobs/{name}/runs`.
#[utoipa::path(tag = "jobs", params(("name" = String, Path, description = "The job's name")), responses(
    (status = 202, body = RunRequested),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`job_not_found`"),
))]
#[post("/jobs/{name}/run")]
async fn run_job(
    _: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let run = state.scheduling.trigger(job_name(&name)?).await?;
    state.run_now.wake();
    Ok(HttpResponse::Accepted().json(RunRequested {
        run_id: run.id().as_uuid(),
        status: run.status().as_str(),
    }))
}

/// A job's runs, newest first (administrators only). Finished runs are kept
/// for `ORDO_SCHEDULER__HISTORY_DAYS` (30 by default).
#[utoipa::path(tag = "jobs", params(("name" = String, Path, description = "The job's name"), PageQuery), responses(
    (status = 200, body = ListResponse<RunView>),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`job_not_found`"),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`: a bad `limit` or `cursor`"),
))]
#[get("/jobs/{name}/runs")]
async fn list_job_runs(
    _: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = job_name(&name)?;
    let (page,) = (query.parse(),).check_all()?;
    let runs = state.scheduling.runs(name, page).await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(runs, |r| RunView::from(&r))))
}
