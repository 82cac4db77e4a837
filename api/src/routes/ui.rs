//! The web UI: a page, its style sheet and its ES modules, compiled into the binary (no Node
//! build to run it, no file read at run time), and the settings it reads at start-up.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use schemars::JsonSchema;
use serde::Serialize;
use taskfactory_activities::auth_store::{Principal, Role};
use taskfactory_schemas::EventType;
use taskfactory_schemas::run::Status;
use temporalio_client::NamespacedClient;

use crate::ApiState;
use crate::error::ApiError;

const INDEX: &str = include_str!("../../ui/index.html");
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// A file served under `/ui/`.
struct Asset {
    /// Its path below `/ui/` (and below `api/ui/` in the source tree).
    path: &'static str,
    /// Its text, compiled in.
    body: &'static str,
    /// Its `Content-Type`: ES modules must be JavaScript or the browser refuses them.
    content_type: &'static str,
}

/// `asset!("views/run.js", JS)`: the file `api/ui/views/run.js`, served as `/ui/views/run.js`.
macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset { path: $path, body: include_str!(concat!("../../ui/", $path)), content_type: $content_type }
    };
}

/// Every file under `/ui/`. A test fails when a file of `api/ui/` (other than the page) is
/// missing here, or when a module imports one that is.
static ASSETS: &[Asset] = &[
    asset!("style.css", CSS),
    asset!("lists.css", CSS),
    asset!("app.js", JS),
    asset!("lib/api.js", JS),
    asset!("lib/dom.js", JS),
    asset!("lib/router.js", JS),
    asset!("lib/chart.js", JS),
    asset!("lib/run-model.js", JS),
    asset!("views/definitions.js", JS),
    asset!("views/definition.js", JS),
    asset!("views/runs.js", JS),
    asset!("views/run.js", JS),
    asset!("views/run-graph.js", JS),
    asset!("views/run-timeline.js", JS),
    asset!("views/inbox.js", JS),
];

fn find_asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The web UI's page
#[utoipa::path(get, path = "/", operation_id = "ui_index", tag = "ui", responses((status = 200, description = "HTML", body = String, content_type = "text/html; charset=utf-8")))]
pub async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX)
}

/// A file of the web UI
///
/// Its ES modules (`app.js`, `lib/*.js`, `views/*.js`) and its style sheet (`style.css`).
#[utoipa::path(get, path = "/ui/{path}", operation_id = "ui_asset", tag = "ui",
    params(("path" = String, Path, description = "The file, e.g. `app.js`, `views/run.js` or `style.css`")),
    responses(
        (status = 200, description = "The file", content((String = "text/javascript; charset=utf-8"), (String = "text/css; charset=utf-8"))),
        (status = 404, description = "The UI has no such file"),
    ))]
pub async fn asset(Path(path): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let asset = find_asset(&path).ok_or_else(|| ApiError::NotFound(format!("/ui/{path}")))?;
    Ok(([(header::CONTENT_TYPE, asset.content_type)], asset.body))
}

/// What the UI links to, and the names of the run log it shows.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UiConfig {
    /// The Temporal Web UI, when the API was told (`--temporal-ui-url`).
    pub temporal_ui_url: Option<String>,
    /// The Temporal namespace runs live in.
    pub namespace: String,
    /// Every trace event type: the run page follows each on the run's stream.
    pub event_types: Vec<EventType>,
    /// Every status a run or a task is stored with, in the order the run page counts them.
    pub statuses: Vec<Status>,
}

impl UiConfig {
    fn new(temporal_ui_url: Option<String>, namespace: String) -> Self {
        Self { temporal_ui_url, namespace, event_types: EventType::all().to_vec(), statuses: Status::all().to_vec() }
    }
}

/// The web UI's settings
#[utoipa::path(get, path = "/api/v1/ui-config", operation_id = "ui_config", tag = "ui",
    responses((status = 200, description = "What the UI links to, its event types and statuses", body = ref("#/components/schemas/UiConfig"))))]
pub async fn config(State(state): State<ApiState>) -> Json<UiConfig> {
    Json(UiConfig::new(state.temporal_ui_url, state.temporal.namespace()))
}

/// Who is calling: the UI shows the actions the key's role may take.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WhoAmI {
    /// The key's name; `null` when the API runs without keys.
    pub name: Option<String>,
    /// `viewer`, `operator` or `admin` (`admin` when the API runs without keys).
    pub role: String,
}

