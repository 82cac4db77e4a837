//! Durable event ingress: what `POST /api/v1/events` commits inside the request (a `pending`
//! receipt and its `accepted` decision, or the `deduplicated` decision of a key seen before),
//! and what the API's starter reads and writes as it starts the runs in Temporal.

use taskfactory_schemas::TriggerEvent;
use taskfactory_schemas::decisions::DecisionOutcome;

use super::*;

/// An event's run that is accepted and not started yet.
#[derive(Clone, Debug)]
pub struct PendingStart {
    /// The definition.
    pub definition_id: String,
    /// The event's dedupe key.
    pub dedupe_key: String,
    /// The run's deterministic workflow id.
    pub workflow_id: String,
    /// The definition version the event was accepted for (`None`: receipts of older releases).
    pub version: Option<i32>,
    /// The event.
    pub event: TriggerEvent,
    /// Start attempts so far.
    pub attempts: i32,
}

/// An event taken for a definition, to commit.
#[derive(Clone, Debug)]
pub struct Acceptance<'a> {
    /// The definition.
    pub definition_id: &'a str,
    /// The version whose trigger took it.
    pub version: i32,
    /// The rendered dedupe key.
    pub dedupe_key: &'a str,
    /// The run's deterministic workflow id.
    pub workflow_id: &'a str,
    /// The event as stored in the receipt.
    pub event: &'a Value,
    /// The decision log's `detail` (the event, maybe truncated).
    pub detail: &'a Value,
    /// The definitions' change counter the definition was read at ([`Listening::generation`]).
    pub generation: i64,
}

/// What [`Store::accept_event`] committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// A new dedupe key: a `pending` receipt and an `accepted` decision.
    New,
    /// A key seen before: a `deduplicated` decision.
    Duplicate,
    /// Nothing: the definitions changed since they were read; read them again.
    Stale,
}

impl Store {
    /// Commits an event for a definition ([`Self::accept_events`] with one event).
    pub async fn accept_event(&self, a: &Acceptance<'_>) -> Result<Accept> {
        let answers = self.accept_events(std::slice::from_ref(a)).await?;
        answers.into_iter().next().ok_or_else(|| StoreError::Corrupt("no answer for an acceptance".into()))
    }

