//! The verified install over HTTP: local gateway → the functions' handlers →
//! DynamoDB Local / moto → zoom-sim, each a real server on loopback.

use e2e::Stack;
use serde_json::Value;

fn query(u: &str) -> Vec<(String, String)> {
    url::Url::parse(u)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn full_install_not_connected_pending_verified() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    let t = s.token("acct-1").await?;

    let (code, st) = s.status("acct-1", &t).await?;
    assert_eq!((code, st["status"].as_str()), (200, Some("not_connected")));
    assert_eq!(st["verified"], false);

    let authz = s.install("acct-1", &t).await?;
    let q: std::collections::HashMap<_, _> = authz.query_pairs().into_owned().collect();
    assert_eq!(authz.path(), "/oauth/authorize");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], s.client_id);
    assert_eq!(q["redirect_uri"], s.redirect_uri);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["code_challenge"].len(),
        43,
        "S256 challenge is 32 bytes base64url"
    );
    assert!(
        q["state"].len() >= 22,
        "state carries at least 128 random bits"
    );
    let (_, st) = s.status("acct-1", &t).await?;
    assert_eq!(st["status"], "pending");

    let cb = s.consent(&authz, &zoom, true).await?;
    let issued_code = query(cb.as_str())
        .into_iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v)
        .unwrap_or_default();
    assert!(!issued_code.is_empty());
    let r = s.callback(&cb).await?;
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str()?.to_owned();
    assert_eq!(
        loc,
        format!("{}/settings/integration?zoom=verified", s.gateway)
    );
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");

    let (code, st) = s.status("acct-1", &t).await?;
    assert_eq!(code, 200);
    assert_eq!(st["status"], "verified");
    assert_eq!(st["verified"], true);
    assert_eq!(st["authorization_code"], issued_code.as_str());
    assert_eq!(st["zoom_account_id"], zoom.as_str());
    assert_eq!(
        st["capabilities"],
        serde_json::json!({"order_numbers": true, "upload_numbers": true, "provisioning": true})
    );
    let scopes: Vec<&str> = st["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(scopes, e2e::SCOPES);
    let text = st.to_string();
    assert!(
        !text.contains("token"),
        "no token field in the status: {text}"
    );
    assert_eq!(s.token_calls("authorization_code").await?, 1);
    Ok(())
}

#[tokio::test]
async fn marketplace_initiated_callback_does_not_exchange() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let r = s
        .http
        .get(format!(
            "{}/zoom/oauth/callback?code=obBEe8ewaL_KdyNjniT4KPd8ffDWt9fGB",
            s.gateway
        ))
        .send()
        .await?;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        format!("{}/settings/integration?zoom=finish_in_portal", s.gateway).as_str()
    );
    assert_eq!(s.token_calls("authorization_code").await?, 0);
    assert!(s.all_items().await?.is_empty(), "nothing stored");
    Ok(())
}

#[tokio::test]
async fn denial_redirects_with_reason_and_stores_no_grant() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    let t = s.token("acct-1").await?;
    let authz = s.install("acct-1", &t).await?;
    let cb = s.consent(&authz, &zoom, false).await?;
    assert!(query(cb.as_str()).contains(&("error".into(), "access_denied".into())));
    let r = s.callback(&cb).await?;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        format!(
            "{}/settings/integration?zoom=error&reason=access_denied",
            s.gateway
        )
        .as_str()
    );
    let (_, st) = s.status("acct-1", &t).await?;
    assert_eq!(
        st["status"], "not_connected",
        "pending cleared, nothing verified: {st}"
    );
    assert_eq!(s.token_calls("authorization_code").await?, 0);
    Ok(())
}

#[tokio::test]
async fn replayed_and_unknown_states_get_a_400_page_and_change_nothing() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    let t = s.token("acct-1").await?;
    let authz = s.install("acct-1", &t).await?;
    let cb = s.consent(&authz, &zoom, true).await?;
    assert_eq!(s.callback(&cb).await?.status(), 302);
    let (_, before) = s.status("acct-1", &t).await?;

    let replay = s.callback(&cb).await?;
    assert_eq!(replay.status(), 400);
    assert!(
        replay.headers()["content-type"]
            .to_str()?
            .starts_with("text/html")
    );
    assert!(replay.text().await?.contains("not valid"));
    for bogus in [
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "x",
        "<script>",
    ] {
        let mut u = cb.clone();
        u.set_query(Some(&format!("code=abc&state={}", urlencode(bogus))));
        assert_eq!(s.callback(&u).await?.status(), 400, "{bogus}");
    }
    let (_, after) = s.status("acct-1", &t).await?;
    assert_eq!(before, after);
    assert_eq!(
        s.token_calls("authorization_code").await?,
        1,
        "no exchange for a bad state"
    );
    Ok(())
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn another_accounts_state_cannot_carry_this_code() -> anyhow::Result<()> {
    // Account B's consent yields a code bound to B's PKCE challenge; presenting it
    // with account A's state fails the exchange, and neither account is connected.
    let s = Stack::start().await?;
    let zoom_b = s.zoom_account().await?;
    let (ta, tb) = (s.token("acct-a").await?, s.token("acct-b").await?);
    let authz_a = s.install("acct-a", &ta).await?;
    let authz_b = s.install("acct-b", &tb).await?;
    let cb_b = s.consent(&authz_b, &zoom_b, true).await?;
    let state_a = authz_a
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let code_b = cb_b
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let mut forged = cb_b.clone();
    forged.set_query(Some(&format!(
        "code={}&state={}",
        urlencode(&code_b),
        urlencode(&state_a)
    )));
    let r = s.callback(&forged).await?;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        format!(
            "{}/settings/integration?zoom=error&reason=invalid_grant",
            s.gateway
        )
        .as_str()
    );
    assert_eq!(s.status("acct-a", &ta).await?.1["verified"], false);
    assert_eq!(s.status("acct-b", &tb).await?.1["verified"], false);
    // A's state is spent now, too.
    assert_eq!(s.callback(&forged).await?.status(), 400);
    Ok(())
}

