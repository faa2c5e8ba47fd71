use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::value::{InvalidValue, Version, id_newtype};

/// A job's name: lowercase letters, digits and dashes, starting with a letter, at
/// most 64 characters (`expire-baskets`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobName(String);

impl JobName {
    /// Parses a job's name.
    ///
    /// # Errors
    /// When `raw` is not 1 to 64 of `a-z`, `0-9` and `-`, starting with a letter.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let well_formed = raw.len() <= 64
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if well_formed {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue::new(
                "a job name is 1 to 64 lowercase letters, digits and dashes, starting with a letter",
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JobName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// When a job runs: a cron expression evaluated in UTC. Five fields
/// (`minute hour day-of-month month day-of-week`), an optional leading seconds
/// field, or a nickname such as `@hourly`.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    cron: croner::Cron,
}

impl Schedule {
    /// The longest expression accepted.
    pub const MAX_LEN: usize = 200;

    /// Parses a cron expression.
    ///
    /// # Errors
    /// When `raw` is not a valid cron expression, or one that never fires.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let text = raw.trim();
        if text.len() > Self::MAX_LEN {
            return Err(InvalidValue::new(format!(
                "a schedule is at most {} characters",
                Self::MAX_LEN
            )));
        }
        let cron = croner::Cron::from_str(text)
            .map_err(|e| InvalidValue::new(format!("not a valid cron expression: {e}")))?;
        let schedule = Self {
            text: text.to_owned(),
            cron,
        };
        // `0 0 30 2 *` (30 February) parses but never fires: refuse it here rather
        // than leave a job that silently never runs.
        if schedule.next_after(DateTime::UNIX_EPOCH).is_none() {
            return Err(InvalidValue::new("this cron expression never fires"));
        }
        Ok(schedule)
    }

    /// The expression as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first instant strictly after `at` that the expression names, in UTC;
    /// `None` when there is none (a pattern bound to years that have passed).
    pub fn next_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&at, false).ok()
    }
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Schedule").field(&self.text).finish()
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Schedule {}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A job this process can run, as it registers it: its name and the schedule it
/// gets when no instance has registered it before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDefinition {
    /// The job's name.
    pub name: JobName,
    /// Its schedule until an administrator changes it.
    pub default_schedule: Schedule,
}

/// A job as stored and shared by every instance: its schedule, whether it is
/// enabled, and when it is next due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    name: JobName,
    schedule: Schedule,
    enabled: bool,
    next_run_at: Option<DateTime<Utc>>,
    version: Version,
    updated_at: DateTime<Utc>,
}

/// Changes to a job; `None` keeps a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobChanges {
    /// A new schedule.
    pub schedule: Option<Schedule>,
    /// Enables or disables the job.
    pub enabled: Option<bool>,
}

impl JobState {
    /// A newly registered job: enabled, first due at its schedule's next instant
    /// after `now`.
    pub fn registered(definition: &JobDefinition, now: DateTime<Utc>) -> Self {
        Self {
            name: definition.name.clone(),
            next_run_at: definition.default_schedule.next_after(now),
            schedule: definition.default_schedule.clone(),
            enabled: true,
            version: Version::FIRST,
            updated_at: now,
        }
    }

    /// Rebuilds a stored job.
    pub fn restore(
        name: JobName,
        schedule: Schedule,
        enabled: bool,
        next_run_at: Option<DateTime<Utc>>,
        version: Version,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Self {
            name,
            schedule,
            enabled,
            next_run_at,
            version,
            updated_at,
        }
    }

    /// The job's name.
    pub fn name(&self) -> &JobName {
        &self.name
    }

    /// Its schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Whether scheduled runs happen.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// When it is next due; `None` while disabled (or when the schedule never
    /// fires again).
    pub fn next_run_at(&self) -> Option<DateTime<Utc>> {
        self.next_run_at
    }

    /// Grows by one with every change of schedule or enabled flag.
    pub fn version(&self) -> Version {
        self.version
    }

    /// When it was last changed.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }

