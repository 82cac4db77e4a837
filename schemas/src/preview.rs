//! Local preview of a cron trigger: the next fire times, computed with the `cron` crate in the
//! trigger's time zone (chrono-tz), before anything reaches Temporal. A test compares this
//! with Temporal's own future action times across a DST change.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::Serialize;

use crate::definition::{Trigger, TriggerKind};

/// One upcoming fire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Fire {
    /// The instant, in UTC.
    pub utc: DateTime<Utc>,
    /// The same instant in the trigger's time zone, with its offset.
    pub local: String,
}

/// The next `n` fires strictly after `after` (jitter not applied), honouring `start_at` and
/// `end_at`, with Temporal's DST rules: a local time that does not exist is skipped, one that
/// happens twice fires once, at its later occurrence. Expressions are assumed valid (see
/// [`crate::validate::check_cron`]).
pub fn next_fires(trigger: &Trigger, after: DateTime<Utc>, n: usize) -> Result<Vec<Fire>, String> {
    if trigger.kind != TriggerKind::Cron {
        return Ok(Vec::new());
    }
    let tz: Tz = trigger.timezone.as_deref().unwrap_or("UTC").parse().map_err(|_| "unknown time zone".to_owned())?;
    let from = match trigger.start_at {
        Some(start) if start > after => start - chrono::Duration::nanoseconds(1),
        _ => after,
    }
    .with_timezone(&tz);
    let mut fires: Vec<DateTime<Utc>> = Vec::new();
    for expr in &trigger.cron {
        let trimmed = expr.trim();
        let six_field = if trimmed.starts_with('@') { trimmed.to_owned() } else { format!("0 {trimmed}") };
        let schedule = cron::Schedule::from_str(&six_field).map_err(|e| format!("invalid cron expression {trimmed:?}: {e}"))?;
        // Extra candidates: collapsing repeated local times below may drop some.
        fires.extend(schedule.after(&from).take(2 * n + 2).map(|t| t.with_timezone(&Utc)));
    }
    fires.sort();
    fires.dedup();
    // A local time that happens twice (the autumn DST night) fires once, at its later
    // occurrence, as Temporal does; nonexistent local times never come out of `cron`.
    let mut collapsed: Vec<DateTime<Utc>> = Vec::with_capacity(fires.len());
    for fire in fires {
        let local = fire.with_timezone(&tz).naive_local();
        if let Some(last) = collapsed.last_mut().filter(|last| last.with_timezone(&tz).naive_local() == local) {
            *last = fire;
        } else {
            collapsed.push(fire);
        }
    }
    let mut fires = collapsed;
    if let Some(end) = trigger.end_at {
        fires.retain(|t| *t <= end);
    }
    fires.truncate(n);
    Ok(fires.into_iter().map(|utc| Fire { utc, local: utc.with_timezone(&tz).to_rfc3339() }).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn trigger(value: serde_json::Value) -> Trigger {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn berlin_mornings_cross_the_spring_dst_change() {
        let t = trigger(json!({"kind": "cron", "cron": ["0 9 * * *"], "timezone": "Europe/Berlin"}));
        let after: DateTime<Utc> = "2027-03-26T12:00:00Z".parse().unwrap();
        let fires = next_fires(&t, after, 3).unwrap();
        let utc: Vec<String> = fires.iter().map(|f| f.utc.to_rfc3339()).collect();
        // 09:00 CET is 08:00 UTC; from Sunday 28 March 09:00 CEST is 07:00 UTC.
        assert_eq!(utc, ["2027-03-27T08:00:00+00:00", "2027-03-28T07:00:00+00:00", "2027-03-29T07:00:00+00:00"]);
        assert_eq!(fires[1].local, "2027-03-28T09:00:00+02:00");
    }

    #[test]
    fn dst_nights_follow_temporal() {
        let t = trigger(json!({"kind": "cron", "cron": ["30 2 * * *"], "timezone": "Europe/Berlin"}));
        let utc = |after: &str| -> Vec<String> {
            next_fires(&t, after.parse().unwrap(), 4).unwrap().iter().map(|f| f.utc.to_rfc3339()).collect()
        };
        // Spring: 02:30 does not exist on 28 March; no fire that day.
        assert_eq!(
            utc("2027-03-26T00:00:00Z"),
            ["2027-03-26T01:30:00+00:00", "2027-03-27T01:30:00+00:00", "2027-03-29T00:30:00+00:00", "2027-03-30T00:30:00+00:00"]
        );
        // Autumn: 02:30 happens twice on 31 October; one fire, at the second (CET) one.
        assert_eq!(
            utc("2027-10-29T00:00:00Z"),
            ["2027-10-29T00:30:00+00:00", "2027-10-30T00:30:00+00:00", "2027-10-31T01:30:00+00:00", "2027-11-01T01:30:00+00:00"]
        );
    }

    #[test]
    fn several_expressions_merge_and_bounds_apply() {
        let t = trigger(json!({"kind": "cron", "cron": ["0 12 * * *", "0 6 * * *"],
                               "start_at": "2030-01-02T00:00:00Z", "end_at": "2030-01-03T00:00:00Z"}));
        let fires = next_fires(&t, "2026-01-01T00:00:00Z".parse().unwrap(), 10).unwrap();
        let utc: Vec<String> = fires.iter().map(|f| f.utc.to_rfc3339()).collect();
        assert_eq!(utc, ["2030-01-02T06:00:00+00:00", "2030-01-02T12:00:00+00:00"]);
    }
}

