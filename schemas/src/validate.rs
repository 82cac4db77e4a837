//! Parsing and validating definition documents.
//!
//! Structure errors (wrong type, unknown field) come from serde with the path of the field;
//! everything serde cannot know (cron syntax, unknown context names, dependency cycles,
//! templates that do not compile, fields that do not belong to a kind) is checked afterwards,
//! and *every* such problem is reported, each with its path:
//! `tasks[1].for_each: unknown context "invoices"`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::definition::{ActivityDefinition, ContextKind, ContextSource, TaskTemplate, Trigger, TriggerKind};
use crate::duration::parse_duration;
use crate::ids::check_slug;
use crate::template::{SecretUse, Templates};

/// One problem in a document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    /// Where: `tasks[1].for_each`; empty for the document as a whole.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Every problem found in a document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    /// The problems, in document order.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("; "))
    }
}

impl ValidationErrors {
    /// A single error at `path`.
    pub fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { errors: vec![FieldError { path: path.into(), message: message.into() }] }
    }
}

/// The syntax a document is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML (1.2; JSON documents parse too).
    Yaml,
}

/// Parses JSON or YAML text into a JSON value, reporting syntax errors with their position.
pub fn parse_text(text: &str, format: Format) -> Result<Value, ValidationErrors> {
    match format {
        Format::Json => serde_json::from_str(text).map_err(|e| {
            ValidationErrors::single("", format!("invalid JSON at line {}, column {}: {e}", e.line(), e.column()))
        }),
        Format::Yaml => {
            serde_yaml_ng::from_str(text).map_err(|e| ValidationErrors::single("", format!("invalid YAML: {e}")))
        }
    }
}

/// Whether a string field may not hold `c`: control characters other than tab, line feed and
/// carriage return. Postgres cannot store U+0000 at all, and none of them belongs in a name,
/// a key or a template.
pub fn is_refused_char(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Checks that an instant lies in the years 1 to 9999: what RFC 3339 can write, and inside
/// what Postgres and Temporal store (the parser accepts far more).
pub fn check_instant(at: &chrono::DateTime<chrono::Utc>) -> Result<(), String> {
    use chrono::Datelike;
    if (1..=9999).contains(&at.year()) {
        Ok(())
    } else {
        Err(format!("{} is outside the years 1 to 9999", at.to_rfc3339()))
    }
}

/// Most problems [`control_character_errors`] reports.
const MAX_CONTROL_ERRORS: usize = 50;

/// Every string and object key in `value` that holds a refused control character
/// ([`is_refused_char`]), with its path (`tasks[0].params.greeting`, `[2].key`); the subtrees
/// under object keys named in `free_form` (payloads) are not looked at.
pub fn control_character_errors(value: &Value, free_form: &[&str]) -> Vec<FieldError> {
    fn describe(c: char) -> String {
        format!(
            "the control character U+{:04X}: control characters other than tab and line breaks are not allowed",
            u32::from(c)
        )
    }
    fn walk(value: &Value, path: &str, free_form: &[&str], errors: &mut Vec<FieldError>) {
        if errors.len() >= MAX_CONTROL_ERRORS {
            return;
        }
        match value {
            Value::String(s) => {
                if let Some(c) = s.chars().find(|c| is_refused_char(*c)) {
                    errors.push(FieldError { path: path.to_owned(), message: format!("has {}", describe(c)) });
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{i}]"), free_form, errors);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    if let Some(c) = key.chars().find(|c| is_refused_char(*c)) {
                        let shown = key.escape_debug().to_string();
                        errors.push(FieldError {
                            path: path.to_owned(),
                            message: format!("the key \"{shown}\" has {}", describe(c)),
                        });
                        continue;
                    }
                    if free_form.contains(&key.as_str()) {
                        continue;
                    }
                    let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    walk(item, &child, free_form, errors);
                }
            }
            _ => {}
        }
    }
    let mut errors = Vec::new();
    walk(value, "", free_form, &mut errors);
    errors
}

/// Parses a definition from a JSON value and validates it.
pub fn parse_definition(value: Value) -> Result<ActivityDefinition, ValidationErrors> {
    // Structure errors first (an unknown field is named as such); then control characters.
    let refused = control_character_errors(&value, &[]);
    let definition: ActivityDefinition = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ValidationErrors::single(path, e.into_inner().to_string())
    })?;
    if !refused.is_empty() {
        return Err(ValidationErrors { errors: refused });
    }
    validate(&definition)?;
    Ok(definition)
}

