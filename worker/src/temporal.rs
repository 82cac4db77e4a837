//! Connecting to Temporal, waiting for it, and registering search attributes.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, Url, WorkflowCountOptions, WorkflowFetchHistoryOptions,
};
use temporalio_common::UntypedWorkflow;

/// Connects a client to `address` (`host:port`) in `namespace`.
pub async fn connect(address: &str, namespace: &str) -> anyhow::Result<Client> {
    let url =
        Url::parse(&format!("http://{address}")).with_context(|| format!("invalid Temporal address {address:?}"))?;
    let options = ConnectionOptions::new(url).identity(format!("taskfactory@{}", std::process::id())).build();
    let connection = Connection::connect(options).await.with_context(|| {
        format!("cannot reach Temporal at {address}: start one with `taskfactory dev`, or set TEMPORAL_ADDRESS")
    })?;
    Ok(Client::new(connection, ClientOptions::new(namespace).build())?)
}

/// Connects, retrying until the namespace answers a visibility query or `limit` passes.
pub async fn wait_ready(address: &str, namespace: &str, limit: Duration) -> anyhow::Result<Client> {
    let deadline = Instant::now() + limit;
    let mut last_error = String::new();
    while Instant::now() < deadline {
        match connect(address, namespace).await {
            Ok(client) => match client.count_workflows("", WorkflowCountOptions::default()).await {
                Ok(_) => return Ok(client),
                Err(e) => last_error = e.to_string(),
            },
            Err(e) => last_error = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("Temporal at {address} was not ready within {limit:?}: {last_error}")
}

/// A workflow's full history as JSON, in the format `WorkflowHistory::from_json` replays.
pub async fn history_json(client: &Client, workflow_id: &str) -> anyhow::Result<Vec<u8>> {
    let handle = client.get_workflow_handle::<UntypedWorkflow>(workflow_id);
    let history = handle.fetch_history(WorkflowFetchHistoryOptions::default());
    history.to_json().await.with_context(|| format!("fetching the history of {workflow_id}"))
}

/// Registers taskfactory's search attributes in `namespace` when missing; returns the names it
/// added. Idempotent: `taskfactory setup` on a real cluster, and the test harness, use it.
pub async fn register_search_attributes(client: &Client, namespace: &str) -> anyhow::Result<Vec<String>> {
    use std::collections::HashMap;

    use temporalio_common::protos::temporal::api::enums::v1::IndexedValueType;
    use temporalio_common::protos::temporal::api::operatorservice::v1::{
        AddSearchAttributesRequest, ListSearchAttributesRequest,
    };

    let mut operator = client.connection().operator_service();
    let existing = operator
        .list_search_attributes(tonic_request(ListSearchAttributesRequest { namespace: namespace.to_owned() }))
        .await
        .context("listing search attributes")?
        .into_inner()
        .custom_attributes;
    let mut missing = HashMap::new();
    for (name, kind) in taskfactory_orchestrator::search::ALL {
        if !existing.contains_key(*name) {
            let kind = match *kind {
                "Int" => IndexedValueType::Int,
                _ => IndexedValueType::Keyword,
            };
            missing.insert((*name).to_owned(), kind as i32);
        }
    }
    let added: Vec<String> = missing.keys().cloned().collect();
    if !missing.is_empty() {
        operator
            .add_search_attributes(tonic_request(AddSearchAttributesRequest {
                search_attributes: missing,
                namespace: namespace.to_owned(),
            }))
            .await
            .context("adding search attributes")?;
    }
    Ok(added)
}

fn tonic_request<T>(message: T) -> temporalio_client::tonic::Request<T> {
    temporalio_client::tonic::Request::new(message)
}
