//! U+0000 in what the store keeps (ADR-020).
//!
//! Postgres `text` and `jsonb` cannot hold U+0000, but valid JSON can (`"a\u0000b"`): an event
//! payload a webhook sends, an `http` answer, a task's output. So:
//!
//! - JSON the store writes goes through [`encode`] and comes back through [`decode`]: in every
//!   string and object key, U+0000 is stored as `␀0` and `␀` (U+2400) itself as `␀␀`, so the
//!   value that comes back is the value that went in, byte for byte. Values without either
//!   character (nearly all) are stored as they are, without a copy.
//! - Text meant for people (messages, errors, titles) goes through [`text`]: U+0000 becomes
//!   `␀`. Such text is never parsed back, so losing the difference costs nothing.
//! - Identifiers (keys, ids) never reach here with U+0000: the API and the planner refuse them.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// The escape character, U+2400 SYMBOL FOR NULL (also what [`text`] shows U+0000 as).
pub const ESCAPE: char = '\u{2400}';

fn needs_escape(s: &str) -> bool {
    s.contains(['\0', ESCAPE])
}

fn any_needs_escape(value: &Value) -> bool {
    match value {
        Value::String(s) => needs_escape(s),
        Value::Array(items) => items.iter().any(any_needs_escape),
        Value::Object(map) => map.iter().any(|(k, v)| needs_escape(k) || any_needs_escape(v)),
        _ => false,
    }
}

fn encode_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '\0' => {
                out.push(ESCAPE);
                out.push('0');
            }
            ESCAPE => {
                out.push(ESCAPE);
                out.push(ESCAPE);
            }
            other => out.push(other),
        }
    }
    out
}

fn decode_str(s: String) -> String {
    if !s.contains(ESCAPE) {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ESCAPE {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('0') => {
                chars.next();
                out.push('\0');
            }
            Some(&ESCAPE) => {
                chars.next();
                out.push(ESCAPE);
            }
            // Not written by `encode` (text stored before it, or by hand): kept as it is.
            _ => out.push(ESCAPE),
        }
    }
    out
}

fn encode_owned(value: &Value) -> Value {
    match value {
        Value::String(s) if needs_escape(s) => Value::String(encode_str(s)),
        Value::Array(items) => Value::Array(items.iter().map(encode_owned).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (if needs_escape(k) { encode_str(k) } else { k.clone() }, encode_owned(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// `value` as Postgres can store it; borrowed when nothing needs escaping.
pub fn encode(value: &Value) -> Cow<'_, Value> {
    if any_needs_escape(value) { Cow::Owned(encode_owned(value)) } else { Cow::Borrowed(value) }
}

/// A value [`encode`] stored, as it was.
pub fn decode(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(decode_str(s)),
        Value::Array(items) => Value::Array(items.into_iter().map(decode).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (decode_str(k), decode(v))).collect()),
        other => other,
    }
}

/// Like [`decode`], for a column that may be `null`.
pub fn decode_opt(value: Option<Value>) -> Option<Value> {
    value.map(decode)
}

/// Text for people as Postgres can store it: U+0000 shown as `␀`.
pub fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') { Cow::Owned(s.replace('\0', "\u{2400}")) } else { Cow::Borrowed(s) }
}

/// Like [`text`], for an optional column.
pub fn text_opt(s: Option<&str>) -> Option<Cow<'_, str>> {
    s.map(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_come_back_as_they_went_in() {
        for value in [
            json!("a\u{0}b"),
            json!({"k\u{0}": ["\u{0}", "\u{2400}", "\u{2400}0", "\u{0}\u{2400}", "\u{2400}\u{0}", "x\u{2400}\u{2400}0\u{0}"]}),
            json!({"plain": [1, true, null, "text"]}),
        ] {
            let stored = encode(&value).into_owned();
            assert!(!stored.to_string().contains("\\u0000"), "{stored}");
            assert_eq!(decode(stored), value);
        }
    }

    #[test]
    fn values_without_nul_are_not_copied() {
        let value = json!({"a": ["b", {"c": "d"}]});
        assert!(matches!(encode(&value), Cow::Borrowed(_)));
        assert_eq!(text("plain"), Cow::Borrowed("plain"));
        assert_eq!(text("a\u{0}b"), "a\u{2400}b");
    }
}
