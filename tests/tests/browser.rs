//! The customer's clicks in a real browser (Debian's Chromium driven by
//! playwright-core): demo Portal page → Install & Configure → zoom-sim consent
//! → Allow → the Portal page shows VERIFIED with the authorization code.

use e2e::Stack;
use serde_json::Value;

#[tokio::test]
async fn customer_clicks_install_allow_and_sees_verified() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/install.cjs");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .arg(&s.gateway)
        .kill_on_drop(true)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser walk failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())?;
    assert_eq!(seen["badge"], "VERIFIED");

    // What the browser showed is what the API stores for the demo account.
    let t = s.token("demo-portal-account").await?;
    let (_, st) = s.status("demo-portal-account", &t).await?;
    assert_eq!(st["status"], "verified");
    assert_eq!(st["zoom_account_id"], zoom.as_str());
    assert_eq!(seen["authorization_code"], st["authorization_code"]);
    Ok(())
}

#[tokio::test]
async fn customer_orders_assigns_ports_and_sees_removal_turn_green() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("demo-portal-account", &zoom).await?;
    s.import_inventory(
        &(1000..1010)
            .map(|i| format!("+1617555{i:04}"))
            .collect::<Vec<_>>(),
    )
    .await?;
    let carrier = s.carrier_token().await?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/journey.cjs");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .arg(&s.gateway)
        .arg(&carrier)
        .kill_on_drop(true)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser journey failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())?;
    assert_eq!(seen["removal_ready"], true);
    // What the page showed matches Zoom: the ordered numbers came and went.
    assert_eq!(seen["ordered"].as_array().map(Vec::len), Some(2));
    assert!(
        s.sim_numbers(&zoom).await?.is_empty(),
        "both numbers ported away"
    );
    let t = s.token("demo-portal-account").await?;
    let (_, rc) = s
        .api(
            reqwest::Method::GET,
            "/v1/accounts/demo-portal-account/zoom/removal-check",
            &t,
            None,
        )
        .await?;
    assert_eq!(rc["ready"], true);
    Ok(())
}
