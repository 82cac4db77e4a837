//! The OpenAPI 3.1 document of the HTTP API, generated from the code (ADR-013), served at
//! `GET /api/v1/openapi.json` and checked in as `api/openapi.json`.
//!
//! Where each part comes from:
//! - the operations (path, method, parameters, bodies, answers): the `#[utoipa::path]`
//!   attribute on each handler in [`crate::routes`], listed in [`ApiDoc`];
//! - who may call what: [`crate::auth::required_role`], applied to every operation by
//!   `AccessRules`, so the document and the guard cannot disagree;
//! - the body schemas: the wire types' `schemars::JsonSchema` derive (the same one the JSON
//!   Schemas in `schemas/json/` come from), under `components.schemas` (see [`body_schemas`]);
//!   operations name them with `ref("#/components/schemas/...")`;
//! - error answers: every 4xx and 5xx answer carries [`ErrorBody`], the envelope
//!   [`crate::error::ApiError`] renders.
//!
//! `cargo test -p taskfactory-api` fails when `api/openapi.json` is stale, when a route of
//! [`crate::routes::router`] is missing from the document, or when a `$ref` points nowhere.
//! Regenerate the file with `UPDATE_OPENAPI=1 cargo test -p taskfactory-api openapi`.

use axum::http::Method;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::auth::{Role, required_role};
use crate::error::ErrorBody;
use crate::routes::{
    control, decisions, definitions, docs, events, fleet, health, human, keys, metrics, notifications, observe, plans,
    runs, schedules, stream, task_events, ui,
};

/// The operations: one `#[utoipa::path]` handler per route and method.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "taskfactory",
        description = "The HTTP API of taskfactory: definitions, triggers, event ingress, the run log and its live streams. \
                       Errors are `{\"error\": {\"code\", \"message\", \"details\": [{\"path\", \"message\"}]}}`."
    ),
    paths(
        ui::index, ui::asset, ui::config, ui::whoami,
        health::healthz, health::readyz, metrics::metrics, docs::openapi_json,
        definitions::list, definitions::get, definitions::put, definitions::delete,
        definitions::versions, definitions::version, definitions::diff, definitions::validate, plans::dry_run,
        plans::behaviour_diff, plans::behaviour_diff_with_samples, decisions::list, decisions::preview,
        notifications::list,
        runs::trigger,
        schedules::describe, schedules::pause, schedules::unpause, schedules::trigger, schedules::backfill, schedules::reconcile,
        fleet::pause, fleet::resume, fleet::trigger, fleet::backfill,
        keys::list, keys::create, keys::revoke, keys::audit,
        events::ingest,
        human::list, human::complete, human::reject,
        runs::list, runs::get, runs::events, control::cancel, control::retry, stream::run_stream, observe::graph, observe::external_events, task_events::report, task_events::artifact, stream::runs_stream,
    ),
    modifiers(&AccessRules),
    tags(
        (name = "definitions", description = "Activity definitions: versioned documents, validation, dry-runs"),
        (name = "runs", description = "Manual triggers and the run log: runs, trace events, graphs, live streams"),
        (name = "events", description = "Event ingress: events start the runs of `kind: event` definitions"),
        (name = "schedules", description = "The Temporal Schedules of cron definitions"),
        (name = "fleet", description = "Pause, resume, trigger or backfill every definition a selector (tags, search) matches, with one result per definition"),
        (name = "human-tasks", description = "The inbox of `kind: human` tasks"),
        (name = "keys", description = "API keys and the audit log (admin)"),
        (name = "health", description = "Liveness, readiness, metrics and this document (no key needed)"),
        (name = "ui", description = "The web UI's files and settings (no key needed)"),
    )
)]
pub struct ApiDoc;

/// The whole document, as served and checked in.
pub fn document() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    document["components"]["schemas"] = Value::Object(body_schemas());
    document
}