    /// Whether a scheduled run is due at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.enabled && self.next_run_at.is_some_and(|due| due <= now)
    }

    /// The job with `changes` applied at `now`, or `None` when they change nothing.
    /// A new schedule, or enabling, makes the next run the schedule's next instant
    /// after `now`; disabling clears it. The change takes effect at every
    /// instance's next poll, without a restart.
    pub fn changed(&self, changes: &JobChanges, now: DateTime<Utc>) -> Option<Self> {
        let schedule = changes.schedule.as_ref().unwrap_or(&self.schedule);
        let enabled = changes.enabled.unwrap_or(self.enabled);
        if *schedule == self.schedule && enabled == self.enabled {
            return None;
        }
        Some(Self {
            name: self.name.clone(),
            next_run_at: if enabled {
                schedule.next_after(now)
            } else {
                None
            },
            schedule: schedule.clone(),
            enabled,
            version: self.version.next(),
            updated_at: now,
        })
    }

    /// The job after its due run was taken at `now`: next due at the schedule's
    /// next instant after `now`. Instants missed while no instance ran are not
    /// made up one by one: one run covers them.
    pub(super) fn advanced(&self, now: DateTime<Utc>) -> Self {
        Self {
            next_run_at: self.schedule.next_after(now),
            ..self.clone()
        }
    }
}

id_newtype!(
    /// Identifies one run of a job.
    RunId
);

/// Names the process that runs a job, in run history (`host:pid:random`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceId(String);

impl InstanceId {
    /// Wraps a process's name.
    ///
    /// # Errors
    /// When `raw` is empty or longer than 200 characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        crate::value::parse_text(raw, "an instance id", 200).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a run exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunTrigger {
    /// Its job's schedule came due.
    Schedule,
    /// An administrator asked for it.
    Manual,
}

impl RunTrigger {
    /// Every trigger.
    pub const ALL: [RunTrigger; 2] = [Self::Schedule, Self::Manual];

    /// The wire/storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Manual => "manual",
        }
    }

    /// Parses the wire/storage name.
    ///
    /// # Errors
    /// For any other text.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| InvalidValue::new("trigger must be schedule or manual"))
    }
}

/// Where a run is in its life.
///
/// ```text
/// pending ──► running ──► succeeded
///               │  ▲  └─► failed
///               └──┘      (its lease ran out: taken again, or failed after
///                          the last attempt)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Waiting for an instance to take it.
    Pending,
    /// An instance holds its lease and runs it.
    Running,
    /// The job finished without error.
    Succeeded,
    /// The job returned an error, or its lease ran out on its last attempt.
    Failed,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 4] = [Self::Pending, Self::Running, Self::Succeeded, Self::Failed];

    /// The wire/storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// Parses the wire/storage name.
    ///
    /// # Errors
    /// For any other text.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                InvalidValue::new("status must be one of pending, running, succeeded, failed")
            })
    }

    /// Whether the run is over.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// One run of a job: requested by its schedule or by hand, taken by one instance
/// under a lease, finished with an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun(StoredRun);

/// The stored fields of a run, to rebuild it with [`JobRun::restore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRun {
    /// The run.
    pub id: RunId,
    /// Its job.
    pub job: JobName,
    /// Why it exists.
    pub trigger: RunTrigger,
    /// Where it is.
    pub status: RunStatus,
    /// When its schedule came due, or when it was asked for.
    pub requested_at: DateTime<Utc>,
    /// When its latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// The instance of its latest attempt.
    pub instance: Option<InstanceId>,
    /// Until when that instance holds it.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// How many times an instance took it.
    pub attempts: u32,
    /// Why it failed.
    pub error: Option<String>,
}

impl JobRun {
    /// A run waiting to be taken.
    pub(super) fn pending(
        id: RunId,
        job: JobName,
        trigger: RunTrigger,
        requested_at: DateTime<Utc>,
    ) -> Self {
        Self(StoredRun {
            id,
            job,
            trigger,
            status: RunStatus::Pending,
            requested_at,
            started_at: None,
            finished_at: None,
            instance: None,
            lease_expires_at: None,
            attempts: 0,
            error: None,
        })
    }