/// The caller's key
///
/// Its name and role.
#[utoipa::path(get, path = "/api/v1/whoami", operation_id = "whoami", tag = "ui",
    responses((status = 200, description = "The key's name and role", body = ref("#/components/schemas/WhoAmI"))))]
pub async fn whoami(principal: Option<Extension<Principal>>) -> Json<WhoAmI> {
    Json(match principal {
        Some(Extension(p)) => WhoAmI { name: Some(p.name), role: p.role.as_str().to_owned() },
        None => WhoAmI { name: None, role: Role::Admin.as_str().to_owned() },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use serde_json::json;

    use super::*;

    fn ui_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("ui")
    }

    /// Every file under `dir`, as paths relative to `root` with `/` separators.
    fn files(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_file_of_the_ui_is_served_with_its_type() {
        let mut on_disk = BTreeSet::new();
        files(&ui_dir(), &ui_dir(), &mut on_disk);
        on_disk.remove("index.html");
        let served: BTreeSet<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        assert_eq!(on_disk, served, "list every file of api/ui/ in ASSETS (api/src/routes/ui.rs)");
        for asset in ASSETS {
            let expected = if asset.path.ends_with(".js") { JS } else { CSS };
            assert_eq!(asset.content_type, expected, "{}", asset.path);
        }
    }

    /// The targets of `import ... from "x"` and `import "x"` in a module.
    fn imports(source: &str) -> Vec<&str> {
        source
            .lines()
            .map(str::trim_start)
            .filter(|line| line.starts_with("import ") || line.starts_with("} from "))
            .filter_map(|line| {
                line.rsplit_once(" from ").map(|(_, rest)| rest).or_else(|| line.strip_prefix("import "))
            })
            .filter_map(|rest| rest.trim().trim_end_matches(';').strip_prefix('"')?.strip_suffix('"'))
            .collect()
    }

    /// `target` as imported from the module at `from` (both below `/ui/`).
    fn resolve(from: &str, target: &str) -> String {
        let mut parts: Vec<&str> = from.split('/').collect();
        parts.pop();
        for part in target.split('/') {
            match part {
                "." => {}
                ".." => {
                    parts.pop();
                }
                _ => parts.push(part),
            }
        }
        parts.join("/")
    }

    #[test]
    fn every_module_import_is_served() {
        let mut seen = 0;
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            for target in imports(asset.body) {
                assert!(
                    target.starts_with("./") || target.starts_with("../"),
                    "{}: import {target:?} is not relative",
                    asset.path
                );
                let resolved = resolve(asset.path, target);
                assert!(
                    find_asset(&resolved).is_some(),
                    "{} imports {target:?}, which /ui/ does not serve",
                    asset.path
                );
                seen += 1;
            }
        }
        assert!(seen > 10, "the imports were not parsed ({seen} found)");
        assert!(INDEX.contains(r#"<script type="module" src="/ui/app.js">"#), "the page loads the entry module");
    }

    #[tokio::test]
    async fn assets_are_answered_with_their_type_and_unknown_paths_with_404() {
        let response = asset(axum::extract::Path("views/run.js".to_owned())).await.into_response();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], JS);
        let response = asset(axum::extract::Path("style.css".to_owned())).await.into_response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], CSS);
        for unknown in ["nope.js", "index.html", "../src/lib.rs", "views/"] {
            let response = asset(axum::extract::Path(unknown.to_owned())).await.into_response();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{unknown}");
        }
        // A page's modules load without a key, like the page itself.
        assert_eq!(crate::auth::required_role(&axum::http::Method::GET, "/ui/views/run.js"), None);
    }

    #[test]
    fn the_config_names_event_types_and_statuses_as_the_run_log_does() {
        let config = serde_json::to_value(UiConfig::new(None, "default".into())).unwrap();
        let names = |key: &str| {
            config[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(names("event_types"), EventType::all().iter().map(|t| t.as_str()).collect::<Vec<_>>());
        assert_eq!(names("statuses"), Status::all().iter().map(|s| s.as_str()).collect::<Vec<_>>());
        assert!(names("event_types").contains(&"NODE_WAITING".to_owned()));
        assert_eq!(config["namespace"], json!("default"));
    }
}