/// The security schemes: the three ways `crate::auth` accepts a key.
const SCHEMES: [&str; 3] = ["bearer", "api_key", "access_token"];

/// Applies the rules every operation shares: the key and role it needs, and the error
/// envelope of its 4xx/5xx answers.
struct AccessRules;

impl Modify for AccessRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("tfk_<id>_<secret>")
                    .description(Some("An API key (`taskfactory keys create`). Roles: viewer reads; operator also triggers, pauses, backfills, sends events and decides human tasks; admin also manages definitions and keys."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "The same key, in a header of its own.",
            ))),
        );
        components.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "access_token",
                "The same key as a query parameter, for `EventSource` (which cannot set headers).",
            ))),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let methods = [
                (Method::GET, &mut item.get),
                (Method::PUT, &mut item.put),
                (Method::POST, &mut item.post),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
                (Method::HEAD, &mut item.head),
            ];
            for (method, operation) in methods {
                let Some(operation) = operation else { continue };
                let responses = &mut operation.responses.responses;
                match required_role(&method, path) {
                    // Open: an empty list says "no key needed" (rather than "not documented").
                    None => operation.security = Some(Vec::new()),
                    // OpenAPI 3.1 lets a non-OAuth requirement list role names: any one scheme,
                    // with a key of at least this role.
                    Some(role) => {
                        // A reporting call takes reporter, operator and admin keys.
                        let roles: &[&str] =
                            if role == Role::Reporter { &["reporter", "operator", "admin"] } else { &[role.as_str()] };
                        operation.security = Some(
                            SCHEMES
                                .iter()
                                .map(|scheme| SecurityRequirement::new(*scheme, roles.iter().copied()))
                                .collect(),
                        );
                        responses.entry("401".into()).or_insert_with(|| {
                            ResponseBuilder::new()
                                .description("No API key, or an unknown, revoked or expired one")
                                .build()
                                .into()
                        });
                        let forbidden = if role == Role::Reporter {
                            "The key is a viewer's".to_owned()
                        } else {
                            format!("The key's role is below {} (or it is a reporter's)", role.as_str())
                        };
                        responses
                            .entry("403".into())
                            .or_insert_with(|| ResponseBuilder::new().description(forbidden).build().into());
                    }
                }
                for (status, response) in responses.iter_mut() {
                    if let utoipa::openapi::RefOr::T(response) = response
                        && (status.starts_with('4') || status.starts_with('5'))
                        && response.content.is_empty()
                    {
                        response
                            .content
                            .insert("application/json".into(), Content::new(Some(Ref::from_schema_name("Error"))));
                    }
                }
            }
        }
    }
}

/// Adds the schema of each type (and of every type it contains) to the generator.
macro_rules! with_schemas {
    ($generator:ident: $($ty:ty),* $(,)?) => {
        $( $generator.subschema_for::<$ty>(); )*
    };
}

