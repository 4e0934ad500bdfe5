use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let ctx = shared::AppContext::from_env().await?;
    let ctx = &ctx;
    run(service_fn(move |req| removal_check::handle(ctx, req))).await
}
