//! `deploy/kubernetes/`: every manifest passes `kubernetes-validate --strict` (the schemas of
//! the Kubernetes API, offline), and holds together with the binary: each container runs a
//! real subcommand with environment variables that subcommand reads, the probes and ports
//! match the addresses the processes listen on, and every pod runs as the image's non-root
//! user with resource requests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_yaml_ng::Value;

use crate::{env_of_subcommand, port_of, read, repo, str_of};

const DIR: &str = "deploy/kubernetes";

/// Every manifest file (not the kustomization, which is kustomize's, not the API server's).
fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(DIR))
        .expect("deploy/kubernetes exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

/// Every resource, as (file name, document).
fn resources() -> Vec<(String, Value)> {
    let mut all = Vec::new();
    for file in manifest_files() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(document).unwrap_or_else(|e| panic!("{name}: {e}"));
            if !value.is_null() {
                all.push((name.clone(), value));
            }
        }
    }
    all
}

fn of_kind<'a>(resources: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    resources.iter().filter(|(_, r)| r["kind"] == kind).map(|(_, r)| r).collect()
}

fn named<'a>(resources: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    of_kind(resources, kind)
        .into_iter()
        .find(|r| r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {DIR}"))
}

/// The validator: `KUBERNETES_VALIDATE` (the test bootstrap installs it into its virtualenv
/// and sets this), else `kubernetes-validate` on PATH. Missing fails the test.
fn validator() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBERNETES_VALIDATE") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("kubernetes-validate"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("kubernetes-validate is not installed: run scripts/test (its bootstrap installs it), or `pip install kubernetes-validate`"))
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    Command::new(validator()).arg("--strict").args(files).output().expect("running kubernetes-validate")
}

#[test]
fn every_manifest_passes_kubernetes_validate_strict() {
    let files = manifest_files();
    assert!(files.len() >= 7, "{files:?}");
    let out = validate(&files);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kubernetes-validate --strict failed:\n{said}");
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(said.lines().any(|l| l.contains(&*name) && l.contains("passed")), "{name} was not validated:\n{said}");
    }

    // The validator is strict for real: an unknown field fails it.
    let broken = std::env::temp_dir().join(format!("taskfactory-broken-{}.yaml", std::process::id()));
    let text = read(&format!("{DIR}/api-service.yaml")).replace("  selector:", "  selectr:\n    app: x\n  selector:");
    std::fs::write(&broken, text).unwrap();
    let out = validate(std::slice::from_ref(&broken));
    let _ = std::fs::remove_file(&broken);
    assert!(!out.status.success(), "an unknown field passed: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn the_kustomization_lists_every_manifest_but_the_example_secret() {
    let kustomization: Value = serde_yaml_ng::from_str(&read(&format!("{DIR}/kustomization.yaml"))).unwrap();
    let listed: BTreeSet<String> = kustomization["resources"].as_sequence().unwrap().iter().map(str_of).collect();
    let files: BTreeSet<String> = manifest_files()
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|f| f != "secret.example.yaml")
        .collect();
    assert_eq!(listed, files);
}

/// Every pod template: (owner name, pod spec).
fn pod_specs(resources: &[(String, Value)]) -> Vec<(String, &Value)> {
    ["Deployment", "Job"]
        .iter()
        .flat_map(|kind| of_kind(resources, kind))
        .map(|r| (str_of(&r["metadata"]["name"]), &r["spec"]["template"]["spec"]))
        .collect()
}

/// A container's environment: its own `env` and the keys of the ConfigMaps it loads.
fn container_env(resources: &[(String, Value)], container: &Value) -> (BTreeMap<String, Value>, BTreeSet<String>) {
    let own: BTreeMap<String, Value> =
        container["env"].as_sequence().into_iter().flatten().map(|e| (str_of(&e["name"]), e.clone())).collect();
    let mut from_config = BTreeSet::new();
    for source in container["envFrom"].as_sequence().into_iter().flatten() {
        let name = str_of(&source["configMapRef"]["name"]);
        let config = named(resources, "ConfigMap", &name);
        from_config.extend(config["data"].as_mapping().unwrap().keys().map(str_of));
    }
    (own, from_config)
}