#[tokio::test]
async fn replayed_code_fails_and_keeps_the_existing_grant() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    let (first_code, _) = s.verify("acct-1", &zoom).await?;
    let t = s.token("acct-1").await?;
    let (_, before) = s.status("acct-1", &t).await?;

    // Install & Configure again, but the callback carries the old, spent code.
    let authz = s.install("acct-1", &t).await?;
    let state = authz
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let u = url::Url::parse(&format!(
        "{}/zoom/oauth/callback?code={}&state={}",
        s.gateway,
        urlencode(&first_code),
        urlencode(&state)
    ))?;
    let r = s.callback(&u).await?;
    assert_eq!(
        r.headers()["location"],
        format!(
            "{}/settings/integration?zoom=error&reason=invalid_request",
            s.gateway
        )
        .as_str()
    );
    let (_, after) = s.status("acct-1", &t).await?;
    assert_eq!(after["status"], "verified", "the old grant stays: {after}");
    assert_eq!(after["authorization_code"], before["authorization_code"]);
    assert_eq!(after["install_in_progress"], false);

    // A successful re-install replaces it.
    let (second_code, loc) = s.verify("acct-1", &zoom).await?;
    assert!(loc.ends_with("zoom=verified"));
    let (_, now) = s.status("acct-1", &t).await?;
    assert_eq!(now["authorization_code"], second_code.as_str());
    assert_ne!(first_code, second_code);
    Ok(())
}

#[tokio::test]
async fn pkce_mismatch_stores_nothing() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    let t = s.token("acct-1").await?;
    let authz = s.install("acct-1", &t).await?;
    // An attacker swaps the challenge: the code Zoom issues is bound to it.
    let mut tampered = authz.clone();
    let pairs: Vec<(String, String)> = authz
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "code_challenge" {
                (k, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into())
            } else {
                (k, v)
            }
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    let cb = s.consent(&tampered, &zoom, true).await?;
    let r = s.callback(&cb).await?;
    assert_eq!(
        r.headers()["location"],
        format!(
            "{}/settings/integration?zoom=error&reason=invalid_grant",
            s.gateway
        )
        .as_str()
    );
    let (_, st) = s.status("acct-1", &t).await?;
    assert_eq!(st["status"], "not_connected");
    assert!(st.get("zoom_account_id").is_none());
    Ok(())
}

#[tokio::test]
async fn one_zoom_account_serves_one_portal_account() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("acct-a", &zoom).await?;
    let (_, loc) = s.verify("acct-b", &zoom).await?;
    assert!(
        loc.ends_with("zoom=error&reason=zoom_account_in_use"),
        "{loc}"
    );
    let tb = s.token("acct-b").await?;
    assert_eq!(s.status("acct-b", &tb).await?.1["status"], "not_connected");
    Ok(())
}

#[tokio::test]
async fn zoom_failures_send_the_customer_back_with_a_reason_and_store_nothing() -> anyhow::Result<()>
{
    let s = e2e::Stack::start_with(e2e::StackOptions {
        gateway_env: vec![("HTTP_TIMEOUT_MS".into(), "700".into())],
        ..Default::default()
    })
    .await?;
    let zoom = s.zoom_account().await?;
    let t = s.token("acct-1").await?;
    let cases = [
        // Zoom's token endpoint fails.
        (
            serde_json::json!({"path": "/oauth/token", "status": 503, "times": 1}),
            "token_exchange_failed",
        ),
        // Too slow: our timeout ends the call.
        (
            serde_json::json!({"path": "/oauth/token", "delay_ms": 2000, "times": 1}),
            "token_exchange_failed",
        ),
        // users/me redirects somewhere: never followed.
        (
            serde_json::json!({"path": "/v2/users/me", "status": 302, "times": 1,
                               "headers": {"location": "http://127.0.0.1:9/steal"}}),
            "zoom_api_error",
        ),
        (
            serde_json::json!({"path": "/v2/users/me", "status": 401, "times": 1,
                            "body": {"code": 124, "message": "Invalid access token."}}),
            "zoom_api_error",
        ),
    ];
    for (fault, reason) in cases {
        s.fault(fault.clone()).await?;
        let authz = s.install("acct-1", &t).await?;
        let cb = s.consent(&authz, &zoom, true).await?;
        let r = s.callback(&cb).await?;
        assert_eq!(
            r.headers()["location"],
            format!(
                "{}/settings/integration?zoom=error&reason={reason}",
                s.gateway
            )
            .as_str(),
            "{fault}"
        );
        let (_, st) = s.status("acct-1", &t).await?;
        assert_eq!(st["status"], "not_connected", "{fault}: {st}");
    }
    // And with Zoom healthy again, the same account verifies.
    let (_, loc) = s.verify("acct-1", &zoom).await?;
    assert!(loc.ends_with("zoom=verified"));
    Ok(())
}
