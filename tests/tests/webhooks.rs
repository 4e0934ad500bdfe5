//! Zoom's events end to end: zoom-sim's webhook sender → local gateway →
//! the zoom-webhook function → DynamoDB Local.

use std::time::Duration as StdDuration;

use e2e::Stack;
use serde_json::{Value, json};
use shared::clock::ManualClock;
use shared::ids::PortalAccountId;
use time::Duration;

const SECRET: &str = "webhook-secret"; // what the harness puts in the app secret

async fn configure(s: &Stack, url: &str) -> anyhow::Result<()> {
    s.sim_post(
        "/_sim/webhooks",
        json!({"url": url, "secret": SECRET, "retry_schedule_ms": [100, 200, 300]}),
    )
    .await?;
    Ok(())
}

/// Waits until zoom-sim has finished the delivery; returns it.
async fn finished(s: &Stack, id: &str) -> anyhow::Result<Value> {
    for _ in 0..200 {
        let all = s.sim_get("/_sim/webhooks/deliveries").await?;
        if let Some(d) = all
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id && d["finished"] == true)
        {
            return Ok(d.clone());
        }
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
    anyhow::bail!("delivery {id} did not finish")
}

async fn audit_actions(s: &Stack, account: &str) -> anyhow::Result<Vec<String>> {
    let ctx = s
        .context(ManualClock::new(time::OffsetDateTime::now_utc()))
        .await?;
    Ok(ctx
        .store
        .list_audit(&PortalAccountId::parse(account)?)
        .await?
        .into_iter()
        .map(|a| a.action)
        .collect())
}

#[tokio::test]
async fn url_validation_answers_zooms_challenge() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    configure(&s, &format!("{}/zoom/webhooks", s.gateway)).await?;
    let v = s.sim_post("/_sim/webhooks/validate", json!({})).await?;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["status"], 200);
    // With the wrong secret on Zoom's side, validation fails (401).
    s.sim_post(
        "/_sim/webhooks",
        json!({"url": format!("{}/zoom/webhooks", s.gateway), "secret": "not-ours"}),
    )
    .await?;
    let v = s.sim_post("/_sim/webhooks/validate", json!({})).await?;
    assert_eq!(
        (v["ok"].as_bool(), v["status"].as_u64()),
        (Some(false), Some(401))
    );
    Ok(())
}

#[tokio::test]
async fn forged_deliveries_get_a_bare_401_and_change_nothing() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("acct-1", &zoom).await?;
    let items_before = s.all_items().await?.len();
    let body = format!(
        r#"{{"event":"app_deauthorized","event_ts":1,"payload":{{"account_id":"{zoom}","client_id":"{}"}}}}"#,
        s.client_id
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let good_ts = now.to_string();
    let sign = |secret: &str, ts: &str, b: &str| shared::webhook::sign(secret, ts, b.as_bytes());
    let cases: Vec<(Option<String>, Option<String>, String)> = vec![
        (
            Some(good_ts.clone()),
            Some(sign("wrong", &good_ts, &body)),
            body.clone(),
        ),
        (
            Some(good_ts.clone()),
            Some(sign(SECRET, &good_ts, &body)),
            body.replace("app_", "app-"),
        ),
        (
            Some((now - 400).to_string()),
            Some(sign(SECRET, &(now - 400).to_string(), &body)),
            body.clone(),
        ),
        (
            Some((now + 400).to_string()),
            Some(sign(SECRET, &(now + 400).to_string(), &body)),
            body.clone(),
        ),
        (None, Some(sign(SECRET, &good_ts, &body)), body.clone()),
        (Some(good_ts.clone()), None, body.clone()),
        (
            Some(good_ts.clone()),
            Some(sign(SECRET, &good_ts, &body)[..40].to_owned()),
            body.clone(),
        ),
    ];
    for (ts, sig, b) in cases {
        let mut r = s
            .http
            .post(format!("{}/zoom/webhooks", s.gateway))
            .header("content-type", "application/json")
            .body(b);
        if let Some(ts) = &ts {
            r = r.header("x-zm-request-timestamp", ts);
        }
        if let Some(sig) = &sig {
            r = r.header("x-zm-signature", sig);
        }
        let r = r.send().await?;
        assert_eq!(r.status(), 401);
        let text = r.text().await?;
        assert!(
            !text.contains("timestamp") && !text.contains("mismatch") && !text.contains("secret"),
            "{text}"
        );
    }
    // Duplicated signature headers.
    let sig = sign(SECRET, &good_ts, &body);
    let r = s
        .http
        .post(format!("{}/zoom/webhooks", s.gateway))
        .header("x-zm-request-timestamp", &good_ts)
        .header("x-zm-signature", &sig)
        .header("x-zm-signature", &sig)
        .body(body.clone())
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    // An oversized (but signed) body.
    let big = format!(
        r#"{{"event":"x","payload":{{"pad":"{}"}}}}"#,
        "a".repeat(300 * 1024)
    );
    let r = s
        .http
        .post(format!("{}/zoom/webhooks", s.gateway))
        .header("x-zm-request-timestamp", &good_ts)
        .header("x-zm-signature", sign(SECRET, &good_ts, &big))
        .body(big)
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    assert_eq!(s.all_items().await?.len(), items_before, "nothing written");
    let t = s.token("acct-1").await?;
    assert_eq!(s.status("acct-1", &t).await?.1["status"], "verified");
    Ok(())
}

