//! The refresh protocol against zoom-sim's rotating, single-use refresh
//! tokens (a reused one revokes the grant), DynamoDB Local and a manual clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use e2e::Stack;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use shared::clock::ManualClock;
use shared::ids::PortalAccountId;
use shared::tokens::{Freshness, RefreshObserver, TokenError, valid_access_token};
use time::Duration;

fn clock() -> ManualClock {
    ManualClock::new(time::OffsetDateTime::now_utc())
}

async fn current_access(s: &Stack, zoom: &str) -> anyhow::Result<String> {
    let grants = s
        .sim_get(&format!("/_sim/grants?account_id={zoom}"))
        .await?;
    let live: Vec<&Value> = grants
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["revoked"] == false)
        .collect();
    assert_eq!(live.len(), 1, "one live grant: {grants}");
    Ok(live[0]["access_token"].as_str().unwrap().to_owned())
}

async fn sim_counter(s: &Stack, group: &str, key: &str) -> anyhow::Result<u64> {
    Ok(s.sim_get("/_sim/counters").await?[group][key]
        .as_u64()
        .unwrap_or(0))
}

/// 50 concurrent callers spread over 25 separate instances (each its own SDK
/// client, HTTP client and refresh coordinator), 100 expiries: exactly one
/// token call per expiry, no invalid_grant, and every caller gets — and the
/// table holds — the newest token zoom-sim issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_callers_one_refresh_per_expiry_for_100_rounds() -> anyhow::Result<()> {
    const INSTANCES: usize = 25;
    const CALLERS: usize = 50;
    const ROUNDS: usize = 100;
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("acct-race", &zoom).await?;
    let account = PortalAccountId::parse("acct-race")?;
    let clock = clock();
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        instances.push(Arc::new(s.context(clock.clone()).await?));
    }
    let started = std::time::Instant::now();
    let mut adopted_total = 0;
    for round in 0..ROUNDS {
        clock.advance(Duration::seconds(3600)); // past the 5-minute margin
        let before = sim_counter(&s, "token_calls", "refresh_token").await?;
        let mut tasks = Vec::new();
        for c in 0..CALLERS {
            let ctx = instances[c % INSTANCES].clone();
            let account = account.clone();
            tasks.push(tokio::spawn(async move {
                valid_access_token(&ctx, &account).await
            }));
        }
        let mut tokens = Vec::new();
        let mut refreshed = 0;
        for t in tasks {
            let tok = t
                .await?
                .map_err(|e| anyhow::anyhow!("round {round}: {e}"))?;
            match tok.how {
                Freshness::Refreshed => refreshed += 1,
                Freshness::Adopted => adopted_total += 1,
                Freshness::Fresh => {}
            }
            tokens.push(tok.token.expose_secret().to_owned());
        }
        let after = sim_counter(&s, "token_calls", "refresh_token").await?;
        assert_eq!(after - before, 1, "round {round}: exactly one token call");
        assert_eq!(refreshed, 1, "round {round}: exactly one caller refreshed");
        let newest = current_access(&s, &zoom).await?;
        assert!(
            tokens.iter().all(|t| *t == newest),
            "round {round}: every caller got the newest token"
        );
        // The stored token is the newest too (read by a brand-new instance).
        let fresh = valid_access_token(&s.context(clock.clone()).await?, &account).await?;
        assert_eq!(
            (fresh.how, fresh.token.expose_secret()),
            (Freshness::Fresh, newest.as_str())
        );
    }
    assert_eq!(
        sim_counter(&s, "token_errors", "invalid_grant").await?,
        0,
        "no invalid_grant, ever"
    );
    assert_eq!(
        sim_counter(&s, "token_calls", "refresh_token").await?,
        ROUNDS as u64
    );
    println!(
        "race: {ROUNDS} rounds x {CALLERS} callers over {INSTANCES} instances: {ROUNDS} token calls, \
         0 invalid_grant, {adopted_total} adoptions after waiting, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Stands in the window after Zoom answered, until the task is killed.
struct KillWindow(tokio::sync::mpsc::UnboundedSender<()>);

impl RefreshObserver for KillWindow {
    fn zoom_answered(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let _ = self.0.send(());
        Box::pin(std::future::pending())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresher_killed_after_zooms_answer_ends_in_needs_reauth_not_a_replay()
-> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("acct-1", &zoom).await?;
    let account = PortalAccountId::parse("acct-1")?;
    let clock = clock();
    clock.advance(Duration::seconds(3400));

    let doomed = Arc::new(s.context(clock.clone()).await?);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    doomed.refresh.set_observer(Some(Arc::new(KillWindow(tx))));
    let task = {
        let (ctx, account) = (doomed.clone(), account.clone());
        tokio::spawn(async move { valid_access_token(&ctx, &account).await })
    };
    rx.recv().await; // Zoom rotated the tokens; the new pair is only in that task's memory.
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(sim_counter(&s, "token_calls", "refresh_token").await?, 1);

    // While the dead refresher's lease lasts, others wait (bounded) and do not refresh.
    let mut other = s.context(clock.clone()).await?;
    other.refresh.max_waits = 3;
    assert!(matches!(
        valid_access_token(&other, &account).await,
        Err(TokenError::LeaseBusy)
    ));

    // Once it has expired, the next caller takes over, sees the unanswered
    // refresh, and says so instead of replaying the spent refresh token.
    clock.advance(Duration::seconds(other.refresh.lease_secs + 1));
    match valid_access_token(&other, &account).await {
        Err(TokenError::NeedsReauth { reason }) => assert_eq!(reason, "refresh_outcome_unknown"),
        other => panic!("expected needs_reauth, got {other:?}"),
    }
    assert_eq!(
        sim_counter(&s, "token_calls", "refresh_token").await?,
        1,
        "the spent token was not replayed"
    );
    assert_eq!(sim_counter(&s, "token_errors", "invalid_grant").await?, 0);
    let t = s.token("acct-1").await?;
    let (_, st) = s.status("acct-1", &t).await?;
    assert_eq!(
        (st["status"].as_str(), st["reason"].as_str()),
        (Some("needs_reauth"), Some("refresh_outcome_unknown"))
    );
    let item = s.connection_item("acct-1").await?.unwrap();
    assert!(
        !item.contains_key("tokens") && !item.contains_key("lease_owner"),
        "{item:?}"
    );

    // Re-installing brings the account back.
    let (_, loc) = s.verify("acct-1", &zoom).await?;
    assert!(loc.ends_with("zoom=verified"), "{loc}");
    let tok = valid_access_token(&other, &account).await?;
    assert_eq!(tok.token.expose_secret(), current_access(&s, &zoom).await?);
    Ok(())
}

#[tokio::test]
async fn invalid_grant_marks_needs_reauth_once_and_is_never_retried() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("acct-1", &zoom).await?;
    let account = PortalAccountId::parse("acct-1")?;
    let clock = clock();
    let ctx = s.context(clock.clone()).await?;
    // Zoom ends the grant (e.g. revoked on its side).
    s.sim_post(&format!("/_sim/accounts/{zoom}/revoke"), json!({}))
        .await?;
    clock.advance(Duration::seconds(3400));
    match valid_access_token(&ctx, &account).await {
        Err(TokenError::NeedsReauth { reason }) => assert_eq!(reason, "invalid_grant"),
        other => panic!("{other:?}"),
    }
    let calls = sim_counter(&s, "token_calls", "refresh_token").await?;
    assert_eq!(calls, 1);
    for _ in 0..3 {
        assert!(matches!(
            valid_access_token(&ctx, &account).await,
            Err(TokenError::NeedsReauth { .. })
        ));
    }
    assert_eq!(
        sim_counter(&s, "token_calls", "refresh_token").await?,
        calls,
        "never retried"
    );
    let audit = ctx.store.list_audit(&account).await?;
    assert!(
        audit.iter().any(|a| a.action == "zoom_grant_needs_reauth"
            && a.detail.as_deref() == Some("invalid_grant"))
    );
    let t = s.token("acct-1").await?;
    assert_eq!(s.status("acct-1", &t).await?.1["reason"], "invalid_grant");
    Ok(())
}

#[tokio::test]
async fn timeout_after_sending_is_an_unknown_outcome_and_5xx_is_retryable() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let zoom = s.zoom_account().await?;
    s.verify("acct-1", &zoom).await?;
    let account = PortalAccountId::parse("acct-1")?;
    let clock = clock();
    let ctx = s
        .context_with(clock.clone(), &[("HTTP_TIMEOUT_MS", "400")])
        .await?;
    clock.advance(Duration::seconds(3400));

    // Zoom answers 503: nothing was rotated; the lease is given back.
    s.fault(json!({"path": "/oauth/token", "status": 503, "times": 1}))
        .await?;
    assert!(matches!(
        valid_access_token(&ctx, &account).await,
        Err(TokenError::Transient(_))
    ));
    let item = s.connection_item("acct-1").await?.unwrap();
    assert!(!item.contains_key("lease_owner") && !item.contains_key("refresh_pending"));
    // The next call refreshes normally.
    let t = valid_access_token(&ctx, &account).await?;
    assert_eq!(t.how, Freshness::Refreshed);

    // Zoom takes the token but the answer never arrives in time: unknown outcome.
    clock.advance(Duration::seconds(3400));
    s.fault(json!({"path": "/oauth/token", "delay_ms": 1500, "times": 1}))
        .await?;
    match valid_access_token(&ctx, &account).await {
        Err(TokenError::NeedsReauth { reason }) => assert_eq!(reason, "refresh_outcome_unknown"),
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn scheduled_refresh_finds_due_grants_through_the_index_and_isolates_failures()
-> anyhow::Result<()> {
    let s = Stack::start().await?;
    let (z1, z2, z3) = (
        s.zoom_account().await?,
        s.zoom_account().await?,
        s.zoom_account().await?,
    );
    for (a, z) in [("acct-1", &z1), ("acct-2", &z2), ("acct-3", &z3)] {
        s.verify(a, z).await?;
    }
    let clock = clock();
    let ctx = s.context(clock.clone()).await?;
    // Nothing is due right after install (tokens live an hour).
    let r = token_refresh::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(r["due"], 0, "{r}");
    // acct-3's grant dies at Zoom.
    s.sim_post(&format!("/_sim/accounts/{z3}/revoke"), json!({}))
        .await?;
    // 45 minutes on: every token expires within 20 minutes.
    clock.advance(Duration::minutes(45));
    let r = token_refresh::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(
        r,
        json!({"due": 3, "refreshed": 2, "adopted": 0, "fresh": 0, "needs_reauth": 1, "failed": 0})
    );
    // A grant the schedule refreshed is left alone until it has been idle 7 days...
    clock.advance(Duration::hours(2));
    let r = token_refresh::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(r["due"], 0, "{r}");
    clock.advance(Duration::days(7) - Duration::hours(2) - Duration::minutes(19));
    let r = token_refresh::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(
        (r["due"].as_u64(), r["refreshed"].as_u64()),
        (Some(2), Some(2)),
        "{r}"
    );
    // ...while one used on demand is kept warm again near its expiry.
    let acct1 = PortalAccountId::parse("acct-1")?;
    clock.advance(Duration::hours(2));
    assert_eq!(
        valid_access_token(&ctx, &acct1).await?.how,
        Freshness::Refreshed
    );
    clock.advance(Duration::minutes(45));
    let r = token_refresh::handle(&ctx, json!({}))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(
        (r["due"].as_u64(), r["refreshed"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(
        sim_counter(&s, "token_errors", "invalid_grant").await?,
        1,
        "only the dead grant"
    );
    Ok(())
}

#[tokio::test]
async fn gateway_runs_the_schedule_on_demand() -> anyhow::Result<()> {
    let s = Stack::start().await?;
    let r: Value = s
        .http
        .post(format!("{}/__dev/jobs/token-refresh", s.gateway))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        r,
        json!({"due": 0, "refreshed": 0, "adopted": 0, "fresh": 0, "needs_reauth": 0, "failed": 0})
    );
    let r = s
        .http
        .post(format!("{}/__dev/jobs/install", s.gateway))
        .send()
        .await?;
    assert_eq!(r.status(), 404, "only scheduled functions run as jobs");
    Ok(())
}