/// Parses and validates a definition from text.
pub fn parse_definition_text(text: &str, format: Format) -> Result<ActivityDefinition, ValidationErrors> {
    parse_definition(parse_text(text, format)?)
}

/// Names templates cannot use for a context source: they are template variables already.
pub const RESERVED_CONTEXT_NAMES: &[&str] = &["item", "index", "context", "trigger", "definition", "run", "tasks"];

struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { path: path.into(), message: message.into() });
    }

    fn check(&mut self, path: impl Into<String>, result: Result<(), String>) {
        if let Err(message) = result {
            self.push(path, message);
        }
    }
}

/// Checks everything serde cannot; reports all problems at once.
pub fn validate(def: &ActivityDefinition) -> Result<(), ValidationErrors> {
    let templates = Templates::new();
    let mut errs = Errors(Vec::new());
    if def.name.trim().is_empty() {
        errs.push("name", "must not be empty");
    }
    validate_tags(&def.tags, &mut errs);
    validate_trigger(&def.trigger, &templates, &mut errs);
    let context_names = validate_context(&def.context, &templates, &mut errs);
    validate_tasks(&def.tasks, &context_names, &templates, &mut errs);
    if def.max_parallel == Some(0) {
        errs.push("max_parallel", "must be at least 1");
    }
    for (path, message) in crate::notify::validate(&def.notify, def.trigger.kind, &templates) {
        errs.push(path, message);
    }
    if let Some(c) = &def.concurrency {
        if c.limit == 0 {
            errs.push("concurrency.limit", "must be at least 1");
        }
        if c.limit > MAX_CONCURRENCY_LIMIT {
            errs.push("concurrency.limit", format!("at most {MAX_CONCURRENCY_LIMIT}"));
        }
        if let Some(key) = &c.key {
            errs.check("concurrency.key", templates.check(key));
        }
    }
    if let Some(r) = &def.retention {
        validate_retention(r, &mut errs);
    }
    if errs.0.is_empty() { Ok(()) } else { Err(ValidationErrors { errors: errs.0 }) }
}

fn validate_retention(r: &crate::definition::Retention, errs: &mut Errors) {
    use crate::definition::{MAX_RETENTION_DAYS, MAX_RETENTION_RUNS};
    match (r.days, r.last_runs) {
        (Some(_), Some(_)) => errs.push("retention", "give either days or last_runs, not both"),
        (None, None) => errs.push("retention", "give days or last_runs"),
        (Some(days), None) if !(1..=MAX_RETENTION_DAYS).contains(&days) => {
            errs.push("retention.days", format!("must be 1 to {MAX_RETENTION_DAYS}"));
        }
        (None, Some(runs)) if !(1..=MAX_RETENTION_RUNS).contains(&runs) => {
            errs.push("retention.last_runs", format!("must be 1 to {MAX_RETENTION_RUNS}"));
        }
        _ => {}
    }
}

/// Largest `concurrency.limit`.
pub const MAX_CONCURRENCY_LIMIT: u32 = 10_000;

/// Most tags one definition may carry.
pub const MAX_TAGS: usize = 20;
/// Longest tag accepted.
pub const MAX_TAG_LEN: usize = 40;

/// Checks one tag: 1 to [`MAX_TAG_LEN`] characters of `[a-z0-9._-]`, starting with a letter
/// or digit. Used for documents and for the tags of selectors alike.
pub fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("must not be empty".into());
    }
    if tag.chars().count() > MAX_TAG_LEN {
        return Err(format!("{tag:?} is longer than {MAX_TAG_LEN} characters"));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    if let Some(bad) = tag.chars().find(|c| !ok_char(*c)) {
        return Err(format!("{tag:?} has the character {bad:?}: use lowercase [a-z0-9][a-z0-9._-]*"));
    }
    if !tag.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(format!("{tag:?} must start with a letter or a digit"));
    }
    Ok(())
}

/// Checks a list of tags at `field` (`tags`): each valid, none twice, at most [`MAX_TAGS`].
pub fn tag_errors(field: &str, tags: &[String]) -> Vec<FieldError> {
    let mut errs = Errors(Vec::new());
    if tags.len() > MAX_TAGS {
        errs.push(field, format!("at most {MAX_TAGS} tags, got {}", tags.len()));
    }
    let mut seen = HashSet::new();
    for (i, tag) in tags.iter().enumerate() {
        errs.check(format!("{field}[{i}]"), check_tag(tag));
        if !seen.insert(tag.as_str()) {
            errs.push(format!("{field}[{i}]"), format!("duplicate tag {tag:?}"));
        }
    }
    errs.0
}

