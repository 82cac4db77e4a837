//! `docker-compose.dev.yml`, the `Dockerfile`, `temporal-config/` and the compose init SQL,
//! parsed and held against the repository and the binary's own command line (clap), so a
//! renamed flag, a missing mount or a typo in an environment variable fails here.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

use crate::{env_of_subcommand, port_of, read, repo, str_of};

fn compose() -> Value {
    serde_yaml_ng::from_str(&read("docker-compose.dev.yml")).expect("docker-compose.dev.yml is YAML")
}

fn services(compose: &Value) -> &serde_yaml_ng::Mapping {
    compose["services"].as_mapping().expect("a services mapping")
}

/// A service's environment (mapping or `KEY=value` list form).
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Null => BTreeMap::new(),
        Value::Mapping(m) => m.iter().map(|(k, v)| (str_of(k), str_of(v))).collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|i| {
                let item = str_of(i);
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        other => panic!("environment: {other:?}"),
    }
}

/// A service's `depends_on` as (service, condition) (list or mapping form).
fn depends_on(service: &Value) -> Vec<(String, String)> {
    match &service["depends_on"] {
        Value::Null => Vec::new(),
        Value::Sequence(names) => names.iter().map(|n| (str_of(n), "service_started".to_owned())).collect(),
        Value::Mapping(m) => m
            .iter()
            .map(|(name, spec)| (str_of(name), spec["condition"].as_str().unwrap_or("service_started").to_owned()))
            .collect(),
        other => panic!("depends_on: {other:?}"),
    }
}

/// A service's volumes as (source, target) (short `src:dst[:mode]` or long syntax).
fn volumes(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => {
                        let mut parts = s.splitn(3, ':');
                        let source = parts.next().unwrap_or_default().to_owned();
                        (source, parts.next().unwrap_or_else(|| panic!("volume {s:?} has no target")).to_owned())
                    }
                    long => (str_of(&long["source"]), str_of(&long["target"])),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_bind_mount(source: &str) -> bool {
    source.starts_with("./") || source.starts_with("../") || source.starts_with('/')
}

/// The container ports a service publishes (`"host:container"`).
fn published_ports(service: &Value) -> BTreeSet<u16> {
    service["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|p| {
            let p = str_of(p);
            let container = p.rsplit(':').next().unwrap().split('/').next().unwrap();
            container.parse().unwrap_or_else(|_| panic!("port {p:?}"))
        })
        .collect()
}

/// The services running the taskfactory image: (name, subcommand).
fn taskfactory_services(compose: &Value) -> Vec<(String, String)> {
    services(compose)
        .iter()
        .filter(|(_, s)| !s["build"].is_null())
        .map(|(name, s)| {
            let command = s["command"].as_sequence().unwrap_or_else(|| panic!("{name:?}: command must be a list"));
            (str_of(name), str_of(&command[0]))
        })
        .collect()
}

#[test]
fn compose_has_every_service_and_every_reference_resolves() {
    let compose = compose();
    let services = services(&compose);
    let names: BTreeSet<String> = services.keys().map(str_of).collect();
    for expected in [
        "postgresql",
        "temporal",
        "temporal-ui",
        "taskfactory-migrate",
        "taskfactory-setup",
        "taskfactory-worker",
        "taskfactory-api",
    ] {
        assert!(names.contains(expected), "service {expected} missing; have {names:?}");
    }
    let named_volumes: BTreeSet<String> =
        compose["volumes"].as_mapping().into_iter().flatten().map(|(k, _)| str_of(k)).collect();
    for (name, service) in services {
        let name = str_of(name);
        for (dependency, condition) in depends_on(service) {
            assert!(names.contains(&dependency), "{name} depends on {dependency}, which is not a service");
            match condition.as_str() {
                "service_started" => {}
                "service_healthy" => assert!(
                    !services[dependency.as_str()]["healthcheck"].is_null(),
                    "{name} waits for {dependency} to be healthy, which has no healthcheck"
                ),
                "service_completed_successfully" => assert!(
                    services[dependency.as_str()]["restart"].is_null(),
                    "{name} waits for {dependency} to finish, which is restarted"
                ),
                other => panic!("{name}: unknown depends_on condition {other:?}"),
            }
        }
        for (source, _) in volumes(service) {
            if is_bind_mount(&source) {
                let local = repo().join(&source);
                assert!(local.exists(), "{name} mounts {source}, which is not in the repository");
            } else {
                assert!(named_volumes.contains(&source), "{name} uses volume {source:?}, which is not declared");
            }
        }
        if let Some(context) = service["build"].as_str() {
            assert!(
                repo().join(context).join("Dockerfile").exists(),
                "{name} builds {context}, which has no Dockerfile"
            );
        }
    }
}

