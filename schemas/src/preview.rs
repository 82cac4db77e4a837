//! Local preview of a cron trigger: the next fire times, computed with the `cron` crate in the
//! trigger's time zone (chrono-tz), before anything reaches Temporal, with a warning for each
//! slot a daylight-saving change removes or collapses. A test compares the fires with
//! Temporal's own future action times across a DST change.

use std::str::FromStr;

use chrono::offset::LocalResult;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::definition::{Trigger, TriggerKind};

/// One upcoming fire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Fire {
    /// The instant, in UTC.
    pub utc: DateTime<Utc>,
    /// The same instant in the trigger's time zone, with its offset.
    pub local: String,
}

/// What a daylight-saving change does to a cron slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DstWarningKind {
    /// The local time does not exist that day (clocks go forward): no fire.
    NonexistentLocalTime,
    /// The local time happens twice that day (clocks go back): one fire, at the later one.
    RepeatedLocalTime,
}

/// A cron slot that a daylight-saving change moves or removes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DstWarning {
    /// Nonexistent or repeated.
    pub kind: DstWarningKind,
    /// The local wall-clock time the expression names (`2027-03-28T02:30:00`, no offset).
    pub local_time: String,
    /// When it fires instead (repeated times); `null` when it does not fire.
    pub fires_at: Option<DateTime<Utc>>,
    /// In words.
    pub message: String,
}

/// The next fires and the DST warnings up to the last of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Preview {
    /// The next fires, in order.
    pub fires: Vec<Fire>,
    /// Slots up to the last fire that a DST change removes or collapses.
    pub warnings: Vec<DstWarning>,
}

/// The next `n` fires strictly after `after` (jitter not applied); see [`preview`].
pub fn next_fires(trigger: &Trigger, after: DateTime<Utc>, n: usize) -> Result<Vec<Fire>, String> {
    preview(trigger, after, n).map(|p| p.fires)
}

/// The next `n` fires strictly after `after` (jitter not applied), honouring `start_at` and
/// `end_at`, with Temporal's DST rules: a local time that does not exist is skipped, one that
/// happens twice fires once, at its later occurrence. Each such slot up to the last fire comes
/// with a warning. Expressions are assumed valid (see [`crate::validate::check_cron`]).
///
/// The expressions are matched against wall-clock times (naive local times), which are then
/// placed in the time zone: that is where a slot turns out to be missing or doubled.
pub fn preview(trigger: &Trigger, after: DateTime<Utc>, n: usize) -> Result<Preview, String> {
    if trigger.kind != TriggerKind::Cron || n == 0 {
        return Ok(Preview::default());
    }
    let tz: Tz = trigger.timezone.as_deref().unwrap_or("UTC").parse().map_err(|_| "unknown time zone".to_owned())?;
    let from = match trigger.start_at {
        Some(start) if start > after => start - chrono::Duration::nanoseconds(1),
        _ => after,
    };
    // Wall-clock candidates from an hour before `from`: a repeated local time can be later
    // than `from` in UTC while its wall-clock reading is earlier.
    let wall_after = from.with_timezone(&tz).naive_local();
    let wall_from = (wall_after - chrono::Duration::hours(1)).and_utc();
    let mut candidates: Vec<NaiveDateTime> = Vec::new();
    for expr in &trigger.cron {
        let trimmed = expr.trim();
        let six_field = if trimmed.starts_with('@') { trimmed.to_owned() } else { format!("0 {trimmed}") };
        let schedule =
            cron::Schedule::from_str(&six_field).map_err(|e| format!("invalid cron expression {trimmed:?}: {e}"))?;
        // Extra candidates: the hour before `from` and removed slots do not count.
        let mut beyond = 0;
        for wall in schedule.after(&wall_from).map(|t| t.naive_utc()) {
            beyond += usize::from(wall > wall_after);
            candidates.push(wall);
            if beyond >= 2 * n + 8 {
                break;
            }
        }
    }
    candidates.sort();
    candidates.dedup();
    let mut out = Preview::default();
    let mut pending = Vec::new();
    for wall in candidates {
        let (fire, warning) = match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => (Some(t.with_timezone(&Utc)), None),
            LocalResult::Ambiguous(_, later) => {
                let later = later.with_timezone(&Utc);
                let message = format!(
                    "{} happens twice on {} in {tz} (clocks go back): it fires once, at the second occurrence ({})",
                    wall.time(),
                    wall.date(),
                    later.to_rfc3339()
                );
                (
                    Some(later),
                    Some(DstWarning {
                        kind: DstWarningKind::RepeatedLocalTime,
                        local_time: wall_text(wall),
                        fires_at: Some(later),
                        message,
                    }),
                )
            }
            LocalResult::None => {
                let message = format!(
                    "{} does not exist on {} in {tz} (clocks go forward): no fire that day",
                    wall.time(),
                    wall.date()
                );
                (
                    None,
                    Some(DstWarning {
                        kind: DstWarningKind::NonexistentLocalTime,
                        local_time: wall_text(wall),
                        fires_at: None,
                        message,
                    }),
                )
            }
        };
        match fire {
            Some(t) if t <= from => continue,
            Some(t) if trigger.end_at.is_some_and(|end| t > end) => break,
            None if wall <= wall_after => continue,
            _ => {}
        }
        // A removed slot is only worth a warning if a fire follows it within the preview.
        pending.extend(warning);
        if let Some(utc) = fire {
            out.warnings.append(&mut pending);
            out.fires.push(Fire { utc, local: utc.with_timezone(&tz).to_rfc3339() });
            if out.fires.len() == n {
                break;
            }
        }
    }
    Ok(out)
}

