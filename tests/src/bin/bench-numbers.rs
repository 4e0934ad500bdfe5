//! Benchmark: a 10 000-number upload through the local stack with zoom-sim
//! enforcing Business+ rate limits, and the removal check over those numbers.
//! Run with `./bench` (it starts the local servers this needs).

use std::time::{Duration, Instant};

use e2e::Stack;
use reqwest::Method;
use serde_json::{Value, json};

const N: usize = 10_000;

fn calls(c: &Value) -> u64 {
    c["api_calls"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !k.contains("users/me"))
                .map(|(_, v)| v.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("bench", &zoom).await?;
    let t = s.token("bench").await?;
    let rows: Vec<Value> = (0..N)
        .map(|i| json!({"number": format!("+1415{:07}", 5_000_000 + i)}))
        .collect();

    let c0 = s.sim_get("/_sim/counters").await?;
    let started = Instant::now();
    let (st, acc) = s
        .api(
            Method::POST,
            "/v1/accounts/bench/zoom/numbers/uploads",
            &t,
            Some(json!({"numbers": rows})),
        )
        .await?;
    anyhow::ensure!(st == 202, "upload: {st} {acc}");
    let accepted_in = started.elapsed();
    let op = s
        .wait_operation(
            "bench",
            &t,
            acc["operation_id"].as_str().unwrap_or_default(),
            Duration::from_secs(1800),
        )
        .await?;
    let wall = started.elapsed();
    anyhow::ensure!(
        op["state"] == "succeeded" && op["succeeded"] == N as u64,
        "operation: {op}"
    );
    let c1 = s.sim_get("/_sim/counters").await?;
    let upload_calls = calls(&c1) - calls(&c0);
    let limited =
        c1["rate_limited"].as_u64().unwrap_or(0) - c0["rate_limited"].as_u64().unwrap_or(0);
    // Zoom's own limit: ceil(N / 200) Light calls at 40/s (Business+).
    let batches = N.div_ceil(200) as f64;
    let forced = batches / 40.0;
    println!(
        "upload: {N} numbers, 202 after {:.2}s, done after {:.1}s",
        accepted_in.as_secs_f64(),
        wall.as_secs_f64()
    );
    println!("upload: Zoom calls {upload_calls} (minimum {batches}), 429s from zoom-sim {limited}");
    println!(
        "upload: time Zoom's Business+ limit alone forces {forced:.2}s; ratio wall/forced {:.1}",
        wall.as_secs_f64() / forced
    );
    println!(
        "upload: throughput {:.0} numbers/s",
        N as f64 / wall.as_secs_f64()
    );

    // Removal check over the 10 000 (a few assigned, so the assigned list is read too).
    let (_, opts) = s
        .api(
            Method::GET,
            "/v1/accounts/bench/zoom/provisioning-options",
            &t,
            None,
        )
        .await?;
    let user = opts["users"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for i in 0..3 {
        let n = format!("%2B1415{:07}", 5_000_000 + i);
        s.api(
            Method::PUT,
            &format!("/v1/accounts/bench/zoom/numbers/{n}/assignment"),
            &t,
            Some(json!({"type": "user", "id": user})),
        )
        .await?;
    }
    let c2 = s.sim_get("/_sim/counters").await?;
    let started = Instant::now();
    let (st, rc) = s
        .api(
            Method::GET,
            "/v1/accounts/bench/zoom/removal-check",
            &t,
            None,
        )
        .await?;
    let took = started.elapsed();
    anyhow::ensure!(
        st == 200 && rc["summary"]["numbers_in_zoom"] == N as u64,
        "removal check: {st} {}",
        rc["summary"]
    );
    let c3 = s.sim_get("/_sim/counters").await?;
    let min_pages = N.div_ceil(300) + 1;
    println!(
        "removal-check: {N} numbers, {} blockers, {:.2}s, Zoom calls {} (minimum {min_pages}: {} peering pages + 1 assigned page)",
        rc["blockers"].as_array().map(Vec::len).unwrap_or(0),
        took.as_secs_f64(),
        calls(&c3) - calls(&c2),
        N.div_ceil(300)
    );
    Ok(())
}