#[test]
fn temporal_runs_on_postgres_with_the_repository_dynamic_config() {
    let compose = compose();
    let services = services(&compose);
    let temporal = &services["temporal"];
    let env = environment(temporal);
    assert_eq!(env.get("DB").map(String::as_str), Some("postgres12"), "Postgres persistence");
    assert!(services.contains_key(env["POSTGRES_SEEDS"].as_str()), "POSTGRES_SEEDS names the Postgres service");

    // DYNAMIC_CONFIG_FILE_PATH (relative paths are under the image's /etc/temporal) must be a
    // file of this repository, mounted.
    let path = &env["DYNAMIC_CONFIG_FILE_PATH"];
    let path = if path.starts_with('/') { path.clone() } else { format!("/etc/temporal/{path}") };
    let local = volumes(temporal)
        .into_iter()
        .filter(|(source, _)| is_bind_mount(source))
        .find_map(|(source, target)| {
            path.strip_prefix(&format!("{}/", target.trim_end_matches('/'))).map(|rest| repo().join(source).join(rest))
        })
        .unwrap_or_else(|| panic!("{path} is not inside a mounted directory of the repository"));
    let text = std::fs::read_to_string(&local).unwrap_or_else(|e| panic!("{}: {e}", local.display()));
    let config: Value = serde_yaml_ng::from_str(&text).expect("the dynamic config is YAML");
    let settings = config.as_mapping().expect("the dynamic config is a mapping of keys");
    assert!(!settings.is_empty());
    for (key, values) in settings {
        let values = values.as_sequence().unwrap_or_else(|| panic!("{key:?}: a list of {{value, constraints}}"));
        for v in values {
            assert!(!v["value"].is_null(), "{key:?}: every entry has a value");
        }
    }
    // Postgres visibility keeps workflow ids in VARCHAR(255).
    let max_id = settings["limit.maxIDLength"][0]["value"].as_u64().expect("limit.maxIDLength is set");
    assert!(max_id <= 255, "limit.maxIDLength {max_id} exceeds what Postgres visibility stores");

    let ui = environment(&services["temporal-ui"]);
    assert_eq!(ui["TEMPORAL_ADDRESS"].split(':').next(), Some("temporal"));
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_taskfactory_as_a_non_root_user() {
    let text = read("Dockerfile");
    // Instructions, with continuation lines joined and comments dropped.
    let mut instructions: Vec<(String, String)> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && pending.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                let (op, args) = pending.trim().split_once(char::is_whitespace).unwrap_or((pending.trim(), ""));
                instructions.push((op.to_uppercase(), args.trim().to_owned()));
                pending.clear();
            }
        }
    }
    let stages: Vec<usize> =
        instructions.iter().enumerate().filter(|(_, (op, _))| op == "FROM").map(|(i, _)| i).collect();
    assert!(stages.len() >= 2, "a multi-stage build: {stages:?}");
    let build_stage = instructions[stages[0]].1.split_whitespace().last().unwrap().to_owned();
    let build = &instructions[stages[0]..stages[stages.len() - 1]];
    let runtime = &instructions[stages[stages.len() - 1]..];
    assert!(build.iter().any(|(op, a)| op == "RUN" && a.contains("protobuf-compiler")), "the build installs protoc");
    assert!(
        build.iter().any(|(op, a)| op == "RUN" && a.contains("cargo build --release --locked")),
        "a locked release build"
    );

    let user =
        runtime.iter().rev().find(|(op, _)| op == "USER").map(|(_, a)| a.clone()).expect("the final stage sets USER");
    let name = user.split(':').next().unwrap();
    assert!(name != "root" && name != "0", "the image runs as root ({user})");
    let entrypoint =
        runtime.iter().rev().find(|(op, _)| op == "ENTRYPOINT").map(|(_, a)| a.clone()).expect("an ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(&entrypoint).expect("ENTRYPOINT in exec form");
    let binary = if entrypoint[0].starts_with('/') {
        entrypoint[0].clone()
    } else {
        format!("/usr/local/bin/{}", entrypoint[0])
    };
    assert!(binary.ends_with("/taskfactory"), "the entrypoint is the taskfactory binary: {entrypoint:?}");
    assert!(
        runtime
            .iter()
            .any(|(op, a)| op == "COPY" && a.starts_with(&format!("--from={build_stage} ")) && a.ends_with(&binary)),
        "the final stage copies {binary} from the {build_stage} stage"
    );

    // What compose publishes from the image is exposed by it.
    let exposed: BTreeSet<u16> = runtime
        .iter()
        .filter(|(op, _)| op == "EXPOSE")
        .flat_map(|(_, a)| a.split_whitespace().map(|p| p.parse::<u16>().unwrap()))
        .collect();
    let compose = compose();
    for (name, _) in taskfactory_services(&compose) {
        let ports = published_ports(&services(&compose)[name.as_str()]);
        assert!(ports.is_subset(&exposed), "{name} publishes {ports:?}, the image exposes {exposed:?}");
    }

    let ignored = read(".dockerignore");
    for heavy in ["target", ".git"] {
        assert!(ignored.lines().any(|l| l.trim() == heavy), ".dockerignore leaves {heavy} in the build context");
    }
}

