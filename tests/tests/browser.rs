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