    /// Rebuilds a stored run.
    pub fn restore(stored: StoredRun) -> Self {
        Self(stored)
    }

    /// The run's id.
    pub fn id(&self) -> RunId {
        self.0.id
    }

    /// Its job.
    pub fn job(&self) -> &JobName {
        &self.0.job
    }

    /// Why it exists.
    pub fn trigger(&self) -> RunTrigger {
        self.0.trigger
    }

    /// Where it is.
    pub fn status(&self) -> RunStatus {
        self.0.status
    }

    /// When its schedule came due, or when it was asked for.
    pub fn requested_at(&self) -> DateTime<Utc> {
        self.0.requested_at
    }

    /// When its latest attempt started.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }

    /// When it finished.
    pub fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }

    /// The instance of its latest attempt.
    pub fn instance(&self) -> Option<&InstanceId> {
        self.0.instance.as_ref()
    }

    /// Until when that instance holds it (while running).
    pub fn lease_expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.lease_expires_at
    }

    /// How many times an instance took it: more than one after a lease ran out.
    pub fn attempts(&self) -> u32 {
        self.0.attempts
    }

    /// Why it failed.
    pub fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }

    /// Whether an instance holds it at `now`.
    pub fn is_held(&self, now: DateTime<Utc>) -> bool {
        self.0.status == RunStatus::Running && self.0.lease_expires_at.is_some_and(|end| end > now)
    }

    /// Whether it is running but its instance's lease ran out by `now`: the
    /// instance died or lost the database.
    pub fn lease_ran_out(&self, now: DateTime<Utc>) -> bool {
        self.0.status == RunStatus::Running && !self.is_held(now)
    }

    /// The run taken by `instance` at `now`, held until `now + lease`.
    pub(super) fn taken(&self, instance: &InstanceId, now: DateTime<Utc>, lease: Lease) -> Self {
        Self(StoredRun {
            status: RunStatus::Running,
            started_at: Some(now),
            instance: Some(instance.clone()),
            lease_expires_at: Some(now + lease.get()),
            attempts: self.0.attempts.saturating_add(1),
            ..self.0.clone()
        })
    }

    /// The run with its lease extended to `now + lease`.
    pub fn renewed(&self, now: DateTime<Utc>, lease: Lease) -> Self {
        Self(StoredRun {
            lease_expires_at: Some(now + lease.get()),
            ..self.0.clone()
        })
    }

    /// The run finished at `now`: succeeded, or failed with `error`.
    pub fn finished(&self, outcome: Result<(), String>, now: DateTime<Utc>) -> Self {
        let (status, error) = match outcome {
            Ok(()) => (RunStatus::Succeeded, None),
            Err(error) => (RunStatus::Failed, Some(error)),
        };
        Self(StoredRun {
            status,
            error,
            finished_at: Some(now),
            lease_expires_at: None,
            ..self.0.clone()
        })
    }
}

/// How long an instance holds a run it took before another may take it over: it
/// renews the lease while the job runs, so only an instance that died (or lost
/// the database) lets it run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease(chrono::TimeDelta);

impl Lease {
    /// Parses a lease of `secs` seconds, 1 to 86 400.
    ///
    /// # Errors
    /// Outside that range.
    pub fn from_secs(secs: u64) -> Result<Self, InvalidValue> {
        match i64::try_from(secs) {
            Ok(secs @ 1..=86_400) => Ok(Self(chrono::TimeDelta::seconds(secs))),
            _ => Err(InvalidValue::new("a lease is between 1 and 86400 seconds")),
        }
    }

    /// The lease's length.
    pub fn get(self) -> chrono::TimeDelta {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("a valid instant")
    }

    fn schedule(raw: &str) -> Schedule {
        Schedule::parse(raw).expect("a valid schedule")
    }

