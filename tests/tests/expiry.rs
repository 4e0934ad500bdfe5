//! Time-dependent rules, driven by a manual clock through the functions' real
//! handlers (in process), against the real local servers and zoom-sim.

use std::sync::Arc;

use e2e::{Stack, lambda_request};
use shared::clock::ManualClock;

#[tokio::test]
async fn expired_state_is_refused_and_nothing_is_exchanged() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let ctx = shared::AppContext::build(s.config()?, Arc::new(clock.clone())).await?;

    let req = lambda_request(
        "POST",
        "/v1/accounts/{account_id}/zoom/install",
        "/v1/accounts/acct-1/zoom/install",
        None,
        &[("account_id", "acct-1")],
        Some(("acct-1", "user-1")),
        b"",
    );
    let resp = install::handle(&ctx, req)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t)?,
        _ => anyhow::bail!("no body"),
    };
    let authz = url::Url::parse(body["authorize_url"].as_str().unwrap())?;
    let cb = s.consent(&authz, &zoom, true).await?;

    clock.advance(time::Duration::minutes(10)); // exactly at expiry: refused
    let call = |q: String| {
        lambda_request(
            "GET",
            "/zoom/oauth/callback",
            "/zoom/oauth/callback",
            Some(&q),
            &[],
            None,
            b"",
        )
    };
    let resp = oauth_callback::handle(&ctx, call(cb.query().unwrap().to_owned()))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(resp.status(), 400);
    let lambda_http::Body::Text(page) = resp.body() else {
        anyhow::bail!("no page")
    };
    assert!(page.contains("expired"), "{page}");
    assert_eq!(s.token_calls("authorization_code").await?, 0);

    let status =
        shared::install_flow::status(&ctx, &shared::ids::PortalAccountId::parse("acct-1")?).await?;
    assert_eq!(
        status.status, "not_connected",
        "pending cleared when the state expired"
    );
    Ok(())
}

#[tokio::test]
async fn state_just_inside_its_life_still_works() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let ctx = shared::AppContext::build(s.config()?, Arc::new(clock.clone())).await?;
    let account = shared::ids::PortalAccountId::parse("acct-1")?;
    let caller = shared::auth::Caller {
        account: account.clone(),
        user: shared::ids::PortalUserId::parse("u1")?,
        scopes: vec![],
    };
    let started = shared::install_flow::begin_install(&ctx, &caller, &account, None).await?;
    let cb = s
        .consent(&url::Url::parse(&started.authorize_url)?, &zoom, true)
        .await?;
    clock.advance(time::Duration::seconds(599));
    let q: std::collections::HashMap<_, _> = cb.query_pairs().into_owned().collect();
    let out = shared::install_flow::complete_install(
        &ctx,
        shared::install_flow::CallbackParams {
            code: Some(q["code"].clone().into()),
            state: Some(q["state"].clone()),
            error: None,
        },
    )
    .await?;
    let shared::install_flow::CallbackOutcome::Redirect(u) = out else {
        anyhow::bail!("expected redirect, got {out:?}")
    };
    assert!(u.as_str().ends_with("zoom=verified"), "{u}");
    let status = shared::install_flow::status(&ctx, &account).await?;
    assert_eq!(status.status, "verified");
    Ok(())
}