    /// Commits events for definitions in one statement (a group commit of concurrent
    /// requests), answering each in order: a new dedupe key gets a `pending` receipt and an
    /// `accepted` decision (keyed by the run, so the starter and the run turn it into
    /// `fired`); a key seen before, or earlier in the same batch, gets a `deduplicated`
    /// decision; nothing is written for one whose `generation` is not the definitions' change
    /// counter any more ([`Accept::Stale`]).
    pub async fn accept_events(&self, batch: &[Acceptance<'_>]) -> Result<Vec<Accept>> {
        let column = |f: fn(&Acceptance<'_>) -> String| batch.iter().map(f).collect::<Vec<String>>();
        let definitions = column(|a| a.definition_id.to_owned());
        let keys = column(|a| nul::text(a.dedupe_key).into_owned());
        let workflows = column(|a| a.workflow_id.to_owned());
        let accepted = column(|a| nul::text(&format!("accepted: {} starts shortly", a.workflow_id)).into_owned());
        let duplicate = column(|a| {
            nul::text(&format!("dedupe key {:?} already started {}", a.dedupe_key, a.workflow_id)).into_owned()
        });
        let events: Vec<Value> = batch.iter().map(|a| nul::encode(a.event).into_owned()).collect();
        let details: Vec<Value> = batch.iter().map(|a| nul::encode(a.detail).into_owned()).collect();
        let versions: Vec<i32> = batch.iter().map(|a| a.version).collect();
        let generations: Vec<i64> = batch.iter().map(|a| a.generation).collect();
        let answers: Vec<String> = sqlx::query_scalar(
            "with input as ( \
               select * from unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::int4[], $6::text[], $7::jsonb[], $8::text[], $9::int8[]) \
                 with ordinality as i(def, key, wf, event, version, accepted, detail, duplicate, gen, ord) \
             ), ok as ( \
               select i.*, row_number() over (partition by i.def, i.key order by i.ord) = 1 as first \
               from input i join definition_generation g on g.n = i.gen \
             ), receipt as ( \
               insert into event_receipts (definition_id, dedupe_key, workflow_id, event, state, version) \
               select def, key, wf, event, 'pending', version from ok where first order by ord \
               on conflict (definition_id, dedupe_key) do nothing returning definition_id, dedupe_key \
             ), new as ( \
               select ok.ord from ok join receipt r on r.definition_id = ok.def and r.dedupe_key = ok.key where ok.first \
             ), accepted as ( \
               insert into trigger_decisions (definition_id, source, outcome, message, workflow_id, dedupe_key, detail, decision_key) \
               select def, 'event', 'accepted', accepted, wf, key, detail, 'run:' || wf from ok where ord in (select ord from new) order by ord \
               on conflict (definition_id, decision_key) where decision_key is not null do nothing \
             ), duplicate as ( \
               insert into trigger_decisions (definition_id, source, outcome, message, workflow_id, dedupe_key, detail) \
               select def, 'event', 'deduplicated', duplicate, wf, key, detail from ok where ord not in (select ord from new) order by ord \
             ) select case when ok.ord is null then 'stale' when i.ord in (select ord from new) then 'new' else 'duplicate' end \
             from input i left join ok on ok.ord = i.ord order by i.ord",
        )
        .bind(&definitions)
        .bind(&keys)
        .bind(&workflows)
        .bind(&events)
        .bind(&versions)
        .bind(&accepted)
        .bind(&details)
        .bind(&duplicate)
        .bind(&generations)
        .fetch_all(&self.pool)
        .await?;
        Ok(batch
            .iter()
            .zip(answers)
            .map(|(a, answer)| {
                let (accept, outcome) = match answer.as_str() {
                    "new" => (Accept::New, DecisionOutcome::Accepted),
                    "duplicate" => (Accept::Duplicate, DecisionOutcome::Deduplicated),
                    _ => return Accept::Stale,
                };
                metrics().trigger_decisions.with_label_values(&[a.definition_id, "event", outcome.as_str()]).inc();
                accept
            })
            .collect())
    }

    /// The definitions' change counter now (see [`Listening::generation`]).
    pub async fn definition_generation(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("select n from definition_generation").fetch_one(&self.pool).await?)
    }

    /// Records an event's decision that starts nothing (filtered, an error, a disabled
    /// definition) while the definitions' change counter is still `generation`; `false`
    /// records nothing: they changed, read them again.
    pub async fn record_event_decision(&self, decision: &NewDecision, generation: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        if !definitions_current(&mut tx, generation).await? {
            return Ok(false);
        }
        super::decisions::insert_decision(&mut *tx, decision).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Accepted events whose run has not been started, oldest first, at most `limit`.
    pub async fn pending_starts(&self, limit: i64) -> Result<Vec<PendingStart>> {
        let rows: Vec<(String, String, String, Option<i32>, Value, i32)> = sqlx::query_as(
            "select definition_id, dedupe_key, workflow_id, version, event, attempts from event_receipts \
             where state = 'pending' order by received_at limit $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(definition_id, dedupe_key, workflow_id, version, event, attempts)| {
                let event = serde_json::from_value(nul::decode(event))
                    .map_err(|e| StoreError::Corrupt(format!("the receipt of {workflow_id}: {e}")))?;
                Ok(PendingStart { definition_id, dedupe_key, workflow_id, version, event, attempts })
            })
            .collect()
    }

    /// Records that Temporal has the run of an accepted event (started now, or before): the
    /// receipt is `started` and its `accepted` decision `fired`.
    pub async fn mark_started(&self, start: &PendingStart, run_id: Option<&str>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "update event_receipts set state = 'started', run_id = coalesce(run_id, $3), started_at = now(), \
             attempts = attempts + 1 where definition_id = $1 and dedupe_key = $2 and state = 'pending'",
        )
        .bind(&start.definition_id)
        .bind(nul::text(&start.dedupe_key))
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        fire_accepted(&mut tx, &start.definition_id, &start.workflow_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed start: counted, with its error; `terminal` ends the receipt (`error`,
    /// and its decision says why), otherwise the starter tries again.
    pub async fn mark_start_failed(&self, start: &PendingStart, error: &str, terminal: bool) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "update event_receipts set attempts = attempts + 1, last_error = $3, \
             state = case when $4 then 'error' else state end \
             where definition_id = $1 and dedupe_key = $2 and state = 'pending'",
        )
        .bind(&start.definition_id)
        .bind(nul::text(&start.dedupe_key))
        .bind(nul::text(error))
        .bind(terminal)
        .execute(&mut *tx)
        .await?;
        if terminal {
            let done = sqlx::query(
                "update trigger_decisions set outcome = 'error', message = $3 \
                 where definition_id = $1 and decision_key = 'run:' || $2 and outcome = 'accepted'",
            )
            .bind(&start.definition_id)
            .bind(&start.workflow_id)
            .bind(nul::text(&format!("the accepted event's run could not start: {error}")))
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                metrics().trigger_decisions.with_label_values(&[start.definition_id.as_str(), "event", "error"]).inc();
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many accepted events wait for their run to start.
    pub async fn count_pending_starts(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("select count(*) from event_receipts where state = 'pending'")
            .fetch_one(&self.pool)
            .await?)
    }
}

/// Whether the definitions' change counter is still `generation`.
async fn definitions_current(tx: &mut Transaction<'_, Postgres>, generation: i64) -> Result<bool> {
    let n: i64 = sqlx::query_scalar("select n from definition_generation").fetch_one(&mut **tx).await?;
    Ok(n == generation)
}

/// Turns a run's `accepted` decision into `fired` (the starter started it, or the run itself
/// recorded its start first).
pub(crate) async fn fire_accepted(
    tx: &mut Transaction<'_, Postgres>,
    definition_id: &str,
    workflow_id: &str,
) -> Result<()> {
    let done = sqlx::query(
        "update trigger_decisions set outcome = 'fired', message = $3 \
         where definition_id = $1 and decision_key = 'run:' || $2 and outcome = 'accepted'",
    )
    .bind(definition_id)
    .bind(workflow_id)
    .bind(format!("started {workflow_id}"))
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 1 {
        metrics().trigger_decisions.with_label_values(&[definition_id, "event", "fired"]).inc();
    }
    Ok(())
}

/// An event taken by a debounced or batched trigger, to commit.
#[derive(Clone, Debug)]
pub struct GroupAcceptance<'a> {
    /// The event as accepted for its definition.
    pub event: Acceptance<'a>,
    /// `debounce` or `batch`.
    pub mode: GroupMode,
    /// The rendered group key (`""`: one group).
    pub group_key: &'a str,
}

/// How a group of events closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupMode {
    /// `period` after the last event, or `max_wait` after the first.
    Debounce {
        /// Quiet time after the last event.
        period: std::time::Duration,
        /// Longest wait after the first event.
        max_wait: Option<std::time::Duration>,
    },
    /// At `max_size` events, or `max_wait` after the first.
    Batch {
        /// Most events of one run.
        max_size: u32,
        /// Longest wait after the first event.
        max_wait: std::time::Duration,
    },
}