fn validate_tags(tags: &[String], errs: &mut Errors) {
    errs.0.extend(tag_errors("tags", tags));
}

fn not_for_kind(errs: &mut Errors, path: &str, field: &str, set: bool, kind: &str) {
    if set {
        errs.push(format!("{path}.{field}"), format!("not allowed for kind \"{kind}\""));
    }
}

/// Checks a five-field cron expression (or an `@daily`-style alias).
pub fn check_cron(expr: &str) -> Result<(), String> {
    let trimmed = expr.trim();
    let six_field = if trimmed.starts_with('@') {
        trimmed.to_owned()
    } else {
        let fields = trimmed.split_whitespace().count();
        if fields != 5 {
            return Err(format!("expected 5 fields (minute hour day-of-month month day-of-week), got {fields}"));
        }
        format!("0 {trimmed}")
    };
    cron::Schedule::from_str(&six_field).map(|_| ()).map_err(|e| format!("invalid cron expression {trimmed:?}: {e}"))
}

fn validate_trigger(t: &Trigger, templates: &Templates, errs: &mut Errors) {
    let kind = t.kind.as_str();
    let is_cron = t.kind == TriggerKind::Cron;
    let is_event = t.kind == TriggerKind::Event;
    if is_cron {
        if t.cron.is_empty() {
            errs.push("trigger.cron", "at least one cron expression is required for kind \"cron\"");
        }
        for (i, expr) in t.cron.iter().enumerate() {
            errs.check(format!("trigger.cron[{i}]"), check_cron(expr));
        }
        if let Some(tz) = &t.timezone
            && tz.parse::<chrono_tz::Tz>().is_err()
        {
            errs.push("trigger.timezone", format!("unknown time zone {tz:?} (use an IANA name such as Europe/Berlin)"));
        }
        for (field, value) in [("jitter", &t.jitter), ("catchup_window", &t.catchup_window)] {
            if let Some(v) = value {
                errs.check(format!("trigger.{field}"), parse_duration(v).map(|_| ()));
            }
        }
        for (field, at) in [("start_at", &t.start_at), ("end_at", &t.end_at)] {
            if let Some(at) = at {
                errs.check(format!("trigger.{field}"), check_instant(at));
            }
        }
        if let (Some(start), Some(end)) = (t.start_at, t.end_at)
            && end <= start
        {
            errs.push("trigger.end_at", format!("must be after start_at ({start})"));
        }
    } else {
        not_for_kind(errs, "trigger", "cron", !t.cron.is_empty(), kind);
        not_for_kind(errs, "trigger", "timezone", t.timezone.is_some(), kind);
        not_for_kind(errs, "trigger", "jitter", t.jitter.is_some(), kind);
        not_for_kind(errs, "trigger", "overlap", t.overlap.is_some(), kind);
        not_for_kind(errs, "trigger", "catchup_window", t.catchup_window.is_some(), kind);
        not_for_kind(errs, "trigger", "start_at", t.start_at.is_some(), kind);
        not_for_kind(errs, "trigger", "end_at", t.end_at.is_some(), kind);
    }
    if is_event {
        match &t.event_type {
            Some(ty) if !ty.trim().is_empty() => {}
            _ => errs.push("trigger.event_type", "required for kind \"event\""),
        }
        if let Some(filter) = &t.filter {
            errs.check("trigger.filter", templates.check_condition(filter));
        }
        if let Some(key) = &t.dedupe_key {
            errs.check("trigger.dedupe_key", templates.check(key));
        }
        if let Some(d) = &t.debounce {
            errs.check("trigger.debounce.period", check_positive_duration(&d.period));
            if let Some(max_wait) = &d.max_wait {
                errs.check("trigger.debounce.max_wait", check_positive_duration(max_wait));
            }
            if let Some(key) = &d.key {
                errs.check("trigger.debounce.key", templates.check(key));
            }
        }
        if let Some(b) = &t.batch {
            if b.max_size == 0 {
                errs.push("trigger.batch.max_size", "must be at least 1");
            }
            if b.max_size > MAX_BATCH_SIZE {
                errs.push("trigger.batch.max_size", format!("at most {MAX_BATCH_SIZE}"));
            }
            errs.check("trigger.batch.max_wait", check_positive_duration(&b.max_wait));
            if let Some(key) = &b.key {
                errs.check("trigger.batch.key", templates.check(key));
            }
        }
        if t.debounce.is_some() && t.batch.is_some() {
            errs.push("trigger.batch", "a trigger debounces or batches, not both");
        }
    } else {
        not_for_kind(errs, "trigger", "event_type", t.event_type.is_some(), kind);
        not_for_kind(errs, "trigger", "filter", t.filter.is_some(), kind);
        not_for_kind(errs, "trigger", "dedupe_key", t.dedupe_key.is_some(), kind);
        not_for_kind(errs, "trigger", "debounce", t.debounce.is_some(), kind);
        not_for_kind(errs, "trigger", "batch", t.batch.is_some(), kind);
    }
}

