//! Local preview of a cron trigger: the next fire times, computed with the `cron` crate in the
//! trigger's time zone (chrono-tz), before anything reaches Temporal. A test compares this
//! with Temporal's own future action times across a DST change.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::definition::{Trigger, TriggerKind};

/// One upcoming fire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fire {
    /// The instant, in UTC.
    pub utc: DateTime<Utc>,
    /// The same instant in the trigger's time zone, with its offset.
    pub local: String,
}

/// The next `n` fires strictly after `after` (jitter not applied), honouring `start_at` and
/// `end_at`. Expressions are assumed valid (see [`crate::validate::check_cron`]).
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
        fires.extend(schedule.after(&from).take(n).map(|t| t.with_timezone(&Utc)));
    }
    fires.sort();
    fires.dedup();
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
    fn several_expressions_merge_and_bounds_apply() {
        let t = trigger(json!({"kind": "cron", "cron": ["0 12 * * *", "0 6 * * *"],
                               "start_at": "2030-01-02T00:00:00Z", "end_at": "2030-01-03T00:00:00Z"}));
        let fires = next_fires(&t, "2026-01-01T00:00:00Z".parse().unwrap(), 10).unwrap();
        let utc: Vec<String> = fires.iter().map(|f| f.utc.to_rfc3339()).collect();
        assert_eq!(utc, ["2030-01-02T06:00:00+00:00", "2030-01-02T12:00:00+00:00"]);
    }
}
