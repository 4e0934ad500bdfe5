//! Prints how long the pieces of a function's init take (µs), for BENCHMARKS.md.
#[tokio::main]
async fn main() {
    let t = std::time::Instant::now();
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let a = t.elapsed();
    let _d = aws_sdk_dynamodb::Client::new(&aws);
    let b = t.elapsed();
    let _s = aws_sdk_secretsmanager::Client::new(&aws);
    let _q = aws_sdk_sqs::Client::new(&aws);
    let c = t.elapsed();
    println!(
        "load_defaults {} µs, +dynamodb client {} µs, +secrets manager and sqs clients {} µs",
        a.as_micros(),
        (b - a).as_micros(),
        (c - b).as_micros()
    );
}