/// Most events one batch run carries.
pub const MAX_BATCH_SIZE: u32 = 1000;

/// A duration like `2s` or `1m`, greater than zero and at most a day.
fn check_positive_duration(raw: &str) -> Result<(), String> {
    let d = crate::duration::parse_duration(raw)?;
    if d.is_zero() {
        return Err("must be longer than 0s".into());
    }
    if d > std::time::Duration::from_secs(86_400) {
        return Err("must be at most 1d".into());
    }
    Ok(())
}

fn check_context_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(format!("{name:?} is not a valid name: use [a-z_][a-z0-9_]*"));
    }
    if RESERVED_CONTEXT_NAMES.contains(&name) {
        return Err(format!("{name:?} is reserved (a template variable of its own)"));
    }
    Ok(())
}

fn validate_context(sources: &[ContextSource], templates: &Templates, errs: &mut Errors) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (i, s) in sources.iter().enumerate() {
        let path = format!("context[{i}]");
        errs.check(format!("{path}.name"), check_context_name(&s.name));
        if !seen.insert(s.name.clone()) {
            errs.push(format!("{path}.name"), format!("duplicate context name {:?}", s.name));
        }
        let kind = match s.kind {
            ContextKind::Sql => "sql",
            ContextKind::Http => "http",
            ContextKind::Static => "static",
            ContextKind::Trigger => "trigger",
        };
        match s.kind {
            ContextKind::Sql => {
                match &s.query {
                    Some(q) if !q.trim().is_empty() => {}
                    _ => errs.push(format!("{path}.query"), "required for kind \"sql\""),
                }
                for (j, p) in s.params.iter().enumerate() {
                    errs.check(format!("{path}.params[{j}]"), templates.check_value_field(p, SecretUse::Allowed));
                }
            }
            ContextKind::Http => {
                match &s.url {
                    Some(url) if !url.trim().is_empty() => {
                        errs.check(format!("{path}.url"), templates.check_field(url, SecretUse::Allowed))
                    }
                    _ => errs.push(format!("{path}.url"), "required for kind \"http\""),
                }
                if let Some(method) = &s.method
                    && !["GET", "POST"].contains(&method.to_ascii_uppercase().as_str())
                {
                    errs.push(format!("{path}.method"), format!("{method:?} is not GET or POST"));
                }
                if let Some(select) = &s.select
                    && !select.is_empty()
                    && !select.starts_with('/')
                {
                    errs.push(
                        format!("{path}.select"),
                        format!("{select:?} is not a JSON pointer (it starts with '/', e.g. /data/items)"),
                    );
                }
                for (name, value) in &s.headers {
                    errs.check(format!("{path}.headers.{name}"), templates.check_field(value, SecretUse::Allowed));
                }
                if let Some(body) = &s.body {
                    errs.check(format!("{path}.body"), templates.check_value_field(body, SecretUse::Allowed));
                }
            }
            ContextKind::Static => {
                if s.value.is_none() {
                    errs.push(format!("{path}.value"), "required for kind \"static\"");
                }
            }
            ContextKind::Trigger => {}
        }
        if s.kind != ContextKind::Sql {
            not_for_kind(errs, &path, "query", s.query.is_some(), kind);
            not_for_kind(errs, &path, "params", !s.params.is_empty(), kind);
        }
        if s.kind != ContextKind::Static {
            not_for_kind(errs, &path, "value", s.value.is_some(), kind);
        }
        if s.kind != ContextKind::Http {
            for (field, set) in [
                ("url", s.url.is_some()),
                ("method", s.method.is_some()),
                ("headers", !s.headers.is_empty()),
                ("body", s.body.is_some()),
                ("select", s.select.is_some()),
            ] {
                not_for_kind(errs, &path, field, set, kind);
            }
        }
        if s.kind != ContextKind::Sql {
            not_for_kind(errs, &path, "connection", s.connection.is_some(), kind);
        }
        // A static value is in the document itself, a trigger payload in the run's trigger:
        // hiding them from the snapshot would protect nothing.
        if s.sensitive && matches!(s.kind, ContextKind::Static | ContextKind::Trigger) {
            errs.push(format!("{path}.sensitive"), format!("not allowed for kind {kind:?}: its value is readable elsewhere (the definition, the run's trigger); use it on sql and http sources"));
        }
    }
    seen
}

