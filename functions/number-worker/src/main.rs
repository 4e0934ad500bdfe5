use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let ctx = shared::AppContext::from_env().await?;
    let ctx = &ctx;
    run(service_fn(move |e: LambdaEvent<serde_json::Value>| {
        number_worker::handle(ctx, e.payload)
    }))
    .await
}
