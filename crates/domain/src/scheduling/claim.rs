//! The claim and lease rules: what an instance may take of one job at one
//! instant, given the job and its open (pending or running) runs. Storage applies
//! the outcome while it holds the job against every other instance, so the rules
//! hold across processes: a job never runs twice at once, each due instant gives
//! one run, and a run whose instance died is taken over once its lease runs out.

use chrono::{DateTime, Utc};

use super::{InstanceId, JobRun, JobState, Lease, RunId, RunStatus, RunTrigger};

/// How runs are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimPolicy {
    /// How long an instance holds a run without renewing it.
    pub lease: Lease,
    /// How many times a run is taken before a run whose lease keeps running out
    /// is given up as failed (a job that kills its instance is not retried forever).
    pub max_attempts: u32,
}

/// What one instance asks for at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimContext {
    /// The instant.
    pub now: DateTime<Utc>,
    /// Who asks.
    pub instance: InstanceId,
    /// The rules.
    pub policy: ClaimPolicy,
}

/// The outcome of [`claim`] for one job, for storage to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The job with its next run moved on, when a due run was taken care of.
    pub job: Option<JobState>,
    /// Runs to insert or update, in this order (a run given up comes before the
    /// one taken in its place: at most one runs at a time).
    pub writes: Vec<JobRun>,
    /// The run the asking instance now holds and must run.
    pub taken: Option<JobRun>,
}

/// Decides what `ctx.instance` may take of `job`, whose open runs are `open`, at
/// `ctx.now`. `new_run` is the id of a run created for a due schedule.
///
/// - A due job gets one pending scheduled run (none when one is pending already:
///   runs queue at most one deep) and its next instant after now.
/// - While another instance holds a run, nothing is taken: a job never runs twice
///   at once.
/// - A run whose lease ran out is taken again, its attempts counted; after
///   `max_attempts` it is failed instead and the next pending run is taken.
/// - Otherwise the oldest pending run is taken.
pub fn claim(job: &JobState, open: &[JobRun], new_run: RunId, ctx: &ClaimContext) -> Claim {
    let now = ctx.now;
    let mut writes = Vec::new();
    let mut pending: Vec<JobRun> = open
        .iter()
        .filter(|r| r.status() == RunStatus::Pending)
        .cloned()
        .collect();
    pending.sort_by_key(|r| (r.requested_at(), r.id()));
    let advanced = job.is_due(now).then(|| {
        if pending.is_empty() {
            let due = job.next_run_at().unwrap_or(now);
            let run = JobRun::pending(new_run, job.name().clone(), RunTrigger::Schedule, due);
            writes.push(run.clone());
            pending.push(run);
        }
        job.advanced(now)
    });
    let taken = if open.iter().any(|r| r.is_held(now)) {
        None
    } else {
        let abandoned = open.iter().find(|r| r.lease_ran_out(now));
        match abandoned {
            Some(run) if run.attempts() < ctx.policy.max_attempts => {
                Some(run.taken(&ctx.instance, now, ctx.policy.lease))
            }
            abandoned => {
                if let Some(run) = abandoned {
                    let error = format!(
                        "its lease ran out {} times (the instance running it stopped); given up",
                        run.attempts()
                    );
                    writes.push(run.finished(Err(error), now));
                }
                pending
                    .first()
                    .map(|run| run.taken(&ctx.instance, now, ctx.policy.lease))
            }
        }
    };
    if let Some(run) = &taken {
        // A run created above is written once, as taken.
        writes.retain(|w| w.id() != run.id());
        writes.push(run.clone());
    }
    Claim {
        job: advanced,
        writes,
        taken,
    }
}

/// The run a manual trigger of `job` stands for: the one already pending, or a
/// new pending one. It waits for a running run to finish: a job never runs twice
/// at once, and triggers while one is queued share it.
pub fn trigger(job: &JobState, open: &[JobRun], new_run: RunId, now: DateTime<Utc>) -> Triggered {
    match open
        .iter()
        .filter(|r| r.status() == RunStatus::Pending)
        .min_by_key(|r| (r.requested_at(), r.id()))
    {
        Some(queued) => Triggered {
            run: queued.clone(),
            created: false,
        },
        None => Triggered {
            run: JobRun::pending(new_run, job.name().clone(), RunTrigger::Manual, now),
            created: true,
        },
    }
}