fn validate_tasks(tasks: &[TaskTemplate], context_names: &HashSet<String>, templates: &Templates, errs: &mut Errors) {
    if tasks.is_empty() {
        errs.push("tasks", "at least one task template is required");
    }
    let mut ids = HashSet::new();
    for (i, t) in tasks.iter().enumerate() {
        let path = format!("tasks[{i}]");
        errs.check(format!("{path}.id"), check_slug(&t.id, 63, true));
        if !ids.insert(t.id.as_str()) {
            errs.push(format!("{path}.id"), format!("duplicate task id {:?}", t.id));
        }
        if let Some(for_each) = &t.for_each {
            let mut parts = for_each.split('.');
            let root = parts.next().unwrap_or_default();
            if root == "tasks" {
                let dep = parts.next().unwrap_or_default();
                let rest = parts.next();
                if !t.depends_on.iter().any(|d| d == dep) {
                    errs.push(
                        format!("{path}.for_each"),
                        format!("{for_each:?} reads task {dep:?}, which is not in depends_on"),
                    );
                } else if !matches!(rest, Some("outputs" | "output")) {
                    errs.push(
                        format!("{path}.for_each"),
                        format!("{for_each:?}: use tasks.{dep}.outputs or tasks.{dep}.output.<path>"),
                    );
                }
            } else if root != "trigger" && !context_names.contains(root) {
                errs.push(format!("{path}.for_each"), format!("unknown context {root:?}"));
            }
        }
        if let Some(when) = &t.when {
            errs.check(format!("{path}.when"), templates.check_condition(when));
        }
        if let Some(key) = &t.key {
            errs.check(format!("{path}.key"), templates.check(key));
        }
        if !t.params.is_object() {
            errs.push(format!("{path}.params"), "must be an object");
        }
        errs.check(format!("{path}.params"), templates.check_value(&t.params));
        if let Some(timeout) = &t.timeout {
            errs.check(format!("{path}.timeout"), parse_duration(timeout).map(|_| ()));
        }
        validate_task_kind(t, &path, templates, errs);
    }
    for (i, t) in tasks.iter().enumerate() {
        for (j, dep) in t.depends_on.iter().enumerate() {
            if dep == &t.id {
                errs.push(format!("tasks[{i}].depends_on[{j}]"), "a task cannot depend on itself");
            } else if !ids.contains(dep.as_str()) {
                errs.push(format!("tasks[{i}].depends_on[{j}]"), format!("unknown task {dep:?}"));
            }
        }
    }
    if let Some((index, cycle)) = find_cycle(tasks) {
        errs.push(format!("tasks[{index}].depends_on"), format!("dependency cycle: {}", cycle.join(" -> ")));
    }
}

fn validate_task_kind(t: &TaskTemplate, path: &str, templates: &Templates, errs: &mut Errors) {
    for (field, message) in crate::kinds::validate(t, templates).0 {
        errs.push(format!("{path}.{field}"), message);
    }
}

