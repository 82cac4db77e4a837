//! Connecting to Temporal, waiting for it, and registering search attributes.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url, WorkflowCountOptions, WorkflowFetchHistoryOptions};
use temporalio_common::UntypedWorkflow;

/// Connects a client to `address` (`host:port`) in `namespace`.
pub async fn connect(address: &str, namespace: &str) -> anyhow::Result<Client> {
    let url = Url::parse(&format!("http://{address}")).with_context(|| format!("invalid Temporal address {address:?}"))?;
    let options = ConnectionOptions::new(url).identity(format!("taskfactory@{}", std::process::id())).build();
    let connection = Connection::connect(options)
        .await
        .with_context(|| format!("cannot reach Temporal at {address}: start one with `taskfactory dev`, or set TEMPORAL_ADDRESS"))?;
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
