//! The OpenAPI document against the running routes: schemathesis (from PyPI,
//! installed by ./test) generates requests from docs/openapi.yaml and sends
//! them through the local gateway with a valid Portal token; no server error,
//! and every status code, content type and body conforms to the document.

use e2e::Stack;

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let st = std::env::var("SCHEMATHESIS")
        .unwrap_or_else(|_| format!("{root}/.tools/venv/bin/schemathesis"));
    anyhow::ensure!(
        std::path::Path::new(&st).exists(),
        "{st} is missing: ./test installs it"
    );
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("demo-portal-account", &zoom).await?;
    let token = s.token("demo-portal-account").await?;
    let out = tokio::process::Command::new(&st)
        .args(["--config-file", &format!("{root}/tests/schemathesis/schemathesis.toml"), "run"])
        .arg(format!("{root}/docs/openapi.yaml"))
        .args(["--url", &s.gateway, "-H", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", "30", "--seed", "20261204"])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("passed"), "{text}");
    let generated = text
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or_default()
        .to_owned();
    println!("schemathesis: {generated}");
    Ok(())
}