/// Finds one dependency cycle; returns the index of a template on it and the cycle's ids.
fn find_cycle(tasks: &[TaskTemplate]) -> Option<(usize, Vec<String>)> {
    let deps: BTreeMap<&str, &[String]> = tasks.iter().map(|t| (t.id.as_str(), t.depends_on.as_slice())).collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        node: &'a str,
        deps: &BTreeMap<&'a str, &'a [String]>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(node, 1);
        path.push(node);
        for dep in deps.get(node).copied().unwrap_or_default() {
            if dep != node
                && deps.contains_key(dep.as_str())
                && let Some(cycle) = visit(dep, deps, state, path)
            {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node, 2);
        None
    }
    for t in tasks {
        let mut path = Vec::new();
        if let Some(cycle) = visit(&t.id, &deps, &mut state, &mut path) {
            let index = tasks.iter().position(|t| t.id == cycle[0]).unwrap_or(0);
            return Some((index, cycle));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> Value {
        json!({
            "id": "overdue-invoices",
            "name": "Chase overdue invoices",
            "trigger": {"kind": "cron", "cron": ["0 9 * * MON-FRI"], "timezone": "Europe/Berlin"},
            "context": [{"name": "invoices", "kind": "static", "value": [{"id": 1, "amount": 150}]}],
            "tasks": [{"id": "remind", "kind": "noop", "for_each": "invoices", "key": "{{ item.id }}",
                       "when": "{{ item.amount > 100 }}", "params": {"invoice": "{{ item.id }}"}}]
        })
    }

    fn errors(v: Value) -> Vec<String> {
        parse_definition(v).unwrap_err().errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn accepts_the_reference_document() {
        parse_definition(base()).unwrap();
    }

    #[test]
    fn reports_every_semantic_problem_with_its_path() {
        let mut v = base();
        v["tasks"][0]["for_each"] = json!("invoicez");
        v["trigger"]["timezone"] = json!("Mars/Olympus");
        v["tasks"][0]["depends_on"] = json!(["nope"]);
        let errs = errors(v);
        assert!(errs.contains(&"tasks[0].for_each: unknown context \"invoicez\"".to_string()), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("trigger.timezone: unknown time zone")), "{errs:?}");
        assert!(errs.contains(&"tasks[0].depends_on[0]: unknown task \"nope\"".to_string()), "{errs:?}");
    }

    #[test]
    fn retention_takes_days_or_last_runs_in_range() {
        for good in [json!({"days": 90}), json!({"last_runs": 500}), json!({"days": 36_500}), json!({"last_runs": 1})] {
            let mut v = base();
            v["retention"] = good.clone();
            parse_definition(v).unwrap_or_else(|e| panic!("{good}: {e:?}"));
        }
        for (bad, path) in [
            (json!({"days": 0}), "retention.days"),
            (json!({"days": 36_501}), "retention.days"),
            (json!({"last_runs": 0}), "retention.last_runs"),
            (json!({"last_runs": 1_000_001}), "retention.last_runs"),
            (json!({"days": -1}), "retention.days"),
            (json!({"days": 3, "last_runs": 3}), "retention"),
            (json!({}), "retention"),
            (json!({"weeks": 3}), "retention.weeks"),
        ] {
            let mut v = base();
            v["retention"] = bad.clone();
            let errs = errors(v);
            assert!(errs.iter().any(|e| e.starts_with(&format!("{path}:"))), "{bad}: {errs:?}");
        }
    }

    #[test]
    fn structure_errors_carry_the_path() {
        let mut v = base();
        v["tasks"][0]["kind"] = json!("teleport");
        let errs = errors(v);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("tasks[0].kind: unknown variant `teleport`"), "{errs:?}");

        let mut v = base();
        v["tasks"][0]["titel"] = json!("x");
        let errs = errors(v);
        assert!(errs[0].contains("unknown field `titel`"), "{errs:?}");
        assert!(errs[0].starts_with("tasks[0]"), "{errs:?}");
    }

    #[test]
    fn cycles_are_named() {
        let mut v = base();
        v["tasks"] = json!([
            {"id": "a", "kind": "noop", "depends_on": ["c"]},
            {"id": "b", "kind": "noop", "depends_on": ["a"]},
            {"id": "c", "kind": "noop", "depends_on": ["b"]}
        ]);
        let errs = errors(v);
        assert_eq!(errs, vec!["tasks[0].depends_on: dependency cycle: a -> c -> b -> a".to_string()]);
    }

    #[test]
    fn secrets_only_where_a_request_is_sent() {
        let mut v = base();
        v["tasks"][0]["params"] = json!({"token": "{{ secret.GITHUB_TOKEN }}"});
        v["tasks"][0]["key"] = json!("{{ secret.GITHUB_TOKEN }}");
        let errs = errors(v);
        assert!(errs.iter().any(|e| e.starts_with("tasks[0].params: secrets may only be used")), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("tasks[0].key: secrets may only be used")), "{errs:?}");

        let mut v = base();
        v["tasks"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "hook", "kind": "http", "url": "https://example.com/?t={{ secret.T }}",
            "headers": {"authorization": "Bearer {{ secret.GITHUB_TOKEN }}"}, "body": {"token": "{{ secret.T }}"}}));
        v["context"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "rows", "kind": "sql", "query": "select $1::text", "params": ["{{ secret.T }}"]}));
        parse_definition(v).unwrap();
    }

    #[test]
    fn kind_specific_fields() {
        let mut v = base();
        v["tasks"][0]["kind"] = json!("workflow");
        v["tasks"][0]["title"] = json!("hello");
        let errs = errors(v);
        assert!(errs.contains(&"tasks[0].workflow_type: required for kind \"workflow\"".to_string()), "{errs:?}");
        assert!(errs.contains(&"tasks[0].title: not allowed for kind \"workflow\"".to_string()), "{errs:?}");
    }

    #[test]
    fn tags_are_checked_with_their_index() {
        let mut v = base();
        v["tags"] = json!(["billing", "nightly.v2", "ops_team-1"]);
        assert_eq!(parse_definition(v).unwrap().tags, ["billing", "nightly.v2", "ops_team-1"]);

        let mut v = base();
        v["tags"] = json!(["ok", "Bad", "", "-x", "ok", "a b", "x".repeat(41)]);
        let errs = errors(v);
        assert_eq!(errs.len(), 6, "{errs:?}");
        assert!(errs[0].starts_with("tags[1]: \"Bad\" has the character 'B'"), "{errs:?}");
        assert_eq!(errs[1], "tags[2]: must not be empty");
        assert!(errs[2].starts_with("tags[3]: \"-x\" must start with a letter or a digit"), "{errs:?}");
        assert_eq!(errs[3], "tags[4]: duplicate tag \"ok\"");
        assert!(errs[4].starts_with("tags[5]:"), "{errs:?}");
        assert!(errs[5].starts_with("tags[6]:") && errs[5].contains("longer than 40"), "{errs:?}");

        let mut v = base();
        v["tags"] = json!((0..21).map(|i| format!("t{i}")).collect::<Vec<_>>());
        assert_eq!(errors(v), ["tags: at most 20 tags, got 21"]);

        let mut v = base();
        v["tags"] = json!("billing");
        assert!(errors(v)[0].starts_with("tags: invalid type"));
    }

    #[test]
    fn documents_without_tags_serialize_as_before() {
        let def = parse_definition(base()).unwrap();
        assert!(def.tags.is_empty());
        assert!(serde_json::to_value(&def).unwrap().get("tags").is_none());
    }

    #[test]
    fn control_characters_are_refused_with_their_path() {
        let mut v = base();
        v["name"] = json!("Chase\u{0}invoices");
        v["tasks"][0]["params"] = json!({"invoice": "a\u{1b}[31m", "note": "tabs\tand\nlines are fine"});
        v["description"] = json!("line one\r\nline two");
        let errs = parse_definition(v).unwrap_err().errors;
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["name", "tasks[0].params.invoice"], "{errs:?}");
        assert!(errs[0].message.contains("U+0000"), "{errs:?}");

        let mut v = base();
        v["tasks"][0]["labels"] = json!({"te\u{0}am": "ops"});
        let errs = errors(v);
        assert!(
            errs[0].starts_with("tasks[0].labels: the key \"te\\0am\" has the control character U+0000"),
            "{errs:?}"
        );

        let payload = json!({"type": "x", "key": "k\u{7}", "payload": {"text": "a\u{0}b"}});
        let errs = control_character_errors(&payload, &["payload"]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "key");
    }

    #[test]
    fn cron_expressions_are_checked() {
        assert!(check_cron("0 9 * * MON-FRI").is_ok());
        assert!(check_cron("*/5 * * * *").is_ok());
        assert!(check_cron("0 9 * *").unwrap_err().contains("expected 5 fields"));
        assert!(check_cron("0 25 * * *").is_err());
    }

    #[test]
    fn yaml_documents_parse() {
        let text = "id: x\nname: X\ntrigger: {kind: manual}\ntasks:\n  - id: t\n    kind: noop\n";
        let def = parse_definition_text(text, Format::Yaml).unwrap();
        assert_eq!(def.id.as_str(), "x");
        assert!(def.enabled);
    }
}
