//! EventBridge schedule (hourly): purge the Zoom data of deauthorized
//! accounts whose retention is over. (Number drift repair and port-day
//! unassignment join this job with the numbers work.)

use serde_json::{Value, json};
use shared::AppContext;

pub async fn handle(ctx: &AppContext, _event: Value) -> Result<Value, lambda_runtime::Error> {
    let purge = shared::retention::purge_due(ctx).await?;
    Ok(json!({"purge": purge}))
}
