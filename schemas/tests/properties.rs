//! Property tests: whatever a client sends, parsing, validation, planning and rendering never
//! panic, and every rejection names where the problem is.

// A test crate: helpers unwrap too (clippy allows it only inside #[test] fns and #[cfg(test)]).
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Value, json};
use taskfactory_schemas::plan::{PlanRequest, plan};
use taskfactory_schemas::run::TriggerInfo;
use taskfactory_schemas::template::Templates;
use taskfactory_schemas::validate::{Format, parse_definition, parse_text};

/// Any JSON value, a few levels deep, with keys that often hit real field names.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("id".to_owned()),
        Just("name".to_owned()),
        Just("kind".to_owned()),
        Just("tasks".to_owned()),
        Just("trigger".to_owned()),
        Just("context".to_owned()),
        Just("for_each".to_owned()),
        Just("when".to_owned()),
        Just("params".to_owned()),
        Just("depends_on".to_owned()),
        Just("cron".to_owned()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
        prop_oneof![
            Just("{{ item.x }}"),
            Just("{{"),
            Just("{% for %}"),
            Just("0 9 * * MON-FRI"),
            Just("noop"),
            Just("manual")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn valid() -> Value {
    json!({
        "id": "props", "name": "Props", "trigger": {"kind": "manual"},
        "context": [{"name": "items", "kind": "static", "value": [{"x": 1}, {"x": 2}]}],
        "tasks": [{"id": "t", "kind": "noop", "for_each": "items", "key": "{{ item.x }}", "when": "item.x > 1", "params": {"x": "{{ item.x }}"}}]
    })
}

const TOP_LEVEL: &[&str] = &[
    "",
    "id",
    "name",
    "description",
    "tags",
    "enabled",
    "trigger",
    "context",
    "tasks",
    "failure_policy",
    "max_parallel",
];

fn assert_named(errors: &[taskfactory_schemas::FieldError]) {
    assert!(!errors.is_empty());
    for e in errors {
        assert!(!e.message.is_empty(), "an error without a message: {e:?}");
        let root = e.path.split(['.', '[']).next().unwrap_or_default();
        // The path starts at a field of the document, or is the unknown field itself.
        let unknown_field = e.message.starts_with(&format!("unknown field `{root}`"));
        assert!(TOP_LEVEL.contains(&root) || unknown_field, "an error outside the document's fields: {e:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_documents_never_panic_and_rejections_name_a_field(doc in any_json()) {
        if let Err(e) = parse_definition(doc) {
            assert_named(&e.errors);
        }
    }

    #[test]
    fn a_valid_document_with_one_field_replaced_is_accepted_or_explained(
        section in prop_oneof![Just("trigger"), Just("context"), Just("tasks"), Just("name"), Just("id"), Just("tags"), Just("max_parallel")],
        value in any_json(),
    ) {
        let mut doc = valid();
        doc[section] = value;
        match parse_definition(doc) {
            Ok(def) => {
                // Whatever validates also plans without panicking.
                let context = json!({"items": [{"x": 1}, {"x": 2}]});
                let trigger = TriggerInfo::manual(None, Value::Null);
                let request = PlanRequest { definition: &def, version: 1, run_workflow_id: "tf:props:manual:x", context: &context, trigger: &trigger, max_tasks: 100 };
                let _ = plan(&request);
            }
            Err(e) => assert_named(&e.errors),
        }
    }

    #[test]
    fn arbitrary_text_never_panics_as_json_or_yaml(text in ".{0,200}") {
        let _ = parse_text(&text, Format::Json);
        let _ = parse_text(&text, Format::Yaml);
    }

    #[test]
    fn templates_never_panic(source in ".{0,60}", ctx in any_json()) {
        let templates = Templates::new();
        let _ = templates.check(&source);
        let _ = templates.check_condition(&source);
        let _ = templates.render_str(&source, &ctx);
        let _ = templates.eval_condition(&source, &ctx);
    }
}
