//! Templates in definition documents: minijinja with strict undefined values.
//!
//! - A string that is exactly one `{{ expression }}` evaluates to the expression's native value,
//!   so `"{{ item.amount }}"` stays a number and `"{{ item.tags }}"` stays a list.
//! - Any other string containing `{{` or `{%` renders as text.
//! - Conditions (`when`, `filter`) may be written with or without the braces.
//!
//! Strict undefined means a typo such as `{{ item.custmer }}` is an error naming the template,
//! not a silently empty string.
//!
//! ## Secrets
//! `{{ secret.NAME }}` renders to a placeholder, `⟦secret:NAME⟧`, never to the value: plans,
//! the run log and workflow histories only ever hold placeholders. The activity that sends an
//! HTTP request or runs a SQL query swaps them for the values just before it does, and redacts
//! the values out of whatever comes back. Validation allows secrets only in the fields that
//! reach such an activity (see [`SecretUse`]); a filter or expression applied to a secret
//! (`{{ secret.X | upper }}`) is an error, because it would transform the placeholder.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use minijinja::value::{Object, merge_maps};
use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// Opens a secret placeholder.
pub const SECRET_OPEN: &str = "⟦secret:";
/// Closes a secret placeholder.
pub const SECRET_CLOSE: &str = "⟧";

/// The placeholder a secret renders to.
pub fn secret_placeholder(name: &str) -> String {
    format!("{SECRET_OPEN}{name}{SECRET_CLOSE}")
}

/// A valid secret name: a letter or `_`, then letters, digits and `_` (an environment
/// variable's alphabet), at most 128 characters.
pub fn is_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// Replaces every placeholder in `text` with `lookup(name)`; the first name `lookup` refuses
/// is the error.
pub fn replace_secret_placeholders<E>(
    text: &str,
    mut lookup: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(SECRET_OPEN) {
        let after = &rest[start + SECRET_OPEN.len()..];
        let Some(end) = after.find(SECRET_CLOSE) else { break };
        let name = &after[..end];
        out.push_str(&rest[..start]);
        if is_secret_name(name) {
            out.push_str(&lookup(name)?);
        } else {
            out.push_str(&rest[start..start + SECRET_OPEN.len() + end + SECRET_CLOSE.len()]);
        }
        rest = &after[end + SECRET_CLOSE.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether a field may reference secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretUse {
    /// The value is stored, shown or passed to other code: no secrets.
    Refused,
    /// The value only reaches an HTTP request or a SQL parameter.
    Allowed,
}

/// The `secret` variable of every template: any attribute is its placeholder.
#[derive(Debug)]
struct SecretPlaceholders;

impl Object for SecretPlaceholders {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let name = key.as_str()?;
        is_secret_name(name).then(|| minijinja::Value::from(secret_placeholder(name)))
    }
}

/// The template engine, configured once and shared.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

/// The inner expression when `source` is exactly one `{{ ... }}` block.
fn sole_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim())
}

fn is_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%")
}

/// The template's variables: the evaluated scope plus `secret`.
fn scope(ctx: &Value) -> minijinja::Value {
    merge_maps([
        minijinja::context! { secret => minijinja::Value::from_object(SecretPlaceholders) },
        minijinja::Value::from_serialize(ctx),
    ])
}

/// Variables templates render with: a JSON object, or a [`Scope`] converted once.
pub trait Vars {
    /// The variables as minijinja sees them (with `secret`).
    fn vars(&self) -> minijinja::Value;
}

impl Vars for Value {
    fn vars(&self) -> minijinja::Value {
        scope(self)
    }
}

/// Variables converted for the template engine once, then extended per fan-out item at no
/// cost: converting a large context for every item made planning quadratic (10,000 items
/// over a 10,000-element context: seconds and gigabytes).
#[derive(Clone, Debug)]
pub struct Scope(minijinja::Value);

impl Scope {
    /// Converts `vars` (an object) once.
    pub fn new(vars: &Value) -> Self {
        Self(scope(vars))
    }

