//! The security bar of the install: Portal JWTs checked as API Gateway does,
//! tenant isolation, bad input, tokens encrypted at rest, no secrets in logs.

use e2e::{Stack, StackOptions};
use serde_json::{Value, json};

async fn items_snapshot(s: &Stack) -> anyhow::Result<usize> {
    Ok(s.all_items().await?.len())
}

#[tokio::test]
async fn portal_jwt_is_checked_like_api_gateway() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let url = format!("{}/v1/accounts/acct-1/zoom", s.gateway);
    // Missing.
    let r = s.http.get(&url).send().await?;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await?, json!({"message": "Unauthorized"}));
    // Garbage and wrong scheme content.
    for h in ["Bearer", "Bearer abc.def.ghi", "Basic dXNlcjpwYXNz"] {
        assert_eq!(
            s.http
                .get(&url)
                .header("authorization", h)
                .send()
                .await?
                .status(),
            401,
            "{h}"
        );
    }
    // Expired, wrong audience: signed by the right key, still refused.
    for q in [
        &[("account_id", "acct-1"), ("expires_in", "-5")][..],
        &[("account_id", "acct-1"), ("aud", "someone-else")][..],
    ] {
        let t = s.token_with(q).await?;
        assert_eq!(
            s.http.get(&url).bearer_auth(&t).send().await?.status(),
            401,
            "{q:?}"
        );
    }
    // Missing the route's scope: 403 as API Gateway answers.
    let t = s
        .token_with(&[("account_id", "acct-1"), ("scope", "profile email")])
        .await?;
    assert_eq!(s.http.get(&url).bearer_auth(&t).send().await?.status(), 403);
    // Signed by a key the gateway does not trust.
    let other = local_gateway::jwt::JwtKeys::generate()?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let forged = other.mint(
        json!({"iss": format!("{}/__dev", s.gateway), "aud": "zoom-connector", "sub": "u",
        "exp": now + 300, "scope": "zoom.integration", "portal_account_id": "acct-1"})
        .as_object()
        .unwrap(),
    )?;
    assert_eq!(
        s.http.get(&url).bearer_auth(&forged).send().await?.status(),
        401
    );
    // And a good one passes.
    let t = s.token("acct-1").await?;
    assert_eq!(s.http.get(&url).bearer_auth(&t).send().await?.status(), 200);
    // The install route is protected the same way, and a refused call writes nothing.
    let r = s
        .http
        .post(format!("{}/v1/accounts/acct-1/zoom/install", s.gateway))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    assert_eq!(items_snapshot(&s).await?, 0);
    Ok(())
}

#[tokio::test]
async fn another_tenant_is_refused_and_learns_nothing() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("acct-b", &zoom).await?;
    let ta = s.token("acct-a").await?;
    let before = items_snapshot(&s).await?;

    let (code_existing, body_existing) = s.status("acct-b", &ta).await?;
    let (code_missing, body_missing) = s.status("acct-nobody", &ta).await?;
    assert_eq!((code_existing, code_missing), (403, 403));
    assert_eq!(
        body_existing, body_missing,
        "same answer whether the account exists or not"
    );
    assert!(!body_existing.to_string().contains(&zoom));

    let r = s.install_raw("acct-b", &ta, None).await?;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(
        items_snapshot(&s).await?,
        before,
        "a refused install writes nothing"
    );
    Ok(())
}