    #[test]
    fn the_next_run_is_the_next_matching_instant_in_utc_strictly_after() {
        let now = at(2026, 11, 24, 12, 0, 0);
        let expected = [
            ("* * * * *", at(2026, 11, 24, 12, 1, 0)),
            ("*/15 * * * *", at(2026, 11, 24, 12, 15, 0)),
            ("30 3 * * *", at(2026, 11, 25, 3, 30, 0)),
            ("@hourly", at(2026, 11, 24, 13, 0, 0)),
            // An optional leading seconds field.
            ("*/10 * * * * *", at(2026, 11, 24, 12, 0, 10)),
            // The last day of the month.
            ("0 0 L * *", at(2026, 11, 30, 0, 0, 0)),
            // Monday 30 November 2026 is the next Monday.
            ("0 9 * * MON", at(2026, 11, 30, 9, 0, 0)),
            // Across a year boundary.
            ("0 0 1 1 *", at(2027, 1, 1, 0, 0, 0)),
        ];
        for (pattern, next) in expected {
            assert_eq!(schedule(pattern).next_after(now), Some(next), "{pattern}");
        }
    }

    #[test]
    fn invalid_or_never_firing_expressions_are_refused_with_a_reason() {
        for raw in [
            "",
            "not cron",
            "61 * * * *",
            "* * * *",
            "0 0 30 2 *",
            &"* ".repeat(150),
        ] {
            let error = Schedule::parse(raw).expect_err(raw);
            assert!(!error.message().is_empty());
        }
    }

    #[test]
    fn an_expression_keeps_its_text_trimmed() {
        assert_eq!(schedule("  0 * * * * ").as_str(), "0 * * * *");
    }

    #[test]
    fn job_names_are_lowercase_words_joined_by_dashes() {
        assert!(JobName::parse("expire-baskets").is_ok());
        assert!(JobName::parse("prune-activity2").is_ok());
        for bad in ["", "Expire", "-x", "a b", "a_b", &"a".repeat(65)] {
            assert!(JobName::parse(bad).is_err(), "{bad}");
        }
    }

    fn hourly_job() -> JobState {
        JobState::registered(
            &JobDefinition {
                name: JobName::parse("sync-catalog").expect("name"),
                default_schedule: schedule("0 * * * *"),
            },
            at(2026, 11, 24, 12, 10, 0),
        )
    }

    #[test]
    fn a_new_schedule_takes_effect_from_the_instant_of_the_change() {
        let job = hourly_job();
        assert_eq!(job.next_run_at(), Some(at(2026, 11, 24, 13, 0, 0)));

        let changed = job
            .changed(
                &JobChanges {
                    schedule: Some(schedule("*/5 * * * *")),
                    enabled: None,
                },
                at(2026, 11, 24, 12, 11, 0),
            )
            .expect("a change");

        assert_eq!(changed.next_run_at(), Some(at(2026, 11, 24, 12, 15, 0)));
        assert_eq!(changed.version(), job.version().next());
    }

    #[test]
    fn disabling_clears_the_next_run_and_enabling_sets_it_from_now() {
        let job = hourly_job();
        let off = |enabled| JobChanges {
            schedule: None,
            enabled: Some(enabled),
        };

        let disabled = job
            .changed(&off(false), at(2026, 11, 24, 12, 20, 0))
            .expect("a change");
        let enabled = disabled
            .changed(&off(true), at(2026, 11, 24, 15, 30, 0))
            .expect("a change");

        assert_eq!(disabled.next_run_at(), None);
        assert!(!disabled.is_due(at(2030, 1, 1, 0, 0, 0)));
        assert_eq!(enabled.next_run_at(), Some(at(2026, 11, 24, 16, 0, 0)));
    }

    #[test]
    fn a_change_to_what_is_already_there_changes_nothing() {
        let job = hourly_job();
        let same = JobChanges {
            schedule: Some(schedule("0 * * * *")),
            enabled: Some(true),
        };
        assert_eq!(job.changed(&same, at(2026, 11, 24, 12, 30, 0)), None);
        assert_eq!(
            job.changed(&JobChanges::default(), at(2026, 11, 24, 12, 30, 0)),
            None
        );
    }

    #[test]
    fn every_status_and_trigger_round_trips_through_its_name() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()), Ok(status));
        }
        for trigger in RunTrigger::ALL {
            assert_eq!(RunTrigger::parse(trigger.as_str()), Ok(trigger));
        }
        assert!(RunStatus::parse("done").is_err());
    }
}