/// The outcome of [`trigger`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggered {
    /// The pending run that will carry out the request.
    pub run: JobRun,
    /// Whether it is new (to be stored) rather than one already queued.
    pub created: bool,
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;
    use crate::scheduling::{JobDefinition, JobName, Schedule};

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, m, s)
            .single()
            .expect("a valid instant")
    }

    fn every_minute_job(registered_at: DateTime<Utc>) -> JobState {
        JobState::registered(
            &JobDefinition {
                name: JobName::parse("expire-baskets").expect("name"),
                default_schedule: Schedule::parse("* * * * *").expect("schedule"),
            },
            registered_at,
        )
    }

    fn ctx(instance: &str, now: DateTime<Utc>) -> ClaimContext {
        ClaimContext {
            now,
            instance: InstanceId::parse(instance).expect("instance"),
            policy: ClaimPolicy {
                lease: Lease::from_secs(60).expect("lease"),
                max_attempts: 3,
            },
        }
    }

    fn run_id(n: u128) -> RunId {
        RunId::from_uuid(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_job_that_is_not_due_and_has_no_runs_gives_nothing() {
        let job = every_minute_job(at(12, 0, 10));

        let claim = claim(&job, &[], run_id(1), &ctx("a", at(12, 0, 59)));

        assert_eq!(claim.job, None);
        assert!(claim.writes.is_empty());
        assert_eq!(claim.taken, None);
    }

    #[test]
    fn a_due_job_is_taken_at_once_and_its_next_run_is_the_next_instant_after_now() {
        let job = every_minute_job(at(12, 0, 10));
        // Three instants were missed while no instance ran: one run covers them.
        let now = at(12, 3, 30);

        let claim = claim(&job, &[], run_id(1), &ctx("a", now));

        let taken = claim.taken.expect("a run is taken");
        assert_eq!(taken.id(), run_id(1));
        assert_eq!(taken.status(), RunStatus::Running);
        assert_eq!(taken.trigger(), RunTrigger::Schedule);
        assert_eq!(
            taken.requested_at(),
            at(12, 1, 0),
            "the instant it came due"
        );
        assert_eq!(taken.lease_expires_at(), Some(now + TimeDelta::seconds(60)));
        assert_eq!(taken.attempts(), 1);
        assert_eq!(claim.writes, vec![taken]);
        assert_eq!(
            claim.job.expect("advanced").next_run_at(),
            Some(at(12, 4, 0))
        );
    }

    #[test]
    fn while_another_instance_holds_a_run_a_due_run_waits_in_the_queue() {
        let job = every_minute_job(at(12, 0, 10));
        let held = every_minute_job(at(11, 0, 0));
        let running = claim(&held, &[], run_id(1), &ctx("a", at(12, 0, 30)))
            .taken
            .expect("taken");

        let claim = claim(&job, &[running], run_id(2), &ctx("b", at(12, 1, 0)));

        assert_eq!(claim.taken, None);
        assert_eq!(claim.writes.len(), 1);
        assert_eq!(claim.writes[0].status(), RunStatus::Pending);
        assert_eq!(claim.writes[0].id(), run_id(2));
        assert!(claim.job.is_some());
    }

    #[test]
    fn runs_queue_at_most_one_deep() {
        let job = every_minute_job(at(12, 0, 10));
        let queued = JobRun::pending(
            run_id(5),
            job.name().clone(),
            RunTrigger::Manual,
            at(12, 0, 20),
        );
        let running = queued.taken(
            &InstanceId::parse("a").expect("instance"),
            at(12, 0, 30),
            Lease::from_secs(600).expect("lease"),
        );
        let waiting = JobRun::pending(
            run_id(6),
            job.name().clone(),
            RunTrigger::Manual,
            at(12, 0, 40),
        );

        let claim = claim(
            &job,
            &[running, waiting],
            run_id(7),
            &ctx("b", at(12, 1, 0)),
        );

        assert!(claim.writes.is_empty(), "{:?}", claim.writes);
        assert_eq!(claim.taken, None);
        assert!(
            claim.job.is_some(),
            "the due instant is used up all the same"
        );
    }

    #[test]
    fn a_run_whose_lease_ran_out_is_taken_over_with_its_attempts_counted() {
        let job = every_minute_job(at(12, 0, 10));
        let crashed = claim(&job, &[], run_id(1), &ctx("a", at(12, 1, 0)))
            .taken
            .expect("taken");
        let job = job.advanced(at(12, 1, 0));

        // At 12:01:59 the lease (60 s) still holds; at 12:02:00 it has run out.
        let too_early = claim(
            &job,
            std::slice::from_ref(&crashed),
            run_id(2),
            &ctx("b", at(12, 1, 59)),
        );
        let after = claim(&job, &[crashed], run_id(3), &ctx("b", at(12, 2, 0)));

        assert_eq!(too_early.taken, None);
        let retried = after.taken.expect("taken over");
        assert_eq!(retried.id(), run_id(1), "the same run, retried");
        assert_eq!(retried.attempts(), 2);
        assert_eq!(retried.instance().map(InstanceId::as_str), Some("b"));
        assert_eq!(retried.lease_expires_at(), Some(at(12, 3, 0)));
        // The instant 12:02 came due meanwhile: it waits behind the retry.
        assert_eq!(after.writes.len(), 2);
        assert_eq!(after.writes[0].status(), RunStatus::Pending);
    }

    #[test]
    fn a_run_whose_lease_ran_out_on_its_last_attempt_fails_and_the_queue_moves_on() {
        let job = every_minute_job(at(12, 0, 10)).advanced(at(12, 0, 10));
        let policy = ctx("a", at(12, 0, 0)).policy;
        let mut run = JobRun::pending(
            run_id(1),
            job.name().clone(),
            RunTrigger::Manual,
            at(12, 0, 0),
        );
        for _ in 0..policy.max_attempts {
            run = run.taken(
                &InstanceId::parse("a").expect("id"),
                at(12, 0, 0),
                policy.lease,
            );
        }
        let queued = JobRun::pending(
            run_id(2),
            job.name().clone(),
            RunTrigger::Manual,
            at(12, 0, 5),
        );

        let claim = claim(&job, &[run, queued], run_id(3), &ctx("b", at(12, 1, 30)));

        assert_eq!(claim.writes.len(), 2);
        assert_eq!(claim.writes[0].id(), run_id(1));
        assert_eq!(claim.writes[0].status(), RunStatus::Failed);
        assert!(
            claim.writes[0]
                .error()
                .is_some_and(|e| e.contains("lease ran out 3 times")),
            "{:?}",
            claim.writes[0]
        );
        assert_eq!(claim.taken.map(|r| r.id()), Some(run_id(2)));
    }

    #[test]
    fn a_disabled_job_gets_no_scheduled_run_but_a_queued_manual_one_still_runs() {
        let job = every_minute_job(at(12, 0, 10))
            .changed(
                &crate::scheduling::JobChanges {
                    enabled: Some(false),
                    schedule: None,
                },
                at(12, 0, 20),
            )
            .expect("a change");
        let manual = JobRun::pending(
            run_id(1),
            job.name().clone(),
            RunTrigger::Manual,
            at(12, 0, 30),
        );

        let nothing = claim(&job, &[], run_id(2), &ctx("a", at(13, 0, 0)));
        let taken = claim(&job, &[manual], run_id(3), &ctx("a", at(13, 0, 0)));

        assert_eq!(
            nothing,
            Claim {
                job: None,
                writes: vec![],
                taken: None
            }
        );
        assert_eq!(taken.taken.map(|r| r.id()), Some(run_id(1)));
    }

    #[test]
    fn a_manual_trigger_while_a_run_is_running_queues_one_run_and_later_triggers_share_it() {
        let job = every_minute_job(at(12, 0, 10));
        let running = claim(&job, &[], run_id(1), &ctx("a", at(12, 1, 0)))
            .taken
            .expect("taken");

        let first = trigger(
            &job,
            std::slice::from_ref(&running),
            run_id(2),
            at(12, 1, 10),
        );
        let second = trigger(
            &job,
            &[running.clone(), first.run.clone()],
            run_id(3),
            at(12, 1, 20),
        );
        let meanwhile = claim(
            &job,
            &[running, first.run.clone()],
            run_id(4),
            &ctx("b", at(12, 1, 30)),
        );

        assert!(first.created);
        assert_eq!(first.run.status(), RunStatus::Pending);
        assert_eq!(first.run.trigger(), RunTrigger::Manual);
        assert!(!second.created);
        assert_eq!(second.run.id(), run_id(2));
        assert_eq!(meanwhile.taken, None, "never twice at once");
    }
}
