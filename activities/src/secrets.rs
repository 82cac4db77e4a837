//! Secrets: named values definitions reference as `{{ secret.NAME }}`.
//!
//! Templates render secrets to placeholders (`⟦secret:NAME⟧`, see
//! [`taskfactory_schemas::template`]), so plans, the run log and histories never hold a value.
//! The activity that sends a request swaps the placeholders for the values ([`Revealed::reveal`])
//! right before sending, and redacts the values it used out of the answer and out of any error
//! ([`Revealed::redact`]) before either is returned (and so recorded).
//!
//! Values come from `TF_SECRET_<NAME>` variables (read once, at start-up, by the CLI) and from a
//! secrets directory holding one file per secret (read on every use, so a rotated file takes
//! effect at once; one trailing newline is dropped), the layout of Kubernetes and Docker secrets.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use taskfactory_schemas::template::{is_secret_name, replace_secret_placeholders, secret_placeholder};

/// Prefix of the environment variables holding secrets.
pub const ENV_PREFIX: &str = "TF_SECRET_";

/// Where secret values come from. `Debug` shows names, never values.
#[derive(Clone, Default)]
pub struct SecretStore {
    values: Arc<HashMap<String, String>>,
    dir: Option<PathBuf>,
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.values.keys().collect();
        names.sort();
        f.debug_struct("SecretStore").field("names", &names).field("dir", &self.dir).finish()
    }
}

impl SecretStore {
    /// Secrets given by value (`NAME → value`) plus, optionally, a directory of secret files.
    pub fn new(values: HashMap<String, String>, dir: Option<PathBuf>) -> Self {
        Self { values: Arc::new(values), dir }
    }

    /// The `TF_SECRET_<NAME>` entries of an environment, as `NAME → value`.
    pub fn values_from_env(vars: impl IntoIterator<Item = (String, String)>) -> HashMap<String, String> {
        vars.into_iter()
            .filter_map(|(key, value)| {
                key.strip_prefix(ENV_PREFIX).filter(|name| is_secret_name(name)).map(|name| (name.to_owned(), value))
            })
            .collect()
    }

    /// The value of `name`; the error says where it was looked for.
    pub fn get(&self, name: &str) -> Result<String, String> {
        if let Some(value) = self.values.get(name) {
            return Ok(value.clone());
        }
        if let Some(dir) = &self.dir
            && is_secret_name(name)
        {
            match std::fs::read_to_string(dir.join(name)) {
                Ok(text) => {
                    return Ok(text
                        .strip_suffix('\n')
                        .map(|t| t.strip_suffix('\r').unwrap_or(t))
                        .unwrap_or(&text)
                        .to_owned());
                }
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(format!("secret {name}: reading {}: {e}", dir.join(name).display()));
                }
                Err(_) => {}
            }
        }
        let file = self.dir.as_ref().map(|d| format!(" or a file {}", d.join(name).display())).unwrap_or_default();
        Err(format!("secret {name} is not set (set {ENV_PREFIX}{name}{file} where the worker and API run)"))
    }
}

/// The secrets one request used: reveals placeholders and redacts the values again.
#[derive(Default)]
pub struct Revealed {
    /// `(name, value)`, longest value first so a value containing another is redacted whole.
    used: Vec<(String, String)>,
}

impl Revealed {
    /// `text` with every placeholder replaced by its value from `store`.
    pub fn reveal(&mut self, store: &SecretStore, text: &str) -> Result<String, String> {
        replace_secret_placeholders(text, |name| {
            let value = store.get(name)?;
            if !value.is_empty() && !self.used.iter().any(|(n, _)| n == name) {
                self.used.push((name.to_owned(), value.clone()));
                self.used.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
            }
            Ok(value)
        })
    }

    /// Every string inside `value` revealed.
    pub fn reveal_value(&mut self, store: &SecretStore, value: &Value) -> Result<Value, String> {
        Ok(match value {
            Value::String(s) => Value::String(self.reveal(store, s)?),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.reveal_value(store, v)).collect::<Result<_, _>>()?)
            }
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| Ok((k.clone(), self.reveal_value(store, v)?))).collect::<Result<
                    _,
                    String,
                >>(
                )?)
            }
            other => other.clone(),
        })
    }

    /// `text` with every value used replaced by its placeholder again.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (name, value) in &self.used {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), &secret_placeholder(name));
            }
        }
        out
    }

    /// Every string (and object key) inside `value` redacted.
    pub fn redact_value(&self, value: Value) -> Value {
        if self.used.is_empty() {
            return value;
        }
        match value {
            Value::String(s) => Value::String(self.redact(&s)),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.redact_value(v)).collect()),
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (self.redact(&k), self.redact_value(v))).collect())
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reveal_then_redact_round_trips() {
        let store = SecretStore::new(
            HashMap::from([
                ("TOKEN".to_owned(), "s3cr3t".to_owned()),
                ("LONG".to_owned(), "s3cr3t-and-more".to_owned()),
            ]),
            None,
        );
        let mut revealed = Revealed::default();
        let url = revealed.reveal(&store, "https://x/?t=⟦secret:TOKEN⟧&l=⟦secret:LONG⟧").unwrap();
        assert_eq!(url, "https://x/?t=s3cr3t&l=s3cr3t-and-more");
        assert_eq!(
            revealed.redact(&format!("GET {url} failed")),
            "GET https://x/?t=⟦secret:TOKEN⟧&l=⟦secret:LONG⟧ failed"
        );
        let echoed = revealed.redact_value(json!({"headers": {"authorization": "Bearer s3cr3t"}, "s3cr3t": [1]}));
        assert_eq!(echoed, json!({"headers": {"authorization": "Bearer ⟦secret:TOKEN⟧"}, "⟦secret:TOKEN⟧": [1]}));
        assert!(!format!("{store:?}").contains("s3cr3t"));
    }

    #[test]
    fn files_and_missing_secrets() {
        let dir = std::env::temp_dir().join(format!("tf-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("FROM_FILE"), "v4lue\n").unwrap();
        let store = SecretStore::new(
            SecretStore::values_from_env([
                ("TF_SECRET_ENV".to_owned(), "e".to_owned()),
                ("HOME".to_owned(), "/".to_owned()),
            ]),
            Some(dir.clone()),
        );
        assert_eq!(store.get("FROM_FILE").unwrap(), "v4lue");
        assert_eq!(store.get("ENV").unwrap(), "e");
        assert!(store.get("HOME").is_err());
        let err = Revealed::default().reveal(&store, "⟦secret:MISSING⟧").unwrap_err();
        assert!(err.contains("secret MISSING is not set") && err.contains("TF_SECRET_MISSING"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
