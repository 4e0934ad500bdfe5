//! Calls to Zoom's Phone and Number Management APIs for one customer account,
//! through a rate budget: a token bucket per rate label (Light / Medium /
//! Heavy, by plan tier, at a configurable share of the published rate since
//! the customer's other apps share it), 429s honoured (`Retry-After` as
//! seconds or a date, else exponential backoff with jitter), and a breaker
//! that stops calling after repeated failures and probes later.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::context::AppContext;
use crate::ids::PortalAccountId;
use crate::tokens::{TokenError, valid_access_token};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    Light,
    Medium,
    Heavy,
}

/// Zoom Phone per-second limits (reference §4.2).
pub fn published_rate(tier: &str, label: Label) -> u32 {
    match (tier, label) {
        ("pro", Label::Light) => 20,
        ("pro", Label::Medium) => 10,
        ("pro", Label::Heavy) => 5,
        (_, Label::Light) => 40,
        (_, Label::Medium) => 20,
        (_, Label::Heavy) => 10,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("Zoom answered {status}: code {code:?} {message}")]
    Zoom {
        status: u16,
        code: Option<i64>,
        message: String,
        body: Value,
    },
    #[error("Zoom kept answering 429 (rate limit)")]
    RateLimited,
    #[error("Zoom calls for this account are paused after repeated failures")]
    BreakerOpen,
    #[error("could not reach Zoom: {0}")]
    Transport(String),
}

/// A successful answer.
#[derive(Debug)]
pub struct ZoomReply {
    pub status: u16,
    pub body: Value,
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

/// Budget and breaker per Zoom account, shared by every call of the process.
pub struct ZoomBudget {
    tier: String,
    share_percent: u32,
    limiters: Mutex<HashMap<(String, Label), Arc<DefaultDirectRateLimiter>>>,
    breakers: Mutex<HashMap<String, Breaker>>,
    pub max_attempts: u32,
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    /// Counters for reports and benchmarks.
    pub calls: std::sync::atomic::AtomicU64,
    pub throttled: std::sync::atomic::AtomicU64,
}

impl ZoomBudget {
    pub fn new(tier: &str, share_percent: u32) -> Self {
        Self {
            tier: tier.to_owned(),
            share_percent: share_percent.clamp(1, 100),
            limiters: Mutex::new(HashMap::new()),
            breakers: Mutex::new(HashMap::new()),
            max_attempts: 8,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
            calls: Default::default(),
            throttled: Default::default(),
        }
    }

    /// Requests per second this process allows itself for `label`.
    pub fn rate(&self, label: Label) -> u32 {
        (published_rate(&self.tier, label) * self.share_percent / 100).max(1)
    }

    fn limiter(&self, zoom: &str, label: Label) -> Arc<DefaultDirectRateLimiter> {
        let mut m = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        m.entry((zoom.to_owned(), label))
            .or_insert_with(|| {
                let per_sec = NonZeroU32::new(self.rate(label)).unwrap_or(NonZeroU32::MIN);
                Arc::new(RateLimiter::direct(
                    Quota::per_second(per_sec).allow_burst(NonZeroU32::MIN),
                ))
            })
            .clone()
    }

    fn breaker_allows(&self, zoom: &str) -> bool {
        let mut m = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let b = m.entry(zoom.to_owned()).or_default();
        match b.open_until {
            Some(t) if Instant::now() < t => false,
            Some(_) => {
                // Half-open: let this probe through; a failure re-opens at once.
                b.open_until = None;
                b.failures = self.breaker_threshold.saturating_sub(1);
                true
            }
            None => true,
        }
    }

    fn record(&self, zoom: &str, ok: bool) {
        let mut m = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let b = m.entry(zoom.to_owned()).or_default();
        if ok {
            *b = Breaker::default();
        } else {
            b.failures += 1;
            if b.failures >= self.breaker_threshold {
                b.open_until = Some(Instant::now() + self.breaker_cooldown);
            }
        }
    }
}

/// Wait before retrying after a 429: `Retry-After` seconds or HTTP/ISO date,
/// else exponential backoff with jitter.
pub fn retry_wait(retry_after: Option<&str>, attempt: u32, now: time::OffsetDateTime) -> Duration {
    if let Some(v) = retry_after.map(str::trim) {
        if let Ok(secs) = v.parse::<u64>() {
            return Duration::from_secs(secs.min(60));
        }
        let parsed = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
            .or_else(|_| {
                time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822)
            });
        if let Ok(at) = parsed {
            let d = (at - now).whole_milliseconds().clamp(0, 60_000) as u64;
            return Duration::from_millis(d);
        }
    }
    backoff(attempt)
}

pub fn backoff(attempt: u32) -> Duration {
    let base = 100u64 << attempt.min(7);
    let jitter = rand::thread_rng().gen_range(0..=base / 2);
    Duration::from_millis(base + jitter)
}