#[test]
fn containers_run_real_subcommands_with_environment_they_read() {
    let resources = resources();
    let secrets = of_kind(&resources, "Secret");
    let mut config_keys_read = BTreeSet::new();
    let mut config_keys = BTreeSet::new();
    let mut subcommands = BTreeMap::new();
    for (owner, spec) in pod_specs(&resources) {
        for container in spec["containers"].as_sequence().unwrap() {
            let subcommand = str_of(&container["args"][0]);
            subcommands.insert(subcommand.clone(), owner.clone());
            let (reads, required) = env_of_subcommand(&subcommand);
            let (own, from_config) = container_env(&resources, container);
            for key in own.keys() {
                assert!(
                    reads.contains(key),
                    "{owner} sets {key}, which `taskfactory {subcommand}` does not read ({reads:?})"
                );
            }
            for key in &required {
                assert!(
                    own.contains_key(key) || from_config.contains(key),
                    "{owner} runs `taskfactory {subcommand}` without {key}"
                );
            }
            config_keys.extend(from_config.iter().cloned());
            config_keys_read.extend(from_config.intersection(&reads).cloned());
            // Secret references resolve to a key of the Secret the example documents.
            for value in own.values() {
                let reference = &value["valueFrom"]["secretKeyRef"];
                if reference.is_mapping() {
                    let secret = secrets
                        .iter()
                        .find(|s| s["metadata"]["name"] == reference["name"])
                        .unwrap_or_else(|| panic!("{owner}: no Secret {:?}", reference["name"]));
                    assert!(
                        !secret["stringData"][str_of(&reference["key"]).as_str()].is_null(),
                        "{owner}: Secret has no key {:?}",
                        reference["key"]
                    );
                }
            }
        }
    }
    assert_eq!(config_keys_read, config_keys, "every ConfigMap key is read by a process that loads it");
    assert!(config_keys.contains("TEMPORAL_ADDRESS"), "the loopback default reaches nothing in a pod");
    let expected: BTreeMap<String, String> = [
        ("migrate", "taskfactory-migrate"),
        ("setup", "taskfactory-setup"),
        ("worker", "taskfactory-worker"),
        ("api", "taskfactory-api"),
    ]
    .iter()
    .map(|(s, o)| (s.to_string(), o.to_string()))
    .collect();
    assert_eq!(subcommands, expected);
    assert_eq!(of_kind(&resources, "Job").len(), 2, "migrate and setup are Jobs");
}

/// The `value` of an explicit env var of a container.
fn env_value(container: &Value, name: &str) -> String {
    let entry = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name}"));
    str_of(&entry["value"])
}

/// The container port called `name`.
fn container_port(container: &Value, name: &str) -> u16 {
    let port = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port {name}"));
    port["containerPort"].as_u64().unwrap() as u16
}

#[test]
fn pods_run_as_the_images_non_root_user_with_requests_probes_and_matching_ports() {
    let dockerfile = read("Dockerfile");
    let user = dockerfile.lines().filter_map(|l| l.strip_prefix("USER ")).last().expect("the Dockerfile sets USER");
    let uid: u64 = user.split(':').next().unwrap().parse().expect("a numeric USER");
    let resources = resources();
    for (owner, spec) in pod_specs(&resources) {
        let pod = &spec["securityContext"];
        assert_eq!(pod["runAsNonRoot"], Value::Bool(true), "{owner}");
        assert_eq!(pod["runAsUser"].as_u64(), Some(uid), "{owner} runs as the Dockerfile's user");
        for container in spec["containers"].as_sequence().unwrap() {
            let security = &container["securityContext"];
            assert_eq!(security["allowPrivilegeEscalation"], Value::Bool(false), "{owner}");
            assert_eq!(security["readOnlyRootFilesystem"], Value::Bool(true), "{owner}");
            for resource in ["cpu", "memory"] {
                assert!(!container["resources"]["requests"][resource].is_null(), "{owner} requests no {resource}");
            }
            assert!(!container["resources"]["limits"]["memory"].is_null(), "{owner} has no memory limit");
        }
    }

    // The API listens where its probes and Service look.
    let api = named(&resources, "Deployment", "taskfactory-api");
    let container = &api["spec"]["template"]["spec"]["containers"][0];
    let listen = env_value(container, "TASKFACTORY_API_ADDR");
    assert!(listen.starts_with("0.0.0.0:"), "the API must listen beyond loopback in a pod: {listen}");
    assert_eq!(container_port(container, "http"), port_of(&listen));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "http", "{probe} targets the API's port");
    }
    let service = named(&resources, "Service", "taskfactory-api");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let labels = api["spec"]["template"]["metadata"]["labels"].as_mapping().unwrap();
    for (key, value) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(labels.get(key), Some(value), "the Service selects the API's pods");
    }

    // The worker scales out and serves its metrics on the port it declares.
    let worker = named(&resources, "Deployment", "taskfactory-worker");
    assert!(worker["spec"]["replicas"].as_u64().unwrap() >= 2, "more than one worker");
    let container = &worker["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container_port(container, "metrics"), port_of(&env_value(container, "TASKFACTORY_METRICS_ADDR")));
}
