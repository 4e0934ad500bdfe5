//! EventBridge schedule (hourly): port-day unassignments (numbers whose
//! port-out day has come and that asked for it), and the purge of
//! deauthorized accounts' Zoom data once their retention is over.

use serde_json::{Value, json};
use shared::AppContext;

pub async fn handle(ctx: &AppContext, _event: Value) -> Result<Value, lambda_runtime::Error> {
    let port_day = shared::numbers::port_day_unassign(ctx).await?;
    let purge = shared::retention::purge_due(ctx).await?;
    Ok(json!({"port_day": port_day, "purge": purge}))
}
