//! EventBridge schedule (hourly): stale operations sent to the worker again,
//! drift repair (our number records against
//! Zoom's), port-day unassignments (numbers whose port-out day has come and
//! that asked for it), and the purge of deauthorized accounts' Zoom data once
//! their retention is over. Each part is bounded and per-account isolated.

use serde_json::{Value, json};
use shared::AppContext;

pub async fn handle(ctx: &AppContext, _event: Value) -> Result<Value, lambda_runtime::Error> {
    let stale = shared::numbers::requeue_stale_operations(ctx).await?;
    let drift = shared::numbers::repair_drift(ctx).await?;
    let port_day = shared::numbers::port_day_unassign(ctx).await?;
    let purge = shared::retention::purge_due(ctx).await?;
    Ok(json!({"stale_operations": stale, "drift": drift, "port_day": port_day, "purge": purge}))
}