#[tokio::test]
async fn deauthorization_end_to_end_then_purge_after_retention() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("acct-1", &zoom).await?;
    configure(&s, &format!("{}/zoom/webhooks", s.gateway)).await?;
    // A number event first, so there is cached Zoom data to purge.
    let d = s
        .sim_post("/_sim/webhooks/send", json!({"event": "phone.peering_number_cnam_updated",
            "payload": {"account_id": zoom, "object": {"cnam": "ACME CORP", "carrier_code": 3457, "phone_numbers": ["18008001000"]}}}))
        .await?;
    assert_eq!(
        finished(&s, d["delivery_id"].as_str().unwrap()).await?["delivered"],
        true
    );
    let ctx = s
        .context(ManualClock::new(time::OffsetDateTime::now_utc()))
        .await?;
    let account = PortalAccountId::parse("acct-1")?;
    let znum = ctx.store.account_items(&account, "ZNUM#").await?;
    assert_eq!(znum.len(), 1);
    assert_eq!(znum[0]["cnam"].as_s().unwrap(), "ACME CORP");
    assert_eq!(znum[0]["number"].as_s().unwrap(), "+18008001000");

    // The customer removes the app in the Zoom Marketplace.
    let d = s
        .sim_post(&format!("/_sim/accounts/{zoom}/uninstall"), json!({}))
        .await?;
    let delivery = finished(&s, d["delivery_id"].as_str().unwrap()).await?;
    assert_eq!(delivery["delivered"], true, "{delivery}");
    let t = s.token("acct-1").await?;
    let (_, st) = s.status("acct-1", &t).await?;
    assert_eq!(
        (st["status"].as_str(), st["reason"].as_str()),
        (Some("disconnected"), Some("app_deauthorized"))
    );
    let item = s.connection_item("acct-1").await?.unwrap();
    assert!(!item.contains_key("tokens"), "tokens deleted at once");
    let audit_after_first = audit_actions(&s, "acct-1").await?;
    assert_eq!(
        audit_after_first
            .iter()
            .filter(|a| *a == "zoom_app_deauthorized")
            .count(),
        1
    );

    // Zoom's retry of the same delivery changes nothing.
    let d2 = s
        .sim_post(
            &format!(
                "/_sim/webhooks/deliveries/{}/resend",
                delivery["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await?;
    assert_eq!(
        finished(&s, d2["delivery_id"].as_str().unwrap()).await?["delivered"],
        true
    );
    assert_eq!(audit_actions(&s, "acct-1").await?, audit_after_first);

    // The purge: nothing before the retention ends, everything Zoom's after.
    let purge_at = item["purge_after"].as_n().unwrap().parse::<i64>()?;
    let now = time::OffsetDateTime::now_utc();
    assert!(
        (purge_at - now.unix_timestamp() - 10 * 86_400).abs() < 60,
        "10 days by default"
    );
    let clock = ManualClock::new(now + Duration::days(10) - Duration::minutes(1));
    let ctx = s.context(clock.clone()).await?;
    let r = reconcile::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(r["purge"], json!({"due": 0, "purged": 0, "failed": 0}));
    clock.advance(Duration::minutes(2));
    let r = reconcile::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(r["purge"], json!({"due": 1, "purged": 1, "failed": 0}));
    assert!(ctx.store.account_items(&account, "ZNUM#").await?.is_empty());
    assert_eq!(
        ctx.store
            .zoom_owner(&shared::ids::ZoomAccountId::parse(&zoom)?)
            .await?,
        None
    );
    let item = s.connection_item("acct-1").await?.unwrap();
    for gone in ["zoom_account_id", "scopes", "authorization_code", "tokens"] {
        assert!(!item.contains_key(gone), "{gone} purged");
    }
    let actions = audit_actions(&s, "acct-1").await?;
    for kept in [
        "zoom_install_verified",
        "zoom_app_deauthorized",
        "zoom_data_purged",
    ] {
        assert!(
            actions.iter().any(|a| a == kept),
            "audit keeps {kept}: {actions:?}"
        );
    }
    // A second run finds nothing.
    let r = reconcile::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(r["purge"]["due"], 0);

    // Installing again makes the account verified once more.
    let (_, loc) = s.verify("acct-1", &zoom).await?;
    assert!(loc.ends_with("zoom=verified"), "{loc}");
    Ok(())
}

#[tokio::test]
async fn both_payload_shapes_and_user_data_retention() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let (z1, z2) = (s.zoom_account().await?, s.zoom_account().await?);
    s.verify("acct-1", &z1).await?;
    s.verify("acct-2", &z2).await?;
    configure(&s, &format!("{}/zoom/webhooks", s.gateway)).await?;
    // event_ts inside payload, user_data_retention as the string "false".
    let d = s
        .sim_post(
            &format!("/_sim/accounts/{z1}/uninstall"),
            json!({"event_ts_in_payload": true, "user_data_retention": "false"}),
        )
        .await?;
    let body = finished(&s, d["delivery_id"].as_str().unwrap()).await?["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        body.contains(r#""user_data_retention":"false""#)
            && !body.starts_with(r#"{"event":"app_deauthorized","event_ts""#)
    );
    // user_data_retention true (bool): no purge is scheduled.
    let d = s
        .sim_post(
            &format!("/_sim/accounts/{z2}/uninstall"),
            json!({"user_data_retention": true}),
        )
        .await?;
    finished(&s, d["delivery_id"].as_str().unwrap()).await?;
    let i1 = s.connection_item("acct-1").await?.unwrap();
    let i2 = s.connection_item("acct-2").await?.unwrap();
    assert_eq!(i1["status"].as_s().unwrap(), "disconnected");
    assert_eq!(i2["status"].as_s().unwrap(), "disconnected");
    assert!(i1.contains_key("purge_after"));
    assert!(
        !i2.contains_key("purge_after") && !i2.contains_key("gsi1pk"),
        "retention allowed: no purge"
    );
    assert!(!i2.contains_key("tokens"), "tokens are deleted regardless");
    Ok(())
}

#[tokio::test]
async fn number_events_keep_the_newest_and_failed_deliveries_are_retried() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("acct-1", &zoom).await?;
    // First the endpoint is down: Zoom retries on its schedule (compressed here), 1 + 3 attempts.
    let dead = format!("http://127.0.0.1:{}/zoom/webhooks", e2e::free_port());
    configure(&s, &dead).await?;
    let d = s
        .sim_post(
            "/_sim/webhooks/send",
            json!({"event": "phone.account_settings_updated", "payload": {"account_id": zoom}}),
        )
        .await?;
    let del = finished(&s, d["delivery_id"].as_str().unwrap()).await?;
    assert_eq!(
        (
            del["delivered"].as_bool(),
            del["attempts"].as_array().unwrap().len()
        ),
        (Some(false), 4)
    );

    configure(&s, &format!("{}/zoom/webhooks", s.gateway)).await?;
    let addr = json!({"address_line1": "55 ALMADEN BLVD", "city": "SAN JOSE", "country": "US", "state_code": "CA", "zip": "95113"});
    let d = s
        .sim_post("/_sim/webhooks/send", json!({"event": "phone.peering_number_emergency_address_updated",
            "payload": {"account_id": zoom, "object": {"emergency_address": addr, "carrier_code": 3457, "phone_numbers": ["+16175550100", "16175550101"]}}}))
        .await?;
    assert_eq!(
        finished(&s, d["delivery_id"].as_str().unwrap()).await?["delivered"],
        true
    );
    let ctx = s
        .context(ManualClock::new(time::OffsetDateTime::now_utc()))
        .await?;
    let account = PortalAccountId::parse("acct-1")?;
    let items = ctx.store.account_items(&account, "ZNUM#").await?;
    assert_eq!(items.len(), 2);
    let stored: Value = serde_json::from_str(items[0]["emergency_address"].as_s().unwrap())?;
    assert_eq!(stored, addr);
    // An older event arriving late does not overwrite a newer one.
    let num = shared::ids::E164Number::parse("+16175550100")?;
    let newer = items[0]["emergency_address_event_ts"]
        .as_n()
        .unwrap()
        .parse::<i64>()?;
    let wrote = ctx
        .store
        .put_number_event(
            &account,
            &num,
            "emergency_address",
            aws_sdk_dynamodb::types::AttributeValue::S("{}".into()),
            newer - 1,
        )
        .await?;
    assert!(!wrote);
    // Unknown events are acknowledged.
    let d = s
        .sim_post(
            "/_sim/webhooks/send",
            json!({"event": "phone.callee_ended", "payload": {"account_id": zoom}}),
        )
        .await?;
    assert_eq!(
        finished(&s, d["delivery_id"].as_str().unwrap()).await?["attempts"][0]["status"],
        200
    );
    Ok(())
}

#[tokio::test]
async fn previous_secret_is_accepted_during_rotation() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("acct-1", &zoom).await?;
    // Rotate: the app secret now lists a new current secret and the old one as previous.
    let sm = aws_sdk_secretsmanager::Client::new(&e2e::aws().await);
    let cur = sm.get_secret_value().secret_id(&s.secret_id).send().await?;
    let mut v: Value = serde_json::from_str(cur.secret_string().unwrap())?;
    v["webhook_secret_tokens"] = json!(["rotated-secret", SECRET]);
    sm.put_secret_value()
        .secret_id(&s.secret_id)
        .secret_string(v.to_string())
        .send()
        .await?;
    let ctx = s
        .context(ManualClock::new(time::OffsetDateTime::now_utc()))
        .await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    for secret in ["rotated-secret", SECRET] {
        let body = format!(
            r#"{{"event":"endpoint.url_validation","payload":{{"plainToken":"{secret}-pt"}},"event_ts":1}}"#
        );
        let sig = shared::webhook::sign(secret, &now, body.as_bytes());
        let out =
            shared::webhook::handle_delivery(&ctx, Some(&now), Some(&sig), body.as_bytes()).await?;
        let expected = shared::webhook::encrypt_plain_token(secret, &format!("{secret}-pt"));
        assert_eq!(
            out,
            shared::webhook::Outcome::UrlValidation {
                plain_token: format!("{secret}-pt"),
                encrypted_token: expected
            }
        );
    }
    let body = r#"{"event":"endpoint.url_validation","payload":{"plainToken":"x"}}"#;
    let sig = shared::webhook::sign("retired", &now, body.as_bytes());
    let out =
        shared::webhook::handle_delivery(&ctx, Some(&now), Some(&sig), body.as_bytes()).await?;
    assert!(matches!(out, shared::webhook::Outcome::Rejected(_)));
    Ok(())
}
