//! Templates in definition documents: minijinja with strict undefined values.
//!
//! - A string that is exactly one `{{ expression }}` evaluates to the expression's native value,
//!   so `"{{ item.amount }}"` stays a number and `"{{ item.tags }}"` stays a list.
//! - Any other string containing `{{` or `{%` renders as text.
//! - Conditions (`when`, `filter`) may be written with or without the braces.
//!
//! Strict undefined means a typo such as `{{ item.custmer }}` is an error naming the template,
//! not a silently empty string.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

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

    /// Checks that a string field compiles (text, or a sole expression).
    pub fn check(&self, source: &str) -> Result<(), String> {
        if let Some(expr) = sole_expression(source) {
            return self.check_expression(expr);
        }
        if is_template(source) {
            self.env.template_from_str(source).map(|_| ()).map_err(|e| describe(&e))?;
        }
        Ok(())
    }

    /// Checks a condition (`when`, `filter`), with or without braces.
    pub fn check_condition(&self, source: &str) -> Result<(), String> {
        self.check_expression(sole_expression(source).unwrap_or(source.trim()))
    }

    fn check_expression(&self, expr: &str) -> Result<(), String> {
        if expr.is_empty() {
            return Err("empty expression".into());
        }
        self.env.compile_expression(expr).map(|_| ()).map_err(|e| describe(&e))
    }

    /// Checks every string inside a JSON value (params).
    pub fn check_value(&self, value: &Value) -> Result<(), String> {
        match value {
            Value::String(s) => self.check(s),
            Value::Array(items) => items.iter().try_for_each(|v| self.check_value(v)),
            Value::Object(map) => map.values().try_for_each(|v| self.check_value(v)),
            _ => Ok(()),
        }
    }

    /// Evaluates a condition to a boolean (minijinja truthiness).
    pub fn eval_condition(&self, source: &str, ctx: &Value) -> Result<bool, String> {
        let expr = sole_expression(source).unwrap_or(source.trim());
        let compiled = self.env.compile_expression(expr).map_err(|e| describe(&e))?;
        let value = compiled.eval(minijinja::Value::from_serialize(ctx)).map_err(|e| describe(&e))?;
        if value.is_undefined() {
            return Err(format!("undefined value: {expr}"));
        }
        Ok(value.is_true())
    }

    /// Renders one string: a sole expression keeps its native type, text renders to a string.
    pub fn render_str(&self, source: &str, ctx: &Value) -> Result<Value, String> {
        let mctx = minijinja::Value::from_serialize(ctx);
        if let Some(expr) = sole_expression(source) {
            let compiled = self.env.compile_expression(expr).map_err(|e| describe(&e))?;
            let value = compiled.eval(mctx).map_err(|e| describe(&e))?;
            if value.is_undefined() {
                return Err(format!("undefined value: {expr}"));
            }
            return serde_json::to_value(&value).map_err(|e| format!("value cannot be represented as JSON: {e}"));
        }
        if !is_template(source) {
            return Ok(Value::String(source.to_owned()));
        }
        self.env.render_str(source, mctx).map(Value::String).map_err(|e| describe(&e))
    }

    /// Renders a string template to text (keys, titles); non-string results are formatted.
    pub fn render_text(&self, source: &str, ctx: &Value) -> Result<String, String> {
        Ok(match self.render_str(source, ctx)? {
            Value::String(s) => s,
            other => other.to_string(),
        })
    }

    /// Renders every string inside a JSON value.
    pub fn render_value(&self, value: &Value, ctx: &Value) -> Result<Value, String> {
        Ok(match value {
            Value::String(s) => self.render_str(s, ctx)?,
            Value::Array(items) => Value::Array(items.iter().map(|v| self.render_value(v, ctx)).collect::<Result<_, _>>()?),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_value(v, ctx)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
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
}