    /// This scope with `item` and `index` added (they shadow any of the same name).
    pub fn with_item(&self, item: &Value, index: usize) -> Self {
        Self(merge_maps([
            minijinja::context! { item => minijinja::Value::from_serialize(item), index => index },
            self.0.clone(),
        ]))
    }
}

impl Vars for Scope {
    fn vars(&self) -> minijinja::Value {
        self.0.clone()
    }
}

fn describe(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.to_string(),
    }
}

impl Templates {
    /// A strict environment: undefined values are errors.
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        Self { env }
    }

    /// Checks that a string field compiles (text, or a sole expression) and uses no secrets.
    pub fn check(&self, source: &str) -> Result<(), String> {
        self.check_field(source, SecretUse::Refused)
    }

    /// Checks a string field that may (or may not) reference secrets.
    pub fn check_field(&self, source: &str, secrets: SecretUse) -> Result<(), String> {
        let variables = if let Some(expr) = sole_expression(source) {
            self.check_expression(expr)?
        } else if is_template(source) {
            self.env.template_from_str(source).map_err(|e| describe(&e))?.undeclared_variables(true)
        } else {
            return Ok(());
        };
        check_secret_variables(variables.iter().map(String::as_str), secrets).map(|_| ())
    }

    /// Checks a condition (`when`, `filter`), with or without braces; conditions never see secrets.
    pub fn check_condition(&self, source: &str) -> Result<(), String> {
        let variables = self.check_expression(sole_expression(source).unwrap_or(source.trim()))?;
        check_secret_variables(variables.iter().map(String::as_str), SecretUse::Refused).map(|_| ())
    }

    fn check_expression(&self, expr: &str) -> Result<std::collections::HashSet<String>, String> {
        if expr.is_empty() {
            return Err("empty expression".into());
        }
        Ok(self.env.compile_expression(expr).map_err(|e| describe(&e))?.undeclared_variables(true))
    }

    /// Checks every string inside a JSON value (params); no secrets.
    pub fn check_value(&self, value: &Value) -> Result<(), String> {
        self.check_value_field(value, SecretUse::Refused)
    }

    /// Checks every string inside a JSON value that may (or may not) reference secrets.
    pub fn check_value_field(&self, value: &Value, secrets: SecretUse) -> Result<(), String> {
        match value {
            Value::String(s) => self.check_field(s, secrets),
            Value::Array(items) => items.iter().try_for_each(|v| self.check_value_field(v, secrets)),
            Value::Object(map) => map.values().try_for_each(|v| self.check_value_field(v, secrets)),
            _ => Ok(()),
        }
    }

    /// The secrets a string references, by name.
    fn secrets_of(&self, source: &str) -> BTreeSet<String> {
        if !source.contains("secret") {
            return BTreeSet::new();
        }
        let variables = match sole_expression(source) {
            Some(expr) => self.env.compile_expression(expr).map(|e| e.undeclared_variables(true)).unwrap_or_default(),
            None => self.env.template_from_str(source).map(|t| t.undeclared_variables(true)).unwrap_or_default(),
        };
        check_secret_variables(variables.iter().map(String::as_str), SecretUse::Allowed).unwrap_or_default()
    }

    /// Evaluates a condition to a boolean (minijinja truthiness).
    pub fn eval_condition(&self, source: &str, ctx: &impl Vars) -> Result<bool, String> {
        let expr = sole_expression(source).unwrap_or(source.trim());
        let compiled = self.env.compile_expression(expr).map_err(|e| describe(&e))?;
        let value = compiled.eval(ctx.vars()).map_err(|e| describe(&e))?;
        if value.is_undefined() {
            return Err(format!("undefined value: {expr}"));
        }
        Ok(value.is_true())
    }

    /// The values a condition reads, by variable path (`event.payload.branch`): what it saw,
    /// for the decision log. A path that does not resolve is `null`.
    pub fn condition_inputs(&self, source: &str, ctx: &impl Vars) -> BTreeMap<String, Value> {
        let expr = sole_expression(source).unwrap_or(source.trim());
        let Ok(compiled) = self.env.compile_expression(expr) else { return BTreeMap::new() };
        let vars = ctx.vars();
        compiled
            .undeclared_variables(true)
            .into_iter()
            .filter(|path| path != "secret" && !path.starts_with("secret."))
            .map(|path| {
                let value = self
                    .env
                    .compile_expression(&path)
                    .and_then(|e| e.eval(vars.clone()))
                    .ok()
                    .filter(|v| !v.is_undefined())
                    .and_then(|v| serde_json::to_value(v).ok())
                    .unwrap_or(Value::Null);
                (path, value)
            })
            .collect()
    }

    /// Renders one string: a sole expression keeps its native type, text renders to a string.
    /// A secret must come out as its placeholder, untouched by filters.
    pub fn render_str(&self, source: &str, ctx: &impl Vars) -> Result<Value, String> {
        if !is_template(source) {
            return Ok(Value::String(source.to_owned()));
        }
        let rendered = self.render_unchecked(source, ctx)?;
        for name in self.secrets_of(source) {
            if !rendered.as_str().is_some_and(|text| text.contains(&secret_placeholder(&name))) {
                return Err(format!(
                    "secret.{name} is transformed by a filter or an expression; a secret can only be inserted as it is"
                ));
            }
        }
        Ok(rendered)
    }

    fn render_unchecked(&self, source: &str, ctx: &impl Vars) -> Result<Value, String> {
        let mctx = ctx.vars();
        if let Some(expr) = sole_expression(source) {
            let compiled = self.env.compile_expression(expr).map_err(|e| describe(&e))?;
            let value = compiled.eval(mctx).map_err(|e| describe(&e))?;
            if value.is_undefined() {
                return Err(format!("undefined value: {expr}"));
            }
            return serde_json::to_value(&value).map_err(|e| format!("value cannot be represented as JSON: {e}"));
        }
        self.env.render_str(source, mctx).map(Value::String).map_err(|e| describe(&e))
    }

    /// Renders a string template to text (keys, titles); non-string results are formatted.
    pub fn render_text(&self, source: &str, ctx: &impl Vars) -> Result<String, String> {
        Ok(match self.render_str(source, ctx)? {
            Value::String(s) => s,
            other => other.to_string(),
        })
    }

    /// Renders every string inside a JSON value.
    pub fn render_value(&self, value: &Value, ctx: &impl Vars) -> Result<Value, String> {
        Ok(match value {
            Value::String(s) => self.render_str(s, ctx)?,
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.render_value(v, ctx)).collect::<Result<_, _>>()?)
            }
            Value::Object(map) => Value::Object(
                map.iter().map(|(k, v)| Ok((k.clone(), self.render_value(v, ctx)?))).collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// The secret names among a template's variables; refused secrets and dynamic access
/// (`secret[name]`) are errors.
fn check_secret_variables<'a>(
    variables: impl Iterator<Item = &'a str>,
    secrets: SecretUse,
) -> Result<BTreeSet<String>, String> {
    let mut names = BTreeSet::new();
    for variable in variables {
        let Some(rest) = variable.strip_prefix("secret") else { continue };
        if secrets == SecretUse::Refused && (rest.is_empty() || rest.starts_with('.')) {
            return Err(
                "secrets may only be used in an http url, headers or body, or in sql params; anywhere else they would be stored in plans and the run log"
                    .into(),
            );
        }
        match rest.strip_prefix('.') {
            Some(name) if is_secret_name(name) => {
                names.insert(name.to_owned());
            }
            Some(name) if name.split('.').next().is_some_and(is_secret_name) => {
                return Err(format!("secret.{name}: a secret is a string and has no attributes"));
            }
            None if rest.is_empty() => return Err("secrets must be named literally, as secret.NAME".into()),
            _ => {}
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sole_expressions_keep_their_type() {
        let t = Templates::new();
        let ctx = json!({"item": {"amount": 150, "id": "inv-1", "tags": ["a"]}});
        assert_eq!(t.render_str("{{ item.amount }}", &ctx).unwrap(), json!(150));
        assert_eq!(t.render_str("{{ item.tags }}", &ctx).unwrap(), json!(["a"]));
        assert_eq!(t.render_str("id={{ item.id }}", &ctx).unwrap(), json!("id=inv-1"));
        assert_eq!(t.render_str("plain", &ctx).unwrap(), json!("plain"));
    }

    #[test]
    fn condition_inputs_show_what_a_condition_saw() {
        let t = Templates::new();
        let ctx = json!({"event": {"payload": {"branch": "dev", "files": 3}}});
        let seen = t.condition_inputs("event.payload.branch == 'main' and event.payload.missing", &ctx);
        assert_eq!(seen.get("event.payload.branch"), Some(&json!("dev")));
        assert_eq!(seen.get("event.payload.missing"), Some(&Value::Null));
        assert_eq!(seen.len(), 2, "{seen:?}");
    }

    #[test]
    fn conditions_with_or_without_braces() {
        let t = Templates::new();
        let ctx = json!({"item": {"amount": 150}});
        assert!(t.eval_condition("{{ item.amount > 100 }}", &ctx).unwrap());
        assert!(!t.eval_condition("item.amount > 200", &ctx).unwrap());
    }

    #[test]
    fn undefined_is_an_error() {
        let t = Templates::new();
        let err = t.render_str("{{ item.missing }}", &json!({"item": {}})).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
        let err = t.render_str("hi {{ item.missing }}", &json!({"item": {}})).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
        let err = t.eval_condition("item.missing", &json!({"item": {}})).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn syntax_errors_are_reported() {
        let t = Templates::new();
        assert!(t.check("{{ item. }}").is_err());
        assert!(t.check_condition("item.amount >").is_err());
        assert!(t.check("hello {{ name }}").is_ok());
    }

    #[test]
    fn filters_work() {
        let t = Templates::new();
        let ctx = json!({"context": {"invoices": [1, 2, 3]}});
        assert_eq!(
            t.render_str("Approve {{ context.invoices | length }} invoices", &ctx).unwrap(),
            json!("Approve 3 invoices")
        );
    }

    #[test]
    fn secrets_render_to_placeholders_and_stay_untouched() {
        let t = Templates::new();
        let ctx = json!({"item": {"id": "x"}});
        assert_eq!(t.render_str("Bearer {{ secret.API_TOKEN }}", &ctx).unwrap(), json!("Bearer ⟦secret:API_TOKEN⟧"));
        assert_eq!(t.render_str("{{ secret.API_TOKEN }}", &ctx).unwrap(), json!("⟦secret:API_TOKEN⟧"));
        let err = t.render_str("{{ secret.API_TOKEN | upper }}", &ctx).unwrap_err();
        assert!(err.contains("secret.API_TOKEN is transformed"), "{err}");
        let replaced =
            replace_secret_placeholders::<String>("a ⟦secret:A⟧ b ⟦secret:B⟧ ⟦secret:not valid⟧", |n| {
                Ok(n.to_lowercase())
            })
            .unwrap();
        assert_eq!(replaced, "a a b b ⟦secret:not valid⟧");
    }

    #[test]
    fn secrets_are_refused_outside_requests() {
        let t = Templates::new();
        assert!(t.check_field("Bearer {{ secret.TOKEN }}", SecretUse::Allowed).is_ok());
        let err = t.check("{{ secret.TOKEN }}").unwrap_err();
        assert!(err.contains("only be used in an http"), "{err}");
        assert!(t.check_condition("secret.TOKEN == 'x'").is_err());
        assert!(t.check_value(&json!({"a": ["{{ secret.TOKEN }}"]})).is_err());
        let err = t.check_field("{{ secret['TOKEN'] }}", SecretUse::Allowed).unwrap_err();
        assert!(err.contains("named literally"), "{err}");
        // A context source or item field merely called `secret...` is not a secret.
        assert!(t.check("{{ item.secret }} {{ secretary }}").is_ok());
    }
}
