//! The smallest `lambda_runtime` function: the baseline the functions'
//! cold starts are compared with.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|e: LambdaEvent<Value>| async move {
        Ok::<_, Error>(json!({"hello": e.payload}))
    }))
    .await
}