fn wall_text(wall: NaiveDateTime) -> String {
    wall.format("%Y-%m-%dT%H:%M:%S").to_string()
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
            [
                "2027-03-26T01:30:00+00:00",
                "2027-03-27T01:30:00+00:00",
                "2027-03-29T00:30:00+00:00",
                "2027-03-30T00:30:00+00:00"
            ]
        );
        // Autumn: 02:30 happens twice on 31 October; one fire, at the second (CET) one.
        assert_eq!(
            utc("2027-10-29T00:00:00Z"),
            [
                "2027-10-29T00:30:00+00:00",
                "2027-10-30T00:30:00+00:00",
                "2027-10-31T01:30:00+00:00",
                "2027-11-01T01:30:00+00:00"
            ]
        );
    }

    #[test]
    fn dst_changes_come_with_warnings() {
        let t = trigger(json!({"kind": "cron", "cron": ["30 2 * * *"], "timezone": "Europe/Berlin"}));
        let spring = preview(&t, "2027-03-26T00:00:00Z".parse().unwrap(), 3).unwrap();
        assert_eq!(spring.warnings.len(), 1, "{spring:?}");
        let gap = &spring.warnings[0];
        assert_eq!(
            (gap.kind, gap.local_time.as_str(), gap.fires_at),
            (DstWarningKind::NonexistentLocalTime, "2027-03-28T02:30:00", None)
        );
        assert!(gap.message.contains("does not exist on 2027-03-28 in Europe/Berlin"), "{}", gap.message);
        let autumn = preview(&t, "2027-10-29T00:00:00Z".parse().unwrap(), 4).unwrap();
        assert_eq!(autumn.warnings.len(), 1, "{autumn:?}");
        let repeat = &autumn.warnings[0];
        assert_eq!(repeat.kind, DstWarningKind::RepeatedLocalTime);
        assert_eq!(repeat.local_time, "2027-10-31T02:30:00");
        assert_eq!(repeat.fires_at, Some("2027-10-31T01:30:00Z".parse().unwrap()));
        // No DST change within the preview: no warning.
        assert!(preview(&t, "2027-06-01T00:00:00Z".parse().unwrap(), 10).unwrap().warnings.is_empty());
        // A gap beyond the last fire is not reported.
        assert!(preview(&t, "2027-03-26T00:00:00Z".parse().unwrap(), 2).unwrap().warnings.is_empty());
    }

    #[test]
    fn a_fire_inside_the_repeated_hour_is_found_from_its_first_occurrence() {
        let t = trigger(json!({"kind": "cron", "cron": ["30 2 * * *"], "timezone": "Europe/Berlin"}));
        // 00:50Z is 02:50 CEST, the first pass through the repeated hour: 02:30 CET is still ahead.
        let fires = next_fires(&t, "2027-10-31T00:50:00Z".parse().unwrap(), 1).unwrap();
        assert_eq!(fires[0].utc.to_rfc3339(), "2027-10-31T01:30:00+00:00");
    }

    #[test]
    fn frequent_expressions_are_not_starved_by_the_look_back() {
        let t = trigger(json!({"kind": "cron", "cron": ["* * * * *"]}));
        let fires = next_fires(&t, "2027-01-01T10:00:30Z".parse().unwrap(), 10).unwrap();
        assert_eq!(fires.len(), 10);
        assert_eq!(fires[0].utc.to_rfc3339(), "2027-01-01T10:01:00+00:00");
        assert_eq!(fires[9].utc.to_rfc3339(), "2027-01-01T10:10:00+00:00");
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