#[test]
fn compose_sets_the_environment_the_binary_reads() {
    let compose = compose();
    let services = services(&compose);
    let tf = taskfactory_services(&compose);
    let subcommands: BTreeMap<&str, &str> = tf.iter().map(|(n, c)| (c.as_str(), n.as_str())).collect();
    for needed in ["migrate", "setup", "worker", "api"] {
        assert!(subcommands.contains_key(needed), "no compose service runs `taskfactory {needed}`: {tf:?}");
    }
    let init_sql = read("scripts/compose-init-db.sql").to_lowercase();

    for (name, subcommand) in &tf {
        let service = &services[name.as_str()];
        let env = environment(service);
        let (reads, required) = env_of_subcommand(subcommand);
        for key in env.keys() {
            assert!(
                reads.contains(key) || key.starts_with("TF_SECRET_") || key == "RUST_LOG",
                "{name} sets {key}, which `taskfactory {subcommand}` does not read ({reads:?})"
            );
        }
        for key in &required {
            assert!(env.contains_key(key), "{name} runs `taskfactory {subcommand}` without {key}");
        }
        // In a container the loopback defaults reach nothing: addresses are set and point at
        // compose services.
        if reads.contains("TEMPORAL_ADDRESS") {
            let address = env.get("TEMPORAL_ADDRESS").unwrap_or_else(|| panic!("{name} needs TEMPORAL_ADDRESS"));
            let host = address.split(':').next().unwrap();
            assert!(services.contains_key(host), "{name}: TEMPORAL_ADDRESS {address} is not a compose service");
            assert!(
                depends_on(service)
                    .iter()
                    .any(|(d, _)| d == host || services[d.as_str()]["depends_on"][host].is_mapping()),
                "{name} does not wait for {host}"
            );
        }
        if let Some(url) = env.get("DATABASE_URL") {
            let rest = url.strip_prefix("postgres://").unwrap_or_else(|| panic!("{name}: DATABASE_URL {url}"));
            let (authority, database) = rest.split_once('/').unwrap();
            let host = authority.rsplit('@').next().unwrap().split(':').next().unwrap();
            assert!(services.contains_key(host), "{name}: DATABASE_URL host {host} is not a compose service");
            assert!(
                init_sql.contains(&format!("create database {database}")),
                "{name} uses database {database}, which compose-init-db.sql does not create"
            );
        }
        for listen in ["TASKFACTORY_API_ADDR", "TASKFACTORY_METRICS_ADDR"] {
            if let Some(addr) = env.get(listen) {
                assert!(
                    addr.starts_with("0.0.0.0:"),
                    "{name}: {listen} {addr} is not reachable from outside the container"
                );
                assert!(published_ports(service).contains(&port_of(addr)), "{name}: {listen} port is not published");
            }
        }
    }

    // The API serves on a published port, the worker exposes its metrics; both wait for the
    // migrations and the search attributes, and agree on namespace and task queue.
    let worker = environment(&services[subcommands["worker"]]);
    let api = environment(&services[subcommands["api"]]);
    assert!(api.contains_key("TASKFACTORY_API_ADDR"), "the API listens on loopback by default");
    assert!(worker.contains_key("TASKFACTORY_METRICS_ADDR"), "the worker's metrics are off by default");
    for (role, service) in [("worker", subcommands["worker"]), ("api", subcommands["api"])] {
        let deps = depends_on(&services[service]);
        for first in [subcommands["migrate"], subcommands["setup"]] {
            assert!(
                deps.contains(&(first.to_owned(), "service_completed_successfully".to_owned())),
                "the {role} does not wait for {first} to finish"
            );
        }
    }
    for shared in ["TEMPORAL_NAMESPACE", "TASKFACTORY_TASK_QUEUE", "TASKFACTORY_CONTEXT_DATABASE_URL"] {
        assert_eq!(worker.get(shared), api.get(shared), "worker and API disagree on {shared}");
    }
    // `sql` sources run as a role of their own that the init SQL creates, not as the store's user.
    let context = worker.get("TASKFACTORY_CONTEXT_DATABASE_URL").expect("the worker has a context database");
    let user = context.strip_prefix("postgres://").and_then(|r| r.split([':', '@']).next()).unwrap();
    assert_ne!(
        Some(user),
        worker["DATABASE_URL"].strip_prefix("postgres://").and_then(|r| r.split([':', '@']).next()),
        "the context database uses the store's user"
    );
    assert!(
        init_sql.contains(&format!("create role {user} login")),
        "compose-init-db.sql does not create the context role {user}"
    );
}