impl GroupMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Debounce { .. } => "debounce",
            Self::Batch { .. } => "batch",
        }
    }
}

/// What became of an event of a debounced or batched trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grouped {
    /// It went into the group whose run is `workflow_id`, as its `position`-th event.
    Joined {
        /// The group's run.
        workflow_id: String,
        /// 1 for the event that opened the group.
        position: i32,
    },
    /// Its dedupe key was seen before: it went into `workflow_id` then.
    Duplicate {
        /// The run of the earlier event.
        workflow_id: String,
    },
    /// Nothing: the definitions changed since they were read; read them again.
    Stale,
}

/// A debounced or batched group due to start.
#[derive(Clone, Debug)]
pub struct DueGroup {
    /// Its id.
    pub id: i64,
    /// The definition.
    pub definition_id: String,
    /// The version its first event was accepted for.
    pub version: i32,
    /// The run's workflow id.
    pub workflow_id: String,
    /// The first event's dedupe key (the run's key).
    pub dedupe_key: String,
    /// Its events, in arrival order.
    pub events: Vec<TriggerEvent>,
}

impl Store {
    /// Commits an event of a debounced or batched trigger: deduplicated per event by its
    /// receipt, then appended to the open group of its key (opened if there is none), whose
    /// start moves out by the debounce period (never past `max_wait` after its first event);
    /// a batch reaching `max_size` closes at once. One transaction, under a lock per key.
    pub async fn accept_grouped_event(&self, g: &GroupAcceptance<'_>) -> Result<Grouped> {
        let a = &g.event;
        let began = Instant::now();
        let mut tx = self.pool.begin().await?;
        if !definitions_current(&mut tx, a.generation).await? {
            return Ok(Grouped::Stale);
        }
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 19))")
            .bind(a.definition_id)
            .bind(nul::text(g.group_key))
            .execute(&mut *tx)
            .await?;
        let seen: Option<String> =
            sqlx::query_scalar("select workflow_id from event_receipts where definition_id = $1 and dedupe_key = $2")
                .bind(a.definition_id)
                .bind(nul::text(a.dedupe_key))
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(workflow_id) = seen {
            let mut d = NewDecision::unkeyed(
                a.definition_id,
                RunTrigger::Event,
                DecisionOutcome::Deduplicated,
                format!("dedupe key {:?} already went into {workflow_id}", a.dedupe_key),
            );
            d.entry.workflow_id = Some(workflow_id.clone());
            d.entry.dedupe_key = Some(a.dedupe_key.to_owned());
            d.entry.detail = a.detail.clone();
            super::decisions::insert_decision(&mut *tx, &d).await?;
            commit_write(tx, "accept_grouped_event", began).await?;
            return Ok(Grouped::Duplicate { workflow_id });
        }
        let (period, max_wait, max_size) = match g.mode {
            GroupMode::Debounce { period, max_wait } => (Some(period), max_wait, None),
            GroupMode::Batch { max_size, max_wait } => (None, Some(max_wait), Some(max_size)),
        };
        let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
        // The open group of the key, or a new one named after this event.
        let open: Option<(i64, String)> = sqlx::query_as(
            "select id, workflow_id from event_groups where definition_id = $1 and group_key = $2 and state = 'open' for update",
        )
        .bind(a.definition_id)
        .bind(nul::text(g.group_key))
        .fetch_optional(&mut *tx)
        .await?;
        let (id, workflow_id) = match open {
            Some(open) => open,
            None => sqlx::query_as(
                "insert into event_groups (definition_id, version, mode, group_key, workflow_id, dedupe_key, fire_at) \
                 values ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => coalesce($7, $8))) returning id, workflow_id",
            )
            .bind(a.definition_id)
            .bind(a.version)
            .bind(g.mode.as_str())
            .bind(nul::text(g.group_key))
            .bind(a.workflow_id)
            .bind(nul::text(a.dedupe_key))
            .bind(secs(period))
            .bind(secs(max_wait))
            .fetch_one(&mut *tx)
            .await?,
        };
        let position: i32 = sqlx::query_scalar(
            "update event_groups set events = events || jsonb_build_array($2::jsonb), event_count = event_count + 1, \
             last_at = now(), \
             fire_at = case when $3::float8 is null then fire_at \
                 else least(now() + make_interval(secs => $3), first_at + make_interval(secs => coalesce($4, 1e9))) end, \
             state = case when $5::int is not null and event_count + 1 >= $5 then 'closed' else state end \
             where id = $1 returning event_count",
        )
        .bind(id)
        .bind(nul::encode(a.event).as_ref())
        .bind(secs(period))
        .bind(secs(max_wait))
        .bind(max_size.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "insert into event_receipts (definition_id, dedupe_key, workflow_id, event, state, version) \
             values ($1, $2, $3, $4, 'grouped', $5)",
        )
        .bind(a.definition_id)
        .bind(nul::text(a.dedupe_key))
        .bind(&workflow_id)
        .bind(nul::encode(a.event).as_ref())
        .bind(a.version)
        .execute(&mut *tx)
        .await?;
        let (outcome, verb) = match g.mode {
            GroupMode::Debounce { .. } => (DecisionOutcome::Debounced, "debounced"),
            GroupMode::Batch { .. } => (DecisionOutcome::Batched, "batched"),
        };
        let mut d = NewDecision::unkeyed(
            a.definition_id,
            RunTrigger::Event,
            outcome,
            format!("{verb} into {workflow_id} (event {position} of it)"),
        );
        d.entry.workflow_id = Some(workflow_id.clone());
        d.entry.dedupe_key = Some(a.dedupe_key.to_owned());
        d.entry.reason = (!g.group_key.is_empty()).then(|| g.group_key.to_owned());
        d.entry.detail = a.detail.clone();
        super::decisions::insert_decision(&mut *tx, &d).await?;
        commit_write(tx, "accept_grouped_event", began).await?;
        Ok(Grouped::Joined { workflow_id, position })
    }

    /// Closes the open groups whose time has come, and answers the closed groups not started
    /// yet, the earliest due first, at most `limit`.
    pub async fn due_groups(&self, limit: i64) -> Result<Vec<DueGroup>> {
        sqlx::query("update event_groups set state = 'closed' where state = 'open' and fire_at <= now()")
            .execute(&self.pool)
            .await?;
        let rows: Vec<(i64, String, i32, String, String, Value)> = sqlx::query_as(
            "select id, definition_id, version, workflow_id, dedupe_key, events from event_groups \
             where state = 'closed' order by fire_at limit $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, definition_id, version, workflow_id, dedupe_key, events)| {
                let events = serde_json::from_value(nul::decode(events))
                    .map_err(|e| StoreError::Corrupt(format!("the events of {workflow_id}: {e}")))?;
                Ok(DueGroup { id, definition_id, version, workflow_id, dedupe_key, events })
            })
            .collect()
    }

    /// Records that Temporal has a group's run (`error`: it cannot start, and why).
    pub async fn mark_group(&self, id: i64, error: Option<&str>) -> Result<()> {
        sqlx::query(
            "update event_groups set attempts = attempts + 1, \
             state = case when $2::text is null then 'started' else 'error' end, \
             started_at = case when $2::text is null then now() end, last_error = $2 where id = $1 and state = 'closed'",
        )
        .bind(id)
        .bind(error.map(nul::text))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Counts a failed start of a group's run (Temporal unreachable): it is tried again.
    pub async fn group_start_failed(&self, id: i64, error: &str) -> Result<()> {
        sqlx::query("update event_groups set attempts = attempts + 1, last_error = $2 where id = $1")
            .bind(id)
            .bind(nul::text(error))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
