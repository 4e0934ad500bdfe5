//! Cold starts, measured: serves the Lambda Runtime API on loopback, starts a
//! release bootstrap with `AWS_LAMBDA_RUNTIME_API` pointing at it, and times
//! (a) exec → first `/runtime/invocation/next` (init) and (b) exec → the first
//! response to a realistic event against the local servers, and reads the
//! peak RSS. The same for a hello-world `lambda_runtime` binary. Medians of
//! `STARTS` starts. Usage: bench-coldstart <release dir> (./bench runs it).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use e2e::Stack;
use serde_json::{Value, json};

const STARTS: usize = 21;

#[derive(Default)]
struct Run {
    event: String,
    first_next: Option<Instant>,
    responded: Option<(Instant, String)>,
    served: bool,
}

type Shared = Arc<Mutex<Run>>;

async fn next(State(s): State<Shared>) -> impl IntoResponse {
    let body = {
        let mut r = s.lock().unwrap();
        r.first_next.get_or_insert_with(Instant::now);
        if r.served {
            None
        } else {
            r.served = true;
            Some(r.event.clone())
        }
    };
    match body {
        Some(b) => {
            let mut h = HeaderMap::new();
            h.insert("lambda-runtime-aws-request-id", "req-1".parse().unwrap());
            let deadline = (time::OffsetDateTime::now_utc().unix_timestamp() + 30) * 1000;
            h.insert(
                "lambda-runtime-deadline-ms",
                deadline.to_string().parse().unwrap(),
            );
            h.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:bench"
                    .parse()
                    .unwrap(),
            );
            h.insert(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".parse().unwrap(),
            );
            (h, b).into_response()
        }
        None => {
            // The next invocation never comes: the process is stopped.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "".into_response()
        }
    }
}

async fn respond(
    State(s): State<Shared>,
    Path(_id): Path<String>,
    body: String,
) -> impl IntoResponse {
    s.lock().unwrap().responded = Some((Instant::now(), body));
    axum::http::StatusCode::ACCEPTED
}

async fn error(
    State(s): State<Shared>,
    Path(_id): Path<String>,
    body: String,
) -> impl IntoResponse {
    s.lock().unwrap().responded = Some((Instant::now(), format!("ERROR {body}")));
    axum::http::StatusCode::ACCEPTED
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Starts `bin` `STARTS` times; returns (init ms, first response ms, peak RSS MiB) medians.
async fn measure(
    bin: &str,
    env: &[(String, String)],
    event: &Value,
    expect: &str,
) -> anyhow::Result<(f64, f64, f64)> {
    let (mut inits, mut totals, mut rss) = (vec![], vec![], vec![]);
    for _ in 0..STARTS {
        let state: Shared = Arc::new(Mutex::new(Run {
            event: event.to_string(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let t0 = Instant::now();
        let mut child = tokio::process::Command::new(bin)
            .envs(env.iter().cloned())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(30);
        let (init, total, body) = loop {
            {
                let r = state.lock().unwrap();
                if let (Some(n), Some((d, b))) = (r.first_next, r.responded.clone()) {
                    break (n - t0, d - t0, b);
                }
            }
            anyhow::ensure!(Instant::now() < deadline, "{bin} did not answer");
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        anyhow::ensure!(body.contains(expect), "{bin} answered {body}");
        rss.push(peak_rss_kib(pid) as f64 / 1024.0);
        let _ = child.kill().await;
        server.abort();
        inits.push(init.as_secs_f64() * 1000.0);
        totals.push(total.as_secs_f64() * 1000.0);
    }
    Ok((median(inits), median(totals), median(rss)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/release".into());
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("bench", &zoom).await?;
    let mut env: Vec<(String, String)> = s.config_env();
    for k in [
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_ENDPOINT_URL_SQS",
    ] {
        if let Ok(v) = std::env::var(k) {
            env.push((k.into(), v));
        }
    }
    let status_event = json!({
        "version": "2.0", "routeKey": "GET /v1/accounts/{account_id}/zoom", "rawPath": "/v1/accounts/bench/zoom", "rawQueryString": "",
        "headers": {"host": "api.example.com"}, "pathParameters": {"account_id": "bench"},
        "requestContext": {"accountId": "000000000000", "apiId": "x", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": "GET", "path": "/v1/accounts/bench/zoom", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "r", "routeKey": "GET /v1/accounts/{account_id}/zoom", "stage": "$default", "time": "now", "timeEpoch": 0,
            "authorizer": {"jwt": {"claims": {"portal_account_id": "bench", "sub": "u1"}, "scopes": ["zoom.integration"]}}},
        "isBase64Encoded": false
    });
    let (hi, ht, hr) = measure(
        &format!("{dir}/hello-lambda"),
        &[],
        &json!({"x": 1}),
        "hello",
    )
    .await?;
    println!(
        "hello-world: init {hi:.1} ms, first response {ht:.1} ms, peak RSS {hr:.1} MiB (medians of {STARTS})"
    );
    let (si, st, sr) = measure(&format!("{dir}/status"), &env, &status_event, "verified").await?;
    println!(
        "status:      init {si:.1} ms, first response {st:.1} ms (GetItem on DynamoDB Local), peak RSS {sr:.1} MiB"
    );
    println!(
        "ratio to hello-world: init {:.2}x, first response {:.2}x",
        si / hi,
        st / ht
    );
    for bin in [
        "install",
        "oauth-callback",
        "status",
        "zoom-webhook",
        "token-refresh",
        "reconcile",
        "numbers",
        "number-worker",
        "removal-check",
    ] {
        let path = format!("{dir}/{bin}");
        let raw = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let zipped = std::process::Command::new("python3")
            .args(["-c", "import sys,zipfile,io; b=io.BytesIO(); z=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED,compresslevel=9); z.write(sys.argv[1],'bootstrap'); z.close(); print(len(b.getvalue()))", &path])
            .output()?;
        let zipped: u64 = String::from_utf8_lossy(&zipped.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        println!(
            "size {bin:<15} {:>6.2} MB raw, {:>5.2} MB zipped (x86_64)",
            raw as f64 / 1e6,
            zipped as f64 / 1e6
        );
    }
    Ok(())
}