/// `components.schemas`: every type an operation names with `ref("#/components/schemas/...")`,
/// from its `schemars::JsonSchema`, with the types they contain. JSON Schema 2020-12, which is
/// the dialect of OpenAPI 3.1; request and response types alike use schemars' default
/// (deserialize) contract, as `schemas/json/` does.
pub fn body_schemas() -> Map<String, Value> {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut generator = settings.into_generator();
    with_schemas!(generator:
        ErrorBody,
        taskfactory_schemas::ActivityDefinition,
        taskfactory_schemas::TraceEvent,
        taskfactory_activities::store::RunDetail,
        definitions::SaveAnswer, definitions::ValidAnswer, definitions::DefinitionAnswer, definitions::DefinitionList,
        definitions::VersionList, definitions::VersionAnswer, definitions::DiffAnswer,
        plans::DryRunRequest, plans::DryRunAnswer, plans::BehaviourDiffAnswer, plans::BehaviourRequest,
        decisions::DecisionLog, decisions::PreviewAnswer,
        notifications::NotificationList,
        runs::TriggerRequest, runs::TriggerAnswer, runs::RunList, runs::EventPage,
        control::CancelBody, control::CancelAnswer, control::RetryBody, control::RetryAnswer,
        schedules::ScheduleDescription, schedules::NoteRequest, schedules::PauseAnswer, schedules::ScheduleTriggered,
        schedules::BackfillRequest, schedules::BackfillAnswer, schedules::ReconcileAnswer,
        fleet::FleetRequest, fleet::FleetAnswer,
        keys::CreateKey, keys::CreatedKey, keys::KeyList, keys::AuditList,
        events::EventsBody, events::IngestAnswer,
        human::HumanTaskList, human::DecisionRequest, human::DecisionAnswer,
        observe::ExternalEventsBody, observe::ExternalAnswer,
        task_events::TaskEventsBody, task_events::TaskEventsAnswer,
        health::HealthAnswer, ui::UiConfig, ui::WhoAmI,
    );
    generator.take_definitions(true)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use serde_json::Value;

    use super::document;

    /// The checked-in copy, next to `Cargo.toml`.
    fn checked_in_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
    }

    fn pretty(document: &Value) -> String {
        let mut text = serde_json::to_string_pretty(document).expect("the document serializes");
        text.push('\n');
        text
    }

    #[test]
    fn openapi_document_is_fresh() {
        let generated = pretty(&document());
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(checked_in_path(), &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(checked_in_path()).unwrap_or_default();
        assert!(
            checked_in == generated,
            "api/openapi.json differs from the document the code generates: run `UPDATE_OPENAPI=1 cargo test -p taskfactory-api openapi` and commit the file"
        );
    }

    /// `(path, methods)` of every `.route("path", get(..).post(..))` in the router's source.
    fn router_routes() -> BTreeMap<String, BTreeSet<String>> {
        let source = include_str!("routes/mod.rs");
        let mut routes = BTreeMap::new();
        for (start, _) in source.match_indices(".route(") {
            // The call's text, up to its closing parenthesis (it may span lines, and rustfmt
            // puts a long one's path on a line of its own).
            let call = source[start + ".route(".len()..].trim_start();
            if !call.starts_with('"') {
                continue;
            }
            let mut depth = 1;
            let end = call
                .char_indices()
                .find_map(|(i, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    (depth == 0).then_some(i)
                })
                .expect("a .route( call closes");
            let call = &call[..end];
            // axum's catch-all `{*path}` is OpenAPI's `{path}`.
            let path = call[1..].split('"').next().unwrap().replace("{*", "{");
            // Method routers are `get(handler)`, `.put(handler)`, `axum::routing::delete(handler)`:
            // a method name right before a `(`.
            let methods: BTreeSet<String> = call
                .split('(')
                .filter_map(|before| before.rsplit(|c: char| !c.is_ascii_alphanumeric() && c != '_').next())
                .filter(|word| ["get", "put", "post", "delete", "patch", "head"].contains(word))
                .map(str::to_owned)
                .collect();
            assert!(!methods.is_empty(), "no method found in the route {call:?}");
            assert!(routes.insert(path.clone(), methods).is_none(), "{path} is routed twice");
        }
        assert!(routes.len() > 30, "the router's source was not parsed: {routes:?}");
        routes
    }

    #[test]
    fn every_route_is_documented_with_its_methods() {
        let document = document();
        let documented: BTreeMap<String, BTreeSet<String>> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(path, item)| (path.clone(), item.as_object().unwrap().keys().cloned().collect()))
            .collect();
        let routed = router_routes();
        let paths: BTreeSet<&String> = routed.keys().chain(documented.keys()).collect();
        let differences: Vec<String> = paths
            .into_iter()
            .filter(|path| routed.get(*path) != documented.get(*path))
            .map(|path| format!("{path}: router {:?}, document {:?}", routed.get(path), documented.get(path)))
            .collect();
        assert!(
            differences.is_empty(),
            "the router and the OpenAPI document differ (give each handler a #[utoipa::path] and list it in ApiDoc):\n{}",
            differences.join("\n")
        );
    }

    /// Every `$ref` in `value`.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    out.push(target);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_schema_reference_resolves() {
        let document = document();
        let mut targets = Vec::new();
        refs(&document, &mut targets);
        assert!(targets.len() > 50, "{targets:?}");
        let missing: BTreeSet<&str> =
            targets.into_iter().filter(|target| document.pointer(target.trim_start_matches('#')).is_none()).collect();
        assert!(
            missing.is_empty(),
            "references to nothing: {missing:?} (add the type to body_schemas, or fix the name)"
        );
        let schemas = document["components"]["schemas"].as_object().unwrap();
        let renamed: Vec<&String> =
            schemas.keys().filter(|name| name.ends_with(|c: char| c.is_ascii_digit())).collect();
        assert!(
            renamed.is_empty(),
            "two types share a schema name, schemars numbered them: {renamed:?} (rename one with #[schemars(rename)])"
        );
    }

    #[test]
    fn path_parameters_are_documented() {
        let document = document();
        for (path, item) in document["paths"].as_object().unwrap() {
            let in_template: BTreeSet<&str> =
                path.split('{').skip(1).map(|rest| rest.split('}').next().unwrap()).collect();
            for (method, operation) in item.as_object().unwrap() {
                let documented: BTreeSet<&str> = operation["parameters"]
                    .as_array()
                    .map(|ps| ps.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect())
                    .unwrap_or_default();
                assert_eq!(in_template, documented, "{method} {path}");
            }
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let document = document();
        let mut seen = BTreeSet::new();
        for item in document["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                let id = operation["operationId"].as_str().expect("every operation has an operation_id");
                assert!(seen.insert(id.to_owned()), "operation_id {id:?} is used twice");
            }
        }
    }

    #[test]
    fn operations_carry_the_role_the_guard_checks_and_the_error_envelope() {
        let document = document();
        let operation = |method: &str, path: &str| document["paths"][path][method].clone();
        let roles = |op: &Value| -> BTreeSet<String> {
            op["security"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_object().unwrap().values())
                .flat_map(|v| v.as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()))
                .collect()
        };
        for (method, path) in [
            ("get", "/healthz"),
            ("get", "/metrics"),
            ("get", "/api/v1/openapi.json"),
            ("get", "/"),
            ("get", "/ui/{path}"),
        ] {
            assert_eq!(operation(method, path)["security"], serde_json::json!([]), "{method} {path} is open");
        }
        assert_eq!(roles(&operation("get", "/api/v1/runs")), BTreeSet::from(["viewer".to_owned()]));
        assert_eq!(
            roles(&operation("post", "/api/v1/events")),
            BTreeSet::from(["reporter".to_owned(), "operator".to_owned(), "admin".to_owned()])
        );
        assert_eq!(roles(&operation("post", "/api/v1/fleet/pause")), BTreeSet::from(["operator".to_owned()]));
        assert_eq!(roles(&operation("put", "/api/v1/definitions/{id}")), BTreeSet::from(["admin".to_owned()]));
        assert_eq!(
            operation("put", "/api/v1/definitions/{id}")["security"].as_array().unwrap().len(),
            3,
            "bearer, x-api-key, access_token"
        );

        let error = serde_json::json!({"$ref": "#/components/schemas/Error"});
        let put = operation("put", "/api/v1/definitions/{id}");
        for status in ["401", "403", "422"] {
            assert_eq!(put["responses"][status]["content"]["application/json"]["schema"], error, "{status}");
        }
        assert!(operation("get", "/healthz")["responses"].get("401").is_none(), "open routes do not answer 401");
        let stream = operation("get", "/api/v1/runs/{workflow_id}/stream");
        assert!(stream["responses"]["200"]["content"].get("text/event-stream").is_some(), "{stream}");
    }
}