#[tokio::test]
async fn bad_input_is_problem_json_naming_the_field_and_writes_nothing() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let t = s.token("acct-1").await?;
    let url = format!("{}/v1/accounts/acct-1/zoom/install", s.gateway);
    let cases: Vec<(&str, &str, u16, &str)> = vec![
        ("application/json", "{", 400, "body"),
        ("application/json", r#"{"return_to": 5}"#, 400, "body"),
        ("application/json", r#"{"returnTo":"x"}"#, 400, "returnTo"),
        (
            "application/json",
            r#"{"return_to":"https://evil.example.com/"}"#,
            400,
            "return_to",
        ),
        ("text/plain", r#"{"return_to":null}"#, 415, "content-type"),
    ];
    for (ct, body, status, field) in cases {
        let r = s
            .http
            .post(&url)
            .bearer_auth(&t)
            .header("content-type", ct)
            .body(body.to_owned())
            .send()
            .await?;
        assert_eq!(r.status(), status, "{body}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{body}"
        );
        let p: Value = r.json().await?;
        assert_eq!(p["field"], field, "{body}: {p}");
        assert_eq!(p["status"], status);
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let big = format!(r#"{{"return_to":"{}"}}"#, "a".repeat(20_000));
    let r = s
        .http
        .post(&url)
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await?;
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await?["field"], "body");

    // Malformed account ids in the path: named as such, before any tenant check.
    for bad in ["acct%231", "a%20b", &"x".repeat(65)] {
        let r = s
            .http
            .get(format!("{}/v1/accounts/{bad}/zoom", s.gateway))
            .bearer_auth(&t)
            .send()
            .await?;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json::<Value>().await?["field"], "account_id", "{bad}");
    }
    // A token whose own account claim is malformed is not a valid Portal caller.
    let tb = s.token("acct#1").await?;
    let r = s
        .http
        .get(format!("{}/v1/accounts/acct%231/zoom", s.gateway))
        .bearer_auth(&tb)
        .send()
        .await?;
    assert_eq!(r.status(), 401);

    assert_eq!(
        items_snapshot(&s).await?,
        0,
        "no bad request wrote anything"
    );
    // A good return_to on the allow-list is accepted and honoured.
    let r = s
        .install_raw(
            "acct-1",
            &t,
            Some(json!({"return_to": format!("{}/settings/integration?tab=zoom", s.gateway)})),
        )
        .await?;
    assert_eq!(r.status(), 200);
    Ok(())
}

#[tokio::test]
async fn tokens_are_encrypted_at_rest() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("acct-1", &zoom).await?;
    let grants = s
        .sim_get(&format!("/_sim/grants?account_id={zoom}"))
        .await?;
    let g = &grants.as_array().unwrap()[0];
    let (access, refresh) = (
        g["access_token"].as_str().unwrap(),
        g["refresh_token"].as_str().unwrap(),
    );
    assert!(access.len() > 20 && refresh.len() > 20);

    let items = s.all_items().await?;
    let raw = format!("{items:?}");
    assert!(!raw.contains(access), "access token in clear in the table");
    assert!(
        !raw.contains(refresh),
        "refresh token in clear in the table"
    );
    let conn = items
        .iter()
        .find(|i| i.get("SK").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("CONNECTION"))
        .expect("connection item");
    let sealed = conn["tokens"].as_s().unwrap();
    assert!(
        sealed.starts_with("v1.local-1."),
        "sealed with the active key id: {sealed}"
    );
    // Raw item shape: no pending marker left, status verified, zoom id recorded.
    assert_eq!(conn["status"].as_s().unwrap(), "verified");
    assert!(!conn.contains_key("pending_state"));
    // The audit trail records the verification.
    assert!(items.iter().any(|i| {
        i.get("action")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some("zoom_install_verified")
    }));
    Ok(())
}

#[tokio::test]
async fn no_secret_reaches_any_log() -> anyhow::Result<()> {
    let canary_secret = format!("CANARY-CLIENT-SECRET-{}", ulid::Ulid::new());
    let mut s = Stack::start_with(StackOptions {
        client_secret: canary_secret.clone(),
        rust_log: "debug".into(),
        ..Default::default()
    })
    .await?;
    let zoom = s.zoom_account().await?;
    let (code, _) = s.verify("acct-1", &zoom).await?;
    // A failing exchange too (replayed code), which exercises the error paths.
    let t = s.token("acct-1").await?;
    let authz = s.install("acct-1", &t).await?;
    let state = authz
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let replay = url::Url::parse(&format!(
        "{}/zoom/oauth/callback?code={code}&state={state}",
        s.gateway
    ))?;
    s.callback(&replay).await?;
    let grants = s
        .sim_get(&format!("/_sim/grants?account_id={zoom}"))
        .await?;
    let mut canaries = vec![
        canary_secret.clone(),
        code.clone(),
        state.clone(),
        t.clone(),
    ];
    for g in grants.as_array().unwrap() {
        canaries.push(g["access_token"].as_str().unwrap().to_owned());
        canaries.push(g["refresh_token"].as_str().unwrap().to_owned());
    }
    let logs = s.stop().await;
    let total: usize = logs.values().map(String::len).sum();
    assert!(
        total > 1000,
        "the processes did log ({total} bytes): the check is not vacuous"
    );
    assert!(logs["local-gateway"].contains("zoom account verified"));
    for (proc_name, out) in &logs {
        for c in &canaries {
            assert!(
                !out.contains(c.as_str()),
                "{proc_name} logged a secret ({}…)",
                &c[..6]
            );
        }
    }
    Ok(())
}
