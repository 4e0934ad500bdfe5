//! EventBridge schedule (every 10 minutes): refresh grants that are due —
//! an access token about to expire after use, or a grant idle for 7 days.

use serde_json::Value;
use shared::AppContext;

/// Accounts refreshed at once.
pub const CONCURRENCY: usize = 8;

pub async fn handle(ctx: &AppContext, _event: Value) -> Result<Value, lambda_runtime::Error> {
    let report = shared::tokens::refresh_due(ctx, CONCURRENCY).await?;
    Ok(serde_json::to_value(report)?)
}