/// One call to Zoom for `account`'s Zoom account, within the budget.
#[allow(clippy::too_many_arguments)] // an HTTP call's parts, each needed
pub async fn call(
    ctx: &AppContext,
    account: &PortalAccountId,
    zoom_account: &str,
    label: Label,
    method: Method,
    path: &str,
    query: &[(&str, String)],
    body: Option<&Value>,
) -> Result<ZoomReply, ApiError> {
    use std::sync::atomic::Ordering;
    let url = ctx
        .config
        .zoom_api_base
        .join(path.trim_start_matches('/'))
        .map_err(|e| ApiError::Transport(e.to_string()))?;
    let budget = &ctx.budget;
    let mut attempt = 0;
    loop {
        if !budget.breaker_allows(zoom_account) {
            return Err(ApiError::BreakerOpen);
        }
        budget.limiter(zoom_account, label).until_ready().await;
        let token = valid_access_token(ctx, account).await?;
        let mut req = ctx
            .zoom
            .http()
            .request(method.clone(), url.clone())
            .bearer_auth(token.token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        budget.calls.fetch_add(1, Ordering::Relaxed);
        let sent = req.send().await;
        attempt += 1;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                budget.record(zoom_account, false);
                let msg = e.without_url().to_string();
                tracing::warn!(zoom_path = path, attempt, error = %msg, "Zoom call failed");
                if attempt >= budget.max_attempts {
                    return Err(ApiError::Transport(msg));
                }
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
        };
        let status = resp.status().as_u16();
        let tracking = resp
            .headers()
            .get("x-zm-trackingid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().await.unwrap_or_default();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        tracing::debug!(zoom_path = path, status, zoom_tracking_id = %tracking, "Zoom call");
        if status == 429 {
            budget.throttled.fetch_add(1, Ordering::Relaxed);
            crate::metrics::count("Zoom429s", 1);
            if attempt >= budget.max_attempts {
                return Err(ApiError::RateLimited);
            }
            tokio::time::sleep(retry_wait(retry_after.as_deref(), attempt, ctx.clock.now())).await;
            continue;
        }
        if status >= 500 {
            budget.record(zoom_account, false);
            tracing::warn!(zoom_path = path, status, zoom_tracking_id = %tracking, "Zoom server error");
            if attempt >= budget.max_attempts {
                return Err(zoom_error(status, body));
            }
            tokio::time::sleep(backoff(attempt)).await;
            continue;
        }
        budget.record(zoom_account, true);
        if (200..300).contains(&status) {
            return Ok(ZoomReply { status, body });
        }
        return Err(zoom_error(status, body));
    }
}

fn zoom_error(status: u16, body: Value) -> ApiError {
    ApiError::Zoom {
        status,
        code: body.get("code").and_then(Value::as_i64),
        message: body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        body,
    }
}

#[allow(clippy::too_many_arguments)]
/// Every item of a paginated list (`next_page_token`), restarting once if a
/// page token expires (15 minutes) mid-way.
pub async fn list_all(
    ctx: &AppContext,
    account: &PortalAccountId,
    zoom_account: &str,
    label: Label,
    path: &str,
    field: &str,
    page_size: u32,
    extra: &[(&str, String)],
) -> Result<Vec<Value>, ApiError> {
    let mut restarted = false;
    'outer: loop {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut q: Vec<(&str, String)> = extra.to_vec();
            q.push(("page_size", page_size.to_string()));
            if !token.is_empty() {
                q.push(("next_page_token", token.clone()));
            }
            let r = call(
                ctx,
                account,
                zoom_account,
                label,
                Method::GET,
                path,
                &q,
                None,
            )
            .await;
            let reply = match r {
                Err(ApiError::Zoom {
                    status: 400,
                    ref message,
                    ..
                }) if !token.is_empty() && !restarted && message.contains("page token") => {
                    restarted = true;
                    continue 'outer;
                }
                other => other?,
            };
            if let Some(items) = reply.body.get(field).and_then(Value::as_array) {
                out.extend(items.iter().cloned());
            }
            token = reply
                .body
                .get("next_page_token")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if token.is_empty() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn retry_after_seconds_or_date_else_backoff() {
        let now = datetime!(2025-01-19 23:59:58 UTC);
        assert_eq!(retry_wait(Some("3"), 1, now), Duration::from_secs(3));
        assert_eq!(
            retry_wait(Some("2025-01-20T00:00:00Z"), 1, now),
            Duration::from_secs(2)
        );
        assert_eq!(
            retry_wait(Some("Mon, 20 Jan 2025 00:00:01 +0000"), 1, now),
            Duration::from_secs(3)
        );
        let b = retry_wait(Some("soon"), 2, now);
        assert!(
            b >= Duration::from_millis(400) && b <= Duration::from_millis(600),
            "{b:?}"
        );
        assert!(retry_wait(None, 7, now) >= Duration::from_millis(12_800));
    }

    #[test]
    fn budget_is_a_share_of_the_published_rate() {
        let b = ZoomBudget::new("business", 50);
        assert_eq!(
            (
                b.rate(Label::Light),
                b.rate(Label::Medium),
                b.rate(Label::Heavy)
            ),
            (20, 10, 5)
        );
        let p = ZoomBudget::new("pro", 50);
        assert_eq!(p.rate(Label::Medium), 5);
    }

    #[test]
    fn breaker_opens_after_repeated_failures_and_probes_later() {
        let mut b = ZoomBudget::new("business", 50);
        b.breaker_cooldown = Duration::from_millis(30);
        for _ in 0..5 {
            assert!(b.breaker_allows("z"));
            b.record("z", false);
        }
        assert!(!b.breaker_allows("z"), "open");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.breaker_allows("z"), "half-open probe");
        b.record("z", false);
        assert!(!b.breaker_allows("z"), "a failed probe re-opens");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.breaker_allows("z"));
        b.record("z", true);
        assert!(
            b.breaker_allows("z") && b.breaker_allows("z"),
            "closed after success"
        );
    }
}
