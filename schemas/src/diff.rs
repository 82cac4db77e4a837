//! A structured diff between two definition documents.
//!
//! Lists of objects that carry an `id` (tasks) or a `name` (context sources) are matched by
//! it, so reordering is not a change and paths read `tasks[remind].when`, not `tasks[3].when`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One difference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    /// Where: `trigger.cron[0]`, `tasks[remind].when`.
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub op: ChangeOp,
    /// The old value (absent when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    /// The new value (absent when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

/// Kinds of difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    /// Only in the new document.
    Added,
    /// Only in the old document.
    Removed,
    /// In both, with different values.
    Changed,
}

/// Every difference from `old` to `new`, in document order.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    walk("", old, new, &mut changes);
    changes
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// The key objects of a list are matched by: `id`, else `name`, when every element has one.
fn identity(items: &[Value]) -> Option<&'static str> {
    ["id", "name"]
        .into_iter()
        .find(|k| !items.is_empty() && items.iter().all(|v| v.get(k).and_then(Value::as_str).is_some()))
}

fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<Change>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    Some(vb) => walk(&join(path, k), va, vb, out),
                    None => out.push(Change {
                        path: join(path, k),
                        op: ChangeOp::Removed,
                        from: Some(va.clone()),
                        to: None,
                    }),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(Change { path: join(path, k), op: ChangeOp::Added, from: None, to: Some(vb.clone()) });
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => match (identity(a), identity(b)) {
            (Some(ka), Some(kb)) if ka == kb => {
                let key_of = |v: &Value| v[ka].as_str().unwrap_or_default().to_owned();
                for va in a {
                    let key = key_of(va);
                    let at = format!("{path}[{key}]");
                    match b.iter().find(|vb| key_of(vb) == key) {
                        Some(vb) => walk(&at, va, vb, out),
                        None => out.push(Change { path: at, op: ChangeOp::Removed, from: Some(va.clone()), to: None }),
                    }
                }
                for vb in b {
                    let key = key_of(vb);
                    if !a.iter().any(|va| key_of(va) == key) {
                        out.push(Change {
                            path: format!("{path}[{key}]"),
                            op: ChangeOp::Added,
                            from: None,
                            to: Some(vb.clone()),
                        });
                    }
                }
            }
            _ => {
                for i in 0..a.len().max(b.len()) {
                    let at = format!("{path}[{i}]");
                    match (a.get(i), b.get(i)) {
                        (Some(va), Some(vb)) => walk(&at, va, vb, out),
                        (Some(va), None) => {
                            out.push(Change { path: at, op: ChangeOp::Removed, from: Some(va.clone()), to: None })
                        }
                        (None, Some(vb)) => {
                            out.push(Change { path: at, op: ChangeOp::Added, from: None, to: Some(vb.clone()) })
                        }
                        (None, None) => {}
                    }
                }
            }
        },
        (a, b) if a != b => out.push(Change {
            path: path.to_owned(),
            op: ChangeOp::Changed,
            from: Some(a.clone()),
            to: Some(b.clone()),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn matches_tasks_by_id_and_reports_paths() {
        let old = json!({"name": "A", "trigger": {"kind": "cron", "cron": ["0 9 * * *"]},
                         "tasks": [{"id": "a", "kind": "noop"}, {"id": "b", "kind": "noop", "when": "x"}]});
        let new = json!({"name": "A", "trigger": {"kind": "cron", "cron": ["0 10 * * *"]},
                         "tasks": [{"id": "b", "kind": "noop", "when": "y"}, {"id": "c", "kind": "noop"}]});
        let paths: Vec<(String, ChangeOp)> = diff(&old, &new).into_iter().map(|c| (c.path, c.op)).collect();
        assert_eq!(
            paths,
            [
                ("trigger.cron[0]".to_owned(), ChangeOp::Changed),
                ("tasks[a]".to_owned(), ChangeOp::Removed),
                ("tasks[b].when".to_owned(), ChangeOp::Changed),
                ("tasks[c]".to_owned(), ChangeOp::Added),
            ]
        );
        assert!(diff(&old, &old).is_empty());
    }
}
