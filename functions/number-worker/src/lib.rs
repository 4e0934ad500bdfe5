//! SQS → number operations (orders, uploads, releases), pushed to Zoom in
//! batches of at most 200. Reports per-message failures
//! (`ReportBatchItemFailures`), so only failed messages are redelivered and,
//! after repeated failure, land in the DLQ.

use serde_json::{Value, json};
use shared::AppContext;
use shared::numbers::{self, WorkMessage};

pub async fn handle(ctx: &AppContext, event: Value) -> Result<Value, lambda_runtime::Error> {
    let mut failures = Vec::new();
    for record in event
        .get("Records")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = record
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let body = record
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Ok(msg) = serde_json::from_str::<WorkMessage>(body) else {
            tracing::error!(message_id = %id, "unreadable work message");
            failures.push(json!({"itemIdentifier": id}));
            continue;
        };
        match numbers::process_operation(ctx, &msg.account, &msg.operation_id).await {
            Ok(report) => {
                tracing::info!(portal_account = %msg.account, operation = %msg.operation_id, ?report, "operation processed")
            }
            Err(e) => {
                tracing::warn!(portal_account = %msg.account, operation = %msg.operation_id, error = %e, "operation will be retried");
                failures.push(json!({"itemIdentifier": id}));
            }
        }
    }
    Ok(json!({"batchItemFailures": failures}))
}
